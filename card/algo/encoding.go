package algo

// tlv appends a BER-TLV with a one-byte tag and a definite length (§4.4.4: 1, 2 or 3 length bytes).
func tlv(dst []byte, tag byte, value []byte) []byte {
	dst = append(dst, tag)
	switch n := len(value); {
	case n < 0x80:
		dst = append(dst, byte(n))
	case n < 0x100:
		dst = append(dst, 0x81, byte(n))
	default:
		dst = append(dst, 0x82, byte(n>>8), byte(n))
	}
	return append(dst, value...)
}

// fixedBigEndian returns the big-endian integer b as exactly size bytes: leading zero bytes are dropped and the
// result left-padded with zeros. ok is false when the value does not fit.
func fixedBigEndian(b []byte, size int) (out []byte, ok bool) {
	for len(b) > size && b[0] == 0 {
		b = b[1:]
	}
	if len(b) > size {
		return nil, false
	}
	out = make([]byte, size)
	copy(out[size-len(b):], b)
	return out, true
}

// stripPrefix40 returns the native encoding of a public key of size bytes given with or without GnuPG's 0x40
// prefix.
func stripPrefix40(b []byte, size int) ([]byte, bool) {
	switch {
	case len(b) == size:
		return b, true
	case len(b) == size+1 && b[0] == 0x40:
		return b[1:], true
	}
	return nil, false
}

// reversed returns a reversed copy of b.
func reversed(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[len(b)-1-i] = c
	}
	return out
}
