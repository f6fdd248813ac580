package probe

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

func verdicts(rep Report) map[string]Result {
	m := map[string]Result{}
	for _, r := range rep.Results {
		m[r.ID] = r
	}
	return m
}

func runChecks(t *testing.T, u *usbReader, opts Options) map[string]Result {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep := Run(ctx, u, opts)
	if len(rep.Results) != len(CheckIDs()) {
		t.Fatalf("%d results, want %d", len(rep.Results), len(CheckIDs()))
	}
	return verdicts(rep)
}

func TestRunAgainstOurReader(t *testing.T) {
	u := newUSBReader(t, ccid.DefaultDescriptor(), nil, 0)
	res := runChecks(t, u, Options{})
	wantNA := map[string]bool{"time-extension": true, "abort-in-flight": true, "notify-slot-change": true}
	for _, id := range CheckIDs() {
		r := res[id]
		want := Pass
		if wantNA[id] {
			want = NotApplicable
		}
		if r.Verdict != want {
			t.Errorf("%s: %s (%s), want %s; evidence:\n%s", id, r.Verdict, r.Detail, want, evidence(r))
		}
	}
	if testing.Verbose() {
		for _, id := range CheckIDs() {
			t.Logf("%-22s %-4s %s", id, res[id].Verdict, res[id].Detail)
		}
	}
}

func evidence(r Result) string {
	var s []string
	for _, f := range r.Evidence {
		s = append(s, "  "+f.String())
	}
	return strings.Join(s, "\n")
}

