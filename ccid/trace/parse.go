package trace

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// Trace is a parsed pcscd debug log: the reader's side of every exchange, with its timing.
type Trace struct {
	ATR       []byte     // the last "Card ATR:" line, if any
	Exchanges []Exchange // in log order
	Events    []Event    // interrupt messages (NotifySlotChange, HardwareError)
	Lines     int        // lines read
	Timed     bool       // the lines carry µs deltas (false for syslog-mode logs: all times are 0)
	// VendorID and ProductID are the recorded reader's, from the first device name pcscd logged
	// ("usb:1fc9/010b:libudev:0:/dev/bus/usb/003/009"); both 0 when the log names none.
	VendorID, ProductID uint16
}

// Frame is one CCID message on the wire at a time since the first line of the log.
type Frame struct {
	At    time.Duration
	Bytes []byte
	// Masked marks bytes a recorder hid (written as XX: PINs); nil when none is. A masked byte matches any.
	Masked []bool
}

// Exchange is one PC_to_RDR message and the RDR_to_PC frames that answered it: zero or more time extensions,
// then the answer. An exchange the reader never answered (host timeout) has no final answer.
type Exchange struct {
	Index   int    // position in Trace.Exchanges
	Lun     uint32 // libccid's lun: reader<<16 | slot
	Command Frame
	Answers []Frame // time extensions then the final answer, in order
	APDU    []byte  // from the "APDU:" line that preceded the command, if any
	SW      []byte  // from the "SW:" line that followed, if any
	Notes   []string
}

// Event is an interrupt-IN message logged by libccid.
type Event struct {
	At    time.Duration
	Bytes []byte // 50 xx... or 51 slot seq code
	After int    // index of the last exchange answered before it, -1 if none
}

// Answer returns the final answer (the last frame that is not a time extension) and whether there is one.
func (e Exchange) Answer() (Frame, bool) {
	if n := len(e.Answers); n > 0 && !IsTimeExtension(e.Answers[n-1].Bytes) {
		return e.Answers[n-1], true
	}
	return Frame{}, false
}

// Latency is the time from the command to the final answer (to the last frame when unanswered).
func (e Exchange) Latency() time.Duration {
	if len(e.Answers) == 0 {
		return 0
	}
	return e.Answers[len(e.Answers)-1].At - e.Command.At
}

// Fault summarises what was unusual about the exchange: "" for a plain successful answer.
func (e Exchange) Fault() string {
	var f []string
	wtx := 0
	for _, a := range e.Answers {
		if IsTimeExtension(a.Bytes) {
			wtx++
		}
	}
	if wtx > 0 {
		f = append(f, fmt.Sprintf("%d time extension(s)", wtx))
	}
	a, ok := e.Answer()
	switch {
	case !ok:
		f = append(f, "no answer")
	case len(a.Bytes) < ccid.HeaderSize:
		f = append(f, fmt.Sprintf("short frame (%d bytes)", len(a.Bytes)))
	default:
		xfr := len(e.Command.Bytes) > 0 && ccid.MessageType(e.Command.Bytes[0]) == ccid.MsgXfrBlock
		if a.Bytes[7]&0xC0 != 0 || a.Bytes[8] != 0 || xfr && a.Bytes[7] != 0 {
			f = append(f, fmt.Sprintf("bStatus %02X bError %02X", a.Bytes[7], a.Bytes[8]))
		}
		if len(e.Command.Bytes) > 6 && a.Bytes[6] != e.Command.Bytes[6] {
			f = append(f, fmt.Sprintf("bSeq %02X for %02X", a.Bytes[6], e.Command.Bytes[6]))
		}
		if len(e.Command.Bytes) > 0 && ccid.MessageType(a.Bytes[0]) != ccid.ResponseType(ccid.MessageType(e.Command.Bytes[0])) {
			f = append(f, fmt.Sprintf("type %02X", a.Bytes[0]))
		}
		if ccid.MessageType(a.Bytes[0]) == ccid.MsgDataBlock && len(a.Bytes) >= ccid.HeaderSize+2 {
			if sw1 := a.Bytes[len(a.Bytes)-2]; sw1 == 0x6F || sw1 == 0x64 {
				f = append(f, fmt.Sprintf("SW %02X%02X", sw1, a.Bytes[len(a.Bytes)-1]))
			}
		}
	}
	f = append(f, e.Notes...)
	return strings.Join(f, ", ")
}

// IsTimeExtension reports whether b is a RDR_to_PC frame with bmCommandStatus "time extension".
func IsTimeExtension(b []byte) bool {
	return len(b) >= ccid.HeaderSize && b[7]&0xC0 == ccid.CommandTimeExtension
}

var (
	ansiRE    = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	journalRE = regexp.MustCompile(`^.*?pcscd\[\d+\]: `)
	deltaRE   = regexp.MustCompile(`^(\d{8}) (?:\[\d+\] )?(.*)$`)
	frameRE   = regexp.MustCompile(`^(->|<-) (?:lun: ([0-9A-Fa-f]+), |([0-9A-Fa-f]{6}) )((?:(?:[0-9A-Fa-f]{2}|XX) ?)*)\s*$`)
	notifyRE  = regexp.MustCompile(`(NotifySlotChange|HardwareError): ((?:[0-9A-Fa-f]{2} ?)+)\s*$`)
	apduRE    = regexp.MustCompile(`^(APDU|SW|Card ATR): ?((?:[0-9A-Fa-f]{2} ?)*)\s*$`)
	usbRE     = regexp.MustCompile(`\busb:([0-9A-Fa-f]{4})/([0-9A-Fa-f]{4})\b`)
)

// MaxLineLength bounds one log line (a 65 556-byte frame in hex is about 200 kB).
const MaxLineLength = 1 << 20

