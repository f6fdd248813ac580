package store

import (
	"bytes"
	"testing"
)

// FuzzRecords feeds arbitrary bytes to the record decoders: no panic, and whatever decodes re-encodes to the
// same bytes (one encoding per record).
func FuzzRecords(f *testing.F) {
	f.Add(make([]byte, pinRecordLen))
	r := pinRecord{set: true, retries: 2, max: 3, length: 6, kdf: FastKDF}
	f.Add(r.encode())
	k := keyRecord{role: 1, public: []byte("pub"), sealed: make([]byte, 40)}
	f.Add(k.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodePINRecord(b); err == nil {
			if !bytes.Equal(r.encode(), b) {
				t.Errorf("PIN record %x re-encodes as %x", b, r.encode())
			}
		}
		if r, err := decodeKeyRecord(b); err == nil {
			if !bytes.Equal(r.encode(), b) {
				t.Errorf("key record %x re-encodes as %x", b, r.encode())
			}
		}
	})
}
