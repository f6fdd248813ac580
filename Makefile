# ccidgadget build and test entry points. `make deps` once on a fresh Debian 12 machine, then `make test`.
# Every target is a plain command that can be run by hand too; README.md explains each.

SHELL     := /bin/bash
GO        ?= go
BIN       ?= bin
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
FUZZTIME  ?= 10s
# Debian packages the tests use: the host stacks (pcscd, libccid, GnuPG, OpenSC, vpcd), QEMU for the virtual
# bench and for running the 32-bit ARM unit tests, a C compiler, pkg-config and libusb for ccid-probe (cgo) and for
# the unit tests' -race.
APT_PKGS  := pcscd libccid scdaemon gnupg gpg-agent opensc pcsc-tools vsmartcard-vpcd openssl openssh-client tshark \
             qemu-system-x86 qemu-user-static busybox-static kmod usbutils gcc libc6-dev pkgconf libusb-1.0-0-dev \
             python3-pyscard

.PHONY: all build cross deps test check unit fuzz arm e2e-pcsc e2e bench

all: build

# ccid-gadget is static (no cgo) for the device; ccid-probe runs on hosts and needs cgo and libusb.
build:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ccid-gadget ./cmd/ccid-gadget
	CGO_ENABLED=1 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ccid-probe ./cmd/ccid-probe

# The Pi Zero (ARMv6, 32-bit) and 64-bit ARM boards; ccid-gadget has no cgo.
cross:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/linux-armv6/ccid-gadget ./cmd/ccid-gadget
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/linux-arm64/ccid-gadget ./cmd/ccid-gadget

deps:
	@if [ "$$(id -u)" != 0 ]; then echo "make deps installs Debian packages: run it as root" >&2; exit 1; fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PKGS) >/dev/null

# test is what CI runs: every check below, in order of cost.
test: check build unit fuzz cross arm e2e-pcsc e2e

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

# Runs every fuzz target of every package for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg >/tmp/fuzz.log 2>&1 || \
	    { grep -q 'context deadline exceeded' /tmp/fuzz.log && ! grep -q 'Failing input' /tmp/fuzz.log && \
	      echo "fuzz $$pkg $$f: the fuzzing engine's own deadline error (no failing input); once more" && \
	      $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg >/tmp/fuzz.log 2>&1; } || \
	    { cat /tmp/fuzz.log; exit 1; }; \
	  done; \
	done

# The unit tests on 32-bit ARM (the Pi Zero's word size) under qemu-arm-static.
arm:
	CGO_ENABLED=0 GOARCH=arm GOARM=6 $(GO) test -short -count=1 -exec qemu-arm-static ./...

# End-to-end tests through real pcscd + vsmartcard-vpcd, GnuPG and OpenSC, no USB.
# A skipped test here means a missing tool, not a pass: the target fails on any SKIP.
e2e-pcsc:
	@set -o pipefail; CCIDGADGET_E2E=1 $(GO) test -count=1 -timeout 20m -v ./e2e/... 2>&1 | tee e2e-pcsc.log | grep -E '^(---|ok|FAIL|PASS)'
	@if grep -q -- '--- SKIP' e2e-pcsc.log; then echo "e2e-pcsc: skipped tests:"; grep -A2 -- '--- SKIP' e2e-pcsc.log; exit 1; fi

# The virtual bench: a QEMU guest with dummy_hcd where real host stacks drive the USB gadget.
e2e:
	e2e/run

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
