package probe

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// Verdict is the outcome of one check.
type Verdict string

// Verdicts.
const (
	Pass          Verdict = "pass"
	Fail          Verdict = "fail"
	NotApplicable Verdict = "n/a"
)

// Result is one check's verdict with the bytes that prove it.
type Result struct {
	ID       string  `json:"id"`
	Title    string  `json:"title"`
	Verdict  Verdict `json:"verdict"`
	Detail   string  `json:"detail"`
	Evidence []Frame `json:"evidence,omitempty"`
}

// Report is a whole conformance run.
type Report struct {
	Device  Info     `json:"device"`
	Results []Result `json:"results"`
	// Passed is true when every applicable check passed.
	Passed bool `json:"passed"`
}

// Counts returns how many checks passed, failed and did not apply.
func (r Report) Counts() (pass, fail, na int) {
	for _, c := range r.Results {
		switch c.Verdict {
		case Pass:
			pass++
		case Fail:
			fail++
		default:
			na++
		}
	}
	return
}

// Options tune a conformance run. The zero value runs every check that needs no help from outside.
type Options struct {
	// Timeout bounds each transfer (default 3 s, libccid's DEFAULT_COM_READ_TIMEOUT).
	Timeout time.Duration
	// SlowAPDUs enables the time-extension check: every APDU but the last is sent first and must answer 90 00
	// (VERIFY PW3, PUT DATA of the algorithm attributes ...); the last one must make the card work long enough
	// to need time extensions (RSA-4096 key generation). Nil: the check is n/a.
	SlowAPDUs [][]byte
	// SlowTimeout bounds the wait for each frame of the slow APDU's answer (default 120 s).
	SlowTimeout time.Duration
	// NotifyWait enables the NotifySlotChange check: Prompt asks the user to remove the card, then to insert it,
	// and each interrupt message must arrive within NotifyWait. 0: the check is n/a.
	NotifyWait time.Duration
	// Prompt tells the user what to do (remove or insert the card). Nil: nothing is shown.
	Prompt func(msg string)
}

// OpenPGP application identifier (OpenPGP card 3.4.1 §4.2.1) and its SELECT.
var openPGPSelect = []byte{0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01, 0x00}

// insUnknown is an instruction byte no ISO 7816-4 or OpenPGP command uses: a card answers it with 6D00 after the
// reader has delivered the whole APDU, which makes it a harmless carrier for command-chaining tests.
const insUnknown = 0xEE

type check struct {
	id, title string
	run       func(ctx context.Context, s *session) (Verdict, string)
}

// checker is the state of one run shared by the checks.
type checker struct {
	opts       Options
	card       bool   // a card is present
	atr        []byte // from the first PowerOn
	openpgp    bool   // SELECT of the OpenPGP AID answered 90 00
	challenge  int    // largest GET CHALLENGE (0: unsupported or unknown)
	slowOK     bool   // the time-extension check passed
	intrFrames []Frame
}

// Run runs the conformance checks against dev in order and returns the report. It never stops early: a check
// that cannot run because an earlier one failed is reported as failed or n/a with the reason.
func Run(ctx context.Context, dev Device, opts Options) Report {
	if opts.Timeout <= 0 {
		opts.Timeout = 3 * time.Second
	}
	if opts.SlowTimeout <= 0 {
		opts.SlowTimeout = 120 * time.Second
	}
	s := newSession(dev, opts.Timeout)
	c := &checker{opts: opts}
	rep := Report{Device: s.info, Passed: true}
	for _, ch := range c.checks() {
		s.ev = nil
		v, detail := ch.run(ctx, s)
		if ctx.Err() != nil {
			v, detail = Fail, "interrupted: "+ctx.Err().Error()
		}
		rep.Results = append(rep.Results, Result{ID: ch.id, Title: ch.title, Verdict: v, Detail: detail, Evidence: s.ev})
		if v == Fail {
			rep.Passed = false
		}
	}
	return rep
}

// CheckIDs lists the checks Run performs, in order.
func CheckIDs() []string {
	var ids []string
	for _, c := range (&checker{}).checks() {
		ids = append(ids, c.id)
	}
	return ids
}

func (c *checker) checks() []check {
	return []check{
		{"descriptor.interface", "interface class 0x0B, subclass 0, protocol 0", c.descInterface},
		{"descriptor.endpoints", "3 endpoints: bulk IN, bulk OUT, interrupt IN, bmAttributes exact", c.descEndpoints},
		{"descriptor.extra", "exactly one 54-byte CCID class descriptor before the endpoints", c.descExtra},
		{"descriptor.protocols", "dwProtocols offers T=1", c.descProtocols},
		{"descriptor.level", "exchange level TPDU or APDU", c.descLevel},
		{"descriptor.max-message", "dwMaxCCIDMessageLength fits GnuPG's 2065-byte buffer", c.descMaxMessage},
		{"descriptor.clocks-rates", "bNumClockSupported/bNumDataRatesSupported match GET_CLOCK_FREQUENCIES/GET_DATA_RATES", c.descClocksRates},
		{"drain-interrupt", "pending interrupt-IN messages at start", c.drainInterrupt},
		{"slot-status", "GetSlotStatus", c.slotStatus},
		{"power-on", "IccPowerOn: ATR offers T=1, valid TCK, at most 33 bytes", c.powerOn},
		{"get-parameters", "GetParameters: T=1, 7 bytes", c.getParameters},
		{"set-parameters", "SetParameters T=1 echoes the parameters", c.setParameters},
		{"power-off", "IccPowerOff leaves the card present and inactive; PowerOn again", c.powerOff},
		{"unsupported-commands", "unsupported commands answered with their response type and bError 0x00", c.unsupported},
		{"wrong-slot", "a command for a slot that does not exist fails with bError 0x05", c.wrongSlot},
		{"select-openpgp", "XfrBlock: SELECT the OpenPGP application", c.selectOpenPGP},
		{"command-chaining", "XfrBlock command chaining at dwMaxCCIDMessageLength-10 bytes and one more", c.commandChaining},
		{"response-chaining", "XfrBlock response chaining at dwMaxCCIDMessageLength-10 bytes and one more", c.responseChaining},
		{"zlp", "answers of exactly wMaxPacketSize multiples end with a ZLP", c.zlp},
		{"abort-control-first", "ABORT: class request, then PC_to_RDR_Abort", c.abortControlFirst},
		{"abort-bulk-first", "ABORT: PC_to_RDR_Abort, then class request", c.abortBulkFirst},
		{"time-extension", "time extension while a slow command runs", c.timeExtension},
		{"abort-in-flight", "ABORT of a running command: CMD_ABORTED, then SlotStatus", c.abortInFlight},
		{"notify-slot-change", "NotifySlotChange on card removal and insertion", c.notify},
		{"halt-recovery", "GetSlotStatus works after clearing an endpoint halt", c.haltRecovery},
		{"bseq-echo", "every answer echoes bSeq", c.seqEcho},
	}
}

