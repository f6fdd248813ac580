package card

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/ccidgadget/ccidgadget/store"
)

// pinCmd builds a PIN command whose data is the concatenation of parts (PINs as text).
func pinCmd(ins, p1, p2 byte, parts ...string) Command {
	var data []byte
	for _, p := range parts {
		data = append(data, p...)
	}
	return Command{INS: ins, P1: p1, P2: p2, Data: data}
}

func verifyCmd(p2 byte, pin string) Command { return pinCmd(0x20, 0x00, p2, pin) }
func changeCmd(p2 byte, old, new string) Command {
	return pinCmd(0x24, 0x00, p2, old, new)
}

// setAdminLess switches the mode in the state file, as `ccid-gadget card admin-less` does.
func (c *testCard) setAdminLess(on bool) {
	c.t.Helper()
	if err := c.st.Update(func(tx *store.Tx) error { return tx.SetAdminLess(on) }); err != nil {
		c.t.Fatal(err)
	}
}

func (c *testCard) adminLessMode() store.AdminLess {
	var a store.AdminLess
	c.st.View(func(tx *store.Tx) error { a = tx.AdminLess(); return nil })
	return a
}

// alStep is one step of an admin-less scenario: an action or a command, the status word it must get, and the
// retry counters (PW1, RC, PW3) and mode the state file must hold afterwards.
type alStep struct {
	name    string
	do      func(c *testCard) // instead of cmd
	cmd     Command
	want    StatusWord
	retries *[3]int
	mode    *store.AdminLess
}

func counters(pw1, rc, pw3 int) *[3]int         { return &[3]int{pw1, rc, pw3} }
func modeIs(a store.AdminLess) *store.AdminLess { return &a }

var (
	turnOn     = alStep{name: "owner switches admin-less on", do: func(c *testCard) { c.setAdminLess(true) }}
	powerCycle = alStep{name: "power cycle", do: func(c *testCard) { c.powerCycle(); c.selectApp() }}
	putName    = Command{INS: 0xDA, P2: 0x5B, Data: []byte("Niibe<<Yutaka")}
)

