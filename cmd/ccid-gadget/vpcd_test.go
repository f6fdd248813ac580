package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/vpcd"
)

// runCmd runs the CLI in-process and returns exit code, stdout and stderr.
func runCmd(ctx context.Context, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestVPCDAndCardCommands serves a new card to a fake vpcd, checks the
// state is in use meanwhile, then reads and resets it offline.
func TestVPCDAndCardCommands(t *testing.T) {
	state := filepath.Join(t.TempDir(), "sub", "card.db")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := runCmd(ctx, "vpcd", "--state", state, "--addr", ln.Addr().String())
		done <- result{code, out, errOut}
	}()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("ccid-gadget vpcd did not connect: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	// pcscd's power up: 01 then 04; then SELECT the OpenPGP application.
	for _, m := range [][]byte{{vpcd.CtrlPowerOn}, {vpcd.CtrlGetATR}} {
		if err := vpcd.WriteFrame(conn, m); err != nil {
			t.Fatal(err)
		}
	}
	atr, err := vpcd.ReadFrame(conn)
	if err != nil || len(atr) < 2 || atr[0] != 0x3B {
		t.Fatalf("ATR % X, %v", atr, err)
	}
	if err := vpcd.WriteFrame(conn, []byte{0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01, 0x00}); err != nil {
		t.Fatal(err)
	}
	r, err := vpcd.ReadFrame(conn)
	if err != nil || !bytes.HasSuffix(r, []byte{0x90, 0x00}) {
		t.Fatalf("SELECT: % X, %v", r, err)
	}

	// While vpcd holds the state, the offline commands refuse clearly.
	code, _, errOut := runCmd(context.Background(), "card", "info", "--state", state)
	if code != 1 || !strings.Contains(errOut, "in use by another process") {
		t.Errorf("card info on a busy state: code %d, stderr %q", code, errOut)
	}

	cancel()
	select {
	case res := <-done:
		if res.code != 0 {
			t.Fatalf("vpcd exit code %d, stderr:\n%s", res.code, res.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("vpcd did not stop on cancel")
	}

	code, out, errOut := runCmd(context.Background(), "card", "info", "--state", state)
	if code != 0 || !strings.Contains(out, state) {
		t.Fatalf("card info: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, jsonOut, errOut := runCmd(context.Background(), "card", "info", "--state", state, "--json")
	var info struct {
		Serial  string
		Version string
		Keys    []struct{ Role string }
		PINs    map[string]struct{ Retries int }
	}
	if code != 0 || json.Unmarshal([]byte(jsonOut), &info) != nil {
		t.Fatalf("card info --json: code %d, stdout %q, stderr %q", code, jsonOut, errOut)
	}
	if len(info.Serial) != 8 || info.Version != "3.4" || len(info.Keys) != 3 || info.PINs["PW1"].Retries != 3 || info.PINs["PW3"].Retries != 3 {
		t.Errorf("card info --json = %+v", info)
	}
	if !strings.Contains(out, info.Serial) {
		t.Errorf("card info text lacks serial %s:\n%s", info.Serial, out)
	}
	code, out, errOut = runCmd(context.Background(), "card", "reset", "--state", state)
	if code != 0 || !strings.Contains(out, "factory reset") {
		t.Fatalf("card reset: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := runCmd(context.Background(), "card", "info", "--state", state); code != 0 {
		t.Errorf("card info after reset: %d %s", code, errOut)
	}
}

func TestCardCommandErrors(t *testing.T) {
	dir := t.TempDir()
	// A device secret others may read is refused before the state is touched.
	readable := filepath.Join(dir, "readable-secret")
	if err := os.WriteFile(readable, bytes.Repeat([]byte{7}, 32), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{[]string{"card"}, 2, "card info", "needs a subcommand"},
		{[]string{"vpcd", "--state", filepath.Join(dir, "s.db"), "--device-secret", readable}, 1, "", "lets others read it"},
		{[]string{"card", "frob"}, 2, "", `unknown card subcommand "frob"`},
		{[]string{"card", "help"}, 0, "card reset", ""},
		{[]string{"card", "info", "-h"}, 0, "-state", ""},
		{[]string{"card", "info", "--bogus"}, 2, "", "flag provided but not defined"},
		{[]string{"card", "info", "--state", filepath.Join(dir, "none.db")}, 1, "", "no state file at"},
		{[]string{"card", "reset", "--state", filepath.Join(dir, "none.db")}, 1, "", "no state file at"},
		{[]string{"card", "info", "--state", dir}, 1, "", dir},
		{[]string{"card", "info", "--state", "x", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"vpcd", "--device-secret", filepath.Join(dir, "nosecret")}, 1, "", "read device secret"},
		{[]string{"vpcd", "--state", "/dev/null/card.db"}, 1, "", "create state directory"},
		{[]string{"help", "vpcd"}, 0, "-addr", ""},
		{[]string{"help", "card"}, 0, "card info", ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, "_"), func(t *testing.T) {
			code, out, errOut := runCmd(context.Background(), tt.args...)
			if code != tt.code || !strings.Contains(out, tt.inStdout) || !strings.Contains(errOut, tt.inStderr) {
				t.Errorf("code %d stdout %q stderr %q; want %d, %q, %q", code, out, errOut, tt.code, tt.inStdout, tt.inStderr)
			}
			if strings.Contains(errOut, "goroutine") || strings.Contains(errOut, "panic") {
				t.Errorf("stack trace in stderr: %s", errOut)
			}
		})
	}
}
