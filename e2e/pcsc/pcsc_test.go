package pcsc_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// colon returns the fields of the first --with-colons record of the given type.
func colon(out, record string) []string {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, ":")
		if f[0] == record {
			return f
		}
	}
	return nil
}

// cardStatus returns `gpg --card-status --with-colons`.
func (b *bench) cardStatus() string {
	b.t.Helper()
	return b.gpg("--with-colons", "--card-status")
}

// TestCardStatus: GnuPG sees the card through pcscd and vpcd, with the serial
// the state file holds and version 3.4.
func TestCardStatus(t *testing.T) {
	b := newBench(t)
	human := b.gpg("--card-status")
	for _, want := range []string{"Reader ...........: " + readerName, "Version ..........: 3.4", "Signature PIN ....: "} {
		if !strings.Contains(human, want) {
			t.Errorf("gpg --card-status lacks %q:\n%s", want, human)
		}
	}
	st := b.cardStatus()
	serial := colon(st, "serial")
	if len(serial) < 2 || !regexp.MustCompile(`^[0-9A-F]{8}$`).MatchString(serial[1]) {
		t.Fatalf("serial record %q in:\n%s", serial, st)
	}
	if v := colon(st, "version"); len(v) < 2 || v[1] != "0304" {
		t.Errorf("version record %q, want 0304", v)
	}
	if r := colon(st, "pinretry"); len(r) < 4 || r[1] != "3" || r[3] != "3" {
		t.Errorf("pinretry record %q, want 3:x:3", r)
	}
	// The same serial offline, from the state file.
	b.stopCard()
	var info struct{ Serial, Version string }
	out := b.run(nil, binary, "card", "info", "--json", "--state", b.state)
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("card info --json: %v\n%s", err, out)
	}
	if info.Serial != serial[1] || info.Version != "3.4" {
		t.Errorf("ccid-gadget card info: serial %s version %s; gpg shows serial %s version 3.4", info.Serial, info.Version, serial[1])
	}
}

// TestPCSCDRestart: when pcscd (and with it vpcd) goes away and comes back,
// the running ccid-gadget vpcd reconnects and the card works again, with its
// state kept.
func TestPCSCDRestart(t *testing.T) {
	b := newBench(t)
	b.agent("SCD SERIALNO", "SCD SETATTR DISP-NAME Restart<<Test")
	b.killAgent()
	for range 2 {
		if err := b.pcscd.stop(); err != nil {
			t.Fatalf("pcscd: %v", err)
		}
		b.startPCSCD()
		b.waitCard()
		if n := colon(b.cardStatus(), "name"); len(n) < 2 || n[1] != "Test" || n[2] != "Restart" {
			t.Errorf("name after pcscd restart: %q", n)
		}
		b.killAgent()
	}
	if b.card.exited() {
		t.Fatal("ccid-gadget vpcd exited when pcscd went away")
	}
}

// algoSet is one of the three algorithm families the issue asks for.
type algoSet struct {
	name     string
	keyAttrs [3]string // SCD SETATTR KEY-ATTR values for SIG, DEC, AUT
	primary  string    // gpg --quick-gen-key algo (sign)
	subkey   string    // gpg --quick-add-key algo (encr)
	status   string    // what gpg --card-status shows in "Key attributes"
}

var algoSets = []algoSet{
	{"rsa2048", [3]string{"--force 1 1 rsa2048", "--force 2 1 rsa2048", "--force 3 1 rsa2048"}, "rsa2048", "rsa2048", "rsa2048 rsa2048 rsa2048"},
	{"nistp256", [3]string{"--force 1 19 nistp256", "--force 2 18 nistp256", "--force 3 19 nistp256"}, "nistp256", "nistp256", "nistp256 nistp256 nistp256"},
	{"ed25519", [3]string{"--force 1 22 ed25519", "--force 2 18 cv25519", "--force 3 22 ed25519"}, "ed25519", "cv25519", "ed25519 cv25519 ed25519"},
}

