package trace_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"github.com/ccidgadget/ccidgadget/ccid/trace"
)

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("testdata/pr533-embedded.log")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := trace.Parse(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecorder measures logging one XfrBlock round trip in the pcscd-log format.
func BenchmarkRecorder(b *testing.B) {
	rec := trace.NewRecorder(io.Discard, trace.RecordOptions{})
	ctx := context.Background()
	cmd := []byte{0x6F, 0x05, 0, 0, 0, 0, 1, 0, 0, 0, 0x00, 0xB0, 0x00, 0x00, 0x02}
	ans := []byte{0x80, 0x02, 0, 0, 0, 0, 1, 0, 0, 0, 0x90, 0x00}
	write := func([]byte) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		rec.Command(ctx, cmd)
		rec.Answer(ctx, ans, write)
	}
}
