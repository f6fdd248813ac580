package trace

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// RecordOptions configure a Recorder.
type RecordOptions struct {
	// Secrets keeps the PIN bytes of VERIFY (INS 20), CHANGE REFERENCE DATA (24) and RESET RETRY COUNTER (2C).
	// Without it they are written as XX in the log (the parser reads them as masked bytes that match anything)
	// and as 00 in the pcap.
	Secrets bool
	Clock   Clock       // nil = RealClock (monotonic readings)
	Pcap    *PcapWriter // nil: no pcap
}

// Recorder is a ccid.Interceptor that writes every frame passing through it in the pcscd debug-log format
// (`%.8d -> 000000 6F 0C …`, the delta in µs since the previous line), so Parse reads a recording back, and
// optionally to a pcap file. Put it outermost (nearest the host) to record what the host sees: fault.Chain(rec,
// faults). Interrupt messages reach it through Tap or Notification.
type Recorder struct {
	opt RecordOptions
	clk Clock

	mu     sync.Mutex
	w      *bufio.Writer
	last   time.Time
	first  bool
	chain  bool // the previous command frame began a chained secret APDU
	err    error
	frames int
}

// NewRecorder returns a recorder writing the log to w.
func NewRecorder(w io.Writer, opt RecordOptions) *Recorder {
	r := &Recorder{opt: opt, clk: opt.Clock, w: bufio.NewWriter(w), first: true}
	if r.clk == nil {
		r.clk = RealClock{}
	}
	return r
}

// Command implements ccid.Interceptor: it logs the host frame and passes it on.
func (r *Recorder) Command(_ context.Context, frame []byte) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var mask []bool
	if !r.opt.Secrets {
		mask = r.secretMask(frame)
	}
	now := r.line("->", frame, mask)
	if r.opt.Pcap != nil {
		r.keep(r.opt.Pcap.BulkOut(now, frame, mask))
	}
	return frame
}

// Answer implements ccid.Interceptor: it logs the frame, then writes it. Logging first keeps the log in the
// order the host sees: the host's next command can only follow the write.
func (r *Recorder) Answer(_ context.Context, frame []byte, write func([]byte) error) error {
	r.mu.Lock()
	now := r.line("<-", frame, nil)
	if r.opt.Pcap != nil {
		r.keep(r.opt.Pcap.BulkIn(now, frame))
	}
	r.mu.Unlock()
	return write(frame)
}

// Notification logs an interrupt-IN message (NotifySlotChange, HardwareError) the transport sent.
func (r *Recorder) Notification(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := "Unrecognized notification"
	if len(b) > 0 {
		switch ccid.MessageType(b[0]) {
		case ccid.MsgNotifySlotChange:
			name = "NotifySlotChange"
		case ccid.MsgHardwareError:
			name = "HardwareError"
		}
	}
	now := r.stamp()
	r.printf("%s: %s\n", name, hexBytes(b, nil))
	if r.opt.Pcap != nil {
		r.keep(r.opt.Pcap.Interrupt(now, b))
	}
}

// Tap returns a channel that carries what in carries, logging each message; it closes when in does.
func (r *Recorder) Tap(in <-chan []byte) <-chan []byte {
	out := make(chan []byte, cap(in))
	go func() {
		defer close(out)
		for b := range in {
			r.Notification(b)
			out <- b
		}
	}()
	return out
}

// Flush writes buffered lines out and returns the first write error seen.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keep(r.w.Flush())
	if r.opt.Pcap != nil {
		r.keep(r.opt.Pcap.Flush())
	}
	return r.err
}

// Frames returns how many frames were logged.
func (r *Recorder) Frames() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.frames
}

func (r *Recorder) keep(err error) {
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("trace: record: %w", err)
	}
}

// stamp starts a line with the delta since the previous one. Called with mu held.
func (r *Recorder) stamp() time.Time {
	now := r.clk.Now()
	var d int64
	if !r.first {
		d = now.Sub(r.last).Microseconds()
	}
	r.first, r.last = false, now
	d = max(0, min(d, 99999999)) // pcscd's %.8d saturates at 99999999
	r.printf("%08d ", d)
	return now
}

