package card

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"path/filepath"
	"testing"

	"github.com/ccidgadget/ccidgadget/store"
)

// Benchmarks go through Transmit: APDU parsing, access checks, the store transactions (with fsync) and the
// algorithm. card/algo benchmarks the raw algorithms.

func benchCard(b *testing.B, kdf store.KDFParams) *testCard {
	b.Helper()
	st, err := store.Open(filepath.Join(b.TempDir(), "state.db"), store.Options{KDF: kdf})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	c, err := New(st, Options{})
	if err != nil {
		b.Fatal(err)
	}
	c.PowerOn(context.Background())
	return &testCard{Card: c, t: b, st: st}
}

// BenchmarkVerify is VERIFY 82 with the right PIN: two committed transactions (decrement, restore) and one
// Argon2id derivation at the store's cost.
func BenchmarkVerify(b *testing.B) {
	for _, tc := range []struct {
		name string
		kdf  store.KDFParams
	}{{"FastKDF", store.FastKDF}, {"DefaultKDF", store.DefaultKDF}} {
		b.Run(tc.name, func(b *testing.B) {
			c := benchCard(b, tc.kdf)
			apdu := h("00 20 00 82 06 313233343536")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, sw := c.send(apdu); sw != SWNoError {
					b.Fatal(sw)
				}
			}
		})
	}
}

// BenchmarkGetData6E is GET DATA of the application related data, which GnuPG reads at every start.
func BenchmarkGetData6E(b *testing.B) {
	c := benchCard(b, store.FastKDF)
	apdu := h("00 CA 00 6E 000000")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, sw := c.send(apdu); sw != SWNoError {
			b.Fatal(sw)
		}
	}
}

var benchAlgos = []string{"rsa2048", "nistp256s", "ed25519"}

// BenchmarkSign is PSO:CDS with PW1 valid for several signatures: open the sealed key, sign, commit the counter.
func BenchmarkSign(b *testing.B) {
	for _, name := range benchAlgos {
		b.Run(name, func(b *testing.B) {
			c := benchCard(b, store.FastKDF)
			c.verifyPW3()
			c.setAttrs(roleSig, name)
			c.generate(roleSig)
			c.ok("00 DA 00 C4 01 01")
			c.verifySign()
			apdu := Command{INS: 0x2A, P1: 0x9E, P2: 0x9A, Data: signInput(name), Ne: 65536, Extended: true}.Bytes()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, sw := c.send(apdu); sw != SWNoError {
					b.Fatal(sw)
				}
			}
		})
	}
}

// BenchmarkAuthenticate is INTERNAL AUTHENTICATE (SSH): open the sealed key and sign, no commit.
func BenchmarkAuthenticate(b *testing.B) {
	for _, name := range benchAlgos {
		b.Run(name, func(b *testing.B) {
			c := benchCard(b, store.FastKDF)
			c.verifyPW3()
			c.setAttrs(roleAut, name)
			c.generate(roleAut)
			c.verifyPW1()
			apdu := Command{INS: 0x88, Data: signInput(name), Ne: 65536, Extended: true}.Bytes()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, sw := c.send(apdu); sw != SWNoError {
					b.Fatal(sw)
				}
			}
		})
	}
}

// BenchmarkDecipher is PSO:DECIPHER: RSA PKCS#1, ECDH P-256 and X25519 (cv25519).
func BenchmarkDecipher(b *testing.B) {
	for _, name := range []string{"rsa2048", "nistp256d", "cv25519"} {
		b.Run(name, func(b *testing.B) {
			c := benchCard(b, store.FastKDF)
			c.verifyPW3()
			if name != "rsa2048" {
				c.setAttrs(roleDec, name)
			}
			pub := c.generate(roleDec)
			c.verifyPW1()
			var data []byte
			switch name {
			case "rsa2048":
				ct, err := rsa.EncryptPKCS1v15(rand.Reader, rsaPub(b, pub), []byte("0123456789abcdef0123456789abcdef"))
				if err != nil {
					b.Fatal(err)
				}
				data = append([]byte{0}, ct...)
			case "nistp256d":
				eph, _ := ecdh.P256().GenerateKey(rand.Reader)
				data = tlv(0xA6, tlv(tagPublicKey, tlv(0x86, eph.PublicKey().Bytes())))
			case "cv25519":
				eph, _ := ecdh.X25519().GenerateKey(rand.Reader)
				data = tlv(0xA6, tlv(tagPublicKey, tlv(0x86, eph.PublicKey().Bytes())))
			}
			apdu := Command{INS: 0x2A, P1: 0x80, P2: 0x86, Data: data, Ne: 65536, Extended: true}.Bytes()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, sw := c.send(apdu); sw != SWNoError {
					b.Fatal(sw)
				}
			}
		})
	}
}

// BenchmarkGenerate is GENERATE ASYMMETRIC KEY PAIR: generation, sealing and the committed transaction.
func BenchmarkGenerate(b *testing.B) {
	for _, tc := range []struct {
		name string
		role int
	}{{"rsa2048", roleSig}, {"nistp256s", roleSig}, {"ed25519", roleSig}, {"cv25519", roleDec}} {
		b.Run(tc.name, func(b *testing.B) {
			c := benchCard(b, store.FastKDF)
			c.verifyPW3()
			if tc.name != "rsa2048" {
				c.setAttrs(tc.role, tc.name)
			}
			crt := []string{"B600", "B800", "A400"}[tc.role]
			apdu := Command{INS: 0x47, P1: 0x80, Data: h(crt), Ne: 65536, Extended: true}.Bytes()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, sw := c.send(apdu); sw != SWNoError {
					b.Fatal(sw)
				}
			}
		})
	}
}
