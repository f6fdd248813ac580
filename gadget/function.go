package gadget

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// Reader is the CCID engine behind the function (implemented by *ccid.Reader).
type Reader interface {
	// Serve answers frames from t until ctx ends or t fails.
	Serve(ctx context.Context, t ccid.Transport) error
	// Abort is the control-request half of ABORT.
	Abort(slot, seq byte)
	// Notifications carries the interrupt-IN messages.
	Notifications() <-chan []byte
	// Descriptor is the CCID class descriptor, also used to answer GET_CLOCK_FREQUENCIES and GET_DATA_RATES.
	Descriptor() ccid.ClassDescriptor
}

// control is ep0. Read with an empty buffer must make a read(2) system call (the status-stage ACK).
type control interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	Close() error
}

// endpoint is an endpoint file. Read and Write are single read(2)/write(2) calls: a short read is a short
// packet, and Write(nil) sends a zero-length packet.
type endpoint interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	// MaxPacketSize returns wMaxPacketSize for the speed the host enumerated at (valid after ENABLE).
	MaxPacketSize() (int, error)
	Close() error
}

// Options tunes a Function. The zero value is usable.
type Options struct {
	// Interface is the interface string (iInterface); default "CCID". pcscd shows it in the reader's name.
	Interface string
	// Logger receives events and errors; nil discards.
	Logger *slog.Logger
	// StopTimeout bounds how long Run waits for the bulk and interrupt loops after its context ends; default 1 s.
	StopTimeout time.Duration
	// Detach and Attach unbind and bind the UDC, for the Disconnect and Reenumerate faults (configfs owns the
	// UDC, so the caller supplies them). Nil: those faults fail with ErrNoAttach.
	Detach, Attach func() error
}

// Function is a CCID function on a FunctionFS instance. Open it, bind the UDC (package configfs), then Run.
type Function struct {
	r      Reader
	ep0    control
	open   func(name string) (endpoint, error)
	log    *slog.Logger
	stopIn time.Duration

	closeOnce sync.Once
	closeErr  error

	// Owned by Run's goroutine.
	sessCancel context.CancelFunc
	sessDone   chan struct{}

	mu      sync.Mutex
	stats   Stats
	cur     *session      // the enabled endpoints, nil between host sessions
	runDone chan struct{} // closed when Run returns

	skipZLP        atomic.Bool // SkipZLP: the next full-packet bulk-IN message goes without its ZLP
	detach, attach func() error
	reattach       sync.WaitGroup
}

// Stats counts what the function has seen; Function.Stats returns a copy.
type Stats struct {
	Events   map[string]int // by event type name
	Sessions int            // endpoint sessions started (one per ENABLE)
	Aborts   int            // ABORT requests handed to the reader
	Stalls   int            // control requests refused
}

// Open opens ep0 in the mounted FunctionFS directory dir and writes the descriptors (built from r's class
// descriptor) and strings. Afterwards the endpoint files exist and the UDC can be bound.
func Open(dir string, r Reader, opts Options) (*Function, error) {
	blob, strs, err := blobs(r, opts)
	if err != nil {
		return nil, err
	}
	ep0, err := openControl(filepath.Join(dir, "ep0"))
	if err != nil {
		return nil, err
	}
	f := newFunction(ep0, func(name string) (endpoint, error) { return openEndpoint(filepath.Join(dir, name)) }, r, opts)
	if err := f.writeDescriptors(blob, strs); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w (is %s a FunctionFS mount not already served by another process?)", err, dir)
	}
	return f, nil
}

func blobs(r Reader, opts Options) ([]byte, []byte, error) {
	cd, err := r.Descriptor().MarshalBinary()
	if err != nil {
		return nil, nil, fmt.Errorf("gadget: class descriptor: %w", err)
	}
	blob, err := Descriptors(cd)
	if err != nil {
		return nil, nil, err
	}
	iface := opts.Interface
	if iface == "" {
		iface = "CCID"
	}
	if strings.IndexByte(iface, 0) >= 0 {
		return nil, nil, fmt.Errorf("gadget: interface string contains NUL")
	}
	return blob, Strings(iface), nil
}

func newFunction(ep0 control, open func(string) (endpoint, error), r Reader, opts Options) *Function {
	f := &Function{r: r, ep0: ep0, open: open, log: opts.Logger, stopIn: opts.StopTimeout, runDone: make(chan struct{}),
		detach: opts.Detach, attach: opts.Attach}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.stopIn <= 0 {
		f.stopIn = time.Second
	}
	f.stats.Events = map[string]int{}
	return f
}

