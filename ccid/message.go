package ccid

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderSize is the size of the header every bulk message starts with (CCID §6.1, §6.2).
const HeaderSize = 10

// MaxExtendedAPDU is the largest whole command or response APDU the reader accepts: CLA INS P1 P2, a 3-byte Lc,
// 65 535 data bytes and a 3-byte Le (the CCID_EXT_APDU_MAX of libccid and vsmartcard).
const MaxExtendedAPDU = 4 + 3 + 65535 + 3

// MessageType is bMessageType, byte 0 of every CCID message.
type MessageType byte

// Bulk-OUT messages, host to reader (CCID §6.1, Table 6.1-1).
const (
	MsgIccPowerOn                   MessageType = 0x62 // PC_to_RDR_IccPowerOn, §6.1.1
	MsgIccPowerOff                  MessageType = 0x63 // PC_to_RDR_IccPowerOff, §6.1.2
	MsgGetSlotStatus                MessageType = 0x65 // PC_to_RDR_GetSlotStatus, §6.1.3
	MsgXfrBlock                     MessageType = 0x6F // PC_to_RDR_XfrBlock, §6.1.4
	MsgGetParameters                MessageType = 0x6C // PC_to_RDR_GetParameters, §6.1.5
	MsgResetParameters              MessageType = 0x6D // PC_to_RDR_ResetParameters, §6.1.6
	MsgSetParameters                MessageType = 0x61 // PC_to_RDR_SetParameters, §6.1.7
	MsgEscape                       MessageType = 0x6B // PC_to_RDR_Escape, §6.1.8
	MsgIccClock                     MessageType = 0x6E // PC_to_RDR_IccClock, §6.1.9
	MsgT0APDU                       MessageType = 0x6A // PC_to_RDR_T0APDU, §6.1.10
	MsgSecure                       MessageType = 0x69 // PC_to_RDR_Secure, §6.1.11
	MsgMechanical                   MessageType = 0x71 // PC_to_RDR_Mechanical, §6.1.12
	MsgAbort                        MessageType = 0x72 // PC_to_RDR_Abort, §6.1.13
	MsgSetDataRateAndClockFrequency MessageType = 0x73 // PC_to_RDR_SetDataRateAndClockFrequency, §6.1.14
)

// Bulk-IN messages, reader to host (CCID §6.2, Table 6.2-1).
const (
	MsgDataBlock                 MessageType = 0x80 // RDR_to_PC_DataBlock, §6.2.1
	MsgSlotStatus                MessageType = 0x81 // RDR_to_PC_SlotStatus, §6.2.2
	MsgParameters                MessageType = 0x82 // RDR_to_PC_Parameters, §6.2.3
	MsgEscapeResponse            MessageType = 0x83 // RDR_to_PC_Escape, §6.2.4 (named apart from PC_to_RDR_Escape)
	MsgDataRateAndClockFrequency MessageType = 0x84 // RDR_to_PC_DataRateAndClockFrequency, §6.2.5
)

// Interrupt-IN messages, reader to host (CCID §6.3).
const (
	MsgNotifySlotChange MessageType = 0x50 // RDR_to_PC_NotifySlotChange, §6.3.1
	MsgHardwareError    MessageType = 0x51 // RDR_to_PC_HardwareError, §6.3.2
)

