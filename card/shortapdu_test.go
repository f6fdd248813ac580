package card

import (
	"bytes"
	"testing"
)

// TestIdentityByExchangeLevel pins what the card says about its exchange level, byte for byte: the default card
// announces extended length in the historical bytes (5F52, 6E, ATR) and has 7F66; Options.ShortAPDUOnly
// announces command chaining only, has no 7F66 and caps GET CHALLENGE at 256 bytes in C0.
func TestIdentityByExchangeLevel(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		hist     string
		atr      string
		c0       string
		ext      string // GET DATA 7F66; "" means 6A88
		children []uint16
	}{
		{
			name: "extended",
			opts: Options{},
			hist: "00 31 C5 73 C0 01 C0 05 90 00",
			atr:  "3B DA 18 FF 81 B1 FE 65 1F 03 00 31 C5 73 C0 01 C0 05 90 00 99",
			c0:   "7F 00 0800 1000 00FF 00 01",
			ext:  "7F66 08 0202 0800 0202 0800",
			children: []uint16{tagAID, tagHistorical, tagGeneralFeatures, tagExtendedLength,
				tagDiscretionary},
		},
		{
			name:     "short APDU only",
			opts:     Options{ShortAPDUOnly: true},
			hist:     "00 31 C5 73 C0 01 80 05 90 00",
			atr:      "3B DA 18 FF 81 B1 FE 65 1F 03 00 31 C5 73 C0 01 80 05 90 00 D9",
			c0:       "7F 00 0100 1000 00FF 00 01",
			children: []uint16{tagAID, tagHistorical, tagGeneralFeatures, tagDiscretionary},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCard(t, tt.opts)
			c.selectApp()
			if got := c.ok("00 CA 5F 52 00"); !bytes.Equal(got, h(tt.hist)) {
				t.Errorf("5F52 %X, want %s", got, tt.hist)
			}
			a := c.ATR()
			if !bytes.Equal(a, h(tt.atr)) {
				t.Errorf("ATR %X, want %s", a, tt.atr)
			}
			var x byte
			for _, b := range a[1:] {
				x ^= b
			}
			if x != 0 {
				t.Errorf("TCK wrong: XOR(T0..TCK) = %02X", x)
			}
			if on, err := c.PowerOn(t.Context()); err != nil || !bytes.Equal(on, a) {
				t.Errorf("PowerOn %X %v, want the ATR", on, err)
			}
			c.selectApp()
			if got := c.ok("00 CA 00 C0 00"); !bytes.Equal(got, h(tt.c0)) {
				t.Errorf("C0 %X, want %s", got, tt.c0)
			}
			got, sw := c.x("00 CA 7F 66 00")
			switch {
			case tt.ext == "" && sw != SWReferencedDataNotFound:
				t.Errorf("GET DATA 7F66: %X %v, want 6A88", got, sw)
			case tt.ext != "" && (sw != SWNoError || !bytes.Equal(got, h(tt.ext))):
				t.Errorf("GET DATA 7F66: %X %v, want %s", got, sw, tt.ext)
			}

			// 6E holds exactly the listed DOs, each as GET DATA returns it; 5F52 inside is the ATR's.
			v, err := onlyTLV(c.long("00 CA 00 6E 00"), tagApplicationData)
			if err != nil {
				t.Fatalf("6E: %v", err)
			}
			var tags []uint16
			for len(v) > 0 {
				tag, val, rest, err := readTLV(v)
				if err != nil {
					t.Fatalf("6E: %v", err)
				}
				tags = append(tags, uint16(tag))
				if uint16(tag) == tagHistorical && !bytes.Equal(val, a[len(a)-1-len(val):len(a)-1]) {
					t.Errorf("5F52 in 6E %X is not the ATR's historical bytes", val)
				}
				v = rest
			}
			if len(tags) != len(tt.children) {
				t.Fatalf("6E holds %04X, want %04X", tags, tt.children)
			}
			for i := range tags {
				if tags[i] != tt.children[i] {
					t.Fatalf("6E holds %04X, want %04X", tags, tt.children)
				}
			}
		})
	}
}

