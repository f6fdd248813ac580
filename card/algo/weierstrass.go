package algo

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"sync"

	"github.com/ProtonMail/go-crypto/brainpool"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// weierstrassFamily holds the short-Weierstrass curves: NIST P-256, P-384, P-521 (crypto/ecdsa and crypto/ecdh,
// constant time), brainpool P256r1, P384r1, P512r1 (ProtonMail/go-crypto/brainpool through crypto/ecdsa's
// generic path and elliptic.Curve.ScalarMult) and secp256k1 (decred's secp256k1 and its ecdsa package; see
// secp256k1.go).
type weierstrassFamily struct{}

// weierstrassCurves are the curves of the family, in the order FA lists them.
var weierstrassCurves = []Curve{CurveP256, CurveP384, CurveP521, CurveBrainpoolP256r1, CurveBrainpoolP384r1,
	CurveBrainpoolP512r1, CurveSecp256k1}

// weierstrassCurve returns the curve for c, and its crypto/ecdh counterpart for the NIST curves (nil for
// brainpool and secp256k1). For secp256k1 the elliptic.Curve gives only the parameters; the key operations use
// decred's own types.
func weierstrassCurve(c Curve) (elliptic.Curve, ecdh.Curve) {
	switch c {
	case CurveP256:
		return elliptic.P256(), ecdh.P256()
	case CurveP384:
		return elliptic.P384(), ecdh.P384()
	case CurveP521:
		return elliptic.P521(), ecdh.P521()
	case CurveBrainpoolP256r1:
		return brainpool.P256r1(), nil
	case CurveBrainpoolP384r1:
		return brainpool.P384r1(), nil
	case CurveBrainpoolP512r1:
		return brainpool.P512r1(), nil
	case CurveSecp256k1:
		return secp256k1.S256(), nil
	}
	return nil, nil
}

type weierstrassKey struct {
	attr Attributes
	size int    // bytes of a field element (and of the order)
	d    []byte // private scalar, big-endian, size bytes

	// NIST curves: ecdh is made at once (it validates d and gives the public point), ecdsa when first needed.
	ecdh      *ecdh.PrivateKey
	ecdsaOnce func() (*ecdsa.PrivateKey, error)
	pointOnce func() []byte         // 04||X||Y, computed when first needed (one scalar multiplication)
	brainpool elliptic.Curve        // brainpool curves only
	k1        *secp256k1.PrivateKey // secp256k1 only
}

func (weierstrassFamily) generate(a Attributes, rnd io.Reader) (PrivateKey, error) {
	if a.Curve == CurveSecp256k1 {
		return generateSecp256k1(a, rnd)
	}
	curve, _ := weierstrassCurve(a.Curve)
	k, err := ecdsa.GenerateKey(curve, rnd)
	if err != nil {
		return nil, err
	}
	return newWeierstrassKey(a, k.D.Bytes())
}

func (weierstrassFamily) importParts(a Attributes, parts map[byte][]byte) (PrivateKey, error) {
	d, ok := parts[0x92]
	if !ok {
		return nil, fmt.Errorf("ECC import needs 92 private key: %w", ErrInvalidInput)
	}
	k, err := newWeierstrassKey(a, d)
	if err != nil {
		return nil, err
	}
	if q, ok := parts[0x99]; ok && !equalBytes(q, k.pointOnce()) {
		return nil, fmt.Errorf("public key 99 does not match the private key: %w", ErrInvalidInput)
	}
	return k, nil
}

func (weierstrassFamily) unmarshal(a Attributes, b []byte) (PrivateKey, error) {
	curve, _ := weierstrassCurve(a.Curve)
	if len(b) != (curve.Params().N.BitLen()+7)/8 {
		return nil, fmt.Errorf("private key of %d bytes: %w", len(b), ErrInvalidInput)
	}
	return newWeierstrassKey(a, b)
}

