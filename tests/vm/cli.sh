#!/bin/sh
# tests/vm/cli.sh — the nvring CLI in the guest (busybox sh), against the
# controllers qemu/run bound to vfio-pci ($NVRING_BDFS, serials in
# $NVRING_SERIALS). Prints cmocka-style summary lines so the VM runner
# counts it (qemu/cmocka-count); exits non-zero if any test failed.
#
# Needs `nvring` on PATH (qemu/run puts BUILD/bin there). The bind/unbind
# test rebinds a controller and puts it back; run this script in its own
# guest. NVRING_SEED picks the LBAs (printed).

tmp=$(mktemp -d /tmp/nvring-cli.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
seed=${NVRING_SEED:-20261201}   # fixed unless asked: CI repeats itself
npass=0; nfail=0; nskip=0; failed=""; skipped=""

say()  { echo "    $*"; }
noiommu=false
ls /dev/vfio/noiommu-* >/dev/null 2>&1 && noiommu=true
word() { echo "$2" | tr -s ' ' '\n' | sed -n "$(($1 + 1))p"; }   # word N (0-based) of $2

# run_cli EXPECTED_RC CMD... : run, keep stdout/stderr in $tmp/out, $tmp/err;
# fail (return 1) unless the exit status is EXPECTED_RC ("nz" = any non-zero)
run_cli() {
    want=$1; shift
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    # No-IOMMU mode (boot N): every attach warns once that nothing confines
    # the device; the checks here are about the other lines.
    $noiommu && sed -i '/: VFIO no-IOMMU mode (unsafe): /d' "$tmp/err"
    if [ "$want" = nz ] && [ "$rc" -ne 0 ]; then return 0; fi
    [ "$rc" = "$want" ] && return 0
    say "\`$*\` exited $rc, expected $want; stderr: $(head -c 300 "$tmp/err")"
    return 1
}

# An error run: exactly one stderr line, "nvring: "-prefixed, and no stdout.
one_error_line() {
    n=$(wc -l <"$tmp/err")
    if [ "$n" -ne 1 ]; then
        say "\`$*\`: $n stderr lines, expected 1:"; sed 's/^/      | /' "$tmp/err"; return 1
    fi
    grep -q '^nvring: ' "$tmp/err" || { say "\`$*\`: stderr lacks the 'nvring: ' prefix: $(cat "$tmp/err")"; return 1; }
    [ ! -s "$tmp/out" ] || { say "\`$*\`: wrote to stdout on error"; return 1; }
    return 0
}

# expect_error RC [GREP-PATTERN] -- CMD... : fails with RC and one line matching the pattern
expect_error() {
    want=$1; shift; pat=""
    if [ "$1" != "--" ]; then pat=$1; shift; fi
    shift
    run_cli "$want" "$@" || return 1
    one_error_line "$@" || return 1
    if [ -n "$pat" ] && ! grep -q -- "$pat" "$tmp/err"; then
        say "\`$*\`: message does not mention '$pat': $(cat "$tmp/err")"; return 1
    fi
    return 0
}

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

bdf0=$(word 0 "$NVRING_BDFS")
serial0=$(word 0 "$NVRING_SERIALS")

# Field of `nvring identify $bdf0` namespace 1: lba_size / blocks
ns_field() {
    nvring identify "$bdf0" | sed -n "s/^namespace 1: .*$1 \([0-9]*\).*/\1/p"
}

# ---- tests -----------------------------------------------------------------

t_list() {
    run_cli 0 nvring list || return 1
    [ ! -s "$tmp/err" ] || { say "list wrote to stderr: $(cat "$tmp/err")"; return 1; }
    sed 's/^/      | /' "$tmp/out"
    for b in $NVRING_BDFS; do
        line=$(grep "^$b " "$tmp/out") || { say "$b missing from nvring list"; return 1; }
        set -- $line
        [ "$2" = vfio-pci ] || { say "$b: driver '$2', expected vfio-pci"; return 1; }
        case $3 in ''|*[!0-9]*) say "$b: IOMMU group '$3' is not a number"; return 1 ;; esac
        [ "$4" = 1b36:0010 ] || { say "$b: ids '$4', expected 1b36:0010"; return 1; }
    done
    want=$(echo $NVRING_KERNEL_DEVS | wc -w)
    got=$(grep -c ' nvme .*QEMU NVMe Ctrl$' "$tmp/out")
    [ "$got" -ge "$want" ] || { say "$got kernel-bound controllers with their model listed, expected $want"; return 1; }
    # Every line is an NVMe function: nothing else slips in.
    total=$(($(echo $NVRING_BDFS | wc -w) + want))
    [ "$(wc -l <"$tmp/out")" -eq "$total" ] || { say "expected $total lines"; return 1; }
}

t_list_json() {
    run_cli 0 nvring list --json || return 1
    head -c 1 "$tmp/out" | grep -q '\[' || { say "JSON does not start with ["; return 1; }
    for b in $NVRING_BDFS; do
        grep -q "\"bdf\": \"$b\", \"driver\": \"vfio-pci\"" "$tmp/out" \
            || { say "$b with vfio-pci missing from list --json"; cat "$tmp/out"; return 1; }
    done
}

