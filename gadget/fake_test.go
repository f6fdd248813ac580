package gadget

import (
	"context"
	"encoding/binary"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// packet is what one read(2) on a fake endpoint returns.
type packet struct {
	data []byte
	err  error
}

// fakeEP is an endpoint file: reads take queued packets, writes are recorded; once disabled, both fail with
// ESHUTDOWN as f_fs does.
type fakeEP struct {
	t        testing.TB
	name     string
	mps      int
	packets  chan packet
	writes   chan []byte
	disabled chan struct{}
	once     sync.Once
	mu       sync.Mutex
	closed   bool
	reads    int
	halts    int // I/O in the wrong direction (f_fs halts the endpoint and answers EBADMSG)
}

// isIn reports whether the fake is an IN endpoint.
func (e *fakeEP) isIn() bool { return e.name != fileBulkOut }

func (e *fakeEP) halted() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.halts
}

func newFakeEP(t testing.TB, name string, mps int, disabled chan struct{}) *fakeEP {
	return &fakeEP{t: t, name: name, mps: mps, packets: make(chan packet, 1024), writes: make(chan []byte, 1024), disabled: disabled}
}

func (e *fakeEP) Read(p []byte) (int, error) {
	e.mu.Lock()
	e.reads++
	if e.isIn() {
		e.halts++
		e.mu.Unlock()
		return 0, syscall.EBADMSG
	}
	e.mu.Unlock()
	select {
	case pk := <-e.packets:
		if pk.err != nil {
			return 0, pk.err
		}
		if len(pk.data) > len(p) {
			e.t.Errorf("%s: read(%d) but the host sent a %d-byte packet: reads must be whole packets", e.name, len(p), len(pk.data))
		}
		return copy(p, pk.data), nil
	case <-e.disabled:
		return 0, syscall.ESHUTDOWN
	}
}

func (e *fakeEP) Write(p []byte) (int, error) {
	if !e.isIn() {
		e.mu.Lock()
		e.halts++
		e.mu.Unlock()
		return 0, syscall.EBADMSG
	}
	select {
	case <-e.disabled:
		return 0, syscall.ESHUTDOWN
	default:
	}
	select {
	case e.writes <- append([]byte(nil), p...):
		return len(p), nil
	case <-e.disabled:
		return 0, syscall.ESHUTDOWN
	}
}

func (e *fakeEP) MaxPacketSize() (int, error) { return e.mps, nil }

func (e *fakeEP) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		e.t.Errorf("%s closed twice", e.name)
	}
	e.closed = true
	return nil
}

func (e *fakeEP) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// send queues msg as the host would: packets of mps bytes, the last one short or full, no ZLP.
func (e *fakeEP) send(msg []byte) {
	for len(msg) > 0 {
		n := min(len(msg), e.mps)
		e.packets <- packet{data: msg[:n]}
		msg = msg[n:]
	}
}

// fakeEP0 is ep0: reads return queued event batches; zero-length reads and all writes are recorded as ops.
type fakeEP0 struct {
	events chan []byte
	ops    chan string
	closed chan struct{}
	once   sync.Once
}

func newFakeEP0() *fakeEP0 {
	return &fakeEP0{events: make(chan []byte), ops: make(chan string, 100), closed: make(chan struct{})}
}

func (e *fakeEP0) Read(p []byte) (int, error) {
	if len(p) == 0 {
		e.ops <- "read0"
		return 0, nil
	}
	select {
	case b := <-e.events:
		return copy(p, b), nil
	case <-e.closed:
		return 0, os.ErrClosed
	}
}

func (e *fakeEP0) Write(p []byte) (int, error) {
	if len(p) == 0 {
		e.ops <- "write0"
	} else {
		e.ops <- "write " + hexs(p)
	}
	return len(p), nil
}

func (e *fakeEP0) Close() error {
	e.once.Do(func() { close(e.closed) })
	return nil
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// event encodes one usb_functionfs_event.
func event(typ EventType, s Setup) []byte {
	b := make([]byte, eventSize)
	b[0], b[1] = s.RequestType, s.Request
	binary.LittleEndian.PutUint16(b[2:], s.Value)
	binary.LittleEndian.PutUint16(b[4:], s.Index)
	binary.LittleEndian.PutUint16(b[6:], s.Length)
	b[8] = byte(typ)
	return b
}

// fakeReader echoes every frame back with its first byte set to 0x80 and records aborts.
type fakeReader struct {
	desc   ccid.ClassDescriptor
	notes  chan []byte
	served chan ccid.Transport
	ended  chan error
	aborts chan [2]byte
	// abortOps, when set, also records each Abort in ep0's operation log.
	abortOps chan string
	blockMu  sync.Mutex
}

func newFakeReader() *fakeReader {
	return &fakeReader{
		desc:   ccid.DefaultDescriptor(),
		notes:  make(chan []byte, 4),
		served: make(chan ccid.Transport, 10),
		ended:  make(chan error, 10),
		aborts: make(chan [2]byte, 10),
	}
}

func (r *fakeReader) Serve(ctx context.Context, t ccid.Transport) error {
	r.served <- t
	for {
		f, err := t.ReadFrame(ctx)
		if err != nil {
			r.ended <- err
			return err
		}
		out := append([]byte(nil), f...)
		out[0] = 0x80
		if err := t.WriteFrame(ctx, out); err != nil {
			r.ended <- err
			return err
		}
	}
}

func (r *fakeReader) Abort(slot, seq byte) {
	if r.abortOps != nil {
		r.abortOps <- "abort" // ordered with ep0's operations
	}
	r.aborts <- [2]byte{slot, seq}
}
func (r *fakeReader) Notifications() <-chan []byte     { return r.notes }
func (r *fakeReader) Descriptor() ccid.ClassDescriptor { return r.desc }
