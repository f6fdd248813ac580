package store

import (
	"crypto/rand"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// FactoryReset destroys the data key (a new epoch makes every old wrap and blob useless even if a copy survives),
// every key blob, certificate and DO; makes a new data key wrapped under the default PINs, removes the reset code,
// restores the counters and clears the termination state. It works whatever the PIN state (TERMINATE DF /
// ACTIVATE FILE); the caller decides who may call it. The serial number stays. After the commit, Update
// overwrites the file's free pages, where the old records' bytes would otherwise linger.
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

// scrubFreePages overwrites the file's free pages with random bytes: bbolt never rewrites a page in place, so a
// deleted record's bytes stay in a freed page until bbolt reuses it. One transaction fills a scratch bucket with
// enough random values that bbolt must reuse every free page (two values per page), the next deletes it. Pages
// still held by an open read transaction are missed; so is anything the storage medium keeps (flash wear
// levelling).
func (s *Store) scrubFreePages() error {
	st := s.db.Stats()
	n := st.FreePageN + st.PendingPageN
	if n == 0 {
		return nil
	}
	scratch := bktScrub
	err := s.db.Update(func(btx *bolt.Tx) error {
		b, err := btx.CreateBucket(scratch)
		if err != nil {
			return err
		}
		b.FillPercent = 1
		size := btx.DB().Info().PageSize * 45 / 100
		for i := 0; i < 2*n+4; i++ {
			v := make([]byte, size)
			rand.Read(v)
			if err := b.Put(u32(uint32(i)), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.db.Update(func(btx *bolt.Tx) error { return btx.DeleteBucket(scratch) })
}