func (r *Recorder) line(dir string, frame []byte, mask []bool) time.Time {
	now := r.stamp()
	slot := 0
	if len(frame) > 5 {
		slot = int(frame[5])
	}
	r.printf("%s %06X %s\n", dir, slot, hexBytes(frame, mask))
	r.frames++
	if r.opt.Pcap == nil {
		r.keep(r.w.Flush()) // a crash loses nothing; the pcap path flushes on Flush
	}
	return now
}

func (r *Recorder) printf(format string, args ...any) {
	_, err := fmt.Fprintf(r.w, format, args...)
	r.keep(err)
}

// hexBytes prints "6F 0C … " with a trailing space like pcscd's log_xxd; masked bytes print as XX.
func hexBytes(b []byte, mask []bool) string {
	var s strings.Builder
	for i, c := range b {
		if mask != nil && mask[i] {
			s.WriteString("XX ")
			continue
		}
		fmt.Fprintf(&s, "%02X ", c)
	}
	return s.String()
}

// secretMask marks the secret bytes of an XfrBlock whose APDU carries PINs or key material (IsSecretAPDU), and
// the continuation frames of such a chained command. Called with mu held.
func (r *Recorder) secretMask(frame []byte) []bool {
	mask, chain := secretMask(frame, r.chain)
	r.chain = chain
	return mask
}

// secretMask marks the secret bytes of frame; inChain says the previous frame began or continued a chained
// secret APDU. It returns the mask (nil: nothing secret) and whether the next frame continues a secret chain.
func secretMask(frame []byte, inChain bool) (mask []bool, chain bool) {
	if len(frame) < ccid.HeaderSize || ccid.MessageType(frame[0]) != ccid.MsgXfrBlock {
		return nil, inChain
	}
	level := uint16(frame[8]) | uint16(frame[9])<<8
	data := frame[ccid.HeaderSize:]
	switch level {
	case ccid.ChainContinue, ccid.ChainEnd:
		if !inChain {
			return nil, false
		}
		mask = make([]bool, len(frame))
		for i := ccid.HeaderSize; i < len(frame); i++ {
			mask[i] = true
		}
		return mask, level == ccid.ChainContinue
	case ccid.ChainNone, ccid.ChainBegin:
	default:
		return nil, false
	}
	if !IsSecretAPDU(data) {
		return nil, false
	}
	start := 5 // short Lc
	if data[4] == 0 && len(data) >= 7 {
		start = 7 // extended Lc
	}
	mask = make([]bool, len(frame))
	for i := ccid.HeaderSize + start; i < len(frame); i++ {
		mask[i] = true // the data field (and Le, if any: harmless)
	}
	return mask, level == ccid.ChainBegin
}

// IsSecretAPDU reports whether a command APDU's data field is secret: VERIFY (INS 20), CHANGE REFERENCE DATA
// (24) and RESET RETRY COUNTER (2C) carry PINs; PUT DATA of the resetting code (DA 00D3) and of the AES key
// (DA 00D5), and the private-key import (DB 3FFF), carry secrets too. apdu needs at least its 5-byte header.
func IsSecretAPDU(apdu []byte) bool {
	if len(apdu) < 5 {
		return false
	}
	switch p := uint16(apdu[2])<<8 | uint16(apdu[3]); apdu[1] {
	case 0x20, 0x24, 0x2C:
		return true
	case 0xDA:
		return p == 0x00D3 || p == 0x00D5
	case 0xDB:
		return p == 0x3FFF
	}
	return false
}

// redacted prints frame for a log with its secret bytes (IsSecretAPDU) as XX. Without the chain state it
// cannot know whether a continuation frame belongs to a secret command, so it masks every continuation.
func redacted(frame []byte) string {
	mask, _ := secretMask(frame, true)
	return strings.TrimSpace(hexBytes(frame, mask))
}
