package store

import (
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestAdminLessTransitions walks the admin-less mode through every operation that moves it, reopening the file
// before each check so every state shown was read back from disk.
func TestAdminLessTransitions(t *testing.T) {
	type op func(tx *Tx) error
	setPIN := func(p PIN, pin string) func(*Store) op {
		return func(s *Store) op {
			dk := mustVerify(t, s, PW3, "12345678") // no step sets PW3 before its last
			return func(tx *Tx) error { defer dk.Destroy(); return tx.SetPIN(p, []byte(pin), dk) }
		}
	}
	switchTo := func(on bool) func(*Store) op {
		return func(*Store) op { return func(tx *Tx) error { return tx.SetAdminLess(on) } }
	}
	reset := func(*Store) op { return func(tx *Tx) error { return tx.FactoryReset() } }
	tests := []struct {
		name  string
		steps []func(*Store) op
		want  AdminLess
	}{
		{"new file", nil, AdminLessOff},
		{"on", []func(*Store) op{switchTo(true)}, AdminLessPending},
		{"on, PW1 set", []func(*Store) op{switchTo(true), setPIN(PW1, "87654321")}, AdminLessActive},
		{"on, PW1 set, on again", []func(*Store) op{switchTo(true), setPIN(PW1, "87654321"), switchTo(true)},
			AdminLessActive},
		{"on, PW1 set, PW3 set", []func(*Store) op{switchTo(true), setPIN(PW1, "87654321"), setPIN(PW3, "abcdefgh")},
			AdminLessOff},
		{"on, PW3 set first", []func(*Store) op{switchTo(true), setPIN(PW3, "abcdefgh")}, AdminLessOff},
		{"on, RC set", []func(*Store) op{switchTo(true), setPIN(RC, "rc-rc-rc")}, AdminLessPending},
		{"off: PW1 set changes nothing", []func(*Store) op{setPIN(PW1, "87654321")}, AdminLessOff},
		{"on, PW1 set, off", []func(*Store) op{switchTo(true), setPIN(PW1, "87654321"), switchTo(false)},
			AdminLessOff},
		{"on, PW1 set, factory reset", []func(*Store) op{switchTo(true), setPIN(PW1, "87654321"), reset},
			AdminLessOff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTest(t, Options{})
			for _, step := range tt.steps {
				fn := step(s)
				if err := s.Update(fn); err != nil {
					t.Fatal(err)
				}
				s = reopen(t, s, Options{})
			}
			var got AdminLess
			s.View(func(tx *Tx) error { got = tx.AdminLess(); return nil })
			if got != tt.want {
				t.Errorf("admin-less mode %v, want %v", got, tt.want)
			}
			if err := s.Check(); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

// TestAdminLessFailedSetChangesNothing: a SetPIN that fails (a data key from before a factory reset) leaves the
// mode where it was, because the move is part of the same transaction.
func TestAdminLessFailedSetChangesNothing(t *testing.T) {
	s, _ := openTest(t, Options{})
	old := mustVerify(t, s, PW1, "123456")
	defer old.Destroy()
	if err := s.Update(func(tx *Tx) error {
		if err := tx.SetAdminLess(true); err != nil {
			return err
		}
		return tx.FactoryReset()
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.SetAdminLess(true) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.SetPIN(PW1, []byte("87654321"), old) }); err == nil {
		t.Fatal("SetPIN with a data key from before the reset succeeded")
	}
	s.View(func(tx *Tx) error {
		if got := tx.AdminLess(); got != AdminLessPending {
			t.Errorf("mode %v after a failed SetPIN, want pending", got)
		}
		return nil
	})
}

// TestCheckAdminLessRecord: Check accepts the two stored values and refuses any other.
func TestCheckAdminLessRecord(t *testing.T) {
	for _, tt := range []struct {
		v  []byte
		ok bool
	}{
		{[]byte{1}, true},
		{[]byte{2}, true},
		{[]byte{0}, false},
		{[]byte{3}, false},
		{[]byte{1, 1}, false},
	} {
		s, _ := openTest(t, Options{})
		put := func(btx *bolt.Tx) error { return btx.Bucket(bktMeta).Put(keyAdminLess, tt.v) }
		if err := s.db.Update(put); err != nil {
			t.Fatal(err)
		}
		err := s.Check()
		if tt.ok != (err == nil) {
			t.Errorf("value % X: Check = %v, want ok %v", tt.v, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "adminless") {
			t.Errorf("value % X: error %v does not name the record", tt.v, err)
		}
	}
}
