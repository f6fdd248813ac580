package algo

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/ProtonMail/go-crypto/bitcurves"
	"github.com/cloudflare/circl/dh/x448"
	"github.com/cloudflare/circl/sign/ed448"
)

// allAttributes is every supported attribute, each once: RSA, ECDSA and EdDSA from the sign list, ECDH from the
// decrypt list.
func allAttributes() []Attributes {
	seen := map[Attributes]bool{}
	var out []Attributes
	for _, r := range []Role{RoleSign, RoleDecrypt} {
		for _, a := range Supported(r) {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

func attrName(a Attributes) string {
	switch a.ID {
	case IDECDH:
		if a.Curve == CurveCurve25519 || a.Curve == CurveX448 {
			return a.String()
		}
		return "ecdh-" + a.String()
	case IDECDSA:
		return "ecdsa-" + a.String()
	}
	return a.String()
}

func mustParse(t testing.TB, h string) Attributes {
	t.Helper()
	a, err := ParseAttributes(mustHex(h))
	if err != nil {
		t.Fatalf("ParseAttributes(%s): %v", h, err)
	}
	return a
}

// Generated keys, once per test binary: RSA-3072 and RSA-4096 generation takes seconds.
var (
	keyCacheMu sync.Mutex
	keyCache   = map[Attributes]PrivateKey{}
)

func cachedKey(t testing.TB, a Attributes) PrivateKey {
	t.Helper()
	if a.ID == IDRSA && a.ModulusBits > 2048 && testing.Short() {
		t.Skipf("%v generation is slow; skipped in -short mode", a)
	}
	keyCacheMu.Lock()
	defer keyCacheMu.Unlock()
	base := a
	base.WithPublicKey, base.ImportFormat = false, 0
	if k, ok := keyCache[base]; ok {
		return k
	}
	k, err := Generate(base, rand.Reader)
	if err != nil {
		t.Fatalf("Generate(%v): %v", a, err)
	}
	keyCache[base] = k
	return k
}

// parseTLVs splits a sequence of one-byte-tag BER-TLVs (test-side, independent of the package's encoder).
func parseTLVs(t testing.TB, b []byte) map[byte][]byte {
	t.Helper()
	out := map[byte][]byte{}
	for len(b) > 0 {
		if len(b) < 2 {
			t.Fatalf("truncated TLV % X", b)
		}
		tag, n, hdr := b[0], int(b[1]), 2
		switch b[1] {
		case 0x81:
			n, hdr = int(b[2]), 3
		case 0x82:
			n, hdr = int(b[2])<<8|int(b[3]), 4
		}
		if len(b) < hdr+n {
			t.Fatalf("TLV %02X: length %d beyond %d bytes", tag, n, len(b)-hdr)
		}
		out[tag] = b[hdr : hdr+n]
		b = b[hdr+n:]
	}
	return out
}

func rsaPublic(t testing.TB, k PrivateKey) *rsa.PublicKey {
	d := parseTLVs(t, k.PublicDO())
	n, e := d[0x81], d[0x82]
	if len(n) != int(k.Attributes().ModulusBits)/8 || n[0]&0x80 == 0 || len(e) == 0 {
		t.Fatalf("RSA public DO: n %d bytes, e % X", len(n), e)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
}

func point(t testing.TB, k PrivateKey) []byte {
	d := parseTLVs(t, k.PublicDO())
	p, ok := d[0x86]
	if !ok || len(d) != 1 {
		t.Fatalf("ECC public DO % X has no single 86", k.PublicDO())
	}
	return p
}

// ellipticOf returns the curve the tests check c's keys with. For secp256k1 that is ProtonMail/go-crypto's
// bitcurves, not the decred curve the package uses, so that signatures and shared secrets are checked with other
// arithmetic (crypto/ecdsa's generic verifier over bitcurves, bitcurves' ScalarMult).
func ellipticOf(c Curve) elliptic.Curve {
	if c == CurveSecp256k1 {
		return bitcurves.S256()
	}
	e, _ := weierstrassCurve(c)
	return e
}

// verify checks sig over input with an independent verifier (standard library, circl, bitcurves for secp256k1).
func verify(t *testing.T, k PrivateKey, input, sig []byte) {
	t.Helper()
	a := k.Attributes()
	ok := false
	switch {
	case a.ID == IDRSA:
		ok = rsa.VerifyPKCS1v15(rsaPublic(t, k), 0, input, sig) == nil
	case a.Curve == CurveEd25519:
		ok = ed25519.Verify(point(t, k), input, sig)
	case a.Curve == CurveEd448:
		ok = ed448.Verify(point(t, k), input, sig, "")
	default:
		curve := ellipticOf(a.Curve)
		size := (curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			t.Fatalf("ECDSA signature of %d bytes, want %d", len(sig), 2*size)
		}
		x, y := elliptic.Unmarshal(curve, point(t, k))
		if x == nil {
			t.Fatalf("public point not on the curve")
		}
		pub := &ecdsa.PublicKey{Curve: curve, X: x, Y: y}
		ok = ecdsa.Verify(pub, input, new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:]))
	}
	if !ok {
		t.Fatalf("%v: signature does not verify", a)
	}
}

// encrypt makes, independently of the package, a PSO:DECIPHER input for k and the secret Decipher must return.
func encrypt(t testing.TB, k PrivateKey) (input, want []byte) {
	t.Helper()
	a := k.Attributes()
	switch {
	case a.ID == IDRSA:
		want = []byte("a 32-byte session key plus algo!")
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, rsaPublic(t, k), want)
		if err != nil {
			t.Fatal(err)
		}
		return ct, want
	case a.Curve == CurveCurve25519:
		eph, _ := ecdh.X25519().GenerateKey(rand.Reader)
		pub, err := ecdh.X25519().NewPublicKey(point(t, k))
		if err != nil {
			t.Fatal(err)
		}
		want, _ = eph.ECDH(pub)
		return eph.PublicKey().Bytes(), want
	case a.Curve == CurveX448:
		var sec, pub, peer, shared x448.Key
		rand.Read(sec[:])
		x448.KeyGen(&pub, &sec)
		copy(peer[:], point(t, k))
		if !x448.Shared(&shared, &sec, &peer) {
			t.Fatal("X448 public key of low order")
		}
		return pub[:], shared[:]
	case a.Curve == CurveP256 || a.Curve == CurveP384 || a.Curve == CurveP521:
		c := map[Curve]ecdh.Curve{CurveP256: ecdh.P256(), CurveP384: ecdh.P384(), CurveP521: ecdh.P521()}[a.Curve]
		eph, _ := c.GenerateKey(rand.Reader)
		pub, err := c.NewPublicKey(point(t, k))
		if err != nil {
			t.Fatal(err)
		}
		want, _ = eph.ECDH(pub)
		return eph.PublicKey().Bytes(), want
	default: // brainpool and secp256k1
		curve := ellipticOf(a.Curve)
		eph, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		x, y := elliptic.Unmarshal(curve, point(t, k))
		sx, _ := curve.ScalarMult(x, y, eph.D.Bytes())
		size := (curve.Params().BitSize + 7) / 8
		return elliptic.Marshal(curve, eph.X, eph.Y), sx.FillBytes(make([]byte, size))
	}
}

func canSign(a Attributes) bool     { return a.Curve != CurveCurve25519 && a.Curve != CurveX448 }
func canDecipher(a Attributes) bool { return a.Curve != CurveEd25519 && a.Curve != CurveEd448 }

// signInput is what a host sends: a DigestInfo for RSA, a hash for ECDSA and EdDSA.
func signInput(a Attributes) []byte {
	h := sha256.Sum256([]byte("message"))
	if a.ID == IDRSA {
		return append(mustHex("3031300d060960864801650304020105000420"), h[:]...)
	}
	if a.Curve == CurveP521 || a.Curve == CurveBrainpoolP512r1 {
		h := sha512.Sum512([]byte("message"))
		return h[:]
	}
	return h[:]
}

func TestAttributesKnownEncodings(t *testing.T) {
	tests := []struct {
		hex, name string
		id        ID
		roles     []Role
	}{
		{"010800002000", "rsa2048", IDRSA, []Role{RoleSign, RoleDecrypt, RoleAuth}},
		{"010C00002000", "rsa3072", IDRSA, []Role{RoleSign, RoleDecrypt, RoleAuth}},
		{"011000002000", "rsa4096", IDRSA, []Role{RoleSign, RoleDecrypt, RoleAuth}},
		{"010800001103", "rsa2048", IDRSA, []Role{RoleSign, RoleDecrypt, RoleAuth}},
		{"132A8648CE3D030107", "nistp256", IDECDSA, []Role{RoleSign, RoleAuth}},
		{"122A8648CE3D030107", "nistp256", IDECDH, []Role{RoleDecrypt}},
		{"132B81040022", "nistp384", IDECDSA, []Role{RoleSign, RoleAuth}},
		{"132B81040023FF", "nistp521", IDECDSA, []Role{RoleSign, RoleAuth}},
		{"122B2403030208010107", "brainpoolP256r1", IDECDH, []Role{RoleDecrypt}},
		{"132B240303020801010B", "brainpoolP384r1", IDECDSA, []Role{RoleSign, RoleAuth}},
		{"132B240303020801010D", "brainpoolP512r1", IDECDSA, []Role{RoleSign, RoleAuth}},
		{"132B8104000A", "secp256k1", IDECDSA, []Role{RoleSign, RoleAuth}},
		{"132B8104000AFF", "secp256k1", IDECDSA, []Role{RoleSign, RoleAuth}},
		{"122B8104000A", "secp256k1", IDECDH, []Role{RoleDecrypt}},
		{"122B8104000AFF", "secp256k1", IDECDH, []Role{RoleDecrypt}},
		{"162B06010401DA470F01", "ed25519", IDEdDSA, []Role{RoleSign, RoleAuth}},
		{"162B06010401DA470F01FF", "ed25519", IDEdDSA, []Role{RoleSign, RoleAuth}},
		{"122B060104019755010501", "cv25519", IDECDH, []Role{RoleDecrypt}},
		{"162B6571", "ed448", IDEdDSA, []Role{RoleSign, RoleAuth}},
		{"122B656F", "cv448", IDECDH, []Role{RoleDecrypt}},
	}
	for _, tt := range tests {
		t.Run(tt.hex, func(t *testing.T) {
			a := mustParse(t, tt.hex)
			if a.String() != tt.name || a.ID != tt.id {
				t.Errorf("got %v (ID %02X), want %s (ID %02X)", a, byte(a.ID), tt.name, byte(tt.id))
			}
			if got := hex.EncodeToString(a.Bytes()); got != hex.EncodeToString(mustHex(tt.hex)) {
				t.Errorf("Bytes() = %s, want %s", got, tt.hex)
			}
			for _, r := range []Role{RoleSign, RoleDecrypt, RoleAuth} {
				want := false
				for _, rr := range tt.roles {
					want = want || rr == r
				}
				if a.AllowedFor(r) != want {
					t.Errorf("AllowedFor(%v) = %v, want %v", r, !want, want)
				}
			}
		})
	}
}

func TestAttributesCanonical(t *testing.T) {
	// Forms accepted but not canonical: RSA without the import-format byte, ECC with a trailing 00.
	for in, want := range map[string]string{
		"0108000020":           "010800002000",
		"132A8648CE3D03010700": "132A8648CE3D030107",
		"122B8104000A00":       "122B8104000A",
	} {
		if got := mustParse(t, in).Bytes(); !bytes.Equal(got, mustHex(want)) {
			t.Errorf("ParseAttributes(%s).Bytes() = %X, want %s", in, got, want)
		}
	}
}

func TestAttributesRoundTrip(t *testing.T) {
	for _, r := range []Role{RoleSign, RoleDecrypt, RoleAuth} {
		list := Supported(r)
		if len(list) != 12 {
			t.Errorf("Supported(%v) has %d entries, want 12", r, len(list))
		}
		for _, a := range list {
			for _, withPub := range []bool{false, true} {
				a := a
				if a.ID != IDRSA {
					a.WithPublicKey = withPub
				}
				b, err := ParseAttributes(a.Bytes())
				if err != nil || b != a {
					t.Errorf("%v: ParseAttributes(Bytes()) = %+v, %v", a, b, err)
				}
				if !a.AllowedFor(r) {
					t.Errorf("%v listed for %v but not AllowedFor it", a, r)
				}
			}
		}
	}
	if Supported(Role(0)) != nil || Supported(Role(9)) != nil {
		t.Error("Supported of an unknown role is not empty")
	}
	if (Attributes{}).AllowedFor(RoleSign) {
		t.Error("zero Attributes allowed")
	}
}

func TestAttributesRejected(t *testing.T) {
	tests := []struct {
		name, hex string
		want      error
	}{
		{"empty", "", ErrInvalidInput},
		{"RSA short", "01080000", ErrInvalidInput},
		{"RSA long", "01080000200000", ErrInvalidInput},
		{"RSA 1024", "010400002000", ErrUnsupported},
		{"RSA 2047", "0107FF002000", ErrUnsupported},
		{"RSA 8192", "012000002000", ErrUnsupported},
		{"RSA e 16 bits", "010800001000", ErrUnsupported},
		{"RSA e 33 bits", "010800002100", ErrUnsupported},
		{"RSA format 04", "010800002004", ErrUnsupported},
		{"unknown ID", "022A8648CE3D030107", ErrUnsupported},
		{"ID only", "13", ErrUnsupported},
		{"unknown OID secp256r1 without its last byte", "132A8648CE3D0301", ErrUnsupported},
		{"secp256k1 OID with trailing garbage", "132B8104000A01", ErrUnsupported},
		{"EdDSA on secp256k1", "162B8104000A", ErrUnsupported},
		{"OID with trailing garbage", "132A8648CE3D03010701", ErrUnsupported},
		{"OID with FF FF", "132A8648CE3D030107FFFF", ErrUnsupported},
		{"ECDH on ed25519", "122B06010401DA470F01", ErrUnsupported},
		{"EdDSA on cv25519", "162B060104019755010501", ErrUnsupported},
		{"ECDSA on cv25519", "132B060104019755010501", ErrUnsupported},
		{"EdDSA on P-256", "162A8648CE3D030107", ErrUnsupported},
		{"ECDSA on ed448", "132B6571", ErrUnsupported},
		{"EdDSA on X448", "162B656F", ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAttributes(mustHex(tt.hex))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseAttributes(%s) = %+v, %v; want %v", tt.hex, a, err, tt.want)
			}
		})
	}
	// Values built by hand are checked too.
	for _, a := range []Attributes{
		{}, {ID: IDRSA, ModulusBits: 2048}, {ID: IDECDSA}, {ID: IDECDSA, Curve: curveCount},
		{ID: IDRSA, ModulusBits: 2048, ExponentBits: 32, Curve: CurveP256},
		{ID: IDECDSA, Curve: CurveP256, ModulusBits: 2048}, {ID: IDECDH, Curve: CurveEd25519},
	} {
		for _, r := range []Role{RoleSign, RoleDecrypt, RoleAuth} {
			if a.AllowedFor(r) {
				t.Errorf("%+v AllowedFor(%v)", a, r)
			}
		}
		if _, err := Generate(a, rand.Reader); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Generate(%+v) = %v, want ErrUnsupported", a, err)
		}
		if _, err := Import(a, map[byte][]byte{0x92: {1}}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Import(%+v) = %v, want ErrUnsupported", a, err)
		}
		if _, err := Unmarshal(a, []byte{1, 1}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Unmarshal(%+v) = %v, want ErrUnsupported", a, err)
		}
	}
}

