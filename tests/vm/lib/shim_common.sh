# tests/vm/lib/shim_common.sh — sourced by tests/vm/shim_progs.sh and
# shim_fio.sh (busybox sh): a scratch folder, the kernel device and its vfio
# twin (as tests/vm/difftest.c picks it), why the nvring half cannot run
# ($nvr_why, empty when it can), and cmocka-style counting per group.
# Needs $tmp_name (the scratch folder's prefix) set by the caller.

tmp=$(mktemp -d "/tmp/${tmp_name:-nvring-shim}.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
say() { echo "    $*"; }

bld=$(dirname "$(command -v nvring 2>/dev/null || echo build/bin/nvring)")/..
kdev=$(echo ${NVRING_KERNEL_DEVS:-} | cut -d' ' -f1)
# The kernel controller by its serial: an earlier test (cli.sh's bind and
# unbind) may have handed it to vfio-pci and back, and then it has a new name.
kser=$(echo ${NVRING_KERNEL_SERIALS:-} | cut -d' ' -f1)
if [ -n "$kser" ]; then
    for c in /sys/class/nvme/nvme*; do
        [ "$(sed 's/ *$//' "$c/serial" 2>/dev/null)" = "$kser" ] || continue
        for n in "$c"/nvme*n1; do
            [ -e "$n" ] && [ -b "/dev/${n##*/}" ] && kdev=/dev/${n##*/}
        done
    done
fi
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
