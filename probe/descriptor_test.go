package probe

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// stubDevice only describes itself; the descriptor checks send nothing but class requests, which it refuses.
type stubDevice struct{ info Info }

func (d stubDevice) Info() Info                                { return d.info }
func (stubDevice) BulkOut(context.Context, []byte) error       { return ErrStall }
func (stubDevice) BulkIn(context.Context, []byte) (int, error) { return 0, ErrStall }
func (stubDevice) InterruptIn(context.Context, []byte) (int, error) {
	return 0, ErrTimeout
}
func (stubDevice) Control(context.Context, byte, byte, uint16, uint16, []byte) (int, error) {
	return 0, ErrStall
}
func (stubDevice) ClearHalt(context.Context, byte) error { return nil }

// gadgetConfig is the configuration descriptor of the gadget (research ccid-host-stack §7.5, full speed).
func gadgetConfig(t testing.TB, desc []byte) []byte {
	t.Helper()
	iface := []byte{0x09, 0x04, 0x00, 0x00, 0x03, 0x0B, 0x00, 0x00, 0x01}
	eps := []byte{
		0x07, 0x05, 0x81, 0x02, 0x40, 0x00, 0x00,
		0x07, 0x05, 0x02, 0x02, 0x40, 0x00, 0x00,
		0x07, 0x05, 0x83, 0x03, 0x08, 0x00, 0x10,
	}
	body := append(append(append([]byte{}, iface...), desc...), eps...)
	cfg := []byte{0x09, 0x02, 0, 0, 0x01, 0x01, 0x00, 0x80, 0x32}
	binary.LittleEndian.PutUint16(cfg[2:], uint16(9+len(body)))
	return append(cfg, body...)
}

