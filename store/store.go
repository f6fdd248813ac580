package store

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Errors callers branch on. They are wrapped with context; use errors.Is.
var (
	// ErrInUse means another process holds the state file open.
	ErrInUse = errors.New("state file in use by another process")
	// ErrCorrupt means the file or one of its records failed the integrity check.
	ErrCorrupt = errors.New("state file corrupt")
	// ErrSchema means the file was written by a newer version of this package.
	ErrSchema = errors.New("state file schema is newer than this program")
	// ErrDeviceSecret means the device secret given does not match the one the file was created with
	// (or one is missing).
	ErrDeviceSecret = errors.New("device secret does not match the state file")
	// ErrBlocked means the PIN has no tries left; nothing was derived or compared.
	ErrBlocked = errors.New("PIN blocked")
	// ErrNotSet means the PIN (in practice the reset code) is not set.
	ErrNotSet = errors.New("PIN not set")
	// ErrWrongDataKey means the DataKey given belongs to another state file or to a state before a factory reset,
	// or has been destroyed.
	ErrWrongDataKey = errors.New("data key does not belong to this state")
	// ErrNoKey means no key is stored for that role.
	ErrNoKey = errors.New("no key for this role")
)

// AuthError is returned by VerifyPIN when the PIN is wrong. Retries is the number of tries left after this one
// (already committed to the file).
type AuthError struct {
	PIN     PIN
	Retries int
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("store: wrong %v, %d tries left", e.PIN, e.Retries)
}

// KDFParams are the Argon2id cost parameters used to derive a PIN's verifier and wrapping key.
type KDFParams struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // lanes
}

var (
	// DefaultKDF is the production cost: Argon2id, 1 pass over 16 MiB, 1 lane. See the package doc for what one
	// derivation costs.
	DefaultKDF = KDFParams{Time: 1, MemoryKiB: 16 * 1024, Threads: 1}
	// FastKDF is for tests only: 1 pass over 64 KiB.
	FastKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}
)

// Limits on KDF parameters read from a file: within them a derivation always fits a Pi Zero.
const (
	maxKDFTime      = 16
	maxKDFMemoryKiB = 256 * 1024
	maxKDFThreads   = 16
)

func (k KDFParams) valid() error {
	if k.Time < 1 || k.Time > maxKDFTime || k.Threads < 1 || k.Threads > maxKDFThreads ||
		k.MemoryKiB < 8*uint32(k.Threads) || k.MemoryKiB > maxKDFMemoryKiB {
		return fmt.Errorf("KDF parameters out of range: time %d, memory %d KiB, threads %d", k.Time, k.MemoryKiB, k.Threads)
	}
	return nil
}

// Options configure Open.
type Options struct {
	// DeviceSecret is optional; when set it is mixed into every PIN-derived key, so the state file alone (without
	// the secret) cannot be attacked offline. A file created with a secret opens only with the same secret.
	// At least 16 bytes.
	DeviceSecret []byte
	// KDF is the Argon2id cost for PINs set from now on; the zero value means DefaultKDF. Each PIN record keeps
	// the parameters it was derived with.
	KDF KDFParams
	// Timeout is how long Open waits for another process to release the file; zero means one second.
	Timeout time.Duration
	// Logger receives warnings (never PIN or key bytes); nil means slog.Default().
	Logger *slog.Logger
}

// Store is an open state file. It is safe for concurrent use by many goroutines of one process.
type Store struct {
	db   *bolt.DB
	path string
	opts Options
	log  *slog.Logger

	readers      atomic.Int32 // View calls in progress: the free-page scrub waits for none
	scrubPending atomic.Bool  // a scrub was postponed because a View was open
}

// Tx is one transaction: read-only inside View, read-write inside Update. It must not be used after fn returns.
type Tx struct {
	s     *Store
	btx   *bolt.Tx
	scrub bool // a key blob or wrap was deleted or replaced: scrub free pages after commit
}

