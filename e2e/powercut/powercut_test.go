// Package powercut kills a process that is using the card at random moments
// and checks what it left behind: the state file opens and passes its
// integrity check, no PIN retry counter was given back, no data object or key
// is half-written.
//
// The child is this test binary re-executed (POWERCUT_CHILD=1). It opens the
// store and the card and loops over VERIFY (wrong and right, PW1 and PW3),
// PUT DATA, key import and key generation, writing one line to stdout before
// each operation ("B ...", what it is about to do) and one after it ("E",
// with the counters it left). The parent reads those lines, SIGKILLs the
// child at a random moment, and compares the file with what the last line
// allows.
package powercut

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/card"
	"github.com/ccidgadget/ccidgadget/store"
)

const (
	pw1 = "123456"
	pw3 = "12345678"
	// kills is the number of SIGKILLs the test delivers.
	kills = 240
)

// Ed25519 algorithm attributes for C1 (OpenPGP card 3.4.1 §4.4.3.10, RFC 8410 OID).
var attrEd25519 = []byte{0x16, 0x2B, 0x06, 0x01, 0x04, 0x01, 0xDA, 0x47, 0x0F, 0x01}

func storeOpts() store.Options {
	return store.Options{KDF: store.FastKDF, Timeout: 5 * time.Second}
}