// TestKeys runs generate -> sign -> verify, decipher, marshal round trip and import of the same parts for every
// algorithm.
func TestKeys(t *testing.T) {
	for _, a := range allAttributes() {
		t.Run(attrName(a), func(t *testing.T) {
			k := cachedKey(t, a)
			if k.Attributes() != a {
				t.Fatalf("Attributes() = %v", k.Attributes())
			}
			if canSign(a) {
				in := signInput(a)
				sig, err := k.Sign(in)
				if err != nil {
					t.Fatalf("Sign: %v", err)
				}
				verify(t, k, in, sig)
				if a.ID == IDECDSA || a.ID == IDECDH && canSign(a) { // SHA-1 to SHA-512, truncated to the order
					for _, n := range []int{20, 28, 32, 48, 64} {
						h := sha512.Sum512([]byte{byte(n)})
						sig, err := k.Sign(h[:n])
						if err != nil {
							t.Fatalf("Sign(%d-byte hash): %v", n, err)
						}
						verify(t, k, h[:n], sig)
					}
				}
				if a.ID == IDRSA { // INTERNAL AUTHENTICATE: raw data, type-1 padding
					raw := []byte("ssh challenge hash, 36 bytes long..")
					sig, err := k.Sign(raw)
					if err != nil {
						t.Fatalf("Sign(raw): %v", err)
					}
					verify(t, k, raw, sig)
				}
			} else if _, err := k.Sign(signInput(a)); !errors.Is(err, ErrUnsupported) {
				t.Errorf("Sign with %v = %v, want ErrUnsupported", a, err)
			}
			if canDecipher(a) {
				in, want := encrypt(t, k)
				got, err := k.Decipher(in)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("Decipher = %X, %v; want %X", got, err, want)
				}
			} else if _, err := k.Decipher(make([]byte, 32)); !errors.Is(err, ErrUnsupported) {
				t.Errorf("Decipher with %v = %v, want ErrUnsupported", a, err)
			}

			b := k.Marshal()
			k2, err := Unmarshal(a, b)
			if err != nil {
				t.Fatalf("Unmarshal(Marshal()): %v", err)
			}
			if !bytes.Equal(k2.Marshal(), b) || !bytes.Equal(k2.PublicDO(), k.PublicDO()) || k2.Attributes() != a {
				t.Fatal("Unmarshal(Marshal(k)) differs from k")
			}
			if canDecipher(a) { // the restored key works
				in, want := encrypt(t, k2)
				if got, err := k2.Decipher(in); err != nil || !bytes.Equal(got, want) {
					t.Fatalf("restored key: Decipher = %X, %v", got, err)
				}
			}
			a2 := a
			if a.ID == IDRSA {
				a2.ImportFormat = RSACRTModulus
			} else {
				a2.WithPublicKey = true
			}
			if k3, err := Unmarshal(a2, b); err != nil || !bytes.Equal(k3.PublicDO(), k.PublicDO()) {
				t.Errorf("Unmarshal with %X: %v", a2.Bytes(), err)
			}

			// Import of the key's own parts, as GnuPG would send them, gives the same public key.
			for name, parts := range exportParts(t, k) {
				k4, err := Import(a, parts)
				if err != nil {
					t.Fatalf("Import(%s): %v", name, err)
				}
				if !bytes.Equal(k4.PublicDO(), k.PublicDO()) || !bytes.Equal(k4.Marshal(), k.Marshal()) {
					t.Fatalf("Import(%s) gave another key", name)
				}
			}
		})
	}
}

