package card

import (
	"bytes"
	"errors"

	"github.com/ccidgadget/ccidgadget/store"
)

// Minimum PIN lengths (OpenPGP card 3.4.1 §4.3): PW1 6, resetting code 8, PW3 8.
const (
	minPW1Len = 6
	minRCLen  = 8
	minPW3Len = 8
)

// pinRef maps VERIFY's P2 to a PIN: 81 (PW1 for PSO:CDS) and 82 (PW1 for everything else) are the same PIN
// with two access states; 83 is PW3.
func pinRef(p2 byte) (store.PIN, bool) {
	switch p2 {
	case 0x81, 0x82:
		return store.PW1, true
	case 0x83:
		return store.PW3, true
	}
	return 0, false
}

// verified reports the access state of reference p2.
func (s *session) verified(p2 byte) bool {
	switch p2 {
	case 0x81:
		return s.pw1Sign
	case 0x82:
		return s.pw1User
	case 0x83:
		return s.pw3
	}
	return false
}

// setVerified sets or clears the access state of reference p2.
func (s *session) setVerified(p2 byte, on bool) {
	switch p2 {
	case 0x81:
		s.pw1Sign = on
	case 0x82:
		s.pw1User = on
	case 0x83:
		s.pw3 = on
	}
	s.dropKeyIfUnused()
}

// keep takes dk as the session's data key, destroying any earlier one.
func (s *session) keep(dk *store.DataKey) {
	if s.dk != nil && s.dk != dk {
		s.dk.Destroy()
	}
	s.dk = dk
}

// adminLess reads the admin-less mode (see the package doc).
func (c *Card) adminLess() (store.AdminLess, StatusWord) {
	var a store.AdminLess
	err := c.st.View(func(tx *store.Tx) error {
		a = tx.AdminLess()
		return nil
	})
	return a, c.sw(err)
}

// compared returns the PIN record that stands for p in tx: PW1 stands for PW3 while admin-less mode is active
// (Gnuk's verify_admin_0 with no PW3 keystring), so its counter, length and data key wrap are the ones used.
func compared(tx *store.Tx, p store.PIN) store.PIN {
	if p == store.PW3 && tx.AdminLess() == store.AdminLessActive {
		return store.PW1
	}
	return p
}

// pinStatus reads the state of the PIN that stands for p (see compared): what a VERIFY of p would decrement.
func (c *Card) pinStatus(p store.PIN) (store.PINStatus, StatusWord) {
	var st store.PINStatus
	err := c.st.View(func(tx *store.Tx) error {
		st = tx.PINStatus(compared(tx, p))
		return nil
	})
	return st, c.sw(err)
}

// checkPIN runs store.VerifyPIN on the PIN that stands for p (see compared; the retry counter of that PIN is
// decremented and committed before the comparison, and only that one) and maps its errors: wrong = 63Cx,
// blocked = 6983, not set = 6984. The data key comes from that PIN's wrap.
func (c *Card) checkPIN(p store.PIN, pin []byte) (*store.DataKey, StatusWord) {
	if len(pin) == 0 || len(pin) > maxPINLen {
		return nil, SWWrongLength
	}
	err := c.st.View(func(tx *store.Tx) error {
		p = compared(tx, p)
		return nil
	})
	if err != nil {
		return nil, c.sw(err)
	}
	dk, err := c.st.VerifyPIN(p, pin)
	var auth *store.AuthError
	switch {
	case err == nil:
		return dk, SWNoError
	case errors.As(err, &auth):
		return nil, swVerifyFailed(auth.Retries)
	case errors.Is(err, store.ErrBlocked):
		return nil, SWAuthenticationMethodBlocked
	case errors.Is(err, store.ErrNotSet):
		return nil, SWReferenceDataNotUsable
	}
	c.log.Error("card: verify", "pin", p.String(), "err", err)
	return nil, SWMemoryFailure
}

// verify answers VERIFY (OpenPGP card 3.4.1 §7.2.2).
//
//	P1=00, data      compare the PIN: 9000, 63Cx (x tries left), 6983 (blocked)
//	P1=00, no data   status only, never counts a try: 9000 when verified, else 63Cx (6983 when blocked)
//	P1=FF, no data   forget the verification of that reference
func (c *Card) verify(cmd Command) StatusWord {
	p, ok := pinRef(cmd.P2)
	if !ok {
		return SWIncorrectP1P2
	}
	switch cmd.P1 {
	case 0xFF:
		if len(cmd.Data) != 0 {
			return SWWrongLength
		}
		c.s.setVerified(cmd.P2, false)
		return SWNoError
	case 0x00:
	default:
		return SWIncorrectP1P2
	}
	if len(cmd.Data) == 0 {
		if c.s.verified(cmd.P2) {
			return SWNoError
		}
		st, sw := c.pinStatus(p)
		if sw != SWNoError {
			return sw
		}
		if st.Retries == 0 {
			return SWAuthenticationMethodBlocked
		}
		return swVerifyFailed(st.Retries)
	}
	dk, sw := c.checkPIN(p, cmd.Data)
	if sw != SWNoError {
		if sw != SWWrongLength {
			c.s.setVerified(cmd.P2, false) // a failed comparison ends an earlier verification (ISO 7816-4 §7.5.6)
		}
		return sw
	}
	c.s.keep(dk)
	c.s.setVerified(cmd.P2, true)
	return SWNoError
}

