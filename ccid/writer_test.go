package ccid_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/ccidtest"
)

// gateTransport is a ccidtest.Transport whose writes can be held, as a FunctionFS bulk-IN write waits for
// the host to read: after hold, each WriteFrame announces its frame on started and blocks until open (it
// returns when ctx ends or the transport is closed, as real transports do).
type gateTransport struct {
	*ccidtest.Transport
	started   chan []byte // a copy of each held frame as its write starts waiting
	mu        sync.Mutex
	gate      chan struct{} // nil: writes pass
	closed    chan struct{}
	closeOnce sync.Once
}

func newGateTransport() *gateTransport {
	return &gateTransport{Transport: ccidtest.NewTransport(), started: make(chan []byte), closed: make(chan struct{})}
}

func (t *gateTransport) WriteFrame(ctx context.Context, f []byte) error {
	t.mu.Lock()
	gate := t.gate
	t.mu.Unlock()
	if gate == nil {
		return t.Transport.WriteFrame(ctx, f)
	}
	select {
	case t.started <- bytes.Clone(f):
	case <-gate:
	case <-t.closed:
		return ccidtest.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-gate:
		return t.Transport.WriteFrame(ctx, f)
	case <-t.closed:
		return ccidtest.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// hold makes later writes wait until open.
func (t *gateTransport) hold() {
	t.mu.Lock()
	t.gate = make(chan struct{})
	t.mu.Unlock()
}

// open lets held and later writes through.
func (t *gateTransport) open() {
	t.mu.Lock()
	if t.gate != nil {
		close(t.gate)
		t.gate = nil
	}
	t.mu.Unlock()
}

// Close ends the transport, also for a held write.
func (t *gateTransport) Close() {
	t.closeOnce.Do(func() { close(t.closed) })
	t.Transport.Close()
}

// gateSetup is a reader with a test card in slot 0 serving a gateTransport under its own cancellable context.
type gateSetup struct {
	t      *testing.T
	ctx    context.Context // bounds the test
	cancel context.CancelFunc
	r      *ccid.Reader
	tr     *gateTransport
	card   *ccidtest.Card
	clock  *ccidtest.ManualClock
	done   chan error
}

func newGateSetup(t *testing.T, mod func(*ccid.Config)) *gateSetup {
	t.Helper()
	ctx, stop := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(stop)
	serveCtx, cancel := context.WithCancel(ctx)
	g := &gateSetup{t: t, ctx: ctx, cancel: cancel, tr: newGateTransport(), card: ccidtest.NewCard(nil),
		clock: ccidtest.NewManualClock(), done: make(chan error, 1)}
	cfg := ccid.DefaultConfig()
	cfg.Clock = g.clock
	if mod != nil {
		mod(&cfg)
	}
	r, err := ccid.NewReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Insert(0, g.card); err != nil {
		t.Fatal(err)
	}
	g.r = r
	go func() { g.done <- r.Serve(serveCtx, g.tr) }()
	t.Cleanup(func() {
		g.tr.Close()
		cancel()
		select {
		case <-g.done:
		case <-time.After(testTimeout): // a bound, not a pause: Serve normally returns at once
			t.Error("Serve did not return after Close and cancel")
		}
	})
	return g
}

func (g *gateSetup) send(m ccid.Message) {
	g.t.Helper()
	if err := g.tr.SendMessage(g.ctx, m); err != nil {
		g.t.Fatalf("send %v: %v", m, err)
	}
}

func (g *gateSetup) recv() ccid.Message {
	g.t.Helper()
	m, err := g.tr.RecvMessage(g.ctx)
	if err != nil {
		g.t.Fatal(err)
	}
	return m
}

// blocked waits until the writer is blocked writing a frame and returns it.
func (g *gateSetup) blocked() ccid.Message {
	g.t.Helper()
	select {
	case f := <-g.tr.started:
		m, err := ccid.ParseMessage(f)
		if err != nil {
			g.t.Fatal(err)
		}
		return m
	case <-g.ctx.Done():
		g.t.Fatal("no write started")
		return ccid.Message{}
	}
}

func (g *gateSetup) powerOn() {
	g.t.Helper()
	g.send(ccid.NewIccPowerOn(0, 0xF0, 0))
	if m := g.recv(); m.Type != ccid.MsgDataBlock || m.Status() != 0 {
		g.t.Fatalf("PowerOn answered %v", m)
	}
}

// TestBlockedWriteKeepsReading: while the host leaves the first answer unread (its WriteFrame blocks), the
// reader still reads and handles the next commands, and once the host reads, every answer comes out in the
// order the commands came. Without the queue the dispatcher itself blocks in WriteFrame and the second Send
// never returns.
func TestBlockedWriteKeepsReading(t *testing.T) {
	type step struct {
		m    ccid.Message
		want want
	}
	status := func(seq byte) step {
		return step{ccid.NewGetSlotStatus(0, seq), want{ccid.MsgSlotStatus, 0, seq, 0, 0, 0, nil}}
	}
	apdu := []byte{0x00, 0xCA, 0x00, 0x6E}
	xfr := func(seq byte) step {
		return step{ccid.NewXfrBlock(0, seq, 0, 0, apdu), want{ccid.MsgDataBlock, 0, seq, 0, 0, 0, append(bytes.Clone(apdu), 0x90, 0x00)}}
	}
	long := append(pattern(300), 0x90, 0x00) // two blocks of at most 261 bytes
	for _, tc := range []struct {
		name  string
		first step // its answer stays unread
		next  []step
	}{
		// The dispatcher's own answer blocked, then more of them and a card operation.
		{"dispatcher answer blocked", status(1), []step{status(2),
			{ccid.NewGetParameters(0, 3), want{ccid.MsgParameters, 0, 3, 0, 0, ccid.ProtocolT1, []byte{0x18, 0x10, 0xFF, 0x75, 0x00, 0xFE, 0x00}}}, xfr(4)}},
		// A slot worker's answer blocked, then the dispatcher's and another card operation.
		{"worker answer blocked", xfr(1), []step{status(2), status(3), xfr(4)}},
		// A response chain: the host asks for the next block while the first is unread.
		{"response chain", step{ccid.NewXfrBlock(0, 1, 0, 0, []byte{0xEE}), want{ccid.MsgDataBlock, 0, 1, 0, 0, byte(ccid.ChainBegin), long[:261]}},
			[]step{{ccid.NewXfrBlock(0, 2, 0, ccid.ChainEmpty, nil), want{ccid.MsgDataBlock, 0, 2, 0, 0, byte(ccid.ChainEnd), long[261:]}}, status(3)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateSetup(t, func(c *ccid.Config) { c.Descriptor.MaxCCIDMessageLength = 271 })
			g.card.Answer([]byte{0xEE}, long)
			g.powerOn()
			g.tr.hold()
			g.send(tc.first.m)
			if m := g.blocked(); m.Seq != tc.first.m.Seq {
				t.Fatalf("blocked write of %v, want the answer to bSeq %d", m, tc.first.m.Seq)
			}
			for _, s := range tc.next {
				g.send(s.m) // returns once the reader has read it: bulk-OUT is not stalled
			}
			g.tr.open()
			for _, s := range append([]step{tc.first}, tc.next...) {
				checkMsg(t, g.recv(), s.want)
			}
			// One more exchange, then nothing else may be left.
			g.send(ccid.NewGetSlotStatus(0, 9))
			checkMsg(t, g.recv(), status(9).want)
			if n := g.tr.Pending(); n != 0 {
				t.Errorf("%d unexpected frames", n)
			}
		})
	}
}

// TestShutdownWithBlockedWrite: Serve returns promptly when it ends while the host leaves an answer unread,
// whether the transport ends (the dispatcher sees EOF) or the context is cancelled. Without the queue the
// dispatcher sits in the blocked WriteFrame and never sees the EOF.
func TestShutdownWithBlockedWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(g *gateSetup)
		want error
	}{
		{"transport EOF", func(g *gateSetup) { g.tr.Transport.Close() }, io.EOF}, // the held write itself is not failed
		{"context cancelled", func(g *gateSetup) { g.cancel() }, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateSetup(t, nil)
			g.tr.hold()
			g.send(ccid.NewGetSlotStatus(0, 1))
			g.blocked()
			tc.stop(g)
			select {
			case err := <-g.done:
				if !errors.Is(err, tc.want) {
					t.Errorf("Serve = %v, want %v", err, tc.want)
				}
				g.done <- err // for the cleanup
			case <-g.ctx.Done():
				t.Fatal("Serve did not return")
			}
		})
	}
}

