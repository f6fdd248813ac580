// Package persona holds reader personas: the USB identity, speed, CCID class descriptor and ATR of known
// readers, so that `ccid-gadget up --persona NAME` makes hosts treat the gadget as that reader (libccid keys its
// quirks and timeout arithmetic on VID:PID, dwFeatures, dwDefaultClock and the ATR; pcscd only binds a VID:PID
// listed in libccid's Info.plist).
//
// It is plain data: no USB code. The gadget and configfs packages turn a Persona into descriptors. Each
// persona's Facts says which values come from research (libccid's reader list, the pcscd traces) and which are
// our own choices where the source was silent.
package persona

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// Speed is the highest USB speed a persona enumerates at.
type Speed string

// Speeds, as configfs max_speed spells them.
const (
	AnySpeed  Speed = ""           // whatever the controller offers (high speed on a Pi Zero: 512-byte bulk packets)
	FullSpeed Speed = "full-speed" // 64-byte bulk packets
	HighSpeed Speed = "high-speed" // 512-byte bulk packets
)

// Persona is a reader the gadget can impersonate.
type Persona struct {
	Name    string // as given to --persona
	Summary string // one line

	VendorID     uint16 // idVendor
	ProductID    uint16 // idProduct
	BcdDevice    uint16 // bcdDevice
	Manufacturer string // iManufacturer string
	Product      string // iProduct string (pcscd shows the Info.plist friendly name instead)
	Serial       string // iSerialNumber string; "" keeps the card's serial number
	MaxSpeed     Speed

	Descriptor ccid.ClassDescriptor
	// ATR replaces the card's ATR when not nil (a contactless reader's pseudo-ATR, say). Nil keeps the card's.
	ATR []byte

	Facts string // provenance of the values
}

// String prints the identity and the class descriptor (ClassDescriptor.String), as `ccid-gadget personas` does.
func (p Persona) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", p.Name, p.Summary)
	fmt.Fprintf(&b, "  %-22s %04X:%04X bcdDevice %X.%02X\n", "VID:PID", p.VendorID, p.ProductID, p.BcdDevice>>8, p.BcdDevice&0xFF)
	fmt.Fprintf(&b, "  %-22s %q / %q / serial %q\n", "strings", p.Manufacturer, p.Product, p.Serial)
	speed := string(p.MaxSpeed)
	if speed == "" {
		speed = "controller's (high-speed on a Pi Zero)"
	}
	fmt.Fprintf(&b, "  %-22s %s\n", "speed", speed)
	if p.ATR != nil {
		fmt.Fprintf(&b, "  %-22s % X\n", "ATR", p.ATR)
	} else {
		fmt.Fprintf(&b, "  %-22s the card's\n", "ATR")
	}
	for _, l := range strings.Split(strings.TrimRight(p.Descriptor.String(), "\n"), "\n") {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	fmt.Fprintf(&b, "  %-22s %s\n", "facts", p.Facts)
	return b.String()
}

// All returns every persona, sorted by name.
func All() []Persona {
	ps := []Persona{generic(), nxpPR533(), gnuk(), canokey()}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	return ps
}

// Names lists the persona names.
func Names() []string {
	var n []string
	for _, p := range All() {
		n = append(n, p.Name)
	}
	return n
}

// Lookup returns the persona called name.
func Lookup(name string) (Persona, error) {
	for _, p := range All() {
		if p.Name == name {
			return p, nil
		}
	}
	return Persona{}, fmt.Errorf("persona: unknown persona %q (known: %s)", name, strings.Join(Names(), ", "))
}

// ByUSBID returns the persona whose reader has VID:PID vid:pid (a replayed trace names its reader that way), or
// false when none has.
func ByUSBID(vid, pid uint16) (Persona, bool) {
	for _, p := range All() {
		if p.VendorID == vid && p.ProductID == pid {
			return p, true
		}
	}
	return Persona{}, false
}

func generic() Persona {
	return Persona{
		Name: "generic", Summary: "our own reader: extended APDUs, T=1, 4 MHz, pid.codes test VID:PID",
		VendorID: 0x1209, ProductID: 0x0001, BcdDevice: 0x0100,
		Manufacturer: "ccidgadget", Product: "ccidgadget OpenPGP reader",
		Descriptor: ccid.DefaultDescriptor(),
		Facts:      "ccid.DefaultDescriptor (research ccid-host-stack §7.5); `ccid-gadget host-setup` lists 1209:0001 for pcscd",
	}
}

