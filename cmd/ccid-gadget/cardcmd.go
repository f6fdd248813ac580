package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ccidgadget/ccidgadget/card"
	"github.com/ccidgadget/ccidgadget/store"
)

// defaultStatePath is where the card's state lives unless --state says otherwise.
const defaultStatePath = "/var/lib/ccidgadget/card.db"

// stateFlags are the flags every command that opens the card's state shares.
type stateFlags struct {
	path         string
	deviceSecret string
}

func (f *stateFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.path, "state", defaultStatePath, "card state `file` (bbolt)")
	fs.StringVar(&f.deviceSecret, "device-secret", "", "`file` whose bytes are mixed into every PIN-derived key (must be the one the state was created with)")
}

// open opens the state file. With create false a missing file is an error
// instead of a new card.
func (f *stateFlags) open(create bool, log *slog.Logger) (*store.Store, error) {
	opts := store.Options{Logger: log}
	if f.deviceSecret != "" {
		b, err := store.ReadDeviceSecret(f.deviceSecret)
		if err != nil {
			return nil, fmt.Errorf("read device secret: %w", explainFS(err))
		}
		opts.DeviceSecret = b
	}
	if create {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
			return nil, fmt.Errorf("create state directory: %w", explainFS(err))
		}
	} else if _, err := os.Stat(f.path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no state file at %s (give --state PATH, or run 'ccid-gadget vpcd' once to create a card)", f.path)
		}
		return nil, explainFS(err)
	}
	st, err := store.Open(f.path, opts)
	switch {
	case errors.Is(err, store.ErrInUse):
		return nil, fmt.Errorf("state file %s is in use by another process (stop 'ccid-gadget vpcd' or the gadget first)", f.path)
	case errors.Is(err, store.ErrDeviceSecret):
		return nil, fmt.Errorf("%w (give the --device-secret file the state was created with)", err)
	case err != nil:
		return nil, explainFS(err)
	}
	return st, nil
}

// openCard opens the state file and the OpenPGP card over it. The caller closes the store.
func (f *stateFlags) openCard(create bool, log *slog.Logger) (*store.Store, *card.Card, error) {
	st, err := f.open(create, log)
	if err != nil {
		return nil, nil, err
	}
	c, err := card.New(st, card.Options{Logger: log})
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("open the card in %s: %w", f.path, err)
	}
	return st, c, nil
}

// explainFS adds a hint to a permission error.
func explainFS(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w (run as the user that owns the file, or as root)", err)
	}
	return err
}

