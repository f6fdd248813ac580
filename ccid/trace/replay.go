package trace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// Divergence is what a Replayer does with a host command the trace does not have.
type Divergence int

const (
	// DivergeFail answers the command as a mute card would: RDR_to_PC_DataBlock with bmCommandStatus failed,
	// bError ICC_MUTE (0xFE) and the slot's current bmICCStatus (0x40 FE, or 0x42 FE once the card is out).
	// libccid reports SCARD_E_NOT_TRANSACTED (or SCARD_E_NO_SMARTCARD when absent). The default.
	DivergeFail Divergence = iota
	// DivergeCard hands the command to the live card (Options.Live) and sends its answer at once.
	DivergeCard
	// DivergeMute drops the command: the host gets no answer and times out.
	DivergeMute
)

// ParseDivergence reads the value of --on-divergence: fail, card or mute.
func ParseDivergence(s string) (Divergence, error) {
	switch s {
	case "fail", "":
		return DivergeFail, nil
	case "card":
		return DivergeCard, nil
	case "mute":
		return DivergeMute, nil
	}
	return 0, fmt.Errorf("trace: on-divergence %q: want fail, card or mute", s)
}

func (d Divergence) String() string {
	switch d {
	case DivergeCard:
		return "card"
	case DivergeMute:
		return "mute"
	}
	return "fail"
}

// Clock is the time source of a Replayer and a Recorder. Tests inject a fake one so a 2.7 s delay takes no time.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends.
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock (monotonic readings).
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }

// Sleep implements Clock.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Options configure a Replayer.
type Options struct {
	OnDivergence Divergence
	// Mixed takes timings and faults from the trace and content from the live card: the n-th XfrBlock of the
	// host is paired with the n-th XfrBlock of the trace whatever its bytes, answered by the live card after the
	// recorded delay, except when the recorded answer is a fault (bStatus or bError not 0, or SW1 0x6F or 0x64,
	// the reader-synthesised status words), which is replayed as recorded. Requires Live.
	Mixed bool
	Live  ccid.Card // the live card for DivergeCard and Mixed
	// ATR is the answer to power-on when the trace logged none ("Card ATR:" line or an IccPowerOn exchange).
	// Nil gives the live card's ATR, or without one the contactless pseudo-ATR 3B 80 80 01 01 of the PR533
	// traces.
	ATR    []byte
	Clock  Clock        // nil = RealClock
	Logger *slog.Logger // nil = discard
}

// ErrDiverged is the error the replay card returns for a command the trace does not have (DivergeFail).
var ErrDiverged = errors.New("trace: command not in the trace")

// Replayer makes a ccid.Reader behave as the reader a trace recorded. It is a ccid.Interceptor (it rewrites
// and times the reader's answers) and provides the ccid.Card to insert into the slot (Card). Host commands are
// matched by content (bMessageType, header bytes 7..9 and abData; bSeq and bSlot are ignored and rewritten in
// the answers), in trace order: a match moves the replay forward past any skipped exchange. GetSlotStatus is
// never matched: the reader answers it from the slot's current state. Every recorded answer frame (time
// extensions included) is sent at the recorded delay after the command arrived, and the recorded interrupt
// messages that followed an exchange are applied at their recorded offset after its answer: a
// NotifySlotChange that reports the card gone removes it from the reader (Reader.Remove), one that reports it
// present inserts the replay card again, any other interrupt message is queued as recorded.
type Replayer struct {
	tr   *Trace
	opt  Options
	clk  Clock
	log  *slog.Logger
	card *replayCard

	mu      sync.Mutex
	next    int                 // first exchange not yet replayed
	pending map[uint16]*pending // by bSlot<<8 | bSeq
	xfr     *pending            // the last XfrBlock seen (the replay card is asked about it)
	rd      *ccid.Reader
	slot    int
	wg      sync.WaitGroup
	stats   []Timing
}

