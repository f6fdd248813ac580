// Package algo holds the OpenPGP card's asymmetric algorithms (OpenPGP card 3.4.1): algorithm attributes
// (DOs C1–C3 and FA), key generation, key import from an Extended Header List, and the private-key operations
// behind PSO:COMPUTE DIGITAL SIGNATURE, PSO:DECIPHER and INTERNAL AUTHENTICATE.
//
// It is pure computation: no I/O, no PINs, no storage, no APDUs, no logging. The card (package card) decides who
// may use a key and maps the errors to status words; the store seals the bytes that Marshal returns.
//
// # Algorithms
//
//	attributes                ID        generate  import  Sign                      Decipher
//	rsa2048, rsa3072, rsa4096 01        yes       yes     PKCS#1 v1.5 type 1        PKCS#1 v1.5 type 2
//	nistp256/384/521          13 / 12   yes       yes     ECDSA r||s                ECDH, X coordinate
//	brainpoolP256/384/512r1   13 / 12   yes       yes     ECDSA r||s                ECDH, X coordinate
//	ed25519, ed448            16        yes       yes     EdDSA (RFC 8032, pure)    —
//	cv25519, cv448 (X448)     12        yes       yes     —                         X25519 / X448 (RFC 7748)
//
// # Libraries
//
// The standard library first, because it is maintained with the toolchain, constant time where it matters and
// reviewed: crypto/rsa (and crypto/x509's PKCS#1 encoding as the marshalled form of RSA keys), crypto/ecdsa
// and crypto/ecdh for the NIST curves, crypto/ecdh for X25519, crypto/ed25519.
//
// Brainpool curves are not in the standard library. github.com/ProtonMail/go-crypto/brainpool (already a
// dependency through GnuPG-compatible OpenPGP in Go, and the brainpool implementation GopenPGP users run) gives
// them as elliptic.Curve values; crypto/ecdsa still signs with any elliptic.Curve (its generic, big.Int path),
// and ECDH is a checked ScalarMult. That arithmetic is not constant time: brainpool keys are offered for
// compatibility, and the package recommends the NIST curves or Curve25519 where timing side channels matter.
//
// Ed448 and X448 are in neither the standard library nor golang.org/x/crypto. github.com/cloudflare/circl
// (sign/ed448, dh/x448), which ProtonMail/go-crypto itself uses for them, provides both in constant time.
//
// No other cryptographic dependency is used.
package algo
