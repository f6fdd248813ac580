package gadget

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// harness runs a Function on fakes. enable/disable act as the kernel does: a DISABLE first fails the
// endpoints' transfers (ESHUTDOWN), then queues the event.
type harness struct {
	t      *testing.T
	ep0    *fakeEP0
	r      *fakeReader
	f      *Function
	cancel context.CancelFunc
	runErr chan error

	mu       sync.Mutex
	disabled chan struct{}
	eps      map[string][]*fakeEP // every endpoint file opened, by name
	mps      int
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, ep0: newFakeEP0(), r: newFakeReader(), eps: map[string][]*fakeEP{}, mps: 512, runErr: make(chan error, 1)}
	h.disabled = make(chan struct{})
	open := func(name string) (endpoint, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		ep := newFakeEP(t, name, h.mps, h.disabled)
		if name == fileIntrIn {
			ep.mps = 8
			ep.writes = make(chan []byte) // the host polls the interrupt endpoint only now and then
		}
		h.eps[name] = append(h.eps[name], ep)
		return ep, nil
	}
	h.f = newFunction(h.ep0, open, h.r, Options{StopTimeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.runErr <- h.f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		h.ep0.Close()
	})
	return h
}

// send delivers events; the send returns once Run has taken them (it reads ep0 again only after handling the
// previous batch), and sync() after it waits until they are handled.
func (h *harness) send(evs ...[]byte) {
	h.t.Helper()
	select {
	case h.ep0.events <- bytes.Join(evs, nil):
	case <-time.After(5 * time.Second):
		h.t.Fatal("Run does not read ep0")
	}
}

// sync waits until every event sent so far is handled.
func (h *harness) sync() { h.send(event(EventResume, Setup{})) }

func (h *harness) endpoint(name string, i int) *fakeEP {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.eps[name][i]
}

func (h *harness) disable(typ EventType) {
	h.mu.Lock()
	close(h.disabled)
	h.disabled = make(chan struct{})
	h.mu.Unlock()
	h.send(event(typ, Setup{}))
}

func (h *harness) op() string {
	h.t.Helper()
	select {
	case op := <-h.ep0.ops:
		return op
	case <-time.After(5 * time.Second):
		h.t.Fatal("no ep0 operation")
		return ""
	}
}

