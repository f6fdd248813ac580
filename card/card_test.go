package card

import (
	"bytes"
	"context"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccidgadget/ccidgadget/store"
)

// testCard is a powered card over a fresh state file in t.TempDir().
type testCard struct {
	*Card
	t  testing.TB
	st *store.Store
}

func openStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{KDF: store.FastKDF})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newTestCard(t testing.TB, opts Options) *testCard {
	t.Helper()
	st := openStore(t)
	c, err := New(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PowerOn(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &testCard{Card: c, t: t, st: st}
}

// h decodes hex with spaces.
func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// send transmits an APDU given as bytes and splits the answer.
func (c *testCard) send(apdu []byte) ([]byte, StatusWord) {
	c.t.Helper()
	r, err := c.Transmit(context.Background(), apdu)
	if err != nil {
		c.t.Fatalf("Transmit(%X): %v", apdu, err)
	}
	if len(r) < 2 {
		c.t.Fatalf("Transmit(%X): %d bytes", apdu, len(r))
	}
	return r[:len(r)-2], StatusWord(r[len(r)-2])<<8 | StatusWord(r[len(r)-1])
}

// x transmits an APDU given in hex.
func (c *testCard) x(apduHex string) ([]byte, StatusWord) {
	c.t.Helper()
	return c.send(h(apduHex))
}

// ok transmits and requires 9000.
func (c *testCard) ok(apduHex string) []byte {
	c.t.Helper()
	d, sw := c.x(apduHex)
	if sw != SWNoError {
		c.t.Fatalf("%s: SW %v, want 9000", apduHex, sw)
	}
	return d
}

// okb is ok for a Command.
func (c *testCard) okb(cmd Command) []byte {
	c.t.Helper()
	d, sw := c.send(cmd.Bytes())
	if sw != SWNoError {
		c.t.Fatalf("%02X %02X %02X %02X: SW %v, want 9000", cmd.CLA, cmd.INS, cmd.P1, cmd.P2, sw)
	}
	return d
}

func (c *testCard) selectApp()  { c.t.Helper(); c.ok("00 A4 04 00 06 D27600012401") }
func (c *testCard) verifyPW1()  { c.t.Helper(); c.ok("00 20 00 82 06 313233343536") }
func (c *testCard) verifySign() { c.t.Helper(); c.ok("00 20 00 81 06 313233343536") }
func (c *testCard) verifyPW3()  { c.t.Helper(); c.ok("00 20 00 83 08 3132333435363738") }

// retries reads a PIN's retry counter from the state file.
func (c *testCard) retries(p store.PIN) int {
	var n int
	c.st.View(func(tx *store.Tx) error { n = tx.PINStatus(p).Retries; return nil })
	return n
}

// checkStore requires the state file to pass its integrity check.
func (c *testCard) checkStore() {
	c.t.Helper()
	if err := c.st.Check(); err != nil {
		c.t.Fatalf("store.Check: %v", err)
	}
}

func TestParseCommand(t *testing.T) {
	ext := make([]byte, 300)
	tests := []struct {
		name    string
		in      []byte
		want    Command
		wantErr bool
	}{
		{"case 1", h("00A40400"), Command{INS: 0xA4, P1: 4}, false},
		{"case 2 short", h("00CA006E00"), Command{INS: 0xCA, P2: 0x6E, Ne: 256}, false},
		{"case 2 short Le 10", h("00CA006E10"), Command{INS: 0xCA, P2: 0x6E, Ne: 16}, false},
		{"case 3 short", h("0020008106313233343536"), Command{INS: 0x20, P2: 0x81, Data: h("313233343536")}, false},
		{"case 4 short", h("002A9E9A03AABBCC00"), Command{INS: 0x2A, P1: 0x9E, P2: 0x9A, Data: h("AABBCC"), Ne: 256}, false},
		{"case 2 extended", h("00CA006E000800"), Command{INS: 0xCA, P2: 0x6E, Ne: 0x800, Extended: true}, false},
		{"case 2 extended 65536", h("00CA006E000000"), Command{INS: 0xCA, P2: 0x6E, Ne: 65536, Extended: true}, false},
		{"case 3 extended", append(h("00DA7F2100012C"), ext...), Command{INS: 0xDA, P1: 0x7F, P2: 0x21, Data: ext, Extended: true}, false},
		{"case 4 extended", append(append(h("002A808600012C"), ext...), 0, 0), Command{INS: 0x2A, P1: 0x80, P2: 0x86, Data: ext, Ne: 65536, Extended: true}, false},
		{"too short", h("00A404"), Command{}, true},
		{"Lc too long", h("0020008106313233"), Command{}, true},
		{"Lc too short", h("002000810231323334"), Command{}, true},
		{"extended truncated", h("00CA006E0008"), Command{}, true},
		{"extended Lc zero", h("00DA7F21000000AA"), Command{}, true},
		{"extended Lc mismatch", h("00DA7F21000003AABB"), Command{}, true},
		{"extended Lc and Le mismatch", h("00DA7F21000002AABB00"), Command{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommand(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got.CLA != tt.want.CLA || got.INS != tt.want.INS || got.P1 != tt.want.P1 || got.P2 != tt.want.P2 ||
				!bytes.Equal(got.Data, tt.want.Data) || got.Ne != tt.want.Ne || got.Extended != tt.want.Extended {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if again, err := ParseCommand(got.Bytes()); err != nil || again.Ne != got.Ne || !bytes.Equal(again.Data, got.Data) {
				t.Fatalf("Bytes() does not round-trip: %X", got.Bytes())
			}
		})
	}
}

func TestATRAgreesWithHistoricalBytesAndC0(t *testing.T) {
	c := newTestCard(t, Options{})
	a := c.ATR()
	if len(a) > 33 {
		t.Fatalf("ATR of %d bytes", len(a))
	}
	var x byte
	for _, b := range a[1:] {
		x ^= b
	}
	if x != 0 {
		t.Fatalf("TCK wrong: XOR(T0..TCK) = %02X", x)
	}
	if a[0] != 0x3B || a[1]&0x0F != byte(len(historical)) {
		t.Fatalf("TS/T0 %X", a[:2])
	}
	if a[4] != 0x81 || a[5] != 0xB1 {
		t.Fatalf("ATR does not offer T=1: TD1 %02X TD2 %02X", a[4], a[5])
	}
	if a[2] == 0x11 || a[7] == 0x75 {
		t.Fatal("ATR would make GnuPG type the card Gnuk or ZeitControl")
	}
	hist := c.ok("00 CA 5F 52 00")
	if !bytes.Equal(hist, a[len(a)-1-len(hist):len(a)-1]) {
		t.Fatalf("5F52 %X is not the ATR's historical bytes", hist)
	}
	// Card capabilities (73 xx xx xx): chaining and extended Lc/Le; status indicator 05 for gpg-card factory-reset.
	if i := bytes.Index(hist, []byte{0x73}); i < 0 || hist[i+3]&0xC0 != 0xC0 {
		t.Fatalf("historical bytes %X do not announce chaining and extended length", hist)
	}
	if hist[len(hist)-3] != 0x05 {
		t.Fatalf("life cycle status %02X", hist[len(hist)-3])
	}
	c0 := c.ok("00 CA 00 C0 00")
	if len(c0) != 10 || int(c0[4])<<8|int(c0[5]) < 2048 {
		t.Fatalf("C0 %X", c0)
	}
	ext := c.ok("00 CA 7F 66 00")
	if !bytes.Equal(ext, h("7F66 08 0202 0800 0202 0800")) {
		t.Fatalf("7F66 %X", ext)
	}
	// The AID: version 3.4, manufacturer FFFE, the store's serial.
	aid := c.ok("00 CA 00 4F 00")
	var serial [4]byte
	c.st.View(func(tx *store.Tx) error { serial = tx.Serial(); return nil })
	want := append(h("D2760001240103 04 FFFE"), serial[:]...)
	want = append(want, 0, 0)
	if !bytes.Equal(aid, want) {
		t.Fatalf("AID %X, want %X", aid, want)
	}
}
