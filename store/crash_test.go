package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The crash test re-executes the test binary as a child that runs one VerifyPIN and is killed with SIGKILL at a
// random moment. The child reports its progress on stdout: "D" once the decrement is committed, "C" once the
// comparison's outcome exists, then "R ok" or "R wrong <retries>" or "R err <text>" once VerifyPIN returned.
const (
	envCrashChild = "STORE_CRASH_CHILD" // state file path; set only in the child
	envCrashPIN   = "STORE_CRASH_PIN"
	envCrashIters = "STORE_CRASH_ITERATIONS" // override the number of kills (default 100)
	envCrashOp    = "STORE_CRASH_OP"         // "verify" (default) or "update"
	// envCrashPause makes the child stop right after reporting "D" (until it is killed), so that a share of the
	// kills lands exactly between the committed decrement and the comparison however fast or slow this machine is.
	envCrashPause = "STORE_CRASH_PAUSE"
)

// crashKDF makes the derivation long enough (a few ms) that kills land between the decrement and the compare.
var crashKDF = KDFParams{Time: 1, MemoryKiB: 4096, Threads: 1}

func TestMain(m *testing.M) {
	if path := os.Getenv(envCrashChild); path != "" {
		if os.Getenv(envCrashOp) == "update" {
			os.Exit(crashChildUpdate(path))
		}
		os.Exit(crashChild(path, os.Getenv(envCrashPIN)))
	}
	os.Exit(m.Run())
}

func crashChild(path, pin string) int {
	s, err := Open(path, Options{KDF: crashKDF})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	testHookAfterDecrement = func() {
		os.Stdout.WriteString("D\n")
		if os.Getenv(envCrashPause) != "" {
			select {} // wait for SIGKILL
		}
	}
	testHookCompared = func() { os.Stdout.WriteString("C\n") }
	dk, err := s.VerifyPIN(PW1, []byte(pin))
	var ae *AuthError
	switch {
	case err == nil:
		dk.Destroy()
		os.Stdout.WriteString("R ok\n")
	case errors.As(err, &ae):
		fmt.Fprintf(os.Stdout, "R wrong %d\n", ae.Retries)
	default:
		fmt.Fprintf(os.Stdout, "R err %v\n", err)
	}
	s.Close()
	return 0
}

// runChild runs one child; kill > 0 sends SIGKILL after that delay, kill < 0 as soon as the child reports "D"
// (the child then pauses there, see envCrashPause). It returns the child's report lines.
func runChild(t *testing.T, path, pin string, kill time.Duration, env ...string) ([]string, time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envCrashChild+"="+path, envCrashPIN+"="+pin)
	cmd.Env = append(cmd.Env, env...)
	if kill < 0 {
		cmd.Env = append(cmd.Env, envCrashPause+"=1")
	}
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if kill > 0 {
		timer := time.AfterFunc(kill, func() { cmd.Process.Kill() })
		defer timer.Stop()
	}
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if kill < 0 && sc.Text() == "D" {
			cmd.Process.Kill()
		}
	}
	err = cmd.Wait()
	took := time.Since(start)
	if kill == 0 && err != nil {
		t.Fatalf("child: %v: %s", err, errOut.String())
	}
	return lines, took
}

func readRetries(t *testing.T, path string) int {
	t.Helper()
	s, err := Open(path, Options{KDF: crashKDF}) // Open runs Check
	if err != nil {
		t.Fatalf("state after kill: %v", err)
	}
	defer s.Close()
	var r int
	s.View(func(tx *Tx) error { r = tx.PINStatus(PW1).Retries; return nil })
	return r
}

// TestVerifyPINPowerCut kills VerifyPIN at random moments. After every kill the file opens and passes Check, and
// the retry counter never went up: a wrong PIN whose verdict the child could have seen is always counted, and
// only a success that finished its restore gives the counter back.
func TestVerifyPINPowerCut(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary many times")
	}
	iters := 100
	if v, err := strconv.Atoi(os.Getenv(envCrashIters)); err == nil {
		iters = v
	}
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{KDF: crashKDF})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Calibrate: how long a whole child run takes here; kills are spread uniformly over it.
	var full time.Duration
	for _, pin := range []string{"123456", "wrong1"} {
		lines, took := runChild(t, path, pin, 0)
		if len(lines) != 3 || lines[0] != "D" || lines[1] != "C" || !strings.HasPrefix(lines[2], "R ") {
			t.Fatalf("uninterrupted child reported %q", lines)
		}
		full = max(full, took)
	}
	resetPW1(t, path)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var beforeDecrement, betweenSteps, afterVerdict int
	for i := range iters {
		before := readRetries(t, path)
		if before <= 1 {
			resetPW1(t, path)
			before = DefaultMaxRetries
		}
		right := rng.IntN(2) == 0
		pin := "wrong1"
		if right {
			pin = "123456"
		}
		// One kill in four lands exactly between the decrement and the comparison; the others at random moments.
		delay := time.Duration(rng.Int64N(int64(full)*11/10)) + time.Microsecond
		if i%4 == 0 {
			delay = -1
		}
		lines, _ := runChild(t, path, pin, delay)
		after := readRetries(t, path)

		decremented := len(lines) > 0 && lines[0] == "D"
		compared := slices.Contains(lines, "C")
		verdict := ""
		if len(lines) > 0 && strings.HasPrefix(lines[len(lines)-1], "R ") {
			verdict = lines[len(lines)-1]
		}
		switch {
		case compared:
			afterVerdict++
		case decremented:
			betweenSteps++
		default:
			beforeDecrement++
		}
		where := fmt.Sprintf("kill %d after %v (right PIN %v, report %q): retries %d -> %d", i, delay, right, lines,
			before, after)
		if compared && !decremented {
			t.Fatalf("%s: the PIN was compared before the decrement was committed", where)
		}
		if after > before && !(right && after == DefaultMaxRetries) {
			t.Fatalf("%s: the counter went up", where)
		}
		if decremented && !(after == before-1 || (right && after == DefaultMaxRetries)) {
			t.Fatalf("%s: the committed decrement was lost", where)
		}
		if !right && after != before && after != before-1 {
			t.Fatalf("%s: wrong PIN changed the counter by more than one", where)
		}
		if !right && verdict != "" && verdict != fmt.Sprintf("R wrong %d", after) {
			t.Fatalf("%s: the child saw its verdict but the file says %d tries", where, after)
		}
		if right && verdict == "R ok" && after != DefaultMaxRetries {
			t.Fatalf("%s: success reported but counter not restored", where)
		}
	}
	t.Logf("%d kills: %d before the decrement committed, %d between decrement and comparison, %d after the comparison",
		iters, beforeDecrement, betweenSteps, afterVerdict)
	if betweenSteps == 0 {
		t.Errorf("no kill landed between the decrement and the comparison; the test did not exercise the ordering")
	}
}

