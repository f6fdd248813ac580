package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"time"

	"github.com/ccidgadget/ccidgadget/card"
	"github.com/ccidgadget/ccidgadget/configfs"
)

// statusReport is what `ccid-gadget status --json` prints.
type statusReport struct {
	Gadget configfs.Status `json:"gadget"`
	Daemon struct {
		Running bool      `json:"running"`
		PID     int       `json:"pid,omitempty"`
		Started time.Time `json:"started,omitzero"`
	} `json:"daemon"`
	// CardAsOf is when Card was read: by the running daemon (it refreshes every 5 s), or now from the state file.
	CardAsOf time.Time  `json:"card_as_of,omitzero"`
	State    string     `json:"state,omitempty"`
	Card     *card.Info `json:"-"`
	// CardJSON is Card in the format of `card info --json` (hex byte strings, snake_case names).
	CardJSON  *infoJSON `json:"card,omitempty"`
	CardError string    `json:"card_error,omitempty"`
}

// runStatus is `ccid-gadget status`: is the gadget there, bound, seen by a host, and what card it carries.
func runStatus(_ context.Context, args []string, stdout, stderr io.Writer) error {
	var sf stateFlags
	flags := newFlagSet("status", "status [--name NAME] [--state PATH] [--json]", stdout)
	sf.register(flags)
	var name string
	gadgetName(flags, &name)
	asJSON := flags.Bool("json", false, "print the status as JSON")
	if help, err := parseFlags(flags, args); help || err != nil {
		return err
	}
	var rep statusReport
	st, err := configfs.Inspect(gadgetSystem, name)
	if err != nil {
		return err
	}
	rep.Gadget = st
	rf, alive, err := readRunFile(name)
	switch {
	case err == nil && alive:
		rep.Daemon.Running, rep.Daemon.PID, rep.Daemon.Started = true, rf.PID, rf.Started
		info := rf.Card
		rep.Card, rep.CardAsOf, rep.State = &info, rf.Updated, rf.State
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return err
	default:
		rep.State = sf.path
		if info, err := readCardInfo(&sf); err != nil {
			rep.CardError = err.Error()
		} else {
			rep.Card, rep.CardAsOf = &info, time.Now().UTC()
		}
	}
	if *asJSON {
		if rep.Card != nil {
			j := newInfoJSON(rep.State, *rep.Card)
			rep.CardJSON = &j
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printStatus(stdout, rep)
	return nil
}

func readCardInfo(sf *stateFlags) (card.Info, error) {
	log := slog.New(slog.DiscardHandler)
	st, err := sf.open(false, log)
	if err != nil {
		return card.Info{}, err
	}
	defer st.Close()
	c, err := card.New(st, card.Options{Logger: log})
	if err != nil {
		return card.Info{}, err
	}
	return c.Info()
}

func printStatus(w io.Writer, rep statusReport) {
	g := rep.Gadget
	if g.Exists {
		fmt.Fprintf(w, "gadget: %s (%s:%s) at %s\n", g.Name, g.VendorID, g.ProductID, g.Dir)
	} else {
		fmt.Fprintf(w, "gadget: %s absent (start it with 'ccid-gadget up')\n", g.Name)
	}
	if rep.Daemon.Running {
		fmt.Fprintf(w, "daemon: running, pid %d, since %s\n", rep.Daemon.PID, rep.Daemon.Started.Format(time.RFC3339))
	} else {
		fmt.Fprintln(w, "daemon: not running")
		if g.Exists {
			fmt.Fprintln(w, "        (a gadget without its daemon was left by a crash: 'ccid-gadget down' removes it)")
		}
	}
	switch {
	case g.UDC == "":
		fmt.Fprintln(w, "udc: not bound")
	default:
		fmt.Fprintf(w, "udc: %s, state %q\n", g.UDC, g.UDCState)
	}
	switch {
	case g.Configured:
		fmt.Fprintln(w, "host: connected, configured")
	case g.Connected:
		fmt.Fprintln(w, "host: connected, not configured yet")
	default:
		fmt.Fprintln(w, "host: not connected")
	}
	switch {
	case rep.Card != nil:
		fmt.Fprintf(w, "card: state %s, as of %s\n", rep.State, rep.CardAsOf.Local().Format(time.RFC3339))
		fmt.Fprint(w, indent(rep.Card.String()))
	default:
		fmt.Fprintf(w, "card: %s\n", rep.CardError)
	}
}

func indent(s string) string {
	out := make([]byte, 0, len(s)+64)
	start := true
	for i := 0; i < len(s); i++ {
		if start {
			out = append(out, "  "...)
		}
		out = append(out, s[i])
		start = s[i] == '\n'
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return string(out)
}
