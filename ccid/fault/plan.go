package fault

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// Plan is a parsed fault plan: rules tried in order for every host command; the first whose matchers all hold
// and whose firing budget is not spent fires.
type Plan struct {
	Rules []Rule
}

// Rule is one line of a plan.
type Rule struct {
	Line int    // 1-based line number in the plan
	Text string // the line as written, without comment

	Type      ccid.MessageType // 0: any message
	APDU      []byte           // nil: any
	APDUMask  []byte           // nil: exact (or prefix with APDUPrefix)
	APDUExact bool             // abData must equal APDU (no * and no mask)
	Slot      int              // -1: any
	First     int              // exchange index range, 1-based; 0: from the first
	Last      int              // 0: no upper bound
	After     time.Duration    // time since power-on at least this (Powered)
	Before    time.Duration    // time since power-on below this; 0: no bound
	Powered   bool             // after= or before= given: only while the slot is powered
	Skip      int              // matches ignored before the rule fires
	Limit     int              // fires at most this many times; 0: always

	Actions []Action // in the order written; at least one
}

// Kind names an action.
type Kind string

// Actions (see the package documentation for their syntax and effect).
const (
	Delay       Kind = "delay"
	TimeExt     Kind = "wtx"
	Mute        Kind = "mute"
	Reply       Kind = "reply"
	StatusWord  Kind = "sw"
	Remove      Kind = "remove"
	Insert      Kind = "insert"
	HWError     Kind = "hwerror"
	Notify      Kind = "notify"
	Inactive    Kind = "inactive"
	Stale       Kind = "stale"
	BadSeq      Kind = "seq"
	Duplicate   Kind = "dup"
	BadType     Kind = "type"
	Truncate    Kind = "truncate"
	Pad         Kind = "pad"
	Oversize    Kind = "oversize"
	SkipZLP     Kind = "skip-zlp"
	StrayZLP    Kind = "stray-zlp"
	Halt        Kind = "halt"
	Disconnect  Kind = "disconnect"
	Reenumerate Kind = "reenumerate"
)

// Action is what a rule does to the command it matched and its answer.
type Action struct {
	Kind     Kind
	Duration time.Duration // delay, wtx interval, remove/insert delay, disconnect time
	Count    int           // wtx frames; truncate/pad/oversize bytes
	Forever  bool          // mute forever
	Byte     byte          // wtx multiplier; hwerror code; type value; seq value
	SetSeq   bool          // seq =N (else +N, in Count)
	Status   byte          // reply bStatus
	Error    byte          // reply bError
	Data     []byte        // reply abData; notify message
	NoData   bool          // sw: drop the card's data
	SW       [2]byte       // sw
	Endpoint ccid.Endpoint // halt
	// StatusSet says which parts of bStatus reply sets: bit 0 bmICCStatus, bit 1 bmCommandStatus.
	StatusSet byte
}

// ParseFile reads a plan file.
func ParseFile(path string) (*Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("fault: %w", err)
	}
	defer f.Close()
	p, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Parse reads a plan: one rule per line, "#" starts a comment, blank lines are ignored. Every error names its
