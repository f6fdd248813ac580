package algo

import (
	"crypto/rand"
	"testing"
)

// benchKeys returns a key for every attribute of the role, generated once per test binary.
func benchKeys(b *testing.B, r Role) []PrivateKey {
	var out []PrivateKey
	for _, a := range Supported(r) {
		out = append(out, cachedKey(b, a))
	}
	return out
}

// The benchmarks run every algorithm Supported lists, secp256k1 among the Weierstrass curves.

// BenchmarkSign is PSO:COMPUTE DIGITAL SIGNATURE: RSA over a SHA-256 DigestInfo, ECDSA and EdDSA over a hash.
func BenchmarkSign(b *testing.B) {
	for _, k := range benchKeys(b, RoleSign) {
		in := signInput(k.Attributes())
		b.Run(k.Attributes().String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := k.Sign(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAuthenticate is INTERNAL AUTHENTICATE: RSA over raw data (what ssh-agent hands gpg-agent for an RSA
// key: a DigestInfo of SHA-512, 83 bytes), ECDSA and EdDSA over a hash.
func BenchmarkAuthenticate(b *testing.B) {
	for _, k := range benchKeys(b, RoleAuth) {
		in := signInput(k.Attributes())
		if k.Attributes().ID == IDRSA {
			in = append(mustHex("3051300d060960864801650304020305000440"), make([]byte, 64)...)
		}
		b.Run(k.Attributes().String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := k.Sign(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecipher is PSO:DECIPHER: RSA PKCS#1 v1.5 of a session key, ECDH with a fresh ephemeral point.
func BenchmarkDecipher(b *testing.B) {
	for _, k := range benchKeys(b, RoleDecrypt) {
		in, _ := encrypt(b, k)
		b.Run(k.Attributes().String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := k.Decipher(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGenerate is GENERATE ASYMMETRIC KEY PAIR for every algorithm (ECDSA and ECDH on the same curve cost
// the same; cv25519 and cv448 stand for the decryption-only curves). RSA generation time varies a lot from key to
// key; run it with a -benchtime of at least 10x.
func BenchmarkGenerate(b *testing.B) {
	attrs := Supported(RoleSign)
	for _, a := range Supported(RoleDecrypt) {
		if a.Curve == CurveCurve25519 || a.Curve == CurveX448 {
			attrs = append(attrs, a)
		}
	}
	for _, a := range attrs {
		b.Run(a.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := Generate(a, rand.Reader); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFirstPublicDO is the rest of what GENERATE ASYMMETRIC KEY PAIR pays after Generate: the first
// PublicDO of a fresh key, which computes the public point for the brainpool and secp256k1 curves (Generate leaves
// it for later, so that restoring a key to sign does not pay for it); the other algorithms have it already.
func BenchmarkFirstPublicDO(b *testing.B) {
	for _, k := range benchKeys(b, RoleSign) {
		a := k.Attributes()
		if a.ID == IDRSA {
			continue
		}
		m := k.Marshal()
		b.Run(a.String(), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				fresh, err := Unmarshal(a, m)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				fresh.PublicDO()
			}
		})
	}
}

// BenchmarkUnmarshal is what the card pays to restore a key from the store before each operation.
func BenchmarkUnmarshal(b *testing.B) {
	for _, r := range []Role{RoleSign, RoleDecrypt} {
		for _, k := range benchKeys(b, r) {
			m := k.Marshal()
			a := k.Attributes()
			if r == RoleDecrypt && a.ID == IDRSA {
				continue
			}
			b.Run(attrName(a), func(b *testing.B) {
				for b.Loop() {
					if _, err := Unmarshal(a, m); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
