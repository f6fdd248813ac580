package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/ccidgadget/ccidgadget/ccid/trace"
)

// runTrace is `ccid-gadget trace show|plot FILE`: a recorded or captured pcscd debug log, read for people.
func runTrace(_ context.Context, args []string, stdout, _ io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, "Usage: ccid-gadget trace show FILE")
		fmt.Fprintln(stdout, "       ccid-gadget trace plot FILE -o timeline.svg")
		fmt.Fprintln(stdout, "       ccid-gadget trace compare RECORDED REPLAYED")
		fmt.Fprintln(stdout)
		fmt.Fprintln(stdout, "FILE is a pcscd debug log (pcscd -f -d with LIBCCID_ifdLogLevel=0x000F, any variant) or a")
		fmt.Fprintln(stdout, "recording made with 'ccid-gadget up --record FILE'. show prints one line per exchange")
		fmt.Fprintln(stdout, "(command, answer, latency, fault) and a latency summary; plot draws the exchanges on a")
		fmt.Fprintln(stdout, "time line as SVG. compare pairs the exchanges of a trace with the host's log of its replay")
		fmt.Fprintln(stdout, "and prints the recorded and replayed delays and the p50/p99/max of their difference.")
		if len(args) == 0 {
			return fmt.Errorf("%w: trace needs a subcommand: show or plot", errUsage)
		}
		return nil
	}
	switch args[0] {
	case "show":
		fs := newFlagSet("trace show", "trace show FILE", stdout)
		file, help, err := parseFileArg(fs, args[1:])
		if help || err != nil {
			return err
		}
		tr, err := readTrace(file)
		if err != nil {
			return err
		}
		return tr.WriteTable(stdout)
	case "plot":
		fs := newFlagSet("trace plot", "trace plot FILE -o timeline.svg", stdout)
		out := fs.String("o", "", "write the SVG time line to `FILE` (required)")
		file, help, err := parseFileArg(fs, args[1:])
		if help || err != nil {
			return err
		}
		if *out == "" {
			return fmt.Errorf("%w: trace plot needs -o FILE", errUsage)
		}
		tr, err := readTrace(file)
		if err != nil {
			return err
		}
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		if err := tr.WriteSVG(f); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", *out, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", *out, err)
		}
		fmt.Fprintf(stdout, "%s: %d exchanges drawn\n", *out, len(tr.Exchanges))
		return nil
	case "compare":
		if len(args) != 3 {
			return fmt.Errorf("%w: trace compare needs RECORDED and REPLAYED", errUsage)
		}
		rec, err := readTrace(args[1])
		if err != nil {
			return err
		}
		rep, err := readTrace(args[2])
		if err != nil {
			return err
		}
		return trace.WriteComparison(stdout, rec, rep)
	}
	return fmt.Errorf("%w: unknown trace subcommand %q (want show, plot or compare)", errUsage, args[0])
}

// parseFileArg parses flags around exactly one FILE argument (flags may come before or after it).
func parseFileArg(fs *flag.FlagSet, args []string) (file string, help bool, err error) {
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return "", true, nil
	} else if err != nil {
		return "", false, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() == 0 {
		return "", false, fmt.Errorf("%w: missing FILE", errUsage)
	}
	file = fs.Arg(0)
	help, err = parseFlags(fs, fs.Args()[1:])
	return file, help, err
}

func readTrace(path string) (*trace.Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr, err := trace.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(tr.Exchanges) == 0 {
		return nil, fmt.Errorf("%s: no CCID frames (was pcscd run with -d and LIBCCID_ifdLogLevel including 0x04?)", path)
	}
	return tr, nil
}
