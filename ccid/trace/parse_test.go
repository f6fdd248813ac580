package trace_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/trace"
)

func TestParseSharedTraces(t *testing.T) {
	emb := loadTrace(t, "pr533-embedded.log")
	if len(emb.Exchanges) != 2 || len(emb.Events) != 1 || !emb.Timed {
		t.Fatalf("embedded: %d exchanges, %d events", len(emb.Exchanges), len(emb.Events))
	}
	sel := emb.Exchanges[0]
	if got := sel.Latency(); got != 2712060*time.Microsecond {
		t.Errorf("SELECT latency %v", got)
	}
	if !bytes.Equal(sel.APDU, selectEMRTD) || !bytes.Equal(sel.SW, []byte{0x6F, 0x01}) {
		t.Errorf("APDU % X SW % X", sel.APDU, sel.SW)
	}
	if f := sel.Fault(); !strings.Contains(f, "bStatus 01") || !strings.Contains(f, "SW 6F01") {
		t.Errorf("fault %q", f)
	}
	if ev := emb.Events[0]; !bytes.Equal(ev.Bytes, []byte{0x50, 0x02}) || ev.After != 0 {
		t.Errorf("event %+v", ev)
	}
	if st := emb.Exchanges[1]; st.Latency() != 1206*time.Microsecond || st.Fault() != "" {
		t.Errorf("GetSlotStatus latency %v fault %q", st.Latency(), st.Fault())
	}
	desk := loadTrace(t, "pr533-desktop.log")
	if len(desk.Exchanges) != 2 || !bytes.Equal(desk.ATR, []byte{0x3B, 0x80, 0x80, 0x01, 0x01}) {
		t.Fatalf("desktop: %d exchanges ATR % X", len(desk.Exchanges), desk.ATR)
	}
	for _, tr := range []*trace.Trace{emb, desk} {
		if tr.VendorID != 0x1FC9 || tr.ProductID != 0x010B {
			t.Errorf("reader %04X:%04X, want the PR533's 1FC9:010B", tr.VendorID, tr.ProductID)
		}
	}
	if desk.Exchanges[0].Latency() != 78174*time.Microsecond || desk.Exchanges[1].Latency() != 17077*time.Microsecond {
		t.Errorf("latencies %v %v", desk.Exchanges[0].Latency(), desk.Exchanges[1].Latency())
	}
}

// Every line variant of research note faults-and-replay §3.1 gives the same exchange.
func TestParseVariants(t *testing.T) {
	cmd := []byte{0x65, 0, 0, 0, 0, 0, 0x03, 0, 0, 0}
	ans := []byte{0x81, 0, 0, 0, 0, 0, 0x03, 0x01, 0, 0}
	for _, c := range []struct{ name, log string }{
		{"plain libccid 1.7", "00000066 -> 000000 65 00 00 00 00 00 03 00 00 00 \n00001206 <- 000000 81 00 00 00 00 00 03 01 00 00 \n"},
		{"plain libccid 1.8", "00000066 -> lun: 0, 65 00 00 00 00 00 03 00 00 00 \n00001206 <- lun: 0, 81 00 00 00 00 00 03 01 00 00 \n"},
		{"colour with thread", "\x1b[36m00000066\x1b[0m [1946149872] \x1b[34m-> 000000 65 00 00 00 00 00 03 00 00 00 \x1b[0m\n" +
			"\x1b[36m00001206\x1b[0m [1946149872] \x1b[34m<- 000000 81 00 00 00 00 00 03 01 00 00 \x1b[0m\n"},
		{"journald", "Jan 25 03:31:50 host pcscd[1529330]: 00000066 -> lun: 0, 65 00 00 00 00 00 03 00 00 00\n" +
			"Jan 25 03:31:50 host pcscd[1529330]: 00001206 <- lun: 0, 81 00 00 00 00 00 03 01 00 00\n"},
		{"CRLF and noise", "00000010 winscard_svc.c:353:ContextThread() Received command: TRANSMIT from client 14\r\n" +
			"00000056 -> 000000 65 00 00 00 00 00 03 00 00 00 \r\n00001206 <- 000000 81 00 00 00 00 00 03 01 00 00 \r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr, err := trace.Parse(strings.NewReader(c.log))
			if err != nil {
				t.Fatal(err)
			}
			if len(tr.Exchanges) != 1 {
				t.Fatalf("%d exchanges", len(tr.Exchanges))
			}
			e := tr.Exchanges[0]
			a, ok := e.Answer()
			if !ok || !bytes.Equal(e.Command.Bytes, cmd) || !bytes.Equal(a.Bytes, ans) {
				t.Fatalf("command % X answer % X", e.Command.Bytes, a.Bytes)
			}
			if e.Command.At != 66*time.Microsecond || e.Latency() != 1206*time.Microsecond {
				t.Errorf("at %v latency %v", e.Command.At, e.Latency())
			}
		})
	}
}

// Syslog mode (pcscd without -f) logs no delta: the frames parse, with every time 0.
func TestParseSyslog(t *testing.T) {
	log := "Jan 25 03:31:50 host pcscd[1529330]: -> lun: 0, 65 00 00 00 00 00 03 00 00 00\n" +
		"Jan 25 03:31:50 host pcscd[1529330]: <- lun: 0, 81 00 00 00 00 00 03 01 00 00\n"
	tr, err := trace.Parse(strings.NewReader(log))
	if err != nil || len(tr.Exchanges) != 1 || tr.Timed || tr.Exchanges[0].Latency() != 0 {
		t.Fatalf("%+v %v", tr, err)
	}
	if _, ok := tr.Exchanges[0].Answer(); !ok {
		t.Error("no answer")
	}
}

