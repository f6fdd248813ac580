// Package vpcd serves a card to pcscd through vsmartcard's vpcd driver
// (Debian package vsmartcard-vpcd), so the card can be used by GnuPG, OpenSC
// and any PC/SC client without USB.
//
// vpcd is the TCP server (by default on 127.0.0.1:35963, see
// /etc/reader.conf.d/vpcd); this package is its client, the "virtual ICC". The
// protocol is a stream of frames, each a 2-byte big-endian length and a
// payload. vpcd sends one-byte control messages (power off, power on, reset,
// get ATR) and C-APDUs; the card replies to get ATR with the ATR and to each
// C-APDU with its R-APDU, and to nothing else. A reply is never empty: vpcd
// ejects the card when it reads a zero-length frame.
//
// The package knows nothing of OpenPGP or CCID: it needs only the small Card
// interface below. It never logs APDU data bytes (a VERIFY carries a PIN),
// only the command header, lengths and status words.
package vpcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"
)

// DefaultAddr is where Debian's vpcd listens for the first virtual card
// (DEVICENAME /dev/null:0x8C7B).
const DefaultAddr = "127.0.0.1:35963"

// Card is what the client drives. card.Card satisfies it.
type Card interface {
	// PowerOn resets the card's security state and returns its ATR.
	PowerOn(ctx context.Context) (atr []byte, err error)
	// PowerOff ends the card session.
	PowerOff() error
	// Transmit runs one C-APDU and returns the R-APDU (data and SW1 SW2).
	Transmit(ctx context.Context, capdu []byte) (rapdu []byte, err error)
}

// swExecError (6F00, "no precise diagnosis", ISO 7816-4 §5.1.3) answers a
// C-APDU the card could not process, so that vpcd never sees an empty reply.
var swExecError = []byte{0x6F, 0x00}

// Client connects a Card to vpcd and keeps it connected.
type Client struct {
	Addr   string       // vpcd address; empty means DefaultAddr
	Card   Card         // the card to serve
	Logger *slog.Logger // nil discards logs

	// MinBackoff and MaxBackoff bound the wait between connection attempts;
	// zero values mean 100 ms and 5 s. The wait doubles after each failure
	// and starts over after a session that lasted longer than MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
}

