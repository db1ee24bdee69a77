#!/usr/bin/env bash
# Accuracy of `perfunc diff` on a known change of CPU work: pf_work(25)
# of the test fixture does 1.618 times the work of pf_work(24) (242,785
# calls of an unprobed recursion against 150,049). PAIRS pairs of
# `record -r 5` traces, alternating base and new, each diffed; prints
# every pair's task-clock change and verdict, their median, and how many
# fall within 10 points of +61.8 %. The same work unprobed, timed with
# the shell's clock in alternation, gives the change the machine shows
# right then.
#
#   bash benches/diff_accuracy.sh         (from the repository root, as root)
#
# Environment: PAIRS=15, RUNS=5, CALLS=50 (calls of pf_work per run).
set -euo pipefail
export LC_ALL=C
PAIRS=${PAIRS:-15}
RUNS=${RUNS:-5}
CALLS=${CALLS:-50}
log() { echo "diff_accuracy: $*" >&2; }
die() { log "error: $*"; exit 1; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $(id -u) == 0 ]] || die "uprobes need root"
cargo build --release -q >&2
PERFUNC=$PWD/target/release/perfunc
WORK=$(mktemp -d /tmp/perfunc-diff-accuracy.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
BIN=$WORK/workloads
gcc -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -fno-optimize-sibling-calls \
    -fcf-protection=none -pthread -Wl,-z,now -o "$BIN" tests/fixtures/workloads.c

usec() { local s e; s=$EPOCHREALTIME; "$@" >/dev/null; e=$EPOCHREALTIME; echo $(( ${e/./} - ${s/./} )); }
CHANGES="" PLAIN=""
for ((i = 1; i <= PAIRS; i++)); do
    for k in 24 25; do
        "$PERFUNC" record -q -r "$RUNS" -e task-clock -f pf_work -o "$WORK/w$k.perfunc" \
            -- "$BIN" work "$CALLS" "$k" >/dev/null 2>&1
    done
    line=$("$PERFUNC" diff --format csv "$WORK/w24.perfunc" "$WORK/w25.perfunc" |
        awk -F, '$1 == "pf_work" && $2 == "task-clock" { print $9, $14, $22 }')
    read -r change verdict test <<<"$line"
    t24=$(usec "$BIN" work "$((CALLS * RUNS))" 24)
    t25=$(usec "$BIN" work "$((CALLS * RUNS))" 25)
    plain=$(awk -v a="$t24" -v b="$t25" 'BEGIN { printf "%.4f", b / a - 1 }')
    log "pair $i: change $change ($verdict, $test); unprobed $plain"
    CHANGES+="$change"$'\n'
    PLAIN+="$plain"$'\n'
done
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
m=$(printf '%s' "$CHANGES" | median)
p=$(printf '%s' "$PLAIN" | median)
within=$(printf '%s' "$CHANGES" | awk '{ if ($1 >= 0.518 && $1 <= 0.718) n++ } END { print n + 0 }')
echo "| pairs | median change | within 10 points of +61.8 % | unprobed, median |"
echo "|---:|---:|---:|---:|"
awk -v n="$PAIRS" -v m="$m" -v w="$within" -v p="$p" \
    'BEGIN { printf "| %d | %+.1f %% | %d of %d | %+.1f %% |\n", n, m * 100, w, n, p * 100 }'
