package fault_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/fault"
)

func TestParseRules(t *testing.T) {
	plan := `
# the PR533 on the embedded board
apdu=00A4040C07A0000002471001 once: reply status=0x01 data=6F01   # 2.7 s RF timeout
apdu=00A4* : delay 2.7s
exchange=3-5 slot=0 : wtx 20 every 1s x2
type=getslotstatus after=10s before=1m times=3: inactive
apdu=0020000000/FFFF00FF00 skip=2 : sw 6983 nodata
any: usb disconnect 5s
`
	p, err := fault.Parse(strings.NewReader(plan))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rules) != 6 {
		t.Fatalf("%d rules", len(p.Rules))
	}
	r := p.Rules
	if r[0].Line != 3 || r[0].Limit != 1 || r[0].Type != ccid.MsgXfrBlock || !r[0].APDUExact || r[0].Actions[0].Kind != fault.Reply ||
		r[0].Actions[0].Status != 0x01 || string(r[0].Actions[0].Data) != "\x6F\x01" {
		t.Errorf("rule 1 %+v", r[0])
	}
	if r[1].APDUExact || r[1].Actions[0].Duration != 2700*time.Millisecond || r[1].Limit != 0 {
		t.Errorf("rule 2 %+v", r[1])
	}
	if r[2].First != 3 || r[2].Last != 5 || r[2].Slot != 0 || r[2].Actions[0].Count != 20 || r[2].Actions[0].Byte != 2 || r[2].Actions[0].Duration != time.Second {
		t.Errorf("rule 3 %+v", r[2])
	}
	if r[3].Type != ccid.MsgGetSlotStatus || r[3].After != 10*time.Second || r[3].Before != time.Minute || r[3].Limit != 3 || !r[3].Powered {
		t.Errorf("rule 4 %+v", r[3])
	}
	if len(r[4].APDUMask) != 5 || r[4].Skip != 2 || !r[4].Actions[0].NoData || r[4].Actions[0].SW != [2]byte{0x69, 0x83} {
		t.Errorf("rule 5 %+v", r[4])
	}
	if r[5].Actions[0].Kind != fault.Disconnect || r[5].Actions[0].Duration != 5*time.Second {
		t.Errorf("rule 6 %+v", r[5])
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ plan, want string }{
		{"delay 1s", `line 1: want "MATCHERS: ACTION"`},
		{": delay 1s", "no matcher"},
		{"any:", "no action"},
		{"any: explode", `unknown action "explode"`},
		{"colour=red: mute", `unknown matcher "colour=red"`},
		{"apdu=0G: mute", "bad hex"},
		{"apdu=00A4/FF: mute", "value has 2 bytes, mask 1"},
		{"type=getslotstatus apdu=00: mute", "apdu= matches XfrBlock only"},
		{"type=nosuch: mute", "unknown message type"},
		{"exchange=5-3: mute", "empty range"},
		{"exchange=0: mute", "not positive"},
		{"after=-1s: mute", "negative duration"},
		{"times=0: mute", "not positive"},
		{"slot=16: mute", "outside 0..15"},
		{"any: delay", "takes 1 argument"},
		{"any: delay soon", "invalid duration"},
		{"any: wtx", "want a count"},
		{"any: wtx 3 every", `unexpected "every"`},
		{"any: wtx 3 x300", "not a byte"},
		{"any: mute sometimes", "mute takes nothing"},
		{"any: reply icc=sleepy", "not a byte"},
		{"any: reply cmd=4", "bmCommandStatus is 0..3"},
		{"any: reply error=NOPE", "not a byte"},
		{"any: reply colour=1", "unknown reply field"},
		{"any: sw 6F", "4 hex digits"},
		{"any: sw 6F01 please", "want nodata"},
		{"any: remove later", "takes nothing or"},
		{"any: notify 6102", "interrupt message"},
		{"any: seq 5", "want +N"},
		{"any: seq +300", "want +N or -N"},
		{"any: truncate -1", "outside 0..65536"},
		{"any: usb", "usb: want"},
		{"any: usb fly", "unknown usb action"},
		{"any: usb halt ep9", "want bulk-in"},
		{"any: stale now", "takes 0 argument"},
		{"any: mute\n\nany: bad\nany: worse", "line 3"},
		{"any: delay 1s;", "empty one"},
		{"any: mute; delay 1s", "mute cannot be combined"},
	} {
		_, err := fault.Parse(strings.NewReader(c.plan))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.plan, err, c.want)
		}
	}
	if _, err := fault.Parse(strings.NewReader("any: mute\n\nany: bad\nany: worse")); err == nil || !strings.Contains(err.Error(), "line 4") {
		t.Errorf("all bad lines reported: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"apdu=00A4* once: delay 2.7s", "exchange=3-: wtx 5 every 100ms x3", "any: reply icc=absent error=ICC_MUTE data=00",
		"type=poweron skip=1 times=2: sw 6F00 nodata", "after=1s before=2s: usb halt bulk-in", "# c\n\nany: seq -1",
		"apdu=00/FF: notify 5002", "slot=0: remove in 1s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := fault.Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, r := range p.Rules {
			if r.Line < 1 || len(r.Actions) == 0 || r.Actions[0].Kind == "" || r.Last != 0 && r.Last < r.First {
				t.Fatalf("bad rule %+v", r)
			}
		}
	})
}

// FuzzInjector feeds arbitrary host and device frames to an injector whose plan holds every answer-side
// action: no panic whatever the frames (short ones included).
func FuzzInjector(f *testing.F) {
	plan := `exchange=1: delay 1ms; wtx 2 every 1ms x3; reply icc=inactive error=ICC_MUTE data=6F01; sw 9000 nodata
exchange=2: truncate 3; seq +1; type 0x81; pad 2; oversize 3; inactive; dup
exchange=3: stale
exchange=4: usb halt bulk-in
any: truncate 0; sw 6F00; reply status=0xFF
`
	p, err := fault.Parse(strings.NewReader(plan))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{0x6F, 5, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xB0, 0, 0, 2}, []byte{0x80, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0x90, 0})
	f.Add([]byte{0x65, 0, 0, 0, 0, 0, 1, 0, 0, 0}, []byte{0x81, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, cmd, ans []byte) {
		inj := fault.NewInjector(p, fault.Options{Clock: &fakeClock{}, USB: &fakeUSB{}})
		ctx := context.Background()
		for k := 0; k < 6; k++ {
			c := bytes.Clone(cmd)
			if inj.Command(ctx, c) == nil {
				continue
			}
			a := bytes.Clone(ans)
			if len(a) > 6 && len(c) > 6 {
				a[5], a[6] = c[5], c[6]
			}
			_ = inj.Answer(ctx, a, func([]byte) error { return nil })
		}
		inj.Wait()
	})
}

// The examples in the package documentation (copied into README) parse.
func TestDocExamplesParse(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, examples, ok := strings.Cut(string(doc), "// Examples:\n")
	if !ok {
		t.Fatal("no Examples section")
	}
	var plan strings.Builder
	n := 0
	for _, line := range strings.Split(examples, "\n") {
		if l, ok := strings.CutPrefix(line, "//\t"); ok {
			plan.WriteString(l + "\n")
			if !strings.HasPrefix(l, "#") {
				n++
			}
		}
	}
	p, err := fault.Parse(strings.NewReader(plan.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rules) != n || n < 5 {
		t.Errorf("%d rules from %d example lines", len(p.Rules), n)
	}
}