type pending struct {
	seq     byte
	slot    byte
	ex      *Exchange // nil: not in the trace
	t0      time.Time
	fault   bool // the recorded answer is a fault (Mixed)
	skipWTX bool // drop the reader's own time extensions
}

// Timing is one replayed exchange: the recorded delay and the one the replayer produced (as measured by its
// clock between Command and the write of the final answer).
type Timing struct {
	Exchange int
	Recorded time.Duration
	Replayed time.Duration
}

// NewReplayer returns a replayer of t. Call Bind before the reader serves, and insert Card into the slot.
func NewReplayer(t *Trace, opt Options) (*Replayer, error) {
	if opt.Mixed && opt.Live == nil {
		return nil, errors.New("trace: mixed replay needs a live card")
	}
	if opt.OnDivergence == DivergeCard && opt.Live == nil {
		return nil, errors.New("trace: --on-divergence card needs a live card")
	}
	r := &Replayer{tr: t, opt: opt, clk: opt.Clock, log: opt.Logger, pending: map[uint16]*pending{}}
	if r.clk == nil {
		r.clk = RealClock{}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.card = &replayCard{r: r}
	return r, nil
}

// Bind gives the replayer the reader and slot whose card state the recorded notifications change.
func (r *Replayer) Bind(rd *ccid.Reader, slot int) {
	r.mu.Lock()
	r.rd, r.slot = rd, slot
	r.mu.Unlock()
}

// Card returns the card to insert into the bound slot: its ATR is the recorded one, and it answers matched
// commands with the recorded R-APDU (and others as Options say).
func (r *Replayer) Card() ccid.Card { return r.card }

// Wait waits for scheduled notifications to be applied (or dropped when ctx ends).
func (r *Replayer) Wait() { r.wg.Wait() }

// Timings returns the recorded and replayed delay of every exchange replayed so far.
func (r *Replayer) Timings() []Timing {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Timing(nil), r.stats...)
}

// Done reports whether every exchange of the trace has been replayed or skipped (GetSlotStatus polls, which
// are never replayed, do not count).
func (r *Replayer) Done() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.tr.Exchanges[min(r.next, len(r.tr.Exchanges)):] {
		if len(e.Command.Bytes) > 0 && ccid.MessageType(e.Command.Bytes[0]) != ccid.MsgGetSlotStatus {
			return false
		}
	}
	return true
}

// Command implements ccid.Interceptor.
func (r *Replayer) Command(ctx context.Context, frame []byte) []byte {
	if len(frame) < ccid.HeaderSize {
		return frame
	}
	t := ccid.MessageType(frame[0])
	p := &pending{seq: frame[6], slot: frame[5], t0: r.clk.Now()}
	r.mu.Lock()
	defer r.mu.Unlock()
	if t != ccid.MsgGetSlotStatus {
		if j := r.match(frame); j >= 0 {
			p.ex = &r.tr.Exchanges[j]
			r.next = j + 1
			if a, ok := p.ex.Answer(); ok && isFault(a.Bytes) {
				p.fault = true
			}
			p.skipWTX = !r.opt.Mixed || p.fault
		}
	}
	switch {
	case p.ex != nil || t == ccid.MsgGetSlotStatus:
	case t == ccid.MsgXfrBlock:
		// The divergence policy is about APDUs: only they have recorded answers that can be missing.
		r.log.Warn("trace: replay diverged", "command", redacted(frame), "policy", r.opt.OnDivergence)
		if r.opt.OnDivergence == DivergeMute {
			return nil
		}
	default:
		// PowerOn (answered with the recorded ATR), PowerOff, parameters ...: traces that start with a
		// "Card ATR:" line hold none of these, and the reader answers them from the slot's state.
		r.log.Debug("trace: not in the trace, answered by the reader", "command", redacted(frame))
	}
	if len(r.pending) >= 64 { // answers the reader never wrote (Serve ended)
		clear(r.pending)
	}
	r.pending[pkey(p.slot, p.seq)] = p
	if t == ccid.MsgXfrBlock {
		r.xfr = p
	}
	return frame
}