// ---- descriptor rules (research ccid-host-stack §2.1, §2.3, §3.2) ----

func (c *checker) descInterface(_ context.Context, s *session) (Verdict, string) {
	i := s.info.Interface
	got := fmt.Sprintf("class 0x%02X, subclass 0x%02X, protocol 0x%02X", i.Class, i.SubClass, i.Protocol)
	switch {
	case i.Class == 0x0B && i.SubClass == 0 && i.Protocol == 0:
		return Pass, got
	case i.Class == 0xFF && len(i.Extra) == 54:
		return Fail, got + ": libccid accepts a vendor class with a 54-byte descriptor, GnuPG's internal driver matches class 0x0B/0/0 only"
	case i.Class == 0x0B && i.Protocol != 0:
		return Fail, got + ": protocol 1/2 is ICCD (control pipe); libccid only polls and GnuPG only binds protocol 0"
	}
	return Fail, got + ": GnuPG's driver needs 0x0B/0/0"
}

func (c *checker) descEndpoints(_ context.Context, s *session) (Verdict, string) {
	i := s.info.Interface
	var problems []string
	if i.NumEndpoints != 3 || len(i.Endpoints) != 3 {
		problems = append(problems, fmt.Sprintf("bNumEndpoints %d with %d endpoint descriptors, want 3 (libccid polls the interrupt pipe only with 3)", i.NumEndpoints, len(i.Endpoints)))
	}
	bi, okIn := i.BulkIn()
	bo, okOut := i.BulkOut()
	it, okIntr := i.InterruptIn()
	if !okIn || !okOut {
		problems = append(problems, "missing a bulk IN or bulk OUT endpoint")
	}
	if !okIntr {
		problems = append(problems, "no interrupt IN endpoint (no NotifySlotChange; pcscd falls back to polling every 400 ms)")
	}
	for _, e := range []struct {
		ok   bool
		e    Endpoint
		want byte
	}{{okIn, bi, TransferBulk}, {okOut, bo, TransferBulk}, {okIntr, it, TransferInterrupt}} {
		if e.ok && e.e.Attributes != e.want {
			problems = append(problems, fmt.Sprintf("endpoint 0x%02X bmAttributes 0x%02X, want exactly 0x%02X (libccid compares the whole byte)", e.e.Address, e.e.Attributes, e.want))
		}
	}
	var eps []string
	for _, e := range i.Endpoints {
		eps = append(eps, e.String())
	}
	got := strings.Join(eps, "; ")
	if len(problems) > 0 {
		return Fail, strings.Join(problems, "; ") + " [" + got + "]"
	}
	return Pass, got
}

func (c *checker) descExtra(_ context.Context, s *session) (Verdict, string) {
	x := s.info.Interface.Extra
	s.note("descriptor", x, "interface extra")
	switch {
	case len(x) != ccid.DescriptorSize:
		return Fail, fmt.Sprintf("extra descriptors of %d bytes between the interface and its first endpoint; libccid requires exactly 54 (\"Extra field has a wrong length\")", len(x))
	case x[0] != ccid.DescriptorSize:
		return Fail, fmt.Sprintf("bLength %d, want 54", x[0])
	case x[1] != ccid.DescriptorType:
		return Fail, fmt.Sprintf("bDescriptorType 0x%02X, want 0x21 (neither host checks it, the CCID spec requires it)", x[1])
	}
	return Pass, "54 bytes, bDescriptorType 0x21"
}

func (c *checker) needDesc(s *session) (Verdict, string, bool) {
	if s.descErr != nil {
		return Fail, "no CCID class descriptor: " + s.descErr.Error(), false
	}
	return "", "", true
}

func (c *checker) descProtocols(_ context.Context, s *session) (Verdict, string) {
	if v, d, ok := c.needDesc(s); !ok {
		return v, d
	}
	p := s.desc.Protocols
	if p&ccid.ProtocolMaskT1 == 0 {
		return Fail, fmt.Sprintf("dwProtocols 0x%08X (%s): GnuPG requires T=1", p, protocols(p))
	}
	return Pass, fmt.Sprintf("dwProtocols 0x%08X (%s)", p, protocols(p))
}

func (c *checker) descLevel(_ context.Context, s *session) (Verdict, string) {
	if v, d, ok := c.needDesc(s); !ok {
		return v, d
	}
	f := s.desc.Features
	lvl := f & ccid.FeatureLevelMask
	got := fmt.Sprintf("dwFeatures 0x%08X: %s", f, features(f))
	switch lvl {
	case ccid.FeatureLevelTPDU, ccid.FeatureLevelShortAPDU, ccid.FeatureLevelExtendedAPDU:
		return Pass, got
	}
	return Fail, got + ": GnuPG requires TPDU or APDU level"
}

func (c *checker) descMaxMessage(_ context.Context, s *session) (Verdict, string) {
	if v, d, ok := c.needDesc(s); !ok {
		return v, d
	}
	m := s.desc.MaxCCIDMessageLength
	switch {
	case m > ccid.MaxHostMessageLength:
		return Fail, fmt.Sprintf("dwMaxCCIDMessageLength %d > 2065: GnuPG reads bulk-IN into 2065 bytes, a longer DataBlock overflows it", m)
	case m < ccid.HeaderSize+33:
		return Fail, fmt.Sprintf("dwMaxCCIDMessageLength %d cannot carry a 33-byte ATR", m)
	}
	return Pass, fmt.Sprintf("dwMaxCCIDMessageLength %d (command blocks of %d bytes)", m, m-10)
}

