package ccid

import (
	"context"
	"errors"
	"log/slog"
)

// dispatcher handles host frames on Serve's reading goroutine. It answers everything that does not need the
// card at once (queueing the answer for the writer, never waiting for the transport) and hands card
// operations to the slot's worker.
type dispatcher struct {
	r   *Reader
	w   *writer
	out []byte // encoding buffer for answers written from this goroutine
}

// reply writes a header-only answer (or one with data) built from the command's bSlot and bSeq.
func (d *dispatcher) reply(t MessageType, slot, seq, status byte, e SlotError, p2 byte, data []byte) {
	d.out = appendHeader(d.out[:0], t, uint32(len(data)), slot, seq, [3]byte{status, byte(e), p2})
	d.out = append(d.out, data...)
	d.w.send(d.out)
}

// fail answers command m with its response type, bmCommandStatus failed and bError e.
func (d *dispatcher) fail(t MessageType, slot, seq, icc byte, e SlotError) {
	d.reply(ResponseType(t), slot, seq, CommandFailed|icc, e, 0, nil)
}

func (d *dispatcher) handle(ctx context.Context, frame []byte) {
	r := d.r
	if len(frame) < 7 {
		r.log.Warn("ccid: dropped a frame too short to answer", "len", len(frame))
		return
	}
	t, slotNum, seq := MessageType(frame[0]), frame[5], frame[6]
	icc := ICCAbsent
	if int(slotNum) < len(r.slots) {
		s := r.slots[slotNum]
		s.mu.Lock()
		icc = s.iccStatus()
		s.mu.Unlock()
	}
	m, err := ParseMessage(frame)
	if err == nil && len(frame) > r.maxMsg {
		err = &FrameError{Type: t, Offset: 1, Reason: "message longer than dwMaxCCIDMessageLength"}
	}
	if err != nil {
		r.log.Warn("ccid: bad frame", "type", t, "slot", slotNum, "seq", seq, "len", len(frame), "err", err)
		d.fail(t, slotNum, seq, icc, ErrOffsetDwLength)
		return
	}
	if r.log.Enabled(ctx, slog.LevelDebug) {
		r.log.Debug("ccid: command", "msg", m.String())
	}
	if !t.IsCommand() {
		d.fail(t, slotNum, seq, icc, CmdNotSupported)
		return
	}
	if int(slotNum) >= len(r.slots) {
		d.fail(t, slotNum, seq, ICCAbsent, ErrOffsetSlot)
		return
	}
	s := r.slots[slotNum]
	if t == MsgAbort {
		d.bulkAbort(ctx, s, m)
		return
	}
	s.mu.Lock()
	icc = s.iccStatus()
	switch {
	case s.abort != abortNone:
		s.mu.Unlock()
		d.fail(t, slotNum, seq, icc, CmdAborted)
		return
	case s.busy:
		s.mu.Unlock()
		d.fail(t, slotNum, seq, icc, CmdSlotBusy)
		return
	}
	switch t {
	case MsgEscape, MsgIccClock, MsgT0APDU, MsgSecure, MsgMechanical, MsgSetDataRateAndClockFrequency:
		s.mu.Unlock()
		d.fail(t, slotNum, seq, icc, CmdNotSupported)
		return
	}
	if err := m.Check(); err != nil {
		s.mu.Unlock()
		var fe *FrameError
		errors.As(err, &fe)
		r.log.Warn("ccid: bad command", "err", err)
		d.fail(t, slotNum, seq, icc, fe.SlotError())
		return
	}
	// Each case below unlocks s.mu.
	switch t {
	case MsgGetSlotStatus:
		s.mu.Unlock()
		d.reply(MsgSlotStatus, slotNum, seq, icc, 0, clockStatus(icc), nil)
	case MsgIccPowerOn:
		if icc == ICCAbsent {
			s.mu.Unlock()
			d.fail(t, slotNum, seq, icc, ICCMute)
			return
		}
		s.resetExchange()
		d.start(ctx, s, opPowerOn, seq, nil)
	case MsgIccPowerOff:
		var err error
		if s.state != stateAbsent {
			s.resetExchange()
			if s.state == stateActive {
				err = s.card.PowerOff()
			}
			s.state = stateInactive
			icc = ICCInactive
		}
		s.mu.Unlock()
		if err != nil {
			r.log.Warn("ccid: card power off failed", "slot", slotNum, "err", err)
			d.reply(MsgSlotStatus, slotNum, seq, CommandFailed|icc, HWError, clockStatus(icc), nil)
			return
		}
		d.reply(MsgSlotStatus, slotNum, seq, icc, 0, clockStatus(icc), nil)
	case MsgGetParameters, MsgResetParameters, MsgSetParameters:
		d.parameters(s, m, icc)
	case MsgXfrBlock:
		d.xfrBlock(ctx, s, m, icc)
	default:
		s.mu.Unlock()
		d.fail(t, slotNum, seq, icc, CmdNotSupported)
	}
}

