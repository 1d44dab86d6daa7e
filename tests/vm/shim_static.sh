#!/bin/sh
# tests/vm/shim_static.sh — the io_uring programs of tests/shim/ linked
# statically (BUILD/tests/shim-static: liburing.a, glibc's libc.a), where no
# LD_PRELOAD reaches: `nvring run` hands them to nvring-static-loader, which
# rewrites their io_uring and file calls to reach the owner process
# (`nvring serve BDF`, started here on the kernel device's vfio twin). Like
# tests/vm/shim_progs.sh, stdout must match the kernel run byte for byte.
#
# One cmocka-style group per program, three tests each:
#   PROG_kernel     exit 0 on the kernel device
#   PROG_rewritten  through the loader with NVRING_STATIC_KERNEL=1 (every
#                   rewritten site's trampoline runs, the kernel answers) on
#                   the kernel device: stdout identical to the kernel run
#   PROG_nvring     `nvring run --device BDF -- PROG /dev/nvring0n1` with the
#                   owner serving BDF: stdout identical to the kernel run
# and one fault test: the owner SIGKILLed under a running program, which
# must fail its calls with -ENODEV, never hang.
# Halves that cannot run are skipped with the reason (no kernel device, no
# twin, no loader, no `nvring serve`, the owner not coming up).
# SHIM_STATIC_PROGS="uring_rw raw_cat" runs only those; SHIM_PROG_TIMEOUT (240 s).
# Cost: under tests/run-vm it runs in boot A only ($NVRING_VM_BOOT; about
# 12 s there) and leaves out uring_diffstream (30 s, its dynamic twin runs
# in shim_progs.sh); NVRING_STATIC_FULL=1 runs everything in every boot.

tmp_name=nvring-static
. "$(dirname "$0")/lib/shim_common.sh"

if [ -n "${NVRING_VM_BOOT:-}" ] && [ "$NVRING_VM_BOOT" != A ] && [ "${NVRING_STATIC_FULL:-0}" != 1 ]; then
    group_begin shim_static 1
    t_run shim_static; say "skipped: runs in boot A only (this is boot $NVRING_VM_BOOT; NVRING_STATIC_FULL=1 runs it)"
    t_skip shim_static; group_end; exit 0
fi
full=${NVRING_STATIC_FULL:-0}

shim_dir=$bld/tests/shim-static
loader=$bld/lib/nvring-static-loader
prog_tmo=${SHIM_PROG_TIMEOUT:-240}
progs=${SHIM_STATIC_PROGS:-$(cd "$shim_dir" 2>/dev/null && ls)}
if [ -z "$progs" ]; then
    group_begin shim_static 1
    t_run shim_static; say "no programs in $shim_dir (make all builds them)"; t_fail shim_static
    group_end; exit 1
fi

# The loader's why-not, then the owner's.
rw_why=
[ -x "$loader" ] || rw_why="no $loader (make all builds it)"
[ -n "$rw_why" ] && [ -z "$nvr_why" ] && nvr_why=$rw_why
owner=
if [ -z "$nvr_why" ]; then
    if ! nvring serve --help >/dev/null 2>&1; then
        nvr_why="no \`nvring serve\` in this build (the owner process)"
    else
        nvring serve "$bdf" >"$tmp/owner.out" 2>"$tmp/owner.err" &
        owner=$!
        i=0
        while [ ! -S "/run/nvring/$bdf.sock" ] && [ "$i" -lt 100 ] && kill -0 "$owner" 2>/dev/null; do
            sleep 0.2; i=$((i + 1))
        done
        if [ ! -S "/run/nvring/$bdf.sock" ]; then
            nvr_why="\`nvring serve $bdf\` did not come up: $(head -c 300 "$tmp/owner.err")"
            kill "$owner" 2>/dev/null; wait "$owner" 2>/dev/null; owner=
        fi
    fi
fi
stop_owner() {
    [ -n "$owner" ] || return 0
    kill "$owner" 2>/dev/null; wait "$owner" 2>/dev/null
    sed 's/^/    owner| /' "$tmp/owner.err"
    owner=
}
trap 'stop_owner; rm -rf "$tmp"' EXIT
echo "[ INFO     ] kernel device: ${kdev:-none} ($kbytes bytes); nvring: ${nvr_why:-nvring run --device $bdf -- PROG /dev/nvring0n1, owner pid $owner}"

# As in shim_progs.sh: plain 4 KiB pages registered as buffers cannot be
# one bus range in VFIO no-IOMMU mode.
# What the owner does not serve yet, for static and dynamic clients alike
# (the dynamic shim through `nvring serve` fails the same way).
owner_gap() {
    case $1 in
        uring_mixed) echo "SQEs on the client's other files (its pipe: -EBADF, and the timeout counting their completions) need the in-process ring's hidden kernel ring: the owner cannot reach another process's files (README, Many processes; serve.sh leaves it out too)" ;;
    esac
}

