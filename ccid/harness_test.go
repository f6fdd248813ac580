package ccid_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/ccidtest"
)

// testTimeout bounds every test that waits on the reader, so a bug shows as a failure, not a hang.
const testTimeout = 20 * time.Second

type harness struct {
	t     testing.TB
	ctx   context.Context
	r     *ccid.Reader
	tr    *ccidtest.Transport
	card  *ccidtest.Card
	clock *ccidtest.ManualClock
	done  chan error
}

// newHarness starts a reader with a test card in slot 0 (unless cfg changes make that impossible) and a
// manual clock. mod may change the config.
func newHarness(t testing.TB, mod func(*ccid.Config)) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	h := &harness{t: t, ctx: ctx, tr: ccidtest.NewTransport(), card: ccidtest.NewCard(nil),
		clock: ccidtest.NewManualClock(), done: make(chan error, 1)}
	cfg := ccid.DefaultConfig()
	cfg.Clock = h.clock
	if mod != nil {
		mod(&cfg)
	}
	r, err := ccid.NewReader(cfg)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	h.r = r
	if err := r.Insert(0, h.card); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	h.drainNotifications()
	go func() { h.done <- r.Serve(ctx, h.tr) }()
	t.Cleanup(h.stop)
	return h
}

// stop closes the transport and checks that Serve ends with io.EOF.
func (h *harness) stop() {
	h.tr.Close()
	select {
	case err := <-h.done:
		if !errors.Is(err, io.EOF) {
			h.t.Errorf("Serve returned %v, want io.EOF", err)
		}
		h.done <- err // later stop calls see it too
	case <-h.ctx.Done():
		h.t.Errorf("Serve did not return after Close")
	}
}

func (h *harness) drainNotifications() {
	for {
		select {
		case <-h.r.Notifications():
		default:
			return
		}
	}
}

func (h *harness) send(m ccid.Message) {
	h.t.Helper()
	if err := h.tr.SendMessage(h.ctx, m); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) sendRaw(b []byte) {
	h.t.Helper()
	if err := h.tr.Send(h.ctx, b); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) recv() ccid.Message {
	h.t.Helper()
	m, err := h.tr.RecvMessage(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

func (h *harness) exchange(m ccid.Message) ccid.Message {
	h.t.Helper()
	h.send(m)
	return h.recv()
}

func (h *harness) powerOn() {
	h.t.Helper()
	a := h.exchange(ccid.NewIccPowerOn(0, 0xF0, 0))
	if a.Type != ccid.MsgDataBlock || a.Status() != 0 {
		h.t.Fatalf("PowerOn answered %v", a)
	}
}

// want describes an expected answer header; data nil means "no abData".
type want struct {
	typ    ccid.MessageType
	slot   byte
	seq    byte
	status byte
	err    ccid.SlotError
	p2     byte
	data   []byte
}

func (h *harness) check(got ccid.Message, w want) {
	h.t.Helper()
	checkMsg(h.t, got, w)
}

func checkMsg(t testing.TB, got ccid.Message, w want) {
	t.Helper()
	if got.Type != w.typ || got.Slot != w.slot || got.Seq != w.seq || got.Status() != w.status ||
		got.Error() != w.err || got.Param[2] != w.p2 || !bytes.Equal(got.Data, w.data) {
		t.Errorf("answer %v data % X\n  want type %v slot %d seq %d status 0x%02X error %v(0x%02X) p2 0x%02X data % X",
			got, trunc(got.Data), w.typ, w.slot, w.seq, w.status, w.err, byte(w.err), w.p2, trunc(w.data))
	}
}

func trunc(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}

// noFrame checks that the reader has written nothing more (it runs after the reader was made to answer
// something later, so a stray frame would already be queued).
func (h *harness) noFrame() {
	h.t.Helper()
	if n := h.tr.Pending(); n != 0 {
		f, _ := h.tr.Recv(h.ctx)
		h.t.Errorf("%d unexpected frame(s), first % X", n, trunc(f))
	}
}

func (h *harness) notification() []byte {
	h.t.Helper()
	select {
	case b := <-h.r.Notifications():
		return b
	case <-h.ctx.Done():
		h.t.Fatal("no notification")
		return nil
	}
}
