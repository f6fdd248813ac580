package ccid_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/ccidtest"
)

// syncBuffer is a bytes.Buffer safe for the reader's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestEdgeFrames(t *testing.T) {
	var logs syncBuffer
	h := newHarness(t, func(c *ccid.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	// Too short to carry bSeq: dropped without an answer; the next command is answered normally.
	h.sendRaw([]byte{0x65, 0, 0, 0})
	h.check(h.exchange(ccid.NewGetSlotStatus(0, 1)), want{ccid.MsgSlotStatus, 0, 1, 0x01, 0, 1, nil})
	// PC_to_RDR_Abort with abData.
	h.check(h.exchange(ccid.Message{Type: ccid.MsgAbort, Seq: 2, Data: []byte{1}}), want{ccid.MsgSlotStatus, 0, 2, 0x41, 1, 0, nil})
	h.check(h.exchange(ccid.NewGetSlotStatus(0, 3)), want{ccid.MsgSlotStatus, 0, 3, 0x01, 0, 1, nil})
	for _, s := range []string{"PC_to_RDR_GetSlotStatus", "dropped a frame too short"} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, logs.String())
		}
	}
}

type failingPowerOff struct{ *ccidtest.Card }

func (failingPowerOff) PowerOff() error { return errors.New("stuck") }

func TestPowerOffFailure(t *testing.T) {
	h := newHarness(t, nil)
	if err := h.r.Remove(0); err != nil {
		t.Fatal(err)
	}
	if err := h.r.Insert(0, failingPowerOff{ccidtest.NewCard(nil)}); err != nil {
		t.Fatal(err)
	}
	h.powerOn()
	h.check(h.exchange(ccid.NewIccPowerOff(0, 1)), want{ccid.MsgSlotStatus, 0, 1, 0x41, ccid.HWError, 1, nil})
	h.check(h.exchange(ccid.NewGetSlotStatus(0, 2)), want{ccid.MsgSlotStatus, 0, 2, 0x01, 0, 1, nil})
}

