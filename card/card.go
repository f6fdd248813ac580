package card

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/ccidgadget/ccidgadget/store"
)

// Presence asks the user to confirm one private-key operation when its user interaction flag (DO D6–D8) is on.
// Confirm blocks until the user confirms (nil), refuses or times out (an error), or ctx ends.
// A button or a prompt plugs in here.
type Presence interface {
	Confirm(ctx context.Context, op Operation) error
}

// Operation names the private-key operation a Presence check is for.
type Operation int

// The operations guarded by UIF D6 (sign), D7 (decrypt) and D8 (authenticate).
const (
	OpSign Operation = iota + 1
	OpDecrypt
	OpAuthenticate
)

func (o Operation) String() string {
	switch o {
	case OpSign:
		return "sign"
	case OpDecrypt:
		return "decrypt"
	case OpAuthenticate:
		return "authenticate"
	}
	return fmt.Sprintf("Operation(%d)", int(o))
}

// Options configure New.
type Options struct {
	Rand     io.Reader    // randomness for key generation and GET CHALLENGE; nil means crypto/rand
	Logger   *slog.Logger // command log (INS, P1, P2, status, lengths); nil discards. Never receives PIN or key bytes
	Presence Presence     // user-presence check for UIF (D6–D8); nil means always present

	// ShortAPDUOnly says the card sits behind a reader that exchanges short APDUs only (CCID dwFeatures at the
	// short APDU level, as persona gnuk's). The card then says so: the historical bytes (5F52, in 6E and in the
	// ATR) announce command chaining without extended Lc/Le, DO 7F66 is absent, C0 allows GET CHALLENGE of up
	// to 256 bytes, and an APDU with extended length fields is refused with 6700. Long data still arrives by
	// command chaining and long answers leave in parts of at most 256 bytes with 61xx and GET RESPONSE.
	// False (the default) announces and accepts extended length.
	ShortAPDUOnly bool
}

// errExtendedLength refuses an extended-length APDU when Options.ShortAPDUOnly is set.
var errExtendedLength = errors.New("card: extended length fields behind a short-APDU reader")

// ErrNotPowered is returned by Transmit before PowerOn or after PowerOff.
var ErrNotPowered = errors.New("card: not powered")

// Card is the OpenPGP card application over a store. It satisfies the reader's card interface
// (PowerOn, PowerOff, Transmit). Its methods are safe for concurrent use; commands run one at a time.
type Card struct {
	st       *store.Store
	rand     io.Reader
	log      *slog.Logger
	presence Presence

	shortAPDU bool // Options.ShortAPDUOnly

	serial [4]byte

	mu         sync.Mutex
	powered    bool
	terminated bool
	s          session
}

// session is the security state that lives only while the card is powered (OpenPGP card 3.4.1 §4.3, §7.2.2).
type session struct {
	pw1Sign bool           // PW1 verified with P2=81 (PSO:CDS)
	pw1User bool           // PW1 verified with P2=82 (other PW1 commands)
	pw3     bool           // PW3 verified
	dk      *store.DataKey // unwrapped by the last successful PIN check; opens private keys

	occ int // selected occurrence of 7F21 (SELECT DATA); 0 = the AUT certificate

	decRole int // key used by PSO:DECIPHER (MSE B8): roleDec or roleAut
	autRole int // key used by INTERNAL AUTHENTICATE (MSE A4): roleAut or roleDec

	kdfPW3 []byte // the initial PW3 hash of a KDF-DO written in this session (see putKDF)

	chain   *chain // command chain being received
	pending []byte // response bytes waiting for GET RESPONSE
}

// chain collects the data of a command chain (ISO/IEC 7816-4 §5.4.1); every link repeats INS, P1 and P2.
type chain struct {
	ins, p1, p2 byte
	data        []byte
}

// maxChainData bounds the data of one chained command: the largest thing a host sends is an RSA-4096 import
// in CRT form with modulus (about 2.3 KiB) or a certificate (maxCertLen).
const maxChainData = 0x4000

