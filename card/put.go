package card

import (
	"bytes"

	"github.com/ccidgadget/ccidgadget/card/algo"
	"github.com/ccidgadget/ccidgadget/store"
)

// access is who may write (or read) a DO.
type access int

const (
	accessAlways access = iota
	accessPW1           // PW1 verified with 82
	accessPW3           // PW3 verified
)

func (c *Card) allowed(a access) bool {
	switch a {
	case accessPW1:
		return c.s.pw1User
	case accessPW3:
		return c.s.pw3
	}
	return true
}

// simpleDO describes a DO that PUT DATA stores as given after a length check.
type simpleDO struct {
	write   access
	max     int               // longest value; an empty value deletes the DO
	valid   func([]byte) bool // checks a non-empty value
	invalid StatusWord        // the answer when valid refuses: 6700 for a bad size, 6A80 for bad content
}

var simpleDOs = map[uint16]simpleDO{
	tagName:      {write: accessPW3, max: maxNameLen},
	tagLoginData: {write: accessPW3, max: maxSpecialDO},
	tagURL:       {write: accessPW3, max: maxSpecialDO},
	tagLanguage:  {write: accessPW3, max: 8, valid: func(v []byte) bool { return len(v)%2 == 0 }, invalid: SWWrongLength},
	tagSex: {write: accessPW3, max: 1, valid: func(v []byte) bool {
		return v[0] == '0' || v[0] == '1' || v[0] == '2' || v[0] == '9'
	}, invalid: SWIncorrectData},
	// Private use DOs (§4.4.1): 0101 and 0103 are written after PW1 (82), 0102 and 0104 after PW3.
	tagPrivate1: {write: accessPW1, max: maxSpecialDO},
	tagPrivate2: {write: accessPW3, max: maxSpecialDO},
	tagPrivate3: {write: accessPW1, max: maxSpecialDO},
	tagPrivate4: {write: accessPW3, max: maxSpecialDO},
	// Fingerprints, CA fingerprints and generation dates, 20 or 4 bytes (or empty to delete).
	0xC7:   {write: accessPW3, max: 20, valid: lenIn(20), invalid: SWWrongLength},
	0xC8:   {write: accessPW3, max: 20, valid: lenIn(20), invalid: SWWrongLength},
	0xC9:   {write: accessPW3, max: 20, valid: lenIn(20), invalid: SWWrongLength},
	0xCA:   {write: accessPW3, max: 20, valid: lenIn(20), invalid: SWWrongLength},
	0xCB:   {write: accessPW3, max: 20, valid: lenIn(20), invalid: SWWrongLength},
	0xCC:   {write: accessPW3, max: 20, valid: lenIn(20), invalid: SWWrongLength},
	0xCE:   {write: accessPW3, max: 4, valid: lenIn(4), invalid: SWWrongLength},
	0xCF:   {write: accessPW3, max: 4, valid: lenIn(4), invalid: SWWrongLength},
	0xD0:   {write: accessPW3, max: 4, valid: lenIn(4), invalid: SWWrongLength},
	tagKDF: {write: accessPW3, max: 0xFF, valid: validKDF, invalid: SWIncorrectData},
}

func lenIn(ns ...int) func([]byte) bool {
	return func(v []byte) bool {
		for _, n := range ns {
			if len(v) == n {
				return true
			}
		}
		return false
	}
}

// validKDF checks a KDF-DO (§4.3.2): 81 01 00 (none), or 81 01 03 (iterated and salted S2K) with 82 hash
// algorithm (08 SHA-256, 0A SHA-512), 83 iteration count, 84 PW1 salt, and optionally 85 RC salt, 86 PW3 salt,
// 87/88 initial PW1/PW3 hashes. GnuPG writes the 90- and 110-byte forms of the latter.
func validKDF(v []byte) bool {
	seen := map[uint16][]byte{}
	for rest := v; len(rest) > 0; {
		tag, val, r, err := readTLV(rest)
		if err != nil || tag < 0x81 || tag > 0x88 {
			return false
		}
		if _, dup := seen[tag]; dup {
			return false
		}
		seen[tag] = val
		rest = r
	}
	algoID, ok := seen[0x81]
	if !ok || len(algoID) != 1 {
		return false
	}
	switch algoID[0] {
	case 0x00:
		return len(seen) == 1
	case 0x03:
	default:
		return false
	}
	hash := seen[0x82]
	if len(hash) != 1 || (hash[0] != 0x08 && hash[0] != 0x0A) {
		return false
	}
	hlen := 32
	if hash[0] == 0x0A {
		hlen = 64
	}
	if len(seen[0x83]) != 4 || len(seen[0x84]) == 0 {
		return false
	}
	for _, t := range []uint16{0x85, 0x86} {
		if s, ok := seen[t]; ok && (len(s) == 0 || len(s) > 32) {
			return false
		}
	}
	for _, t := range []uint16{0x87, 0x88} {
		if h, ok := seen[t]; ok && len(h) != hlen {
			return false
		}
	}
	return len(seen[0x84]) <= 32
}

