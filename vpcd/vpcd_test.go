package vpcd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

var testATR = []byte{0x3B, 0xDA, 0x18, 0xFF, 0x81, 0xB1, 0xFE, 0x75, 0x1F, 0x03, 0x00, 0x31, 0xF5, 0x73, 0xC0, 0x01, 0x60, 0x00, 0x90, 0x00, 0x1C}

// fakeCard answers every APDU with its own bytes reversed plus 9000, unless
// told otherwise, and counts power transitions.
type fakeCard struct {
	mu       sync.Mutex
	powerOns int
	offs     int
	powered  bool
	apdus    [][]byte
	reply    func(capdu []byte) ([]byte, error)
	onErr    error
}

func (f *fakeCard) PowerOn(context.Context) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.onErr != nil {
		return nil, f.onErr
	}
	f.powerOns++
	f.powered = true
	return testATR, nil
}

func (f *fakeCard) PowerOff() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offs++
	f.powered = false
	return nil
}

func (f *fakeCard) Transmit(_ context.Context, capdu []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apdus = append(f.apdus, append([]byte(nil), capdu...))
	if f.reply != nil {
		return f.reply(capdu)
	}
	r := make([]byte, 0, len(capdu)+2)
	for i := len(capdu) - 1; i >= 0; i-- {
		r = append(r, capdu[i])
	}
	return append(r, 0x90, 0x00), nil
}

func (f *fakeCard) counts() (ons, offs int, powered bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.powerOns, f.offs, f.powered
}

// fakeVPCD plays vpcd's side: it listens on loopback and hands each accepted
// connection to the test.
type fakeVPCD struct {
	ln    net.Listener
	conns chan net.Conn
}

func newFakeVPCD(t *testing.T) *fakeVPCD {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	v := &fakeVPCD{ln: ln, conns: make(chan net.Conn, 4)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(v.conns)
				return
			}
			v.conns <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return v
}

func (v *fakeVPCD) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-v.conns:
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("client did not connect")
		return nil
	}
}

func send(t *testing.T, c net.Conn, p ...byte) {
	t.Helper()
	if err := WriteFrame(c, p); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, c net.Conn) []byte {
	t.Helper()
	p, err := ReadFrame(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startClient runs a Client against v and returns a function that cancels it
// and waits for Run's error.
func startClient(t *testing.T, v *fakeVPCD, card Card, log *slog.Logger) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cl := &Client{Addr: v.ln.Addr().String(), Card: card, Logger: log, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- cl.Run(ctx) }()
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
			return nil
		}
	}
	t.Cleanup(func() { cancel() })
	return stop
}

