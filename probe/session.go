package probe

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// Frame is one transfer recorded as evidence: a bulk message, a control request or an interrupt message.
type Frame struct {
	Dir  string `json:"dir"` // "out", "in", "control", "interrupt"
	Len  int    `json:"len"`
	Hex  string `json:"hex"` // the whole transfer, or its first 48 bytes and "..." when longer than 64
	Note string `json:"note,omitempty"`
}

// String prints the direction, the bytes in hex and the note.
func (f Frame) String() string {
	s := fmt.Sprintf("%-9s %s", f.Dir, f.Hex)
	if f.Note != "" {
		s += "  (" + f.Note + ")"
	}
	return s
}

func newFrame(dir string, b []byte, note string) Frame {
	h := hex.EncodeToString(b)
	if len(b) > 64 {
		h = hex.EncodeToString(b[:48]) + fmt.Sprintf("...(%d bytes)", len(b))
	}
	return Frame{Dir: dir, Len: len(b), Hex: h, Note: note}
}

// Errors of one exchange, which make the check running it fail.
var (
	errSeq  = errors.New("bSeq not echoed")
	errType = errors.New("wrong response type")
)

// seqRecord is one answer's bSeq next to the command's, for the bSeq check.
type seqRecord struct {
	cmd, rsp ccid.MessageType
	want     byte
	got      byte
}

// session holds what the checks share: the device, its descriptors and a transcript.
type session struct {
	dev     Device
	info    Info
	desc    ccid.ClassDescriptor
	descErr error
	in, out Endpoint
	intr    Endpoint
	hasIntr bool
	mps     int // bulk-IN wMaxPacketSize
	chunk   int // dwMaxCCIDMessageLength - 10
	timeout time.Duration

	seq    byte
	record bool
	ev     []Frame
	seqs   []seqRecord
	buf    []byte
	now    func() time.Time
}

func newSession(dev Device, timeout time.Duration) *session {
	info := dev.Info()
	s := &session{dev: dev, info: info, timeout: timeout, record: true, seq: 0xF8, now: time.Now}
	s.desc, s.descErr = decodeClass(info.Interface.Extra)
	s.in, _ = info.Interface.BulkIn()
	s.out, _ = info.Interface.BulkOut()
	s.intr, s.hasIntr = info.Interface.InterruptIn()
	s.mps = int(s.in.MaxPacketSize)
	if s.mps == 0 {
		s.mps = 64
	}
	s.chunk = 2048
	if s.descErr == nil && s.desc.MaxCCIDMessageLength > ccid.HeaderSize {
		s.chunk = int(s.desc.MaxCCIDMessageLength) - ccid.HeaderSize
	}
	// One transfer can hold the largest message a host accepts (libccid: 10 + 64 KiB + 7), rounded up to
	// whole packets so that a long message shows up as too long instead of a libusb overflow.
	n := ccid.HeaderSize + ccid.MaxExtendedAPDU
	n += (s.mps - n%s.mps) % s.mps
	s.buf = make([]byte, n)
	return s
}

func (s *session) note(dir string, b []byte, note string) {
	if s.record {
		s.ev = append(s.ev, newFrame(dir, b, note))
	}
}

func (s *session) nextSeq() byte {
	s.seq++
	return s.seq
}

func (s *session) ctx(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, d)
}

// send writes one command.
func (s *session) send(ctx context.Context, m ccid.Message) error {
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	s.note("out", b, m.Type.String())
	tctx, cancel := s.ctx(ctx, s.timeout)
	defer cancel()
	if err := s.dev.BulkOut(tctx, b); err != nil {
		return fmt.Errorf("bulk-OUT %s: %w", m.Type, err)
	}
	return nil
}

// recvRaw runs one bulk-IN transfer and returns its bytes (valid until the next call).
func (s *session) recvRaw(ctx context.Context, timeout time.Duration) ([]byte, error) {
	tctx, cancel := s.ctx(ctx, timeout)
	defer cancel()
	n, err := s.dev.BulkIn(tctx, s.buf)
	b := s.buf[:n]
	if err != nil {
		if n > 0 {
			s.note("in", b, "partial, "+err.Error())
		}
		return b, fmt.Errorf("bulk-IN: %w", err)
	}
	return b, nil
}

// recv reads one answer and decodes it.
func (s *session) recv(ctx context.Context, timeout time.Duration) (ccid.Message, error) {
	b, err := s.recvRaw(ctx, timeout)
	if err != nil {
		return ccid.Message{}, err
	}
	m, err := ccid.ParseMessage(b)
	if err != nil {
		s.note("in", b, "malformed")
		return ccid.Message{}, fmt.Errorf("answer of %d bytes: %w", len(b), err)
	}
	s.note("in", b, m.Type.String()+statusNote(m))
	return m, nil
}

func statusNote(m ccid.Message) string {
	switch m.CommandStatus() {
	case ccid.CommandFailed:
		return fmt.Sprintf(", failed: %s", m.Error())
	case ccid.CommandTimeExtension:
		return fmt.Sprintf(", time extension x%d", m.Error())
	}
	return ""
}

