package card

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"math/big"
	"testing"

	"github.com/ProtonMail/go-crypto/bitcurves"

	"github.com/ccidgadget/ccidgadget/store"
)

// attrsHex are C1–C3 values GnuPG writes.
var attrsHex = map[string]string{
	"rsa2048":    "01 0800 0020 00",
	"nistp256s":  "13 2A8648CE3D030107",
	"nistp256d":  "12 2A8648CE3D030107",
	"ed25519":    "16 2B06010401DA470F01",
	"cv25519":    "12 2B060104019755010501",
	"nistp384s":  "13 2B81040022",
	"brainpool2": "13 2B2403030208010107",
	"secp256k1s": "13 2B8104000A",
	"secp256k1d": "12 2B8104000A",
}

// setAttrs writes C1+r (PW3 already verified).
func (c *testCard) setAttrs(r int, name string) {
	c.t.Helper()
	c.okb(Command{INS: 0xDA, P2: byte(0xC1 + r), Data: h(attrsHex[name])})
}

// generate runs GENERATE ASYMMETRIC KEY PAIR for role r and returns the 7F49 content.
func (c *testCard) generate(r int) []byte {
	c.t.Helper()
	crt := []string{"B600", "B800", "A400"}[r]
	d := c.okb(Command{INS: 0x47, P1: 0x80, Data: h(crt), Ne: 65536, Extended: true})
	v, err := onlyTLV(d, tagPublicKey)
	if err != nil {
		c.t.Fatalf("keygen answer %X", d)
	}
	if again := c.okb(Command{INS: 0x47, P1: 0x81, Data: h(crt), Ne: 65536, Extended: true}); !bytes.Equal(again, d) {
		c.t.Fatal("47 81 does not read back the generated public key")
	}
	return v
}

func pubTLV(t testing.TB, pub []byte, tag uint16) []byte {
	t.Helper()
	for rest := pub; len(rest) > 0; {
		tg, v, r, err := readTLV(rest)
		if err != nil {
			t.Fatalf("public key %X", pub)
		}
		if tg == tag {
			return v
		}
		rest = r
	}
	t.Fatalf("no %X in public key", tag)
	return nil
}

func rsaPub(t testing.TB, pub []byte) *rsa.PublicKey {
	return &rsa.PublicKey{N: new(big.Int).SetBytes(pubTLV(t, pub, 0x81)), E: int(new(big.Int).SetBytes(pubTLV(t, pub, 0x82)).Int64())}
}

var sha256DigestInfo = h("3031300d060960864801650304020105000420")

// verifySig checks a signature made by the card over input with public key pub of the given attributes.
func verifySig(t testing.TB, name string, pub, input, sig []byte) {
	t.Helper()
	switch name {
	case "rsa2048":
		if err := rsa.VerifyPKCS1v15(rsaPub(t, pub), crypto.SHA256, input[len(sha256DigestInfo):], sig); err != nil {
			t.Fatalf("RSA signature: %v", err)
		}
	case "nistp256s", "nistp256d":
		x, y := elliptic.Unmarshal(elliptic.P256(), pubTLV(t, pub, 0x86))
		k := &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
		if len(sig) != 64 || !ecdsa.Verify(k, input, new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			t.Fatal("ECDSA signature does not verify")
		}
	case "secp256k1s", "secp256k1d":
		// ProtonMail's bitcurves and crypto/ecdsa's generic verifier: not the card's secp256k1 library.
		x, y := elliptic.Unmarshal(bitcurves.S256(), pubTLV(t, pub, 0x86))
		if x == nil {
			t.Fatalf("secp256k1 public key %X not on the curve", pubTLV(t, pub, 0x86))
		}
		k := &ecdsa.PublicKey{Curve: bitcurves.S256(), X: x, Y: y}
		if len(sig) != 64 || !ecdsa.Verify(k, input, new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			t.Fatal("secp256k1 ECDSA signature does not verify")
		}
	case "ed25519":
		if !ed25519.Verify(pubTLV(t, pub, 0x86), input, sig) {
			t.Fatal("Ed25519 signature does not verify")
		}
	default:
		if len(sig) == 0 {
			t.Fatal("empty signature")
		}
	}
}

func signInput(name string) []byte {
	d := sha256.Sum256([]byte("message"))
	if name == "rsa2048" {
		return append(append([]byte(nil), sha256DigestInfo...), d[:]...)
	}
	if name == "nistp384s" {
		return bytes.Repeat([]byte{7}, 48)
	}
	return d[:]
}

