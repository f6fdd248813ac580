package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/ccidtest"
	"github.com/ccidgadget/ccidgadget/ccid/fault"
	"github.com/ccidgadget/ccidgadget/gadget"
	"github.com/ccidgadget/ccidgadget/persona"
)

var _ fault.USB = (*gadget.Function)(nil) // the gadget runs fault plans' USB actions itself

func TestResolveIdentity(t *testing.T) {
	defaults := usbIdentity{VID: "0x1209", PID: "0x0001", Manufacturer: "ccidgadget", Product: "ccidgadget OpenPGP reader"}
	pr533, _ := persona.Lookup("nxp-pr533")
	generic, _ := persona.Lookup("generic")
	for _, tt := range []struct {
		name    string
		p       persona.Persona
		set     map[string]string
		want    usbIdentity
		wantErr string
	}{
		{name: "generic", p: generic, want: usbIdentity{vid: 0x1209, pid: 0x0001, bcd: 0x0100, Manufacturer: "ccidgadget",
			Product: "ccidgadget OpenPGP reader"}},
		{name: "pr533", p: pr533, want: usbIdentity{vid: 0x1fc9, pid: 0x010b, bcd: 0x0100, Manufacturer: "NXP",
			Product: "PR533", Serial: "3.60", MaxSpeed: "full-speed"}},
		{name: "flags win", p: pr533, set: map[string]string{"vid": "0x1234", "max-speed": "high-speed", "serial": "S1",
			"product": "P", "bcd-device": "0x0210"},
			want: usbIdentity{vid: 0x1234, pid: 0x010b, bcd: 0x0210, Manufacturer: "NXP", Product: "P", Serial: "S1", MaxSpeed: "high-speed"}},
		{name: "explicit empty max-speed", p: pr533, set: map[string]string{"max-speed": ""},
			want: usbIdentity{vid: 0x1fc9, pid: 0x010b, bcd: 0x0100, Manufacturer: "NXP", Product: "PR533", Serial: "3.60"}},
		{name: "bad bcd", p: generic, set: map[string]string{"bcd-device": "zz"}, wantErr: "--bcd-device"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			flags, set := defaults, map[string]bool{}
			for k, v := range tt.set {
				set[k] = true
				switch k {
				case "vid":
					flags.VID = v
				case "max-speed":
					flags.MaxSpeed = v
				case "serial":
					flags.Serial = v
				case "product":
					flags.Product = v
				case "bcd-device":
					flags.Bcd = v
				}
			}
			got, err := resolveIdentity(tt.p, set, flags)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.vid != tt.want.vid || got.pid != tt.want.pid || got.bcd != tt.want.bcd || got.Manufacturer != tt.want.Manufacturer ||
				got.Product != tt.want.Product || got.Serial != tt.want.Serial || got.MaxSpeed != tt.want.MaxSpeed {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestUpFaultFlagErrors(t *testing.T) {
	root := fakeMachine(t, 0, "dummy_udc.0")
	state := filepath.Join(root, "state", "card.db")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--persona", "acme"}, 2, "unknown persona"},
		{[]string{"--replay-mixed"}, 2, "need --replay"},
		{[]string{"--faults", filepath.Join(root, "none.plan")}, 1, "none.plan"},
		{[]string{"--bcd-device", "0x1x"}, 2, "--bcd-device"},
	} {
		code, _, errOut := execCmd(append([]string{"up", "--state", state}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: code %d stderr %q; want %d with %q", c.args, code, errOut, c.code, c.want)
		}
	}
	if _, err := os.Stat(state); err == nil {
		t.Error("state file created although up could not start")
	}
}

// fakeUSB records the USB faults the plan asks for.
type fakeUSB struct {
	mu  sync.Mutex
	ops []string
}

func (u *fakeUSB) add(s string) { u.mu.Lock(); u.ops = append(u.ops, s); u.mu.Unlock() }
func (u *fakeUSB) SkipZLP()     { u.add("skip-zlp") }
func (u *fakeUSB) StrayZLP(context.Context) error {
	u.add("stray-zlp")
	return nil
}
func (u *fakeUSB) Halt(ep ccid.Endpoint) error { u.add("halt " + ep.String()); return nil }
func (u *fakeUSB) Disconnect(_ context.Context, d time.Duration) error {
	u.add("disconnect " + d.String())
	return nil
}
func (u *fakeUSB) Reenumerate(context.Context) error { u.add("reenumerate"); return nil }

// The plan's USB rules reach the gadget given to SetUSB, and a card-removal rule's NotifySlotChange reaches the
// recording through Notifications, as `up` wires them.
func TestUpWiringUSBAndNotifications(t *testing.T) {
	dir := t.TempDir()
	plan := filepath.Join(dir, "f.plan")
	os.WriteFile(plan, []byte("apdu=0001* : usb skip-zlp\napdu=0002* : usb stray-zlp\napdu=0003* : usb halt interrupt\n"+
		"apdu=0004* : usb disconnect 2s\napdu=0005* : usb reenumerate\napdu=0006* : remove\n"), 0o644)
	rec := filepath.Join(dir, "rec.log")
	fx, err := parseFaultFlags(t, "--faults", plan, "--record", rec)
	if err != nil {
		t.Fatal(err)
	}
	u := &fakeUSB{}
	fx.SetUSB(u)
	tp, rd, ctx := serve(t, fx, ccidtest.NewCard(nil))
	notes := fx.Notifications(rd.Notifications())
	if _, err := tp.Exchange(ctx, ccid.NewIccPowerOn(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	for i := byte(1); i <= 3; i++ {
		if _, err := tp.Exchange(ctx, ccid.NewXfrBlock(0, 1+i, 0, 0, []byte{0, i, 0, 0})); err != nil {
			t.Fatal(err)
		}
	}
	// Disconnect and reenumerate drop the answer: send and do not wait for one.
	for i := byte(4); i <= 5; i++ {
		if err := tp.SendMessage(ctx, ccid.NewXfrBlock(0, 1+i, 0, 0, []byte{0, i, 0, 0})); err != nil {
			t.Fatal(err)
		}
	}
	// Answers the plan drops (disconnect, reenumerate) let the reader take the next command at once: compare
	// as sets.
	want := []string{"disconnect 2s", "halt interrupt", "reenumerate", "skip-zlp", "stray-zlp"}
	deadline := time.Now().Add(5 * time.Second)
	for {
		u.mu.Lock()
		ops := slices.Sorted(slices.Values(u.ops))
		u.mu.Unlock()
		got := strings.Join(ops, ",")
		if got == strings.Join(want, ",") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("USB ops %q, want %q", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := tp.Exchange(ctx, ccid.NewXfrBlock(0, 7, 0, 0, []byte{0, 6, 0, 0})); err != nil {
		t.Fatal(err)
	}
	// The insertion at start (50 03) comes first, then the plan's removal.
	timeout := time.After(5 * time.Second)
	for removed := false; !removed; {
		select {
		case n := <-notes:
			removed = bytes.Equal(n, []byte{0x50, 0x02})
		case <-timeout:
			t.Fatal("no NotifySlotChange 50 02 after the remove rule")
		}
	}
	if err := fx.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(rec)
	if !bytes.Contains(bytes.ToLower(b), []byte("50 02")) && !bytes.Contains(bytes.ToLower(b), []byte("5002")) {
		t.Errorf("the recording lacks the NotifySlotChange:\n%s", b)
	}
}
