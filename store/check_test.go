package store

import (
	"errors"
	"math/rand/v2"
	"os"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// withRawFile opens path with bbolt directly, applies fn in one transaction and closes it.
func withRawFile(t testing.TB, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// newStateFile creates a closed state file with a key, a certificate and a DO in it.
func newStateFile(t testing.TB) string {
	t.Helper()
	s, path := openTest(t, Options{})
	dk := mustVerify(t, s, PW3, "12345678")
	defer dk.Destroy()
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutKey(RoleSig, dk, []byte("private"), []byte("public")); err != nil {
			return err
		}
		if err := tx.SetCert(0, []byte("cert")); err != nil {
			return err
		}
		return tx.SetDO(0x5b, []byte("name"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("Check on a good file: %v", err)
	}
	s.Close()
	return path
}

func TestCheckBadRecords(t *testing.T) {
	put := func(bucket []byte, k, v []byte) func(*bolt.Tx) error {
		return func(btx *bolt.Tx) error { return btx.Bucket(bucket).Put(k, v) }
	}
	editPIN := func(p PIN, fn func(b []byte)) func(*bolt.Tx) error {
		return func(btx *bolt.Tx) error {
			v := clone(btx.Bucket(bktPIN).Get([]byte{byte(p)}))
			fn(v)
			return btx.Bucket(bktPIN).Put([]byte{byte(p)}, v)
		}
	}
	editKey := func(fn func(b []byte) []byte) func(*bolt.Tx) error {
		return func(btx *bolt.Tx) error {
			v := clone(btx.Bucket(bktKey).Get([]byte{RoleSig}))
			return btx.Bucket(bktKey).Put([]byte{RoleSig}, fn(v))
		}
	}
	tests := []struct {
		name string
		fn   func(*bolt.Tx) error
		want error
	}{
		{"schema newer", put(bktMeta, keySchema, u32(schemaVersion+1)), ErrSchema},
		{"schema zero", put(bktMeta, keySchema, u32(0)), ErrCorrupt},
		{"schema record short", put(bktMeta, keySchema, []byte{2}), ErrCorrupt},
		{"serial short", put(bktMeta, keySerial, []byte{1, 2}), ErrCorrupt},
		{"epoch missing", func(btx *bolt.Tx) error { return btx.Bucket(bktMeta).Delete(keyEpoch) }, ErrCorrupt},
		{"unknown meta record", put(bktMeta, []byte("what"), []byte{1}), ErrCorrupt},
		{"unknown bucket", func(btx *bolt.Tx) error { _, err := btx.CreateBucket([]byte("x")); return err }, ErrCorrupt},
		{"pin bucket missing", func(btx *bolt.Tx) error { return btx.DeleteBucket(bktPIN) }, ErrCorrupt},
		{"DO key of 3 bytes", put(bktDO, []byte{1, 2, 3}, []byte{1}), ErrCorrupt},
		{"DO 7F21 among DOs", put(bktDO, u16(0x7f21), []byte{1}), ErrCorrupt},
		{"certificate occurrence 3", put(bktCert, []byte{3}, []byte{1}), ErrCorrupt},
		{"PW3 record missing", func(btx *bolt.Tx) error { return btx.Bucket(bktPIN).Delete([]byte{byte(PW3)}) }, ErrCorrupt},
		{"PW1 record truncated", put(bktPIN, []byte{byte(PW1)}, []byte{1, 1, 3, 3}), ErrCorrupt},
		{"PW1 record version", editPIN(PW1, func(b []byte) { b[0] = 9 }), ErrCorrupt},
		{"PW1 retries above max", editPIN(PW1, func(b []byte) { b[2] = 4 }), ErrCorrupt},
		{"PW1 max zero", editPIN(PW1, func(b []byte) { b[2], b[3] = 0, 0 }), ErrCorrupt},
		{"PW3 unset", editPIN(PW3, func(b []byte) { clear(b[1:]); b[3] = 3 }), ErrCorrupt},
		{"PW1 KDF memory 4 GiB", editPIN(PW1, func(b []byte) { b[9], b[10], b[11], b[12] = 0xff, 0xff, 0xff, 0xff }), ErrCorrupt},
		{"PW1 KDF time zero", editPIN(PW1, func(b []byte) { clear(b[5:9]) }), ErrCorrupt},
		{"PW3 wrap zeroed", editPIN(PW3, func(b []byte) { clear(b[pinRecordLen-wrapLen:]) }), ErrCorrupt},
		{"key record short", editKey(func(b []byte) []byte { return b[:10] }), ErrCorrupt},
		{"key public length huge", editKey(func(b []byte) []byte { b[42], b[43] = 0xff, 0xff; return b }), ErrCorrupt},
		{"key role mismatch", editKey(func(b []byte) []byte { b[1] = 2; return b }), ErrCorrupt},
		{"key blob version", editKey(func(b []byte) []byte { b[0] = 7; return b }), ErrCorrupt},
		{"key from an old data key", editKey(func(b []byte) []byte { b[2] ^= 1; return b }), ErrCorrupt},
		{"key role 9", put(bktKey, []byte{9}, []byte{1}), ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := newStateFile(t)
			withRawFile(t, path, tc.fn)
			s, err := Open(path, Options{KDF: FastKDF})
			if err == nil {
				s.Close()
				t.Fatal("Open accepted the file")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCheckOnOpenStore(t *testing.T) {
	s, _ := openTest(t, Options{})
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	s.db.Update(func(btx *bolt.Tx) error { return btx.Bucket(bktPIN).Put([]byte{byte(RC)}, []byte{0}) })
	if err := s.Check(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Check: %v, want ErrCorrupt", err)
	}
}

func TestOpenTruncatedFile(t *testing.T) {
	path := newStateFile(t)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := parseBoltMeta(raw[:pageHeaderSize+metaSize])
	if !ok {
		t.Fatal("meta page 0 does not parse")
	}
	used := int(m.pgid) * int(m.pageSize) // bbolt grows the file ahead; the tail past this is unused
	for _, n := range []int{1, 100, 4095, 4096, 8192, 12288, used / 2, used - 4096, used - 1} {
		if n <= 0 || n >= used {
			continue
		}
		if err := os.WriteFile(path, raw[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{KDF: FastKDF})
		if err == nil {
			s.Close()
			t.Errorf("truncated to %d of %d used bytes: Open accepted it", n, used)
			continue
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("truncated to %d: %v, want ErrCorrupt", n, err)
		}
	}
	// Cutting only the unused tail loses nothing.
	if err := os.WriteFile(path, raw[:used], 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{KDF: FastKDF})
	if err != nil {
		t.Fatalf("file cut to its used %d bytes: %v", used, err)
	}
	s.Close()
}

// TestOpenFlippedBytes flips random bytes anywhere in the file: Open either fails with an error or succeeds with a
// file that passes Check; it never panics.
func TestOpenFlippedBytes(t *testing.T) {
	path := newStateFile(t)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var failed, opened int
	for i := range 300 {
		bad := clone(raw)
		for range 1 + i%4 {
			bad[rng.IntN(len(bad))] ^= byte(1 + rng.IntN(255))
		}
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{KDF: FastKDF})
		if err != nil {
			failed++
			continue
		}
		opened++
		s.Close()
	}
	t.Logf("%d corrupted files refused, %d opened (flips in free or unused bytes)", failed, opened)
}

func TestOpenForeignBboltFile(t *testing.T) {
	path := t.TempDir() + "/other.db"
	withRawFile(t, path, func(btx *bolt.Tx) error {
		_, err := btx.CreateBucket([]byte("something else"))
		return err
	})
	if _, err := Open(path, Options{KDF: FastKDF}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of another program's bbolt file: %v, want ErrCorrupt", err)
	}
}
