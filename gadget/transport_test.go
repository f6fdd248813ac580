package gadget

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"syscall"
	"testing"
)

// frame builds a PC_to_RDR_XfrBlock with n bytes of abData.
func frame(seq byte, n int) []byte {
	f := make([]byte, 10+n)
	f[0] = 0x6F
	binary.LittleEndian.PutUint32(f[1:], uint32(n))
	f[6] = seq
	for i := range n {
		f[10+i] = byte(i)
	}
	return f
}

func newTestTransport(t testing.TB, mps int, max uint32) (*transport, *fakeEP, *fakeEP) {
	in := newFakeEP(t, "ep1", mps, make(chan struct{}))
	out := newFakeEP(t, "ep2", mps, make(chan struct{}))
	tr, err := newTransport(in, out, max, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr, in, out
}

func TestReadFrameReassembly(t *testing.T) {
	for _, mps := range []int{64, 512} {
		for _, n := range []int{0, 1, 54, 64 - 10, 64 - 9, 128 - 10, 500, 512 - 10, 512, 1024 - 10, 2048} {
			tr, _, out := newTestTransport(t, mps, 2058)
			want := frame(byte(n), n)
			out.send(want)
			next := frame(0xEE, 3)
			out.send(next) // the following message must not be eaten, whatever the first one's length
			got, err := tr.ReadFrame(context.Background())
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("mps %d len %d: got %d bytes, %v", mps, len(want), len(got), err)
			}
			if wantReads := (len(want) + mps - 1) / mps; out.reads != wantReads {
				t.Errorf("mps %d len %d: %d reads, want %d (one per packet, no waiting for a ZLP)", mps, len(want), out.reads, wantReads)
			}
			if got, _ := tr.ReadFrame(context.Background()); !bytes.Equal(got, next) {
				t.Fatalf("mps %d len %d: next frame = % x", mps, len(want), got)
			}
		}
	}
}

func TestReadFrameOddTransfers(t *testing.T) {
	tr, _, out := newTestTransport(t, 64, 200)
	ctx := context.Background()

	// A ZLP (from a host that sends them) and a runt packet are dropped.
	out.packets <- packet{data: nil}
	out.packets <- packet{data: []byte{0x65, 0, 0}}
	good := frame(1, 0)
	out.send(good)
	if got, err := tr.ReadFrame(ctx); err != nil || !bytes.Equal(got, good) {
		t.Fatalf("after ZLP and runt: % x, %v", got, err)
	}

	// A transfer that ends early (short packet) comes back as sent, shorter than its dwLength, and the next
	// transfer is intact.
	short := frame(2, 100)[:70]
	out.packets <- packet{data: short[:64]}
	out.packets <- packet{data: short[64:]}
	out.send(good)
	if got, _ := tr.ReadFrame(ctx); !bytes.Equal(got, short) {
		t.Fatalf("short transfer: % x", got)
	}
	if got, _ := tr.ReadFrame(ctx); !bytes.Equal(got, good) {
		t.Fatalf("after short transfer: % x", got)
	}

	// A message longer than dwMaxCCIDMessageLength is read to its end and cut at that length.
	big := frame(3, 300)
	out.send(big)
	out.send(good)
	if got, _ := tr.ReadFrame(ctx); !bytes.Equal(got, big[:200]) {
		t.Fatalf("oversized: %d bytes", len(got))
	}
	if got, _ := tr.ReadFrame(ctx); !bytes.Equal(got, good) {
		t.Fatalf("after oversized: % x", got)
	}

	// A message whose header claims more than it carries, followed by a full packet of the next one: reading
	// stops at the short packet.
	lie := frame(4, 10)
	binary.LittleEndian.PutUint32(lie[1:], 1000)
	out.send(lie)
	out.send(good)
	if got, _ := tr.ReadFrame(ctx); !bytes.Equal(got, lie) {
		t.Fatalf("lying header: % x", got)
	}
	if got, _ := tr.ReadFrame(ctx); !bytes.Equal(got, good) {
		t.Fatalf("after lying header: % x", got)
	}
}

func TestReadFrameEINTR(t *testing.T) {
	// A one-packet read interrupted by a signal moved no data: it is repeated, nothing lost or doubled.
	tr, _, out := newTestTransport(t, 64, 2058)
	want := frame(5, 100)
	out.packets <- packet{err: syscall.EINTR}
	out.packets <- packet{data: want[:64]}
	out.packets <- packet{err: syscall.EINTR}
	out.packets <- packet{data: want[64:]}
	if got, err := tr.ReadFrame(context.Background()); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got % x, %v", got, err)
	}
}

