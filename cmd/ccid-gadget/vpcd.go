package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/ccidgadget/ccidgadget/vpcd"
)

// runVPCD is `ccid-gadget vpcd`: serve the card to pcscd through
// vsmartcard-vpcd until SIGINT or SIGTERM.
func runVPCD(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var sf stateFlags
	fs := newFlagSet("vpcd", "vpcd [--state PATH] [--addr HOST:PORT] [--device-secret FILE] [-v]", stdout)
	sf.register(fs)
	addr := fs.String("addr", vpcd.DefaultAddr, "address of vpcd (the `host:port` in DEVICENAME /dev/null:PORT of /etc/reader.conf.d/vpcd)")
	verbose := fs.Bool("v", false, "log every APDU's header and status word (never its data)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	st, c, err := sf.openCard(true, log)
	if err != nil {
		return err
	}
	defer st.Close()
	log.Info("serving the card to vpcd", "state", sf.path, "addr", *addr)
	cl := &vpcd.Client{Addr: *addr, Card: c, Logger: log}
	if err := cl.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("vpcd: %w", err)
	}
	log.Info("stopped")
	return nil
}