// exportParts returns the 4D parts GnuPG sends for k, in the variants a host may use.
func exportParts(t testing.TB, k PrivateKey) map[string]map[byte][]byte {
	out := map[string]map[byte][]byte{}
	switch k := k.(type) {
	case *rsaKey:
		r := k.key
		e := big.NewInt(int64(r.E)).Bytes()
		p, q := r.Primes[0].Bytes(), r.Primes[1].Bytes()
		out["standard"] = map[byte][]byte{0x91: e, 0x92: p, 0x93: q}
		out["standard+n"] = map[byte][]byte{0x91: e, 0x92: p, 0x93: q, 0x97: r.N.Bytes()}
		crt := map[byte][]byte{0x91: append([]byte{0, 0}, e...), 0x92: p, 0x93: q, 0x94: r.Precomputed.Qinv.Bytes(),
			0x95: r.Precomputed.Dp.Bytes(), 0x96: r.Precomputed.Dq.Bytes()}
		out["crt"] = crt
		// dp, dq computed mod p-1 and q-1 from d mod phi: a different but valid form.
		phi := new(big.Int).Mul(new(big.Int).Sub(r.Primes[0], big.NewInt(1)), new(big.Int).Sub(r.Primes[1], big.NewInt(1)))
		d := new(big.Int).ModInverse(big.NewInt(int64(r.E)), phi)
		out["crt-phi+n"] = map[byte][]byte{0x91: e, 0x92: p, 0x93: q, 0x94: r.Precomputed.Qinv.Bytes(),
			0x95: new(big.Int).Mod(d, new(big.Int).Sub(r.Primes[0], big.NewInt(1))).Bytes(),
			0x96: new(big.Int).Mod(d, new(big.Int).Sub(r.Primes[1], big.NewInt(1))).Bytes(), 0x97: r.N.Bytes()}
	case *weierstrassKey:
		out["d"] = map[byte][]byte{0x92: k.d}
		out["d+Q"] = map[byte][]byte{0x92: k.d, 0x99: k.pointOnce()}
		out["mpi d"] = map[byte][]byte{0x92: new(big.Int).SetBytes(k.d).Bytes()}
		out["00 d"] = map[byte][]byte{0x92: append([]byte{0}, k.d...)}
	case *eddsaKey:
		out["seed"] = map[byte][]byte{0x92: k.seed}
		out["seed+Q"] = map[byte][]byte{0x92: k.seed, 0x99: k.pub}
		out["seed+40Q"] = map[byte][]byte{0x92: k.seed, 0x99: append([]byte{0x40}, k.pub...)}
		out["mpi seed"] = map[byte][]byte{0x92: new(big.Int).SetBytes(k.seed).Bytes()}
	case *montgomeryKey:
		d := k.scalar
		if k.attr.Curve == CurveCurve25519 {
			d = reversed(d) // GnuPG's MPI form
		}
		out["d"] = map[byte][]byte{0x92: d}
		out["d+Q"] = map[byte][]byte{0x92: d, 0x99: k.pub}
		out["d+40Q"] = map[byte][]byte{0x92: d, 0x99: append([]byte{0x40}, k.pub...)}
		out["mpi d"] = map[byte][]byte{0x92: new(big.Int).SetBytes(d).Bytes()}
	default:
		t.Fatalf("unknown key type %T", k)
	}
	return out
}

