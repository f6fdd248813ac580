package trace

import (
	"fmt"
	"html"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// Latencies summarises exchange latencies.
type Latencies struct {
	N             int
	P50, P99, Max time.Duration
}

// Summarize returns the latency percentiles of the answered exchanges (nearest-rank percentiles).
func Summarize(d []time.Duration) Latencies {
	if len(d) == 0 {
		return Latencies{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := func(p int) time.Duration { return s[max(0, (p*len(s)+99)/100-1)] }
	return Latencies{N: len(s), P50: rank(50), P99: rank(99), Max: s[len(s)-1]}
}

// Latencies returns the latency of every answered exchange.
func (t *Trace) Latencies() []time.Duration {
	var d []time.Duration
	for _, e := range t.Exchanges {
		if _, ok := e.Answer(); ok {
			d = append(d, e.Latency())
		}
	}
	return d
}

// Describe names a frame for people: the message type, and for XfrBlock the APDU header, for DataBlock the SW.
func Describe(b []byte) string {
	if len(b) == 0 {
		return "(none)"
	}
	t := ccid.MessageType(b[0])
	name := strings.TrimPrefix(strings.TrimPrefix(t.String(), "PC_to_RDR_"), "RDR_to_PC_")
	if len(b) < ccid.HeaderSize {
		return fmt.Sprintf("%s (%d bytes)", name, len(b))
	}
	data := b[ccid.HeaderSize:]
	switch {
	case t == ccid.MsgXfrBlock && len(data) >= 4:
		return fmt.Sprintf("%s %X", name, data[:4])
	case t.IsCommand():
		return name
	case t == ccid.MsgDataBlock && b[7]&0xC0 == ccid.CommandTimeExtension:
		return fmt.Sprintf("%s WTX x%d", name, b[8])
	case b[7]&0xC0 == ccid.CommandFailed:
		return fmt.Sprintf("%s failed %02X %s", name, b[7], ccid.SlotError(b[8]))
	case t == ccid.MsgDataBlock && len(data) >= 2:
		return fmt.Sprintf("%s SW %X", name, data[len(data)-2:])
	}
	return fmt.Sprintf("%s %02X", name, b[7])
}

// WriteTable prints one line per exchange (time, command, answer, latency, fault), the interrupt messages in
// place, and a latency summary.
func (t *Trace) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%4s %12s  %-28s %-34s %12s  %s\n", "#", "at", "command", "answer", "latency", "fault")
	ev := 0
	events := func(upTo time.Duration) {
		for ; ev < len(t.Events) && t.Events[ev].At <= upTo; ev++ {
			fmt.Fprintf(&b, "%4s %12s  interrupt % X\n", "", fmtDur(t.Events[ev].At), t.Events[ev].Bytes)
		}
	}
	for _, e := range t.Exchanges {
		events(e.Command.At)
		ans := "(no answer)"
		if a, ok := e.Answer(); ok {
			ans = Describe(a.Bytes)
		}
		fmt.Fprintf(&b, "%4d %12s  %-28s %-34s %12s  %s\n", e.Index, fmtDur(e.Command.At), Describe(e.Command.Bytes), ans,
			fmtDur(e.Latency()), e.Fault())
	}
	events(1 << 62)
	s := Summarize(t.Latencies())
	fmt.Fprintf(&b, "%d exchanges, %d answered, %d interrupt messages; latency p50 %s p99 %s max %s\n",
		len(t.Exchanges), s.N, len(t.Events), fmtDur(s.P50), fmtDur(s.P99), fmtDur(s.Max))
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.3fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dµs", d.Microseconds())
}

// WriteSVG draws the exchanges on a time line: one row per exchange, a bar from the command to the answer
// (red for a fault, grey for no answer, ticks for time extensions), a dashed line for each interrupt
// message, and a time axis. Short exchanges get a minimum width so they stay visible.
func (t *Trace) WriteSVG(w io.Writer) error {
	const (
		left, right, top, row = 260.0, 220.0, 40.0, 22.0
		width                 = 1400.0
	)
	var end time.Duration
	for _, e := range t.Exchanges {
		end = max(end, e.Command.At+e.Latency())
	}
	for _, ev := range t.Events {
		end = max(end, ev.At)
	}
	if end <= 0 {
		end = time.Millisecond
	}
	scale := (width - left - right) / float64(end)
	x := func(d time.Duration) float64 { return left + float64(d)*scale }
	height := top + row*float64(len(t.Exchanges)) + 50
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="monospace" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	s := Summarize(t.Latencies())
	fmt.Fprintf(&b, `<text x="10" y="20">%d exchanges · latency p50 %s p99 %s max %s</text>`+"\n",
		len(t.Exchanges), html.EscapeString(fmtDur(s.P50)), html.EscapeString(fmtDur(s.P99)), html.EscapeString(fmtDur(s.Max)))
	axisY := top + row*float64(len(t.Exchanges)) + 10
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, axisY, width-right, axisY)
	for k := 0; k <= 10; k++ {
		d := end * time.Duration(k) / 10
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n",
			x(d), axisY, x(d), axisY+5, x(d), axisY+18, html.EscapeString(fmtDur(d)))
	}
	for i, e := range t.Exchanges {
		y := top + row*float64(i)
		fault := e.Fault()
		colour := "#4a90d9"
		if _, ok := e.Answer(); !ok {
			colour = "#999999"
		} else if fault != "" {
			colour = "#d94a4a"
		}
		x0, x1 := x(e.Command.At), x(e.Command.At+e.Latency())
		fmt.Fprintf(&b, `<text x="10" y="%.1f">%s</text>`+"\n", y+14, html.EscapeString(fmt.Sprintf("%d %s", e.Index, Describe(e.Command.Bytes))))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`+"\n",
			x0, y+3, max(x1-x0, 2), row-6, colour,
			html.EscapeString(fmt.Sprintf("%s → %s in %s %s", Describe(e.Command.Bytes), answerText(e), fmtDur(e.Latency()), fault)))
		for _, a := range e.Answers {
			if IsTimeExtension(a.Bytes) {
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", x(a.At), y+1, x(a.At), y+row-1)
			}
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", max(x1, x0+2)+4, y+14,
			html.EscapeString(fmt.Sprintf("%s %s", fmtDur(e.Latency()), answerText(e))))
	}
	for _, ev := range t.Events {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e69500" stroke-dasharray="4 3"><title>%s</title></line>`+"\n",
			x(ev.At), top-5, x(ev.At), axisY, html.EscapeString(fmt.Sprintf("interrupt % X at %s", ev.Bytes, fmtDur(ev.At))))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#e69500">%s</text>`+"\n", x(ev.At)+3, top-8, html.EscapeString(fmt.Sprintf("% X", ev.Bytes)))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func answerText(e Exchange) string {
	if a, ok := e.Answer(); ok {
		return Describe(a.Bytes)
	}
	return "(no answer)"
}