// Each fault breaks one behaviour of an otherwise good reader; the matching check must fail, and the report
// must not pass.
func TestEachCheckCanFail(t *testing.T) {
	tests := []struct {
		name  string
		setup func(u *usbReader)
		desc  func(d *ccid.ClassDescriptor)
		fails []string
	}{
		{
			name:  "missing ZLP",
			setup: func(u *usbReader) { u.noZLP = true },
			fails: []string{"zlp"},
		},
		{
			name: "wrong bSeq on Parameters",
			setup: func(u *usbReader) {
				u.mutate = func(f []byte) []byte {
					if f[0] == byte(ccid.MsgParameters) {
						f[6]++
					}
					return f
				}
			},
			fails: []string{"get-parameters", "set-parameters", "bseq-echo"},
		},
		{
			name: "wrong bSeq on RDR_to_PC_Escape",
			setup: func(u *usbReader) {
				u.mutate = func(f []byte) []byte {
					if f[0] == byte(ccid.MsgEscapeResponse) {
						f[6] ^= 0x80
					}
					return f
				}
			},
			fails: []string{"unsupported-commands", "bseq-echo"},
		},
		{
			name: "wrong response type for GetParameters",
			setup: func(u *usbReader) {
				u.mutate = func(f []byte) []byte {
					if f[0] == byte(ccid.MsgParameters) {
						f[0] = byte(ccid.MsgSlotStatus)
					}
					return f
				}
			},
			fails: []string{"get-parameters", "set-parameters"},
		},
		{
			name: "unsupported command answered with bError 0x01",
			setup: func(u *usbReader) {
				u.mutate = func(f []byte) []byte {
					if f[0] == byte(ccid.MsgDataRateAndClockFrequency) && f[7]&0x40 != 0 {
						f[8] = 0x01
					}
					return f
				}
			},
			fails: []string{"unsupported-commands"},
		},
		{
			name: "wrong slot answered with bError 0xFE",
			setup: func(u *usbReader) {
				u.mutate = func(f []byte) []byte {
					if f[5] == 1 {
						f[8] = 0xFE
					}
					return f
				}
			},
			fails: []string{"wrong-slot"},
		},
		{
			name: "ATR with a bad TCK",
			setup: func(u *usbReader) {
				u.mutate = func(f []byte) []byte {
					if f[0] == byte(ccid.MsgDataBlock) && len(f) == 10+len(ccidOpenPGPATR) && f[10] == 0x3B {
						f[len(f)-1] ^= 1
					}
					return f
				}
			},
			fails: []string{"power-on"},
		},
		{
			name: "intermediate command block answered with data",
			setup: func(u *usbReader) {
				u.mutate = func(f []byte) []byte {
					if f[0] == byte(ccid.MsgDataBlock) && f[9] == byte(ccid.ChainEmpty) {
						f = append(f, 0x00)
						f[1] = 1
					}
					return f
				}
			},
			fails: []string{"command-chaining"},
		},
		{
			name: "chained response marked single",
			setup: func(u *usbReader) {
				u.mutate = func(f []byte) []byte {
					if f[0] == byte(ccid.MsgDataBlock) && f[9] == byte(ccid.ChainBegin) {
						f[9] = 0
					}
					return f
				}
			},
			fails: []string{"response-chaining"},
		},
		{
			name: "first response block marked continue",
			setup: func(u *usbReader) {
				u.mutate = func(f []byte) []byte {
					if f[0] == byte(ccid.MsgDataBlock) && f[9] == byte(ccid.ChainBegin) {
						f[9] = byte(ccid.ChainContinue)
					}
					return f
				}
			},
			fails: []string{"response-chaining"},
		},
		{
			name:  "ABORT class request stalls",
			setup: func(u *usbReader) { u.refuseAbort = true },
			fails: []string{"abort-control-first", "abort-bulk-first"},
		},
		{
			name: "GET_DATA_RATES answers with none announced",
			setup: func(u *usbReader) {
				u.ctrl = func(req byte) ([]byte, error) { return []byte{0, 0x2A, 0, 0}, nil }
			},
			fails: []string{"descriptor.clocks-rates"},
		},
		{
			name: "PC_to_RDR_Abort answered with a failure",
			setup: func(u *usbReader) {
				u.mutate = func(f []byte) []byte {
					if u.lastCmd == ccid.MsgAbort {
						f[7] |= 0x40
					}
					return f
				}
			},
			fails: []string{"abort-control-first", "abort-bulk-first"},
		},
		{
			name: "PowerOff leaves the card active",
			setup: func(u *usbReader) {
				u.mutate = func(f []byte) []byte {
					if u.lastCmd == ccid.MsgIccPowerOff {
						f[7] &^= 3
					}
					return f
				}
			},
			fails: []string{"power-off"},
		},
		{
			name:  "SET_FEATURE(ENDPOINT_HALT) accepted but the endpoint does not stall",
			setup: func(u *usbReader) { u.ignoreSet = true },
			fails: []string{"halt-recovery"},
		},
		{
			name:  "endpoint stays halted after clear halt",
			setup: func(u *usbReader) { u.haltSticks = true },
			fails: []string{"halt-recovery"},
		},
		{
			name: "bSeq wrong on every SlotStatus",
			setup: func(u *usbReader) {
				u.mutate = func(f []byte) []byte {
					if f[0] == byte(ccid.MsgSlotStatus) {
						f[6]--
					}
					return f
				}
			},
			fails: []string{"slot-status", "bseq-echo"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := ccid.DefaultDescriptor()
			if tc.desc != nil {
				tc.desc(&d)
			}
			u := newUSBReader(t, d, nil, 0)
			if tc.setup != nil {
				u.set(tc.setup)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			rep := Run(ctx, u, Options{Timeout: 300 * time.Millisecond})
			res := verdicts(rep)
			if rep.Passed {
				t.Errorf("report passed")
			}
			for _, id := range tc.fails {
				if res[id].Verdict != Fail {
					t.Errorf("%s: %s (%s), want fail", id, res[id].Verdict, res[id].Detail)
				}
			}
			for id, r := range res {
				if r.Verdict == Fail && !contains(tc.fails, id) {
					t.Logf("also failed: %s: %s", id, r.Detail)
				}
			}
		})
	}
}

var ccidOpenPGPATR = []byte{0x3B, 0xDA, 0x18, 0xFF, 0x81, 0xB1, 0xFE, 0x75, 0x1F, 0x03, 0x00, 0x31, 0xC5, 0x73, 0xC0,
	0x01, 0x40, 0x00, 0x90, 0x00, 0x0C}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// slowCard makes the reader's card block on slow until the reader has sent wtx time extensions for it.
func slowCard(u *usbReader, slow []byte, wtx int) {
	release := make(chan struct{})
	var sent int
	u.card.Respond(func(c []byte) []byte {
		switch {
		case bytes.Equal(c, slow):
			<-release
			return []byte{0x7F, 0x49, 0x00, 0x90, 0x00}
		case c[1] == 0x20 || c[1] == 0xDA:
			return []byte{0x90, 0x00}
		}
		return openPGPCard(c)
	})
	prev := u.mutate
	u.mutate = func(f []byte) []byte {
		if f[7]&0xC0 == 0x80 {
			if sent++; sent == wtx {
				close(release)
			}
		}
		if prev != nil {
			return prev(f)
		}
		return f
	}
}

var (
	verifyPW3 = []byte{0x00, 0x20, 0x00, 0x83, 0x08, '1', '2', '3', '4', '5', '6', '7', '8'}
	keygen    = []byte{0x00, 0x47, 0x80, 0x00, 0x00, 0x00, 0x02, 0xA4, 0x00, 0x00, 0x00}
)

func TestTimeExtension(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(f []byte) []byte
		want   Verdict
	}{
		{"good", nil, Pass},
		{"wrong bSeq in a time extension", func(f []byte) []byte {
			if f[7]&0xC0 == 0x80 {
				f[6]++
			}
			return f
		}, Fail},
		{"bStatus 0x81", func(f []byte) []byte {
			if f[7]&0xC0 == 0x80 {
				f[7] = 0x81
			}
			return f
		}, Fail},
		{"multiplier 0", func(f []byte) []byte {
			if f[7]&0xC0 == 0x80 {
				f[8] = 0
			}
			return f
		}, Fail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newUSBReader(t, ccid.DefaultDescriptor(), nil, 5*time.Millisecond)
			u.set(func(u *usbReader) {
				u.mutate = tc.mutate
				slowCard(u, keygen, 3)
			})
			res := runChecks(t, u, Options{SlowAPDUs: [][]byte{verifyPW3, keygen}})
			if r := res["time-extension"]; r.Verdict != tc.want {
				t.Errorf("time-extension: %s (%s), want %s\n%s", r.Verdict, r.Detail, tc.want, evidence(r))
			}
		})
	}
}