// TestAdminLess runs Gnuk's admin-less sequences (tests/card_test_personalize_admin_less*.py, ac.c
// verify_admin_0, openpgp.c cmd_change_password / cmd_reset_user_password / cmd_terminate_df) and the
// specification's behaviour with the mode off. After every step the counters and the mode are read back from the
// state file.
func TestAdminLess(t *testing.T) {
	const (
		userPIN  = "87654321" // 8 bytes: PW1 is also the admin PIN
		adminPIN = "adminpin"
	)
	tests := []struct {
		name  string
		steps []alStep
	}{
		{"Gnuk sequence", []alStep{
			turnOn,
			{name: "pending: PW3 still the admin PIN", cmd: verifyCmd(0x83, "12345678"), want: SWNoError,
				retries: counters(3, 0, 3), mode: modeIs(store.AdminLessPending)},
			powerCycle,
			{name: "new PW1 shorter than 8", cmd: changeCmd(0x81, "123456", "1234567"), want: SWWrongLength,
				retries: counters(3, 0, 3), mode: modeIs(store.AdminLessPending)},
			{name: "change PW1", cmd: changeCmd(0x81, "123456", userPIN), want: SWNoError,
				retries: counters(3, 0, 3), mode: modeIs(store.AdminLessActive)},
			{name: "PUT DATA before VERIFY 83", cmd: putName, want: SWSecurityStatusNotSatisfied},
			{name: "default PW3 no longer admin (PW1 counts)", cmd: verifyCmd(0x83, "12345678"),
				want: swVerifyFailed(2), retries: counters(2, 0, 3)},
			{name: "VERIFY 83 with PW1", cmd: verifyCmd(0x83, userPIN), want: SWNoError, retries: counters(3, 0, 3)},
			{name: "PUT DATA name", cmd: putName, want: SWNoError},
			{name: "PUT DATA C4", cmd: Command{INS: 0xDA, P2: 0xC4, Data: []byte{1}}, want: SWNoError},
			{name: "VERIFY 82 with the same PIN", cmd: verifyCmd(0x82, userPIN), want: SWNoError},
			{name: "change PW3 (old = PW1)", cmd: changeCmd(0x83, userPIN, adminPIN), want: SWNoError,
				retries: counters(3, 0, 3), mode: modeIs(store.AdminLessOff)},
			powerCycle,
			{name: "PW1 no longer admin (PW3 counts)", cmd: verifyCmd(0x83, userPIN), want: swVerifyFailed(2),
				retries: counters(3, 0, 2)},
			{name: "VERIFY 83 with the new PW3", cmd: verifyCmd(0x83, adminPIN), want: SWNoError,
				retries: counters(3, 0, 3)},
			{name: "PW1 still the user PIN", cmd: verifyCmd(0x82, userPIN), want: SWNoError},
			{name: "PW1 may be 6 again", cmd: changeCmd(0x81, userPIN, "135790"), want: SWNoError},
		}},
		{"off keeps the specification", []alStep{
			{name: "change PW1 to 6 bytes", cmd: changeCmd(0x81, "123456", "654321"), want: SWNoError,
				mode: modeIs(store.AdminLessOff)},
			{name: "PW1 is not the admin PIN", cmd: verifyCmd(0x83, "654321"), want: swVerifyFailed(2),
				retries: counters(3, 0, 2)},
			{name: "PW3 default", cmd: verifyCmd(0x83, "12345678"), want: SWNoError, retries: counters(3, 0, 3)},
			{name: "PUT DATA", cmd: putName, want: SWNoError},
		}},
		{"PW3 changed first: admin-full, as Gnuk", []alStep{
			turnOn,
			{name: "change PW3", cmd: changeCmd(0x83, "12345678", adminPIN), want: SWNoError,
				mode: modeIs(store.AdminLessOff)},
			{name: "change PW1", cmd: changeCmd(0x81, "123456", "654321"), want: SWNoError,
				mode: modeIs(store.AdminLessOff)},
			{name: "PW1 is not the admin PIN", cmd: verifyCmd(0x83, "654321"), want: swVerifyFailed(2),
				retries: counters(3, 0, 2)},
		}},
		{"wrong admin PIN counts on PW1 only; PW1 blocked allows TERMINATE DF", []alStep{
			turnOn,
			{name: "change PW1", cmd: changeCmd(0x81, "123456", userPIN), want: SWNoError},
			{name: "wrong 1", cmd: verifyCmd(0x83, "xxxxxxxx"), want: swVerifyFailed(2), retries: counters(2, 0, 3)},
			{name: "status 83 reports the counter it decrements", cmd: Command{INS: 0x20, P2: 0x83},
				want: swVerifyFailed(2), retries: counters(2, 0, 3)},
			{name: "wrong old PW1 in CHANGE 83", cmd: changeCmd(0x83, "yyyyyyyy", adminPIN),
				want: swVerifyFailed(1), retries: counters(1, 0, 3), mode: modeIs(store.AdminLessActive)},
			{name: "TERMINATE DF refused while PW1 has tries", cmd: Command{INS: 0xE6},
				want: SWSecurityStatusNotSatisfied},
			{name: "wrong 3 (as VERIFY 81)", cmd: verifyCmd(0x81, "zzzzzzzz"), want: swVerifyFailed(0),
				retries: counters(0, 0, 3)},
			{name: "blocked even when right", cmd: verifyCmd(0x83, userPIN), want: SWAuthenticationMethodBlocked,
				retries: counters(0, 0, 3)},
			{name: "status 83 blocked", cmd: Command{INS: 0x20, P2: 0x83}, want: SWAuthenticationMethodBlocked},
			{name: "TERMINATE DF with PW1 blocked", cmd: Command{INS: 0xE6}, want: SWNoError},
			{name: "ACTIVATE FILE", cmd: Command{INS: 0x44}, want: SWNoError, retries: counters(3, 0, 3),
				mode: modeIs(store.AdminLessOff)},
			{name: "select", do: func(c *testCard) { c.selectApp() }},
			{name: "after the reset PW1 may be 6", cmd: changeCmd(0x81, "123456", "654321"), want: SWNoError,
				mode: modeIs(store.AdminLessOff)},
			{name: "and PW3 is the default admin PIN", cmd: verifyCmd(0x83, "12345678"), want: SWNoError},
		}},
		{"reset retry counter", []alStep{
			turnOn,
			{name: "change PW1", cmd: changeCmd(0x81, "123456", userPIN), want: SWNoError},
			{name: "VERIFY 83 with PW1", cmd: verifyCmd(0x83, userPIN), want: SWNoError},
			{name: "set a resetting code (needs the data key)", cmd: pinCmd(0xDA, 0x00, 0xD3, "resetcode"),
				want: SWNoError},
			{name: "RRC by admin: 6 bytes too short", cmd: pinCmd(0x2C, 0x02, 0x81, "111111"), want: SWWrongLength},
			{name: "RRC by admin", cmd: pinCmd(0x2C, 0x02, 0x81, "11111111"), want: SWNoError,
				mode: modeIs(store.AdminLessActive)},
			{name: "the admin PIN changed with PW1: verification ended", cmd: putName,
				want: SWSecurityStatusNotSatisfied},
			{name: "old PW1 is not admin", cmd: verifyCmd(0x83, userPIN), want: swVerifyFailed(2),
				retries: counters(2, 3, 3)},
			{name: "RRC by resetting code", cmd: pinCmd(0x2C, 0x00, 0x81, "resetcode", "22222222"), want: SWNoError,
				retries: counters(3, 3, 3)},
			{name: "new PW1 is admin", cmd: verifyCmd(0x83, "22222222"), want: SWNoError},
			{name: "PUT DATA", cmd: putName, want: SWNoError},
		}},
		{"a KDF-DO with initial hashes sets PW3 and so ends it", []alStep{
			turnOn,
			{name: "change PW1", cmd: changeCmd(0x81, "123456", userPIN), want: SWNoError},
			{name: "VERIFY 83 with PW1", cmd: verifyCmd(0x83, userPIN), want: SWNoError},
			{name: "PUT DATA F9", cmd: Command{INS: 0xDA, P2: 0xF9, Data: kdfDO(false)}, want: SWNoError,
				mode: modeIs(store.AdminLessOff)},
			{name: "PW3 is the 88 hash", cmd: verifyCmd(0x83, string(bytes.Repeat([]byte{0x22}, 32))),
				want: SWNoError, retries: counters(3, 0, 3)},
		}},
		{"pending becomes active through RRC by admin", []alStep{
			turnOn,
			{name: "VERIFY 83 default PW3", cmd: verifyCmd(0x83, "12345678"), want: SWNoError},
			{name: "RRC by admin", cmd: pinCmd(0x2C, 0x02, 0x81, userPIN), want: SWNoError,
				mode: modeIs(store.AdminLessActive)},
			{name: "PW3 verification ended", cmd: putName, want: SWSecurityStatusNotSatisfied},
			{name: "PW1 is admin", cmd: verifyCmd(0x83, userPIN), want: SWNoError},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCard(t, Options{})
			c.selectApp()
			for _, st := range tt.steps {
				if st.do != nil {
					st.do(c)
				} else if _, sw := c.send(st.cmd.Bytes()); sw != st.want {
					t.Fatalf("%s: SW %v, want %v", st.name, sw, st.want)
				}
				if r := st.retries; r != nil {
					if got := [3]int{c.retries(store.PW1), c.retries(store.RC), c.retries(store.PW3)}; got != *r {
						t.Fatalf("%s: retries PW1/RC/PW3 %v, want %v", st.name, got, *r)
					}
				}
				if st.mode != nil {
					if got := c.adminLessMode(); got != *st.mode {
						t.Fatalf("%s: admin-less mode %v, want %v", st.name, got, *st.mode)
					}
				}
				c.checkStore()
			}
		})
	}
}

