package ccid_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/ccidtest"
)

// FuzzParseMessage feeds arbitrary bytes to every decoder of host or device bytes: it must never panic, and
// whatever ParseMessage accepts must encode back to the same bytes.
func FuzzParseMessage(f *testing.F) {
	for _, s := range append(append(append([]string{}, libccidOpen...), libccidAnswers...), gnupgOpen...) {
		f.Add(unhex(f, s))
	}
	f.Add(unhex(f, "6F 0C000000 00 1B 00 00 00 00 A4 04 0C 07 A0 00 00 02 47 10 01")) // pr533-desktop.log
	f.Add(unhex(f, "80 02000000 00 1B 01 00 00 6F 01"))                               // pr533-embedded.log
	f.Add(unhex(f, "6F FFFFFFFF 00 01 00 00 00"))
	f.Add(unhex(f, strings0(defaultDescriptorWire)))
	f.Add([]byte{0x50, 0x03})
	f.Add([]byte{0x51, 0x00, 0x07, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, lerr := ccid.FrameLength(b)
		m, err := ccid.ParseMessage(b)
		if err == nil {
			if lerr != nil || n != len(b) {
				t.Fatalf("FrameLength = %d, %v for a valid %d-byte message", n, lerr, len(b))
			}
			out, err := m.MarshalBinary()
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("re-encoding gave % X, %v", out, err)
			}
			_ = m.Check()
			_ = m.String()
			_, _, _, _ = m.LevelParameter(), m.ProtocolNum(), m.ClockFrequency(), m.DataRate()
		} else {
			var fe *ccid.FrameError
			if !errors.Is(err, ccid.ErrShortFrame) && !errors.As(err, &fe) {
				t.Fatalf("untyped error %v", err)
			}
		}
		_ = ccid.T1ParametersFromATR(b)
		_, _ = ccid.ParseNotifySlotChange(b, 1+len(b)%16)
		_, _ = ccid.ParseHardwareError(b)
		var d ccid.ClassDescriptor
		if d.UnmarshalBinary(b) == nil {
			_ = d.String()
		}
	})
}

func strings0(s string) string { return string(bytes.Join(bytes.Fields([]byte(s)), nil)) }

// Fuzz input for the reader: a sequence of records. Kind byte k:
//
//	k%8 == 0: control ABORT (slot = next&3, seq = the byte after)
//	k%8 == 1: toggle the card in slot 0 (Remove or Insert)
//	k%8 == 2: release a blocked card operation / toggle blocking
//	otherwise: a frame of length next | next<<8 (mod 4200), truncated to what is left
func fuzzRecord(frames ...string) []byte {
	var out []byte
	for _, s := range frames {
		b := unhexNoT(s)
		out = append(out, 3, byte(len(b)), byte(len(b)>>8))
		out = append(out, b...)
	}
	return out
}

func unhexNoT(s string) []byte {
	var out []byte
	var hi, n int
	for _, c := range s {
		var v int
		switch {
		case c >= '0' && c <= '9':
			v = int(c - '0')
		case c >= 'A' && c <= 'F':
			v = int(c-'A') + 10
		case c >= 'a' && c <= 'f':
			v = int(c-'a') + 10
		default:
			continue
		}
		if n%2 == 0 {
			hi = v
		} else {
			out = append(out, byte(hi<<4|v))
		}
		n++
	}
	return out
}