func (c *checker) descClocksRates(ctx context.Context, s *session) (Verdict, string) {
	if v, d, ok := c.needDesc(s); !ok {
		return v, d
	}
	var problems, got []string
	for _, q := range []struct {
		name    string
		request byte
		n       byte
	}{{"GET_CLOCK_FREQUENCIES", 0x02, s.desc.NumClockSupported}, {"GET_DATA_RATES", 0x03, s.desc.NumDataRatesSupported}} {
		buf := make([]byte, 4*256)
		tctx, cancel := s.ctx(ctx, s.timeout)
		n, err := s.dev.Control(tctx, 0xA1, q.request, 0, uint16(s.info.Interface.Number), buf)
		cancel()
		setup := []byte{0xA1, q.request, 0, 0, byte(s.info.Interface.Number), 0, 0, 4}
		switch {
		case err != nil && q.n == 0:
			s.note("control", setup, q.name+": "+err.Error())
			got = append(got, fmt.Sprintf("%s refused (%v) with count 0", q.name, err))
		case err != nil:
			s.note("control", setup, q.name+": "+err.Error())
			problems = append(problems, fmt.Sprintf("count %d but %s failed: %v", q.n, q.name, err))
		default:
			s.note("control", buf[:n], q.name+" answer")
			if n != 4*int(q.n) {
				problems = append(problems, fmt.Sprintf("%s returned %d bytes, the descriptor announces %d values (%d bytes)", q.name, n, q.n, 4*int(q.n)))
			} else {
				got = append(got, fmt.Sprintf("%s returned %d values", q.name, q.n))
			}
		}
	}
	if len(problems) > 0 {
		return Fail, strings.Join(problems, "; ")
	}
	return Pass, strings.Join(got, "; ")
}

// ---- slot commands ----

func (c *checker) drainInterrupt(ctx context.Context, s *session) (Verdict, string) {
	if !s.hasIntr {
		return NotApplicable, "no interrupt endpoint"
	}
	var msgs []string
	for i := 0; i < 16; i++ {
		buf := make([]byte, 64)
		tctx, cancel := s.ctx(ctx, 200*time.Millisecond)
		n, err := s.dev.InterruptIn(tctx, buf)
		cancel()
		if err != nil {
			break
		}
		s.note("interrupt", buf[:n], "")
		msgs = append(msgs, fmt.Sprintf("% X", buf[:n]))
	}
	c.intrFrames = append(c.intrFrames, s.ev...)
	if len(msgs) == 0 {
		return Pass, "none pending"
	}
	return Pass, fmt.Sprintf("%d pending: %s", len(msgs), strings.Join(msgs, ", "))
}

func (c *checker) slotStatus(ctx context.Context, s *session) (Verdict, string) {
	m, err := s.okExchange(ctx, ccid.NewGetSlotStatus(0, s.nextSeq()))
	if err != nil {
		return Fail, err.Error()
	}
	if len(m.Data) != 0 {
		return Fail, fmt.Sprintf("SlotStatus with dwLength %d, want 0 (libccid reads it into 10 bytes)", len(m.Data))
	}
	switch m.ICCStatus() {
	case ccid.ICCAbsent:
		return Pass, "no card present: the card checks will not apply"
	case ccid.ICCActive, ccid.ICCInactive:
		c.card = true
		return Pass, fmt.Sprintf("card present, bmICCStatus %d, bClockStatus %d", m.ICCStatus(), m.ClockStatus())
	}
	return Fail, fmt.Sprintf("bmICCStatus 3 (RFU) in bStatus 0x%02X", m.Status())
}

func (c *checker) powerOn(ctx context.Context, s *session) (Verdict, string) {
	if !c.card {
		return NotApplicable, "no card present"
	}
	atr, m, err := s.powerOn(ctx)
	if err != nil {
		return Fail, err.Error()
	}
	if m.ICCStatus() != ccid.ICCActive {
		return Fail, fmt.Sprintf("PowerOn answered OK with bmICCStatus %d, want 0 (active)", m.ICCStatus())
	}
	a, err := ParseATR(atr)
	if err != nil {
		return Fail, fmt.Sprintf("ATR % X: %v", atr, err)
	}
	if !a.OffersT1() {
		return Fail, fmt.Sprintf("ATR % X offers T=%v, GnuPG requires T=1", atr, a.Protocols)
	}
	c.atr = bytes.Clone(atr)
	return Pass, fmt.Sprintf("ATR % X: T=%v, %d historical bytes, TCK valid", atr, a.Protocols, a.Historical)
}

func (c *checker) needActive(s *session) (Verdict, string, bool) {
	if !c.card {
		return NotApplicable, "no card present", false
	}
	if c.atr == nil {
		return Fail, "the card could not be powered on", false
	}
	return "", "", true
}

func (c *checker) getParameters(ctx context.Context, s *session) (Verdict, string) {
	if v, d, ok := c.needActive(s); !ok {
		return v, d
	}
	m, err := s.okExchange(ctx, ccid.NewGetParameters(0, s.nextSeq()))
	if err != nil {
		return Fail, err.Error()
	}
	if m.ProtocolNum() != ccid.ProtocolT1 || len(m.Data) != 7 {
		return Fail, fmt.Sprintf("bProtocolNum %d with %d bytes; GnuPG (auto_param) expects T=1 and 7 bytes", m.ProtocolNum(), len(m.Data))
	}
	return Pass, fmt.Sprintf("T=1 parameters % X", m.Data)
}