// line.
func Parse(r io.Reader) (*Plan, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	p := &Plan{}
	var errs []error
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		rule, err := parseRule(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		rule.Line = n
		p.Rules = append(p.Rules, rule)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("fault: plan line %d: %w", n+1, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("fault: plan: %w", err)
	}
	return p, nil
}

func parseRule(line string) (Rule, error) {
	r := Rule{Text: line, Slot: -1}
	head, tail, ok := strings.Cut(line, ":")
	if !ok {
		return r, errors.New(`want "MATCHERS: ACTION" (use "any: ACTION" to match every command)`)
	}
	if err := r.parseMatchers(strings.Fields(head)); err != nil {
		return r, err
	}
	for _, part := range strings.Split(tail, ";") {
		a, err := parseAction(strings.Fields(part))
		if err != nil {
			return r, err
		}
		r.Actions = append(r.Actions, a)
	}
	mutes := 0
	for _, a := range r.Actions {
		if a.Kind == Mute {
			mutes++
		}
	}
	if mutes > 0 && len(r.Actions) > 1 {
		return r, errors.New("mute cannot be combined with other actions")
	}
	return r, nil
}

func (r *Rule) parseMatchers(words []string) error {
	if len(words) == 0 {
		return errors.New(`no matcher before ":" (use "any")`)
	}
	for _, w := range words {
		key, val, hasVal := strings.Cut(w, "=")
		key = strings.ToLower(key)
		var err error
		switch {
		case key == "any" && !hasVal:
		case key == "once" && !hasVal:
			r.Limit = 1
		case key == "always" && !hasVal:
			r.Limit = 0
		case key == "times" && hasVal:
			r.Limit, err = positive(val)
		case key == "skip" && hasVal:
			r.Skip, err = strconv.Atoi(val)
			if err == nil && r.Skip < 0 {
				err = errors.New("negative")
			}
		case key == "slot" && hasVal:
			r.Slot, err = strconv.Atoi(val)
			if err == nil && (r.Slot < 0 || r.Slot > ccid.MaxSlotIndex) {
				err = fmt.Errorf("outside 0..%d", ccid.MaxSlotIndex)
			}
		case key == "type" && hasVal:
			r.Type, err = parseType(val)
		case key == "apdu" && hasVal:
			err = r.parseAPDU(val)
		case key == "exchange" && hasVal:
			err = r.parseRange(val)
		case key == "after" && hasVal:
			r.After, err = duration(val)
			r.Powered = true
		case key == "before" && hasVal:
			r.Before, err = duration(val)
			r.Powered = true
		default:
			return fmt.Errorf("unknown matcher %q (want any, type=, apdu=, slot=, exchange=, after=, before=, skip=, once, times=, always)", w)
		}
		if err != nil {
			return fmt.Errorf("matcher %q: %w", w, err)
		}
	}
	if r.APDU != nil {
		if r.Type != 0 && r.Type != ccid.MsgXfrBlock {
			return errors.New("apdu= matches XfrBlock only")
		}
		r.Type = ccid.MsgXfrBlock
	}
	return nil
}

func positive(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	if n < 1 {
		return 0, fmt.Errorf("%d is not positive", n)
	}
	return n, nil
}

func duration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %v", d)
	}
	return d, nil
}

// typeNames are the short names of the PC_to_RDR messages for type=.
var typeNames = map[string]ccid.MessageType{
	"poweron": ccid.MsgIccPowerOn, "poweroff": ccid.MsgIccPowerOff, "getslotstatus": ccid.MsgGetSlotStatus,
	"xfrblock": ccid.MsgXfrBlock, "getparameters": ccid.MsgGetParameters, "resetparameters": ccid.MsgResetParameters,
	"setparameters": ccid.MsgSetParameters, "escape": ccid.MsgEscape, "iccclock": ccid.MsgIccClock,
	"t0apdu": ccid.MsgT0APDU, "secure": ccid.MsgSecure, "mechanical": ccid.MsgMechanical, "abort": ccid.MsgAbort,
	"setdatarateandclockfrequency": ccid.MsgSetDataRateAndClockFrequency,
}

func parseType(s string) (ccid.MessageType, error) {
	l := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(s, "PC_to_RDR_"), "pc_to_rdr_"))
	l = strings.TrimPrefix(l, "icc")
	if t, ok := typeNames[l]; ok {
		return t, nil
	}
	if t, ok := typeNames["icc"+l]; ok {
		return t, nil
	}
	if v, err := parseByte(s); err == nil {
		return ccid.MessageType(v), nil
	}
	return 0, fmt.Errorf("unknown message type %q", s)
}

func parseByte(s string) (byte, error) {
	v, err := strconv.ParseUint(s, 0, 8)
	if err != nil {
		return 0, fmt.Errorf("%q is not a byte (0..255, 0x prefix for hex)", s)
	}
	return byte(v), nil
}

func parseHex(s string) ([]byte, error) {
	s = strings.ReplaceAll(s, "_", "")
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("bad hex %q", s)
	}
	return b, nil
}

// parseAPDU reads HEX (exact), HEX* (prefix) or HEX/MASK (value and mask over the first bytes).
func (r *Rule) parseAPDU(v string) error {
	value, mask, masked := strings.Cut(v, "/")
	prefix := strings.HasSuffix(value, "*")
	value = strings.TrimSuffix(value, "*")
	b, err := parseHex(value)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return errors.New("empty APDU pattern")
	}
	r.APDU = b
	if masked {
		m, err := parseHex(strings.TrimSuffix(mask, "*"))
		if err != nil {
			return err
		}
		if len(m) != len(b) {
			return fmt.Errorf("value has %d bytes, mask %d", len(b), len(m))
		}
		r.APDUMask = m
		return nil
	}
	r.APDUExact = !prefix
	return nil
}

