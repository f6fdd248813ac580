// Package pcsc_test runs the card end to end through the real host stack on
// this machine: `ccid-gadget vpcd` serves the card to a private pcscd through
// vsmartcard-vpcd, and GnuPG (scdaemon in PC/SC mode) and OpenSC drive it.
//
// The tests run only with -e2e or CCIDGADGET_E2E=1 and need root (pcscd's
// socket is fixed at /run/pcscd, so each test's pcscd runs in its own mount
// namespace with a private /run/pcscd) and the Debian packages pcscd,
// vsmartcard-vpcd, scdaemon, gnupg, opensc and openssl. Run them with
//
//	CCIDGADGET_E2E=1 go test -count=1 ./e2e/pcsc
//	go test -count=1 ./e2e/pcsc -e2e -run TestCertificates -v
//
// pcscd 1.9.9 ignores PCSCLITE_CSOCK_NAME (only the client library reads it),
// so a private pcscd needs its own /run/pcscd: it runs under
// `unshare --mount` with the test's directory bound there, and the clients
// (scdaemon, OpenSC) find it through PCSCLITE_CSOCK_NAME. Its reader.conf.d
// holds only a vpcd reader on a free port, so the tests neither disturb nor
// depend on a system pcscd. GnuPG gets the card PINs from a scripted
// pinentry (the real agent-to-pinentry path), which also counts the
// requests, so a test can prove that no PIN was asked. When a test fails,
// the card's log (-v), pcscd's log and scdaemon's debug log are printed.
package pcsc_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	e2eFlag = flag.Bool("e2e", false, "run the end-to-end tests (or set CCIDGADGET_E2E=1)")
	binary  string // the ccid-gadget binary built by TestMain
)

const (
	readerName = "Virtual PCD 00 00"
	pkcs11     = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
)

func enabled() bool { return *e2eFlag || os.Getenv("CCIDGADGET_E2E") == "1" }

func TestMain(m *testing.M) {
	flag.Parse()
	if !enabled() {
		os.Exit(m.Run()) // every test skips with the reason
	}
	dir, err := os.MkdirTemp("", "ccidgadget-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "ccid-gadget")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/ccidgadget/ccidgadget/cmd/ccid-gadget").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build ccid-gadget: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireE2E skips the test unless the end-to-end tests were asked for and
// fails it when they were but a tool is missing.
func requireE2E(t *testing.T) {
	t.Helper()
	if !enabled() {
		t.Skip("end-to-end test: run with -e2e or CCIDGADGET_E2E=1 (needs root, pcscd, vsmartcard-vpcd, scdaemon, opensc)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the end-to-end tests need root: each pcscd runs in its own mount namespace (unshare --mount)")
	}
	for _, tool := range []string{"pcscd", "unshare", "gpg", "gpg-connect-agent", "gpgconf", "opensc-tool", "openpgp-tool", "pkcs11-tool", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install pcscd vsmartcard-vpcd scdaemon gnupg opensc openssl", tool)
		}
	}
	for _, f := range []string{"/usr/lib/pcsc/drivers/serial/libifdvpcd.so", pkcs11} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v: install vsmartcard-vpcd and opensc-pkcs11", err)
		}
	}
}

// bench is one test's host stack: a private pcscd with a vpcd reader, the
// card process, a fresh GNUPGHOME and a scripted pinentry.
type bench struct {
	t     *testing.T
	dir   string
	home  string // GNUPGHOME
	state string // the card's state file
	port  int    // vpcd's port
	env   []string

	pcscd    *process
	card     *process
	pinMu    sync.Mutex
	pinFiles [2]string // PW1, PW3 given by the pinentry
}

// process is a child process with its combined output kept for failure
// reports.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, name string, env []string, args ...string) *process {
	t.Helper()
	p := &process{name: name, out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	return p
}

// stop sends SIGTERM and waits, then SIGKILL after 5 s. It returns the exit
// error of the process.
func (p *process) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		err := <-p.done
		p.done <- err
		return fmt.Errorf("%s did not stop on SIGTERM: %v", p.name, err)
	}
}

func (p *process) exited() bool {
	select {
	case err := <-p.done:
		p.done <- err
		return true
	default:
		return false
	}
}

