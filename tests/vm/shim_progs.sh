#!/bin/sh
# tests/vm/shim_progs.sh — every unmodified io_uring program in
# BUILD/tests/shim (liburing and raw-syscall programs, source in tests/shim/)
# runs twice in the guest (busybox sh): on the kernel-bound controller
# ($NVRING_KERNEL_DEVS, the kernel's io_uring) and through
# `nvring run --device BDF -- PROG /dev/nvring0n1` on its vfio twin. Their
# stdout must match byte for byte (the programs print only deterministic
# lines: results and checksums of seeded data in the device's last 16 MiB).
#
# One cmocka-style group per program, two tests each:
#   PROG_kernel   exit 0 on the kernel device
#   PROG_nvring   exit 0 through nvring run, stdout identical to the kernel's
# The nvring half is skipped (with the reason) when there is no twin, no
# `nvring run` or no BUILD/lib/libnvring-preload.so; the kernel half is
# skipped without $NVRING_KERNEL_DEVS. On a host, NVRING_KERNEL_DEVS may name
# a regular file of at least 32 MiB (the programs open it O_DIRECT).
# SHIM_PROGS="uring_rw raw_cat" runs only those; SHIM_PROG_TIMEOUT (60 s) per run.

tmp=$(mktemp -d /tmp/nvring-shim.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
say() { echo "    $*"; }

bld=$(dirname "$(command -v nvring 2>/dev/null || echo build/bin/nvring)")/..
kdev=$(echo ${NVRING_KERNEL_DEVS:-} | cut -d' ' -f1)
kbytes=0; klbs=0; kmax=0
if [ -b "$kdev" ]; then
    kname=${kdev#/dev/}
    kbytes=$(( $(cat /sys/block/$kname/size) * 512 ))
    klbs=$(cat /sys/block/$kname/queue/logical_block_size)
    kmax=$(( $(cat /sys/block/$kname/queue/max_hw_sectors_kb) * 1024 ))
elif [ -f "$kdev" ]; then
    kbytes=$(stat -c %s "$kdev")
fi

# The twin, as tests/vm/difftest.c picks it: same capacity, LBA size and
# MDTS, skipping the examples' controller (the third of $NVRING_BDFS under
# tests/run-vm, which sets NVRING_EXAMPLES_BDF).
bdf=
ex=${NVRING_EXAMPLES_BDF:-$(echo ${NVRING_BDFS:-} | cut -d' ' -f3)}
if [ -b "$kdev" ]; then
    for b in ${NVRING_BDFS:-}; do
        [ "$b" = "$ex" ] && continue
        id=$(nvring identify "$b" 2>/dev/null)
        cap=$(echo "$id" | sed -n 's/^namespace 1: lba_size \([0-9]*\), blocks [0-9]*, capacity \([0-9]*\) bytes.*/\2/p')
        lbs=$(echo "$id" | sed -n 's/^namespace 1: lba_size \([0-9]*\),.*/\1/p')
        mx=$(echo "$id" | sed -n 's/^  max_xfer *\([0-9]*\) bytes.*/\1/p')
        if [ "$cap" = "$kbytes" ] && [ "$lbs" = "$klbs" ] && [ "$mx" = "$kmax" ]; then
            bdf=$b; break
        fi
    done
fi

nvr_why=
if [ -z "${NVRING_BDFS:-}" ]; then
    nvr_why="no vfio controller (\$NVRING_BDFS)"
elif [ -z "$bdf" ]; then
    nvr_why="no vfio twin of $kdev ($kbytes B, $klbs B blocks, max $kmax B) among $NVRING_BDFS"
elif ! nvring run --help >/dev/null 2>&1; then
    nvr_why="no \`nvring run\` in this build"
elif [ ! -f "$bld/lib/libnvring-preload.so" ]; then
    nvr_why="no preload library $bld/lib/libnvring-preload.so"
fi

# ---- counting: one group at a time -----------------------------------------
g_pass=0; g_fail=0; g_skip=0; g_failed=""; g_skipped=""
any_fail=0
group_begin() {     # NAME NTESTS
    g_name=$1; g_pass=0; g_fail=0; g_skip=0; g_failed=""; g_skipped=""
    echo "[==========] $1: Running $2 test(s)."
}
t_run()  { echo "[ RUN      ] $1"; }
t_pass() { g_pass=$((g_pass + 1)); echo "[       OK ] $1"; }
t_fail() { g_fail=$((g_fail + 1)); g_failed="$g_failed $1"; any_fail=1; echo "[  FAILED  ] $1"; }
t_skip() { g_skip=$((g_skip + 1)); g_skipped="$g_skipped $1"; echo "[  SKIPPED ] $1"; }
group_end() {
    echo "[==========] $g_name: $((g_pass + g_fail + g_skip)) test(s) run."
    echo "[  PASSED  ] $g_pass test(s)."
    if [ "$g_skip" -gt 0 ]; then
        echo "[  SKIPPED ] $g_skip test(s), listed below:"
        for t in $g_skipped; do echo "[  SKIPPED ] $t"; done
    fi
    if [ "$g_fail" -gt 0 ]; then
        echo "[  FAILED  ] $g_fail test(s), listed below:"
        for t in $g_failed; do echo "[  FAILED  ] $t"; done
    fi
}

# ---- the programs -------------------------------------------------------------
shim_dir=$bld/tests/shim
prog_tmo=${SHIM_PROG_TIMEOUT:-60}
progs=${SHIM_PROGS:-$(cd "$shim_dir" 2>/dev/null && ls)}
if [ -z "$progs" ]; then
    group_begin shim_progs 1
    t_run shim_progs; say "no programs in $shim_dir (make all builds tests/shim/*.c)"; t_fail shim_progs
    group_end; exit 1
fi
echo "[ INFO     ] kernel device: ${kdev:-none} ($kbytes bytes); nvring: ${nvr_why:-nvring run --device $bdf -- PROG /dev/nvring0n1}"

# Show a run's output in the log, indented.
show() { sed "s/^/    $1| /" "$2"; }

for name in $progs; do
    p=$shim_dir/$name
    group_begin "shim_$name" 2

    t_run "${name}_kernel"
    kst=none
    if [ -z "$kdev" ]; then
        say "no kernel device (\$NVRING_KERNEL_DEVS)"; t_skip "${name}_kernel"
    else
        timeout "$prog_tmo" "$p" "$kdev" >"$tmp/k.out" 2>"$tmp/k.err"
        kst=$?
        show k "$tmp/k.out"; show k "$tmp/k.err"
        if [ "$kst" = 0 ]; then t_pass "${name}_kernel"
        elif [ "$kst" = 77 ]; then t_skip "${name}_kernel"
        else say "exit $kst on $kdev"; t_fail "${name}_kernel"; fi
    fi

    t_run "${name}_nvring"
    if [ -n "$nvr_why" ]; then
        say "$nvr_why"; t_skip "${name}_nvring"
    else
        timeout "$prog_tmo" nvring run --device "$bdf" -- "$p" /dev/nvring0n1 >"$tmp/n.out" 2>"$tmp/n.err"
        nst=$?
        show n "$tmp/n.err"
        if [ "$nst" = 77 ]; then
            t_skip "${name}_nvring"
        elif [ "$kst" = 0 ] && cmp -s "$tmp/k.out" "$tmp/n.out" && [ "$nst" = 0 ]; then
            say "stdout identical to the kernel run ($(wc -l <"$tmp/n.out") lines)"; t_pass "${name}_nvring"
        else
            show n "$tmp/n.out"
            say "exit $nst through nvring run on $bdf (kernel: $kst)"
            if [ "$kst" = 0 ]; then
                say "differences from the kernel run (k = kernel, n = nvring):"
                diff "$tmp/k.out" "$tmp/n.out" | sed 's/^/      /' | head -n 40
            fi
            t_fail "${name}_nvring"
        fi
    fi
    group_end
done
exit $any_fail
