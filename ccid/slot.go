package ccid

import (
	"context"
	"errors"
	"sync"
	"time"
)

type slotState byte

const (
	stateAbsent   slotState = iota // no card
	stateInactive                  // card present, not powered
	stateActive                    // card powered (ATR sent)
)

type abortState byte

const (
	abortNone    abortState = iota
	abortControl            // the ABORT class request arrived first
	abortBulk               // PC_to_RDR_Abort arrived first
)

type opKind byte

const (
	opPowerOn opKind = iota
	opTransmit
)

// job is one card operation handed from the dispatcher to the slot's worker.
type job struct {
	kind opKind
	seq  byte
	gen  uint32
	card Card
	data []byte // the command APDU (s.cmd)
	ctx  context.Context
}

type result struct {
	data []byte
	err  error
}

// slot holds one slot's state. mu guards every field but the channels and out, which belong to the worker.
type slot struct {
	r   *Reader
	idx byte

	mu     sync.Mutex
	idle   *sync.Cond // signalled when busy and answering both drop
	card   Card
	gen    uint32 // bumped on every insertion and removal
	state  slotState
	atr    []byte
	params T1Parameters

	busy      bool       // a card operation is in flight
	answering bool       // the worker is queueing the answer of the last operation
	op        *opContext // the context of the operation in flight
	spare     *opContext // reused for the next operation while never cancelled
	opAborted bool       // the operation in flight was aborted

	abort      abortState
	abortSeq   byte
	abortGen   uint64      // counts bulk-first aborts, so an expiry acts only on the one it was armed for
	abortArm   chan uint64 // to expireAborts: arm for an abortGen, or 0 to disarm; sent with mu held
	expired    bool        // a bulk-first abort expired and its control half may still come (ignored)
	expiredSeq byte

	chaining bool   // a chained command is being received
	cmd      []byte // the command APDU (chained or not); reused
	rsp      []byte // the rest of a chained response
	rspMore  bool   // rsp holds a pending response chain

	jobs     chan job
	callReq  chan job
	callResp chan result
	out      []byte // the worker's encoding buffer
}

func newSlot(r *Reader, idx byte) *slot {
	s := &slot{r: r, idx: idx, params: DefaultT1Parameters,
		jobs: make(chan job, 1), callReq: make(chan job), callResp: make(chan result), abortArm: make(chan uint64, 1),
		out: make([]byte, 0, r.maxMsg)}
	s.idle = sync.NewCond(&s.mu)
	return s
}

// iccStatus is bmICCStatus. Called with mu held.
func (s *slot) iccStatus() byte {
	switch s.state {
	case stateActive:
		return ICCActive
	case stateInactive:
		return ICCInactive
	}
	return ICCAbsent
}

// resetExchange drops chaining state. Called with mu held.
func (s *slot) resetExchange() {
	s.chaining = false
	s.rsp, s.rspMore = nil, false
}

// cancelOp cancels the operation in flight, if any. Called with mu held.
func (s *slot) cancelOp() {
	if s.op != nil {
		s.op.cancel()
	}
}

// abortOp cancels the operation in flight as aborted by the host, and drops chaining. Called with mu held.
func (s *slot) abortOp() {
	if s.busy {
		s.opAborted = true
		s.cancelOp()
	}
	s.resetExchange()
}

// armAbortExpiry tells expireAborts to time out the bulk-first abort gen (0: stop timing). The latest order
// replaces one not yet taken, so it never blocks. Called with mu held, which orders the senders.
func (s *slot) armAbortExpiry(gen uint64) {
	select {
	case <-s.abortArm:
	default:
	}
	s.abortArm <- gen
}

// expireAborts times half-paired bulk-first aborts out (Config.AbortPairTimeout). Its timer is selected only
// while armed, so a ManualClock tick meant for a time extension never reaches it otherwise.
func (s *slot) expireAborts(ctx context.Context) {
	if s.r.pairWait < 0 {
		for { // never expire: just keep the channel drained
			select {
			case <-ctx.Done():
				return
			case <-s.abortArm:
			}
		}
	}
	timer := s.r.clock.NewTimer(s.r.pairWait)
	timer.Stop()
	defer timer.Stop()
	var armed uint64
	arm := func(gen uint64) {
		timer.Stop()
		if armed = gen; armed != 0 {
			timer.Reset(s.r.pairWait)
		}
	}
	for {
		// Orders first: a disarm that came with the timer firing wins (a ManualClock tick is then left for
		// the worker's time extension).
		select {
		case gen := <-s.abortArm:
			arm(gen)
			continue
		default:
		}
		var fire <-chan time.Time
		if armed != 0 {
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
			return
		case gen := <-s.abortArm:
			arm(gen)
		case <-fire:
			s.expireAbort(armed)
			armed = 0
		}
	}
}

// expireAbort ends bulk-first abort gen if it is still waiting for its control half. The PC_to_RDR_Abort was
// answered when it came (bulkAbort), as a completed abort is, so no answer is owed: the slot just works again.
func (s *slot) expireAbort(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.abort != abortBulk || s.abortGen != gen {
		return
	}
	s.abort = abortNone
	s.expired, s.expiredSeq = true, s.abortSeq
	s.r.log.Warn("ccid: PC_to_RDR_Abort got no ABORT class request in time: abort expired, slot works again",
		"slot", s.idx, "seq", s.abortSeq, "timeout", s.r.pairWait)
}

