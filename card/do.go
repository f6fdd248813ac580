package card

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/ccidgadget/ccidgadget/card/algo"
	"github.com/ccidgadget/ccidgadget/store"
)

// Data object tags (OpenPGP card 3.4.1 §4.4.1).
const (
	tagAID                  = 0x004F
	tagLoginData            = 0x005E
	tagName                 = 0x005B
	tagLanguage             = 0x5F2D
	tagSex                  = 0x5F35
	tagURL                  = 0x5F50
	tagHistorical           = 0x5F52
	tagCardholderData       = 0x0065
	tagApplicationData      = 0x006E
	tagDiscretionary        = 0x0073
	tagSecuritySupport      = 0x007A
	tagSignatureCounter     = 0x0093
	tagExtendedCapabilities = 0x00C0
	tagAttributesSig        = 0x00C1 // C1 SIG, C2 DEC, C3 AUT
	tagPWStatus             = 0x00C4
	tagFingerprints         = 0x00C5
	tagCAFingerprints       = 0x00C6
	tagFingerprintSig       = 0x00C7 // C7 SIG, C8 DEC, C9 AUT
	tagCAFingerprint1       = 0x00CA // CA, CB, CC
	tagTimestamps           = 0x00CD
	tagTimestampSig         = 0x00CE // CE SIG, CF DEC, D0 AUT
	tagResetCode            = 0x00D3
	tagAESKey               = 0x00D5
	tagUIFSig               = 0x00D6 // D6 SIG, D7 DEC, D8 AUT
	tagKeyInformation       = 0x00DE
	tagKDF                  = 0x00F9
	tagAlgorithmInformation = 0x00FA
	tagPrivate1             = 0x0101 // 0101..0104
	tagPrivate2             = 0x0102
	tagPrivate3             = 0x0103
	tagPrivate4             = 0x0104
	tagCertificate          = 0x7F21
	tagPublicKey            = 0x7F49
	tagExtendedLength       = 0x7F66
	tagGeneralFeatures      = 0x7F74
	tagExtendedHeaderList   = 0x004D
)

// wrapped lists the DOs that GET DATA returns as a complete TLV, with their own tag, exactly as they appear
// nested in 6E; every other DO is returned as its value. See the table in the package doc.
var wrapped = map[uint16]bool{
	tagCardholderData: true, tagApplicationData: true, tagDiscretionary: true, tagSecuritySupport: true,
	tagExtendedLength: true, tagGeneralFeatures: true, tagAlgorithmInformation: true,
}

// errNotFound means the tag names no DO this card has (6A88).
var errNotFound = SWReferencedDataNotFound

// defaultPW1Validity is C4 byte 1 on a new card: 00, PW1 (81) is valid for one PSO:CDS only.
const defaultPW1Validity = 0x00

// uifDefault is D6–D8 on a new card: off, general feature "button" (20).
var uifDefault = []byte{0x00, 0x20}

// kdfNone is the F9 value when no KDF-DO is set: KDF algorithm 00 (none).
var kdfNone = []byte{0x81, 0x01, 0x00}

// attributes returns the algorithm attributes of store key role r (C1–C3); rsa2048 when never set.
func attributes(tx *store.Tx, r int) algo.Attributes {
	if b := tx.DO(uint16(tagAttributesSig + r)); b != nil {
		if a, err := algo.ParseAttributes(b); err == nil {
			return a
		}
	}
	return algo.Attributes{ID: algo.IDRSA, ModulusBits: 2048, ExponentBits: 32}
}

// pwStatus is DO C4 (§4.4.3.9): PW1 validity, maximum lengths of PW1, RC, PW3, and their retry counters.
func pwStatus(tx *store.Tx) []byte {
	validity := byte(defaultPW1Validity)
	if b := tx.DO(tagPWStatus); len(b) == 1 {
		validity = b[0]
	}
	return []byte{validity, maxPINLen, maxPINLen, maxPINLen,
		byte(tx.PINStatus(store.PW1).Retries), byte(tx.PINStatus(store.RC).Retries), byte(tx.PINStatus(store.PW3).Retries)}
}

// fixed concatenates three DOs, each zero-padded or cut to width bytes (C5, C6, CD).
func fixed(tx *store.Tx, first uint16, width int) []byte {
	out := make([]byte, 0, 3*width)
	for i := uint16(0); i < 3; i++ {
		v := make([]byte, width)
		copy(v, tx.DO(first+i))
		out = append(out, v...)
	}
	return out
}