// signVerifyEncryptDecrypt uses the key of uid for all four operations; the
// private operations happen on the card.
func (b *bench) signVerifyEncryptDecrypt(uid string) {
	t := b.t
	t.Helper()
	data := filepath.Join(b.dir, "data.txt")
	msg := fmt.Sprintf("signed and encrypted by the card in %s\n", t.Name())
	write(t, data, msg)
	before := b.pinRequests()
	b.gpg("--yes", "--local-user", uid, "--output", data+".sig", "--detach-sign", data)
	out := b.run(nil, "gpg", "--batch", "--status-fd", "1", "--verify", data+".sig", data)
	if !strings.Contains(out, "[GNUPG:] GOODSIG") || !strings.Contains(out, "[GNUPG:] VALIDSIG") {
		t.Errorf("signature does not verify:\n%s", out)
	}
	b.gpg("--yes", "--recipient", uid, "--output", data+".gpg", "--encrypt", data)
	plain := b.gpg("--decrypt", data+".gpg")
	if plain != msg {
		t.Errorf("decrypted %q, want %q", plain, msg)
	}
	if b.pinRequests() == before {
		t.Error("no PIN was asked for: the private operations did not reach the card")
	}
}

// TestGenerateOnCard: key attributes set through scdaemon, keys generated on
// the card with gpg --card-edit generate, then sign, verify, encrypt and
// decrypt with gpg.
func TestGenerateOnCard(t *testing.T) {
	for _, a := range algoSets {
		t.Run(a.name, func(t *testing.T) {
			b := newBench(t)
			cmds := []string{"SCD SERIALNO"}
			for _, attr := range a.keyAttrs {
				cmds = append(cmds, "SCD SETATTR KEY-ATTR "+attr)
			}
			b.agent(cmds...)
			human := b.gpg("--card-status")
			if !strings.Contains(human, "Key attributes ...: "+a.status) {
				t.Errorf("key attributes not %q:\n%s", a.status, human)
			}
			uid := "Card Holder <holder-" + a.name + "@example.org>"
			b.dialog(script(map[string][]string{
				"cardedit.prompt":               {"admin", "generate", "quit"},
				"cardedit.genkeys.backup_enc":   {"n"},
				"cardedit.genkeys.replace_keys": {"y"},
				"keygen.valid":                  {"0"},
				"keygen.name":                   {"Card Holder"},
				"keygen.email":                  {"holder-" + a.name + "@example.org"},
				"keygen.comment":                {""},
			}), "--card-edit")
			st := b.cardStatus()
			for _, rec := range []string{"fpr"} {
				f := colon(st, rec)
				if len(f) < 4 || f[1] == "" || f[2] == "" || f[3] == "" {
					t.Errorf("%s record %q: a fingerprint is missing after generation", rec, f)
				}
			}
			b.signVerifyEncryptDecrypt(uid)
		})
	}
}

