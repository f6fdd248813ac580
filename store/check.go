package store

import (
	"bytes"
	"errors"
	"fmt"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// Check verifies the file's integrity: the schema version is the one this package writes, every page and every
// record decodes, retry counters are within range, PW1 and PW3 are set with a data key wrap, every sealed key
// belongs to the current data key generation, and bbolt's own consistency check (free list, page reachability)
// passes. Open runs it; the card's fuzz and power-cut tests run it after every step. A bad file gives an error
// wrapping ErrCorrupt, never a panic. Check runs in a write transaction that is rolled back, so it is serialised
// with writers and writes nothing; do not call it from inside View or Update.
func (s *Store) Check() error {
	err := guard(func() error {
		err := s.db.Update(func(btx *bolt.Tx) error {
			// Our walk first: it touches every reachable page in this goroutine, where a fault is recovered.
			// bbolt's checker runs in a goroutine of its own and must only see pages that passed.
			if err := checkRecords(btx); err != nil {
				return err
			}
			var errs []error
			for e := range btx.Check() {
				errs = append(errs, e)
			}
			if len(errs) > 0 {
				return fmt.Errorf("%w: bbolt: %w", ErrCorrupt, errors.Join(errs...))
			}
			return errRollback
		})
		if err == errRollback {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("store: check %s: %w", s.path, err)
	}
	return nil
}

var errRollback = errors.New("rollback")

// guard runs fn, turning a panic or memory fault inside bbolt (which trusts the pages it maps) into ErrCorrupt.
func guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return fn()
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

func checkRecords(btx *bolt.Tx) error {
	v, err := readSchema(btx)
	if err != nil {
		return err
	}
	if v != schemaVersion {
		return corrupt("schema %d after migration", v)
	}
	known := map[string]bool{}
	for _, name := range allBuckets {
		known[string(name)] = true
		if btx.Bucket(name) == nil {
			return corrupt("bucket %s missing", name)
		}
	}
	if err := btx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if !known[string(name)] {
			return corrupt("unknown bucket %q", name)
		}
		return nil
	}); err != nil {
		return err
	}

	meta := btx.Bucket(bktMeta)
	epoch := meta.Get(keyEpoch)
	if err := meta.ForEach(func(k, v []byte) error {
		switch {
		case bytes.Equal(k, keySchema):
		case bytes.Equal(k, keySerial) && len(v) == 4:
		case bytes.Equal(k, keyEpoch) && len(v) == epochLen:
		case bytes.Equal(k, keyDeviceSecretID) && len(v) == 16:
		case bytes.Equal(k, keyTerminated) && bytes.Equal(v, []byte{1}):
		case bytes.Equal(k, keyAdminLess) && len(v) == 1 &&
			(v[0] == byte(AdminLessPending) || v[0] == byte(AdminLessActive)):
		default:
			return corrupt("meta record %q of %d bytes", k, len(v))
		}
		return nil
	}); err != nil {
		return err
	}
	if meta.Get(keySerial) == nil || epoch == nil {
		return corrupt("meta lacks serial or data key epoch")
	}

	if err := btx.Bucket(bktDO).ForEach(func(k, v []byte) error {
		if len(k) != 2 || (k[0] == 0x7f && k[1] == 0x21) || len(v) == 0 || len(v) > MaxDOLen {
			return corrupt("DO %X of %d bytes", k, len(v))
		}
		return nil
	}); err != nil {
		return err
	}
	if err := btx.Bucket(bktCert).ForEach(func(k, v []byte) error {
		if len(k) != 1 || k[0] >= NumCerts || len(v) == 0 || len(v) > MaxCertLen {
			return corrupt("certificate %X of %d bytes", k, len(v))
		}
		return nil
	}); err != nil {
		return err
	}

	if n := btx.Bucket(bktPIN).Stats().KeyN; n != 3 {
		return corrupt("%d PIN records, want 3", n)
	}
	for _, p := range []PIN{PW1, RC, PW3} {
		r, err := loadPIN(btx, p)
		if err != nil {
			return err
		}
		if p != RC && !r.set {
			return corrupt("%v not set", p)
		}
		if r.set && r.wrap == ([wrapLen]byte{}) {
			return corrupt("%v has no data key wrap", p)
		}
	}

	return btx.Bucket(bktKey).ForEach(func(k, v []byte) error {
		if len(k) != 1 || validRole(int(k[0])) != nil {
			return corrupt("key record %X", k)
		}
		r, err := decodeKeyRecord(v)
		if err != nil {
			return corrupt("key %d: %v", k[0], err)
		}
		if r.role != k[0] {
			return corrupt("key %d: record says role %d", k[0], r.role)
		}
		if !bytes.Equal(r.epoch[:], epoch) {
			return corrupt("key %d sealed under a data key that no longer exists", k[0])
		}
		return nil
	})
}
