package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccidgadget/ccidgadget/card"
	"github.com/ccidgadget/ccidgadget/store"
)

// newState creates a card state file (FastKDF, so the test is quick) and returns its path.
func newState(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "card.db")
	st, err := store.Open(path, store.Options{KDF: store.FastKDF})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// adminLessOf reads the mode from the state file.
func adminLessOf(t *testing.T, path string) store.AdminLess {
	t.Helper()
	st, err := store.Open(path, store.Options{KDF: store.FastKDF})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var a store.AdminLess
	st.View(func(tx *store.Tx) error { a = tx.AdminLess(); return nil })
	return a
}

// TestCardAdminLess runs `card admin-less` and the commands around it in order on one state file; after each step
// the mode is read back from the file.
func TestCardAdminLess(t *testing.T) {
	state := newState(t)
	steps := []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
		want     store.AdminLess
	}{
		{[]string{"card", "info", "--state", state}, 0, "admin-less mode: off", "", store.AdminLessOff},
		{[]string{"card", "admin-less", "on", "--state", state}, 0, "waiting for PW1", "", store.AdminLessPending},
		{[]string{"card", "admin-less", "--state", state, "on"}, 0, "waiting for PW1", "", store.AdminLessPending},
		{[]string{"card", "info", "--state", state}, 0, "admin-less mode: on, waiting", "", store.AdminLessPending},
		{[]string{"card", "admin-less", "--state", state}, 2, "", "needs on or off", store.AdminLessPending},
		{[]string{"card", "admin-less", "maybe", "--state", state}, 2, "", `takes on or off, not "maybe"`,
			store.AdminLessPending},
		{[]string{"card", "admin-less", "off", "extra", "--state", state}, 2, "", `unexpected argument "extra"`,
			store.AdminLessPending},
		{[]string{"card", "admin-less", "off", "--state", state, "extra"}, 2, "", `unexpected argument "extra"`,
			store.AdminLessPending},
		{[]string{"card", "admin-less", "on", "--bogus"}, 2, "", "flag provided but not defined", store.AdminLessPending},
		{[]string{"card", "admin-less", "-h"}, 0, "-state", "", store.AdminLessPending},
		{[]string{"card", "admin-less", "off", "--state", state}, 0, "off (PW3 is the admin PIN)", "", store.AdminLessOff},
		{[]string{"card", "admin-less", "on", "--state", state}, 0, "", "", store.AdminLessPending},
		{[]string{"card", "reset", "--state", state}, 0, "admin-less mode off", "", store.AdminLessOff},
		{[]string{"card", "admin-less", "on", "--state", filepath.Join(t.TempDir(), "none.db")}, 1, "",
			"no state file at", store.AdminLessOff},
		{[]string{"card", "help"}, 0, "card admin-less on|off", "", store.AdminLessOff},
	}
	for _, st := range steps {
		code, out, errOut := runCmd(context.Background(), st.args...)
		if code != st.code || !strings.Contains(out, st.inStdout) || !strings.Contains(errOut, st.inStderr) {
			t.Fatalf("%q: code %d stdout %q stderr %q; want %d, %q, %q", st.args, code, out, errOut, st.code,
				st.inStdout, st.inStderr)
		}
		if got := adminLessOf(t, state); got != st.want {
			t.Fatalf("%q: mode %v, want %v", st.args, got, st.want)
		}
	}
}

// TestCardAdminLessJSON: card info --json reports the mode.
func TestCardAdminLessJSON(t *testing.T) {
	state := newState(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "off"},
		{[]string{"card", "admin-less", "on", "--state", state}, "pending"},
	} {
		if tt.args != nil {
			if code, _, errOut := runCmd(context.Background(), tt.args...); code != 0 {
				t.Fatalf("%q: %d %s", tt.args, code, errOut)
			}
		}
		code, out, errOut := runCmd(context.Background(), "card", "info", "--state", state, "--json")
		var info struct {
			AdminLess string `json:"admin_less"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &info) != nil {
			t.Fatalf("card info --json: %d %q %q", code, out, errOut)
		}
		if info.AdminLess != tt.want {
			t.Errorf("after %q: admin_less %q, want %q", tt.args, info.AdminLess, tt.want)
		}
	}
}

// TestCardAdminLessInUse: while another process (here: this one, through a second Open) holds the state, the
// command refuses with the same message as info and reset, and changes nothing.
func TestCardAdminLessInUse(t *testing.T) {
	state := newState(t)
	st, err := store.Open(state, store.Options{KDF: store.FastKDF})
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCmd(context.Background(), "card", "admin-less", "on", "--state", state)
	st.Close()
	if code != 1 || !strings.Contains(errOut, "in use by another process") {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
	if got := adminLessOf(t, state); got != store.AdminLessOff {
		t.Fatalf("mode %v after a refused command", got)
	}
}

// TestCardAdminLessTakesEffect: after `card admin-less on`, the card served from that state file takes PW1 as the
// admin PIN once PW1 was changed, as Gnuk does.
func TestCardAdminLessTakesEffect(t *testing.T) {
	state := newState(t)
	if code, _, errOut := runCmd(context.Background(), "card", "admin-less", "on", "--state", state); code != 0 {
		t.Fatalf("admin-less on: %d %s", code, errOut)
	}
	st, err := store.Open(state, store.Options{KDF: store.FastKDF})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := card.New(st, card.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PowerOn(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct{ apdu, sw string }{
		{"00A4040006D27600012401", "9000"},
		{"0024008112" + hex.EncodeToString([]byte("123456876543210000")), "9000"}, // PW1 := 876543210000
		{"002000830C" + hex.EncodeToString([]byte("876543210000")), "9000"},       // PW1 as the admin PIN
		{"00DA005B03414243", "9000"},                                              // PUT DATA name needs PW3
	} {
		apdu, _ := hex.DecodeString(x.apdu)
		r, err := c.Transmit(context.Background(), apdu)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(r[len(r)-2:]); !strings.EqualFold(got, x.sw) {
			t.Fatalf("%s: SW %s, want %s", x.apdu, got, x.sw)
		}
	}
}
