#!/bin/sh
# tests/vm/serve.sh — many processes on one controller through the owner
# (`nvring serve BDF`), in the guest (busybox sh), on the vfio twin of the
# kernel controller (lib/shim_common.sh picks it). Runs in boot A only
# (NVRING_VM_BOOT; elsewhere every test is skipped with the reason).
#
#   serve_fio_numjobs4_verify   fio --numjobs=4 in its default process model
#                               (four processes, no --thread), crc32c verify,
#                               through `nvring run` and the owner
#   serve_two_programs          fio (verify) and tests/shim/uring_rw at once on
#                               one namespace; uring_rw's stdout is the
#                               kernel's
#   serve_progs_match_kernel    tests/shim programs (the forking one among
#                               them) through the owner: stdout identical to
#                               the kernel device's
#   serve_client_killed         kill -9 of fio mid-I/O: the owner logs one
#                               line for it, and the next client passes verify
#   serve_refused_uid           a client of uid 1000 (not allowed) gets one
#                               line naming the fix, exit status 1, no I/O
#   serve_owner_killed          kill -9 of the owner under fio: fio ends
#                               (errors, no hang) within 30 s; a new owner
#                               serves and verify passes again
tmp_name=nvring-serve
. "$(dirname "$0")/lib/shim_common.sh"

fio=$(command -v fio 2>/dev/null)
shim_dir=$bld/tests/shim
tests="serve_fio_numjobs4_verify serve_two_programs serve_progs_match_kernel serve_client_killed serve_refused_uid serve_owner_killed"
set -- $tests
group_begin serve $#

why=
[ "${NVRING_VM_BOOT:-A}" = A ] || why="runs in boot A only (this is boot ${NVRING_VM_BOOT})"
[ -n "$why" ] || why=$nvr_why
[ -n "$why" ] || [ -n "$fio" ] || why="no fio on PATH"
if [ -n "$why" ]; then
    for t in $tests; do t_run "$t"; say "$why"; t_skip "$t"; done
    group_end; exit 0
fi

sock=/run/nvring/$bdf.sock
owner_pid=
owner_start() {
    nvring serve "$bdf" >>"$tmp/owner.log" 2>&1 &
    owner_pid=$!
    n0=$(grep -c "^nvring: serving $bdf" "$tmp/owner.log" 2>/dev/null)
    i=0
    while [ "$(grep -c "^nvring: serving $bdf" "$tmp/owner.log")" = "${n0:-0}" ] && [ $i -lt 100 ]; do
        sleep 0.1; i=$((i + 1))
    done
    [ $i -lt 100 ] || { say "the owner did not start:"; sed 's/^/    owner| /' "$tmp/owner.log"; return 1; }
    return 0
}
owner_stop() {
    [ -n "$owner_pid" ] && kill "$owner_pid" 2>/dev/null && wait "$owner_pid" 2>/dev/null
    owner_pid=
}
trap 'owner_stop; rm -rf "$tmp"' EXIT

# The jobs work in the last 32 MiB but one 16 MiB region of uring_rw & co
# (which use the device's last 16 MiB).
base=$((kbytes - 33554432))
fio_run() {     # NAME TIMEOUT FIO-ARGS... : terse output in $tmp/NAME.out
    name=$1 tmo=$2; shift 2
    timeout "$tmo" nvring run --device "$bdf" -- "$fio" --name="$name" --filename=/dev/nvring0n1 \
        --direct=1 --ioengine=io_uring --randrepeat=1 --verify_state_save=0 \
        --output-format=terse --terse-version=3 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
}
# fio's terse lines: exit 0, N job lines, no error, some I/O.
fio_ok() {      # NAME STATUS JOBS
    sed 's/^/    | /' "$tmp/$1.err" | head -n 10
    awk -F';' -v st="$2" -v want="$3" '
        $1 == "3" { n++; if ($5 != 0) bad++; r += $6; w += $47 }
        END { printf "    fio exit %d: %d job line(s), %d with errors, read %d KiB, write %d KiB\n", st, n, bad, r, w
              exit (st == 0 && n == want && !bad && r > 0 && w > 0) ? 0 : 1 }' "$tmp/$1.out"
}
verify_job() {  # NAME : one 4 MiB crc32c write+verify at base
    fio_run "$1" 120 --rw=randwrite --bs=4k --iodepth=16 --size=4M --offset="$base" \
        --verify=crc32c --verify_backlog=64
    fio_ok "$1" $? 1
}

owner_start || { for t in $tests; do t_run "$t"; t_fail "$t"; done; group_end; exit 1; }
echo "[ INFO     ] owner pid $owner_pid serves $bdf on $sock; kernel device $kdev"

# ---- fio, four processes ------------------------------------------------------
t_run serve_fio_numjobs4_verify
fio_run mp 240 --rw=randwrite --bs=4k --iodepth=16 --numjobs=4 --size=2M --offset="$base" \
    --offset_increment=2M --verify=crc32c --verify_backlog=32
st=$?
if fio_ok mp $st 4; then t_pass serve_fio_numjobs4_verify; else t_fail serve_fio_numjobs4_verify; fi

# ---- two programs at once ----------------------------------------------------
t_run serve_two_programs
if [ -x "$shim_dir/uring_rw" ] && [ -b "$kdev" ]; then
    timeout 120 "$shim_dir/uring_rw" "$kdev" >"$tmp/rw.k" 2>"$tmp/rw.ke"
    fio_run two 180 --rw=randrw --bs=4k --iodepth=8 --size=8M --offset="$base" \
        --verify=crc32c --verify_backlog=32 --loops=2 &
    fpid=$!
    timeout 120 nvring run --device "$bdf" -- "$shim_dir/uring_rw" /dev/nvring0n1 >"$tmp/rw.n" 2>"$tmp/rw.ne"
    rst=$?
    wait $fpid
    fst=$?
    if fio_ok two $fst 1 && [ "$rst" = 0 ] && cmp -s "$tmp/rw.k" "$tmp/rw.n"; then
        say "fio and uring_rw ran together; uring_rw's stdout is the kernel's"
        t_pass serve_two_programs
    else
        say "uring_rw exit $rst; differences (k = kernel, n = through the owner):"
        diff "$tmp/rw.k" "$tmp/rw.n" | sed 's/^/      /' | head -n 20
        t_fail serve_two_programs
    fi
