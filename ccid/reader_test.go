package ccid_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/ccidtest"
)

var openPGPParams = []byte{0x18, 0x10, 0xFF, 0x75, 0x00, 0xFE, 0x00} // from ccidtest.OpenPGPATR

var defaultParams = []byte{0x11, 0x10, 0x00, 0x4D, 0x00, 0x20, 0x00} // ISO/IEC 7816-3 defaults

type slotSetup int

const (
	absent slotSetup = iota
	inactive
	active
)

func (h *harness) setup(s slotSetup) {
	h.t.Helper()
	switch s {
	case absent:
		if err := h.r.Remove(0); err != nil {
			h.t.Fatal(err)
		}
		h.drainNotifications()
	case active:
		h.powerOn()
	}
}

// TestCommands sends one command to a slot in a given state and checks the whole answer header: response type,
// bSlot and bSeq echoed, bStatus, bError, byte 9 and abData.
func TestCommands(t *testing.T) {
	atr := ccidtest.OpenPGPATR
	gnupgParams := []byte{0x11, 0x10, 0x00, 0x4D, 0x00, 0xFE, 0x00}
	params := func(b ...byte) []byte { return b }
	tests := []struct {
		name  string
		state slotSetup
		msg   ccid.Message
		raw   string // sent instead of msg when set
		want  want
	}{
		{"GetSlotStatus active", active, ccid.NewGetSlotStatus(0, 1), "", want{ccid.MsgSlotStatus, 0, 1, 0x00, 0, 0, nil}},
		{"GetSlotStatus inactive", inactive, ccid.NewGetSlotStatus(0, 2), "", want{ccid.MsgSlotStatus, 0, 2, 0x01, 0, 1, nil}},
		{"GetSlotStatus absent", absent, ccid.NewGetSlotStatus(0, 3), "", want{ccid.MsgSlotStatus, 0, 3, 0x02, 0, 1, nil}},
		{"GetSlotStatus seq 0xFF", active, ccid.NewGetSlotStatus(0, 0xFF), "", want{ccid.MsgSlotStatus, 0, 0xFF, 0x00, 0, 0, nil}},
		{"PowerOn inactive", inactive, ccid.NewIccPowerOn(0, 4, 0), "", want{ccid.MsgDataBlock, 0, 4, 0x00, 0, 0, atr}},
		{"PowerOn active = warm reset", active, ccid.NewIccPowerOn(0, 5, 0), "", want{ccid.MsgDataBlock, 0, 5, 0x00, 0, 0, atr}},
		{"PowerOn 5 V", inactive, ccid.NewIccPowerOn(0, 6, 1), "", want{ccid.MsgDataBlock, 0, 6, 0x00, 0, 0, atr}},
		{"PowerOn absent", absent, ccid.NewIccPowerOn(0, 7, 0), "", want{ccid.MsgDataBlock, 0, 7, 0x42, ccid.ICCMute, 0, nil}},
		{"PowerOn bad bPowerSelect", inactive, ccid.NewIccPowerOn(0, 8, 4), "", want{ccid.MsgDataBlock, 0, 8, 0x41, 7, 0, nil}},
		{"PowerOff active", active, ccid.NewIccPowerOff(0, 9), "", want{ccid.MsgSlotStatus, 0, 9, 0x01, 0, 1, nil}},
		{"PowerOff inactive", inactive, ccid.NewIccPowerOff(0, 10), "", want{ccid.MsgSlotStatus, 0, 10, 0x01, 0, 1, nil}},
		{"PowerOff absent", absent, ccid.NewIccPowerOff(0, 11), "", want{ccid.MsgSlotStatus, 0, 11, 0x02, 0, 1, nil}},
		{"PowerOff with abData", active, ccid.Message{Type: ccid.MsgIccPowerOff, Seq: 12, Data: []byte{0}}, "",
			want{ccid.MsgSlotStatus, 0, 12, 0x40, 1, 0, nil}},
		{"GetParameters active", active, ccid.NewGetParameters(0, 13), "", want{ccid.MsgParameters, 0, 13, 0x00, 0, 1, openPGPParams}},
		{"GetParameters inactive", inactive, ccid.NewGetParameters(0, 14), "",
			want{ccid.MsgParameters, 0, 14, 0x01, 0, 1, defaultParams}},
		{"GetParameters absent", absent, ccid.NewGetParameters(0, 15), "", want{ccid.MsgParameters, 0, 15, 0x42, ccid.ICCMute, 1, nil}},
		{"ResetParameters", active, ccid.NewResetParameters(0, 16), "", want{ccid.MsgParameters, 0, 16, 0x00, 0, 1, openPGPParams}},
		{"SetParameters as GnuPG", active, ccid.NewSetParameters(0, 17, 1, gnupgParams), "",
			want{ccid.MsgParameters, 0, 17, 0x00, 0, 1, gnupgParams}},
		{"SetParameters T=0", active, ccid.NewSetParameters(0, 18, 0, make([]byte, 5)), "",
			want{ccid.MsgParameters, 0, 18, 0x40, 7, 1, nil}},
		{"SetParameters bad Findex", active, ccid.NewSetParameters(0, 19, 1, params(0x71, 0x10, 0, 0x4D, 0, 0xFE, 0)), "",
			want{ccid.MsgParameters, 0, 19, 0x40, 0x0A, 1, nil}},
		{"SetParameters bad bmTCCKST1", active, ccid.NewSetParameters(0, 20, 1, params(0x11, 0x20, 0, 0x4D, 0, 0xFE, 0)), "",
			want{ccid.MsgParameters, 0, 20, 0x40, 0x0B, 1, nil}},
		{"SetParameters bad BWI", active, ccid.NewSetParameters(0, 21, 1, params(0x11, 0x10, 0, 0xAD, 0, 0xFE, 0)), "",
			want{ccid.MsgParameters, 0, 21, 0x40, 0x0D, 1, nil}},
		{"SetParameters bad bClockStop", active, ccid.NewSetParameters(0, 22, 1, params(0x11, 0x10, 0, 0x4D, 4, 0xFE, 0)), "",
			want{ccid.MsgParameters, 0, 22, 0x40, 0x0E, 1, nil}},
		{"SetParameters bad bIFSC", active, ccid.NewSetParameters(0, 23, 1, params(0x11, 0x10, 0, 0x4D, 0, 0xFF, 0)), "",
			want{ccid.MsgParameters, 0, 23, 0x40, 0x0F, 1, nil}},
		{"SetParameters NAD", active, ccid.NewSetParameters(0, 24, 1, params(0x11, 0x10, 0, 0x4D, 0, 0xFE, 5)), "",
			want{ccid.MsgParameters, 0, 24, 0x40, 0x10, 1, nil}},
		{"SetParameters absent", absent, ccid.NewSetParameters(0, 25, 1, gnupgParams), "",
			want{ccid.MsgParameters, 0, 25, 0x42, ccid.ICCMute, 1, nil}},
		{"XfrBlock", active, ccid.NewXfrBlock(0, 26, 0, 0, []byte{0x00, 0xCA, 0x00, 0x6E}), "",
			want{ccid.MsgDataBlock, 0, 26, 0x00, 0, 0, []byte{0x00, 0xCA, 0x00, 0x6E, 0x90, 0x00}}},
		{"XfrBlock inactive", inactive, ccid.NewXfrBlock(0, 27, 0, 0, []byte{0, 0xCA, 0, 0x6E}), "",
			want{ccid.MsgDataBlock, 0, 27, 0x41, ccid.ICCMute, 0, nil}},
		{"XfrBlock absent", absent, ccid.NewXfrBlock(0, 28, 0, 0, []byte{0, 0xCA, 0, 0x6E}), "",
			want{ccid.MsgDataBlock, 0, 28, 0x42, ccid.ICCMute, 0, nil}},
		{"XfrBlock 0x10 with no response pending", active, ccid.NewXfrBlock(0, 29, 0, ccid.ChainEmpty, nil), "",
			want{ccid.MsgDataBlock, 0, 29, 0x40, 8, 0, nil}},
		{"XfrBlock 0x03 with no chain", active, ccid.NewXfrBlock(0, 30, 0, ccid.ChainContinue, []byte{1}), "",
			want{ccid.MsgDataBlock, 0, 30, 0x40, 8, 0, nil}},
		{"XfrBlock 0x02 with no chain", active, ccid.NewXfrBlock(0, 31, 0, ccid.ChainEnd, []byte{1}), "",
			want{ccid.MsgDataBlock, 0, 31, 0x40, 8, 0, nil}},
		{"XfrBlock bad wLevelParameter", active, ccid.NewXfrBlock(0, 32, 0, 0x0004, []byte{1}), "",
			want{ccid.MsgDataBlock, 0, 32, 0x40, 8, 0, nil}},
		{"Escape unsupported", active, ccid.NewEscape(0, 33, []byte{1, 2}), "", want{ccid.MsgEscapeResponse, 0, 33, 0x40, 0, 0, nil}},
		{"IccClock unsupported", active, ccid.NewIccClock(0, 34, 1), "", want{ccid.MsgSlotStatus, 0, 34, 0x40, 0, 0, nil}},
		{"T0APDU unsupported", active, ccid.NewT0APDU(0, 35, 0, 0, 0), "", want{ccid.MsgSlotStatus, 0, 35, 0x40, 0, 0, nil}},
		{"Secure unsupported", active, ccid.NewSecure(0, 36, 0, 0, []byte{0}), "", want{ccid.MsgDataBlock, 0, 36, 0x40, 0, 0, nil}},
		{"Mechanical unsupported", inactive, ccid.NewMechanical(0, 37, 2), "", want{ccid.MsgSlotStatus, 0, 37, 0x41, 0, 0, nil}},
		{"SetDataRateAndClockFrequency unsupported", active, ccid.NewSetDataRateAndClockFrequency(0, 38, 4000, 10752), "",
			want{ccid.MsgDataRateAndClockFrequency, 0, 38, 0x40, 0, 0, nil}},
		{"unknown bMessageType", active, ccid.Message{Type: 0x99, Seq: 39}, "", want{ccid.MsgSlotStatus, 0, 39, 0x40, 0, 0, nil}},
		{"RDR_to_PC type from host", active, ccid.Message{Type: ccid.MsgDataBlock, Seq: 40}, "", want{ccid.MsgSlotStatus, 0, 40, 0x40, 0, 0, nil}},
		{"Abort without control request", active, ccid.NewAbort(0, 41), "", want{ccid.MsgSlotStatus, 0, 41, 0x00, 0, 0, nil}},
		{"wrong slot GetSlotStatus", active, ccid.NewGetSlotStatus(1, 42), "", want{ccid.MsgSlotStatus, 1, 42, 0x42, 5, 0, nil}},
		{"wrong slot XfrBlock", active, ccid.NewXfrBlock(7, 43, 0, 0, []byte{0, 0xCA, 0, 0x6E}), "",
			want{ccid.MsgDataBlock, 7, 43, 0x42, 5, 0, nil}},
		{"wrong slot GetParameters", active, ccid.NewGetParameters(0xFF, 44), "", want{ccid.MsgParameters, 0xFF, 44, 0x42, 5, 0, nil}},
		{"wrong slot Abort", active, ccid.NewAbort(1, 45), "", want{ccid.MsgSlotStatus, 1, 45, 0x42, 5, 0, nil}},
		{"dwLength larger than abData", active, ccid.Message{}, "6F 05000000 00 2E 00 00 00 00 A4",
			want{ccid.MsgDataBlock, 0, 46, 0x40, 1, 0, nil}},
		{"dwLength smaller than abData", active, ccid.Message{}, "6F 01000000 00 2F 00 00 00 00 A4",
			want{ccid.MsgDataBlock, 0, 47, 0x40, 1, 0, nil}},
		{"dwLength on GetSlotStatus", inactive, ccid.Message{}, "65 01000000 00 30 00 00 00",
			want{ccid.MsgSlotStatus, 0, 48, 0x41, 1, 0, nil}},
		{"9-byte frame", active, ccid.Message{}, "65 00000000 00 31 00 00", want{ccid.MsgSlotStatus, 0, 49, 0x40, 1, 0, nil}},
		{"dwLength 4 GB", active, ccid.Message{}, "6F FFFFFFFF 00 32 00 00 00 01 02", want{ccid.MsgDataBlock, 0, 50, 0x40, 1, 0, nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.setup(tc.state)
			if tc.raw != "" {
				h.sendRaw(unhex(t, tc.raw))
			} else {
				h.send(tc.msg)
			}
			h.check(h.recv(), tc.want)
			h.noFrame()
		})
	}
}

