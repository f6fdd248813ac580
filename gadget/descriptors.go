// Package gadget serves a CCID reader over Linux FunctionFS: it writes the USB descriptors to ep0, runs the
// ep0 event loop (bind, enable, disable, class requests) and moves whole CCID messages between the host and a
// ccid.Reader over the bulk and interrupt endpoint files.
//
// It knows nothing of OpenPGP and does not create the gadget in configfs (package configfs does); it needs a
// mounted FunctionFS instance. The I/O sits behind small interfaces, so the state machine, the bulk framing and
// the ZLP rules are tested here without a kernel.
package gadget

import (
	"encoding/binary"
	"fmt"
)

// FunctionFS descriptor and string blob magics (linux/usb/functionfs.h).
const (
	descriptorsMagicV2 = 3 // FUNCTIONFS_DESCRIPTORS_MAGIC_V2
	stringsMagic       = 2 // FUNCTIONFS_STRINGS_MAGIC
	flagHasFSDesc      = 1 // FUNCTIONFS_HAS_FS_DESC
	flagHasHSDesc      = 2 // FUNCTIONFS_HAS_HS_DESC
)

// USB 2.0 §9.4 descriptor types and the CCID class codes (CCID 1.1 §4, §5.1).
const (
	descTypeInterface = 0x04
	descTypeEndpoint  = 0x05
	ccidDescLength    = 54 // CCID §5.1 Table 5.1-1: bLength 0x36
	classSmartCard    = 0x0B
	xferBulk          = 0x02
	xferInterrupt     = 0x03
)

// Endpoint addresses as written in the descriptors (function-local; the kernel remaps them). FunctionFS names
// the endpoint files ep1, ep2, ep3 in this order.
const (
	addrBulkIn  = 0x81
	addrBulkOut = 0x02
	addrIntrIn  = 0x83

	fileBulkIn  = "ep1"
	fileBulkOut = "ep2"
	fileIntrIn  = "ep3"
)

// Packet sizes per speed (USB 2.0 §5.8.3, §5.7.3).
const (
	bulkPacketFS = 64
	bulkPacketHS = 512
	intrPacket   = 8 // NotifySlotChange is 2 bytes, HardwareError 4
	// intrIntervalFS is 16 ms in frames; intrIntervalHS is 2^(8-1) microframes = 16 ms.
	intrIntervalFS = 16
	intrIntervalHS = 8
)

// Descriptors returns the FunctionFS descriptors (v2 format, magic 3) for one CCID interface: full-speed and
// high-speed sets, each an interface (class 0x0B, subclass 0, protocol 0, three endpoints, iInterface 1), the
// 54-byte CCID class descriptor ccidDesc right after it, then bulk-IN, bulk-OUT and interrupt-IN.
func Descriptors(ccidDesc []byte) ([]byte, error) {
	if len(ccidDesc) != ccidDescLength || ccidDesc[0] != ccidDescLength || ccidDesc[1] != 0x21 {
		return nil, fmt.Errorf("gadget: CCID class descriptor must be 54 bytes starting 36 21, got %d bytes % x", len(ccidDesc), head(ccidDesc, 2))
	}
	speed := func(bulk uint16, interval byte) []byte {
		var b []byte
		b = append(b, 9, descTypeInterface, 0, 0, 3, classSmartCard, 0, 0, 1)
		b = append(b, ccidDesc...)
		b = append(b, endpointDesc(addrBulkIn, xferBulk, bulk, 0)...)
		b = append(b, endpointDesc(addrBulkOut, xferBulk, bulk, 0)...)
		b = append(b, endpointDesc(addrIntrIn, xferInterrupt, intrPacket, interval)...)
		return b
	}
	fs := speed(bulkPacketFS, intrIntervalFS)
	hs := speed(bulkPacketHS, intrIntervalHS)
	const count = 5 // descriptors per speed
	out := make([]byte, 20, 20+len(fs)+len(hs))
	binary.LittleEndian.PutUint32(out[0:], descriptorsMagicV2)
	binary.LittleEndian.PutUint32(out[4:], uint32(cap(out)))
	binary.LittleEndian.PutUint32(out[8:], flagHasFSDesc|flagHasHSDesc)
	binary.LittleEndian.PutUint32(out[12:], count)
	binary.LittleEndian.PutUint32(out[16:], count)
	out = append(out, fs...)
	return append(out, hs...), nil
}

func endpointDesc(addr, attr byte, maxPacket uint16, interval byte) []byte {
	return []byte{7, descTypeEndpoint, addr, attr, byte(maxPacket), byte(maxPacket >> 8), interval}
}

func head(b []byte, n int) []byte {
	if len(b) < n {
		return b
	}
	return b[:n]
}

// Strings returns the FunctionFS strings blob (magic 2): one string, the interface name (iInterface 1), in
// US English (0x0409). pcscd appends it to the reader's name in brackets.
func Strings(iface string) []byte {
	n := 16 + 2 + len(iface) + 1
	b := make([]byte, 16, n)
	binary.LittleEndian.PutUint32(b[0:], stringsMagic)
	binary.LittleEndian.PutUint32(b[4:], uint32(n))
	binary.LittleEndian.PutUint32(b[8:], 1)  // str_count
	binary.LittleEndian.PutUint32(b[12:], 1) // lang_count
	b = append(b, 0x09, 0x04)
	b = append(b, iface...)
	return append(b, 0)
}
