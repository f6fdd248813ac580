package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/ccidtest"
	"github.com/ccidgadget/ccidgadget/ccid/trace"
)

const desktopTrace = "../../ccid/trace/testdata/pr533-desktop.log"

func parseFaultFlags(t *testing.T, args ...string) (*faultSetup, error) {
	t.Helper()
	var ff faultFlags
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ff.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return ff.setup(nil)
}

// serve runs a reader wired as `up` does and returns the host's transport.
func serve(t *testing.T, fx *faultSetup, live ccid.Card) (*ccidtest.Transport, *ccid.Reader, context.Context) {
	t.Helper()
	cfg := ccid.DefaultConfig()
	cfg.Descriptor, cfg.Interceptor = fx.Persona.Descriptor, fx.Interceptor
	rd, err := ccid.NewReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	card := fx.Card(live)
	if err := rd.Insert(0, card); err != nil {
		t.Fatal(err)
	}
	fx.Bind(rd, card)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tp := ccidtest.NewTransport()
	done := make(chan error, 1)
	go func() { done <- rd.Serve(ctx, tp) }()
	t.Cleanup(func() { tp.Close(); <-done; cancel() })
	return tp, rd, ctx
}

func TestFaultFlagsErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.plan")
	os.WriteFile(bad, []byte("any: delay 1s\nany: explode\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--persona", "acme"}, "unknown persona"},
		{[]string{"--on-divergence", "card"}, "need --replay"},
		{[]string{"--replay", desktopTrace, "--on-divergence", "loud"}, "want fail, card or mute"},
		{[]string{"--replay", "/nonexistent"}, "no such file"},
		{[]string{"--faults", bad}, "line 2: unknown action"},
		{[]string{"--record", filepath.Join(dir, "no/such/dir/x.log")}, "--record"},
	} {
		if _, err := parseFaultFlags(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
	fx, err := parseFaultFlags(t)
	if err != nil || fx.Interceptor != nil || fx.Persona.Name != "generic" {
		t.Errorf("no flags: %+v %v", fx, err)
	}
}

// --faults, --record, --pcap and --persona together, then a SIGHUP-style reload.
func TestFaultFlagsRecordAndReload(t *testing.T) {
	dir := t.TempDir()
	plan := filepath.Join(dir, "f.plan")
	os.WriteFile(plan, []byte("apdu=0020* : sw 6983 nodata\n"), 0o644)
	logPath, pcapPath := filepath.Join(dir, "rec.log"), filepath.Join(dir, "rec.pcap")
	fx, err := parseFaultFlags(t, "--faults", plan, "--record", logPath, "--pcap", pcapPath, "--persona", "nxp-pr533")
	if err != nil {
		t.Fatal(err)
	}
	live := ccidtest.NewCard(nil)
	tp, _, ctx := serve(t, fx, live)
	m, err := tp.Exchange(ctx, ccid.NewIccPowerOn(0, 1, 0))
	if err != nil || !bytes.Equal(m.Data, []byte{0x3B, 0x80, 0x80, 0x01, 0x01}) {
		t.Fatalf("ATR %v %v: want the persona's", m, err)
	}
	verify := []byte{0x00, 0x20, 0x00, 0x81, 0x06, '1', '2', '3', '4', '5', '6'}
	if m, _ = tp.Exchange(ctx, ccid.NewXfrBlock(0, 2, 0, 0, verify)); !bytes.Equal(m.Data, []byte{0x69, 0x83}) {
		t.Fatalf("VERIFY % X: want the plan's 6983", m.Data)
	}
	os.WriteFile(plan, []byte("apdu=0020* : sw 6982 nodata\n"), 0o644)
	if err := fx.Reload(); err != nil {
		t.Fatal(err)
	}
	if m, _ = tp.Exchange(ctx, ccid.NewXfrBlock(0, 3, 0, 0, verify)); !bytes.Equal(m.Data, []byte{0x69, 0x82}) {
		t.Fatalf("VERIFY % X after reload: want 6982", m.Data)
	}
	os.WriteFile(plan, []byte("apdu=0020* : oops\n"), 0o644)
	if err := fx.Reload(); err == nil || !strings.Contains(err.Error(), "previous plan stays") {
		t.Fatalf("bad reload: %v", err)
	}
	if m, _ = tp.Exchange(ctx, ccid.NewXfrBlock(0, 4, 0, 0, verify)); !bytes.Equal(m.Data, []byte{0x69, 0x82}) {
		t.Fatalf("VERIFY % X after a bad reload: want 6982 still", m.Data)
	}
	if err := fx.Close(); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(logPath)
	defer f.Close()
	tr, err := trace.Parse(f)
	if err != nil || len(tr.Exchanges) != 4 {
		t.Fatalf("recording: %v, %v", tr, err)
	}
	if a, _ := tr.Exchanges[1].Answer(); !bytes.HasSuffix(a.Bytes, []byte{0x69, 0x83}) || tr.Exchanges[1].Command.Masked == nil {
		t.Errorf("recorded % X (the host's view, PIN masked)", a.Bytes)
	}
	if st, err := os.Stat(pcapPath); err != nil || st.Size() < 24+64*4 {
		t.Errorf("pcap %v %v", st, err)
	}
}

// --replay with the desktop trace: the SELECTs get 9000 then 6982 with the recorded delays; a command the trace
// lacks goes to the live card with --on-divergence card.
func TestFaultFlagsReplay(t *testing.T) {
	fx, err := parseFaultFlags(t, "--replay", desktopTrace, "--on-divergence", "card", "--persona", "nxp-pr533")
	if err != nil {
		t.Fatal(err)
	}
	defer fx.Close()
	live := ccidtest.NewCard(nil)
	live.Answer([]byte{0x00, 0xCA, 0x00, 0x6E, 0x00}, []byte{0x42, 0x90, 0x00})
	tp, _, ctx := serve(t, fx, live)
	if _, err := tp.Exchange(ctx, ccid.NewIccPowerOn(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ apdu, sw []byte }{
		{[]byte{0x00, 0xA4, 0x04, 0x0C, 0x07, 0xA0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01}, []byte{0x90, 0x00}},
		{[]byte{0x00, 0xA4, 0x02, 0x0C, 0x02, 0x01, 0x1E}, []byte{0x69, 0x82}},
		{[]byte{0x00, 0xCA, 0x00, 0x6E, 0x00}, []byte{0x42, 0x90, 0x00}},
	} {
		start := time.Now()
		m, err := tp.Exchange(ctx, ccid.NewXfrBlock(0, 2, 0, 0, c.apdu))
		if err != nil || !bytes.Equal(m.Data, c.sw) {
			t.Fatalf("% X: % X %v", c.apdu, m.Data, err)
		}
		if c.sw[0] == 0x90 && time.Since(start) < 78*time.Millisecond {
			t.Errorf("SELECT answered after %v, recorded 78.174ms", time.Since(start))
		}
	}
}

// TestReplayPersona: --replay without --persona looks like the trace's reader when a persona has its VID:PID;
// --persona wins; a trace naming an unknown reader, or none, keeps generic.
func TestReplayPersona(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.log")
	b, err := os.ReadFile(desktopTrace)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unknown, bytes.ReplaceAll(b, []byte("usb:1fc9/010b"), []byte("usb:072f/90cc")), 0o644); err != nil {
		t.Fatal(err)
	}
	anonymous := filepath.Join(dir, "anonymous.log")
	if err := os.WriteFile(anonymous, bytes.ReplaceAll(b, []byte("usb:1fc9/010b"), []byte("reader")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--replay", desktopTrace}, "nxp-pr533"},
		{[]string{"--replay", desktopTrace, "--persona", "generic"}, "generic"},
		{[]string{"--replay", desktopTrace, "--persona", "canokey"}, "canokey"},
		{[]string{"--replay", unknown}, "generic"},
		{[]string{"--replay", anonymous}, "generic"},
		{nil, "generic"},
		{[]string{"--persona", "gnuk"}, "gnuk"},
	} {
		fx, err := parseFaultFlags(t, tc.args...)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if fx.Persona.Name != tc.want {
			t.Errorf("%q: persona %s, want %s", tc.args, fx.Persona.Name, tc.want)
		}
		fx.Close()
	}
}
