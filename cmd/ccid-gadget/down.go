package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/ccidgadget/ccidgadget/configfs"
)

// runDown is `ccid-gadget down`: stop a running `up` and remove the gadget, or clean up what a crash left.
func runDown(_ context.Context, args []string, stdout, _ io.Writer) error {
	flags := newFlagSet("down", "down [--name NAME] [--timeout 5s]", stdout)
	var name string
	gadgetName(flags, &name)
	timeout := flags.Duration("timeout", 5*time.Second, "how long to wait for a running 'ccid-gadget up' to stop")
	if help, err := parseFlags(flags, args); help || err != nil {
		return err
	}
	sys := gadgetSystem
	if err := sys.Check(); err != nil {
		return err
	}
	mountDir := ""
	stopped := false
	if rf, alive, err := readRunFile(name); err == nil {
		mountDir = rf.MountDir
		if alive {
			if err := stopProcess(rf.PID, *timeout); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "stopped ccid-gadget up (pid %d)\n", rf.PID)
			stopped = true
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	err := configfs.Remove(sys, name, mountDir)
	os.Remove(runFilePath(name))
	switch {
	case errors.Is(err, configfs.ErrNotFound):
		if !stopped {
			fmt.Fprintf(stdout, "no gadget %q: nothing to do\n", name)
		}
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "removed gadget %q\n", name)
	return nil
}

// stopProcess sends SIGTERM to pid and waits until it has exited.
func stopProcess(pid int, timeout time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("stop ccid-gadget up (pid %d): %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !processAlive(pid) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("ccid-gadget up (pid %d) did not stop within %v after SIGTERM", pid, timeout)
}