func TestSessionSequence(t *testing.T) {
	v := newFakeVPCD(t)
	card := &fakeCard{}
	stop := startClient(t, v, card, nil)
	c := v.accept(t)

	// pcscd's presence poll asks for the ATR before any power on.
	send(t, c, CtrlGetATR)
	if got := recv(t, c); !bytes.Equal(got, testATR) {
		t.Fatalf("ATR = % X, want % X", got, testATR)
	}
	// IFD_POWER_UP: 01 then 04.
	send(t, c, CtrlPowerOn)
	send(t, c, CtrlGetATR)
	if got := recv(t, c); !bytes.Equal(got, testATR) {
		t.Fatalf("ATR after power on = % X", got)
	}
	// Presence polls must not power the card again.
	for range 5 {
		send(t, c, CtrlGetATR)
		recv(t, c)
	}
	if ons, _, _ := card.counts(); ons != 2 {
		t.Errorf("PowerOn called %d times, want 2 (first poll, then 01)", ons)
	}
	send(t, c, 0x00, 0xA4, 0x04, 0x00)
	if got, want := recv(t, c), []byte{0x00, 0x04, 0xA4, 0x00, 0x90, 0x00}; !bytes.Equal(got, want) {
		t.Errorf("R-APDU = % X, want % X", got, want)
	}
	// IFD_RESET: 02 then 04: power off and on.
	send(t, c, CtrlReset)
	send(t, c, CtrlGetATR)
	recv(t, c)
	if ons, offs, on := card.counts(); ons != 3 || offs != 1 || !on {
		t.Errorf("after reset: ons=%d offs=%d powered=%v, want 3 1 true", ons, offs, on)
	}
	send(t, c, CtrlPowerOff)
	// An unknown control byte gets no reply; the next APDU still works and
	// powers the card on again.
	send(t, c, 0x03)
	send(t, c, 0x00, 0xCA, 0x00, 0x6E, 0x00)
	if got := recv(t, c); len(got) != 7 {
		t.Errorf("R-APDU after unknown control = % X", got)
	}
	if ons, offs, on := card.counts(); ons != 4 || offs != 2 || !on {
		t.Errorf("after power off and APDU: ons=%d offs=%d powered=%v, want 4 2 true", ons, offs, on)
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if _, _, on := card.counts(); on {
		t.Error("card still powered after Run returned")
	}
}

func TestTransmitNeverEmpty(t *testing.T) {
	tests := []struct {
		name  string
		reply func([]byte) ([]byte, error)
		want  []byte
	}{
		{"error", func([]byte) ([]byte, error) { return nil, errors.New("boom") }, []byte{0x6F, 0x00}},
		{"empty", func([]byte) ([]byte, error) { return nil, nil }, []byte{0x6F, 0x00}},
		{"one byte", func([]byte) ([]byte, error) { return []byte{0x90}, nil }, []byte{0x6F, 0x00}},
		{"too long", func([]byte) ([]byte, error) { return make([]byte, MaxFrame+1), nil }, []byte{0x6F, 0x00}},
		{"max", func([]byte) ([]byte, error) { return make([]byte, MaxFrame), nil }, make([]byte, MaxFrame)},
		{"status only", func([]byte) ([]byte, error) { return []byte{0x6A, 0x88}, nil }, []byte{0x6A, 0x88}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newFakeVPCD(t)
			stop := startClient(t, v, &fakeCard{reply: tt.reply}, nil)
			c := v.accept(t)
			send(t, c, CtrlPowerOn)
			send(t, c, 0x00, 0xCA, 0x00, 0x6E)
			if got := recv(t, c); !bytes.Equal(got, tt.want) {
				t.Errorf("reply = % X (len %d), want % X", got[:min(8, len(got))], len(got), tt.want[:min(8, len(tt.want))])
			}
			stop()
		})
	}
}

func TestReconnect(t *testing.T) {
	v := newFakeVPCD(t)
	card := &fakeCard{}
	stop := startClient(t, v, card, nil)
	c := v.accept(t)
	send(t, c, CtrlPowerOn)
	send(t, c, CtrlGetATR)
	recv(t, c)
	c.Close() // pcscd went away
	c2 := v.accept(t)
	send(t, c2, CtrlGetATR)
	if got := recv(t, c2); !bytes.Equal(got, testATR) {
		t.Fatalf("ATR on second connection = % X", got)
	}
	if _, offs, _ := card.counts(); offs != 1 {
		t.Errorf("PowerOff called %d times after the connection dropped, want 1", offs)
	}
	stop()
}

func TestRunWithoutServer(t *testing.T) {
	// A port nothing listens on: Run keeps retrying until cancelled.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	cl := &Client{Addr: addr, Card: &fakeCard{}, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	if err := cl.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v, want DeadlineExceeded", err)
	}
	if err := (&Client{}).Run(context.Background()); err == nil {
		t.Error("Run without a Card succeeded")
	}
}

func TestPowerOnFailureEndsSession(t *testing.T) {
	v := newFakeVPCD(t)
	stop := startClient(t, v, &fakeCard{onErr: errors.New("state unreadable")}, nil)
	c := v.accept(t)
	send(t, c, CtrlGetATR)
	// The client must not answer with an empty ATR; it closes the connection.
	if _, err := ReadFrame(c); !errors.Is(err, io.EOF) {
		t.Errorf("read after failed power on = %v, want EOF", err)
	}
	stop()
}

func TestLogsCarryNoAPDUData(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	v := newFakeVPCD(t)
	card := &fakeCard{reply: func(c []byte) ([]byte, error) {
		if c[1] == 0xCA {
			return nil, errors.New("fail")
		}
		return []byte{0x63, 0xC2}, nil
	}}
	stop := startClient(t, v, card, log)
	c := v.accept(t)
	send(t, c, CtrlPowerOn)
	verify := []byte{0x00, 0x20, 0x00, 0x81, 0x06, '9', '8', '7', '6', '5', '4'}
	send(t, c, verify...)
	recv(t, c)
	send(t, c, 0x00, 0xCA, 0x00, 0x6E, 0x04, '9', '8', '7', '6')
	recv(t, c)
	stop()
	out := buf.String()
	if !strings.Contains(out, "00 20 00 81") || !strings.Contains(out, "63C2") {
		t.Errorf("log lacks the header or SW:\n%s", out)
	}
	for _, secret := range []string{"987654", "39 38 37", "393837", "9876"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains APDU data %q:\n%s", secret, out)
		}
	}
}