// freePortPair finds a port P with P and P+1 free on all addresses: vpcd
// opens two slots, on P and P+1.
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 50 {
		l1, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		p := l1.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf(":%d", p+1))
		l1.Close()
		if err == nil {
			l2.Close()
			return p
		}
	}
	t.Fatal("no free pair of ports")
	return 0
}

// newBench starts pcscd and the card and prepares GnuPG. Everything stops
// when the test ends.
func newBench(t *testing.T) *bench {
	t.Helper()
	requireE2E(t)
	dir := t.TempDir()
	b := &bench{t: t, dir: dir, home: filepath.Join(dir, "gnupg"), state: filepath.Join(dir, "card.db"), port: freePortPair(t)}
	b.pinFiles = [2]string{filepath.Join(dir, "pin"), filepath.Join(dir, "admin-pin")}
	b.setPINs("123456", "12345678")

	// pcscd with only the vpcd reader, its socket in dir/run.
	conf, run := filepath.Join(dir, "reader.conf.d"), filepath.Join(dir, "run")
	for _, d := range []string{conf, run, b.home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(conf, "vpcd"), fmt.Sprintf(
		"FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME /dev/null:%d\nLIBPATH /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID %d\n", b.port, b.port))
	if err := os.MkdirAll("/run/pcscd", 0o755); err != nil {
		t.Fatalf("pcscd's socket directory: %v", err)
	}
	sock := filepath.Join(run, "pcscd.comm")
	b.env = append(os.Environ(), "GNUPGHOME="+b.home, "PCSCLITE_CSOCK_NAME="+sock, "LC_ALL=C", "LANG=C")
	b.startPCSCD()
	t.Cleanup(b.shutdown)
	b.startCard()

	// GnuPG: scdaemon through PC/SC only, shared with OpenSC; a pinentry
	// that answers from the PIN files.
	pinentry := filepath.Join(dir, "pinentry")
	write(t, pinentry, fmt.Sprintf(`#!/bin/sh
# Scripted pinentry: answers GETPIN with the admin PIN when the prompt mentions
# "Admin", else with the user PIN; confirms everything else.
echo "OK scripted pinentry"
desc=""
while IFS= read -r line; do
  case "$line" in
    SETDESC*|SETPROMPT*|SETTITLE*) desc="$desc $line"; echo OK;;
    GETPIN) case "$desc" in *Admin*|*admin*) f=%q;; *) f=%q;; esac
            echo "GETPIN $desc" >> %q
            desc=""; printf 'D %%s\nOK\n' "$(cat "$f")";;
    BYE) echo OK; exit 0;;
    *) echo OK;;
  esac
done
`, b.pinFiles[1], b.pinFiles[0], b.pinLog()))
	os.Chmod(pinentry, 0o755)
	write(t, filepath.Join(b.home, "scdaemon.conf"), fmt.Sprintf("disable-ccid\npcsc-shared\nreader-port %s\nlog-file %s\ndebug-level guru\n", readerName, filepath.Join(dir, "scdaemon.log")))
	write(t, filepath.Join(b.home, "gpg-agent.conf"), "pinentry-program "+pinentry+"\nallow-loopback-pinentry\n")
	write(t, filepath.Join(b.home, "gpg.conf"), "no-greeting\n")
	return b
}

// startPCSCD starts pcscd in its own mount namespace, where dir/run is
// /run/pcscd, and waits for its socket.
func (b *bench) startPCSCD() {
	t := b.t
	t.Helper()
	conf, run := filepath.Join(b.dir, "reader.conf.d"), filepath.Join(b.dir, "run")
	sock := filepath.Join(run, "pcscd.comm")
	b.pcscd = start(t, "pcscd", b.env, "unshare", "--mount", "--propagation", "private", "sh", "-c",
		fmt.Sprintf("mount --bind %s /run/pcscd && exec pcscd --foreground --auto-exit --debug --config %s", run, conf))
	waitFor(t, "pcscd's socket", func() bool {
		if b.pcscd.exited() {
			t.Fatalf("pcscd exited:\n%s", b.pcscd.out)
		}
		_, err := os.Stat(sock)
		return err == nil
	})
}

