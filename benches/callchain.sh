#!/usr/bin/env bash
# Cost of call chains: per probed call, perfunc record without chains,
# with --callchain fp and with --callchain dwarf (8 KiB stack copies),
# against perf record without chains, with -g and with --call-graph dwarf
# on the same function (perf samples the entry only: compare what chains
# add to each tool, not the tools' totals); then
# the time perfunc flamegraph takes to resolve a trace of N chains.
#
#   bash benches/callchain.sh          (from the repository root, as root)
#
# Environment (all optional):
#   REPS=5       repetitions; the tools alternate within each one
#   N=200000     probed calls per recording
#   STACK=8K     stack copy size for the dwarf modes
#
# Cost per call = (median wall time for N calls - median for 1 call) / N,
# which removes each tool's start-up and tear-down. Markdown to stdout.
set -euo pipefail
export LC_ALL=C

REPS=${REPS:-5}
N=${N:-200000}
STACK=${STACK:-8K}

log() { echo "callchain: $*" >&2; }
die() { log "error: $*"; exit 1; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -f Cargo.toml && -f tests/fixtures/chains.c ]] || die "run from the perfunc repository"
[[ $(id -u) == 0 ]] || die "uprobes need root"
[[ -n ${EPOCHREALTIME:-} ]] || die "needs bash 5 or later (EPOCHREALTIME)"
command -v perf >/dev/null && perf --version >/dev/null 2>&1 ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf >&2 ||
    die "cannot install linux-perf"

cargo build --release -q
PERFUNC=$PWD/target/release/perfunc
WORK=$(mktemp -d)
trap 'perf probe -q -d "probe_chains*:*" 2>/dev/null || true; rm -rf "$WORK"' EXIT
BIN=$WORK/chains
gcc -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -fno-optimize-sibling-calls \
    -fcf-protection=none -o "$BIN" tests/fixtures/chains.c
perf probe -q -x "$BIN" cc_probed >/dev/null 2>&1 || die "perf probe failed"
EVENT=$(perf probe -l 2>/dev/null | awk '/cc_probed/ {print $1; exit}')

now() { echo "${EPOCHREALTIME/./}"; }   # microseconds
run_us() {
    local t0 t1
    t0=$(now)
    "$@" >/dev/null 2>&1 || die "failed: $*"
    t1=$(now)
    echo $((t1 - t0))
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

declare -A TOOLS=(
    [perfunc]="$PERFUNC record -q --calibration off -e task-clock -f cc_probed -o $WORK/t.perfunc --"
    [perfunc-fp]="$PERFUNC record -q --calibration off -e task-clock --callchain fp -f cc_probed -o $WORK/t.perfunc --"
    [perfunc-dwarf]="$PERFUNC record -q --calibration off -e task-clock --callchain dwarf --stack-size $STACK -f cc_probed -o $WORK/t.perfunc --"
    [perf]="perf record -q --no-bpf-event --no-buildid -c 1 -m 16M -e $EVENT -o $WORK/perf.data --"
    [perf-fp]="perf record -q --no-bpf-event --no-buildid -c 1 -m 16M -g -e $EVENT -o $WORK/perf.data --"
    [perf-dwarf]="perf record -q --no-bpf-event --no-buildid -c 1 -m 16M --call-graph dwarf,$((${STACK%K} * 1024)) -e $EVENT -o $WORK/perf.data --"
)
ORDER=(perfunc perfunc-fp perfunc-dwarf perf perf-fp perf-dwarf)
declare -A BIG SMALL
for rep in $(seq "$REPS"); do
    log "repetition $rep of $REPS"
    for tool in "${ORDER[@]}"; do
        BIG[$tool]+="$(run_us ${TOOLS[$tool]} "$BIN" "$N") "
        SMALL[$tool]+="$(run_us ${TOOLS[$tool]} "$BIN" 1) "
    done
done

[[ -n ${DEBUG:-} ]] && declare -p BIG SMALL >&2
echo "| tool | µs per call (median of $REPS) |"
echo "|---|---|"
for tool in "${ORDER[@]}"; do
    big=$(tr ' ' '\n' <<<"${BIG[$tool]}" | grep . | median)
    small=$(tr ' ' '\n' <<<"${SMALL[$tool]}" | grep . | median)
    awk -v b="$big" -v s="$small" -v n="$N" -v t="$tool" \
        'BEGIN {printf "| %s | %.2f |\n", t, (b - s) / n}'
done

# Resolving the chains of N calls (flamegraph of the fp trace).
$PERFUNC record -q --calibration off -e task-clock --callchain fp -f cc_probed \
    -o "$WORK/fp.perfunc" -- "$BIN" "$N" >/dev/null 2>&1
times=""
for rep in $(seq "$REPS"); do
    times+="$(run_us "$PERFUNC" flamegraph -i "$WORK/fp.perfunc" --folded "$WORK/f.folded") "
done
t=$(tr ' ' '\n' <<<"$times" | grep . | median)
awk -v t="$t" -v n="$N" 'BEGIN {printf "\nflamegraph with %d chains: %.3f s (median of %s), %.2f M chains/s\n", n, t / 1e6, ENVIRON["REPS"], n / t}'
