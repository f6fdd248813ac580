package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// PIN names one of the card's three secrets.
type PIN int

// The PINs. PW1 serves both VERIFY 81 and VERIFY 82 (one PIN, two access states kept by the card).
const (
	PW1 PIN = iota // user PIN
	RC             // resetting code
	PW3            // admin PIN
)

func (p PIN) String() string {
	switch p {
	case PW1:
		return "PW1"
	case RC:
		return "RC"
	case PW3:
		return "PW3"
	}
	return fmt.Sprintf("PIN(%d)", int(p))
}

func (p PIN) valid() bool { return p == PW1 || p == RC || p == PW3 }

// Defaults of a new or factory-reset state.
const (
	DefaultMaxRetries = 3
	MaxPINLen         = 127 // longest PIN accepted, in bytes (C4 announces at most 7F)
)

var defaultPINs = map[PIN][]byte{PW1: []byte("123456"), PW3: []byte("12345678")}

// PINStatus describes a PIN without revealing anything about its value.
type PINStatus struct {
	Set        bool // false for a reset code that was never set or was removed
	Retries    int  // tries left; 0 means blocked
	MaxRetries int  // what a successful VERIFY or ResetRetries restores
	Length     int  // length in bytes of the PIN as the host sent it when it was set
}

// pinRecord is the value under a PIN's key in bucket "pin" (see the package doc for the byte layout).
type pinRecord struct {
	set      bool
	retries  uint8
	max      uint8
	length   uint8
	kdf      KDFParams
	salt     [saltLen]byte
	verifier [verLen]byte
	wrap     [wrapLen]byte
}

const (
	pinRecordVersion = 1
	pinRecordLen     = 14 + saltLen + verLen + wrapLen // 134
)

func (r *pinRecord) encode() []byte {
	b := make([]byte, 0, pinRecordLen)
	set := byte(0)
	if r.set {
		set = 1
	}
	b = append(b, pinRecordVersion, set, r.retries, r.max, r.length)
	b = binary.BigEndian.AppendUint32(b, r.kdf.Time)
	b = binary.BigEndian.AppendUint32(b, r.kdf.MemoryKiB)
	b = append(b, r.kdf.Threads)
	b = append(b, r.salt[:]...)
	b = append(b, r.verifier[:]...)
	return append(b, r.wrap[:]...)
}

func decodePINRecord(b []byte) (pinRecord, error) {
	var r pinRecord
	if len(b) != pinRecordLen {
		return r, fmt.Errorf("%d bytes, want %d", len(b), pinRecordLen)
	}
	if b[0] != pinRecordVersion {
		return r, fmt.Errorf("record version %d", b[0])
	}
	if b[1] > 1 {
		return r, fmt.Errorf("set flag %d", b[1])
	}
	r.set, r.retries, r.max, r.length = b[1] == 1, b[2], b[3], b[4]
	r.kdf = KDFParams{Time: binary.BigEndian.Uint32(b[5:]), MemoryKiB: binary.BigEndian.Uint32(b[9:]), Threads: b[13]}
	off := 14
	off += copy(r.salt[:], b[off:])
	off += copy(r.verifier[:], b[off:])
	copy(r.wrap[:], b[off:])
	if r.max < 1 || r.max > 15 || r.retries > r.max {
		return r, fmt.Errorf("retry counter %d of %d out of range", r.retries, r.max)
	}
	if r.set {
		if r.length < 1 || r.length > MaxPINLen {
			return r, fmt.Errorf("PIN length %d", r.length)
		}
		if err := r.kdf.valid(); err != nil {
			return r, err
		}
	} else if r.retries != 0 || r.length != 0 {
		return r, errors.New("unset PIN with retries or length")
	}
	return r, nil
}

func loadPIN(btx *bolt.Tx, p PIN) (pinRecord, error) {
	if !p.valid() {
		return pinRecord{}, fmt.Errorf("store: unknown PIN reference %d", int(p))
	}
	v := btx.Bucket(bktPIN).Get([]byte{byte(p)})
	if v == nil {
		return pinRecord{}, fmt.Errorf("%w: no record for %v", ErrCorrupt, p)
	}
	r, err := decodePINRecord(v)
	if err != nil {
		return r, fmt.Errorf("%w: %v record: %v", ErrCorrupt, p, err)
	}
	return r, nil
}

func storePIN(btx *bolt.Tx, p PIN, r *pinRecord) error {
	return btx.Bucket(bktPIN).Put([]byte{byte(p)}, r.encode())
}

func epochOf(btx *bolt.Tx) ([]byte, error) {
	e := btx.Bucket(bktMeta).Get(keyEpoch)
	if len(e) != epochLen {
		return nil, fmt.Errorf("%w: data key epoch has %d bytes", ErrCorrupt, len(e))
	}
	return clone(e), nil
}

// PINStatus returns p's state. A record that does not decode reads as blocked.
func (tx *Tx) PINStatus(p PIN) PINStatus {
	r, err := loadPIN(tx.btx, p)
	if err != nil {
		return PINStatus{}
	}
	return PINStatus{Set: r.set, Retries: int(r.retries), MaxRetries: int(r.max), Length: int(r.length)}
}

// Test hooks: testHookAfterDecrement runs after VerifyPIN committed the decrement and before it derives anything;
// testHookCompared runs as soon as the comparison's outcome exists.
var testHookAfterDecrement, testHookCompared func()

