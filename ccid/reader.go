package ccid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by Reader methods.
var (
	ErrNoSlot       = errors.New("ccid: no such slot")
	ErrSlotFull     = errors.New("ccid: slot already holds a card")
	ErrSlotEmpty    = errors.New("ccid: slot holds no card")
	ErrServing      = errors.New("ccid: reader already serving a transport")
	errNilTransport = errors.New("ccid: nil transport")
)

// CardError is an error a Card may return to choose the bError the host sees for a failed PowerOn or Transmit.
// Other errors are reported as ICC_MUTE.
type CardError interface {
	error
	SlotError() SlotError
}

// Reader is a CCID reader: one or more slots, each with at most one card, answering host commands that arrive
// through a Transport. All its methods are safe for concurrent use.
type Reader struct {
	desc     ClassDescriptor
	maxMsg   int // dwMaxCCIDMessageLength
	chunk    int // largest abData in one message
	interval time.Duration
	pairWait time.Duration // AbortPairTimeout; negative: never
	log      *slog.Logger
	clock    Clock
	icpt     Interceptor
	slots    []*slot
	notify   chan []byte
	nmu      sync.Mutex // serialises queueing on notify
	serving  sync.Mutex // held by Serve

	busySlots atomic.Int32 // slots running a card operation, at most bMaxCCIDBusySlots
}

// notifyDepth is the buffer of the Notifications channel.
const notifyDepth = 8

