package card

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/ccidgadget/ccidgadget/store"
)

// fakeCert returns n bytes shaped like a DER certificate (30 82 len ...), different per seed.
func fakeCert(n int, seed byte) []byte {
	b := make([]byte, n)
	b[0], b[1], b[2], b[3] = 0x30, 0x82, byte((n-4)>>8), byte(n-4)
	for i := 4; i < n; i++ {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

// powerCycle powers the card off and on, as pcscd does after 5 s idle.
func (c *testCard) powerCycle() {
	c.t.Helper()
	if err := c.PowerOff(); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.PowerOn(context.Background()); err != nil {
		c.t.Fatal(err)
	}
}

// TestGnuPGCertificateSequence replays scdaemon's WRITECERT and READCERT of OPENPGP.1, .2 and .3 (app-openpgp.c
// do_writecert / do_readcert, research §1): OPENPGP.3 = occurrence 0 with plain GET/PUT DATA 7F21; OPENPGP.2 and
// .1 = SELECT DATA occurrence 1 or 2, GET/PUT DATA 7F21, then SELECT DATA occurrence 0. Three different ~2 KiB
// certificates go in with PW3 through extended APDUs and come back byte-identical with no PIN at all.
func TestGnuPGCertificateSequence(t *testing.T) {
	c := newTestCard(t, Options{})
	certs := map[string][]byte{
		"OPENPGP.1": fakeCert(2040, 1),
		"OPENPGP.2": fakeCert(2048, 2),
		"OPENPGP.3": fakeCert(1990, 3),
	}
	occ := map[string]byte{"OPENPGP.1": 2, "OPENPGP.2": 1, "OPENPGP.3": 0}
	selectData := func(o byte) { c.okb(Command{INS: 0xA5, P1: o, P2: 0x04, Data: h("60 04 5C 02 7F 21")}) }

	c.selectApp()
	c.verifyPW3()
	for _, id := range []string{"OPENPGP.3", "OPENPGP.2", "OPENPGP.1"} {
		if occ[id] != 0 {
			selectData(occ[id])
		}
		c.okb(Command{INS: 0xDA, P1: 0x7F, P2: 0x21, Data: certs[id], Extended: true})
		if occ[id] != 0 {
			selectData(0)
		}
	}

	// A new session without any PIN, as `gpg-card readcert` runs it.
	c.powerCycle()
	c.selectApp()
	for _, id := range []string{"OPENPGP.1", "OPENPGP.2", "OPENPGP.3"} {
		if occ[id] != 0 {
			selectData(occ[id])
		}
		got := c.okb(Command{INS: 0xCA, P1: 0x7F, P2: 0x21, Ne: 65536, Extended: true})
		if occ[id] != 0 {
			selectData(0)
		}
		if !bytes.Equal(got, certs[id]) {
			t.Fatalf("%s: read back %d bytes, want the %d written", id, len(got), len(certs[id]))
		}
	}

	// openpgp-card's walk: GET DATA 7F21 (occurrence 0), then GET NEXT DATA twice; a third finds nothing.
	c.powerCycle()
	c.selectApp()
	for i, want := range [][]byte{certs["OPENPGP.3"], certs["OPENPGP.2"], certs["OPENPGP.1"]} {
		ins := byte(0xCA)
		if i > 0 {
			ins = 0xCC
		}
		if got := c.okb(Command{INS: ins, P1: 0x7F, P2: 0x21, Ne: 65536, Extended: true}); !bytes.Equal(got, want) {
			t.Fatalf("walk step %d: %d bytes", i, len(got))
		}
	}
	if _, sw := c.x("00 CC 7F 21 000000"); sw != SWReferencedDataNotFound {
		t.Fatalf("GET NEXT DATA past the last occurrence: %v", sw)
	}

	// Power off resets the occurrence to 0 (AUT).
	selectData(2)
	c.powerCycle()
	if got := c.okb(Command{INS: 0xCA, P1: 0x7F, P2: 0x21, Ne: 65536, Extended: true}); !bytes.Equal(got, certs["OPENPGP.3"]) {
		t.Fatal("occurrence survived power off")
	}
	// So does SELECT of the application.
	selectData(1)
	c.selectApp()
	if got := c.okb(Command{INS: 0xCA, P1: 0x7F, P2: 0x21, Ne: 65536, Extended: true}); !bytes.Equal(got, certs["OPENPGP.3"]) {
		t.Fatal("occurrence survived SELECT")
	}
	c.checkStore()
}

// TestCertificateShortAPDUs sends a certificate of the maximum length C0 announces as a command chain of short
// APDUs and reads it back with a short Le through 61xx / GET RESPONSE, as a host without extended length does.
func TestCertificateShortAPDUs(t *testing.T) {
	c := newTestCard(t, Options{})
	c0 := c.ok("00 CA 00 C0 00")
	cert := fakeCert(int(c0[4])<<8|int(c0[5]), 9)
	c.verifyPW3()
	c.okb(Command{INS: 0xA5, P1: 1, P2: 4, Data: h("60 04 5C 02 7F 21")})
	for off := 0; off < len(cert); off += 254 {
		end := min(off+254, len(cert))
		cla := byte(0x10)
		if end == len(cert) {
			cla = 0
		}
		c.okb(Command{CLA: cla, INS: 0xDA, P1: 0x7F, P2: 0x21, Data: cert[off:end]})
	}
	got, sw := c.x("00 CA 7F 21 00")
	for sw&0xFF00 == SWBytesRemaining {
		if len(got)%256 != 0 {
			t.Fatalf("a part of %d bytes before 61xx", len(got))
		}
		var more []byte
		more, sw = c.send([]byte{0x00, 0xC0, 0x00, 0x00, byte(sw)})
		got = append(got, more...)
	}
	if sw != SWNoError || !bytes.Equal(got, cert) {
		for i := range got {
			if got[i] != cert[i] {
				t.Logf("first difference at %d", i)
				break
			}
		}
		t.Fatalf("SW %v, %d bytes back of %d", sw, len(got), len(cert))
	}
	// One byte more than C0 announces is refused.
	if _, sw := c.send(Command{INS: 0xDA, P1: 0x7F, P2: 0x21, Data: fakeCert(len(cert)+1, 1)}.Bytes()); sw != SWWrongLength {
		t.Fatalf("oversized certificate: %v", sw)
	}
}

// TestGnuPGFactoryReset replays gpg-card's factory-reset (tools/gpg-card.c cmd_factoryreset): it blocks PW1 and
// PW3 with four wrong VERIFYs of 32 bytes 0x40 each, then TERMINATE DF and ACTIVATE FILE, then a reader reset.
// Everything the card held is gone and the default PINs work again.
func TestGnuPGFactoryReset(t *testing.T) {
	c := newTestCard(t, Options{})
	c.verifyPW3()
	c.ok("00 DA 00 5B 09 446F653C3C4A6F686E")
	c.ok("00 DA 7F 21 03 300100")
	c.ok("00 DA 00 D3 08 3837363534333231")
	c.ok("00 47 80 00 000002 B600 0000")
	c.ok("00 DA 00 C4 01 01")
	c.powerCycle()

	// Before PW3 is blocked, TERMINATE DF needs PW3.
	if _, sw := c.x("00 E6 00 00"); sw != SWSecurityStatusNotSatisfied {
		t.Fatalf("TERMINATE DF without PW3: %v", sw)
	}
	bad := "20 " + strings40()
	for _, p2 := range []string{"81", "83"} {
		for i, want := range []StatusWord{0x63C2, 0x63C1, 0x63C0, SWAuthenticationMethodBlocked} {
			if _, sw := c.x("00 20 00 " + p2 + bad); sw != want {
				t.Fatalf("VERIFY %s try %d: %v, want %v", p2, i, sw, want)
			}
		}
	}
	c.ok("00 E6 00 00")
	// Terminated: SELECT says so, other commands are refused.
	if _, sw := c.x("00 A4 04 00 06 D27600012401"); sw != SWSelectedFileTerminated {
		t.Fatalf("SELECT when terminated: %v", sw)
	}
	if _, sw := c.x("00 CA 00 6E 00"); sw != SWConditionsNotSatisfied {
		t.Fatalf("GET DATA when terminated: %v", sw)
	}
	c.ok("00 44 00 00")
	c.powerCycle()
	c.selectApp()
	c.verifyPW3()
	c.verifyPW1()
	if d := c.ok("00 CA 00 5B 00"); len(d) != 0 {
		t.Fatalf("name survived: %X", d)
	}
	if d := c.ok("00 CA 7F 21 00"); len(d) != 0 {
		t.Fatal("certificate survived")
	}
	if _, sw := c.x("00 47 81 00 02 B600 00"); sw != SWReferencedDataNotFound {
		t.Fatalf("signature key survived: %v", sw)
	}
	if c4 := c.ok("00 CA 00 C4 00"); !bytes.Equal(c4, h("00 7F7F7F 03 00 03")) {
		t.Fatalf("C4 after reset %X", c4)
	}
	c.checkStore()
}

// strings40 is Lc 20 and 32 bytes of 0x40, gpg-card's deliberately wrong PIN.
func strings40() string { return string(bytes.Repeat([]byte("40"), 32)) }

// TestTerminatePersists shows that TERMINATE DF survives a power cut before ACTIVATE FILE: the card comes back
// terminated, and already wiped.
func TestTerminatePersists(t *testing.T) {
	c := newTestCard(t, Options{})
	c.verifyPW3()
	c.ok("00 DA 00 5B 03 414243")
	c.ok("00 E6 00 00")
	c2, err := New(c.st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c2.PowerOn(context.Background())
	tc := &testCard{Card: c2, t: t, st: c.st}
	if _, sw := tc.x("00 A4 04 00 06 D27600012401"); sw != SWSelectedFileTerminated {
		t.Fatalf("SELECT: %v", sw)
	}
	tc.ok("00 44 00 00")
	tc.selectApp()
	if d := tc.ok("00 CA 00 5B 00"); len(d) != 0 {
		t.Fatal("name survived TERMINATE DF")
	}
	// ACTIVATE FILE on an active card changes nothing.
	tc.verifyPW3()
	tc.ok("00 DA 00 5B 03 414243")
	tc.ok("00 44 00 00")
	if d := tc.ok("00 CA 00 5B 00"); string(d) != "ABC" {
		t.Fatal("ACTIVATE FILE on an active card changed it")
	}
}

// TestGnuPGKDFSetup replays the two ways GnuPG turns the KDF-DO on (kdf-setup, research §1 and the vpcd run
// with Debian's GnuPG 2.2.40):
//
//   - gpg22: VERIFY PW3, PUT DATA F9; from then on gpg sends the KDF hashes of the PINs, starting from the hashed
//     defaults it put in 87/88.
//   - newer: the same, then CHANGE REFERENCE DATA 83 (old admin PIN ‖ hashed default), VERIFY 83, RESET RETRY
//     COUNTER (P1=02) 81 to the hashed default user PIN, PUT DATA D3 empty.
//
// Both in the 110- and the 90-byte form. Afterwards only the hashed PINs work, the key made before still signs,
// F9 reads back as written, and deleting F9 brings the default PINs back.
func TestGnuPGKDFSetup(t *testing.T) {
	for _, gpg := range []string{"gpg22", "newer"} {
		for _, form := range []string{"110", "90"} {
			t.Run(gpg+"/"+form, func(t *testing.T) {
				c := newTestCard(t, Options{})
				c.verifyPW3()
				c.ok("00 DA 00 C1 0A 16 2B06010401DA470F01") // ed25519 signing key
				c.ok("00 47 80 00 02 B600 00")
				c.ok("00 DA 00 D3 08 3837363534333231")

				kdf := kdfDO(form == "110")
				hashedPW1, hashedPW3 := kdfField(kdf, 0x87), kdfField(kdf, 0x88)
				c.okb(Command{INS: 0xDA, P1: 0x00, P2: 0xF9, Data: kdf})
				if gpg == "newer" {
					c.okb(Command{INS: 0x24, P1: 0, P2: 0x83, Data: append([]byte("12345678"), hashedPW3...)})
					c.okb(Command{INS: 0x20, P1: 0, P2: 0x83, Data: hashedPW3})
					c.okb(Command{INS: 0x2C, P1: 0x02, P2: 0x81, Data: hashedPW1})
					c.ok("00 DA 00 D3 00")
				}
				if got := c.ok("00 CA 00 F9 00"); !bytes.Equal(got, kdf) {
					t.Fatalf("F9 read back %X", got)
				}
				if c4 := c.ok("00 CA 00 C4 00"); !bytes.Equal(c4[4:], h("03 00 03")) {
					t.Fatalf("retry counters %X (the reset code must be gone)", c4[4:])
				}
				c.powerCycle()
				if _, sw := c.x("00 20 00 81 06 313233343536"); sw != 0x63C2 {
					t.Fatalf("unhashed PW1: %v", sw)
				}
				c.okb(Command{INS: 0x20, P1: 0, P2: 0x81, Data: hashedPW1})
				c.okb(Command{INS: 0x2A, P1: 0x9E, P2: 0x9A, Data: bytes.Repeat([]byte{1}, 32), Ne: 256})
				if _, sw := c.x("00 20 00 83 08 3132333435363738"); sw != 0x63C2 {
					t.Fatalf("unhashed PW3: %v", sw)
				}
				c.okb(Command{INS: 0x20, P1: 0, P2: 0x83, Data: hashedPW3})
				// The shortcut for newer GnuPG's CHANGE REFERENCE DATA lasts only for the session that wrote F9.
				if _, sw := c.send(Command{INS: 0x24, P1: 0, P2: 0x83, Data: append([]byte("12345678"), hashedPW3...)}.Bytes()); sw != 0x63C2 {
					t.Fatalf("CHANGE REFERENCE DATA with a wrong old PIN in a later session: %v", sw)
				}
				c.okb(Command{INS: 0x20, P1: 0, P2: 0x83, Data: hashedPW3})
				// Deleting the KDF-DO with 81 01 00 leaves "no KDF" and the default PINs.
				c.ok("00 DA 00 F9 03 810100")
				if got := c.ok("00 CA 00 F9 00"); !bytes.Equal(got, h("810100")) {
					t.Fatalf("F9 after delete %X", got)
				}
				c.verifyPW3()
				c.verifySign()
				c.okb(Command{INS: 0x2A, P1: 0x9E, P2: 0x9A, Data: bytes.Repeat([]byte{1}, 32), Ne: 256})
				c.checkStore()
			})
		}
	}
}

// TestKDFWithoutInitialHashes: a KDF-DO without 87/88 is stored and the PINs stay as they are (the host
// re-keys them); writing 81 01 00 while KDF is off changes no PIN.
func TestKDFWithoutInitialHashes(t *testing.T) {
	c := newTestCard(t, Options{})
	c.verifyPW3()
	c.ok("00 24 00 83 10 3132333435363738 3837363534333231")
	c.ok("00 DA 00 F9 03 810100")
	c.ok("00 20 00 83 08 3837363534333231")
	c.ok("00 DA 00 F9 16 810103 820108 830400010000 8408 0102030405060708")
	c.powerCycle()
	c.ok("00 20 00 83 08 3837363534333231")
	c.verifyPW1()
}

// kdfDO builds a KDF-DO as GnuPG's gen_kdf_data does: 110 bytes (salts for PW1, RC and PW3) or 90 bytes (one
// salt), both with the initial hashes 87 and 88.
func kdfDO(long bool) []byte {
	salt := func() []byte { b := make([]byte, 8); rand.Read(b); return b }
	b := h("810103 820108 8304 03000000")
	b = appendTLV(b, 0x84, salt())
	if long {
		b = appendTLV(b, 0x85, salt())
		b = appendTLV(b, 0x86, salt())
	}
	b = appendTLV(b, 0x87, bytes.Repeat([]byte{0x11}, 32))
	b = appendTLV(b, 0x88, bytes.Repeat([]byte{0x22}, 32))
	return b
}

// TestEmptyVerifyNeverDecrements is openpgp-card's check_pw1_sign / check_pw1_user / check_pw3: VERIFY without
// data is a status query, answered 63Cx or 9000, and never costs a try.
func TestEmptyVerifyNeverDecrements(t *testing.T) {
	c := newTestCard(t, Options{})
	for _, p2 := range []string{"81", "82", "83"} {
		for i := 0; i < 10; i++ {
			if _, sw := c.x("00 20 00 " + p2); sw != 0x63C3 {
				t.Fatalf("empty VERIFY %s: %v", p2, sw)
			}
		}
	}
	if c.retries(store.PW1) != 3 || c.retries(store.PW3) != 3 {
		t.Fatal("an empty VERIFY decremented")
	}
	c.x("00 20 00 82 06 313131313131")
	if _, sw := c.x("00 20 00 82"); sw != 0x63C2 {
		t.Fatalf("after one wrong PIN: %v", sw)
	}
	c.verifyPW1()
	if _, sw := c.x("00 20 00 82"); sw != SWNoError {
		t.Fatalf("after VERIFY 82: %v", sw)
	}
	if _, sw := c.x("00 20 00 81"); sw != 0x63C3 {
		t.Fatalf("81 is a separate access state: %v", sw)
	}
	c.ok("00 20 FF 82")
	if _, sw := c.x("00 20 00 82"); sw != 0x63C3 {
		t.Fatalf("after logout: %v", sw)
	}
	for i := 0; i < 3; i++ {
		c.x("00 20 00 83 08 3030303030303030")
	}
	for i := 0; i < 3; i++ {
		if _, sw := c.x("00 20 00 83"); sw != SWAuthenticationMethodBlocked {
			t.Fatalf("empty VERIFY of a blocked PW3: %v", sw)
		}
	}
}

// TestInfoAndFactoryReset: Info reports what the card holds, one fact per line; FactoryReset (the CLI's reset)
// wipes it without a PIN, including a KDF-DO, so the default PINs work again (SmartPGP #47).
func TestInfoAndFactoryReset(t *testing.T) {
	c := newTestCard(t, Options{})
	c.verifyPW3()
	c.ok("00 DA 00 5B 09 446F653C3C4A6F686E")
	c.ok("00 DA 00 C1 0A 16 2B06010401DA470F01")
	c.ok("00 47 80 00 02 B600 00")
	c.ok("00 DA 00 C7 14 " + string(bytes.Repeat([]byte("AB"), 20)))
	c.ok("00 DA 00 CE 04 65000000")
	c.okb(Command{INS: 0xDA, P2: 0xF9, Data: kdfDO(true)})
	c.okb(Command{INS: 0xDA, P1: 0x7F, P2: 0x21, Data: fakeCert(100, 1)})
	c.x("00 20 00 81 06 303030303030")
	in, err := c.Info()
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(strings.Fields(in.String()), " ")
	if lines := strings.Count(in.String(), "\n"); lines < 20 {
		t.Errorf("Info.String has %d lines", lines)
	}
	for _, want := range []string{"Doe<<John", "sign key: ed25519, generated", "ABABABAB", "2023-09-12T", "PW1 (user PIN): 2 of 3",
		"RC (resetting code): not set", "cert 0 (auth): 100 bytes", "KDF-DO: on", "ident: FFFE:"} {
		if !strings.Contains(s, want) {
			t.Errorf("Info lacks %q:\n%s", want, s)
		}
	}
	if in.Keys[0].Fingerprint == nil || in.Keys[1].Present || in.Manufacturer != 0xFFFE {
		t.Errorf("Info %+v", in)
	}
	if err := c.FactoryReset(); err != nil {
		t.Fatal(err)
	}
	if got := c.ok("00 CA 00 F9 00"); !bytes.Equal(got, h("810100")) {
		t.Fatalf("F9 after reset %X", got)
	}
	c.verifyPW3()
	c.verifyPW1()
	in, _ = c.Info()
	if in.Name != "" || in.Keys[0].Present || in.CertLengths[0] != 0 || in.KDF || in.PW1.Retries != 3 {
		t.Fatalf("after reset: %+v", in)
	}
	c.checkStore()
}