noiommu_refuses() {
    ls /dev/vfio/noiommu-* >/dev/null 2>&1 || return 1
    case $1 in uring_fixed|uring_diffstream) return 0 ;; esac
    return 1
}

show() { sed "s/^/    $1| /" "$2"; }

# compare NAME TEST STATUS OUT ERR: pass when it matches the kernel run
compare() {
    show "$2" "$5"
    if [ "$3" = 77 ]; then
        t_skip "$1_$2"
    elif [ "$kst" = 0 ] && [ "$3" = 0 ] && cmp -s "$tmp/k.out" "$4"; then
        say "stdout identical to the kernel run ($(wc -l <"$4") lines)"; t_pass "$1_$2"
    else
        show "$2" "$4"
        say "exit $3 (kernel: $kst)"
        if [ "$kst" = 0 ]; then
            say "differences from the kernel run:"
            diff "$tmp/k.out" "$4" | sed 's/^/      /' | head -n 40
        fi
        t_fail "$1_$2"
    fi
}

for name in $progs; do
    p=$shim_dir/$name
    t0=$(date +%s)
    if [ "$name" = uring_diffstream ] && [ "$full" != 1 ] && [ -z "${SHIM_STATIC_PROGS:-}" ]; then
        group_begin "shim_static_$name" 1
        t_run "$name"; say "skipped for time (30 s; NVRING_STATIC_FULL=1 runs it): shim_progs.sh runs its dynamic twin"
        t_skip "$name"; group_end; continue
    fi
    group_begin "shim_static_$name" 3

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

    t_run "${name}_rewritten"
    if [ -n "$rw_why" ]; then
        say "$rw_why"; t_skip "${name}_rewritten"
    elif [ -z "$kdev" ] || [ "$kst" != 0 ]; then
        say "no kernel run to compare with"; t_skip "${name}_rewritten"
    else
        NVRING_STATIC_KERNEL=1 timeout "$prog_tmo" "$loader" "$p" "$p" "$kdev" >"$tmp/r.out" 2>"$tmp/r.err"
        compare "$name" rewritten $? "$tmp/r.out" "$tmp/r.err"
    fi

    t_run "${name}_nvring"
    if [ -n "$nvr_why" ]; then
        say "$nvr_why"; t_skip "${name}_nvring"
    elif [ -n "$(owner_gap "$name")" ]; then
        say "skipped: $(owner_gap "$name")"; t_skip "${name}_nvring"
    elif noiommu_refuses "$name"; then
        say "skipped: VFIO no-IOMMU mode gives the device physical addresses, so registered buffers must be physically contiguous; $name registers plain 4 KiB pages"
        t_skip "${name}_nvring"
    else
        timeout "$prog_tmo" nvring run --device "$bdf" -- "$p" /dev/nvring0n1 >"$tmp/n.out" 2>"$tmp/n.err"
        compare "$name" nvring $? "$tmp/n.out" "$tmp/n.err"
    fi
    say "$name: $(( $(date +%s) - t0 )) s"
    group_end
done
# The owner killed (SIGKILL) under a running static program: its calls
# must fail (-ENODEV, the in-flight requests completed from the crash
# state), never hang. Last: no owner serves after it.
group_begin shim_static_death 1
t_run fault_death_static_owner_killed
dp=$shim_dir/uring_diffstream
if [ -n "$nvr_why" ] || [ -z "$owner" ]; then
    say "${nvr_why:-no owner}"; t_skip fault_death_static_owner_killed
elif [ ! -x "$dp" ]; then
    say "no $dp"; t_skip fault_death_static_owner_killed
else
    timeout 60 nvring run --device "$bdf" -- "$dp" /dev/nvring0n1 >"$tmp/d.out" 2>"$tmp/d.err" &
    runner=$!
    # its first CQEs printed: the program is inside its stream of I/O
    i=0
    while [ "$(wc -l <"$tmp/d.out")" -lt 3 ] && [ "$i" -lt 100 ] && kill -0 "$runner" 2>/dev/null; do
        sleep 0.1; i=$((i + 1))
    done
    kill -9 "$owner" 2>/dev/null; wait "$owner" 2>/dev/null; owner=
    wait "$runner"; dst=$?
    tail -n 3 "$tmp/d.out" | sed 's/^/    d| /'; tail -n 5 "$tmp/d.err" | sed 's/^/    d| /'
    if [ "$dst" = 124 ] || [ "$dst" = 137 ]; then
        say "the program hung after the owner's death (killed by timeout)"; t_fail fault_death_static_owner_killed
    elif [ "$dst" = 0 ]; then
        say "exit 0: the owner died after the program's last call (no fault seen)"; t_skip fault_death_static_owner_killed
    else
        say "exit $dst after the owner's death, no hang"; t_pass fault_death_static_owner_killed
    fi
fi
group_end

stop_owner
exit $any_fail