// waitCard waits until pcscd reports the card present in the vpcd reader.
func (b *bench) waitCard() {
	t := b.t
	t.Helper()
	waitFor(t, "card present in pcscd", func() bool {
		if b.card.exited() {
			t.Fatalf("ccid-gadget vpcd exited:\n%s", b.card.out)
		}
		return b.cardPresent()
	})
}

// startCard starts `ccid-gadget vpcd` and waits until pcscd sees the card.
func (b *bench) startCard() {
	t := b.t
	t.Helper()
	b.card = start(t, "ccid-gadget vpcd", b.env, binary, "vpcd", "-v", "--state", b.state, "--addr", fmt.Sprintf("127.0.0.1:%d", b.port))
	b.waitCard()
}

// stopCard stops the card process (SIGTERM) and checks that it exited
// cleanly, so that the state file can be opened offline.
func (b *bench) stopCard() {
	b.t.Helper()
	if err := b.card.stop(); err != nil {
		b.t.Fatalf("ccid-gadget vpcd: %v\n%s", err, b.card.out)
	}
	// pcscd notices the removal at its next presence poll; wait for it, so
	// that a card started next is a new insertion and not a race with it.
	waitFor(b.t, "card absent in pcscd", func() bool { return !b.cardPresent() })
}

// cardPresent asks pcscd (through OpenSC) whether the vpcd reader has a card.
func (b *bench) cardPresent() bool {
	out, err := b.cmd("opensc-tool", "--reader", "0", "--atr").CombinedOutput()
	return err == nil && bytes.HasPrefix(bytes.TrimSpace(out), []byte("3b"))
}

func (b *bench) shutdown() {
	t := b.t
	exec.Command("gpgconf", "--homedir", b.home, "--kill", "all").Run()
	if b.card != nil && !b.card.exited() {
		if err := b.card.stop(); err != nil {
			t.Errorf("ccid-gadget vpcd: %v", err)
		}
	}
	b.pcscd.stop()
	// The card's debug log (-v) carries APDU headers and status words, never
	// a PIN: look for the default PINs in the encodings a leak would take.
	if b.card != nil {
		log := b.card.out.String()
		for _, leak := range []string{"313233343536", "31 32 33 34 35 36", "MTIzNDU2", "[49 50 51 52 53 54"} {
			if strings.Contains(log, leak) {
				t.Errorf("ccid-gadget vpcd's log contains a PIN (%q)", leak)
			}
		}
	}
	if t.Failed() {
		t.Logf("ccid-gadget vpcd output:\n%s", tail(b.card.out.String(), 60))
		t.Logf("pcscd output (tail):\n%s", tail(b.pcscd.out.String(), 40))
		if log, err := os.ReadFile(filepath.Join(b.dir, "scdaemon.log")); err == nil {
			t.Logf("scdaemon log (tail):\n%s", tail(string(log), 80))
		}
	}
}

// killAgent stops gpg-agent and scdaemon and waits until the agent's
// sockets are gone: an agent started next could otherwise lose its sockets
// to the old one's clean-up.
func (b *bench) killAgent() {
	b.t.Helper()
	socks := strings.Fields(b.run(nil, "gpgconf", "--list-dirs", "agent-socket") + " " + b.run(nil, "gpgconf", "--list-dirs", "agent-ssh-socket"))
	b.run(nil, "gpgconf", "--kill", "all")
	waitFor(b.t, "gpg-agent's sockets removed", func() bool {
		for _, s := range socks {
			if _, err := os.Stat(s); err == nil {
				return false
			}
		}
		return true
	})
}

// pinLog is the file the scripted pinentry appends each PIN request to.
func (b *bench) pinLog() string { return filepath.Join(b.dir, "pinentry.log") }

// pinRequests returns how many PINs the pinentry was asked for so far.
func (b *bench) pinRequests() int {
	data, err := os.ReadFile(b.pinLog())
	if err != nil {
		return 0
	}
	return bytes.Count(data, []byte("GETPIN"))
}

// setPINs sets what the scripted pinentry answers.
func (b *bench) setPINs(pw1, pw3 string) {
	write(b.t, b.pinFiles[0], pw1)
	write(b.t, b.pinFiles[1], pw3)
}

func (b *bench) cmd(name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	c.Env = b.env
	c.Dir = b.dir
	return c
}