var messageNames = map[MessageType]string{
	MsgIccPowerOn: "PC_to_RDR_IccPowerOn", MsgIccPowerOff: "PC_to_RDR_IccPowerOff",
	MsgGetSlotStatus: "PC_to_RDR_GetSlotStatus", MsgXfrBlock: "PC_to_RDR_XfrBlock",
	MsgGetParameters: "PC_to_RDR_GetParameters", MsgResetParameters: "PC_to_RDR_ResetParameters",
	MsgSetParameters: "PC_to_RDR_SetParameters", MsgEscape: "PC_to_RDR_Escape", MsgIccClock: "PC_to_RDR_IccClock",
	MsgT0APDU: "PC_to_RDR_T0APDU", MsgSecure: "PC_to_RDR_Secure", MsgMechanical: "PC_to_RDR_Mechanical",
	MsgAbort: "PC_to_RDR_Abort", MsgSetDataRateAndClockFrequency: "PC_to_RDR_SetDataRateAndClockFrequency",
	MsgDataBlock: "RDR_to_PC_DataBlock", MsgSlotStatus: "RDR_to_PC_SlotStatus", MsgParameters: "RDR_to_PC_Parameters",
	MsgEscapeResponse: "RDR_to_PC_Escape", MsgDataRateAndClockFrequency: "RDR_to_PC_DataRateAndClockFrequency",
	MsgNotifySlotChange: "RDR_to_PC_NotifySlotChange", MsgHardwareError: "RDR_to_PC_HardwareError",
}

// String returns the spec name, such as "PC_to_RDR_XfrBlock".
func (t MessageType) String() string {
	if s, ok := messageNames[t]; ok {
		return s
	}
	return fmt.Sprintf("MessageType(0x%02X)", byte(t))
}

// IsCommand reports whether t is one of the 14 PC_to_RDR messages of CCID rev 1.1.
func (t MessageType) IsCommand() bool {
	_, ok := responseTypes[t]
	return ok
}

// responseTypes maps each command to its response type (CCID §6.1 tables; vsmartcard perform_unknown).
var responseTypes = map[MessageType]MessageType{
	MsgIccPowerOn: MsgDataBlock, MsgXfrBlock: MsgDataBlock, MsgSecure: MsgDataBlock,
	MsgIccPowerOff: MsgSlotStatus, MsgGetSlotStatus: MsgSlotStatus, MsgIccClock: MsgSlotStatus,
	MsgT0APDU: MsgSlotStatus, MsgMechanical: MsgSlotStatus, MsgAbort: MsgSlotStatus,
	MsgGetParameters: MsgParameters, MsgResetParameters: MsgParameters, MsgSetParameters: MsgParameters,
	MsgEscape:                       MsgEscapeResponse,
	MsgSetDataRateAndClockFrequency: MsgDataRateAndClockFrequency,
}

// ResponseType returns the RDR_to_PC message type that answers command t. An unknown bMessageType is answered
// with RDR_to_PC_SlotStatus.
func ResponseType(t MessageType) MessageType {
	if r, ok := responseTypes[t]; ok {
		return r
	}
	return MsgSlotStatus
}

// bmICCStatus, bits 1..0 of bStatus (CCID §6.2.6).
const (
	ICCActive   byte = 0 // an ICC is present and active
	ICCInactive byte = 1 // an ICC is present and inactive (not activated or shut down)
	ICCAbsent   byte = 2 // no ICC is present
)

// bmCommandStatus, bits 7..6 of bStatus (CCID §6.2.6), already shifted into place.
const (
	CommandOK            byte = 0x00 // processed without error
	CommandFailed        byte = 0x40 // failed; bError holds the reason
	CommandTimeExtension byte = 0x80 // time extension requested; bError holds the multiplier
)

// SlotError is bError when bmCommandStatus is failed (CCID §6.2.6, Table 6.2-2). Values 0x01..0x7F are the
// offset of the offending field in the command.
type SlotError byte