func TestMain(m *testing.M) {
	if os.Getenv("POWERCUT_CHILD") == "1" {
		if err := child(os.Getenv("POWERCUT_STATE"), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// apdu builds a short C-APDU; le < 0 means none.
func apdu(cla, ins, p1, p2 byte, data []byte, le int) []byte {
	b := []byte{cla, ins, p1, p2}
	if len(data) > 0 {
		b = append(b, byte(len(data)))
		b = append(b, data...)
	}
	if le >= 0 {
		b = append(b, byte(le))
	}
	return b
}

// session is a card with a helper that sends APDUs and checks status words.
type session struct {
	c *card.Card
}

func (s session) tx(capdu []byte) ([]byte, uint16, error) {
	r, err := s.c.Transmit(context.Background(), capdu)
	if err != nil {
		return nil, 0, err
	}
	if len(r) < 2 {
		return nil, 0, fmt.Errorf("short R-APDU % X", r)
	}
	return r[:len(r)-2], uint16(r[len(r)-2])<<8 | uint16(r[len(r)-1]), nil
}

func (s session) ok(what string, capdu []byte) ([]byte, error) {
	data, sw, err := s.tx(capdu)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if sw != 0x9000 {
		return nil, fmt.Errorf("%s: SW %04X", what, sw)
	}
	return data, nil
}

func (s session) selectApp() error {
	_, err := s.ok("SELECT", apdu(0, 0xA4, 0x04, 0x00, []byte{0xD2, 0x76, 0x00, 0x01, 0x24, 0x01}, 0))
	return err
}

func (s session) verify(ref byte, pin string) (uint16, error) {
	_, sw, err := s.tx(apdu(0, 0x20, 0, ref, []byte(pin), -1))
	return sw, err
}

// readPub reads the SIG key's public point (GENERATE ASYMMETRIC KEY PAIR 81).
func (s session) readPub() ([]byte, error) {
	d, sw, err := s.tx(apdu(0, 0x47, 0x81, 0, []byte{0xB6, 0x00}, 0))
	if err != nil {
		return nil, err
	}
	if sw == 0x6A88 {
		return nil, nil // no key
	}
	if sw != 0x9000 {
		return nil, fmt.Errorf("read public key: SW %04X", sw)
	}
	return ecPoint(d)
}

// ecPoint finds tag 86 inside a 7F49 template.
func ecPoint(d []byte) ([]byte, error) {
	i := 0
	if len(d) > 3 && d[0] == 0x7F && d[1] == 0x49 {
		i = 3
		if d[2] == 0x81 {
			i = 4
		}
	}
	for i+2 <= len(d) {
		tag, l := d[i], int(d[i+1])
		i += 2
		if i+l > len(d) {
			break
		}
		if tag == 0x86 {
			return d[i : i+l], nil
		}
		i += l
	}
	return nil, fmt.Errorf("no EC point in % X", d)
}

func counters(st *store.Store) (r1, r3 int, err error) {
	err = st.View(func(tx *store.Tx) error {
		r1, r3 = tx.PINStatus(store.PW1).Retries, tx.PINStatus(store.PW3).Retries
		return nil
	})
	return r1, r3, err
}

// child runs the operation loop until it is killed.
func child(path string, out io.Writer) error {
	st, err := store.Open(path, storeOpts())
	if err != nil {
		return err
	}
	c, err := card.New(st, card.Options{})
	if err != nil {
		return err
	}
	if _, err := c.PowerOn(context.Background()); err != nil {
		return err
	}
	s := session{c}
	if err := s.selectApp(); err != nil {
		return err
	}
	w := bufio.NewWriter(out)
	emit := func(format string, a ...any) {
		fmt.Fprintf(w, format+"\n", a...)
		w.Flush()
	}
	done := func() error {
		r1, r3, err := counters(st)
		if err != nil {
			return err
		}
		emit("E %d %d", r1, r3)
		return nil
	}
	// The steps run in a cycle. The parent tells the child where in the cycle to start, so that kills, which
	// come within the first 25 ms, land in every step however slow this machine makes the ones before it.
	i := 0
	steps := []func() error{
		func() error {
			emit("B v1w")
			if sw, err := s.verify(0x81, "000000"); err != nil || sw&0xFFF0 != 0x63C0 {
				return fmt.Errorf("wrong VERIFY 81: %04X %v", sw, err)
			}
			return done()
		},
		func() error {
			emit("B v1r")
			if sw, err := s.verify(0x81, pw1); err != nil || sw != 0x9000 {
				return fmt.Errorf("VERIFY 81: %04X %v", sw, err)
			}
			return done()
		},
		func() error {
			emit("B v3w")
			if sw, err := s.verify(0x83, "00000000"); err != nil || sw&0xFFF0 != 0x63C0 {
				return fmt.Errorf("wrong VERIFY 83: %04X %v", sw, err)
			}
			return done()
		},
		func() error {
			emit("B v3r")
			if sw, err := s.verify(0x83, pw3); err != nil || sw != 0x9000 {
				return fmt.Errorf("VERIFY 83: %04X %v", sw, err)
			}
			return done()
		},
		func() error {
			name := fmt.Sprintf("Cut<<Power %d %d", os.Getpid(), i)
			emit("B put %x", name)
			if _, err := s.ok("PUT DATA 5B", apdu(0, 0xDA, 0, 0x5B, []byte(name), -1)); err != nil {
				return err
			}
			return done()
		},
		func() error {
			pub, priv, _ := ed25519.GenerateKey(rand.Reader)
			tmpl := append([]byte{0xB6, 0x00, 0x7F, 0x48, 0x02, 0x92, 0x20, 0x5F, 0x48, 0x20}, priv.Seed()...)
			emit("B import %x", []byte(pub))
			if _, err := s.ok("PUT DATA DB 3FFF", apdu(0, 0xDB, 0x3F, 0xFF, append([]byte{0x4D, byte(len(tmpl))}, tmpl...), -1)); err != nil {
				return err
			}
			return done()
		},
		func() error {
			emit("B gen")
			tmplOut, err := s.ok("GENERATE", apdu(0, 0x47, 0x80, 0, []byte{0xB6, 0x00}, 0))
			if err != nil {
				return err
			}
			newPub, err := ecPoint(tmplOut)
			if err != nil {
				return err
			}
			r1, r3, err := counters(st)
			if err != nil {
				return err
			}
			emit("E %d %d %x", r1, r3, newPub)
			return nil
		},
	}
	first, _ := strconv.Atoi(os.Getenv("POWERCUT_START"))
	emit("R")
	// PUT DATA, import and generation need PW3: verify it (step v3r) before starting mid-cycle.
	if err := steps[3](); err != nil {
		return err
	}
	for ; ; i++ {
		if err := steps[(first+i)%len(steps)](); err != nil {
			return err
		}
	}
}

// model is what the parent knows to be committed.
type model struct {
	r1, r3 int
	name   []byte // DO 5B
	pub    []byte // SIG public key; nil = none
}

// inflight is the operation the child had announced but not finished.
type inflight struct {
	op  string
	arg []byte
}

func TestPowerCut(t *testing.T) {
	if testing.Short() {
		t.Skip("power-cut test takes about a minute; not run with -short")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "card.db")

	// Set up: Ed25519 for the SIG key, so that generation and import are fast.
	m := prepare(t, path)
	hits := map[string]int{}
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 42))
	start := time.Now()
	for k := 0; k < kills; k++ {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), "POWERCUT_CHILD=1", "POWERCUT_STATE="+path, fmt.Sprintf("POWERCUT_START=%d", k))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Wait until the child is ready, then let it run for 0–25 ms.
		if l, ok := <-lines; !ok || l != "R" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("kill %d: child did not start: %q\n%s", k, l, stderr.String())
		}
		time.Sleep(time.Duration(rng.IntN(25000)) * time.Microsecond)
		cmd.Process.Kill()
		// Replay what the child reported, up to its death.
		var cur *inflight
		for l := range lines {
			f := strings.Fields(l)
			switch f[0] {
			case "B":
				cur = &inflight{op: f[1]}
				if len(f) > 2 {
					cur.arg, _ = hex.DecodeString(f[2])
				}
			case "E":
				r1, _ := strconv.Atoi(f[1])
				r3, _ := strconv.Atoi(f[2])
				m.r1, m.r3 = r1, r3
				if cur.op == "put" {
					m.name = cur.arg
				}
				if cur.op == "import" {
					m.pub = cur.arg
				}
				if cur.op == "gen" && len(f) > 3 {
					m.pub, _ = hex.DecodeString(f[3])
				}
				cur = nil
			}
		}
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("kill %d: child ended on its own: %v\n%s", k, err, stderr.String())
		}
		op := "between operations"
		if cur != nil {
			op = cur.op
		}
		hits[op]++
		if m, err = check(path, m, cur); err != nil {
			t.Fatalf("kill %d: %v", k, err)
		}
	}
	t.Logf("%d kills in %v; operation in flight at each kill: %v", kills, time.Since(start).Round(time.Millisecond), hits)
	for _, op := range []string{"v1w", "v1r", "v3w", "v3r", "put", "import", "gen"} {
		if hits[op] == 0 {
			t.Errorf("no kill landed during %s", op)
		}
	}
}