// TestImportGnuPGAgentKeys imports keys exactly as gpg-agent 2.2.40 (libgcrypt 1.10.1) holds them in
// private-keys-v1.d and hands them to scdaemon for keytocard (scdaemon strips leading zero bytes of d). It pins the
// byte order of the cv25519 secret: big-endian, the RFC 7748 native scalar reversed.
func TestImportGnuPGAgentKeys(t *testing.T) {
	tests := []struct {
		name, attr string
		d, q       string // as in the agent's (d #..#) and (q #..#)
	}{
		{"cv25519", "122B060104019755010501",
			"4BA15A63EE2086AEDFB6D8EA933CEDF006D17A6DF00FA4C84AAC5C61672AB7D0",
			"40C34453665EA132755E451049B3DC6692ADDCF02638EFF646425EE2C25E3A9762"},
		{"ed25519", "162B06010401DA470F01",
			"C40F9D97A5D92617C50AD29386F4464C0B9DDCFE3CE4889059689822A8DFFD0F",
			"40BFF3842AF41E6D815D45C8E6A57C99972EBB93A21E0E8D9DBF65089F8A9EBE3C"},
		{"nistp256", "122A8648CE3D030107",
			"00B873859ECDB4A0B9251CD8E1C666085FA04A1CD62A83D4659E4FF3DC12E168B4",
			"046D332D789FE42F9403D4F07CE208AA6433309C71EB818E411269E9B23F4F063939F084C816764B2DA652E817726EEF082261AB51AECDAB709BF0C63B7B23482A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustParse(t, tt.attr)
			d, q := bytes.TrimLeft(mustHex(tt.d), "\x00"), mustHex(tt.q)
			native := q
			if q[0] == 0x40 {
				native = q[1:]
			}
			for _, parts := range []map[byte][]byte{{0x92: d}, {0x92: d, 0x99: q}, {0x92: d, 0x99: native}} {
				k, err := Import(a, parts)
				if err != nil {
					t.Fatalf("Import: %v", err)
				}
				if got := point(t, k); !bytes.Equal(got, native) {
					t.Fatalf("public key %X, want %X", got, native)
				}
			}
		})
	}
}

