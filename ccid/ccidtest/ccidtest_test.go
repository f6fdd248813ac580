package ccidtest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/ccidtest"
)

func TestTransport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := ccidtest.NewTransport()
	go func() { _ = tr.SendMessage(ctx, ccid.NewGetSlotStatus(0, 1)) }()
	f, err := tr.ReadFrame(ctx)
	if err != nil || !bytes.Equal(f, []byte{0x65, 0, 0, 0, 0, 0, 1, 0, 0, 0}) {
		t.Fatalf("ReadFrame = % X, %v", f, err)
	}
	out := []byte{0x81, 0, 0, 0, 0, 0, 1, 0, 0, 0}
	if err := tr.WriteFrame(ctx, out); err != nil {
		t.Fatal(err)
	}
	out[0] = 0xFF // the transport copied the frame
	m, err := tr.RecvMessage(ctx)
	if err != nil || m.Type != ccid.MsgSlotStatus || m.Seq != 1 {
		t.Fatalf("RecvMessage = %v, %v", m, err)
	}
	if tr.Pending() != 0 {
		t.Errorf("Pending = %d", tr.Pending())
	}
	tr.Close()
	tr.Close()
	if _, err := tr.ReadFrame(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("ReadFrame after Close: %v", err)
	}
	if err := tr.WriteFrame(ctx, out); !errors.Is(err, io.EOF) {
		t.Errorf("WriteFrame after Close: %v", err)
	}
	if err := tr.Send(ctx, out); !errors.Is(err, io.EOF) {
		t.Errorf("Send after Close: %v", err)
	}
	short, stop := context.WithCancel(ctx)
	stop()
	if _, err := tr.Recv(short); !errors.Is(err, context.Canceled) {
		t.Errorf("Recv with a cancelled context: %v", err)
	}
}

func TestCard(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := ccidtest.NewCard(nil)
	atr, err := c.PowerOn(ctx)
	if err != nil || !bytes.Equal(atr, ccidtest.OpenPGPATR) {
		t.Fatalf("PowerOn = % X, %v", atr, err)
	}
	if r, _ := c.Transmit(ctx, []byte{1, 2}); !bytes.Equal(r, []byte{1, 2, 0x90, 0}) {
		t.Errorf("echo = % X", r)
	}
	c.Answer([]byte{1, 2}, []byte{0x6A, 0x82})
	if r, _ := c.Transmit(ctx, []byte{1, 2}); !bytes.Equal(r, []byte{0x6A, 0x82}) {
		t.Errorf("table = % X", r)
	}
	c.Respond(func([]byte) []byte { return []byte{0x90, 0} })
	if r, _ := c.Transmit(ctx, []byte{3}); !bytes.Equal(r, []byte{0x90, 0}) {
		t.Errorf("respond = % X", r)
	}
	c.Block()
	got := make(chan []byte)
	go func() { r, _ := c.Transmit(ctx, []byte{4}); got <- r }()
	if s := <-c.Started(); !bytes.Equal(s, []byte{4}) {
		t.Errorf("Started = % X", s)
	}
	if err := c.Release(ctx, []byte{0x61, 0x10}); err != nil {
		t.Fatal(err)
	}
	if r := <-got; !bytes.Equal(r, []byte{0x61, 0x10}) {
		t.Errorf("released = % X", r)
	}
	cctx, stop := context.WithCancel(ctx)
	go func() { _, err := c.Transmit(cctx, []byte{5}); got <- []byte(err.Error()) }()
	<-c.Started()
	stop()
	if r := <-got; string(r) != context.Canceled.Error() {
		t.Errorf("cancelled Transmit: %s", r)
	}
	c.Unblock()
	c.FailTransmit(errors.New("mute"))
	if _, err := c.Transmit(ctx, []byte{6}); err == nil {
		t.Error("FailTransmit ignored")
	}
	c.FailPowerOn(errors.New("dead"))
	if _, err := c.PowerOn(ctx); err == nil {
		t.Error("FailPowerOn ignored")
	}
	_ = c.PowerOff()
	if on, off, tx, cancelled := c.Counts(); on != 2 || off != 1 || tx != 6 || cancelled != 1 {
		t.Errorf("Counts = %d %d %d %d", on, off, tx, cancelled)
	}
}

func TestManualClock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := ccidtest.NewManualClock()
	tm := c.NewTimer(time.Hour)
	tm.Reset(time.Hour)
	go func() { _ = c.Tick(ctx) }()
	<-tm.C()
	tm.Stop()
	short, stop := context.WithCancel(ctx)
	stop()
	if err := c.Tick(short); err == nil {
		t.Error("Tick with nobody waiting returned nil")
	}
}