// prepare creates the state with an Ed25519 SIG key slot and returns the
// model of it.
func prepare(t *testing.T, path string) model {
	t.Helper()
	st, err := store.Open(path, storeOpts())
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
	s := session{c}
	must := func(_ []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(nil, s.selectApp())
	must(s.ok("VERIFY 83", apdu(0, 0x20, 0, 0x83, []byte(pw3), -1)))
	must(s.ok("PUT DATA C1", apdu(0, 0xDA, 0, 0xC1, attrEd25519, -1)))
	must(s.ok("PUT DATA 5B", apdu(0, 0xDA, 0, 0x5B, []byte("Cut<<Power"), -1)))
	return model{r1: 3, r3: 3, name: []byte("Cut<<Power")}
}

// check opens the state after a kill and compares it with the model and the
// operation in flight. It then restores both PINs' counters (as a user would)
// and returns the new model.
func check(path string, m model, cur *inflight) (_ model, err error) {
	type failure struct{ error }
	fail := func(format string, a ...any) {
		op := "none"
		if cur != nil {
			op = cur.op
		}
		panic(failure{fmt.Errorf("in flight: %s: %s", op, fmt.Sprintf(format, a...))})
	}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(failure)
			if !ok {
				panic(r)
			}
			err = f.error
		}
	}()
	st, err := store.Open(path, storeOpts())
	if err != nil {
		fail("state does not open: %v", err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		fail("integrity check: %v", err)
	}
	r1, r3, err := counters(st)
	if err != nil {
		fail("counters: %v", err)
	}
	allowed1, allowed3 := []int{m.r1}, []int{m.r3}
	op := ""
	if cur != nil {
		op = cur.op
	}
	switch op {
	case "v1w":
		allowed1 = append(allowed1, m.r1-1)
	case "v1r":
		allowed1 = append(allowed1, m.r1-1, 3)
	case "v3w":
		allowed3 = append(allowed3, m.r3-1)
	case "v3r":
		allowed3 = append(allowed3, m.r3-1, 3)
	}
	if !in(r1, allowed1) {
		fail("PW1 retries %d, allowed %v (was %d): a try was given back or lost", r1, allowed1, m.r1)
	}
	if !in(r3, allowed3) {
		fail("PW3 retries %d, allowed %v (was %d)", r3, allowed3, m.r3)
	}
	var name []byte
	st.View(func(tx *store.Tx) error { name = tx.DO(0x5B); return nil })
	if string(name) != string(m.name) && !(op == "put" && string(name) == string(cur.arg)) {
		fail("DO 5B = %q, want %q (or the new value in flight)", name, m.name)
	}

	// Through the card: restore the counters, read the key and sign with it.
	c, err := card.New(st, card.Options{})
	if err != nil {
		fail("card: %v", err)
	}
	if _, err := c.PowerOn(context.Background()); err != nil {
		fail("power on: %v", err)
	}
	s := session{c}
	if err := s.selectApp(); err != nil {
		fail("%v", err)
	}
	if r3 == 0 {
		fail("PW3 blocked")
	}
	if sw, err := s.verify(0x83, pw3); err != nil || sw != 0x9000 {
		fail("VERIFY 83: %04X %v", sw, err)
	}
	if r1 < 3 {
		if _, err := s.ok("RESET RETRY COUNTER", apdu(0, 0x2C, 0x02, 0x81, []byte(pw1), -1)); err != nil {
			fail("%v", err)
		}
	}
	pub, err := s.readPub()
	if err != nil {
		fail("%v", err)
	}
	switch {
	case op == "gen" && pub != nil:
		// a generation in flight: the old key or a new one, which must sign
	case string(pub) == string(m.pub):
	case op == "import" && string(pub) == string(cur.arg):
	default:
		fail("SIG public key %x, want %x (or the new one in flight)", pub, m.pub)
	}
	if pub != nil {
		if _, err := s.ok("VERIFY 81", apdu(0, 0x20, 0, 0x81, []byte(pw1), -1)); err != nil {
			fail("%v", err)
		}
		msg := make([]byte, 32)
		rand.Read(msg)
		sig, err := s.ok("PSO:CDS", apdu(0, 0x2A, 0x9E, 0x9A, msg, 0))
		if err != nil {
			fail("%v", err)
		}
		if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, msg, sig) {
			fail("signature by the stored key does not verify with its public key %x: half-written key", pub)
		}
	}
	r1, r3, err = counters(st)
	if err != nil || r1 != 3 || r3 != 3 {
		fail("after restoring: PW1 %d PW3 %d %v", r1, r3, err)
	}
	c.PowerOff()
	if err := st.Check(); err != nil {
		fail("integrity check after signing: %v", err)
	}
	return model{r1: 3, r3: 3, name: name, pub: pub}, nil
}

// TestCheckCatches shows that check fails on each kind of damage it is there
// to find: a try given back, a data object or key that is neither the old nor
// the new value.
func TestCheckCatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.db")
	good := prepare(t, path)
	if _, err := check(path, good, nil); err != nil {
		t.Fatalf("check of an intact state: %v", err)
	}
	otherPub := make([]byte, 32)
	tests := []struct {
		name string
		m    model
		cur  *inflight
		want string
	}{
		{"PW1 try given back", model{r1: 2, r3: 3, name: good.name}, nil, "given back"},
		{"PW1 given back after a wrong VERIFY", model{r1: 2, r3: 3, name: good.name}, &inflight{op: "v1w"}, "given back"},
		{"PW3 try given back", model{r1: 3, r3: 1, name: good.name}, &inflight{op: "v3w"}, "PW3 retries"},
		{"DO neither old nor new", model{r1: 3, r3: 3, name: []byte("Old")}, &inflight{op: "put", arg: []byte("New")}, "DO 5B"},
		{"key neither old nor new", model{r1: 3, r3: 3, name: good.name, pub: otherPub}, &inflight{op: "import", arg: otherPub}, "SIG public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := check(path, tt.m, tt.cur)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("check = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func in(v int, set []int) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}
