package algo

import (
	"bytes"
	"crypto/ecdh"
	"fmt"
	"io"

	"github.com/cloudflare/circl/dh/x448"
)

// x25519Family is ECDH on Curve25519, cv25519 in OpenPGP (crypto/ecdh X25519, RFC 7748).
type x25519Family struct{}

// x448Family is ECDH on Curve448 (circl dh/x448, RFC 7748).
type x448Family struct{}

// montgomeryKey is an X25519 or X448 key; scalar and pub are in the RFC 7748 native (little-endian) form.
type montgomeryKey struct {
	attr   Attributes
	scalar []byte
	pub    []byte
	shared func(peer []byte) ([]byte, error) // peer in native form
}

func (x25519Family) generate(a Attributes, rand io.Reader) (PrivateKey, error) {
	return generateMontgomery(a, rand, 32, newX25519Key)
}

// importParts takes 92 as GnuPG sends it for cv25519: the big-endian MPI, i.e. the native scalar reversed.
func (x25519Family) importParts(a Attributes, parts map[byte][]byte) (PrivateKey, error) {
	return importMontgomery(a, parts, 32, true, newX25519Key)
}

func (x25519Family) unmarshal(a Attributes, b []byte) (PrivateKey, error) {
	if len(b) != 32 {
		return nil, fmt.Errorf("X25519 private key of %d bytes: %w", len(b), ErrInvalidInput)
	}
	return newX25519Key(a, b)
}

func newX25519Key(a Attributes, scalar []byte) (*montgomeryKey, error) {
	priv, err := ecdh.X25519().NewPrivateKey(scalar)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrInvalidInput)
	}
	return &montgomeryKey{
		attr:   a,
		scalar: bytes.Clone(scalar),
		pub:    priv.PublicKey().Bytes(),
		shared: func(peer []byte) ([]byte, error) {
			pub, err := ecdh.X25519().NewPublicKey(peer)
			if err != nil {
				return nil, err
			}
			return priv.ECDH(pub) // fails on low-order points (all-zero output)
		},
	}, nil
}

func (x448Family) generate(a Attributes, rand io.Reader) (PrivateKey, error) {
	return generateMontgomery(a, rand, x448.Size, newX448Key)
}

// importParts takes 92 in the native form (RFC 7748, little-endian), as libgcrypt holds X448 secrets.
func (x448Family) importParts(a Attributes, parts map[byte][]byte) (PrivateKey, error) {
	return importMontgomery(a, parts, x448.Size, false, newX448Key)
}

func (x448Family) unmarshal(a Attributes, b []byte) (PrivateKey, error) {
	if len(b) != x448.Size {
		return nil, fmt.Errorf("X448 private key of %d bytes: %w", len(b), ErrInvalidInput)
	}
	return newX448Key(a, b)
}

func newX448Key(a Attributes, scalar []byte) (*montgomeryKey, error) {
	var secret, pub x448.Key
	copy(secret[:], scalar)
	x448.KeyGen(&pub, &secret)
	return &montgomeryKey{
		attr:   a,
		scalar: bytes.Clone(scalar),
		pub:    bytes.Clone(pub[:]),
		shared: func(peer []byte) ([]byte, error) {
			var p, s x448.Key
			copy(p[:], peer)
			if !x448.Shared(&s, &secret, &p) {
				return nil, fmt.Errorf("low-order point")
			}
			return s[:], nil
		},
	}, nil
}

func generateMontgomery(a Attributes, rand io.Reader, size int, build func(Attributes, []byte) (*montgomeryKey, error)) (PrivateKey, error) {
	scalar := make([]byte, size)
	if _, err := io.ReadFull(rand, scalar); err != nil {
		return nil, err
	}
	return build(a, scalar)
}

// importMontgomery builds a key from 92 (GnuPG strips leading zero bytes, so a shorter value is left-padded;
// bigEndian says the value is the native scalar reversed) and checks 99 when present (native, with or without
// the 0x40 prefix).
func importMontgomery(a Attributes, parts map[byte][]byte, size int, bigEndian bool, build func(Attributes, []byte) (*montgomeryKey, error)) (PrivateKey, error) {
	d, ok := parts[0x92]
	if !ok || len(d) == 0 {
		return nil, fmt.Errorf("ECC import needs 92 private key: %w", ErrInvalidInput)
	}
	scalar, ok := fixedBigEndian(d, size)
	if !ok {
		return nil, fmt.Errorf("private key of %d bytes for %v: %w", len(d), a.Curve, ErrInvalidInput)
	}
	if bigEndian {
		scalar = reversed(scalar)
	}
	k, err := build(a, scalar)
	if err != nil {
		return nil, err
	}
	if q, ok := parts[0x99]; ok {
		native, ok := stripPrefix40(q, size)
		if !ok || !bytes.Equal(native, k.pub) {
			return nil, fmt.Errorf("public key 99 does not match the private key: %w", ErrInvalidInput)
		}
	}
	return k, nil
}

func (k *montgomeryKey) Attributes() Attributes { return k.attr }

func (k *montgomeryKey) Marshal() []byte { return marshalled(k.attr, k.scalar) }

func (k *montgomeryKey) PublicDO() []byte { return tlv(nil, 0x86, k.pub) }

// Sign is not possible with an X25519 or X448 key.
func (k *montgomeryKey) Sign([]byte) ([]byte, error) {
	return nil, fmt.Errorf("algo: %v cannot sign: %w", k.attr, ErrUnsupported)
}

// Decipher returns the X25519/X448 shared secret for the peer's public key, given natively or with the 0x40
// prefix.
func (k *montgomeryKey) Decipher(input []byte) ([]byte, error) {
	peer, ok := stripPrefix40(input, len(k.pub))
	if !ok {
		return nil, fmt.Errorf("algo: %v point of %d bytes: %w", k.attr, len(input), ErrInvalidInput)
	}
	s, err := k.shared(peer)
	if err != nil {
		return nil, fmt.Errorf("algo: %v: %v: %w", k.attr, err, ErrInvalidInput)
	}
	return s, nil
}