// FuzzReader feeds a reader arbitrary frame sequences mixed with ABORT requests, card removal and insertion,
// and a card that may block. The reader must not panic, must answer only with well-formed RDR_to_PC messages
// no longer than dwMaxCCIDMessageLength, and Serve must return promptly once the transport closes.
func FuzzReader(f *testing.F) {
	f.Add(fuzzRecord(libccidOpen...))
	f.Add(fuzzRecord(gnupgOpen...))
	chained := []string{"62 00000000 00 01 00 00 00",
		"6F 04000000 00 02 00 01 00 00 A4 04 00", "6F 02000000 00 03 00 03 00 06 D2", "6F 05000000 00 04 00 02 00 76 00 01 24 01",
		"6F 04000000 00 05 00 00 00 EE 00 00 00", "6F 00000000 00 06 00 10 00", "6F 00000000 00 07 00 10 00",
		"6F 00000000 00 08 00 10 00"}
	f.Add(fuzzRecord(chained...))
	abort := append(fuzzRecord("62 00000000 00 01 00 00 00"), 2) // block the card
	abort = append(abort, fuzzRecord("6F 04000000 00 02 00 00 00 00 A4 04 00")...)
	abort = append(abort, 0, 0, 3)
	abort = append(abort, fuzzRecord("72 00000000 00 03 00 00 00", "65 00000000 00 04 00 00 00")...)
	f.Add(abort)
	removal := append(fuzzRecord("62 00000000 00 01 00 00 00"), 2)
	removal = append(removal, fuzzRecord("6F 04000000 00 02 00 00 00 00 A4 04 00")...)
	removal = append(removal, 1, 1)
	removal = append(removal, fuzzRecord("62 00000000 00 03 00 00 00")...)
	f.Add(removal)
	f.Fuzz(func(t *testing.T, in []byte) {
		// ctx bounds the test; Serve runs under serveCtx, which only the test ends, so a hang that ctx's
		// timeout would resolve still fails.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		serveCtx, stopServe := context.WithCancel(context.Background())
		defer stopServe()
		stacks := func() string { buf := make([]byte, 1<<20); return string(buf[:runtime.Stack(buf, true)]) }
		watchdog := time.AfterFunc(15*time.Second, func() { panic("fuzz input hung:\n" + stacks()) })
		defer watchdog.Stop()
		cfg := ccid.DefaultConfig()
		cfg.Descriptor.MaxSlotIndex = 1
		cfg.TimeExtensionInterval = time.Millisecond
		r, err := ccid.NewReader(cfg)
		if err != nil {
			t.Fatal(err)
		}
		card := ccidtest.NewCard(nil)
		card.Respond(func(c []byte) []byte {
			if len(c) > 0 && c[0] == 0xEE {
				return pattern(5000) // a chained response
			}
			return append(append([]byte(nil), c...), 0x90, 0x00)
		})
		present := true
		if err := r.Insert(0, card); err != nil {
			t.Fatal(err)
		}
		tr := ccidtest.NewTransport()
		done := make(chan error, 1)
		go func() { done <- r.Serve(serveCtx, tr) }()
		drainCtx, stopDrain := context.WithCancel(serveCtx)
		drained := make(chan error, 1)
		go func() {
			for {
				fr, err := tr.Recv(drainCtx)
				if err != nil {
					drained <- nil
					return
				}
				m, err := ccid.ParseMessage(fr)
				switch {
				case err != nil:
					drained <- err
					return
				case len(fr) > int(cfg.Descriptor.MaxCCIDMessageLength):
					drained <- errors.New("answer longer than dwMaxCCIDMessageLength")
					return
				case m.Type < ccid.MsgDataBlock || m.Type > ccid.MsgDataRateAndClockFrequency:
					drained <- errors.New("answer of type " + m.Type.String())
					return
				}
			}
		}()
		// Release blocked card operations in the background so nothing waits forever.
		releaser := make(chan struct{})
		go func() {
			defer close(releaser)
			for {
				select {
				case <-card.Started():
					_ = card.Release(drainCtx, nil)
				case <-drainCtx.Done():
					return
				}
			}
		}()
		blocked := false
		for len(in) > 0 {
			k := in[0]
			in = in[1:]
			arg := func() byte {
				if len(in) == 0 {
					return 0
				}
				b := in[0]
				in = in[1:]
				return b
			}
			switch k % 8 {
			case 0:
				r.Abort(arg()&3, arg())
			case 1:
				if present {
					_ = r.Remove(0)
				} else {
					_ = r.Insert(0, card)
				}
				present = !present
			case 2:
				if blocked {
					card.Unblock()
				} else {
					card.Block()
				}
				blocked = !blocked
			default:
				n := (int(arg()) | int(arg())<<8) % 4200
				if n > len(in) {
					n = len(in)
				}
				frame := append([]byte(nil), in[:n]...)
				in = in[n:]
				if err := tr.Send(ctx, frame); err != nil {
					t.Fatalf("reader stopped reading: %v\n%s", err, stacks())
				}
			}
		}
		tr.Close()
		select {
		case <-done:
		case <-ctx.Done():
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("Serve did not return after the transport closed\n%s", buf[:n])
		}
		stopDrain()
		<-releaser
		if err := <-drained; err != nil {
			t.Fatal(err)
		}
	})
}
