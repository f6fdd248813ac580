package ccid_test

import (
	"context"
	"testing"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// loopTransport plays a host that sends one command and waits for its answer: ReadFrame hands out the next
// command once the previous answer was written. It copies answers into a fixed buffer, so it allocates nothing.
type loopTransport struct {
	cmd    []byte
	turn   chan struct{} // a command may be read
	answer chan int      // length of the answer just written
	buf    []byte
}

func (t *loopTransport) ReadFrame(ctx context.Context) ([]byte, error) {
	select {
	case <-t.turn:
		return t.cmd, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (t *loopTransport) WriteFrame(ctx context.Context, f []byte) error {
	n := copy(t.buf, f)
	select {
	case t.answer <- n:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fixedCard answers every APDU at once with the same R-APDU.
type fixedCard struct{ rapdu, atr []byte }

func (c fixedCard) PowerOn(context.Context) ([]byte, error)          { return c.atr, nil }
func (c fixedCard) PowerOff() error                                  { return nil }
func (c fixedCard) Transmit(context.Context, []byte) ([]byte, error) { return c.rapdu, nil }

// passInterceptor lets every frame through, as a fault plan with no matching rule does.
type passInterceptor struct{}

func (passInterceptor) Command(_ context.Context, f []byte) []byte { return f }
func (passInterceptor) Answer(_ context.Context, f []byte, write func([]byte) error) error {
	return write(f)
}

func benchmarkRoundTrip(b *testing.B, cmd []byte, rapduLen int, icpt ccid.Interceptor) {
	cfg := ccid.DefaultConfig()
	cfg.Interceptor = icpt
	r, err := ccid.NewReader(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rapdu := append(pattern(rapduLen-2), 0x90, 0x00)
	if err := r.Insert(0, fixedCard{rapdu: rapdu, atr: []byte{0x3B, 0x00}}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	power, _ := ccid.NewIccPowerOn(0, 0, 0).MarshalBinary()
	t := &loopTransport{cmd: power, turn: make(chan struct{}, 1), answer: make(chan int), buf: make([]byte, 4096)}
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, t) }()
	t.turn <- struct{}{}
	<-t.answer
	t.cmd = cmd
	b.ReportAllocs()
	b.SetBytes(int64(len(cmd) + 10 + len(rapdu)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t.turn <- struct{}{}
		if n := <-t.answer; n != 10+len(rapdu) {
			b.Fatalf("answer of %d bytes", n)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "frames/s")
	cancel()
	<-done
}

// BenchmarkXfrBlock measures one XfrBlock round trip (command frame in, DataBlock out) through the whole
// engine with a card that answers at once: frames per second and allocations per round trip.
func BenchmarkXfrBlock(b *testing.B) {
	b.Run("short", func(b *testing.B) {
		cmd, _ := ccid.NewXfrBlock(0, 1, 0, 0, []byte{0x00, 0xCA, 0x00, 0x6E, 0x00}).MarshalBinary()
		benchmarkRoundTrip(b, cmd, 256, nil)
	})
	b.Run("2048", func(b *testing.B) {
		cmd, _ := ccid.NewXfrBlock(0, 1, 0, 0, pattern(2048)).MarshalBinary()
		benchmarkRoundTrip(b, cmd, 2048, nil)
	})
	// Through an Interceptor, whose Answer runs on the bulk-IN writer goroutine.
	b.Run("short-intercepted", func(b *testing.B) {
		cmd, _ := ccid.NewXfrBlock(0, 1, 0, 0, []byte{0x00, 0xCA, 0x00, 0x6E, 0x00}).MarshalBinary()
		benchmarkRoundTrip(b, cmd, 256, passInterceptor{})
	})
}

// BenchmarkGetSlotStatus measures a round trip the reader answers without the card (pcscd's presence poll).
func BenchmarkGetSlotStatus(b *testing.B) {
	cmd, _ := ccid.NewGetSlotStatus(0, 1).MarshalBinary()
	r, err := ccid.NewReader(ccid.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t := &loopTransport{cmd: cmd, turn: make(chan struct{}, 1), answer: make(chan int), buf: make([]byte, 64)}
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, t) }()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t.turn <- struct{}{}
		<-t.answer
	}
	b.StopTimer()
	b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "frames/s")
	cancel()
	<-done
}

func BenchmarkParseMessage(b *testing.B) {
	frame, _ := ccid.NewXfrBlock(0, 1, 0, 0, pattern(2048)).MarshalBinary()
	out := make([]byte, 0, len(frame))
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for i := 0; i < b.N; i++ {
		m, err := ccid.ParseMessage(frame)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Check(); err != nil {
			b.Fatal(err)
		}
		out, _ = m.AppendBinary(out[:0])
	}
}