// parseRange reads N, N-M or N- (1-based host command indices).
func (r *Rule) parseRange(v string) error {
	lo, hi, isRange := strings.Cut(v, "-")
	var err error
	if r.First, err = positive(lo); err != nil {
		return err
	}
	switch {
	case !isRange:
		r.Last = r.First
	case hi == "":
		r.Last = 0
	default:
		if r.Last, err = positive(hi); err != nil {
			return err
		}
		if r.Last < r.First {
			return fmt.Errorf("empty range %d-%d", r.First, r.Last)
		}
	}
	return nil
}

// slotErrorByName maps the spec names of bError (ICC_MUTE, CMD_SLOT_BUSY ...) to their values.
var slotErrorByName = func() map[string]byte {
	m := map[string]byte{}
	for v := 0x80; v <= 0xFF; v++ {
		name := ccid.SlotError(v).String()
		if !strings.Contains(name, " ") && !strings.Contains(name, "(") {
			m[strings.ToUpper(name)] = byte(v)
		}
	}
	m["CMD_NOT_SUPPORTED"] = 0
	return m
}()

func parseError(s string) (byte, error) {
	if v, ok := slotErrorByName[strings.ToUpper(strings.ReplaceAll(s, "-", "_"))]; ok {
		return v, nil
	}
	return parseByte(s)
}

func parseAction(w []string) (Action, error) {
	if len(w) == 0 {
		return Action{}, errors.New(`no action after ":" (or an empty one between ";")`)
	}
	a := Action{Kind: Kind(strings.ToLower(w[0]))}
	args := w[1:]
	if a.Kind == "usb" {
		if len(args) == 0 {
			return a, errors.New("usb: want skip-zlp, stray-zlp, halt EP, disconnect DURATION or reenumerate")
		}
		a.Kind, args = Kind(strings.ToLower(args[0])), args[1:]
		switch a.Kind {
		case SkipZLP, StrayZLP, Halt, Disconnect, Reenumerate:
		default:
			return a, fmt.Errorf("unknown usb action %q", a.Kind)
		}
	}
	if a.Kind == "" {
		return a, errors.New("empty action")
	}
	want := func(n int) error {
		if len(args) != n {
			return fmt.Errorf("%s takes %d argument(s), got %d", a.Kind, n, len(args))
		}
		return nil
	}
	var err error
	switch a.Kind {
	case Delay:
		if err = want(1); err == nil {
			a.Duration, err = duration(args[0])
		}
	case TimeExt:
		err = a.parseWTX(args)
	case Mute:
		switch {
		case len(args) == 0:
		case len(args) == 1 && args[0] == "forever":
			a.Forever = true
		default:
			err = errors.New(`mute takes nothing or "forever"`)
		}
	case Reply:
		err = a.parseReply(args)
	case StatusWord:
		err = a.parseSW(args)
	case Remove, Insert:
		switch {
		case len(args) == 0:
		case len(args) == 2 && args[0] == "in":
			a.Duration, err = duration(args[1])
		default:
			err = fmt.Errorf(`%s takes nothing or "in DURATION"`, a.Kind)
		}
	case HWError:
		a.Byte = ccid.HardwareErrorOvercurrent
		if len(args) > 1 {
			err = errors.New("hwerror takes at most a code")
		} else if len(args) == 1 {
			a.Byte, err = parseByte(args[0])
		}
	case Notify:
		if err = want(1); err == nil {
			a.Data, err = parseHex(args[0])
			if err == nil && (len(a.Data) < 2 || a.Data[0] != 0x50 && a.Data[0] != 0x51) {
				err = errors.New("notify wants an interrupt message: 50 xx or 51 slot seq code")
			}
		}
	case Inactive, Stale, Duplicate, SkipZLP, StrayZLP, Reenumerate:
		err = want(0)
	case BadSeq:
		if err = want(1); err == nil {
			err = a.parseSeq(args[0])
		}
	case BadType:
		if err = want(1); err == nil {
			a.Byte, err = parseByte(args[0])
		}
	case Truncate, Pad, Oversize:
		if err = want(1); err == nil {
			a.Count, err = strconv.Atoi(args[0])
			if err == nil && (a.Count < 0 || a.Count > 65536) {
				err = fmt.Errorf("%d bytes outside 0..65536", a.Count)
			}
		}
	case Halt:
		if err = want(1); err == nil {
			a.Endpoint, err = parseEndpoint(args[0])
		}
	case Disconnect:
		if err = want(1); err == nil {
			a.Duration, err = duration(args[0])
		}
	default:
		return a, fmt.Errorf("unknown action %q", w[0])
	}
	if err != nil {
		return a, fmt.Errorf("%s: %w", a.Kind, err)
	}
	return a, nil
}

