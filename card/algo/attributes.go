package algo

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Role is the key slot an attribute or key is meant for.
type Role int

// The three key slots of the OpenPGP card (§4.4.3.10: C1, C2, C3).
const (
	RoleSign    Role = iota + 1 // C1: PSO:COMPUTE DIGITAL SIGNATURE
	RoleDecrypt                 // C2: PSO:DECIPHER
	RoleAuth                    // C3: INTERNAL AUTHENTICATE
)

// String returns "sign", "decrypt" or "auth".
func (r Role) String() string {
	switch r {
	case RoleSign:
		return "sign"
	case RoleDecrypt:
		return "decrypt"
	case RoleAuth:
		return "auth"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// ID is the algorithm ID, the first byte of an algorithm-attributes DO (§4.4.3.10).
type ID byte

// Algorithm IDs (§4.4.3.10; the ECC values are the OpenPGP public-key algorithm numbers of RFC 4880/6637/8032).
const (
	IDRSA   ID = 0x01 // RSA
	IDECDH  ID = 0x12 // ECDH (decryption key only)
	IDECDSA ID = 0x13 // ECDSA (signature and authentication keys)
	IDEdDSA ID = 0x16 // EdDSA (signature and authentication keys)
)

// RSAImportFormat is the last byte of an RSA attribute (§4.4.3.10): which parts the host sends on key import.
type RSAImportFormat byte

// RSA import formats (§4.4.3.10).
const (
	RSAStandard         RSAImportFormat = 0x00 // e, p, q
	RSAStandardModulus  RSAImportFormat = 0x01 // e, p, q, n
	RSACRT              RSAImportFormat = 0x02 // e, p, q, u, dp, dq
	RSACRTModulus       RSAImportFormat = 0x03 // e, p, q, u, dp, dq, n
	rsaImportFormatLast                 = RSACRTModulus
)

// Curve is an elliptic curve the card supports, named by its OID in the attributes.
type Curve int

// Supported curves. CurveNone is the zero value (RSA attributes).
const (
	CurveNone Curve = iota
	CurveP256
	CurveP384
	CurveP521
	CurveBrainpoolP256r1
	CurveBrainpoolP384r1
	CurveBrainpoolP512r1
	CurveEd25519
	CurveCurve25519 // cv25519: X25519 for ECDH
	CurveEd448
	CurveX448
	CurveSecp256k1 // the Koblitz curve of SEC 2 (Bitcoin's), OID 1.3.132.0.10
	curveCount
)

// curveInfo describes a curve: its OID (without the 06 tag and length), its GnuPG name and the key IDs it may be
// used with.
type curveInfo struct {
	oid  []byte
	name string
	ids  []ID
}

var curves = [curveCount]curveInfo{
	CurveP256:            {mustHex("2A8648CE3D030107"), "nistp256", []ID{IDECDSA, IDECDH}},
	CurveP384:            {mustHex("2B81040022"), "nistp384", []ID{IDECDSA, IDECDH}},
	CurveP521:            {mustHex("2B81040023"), "nistp521", []ID{IDECDSA, IDECDH}},
	CurveBrainpoolP256r1: {mustHex("2B2403030208010107"), "brainpoolP256r1", []ID{IDECDSA, IDECDH}},
	CurveBrainpoolP384r1: {mustHex("2B240303020801010B"), "brainpoolP384r1", []ID{IDECDSA, IDECDH}},
	CurveBrainpoolP512r1: {mustHex("2B240303020801010D"), "brainpoolP512r1", []ID{IDECDSA, IDECDH}},
	CurveEd25519:         {mustHex("2B06010401DA470F01"), "ed25519", []ID{IDEdDSA}},
	CurveCurve25519:      {mustHex("2B060104019755010501"), "cv25519", []ID{IDECDH}},
	CurveEd448:           {mustHex("2B6571"), "ed448", []ID{IDEdDSA}},
	CurveX448:            {mustHex("2B656F"), "cv448", []ID{IDECDH}},
	CurveSecp256k1:       {mustHex("2B8104000A"), "secp256k1", []ID{IDECDSA, IDECDH}},
}

// OID returns the curve's object identifier as it appears in the attributes (no 06 tag, no length).
func (c Curve) OID() []byte {
	if c <= CurveNone || c >= curveCount {
		return nil
	}
	return bytes.Clone(curves[c].oid)
}

// String returns GnuPG's name for the curve: "nistp256", "brainpoolP256r1", "secp256k1", "ed25519", "cv25519",
// "ed448", "cv448".
func (c Curve) String() string {
	if c <= CurveNone || c >= curveCount {
		return fmt.Sprintf("Curve(%d)", int(c))
	}
	return curves[c].name
}

func curveByOID(oid []byte) Curve {
	for c := CurveNone + 1; c < curveCount; c++ {
		if bytes.Equal(curves[c].oid, oid) {
			return c
		}
	}
	return CurveNone
}

// RSA limits of this card.
var rsaModulusBits = []uint16{2048, 3072, 4096}

const (
	rsaMinExponentBits     = 17 // room for e = 65537
	rsaMaxExponentBits     = 32
	rsaDefaultExponentBits = 32 // what GnuPG and most cards use: 01 | nnnn | 0020 | 00
)

// Attributes is one algorithm-attributes DO (C1 SIG, C2 DEC, C3 AUT), OpenPGP card 3.4.1 §4.4.3.10.
//
// Attributes is comparable; two values are equal exactly when their Bytes are equal. A value that did not come
// from ParseAttributes or Supported may be invalid; Generate, Import and Unmarshal check it.
type Attributes struct {
	ID ID // IDRSA, IDECDH, IDECDSA or IDEdDSA

	// RSA only.
	ModulusBits  uint16          // 2048, 3072 or 4096
	ExponentBits uint16          // length of e in bits: 17..32
	ImportFormat RSAImportFormat // RSAStandard .. RSACRTModulus

	// ECC only.
	Curve         Curve // named by its OID
	WithPublicKey bool  // trailing FF: the host sends the public key (99) on import
}

// ParseAttributes parses an algorithm-attributes DO. It rejects anything this card does not support with an error
// wrapping ErrUnsupported (the card answers 6A80), and malformed bytes with ErrInvalidInput.
//
// Accepted RSA form: 01 | n bits (2) | e bits (2) | import format (1); the import format byte may be omitted
// (spec 2.x cards), meaning 00. Accepted ECC form: 12/13/16 | OID | optional 00 or FF. A trailing 00 is the
// default and is dropped by Bytes.
func ParseAttributes(b []byte) (Attributes, error) {
	if len(b) == 0 {
		return Attributes{}, fmt.Errorf("algo: empty algorithm attributes: %w", ErrInvalidInput)
	}
	var a Attributes
	switch a.ID = ID(b[0]); a.ID {
	case IDRSA:
		if len(b) != 5 && len(b) != 6 {
			return Attributes{}, fmt.Errorf("algo: RSA attributes of %d bytes: %w", len(b), ErrInvalidInput)
		}
		a.ModulusBits = binary.BigEndian.Uint16(b[1:3])
		a.ExponentBits = binary.BigEndian.Uint16(b[3:5])
		if len(b) == 6 {
			a.ImportFormat = RSAImportFormat(b[5])
		}
	case IDECDH, IDECDSA, IDEdDSA:
		oid := b[1:]
		if n := len(oid); n > 0 && (oid[n-1] == 0xFF || oid[n-1] == 0x00) {
			a.WithPublicKey = oid[n-1] == 0xFF
			oid = oid[:n-1]
		}
		if a.Curve = curveByOID(oid); a.Curve == CurveNone {
			return Attributes{}, fmt.Errorf("algo: curve OID %X: %w", oid, ErrUnsupported)
		}
	default:
		return Attributes{}, fmt.Errorf("algo: algorithm ID %02X: %w", b[0], ErrUnsupported)
	}
	if err := a.validate(); err != nil {
		return Attributes{}, err
	}
	return a, nil
}

// validate reports whether a is an attribute this card supports (errors wrap ErrUnsupported).
func (a Attributes) validate() error {
	switch a.ID {
	case IDRSA:
		supported := false
		for _, n := range rsaModulusBits {
			supported = supported || a.ModulusBits == n
		}
		switch {
		case !supported:
			return fmt.Errorf("algo: RSA modulus of %d bits: %w", a.ModulusBits, ErrUnsupported)
		case a.ExponentBits < rsaMinExponentBits || a.ExponentBits > rsaMaxExponentBits:
			return fmt.Errorf("algo: RSA exponent of %d bits: %w", a.ExponentBits, ErrUnsupported)
		case a.ImportFormat > rsaImportFormatLast:
			return fmt.Errorf("algo: RSA import format %02X: %w", byte(a.ImportFormat), ErrUnsupported)
		case a.Curve != CurveNone || a.WithPublicKey:
			return fmt.Errorf("algo: RSA attributes with ECC fields: %w", ErrUnsupported)
		}
		return nil
	case IDECDH, IDECDSA, IDEdDSA:
		if a.ModulusBits != 0 || a.ExponentBits != 0 || a.ImportFormat != 0 {
			return fmt.Errorf("algo: ECC attributes with RSA fields: %w", ErrUnsupported)
		}
		if a.Curve <= CurveNone || a.Curve >= curveCount {
			return fmt.Errorf("algo: %v: %w", a.Curve, ErrUnsupported)
		}
		for _, id := range curves[a.Curve].ids {
			if id == a.ID {
				return nil
			}
		}
		return fmt.Errorf("algo: curve %v with algorithm ID %02X: %w", a.Curve, byte(a.ID), ErrUnsupported)
	}
	return fmt.Errorf("algo: algorithm ID %02X: %w", byte(a.ID), ErrUnsupported)
}

// Bytes returns the canonical encoding of a: RSA 01 | n bits | e bits | import format (always 6 bytes); ECC
// ID | OID, followed by FF when WithPublicKey is set.
func (a Attributes) Bytes() []byte {
	if a.ID == IDRSA {
		b := []byte{byte(IDRSA), 0, 0, 0, 0, byte(a.ImportFormat)}
		binary.BigEndian.PutUint16(b[1:3], a.ModulusBits)
		binary.BigEndian.PutUint16(b[3:5], a.ExponentBits)
		return b
	}
	b := append([]byte{byte(a.ID)}, a.Curve.OID()...)
	if a.WithPublicKey {
		b = append(b, 0xFF)
	}
	return b
}

// String returns GnuPG's name for the algorithm: "rsa2048", "nistp256", "brainpoolP384r1", "secp256k1",
// "ed25519", "cv25519", "ed448", "cv448". ECDSA and ECDH on the same curve share a name, as in GnuPG's key-attr.
func (a Attributes) String() string {
	if a.ID == IDRSA {
		return fmt.Sprintf("rsa%d", a.ModulusBits)
	}
	if a.Curve > CurveNone && a.Curve < curveCount {
		return a.Curve.String()
	}
	return fmt.Sprintf("algo(%X)", a.Bytes())
}

// Supported lists every attribute the card accepts in the slot, for DO FA (algorithm information) and C1–C3 validation,
// in the order FA shows them: RSA 2048, 3072, 4096; NIST P-256, P-384, P-521; brainpool P256r1, P384r1, P512r1;
// secp256k1; then Ed25519 and Ed448 (RoleSign, RoleAuth) or cv25519 and X448 (RoleDecrypt). ECDH is offered only for
// RoleDecrypt, ECDSA and EdDSA only for RoleSign and RoleAuth. RSA is listed with e of 32 bits and the standard import
// format; the other forms AllowedFor accepts are not listed.
func Supported(r Role) []Attributes {
	var out []Attributes
	switch r {
	case RoleSign, RoleDecrypt, RoleAuth:
	default:
		return nil
	}
	for _, n := range rsaModulusBits {
		out = append(out, Attributes{ID: IDRSA, ModulusBits: n, ExponentBits: rsaDefaultExponentBits})
	}
	weier, edwards := IDECDSA, IDEdDSA
	if r == RoleDecrypt {
		weier, edwards = IDECDH, IDECDH
	}
	for _, c := range weierstrassCurves {
		out = append(out, Attributes{ID: weier, Curve: c})
	}
	if r == RoleDecrypt {
		out = append(out, Attributes{ID: edwards, Curve: CurveCurve25519}, Attributes{ID: edwards, Curve: CurveX448})
	} else {
		out = append(out, Attributes{ID: edwards, Curve: CurveEd25519}, Attributes{ID: edwards, Curve: CurveEd448})
	}
	return out
}

// AllowedFor reports whether a is a supported attribute for the slot r: a valid attribute (see ParseAttributes)
// whose ID fits the role (RSA anywhere, ECDH only for RoleDecrypt, ECDSA and EdDSA only for RoleSign and
// RoleAuth).
func (a Attributes) AllowedFor(r Role) bool {
	if a.validate() != nil {
		return false
	}
	switch r {
	case RoleSign, RoleAuth:
		return a.ID != IDECDH
	case RoleDecrypt:
		return a.ID == IDRSA || a.ID == IDECDH
	}
	return false
}