// Slot error codes (CCID §6.2.6).
const (
	CmdAborted               SlotError = 0xFF // CMD_ABORTED: the host aborted the command
	ICCMute                  SlotError = 0xFE // ICC_MUTE: no ICC, or it does not answer
	XfrParityError           SlotError = 0xFD // XFR_PARITY_ERROR
	XfrOverrun               SlotError = 0xFC // XFR_OVERRUN
	HWError                  SlotError = 0xFB // HW_ERROR
	BadATRTS                 SlotError = 0xF8 // BAD_ATR_TS
	BadATRTCK                SlotError = 0xF7 // BAD_ATR_TCK
	ICCProtocolNotSupported  SlotError = 0xF6 // ICC_PROTOCOL_NOT_SUPPORTED
	ICCClassNotSupported     SlotError = 0xF5 // ICC_CLASS_NOT_SUPPORTED
	ProcedureByteConflict    SlotError = 0xF4 // PROCEDURE_BYTE_CONFLICT
	DeactivatedProtocol      SlotError = 0xF3 // DEACTIVATED_PROTOCOL
	BusyWithAutoSequence     SlotError = 0xF2 // BUSY_WITH_AUTO_SEQUENCE
	PINTimeout               SlotError = 0xF0 // PIN_TIMEOUT
	PINCancelled             SlotError = 0xEF // PIN_CANCELLED
	CmdSlotBusy              SlotError = 0xE0 // CMD_SLOT_BUSY: another command is running on this slot
	CmdNotSupported          SlotError = 0x00 // CMD_NOT_SUPPORTED
	ErrOffsetDwLength        SlotError = 0x01 // bad dwLength
	ErrOffsetSlot            SlotError = 0x05 // bad bSlot
	ErrOffsetSpecific        SlotError = 0x07 // bad byte 7 (bPowerSelect, bProtocolNum, bClockCommand, ...)
	ErrOffsetLevelParameter  SlotError = 0x08 // bad wLevelParameter
	ErrOffsetFindexDindex    SlotError = 0x0A // bad bmFindexDindex
	ErrOffsetTCCKS           SlotError = 0x0B // bad bmTCCKST1
	ErrOffsetClockStop       SlotError = 0x0E // bad bClockStop
	ErrOffsetIFSC            SlotError = 0x0F // bad bIFSC
	ErrOffsetNad             SlotError = 0x10 // bad bNadValue
	errFirstUserDefinedError SlotError = 0x81
)

var slotErrorNames = map[SlotError]string{
	CmdAborted: "CMD_ABORTED", ICCMute: "ICC_MUTE", XfrParityError: "XFR_PARITY_ERROR", XfrOverrun: "XFR_OVERRUN",
	HWError: "HW_ERROR", BadATRTS: "BAD_ATR_TS", BadATRTCK: "BAD_ATR_TCK",
	ICCProtocolNotSupported: "ICC_PROTOCOL_NOT_SUPPORTED", ICCClassNotSupported: "ICC_CLASS_NOT_SUPPORTED",
	ProcedureByteConflict: "PROCEDURE_BYTE_CONFLICT", DeactivatedProtocol: "DEACTIVATED_PROTOCOL",
	BusyWithAutoSequence: "BUSY_WITH_AUTO_SEQUENCE", PINTimeout: "PIN_TIMEOUT", PINCancelled: "PIN_CANCELLED",
	CmdSlotBusy: "CMD_SLOT_BUSY", CmdNotSupported: "CMD_NOT_SUPPORTED",
}

// String returns the spec name, "bad field at offset N" or "user-defined error 0xNN".
func (e SlotError) String() string {
	if s, ok := slotErrorNames[e]; ok {
		return s
	}
	if e < 0x80 {
		return fmt.Sprintf("bad field at offset %d", byte(e))
	}
	if e >= errFirstUserDefinedError && e <= 0xC0 {
		return fmt.Sprintf("user-defined error 0x%02X", byte(e))
	}
	return fmt.Sprintf("SlotError(0x%02X)", byte(e))
}

// Chaining values of wLevelParameter (XfrBlock, APDU level) and bChainParameter (DataBlock), CCID §6.1.4 and §6.2.1.
const (
	ChainNone     uint16 = 0x0000 // the APDU begins and ends in this message
	ChainBegin    uint16 = 0x0001 // the APDU begins here and continues in the next message
	ChainEnd      uint16 = 0x0002 // this message continues and ends the APDU
	ChainContinue uint16 = 0x0003 // this message continues the APDU, which goes on in the next message
	ChainEmpty    uint16 = 0x0010 // empty abData: XfrBlock asks for the next response block, DataBlock for the next command block
)