// TestRFCVectors checks the algorithms against published test vectors.
func TestRFCVectors(t *testing.T) {
	// RFC 7748 §6.1 (X25519, Alice and Bob); 92 is given as GnuPG sends it: the scalar reversed.
	alice := mustHex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	k, err := Import(mustParse(t, "122B060104019755010501"), map[byte][]byte{0x92: reversed(alice)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := point(t, k), mustHex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"); !bytes.Equal(got, want) {
		t.Errorf("X25519 public %X, want %X", got, want)
	}
	bob := mustHex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
	shared := mustHex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
	for _, in := range [][]byte{bob, append([]byte{0x40}, bob...)} {
		if got, err := k.Decipher(in); err != nil || !bytes.Equal(got, shared) {
			t.Errorf("X25519 Decipher(%X) = %X, %v", in, got, err)
		}
	}

	// RFC 7748 §6.2 (X448); 92 in the native form.
	alice448 := mustHex("9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b")
	k, err = Import(mustParse(t, "122B656F"), map[byte][]byte{0x92: alice448})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := point(t, k), mustHex("9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0"); !bytes.Equal(got, want) {
		t.Errorf("X448 public %X, want %X", got, want)
	}
	bob448 := mustHex("3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b43027d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609")
	shared448 := mustHex("07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282bb60c0b56fd2464c335543936521c24403085d59a449a5037514a879d")
	if got, err := k.Decipher(bob448); err != nil || !bytes.Equal(got, shared448) {
		t.Errorf("X448 Decipher = %X, %v", got, err)
	}

	// RFC 8032 §7.1 TEST 2 (Ed25519) and §7.4 "1 octet" (Ed448).
	for _, v := range []struct{ attr, seed, pub, msg, sig string }{
		{"162B06010401DA470F01", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
			"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
			"92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
		{"162B6571", "c4eab05d357007c632f3dbb48489924d552b08fe0c353a0d4a1f00acda2c463afbea67c5e8d2877c5e3bc397a659949ef8021e954e0a12274e",
			"43ba28f430cdff456ae531545f7ecd0ac834a55d9358c0372bfa0c6c6798c0866aea01eb00742802b8438ea4cb82169c235160627b4c3a9480", "03",
			"26b8f91727bd62897af15e41eb43c377efb9c610d48f2335cb0bd0087810f4352541b143c4b981b7e18f62de8ccdf633fc1bf037ab7cd779805e0dbcc0aae1cbcee1afb2e027df36bc04dcecbf154336c19f0af7e0a6472905e799f1953d2a0ff3348ab21aa4adafd1d234441cf807c03a00"},
	} {
		k, err := Import(mustParse(t, v.attr), map[byte][]byte{0x92: mustHex(v.seed), 0x99: mustHex(v.pub)})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := k.Sign(mustHex(v.msg)); err != nil || !bytes.Equal(got, mustHex(v.sig)) {
			t.Errorf("%v signature %X, %v; want %s", k.Attributes(), got, err, v.sig)
		}
	}
}

// TestSecp256k1Vectors checks secp256k1 against published vectors:
//   - SEC 2 v2 §2.4.1: the generator G, which is the public key of d = 1;
//   - RFC 6979 ECDSA over SHA-256 from bitcointalk.org topic 285142 (msg3150733), the vectors libsecp256k1,
//     trezor-crypto and CoreBitcoin test against; the card's s is the low one (BIP 62), so where the thread gives
//     the high s, n-s is the card's (both are checked to verify);
//   - Wycheproof testvectors/ecdh_secp256k1_test.json (C2SP/wycheproof): tcId 1 "normal case" and tcId 3 and 14
//     "edge case for shared secret", with the private key as the vectors give it (a leading 00 byte) and the
//     public point taken out of its SubjectPublicKeyInfo.
func TestSecp256k1Vectors(t *testing.T) {
	n := bitcurves.S256().Params().N
	g := mustHex("0479BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798" +
		"483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8")
	one := Attributes{ID: IDECDSA, Curve: CurveSecp256k1}
	k, err := Import(one, map[byte][]byte{0x92: {1}, 0x99: g})
	if err != nil {
		t.Fatalf("Import(d = 1): %v", err)
	}
	if got := point(t, k); !bytes.Equal(got, g) {
		t.Errorf("public key of d = 1: %X, want G %X", got, g)
	}

	for _, v := range []struct{ d, msg, r, s string }{
		{"01", "Satoshi Nakamoto", "934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d8",
			"dbbd3162d46e9f9bef7feb87c16dc13b4f6568a87f4e83f728e2443ba586675c"}, // high s in the thread
		{"01", "All those moments will be lost in time, like tears in rain. Time to die...",
			"8600dbd41e348fe5c9465ab92d23e3db8b98b873beecd930736488696438cb6b",
			"ab8019bbd8b6924cc4099fe625340ffb1eaac34bf4477daa39d0835429094520"}, // high s in the thread
		{"fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140", "Satoshi Nakamoto",
			"fd567d121db66e382991534ada77a6bd3106f0a1098c231e47993447cd6af2d0",
			"6b39cd0eb1bc8603e159ef5c20a5c8ad685a45b06ce9bebed3f153d10d93bed5"},
	} {
		k, err := Import(one, map[byte][]byte{0x92: mustHex(v.d)})
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256([]byte(v.msg))
		s := new(big.Int).SetBytes(mustHex(v.s))
		if s.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
			verify(t, k, h[:], append(mustHex(v.r), mustHex(v.s)...)) // the thread's high s verifies too
			s.Sub(n, s)
		}
		want := append(mustHex(v.r), s.FillBytes(make([]byte, 32))...)
		for _, a := range []Attributes{one, {ID: IDECDH, Curve: CurveSecp256k1}} {
			k, err := Import(a, map[byte][]byte{0x92: mustHex(v.d)})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := k.Sign(h[:]); err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s d=%s %q: signature %X, %v; want %X", attrName(a), v.d, v.msg, got, err, want)
			}
		}
		// A longer hash is truncated to 32 bytes (FIPS 186-4): same nonce, same signature.
		if got, err := k.Sign(append(h[:], repeat(0xEE, 32)...)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("64-byte hash starting with the vector's: %X, %v", got, err)
		}
	}

	spki := "3056301006072a8648ce3d020106052b8104000a034200"
	for _, v := range []struct{ tcID, public, private, shared string }{
		{"1", "3056301006072a8648ce3d020106052b8104000a03420004d8096af8a11e0b80037e1ee68246b5dcbb0aeb1cf1244fd767db80f3fa27da2b396812ea1686e7472e9692eaf3e958e50e9500d3b4c77243db1f2acd67ba9cc4",
			"00f4b7ff7cccc98813a69fae3df222bfe3f4e28f764bf91b4a10d8096ce446b254",
			"544dfae22af6af939042b1d85b71a1e49e9a5614123c4d6ad0c8af65baf87d65"},
		{"3", "3056301006072a8648ce3d020106052b8104000a03420004965ff42d654e058ee7317cced7caf093fbb180d8d3a74b0dcd9d8cd47a39d5cb9c2aa4daac01a4be37c20467ede964662f12983e0b5272a47a5f2785685d8087",
			"00a2b6442a37f8a3764aeff4011a4c422b389a1e509669c43f279c8b7e32d80c3a",
			"0000000000000000000000000000000000000000000000000000000000000001"},
		{"14", "3056301006072a8648ce3d020106052b8104000a03420004e426e2f5108333117587975f18d8cc078d41e56b7d6b82f585d75b0d73479ffd75800fd41236a56034bed9abc55d82cf059a14d63c07cd0750931714731a1ca1",
			"00a2b6442a37f8a3764aeff4011a4c422b389a1e509669c43f279c8b7e32d80c3a",
			"8000000000000000000000000000000000000000000000000000000000000000"},
	} {
		if !strings.HasPrefix(v.public, spki) {
			t.Fatalf("tcId %s: not an uncompressed secp256k1 SubjectPublicKeyInfo", v.tcID)
		}
		k, err := Import(Attributes{ID: IDECDH, Curve: CurveSecp256k1}, map[byte][]byte{0x92: mustHex(v.private)})
		if err != nil {
			t.Fatalf("tcId %s: Import: %v", v.tcID, err)
		}
		if got, err := k.Decipher(mustHex(strings.TrimPrefix(v.public, spki))); err != nil || !bytes.Equal(got, mustHex(v.shared)) {
			t.Errorf("tcId %s: shared secret %X, %v; want %s", v.tcID, got, err, v.shared)
		}
	}
}

