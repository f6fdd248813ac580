package algo

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// Errors the card maps to status words.
var (
	// ErrUnsupported reports an algorithm, curve, size or operation this card does not offer (the card answers
	// 6A80 or 6A81 for attributes, 6A80 or 6985 for operations).
	ErrUnsupported = errors.New("unsupported algorithm or operation")
	// ErrInvalidInput reports malformed or inconsistent key material, a point not on the curve, a ciphertext
	// that does not decrypt or data of the wrong length (the card answers 6A80).
	ErrInvalidInput = errors.New("invalid input")
)

// PrivateKey is a card key: generated, imported, or restored from its marshalled form.
//
// Implementations are immutable and safe for concurrent use.
type PrivateKey interface {
	// Attributes returns the attributes the key was made for.
	Attributes() Attributes

	// Marshal returns canonical bytes to be sealed by the store (never logged). Unmarshal(Attributes(), b)
	// returns an equal key.
	Marshal() []byte

	// PublicDO returns the content of DO 7F49 (public key template, §7.2.14) without the 7F49 tag itself:
	// RSA 81 n, 82 e; ECC 86 point. The point is 04||X||Y for NIST, brainpool and secp256k1 curves and the native
	// encoding (RFC 7748, RFC 8032) for the others: 32 bytes for Ed25519 and cv25519, 57 for Ed448, 56 for X448,
	// without GnuPG's 0x40 prefix (GnuPG adds it itself when it reads the key, as it does for Gnuk).
	PublicDO() []byte

	// Sign implements PSO:COMPUTE DIGITAL SIGNATURE and INTERNAL AUTHENTICATE: RSA = PKCS#1 v1.5 (type 1)
	// signature of the given DigestInfo or raw data, no hashing; ECDSA = r||s, each padded to the field size,
	// over the given hash; EdDSA = signature of the data as given (R||S). An ECDH key on a NIST, brainpool or
	// secp256k1 curve signs with ECDSA (same key, so that MANAGE SECURITY ENVIRONMENT can swap DEC and AUT);
	// cv25519 and X448 keys cannot sign (ErrUnsupported).
	Sign(input []byte) ([]byte, error)

	// Decipher implements PSO:DECIPHER after the card removed the outer template: RSA = PKCS#1 v1.5 (type 2)
	// decryption of the ciphertext (the leading 00 padding indicator already stripped; a shorter ciphertext is
	// taken as an integer and left-padded); ECDH = shared secret for the ephemeral public point (X coordinate
	// for NIST, brainpool and secp256k1, given as 04||X||Y; the 32-byte X25519 output for cv25519, which accepts
	// 32 bytes with or without the 0x40 prefix; the 56-byte X448 output, likewise). An ECDSA key on a NIST,
	// brainpool or secp256k1 curve deciphers with ECDH; EdDSA keys cannot (ErrUnsupported).
	Decipher(input []byte) ([]byte, error)
}

// Generate makes a new key for a, drawing randomness from rand. Some standard-library generators use their own
// secure source and ignore rand (crypto/rsa since Go 1.24, for one).
func Generate(a Attributes, rand io.Reader) (PrivateKey, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	f := familyOf(a)
	k, err := f.generate(a, rand)
	if err != nil {
		return nil, fmt.Errorf("algo: generate %v: %w", a, err)
	}
	return k, nil
}

// Import builds a key from the parts of an Extended Header List (§4.4.3.12), keyed by tag: for RSA 91 e, 92 p,
// 93 q (required), 94 u (1/q mod p), 95 dp, 96 dq, 97 n (optional; checked against e, p, q when present,
// whatever a.ImportFormat says); for ECC 92 private key (required) and 99 public key (optional; checked against
// the private key when present, whether or not a.WithPublicKey is set).
//
// Integers are big-endian with or without leading zero bytes. The private key 92 is the big-endian scalar for
// NIST, brainpool and secp256k1 curves and for cv25519 (GnuPG stores and sends the cv25519 secret as an MPI, the
// byte reversal of the RFC 7748 native form); it is the native secret for Ed25519 and Ed448 (the RFC 8032 seed) and
// for X448 (RFC 7748, little-endian, as libgcrypt's X448 keys hold it). The public key 99 may carry GnuPG's 0x40
// prefix for Ed25519, Ed448, cv25519 and X448.
func Import(a Attributes, parts map[byte][]byte) (PrivateKey, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	k, err := familyOf(a).importParts(a, parts)
	if err != nil {
		return nil, fmt.Errorf("algo: import %v: %w", a, err)
	}
	return k, nil
}

// Unmarshal restores a key from Marshal's output. The attributes must name the algorithm the key was made for
// (same ID, modulus size or curve; their WithPublicKey, ExponentBits and ImportFormat fields do not matter),
// otherwise Unmarshal fails with ErrInvalidInput.
func Unmarshal(a Attributes, b []byte) (PrivateKey, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	body, ok := unwrapMarshalled(a, b)
	if !ok {
		return nil, fmt.Errorf("algo: unmarshal %v: not a marshalled %v key: %w", a, a, ErrInvalidInput)
	}
	k, err := familyOf(a).unmarshal(a, body)
	if err != nil {
		return nil, fmt.Errorf("algo: unmarshal %v: %w", a, err)
	}
	return k, nil
}

// marshalVersion is the first byte of every Marshal output, so the format can change later.
const marshalVersion = 1

// algorithmTag returns the bytes that name a's algorithm in the marshalled form: ID, then the modulus size or
// the curve OID.
func algorithmTag(a Attributes) []byte {
	if a.ID == IDRSA {
		return []byte{byte(IDRSA), byte(a.ModulusBits >> 8), byte(a.ModulusBits)}
	}
	return append([]byte{byte(a.ID)}, a.Curve.OID()...)
}

// marshalled returns the Marshal form of a key: version | length of the algorithm tag | algorithm tag | key.
func marshalled(a Attributes, key []byte) []byte {
	tag := algorithmTag(a)
	out := make([]byte, 0, 2+len(tag)+len(key))
	out = append(out, marshalVersion, byte(len(tag)))
	out = append(out, tag...)
	return append(out, key...)
}

// unwrapMarshalled checks the header written by marshalled and returns the key bytes.
func unwrapMarshalled(a Attributes, b []byte) ([]byte, bool) {
	tag := algorithmTag(a)
	if len(b) < 2+len(tag) || b[0] != marshalVersion || int(b[1]) != len(tag) || !bytes.Equal(b[2:2+len(tag)], tag) {
		return nil, false
	}
	return b[2+len(tag):], true
}

// family implements one group of algorithms.
type family interface {
	generate(a Attributes, rand io.Reader) (PrivateKey, error)
	importParts(a Attributes, parts map[byte][]byte) (PrivateKey, error)
	unmarshal(a Attributes, b []byte) (PrivateKey, error) // b without the version byte
}

// familyOf returns the implementation for valid attributes.
func familyOf(a Attributes) family {
	switch {
	case a.ID == IDRSA:
		return rsaFamily{}
	case a.Curve == CurveEd25519:
		return ed25519Family{}
	case a.Curve == CurveEd448:
		return ed448Family{}
	case a.Curve == CurveCurve25519:
		return x25519Family{}
	case a.Curve == CurveX448:
		return x448Family{}
	}
	return weierstrassFamily{}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