// Protocol numbers (bProtocolNum).
const (
	ProtocolT0 byte = 0
	ProtocolT1 byte = 1
)

// ErrShortFrame is returned for a message shorter than its 10-byte header.
var ErrShortFrame = errors.New("ccid: message shorter than the 10-byte header")

// FrameError reports a malformed message. Offset is the header offset of the offending field (1 dwLength,
// 5 bSlot, 7 the first message-specific byte, 10 the first abData byte), which is also the bError a reader
// answers with (CCID §6.2.6).
type FrameError struct {
	Type   MessageType
	Offset int
	Reason string
}

// Error describes the malformed field.
func (e *FrameError) Error() string {
	return fmt.Sprintf("ccid: malformed %v: %s (offset %d)", e.Type, e.Reason, e.Offset)
}

// SlotError returns the bError that reports e to the host.
func (e *FrameError) SlotError() SlotError { return SlotError(e.Offset) }

// FrameLength returns HeaderSize+dwLength read from the first bytes of a bulk message. Transports use it to
// reassemble a bulk-OUT message from packets (hosts send no ZLP). It fails with ErrShortFrame if header holds
// fewer than 10 bytes.
func FrameLength(header []byte) (int, error) {
	if len(header) < HeaderSize {
		return 0, ErrShortFrame
	}
	n := binary.LittleEndian.Uint32(header[1:5])
	if uint64(n) > uint64(maxInt-HeaderSize) {
		return 0, &FrameError{Type: MessageType(header[0]), Offset: 1, Reason: fmt.Sprintf("dwLength %d too large", n)}
	}
	return HeaderSize + int(n), nil
}

const maxInt = int(^uint(0) >> 1)

// Message is one bulk message in either direction: the 10-byte header and abData.
//
// Param holds header bytes 7..9, whose meaning depends on Type; the accessor methods name them as the spec does.
type Message struct {
	Type  MessageType
	Slot  byte    // bSlot
	Seq   byte    // bSeq
	Param [3]byte // bytes 7, 8, 9
	Data  []byte  // abData; dwLength is len(Data)
}

// ParseMessage decodes one whole bulk message. It checks only the framing: at least 10 bytes, and dwLength
// equal to the number of bytes after the header (else a *FrameError with Offset 1). Data aliases b.
// Message.Check applies the per-command rules.
func ParseMessage(b []byte) (Message, error) {
	if len(b) < HeaderSize {
		return Message{}, ErrShortFrame
	}
	m := Message{Type: MessageType(b[0]), Slot: b[5], Seq: b[6], Param: [3]byte{b[7], b[8], b[9]}}
	n := binary.LittleEndian.Uint32(b[1:5])
	if uint64(n) != uint64(len(b)-HeaderSize) {
		return m, &FrameError{Type: m.Type, Offset: 1,
			Reason: fmt.Sprintf("dwLength %d but %d bytes follow the header", n, len(b)-HeaderSize)}
	}
	m.Data = b[HeaderSize:]
	return m, nil
}

// AppendBinary appends the encoded message to dst.
func (m Message) AppendBinary(dst []byte) ([]byte, error) {
	if uint64(len(m.Data)) > 0xFFFFFFFF {
		return dst, &FrameError{Type: m.Type, Offset: 1, Reason: "abData longer than 2^32-1"}
	}
	dst = appendHeader(dst, m.Type, uint32(len(m.Data)), m.Slot, m.Seq, m.Param)
	return append(dst, m.Data...), nil
}

// MarshalBinary returns the encoded message.
func (m Message) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, HeaderSize+len(m.Data)))
}

