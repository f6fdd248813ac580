package store

import (
	"errors"
	"testing"
)

func TestVerifyPIN(t *testing.T) {
	s, _ := openTest(t, Options{})
	// Each step runs on the state the previous steps left, with a reopen before it so every counter shown was
	// read back from the file.
	steps := []struct {
		name        string
		p           PIN
		pin         string
		wantErr     error // ErrBlocked, ErrNotSet, or nil
		wantAuth    bool
		wantRetries int // tries left after the step
	}{
		{"PW1 right", PW1, "123456", nil, false, 3},
		{"PW1 wrong", PW1, "654321", nil, true, 2},
		{"PW1 wrong again", PW1, "000000", nil, true, 1},
		{"PW1 right restores", PW1, "123456", nil, false, 3},
		{"PW1 prefix is wrong", PW1, "12345", nil, true, 2},
		{"PW1 longer is wrong", PW1, "1234567", nil, true, 1},
		{"PW1 wrong last try", PW1, "111111", nil, true, 0},
		{"PW1 blocked even when right", PW1, "123456", ErrBlocked, false, 0},
		{"PW3 unaffected", PW3, "12345678", nil, false, 3},
		{"PW3 is not PW1's PIN", PW3, "123456", nil, true, 2},
		{"RC not set", RC, "12345678", ErrNotSet, false, 0},
	}
	for _, st := range steps {
		s = reopen(t, s, Options{})
		dk, err := s.VerifyPIN(st.p, []byte(st.pin))
		var ae *AuthError
		switch {
		case st.wantAuth:
			if !errors.As(err, &ae) || ae.Retries != st.wantRetries || ae.PIN != st.p {
				t.Fatalf("%s: err %v, want AuthError with %d retries", st.name, err, st.wantRetries)
			}
		case st.wantErr != nil:
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("%s: err %v, want %v", st.name, err, st.wantErr)
			}
		default:
			if err != nil || dk == nil {
				t.Fatalf("%s: err %v", st.name, err)
			}
			dk.Destroy()
		}
		s = reopen(t, s, Options{})
		s.View(func(tx *Tx) error {
			if got := tx.PINStatus(st.p).Retries; got != st.wantRetries {
				t.Errorf("%s: %d retries after reopen, want %d", st.name, got, st.wantRetries)
			}
			return nil
		})
	}
}

func TestVerifyPINEmptyDoesNotDecrement(t *testing.T) {
	s, _ := openTest(t, Options{})
	if _, err := s.VerifyPIN(PW1, nil); err == nil {
		t.Fatal("empty PIN accepted")
	}
	s.View(func(tx *Tx) error {
		if r := tx.PINStatus(PW1).Retries; r != 3 {
			t.Errorf("retries %d after an empty PIN", r)
		}
		return nil
	})
}

