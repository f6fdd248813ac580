package store

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"
)

// TestWalkRefusesBadOffsets: a flipped page header or element in the root bucket page, which bbolt would
// follow into memory that is not the file, is found by walkBolt, so Open refuses it with ErrCorrupt before
// bbolt maps the file. (bbolt's own checks catch some of these too; others made TestOpenFlippedBytes abort the
// test binary about once in a hundred -race runs with "fatal error: found pointer to free object".)
func TestWalkRefusesBadOffsets(t *testing.T) {
	path := newStateFile(t)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := parseBoltMeta(raw)
	if !ok {
		t.Fatal("meta page 0 does not parse")
	}
	if m1, ok := parseBoltMeta(raw[m.pageSize:]); ok && m1.txid > m.txid {
		m = m1
	}
	if err := walkBolt(raw, m); err != nil {
		t.Fatalf("walk of a good file: %v", err)
	}
	ne := binary.NativeEndian
	root := int(m.root) * int(m.pageSize)
	if ne.Uint16(raw[root+8:]) != boltLeafPage || ne.Uint16(raw[root+10:]) == 0 {
		t.Fatalf("root page %d is not a leaf with elements (flags 0x%02X)", m.root, ne.Uint16(raw[root+8:]))
	}
	el := root + pageHeaderSize // the first element of the root page: a top-level bucket
	val := el + int(ne.Uint32(raw[el+4:])) + int(ne.Uint32(raw[el+8:]))
	tests := []struct {
		name string
		off  int
		put  func(b []byte)
	}{
		{"page id in the header", root, func(b []byte) { ne.PutUint64(b, m.root+1) }},
		{"element count", root + 10, func(b []byte) { ne.PutUint16(b, 0xFFF0) }},
		{"overflow", root + 12, func(b []byte) { ne.PutUint32(b, 1<<30) }},
		{"page flags", root + 8, func(b []byte) { ne.PutUint16(b, 0x40) }},
		{"element position", el + 4, func(b []byte) { ne.PutUint32(b, 0xFFFFFF00) }},
		{"key size", el + 8, func(b []byte) { ne.PutUint32(b, 0x7FFFFFFF) }},
		{"value size", el + 12, func(b []byte) { ne.PutUint32(b, 0x7FFFFFFF) }},
		{"bucket root page", val, func(b []byte) { ne.PutUint64(b, 1<<40) }},
		{"bucket root is the meta page", val, func(b []byte) { ne.PutUint64(b, 1) }},
		{"bucket root is its parent", val, func(b []byte) { ne.PutUint64(b, m.root) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := clone(raw)
			tt.put(bad[tt.off:])
			if err := walkBolt(bad, m); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("walkBolt: %v, want ErrCorrupt", err)
			}
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, Options{KDF: FastKDF})
			if err == nil {
				s.Close()
				t.Fatal("a corrupted file opened")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
		})
	}
}

// FuzzWalkBolt: the walker never panics and never reads outside the file, whatever the bytes.
func FuzzWalkBolt(f *testing.F) {
	f.Add(make([]byte, 4*4096), uint64(3), uint64(2), uint64(4))
	f.Fuzz(func(t *testing.T, data []byte, root, freelist, pgid uint64) {
		_ = walkBolt(data, boltMeta{pageSize: 4096, root: root, freelist: freelist, pgid: pgid})
	})
}
