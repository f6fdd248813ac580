package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/ccidgadget/ccidgadget/persona"
)

// runPersonas is `ccid-gadget personas [NAME]`: the readers `up --persona NAME` can impersonate.
func runPersonas(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("personas", "personas [NAME]", stdout)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	ps := persona.All()
	switch fs.NArg() {
	case 0:
	case 1:
		p, err := persona.Lookup(fs.Arg(0))
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		ps = []persona.Persona{p}
	default:
		return fmt.Errorf("%w: personas takes at most one NAME", errUsage)
	}
	for i, p := range ps {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprint(stdout, p.String())
	}
	return nil
}