// call runs card operations for the worker, so the worker can pace time extensions while a card works.
func (s *slot) call(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.callReq:
			var res result
			switch j.kind {
			case opPowerOn:
				res.data, res.err = j.card.PowerOn(j.ctx)
			case opTransmit:
				res.data, res.err = j.card.Transmit(j.ctx, j.data)
			}
			s.callResp <- res // the worker always waits for it
		}
	}
}

// work runs the slot's card operations one at a time and queues their answers (time extensions first).
func (s *slot) work(ctx context.Context, w *writer) {
	timer := s.r.clock.NewTimer(s.r.interval)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.jobs:
			s.run(ctx, j, w, timer)
		}
	}
}

func (s *slot) run(ctx context.Context, j job, w *writer, timer Timer) {
	var res result
	select {
	case s.callReq <- j: // call is idle: the slot was not busy
	case <-ctx.Done(): // Serve is ending and call may be gone
		res.err = ctx.Err()
		s.answer(j, res, w)
		return
	}
	var tick <-chan time.Time
	if j.kind == opTransmit {
		// libccid reads the PowerOn answer without time-extension handling, so only XfrBlock gets them.
		timer.Reset(s.r.interval)
		tick = timer.C()
	}
wait:
	for {
		select {
		case res = <-s.callResp:
			break wait
		case <-tick:
			// RDR_to_PC_DataBlock, bStatus 0x80 (time extension, ICC active), bError 1 (multiplier), dwLength 0.
			s.out = appendHeader(s.out[:0], MsgDataBlock, 0, s.idx, j.seq, [3]byte{CommandTimeExtension | ICCActive, 1, 0})
			w.send(s.out)
			timer.Reset(s.r.interval)
		}
	}
	timer.Stop()
	s.answer(j, res, w)
}

// settleQueued frees the slot of a job the dispatcher queued but no worker took before Serve ended. The
// host gets no answer: the transport is gone.
func (s *slot) settleQueued() {
	select {
	case j := <-s.jobs:
		s.finish(j, result{err: context.Canceled}, nil)
		s.mu.Lock()
		s.answering = false
		s.idle.Broadcast()
		s.mu.Unlock()
	default:
	}
}

// answer settles the slot after an operation and queues its answer for the writer.
func (s *slot) answer(j job, res result, w *writer) {
	s.out = s.finish(j, res, s.out[:0])
	w.send(s.out)
	s.mu.Lock()
	s.answering = false
	s.idle.Broadcast()
	s.mu.Unlock()
}

// finish updates the slot after a card operation and encodes its answer into out.
func (s *slot) finish(j job, res result, out []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy, s.answering = false, true
	s.op = nil
	aborted := s.opAborted
	s.opAborted = false
	s.r.busySlots.Add(-1)
	fail := func(e SlotError) []byte {
		return appendHeader(out, MsgDataBlock, 0, s.idx, j.seq, [3]byte{CommandFailed | s.iccStatus(), byte(e), 0})
	}
	switch {
	case j.gen != s.gen || s.state == stateAbsent:
		// The card was removed meanwhile (even if another one is already in): 0x42 FE, which libccid maps to
		// IFD_ICC_NOT_PRESENT.
		return appendHeader(out, MsgDataBlock, 0, s.idx, j.seq, [3]byte{CommandFailed | ICCAbsent, byte(ICCMute), 0})
	case aborted:
		if j.kind == opPowerOn {
			s.state = stateInactive
		}
		return fail(CmdAborted)
	case res.err != nil:
		code := ICCMute
		var ce CardError
		if errors.As(res.err, &ce) {
			code = ce.SlotError()
		}
		if j.kind == opPowerOn {
			s.state = stateInactive
		}
		s.r.log.Warn("ccid: card operation failed", "slot", s.idx, "seq", j.seq, "err", res.err)
		return fail(code)
	case j.kind == opPowerOn:
		s.state = stateActive
		s.atr = append(s.atr[:0], res.data...)
		s.params = T1ParametersFromATR(s.atr)
		if len(res.data) > 33 {
			s.r.log.Warn("ccid: ATR longer than 33 bytes overflows libccid", "len", len(res.data))
		}
		if len(res.data) > s.r.chunk {
			return fail(HWError)
		}
		return appendDataBlock(out, s.idx, j.seq, ICCActive, 0, res.data)
	}
	// Transmit: chain the response if it does not fit in one message.
	if len(res.data) <= s.r.chunk {
		return appendDataBlock(out, s.idx, j.seq, ICCActive, byte(ChainNone), res.data)
	}
	s.rsp, s.rspMore = res.data[s.r.chunk:], true
	return appendDataBlock(out, s.idx, j.seq, ICCActive, byte(ChainBegin), res.data[:s.r.chunk])
}

func appendDataBlock(out []byte, slot, seq, status, chain byte, data []byte) []byte {
	out = appendHeader(out, MsgDataBlock, uint32(len(data)), slot, seq, [3]byte{status, 0, chain})
	return append(out, data...)
}

// opContext is the context of one card operation. Unlike context.WithCancel it is not linked to its parent:
// Serve cancels the operation in flight itself when it ends. A slot reuses an opContext for its next
// operation until one is cancelled, so an XfrBlock round trip allocates nothing.
type opContext struct {
	parent context.Context
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

func newOpContext(parent context.Context) *opContext {
	return &opContext{parent: parent, done: make(chan struct{})}
}

func (c *opContext) Deadline() (time.Time, bool) { return c.parent.Deadline() }
func (c *opContext) Done() <-chan struct{}       { return c.done }
func (c *opContext) Value(key any) any           { return c.parent.Value(key) }

func (c *opContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *opContext) cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = context.Canceled
		close(c.done)
	}
}
