#!/usr/bin/env bash
# Probe overhead per call: perfunc record against perf record (and bpftrace,
# when it is installed or installs), on the same function and counters, for
# a push-class function (the kernel emulates the probed instruction) and a
# single-stepped-class function.
#
#   bash benches/probe_overhead.sh          (from the repository root, as root)
#
# Environment (all optional):
#   REPS=9         repetitions; each tool's runs alternate within each one
#   N_PUSH=200000  calls for the push class
#   N_STEP=50000   calls for the single-stepped class
#   BUF=16M        ring buffer per CPU for both perfunc and perf
#   BPFTRACE=auto  auto: use bpftrace, try to install it if missing; 0: skip
#   KEEP=1         keep the per-run times and record counts (path on stderr)
#
# Method: for each class and tool, the wall time of the whole command for N
# calls and for 1 call, REPS times; cost per call =
# (median(N calls) - median(1 call)) / N, which removes each tool's fixed
# start-up and tear-down cost. The markdown table goes to stdout, progress to
# stderr. See docs/performance.md for what exactly is compared.
set -euo pipefail
export LC_ALL=C

REPS=${REPS:-9}
N_PUSH=${N_PUSH:-200000}
N_STEP=${N_STEP:-50000}
BUF=${BUF:-16M}
BPFTRACE=${BPFTRACE:-auto}
COUNTERS=task-clock,page-faults

log() { echo "probe_overhead: $*" >&2; }
die() { log "error: $*"; exit 1; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -f Cargo.toml && -f benches/fixtures/overhead.c ]] || die "run from the perfunc repository"
[[ $(id -u) == 0 ]] || die "uprobes need root"
[[ -n ${EPOCHREALTIME:-} ]] || die "needs bash 5 or later (EPOCHREALTIME)"

apt_install() {
    # A fresh machine may have no package lists yet: update once and retry.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2 ||
        { DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2; }
}

# --- tools ---------------------------------------------------------------
if ! command -v perf >/dev/null || ! perf --version >/dev/null 2>&1; then
    log "perf is missing: installing linux-perf"
    apt_install linux-perf || die "cannot install linux-perf"
fi
command -v gcc >/dev/null || apt_install gcc || die "cannot install gcc"
command -v objdump >/dev/null || apt_install binutils || die "cannot install binutils"

HAVE_BPFTRACE=0
if [[ $BPFTRACE != 0 ]]; then
    if ! command -v bpftrace >/dev/null; then
        log "bpftrace is missing: trying to install it (at most 2 minutes)"
        timeout 120 bash -c "$(declare -f apt_install); apt_install bpftrace" ||
            log "bpftrace did not install: its column is skipped"
    fi
    command -v bpftrace >/dev/null && HAVE_BPFTRACE=1
fi

# perf probe needs tracefs.
TRACEFS=$(awk '$3 == "tracefs" { print $2; exit }' /proc/mounts)
if [[ -z $TRACEFS ]]; then
    mount -t tracefs nodev /sys/kernel/tracing || die "cannot mount tracefs"
    TRACEFS=/sys/kernel/tracing
fi

log "building perfunc (cargo build --release)"
if ! cargo build --release -q >&2; then
    [[ -x target/release/perfunc ]] || die "cargo build --release failed"
    log "warning: the build failed; using the existing target/release/perfunc"
fi
PERFUNC=$PWD/target/release/perfunc