func (c *checker) setParameters(ctx context.Context, s *session) (Verdict, string) {
	if v, d, ok := c.needActive(s); !ok {
		return v, d
	}
	p := ccid.T1ParametersFromATR(c.atr).Bytes()
	m, err := s.okExchange(ctx, ccid.NewSetParameters(0, s.nextSeq(), ccid.ProtocolT1, p[:]))
	if err != nil {
		return Fail, err.Error() + " (GnuPG ignores a failed SetParameters, libccid with 0x40 never sends it)"
	}
	if m.ProtocolNum() != ccid.ProtocolT1 || len(m.Data) != 7 {
		return Fail, fmt.Sprintf("bProtocolNum %d with %d bytes, want T=1 and 7 bytes", m.ProtocolNum(), len(m.Data))
	}
	ifsc := m.Data[5]
	if ifsc < 16 || ifsc > 254 {
		return Fail, fmt.Sprintf("bIFSC %d outside 16..254 (GnuPG falls back to 128)", ifsc)
	}
	return Pass, fmt.Sprintf("sent % X from the ATR, got % X", p[:], m.Data)
}

func (c *checker) powerOff(ctx context.Context, s *session) (Verdict, string) {
	if v, d, ok := c.needActive(s); !ok {
		return v, d
	}
	m, err := s.okExchange(ctx, ccid.NewIccPowerOff(0, s.nextSeq()))
	if err != nil {
		return Fail, err.Error()
	}
	if m.ICCStatus() != ccid.ICCInactive {
		return Fail, fmt.Sprintf("after PowerOff bmICCStatus %d, want 1 (present, inactive)", m.ICCStatus())
	}
	m, err = s.okExchange(ctx, ccid.NewGetSlotStatus(0, s.nextSeq()))
	if err != nil {
		return Fail, err.Error()
	}
	if m.ICCStatus() != ccid.ICCInactive {
		return Fail, fmt.Sprintf("GetSlotStatus after PowerOff: bmICCStatus %d, want 1", m.ICCStatus())
	}
	atr, _, err := s.powerOn(ctx)
	if err != nil {
		c.atr = nil
		return Fail, "PowerOn after PowerOff: " + err.Error()
	}
	if !bytes.Equal(atr, c.atr) {
		return Fail, fmt.Sprintf("second ATR % X differs from the first % X", atr, c.atr)
	}
	return Pass, "PowerOff: present+inactive, clock stopped; PowerOn again gives the same ATR"
}

func (c *checker) unsupported(ctx context.Context, s *session) (Verdict, string) {
	type probeCmd struct {
		m    ccid.Message
		skip string
	}
	var cmds []probeCmd
	cmds = append(cmds, probeCmd{m: ccid.NewEscape(0, 0, nil)})
	cmds = append(cmds, probeCmd{m: ccid.NewIccClock(0, 0, 0)}) // restart the clock: harmless
	cmds = append(cmds, probeCmd{m: ccid.NewT0APDU(0, 0, 0, 0, 0)})
	sec := probeCmd{m: ccid.NewSecure(0, 0, 0, 0, []byte{0x00})}
	if s.descErr == nil && s.desc.PINSupport != 0 {
		sec.skip = "bPINSupport is not 0: a Secure command would start PIN entry"
	}
	cmds = append(cmds, sec)
	mech := probeCmd{m: ccid.NewMechanical(0, 0, 5)} // unlock
	if s.descErr == nil && s.desc.Mechanical != 0 {
		mech.skip = "dwMechanical is not 0: the reader has a mechanism"
	}
	cmds = append(cmds, mech)
	cmds = append(cmds, probeCmd{m: ccid.NewSetDataRateAndClockFrequency(0, 0, s.desc.DefaultClock, s.desc.DataRate)})
	cmds = append(cmds, probeCmd{m: ccid.Message{Type: 0x70}}) // not a CCID 1.1 command

	var problems, got []string
	for _, pc := range cmds {
		if pc.skip != "" {
			got = append(got, fmt.Sprintf("%s skipped: %s", pc.m.Type, pc.skip))
			continue
		}
		pc.m.Seq = s.nextSeq()
		m, err := s.exchange(ctx, pc.m)
		switch {
		case err != nil:
			problems = append(problems, err.Error())
		case m.CommandStatus() == ccid.CommandOK:
			got = append(got, fmt.Sprintf("%s supported (%s)", pc.m.Type, m.Type))
		case m.Error() != ccid.CmdNotSupported:
			problems = append(problems, fmt.Sprintf("%s failed with bError 0x%02X (%s), want 0x00 CMD_NOT_SUPPORTED", pc.m.Type, byte(m.Error()), m.Error()))
		default:
			got = append(got, fmt.Sprintf("%s: %s, CMD_NOT_SUPPORTED", pc.m.Type, m.Type))
		}
	}
	if len(problems) > 0 {
		return Fail, strings.Join(problems, "; ")
	}
	return Pass, strings.Join(got, "; ")
}

func (c *checker) wrongSlot(ctx context.Context, s *session) (Verdict, string) {
	slot := byte(1)
	if s.descErr == nil {
		if s.desc.MaxSlotIndex == 0xFF {
			return NotApplicable, "bMaxSlotIndex 255: every slot number exists"
		}
		slot = s.desc.MaxSlotIndex + 1
	}
	cmd := ccid.NewGetSlotStatus(slot, s.nextSeq())
	m, err := s.exchange(ctx, cmd)
	if err != nil {
		return Fail, err.Error()
	}
	if m.CommandStatus() != ccid.CommandFailed || m.Error() != ccid.ErrOffsetSlot {
		return Fail, fmt.Sprintf("GetSlotStatus for slot %d: bStatus 0x%02X bError 0x%02X, want failed with bError 0x05 (bad bSlot)", slot, m.Status(), byte(m.Error()))
	}
	return Pass, fmt.Sprintf("slot %d: bStatus 0x%02X, bError 0x05", slot, m.Status())
}

// ---- APDU exchanges ----

func (c *checker) needAPDU(s *session) (Verdict, string, bool) {
	if v, d, ok := c.needActive(s); !ok {
		return v, d, false
	}
	if s.descErr != nil {
		return Fail, "no class descriptor", false
	}
	return "", "", true
}

