package ccid_test

import (
	"strings"
	"testing"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// A short-APDU-level descriptor is accepted when a whole short APDU fits in one message.
func TestShortAPDULevel(t *testing.T) {
	d := ccid.DefaultDescriptor()
	d.Features = d.Features&^ccid.FeatureLevelMask | ccid.FeatureLevelShortAPDU
	d.MaxCCIDMessageLength = 271
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	d.MaxCCIDMessageLength = 270
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "short APDU level needs 271") {
		t.Fatalf("err %v", err)
	}
}
