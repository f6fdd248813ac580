package fault

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// parseEndpoint reads the endpoint of a halt action.
func parseEndpoint(s string) (ccid.Endpoint, error) {
	switch strings.ToLower(s) {
	case "bulk-in", "in":
		return ccid.EndpointBulkIn, nil
	case "bulk-out", "out":
		return ccid.EndpointBulkOut, nil
	case "interrupt", "interrupt-in", "intr":
		return ccid.EndpointInterruptIn, nil
	}
	return 0, fmt.Errorf("endpoint %q: want bulk-in, bulk-out or interrupt", s)
}

// USB executes the faults that live below CCID frames. The gadget package implements it; an Injector without
// one logs those rules and skips them.
type USB interface {
	// SkipZLP makes the next bulk-IN frame whose length is a multiple of wMaxPacketSize go without its ZLP.
	SkipZLP()
	// StrayZLP sends a zero-length packet on bulk-IN now.
	StrayZLP(ctx context.Context) error
	// Halt stalls an endpoint (FunctionFS: a read on an IN file or a write on an OUT file).
	Halt(ep ccid.Endpoint) error
	// Disconnect detaches the gadget from the bus (unbinds the UDC) for d, then attaches it again.
	Disconnect(ctx context.Context, d time.Duration) error
	// Reenumerate makes the host enumerate the device again (soft disconnect and connect).
	Reenumerate(ctx context.Context) error
}
