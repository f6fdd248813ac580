package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// AdminLess is the state of the card's opt-in admin-less mode (Gnuk's: with PW3 never set, PW1 is also the admin
// PIN). The store keeps it next to the PINs because it must change in the same transaction as the PIN write that
// changes it, whichever command writes the PIN; the card decides what it means for VERIFY and the other commands.
type AdminLess int

// The states, as stored in meta "adminless" (absent, 01, 02).
const (
	// AdminLessOff is the specification's behaviour: PW3 is the admin PIN. The default, and the state after a
	// factory reset.
	AdminLessOff AdminLess = iota
	// AdminLessPending means the owner switched the mode on and PW1 has not been set since: PW3 is still the
	// admin PIN. The next SetPIN of PW1 makes it AdminLessActive.
	AdminLessPending
	// AdminLessActive means PW1 is the admin PIN; the PW3 record is not used until SetPIN of PW3, which ends the
	// mode (AdminLessOff).
	AdminLessActive
)

func (a AdminLess) String() string {
	switch a {
	case AdminLessOff:
		return "off"
	case AdminLessPending:
		return "pending"
	case AdminLessActive:
		return "active"
	}
	return fmt.Sprintf("AdminLess(%d)", int(a))
}

// adminLessOf reads the mode; a value Check would refuse reads as off.
func adminLessOf(btx *bolt.Tx) AdminLess {
	v := btx.Bucket(bktMeta).Get(keyAdminLess)
	if len(v) == 1 && (v[0] == byte(AdminLessPending) || v[0] == byte(AdminLessActive)) {
		return AdminLess(v[0])
	}
	return AdminLessOff
}

func putAdminLess(btx *bolt.Tx, a AdminLess) error {
	meta := btx.Bucket(bktMeta)
	if a == AdminLessOff {
		return meta.Delete(keyAdminLess)
	}
	return meta.Put(keyAdminLess, []byte{byte(a)})
}

// AdminLess returns the admin-less mode's state.
func (tx *Tx) AdminLess() AdminLess { return adminLessOf(tx.btx) }

// SetAdminLess switches the admin-less mode on or off. On a card where it is off, on makes it AdminLessPending (it
// takes effect at the next SetPIN of PW1); on where it already is on changes nothing. Off always makes it
// AdminLessOff, so PW3's record (whatever it holds) is the admin PIN again.
func (tx *Tx) SetAdminLess(on bool) error {
	a := AdminLessOff
	if on {
		if tx.AdminLess() != AdminLessOff {
			return nil
		}
		a = AdminLessPending
	}
	if err := putAdminLess(tx.btx, a); err != nil {
		return fmt.Errorf("store: set admin-less mode %v: %w", a, err)
	}
	return nil
}

// adminLessAfterSet moves the mode after a new value of p was stored: PW1 set while pending makes it active (the
// user chose a PIN and PW3 was never set, Gnuk's trigger), PW3 set ends it.
func adminLessAfterSet(btx *bolt.Tx, p PIN) error {
	switch a := adminLessOf(btx); {
	case p == PW1 && a == AdminLessPending:
		return putAdminLess(btx, AdminLessActive)
	case p == PW3 && a != AdminLessOff:
		return putAdminLess(btx, AdminLessOff)
	}
	return nil
}