// Open opens or creates the state file. A new file gets a random 4-byte serial, the default PINs 123456 (PW1)
// and 12345678 (PW3) (as verifiers, with the data key wrapped under each), no reset code, retry counters 3/0/3.
// Open runs schema migrations and the integrity check. A file held by another process gives ErrInUse after
// opts.Timeout. Errors are wrapped with the path.
func Open(path string, opts Options) (*Store, error) {
	if opts.KDF == (KDFParams{}) {
		opts.KDF = DefaultKDF
	}
	if err := opts.KDF.valid(); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if opts.DeviceSecret != nil && len(opts.DeviceSecret) < 16 {
		return nil, fmt.Errorf("store: open %s: device secret shorter than 16 bytes", path)
	}
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := preflight(path); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	var db *bolt.DB
	err := guard(func() (err error) {
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout})
		return err
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			err = ErrInUse
		} else if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) ||
			errors.Is(err, bolterrors.ErrVersionMismatch) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: db, path: path, opts: opts, log: opts.Logger}
	if err := guard(s.init); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := s.Check(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// init creates a new file's contents, or checks the device secret and migrates an existing one.
func (s *Store) init() error {
	return s.db.Update(func(btx *bolt.Tx) error {
		meta := btx.Bucket(bktMeta)
		if meta == nil {
			if k, _ := btx.Cursor().First(); k != nil { // buckets but no meta: not a file we created
				return fmt.Errorf("%w: meta bucket missing", ErrCorrupt)
			}
			return s.create(btx)
		}
		if err := s.checkDeviceSecret(meta); err != nil {
			return err
		}
		return migrate(btx)
	})
}

func (s *Store) create(btx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := btx.CreateBucket(name); err != nil {
			return err
		}
	}
	meta := btx.Bucket(bktMeta)
	if err := meta.Put(keySchema, u32(schemaVersion)); err != nil {
		return err
	}
	serial := make([]byte, 4)
	for {
		if _, err := rand.Read(serial); err != nil {
			return err
		}
		if v := binary.BigEndian.Uint32(serial); v != 0 && v != 0xffffffff {
			break
		}
	}
	if err := meta.Put(keySerial, serial); err != nil {
		return err
	}
	if s.opts.DeviceSecret != nil {
		if err := meta.Put(keyDeviceSecretID, deviceSecretID(s.opts.DeviceSecret)); err != nil {
			return err
		}
	}
	tx := &Tx{s: s, btx: btx}
	return tx.resetSecrets()
}

func (s *Store) checkDeviceSecret(meta *bolt.Bucket) error {
	id := meta.Get(keyDeviceSecretID)
	switch {
	case id == nil && s.opts.DeviceSecret == nil:
		return nil
	case id == nil:
		return fmt.Errorf("%w: the file was created without a device secret", ErrDeviceSecret)
	case s.opts.DeviceSecret == nil:
		return fmt.Errorf("%w: the file needs a device secret", ErrDeviceSecret)
	case !equalCT(id, deviceSecretID(s.opts.DeviceSecret)):
		return ErrDeviceSecret
	}
	return nil
}

// Path returns the file name the store was opened with.
func (s *Store) Path() string { return s.path }

// Close closes the file. Keys and DataKeys obtained earlier stay valid in memory; zero them yourself.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", s.path, err)
	}
	return nil
}

// View runs fn in a read-only transaction. Keep it short and never call Update or VerifyPIN from inside it: a
// commit that must grow bbolt's memory map waits until every open read transaction ends.
func (s *Store) View(fn func(*Tx) error) error {
	s.readers.Add(1)
	defer s.readers.Add(-1)
	return s.db.View(func(btx *bolt.Tx) error {
		return fn(&Tx{s: s, btx: btx})
	})
}

// Update runs fn in one read-write transaction: all of fn's changes are committed (and fsynced) together, or none
// if fn returns an error or panics. After a commit that deleted or replaced a key blob (DeleteKey, PutKey over an
// existing key, SetPIN, FactoryReset), Update also overwrites the file's free pages with random bytes (see the
// package doc); a failure there is logged, not returned, since the change itself is committed.
func (s *Store) Update(fn func(*Tx) error) error {
	var scrub bool
	err := s.db.Update(func(btx *bolt.Tx) error {
		tx := &Tx{s: s, btx: btx}
		if err := fn(tx); err != nil {
			return err
		}
		scrub = tx.scrub
		return nil
	})
	if err != nil {
		return err
	}
	if scrub || s.scrubPending.Load() {
		if err := s.scrubFreePages(); err != nil {
			s.log.Warn("store: scrubbing free pages failed", "path", s.path, "err", err)
		}
	}
	return nil
}

