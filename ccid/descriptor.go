package ccid

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// DescriptorSize is bLength of the CCID class descriptor.
const DescriptorSize = 54

// DescriptorType is bDescriptorType of the CCID class descriptor (CCID §5.1).
const DescriptorType = 0x21

// MaxHostMessageLength is the largest dwMaxCCIDMessageLength a Reader accepts: GnuPG reads bulk-IN into a
// 2065-byte buffer (scd/ccid-driver.c CCID_MAX_BUF) and a longer DataBlock overflows it.
const MaxHostMessageLength = 2065

// dwFeatures bits (CCID §5.1, Table 5.1-1).
const (
	FeatureAutoATRParams        uint32 = 0x00000002 // automatic parameter configuration based on the ATR
	FeatureAutoActivation       uint32 = 0x00000004 // automatic activation of the ICC on insertion (libccid: auto voltage)
	FeatureAutoVoltage          uint32 = 0x00000008 // automatic ICC voltage selection
	FeatureAutoClock            uint32 = 0x00000010 // automatic ICC clock frequency change
	FeatureAutoBaud             uint32 = 0x00000020 // automatic baud rate change
	FeatureAutoParamNegotiation uint32 = 0x00000040 // automatic parameter negotiation by the reader
	FeatureAutoPPS              uint32 = 0x00000080 // automatic PPS by the reader
	FeatureClockStop            uint32 = 0x00000100 // the reader can set the ICC in clock stop mode
	FeatureNADNonZero           uint32 = 0x00000200 // NAD values other than 0 accepted (T=1)
	FeatureAutoIFSD             uint32 = 0x00000400 // automatic IFSD exchange as first exchange (T=1)
	FeatureLevelTPDU            uint32 = 0x00010000 // TPDU level exchanges
	FeatureLevelShortAPDU       uint32 = 0x00020000 // short APDU level exchanges
	FeatureLevelExtendedAPDU    uint32 = 0x00040000 // short and extended APDU level exchanges
	FeatureLevelMask            uint32 = 0x00070000
)

// dwProtocols bits.
const (
	ProtocolMaskT0 uint32 = 1 << 0
	ProtocolMaskT1 uint32 = 1 << 1
)

// ClassDescriptor is the CCID class descriptor, "Smart Card Device Class Descriptor" (CCID §5.1, Table 5.1-1).
// It follows the interface descriptor as the only class-specific descriptor (libccid requires extra_length 54).
// Each field notes what libccid 1.5.2 and GnuPG 2.2 scdaemon do with it.
type ClassDescriptor struct {
	// CCID is bcdCCID, the spec release in BCD: 0x0110. Neither host checks it.
	CCID uint16
	// MaxSlotIndex is bMaxSlotIndex: the number of slots minus 1. libccid enables its multi-slot code (threads
	// sharing one bulk-IN pipe) when it is above 0; scdaemon uses slot 0 only. It also sets the Reader's slots.
	MaxSlotIndex byte
	// VoltageSupport is bVoltageSupport: 1 5 V, 2 3 V, 4 1.8 V. libccid loops over the voltages on a failed
	// PowerOn unless dwFeatures has 0x04 or 0x08 (then bPowerSelect is 0, automatic).
	VoltageSupport byte
	// Protocols is dwProtocols: bit 0 T=0, bit 1 T=1. libccid refuses to set a protocol whose bit is missing;
	// scdaemon requires T=1. T=1 only makes both hosts use T=1.
	Protocols uint32
	// DefaultClock is dwDefaultClock in kHz. libccid computes its read timeout from the ATR and this clock; 0
	// gives a 60 s timeout.
	DefaultClock uint32
	// MaximumClock is dwMaximumClock in kHz. Informational for both hosts.
	MaximumClock uint32
	// NumClockSupported is bNumClockSupported. Non-zero makes hosts ask GET_CLOCK_FREQUENCIES; 0 means the
	// reader has only DefaultClock and libccid sends no control request at all.
	NumClockSupported byte
	// DataRate is dwDataRate in bps. Informational.
	DataRate uint32
	// MaxDataRate is dwMaxDataRate in bps. libccid uses it for PPS decisions, which 0x40 in Features skips.
	MaxDataRate uint32
	// NumDataRatesSupported is bNumDataRatesSupported. Non-zero makes libccid send GET_DATA_RATES at open.
	NumDataRatesSupported byte
	// MaxIFSD is dwMaxIFSD, the largest T=1 IFSD. Used by libccid only at TPDU level.
	MaxIFSD uint32
	// SynchProtocols is dwSynchProtocols (2-wire, 3-wire, I2C); 0 for asynchronous cards only.
	SynchProtocols uint32
	// Mechanical is dwMechanical (card accept/eject/capture/lock); 0: none.
	Mechanical uint32
	// Features is dwFeatures (Feature* constants). libccid takes the exchange level from the 0x70000 mask and
	// skips PPS and SetParameters with 0x40; scdaemon sets auto_param on 0x40 (then sends GetParameters and
	// SetParameters T=1 after PowerOn) and apdu_level 2 on 0x40000. The Reader works at the short (0x20000) or
	// extended APDU level.
	Features uint32
	// MaxCCIDMessageLength is dwMaxCCIDMessageLength: the largest message, header included, in both directions.
	// libccid splits commands into chunks of this minus 10 bytes; scdaemon reads bulk-IN into 2065 bytes, so
	// the Reader accepts at most MaxHostMessageLength and chains longer answers.
	MaxCCIDMessageLength uint32
	// ClassGetResponse is bClassGetResponse (T=0 automatic GET RESPONSE class; 0xFF echoes the command's CLA).
	// Only printed by libccid's parse tool.
	ClassGetResponse byte
	// ClassEnvelope is bClassEnvelope (T=0 automatic ENVELOPE class; 0xFF echoes). Only printed.
	ClassEnvelope byte
	// LcdLayout is wLcdLayout: lines<<8 | characters per line; 0 for no LCD. libccid uses it for pinpad display
	// features.
	LcdLayout uint16
	// PINSupport is bPINSupport: 1 verification, 2 modification. Non-zero makes libccid advertise PIN-pad
	// features and GnuPG try the pinpad; 0 keeps PIN entry on the host.
	PINSupport byte
	// MaxCCIDBusySlots is bMaxCCIDBusySlots, how many slots may run a command at once. libccid stores it only.
	MaxCCIDBusySlots byte

	// ClockFrequencies answers GET_CLOCK_FREQUENCIES (kHz); its length must equal NumClockSupported.
	ClockFrequencies []uint32
	// DataRates answers GET_DATA_RATES (bps); its length must equal NumDataRatesSupported.
	DataRates []uint32
}