t_identify() {
    i=0
    for b in $NVRING_BDFS; do
        s=$(word $i "$NVRING_SERIALS"); i=$((i + 1))
        run_cli 0 nvring identify "$b" || return 1
        [ "$i" -gt 1 ] || sed 's/^/      | /' "$tmp/out"
        grep -q "^controller $b\$" "$tmp/out" || { say "$b: no 'controller $b' line"; return 1; }
        grep -Eq "^  sn +$s\$" "$tmp/out" || { say "$b: serial $s not printed"; return 1; }
        grep -Eq '^  mn +QEMU NVMe Ctrl$' "$tmp/out" || { say "$b: model not printed"; return 1; }
        grep -Eq '^namespace 1: lba_size [0-9]+, blocks [1-9][0-9]*, capacity [1-9][0-9]* bytes' "$tmp/out" \
            || { say "$b: namespace 1 line missing"; return 1; }
        run_cli 0 nvring identify "$b" --json || return 1
        grep -q "\"sn\": \"$s\"" "$tmp/out" || { say "$b: --json lacks the serial"; return 1; }
        grep -q '"nsid": 1,' "$tmp/out" || { say "$b: --json lacks namespace 1"; return 1; }
    done
}

t_roundtrip() {
    lbs=$(ns_field lba_size); nlba=$(ns_field blocks)
    [ -n "$lbs" ] && [ -n "$nlba" ] || { say "cannot read the namespace geometry"; return 1; }
    count=24
    lba=$(( (seed * 7919) % (nlba - count) ))
    say "seed $seed: $count blocks of $lbs at LBA $lba on $bdf0"
    dd if=/dev/urandom of="$tmp/in" bs="$lbs" count=$count 2>/dev/null
    run_cli 0 nvring write "$bdf0" --nsid 1 --lba "$lba" --count $count --data "$tmp/in" || return 1
    run_cli 0 nvring read "$bdf0" --nsid 1 --lba "$lba" --count $count --data "$tmp/back" || return 1
    cmp "$tmp/in" "$tmp/back" || { say "file round trip differs"; return 1; }
    # The same through stdin/stdout, new data over the old.
    dd if=/dev/urandom of="$tmp/in2" bs="$lbs" count=$count 2>/dev/null
    nvring write "$bdf0" --lba "$lba" --count $count <"$tmp/in2" || { say "write from stdin failed"; return 1; }
    nvring read "$bdf0" --lba "$lba" --count $count >"$tmp/back2" || { say "read to stdout failed"; return 1; }
    cmp "$tmp/in2" "$tmp/back2" || { say "stdin/stdout round trip differs"; return 1; }
    # A piece in the middle, with hex numbers.
    nvring read "$bdf0" --lba "$(printf 0x%x $((lba + 5)))" --count 0x3 >"$tmp/mid" || return 1
    dd if="$tmp/in2" bs="$lbs" skip=5 count=3 of="$tmp/mid-want" 2>/dev/null
    cmp "$tmp/mid" "$tmp/mid-want" || { say "partial read differs"; return 1; }
    # Wrong-sized input: refused, and nothing written.
    head -c $((lbs * count - 1)) "$tmp/in" >"$tmp/short"
    expect_error 1 "need exactly" -- nvring write "$bdf0" --lba "$lba" --count $count --data "$tmp/short" || return 1
    cat "$tmp/in" "$tmp/in" | head -c $((lbs * count + 1)) >"$tmp/long"
    expect_error 1 "need exactly" -- nvring write "$bdf0" --lba "$lba" --count $count --data "$tmp/long" || return 1
    nvring read "$bdf0" --lba "$lba" --count $count >"$tmp/back3" || return 1
    cmp "$tmp/in2" "$tmp/back3" || { say "a refused write changed the data"; return 1; }
}