// orderInterceptor records every device frame it sees and holds the one with bSeq 1 until release is closed,
// as a fault plan's delay does.
type orderInterceptor struct {
	release chan struct{}
	mu      sync.Mutex
	seen    []string
}

func (*orderInterceptor) Command(_ context.Context, f []byte) []byte { return f }

func (i *orderInterceptor) Answer(ctx context.Context, f []byte, write func([]byte) error) error {
	i.mu.Lock()
	i.seen = append(i.seen, frameKey(f))
	i.mu.Unlock()
	if f[6] == 1 {
		select {
		case <-i.release:
		case <-ctx.Done():
			return nil
		}
	}
	return write(f)
}

// frameKey names a device frame by type, bSeq and bStatus (0x80: time extension).
func frameKey(f []byte) string { return fmt.Sprintf("%v/%d/%02X", ccid.MessageType(f[0]), f[6], f[7]) }

// TestInterceptorOrder: the Interceptor sees every device frame once, in the order the reader produced them
// (time extensions before their answer), and the host reads them in that order; a delay in Answer holds up
// the frames behind it but not the reading and handling of commands.
func TestInterceptorOrder(t *testing.T) {
	icpt := &orderInterceptor{release: make(chan struct{})}
	g := newGateSetup(t, func(c *ccid.Config) { c.Interceptor = icpt })
	g.powerOn()                         // bSeq 0xF0
	g.send(ccid.NewGetSlotStatus(0, 1)) // its answer is delayed by the interceptor
	g.send(ccid.NewGetParameters(0, 2))
	g.card.Block()
	g.send(ccid.NewXfrBlock(0, 3, 0, 0, []byte{0x00, 0xCA, 0x00, 0x6E}))
	select {
	case <-g.card.Started():
	case <-g.ctx.Done():
		t.Fatal("XfrBlock not handled while an answer is delayed")
	}
	for range 2 {
		if err := g.clock.Tick(g.ctx); err != nil {
			t.Fatal(err)
		}
	}
	g.send(ccid.NewGetSlotStatus(0, 4)) // busy slot: CMD_SLOT_BUSY
	// A frame too short to answer: once the reader has taken it, it has handled bSeq 4 (before the release).
	if err := g.tr.Send(g.ctx, []byte{0x65}); err != nil {
		t.Fatal(err)
	}
	if err := g.card.Release(g.ctx, nil); err != nil {
		t.Fatal(err)
	}
	close(icpt.release)
	var got []string
	for len(got) < 6 {
		f, err := g.tr.Recv(g.ctx)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		got = append(got, frameKey(f))
	}
	g.send(ccid.NewGetSlotStatus(0, 5)) // nothing more behind
	if f, err := g.tr.Recv(g.ctx); err != nil || frameKey(f) != "RDR_to_PC_SlotStatus/5/00" {
		t.Fatalf("last frame %s, %v", frameKey(f), err)
	}
	icpt.mu.Lock()
	seen := icpt.seen[1 : len(icpt.seen)-1] // without the PowerOn answer and the last
	icpt.mu.Unlock()
	if fmt.Sprint(seen) != fmt.Sprint(got) {
		t.Errorf("interceptor saw %v\nhost read %v", seen, got)
	}
	// The busy reply may come before or after the time extensions (the ticks and the command race), but the
	// rest of the order is fixed.
	var fixed []string
	for _, k := range got {
		if k != "RDR_to_PC_SlotStatus/4/40" {
			fixed = append(fixed, k)
		}
	}
	want := []string{"RDR_to_PC_SlotStatus/1/00", "RDR_to_PC_Parameters/2/00", "RDR_to_PC_DataBlock/3/80",
		"RDR_to_PC_DataBlock/3/80", "RDR_to_PC_DataBlock/3/00"}
	if len(fixed) != len(want) || fmt.Sprint(fixed) != fmt.Sprint(want) {
		t.Errorf("frames %v, want %v with one busy reply to bSeq 4", got, want)
	}
}