// TestKeyToCard: software keys moved to the card with keytocard, then used
// from the card.
func TestKeyToCard(t *testing.T) {
	for _, a := range algoSets {
		t.Run(a.name, func(t *testing.T) {
			b := newBench(t)
			uid := "Soft Key <soft-" + a.name + "@example.org>"
			soft := []string{"--passphrase", "", "--pinentry-mode", "loopback"}
			b.gpg(append(soft, "--quick-gen-key", uid, a.primary, "sign,cert", "never")...)
			fpr := colon(b.gpg("--with-colons", "--list-keys", uid), "fpr")[9]
			b.gpg(append(soft, "--quick-add-key", fpr, a.subkey, "encr", "never")...)
			var fprs []string
			for _, l := range strings.Split(b.gpg("--with-colons", "--list-keys", fpr), "\n") {
				if f := strings.Split(l, ":"); f[0] == "fpr" {
					fprs = append(fprs, f[9])
				}
			}
			if len(fprs) != 2 {
				t.Fatalf("software key has %d fingerprints, want 2", len(fprs))
			}
			b.dialog(script(map[string][]string{
				"keyedit.prompt":                {"keytocard", "key 1", "keytocard", "save"},
				"keyedit.keytocard.use_primary": {"y"},
				"cardedit.genkeys.storekeytype": {"1", "2"},
				"cardedit.genkeys.replace_key":  {"y"},
			}), "--edit-key", fpr)
			// Both secret keys are now stubs on the card ('>' after sec/ssb).
			list := b.gpg("--list-secret-keys", uid)
			if !strings.Contains(list, "sec>") || !strings.Contains(list, "ssb>") {
				t.Fatalf("keys not on the card:\n%s", list)
			}
			st := b.cardStatus()
			if f := colon(st, "fpr"); len(f) < 3 || f[1] != fprs[0] || f[2] != fprs[1] {
				t.Errorf("card fingerprints after keytocard %q, want SIG %s and DEC %s", f, fprs[0], fprs[1])
			}
			b.signVerifyEncryptDecrypt(uid)
		})
	}
}

// TestOpenSC: openpgp-tool shows the card; pkcs11-tool signs with the
// authentication key generated on the card, and openssl verifies.
func TestOpenSC(t *testing.T) {
	b := newBench(t)
	b.agent("SCD SERIALNO", "SCD SETATTR KEY-ATTR --force 3 1 rsa2048", "SCD GENKEY --force 3")
	serial := colon(b.cardStatus(), "serial")[1]
	b.killAgent()

	out := b.run(nil, "openpgp-tool", "--card-info", "--key-info")
	t.Logf("openpgp-tool --card-info --key-info:\n%s", out)
	if !strings.Contains(strings.ToUpper(out), serial) {
		t.Errorf("openpgp-tool does not show serial %s", serial)
	}
	if m := regexp.MustCompile(`Aut Fingerprint: ([0-9a-f:]+)`).FindStringSubmatch(out); m == nil || strings.Trim(m[1], "0:") == "" {
		t.Errorf("openpgp-tool shows no authentication key fingerprint")
	}
	if !strings.Contains(out, "3.4") {
		t.Errorf("openpgp-tool does not show version 3.4")
	}
	data := filepath.Join(b.dir, "tbs")
	write(t, data, "signed through PKCS#11 with the authentication key\n")
	pub, sig := filepath.Join(b.dir, "aut.der"), filepath.Join(b.dir, "aut.sig")
	b.run(nil, "pkcs11-tool", "--module", pkcs11, "--read-object", "--type", "pubkey", "--id", "03", "--output-file", pub)
	b.run(nil, "pkcs11-tool", "--module", pkcs11, "--login", "--pin", "123456", "--sign", "--id", "03",
		"--mechanism", "SHA256-RSA-PKCS", "--input-file", data, "--output-file", sig)
	b.run(nil, "openssl", "pkey", "-pubin", "-inform", "DER", "-in", pub, "-out", pub+".pem")
	out = b.run(nil, "openssl", "dgst", "-sha256", "-verify", pub+".pem", "-signature", sig, data)
	if !strings.Contains(out, "Verified OK") {
		t.Errorf("openssl: %s", out)
	}
}