func nxpPR533() Persona {
	d := ccid.DefaultDescriptor()
	d.Protocols = ccid.ProtocolMaskT0 | ccid.ProtocolMaskT1
	d.DefaultClock, d.MaximumClock = 3685, 3685
	d.DataRate, d.MaxDataRate = 9906, 9906 // 3 685 000 / 372
	d.Features = 0x0004047E
	return Persona{
		Name: "nxp-pr533", Summary: "NXP PR533 contactless reader (the passport traces): full speed, contactless pseudo-ATR",
		VendorID: 0x1FC9, ProductID: 0x010B, BcdDevice: 0x0100,
		Manufacturer: "NXP", Product: "PR533", Serial: "3.60",
		MaxSpeed:   FullSpeed,
		Descriptor: d,
		ATR:        []byte{0x3B, 0x80, 0x80, 0x01, 0x01},
		Facts: "VID:PID 1FC9:010B and ATR 3B 80 80 01 01 from shared/traces (libccid Info.plist: \"NXP PR533\"); " +
			"dwDefaultClock 3685 kHz and dwFeatures 0x0004047E from libccid readers/NXP_PR533.txt (research " +
			"faults-and-replay §0, §1.7); serial \"3.60\" from pcscd's reader name \"NXP PR533 (3.60) 00 00\"; " +
			"dwProtocols T=0|T=1, data rate, bcdDevice and dwMaxCCIDMessageLength 2058 are ours (not in the notes)",
	}
}

func gnuk() Persona {
	d := ccid.DefaultDescriptor()
	d.Features = d.Features&^ccid.FeatureLevelMask | ccid.FeatureLevelShortAPDU
	d.MaxCCIDMessageLength = 271 // 10 + the largest short command APDU (4+1+255+1)
	return Persona{
		Name: "gnuk", Summary: "short-APDU-only token (Gnuk's identity): no extended APDUs, full speed",
		VendorID: 0x234B, ProductID: 0x0000, BcdDevice: 0x0100,
		Manufacturer: "Free Software Initiative of Japan", Product: "Gnuk Token",
		MaxSpeed:   FullSpeed,
		Descriptor: d,
		ATR: []byte{0x3B, 0xDA, 0x11, 0xFF, 0x81, 0xB1, 0xFE, 0x55, 0x1F, 0x03, 0x00, 0x31, 0x84, 0x73, 0x80, 0x01,
			0x80, 0x00, 0x90, 0x00, 0xE4},
		Facts: "VID:PID 234B:0000 listed in libccid's Info.plist (research ccid-host-stack §2.2); Gnuk is short APDU " +
			"+ chaining only (research openpgp-card-anchors, OpenSC PR #584) on a full-speed STM32; ATR from " +
			"ccid-host-stack §7.5; libccid then sends whole short APDUs (CmdXfrBlockTPDU_T0, §2.4) and refuses " +
			"longer ones; other descriptor fields are ours",
	}
}

func canokey() Persona {
	return Persona{
		Name: "canokey", Summary: "full-speed-only token (Canokey's identity): 64-byte bulk packets, extended APDUs",
		VendorID: 0x20A0, ProductID: 0x42D4, BcdDevice: 0x0100,
		Manufacturer: "canokeys.org", Product: "CanoKey",
		MaxSpeed:   FullSpeed,
		Descriptor: ccid.DefaultDescriptor(),
		ATR: []byte{0x3B, 0xF7, 0x11, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x65, 0x43, 0x61, 0x6E, 0x6F, 0x6B, 0x65, 0x79,
			0x99},
		Facts: "VID:PID 20A0:42D4 listed in libccid's Info.plist as \"Canokeys Canokey\" (research ccid-host-stack §2.2); " +
			"ATR from ccid-host-stack §7.5; full speed forces 64-byte packets, so every answer of 64·k bytes needs " +
			"its ZLP; descriptor fields are ours (the notes do not give Canokey's)",
	}
}
