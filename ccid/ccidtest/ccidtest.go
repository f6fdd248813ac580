// Package ccidtest provides an in-memory ccid.Transport, a scriptable test card and a manual clock for tests of
// package ccid and of packages built on it, as net/http/httptest does for net/http.
//
// It is for tests only: nothing here touches USB or a real card.
package ccidtest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// ErrClosed is returned by a Transport after Close.
var ErrClosed = fmt.Errorf("ccidtest: transport closed: %w", io.EOF)

// Transport is an in-memory ccid.Transport. The test plays the host: Send queues a host frame, Recv returns the
// next device frame. Device frames are copied; up to 64 wait unread before WriteFrame blocks.
type Transport struct {
	in        chan []byte
	out       chan []byte
	closed    chan struct{}
	closeOnce sync.Once
}

// NewTransport returns an open transport.
func NewTransport() *Transport {
	return &Transport{in: make(chan []byte), out: make(chan []byte, 64), closed: make(chan struct{})}
}

// ReadFrame implements ccid.Transport.
func (t *Transport) ReadFrame(ctx context.Context) ([]byte, error) {
	select {
	case f := <-t.in:
		return f, nil
	case <-t.closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// WriteFrame implements ccid.Transport.
func (t *Transport) WriteFrame(ctx context.Context, frame []byte) error {
	select {
	case <-t.closed: // checked first: the buffer may have room
		return ErrClosed
	default:
	}
	select {
	case t.out <- bytes.Clone(frame):
		return nil
	case <-t.closed:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close makes ReadFrame and WriteFrame fail with ErrClosed (wrapping io.EOF).
func (t *Transport) Close() { t.closeOnce.Do(func() { close(t.closed) }) }

// Send hands one host frame to the reader; it returns once the reader has taken it.
func (t *Transport) Send(ctx context.Context, frame []byte) error {
	select {
	case t.in <- frame:
		return nil
	case <-t.closed:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("ccidtest: send: %w", ctx.Err())
	}
}

// SendMessage encodes m and sends it.
func (t *Transport) SendMessage(ctx context.Context, m ccid.Message) error {
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	return t.Send(ctx, b)
}

// Recv returns the next device frame.
func (t *Transport) Recv(ctx context.Context) ([]byte, error) {
	select {
	case f := <-t.out:
		return f, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("ccidtest: recv: %w", ctx.Err())
	}
}

// RecvMessage returns the next device frame, decoded.
func (t *Transport) RecvMessage(ctx context.Context) (ccid.Message, error) {
	f, err := t.Recv(ctx)
	if err != nil {
		return ccid.Message{}, err
	}
	return ccid.ParseMessage(f)
}

// Exchange sends m and returns the next device frame, decoded.
func (t *Transport) Exchange(ctx context.Context, m ccid.Message) (ccid.Message, error) {
	if err := t.SendMessage(ctx, m); err != nil {
		return ccid.Message{}, err
	}
	return t.RecvMessage(ctx)
}

// Pending reports how many device frames wait unread.
func (t *Transport) Pending() int { return len(t.out) }

// OpenPGPATR is an OpenPGP card v2 style ATR with a valid TCK: T=1, TA1 0x18, TC1 0xFF, IFSC 254, TB3 0x75.
var OpenPGPATR = []byte{0x3B, 0xDA, 0x18, 0xFF, 0x81, 0xB1, 0xFE, 0x75, 0x1F, 0x03, 0x00, 0x31, 0xC5, 0x73, 0xC0,
	0x01, 0x40, 0x00, 0x90, 0x00, 0x0C}

// Card is a scriptable ccid.Card. Transmit answers from a table of exact command APDUs, else with Respond, else
// by echoing the command followed by 90 00. Block makes Transmit wait until the test releases it.
type Card struct {
	mu          sync.Mutex
	atr         []byte
	answers     map[string][]byte
	respond     func(capdu []byte) []byte
	powerOnErr  error
	transmitErr error
	blocked     bool
	started     chan []byte
	release     chan []byte
	powerOns    int
	powerOffs   int
	transmits   int
	cancelled   int
}

// NewCard returns a card with the given ATR (OpenPGPATR if nil).
func NewCard(atr []byte) *Card {
	if atr == nil {
		atr = OpenPGPATR
	}
	return &Card{atr: bytes.Clone(atr), answers: map[string][]byte{},
		started: make(chan []byte, 1), release: make(chan []byte)}
}

// Answer makes Transmit answer capdu with rapdu.
func (c *Card) Answer(capdu, rapdu []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answers[hex.EncodeToString(capdu)] = bytes.Clone(rapdu)
}

// Respond sets the answer for commands not in the table (nil: echo + 90 00).
func (c *Card) Respond(f func(capdu []byte) []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.respond = f
}

// FailPowerOn makes PowerOn fail with err (nil: succeed).
func (c *Card) FailPowerOn(err error) { c.mu.Lock(); c.powerOnErr = err; c.mu.Unlock() }

// FailTransmit makes Transmit fail with err (nil: succeed).
func (c *Card) FailTransmit(err error) { c.mu.Lock(); c.transmitErr = err; c.mu.Unlock() }

// Block makes every later Transmit announce its command on Started and wait for Release or its context.
func (c *Card) Block() { c.mu.Lock(); c.blocked = true; c.mu.Unlock() }

// Unblock undoes Block for later Transmits.
func (c *Card) Unblock() { c.mu.Lock(); c.blocked = false; c.mu.Unlock() }

// Started delivers a copy of the command of each blocked Transmit once it waits.
func (c *Card) Started() <-chan []byte { return c.started }

// Release lets one blocked Transmit return. A nil rapdu gives the normal answer; otherwise rapdu is returned.
func (c *Card) Release(ctx context.Context, rapdu []byte) error {
	select {
	case c.release <- rapdu:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ccidtest: release: %w", ctx.Err())
	}
}

// PowerOn implements ccid.Card.
func (c *Card) PowerOn(ctx context.Context) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.powerOns++
	if c.powerOnErr != nil {
		return nil, c.powerOnErr
	}
	return bytes.Clone(c.atr), nil
}

// PowerOff implements ccid.Card.
func (c *Card) PowerOff() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.powerOffs++
	return nil
}

// Transmit implements ccid.Card.
func (c *Card) Transmit(ctx context.Context, capdu []byte) ([]byte, error) {
	c.mu.Lock()
	c.transmits++
	blocked, err := c.blocked, c.transmitErr
	rapdu, ok := c.answers[hex.EncodeToString(capdu)]
	respond := c.respond
	c.mu.Unlock()
	if blocked {
		select {
		case c.started <- bytes.Clone(capdu):
		case <-ctx.Done():
			return c.cancel(ctx)
		}
		select {
		case r := <-c.release:
			if r != nil {
				return r, nil
			}
		case <-ctx.Done():
			return c.cancel(ctx)
		}
	}
	switch {
	case err != nil:
		return nil, err
	case ok:
		return bytes.Clone(rapdu), nil
	case respond != nil:
		return respond(capdu), nil
	}
	out := make([]byte, len(capdu)+2)
	copy(out, capdu)
	out[len(capdu)], out[len(capdu)+1] = 0x90, 0x00
	return out, nil
}

func (c *Card) cancel(ctx context.Context) ([]byte, error) {
	c.mu.Lock()
	c.cancelled++
	c.mu.Unlock()
	return nil, ctx.Err()
}

// Counts returns how many times each method ran and how many Transmits ended by cancellation.
func (c *Card) Counts() (powerOns, powerOffs, transmits, cancelled int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.powerOns, c.powerOffs, c.transmits, c.cancelled
}

// ManualClock is a ccid.Clock whose timers fire only when the test calls Tick.
type ManualClock struct{ ch chan time.Time }

// NewManualClock returns a clock with no pending tick.
func NewManualClock() *ManualClock { return &ManualClock{ch: make(chan time.Time)} }

// NewTimer implements ccid.Clock. Every timer of the clock shares one channel.
func (c *ManualClock) NewTimer(time.Duration) ccid.Timer { return manualTimer{c.ch} }

// Tick fires the timer a reader goroutine is waiting on; it blocks until one takes the tick or ctx ends.
func (c *ManualClock) Tick(ctx context.Context) error {
	select {
	case c.ch <- time.Now():
		return nil
	case <-ctx.Done():
		return errors.New("ccidtest: tick: no timer waiting")
	}
}

type manualTimer struct{ ch chan time.Time }

func (t manualTimer) C() <-chan time.Time { return t.ch }
func (manualTimer) Reset(time.Duration)   {}
func (manualTimer) Stop()                 {}
