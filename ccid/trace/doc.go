// Package trace reads, replays and writes CCID exchange traces.
//
// Parse reads a pcscd debug log (pcscd -f -d with LIBCCID_ifdLogLevel including 0x04) in every variant pcsc-lite
// and libccid print: the %.8d µs delta, the colour form with thread ids, a journald prefix, libccid ≤1.7
// "-> 000000 " and ≥1.8 "-> lun: 0, " frame lines, APDU/SW/Card ATR lines and NotifySlotChange/HardwareError
// lines. It pairs every PC_to_RDR frame with the RDR_to_PC frames that answered it and computes the latency as
// the sum of the deltas from the command line through the answer line (interleaved lines of other threads
// included), as PCSC-contrib's pcscd_perfs.py does.
//
// A Replayer (a ccid.Interceptor plus the ccid.Card it inserts) makes a ccid.Reader become the recorded
// reader; a Recorder writes the exchanges a Reader sees in the same pcscd-log format (so Parse reads it back)
// and, optionally, as a pcap file (LINKTYPE_USB_LINUX_MMAPPED) that Wireshark's USB CCID dissector decodes.
//
// # Replay
//
// Host commands are matched by content, ignoring bSeq and bSlot, in trace order; answers carry the live bSeq
// and bSlot. Each recorded answer frame (time extensions included) is written at its recorded delay after the
// command arrived. GetSlotStatus is never taken from the trace: the reader answers it from the slot's current
// state. Interrupt messages recorded after an exchange are applied at their recorded offset after its answer:
// "50 02" takes the card out of the reader (so GetSlotStatus then reports bmICCStatus 2 and the next XfrBlock
// fails with 0x42 FE), "50 03" puts it back, others are sent as recorded.
//
// A command the trace does not have follows --on-divergence:
//
//	fail  (default) answered as a mute card: bStatus 0x40|bmICCStatus, bError ICC_MUTE (0xFE)
//	card  handed to the live OpenPGP card and answered at once
//	mute  dropped: no answer; the host times out (libccid: SCARD_E_NOT_TRANSACTED)
//
// Commands other than XfrBlock that the trace lacks (IccPowerOn, GetParameters ...) are always answered by the
// reader itself; the ATR is the trace's "Card ATR:" line or recorded IccPowerOn answer, else the live card's.
//
// Mixed mode (Options.Mixed) takes timings and faults from the trace and content from the live card: the n-th
// XfrBlock of the host pairs with the next recorded XfrBlock whatever its bytes, and gets the live card's
// answer at the recorded delay, unless the recorded answer is a fault (bStatus or bError not 0, or SW1 0x6F or
// 0x64), which is sent as recorded. The notifications are replayed as in a plain replay.
//
// # Recording
//
// A Recorder writes the frames it sees as a pcscd debug log would (`00000066 -> 000000 6F 0C …` and
// `NotifySlotChange: 50 02`, the first column the µs since the previous line, from a monotonic clock). The
// secret bytes (IsSecretAPDU: the PINs of VERIFY, CHANGE REFERENCE DATA and RESET RETRY COUNTER, the resetting
// code and AES key of PUT DATA D3/D5, the private keys of PUT DATA DB 3FFF) are written as XX unless
// --record-secrets; the replayer's divergence log masks them the same way; Parse reads XX as a masked byte that matches any byte when the recording is replayed. A
// PcapWriter writes the same frames as usbmon URBs (bus 1, device 1, bulk-IN 0x81, bulk-OUT 0x02,
// interrupt-IN 0x83) after a GET_DESCRIPTOR(configuration) that declares interface class 0x0B, so Wireshark's
// usbccid dissector decodes the bulk frames without "Decode As" (Wireshark 4.0 shows interrupt messages as
// raw data). Compare pairs a trace with the host's log of its replay to measure timing fidelity.
//
// What the package is not: it does not capture USB (usbmon); it sees frames at the ccid.Reader's seam.
package trace
