package trace_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid/trace"
)

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := trace.Summarize(d)
	if s.N != 100 || s.P50 != 50*time.Millisecond || s.P99 != 99*time.Millisecond || s.Max != 100*time.Millisecond {
		t.Errorf("%+v", s)
	}
	if s := trace.Summarize(nil); s.N != 0 {
		t.Errorf("%+v", s)
	}
	if s := trace.Summarize([]time.Duration{3}); s.P50 != 3 || s.P99 != 3 {
		t.Errorf("%+v", s)
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := loadTrace(t, "pr533-embedded.log").WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"XfrBlock 00A4040C", "DataBlock SW 6F01", "2.712s", "bStatus 01", "interrupt 50 02",
		"SlotStatus 02", "1.206ms", "latency p50 1.206ms p99 2.712s max 2.712s"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 5 {
		t.Errorf("%d lines:\n%s", n, out)
	}
}

func TestWriteSVG(t *testing.T) {
	var b bytes.Buffer
	if err := loadTrace(t, "pr533-embedded.log").WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	// Well-formed XML with two bars and one interrupt line.
	dec := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	rects, lines := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG not well-formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "rect":
				rects++
			case "line":
				for _, a := range se.Attr {
					if a.Name.Local == "stroke-dasharray" {
						lines++
					}
				}
			}
		}
	}
	if rects != 3 || lines != 1 { // background + 2 exchanges
		t.Errorf("%d rects, %d interrupt lines", rects, lines)
	}
	if !strings.Contains(b.String(), "#d94a4a") {
		t.Error("the 6F01 exchange is not drawn as a fault")
	}
}

func TestCompare(t *testing.T) {
	rec := loadTrace(t, "pr533-desktop.log")
	// The host's log of a replay: other bSeq, a GetSlotStatus in between, delays 1 ms longer and 2 ms shorter.
	replay := `00000010 -> lun: 0, 6F 0C 00 00 00 00 02 00 00 00 00 A4 04 0C 07 A0 00 00 02 47 10 01
00079174 <- lun: 0, 80 02 00 00 00 00 02 00 00 00 90 00
00000010 -> lun: 0, 65 00 00 00 00 00 03 00 00 00
00000100 <- lun: 0, 81 00 00 00 00 00 03 00 00 00
00000010 -> lun: 0, 6F 07 00 00 00 00 04 00 00 00 00 A4 02 0C 02 01 1E
00015077 <- lun: 0, 80 02 00 00 00 00 04 00 00 00 69 82
`
	rep, err := trace.Parse(strings.NewReader(replay))
	if err != nil {
		t.Fatal(err)
	}
	pairs := trace.Compare(rec, rep)
	if len(pairs) != 2 || pairs[0].Replayed-pairs[0].Recorded != time.Millisecond || pairs[1].Replayed-pairs[1].Recorded != -2*time.Millisecond {
		t.Fatalf("%+v", pairs)
	}
	var b bytes.Buffer
	trace.WriteComparison(&b, rec, rep)
	if !strings.Contains(b.String(), "2 of 2 recorded exchanges found in the replay; |replayed − recorded| p50 1.000ms p99 2.000ms max 2.000ms") {
		t.Errorf("%s", b.String())
	}
}
