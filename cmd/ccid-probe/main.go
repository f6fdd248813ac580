// Command ccid-probe talks CCID to USB smart-card readers directly through libusb, without pcscd: it lists CCID
// interfaces with their class descriptor explained, runs a conformance check against one reader, and measures
// APDU latency and bulk throughput. It checks the ccidgadget gadget and characterises real readers the same way.
//
//	ccid-probe list  [--json]
//	ccid-probe check [--device VID:PID[:serial]] [--json] [--slow-apdu HEX]... [--notify-wait 30s]
//	ccid-probe bench [--device VID:PID[:serial]] [--apdu HEX] [-n N] [--size BYTES] [--json]
//
// check and bench claim the interface themselves, so pcscd and scdaemon must not hold it.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ccidgadget/ccidgadget/probe"
)

var version = "dev"

// Exit statuses.
const (
	exitOK     = 0 // every applicable check passed; list and bench succeeded
	exitFailed = 1 // a check failed
	exitError  = 2 // usage error, no device, busy interface, transfer error
)

// device is an opened, claimed CCID interface.
type device interface {
	probe.Device
	Close() error
}

// backend finds and opens CCID interfaces. The libusb one is built with cgo (usb.go).
type backend interface {
	// List returns every CCID interface the selector picks; errs are devices that could not be read.
	List(sel probe.Selector) (infos []probe.Info, errs []error, err error)
	// Open claims the one CCID interface the selector picks.
	Open(sel probe.Selector) (device, error)
	Close() error
}

// newBackend is set by usb.go (cgo) or nousb.go.
var newBackend func() (backend, error)