else
    say "no $shim_dir/uring_rw or no kernel device"; t_fail serve_two_programs
fi

# ---- the shim's programs ------------------------------------------------------
# Not uring_mixed and uring_probe: SQEs on other files (pipes) and opcodes
# outside block I/O are the in-process ring's hidden kernel ring; the owner
# cannot reach another process's files (README, "Many processes").
t_run serve_progs_match_kernel
pbad=0; pn=0
for name in uring_rw uring_fork uring_fixed uring_links uring_timeout uring_threads uring_vectored uring_drain uring_eventfd uring_overflow uring_hostile raw_cat; do
    p=$shim_dir/$name
    [ -x "$p" ] || continue
    pn=$((pn + 1))
    timeout 120 "$p" "$kdev" >"$tmp/p.k" 2>"$tmp/p.ke"; kst=$?
    timeout 120 nvring run --device "$bdf" -- "$p" /dev/nvring0n1 >"$tmp/p.n" 2>"$tmp/p.ne"; nst=$?
    if [ "$kst" = 77 ] || [ "$nst" = 77 ]; then
        say "$name: skipped by the program (77)"
    elif [ "$kst" = 0 ] && [ "$nst" = 0 ] && cmp -s "$tmp/p.k" "$tmp/p.n"; then
        say "$name: identical ($(wc -l <"$tmp/p.n") lines)"
    else
        pbad=$((pbad + 1))
        say "$name: kernel exit $kst, through the owner $nst; differences:"
        diff "$tmp/p.k" "$tmp/p.n" | sed 's/^/      /' | head -n 20
        sed 's/^/      n| /' "$tmp/p.ne" | head -n 5
    fi
done
if [ "$pn" -gt 0 ] && [ "$pbad" = 0 ]; then t_pass serve_progs_match_kernel; else t_fail serve_progs_match_kernel; fi

# ---- kill -9 of a client -------------------------------------------------------
t_run serve_client_killed
fio_run victim 60 --rw=randread --bs=4k --iodepth=32 --size=16M --offset="$base" --runtime=30 \
    --time_based &
vpid=$!
sleep 3
# the subshell, timeout, fio's main (nvring run exec'd it), fio's job: all of them
tree() { echo "$1"; for k in $(ps -o pid,ppid | awk -v p="$1" '$2 == p { print $1 }'); do tree "$k"; done; }
victims=$(tree "$vpid")
say "kill -9 of $(echo $victims)"
kill -9 $victims 2>/dev/null
wait $vpid 2>/dev/null
# the owner closes the dead client's rings (in-flight commands first): wait
# for its line, 20 s at most (a loaded host)
i=0
while ! grep -q "client pid .* gone" "$tmp/owner.log" && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
gone=$(grep -c "client pid .* gone" "$tmp/owner.log")
grep "client pid .* gone" "$tmp/owner.log" | sed 's/^/    owner| /'
if [ "$gone" -ge 1 ] && verify_job after_kill; then
    t_pass serve_client_killed
else
    say "owner log lines for gone clients: $gone"; t_fail serve_client_killed
fi

# ---- a refused uid ---------------------------------------------------------------
t_run serve_refused_uid
chmod 0755 "$tmp"
grep -q "^nvring-other:" /etc/passwd 2>/dev/null ||
    echo "nvring-other:x:1000:1000:serve.sh:/tmp:/bin/sh" >> /etc/passwd
su -s /bin/sh nvring-other -c "nvring run --device $bdf -- $fio --name=refused \
    --filename=/dev/nvring0n1 --direct=1 --ioengine=io_uring --rw=read --bs=4k --size=64k \
    --offset=$base" >"$tmp/ref.out" 2>"$tmp/ref.err"
rst=$?
sed 's/^/    | /' "$tmp/ref.err" | head -n 5
if [ "$rst" = 1 ] && grep -q "does not allow uid 1000" "$tmp/ref.err" && [ "$(wc -l <"$tmp/ref.err")" = 1 ] &&
   grep -q "refused pid .* uid 1000" "$tmp/owner.log"; then
    t_pass serve_refused_uid
else
    say "exit $rst"; t_fail serve_refused_uid
fi

# ---- kill -9 of the owner ----------------------------------------------------------
t_run serve_owner_killed
fio_run orphan 60 --rw=randread --bs=4k --iodepth=32 --size=16M --offset="$base" --runtime=40 \
    --time_based &
opid=$!
sleep 3
t0=$(date +%s)
kill -9 "$owner_pid"; wait "$owner_pid" 2>/dev/null; owner_pid=
wait $opid; ost=$?
t1=$(date +%s)
say "fio ended $((t1 - t0)) s after the owner's kill, exit $ost"
sed 's/^/    | /' "$tmp/orphan.err" | head -n 5
ok=1
[ $((t1 - t0)) -le 30 ] || ok=0   # (the client waits up to 10 s for the owner's exit)
[ "$ost" != 0 ] && [ "$ost" != 124 ] || ok=0
if [ $ok = 1 ] && owner_start && verify_job after_owner; then
    t_pass serve_owner_killed
else
    t_fail serve_owner_killed
fi
owner_stop
group_end
exit $any_fail
