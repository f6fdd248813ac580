package fault

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// Clock is the time source of an Injector; tests inject a fake one so delays take no time.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Options configure an Injector.
type Options struct {
	Clock  Clock        // nil = real time
	USB    USB          // nil: USB rules are logged and skipped
	Logger *slog.Logger // nil = discard
}

// Injector is a ccid.Interceptor that executes a Plan. Load swaps the plan atomically (SIGHUP) and restarts
// its exchange count and firing budgets.
type Injector struct {
	clk Clock
	usb USB
	log *slog.Logger

	state atomic.Pointer[planState]

	mu      sync.Mutex
	rd      *ccid.Reader
	card    ccid.Card
	pending map[uint16]*firing // by bSlot<<8 | bSeq: the actions of commands in flight
	held    []byte             // a withheld answer (stale)
	dead    bool               // mute forever
	powerOn map[byte]time.Time
	wg      sync.WaitGroup
}

// planState is a loaded plan with its counters.
type planState struct {
	plan     *Plan
	mu       sync.Mutex
	exchange int   // host commands seen since the load
	matches  []int // per rule
	fired    []int // per rule
}

type firing struct {
	seq  byte
	rule *Rule
}

// NewInjector returns an injector running p (nil: an empty plan).
func NewInjector(p *Plan, opt Options) *Injector {
	i := &Injector{clk: opt.Clock, usb: opt.USB, log: opt.Logger, pending: map[uint16]*firing{}, powerOn: map[byte]time.Time{}}
	if i.clk == nil {
		i.clk = realClock{}
	}
	if i.log == nil {
		i.log = slog.New(slog.DiscardHandler)
	}
	i.Load(p)
	return i
}

// Load replaces the plan atomically; commands already matched keep their action. It also ends "mute forever".
func (i *Injector) Load(p *Plan) {
	if p == nil {
		p = &Plan{}
	}
	i.state.Store(&planState{plan: p, matches: make([]int, len(p.Rules)), fired: make([]int, len(p.Rules))})
	i.mu.Lock()
	i.dead = false
	i.mu.Unlock()
}

// Plan returns the plan in force.
func (i *Injector) Plan() *Plan { return i.state.Load().plan }

// Bind gives the injector the reader whose card remove, insert, hwerror and notify act on, and the card that
// insert puts back.
func (i *Injector) Bind(rd *ccid.Reader, card ccid.Card) {
	i.mu.Lock()
	i.rd, i.card = rd, card
	i.mu.Unlock()
}

// Wait waits for delayed remove and insert actions.
func (i *Injector) Wait() { i.wg.Wait() }

// choose returns the rule that fires for a command, or nil.
func (s *planState) choose(t ccid.MessageType, slot byte, data []byte, sincePowerOn time.Duration, powered bool) *Rule {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exchange++
	for k := range s.plan.Rules {
		r := &s.plan.Rules[k]
		switch {
		case r.Type != 0 && r.Type != t,
			r.Slot >= 0 && r.Slot != int(slot),
			r.First > 0 && s.exchange < r.First,
			r.Last > 0 && s.exchange > r.Last,
			r.Powered && !powered,
			r.Powered && sincePowerOn < r.After,
			r.Before > 0 && sincePowerOn >= r.Before,
			!r.matchAPDU(data):
			continue
		}
		s.matches[k]++
		if s.matches[k] <= r.Skip || r.Limit > 0 && s.fired[k] >= r.Limit {
			continue
		}
		s.fired[k]++
		return r
	}
	return nil
}

