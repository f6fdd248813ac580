package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestKeysSealedAndOpened(t *testing.T) {
	s, _ := openTest(t, Options{})
	dk := mustVerify(t, s, PW3, "12345678")
	defer dk.Destroy()
	tests := []struct {
		name    string
		role    int
		private []byte
		public  []byte
		wantErr bool
	}{
		{"sig", RoleSig, randBytes(t, 32), randBytes(t, 32), false},
		{"dec", RoleDec, randBytes(t, 1200), randBytes(t, 270), false},
		{"aut", RoleAut, randBytes(t, 66), randBytes(t, 133), false},
		{"aes without public part", RoleAES, randBytes(t, 32), nil, false},
		{"largest", RoleSig, randBytes(t, MaxPrivateKeyLen), randBytes(t, MaxPublicKeyLen), false},
		{"role out of range", NumRoles, randBytes(t, 32), nil, true},
		{"negative role", -1, randBytes(t, 32), nil, true},
		{"empty private", RoleSig, nil, nil, true},
		{"private too long", RoleSig, randBytes(t, MaxPrivateKeyLen+1), nil, true},
		{"public too long", RoleSig, randBytes(t, 32), randBytes(t, MaxPublicKeyLen+1), true},
	}
	for _, tc := range tests {
		err := s.Update(func(tx *Tx) error { return tx.PutKey(tc.role, dk, tc.private, tc.public) })
		if (err != nil) != tc.wantErr {
			t.Fatalf("%s: PutKey err %v, wantErr %v", tc.name, err, tc.wantErr)
		}
		if tc.wantErr {
			continue
		}
		s = reopen(t, s, Options{})
		s.View(func(tx *Tx) error {
			got, err := tx.Key(tc.role, dk)
			if err != nil || !bytes.Equal(got, tc.private) {
				t.Errorf("%s: Key: %d bytes, %v", tc.name, len(got), err)
			}
			if !tx.HasKey(tc.role) || !bytes.Equal(tx.PublicKey(tc.role), tc.public) {
				t.Errorf("%s: HasKey %v, public part differs", tc.name, tx.HasKey(tc.role))
			}
			return nil
		})
	}
	// Delete, and delete again.
	for range 2 {
		if err := s.Update(func(tx *Tx) error { return tx.DeleteKey(RoleDec) }); err != nil {
			t.Fatal(err)
		}
	}
	s.View(func(tx *Tx) error {
		if _, err := tx.Key(RoleDec, dk); !errors.Is(err, ErrNoKey) || tx.HasKey(RoleDec) || tx.PublicKey(RoleDec) != nil {
			t.Errorf("deleted key: %v", err)
		}
		return nil
	})
}

func TestKeyWithWrongDataKeyFails(t *testing.T) {
	s, _ := openTest(t, Options{})
	other, _ := openTest(t, Options{})
	dk := mustVerify(t, s, PW3, "12345678")
	foreign := mustVerify(t, other, PW3, "12345678")
	if err := s.Update(func(tx *Tx) error { return tx.PutKey(RoleAut, dk, []byte("secret"), nil) }); err != nil {
		t.Fatal(err)
	}
	// A data key carrying this state's epoch but other key bytes (a forged or corrupted key): the AEAD refuses.
	forged := &DataKey{epoch: dk.epoch}
	rand.Read(forged.key[:])
	destroyed := mustVerify(t, s, PW1, "123456")
	destroyed.Destroy()
	for name, tc := range map[string]struct {
		dk   *DataKey
		want error
	}{
		"other file": {foreign, ErrWrongDataKey},
		"destroyed":  {destroyed, ErrWrongDataKey},
		"nil":        {nil, ErrWrongDataKey},
		"forged":     {forged, ErrCorrupt},
	} {
		s.View(func(tx *Tx) error {
			if got, err := tx.Key(RoleAut, tc.dk); !errors.Is(err, tc.want) || got != nil {
				t.Errorf("%s: %q, %v, want %v", name, got, err, tc.want)
			}
			return nil
		})
		if tc.want != ErrWrongDataKey {
			continue // a forged key cannot be told from the real one until something sealed under it is opened
		}
		if err := s.Update(func(tx *Tx) error { return tx.PutKey(RoleSig, tc.dk, []byte("x"), nil) }); err == nil {
			t.Errorf("%s: PutKey accepted", name)
		}
	}
}

func TestKeyBlobBoundToRoleAndPublicPart(t *testing.T) {
	// Someone with write access swaps the records, or edits a public part: Key refuses instead of handing out
	// the wrong key.
	tamper := []struct {
		name string
		fn   func(b *bolt.Bucket)
	}{
		{"records swapped between roles", func(b *bolt.Bucket) {
			sig, dec := clone(b.Get([]byte{RoleSig})), clone(b.Get([]byte{RoleDec}))
			sig[1], dec[1] = RoleDec, RoleSig
			b.Put([]byte{RoleSig}, dec)
			b.Put([]byte{RoleDec}, sig)
		}},
		{"public part edited", func(b *bolt.Bucket) {
			v := clone(b.Get([]byte{RoleSig}))
			v[bytes.Index(v, []byte("sig public"))] ^= 1
			b.Put([]byte{RoleSig}, v)
		}},
	}
	for _, tc := range tamper {
		s, _ := openTest(t, Options{})
		dk := mustVerify(t, s, PW3, "12345678")
		err := s.Update(func(tx *Tx) error {
			if err := tx.PutKey(RoleSig, dk, []byte("sig secret"), []byte("sig public")); err != nil {
				return err
			}
			return tx.PutKey(RoleDec, dk, []byte("dec secret"), []byte("dec public"))
		})
		if err != nil {
			t.Fatal(err)
		}
		s.db.Update(func(btx *bolt.Tx) error { tc.fn(btx.Bucket(bktKey)); return nil })
		s.View(func(tx *Tx) error {
			if _, err := tx.Key(RoleSig, dk); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s: Key: %v, want ErrCorrupt", tc.name, err)
			}
			return nil
		})
	}
}

// TestNoPlaintextInFile stores keys, PINs and a reset code, then searches the raw file for any of their bytes.
func TestNoPlaintextInFile(t *testing.T) {
	s, path := openTest(t, Options{})
	dk := mustVerify(t, s, PW3, "12345678")
	keys := [][]byte{randBytes(t, 32), randBytes(t, 512), randBytes(t, 48), randBytes(t, 32)}
	pins := map[PIN][]byte{PW1: []byte("user-pin-4711"), RC: []byte("reset-code-0815"), PW3: []byte("admin-pin-1234")}
	err := s.Update(func(tx *Tx) error {
		for role, k := range keys {
			if err := tx.PutKey(role, dk, k, []byte("public")); err != nil {
				return err
			}
		}
		for p, pin := range pins {
			if err := tx.SetPIN(p, pin, dk); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dkBytes := clone(dk.key[:])
	dk.Destroy()
	s.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{"data key": dkBytes}
	for role, k := range keys {
		// Any 16-byte window of a key would betray it.
		for off := 0; off+16 <= len(k); off += 16 {
			secrets["key "+string(rune('0'+role))] = k[off : off+16]
			if bytes.Contains(raw, k[off:off+16]) {
				t.Errorf("key %d bytes %d..%d in the file", role, off, off+16)
			}
		}
	}
	for p, pin := range pins {
		secrets[p.String()] = pin
	}
	secrets["default PW3"] = []byte("12345678")
	for name, sec := range secrets {
		if bytes.Contains(raw, sec) {
			t.Errorf("%s in the file in plaintext", name)
		}
	}
}

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}
