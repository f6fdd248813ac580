package trace_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/ccidtest"
	"github.com/ccidgadget/ccidgadget/ccid/trace"
)

var (
	verify    = []byte{0x00, 0x20, 0x00, 0x81, 0x06, '1', '2', '3', '4', '5', '6'}
	getData   = []byte{0x00, 0xCA, 0x00, 0x6E, 0x00}
	verifyBad = []byte{0x00, 0x20, 0x00, 0x81, 0x06, '6', '5', '4', '3', '2', '1'}
)

// session runs a reader with rec in front of a test card and plays a host session; it returns the frames the
// host read.
func session(t *testing.T, rec *trace.Recorder, clk *fakeClock) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	card := ccidtest.NewCard(nil)
	card.Answer(verify, []byte{0x90, 0x00})
	card.Answer(getData, []byte{0x6E, 0x01, 0x00, 0x90, 0x00})
	cfg := ccid.DefaultConfig()
	cfg.Interceptor = rec
	rd, err := ccid.NewReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tap := rec.Tap(rd.Notifications())
	if err := rd.Insert(0, card); err != nil {
		t.Fatal(err)
	}
	<-tap
	tp := ccidtest.NewTransport()
	done := make(chan error, 1)
	go func() { done <- rd.Serve(ctx, tp) }()
	defer func() { tp.Close(); <-done }()
	var got [][]byte
	for i, m := range []ccid.Message{
		ccid.NewIccPowerOn(0, 1, 0),
		ccid.NewXfrBlock(0, 2, 0, 0, verify),
		ccid.NewXfrBlock(0, 3, 0, 0, getData),
		ccid.NewGetSlotStatus(0, 4),
	} {
		clk.Sleep(ctx, time.Duration(i+1)*10*time.Millisecond) // host think time
		if err := tp.SendMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		f, err := tp.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f)
	}
	if err := rd.Remove(0); err != nil {
		t.Fatal(err)
	}
	<-tap
	return got
}

func TestRecordRoundTrip(t *testing.T) {
	var log bytes.Buffer
	clk := newFakeClock()
	rec := trace.NewRecorder(&log, trace.RecordOptions{Clock: clk})
	answers := session(t, rec, clk)
	if err := rec.Flush(); err != nil {
		t.Fatal(err)
	}
	text := log.String()
	if strings.Contains(text, "31 32 33 34 35 36") || !strings.Contains(text, "00 20 00 81 06 XX XX XX XX XX XX") {
		t.Fatalf("PIN not masked:\n%s", text)
	}
	if !strings.Contains(text, "NotifySlotChange: 50 03") || !strings.Contains(text, "NotifySlotChange: 50 02") {
		t.Fatalf("notifications missing:\n%s", text)
	}
	tr, err := trace.Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Exchanges) != 4 || len(tr.Events) != 2 {
		t.Fatalf("%d exchanges %d events:\n%s", len(tr.Exchanges), len(tr.Events), text)
	}
	for i, e := range tr.Exchanges {
		a, ok := e.Answer()
		if !ok || !bytes.Equal(a.Bytes, answers[i]) {
			t.Errorf("exchange %d: answer % X, host read % X", i, a.Bytes, answers[i])
		}
	}
	if d := tr.Exchanges[2].Command.At - tr.Exchanges[1].Command.At; d != 30*time.Millisecond {
		t.Errorf("time between commands %v, want 30ms", d)
	}

	// Replay the recording: the same answers, whatever PIN the host sends (it was masked).
	b := newBench(t, tr, trace.Options{})
	if atr := b.powerOn(1); !bytes.Equal(atr, ccidtest.OpenPGPATR) {
		t.Fatalf("ATR % X", atr)
	}
	if got := b.exchange(ccid.NewXfrBlock(0, 2, 0, 0, verifyBad)); !bytes.Equal(got, answers[1]) {
		t.Errorf("VERIFY % X, want % X", got, answers[1])
	}
	if got := b.exchange(ccid.NewXfrBlock(0, 3, 0, 0, getData)); !bytes.Equal(got, answers[2]) {
		t.Errorf("GET DATA % X, want % X", got, answers[2])
	}

	var secret bytes.Buffer
	rec = trace.NewRecorder(&secret, trace.RecordOptions{Clock: newFakeClock(), Secrets: true})
	session(t, rec, newFakeClock())
	rec.Flush()
	if !strings.Contains(secret.String(), "00 20 00 81 06 31 32 33 34 35 36") {
		t.Errorf("--record-secrets did not keep the PIN:\n%s", secret.String())
	}
}

func TestPcapTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed (apt-get install tshark)")
	}
	path := filepath.Join(t.TempDir(), "ccid.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	pw, err := trace.NewPcapWriter(f, ccid.DefaultDescriptor(), clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	rec := trace.NewRecorder(&bytes.Buffer{}, trace.RecordOptions{Clock: clk, Pcap: pw})
	session(t, rec, clk)
	if err := rec.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command(tshark, "-V", "-r", path).CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"USB CCID", "PC_to_RDR_IccPowerOn", "PC_to_RDR_XfrBlock", "RDR_to_PC_DataBlock", "PC_to_RDR_GetSlotStatus",
		"RDR_to_PC_SlotStatus", "SMART CARD DEVICE CLASS DESCRIPTOR", "Leftover Capture Data: 5002",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("tshark output lacks %q", want)
		}
	}
	if strings.Contains(text, "31 32 33 34 35 36") || strings.Contains(text, "313233343536") {
		t.Error("PIN in the pcap")
	}
	if t.Failed() {
		t.Logf("tshark -V:\n%s", text)
	}
	// The header fields, one line per CCID frame, in order (Wireshark 4.0 decodes bulk frames and the class
	// descriptor; it does not decode the interrupt endpoint's NotifySlotChange, checked above as raw data).
	out, err = exec.Command(tshark, "-r", path, "-Y", "usbccid.bMessageType", "-T", "fields",
		"-e", "usbccid.bMessageType", "-e", "usbccid.bSeq", "-e", "usbccid.bStatus", "-e", "usbccid.bError").Output()
	if err != nil {
		t.Fatalf("tshark -T fields: %v", err)
	}
	want := "0x62\t1\t\t\n0x80\t1\t0\t0\n0x6f\t2\t\t\n0x80\t2\t0\t0\n" +
		"0x6f\t3\t\t\n0x80\t3\t0\t0\n0x65\t4\t\t\n0x81\t4\t0\t0\n"
	if got := strings.ReplaceAll(string(out), "\r", ""); got != want {
		t.Errorf("tshark fields:\n%q\nwant\n%q", got, want)
	}
}

func TestIsSecretAPDU(t *testing.T) {
	for _, tc := range []struct {
		name string
		apdu []byte
		want bool
	}{
		{"VERIFY", []byte{0x00, 0x20, 0x00, 0x81, 0x06, '1', '2', '3', '4', '5', '6'}, true},
		{"CHANGE REFERENCE DATA", []byte{0x00, 0x24, 0x00, 0x83, 0x01, 0x00}, true},
		{"RESET RETRY COUNTER", []byte{0x00, 0x2C, 0x02, 0x81, 0x01, 0x00}, true},
		{"PUT DATA resetting code", []byte{0x00, 0xDA, 0x00, 0xD3, 0x01, 0x00}, true},
		{"PUT DATA AES key", []byte{0x00, 0xDA, 0x00, 0xD5, 0x01, 0x00}, true},
		{"key import", []byte{0x10, 0xDB, 0x3F, 0xFF, 0x01, 0x00}, true},
		{"PUT DATA name", []byte{0x00, 0xDA, 0x00, 0x5B, 0x01, 0x00}, false},
		{"PUT DATA certificate", []byte{0x00, 0xDA, 0x7F, 0x21, 0x01, 0x00}, false},
		{"GET DATA", []byte{0x00, 0xCA, 0x00, 0x6E, 0x00}, false},
		{"too short", []byte{0x00, 0x20, 0x00, 0x81}, false},
	} {
		if got := trace.IsSecretAPDU(tc.apdu); got != tc.want {
			t.Errorf("%s: IsSecretAPDU(% X) = %v, want %v", tc.name, tc.apdu, got, tc.want)
		}
	}
}

// TestRecordMasksKeys: a private key imported through PUT DATA DB in a CCID chain (first frame and
// continuation) and a resetting code never reach the recording.
func TestRecordMasksKeys(t *testing.T) {
	key := bytes.Repeat([]byte{0xA5}, 40)
	begin := append([]byte{0x00, 0xDB, 0x3F, 0xFF, 0x00, 0x00, 0x50}, key...)
	var buf bytes.Buffer
	rec := trace.NewRecorder(&buf, trace.RecordOptions{Clock: newFakeClock()})
	ctx := context.Background()
	for _, m := range []ccid.Message{
		ccid.NewXfrBlock(0, 1, 0, ccid.ChainBegin, begin),
		ccid.NewXfrBlock(0, 2, 0, ccid.ChainEnd, key),
		ccid.NewXfrBlock(0, 3, 0, 0, []byte{0x00, 0xDA, 0x00, 0xD3, 0x04, 0xA5, 0xA5, 0xA5, 0xA5}),
		ccid.NewXfrBlock(0, 4, 0, 0, []byte{0x00, 0xDA, 0x00, 0x5B, 0x02, 0xA5, 0xA5}),
	} {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		rec.Command(ctx, b)
	}
	rec.Flush()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	for i, l := range lines[:3] {
		if strings.Contains(l, "A5") {
			t.Errorf("line %d keeps secret bytes: %s", i, l)
		}
	}
	if !strings.Contains(lines[3], "A5 A5") {
		t.Errorf("the cardholder name was masked: %s", lines[3])
	}
}
