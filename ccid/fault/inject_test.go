package fault_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/ccidtest"
	"github.com/ccidgadget/ccidgadget/ccid/fault"
)

type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// fakeUSB records the USB faults it was asked for.
type fakeUSB struct {
	mu    sync.Mutex
	calls []string
}

func (u *fakeUSB) add(s string) { u.mu.Lock(); u.calls = append(u.calls, s); u.mu.Unlock() }
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
func (u *fakeUSB) Calls() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return strings.Join(u.calls, ";")
}

type bench struct {
	t    *testing.T
	ctx  context.Context
	rd   *ccid.Reader
	tp   *ccidtest.Transport
	inj  *fault.Injector
	clk  *fakeClock
	usb  *fakeUSB
	card *ccidtest.Card
	// seen receives the bSeq of every host frame once the injector has taken it (dropped when full).
	seen chan byte
}

// observed is the injector as the reader sees it, reporting each host frame it has taken.
type observed struct {
	*fault.Injector
	seen chan byte
}

func (o observed) Command(ctx context.Context, frame []byte) []byte {
	out := o.Injector.Command(ctx, frame)
	select {
	case o.seen <- frame[6]:
	default:
	}
	return out
}

// taken waits until the injector has taken the host frame with bSeq seq.
func (b *bench) taken(seq byte) {
	b.t.Helper()
	for {
		select {
		case s := <-b.seen:
			if s == seq {
				return
			}
		case <-time.After(2 * time.Second):
			b.t.Fatalf("frame bSeq %d never reached the injector", seq)
		}
	}
}

func newBench(t *testing.T, plan string) *bench {
	t.Helper()
	p, err := fault.Parse(strings.NewReader(plan))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	b := &bench{t: t, ctx: ctx, clk: &fakeClock{now: time.Unix(1000, 0)}, usb: &fakeUSB{}, card: ccidtest.NewCard(nil)}
	b.inj = fault.NewInjector(p, fault.Options{Clock: b.clk, USB: b.usb})
	cfg := ccid.DefaultConfig()
	b.seen = make(chan byte, 64)
	cfg.Interceptor = observed{b.inj, b.seen}
	if b.rd, err = ccid.NewReader(cfg); err != nil {
		t.Fatal(err)
	}
	b.inj.Bind(b.rd, b.card)
	if err := b.rd.Insert(0, b.card); err != nil {
		t.Fatal(err)
	}
	<-b.rd.Notifications()
	b.tp = ccidtest.NewTransport()
	done := make(chan error, 1)
	go func() { done <- b.rd.Serve(ctx, b.tp) }()
	t.Cleanup(func() { b.tp.Close(); <-done; b.inj.Wait(); cancel() })
	return b
}

