#!/usr/bin/env bash
# What placing and removing kernel-function probes costs: `perfunc record
# -k GLOB -- /bin/true` (kprobe and kretprobe per function written to
# tracefs, groups opened, closed, probes removed) for one function and for
# the ~70 functions of `vfs_*`, against bpftrace attaching the same glob.
# The host's kernel has no kprobes: the script boots a Debian guest kernel
# with virtme-ng (as tests/vm/run does) and runs itself inside.
#
#   bash benches/vm_kprobes.sh [KERNEL]   # default: the 6.12 kernel in /boot
#   REPS=5                                 # runs per row; medians printed
# Prints a markdown table on stdout. In a TCG guest every figure is several
# times what it would be on hardware; the ratios are what to read.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-5}

if [ "${PERFUNC_BENCH_GUEST:-}" != 1 ]; then
    cargo build --release -q
    kernel=${1:-$(ls /boot/vmlinuz-6.12.* | head -1)}
    exec vng --disable-kvm -r "$kernel" --cpus 2 --memory 2G --user root \
        --qemu-opts='-accel tcg,thread=single' \
        --rwdir "$(pwd)" --cwd "$(pwd)" \
        -- "env PATH='$PATH' PERFUNC_BENCH_GUEST=1 REPS=$REPS bash benches/vm_kprobes.sh" \
        </dev/null
fi

perfunc=target/release/perfunc
ms() {
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
rec() { "$perfunc" record -q --calibration off -e task-clock -o /tmp/k.perfunc -k "$1" -- /bin/true; }
n=$("$perfunc" list --kernel 'vfs_*' 2>/dev/null | wc -l)
echo "Linux $(uname -r), $(nproc) vCPUs (QEMU TCG), medians of $REPS runs"
echo
echo "| what | wall time (ms) |"
echo "|---|---|"
echo "| \`perfunc record -k vfs_read -- /bin/true\` | $(ms rec vfs_read) |"
echo "| \`perfunc record -k 'vfs_*' -- /bin/true\` ($n functions listed) | $(ms rec 'vfs_*') |"
echo "| \`bpftrace -e 'kprobe:vfs_* { @[probe] = count(); }' -c /bin/true\` | $(ms bpftrace -e 'kprobe:vfs_* { @[probe] = count(); }' -c /bin/true) |"
left=$(grep -c perfunc_ /sys/kernel/tracing/kprobe_events || true)
echo
echo "perfunc kprobes left in kprobe_events afterwards: $left"
