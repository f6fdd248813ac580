package trace_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/ccidtest"
	"github.com/ccidgadget/ccidgadget/ccid/trace"
)

// TestReplayTimingFidelity replays a synthetic trace of 40 exchanges with delays of 1..40 ms in real time
// and measures, as the host side of an in-memory transport sees it, |observed − recorded| command-to-answer
// delay. It reports p50/p99/max (go test -v -run Fidelity ./ccid/trace); it fails if an answer comes early or
// the median error exceeds 10 ms. It does not include USB: the virtual bench measures that.
func TestReplayTimingFidelity(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time replay (0.8 s)")
	}
	var log strings.Builder
	const n = 40
	for i := 0; i < n; i++ {
		apdu := fmt.Sprintf("00 B0 00 %02X 02", i)
		fmt.Fprintf(&log, "00000100 -> 000000 6F 05 00 00 00 00 %02X 00 00 00 %s \n", i, apdu)
		fmt.Fprintf(&log, "%08d <- 000000 80 02 00 00 00 00 %02X 00 00 00 90 00 \n", (i+1)*1000, i)
	}
	tr, err := trace.Parse(strings.NewReader(log.String()))
	if err != nil || len(tr.Exchanges) != n {
		t.Fatalf("%v %v", tr, err)
	}
	rp, err := trace.NewReplayer(tr, trace.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ccid.DefaultConfig()
	cfg.Interceptor = rp
	rd, _ := ccid.NewReader(cfg)
	rp.Bind(rd, 0)
	rd.Insert(0, rp.Card())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tp := ccidtest.NewTransport()
	done := make(chan error, 1)
	go func() { done <- rd.Serve(ctx, tp) }()
	defer func() { tp.Close(); <-done }()
	if _, err := tp.Exchange(ctx, ccid.NewIccPowerOn(0, 0xF0, 0)); err != nil {
		t.Fatal(err)
	}
	var diff []time.Duration
	for i, e := range tr.Exchanges {
		start := time.Now()
		m, err := tp.Exchange(ctx, ccid.NewXfrBlock(0, byte(i+7), 0, 0, e.Command.Bytes[ccid.HeaderSize:]))
		got := time.Since(start)
		if err != nil || m.Seq != byte(i+7) || len(m.Data) != 2 || m.Data[0] != 0x90 {
			t.Fatalf("exchange %d: %v %v", i, m, err)
		}
		d := got - e.Latency()
		if d < 0 {
			t.Errorf("exchange %d answered %v early", i, -d)
			d = -d
		}
		diff = append(diff, d)
	}
	s := trace.Summarize(diff)
	t.Logf("replay timing error over %d exchanges (in-memory transport): p50 %v p99 %v max %v", s.N, s.P50, s.P99, s.Max)
	// Never early (checked above); the median bounds the replayer's own overhead. The maximum depends on the
	// machine's load and is only reported.
	if s.P50 > 10*time.Millisecond {
		t.Errorf("median error %v", s.P50)
	}
}