func resetPW1(t *testing.T, path string) {
	t.Helper()
	s, err := Open(path, Options{KDF: crashKDF})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(func(tx *Tx) error { return tx.ResetRetries(PW1) }); err != nil {
		t.Fatal(err)
	}
}

// Keys of the update crash test: the file starts with key1 and PW1 123456; the child's first transaction
// replaces the key with key2, sets PW1 to 654321 and writes DO 0101 ("U" when committed); its second is a
// factory reset ("F").
var (
	crashKey1 = bytes.Repeat([]byte{0x11}, 64)
	crashKey2 = bytes.Repeat([]byte{0x22}, 64)
)

func crashChildUpdate(path string) int {
	s, err := Open(path, Options{KDF: crashKDF})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	dk, err := s.VerifyPIN(PW3, []byte("12345678"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	err = s.Update(func(tx *Tx) error {
		if err := tx.PutKey(RoleSig, dk, crashKey2, []byte("public 2")); err != nil {
			return err
		}
		if err := tx.SetPIN(PW1, []byte("654321"), dk); err != nil {
			return err
		}
		return tx.SetDO(0x0101, []byte("updated"))
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	os.Stdout.WriteString("U\n")
	if err := s.Update(func(tx *Tx) error { return tx.FactoryReset() }); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	os.Stdout.WriteString("F\n")
	s.Close()
	return 0
}

// TestUpdatePowerCut kills a child at random moments while it replaces a key, changes PW1 and writes a DO in one
// transaction, then factory-resets (each followed by a free-page scrub). After every kill the file opens and
// passes Check, and it holds exactly one of the three states: never a key without its PIN change, never a
// half-reset.
func TestUpdatePowerCut(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary many times")
	}
	iters := 60
	if v, err := strconv.Atoi(os.Getenv(envCrashIters)); err == nil {
		iters = v
	}
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{KDF: crashKDF})
	if err != nil {
		t.Fatal(err)
	}
	dk := mustVerify(t, s, PW3, "12345678")
	if err := s.Update(func(tx *Tx) error { return tx.PutKey(RoleSig, dk, crashKey1, []byte("public 1")) }); err != nil {
		t.Fatal(err)
	}
	dk.Destroy()
	s.Close()
	pristine, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines, full := runChild(t, path, "", 0, envCrashOp+"=update")
	if !slices.Equal(lines, []string{"U", "F"}) {
		t.Fatalf("uninterrupted child reported %q", lines)
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	states := map[string]int{}
	for i := range iters {
		if err := os.WriteFile(path, pristine, 0o600); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(rng.Int64N(int64(full))) + time.Microsecond
		lines, _ := runChild(t, path, "", delay, envCrashOp+"=update")
		state := crashState(t, path)
		states[state]++
		where := fmt.Sprintf("kill %d after %v (report %q)", i, delay, lines)
		switch {
		case slices.Contains(lines, "F") && state != "reset":
			t.Fatalf("%s: reset committed but the file is in state %s", where, state)
		case slices.Contains(lines, "U") && state == "initial":
			t.Fatalf("%s: update committed but the file is in its initial state", where)
		}
	}
	t.Logf("%d kills: states after the kill %v", iters, states)
}

// crashState opens the file (Open runs Check) and says which consistent state it is in.
func crashState(t *testing.T, path string) string {
	t.Helper()
	s, err := Open(path, Options{KDF: crashKDF})
	if err != nil {
		t.Fatalf("state after kill: %v", err)
	}
	defer s.Close()
	dk := mustVerify(t, s, PW3, "12345678")
	defer dk.Destroy()
	var key, do []byte
	s.View(func(tx *Tx) error {
		if tx.HasKey(RoleSig) {
			if key, err = tx.Key(RoleSig, dk); err != nil {
				t.Fatalf("key after kill: %v", err)
			}
		}
		do = tx.DO(0x0101)
		return nil
	})
	pw1 := "123456"
	if _, err := s.VerifyPIN(PW1, []byte("654321")); err == nil {
		pw1 = "654321"
	}
	switch {
	case bytes.Equal(key, crashKey1) && do == nil && pw1 == "123456":
		return "initial"
	case bytes.Equal(key, crashKey2) && string(do) == "updated" && pw1 == "654321":
		return "updated"
	case key == nil && do == nil && pw1 == "123456":
		return "reset"
	}
	t.Fatalf("inconsistent state: key %x, DO 0101 %q, PW1 %s", key, do, pw1)
	return ""
}
