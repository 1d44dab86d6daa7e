#!/bin/sh
# tests/vm/examples.sh — the programs in examples/ run in the guest (busybox
# sh) as a user runs them, against one vfio-bound controller. Prints
# cmocka-style summary lines so the VM runner counts each test
# (qemu/cmocka-count); exits non-zero if any test failed.
#
#   examples_cat_host_range   `examples/cat BDF 1 OFFSET LENGTH` prints exactly
#                             the bytes the host wrote into the controller's
#                             image before boot
#   examples_cat_unaligned    the same range cut at offsets that are not
#                             block-aligned (cat reads whole blocks, prints
#                             the asked-for bytes)
#   examples_cat_past_end     a range past the end of the namespace: an error,
#                             nothing on stdout
#   examples_uring_fixed      `examples/uring_fixed BDF` exits 0 (registered
#                             buffer + file, linked write then read, compared)
#
# Environment (tests/run-vm sets all three; its controller #2 exists for
# this script and nothing else writes to it):
#   NVRING_EXAMPLES_BDF     the controller (default: the last of $NVRING_BDFS)
#   NVRING_EXAMPLES_DATA    the file the host wrote into namespace 1 ...
#   NVRING_EXAMPLES_OFFSET  ... at this byte offset
# Without DATA/OFFSET the cat tests that need them are skipped.
# uring_fixed overwrites 4 KiB at 8 KiB before the end of namespace 1.

tmp=$(mktemp -d /tmp/nvring-examples.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
npass=0; nfail=0; nskip=0; failed=""; skipped=""

say() { echo "    $*"; }

bdf=${NVRING_EXAMPLES_BDF:-}
[ -n "$bdf" ] || for b in $NVRING_BDFS; do bdf=$b; done
data=${NVRING_EXAMPLES_DATA:-}
offset=${NVRING_EXAMPLES_OFFSET:-}
# The examples sit next to the CLI in the build tree (qemu/run puts BUILD/bin
# first on PATH).
exdir=$(dirname "$(command -v nvring 2>/dev/null || echo build/bin/nvring)")/../examples


run_test() {    # NAME FUNCTION
    echo "[ RUN      ] $1"
    "$2"; st=$?
    if [ "$st" -eq 0 ]; then
        npass=$((npass + 1)); echo "[       OK ] $1"
    elif [ "$st" -eq 77 ]; then
        nskip=$((nskip + 1)); skipped="$skipped $1"; echo "[  SKIPPED ] $1"
    else
        nfail=$((nfail + 1)); failed="$failed $1"; echo "[  FAILED  ] $1"
    fi
}

# Where FILE A and FILE B first differ, for the log.
first_diff() { cmp "$1" "$2" 2>&1 | head -n 1; }

need_data() {
    [ -n "$data" ] && [ -n "$offset" ] && return 0
    say "no NVRING_EXAMPLES_DATA/NVRING_EXAMPLES_OFFSET (tests/run-vm sets them)"
    return 77
}

t_cat_host_range() {
    need_data || return $?
    len=$(wc -c <"$data")
    say "\$ examples/cat $bdf 1 $offset $len  (the host wrote $len bytes of $data there)"
    "$exdir/cat" "$bdf" 1 "$offset" "$len" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ "$rc" -eq 0 ] || { say "cat exited $rc: $(head -c 300 "$tmp/err")"; return 1; }
    got=$(wc -c <"$tmp/out")
    [ "$got" -eq "$len" ] || { say "cat printed $got bytes, expected $len"; return 1; }
    cmp -s "$tmp/out" "$data" || { say "cat's output differs from the host's file: $(first_diff "$tmp/out" "$data")"; return 1; }
    say "cat printed the $len bytes the host wrote at byte $offset"
}