// keyInformation is DO DE (§4.4.3.8): key reference and status (00 none, 01 generated, 02 imported) per key.
func keyInformation(tx *store.Tx) []byte {
	origin := tx.DO(tagKeyInformation) // the card's record: one status byte per role
	out := make([]byte, 0, 6)
	for r := 0; r < 3; r++ {
		st := byte(0)
		if tx.HasKey(r) {
			st = 0x02
			if r < len(origin) && origin[r] != 0 {
				st = origin[r]
			}
		}
		out = append(out, byte(r+1), st)
	}
	return out
}

// setOrigin records how role r's key came to be (0 none, 1 generated, 2 imported).
func setOrigin(tx *store.Tx, r int, origin byte) error {
	v := make([]byte, 3)
	copy(v, tx.DO(tagKeyInformation))
	v[r] = origin
	if bytes.Equal(v, []byte{0, 0, 0}) {
		v = nil
	}
	return tx.SetDO(tagKeyInformation, v)
}

// algorithmInformation is the value of DO FA (§4.4.3.11): every supported attribute per key slot.
func algorithmInformation() []byte {
	var out []byte
	for r, role := range []algo.Role{algo.RoleSign, algo.RoleDecrypt, algo.RoleAuth} {
		for _, a := range algo.Supported(role) {
			out = appendTLV(out, uint16(tagAttributesSig+r), a.Bytes())
		}
	}
	return out
}

// generalFeatures is the value of DO 7F74 (§4.1.3.2): 81 01 20 (button) when a Presence check is plugged in,
// 81 01 00 otherwise.
func (c *Card) generalFeatures() []byte {
	if c.presence != nil {
		return []byte{0x81, 0x01, 0x20}
	}
	return []byte{0x81, 0x01, 0x00}
}

// value returns the value of a DO for GET DATA (access already checked), or 6A88 when there is no such DO.
func (c *Card) value(tx *store.Tx, tag uint16) ([]byte, error) {
	switch tag {
	case tagAID:
		return c.aid(), nil
	case tagHistorical:
		return append([]byte(nil), c.historicalBytes()...), nil
	case tagName, tagLanguage, tagSex, tagLoginData, tagURL, tagPrivate1, tagPrivate2, tagPrivate3, tagPrivate4:
		return tx.DO(tag), nil
	case tagCardholderData:
		var v []byte
		for _, t := range []uint16{tagName, tagLanguage, tagSex} {
			v = appendTLV(v, t, tx.DO(t))
		}
		return v, nil
	case tagApplicationData:
		v := appendTLV(nil, tagAID, c.aid())
		v = appendTLV(v, tagHistorical, c.historicalBytes())
		v = appendTLV(v, tagGeneralFeatures, c.generalFeatures())
		if !c.shortAPDU {
			v = appendTLV(v, tagExtendedLength, extendedLengthInfo)
		}
		d, _ := c.value(tx, tagDiscretionary)
		return appendTLV(v, tagDiscretionary, d), nil
	case tagDiscretionary:
		var v []byte
		for _, t := range []uint16{tagExtendedCapabilities, 0xC1, 0xC2, 0xC3, tagPWStatus, tagFingerprints,
			tagCAFingerprints, tagTimestamps, tagKeyInformation, 0xD6, 0xD7, 0xD8} {
			d, _ := c.value(tx, t)
			v = appendTLV(v, t, d)
		}
		return v, nil
	case tagSecuritySupport:
		d, _ := c.value(tx, tagSignatureCounter)
		return appendTLV(nil, tagSignatureCounter, d), nil
	case tagSignatureCounter:
		v := make([]byte, 3)
		copy(v, tx.DO(tagSignatureCounter))
		return v, nil
	case tagExtendedCapabilities:
		return extendedCapabilities(c.shortAPDU), nil
	case 0xC1, 0xC2, 0xC3:
		return attributes(tx, int(tag-tagAttributesSig)).Bytes(), nil
	case tagPWStatus:
		return pwStatus(tx), nil
	case tagFingerprints:
		return fixed(tx, tagFingerprintSig, 20), nil
	case tagCAFingerprints:
		return fixed(tx, tagCAFingerprint1, 20), nil
	case tagTimestamps:
		return fixed(tx, tagTimestampSig, 4), nil
	case 0xC7, 0xC8, 0xC9, 0xCA, 0xCB, 0xCC:
		v := make([]byte, 20)
		copy(v, tx.DO(tag))
		return v, nil
	case 0xCE, 0xCF, 0xD0:
		v := make([]byte, 4)
		copy(v, tx.DO(tag))
		return v, nil
	case 0xD6, 0xD7, 0xD8:
		if v := tx.DO(tag); len(v) == 2 {
			return v, nil
		}
		return append([]byte(nil), uifDefault...), nil
	case tagKeyInformation:
		return keyInformation(tx), nil
	case tagKDF:
		if v := tx.DO(tagKDF); v != nil {
			return v, nil
		}
		return append([]byte(nil), kdfNone...), nil
	case tagAlgorithmInformation:
		return algorithmInformation(), nil
	case tagExtendedLength:
		if c.shortAPDU {
			return nil, errNotFound // only "if extended length is supported"
		}
		return append([]byte(nil), extendedLengthInfo...), nil
	case tagGeneralFeatures:
		return c.generalFeatures(), nil
	case tagCertificate:
		return tx.Cert(c.s.occ), nil
	}
	return nil, errNotFound
}

