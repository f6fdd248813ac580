# Shared by the bench scenarios (sourced, never run). Runs inside the guest: see e2e/vm/run-guest.
#
# e2e/scenarios/run-all sets, for each scenario:
#   OUT   its results directory on the writable share (logs: output.log, gadget.log, pcscd.log,
#         scdaemon.log, pinentry.log)
#   T     a fresh scratch directory on the guest's tmpfs (bbolt state, GNUPGHOME, files)
# Conventions: `step` says what comes next, `fail` ends the scenario with a reason, `check CMD`
# runs CMD and fails with its output if it fails. A scenario passes when it exits 0.
set -eu

: "${OUT:?run by e2e/scenarios/run-all}" "${T:?run by e2e/scenarios/run-all}"
BIN=${E2E_BIN:-$E2E_WORK/bin}/ccid-gadget
SCEN=$E2E_REPO/e2e/scenarios
VID=0x1209
PID=0x0001
UDC=dummy_udc.0
STATE=$T/state/card.db
PKCS11=/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so
GADGET_PID=""
PCSCD_PID=""
mkdir -p "$T/state"

step() { echo "== $(date +%T) $*"; }
fail() {
	echo "FAIL: $*"
	exit 1
}
# check CMD...: run CMD with its output in the log; fail when it fails.
check() {
	echo "\$ $*"
	"$@" || fail "command failed ($?): $*"
}

# wait_for WHAT SECONDS CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
	what=$1 secs=$2
	shift 2
	n=$((secs * 10))
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ $n -gt 0 ] || fail "timed out after ${secs}s waiting for $what"
		sleep 0.1
	done
}

# require_cmd NAME: the ccid-gadget binary exists and has subcommand NAME.
require_cmd() {
	[ -x "$BIN" ] || fail "$BIN was not built"
	"$BIN" help 2>&1 | grep -Eq "^[[:space:]]*$1([[:space:]]|\$)" ||
		fail "ccid-gadget has no '$1' command yet (ccid-gadget help does not list it)"
}

usb_present() { lsusb -d "${VID#0x}:${PID#0x}" >/dev/null 2>&1; }
usb_absent() { ! usb_present; }

