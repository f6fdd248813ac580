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
)

// crashKDF makes the derivation long enough (a few ms) that kills land between the decrement and the compare.
var crashKDF = KDFParams{Time: 1, MemoryKiB: 4096, Threads: 1}

func TestMain(m *testing.M) {
	if path := os.Getenv(envCrashChild); path != "" {
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
	testHookAfterDecrement = func() { os.Stdout.WriteString("D\n") }
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

// runChild runs one child; kill > 0 sends SIGKILL after that delay. It returns the child's report lines.
func runChild(t *testing.T, path, pin string, kill time.Duration) ([]string, time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envCrashChild+"="+path, envCrashPIN+"="+pin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if kill > 0 {
		timer := time.AfterFunc(kill, func() { cmd.Process.Kill() })
		defer timer.Stop()
	}
	err := cmd.Wait()
	took := time.Since(start)
	if kill == 0 && err != nil {
		t.Fatalf("child: %v: %s", err, errOut.String())
	}
	var lines []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		lines = append(lines, sc.Text())
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
		delay := time.Duration(rng.Int64N(int64(full)*11/10)) + time.Microsecond
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