// TestAdminLessC4 reads C4 as Gnuk builds it (openpgp-do.c rw_pw_status): the PW3 counter is PW3's own, which
// admin-less mode never decrements, while a wrong admin PIN shows in PW1's.
func TestAdminLessC4(t *testing.T) {
	c := newTestCard(t, Options{})
	c.selectApp()
	c.setAdminLess(true)
	c.okb(changeCmd(0x81, "123456", "87654321"))
	if _, sw := c.send(verifyCmd(0x83, "12345678").Bytes()); sw != swVerifyFailed(2) {
		t.Fatalf("wrong admin PIN: %v", sw)
	}
	c4 := c.ok("00 CA 00 C4 00")
	if len(c4) != 7 || c4[4] != 2 || c4[5] != 0 || c4[6] != 3 {
		t.Fatalf("C4 = %X, want PW1 2, RC 0, PW3 3", c4)
	}
}

// TestAdminLessDataKey: with PW1 accepted as the admin PIN the card holds the real data key (unwrapped through
// PW1's wrap): a key generated then is sealed under it and signs after a power cycle with PW1 as 81.
func TestAdminLessDataKey(t *testing.T) {
	c := newTestCard(t, Options{})
	c.selectApp()
	c.setAdminLess(true)
	c.okb(changeCmd(0x81, "123456", "87654321"))
	c.okb(verifyCmd(0x83, "87654321"))
	c.setAttrs(roleSig, "ed25519")
	pub := c.generate(roleSig)
	c.powerCycle()
	c.selectApp()
	c.okb(verifyCmd(0x81, "87654321"))
	in := signInput("ed25519")
	verifySig(t, "ed25519", pub, in, c.okb(Command{INS: 0x2A, P1: 0x9E, P2: 0x9A, Data: in, Ne: 256}))
	// Setting PW3 rewraps the same data key: the key still signs after admin-less mode ended.
	c.okb(changeCmd(0x83, "87654321", "adminpin"))
	c.powerCycle()
	c.selectApp()
	c.okb(verifyCmd(0x81, "87654321"))
	verifySig(t, "ed25519", pub, in, c.okb(Command{INS: 0x2A, P1: 0x9E, P2: 0x9A, Data: in, Ne: 256}))
	c.checkStore()
}

