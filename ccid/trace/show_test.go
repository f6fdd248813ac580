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