func TestServeNilTransport(t *testing.T) {
	r, err := ccid.NewReader(ccid.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Serve(context.Background(), nil); err == nil {
		t.Error("Serve(nil) returned nil")
	}
}

func TestErrorStrings(t *testing.T) {
	_, err := ccid.ParseMessage([]byte{0x6F, 5, 0, 0, 0, 0, 1, 0, 0, 0})
	if err == nil || !strings.Contains(err.Error(), "PC_to_RDR_XfrBlock") || !strings.Contains(err.Error(), "offset 1") {
		t.Errorf("FrameError text %q", err)
	}
	if s := ccid.MessageType(0x99).String(); s != "MessageType(0x99)" {
		t.Errorf("unknown type prints %q", s)
	}
	if s := ccid.SlotError(0xE5).String(); s != "SlotError(0xE5)" {
		t.Errorf("unknown error prints %q", s)
	}
}

// cancelOnCommand cancels Serve's context while the reader handles a command.
type cancelOnCommand struct{ cancel context.CancelFunc }

func (c cancelOnCommand) Command(_ context.Context, f []byte) []byte { c.cancel(); return f }
func (cancelOnCommand) Answer(_ context.Context, f []byte, write func([]byte) error) error {
	return write(f)
}

// TestServeEndsWithQueuedOperation ends Serve while a PowerOn is queued for the slot's worker: the slot must
// not stay busy for the next Serve.
func TestServeEndsWithQueuedOperation(t *testing.T) {
	for i := 0; i < 20; i++ {
		serveCtx, cancel := context.WithCancel(context.Background())
		cfg := ccid.DefaultConfig()
		cfg.Interceptor = cancelOnCommand{cancel}
		r, err := ccid.NewReader(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Insert(0, ccidtest.NewCard(nil)); err != nil {
			t.Fatal(err)
		}
		tr := ccidtest.NewTransport()
		done := make(chan error, 1)
		go func() { done <- r.Serve(serveCtx, tr) }()
		ctx, stop := context.WithTimeout(context.Background(), testTimeout)
		if err := tr.SendMessage(ctx, ccid.NewIccPowerOn(0, 1, 0)); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve = %v", err)
		}
		tr2 := ccidtest.NewTransport()
		go func() { done <- r.Serve(ctx, tr2) }()
		a, err := tr2.Exchange(ctx, ccid.NewGetSlotStatus(0, 2))
		if err != nil {
			t.Fatal(err)
		}
		if a.Error() == ccid.CmdSlotBusy {
			t.Fatalf("round %d: slot still busy after Serve ended: %v", i, a)
		}
		tr2.Close()
		<-done
		stop()
	}
}

// deafTransport's ReadFrame ignores its context, as a blocking read on an endpoint file does.
type deafTransport struct {
	*ccidtest.Transport
	frames chan []byte
}

func (t deafTransport) ReadFrame(context.Context) ([]byte, error) {
	f, ok := <-t.frames
	if !ok {
		return nil, ccidtest.ErrClosed
	}
	return f, nil
}

// waitingCard's Transmit waits for its context and then closes cancelled.
type waitingCard struct {
	started, cancelled chan struct{}
}

func (c waitingCard) PowerOn(context.Context) ([]byte, error) { return []byte{0x3B, 0x00}, nil }
func (c waitingCard) PowerOff() error                         { return nil }
func (c waitingCard) Transmit(ctx context.Context, _ []byte) ([]byte, error) {
	close(c.started)
	<-ctx.Done()
	close(c.cancelled)
	return nil, ctx.Err()
}

// TestServeContextCancelsCard: cancelling Serve's context cancels the card operation in flight even while the
// transport's ReadFrame does not return.
func TestServeContextCancelsCard(t *testing.T) {
	r, err := ccid.NewReader(ccid.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	card := waitingCard{make(chan struct{}), make(chan struct{})}
	if err := r.Insert(0, card); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	serveCtx, stopServe := context.WithCancel(ctx)
	tr := deafTransport{ccidtest.NewTransport(), make(chan []byte)}
	done := make(chan error, 1)
	go func() { done <- r.Serve(serveCtx, tr) }()
	power, _ := ccid.NewIccPowerOn(0, 1, 0).MarshalBinary()
	tr.frames <- power
	if _, err := tr.Recv(ctx); err != nil {
		t.Fatal(err)
	}
	xfr, _ := ccid.NewXfrBlock(0, 2, 0, 0, []byte{1}).MarshalBinary()
	tr.frames <- xfr
	<-card.started
	stopServe()
	select {
	case <-card.cancelled:
	case <-ctx.Done():
		t.Fatal("card operation not cancelled")
	}
	close(tr.frames)
	if err := <-done; !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
		t.Errorf("Serve = %v", err)
	}
}

// overlapTransport fails the test if two WriteFrame calls ever overlap.
type overlapTransport struct {
	*ccidtest.Transport
	active, overlaps atomic.Int32
}

func (t *overlapTransport) WriteFrame(ctx context.Context, f []byte) error {
	if t.active.Add(1) > 1 {
		t.overlaps.Add(1)
	}
	runtime.Gosched() // widen the window
	defer t.active.Add(-1)
	return t.Transport.WriteFrame(ctx, f)
}

// TestSingleWriter runs time extensions on three busy slots (real timers, 1 ms) while the dispatcher answers
// other commands: writes never overlap and every frame arrives whole.
func TestSingleWriter(t *testing.T) {
	cfg := ccid.DefaultConfig()
	cfg.Descriptor.MaxSlotIndex = 3
	cfg.Descriptor.MaxCCIDBusySlots = 3
	cfg.TimeExtensionInterval = time.Millisecond
	r, err := ccid.NewReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cards := []*ccidtest.Card{ccidtest.NewCard(nil), ccidtest.NewCard(nil), ccidtest.NewCard(nil)}
	tr := &overlapTransport{Transport: ccidtest.NewTransport()}
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, tr) }()
	for i, c := range cards {
		if err := r.Insert(i, c); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Exchange(ctx, ccid.NewIccPowerOn(byte(i), 0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cards {
		c.Block()
		if err := tr.SendMessage(ctx, ccid.NewXfrBlock(byte(i), 1, 0, 0, []byte{byte(i)})); err != nil {
			t.Fatal(err)
		}
		<-c.Started()
	}
	// The host reads bulk-IN all the time, as libusb keeps a transfer queued.
	got := make(chan error, 1)
	go func() {
		for answers := 0; answers < 198+3; {
			m, err := tr.RecvMessage(ctx)
			if err != nil {
				got <- err
				return
			}
			if m.Status() != 0x80 { // not a time extension
				answers++
			}
		}
		got <- nil
	}()
	for seq := 2; seq < 200; seq++ {
		if err := tr.SendMessage(ctx, ccid.NewGetSlotStatus(3, byte(seq))); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cards {
		if err := c.Release(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	tr.Close()
	<-done
	if n := tr.overlaps.Load(); n != 0 {
		t.Errorf("%d overlapping writes", n)
	}
}
