#!/bin/sh
# U-Boot-style hook program for the ab-hooks installer, as a vendor would
# write it, with fw_printenv/fw_setenv emulated over files so that tests
# can run it. On a device, fw_printenv/fw_setenv below are the real tools
# (libubootenv), write/read use the partitions, and reboot is `reboot`.
#
# Emulation files in $EMU_DIR:
#   uboot.env      the U-Boot environment, NAME=value lines
#   booted         the slot the (emulated) kernel was booted from
#   part-a part-b  the slot partitions; larger than the images they hold
#
# Not hooks, for the tests: `init IMAGE` (factory image in slot a) and
# `power-on` (the bootloader's boot step, which reboot runs too).
set -eu
: "${EMU_DIR:?EMU_DIR must name the emulation directory}"
ENV_FILE=$EMU_DIR/uboot.env

# fw_printenv prints the environment as NAME=value lines, which the shell
# reads in one go; the variables used here are plain words and numbers.
fw_printenv() {
	cat "$ENV_FILE"
}

load_env() {
	eval "$(fw_printenv)"
}

# fw_setenv NAME=value... replaces the variables in one atomic write, as
# fw_setenv -s does with a redundant environment.
fw_setenv() {
	load_env
	for kv in "$@"; do
		case "${kv%%=*}" in
		boot_part | upgrade_available | bootcount | bootlimit) eval "${kv%%=*}=\${kv#*=}" ;;
		*) echo "fw_setenv: unknown variable ${kv%%=*}" >&2; exit 2 ;;
		esac
	done
	printf 'boot_part=%s\nupgrade_available=%s\nbootcount=%s\nbootlimit=%s\n' \
		"$boot_part" "$upgrade_available" "$bootcount" "$bootlimit" >"$ENV_FILE.tmp"
	sync "$ENV_FILE.tmp" 2>/dev/null || true
	mv "$ENV_FILE.tmp" "$ENV_FILE"
}

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

# boot is U-Boot's bootcount logic: count a trial boot, and once the
# count exceeds bootlimit run altbootcmd (boot the other slot, trial off).
boot() {
	load_env
	if [ "$upgrade_available" = 1 ]; then
		bootcount=$((bootcount + 1))
		if [ "$bootcount" -gt "$bootlimit" ]; then
			fw_setenv boot_part="$(other "$boot_part")" upgrade_available=0 bootcount=0
		else
			fw_setenv bootcount="$bootcount"
		fi
	fi
	load_env
	echo "$boot_part" >"$EMU_DIR/booted"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
state)
	load_env
	booted=$(cat "$EMU_DIR/booted")
	trial=false attempt=0 armed=
	if [ "$boot_part" = "$booted" ]; then
		if [ "$upgrade_available" = 1 ]; then
			trial=true attempt=$bootcount
		fi
	else
		armed=$boot_part
	fi
	printf '{"booted":"%s","trial":%s,"attempt":%s,"max_attempts":%s,"armed":"%s"}\n' \
		"$booted" "$trial" "$attempt" "$bootlimit" "$armed"
	;;
write)
	slot_arg "${1:-}"
	[ "$STEWARD_SLOT" = "$1" ] || { echo "STEWARD_SLOT=$STEWARD_SLOT, argument $1" >&2; exit 2; }
	if [ -n "${EMU_WRITE_FAIL:-}" ]; then
		echo "emulated write error" >&2
		exit "$EMU_WRITE_FAIL"
	fi
	if [ -n "${EMU_CORRUPT:-}" ]; then
		# A flash that loses the end of what was written.
		head -c $((STEWARD_LENGTH / 2)) "$2" >"$EMU_DIR/part-$1"
	else
		cat "$2" >"$EMU_DIR/part-$1"
	fi
	# The partition is larger than the image: stale bytes follow it.
	printf 'STALE-PARTITION-TAIL' >>"$EMU_DIR/part-$1"
	sync "$EMU_DIR/part-$1" 2>/dev/null || true
	;;
read)
	slot_arg "${1:-}"
	head -c "$2" "$EMU_DIR/part-$1"
	;;
arm)
	slot_arg "${1:-}"
	fw_setenv boot_part="$1" upgrade_available=1 bootcount=0
	;;
commit)
	fw_setenv upgrade_available=0 bootcount=0
	;;
rollback)
	slot_arg "${1:-}"
	fw_setenv boot_part="$1" upgrade_available=0 bootcount=0
	;;
reboot)
	# On a device: exec reboot. Here the boot step runs at once.
	boot
	;;
init)
	cat "$1" >"$EMU_DIR/part-a"
	: >"$EMU_DIR/part-b"
	printf 'boot_part=a\nupgrade_available=0\nbootcount=0\nbootlimit=%s\n' "${EMU_BOOTLIMIT:-3}" >"$ENV_FILE"
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