// New opens the OpenPGP application over a store. The card starts powered off.
func New(st *store.Store, opts Options) (*Card, error) {
	if st == nil {
		return nil, errors.New("card: nil store")
	}
	c := &Card{st: st, rand: opts.Rand, log: opts.Logger, presence: opts.Presence, shortAPDU: opts.ShortAPDUOnly}
	if c.rand == nil {
		c.rand = rand.Reader
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if err := st.View(func(tx *store.Tx) error {
		c.terminated = tx.Terminated()
		c.serial = tx.Serial()
		return nil
	}); err != nil {
		return nil, fmt.Errorf("card: read state: %w", err)
	}
	c.s = newSession()
	return c, nil
}

func newSession() session {
	return session{decRole: roleDec, autRole: roleAut}
}

// clear forgets the security state: PIN flags, the data key, the selected occurrence, chains.
func (s *session) clear() {
	if s.dk != nil {
		s.dk.Destroy()
	}
	*s = newSession()
}

// logout drops all PIN verifications and the data key.
func (s *session) logout() {
	s.pw1Sign, s.pw1User, s.pw3 = false, false, false
	s.dropKeyIfUnused()
}

// dropKeyIfUnused destroys the data key once no PIN is verified any more.
func (s *session) dropKeyIfUnused() {
	if !s.pw1Sign && !s.pw1User && !s.pw3 && s.dk != nil {
		s.dk.Destroy()
		s.dk = nil
	}
}

// ATR returns the Answer-to-Reset (see the package doc); its historical bytes are DO 5F52.
func (c *Card) ATR() []byte {
	if c.shortAPDU {
		return append([]byte(nil), atrShort...)
	}
	return append([]byte(nil), atr...)
}

// historicalBytes is DO 5F52, also the ATR's historical bytes: they say whether extended length is offered.
func (c *Card) historicalBytes() []byte {
	if c.shortAPDU {
		return historicalShort
	}
	return historical
}

// PowerOn powers the card (a warm reset when already powered): security state is cleared and the ATR returned.
func (c *Card) PowerOn(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.clear()
	c.powered = true
	return c.ATR(), nil
}

// PowerOff powers the card down; all security state is forgotten.
func (c *Card) PowerOff() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.clear()
	c.powered = false
	return nil
}

// Transmit runs one command APDU and returns the response APDU (data and SW1-SW2). Errors are reserved for a card
// that cannot answer at all (not powered, ctx done, the state file failing); every protocol error is a status word.
func (c *Card) Transmit(ctx context.Context, capdu []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.powered {
		return nil, ErrNotPowered
	}
	data, sw := c.transmit(ctx, capdu)
	if err := ctx.Err(); err != nil && sw != SWNoError {
		return nil, err
	}
	out := make([]byte, len(data)+2) // data may alias a pending response: never append to it
	copy(out, data)
	out[len(data)], out[len(data)+1] = byte(sw>>8), byte(sw)
	return out, nil
}

func (c *Card) transmit(ctx context.Context, capdu []byte) ([]byte, StatusWord) {
	cmd, err := ParseCommand(capdu)
	if err == nil && cmd.Extended && c.shortAPDU {
		// A card without extended length reads 00 after the header as a short Lc of zero followed by bytes it
		// cannot account for: none of the short cases of ISO/IEC 7816-3 §12.1.3, so the wrong length 6700.
		err = errExtendedLength
	}
	if err != nil {
		c.s.chain, c.s.pending = nil, nil
		c.log.Debug("apdu", "len", len(capdu), "sw", SWWrongLength.String())
		return nil, SWWrongLength
	}
	data, sw := c.command(ctx, cmd)
	c.log.Debug("apdu", "ins", fmt.Sprintf("%02X", cmd.INS), "p1", fmt.Sprintf("%02X", cmd.P1),
		"p2", fmt.Sprintf("%02X", cmd.P2), "lc", len(cmd.Data), "ne", cmd.Ne, "resp", len(data), "sw", sw.String())
	return data, sw
}

// command applies the class byte, command chaining and response chaining around dispatch.
func (c *Card) command(ctx context.Context, cmd Command) ([]byte, StatusWord) {
	switch {
	case cmd.CLA == 0xFF || cmd.CLA&claProprietary != 0:
		return nil, SWClassNotSupported
	case cmd.CLA&claChannel != 0:
		return nil, SWLogicalChannelNotSupported
	case cmd.CLA&claSecureMessaging != 0:
		return nil, SWSecureMessagingNotSupported
	}
	if cmd.INS == insGetResponse && !cmd.Chained() {
		return c.getResponse(cmd)
	}
	c.s.pending = nil

	if ch := c.s.chain; ch != nil && (ch.ins != cmd.INS || ch.p1 != cmd.P1 || ch.p2 != cmd.P2) {
		c.s.chain = nil
		// A SELECT starts over (a client that died mid-chain must not spoil the next one's first command);
		// anything else breaking a chain is refused.
		if cmd.INS != insSelect {
			return nil, SWLastCommandOfChainExpected
		}
	}
	if cmd.Chained() {
		if !chainable(cmd.INS) {
			c.s.chain = nil
			return nil, SWCommandChainingNotSupported
		}
		if c.s.chain == nil {
			c.s.chain = &chain{ins: cmd.INS, p1: cmd.P1, p2: cmd.P2}
		}
		if len(c.s.chain.data)+len(cmd.Data) > maxChainData {
			c.s.chain = nil
			return nil, SWWrongLength
		}
		c.s.chain.data = append(c.s.chain.data, cmd.Data...)
		return nil, SWNoError
	}
	if ch := c.s.chain; ch != nil {
		c.s.chain = nil
		if len(ch.data)+len(cmd.Data) > maxChainData {
			return nil, SWWrongLength
		}
		cmd.Data = append(ch.data, cmd.Data...)
	}

	resp, sw := c.dispatch(ctx, cmd)
	if sw != SWNoError {
		return nil, sw
	}
	// At most Ne bytes (the host's receive buffer may be no larger: PC/SC fails the whole exchange otherwise);
	// without Le, 256 for a short APDU and 65536 for an extended one. The rest comes through GET RESPONSE.
	limit := cmd.Ne
	if limit == 0 {
		limit = 256
		if cmd.Extended {
			limit = 65536
		}
	}
	if len(resp) <= limit {
		return resp, SWNoError
	}
	c.s.pending = resp[limit:]
	return resp[:limit], swBytesRemaining(len(c.s.pending))
}

