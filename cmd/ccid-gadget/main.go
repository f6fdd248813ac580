// Command ccid-gadget runs the ccidgadget USB smart-card reader and its tools.
//
// Each subcommand lives in its own file and has one entry in the commands table
// below; `ccid-gadget help` lists them.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at link time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand of ccid-gadget.
type command struct {
	name    string
	summary string
	// run executes the command with the arguments that follow its name.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands lists every subcommand in the order help shows them.
func commands() []command {
	return []command{
		{"version", "print the version and build information", runVersion},
		{"help", "show this help, or `help COMMAND` for one command", runHelp},
		{"vpcd", "serve the card to pcscd through vsmartcard-vpcd (no USB needed)", runVPCD},
		{"card", "the card's state, offline: show it (info), factory-reset it (reset), Gnuk's admin-less mode (admin-less)", runCard},
		{"up", "run the reader as a USB gadget (configfs + FunctionFS) until SIGINT/SIGTERM", runUp},
		{"down", "stop a running gadget, or remove one a crash left behind", runDown},
		{"status", "show the gadget, its UDC and host connection, and the card", runStatus},
		{"host-setup", "on a host: list the gadget's VID:PID in libccid's Info.plist for pcscd", runHostSetup},
		{"trace", "show a pcscd debug log or recording (show), draw its time line (plot), compare a replay (compare)", runTrace},
		{"personas", "list the readers up --persona can impersonate, with their CCID descriptors", runPersonas},
	}
}

// errUsage marks a usage error: the message is printed with a hint to run help.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches args to a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "ccid-gadget %s: %v\nRun 'ccid-gadget help %s' for usage.\n", c.name, err, c.name)
			return 2
		default:
			fmt.Fprintf(stderr, "ccid-gadget %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "ccid-gadget: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: ccid-gadget COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "ccid-gadget is a software USB CCID smart-card reader with a built-in OpenPGP card.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
}

func runVersion(_ context.Context, args []string, stdout, _ io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: version takes no arguments", errUsage)
	}
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	fmt.Fprintf(stdout, "ccid-gadget %s (%s)\n", version, goVersion)
	return nil
}

func runHelp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			if c.name == "help" || c.name == "version" {
				fmt.Fprintf(stdout, "ccid-gadget %s: %s\n", c.name, c.summary)
				return nil
			}
			// Every other command prints its own flags for -h.
			return c.run(ctx, []string{"-h"}, stdout, stderr)
		}
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}
