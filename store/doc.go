// Package store is the OpenPGP card's persistent state in one bbolt file: data objects, the three cardholder
// certificates, PIN verifiers with their retry counters, and private keys sealed under a data key that only a
// correct PIN unwraps. It knows OpenPGP only as far as tags, PIN references and key roles; the card package decides
// what the bytes mean, who may change them and which status word to answer.
//
// It is not an access-control layer (it never asks whether PW3 was verified; the card does), not a key store for
// anything but this card, not a general bbolt wrapper, and not safe for two processes: the second Open of a file
// fails with ErrInUse after Options.Timeout instead of hanging.
//
// # Transactions
//
// [Store.Update] runs one function in one bbolt read-write transaction: a command's changes all commit (with
// fsync, bbolt's default) or none do. [Store.View] is read-only. Both may run from many goroutines.
// [Store.VerifyPIN] is the one operation that uses two transactions on purpose:
//
//  1. load the PIN record; blocked (0 tries) -> ErrBlocked, nothing derived; else retries-1, commit;
//  2. derive and compare the verifier in constant time (outside any transaction);
//  3. wrong -> *AuthError{Retries}; right -> unwrap the data key, then a second transaction restores the counter.
//
// A power cut after 1 leaves the try used, whatever the PIN was; a cut between 2 and 3 after a right PIN also
// leaves one try used (never one too many given back). TestVerifyPINPowerCut checks this with SIGKILL.
//
// # File layout (schema 2)
//
// Buckets, all at the top level; integers are big-endian:
//
//	meta  "schema"     uint32 schema version (2)
//	      "serial"     4 bytes, random at creation (never 0 or FFFFFFFF), kept across factory resets
//	      "epoch"      16 random bytes naming the current data key generation; new at every factory reset
//	      "dsid"       16 bytes, present only when the file was created with a device secret:
//	                   HMAC-SHA256(device secret, "ccidgadget/store/v1/device-secret-id")[:16]
//	      "terminated" 01 while TERMINATE DF's termination state lasts
//	      "adminless"  01 admin-less mode switched on, waiting for PW1 to be set; 02 on, PW1 is the admin PIN;
//	                   absent when off (see AdminLess: SetPIN moves it, FactoryReset removes it)
//	do    uint16 tag -> value, 1..65535 bytes (never 7F21)
//	cert  occurrence byte 0..2 -> DER certificate, 1..65535 bytes
//	pin   PIN byte (0 PW1, 1 RC, 2 PW3) -> PIN record, 134 bytes
//	key   role byte (0 SIG, 1 DEC, 2 AUT, 3 AES) -> key record
//
// PIN record (version 1):
//
//	0      record version (1)
//	1      set (0 or 1)
//	2      retries left
//	3      max retries (1..15; 3 by default)
//	4      PIN length in bytes as sent by the host (1..127)
//	5..8   Argon2id time;  9..12 memory KiB;  13 threads   (the parameters this record was derived with)
//	14..29 salt, 16 random bytes, new at every SetPIN
//	30..61 verifier
//	62..85 wrap nonce (24 bytes);  86..133 wrapped data key (32 bytes + 16-byte tag)
//
// An unset PIN (the reset code before it is set) has set = 0, retries 0, length 0 and zeros after byte 4.
//
// Key record (blob version 1):
//
//	0        blob version (1);  1 role
//	2..17    epoch the blob was sealed under
//	18..41   nonce
//	42..45   length n of the public part
//	46..     public part (n bytes, as given to PutKey), then the sealed private part (ciphertext + 16-byte tag)
//
// # Schema versions and migrations
//
// Schema 1 kept one certificate among the DOs under 7F21; schema 2 keeps three occurrences in bucket cert and
// moves the old one to occurrence 0 (the AUT certificate GnuPG reads as OPENPGP.3). Open runs every migration from
// the file's version in the same transaction as the version bump, then the integrity check. A file from a newer
// version gives ErrSchema and is not touched.
//
// The meta record "adminless" came without a schema bump, so a file that never had the mode on still opens in
// older versions; one that has it is refused by them as corrupt (their Check knows no such record) instead of
// being served with PW3's record as the admin PIN, which its owner would not expect.
//
// # Cryptography
//
// One random 32-byte data key per generation (epoch) seals every private key with XChaCha20-Poly1305 (random
// 24-byte nonce); the associated data is "ccidgadget/store/v1/key-blob" || blob version || role || epoch ||
// SHA-256(public part), so a blob moved to another role, paired with another public key, or left from before a
// factory reset does not open. The data key itself is stored only wrapped, once per set PIN:
//
//	m        = Argon2id(PIN bytes as the host sent them, salt, time, memory, threads, 32)
//	prk      = HKDF-Extract(SHA-256, salt = device secret (empty without one), m)
//	verifier = HKDF-Expand(prk, "ccidgadget/store/v1/pin-verifier" || PIN byte, 32)   (stored)
//	wrapKey  = HKDF-Expand(prk, "ccidgadget/store/v1/pin-wrap-key" || PIN byte, 32)   (never stored)
//	wrap     = nonce || XChaCha20-Poly1305(wrapKey, nonce, data key,
//	                                        "ccidgadget/store/v1/data-key-wrap" || PIN byte || epoch)
//
// "As the host sent them" means after the host's KDF-DO hashing when F9 is set; the store does not care.
// VerifyPIN returns the data key as a [DataKey]; the card keeps it only while the PIN's access state lasts and
// calls Destroy. A DataKey carries its epoch: after a factory reset an old one gives ErrWrongDataKey.
//
// # Cost
//
// DefaultKDF is Argon2id with 1 pass over 16 MiB and 1 lane: 16 MiB fits a Pi Zero's 512 MiB many times over and
// one lane matches its single core. One derivation (BenchmarkDerivePIN) costs 20-50 ms on this development
// machine (2-core Xeon VM shared with other jobs, amd64) and 0.2-0.55 s for a GOARCH=arm GOARM=6 build under
// qemu-arm-static on the same machine; on a real Pi Zero (ARM1176, 1 GHz, no 64-bit arithmetic) it is estimated,
// not measured, at 0.5-1 s. VERIFY pays it once; SetPIN once per PIN; creating a file or a factory reset twice
// (PW1 and PW3). Measured here with `go test -run '^$' -bench . -count=3 ./store` (ranges over runs):
//
//	VerifyPIN, DefaultKDF (derivation + 2 commits)     31-52 ms
//	VerifyPIN, FastKDF                                  4-8 ms
//	Update with one SetDO (one fsynced commit)          1.1-2.2 ms
//	PutKey over an existing key (+ free-page scrub)     2-4 ms
//	Key (open a sealed 1200-byte key)                   6-13 µs
//
// # Deleting secrets
//
// bbolt never rewrites a page in place: a deleted or replaced record's bytes stay in a freed page until bbolt
// reuses it, so "overwrite then delete" is impossible through its API. What the package does instead:
// private keys are only ever written sealed, so old pages hold only ciphertext; a factory reset starts a new epoch
// and a new data key, so old wraps and blobs are useless even where they survive; and after any transaction that
// removed a key blob or a wrap (DeleteKey, PutKey over a key, SetPIN, FactoryReset), Update overwrites every free
// page with random bytes in place (pwrite + fsync inside a write transaction that is rolled back; it allocates
// nothing, so the file does not grow), so in particular the data key wrapped under the default PIN 123456 does not
// linger after the user changes it. While a View is open the scrub is postponed to the end of the next Update
// (a page freed a moment ago may still be in that View's snapshot). Flash storage (SD cards) keeps old blocks
// below the file system where no software can reach them.
//
// # Threat model
//
// A copy of the state file (a stolen or imaged SD card) yields: the serial, the DOs (name, URL, login data, the
// private DOs 0101-0104), the certificates, the public keys, the retry counters and PIN lengths. It does not yield
// a private key or a PIN: keys are sealed under the data key, which is wrapped only under PIN-derived keys.
// Without a device secret, the protection is the PIN's entropy times the Argon2id cost: a 6-digit PW1 falls to an
// offline search, a long passphrase does not; a file still using the default PINs protects nothing. With a device
// secret kept off the SD card (Options.DeviceSecret, read by the CLI from --device-secret FILE), the file alone is
// useless: every verifier and wrap also needs the 256-bit secret, and there is nothing to search. Someone who can
// write the file can destroy it or reset counters, but cannot make the card hand out a key without a PIN: records
// that do not decode give ErrCorrupt, and tampered blobs do not open. Not covered: an attacker who can read the
// running process's memory (the unwrapped data key lives there while a PIN is verified), or who gets the device
// secret and the file together.
//
// # Integrity
//
// [Store.Check] (run by Open; by the card's fuzz and power-cut tests after every step) verifies the schema
// version, every record's format and ranges, that PW1 and PW3 are set with a wrap, that every key blob belongs to
// the current epoch, and bbolt's own page and free-list check. Before bbolt maps a file, Open checks that the
// file holds every page its meta page counts and walks the page tree with bounds checks (every page in range and
// reached once, every element, key, value and inline bucket inside its page: bbolt itself trusts these offsets,
// and one flipped byte could make it build a slice over Go heap memory, which the garbage collector aborts on);
// any panic or memory fault inside bbolt is turned into ErrCorrupt: a truncated or damaged file gives an error,
// never a crash. An empty file (size 0) is a new card.
package store