// Command implements ccid.Interceptor.
func (i *Injector) Command(ctx context.Context, frame []byte) []byte {
	if len(frame) < ccid.HeaderSize {
		return frame
	}
	t, slot, seq := ccid.MessageType(frame[0]), frame[5], frame[6]
	now := i.clk.Now()
	i.mu.Lock()
	if t == ccid.MsgIccPowerOn {
		i.powerOn[slot] = now
	} else if t == ccid.MsgIccPowerOff {
		delete(i.powerOn, slot)
	}
	at, powered := i.powerOn[slot]
	dead := i.dead
	delete(i.pending, key(slot, seq))
	i.mu.Unlock()
	if dead {
		return nil
	}
	r := i.state.Load().choose(t, slot, frame[ccid.HeaderSize:], now.Sub(at), powered)
	if r == nil {
		return frame
	}
	i.log.Info("fault: rule fires", "line", r.Line, "rule", r.Text, "command", t, "seq", seq)
	answerSide := false
	for _, a := range r.Actions {
		switch a.Kind {
		case Mute:
			if a.Forever {
				i.mu.Lock()
				i.dead = true
				i.mu.Unlock()
			}
			return nil
		case Remove, Insert:
			if a.Duration == 0 {
				i.cardAction(a.Kind, int(slot))
				continue
			}
			i.wg.Add(1)
			go func() {
				defer i.wg.Done()
				if i.clk.Sleep(ctx, a.Duration) == nil {
					i.cardAction(a.Kind, int(slot))
				}
			}()
		case HWError, Notify:
			i.interrupt(r, a, slot, seq)
		default:
			answerSide = true
		}
	}
	if answerSide {
		i.mu.Lock()
		if len(i.pending) >= maxPending { // answers the reader never wrote (Serve ended)
			clear(i.pending)
		}
		i.pending[key(slot, seq)] = &firing{seq: seq, rule: r}
		i.mu.Unlock()
	}
	return frame
}

// interrupt queues a HardwareError or a raw interrupt message.
func (i *Injector) interrupt(r *Rule, a Action, slot, seq byte) {
	i.mu.Lock()
	rd := i.rd
	i.mu.Unlock()
	if rd == nil {
		i.log.Warn("fault: no reader bound", "rule", r.Text)
		return
	}
	var err error
	if a.Kind == HWError {
		err = rd.ReportHardwareError(slot, seq, a.Byte)
	} else {
		err = rd.Notify(a.Data)
	}
	if err != nil {
		i.log.Warn("fault: interrupt message", "rule", r.Text, "err", err)
	}
}

func key(slot, seq byte) uint16 { return uint16(slot)<<8 | uint16(seq) }

// maxPending bounds the actions waiting for an answer.
const maxPending = 64

func (i *Injector) cardAction(k Kind, slot int) {
	i.mu.Lock()
	rd, card := i.rd, i.card
	i.mu.Unlock()
	if rd == nil {
		i.log.Warn("fault: no reader bound", "action", k)
		return
	}
	var err error
	if k == Remove {
		err = rd.Remove(slot)
	} else if card != nil {
		err = rd.Insert(slot, card)
	}
	if err != nil {
		i.log.Warn("fault: card action", "action", k, "err", err)
	}
}

// Answer implements ccid.Interceptor.
func (i *Injector) Answer(ctx context.Context, frame []byte, write func([]byte) error) error {
	if len(frame) < ccid.HeaderSize {
		return write(frame)
	}
	slot, seq := frame[5], frame[6]
	i.mu.Lock()
	if i.dead {
		i.mu.Unlock()
		return nil
	}
	held := i.held
	var f *firing
	if p := i.pending[key(slot, seq)]; p != nil && frame[7]&0xC0 != ccid.CommandTimeExtension {
		f = p
		delete(i.pending, key(slot, seq))
	}
	if held != nil && frame[7]&0xC0 != ccid.CommandTimeExtension {
		i.held = nil
	}
	i.mu.Unlock()
	if held != nil && frame[7]&0xC0 != ccid.CommandTimeExtension {
		if err := write(held); err != nil {
			return err
		}
	}
	if f == nil {
		return write(frame)
	}
	return i.act(ctx, f.rule.Actions, frame, write)
}

// act applies the answer-side actions of a rule, in order, to the final answer frame: delays and time
// extensions happen in sequence, changes apply to the frame as changed so far, and the frame is then written
// (twice for dup), withheld (stale) or dropped (usb halt bulk-in, disconnect, reenumerate).
func (i *Injector) act(ctx context.Context, actions []Action, frame []byte, write func([]byte) error) error {
	out := bytes.Clone(frame)
	dup, drop := false, false
	for _, a := range actions {
		switch a.Kind {
		case Delay:
			if i.clk.Sleep(ctx, a.Duration) != nil {
				return nil
			}
		case TimeExt:
			wtx := make([]byte, ccid.HeaderSize)
			copy(wtx, out[:min(7, len(out))])
			binary.LittleEndian.PutUint32(wtx[1:], 0)
			wtx[7], wtx[8] = ccid.CommandTimeExtension|frame[7]&0x03, a.Byte
			for k := 0; k < a.Count; k++ {
				if i.clk.Sleep(ctx, a.Duration) != nil {
					return nil
				}
				if err := write(wtx); err != nil {
					return err
				}
			}
		case Stale:
			i.mu.Lock()
			i.held = out
			i.mu.Unlock()
			return nil
		case Duplicate:
			dup = true
		case SkipZLP, StrayZLP, Halt, Disconnect, Reenumerate:
			if i.usbAction(ctx, a) {
				drop = true
			}
		default:
			out = change(a, out)
		}
	}
	if drop {
		return nil
	}
	if err := write(out); err != nil || !dup {
		return err
	}
	return write(out)
}