// splitOld checks the old secret at the front of data (its length is the stored one) and returns the data key
// and the rest. A data field no longer than the old secret is compared whole, so it costs a try like any wrong
// PIN and reveals nothing about the stored length.
func (c *Card) splitOld(p store.PIN, data []byte) (*store.DataKey, []byte, StatusWord) {
	st, sw := c.pinStatus(p)
	if sw != SWNoError {
		return nil, nil, sw
	}
	if !st.Set {
		return nil, nil, SWReferenceDataNotUsable
	}
	if st.Retries == 0 {
		return nil, nil, SWAuthenticationMethodBlocked
	}
	old, rest := data, []byte(nil)
	if len(data) > st.Length {
		old, rest = data[:st.Length], data[st.Length:]
	}
	dk, sw := c.checkPIN(p, old)
	if sw != SWNoError {
		return nil, nil, sw
	}
	return dk, rest, SWNoError
}

// newPW1Min returns the shortest new PW1 and whether setting PW1 changes the admin PIN: while admin-less mode is on
// (pending or active) PW1 is or becomes the admin PIN, so it needs PW3's minimum of 8 (Gnuk: ADMIN_PASSWD_MINLEN
// when PW3 has no keystring) and a PW3 verification made before no longer stands.
func (c *Card) newPW1Min() (min int, adminChanges bool, sw StatusWord) {
	a, sw := c.adminLess()
	if sw != SWNoError {
		return 0, false, sw
	}
	if a == store.AdminLessOff {
		return minPW1Len, false, SWNoError
	}
	return minPW3Len, true, SWNoError
}

// afterPW1Set ends the PW3 verification when the new PW1 changed the admin PIN (see newPW1Min).
func (c *Card) afterPW1Set(sw StatusWord, adminChanges bool) StatusWord {
	if sw == SWNoError && adminChanges {
		c.s.setVerified(0x83, false)
	}
	return sw
}

// changeReferenceData answers CHANGE REFERENCE DATA (§7.2.3): P2=81 changes PW1, P2=83 PW3; data = old ‖ new.
// While admin-less mode is active the old part of P2=83 is PW1 (compared against PW1's record and counter), and
// the new PW3 ends the mode (the store moves it in the same transaction).
func (c *Card) changeReferenceData(cmd Command) StatusWord {
	if cmd.P1 != 0x00 || (cmd.P2 != 0x81 && cmd.P2 != 0x83) {
		return SWIncorrectP1P2
	}
	p, min, adminChanges := store.PW1, minPW1Len, false
	if cmd.P2 == 0x83 {
		p, min = store.PW3, minPW3Len
	}
	if len(cmd.Data) == 0 {
		return SWWrongLength
	}
	if p == store.PW1 {
		var sw StatusWord
		if min, adminChanges, sw = c.newPW1Min(); sw != SWNoError {
			return sw
		}
	}
	if h := c.s.kdfPW3; p == store.PW3 && c.s.pw3 && h != nil && len(cmd.Data) > len(h) &&
		bytes.Equal(cmd.Data[len(cmd.Data)-len(h):], h) {
		// Newer GnuPG re-keying after its KDF-DO write: PW3 already is this hash (putKDF).
		return SWNoError
	}
	dk, newPIN, sw := c.splitOld(p, cmd.Data)
	if sw != SWNoError {
		if p == store.PW1 {
			c.s.pw1Sign, c.s.pw1User = false, false
		} else {
			c.s.pw3 = false
		}
		c.s.dropKeyIfUnused()
		return sw
	}
	defer dk.Destroy()
	if len(newPIN) < min || len(newPIN) > maxPINLen {
		return SWWrongLength
	}
	return c.afterPW1Set(c.update(func(tx *store.Tx) error { return tx.SetPIN(p, newPIN, dk) }), adminChanges)
}

// resetRetryCounter answers RESET RETRY COUNTER (§7.2.4), which sets a new PW1 and unblocks it:
//
//	P1=00 P2=81  data = resetting code ‖ new PW1
//	P1=02 P2=81  data = new PW1, after PW3 was verified
//
// While admin-less mode is on the new PW1 needs 8 bytes and ends the PW3 verification (see newPW1Min).
func (c *Card) resetRetryCounter(cmd Command) StatusWord {
	if cmd.P2 != 0x81 {
		return SWIncorrectP1P2
	}
	if cmd.P1 != 0x00 && cmd.P1 != 0x02 {
		return SWIncorrectP1P2
	}
	min, adminChanges, sw := c.newPW1Min()
	if sw != SWNoError {
		return sw
	}
	switch cmd.P1 {
	case 0x00:
		if len(cmd.Data) == 0 {
			return SWWrongLength
		}
		dk, newPIN, sw := c.splitOld(store.RC, cmd.Data)
		if sw != SWNoError {
			return sw
		}
		defer dk.Destroy()
		if len(newPIN) < min || len(newPIN) > maxPINLen {
			return SWWrongLength
		}
		sw = c.update(func(tx *store.Tx) error { return tx.SetPIN(store.PW1, newPIN, dk) })
		return c.afterPW1Set(sw, adminChanges)
	default: // 0x02
		if !c.s.pw3 || c.s.dk == nil {
			return SWSecurityStatusNotSatisfied
		}
		if len(cmd.Data) < min || len(cmd.Data) > maxPINLen {
			return SWWrongLength
		}
		dk := c.s.dk
		sw = c.update(func(tx *store.Tx) error { return tx.SetPIN(store.PW1, cmd.Data, dk) })
		return c.afterPW1Set(sw, adminChanges)
	}
}