// Maximum sizes of stored values. They bound what a corrupt or hostile file can make the card allocate.
const (
	MaxDOLen   = 0xffff // a data object's value
	MaxCertLen = 0xffff // one cardholder certificate (7F21)
	NumCerts   = 3      // occurrences of 7F21
)

// tagCert is the cardholder certificate tag; certificates live in their own bucket, not among the DOs.
const tagCert = 0x7f21

// DO returns the value of the data object tag, or nil when absent. The slice is a copy.
func (tx *Tx) DO(tag uint16) []byte {
	return clone(tx.btx.Bucket(bktDO).Get(u16(tag)))
}

// SetDO stores v as the value of tag; nil or empty deletes it. The cardholder certificate 7F21 goes through
// SetCert instead.
func (tx *Tx) SetDO(tag uint16, v []byte) error {
	if tag == tagCert {
		return fmt.Errorf("store: set DO %04X: use SetCert", tag)
	}
	if len(v) > MaxDOLen {
		return fmt.Errorf("store: set DO %04X: %d bytes, more than %d", tag, len(v), MaxDOLen)
	}
	b := tx.btx.Bucket(bktDO)
	var err error
	if len(v) == 0 {
		err = b.Delete(u16(tag))
	} else {
		err = b.Put(u16(tag), clone(v))
	}
	if err != nil {
		return fmt.Errorf("store: set DO %04X: %w", tag, err)
	}
	return nil
}

// DOTags returns the tags of all stored data objects, in ascending order.
func (tx *Tx) DOTags() []uint16 {
	var tags []uint16
	tx.btx.Bucket(bktDO).ForEach(func(k, _ []byte) error {
		if len(k) == 2 {
			tags = append(tags, binary.BigEndian.Uint16(k))
		}
		return nil
	})
	return tags
}

// Cert returns the cardholder certificate 7F21 of occurrence occ (0..2), or nil when absent or occ is out of
// range. The slice is a copy.
func (tx *Tx) Cert(occ int) []byte {
	if occ < 0 || occ >= NumCerts {
		return nil
	}
	return clone(tx.btx.Bucket(bktCert).Get([]byte{byte(occ)}))
}

// SetCert stores der as certificate occurrence occ (0..2); nil or empty deletes it.
func (tx *Tx) SetCert(occ int, der []byte) error {
	if occ < 0 || occ >= NumCerts {
		return fmt.Errorf("store: set certificate %d: occurrence out of range 0..%d", occ, NumCerts-1)
	}
	if len(der) > MaxCertLen {
		return fmt.Errorf("store: set certificate %d: %d bytes, more than %d", occ, len(der), MaxCertLen)
	}
	b := tx.btx.Bucket(bktCert)
	var err error
	if len(der) == 0 {
		err = b.Delete([]byte{byte(occ)})
	} else {
		err = b.Put([]byte{byte(occ)}, clone(der))
	}
	if err != nil {
		return fmt.Errorf("store: set certificate %d: %w", occ, err)
	}
	return nil
}

// Serial returns the card's 4-byte serial number, chosen at random when the file was created and kept across
// factory resets.
func (tx *Tx) Serial() [4]byte {
	var s [4]byte
	copy(s[:], tx.btx.Bucket(bktMeta).Get(keySerial))
	return s
}

// Terminated reports whether TERMINATE DF put the card in its termination state.
func (tx *Tx) Terminated() bool {
	v := tx.btx.Bucket(bktMeta).Get(keyTerminated)
	return len(v) == 1 && v[0] == 1
}

// SetTerminated records (or clears) the termination state. FactoryReset clears it.
func (tx *Tx) SetTerminated(on bool) error {
	var err error
	if on {
		err = tx.btx.Bucket(bktMeta).Put(keyTerminated, []byte{1})
	} else {
		err = tx.btx.Bucket(bktMeta).Delete(keyTerminated)
	}
	if err != nil {
		return fmt.Errorf("store: set terminated: %w", err)
	}
	return nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