func recv[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// exchange sends a frame on the session's bulk-out endpoint and checks the reader's echo on bulk-in.
func (h *harness) exchange(session int) {
	h.t.Helper()
	msg := frame(byte(session), 600) // two packets at high speed
	h.endpoint(fileBulkOut, session).send(msg)
	got := recv(h.t, h.endpoint(fileBulkIn, session).writes, "bulk-in answer")
	want := append([]byte{0x80}, msg[1:]...)
	if !bytes.Equal(got, want) {
		h.t.Fatalf("session %d: answer % x", session, got[:12])
	}
}

func TestWriteDescriptors(t *testing.T) {
	ep0 := newFakeEP0()
	r := newFakeReader()
	f := newFunction(ep0, nil, r, Options{Interface: "OpenPGP"})
	blob, strs, err := blobs(r, Options{Interface: "OpenPGP"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.writeDescriptors(blob, strs); err != nil {
		t.Fatal(err)
	}
	if got := <-ep0.ops; got != "write "+hexs(blob) {
		t.Errorf("first write %s", got)
	}
	if got := <-ep0.ops; got != "write "+hexs(Strings("OpenPGP")) {
		t.Errorf("second write %s", got)
	}
	if _, _, err := blobs(r, Options{Interface: "a\x00b"}); err == nil {
		t.Error("NUL in interface string accepted")
	}
}

func TestSessionsAcrossDisableAndUnbind(t *testing.T) {
	h := newHarness(t)
	h.send(event(EventBind, Setup{}), event(EventEnable, Setup{}))
	recv(t, h.r.served, "Serve")
	h.exchange(0)

	// SET_INTERFACE from scdaemon: DISABLE then ENABLE. The old loop ends, the files are reopened.
	h.disable(EventDisable)
	if err := recv(t, h.r.ended, "Serve end"); !errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve ended with %v, want io.EOF or context.Canceled", err)
	}
	h.send(event(EventEnable, Setup{}))
	recv(t, h.r.served, "second Serve")
	for _, name := range []string{fileBulkIn, fileBulkOut, fileIntrIn} {
		if !h.endpoint(name, 0).isClosed() {
			t.Errorf("%s of the first session not closed", name)
		}
	}
	h.exchange(1)

	// Replug: UNBIND, BIND, ENABLE.
	h.disable(EventUnbind)
	recv(t, h.r.ended, "Serve end after unbind")
	h.send(event(EventBind, Setup{}))
	h.send(event(EventEnable, Setup{}))
	recv(t, h.r.served, "third Serve")
	h.exchange(2)

	h.sync()
	st := h.f.Stats()
	if st.Sessions != 3 || st.Events["ENABLE"] != 3 || st.Events["DISABLE"] != 1 || st.Events["UNBIND"] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestEnableWithoutDisable(t *testing.T) {
	// f_fs's set_alt (SET_INTERFACE) disables the endpoints and queues only ENABLE.
	h := newHarness(t)
	h.send(event(EventBind, Setup{}), event(EventEnable, Setup{}))
	recv(t, h.r.served, "Serve")
	h.exchange(0)
	h.disable(EventEnable)
	recv(t, h.r.ended, "first Serve end")
	recv(t, h.r.served, "second Serve")
	h.exchange(1)
	if !h.endpoint(fileBulkOut, 0).isClosed() {
		t.Error("first session's bulk-out not closed")
	}
}

func TestNotifications(t *testing.T) {
	h := newHarness(t)
	h.send(event(EventBind, Setup{}), event(EventEnable, Setup{}))
	recv(t, h.r.served, "Serve")
	h.r.notes <- []byte{0x50, 0x03}
	// While the host has not polled the interrupt endpoint, bulk traffic goes on.
	h.exchange(0)
	if got := recv(t, h.endpoint(fileIntrIn, 0).writes, "interrupt"); !bytes.Equal(got, []byte{0x50, 0x03}) {
		t.Fatalf("interrupt wrote % x", got)
	}

	// Notifications queued when the host session ends are dropped with it.
	h.r.notes <- []byte{0x50, 0x02}
	h.r.notes <- []byte{0x50, 0x03}
	h.disable(EventDisable)
	h.sync()
	if n := len(h.r.notes); n != 0 {
		t.Fatalf("%d notifications still queued after DISABLE", n)
	}
	h.send(event(EventEnable, Setup{}))
	recv(t, h.r.served, "Serve")
	h.r.notes <- []byte{0x50, 0x01}
	if got := recv(t, h.endpoint(fileIntrIn, 1).writes, "interrupt"); !bytes.Equal(got, []byte{0x50, 0x01}) {
		t.Fatalf("interrupt after re-enable wrote % x", got)
	}
}

func TestControlRequests(t *testing.T) {
	h := newHarness(t)
	h.send(event(EventBind, Setup{}))

	// ABORT: the reader learns slot and sequence before the status stage (a zero-length read) lets the host
	// send its next command; the other order lets that command meet a half-paired abort (CMD_ABORTED).
	h.r.abortOps = h.ep0.ops
	h.send(event(EventSetup, Setup{RequestType: 0x21, Request: 0x01, Value: 0x2A00}))
	if op := h.op(); op != "abort" {
		t.Fatalf("ABORT: first %s, want the reader's Abort before the status stage", op)
	}
	if op := h.op(); op != "read0" {
		t.Fatalf("ABORT answered with %s", op)
	}
	if got := recv(t, h.r.aborts, "Abort"); got != [2]byte{0, 0x2A} {
		t.Fatalf("Abort(slot %d, seq %#x)", got[0], got[1])
	}

	// No clock or data-rate list in the descriptor: stall (a read on an IN request).
	h.send(event(EventSetup, Setup{RequestType: 0xA1, Request: 0x02, Length: 4}))
	if op := h.op(); op != "read0" {
		t.Fatalf("GET_CLOCK_FREQUENCIES answered with %s", op)
	}
	h.send(event(EventSetup, Setup{RequestType: 0xA1, Request: 0x03, Length: 4}))
	if op := h.op(); op != "read0" {
		t.Fatalf("GET_DATA_RATES answered with %s", op)
	}
	// Unknown requests are stalled in the wrong direction.
	h.send(event(EventSetup, Setup{RequestType: 0x21, Request: 0x7F}))
	if op := h.op(); op != "write0" {
		t.Fatalf("unknown OUT request answered with %s", op)
	}
	h.send(event(EventSetup, Setup{RequestType: 0xC0, Request: 0x01, Length: 8}))
	if op := h.op(); op != "read0" {
		t.Fatalf("unknown IN request answered with %s", op)
	}
	h.sync()
	if st := h.f.Stats(); st.Aborts != 1 || st.Stalls != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestControlListsFromDescriptor(t *testing.T) {
	h := newHarness(t)
	h.r.desc.NumClockSupported, h.r.desc.ClockFrequencies = 2, []uint32{4000, 8000}
	h.r.desc.NumDataRatesSupported, h.r.desc.DataRates = 1, []uint32{10752}
	h.send(event(EventSetup, Setup{RequestType: 0xA1, Request: 0x02, Length: 8}))
	if op := h.op(); op != "write a00f0000401f0000" {
		t.Fatalf("GET_CLOCK_FREQUENCIES: %s", op)
	}
	h.send(event(EventSetup, Setup{RequestType: 0xA1, Request: 0x02, Length: 4})) // clipped to wLength
	if op := h.op(); op != "write a00f0000" {
		t.Fatalf("GET_CLOCK_FREQUENCIES clipped: %s", op)
	}
	h.send(event(EventSetup, Setup{RequestType: 0xA1, Request: 0x03, Length: 4}))
	if op := h.op(); op != "write 002a0000" {
		t.Fatalf("GET_DATA_RATES: %s", op)
	}
}

func TestRunStops(t *testing.T) {
	h := newHarness(t)
	h.send(event(EventBind, Setup{}), event(EventEnable, Setup{}))
	recv(t, h.r.served, "Serve")
	// As `ccid-gadget up` does on SIGTERM: the UDC is unbound (transfers fail), then Run's context ends.
	h.mu.Lock()
	close(h.disabled)
	h.mu.Unlock()
	start := time.Now()
	h.cancel()
	if err := recv(t, h.runErr, "Run"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Run took %v to stop", d)
	}
	select {
	case <-h.ep0.closed:
	default:
		t.Error("ep0 not closed")
	}
}

func TestRunStopsWithStuckEndpoints(t *testing.T) {
	// The UDC could not be unbound: the bulk read never returns. Run still returns within StopTimeout.
	h := newHarness(t)
	h.f.stopIn = 100 * time.Millisecond
	h.send(event(EventEnable, Setup{}))
	recv(t, h.r.served, "Serve")
	h.cancel()
	if err := recv(t, h.runErr, "Run"); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestRunEP0Error(t *testing.T) {
	h := newHarness(t)
	h.ep0.Close()
	if err := recv(t, h.runErr, "Run"); err == nil {
		t.Fatal("Run returned nil after ep0 failed")
	}
}
