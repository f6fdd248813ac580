package fault_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ccidgadget/ccidgadget/ccid/fault"
)

// BenchmarkInjectorPass measures the cost a plan of ten non-matching rules adds to one XfrBlock round trip.
func BenchmarkInjectorPass(b *testing.B) {
	var plan strings.Builder
	for i := 0; i < 10; i++ {
		plan.WriteString("apdu=00DA* : delay 1s\n")
	}
	p, err := fault.Parse(strings.NewReader(plan.String()))
	if err != nil {
		b.Fatal(err)
	}
	inj := fault.NewInjector(p, fault.Options{})
	ctx := context.Background()
	cmd := h("6F 05000000 00 01 000000 00B0000002")
	ans := h(plain)
	ans[6] = 1
	write := func([]byte) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		inj.Command(ctx, cmd)
		inj.Answer(ctx, ans, write)
	}
}

func BenchmarkParse(b *testing.B) {
	text := strings.Repeat("apdu=00A4040C07A0000002471001 once: delay 2.7s; reply status=0x01 data=6F01; remove in 2.8s\n", 100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fault.Parse(strings.NewReader(text)); err != nil {
			b.Fatal(err)
		}
	}
}