func (c *checker) selectOpenPGP(ctx context.Context, s *session) (Verdict, string) {
	if v, d, ok := c.needAPDU(s); !ok {
		return v, d
	}
	rapdu, _, err := s.transmit(ctx, openPGPSelect)
	if err != nil {
		return Fail, err.Error()
	}
	if sw(rapdu) != 0x9000 {
		return Pass, fmt.Sprintf("SW %04X: the card has no OpenPGP application; the GET CHALLENGE checks will not apply", sw(rapdu))
	}
	c.openpgp = true
	// Extended capabilities (GET DATA C0, OpenPGP card 3.4.1 §4.4.3.7): byte 0 bit 6 GET CHALLENGE, bytes 2-3
	// its maximum length.
	rapdu, _, err = s.transmit(ctx, []byte{0x00, 0xCA, 0x00, 0xC0, 0x00})
	if err != nil {
		return Fail, "GET DATA C0: " + err.Error()
	}
	if sw(rapdu) == 0x9000 && len(rapdu) >= 6 && rapdu[0]&0x40 != 0 {
		c.challenge = int(binary.BigEndian.Uint16(rapdu[2:4]))
	}
	return Pass, fmt.Sprintf("SW 9000; GET CHALLENGE up to %d bytes", c.challenge)
}

func (c *checker) extended(s *session) (Verdict, string, bool) {
	if v, d, ok := c.needAPDU(s); !ok {
		return v, d, false
	}
	if s.desc.Features&ccid.FeatureLevelMask != ccid.FeatureLevelExtendedAPDU {
		return NotApplicable, "not at extended APDU level: the host does not chain", false
	}
	return "", "", true
}

// unknownAPDU returns an extended-length APDU of exactly n bytes (n >= 8) with INS 0xEE.
func unknownAPDU(n int) []byte {
	a := make([]byte, n)
	a[1] = insUnknown
	lc := n - 7
	a[4], a[5], a[6] = 0, byte(lc>>8), byte(lc)
	for i := 7; i < n; i++ {
		a[i] = byte(i)
	}
	return a
}

func (c *checker) commandChaining(ctx context.Context, s *session) (Verdict, string) {
	if v, d, ok := c.extended(s); !ok {
		return v, d
	}
	var got []string
	for _, n := range []int{s.chunk, s.chunk + 1, 2*s.chunk + 1} {
		blocks := (n + s.chunk - 1) / s.chunk
		rapdu, chains, err := s.transmit(ctx, unknownAPDU(n))
		if err != nil {
			return Fail, fmt.Sprintf("APDU of %d bytes (%d blocks): %v", n, blocks, err)
		}
		if sw(rapdu)>>8 == 0x6F || sw(rapdu) == 0x6700 {
			return Fail, fmt.Sprintf("APDU of %d bytes: SW %04X, the APDU did not reach the card whole", n, sw(rapdu))
		}
		got = append(got, fmt.Sprintf("%d bytes in %d blocks: SW %04X (%d response blocks)", n, blocks, sw(rapdu), len(chains)))
	}
	return Pass, strings.Join(got, "; ")
}

func (c *checker) responseChaining(ctx context.Context, s *session) (Verdict, string) {
	if v, d, ok := c.extended(s); !ok {
		return v, d
	}
	if c.challenge < s.chunk-2 {
		return NotApplicable, fmt.Sprintf("needs GET CHALLENGE of %d bytes; the card offers %d", s.chunk, c.challenge)
	}
	var got []string
	for _, rlen := range []int{s.chunk, s.chunk + 1, s.chunk + 2} {
		le := rlen - 2
		if le > c.challenge {
			break
		}
		rapdu, chains, err := s.transmit(ctx, []byte{0x00, 0x84, 0x00, 0x00, 0x00, byte(le >> 8), byte(le)})
		if err != nil {
			return Fail, fmt.Sprintf("GET CHALLENGE %d: %v", le, err)
		}
		wantChains := []byte{byte(ccid.ChainNone)}
		if rlen > s.chunk {
			wantChains = []byte{byte(ccid.ChainBegin), byte(ccid.ChainEnd)}
		}
		if !bytes.Equal(chains, wantChains) {
			return Fail, fmt.Sprintf("R-APDU of %d bytes came in blocks with bChainParameter % X, want % X", rlen, chains, wantChains)
		}
		if len(rapdu) != rlen || sw(rapdu) != 0x9000 {
			return Fail, fmt.Sprintf("GET CHALLENGE %d: %d bytes, SW %04X", le, len(rapdu), sw(rapdu))
		}
		got = append(got, fmt.Sprintf("%d bytes: chain % X", rlen, chains))
	}
	return Pass, strings.Join(got, "; ")
}

func (c *checker) zlp(ctx context.Context, s *session) (Verdict, string) {
	if v, d, ok := c.needAPDU(s); !ok {
		return v, d
	}
	if c.challenge == 0 {
		return NotApplicable, "needs GET CHALLENGE to choose the answer's length; the card does not offer it"
	}
	var got []string
	for k := 1; k <= 2; k++ {
		le := k*s.mps - ccid.HeaderSize - 2 // DataBlock of exactly k packets
		if le <= 0 || le > c.challenge || le+2 > s.chunk {
			continue
		}
		cmd := ccid.NewXfrBlock(0, s.nextSeq(), 0, ccid.ChainNone, []byte{0x00, 0x84, 0x00, 0x00, 0x00, byte(le >> 8), byte(le)})
		if err := s.send(ctx, cmd); err != nil {
			return Fail, err.Error()
		}
		m, err := s.answer(ctx, cmd, s.timeout)
		if errors.Is(err, ErrTimeout) {
			return Fail, fmt.Sprintf("DataBlock of %d bytes (%d x wMaxPacketSize %d): the bulk read did not end within %v: no ZLP (libccid waits its whole timeout)", le+12, k, s.mps, s.timeout)
		}
		if err != nil {
			return Fail, err.Error()
		}
		if len(m.Data) != le+2 {
			return Fail, fmt.Sprintf("DataBlock with %d bytes, want %d", len(m.Data), le+2)
		}
		got = append(got, fmt.Sprintf("%d-byte DataBlock ended on a ZLP", le+12))
	}
	if len(got) == 0 {
		return NotApplicable, fmt.Sprintf("no answer length fits: wMaxPacketSize %d, GET CHALLENGE up to %d", s.mps, c.challenge)
	}
	return Pass, strings.Join(got, "; ")
}