func appendHeader(dst []byte, t MessageType, n uint32, slot, seq byte, p [3]byte) []byte {
	return append(dst, byte(t), byte(n), byte(n>>8), byte(n>>16), byte(n>>24), slot, seq, p[0], p[1], p[2])
}

// String summarises the header for logs: type, bSlot, bSeq, bytes 7..9 and dwLength.
func (m Message) String() string {
	return fmt.Sprintf("%v slot=%d seq=%d param=% X len=%d", m.Type, m.Slot, m.Seq, m.Param[:], len(m.Data))
}

// PowerSelect is bPowerSelect of PC_to_RDR_IccPowerOn: 0 automatic, 1 5 V, 2 3 V, 3 1.8 V.
func (m Message) PowerSelect() byte { return m.Param[0] }

// BWI is bBWI of PC_to_RDR_XfrBlock and PC_to_RDR_Secure (block waiting time extension, TPDU T=1 only).
func (m Message) BWI() byte { return m.Param[0] }

// LevelParameter is wLevelParameter of PC_to_RDR_XfrBlock and PC_to_RDR_Secure (a Chain* value at APDU level).
func (m Message) LevelParameter() uint16 { return uint16(m.Param[1]) | uint16(m.Param[2])<<8 }

// ProtocolNum is bProtocolNum: byte 7 of PC_to_RDR_SetParameters, byte 9 of RDR_to_PC_Parameters.
func (m Message) ProtocolNum() byte {
	if m.Type == MsgParameters {
		return m.Param[2]
	}
	return m.Param[0]
}

// ClockCommand is bClockCommand of PC_to_RDR_IccClock: 0 restart the clock, 1 stop it.
func (m Message) ClockCommand() byte { return m.Param[0] }

// Changes is bmChanges of PC_to_RDR_T0APDU.
func (m Message) Changes() byte { return m.Param[0] }

// ClassGetResponse is bClassGetResponse of PC_to_RDR_T0APDU.
func (m Message) ClassGetResponse() byte { return m.Param[1] }

// ClassEnvelope is bClassEnvelope of PC_to_RDR_T0APDU.
func (m Message) ClassEnvelope() byte { return m.Param[2] }

// Function is bFunction of PC_to_RDR_Mechanical (1 accept, 2 eject, 3 capture, 4 lock, 5 unlock).
func (m Message) Function() byte { return m.Param[0] }

// Status is bStatus of a RDR_to_PC message.
func (m Message) Status() byte { return m.Param[0] }

// ICCStatus is bmICCStatus, bits 1..0 of bStatus.
func (m Message) ICCStatus() byte { return m.Param[0] & 0x03 }

// CommandStatus is bmCommandStatus, bits 7..6 of bStatus, in place (CommandOK, CommandFailed, CommandTimeExtension).
func (m Message) CommandStatus() byte { return m.Param[0] & 0xC0 }

// Error is bError of a RDR_to_PC message.
func (m Message) Error() SlotError { return SlotError(m.Param[1]) }

// ChainParameter is bChainParameter of RDR_to_PC_DataBlock.
func (m Message) ChainParameter() byte { return m.Param[2] }

// ClockStatus is bClockStatus of RDR_to_PC_SlotStatus: 0 running, 1 stopped low, 2 stopped high, 3 unknown.
func (m Message) ClockStatus() byte { return m.Param[2] }

// ClockFrequency is dwClockFrequency (kHz) of PC_to_RDR_SetDataRateAndClockFrequency and
// RDR_to_PC_DataRateAndClockFrequency; 0 if abData is shorter than 8 bytes.
func (m Message) ClockFrequency() uint32 {
	if len(m.Data) < 8 {
		return 0
	}
	return binary.LittleEndian.Uint32(m.Data[0:4])
}

// DataRate is dwDataRate (bps) of the same two messages; 0 if abData is shorter than 8 bytes.
func (m Message) DataRate() uint32 {
	if len(m.Data) < 8 {
		return 0
	}
	return binary.LittleEndian.Uint32(m.Data[4:8])
}