func TestSetPINRewrapsDataKey(t *testing.T) {
	s, _ := openTest(t, Options{})
	dk := mustVerify(t, s, PW3, "12345678")
	private := []byte("private key bytes of the signature key")
	if err := s.Update(func(tx *Tx) error { return tx.PutKey(RoleSig, dk, private, []byte("pub")) }); err != nil {
		t.Fatal(err)
	}
	// CHANGE REFERENCE DATA for PW1 and PW3, and a reset code set by the admin.
	pins := map[PIN]string{PW1: "new user pin", PW3: "new admin pin", RC: "resetcode"}
	err := s.Update(func(tx *Tx) error {
		for p, pin := range pins {
			if err := tx.SetPIN(p, []byte(pin), dk); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dk.Destroy()
	s = reopen(t, s, Options{})
	for p, pin := range pins {
		if _, err := s.VerifyPIN(p, []byte(defaultPINs[p])); p != RC && err == nil {
			t.Errorf("%v: old PIN still accepted", p)
		}
		dk := mustVerify(t, s, p, pin)
		s.View(func(tx *Tx) error {
			if st := tx.PINStatus(p); st.Length != len(pin) || st.Retries != st.MaxRetries || !st.Set {
				t.Errorf("%v: status %+v", p, st)
			}
			got, err := tx.Key(RoleSig, dk)
			if err != nil || string(got) != string(private) {
				t.Errorf("%v: key through the new wrap: %q, %v", p, got, err)
			}
			return nil
		})
		dk.Destroy()
	}
	// Removing the reset code.
	dk = mustVerify(t, s, PW3, "new admin pin")
	if err := s.Update(func(tx *Tx) error { return tx.SetPIN(RC, nil, dk) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifyPIN(RC, []byte("resetcode")); !errors.Is(err, ErrNotSet) {
		t.Errorf("removed reset code: %v", err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.SetPIN(PW1, nil, dk) }); err == nil {
		t.Error("PW1 removed")
	}
}

func TestSetPINNeedsThisStatesDataKey(t *testing.T) {
	s, _ := openTest(t, Options{})
	other, _ := openTest(t, Options{})
	foreign := mustVerify(t, other, PW3, "12345678")
	destroyed := mustVerify(t, s, PW3, "12345678")
	destroyed.Destroy()
	for name, dk := range map[string]*DataKey{"foreign": foreign, "destroyed": destroyed, "nil": nil} {
		err := s.Update(func(tx *Tx) error { return tx.SetPIN(PW1, []byte("abcdef"), dk) })
		if !errors.Is(err, ErrWrongDataKey) {
			t.Errorf("%s data key: %v, want ErrWrongDataKey", name, err)
		}
	}
	mustVerify(t, s, PW1, "123456").Destroy()
}

func TestResetRetries(t *testing.T) {
	s, _ := openTest(t, Options{})
	for range 3 {
		s.VerifyPIN(PW1, []byte("wrong!"))
	}
	if _, err := s.VerifyPIN(PW1, []byte("123456")); !errors.Is(err, ErrBlocked) {
		t.Fatalf("after 3 wrong: %v", err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.ResetRetries(PW1) }); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, s, PW1, "123456").Destroy()
	if err := s.Update(func(tx *Tx) error { return tx.ResetRetries(RC) }); !errors.Is(err, ErrNotSet) {
		t.Errorf("reset retries of unset RC: %v", err)
	}
}

func TestDeviceSecret(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	s, _ := openTest(t, Options{DeviceSecret: secret})
	dk := mustVerify(t, s, PW3, "12345678")
	dk.Destroy()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for name, ds := range map[string][]byte{"none": nil, "other": []byte("another secret of 16+ bytes")} {
		if _, err := Open(s.Path(), Options{KDF: FastKDF, DeviceSecret: ds}); !errors.Is(err, ErrDeviceSecret) {
			t.Errorf("open with %s secret: %v, want ErrDeviceSecret", name, err)
		}
	}
	// Below the Open check: with the right PIN but without the secret, the wrap does not open.
	s2, err := Open(s.Path(), Options{KDF: FastKDF, DeviceSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var r pinRecord
	var epoch []byte
	s2.View(func(tx *Tx) error {
		r, _ = loadPIN(tx.btx, PW3)
		epoch, _ = epochOf(tx.btx)
		return nil
	})
	ver, wk := derivePIN(PW3, []byte("12345678"), r.salt[:], nil, r.kdf)
	if equalCT(ver, r.verifier[:]) {
		t.Error("verifier matches without the device secret")
	}
	if _, err := unwrapDataKey(wk, PW3, r.wrap[:], epoch); err == nil {
		t.Error("data key unwrapped without the device secret")
	}
	ver, wk = derivePIN(PW3, []byte("12345678"), r.salt[:], secret, r.kdf)
	if !equalCT(ver, r.verifier[:]) {
		t.Error("verifier does not match with the device secret")
	}
	if dk, err := unwrapDataKey(wk, PW3, r.wrap[:], epoch); err != nil {
		t.Errorf("data key with the device secret: %v", err)
	} else {
		dk.Destroy()
	}
	if _, err := Open(s.Path()+"x", Options{DeviceSecret: []byte("short")}); err == nil {
		t.Error("short device secret accepted")
	}
}

func mustVerify(t testing.TB, s *Store, p PIN, pin string) *DataKey {
	t.Helper()
	dk, err := s.VerifyPIN(p, []byte(pin))
	if err != nil {
		t.Fatalf("verify %v: %v", p, err)
	}
	return dk
}

// TestVerifyPINConcurrent: goroutines racing on one PIN get exactly MaxRetries verdicts; the rest are blocked.
func TestVerifyPINConcurrent(t *testing.T) {
	s, _ := openTest(t, Options{})
	const n = 12
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := s.VerifyPIN(PW1, []byte("wrong pin"))
			errs <- err
		}()
	}
	var auth, blocked int
	for range n {
		var ae *AuthError
		switch err := <-errs; {
		case errors.As(err, &ae):
			auth++
		case errors.Is(err, ErrBlocked):
			blocked++
		default:
			t.Errorf("unexpected %v", err)
		}
	}
	if auth != DefaultMaxRetries || blocked != n-DefaultMaxRetries {
		t.Errorf("%d wrong-PIN verdicts and %d blocked, want %d and %d", auth, blocked, DefaultMaxRetries, n-DefaultMaxRetries)
	}
}

// TestBlockedPINDerivesNothing: with no tries left VerifyPIN answers ErrBlocked before the point where it would
// derive (the hook sits between the committed decrement and the derivation).
func TestBlockedPINDerivesNothing(t *testing.T) {
	s, _ := openTest(t, Options{})
	for range DefaultMaxRetries {
		s.VerifyPIN(PW3, []byte("wrong pin"))
	}
	reached := false
	testHookAfterDecrement = func() { reached = true }
	defer func() { testHookAfterDecrement = nil }()
	if _, err := s.VerifyPIN(PW3, []byte("12345678")); !errors.Is(err, ErrBlocked) {
		t.Fatalf("blocked PW3: %v", err)
	}
	if reached {
		t.Error("a blocked PIN reached the derivation")
	}
}