// ---- ABORT ----

func (c *checker) abortControl(ctx context.Context, s *session, seq byte) error {
	tctx, cancel := s.ctx(ctx, s.timeout)
	defer cancel()
	slot := byte(0)
	s.note("control", []byte{0x21, 0x01, slot, seq, byte(s.info.Interface.Number), 0, 0, 0}, "ABORT class request")
	if _, err := s.dev.Control(tctx, 0x21, 0x01, uint16(seq)<<8|uint16(slot), uint16(s.info.Interface.Number), nil); err != nil {
		return fmt.Errorf("ABORT class request: %w (GnuPG's recovery fails if it stalls)", err)
	}
	return nil
}

func (c *checker) abortBulk(ctx context.Context, s *session, seq byte) error {
	m, err := s.exchange(ctx, ccid.NewAbort(0, seq))
	if err != nil {
		return err
	}
	if m.CommandStatus() != ccid.CommandOK {
		return fmt.Errorf("PC_to_RDR_Abort answered bStatus 0x%02X bError 0x%02X, want success", m.Status(), byte(m.Error()))
	}
	return nil
}

func (c *checker) afterAbort(ctx context.Context, s *session) error {
	m, err := s.exchange(ctx, ccid.NewGetSlotStatus(0, s.nextSeq()))
	if err != nil {
		return err
	}
	if m.CommandStatus() != ccid.CommandOK {
		return fmt.Errorf("GetSlotStatus after the ABORT pair: bStatus 0x%02X bError 0x%02X (%s): the abort was not completed", m.Status(), byte(m.Error()), m.Error())
	}
	return nil
}

func (c *checker) abortControlFirst(ctx context.Context, s *session) (Verdict, string) {
	seq := s.nextSeq()
	if err := c.abortControl(ctx, s, seq); err != nil {
		return Fail, err.Error()
	}
	if err := c.abortBulk(ctx, s, seq); err != nil {
		return Fail, err.Error()
	}
	if err := c.afterAbort(ctx, s); err != nil {
		return Fail, err.Error()
	}
	return Pass, fmt.Sprintf("class request and PC_to_RDR_Abort with bSeq 0x%02X; SlotStatus OK; next command OK", seq)
}

func (c *checker) abortBulkFirst(ctx context.Context, s *session) (Verdict, string) {
	seq := s.nextSeq()
	if err := c.abortBulk(ctx, s, seq); err != nil {
		return Fail, err.Error()
	}
	if err := c.abortControl(ctx, s, seq); err != nil {
		return Fail, err.Error()
	}
	if err := c.afterAbort(ctx, s); err != nil {
		return Fail, err.Error() + " (a reader that completes the class request's status stage before it pairs the request with PC_to_RDR_Abort fails here now and then)"
	}
	return Pass, fmt.Sprintf("PC_to_RDR_Abort and class request with bSeq 0x%02X; SlotStatus OK; next command OK", seq)
}

// ---- time extension ----

func (c *checker) timeExtension(ctx context.Context, s *session) (Verdict, string) {
	if len(c.opts.SlowAPDUs) == 0 {
		return NotApplicable, "needs a slow command: run with --slow-apdu (for example VERIFY PW3 and an RSA-4096 key generation)"
	}
	if v, d, ok := c.needAPDU(s); !ok {
		return v, d
	}
	// Select the OpenPGP application again: the chaining checks sent unknown commands.
	if c.openpgp {
		if _, _, err := s.transmit(ctx, openPGPSelect); err != nil {
			return Fail, "SELECT: " + err.Error()
		}
	}
	setup, slow := c.opts.SlowAPDUs[:len(c.opts.SlowAPDUs)-1], c.opts.SlowAPDUs[len(c.opts.SlowAPDUs)-1]
	for _, a := range setup {
		rapdu, _, err := s.transmit(ctx, a)
		if err != nil {
			return Fail, fmt.Sprintf("setup APDU % X: %v", a, err)
		}
		if sw(rapdu) != 0x9000 {
			return Fail, fmt.Sprintf("setup APDU % X: SW %04X", a, sw(rapdu))
		}
	}
	if len(slow) > s.chunk {
		return NotApplicable, fmt.Sprintf("the slow APDU (%d bytes) must fit one block of %d", len(slow), s.chunk)
	}
	cmd := ccid.NewXfrBlock(0, s.nextSeq(), 0, ccid.ChainNone, slow)
	if err := s.send(ctx, cmd); err != nil {
		return Fail, err.Error()
	}
	start := s.now()
	last := start
	var wtx int
	var gaps []time.Duration
	mult := byte(1)
	for {
		m, err := s.recv(ctx, c.opts.SlowTimeout)
		if err != nil {
			return Fail, fmt.Sprintf("after %d time extensions: %v", wtx, err)
		}
		now := s.now()
		gap := now.Sub(last)
		gaps = append(gaps, gap)
		last = now
		s.seqs = append(s.seqs, seqRecord{cmd: cmd.Type, rsp: m.Type, want: cmd.Seq, got: m.Seq})
		if m.Seq != cmd.Seq {
			return Fail, fmt.Sprintf("frame %d carries bSeq 0x%02X, want 0x%02X: %v", len(gaps), m.Seq, cmd.Seq, errSeq)
		}
		if m.Type != ccid.MsgDataBlock {
			return Fail, fmt.Sprintf("frame %d is %s, want RDR_to_PC_DataBlock: %v", len(gaps), m.Type, errType)
		}
		if limit := 5 * time.Second * time.Duration(mult); gap > limit {
			return Fail, fmt.Sprintf("%v between frames %d and %d: GnuPG gives up after %v", gap.Round(time.Millisecond), len(gaps)-1, len(gaps), limit)
		}
		if m.CommandStatus() == ccid.CommandTimeExtension {
			if m.Status() != 0x80 || m.Error() == 0 || len(m.Data) != 0 {
				return Fail, fmt.Sprintf("time extension with bStatus 0x%02X, bError %d, dwLength %d: GnuPG needs bStatus exactly 0x80, libccid a multiplier >= 1, no data", m.Status(), byte(m.Error()), len(m.Data))
			}
			wtx++
			mult = byte(m.Error())
			if mult == 0xFF {
				mult = 1
			}
			continue
		}
		if m.CommandStatus() != ccid.CommandOK {
			return Fail, fmt.Sprintf("the slow command failed: bStatus 0x%02X bError 0x%02X (%s)", m.Status(), byte(m.Error()), m.Error())
		}
		total := now.Sub(start)
		if wtx == 0 {
			return NotApplicable, fmt.Sprintf("the command answered in %v without a time extension; it was not slow enough", total.Round(time.Millisecond))
		}
		var ms []string
		for _, g := range gaps {
			ms = append(ms, fmt.Sprint(g.Round(time.Millisecond)))
		}
		if rapdu := m.Data; len(rapdu) >= 2 && m.ChainParameter() == 0 && sw(rapdu) != 0x9000 {
			return Fail, fmt.Sprintf("%d time extensions, then SW %04X", wtx, sw(rapdu))
		}
		if m.ChainParameter() == byte(ccid.ChainBegin) {
			// Drain the rest of a chained answer (a public key) so the next check starts clean.
			for more := true; more; {
				mm, err := s.okExchange(ctx, ccid.NewXfrBlock(0, s.nextSeq(), 0, ccid.ChainEmpty, nil))
				if err != nil {
					return Fail, "reading the rest of the answer: " + err.Error()
				}
				more = mm.ChainParameter() == byte(ccid.ChainContinue)
			}
		}
		c.slowOK = true
		return Pass, fmt.Sprintf("%d time extensions in %v; gaps between frames %s", wtx, total.Round(time.Millisecond), strings.Join(ms, ", "))
	}
}

