package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ccidgadget/ccidgadget/card"
	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/configfs"
	"github.com/ccidgadget/ccidgadget/gadget"
	"github.com/ccidgadget/ccidgadget/persona"
)

// gadgetSystem is the machine configfs works on; tests point it at a fake tree.
var gadgetSystem configfs.System

// runDir holds one JSON file per running gadget (runFile), for `status` and `down`.
var runDir = "/run/ccidgadget"

// runFile is what a running `ccid-gadget up` publishes about itself in runDir/NAME.json.
type runFile struct {
	PID       int       `json:"pid"`
	Name      string    `json:"name"`
	State     string    `json:"state"`
	MountDir  string    `json:"mount_dir"`
	UDC       string    `json:"udc"`
	VendorID  string    `json:"vendor_id"`
	ProductID string    `json:"product_id"`
	Started   time.Time `json:"started"`
	Updated   time.Time `json:"updated"`
	Card      card.Info `json:"card"`
}

func runFilePath(name string) string { return filepath.Join(runDir, name+".json") }

// gadgetFlags are the flags up, down and status share.
func gadgetName(fs interface {
	StringVar(*string, string, string, string)
}, p *string) {
	fs.StringVar(p, "name", configfs.DefaultName, "gadget `name` in configfs (usb_gadget/NAME, ffs.NAME, /dev/ffs-NAME)")
}

