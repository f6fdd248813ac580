package algo

import (
	"bytes"
	"errors"
	"math/big"
	"testing"
)

func flipLast(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)-1] ^= 1
	return c
}

func repeat(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

// TestBadInput feeds every operation wrong lengths, points not on the curve, inconsistent key parts and wrong
// attributes: each gives ErrInvalidInput or ErrUnsupported, never a panic or a key.
func TestBadInput(t *testing.T) {
	type op func(t *testing.T, k PrivateKey) error
	sign := func(in []byte) op { return func(_ *testing.T, k PrivateKey) error { _, err := k.Sign(in); return err } }
	decipher := func(in []byte) op {
		return func(_ *testing.T, k PrivateKey) error { _, err := k.Decipher(in); return err }
	}
	decipherF := func(f func(t *testing.T, k PrivateKey) []byte) op {
		return func(t *testing.T, k PrivateKey) error { _, err := k.Decipher(f(t, k)); return err }
	}
	importF := func(f func(t *testing.T, k PrivateKey) map[byte][]byte) op {
		return func(t *testing.T, k PrivateKey) error {
			k2, err := Import(k.Attributes(), f(t, k))
			if err == nil {
				t.Errorf("Import gave a key %X", k2.PublicDO())
			}
			return err
		}
	}
	unmarshal := func(f func(k PrivateKey) []byte) op {
		return func(t *testing.T, k PrivateKey) error {
			_, err := Unmarshal(k.Attributes(), f(k))
			return err
		}
	}
	partsWith := func(variant string, tag byte, v []byte) func(t *testing.T, k PrivateKey) map[byte][]byte {
		return func(t *testing.T, k PrivateKey) map[byte][]byte {
			p := exportParts(t, k)[variant]
			if v == nil {
				delete(p, tag)
			} else {
				p[tag] = v
			}
			return p
		}
	}
	ecc := []string{"ecdh-nistp256", "ecdsa-nistp384", "ecdh-nistp521", "ecdsa-brainpoolP256r1", "ecdh-brainpoolP384r1",
		"ecdh-brainpoolP512r1", "ecdsa-secp256k1", "ecdh-secp256k1", "ed25519", "ed448", "cv25519", "cv448"}
	weier := ecc[:8]
	k1 := []string{"ecdsa-secp256k1", "ecdh-secp256k1"}
	tests := []struct {
		name string
		algs []string
		op   op
		want error
	}{
		// Sign.
		{"sign empty", append([]string{"rsa2048"}, weier...), sign(nil), ErrInvalidInput},
		{"sign too long for padding", []string{"rsa2048"}, sign(repeat(1, 256-10)), ErrInvalidInput},
		{"sign hash over 64 bytes", weier, sign(repeat(1, 65)), ErrInvalidInput},
		{"sign with ECDH-only key", []string{"cv25519", "cv448"}, sign(repeat(1, 32)), ErrUnsupported},

		// Decipher.
		{"decipher with EdDSA key", []string{"ed25519", "ed448"}, decipher(repeat(9, 32)), ErrUnsupported},
		{"decipher empty", append([]string{"rsa2048"}, weier...), decipher(nil), ErrInvalidInput},
		{"decipher empty 25519/448", []string{"cv25519", "cv448"}, decipher(nil), ErrInvalidInput},
		{"RSA ciphertext too long", []string{"rsa2048"}, decipher(repeat(1, 257)), ErrInvalidInput},
		{"RSA ciphertext >= n", []string{"rsa2048"}, decipher(repeat(0xFF, 256)), ErrInvalidInput},
		{"RSA bad padding", []string{"rsa2048"}, decipherF(func(t *testing.T, k PrivateKey) []byte {
			c := new(big.Int).Exp(big.NewInt(12345), big.NewInt(int64(rsaPublic(t, k).E)), rsaPublic(t, k).N)
			return c.FillBytes(make([]byte, 256))
		}), ErrInvalidInput},
		{"point one byte short", weier, decipherF(func(t *testing.T, k PrivateKey) []byte { in, _ := encrypt(t, k); return in[:len(in)-1] }), ErrInvalidInput},
		{"point one byte long", weier, decipherF(func(t *testing.T, k PrivateKey) []byte { in, _ := encrypt(t, k); return append(in, 0) }), ErrInvalidInput},
		{"compressed point", weier, decipherF(func(t *testing.T, k PrivateKey) []byte { in, _ := encrypt(t, k); in[0] = 2; return in }), ErrInvalidInput},
		{"point not on curve", weier, decipherF(func(t *testing.T, k PrivateKey) []byte { in, _ := encrypt(t, k); return flipLast(in) }), ErrInvalidInput},
		{"coordinates >= p", weier, decipherF(func(t *testing.T, k PrivateKey) []byte {
			in, _ := encrypt(t, k)
			return append([]byte{4}, repeat(0xFF, len(in)-1)...)
		}), ErrInvalidInput},
		{"all-zero point", weier, decipherF(func(t *testing.T, k PrivateKey) []byte {
			in, _ := encrypt(t, k)
			return append([]byte{4}, make([]byte, len(in)-1)...)
		}), ErrInvalidInput},
		{"x = p", weier, decipherF(func(t *testing.T, k PrivateKey) []byte {
			params := ellipticOf(k.Attributes().Curve).Params()
			size := (params.BitSize + 7) / 8
			return append(append([]byte{4}, params.P.FillBytes(make([]byte, size))...), params.Gy.FillBytes(make([]byte, size))...)
		}), ErrInvalidInput},
		// decred's ParsePubKey would take the hybrid forms (06/07 ‖ X ‖ Y); the card takes only 04.
		{"hybrid point 06", weier, decipherF(func(t *testing.T, k PrivateKey) []byte { in, _ := encrypt(t, k); in[0] = 6; return in }), ErrInvalidInput},
		{"hybrid point 07", weier, decipherF(func(t *testing.T, k PrivateKey) []byte { in, _ := encrypt(t, k); in[0] = 7; return in }), ErrInvalidInput},
		// Wycheproof ecdh_secp256k1_test.json, "public point not on curve".
		{"secp256k1 point not on curve (Wycheproof)", k1, decipher(mustHex("0449c248edc659e18482b7105748a4b95d3a46952a5ba72da0d702dc97a64e99799d8cff7a5c4b925e4360ece25ccf307d7a9a7063286bbd16ef64c65f546757e4")), ErrInvalidInput},
		{"secp256k1 compressed point", k1, decipherF(func(t *testing.T, k PrivateKey) []byte {
			in, _ := encrypt(t, k)
			return append([]byte{2 + in[64]&1}, in[1:33]...)
		}), ErrInvalidInput},
		{"X25519 31 bytes", []string{"cv25519"}, decipher(repeat(9, 31)), ErrInvalidInput},
		{"X25519 33 bytes without 40", []string{"cv25519"}, decipher(append([]byte{0x41}, repeat(9, 32)...)), ErrInvalidInput},
		{"X25519 34 bytes", []string{"cv25519"}, decipher(repeat(9, 34)), ErrInvalidInput},
		{"X25519 low-order u=0", []string{"cv25519"}, decipher(make([]byte, 32)), ErrInvalidInput},
		{"X25519 low-order u=1", []string{"cv25519"}, decipher(append([]byte{0x40, 1}, make([]byte, 31)...)), ErrInvalidInput},
		{"X448 55 bytes", []string{"cv448"}, decipher(repeat(9, 55)), ErrInvalidInput},
		{"X448 57 bytes without 40", []string{"cv448"}, decipher(repeat(9, 57)), ErrInvalidInput},
		{"X448 low-order u=0", []string{"cv448"}, decipher(make([]byte, 56)), ErrInvalidInput},
		{"X448 low-order u=1", []string{"cv448"}, decipher(append([]byte{1}, make([]byte, 55)...)), ErrInvalidInput},

		// Import.
		{"import without 92", ecc, importF(func(t *testing.T, k PrivateKey) map[byte][]byte { return map[byte][]byte{} }), ErrInvalidInput},
		{"import empty 92", ecc, importF(func(t *testing.T, k PrivateKey) map[byte][]byte { return map[byte][]byte{0x92: {}} }), ErrInvalidInput},
		{"import 92 too long", ecc, importF(func(t *testing.T, k PrivateKey) map[byte][]byte {
			return map[byte][]byte{0x92: repeat(1, 70)}
		}), ErrInvalidInput},
		{"import with wrong 99", ecc, importF(func(t *testing.T, k PrivateKey) map[byte][]byte {
			return map[byte][]byte{0x92: private92(t, k), 0x99: flipLast(point(t, k))}
		}), ErrInvalidInput},
		{"import with 99 of the wrong length", ecc, importF(func(t *testing.T, k PrivateKey) map[byte][]byte {
			return map[byte][]byte{0x92: private92(t, k), 0x99: point(t, k)[1:]}
		}), ErrInvalidInput},
		{"import 92 = 0", weier, importF(func(t *testing.T, k PrivateKey) map[byte][]byte { return map[byte][]byte{0x92: {0}} }), ErrInvalidInput},
		{"import 92 = n", weier, importF(func(t *testing.T, k PrivateKey) map[byte][]byte {
			return map[byte][]byte{0x92: ellipticOf(k.Attributes().Curve).Params().N.Bytes()}
		}), ErrInvalidInput},
		{"import 92 > n", weier, importF(func(t *testing.T, k PrivateKey) map[byte][]byte {
			return map[byte][]byte{0x92: repeat(0xFF, (ellipticOf(k.Attributes().Curve).Params().BitSize+7)/8)}
		}), ErrInvalidInput},
		{"RSA without q", []string{"rsa2048"}, importF(partsWith("standard", 0x93, nil)), ErrInvalidInput},
		{"RSA without e", []string{"rsa2048"}, importF(partsWith("standard", 0x91, nil)), ErrInvalidInput},
		{"RSA empty p", []string{"rsa2048"}, importF(partsWith("standard", 0x92, []byte{})), ErrInvalidInput},
		{"RSA even e", []string{"rsa2048"}, importF(partsWith("standard", 0x91, []byte{1, 0, 0})), ErrInvalidInput},
		{"RSA e = 1", []string{"rsa2048"}, importF(partsWith("standard", 0x91, []byte{1})), ErrInvalidInput},
		{"RSA e over 32 bits", []string{"rsa2048"}, importF(partsWith("standard", 0x91, []byte{1, 0, 0, 0, 1})), ErrInvalidInput},
		// e = 3 with the same p and q is another valid key, unless CRT parts made for e = 65537 come with it.
		{"RSA e not matching dp and dq", []string{"rsa2048"}, importF(partsWith("crt", 0x91, []byte{3})), ErrInvalidInput},
		{"RSA p composite", []string{"rsa2048"}, importF(func(t *testing.T, k PrivateKey) map[byte][]byte {
			p := exportParts(t, k)["standard"]
			p[0x92] = new(big.Int).Add(new(big.Int).SetBytes(p[0x92]), big.NewInt(1)).Bytes() // even
			return p
		}), ErrInvalidInput},
		{"RSA p = q", []string{"rsa2048"}, importF(func(t *testing.T, k PrivateKey) map[byte][]byte {
			p := exportParts(t, k)["standard"]
			p[0x93] = p[0x92]
			return p
		}), ErrInvalidInput},
		{"RSA p too short", []string{"rsa2048"}, importF(partsWith("standard", 0x92, repeat(0xFF, 100))), ErrInvalidInput},
		{"RSA part too long", []string{"rsa2048"}, importF(partsWith("standard", 0x92, repeat(0xFF, 300))), ErrInvalidInput},
		{"RSA wrong n", []string{"rsa2048"}, importF(func(t *testing.T, k PrivateKey) map[byte][]byte {
			p := exportParts(t, k)["standard+n"]
			p[0x97] = flipLast(p[0x97])
			return p
		}), ErrInvalidInput},
		{"RSA wrong u", []string{"rsa2048"}, importF(func(t *testing.T, k PrivateKey) map[byte][]byte {
			p := exportParts(t, k)["crt"]
			p[0x94] = flipLast(p[0x94])
			return p
		}), ErrInvalidInput},
		{"RSA wrong dp", []string{"rsa2048"}, importF(func(t *testing.T, k PrivateKey) map[byte][]byte {
			p := exportParts(t, k)["crt"]
			p[0x95] = flipLast(p[0x95])
			return p
		}), ErrInvalidInput},
		{"RSA wrong dq", []string{"rsa2048"}, importF(func(t *testing.T, k PrivateKey) map[byte][]byte {
			p := exportParts(t, k)["crt"]
			p[0x96] = flipLast(p[0x96])
			return p
		}), ErrInvalidInput},
		{"RSA 2048 parts for rsa3072", []string{"rsa2048"}, func(t *testing.T, k PrivateKey) error {
			_, err := Import(mustParse(t, "010C00002000"), exportParts(t, k)["standard"])
			return err
		}, ErrInvalidInput},

		// Unmarshal.
		{"unmarshal empty", append([]string{"rsa2048"}, ecc...), unmarshal(func(PrivateKey) []byte { return nil }), ErrInvalidInput},
		{"unmarshal unknown version", append([]string{"rsa2048"}, ecc...), unmarshal(func(k PrivateKey) []byte {
			b := k.Marshal()
			b[0] = 2
			return b
		}), ErrInvalidInput},
		{"unmarshal bad header length", append([]string{"rsa2048"}, ecc...), unmarshal(func(k PrivateKey) []byte {
			b := k.Marshal()
			b[1] = 0xFF
			return b
		}), ErrInvalidInput},
		{"unmarshal truncated", append([]string{"rsa2048"}, ecc...), unmarshal(func(k PrivateKey) []byte { b := k.Marshal(); return b[:len(b)-1] }), ErrInvalidInput},
		{"unmarshal extended", append([]string{"rsa2048"}, ecc...), unmarshal(func(k PrivateKey) []byte { return append(k.Marshal(), 0) }), ErrInvalidInput},
		{"unmarshal zero scalar", weier, unmarshal(func(k PrivateKey) []byte {
			b := k.Marshal()
			n := len(b) - len(k.(*weierstrassKey).d)
			return append(b[:n], make([]byte, len(b)-n)...)
		}), ErrInvalidInput},
		{"unmarshal ECDH key as ECDSA and back", weier, func(t *testing.T, k PrivateKey) error {
			other := k.Attributes()
			other.ID = map[ID]ID{IDECDH: IDECDSA, IDECDSA: IDECDH}[other.ID]
			_, err := Unmarshal(other, k.Marshal())
			return err
		}, ErrInvalidInput},
		{"unmarshal under other attributes", append([]string{"rsa2048"}, ecc...), func(t *testing.T, k PrivateKey) error {
			other := mustParse(t, "132A8648CE3D030107") // nistp256 ECDSA
			switch k.Attributes().Curve {
			case CurveP256:
				other = mustParse(t, "132B81040022")
			case CurveNone:
				other = mustParse(t, "010C00002000")
			}
			_, err := Unmarshal(other, k.Marshal())
			return err
		}, ErrInvalidInput},
	}
	keys := map[string]PrivateKey{}
	for _, a := range allAttributes() {
		if a.ID != IDRSA || a.ModulusBits == 2048 {
			keys[attrName(a)] = cachedKey(t, a)
		}
	}
	for _, tt := range tests {
		for _, alg := range tt.algs {
			t.Run(tt.name+"/"+alg, func(t *testing.T) {
				k, ok := keys[alg]
				if !ok {
					t.Fatalf("no key %s", alg)
				}
				err := tt.op(t, k)
				if !errors.Is(err, tt.want) {
					t.Fatalf("got %v, want %v", err, tt.want)
				}
			})
		}
	}
}

// private92 returns the private-key part GnuPG would send for k.
func private92(t *testing.T, k PrivateKey) []byte {
	for _, p := range exportParts(t, k) {
		if d, ok := p[0x92]; ok {
			return d
		}
	}
	t.Fatal("no 92 part")
	return nil
}
