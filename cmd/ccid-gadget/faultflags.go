package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/ccid/fault"
	"github.com/ccidgadget/ccidgadget/ccid/trace"
	"github.com/ccidgadget/ccidgadget/persona"
)

// faultFlags are the flags of `up` that make the reader misbehave on purpose, replay a trace, record the
// session, or look like another reader.
type faultFlags struct {
	faults        string
	replay        string
	onDivergence  string
	mixed         bool
	record        string
	pcap          string
	recordSecrets bool
	persona       string
}

// register defines --faults, --replay, --on-divergence, --replay-mixed, --record, --pcap, --record-secrets and
// --persona on fs.
func (f *faultFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.faults, "faults", "", "run the fault `PLAN` file (see README: fault plans); SIGHUP reloads it")
	fs.StringVar(&f.replay, "replay", "", "become the reader recorded in the pcscd debug log `TRACE` (answers, delays, card events)")
	fs.StringVar(&f.onDivergence, "on-divergence", "fail", "with --replay, a command the trace lacks: `fail` (answer as a mute card), card (the live OpenPGP card answers) or mute (no answer)")
	fs.BoolVar(&f.mixed, "replay-mixed", false, "with --replay, take timings and faults from the trace and content from the live card")
	fs.StringVar(&f.record, "record", "", "write every exchange to `FILE` in the pcscd-log format (trace show/plot and --replay read it)")
	fs.StringVar(&f.pcap, "pcap", "", "write every exchange to `FILE` as a pcap (LINKTYPE_USB_LINUX_MMAPPED) for Wireshark")
	fs.BoolVar(&f.recordSecrets, "record-secrets", false, "keep PINs, the resetting code and imported keys in --record/--pcap (masked as XX by default)")
	fs.StringVar(&f.persona, "persona", "", "look like reader `NAME` (VID:PID, speed, CCID descriptor, ATR); 'ccid-gadget personas' lists them (default: with --replay, the persona of the trace's VID:PID if there is one; else generic)")
}

// faultSetup is what `up` needs from the flags. Wire it as:
//
//	fx, err := ff.setup(log)                    // after flag parsing
//	defer fx.Close()
//	cfg.Descriptor, cfg.Interceptor = fx.Persona.Descriptor, fx.Interceptor
//	reader, _ := ccid.NewReader(cfg)
//	card := fx.Card(liveCard)                   // the replay card, or the live card with the persona's ATR
//	reader.Insert(0, card)
//	fx.Bind(reader, card)
//	notifications := fx.Notifications(reader.Notifications()) // what the interrupt endpoint sends
//	on SIGHUP: if err := fx.Reload(); err != nil { log.Warn(...) }   // the old plan stays in force
//
// USB identity and speed come from fx.Persona (VendorID, ProductID, BcdDevice, Manufacturer, Product, Serial,
// MaxSpeed) unless the user gave --vid/--pid/... explicitly.
type faultSetup struct {
	Persona     persona.Persona
	Interceptor ccid.Interceptor // nil when no flag asks for one

	log      *slog.Logger
	planPath string
	injector *fault.Injector
	replayer *trace.Replayer
	recorder *trace.Recorder
	files    []*os.File
	usb      fault.USB
	live     *liveCard // the live card behind the replayer, set by Card
}