// Check applies the rules of CCID §6.1 for a command: abData length and the message-specific header bytes that
// have fixed or bounded values. It returns a *FrameError whose Offset is the bError to answer with. It does not
// check bSlot (that depends on the reader) nor commands this package does not define.
func (m Message) Check() error {
	bad := func(off int, reason string) error { return &FrameError{Type: m.Type, Offset: off, Reason: reason} }
	switch m.Type {
	case MsgIccPowerOn:
		if len(m.Data) != 0 {
			return bad(1, "dwLength must be 0")
		}
		if m.PowerSelect() > 3 {
			return bad(7, fmt.Sprintf("bPowerSelect %d", m.PowerSelect()))
		}
	case MsgIccPowerOff, MsgGetSlotStatus, MsgGetParameters, MsgResetParameters, MsgAbort:
		if len(m.Data) != 0 {
			return bad(1, "dwLength must be 0")
		}
	case MsgIccClock:
		if len(m.Data) != 0 {
			return bad(1, "dwLength must be 0")
		}
		if m.ClockCommand() > 1 {
			return bad(7, fmt.Sprintf("bClockCommand %d", m.ClockCommand()))
		}
	case MsgT0APDU:
		if len(m.Data) != 0 {
			return bad(1, "dwLength must be 0")
		}
	case MsgMechanical:
		if len(m.Data) != 0 {
			return bad(1, "dwLength must be 0")
		}
		if f := m.Function(); f < 1 || f > 5 {
			return bad(7, fmt.Sprintf("bFunction %d", f))
		}
	case MsgXfrBlock:
		switch m.LevelParameter() {
		case ChainNone, ChainBegin, ChainEnd, ChainContinue:
		case ChainEmpty:
			if len(m.Data) != 0 {
				return bad(1, "dwLength must be 0 with wLevelParameter 0x0010")
			}
		default:
			return bad(8, fmt.Sprintf("wLevelParameter 0x%04X", m.LevelParameter()))
		}
	case MsgSetParameters:
		switch m.ProtocolNum() {
		case ProtocolT0:
			if len(m.Data) != 5 {
				return bad(1, "T=0 parameters are 5 bytes")
			}
		case ProtocolT1:
			if len(m.Data) != 7 {
				return bad(1, "T=1 parameters are 7 bytes")
			}
		default:
			return bad(7, fmt.Sprintf("bProtocolNum %d", m.ProtocolNum()))
		}
	case MsgSetDataRateAndClockFrequency:
		if len(m.Data) != 8 {
			return bad(1, "dwLength must be 8")
		}
	}
	return nil
}

// Constructors for every bulk message. Param bytes the spec marks RFU are zero.

// NewIccPowerOn returns PC_to_RDR_IccPowerOn (§6.1.1).
func NewIccPowerOn(slot, seq, powerSelect byte) Message {
	return Message{Type: MsgIccPowerOn, Slot: slot, Seq: seq, Param: [3]byte{powerSelect}}
}

// NewIccPowerOff returns PC_to_RDR_IccPowerOff (§6.1.2).
func NewIccPowerOff(slot, seq byte) Message {
	return Message{Type: MsgIccPowerOff, Slot: slot, Seq: seq}
}

// NewGetSlotStatus returns PC_to_RDR_GetSlotStatus (§6.1.3).
func NewGetSlotStatus(slot, seq byte) Message {
	return Message{Type: MsgGetSlotStatus, Slot: slot, Seq: seq}
}

// NewXfrBlock returns PC_to_RDR_XfrBlock (§6.1.4).
func NewXfrBlock(slot, seq, bwi byte, level uint16, data []byte) Message {
	return Message{Type: MsgXfrBlock, Slot: slot, Seq: seq, Param: [3]byte{bwi, byte(level), byte(level >> 8)}, Data: data}
}

