// Package ccid is the protocol engine of a USB CCID smart-card reader (USB CCID specification rev 1.1).
//
// It holds three things:
//
//   - the codec for every bulk message (PC_to_RDR_* commands, RDR_to_PC_* answers) and interrupt message
//     (RDR_to_PC_NotifySlotChange, RDR_to_PC_HardwareError), usable on the device side and by host-side tools;
//   - the 54-byte CCID class descriptor, built from a [ClassDescriptor] whose fields say what libccid 1.5 and
//     GnuPG's scdaemon do with them;
//   - a [Reader]: the slot state machine (absent, present-inactive, active), extended APDU exchange with command
//     and response chaining, time extension while a card works, ABORT, slot-busy answers, card insertion and
//     removal at run time.
//
// A Reader talks to the host through a [Transport] that carries whole CCID messages, and to cards through the
// [Card] interface. The package is not a USB stack: FunctionFS endpoints, descriptors other than the CCID class
// descriptor, control requests and ZLPs belong to the gadget package, which turns USB packets into whole frames,
// calls [Reader.Abort] for the ABORT class request and writes [Reader.Notifications] to the interrupt endpoint.
// Nor does it know any card application: OpenPGP lives behind the [Card] interface in package card.
//
// The reader works at the short+extended APDU level (dwFeatures 0x00040000), or at the short APDU level
// (0x00020000: one whole short APDU per XfrBlock, one answer per DataBlock; see [ClassDescriptor.Validate]), with
// automatic parameter negotiation (0x40), so hosts send whole APDUs and never a PPS; it offers the protocol T=1.
// Which APDUs the card behind it announces and accepts is the card's business (package card's
// Options.ShortAPDUOnly).
//
// Package ccidtest provides an in-memory Transport and a scriptable test Card for other packages' tests.
package ccid