// chainable lists the instructions whose data may arrive in a command chain.
func chainable(ins byte) bool {
	switch ins {
	case insPutData, insPutDataOdd, insPSO, insInternalAuthenticate, insVerify, insChangeReferenceData,
		insResetRetryCounter, insGenerateKeyPair, insSelectData, insManageSecurityEnv:
		return true
	}
	return false
}

// getResponse returns the next part of a long response (ISO/IEC 7816-4 §7.6.1).
func (c *Card) getResponse(cmd Command) ([]byte, StatusWord) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, SWWrongP1P2
	}
	if c.s.pending == nil {
		return nil, SWConditionsNotSatisfied
	}
	n := cmd.Ne
	if n == 0 {
		n = 256
	}
	if n >= len(c.s.pending) {
		out := c.s.pending
		c.s.pending = nil
		return out, SWNoError
	}
	out := c.s.pending[:n]
	c.s.pending = c.s.pending[n:]
	return out, swBytesRemaining(len(c.s.pending))
}

// dispatch runs one complete command.
func (c *Card) dispatch(ctx context.Context, cmd Command) ([]byte, StatusWord) {
	if c.terminated {
		switch cmd.INS {
		case insSelect:
			if _, sw := c.selectFile(cmd); sw != SWNoError {
				return nil, sw
			}
			return nil, SWSelectedFileTerminated
		case insActivateFile, insTerminateDF:
		default:
			return nil, SWConditionsNotSatisfied
		}
	}
	switch cmd.INS {
	case insSelect:
		return c.selectFile(cmd)
	case insGetData:
		return c.getData(cmd)
	case insGetNextData:
		return c.getNextData(cmd)
	case insSelectData:
		return c.selectData(cmd)
	case insPutData:
		return nil, c.putData(cmd)
	case insPutDataOdd:
		return nil, c.importKey(cmd)
	case insVerify:
		return nil, c.verify(cmd)
	case insChangeReferenceData:
		return nil, c.changeReferenceData(cmd)
	case insResetRetryCounter:
		return nil, c.resetRetryCounter(cmd)
	case insGenerateKeyPair:
		return c.generateKeyPair(cmd)
	case insPSO:
		return c.pso(ctx, cmd)
	case insInternalAuthenticate:
		return c.internalAuthenticate(ctx, cmd)
	case insGetChallenge:
		return c.getChallenge(cmd)
	case insManageSecurityEnv:
		return nil, c.manageSecurityEnvironment(cmd)
	case insTerminateDF:
		return nil, c.terminateDF(cmd)
	case insActivateFile:
		return nil, c.activateFile(cmd)
	}
	return nil, SWInstructionNotSupported
}

// selectFile answers SELECT (ISO/IEC 7816-4 §11.2.2, OpenPGP card 3.4.1 §7.2.1).
// By DF name (P1=04): the OpenPGP AID, given as its first 6 bytes (RID+PIX application) up to the full 16.
// The master file 3F00 (P1=00 with 3F00 or no data) answers 9000 like every ISO card: GnuPG's card-type sniffing
// then takes the ATR path and types this card "generic" (see the package doc). Anything else is 6A82.
func (c *Card) selectFile(cmd Command) ([]byte, StatusWord) {
	switch cmd.P2 {
	case 0x00, 0x04, 0x0C:
	default:
		return nil, SWIncorrectP1P2
	}
	switch cmd.P1 {
	case 0x04:
		aid := c.aid()
		if len(cmd.Data) < 6 || len(cmd.Data) > len(aid) || string(cmd.Data) != string(aid[:len(cmd.Data)]) {
			return nil, SWFileNotFound
		}
		// Selecting the application resets what only makes sense within one selection.
		c.s.occ = 0
		c.s.decRole, c.s.autRole = roleDec, roleAut
		return nil, SWNoError
	case 0x00:
		if len(cmd.Data) == 0 || (len(cmd.Data) == 2 && cmd.Data[0] == 0x3F && cmd.Data[1] == 0x00) {
			return nil, SWNoError
		}
		return nil, SWFileNotFound
	}
	return nil, SWFileNotFound
}