// TestSignAuthenticate generates keys on the card and checks PSO:CDS and INTERNAL AUTHENTICATE signatures with
// the standard library, and the signature counter.
func TestSignAuthenticate(t *testing.T) {
	for _, name := range []string{"rsa2048", "nistp256s", "ed25519", "nistp384s", "brainpool2", "secp256k1s"} {
		t.Run(name, func(t *testing.T) {
			c := newTestCard(t, Options{})
			c.verifyPW3()
			c.setAttrs(roleSig, name)
			c.setAttrs(roleAut, name)
			sigPub := c.generate(roleSig)
			autPub := c.generate(roleAut)
			in := signInput(name)
			cds := Command{INS: 0x2A, P1: 0x9E, P2: 0x9A, Data: in, Ne: 65536, Extended: true}
			if _, sw := c.send(cds.Bytes()); sw != SWSecurityStatusNotSatisfied {
				t.Fatalf("CDS without PW1: %v", sw)
			}
			c.verifySign()
			verifySig(t, name, sigPub, in, c.okb(cds))
			// PW1 (81) was good for one signature only (C4 byte 1 = 00).
			if _, sw := c.send(cds.Bytes()); sw != SWSecurityStatusNotSatisfied {
				t.Fatalf("second CDS: %v", sw)
			}
			if ctr := c.ok("00 CA 00 93 00"); !bytes.Equal(ctr, h("000001")) {
				t.Fatalf("signature counter %X", ctr)
			}
			if sst := c.ok("00 CA 00 7A 00"); !bytes.Equal(sst, h("7A 05 93 03 000001")) {
				t.Fatalf("7A %X", sst)
			}
			auth := Command{INS: 0x88, Data: in, Ne: 65536, Extended: true}
			if _, sw := c.send(auth.Bytes()); sw != SWSecurityStatusNotSatisfied {
				t.Fatalf("INTERNAL AUTHENTICATE without PW1: %v", sw)
			}
			c.verifyPW1()
			verifySig(t, name, autPub, in, c.okb(auth))
			c.checkStore()
		})
	}
}

// TestPW1ValidForSeveralSignatures: with C4 byte 1 = 01 one VERIFY 81 covers many signatures (pico #16/#23).
func TestPW1ValidForSeveralSignatures(t *testing.T) {
	c := newTestCard(t, Options{})
	c.verifyPW3()
	c.setAttrs(roleSig, "ed25519")
	c.generate(roleSig)
	c.ok("00 DA 00 C4 01 01")
	if c4 := c.ok("00 CA 00 C4 00"); c4[0] != 0x01 {
		t.Fatalf("C4 %X", c4)
	}
	c.verifySign()
	for i := 0; i < 5; i++ {
		c.ok("00 2A 9E 9A 20 " + string(bytes.Repeat([]byte("AB"), 32)) + " 00")
	}
	if ctr := c.ok("00 CA 00 93 00"); !bytes.Equal(ctr, h("000005")) {
		t.Fatalf("counter %X", ctr)
	}
	// Power off ends it.
	c.powerCycle()
	if _, sw := c.x("00 2A 9E 9A 20 " + string(bytes.Repeat([]byte("AB"), 32)) + " 00"); sw != SWSecurityStatusNotSatisfied {
		t.Fatalf("after power off: %v", sw)
	}
	// Only byte 1 of C4 is writable; other values of it are refused.
	c.verifyPW3()
	if _, sw := c.x("00 DA 00 C4 01 02"); sw != SWIncorrectData {
		t.Fatalf("C4 = 02: %v", sw)
	}
	c.ok("00 DA 00 C4 04 00 20 20 20")
	if c4 := c.ok("00 CA 00 C4 00"); !bytes.Equal(c4, h("00 7F7F7F 03 00 03")) {
		t.Fatalf("C4 %X", c4)
	}
}

