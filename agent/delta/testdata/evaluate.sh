#!/usr/bin/env bash
# Reproduces the comparison in docs/deltas.md: patch size, time and peak memory of Steward's delta
# package (zstd with the old image as dictionary), the bsdiff CLI and `zstd --patch-from`, on pairs of
# real binaries from two versions of Debian bookworm packages. Run by hand; nothing in the test suite
# needs it, and the downloaded binaries stay in the work directory, outside the repository.
#
#   agent/delta/testdata/evaluate.sh                                  # the real pairs (~1 min)
#   DELTA_EVAL_REAL=0 DELTA_EVAL_SYNTH="4 16 64" agent/delta/testdata/evaluate.sh
#       BenchmarkDelta's synthetic pair at these sizes in MiB, one run each (64 MiB: ~10 min)
#
# Needs a Debian bookworm machine with its package sources (apt-get update done), and: go, dpkg-deb,
# bsdiff (apt-get install bsdiff), zstd, python3, GNU time (/usr/bin/time). Environment:
#   DELTA_EVAL_WORK  work directory (default /tmp/steward-delta-eval)
#   DELTA_EVAL_REPS  runs per measurement on the real pairs, the fastest is kept (default 3)
#   DELTA_EVAL_REAL  0 skips the real pairs
#   DELTA_EVAL_SYNTH synthetic sizes in MiB to add (default none)
# The archive drops superseded versions over time; if a download fails, pick two versions that
# `apt-cache madison PACKAGE` still lists and edit PAIRS below.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
work=${DELTA_EVAL_WORK:-/tmp/steward-delta-eval}
reps=${DELTA_EVAL_REPS:-3}
synth=${DELTA_EVAL_SYNTH:-}
real=${DELTA_EVAL_REAL:-1}

# name | package | old version | new version | file inside the package
PAIRS=(
	"libc.so.6|libc6|2.36-9+deb12u7|2.36-9+deb12u14|lib/x86_64-linux-gnu/libc.so.6"
	"libcrypto.so.3|libssl3|3.0.20-1~deb12u2|3.0.22-1~deb12u2|usr/lib/x86_64-linux-gnu/libcrypto.so.3"
	"libcurl.so.4.8.0|libcurl4|7.88.1-10+deb12u5|7.88.1-10+deb12u15|usr/lib/x86_64-linux-gnu/libcurl.so.4.8.0"
)

for tool in go dpkg-deb bsdiff bspatch zstd python3 /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "evaluate.sh: $tool not found (see the header of this script)" >&2; exit 1; }
done
mkdir -p "$work/debs" "$work/x" "$work/out"
(cd "$repo" && go test -c -o "$work/delta.test" ./agent/delta/)

# timed OUTVAR CMD...: runs CMD $reps times; OUTVAR gets "seconds peak-RSS-KiB" of the fastest run.
timed() {
	local var=$1 best="" line
	shift
	for _ in $(seq "$reps"); do
		/usr/bin/time -f '%e %M' -o "$work/time.txt" "$@" >/dev/null 2>"$work/stderr.txt" || { cat "$work/stderr.txt" >&2; exit 1; }
		line=$(tail -n 1 "$work/time.txt")
		if [[ -z $best ]] || awk -v a="${line% *}" -v b="${best% *}" 'BEGIN { exit !(a < b) }'; then best=$line; fi
	done
	printf -v "$var" '%s' "$best"
}

# steward OLD NEW: runs the package's Create and Apply through the eval tests; sets st_* variables.
steward() {
	local old=$1 new=$2 patch="$work/out/steward.patch" out="$work/out/steward.new" log="$work/out/steward.log"
	: >"$log"
	for _ in $(seq "$reps"); do
		DELTA_EVAL_OLD=$old DELTA_EVAL_NEW=$new DELTA_EVAL_PATCH=$patch \
			/usr/bin/time -f 'rss %M' -a -o "$log" "$work/delta.test" -test.run '^TestEvalCreate$' -test.v >>"$log"
		DELTA_EVAL_OLD=$old DELTA_EVAL_PATCH=$patch DELTA_EVAL_OUT=$out \
			/usr/bin/time -f 'applyrss %M' -a -o "$log" "$work/delta.test" -test.run '^TestEvalApply$' -test.v >>"$log"
		cmp -s "$out" "$new" || { echo "evaluate.sh: Apply output differs from $new" >&2; exit 1; }
	done
	# Fastest times, measured inside the process (file reads excluded); largest RSS seen.
	st_create=$(awk -F'[ =]+' '/EVAL create/ { for (i = 1; i < NF; i++) { if ($i == "patch") p = $(i+1); if ($i == "seconds") s = $(i+1) } if (t == "" || s < t) t = s } END { print p, t }' "$log")
	st_apply=$(awk -F'[ =]+' '/EVAL apply/ { for (i = 1; i < NF; i++) { if ($i == "seconds") s = $(i+1); if ($i == "allocated") a = $(i+1) } if (t == "" || s < t) t = s } END { print t, a }' "$log")
	st_rss=$(awk '/^rss/ { if ($2 > m) m = $2 } END { print m }' "$log")
	st_applyrss=$(awk '/^applyrss/ { if ($2 > m) m = $2 } END { print m }' "$log")
	[[ -n $st_create && -n $st_apply ]] || { echo "evaluate.sh: no EVAL lines in $log" >&2; exit 1; }
}