// VerifyPIN is the only way to compare a PIN. It first decrements the retry counter and commits that transaction,
// then derives the verifier (Argon2id, the cost of DefaultKDF) and compares it in constant time, then on success
// restores the counter in a second transaction and returns the unwrapped data key. Cutting power between the two
// never gives a try back; a success whose restore did not commit leaves one try used.
//
// Errors: *AuthError{Retries} when wrong (errors.As), ErrBlocked when no tries are left (nothing decremented or
// derived), ErrNotSet for an unset reset code. An empty pin is refused without a decrement (the card answers a
// VERIFY without data as a status check and never calls this).
func (s *Store) VerifyPIN(p PIN, pin []byte) (*DataKey, error) {
	if len(pin) == 0 || len(pin) > MaxPINLen {
		return nil, fmt.Errorf("store: verify %v: PIN of %d bytes", p, len(pin))
	}
	var (
		r     pinRecord
		epoch []byte
	)
	err := s.db.Update(func(btx *bolt.Tx) error {
		var err error
		if r, err = loadPIN(btx, p); err != nil {
			return err
		}
		if !r.set {
			return ErrNotSet
		}
		if r.retries == 0 {
			return ErrBlocked
		}
		if epoch, err = epochOf(btx); err != nil {
			return err
		}
		r.retries--
		return storePIN(btx, p, &r)
	})
	if err != nil {
		return nil, fmt.Errorf("store: verify %v: %w", p, err)
	}
	if testHookAfterDecrement != nil {
		testHookAfterDecrement()
	}

	verifier, wrapKey := derivePIN(p, pin, r.salt[:], s.opts.DeviceSecret, r.kdf)
	defer clear(wrapKey)
	match := equalCT(verifier, r.verifier[:])
	if testHookCompared != nil {
		testHookCompared()
	}
	if !match {
		return nil, &AuthError{PIN: p, Retries: int(r.retries)}
	}
	dk, err := unwrapDataKey(wrapKey, p, r.wrap[:], epoch)
	if err != nil {
		return nil, fmt.Errorf("store: verify %v: %w", p, err)
	}
	err = s.db.Update(func(btx *bolt.Tx) error {
		cur, err := loadPIN(btx, p)
		if err != nil {
			return err
		}
		if !cur.set || cur.salt != r.salt || cur.verifier != r.verifier {
			return fmt.Errorf("%v changed during VERIFY", p)
		}
		cur.retries = cur.max
		return storePIN(btx, p, &cur)
	})
	if err != nil {
		dk.Destroy()
		return nil, fmt.Errorf("store: verify %v: restore retry counter: %w", p, err)
	}
	return dk, nil
}

// SetPIN stores a new verifier for p, wraps dk under it and resets its counter to the maximum. pin == nil removes
// the PIN (RC only). The caller proves the right to do so (VERIFY PW3, the old PIN, or the reset code) and gets dk
// from that VerifyPIN. The Argon2id derivation (Options.KDF) runs inside the transaction. In the same transaction
// SetPIN moves the admin-less mode: a new PW1 makes a pending mode active, a new PW3 ends it (see AdminLess).
func (tx *Tx) SetPIN(p PIN, pin []byte, dk *DataKey) error {
	if err := tx.setPIN(p, pin, dk); err != nil {
		return fmt.Errorf("store: set %v: %w", p, err)
	}
	return nil
}

func (tx *Tx) setPIN(p PIN, pin []byte, dk *DataKey) error {
	r, err := loadPIN(tx.btx, p)
	if err != nil {
		return err
	}
	if pin == nil {
		if p != RC {
			return fmt.Errorf("only the reset code can be removed")
		}
		r = pinRecord{max: r.max}
		tx.scrub = true // the old wrap's page becomes free
		return storePIN(tx.btx, p, &r)
	}
	if len(pin) == 0 || len(pin) > MaxPINLen {
		return fmt.Errorf("PIN of %d bytes", len(pin))
	}
	epoch, err := epochOf(tx.btx)
	if err != nil {
		return err
	}
	return dk.use(epoch, func(key []byte) error {
		nr, err := newPINRecord(p, pin, key, epoch, r.max, tx.s.opts)
		if err != nil {
			return err
		}
		tx.scrub = true // the old wrap (under the old PIN, maybe a default one) goes to a free page
		if err := storePIN(tx.btx, p, &nr); err != nil {
			return err
		}
		return adminLessAfterSet(tx.btx, p)
	})
}

// newPINRecord derives a fresh salt, verifier and wrap of key for pin.
func newPINRecord(p PIN, pin, key, epoch []byte, max uint8, opts Options) (pinRecord, error) {
	r := pinRecord{set: true, retries: max, max: max, length: uint8(len(pin)), kdf: opts.KDF}
	salt, err := randomBytes(saltLen)
	if err != nil {
		return r, err
	}
	copy(r.salt[:], salt)
	verifier, wrapKey := derivePIN(p, pin, salt, opts.DeviceSecret, opts.KDF)
	defer clear(wrapKey)
	copy(r.verifier[:], verifier)
	w, err := wrapDataKey(wrapKey, p, key, epoch)
	if err != nil {
		return r, err
	}
	copy(r.wrap[:], w)
	return r, nil
}

// ResetRetries restores p's retry counter to its maximum (RESET RETRY COUNTER, or after VERIFY PW3) without
// changing the PIN.
func (tx *Tx) ResetRetries(p PIN) error {
	r, err := loadPIN(tx.btx, p)
	if err != nil {
		return fmt.Errorf("store: reset retries of %v: %w", p, err)
	}
	if !r.set {
		return fmt.Errorf("store: reset retries of %v: %w", p, ErrNotSet)
	}
	r.retries = r.max
	if err := storePIN(tx.btx, p, &r); err != nil {
		return fmt.Errorf("store: reset retries of %v: %w", p, err)
	}
	return nil
}
