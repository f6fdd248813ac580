package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/probe"
)

// fakeBackend serves fixed interfaces; Open returns openErr or a device that answers nothing.
type fakeBackend struct {
	infos   []probe.Info
	openErr error
}

func (b fakeBackend) List(sel probe.Selector) ([]probe.Info, []error, error) {
	var out []probe.Info
	for _, i := range b.infos {
		if sel.Match(i.VendorID, i.ProductID, i.Serial) {
			out = append(out, i)
		}
	}
	return out, nil, nil
}

func (b fakeBackend) Open(probe.Selector) (device, error) {
	if b.openErr != nil {
		return nil, b.openErr
	}
	return deadDevice{b.infos[0]}, nil
}

func (fakeBackend) Close() error { return nil }

// deadDevice never answers: every bulk transfer times out.
type deadDevice struct{ info probe.Info }

func (d deadDevice) Info() probe.Info                          { return d.info }
func (deadDevice) BulkOut(context.Context, []byte) error       { return nil }
func (deadDevice) BulkIn(context.Context, []byte) (int, error) { return 0, probe.ErrTimeout }
func (deadDevice) InterruptIn(context.Context, []byte) (int, error) {
	return 0, probe.ErrTimeout
}
func (deadDevice) Control(context.Context, byte, byte, uint16, uint16, []byte) (int, error) {
	return 0, probe.ErrStall
}
func (deadDevice) ClearHalt(context.Context, byte) error { return nil }
func (deadDevice) Close() error                          { return nil }

func gadgetInfo(t *testing.T) probe.Info {
	raw, err := ccid.DefaultDescriptor().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return probe.Info{Bus: 1, Address: 2, VendorID: 0x1d6b, ProductID: 0x0104, Manufacturer: "ccidgadget",
		Product: "OpenPGP", Serial: "0001", InterfaceName: "CCID", Speed: "high", Config: 1,
		Interface: probe.Interface{NumEndpoints: 3, Class: 0x0B, Extra: raw, Endpoints: []probe.Endpoint{
			{Address: 0x81, Attributes: 2, MaxPacketSize: 512}, {Address: 0x02, Attributes: 2, MaxPacketSize: 512},
			{Address: 0x83, Attributes: 3, MaxPacketSize: 8, Interval: 8}}}}
}

func withBackend(t *testing.T, b backend) {
	old := newBackend
	newBackend = func() (backend, error) { return b, nil }
	t.Cleanup(func() { newBackend = old })
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	rc := run(context.Background(), args, &out, &errb)
	return rc, out.String(), errb.String()
}

func TestList(t *testing.T) {
	withBackend(t, fakeBackend{infos: []probe.Info{gadgetInfo(t)}})
	rc, out, errs := runCLI("list")
	if rc != exitOK {
		t.Fatalf("rc %d: %s", rc, errs)
	}
	for _, want := range []string{"ID 1d6b:0104 ccidgadget OpenPGP (serial 0001)", "class 0x0B", `"CCID"`,
		"dwMaxCCIDMessageLength", "2058 bytes (APDU chunks of 2048)", "scdaemon reads bulk-IN into 2065 bytes",
		"short+extended APDU level", "0x81 bulk IN"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
	rc, out, _ = runCLI("list", "--json")
	var entries []listEntry
	if rc != exitOK || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 1 || len(entries[0].Descriptor) != 22 {
		t.Fatalf("rc %d, json %s", rc, out)
	}
	if f := entries[0].Descriptor[16]; f.Name != "dwMaxCCIDMessageLength" || f.Value != 2058 {
		t.Errorf("field 16: %+v", f)
	}
	rc, out, _ = runCLI("list", "--device", "1234:5678")
	if rc != exitOK || !strings.Contains(out, "no CCID interface") {
		t.Errorf("filtered list: rc %d %s", rc, out)
	}
}

func TestCheckExitStatus(t *testing.T) {
	withBackend(t, fakeBackend{infos: []probe.Info{gadgetInfo(t)}})
	rc, out, errs := runCLI("check", "--timeout", "20ms")
	if rc != exitFailed {
		t.Fatalf("rc %d, want %d (a mute reader fails)", rc, exitFailed)
	}
	if !strings.Contains(errs, "stop pcscd and scdaemon") {
		t.Errorf("no notice to stop pcscd/scdaemon: %s", errs)
	}
	if !strings.Contains(out, "PASS descriptor.interface") || !strings.Contains(out, "FAIL slot-status") || !strings.Contains(out, "FAILED:") {
		t.Errorf("report:\n%s", out)
	}
	rc, out, _ = runCLI("check", "--timeout", "20ms", "--json")
	var rep probe.Report
	if rc != exitFailed || json.Unmarshal([]byte(out), &rep) != nil || rep.Passed || len(rep.Results) != len(probe.CheckIDs()) {
		t.Errorf("json: rc %d %s", rc, out)
	}
}

func TestBusyInterface(t *testing.T) {
	withBackend(t, fakeBackend{infos: []probe.Info{gadgetInfo(t)}, openErr: fmt.Errorf("1d6b:0104 interface 0: %w", probe.ErrBusy)})
	for _, cmd := range []string{"check", "bench"} {
		rc, _, errs := runCLI(cmd)
		if rc != exitError || !strings.Contains(errs, "LIBUSB_ERROR_BUSY") || !strings.Contains(errs, "gpgconf --kill scdaemon") {
			t.Errorf("%s: rc %d, stderr %s", cmd, rc, errs)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	withBackend(t, fakeBackend{infos: []probe.Info{gadgetInfo(t)}})
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"check", "--device", "nope"},
		{"check", "--slow-apdu", "zz"},
		{"check", "--slow-apdu", "0020", "--slow-keygen-pw3", "12345678"},
		{"bench", "--apdu", "00"},
		{"bench", "-n", "0"},
		{"list", "--bogus"},
	} {
		if rc, _, _ := runCLI(args...); rc != exitError {
			t.Errorf("%q: rc %d, want %d", args, rc, exitError)
		}
	}
}

func TestKeygenAPDUs(t *testing.T) {
	a := keygenAPDUs("12345678")
	if len(a) != 3 || !bytes.Equal(a[0], []byte{0x00, 0x20, 0x00, 0x83, 0x08, '1', '2', '3', '4', '5', '6', '7', '8'}) ||
		a[1][3] != 0xC3 || a[2][1] != 0x47 {
		t.Errorf("%X", a)
	}
}

func TestRenderBar(t *testing.T) {
	if got := renderBar(5, 10, 10); got != "[#####.....]  50% 5/10" {
		t.Errorf("%q", got)
	}
	if got := renderBar(12, 10, 4); got != "[####] 100% 10/10" {
		t.Errorf("%q", got)
	}
	var b bytes.Buffer
	p := newProgressBar(&b) // a buffer is not a terminal: nothing drawn
	p.update(1, 2)
	p.done()
	if b.Len() != 0 {
		t.Errorf("drew on a non-terminal: %q", b.String())
	}
}