// newWeierstrassKey builds a key from a big-endian scalar d, which must be in [1, n-1].
func newWeierstrassKey(a Attributes, d []byte) (*weierstrassKey, error) {
	curve, ecdhCurve := weierstrassCurve(a.Curve)
	params := curve.Params()
	size := (params.N.BitLen() + 7) / 8
	scalar, ok := fixedBigEndian(d, size)
	if !ok {
		return nil, fmt.Errorf("private key of %d bytes for %v: %w", len(d), a.Curve, ErrInvalidInput)
	}
	di := new(big.Int).SetBytes(scalar)
	if di.Sign() == 0 || di.Cmp(params.N) >= 0 {
		return nil, fmt.Errorf("private key out of range for %v: %w", a.Curve, ErrInvalidInput)
	}
	k := &weierstrassKey{attr: a, size: size, d: scalar}
	if a.Curve == CurveSecp256k1 {
		return k.withSecp256k1(), nil
	}
	if ecdhCurve != nil {
		var err error
		if k.ecdh, err = ecdhCurve.NewPrivateKey(scalar); err != nil {
			return nil, fmt.Errorf("%v: %w", err, ErrInvalidInput)
		}
		point := k.ecdh.PublicKey().Bytes()
		k.pointOnce = func() []byte { return point }
		k.ecdsaOnce = sync.OnceValues(func() (*ecdsa.PrivateKey, error) { return ecdsa.ParseRawPrivateKey(curve, scalar) })
		return k, nil
	}
	k.brainpool = curve
	k.pointOnce = sync.OnceValue(func() []byte {
		x, y := curve.ScalarBaseMult(scalar)
		return elliptic.Marshal(curve, x, y) //nolint:staticcheck // brainpool has no crypto/ecdh counterpart
	})
	// crypto/ecdsa's generic signer for custom curves uses only D and the curve, not the public point.
	k.ecdsaOnce = func() (*ecdsa.PrivateKey, error) {
		return &ecdsa.PrivateKey{PublicKey: ecdsa.PublicKey{Curve: curve}, D: di}, nil
	}
	return k, nil
}

func (k *weierstrassKey) Attributes() Attributes { return k.attr }

func (k *weierstrassKey) Marshal() []byte { return marshalled(k.attr, k.d) }

func (k *weierstrassKey) PublicDO() []byte { return tlv(nil, 0x86, k.pointOnce()) }

// maxHashLen is the longest hash Sign accepts (SHA-512).
const maxHashLen = 64

// Sign returns the ECDSA signature r||s of the hash input, each half padded to the field size. A hash longer than
// the order is truncated as FIPS 186-4 says. Nonces are random (crypto/ecdsa) except on secp256k1, where they are
// RFC 6979 deterministic and s is the low one of s and n-s (see signSecp256k1).
func (k *weierstrassKey) Sign(input []byte) ([]byte, error) {
	if len(input) == 0 || len(input) > maxHashLen {
		return nil, fmt.Errorf("algo: ECDSA hash of %d bytes: %w", len(input), ErrInvalidInput)
	}
	if k.k1 != nil {
		return k.signSecp256k1(input), nil
	}
	priv, err := k.ecdsaOnce()
	if err != nil {
		return nil, fmt.Errorf("algo: ECDSA key: %w", err)
	}
	r, s, err := ecdsa.Sign(rand.Reader, priv, input)
	if err != nil {
		return nil, fmt.Errorf("algo: ECDSA sign: %w", err)
	}
	sig := make([]byte, 2*k.size)
	r.FillBytes(sig[:k.size])
	s.FillBytes(sig[k.size:])
	return sig, nil
}

// Decipher returns the X coordinate of d·P for the uncompressed point P = 04||X||Y.
func (k *weierstrassKey) Decipher(input []byte) ([]byte, error) {
	if len(input) != 1+2*k.size || input[0] != 0x04 {
		return nil, fmt.Errorf("algo: ECDH point of %d bytes for %v: %w", len(input), k.attr.Curve, ErrInvalidInput)
	}
	if k.k1 != nil {
		return k.decipherSecp256k1(input)
	}
	if k.ecdh != nil {
		pub, err := k.ecdh.Curve().NewPublicKey(input)
		if err != nil {
			return nil, fmt.Errorf("algo: ECDH point: %v: %w", err, ErrInvalidInput)
		}
		secret, err := k.ecdh.ECDH(pub)
		if err != nil {
			return nil, fmt.Errorf("algo: ECDH: %v: %w", err, ErrInvalidInput)
		}
		return secret, nil
	}
	curve := k.brainpool
	x, y := new(big.Int).SetBytes(input[1:1+k.size]), new(big.Int).SetBytes(input[1+k.size:])
	p := curve.Params().P
	if x.Cmp(p) >= 0 || y.Cmp(p) >= 0 || !curve.IsOnCurve(x, y) {
		return nil, fmt.Errorf("algo: ECDH point not on %v: %w", k.attr.Curve, ErrInvalidInput)
	}
	// Brainpool curves have cofactor 1: every point on the curve but infinity (not encodable here) has order n.
	sx, sy := curve.ScalarMult(x, y, k.d)
	if sx.Sign() == 0 && sy.Sign() == 0 {
		return nil, fmt.Errorf("algo: ECDH result is the point at infinity: %w", ErrInvalidInput)
	}
	return sx.FillBytes(make([]byte, k.size)), nil
}

func equalBytes(a, b []byte) bool { return string(a) == string(b) }