func (b *bench) send(m ccid.Message) {
	b.t.Helper()
	if err := b.tp.SendMessage(b.ctx, m); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bench) recv() []byte {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	f, err := b.tp.Recv(ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	return f
}

// untilIdle sends m until the reader stops answering CMD_SLOT_BUSY (the previous command is still with the
// card) and returns the first other frame.
func (b *bench) untilIdle(m ccid.Message) []byte {
	b.t.Helper()
	for k := 0; k < 1000; k++ {
		b.send(m)
		f := b.recv()
		if !busy(f, m.Seq) {
			return f
		}
		runtime.Gosched()
	}
	b.t.Fatal("slot stays busy")
	return nil
}

// busy reports whether f is the slot-busy answer to bSeq seq.
func busy(f []byte, seq byte) bool {
	return len(f) == ccid.HeaderSize && f[7]&0x40 != 0 && f[8] == byte(ccid.CmdSlotBusy) && f[6] == seq
}

func (b *bench) notification() []byte {
	b.t.Helper()
	select {
	case n := <-b.rd.Notifications():
		return n
	case <-time.After(2 * time.Second):
		b.t.Fatal("no notification")
	}
	return nil
}

func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

var readBinary = []byte{0x00, 0xB0, 0x00, 0x00, 0x02}

// The plain answer to READ BINARY with bSeq 5 (the test card echoes the command and adds 90 00).
const plain = "80 07000000 00 05 000000 00B0000002 9000"

func TestActions(t *testing.T) {
	for _, c := range []struct {
		name   string
		plan   string
		frames []string // exact frames the host reads after the XfrBlock (bSeq 5)
		sleeps []time.Duration
		usb    string
	}{
		{"no rule", "", []string{plain}, nil, ""},
		{"delay", "apdu=00B0* : delay 2.7s", []string{plain}, []time.Duration{2700 * time.Millisecond}, ""},
		{"wtx", "type=xfrblock: wtx 3 every 500ms x4", []string{
			"80 00000000 00 05 80 04 00", "80 00000000 00 05 80 04 00", "80 00000000 00 05 80 04 00", plain},
			[]time.Duration{500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond}, ""},
		{"reply ICC_MUTE inactive", "any: reply icc=inactive error=ICC_MUTE", []string{"80 00000000 00 05 41 FE 00"}, nil, ""},
		{"reply slot busy", "any: reply error=CMD_SLOT_BUSY", []string{"80 00000000 00 05 40 E0 00"}, nil, ""},
		{"reply aborted absent", "any: reply icc=absent error=0xFF", []string{"80 00000000 00 05 42 FF 00"}, nil, ""},
		{"reply parity", "any: reply error=XFR_PARITY_ERROR", []string{"80 00000000 00 05 40 FD 00"}, nil, ""},
		{"reply hw error", "any: reply error=HW_ERROR", []string{"80 00000000 00 05 40 FB 00"}, nil, ""},
		{"reply ok with bError", "any: reply cmd=ok error=0xFE", []string{"80 00000000 00 05 00 FE 00"}, nil, ""},
		{"reply raw status and data", "any: reply status=0x01 data=6F01", []string{"80 02000000 00 05 01 00 00 6F01"}, nil, ""},
		{"sw keeps data", "any: sw 6F01", []string{"80 07000000 00 05 000000 00B0000002 6F01"}, nil, ""},
		{"sw nodata", "any: sw 6982 nodata", []string{"80 02000000 00 05 000000 6982"}, nil, ""},
		{"inactive", "any: inactive", []string{"80 07000000 00 05 010000 00B0000002 9000"}, nil, ""},
		{"seq +1", "any: seq +1", []string{"80 07000000 00 06 000000 00B0000002 9000"}, nil, ""},
		{"seq -5", "any: seq -5", []string{"80 07000000 00 00 000000 00B0000002 9000"}, nil, ""},
		{"seq =0x99", "any: seq =0x99", []string{"80 07000000 00 99 000000 00B0000002 9000"}, nil, ""},
		{"dup", "any: dup", []string{plain, plain}, nil, ""},
		{"type", "any: type 0x81", []string{"81 07000000 00 05 000000 00B0000002 9000"}, nil, ""},
		{"truncate", "any: truncate 8", []string{"80 07000000 00 05 00"}, nil, ""},
		{"pad", "any: pad 2", []string{plain + "0000"}, nil, ""},
		{"oversize", "any: oversize 2", []string{"80 09000000 00 05 000000 00B0000002 9000 0001"}, nil, ""},
		{"skip-zlp", "any: usb skip-zlp", []string{plain}, nil, "skip-zlp"},
		{"stray-zlp", "any: usb stray-zlp", []string{plain}, nil, "stray-zlp"},
		{"halt bulk-out", "any: usb halt bulk-out", []string{plain}, nil, "halt bulk-out"},
		{"PR533 embedded", "any: delay 2.7s; reply status=0x01 data=6F01", []string{"80 02000000 00 05 01 00 00 6F01"},
			[]time.Duration{2700 * time.Millisecond}, ""},
		{"wtx then sw then dup", "any: wtx 1 every 2s x2; sw 6F00 nodata; dup",
			[]string{"80 00000000 00 05 80 02 00", "80 02000000 00 05 000000 6F00", "80 02000000 00 05 000000 6F00"},
			[]time.Duration{2 * time.Second}, ""},
		{"truncate then seq", "any: truncate 3; seq +1", []string{"80 0700"}, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBench(t, strings.Replace(c.plan, "any:", "type=xfrblock:", 1))
			b.send(ccid.NewIccPowerOn(0, 4, 0))
			b.recv()
			before := len(b.clk.Sleeps())
			b.send(ccid.NewXfrBlock(0, 5, 0, 0, readBinary))
			for _, want := range c.frames {
				if got := b.recv(); !bytes.Equal(got, h(want)) {
					t.Fatalf("frame % X\nwant  % X", got, h(want))
				}
			}
			// Nothing more: the next command's answer comes next.
			b.send(ccid.NewGetSlotStatus(0, 9))
			if got := b.recv(); got[6] != 9 || got[0] != 0x81 {
				t.Fatalf("extra frame % X", got)
			}
			if sl := b.clk.Sleeps()[before:]; fmt.Sprint(sl) != fmt.Sprint(c.sleeps) && !(len(sl) == 0 && len(c.sleeps) == 0) {
				t.Errorf("sleeps %v, want %v", sl, c.sleeps)
			}
			if got := b.usb.Calls(); got != c.usb {
				t.Errorf("usb %q, want %q", got, c.usb)
			}
		})
	}
}