func (c *Client) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// Run connects to vpcd and serves the card until ctx is done, reconnecting
// with backoff whenever vpcd is unreachable or closes the connection (pcscd
// restarted, card ejected). It returns ctx's error.
func (c *Client) Run(ctx context.Context) error {
	if c.Card == nil {
		return errors.New("vpcd: Client has no Card")
	}
	addr := c.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	minB, maxB := c.MinBackoff, c.MaxBackoff
	if minB <= 0 {
		minB = 100 * time.Millisecond
	}
	if maxB < minB {
		maxB = max(5*time.Second, minB)
	}
	log := c.logger()
	var d net.Dialer
	backoff := minB
	failing := false // the last attempt failed too: log only the first of a streak
	for {
		start := time.Now()
		conn, err := d.DialContext(ctx, "tcp", addr)
		switch {
		case err == nil:
			failing = false
			log.Info("vpcd: connected", "addr", addr)
			err = Serve(ctx, conn, c.Card, log)
			conn.Close()
			if ctx.Err() == nil {
				log.Warn("vpcd: connection ended", "addr", addr, "err", err)
			}
		case ctx.Err() != nil:
		case !failing:
			failing = true
			log.Warn("vpcd: cannot connect; is pcscd running with the vpcd reader? retrying", "addr", addr, "err", err)
		default:
			log.Debug("vpcd: dial failed", "addr", addr, "err", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(start) > maxB {
			backoff = minB
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, maxB)
	}
}

// Serve runs one vpcd session on conn until the peer closes it, a write
// fails or ctx is done (then conn is closed to unblock the read). It powers
// the card off when the session ends, as vpcd counts a lost connection as a
// removed card. It returns nil when the peer closed the connection cleanly.
func Serve(ctx context.Context, conn net.Conn, card Card, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	s := session{card: card, log: log}
	err := s.serve(ctx, conn)
	if s.powered {
		if perr := card.PowerOff(); perr != nil {
			log.Warn("vpcd: power off after session", "err", perr)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// session is the state of one connection: whether the card is powered and
// the ATR it last gave.
type session struct {
	card    Card
	log     *slog.Logger
	powered bool
	atr     []byte
}

// serve reads frames from rw and answers them until the stream ends.
func (s *session) serve(ctx context.Context, rw io.ReadWriter) error {
	for {
		msg, err := ReadFrame(rw)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		reply, err := s.handle(ctx, msg)
		if err != nil {
			return err
		}
		if reply == nil {
			continue
		}
		if err := WriteFrame(rw, reply); err != nil {
			return err
		}
	}
}

// handle answers one message; a nil reply means none is due. An error ends
// the session (vpcd then sees the card removed).
func (s *session) handle(ctx context.Context, msg []byte) ([]byte, error) {
	if len(msg) == 0 {
		return nil, errors.New("vpcd: empty message from vpcd")
	}
	if len(msg) > 1 {
		return s.transmit(ctx, msg), nil
	}
	switch msg[0] {
	case CtrlPowerOff:
		s.log.Debug("vpcd: power off")
		s.powerOff()
		return nil, nil
	case CtrlPowerOn:
		s.log.Debug("vpcd: power on")
		return nil, s.powerOn(ctx)
	case CtrlReset:
		s.log.Debug("vpcd: reset")
		s.powerOff()
		return nil, s.powerOn(ctx)
	case CtrlGetATR:
		// vpcd asks for the ATR on every presence poll (400 ms); answer
		// from the cache so that polling never resets the card.
		if s.atr == nil {
			if err := s.powerOn(ctx); err != nil {
				return nil, err
			}
		}
		return s.atr, nil
	default:
		s.log.Warn("vpcd: unknown control message", "code", msg[0])
		return nil, nil
	}
}

func (s *session) powerOn(ctx context.Context) error {
	atr, err := s.card.PowerOn(ctx)
	if err != nil {
		return fmt.Errorf("vpcd: power on card: %w", err)
	}
	if len(atr) == 0 || len(atr) > MaxFrame {
		return fmt.Errorf("vpcd: card gave a %d-byte ATR", len(atr))
	}
	s.atr = append([]byte(nil), atr...)
	s.powered = true
	return nil
}

func (s *session) powerOff() {
	if !s.powered {
		return
	}
	s.powered = false
	if err := s.card.PowerOff(); err != nil {
		s.log.Warn("vpcd: power off", "err", err)
	}
}

// transmit runs a C-APDU and returns a reply that is never empty and always
// fits a frame. Only the header and lengths are logged, never data bytes.
func (s *session) transmit(ctx context.Context, capdu []byte) []byte {
	start := time.Now()
	if !s.powered {
		if err := s.powerOn(ctx); err != nil {
			s.log.Warn("vpcd: APDU to a card that cannot power on", "err", err)
			return swExecError
		}
	}
	rapdu, err := s.card.Transmit(ctx, capdu)
	hdr := capdu[:min(4, len(capdu))]
	switch {
	case err != nil:
		s.log.Warn("vpcd: transmit failed", "header", fmt.Sprintf("% X", hdr), "len", len(capdu), "err", err)
		return swExecError
	case len(rapdu) < 2 || len(rapdu) > MaxFrame:
		s.log.Warn("vpcd: card gave a malformed R-APDU", "header", fmt.Sprintf("% X", hdr), "rlen", len(rapdu))
		return swExecError
	}
	s.log.Debug("vpcd: apdu", "header", fmt.Sprintf("% X", hdr), "len", len(capdu),
		"sw", fmt.Sprintf("%02X%02X", rapdu[len(rapdu)-2], rapdu[len(rapdu)-1]),
		"rlen", len(rapdu), "took", time.Since(start))
	return rapdu
}