// setup reads the persona, plan and trace, opens the recording files and builds the interceptor chain: the
// recorder nearest the host (it records what the host sees), then the fault plan, then the replayer.
func (f *faultFlags) setup(log *slog.Logger) (_ *faultSetup, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fx := &faultSetup{log: log, planPath: f.faults, live: &liveCard{}}
	defer func() {
		if err != nil {
			fx.Close()
		}
	}()
	name := f.persona
	if name == "" {
		name = "generic"
	}
	if fx.Persona, err = persona.Lookup(name); err != nil {
		return nil, fmt.Errorf("%w: --persona: %v", errUsage, err)
	}
	div, err := trace.ParseDivergence(f.onDivergence)
	if err != nil {
		return nil, fmt.Errorf("%w: --on-divergence: %v", errUsage, err)
	}
	if f.replay == "" && (f.mixed || f.onDivergence != "fail") {
		return nil, fmt.Errorf("%w: --on-divergence and --replay-mixed need --replay", errUsage)
	}
	if f.replay != "" {
		tr, err := readTrace(f.replay)
		if err != nil {
			return nil, fmt.Errorf("--replay: %w", err)
		}
		if f.persona == "" {
			fx.Persona = tracePersona(tr, fx.Persona, log)
		}
		fx.replayer, err = trace.NewReplayer(tr, trace.Options{OnDivergence: div, Mixed: f.mixed, ATR: fx.Persona.ATR,
			Logger: log, Live: fx.live})
		if err != nil {
			return nil, fmt.Errorf("--replay: %w", err)
		}
		log.Info("replaying a trace", "file", f.replay, "exchanges", len(tr.Exchanges), "events", len(tr.Events),
			"on_divergence", div, "mixed", f.mixed)
	}
	var icpt ccid.Interceptor
	if fx.replayer != nil {
		icpt = fx.replayer
	}
	if f.faults != "" {
		p, err := fault.ParseFile(f.faults)
		if err != nil {
			return nil, err
		}
		fx.injector = fault.NewInjector(p, fault.Options{Logger: log, USB: fx})
		icpt = fault.Chain(fx.injector, icpt)
		log.Info("fault plan loaded", "file", f.faults, "rules", len(p.Rules))
	}
	if f.record != "" || f.pcap != "" {
		var logw io.Writer = io.Discard
		if f.record != "" {
			rf, err := os.Create(f.record)
			if err != nil {
				return nil, fmt.Errorf("--record: %w", err)
			}
			fx.files = append(fx.files, rf)
			logw = rf
		}
		opt := trace.RecordOptions{Secrets: f.recordSecrets}
		if f.pcap != "" {
			pf, err := os.Create(f.pcap)
			if err != nil {
				return nil, fmt.Errorf("--pcap: %w", err)
			}
			fx.files = append(fx.files, pf)
			if opt.Pcap, err = trace.NewPcapWriter(pf, fx.Persona.Descriptor, time.Now()); err != nil {
				return nil, fmt.Errorf("--pcap: %w", err)
			}
		}
		fx.recorder = trace.NewRecorder(logw, opt)
		icpt = fault.Chain(fx.recorder, icpt)
	}
	fx.Interceptor = icpt
	return fx, nil
}

// liveCard forwards to the card given to faultSetup.Card.
type liveCard struct{ c ccid.Card }

func (l *liveCard) PowerOn(ctx context.Context) ([]byte, error) {
	if l.c == nil {
		return nil, errors.New("no live card")
	}
	return l.c.PowerOn(ctx)
}

func (l *liveCard) PowerOff() error {
	if l.c == nil {
		return nil
	}
	return l.c.PowerOff()
}

func (l *liveCard) Transmit(ctx context.Context, capdu []byte) ([]byte, error) {
	if l.c == nil {
		return nil, errors.New("no live card")
	}
	return l.c.Transmit(ctx, capdu)
}

// Card returns the card to insert: the replay card in front of live with --replay, else live with the
// persona's ATR (if the persona has one).
func (fx *faultSetup) Card(live ccid.Card) ccid.Card {
	if fx.replayer != nil {
		fx.live.c = live
		return fx.replayer.Card()
	}
	if fx.Persona.ATR != nil {
		return atrCard{Card: live, atr: fx.Persona.ATR}
	}
	return live
}

// tracePersona is the persona a replay looks like when --persona is not given: the one whose VID:PID the trace's
// reader had (so libccid applies that reader's quirks and timeouts, as on the recorded host), else def.
func tracePersona(tr *trace.Trace, def persona.Persona, log *slog.Logger) persona.Persona {
	if tr.VendorID == 0 && tr.ProductID == 0 {
		return def
	}
	if p, ok := persona.ByUSBID(tr.VendorID, tr.ProductID); ok {
		log.Info("persona from the trace's reader", "vid:pid", fmt.Sprintf("%04x:%04x", tr.VendorID, tr.ProductID), "persona", p.Name)
		return p
	}
	log.Warn("no persona has the trace's reader VID:PID; looking like the default (choose one with --persona)",
		"vid:pid", fmt.Sprintf("%04x:%04x", tr.VendorID, tr.ProductID), "persona", def.Name)
	return def
}

