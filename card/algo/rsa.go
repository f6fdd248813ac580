package algo

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
)

// rsaExponent is the public exponent of generated keys.
const rsaExponent = 65537

type rsaFamily struct{}

type rsaKey struct {
	attr Attributes
	key  *rsa.PrivateKey
}

func (rsaFamily) generate(a Attributes, rand io.Reader) (PrivateKey, error) {
	k, err := rsa.GenerateKey(rand, int(a.ModulusBits))
	if err != nil {
		return nil, err
	}
	return newRSAKey(a, k)
}

func (rsaFamily) importParts(a Attributes, parts map[byte][]byte) (PrivateKey, error) {
	get := func(tag byte) (*big.Int, error) {
		b, ok := parts[tag]
		if !ok {
			return nil, nil
		}
		if len(b) == 0 || len(b) > int(a.ModulusBits)/8+1 {
			return nil, fmt.Errorf("RSA part %02X of %d bytes: %w", tag, len(b), ErrInvalidInput)
		}
		return new(big.Int).SetBytes(b), nil
	}
	var v [8]*big.Int // indexed by tag - 0x90
	for tag := byte(0x91); tag <= 0x97; tag++ {
		x, err := get(tag)
		if err != nil {
			return nil, err
		}
		v[tag-0x90] = x
	}
	e, p, q := v[1], v[2], v[3]
	if e == nil || p == nil || q == nil {
		return nil, fmt.Errorf("RSA import needs 91 e, 92 p and 93 q: %w", ErrInvalidInput)
	}
	if e.BitLen() > int(a.ExponentBits) || e.BitLen() > 31 || e.Bit(0) == 0 || e.Cmp(big.NewInt(3)) < 0 {
		return nil, fmt.Errorf("RSA exponent of %d bits: %w", e.BitLen(), ErrInvalidInput)
	}
	half := int(a.ModulusBits) / 2
	if p.BitLen() != half || q.BitLen() != half || p.Cmp(q) == 0 {
		return nil, fmt.Errorf("RSA primes of %d and %d bits for a %d-bit key: %w", p.BitLen(), q.BitLen(), a.ModulusBits, ErrInvalidInput)
	}
	n := new(big.Int).Mul(p, q)
	if n.BitLen() != int(a.ModulusBits) {
		return nil, fmt.Errorf("RSA modulus of %d bits: %w", n.BitLen(), ErrInvalidInput)
	}
	if given := v[7]; given != nil && given.Cmp(n) != 0 {
		return nil, fmt.Errorf("RSA modulus 97 is not p*q: %w", ErrInvalidInput)
	}
	// Primality: Precompute and Validate check the arithmetic, not that p and q are prime.
	if !p.ProbablyPrime(20) || !q.ProbablyPrime(20) {
		return nil, fmt.Errorf("RSA p or q is not prime: %w", ErrInvalidInput)
	}
	one := big.NewInt(1)
	pm1, qm1 := new(big.Int).Sub(p, one), new(big.Int).Sub(q, one)
	lambda := new(big.Int).Div(new(big.Int).Mul(pm1, qm1), new(big.Int).GCD(nil, nil, pm1, qm1))
	d := new(big.Int).ModInverse(e, lambda)
	if d == nil {
		return nil, fmt.Errorf("RSA exponent not invertible: %w", ErrInvalidInput)
	}
	k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: int(e.Int64())}, D: d, Primes: []*big.Int{p, q}}
	if err := k.Validate(); err != nil {
		return nil, fmt.Errorf("RSA key: %v: %w", err, ErrInvalidInput)
	}
	k.Precompute()
	// CRT parts, when the host sends them, must agree with p and q.
	for _, c := range []struct {
		tag  byte
		want *big.Int
	}{{0x94, k.Precomputed.Qinv}, {0x95, k.Precomputed.Dp}, {0x96, k.Precomputed.Dq}} {
		if got := v[c.tag-0x90]; got != nil && c.want != nil && got.Cmp(c.want) != 0 {
			// dp and dq may be computed from phi instead of lambda; accept any value that works.
			if !crtPartWorks(c.tag, got, e, p, q) {
				return nil, fmt.Errorf("RSA CRT part %02X does not match p and q: %w", c.tag, ErrInvalidInput)
			}
		}
	}
	return newRSAKey(a, k)
}