// NewReader returns a reader with empty slots.
func NewReader(cfg Config) (*Reader, error) {
	if err := cfg.Descriptor.Validate(); err != nil {
		return nil, err
	}
	if cfg.TimeExtensionInterval <= 0 {
		return nil, fmt.Errorf("ccid: time extension interval %v must be positive", cfg.TimeExtensionInterval)
	}
	r := &Reader{
		desc:     cfg.Descriptor,
		maxMsg:   int(cfg.Descriptor.MaxCCIDMessageLength),
		chunk:    int(cfg.Descriptor.MaxCCIDMessageLength) - HeaderSize,
		interval: cfg.TimeExtensionInterval,
		pairWait: cfg.AbortPairTimeout,
		log:      cfg.Logger,
		clock:    cfg.Clock,
		icpt:     cfg.Interceptor,
		notify:   make(chan []byte, notifyDepth),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.clock == nil {
		r.clock = realClock{}
	}
	if r.pairWait == 0 {
		r.pairWait = DefaultAbortPairTimeout
	}
	for i := 0; i <= int(cfg.Descriptor.MaxSlotIndex); i++ {
		r.slots = append(r.slots, newSlot(r, byte(i)))
	}
	return r, nil
}

// Descriptor returns the reader's class descriptor.
func (r *Reader) Descriptor() ClassDescriptor { return r.desc }

// Notifications carries interrupt-IN messages (RDR_to_PC_NotifySlotChange, RDR_to_PC_HardwareError) for the
// transport to send. It is buffered and never blocks the reader: when it is full the oldest message is dropped
// and, if both are NotifySlotChange, its changed bits are merged into the new one.
func (r *Reader) Notifications() <-chan []byte { return r.notify }

func (r *Reader) slot(i int) (*slot, error) {
	if i < 0 || i >= len(r.slots) {
		return nil, fmt.Errorf("%w: %d (bMaxSlotIndex %d)", ErrNoSlot, i, r.desc.MaxSlotIndex)
	}
	return r.slots[i], nil
}

// Insert puts card c into slot, present and inactive (the host powers it on), and queues a NotifySlotChange.
func (r *Reader) Insert(slot int, c Card) error {
	if c == nil {
		return errors.New("ccid: insert: nil card")
	}
	s, err := r.slot(slot)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.state != stateAbsent {
		s.mu.Unlock()
		return fmt.Errorf("%w: %d", ErrSlotFull, slot)
	}
	s.card, s.state, s.atr, s.params = c, stateInactive, nil, DefaultT1Parameters
	s.gen++
	s.resetExchange()
	s.mu.Unlock()
	r.log.Info("ccid: card inserted", "slot", slot)
	r.notifySlotChange(slot)
	return nil
}

// Remove takes the card out of slot and queues a NotifySlotChange. An exchange in flight is cancelled through
// its context and fails with bStatus 0x42, bError ICC_MUTE (libccid: "card absent").
func (r *Reader) Remove(slot int) error {
	s, err := r.slot(slot)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.state == stateAbsent {
		s.mu.Unlock()
		return fmt.Errorf("%w: %d", ErrSlotEmpty, slot)
	}
	s.card, s.state, s.atr = nil, stateAbsent, nil
	s.gen++
	s.cancelOp()
	s.resetExchange()
	s.mu.Unlock()
	r.log.Info("ccid: card removed", "slot", slot)
	r.notifySlotChange(slot)
	return nil
}

// Abort is the control-request half of ABORT (CCID §5.3.1: bRequest 0x01, wValue = bSeq<<8 | bSlot). It
// pairs with a PC_to_RDR_Abort carrying the same bSlot and bSeq, in either order. Until both halves have
// arrived, other commands for the slot fail with CMD_ABORTED. A command in flight is cancelled and answered
// with CMD_ABORTED. An unknown slot is ignored.
//
// When the PC_to_RDR_Abort came first, it waits Config.AbortPairTimeout for this half and then expires; this
// half, arriving late for an expired PC_to_RDR_Abort, is then ignored. When this half comes first it waits for
// its PC_to_RDR_Abort until the next Serve, without expiry: the spec has the reader wait for the bulk half,
// the hosts that send ABORT (GnuPG's ccid-driver abort_cmd) send this half first and the bulk half right
// after it, and a host whose bulk half is lost reopens the reader (SET_INTERFACE, so a new Serve). Expiring it
// would turn a merely late bulk half into a new, unpaired, bulk-first abort that blocks the slot once more.
func (r *Reader) Abort(slot, seq byte) {
	s, err := r.slot(int(slot))
	if err != nil {
		r.log.Warn("ccid: ABORT request for unknown slot", "slot", slot, "seq", seq)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.abort == abortBulk && s.abortSeq == seq {
		s.abort = abortNone
		s.armAbortExpiry(0)
		return
	}
	if s.abort == abortNone && s.expired && s.expiredSeq == seq {
		s.expired = false
		r.log.Warn("ccid: ABORT request after its PC_to_RDR_Abort expired: ignored", "slot", slot, "seq", seq)
		return
	}
	s.expired = false
	if s.abort == abortBulk {
		s.armAbortExpiry(0) // replaced by this half, which does not expire
	}
	s.abort, s.abortSeq = abortControl, seq
	s.abortOp()
}

// ReportHardwareError queues RDR_to_PC_HardwareError for slot (code 0x01: overcurrent).
func (r *Reader) ReportHardwareError(slot, seq, code byte) error {
	if _, err := r.slot(int(slot)); err != nil {
		return err
	}
	b, _ := HardwareError{Slot: slot, Seq: seq, Code: code}.AppendBinary(nil)
	r.queue(b)
	return nil
}

// Notify queues a raw interrupt-IN message, such as a NotifySlotChange whose bits do not match the slots'
// state (fault injection, trace replay). It must start with bMessageType 0x50 or 0x51 and the slot state does
// not change.
func (r *Reader) Notify(msg []byte) error {
	if len(msg) < 2 || (MessageType(msg[0]) != MsgNotifySlotChange && MessageType(msg[0]) != MsgHardwareError) {
		return fmt.Errorf("ccid: notify: % X is not an interrupt message", msg)
	}
	r.queue(append([]byte(nil), msg...))
	return nil
}

func (r *Reader) notifySlotChange(changed int) {
	states := make([]SlotChange, len(r.slots))
	for i, s := range r.slots {
		s.mu.Lock()
		states[i] = SlotChange{Present: s.state != stateAbsent, Changed: i == changed}
		s.mu.Unlock()
	}
	r.queue(AppendNotifySlotChange(nil, states))
}

// queue sends b on the notification channel, dropping (and merging) the oldest message when it is full.
func (r *Reader) queue(b []byte) {
	r.nmu.Lock()
	defer r.nmu.Unlock()
	for {
		select {
		case r.notify <- b:
			return
		default:
		}
		select {
		case old := <-r.notify:
			if len(old) == len(b) && MessageType(old[0]) == MsgNotifySlotChange && MessageType(b[0]) == MsgNotifySlotChange {
				for i := 1; i < len(b); i++ {
					b[i] |= old[i] & 0xAA // keep the changed bits of the dropped message
				}
			}
		default:
		}
	}
}

// Serve reads frames from t and answers them until ctx ends or t fails. It can be called again later with a
// new transport (the USB side re-enables endpoints after SET_INTERFACE or a replug); slot state survives, but
// chaining and abort state is reset. Only one Serve runs at a time. Commands in flight when it returns have
// been cancelled and their cards have returned.
func (r *Reader) Serve(ctx context.Context, t Transport) error {
	if t == nil {
		return errNilTransport
	}
	if !r.serving.TryLock() {
		return ErrServing
	}
	defer r.serving.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cancelOps := func() {
		for _, s := range r.slots {
			s.mu.Lock()
			s.cancelOp() // operation contexts are not linked to ctx
			s.mu.Unlock()
		}
	}
	stop := context.AfterFunc(ctx, cancelOps)
	defer stop()
	w := newWriter(ctx, t, r.icpt, r.log, cancel)
	go w.run()
	var wg sync.WaitGroup
	for _, s := range r.slots {
		s.mu.Lock()
		s.resetExchange()
		s.abort, s.expired = abortNone, false
		s.armAbortExpiry(0)
		s.mu.Unlock()
		wg.Add(3)
		go func() { defer wg.Done(); s.work(ctx, w) }()
		go func() { defer wg.Done(); s.call(ctx) }()
		go func() { defer wg.Done(); s.expireAborts(ctx) }()
	}
	d := &dispatcher{r: r, w: w, out: make([]byte, 0, r.maxMsg)}
	var err error
	for {
		var frame []byte
		frame, err = t.ReadFrame(ctx)
		if err != nil {
			break
		}
		if r.icpt != nil {
			if frame = r.icpt.Command(ctx, frame); frame == nil {
				continue
			}
		}
		d.handle(ctx, frame)
	}
	cause := context.Cause(ctx)
	cancel(err)
	cancelOps()
	wg.Wait()
	close(w.stop) // the workers and this goroutine were the producers
	<-w.done      // WriteFrame returns once ctx is cancelled (Transport)
	for _, s := range r.slots {
		s.settleQueued()
	}
	if cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause // a write failed first
	}
	return fmt.Errorf("ccid: serve: %w", err)
}

// outQueueCap is how many device frames may wait for the bulk-IN writer, the one being written not counted.
//
// When the queue is full, the producer (the dispatcher or a slot worker) waits for room, or for Serve to end
// (then the frame is dropped, as the transport is going away): no frame is ever dropped while Serve runs, so
// the Interceptor sees every one. A host that reads bulk-IN keeps the queue short, and a host that sends
// commands faster than it reads (TestSingleWriter pipelines 200) gets backpressure, not lost answers. Only a
// host that sends 16 commands without reading once stalls bulk-OUT, which a real reader's IN FIFO, far
// smaller, would not absorb either. Dropping the oldest frame instead was tried and lost answers of hosts
// that do read, whenever the dispatcher ran ahead of the writer goroutine. Shutdown cannot deadlock: ctx
// cancellation (Serve ending, or a failed write, which cancels it) releases a waiting producer, and a closed
// transport fails the write in flight.
const outQueueCap = 16

// writer is the single path to the transport's bulk-IN side: a bounded FIFO of device frames drained by one
// goroutine (run), as a reader's IN FIFO is drained by the host. Producers (the dispatcher, the slot workers)
// copy their frame into the queue with send and do not wait for the transport, so a bulk-IN write the host
// does not read never stops the reading of host commands.
type writer struct {
	t     Transport
	ctx   context.Context
	icpt  Interceptor
	log   *slog.Logger
	rawFn func([]byte) error
	fail  context.CancelCauseFunc

	wmu sync.Mutex // serialises WriteFrame calls (an Interceptor could call write late)

	room chan struct{} // one token per queued frame: a send waits for room when the queue is full

	mu      sync.Mutex
	ring    [outQueueCap][]byte // queued frames, oldest at head
	head, n int
	spare   [][]byte      // buffers of written frames, reused (last in, first out, so few of them grow)
	warned  bool          // the queue was found full once (logged at WARN, later at DEBUG)
	ready   chan struct{} // signalled (buffer 1) when a frame is queued
	stop    chan struct{} // closed by Serve once no producer is left
	done    chan struct{} // closed when run returns
}

func newWriter(ctx context.Context, t Transport, icpt Interceptor, log *slog.Logger, fail context.CancelCauseFunc) *writer {
	w := &writer{t: t, ctx: ctx, icpt: icpt, log: log, fail: fail, room: make(chan struct{}, outQueueCap),
		ready: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	w.rawFn = w.raw
	return w
}

// send queues a copy of frame for the host; frame may be reused once send returns. It waits only while the
// queue is full; if Serve ends meanwhile, the frame is dropped.
func (w *writer) send(frame []byte) {
	select {
	case w.room <- struct{}{}:
	default:
		w.mu.Lock()
		level := slog.LevelDebug
		if !w.warned {
			w.warned, level = true, slog.LevelWarn
		}
		w.mu.Unlock()
		w.log.Log(w.ctx, level, "ccid: bulk-IN queue full (host not reading): waiting before queueing more",
			"type", MessageType(frame[0]), "slot", frame[5], "seq", frame[6], "queued", outQueueCap)
		select {
		case w.room <- struct{}{}:
		case <-w.ctx.Done():
			return
		}
	}
	w.mu.Lock()
	var b []byte
	if k := len(w.spare); k > 0 {
		b, w.spare = w.spare[k-1], w.spare[:k-1]
	}
	b = append(b[:0], frame...)
	w.ring[(w.head+w.n)%outQueueCap] = b
	w.n++
	w.mu.Unlock()
	select {
	case w.ready <- struct{}{}:
	default: // already signalled
	}
}

// next takes the oldest queued frame, if any.
func (w *writer) next() ([]byte, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == 0 {
		return nil, false
	}
	b := w.ring[w.head]
	w.ring[w.head] = nil
	w.head = (w.head + 1) % outQueueCap
	w.n--
	<-w.room // never blocks: every queued frame holds a token
	return b, true
}

// recycle keeps the buffer of a written frame for a later send.
func (w *writer) recycle(b []byte) {
	w.mu.Lock()
	if len(w.spare) < outQueueCap {
		w.spare = append(w.spare, b[:0])
	}
	w.mu.Unlock()
}

// run writes queued frames in order, each through the Interceptor, until Serve closes stop (after every
// producer has returned) and the queue is empty. A failed write ends Serve with its error (fail). Once ctx is
// cancelled the frames still go through the Interceptor, which sees every frame, as before the queue existed
// (a test's Interceptor may count time extensions to release a card), but their writes fail at once: a
// transport's WriteFrame returns when ctx is cancelled.
func (w *writer) run() {
	defer close(w.done)
	for {
		f, ok := w.next()
		if !ok {
			select {
			case <-w.ready:
				continue
			case <-w.stop:
				if f, ok = w.next(); !ok {
					return
				}
			}
		}
		var err error
		if w.icpt != nil {
			err = w.icpt.Answer(w.ctx, f, w.rawFn)
		} else {
			err = w.raw(f)
		}
		w.recycle(f)
		if err != nil {
			w.fail(fmt.Errorf("write: %w", err)) // ends Serve; a no-op once ctx is cancelled
		}
	}
}

func (w *writer) raw(frame []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return w.t.WriteFrame(w.ctx, frame)
}