func clockStatus(icc byte) byte {
	if icc == ICCActive {
		return 0 // running
	}
	return 1 // stopped in state L
}

// start hands a card operation to the slot's worker, or answers CMD_SLOT_BUSY when bMaxCCIDBusySlots other
// slots are already busy. Called with s.mu held; unlocks it.
func (d *dispatcher) start(ctx context.Context, s *slot, kind opKind, seq byte, data []byte) {
	// Only this goroutine increments busySlots, so the check cannot race with another start.
	if d.r.busySlots.Load() >= int32(d.r.desc.MaxCCIDBusySlots) {
		icc := s.iccStatus()
		s.mu.Unlock()
		d.fail(MsgXfrBlock, s.idx, seq, icc, CmdSlotBusy) // answered with a DataBlock, like PowerOn
		return
	}
	d.r.busySlots.Add(1)
	if s.spare == nil || s.spare.parent != ctx || s.spare.Err() != nil {
		s.spare = newOpContext(ctx)
	}
	s.busy, s.op, s.opAborted = true, s.spare, false
	if ctx.Err() != nil {
		s.op.cancel() // Serve is ending and its AfterFunc may have run already
	}
	j := job{kind: kind, seq: seq, gen: s.gen, card: s.card, data: data, ctx: s.op}
	s.mu.Unlock()
	s.jobs <- j // never blocks: the worker takes one job at a time and the slot was idle
}

// parameters answers GetParameters, ResetParameters and SetParameters. Called with s.mu held; unlocks it.
func (d *dispatcher) parameters(s *slot, m Message, icc byte) {
	if icc == ICCAbsent {
		s.mu.Unlock()
		d.reply(MsgParameters, m.Slot, m.Seq, CommandFailed|icc, ICCMute, ProtocolT1, nil)
		return
	}
	switch m.Type {
	case MsgResetParameters:
		s.params = T1ParametersFromATR(s.atr)
	case MsgSetParameters:
		if m.ProtocolNum() != ProtocolT1 {
			s.mu.Unlock() // dwProtocols offers T=1 only
			d.reply(MsgParameters, m.Slot, m.Seq, CommandFailed|icc, ErrOffsetSpecific, ProtocolT1, nil)
			return
		}
		p, _ := ParseT1Parameters(m.Data)
		if fe := p.check(d.r.desc.Features&FeatureNADNonZero != 0); fe != nil {
			s.mu.Unlock()
			d.r.log.Warn("ccid: bad SetParameters", "err", fe)
			d.reply(MsgParameters, m.Slot, m.Seq, CommandFailed|icc, fe.SlotError(), ProtocolT1, nil)
			return
		}
		s.params = p
	}
	b := s.params.Bytes()
	s.mu.Unlock()
	d.reply(MsgParameters, m.Slot, m.Seq, icc, 0, ProtocolT1, b[:])
}