// TestStateTransitions checks that PowerOn, PowerOff and failures move the slot between its three states.
func TestStateTransitions(t *testing.T) {
	h := newHarness(t, nil)
	status := func(seq byte) byte { return h.exchange(ccid.NewGetSlotStatus(0, seq)).Status() }
	if s := status(1); s != ccid.ICCInactive {
		t.Fatalf("after insert: status %#x", s)
	}
	h.powerOn()
	if s := status(2); s != ccid.ICCActive {
		t.Fatalf("after PowerOn: status %#x", s)
	}
	h.powerOn() // warm reset: no PowerOff in between
	if on, off, _, _ := h.card.Counts(); on != 2 || off != 0 {
		t.Errorf("warm reset: %d PowerOn, %d PowerOff calls on the card", on, off)
	}
	h.exchange(ccid.NewIccPowerOff(0, 3))
	if s := status(4); s != ccid.ICCInactive {
		t.Fatalf("after PowerOff: status %#x", s)
	}
	if _, off, _, _ := h.card.Counts(); off != 1 {
		t.Errorf("PowerOff calls: %d", off)
	}
	h.card.FailPowerOn(errors.New("card broken"))
	h.check(h.exchange(ccid.NewIccPowerOn(0, 5, 0)), want{ccid.MsgDataBlock, 0, 5, 0x41, ccid.ICCMute, 0, nil})
	h.card.FailPowerOn(nil)
	h.powerOn()
	h.card.FailTransmit(errors.New("card broken"))
	h.check(h.exchange(ccid.NewXfrBlock(0, 6, 0, 0, []byte{0, 0x20, 0, 0x81})), want{ccid.MsgDataBlock, 0, 6, 0x40, ccid.ICCMute, 0, nil})
	h.card.FailTransmit(cardError{ccid.XfrParityError})
	h.check(h.exchange(ccid.NewXfrBlock(0, 7, 0, 0, []byte{0, 0x20, 0, 0x81})), want{ccid.MsgDataBlock, 0, 7, 0x40, ccid.XfrParityError, 0, nil})
	if s := status(8); s != ccid.ICCActive {
		t.Errorf("a failed Transmit changed the slot state to %#x", s)
	}
}

