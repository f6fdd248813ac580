package store

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

const (
	dataKeyLen = chacha20poly1305.KeySize       // 32
	nonceLen   = chacha20poly1305.NonceSizeX    // 24
	tagLen     = chacha20poly1305.Overhead      // 16
	saltLen    = 16                             // Argon2id salt per PIN
	verLen     = 32                             // PIN verifier
	epochLen   = 16                             // data key generation id
	wrapLen    = nonceLen + dataKeyLen + tagLen // nonce || sealed data key
)

// Domain-separation labels: HKDF infos and AEAD associated-data prefixes.
const (
	labelVerifier = "ccidgadget/store/v1/pin-verifier"
	labelWrapKey  = "ccidgadget/store/v1/pin-wrap-key"
	labelWrapAD   = "ccidgadget/store/v1/data-key-wrap"
	labelKeyAD    = "ccidgadget/store/v1/key-blob"
	labelDSID     = "ccidgadget/store/v1/device-secret-id"
)

// DataKey is the unwrapped data key that seals every private key of one state. It is obtained from VerifyPIN,
// handed to SetPIN, PutKey and Key, and zeroed by Destroy. It is safe for concurrent use.
type DataKey struct {
	mu        sync.Mutex
	key       [dataKeyLen]byte
	epoch     [epochLen]byte
	destroyed bool
}

// Destroy zeroes the key. Later use gives ErrWrongDataKey.
func (k *DataKey) Destroy() {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.key[:])
	k.destroyed = true
}

// use runs fn with the key bytes if the key is alive and belongs to epoch.
func (k *DataKey) use(epoch []byte, fn func(key []byte) error) error {
	if k == nil {
		return ErrWrongDataKey
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.destroyed || subtle.ConstantTimeCompare(k.epoch[:], epoch) != 1 {
		return ErrWrongDataKey
	}
	return fn(k.key[:])
}

func newDataKey(epoch []byte) (*DataKey, error) {
	dk := &DataKey{}
	if _, err := rand.Read(dk.key[:]); err != nil {
		return nil, err
	}
	copy(dk.epoch[:], epoch)
	return dk, nil
}

// derivePIN turns a PIN (bytes as the host sent them) into its verifier and its wrapping key:
//
//	m   = Argon2id(pin, salt, kdf, 32 bytes)
//	prk = HKDF-Extract(SHA-256, salt = device secret (empty if none), m)
//	verifier = HKDF-Expand(prk, labelVerifier || ref, 32)
//	wrapKey  = HKDF-Expand(prk, labelWrapKey  || ref, 32)
func derivePIN(p PIN, pin, salt, deviceSecret []byte, kdf KDFParams) (verifier, wrapKey []byte) {
	m := argon2.IDKey(pin, salt, kdf.Time, kdf.MemoryKiB, kdf.Threads, 32)
	defer clear(m)
	prk := hkdf.Extract(sha256.New, m, deviceSecret)
	defer clear(prk)
	expand := func(label string) []byte {
		out := make([]byte, 32)
		if _, err := io.ReadFull(hkdf.Expand(sha256.New, prk, append([]byte(label), byte(p))), out); err != nil {
			panic(err) // 32 bytes from SHA-256 HKDF cannot fail
		}
		return out
	}
	return expand(labelVerifier), expand(labelWrapKey)
}

func wrapAD(p PIN, epoch []byte) []byte {
	return append(append([]byte(labelWrapAD), byte(p)), epoch...)
}

// wrapDataKey seals dk under wrapKey: nonce || XChaCha20-Poly1305(dk), with the PIN and epoch as associated data.
func wrapDataKey(wrapKey []byte, p PIN, dk []byte, epoch []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(wrapKey)
	if err != nil {
		return nil, err
	}
	out := make([]byte, nonceLen, wrapLen)
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[:nonceLen], dk, wrapAD(p, epoch)), nil
}

func unwrapDataKey(wrapKey []byte, p PIN, wrapped []byte, epoch []byte) (*DataKey, error) {
	aead, err := chacha20poly1305.NewX(wrapKey)
	if err != nil {
		return nil, err
	}
	if len(wrapped) != wrapLen {
		return nil, fmt.Errorf("%w: data key wrap of %v has %d bytes", ErrCorrupt, p, len(wrapped))
	}
	dk := &DataKey{}
	plain, err := aead.Open(dk.key[:0], wrapped[:nonceLen], wrapped[nonceLen:], wrapAD(p, epoch))
	if err != nil || len(plain) != dataKeyLen {
		clear(dk.key[:])
		return nil, fmt.Errorf("%w: data key wrap of %v does not open", ErrCorrupt, p)
	}
	copy(dk.epoch[:], epoch)
	return dk, nil
}

// keyAD binds a key blob to its role, the blob format, the data key generation and its public part.
func keyAD(role int, epoch, public []byte) []byte {
	h := sha256.Sum256(public)
	ad := append([]byte(labelKeyAD), keyBlobVersion, byte(role))
	ad = append(ad, epoch...)
	return append(ad, h[:]...)
}

func deviceSecretID(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(labelDSID))
	return m.Sum(nil)[:16]
}

func equalCT(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}
