package ccid

import (
	"context"
	"log/slog"
	"time"
)

// Card is the smart card behind a slot (implemented by card.Card, and by test cards).
//
// The reader calls at most one method of a Card at a time. Methods that take a context must return soon after
// it is cancelled (host ABORT, card removal, Serve ending); the reader answers the host only when they return.
type Card interface {
	// PowerOn is a cold or warm reset. It returns the ATR (at most 33 bytes: libccid's buffer).
	PowerOn(ctx context.Context) (atr []byte, err error)
	// PowerOff deactivates the card.
	PowerOff() error
	// Transmit runs one whole APDU (short or extended) and returns the R-APDU ending in SW1 SW2. capdu is valid
	// only during the call. The reader keeps rapdu until the host has read all of it (response chaining), so
	// the card must not change it afterwards.
	Transmit(ctx context.Context, capdu []byte) (rapdu []byte, err error)
}

// Transport moves whole CCID messages between a Reader and the host.
type Transport interface {
	// ReadFrame returns the next whole PC_to_RDR message (10-byte header + abData) exactly as the host sent it.
	// It returns an error wrapping io.EOF or context.Canceled when the transport ends. The reader does not keep
	// the slice after the next ReadFrame call, so a transport may reuse its buffer. A message whose dwLength
	// exceeds dwMaxCCIDMessageLength−10 may be returned truncated (at least its first 7 bytes) after the
	// transport has drained the rest: the reader answers it with bError 1 (bad dwLength) either way.
	ReadFrame(ctx context.Context) ([]byte, error)
	// WriteFrame sends one whole RDR_to_PC message (the transport adds any ZLP). The frame is valid only during
	// the call. Calls never overlap: one goroutine per Serve makes them, from a queue, so a write the host does
	// not read holds up later answers but never the reading of commands. WriteFrame must return soon after ctx
	// is cancelled or the transport ends, even if the host never reads the frame: Serve waits for it.
	WriteFrame(ctx context.Context, frame []byte) error
}

// Interceptor is the seam where a fault-injection layer sits between the reader and its transport. Command
// sees each whole host frame before the reader handles it; Answer sees each whole device frame (answers, time
// extensions, busy and abort replies) before it is written.
//
// Command runs on the goroutine that reads host frames. Answer runs on Serve's bulk-IN writer goroutine, once
// per device frame, in the order the reader produced them (a command's time extensions before its answer),
// one frame at a time; write calls the transport directly. The reader queues its frames (see WriteFrame), so
// Answer for a frame may run after Command has already seen later host commands.
//
// Delaying inside Answer delays that frame and, as in a real reader's IN FIFO, the frames queued behind it,
// but never the reading and handling of host commands. No time extension is sent meanwhile for the command
// being delayed (it is the frame itself that waits). To make a card slow while the reader keeps sending time
// extensions, wrap the Card instead.
type Interceptor interface {
	// Command returns the frame the reader should handle (frame itself, a changed copy) or nil to drop it.
	Command(ctx context.Context, frame []byte) []byte
	// Answer writes frame with write, or does something else: delay, drop, change, repeat, or write an older
	// frame. frame is valid only during the call.
	Answer(ctx context.Context, frame []byte, write func(frame []byte) error) error
}

// Timer is the part of *time.Timer the reader uses to pace time extensions.
type Timer interface {
	C() <-chan time.Time
	Reset(d time.Duration)
	Stop()
}

// Clock makes Timers. Tests inject one (ccidtest.ManualClock) to fire time extensions without sleeping.
type Clock interface {
	NewTimer(d time.Duration) Timer
}

// Config holds a reader's settings. DefaultConfig fills every field.
type Config struct {
	Descriptor ClassDescriptor // the 54-byte class descriptor (bMaxSlotIndex sets the slot count)
	// TimeExtensionInterval is how long a card may work on an XfrBlock before the reader sends a time
	// extension, and the period of later ones. Default 1 s: GnuPG gives up after 5 s, libccid after its
	// ATR-derived timeout.
	TimeExtensionInterval time.Duration
	// AbortPairTimeout is how long a PC_to_RDR_Abort waits for its ABORT class request (CCID §5.3.1: the two
	// halves pair by bSeq). Until they pair, the slot answers CMD_ABORTED to everything; after it, the
	// half-paired abort expires with a WARN and the slot works again. 0 means the default, 2 s; negative
	// means never. An ABORT class request that arrives first waits for its PC_to_RDR_Abort forever (see
	// Reader.Abort).
	AbortPairTimeout time.Duration
	Logger           *slog.Logger // nil = discard
	Clock            Clock        // nil = real time
	Interceptor      Interceptor  // nil = frames pass unchanged
}

// DefaultAbortPairTimeout is the AbortPairTimeout a zero Config field gets.
const DefaultAbortPairTimeout = 2 * time.Second

// DefaultConfig returns the default descriptor (DefaultDescriptor), a 1 s time extension interval and real time.
func DefaultConfig() Config {
	return Config{Descriptor: DefaultDescriptor(), TimeExtensionInterval: time.Second}
}

type realClock struct{}

type realTimer struct{ t *time.Timer }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }
func (t realTimer) C() <-chan time.Time          { return t.t.C }
func (t realTimer) Reset(d time.Duration)        { t.t.Reset(d) }
func (t realTimer) Stop()                        { t.t.Stop() }
