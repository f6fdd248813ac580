package card

import (
	"errors"
)

// BER-TLV as the OpenPGP card uses it (ISO/IEC 7816-4 §5.2, OpenPGP card 3.4.1 §4.4.1): one- or two-byte tags,
// lengths in one (00..7F), two (81 xx) or three (82 xxxx) bytes.

var errTLV = errors.New("card: malformed BER-TLV")

// appendTLV appends tag, length and value. Tags above FF are written as two bytes.
func appendTLV(b []byte, tag uint16, v []byte) []byte {
	if tag > 0xFF {
		b = append(b, byte(tag>>8))
	}
	b = append(b, byte(tag))
	b = appendLen(b, len(v))
	return append(b, v...)
}

func appendLen(b []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(b, byte(n))
	case n <= 0xFF:
		return append(b, 0x81, byte(n))
	default:
		return append(b, 0x82, byte(n>>8), byte(n))
	}
}

func tlv(tag uint16, v []byte) []byte { return appendTLV(nil, tag, v) }

// readTag reads a BER tag: a first byte whose low five bits are all ones takes a second byte.
func readTag(b []byte) (tag uint16, rest []byte, err error) {
	if len(b) == 0 {
		return 0, nil, errTLV
	}
	if b[0]&0x1F != 0x1F {
		return uint16(b[0]), b[1:], nil
	}
	if len(b) < 2 || b[1]&0x80 != 0 { // three-byte tags are not used by this application
		return 0, nil, errTLV
	}
	return uint16(b[0])<<8 | uint16(b[1]), b[2:], nil
}

// readLen reads a BER length of at most three bytes.
func readLen(b []byte) (n int, rest []byte, err error) {
	if len(b) == 0 {
		return 0, nil, errTLV
	}
	switch {
	case b[0] < 0x80:
		return int(b[0]), b[1:], nil
	case b[0] == 0x81 && len(b) >= 2:
		return int(b[1]), b[2:], nil
	case b[0] == 0x82 && len(b) >= 3:
		return int(b[1])<<8 | int(b[2]), b[3:], nil
	}
	return 0, nil, errTLV
}

// readTLV reads one tag-length-value and returns the bytes after it.
func readTLV(b []byte) (tag uint16, v, rest []byte, err error) {
	tag, b, err = readTag(b)
	if err != nil {
		return 0, nil, nil, err
	}
	n, b, err := readLen(b)
	if err != nil {
		return 0, nil, nil, err
	}
	if n > len(b) {
		return 0, nil, nil, errTLV
	}
	return tag, b[:n], b[n:], nil
}

// onlyTLV reads b as exactly one TLV with the given tag.
func onlyTLV(b []byte, want uint16) ([]byte, error) {
	tag, v, rest, err := readTLV(b)
	if err != nil {
		return nil, err
	}
	if tag != want || len(rest) != 0 {
		return nil, errTLV
	}
	return v, nil
}
