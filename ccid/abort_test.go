package ccid_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// expiryLog signals the bSeq of every abort that expires.
type expiryLog struct {
	slog.Handler
	expired chan byte
}

func (expiryLog) Enabled(context.Context, slog.Level) bool { return true }

func (h expiryLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "abort expired") {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "seq" {
				h.expired <- byte(a.Value.Uint64())
			}
			return true
		})
	}
	return nil
}

// noTimer checks that no reader goroutine waits on the manual clock: a tick finds no taker. It waits a short
// while for the negative answer; a timer that is armed takes the tick at once and fails the test.
func noTimer(h *harness) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, 50*time.Millisecond)
	defer cancel()
	if err := h.clock.Tick(ctx); err == nil {
		h.t.Error("a timer was armed: the half-paired abort would expire")
	}
}

// expire fires the abort timer and waits until abort seq has expired.
func expire(h *harness, expired <-chan byte, seq byte) {
	h.t.Helper()
	if err := h.clock.Tick(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	select {
	case got := <-expired:
		if got != seq {
			h.t.Errorf("abort %d expired, want %d", got, seq)
		}
	case <-h.ctx.Done():
		h.t.Fatal("abort did not expire")
	}
}

// TestAbortPairTimeout: a PC_to_RDR_Abort whose ABORT class request never comes expires after
// Config.AbortPairTimeout (the manual clock's tick), and the slot answers normally again; an ABORT class
// request that comes first does not expire, nor does anything with a negative timeout.
func TestAbortPairTimeout(t *testing.T) {
	aborted := func(seq byte) want { return want{ccid.MsgSlotStatus, 0, seq, 0x40, ccid.CmdAborted, 0, nil} }
	normal := func(seq byte) want { return want{ccid.MsgSlotStatus, 0, seq, 0x00, 0, 0, nil} }
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		run     func(h *harness, expired <-chan byte)
	}{
		{"bulk first expires", 0, func(h *harness, expired <-chan byte) {
			h.check(h.exchange(ccid.NewAbort(0, 6)), normal(6)) // answered at once, as a completed abort is
			h.check(h.exchange(ccid.NewGetSlotStatus(0, 7)), aborted(7))
			expire(h, expired, 6)
			h.check(h.exchange(ccid.NewGetSlotStatus(0, 8)), normal(8))
			h.r.Abort(0, 6) // the late control half of the expired abort: ignored
			h.check(h.exchange(ccid.NewGetSlotStatus(0, 9)), normal(9))
			h.check(h.exchange(ccid.NewXfrBlock(0, 10, 0, 0, []byte{1})), want{ccid.MsgDataBlock, 0, 10, 0, 0, 0, []byte{1, 0x90, 0}})
		}},
		{"bulk first paired in time", 0, func(h *harness, expired <-chan byte) {
			h.check(h.exchange(ccid.NewAbort(0, 6)), normal(6))
			h.r.Abort(0, 6)
			h.check(h.exchange(ccid.NewGetSlotStatus(0, 7)), normal(7))
			noTimer(h) // disarmed
			// A new control half with the same bSeq is a new abort, not the late half of an expired one.
			h.r.Abort(0, 6)
			h.check(h.exchange(ccid.NewGetSlotStatus(0, 8)), aborted(8))
			h.check(h.exchange(ccid.NewAbort(0, 6)), normal(6))
		}},
		{"control first waits for its bulk half", 0, func(h *harness, expired <-chan byte) {
			h.r.Abort(0, 6)
			h.check(h.exchange(ccid.NewGetSlotStatus(0, 7)), aborted(7))
			noTimer(h)
			h.check(h.exchange(ccid.NewGetSlotStatus(0, 8)), aborted(8))
			h.check(h.exchange(ccid.NewAbort(0, 6)), normal(6))
			h.check(h.exchange(ccid.NewGetSlotStatus(0, 9)), normal(9))
		}},
		{"control half replaced by a bulk half expires", 0, func(h *harness, expired <-chan byte) {
			h.r.Abort(0, 5)
			h.check(h.exchange(ccid.NewAbort(0, 6)), normal(6)) // bSeq differs: a new, bulk-first abort
			expire(h, expired, 6)
			h.check(h.exchange(ccid.NewGetSlotStatus(0, 7)), normal(7))
		}},
		{"negative timeout: never", -1, func(h *harness, expired <-chan byte) {
			h.check(h.exchange(ccid.NewAbort(0, 6)), normal(6))
			noTimer(h)
			h.check(h.exchange(ccid.NewGetSlotStatus(0, 7)), aborted(7))
			h.r.Abort(0, 6)
			h.check(h.exchange(ccid.NewGetSlotStatus(0, 8)), normal(8))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expired := make(chan byte, 4)
			h := newHarness(t, func(c *ccid.Config) {
				c.AbortPairTimeout = tc.timeout
				c.Logger = slog.New(expiryLog{Handler: slog.DiscardHandler, expired: expired})
			})
			h.powerOn()
			tc.run(h, expired)
			if len(expired) != 0 {
				t.Errorf("unexpected expiry of abort %d", <-expired)
			}
		})
	}
}