// putData answers PUT DATA with the even INS DA (OpenPGP card 3.4.1 §7.2.8), P1-P2 = tag.
func (c *Card) putData(cmd Command) StatusWord {
	tag := uint16(cmd.P1)<<8 | uint16(cmd.P2)
	v := cmd.Data
	if d, ok := simpleDOs[tag]; ok {
		if !c.allowed(d.write) {
			return SWSecurityStatusNotSatisfied
		}
		if len(v) > d.max {
			return SWWrongLength
		}
		if len(v) > 0 && d.valid != nil && !d.valid(v) {
			return d.invalid
		}
		if tag == tagKDF {
			return c.putKDF(v)
		}
		return c.update(func(tx *store.Tx) error { return tx.SetDO(tag, v) })
	}
	switch tag {
	case 0xC1, 0xC2, 0xC3:
		return c.putAttributes(int(tag-tagAttributesSig), v)
	case tagPWStatus:
		if !c.s.pw3 {
			return SWSecurityStatusNotSatisfied
		}
		// Only byte 1 is writable; a host may send the whole DO (up to 7 bytes) or just that byte.
		if len(v) < 1 || len(v) > 7 {
			return SWWrongLength
		}
		if v[0] > 1 {
			return SWIncorrectData
		}
		return c.update(func(tx *store.Tx) error { return tx.SetDO(tagPWStatus, []byte{v[0]}) })
	case tagResetCode:
		return c.putResetCode(v)
	case tagAESKey:
		return c.putAESKey(v)
	case 0xD6, 0xD7, 0xD8:
		return c.putUIF(tag, v)
	case tagCertificate:
		if !c.s.pw3 {
			return SWSecurityStatusNotSatisfied
		}
		if len(v) > maxCertLen {
			return SWWrongLength
		}
		occ := c.s.occ
		return c.update(func(tx *store.Tx) error { return tx.SetCert(occ, v) })
	}
	return SWReferencedDataNotFound
}

// update runs fn in one store transaction and maps its error.
func (c *Card) update(fn func(tx *store.Tx) error) StatusWord {
	return c.sw(c.st.Update(fn))
}

// kdfField returns the value of one field (81..88) of a KDF-DO, or nil.
func kdfField(kdf []byte, tag uint16) []byte {
	for rest := kdf; len(rest) > 0; {
		t, v, r, err := readTLV(rest)
		if err != nil {
			return nil
		}
		if t == tag {
			return v
		}
		rest = r
	}
	return nil
}

// kdfOn reports whether a KDF-DO value selects a KDF (81 01 03).
func kdfOn(kdf []byte) bool {
	v := kdfField(kdf, 0x81)
	return len(v) == 1 && v[0] != 0
}

// putKDF writes the KDF-DO F9 (§4.3.2) and keeps the PINs usable by every GnuPG:
//
//   - Switching KDF on with the initial hashes 87 (PW1) and 88 (PW3) sets PW1 and PW3 to those hashes and removes
//     the resetting code, in the same transaction: GnuPG 2.2 (Debian 12) writes only F9 and from then on sends
//     hashed PINs, as Gnuk and YubiKey expect (the default PINs, hashed).
//   - Newer GnuPG then re-keys the card itself: CHANGE REFERENCE DATA 83 (its old admin PIN ‖ the hashed default),
//     VERIFY 83, RESET RETRY COUNTER 81, PUT DATA D3 empty. Its CHANGE REFERENCE DATA would fail against PW3
//     already hashed, so while the session that wrote F9 keeps PW3 verified, a CHANGE REFERENCE DATA 83 whose new
//     PIN is exactly the 88 hash is answered 9000 without comparing the old one: PW3 already has that value.
//   - Switching KDF off (81 01 00) after it was on sets the default PINs 123456 / 12345678 again and removes the
//     resetting code; writing 81 01 00 when KDF is off changes nothing.
//
// A KDF-DO without initial hashes is stored and the PINs stay: the host re-keys them.
func (c *Card) putKDF(v []byte) StatusWord {
	if !c.s.pw3 || c.s.dk == nil {
		return SWSecurityStatusNotSatisfied
	}
	dk := c.s.dk
	on := len(v) > 0 && kdfOn(v)
	pw1, pw3 := kdfField(v, 0x87), kdfField(v, 0x88)
	sw := c.update(func(tx *store.Tx) error {
		wasOn := kdfOn(tx.DO(tagKDF))
		stored := v
		if !on {
			stored = nil
		}
		if err := tx.SetDO(tagKDF, stored); err != nil {
			return err
		}
		var newPW1, newPW3 []byte
		switch {
		case on && pw1 != nil && pw3 != nil:
			newPW1, newPW3 = pw1, pw3
		case !on && wasOn:
			newPW1, newPW3 = []byte("123456"), []byte("12345678")
		default:
			return nil
		}
		if err := tx.SetPIN(store.PW1, newPW1, dk); err != nil {
			return err
		}
		if err := tx.SetPIN(store.PW3, newPW3, dk); err != nil {
			return err
		}
		return tx.SetPIN(store.RC, nil, nil)
	})
	if sw == SWNoError {
		c.s.kdfPW3 = nil
		if on && pw3 != nil {
			c.s.kdfPW3 = append([]byte(nil), pw3...)
		}
		c.s.pw1Sign, c.s.pw1User = false, false // PW1 changed under the host's feet
	}
	return sw
}

