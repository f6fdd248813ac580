package algo

import (
	"fmt"
	"io"
	"sync"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// secp256k1 (SEC 2 §2.4.1, OID 1.3.132.0.10) is a weierstrassKey whose operations go through
// github.com/decred/dcrd/dcrec/secp256k1/v4 (see the package doc for why that library). The curve has cofactor 1,
// so every point on it but infinity, which 04||X||Y cannot encode, has the prime order n.

// secp256k1Size is the size of a field element, of the order and of each signature half.
const secp256k1Size = 32

// generateSecp256k1 draws a scalar in [1, n-1] from rnd by rejection sampling.
func generateSecp256k1(a Attributes, rnd io.Reader) (PrivateKey, error) {
	priv, err := secp256k1.GeneratePrivateKeyFromRand(rnd)
	if err != nil {
		return nil, err
	}
	d := priv.Key.Bytes()
	priv.Zero()
	return newWeierstrassKey(a, d[:])
}

// withSecp256k1 completes k, whose d newWeierstrassKey has checked to be in [1, n-1], for secp256k1.
func (k *weierstrassKey) withSecp256k1() *weierstrassKey {
	k.k1 = secp256k1.PrivKeyFromBytes(k.d) // d < n: no reduction happens
	priv := k.k1
	k.pointOnce = sync.OnceValue(func() []byte { return priv.PubKey().SerializeUncompressed() })
	return k
}

// signSecp256k1 returns r||s over the hash input (1 to 64 bytes, checked by Sign). A hash longer than 32 bytes is
// truncated to its first 32 (FIPS 186-4 §6.4, as for the other curves); a shorter one is taken as an integer.
//
// The nonce is RFC 6979's (HMAC-SHA256 over the key and the truncated hash), and s is normalised to the lower of
// s and n-s (BIP 62). Both are valid ECDSA signatures for any verifier; libgcrypt and OpenSSL accept either.
func (k *weierstrassKey) signSecp256k1(input []byte) []byte {
	if len(input) > secp256k1Size {
		input = input[:secp256k1Size]
	}
	sig := ecdsa.Sign(k.k1, input)
	r, s := sig.R(), sig.S()
	out := make([]byte, 2*secp256k1Size)
	r.PutBytesUnchecked(out[:secp256k1Size])
	s.PutBytesUnchecked(out[secp256k1Size:])
	return out
}

// decipherSecp256k1 returns the X coordinate of d·P for P = 04||X||Y. secp256k1.ParsePubKey rejects coordinates
// of p or more and points off the curve; the hybrid forms 06 and 07 it would accept are refused before it.
func (k *weierstrassKey) decipherSecp256k1(input []byte) ([]byte, error) {
	if len(input) != 1+2*secp256k1Size || input[0] != 0x04 {
		return nil, fmt.Errorf("algo: ECDH point of %d bytes for %v: %w", len(input), k.attr.Curve, ErrInvalidInput)
	}
	pub, err := secp256k1.ParsePubKey(input)
	if err != nil {
		return nil, fmt.Errorf("algo: ECDH point: %v: %w", err, ErrInvalidInput)
	}
	return secp256k1.GenerateSharedSecret(k.k1, pub), nil
}