func (f *Function) writeDescriptors(blob, strs []byte) error {
	if _, err := f.ep0.Write(blob); err != nil {
		return fmt.Errorf("gadget: write descriptors to ep0: %w", err)
	}
	if _, err := f.ep0.Write(strs); err != nil {
		return fmt.Errorf("gadget: write strings to ep0: %w", err)
	}
	return nil
}

// Close closes ep0, which makes the kernel tear the function down. Run closes it too; Close is idempotent.
func (f *Function) Close() error {
	f.closeOnce.Do(func() { f.closeErr = f.ep0.Close() })
	return f.closeErr
}

// Stats returns a snapshot of the counters.
func (f *Function) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	s.Events = make(map[string]int, len(f.stats.Events))
	for k, v := range f.stats.Events {
		s.Events[k] = v
	}
	return s
}

func (f *Function) count(fn func(*Stats)) {
	f.mu.Lock()
	fn(&f.stats)
	f.mu.Unlock()
}

// Run handles ep0 events and serves the reader on the endpoints from each ENABLE to the next DISABLE or
// UNBIND, until ctx ends or ep0 fails. When ctx ends it stops the endpoint loops, waits for them at most
// Options.StopTimeout, closes ep0 and returns nil. Unbind the UDC before cancelling ctx: that fails the
// endpoint transfers in flight, so the loops end at once and the host sees an unplug.
func (f *Function) Run(ctx context.Context) error {
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	defer func() { close(f.runDone); f.reattach.Wait() }()
	type batch struct {
		evs []Event
		err error
	}
	batches := make(chan batch)
	// ep0 is read again only after the previous events are handled: while a SETUP is pending, a read would be
	// taken as its status stage (or a stall).
	handled := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 4*eventSize) // the kernel queues at most 4 events
		for {
			n, err := f.ep0.Read(buf)
			var b batch
			if err != nil {
				b.err = fmt.Errorf("gadget: read ep0 events: %w", err)
			} else if b.evs, err = parseEvents(buf[:n]); err != nil {
				f.log.Warn("gadget: bad ep0 read", "err", err)
				continue
			}
			select {
			case batches <- b:
			case <-runCtx.Done():
				return
			}
			if b.err != nil {
				return
			}
			select {
			case <-handled:
			case <-runCtx.Done():
				return
			}
		}
	}()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case b := <-batches:
			if b.err != nil {
				if ctx.Err() == nil && !errors.Is(b.err, io.EOF) {
					err = b.err
				}
				break loop
			}
			for _, ev := range b.evs {
				f.handle(runCtx, ev)
			}
			handled <- struct{}{}
		}
	}
	f.stopSession(true)
	if f.sessDone != nil {
		select {
		case <-f.sessDone:
		case <-time.After(f.stopIn):
			f.log.Warn("gadget: endpoint loops did not stop in time", "timeout", f.stopIn)
		}
	}
	cancelRun()
	if cerr := f.Close(); err == nil && cerr != nil && ctx.Err() == nil {
		err = fmt.Errorf("gadget: close ep0: %w", cerr)
	}
	return err
}

func (f *Function) handle(runCtx context.Context, ev Event) {
	f.count(func(s *Stats) { s.Events[ev.Type.String()]++ })
	switch ev.Type {
	case EventBind:
		f.log.Info("gadget: bound to UDC")
	case EventUnbind:
		f.stopSession(true)
		f.log.Info("gadget: unbound")
	case EventEnable:
		// SET_INTERFACE (scdaemon sends one) disables and re-enables the endpoints with no DISABLE event:
		// ENABLE alone must end the current session too.
		f.log.Info("gadget: endpoints enabled")
		f.startSession(runCtx)
	case EventDisable:
		f.log.Info("gadget: endpoints disabled")
		f.stopSession(true)
	case EventSetup:
		f.setup(ev.Setup)
	case EventSuspend, EventResume:
		f.log.Info("gadget: bus " + strings.ToLower(ev.Type.String()))
	default:
		f.log.Warn("gadget: unknown ep0 event", "type", uint8(ev.Type))
	}
}

// startSession starts the endpoint loops for a new ENABLE, after the previous loops have ended.
func (f *Function) startSession(runCtx context.Context) {
	f.stopSession(false)
	prev := f.sessDone
	ctx, cancel := context.WithCancel(runCtx)
	done := make(chan struct{})
	f.sessCancel, f.sessDone = cancel, done
	go func() {
		defer close(done)
		defer cancel()
		if prev != nil {
			<-prev
		}
		if ctx.Err() != nil {
			return
		}
		f.count(func(s *Stats) { s.Sessions++ })
		if err := f.serve(ctx); err != nil {
			f.log.Error("gadget: endpoints", "err", err)
		}
	}()
}