// run runs a command to completion (at most 3 minutes) and fails the test
// when it fails. It returns stdout.
func (b *bench) run(stdin []byte, name string, args ...string) string {
	b.t.Helper()
	out, err := b.try(stdin, name, args...)
	if err != nil {
		b.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// try runs a command and returns its stdout, or its error with stdout and
// stderr.
func (b *bench) try(stdin []byte, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Env, c.Dir = b.env, b.dir
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

// gpg runs gpg in batch mode.
func (b *bench) gpg(args ...string) string {
	b.t.Helper()
	return b.run(nil, "gpg", append([]string{"--batch", "--no-tty"}, args...)...)
}

// agent sends Assuan commands through gpg-connect-agent and fails the test on
// an ERR reply. Lines starting with / are gpg-connect-agent's own commands.
func (b *bench) agent(cmds ...string) string {
	b.t.Helper()
	out := b.run([]byte(strings.Join(append(cmds, "/bye"), "\n")+"\n"), "gpg-connect-agent")
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "ERR") {
			b.t.Fatalf("gpg-connect-agent %q: %s\n%s", cmds, l, out)
		}
	}
	return out
}

// apdus sends raw APDUs (hex, spaces allowed) through scdaemon's APDU command
// in one session and returns each response (data and SW). The session's
// commands come first (for example "SCD SERIALNO" is added in front).
func (b *bench) apdus(hexAPDUs ...string) [][]byte {
	b.t.Helper()
	cmds := []string{"SCD SERIALNO"}
	files := make([]string, len(hexAPDUs))
	for i, h := range hexAPDUs {
		files[i] = filepath.Join(b.dir, fmt.Sprintf("apdu-%d.out", i))
		os.Remove(files[i])
		cmds = append(cmds, "/datafile "+files[i], "SCD APDU --exlen "+strings.ReplaceAll(h, " ", ""))
	}
	b.agent(append(cmds, "/datafile")...)
	out := make([][]byte, len(files))
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.t.Fatalf("APDU %s: no response: %v", hexAPDUs[i], err)
		}
		out[i] = data
	}
	return out
}

// sw returns the status word at the end of a response.
func sw(r []byte) string {
	if len(r) < 2 {
		return fmt.Sprintf("short(% X)", r)
	}
	return fmt.Sprintf("%02X%02X", r[len(r)-2], r[len(r)-1])
}

// dialog drives an interactive gpg command (--card-edit, --edit-key) through
// --command-fd and --status-fd: answer gets each prompt's keyword (for
// example cardedit.prompt) and returns the line to send; ok false fails the
// test (an unexpected question).
func (b *bench) dialog(answer func(keyword string) (line string, ok bool), args ...string) string {
	t := b.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "gpg", append([]string{"--no-tty", "--command-fd", "0", "--status-fd", "2"}, args...)...)
	c.Env, c.Dir = b.env, b.dir
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	status, err := c.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	c.Stdout = &stdout
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	var transcript strings.Builder
	sc := bufio.NewScanner(status)
	var failure string
	for sc.Scan() {
		line := sc.Text()
		transcript.WriteString(line + "\n")
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "[GNUPG:]" || (f[1] != "GET_LINE" && f[1] != "GET_BOOL" && f[1] != "GET_HIDDEN") {
			continue
		}
		reply, ok := answer(f[2])
		if !ok {
			failure = "unexpected prompt " + f[2]
			stdin.Close()
			cancel()
			break
		}
		transcript.WriteString("> " + reply + "\n")
		fmt.Fprintln(stdin, reply)
	}
	stdin.Close()
	err = c.Wait()
	if failure != "" || err != nil {
		t.Fatalf("gpg %s: %s %v\ntranscript:\n%s\nstdout:\n%s", strings.Join(args, " "), failure, err, transcript.String(), stdout.String())
	}
	return stdout.String() + transcript.String()
}

// script answers a dialog's prompts: each keyword has a queue of answers;
// the last answer of a queue repeats.
func script(answers map[string][]string) func(string) (string, bool) {
	return func(kw string) (string, bool) {
		q, ok := answers[kw]
		if !ok || len(q) == 0 {
			return "", false
		}
		a := q[0]
		if len(q) > 1 {
			answers[kw] = q[1:]
		}
		return a, true
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond every 100 ms for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
