package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"
)

// schemaVersion is the layout this package writes. History:
//
//	1: one cardholder certificate, stored among the DOs under tag 7F21.
//	2: three certificate occurrences in their own bucket "cert" (key = occurrence byte).
const schemaVersion = 2

// Bucket names and meta keys; see the package doc for the layout.
var (
	bktMeta = []byte("meta")
	bktDO   = []byte("do")
	bktCert = []byte("cert")
	bktPIN  = []byte("pin")
	bktKey  = []byte("key")

	allBuckets = [][]byte{bktMeta, bktDO, bktCert, bktPIN, bktKey}

	keySchema         = []byte("schema")
	keySerial         = []byte("serial")
	keyEpoch          = []byte("epoch")
	keyDeviceSecretID = []byte("dsid")
	keyTerminated     = []byte("terminated")
	keyAdminLess      = []byte("adminless")
)

// migration rewrites a file of schema version from into version from+1, inside the transaction that opens it.
type migration struct {
	from int
	name string
	fn   func(*bolt.Tx) error
}

// migrations, in order. Each step runs in the same transaction as the others and the version bump, so a file is
// never left half-migrated.
var migrations = []migration{
	{from: 1, name: "move the single certificate DO 7F21 to occurrence 0 of the cert bucket", fn: migrateV1ToV2},
}

func migrateV1ToV2(btx *bolt.Tx) error {
	certs, err := btx.CreateBucketIfNotExists(bktCert)
	if err != nil {
		return err
	}
	dos := btx.Bucket(bktDO)
	if dos == nil {
		return fmt.Errorf("%w: bucket do missing", ErrCorrupt)
	}
	if v := dos.Get(u16(tagCert)); v != nil {
		// Occurrence 0 is what a 3.0 card's single 7F21 becomes: the AUT certificate GnuPG reads as OPENPGP.3.
		if err := certs.Put([]byte{0}, clone(v)); err != nil {
			return err
		}
		if err := dos.Delete(u16(tagCert)); err != nil {
			return err
		}
	}
	return nil
}

// readSchema returns the file's schema version.
func readSchema(btx *bolt.Tx) (int, error) {
	meta := btx.Bucket(bktMeta)
	if meta == nil {
		return 0, fmt.Errorf("%w: bucket meta missing", ErrCorrupt)
	}
	v := meta.Get(keySchema)
	if len(v) != 4 {
		return 0, fmt.Errorf("%w: schema version record has %d bytes", ErrCorrupt, len(v))
	}
	n := int(binary.BigEndian.Uint32(v))
	if n < 1 {
		return 0, fmt.Errorf("%w: schema version %d", ErrCorrupt, n)
	}
	if n > schemaVersion {
		return 0, fmt.Errorf("%w: file has schema %d, this program knows up to %d", ErrSchema, n, schemaVersion)
	}
	return n, nil
}

// migrate brings the file to schemaVersion.
func migrate(btx *bolt.Tx) error {
	v, err := readSchema(btx)
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if m.from < v {
			continue
		}
		if m.from != v {
			return fmt.Errorf("store: no migration from schema %d", v)
		}
		if err := m.fn(btx); err != nil {
			return fmt.Errorf("store: migrate schema %d to %d (%s): %w", m.from, m.from+1, m.name, err)
		}
		v = m.from + 1
	}
	if v != schemaVersion {
		return fmt.Errorf("store: no migration from schema %d", v)
	}
	return btx.Bucket(bktMeta).Put(keySchema, u32(schemaVersion))
}

// bbolt's on-disk meta page (go.etcd.io/bbolt internal/common/meta.go), read before bbolt maps the file so that a
// truncated file gives an error instead of a fault when bbolt touches a page past its end.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSize       = 64 // magic .. checksum
)

type boltMeta struct {
	pageSize uint32
	root     uint64 // root bucket page
	freelist uint64 // freelist page, or ^0 when the freelist is not synced
	pgid     uint64 // high water mark: pages [0, pgid) are in use or free
	txid     uint64
}

func parseBoltMeta(b []byte) (boltMeta, bool) {
	if len(b) < pageHeaderSize+metaSize {
		return boltMeta{}, false
	}
	m := b[pageHeaderSize : pageHeaderSize+metaSize]
	ne := binary.NativeEndian
	h := fnv.New64a()
	h.Write(m[:56])
	if ne.Uint32(m[0:]) != boltMagic || ne.Uint32(m[4:]) != boltVersion || ne.Uint64(m[56:]) != h.Sum64() {
		return boltMeta{}, false
	}
	return boltMeta{pageSize: ne.Uint32(m[8:]), root: ne.Uint64(m[16:]), freelist: ne.Uint64(m[32:]),
		pgid: ne.Uint64(m[40:]), txid: ne.Uint64(m[48:])}, true
}

// preflight checks that an existing file is a bbolt file whose pages all lie within the file, and walks its
// tree (walkBolt) so that bbolt never follows a corrupted offset.
func preflight(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return nil // bbolt initialises an empty file
	}
	buf := make([]byte, pageHeaderSize+metaSize)
	read := func(off int64) (boltMeta, bool) {
		if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
			return boltMeta{}, false
		}
		return parseBoltMeta(buf)
	}
	var best boltMeta
	ok := false
	if m0, ok0 := read(0); ok0 {
		best, ok = m0, true
		if m1, ok1 := read(int64(m0.pageSize)); ok1 && m1.txid > m0.txid {
			best = m1
		}
	} else {
		for _, ps := range []int64{4096, 8192, 16384, 32768, 65536} {
			if m1, ok1 := read(ps); ok1 && int64(m1.pageSize) == ps {
				best, ok = m1, true
				break
			}
		}
	}
	if !ok {
		return fmt.Errorf("%w: no valid bbolt meta page", ErrCorrupt)
	}
	if best.pageSize < 512 || best.pageSize > 1<<20 {
		return fmt.Errorf("%w: page size %d", ErrCorrupt, best.pageSize)
	}
	if best.root < 2 || best.root >= best.pgid || (best.freelist >= best.pgid && best.freelist != ^uint64(0)) {
		return fmt.Errorf("%w: meta page points past the high water mark", ErrCorrupt)
	}
	if best.pgid < 2 || best.pgid > uint64(fi.Size())/uint64(best.pageSize) {
		return fmt.Errorf("%w: file is %d bytes but has %d pages of %d bytes (truncated?)", ErrCorrupt, fi.Size(),
			best.pgid, best.pageSize)
	}
	if fi.Size() > maxWalkBytes {
		return fmt.Errorf("%w: %d bytes is not a card's state", ErrCorrupt, fi.Size())
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil && err != io.EOF {
		return err
	}
	return walkBolt(data, best)
}