// Actions whose answer is withheld: mute, stale, halt bulk-in, disconnect, reenumerate.
func TestWithheldAnswers(t *testing.T) {
	for _, c := range []struct{ name, plan, usb string }{
		{"mute", "apdu=00B0* once: mute", ""},
		{"halt bulk-in", "apdu=00B0* once: usb halt bulk-in", "halt bulk-in"},
		{"disconnect", "apdu=00B0* once: usb disconnect 2s", "disconnect 2s"},
		{"reenumerate", "apdu=00B0* once: usb reenumerate", "reenumerate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBench(t, c.plan)
			b.send(ccid.NewIccPowerOn(0, 4, 0))
			b.recv()
			b.send(ccid.NewXfrBlock(0, 5, 0, 0, readBinary))
			if got := b.untilIdle(ccid.NewXfrBlock(0, 6, 0, 0, readBinary)); !bytes.Equal(got, h("80 07000000 00 06 000000 00B0000002 9000")) {
				t.Fatalf("% X: want only the answer to bSeq 6", got)
			}
			if b.usb.Calls() != c.usb {
				t.Errorf("usb %q", b.usb.Calls())
			}
		})
	}
	t.Run("stale", func(t *testing.T) {
		b := newBench(t, "apdu=00B0* once: stale")
		b.send(ccid.NewIccPowerOn(0, 4, 0))
		b.recv()
		b.send(ccid.NewXfrBlock(0, 5, 0, 0, readBinary))
		// The host reads the late answer to bSeq 5 first, then the answer to bSeq 6.
		getData := ccid.NewXfrBlock(0, 6, 0, 0, []byte{0x00, 0xCA, 0x00, 0x6E, 0x00})
		if got := b.untilIdle(getData); !bytes.Equal(got, h(plain)) {
			t.Fatalf("% X: want the stale answer", got)
		}
		got := b.recv()
		if busy(got, 6) {
			// The bSeq 6 that brought the stale answer out came while the slot was still busy with bSeq 5
			// (the late answer is queued behind the busy reply's arrival): ask again.
			got = b.untilIdle(getData)
		}
		if !bytes.Equal(got, h("80 07000000 00 06 000000 00CA006E00 9000")) {
			t.Fatalf("% X", got)
		}
	})
	t.Run("mute forever until reload", func(t *testing.T) {
		b := newBench(t, "exchange=2: mute forever")
		b.send(ccid.NewIccPowerOn(0, 4, 0))
		b.recv()
		b.send(ccid.NewXfrBlock(0, 5, 0, 0, readBinary))
		b.send(ccid.NewGetSlotStatus(0, 6))
		b.taken(6) // dropped by "mute forever" before the reload, not answered after it
		b.inj.Load(nil)
		b.send(ccid.NewGetSlotStatus(0, 7))
		if got := b.recv(); got[6] != 7 {
			t.Fatalf("% X: want only the answer after the reload", got)
		}
	})
}

