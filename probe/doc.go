// Package probe is the host side of hardware-in-the-loop testing: it finds CCID interfaces in raw USB
// descriptors, explains their CCID class descriptor field by field, runs a conformance check against a reader
// (ours or anyone's) and measures APDU latency and bulk throughput.
//
// It talks to the reader through Device, a small interface over one claimed USB interface (bulk-OUT, bulk-IN,
// interrupt-IN, control requests, clear halt). It is not a USB stack: cmd/ccid-probe implements Device with
// libusb (gousb), and the tests implement it over an in-memory ccid.Reader that splits its answers into USB
// packets. Nor is it a PC/SC driver: it sends CCID messages itself, as libccid and GnuPG's scdaemon would, and
// judges the answers by the rules those two hosts enforce (research note ccid-host-stack.md §2, §3, §7).
package probe
