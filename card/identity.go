package card

// What the card says about itself. The ATR, the historical bytes (DO 5F52), the extended capabilities (C0) and the
// extended length information (7F66) agree with each other and with the reader's exchange level: extended
// length announced and accepted by default, chaining only with Options.ShortAPDUOnly. See the package doc.

// Manufacturer is the AID manufacturer ID: FFFE, from the range FF00..FFFE that OpenPGP card 3.4.1 §4.2.1 leaves
// unmanaged (test cards and software cards; no registration).
const Manufacturer = 0xFFFE

// Version is the OpenPGP card specification version in the AID: 3.4.
const Version = 0x0304

// aidPrefix is RID D276000124 (FSFE) and PIX application 01 (OpenPGP).
var aidPrefix = []byte{0xD2, 0x76, 0x00, 0x01, 0x24, 0x01}

// Card capabilities: the third byte of the historical bytes' DO 73 (ISO/IEC 7816-4:2005 §8.1.1.2.7, Table 88,
// "third software function table"; OpenPGP card 3.4.1 §6). GnuPG's scdaemon reads them from DO 5F52
// (app-openpgp.c parse_historical) and sends extended APDUs exactly when capExtendedLength is set.
const (
	capChaining       = 0x80 // b8: command chaining
	capExtendedLength = 0x40 // b7: extended Lc and Le fields
)

// historicalBytes returns the historical bytes, also DO 5F52 (ISO/IEC 7816-4 §8.1.1, OpenPGP card 3.4.1 §6):
//
//	00          category indicator: status indicator in the last three bytes
//	31 C5       card service data: selection by full and partial DF name (the value SmartPGP, canokey and the
//	            OpenPGP v2 reference cards send; GnuPG, OpenSC and pcscd accept it)
//	73 C0 01 xx card capabilities: DF selection by full and partial name; data coding 01; xx = C0, command
//	            chaining (80) and extended Lc/Le (40), or 80, chaining only, behind a short-APDU reader
//	05 90 00    life cycle status 05 (operational, activated) and SW 9000
func historicalBytes(shortAPDU bool) []byte {
	caps := byte(capChaining | capExtendedLength)
	if shortAPDU {
		caps = capChaining
	}
	return []byte{0x00, 0x31, 0xC5, 0x73, 0xC0, 0x01, caps, 0x05, 0x90, 0x00}
}

// The historical bytes and the ATR of a card with extended length, and of one behind a short-APDU reader
// (Options.ShortAPDUOnly).
var (
	historical      = historicalBytes(false)
	historicalShort = historicalBytes(true)
	atr             = buildATR(historical)
	atrShort        = buildATR(historicalShort)
)

// buildATR returns the Answer-to-Reset (ISO/IEC 7816-3 §8.2) around 10 historical bytes, 21 bytes:
//
//	3B          TS direct convention
//	DA          T0: TA1, TC1, TD1 follow; 10 historical bytes
//	18          TA1: Fi=372, Di=12 (what readers with automatic parameters use)
//	FF          TC1: extra guard time 255 (minimum)
//	81          TD1: TD2 follows, T=1
//	B1          TD2: TA3, TB3, TD3 follow, T=1
//	FE          TA3: IFSC 254
//	65          TB3: BWI 6, CWI 5 (libccid's T=1 timeout about 8 s at 4 MHz; the reader sends time extensions)
//	1F          TD3: TA4 follows, T=15
//	03          TA4: class A and B (5 V, 3 V)
//	...         historical bytes
//	TCK         XOR of T0..the last historical byte
//
// It offers T=1 only and carries a TCK, as GnuPG's CCID driver demands. TB3 is not 75 and TA1 not 11, so
// GnuPG's card-type sniffing (ATR byte 7 = 75 means ZeitControl, byte 2 = 11 in 21 bytes means Gnuk) types this
// card "generic" and runs the plain OpenPGP paths.
func buildATR(hist []byte) []byte {
	b := []byte{0x3B, 0xD0 | byte(len(hist)), 0x18, 0xFF, 0x81, 0xB1, 0xFE, 0x65, 0x1F, 0x03}
	b = append(b, hist...)
	var tck byte
	for _, x := range b[1:] {
		tck ^= x
	}
	return append(b, tck)
}

// Limits announced in C0 and 7F66.
const (
	maxChallenge   = 0x0800 // GET CHALLENGE
	maxCertLen     = 0x1000 // each cardholder certificate (7F21)
	maxSpecialDO   = 0x00FF // 5E, 5F50, 0101–0104
	maxCommandData = 0x0800 // 7F66: fits the reader's dwMaxCCIDMessageLength 2058 = 2048 + 10
	maxResponseLen = 0x0800 // 7F66
	maxNameLen     = 39     // 5B (OpenPGP card 3.4.1 §4.4.3.3)
	maxPINLen      = 0x7F   // C4 bytes 2–4: PW1, RC, PW3 (room for KDF-DO hashes of 32 or 64 bytes)
)

// maxChallengeShort is C0's GET CHALLENGE limit behind a short-APDU reader: a short Le asks for 256 bytes at most.
const maxChallengeShort = 0x0100

// extendedCapabilities returns DO C0 (OpenPGP card 3.4.1 §4.4.3.7, v3 layout). Behind a short-APDU reader the
// largest GET CHALLENGE is what one short Le can ask for; everything else is the same.
func extendedCapabilities(shortAPDU bool) []byte {
	challenge := maxChallenge
	if shortAPDU {
		challenge = maxChallengeShort
	}
	return []byte{
		0x7F,                                         // no SM; GET CHALLENGE, key import, PW status change, private DOs, attributes changeable, PSO:DEC/ENC with AES, KDF-DO
		0x00,                                         // SM algorithm: none
		byte(challenge >> 8), byte(challenge & 0xFF), // max GET CHALLENGE length
		byte(maxCertLen >> 8), byte(maxCertLen & 0xFF), // max cardholder certificate length
		byte(maxSpecialDO >> 8), byte(maxSpecialDO & 0xFF), // max length of special DOs (private use, login data, URL)
		0x00, // PIN block 2 format: not supported
		0x01, // MANAGE SECURITY ENVIRONMENT: supported (DEC/AUT key swap)
	}
}

// extendedLengthInfo is the value of DO 7F66 (OpenPGP card 3.4.1 §4.1.3.1): max command and response bytes.
// The card has it only "if extended length is supported" (3.4.1, the 6E contents): behind a short-APDU reader GET DATA 7F66 is
// 6A88 and 6E leaves it out.
var extendedLengthInfo = []byte{
	0x02, 0x02, byte(maxCommandData >> 8), byte(maxCommandData & 0xFF),
	0x02, 0x02, byte(maxResponseLen >> 8), byte(maxResponseLen & 0xFF),
}

// aid returns the full 16-byte AID (OpenPGP card 3.4.1 §4.2.1).
func (c *Card) aid() []byte {
	b := append([]byte(nil), aidPrefix...)
	b = append(b, byte(Version>>8), byte(Version&0xFF), byte(Manufacturer>>8), byte(Manufacturer&0xFF))
	b = append(b, c.serial[:]...)
	return append(b, 0x00, 0x00)
}