# gadget_up [FLAGS...]: start `ccid-gadget up` in the background and wait until the guest's
# host side has enumerated it.
gadget_up() {
	require_cmd up
	echo "\$ ccid-gadget up --udc auto --state $STATE --vid $VID --pid $PID $*"
	echo "---- ccid-gadget up $* ($(date +%T))" >>"$OUT/gadget.log"
	"$BIN" up --udc auto --state "$STATE" --vid "$VID" --pid "$PID" "$@" >>"$OUT/gadget.log" 2>&1 &
	GADGET_PID=$!
	echo "$GADGET_PID" >>"$T/pids"
	n=300
	until usb_present; do
		kill -0 "$GADGET_PID" 2>/dev/null || {
			wait "$GADGET_PID" && rc=0 || rc=$?
			GADGET_PID=""
			fail "ccid-gadget up exited ($rc) before the device enumerated"
		}
		n=$((n - 1))
		[ $n -gt 0 ] || fail "the gadget did not enumerate within 30 s"
		sleep 0.1
	done
	echo "gadget up (pid $GADGET_PID): $(lsusb -d "${VID#0x}:${PID#0x}")"
}

# gadget_stop: SIGTERM, then it must exit within 3 s and the device must disappear.
gadget_stop() {
	[ -n "$GADGET_PID" ] || return 0
	echo "\$ kill -TERM ccid-gadget ($GADGET_PID)"
	kill -TERM "$GADGET_PID" 2>/dev/null || true
	n=30
	while kill -0 "$GADGET_PID" 2>/dev/null; do
		n=$((n - 1))
		[ $n -gt 0 ] || {
			kill -KILL "$GADGET_PID" 2>/dev/null
			GADGET_PID=""
			fail "ccid-gadget did not exit within 3 s of SIGTERM"
		}
		sleep 0.1
	done
	wait "$GADGET_PID" && rc=0 || rc=$?
	GADGET_PID=""
	echo "ccid-gadget exited with $rc"
	wait_for "the device to disappear after ccid-gadget stopped" 10 usb_absent
	# pcscd drops the reader on its own hotplug event, some time after the device is gone; until
	# then it still lists the old reader under the same name, and a client that connects to it
	# gets SCARD_E_READER_UNAVAILABLE (seen in CI: 13-fidelity, replay run 4 of 5).
	[ -z "$PCSCD_PID" ] || wait_for "pcscd to drop the reader after ccid-gadget stopped" 20 pcsc_no_reader
}

# pcsc_no_reader: pcscd lists no reader at all.
pcsc_no_reader() {
	/usr/bin/python3 -c 'import sys
from smartcard.System import readers
sys.exit(1 if readers() else 0)' 2>/dev/null
}

# host_setup: list the VID:PID in the guest's (writable, throw-away) /etc/libccid_Info.plist:
# with `ccid-gadget host-setup` when it exists, else by hand.
host_setup() {
	if [ -x "$BIN" ] && "$BIN" help 2>&1 | grep -Eq '^[[:space:]]*host-setup([[:space:]]|$)'; then
		check "$BIN" host-setup
	else
		echo "(ccid-gadget host-setup missing: adding $VID:$PID to /etc/libccid_Info.plist by hand)"
		plist_add "$VID" "$PID" "ccidgadget bench"
	fi
	grep -qi "<string>$VID</string>" /etc/libccid_Info.plist || fail "$VID not in /etc/libccid_Info.plist"
}

# plist_add VID PID NAME: prepend one alias to the three parallel arrays of libccid's Info.plist.
plist_add() {
	awk -v vid="$1" -v pid="$2" -v name="$3" '
		/<key>ifdVendorID<\/key>/ { add = vid }
		/<key>ifdProductID<\/key>/ { add = pid }
		/<key>ifdFriendlyName<\/key>/ { add = name }
		{ print }
		/<array>/ && add != "" { print "\t\t<string>" add "</string>"; add = "" }
	' /etc/libccid_Info.plist >"$T/Info.plist" && cat "$T/Info.plist" >/etc/libccid_Info.plist
}

# pcscd_start: pcscd -f -d with libccid's full logging, into $OUT/pcscd.log.
pcscd_start() {
	echo "\$ LIBCCID_ifdLogLevel=0x000F pcscd -f -d"
	echo "---- pcscd -f -d ($(date +%T))" >>"$OUT/pcscd.log"
	LIBCCID_ifdLogLevel=0x000F pcscd -f -d >>"$OUT/pcscd.log" 2>&1 &
	PCSCD_PID=$!
	echo "$PCSCD_PID" >>"$T/pids"
	wait_for "pcscd's socket" 10 test -S /run/pcscd/pcscd.comm
}

pcscd_stop() {
	[ -n "$PCSCD_PID" ] || return 0
	kill -TERM "$PCSCD_PID" 2>/dev/null || true
	wait "$PCSCD_PID" 2>/dev/null || true
	PCSCD_PID=""
	rm -f /run/pcscd/pcscd.comm
}

# readers: the names of the PC/SC readers that are ours ("ccidgadget" in the name), one a line;
# fails when there is none.
readers() {
	/usr/bin/python3 -c 'import sys
from smartcard.System import readers
r = [str(x) for x in readers() if "ccidgadget" in str(x)]
print("\n".join(r))
sys.exit(0 if r else 1)' 2>/dev/null
}
# wait_reader: pcscd lists a reader (with libccid bound to our device).
wait_reader() { wait_for "pcscd to list the reader" 30 readers; }

# gnupg_home [disable-ccid]: a fresh GNUPGHOME whose gpg-agent asks e2e/scenarios/pinentry,
# which answers from $T/pins/{pw1,pw3,new-pw1,new-pw3} (defaults 123456 / 12345678).
gnupg_home() {
	[ -n "${GNUPGHOME:-}" ] && gpgconf --kill all 2>/dev/null
	export GNUPGHOME="$T/gnupg${1:+-$1}"
	rm -rf "$GNUPGHOME"
	mkdir -m 700 -p "$GNUPGHOME" "$T/pins"
	[ -f "$T/pins/pw1" ] || echo 123456 >"$T/pins/pw1"
	[ -f "$T/pins/pw3" ] || echo 12345678 >"$T/pins/pw3"
	printf '#!/bin/sh\nexec sh %s %s %s\n' "$SCEN/pinentry" "$T/pins" "$OUT/pinentry.log" >"$GNUPGHOME/pinentry"
	chmod +x "$GNUPGHOME/pinentry"
	printf 'pinentry-program %s\n' "$GNUPGHOME/pinentry" >"$GNUPGHOME/gpg-agent.conf"
	{
		echo "log-file $OUT/scdaemon.log"
		echo "debug-level basic"
		echo "debug-ccid-driver"
		echo "card-timeout 0"
		[ "${1:-}" = disable-ccid ] && echo "disable-ccid"
	} >"$GNUPGHOME/scdaemon.conf"
	echo "GNUPGHOME=$GNUPGHOME ($(tr '\n' ';' <"$GNUPGHOME/scdaemon.conf"))"
}

# scd_restart: kill scdaemon and wait until gpg-agent has a working new one (the first command
# after `gpgconf --kill scdaemon` can otherwise meet the old one's broken pipe).
scd_restart() {
	gpgconf --kill scdaemon
	n=100
	until gpg-connect-agent 'SCD GETINFO version' /bye 2>&1 | grep -q '^OK'; do
		n=$((n - 1))
		[ $n -gt 0 ] || fail "scdaemon did not come back after a restart"
		sleep 0.1
	done
}

# gpg_stop: stop gpg-agent and scdaemon and wait until scdaemon has let go of the USB device.
gpg_stop() {
	gpgconf --kill all
	wait_for "scdaemon to exit" 10 sh -c '! pidof scdaemon'
}

# card_status: gpg --card-status into $T/status; fails unless it shows an OpenPGP card.
card_status() {
	echo "\$ gpg --card-status"
	gpg --batch --no-tty --card-status >"$T/status" 2>&1 || {
		cat "$T/status"
		fail "gpg --card-status failed"
	}
	cat "$T/status"
	grep -q 'Application ID ...: D27600012401' "$T/status" || fail "gpg --card-status shows no OpenPGP card"
}

# status_field LABEL: the value of one line of $T/status ("PIN retry counter" -> "3 0 3").
status_field() { sed -n "s/^$1 *\\.*: *//p" "$T/status" | head -n 1; }

# scd CMD...: one command to scdaemon through gpg-connect-agent; output in $T/scd.out;
# fails on ERR.
scd() {
	echo "\$ gpg-connect-agent $*"
	gpg-connect-agent "$@" /bye >"$T/scd.out" 2>&1 || true
	cat "$T/scd.out"
	! grep -q '^ERR' "$T/scd.out" || fail "scdaemon said: $(grep '^ERR' "$T/scd.out")"
}

# card_edit ANSWER...: drive `gpg --card-edit` with e2e/scenarios/gpg-drive; each ANSWER is
# KEYWORD=VALUE for one prompt (GET_LINE/GET_BOOL keyword from gpg's status output), in order.
card_edit() {
	echo "\$ gpg --card-edit <<< $*"
	/usr/bin/python3 "$SCEN/gpg-drive" "$@" -- gpg --card-edit || fail "gpg --card-edit failed"
}

pins_count() { grep -c '^GETPIN' "$OUT/pinentry.log" 2>/dev/null || true; }

# bench_keys ALGO: generate the three keys on the card with gpg (ALGO rsa2048, rsa4096 or cv25519) for
# "Bench User <bench@example.org>".
bench_keys() {
	set -- "$1" cardedit.prompt=admin
	case "$1" in
	cv25519)
		set -- "$@" cardedit.prompt=key-attr \
			cardedit.genkeys.algo=2 keygen.curve=1 \
			cardedit.genkeys.algo=2 keygen.curve=1 \
			cardedit.genkeys.algo=2 keygen.curve=1
		;;
	rsa*)
		set -- "$@" cardedit.prompt=key-attr \
			cardedit.genkeys.algo=1 "cardedit.genkeys.size=${1#rsa}" \
			cardedit.genkeys.algo=1 "cardedit.genkeys.size=${1#rsa}" \
			cardedit.genkeys.algo=1 "cardedit.genkeys.size=${1#rsa}"
		;;
	*) fail "bench_keys: unknown algorithm $1" ;;
	esac
	shift
	card_edit "$@" cardedit.prompt=generate cardedit.genkeys.backup_enc=n \
		cardedit.genkeys.replace_keys=y keygen.valid=0 "keygen.name=Bench User" \
		keygen.email=bench@example.org keygen.comment= keygen.userid.cmd=O cardedit.prompt=quit
	gpg --batch --list-keys bench@example.org || fail "gpg made no key for bench@example.org"
}

