package probe

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/ccidtest"
)

// usbReader is a Device over a real ccid.Reader served through an in-memory transport. It behaves like the USB
// side of the gadget: device frames are split into wMaxPacketSize packets with a ZLP after a frame that fills
// its last packet, and BulkIn has libusb's semantics (a transfer ends on a short packet or a full buffer). Its
// fault knobs make one behaviour wrong at a time.
type usbReader struct {
	t      testing.TB
	info   Info
	reader *ccid.Reader
	tr     *ccidtest.Transport
	card   *ccidtest.Card
	mps    int

	mu          sync.Mutex
	noZLP       bool                           // never send a ZLP
	mutate      func(f []byte) []byte          // changes each device frame (nil: none)
	refuseSet   bool                           // SET_FEATURE(HALT) stalls
	ignoreSet   bool                           // SET_FEATURE(HALT) succeeds but halts nothing
	ctrl        func(req byte) ([]byte, error) // overrides class requests GET_CLOCK/GET_DATA_RATES
	refuseAbort bool                           // the ABORT class request stalls
	haltSticks  bool                           // ClearHalt leaves the endpoint halted
	dropNotify  bool                           // interrupt-IN never delivers
	lastCmd     ccid.MessageType               // type of the last host frame
	onCommand   func()                         // run once when the next GetSlotStatus arrives
	packets     [][]byte
	halted      map[byte]bool
	outBuf      []byte
}

type interceptor struct{ u *usbReader }

func (i interceptor) Command(_ context.Context, frame []byte) []byte {
	i.u.mu.Lock()
	i.u.lastCmd = ccid.MessageType(frame[0])
	act := i.u.onCommand
	if act != nil && i.u.lastCmd == ccid.MsgGetSlotStatus {
		i.u.onCommand = nil
	} else {
		act = nil
	}
	i.u.mu.Unlock()
	if act != nil {
		act() // like a fault plan's remove/insert: the slot changes when a command arrives
	}
	return frame
}

func (i interceptor) Answer(_ context.Context, frame []byte, write func([]byte) error) error {
	i.u.mu.Lock()
	if f := i.u.mutate; f != nil {
		frame = f(bytes.Clone(frame)) // under mu: f may read the fake's fields
	}
	i.u.mu.Unlock()
	return write(frame)
}

func newUSBReader(t testing.TB, desc ccid.ClassDescriptor, clock ccid.Clock, te time.Duration) *usbReader {
	t.Helper()
	c := ccidtest.NewCard(nil)
	c.Respond(openPGPCard)
	u := newUSBReaderCard(t, desc, clock, te, c)
	u.card = c
	return u
}

// newUSBReaderCard is newUSBReader with card c in slot 0.
func newUSBReaderCard(t testing.TB, desc ccid.ClassDescriptor, clock ccid.Clock, te time.Duration, c ccid.Card) *usbReader {
	t.Helper()
	u := &usbReader{t: t, tr: ccidtest.NewTransport(), mps: 64, halted: map[byte]bool{}}
	cfg := ccid.DefaultConfig()
	cfg.Descriptor = desc
	cfg.Clock = clock
	if te > 0 {
		cfg.TimeExtensionInterval = te
	}
	cfg.Interceptor = interceptor{u}
	r, err := ccid.NewReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u.reader = r
	raw, err := desc.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	u.info = Info{VendorID: 0x1d6b, ProductID: 0x0104, Serial: "test", Interface: Interface{
		NumEndpoints: 3, Class: 0x0B, Extra: raw, Endpoints: []Endpoint{
			{Address: 0x81, Attributes: 2, MaxPacketSize: 64},
			{Address: 0x02, Attributes: 2, MaxPacketSize: 64},
			{Address: 0x83, Attributes: 3, MaxPacketSize: 8, Interval: 16},
		}}}
	if err := r.Insert(0, c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, u.tr) }()
	t.Cleanup(func() {
		cancel()
		u.tr.Close()
		<-done
	})
	return u
}

