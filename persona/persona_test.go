package persona_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/ccidtest"
	"github.com/ccidgadget/ccidgadget/persona"
)

func TestPersonas(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range persona.All() {
		t.Run(p.Name, func(t *testing.T) {
			if seen[p.Name] {
				t.Fatal("duplicate name")
			}
			seen[p.Name] = true
			if err := p.Descriptor.Validate(); err != nil {
				t.Fatal(err)
			}
			if len(p.ATR) > 33 {
				t.Errorf("ATR of %d bytes overflows libccid", len(p.ATR))
			}
			if p.ATR != nil {
				var x byte
				for _, b := range p.ATR[1:] {
					x ^= b
				}
				if p.ATR[1]&0x80 != 0 && x != 0 && p.Name != "nxp-pr533" { // TCK present: XOR T0..TCK = 0
					t.Errorf("ATR TCK wrong: xor %02X", x)
				}
			}
			s := p.String()
			for _, want := range []string{p.Name, "dwFeatures", "dwMaxCCIDMessageLength", "VID:PID", "facts"} {
				if !strings.Contains(s, want) {
					t.Errorf("String lacks %q:\n%s", want, s)
				}
			}
			// A reader built from the persona takes the largest short APDU and answers the largest short answer in one
			// DataBlock.
			cfg := ccid.DefaultConfig()
			cfg.Descriptor = p.Descriptor
			rd, err := ccid.NewReader(cfg)
			if err != nil {
				t.Fatal(err)
			}
			card := ccidtest.NewCard(p.ATR)
			card.Respond(func([]byte) []byte { return append(make([]byte, 256), 0x90, 0x00) }) // the largest short answer
			if err := rd.Insert(0, card); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			tp := ccidtest.NewTransport()
			done := make(chan error, 1)
			go func() { done <- rd.Serve(ctx, tp) }()
			defer func() { tp.Close(); <-done }()
			if m, err := tp.Exchange(ctx, ccid.NewIccPowerOn(0, 1, 0)); err != nil || m.Status() != 0 {
				t.Fatalf("power on %v %v", m, err)
			}
			apdu := append([]byte{0x00, 0xDA, 0x01, 0x01, 0xFF}, make([]byte, 255)...)
			m, err := tp.Exchange(ctx, ccid.NewXfrBlock(0, 2, 0, 0, apdu))
			if err != nil || m.Status() != 0 || m.ChainParameter() != 0 || len(m.Data) != 258 {
				t.Fatalf("short APDU: %v %v", m, err)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	p, err := persona.Lookup("nxp-pr533")
	if err != nil || p.VendorID != 0x1FC9 || p.ProductID != 0x010B || p.Descriptor.DefaultClock != 3685 ||
		p.Descriptor.Features != 0x0004047E || p.MaxSpeed != persona.FullSpeed {
		t.Fatalf("%+v %v", p, err)
	}
	g, _ := persona.Lookup("gnuk")
	if g.Descriptor.Features&ccid.FeatureLevelMask != ccid.FeatureLevelShortAPDU {
		t.Errorf("gnuk features %08X", g.Descriptor.Features)
	}
	if _, err := persona.Lookup("acme"); err == nil || !strings.Contains(err.Error(), "generic") {
		t.Errorf("err %v", err)
	}
	if n := persona.Names(); len(n) < 4 {
		t.Errorf("names %v", n)
	}
}
