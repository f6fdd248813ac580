package ccid_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// defaultDescriptorWire is the CCID descriptor of research note ccid-host-stack §7.5.
const defaultDescriptorWire = `36 21 10 01 00 07 02 00 00 00
	A0 0F 00 00 A0 0F 00 00 00
	00 2A 00 00 00 2A 00 00 00
	FE 00 00 00 00 00 00 00 00 00 00 00
	7E 00 04 00 0A 08 00 00
	FF FF 00 00 00 01`

func TestDefaultDescriptorBytes(t *testing.T) {
	want := unhex(t, strings.Join(strings.Fields(defaultDescriptorWire), ""))
	got, err := ccid.DefaultDescriptor().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || len(got) != 54 {
		t.Fatalf("default descriptor\n got % X\nwant % X", got, want)
	}
	cfg := ccid.DefaultConfig()
	if cfg.TimeExtensionInterval != time.Second {
		t.Errorf("default time extension interval %v, want 1 s (GnuPG gives up after 5 s)", cfg.TimeExtensionInterval)
	}
	r, err := ccid.NewReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fromReader, _ := r.Descriptor().MarshalBinary()
	if !bytes.Equal(fromReader, want) {
		t.Errorf("Reader.Descriptor differs from the default")
	}
	d := ccid.DefaultDescriptor()
	// The fields the task and the research note name, one by one.
	checks := []struct {
		name      string
		got, want uint32
	}{
		{"dwFeatures", d.Features, 0x0004007E},
		{"dwProtocols", d.Protocols, 0x02},
		{"bNumClockSupported", uint32(d.NumClockSupported), 0},
		{"bNumDataRatesSupported", uint32(d.NumDataRatesSupported), 0},
		{"dwMaxCCIDMessageLength", d.MaxCCIDMessageLength, 2058},
		{"bPINSupport", uint32(d.PINSupport), 0},
		{"bMaxCCIDBusySlots", uint32(d.MaxCCIDBusySlots), 1},
		{"bMaxSlotIndex", uint32(d.MaxSlotIndex), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	var back ccid.ClassDescriptor
	if err := back.UnmarshalBinary(got); err != nil {
		t.Fatal(err)
	}
	again, _ := back.MarshalBinary()
	if !bytes.Equal(again, got) {
		t.Errorf("UnmarshalBinary/MarshalBinary round trip changed bytes")
	}
	s := d.String()
	for _, field := range []string{"dwFeatures               0x0004007E", "dwMaxCCIDMessageLength   2058", "bcdCCID                  1.10"} {
		if !strings.Contains(s, field) {
			t.Errorf("String() lacks %q:\n%s", field, s)
		}
	}
}

func TestDescriptorValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*ccid.ClassDescriptor)
		ok   bool
	}{
		{"default", func(*ccid.ClassDescriptor) {}, true},
		{"GnuPG's limit", func(d *ccid.ClassDescriptor) { d.MaxCCIDMessageLength = 2065 }, true},
		{"over GnuPG's limit", func(d *ccid.ClassDescriptor) { d.MaxCCIDMessageLength = 2066 }, false},
		{"tiny messages", func(d *ccid.ClassDescriptor) { d.MaxCCIDMessageLength = 20 }, false},
		{"T=0 only", func(d *ccid.ClassDescriptor) { d.Protocols = ccid.ProtocolMaskT0 }, false},
		{"TPDU level", func(d *ccid.ClassDescriptor) { d.Features = d.Features&^ccid.FeatureLevelMask | ccid.FeatureLevelTPDU }, false},
		{"clock list mismatch", func(d *ccid.ClassDescriptor) { d.NumClockSupported = 1 }, false},
		{"clock list", func(d *ccid.ClassDescriptor) { d.NumClockSupported = 1; d.ClockFrequencies = []uint32{4000} }, true},
		{"rate list mismatch", func(d *ccid.ClassDescriptor) { d.DataRates = []uint32{9600} }, false},
		{"two slots", func(d *ccid.ClassDescriptor) { d.MaxSlotIndex = 1 }, true},
		{"too many slots", func(d *ccid.ClassDescriptor) { d.MaxSlotIndex = 16 }, false},
		{"no busy slots", func(d *ccid.ClassDescriptor) { d.MaxCCIDBusySlots = 0 }, false},
	}
	for _, tc := range tests {
		d := ccid.DefaultDescriptor()
		tc.mod(&d)
		err := d.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if _, merr := d.MarshalBinary(); (merr == nil) != tc.ok {
			t.Errorf("%s: MarshalBinary error %v", tc.name, merr)
		}
		cfg := ccid.DefaultConfig()
		cfg.Descriptor = d
		if _, rerr := ccid.NewReader(cfg); (rerr == nil) != tc.ok {
			t.Errorf("%s: NewReader error %v", tc.name, rerr)
		}
	}
	var d ccid.ClassDescriptor
	if err := d.UnmarshalBinary(make([]byte, 53)); err == nil {
		t.Error("UnmarshalBinary accepted 53 bytes")
	}
	bad := unhex(t, strings.Join(strings.Fields(defaultDescriptorWire), ""))
	bad[1] = 0x22
	if err := d.UnmarshalBinary(bad); err == nil {
		t.Error("UnmarshalBinary accepted bDescriptorType 0x22")
	}
}

func TestT1ParametersFromATR(t *testing.T) {
	tests := []struct {
		name string
		atr  string
		want string // 7 bytes of abProtocolData
	}{
		{"OpenPGP card v2", "3B DA 18 FF 81 B1 FE 75 1F 03 00 31 C5 73 C0 01 40 00 90 00 0C", "18 10 FF 75 00 FE 00"},
		{"Gnuk", "3B DA 11 FF 81 B1 FE 55 1F 03 00 31 84 73 80 01 80 00 90 00 E4", "11 10 FF 55 00 FE 00"},
		{"Canokey", "3B F7 11 00 00 81 31 FE 65 43 61 6E 6F 6B 65 79 99", "11 10 00 65 00 FE 00"},
		{"no interface bytes", "3B 00", "11 10 00 4D 00 20 00"},
		{"inverse convention", "3F 00", "11 12 00 4D 00 20 00"},
		{"CRC via TC3", "3B 80 81 41 01 00", "11 11 00 4D 00 20 00"},
		{"T=0 group ignored", "3B 80 80 70 AA BB CC", "11 10 00 4D 00 20 00"},
		{"truncated", "3B DA 18", "18 10 00 4D 00 20 00"},
		{"empty", "", "11 10 00 4D 00 20 00"},
	}
	for _, tc := range tests {
		p := ccid.T1ParametersFromATR(unhex(t, tc.atr))
		got := p.Bytes()
		if want := unhex(t, tc.want); !bytes.Equal(got[:], want) {
			t.Errorf("%s: % X, want % X", tc.name, got, want)
		}
		back, err := ccid.ParseT1Parameters(got[:])
		if err != nil || back != p {
			t.Errorf("%s: ParseT1Parameters = %v, %v", tc.name, back, err)
		}
	}
	if _, err := ccid.ParseT1Parameters(make([]byte, 5)); err == nil {
		t.Error("ParseT1Parameters accepted 5 bytes")
	}
}
