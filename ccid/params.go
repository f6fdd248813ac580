package ccid

import "fmt"

// T1Parameters is abProtocolData for T=1 in PC_to_RDR_SetParameters and RDR_to_PC_Parameters (CCID §6.1.7 and
// §6.2.3: 7 bytes).
type T1Parameters struct {
	FindexDindex    byte // bmFindexDindex: TA1 (Fi index <<4 | Di index); 0x11 without TA1
	TCCKS           byte // bmTCCKST1: 0x10 LRC, 0x11 CRC, +0x02 inverse convention
	GuardTime       byte // bGuardTimeT1: TC1 (extra guard time); 0 without TC1
	WaitingIntegers byte // bmWaitingIntegersT1: BWI<<4 | CWI from the first TB for T=1 (TB3); 0x4D without it
	ClockStop       byte // bClockStop: 0 not allowed, 1 stop low, 2 stop high, 3 either
	IFSC            byte // bIFSC: the first TA for T=1 (TA3); 32 without it
	NadValue        byte // bNadValue: 0
}

// DefaultT1Parameters are the T=1 parameters of an ATR without interface bytes (ISO/IEC 7816-3 defaults).
var DefaultT1Parameters = T1Parameters{FindexDindex: 0x11, TCCKS: 0x10, WaitingIntegers: 0x4D, IFSC: 32}

// Bytes returns the 7 bytes of abProtocolData.
func (p T1Parameters) Bytes() [7]byte {
	return [7]byte{p.FindexDindex, p.TCCKS, p.GuardTime, p.WaitingIntegers, p.ClockStop, p.IFSC, p.NadValue}
}

// ParseT1Parameters decodes 7 bytes of abProtocolData.
func ParseT1Parameters(b []byte) (T1Parameters, error) {
	if len(b) != 7 {
		return T1Parameters{}, fmt.Errorf("ccid: T=1 parameters are 7 bytes, got %d", len(b))
	}
	return T1Parameters{b[0], b[1], b[2], b[3], b[4], b[5], b[6]}, nil
}

// check validates parameters a host sets. The error's Offset is the bError to answer with (10 + field index).
func (p T1Parameters) check(nadAllowed bool) *FrameError {
	bad := func(off int, format string, v byte) *FrameError {
		return &FrameError{Type: MsgSetParameters, Offset: off, Reason: fmt.Sprintf(format, v)}
	}
	fi, di := p.FindexDindex>>4, p.FindexDindex&0x0F
	if fi == 7 || fi == 8 || fi > 13 || di == 0 || di > 9 {
		return bad(10, "bmFindexDindex 0x%02X uses RFU values", p.FindexDindex)
	}
	if p.TCCKS&^0x03 != 0x10 {
		return bad(11, "bmTCCKST1 0x%02X", p.TCCKS)
	}
	if p.WaitingIntegers>>4 > 9 {
		return bad(13, "bmWaitingIntegersT1 0x%02X: BWI above 9", p.WaitingIntegers)
	}
	if p.ClockStop > 3 {
		return bad(14, "bClockStop %d", p.ClockStop)
	}
	if p.IFSC == 0 || p.IFSC == 0xFF {
		return bad(15, "bIFSC %d", p.IFSC)
	}
	if p.NadValue != 0 && !nadAllowed {
		return bad(16, "bNadValue %d without dwFeatures 0x200", p.NadValue)
	}
	return nil
}

// T1ParametersFromATR derives the T=1 parameters from an ATR (ISO/IEC 7816-3 §8.2): TA1 gives bmFindexDindex,
// TC1 the guard time, the first TA and TB of a group introduced by T=1 (i ≥ 3) give IFSC and BWI/CWI, and the
// first TC there selects CRC; TS 0x3F means inverse convention. Missing bytes keep DefaultT1Parameters; a
// truncated ATR yields what could be read.
func T1ParametersFromATR(atr []byte) T1Parameters {
	p := DefaultT1Parameters
	if len(atr) < 2 {
		return p
	}
	if atr[0] == 0x3F {
		p.TCCKS |= 0x02
	}
	y := atr[1] >> 4
	pos, group := 2, 1
	proto := byte(0) // protocol announced by TD(i-1)
	var haveIFSC, haveBW, haveCRC bool
	next := func() (byte, bool) {
		if pos >= len(atr) {
			return 0, false
		}
		pos++
		return atr[pos-1], true
	}
	for {
		var ta, tb, tc, td byte
		var hasTA, hasTB, hasTC, hasTD, truncated bool
		if y&1 != 0 {
			if ta, hasTA = next(); !hasTA {
				truncated = true
			}
		}
		if y&2 != 0 {
			if tb, hasTB = next(); !hasTB {
				truncated = true
			}
		}
		if y&4 != 0 {
			if tc, hasTC = next(); !hasTC {
				truncated = true
			}
		}
		if y&8 != 0 {
			if td, hasTD = next(); !hasTD {
				truncated = true
			}
		}
		switch {
		case group == 1:
			if hasTA {
				p.FindexDindex = ta
			}
			if hasTC {
				p.GuardTime = tc
			}
		case group >= 3 && proto == 1:
			if hasTA && !haveIFSC {
				p.IFSC, haveIFSC = ta, true
			}
			if hasTB && !haveBW {
				p.WaitingIntegers, haveBW = tb, true
			}
			if hasTC && !haveCRC {
				p.TCCKS |= tc & 0x01
				haveCRC = true
			}
		}
		if !hasTD || truncated {
			return p
		}
		proto, y = td&0x0F, td>>4
		group++
	}
}
