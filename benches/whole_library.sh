#!/usr/bin/env bash
# What placing and removing probes on a whole library costs: every
# function of Debian's libsqlite3 matching PATTERN (an entry and a return
# probe each) on a one-statement sqlite3 run, perfunc against bpftrace
# attaching the same uprobes and uretprobes. Nearly all of it is the
# kernel's: closing each uprobe's perf event waits for the uprobe to be
# unregistered.
#
#   bash benches/whole_library.sh              # as root, from the repository root
#   REPS=1 PATTERN='sqlite3*'                  # the defaults ('sqlite3_bind*' for a quick run)
# Prints the functions probed and the median wall times (s).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
REPS=${REPS:-1}
PATTERN=${PATTERN:-'sqlite3*'}
lib=/usr/lib/x86_64-linux-gnu/libsqlite3.so.0
sqlite=/usr/bin/sqlite3

cargo build --release -q
perfunc=target/release/perfunc
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The functions the probes go on: `list`'s rows, less those it marks refused.
functions=$("$perfunc" list "$lib" "$PATTERN" | awk '/^0x/ && $4 != "refused"' | wc -l)

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
seconds() { # runs "$@" REPS times, prints the median wall time in s
    for _ in $(seq "$REPS"); do
        local t0 t1
        t0=$(date +%s%N)
        "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
        t1=$(date +%s%N)
        awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.2f\n", ns / 1e9 }'
    done | median
}

echo "functions matching $PATTERN in $lib: $functions ($((2 * functions)) probes)"
echo "| tool | wall (s) |"
echo "|---|---:|"
alone=$(seconds "$sqlite" :memory: 'select(1)')
echo "| $sqlite :memory: 'select(1)' | $alone |"
perfunc_s=$(seconds "$perfunc" record -q --calibration off -o "$work/t.perfunc" \
    -f "libsqlite3.so.0:$PATTERN" -- "$sqlite" :memory: 'select(1)')
echo "| perfunc record -f 'libsqlite3.so.0:$PATTERN' | $perfunc_s |"
program="uprobe:$lib:$PATTERN { @e = count(); } uretprobe:$lib:$PATTERN { @r = count(); }"
bpftrace_s=$(BPFTRACE_MAX_PROBES=$((2 * functions + 16)) seconds bpftrace \
    -e "$program" -c "$sqlite :memory: select(1)")
echo "| bpftrace, uprobe + uretprobe | $bpftrace_s |"