func TestParseFaultsAndEvents(t *testing.T) {
	log := `00000010 -> lun: 0, 6F 05 00 00 00 00 10 00 00 00 00 B0 00 00 08
01000000 <- lun: 0, 80 00 00 00 00 00 10 80 02 00
01000000 <- lun: 0, 80 00 00 00 00 00 10 80 02 00
00000500 <- lun: 0, 80 0A 00 00 00 00 10 00 00 00 01 02 03 04 05 06 07 08 90 00
00000100 HardwareError: 51 00 10 01
00000100 -> lun: 0, 6F 05 00 00 00 00 11 00 00 00 00 B0 00 00 08
03000000 ccid_usb.c:1000:ReadUSB read failed (1/5): LIBUSB_ERROR_TIMEOUT
00000200 -> lun: 0, 6F 09 00 00 00 00 12 00 00 00 00 20 00 81 XX XX XX XX XX
00000300 <- lun: 0, 80 02 00 00 00 00 12 00 00 00 90 00
Nov 1 syslog line without delta
`
	tr, err := trace.Parse(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Exchanges) != 3 || len(tr.Events) != 1 {
		t.Fatalf("%d exchanges %d events", len(tr.Exchanges), len(tr.Events))
	}
	e0 := tr.Exchanges[0]
	if e0.Latency() != 2000500*time.Microsecond || e0.Fault() != "2 time extension(s)" {
		t.Errorf("latency %v fault %q", e0.Latency(), e0.Fault())
	}
	if tr.Events[0].After != 0 || !bytes.Equal(tr.Events[0].Bytes, []byte{0x51, 0, 0x10, 1}) {
		t.Errorf("event %+v", tr.Events[0])
	}
	if f := tr.Exchanges[1].Fault(); !strings.Contains(f, "no answer") || !strings.Contains(f, "LIBUSB_ERROR_TIMEOUT") {
		t.Errorf("fault %q", f)
	}
	m := tr.Exchanges[2].Command.Masked
	if len(m) != 19 || !m[14] || !m[18] || m[13] {
		t.Errorf("mask %v", m)
	}
	for _, bad := range []string{"00000001 -> lun: ZZ, 65\n"} {
		if _, err := trace.Parse(strings.NewReader(bad)); err != nil {
			t.Errorf("%q: %v (should be skipped as an unknown line)", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("00000066 -> 000000 6F 0C 00 00 00 00 35 00 00 00 00 A4\n02712060 <- 000000 80 02 00 00 00 00 35 01 00 00 6F 01\n00000060 NotifySlotChange: 50 02\n")
	f.Add("00001206 <- lun: 0, 81 00\nSW: 90 00\nCard ATR: 3B\n")
	f.Fuzz(func(t *testing.T, s string) {
		tr, err := trace.Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, e := range tr.Exchanges {
			_ = e.Fault()
			if e.Latency() < 0 {
				t.Fatalf("negative latency %v", e.Latency())
			}
		}
	})
}

// FuzzReplayer feeds arbitrary host frames and device frames to a replayer of the embedded trace: no panic,
// and a frame it passes on keeps at least the header.
func FuzzReplayer(f *testing.F) {
	f.Add([]byte{0x6F, 0x0C, 0, 0, 0, 0, 0x35, 0, 0, 0, 0x00, 0xA4, 0x04, 0x0C, 0x07, 0xA0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01},
		[]byte{0x80, 0x02, 0, 0, 0, 0, 0x35, 0, 0, 0, 0x90, 0x00})
	f.Add([]byte{0x65, 0, 0, 0, 0, 0, 1, 0, 0, 0}, []byte{0x81, 0, 0, 0, 0, 0, 1, 0x80, 1, 0})
	f.Add([]byte{0x6F}, []byte{})
	tr, err := trace.Parse(strings.NewReader(embeddedLog))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cmd, ans []byte) {
		rp, _ := trace.NewReplayer(tr, trace.Options{Clock: newFakeClock()})
		ctx := context.Background()
		if out := rp.Command(ctx, cmd); out != nil && len(out) != len(cmd) {
			t.Fatalf("command changed length")
		}
		_ = rp.Answer(ctx, ans, func(b []byte) error {
			if len(ans) >= ccid.HeaderSize && len(b) < 7 {
				t.Fatalf("wrote % X", b)
			}
			return nil
		})
		rp.Wait()
	})
}

const embeddedLog = `00000066 -> 000000 6F 0C 00 00 00 00 35 00 00 00 00 A4 04 0C 07 A0 00 00 02 47 10 01
02712060 <- 000000 80 02 00 00 00 00 35 01 00 00 6F 01
00000060 NotifySlotChange: 50 02
`

// Frames of two exchanges that interleave in the log pair by bSeq.
func TestParseInterleaved(t *testing.T) {
	log := `00000010 -> 000000 6F 05 00 00 00 00 01 00 00 00 00 B0 00 00 02
00000010 -> 000000 65 00 00 00 00 00 02 00 00 00
00000020 <- 000000 80 02 00 00 00 00 01 00 00 00 90 00
00000030 <- 000000 81 00 00 00 00 00 02 00 00 00
`
	tr, err := trace.Parse(strings.NewReader(log))
	if err != nil || len(tr.Exchanges) != 2 {
		t.Fatalf("%v %v", tr, err)
	}
	for i, want := range []byte{0x80, 0x81} {
		a, ok := tr.Exchanges[i].Answer()
		if !ok || a.Bytes[0] != want {
			t.Errorf("exchange %d: answer % X", i, a.Bytes)
		}
	}
	if tr.Exchanges[0].Latency() != 30*time.Microsecond || tr.Exchanges[1].Latency() != 50*time.Microsecond {
		t.Errorf("latencies %v %v", tr.Exchanges[0].Latency(), tr.Exchanges[1].Latency())
	}
}
