package probe

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// BenchOptions configure Bench.
type BenchOptions struct {
	// APDU is the command whose round trip is timed (default GET DATA 4F, the application identifier).
	APDU []byte
	// Select is sent once after PowerOn (default SELECT of the OpenPGP application; empty slice: none).
	Select []byte
	// N is the number of timed round trips (default 1000); each throughput run uses N/10, at least 10.
	N int
	// Size is the length of the extended command APDU of the bulk-OUT throughput run (default 4096).
	Size int
	// Timeout bounds each transfer (default 5 s).
	Timeout time.Duration
	// Progress, if set, is called after each round trip with the number done and the total.
	Progress func(done, total int)
}

// Latency summarises round-trip times.
type Latency struct {
	N    int           `json:"n"`
	Min  time.Duration `json:"min_ns"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	Max  time.Duration `json:"max_ns"`
	Mean time.Duration `json:"mean_ns"`
}

// String prints the latency in milliseconds.
func (l Latency) String() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/1e6) }
	return fmt.Sprintf("n=%d min=%s p50=%s p90=%s p99=%s max=%s mean=%s ms", l.N, ms(l.Min), ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), ms(l.Mean))
}

// Summarize computes the nearest-rank percentiles of d (which it sorts).
func Summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		return d[max(i, 0)]
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return Latency{N: len(d), Min: d[0], P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Max: d[len(d)-1],
		Mean: sum / time.Duration(len(d))}
}

// Throughput is one bulk run: APDUs moving Bytes each in one direction.
type Throughput struct {
	Name        string  `json:"name"`
	APDUBytes   int     `json:"apdu_bytes"` // command APDU length (out) or R-APDU length (in)
	Blocks      int     `json:"blocks"`     // XfrBlock/DataBlock pairs per APDU
	N           int     `json:"n"`
	Seconds     float64 `json:"seconds"`
	BytesPerSec float64 `json:"bytes_per_second"`
	Latency     Latency `json:"latency"`
	SW          string  `json:"sw"`
}

// BenchResult is what Bench measured.
type BenchResult struct {
	Device     Info         `json:"device"`
	APDU       string       `json:"apdu"`
	SW         string       `json:"sw"`
	Latency    Latency      `json:"latency"`
	Throughput []Throughput `json:"throughput"`
}

// Bench powers the card on, selects the application, times N round trips of opts.APDU, then measures bulk
// throughput: an extended command APDU of opts.Size bytes (INS 0xEE, which a card rejects with 6D00 after the
// reader delivered all of it) and, when the card offers GET CHALLENGE, the longest challenge it gives.
func Bench(ctx context.Context, dev Device, opts BenchOptions) (BenchResult, error) {
	if opts.APDU == nil {
		opts.APDU = []byte{0x00, 0xCA, 0x00, 0x4F, 0x00}
	}
	if opts.Select == nil {
		opts.Select = openPGPSelect
	}
	if opts.N <= 0 {
		opts.N = 1000
	}
	if opts.Size <= 0 {
		opts.Size = 4096
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	s := newSession(dev, opts.Timeout)
	s.record = false
	res := BenchResult{Device: s.info, APDU: hex.EncodeToString(opts.APDU)}
	if s.descErr != nil {
		return res, fmt.Errorf("probe: bench: %w", s.descErr)
	}
	if s.desc.Features&ccid.FeatureLevelMask == ccid.FeatureLevelTPDU || s.desc.Features&ccid.FeatureLevelMask == 0 {
		return res, fmt.Errorf("probe: bench: the reader works at %s level; bench needs APDU level", ExchangeLevel(s.desc.Features))
	}
	extended := s.desc.Features&ccid.FeatureLevelMask == ccid.FeatureLevelExtendedAPDU
	if _, _, err := s.powerOn(ctx); err != nil {
		return res, fmt.Errorf("probe: bench: PowerOn: %w", err)
	}
	var challenge int
	if len(opts.Select) > 0 {
		rapdu, _, err := s.transmit(ctx, opts.Select)
		if err != nil {
			return res, fmt.Errorf("probe: bench: SELECT: %w", err)
		}
		if sw(rapdu) == 0x9000 {
			if caps, _, err := s.transmit(ctx, []byte{0x00, 0xCA, 0x00, 0xC0, 0x00}); err == nil && sw(caps) == 0x9000 && len(caps) >= 6 && caps[0]&0x40 != 0 {
				challenge = int(caps[2])<<8 | int(caps[3])
			}
		}
	}

	total := opts.N
	nThr := max(opts.N/10, 10)
	runs := 1
	if extended {
		runs++
		if challenge > 0 {
			runs++
		}
	}
	total += (runs - 1) * nThr
	done := 0
	tick := func() {
		done++
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}

	lat, rapdu, _, err := timeAPDU(ctx, s, opts.APDU, opts.N, tick)
	if err != nil {
		return res, fmt.Errorf("probe: bench: APDU %X: %w", opts.APDU, err)
	}
	res.Latency, res.SW = Summarize(lat), fmt.Sprintf("%04X", sw(rapdu))

	if extended {
		capdu := unknownAPDU(max(opts.Size, 8))
		t, err := throughput(ctx, s, "bulk-OUT: extended command APDU", capdu, len(capdu), nThr, tick)
		if err != nil {
			return res, err
		}
		res.Throughput = append(res.Throughput, t)
		if challenge > 0 {
			capdu := []byte{0x00, 0x84, 0x00, 0x00, 0x00, byte(challenge >> 8), byte(challenge)}
			t, err := throughput(ctx, s, "bulk-IN: GET CHALLENGE", capdu, challenge+2, nThr, tick)
			if err != nil {
				return res, err
			}
			res.Throughput = append(res.Throughput, t)
		}
	}
	return res, nil
}

func timeAPDU(ctx context.Context, s *session, capdu []byte, n int, tick func()) ([]time.Duration, []byte, int, error) {
	lat := make([]time.Duration, 0, n)
	var rapdu []byte
	var blocks int
	for range n {
		if err := ctx.Err(); err != nil {
			return lat, rapdu, blocks, err
		}
		start := time.Now()
		r, chains, err := s.transmit(ctx, capdu)
		if err != nil {
			return lat, r, blocks, err
		}
		lat = append(lat, time.Since(start))
		rapdu = r
		blocks = max((len(capdu)+s.chunk-1)/s.chunk, len(chains))
		s.seqs = s.seqs[:0]
		tick()
	}
	return lat, rapdu, blocks, nil
}

func throughput(ctx context.Context, s *session, name string, capdu []byte, moved, n int, tick func()) (Throughput, error) {
	start := time.Now()
	lat, rapdu, blocks, err := timeAPDU(ctx, s, capdu, n, tick)
	if err != nil {
		return Throughput{}, fmt.Errorf("probe: bench: %s: %w", name, err)
	}
	secs := time.Since(start).Seconds()
	if secs <= 0 {
		return Throughput{}, errors.New("probe: bench: no time elapsed")
	}
	return Throughput{Name: name, APDUBytes: moved, Blocks: blocks, N: n, Seconds: secs,
		BytesPerSec: float64(moved*n) / secs, Latency: Summarize(lat), SW: fmt.Sprintf("%04X", sw(rapdu))}, nil
}
