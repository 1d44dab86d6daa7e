#!/bin/sh
# tests/vm/shim_fio.sh — Debian's fio (3.33, unmodified) in the guest (busybox
# sh) on /dev/nvring0n1 through `nvring run --device BDF -- fio ...`: the
# io_uring engine (randread / randwrite / randrw, bs 4k and 128k, iodepth 1
# and 32, plain and with --fixedbufs --registerfiles --hipri --sqthread_poll
# --nonvectored=1), numjobs=2 with --thread, --verify=crc32c and
# --verify=md5 with verify_backlog, and the psync and pvsync2 engines. A
# subset of the same jobs runs on the kernel-bound twin ($NVRING_KERNEL_DEVS)
# first, to show the job lines themselves are right.
#
# Every job stays in the device's last 16 MiB and is bounded by --io_size
# and --runtime. A job passes when fio exits 0 and every terse line has
# err=0 and moved data (verify jobs: read back too). One cmocka-style group
# per side (shim_fio_kernel, shim_fio_nvring), one test per job; the nvring
# side is skipped (with the reason) without a twin, `nvring run` or the
# preload library; all is skipped without fio. On a host, NVRING_KERNEL_DEVS
# may name a regular file of at least 32 MiB (--hipri is then dropped: files
# do not poll). SHIM_FIO_JOBS="name ..." runs only those.

tmp_name=nvring-fio
. "$(dirname "$0")/lib/shim_common.sh"

# ---- the jobs -----------------------------------------------------------------
fio=$(command -v fio 2>/dev/null)
off=$((kbytes - 16777216))
hipri=--hipri
[ -f "$kdev" ] && hipri=   # a regular file (host run): no polled I/O
fancy="--fixedbufs --registerfiles $hipri --sqthread_poll --nonvectored=1"
# VFIO no-IOMMU mode (boot N): the device is given physical addresses, so a
# registered buffer must be physically contiguous, which fio's (4 KiB pages)
# are not: the fancy jobs run without --fixedbufs there (said once below).
if ls /dev/vfio/noiommu-* >/dev/null 2>&1; then
    fancy=${fancy#--fixedbufs }
    echo "[ INFO     ] no-IOMMU mode: the _fancy jobs run without --fixedbufs (fio's buffers are 4 KiB pages)"
fi

# One job per line: NAME SIDES ARGS... (SIDES: kn = kernel and nvring, n = nvring only)
{
    for rw in randread randwrite randrw; do
        for bs in 4k 128k; do
            [ $bs = 4k ] && ios=2M || ios=8M
            for qd in 1 32; do
                sides=n
                case $rw.$bs.$qd in randrw.4k.32|randread.128k.1) sides=kn ;; esac
                echo "uring_${rw}_${bs}_qd$qd $sides --ioengine=io_uring --rw=$rw --bs=$bs --iodepth=$qd --io_size=$ios"
                sides=n
                case $rw.$bs.$qd in randwrite.4k.1|randrw.128k.32) sides=kn ;; esac
                echo "uring_${rw}_${bs}_qd${qd}_fancy $sides --ioengine=io_uring --rw=$rw --bs=$bs --iodepth=$qd --io_size=$ios $fancy"
            done
        done
    done
    echo "uring_threads2 kn --ioengine=io_uring --rw=randrw --bs=4k --iodepth=8 --io_size=1M --numjobs=2 --thread"
    echo "uring_verify_crc32c kn --ioengine=io_uring --rw=randwrite --bs=4k --iodepth=16 --size=4M --verify=crc32c --verify_backlog=64"
    echo "uring_verify_md5 kn --ioengine=io_uring --rw=randwrite --bs=128k --iodepth=8 --size=8M --verify=md5 --verify_backlog=16"
    echo "uring_verify_crc32c_fancy n --ioengine=io_uring --rw=randwrite --bs=4k --iodepth=32 --size=4M --verify=crc32c --verify_backlog=64 $fancy"
    echo "psync_randrw kn --ioengine=psync --rw=randrw --bs=4k --io_size=1M"
    echo "pvsync2_randrw kn --ioengine=pvsync2 --rw=randrw --bs=16k --io_size=2M"
} > "$tmp/jobs"
if [ -n "${SHIM_FIO_JOBS:-}" ]; then
    : > "$tmp/jobs.want"
    for j in $SHIM_FIO_JOBS; do grep "^$j " "$tmp/jobs" >> "$tmp/jobs.want"; done
    mv "$tmp/jobs.want" "$tmp/jobs"
fi

# fio_job SIDE PATH NAME ARGS...: run one job, judge its terse output.
fio_job() {
    side=$1 path=$2 name=$3; shift 3
    set -- "$fio" --name="$name" --filename="$path" --direct=1 --offset="$off" --size=16M \
        --runtime=20 --randrepeat=1 --verify_state_save=0 --output-format=terse --terse-version=3 "$@"
    [ "$side" = nvring ] && set -- nvring run --device "$bdf" -- "$@"
    say "\$ $*"
    t0=$(date +%s)
    timeout 120 "$@" >"$tmp/out" 2>"$tmp/err"
    st=$?
    t1=$(date +%s)
    sed 's/^/    | /' "$tmp/err" | head -n 20
    # terse v3: field 5 error, 6 read KiB, 47 write KiB
    awk -F';' -v st="$st" -v verify="$(echo "$*" | grep -c -- '--verify=')" '
        $1 == "3" { n++; if ($5 != 0) bad++; r += $6; w += $47; errs = errs " " $5 }
        END {
            printf "    fio exit %d: %d job line(s), err%s, read %d KiB, write %d KiB\n", st, n, errs, r, w
            ok = st == 0 && n > 0 && bad == 0 && r + w > 0 && (!verify || (r > 0 && w > 0))
            exit ok ? 0 : 1
        }' "$tmp/out"
    ok=$?
    say "($((t1 - t0)) s)"
    [ "$ok" = 0 ] || { sed 's/^/    out| /' "$tmp/out" | cut -c1-300 | head -n 5; }
    return $ok
}

run_side() {    # SIDE PATH SKIP-REASON
    njobs=0
    while read -r name sides args; do
        [ "$1" = kernel ] && [ "$sides" != kn ] && continue
        njobs=$((njobs + 1))
    done < "$tmp/jobs"
    group_begin "shim_fio_$1" "$njobs"
    while read -r name sides args; do
        [ "$1" = kernel ] && [ "$sides" != kn ] && continue
        t_run "fio_${1}_$name"
        if [ -n "$3" ]; then say "$3"; t_skip "fio_${1}_$name"; continue; fi
        # shellcheck disable=SC2086 # ARGS are words
        if fio_job "$1" "$2" "$name" $args </dev/null; then t_pass "fio_${1}_$name"; else t_fail "fio_${1}_$name"; fi
    done < "$tmp/jobs"
    group_end
}

why_all=
[ -n "$fio" ] || why_all="no fio on PATH (tests/run-vm carries /usr/bin/fio; qemu/deps installs it)"
[ -n "$kdev" ] || why_all=${why_all:-"no kernel device (\$NVRING_KERNEL_DEVS): no region to place the jobs"}
echo "[ INFO     ] $("${fio:-false}" --version 2>/dev/null); kernel device ${kdev:-none} ($kbytes bytes), jobs at byte $off; nvring: ${nvr_why:-nvring run --device $bdf}"
T0=$(date +%s)
run_side kernel "$kdev" "$why_all"
run_side nvring /dev/nvring0n1 "${why_all:-$nvr_why}"
echo "[ INFO     ] fio jobs took $(($(date +%s) - T0)) s"
exit $any_fail
