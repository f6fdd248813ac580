package store

import (
	"testing"
)

func BenchmarkVerifyPIN(b *testing.B) {
	for _, bc := range []struct {
		name string
		kdf  KDFParams
	}{{"DefaultKDF", DefaultKDF}, {"FastKDF", FastKDF}} {
		b.Run(bc.name, func(b *testing.B) {
			s, _ := openTest(b, Options{KDF: bc.kdf})
			pin := []byte("123456")
			b.ReportAllocs()
			for b.Loop() {
				dk, err := s.VerifyPIN(PW1, pin)
				if err != nil {
					b.Fatal(err)
				}
				dk.Destroy()
			}
		})
	}
}

// BenchmarkDerivePIN is the Argon2id + HKDF cost alone, without the two commits.
func BenchmarkDerivePIN(b *testing.B) {
	salt := make([]byte, saltLen)
	for b.Loop() {
		derivePIN(PW1, []byte("123456"), salt, nil, DefaultKDF)
	}
}

// BenchmarkUpdateSetDO is the cost of one committed (fsynced) transaction with one SetDO.
func BenchmarkUpdateSetDO(b *testing.B) {
	s, _ := openTest(b, Options{})
	v := make([]byte, 64)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		v[0] = byte(i)
		if err := s.Update(func(tx *Tx) error { return tx.SetDO(0x0101, v) }); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPutKey(b *testing.B) {
	s, _ := openTest(b, Options{})
	dk := mustVerify(b, s, PW3, "12345678")
	private, public := make([]byte, 1200), make([]byte, 270) // RSA-2048-sized
	b.ReportAllocs()
	for b.Loop() {
		// Role 3 is rewritten each time; the free-page scrub after replacing a key is part of the cost.
		if err := s.Update(func(tx *Tx) error { return tx.PutKey(RoleAES, dk, private, public) }); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKey(b *testing.B) {
	s, _ := openTest(b, Options{})
	dk := mustVerify(b, s, PW3, "12345678")
	private, public := make([]byte, 1200), make([]byte, 270)
	if err := s.Update(func(tx *Tx) error { return tx.PutKey(RoleSig, dk, private, public) }); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.View(func(tx *Tx) error {
			k, err := tx.Key(RoleSig, dk)
			if err != nil {
				b.Fatal(err)
			}
			clear(k)
			return nil
		})
	}
}