func TestTimeExtensionSetupMustSucceed(t *testing.T) {
	u := newUSBReader(t, ccid.DefaultDescriptor(), nil, 0)
	res := runChecks(t, u, Options{SlowAPDUs: [][]byte{{0x00, 0x20, 0x00, 0x83, 0x01, '1'}, keygen}})
	if r := res["time-extension"]; r.Verdict != Fail || !strings.Contains(r.Detail, "6D00") {
		t.Errorf("time-extension: %s (%s), want a failed setup APDU", r.Verdict, r.Detail)
	}
}

func TestNotifySlotChange(t *testing.T) {
	for _, drop := range []bool{false, true} {
		t.Run(fmt.Sprintf("drop=%v", drop), func(t *testing.T) {
			u := newUSBReader(t, ccid.DefaultDescriptor(), nil, 0)
			var prompts []string
			opts := Options{NotifyWait: 2 * time.Second, Prompt: func(msg string) {
				prompts = append(prompts, msg)
				u.set(func(u *usbReader) { u.dropNotify = drop })
				var err error
				if strings.HasPrefix(msg, "remove") {
					err = u.reader.Remove(0)
				} else {
					err = u.reader.Insert(0, u.card)
				}
				if err != nil {
					t.Error(err)
				}
			}}
			if drop {
				opts.NotifyWait = 100 * time.Millisecond
			}
			res := runChecks(t, u, opts)
			want := Pass
			if drop {
				want = Fail
			}
			if r := res["notify-slot-change"]; r.Verdict != want {
				t.Errorf("notify-slot-change: %s (%s), want %s\n%s", r.Verdict, r.Detail, want, evidence(r))
			}
			if !drop && len(prompts) != 2 {
				t.Errorf("prompts %q, want remove and insert", prompts)
			}
		})
	}
}