// getData answers GET DATA (OpenPGP card 3.4.1 §7.2.6), P1-P2 = tag.
func (c *Card) getData(cmd Command) ([]byte, StatusWord) {
	tag := uint16(cmd.P1)<<8 | uint16(cmd.P2)
	switch tag {
	case tagPrivate3:
		if !c.s.pw1User {
			return nil, SWSecurityStatusNotSatisfied
		}
	case tagPrivate4:
		if !c.s.pw3 {
			return nil, SWSecurityStatusNotSatisfied
		}
	}
	var out []byte
	err := c.st.View(func(tx *store.Tx) error {
		v, err := c.value(tx, tag)
		if err != nil {
			return err
		}
		if wrapped[tag] {
			v = tlv(tag, v)
		}
		out = v
		return nil
	})
	return out, c.sw(err)
}

// getNextData answers GET NEXT DATA (§7.2.7): only for 7F21, the next occurrence after the current one.
func (c *Card) getNextData(cmd Command) ([]byte, StatusWord) {
	if uint16(cmd.P1)<<8|uint16(cmd.P2) != tagCertificate {
		return nil, SWReferencedDataNotFound
	}
	if c.s.occ+1 >= store.NumCerts {
		return nil, SWReferencedDataNotFound
	}
	c.s.occ++
	var out []byte
	err := c.st.View(func(tx *store.Tx) error {
		out = tx.Cert(c.s.occ)
		return nil
	})
	return out, c.sw(err)
}

// selectData answers SELECT DATA (§7.2.5): P1 = occurrence 0..2, P2 = 04, data 60 {5C {7F21}}.
// It needs no PIN: the selected occurrence applies to the next GET DATA, PUT DATA and GET NEXT DATA of 7F21.
// A leading length byte (the workaround some clients send for YubiKey firmware ≤ 5.4.3) is tolerated.
func (c *Card) selectData(cmd Command) ([]byte, StatusWord) {
	if cmd.P2 != 0x04 {
		return nil, SWIncorrectP1P2
	}
	data := cmd.Data
	if len(data) > 1 && int(data[0]) == len(data)-1 && data[1] == 0x60 {
		data = data[1:]
	}
	inner, err := onlyTLV(data, 0x60)
	if err != nil {
		return nil, SWIncorrectData
	}
	tagBytes, err := onlyTLV(inner, 0x5C)
	if err != nil {
		return nil, SWIncorrectData
	}
	if len(tagBytes) != 2 || binary.BigEndian.Uint16(tagBytes) != tagCertificate {
		return nil, SWReferencedDataNotFound
	}
	if int(cmd.P1) >= store.NumCerts {
		return nil, SWWrongP1P2
	}
	c.s.occ = int(cmd.P1)
	return nil, SWNoError
}

// sw maps an error from a command's transaction to a status word.
func (c *Card) sw(err error) StatusWord {
	if err == nil {
		return SWNoError
	}
	var sw StatusWord
	if errors.As(err, &sw) {
		return sw
	}
	c.log.Error("card: state file", "err", err)
	return SWMemoryFailure
}
