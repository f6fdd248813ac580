package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const embeddedTrace = "../../ccid/trace/testdata/pr533-embedded.log"

func TestTraceCommand(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "timeline.svg")
	empty := filepath.Join(t.TempDir(), "empty.log")
	os.WriteFile(empty, []byte("00000001 nothing here\n"), 0o644)
	for _, c := range []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{[]string{"trace", "show", embeddedTrace}, 0, "latency p50 1.206ms p99 2.712s max 2.712s", ""},
		{[]string{"trace", "plot", embeddedTrace, "-o", svg}, 0, "2 exchanges drawn", ""},
		{[]string{"trace", "plot", "-o", svg, embeddedTrace}, 0, "2 exchanges drawn", ""},
		{[]string{"trace", "plot", embeddedTrace}, 2, "", "needs -o FILE"},
		{[]string{"trace", "show"}, 2, "", "missing FILE"},
		{[]string{"trace", "show", embeddedTrace, "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"trace", "show", "/nonexistent.log"}, 1, "", "no such file"},
		{[]string{"trace", "show", empty}, 1, "", "no CCID frames"},
		{[]string{"trace", "frob"}, 2, "", "unknown trace subcommand"},
		{[]string{"trace", "compare", embeddedTrace, embeddedTrace}, 0, "1 of 2 recorded exchanges found in the replay; |replayed − recorded| p50 0µs", ""},
		{[]string{"trace", "compare", embeddedTrace}, 2, "", "needs RECORDED and REPLAYED"},
		{[]string{"trace"}, 2, "Usage: ccid-gadget trace show FILE", "needs a subcommand"},
		{[]string{"help", "trace"}, 0, "Usage: ccid-gadget trace show FILE", ""},
		{[]string{"help"}, 0, "personas", ""},
	} {
		t.Run(strings.Join(c.args, "_"), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), c.args, &stdout, &stderr); code != c.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, c.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), c.inStdout) || !strings.Contains(stderr.String(), c.inStderr) {
				t.Errorf("stdout %q stderr %q, want %q / %q", stdout.String(), stderr.String(), c.inStdout, c.inStderr)
			}
		})
	}
	b, err := os.ReadFile(svg)
	if err != nil || !bytes.HasPrefix(b, []byte("<svg")) {
		t.Errorf("svg %q %v", b, err)
	}
}

func TestPersonasCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"personas"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"generic:", "nxp-pr533:", "gnuk:", "canokey:", "1FC9:010B", "dwDefaultClock           3685 kHz",
		"dwFeatures               0x0004047E", "full-speed", "dwFeatures               0x0002007E"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("personas lacks %q", want)
		}
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"personas", "gnuk"}, &stdout, &stderr); code != 0 || strings.Contains(stdout.String(), "generic") {
		t.Errorf("personas gnuk: %d %q", code, stdout.String())
	}
	if code := run(context.Background(), []string{"personas", "acme"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "unknown persona") {
		t.Errorf("personas acme: %d %q", code, stderr.String())
	}
}
