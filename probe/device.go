package probe

import (
	"context"
	"errors"
	"fmt"
)

// Device is one claimed CCID interface of a USB device, seen from the host. Each call is one USB transfer;
// a context deadline is the transfer's timeout. Implementations wrap their errors so that errors.Is finds
// ErrTimeout, ErrStall or ErrOverflow where those apply.
type Device interface {
	// Info describes the device and the claimed interface.
	Info() Info
	// BulkOut sends p on the bulk-OUT endpoint as one transfer, with no ZLP (as libccid and GnuPG do).
	BulkOut(ctx context.Context, p []byte) error
	// BulkIn runs one bulk-IN transfer into p: it ends on a short packet (a ZLP included) or when p is full.
	// On a timeout it returns the bytes received so far with an error wrapping ErrTimeout.
	BulkIn(ctx context.Context, p []byte) (int, error)
	// InterruptIn runs one interrupt-IN transfer into p.
	InterruptIn(ctx context.Context, p []byte) (int, error)
	// Control runs a control transfer; data is sent (direction OUT) or filled (IN) as bit 7 of requestType says.
	Control(ctx context.Context, requestType, request byte, value, index uint16, data []byte) (int, error)
	// ClearHalt clears a halt on endpoint (libusb_clear_halt: CLEAR_FEATURE(ENDPOINT_HALT) and the host's data
	// toggle).
	ClearHalt(ctx context.Context, endpoint byte) error
}

// Errors a Device wraps.
var (
	ErrTimeout  = errors.New("probe: transfer timed out")
	ErrStall    = errors.New("probe: endpoint stalled")
	ErrOverflow = errors.New("probe: device sent more than the buffer holds")
	ErrBusy     = errors.New("probe: interface busy (claimed by another program)")
)

// Info describes a USB device and one of its CCID interfaces.
type Info struct {
	Bus          int    `json:"bus"`
	Address      int    `json:"address"`
	VendorID     uint16 `json:"idVendor"`
	ProductID    uint16 `json:"idProduct"`
	BcdDevice    uint16 `json:"bcdDevice"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Product      string `json:"product,omitempty"`
	Serial       string `json:"serial,omitempty"`
	// InterfaceName is the iInterface string (pcscd appends it to the reader name).
	InterfaceName string    `json:"interfaceName,omitempty"`
	Speed         string    `json:"speed,omitempty"`
	Config        byte      `json:"bConfigurationValue"`
	Interface     Interface `json:"interface"`
}

// ID returns VID:PID[:serial] as --device takes it.
func (i Info) ID() string {
	s := fmt.Sprintf("%04x:%04x", i.VendorID, i.ProductID)
	if i.Serial != "" {
		s += ":" + i.Serial
	}
	return s
}

// Selector picks devices by VID:PID[:serial], as --device takes it. Zero fields match anything.
type Selector struct {
	VendorID, ProductID uint16
	HasID               bool
	Serial              string
}

// ParseSelector parses "VID:PID" or "VID:PID:serial" (hex IDs); "" selects every device.
func ParseSelector(s string) (Selector, error) {
	if s == "" {
		return Selector{}, nil
	}
	var sel Selector
	var rest string
	n, _ := fmt.Sscanf(s, "%4x:%4x", &sel.VendorID, &sel.ProductID)
	if n != 2 {
		return Selector{}, fmt.Errorf("probe: device %q: want VID:PID or VID:PID:serial in hex", s)
	}
	if len(s) > 9 && s[9] == ':' {
		rest = s[10:]
	} else if len(s) != 9 {
		return Selector{}, fmt.Errorf("probe: device %q: want VID:PID or VID:PID:serial with 4 hex digits each", s)
	}
	if s[4] != ':' {
		return Selector{}, fmt.Errorf("probe: device %q: want VID:PID", s)
	}
	sel.HasID, sel.Serial = true, rest
	return sel, nil
}

// Match reports whether the selector picks a device with these IDs and serial number.
func (s Selector) Match(vid, pid uint16, serial string) bool {
	if !s.HasID {
		return true
	}
	return vid == s.VendorID && pid == s.ProductID && (s.Serial == "" || s.Serial == serial)
}