// Parse reads a pcscd debug log in any of the variants of research note faults-and-replay §3.1: plain
// (%.8d delta), colour with thread ids, a journald prefix, libccid ≤1.7 "-> 000000 " and ≥1.8 "-> lun: 0, "
// frame lines, APDU/SW lines, NotifySlotChange and HardwareError lines. Lines it does not know are skipped;
// libccid lines that explain a failure (timeouts, invalid frames) are attached to the exchange as notes.
// A log without deltas (syslog mode) parses with every time 0 and Timed false.
func Parse(r io.Reader) (*Trace, error) {
	t := &Trace{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), MaxLineLength)
	var now time.Duration
	var apdu []byte
	open := -1 // index of the exchange whose answer is still expected
	lastAnswered := -1
	for sc.Scan() {
		t.Lines++
		line := ansiRE.ReplaceAllString(strings.TrimRight(sc.Text(), "\r"), "")
		line = journalRE.ReplaceAllString(line, "")
		msg := line
		if m := deltaRE.FindStringSubmatch(line); m != nil {
			d, _ := strconv.Atoi(m[1])
			now += time.Duration(d) * time.Microsecond
			msg = m[2]
			t.Timed = true
		}
		if m := frameRE.FindStringSubmatch(msg); m != nil {
			lunText := m[2] + m[3]
			lun, err := strconv.ParseUint(lunText, 16, 32)
			if err != nil {
				return nil, fmt.Errorf("trace: line %d: lun %q: %w", t.Lines, lunText, err)
			}
			b, mask, err := parseHex(m[4])
			if err != nil {
				return nil, fmt.Errorf("trace: line %d: %w", t.Lines, err)
			}
			f := Frame{At: now, Bytes: b, Masked: mask}
			if m[1] == "->" {
				t.Exchanges = append(t.Exchanges, Exchange{Index: len(t.Exchanges), Lun: uint32(lun), Command: f, APDU: apdu})
				apdu = nil
				open = len(t.Exchanges) - 1
				continue
			}
			k := t.owner(open, uint32(lun), b)
			if k < 0 {
				t.Exchanges = append(t.Exchanges, Exchange{Index: len(t.Exchanges), Lun: uint32(lun),
					Notes: []string{"answer without a logged command"}})
				k = len(t.Exchanges) - 1
				open = k
			}
			e := &t.Exchanges[k]
			e.Answers = append(e.Answers, f)
			if !IsTimeExtension(b) {
				lastAnswered = k
			}
			continue
		}
		if m := notifyRE.FindStringSubmatch(msg); m != nil {
			b, _, err := parseHex(m[2])
			if err != nil {
				return nil, fmt.Errorf("trace: line %d: %w", t.Lines, err)
			}
			t.Events = append(t.Events, Event{At: now, Bytes: b, After: lastAnswered})
			continue
		}
		if m := apduRE.FindStringSubmatch(msg); m != nil {
			b, _, err := parseHex(m[2])
			if err != nil {
				return nil, fmt.Errorf("trace: line %d: %w", t.Lines, err)
			}
			switch m[1] {
			case "APDU":
				apdu = b
			case "SW":
				if open >= 0 {
					t.Exchanges[open].SW = b
				}
			case "Card ATR":
				t.ATR = b
			}
			continue
		}
		if t.VendorID == 0 && t.ProductID == 0 {
			if m := usbRE.FindStringSubmatch(msg); m != nil {
				v, _ := strconv.ParseUint(m[1], 16, 16)
				p, _ := strconv.ParseUint(m[2], 16, 16)
				t.VendorID, t.ProductID = uint16(v), uint16(p)
			}
		}
		if open >= 0 {
			for _, k := range noteKeys {
				if strings.Contains(msg, k) {
					e := &t.Exchanges[open]
					e.Notes = append(e.Notes, noteText(msg, k))
					break
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("trace: line %d: %w", t.Lines+1, err)
	}
	return t, nil
}

// owner returns the exchange an answer frame belongs to: the latest of the last few exchanges on the same lun
// whose command has the answer's bSeq and no final answer yet (frames of two exchanges can interleave in a
// multi-threaded log), else the open one; -1 if there is none.
func (t *Trace) owner(open int, lun uint32, b []byte) int {
	if open < 0 {
		return -1
	}
	if len(b) > 6 {
		for k := open; k >= 0 && k > open-8; k-- {
			e := &t.Exchanges[k]
			if _, done := e.Answer(); done || e.Lun != lun || len(e.Command.Bytes) < 7 {
				continue
			}
			if e.Command.Bytes[6] == b[6] {
				return k
			}
		}
	}
	return open
}

// noteKeys are the libccid messages that explain a failed exchange.
var noteKeys = []string{"read failed", "write failed", "Not enough data received", "Can't read all data",
	"Invalid frame detected", "Too many duplicate frame", "Reader disconnected", "CCID_Receive", "overrun by"}

func noteText(msg, key string) string {
	if i := strings.Index(msg, key); i >= 0 {
		return msg[i:]
	}
	return msg
}

// parseHex decodes "6F 0C 00 …" (trailing space or not); "XX" is a masked byte.
func parseHex(s string) ([]byte, []bool, error) {
	fields := strings.Fields(s)
	b := make([]byte, len(fields))
	var mask []bool
	for i, f := range fields {
		if f == "XX" {
			if mask == nil {
				mask = make([]bool, len(fields))
			}
			mask[i] = true
			continue
		}
		v, err := hex.DecodeString(f)
		if err != nil || len(v) != 1 {
			return nil, nil, fmt.Errorf("bad hex byte %q", f)
		}
		b[i] = v[0]
	}
	return b, mask, nil
}
