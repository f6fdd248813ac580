package card

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"io"

	"github.com/ccidgadget/ccidgadget/card/algo"
	"github.com/ccidgadget/ccidgadget/store"
)

// Key roles as the store numbers them; C1/C7/CE + role name the role's DOs.
const (
	roleSig = store.RoleSig
	roleDec = store.RoleDec
	roleAut = store.RoleAut
)

// algoRole maps a store key role to the algorithm slot it fills.
func algoRole(r int) algo.Role {
	switch r {
	case roleSig:
		return algo.RoleSign
	case roleDec:
		return algo.RoleDecrypt
	}
	return algo.RoleAuth
}

// Key origins in DO DE.
const (
	originGenerated = 0x01
	originImported  = 0x02
)

// crtRole maps a control reference template tag (B6 SIG, B8 DEC, A4 AUT) to a key role.
func crtRole(tag uint16) (int, bool) {
	switch tag {
	case 0xB6:
		return roleSig, true
	case 0xB8:
		return roleDec, true
	case 0xA4:
		return roleAut, true
	}
	return 0, false
}

// parseCRT reads a key's control reference template: B6/B8/A4 with an empty value or a key reference 84 01 xx.
func parseCRT(b []byte) (role int, rest []byte, ok bool) {
	tag, v, rest, err := readTLV(b)
	if err != nil {
		return 0, nil, false
	}
	role, ok = crtRole(tag)
	if !ok || (len(v) != 0 && (len(v) != 3 || v[0] != 0x84 || v[1] != 0x01)) {
		return 0, nil, false
	}
	return role, rest, true
}

// algoSW maps an algorithm error to a status word.
func (c *Card) algoSW(op string, err error) StatusWord {
	if errors.Is(err, algo.ErrInvalidInput) || errors.Is(err, algo.ErrUnsupported) {
		return SWIncorrectData
	}
	c.log.Error("card: key operation failed", "op", op, "err", err)
	return SWUnknown
}

// generateKeyPair answers GENERATE ASYMMETRIC KEY PAIR (OpenPGP card 3.4.1 §7.2.14): P1=80 generates a key for the
// CRT's slot with its current attributes (PW3), P1=81 reads the public key (no PIN). The answer is 7F49 {81 n,
// 82 e | 86 point}. Generation deletes the slot's fingerprint and date (the host writes new ones) and, for the
// signature key, resets the signature counter, all in the transaction that stores the key.
func (c *Card) generateKeyPair(cmd Command) ([]byte, StatusWord) {
	if cmd.P2 != 0x00 || (cmd.P1 != 0x80 && cmd.P1 != 0x81) {
		return nil, SWIncorrectP1P2
	}
	r, rest, ok := parseCRT(cmd.Data)
	if !ok || len(rest) != 0 {
		return nil, SWIncorrectData
	}
	if cmd.P1 == 0x81 {
		var pub []byte
		err := c.st.View(func(tx *store.Tx) error {
			pub = tx.PublicKey(r)
			return nil
		})
		if err != nil {
			return nil, c.sw(err)
		}
		if pub == nil {
			return nil, SWReferencedDataNotFound
		}
		return tlv(tagPublicKey, pub), SWNoError
	}
	if !c.s.pw3 || c.s.dk == nil {
		return nil, SWSecurityStatusNotSatisfied
	}
	var a algo.Attributes
	if err := c.st.View(func(tx *store.Tx) error { a = attributes(tx, r); return nil }); err != nil {
		return nil, c.sw(err)
	}
	k, err := algo.Generate(a, c.rand)
	if err != nil {
		return nil, c.algoSW("generate", err)
	}
	if sw := c.storeKey(r, k, originGenerated); sw != SWNoError {
		return nil, sw
	}
	return tlv(tagPublicKey, k.PublicDO()), SWNoError
}

// storeKey seals k into slot r and resets what belonged to the slot's previous key, in one transaction.
func (c *Card) storeKey(r int, k algo.PrivateKey, origin byte) StatusWord {
	priv := k.Marshal()
	defer clear(priv)
	dk := c.s.dk
	return c.update(func(tx *store.Tx) error {
		if err := forgetKey(tx, r); err != nil {
			return err
		}
		if err := tx.PutKey(r, dk, priv, k.PublicDO()); err != nil {
			return err
		}
		return setOrigin(tx, r, origin)
	})
}

