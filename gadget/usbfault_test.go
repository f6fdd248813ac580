package gadget

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

func enabled(t *testing.T) *harness {
	h := newHarness(t)
	h.send(event(EventBind, Setup{}), event(EventEnable, Setup{}))
	recv(t, h.r.served, "Serve")
	return h
}

func TestUSBFaultsWithoutSession(t *testing.T) {
	h := newHarness(t)
	if err := h.f.StrayZLP(context.Background()); !errors.Is(err, ErrNoSession) {
		t.Errorf("StrayZLP before ENABLE: %v, want ErrNoSession", err)
	}
	if err := h.f.Halt(ccid.EndpointBulkIn); !errors.Is(err, ErrNoSession) {
		t.Errorf("Halt before ENABLE: %v, want ErrNoSession", err)
	}
	if err := h.f.Disconnect(context.Background(), time.Millisecond); !errors.Is(err, ErrNoAttach) {
		t.Errorf("Disconnect without callbacks: %v, want ErrNoAttach", err)
	}
	if err := h.f.Reenumerate(context.Background()); !errors.Is(err, ErrNoAttach) {
		t.Errorf("Reenumerate without callbacks: %v, want ErrNoAttach", err)
	}
}

func TestSkipZLP(t *testing.T) {
	h := enabled(t)
	in, out := h.endpoint(fileBulkIn, 0), h.endpoint(fileBulkOut, 0)
	h.f.SkipZLP()
	// A short message keeps the request: it needs no ZLP.
	out.send(frame(1, 10))
	if got := recv(t, in.writes, "short answer"); len(got) != 20 {
		t.Fatalf("wrote %d bytes", len(got))
	}
	// The next full-packet message goes without its ZLP, the one after has it again.
	for i, wantZLP := range []bool{false, true} {
		msg := frame(byte(2+i), 512-10)
		out.send(msg)
		if got := recv(t, in.writes, "answer"); len(got) != 512 {
			t.Fatalf("answer %d: wrote %d bytes", i, len(got))
		}
		// The reader writes the next answer only after reading the next command, so a ZLP, if any, is
		// written before anything else comes.
		out.send(frame(9, 10))
		got := recv(t, in.writes, "ZLP or next answer")
		if zlp := len(got) == 0; zlp != wantZLP {
			t.Fatalf("answer %d: ZLP %v, want %v", i, zlp, wantZLP)
		}
		if wantZLP {
			recv(t, in.writes, "next answer")
		}
	}
}

func TestStrayZLP(t *testing.T) {
	h := enabled(t)
	if err := h.f.StrayZLP(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, h.endpoint(fileBulkIn, 0).writes, "stray ZLP"); len(got) != 0 {
		t.Fatalf("wrote % x, want a ZLP", got)
	}
	h.exchange(0) // the session goes on
}

func TestHalt(t *testing.T) {
	for _, tt := range []struct {
		ep   ccid.Endpoint
		file string
	}{{ccid.EndpointBulkIn, fileBulkIn}, {ccid.EndpointBulkOut, fileBulkOut}, {ccid.EndpointInterruptIn, fileIntrIn}} {
		t.Run(tt.ep.String(), func(t *testing.T) {
			h := enabled(t)
			if err := h.f.Halt(tt.ep); err != nil {
				t.Fatalf("Halt: %v (EBADMSG is the expected answer to a halt)", err)
			}
			ep := h.endpoint(tt.file, 0)
			deadline := time.Now().Add(5 * time.Second) // bulk-out halts in the background
			for ep.halted() != 1 {
				if time.Now().After(deadline) {
					t.Fatalf("%s: %d wrong-direction I/O, want 1", tt.file, ep.halted())
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	h := enabled(t)
	if err := h.f.Halt(ccid.Endpoint(7)); err == nil {
		t.Error("Halt of an unknown endpoint succeeded")
	}
}

func TestDisconnect(t *testing.T) {
	h := enabled(t)
	ops := make(chan string, 10)
	h.f.detach = func() error { ops <- "detach"; return nil }
	h.f.attach = func() error { ops <- "attach"; return nil }
	for _, tt := range []struct {
		name string
		do   func() error
		min  time.Duration
	}{
		{"disconnect", func() error { return h.f.Disconnect(context.Background(), 100*time.Millisecond) }, 100 * time.Millisecond},
		{"reenumerate", func() error { return h.f.Reenumerate(context.Background()) }, reenumerateGap},
	} {
		start := time.Now()
		if err := tt.do(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if op := recv(t, ops, "detach"); op != "detach" {
			t.Fatalf("%s: first %s", tt.name, op)
		}
		if op := recv(t, ops, "attach"); op != "attach" {
			t.Fatalf("%s: then %s", tt.name, op)
		}
		if d := time.Since(start); d < tt.min {
			t.Errorf("%s: attached again after %v, want ≥ %v", tt.name, d, tt.min)
		}
	}

	// Detach fails: the error says so and nothing is re-attached.
	h.f.detach = func() error { return errors.New("udc busy") }
	if err := h.f.Disconnect(context.Background(), time.Millisecond); err == nil || !bytes.Contains([]byte(err.Error()), []byte("udc busy")) {
		t.Fatalf("Disconnect with a failing detach: %v", err)
	}

	// Run ends during the disconnect: no re-attach after it returned.
	h.f.detach = func() error { ops <- "detach"; return nil }
	if err := h.f.Disconnect(context.Background(), time.Hour); err != nil {
		t.Fatal(err)
	}
	recv(t, ops, "detach")
	h.cancel()
	if err := recv(t, h.runErr, "Run end"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case op := <-ops:
		t.Fatalf("%s after Run returned", op)
	default:
	}
}
