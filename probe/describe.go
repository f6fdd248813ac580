package probe

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// Field is one field of the CCID class descriptor, decoded and explained.
type Field struct {
	Offset  int    `json:"offset"`
	Name    string `json:"name"`
	Value   uint32 `json:"value"`
	Meaning string `json:"meaning"` // the value decoded ("T=1", "4000 kHz", ...)
	Hosts   string `json:"hosts"`   // what libccid 1.5.2 and GnuPG 2.2 scdaemon do with it
}

// String prints the field on two lines: offset, name, value and meaning, then what the hosts do with it.
func (f Field) String() string {
	return fmt.Sprintf("%2d %-24s %-10s %s\n%30s%s", f.Offset, f.Name, fmt.Sprintf("0x%X", f.Value), f.Meaning, "", f.Hosts)
}

type fieldSpec struct {
	off, size int
	name      string
	meaning   func(v uint32) string
	hosts     string
}

func dec(unit string) func(uint32) string {
	return func(v uint32) string { return fmt.Sprintf("%d%s", v, unit) }
}

var fieldSpecs = []fieldSpec{
	{0, 1, "bLength", dec(" bytes"), "libccid requires the interface's extra descriptors to be exactly 54 bytes; scdaemon requires bLength >= 54"},
	{1, 1, "bDescriptorType", func(v uint32) string {
		if v == ccid.DescriptorType {
			return "CCID class descriptor"
		}
		return "not 0x21"
	}, "neither host checks it; scdaemon parses extra from byte 0"},
	{2, 2, "bcdCCID", func(v uint32) string { return fmt.Sprintf("CCID %x.%02x", v>>8, v&0xFF) }, "printed only"},
	{4, 1, "bMaxSlotIndex", func(v uint32) string { return fmt.Sprintf("%d slot(s)", v+1) }, "libccid: >0 enables its multi-slot threads sharing one bulk-IN pipe; scdaemon uses slot 0"},
	{5, 1, "bVoltageSupport", voltages, "libccid loops over voltages on a failed PowerOn unless dwFeatures has 0x04 or 0x08"},
	{6, 4, "dwProtocols", protocols, "libccid refuses to set a protocol whose bit is missing; scdaemon requires T=1"},
	{10, 4, "dwDefaultClock", dec(" kHz"), "libccid computes its read timeout from the ATR and this clock; 0 gives 60 s"},
	{14, 4, "dwMaximumClock", dec(" kHz"), "informational"},
	{18, 1, "bNumClockSupported", dec(""), "non-zero: hosts may ask GET_CLOCK_FREQUENCIES (class request 0x02)"},
	{19, 4, "dwDataRate", dec(" bps"), "informational"},
	{23, 4, "dwMaxDataRate", dec(" bps"), "libccid: PPS decisions (skipped with dwFeatures 0x40)"},
	{27, 1, "bNumDataRatesSupported", dec(""), "non-zero: libccid sends GET_DATA_RATES (class request 0x03) when it opens the reader"},
	{28, 4, "dwMaxIFSD", dec(" bytes"), "libccid: T=1 IFSD, used at TPDU level only"},
	{32, 4, "dwSynchProtocols", hex32, "0 for asynchronous cards only"},
	{36, 4, "dwMechanical", hex32, "0: no card accept/eject/capture/lock mechanism"},
	{40, 4, "dwFeatures", features, "libccid: exchange level from mask 0x70000, 0x40 skips PPS/SetParameters; scdaemon: needs TPDU or APDU level, 0x40 sets auto_param (GetParameters + SetParameters T=1 after PowerOn)"},
	{44, 4, "dwMaxCCIDMessageLength", func(v uint32) string {
		if v < 10 {
			return fmt.Sprintf("%d bytes (less than a header)", v)
		}
		return fmt.Sprintf("%d bytes (APDU chunks of %d)", v, v-10)
	}, "libccid splits commands into chunks of this minus 10; scdaemon reads bulk-IN into 2065 bytes, so more overflows it"},
	{48, 1, "bClassGetResponse", classEcho, "printed only by libccid's parse tool"},
	{49, 1, "bClassEnvelope", classEcho, "printed only"},
	{50, 2, "wLcdLayout", func(v uint32) string {
		if v == 0 {
			return "no LCD"
		}
		return fmt.Sprintf("%d lines x %d characters", v>>8, v&0xFF)
	}, "libccid: PIN-pad display features"},
	{52, 1, "bPINSupport", func(v uint32) string {
		var s []string
		if v&1 != 0 {
			s = append(s, "verification")
		}
		if v&2 != 0 {
			s = append(s, "modification")
		}
		if len(s) == 0 {
			return "no PIN pad"
		}
		return "PIN pad: " + strings.Join(s, ", ")
	}, "non-zero: libccid advertises FEATURE_VERIFY/MODIFY_PIN_DIRECT and GnuPG tries the PIN pad"},
	{53, 1, "bMaxCCIDBusySlots", dec(""), "libccid stores it only"},
}