// TestDecipher covers PSO:DECIPHER for RSA (00 ‖ ct), ECDH P-256 and cv25519 (A6/7F49/86, with and without the
// 0x40 prefix), and AES (D5) together with PSO:ENCIPHER.
func TestDecipher(t *testing.T) {
	c := newTestCard(t, Options{})
	c.verifyPW3()
	c.verifyPW1()
	dec := func(data []byte) ([]byte, StatusWord) {
		return c.send(Command{INS: 0x2A, P1: 0x80, P2: 0x86, Data: data, Ne: 65536, Extended: true}.Bytes())
	}
	ecdhTemplate := func(point []byte) []byte { return tlv(0xA6, tlv(tagPublicKey, tlv(0x86, point))) }

	t.Run("rsa2048", func(t *testing.T) {
		pub := rsaPub(t, c.generate(roleDec))
		msg := []byte("session key bytes")
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, msg)
		if err != nil {
			t.Fatal(err)
		}
		got, sw := dec(append([]byte{0}, ct...))
		if sw != SWNoError || !bytes.Equal(got, msg) {
			t.Fatalf("SW %v, %X", sw, got)
		}
		if _, sw := dec(ecdhTemplate(make([]byte, 65))); sw != SWIncorrectData {
			t.Fatalf("ECDH template to an RSA key: %v", sw)
		}
	})
	t.Run("nistp256", func(t *testing.T) {
		c.setAttrs(roleDec, "nistp256d")
		pub, err := ecdh.P256().NewPublicKey(pubTLV(t, c.generate(roleDec), 0x86))
		if err != nil {
			t.Fatal(err)
		}
		eph, _ := ecdh.P256().GenerateKey(rand.Reader)
		want, _ := eph.ECDH(pub)
		got, sw := dec(ecdhTemplate(eph.PublicKey().Bytes()))
		if sw != SWNoError || !bytes.Equal(got, want) {
			t.Fatalf("SW %v", sw)
		}
		if _, sw := dec(append([]byte{0}, make([]byte, 64)...)); sw != SWIncorrectData {
			t.Fatalf("RSA form to an ECDH key: %v", sw)
		}
		if _, sw := dec(h("A6 05 7F49 02 8600")); sw != SWIncorrectData {
			t.Fatalf("empty point: %v", sw)
		}
		if _, sw := dec(h("A6 04 7F49 02 8600 FF")); sw != SWIncorrectData {
			t.Fatalf("trailing bytes: %v", sw)
		}
	})
	t.Run("secp256k1", func(t *testing.T) {
		c.setAttrs(roleDec, "secp256k1d")
		// The ephemeral side with ProtonMail's bitcurves, not the card's secp256k1 library.
		curve := bitcurves.S256()
		x, y := elliptic.Unmarshal(curve, pubTLV(t, c.generate(roleDec), 0x86))
		if x == nil {
			t.Fatal("public key not an uncompressed secp256k1 point")
		}
		eph, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		sx, _ := curve.ScalarMult(x, y, eph.D.Bytes())
		got, sw := dec(ecdhTemplate(elliptic.Marshal(curve, eph.X, eph.Y)))
		if sw != SWNoError || !bytes.Equal(got, sx.FillBytes(make([]byte, 32))) {
			t.Fatalf("SW %v, %X", sw, got)
		}
		bad := elliptic.Marshal(curve, eph.X, eph.Y)
		bad[64] ^= 1
		if _, sw := dec(ecdhTemplate(bad)); sw != SWIncorrectData {
			t.Fatalf("point off the curve: %v", sw)
		}
	})
	t.Run("cv25519", func(t *testing.T) {
		c.setAttrs(roleDec, "cv25519")
		pub, err := ecdh.X25519().NewPublicKey(pubTLV(t, c.generate(roleDec), 0x86))
		if err != nil {
			t.Fatal(err)
		}
		eph, _ := ecdh.X25519().GenerateKey(rand.Reader)
		want, _ := eph.ECDH(pub)
		for _, point := range [][]byte{eph.PublicKey().Bytes(), append([]byte{0x40}, eph.PublicKey().Bytes()...)} {
			got, sw := dec(ecdhTemplate(point))
			if sw != SWNoError || !bytes.Equal(got, want) {
				t.Fatalf("point of %d bytes: SW %v", len(point), sw)
			}
		}
	})
	t.Run("aes", func(t *testing.T) {
		if _, sw := c.x("00 2A 86 80 10 00112233445566778899AABBCCDDEEFF 00"); sw != SWReferencedDataNotFound {
			t.Fatalf("ENCIPHER without D5: %v", sw)
		}
		key := bytes.Repeat([]byte{0x5A}, 32)
		c.okb(Command{INS: 0xDA, P2: 0xD5, Data: key})
		plain := bytes.Repeat([]byte("0123456789abcdef"), 3)
		ct := c.okb(Command{INS: 0x2A, P1: 0x86, P2: 0x80, Data: plain, Ne: 256})
		block, _ := aes.NewCipher(key)
		want := make([]byte, len(plain))
		cipher.NewCBCEncrypter(block, make([]byte, 16)).CryptBlocks(want, plain)
		if ct[0] != 0x02 || !bytes.Equal(ct[1:], want) {
			t.Fatalf("ENCIPHER %X", ct)
		}
		got, sw := dec(ct)
		if sw != SWNoError || !bytes.Equal(got, plain) {
			t.Fatalf("DECIPHER AES: %v", sw)
		}
		if _, sw := dec(h("02 0011")); sw != SWWrongLength {
			t.Fatalf("partial block: %v", sw)
		}
		if _, sw := c.x("00 DA 00 D5 05 0102030405"); sw != SWWrongLength {
			t.Fatalf("5-byte AES key: %v", sw)
		}
		if _, sw := c.x("00 CA 00 D5 00"); sw != SWReferencedDataNotFound {
			t.Fatalf("GET DATA D5: %v", sw)
		}
	})
	c.checkStore()
}