// crtPartWorks checks a CRT value the host computed differently: dp with e*dp = 1 mod p-1, dq likewise, u with
// u*q = 1 mod p (the card spec) or u*p = 1 mod q (libgcrypt's convention). The key never uses these values: it
// recomputes them from p and q.
func crtPartWorks(tag byte, x, e, p, q *big.Int) bool {
	one := big.NewInt(1)
	t := new(big.Int)
	switch tag {
	case 0x94:
		return t.Mod(t.Mul(x, q), p).Cmp(one) == 0 || t.Mod(t.Mul(x, p), q).Cmp(one) == 0
	case 0x95:
		pm1 := new(big.Int).Sub(p, one)
		return x.Cmp(pm1) < 0 && t.Mod(t.Mul(x, e), pm1).Cmp(one) == 0
	case 0x96:
		qm1 := new(big.Int).Sub(q, one)
		return x.Cmp(qm1) < 0 && t.Mod(t.Mul(x, e), qm1).Cmp(one) == 0
	}
	return false
}

func (rsaFamily) unmarshal(a Attributes, b []byte) (PrivateKey, error) {
	k, err := x509.ParsePKCS1PrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrInvalidInput)
	}
	return newRSAKey(a, k)
}

// newRSAKey checks that k fits a (modulus size, two primes, exponent size).
func newRSAKey(a Attributes, k *rsa.PrivateKey) (*rsaKey, error) {
	switch {
	case k.N.BitLen() != int(a.ModulusBits):
		return nil, fmt.Errorf("RSA modulus of %d bits for %v: %w", k.N.BitLen(), a, ErrInvalidInput)
	case len(k.Primes) != 2:
		return nil, fmt.Errorf("RSA key with %d primes: %w", len(k.Primes), ErrInvalidInput)
	case big.NewInt(int64(k.E)).BitLen() > int(a.ExponentBits):
		return nil, fmt.Errorf("RSA exponent longer than %d bits: %w", a.ExponentBits, ErrInvalidInput)
	}
	return &rsaKey{attr: a, key: k}, nil
}

func (k *rsaKey) Attributes() Attributes { return k.attr }

func (k *rsaKey) Marshal() []byte {
	return marshalled(k.attr, x509.MarshalPKCS1PrivateKey(k.key))
}

func (k *rsaKey) PublicDO() []byte {
	size := k.key.Size()
	out := tlv(make([]byte, 0, size+16), 0x81, k.key.N.FillBytes(make([]byte, size)))
	return tlv(out, 0x82, big.NewInt(int64(k.key.E)).Bytes())
}

// Sign returns the PKCS#1 v1.5 (type 1) signature of input, which must fit the padding (at most k-11 bytes).
func (k *rsaKey) Sign(input []byte) ([]byte, error) {
	if len(input) == 0 || len(input) > k.key.Size()-11 {
		return nil, fmt.Errorf("algo: RSA sign input of %d bytes: %w", len(input), ErrInvalidInput)
	}
	sig, err := rsa.SignPKCS1v15(nil, k.key, crypto.Hash(0), input)
	if err != nil {
		return nil, fmt.Errorf("algo: RSA sign: %w", err)
	}
	return sig, nil
}

// Decipher removes PKCS#1 v1.5 (type 2) encryption.
func (k *rsaKey) Decipher(input []byte) ([]byte, error) {
	ct, ok := fixedBigEndian(input, k.key.Size())
	if !ok || len(input) == 0 {
		return nil, fmt.Errorf("algo: RSA ciphertext of %d bytes: %w", len(input), ErrInvalidInput)
	}
	pt, err := rsa.DecryptPKCS1v15(nil, k.key, ct)
	if err != nil {
		return nil, fmt.Errorf("algo: RSA decipher: %w", ErrInvalidInput)
	}
	return pt, nil
}
