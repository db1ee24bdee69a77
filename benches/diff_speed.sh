#!/usr/bin/env bash
# Comparison speed: `perfunc diff` of two `record --repeat 10` traces of
# N calls each (N/10 calls of a push-class function per run, entry and
# return sampled with task-clock and page-faults), against `perfunc
# report` reading the same two traces (the analysis diff runs on each).
#
#   bash benches/diff_speed.sh            (from the repository root, as root)
#
# Environment: N=1000000 calls per trace, REPS=5.
# Prints a markdown table of median seconds.
set -euo pipefail
export LC_ALL=C
N=${N:-1000000}
REPS=${REPS:-5}
RUNS=10
log() { echo "diff_speed: $*" >&2; }
die() { log "error: $*"; exit 1; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $(id -u) == 0 ]] || die "uprobes need root"
cargo build --release -q >&2
PERFUNC=$PWD/target/release/perfunc

WORK=$(mktemp -d /tmp/perfunc-diff-speed.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
BIN=$WORK/pfread
gcc -O2 -Wl,-z,now -o "$BIN" benches/fixtures/overhead.c

for side in base new; do
    log "recording $side: $RUNS runs of $((N / RUNS)) calls"
    "$PERFUNC" record -q --calibration off -m 64M -r "$RUNS" -e task-clock,page-faults \
        -f bench_push -o "$WORK/$side.perfunc" -- "$BIN" push "$((N / RUNS))"
done
"$PERFUNC" diff "$WORK/base.perfunc" "$WORK/new.perfunc" >&2

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
time_of() {  # command... -> seconds
    local s e
    s=$EPOCHREALTIME
    "$@" >/dev/null 2>&1
    e=$EPOCHREALTIME
    echo "$(( ${e/./} - ${s/./} ))" | awk '{ printf "%.3f\n", $1 / 1e6 }'
}
reports() { "$PERFUNC" report -i "$WORK/base.perfunc" && "$PERFUNC" report -i "$WORK/new.perfunc"; }
DIFF="" REPORT=""
for ((r = 1; r <= REPS; r++)); do
    log "repetition $r of $REPS"
    DIFF+="$(time_of "$PERFUNC" diff "$WORK/base.perfunc" "$WORK/new.perfunc")"$'\n'
    REPORT+="$(time_of reports)"$'\n'
done
d=$(printf '%s' "$DIFF" | median)
p=$(printf '%s' "$REPORT" | median)
echo "| command | calls per trace | median s |"
echo "|---|---:|---:|"
echo "| perfunc diff (two traces, $RUNS runs each) | $N | $d |"
echo "| perfunc report, each trace in turn | $N | $p |"
awk -v d="$d" -v p="$p" 'BEGIN { printf "diff / two reports: %.2f\n", d / p }'