const usage = `ccid-probe talks CCID to USB smart-card readers through libusb, without pcscd.

Usage:
  ccid-probe list  [--json] [--device VID:PID[:serial]]
      every USB interface of class 0x0B (or 0xFF with a 54-byte CCID descriptor), with its class descriptor
      decoded field by field and what libccid and scdaemon do with each field.
  ccid-probe check [--device VID:PID[:serial]] [--json] [--timeout 3s]
                   [--slow-apdu HEX]... [--slow-keygen-pw3 PIN] [--notify-wait 30s [--on-remove CMD --on-insert CMD]]
      a conformance run; each check is pass, fail or n/a with the bytes that prove it.
      Exit status 0 when every applicable check passed, 1 when one failed, 2 on errors.
  ccid-probe bench [--device VID:PID[:serial]] [--apdu HEX] [-n 1000] [--size 4096] [--json]
      round-trip latency of an APDU (p50, p90, p99, max) and bulk throughput with extended APDUs.
  ccid-probe version

check and bench claim the interface: stop pcscd and scdaemon first
  (systemctl stop pcscd.socket pcscd; gpgconf --kill scdaemon).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError
	}
	switch args[0] {
	case "list":
		return cmdList(ctx, args[1:], stdout, stderr)
	case "check":
		return cmdCheck(ctx, args[1:], stdout, stderr)
	case "bench":
		return cmdBench(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "ccid-probe", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "ccid-probe: unknown command %q\n\n%s", args[0], usage)
	return exitError
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("ccid-probe "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// hexList collects repeated hex flags.
type hexList [][]byte

func (h *hexList) String() string { return fmt.Sprint(len(*h)) }

func (h *hexList) Set(s string) error {
	b, err := parseHex(s)
	if err != nil {
		return err
	}
	*h = append(*h, b)
	return nil
}

// parseHex accepts hex with optional spaces or colons.
func parseHex(s string) ([]byte, error) {
	s = strings.NewReplacer(" ", "", ":", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("bad hex %q: %w", s, err)
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("APDU %X shorter than CLA INS P1 P2", b)
	}
	return b, nil
}

func openBackend(stderr io.Writer) (backend, bool) {
	b, err := newBackend()
	if err != nil {
		fmt.Fprintln(stderr, "ccid-probe:", err)
		return nil, false
	}
	return b, true
}

func cmdList(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("list", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	devFlag := fs.String("device", "", "only `VID:PID[:serial]`")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	sel, err := probe.ParseSelector(*devFlag)
	if err != nil {
		fmt.Fprintln(stderr, "ccid-probe:", err)
		return exitError
	}
	b, ok := openBackend(stderr)
	if !ok {
		return exitError
	}
	defer b.Close()
	infos, errs, err := b.List(sel)
	for _, e := range errs {
		fmt.Fprintln(stderr, "ccid-probe: warning:", e)
	}
	if err != nil {
		fmt.Fprintln(stderr, "ccid-probe:", err)
		return exitError
	}
	entries := listEntries(infos)
	if *asJSON {
		return writeJSON(stdout, stderr, entries)
	}
	if len(entries) == 0 {
		fmt.Fprintln(stdout, "no CCID interface found (class 0x0B, or 0xFF with a 54-byte descriptor)")
		return exitOK
	}
	for _, e := range entries {
		printEntry(stdout, e)
	}
	return exitOK
}

// listEntry is one CCID interface as list prints it.
type listEntry struct {
	Device          probe.Info    `json:"device"`
	Descriptor      []probe.Field `json:"descriptor,omitempty"`
	DescriptorError string        `json:"descriptorError,omitempty"`
}

func listEntries(infos []probe.Info) []listEntry {
	out := make([]listEntry, 0, len(infos))
	for _, i := range infos {
		e := listEntry{Device: i}
		f, err := probe.DescribeDescriptor(i.Interface.Extra)
		if err != nil {
			e.DescriptorError = err.Error()
		}
		e.Descriptor = f
		out = append(out, e)
	}
	return out
}

func printEntry(w io.Writer, e listEntry) {
	d := e.Device
	i := d.Interface
	fmt.Fprintf(w, "Bus %03d Device %03d: ID %04x:%04x", d.Bus, d.Address, d.VendorID, d.ProductID)
	if s := strings.TrimSpace(d.Manufacturer + " " + d.Product); s != "" {
		fmt.Fprintf(w, " %s", s)
	}
	if d.Serial != "" {
		fmt.Fprintf(w, " (serial %s)", d.Serial)
	}
	if d.Speed != "" {
		fmt.Fprintf(w, ", %s speed", d.Speed)
	}
	fmt.Fprintf(w, ", bcdDevice %x.%02x\n", d.BcdDevice>>8, d.BcdDevice&0xFF)
	fmt.Fprintf(w, "  configuration %d, interface %d alt %d: class 0x%02X subclass 0x%02X protocol 0x%02X, %d endpoints",
		d.Config, i.Number, i.Alternate, i.Class, i.SubClass, i.Protocol, i.NumEndpoints)
	if d.InterfaceName != "" {
		fmt.Fprintf(w, ", %q", d.InterfaceName)
	}
	fmt.Fprintln(w)
	for _, ep := range i.Endpoints {
		fmt.Fprintf(w, "    endpoint %s\n", ep)
	}
	fmt.Fprintf(w, "  extra descriptors: %d bytes\n", len(i.Extra))
	if e.DescriptorError != "" {
		fmt.Fprintf(w, "  CCID class descriptor: %s\n\n", e.DescriptorError)
		return
	}
	fmt.Fprintf(w, "  CCID class descriptor: % X\n", i.Extra)
	for _, f := range e.Descriptor {
		fmt.Fprintf(w, "    %2d %-23s %-11s %s\n", f.Offset, f.Name, fmt.Sprintf("0x%X", f.Value), f.Meaning)
		fmt.Fprintf(w, "       %-23s %-11s %s\n", "", "", f.Hosts)
	}
	fmt.Fprintln(w)
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(stderr, "ccid-probe:", err)
		return exitError
	}
	return exitOK
}

const stopHostsNotice = "ccid-probe claims the reader's interface itself: stop pcscd and scdaemon first\n" +
	"  (systemctl stop pcscd.socket pcscd; gpgconf --kill scdaemon).\n"

// openDevice opens the interface and explains a busy one.
func openDevice(b backend, sel probe.Selector, stderr io.Writer) (device, bool) {
	fmt.Fprint(stderr, stopHostsNotice)
	d, err := b.Open(sel)
	if errors.Is(err, probe.ErrBusy) {
		fmt.Fprintf(stderr, "ccid-probe: %v\n  The interface is busy (LIBUSB_ERROR_BUSY): pcscd, scdaemon or another program holds it.\n"+
			"  Stop them (systemctl stop pcscd.socket pcscd; gpgconf --kill scdaemon) and run ccid-probe again.\n", err)
		return nil, false
	}
	if err != nil {
		fmt.Fprintln(stderr, "ccid-probe:", err)
		return nil, false
	}
	return d, true
}

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	devFlag := fs.String("device", "", "the reader, `VID:PID[:serial]` (needed when several are plugged in)")
	timeout := fs.Duration("timeout", 3*time.Second, "timeout of each transfer")
	var slow hexList
	fs.Var(&slow, "slow-apdu", "time-extension check: APDU `HEX` (repeat: every one but the last must answer 9000, the last must be slow)")
	keygenPW3 := fs.String("slow-keygen-pw3", "", "time-extension check on an OpenPGP card: VERIFY this admin `PIN` (PW3), set the authentication key to RSA-4096 and generate it (REPLACES that key)")
	slowTimeout := fs.Duration("slow-timeout", 120*time.Second, "wait for each frame of the slow APDU's answer")
	notifyWait := fs.Duration("notify-wait", 0, "NotifySlotChange check: wait this long for each of card removal and insertion (0: n/a)")
	onRemove := fs.String("on-remove", "", "shell `command` that removes the card (instead of asking the user)")
	onInsert := fs.String("on-insert", "", "shell `command` that inserts the card (instead of asking the user)")
	verbose := fs.Bool("v", false, "print the evidence of passing checks too")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	sel, err := probe.ParseSelector(*devFlag)
	if err != nil {
		fmt.Fprintln(stderr, "ccid-probe:", err)
		return exitError
	}
	if *keygenPW3 != "" {
		if len(slow) > 0 {
			fmt.Fprintln(stderr, "ccid-probe: --slow-apdu and --slow-keygen-pw3 exclude each other")
			return exitError
		}
		slow = keygenAPDUs(*keygenPW3)
	}
	opts := probe.Options{Timeout: *timeout, SlowAPDUs: slow, SlowTimeout: *slowTimeout, NotifyWait: *notifyWait,
		Prompt: prompter(ctx, *onRemove, *onInsert, stderr)}
	b, ok := openBackend(stderr)
	if !ok {
		return exitError
	}
	defer b.Close()
	d, ok := openDevice(b, sel, stderr)
	if !ok {
		return exitError
	}
	defer d.Close()
	rep := probe.Run(ctx, d, opts)
	if *asJSON {
		if writeJSON(stdout, stderr, rep) != exitOK {
			return exitError
		}
	} else {
		printReport(stdout, rep, *verbose)
	}
	if !rep.Passed {
		return exitFailed
	}
	return exitOK
}

// keygenAPDUs are VERIFY PW3, PUT DATA C3 (authentication key attributes: RSA, 4096-bit modulus, 32-bit
// exponent, standard format; OpenPGP card 3.4.1 §4.4.3.10) and GENERATE ASYMMETRIC KEY PAIR for the
// authentication key with extended Le (§7.2.14).
func keygenAPDUs(pin string) [][]byte {
	verify := append([]byte{0x00, 0x20, 0x00, 0x83, byte(len(pin))}, pin...)
	attrs := []byte{0x00, 0xDA, 0x00, 0xC3, 0x06, 0x01, 0x10, 0x00, 0x00, 0x20, 0x00}
	gen := []byte{0x00, 0x47, 0x80, 0x00, 0x00, 0x00, 0x02, 0xA4, 0x00, 0x00, 0x00}
	return [][]byte{verify, attrs, gen}
}

// prompter tells the user to remove or insert the card, or runs the command that does it.
func prompter(ctx context.Context, onRemove, onInsert string, stderr io.Writer) func(string) {
	return func(msg string) {
		cmd := onInsert
		if strings.HasPrefix(msg, "remove") {
			cmd = onRemove
		}
		if cmd == "" {
			fmt.Fprintf(stderr, ">>> %s\n", msg)
			return
		}
		fmt.Fprintf(stderr, ">>> %s: running %s\n", msg, cmd)
		c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
		c.Stdout, c.Stderr = stderr, stderr
		if err := c.Run(); err != nil {
			fmt.Fprintf(stderr, "ccid-probe: %s: %v\n", cmd, err)
		}
	}
}

func printReport(w io.Writer, rep probe.Report, verbose bool) {
	d := rep.Device
	fmt.Fprintf(w, "ccid-probe check: %s %s %s, interface %d\n\n", d.ID(), d.Manufacturer, d.Product, d.Interface.Number)
	for _, r := range rep.Results {
		mark := map[probe.Verdict]string{probe.Pass: "PASS", probe.Fail: "FAIL", probe.NotApplicable: "n/a "}[r.Verdict]
		fmt.Fprintf(w, "%s %-22s %s\n", mark, r.ID, r.Title)
		fmt.Fprintf(w, "     %s\n", r.Detail)
		if r.Verdict == probe.Fail || verbose {
			for _, f := range r.Evidence {
				fmt.Fprintf(w, "       %s\n", f)
			}
		}
	}
	pass, fail, na := rep.Counts()
	verdict := "PASSED"
	if !rep.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "\n%s: %d passed, %d failed, %d not applicable\n", verdict, pass, fail, na)
}

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("bench", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	devFlag := fs.String("device", "", "the reader, `VID:PID[:serial]`")
	apduHex := fs.String("apdu", "00CA004F00", "the APDU to time, `HEX` (default GET DATA 4F)")
	selHex := fs.String("select", "00A4040006D27600012401", "APDU `HEX` sent once before timing (\"\" for none)")
	n := fs.Int("n", 1000, "round trips to time")
	size := fs.Int("size", 4096, "length of the extended command APDU for bulk-OUT throughput")
	timeout := fs.Duration("timeout", 5*time.Second, "timeout of each transfer")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	sel, err := probe.ParseSelector(*devFlag)
	if err != nil {
		fmt.Fprintln(stderr, "ccid-probe:", err)
		return exitError
	}
	apdu, err := parseHex(*apduHex)
	if err != nil {
		fmt.Fprintln(stderr, "ccid-probe: --apdu:", err)
		return exitError
	}
	selAPDU := []byte{}
	if *selHex != "" {
		if selAPDU, err = parseHex(*selHex); err != nil {
			fmt.Fprintln(stderr, "ccid-probe: --select:", err)
			return exitError
		}
	}
	if *n <= 0 || *size < 8 || *size > 65535+7 {
		fmt.Fprintln(stderr, "ccid-probe: -n must be positive and --size within 8..65542")
		return exitError
	}
	b, ok := openBackend(stderr)
	if !ok {
		return exitError
	}
	defer b.Close()
	d, ok := openDevice(b, sel, stderr)
	if !ok {
		return exitError
	}
	defer d.Close()
	bar := newProgressBar(stderr)
	res, err := probe.Bench(ctx, d, probe.BenchOptions{APDU: apdu, Select: selAPDU, N: *n, Size: *size,
		Timeout: *timeout, Progress: bar.update})
	bar.done()
	if err != nil {
		fmt.Fprintln(stderr, "ccid-probe:", err)
		return exitError
	}
	if *asJSON {
		return writeJSON(stdout, stderr, res)
	}
	printBench(stdout, res)
	return exitOK
}

func printBench(w io.Writer, r probe.BenchResult) {
	fmt.Fprintf(w, "ccid-probe bench: %s %s %s\n", r.Device.ID(), r.Device.Manufacturer, r.Device.Product)
	fmt.Fprintf(w, "APDU %s (SW %s) round trip: %s\n", strings.ToUpper(r.APDU), r.SW, r.Latency)
	for _, t := range r.Throughput {
		fmt.Fprintf(w, "%s: %d-byte APDUs in %d blocks, SW %s: %.1f KiB/s (%d in %.3f s; %s)\n",
			t.Name, t.APDUBytes, t.Blocks, t.SW, t.BytesPerSec/1024, t.N, t.Seconds, t.Latency)
	}
}
