package card

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestStatusWords runs one command after a setup on a fresh card and checks the status word: every command's
// error paths, and the success paths not covered by the sequence tests.
func TestStatusWords(t *testing.T) {
	const (
		pw1 = "00 20 00 82 06 313233343536"
		pw3 = "00 20 00 83 08 3132333435363738"
	)
	tests := []struct {
		name  string
		setup []string
		apdu  string
		sw    StatusWord
		data  string // expected response data in hex, when not empty
	}{
		// ISO layer.
		{name: "malformed APDU", apdu: "00 CA 00", sw: SWWrongLength},
		{name: "Lc disagrees", apdu: "00 DA 00 5B 05 4142", sw: SWWrongLength},
		{name: "proprietary class", apdu: "80 CA 00 6E 00", sw: SWClassNotSupported},
		{name: "CLA FF", apdu: "FF CA 00 6E 00", sw: SWClassNotSupported},
		{name: "logical channel", apdu: "01 CA 00 6E 00", sw: SWLogicalChannelNotSupported},
		{name: "secure messaging", apdu: "0C CA 00 6E 00", sw: SWSecureMessagingNotSupported},
		{name: "unknown INS", apdu: "00 1D 00 00 00", sw: SWInstructionNotSupported},
		{name: "Yubico GET VERSION", apdu: "00 F1 00 00 00", sw: SWInstructionNotSupported},
		{name: "GET RESPONSE with nothing pending", apdu: "00 C0 00 00 00", sw: SWConditionsNotSatisfied},
		{name: "GET RESPONSE P1", setup: []string{}, apdu: "00 C0 01 00 00", sw: SWWrongP1P2},
		{name: "chain switches INS", setup: []string{pw3, "10 DA 00 5B 01 41"}, apdu: "00 DA 00 5E 01 41", sw: SWLastCommandOfChainExpected},
		{name: "chain switches P2", setup: []string{pw3, "10 DA 00 5B 01 41"}, apdu: "00 DA 00 5E 01 41", sw: SWLastCommandOfChainExpected},
		{name: "chain completes", setup: []string{pw3, "10 DA 00 5B 01 41"}, apdu: "00 DA 00 5B 01 42", sw: SWNoError},
		{name: "SELECT ends a chain", setup: []string{pw3, "10 DA 00 5B 01 41"}, apdu: "00 A4 04 00 06 D27600012401", sw: SWNoError},
		{name: "chain of GET DATA", apdu: "10 CA 00 6E 00", sw: SWCommandChainingNotSupported},

		// SELECT.
		{name: "SELECT AID", apdu: "00 A4 04 00 06 D27600012401", sw: SWNoError},
		{name: "SELECT AID P2=0C", apdu: "00 A4 04 0C 06 D27600012401", sw: SWNoError},
		{name: "SELECT AID with version", apdu: "00 A4 04 00 08 D276000124010304", sw: SWNoError},
		{name: "SELECT AID with manufacturer", apdu: "00 A4 04 00 0A D276000124010304FFFE 00", sw: SWNoError},
		{name: "SELECT wrong version", apdu: "00 A4 04 00 08 D276000124010201", sw: SWFileNotFound},
		{name: "SELECT other AID", apdu: "00 A4 04 00 08 A000000527471117", sw: SWFileNotFound},
		{name: "SELECT short AID", apdu: "00 A4 04 00 05 D276000124", sw: SWFileNotFound},
		{name: "SELECT bad P2", apdu: "00 A4 04 05 06 D27600012401", sw: SWIncorrectP1P2},
		{name: "SELECT MF", apdu: "00 A4 00 0C 02 3F00", sw: SWNoError},
		{name: "SELECT MF no data", apdu: "00 A4 00 00", sw: SWNoError},
		{name: "SELECT EF", apdu: "00 A4 00 00 02 2F00", sw: SWFileNotFound},
		{name: "SELECT by path", apdu: "00 A4 08 00 02 2F00", sw: SWFileNotFound},

		// GET DATA.
		{name: "GET DATA unknown", apdu: "00 CA 00 01 00", sw: SWReferencedDataNotFound},
		{name: "GET DATA D3 is write-only", apdu: "00 CA 00 D3 00", sw: SWReferencedDataNotFound},
		{name: "GET DATA 5F35 empty", apdu: "00 CA 5F 35 00", sw: SWNoError},
		{name: "GET DATA 0101 free", setup: []string{pw1, "00 DA 01 01 02 ABCD"}, apdu: "00 CA 01 01 00", sw: SWNoError, data: "ABCD"},
		{name: "GET DATA 0102 free", apdu: "00 CA 01 02 00", sw: SWNoError},
		{name: "GET DATA 0103 needs PW1", apdu: "00 CA 01 03 00", sw: SWSecurityStatusNotSatisfied},
		{name: "GET DATA 0103 after PW1", setup: []string{pw1, "00 DA 01 03 01 AA"}, apdu: "00 CA 01 03 00", sw: SWNoError, data: "AA"},
		{name: "GET DATA 0104 needs PW3", setup: []string{pw1}, apdu: "00 CA 01 04 00", sw: SWSecurityStatusNotSatisfied},
		{name: "GET DATA 0104 after PW3", setup: []string{pw3, "00 DA 01 04 01 BB"}, apdu: "00 CA 01 04 00", sw: SWNoError, data: "BB"},
		{name: "GET DATA F9 default", apdu: "00 CA 00 F9 00", sw: SWNoError, data: "810100"},
		{name: "GET DATA D6 default", apdu: "00 CA 00 D6 00", sw: SWNoError, data: "0020"},
		{name: "GET DATA DE", apdu: "00 CA 00 DE 00", sw: SWNoError, data: "0100 0200 0300"},
		{name: "GET DATA C1 default", apdu: "00 CA 00 C1 00", sw: SWNoError, data: "01 0800 0020 00"},
		{name: "GET DATA 93", apdu: "00 CA 00 93 00", sw: SWNoError, data: "000000"},
		{name: "GET DATA C4", apdu: "00 CA 00 C4 00", sw: SWNoError, data: "00 7F7F7F 03 00 03"},

		// PUT DATA.
		{name: "PUT 5B needs PW3", setup: []string{pw1}, apdu: "00 DA 00 5B 01 41", sw: SWSecurityStatusNotSatisfied},
		{name: "PUT 5B too long", setup: []string{pw3}, apdu: "00 DA 00 5B 28 " + strings.Repeat("41", 40), sw: SWWrongLength},
		{name: "PUT 5B 39 bytes", setup: []string{pw3}, apdu: "00 DA 00 5B 27 " + strings.Repeat("41", 39), sw: SWNoError},
		{name: "PUT 5F35 bad", setup: []string{pw3}, apdu: "00 DA 5F 35 01 33", sw: SWIncorrectData},
		{name: "PUT 5F35", setup: []string{pw3}, apdu: "00 DA 5F 35 01 39", sw: SWNoError},
		{name: "PUT 5F2D odd length", setup: []string{pw3}, apdu: "00 DA 5F 2D 03 656E64", sw: SWWrongLength},
		{name: "PUT 5F2D", setup: []string{pw3}, apdu: "00 DA 5F 2D 04 656E6465", sw: SWNoError},
		{name: "PUT 5E 255", setup: []string{pw3}, apdu: "00 DA 00 5E FF " + strings.Repeat("61", 255), sw: SWNoError},
		{name: "PUT 5F50 256", setup: []string{pw3}, apdu: "00 DA 5F 50 000100 " + strings.Repeat("61", 256), sw: SWWrongLength},
		{name: "PUT C7 19 bytes", setup: []string{pw3}, apdu: "00 DA 00 C7 13 " + strings.Repeat("11", 19), sw: SWWrongLength},
		{name: "PUT CE 3 bytes", setup: []string{pw3}, apdu: "00 DA 00 CE 03 010203", sw: SWWrongLength},
		{name: "PUT 0101 with PW1", setup: []string{pw1}, apdu: "00 DA 01 01 01 01", sw: SWNoError},
		{name: "PUT 0103 with PW1", setup: []string{pw1}, apdu: "00 DA 01 03 01 01", sw: SWNoError},
		{name: "PUT 0102 with PW1 only", setup: []string{pw1}, apdu: "00 DA 01 02 01 01", sw: SWSecurityStatusNotSatisfied},
		{name: "PUT 0104 with PW1 only", setup: []string{pw1}, apdu: "00 DA 01 04 01 01", sw: SWSecurityStatusNotSatisfied},
		{name: "PUT 0101 with PW3 only", setup: []string{pw3}, apdu: "00 DA 01 01 01 01", sw: SWSecurityStatusNotSatisfied},
		{name: "PUT unknown tag", setup: []string{pw3}, apdu: "00 DA 00 01 01 01", sw: SWReferencedDataNotFound},
		{name: "PUT read-only 4F", setup: []string{pw3}, apdu: "00 DA 00 4F 01 01", sw: SWReferencedDataNotFound},
		{name: "PUT F9 garbage", setup: []string{pw3}, apdu: "00 DA 00 F9 03 010203", sw: SWIncorrectData},
		{name: "PUT F9 without salt", setup: []string{pw3}, apdu: "00 DA 00 F9 0C 810103 820108 8304 00010000", sw: SWIncorrectData},
		{name: "PUT F9 needs PW3", setup: []string{pw1}, apdu: "00 DA 00 F9 03 810100", sw: SWSecurityStatusNotSatisfied},
		{name: "PUT 7F21 needs PW3", setup: []string{pw1}, apdu: "00 DA 7F 21 02 3000", sw: SWSecurityStatusNotSatisfied},
		{name: "PUT 7F21", setup: []string{pw3}, apdu: "00 DA 7F 21 02 3000", sw: SWNoError},
		{name: "PUT D3 too short", setup: []string{pw3}, apdu: "00 DA 00 D3 07 31323334353637", sw: SWWrongLength},
		{name: "PUT D3 needs PW3", setup: []string{pw1}, apdu: "00 DA 00 D3 08 3132333435363738", sw: SWSecurityStatusNotSatisfied},
		{name: "PUT C4 too long", setup: []string{pw3}, apdu: "00 DA 00 C4 08 0000000000000000", sw: SWWrongLength},
		{name: "PUT D7 bad length", setup: []string{pw3}, apdu: "00 DA 00 D7 03 012000", sw: SWWrongLength},
		{name: "PUT C2 needs PW3", setup: []string{pw1}, apdu: "00 DA 00 C2 06 010800002000", sw: SWSecurityStatusNotSatisfied},

		// VERIFY.
		{name: "VERIFY P2 84", apdu: "00 20 00 84 06 313233343536", sw: SWIncorrectP1P2},
		{name: "VERIFY P1 01", apdu: "00 20 01 82 06 313233343536", sw: SWIncorrectP1P2},
		{name: "VERIFY wrong", apdu: "00 20 00 82 06 313233343537", sw: 0x63C2},
		{name: "VERIFY blocked", setup: []string{"00 20 00 83 08 3030303030303030", "00 20 00 83 08 3030303030303030", "00 20 00 83 08 3030303030303030"}, apdu: pw3, sw: SWAuthenticationMethodBlocked},
		{name: "VERIFY right", apdu: pw3, sw: SWNoError},
		{name: "VERIFY logout with data", apdu: "00 20 FF 82 01 00", sw: SWWrongLength},
		{name: "VERIFY too long", apdu: "00 20 00 82 80 " + strings.Repeat("31", 128), sw: SWWrongLength},

		// CHANGE REFERENCE DATA.
		{name: "CHANGE P2 82", apdu: "00 24 00 82 0C 313233343536 313233343536", sw: SWIncorrectP1P2},
		{name: "CHANGE wrong old", apdu: "00 24 00 81 0C 313233343530 363534333231", sw: 0x63C2},
		{name: "CHANGE too short new", apdu: "00 24 00 81 0B 313233343536 3635343332", sw: SWWrongLength},
		{name: "CHANGE only old", apdu: "00 24 00 81 06 313233343536", sw: SWWrongLength},
		{name: "CHANGE PW1", apdu: "00 24 00 81 0C 313233343536 363534333231", sw: SWNoError},
		{name: "CHANGE PW3", apdu: "00 24 00 83 10 3132333435363738 3837363534333231", sw: SWNoError},
		{name: "CHANGE empty", apdu: "00 24 00 81", sw: SWWrongLength},

		// RESET RETRY COUNTER.
		{name: "RESET without reset code", apdu: "00 2C 00 81 0E 3132333435363738 313233343536", sw: SWReferenceDataNotUsable},
		{name: "RESET with reset code", setup: []string{pw3, "00 DA 00 D3 08 3132333435363738"}, apdu: "00 2C 00 81 0E 3132333435363738 363534333231", sw: SWNoError},
		{name: "RESET wrong reset code", setup: []string{pw3, "00 DA 00 D3 08 3132333435363738"}, apdu: "00 2C 00 81 0E 3132333435363730 363534333231", sw: 0x63C2},
		{name: "RESET by PW3 needs PW3", setup: []string{pw1}, apdu: "00 2C 02 81 06 363534333231", sw: SWSecurityStatusNotSatisfied},
		{name: "RESET by PW3 short", setup: []string{pw3}, apdu: "00 2C 02 81 05 3635343332", sw: SWWrongLength},
		{name: "RESET by PW3", setup: []string{pw3}, apdu: "00 2C 02 81 06 363534333231", sw: SWNoError},
		{name: "RESET P1 01", setup: []string{pw3}, apdu: "00 2C 01 81 06 363534333231", sw: SWIncorrectP1P2},
		{name: "RESET P2 83", setup: []string{pw3}, apdu: "00 2C 02 83 08 3635343332313030", sw: SWIncorrectP1P2},

		// GENERATE ASYMMETRIC KEY PAIR.
		{name: "GENERATE needs PW3", setup: []string{pw1}, apdu: "00 47 80 00 02 B600 00", sw: SWSecurityStatusNotSatisfied},
		{name: "GENERATE P1 82", setup: []string{pw3}, apdu: "00 47 82 00 02 B600 00", sw: SWIncorrectP1P2},
		{name: "GENERATE bad CRT", setup: []string{pw3}, apdu: "00 47 80 00 02 B700 00", sw: SWIncorrectData},
		{name: "GENERATE CRT with key ref", setup: []string{pw3, "00 DA 00 C1 0A 16 2B06010401DA470F01"}, apdu: "00 47 80 00 05 B603840101 00", sw: SWNoError},
		{name: "READ public key absent", apdu: "00 47 81 00 02 B800 00", sw: SWReferencedDataNotFound},

		// PSO, INTERNAL AUTHENTICATE, GET CHALLENGE.
		{name: "PSO bad P1-P2", setup: []string{pw1}, apdu: "00 2A 9E 9B 01 00 00", sw: SWIncorrectP1P2},
		{name: "CDS needs PW1 81", setup: []string{pw1}, apdu: "00 2A 9E 9A 01 00 00", sw: SWSecurityStatusNotSatisfied},
		{name: "DECIPHER needs PW1 82", apdu: "00 2A 80 86 02 0000 00", sw: SWSecurityStatusNotSatisfied},
		{name: "DECIPHER unknown padding", setup: []string{pw1}, apdu: "00 2A 80 86 02 0500 00", sw: SWIncorrectData},
		{name: "ENCIPHER needs PW1", apdu: "00 2A 86 80 10 00000000000000000000000000000000 00", sw: SWSecurityStatusNotSatisfied},
		{name: "INTERNAL AUTHENTICATE P1", setup: []string{pw1}, apdu: "00 88 01 00 01 00 00", sw: SWIncorrectP1P2},
		{name: "INTERNAL AUTHENTICATE empty", setup: []string{pw1}, apdu: "00 88 00 00 00", sw: SWWrongLength},
		{name: "GET CHALLENGE", apdu: "00 84 00 00 08", sw: SWNoError},
		{name: "GET CHALLENGE without Le", apdu: "00 84 00 00", sw: SWWrongLength},
		{name: "GET CHALLENGE too long", apdu: "00 84 00 00 00 0801", sw: SWWrongLength},
		{name: "GET CHALLENGE P1", apdu: "00 84 01 00 08", sw: SWIncorrectP1P2},

		// SELECT DATA, GET NEXT DATA.
		{name: "SELECT DATA", apdu: "00 A5 02 04 06 60045C027F21", sw: SWNoError},
		{name: "SELECT DATA P1 3", apdu: "00 A5 03 04 06 60045C027F21", sw: SWWrongP1P2},
		{name: "SELECT DATA P1 FF", apdu: "00 A5 FF 04 06 60045C027F21", sw: SWWrongP1P2},
		{name: "SELECT DATA other tag", apdu: "00 A5 00 04 06 60045C025F50", sw: SWReferencedDataNotFound},
		{name: "SELECT DATA one-byte tag", apdu: "00 A5 00 04 05 60035C015E", sw: SWReferencedDataNotFound},
		{name: "SELECT DATA P2", apdu: "00 A5 00 05 06 60045C027F21", sw: SWIncorrectP1P2},
		{name: "SELECT DATA bad body", apdu: "00 A5 00 04 04 5C027F21", sw: SWIncorrectData},
		{name: "SELECT DATA with length byte", apdu: "00 A5 01 04 07 06 60045C027F21", sw: SWNoError},
		{name: "GET NEXT DATA other tag", apdu: "00 CC 5F 50 00", sw: SWReferencedDataNotFound},

		// TERMINATE DF, ACTIVATE FILE, MSE.
		{name: "TERMINATE P1", setup: []string{pw3}, apdu: "00 E6 01 00", sw: SWIncorrectP1P2},
		{name: "TERMINATE with PW3", setup: []string{pw3}, apdu: "00 E6 00 00", sw: SWNoError},
		{name: "ACTIVATE P2", apdu: "00 44 00 01", sw: SWIncorrectP1P2},
		{name: "MSE bad template", apdu: "00 22 41 A4 02 8301", sw: SWIncorrectData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCard(t, Options{})
			for _, s := range tt.setup {
				if _, sw := c.x(s); sw != SWNoError && sw&0xFFF0 != SWVerifyFailed {
					t.Fatalf("setup %s: %v", s, sw)
				}
			}
			data, sw := c.x(tt.apdu)
			if sw != tt.sw {
				t.Fatalf("SW %v, want %v", sw, tt.sw)
			}
			if tt.data != "" && !bytes.Equal(data, h(tt.data)) {
				t.Fatalf("data %X, want %s", data, tt.data)
			}
			c.checkStore()
		})
	}
}