// xfrBlock handles PC_to_RDR_XfrBlock at extended APDU level. Called with s.mu held; unlocks it.
func (d *dispatcher) xfrBlock(ctx context.Context, s *slot, m Message, icc byte) {
	if icc != ICCActive {
		s.resetExchange()
		s.mu.Unlock()
		d.fail(m.Type, m.Slot, m.Seq, icc, ICCMute)
		return
	}
	level := m.LevelParameter()
	if level == ChainEmpty {
		if !s.rspMore {
			s.mu.Unlock()
			d.fail(m.Type, m.Slot, m.Seq, icc, ErrOffsetLevelParameter)
			return
		}
		chunk, chain := s.rsp, byte(ChainEnd)
		if len(chunk) > d.r.chunk {
			chunk, chain = chunk[:d.r.chunk], byte(ChainContinue)
			s.rsp = s.rsp[d.r.chunk:]
		} else {
			s.rsp, s.rspMore = nil, false
		}
		s.mu.Unlock()
		d.reply(MsgDataBlock, m.Slot, m.Seq, icc, 0, chain, chunk)
		return
	}
	s.rsp, s.rspMore = nil, false // a new command drops an unread response
	switch level {
	case ChainNone, ChainBegin:
		s.cmd = append(s.cmd[:0], m.Data...)
		s.chaining = level == ChainBegin
	case ChainContinue, ChainEnd:
		if !s.chaining {
			s.mu.Unlock()
			d.fail(m.Type, m.Slot, m.Seq, icc, ErrOffsetLevelParameter)
			return
		}
		if len(s.cmd)+len(m.Data) > MaxExtendedAPDU {
			s.resetExchange()
			s.mu.Unlock()
			d.fail(m.Type, m.Slot, m.Seq, icc, ErrOffsetDwLength)
			return
		}
		s.cmd = append(s.cmd, m.Data...)
		s.chaining = level == ChainContinue
	}
	if s.chaining {
		s.mu.Unlock()
		// The empty DataBlock after a non-final command block: "send the next command block".
		d.reply(MsgDataBlock, m.Slot, m.Seq, icc, 0, byte(ChainEmpty), nil)
		return
	}
	d.start(ctx, s, opTransmit, m.Seq, s.cmd)
}

// bulkAbort handles PC_to_RDR_Abort: it pairs with the ABORT class request, cancels the operation in flight,
// waits until its answer is queued (so the host gets it before the SlotStatus), and answers with
// RDR_to_PC_SlotStatus.
func (d *dispatcher) bulkAbort(ctx context.Context, s *slot, m Message) {
	s.mu.Lock()
	if m.Check() != nil {
		icc := s.iccStatus()
		s.mu.Unlock()
		d.fail(m.Type, m.Slot, m.Seq, icc, ErrOffsetDwLength)
		return
	}
	s.expired = false
	if s.abort == abortControl && s.abortSeq == m.Seq {
		s.abort = abortNone
	} else {
		// The bulk half first: it waits AbortPairTimeout for the control half (Reader.Abort says why the
		// control half first does not expire). Its own answer is not owed meanwhile: it is sent below.
		s.abort, s.abortSeq = abortBulk, m.Seq
		s.abortGen++
		s.armAbortExpiry(s.abortGen)
	}
	s.abortOp()
	if s.busy || s.answering {
		// A worker that sees ctx end first never takes its job (settleQueued frees the slot after Serve's
		// loop), so stop waiting when ctx ends: the writer is gone and the host gets no answer anyway.
		stop := context.AfterFunc(ctx, func() { s.mu.Lock(); s.idle.Broadcast(); s.mu.Unlock() })
		for (s.busy || s.answering) && ctx.Err() == nil {
			s.idle.Wait()
		}
		stop()
		if ctx.Err() != nil {
			s.mu.Unlock()
			return
		}
	}
	icc := s.iccStatus()
	s.mu.Unlock()
	d.reply(MsgSlotStatus, m.Slot, m.Seq, icc, 0, clockStatus(icc), nil)
}