# --- fixture -------------------------------------------------------------
WORK=$(mktemp -d /tmp/perfunc-overhead.XXXXXX)
BIN=$WORK/pfbench          # perf probe names its group after the file
GROUP=probe_pfbench
cleanup() {
    perf probe -q -d "$GROUP:*" >/dev/null 2>&1 || true
    if [[ ${KEEP:-0} == 1 ]]; then log "raw times and records kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

gcc -O2 -Wl,-z,now -o "$BIN" benches/fixtures/overhead.c

first_insn() {
    objdump -d --no-show-raw-insn --disassemble="$1" "$BIN" |
        awk -v f="<$1>:" '$2 == f { getline; sub(/^[ \t]*[0-9a-f]+:[ \t]*/, ""); print; exit }'
}
PUSH_INSN=$(first_insn bench_push)
STEP_INSN=$(first_insn bench_step)
[[ $PUSH_INSN == "push   %rbp" ]] || die "bench_push starts with '$PUSH_INSN', not push %rbp"
[[ $STEP_INSN == "sub    \$0x8,%rsp" ]] || die "bench_step starts with '$STEP_INSN', not sub \$0x8,%rsp"

# perf's uprobe events, kept for the whole run and removed by the EXIT trap:
# $GROUP:pfbench_FUNC on entry, $GROUP:pfbench_FUNC__return on return. (perf 6.1
# refuses an event name that exists in any group, hence the prefix.)
perf probe -q -d "$GROUP:*" >/dev/null 2>&1 || true
perf probe -q -x "$BIN" \
    -a "pfbench_push=bench_push" -a "pfbench_push=bench_push%return" \
    -a "pfbench_step=bench_step" -a "pfbench_step=bench_step%return" >&2 ||
    die "perf probe failed (left-over probes? see perf probe -l)"
return_id() { cat "$TRACEFS/events/$GROUP/pfbench_${1#bench_}__return/id"; }

# --- one run of one tool -------------------------------------------------
# run_TOOL FUNC MODE N: runs the command; sets ELAPSED_US, RECORDS, LOST
# (RECORDS/LOST "-" when the tool writes no records).
OUT=$WORK/out
ELAPSED_US=0 CPU_US=0 RECORDS=- LOST=-

# Wall time, and CPU time (user + system) of the tool and everything it ran:
# bash's `times` (getrusage of waited-for children) before and after; it must
# run in this shell, not in a $(...) subshell.
timed() {
    local s e
    times >"$WORK/times.0"
    s=$EPOCHREALTIME
    "$@"
    e=$EPOCHREALTIME
    times >"$WORK/times.1"
    ELAPSED_US=$(( ${e/./} - ${s/./} ))
    CPU_US=$(awk 'FNR == 1 { f++ } FNR == 2 { split($1, u, /[ms]/); split($2, k, /[ms]/)
                                          t[f] = (u[1] * 60 + u[2] + k[1] * 60 + k[2]) * 1e6 }
                  END { printf "%d", t[2] - t[1] }' "$WORK/times.0" "$WORK/times.1")
}

run_unprobed() {
    timed "$BIN" "$2" "$3"
    RECORDS=- LOST=-
}

run_perfunc() {
    timed "$PERFUNC" record --calibration off -m "$BUF" -e "$COUNTERS" -f "$1" -o "$OUT.perfunc" \
        -- "$BIN" "$2" "$3" 2>"$OUT.err"
    # The summary line: "perfunc: N records (M lost) from ..."
    read -r RECORDS LOST < <(sed -n 's/^perfunc: \([0-9]*\) records (\([0-9]*\) lost).*/\1 \2/p' "$OUT.err") || true
    [[ -n ${RECORDS:-} ]] || die "no summary from perfunc: $(cat "$OUT.err")"
    LOST=$(( 2 * $3 - RECORDS ))
}

# Samples of the events named (perf report's per-event stats; its aggregated
# SAMPLE count is sometimes 1 or 2 above the per-event sum).
perf_samples() {
    perf report -i "$OUT.data" --stats 2>/dev/null |
        awk -v names="$*" 'BEGIN { split(names, l, " "); for (i in l) want[l[i] " stats:"] = 1 }
            /stats:$/ { ev = $0; sub(/^ */, "", ev) }
            /SAMPLE events:/ && (ev in want) { sum += $3; ev = "" }
            END { print sum + 0 }'
}

# Entry as group leader, return as a sampled member (period 1), counters as
# members: one sample per entry and one per return, each reading the whole
# group -- the layout perfunc uses. perf 6.1 takes no period term on a
# tracepoint name, hence the return probe by tracepoint id.
# --no-bpf-event: without it, perf joins a side-band thread that polls with a
# 1 s timeout, which floors every perf record run at ~1.3 s here.
run_perf() {
    timed perf record -q --no-bpf-event -c 1 -m "$BUF" -o "$OUT.data" \
        -e "{$GROUP:pfbench_${1#bench_},tracepoint/config=$(return_id "$1"),period=1/,$COUNTERS}:S" \
        -- "$BIN" "$2" "$3"
    RECORDS=$(perf_samples "$GROUP:pfbench_${1#bench_}" "tracepoint/config=$(return_id "$1"),period=1/")
    LOST=$(( 2 * $3 - RECORDS ))
}

# perf's plain ':S' group: only the leader (entry) samples; the return probe
# still fires and counts, but writes no sample.
run_perfS() {
    timed perf record -q --no-bpf-event -c 1 -m "$BUF" -o "$OUT.data" \
        -e "{$GROUP:pfbench_${1#bench_},$GROUP:pfbench_${1#bench_}__return,$COUNTERS}:S" \
        -- "$BIN" "$2" "$3"
    RECORDS=$(perf_samples "$GROUP:pfbench_${1#bench_}")
    LOST=$(( $3 - RECORDS ))
}

# bpftrace aggregates in the kernel and reads no perf counters; @n counts
# returns so a run can be checked.
run_bpftrace() {
    timed bpftrace -e "uprobe:$BIN:$1 { @s[tid] = nsecs; }
        uretprobe:$BIN:$1 { @t = hist(nsecs - @s[tid]); @n = count(); }" \
        -c "$BIN $2 $3" >"$OUT.bt" 2>&1
    RECORDS=$(awk '/^@n:/ { print $2 }' "$OUT.bt")
    [[ -n $RECORDS ]] || die "bpftrace gave no count: $(cat "$OUT.bt")"
    LOST=$(( $3 - RECORDS ))
}

TOOLS=(unprobed perfunc perf perfS)
((HAVE_BPFTRACE)) && TOOLS+=(bpftrace)
declare -A LABEL=(
    [unprobed]="unprobed"
    [perfunc]="perfunc record"
    [perf]="perf record, entry+return sampled"
    [perfS]="perf record, entry sampled only (:S)"
    [bpftrace]="bpftrace (no counters)"
)
declare -A EXPECT_PER_CALL=([unprobed]=0 [perfunc]=2 [perf]=2 [perfS]=1 [bpftrace]=1)

# --- the measurement -----------------------------------------------------
CLASSES=(push step)
declare -A FUNC=([push]=bench_push [step]=bench_step)
declare -A NCALLS=([push]=$N_PUSH [step]=$N_STEP)
declare -A INSN=([push]=$PUSH_INSN [step]=$STEP_INSN)

start=$SECONDS
for ((rep = 0; rep < REPS; rep++)); do
    log "repetition $((rep + 1))/$REPS"
    for class in "${CLASSES[@]}"; do
        n=${NCALLS[$class]}
        # Rotate the order each repetition so drift and noise hit all tools.
        for ((k = 0; k < ${#TOOLS[@]}; k++)); do
            tool=${TOOLS[(k + rep) % ${#TOOLS[@]}]}
            "run_$tool" "${FUNC[$class]}" "$class" "$n"
            echo "$ELAPSED_US" >>"$WORK/t.$class.$tool.N"
            echo "$CPU_US" >>"$WORK/c.$class.$tool.N"
            echo "$RECORDS $LOST" >>"$WORK/r.$class.$tool"
            "run_$tool" "${FUNC[$class]}" "$class" 1
            echo "$ELAPSED_US" >>"$WORK/t.$class.$tool.1"
            echo "$CPU_US" >>"$WORK/c.$class.$tool.1"
        done
    done
done
log "measured in $((SECONDS - start)) s"

# --- the report ----------------------------------------------------------
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# (a - b) / n in µs with two decimals; no "-0.00".
per_call() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { c = (a - b) / n; if (c > -0.005 && c < 0.005) c = 0; printf "%.2f", c }'; }
# Per-call cost of repetition i (its N run minus its 1 run): min and max.
per_call_range() {
    paste "$1" "$2" | awk -v n="$3" '{ c = ($1 - $2) / n; if (NR == 1 || c < lo) lo = c; if (NR == 1 || c > hi) hi = c }
        END { if (lo > -0.005 && lo < 0.005) lo = 0; if (hi > -0.005 && hi < 0.005) hi = 0
              printf "%.2f–%.2f", lo, hi }'
}

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
virt=$(grep -qw hypervisor /proc/cpuinfo && echo "virtual machine (cpuinfo hypervisor flag)" || true)
echo "# Probe overhead per call"
echo
echo "- $(date -u '+%Y-%m-%d %H:%M UTC'); kernel $(uname -r); $cpu; $(nproc) CPUs${virt:+; $virt}"
echo "- perfunc $(git rev-parse --short HEAD 2>/dev/null || echo '?') (target/release/perfunc); $(perf --version)$( ((HAVE_BPFTRACE)) && echo "; $(bpftrace --version)")"
echo "- counters $COUNTERS; ring buffer $BUF per CPU (perfunc -m, perf -m); $REPS repetitions, medians"
((HAVE_BPFTRACE)) || echo "- bpftrace: not available (BPFTRACE=$BPFTRACE), not measured"
for class in "${CLASSES[@]}"; do
    n=${NCALLS[$class]}
    echo
    echo "## ${FUNC[$class]}: first instruction \`${INSN[$class]}\`, N = $n"
    echo
    echo "| tool | wall, N calls (s) | wall, 1 call (s) | wall per call (µs) | range over reps (µs) | CPU per call (µs) | records per run (expected) | lost, worst run |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    declare -A COST=() CPUC=()
    for tool in "${TOOLS[@]}"; do
        tn=$(median "$WORK/t.$class.$tool.N")
        t1=$(median "$WORK/t.$class.$tool.1")
        cost=$(per_call "$tn" "$t1" "$n")
        COST[$tool]=$cost
        cpu_cost=$(per_call "$(median "$WORK/c.$class.$tool.N")" "$(median "$WORK/c.$class.$tool.1")" "$n")
        CPUC[$tool]=$cpu_cost
        range=$(per_call_range "$WORK/t.$class.$tool.N" "$WORK/t.$class.$tool.1" "$n")
        if [[ $tool == unprobed ]]; then
            recs="–" lost="–"
        else
            recs="$(awk '{ print $1 }' "$WORK/r.$class.$tool" | median /dev/stdin) ($((EXPECT_PER_CALL[$tool] * n)))"
            lost=$(awk '$2 > m { m = $2 } END { print m + 0 }' "$WORK/r.$class.$tool")
        fi
        printf '| %s | %.3f | %.3f | %s | %s | %s | %s | %s |\n' "${LABEL[$tool]}" \
            "$(awk -v t="$tn" 'BEGIN { print t / 1e6 }')" "$(awk -v t="$t1" 'BEGIN { print t / 1e6 }')" \
            "$cost" "$range" "$cpu_cost" "$recs" "$lost"
    done
    echo
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
    line="perfunc / perf (entry+return sampled): **$(ratio "${COST[perfunc]}" "${COST[perf]}")**"
    line+="; perfunc / perf (entry sampled only): $(ratio "${COST[perfunc]}" "${COST[perfS]}")"
    ((HAVE_BPFTRACE)) && line+="; perfunc / bpftrace: $(ratio "${COST[perfunc]}" "${COST[bpftrace]}")"
    echo "Wall time per call: $line."
    echo
    echo "CPU time per call: perfunc / perf (entry+return sampled): **$(ratio "${CPUC[perfunc]}" "${CPUC[perf]}")**."
    unset COST CPUC
done