func pkey(slot, seq byte) uint16 { return uint16(slot)<<8 | uint16(seq) }

// match returns the index of the next exchange the command matches, or -1. Called with mu held.
func (r *Replayer) match(frame []byte) int {
	t := ccid.MessageType(frame[0])
	for j := r.next; j < len(r.tr.Exchanges); j++ {
		c := r.tr.Exchanges[j].Command
		if len(c.Bytes) < ccid.HeaderSize || ccid.MessageType(c.Bytes[0]) != t {
			continue
		}
		if r.opt.Mixed && t == ccid.MsgXfrBlock {
			return j
		}
		if sameCommand(c, frame) {
			return j
		}
	}
	return -1
}

// sameCommand compares everything but bSlot and bSeq; masked bytes match anything.
func sameCommand(rec Frame, frame []byte) bool {
	if len(rec.Bytes) != len(frame) {
		return false
	}
	for i := range frame {
		if i == 5 || i == 6 || rec.Masked != nil && rec.Masked[i] {
			continue
		}
		if rec.Bytes[i] != frame[i] {
			return false
		}
	}
	return true
}

// isFault reports whether a recorded final answer is one Mixed replays as recorded.
func isFault(b []byte) bool {
	if len(b) < ccid.HeaderSize || b[7] != 0 || b[8] != 0 {
		return true
	}
	if ccid.MessageType(b[0]) == ccid.MsgDataBlock && len(b) >= ccid.HeaderSize+2 {
		sw1 := b[len(b)-2]
		return sw1 == 0x6F || sw1 == 0x64
	}
	return false
}

// Answer implements ccid.Interceptor.
func (r *Replayer) Answer(ctx context.Context, frame []byte, write func([]byte) error) error {
	if len(frame) < ccid.HeaderSize {
		return write(frame)
	}
	r.mu.Lock()
	p := r.pending[pkey(frame[5], frame[6])]
	if p == nil {
		r.mu.Unlock()
		return write(frame)
	}
	if IsTimeExtension(frame) {
		r.mu.Unlock()
		if p.skipWTX {
			return nil
		}
		return write(frame)
	}
	delete(r.pending, pkey(frame[5], frame[6]))
	r.mu.Unlock()
	if p.ex == nil {
		return write(frame)
	}
	ex := p.ex
	if !r.opt.Mixed || p.fault || ccid.MessageType(frame[0]) != ccid.MsgDataBlock {
		for _, a := range ex.Answers {
			if err := r.sleepUntil(ctx, p.t0.Add(a.At-ex.Command.At)); err != nil {
				return nil // Serve is ending
			}
			out := bytes.Clone(a.Bytes)
			if len(out) >= 7 {
				out[5], out[6] = p.slot, p.seq
			}
			if err := write(out); err != nil {
				return err
			}
		}
	} else {
		if err := r.sleepUntil(ctx, p.t0.Add(ex.Latency())); err != nil {
			return nil
		}
		if err := write(frame); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.stats = append(r.stats, Timing{Exchange: ex.Index, Recorded: ex.Latency(), Replayed: r.clk.Now().Sub(p.t0)})
	r.mu.Unlock()
	r.schedule(ctx, ex, p.slot)
	return nil
}

func (r *Replayer) sleepUntil(ctx context.Context, t time.Time) error {
	if d := t.Sub(r.clk.Now()); d > 0 {
		return r.clk.Sleep(ctx, d)
	}
	return ctx.Err()
}

// schedule applies the interrupt messages recorded after ex at their offsets from its answer.
func (r *Replayer) schedule(ctx context.Context, ex *Exchange, slot byte) {
	var evs []Event
	for _, ev := range r.tr.Events {
		if ev.After == ex.Index {
			evs = append(evs, ev)
		}
	}
	if len(evs) == 0 {
		return
	}
	end := ex.Command.At + ex.Latency()
	start := r.clk.Now()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for _, ev := range evs {
			if r.sleepUntil(ctx, start.Add(ev.At-end)) != nil {
				return
			}
			r.apply(ev.Bytes)
		}
	}()
}