type cardError struct{ code ccid.SlotError }

func (e cardError) Error() string             { return "card error " + e.code.String() }
func (e cardError) SlotError() ccid.SlotError { return e.code }

// Host open sequences, as libccid 1.5.2 and GnuPG 2.2.40 send them (research ccid-host-stack §2.5, §3.2),
// with the reader's exact answers. They also seed the reader fuzz target.
var (
	libccidOpen = []string{
		"65 00000000 00 00 00 00 00", // IFDHCreateChannel: GetSlotStatus
		"65 00000000 00 01 00 00 00",
		"65 00000000 00 02 00 00 00",
		"62 00000000 00 03 00 00 00",                                  // IFDHPowerICC: PowerOn, bPowerSelect 0 (auto voltage)
		"6F 0B000000 00 04 00 00 00 00 A4 04 00 06 D2 76 00 01 24 01", // SELECT OpenPGP
		"6F 05000000 00 05 00 00 00 00 CA 00 6E 00",                   // GET DATA 6E
		"65 00000000 00 06 00 00 00",                                  // IFDHICCPresence
		"63 00000000 00 07 00 00 00",                                  // PowerOff after 5 s unused
	}
	libccidAnswers = []string{
		"81 00000000 00 00 01 00 01",
		"81 00000000 00 01 01 00 01",
		"81 00000000 00 02 01 00 01",
		"80 15000000 00 03 00 00 00 3B DA 18 FF 81 B1 FE 75 1F 03 00 31 C5 73 C0 01 40 00 90 00 0C",
		"80 0D000000 00 04 00 00 00 00 A4 04 00 06 D2 76 00 01 24 01 90 00",
		"80 07000000 00 05 00 00 00 00 CA 00 6E 00 90 00",
		"81 00000000 00 06 00 00 00",
		"81 00000000 00 07 01 00 01",
	}
	gnupgOpen = []string{
		"65 00000000 00 00 00 00 00",                      // ccid_slot_status
		"62 00000000 00 01 00 00 00",                      // PowerOn (auto voltage)
		"6C 00000000 00 02 00 00 00",                      // GetParameters (auto_param)
		"61 07000000 00 03 01 00 00 18 10 FF 75 00 FE 00", // SetParameters T=1 from the ATR
		"6F 0B000000 00 04 00 00 00 00 A4 04 00 06 D2 76 00 01 24 01",
		"72 00000000 00 05 00 00 00", // abort_cmd's bulk half (after the control half)
	}
	gnupgAnswers = []string{
		"81 00000000 00 00 01 00 01",
		"80 15000000 00 01 00 00 00 3B DA 18 FF 81 B1 FE 75 1F 03 00 31 C5 73 C0 01 40 00 90 00 0C",
		"82 07000000 00 02 00 00 01 18 10 FF 75 00 FE 00",
		"82 07000000 00 03 00 00 01 18 10 FF 75 00 FE 00",
		"80 0D000000 00 04 00 00 00 00 A4 04 00 06 D2 76 00 01 24 01 90 00",
		"81 00000000 00 05 00 00 00",
	}
)

func TestHostOpenSequences(t *testing.T) {
	for _, seq := range []struct {
		name       string
		cmds, want []string
		beforeLast func(*ccid.Reader)
	}{
		{"libccid", libccidOpen, libccidAnswers, nil},
		{"GnuPG", gnupgOpen, gnupgAnswers, func(r *ccid.Reader) { r.Abort(0, 5) }},
	} {
		t.Run(seq.name, func(t *testing.T) {
			h := newHarness(t, nil)
			for i, c := range seq.cmds {
				if i == len(seq.cmds)-1 && seq.beforeLast != nil {
					seq.beforeLast(h.r)
				}
				h.sendRaw(unhex(t, c))
				got, err := h.tr.Recv(h.ctx)
				if err != nil {
					t.Fatal(err)
				}
				if want := unhex(t, seq.want[i]); !bytes.Equal(got, want) {
					t.Errorf("command %d (% X):\n got % X\nwant % X", i, trunc(unhex(t, c)), got, want)
				}
			}
		})
	}
}