// atrCard is a card whose power-on answers the persona's ATR.
type atrCard struct {
	ccid.Card
	atr []byte
}

func (a atrCard) PowerOn(ctx context.Context) ([]byte, error) {
	if _, err := a.Card.PowerOn(ctx); err != nil {
		return nil, err
	}
	return append([]byte(nil), a.atr...), nil
}

// Bind tells the fault plan and the replayer which reader and card their card events act on.
func (fx *faultSetup) Bind(rd *ccid.Reader, card ccid.Card) {
	if fx.injector != nil {
		fx.injector.Bind(rd, card)
	}
	if fx.replayer != nil {
		fx.replayer.Bind(rd, 0)
	}
}

// SetUSB gives the fault plan the gadget's USB faults (skip-zlp, stray-zlp, halt, disconnect, reenumerate).
// Until it is called those rules are logged and skipped.
func (fx *faultSetup) SetUSB(u fault.USB) { fx.usb = u }

// Notifications returns the interrupt messages to send, recorded on the way when --record or --pcap is set.
func (fx *faultSetup) Notifications(in <-chan []byte) <-chan []byte {
	if fx.recorder == nil {
		return in
	}
	return fx.recorder.Tap(in)
}

// Reload re-reads the --faults plan and swaps it in atomically (SIGHUP). On a parse error the plan in force
// stays and the error says which line is wrong.
func (fx *faultSetup) Reload() error {
	if fx.injector == nil {
		return nil
	}
	p, err := fault.ParseFile(fx.planPath)
	if err != nil {
		return fmt.Errorf("reload: %w (the previous plan stays in force)", err)
	}
	fx.injector.Load(p)
	fx.log.Info("fault plan reloaded", "file", fx.planPath, "rules", len(p.Rules))
	return nil
}

// Close flushes and closes the recordings, and logs the replay's timing fidelity (recorded against replayed
// command-to-answer delays, as the gadget measured them).
func (fx *faultSetup) Close() error {
	var errs []error
	if fx.recorder != nil {
		errs = append(errs, fx.recorder.Flush())
	}
	for _, f := range fx.files {
		errs = append(errs, f.Close())
	}
	fx.files = nil
	if fx.replayer != nil {
		var diff []time.Duration
		for _, t := range fx.replayer.Timings() {
			d := t.Replayed - t.Recorded
			diff = append(diff, max(d, -d))
		}
		s := trace.Summarize(diff)
		fx.log.Info("replay timing (|replayed − recorded| delay)", "exchanges", s.N, "p50", s.P50, "p99", s.P99, "max", s.Max)
	}
	return errors.Join(errs...)
}

// The USB methods forward to the gadget once SetUSB was called.

func (fx *faultSetup) SkipZLP() {
	if fx.usb != nil {
		fx.usb.SkipZLP()
	}
}

func (fx *faultSetup) StrayZLP(ctx context.Context) error {
	if fx.usb == nil {
		return errNoUSB
	}
	return fx.usb.StrayZLP(ctx)
}

func (fx *faultSetup) Halt(ep ccid.Endpoint) error {
	if fx.usb == nil {
		return errNoUSB
	}
	return fx.usb.Halt(ep)
}

func (fx *faultSetup) Disconnect(ctx context.Context, d time.Duration) error {
	if fx.usb == nil {
		return errNoUSB
	}
	return fx.usb.Disconnect(ctx, d)
}

func (fx *faultSetup) Reenumerate(ctx context.Context) error {
	if fx.usb == nil {
		return errNoUSB
	}
	return fx.usb.Reenumerate(ctx)
}

var errNoUSB = errors.New("no USB gadget to run the fault on (SetUSB not called)")