func TestReadFrameEnds(t *testing.T) {
	tr, _, out := newTestTransport(t, 64, 2058)
	close(out.disabled)
	if _, err := tr.ReadFrame(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("disabled endpoint: %v, want io.EOF", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tr.ReadFrame(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestWriteFrameZLP(t *testing.T) {
	for _, tt := range []struct {
		mps, n int
		zlp    bool
	}{{64, 10, false}, {64, 64, true}, {64, 65, false}, {64, 128, true}, {512, 64, false}, {512, 512, true},
		{512, 1024, true}, {512, 2058, false}} {
		tr, in, _ := newTestTransport(t, tt.mps, 2058)
		msg := frame(1, tt.n-10)
		if err := tr.WriteFrame(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
		if got := <-in.writes; !bytes.Equal(got, msg) {
			t.Fatalf("mps %d len %d: wrote % x", tt.mps, tt.n, got)
		}
		var zlp bool
		select {
		case w := <-in.writes:
			zlp = len(w) == 0
			if !zlp {
				t.Fatalf("unexpected second write % x", w)
			}
		default:
		}
		if zlp != tt.zlp {
			t.Errorf("mps %d len %d: ZLP %v, want %v", tt.mps, tt.n, zlp, tt.zlp)
		}
	}
}

// eintrEP fails every write with EINTR and counts the attempts.
type eintrEP struct {
	*fakeEP
	writes int
}

func (e *eintrEP) Write(p []byte) (int, error) { e.writes++; return 0, syscall.EINTR }

func TestWriteFrameEINTRNoReplay(t *testing.T) {
	in := &eintrEP{fakeEP: newFakeEP(t, "ep1", 64, make(chan struct{}))}
	tr, err := newTransport(in, newFakeEP(t, "ep2", 64, make(chan struct{})), 2058, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = tr.WriteFrame(context.Background(), frame(1, 5))
	if !errors.Is(err, ErrInterrupted) || in.writes != 1 {
		t.Fatalf("err %v after %d writes; want ErrInterrupted after exactly 1", err, in.writes)
	}
}

func TestWriteFrameDisabled(t *testing.T) {
	tr, in, _ := newTestTransport(t, 64, 2058)
	close(in.disabled)
	if err := tr.WriteFrame(context.Background(), frame(1, 0)); !errors.Is(err, io.EOF) {
		t.Fatalf("err = %v, want io.EOF", err)
	}
}

// FuzzReadFrame feeds arbitrary packet sequences: ReadFrame never panics, never returns more than the maximum,
// reads whole packets only, and, when the packets are well-formed messages, returns exactly those messages.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0x6F, 3, 0, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3}, uint8(0), uint16(64))
	f.Add(frame(1, 200), uint8(3), uint16(64))
	f.Add(frame(2, 600), uint8(1), uint16(512))
	f.Fuzz(func(t *testing.T, data []byte, cut uint8, mpsSeed uint16) {
		mps := 64
		if mpsSeed&1 == 1 {
			mps = 512
		}
		const max = 300
		tr, _, out := newTestTransport(t, mps, max)
		// Arbitrary packets: cut the data at a pseudo-random packet length ≤ mps.
		plen := int(cut)%mps + 1
		for rest := data; len(rest) > 0; {
			n := min(plen, len(rest))
			out.packets <- packet{data: rest[:n]}
			rest = rest[n:]
		}
		out.packets <- packet{err: syscall.ESHUTDOWN}
		for {
			got, err := tr.ReadFrame(context.Background())
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if len(got) < 10 || len(got) > max {
				t.Fatalf("frame of %d bytes", len(got))
			}
		}

		// Well-formed: the data as one message with a correct dwLength, sent as the host does.
		if len(data) > max-10 {
			data = data[:max-10]
		}
		msg := append(frame(9, 0), data...)
		binary.LittleEndian.PutUint32(msg[1:], uint32(len(data)))
		tr, _, out = newTestTransport(t, mps, max)
		out.send(msg)
		out.send(msg)
		for range 2 {
			if got, err := tr.ReadFrame(context.Background()); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("well-formed %d bytes: got % x, %v", len(msg), got, err)
			}
		}
	})
}

func BenchmarkReadWriteFrame(b *testing.B) {
	tr, in, out := newTestTransport(b, 512, 2058)
	msg := frame(1, 2048)
	ctx := context.Background()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		out.send(msg)
		got, err := tr.ReadFrame(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := tr.WriteFrame(ctx, got); err != nil {
			b.Fatal(err)
		}
		<-in.writes
	}
}