// DefaultDescriptor returns the descriptor of research note ccid-host-stack §7.5: one slot, T=1 only, 4 MHz,
// dwFeatures 0x0004007E, dwMaxCCIDMessageLength 2058, no PIN pad.
func DefaultDescriptor() ClassDescriptor {
	return ClassDescriptor{
		CCID:                 0x0110,
		MaxSlotIndex:         0,
		VoltageSupport:       0x07,
		Protocols:            ProtocolMaskT1,
		DefaultClock:         4000,
		MaximumClock:         4000,
		DataRate:             10752,
		MaxDataRate:          10752,
		MaxIFSD:              254,
		Features:             0x0004007E,
		MaxCCIDMessageLength: 2058,
		ClassGetResponse:     0xFF,
		ClassEnvelope:        0xFF,
		MaxCCIDBusySlots:     1,
	}
}

// Validate reports settings the Reader cannot honour or that break libccid or scdaemon.
func (d ClassDescriptor) Validate() error {
	var errs []error
	if int(d.NumClockSupported) != len(d.ClockFrequencies) {
		errs = append(errs, fmt.Errorf("bNumClockSupported %d but %d clock frequencies", d.NumClockSupported, len(d.ClockFrequencies)))
	}
	if int(d.NumDataRatesSupported) != len(d.DataRates) {
		errs = append(errs, fmt.Errorf("bNumDataRatesSupported %d but %d data rates", d.NumDataRatesSupported, len(d.DataRates)))
	}
	if d.Protocols&ProtocolMaskT1 == 0 {
		errs = append(errs, errors.New("dwProtocols must offer T=1 (scdaemon requires it)"))
	}
	switch d.Features & FeatureLevelMask {
	case FeatureLevelExtendedAPDU:
	case FeatureLevelShortAPDU:
		// The host sends each short APDU in one XfrBlock and reads each answer from one DataBlock (libccid
		// CmdXfrBlockTPDU_T0), which is the extended level's unchained case when a short command fits.
		if d.MaxCCIDMessageLength < HeaderSize+maxShortAPDU {
			errs = append(errs, fmt.Errorf("dwMaxCCIDMessageLength %d: short APDU level needs %d for a whole short APDU",
				d.MaxCCIDMessageLength, HeaderSize+maxShortAPDU))
		}
	default:
		errs = append(errs, fmt.Errorf("dwFeatures 0x%08X: the reader works at short (0x00020000) or short+extended (0x00040000) APDU level only", d.Features))
	}
	if d.MaxCCIDMessageLength < minMessageLength || d.MaxCCIDMessageLength > MaxHostMessageLength {
		errs = append(errs, fmt.Errorf("dwMaxCCIDMessageLength %d outside %d..%d", d.MaxCCIDMessageLength, minMessageLength, MaxHostMessageLength))
	}
	if d.MaxSlotIndex > MaxSlotIndex {
		errs = append(errs, fmt.Errorf("bMaxSlotIndex %d above %d", d.MaxSlotIndex, MaxSlotIndex))
	}
	if d.MaxCCIDBusySlots == 0 {
		errs = append(errs, errors.New("bMaxCCIDBusySlots must be at least 1"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ccid: class descriptor: %w", err)
	}
	return nil
}

// maxShortAPDU is the largest short command APDU: CLA INS P1 P2, Lc, 255 bytes, Le.
const maxShortAPDU = 4 + 1 + 255 + 1

// minMessageLength keeps room for a 33-byte ATR and a status word in one message.
const minMessageLength = 64

// MaxSlotIndex is the largest bMaxSlotIndex a Reader accepts (16 slots).
const MaxSlotIndex = 15

// MarshalBinary returns the 54-byte descriptor, bLength 0x36 and bDescriptorType 0x21. It fails if Validate does.
func (d ClassDescriptor) MarshalBinary() ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	b := make([]byte, 0, DescriptorSize)
	b = append(b, DescriptorSize, DescriptorType)
	b = le.AppendUint16(b, d.CCID)
	b = append(b, d.MaxSlotIndex, d.VoltageSupport)
	b = le.AppendUint32(b, d.Protocols)
	b = le.AppendUint32(b, d.DefaultClock)
	b = le.AppendUint32(b, d.MaximumClock)
	b = append(b, d.NumClockSupported)
	b = le.AppendUint32(b, d.DataRate)
	b = le.AppendUint32(b, d.MaxDataRate)
	b = append(b, d.NumDataRatesSupported)
	b = le.AppendUint32(b, d.MaxIFSD)
	b = le.AppendUint32(b, d.SynchProtocols)
	b = le.AppendUint32(b, d.Mechanical)
	b = le.AppendUint32(b, d.Features)
	b = le.AppendUint32(b, d.MaxCCIDMessageLength)
	b = append(b, d.ClassGetResponse, d.ClassEnvelope)
	b = le.AppendUint16(b, d.LcdLayout)
	b = append(b, d.PINSupport, d.MaxCCIDBusySlots)
	return b, nil
}

// UnmarshalBinary decodes a CCID class descriptor as a host reads it (at least 54 bytes, bLength ≥ 54). It
// does not validate the settings and leaves ClockFrequencies and DataRates nil.
func (d *ClassDescriptor) UnmarshalBinary(b []byte) error {
	if len(b) < DescriptorSize || b[0] < DescriptorSize {
		return fmt.Errorf("ccid: class descriptor of %d bytes (bLength %d), want %d", len(b), firstByte(b), DescriptorSize)
	}
	if b[1] != DescriptorType {
		return fmt.Errorf("ccid: bDescriptorType 0x%02X, want 0x21", b[1])
	}
	le := binary.LittleEndian
	*d = ClassDescriptor{
		CCID: le.Uint16(b[2:]), MaxSlotIndex: b[4], VoltageSupport: b[5], Protocols: le.Uint32(b[6:]),
		DefaultClock: le.Uint32(b[10:]), MaximumClock: le.Uint32(b[14:]), NumClockSupported: b[18],
		DataRate: le.Uint32(b[19:]), MaxDataRate: le.Uint32(b[23:]), NumDataRatesSupported: b[27],
		MaxIFSD: le.Uint32(b[28:]), SynchProtocols: le.Uint32(b[32:]), Mechanical: le.Uint32(b[36:]),
		Features: le.Uint32(b[40:]), MaxCCIDMessageLength: le.Uint32(b[44:]), ClassGetResponse: b[48],
		ClassEnvelope: b[49], LcdLayout: le.Uint16(b[50:]), PINSupport: b[52], MaxCCIDBusySlots: b[53],
	}
	return nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	return int(b[0])
}

// String prints every field, one per line, the way libccid's parse tool does.
func (d ClassDescriptor) String() string {
	var s strings.Builder
	f := func(name, format string, args ...any) {
		fmt.Fprintf(&s, "%-24s "+format+"\n", append([]any{name}, args...)...)
	}
	f("bcdCCID", "%x.%02x", d.CCID>>8, d.CCID&0xFF)
	f("bMaxSlotIndex", "%d", d.MaxSlotIndex)
	f("bVoltageSupport", "0x%02X", d.VoltageSupport)
	f("dwProtocols", "0x%08X", d.Protocols)
	f("dwDefaultClock", "%d kHz", d.DefaultClock)
	f("dwMaximumClock", "%d kHz", d.MaximumClock)
	f("bNumClockSupported", "%d %v", d.NumClockSupported, d.ClockFrequencies)
	f("dwDataRate", "%d bps", d.DataRate)
	f("dwMaxDataRate", "%d bps", d.MaxDataRate)
	f("bNumDataRatesSupported", "%d %v", d.NumDataRatesSupported, d.DataRates)
	f("dwMaxIFSD", "%d", d.MaxIFSD)
	f("dwSynchProtocols", "0x%08X", d.SynchProtocols)
	f("dwMechanical", "0x%08X", d.Mechanical)
	f("dwFeatures", "0x%08X", d.Features)
	f("dwMaxCCIDMessageLength", "%d", d.MaxCCIDMessageLength)
	f("bClassGetResponse", "0x%02X", d.ClassGetResponse)
	f("bClassEnvelope", "0x%02X", d.ClassEnvelope)
	f("wLcdLayout", "0x%04X", d.LcdLayout)
	f("bPINSupport", "0x%02X", d.PINSupport)
	f("bMaxCCIDBusySlots", "%d", d.MaxCCIDBusySlots)
	return s.String()
}
