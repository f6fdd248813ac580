package store

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Key roles.
const (
	RoleSig  = 0 // signature key
	RoleDec  = 1 // decryption key
	RoleAut  = 2 // authentication key
	RoleAES  = 3 // symmetric key of DO D5 (PSO:ENCIPHER / DECIPHER with AES)
	NumRoles = 4
)

// keyBlobVersion is the format of a key record and of its sealed part; it is bound into the associated data.
const keyBlobVersion = 1

// Maximum sizes of a key's parts (an RSA-4096 private key in any encoding the card uses fits easily).
const (
	MaxPrivateKeyLen = 8192
	MaxPublicKeyLen  = 4096
)

// keyRecord is the value under a role's key in bucket "key" (see the package doc for the byte layout).
type keyRecord struct {
	role   uint8
	epoch  [epochLen]byte
	nonce  [nonceLen]byte
	public []byte
	sealed []byte // XChaCha20-Poly1305 ciphertext || tag of the private key
}

const keyRecordHeader = 2 + epochLen + nonceLen + 4

func (r *keyRecord) encode() []byte {
	b := make([]byte, 0, keyRecordHeader+len(r.public)+len(r.sealed))
	b = append(b, keyBlobVersion, r.role)
	b = append(b, r.epoch[:]...)
	b = append(b, r.nonce[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.public)))
	b = append(b, r.public...)
	return append(b, r.sealed...)
}

func decodeKeyRecord(b []byte) (keyRecord, error) {
	var r keyRecord
	if len(b) < keyRecordHeader {
		return r, fmt.Errorf("%d bytes, shorter than the header", len(b))
	}
	if b[0] != keyBlobVersion {
		return r, fmt.Errorf("blob version %d", b[0])
	}
	r.role = b[1]
	off := 2
	off += copy(r.epoch[:], b[off:])
	off += copy(r.nonce[:], b[off:])
	n := binary.BigEndian.Uint32(b[off:])
	off += 4
	if n > MaxPublicKeyLen || uint64(n) > uint64(len(b)-off) {
		return r, fmt.Errorf("public part of %d bytes", n)
	}
	r.public = b[off : off+int(n)]
	r.sealed = b[off+int(n):]
	if len(r.sealed) < tagLen+1 || len(r.sealed) > MaxPrivateKeyLen+tagLen {
		return r, fmt.Errorf("sealed part of %d bytes", len(r.sealed))
	}
	return r, nil
}

func validRole(role int) error {
	if role < 0 || role >= NumRoles {
		return fmt.Errorf("key role %d out of range 0..%d", role, NumRoles-1)
	}
	return nil
}

func (tx *Tx) loadKey(role int) (keyRecord, bool, error) {
	if err := validRole(role); err != nil {
		return keyRecord{}, false, err
	}
	v := tx.btx.Bucket(bktKey).Get([]byte{byte(role)})
	if v == nil {
		return keyRecord{}, false, nil
	}
	r, err := decodeKeyRecord(v)
	if err == nil && int(r.role) != role {
		err = fmt.Errorf("record says role %d", r.role)
	}
	if err != nil {
		return r, false, fmt.Errorf("%w: key %d: %v", ErrCorrupt, role, err)
	}
	return r, true, nil
}

// HasKey reports whether a key is stored for role.
func (tx *Tx) HasKey(role int) bool {
	if validRole(role) != nil {
		return false
	}
	return tx.btx.Bucket(bktKey).Get([]byte{byte(role)}) != nil
}

// PutKey seals private with the data key (XChaCha20-Poly1305; role, blob version, data key generation and a hash
// of public bound as associated data) and stores it with its public part in one record, replacing any earlier key
// of that role. The plaintext never reaches the file. public may be empty (RoleAES).
func (tx *Tx) PutKey(role int, dk *DataKey, private, public []byte) error {
	if err := tx.putKey(role, dk, private, public); err != nil {
		return fmt.Errorf("store: put key %d: %w", role, err)
	}
	return nil
}

func (tx *Tx) putKey(role int, dk *DataKey, private, public []byte) error {
	if err := validRole(role); err != nil {
		return err
	}
	if len(private) == 0 || len(private) > MaxPrivateKeyLen {
		return fmt.Errorf("private part of %d bytes", len(private))
	}
	if len(public) > MaxPublicKeyLen {
		return fmt.Errorf("public part of %d bytes", len(public))
	}
	epoch, err := epochOf(tx.btx)
	if err != nil {
		return err
	}
	r := keyRecord{role: uint8(role), public: public}
	copy(r.epoch[:], epoch)
	if _, err := rand.Read(r.nonce[:]); err != nil {
		return err
	}
	err = dk.use(epoch, func(key []byte) error {
		aead, err := chacha20poly1305.NewX(key)
		if err != nil {
			return err
		}
		r.sealed = aead.Seal(nil, r.nonce[:], private, keyAD(role, epoch, public))
		return nil
	})
	if err != nil {
		return err
	}
	b := tx.btx.Bucket(bktKey)
	if b.Get([]byte{byte(role)}) != nil {
		tx.scrub = true // the old blob's page becomes free
	}
	return b.Put([]byte{byte(role)}, r.encode())
}

// Key opens role's sealed private key with dk. The caller zeroes the returned bytes after use. Errors: ErrNoKey,
// ErrWrongDataKey (dk from another file, from before a factory reset, or destroyed), ErrCorrupt.
func (tx *Tx) Key(role int, dk *DataKey) ([]byte, error) {
	r, ok, err := tx.loadKey(role)
	if err != nil {
		return nil, fmt.Errorf("store: key %d: %w", role, err)
	}
	if !ok {
		return nil, fmt.Errorf("store: key %d: %w", role, ErrNoKey)
	}
	var private []byte
	err = dk.use(r.epoch[:], func(key []byte) error {
		aead, err := chacha20poly1305.NewX(key)
		if err != nil {
			return err
		}
		private, err = aead.Open(nil, r.nonce[:], r.sealed, keyAD(role, r.epoch[:], r.public))
		if err != nil {
			return fmt.Errorf("%w: sealed key does not open", ErrCorrupt)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: key %d: %w", role, err)
	}
	return private, nil
}

// PublicKey returns role's public part as given to PutKey, or nil when there is no key. The slice is a copy.
func (tx *Tx) PublicKey(role int) []byte {
	r, ok, err := tx.loadKey(role)
	if err != nil || !ok {
		return nil
	}
	return clone(r.public)
}

// DeleteKey removes role's key; deleting an absent key is not an error.
func (tx *Tx) DeleteKey(role int) error {
	if err := validRole(role); err != nil {
		return fmt.Errorf("store: delete key: %w", err)
	}
	b := tx.btx.Bucket(bktKey)
	if b.Get([]byte{byte(role)}) == nil {
		return nil
	}
	if err := b.Delete([]byte{byte(role)}); err != nil {
		return fmt.Errorf("store: delete key %d: %w", role, err)
	}
	tx.scrub = true
	return nil
}