// sendChained sends apdu the way libccid's CmdXfrBlockAPDU_extended and GnuPG do: blocks of chunk bytes with
// wLevelParameter 1, 3..., 2, each non-final one answered by an empty DataBlock with bChainParameter 0x10.
// It returns the answer to the last block.
func (h *harness) sendChained(seq byte, apdu []byte, chunk int) (ccid.Message, byte) {
	h.t.Helper()
	if len(apdu) <= chunk {
		return h.exchange(ccid.NewXfrBlock(0, seq, 0, ccid.ChainNone, apdu)), seq
	}
	level := ccid.ChainBegin
	for len(apdu) > chunk {
		h.check(h.exchange(ccid.NewXfrBlock(0, seq, 0, level, apdu[:chunk])),
			want{ccid.MsgDataBlock, 0, seq, 0x00, 0, 0x10, nil})
		apdu, level, seq = apdu[chunk:], ccid.ChainContinue, seq+1
	}
	return h.exchange(ccid.NewXfrBlock(0, seq, 0, ccid.ChainEnd, apdu)), seq
}

// recvChained reads a possibly chained response like libccid: while bChainParameter is 1 or 3 it sends an
// empty XfrBlock with wLevelParameter 0x10. It returns the whole response and the chain parameters seen.
func (h *harness) recvChained(first ccid.Message, seq byte) ([]byte, []byte) {
	h.t.Helper()
	data := append([]byte(nil), first.Data...)
	chains := []byte{first.ChainParameter()}
	m := first
	for m.ChainParameter() == 0x01 || m.ChainParameter() == 0x03 {
		seq++
		m = h.exchange(ccid.NewXfrBlock(0, seq, 0, ccid.ChainEmpty, nil))
		if m.Type != ccid.MsgDataBlock || m.Status() != 0 || m.Seq != seq {
			h.t.Fatalf("response block: %v", m)
		}
		if len(m.Data) > 2048 {
			h.t.Fatalf("response block of %d bytes", len(m.Data))
		}
		data = append(data, m.Data...)
		chains = append(chains, m.ChainParameter())
	}
	return data, chains
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestCommandChaining(t *testing.T) {
	const chunk = 2048 // dwMaxCCIDMessageLength − 10
	tests := []struct {
		name   string
		size   int
		blocks int
	}{
		{"1 byte", 1, 1},
		{"exactly dwMaxCCIDMessageLength−10", chunk, 1},
		{"one more", chunk + 1, 2},
		{"two full blocks", 2 * chunk, 2},
		{"three blocks", 2*chunk + 1, 3},
		{"65 535 bytes", 65535, 32},
		{"largest extended APDU", ccid.MaxExtendedAPDU, 33},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.powerOn()
			got := make(chan []byte, 1)
			h.card.Respond(func(c []byte) []byte { got <- append([]byte(nil), c...); return []byte{0x90, 0x00} })
			apdu := pattern(tc.size)
			a, last := h.sendChained(1, apdu, chunk)
			h.check(a, want{ccid.MsgDataBlock, 0, last, 0, 0, 0, []byte{0x90, 0x00}})
			if blocks := int(last); blocks != tc.blocks {
				t.Errorf("%d blocks, want %d", blocks, tc.blocks)
			}
			if c := <-got; !bytes.Equal(c, apdu) {
				t.Errorf("card got %d bytes, want the %d-byte APDU", len(c), len(apdu))
			}
			h.noFrame()
		})
	}
	t.Run("frame of dwMaxCCIDMessageLength+1", func(t *testing.T) {
		h := newHarness(t, nil)
		h.powerOn()
		h.check(h.exchange(ccid.NewXfrBlock(0, 9, 0, 0, pattern(chunk+1))), want{ccid.MsgDataBlock, 0, 9, 0x40, 1, 0, nil})
		h.check(h.exchange(ccid.NewXfrBlock(0, 10, 0, ccid.ChainBegin, pattern(chunk+1))), want{ccid.MsgDataBlock, 0, 10, 0x40, 1, 0, nil})
		if _, _, n, _ := h.card.Counts(); n != 0 {
			t.Errorf("card saw %d commands", n)
		}
	})
	t.Run("longer than an extended APDU", func(t *testing.T) {
		h := newHarness(t, nil)
		h.powerOn()
		apdu := pattern(ccid.MaxExtendedAPDU + 1)
		seq := byte(1)
		level := ccid.ChainBegin
		for len(apdu) > chunk {
			h.exchange(ccid.NewXfrBlock(0, seq, 0, level, apdu[:chunk]))
			apdu, level, seq = apdu[chunk:], ccid.ChainContinue, seq+1
		}
		h.check(h.exchange(ccid.NewXfrBlock(0, seq, 0, ccid.ChainEnd, apdu)), want{ccid.MsgDataBlock, 0, seq, 0x40, 1, 0, nil})
		// The chain is gone: a continuation is now out of sequence.
		h.check(h.exchange(ccid.NewXfrBlock(0, seq+1, 0, ccid.ChainEnd, []byte{1})), want{ccid.MsgDataBlock, 0, seq + 1, 0x40, 8, 0, nil})
	})
	t.Run("new command restarts the chain", func(t *testing.T) {
		h := newHarness(t, nil)
		h.powerOn()
		h.exchange(ccid.NewXfrBlock(0, 1, 0, ccid.ChainBegin, []byte{0xAA, 0xBB}))
		h.check(h.exchange(ccid.NewXfrBlock(0, 2, 0, ccid.ChainNone, []byte{0, 0xCA, 0, 0x6E})),
			want{ccid.MsgDataBlock, 0, 2, 0, 0, 0, []byte{0, 0xCA, 0, 0x6E, 0x90, 0x00}})
	})
}

