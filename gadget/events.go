package gadget

import (
	"encoding/binary"
	"fmt"
)

// EventType is the type of a FunctionFS ep0 event (enum usb_functionfs_event_type).
type EventType uint8

// FunctionFS event types, in the kernel's order.
const (
	EventBind    EventType = 0 // the UDC bound the function
	EventUnbind  EventType = 1 // the function was unbound (UDC cleared, daemon must reload to bind again)
	EventEnable  EventType = 2 // SET_CONFIGURATION or SET_INTERFACE: endpoints (re)enabled
	EventDisable EventType = 3 // reset, disconnect or deconfiguration: endpoints disabled
	EventSetup   EventType = 4 // a control request for our interface
	EventSuspend EventType = 5
	EventResume  EventType = 6
)

func (t EventType) String() string {
	names := [...]string{"BIND", "UNBIND", "ENABLE", "DISABLE", "SETUP", "SUSPEND", "RESUME"}
	if int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprintf("EVENT(%d)", uint8(t))
}

// eventSize is sizeof(struct usb_functionfs_event): an 8-byte usb_ctrlrequest, the type and 3 pad bytes.
const eventSize = 12

// Setup is a USB control request (USB 2.0 §9.3, struct usb_ctrlrequest). Index is function-local.
type Setup struct {
	RequestType uint8
	Request     uint8
	Value       uint16
	Index       uint16
	Length      uint16
}

// In reports whether the request's data stage goes device-to-host.
func (s Setup) In() bool { return s.RequestType&0x80 != 0 }

func (s Setup) String() string {
	return fmt.Sprintf("%02x %02x wValue=%04x wIndex=%04x wLength=%d", s.RequestType, s.Request, s.Value, s.Index, s.Length)
}

// Event is one FunctionFS ep0 event.
type Event struct {
	Type  EventType
	Setup Setup // for EventSetup
}

// parseEvents splits what read(ep0) returned into events. A length that is not a multiple of 12 is an error.
func parseEvents(b []byte) ([]Event, error) {
	if len(b)%eventSize != 0 {
		return nil, fmt.Errorf("gadget: ep0 returned %d bytes, not a whole number of %d-byte events", len(b), eventSize)
	}
	evs := make([]Event, 0, len(b)/eventSize)
	for ; len(b) > 0; b = b[eventSize:] {
		evs = append(evs, Event{
			Type: EventType(b[8]),
			Setup: Setup{
				RequestType: b[0],
				Request:     b[1],
				Value:       binary.LittleEndian.Uint16(b[2:]),
				Index:       binary.LittleEndian.Uint16(b[4:]),
				Length:      binary.LittleEndian.Uint16(b[6:]),
			},
		})
	}
	return evs, nil
}

// CCID class requests (CCID 1.1 §5.3).
const (
	reqTypeClassOut = 0x21 // host-to-device, class, interface
	reqTypeClassIn  = 0xA1 // device-to-host, class, interface
	reqAbort        = 0x01 // ABORT: wValue = bSeq<<8 | bSlot
	reqGetClocks    = 0x02 // GET_CLOCK_FREQUENCIES: dwords, kHz
	reqGetDataRates = 0x03 // GET_DATA_RATES: dwords, bps
)