func TestFrames(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    []byte
		wantErr error
	}{
		{"one byte", []byte{0, 1, 4}, []byte{4}, nil},
		{"apdu", []byte{0, 4, 0, 0xA4, 4, 0}, []byte{0, 0xA4, 4, 0}, nil},
		{"zero length", []byte{0, 0}, []byte{}, nil},
		{"end between frames", nil, nil, io.EOF},
		{"half a prefix", []byte{0}, nil, io.ErrUnexpectedEOF},
		{"short payload", []byte{0, 3, 1, 2}, nil, io.ErrUnexpectedEOF},
		{"no payload", []byte{1, 0}, nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadFrame(bytes.NewReader(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !bytes.Equal(got, tt.want) || (tt.want != nil && got == nil) {
				t.Errorf("frame = %v, want %v", got, tt.want)
			}
		})
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, nil); !errors.Is(err, ErrEmptyFrame) {
		t.Errorf("WriteFrame(empty) = %v, want ErrEmptyFrame", err)
	}
	if err := WriteFrame(&buf, make([]byte, MaxFrame+1)); err == nil {
		t.Error("WriteFrame accepted a frame longer than MaxFrame")
	}
	if buf.Len() != 0 {
		t.Errorf("refused frames wrote %d bytes", buf.Len())
	}
	if err := WriteFrame(&buf, make([]byte, 300)); err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint16(buf.Bytes()); got != 300 || buf.Len() != 302 {
		t.Errorf("prefix %d, total %d; want 300, 302", got, buf.Len())
	}
}

// rw joins a reader of vpcd's messages and a writer for the replies.
type rw struct {
	io.Reader
	io.Writer
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 1, 4})
	f.Add([]byte{0, 0})
	f.Add([]byte{0xFF, 0xFF, 1})
	f.Add([]byte{0, 5, 0, 0xA4, 4, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			p, err := ReadFrame(r)
			if err != nil {
				return
			}
			var out bytes.Buffer
			if len(p) == 0 {
				continue
			}
			if err := WriteFrame(&out, p); err != nil {
				t.Fatalf("WriteFrame of a read frame: %v", err)
			}
			back, err := ReadFrame(&out)
			if err != nil || !bytes.Equal(back, p) {
				t.Fatalf("round trip: %v, % X != % X", err, back, p)
			}
		}
	})
}

// FuzzSession feeds an arbitrary byte stream from "vpcd" to a session and
// checks that every reply is a well-formed, non-empty frame.
func FuzzSession(f *testing.F) {
	f.Add([]byte{0, 1, 4, 0, 1, 1, 0, 4, 0, 0xA4, 4, 0, 0, 1, 0})
	f.Add([]byte{0, 1, 2, 0, 1, 4, 0, 0, 0, 2, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, in []byte) {
		card := &fakeCard{reply: func(c []byte) ([]byte, error) {
			switch c[0] % 4 {
			case 0:
				return nil, errors.New("x")
			case 1:
				return c[:1], nil
			}
			return append(c, 0x90, 0x00), nil
		}}
		var out bytes.Buffer
		s := session{card: card, log: slog.New(slog.DiscardHandler)}
		s.serve(context.Background(), rw{bytes.NewReader(in), &out})
		for out.Len() > 0 {
			p, err := ReadFrame(&out)
			if err != nil {
				t.Fatalf("reply stream broken: %v", err)
			}
			if len(p) == 0 {
				t.Fatal("empty reply")
			}
		}
	})
}

func BenchmarkSessionAPDU(b *testing.B) {
	client, server := net.Pipe()
	defer server.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Serve(ctx, client, &fakeCard{}, nil)
	WriteFrame(server, []byte{CtrlPowerOn})
	apdu := []byte{0x00, 0xCA, 0x00, 0x6E, 0x00}
	for b.Loop() {
		if err := WriteFrame(server, apdu); err != nil {
			b.Fatal(err)
		}
		if _, err := ReadFrame(server); err != nil {
			b.Fatal(err)
		}
	}
}