// putAttributes changes C1–C3 (§4.4.3.10). The value must be one FA lists for that slot. A real change deletes
// the slot's key, its fingerprint and generation date (and for the signature key the signature counter), in the
// same transaction; writing the current attributes again changes nothing.
func (c *Card) putAttributes(r int, v []byte) StatusWord {
	if !c.s.pw3 {
		return SWSecurityStatusNotSatisfied
	}
	a, err := algo.ParseAttributes(v)
	if err != nil || !a.AllowedFor(algoRole(r)) {
		return SWIncorrectData
	}
	return c.update(func(tx *store.Tx) error {
		if bytes.Equal(attributes(tx, r).Bytes(), a.Bytes()) {
			return tx.SetDO(uint16(tagAttributesSig+r), a.Bytes())
		}
		if err := tx.SetDO(uint16(tagAttributesSig+r), a.Bytes()); err != nil {
			return err
		}
		return forgetKey(tx, r)
	})
}

// forgetKey deletes role r's key with its fingerprint, date and origin.
func forgetKey(tx *store.Tx, r int) error {
	if err := tx.DeleteKey(r); err != nil {
		return err
	}
	for _, t := range []uint16{uint16(tagFingerprintSig + r), uint16(tagTimestampSig + r)} {
		if err := tx.SetDO(t, nil); err != nil {
			return err
		}
	}
	if r == roleSig {
		if err := tx.SetDO(tagSignatureCounter, nil); err != nil {
			return err
		}
	}
	return setOrigin(tx, r, 0)
}

// putResetCode sets (8..127 bytes) or removes (empty) the resetting code D3 (§4.3.4); needs PW3.
func (c *Card) putResetCode(v []byte) StatusWord {
	if !c.s.pw3 || c.s.dk == nil {
		return SWSecurityStatusNotSatisfied
	}
	if len(v) == 0 {
		return c.update(func(tx *store.Tx) error { return tx.SetPIN(store.RC, nil, nil) })
	}
	if len(v) < minRCLen || len(v) > maxPINLen {
		return SWWrongLength
	}
	dk := c.s.dk
	return c.update(func(tx *store.Tx) error { return tx.SetPIN(store.RC, v, dk) })
}

// putAESKey sets (16, 24 or 32 bytes) or deletes (empty) the AES key D5 (§4.4.3.14); needs PW3.
func (c *Card) putAESKey(v []byte) StatusWord {
	if !c.s.pw3 || c.s.dk == nil {
		return SWSecurityStatusNotSatisfied
	}
	switch len(v) {
	case 0:
		return c.update(func(tx *store.Tx) error { return tx.DeleteKey(store.RoleAES) })
	case 16, 24, 32:
	default:
		return SWWrongLength
	}
	dk := c.s.dk
	return c.update(func(tx *store.Tx) error { return tx.PutKey(store.RoleAES, dk, v, nil) })
}

// putUIF sets a user interaction flag D6–D8 (§4.1.3.2): byte 1 = 00 off, 01 on, 02 permanently on (only a
// factory reset clears it); byte 2, if sent, is kept as 20 (button). Needs PW3.
func (c *Card) putUIF(tag uint16, v []byte) StatusWord {
	if !c.s.pw3 {
		return SWSecurityStatusNotSatisfied
	}
	if len(v) < 1 || len(v) > 2 {
		return SWWrongLength
	}
	if v[0] > 2 {
		return SWIncorrectData
	}
	return c.update(func(tx *store.Tx) error {
		if cur := tx.DO(tag); len(cur) == 2 && cur[0] == 2 && v[0] != 2 {
			return SWConditionsNotSatisfied
		}
		return tx.SetDO(tag, []byte{v[0], uifDefault[1]})
	})
}