// answer reads the answer to cmd, skipping time extensions, and checks its bSeq and type.
func (s *session) answer(ctx context.Context, cmd ccid.Message, timeout time.Duration) (ccid.Message, error) {
	for {
		m, err := s.recv(ctx, timeout)
		if err != nil {
			return m, fmt.Errorf("answer to %s: %w", cmd.Type, err)
		}
		s.seqs = append(s.seqs, seqRecord{cmd: cmd.Type, rsp: m.Type, want: cmd.Seq, got: m.Seq})
		if m.Seq != cmd.Seq {
			return m, fmt.Errorf("answer to %s (bSeq 0x%02X) carries bSeq 0x%02X: %w", cmd.Type, cmd.Seq, m.Seq, errSeq)
		}
		if want := ccid.ResponseType(cmd.Type); m.Type != want {
			return m, fmt.Errorf("answer to %s is %s, want %s: %w", cmd.Type, m.Type, want, errType)
		}
		if m.Slot != cmd.Slot {
			return m, fmt.Errorf("answer to %s for slot %d carries bSlot %d", cmd.Type, cmd.Slot, m.Slot)
		}
		if m.CommandStatus() == ccid.CommandTimeExtension {
			continue
		}
		return m, nil
	}
}

// exchange sends cmd and returns its answer.
func (s *session) exchange(ctx context.Context, cmd ccid.Message) (ccid.Message, error) {
	if err := s.send(ctx, cmd); err != nil {
		return ccid.Message{}, err
	}
	return s.answer(ctx, cmd, s.timeout)
}

// okExchange is exchange that also requires bmCommandStatus OK.
func (s *session) okExchange(ctx context.Context, cmd ccid.Message) (ccid.Message, error) {
	m, err := s.exchange(ctx, cmd)
	if err == nil && m.CommandStatus() != ccid.CommandOK {
		err = fmt.Errorf("%s failed: bStatus 0x%02X, bError 0x%02X (%s)", cmd.Type, m.Status(), byte(m.Error()), m.Error())
	}
	return m, err
}

// transmit sends a whole APDU at extended APDU level, chaining the command in blocks of dwMaxCCIDMessageLength-10
// bytes and reading a chained response, and checks every chaining rule on the way (CCID §6.1.4, §6.2.1; libccid
// CmdXfrBlockAPDU_extended). It returns the R-APDU and the chain parameters of the answer's blocks.
func (s *session) transmit(ctx context.Context, capdu []byte) (rapdu []byte, chains []byte, err error) {
	for off := 0; ; {
		n := min(len(capdu)-off, s.chunk)
		level := ccid.ChainNone
		switch {
		case off == 0 && n < len(capdu):
			level = ccid.ChainBegin
		case off > 0 && off+n < len(capdu):
			level = ccid.ChainContinue
		case off > 0:
			level = ccid.ChainEnd
		}
		cmd := ccid.NewXfrBlock(0, s.nextSeq(), 0, level, capdu[off:off+n])
		m, err := s.okExchange(ctx, cmd)
		if err != nil {
			return nil, nil, err
		}
		off += n
		if off < len(capdu) {
			if len(m.Data) != 0 {
				return nil, nil, fmt.Errorf("answer to command block ending at byte %d: %d data bytes, want an empty DataBlock (libccid: \"Nul block expected\")", off, len(m.Data))
			}
			continue
		}
		rapdu = append(rapdu, m.Data...)
		chains = append(chains, m.ChainParameter())
		break
	}
	for {
		switch c := chains[len(chains)-1]; c {
		case byte(ccid.ChainNone), byte(ccid.ChainEnd):
			if len(chains) > 1 && c != byte(ccid.ChainEnd) {
				return nil, chains, fmt.Errorf("response block %d ends with bChainParameter 0x00, want 0x02", len(chains))
			}
			if len(rapdu) < 2 {
				return nil, chains, fmt.Errorf("R-APDU of %d bytes, want at least SW1 SW2", len(rapdu))
			}
			return rapdu, chains, nil
		case byte(ccid.ChainBegin), byte(ccid.ChainContinue):
			if c == byte(ccid.ChainBegin) && len(chains) > 1 {
				return nil, chains, fmt.Errorf("response block %d has bChainParameter 0x01 (begin) inside a chain", len(chains))
			}
			if c == byte(ccid.ChainContinue) && len(chains) == 1 {
				return nil, chains, errors.New("the first response block has bChainParameter 0x03 (continue), want 0x01 (begin)")
			}
			cmd := ccid.NewXfrBlock(0, s.nextSeq(), 0, ccid.ChainEmpty, nil)
			m, err := s.okExchange(ctx, cmd)
			if err != nil {
				return nil, chains, err
			}
			rapdu = append(rapdu, m.Data...)
			chains = append(chains, m.ChainParameter())
		default:
			return nil, chains, fmt.Errorf("response block %d has bChainParameter 0x%02X", len(chains), c)
		}
		if len(rapdu) > ccid.MaxExtendedAPDU {
			return nil, chains, fmt.Errorf("chained response longer than %d bytes", ccid.MaxExtendedAPDU)
		}
	}
}

// sw returns the status word of an R-APDU.
func sw(rapdu []byte) uint16 {
	if len(rapdu) < 2 {
		return 0
	}
	return uint16(rapdu[len(rapdu)-2])<<8 | uint16(rapdu[len(rapdu)-1])
}

// powerOn sends IccPowerOn with the bPowerSelect libccid and scdaemon use and returns the ATR.
func (s *session) powerOn(ctx context.Context) ([]byte, ccid.Message, error) {
	ps := byte(1) // 5 V, as both hosts do without automatic voltage selection
	if s.desc.Features&(ccid.FeatureAutoVoltage|ccid.FeatureAutoActivation|ccid.FeatureAutoATRParams) != 0 {
		ps = 0
	}
	m, err := s.okExchange(ctx, ccid.NewIccPowerOn(0, s.nextSeq(), ps))
	if err != nil {
		return nil, m, err
	}
	return m.Data, m, nil
}
