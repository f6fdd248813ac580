package probe

import (
	"encoding/binary"
	"fmt"
)

// USB standard descriptor types (USB 2.0 §9.4, Table 9-5).
const (
	descDevice        = 0x01
	descConfiguration = 0x02
	descInterface     = 0x04
	descEndpoint      = 0x05
)

// Endpoint transfer types, bits 1..0 of bmAttributes (USB 2.0 §9.6.6).
const (
	TransferControl     byte = 0
	TransferIsochronous byte = 1
	TransferBulk        byte = 2
	TransferInterrupt   byte = 3
)

// Endpoint is a standard endpoint descriptor (USB 2.0 §9.6.6).
type Endpoint struct {
	Address       byte   `json:"bEndpointAddress"` // bit 7 set: IN
	Attributes    byte   `json:"bmAttributes"`     // bits 1..0 transfer type; libccid compares the whole byte
	MaxPacketSize uint16 `json:"wMaxPacketSize"`
	Interval      byte   `json:"bInterval"`
	Extra         []byte `json:"extra,omitempty"` // class or vendor descriptors that follow it
}

// In reports whether e is an IN endpoint.
func (e Endpoint) In() bool { return e.Address&0x80 != 0 }

// Type is the transfer type (Transfer* constants).
func (e Endpoint) Type() byte { return e.Attributes & 3 }

// String describes the endpoint the way lsusb names its fields.
func (e Endpoint) String() string {
	dir := "OUT"
	if e.In() {
		dir = "IN"
	}
	kind := [...]string{"control", "isochronous", "bulk", "interrupt"}[e.Type()]
	return fmt.Sprintf("0x%02X %s %s, bmAttributes 0x%02X, wMaxPacketSize %d, bInterval %d",
		e.Address, kind, dir, e.Attributes, e.MaxPacketSize, e.Interval)
}

// Interface is one alternate setting of an interface (USB 2.0 §9.6.5) with what follows it.
type Interface struct {
	Number       byte `json:"bInterfaceNumber"`
	Alternate    byte `json:"bAlternateSetting"`
	NumEndpoints byte `json:"bNumEndpoints"`
	Class        byte `json:"bInterfaceClass"`
	SubClass     byte `json:"bInterfaceSubClass"`
	Protocol     byte `json:"bInterfaceProtocol"`
	StringIndex  byte `json:"iInterface"`
	// Extra holds the descriptors between the interface descriptor and its first endpoint, as libusb's
	// altsetting->extra does; for a CCID reader exactly the 54-byte class descriptor.
	Extra     []byte     `json:"extra"`
	Endpoints []Endpoint `json:"endpoints"`
}

// IsCCID applies libccid's rule (ccid_usb.c get_ccid_usb_interface): class 0x0B, or class 0xFF with a 54-byte
// extra descriptor.
func (i Interface) IsCCID() bool {
	return i.Class == 0x0B || (i.Class == 0xFF && len(i.Extra) == 54)
}

// BulkIn returns the first bulk IN endpoint, or false.
func (i Interface) BulkIn() (Endpoint, bool) { return i.find(TransferBulk, true) }

// BulkOut returns the first bulk OUT endpoint, or false.
func (i Interface) BulkOut() (Endpoint, bool) { return i.find(TransferBulk, false) }

// InterruptIn returns the first interrupt IN endpoint, or false.
func (i Interface) InterruptIn() (Endpoint, bool) { return i.find(TransferInterrupt, true) }

func (i Interface) find(t byte, in bool) (Endpoint, bool) {
	for _, e := range i.Endpoints {
		if e.Type() == t && e.In() == in {
			return e, true
		}
	}
	return Endpoint{}, false
}

// Configuration is a parsed configuration descriptor with all its interfaces and alternate settings.
type Configuration struct {
	Value      byte        `json:"bConfigurationValue"`
	Attributes byte        `json:"bmAttributes"`
	MaxPower   byte        `json:"bMaxPower"`
	Interfaces []Interface `json:"interfaces"`
}

// ParseConfiguration decodes the bytes a GET_DESCRIPTOR(CONFIGURATION) request returns: the 9-byte
// configuration descriptor followed by wTotalLength-9 bytes of interface, class and endpoint descriptors.
// Bytes past wTotalLength are ignored. It fails on a descriptor that runs past the end or has bLength < 2, and
// on interface or endpoint descriptors shorter than their standard size.
func ParseConfiguration(b []byte) (Configuration, error) {
	if len(b) < 9 || b[0] < 9 || b[1] != descConfiguration {
		return Configuration{}, fmt.Errorf("probe: configuration descriptor: %d bytes, bLength %d, type 0x%02X", len(b), first(b), second(b))
	}
	total := int(binary.LittleEndian.Uint16(b[2:]))
	if total < int(b[0]) || total > len(b) {
		return Configuration{}, fmt.Errorf("probe: configuration descriptor: wTotalLength %d, have %d bytes", total, len(b))
	}
	c := Configuration{Value: b[5], Attributes: b[7], MaxPower: b[8]}
	b = b[:total]
	var cur *Interface
	var ep *Endpoint
	for off := int(b[0]); off < len(b); {
		n := int(b[off])
		if n < 2 || off+n > len(b) {
			return Configuration{}, fmt.Errorf("probe: descriptor at offset %d: bLength %d runs past %d bytes", off, n, len(b))
		}
		d := b[off : off+n]
		switch d[1] {
		case descInterface:
			if n < 9 {
				return Configuration{}, fmt.Errorf("probe: interface descriptor at offset %d: bLength %d", off, n)
			}
			c.Interfaces = append(c.Interfaces, Interface{Number: d[2], Alternate: d[3], NumEndpoints: d[4],
				Class: d[5], SubClass: d[6], Protocol: d[7], StringIndex: d[8], Extra: []byte{}})
			cur, ep = &c.Interfaces[len(c.Interfaces)-1], nil
		case descEndpoint:
			if n < 7 {
				return Configuration{}, fmt.Errorf("probe: endpoint descriptor at offset %d: bLength %d", off, n)
			}
			if cur == nil {
				return Configuration{}, fmt.Errorf("probe: endpoint descriptor at offset %d before any interface", off)
			}
			cur.Endpoints = append(cur.Endpoints, Endpoint{Address: d[2], Attributes: d[3],
				MaxPacketSize: binary.LittleEndian.Uint16(d[4:]), Interval: d[6]})
			ep = &cur.Endpoints[len(cur.Endpoints)-1]
		case descDevice, descConfiguration:
			return Configuration{}, fmt.Errorf("probe: descriptor type 0x%02X at offset %d inside a configuration", d[1], off)
		default:
			switch {
			case ep != nil:
				ep.Extra = append(ep.Extra, d...)
			case cur != nil:
				cur.Extra = append(cur.Extra, d...)
			}
		}
		off += n
	}
	return c, nil
}

func first(b []byte) int {
	if len(b) < 1 {
		return 0
	}
	return int(b[0])
}

func second(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	return int(b[1])
}