// TestShortAPDUOnlyRefusesExtendedLength: behind a short-APDU reader every APDU with extended length fields is
// 6700 — case 2, 3 and 4, GET RESPONSE too — and drops a pending response and a chain, as a malformed APDU does.
// The default card runs the same APDUs.
func TestShortAPDUOnlyRefusesExtendedLength(t *testing.T) {
	apdus := []struct {
		name string
		apdu string
	}{
		{"case 2 extended", "00 CA 00 6E 000800"},
		{"case 2 extended Le 65536", "00 CA 5F 52 000000"},
		{"case 3 extended", "00 A4 04 00 000006 D27600012401"},
		{"case 4 extended", "00 A4 04 00 000006 D27600012401 0000"},
	}
	for _, a := range apdus {
		t.Run(a.name, func(t *testing.T) {
			short := newTestCard(t, Options{ShortAPDUOnly: true})
			if got, sw := short.x(a.apdu); sw != SWWrongLength || len(got) != 0 {
				t.Errorf("short-APDU card: %X %v, want 6700", got, sw)
			}
			def := newTestCard(t, Options{})
			if _, sw := def.x(a.apdu); sw != SWNoError {
				t.Errorf("default card: %v, want 9000", sw)
			}
		})
	}

	c := newTestCard(t, Options{ShortAPDUOnly: true})
	c.verifyPW3()
	c.putChained(0x7F, 0x21, fakeCert(600, 4))
	if _, sw := c.x("00 CA 7F 21 00"); sw&0xFF00 != SWBytesRemaining {
		t.Fatalf("long answer: %v, want 61xx", sw)
	}
	if _, sw := c.x("00 C0 00 00 000100"); sw != SWWrongLength {
		t.Fatalf("extended GET RESPONSE: %v, want 6700", sw)
	}
	if _, sw := c.x("00 C0 00 00 00"); sw != SWConditionsNotSatisfied {
		t.Fatalf("GET RESPONSE after the refused one: %v, want 6985 (nothing pending)", sw)
	}
	c.x("10 DA 00 5B 01 41")
	if _, sw := c.x("00 DA 00 5B 000001 42"); sw != SWWrongLength {
		t.Fatalf("extended link of a chain: %v, want 6700", sw)
	}
	c.ok("00 DA 00 5B 01 43") // a fresh command: the chain is gone
	if got := c.ok("00 CA 00 5B 00"); !bytes.Equal(got, []byte("C")) {
		t.Fatalf("5B %q: the refused chain leaked into the next command", got)
	}
}

// TestShortAPDUOnlyCertificate writes a 2 KiB certificate through a command chain of short APDUs and reads it
// back in parts of at most 256 bytes through 61xx and GET RESPONSE, as scdaemon does when 5F52 announces no
// extended length; nothing in either direction needs more than a short APDU.
func TestShortAPDUOnlyCertificate(t *testing.T) {
	c := newTestCard(t, Options{ShortAPDUOnly: true})
	cert := fakeCert(2048, 7)
	c.selectApp()
	// What scdaemon reads first: chaining without extended Lc/Le, and room for the certificate.
	if hist := c.ok("00 CA 5F 52 00"); hist[6]&(capChaining|capExtendedLength) != capChaining {
		t.Fatalf("5F52 %X: want command chaining without extended length", hist)
	}
	if c0 := c.ok("00 CA 00 C0 00"); int(c0[4])<<8|int(c0[5]) < len(cert) {
		t.Fatalf("C0 %X: certificates of %d bytes do not fit", c0, len(cert))
	}
	c.verifyPW3()
	c.putChained(0x7F, 0x21, cert)
	c.powerCycle()
	c.selectApp()
	for _, le := range []byte{0x00, 0xF0} {
		got, sw := c.send([]byte{0x00, 0xCA, 0x7F, 0x21, le})
		parts := 1
		for sw&0xFF00 == SWBytesRemaining {
			var more []byte
			more, sw = c.send([]byte{0x00, 0xC0, 0x00, 0x00, byte(sw)})
			if len(more) > 256 {
				t.Fatalf("Le %02X: a part of %d bytes", le, len(more))
			}
			got = append(got, more...)
			parts++
		}
		if sw != SWNoError || !bytes.Equal(got, cert) {
			t.Fatalf("Le %02X: SW %v, %d bytes back of %d", le, sw, len(got), len(cert))
		}
		if min := (len(cert) + 255) / 256; parts < min {
			t.Fatalf("Le %02X: %d parts, want at least %d", le, parts, min)
		}
	}
	c.checkStore()
}

// putChained sends PUT DATA P1 P2 as a command chain of short APDUs of 254 data bytes each (scdaemon's chunk).
func (c *testCard) putChained(p1, p2 byte, data []byte) {
	c.t.Helper()
	for off := 0; off < len(data); off += 254 {
		end := min(off+254, len(data))
		cla := byte(0x10)
		if end == len(data) {
			cla = 0
		}
		apdu := Command{CLA: cla, INS: 0xDA, P1: p1, P2: p2, Data: data[off:end]}.Bytes()
		if len(apdu) > 4+1+255+1 {
			c.t.Fatalf("link of %d bytes is not a short APDU", len(apdu))
		}
		if _, sw := c.send(apdu); sw != SWNoError {
			c.t.Fatalf("PUT DATA %02X%02X link at %d: %v", p1, p2, off, sw)
		}
	}
}

// long sends a short APDU and collects the whole answer through 61xx and GET RESPONSE; the final SW must be 9000.
func (c *testCard) long(apduHex string) []byte {
	c.t.Helper()
	got, sw := c.x(apduHex)
	for sw&0xFF00 == SWBytesRemaining {
		var more []byte
		more, sw = c.send([]byte{0x00, 0xC0, 0x00, 0x00, byte(sw)})
		got = append(got, more...)
	}
	if sw != SWNoError {
		c.t.Fatalf("%s: %v", apduHex, sw)
	}
	return got
}