// TestDOEncoding checks the one canonical encoding (package doc): a DO nested in 6E, 65 or 7A is byte for byte
// what GET DATA returns for it, with its tag and length in front when GET DATA returns a value.
func TestDOEncoding(t *testing.T) {
	c := newTestCard(t, Options{})
	c.verifyPW3()
	c.ok("00 DA 00 5B 09 446F653C3C4A6F686E")
	c.ok("00 DA 5F 2D 02 656E")
	c.ok("00 DA 00 C8 14 " + strings.Repeat("22", 20))
	get := func(tag uint16) []byte {
		return c.okb(Command{INS: 0xCA, P1: byte(tag >> 8), P2: byte(tag), Ne: 65536, Extended: true})
	}
	// as returns what a nested TLV must look like given what GET DATA returned.
	as := func(tag uint16) []byte {
		v := get(tag)
		if wrapped[tag] {
			return v
		}
		return tlv(tag, v)
	}
	children := func(parent uint16) [][]byte {
		v, err := onlyTLV(get(parent), parent)
		if err != nil {
			t.Fatalf("GET DATA %04X is not one %04X TLV", parent, parent)
		}
		var out [][]byte
		for len(v) > 0 {
			_, _, rest, err := readTLV(v)
			if err != nil {
				t.Fatalf("%04X: %v", parent, err)
			}
			out = append(out, v[:len(v)-len(rest)])
			v = rest
		}
		return out
	}
	check := func(parent uint16, tags []uint16) {
		kids := children(parent)
		if len(kids) != len(tags) {
			t.Fatalf("%04X has %d children, want %d", parent, len(kids), len(tags))
		}
		for i, tag := range tags {
			if !bytes.Equal(kids[i], as(tag)) {
				t.Errorf("%04X inside %04X: %X, standalone %X", tag, parent, kids[i], as(tag))
			}
		}
	}
	check(tagApplicationData, []uint16{tagAID, tagHistorical, tagGeneralFeatures, tagExtendedLength, tagDiscretionary})
	check(tagDiscretionary, []uint16{0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xCD, 0xDE, 0xD6, 0xD7, 0xD8})
	check(tagCardholderData, []uint16{tagName, tagLanguage, tagSex})
	check(tagSecuritySupport, []uint16{tagSignatureCounter})
	for tag, n := range map[uint16]int{0xC0: 10, 0xC4: 7, 0xC5: 60, 0xC6: 60, 0xCD: 12, 0xDE: 6, 0x4F: 16} {
		if got := len(get(tag)); got != n {
			t.Errorf("%04X: %d bytes, want %d", tag, got, n)
		}
	}
	if fp := get(0xC5); !bytes.Equal(fp[20:40], bytes.Repeat([]byte{0x22}, 20)) {
		t.Errorf("C5 %X", fp)
	}
	if !bytes.Equal(get(tagName), []byte("Doe<<John")) {
		t.Error("5B")
	}
}

