#!/bin/sh
# systemd-boot-style hook program for the ab-hooks installer: automatic
# boot assessment with try counters in the boot entries' file names
# (https://systemd.io/AUTOMATIC_BOOT_ASSESSMENT/), emulated over files so
# that tests can run it. On a device, the entries live in the ESP's
# loader/entries/, systemd-boot does the counting, commit is
# `systemd-bless-boot good` and rollback marks the entry bad.
#
# An entry is SLOT.conf (good), SLOT+LEFT-DONE.conf (on trial: LEFT boots
# left, DONE made) or SLOT+0-DONE.conf (bad, skipped at boot).
#
# Emulation files in $EMU_DIR:
#   entries/       the boot entries, one per slot
#   default        the slot of the default entry (bootctl set-default)
#   booted         the slot booted (LoaderEntrySelected)
#   part-a part-b  the slot partitions
#
# Not hooks, for the tests: `init IMAGE` and `power-on`.
set -eu
: "${EMU_DIR:?EMU_DIR must name the emulation directory}"
ENTRIES=$EMU_DIR/entries
TRIES=${EMU_TRIES:-3}

other() { if [ "$1" = a ]; then echo b; else echo a; fi; }

slot_arg() {
	case "${1:-}" in
	a | b) ;;
	*)
		echo "unknown slot '${1:-}'" >&2
		exit 2
		;;
	esac
}

# entry SLOT prints the entry's file name, or nothing.
entry() {
	for f in "$ENTRIES/$1.conf" "$ENTRIES/$1+"*.conf; do
		[ -e "$f" ] && { basename "$f"; return; }
	done
	true
}

# counters FILE sets left and ndone; counting=1 if the entry has a counter.
counters() {
	base=${1%.conf}
	case "$base" in
	*+*)
		counting=1
		rest=${base#*+}
		left=${rest%%-*}
		case "$rest" in *-*) ndone=${rest#*-} ;; *) ndone=0 ;; esac
		;;
	*) counting=0 left=0 ndone=0 ;;
	esac
}

set_default() {
	echo "$1" >"$EMU_DIR/default.tmp"
	mv "$EMU_DIR/default.tmp" "$EMU_DIR/default"
}

# usable SLOT: the entry exists and is not bad.
usable() {
	e=$(entry "$1")
	[ -n "$e" ] || return 1
	counters "$e"
	[ "$counting" = 0 ] || [ "$left" -gt 0 ]
}

# boot is systemd-boot: take the default entry unless it is bad, and
# count a try of an entry with a counter by renaming it.
boot() {
	slot=$(cat "$EMU_DIR/default")
	if ! usable "$slot"; then
		slot=$(other "$slot")
		usable "$slot" || { echo "no bootable entry" >&2; exit 1; }
	fi
	e=$(entry "$slot")
	counters "$e"
	if [ "$counting" = 1 ]; then
		mv "$ENTRIES/$e" "$ENTRIES/$slot+$((left - 1))-$((ndone + 1)).conf"
	fi
	echo "$slot" >"$EMU_DIR/booted"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
state)
	booted=$(cat "$EMU_DIR/booted")
	def=$(cat "$EMU_DIR/default")
	counters "$(entry "$booted")"
	trial=false attempt=0 max=$TRIES armed=
	if [ "$counting" = 1 ] && [ "$def" = "$booted" ]; then
		trial=true attempt=$ndone max=$((left + ndone))
	fi
	if [ "$def" != "$booted" ] && usable "$def"; then
		armed=$def
	fi
	printf '{"booted":"%s","trial":%s,"attempt":%s,"max_attempts":%s,"armed":"%s","entry":"%s"}\n' \
		"$booted" "$trial" "$attempt" "$max" "$armed" "$(entry "$booted")"
	;;
write)
	slot_arg "${1:-}"
	cat "$2" >"$EMU_DIR/part-$1"
	printf 'STALE-PARTITION-TAIL' >>"$EMU_DIR/part-$1"
	sync "$EMU_DIR/part-$1" 2>/dev/null || true
	;;
read)
	slot_arg "${1:-}"
	head -c "$2" "$EMU_DIR/part-$1"
	;;
arm)
	slot_arg "${1:-}"
	rm -f "$ENTRIES/$1.conf" "$ENTRIES/$1+"*.conf
	: >"$ENTRIES/$1+$TRIES-0.conf"
	set_default "$1"
	;;
commit)
	# systemd-bless-boot good
	booted=$(cat "$EMU_DIR/booted")
	e=$(entry "$booted")
	[ "$e" = "$booted.conf" ] || mv "$ENTRIES/$e" "$ENTRIES/$booted.conf"
	;;
rollback)
	slot_arg "${1:-}"
	o=$(other "$1")
	e=$(entry "$o")
	if [ -n "$e" ]; then
		counters "$e"
		# systemd-bless-boot bad, or disarm an entry not booted yet
		if [ "$counting" = 1 ] || [ "$(cat "$EMU_DIR/default")" = "$o" ]; then
			mv "$ENTRIES/$e" "$ENTRIES/$o+0-$ndone.conf" 2>/dev/null || true
		fi
	fi
	set_default "$1"
	;;
reboot)
	boot
	;;
init)
	mkdir -p "$ENTRIES"
	cat "$1" >"$EMU_DIR/part-a"
	: >"$EMU_DIR/part-b"
	: >"$ENTRIES/a.conf"
	set_default a
	echo a >"$EMU_DIR/booted"
	;;
power-on)
	boot
	;;
*)
	echo "unknown hook '$cmd'" >&2
	exit 3
	;;
esac