func TestCardActions(t *testing.T) {
	t.Run("remove", func(t *testing.T) {
		b := newBench(t, "apdu=00B0*: remove")
		b.send(ccid.NewIccPowerOn(0, 4, 0))
		b.recv()
		b.send(ccid.NewXfrBlock(0, 5, 0, 0, readBinary))
		if got := b.recv(); !bytes.Equal(got, h("80 00000000 00 05 42 FE 00")) {
			t.Fatalf("% X", got)
		}
		if n := b.notification(); !bytes.Equal(n, []byte{0x50, 0x02}) {
			t.Fatalf("notification % X", n)
		}
	})
	t.Run("remove in mid-APDU", func(t *testing.T) {
		b := newBench(t, "apdu=00B0*: remove in 300ms")
		b.card.Block()
		b.send(ccid.NewIccPowerOn(0, 4, 0))
		b.recv()
		b.send(ccid.NewXfrBlock(0, 5, 0, 0, readBinary))
		if got := b.recv(); !bytes.Equal(got, h("80 00000000 00 05 42 FE 00")) {
			t.Fatalf("% X", got)
		}
		if n := b.notification(); !bytes.Equal(n, []byte{0x50, 0x02}) {
			t.Fatalf("notification % X", n)
		}
	})
	t.Run("insert after remove", func(t *testing.T) {
		b := newBench(t, "exchange=1: remove\nexchange=2: insert")
		b.send(ccid.NewGetSlotStatus(0, 1))
		if got := b.recv(); got[7] != ccid.ICCAbsent {
			t.Fatalf("% X", got)
		}
		b.send(ccid.NewGetSlotStatus(0, 2))
		if got := b.recv(); got[7] != ccid.ICCInactive {
			t.Fatalf("% X", got)
		}
		if n := b.notification(); !bytes.Equal(n, []byte{0x50, 0x02}) {
			t.Fatalf("% X", n)
		}
		if n := b.notification(); !bytes.Equal(n, []byte{0x50, 0x03}) {
			t.Fatalf("% X", n)
		}
	})
	t.Run("remove with answer change", func(t *testing.T) {
		b := newBench(t, "apdu=00B0*: remove in 100ms; delay 1s; sw 6F01")
		b.card.Block()
		b.send(ccid.NewIccPowerOn(0, 4, 0))
		b.recv()
		b.send(ccid.NewXfrBlock(0, 5, 0, 0, readBinary))
		// Removed mid-APDU: the reader's 42 FE answer is not a DataBlock with data, so sw leaves it alone.
		if got := b.recv(); !bytes.Equal(got, h("80 00000000 00 05 42 FE 00")) {
			t.Fatalf("% X", got)
		}
	})
	t.Run("hwerror and notify", func(t *testing.T) {
		b := newBench(t, "exchange=1: hwerror\nexchange=2: notify 5003")
		b.send(ccid.NewGetSlotStatus(0, 0x21))
		b.recv()
		if n := b.notification(); !bytes.Equal(n, []byte{0x51, 0x00, 0x21, 0x01}) {
			t.Fatalf("% X", n)
		}
		b.send(ccid.NewGetSlotStatus(0, 0x22))
		b.recv()
		if n := b.notification(); !bytes.Equal(n, []byte{0x50, 0x03}) {
			t.Fatalf("% X", n)
		}
	})
}