// abortInFlight sends the slow APDU again and aborts it as GnuPG's abort_cmd does once the reader has sent a
// time extension for it: the class request, then PC_to_RDR_Abort with the same bSeq. The command must end with
// CMD_ABORTED (or its normal answer if it won the race), the Abort with a successful SlotStatus, and the slot must
// work afterwards.
func (c *checker) abortInFlight(ctx context.Context, s *session) (Verdict, string) {
	if len(c.opts.SlowAPDUs) == 0 {
		return NotApplicable, "needs a slow command (--slow-apdu or --slow-keygen-pw3)"
	}
	if !c.slowOK {
		return NotApplicable, "the time-extension check did not pass, so no command is known to run long enough"
	}
	slow := c.opts.SlowAPDUs[len(c.opts.SlowAPDUs)-1]
	cmd := ccid.NewXfrBlock(0, s.nextSeq(), 0, ccid.ChainNone, slow)
	if err := s.send(ctx, cmd); err != nil {
		return Fail, err.Error()
	}
	m, err := s.recv(ctx, c.opts.SlowTimeout)
	if err != nil {
		return Fail, "waiting for a time extension: " + err.Error()
	}
	if m.Seq != cmd.Seq || m.CommandStatus() != ccid.CommandTimeExtension {
		return NotApplicable, fmt.Sprintf("the command answered (bStatus 0x%02X) before a time extension showed it running", m.Status())
	}
	seq := s.nextSeq()
	if err := c.abortControl(ctx, s, seq); err != nil {
		return Fail, err.Error()
	}
	outcome := ""
	for outcome == "" {
		m, err := s.recv(ctx, c.opts.SlowTimeout)
		if err != nil {
			return Fail, "after the ABORT class request: " + err.Error()
		}
		s.seqs = append(s.seqs, seqRecord{cmd: cmd.Type, rsp: m.Type, want: cmd.Seq, got: m.Seq})
		switch {
		case m.Seq != cmd.Seq || m.Type != ccid.MsgDataBlock:
			return Fail, fmt.Sprintf("%s with bSeq 0x%02X while the aborted XfrBlock (bSeq 0x%02X) had no answer", m.Type, m.Seq, cmd.Seq)
		case m.CommandStatus() == ccid.CommandTimeExtension:
			continue
		case m.CommandStatus() == ccid.CommandFailed && m.Error() == ccid.CmdAborted:
			outcome = "answered CMD_ABORTED"
		case m.CommandStatus() == ccid.CommandOK:
			outcome = "finished before the abort reached it"
		default:
			return Fail, fmt.Sprintf("aborted command answered bStatus 0x%02X bError 0x%02X (%s), want CMD_ABORTED (0xFF)", m.Status(), byte(m.Error()), m.Error())
		}
	}
	if err := c.abortBulk(ctx, s, seq); err != nil {
		return Fail, err.Error()
	}
	if err := c.afterAbort(ctx, s); err != nil {
		return Fail, err.Error()
	}
	return Pass, "time extension, ABORT class request and PC_to_RDR_Abort: the command " + outcome + "; SlotStatus OK; next command OK"
}

// ---- NotifySlotChange ----