func TestResponseChaining(t *testing.T) {
	const chunk = 2048
	tests := []struct {
		size   int
		chains []byte
	}{
		{chunk - 1, []byte{0x00}},
		{chunk, []byte{0x00}},
		{chunk + 1, []byte{0x01, 0x02}},
		{2 * chunk, []byte{0x01, 0x02}},
		{2*chunk + 1, []byte{0x01, 0x03, 0x02}},
		{65535, append(append([]byte{0x01}, bytes.Repeat([]byte{0x03}, 30)...), 0x02)},
		{65537, append(append([]byte{0x01}, bytes.Repeat([]byte{0x03}, 31)...), 0x02)},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.size), func(t *testing.T) {
			h := newHarness(t, nil)
			h.powerOn()
			resp := pattern(tc.size)
			h.card.Respond(func([]byte) []byte { return resp })
			first := h.exchange(ccid.NewXfrBlock(0, 1, 0, 0, []byte{0, 0xCA, 0x7F, 0x21, 0, 0, 0}))
			got, chains := h.recvChained(first, 1)
			if !bytes.Equal(got, resp) {
				t.Errorf("reassembled %d bytes, want %d", len(got), len(resp))
			}
			if !bytes.Equal(chains, tc.chains) {
				t.Errorf("bChainParameter sequence % X, want % X", chains, tc.chains)
			}
			h.check(h.exchange(ccid.NewXfrBlock(0, 0x80, 0, ccid.ChainEmpty, nil)), want{ccid.MsgDataBlock, 0, 0x80, 0x40, 8, 0, nil})
		})
	}
	t.Run("new command drops the rest", func(t *testing.T) {
		h := newHarness(t, nil)
		h.powerOn()
		h.card.Answer([]byte{1, 2, 3, 4}, pattern(5000))
		if m := h.exchange(ccid.NewXfrBlock(0, 1, 0, 0, []byte{1, 2, 3, 4})); m.ChainParameter() != 1 {
			t.Fatalf("first block %v", m)
		}
		h.check(h.exchange(ccid.NewXfrBlock(0, 2, 0, 0, []byte{5})), want{ccid.MsgDataBlock, 0, 2, 0, 0, 0, []byte{5, 0x90, 0}})
		h.check(h.exchange(ccid.NewXfrBlock(0, 3, 0, ccid.ChainEmpty, nil)), want{ccid.MsgDataBlock, 0, 3, 0x40, 8, 0, nil})
	})
	t.Run("GnuPG's largest message", func(t *testing.T) {
		h := newHarness(t, func(c *ccid.Config) { c.Descriptor.MaxCCIDMessageLength = ccid.MaxHostMessageLength })
		h.powerOn()
		h.card.Respond(func([]byte) []byte { return pattern(3000) })
		first := h.exchange(ccid.NewXfrBlock(0, 1, 0, 0, []byte{1, 2, 3, 4}))
		if len(first.Data) != 2055 || first.ChainParameter() != 1 {
			t.Fatalf("first block of %d bytes, chain %d; want 2055, 1", len(first.Data), first.ChainParameter())
		}
		got, _ := h.recvChained(first, 1)
		if !bytes.Equal(got, pattern(3000)) {
			t.Error("reassembly differs")
		}
	})
}

// TestTimeExtension checks the frames a slow card produces: DataBlock, bStatus 0x80, bError 1, dwLength 0,
// the command's bSeq, once per interval, and then the answer.
func TestTimeExtension(t *testing.T) {
	h := newHarness(t, nil)
	h.powerOn()
	h.card.Block()
	h.send(ccid.NewXfrBlock(0, 0x21, 0, 0, []byte{0, 0x47, 0x80, 0, 2, 0xB6, 0, 0}))
	<-h.card.Started()
	wtx := unhex(t, "80 00000000 00 21 80 01 00")
	for i := 0; i < 3; i++ {
		if err := h.clock.Tick(h.ctx); err != nil {
			t.Fatal(err)
		}
		f, err := h.tr.Recv(h.ctx)
		if err != nil || !bytes.Equal(f, wtx) {
			t.Fatalf("time extension %d: % X, %v; want % X", i, f, err, wtx)
		}
	}
	if err := h.card.Release(h.ctx, []byte{0x61, 0x00}); err != nil {
		t.Fatal(err)
	}
	h.check(h.recv(), want{ccid.MsgDataBlock, 0, 0x21, 0, 0, 0, []byte{0x61, 0x00}})
	h.noFrame()
}

// TestTimeExtensionRealClock runs the real timer with a short interval: time extensions arrive before the
// answer and never after it.
func TestTimeExtensionRealClock(t *testing.T) {
	h := newHarness(t, func(c *ccid.Config) { c.Clock = nil; c.TimeExtensionInterval = time.Millisecond })
	h.powerOn()
	h.card.Block()
	h.send(ccid.NewXfrBlock(0, 7, 0, 0, []byte{0, 0x47, 0x80, 0}))
	<-h.card.Started()
	for i := 0; i < 3; i++ {
		h.check(h.recv(), want{ccid.MsgDataBlock, 0, 7, 0x80, 1, 0, nil})
	}
	if err := h.card.Release(h.ctx, nil); err != nil {
		t.Fatal(err)
	}
	for {
		m := h.recv()
		if m.Status() == 0x80 {
			continue // sent before the card returned
		}
		h.check(m, want{ccid.MsgDataBlock, 0, 7, 0, 0, 0, []byte{0, 0x47, 0x80, 0, 0x90, 0}})
		break
	}
	h.check(h.exchange(ccid.NewGetSlotStatus(0, 8)), want{ccid.MsgSlotStatus, 0, 8, 0, 0, 0, nil})
}

func TestSlotBusy(t *testing.T) {
	h := newHarness(t, nil)
	h.powerOn()
	h.card.Block()
	h.send(ccid.NewXfrBlock(0, 1, 0, 0, []byte{0, 0x47, 0x80, 0}))
	<-h.card.Started()
	// The reader keeps reading bulk-OUT while the card works, and answers at once.
	h.check(h.exchange(ccid.NewGetSlotStatus(0, 2)), want{ccid.MsgSlotStatus, 0, 2, 0x40, ccid.CmdSlotBusy, 0, nil})
	h.check(h.exchange(ccid.NewXfrBlock(0, 3, 0, 0, []byte{1})), want{ccid.MsgDataBlock, 0, 3, 0x40, ccid.CmdSlotBusy, 0, nil})
	h.check(h.exchange(ccid.NewIccPowerOn(0, 4, 0)), want{ccid.MsgDataBlock, 0, 4, 0x40, ccid.CmdSlotBusy, 0, nil})
	h.check(h.exchange(ccid.NewGetParameters(0, 5)), want{ccid.MsgParameters, 0, 5, 0x40, ccid.CmdSlotBusy, 0, nil})
	h.check(h.exchange(ccid.NewGetSlotStatus(1, 6)), want{ccid.MsgSlotStatus, 1, 6, 0x42, 5, 0, nil})
	if err := h.card.Release(h.ctx, nil); err != nil {
		t.Fatal(err)
	}
	h.check(h.recv(), want{ccid.MsgDataBlock, 0, 1, 0, 0, 0, []byte{0, 0x47, 0x80, 0, 0x90, 0}})
	h.check(h.exchange(ccid.NewGetSlotStatus(0, 7)), want{ccid.MsgSlotStatus, 0, 7, 0, 0, 0, nil})
	if _, _, n, _ := h.card.Counts(); n != 1 {
		t.Errorf("card saw %d commands, want 1", n)
	}
}

