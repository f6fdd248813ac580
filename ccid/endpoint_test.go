package ccid_test

import (
	"testing"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// TestEndpointString: the names are the ones fault plans use (halt bulk-in ...) and logs show.
func TestEndpointString(t *testing.T) {
	for _, tc := range []struct {
		ep   ccid.Endpoint
		want string
	}{
		{ccid.EndpointBulkIn, "bulk-in"},
		{ccid.EndpointBulkOut, "bulk-out"},
		{ccid.EndpointInterruptIn, "interrupt"},
		{ccid.Endpoint(7), "Endpoint(7)"},
	} {
		if got := tc.ep.String(); got != tc.want {
			t.Errorf("%d: %q, want %q", int(tc.ep), got, tc.want)
		}
	}
}