func defaultRaw(t testing.TB) []byte {
	b, err := ccid.DefaultDescriptor().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseConfiguration(t *testing.T) {
	raw := defaultRaw(t)
	c, err := ParseConfiguration(gadgetConfig(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Interfaces) != 1 {
		t.Fatalf("%d interfaces", len(c.Interfaces))
	}
	i := c.Interfaces[0]
	if !i.IsCCID() || !bytes.Equal(i.Extra, raw) || len(i.Endpoints) != 3 {
		t.Fatalf("interface %+v", i)
	}
	in, _ := i.BulkIn()
	out, _ := i.BulkOut()
	intr, _ := i.InterruptIn()
	if in.Address != 0x81 || in.MaxPacketSize != 64 || out.Address != 0x02 || intr.Address != 0x83 || intr.Interval != 16 {
		t.Errorf("endpoints %v %v %v", in, out, intr)
	}

	bad := map[string][]byte{
		"empty":                   nil,
		"not a configuration":     {0x09, 0x04, 9, 0, 1, 1, 0, 0x80, 0x32},
		"wTotalLength too long":   {0x09, 0x02, 20, 0, 1, 1, 0, 0x80, 0x32},
		"zero bLength":            append([]byte{0x09, 0x02, 11, 0, 1, 1, 0, 0x80, 0x32}, 0, 4),
		"runs past the end":       append([]byte{0x09, 0x02, 12, 0, 1, 1, 0, 0x80, 0x32}, 9, 4, 0),
		"short interface":         append([]byte{0x09, 0x02, 12, 0, 1, 1, 0, 0x80, 0x32}, 3, 4, 0),
		"endpoint before iface":   append([]byte{0x09, 0x02, 16, 0, 1, 1, 0, 0x80, 0x32}, 7, 5, 0x81, 2, 64, 0, 0),
		"device descriptor in it": append([]byte{0x09, 0x02, 11, 0, 1, 1, 0, 0x80, 0x32}, 2, 1),
	}
	for name, b := range bad {
		if _, err := ParseConfiguration(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestVendorClassWith54ByteDescriptorIsCCID(t *testing.T) {
	i := Interface{Class: 0xFF, Extra: make([]byte, 54)}
	if !i.IsCCID() {
		t.Error("class 0xFF with 54 bytes not found")
	}
	i.Extra = make([]byte, 53)
	if i.IsCCID() {
		t.Error("class 0xFF with 53 bytes found")
	}
}

func FuzzParseConfiguration(f *testing.F) {
	f.Add(gadgetConfig(f, defaultRaw(f)))
	f.Add([]byte{0x09, 0x02, 0x09, 0x00, 0, 1, 0, 0x80, 0x32})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfiguration(b)
		if err != nil {
			return
		}
		for _, i := range c.Interfaces {
			if len(i.Extra) >= 54 {
				fields, err := DescribeDescriptor(i.Extra)
				if err != nil || len(fields) != len(fieldSpecs) {
					t.Fatalf("describe %x: %v", i.Extra, err)
				}
				for _, f := range fields {
					_ = f.String()
				}
			}
			s := newSession(stubDevice{Info{Interface: i}}, 0)
			if s.chunk <= 0 || s.mps <= 0 {
				t.Fatalf("session chunk %d mps %d", s.chunk, s.mps)
			}
		}
	})
}

func TestDescribeDescriptor(t *testing.T) {
	fields, err := DescribeDescriptor(defaultRaw(t))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Field{}
	for _, f := range fields {
		got[f.Name] = f
		if f.Hosts == "" || f.Meaning == "" {
			t.Errorf("%s: not explained: %+v", f.Name, f)
		}
	}
	for name, want := range map[string]string{
		"dwProtocols":            "T=1",
		"dwFeatures":             "short+extended APDU level",
		"dwMaxCCIDMessageLength": "2058 bytes (APDU chunks of 2048)",
		"dwDefaultClock":         "4000 kHz",
		"bPINSupport":            "no PIN pad",
		"bVoltageSupport":        "5 V, 3 V, 1.8 V",
	} {
		if !strings.HasPrefix(got[name].Meaning, want) {
			t.Errorf("%s: %q, want prefix %q", name, got[name].Meaning, want)
		}
	}
	if _, err := DescribeDescriptor(make([]byte, 53)); err == nil {
		t.Error("53 bytes accepted")
	}
}

// Each descriptor rule against a good descriptor and ones that break it.
func TestDescriptorRules(t *testing.T) {
	good := func() Info {
		c, err := ParseConfiguration(gadgetConfig(t, defaultRaw(t)))
		if err != nil {
			t.Fatal(err)
		}
		return Info{Interface: c.Interfaces[0]}
	}
	setU32 := func(off int, v uint32) func(*Info) {
		return func(i *Info) { binary.LittleEndian.PutUint32(i.Interface.Extra[off:], v) }
	}
	tests := []struct {
		name  string
		check string
		edit  func(*Info)
		want  Verdict
	}{
		{"good interface", "descriptor.interface", nil, Pass},
		{"vendor class", "descriptor.interface", func(i *Info) { i.Interface.Class = 0xFF }, Fail},
		{"ICCD protocol", "descriptor.interface", func(i *Info) { i.Interface.Protocol = 2 }, Fail},
		{"good endpoints", "descriptor.endpoints", nil, Pass},
		{"2 endpoints", "descriptor.endpoints", func(i *Info) {
			i.Interface.NumEndpoints = 2
			i.Interface.Endpoints = i.Interface.Endpoints[:2]
		}, Fail},
		{"bulk with usage bits", "descriptor.endpoints", func(i *Info) { i.Interface.Endpoints[0].Attributes = 0x0A }, Fail},
		{"interrupt with usage bits", "descriptor.endpoints", func(i *Info) { i.Interface.Endpoints[2].Attributes = 0x13 }, Fail},
		{"good extra", "descriptor.extra", nil, Pass},
		{"extra 54 + 2", "descriptor.extra", func(i *Info) { i.Interface.Extra = append(i.Interface.Extra, 2, 0x24) }, Fail},
		{"bDescriptorType 0x24", "descriptor.extra", func(i *Info) { i.Interface.Extra[1] = 0x24 }, Fail},
		{"T=1", "descriptor.protocols", nil, Pass},
		{"T=0 only", "descriptor.protocols", setU32(6, 1), Fail},
		{"extended APDU", "descriptor.level", nil, Pass},
		{"TPDU", "descriptor.level", setU32(40, 0x000100BA), Pass},
		{"short APDU", "descriptor.level", setU32(40, 0x00020040), Pass},
		{"character", "descriptor.level", setU32(40, 0x0000007E), Fail},
		{"2058", "descriptor.max-message", nil, Pass},
		{"2065", "descriptor.max-message", setU32(44, 2065), Pass},
		{"2066", "descriptor.max-message", setU32(44, 2066), Fail},
		{"271 (pcsc default)", "descriptor.max-message", setU32(44, 271), Pass},
		{"no descriptor", "descriptor.max-message", func(i *Info) { i.Interface.Extra = nil }, Fail},
		{"no rates, request refused", "descriptor.clocks-rates", nil, Pass},
		{"2 rates, request refused", "descriptor.clocks-rates", func(i *Info) { i.Interface.Extra[27] = 2 }, Fail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info := good()
			if tc.edit != nil {
				tc.edit(&info)
			}
			s := newSession(stubDevice{info}, 0)
			c := &checker{}
			for _, ch := range c.checks() {
				if ch.id == tc.check {
					v, d := ch.run(context.Background(), s)
					if v != tc.want {
						t.Errorf("%s: %s (%s), want %s", tc.check, v, d, tc.want)
					}
					return
				}
			}
			t.Fatalf("no check %s", tc.check)
		})
	}
}

func TestParseATR(t *testing.T) {
	tests := []struct {
		name string
		atr  string
		t1   bool
		ok   bool
	}{
		{"OpenPGP v2", "3BDA18FF81B1FE751F030031C573C001400090000C", true, true},
		{"Gnuk", "3BDA11FF81B1FE551F0300318473800180009000E4", true, true},
		{"Canokey", "3BF711000081 31FE65 43616E6F6B6579 99", true, true},
		{"T=0 without TCK", "3B6500002063CBA000", false, true},
		{"bad TCK", "3BDA18FF81B1FE751F030031C573C001400090000D", true, false},
		{"missing TCK", "3BDA18FF81B1FE751F030031C573C00140009000", true, false},
		{"extra byte", "3BDA18FF81B1FE751F030031C573C001400090000C00", true, false},
		{"bad TS", "3CDA18FF81B1FE751F030031C573C001400090000C", true, false},
		{"truncated interface bytes", "3BF0", false, false},
		{"too long", "3B8F80" + strings.Repeat("00", 31), true, false},
	}
	for _, tc := range tests {
		b := mustHex(t, tc.atr)
		a, err := ParseATR(b)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if err == nil && a.OffersT1() != tc.t1 {
			t.Errorf("%s: T=1 %v, protocols %v", tc.name, a.OffersT1(), a.Protocols)
		}
	}
}

func FuzzParseATR(f *testing.F) {
	f.Add(mustHex(f, "3BDA18FF81B1FE751F030031C573C001400090000C"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseATR(b) })
}

func TestParseSelector(t *testing.T) {
	tests := []struct {
		in      string
		ok      bool
		vid     uint16
		pid     uint16
		serial  string
		matches bool
	}{
		{"", true, 0, 0, "", true},
		{"1d6b:0104", true, 0x1d6b, 0x0104, "", true},
		{"1D6B:0104:0001", true, 0x1d6b, 0x0104, "0001", true},
		{"1d6b:0104:other", true, 0x1d6b, 0x0104, "other", false},
		{"1d6b", false, 0, 0, "", false},
		{"1d6b-0104", false, 0, 0, "", false},
		{"1d6b:01040", false, 0, 0, "", false},
		{"zz6b:0104", false, 0, 0, "", false},
	}
	for _, tc := range tests {
		s, err := ParseSelector(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if err != nil {
			continue
		}
		if s.HasID && (s.VendorID != tc.vid || s.ProductID != tc.pid || s.Serial != tc.serial) {
			t.Errorf("%q: %+v", tc.in, s)
		}
		if got := s.Match(0x1d6b, 0x0104, "0001"); got != tc.matches {
			t.Errorf("%q: Match %v, want %v", tc.in, got, tc.matches)
		}
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	s = strings.ReplaceAll(s, " ", "")
	for i := 0; i+1 < len(s); i += 2 {
		var b byte
		for _, c := range s[i : i+2] {
			b <<= 4
			switch {
			case c >= '0' && c <= '9':
				b |= byte(c - '0')
			case c >= 'A' && c <= 'F':
				b |= byte(c - 'A' + 10)
			case c >= 'a' && c <= 'f':
				b |= byte(c - 'a' + 10)
			default:
				t.Fatalf("bad hex %q", s)
			}
		}
		out = append(out, b)
	}
	return out
}