func TestAbort(t *testing.T) {
	apdu := []byte{0, 0x47, 0x80, 0, 2, 0xB6, 0, 0}
	t.Run("control first, command in flight", func(t *testing.T) {
		h := newHarness(t, nil)
		h.powerOn()
		h.card.Block()
		h.send(ccid.NewXfrBlock(0, 5, 0, 0, apdu))
		<-h.card.Started()
		h.r.Abort(0, 6)
		h.check(h.recv(), want{ccid.MsgDataBlock, 0, 5, 0x40, ccid.CmdAborted, 0, nil})
		h.check(h.exchange(ccid.NewGetSlotStatus(0, 7)), want{ccid.MsgSlotStatus, 0, 7, 0x40, ccid.CmdAborted, 0, nil})
		h.check(h.exchange(ccid.NewAbort(0, 6)), want{ccid.MsgSlotStatus, 0, 6, 0x00, 0, 0, nil})
		h.check(h.exchange(ccid.NewGetSlotStatus(0, 8)), want{ccid.MsgSlotStatus, 0, 8, 0x00, 0, 0, nil})
		if _, _, _, c := h.card.Counts(); c != 1 {
			t.Errorf("card operation not cancelled (%d)", c)
		}
		h.card.Unblock()
		h.check(h.exchange(ccid.NewXfrBlock(0, 9, 0, 0, []byte{1})), want{ccid.MsgDataBlock, 0, 9, 0, 0, 0, []byte{1, 0x90, 0}})
	})
	t.Run("bulk first, command in flight", func(t *testing.T) {
		h := newHarness(t, nil)
		h.powerOn()
		h.card.Block()
		h.send(ccid.NewXfrBlock(0, 5, 0, 0, apdu))
		<-h.card.Started()
		h.send(ccid.NewAbort(0, 6))
		// The aborted command's answer comes first, then the Abort's SlotStatus.
		h.check(h.recv(), want{ccid.MsgDataBlock, 0, 5, 0x40, ccid.CmdAborted, 0, nil})
		h.check(h.recv(), want{ccid.MsgSlotStatus, 0, 6, 0x00, 0, 0, nil})
		h.check(h.exchange(ccid.NewXfrBlock(0, 7, 0, 0, apdu)), want{ccid.MsgDataBlock, 0, 7, 0x40, ccid.CmdAborted, 0, nil})
		h.r.Abort(0, 6)
		h.check(h.exchange(ccid.NewGetSlotStatus(0, 8)), want{ccid.MsgSlotStatus, 0, 8, 0x00, 0, 0, nil})
		if _, _, _, c := h.card.Counts(); c != 1 {
			t.Errorf("card operation not cancelled (%d)", c)
		}
	})
	t.Run("halves with different bSeq do not pair", func(t *testing.T) {
		h := newHarness(t, nil)
		h.powerOn()
		h.r.Abort(0, 9)
		h.check(h.exchange(ccid.NewAbort(0, 10)), want{ccid.MsgSlotStatus, 0, 10, 0x00, 0, 0, nil})
		h.check(h.exchange(ccid.NewGetSlotStatus(0, 11)), want{ccid.MsgSlotStatus, 0, 11, 0x40, ccid.CmdAborted, 0, nil})
		h.r.Abort(0, 10)
		h.check(h.exchange(ccid.NewGetSlotStatus(0, 12)), want{ccid.MsgSlotStatus, 0, 12, 0x00, 0, 0, nil})
	})
	t.Run("abort drops a response chain", func(t *testing.T) {
		h := newHarness(t, nil)
		h.powerOn()
		h.card.Respond(func([]byte) []byte { return pattern(5000) })
		h.exchange(ccid.NewXfrBlock(0, 1, 0, 0, []byte{1, 2, 3, 4}))
		h.r.Abort(0, 2)
		h.exchange(ccid.NewAbort(0, 2))
		h.check(h.exchange(ccid.NewXfrBlock(0, 3, 0, ccid.ChainEmpty, nil)), want{ccid.MsgDataBlock, 0, 3, 0x40, 8, 0, nil})
	})
	t.Run("abort during PowerOn leaves the card inactive", func(t *testing.T) {
		h := newHarness(t, nil)
		blocking := &blockingPowerOn{started: make(chan struct{})}
		if err := h.r.Remove(0); err != nil {
			t.Fatal(err)
		}
		if err := h.r.Insert(0, blocking); err != nil {
			t.Fatal(err)
		}
		h.send(ccid.NewIccPowerOn(0, 1, 0))
		<-blocking.started
		h.r.Abort(0, 2)
		h.check(h.recv(), want{ccid.MsgDataBlock, 0, 1, 0x41, ccid.CmdAborted, 0, nil})
		h.check(h.exchange(ccid.NewAbort(0, 2)), want{ccid.MsgSlotStatus, 0, 2, 0x01, 0, 1, nil})
	})
	t.Run("unknown slot", func(t *testing.T) {
		h := newHarness(t, nil)
		h.r.Abort(3, 1) // ignored
		h.check(h.exchange(ccid.NewGetSlotStatus(0, 2)), want{ccid.MsgSlotStatus, 0, 2, 0x01, 0, 1, nil})
	})
}

// blockingPowerOn is a card whose PowerOn waits for its context.
type blockingPowerOn struct{ started chan struct{} }

func (c *blockingPowerOn) PowerOn(ctx context.Context) ([]byte, error) {
	close(c.started)
	<-ctx.Done()
	return nil, ctx.Err()
}
func (c *blockingPowerOn) PowerOff() error { return nil }
func (c *blockingPowerOn) Transmit(context.Context, []byte) ([]byte, error) {
	return nil, errors.New("not powered")
}