// runUp is `ccid-gadget up`: the reader and its card as a USB device, in the foreground until SIGINT/SIGTERM.
func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var sf stateFlags
	fs := newFlagSet("up", "up [--udc auto|NAME] [--state PATH] [--persona NAME] [--vid 0x1209] [--pid 0x0001] [--bcd-device 0x0100] [--serial S] [--manufacturer M] [--product P] [--max-speed S] [--faults PLAN] [--replay TRACE [--on-divergence fail|card|mute] [--replay-mixed]] [--record FILE] [--pcap FILE] [--record-secrets] [--name NAME] [-v]", stdout)
	sf.register(fs)
	udc := fs.String("udc", "auto", "USB device controller: `auto` takes the only one in /sys/class/udc")
	vidFlag := fs.String("vid", "0x1209", "USB vendor `id` (default: the persona's; pid.codes for generic)")
	pidFlag := fs.String("pid", "0x0001", "USB product `id` (default: the persona's; the pid.codes test PID for generic: list it on hosts with host-setup)")
	serial := fs.String("serial", "", "USB serial `string` (default: the card's serial number)")
	manufacturer := fs.String("manufacturer", "ccidgadget", "USB manufacturer `string`")
	product := fs.String("product", "ccidgadget OpenPGP reader", "USB product `string`, also the interface name pcscd shows")
	maxSpeed := fs.String("max-speed", "", "cap the USB `speed`: full-speed (64-byte bulk packets) or high-speed; default: the controller's")
	bcdFlag := fs.String("bcd-device", "", "USB bcdDevice `hex` (default: the persona's, 0x0100 for generic)")
	var ff faultFlags
	ff.register(fs)
	var name string
	gadgetName(fs, &name)
	verbose := fs.Bool("v", false, "log every event and exchange (never PINs or key bytes)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	fx, err := ff.setup(log)
	if err != nil {
		return err
	}
	defer fx.Close()
	pers := fx.Persona
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	id, err := resolveIdentity(pers, set, usbIdentity{VID: *vidFlag, PID: *pidFlag, Bcd: *bcdFlag, Serial: *serial,
		Manufacturer: *manufacturer, Product: *product, MaxSpeed: *maxSpeed})
	if err != nil {
		return err
	}
	vid, pid, bcd := id.vid, id.pid, id.bcd
	*serial, *manufacturer, *product, *maxSpeed = id.Serial, id.Manufacturer, id.Product, id.MaxSpeed
	sys := gadgetSystem
	// Fail on root, configfs and libcomposite before touching the state file.
	if err := sys.Check(); err != nil {
		return err
	}
	if _, err := sys.PickUDC(*udc); err != nil {
		return err
	}
	if st, err := configfs.Inspect(sys, name); err != nil {
		return err
	} else if st.Exists {
		return fmt.Errorf("%s: %w (left by a crash, or ccid-gadget is still running): run 'ccid-gadget down' to remove it", st.Dir, configfs.ErrExists)
	}
	switch *maxSpeed {
	case "", "full-speed", "high-speed":
	default:
		return fmt.Errorf("%w: --max-speed %q: want full-speed or high-speed", errUsage, *maxSpeed)
	}

	st, err := sf.open(true, log)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := card.New(st, cardOptions(pers, log))
	if err != nil {
		return err
	}
	info, err := c.Info()
	if err != nil {
		return err
	}
	if *serial == "" {
		*serial = fmt.Sprintf("%X", info.Serial[:])
	}
	cfg := ccid.DefaultConfig()
	cfg.Logger = log
	cfg.Descriptor, cfg.Interceptor = pers.Descriptor, fx.Interceptor
	reader, err := ccid.NewReader(cfg)
	if err != nil {
		return err
	}
	inserted := fx.Card(c)
	if err := reader.Insert(0, inserted); err != nil {
		return err
	}
	fx.Bind(reader, inserted)
	gr := tappedReader{Reader: reader, notes: fx.Notifications(reader.Notifications())}

	g, err := configfs.Create(sys, configfs.Config{Name: name, VendorID: vid, ProductID: pid, BcdDevice: bcd, Serial: *serial,
		Manufacturer: *manufacturer, Product: *product, MaxSpeed: *maxSpeed})
	if err != nil {
		return err
	}
	defer func() {
		if err := g.Remove(); err != nil {
			log.Error("remove gadget", "err", err)
		}
	}()
	// The UDC is bound and unbound by the stop path and by the disconnect/reenumerate faults.
	var udcMu sync.Mutex
	detach := func() error {
		udcMu.Lock()
		defer udcMu.Unlock()
		return g.Unbind()
	}
	attach := func() error {
		udcMu.Lock()
		defer udcMu.Unlock()
		return g.Bind(*udc)
	}
	fn, err := gadget.Open(g.MountDir(), gr, gadget.Options{Interface: *product, Logger: log, Detach: detach, Attach: attach})
	if err != nil {
		return err
	}
	fx.SetUSB(fn) // *gadget.Function is a fault.USB: both speak ccid.Endpoint
	if err := attach(); err != nil {
		fn.Close()
		return err
	}
	rf := runFile{PID: os.Getpid(), Name: name, State: sf.path, MountDir: g.MountDir(), UDC: g.UDC(),
		VendorID: fmt.Sprintf("0x%04x", vid), ProductID: fmt.Sprintf("0x%04x", pid), Started: time.Now().UTC(), Card: info}
	if err := writeRunFile(rf); err != nil {
		log.Warn("cannot publish status", "err", err)
	}
	defer os.Remove(runFilePath(name))
	log.Info("gadget up", "name", name, "udc", g.UDC(), "vid:pid", fmt.Sprintf("%04x:%04x", vid, pid), "serial", *serial,
		"state", sf.path, "persona", pers.Name)

	// SIGHUP reloads the fault plan without a replug.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// On SIGINT/SIGTERM: unbind first (the host sees an unplug and the endpoint transfers fail), then stop.
	var stopping atomic.Int64 // when the signal came, in Unix nanoseconds
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				stopping.Store(time.Now().UnixNano())
				log.Info("stopping: unbinding the UDC")
				if err := detach(); err != nil {
					log.Error("unbind", "err", err)
				}
				stop()
				return
			case <-runCtx.Done():
				return
			case <-hup:
				if err := fx.Reload(); err != nil {
					log.Warn("SIGHUP: fault plan not reloaded", "err", err)
				}
			case <-t.C:
				if in, err := c.Info(); err == nil {
					rf.Card, rf.Updated = in, time.Now().UTC()
					writeRunFile(rf)
				}
			}
		}
	}()
	err = fn.Run(runCtx)
	stop()
	if err != nil {
		return err
	}
	if err := g.Remove(); err != nil {
		if errors.Is(err, configfs.ErrInUse) {
			return fmt.Errorf("gadget unbound, but an endpoint transfer was still in flight at exit, so FunctionFS stays mounted: run 'ccid-gadget down' now")
		}
		return err
	}
	log.Info("gadget down", "name", name, "stop_took", time.Since(time.Unix(0, stopping.Load())).Round(time.Millisecond))
	return nil
}