t_cat_unaligned() {
    need_data || return $?
    len=$(wc -c <"$data")
    skip=777; n=$((len - skip - 1234))
    [ "$n" -gt 0 ] || { say "the host's file is too short ($len bytes)"; return 1; }
    "$exdir/cat" "$bdf" 1 $((offset + skip)) "$n" >"$tmp/out" 2>"$tmp/err" \
        || { say "cat $((offset + skip)) $n failed: $(head -c 300 "$tmp/err")"; return 1; }
    tail -c +$((skip + 1)) "$data" | head -c "$n" >"$tmp/want"
    cmp -s "$tmp/out" "$tmp/want" || { say "bytes [$skip, +$n) differ: $(first_diff "$tmp/out" "$tmp/want")"; return 1; }
    say "cat $((offset + skip)) $n: the host's bytes [$skip, +$n)"
}

t_cat_past_end() {
    cap=$(nvring identify "$bdf" 2>/dev/null | sed -n 's/^namespace 1: .*capacity \([0-9]*\) bytes.*/\1/p')
    [ -n "$cap" ] || { say "no capacity for namespace 1 in nvring identify $bdf"; return 1; }
    "$exdir/cat" "$bdf" 1 $((cap - 100)) 101 >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ "$rc" -ne 0 ] || { say "cat of [$((cap - 100)), +101) of a $cap-byte namespace exited 0"; return 1; }
    [ ! -s "$tmp/out" ] || { say "cat printed $(wc -c <"$tmp/out") bytes on error"; return 1; }
    say "exit $rc: $(head -n 1 "$tmp/err")"
    "$exdir/cat" "$bdf" 1 $((cap - 100)) 100 >"$tmp/out" 2>"$tmp/err" \
        || { say "cat of the last 100 bytes failed: $(head -c 300 "$tmp/err")"; return 1; }
    [ "$(wc -c <"$tmp/out")" -eq 100 ] || { say "cat of the last 100 bytes printed $(wc -c <"$tmp/out")"; return 1; }
}

t_uring_fixed() {
    if ls /dev/vfio/noiommu-* >/dev/null 2>&1; then
        # VFIO no-IOMMU mode (boot N): the device is given physical addresses,
        # so a registered buffer must be physically contiguous; uring_fixed
        # registers plain 4 KiB pages, refused there (EFAULT) by design.
        say "skipped: no-IOMMU mode needs registered buffers in hugepage memory; uring_fixed's are 4 KiB pages"
        return 77
    fi
    "$exdir/uring_fixed" "$bdf" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    sed 's/^/    | /' "$tmp/out" "$tmp/err"
    [ "$rc" -eq 0 ] || { say "uring_fixed exited $rc"; return 1; }
    grep -q ': ok$' "$tmp/out" || { say "uring_fixed did not report ok"; return 1; }
}

tests="cat_host_range:t_cat_host_range cat_unaligned:t_cat_unaligned cat_past_end:t_cat_past_end uring_fixed:t_uring_fixed"
ntests=$(echo $tests | wc -w)
echo "[==========] examples: Running $ntests test(s)."
if [ -z "$bdf" ]; then
    echo "[  SKIPPED ] $ntests test(s), listed below:"
    echo "[  SKIPPED ] examples (no \$NVRING_BDFS)"
    exit 0
fi
if [ ! -x "$exdir/cat" ] || [ ! -x "$exdir/uring_fixed" ]; then
    echo "[  FAILED  ] 1 test(s), listed below:"
    echo "[  FAILED  ] examples (no cat/uring_fixed in $exdir)"
    exit 1
fi
echo "[ INFO     ] controller $bdf, examples in $exdir${data:+, host data $data at byte $offset}"
for t in $tests; do
    run_test "examples_${t%%:*}" "${t#*:}"
done
echo "[==========] examples: $ntests test(s) run."
echo "[  PASSED  ] $npass test(s)."
if [ "$nskip" -gt 0 ]; then
    echo "[  SKIPPED ] $nskip test(s), listed below:"
    for t in $skipped; do echo "[  SKIPPED ] $t"; done
fi
if [ "$nfail" -gt 0 ]; then
    echo "[  FAILED  ] $nfail test(s), listed below:"
    for t in $failed; do echo "[  FAILED  ] $t"; done
    exit 1
fi
exit 0
