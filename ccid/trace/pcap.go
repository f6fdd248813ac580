package trace

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// LinkTypeUSBLinuxMMapped is LINKTYPE_USB_LINUX_MMAPPED: each packet starts with the 64-byte struct
// usbmon_packet of Linux's binary usbmon interface.
const LinkTypeUSBLinuxMMapped = 220

// USB addresses the pcap shows for the gadget: bus 1, device 1, the endpoints of the CCID function.
const (
	pcapBus       = 1
	pcapDevice    = 1
	epBulkIn      = 0x81
	epBulkOut     = 0x02
	epInterruptIn = 0x83
)

// PcapWriter writes CCID frames as a pcap file that Wireshark's usbccid dissector decodes: the file starts
// with a GET_DESCRIPTOR(configuration) exchange that declares interface class 0x0B (smart card) and the three
// endpoints, then each frame is a usbmon URB submission or completion.
type PcapWriter struct {
	w  *bufio.Writer
	id uint64
}

// NewPcapWriter writes the pcap header and the descriptor exchange for desc.
func NewPcapWriter(w io.Writer, desc ccid.ClassDescriptor, at time.Time) (*PcapWriter, error) {
	p := &PcapWriter{w: bufio.NewWriter(w)}
	hdr := make([]byte, 24)
	le := binary.LittleEndian
	le.PutUint32(hdr[0:], 0xa1b2c3d4)
	le.PutUint16(hdr[4:], 2)
	le.PutUint16(hdr[6:], 4)
	le.PutUint32(hdr[16:], 1<<18) // snaplen
	le.PutUint32(hdr[20:], LinkTypeUSBLinuxMMapped)
	if _, err := p.w.Write(hdr); err != nil {
		return nil, fmt.Errorf("trace: pcap: %w", err)
	}
	cls, err := desc.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("trace: pcap: %w", err)
	}
	cfg := []byte{0x09, 0x02, 0, 0, 0x01, 0x01, 0x00, 0x80, 0x32}
	cfg = append(cfg, 0x09, 0x04, 0x00, 0x00, 0x03, 0x0B, 0x00, 0x00, 0x00)
	cfg = append(cfg, cls...)
	cfg = append(cfg, 0x07, 0x05, epBulkIn, 0x02, 0x40, 0x00, 0x00)
	cfg = append(cfg, 0x07, 0x05, epBulkOut, 0x02, 0x40, 0x00, 0x00)
	cfg = append(cfg, 0x07, 0x05, epInterruptIn, 0x03, 0x08, 0x00, 0x10)
	le.PutUint16(cfg[2:], uint16(len(cfg)))
	setup := [8]byte{0x80, 0x06, 0x00, 0x02, 0x00, 0x00, byte(len(cfg)), byte(len(cfg) >> 8)}
	p.id++
	if err := p.packet(at, 'S', 2, 0x80, &setup, '<', uint32(len(cfg)), nil); err != nil {
		return nil, err
	}
	if err := p.packet(at, 'C', 2, 0x80, nil, 0, uint32(len(cfg)), cfg); err != nil {
		return nil, err
	}
	return p, nil
}

// BulkOut writes a host frame (submission with data, then completion); masked bytes are written as 00.
func (p *PcapWriter) BulkOut(at time.Time, frame []byte, mask []bool) error {
	data := frame
	if mask != nil {
		data = append([]byte(nil), frame...)
		for i, m := range mask {
			if m {
				data[i] = 0
			}
		}
	}
	p.id++
	if err := p.packet(at, 'S', 3, epBulkOut, nil, 0, uint32(len(data)), data); err != nil {
		return err
	}
	return p.packet(at, 'C', 3, epBulkOut, nil, '>', uint32(len(data)), nil)
}

// BulkIn writes a device frame as a completed bulk-IN URB.
func (p *PcapWriter) BulkIn(at time.Time, frame []byte) error {
	p.id++
	return p.packet(at, 'C', 3, epBulkIn, nil, 0, uint32(len(frame)), frame)
}

// Interrupt writes an interrupt-IN message as a completed URB.
func (p *PcapWriter) Interrupt(at time.Time, b []byte) error {
	p.id++
	return p.packet(at, 'C', 1, epInterruptIn, nil, 0, uint32(len(b)), b)
}

// Flush writes buffered packets out.
func (p *PcapWriter) Flush() error { return p.w.Flush() }

// packet writes one pcap record: the record header, struct usbmon_packet (64 bytes, little endian) and data.
func (p *PcapWriter) packet(at time.Time, event byte, xfer byte, ep byte, setup *[8]byte, dataFlag byte, urbLen uint32, data []byte) error {
	le := binary.LittleEndian
	rec := make([]byte, 16+64, 16+64+len(data))
	sec, usec := at.Unix(), at.Nanosecond()/1000
	le.PutUint32(rec[0:], uint32(sec))
	le.PutUint32(rec[4:], uint32(usec))
	le.PutUint32(rec[8:], uint32(64+len(data)))
	le.PutUint32(rec[12:], uint32(64+len(data)))
	h := rec[16:]
	le.PutUint64(h[0:], p.id)
	h[8], h[9], h[10], h[11] = event, xfer, ep, pcapDevice
	le.PutUint16(h[12:], pcapBus)
	h[14] = '-'
	if setup != nil {
		h[14] = 0
		copy(h[40:48], setup[:])
	}
	h[15] = dataFlag
	if len(data) > 0 {
		h[15] = 0 // usbmon: data present
	}
	le.PutUint64(h[16:], uint64(sec))
	le.PutUint32(h[24:], uint32(usec))
	if event == 'S' {
		le.PutUint32(h[28:], uint32(0xFFFFFF8D)) // -EINPROGRESS, as usbmon shows submissions
	}
	le.PutUint32(h[32:], urbLen)
	le.PutUint32(h[36:], uint32(len(data)))
	rec = append(rec, data...)
	if _, err := p.w.Write(rec); err != nil {
		return fmt.Errorf("trace: pcap: %w", err)
	}
	return nil
}
