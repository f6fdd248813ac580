// Package card is the OpenPGP card application (OpenPGP smart card specification 3.4.1) that the gadget carries:
// it takes command APDUs and returns response APDUs, keeping its state in a store.Store (bbolt).
//
// A Card satisfies the reader's card interface (PowerOn, PowerOff, Transmit) and knows nothing of CCID, USB or
// vpcd. Transmit never fails for a protocol error: those are status words. It fails only when the card cannot
// answer at all (ErrNotPowered, a done context).
//
// # ISO/IEC 7816-4 layer
//
// ParseCommand decodes the four APDU cases in short and extended form and rejects (6700) any APDU whose length
// fields do not account for exactly its bytes (and, with Options.ShortAPDUOnly, any extended one). Command chaining (CLA bit 10) joins the data of links that repeat
// INS, P1 and P2 (another INS/P1/P2 mid-chain: 6883, except that a SELECT drops the chain and runs; chaining an
// INS that takes no data: 6884). A response
// longer than the host's Le — or, without Le, than 256 bytes for a short APDU — is returned in parts with 61xx
// and GET RESPONSE (C0), in short and extended APDUs alike (a host's receive buffer may be just Le + 2 bytes:
// PC/SC fails the whole exchange when the card sends more); any other command drops the rest. Classes other than 00/10 are refused: proprietary 6E00,
// logical channels 6881, secure messaging 6882. Status words are the StatusWord constants.
//
// # Identity: ATR, historical bytes, C0, 7F66
//
// They agree with each other and with the reader's exchange level. By default (a reader at the short+extended
// APDU level):
//
//	ATR      3B DA 18 FF 81 B1 FE 65 1F 03 <historical> TCK   (21 bytes, T=1 only, TCK valid)
//	5F52     00 31 C5 73 C0 01 C0 05 90 00                      (chaining + extended Lc/Le; life cycle 05)
//	C0       7F 00 0800 1000 00FF 00 01                         (GET CHALLENGE ≤ 2048, certificate ≤ 4096,
//	                                                             special DOs ≤ 255, no PIN block 2, MSE)
//	7F66     02 02 0800 02 02 0800                              (2048-byte command and response APDUs)
//	AID      D2 76 00 01 24 01 | 03 04 | FF FE | serial | 00 00
//
// With Options.ShortAPDUOnly (a reader at the short APDU level, such as the gnuk persona's):
//
//	ATR      3B DA 18 FF 81 B1 FE 65 1F 03 <historical> TCK   (TCK recomputed)
//	5F52     00 31 C5 73 C0 01 80 05 90 00                      (chaining only, no extended Lc/Le)
//	C0       7F 00 0100 1000 00FF 00 01                         (GET CHALLENGE ≤ 256, the rest as above)
//	7F66     absent: GET DATA 7F66 is 6A88 and 6E leaves it out (the DO exists only with extended length)
//	AID      as above
//
// By default extended length is announced (historical bytes) and accepted (up to 64 KiB per APDU; a chain up to
// 16 KiB). 7F66 announces 2048 bytes each way, which fits the reader's dwMaxCCIDMessageLength of 2058 in one
// CCID message; GnuPG does not read 7F66 and sends one extended APDU (the reader chains it at the CCID level),
// clients that honour 7F66 chain at the APDU level. Certificates up to C0's 4096 bytes arrive either way.
// With ShortAPDUOnly an APDU with extended length fields is refused with 6700 (wrong length: to a card without
// extended length, 00 after the header is a short Lc of zero followed by bytes no short case accounts for,
// ISO/IEC 7816-3 §12.1.3), so hosts that read 5F52, as scdaemon does, chain commands in short APDUs and fetch
// long answers with 61xx and GET RESPONSE in parts of at most 256 bytes; certificates up to 4096 bytes still fit.
// The manufacturer FFFE is from the unmanaged range FF00..FFFE; the serial is the store's, random when the state
// file is created and kept across factory resets.
//
// GnuPG sniffs the card type before it selects the application (scd/app.c): it sends SELECT 3F00, and on
// success types the card by the ATR (byte 2 = 11 in a 21-byte ATR: Gnuk; byte 7 = 75: ZeitControl); on failure it
// probes the YubiKey manager AID. This card answers SELECT 3F00 with 9000, as any ISO card with a master file,
// and its ATR has TA1 = 18 and TB3 = 65, so GnuPG types it generic and runs the plain OpenPGP paths: its own
// kdf-setup sequence rather than Gnuk's, no YubiKey attestation. The Yubico AID and GET VERSION (F1) are unknown
// here (6A82, 6D00), so clients never apply YubiKey firmware workarounds.
//
// # Data objects and their encoding
//
// GET DATA returns each DO in one canonical encoding, and a DO nested in 6E, 73, 65 or 7A is byte for byte what
// GET DATA returns for it (with tag and length in front where GET DATA returns the value):
//
//	DO                         GET DATA returns                   nested as
//	6E, 65, 73, 7A             the whole TLV, own tag included     the same bytes
//	7F66, 7F74, FA             the whole TLV, own tag included     the same bytes
//	F9 (KDF-DO)                the value as written (81 01 ..)     —
//	7F21                       the certificate (DER) of the        —
//	                           selected occurrence
//	every primitive DO         the value                           tag ‖ length ‖ value
//
// The application templates are returned with their tag as YubiKey, SmartPGP and canokey return 6E (ykman needs
// it; GnuPG and openpgp-card search TLVs recursively and accept both). F9 is returned bare because GnuPG reads
// it at fixed offsets from the first byte. Fixed-width DOs are zero-padded: C5 and C6 60 bytes, CD 12, C7–CC 20,
// CE–D0 4, 93 3; C4 is 7 bytes; DE lists 01 02 03 each with status 00 none, 01 generated, 02 imported.
// D6–D8 read 00 20 until set; F9 reads 81 01 00 until set.
//
// Access (write): PW3 for everything except 0101 and 0103 (PW1 as 82). Read: free except 0103 (PW1 82) and
// 0104 (PW3); D3 and D5 are write-only (6A88). C1–C3 accept exactly what FA lists for the slot (algo.Supported);
// a different value deletes that slot's key, fingerprint, date and (signature slot) counter in the same
// transaction. C4 takes one byte (or up to the whole DO, of which only the first byte counts): 00 PW1 valid for
// one signature, 01 for several. Writing F9 with the initial hashes 87/88 sets PW1 and PW3 to them and removes the
// resetting code, in one transaction, because GnuPG 2.2 (Debian 12) writes only F9 and then sends hashed PINs
// (checked with gpg 2.2.40 over vpcd: kdf-setup, key generation, sign, decrypt). Newer GnuPG re-keys the card
// itself afterwards (CHANGE REFERENCE DATA 83 old ‖ hashed default, VERIFY 83, RESET RETRY COUNTER 81, PUT
// DATA D3 empty); in the session that wrote F9, with PW3 still verified, a CHANGE REFERENCE DATA 83 to exactly
// the 88 hash is answered 9000 without comparing, since PW3 already is that hash, so both versions work.
// Writing 81 01 00 after KDF was on restores the default PINs. A KDF-DO without 87/88 leaves the PINs alone.
// Keys survive all of this: the data key is rewrapped under the new PINs. 7F74 is 81 01 20 (button) when Options.Presence is set, 81 01 00 otherwise; a UIF flag
// (D6–D8 01 or 02; 02 only a factory reset clears) makes the card ask Presence before that key's operation and
// answer 6982 when not confirmed.
//
// # Certificates
//
// Three cardholder certificates (7F21): occurrence 0 = AUT (the default), 1 = DEC, 2 = SIG, as GnuPG and OpenSC
// map OPENPGP.3, .2 and .1. SELECT DATA (00 A5 occ 04 60 04 5C 02 7F 21) needs no PIN; GET DATA, PUT DATA (PW3)
// and GET NEXT DATA (which advances the occurrence) act on the selected occurrence; another tag is 6A88, an
// occurrence ≥ 3 is 6B00. The occurrence returns to 0 on SELECT of the application and on power off.
//
// # PINs and security state
//
// VERIFY (81 and 82 are PW1 with two access states, 83 is PW3) goes through store.VerifyPIN, which commits the
// decrement before it compares in constant time; wrong = 63Cx, blocked = 6983. VERIFY without data is a status
// query (9000 or 63Cx) and never counts a try; P1 = FF forgets the verification. PW1 as 81 lasts for one PSO:CDS
// unless C4 byte 1 is 01. The verifications, the unwrapped data key, the occurrence, the MSE choice, chains and
// pending responses live in memory only and end on PowerOff/PowerOn. Minimum PIN lengths: PW1 6, RC 8, PW3 8;
// maximum 127 (room for KDF hashes). CHANGE REFERENCE DATA and RESET RETRY COUNTER with the resetting code split
// old ‖ new at the stored length, and always compare first, so a wrong length costs a try and reveals nothing.
//
// TERMINATE DF is allowed after VERIFY PW3 or, without any PIN, once PW3 is blocked — gpg-card factory-reset
// blocks PW1 and PW3 on purpose and then sends E6 and 44, so a card whose PINs are all lost can always be reset.
// E6 wipes at once (store.FactoryReset destroys the data key) and records the termination state in the same
// transaction; until ACTIVATE FILE the card answers SELECT with 6285 and other commands with 6985. ACTIVATE FILE
// on an active card changes nothing.
//
// No PIN, key or decrypted byte reaches the Logger: it gets INS, P1, P2, lengths and status words.
//
// # Admin-less mode (opt-in)
//
// Gnuk's admin-less mode, off by default and switched per state file by its owner (`ccid-gadget card admin-less
// on|off`, store.Tx.SetAdminLess; kept in the state file). What Gnuk does, read from its sources: src/ac.c
// verify_admin_0 (no PW3 keystring but a PW1 one: VERIFY 83 runs verify_user_0, PW1's comparison and PW1's error
// counter, and marks the admin as authorised "by user"); src/openpgp.c cmd_change_password (a new PW1 needs 8
// bytes while PW3 has no keystring; changing PW1 with no PW3 set enters the mode and drops the admin
// authorisation; CHANGE REFERENCE DATA 83 then takes PW1 as the old PIN and the new PW3 ends the mode),
// cmd_reset_user_password (the same 8-byte rule), cmd_terminate_df (allowed once PW1 is locked when PW3 is not
// set); src/openpgp-do.c rw_pw_status (C4 shows PW3's own counter); tests/card_test_personalize_admin_less.py
// (VERIFY 83 with PW1, PUT DATA 5E 5B 5F2D 5F35 5F50 C4, C4 still reads PW3 = 3, CHANGE REFERENCE DATA 83 with
// PW1 as old, then VERIFY 83 with the new PW3) and doc/gnuk-personalization.rst ("only changing PIN of user
// enables admin less mode"). This card does the same, with the mode's state in the store:
//
//   - pending (switched on, PW1 not set since): the specification's behaviour; PW3 is still the admin PIN.
//   - active, entered by the first new PW1 (CHANGE REFERENCE DATA 81, RESET RETRY COUNTER either way), which
//     then needs at least 8 bytes and ends a PW3 verification: VERIFY 83 and the old part of CHANGE REFERENCE
//     DATA 83 are compared against PW1's record. A wrong PIN decrements PW1's counter only, committed before the
//     comparison like every VERIFY; PW3's counter is never touched and no counter is given back (a right PIN
//     restores PW1's, as VERIFY 81/82 does). The data key comes from PW1's wrap, so keys made or imported
//     meanwhile are sealed as usual. TERMINATE DF without a PIN is allowed once PW1 is blocked (Gnuk). C4 shows
//     PW3's own counter, which stays where it was (Gnuk). VERIFY 83 without data reports PW1's counter, the one
//     the next VERIFY 83 decrements (Gnuk reports PW3's there), and a wrong one answers 63Cx (Gnuk 6982).
//   - off again as soon as PW3 is set: CHANGE REFERENCE DATA 83, or a KDF-DO write that sets the PINs (Gnuk
//     goes back to its factory state there; this card turns the mode off). The owner may also switch it
//     off, which makes PW3's record, whatever it holds, the admin PIN again.
//
// A factory reset (TERMINATE DF + ACTIVATE FILE, or `ccid-gadget card reset`) clears the setting. Gnuk has no
// setting, so a reset Gnuk re-enters the mode at the next PW1 change; clearing is the safer choice because host
// tools initialise a reset card as the specification says (new PW1, then PW3 with old 12345678), which in
// admin-less mode fails and costs a PW1 try — the confusion of OpenKeychain PR #1914 and why the mode is opt-in.
//
// # Keys
//
// GENERATE ASYMMETRIC KEY PAIR, key import (PUT DATA DB 3FFF with the 4D extended header list), PSO:CDS,
// PSO:DECIPHER (RSA 00 ‖ ct; A6 {7F49 {86 point}} for ECDH, cv25519 with or without the 40 prefix; 02 ‖ ct for
// AES with the D5 key), PSO:ENCIPHER (AES-CBC, zero IV, whole blocks), INTERNAL AUTHENTICATE and MANAGE SECURITY
// ENVIRONMENT (P2 A4 / B8 with 83 01 02|03: the DEC key may authenticate and the AUT key decipher when their
// algorithms can). Private keys are sealed by the store under the data key that the last PIN check unwrapped;
// a key and its public part, fingerprint reset and origin are written in one transaction.
//
// The algorithms (RSA 2048, 3072 and 4096; ECDSA and ECDH on NIST P-256, P-384, P-521, brainpool P256r1, P384r1,
// P512r1 and secp256k1; Ed25519, Ed448, X25519, X448) are in card/algo, which chose its libraries (standard
// library first; ProtonMail/go-crypto for brainpool; decred's dcrec/secp256k1 for secp256k1; cloudflare/circl for
// Ed448 and X448; see its package doc). This package adds no cryptography of its own beyond AES-CBC from
// crypto/aes and crypto/cipher for the D5 key.
//
// # What this package is not
//
// It is not a reader: ATR delivery, CCID framing, time extensions and faults belong to package ccid. It does no
// secure messaging, no PIN block 2 format, no attestation, no admin-less mode unless its owner switches it on,
// and no proprietary YubiKey or Gnuk commands. It does not hash PINs for a KDF-DO: the host does, as the
// specification says.
package card
