package store

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

// openTest opens a fresh store with FastKDF in a temporary directory.
func openTest(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	if opts.KDF == (KDFParams{}) {
		opts.KDF = FastKDF
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func reopen(t testing.TB, s *Store, opts Options) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if opts.KDF == (KDFParams{}) {
		opts.KDF = FastKDF
	}
	s2, err := Open(s.Path(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

func TestOpenCreateReopen(t *testing.T) {
	s, _ := openTest(t, Options{})
	var serial [4]byte
	s.View(func(tx *Tx) error {
		serial = tx.Serial()
		for p, want := range map[PIN]PINStatus{
			PW1: {Set: true, Retries: 3, MaxRetries: 3, Length: 6},
			RC:  {Set: false, Retries: 0, MaxRetries: 3},
			PW3: {Set: true, Retries: 3, MaxRetries: 3, Length: 8},
		} {
			if got := tx.PINStatus(p); got != want {
				t.Errorf("%v: status %+v, want %+v", p, got, want)
			}
		}
		return nil
	})
	if serial == ([4]byte{}) || serial == ([4]byte{0xff, 0xff, 0xff, 0xff}) {
		t.Errorf("serial %X", serial)
	}
	s = reopen(t, s, Options{})
	s.View(func(tx *Tx) error {
		if tx.Serial() != serial {
			t.Errorf("serial changed on reopen: %X then %X", serial, tx.Serial())
		}
		return nil
	})
}

func TestSecondOpenIsInUse(t *testing.T) {
	s, path := openTest(t, Options{})
	_, err := Open(path, Options{KDF: FastKDF, Timeout: 50e6})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second open: %v, want ErrInUse", err)
	}
	_ = s
}

func TestDORoundTrip(t *testing.T) {
	outer := t
	s, _ := openTest(t, Options{})
	big := bytes.Repeat([]byte{0xab}, MaxDOLen)
	tests := []struct {
		name    string
		tag     uint16
		v       []byte
		want    []byte
		wantErr bool
	}{
		{"name 5B", 0x5b, []byte("Doe<<John"), []byte("Doe<<John"), false},
		{"url 5F50", 0x5f50, []byte("https://example.org/key.asc"), []byte("https://example.org/key.asc"), false},
		{"private 0101 max size", 0x0101, big, big, false},
		{"too big", 0x0102, append(big, 0), nil, true},
		{"cert tag refused", 0x7f21, []byte{1}, nil, true},
		{"empty deletes", 0x5b, []byte{}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Update(func(tx *Tx) error { return tx.SetDO(tc.tag, tc.v) })
			if (err != nil) != tc.wantErr {
				t.Fatalf("SetDO: err %v, wantErr %v", err, tc.wantErr)
			}
			s = reopen(outer, s, Options{})
			s.View(func(tx *Tx) error {
				if got := tx.DO(tc.tag); !bytes.Equal(got, tc.want) {
					t.Errorf("DO %04X = %d bytes, want %d", tc.tag, len(got), len(tc.want))
				}
				return nil
			})
		})
	}
}

func TestUpdateIsAtomic(t *testing.T) {
	s, _ := openTest(t, Options{})
	boom := errors.New("boom")
	err := s.Update(func(tx *Tx) error {
		if err := tx.SetDO(0x5b, []byte("x")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update: %v", err)
	}
	s.View(func(tx *Tx) error {
		if v := tx.DO(0x5b); v != nil {
			t.Errorf("change of a failed Update persisted: %q", v)
		}
		return nil
	})
}

func TestCertRoundTrip(t *testing.T) {
	outer := t
	s, _ := openTest(t, Options{})
	certs := [][]byte{bytes.Repeat([]byte{0xa0}, 2048), bytes.Repeat([]byte{0xa1}, 3000), bytes.Repeat([]byte{0xa2}, MaxCertLen)}
	tests := []struct {
		name    string
		occ     int
		der     []byte
		wantErr bool
	}{
		{"AUT occurrence 0", 0, certs[0], false},
		{"DEC occurrence 1", 1, certs[1], false},
		{"SIG occurrence 2 at max size", 2, certs[2], false},
		{"occurrence 3", 3, certs[0], true},
		{"occurrence -1", -1, certs[0], true},
		{"too big", 1, append(clone(certs[2]), 0), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Update(func(tx *Tx) error { return tx.SetCert(tc.occ, tc.der) })
			if (err != nil) != tc.wantErr {
				t.Fatalf("SetCert: err %v, wantErr %v", err, tc.wantErr)
			}
		})
	}
	s = reopen(outer, s, Options{})
	s.View(func(tx *Tx) error {
		for occ, want := range certs {
			if got := tx.Cert(occ); !bytes.Equal(got, want) {
				t.Errorf("certificate %d: %d bytes, want %d", occ, len(got), len(want))
			}
		}
		if tx.Cert(3) != nil || tx.Cert(-1) != nil || tx.DO(0x7f21) != nil {
			t.Error("certificate outside occurrences 0..2")
		}
		return nil
	})
	if err := s.Update(func(tx *Tx) error { return tx.SetCert(1, nil) }); err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *Tx) error {
		if tx.Cert(1) != nil || tx.Cert(0) == nil || tx.Cert(2) == nil {
			t.Error("deleting occurrence 1 touched the wrong certificates")
		}
		return nil
	})
}