// parseWTX reads "K [every DURATION] [x M]".
func (a *Action) parseWTX(args []string) error {
	if len(args) == 0 {
		return errors.New("want a count")
	}
	var err error
	if a.Count, err = positive(args[0]); err != nil {
		return err
	}
	a.Duration, a.Byte = time.Second, 1
	for i := 1; i < len(args); i++ {
		switch {
		case args[i] == "every" && i+1 < len(args):
			i++
			if a.Duration, err = duration(args[i]); err != nil {
				return err
			}
		case strings.HasPrefix(args[i], "x") && len(args[i]) > 1:
			if a.Byte, err = parseByte(args[i][1:]); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected %q (want every DURATION, xM)", args[i])
		}
	}
	return nil
}

// parseReply reads icc=, cmd=, status=, error= and data=.
func (a *Action) parseReply(args []string) error {
	for _, w := range args {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			return fmt.Errorf("unexpected %q (want icc=, cmd=, status=, error=, data=)", w)
		}
		var err error
		switch k {
		case "icc":
			var b byte
			switch v {
			case "active":
				b = ccid.ICCActive
			case "inactive":
				b = ccid.ICCInactive
			case "absent":
				b = ccid.ICCAbsent
			default:
				if b, err = parseByte(v); err == nil && b > 3 {
					err = errors.New("bmICCStatus is 0..3")
				}
			}
			a.Status = a.Status&^0x03 | b
			a.StatusSet |= 1
		case "cmd":
			var b byte
			switch v {
			case "ok":
				b = ccid.CommandOK
			case "failed":
				b = ccid.CommandFailed
			case "wtx", "time-extension":
				b = ccid.CommandTimeExtension
			default:
				if b, err = parseByte(v); err == nil {
					if b > 3 {
						err = errors.New("bmCommandStatus is 0..3")
					}
					b <<= 6
				}
			}
			a.Status = a.Status&^0xC0 | b
			a.StatusSet |= 2
		case "status":
			a.Status, err = parseByte(v)
			a.StatusSet = 3
		case "error":
			a.Error, err = parseError(v)
			if err == nil && a.StatusSet&2 == 0 {
				a.Status |= ccid.CommandFailed
				a.StatusSet |= 2
			}
		case "data":
			a.Data, err = parseHex(v)
		default:
			return fmt.Errorf("unknown reply field %q", k)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

// parseSW reads "XXXX [nodata]".
func (a *Action) parseSW(args []string) error {
	if len(args) == 0 || len(args) > 2 {
		return errors.New("want a status word and maybe nodata")
	}
	b, err := parseHex(args[0])
	if err != nil || len(b) != 2 {
		return fmt.Errorf("status word %q: want 4 hex digits", args[0])
	}
	copy(a.SW[:], b)
	if len(args) == 2 {
		if args[1] != "nodata" {
			return fmt.Errorf("unexpected %q (want nodata)", args[1])
		}
		a.NoData = true
	}
	return nil
}

// parseSeq reads +N, -N or =N.
func (a *Action) parseSeq(s string) error {
	if len(s) < 2 {
		return fmt.Errorf("%q: want +N, -N or =N", s)
	}
	switch s[0] {
	case '+', '-':
		n, err := strconv.Atoi(s[1:])
		if err != nil || n < 0 || n > 255 {
			return fmt.Errorf("%q: want +N or -N with N in 0..255", s)
		}
		if s[0] == '-' {
			n = 256 - n
		}
		a.Count = n & 0xFF
	case '=':
		b, err := parseByte(s[1:])
		if err != nil {
			return err
		}
		a.Byte, a.SetSeq = b, true
	default:
		return fmt.Errorf("%q: want +N, -N or =N", s)
	}
	return nil
}

// String writes the rule back in plan syntax (its original text).
func (r Rule) String() string { return r.Text }

// matchAPDU applies the apdu= matcher to abData.
func (r *Rule) matchAPDU(data []byte) bool {
	switch {
	case r.APDU == nil:
		return true
	case r.APDUMask != nil:
		if len(data) < len(r.APDU) {
			return false
		}
		for i, m := range r.APDUMask {
			if data[i]&m != r.APDU[i]&m {
				return false
			}
		}
		return true
	case r.APDUExact:
		return bytes.Equal(data, r.APDU)
	}
	return bytes.HasPrefix(data, r.APDU)
}
