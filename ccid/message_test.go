package ccid_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/ccidgadget/ccidgadget/ccid"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMessageCodec encodes every bulk message of CCID rev 1.1 with its constructor, compares the bytes with
// the layout of CCID §6.1/§6.2, decodes them back and reads the message-specific fields.
func TestMessageCodec(t *testing.T) {
	t1 := []byte{0x18, 0x10, 0xFF, 0x75, 0x00, 0xFE, 0x00}
	tests := []struct {
		name  string
		msg   ccid.Message
		wire  string
		field func(ccid.Message) int // a message-specific accessor
		value int
	}{
		{"IccPowerOn", ccid.NewIccPowerOn(0, 1, 2), "62 00000000 00 01 02 00 00", func(m ccid.Message) int { return int(m.PowerSelect()) }, 2},
		{"IccPowerOff", ccid.NewIccPowerOff(0, 2), "63 00000000 00 02 00 00 00", nil, 0},
		{"GetSlotStatus", ccid.NewGetSlotStatus(1, 3), "65 00000000 01 03 00 00 00", nil, 0},
		{"XfrBlock", ccid.NewXfrBlock(0, 4, 5, ccid.ChainContinue, []byte{0xCA, 0xFE}), "6F 02000000 00 04 05 03 00 CA FE",
			func(m ccid.Message) int { return int(m.LevelParameter())<<8 | int(m.BWI()) }, 0x0305},
		{"XfrBlock empty 0x10", ccid.NewXfrBlock(0, 5, 0, ccid.ChainEmpty, nil), "6F 00000000 00 05 00 10 00",
			func(m ccid.Message) int { return int(m.LevelParameter()) }, 0x10},
		{"GetParameters", ccid.NewGetParameters(0, 6), "6C 00000000 00 06 00 00 00", nil, 0},
		{"ResetParameters", ccid.NewResetParameters(0, 7), "6D 00000000 00 07 00 00 00", nil, 0},
		{"SetParameters", ccid.NewSetParameters(0, 8, 1, t1), "61 07000000 00 08 01 00 00 18 10 FF 75 00 FE 00",
			func(m ccid.Message) int { return int(m.ProtocolNum()) }, 1},
		{"Escape", ccid.NewEscape(0, 9, []byte{1, 2, 3}), "6B 03000000 00 09 00 00 00 01 02 03", nil, 0},
		{"IccClock", ccid.NewIccClock(0, 10, 1), "6E 00000000 00 0A 01 00 00",
			func(m ccid.Message) int { return int(m.ClockCommand()) }, 1},
		{"T0APDU", ccid.NewT0APDU(0, 11, 3, 0xFF, 0x80), "6A 00000000 00 0B 03 FF 80",
			func(m ccid.Message) int {
				return int(m.Changes())<<16 | int(m.ClassGetResponse())<<8 | int(m.ClassEnvelope())
			}, 0x03FF80},
		{"Secure", ccid.NewSecure(0, 12, 0, 0, []byte{0x00, 0x1E}), "69 02000000 00 0C 00 00 00 00 1E",
			func(m ccid.Message) int { return int(m.LevelParameter()) }, 0},
		{"Mechanical", ccid.NewMechanical(0, 13, 2), "71 00000000 00 0D 02 00 00",
			func(m ccid.Message) int { return int(m.Function()) }, 2},
		{"Abort", ccid.NewAbort(0, 14), "72 00000000 00 0E 00 00 00", nil, 0},
		{"SetDataRateAndClockFrequency", ccid.NewSetDataRateAndClockFrequency(0, 15, 4000, 10752),
			"73 08000000 00 0F 00 00 00 A00F0000 002A0000",
			func(m ccid.Message) int { return int(m.ClockFrequency())<<16 | int(m.DataRate()) }, 4000<<16 | 10752},
		{"DataBlock", ccid.NewDataBlock(0, 16, 0x00, 0, 0x01, []byte{0x90, 0x00}), "80 02000000 00 10 00 00 01 90 00",
			func(m ccid.Message) int { return int(m.ChainParameter()) }, 1},
		{"DataBlock time extension", ccid.NewDataBlock(0, 17, 0x80, 1, 0, nil), "80 00000000 00 11 80 01 00",
			func(m ccid.Message) int { return int(m.CommandStatus()) | int(m.Error()) }, 0x81},
		{"SlotStatus absent", ccid.NewSlotStatus(0, 18, 0x42, ccid.ICCMute, 1), "81 00000000 00 12 42 FE 01",
			func(m ccid.Message) int { return int(m.ICCStatus())<<8 | int(m.ClockStatus()) }, 0x0201},
		{"Parameters", ccid.NewParameters(0, 19, 0, 0, 1, t1), "82 07000000 00 13 00 00 01 18 10 FF 75 00 FE 00",
			func(m ccid.Message) int { return int(m.ProtocolNum()) }, 1},
		{"Escape response", ccid.NewEscapeResponse(0, 20, 0x40, ccid.CmdNotSupported, nil), "83 00000000 00 14 40 00 00", nil, 0},
		{"DataRateAndClockFrequency", ccid.NewDataRateAndClockFrequency(0, 21, 0, 0, 3580, 9600),
			"84 08000000 00 15 00 00 00 FC0D0000 80250000",
			func(m ccid.Message) int { return int(m.ClockFrequency())<<16 | int(m.DataRate()) }, 3580<<16 | 9600},
	}
	seen := map[ccid.MessageType]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wire := unhex(t, tc.wire)
			got, err := tc.msg.MarshalBinary()
			if err != nil || !bytes.Equal(got, wire) {
				t.Fatalf("MarshalBinary = % X, %v; want % X", got, err, wire)
			}
			n, err := ccid.FrameLength(wire)
			if err != nil || n != len(wire) {
				t.Errorf("FrameLength = %d, %v; want %d", n, err, len(wire))
			}
			m, err := ccid.ParseMessage(wire)
			if err != nil {
				t.Fatalf("ParseMessage: %v", err)
			}
			if m.Type != tc.msg.Type || m.Slot != tc.msg.Slot || m.Seq != tc.msg.Seq || m.Param != tc.msg.Param ||
				!bytes.Equal(m.Data, tc.msg.Data) {
				t.Errorf("ParseMessage = %v, want %v", m, tc.msg)
			}
			if tc.field != nil {
				if v := tc.field(m); v != tc.value {
					t.Errorf("field = %#x, want %#x", v, tc.value)
				}
			}
			if strings.HasPrefix(m.Type.String(), "MessageType(") {
				t.Errorf("no spec name for %v", m.Type)
			}
			if m.Type.IsCommand() {
				if err := m.Check(); err != nil {
					t.Errorf("Check: %v", err)
				}
			}
			seen[m.Type] = true
		})
	}
	for _, typ := range []ccid.MessageType{ccid.MsgIccPowerOn, ccid.MsgIccPowerOff, ccid.MsgGetSlotStatus, ccid.MsgXfrBlock,
		ccid.MsgGetParameters, ccid.MsgResetParameters, ccid.MsgSetParameters, ccid.MsgEscape, ccid.MsgIccClock,
		ccid.MsgT0APDU, ccid.MsgSecure, ccid.MsgMechanical, ccid.MsgAbort, ccid.MsgSetDataRateAndClockFrequency,
		ccid.MsgDataBlock, ccid.MsgSlotStatus, ccid.MsgParameters, ccid.MsgEscapeResponse,
		ccid.MsgDataRateAndClockFrequency} {
		if !seen[typ] {
			t.Errorf("%v not covered", typ)
		}
	}
}