t_bad_args() {
    nlba=$(ns_field blocks)
    printf 'x' >"$tmp/one"
    expect_error 2 -- nvring || return 1
    expect_error 2 "unknown command" -- nvring frobnicate || return 1
    expect_error 2 "unknown option" -- nvring list --bogus || return 1
    expect_error 2 "missing PCI address" -- nvring identify || return 1
    expect_error 2 "not a PCI address" -- nvring identify nonsense || return 1
    expect_error 2 "not a PCI address" -- nvring identify 0000:00:20.0 || return 1
    expect_error 1 "nvring list" -- nvring identify 0000:fe:1f.7 || return 1
    expect_error 2 "missing --lba" -- nvring read "$bdf0" || return 1
    expect_error 2 "missing --count" -- nvring read "$bdf0" --lba 0 || return 1
    expect_error 2 "needs a value" -- nvring read "$bdf0" --count 1 --lba || return 1
    expect_error 2 "--lba" -- nvring read "$bdf0" --lba 12abc --count 1 || return 1
    expect_error 2 "--lba" -- nvring read "$bdf0" --lba -1 --count 1 || return 1
    expect_error 2 "--count" -- nvring read "$bdf0" --lba 0 --count 0 || return 1
    expect_error 2 "--count" -- nvring read "$bdf0" --lba 0 --count 99999999999 || return 1
    expect_error 2 "--nsid" -- nvring read "$bdf0" --nsid 0 --lba 0 --count 1 || return 1
    expect_error 1 "not active" -- nvring read "$bdf0" --nsid 77 --lba 0 --count 1 || return 1
    expect_error 1 "past the end" -- nvring read "$bdf0" --lba "$nlba" --count 1 || return 1
    expect_error 1 "past the end" -- nvring read "$bdf0" --lba $((nlba - 1)) --count 2 || return 1
    expect_error 1 "past the end" -- nvring read "$bdf0" --lba 18446744073709551615 --count 4294967295 || return 1
    expect_error 1 "cannot open" -- nvring write "$bdf0" --lba 0 --count 1 --data /nonexistent/x || return 1
    expect_error 1 "need exactly" -- nvring write "$bdf0" --lba 0 --count 1 --data "$tmp/one" || return 1
    expect_error 2 "unexpected argument" -- nvring read "$bdf0" extra --lba 0 --count 1 || return 1
    expect_error 2 "not a PCI address" -- nvring bind nonsense || return 1
    expect_error 1 "no PCI function" -- nvring bind 0000:fe:1f.7 || return 1
    # A PCI function that is not NVMe (the host bridge).
    expect_error 1 "not an NVMe controller" -- nvring identify 0000:00:00.0 || return 1
    expect_error 1 "not an NVMe controller" -- nvring bind 0000:00:00.0 || return 1
}

t_help() {
    run_cli 0 nvring --help || return 1
    grep -q '^usage: nvring' "$tmp/out" || { say "nvring --help: no usage line"; return 1; }
    for c in list bind unbind identify read write; do
        run_cli 0 nvring "$c" --help || return 1
        head -1 "$tmp/out" | grep -q "^usage: nvring $c" || { say "nvring $c --help: no usage line"; return 1; }
        [ ! -s "$tmp/err" ] || { say "nvring $c --help wrote to stderr"; return 1; }
    done
}

# In the list, the driver of $1 (waiting up to $3 s for it to be $2).
wait_driver() {
    n=$(( $3 * 10 ))
    while [ "$n" -gt 0 ]; do
        d=$(nvring list | awk -v b="$1" '$1 == b { print $2 }')
        [ "$d" = "$2" ] && return 0
        sleep 0.1; n=$((n - 1))
    done
    say "$1 is bound to '$d', expected $2"
    return 1
}

# Give the last vfio controller to the kernel and take it back (or, when
# the harness has a kernel-bound controller, the other way round).
t_bind_unbind() {
    kb=$(nvring list | awk '$2 == "nvme" { print $1; exit }')
    if [ -n "$kb" ]; then
        ks=$(word 0 "$NVRING_KERNEL_SERIALS")
        expect_error 1 "nvring bind $kb" -- nvring identify "$kb" || return 1
        run_cli 0 nvring bind "$kb" || return 1
        wait_driver "$kb" vfio-pci 5 || return 1
        run_cli 0 nvring identify "$kb" || return 1
        [ -z "$ks" ] || grep -Eq "^  sn +$ks\$" "$tmp/out" || { say "$kb: serial $ks not printed after bind"; return 1; }
        run_cli 0 nvring unbind "$kb" || return 1
        wait_driver "$kb" nvme 5 || return 1
        return 0
    fi
    b=$(word $(( $(echo $NVRING_BDFS | wc -w) - 1 )) "$NVRING_BDFS")
    run_cli 0 nvring bind "$b" || return 1          # already bound: a no-op
    run_cli 0 nvring unbind "$b" || return 1
    wait_driver "$b" nvme 5 || return 1
    expect_error 1 "nvring bind $b" -- nvring identify "$b" || return 1
    expect_error 1 "nvring bind $b" -- nvring read "$b" --lba 0 --count 1 || return 1
    run_cli 0 nvring bind "$b" || return 1
    wait_driver "$b" vfio-pci 5 || return 1
    run_cli 0 nvring identify "$b" || return 1
    grep -q "^controller $b\$" "$tmp/out" || { say "identify after bind failed"; return 1; }
}

# ---- main ------------------------------------------------------------------

tests="list:t_list list_json:t_list_json identify:t_identify roundtrip:t_roundtrip bad_args:t_bad_args help:t_help bind_unbind:t_bind_unbind"
ntests=$(echo $tests | wc -w)
echo "[==========] cli: Running $ntests test(s)."
if [ -z "$bdf0" ]; then
    echo "[  SKIPPED ] $ntests test(s), listed below:"
    echo "[  SKIPPED ] cli (no \$NVRING_BDFS)"
    exit 0
fi
command -v nvring >/dev/null || { echo "[  FAILED  ] 1 test(s), listed below:"; echo "[  FAILED  ] cli (nvring not on PATH)"; exit 1; }
echo "[ INFO     ] seed $seed (NVRING_SEED=$seed repeats this run); controllers: $NVRING_BDFS"
for t in $tests; do
    run_test "cli_${t%%:*}" "${t#*:}"
done
echo "[==========] cli: $ntests test(s) run."
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
