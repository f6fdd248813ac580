package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// writeV1 rewrites a current state file into the schema 1 layout: no cert bucket, the single certificate
// stored among the DOs as 7F21.
func writeV1(t testing.TB, path string, cert []byte) {
	withRawFile(t, path, func(btx *bolt.Tx) error {
		if err := btx.DeleteBucket(bktCert); err != nil {
			return err
		}
		if cert != nil {
			if err := btx.Bucket(bktDO).Put(u16(0x7f21), cert); err != nil {
				return err
			}
		}
		return btx.Bucket(bktMeta).Put(keySchema, u32(1))
	})
}

func TestMigrateFromV1(t *testing.T) {
	for _, tc := range []struct {
		name string
		cert []byte
	}{
		{"with certificate", bytes.Repeat([]byte{0x30}, 2048)},
		{"without certificate", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := newStateFile(t)
			writeV1(t, path, tc.cert)
			s, err := Open(path, Options{KDF: FastKDF})
			if err != nil {
				t.Fatalf("open v1 file: %v", err)
			}
			defer s.Close()
			s.View(func(tx *Tx) error {
				if got := tx.Cert(0); !bytes.Equal(got, tc.cert) {
					t.Errorf("certificate 0 after migration: %d bytes, want %d", len(got), len(tc.cert))
				}
				if tx.Cert(1) != nil || tx.Cert(2) != nil || tx.DO(0x7f21) != nil {
					t.Error("certificate in the wrong place after migration")
				}
				if tx.DO(0x5b) == nil || !tx.HasKey(RoleSig) {
					t.Error("migration lost a DO or a key")
				}
				if v := binary.BigEndian.Uint32(tx.btx.Bucket(bktMeta).Get(keySchema)); v != schemaVersion {
					t.Errorf("schema %d after migration", v)
				}
				return nil
			})
			mustVerify(t, s, PW3, "12345678").Destroy()
		})
	}
}

func TestMigrationsCoverEveryVersion(t *testing.T) {
	for v := 1; v < schemaVersion; v++ {
		if migrations[v-1].from != v {
			t.Errorf("migration %d starts at %d", v-1, migrations[v-1].from)
		}
	}
	if len(migrations) != schemaVersion-1 {
		t.Errorf("%d migrations for schema %d", len(migrations), schemaVersion)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := newStateFile(t)
	withRawFile(t, path, func(btx *bolt.Tx) error {
		return btx.Bucket(bktMeta).Put(keySchema, u32(schemaVersion+1))
	})
	if _, err := Open(path, Options{KDF: FastKDF}); !errors.Is(err, ErrSchema) {
		t.Fatalf("Open: %v, want ErrSchema", err)
	}
}