// TestImport imports keys with the Extended Header List as GnuPG's build_privkey_template sends it and checks
// that the card's public key and signatures match.
func TestImport(t *testing.T) {
	c := newTestCard(t, Options{})
	c.verifyPW3()
	ehl := func(crt string, parts []struct {
		tag byte
		v   []byte
	}) []byte {
		var list, data []byte
		for _, p := range parts {
			list = append(list, p.tag)
			list = appendLen(list, len(p.v))
			data = append(data, p.v...)
		}
		v := h(crt)
		v = appendTLV(v, 0x7F48, list)
		v = appendTLV(v, 0x5F48, data)
		return tlv(0x4D, v)
	}
	type part = struct {
		tag byte
		v   []byte
	}

	t.Run("rsa2048", func(t *testing.T) {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		e := big.NewInt(int64(k.E)).Bytes()
		data := ehl("B6 00", []part{{0x91, e}, {0x92, k.Primes[0].Bytes()}, {0x93, k.Primes[1].Bytes()}})
		// As GnuPG sends it without extended length: a command chain.
		for off := 0; off < len(data); off += 254 {
			end := min(off+254, len(data))
			cla := byte(0x10)
			if end == len(data) {
				cla = 0
			}
			c.okb(Command{CLA: cla, INS: 0xDB, P1: 0x3F, P2: 0xFF, Data: data[off:end]})
		}
		pub := c.okb(Command{INS: 0x47, P1: 0x81, Data: h("B600"), Ne: 65536, Extended: true})
		pub, err = onlyTLV(pub, tagPublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if n := pubTLV(t, pub, 0x81); !bytes.Equal(n, k.N.Bytes()) {
			t.Fatal("modulus differs")
		}
		c.verifySign()
		in := signInput("rsa2048")
		verifySig(t, "rsa2048", pub, in, c.okb(Command{INS: 0x2A, P1: 0x9E, P2: 0x9A, Data: in, Ne: 65536, Extended: true}))
		if ki := c.ok("00 CA 00 DE 00"); !bytes.Equal(ki, h("0102 0200 0300")) {
			t.Fatalf("DE %X", ki)
		}
	})
	t.Run("ed25519", func(t *testing.T) {
		c.setAttrs(roleAut, "ed25519")
		pubKey, priv, _ := ed25519.GenerateKey(rand.Reader)
		c.okb(Command{INS: 0xDB, P1: 0x3F, P2: 0xFF, Data: ehl("A4 00", []part{{0x92, priv.Seed()}, {0x99, append([]byte{0x40}, pubKey...)}})})
		pub := c.okb(Command{INS: 0x47, P1: 0x81, Data: h("A400"), Ne: 256})
		if !bytes.Equal(pubTLV(t, pub[3:], 0x86), pubKey) {
			t.Fatalf("public key %X", pub)
		}
		// A public key that does not belong to the private key is refused and changes nothing.
		other, _, _ := ed25519.GenerateKey(rand.Reader)
		if _, sw := c.send(Command{INS: 0xDB, P1: 0x3F, P2: 0xFF, Data: ehl("A4 00", []part{{0x92, priv.Seed()}, {0x99, other}})}.Bytes()); sw != SWIncorrectData {
			t.Fatalf("mismatched public key: %v", sw)
		}
		if again := c.okb(Command{INS: 0x47, P1: 0x81, Data: h("A400"), Ne: 256}); !bytes.Equal(again, pub) {
			t.Fatal("failed import changed the key")
		}
	})
	bad := []struct {
		name string
		data string
		sw   StatusWord
	}{
		{"not 4D", "4E 00", SWIncorrectData},
		{"bad CRT", "4D 08 B7 00 7F48 01 92 5F48 00", SWIncorrectData},
		{"list longer than data", "4D 0B B6 00 7F48 02 92 05 5F48 01 00", SWIncorrectData},
		{"data longer than list", "4D 0B B6 00 7F48 01 92 5F48 02 00 01", SWIncorrectData},
		{"unknown part tag", "4D 0B B6 00 7F48 02 8F 01 5F48 01 00", SWIncorrectData},
		{"truncated", "4D 20 B6 00", SWIncorrectData},
	}
	for _, b := range bad {
		if _, sw := c.x("00 DB 3F FF " + hexLen(b.data) + b.data); sw != b.sw {
			t.Errorf("%s: %v, want %v", b.name, sw, b.sw)
		}
	}
	if _, sw := c.x("00 DB 3F FE 02 4D00"); sw != SWIncorrectP1P2 {
		t.Errorf("DB with P1-P2 3FFE: %v", sw)
	}
	c.checkStore()
}

// hexLen returns the short Lc of a hex string as hex.
func hexLen(s string) string {
	return string([]byte{"0123456789ABCDEF"[len(h(s))>>4], "0123456789ABCDEF"[len(h(s))&15]}) + " "
}

// TestChangingAttributesDeletesKey: a new C1–C3 value deletes that slot's key, fingerprint and date; the same
// value again keeps them; unsupported values and algorithms wrong for the slot are 6A80.
func TestChangingAttributesDeletesKey(t *testing.T) {
	c := newTestCard(t, Options{})
	c.verifyPW3()
	c.setAttrs(roleSig, "ed25519")
	c.generate(roleSig)
	c.ok("00 DA 00 C7 14 " + string(bytes.Repeat([]byte("11"), 20)))
	c.ok("00 DA 00 CE 04 65000000")
	c.setAttrs(roleSig, "ed25519")
	c.ok("00 47 81 00 02 B600 00")
	c.setAttrs(roleSig, "nistp256s")
	if _, sw := c.x("00 47 81 00 02 B600 00"); sw != SWReferencedDataNotFound {
		t.Fatalf("key survived an attribute change: %v", sw)
	}
	if fp := c.ok("00 CA 00 C5 00"); !bytes.Equal(fp, make([]byte, 60)) {
		t.Fatalf("fingerprint survived: %X", fp)
	}
	if ts := c.ok("00 CA 00 CD 00"); !bytes.Equal(ts, make([]byte, 12)) {
		t.Fatalf("date survived: %X", ts)
	}
	for _, v := range []string{
		"12 2B060104019755010501", // cv25519 (ECDH) is not a signature algorithm
		"01 0400 0020 00",         // rsa1024
		"16 2B8104000A",           // EdDSA on secp256k1
		"12 2B8104000A",           // secp256k1 ECDH is for the decryption slot only
		"99 00",
		"",
	} {
		if _, sw := c.send(Command{INS: 0xDA, P2: 0xC1, Data: h(v)}.Bytes()); sw != SWIncorrectData && sw != SWWrongLength {
			t.Errorf("C1 = %s: %v", v, sw)
		}
	}
	if _, sw := c.send(Command{INS: 0xDA, P2: 0xC2, Data: h(attrsHex["ed25519"])}.Bytes()); sw != SWIncorrectData {
		t.Errorf("ed25519 for DEC: %v", sw)
	}
	// Every value FA lists is accepted by its slot.
	fa := c.ok("00 CA 00 FA 000000")
	v, err := onlyTLV(fa, tagAlgorithmInformation)
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; len(v) > 0; n++ {
		tag, a, rest, err := readTLV(v)
		if err != nil {
			t.Fatal(err)
		}
		c.okb(Command{INS: 0xDA, P2: byte(tag), Data: a})
		v = rest
	}
}

// TestSecp256k1 takes secp256k1 (OID 1.3.132.0.10) through the card: FA lists it for every slot, C1 accepts it
// and deletes the old key, 4D imports published keys (d = 0 and d >= n are refused and change nothing), 47 81
// reads the public key, PSO:CDS and INTERNAL AUTHENTICATE give the published RFC 6979 signature and PSO:DECIPHER
// the published ECDH secret.
//
// Vectors: the public key of d = 1 is SEC 2's generator G; the signature is bitcointalk.org topic 285142
// (msg3150733), d = 1, SHA-256("Satoshi Nakamoto"), with the low s (BIP 62) that libsecp256k1, trezor-crypto and
// the card give; the ECDH secret is Wycheproof ecdh_secp256k1_test.json tcId 1 ("normal case").
func TestSecp256k1(t *testing.T) {
	c := newTestCard(t, Options{})
	c.verifyPW3()
	ehl := func(crt string, parts ...[]byte) []byte { // parts: tag, value, tag, value ...
		var list, data []byte
		for i := 0; i < len(parts); i += 2 {
			list = append(list, parts[i][0])
			list = appendLen(list, len(parts[i+1]))
			data = append(data, parts[i+1]...)
		}
		v := appendTLV(h(crt), 0x7F48, list)
		return tlv(0x4D, appendTLV(v, 0x5F48, data))
	}
	readPub := func(crt string) []byte {
		t.Helper()
		pub, err := onlyTLV(c.okb(Command{INS: 0x47, P1: 0x81, Data: h(crt), Ne: 65536, Extended: true}), tagPublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}

	// FA lists secp256k1 ECDSA for SIG and AUT, ECDH for DEC.
	fa, err := onlyTLV(c.ok("00 CA 00 FA 000000"), tagAlgorithmInformation)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"C1 06 13 2B8104000A", "C2 06 12 2B8104000A", "C3 06 13 2B8104000A"} {
		if !bytes.Contains(fa, h(want)) {
			t.Errorf("FA %X lacks %s", fa, want)
		}
	}

	// Changing C1 from ed25519 to secp256k1 deletes the key, its fingerprint and date.
	c.setAttrs(roleSig, "ed25519")
	c.generate(roleSig)
	c.ok("00 DA 00 C7 14 " + string(bytes.Repeat([]byte("11"), 20)))
	c.ok("00 DA 00 CE 04 65000000")
	c.setAttrs(roleSig, "secp256k1s")
	if _, sw := c.x("00 47 81 00 02 B600 00"); sw != SWReferencedDataNotFound {
		t.Fatalf("key survived the change to secp256k1: %v", sw)
	}
	if fp := c.ok("00 CA 00 C5 00"); !bytes.Equal(fp[:20], make([]byte, 20)) {
		t.Fatalf("fingerprint survived: %X", fp)
	}
	if a := c.ok("00 CA 00 6E 000000"); !bytes.Contains(a, h("C1 06 13 2B8104000A")) {
		t.Fatalf("6E does not show C1 = secp256k1: %X", a)
	}

	// Generation: 04||X||Y on the curve, read back by 47 81 (generate checks that), verified by bitcurves.
	pub := c.generate(roleSig)
	if p := pubTLV(t, pub, 0x86); len(p) != 65 || p[0] != 0x04 {
		t.Fatalf("generated public key %X", p)
	}
	c.verifySign()
	in := signInput("secp256k1s")
	verifySig(t, "secp256k1s", pub, in, c.okb(Command{INS: 0x2A, P1: 0x9E, P2: 0x9A, Data: in, Ne: 256}))

	// Import of d = 1 with its public key G, as GnuPG sends it (99 = 04||X||Y).
	g := h("04 79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798" +
		"483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8")
	c.okb(Command{INS: 0xDB, P1: 0x3F, P2: 0xFF, Data: ehl("B6 00", []byte{0x92}, []byte{1}, []byte{0x99}, g)})
	if got := pubTLV(t, readPub("B600"), 0x86); !bytes.Equal(got, g) {
		t.Fatalf("public key of d = 1: %X, want G", got)
	}
	n := bitcurves.S256().Params().N
	for name, d := range map[string][]byte{"d = 0": {0}, "d = n": n.Bytes(), "d = n+1": new(big.Int).Add(n, big.NewInt(1)).Bytes(),
		"d of 33 bytes": bytes.Repeat([]byte{1}, 33)} {
		if _, sw := c.send(Command{INS: 0xDB, P1: 0x3F, P2: 0xFF, Data: ehl("B6 00", []byte{0x92}, d)}.Bytes()); sw != SWIncorrectData {
			t.Errorf("import %s: %v", name, sw)
		}
	}
	if got := pubTLV(t, readPub("B600"), 0x86); !bytes.Equal(got, g) {
		t.Fatal("a refused import changed the key")
	}
	msg := sha256.Sum256([]byte("Satoshi Nakamoto"))
	want := h("934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d8" +
		"2442ce9d2b916064108014783e923ec36b49743e2ffa1c4496f01a512aafd9e5")
	c.verifySign()
	if got := c.okb(Command{INS: 0x2A, P1: 0x9E, P2: 0x9A, Data: msg[:], Ne: 256}); !bytes.Equal(got, want) {
		t.Fatalf("PSO:CDS %X, want %X", got, want)
	}

	// The same key in the AUT slot, 92 left-padded to 32 bytes: INTERNAL AUTHENTICATE gives the same signature.
	c.setAttrs(roleAut, "secp256k1s")
	c.okb(Command{INS: 0xDB, P1: 0x3F, P2: 0xFF, Data: ehl("A4 00", []byte{0x92}, append(make([]byte, 31), 1))})
	c.verifyPW1()
	if got := c.okb(Command{INS: 0x88, Data: msg[:], Ne: 256}); !bytes.Equal(got, want) {
		t.Fatalf("INTERNAL AUTHENTICATE %X, want %X", got, want)
	}

	// ECDH: Wycheproof tcId 1 imported into DEC.
	c.setAttrs(roleDec, "secp256k1d")
	c.okb(Command{INS: 0xDB, P1: 0x3F, P2: 0xFF, Data: ehl("B8 00", []byte{0x92},
		h("00f4b7ff7cccc98813a69fae3df222bfe3f4e28f764bf91b4a10d8096ce446b254"))})
	peer := h("04d8096af8a11e0b80037e1ee68246b5dcbb0aeb1cf1244fd767db80f3fa27da2b" +
		"396812ea1686e7472e9692eaf3e958e50e9500d3b4c77243db1f2acd67ba9cc4")
	dec := func(point []byte) ([]byte, StatusWord) {
		return c.send(Command{INS: 0x2A, P1: 0x80, P2: 0x86, Data: tlv(0xA6, tlv(tagPublicKey, tlv(0x86, point))), Ne: 256}.Bytes())
	}
	if got, sw := dec(peer); sw != SWNoError || !bytes.Equal(got, h("544dfae22af6af939042b1d85b71a1e49e9a5614123c4d6ad0c8af65baf87d65")) {
		t.Fatalf("ECDH: %v %X", sw, got)
	}
	for name, p := range map[string][]byte{
		"off the curve":  append(bytes.Clone(peer[:64]), peer[64]^1),
		"compressed":     append([]byte{0x02}, peer[1:33]...),
		"hybrid 06":      append([]byte{0x06}, peer[1:]...),
		"x = p":          append(append([]byte{4}, bitcurves.S256().Params().P.Bytes()...), peer[33:]...),
		"point of zeros": make([]byte, 65),
	} {
		if _, sw := dec(p); sw != SWIncorrectData {
			t.Errorf("ECDH with a point %s: %v", name, sw)
		}
	}
	c.checkStore()
}

// TestMSESwap: MANAGE SECURITY ENVIRONMENT lets the AUT key decipher and the DEC key authenticate.
func TestMSESwap(t *testing.T) {
	c := newTestCard(t, Options{})
	c.verifyPW3()
	c.setAttrs(roleDec, "nistp256d")
	c.setAttrs(roleAut, "nistp256s")
	decPub := c.generate(roleDec)
	autPub := c.generate(roleAut)
	c.verifyPW1()

	in := signInput("nistp256s")
	c.ok("00 22 41 A4 03 830102")
	verifySig(t, "nistp256s", decPub, in, c.okb(Command{INS: 0x88, Data: in, Ne: 256}))
	c.ok("00 22 41 B8 03 830103")
	pub, _ := ecdh.P256().NewPublicKey(pubTLV(t, autPub, 0x86))
	eph, _ := ecdh.P256().GenerateKey(rand.Reader)
	want, _ := eph.ECDH(pub)
	got := c.okb(Command{INS: 0x2A, P1: 0x80, P2: 0x86, Data: tlv(0xA6, tlv(tagPublicKey, tlv(0x86, eph.PublicKey().Bytes()))), Ne: 256})
	if !bytes.Equal(got, want) {
		t.Fatal("swapped decipher used the wrong key")
	}
	// SELECT restores the defaults.
	c.selectApp()
	verifySig(t, "nistp256s", autPub, in, c.okb(Command{INS: 0x88, Data: in, Ne: 256}))

	for _, tc := range []struct {
		apdu string
		sw   StatusWord
	}{
		{"00 22 41 A4 03 830101", SWIncorrectData},
		{"00 22 41 A4 03 840102", SWIncorrectData},
		{"00 22 41 B6 03 830102", SWIncorrectP1P2},
		{"00 22 81 A4 03 830102", SWIncorrectP1P2},
	} {
		if _, sw := c.x(tc.apdu); sw != tc.sw {
			t.Errorf("%s: %v, want %v", tc.apdu, sw, tc.sw)
		}
	}
	// An EdDSA AUT key cannot decipher; a cv25519 DEC key cannot authenticate.
	c.verifyPW3()
	c.setAttrs(roleAut, "ed25519")
	c.setAttrs(roleDec, "cv25519")
	if _, sw := c.x("00 22 41 B8 03 830103"); sw != SWIncorrectData {
		t.Errorf("EdDSA key for decipher: %v", sw)
	}
	if _, sw := c.x("00 22 41 A4 03 830102"); sw != SWIncorrectData {
		t.Errorf("cv25519 key for authenticate: %v", sw)
	}
}

// presenceFunc adapts a function to Presence.
type presenceFunc func(ctx context.Context, op Operation) error

func (f presenceFunc) Confirm(ctx context.Context, op Operation) error { return f(ctx, op) }

// TestUIF: with a UIF flag on, the Presence check runs before the operation and a refusal is 6982.
func TestUIF(t *testing.T) {
	var asked []Operation
	allow := true
	c := newTestCard(t, Options{Presence: presenceFunc(func(ctx context.Context, op Operation) error {
		asked = append(asked, op)
		if !allow {
			return errors.New("no touch")
		}
		return nil
	})})
	if f := c.ok("00 CA 7F 74 00"); !bytes.Equal(f, h("7F74 03 810120")) {
		t.Fatalf("7F74 %X", f)
	}
	c.verifyPW3()
	c.setAttrs(roleSig, "ed25519")
	c.generate(roleSig)
	c.ok("00 DA 00 C4 01 01")
	in := signInput("ed25519")
	cds := Command{INS: 0x2A, P1: 0x9E, P2: 0x9A, Data: in, Ne: 256}
	c.verifySign()
	c.okb(cds)
	if len(asked) != 0 {
		t.Fatal("asked for presence with UIF off")
	}
	c.ok("00 DA 00 D6 02 0120")
	if u := c.ok("00 CA 00 D6 00"); !bytes.Equal(u, h("0120")) {
		t.Fatalf("D6 %X", u)
	}
	c.okb(cds)
	allow = false
	if _, sw := c.send(cds.Bytes()); sw != SWSecurityStatusNotSatisfied {
		t.Fatalf("refused presence: %v", sw)
	}
	if len(asked) != 2 || asked[0] != OpSign {
		t.Fatalf("asked %v", asked)
	}
	// Permanent: cannot be turned off except by factory reset.
	c.ok("00 DA 00 D6 02 0220")
	if _, sw := c.x("00 DA 00 D6 02 0020"); sw != SWConditionsNotSatisfied {
		t.Fatalf("turning off a permanent UIF: %v", sw)
	}
	if _, sw := c.x("00 DA 00 D6 02 0320"); sw != SWIncorrectData {
		t.Fatalf("UIF 03: %v", sw)
	}
	// Without a Presence, 7F74 announces no button.
	c2 := newTestCard(t, Options{})
	if f := c2.ok("00 CA 7F 74 00"); !bytes.Equal(f, h("7F74 03 810100")) {
		t.Fatalf("7F74 without presence %X", f)
	}
}

// TestKeyNeedsDataKeyOfThisEpoch: a signature key made before a factory reset cannot be used with a data key
// from after it, and nothing panics on a missing key.
func TestMissingKeys(t *testing.T) {
	c := newTestCard(t, Options{})
	c.verifySign()
	c.verifyPW1()
	for _, apdu := range []string{"00 2A 9E 9A 02 0102 00", "00 88 00 00 02 0102 00", "00 2A 80 86 03 000102 00"} {
		if _, sw := c.x(apdu); sw != SWReferencedDataNotFound {
			t.Errorf("%s without a key: %v", apdu, sw)
		}
	}
	var n int
	c.st.View(func(tx *store.Tx) error {
		for r := 0; r < store.NumRoles; r++ {
			if tx.HasKey(r) {
				n++
			}
		}
		return nil
	})
	if n != 0 {
		t.Fatal("keys appeared")
	}
}

// TestResponseHonoursLe replays OpenSC 0.23's GENERATE over vpcd (openpgp-tool --gen-key): an extended APDU
// whose Le is 256 for a 270-byte RSA-2048 public key. The card sends 256 bytes and 610E, because PC/SC fails
// the exchange (OpenSC: "Transmit failed") when a card sends more than Le; a short Le behaves the same, and
// GET RESPONSE fetches the rest.
func TestResponseHonoursLe(t *testing.T) {
	c := newTestCard(t, Options{})
	c.verifyPW3()
	d, sw := c.x("00 47 80 00 00 0002 A400 0100")
	if sw != 0x610E || len(d) != 256 {
		t.Fatalf("SW %v, %d bytes", sw, len(d))
	}
	rest, sw := c.x("00 C0 00 00 0E")
	if sw != SWNoError || len(rest) != 14 {
		t.Fatalf("GET RESPONSE: %v %X", sw, rest)
	}
	full := c.ok("00 47 81 00 00 0002 A400 0000")
	if !bytes.Equal(full, append(d, rest...)) {
		t.Fatal("parts do not make the key")
	}
	if _, sw := c.x("00 47 81 00 02 A400 00"); sw != 0x610E {
		t.Fatalf("short Le: %v", sw)
	}
	// GET RESPONSE with a smaller Le walks the rest in parts.
	for _, want := range []StatusWord{0x6108, 0x6102, SWNoError} {
		if _, sw := c.x("00 C0 00 00 06"); sw != want {
			t.Fatalf("GET RESPONSE part: %v, want %v", sw, want)
		}
	}
}

// TestPresenceGetsContext: the Presence check runs under Transmit's context, so the reader's abort (a cancelled
// context) ends the wait and Transmit reports it.
func TestPresenceGetsContext(t *testing.T) {
	started := make(chan struct{})
	c := newTestCard(t, Options{Presence: presenceFunc(func(ctx context.Context, op Operation) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})})
	c.verifyPW3()
	c.setAttrs(roleAut, "ed25519")
	c.generate(roleAut)
	c.ok("00 DA 00 D8 02 0120")
	c.verifyPW1()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Transmit(ctx, Command{INS: 0x88, Data: signInput("ed25519"), Ne: 256}.Bytes())
		done <- err
	}()
	<-started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Transmit after cancel: %v", err)
	}
	// The card still works afterwards.
	c.ok("00 CA 00 6E 000000")
}
