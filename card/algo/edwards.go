package algo

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"

	"github.com/cloudflare/circl/sign/ed448"
)

// ed25519Family is EdDSA on Ed25519 (crypto/ed25519, RFC 8032 pure EdDSA).
type ed25519Family struct{}

// ed448Family is EdDSA on Ed448 (circl sign/ed448, RFC 8032 pure Ed448 with an empty context).
type ed448Family struct{}

// eddsaKey is an EdDSA key; seed is the RFC 8032 private key, pub the native public key.
type eddsaKey struct {
	attr Attributes
	seed []byte
	pub  []byte
	sign func(msg []byte) []byte
}

func (ed25519Family) generate(a Attributes, rand io.Reader) (PrivateKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, err
	}
	return newEd25519Key(a, seed), nil
}

func (ed25519Family) importParts(a Attributes, parts map[byte][]byte) (PrivateKey, error) {
	return importEdwards(a, parts, ed25519.SeedSize, ed25519.PublicKeySize, newEd25519Key)
}

func (ed25519Family) unmarshal(a Attributes, b []byte) (PrivateKey, error) {
	if len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("Ed25519 private key of %d bytes: %w", len(b), ErrInvalidInput)
	}
	return newEd25519Key(a, b), nil
}

func newEd25519Key(a Attributes, seed []byte) *eddsaKey {
	priv := ed25519.NewKeyFromSeed(seed)
	return &eddsaKey{
		attr: a,
		seed: bytes.Clone(seed),
		pub:  bytes.Clone(priv.Public().(ed25519.PublicKey)),
		sign: func(msg []byte) []byte { return ed25519.Sign(priv, msg) },
	}
}

func (ed448Family) generate(a Attributes, rand io.Reader) (PrivateKey, error) {
	seed := make([]byte, ed448.SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, err
	}
	return newEd448Key(a, seed), nil
}

func (ed448Family) importParts(a Attributes, parts map[byte][]byte) (PrivateKey, error) {
	return importEdwards(a, parts, ed448.SeedSize, ed448.PublicKeySize, newEd448Key)
}

func (ed448Family) unmarshal(a Attributes, b []byte) (PrivateKey, error) {
	if len(b) != ed448.SeedSize {
		return nil, fmt.Errorf("Ed448 private key of %d bytes: %w", len(b), ErrInvalidInput)
	}
	return newEd448Key(a, b), nil
}

func newEd448Key(a Attributes, seed []byte) *eddsaKey {
	priv := ed448.NewKeyFromSeed(seed)
	return &eddsaKey{
		attr: a,
		seed: bytes.Clone(seed),
		pub:  bytes.Clone(priv.Public().(ed448.PublicKey)),
		sign: func(msg []byte) []byte { return ed448.Sign(priv, msg, "") },
	}
}

// importEdwards builds an EdDSA key from 92 (the seed; GnuPG strips leading zero bytes, so a shorter value is
// left-padded) and checks 99 when present.
func importEdwards[K PrivateKey](a Attributes, parts map[byte][]byte, seedSize, pubSize int, build func(Attributes, []byte) K) (PrivateKey, error) {
	d, ok := parts[0x92]
	if !ok || len(d) == 0 {
		return nil, fmt.Errorf("ECC import needs 92 private key: %w", ErrInvalidInput)
	}
	seed, ok := fixedBigEndian(d, seedSize)
	if !ok {
		return nil, fmt.Errorf("private key of %d bytes for %v: %w", len(d), a.Curve, ErrInvalidInput)
	}
	k := build(a, seed)
	if q, ok := parts[0x99]; ok {
		native, ok := stripPrefix40(q, pubSize)
		if !ok || !bytes.Equal(native, publicPoint(k)) {
			return nil, fmt.Errorf("public key 99 does not match the private key: %w", ErrInvalidInput)
		}
	}
	return k, nil
}

// publicPoint returns the content of tag 86 in k's public DO.
func publicPoint(k PrivateKey) []byte {
	switch k := k.(type) {
	case *eddsaKey:
		return k.pub
	case *montgomeryKey:
		return k.pub
	case *weierstrassKey:
		return k.pointOnce()
	}
	return nil
}

func (k *eddsaKey) Attributes() Attributes { return k.attr }

func (k *eddsaKey) Marshal() []byte { return marshalled(k.attr, k.seed) }

func (k *eddsaKey) PublicDO() []byte { return tlv(nil, 0x86, k.pub) }

// Sign returns the EdDSA signature R||S of input, which is signed as given (GnuPG sends the hash of the message).
func (k *eddsaKey) Sign(input []byte) ([]byte, error) { return k.sign(input), nil }

// Decipher is not possible with an EdDSA key.
func (k *eddsaKey) Decipher([]byte) ([]byte, error) {
	return nil, fmt.Errorf("algo: %v cannot decipher: %w", k.attr, ErrUnsupported)
}
