#!/usr/bin/env bash
# Reading speed: `perfunc report` (pairing and statistics) and `perfunc
# script` against `perf script`, each reading a trace of the same probe
# records: a push-class function called N times, entry and return sampled
# with task-clock and page-faults read in the group.
#
#   bash benches/report_speed.sh            (from the repository root, as root)
#
# Environment: N=1000000 calls (2 N records), REPS=5.
# Prints a markdown table of median seconds and records/s.
set -euo pipefail
export LC_ALL=C
N=${N:-1000000}
REPS=${REPS:-5}
log() { echo "report_speed: $*" >&2; }
die() { log "error: $*"; exit 1; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $(id -u) == 0 ]] || die "uprobes need root"
command -v perf >/dev/null || { apt-get update -q >&2 && apt-get install -y -q linux-perf >&2; } ||
    die "cannot install linux-perf"
if ! awk '$3 == "tracefs" { found = 1 } END { exit !found }' /proc/mounts; then
    mount -t tracefs nodev /sys/kernel/tracing
fi
TRACEFS=$(awk '$3 == "tracefs" { print $2; exit }' /proc/mounts)
cargo build --release -q >&2
PERFUNC=$PWD/target/release/perfunc

WORK=$(mktemp -d /tmp/perfunc-report-speed.XXXXXX)
BIN=$WORK/pfread
GROUP=probe_pfread
cleanup() { perf probe -q -d "$GROUP:*" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
gcc -O2 -Wl,-z,now -o "$BIN" benches/fixtures/overhead.c

log "recording $N calls with perfunc and with perf"
"$PERFUNC" record -q --calibration off -m 64M -e task-clock,page-faults -f bench_push \
    -o "$WORK/t.perfunc" -- "$BIN" push "$N"
perf probe -q -d "$GROUP:*" >/dev/null 2>&1 || true
perf probe -q -x "$BIN" -a "pfread_push=bench_push" -a "pfread_push=bench_push%return" >&2
RET_ID=$(cat "$TRACEFS/events/$GROUP/pfread_push__return/id")
perf record -q --no-bpf-event -c 1 -m 64M -o "$WORK/perf.data" \
    -e "{$GROUP:pfread_push,tracepoint/config=$RET_ID,period=1/,task-clock,page-faults}:S" \
    -- "$BIN" push "$N" >/dev/null 2>&1
PERF_RECORDS=$(perf script -i "$WORK/perf.data" -F event 2>/dev/null | grep -c -v -e task-clock -e page-faults || true)
PERFUNC_RECORDS=$((2 * N))
log "perf.data holds $PERF_RECORDS probe samples, the perfunc trace $PERFUNC_RECORDS"

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
time_of() {  # command... -> seconds
    local s e
    s=$EPOCHREALTIME
    "$@" >/dev/null 2>&1
    e=$EPOCHREALTIME
    echo "$(( ${e/./} - ${s/./} ))" | awk '{ printf "%.3f\n", $1 / 1e6 }'
}
declare -A T
for tool in perf_script perfunc_report perfunc_report_1 perfunc_script; do T[$tool]=""; done
for ((r = 1; r <= REPS; r++)); do
    log "repetition $r of $REPS"
    T[perf_script]+="$(time_of perf script -i "$WORK/perf.data")"$'\n'
    T[perfunc_report]+="$(time_of "$PERFUNC" report -i "$WORK/t.perfunc")"$'\n'
    T[perfunc_report_1]+="$(time_of "$PERFUNC" report --threads 1 -i "$WORK/t.perfunc")"$'\n'
    T[perfunc_script]+="$(time_of "$PERFUNC" script -i "$WORK/t.perfunc")"$'\n'
done
echo "| reader | records | median s | records/s |"
echo "|---|---:|---:|---:|"
row() {  # name records times
    local m
    m=$(printf '%s' "$3" | median)
    awk -v n="$1" -v r="$2" -v m="$m" 'BEGIN { printf "| %s | %d | %.3f | %.2f M |\n", n, r, m, r / m / 1e6 }'
}
row "perf script" "$PERF_RECORDS" "${T[perf_script]}"
row "perfunc report (2 threads)" "$PERFUNC_RECORDS" "${T[perfunc_report]}"
row "perfunc report --threads 1" "$PERFUNC_RECORDS" "${T[perfunc_report_1]}"
row "perfunc script" "$PERFUNC_RECORDS" "${T[perfunc_script]}"
