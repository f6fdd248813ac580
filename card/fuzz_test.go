package card

import (
	"bytes"
	"context"
	"testing"

	"github.com/ccidgadget/ccidgadget/card/algo"
	"github.com/ccidgadget/ccidgadget/store"
)

// FuzzParseCommand: no input panics; whatever parses re-encodes to an APDU that parses to the same command.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"00A40400", "00CA006E00", "0020008106313233343536", "00CA006E000800", "00DA7F21000002AABB", "002A9E9A000002AABB0000"} {
		f.Add(h(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCommand(b)
		if err != nil {
			return
		}
		again, err := ParseCommand(c.Bytes())
		if err != nil {
			t.Fatalf("%X parsed, its re-encoding %X does not: %v", b, c.Bytes(), err)
		}
		if again.INS != c.INS || again.Ne != c.Ne || !bytes.Equal(again.Data, c.Data) {
			t.Fatalf("%X: %+v != %+v", b, again, c)
		}
	})
}

// fuzzSeeds are APDU sequences that reach deep states: PINs verified, keys generated and imported, chains,
// certificates, termination.
var fuzzSeeds = [][]string{
	{"00A4040006D27600012401", "00CA006E00"},
	{"002000830831323334353637 38", "00DA00C10A162B06010401DA470F01", "00478000 02B600 00", "0020008106313233343536", "002A9E9A 20" + string(bytes.Repeat([]byte("AB"), 32)) + "00"},
	{"002000830831323334353637 38", "00DA00C20B122B060104019755010501", "00478000 02B800 00", "0020008206313233343536", "002A8086 27 A6257F4922862040" + string(bytes.Repeat([]byte("09"), 31)) + "00"},
	{"002000830831323334353637 38", "10DA7F21 02 3082", "00DA7F21 02 0102", "00A5010406 60045C027F21", "00CA7F2100", "00CC7F2100"},
	{"002000830831323334353637 38", "00E60000", "00A4040006D27600012401", "00440000"},
	{"002000830831323334353637 38", "00DA00F903810100", "00DA00D308 3132333435363738", "002C0081 0E 3132333435363738 363534333231"},
	{"002000830831323334353637 38", "00DA00D510" + string(bytes.Repeat([]byte("11"), 16)), "0020008206313233343536", "002A8680 10" + string(bytes.Repeat([]byte("22"), 16)) + "00"},
	{"002000830831323334353637 38", "00DB3FFF 2C 4D2A A400 7F48 02 9220 5F48 20" + string(bytes.Repeat([]byte("07"), 32))},
	{"0022 41 A4 03 830102", "00 84 00 00 10", "00 20 00 81", "00 20 FF 81"},
}

// encodeSeq frames APDUs for FuzzTransmit: one length byte each; length FF means "power cycle".
func encodeSeq(apdus []string) []byte {
	var b []byte
	for _, a := range apdus {
		x := h(a)
		b = append(b, byte(len(x)))
		b = append(b, x...)
	}
	return b
}

// slowKeygen reports whether apdu would generate an RSA key: seconds each (RSA-4096 about 5 s here), which
// would stall the fuzzer. RSA generation is covered by TestSignAuthenticate and card/algo's tests.
func slowKeygen(c *testCard, apdu []byte) bool {
	cmd, err := ParseCommand(apdu)
	if err != nil || cmd.INS != insGenerateKeyPair || cmd.P1 != 0x80 {
		return false
	}
	rsa := false
	c.st.View(func(tx *store.Tx) error {
		for r := 0; r < 3; r++ {
			rsa = rsa || attributes(tx, r).ID == algo.IDRSA
		}
		return nil
	})
	return rsa
}

// FuzzTransmit feeds arbitrary APDU sequences to a card over a real state file: no panic, every answer has a
// status word, and afterwards the state file passes its integrity check.
func FuzzTransmit(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(encodeSeq(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c := newTestCard(t, Options{})
		ctx := context.Background()
		for len(in) > 0 {
			n := int(in[0])
			in = in[1:]
			if n == 0xFF {
				c.PowerOff()
				c.PowerOn(ctx)
				continue
			}
			n = min(n, len(in))
			apdu := in[:n]
			in = in[n:]
			if slowKeygen(c, apdu) {
				continue
			}
			r, err := c.Transmit(ctx, apdu)
			if err != nil {
				t.Fatalf("Transmit(%X): %v", apdu, err)
			}
			if len(r) < 2 {
				t.Fatalf("Transmit(%X): answer of %d bytes", apdu, len(r))
			}
		}
		c.checkStore()
		if _, err := c.Info(); err != nil {
			t.Fatalf("Info: %v", err)
		}
	})
}
