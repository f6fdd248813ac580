// Package algo holds the OpenPGP card's asymmetric algorithms (OpenPGP card 3.4.1): algorithm attributes
// (DOs C1–C3 and FA, §4.4.3.10), key generation, key import from an Extended Header List (§4.4.3.12), the public
// key template (DO 7F49, §7.2.14) and the private-key operations behind PSO:COMPUTE DIGITAL SIGNATURE,
// PSO:DECIPHER and INTERNAL AUTHENTICATE.
//
// It is pure computation: no I/O, no PINs, no storage, no APDUs, no logging. The card (package card) decides who
// may use a key and maps the errors to status words (ErrUnsupported, ErrInvalidInput); the store seals the bytes
// that Marshal returns.
//
// # Algorithms
//
//	attributes (String)        ID       Sign                          Decipher
//	rsa2048, rsa3072, rsa4096  01       PKCS#1 v1.5 type 1, no hash   PKCS#1 v1.5 type 2
//	nistp256/384/521           13 / 12  ECDSA r||s                    ECDH, X coordinate
//	brainpoolP256/384/512r1    13 / 12  ECDSA r||s                    ECDH, X coordinate
//	secp256k1                  13 / 12  ECDSA r||s (RFC 6979, low s)  ECDH, X coordinate
//	ed25519, ed448             16       EdDSA (RFC 8032, pure)        —
//	cv25519, cv448             12       —                             X25519 / X448 (RFC 7748)
//
// Every algorithm can be generated and imported. Generated RSA keys have e = 65537. An ECDSA and an ECDH key on
// the same NIST, brainpool or secp256k1 curve are the same mathematical object, so either can do both operations (which
// MANAGE SECURITY ENVIRONMENT's DEC/AUT swap needs); the card decides which it allows.
//
// # Encodings that hosts disagree on
//
//   - Public keys (tag 86 of 7F49) are 04||X||Y for NIST, brainpool and secp256k1 curves and the RFC 7748/8032 native
//     encoding for the others, without GnuPG's 0x40 prefix, as Gnuk returns them: GnuPG adds the prefix itself.
//     Import (tag 99) and Decipher accept the native form with or without the prefix.
//   - The cv25519 secret (import tag 92) is big-endian: GnuPG keeps it as an OpenPGP MPI, the byte reversal of the
//     RFC 7748 scalar (checked in the tests against keys made by gpg-agent 2.2.40 and against RFC 7748's vectors).
//     The X448 secret is taken in the native little-endian form, as libgcrypt's X448 ("safecurve") keys hold it;
//     no GnuPG on this machine could confirm that (2.2 has no X448). Ed25519 and Ed448 secrets are the RFC 8032
//     seeds. GnuPG strips leading zero bytes of every secret, so all are left-padded to full size.
//   - ECDH results are the bare X coordinate or the X25519/X448 output; GnuPG adds its own 0x41/0x40 prefix.
//
// # Marshalled form
//
// Marshal returns 01 (format version) | length | algorithm tag (ID, then modulus size or curve OID) | key, where the
// key is PKCS#1 DER for RSA, the big-endian scalar for NIST, brainpool and secp256k1, the native scalar for X25519 and
// X448 and the seed for EdDSA. Unmarshal refuses bytes made for another algorithm.
//
// # Libraries
//
// The standard library first, because it is maintained with the toolchain, constant time where it matters and
// reviewed: crypto/rsa (crypto/x509's PKCS#1 for the marshalled form; DecryptPKCS1v15 is deprecated for new
// protocols, but OpenPGP's RSA encryption is PKCS#1 v1.5), crypto/ecdsa and crypto/ecdh for the NIST curves,
// crypto/ecdh for X25519, crypto/ed25519.
//
// Brainpool curves are in neither the standard library nor golang.org/x/crypto.
// github.com/ProtonMail/go-crypto/brainpool (the OpenPGP implementation Go programs use, whose brainpool support
// GnuPG-compatible tools rely on) gives them as elliptic.Curve values; crypto/ecdsa still signs and verifies
// with any elliptic.Curve through its generic big.Int path, and ECDH is a ScalarMult after an on-curve check.
// That arithmetic is not constant time and is 30 to 50 times slower than P-256: brainpool keys are offered for
// compatibility; prefer the NIST curves or Curve25519.
//
// secp256k1 (OID 1.3.132.0.10; Gnuk, pico-openpgp and canokey offer it) is in neither either. crypto/ecdsa's generic
// path would still take ProtonMail/go-crypto's bitcurves, the one secp256k1 elliptic.Curve already in go.mod, but
// bitcurves is big.Int double-and-add (variable time, 2.7 ms a signature here) and returns nil coordinates for the
// point at infinity, on which its own Add panics (crypto/ecdsa.Verify over it panics for an all-zero hash). The card
// uses github.com/decred/dcrd/dcrec/secp256k1/v4 instead (v4.4.1, ISC, pure Go, pulls in no other package), the curve
// library under btcd's btcec and go-ethereum's non-cgo build: field and scalar arithmetic in constant time, ECDSA with
// RFC 6979 nonces (a signature is a function of key and hash, so the tests compare against published signatures) and s
// normalised to the low half (BIP 62), which every ECDSA verifier accepts. Its point multiplications are not constant
// time (decred names them NonConst); measured on this machine a signature takes 65 µs and an ECDH 0.5 ms, against 2.7
// and 2.8 ms with bitcurves. Prefer the NIST curves or Curve25519 where the choice is free. The tests check it against
// other arithmetic: crypto/ecdsa's verifier and ScalarMult over bitcurves, and published vectors.
//
// Ed448 and X448 are in neither either. github.com/cloudflare/circl (sign/ed448, dh/x448), which
// ProtonMail/go-crypto itself uses for them, provides both, in constant time.
//
// No other cryptographic dependency is used, and everything builds for 32-bit ARM (the Pi Zero).
package algo