// TestPowerResetsSecurityState: power off forgets verified PINs, the data key, chains and pending responses;
// Transmit refuses a powered-off card.
func TestPowerResetsSecurityState(t *testing.T) {
	c := newTestCard(t, Options{})
	c.verifyPW1()
	c.verifyPW3()
	c.x("10 DA 00 5B 01 41")
	c.powerCycle()
	if _, sw := c.x("00 DA 00 5B 01 42"); sw != SWSecurityStatusNotSatisfied {
		t.Fatalf("PW3 survived power off: %v", sw)
	}
	if _, sw := c.x("00 20 00 82"); sw != 0x63C3 {
		t.Fatalf("PW1 survived power off: %v", sw)
	}
	c.verifyPW3()
	c.okb(Command{INS: 0xDA, P1: 0x7F, P2: 0x21, Data: fakeCert(1000, 1)})
	if _, sw := c.x("00 CA 7F 21 00"); sw != 0x6100 {
		t.Fatalf("short read of a long certificate: %v", sw)
	}
	c.powerCycle()
	if _, sw := c.x("00 C0 00 00 00"); sw != SWConditionsNotSatisfied {
		t.Fatalf("pending response survived power off: %v", sw)
	}
	// Any other command also drops a pending response.
	c.x("00 CA 7F 21 00")
	c.x("00 CA 00 C0 00")
	if _, sw := c.x("00 C0 00 00 00"); sw != SWConditionsNotSatisfied {
		t.Fatalf("pending response survived another command: %v", sw)
	}
	c.PowerOff()
	if _, err := c.Transmit(context.Background(), h("00CA006E00")); !errors.Is(err, ErrNotPowered) {
		t.Fatalf("Transmit when off: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.PowerOn(ctx); err == nil {
		t.Fatal("PowerOn with a cancelled context")
	}
}

// TestLogsHoldNoSecrets runs PIN and key commands with a debug logger and looks for the PINs and key bytes in
// the log.
func TestLogsHoldNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	c := newTestCard(t, Options{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	c.x("00 20 00 82 06 393939393939")
	c.verifyPW3()
	c.ok("00 DA 00 D3 08 7265736574636F64")
	c.ok("00 DA 00 D5 10 6B65796B65796B65796B65796B65796B")
	c.ok("00 24 00 83 10 3132333435363738 6E65777061737331")
	c.x("00 2C 00 81 0E 7265736574636F64 6E6577706931")
	log := buf.String()
	if !strings.Contains(log, "apdu") {
		t.Fatal("nothing logged")
	}
	for _, secret := range []string{"999999", "12345678", "resetcod", "keykeykey", "newpass1", "newpi1"} {
		if strings.Contains(log, secret) || strings.Contains(strings.ToUpper(log), strings.ToUpper(hexOf(secret))) {
			t.Errorf("log contains %q", secret)
		}
	}
}

func hexOf(s string) string {
	const digits = "0123456789ABCDEF"
	var b strings.Builder
	for _, c := range []byte(s) {
		b.WriteByte(digits[c>>4])
		b.WriteByte(digits[c&15])
	}
	return b.String()
}
