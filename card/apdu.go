package card

import (
	"errors"
	"fmt"
)

// Command is one command APDU (ISO/IEC 7816-4 §5.1), after parsing.
type Command struct {
	CLA, INS, P1, P2 byte
	// Data is the command data field (Lc bytes); nil when absent.
	Data []byte
	// Ne is the maximum number of response bytes expected: 0 when Le is absent, 1..256 for a short Le
	// (00 means 256), 1..65536 for an extended Le (0000 means 65536).
	Ne int
	// Extended reports that Lc or Le used the extended (three-byte or two-byte) length encoding.
	Extended bool
}

// errWrongLength is returned by ParseCommand when the length fields disagree with the APDU's size.
var errWrongLength = errors.New("card: APDU length fields do not match its size")

// ParseCommand decodes a command APDU in any of the four cases, short or extended (ISO/IEC 7816-4 §5.1).
// It is strict: an APDU whose length fields do not account for exactly its bytes is rejected, and the card
// answers SWWrongLength.
func ParseCommand(b []byte) (Command, error) {
	if len(b) < 4 {
		return Command{}, fmt.Errorf("%w: %d bytes", errWrongLength, len(b))
	}
	c := Command{CLA: b[0], INS: b[1], P1: b[2], P2: b[3]}
	body := b[4:]
	switch {
	case len(body) == 0: // case 1
		return c, nil
	case len(body) == 1: // case 2 short
		c.Ne = shortLe(body[0])
		return c, nil
	case body[0] != 0: // case 3 or 4 short
		lc := int(body[0])
		switch len(body) {
		case 1 + lc:
			c.Data = body[1:]
		case 2 + lc:
			c.Data = body[1 : 1+lc]
			c.Ne = shortLe(body[1+lc])
		default:
			return Command{}, fmt.Errorf("%w: short Lc %d in %d bytes", errWrongLength, lc, len(b))
		}
		return c, nil
	}
	// body[0] == 0 and at least two bytes: extended length.
	c.Extended = true
	if len(body) == 3 { // case 2 extended
		c.Ne = extLe(body[1], body[2])
		return c, nil
	}
	if len(body) < 3 {
		return Command{}, fmt.Errorf("%w: truncated extended length", errWrongLength)
	}
	lc := int(body[1])<<8 | int(body[2])
	if lc == 0 {
		return Command{}, fmt.Errorf("%w: extended Lc of zero", errWrongLength)
	}
	switch len(body) {
	case 3 + lc:
		c.Data = body[3:]
	case 5 + lc:
		c.Data = body[3 : 3+lc]
		c.Ne = extLe(body[3+lc], body[4+lc])
	default:
		return Command{}, fmt.Errorf("%w: extended Lc %d in %d bytes", errWrongLength, lc, len(b))
	}
	return c, nil
}

func shortLe(b byte) int {
	if b == 0 {
		return 256
	}
	return int(b)
}

func extLe(hi, lo byte) int {
	if n := int(hi)<<8 | int(lo); n != 0 {
		return n
	}
	return 65536
}

// Chained reports whether CLA announces that more commands of the same chain follow (ISO/IEC 7816-4 §5.4.1,
// bit b5 of CLA).
func (c Command) Chained() bool { return c.CLA&claChaining != 0 }

// Bytes encodes c, choosing the extended form when c.Extended is set or a length needs it.
func (c Command) Bytes() []byte {
	b := []byte{c.CLA, c.INS, c.P1, c.P2}
	ext := c.Extended || len(c.Data) > 255 || c.Ne > 256
	if ext {
		if len(c.Data) > 0 {
			b = append(b, 0, byte(len(c.Data)>>8), byte(len(c.Data)))
			b = append(b, c.Data...)
		}
		if c.Ne > 0 {
			if len(c.Data) == 0 {
				b = append(b, 0)
			}
			b = append(b, byte(c.Ne>>8), byte(c.Ne)) // 65536 encodes as 0000
		}
		return b
	}
	if len(c.Data) > 0 {
		b = append(b, byte(len(c.Data)))
		b = append(b, c.Data...)
	}
	if c.Ne > 0 {
		b = append(b, byte(c.Ne)) // 256 encodes as 00
	}
	return b
}

