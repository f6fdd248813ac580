package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/ccidgadget/ccidgadget/card"
	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/store"
)

// TestUpCardFollowsPersonaLevel wires a persona as `up` does (faultSetup, cardOptions, the reader) and asks the
// card through CCID what it announces: behind gnuk's short-APDU reader the historical bytes say chaining without
// extended Lc/Le, like gnuk's ATR, 7F66 is absent and an extended APDU is 6700; behind the others extended length
// is announced and 7F66 is there.
func TestUpCardFollowsPersonaLevel(t *testing.T) {
	for _, tt := range []struct {
		persona string
		short   bool
	}{
		{"gnuk", true},
		{"generic", false},
		{"canokey", false},
		{"nxp-pr533", false},
	} {
		t.Run(tt.persona, func(t *testing.T) {
			fx, err := parseFaultFlags(t, "--persona", tt.persona)
			if err != nil {
				t.Fatal(err)
			}
			defer fx.Close()
			if got := cardOptions(fx.Persona, nil).ShortAPDUOnly; got != tt.short {
				t.Fatalf("ShortAPDUOnly %v, want %v", got, tt.short)
			}
			st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{KDF: store.FastKDF})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			c, err := card.New(st, cardOptions(fx.Persona, nil))
			if err != nil {
				t.Fatal(err)
			}
			tp, _, ctx := serve(t, fx, c)
			m, err := tp.Exchange(ctx, ccid.NewIccPowerOn(0, 1, 0))
			if err != nil || m.Status() != 0 {
				t.Fatalf("power on %v %v", m, err)
			}
			atr := m.Data
			seq := byte(2)
			xfr := func(apdu []byte) []byte {
				t.Helper()
				m, err := tp.Exchange(ctx, ccid.NewXfrBlock(0, seq, 0, 0, apdu))
				seq++
				if err != nil || m.Status() != 0 || len(m.Data) < 2 {
					t.Fatalf("XfrBlock % X: %v %v", apdu, m, err)
				}
				return m.Data
			}
			xfr([]byte{0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01})
			hist := xfr([]byte{0x00, 0xCA, 0x5F, 0x52, 0x00})
			if len(hist) != 12 || hist[3] != 0x73 || !bytes.HasSuffix(hist, []byte{0x90, 0x00}) {
				t.Fatalf("5F52 % X", hist)
			}
			if ext := hist[6]&0x40 != 0; ext == tt.short || hist[6]&0x80 == 0 {
				t.Errorf("5F52 card capabilities %02X: want chaining, extended length %v", hist[6], !tt.short)
			}
			// Where the reader's ATR carries compact-TLV historical bytes with card capabilities, they agree.
			if k := int(atr[1] & 0x0F); k >= 7 && len(atr) > k {
				if h := atr[len(atr)-1-k : len(atr)-1]; h[0] == 0x00 && h[3] == 0x73 && h[6]&0x40 != hist[6]&0x40 {
					t.Errorf("ATR historical bytes % X and 5F52 % X disagree on extended length", h, hist[:10])
				}
			}
			sw := xfr([]byte{0x00, 0xCA, 0x7F, 0x66, 0x00})
			if absent := bytes.Equal(sw, []byte{0x6A, 0x88}); absent != tt.short {
				t.Errorf("GET DATA 7F66: % X", sw)
			}
			sw = xfr([]byte{0x00, 0xCA, 0x00, 0xC4, 0x00, 0x00, 0x00}) // extended Le
			if refused := bytes.Equal(sw, []byte{0x67, 0x00}); refused != tt.short {
				t.Errorf("extended GET DATA C4: % X", sw)
			}
		})
	}
}