// TestAdminLessPersists: the mode and its state survive closing and reopening the state file.
func TestAdminLessPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	open := func() (*store.Store, *testCard) {
		st, err := store.Open(path, store.Options{KDF: store.FastKDF})
		if err != nil {
			t.Fatal(err)
		}
		cd, err := New(st, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cd.PowerOn(context.Background()); err != nil {
			t.Fatal(err)
		}
		c := &testCard{Card: cd, t: t, st: st}
		c.selectApp()
		return st, c
	}
	st, c := open()
	c.setAdminLess(true)
	st.Close()

	st, c = open()
	if got := c.adminLessMode(); got != store.AdminLessPending {
		t.Fatalf("after reopen: %v, want pending", got)
	}
	c.okb(changeCmd(0x81, "123456", "87654321"))
	st.Close()

	st, c = open()
	defer st.Close()
	if _, sw := c.send(verifyCmd(0x83, "12345678").Bytes()); sw != swVerifyFailed(2) {
		t.Fatalf("default PW3 after reopen: %v", sw)
	}
	c.okb(verifyCmd(0x83, "87654321"))
	c.okb(putName)
	if got := c.ok("00 CA 00 5B 00"); !bytes.Equal(got, putName.Data) {
		t.Fatalf("name %q", got)
	}
}
