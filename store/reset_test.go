package store

import (
	"bytes"
	"errors"
	"os"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestFactoryReset(t *testing.T) {
	for _, blocked := range []bool{false, true} {
		name := "PINs usable"
		if blocked {
			name = "PW1 and PW3 blocked"
		}
		t.Run(name, func(t *testing.T) {
			s, path := openTest(t, Options{})
			dk := mustVerify(t, s, PW3, "12345678")
			secret := randBytes(t, 64)
			err := s.Update(func(tx *Tx) error {
				for _, f := range []func() error{
					func() error { return tx.PutKey(RoleSig, dk, secret, []byte("public")) },
					func() error { return tx.SetCert(1, []byte("certificate")) },
					func() error { return tx.SetDO(0x5b, []byte("Doe<<John")) },
					func() error { return tx.SetPIN(PW1, []byte("user pin 1"), dk) },
					func() error { return tx.SetPIN(PW3, []byte("admin pin 1"), dk) },
					func() error { return tx.SetPIN(RC, []byte("reset code"), dk) },
					func() error { return tx.SetTerminated(true) },
				} {
					if err := f(); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var oldBlob, oldWrap []byte
			var serial [4]byte
			s.db.View(func(btx *bolt.Tx) error {
				r, _ := decodeKeyRecord(btx.Bucket(bktKey).Get([]byte{RoleSig}))
				oldBlob = clone(r.sealed)
				p, _ := loadPIN(btx, PW3)
				oldWrap = clone(p.wrap[:])
				return nil
			})
			s.View(func(tx *Tx) error { serial = tx.Serial(); return nil })
			if blocked {
				for _, p := range []PIN{PW1, PW3, RC} {
					for range 3 {
						s.VerifyPIN(p, []byte("wrong pin"))
					}
				}
			}

			if err := s.Update(func(tx *Tx) error { return tx.FactoryReset() }); err != nil {
				t.Fatal(err)
			}
			// The scrub after the commit overwrote the pages that held the old blob and wrap.
			raw, _ := os.ReadFile(path)
			if bytes.Contains(raw, oldBlob) {
				t.Error("old sealed key still in the file after reset")
			}
			if bytes.Contains(raw, oldWrap) {
				t.Error("old data key wrap still in the file after reset")
			}
			s = reopen(t, s, Options{})
			s.View(func(tx *Tx) error {
				if tx.HasKey(RoleSig) || tx.Cert(1) != nil || tx.DO(0x5b) != nil || tx.Terminated() {
					t.Error("key, certificate, DO or terminated flag survived the reset")
				}
				if tx.Serial() != serial {
					t.Error("serial changed")
				}
				if st := tx.PINStatus(RC); st.Set {
					t.Error("reset code survived")
				}
				return nil
			})
			if _, err := s.VerifyPIN(PW3, []byte("admin pin 1")); err == nil {
				t.Error("old PW3 accepted")
			}
			newDK := mustVerify(t, s, PW3, "12345678")
			newDK.Destroy()
			mustVerify(t, s, PW1, "123456").Destroy()
			// The old data key belongs to a destroyed generation.
			err = s.Update(func(tx *Tx) error { return tx.PutKey(RoleSig, dk, []byte("x"), nil) })
			if !errors.Is(err, ErrWrongDataKey) {
				t.Errorf("old data key after reset: %v", err)
			}
		})
	}
}

// TestSetPINScrubsOldWrap: changing the default PIN must not leave the data key wrapped under 123456 in a free
// page, where anyone could open it with the well-known default.
func TestSetPINScrubsOldWrap(t *testing.T) {
	s, path := openTest(t, Options{})
	var oldWrap []byte
	s.db.View(func(btx *bolt.Tx) error {
		p, _ := loadPIN(btx, PW1)
		oldWrap = clone(p.wrap[:])
		return nil
	})
	dk := mustVerify(t, s, PW1, "123456")
	if err := s.Update(func(tx *Tx) error { return tx.SetPIN(PW1, []byte("a better pin"), dk) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, oldWrap) {
		t.Error("the data key wrapped under the default PW1 is still in the file")
	}
}

// TestScrubKeepsFileSmall: the scrub writes into free pages in place and allocates nothing, so many PIN changes
// do not grow the file.
func TestScrubKeepsFileSmall(t *testing.T) {
	s, path := openTest(t, Options{})
	dk := mustVerify(t, s, PW3, "12345678")
	defer dk.Destroy()
	var sizes []int64
	for i := range 200 {
		if err := s.Update(func(tx *Tx) error { return tx.SetPIN(PW1, []byte("123456"), dk) }); err != nil {
			t.Fatal(err)
		}
		if i == 9 || i == 199 {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, fi.Size())
		}
	}
	if sizes[1] > sizes[0] {
		t.Errorf("file grew from %d to %d bytes over 190 PIN changes", sizes[0], sizes[1])
	}
}

// TestScrubWaitsForReaders: while a View is open, a page freed by the change may still be in its view, so the
// scrub is postponed to the end of the next Update, which then catches up.
func TestScrubWaitsForReaders(t *testing.T) {
	s, path := openTest(t, Options{})
	var oldWrap []byte
	s.db.View(func(btx *bolt.Tx) error {
		p, _ := loadPIN(btx, PW1)
		oldWrap = clone(p.wrap[:])
		return nil
	})
	dk := mustVerify(t, s, PW1, "123456")
	defer dk.Destroy()
	// Grow the file first: a commit that must grow bbolt's memory map waits for open readers (a bbolt rule), and
	// this test keeps a View open across a commit.
	for _, v := range [][]byte{make([]byte, MaxDOLen), nil} {
		if err := s.Update(func(tx *Tx) error { return tx.SetDO(0x0101, v) }); err != nil {
			t.Fatal(err)
		}
	}
	inView, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		s.View(func(tx *Tx) error {
			close(inView)
			<-release
			return nil
		})
	}()
	<-inView
	if err := s.Update(func(tx *Tx) error { return tx.SetPIN(PW1, []byte("a better pin"), dk) }); err != nil {
		t.Fatal(err)
	}
	if !s.scrubPending.Load() {
		t.Error("scrub ran while a View was open")
	}
	close(release)
	<-done
	if err := s.Update(func(tx *Tx) error { return tx.SetDO(0x5b, []byte("x")) }); err != nil {
		t.Fatal(err)
	}
	if s.scrubPending.Load() {
		t.Error("postponed scrub did not run after the next Update")
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, oldWrap) {
		t.Error("the data key wrapped under the default PW1 is still in the file")
	}
}