// TestCertificates: the sequence that broke a hardware token in the field.
// Three different certificates go to occurrences OPENPGP.1/2/3 and are read
// back byte for byte with SCD READCERT in a fresh scdaemon session, with no
// PIN asked.
//
// GnuPG 2.2.40 (Debian 12) writes only OPENPGP.3 with SCD WRITECERT (it
// answers "Invalid ID" for 1 and 2; later GnuPG writes them too). So
// OPENPGP.3 goes through WRITECERT (a large RSA certificate: extended
// length), and OPENPGP.1 and .2 through the exact APDUs later GnuPG sends
// (SELECT DATA occ, PUT DATA 7F21, SELECT DATA 0) as raw SCD APDU. The read
// path is GnuPG 2.2.40's own READCERT for all three.
func TestCertificates(t *testing.T) {
	b := newBench(t)
	var certs [3][]byte
	for i := range certs {
		der := filepath.Join(b.dir, fmt.Sprintf("cert%d.der", i+1))
		key := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"}
		if i == 2 {
			key = []string{"-newkey", "rsa:3072"} // over 1 KiB: extended length
		}
		b.run(nil, "openssl", append(append([]string{"req", "-x509", "-nodes", "-days", "2", "-keyout", der + ".key"}, key...),
			"-subj", fmt.Sprintf("/CN=ccidgadget certificate OPENPGP.%d", i+1), "-outform", "DER", "-out", der)...)
		var err error
		if certs[i], err = os.ReadFile(der); err != nil {
			t.Fatal(err)
		}
	}
	if bytes.Equal(certs[0], certs[1]) || len(certs[2]) < 1024 {
		t.Fatal("openssl did not make the certificates wanted")
	}

	// OPENPGP.3 through WRITECERT (admin PIN from the pinentry).
	b.agent("SCD SERIALNO", "/definqfile CERTDATA "+filepath.Join(b.dir, "cert3.der"), "SCD WRITECERT OPENPGP.3")
	// OPENPGP.1 (occurrence 2) and OPENPGP.2 (occurrence 1) as later GnuPG
	// writes them.
	const selData = "04 06 60 04 5C 02 7F 21"
	var seq []string
	seq = append(seq, "00 20 00 83 08 "+fmt.Sprintf("%X", "12345678"))
	for i, occ := range []string{"02", "01"} {
		seq = append(seq, "00 A5 "+occ+" "+selData,
			fmt.Sprintf("00 DA 7F 21 00 %04X %X", len(certs[i]), certs[i]),
			"00 A5 00 "+selData)
	}
	for i, r := range b.apdus(seq...) {
		if sw(r) != "9000" {
			t.Fatalf("APDU %d of the write sequence (%.20s...): SW %s", i, seq[i], sw(r))
		}
	}

	// A fresh agent and scdaemon: no PIN cached, none verified on the card.
	b.killAgent()
	b.setPINs("", "") // a PIN request would now fail
	before := b.pinRequests()
	read3 := filepath.Join(b.dir, "read3.der")
	b.agent("SCD SERIALNO", "/datafile "+read3, "SCD READCERT OPENPGP.3", "/datafile")
	got, err := os.ReadFile(read3)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, certs[2]) {
		t.Errorf("READCERT OPENPGP.3: %d bytes, not the %d written", len(got), len(certs[2]))
	}
	// GnuPG 2.2.40's READCERT refuses OPENPGP.1 and .2 ("Invalid ID") before
	// it sends anything; later GnuPG and OpenSC read them with SELECT DATA
	// occ, GET DATA 7F21 (extended Le), SELECT DATA 0, which is sent here
	// still with no PIN.
	seq = nil
	for _, occ := range []string{"02", "01", "00"} {
		seq = append(seq, "00 A5 "+occ+" "+selData, "00 CA 7F 21 00 00 00", "00 A5 00 "+selData)
	}
	r := b.apdus(seq...)
	for i, occ := range []int{2, 1, 0} {
		get := r[3*i+1]
		if sw(get) != "9000" || !bytes.Equal(get[:len(get)-2], certs[i]) {
			t.Errorf("GET DATA 7F21 occurrence %d (OPENPGP.%d): SW %s, %d bytes; want 9000 and the %d bytes written",
				occ, i+1, sw(get), len(get)-2, len(certs[i]))
		}
	}
	if n := b.pinRequests() - before; n != 0 {
		t.Errorf("reading certificates asked for %d PINs, want none", n)
	}

	// OpenSC reads all three too (IDs 01 SIG, 02 DEC, 03 AUT), no PIN.
	b.killAgent()
	for i := range certs {
		pem := filepath.Join(b.dir, fmt.Sprintf("opensc%d.pem", i+1))
		b.run(nil, "pkcs15-tool", "--read-certificate", fmt.Sprintf("%02d", i+1), "--output", pem)
		b.run(nil, "openssl", "x509", "-in", pem, "-outform", "DER", "-out", pem+".der")
		got, err := os.ReadFile(pem + ".der")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, certs[i]) {
			t.Errorf("pkcs15-tool --read-certificate %02d: not the certificate written to OPENPGP.%d", i+1, i+1)
		}
	}
}

