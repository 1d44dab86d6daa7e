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
# SHIM_PROGS="uring_rw raw_cat" runs only those; SHIM_PROG_TIMEOUT (240 s) per run.

tmp_name=nvring-shim
. "$(dirname "$0")/lib/shim_common.sh"

# ---- the programs -------------------------------------------------------------
shim_dir=$bld/tests/shim
prog_tmo=${SHIM_PROG_TIMEOUT:-240}
progs=${SHIM_PROGS:-$(cd "$shim_dir" 2>/dev/null && ls)}
if [ -z "$progs" ]; then
    group_begin shim_progs 1
    t_run shim_progs; say "no programs in $shim_dir (make all builds tests/shim/*.c)"; t_fail shim_progs
    group_end; exit 1
fi
echo "[ INFO     ] kernel device: ${kdev:-none} ($kbytes bytes); nvring: ${nvr_why:-nvring run --device $bdf -- PROG /dev/nvring0n1}"

# Programs that register buffers of plain memory larger than a page: in VFIO
# no-IOMMU mode (boot N) that memory is not one bus range.
noiommu_refuses() {
    ls /dev/vfio/noiommu-* >/dev/null 2>&1 || return 1
    case $1 in uring_fixed|uring_diffstream) return 0 ;; esac
    return 1
}

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
    elif noiommu_refuses "$name"; then
        say "skipped: VFIO no-IOMMU mode gives the device physical addresses, so registered buffers must be physically contiguous (hugepage memory); $name registers plain 4 KiB pages (refused: EFAULT)"
        t_skip "${name}_nvring"
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
