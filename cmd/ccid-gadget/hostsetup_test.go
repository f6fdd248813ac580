package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pcscdAliases reads the three parallel arrays the way pcscd's HPReadBundleValues does.
func pcscdAliases(t *testing.T, doc []byte) (vids, pids, names []string) {
	t.Helper()
	var arr [3][]string
	for i, key := range []string{"ifdVendorID", "ifdProductID", "ifdFriendlyName"} {
		a, err := findArray(doc, key)
		if err != nil {
			t.Fatal(err)
		}
		arr[i] = a.values
	}
	if len(arr[0]) != len(arr[1]) || len(arr[1]) != len(arr[2]) {
		t.Fatalf("arrays of %d, %d, %d entries", len(arr[0]), len(arr[1]), len(arr[2]))
	}
	return arr[0], arr[1], arr[2]
}

func copyPlist(t *testing.T) (string, []byte) {
	t.Helper()
	orig, err := os.ReadFile("testdata/libccid_Info.plist") // Debian bookworm libccid 1.5.2-1
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "libccid_Info.plist")
	if err := os.WriteFile(p, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, orig
}

func TestHostSetup(t *testing.T) {
	p, orig := copyPlist(t)
	vids0, _, _ := pcscdAliases(t, orig)
	if len(vids0) != 562 {
		t.Fatalf("testdata plist has %d aliases, want Debian's 562", len(vids0))
	}

	code, out, errOut := execCmd("host-setup", "--plist", p, "--name", "Bench <test> & co")
	if code != 0 || !strings.Contains(out, "index 562") || !strings.Contains(out, "systemctl restart pcscd") {
		t.Fatalf("host-setup: code %d\n%s%s", code, out, errOut)
	}
	doc, _ := os.ReadFile(p)
	vids, pids, names := pcscdAliases(t, doc)
	if n := len(vids); n != 563 || vids[562] != "0x1209" || pids[562] != "0x0001" || names[562] != "Bench <test> & co" {
		t.Fatalf("entry 562: %q %q %q (of %d)", vids[len(vids)-1], pids[len(pids)-1], names[len(names)-1], n)
	}
	// Only three lines were added; every other byte is as it was.
	added := []string{"\t\t<string>0x1209</string>\n", "\t\t<string>0x0001</string>\n", "\t\t<string>Bench &lt;test&gt; &amp; co</string>\n"}
	stripped := string(doc)
	for _, a := range added {
		i := strings.LastIndex(stripped, a)
		if i < 0 {
			t.Fatalf("line %q not added", a)
		}
		stripped = stripped[:i] + stripped[i+len(a):]
	}
	if stripped != string(orig) {
		t.Error("host-setup changed more than the three entries")
	}
	if bak, err := os.ReadFile(p + ".bak"); err != nil || !bytes.Equal(bak, orig) {
		t.Errorf("backup: %v, equal %v", err, bytes.Equal(bak, orig))
	}

	// Idempotent: a second run changes nothing and writes no new backup.
	os.Remove(p + ".bak")
	code, out, _ = execCmd("host-setup", "--plist", p, "--vid", "1209", "--pid", "0x0001")
	if code != 0 || !strings.Contains(out, "already lists") {
		t.Fatalf("second run: %d %s", code, out)
	}
	if again, _ := os.ReadFile(p); !bytes.Equal(again, doc) {
		t.Error("second run changed the file")
	}
	if _, err := os.Stat(p + ".bak"); err == nil {
		t.Error("second run wrote a backup")
	}

	// An entry Debian already has is recognised, whatever the case of its hex digits.
	code, out, _ = execCmd("host-setup", "--plist", p, "--vid", "0x234b", "--pid", "0x0000")
	if code != 0 || !strings.Contains(out, "Gnuk") {
		t.Fatalf("Gnuk: %d %s", code, out)
	}

	// Another PID goes to the next index.
	code, out, _ = execCmd("host-setup", "--plist", p, "--pid", "0x0002")
	if code != 0 || !strings.Contains(out, "index 563") {
		t.Fatalf("second PID: %d %s", code, out)
	}
}

func TestHostSetupErrors(t *testing.T) {
	p, orig := copyPlist(t)
	unequal := strings.Replace(string(orig), "<string>0x072F</string>", "", 1)
	bad := filepath.Join(t.TempDir(), "unequal.plist")
	os.WriteFile(bad, []byte(unequal), 0o644)
	notPlist := filepath.Join(t.TempDir(), "other.plist")
	os.WriteFile(notPlist, []byte("<plist><dict></dict></plist>"), 0o644)
	tests := []struct {
		args    []string
		code    int
		inError string
	}{
		{[]string{"--plist", filepath.Join(t.TempDir(), "none")}, 1, "apt install libccid"},
		{[]string{"--plist", bad}, 1, "have 561, 562 and 562 entries"},
		{[]string{"--plist", notPlist}, 1, "not a libccid Info.plist"},
		{[]string{"--plist", p, "--vid", "0x12345"}, 2, "not a 16-bit hex id"},
		{[]string{"--plist", p, "--pid", "zz"}, 2, "not a 16-bit hex id"},
		{[]string{"--plist", p, "--name", ""}, 2, "--name is empty"},
	}
	for _, tt := range tests {
		code, _, errOut := execCmd(append([]string{"host-setup"}, tt.args...)...)
		if code != tt.code || !strings.Contains(errOut, tt.inError) || strings.Count(strings.TrimSpace(errOut), "\n") > 1 {
			t.Errorf("%v: code %d stderr %q; want %d with %q", tt.args, code, errOut, tt.code, tt.inError)
		}
	}
	if b, _ := os.ReadFile(bad); string(b) != unequal {
		t.Error("a refused file was changed")
	}
}

// execCmd runs ccid-gadget with args and returns the exit code, stdout and stderr.
func execCmd(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}