// ctxCard answers like openPGPCard, except that the slow APDU waits: the first time until the test closes
// release, later times until the reader cancels it (host ABORT).
type ctxCard struct {
	slow    []byte
	release chan struct{}
	calls   atomic.Int32
}

func (c *ctxCard) PowerOn(context.Context) ([]byte, error) { return ccidOpenPGPATR, nil }
func (c *ctxCard) PowerOff() error                         { return nil }
func (c *ctxCard) Transmit(ctx context.Context, capdu []byte) ([]byte, error) {
	switch {
	case bytes.Equal(capdu, c.slow):
		if c.calls.Add(1) == 1 {
			<-c.release
			return []byte{0x90, 0x00}, nil
		}
		<-ctx.Done()
		return nil, ctx.Err()
	case capdu[1] == 0x20:
		return []byte{0x90, 0x00}, nil
	}
	return openPGPCard(capdu), nil
}

func TestAbortInFlight(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(f []byte) []byte
		want   Verdict
	}{
		{"good", nil, Pass},
		{"aborted command answered ICC_MUTE", func(f []byte) []byte {
			if f[0] == byte(ccid.MsgDataBlock) && f[7] == 0x40 && f[8] == 0xFF {
				f[8] = 0xFE
			}
			return f
		}, Fail},
		{"aborted command answered with another bSeq", func(f []byte) []byte {
			if f[0] == byte(ccid.MsgDataBlock) && f[7] == 0x40 && f[8] == 0xFF {
				f[6]++
			}
			return f
		}, Fail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &ctxCard{slow: keygen, release: make(chan struct{})}
			u := newUSBReaderCard(t, ccid.DefaultDescriptor(), nil, 5*time.Millisecond, c)
			var once sync.Once
			u.set(func(u *usbReader) {
				u.mutate = func(f []byte) []byte {
					if f[7]&0xC0 == 0x80 {
						once.Do(func() { close(c.release) })
					}
					if tc.mutate != nil {
						return tc.mutate(f)
					}
					return f
				}
			})
			res := runChecks(t, u, Options{SlowAPDUs: [][]byte{verifyPW3, keygen}})
			if r := res["time-extension"]; r.Verdict != Pass {
				t.Fatalf("time-extension: %s (%s)", r.Verdict, r.Detail)
			}
			if r := res["abort-in-flight"]; r.Verdict != tc.want {
				t.Errorf("abort-in-flight: %s (%s), want %s\n%s", r.Verdict, r.Detail, tc.want, evidence(r))
			}
		})
	}
}

// A reader that changes the slot only when a command arrives (a fault plan's remove/insert actions) is seen
// because the check polls GetSlotStatus while it waits, as pcscd does.
func TestNotifySlotChangeOnCommand(t *testing.T) {
	u := newUSBReader(t, ccid.DefaultDescriptor(), nil, 0)
	opts := Options{NotifyWait: 5 * time.Second, Prompt: func(msg string) {
		u.set(func(u *usbReader) {
			u.onCommand = func() {
				var err error
				if strings.HasPrefix(msg, "remove") {
					err = u.reader.Remove(0)
				} else {
					err = u.reader.Insert(0, u.card)
				}
				if err != nil {
					t.Error(err)
				}
			}
		})
	}}
	res := runChecks(t, u, opts)
	if r := res["notify-slot-change"]; r.Verdict != Pass {
		t.Errorf("notify-slot-change: %s (%s)\n%s", r.Verdict, r.Detail, evidence(r))
	}
}
