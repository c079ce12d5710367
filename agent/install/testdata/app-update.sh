#!/bin/sh
# Application-level update script for the script installer, in the manner
# of a Mender update module: the application lives in one of two
# directories and a pointer names the active one, so an update installs
# into the other and switches. Emulated over files so that tests can run
# it.
#
# Emulation files in $EMU_DIR:
#   slot-a slot-b    the two copies of the application (here: the image)
#   rel-a rel-b      the release each holds: "RELEASE_ID SHA256"
#   active           the copy that runs
#   next             the copy that runs after the next boot
#   committed        the copy to go back to
#
# EMU_NEEDS_REBOOT=1: the new copy runs after a reboot; else at once.
# EMU_NO_ROLLBACK=1: rollback is not supported (exit 3).
# EMU_NO_IS_RUNNING=1: is-running is not supported (exit 3).
# Not sub-commands, for the tests: `init IMAGE RELEASE_ID` and `power-on`.
set -eu
: "${EMU_DIR:?EMU_DIR must name the emulation directory}"

other() { if [ "$1" = a ]; then echo b; else echo a; fi; }

put() { # put FILE VALUE, atomically
	echo "$2" >"$EMU_DIR/$1.tmp"
	mv "$EMU_DIR/$1.tmp" "$EMU_DIR/$1"
}

get() { cat "$EMU_DIR/$1"; }

boot() { put active "$(get next)"; }

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
install)
	[ -n "${STEWARD_RELEASE_ID:-}" ] || { echo "no STEWARD_RELEASE_ID" >&2; exit 2; }
	if [ -n "${EMU_INSTALL_FAIL:-}" ]; then
		echo "emulated install failure" >&2
		exit "$EMU_INSTALL_FAIL"
	fi
	target=$(other "$(get active)")
	cp "$1" "$EMU_DIR/slot-$target.tmp"
	mv "$EMU_DIR/slot-$target.tmp" "$EMU_DIR/slot-$target"
	put "rel-$target" "$STEWARD_RELEASE_ID $STEWARD_SHA256"
	put next "$target"
	[ "${EMU_NEEDS_REBOOT:-}" = 1 ] || boot
	;;
needs-reboot)
	[ "${EMU_NEEDS_REBOOT:-}" = 1 ]
	;;
reboot | power-on)
	boot
	;;
is-running)
	[ -z "${EMU_NO_IS_RUNNING:-}" ] || exit 3
	[ "$(get "rel-$(get active)")" = "$STEWARD_RELEASE_ID $STEWARD_SHA256" ]
	;;
commit)
	put committed "$(get active)"
	;;
rollback)
	[ -z "${EMU_NO_ROLLBACK:-}" ] || exit 3
	put next "$(get committed)"
	[ "${EMU_NEEDS_REBOOT:-}" = 1 ] || boot
	;;
init)
	cp "$1" "$EMU_DIR/slot-a"
	put rel-a "$2 $(sha256sum "$1" | cut -d' ' -f1)"
	put active a
	put next a
	put committed a
	;;
*)
	echo "unknown sub-command '$cmd'" >&2
	exit 3
	;;
esac
