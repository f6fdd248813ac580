package gadget

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// ErrNoSession reports a USB fault asked for while no host session has the endpoints enabled.
var ErrNoSession = errors.New("gadget: endpoints not enabled (no host session)")

// ErrNoAttach reports Disconnect or Reenumerate on a Function opened without Options.Detach and Options.Attach.
var ErrNoAttach = errors.New("gadget: no Detach/Attach callbacks (unbinding the UDC is configfs's job)")

// session is the endpoint set of the current host session.
type session struct {
	in, out, intr endpoint
	t             *transport
}

func (f *Function) setSession(s *session) {
	f.mu.Lock()
	f.cur = s
	f.mu.Unlock()
}

func (f *Function) session() *session {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

// SkipZLP makes the next bulk-IN message whose length is a multiple of wMaxPacketSize go without the
// zero-length packet that ends it, so the host's read waits for more (a missing-ZLP fault).
func (f *Function) SkipZLP() { f.skipZLP.Store(true) }

// StrayZLP writes a zero-length packet on bulk-IN now, between messages (the host's next read gets 0 bytes).
func (f *Function) StrayZLP(ctx context.Context) error {
	s := f.session()
	if s == nil {
		return ErrNoSession
	}
	s.t.wmu.Lock()
	defer s.t.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := s.in.Write(nil); err != nil {
		return endpointError("bulk-in stray ZLP", err)
	}
	f.log.Info("gadget: fault: stray ZLP sent on bulk-in")
	return nil
}

// Halt stalls an endpoint the way FunctionFS does it: I/O in the wrong direction (a read on an IN endpoint, a
// write on an OUT endpoint) sets the halt and fails with EBADMSG, which is the expected answer. The host must
// clear the halt (CLEAR_FEATURE ENDPOINT_HALT) to use the endpoint again. A halt on bulk-out is set in the
// background once the bulk-out read in flight completes (f_fs serialises I/O on one endpoint file).
func (f *Function) Halt(ep ccid.Endpoint) error {
	s := f.session()
	if s == nil {
		return ErrNoSession
	}
	var err error
	switch ep {
	case ccid.EndpointBulkIn:
		s.t.wmu.Lock()
		_, err = s.in.Read(nil)
		s.t.wmu.Unlock()
	case ccid.EndpointBulkOut:
		// f_fs holds the endpoint's mutex through a blocking read, and the bulk-out read of the host's next
		// command is normally in flight: halt in the background, so the answer in progress still goes out.
		// The halt takes effect when that read completes (the OUT transfer after it stalls).
		go func() {
			if _, err := s.out.Write(nil); err != nil && !isHaltAck(err) {
				f.log.Warn("gadget: fault: halt bulk-out", "err", endpointError("halt bulk-out", err))
				return
			}
			f.log.Info("gadget: fault: endpoint halted", "endpoint", ccid.EndpointBulkOut)
		}()
		return nil
	case ccid.EndpointInterruptIn:
		_, err = s.intr.Read(nil)
	default:
		return fmt.Errorf("gadget: halt: unknown endpoint %v", ep)
	}
	if err != nil && !isHaltAck(err) {
		return endpointError("halt "+ep.String(), err)
	}
	f.log.Info("gadget: fault: endpoint halted", "endpoint", ep)
	return nil
}

// Disconnect detaches the gadget from the bus (Options.Detach, an unbind of the UDC), and attaches it again
// (Options.Attach) after d in the background: it returns once detached, since the host session it was called
// from is over. The re-attach is skipped if Run has ended meanwhile.
func (f *Function) Disconnect(ctx context.Context, d time.Duration) error {
	if f.detach == nil || f.attach == nil {
		return ErrNoAttach
	}
	if err := f.detach(); err != nil {
		return fmt.Errorf("gadget: disconnect: %w", err)
	}
	f.log.Info("gadget: fault: detached from the bus", "for", d)
	f.mu.Lock()
	done := f.runDone
	f.mu.Unlock()
	f.reattach.Add(1)
	go func() {
		defer f.reattach.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-done:
			return
		}
		if err := f.attach(); err != nil {
			f.log.Error("gadget: fault: re-attach after disconnect", "err", err)
			return
		}
		f.log.Info("gadget: fault: attached again")
	}()
	return nil
}

// reenumerateGap is how long Reenumerate stays detached: long enough for the host to see the unplug.
const reenumerateGap = 200 * time.Millisecond

// Reenumerate makes the host enumerate the device again: a short Disconnect.
func (f *Function) Reenumerate(ctx context.Context) error {
	return f.Disconnect(ctx, reenumerateGap)
}