// NewGetParameters returns PC_to_RDR_GetParameters (§6.1.5).
func NewGetParameters(slot, seq byte) Message {
	return Message{Type: MsgGetParameters, Slot: slot, Seq: seq}
}

// NewResetParameters returns PC_to_RDR_ResetParameters (§6.1.6).
func NewResetParameters(slot, seq byte) Message {
	return Message{Type: MsgResetParameters, Slot: slot, Seq: seq}
}

// NewSetParameters returns PC_to_RDR_SetParameters (§6.1.7); data is abProtocolData (5 bytes T=0, 7 bytes T=1).
func NewSetParameters(slot, seq, protocol byte, data []byte) Message {
	return Message{Type: MsgSetParameters, Slot: slot, Seq: seq, Param: [3]byte{protocol}, Data: data}
}

// NewEscape returns PC_to_RDR_Escape (§6.1.8).
func NewEscape(slot, seq byte, data []byte) Message {
	return Message{Type: MsgEscape, Slot: slot, Seq: seq, Data: data}
}

// NewIccClock returns PC_to_RDR_IccClock (§6.1.9).
func NewIccClock(slot, seq, clockCommand byte) Message {
	return Message{Type: MsgIccClock, Slot: slot, Seq: seq, Param: [3]byte{clockCommand}}
}

// NewT0APDU returns PC_to_RDR_T0APDU (§6.1.10).
func NewT0APDU(slot, seq, changes, classGetResponse, classEnvelope byte) Message {
	return Message{Type: MsgT0APDU, Slot: slot, Seq: seq, Param: [3]byte{changes, classGetResponse, classEnvelope}}
}

// NewSecure returns PC_to_RDR_Secure (§6.1.11); data is bPINOperation followed by the PIN structure.
func NewSecure(slot, seq, bwi byte, level uint16, data []byte) Message {
	return Message{Type: MsgSecure, Slot: slot, Seq: seq, Param: [3]byte{bwi, byte(level), byte(level >> 8)}, Data: data}
}

// NewMechanical returns PC_to_RDR_Mechanical (§6.1.12).
func NewMechanical(slot, seq, function byte) Message {
	return Message{Type: MsgMechanical, Slot: slot, Seq: seq, Param: [3]byte{function}}
}

// NewAbort returns PC_to_RDR_Abort (§6.1.13).
func NewAbort(slot, seq byte) Message { return Message{Type: MsgAbort, Slot: slot, Seq: seq} }

// NewSetDataRateAndClockFrequency returns PC_to_RDR_SetDataRateAndClockFrequency (§6.1.14).
func NewSetDataRateAndClockFrequency(slot, seq byte, clockKHz, dataRate uint32) Message {
	return Message{Type: MsgSetDataRateAndClockFrequency, Slot: slot, Seq: seq, Data: rateData(clockKHz, dataRate)}
}

func rateData(clock, rate uint32) []byte {
	d := binary.LittleEndian.AppendUint32(make([]byte, 0, 8), clock)
	return binary.LittleEndian.AppendUint32(d, rate)
}

// NewDataBlock returns RDR_to_PC_DataBlock (§6.2.1).
func NewDataBlock(slot, seq, status byte, err SlotError, chain byte, data []byte) Message {
	return Message{Type: MsgDataBlock, Slot: slot, Seq: seq, Param: [3]byte{status, byte(err), chain}, Data: data}
}

// NewSlotStatus returns RDR_to_PC_SlotStatus (§6.2.2).
func NewSlotStatus(slot, seq, status byte, err SlotError, clockStatus byte) Message {
	return Message{Type: MsgSlotStatus, Slot: slot, Seq: seq, Param: [3]byte{status, byte(err), clockStatus}}
}

// NewParameters returns RDR_to_PC_Parameters (§6.2.3).
func NewParameters(slot, seq, status byte, err SlotError, protocol byte, data []byte) Message {
	return Message{Type: MsgParameters, Slot: slot, Seq: seq, Param: [3]byte{status, byte(err), protocol}, Data: data}
}

