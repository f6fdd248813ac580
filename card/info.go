package card

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/ccidgadget/ccidgadget/store"
)

// Info summarises the card's state for `ccid-gadget card info` and `status`. It holds no secret.
type Info struct {
	AID            []byte
	Version        uint16 // 0x0304
	Manufacturer   uint16
	Serial         [4]byte
	Name           string // 5B, as stored ("Last<<First")
	Language       string // 5F2D
	URL            string // 5F50
	Login          string // 5E
	Keys           [3]KeyInfo
	PW1, RC, PW3   store.PINStatus
	PW1Multiple    bool // C4 byte 1: PW1 stays valid for several signatures
	SignatureCount uint32
	CertLengths    [3]int // 7F21 occurrences 0 (AUT), 1 (DEC), 2 (SIG)
	KDF            bool   // a KDF-DO (F9) with a KDF algorithm is set
	Terminated     bool
}

// KeyInfo describes one key slot.
type KeyInfo struct {
	Role        string // "sign", "decrypt", "auth"
	Attributes  string // "rsa2048", "ed25519", ...
	Present     bool
	Origin      string // "generated", "imported" or "" when absent
	Fingerprint []byte // 20 bytes, or nil
	Created     time.Time
}

// Info reads the card's state.
func (c *Card) Info() (Info, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in := Info{AID: c.aid(), Version: Version, Manufacturer: Manufacturer, Serial: c.serial, Terminated: c.terminated}
	err := c.st.View(func(tx *store.Tx) error {
		in.Name = string(tx.DO(tagName))
		in.Language = string(tx.DO(tagLanguage))
		in.URL = string(tx.DO(tagURL))
		in.Login = string(tx.DO(tagLoginData))
		in.PW1, in.RC, in.PW3 = tx.PINStatus(store.PW1), tx.PINStatus(store.RC), tx.PINStatus(store.PW3)
		in.PW1Multiple = pwStatus(tx)[0] == 0x01
		ctr := make([]byte, 4)
		copy(ctr[1:], tx.DO(tagSignatureCounter))
		in.SignatureCount = binary.BigEndian.Uint32(ctr)
		for occ := range in.CertLengths {
			in.CertLengths[occ] = len(tx.Cert(occ))
		}
		kdf := tx.DO(tagKDF)
		in.KDF = len(kdf) >= 3 && kdf[2] != 0
		ki := keyInformation(tx)
		for r := range in.Keys {
			k := KeyInfo{Role: algoRole(r).String(), Attributes: attributes(tx, r).String(), Present: tx.HasKey(r)}
			switch ki[2*r+1] {
			case originGenerated:
				k.Origin = "generated"
			case originImported:
				k.Origin = "imported"
			}
			if fp := tx.DO(uint16(tagFingerprintSig + r)); len(fp) == 20 {
				k.Fingerprint = fp
			}
			if ts := tx.DO(uint16(tagTimestampSig + r)); len(ts) == 4 {
				if s := binary.BigEndian.Uint32(ts); s != 0 {
					k.Created = time.Unix(int64(s), 0).UTC()
				}
			}
			in.Keys[r] = k
		}
		return nil
	})
	if err != nil {
		return Info{}, fmt.Errorf("card: info: %w", err)
	}
	return in, nil
}

// String prints one fact per line.
func (in Info) String() string {
	var b strings.Builder
	line := func(k, format string, args ...any) {
		fmt.Fprintf(&b, "%-22s "+format+"\n", append([]any{k + ":"}, args...)...)
	}
	line("application", "OpenPGP card %d.%d", in.Version>>8, in.Version&0xFF)
	line("AID", "%X", in.AID)
	line("manufacturer", "%04X (unmanaged range)", in.Manufacturer)
	line("serial", "%X", in.Serial[:])
	line("ident", "%04X:%X", in.Manufacturer, in.Serial[:])
	line("name", "%q", in.Name)
	line("language", "%q", in.Language)
	line("url", "%q", in.URL)
	line("login", "%q", in.Login)
	for _, k := range in.Keys {
		state := "none"
		if k.Present {
			state = k.Origin
		}
		line(k.Role+" key", "%s, %s", k.Attributes, state)
		if k.Fingerprint != nil {
			line(k.Role+" fingerprint", "%X", k.Fingerprint)
		}
		if !k.Created.IsZero() {
			line(k.Role+" created", "%s", k.Created.Format(time.RFC3339))
		}
	}
	pin := func(name string, st store.PINStatus) {
		if !st.Set {
			line(name, "not set")
			return
		}
		line(name, "%d of %d tries left", st.Retries, st.MaxRetries)
	}
	pin("PW1 (user PIN)", in.PW1)
	pin("RC (resetting code)", in.RC)
	pin("PW3 (admin PIN)", in.PW3)
	line("PW1 for signing", "%s", map[bool]string{true: "valid for several signatures", false: "once per signature"}[in.PW1Multiple])
	line("signatures", "%d", in.SignatureCount)
	for occ, n := range in.CertLengths {
		line(fmt.Sprintf("cert %d (%s)", occ, []string{"auth", "decrypt", "sign"}[occ]), "%d bytes", n)
	}
	line("KDF-DO", "%s", map[bool]string{true: "on", false: "off"}[in.KDF])
	if in.Terminated {
		line("state", "terminated (ACTIVATE FILE or reset to reinitialise)")
	}
	return b.String()
}
