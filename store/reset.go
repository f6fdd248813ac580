package store

import (
	"crypto/rand"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

// FactoryReset destroys the data key (a new epoch makes every old wrap and blob useless even if a copy survives),
// every key blob, certificate and DO; makes a new data key wrapped under the default PINs, removes the reset code,
// restores the counters, and clears the termination state and the admin-less mode (a reset card is a specification
// card: host tools initialising it expect PW3 12345678 to stay the admin PIN after they change PW1). It works
// whatever the PIN state (TERMINATE DF / ACTIVATE FILE); the caller decides who may call it. The serial number
// stays. After the commit, Update overwrites the file's free pages, where the old records' bytes would otherwise
// linger.
func (tx *Tx) FactoryReset() error {
	if err := tx.factoryReset(); err != nil {
		return fmt.Errorf("store: factory reset: %w", err)
	}
	return nil
}

func (tx *Tx) factoryReset() error {
	for _, name := range [][]byte{bktDO, bktCert, bktKey, bktPIN} {
		if tx.btx.Bucket(name) != nil {
			if err := tx.btx.DeleteBucket(name); err != nil {
				return err
			}
		}
		if _, err := tx.btx.CreateBucket(name); err != nil {
			return err
		}
	}
	if err := tx.btx.Bucket(bktMeta).Delete(keyTerminated); err != nil {
		return err
	}
	if err := tx.btx.Bucket(bktMeta).Delete(keyAdminLess); err != nil {
		return err
	}
	tx.scrub = true
	return tx.resetSecrets()
}

// resetSecrets starts a new epoch with a new random data key, wraps it under the default PW1 and PW3, and leaves
// the reset code unset.
func (tx *Tx) resetSecrets() error {
	epoch, err := randomBytes(epochLen)
	if err != nil {
		return err
	}
	if err := tx.btx.Bucket(bktMeta).Put(keyEpoch, epoch); err != nil {
		return err
	}
	dk, err := newDataKey(epoch)
	if err != nil {
		return err
	}
	defer dk.Destroy()
	for _, p := range []PIN{PW1, PW3} {
		var r pinRecord
		err := dk.use(epoch, func(key []byte) error {
			r, err = newPINRecord(p, defaultPINs[p], key, epoch, DefaultMaxRetries, tx.s.opts)
			return err
		})
		if err != nil {
			return err
		}
		if err := storePIN(tx.btx, p, &r); err != nil {
			return err
		}
	}
	return storePIN(tx.btx, RC, &pinRecord{max: DefaultMaxRetries})
}

// scrubFreePages overwrites every free page of the file with random bytes: bbolt never rewrites a page in place,
// so a deleted record's bytes stay in a freed page until bbolt happens to reuse it. It runs inside a write
// transaction (so no writer allocates meanwhile) that it rolls back (so it changes nothing bbolt knows about), and
// writes the pages with pwrite on a second descriptor of the file, then fsyncs.
//
// Why this is safe: at the start of a write transaction with no read transaction open, bbolt has released every
// pending page, so each page its free list names belongs to no tree that any current or future transaction can
// see (bbolt itself overwrites exactly these pages in its next commit). If a read transaction (View) is open, a
// pending page may still be in its view; then the scrub is postponed to the end of the next Update.
func (s *Store) scrubFreePages() error {
	err := s.db.Update(func(btx *bolt.Tx) error {
		if s.readers.Load() != 0 {
			s.scrubPending.Store(true)
			return errRollback
		}
		f, err := os.OpenFile(s.path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		ps := int64(btx.DB().Info().PageSize)
		junk := make([]byte, ps)
		hwm := int(btx.Size() / ps)
		wrote := false
		for id := 2; id < hwm; id++ {
			info, err := btx.Page(id)
			if err != nil {
				return err
			}
			if info == nil || info.Type != "free" {
				continue
			}
			rand.Read(junk)
			if _, err := f.WriteAt(junk, int64(id)*ps); err != nil {
				return err
			}
			wrote = true
		}
		if wrote {
			if err := f.Sync(); err != nil {
				return err
			}
		}
		s.scrubPending.Store(false)
		return errRollback
	})
	if err == errRollback {
		return nil
	}
	return err
}