// importKey answers PUT DATA with the odd INS DB and P1-P2 3FFF: a private key in an Extended Header List
// (§4.4.3.12), 4D { CRT (B6|B8|A4), 7F48 {tag-length list}, 5F48 {the values concatenated} }. Needs PW3.
func (c *Card) importKey(cmd Command) StatusWord {
	if cmd.P1 != 0x3F || cmd.P2 != 0xFF {
		return SWIncorrectP1P2
	}
	if !c.s.pw3 || c.s.dk == nil {
		return SWSecurityStatusNotSatisfied
	}
	ehl, err := onlyTLV(cmd.Data, tagExtendedHeaderList)
	if err != nil {
		return SWIncorrectData
	}
	r, rest, ok := parseCRT(ehl)
	if !ok {
		return SWIncorrectData
	}
	tag, list, rest, err := readTLV(rest)
	if err != nil || tag != 0x7F48 {
		return SWIncorrectData
	}
	payload, err := onlyTLV(rest, 0x5F48)
	if err != nil {
		return SWIncorrectData
	}
	parts := map[byte][]byte{}
	for len(list) > 0 {
		var t uint16
		var n int
		if t, list, err = readTag(list); err != nil || t < 0x91 || t > 0x99 {
			return SWIncorrectData
		}
		if n, list, err = readLen(list); err != nil || n > len(payload) {
			return SWIncorrectData
		}
		if _, dup := parts[byte(t)]; dup {
			return SWIncorrectData
		}
		parts[byte(t)], payload = payload[:n], payload[n:]
	}
	if len(payload) != 0 {
		return SWIncorrectData
	}
	var a algo.Attributes
	if err := c.st.View(func(tx *store.Tx) error { a = attributes(tx, r); return nil }); err != nil {
		return c.sw(err)
	}
	k, err := algo.Import(a, parts)
	if err != nil {
		return c.algoSW("import", err)
	}
	return c.storeKey(r, k, originImported)
}

