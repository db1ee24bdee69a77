#!/usr/bin/env bash
# What following the target's tasks costs: `--follow per-thread` (every new
# task held by ptrace until its groups are open) against `--follow
# inherit` (the kernel clones the groups), and both against the command
# alone. Two workloads: one process making N probed calls (the per-call
# cost of a per-task ring against a per-CPU one), and a shell starting P
# processes, each with one probed system call (the cost of each birth).
#
#   bash benches/follow.sh        # as root, from the repository root
#   REPS=7 N=200000 P=200         # the defaults
# Prints a markdown table of medians (ms) on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-7}
N=${N:-200000}
P=${P:-200}

cargo build --release -q
perfunc=target/release/perfunc
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -fno-omit-frame-pointer -fcf-protection=none -pthread -Wl,-z,now \
    -o "$work/workloads" tests/fixtures/workloads.c

ms() { # runs "$@" REPS times, prints the median wall time in ms
    local times=()
    for _ in $(seq "$REPS"); do
        local t0 t1
        t0=$(date +%s%N)
        "$@" >/dev/null 2>&1
        t1=$(date +%s%N)
        times+=($(((t1 - t0) / 1000000)))
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((REPS + 1) / 2))p"
}

calls=("$work/workloads" loop "$N")
births=(sh -c "for i in \$(seq $P); do $work/workloads libc 1; done")
record() { # FOLLOW PROBE -- CMD...
    local follow=$1 probe=$2
    shift 3
    "$perfunc" record -q --calibration off -e task-clock,page-faults --follow "$follow" \
        $probe -o "$work/t.perfunc" -- "$@"
}

echo "| workload | command alone | per-thread | inherit |"
echo "|---|---|---|---|"
for w in calls births; do
    if [ $w = calls ]; then
        cmd=("${calls[@]}") probe="-f pf_leaf" what="$N calls of pf_leaf, one process"
    else
        cmd=("${births[@]}") probe="-k syscall:getppid" what="$P processes started by sh, one getppid each"
    fi
    alone=$(ms "${cmd[@]}")
    pt=$(ms record per-thread "$probe" -- "${cmd[@]}")
    if "$perfunc" record -q --calibration off -e task-clock --follow inherit -k syscall:getppid \
        -o "$work/t.perfunc" -- true >/dev/null 2>&1; then
        inh=$(ms record inherit "$probe" -- "${cmd[@]}")
    else
        inh="(kernel refuses)"
    fi
    echo "| $what | $alone | $pt | $inh |"
done
