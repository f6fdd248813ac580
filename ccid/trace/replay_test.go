package trace_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/ccidtest"
	"github.com/ccidgadget/ccidgadget/ccid/trace"
)

var (
	selectEMRTD = []byte{0x00, 0xA4, 0x04, 0x0C, 0x07, 0xA0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01}
	selectEFCOM = []byte{0x00, 0xA4, 0x02, 0x0C, 0x02, 0x01, 0x1E}
)

func loadTrace(t *testing.T, name string) *trace.Trace {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := trace.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// bench is a reader serving a ccidtest transport with a replayer in front.
type bench struct {
	t   *testing.T
	ctx context.Context
	rd  *ccid.Reader
	tp  *ccidtest.Transport
	rp  *trace.Replayer
	clk *fakeClock
}

func newBench(t *testing.T, tr *trace.Trace, opt trace.Options) *bench {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	clk := newFakeClock()
	opt.Clock = clk
	rp, err := trace.NewReplayer(tr, opt)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ccid.DefaultConfig()
	cfg.Interceptor = rp
	rd, err := ccid.NewReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rp.Bind(rd, 0)
	if err := rd.Insert(0, rp.Card()); err != nil {
		t.Fatal(err)
	}
	<-rd.Notifications() // the insertion
	tp := ccidtest.NewTransport()
	done := make(chan error, 1)
	go func() { done <- rd.Serve(ctx, tp) }()
	t.Cleanup(func() {
		tp.Close()
		<-done
		rp.Wait()
		cancel()
	})
	return &bench{t: t, ctx: ctx, rd: rd, tp: tp, rp: rp, clk: clk}
}

func (b *bench) exchange(m ccid.Message) []byte {
	b.t.Helper()
	if err := b.tp.SendMessage(b.ctx, m); err != nil {
		b.t.Fatal(err)
	}
	f, err := b.tp.Recv(b.ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	return f
}

func (b *bench) powerOn(seq byte) []byte {
	b.t.Helper()
	f := b.exchange(ccid.NewIccPowerOn(0, seq, 0))
	if f[7] != 0 {
		b.t.Fatalf("power on: % X", f)
	}
	return f[ccid.HeaderSize:]
}

func near(d, want time.Duration) bool { return d > want-time.Millisecond && d < want+time.Millisecond }

func TestReplayEmbeddedPR533(t *testing.T) {
	b := newBench(t, loadTrace(t, "pr533-embedded.log"), trace.Options{ATR: []byte{0x3B, 0x80, 0x80, 0x01, 0x01}})
	if atr := b.powerOn(1); !bytes.Equal(atr, []byte{0x3B, 0x80, 0x80, 0x01, 0x01}) {
		t.Fatalf("ATR % X", atr)
	}
	before := len(b.clk.Sleeps())
	got := b.exchange(ccid.NewXfrBlock(0, 0x42, 0, 0, selectEMRTD))
	want := []byte{0x80, 0x02, 0, 0, 0, 0, 0x42, 0x01, 0x00, 0x00, 0x6F, 0x01}
	if !bytes.Equal(got, want) {
		t.Fatalf("SELECT answer % X, want % X", got, want)
	}
	sl := b.clk.Sleeps()[before:]
	if len(sl) == 0 || !near(sl[0], 2712060*time.Microsecond) {
		t.Fatalf("answer delay %v, want 2.712060s", sl)
	}
	select {
	case n := <-b.rd.Notifications():
		if !bytes.Equal(n, []byte{0x50, 0x02}) {
			t.Fatalf("notification % X, want 50 02", n)
		}
	case <-b.ctx.Done():
		t.Fatal("no NotifySlotChange")
	}
	b.rp.Wait()
	sl = b.clk.Sleeps()
	if last := sl[len(sl)-1]; !near(last, 120753*time.Microsecond) {
		t.Errorf("notification offset %v, want 120.753ms after the answer", last)
	}
	st := b.exchange(ccid.NewGetSlotStatus(0, 0x43))
	if ccid.MessageType(st[0]) != ccid.MsgSlotStatus || st[6] != 0x43 || st[7]&0x03 != ccid.ICCAbsent {
		t.Fatalf("GetSlotStatus % X, want bmICCStatus 2", st)
	}
	x := b.exchange(ccid.NewXfrBlock(0, 0x44, 0, 0, selectEFCOM))
	if x[6] != 0x44 || x[7] != 0x42 || x[8] != 0xFE {
		t.Fatalf("XfrBlock after removal % X, want bStatus 42 bError FE", x)
	}
	if !b.rp.Done() {
		t.Error("replay not done (only a GetSlotStatus poll is left)")
	}
	tm := b.rp.Timings()
	if len(tm) != 1 || tm[0].Recorded != tm[0].Replayed {
		t.Errorf("timings %+v", tm)
	}
}

func TestReplayDesktopPR533(t *testing.T) {
	b := newBench(t, loadTrace(t, "pr533-desktop.log"), trace.Options{})
	if atr := b.powerOn(1); !bytes.Equal(atr, []byte{0x3B, 0x80, 0x80, 0x01, 0x01}) {
		t.Fatalf("ATR % X", atr)
	}
	for _, c := range []struct {
		apdu  []byte
		sw    []byte
		delay time.Duration
	}{
		{selectEMRTD, []byte{0x90, 0x00}, 78174 * time.Microsecond},
		{selectEFCOM, []byte{0x69, 0x82}, 17077 * time.Microsecond},
	} {
		before := len(b.clk.Sleeps())
		got := b.exchange(ccid.NewXfrBlock(0, 7, 0, 0, c.apdu))
		if got[7] != 0 || !bytes.Equal(got[ccid.HeaderSize:], c.sw) || got[6] != 7 {
			t.Fatalf("answer % X, want SW % X", got, c.sw)
		}
		if sl := b.clk.Sleeps()[before:]; len(sl) != 1 || !near(sl[0], c.delay) {
			t.Errorf("delay %v, want %v", sl, c.delay)
		}
	}
	if !b.rp.Done() {
		t.Error("replay not done")
	}
}

func TestReplayDivergence(t *testing.T) {
	other := []byte{0x00, 0xB0, 0x00, 0x00, 0x08}
	t.Run("fail", func(t *testing.T) {
		b := newBench(t, loadTrace(t, "pr533-desktop.log"), trace.Options{})
		b.powerOn(1)
		got := b.exchange(ccid.NewXfrBlock(0, 9, 0, 0, other))
		if got[7] != 0x40 || got[8] != 0xFE {
			t.Fatalf("% X, want 40 FE", got)
		}
	})
	t.Run("card", func(t *testing.T) {
		live := ccidtest.NewCard(nil)
		live.Answer(other, []byte{1, 2, 0x90, 0x00})
		b := newBench(t, loadTrace(t, "pr533-desktop.log"), trace.Options{OnDivergence: trace.DivergeCard, Live: live})
		b.powerOn(1)
		got := b.exchange(ccid.NewXfrBlock(0, 9, 0, 0, other))
		if !bytes.Equal(got[ccid.HeaderSize:], []byte{1, 2, 0x90, 0x00}) {
			t.Fatalf("% X, want the live card's answer", got)
		}
		// A recorded command is still replayed.
		got = b.exchange(ccid.NewXfrBlock(0, 10, 0, 0, selectEMRTD))
		if !bytes.Equal(got[ccid.HeaderSize:], []byte{0x90, 0x00}) {
			t.Fatalf("% X", got)
		}
	})
	t.Run("mute", func(t *testing.T) {
		b := newBench(t, loadTrace(t, "pr533-desktop.log"), trace.Options{OnDivergence: trace.DivergeMute})
		b.powerOn(1)
		if err := b.tp.SendMessage(b.ctx, ccid.NewXfrBlock(0, 9, 0, 0, other)); err != nil {
			t.Fatal(err)
		}
		// The next command is answered, and nothing came for the dropped one.
		got := b.exchange(ccid.NewGetSlotStatus(0, 10))
		if got[6] != 10 {
			t.Fatalf("% X: an answer to the muted command", got)
		}
	})
	if _, err := trace.ParseDivergence("loud"); err == nil {
		t.Error("bad policy accepted")
	}
	if _, err := trace.NewReplayer(&trace.Trace{}, trace.Options{OnDivergence: trace.DivergeCard}); err == nil {
		t.Error("card policy without a live card accepted")
	}
}

func TestReplayMixed(t *testing.T) {
	live := ccidtest.NewCard(nil)
	live.Answer(selectEMRTD, []byte{0x90, 0x00})
	b := newBench(t, loadTrace(t, "pr533-embedded.log"), trace.Options{Mixed: true, Live: live})
	b.powerOn(1)
	// The trace's SELECT answer is a fault (bStatus 01, SW 6F01): replayed as recorded even for another APDU.
	got := b.exchange(ccid.NewXfrBlock(0, 5, 0, 0, []byte{0x00, 0xCA, 0x00, 0x6E, 0x00}))
	if !bytes.Equal(got, []byte{0x80, 0x02, 0, 0, 0, 0, 5, 0x01, 0x00, 0x00, 0x6F, 0x01}) {
		t.Fatalf("% X", got)
	}

	live2 := ccidtest.NewCard(nil)
	live2.Answer(selectEFCOM, []byte{0x12, 0x90, 0x00})
	b2 := newBench(t, loadTrace(t, "pr533-desktop.log"), trace.Options{Mixed: true, Live: live2})
	b2.powerOn(1)
	b2.exchange(ccid.NewXfrBlock(0, 1, 0, 0, selectEMRTD))
	before := len(b2.clk.Sleeps())
	got = b2.exchange(ccid.NewXfrBlock(0, 2, 0, 0, selectEFCOM))
	if !bytes.Equal(got[ccid.HeaderSize:], []byte{0x12, 0x90, 0x00}) {
		t.Fatalf("% X: want the live card's content", got)
	}
	if sl := b2.clk.Sleeps()[before:]; len(sl) != 1 || !near(sl[0], 17077*time.Microsecond) {
		t.Errorf("delay %v, want the recorded 17.077ms", sl)
	}
	if _, err := trace.NewReplayer(&trace.Trace{}, trace.Options{Mixed: true}); !errors.Is(err, err) || err == nil {
		t.Error("mixed without a live card accepted")
	}
}

// warnCounter is a slog handler that keeps the messages of WARN and above (and, with attrs, their attributes).
type warnCounter struct{ msgs, attrs chan string }

func (h warnCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h warnCounter) Handle(_ context.Context, r slog.Record) error {
	h.msgs <- r.Message
	if h.attrs != nil {
		var b strings.Builder
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		h.attrs <- b.String()
	}
	return nil
}
func (h warnCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h warnCounter) WithGroup(string) slog.Handler      { return h }

// TestReplayDivergenceLog: only an APDU the trace lacks is reported as a divergence; the power-on that a trace
// starting with "Card ATR:" never recorded, and a power-off, are answered by the reader without a warning.
func TestReplayDivergenceLog(t *testing.T) {
	h := warnCounter{msgs: make(chan string, 16)}
	b := newBench(t, loadTrace(t, "pr533-desktop.log"), trace.Options{Logger: slog.New(h)})
	b.powerOn(1)
	if got := b.exchange(ccid.NewXfrBlock(0, 2, 0, 0, selectEMRTD)); !bytes.Equal(got[ccid.HeaderSize:], []byte{0x90, 0x00}) {
		t.Fatalf("recorded SELECT: % X", got)
	}
	if got := b.exchange(ccid.NewIccPowerOff(0, 3)); got[7]&0x40 != 0 {
		t.Fatalf("power off: % X", got)
	}
	select {
	case m := <-h.msgs:
		t.Fatalf("warning %q for commands the reader answers itself", m)
	default:
	}
	b.powerOn(4)
	b.exchange(ccid.NewXfrBlock(0, 5, 0, 0, []byte{0x00, 0xB0, 0x00, 0x00, 0x08}))
	select {
	case m := <-h.msgs:
		if m != "trace: replay diverged" {
			t.Fatalf("warning %q, want the divergence", m)
		}
	default:
		t.Fatal("no warning for an APDU the trace does not have")
	}
}

// TestReplayDivergenceLogMasksPINs: a VERIFY the trace lacks is logged without its PIN.
func TestReplayDivergenceLogMasksPINs(t *testing.T) {
	h := warnCounter{msgs: make(chan string, 16), attrs: make(chan string, 16)}
	b := newBench(t, loadTrace(t, "pr533-desktop.log"), trace.Options{Logger: slog.New(h)})
	b.powerOn(1)
	b.exchange(ccid.NewXfrBlock(0, 2, 0, 0, []byte{0x00, 0x20, 0x00, 0x81, 0x06, '9', '8', '7', '6', '5', '4'}))
	var msg, attrs string
	select {
	case msg = <-h.msgs:
		attrs = <-h.attrs
	default:
		t.Fatal("the diverging VERIFY was not logged")
	}
	if msg != "trace: replay diverged" || !strings.Contains(attrs, "00 20 00 81 06 XX XX XX XX XX XX") {
		t.Fatalf("logged %q%s, want the divergence with the PIN masked", msg, attrs)
	}
	if strings.Contains(attrs, "39 38 37") {
		t.Fatalf("the PIN reached the log: %s", attrs)
	}
}