// loadKey opens role r's private key with the session's data key.
func (c *Card) loadKey(tx *store.Tx, r int) (algo.PrivateKey, error) {
	if !tx.HasKey(r) {
		return nil, SWReferencedDataNotFound
	}
	if c.s.dk == nil {
		return nil, SWSecurityStatusNotSatisfied
	}
	b, err := tx.Key(r, c.s.dk)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	k, err := algo.Unmarshal(attributes(tx, r), b)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// confirm runs the Presence check when the UIF DO (D6 sign, D7 decrypt, D8 authenticate) is on.
func (c *Card) confirm(ctx context.Context, op Operation) StatusWord {
	if c.presence == nil {
		return SWNoError
	}
	tag := uint16(tagUIFSig) + uint16(op-OpSign)
	var on bool
	if err := c.st.View(func(tx *store.Tx) error {
		v := tx.DO(tag)
		on = len(v) == 2 && v[0] != 0
		return nil
	}); err != nil {
		return c.sw(err)
	}
	if !on {
		return SWNoError
	}
	if err := c.presence.Confirm(ctx, op); err != nil {
		c.log.Info("card: user presence not confirmed", "op", op.String(), "err", err)
		return SWSecurityStatusNotSatisfied
	}
	return SWNoError
}

// privateOp opens role r's key and runs fn on it. Errors from the store map to status words; fn's errors are
// algorithm errors.
func (c *Card) privateOp(r int, op string, fn func(algo.PrivateKey) ([]byte, error)) ([]byte, StatusWord) {
	var k algo.PrivateKey
	if err := c.st.View(func(tx *store.Tx) (err error) {
		k, err = c.loadKey(tx, r)
		return err
	}); err != nil {
		return nil, c.sw(err)
	}
	out, err := fn(k)
	if err != nil {
		return nil, c.algoSW(op, err)
	}
	return out, SWNoError
}

// pso answers PERFORM SECURITY OPERATION (§7.2.10–7.2.12): 9E9A sign, 8086 decipher, 8680 encipher (AES).
func (c *Card) pso(ctx context.Context, cmd Command) ([]byte, StatusWord) {
	switch uint16(cmd.P1)<<8 | uint16(cmd.P2) {
	case 0x9E9A:
		return c.sign(ctx, cmd.Data)
	case 0x8086:
		return c.decipher(ctx, cmd.Data)
	case 0x8680:
		return c.encipher(cmd.Data)
	}
	return nil, SWIncorrectP1P2
}

// sign is PSO:COMPUTE DIGITAL SIGNATURE: PW1 (81), the signature key; counts the signature (DO 93) and, unless C4
// byte 1 says PW1 stays valid, ends the PW1 (81) verification.
func (c *Card) sign(ctx context.Context, data []byte) ([]byte, StatusWord) {
	if !c.s.pw1Sign {
		return nil, SWSecurityStatusNotSatisfied
	}
	if len(data) == 0 {
		return nil, SWWrongLength
	}
	if sw := c.confirm(ctx, OpSign); sw != SWNoError {
		return nil, sw
	}
	sig, sw := c.privateOp(roleSig, "sign", func(k algo.PrivateKey) ([]byte, error) { return k.Sign(data) })
	if sw != SWNoError {
		return nil, sw
	}
	var multiple bool
	sw = c.update(func(tx *store.Tx) error {
		multiple = pwStatus(tx)[0] == 0x01
		v := make([]byte, 3)
		copy(v, tx.DO(tagSignatureCounter))
		n := uint32(v[0])<<16 | uint32(v[1])<<8 | uint32(v[2])
		if n < 0xFFFFFF {
			n++
		}
		return tx.SetDO(tagSignatureCounter, []byte{byte(n >> 16), byte(n >> 8), byte(n)})
	})
	if sw != SWNoError {
		return nil, sw
	}
	if !multiple {
		c.s.setVerified(0x81, false)
	}
	return sig, SWNoError
}

// decipher is PSO:DECIPHER with PW1 (82) and the decryption key (or the one MSE chose):
//
//	00 ‖ ciphertext              RSA
//	A6 {7F49 {86 point}}         ECDH; for cv25519 the point with or without the 40 prefix
//	02 ‖ ciphertext              AES (the key in D5), CBC with a zero IV, whole blocks
func (c *Card) decipher(ctx context.Context, data []byte) ([]byte, StatusWord) {
	if !c.s.pw1User {
		return nil, SWSecurityStatusNotSatisfied
	}
	if len(data) < 2 {
		return nil, SWWrongLength
	}
	if data[0] == 0x02 {
		return c.aes(data[1:], false)
	}
	r := c.s.decRole
	var a algo.Attributes
	if err := c.st.View(func(tx *store.Tx) error { a = attributes(tx, r); return nil }); err != nil {
		return nil, c.sw(err)
	}
	var input []byte
	switch {
	case data[0] == 0x00 && a.ID == algo.IDRSA:
		input = data[1:]
	case data[0] == 0xA6 && a.ID != algo.IDRSA: // ECDH, or an ECDSA key MSE chose
		tmpl, err := onlyTLV(data, 0xA6)
		if err != nil {
			return nil, SWIncorrectData
		}
		pk, err := onlyTLV(tmpl, tagPublicKey)
		if err != nil {
			return nil, SWIncorrectData
		}
		if input, err = onlyTLV(pk, 0x86); err != nil {
			return nil, SWIncorrectData
		}
	default:
		return nil, SWIncorrectData
	}
	if sw := c.confirm(ctx, OpDecrypt); sw != SWNoError {
		return nil, sw
	}
	return c.privateOp(r, "decipher", func(k algo.PrivateKey) ([]byte, error) { return k.Decipher(input) })
}

// encipher is PSO:ENCIPHER (§7.2.12): AES-CBC with the D5 key and a zero IV; the answer is 02 ‖ ciphertext.
func (c *Card) encipher(data []byte) ([]byte, StatusWord) {
	if !c.s.pw1User {
		return nil, SWSecurityStatusNotSatisfied
	}
	ct, sw := c.aes(data, true)
	if sw != SWNoError {
		return nil, sw
	}
	return append([]byte{0x02}, ct...), SWNoError
}

// aes runs AES-CBC with a zero IV over whole blocks with the D5 key.
func (c *Card) aes(data []byte, encrypt bool) ([]byte, StatusWord) {
	if len(data) == 0 || len(data)%aes.BlockSize != 0 {
		return nil, SWWrongLength
	}
	var key []byte
	err := c.st.View(func(tx *store.Tx) error {
		if !tx.HasKey(store.RoleAES) {
			return SWReferencedDataNotFound
		}
		if c.s.dk == nil {
			return SWSecurityStatusNotSatisfied
		}
		var err error
		key, err = tx.Key(store.RoleAES, c.s.dk)
		return err
	})
	if err != nil {
		return nil, c.sw(err)
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, SWReferencedDataNotFound
	}
	out := make([]byte, len(data))
	iv := make([]byte, aes.BlockSize)
	if encrypt {
		cipher.NewCBCEncrypter(block, iv).CryptBlocks(out, data)
	} else {
		cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, data)
	}
	return out, SWNoError
}

// internalAuthenticate answers INTERNAL AUTHENTICATE (§7.2.13): PW1 (82), the authentication key (or the one MSE
// chose) signs the data (for RSA a DigestInfo or raw data up to 40% of the modulus, as SSH sends).
func (c *Card) internalAuthenticate(ctx context.Context, cmd Command) ([]byte, StatusWord) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, SWIncorrectP1P2
	}
	if !c.s.pw1User {
		return nil, SWSecurityStatusNotSatisfied
	}
	if len(cmd.Data) == 0 {
		return nil, SWWrongLength
	}
	if sw := c.confirm(ctx, OpAuthenticate); sw != SWNoError {
		return nil, sw
	}
	return c.privateOp(c.s.autRole, "authenticate", func(k algo.PrivateKey) ([]byte, error) { return k.Sign(cmd.Data) })
}