func (c *checker) notify(ctx context.Context, s *session) (Verdict, string) {
	if c.opts.NotifyWait <= 0 {
		return NotApplicable, "a host cannot remove the card by itself: run with --notify-wait and remove, then insert the card when asked"
	}
	if !s.hasIntr {
		return Fail, "no interrupt endpoint"
	}
	nslots := 1
	if s.descErr == nil {
		nslots = int(s.desc.MaxSlotIndex) + 1
	}
	for _, step := range []struct {
		prompt  string
		present bool
		icc     byte
	}{{"remove the card now", false, ccid.ICCAbsent}, {"insert the card now", true, ccid.ICCInactive}} {
		if c.opts.Prompt != nil {
			c.opts.Prompt(step.prompt)
		}
		deadline := time.Now().Add(c.opts.NotifyWait)
		for polls := 0; ; {
			buf := make([]byte, 64)
			wait := time.Now().Add(notifyPoll)
			if deadline.Before(wait) {
				wait = deadline
			}
			tctx, cancel := context.WithDeadline(ctx, wait)
			n, err := s.dev.InterruptIn(tctx, buf)
			cancel()
			if errors.Is(err, ErrTimeout) && time.Now().Before(deadline) {
				// Poll like pcscd does without an interrupt pipe (every 400 ms): a fault plan in the reader
				// may act on a command, and the slot state must agree with what the notification will say.
				polls++
				rec := s.record
				s.record = rec && polls <= 3
				_, err := s.exchange(ctx, ccid.NewGetSlotStatus(0, s.nextSeq()))
				s.record = rec
				if err != nil {
					return Fail, fmt.Sprintf("%s: GetSlotStatus while waiting: %v", step.prompt, err)
				}
				continue
			}
			if err != nil {
				return Fail, fmt.Sprintf("%s: no NotifySlotChange within %v: %v", step.prompt, c.opts.NotifyWait, err)
			}
			s.note("interrupt", buf[:n], "")
			if n == 0 || ccid.MessageType(buf[0]) != ccid.MsgNotifySlotChange {
				continue
			}
			sc, err := ccid.ParseNotifySlotChange(buf[:n], nslots)
			if err != nil {
				return Fail, err.Error()
			}
			if sc[0].Changed && sc[0].Present == step.present {
				break
			}
		}
		m, err := s.exchange(ctx, ccid.NewGetSlotStatus(0, s.nextSeq()))
		if err != nil {
			return Fail, err.Error()
		}
		if m.ICCStatus() != step.icc {
			return Fail, fmt.Sprintf("after the notification GetSlotStatus says bmICCStatus %d, want %d", m.ICCStatus(), step.icc)
		}
	}
	return Pass, "removal: 0x50 with slot 0 changed+absent, GetSlotStatus absent; insertion: changed+present, GetSlotStatus inactive"
}

// notifyPoll is how long the NotifySlotChange check waits on the interrupt pipe between two GetSlotStatus.
const notifyPoll = 400 * time.Millisecond

// ---- halt ----

func (c *checker) haltRecovery(ctx context.Context, s *session) (Verdict, string) {
	if s.in.Address == 0 || s.out.Address == 0 {
		return Fail, "no bulk endpoints"
	}
	// GnuPG's recovery: clear_halt on both bulk endpoints, then GetSlotStatus.
	for _, ep := range []byte{s.in.Address, s.out.Address} {
		s.note("control", []byte{0x02, 0x01, 0, 0, ep, 0, 0, 0}, "CLEAR_FEATURE(ENDPOINT_HALT)")
		tctx, cancel := s.ctx(ctx, s.timeout)
		err := s.dev.ClearHalt(tctx, ep)
		cancel()
		if err != nil {
			return Fail, fmt.Sprintf("clear halt on 0x%02X: %v", ep, err)
		}
	}
	if _, err := s.okExchange(ctx, ccid.NewGetSlotStatus(0, s.nextSeq())); err != nil {
		return Fail, "after clear halt: " + err.Error()
	}
	detail := "clear halt on both bulk endpoints, then GetSlotStatus OK"
	// A real halt: SET_FEATURE(ENDPOINT_HALT) on bulk-IN, which the device controller handles itself.
	tctx, cancel := s.ctx(ctx, s.timeout)
	s.note("control", []byte{0x02, 0x03, 0, 0, s.in.Address, 0, 0, 0}, "SET_FEATURE(ENDPOINT_HALT)")
	_, err := s.dev.Control(tctx, 0x02, 0x03, 0, uint16(s.in.Address), nil)
	cancel()
	if err != nil {
		return Pass, detail + fmt.Sprintf("; the device refused SET_FEATURE(ENDPOINT_HALT) (%v), so no real halt was tried", err)
	}
	tctx, cancel = s.ctx(ctx, 500*time.Millisecond)
	_, err = s.dev.BulkIn(tctx, make([]byte, s.mps))
	cancel()
	stalled := errors.Is(err, ErrStall)
	s.note("in", nil, fmt.Sprintf("bulk-IN read while halted: %v", err))
	tctx, cancel = s.ctx(ctx, s.timeout)
	err = s.dev.ClearHalt(tctx, s.in.Address)
	cancel()
	if err != nil {
		return Fail, fmt.Sprintf("clear halt after SET_FEATURE: %v", err)
	}
	if _, err := s.okExchange(ctx, ccid.NewGetSlotStatus(0, s.nextSeq())); err != nil {
		return Fail, "after SET_FEATURE(HALT) and clear halt: " + err.Error()
	}
	if stalled {
		return Pass, detail + "; bulk-IN halted by SET_FEATURE stalled, cleared, GetSlotStatus OK"
	}
	// USB 2.0 §9.4.9: an endpoint halted by SET_FEATURE(ENDPOINT_HALT) returns STALL until the halt is cleared.
	return Fail, fmt.Sprintf("SET_FEATURE(ENDPOINT_HALT) on 0x%02X was accepted but the bulk-IN read did not stall (%v); "+
		"USB 2.0 §9.4.9 wants STALL until CLEAR_FEATURE", s.in.Address, err)
}

// ---- bSeq ----

func (c *checker) seqEcho(_ context.Context, s *session) (Verdict, string) {
	types := map[ccid.MessageType]int{}
	var bad []string
	for _, r := range s.seqs {
		types[r.rsp]++
		if r.got != r.want {
			bad = append(bad, fmt.Sprintf("%s answering %s: bSeq 0x%02X, want 0x%02X", r.rsp, r.cmd, r.got, r.want))
		}
	}
	var names []string
	for t, n := range types {
		names = append(names, fmt.Sprintf("%s x%d", t, n))
	}
	sort.Strings(names)
	if len(s.seqs) == 0 {
		return Fail, "no answer was received"
	}
	if len(bad) > 0 {
		return Fail, fmt.Sprintf("%d of %d answers: %s", len(bad), len(s.seqs), strings.Join(bad, "; "))
	}
	return Pass, fmt.Sprintf("%d answers echo bSeq (wrapping 0xFF to 0x00): %s", len(s.seqs), strings.Join(names, ", "))
}