func TestRemoveDuringExchange(t *testing.T) {
	h := newHarness(t, nil)
	h.powerOn()
	h.card.Block()
	h.send(ccid.NewXfrBlock(0, 3, 0, 0, []byte{0, 0x47, 0x80, 0}))
	<-h.card.Started()
	if err := h.r.Remove(0); err != nil {
		t.Fatal(err)
	}
	// bStatus 0x42 (failed, no ICC) and ICC_MUTE: libccid returns IFD_ICC_NOT_PRESENT.
	h.check(h.recv(), want{ccid.MsgDataBlock, 0, 3, 0x42, ccid.ICCMute, 0, nil})
	if n := h.notification(); !bytes.Equal(n, []byte{0x50, 0x02}) {
		t.Errorf("removal notification % X, want 50 02", n)
	}
	if _, _, _, c := h.card.Counts(); c != 1 {
		t.Errorf("card operation not cancelled")
	}
	h.check(h.exchange(ccid.NewGetSlotStatus(0, 4)), want{ccid.MsgSlotStatus, 0, 4, 0x02, 0, 1, nil})
	h.check(h.exchange(ccid.NewXfrBlock(0, 5, 0, 0, []byte{1})), want{ccid.MsgDataBlock, 0, 5, 0x42, ccid.ICCMute, 0, nil})
	card2 := ccidtest.NewCard([]byte{0x3B, 0x00})
	if err := h.r.Insert(0, card2); err != nil {
		t.Fatal(err)
	}
	if n := h.notification(); !bytes.Equal(n, []byte{0x50, 0x03}) {
		t.Errorf("insertion notification % X, want 50 03", n)
	}
	h.check(h.exchange(ccid.NewGetSlotStatus(0, 6)), want{ccid.MsgSlotStatus, 0, 6, 0x01, 0, 1, nil})
	h.check(h.exchange(ccid.NewIccPowerOn(0, 7, 0)), want{ccid.MsgDataBlock, 0, 7, 0, 0, 0, []byte{0x3B, 0x00}})
	h.check(h.exchange(ccid.NewGetParameters(0, 8)), want{ccid.MsgParameters, 0, 8, 0, 0, 1, defaultParams})
}