func TestMatchers(t *testing.T) {
	for _, c := range []struct {
		name string
		rule string
		fire []bool // for commands 1..4: XfrBlock 00B0 at 0 s, GetSlotStatus, XfrBlock 00CA, XfrBlock 00B0 at 20 s
	}{
		{"any", "any", []bool{true, true, true, true}},
		{"type", "type=getslotstatus", []bool{false, true, false, false}},
		{"type spec name", "type=PC_to_RDR_XfrBlock", []bool{true, false, true, true}},
		{"apdu prefix", "apdu=00B0*", []bool{true, false, false, true}},
		{"apdu exact", "apdu=00B0000002", []bool{true, false, false, true}},
		{"apdu exact no match", "apdu=00B0", []bool{false, false, false, false}},
		{"apdu mask", "apdu=0080/0080", []bool{true, false, true, true}},
		{"apdu mask no match", "apdu=00B0/00F0", []bool{true, false, false, true}},
		{"exchange", "exchange=4", []bool{false, false, true, false}},
		{"exchange range", "exchange=3-4", []bool{false, true, true, false}},
		{"exchange open", "exchange=4-", []bool{false, false, true, true}},
		{"once", "type=xfrblock once", []bool{true, false, false, false}},
		{"times", "type=xfrblock times=2", []bool{true, false, true, false}},
		{"skip", "type=xfrblock skip=1", []bool{false, false, true, true}},
		{"after", "after=10s", []bool{false, false, false, true}},
		{"before", "before=10s", []bool{true, true, true, false}},
		{"slot", "slot=1", []bool{false, false, false, false}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBench(t, c.rule+": inactive")
			b.send(ccid.NewIccPowerOn(0, 0, 0))
			if got := b.recv(); got[7]&0x40 != 0 { // the power-on is exchange 1
				t.Fatalf("power on % X", got)
			}
			cmds := []ccid.Message{
				ccid.NewXfrBlock(0, 1, 0, 0, readBinary),
				ccid.NewGetSlotStatus(0, 2),
				ccid.NewXfrBlock(0, 3, 0, 0, []byte{0x00, 0xCA, 0x00, 0x6E, 0x00}),
				ccid.NewXfrBlock(0, 4, 0, 0, readBinary),
			}
			for k, m := range cmds {
				if k == 3 {
					b.clk.advance(20 * time.Second)
				}
				b.send(m)
				got := b.recv()
				inactive := got[7]&0x03 == ccid.ICCInactive
				if inactive != c.fire[k] {
					t.Errorf("command %d: fired %v, want %v (% X)", k+1, inactive, c.fire[k], got)
				}
			}
		})
	}
}

// Load swaps plans while commands flow (run with -race): every answer comes from one plan or the other.
func TestReloadConcurrent(t *testing.T) {
	b := newBench(t, "type=getslotstatus: inactive")
	b.send(ccid.NewIccPowerOn(0, 0, 0))
	b.recv()
	plans := []string{"type=getslotstatus: inactive", "type=getslotstatus: reply error=HW_ERROR"}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for k := 0; k < 200; k++ {
			p, _ := fault.Parse(strings.NewReader(plans[k%2]))
			b.inj.Load(p)
		}
	}()
	for k := 0; k < 200; k++ {
		b.send(ccid.NewGetSlotStatus(0, byte(k)))
		got := b.recv()
		if got[7] != 0x01 && !(got[7] == 0x40 && got[8] == 0xFB) {
			t.Fatalf("% X", got)
		}
	}
	<-done
	if b.inj.Plan().Rules[0].Text != plans[1] {
		t.Errorf("plan in force %q", b.inj.Plan().Rules[0].Text)
	}
}

// recorder notes the frames it sees.
type recorder struct{ seen []string }

func (r *recorder) Command(_ context.Context, f []byte) []byte {
	r.seen = append(r.seen, fmt.Sprintf("-> %02X", f[6]))
	return f
}

func (r *recorder) Answer(_ context.Context, f []byte, write func([]byte) error) error {
	r.seen = append(r.seen, fmt.Sprintf("<- %02X", f[6]))
	return write(f)
}

func TestChain(t *testing.T) {
	p, _ := fault.Parse(strings.NewReader("any: seq +1"))
	rec := &recorder{}
	c := fault.Chain(rec, fault.NewInjector(p, fault.Options{}))
	ctx := context.Background()
	f := h("65 00000000 00 10 000000")
	if got := c.Command(ctx, f); !bytes.Equal(got, f) {
		t.Fatalf("% X", got)
	}
	var wrote []byte
	if err := c.Answer(ctx, h("81 00000000 00 10 000000"), func(b []byte) error { wrote = b; return nil }); err != nil {
		t.Fatal(err)
	}
	// The recorder (outer) sees the frame the injector (inner) changed: what the host gets.
	if wrote[6] != 0x11 || strings.Join(rec.seen, ",") != "-> 10,<- 11" {
		t.Errorf("wrote % X seen %v", wrote, rec.seen)
	}
	if fault.Chain(nil, rec) != rec || fault.Chain(rec, nil) != rec {
		t.Error("nil side not elided")
	}
}