// change applies a frame-changing action.
func change(a Action, out []byte) []byte {
	if len(out) < ccid.HeaderSize && a.Kind != Pad && a.Kind != Truncate {
		return out // already truncated below the header
	}
	switch a.Kind {
	case Reply:
		st := out[7]
		if a.StatusSet&1 != 0 {
			st = st&^0x03 | a.Status&0x03
		}
		if a.StatusSet&2 != 0 {
			st = st&^0xC0 | a.Status&0xC0
		}
		out = append(out[:ccid.HeaderSize], a.Data...)
		out[7], out[8] = st, a.Error
		binary.LittleEndian.PutUint32(out[1:], uint32(len(a.Data)))
	case StatusWord:
		if ccid.MessageType(out[0]) == ccid.MsgDataBlock && out[7]&0x40 == 0 {
			data := out[ccid.HeaderSize:]
			if len(data) >= 2 {
				data = data[:len(data)-2]
			}
			if a.NoData {
				data = nil
			}
			out = append(append(out[:ccid.HeaderSize], data...), a.SW[:]...)
			binary.LittleEndian.PutUint32(out[1:], uint32(len(out)-ccid.HeaderSize))
		}
	case Inactive:
		out[7] = out[7]&^0x03 | ccid.ICCInactive
	case BadSeq:
		if a.SetSeq {
			out[6] = a.Byte
		} else {
			out[6] += byte(a.Count)
		}
	case BadType:
		out[0] = a.Byte
	case Truncate:
		if a.Count < len(out) {
			out = out[:a.Count]
		}
	case Pad:
		out = append(out, make([]byte, a.Count)...)
	case Oversize:
		for k := 0; k < a.Count; k++ {
			out = append(out, byte(k))
		}
		binary.LittleEndian.PutUint32(out[1:], uint32(len(out)-ccid.HeaderSize))
	}
	return out
}

// usbAction runs a USB fault through Options.USB and reports whether the answer must be dropped (the host
// cannot read it any more: after halt bulk-in, disconnect and reenumerate).
func (i *Injector) usbAction(ctx context.Context, a Action) (drop bool) {
	if i.usb == nil {
		i.log.Warn("fault: no USB side to run the rule", "action", a.Kind)
		return false
	}
	var err error
	switch a.Kind {
	case SkipZLP:
		i.usb.SkipZLP()
	case StrayZLP:
		err = i.usb.StrayZLP(ctx)
	case Halt:
		err = i.usb.Halt(a.Endpoint)
		drop = a.Endpoint == ccid.EndpointBulkIn
	case Disconnect:
		err = i.usb.Disconnect(ctx, a.Duration)
		drop = true
	case Reenumerate:
		err = i.usb.Reenumerate(ctx)
		drop = true
	}
	if err != nil {
		i.log.Warn("fault: USB action failed", "action", a.Kind, "err", err)
	}
	return drop
}

// Chain returns an interceptor that runs outer (nearer the host) around inner (nearer the reader): commands go
// through outer then inner, answers through inner then outer. Either may be nil.
func Chain(outer, inner ccid.Interceptor) ccid.Interceptor {
	switch {
	case outer == nil:
		return inner
	case inner == nil:
		return outer
	}
	return chain{outer, inner}
}

type chain struct{ outer, inner ccid.Interceptor }

func (c chain) Command(ctx context.Context, frame []byte) []byte {
	if frame = c.outer.Command(ctx, frame); frame == nil {
		return nil
	}
	return c.inner.Command(ctx, frame)
}

func (c chain) Answer(ctx context.Context, frame []byte, write func([]byte) error) error {
	return c.inner.Answer(ctx, frame, func(f []byte) error { return c.outer.Answer(ctx, f, write) })
}