// cardOptions are the options of the card behind persona p's reader. A reader at the short APDU level (dwFeatures
// level bits, as persona gnuk's) gets a card that announces and accepts no extended length: libccid refuses longer
// APDUs at that level, and scdaemon picks extended APDUs or chaining from the card's historical bytes (DO 5F52).
func cardOptions(p persona.Persona, log *slog.Logger) card.Options {
	return card.Options{Logger: log,
		ShortAPDUOnly: p.Descriptor.Features&ccid.FeatureLevelMask == ccid.FeatureLevelShortAPDU}
}

// usbIdentity is the USB identity of the gadget as flag values, and parsed.
type usbIdentity struct {
	VID, PID, Bcd                           string
	Serial, Manufacturer, Product, MaxSpeed string

	vid, pid, bcd uint16
}

// resolveIdentity fills the identity from the persona, except the flags in set (given explicitly), which win.
// An empty serial means the card's serial number.
func resolveIdentity(p persona.Persona, set map[string]bool, flags usbIdentity) (usbIdentity, error) {
	id := flags
	if !set["vid"] {
		id.VID = fmt.Sprintf("0x%04x", p.VendorID)
	}
	if !set["pid"] {
		id.PID = fmt.Sprintf("0x%04x", p.ProductID)
	}
	if !set["bcd-device"] {
		id.Bcd = fmt.Sprintf("0x%04x", p.BcdDevice)
	}
	if !set["manufacturer"] && p.Manufacturer != "" {
		id.Manufacturer = p.Manufacturer
	}
	if !set["product"] && p.Product != "" {
		id.Product = p.Product
	}
	if !set["serial"] && p.Serial != "" {
		id.Serial = p.Serial
	}
	if !set["max-speed"] {
		id.MaxSpeed = string(p.MaxSpeed)
	}
	var err error
	if id.vid, err = parseUSBID("vid", id.VID); err != nil {
		return id, err
	}
	if id.pid, err = parseUSBID("pid", id.PID); err != nil {
		return id, err
	}
	if id.bcd, err = parseUSBID("bcd-device", id.Bcd); err != nil {
		return id, err
	}
	return id, nil
}

// tappedReader is the reader as the gadget sees it: its notifications go through the recorder (--record, --pcap).
type tappedReader struct {
	*ccid.Reader
	notes <-chan []byte
}

func (r tappedReader) Notifications() <-chan []byte { return r.notes }

func writeRunFile(rf runFile) error {
	rf.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	return writeFileAtomic(runFilePath(rf.Name), append(b, '\n'), 0o644)
}

// readRunFile returns the run file of gadget name and whether its process is alive.
func readRunFile(name string) (runFile, bool, error) {
	var rf runFile
	b, err := os.ReadFile(runFilePath(name))
	if err != nil {
		return rf, false, err
	}
	if err := json.Unmarshal(b, &rf); err != nil {
		return rf, false, fmt.Errorf("%s: %w", runFilePath(name), err)
	}
	return rf, processAlive(rf.PID), nil
}

// processAlive reports whether pid is a running ccid-gadget.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return strings.Contains(string(cmdline), "ccid-gadget") || pid == os.Getpid()
}
