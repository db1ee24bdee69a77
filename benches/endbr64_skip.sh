#!/usr/bin/env bash
# Cost per call of probing a function that starts with endbr64: probes on
# the endbr64 itself (--no-endbr64-skip: single-stepped) against probes on
# the instruction after it (perfunc's default: push %rbp, emulated).
#
#   bash benches/endbr64_skip.sh          (from the repository root, as root)
#
# Cost per call = (median time for N calls - median time for 1 call) / N,
# REPS repetitions, the two placements alternating.
set -euo pipefail
export LC_ALL=C
N=${N:-50000}
REPS=${REPS:-7}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $(id -u) == 0 ]] || { echo "endbr64_skip: uprobes need root" >&2; exit 1; }
cargo build --release -q >&2
PERFUNC=$PWD/target/release/perfunc
WORK=$(mktemp -d /tmp/perfunc-endbr64.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
gcc -O2 -fcf-protection=full -fno-omit-frame-pointer -Wl,-z,now -o "$WORK/cet" benches/fixtures/endbr64.c
"$PERFUNC" list "$WORK/cet" bench_cet >&2

wall() {  # args... -> microseconds
    local s e
    s=$EPOCHREALTIME
    "$PERFUNC" record -q --calibration off -e task-clock,page-faults -f bench_cet \
        -o "$WORK/t.perfunc" "$@" >/dev/null 2>&1
    e=$EPOCHREALTIME
    echo $(( ${e/./} - ${s/./} ))
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
declare -A T
for ((r = 0; r < REPS; r++)); do
    for mode in skip noskip; do
        flag=(); [[ $mode == noskip ]] && flag=(--no-endbr64-skip)
        T[$mode.n]+="$(wall "${flag[@]}" -- "$WORK/cet" "$N")"$'\n'
        T[$mode.1]+="$(wall "${flag[@]}" -- "$WORK/cet" 1)"$'\n'
    done
done
echo "| probes placed on | median µs per call |"
echo "|---|---:|"
for mode in noskip skip; do
    n=$(printf '%s' "${T[$mode.n]}" | median)
    one=$(printf '%s' "${T[$mode.1]}" | median)
    label=$([[ $mode == skip ]] && echo "the instruction after endbr64 (default)" || echo "endbr64 (--no-endbr64-skip)")
    awk -v l="$label" -v n="$n" -v o="$one" -v c="$N" 'BEGIN { printf "| %s | %.2f |\n", l, (n - o) / c }'
done
