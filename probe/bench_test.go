package probe

import (
	"context"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	l := Summarize(d)
	want := Latency{N: 100, Min: time.Millisecond, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond,
		P99: 99 * time.Millisecond, Max: 100 * time.Millisecond, Mean: 50500 * time.Microsecond}
	if l != want {
		t.Errorf("got %+v\nwant %+v", l, want)
	}
	if (Summarize(nil) != Latency{}) {
		t.Error("empty input")
	}
	if one := Summarize([]time.Duration{7}); one.P50 != 7 || one.P99 != 7 || one.Max != 7 {
		t.Errorf("one sample: %+v", one)
	}
}

func TestBench(t *testing.T) {
	u := newUSBReader(t, ccid.DefaultDescriptor(), nil, 0)
	var calls, last, total int
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Bench(ctx, u, BenchOptions{N: 40, Progress: func(done, tot int) {
		calls++
		if done != last+1 {
			t.Errorf("progress %d after %d", done, last)
		}
		last, total = done, tot
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.SW != "9000" || res.Latency.N != 40 || res.Latency.P50 > res.Latency.P90 || res.Latency.P99 > res.Latency.Max {
		t.Errorf("latency %+v SW %s", res.Latency, res.SW)
	}
	if len(res.Throughput) != 2 {
		t.Fatalf("throughput %+v", res.Throughput)
	}
	out, in := res.Throughput[0], res.Throughput[1]
	if out.APDUBytes != 4096 || out.Blocks != 2 || out.SW != "6D00" || out.N != 10 || out.BytesPerSec <= 0 {
		t.Errorf("bulk-OUT %+v", out)
	}
	if in.APDUBytes != 2050 || in.Blocks != 2 || in.SW != "9000" || in.BytesPerSec <= 0 {
		t.Errorf("bulk-IN %+v", in)
	}
	if calls != 60 || total != 60 || last != 60 {
		t.Errorf("progress: %d calls, last %d of %d, want 60", calls, last, total)
	}
}

func TestBenchRefusesTPDULevel(t *testing.T) {
	c, err := ParseConfiguration(gadgetConfig(t, defaultRaw(t)))
	if err != nil {
		t.Fatal(err)
	}
	i := c.Interfaces[0]
	i.Extra[40], i.Extra[41], i.Extra[42] = 0, 0, 1 // dwFeatures 0x00010000
	if _, err := Bench(context.Background(), stubDevice{Info{Interface: i}}, BenchOptions{N: 1}); err == nil {
		t.Error("TPDU level accepted")
	}
}

func BenchmarkTransmitGetData(b *testing.B) {
	u := newUSBReader(b, ccid.DefaultDescriptor(), nil, 0)
	s := newSession(u, 5*time.Second)
	s.record = false
	ctx := context.Background()
	if _, _, err := s.powerOn(ctx); err != nil {
		b.Fatal(err)
	}
	capdu := []byte{0x00, 0xCA, 0x00, 0x4F, 0x00}
	for b.Loop() {
		if _, _, err := s.transmit(ctx, capdu); err != nil {
			b.Fatal(err)
		}
		s.seqs = s.seqs[:0]
	}
}