func hex32(v uint32) string { return fmt.Sprintf("0x%08X", v) }

func classEcho(v uint32) string {
	if v == 0xFF {
		return "echo the command's CLA"
	}
	return fmt.Sprintf("CLA 0x%02X", v)
}

func voltages(v uint32) string {
	var s []string
	for bit, name := range []string{"5 V", "3 V", "1.8 V"} {
		if v&(1<<bit) != 0 {
			s = append(s, name)
		}
	}
	return strings.Join(s, ", ")
}

func protocols(v uint32) string {
	var s []string
	if v&ccid.ProtocolMaskT0 != 0 {
		s = append(s, "T=0")
	}
	if v&ccid.ProtocolMaskT1 != 0 {
		s = append(s, "T=1")
	}
	if len(s) == 0 {
		return "no protocol"
	}
	return strings.Join(s, ", ")
}

var featureNames = []struct {
	bit  uint32
	name string
}{
	{ccid.FeatureAutoATRParams, "auto parameters from ATR"},
	{ccid.FeatureAutoActivation, "auto activation"},
	{ccid.FeatureAutoVoltage, "auto voltage"},
	{ccid.FeatureAutoClock, "auto clock"},
	{ccid.FeatureAutoBaud, "auto baud rate"},
	{ccid.FeatureAutoParamNegotiation, "auto parameter negotiation"},
	{ccid.FeatureAutoPPS, "auto PPS"},
	{ccid.FeatureClockStop, "clock stop"},
	{ccid.FeatureNADNonZero, "NAD != 0"},
	{ccid.FeatureAutoIFSD, "auto IFSD"},
}

// ExchangeLevel names the exchange level bits (dwFeatures & 0x70000).
func ExchangeLevel(features uint32) string {
	switch features & ccid.FeatureLevelMask {
	case 0:
		return "character"
	case ccid.FeatureLevelTPDU:
		return "TPDU"
	case ccid.FeatureLevelShortAPDU:
		return "short APDU"
	case ccid.FeatureLevelExtendedAPDU:
		return "short+extended APDU"
	}
	return fmt.Sprintf("invalid level 0x%05X", features&ccid.FeatureLevelMask)
}

func features(v uint32) string {
	s := []string{ExchangeLevel(v) + " level"}
	for _, f := range featureNames {
		if v&f.bit != 0 {
			s = append(s, f.name)
		}
	}
	return strings.Join(s, ", ")
}

// DescribeDescriptor decodes the 54-byte CCID class descriptor field by field (CCID §5.1, Table 5.1-1), saying
// what each value means and what libccid and scdaemon do with it. It needs at least 54 bytes; bLength and
// bDescriptorType are reported, not enforced (Check judges them).
func DescribeDescriptor(b []byte) ([]Field, error) {
	if len(b) < ccid.DescriptorSize {
		return nil, fmt.Errorf("probe: CCID class descriptor: %d bytes, want %d", len(b), ccid.DescriptorSize)
	}
	out := make([]Field, 0, len(fieldSpecs))
	for _, s := range fieldSpecs {
		var v uint32
		switch s.size {
		case 1:
			v = uint32(b[s.off])
		case 2:
			v = uint32(binary.LittleEndian.Uint16(b[s.off:]))
		case 4:
			v = binary.LittleEndian.Uint32(b[s.off:])
		}
		out = append(out, Field{Offset: s.off, Name: s.name, Value: v, Meaning: s.meaning(v), Hosts: s.hosts})
	}
	return out, nil
}

// decodeClass decodes the descriptor without checking bDescriptorType (GnuPG does not either).
func decodeClass(b []byte) (ccid.ClassDescriptor, error) {
	var d ccid.ClassDescriptor
	if len(b) < ccid.DescriptorSize {
		return d, fmt.Errorf("probe: CCID class descriptor: %d bytes, want %d", len(b), ccid.DescriptorSize)
	}
	c := append([]byte(nil), b[:ccid.DescriptorSize]...)
	c[0], c[1] = ccid.DescriptorSize, ccid.DescriptorType
	err := d.UnmarshalBinary(c)
	return d, err
}
