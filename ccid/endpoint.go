package ccid

import "fmt"

// Endpoint names one of the endpoints of a CCID interface (CCID §3: bulk-OUT for commands, bulk-IN for
// answers, interrupt-IN for slot changes). Fault plans (package ccid/fault) name the endpoint a USB fault
// acts on, and the USB side (package gadget) executes it; both use this one type.
type Endpoint int

// The endpoints of a CCID interface.
const (
	EndpointBulkIn      Endpoint = iota // RDR_to_PC messages
	EndpointBulkOut                     // PC_to_RDR messages
	EndpointInterruptIn                 // RDR_to_PC_NotifySlotChange and RDR_to_PC_HardwareError
)

// String returns the name fault plans use: bulk-in, bulk-out or interrupt.
func (e Endpoint) String() string {
	switch e {
	case EndpointBulkIn:
		return "bulk-in"
	case EndpointBulkOut:
		return "bulk-out"
	case EndpointInterruptIn:
		return "interrupt"
	}
	return fmt.Sprintf("Endpoint(%d)", int(e))
}