// apply makes the bound reader send an interrupt message.
func (r *Replayer) apply(b []byte) {
	r.mu.Lock()
	rd, slot := r.rd, r.slot
	r.mu.Unlock()
	if rd == nil || len(b) == 0 {
		return
	}
	var err error
	switch {
	case ccid.MessageType(b[0]) == ccid.MsgNotifySlotChange && len(b) > slot/4+1:
		bits := b[1+slot/4] >> (2 * (slot % 4))
		if bits&1 == 0 {
			err = rd.Remove(slot)
		} else {
			err = rd.Insert(slot, r.card)
		}
		if err != nil { // no change of state: send the message as recorded
			err = rd.Notify(b)
		}
	case ccid.MessageType(b[0]) == ccid.MsgHardwareError && len(b) == 4:
		err = rd.ReportHardwareError(b[1], b[2], b[3])
	default:
		err = rd.Notify(b)
	}
	if err != nil {
		r.log.Warn("trace: replaying an interrupt message failed", "msg", fmt.Sprintf("% X", b), "err", err)
	}
}

// atr returns the recorded ATR: the "Card ATR:" line or the answer to a recorded IccPowerOn.
func (r *Replayer) atr() []byte {
	if r.tr.ATR != nil {
		return r.tr.ATR
	}
	for _, e := range r.tr.Exchanges {
		if len(e.Command.Bytes) > 0 && ccid.MessageType(e.Command.Bytes[0]) == ccid.MsgIccPowerOn {
			if a, ok := e.Answer(); ok && len(a.Bytes) > ccid.HeaderSize && a.Bytes[7]&0x40 == 0 {
				return a.Bytes[ccid.HeaderSize:]
			}
		}
	}
	return nil
}

// replayCard is the card behind a replaying slot.
type replayCard struct{ r *Replayer }

// PowerOn returns the recorded ATR, else Options.ATR, else the live card's (the live card is powered on too).
func (c *replayCard) PowerOn(ctx context.Context) ([]byte, error) {
	atr := c.r.atr()
	if atr == nil {
		atr = c.r.opt.ATR
	}
	if c.r.opt.Live != nil {
		liveATR, err := c.r.opt.Live.PowerOn(ctx)
		if err != nil {
			return nil, err
		}
		if atr == nil {
			return liveATR, nil
		}
	}
	if atr == nil {
		atr = []byte{0x3B, 0x80, 0x80, 0x01, 0x01}
	}
	return bytes.Clone(atr), nil
}

// PowerOff powers the live card off too.
func (c *replayCard) PowerOff() error {
	if c.r.opt.Live != nil {
		return c.r.opt.Live.PowerOff()
	}
	return nil
}

// Transmit answers a matched command with the recorded R-APDU (the replayer sends the recorded frame anyway),
// and an unmatched one as Options.OnDivergence says.
func (c *replayCard) Transmit(ctx context.Context, capdu []byte) ([]byte, error) {
	c.r.mu.Lock()
	p := c.r.xfr
	c.r.mu.Unlock()
	live := c.r.opt.Live
	switch {
	case p != nil && p.ex != nil && !c.r.opt.Mixed:
		if a, ok := p.ex.Answer(); ok && len(a.Bytes) > ccid.HeaderSize {
			return bytes.Clone(a.Bytes[ccid.HeaderSize:]), nil
		}
		return []byte{0x6F, 0x00}, nil
	case live != nil && (c.r.opt.Mixed || c.r.opt.OnDivergence == DivergeCard):
		return live.Transmit(ctx, capdu)
	}
	return nil, ErrDiverged
}