func TestResponseType(t *testing.T) {
	want := map[ccid.MessageType]ccid.MessageType{
		ccid.MsgIccPowerOn: ccid.MsgDataBlock, ccid.MsgXfrBlock: ccid.MsgDataBlock, ccid.MsgSecure: ccid.MsgDataBlock,
		ccid.MsgIccPowerOff: ccid.MsgSlotStatus, ccid.MsgGetSlotStatus: ccid.MsgSlotStatus, ccid.MsgIccClock: ccid.MsgSlotStatus,
		ccid.MsgT0APDU: ccid.MsgSlotStatus, ccid.MsgMechanical: ccid.MsgSlotStatus, ccid.MsgAbort: ccid.MsgSlotStatus,
		ccid.MsgGetParameters: ccid.MsgParameters, ccid.MsgResetParameters: ccid.MsgParameters,
		ccid.MsgSetParameters: ccid.MsgParameters, ccid.MsgEscape: ccid.MsgEscapeResponse,
		ccid.MsgSetDataRateAndClockFrequency: ccid.MsgDataRateAndClockFrequency,
		0x00:                                 ccid.MsgSlotStatus, 0x80: ccid.MsgSlotStatus, 0xFF: ccid.MsgSlotStatus,
	}
	for cmd, resp := range want {
		if got := ccid.ResponseType(cmd); got != resp {
			t.Errorf("ResponseType(%v) = %v, want %v", cmd, got, resp)
		}
	}
}