func TestInsertRemoveErrors(t *testing.T) {
	r, err := ccid.NewReader(ccid.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	c := ccidtest.NewCard(nil)
	if err := r.Remove(0); !errors.Is(err, ccid.ErrSlotEmpty) {
		t.Errorf("Remove empty: %v", err)
	}
	if err := r.Insert(1, c); !errors.Is(err, ccid.ErrNoSlot) {
		t.Errorf("Insert slot 1: %v", err)
	}
	if err := r.Insert(-1, c); !errors.Is(err, ccid.ErrNoSlot) {
		t.Errorf("Insert slot -1: %v", err)
	}
	if err := r.Insert(0, nil); err == nil {
		t.Error("Insert nil card")
	}
	if err := r.Insert(0, c); err != nil {
		t.Fatal(err)
	}
	if err := r.Insert(0, c); !errors.Is(err, ccid.ErrSlotFull) {
		t.Errorf("Insert twice: %v", err)
	}
	if err := r.ReportHardwareError(0, 7, ccid.HardwareErrorOvercurrent); err != nil {
		t.Fatal(err)
	}
	if err := r.ReportHardwareError(2, 7, ccid.HardwareErrorOvercurrent); !errors.Is(err, ccid.ErrNoSlot) {
		t.Errorf("ReportHardwareError slot 2: %v", err)
	}
	if n := <-r.Notifications(); !bytes.Equal(n, []byte{0x50, 0x03}) {
		t.Errorf("notification % X", n)
	}
	if n := <-r.Notifications(); !bytes.Equal(n, []byte{0x51, 0x00, 0x07, 0x01}) {
		t.Errorf("hardware error % X", n)
	}
	cfg := ccid.DefaultConfig()
	cfg.TimeExtensionInterval = 0
	if _, err := ccid.NewReader(cfg); err == nil {
		t.Error("NewReader accepted a zero time extension interval")
	}
}

func TestMultiSlot(t *testing.T) {
	for _, busySlots := range []byte{1, 3} {
		t.Run(fmt.Sprintf("bMaxCCIDBusySlots %d", busySlots), func(t *testing.T) {
			h := newHarness(t, func(c *ccid.Config) {
				c.Descriptor.MaxSlotIndex = 2
				c.Descriptor.MaxCCIDBusySlots = busySlots
			})
			c2 := ccidtest.NewCard([]byte{0x3B, 0x00})
			if err := h.r.Insert(2, c2); err != nil {
				t.Fatal(err)
			}
			// Slot 0 present, slot 2 present and changed: bits 0, 4 and 5.
			if n := h.notification(); !bytes.Equal(n, []byte{0x50, 0x31}) {
				t.Errorf("notification % X, want 50 31", n)
			}
			h.powerOn()
			h.card.Block()
			h.send(ccid.NewXfrBlock(0, 1, 0, 0, []byte{0, 0x47, 0x80, 0}))
			<-h.card.Started()
			if busySlots == 1 {
				// Slot 0 uses the only busy slot: a card operation on slot 2 must wait.
				h.check(h.exchange(ccid.NewIccPowerOn(2, 2, 0)), want{ccid.MsgDataBlock, 2, 2, 0x41, ccid.CmdSlotBusy, 0, nil})
			} else {
				h.check(h.exchange(ccid.NewIccPowerOn(2, 2, 0)), want{ccid.MsgDataBlock, 2, 2, 0, 0, 0, []byte{0x3B, 0x00}})
				h.check(h.exchange(ccid.NewXfrBlock(2, 3, 0, 0, []byte{9})), want{ccid.MsgDataBlock, 2, 3, 0, 0, 0, []byte{9, 0x90, 0}})
			}
			// Commands that do not need a card are answered either way.
			h.check(h.exchange(ccid.NewGetSlotStatus(1, 4)), want{ccid.MsgSlotStatus, 1, 4, 0x02, 0, 1, nil})
			h.check(h.exchange(ccid.NewGetSlotStatus(3, 5)), want{ccid.MsgSlotStatus, 3, 5, 0x42, 5, 0, nil})
			h.check(h.exchange(ccid.NewGetSlotStatus(0, 6)), want{ccid.MsgSlotStatus, 0, 6, 0x40, ccid.CmdSlotBusy, 0, nil})
			if err := h.card.Release(h.ctx, nil); err != nil {
				t.Fatal(err)
			}
			h.check(h.recv(), want{ccid.MsgDataBlock, 0, 1, 0, 0, 0, []byte{0, 0x47, 0x80, 0, 0x90, 0}})
			h.check(h.exchange(ccid.NewIccPowerOn(2, 7, 0)), want{ccid.MsgDataBlock, 2, 7, 0, 0, 0, []byte{0x3B, 0x00}})
		})
	}
}

// TestNotificationsNeverBlock fills the notification channel without reading it: Insert and Remove never
// block, the newest state is kept and changed bits of dropped messages survive in later ones.
func TestNotificationsNeverBlock(t *testing.T) {
	cfg := ccid.DefaultConfig()
	cfg.Descriptor.MaxSlotIndex = 1
	r, err := ccid.NewReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Insert(0, ccidtest.NewCard(nil)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if err := r.Insert(1, ccidtest.NewCard(nil)); err != nil {
			t.Fatal(err)
		}
		if err := r.Remove(1); err != nil {
			t.Fatal(err)
		}
	}
	var msgs [][]byte
	for len(r.Notifications()) > 0 {
		msgs = append(msgs, <-r.Notifications())
	}
	if len(msgs) == 0 || len(msgs) > 8 {
		t.Fatalf("%d notifications queued", len(msgs))
	}
	var changed byte
	for _, m := range msgs {
		changed |= m[1] & 0xAA
	}
	if changed != 0x0A {
		t.Errorf("changed bits 0x%02X, want slots 0 and 1 (0x0A)", changed)
	}
	if last := msgs[len(msgs)-1]; last[1]&0x05 != 0x01 {
		t.Errorf("last notification % X: want slot 0 present, slot 1 absent", last)
	}
}

// TestServeAgain checks that slot state survives a new transport and that two Serve calls cannot overlap.
func TestServeAgain(t *testing.T) {
	h := newHarness(t, nil)
	h.powerOn()
	if err := h.r.Serve(h.ctx, ccidtest.NewTransport()); !errors.Is(err, ccid.ErrServing) {
		t.Errorf("second Serve: %v", err)
	}
	h.stop()
	tr := ccidtest.NewTransport()
	done := make(chan error, 1)
	go func() { done <- h.r.Serve(h.ctx, tr) }()
	a, err := tr.Exchange(h.ctx, ccid.NewGetSlotStatus(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	checkMsg(t, a, want{ccid.MsgSlotStatus, 0, 1, 0x00, 0, 0, nil})
	tr.Close()
	if err := <-done; err == nil {
		t.Error("Serve returned nil")
	}
}

// TestServeCancelsCardOperations ends Serve while a card works: the card sees its context cancelled and Serve
// returns only after it did.
func TestServeCancelsCardOperations(t *testing.T) {
	h := newHarness(t, nil)
	h.powerOn()
	h.card.Block()
	h.send(ccid.NewXfrBlock(0, 1, 0, 0, []byte{1}))
	<-h.card.Started()
	h.tr.Close()
	err := <-h.done
	h.done <- err
	if err == nil {
		t.Fatal("Serve returned nil")
	}
	if _, _, _, c := h.card.Counts(); c != 1 {
		t.Errorf("card operation not cancelled")
	}
}

type failingTransport struct{ *ccidtest.Transport }

func (failingTransport) WriteFrame(context.Context, []byte) error { return errors.New("endpoint gone") }

func TestWriteErrorEndsServe(t *testing.T) {
	r, err := ccid.NewReader(ccid.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	tr := failingTransport{ccidtest.NewTransport()}
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, tr) }()
	if err := tr.SendMessage(ctx, ccid.NewGetSlotStatus(0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || !bytes.Contains([]byte(err.Error()), []byte("endpoint gone")) {
		t.Errorf("Serve = %v, want the write error", err)
	}
}

// interceptor drops commands with bSeq 0x66 and writes answers with bSeq 0x77 twice.
type interceptor struct{}

func (interceptor) Command(_ context.Context, f []byte) []byte {
	if len(f) > 6 && f[6] == 0x66 {
		return nil
	}
	return f
}

func (interceptor) Answer(_ context.Context, f []byte, write func([]byte) error) error {
	if f[6] == 0x77 {
		if err := write(f); err != nil {
			return err
		}
	}
	return write(f)
}

func TestInterceptor(t *testing.T) {
	h := newHarness(t, func(c *ccid.Config) { c.Interceptor = interceptor{} })
	h.send(ccid.NewGetSlotStatus(0, 0x66))
	h.check(h.exchange(ccid.NewGetSlotStatus(0, 0x77)), want{ccid.MsgSlotStatus, 0, 0x77, 1, 0, 1, nil})
	h.check(h.recv(), want{ccid.MsgSlotStatus, 0, 0x77, 1, 0, 1, nil})
	h.check(h.exchange(ccid.NewGetSlotStatus(0, 0x78)), want{ccid.MsgSlotStatus, 0, 0x78, 1, 0, 1, nil})
}

// TestRemoveAndReinsertDuringExchange: the exchange still reports the removal (0x42 FE), not the new card.
func TestRemoveAndReinsertDuringExchange(t *testing.T) {
	h := newHarness(t, nil)
	h.powerOn()
	h.card.Block()
	h.send(ccid.NewXfrBlock(0, 3, 0, 0, []byte{0, 0x47, 0x80, 0}))
	<-h.card.Started()
	if err := h.r.Remove(0); err != nil {
		t.Fatal(err)
	}
	if err := h.r.Insert(0, ccidtest.NewCard(nil)); err != nil {
		t.Fatal(err)
	}
	h.check(h.recv(), want{ccid.MsgDataBlock, 0, 3, 0x42, ccid.ICCMute, 0, nil})
	h.check(h.exchange(ccid.NewGetSlotStatus(0, 4)), want{ccid.MsgSlotStatus, 0, 4, 0x01, 0, 1, nil})
	if a, b := h.notification(), h.notification(); !bytes.Equal(a, []byte{0x50, 0x02}) || !bytes.Equal(b, []byte{0x50, 0x03}) {
		t.Errorf("notifications % X, % X; want 50 02, 50 03", a, b)
	}
}
