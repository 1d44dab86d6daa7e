#!/bin/sh
# tests/vm/shim_run.sh — `nvring run` in the guest: the one line for each
# reason it cannot work (no program, program not found, a static program,
# several controllers and no --device, a bad address, the controller in use
# and by whom), fork hand-over (fio's default process model), the second of
# two processes getting EBUSY with a line naming the holder and --thread
# while the first is unaffected, and a quiet stderr on success.
# Prints cmocka-style summary lines; needs fio (Debian's) for some tests.

tmp_name=nvring-run
. "$(dirname "$0")/lib/shim_common.sh"
bdf0=$(echo "$NVRING_BDFS" | cut -d' ' -f1)

# expect RC PATTERN CMD...: exit status RC and exactly one stderr line,
# "nvring: "-prefixed, matching PATTERN
expect() {
    want=$1 pat=$2; shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ "$rc" = "$want" ] || { say "\`$*\` exited $rc, expected $want: $(head -c 300 "$tmp/err")"; return 1; }
    n=$(wc -l <"$tmp/err")
    [ "$n" -eq 1 ] || { say "\`$*\`: $n stderr lines:"; sed 's/^/      | /' "$tmp/err"; return 1; }
    grep -q "^nvring: .*$pat" "$tmp/err" || { say "\`$*\`: got: $(cat "$tmp/err")"; return 1; }
    sed 's/^/      | /' "$tmp/err"
}

need_fio() { command -v fio >/dev/null || { say "no fio in the guest"; return 77; }; }
fio_psync() {   # extra fio args...
    fio --name=t --filename=/dev/nvring0n1 --ioengine=psync --direct=1 --bs=4k --size=4M "$@"
}

t_no_program()   { expect 2 "no PROGRAM" nvring run --device "$bdf0"; }
t_not_found()    { expect 127 "not found" nvring run --device "$bdf0" -- /no/such/prog; }
t_static()       { expect 1 "statically linked" nvring run --device "$bdf0" -- /bin/busybox true; }
t_bad_bdf()      { expect 2 "not a PCI address" nvring run --device 99:zz -- /bin/busybox true; }
t_which_device() {
    set -- $NVRING_BDFS
    [ $# -ge 2 ] || { say "one controller only"; return 77; }
    expect 2 "choose one with --device" nvring run -- /bin/busybox true
}

# fio forks its job process after stat/open/ioctl in the parent: the parent
# lets the controller go at fork, the child attaches; nothing on stderr.
t_fork_handover() {
    need_fio || return $?
    nvring run --device "$bdf0" -- "$(command -v fio)" --name=t --filename=/dev/nvring0n1 \
        --ioengine=psync --direct=1 --bs=4k --size=4M --rw=randwrite --verify=crc32c \
        >"$tmp/out" 2>"$tmp/err"
    rc=$?
    grep -q 'err= 0' "$tmp/out" && [ "$rc" = 0 ] || { say "fio rc $rc"; cat "$tmp/out" "$tmp/err"; return 1; }
    [ ! -s "$tmp/err" ] || { say "stderr not quiet:"; sed 's/^/      | /' "$tmp/err"; return 1; }
}

# numjobs=2 in fio's process model: one job drives the controller, the other
# gets EBUSY and one line naming the holder and --thread.
t_second_process_busy() {
    need_fio || return $?
    nvring run --device "$bdf0" -- "$(command -v fio)" --name=t --filename=/dev/nvring0n1 \
        --ioengine=psync --direct=1 --bs=4k --size=4M --rw=randread --numjobs=2 \
        --runtime=2 --time_based >"$tmp/out" 2>"$tmp/err"
    grep -q 'err=16' "$tmp/out" || { say "no job failed with EBUSY"; cat "$tmp/out"; return 1; }
    grep -q 'err= 0' "$tmp/out" || { say "the first job did not run clean"; cat "$tmp/out"; return 1; }
    grep -q '^nvring: .* is in use by pid [0-9]* (fio).*--thread' "$tmp/err" \
        || { say "no line naming the holder:"; cat "$tmp/err"; return 1; }
    sed 's/^/      | /' "$tmp/err"
}

# While a program holds the controller, `nvring run` says who, before exec.
t_in_use() {
    need_fio || return $?
    # The holder runs until it is stopped, so the check below never races
    # its end (a slow boot must not make this pass or fail by chance).
    nvring run --device "$bdf0" -- "$(command -v fio)" --name=t --filename=/dev/nvring0n1 \
        --ioengine=psync --direct=1 --bs=4k --size=4M --rw=randread --runtime=600 \
        --time_based --thread >/dev/null 2>&1 &
    holder=$!
    # with --thread fio never forks: it holds the controller from its open
    # to its exit
    i=0
    # (the file may still name an earlier holder: wait for this one's pid,
    # which nvring run keeps across its exec of fio)
    while [ $i -lt 1200 ] && ! grep -q "^$holder fio\$" "/run/nvring/$bdf0.pid" 2>/dev/null; do
        kill -0 $holder 2>/dev/null || break
        sleep 0.1; i=$((i + 1))
    done
    if ! grep -q "^$holder fio\$" "/run/nvring/$bdf0.pid" 2>/dev/null; then
        say "the holder (fio through nvring run) never took the controller"
        kill $holder 2>/dev/null; wait $holder
        return 1
    fi
    expect 1 "in use by pid [0-9]* (fio)" nvring run --device "$bdf0" -- "$(command -v fio)" --version
    st=$?
    kill $holder 2>/dev/null
    wait $holder
    return $st
}

tests="no_program:t_no_program not_found:t_not_found static:t_static bad_bdf:t_bad_bdf
which_device:t_which_device fork_handover:t_fork_handover
second_process_busy:t_second_process_busy in_use:t_in_use"
group_begin shim_run "$(echo $tests | wc -w)"
for t in $tests; do
    name="shim_run_${t%%:*}"
    t_run "$name"
    "${t#*:}"; st=$?
    if [ "$st" -eq 0 ]; then t_pass "$name"
    elif [ "$st" -eq 77 ]; then t_skip "$name"
    else t_fail "$name"; fi
done
group_end
exit $any_fail