func TestParseMessageErrors(t *testing.T) {
	tests := []struct {
		name   string
		wire   string
		offset int // -1: ErrShortFrame
	}{
		{"empty", "", -1},
		{"9 bytes", "65 00000000 00 01 00 00", -1},
		{"dwLength too small", "6F 01000000 00 01 00 00 00 AA BB", 1},
		{"dwLength too large", "6F 03000000 00 01 00 00 00 AA BB", 1},
		{"dwLength huge", "6F FFFFFFFF 00 01 00 00 00", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ccid.ParseMessage(unhex(t, tc.wire))
			var fe *ccid.FrameError
			switch {
			case tc.offset < 0:
				if !errors.Is(err, ccid.ErrShortFrame) {
					t.Errorf("err = %v, want ErrShortFrame", err)
				}
			case !errors.As(err, &fe) || fe.Offset != tc.offset || fe.SlotError() != ccid.SlotError(tc.offset):
				t.Errorf("err = %v, want FrameError at offset %d", err, tc.offset)
			}
		})
	}
	if _, err := ccid.FrameLength([]byte{0x6F, 1, 0, 0}); !errors.Is(err, ccid.ErrShortFrame) {
		t.Errorf("FrameLength of 4 bytes: %v", err)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		msg    ccid.Message
		offset int // 0: valid
	}{
		{"PowerOn auto", ccid.NewIccPowerOn(0, 0, 0), 0},
		{"PowerOn 1.8V", ccid.NewIccPowerOn(0, 0, 3), 0},
		{"PowerOn bad voltage", ccid.NewIccPowerOn(0, 0, 4), 7},
		{"PowerOn with data", ccid.Message{Type: ccid.MsgIccPowerOn, Data: []byte{1}}, 1},
		{"PowerOff with data", ccid.Message{Type: ccid.MsgIccPowerOff, Data: []byte{1}}, 1},
		{"GetSlotStatus with data", ccid.Message{Type: ccid.MsgGetSlotStatus, Data: []byte{1}}, 1},
		{"Abort with data", ccid.Message{Type: ccid.MsgAbort, Data: []byte{1}}, 1},
		{"IccClock bad command", ccid.NewIccClock(0, 0, 2), 7},
		{"Mechanical bad function", ccid.NewMechanical(0, 0, 6), 7},
		{"Mechanical no function", ccid.NewMechanical(0, 0, 0), 7},
		{"T0APDU with data", ccid.Message{Type: ccid.MsgT0APDU, Data: []byte{1}}, 1},
		{"XfrBlock bad level", ccid.NewXfrBlock(0, 0, 0, 0x0004, nil), 8},
		{"XfrBlock 0x10 with data", ccid.NewXfrBlock(0, 0, 0, ccid.ChainEmpty, []byte{1}), 1},
		{"SetParameters T=0", ccid.NewSetParameters(0, 0, 0, make([]byte, 5)), 0},
		{"SetParameters T=0 short", ccid.NewSetParameters(0, 0, 0, make([]byte, 4)), 1},
		{"SetParameters T=1 short", ccid.NewSetParameters(0, 0, 1, make([]byte, 5)), 1},
		{"SetParameters T=2", ccid.NewSetParameters(0, 0, 2, make([]byte, 7)), 7},
		{"SetDataRate short", ccid.Message{Type: ccid.MsgSetDataRateAndClockFrequency, Data: []byte{1}}, 1},
	}
	for _, tc := range tests {
		err := tc.msg.Check()
		var fe *ccid.FrameError
		if tc.offset == 0 {
			if err != nil {
				t.Errorf("%s: Check = %v, want nil", tc.name, err)
			}
		} else if !errors.As(err, &fe) || fe.Offset != tc.offset {
			t.Errorf("%s: Check = %v, want offset %d", tc.name, err, tc.offset)
		}
	}
}