// stopSession ends the current endpoint loops; with drop, it also discards queued notifications, which belong
// to the host session that just ended.
func (f *Function) stopSession(drop bool) {
	if f.sessCancel != nil {
		f.sessCancel()
		f.sessCancel = nil
	}
	if !drop {
		return
	}
	for n := f.r.Notifications(); ; {
		select {
		case <-n:
		default:
			return
		}
	}
}

// serve opens the endpoint files and runs the reader on them until ctx ends or the endpoints are disabled.
func (f *Function) serve(ctx context.Context) error {
	var eps [3]endpoint
	for i, name := range []string{fileBulkIn, fileBulkOut, fileIntrIn} {
		ep, err := f.open(name)
		if err != nil {
			for _, e := range eps[:i] {
				e.Close()
			}
			return err
		}
		eps[i] = ep
	}
	defer func() {
		for _, e := range eps {
			e.Close()
		}
	}()
	t, err := newTransport(eps[0], eps[1], f.r.Descriptor().MaxCCIDMessageLength, f.log)
	if err != nil {
		return err
	}
	t.skipZLP = &f.skipZLP
	f.setSession(&session{in: eps[0], out: eps[1], intr: eps[2], t: t})
	defer f.setSession(nil)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	intrDone := make(chan struct{})
	go func() {
		defer close(intrDone)
		f.notify(ctx, eps[2])
	}()
	defer func() { cancel(); <-intrDone }()
	for {
		err := f.r.Serve(ctx, t)
		if ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
			f.log.Debug("gadget: bulk loop ended", "err", err)
			return nil
		}
		// Anything else (a transfer lost to a signal, an engine error): keep serving this host session.
		f.log.Warn("gadget: reader stopped; serving again", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// notify carries the reader's interrupt-IN messages to ep until ctx ends or the endpoint is disabled.
func (f *Function) notify(ctx context.Context, ep endpoint) {
	n := f.r.Notifications()
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-n:
			if ctx.Err() != nil {
				return // the host session ended: the message is dropped with it
			}
			if _, err := ep.Write(msg); err != nil {
				f.log.Debug("gadget: interrupt endpoint", "err", err)
				return
			}
		}
	}
}

// setup answers one control request: ABORT is acknowledged and handed to the reader, GET_CLOCK_FREQUENCIES and
// GET_DATA_RATES are answered from the class descriptor, and everything else is stalled.
func (f *Function) setup(s Setup) {
	var err error
	switch {
	case s.RequestType == reqTypeClassOut && s.Request == reqAbort && s.Length == 0 && s.Index == 0:
		// Hand the abort to the reader before completing the status stage: once the host sees the
		// request succeed it may send its next command, which must not meet a half-paired abort.
		f.count(func(st *Stats) { st.Aborts++ })
		f.r.Abort(byte(s.Value), byte(s.Value>>8))
		// Status stage: a zero-length read on ep0 (os.File.Read(nil) would make no system call).
		_, err = f.ep0.Read(nil)
	case s.RequestType == reqTypeClassIn && (s.Request == reqGetClocks || s.Request == reqGetDataRates) && s.Index == 0:
		d := f.r.Descriptor()
		list, count := d.ClockFrequencies, int(d.NumClockSupported)
		if s.Request == reqGetDataRates {
			list, count = d.DataRates, int(d.NumDataRatesSupported)
		}
		if count == 0 || len(list) == 0 {
			f.stall(s)
			return
		}
		data := make([]byte, 0, 4*len(list))
		for _, v := range list {
			data = binary.LittleEndian.AppendUint32(data, v)
		}
		if len(data) > int(s.Length) {
			data = data[:s.Length]
		}
		_, err = f.ep0.Write(data)
	default:
		f.log.Debug("gadget: stalling control request", "setup", s.String())
		f.stall(s)
		return
	}
	if err != nil {
		f.log.Warn("gadget: control request", "setup", s.String(), "err", err)
	}
}

// stall refuses a control request: I/O on ep0 in the wrong direction halts it (f_fs __ffs_ep0_stall).
func (f *Function) stall(s Setup) {
	f.count(func(st *Stats) { st.Stalls++ })
	var err error
	if s.In() {
		_, err = f.ep0.Read(nil)
	} else {
		_, err = f.ep0.Write(nil)
	}
	if err != nil && !isStallAck(err) {
		f.log.Warn("gadget: stall", "setup", s.String(), "err", err)
	}
}
