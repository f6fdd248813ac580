package algo

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
)

// wantKnownError fails unless err is nil or wraps ErrInvalidInput or ErrUnsupported.
func wantKnownError(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, ErrInvalidInput) && !errors.Is(err, ErrUnsupported) {
		t.Fatalf("%s: error %v wraps neither ErrInvalidInput nor ErrUnsupported", what, err)
	}
}

func FuzzParseAttributes(f *testing.F) {
	for _, r := range []Role{RoleSign, RoleDecrypt, RoleAuth} {
		for _, a := range Supported(r) {
			f.Add(a.Bytes())
			f.Add(append(a.Bytes(), 0xFF))
		}
	}
	f.Add([]byte{})
	f.Add(mustHex("0108000020"))
	f.Add(mustHex("132B8104000A"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAttributes(b)
		if err != nil {
			wantKnownError(t, "ParseAttributes", err)
			return
		}
		enc := a.Bytes()
		a2, err := ParseAttributes(enc)
		if err != nil || a2 != a || !bytes.Equal(a2.Bytes(), enc) {
			t.Fatalf("ParseAttributes(%X) = %+v; its Bytes %X parse to %+v, %v", b, a, enc, a2, err)
		}
		if !a.AllowedFor(RoleSign) && !a.AllowedFor(RoleDecrypt) {
			t.Fatalf("%X parsed but is allowed for no role", b)
		}
		if a.String() == "" {
			t.Fatal("empty String")
		}
	})
}

// fuzzAttributes are the attributes the import and operation fuzz targets pick from by index.
func fuzzAttributes() []Attributes { return allAttributes() }

func FuzzImport(f *testing.F) {
	attrs := fuzzAttributes()
	for i, a := range attrs {
		if a.ID == IDRSA {
			continue
		}
		k := cachedKey(f, a)
		for _, p := range exportParts(f, k) {
			f.Add(uint8(i), []byte(nil), []byte(nil), p[0x92], p[0x93], p[0x99])
		}
	}
	k := cachedKey(f, attrs[0]) // rsa2048
	p := exportParts(f, k)["crt"]
	f.Add(uint8(0), p[0x91], p[0x92], p[0x93], p[0x94], p[0x99])
	f.Fuzz(func(t *testing.T, sel uint8, p91, p92, p93, p94, p99 []byte) {
		a := attrs[int(sel)%len(attrs)]
		parts := map[byte][]byte{}
		for tag, v := range map[byte][]byte{0x91: p91, 0x92: p92, 0x93: p93, 0x94: p94, 0x99: p99} {
			if v != nil {
				parts[tag] = v
			}
		}
		k, err := Import(a, parts)
		if err != nil {
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("Import(%v): %v does not wrap ErrInvalidInput", a, err)
			}
			return
		}
		k2, err := Unmarshal(a, k.Marshal())
		if err != nil || !bytes.Equal(k2.PublicDO(), k.PublicDO()) {
			t.Fatalf("imported %v key does not survive Marshal/Unmarshal: %v", a, err)
		}
		h := sha256.Sum256(p92)
		_, err = k.Sign(h[:])
		wantKnownError(t, "Sign", err)
	})
}

// fuzzKeys are fixed keys for FuzzOperate: generated once per process.
func fuzzKeys(f *testing.F) []PrivateKey {
	var out []PrivateKey
	for _, a := range fuzzAttributes() {
		if a.ID == IDRSA && a.ModulusBits != 2048 {
			continue
		}
		out = append(out, cachedKey(f, a))
	}
	return out
}

// FuzzOperate feeds host-controlled bytes to Sign and Decipher of every algorithm.
func FuzzOperate(f *testing.F) {
	keys := fuzzKeys(f)
	for i, k := range keys {
		if canSign(k.Attributes()) {
			f.Add(uint8(i), signInput(k.Attributes()))
		}
		f.Add(uint8(i), append([]byte{0x40}, make([]byte, 32)...))
		f.Add(uint8(i), make([]byte, 65))
		f.Add(uint8(i), append([]byte{4}, bytes.Repeat([]byte{0xFF}, 64)...))
		f.Add(uint8(i), append([]byte{6}, bytes.Repeat([]byte{0x11}, 64)...)) // hybrid form, which decred would parse
	}
	f.Fuzz(func(t *testing.T, sel uint8, input []byte) {
		k := keys[int(sel)%len(keys)]
		_, err := k.Decipher(input)
		wantKnownError(t, "Decipher", err)
		sig, err := k.Sign(input)
		wantKnownError(t, "Sign", err)
		if err == nil && len(sig) == 0 {
			t.Fatal("empty signature")
		}
	})
}

// FuzzUnmarshal feeds arbitrary stored bytes to Unmarshal.
func FuzzUnmarshal(f *testing.F) {
	attrs := fuzzAttributes()
	for i, a := range attrs {
		// No RSA-3072/4096 seeds: generating them under the fuzzer's coverage instrumentation takes minutes.
		if a.ID != IDRSA || a.ModulusBits == 2048 {
			f.Add(uint8(i), cachedKey(f, a).Marshal())
		}
	}
	f.Fuzz(func(t *testing.T, sel uint8, b []byte) {
		a := attrs[int(sel)%len(attrs)]
		k, err := Unmarshal(a, b)
		if err != nil {
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("Unmarshal: %v does not wrap ErrInvalidInput", err)
			}
			return
		}
		if !bytes.Equal(k.Marshal(), b) {
			t.Fatalf("Unmarshal(%X) accepted a non-canonical form: Marshal = %X", b, k.Marshal())
		}
	})
}
