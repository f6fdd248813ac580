// Package fault injects CCID reader faults on demand: a plain-text fault plan, parsed by Parse, executed by an
// Injector that sits in a ccid.Reader's Interceptor seam (every host frame and every device frame, time
// extensions and busy replies included, passes through it).
//
// It is not a USB stack: USB faults (ZLPs, halts, disconnects) are parsed here and executed through the USB
// interface, which the gadget package implements.
//
// # Fault plans
//
// One rule per line; "#" starts a comment. A rule is matchers, a colon, and one or more actions separated by
// semicolons, applied in the order written (delays in sequence, frame changes on the frame as changed so far):
//
//	MATCHER... : ACTION [ARGS...] [; ACTION [ARGS...]]...
//
// For every host command the rules are tried in order; the first whose matchers all hold and whose firing
// budget is not spent fires, and only that one. `ccid-gadget up --faults PLAN` reads the plan; SIGHUP reloads it
// atomically (no replug), restarting exchange numbers and budgets.
//
// Matchers (all must hold):
//
//	any                     every command
//	type=NAME               bMessageType: xfrblock, poweron, poweroff, getslotstatus, getparameters,
//	                        setparameters, resetparameters, escape, iccclock, t0apdu, secure, mechanical, abort,
//	                        setdatarateandclockfrequency, a spec name (PC_to_RDR_XfrBlock) or a number (0x6F)
//	apdu=HEX                XfrBlock whose abData is exactly HEX
//	apdu=HEX*               XfrBlock whose abData starts with HEX
//	apdu=VALUE/MASK         XfrBlock whose first bytes ANDed with MASK equal VALUE ANDed with MASK
//	slot=N                  bSlot
//	exchange=N, N-M, N-     the N-th host command since the plan was loaded (1-based), a range, N onwards
//	after=DUR, before=DUR   time since the slot's last IccPowerOn (never while unpowered); Go durations: 2.7s, 150ms
//	skip=N                  let the first N matching commands pass
//	once, times=N, always   firing budget (default always)
//
// Actions on the answer to the matched command (the card still runs the command unless the action says not):
//
//	delay DUR                        send the answer DUR late (no time extensions meanwhile)
//	wtx K [every DUR] [xM]           before the answer, K time-extension frames (bStatus 0x80, bError M,
//	                                 default 1) DUR apart (default 1s); the answer follows the last one
//	mute                             (alone in its rule) drop the command: no answer; the next command is served normally
//	mute forever                     drop this and every later command until the plan is reloaded
//	reply [icc=S] [cmd=C] [error=E] [status=0xNN] [data=HEX]
//	                                 replace the answer by a frame of the same type and bSeq: S is active,
//	                                 inactive, absent or 0..3 (bmICCStatus, default: the real one); C is ok,
//	                                 failed, wtx or 0..3 (bmCommandStatus; default failed when error= is given);
//	                                 E is a CCID §6.2.6 name (ICC_MUTE, CMD_ABORTED, CMD_SLOT_BUSY,
//	                                 XFR_PARITY_ERROR, XFR_OVERRUN, HW_ERROR, BAD_ATR_TS, BAD_ATR_TCK,
//	                                 ICC_PROTOCOL_NOT_SUPPORTED, ICC_CLASS_NOT_SUPPORTED, PROCEDURE_BYTE_CONFLICT,
//	                                 DEACTIVATED_PROTOCOL, BUSY_WITH_AUTO_SEQUENCE, PIN_TIMEOUT, PIN_CANCELLED,
//	                                 CMD_NOT_SUPPORTED) or a byte; status= sets the whole bStatus; data= the abData
//	sw XXXX [nodata]                 replace the status word of a DataBlock, keeping the card's data unless nodata
//	inactive                         report "present, inactive" (bmICCStatus 1) in the answer of a powered card
//	stale                            withhold the answer and send it just before the next answer: the host
//	                                 takes it as the answer to its next command
//	seq +N | seq -N | seq =0xNN      wrong bSeq
//	dup                              send the answer twice
//	type 0xNN                        wrong bMessageType
//	truncate N                       send only the first N bytes
//	pad N                            append N zero bytes, dwLength unchanged
//	oversize N                       append N bytes and count them in dwLength
//
// Actions on the slot, taken when the command arrives:
//
//	remove [in DUR]                  take the card out (NotifySlotChange 50 02); "in DUR" while the command runs
//	insert [in DUR]                  put the card back (50 03)
//	hwerror [CODE]                   RDR_to_PC_HardwareError with the command's bSeq (code default 1, overcurrent)
//	notify HEX                       any interrupt message, e.g. a spurious "notify 5003"
//
// USB actions, run through the gadget just before the answer:
//
//	usb skip-zlp                     no ZLP after this answer even if its length is a multiple of wMaxPacketSize
//	usb stray-zlp                    a zero-length packet before the answer
//	usb halt bulk-in|bulk-out|interrupt   stall the endpoint (the answer is dropped for bulk-in)
//	usb disconnect DUR               unbind from the bus for DUR, then reconnect (answer dropped)
//	usb reenumerate                  soft-disconnect and connect again (answer dropped)
//
// Examples:
//
//	# The PR533 on the embedded board: 2.7 s, then SW 6F01 with "present, inactive", then the card is gone.
//	apdu=00A4040C07A0000002471001 once: delay 2.7s; reply status=0x01 data=6F01; remove in 2.8s
//	# A time-extension storm: pcscd waits 20 s, then gets the answer.
//	apdu=0047* : wtx 20 every 1s
//	# A mute card after 30 s of power.
//	type=xfrblock after=30s once: mute
//	# Desynchronise the host: the answer to GET DATA arrives one command late.
//	apdu=00CA* once: stale
//	# Every VERIFY answered 6983 (blocked) without data.
//	apdu=0020/FFFF : sw 6983 nodata
package fault