// TestFactoryReset: both PINs blocked, then GnuPG's factory-reset sequence
// (card-edit factory-reset: TERMINATE DF, ACTIVATE FILE) gives back a fresh
// card that takes the default PINs.
func TestFactoryReset(t *testing.T) {
	b := newBench(t)
	b.agent("SCD SERIALNO", "SCD SETATTR DISP-NAME Reset<<Me", "SCD GENKEY --force 1")
	st := b.cardStatus()
	if f := colon(st, "fpr"); len(f) < 2 || f[1] == "" {
		t.Fatalf("no signature key before the reset: %q", f)
	}
	// Block PW1 and PW3 with wrong VERIFYs sent as raw APDUs.
	block := []string{"00200081063030303030FF", "00200081063030303030FF", "00200081063030303030FF",
		"0020008308303030303030FFFF", "0020008308303030303030FFFF", "0020008308303030303030FFFF"}
	want := []string{"63C2", "63C1", "6983", "63C2", "63C1", "6983"}
	for i, r := range b.apdus(block...) {
		if sw(r) != want[i] && !(want[i] == "6983" && sw(r) == "63C0") {
			t.Errorf("wrong VERIFY %d: SW %s, want %s", i, sw(r), want[i])
		}
	}
	if r := colon(b.cardStatus(), "pinretry"); len(r) < 4 || r[1] != "0" || r[3] != "0" {
		t.Fatalf("pinretry %q after blocking, want 0:x:0", r)
	}
	b.dialog(script(map[string][]string{
		"cardedit.prompt":                {"admin", "factory-reset", "quit"},
		"cardedit.factory-reset.proceed": {"y"},
		"cardedit.factory-reset.really":  {"yes"},
	}), "--card-edit")
	st = b.cardStatus()
	if r := colon(st, "pinretry"); len(r) < 4 || r[1] != "3" || r[3] != "3" {
		t.Errorf("pinretry %q after factory reset, want 3:x:3", r)
	}
	if f := colon(st, "fpr"); len(f) > 1 && f[1] != "" {
		t.Errorf("signature key survived the reset: %q", f)
	}
	if n := colon(st, "name"); len(n) > 1 && n[1] != "" {
		t.Errorf("name survived the reset: %q", n)
	}
	// The default PINs work again.
	b.agent("SCD SERIALNO", "SCD GENKEY --force 1")
	if f := colon(b.cardStatus(), "fpr"); len(f) < 2 || f[1] == "" {
		t.Fatalf("no signature key after generating one with the default PINs: %q", f)
	}

	// The same offline: ccid-gadget card reset, then the card comes back empty.
	b.killAgent()
	b.stopCard()
	out := b.run(nil, binary, "card", "reset", "--state", b.state)
	if !strings.Contains(out, "factory reset") {
		t.Errorf("card reset printed %q", out)
	}
	b.startCard()
	st = b.cardStatus()
	if f := colon(st, "fpr"); len(f) > 1 && f[1] != "" {
		t.Errorf("signature key survived ccid-gadget card reset: %q", f)
	}
	if r := colon(st, "pinretry"); len(r) < 4 || r[1] != "3" || r[3] != "3" {
		t.Errorf("pinretry %q after card reset, want 3:x:3", r)
	}
}