// getChallenge answers GET CHALLENGE (§7.2.15): Le random bytes, at most what C0 announces.
func (c *Card) getChallenge(cmd Command) ([]byte, StatusWord) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, SWIncorrectP1P2
	}
	if cmd.Ne == 0 || cmd.Ne > maxChallenge {
		return nil, SWWrongLength
	}
	b := make([]byte, cmd.Ne)
	if _, err := io.ReadFull(c.rand, b); err != nil {
		return nil, SWUnknown
	}
	return b, SWNoError
}

// manageSecurityEnvironment answers MSE:SET (§7.2.18): P1=41, P2=A4 chooses the key for INTERNAL AUTHENTICATE,
// P2=B8 the key for PSO:DECIPHER; data 83 01 02 (the DEC key) or 83 01 03 (the AUT key). The key's algorithm
// must be able to do that operation. The choice lasts until power off or SELECT.
func (c *Card) manageSecurityEnvironment(cmd Command) StatusWord {
	if cmd.P1 != 0x41 || (cmd.P2 != 0xA4 && cmd.P2 != 0xB8) {
		return SWIncorrectP1P2
	}
	ref, err := onlyTLV(cmd.Data, 0x83)
	if err != nil || len(ref) != 1 {
		return SWIncorrectData
	}
	var r int
	switch ref[0] {
	case 0x02:
		r = roleDec
	case 0x03:
		r = roleAut
	default:
		return SWIncorrectData
	}
	var a algo.Attributes
	if err := c.st.View(func(tx *store.Tx) error { a = attributes(tx, r); return nil }); err != nil {
		return c.sw(err)
	}
	if (cmd.P2 == 0xA4 && !canSign(a)) || (cmd.P2 == 0xB8 && !canDecipher(a)) {
		return SWIncorrectData
	}
	if cmd.P2 == 0xB8 {
		c.s.decRole = r
	} else {
		c.s.autRole = r
	}
	return SWNoError
}

// canSign reports whether a key with attributes a can sign: all but the Montgomery curves (an ECDH key on a
// Weierstrass curve signs with ECDSA, so MSE can swap a P-256 DEC key into the AUT role).
func canSign(a algo.Attributes) bool {
	return a.ID != algo.IDECDH || (a.Curve != algo.CurveCurve25519 && a.Curve != algo.CurveX448)
}

// canDecipher reports whether a key with attributes a can decipher: RSA and every Weierstrass or Montgomery
// curve, not EdDSA.
func canDecipher(a algo.Attributes) bool { return a.ID != algo.IDEdDSA }

// terminateDF answers TERMINATE DF (§7.2.16). It is allowed after VERIFY PW3, or without any PIN once PW3 is
// blocked, so a card whose PINs are all lost can always be reset (GnuPG's factory-reset blocks PW1 and PW3 on
// purpose, then sends E6 and 44). The card wipes at once: every key, certificate, DO and PIN goes (store
// FactoryReset, which also destroys the data key) and the termination state is recorded in the same transaction.
// Until ACTIVATE FILE, SELECT answers 6285 and other commands 6985.
func (c *Card) terminateDF(cmd Command) StatusWord {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return SWIncorrectP1P2
	}
	if !c.s.pw3 && !c.terminated {
		st, sw := c.pinStatus(store.PW3)
		if sw != SWNoError {
			return sw
		}
		if st.Retries != 0 {
			return SWSecurityStatusNotSatisfied
		}
	}
	sw := c.update(func(tx *store.Tx) error {
		if err := tx.FactoryReset(); err != nil {
			return err
		}
		return tx.SetTerminated(true)
	})
	if sw != SWNoError {
		return sw
	}
	c.s.clear()
	c.terminated = true
	return SWNoError
}

// activateFile answers ACTIVATE FILE (§7.2.17): in the termination state it initialises the card to its factory
// state (default PINs 123456 / 12345678, no keys); on an active card it changes nothing.
func (c *Card) activateFile(cmd Command) StatusWord {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return SWIncorrectP1P2
	}
	if !c.terminated {
		return SWNoError
	}
	if sw := c.update(func(tx *store.Tx) error { return tx.FactoryReset() }); sw != SWNoError {
		return sw
	}
	c.s.clear()
	c.terminated = false
	return SWNoError
}

// FactoryReset wipes the card as TERMINATE DF + ACTIVATE FILE do, without asking for a PIN: for the owner of the
// state file (`ccid-gadget card reset`).
func (c *Card) FactoryReset() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.st.Update(func(tx *store.Tx) error { return tx.FactoryReset() }); err != nil {
		return err
	}
	c.s.clear()
	c.terminated = false
	return nil
}