// TestConcurrentUse signs, deciphers and reads the public key of fresh keys from several goroutines at once (the
// NIST, brainpool and secp256k1 keys compute parts lazily); run with -race.
func TestConcurrentUse(t *testing.T) {
	for _, a := range allAttributes() {
		if a.ID == IDRSA && a.ModulusBits > 2048 {
			continue
		}
		k, err := Unmarshal(a, cachedKey(t, a).Marshal())
		if err != nil {
			t.Fatal(err)
		}
		want := cachedKey(t, a).PublicDO()
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if !bytes.Equal(k.PublicDO(), want) {
					t.Errorf("%v: PublicDO differs", a)
				}
				if canSign(a) {
					if _, err := k.Sign(signInput(a)); err != nil {
						t.Errorf("%v: Sign: %v", a, err)
					}
				}
			}()
		}
		wg.Wait()
	}
}

// TestImportGnuPGAgentRSA imports an RSA-2048 key made by gpg-agent 2.2.40 (testdata/gpg-agent-rsa2048.key, its
// private-keys-v1.d file): libgcrypt keeps p < q and u = 1/p mod q, the reverse of the card's 94 = 1/q mod p; both
// are accepted, in every import format.
func TestImportGnuPGAgentRSA(t *testing.T) {
	raw, err := os.ReadFile("testdata/gpg-agent-rsa2048.key")
	if err != nil {
		t.Fatal(err)
	}
	v := map[string][]byte{}
	for _, m := range regexp.MustCompile(`\((\w)\s*#([0-9A-F\s]+)#\)`).FindAllSubmatch(raw, -1) {
		v[string(m[1])] = mustHex(strings.Join(strings.Fields(string(m[2])), ""))
	}
	for _, name := range []string{"n", "e", "d", "p", "q", "u"} {
		if len(v[name]) == 0 {
			t.Fatalf("no %s in the agent key", name)
		}
	}
	d, p, q := new(big.Int).SetBytes(v["d"]), new(big.Int).SetBytes(v["p"]), new(big.Int).SetBytes(v["q"])
	dp := new(big.Int).Mod(d, new(big.Int).Sub(p, big.NewInt(1))).Bytes()
	dq := new(big.Int).Mod(d, new(big.Int).Sub(q, big.NewInt(1))).Bytes()
	a := mustParse(t, "010800002003")
	for name, parts := range map[string]map[byte][]byte{
		"standard":             {0x91: v["e"], 0x92: v["p"], 0x93: v["q"]},
		"standard+n":           {0x91: v["e"], 0x92: v["p"], 0x93: v["q"], 0x97: v["n"]},
		"crt, libgcrypt u":     {0x91: v["e"], 0x92: v["p"], 0x93: v["q"], 0x94: v["u"], 0x95: dp, 0x96: dq, 0x97: v["n"]},
		"crt, p and q swapped": {0x91: v["e"], 0x92: v["q"], 0x93: v["p"], 0x94: v["u"], 0x95: dq, 0x96: dp},
		"e padded to 32 bits":  {0x91: append([]byte{0}, v["e"]...), 0x92: v["p"], 0x93: v["q"]},
	} {
		k, err := Import(a, parts)
		if err != nil {
			t.Fatalf("Import(%s): %v", name, err)
		}
		pub := rsaPublic(t, k)
		if !bytes.Equal(pub.N.Bytes(), bytes.TrimLeft(v["n"], "\x00")) {
			t.Fatalf("Import(%s): modulus differs", name)
		}
		in := signInput(a)
		sig, err := k.Sign(in)
		if err != nil {
			t.Fatal(err)
		}
		// libgcrypt's own d must verify the signature: s^e = m and m^d = s agree.
		if err := rsa.VerifyPKCS1v15(pub, 0, in, sig); err != nil {
			t.Fatalf("Import(%s): %v", name, err)
		}
	}
}