// fullLog signals each time the writer reports a full queue, with the bSeq of the frame that waits.
type fullLog struct {
	slog.Handler
	full chan byte
}

func (h fullLog) Enabled(context.Context, slog.Level) bool { return true }

func (h fullLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "ccid: bulk-IN queue full (host not reading): waiting before queueing more" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "seq" {
				h.full <- byte(a.Value.Uint64())
			}
			return true
		})
	}
	return nil
}

// TestQueueFull: with one write held, 16 more frames queue; the next producer waits (no frame is dropped)
// until the host reads, or until Serve ends, which does not deadlock although the dispatcher is the producer
// that waits.
func TestQueueFull(t *testing.T) {
	const queued = 16
	for _, tc := range []struct {
		name string
		end  func(g *gateSetup)
		want error // Serve's error; nil: the host reads everything
	}{
		{"host reads", func(g *gateSetup) { g.tr.open() }, nil},
		{"context cancelled", func(g *gateSetup) { g.cancel() }, context.Canceled},
		{"transport closed", func(g *gateSetup) { g.tr.Close() }, io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			full := make(chan byte, 4)
			g := newGateSetup(t, func(c *ccid.Config) {
				c.Logger = slog.New(fullLog{Handler: slog.DiscardHandler, full: full})
			})
			g.tr.hold()
			g.send(ccid.NewGetSlotStatus(0, 0))
			g.blocked()
			for seq := 1; seq <= queued+1; seq++ {
				g.send(ccid.NewGetSlotStatus(0, byte(seq)))
			}
			// The 16 answers after the held one fit; the 17th waits in the dispatcher.
			select {
			case seq := <-full:
				if seq != queued+1 {
					t.Fatalf("queue full at bSeq %d, want %d", seq, queued+1)
				}
			case <-g.ctx.Done():
				t.Fatal("the queue never filled")
			}
			tc.end(g)
			if tc.want != nil {
				select {
				case err := <-g.done:
					if !errors.Is(err, tc.want) {
						t.Errorf("Serve = %v, want %v", err, tc.want)
					}
					g.done <- err
				case <-g.ctx.Done():
					t.Fatal("Serve did not return")
				}
				return
			}
			for seq := 0; seq <= queued+2; seq++ {
				if seq == queued+2 {
					g.send(ccid.NewGetSlotStatus(0, byte(seq))) // reading goes on
				}
				if m := g.recv(); m.Seq != byte(seq) {
					t.Fatalf("answer %v, want bSeq %d (none dropped, in order)", m, seq)
				}
			}
			if len(full) != 0 {
				t.Errorf("queue reported full again at bSeq %d", <-full)
			}
		})
	}
}