// newFlagSet makes a flag set that prints its usage to stdout for -h and
// reports parse errors as usage errors.
func newFlagSet(name, synopsis string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: ccid-gadget %s\n\nFlags:\n", synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parseFlags parses args; it returns (true, nil) when -h was asked for and
// usage is printed.
func parseFlags(fs *flag.FlagSet, args []string) (help bool, err error) {
	err = fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("%w: %v", errUsage, err)
	case fs.NArg() > 0:
		return false, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return false, nil
}

// runCard is `ccid-gadget card info|reset|admin-less`: the card's state, offline.
func runCard(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, "Usage: ccid-gadget card info [--state PATH] [--device-secret FILE] [--json]")
		fmt.Fprintln(stdout, "       ccid-gadget card reset [--state PATH] [--device-secret FILE]")
		fmt.Fprintln(stdout, "       ccid-gadget card admin-less on|off [--state PATH] [--device-secret FILE]")
		fmt.Fprintln(stdout)
		fmt.Fprintln(stdout, "info prints the card's state; reset factory-resets it (no PIN asked): every key,")
		fmt.Fprintln(stdout, "certificate and data object is erased and the PINs go back to 123456 / 12345678.")
		fmt.Fprintln(stdout, "admin-less on makes the card behave like Gnuk: from the next change of PW1 (to at")
		fmt.Fprintln(stdout, "least 8 characters) PW1 is also the admin PIN, until PW3 is set; off restores PW3.")
		fmt.Fprintln(stdout, "All work on the state file while no other process has it open; --device-secret is")
		fmt.Fprintln(stdout, "needed when the state was created with one.")
		if len(args) == 0 {
			return fmt.Errorf("%w: card needs a subcommand: info, reset or admin-less", errUsage)
		}
		return nil
	}
	switch args[0] {
	case "info":
		return runCardInfo(ctx, args[1:], stdout, stderr)
	case "reset":
		return runCardReset(ctx, args[1:], stdout, stderr)
	case "admin-less":
		return runCardAdminLess(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("%w: unknown card subcommand %q (want info, reset or admin-less)", errUsage, args[0])
}

func runCardInfo(_ context.Context, args []string, stdout, stderr io.Writer) error {
	var sf stateFlags
	fs := newFlagSet("card info", "card info [--state PATH] [--device-secret FILE] [--json]", stdout)
	sf.register(fs)
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, c, err := sf.openCard(false, log)
	if err != nil {
		return err
	}
	defer st.Close()
	info, err := c.Info()
	if err != nil {
		return err
	}
	var mode store.AdminLess
	if err := st.View(func(tx *store.Tx) error { mode = tx.AdminLess(); return nil }); err != nil {
		return fmt.Errorf("read %s: %w", sf.path, err)
	}
	if *asJSON {
		out := newInfoJSON(sf.path, info)
		out.AdminLess = mode.String()
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(stdout, "state: %s\n", sf.path)
	fmt.Fprint(stdout, info.String())
	fmt.Fprintf(stdout, "admin-less mode: %s\n", describeAdminLess(mode))
	return nil
}

// describeAdminLess says in words what the admin PIN is in mode a.
func describeAdminLess(a store.AdminLess) string {
	switch a {
	case store.AdminLessPending:
		return "on, waiting for PW1 to be changed (PW3 is the admin PIN until then)"
	case store.AdminLessActive:
		return "on, active: PW1 is also the admin PIN until PW3 is set"
	}
	return "off (PW3 is the admin PIN)"
}

// runCardAdminLess is `ccid-gadget card admin-less on|off`: switches the card's Gnuk-style admin-less mode in
// the state file (see the card package doc).
func runCardAdminLess(_ context.Context, args []string, stdout, stderr io.Writer) error {
	var sf stateFlags
	fs := newFlagSet("card admin-less", "card admin-less on|off [--state PATH] [--device-secret FILE]", stdout)
	sf.register(fs)
	// on|off may come before or after the flags.
	var word string
	if len(args) > 0 && (args[0] == "on" || args[0] == "off") {
		word, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	rest := fs.Args()
	if word == "" && len(rest) > 0 {
		word, rest = rest[0], rest[1:]
	}
	switch {
	case word == "":
		return fmt.Errorf("%w: card admin-less needs on or off", errUsage)
	case word != "on" && word != "off":
		return fmt.Errorf("%w: card admin-less takes on or off, not %q", errUsage, word)
	case len(rest) > 0:
		return fmt.Errorf("%w: unexpected argument %q", errUsage, rest[0])
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := sf.open(false, log)
	if err != nil {
		return err
	}
	defer st.Close()
	var mode store.AdminLess
	err = st.Update(func(tx *store.Tx) error {
		if err := tx.SetAdminLess(word == "on"); err != nil {
			return err
		}
		mode = tx.AdminLess()
		return nil
	})
	if err != nil {
		return fmt.Errorf("admin-less %s in %s: %w", word, sf.path, err)
	}
	fmt.Fprintf(stdout, "%s: admin-less mode %s\n", sf.path, describeAdminLess(mode))
	switch mode {
	case store.AdminLessPending:
		fmt.Fprintln(stdout, "The next new PW1 must have at least 8 characters and becomes the admin PIN too;")
		fmt.Fprintln(stdout, "setting PW3 (gpg --card-edit: admin, passwd, 3) or a factory reset ends the mode.")
	case store.AdminLessOff:
		fmt.Fprintln(stdout, "PW3 as stored is the admin PIN: 12345678 unless it was changed before admin-less")
		fmt.Fprintln(stdout, "mode took effect. Change it if it is still the default.")
	}
	return nil
}

func runCardReset(_ context.Context, args []string, stdout, stderr io.Writer) error {
	var sf stateFlags
	fs := newFlagSet("card reset", "card reset [--state PATH] [--device-secret FILE]", stdout)
	sf.register(fs)
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, c, err := sf.openCard(false, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := c.FactoryReset(); err != nil {
		return fmt.Errorf("factory reset %s: %w", sf.path, err)
	}
	if err := st.Check(); err != nil {
		return fmt.Errorf("factory reset %s: state check afterwards: %w", sf.path, err)
	}
	fmt.Fprintf(stdout, "factory reset %s: erased every key, certificate and data object;\n", sf.path)
	fmt.Fprintln(stdout, "PW1 is 123456, PW3 is 12345678, no reset code; retry counters 3/0/3; admin-less mode off.")
	return nil
}

// infoJSON is `card info --json`: card.Info with byte strings in hex and
// snake_case names, a stable format for scripts.
type infoJSON struct {
	State          string             `json:"state"`
	AID            string             `json:"aid"`
	Version        string             `json:"version"`
	Manufacturer   string             `json:"manufacturer"`
	Serial         string             `json:"serial"`
	Name           string             `json:"name"`
	Language       string             `json:"language"`
	URL            string             `json:"url"`
	Login          string             `json:"login"`
	Keys           []keyJSON          `json:"keys"`
	PINs           map[string]pinJSON `json:"pins"`
	PW1Multiple    bool               `json:"pw1_valid_for_several_signatures"`
	SignatureCount uint32             `json:"signature_count"`
	CertLengths    [3]int             `json:"certificate_lengths"`
	KDF            bool               `json:"kdf"`
	Terminated     bool               `json:"terminated"`
	AdminLess      string             `json:"admin_less"` // off, pending or active
}

type keyJSON struct {
	Role        string     `json:"role"`
	Attributes  string     `json:"attributes"`
	Present     bool       `json:"present"`
	Origin      string     `json:"origin,omitempty"`
	Fingerprint string     `json:"fingerprint,omitempty"`
	Created     *time.Time `json:"created,omitempty"`
}

type pinJSON struct {
	Set        bool `json:"set"`
	Retries    int  `json:"retries"`
	MaxRetries int  `json:"max_retries"`
	Length     int  `json:"length"`
}

func newInfoJSON(path string, in card.Info) infoJSON {
	out := infoJSON{
		State:          path,
		AID:            fmt.Sprintf("%X", in.AID),
		Version:        fmt.Sprintf("%d.%d", in.Version>>8, in.Version&0xFF),
		Manufacturer:   fmt.Sprintf("%04X", in.Manufacturer),
		Serial:         fmt.Sprintf("%X", in.Serial[:]),
		Name:           in.Name,
		Language:       in.Language,
		URL:            in.URL,
		Login:          in.Login,
		PINs:           map[string]pinJSON{},
		PW1Multiple:    in.PW1Multiple,
		SignatureCount: in.SignatureCount,
		CertLengths:    in.CertLengths,
		KDF:            in.KDF,
		Terminated:     in.Terminated,
	}
	for _, k := range in.Keys {
		kj := keyJSON{Role: k.Role, Attributes: k.Attributes, Present: k.Present, Origin: k.Origin, Fingerprint: fmt.Sprintf("%X", k.Fingerprint)}
		if !k.Created.IsZero() {
			created := k.Created.UTC()
			kj.Created = &created
		}
		out.Keys = append(out.Keys, kj)
	}
	for name, p := range map[string]store.PINStatus{"PW1": in.PW1, "RC": in.RC, "PW3": in.PW3} {
		out.PINs[name] = pinJSON{Set: p.Set, Retries: p.Retries, MaxRetries: p.MaxRetries, Length: p.Length}
	}
	return out
}
