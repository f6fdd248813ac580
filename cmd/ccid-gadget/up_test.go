package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccidgadget/ccidgadget/card"
	"github.com/ccidgadget/ccidgadget/configfs"
	"github.com/ccidgadget/ccidgadget/store"
)

// fakeMachine points the gadget commands at a temporary tree: configfs at root/config, UDCs in root/udc, run
// files in root/run. It returns the root.
func fakeMachine(t *testing.T, euid int, udcs ...string) string {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "config", "usb_gadget"), 0o755)
	os.MkdirAll(filepath.Join(root, "udc"), 0o755)
	for _, u := range udcs {
		os.MkdirAll(filepath.Join(root, "udc", u), 0o755)
		os.WriteFile(filepath.Join(root, "udc", u, "state"), []byte("configured\n"), 0o644)
	}
	oldSys, oldRun := gadgetSystem, runDir
	gadgetSystem = configfs.System{
		Root: filepath.Join(root, "config"), UDCDir: filepath.Join(root, "udc"),
		Euid: func() int { return euid }, IsConfigfs: func(string) bool { return true },
	}
	runDir = filepath.Join(root, "run")
	t.Cleanup(func() { gadgetSystem, runDir = oldSys, oldRun })
	return root
}

func TestUpPreflightErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(root string)
		euid    int
		udcs    []string
		args    []string
		code    int
		inError string
	}{
		{"not root", nil, 1000, []string{"dummy_udc.0"}, nil, 1, "must be run as root"},
		{"no configfs", func(r string) { os.RemoveAll(filepath.Join(r, "config")) }, 0, nil, nil, 1, "configfs is not mounted"},
		{"no libcomposite", func(r string) { os.RemoveAll(filepath.Join(r, "config", "usb_gadget")) }, 0, nil, nil, 1, "modprobe libcomposite"},
		{"no UDC", nil, 0, nil, nil, 1, "modprobe dummy_hcd"},
		{"no such UDC", nil, 0, []string{"dummy_udc.0"}, []string{"--udc", "20980000.usb"}, 1, `no such UDC "20980000.usb" (have: dummy_udc.0)`},
		{"bad vid", nil, 0, nil, []string{"--vid", "xyz"}, 2, "not a 16-bit hex id"},
		{"bad speed", nil, 0, []string{"dummy_udc.0"}, []string{"--max-speed", "warp"}, 2, "want full-speed or high-speed"},
		{"crash leftover", func(r string) { os.MkdirAll(filepath.Join(r, "config", "usb_gadget", "ccidgadget"), 0o755) },
			0, []string{"dummy_udc.0"}, nil, 1, "gadget already exists (left by a crash, or ccid-gadget is still running): run 'ccid-gadget down'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeMachine(t, tt.euid, tt.udcs...)
			if tt.setup != nil {
				tt.setup(root)
			}
			state := filepath.Join(root, "state", "card.db")
			code, _, errOut := execCmd(append([]string{"up", "--state", state}, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.inError) {
				t.Fatalf("code %d stderr %q; want %d with %q", code, errOut, tt.code, tt.inError)
			}
			if lines := strings.Count(strings.TrimSpace(errOut), "\n"); lines > 1 {
				t.Errorf("error takes %d lines", lines+1)
			}
			if _, err := os.Stat(state); err == nil {
				t.Error("state file created although up could not start")
			}
		})
	}
}

func TestStatus(t *testing.T) {
	root := fakeMachine(t, 1000, "dummy_udc.0")
	state := filepath.Join(root, "none.db")
	code, out, errOut := execCmd("status", "--state", state)
	if code != 0 || !strings.Contains(out, "gadget: ccidgadget absent") || !strings.Contains(out, "host: not connected") ||
		!strings.Contains(out, "card: no state file") {
		t.Fatalf("status of nothing: %d\n%s%s", code, out, errOut)
	}

	// A gadget bound to a configured UDC, no daemon: a crash leftover.
	g := filepath.Join(root, "config", "usb_gadget", "ccidgadget")
	os.MkdirAll(g, 0o755)
	for f, v := range map[string]string{"idVendor": "0x1209", "idProduct": "0x0001", "UDC": "dummy_udc.0"} {
		os.WriteFile(filepath.Join(g, f), []byte(v+"\n"), 0o644)
	}
	code, out, _ = execCmd("status", "--state", state)
	for _, want := range []string{"gadget: ccidgadget (0x1209:0x0001)", "daemon: not running", "ccid-gadget down",
		`udc: dummy_udc.0, state "configured"`, "host: connected, configured"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = execCmd("status", "--state", state, "--json")
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if !rep.Gadget.Exists || rep.Gadget.UDC != "dummy_udc.0" || !rep.Gadget.Configured || rep.Daemon.Running || rep.CardError == "" {
		t.Errorf("json report %+v", rep)
	}

	// With a state file, --json gives the card in `card info --json`'s format (hex strings, snake_case).
	state = filepath.Join(root, "card.db")
	st, err := store.Open(state, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := card.New(st, card.Options{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info()
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ = execCmd("status", "--state", state, "--json")
	var raw struct {
		Card map[string]any `json:"card"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil || code != 0 {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if raw.Card["aid"] != fmt.Sprintf("%X", info.AID) || raw.Card["serial"] != fmt.Sprintf("%X", info.Serial[:]) ||
		raw.Card["version"] != "3.4" || raw.Card["pins"] == nil {
		t.Errorf("status --json card = %v", raw.Card)
	}

	// A running daemon's run file supplies the card summary (the state file is locked while it runs).
	if err := writeRunFile(runFile{PID: os.Getpid(), Name: "ccidgadget", State: "/x/card.db"}); err != nil {
		t.Fatal(err)
	}
	_, out, _ = execCmd("status")
	if !strings.Contains(out, "daemon: running, pid") || !strings.Contains(out, "card: state /x/card.db") {
		t.Errorf("status with daemon:\n%s", out)
	}
}

func TestDownNothing(t *testing.T) {
	fakeMachine(t, 0, "dummy_udc.0")
	// A stale run file from a crashed daemon (its pid is gone) is removed.
	if err := writeRunFile(runFile{PID: 1 << 30, Name: "ccidgadget"}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := execCmd("down")
	if code != 0 || !strings.Contains(out, "nothing to do") {
		t.Fatalf("down: %d %s %s", code, out, errOut)
	}
	if _, err := os.Stat(runFilePath("ccidgadget")); err == nil {
		t.Error("stale run file left")
	}
	fakeMachine(t, 1000)
	if code, _, errOut := execCmd("down"); code != 1 || !strings.Contains(errOut, "must be run as root") {
		t.Errorf("down as user: %d %q", code, errOut)
	}
}