# sign_and_crypt: sign + verify and encrypt + decrypt with the card's keys.
sign_and_crypt() {
	echo "the quick brown fox $(date +%s%N)" >"$T/msg"
	rm -f "$T/msg.sig" "$T/msg.gpg" "$T/msg.out"
	check gpg --batch --no-tty -u bench@example.org -o "$T/msg.sig" --sign "$T/msg"
	check gpg --batch --no-tty --verify "$T/msg.sig"
	check gpg --batch --no-tty --trust-model always -r bench@example.org -o "$T/msg.gpg" --encrypt "$T/msg"
	check gpg --batch --no-tty -o "$T/msg.out" --decrypt "$T/msg.gpg"
	cmp "$T/msg" "$T/msg.out" || fail "decrypted text differs"
}

# make_cert N: a self-signed DER certificate $T/cert$N.der (RSA-2048, about 830 bytes) with its
# own subject and serial; one key serves every certificate (key generation is slow under TCG).
make_cert() {
	[ -f "$T/cert.key" ] || openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/cert.key" 2>/dev/null ||
		fail "openssl could not make a key"
	openssl req -x509 -new -key "$T/cert.key" -subj "/CN=bench cert $1/O=ccidgadget" -set_serial "$1" \
		-days 30 -outform DER -out "$T/cert$1.der" 2>/dev/null || fail "openssl could not make cert $1"
}

# gadget_dir: the configfs gadget bound to our UDC.
gadget_dir() {
	for g in /sys/kernel/config/usb_gadget/*; do
		[ "$(cat "$g/UDC" 2>/dev/null)" = "$UDC" ] && { echo "$g"; return 0; }
	done
	return 1
}

cleanup() {
	rc=$?
	set +e
	[ -n "${GNUPGHOME:-}" ] && gpgconf --kill all 2>/dev/null
	pcscd_stop
	if [ -n "$GADGET_PID" ]; then
		kill -TERM "$GADGET_PID" 2>/dev/null
		sleep 1
		kill -KILL "$GADGET_PID" 2>/dev/null
	fi
	exit $rc
}
trap cleanup EXIT