// NewEscapeResponse returns RDR_to_PC_Escape (§6.2.4).
func NewEscapeResponse(slot, seq, status byte, err SlotError, data []byte) Message {
	return Message{Type: MsgEscapeResponse, Slot: slot, Seq: seq, Param: [3]byte{status, byte(err)}, Data: data}
}

// NewDataRateAndClockFrequency returns RDR_to_PC_DataRateAndClockFrequency (§6.2.5).
func NewDataRateAndClockFrequency(slot, seq, status byte, err SlotError, clockKHz, dataRate uint32) Message {
	return Message{Type: MsgDataRateAndClockFrequency, Slot: slot, Seq: seq, Param: [3]byte{status, byte(err)},
		Data: rateData(clockKHz, dataRate)}
}

// SlotChange is one slot's state in RDR_to_PC_NotifySlotChange.
type SlotChange struct {
	Present bool // bit 2n: an ICC is present
	Changed bool // bit 2n+1: the state changed since the last notification
}

// AppendNotifySlotChange appends RDR_to_PC_NotifySlotChange (§6.3.1): bMessageType and bmSlotICCState, two bits
// per slot, ceil(2·len(slots)/8) bytes.
func AppendNotifySlotChange(dst []byte, slots []SlotChange) []byte {
	n := (2*len(slots) + 7) / 8
	dst = append(dst, byte(MsgNotifySlotChange))
	start := len(dst)
	for i := 0; i < n; i++ {
		dst = append(dst, 0)
	}
	for i, s := range slots {
		if s.Present {
			dst[start+i/4] |= 1 << (2 * (i % 4))
		}
		if s.Changed {
			dst[start+i/4] |= 2 << (2 * (i % 4))
		}
	}
	return dst
}

// ParseNotifySlotChange decodes RDR_to_PC_NotifySlotChange into the states of nslots slots.
func ParseNotifySlotChange(b []byte, nslots int) ([]SlotChange, error) {
	want := 1 + (2*nslots+7)/8
	if len(b) < 1 || MessageType(b[0]) != MsgNotifySlotChange {
		return nil, &FrameError{Type: MsgNotifySlotChange, Offset: 0, Reason: "not a NotifySlotChange"}
	}
	if len(b) != want {
		return nil, &FrameError{Type: MsgNotifySlotChange, Offset: 1,
			Reason: fmt.Sprintf("%d bytes for %d slots, want %d", len(b), nslots, want)}
	}
	out := make([]SlotChange, nslots)
	for i := range out {
		bits := b[1+i/4] >> (2 * (i % 4))
		out[i] = SlotChange{Present: bits&1 != 0, Changed: bits&2 != 0}
	}
	return out, nil
}

// HardwareError is RDR_to_PC_HardwareError (§6.3.2).
type HardwareError struct {
	Slot byte
	Seq  byte // bSeq of the command during which the error happened
	Code byte // bHardwareErrorCode: 0x01 overcurrent
}

// HardwareErrorOvercurrent is the only bHardwareErrorCode CCID rev 1.1 defines.
const HardwareErrorOvercurrent byte = 0x01

// AppendBinary appends the 4-byte interrupt message.
func (h HardwareError) AppendBinary(dst []byte) ([]byte, error) {
	return append(dst, byte(MsgHardwareError), h.Slot, h.Seq, h.Code), nil
}

// ParseHardwareError decodes RDR_to_PC_HardwareError.
func ParseHardwareError(b []byte) (HardwareError, error) {
	if len(b) != 4 || MessageType(b[0]) != MsgHardwareError {
		return HardwareError{}, &FrameError{Type: MsgHardwareError, Offset: 0, Reason: "not a 4-byte HardwareError"}
	}
	return HardwareError{Slot: b[1], Seq: b[2], Code: b[3]}, nil
}