// TestKDFSetup: GnuPG's kdf-setup (card-edit) switches the card to the
// KDF-DO; afterwards gpg hashes every PIN before sending it, and on-card key
// generation, signing and decryption still work with the same PINs typed.
func TestKDFSetup(t *testing.T) {
	b := newBench(t)
	b.dialog(script(map[string][]string{
		"cardedit.prompt": {"admin", "kdf-setup", "quit"},
	}), "--card-edit")
	human := b.gpg("--card-status")
	if !strings.Contains(human, "KDF setting ......: on") {
		t.Fatalf("KDF not on after kdf-setup:\n%s", human)
	}
	b.agent("SCD SERIALNO", "SCD SETATTR KEY-ATTR --force 1 22 ed25519", "SCD SETATTR KEY-ATTR --force 2 18 cv25519")
	b.dialog(script(map[string][]string{
		"cardedit.prompt":               {"admin", "generate", "quit"},
		"cardedit.genkeys.backup_enc":   {"n"},
		"cardedit.genkeys.replace_keys": {"y"},
		"keygen.valid":                  {"0"},
		"keygen.name":                   {"KDF Holder"},
		"keygen.email":                  {"kdf@example.org"},
		"keygen.comment":                {""},
	}), "--card-edit")
	b.signVerifyEncryptDecrypt("kdf@example.org")
	// The PINs on the card are no longer the typed ones: a raw VERIFY with
	// the plain default PIN fails.
	if r := b.apdus("00 20 00 81 06 313233343536"); sw(r[0]) == "9000" {
		t.Error("plain PW1 accepted after kdf-setup: the card did not switch to hashed PINs")
	}
}

// TestSSH: the authentication key serves SSH through gpg-agent's ssh-agent
// emulation: ssh-add lists it and ssh-keygen -Y signs with it (INTERNAL
// AUTHENTICATE on the card), and the signature verifies.
func TestSSH(t *testing.T) {
	b := newBench(t)
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen not installed (Debian package openssh-client)")
	}
	write(t, filepath.Join(b.home, "gpg-agent.conf"), readFile(t, filepath.Join(b.home, "gpg-agent.conf"))+"enable-ssh-support\n")
	b.agent("SCD SERIALNO", "SCD SETATTR KEY-ATTR --force 3 22 ed25519", "SCD GENKEY --force 3")
	// One agent for the whole test: killing it and starting another races
	// with the old one removing its sockets, the ssh one included.
	b.cardStatus() // the agent learns the card's keys
	sock := strings.TrimSpace(b.run(nil, "gpgconf", "--list-dirs", "agent-ssh-socket"))
	waitFor(t, "gpg-agent's ssh socket", func() bool { _, err := os.Stat(sock); return err == nil })
	b.env = append(b.env, "SSH_AUTH_SOCK="+sock)
	keys := b.run(nil, "ssh-add", "-L")
	var pub string
	for _, l := range strings.Split(keys, "\n") {
		if strings.HasPrefix(l, "ssh-ed25519 ") && strings.Contains(l, "cardno:") {
			pub = l
		}
	}
	if pub == "" {
		t.Fatalf("ssh-add -L does not list the card's key:\n%s", keys)
	}
	pubFile, data := filepath.Join(b.dir, "id_card.pub"), filepath.Join(b.dir, "ssh-data")
	write(t, pubFile, pub+"\n")
	write(t, data, "signed over SSH by the authentication key\n")
	before := b.pinRequests()
	b.run(nil, "ssh-keygen", "-Y", "sign", "-f", pubFile, "-n", "file", data)
	if b.pinRequests() == before {
		t.Error("no PIN asked: the signature did not come from the card")
	}
	allowed := filepath.Join(b.dir, "allowed_signers")
	f := strings.Fields(pub)
	write(t, allowed, "holder@example.org "+f[0]+" "+f[1]+"\n")
	out, err := b.try([]byte(readFile(t, data)), "ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "holder@example.org", "-n", "file", "-s", data+".sig")
	if err != nil || !strings.Contains(out, "Good") {
		t.Errorf("ssh-keygen -Y verify: %v\n%s", err, out)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