# bsdiff_zstd PATCH: size of a bsdiff patch whose three bzip2 streams are recompressed with zstd -19,
# an estimate of what a bsdiff with zstd instead of bzip2 would send.
bsdiff_zstd() {
	python3 - "$1" <<'EOF'
import bz2, struct, subprocess, sys
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"BSDIFF40", "not a bsdiff 4 patch"
cl, dl, _ = struct.unpack("<qqq", d[8:32])
parts = [d[32:32 + cl], d[32 + cl:32 + cl + dl], d[32 + cl + dl:]]
total = 32
for p in parts:
    raw = bz2.decompress(p)
    total += len(subprocess.run(["zstd", "-19", "-q", "-c"], input=raw, capture_output=True, check=True).stdout)
print(total)
EOF
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", 100 * a / b }'; }

# compare NAME OLD NEW: prints the table rows for one pair.
compare() {
	local name old=$2 new=$3 newsize t c a s
	newsize=$(stat -c %s "$new")
	name="$1 ($(stat -c %s "$old") → $newsize B)"

	steward "$old" "$new"
	read -r s t <<<"$st_create"
	read -r a c <<<"$st_apply"
	echo "| $name | steward delta (zstd, old image as dictionary) | $s | $(pct "$s" "$newsize") | $t | $(mib "$st_rss") | $a | $(mib "$st_applyrss") ($(awk -v b="$c" 'BEGIN { printf "%.1f", b / 1048576 }') allocated) |"

	timed c bsdiff "$old" "$new" "$work/out/p.bsdiff"
	timed a bspatch "$old" "$work/out/bs.new" "$work/out/p.bsdiff"
	cmp -s "$work/out/bs.new" "$new" || { echo "evaluate.sh: bspatch output differs" >&2; exit 1; }
	s=$(stat -c %s "$work/out/p.bsdiff")
	echo "| $name | bsdiff 4.3 CLI (bzip2) | $s | $(pct "$s" "$newsize") | ${c% *} | $(mib "${c#* }") | ${a% *} | $(mib "${a#* }") |"
	s=$(bsdiff_zstd "$work/out/p.bsdiff")
	echo "| $name | bsdiff, streams recompressed with zstd -19 (estimate) | $s | $(pct "$s" "$newsize") |  |  |  |  |"

	timed c zstd -q -f -19 --long=31 --patch-from="$old" "$new" -o "$work/out/p.zst"
	timed a zstd -q -f -d --long=31 --patch-from="$old" "$work/out/p.zst" -o "$work/out/z.new"
	cmp -s "$work/out/z.new" "$new" || { echo "evaluate.sh: zstd --patch-from output differs" >&2; exit 1; }
	s=$(stat -c %s "$work/out/p.zst")
	echo "| $name | zstd -19 --long=31 --patch-from CLI | $s | $(pct "$s" "$newsize") | ${c% *} | $(mib "${c#* }") | ${a% *} | $(mib "${a#* }") |"

	timed c zstd -q -f -19 --long=31 "$new" -o "$work/out/full.zst"
	s=$(stat -c %s "$work/out/full.zst")
	echo "| $name | no delta: new image, zstd -19 | $s | $(pct "$s" "$newsize") | ${c% *} |  |  |  |"
}

echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(free -g | awk '/Mem:/ { print $2 }') GiB;" \
	"$(go version | cut -d' ' -f3); bsdiff $(dpkg-query -W -f '${Version}' bsdiff); zstd $(zstd --version | grep -o 'v[0-9.]*' | head -1)"
echo "real pairs: $reps runs each, fastest kept; synthetic pairs: one run"
echo "baseline RSS of the Go test binary running no test: $(mib "$(/usr/bin/time -f %M "$work/delta.test" -test.run '^$' 2>&1 >/dev/null | tail -n 1)") MiB"
echo
echo "| pair | tool | patch bytes | % of new | create s | create peak RSS MiB | apply s | apply peak RSS MiB |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for pair in "${PAIRS[@]}"; do
	[[ $real == 0 ]] && break
	IFS='|' read -r name pkg oldv newv file <<<"$pair"
	for v in "$oldv" "$newv"; do
		deb="$work/debs/${pkg}_${v}.deb"
		if [[ ! -s $deb ]]; then
			(cd "$work/debs" && apt-get download -q "$pkg=$v" >/dev/null 2>&1) ||
				{ echo "evaluate.sh: cannot download $pkg=$v; see 'apt-cache madison $pkg'" >&2; exit 1; }
			mv "$work/debs/${pkg}_${v/:/%3a}_"*.deb "$deb"
		fi
		rm -rf "$work/x/$pkg-$v" && mkdir -p "$work/x/$pkg-$v" && dpkg-deb -x "$deb" "$work/x/$pkg-$v"
	done
	compare "$name $oldv → $newv" "$work/x/$pkg-$oldv/$file" "$work/x/$pkg-$newv/$file"
done
reps=1 # the large synthetic pairs take minutes per tool
for n in $synth; do
	DELTA_EVAL_SYNTH_MIB=$n DELTA_EVAL_DIR=$work "$work/delta.test" -test.run '^TestEvalSynth$' >/dev/null
	compare "synthetic $n MiB" "$work/synth-$n.old" "$work/synth-$n.new"
done
