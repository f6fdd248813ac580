package vpcd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxFrame is the largest payload a frame can carry: the length prefix is a
// 16-bit big-endian integer (vpcd.c, htons/ntohs).
const MaxFrame = 0xFFFF

// Control messages are one-byte frames that vpcd sends to the card
// (vsmartcard vpcd.h). Any longer frame is a C-APDU.
const (
	CtrlPowerOff = 0x00 // power the card off; no reply
	CtrlPowerOn  = 0x01 // power the card on; no reply
	CtrlReset    = 0x02 // warm reset; no reply
	CtrlGetATR   = 0x04 // reply with the ATR
)

// ErrEmptyFrame is returned by WriteFrame for an empty payload: vpcd treats a
// zero-length reply as a broken connection and ejects the card.
var ErrEmptyFrame = errors.New("vpcd: empty frame")

// ReadFrame reads one length-prefixed frame from r. A frame whose prefix says
// zero bytes is returned as an empty, non-nil slice. A stream that ends inside
// a frame gives io.ErrUnexpectedEOF; one that ends between frames gives io.EOF.
func ReadFrame(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint16(hdr[:])
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("vpcd: read %d-byte frame: %w", n, err)
	}
	return p, nil
}

// WriteFrame writes p as one length-prefixed frame with a single Write call.
// It refuses an empty payload (ErrEmptyFrame) and one longer than MaxFrame.
func WriteFrame(w io.Writer, p []byte) error {
	if len(p) == 0 {
		return ErrEmptyFrame
	}
	if len(p) > MaxFrame {
		return fmt.Errorf("vpcd: frame of %d bytes exceeds %d", len(p), MaxFrame)
	}
	buf := make([]byte, 2+len(p))
	binary.BigEndian.PutUint16(buf, uint16(len(p)))
	copy(buf[2:], p)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("vpcd: write frame: %w", err)
	}
	return nil
}