// openPGPCard answers like an OpenPGP card as far as the checks need: SELECT, GET DATA C0 (GET CHALLENGE up to
// 2048 bytes), GET CHALLENGE; 6D00 for anything else.
func openPGPCard(capdu []byte) []byte {
	ok := []byte{0x90, 0x00}
	switch {
	case bytes.Equal(capdu, openPGPSelect):
		return ok
	case bytes.Equal(capdu, []byte{0x00, 0xCA, 0x00, 0x4F, 0x00}):
		return []byte{0xD2, 0x76, 0x00, 0x01, 0x24, 0x01, 0x03, 0x04, 0xFF, 0xFE, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x90, 0x00}
	case bytes.Equal(capdu, []byte{0x00, 0xCA, 0x00, 0xC0, 0x00}):
		return []byte{0x7F, 0x00, 0x08, 0x00, 0x08, 0x00, 0x08, 0x00, 0x01, 0x01, 0x90, 0x00}
	case len(capdu) >= 5 && capdu[1] == 0x84:
		le := int(capdu[4])
		if len(capdu) == 7 {
			le = int(binary.BigEndian.Uint16(capdu[5:]))
		}
		r := make([]byte, le+2)
		for i := range le {
			r[i] = byte(i * 7)
		}
		r[le], r[le+1] = 0x90, 0x00
		return r
	}
	return []byte{0x6D, 0x00}
}

func (u *usbReader) Info() Info { return u.info }

func (u *usbReader) set(f func(u *usbReader)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f(u)
}

func (u *usbReader) BulkOut(ctx context.Context, p []byte) error {
	u.mu.Lock()
	if u.halted[0x02] {
		u.mu.Unlock()
		return fmt.Errorf("fake bulk-OUT: %w", ErrStall)
	}
	u.outBuf = append(u.outBuf, p...)
	var frames [][]byte
	for {
		n, err := ccid.FrameLength(u.outBuf)
		if err != nil || len(u.outBuf) < n {
			break
		}
		frames = append(frames, bytes.Clone(u.outBuf[:n]))
		u.outBuf = u.outBuf[n:]
	}
	u.mu.Unlock()
	for _, f := range frames {
		if err := u.tr.Send(ctx, f); err != nil {
			return fmt.Errorf("fake bulk-OUT: %w", ErrTimeout)
		}
	}
	return nil
}

func (u *usbReader) BulkIn(ctx context.Context, p []byte) (int, error) {
	n := 0
	for {
		u.mu.Lock()
		if u.halted[0x81] {
			u.mu.Unlock()
			return n, fmt.Errorf("fake bulk-IN: %w", ErrStall)
		}
		if len(u.packets) == 0 {
			u.mu.Unlock()
			f, err := u.tr.Recv(ctx)
			if err != nil {
				return n, fmt.Errorf("fake bulk-IN: %w", ErrTimeout)
			}
			u.mu.Lock()
			for off := 0; off < len(f); off += u.mps {
				u.packets = append(u.packets, f[off:min(off+u.mps, len(f))])
			}
			if len(f)%u.mps == 0 && !u.noZLP {
				u.packets = append(u.packets, []byte{})
			}
		}
		pkt := u.packets[0]
		if len(pkt) > len(p)-n {
			u.mu.Unlock()
			return n, fmt.Errorf("fake bulk-IN: %w", ErrOverflow)
		}
		u.packets = u.packets[1:]
		u.mu.Unlock()
		n += copy(p[n:], pkt)
		if len(pkt) < u.mps || n == len(p) {
			return n, nil
		}
	}
}

func (u *usbReader) InterruptIn(ctx context.Context, p []byte) (int, error) {
	u.mu.Lock()
	drop := u.dropNotify
	u.mu.Unlock()
	if drop {
		<-ctx.Done()
		return 0, fmt.Errorf("fake interrupt-IN: %w", ErrTimeout)
	}
	select {
	case m := <-u.reader.Notifications():
		return copy(p, m), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("fake interrupt-IN: %w", ErrTimeout)
	}
}

func (u *usbReader) Control(_ context.Context, rt, req byte, value, index uint16, data []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case rt == 0x21 && req == 0x01 && !u.refuseAbort:
		u.reader.Abort(byte(value), byte(value>>8))
		return 0, nil
	case rt == 0xA1 && (req == 0x02 || req == 0x03):
		if u.ctrl != nil {
			b, err := u.ctrl(req)
			return copy(data, b), err
		}
		d := u.reader.Descriptor()
		vals := d.ClockFrequencies
		if req == 0x03 {
			vals = d.DataRates
		}
		if len(vals) == 0 {
			return 0, fmt.Errorf("fake control: %w", ErrStall)
		}
		var b []byte
		for _, v := range vals {
			b = binary.LittleEndian.AppendUint32(b, v)
		}
		return copy(data, b), nil
	case rt == 0x02 && req == 0x03 && !u.refuseSet:
		if !u.ignoreSet {
			u.halted[byte(index)] = true
		}
		return 0, nil
	}
	return 0, fmt.Errorf("fake control 0x%02X/0x%02X: %w", rt, req, ErrStall)
}

func (u *usbReader) ClearHalt(_ context.Context, ep byte) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.haltSticks {
		delete(u.halted, ep)
	} else {
		u.halted[ep] = true
	}
	return nil
}