// CLA bits this card interprets (ISO/IEC 7816-4 §5.4.1).
const (
	claChaining        = 0x10 // b5: command chaining, not the last command of the chain
	claSecureMessaging = 0x0C // b4-b3: secure messaging indication
	claChannel         = 0x03 // b2-b1: logical channel number
	claProprietary     = 0x80 // b8: proprietary class
)

// StatusWord is the trailer SW1-SW2 of a response APDU (ISO/IEC 7816-4 §5.6, OpenPGP card 3.4.1 §7.4).
type StatusWord uint16

// Status words the OpenPGP application answers with. Names follow ISO/IEC 7816-4 Tables 5–6 and OpenPGP card
// 3.4.1 §7.4.
const (
	SWNoError                     StatusWord = 0x9000 // normal processing
	SWBytesRemaining              StatusWord = 0x6100 // 61xx: xx more bytes with GET RESPONSE
	SWSelectedFileTerminated      StatusWord = 0x6285 // selected file in termination state
	SWVerifyFailed                StatusWord = 0x63C0 // 63Cx: wrong PIN, x tries left
	SWMemoryFailure               StatusWord = 0x6581 // memory failure
	SWWrongLength                 StatusWord = 0x6700 // wrong length (Lc or Le)
	SWLogicalChannelNotSupported  StatusWord = 0x6881 // logical channel not supported
	SWSecureMessagingNotSupported StatusWord = 0x6882 // secure messaging not supported
	SWLastCommandOfChainExpected  StatusWord = 0x6883 // last command of the chain expected
	SWCommandChainingNotSupported StatusWord = 0x6884 // command chaining not supported for this INS
	SWSecurityStatusNotSatisfied  StatusWord = 0x6982 // security status not satisfied (PIN not verified)
	SWAuthenticationMethodBlocked StatusWord = 0x6983 // authentication method blocked (no tries left)
	SWReferenceDataNotUsable      StatusWord = 0x6984 // reference data not usable (e.g. no reset code)
	SWConditionsNotSatisfied      StatusWord = 0x6985 // conditions of use not satisfied
	SWIncorrectData               StatusWord = 0x6A80 // incorrect parameters in the command data field
	SWFunctionNotSupported        StatusWord = 0x6A81 // function not supported
	SWFileNotFound                StatusWord = 0x6A82 // file or application not found
	SWIncorrectP1P2               StatusWord = 0x6A86 // incorrect parameters P1-P2
	SWReferencedDataNotFound      StatusWord = 0x6A88 // referenced data or data object not found
	SWWrongP1P2                   StatusWord = 0x6B00 // wrong parameters P1-P2
	SWInstructionNotSupported     StatusWord = 0x6D00 // instruction code not supported or invalid
	SWClassNotSupported           StatusWord = 0x6E00 // class not supported
	SWUnknown                     StatusWord = 0x6F00 // no precise diagnosis
)

// swVerifyFailed returns 63Cx for x tries left (x capped at 15).
func swVerifyFailed(retries int) StatusWord {
	if retries < 0 {
		retries = 0
	}
	if retries > 15 {
		retries = 15
	}
	return SWVerifyFailed | StatusWord(retries)
}

// swBytesRemaining returns 61xx for n bytes still waiting (xx = 00 when 256 or more).
func swBytesRemaining(n int) StatusWord {
	if n >= 256 {
		return SWBytesRemaining
	}
	return SWBytesRemaining | StatusWord(n)
}

func (sw StatusWord) String() string { return fmt.Sprintf("%04X", uint16(sw)) }

// Error is the error form of a status word other than 9000/61xx, returned by the command handlers.
func (sw StatusWord) Error() string { return "card: status " + sw.String() }

// Instruction bytes (OpenPGP card 3.4.1 §7.1, ISO/IEC 7816-4 §11).
const (
	insSelect               = 0xA4
	insSelectData           = 0xA5
	insGetData              = 0xCA
	insGetNextData          = 0xCC
	insPutData              = 0xDA
	insPutDataOdd           = 0xDB
	insVerify               = 0x20
	insChangeReferenceData  = 0x24
	insResetRetryCounter    = 0x2C
	insGenerateKeyPair      = 0x47
	insPSO                  = 0x2A
	insInternalAuthenticate = 0x88
	insGetChallenge         = 0x84
	insManageSecurityEnv    = 0x22
	insGetResponse          = 0xC0
	insTerminateDF          = 0xE6
	insActivateFile         = 0x44
)
