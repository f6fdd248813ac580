package gadget

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// ErrInterrupted reports a transfer that a signal interrupted after it may have moved data: the kernel
// discarded the partial transfer (f_fs returns EINTR), so it is neither retried (a replay) nor reported as done.
var ErrInterrupted = errors.New("transfer interrupted by a signal; USB progress unknown, not replayed")

// defaultMaxFrame bounds reassembly when the class descriptor gives no dwMaxCCIDMessageLength.
const defaultMaxFrame = ccid.HeaderSize + 65536

// transport moves whole CCID messages over the bulk endpoints of one host session. It implements
// ccid.Transport.
type transport struct {
	in, out       endpoint
	mpsIn, mpsOut int
	maxFrame      int
	log           *slog.Logger
	pkt           []byte
	frame         []byte // reused: the reader keeps no frame past the next ReadFrame (ccid.Transport)

	wmu     sync.Mutex   // one writer at a time, so a time extension never splits a response
	skipZLP *atomic.Bool // if set and true, the next ZLP is skipped (and the flag cleared); may be nil
}

// newTransport asks the endpoints for their current wMaxPacketSize (it depends on the speed the host chose).
func newTransport(in, out endpoint, maxMessage uint32, log *slog.Logger) (*transport, error) {
	mpsIn, err := in.MaxPacketSize()
	if err != nil {
		return nil, fmt.Errorf("gadget: bulk-in wMaxPacketSize: %w", err)
	}
	mpsOut, err := out.MaxPacketSize()
	if err != nil {
		return nil, fmt.Errorf("gadget: bulk-out wMaxPacketSize: %w", err)
	}
	if mpsIn <= 0 || mpsOut < ccid.HeaderSize {
		return nil, fmt.Errorf("gadget: bad wMaxPacketSize in %d out %d", mpsIn, mpsOut)
	}
	max := int(maxMessage)
	if max < ccid.HeaderSize {
		max = defaultMaxFrame
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &transport{in: in, out: out, mpsIn: mpsIn, mpsOut: mpsOut, maxFrame: max, log: log, pkt: make([]byte, mpsOut)}, nil
}

// ReadFrame reads one PC_to_RDR message. It reads one packet per read(2) (so a read that a signal interrupts
// has moved no data and is simply repeated), takes 10+dwLength from the header and reads on until it has that
// many bytes or the host ends the transfer with a short packet; hosts send no ZLP after a message that fills
// its last packet. A stray ZLP or a first packet shorter than a header is dropped. A transfer that ends early
// is returned as it came (shorter than its dwLength), for the reader to refuse; one longer than the reader's
// dwMaxCCIDMessageLength is read to its end and returned cut at that length. The frame is valid until the next
// call.
func (t *transport) ReadFrame(ctx context.Context) ([]byte, error) {
	for {
		n, err := t.readPacket(ctx)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			continue // ZLP from a host that sends them
		}
		if n < ccid.HeaderSize {
			t.log.Warn("gadget: dropped bulk-out packet shorter than a CCID header", "len", n, "data", fmt.Sprintf("% x", t.pkt[:n]))
			continue
		}
		total, err := ccid.FrameLength(t.pkt[:n])
		if err != nil {
			total = math.MaxInt // dwLength beyond int: read to the end of the transfer
		}
		frame := append(t.frame[:0], t.pkt[:min(n, t.maxFrame)]...)
		got, short := n, n < t.mpsOut
		for got < total && !short {
			n, err := t.readPacket(ctx)
			if err != nil {
				return nil, err
			}
			if room := t.maxFrame - len(frame); room > 0 {
				frame = append(frame, t.pkt[:min(n, room)]...)
			}
			got += n
			short = n < t.mpsOut
		}
		t.frame = frame
		if got != total {
			t.log.Warn("gadget: bulk-out transfer length differs from its header", "got", got, "dwLength+10", total)
		}
		return frame, nil
	}
}

func (t *transport) readPacket(ctx context.Context) (int, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n, err := t.out.Read(t.pkt[:t.mpsOut])
		if errors.Is(err, syscall.EINTR) {
			continue // a one-packet request that did not complete moved no data
		}
		if err != nil {
			return 0, endpointError("bulk-out", err)
		}
		return n, nil
	}
}

// WriteFrame sends one RDR_to_PC message in one write(2), then a zero-length packet if the message fills its
// last packet, so the host's read ends. It never retries: an interrupted write returns ErrInterrupted.
//
// ctx is checked before the write only: a write(2) the host does not read returns when the endpoint is
// disabled (ESHUTDOWN, wrapping io.EOF), like the bulk-OUT read. Every end of a host session disables the
// endpoints (DISABLE, a new ENABLE, UNBIND; Run asks for the UDC to be unbound before its context ends), which
// is what lets ccid.Reader.Serve, which waits for its writer, return.
func (t *transport) WriteFrame(ctx context.Context, frame []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	n, err := t.in.Write(frame)
	if err != nil {
		return endpointError("bulk-in", err)
	}
	if n != len(frame) {
		return fmt.Errorf("gadget: bulk-in: short write %d of %d bytes", n, len(frame))
	}
	if len(frame)%t.mpsIn == 0 {
		if t.skipZLP != nil && t.skipZLP.CompareAndSwap(true, false) {
			t.log.Info("gadget: fault: ZLP skipped after a full-packet message", "len", len(frame))
			return nil
		}
		if _, err := t.in.Write(nil); err != nil {
			return endpointError("bulk-in ZLP", err)
		}
	}
	return nil
}

// endpointError wraps an endpoint failure: ESHUTDOWN (endpoint disabled by the host or by an unbind) wraps
// io.EOF, since the transport is over; EINTR wraps ErrInterrupted.
func endpointError(what string, err error) error {
	switch {
	case errors.Is(err, syscall.ESHUTDOWN), errors.Is(err, syscall.ENODEV), errors.Is(err, syscall.EBADF):
		return fmt.Errorf("gadget: %s: endpoint disabled (%v): %w", what, err, io.EOF)
	case errors.Is(err, syscall.EINTR):
		return fmt.Errorf("gadget: %s: %w", what, ErrInterrupted)
	}
	return fmt.Errorf("gadget: %s: %w", what, err)
}

// isStallAck reports whether err is what the kernel answers to a deliberate ep0 stall.
func isStallAck(err error) bool { return errors.Is(err, syscall.EL2HLT) }

// isHaltAck reports whether err is what f_fs answers to I/O in the wrong direction on an endpoint: the halt
// was set (EBADMSG).
func isHaltAck(err error) bool { return errors.Is(err, syscall.EBADMSG) }