// Compare pairs the exchanges of a recorded trace with those of a replay seen by the host (its own pcscd log),
// by command content (bSeq and bSlot ignored, masked bytes match anything) and in order, and returns the
// recorded and replayed latency of each pair. GetSlotStatus polls and unanswered exchanges are left out.
func Compare(recorded, replayed *Trace) []Timing {
	var out []Timing
	next := 0
	for _, e := range recorded.Exchanges {
		if _, ok := e.Answer(); !ok || len(e.Command.Bytes) < ccid.HeaderSize ||
			ccid.MessageType(e.Command.Bytes[0]) == ccid.MsgGetSlotStatus {
			continue
		}
		for j := next; j < len(replayed.Exchanges); j++ {
			r := replayed.Exchanges[j]
			if _, ok := r.Answer(); ok && sameCommand(e.Command, r.Command.Bytes) {
				out = append(out, Timing{Exchange: e.Index, Recorded: e.Latency(), Replayed: r.Latency()})
				next = j + 1
				break
			}
		}
	}
	return out
}

// WriteComparison prints each pair of Compare and the p50/p99/max of |replayed − recorded|.
func WriteComparison(w io.Writer, recorded, replayed *Trace) error {
	var b strings.Builder
	pairs := Compare(recorded, replayed)
	fmt.Fprintf(&b, "%4s  %-28s %12s %12s %12s\n", "#", "command", "recorded", "replayed", "difference")
	var diff []time.Duration
	for _, p := range pairs {
		d := p.Replayed - p.Recorded
		fmt.Fprintf(&b, "%4d  %-28s %12s %12s %12s\n", p.Exchange, Describe(recorded.Exchanges[p.Exchange].Command.Bytes),
			fmtDur(p.Recorded), fmtDur(p.Replayed), signed(d))
		diff = append(diff, max(d, -d))
	}
	s := Summarize(diff)
	fmt.Fprintf(&b, "%d of %d recorded exchanges found in the replay; |replayed − recorded| p50 %s p99 %s max %s\n",
		len(pairs), len(recorded.Exchanges), fmtDur(s.P50), fmtDur(s.P99), fmtDur(s.Max))
	_, err := io.WriteString(w, b.String())
	return err
}

func signed(d time.Duration) string {
	if d < 0 {
		return "-" + fmtDur(-d)
	}
	return "+" + fmtDur(d)
}