func TestNotifySlotChange(t *testing.T) {
	tests := []struct {
		slots []ccid.SlotChange
		wire  string
	}{
		{[]ccid.SlotChange{{Present: true, Changed: true}}, "50 03"},
		{[]ccid.SlotChange{{Present: false, Changed: true}}, "50 02"},
		{[]ccid.SlotChange{{Present: true}}, "50 01"},
		{[]ccid.SlotChange{{Present: true}, {Changed: true}, {}, {Present: true, Changed: true}}, "50 C9"},
		{[]ccid.SlotChange{{}, {}, {}, {}, {Present: true, Changed: true}}, "50 00 03"},
	}
	for _, tc := range tests {
		got := ccid.AppendNotifySlotChange(nil, tc.slots)
		if want := unhex(t, tc.wire); !bytes.Equal(got, want) {
			t.Errorf("AppendNotifySlotChange(%v) = % X, want % X", tc.slots, got, want)
		}
		back, err := ccid.ParseNotifySlotChange(got, len(tc.slots))
		if err != nil || len(back) != len(tc.slots) {
			t.Fatalf("ParseNotifySlotChange: %v, %v", back, err)
		}
		for i := range back {
			if back[i] != tc.slots[i] {
				t.Errorf("slot %d: %v, want %v", i, back[i], tc.slots[i])
			}
		}
	}
	if _, err := ccid.ParseNotifySlotChange([]byte{0x50}, 1); err == nil {
		t.Error("ParseNotifySlotChange accepted a 1-byte message")
	}
	if _, err := ccid.ParseNotifySlotChange([]byte{0x51, 0x03}, 1); err == nil {
		t.Error("ParseNotifySlotChange accepted a HardwareError")
	}
}

func TestHardwareError(t *testing.T) {
	h := ccid.HardwareError{Slot: 0, Seq: 7, Code: ccid.HardwareErrorOvercurrent}
	b, err := h.AppendBinary(nil)
	if err != nil || !bytes.Equal(b, []byte{0x51, 0x00, 0x07, 0x01}) {
		t.Fatalf("AppendBinary = % X, %v", b, err)
	}
	back, err := ccid.ParseHardwareError(b)
	if err != nil || back != h {
		t.Errorf("ParseHardwareError = %v, %v", back, err)
	}
	if _, err := ccid.ParseHardwareError(b[:3]); err == nil {
		t.Error("ParseHardwareError accepted 3 bytes")
	}
}

func TestSlotErrorString(t *testing.T) {
	for e, want := range map[ccid.SlotError]string{
		ccid.CmdAborted: "CMD_ABORTED", ccid.ICCMute: "ICC_MUTE", ccid.CmdSlotBusy: "CMD_SLOT_BUSY",
		ccid.CmdNotSupported: "CMD_NOT_SUPPORTED", 0x05: "bad field at offset 5", 0x90: "user-defined error 0x90",
	} {
		if got := e.String(); got != want {
			t.Errorf("%#x.String() = %q, want %q", byte(e), got, want)
		}
	}
}
