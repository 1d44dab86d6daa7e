# bench/fio.sh — run in the guest by bench/run (busybox sh): Debian's fio,
# unmodified, with the io_uring engine, through `nvring run` on the vfio
# controller beside fio on the kernel's device, in one boot.
#
# Cells: 4 KiB randread and randwrite at QD1 and QD32. Engines per cell:
#   k-irq   fio on $KDEV, interrupts
#   k-poll  fio on $KDEV, --hipri --fixedbufs --registerfiles (poll queues)
#   n-plain fio on /dev/nvring0n1 through the shim, plain buffers
#   n-poll  fio through the shim, --hipri --fixedbufs --registerfiles
#   o-plain fio through the shim and the owner (`nvring serve BDF`, started
#           for the run and stopped after it): the isolated mode, where the
#           owner runs the ring and copies every buffer in or out
#   o-poll  the same with n-poll's options
# Every engine runs the same job (same seed, so the same LBA sequence:
# randseed fixed, norandommap), engine order rotated each round, ROUNDS
# rounds of SECS s after a 1 s ramp. A run with err != 0 or any I/O error is
# reported "failed" and left out of the medians. Prints one line per run
# and a table of medians with n/k ratios (against the best kernel engine of
# the cell). Arguments: KDEV BDF [SECS] [ROUNDS].
kdev=$1 bdf=$2 secs=${3:-2} rounds=${4:-3}
# FIO_ENGINES: a subset of the engines, for a run by hand
engines=${FIO_ENGINES:-"k-irq k-poll n-plain n-poll o-plain o-poll"}
set -- $engines
nengines=$#
common="--name=b --ioengine=io_uring --direct=1 --bs=4k --size=200M --time_based \
 --runtime=$secs --ramp_time=1 --randrepeat=1 --randseed=4242 --norandommap \
 --output-format=terse --cpus_allowed=0"
res=/tmp/fio-bench.res
: > "$res"

run_one() {   # ENGINE RW QD
    e=$1 rw=$2 qd=$3 extra=
    case $e in
        *-poll) extra="--hipri --fixedbufs --registerfiles" ;;
    esac
    opid=
    if [ "${e%%-*}" = o ]; then
        nvring serve "$bdf" > /tmp/fio-bench.owner 2>&1 &
        opid=$!
        i=0
        while ! grep -q "^nvring: serving" /tmp/fio-bench.owner && [ $i -lt 600 ]; do
            sleep 0.1; i=$((i + 1))
        done
    fi
    case $e in
        k-*) out=$(fio $common --filename="$kdev" --rw="$rw" --iodepth="$qd" $extra 2>&1) ;;
        n-*|o-*) out=$(nvring run --device "$bdf" -- fio $common --filename=/dev/nvring0n1 \
                   --rw="$rw" --iodepth="$qd" $extra 2>&1) ;;
    esac
    if [ -n "$opid" ]; then kill "$opid"; wait "$opid" 2>/dev/null; fi
    line=$(echo "$out" | grep '^3;fio')
    err=$(echo "$line" | cut -d';' -f5)
    if [ "$rw" = randread ]; then iops=$(echo "$line" | cut -d';' -f8)
    else iops=$(echo "$line" | cut -d';' -f49); fi
    if [ -z "$line" ] || [ "$err" != 0 ] || [ -z "$iops" ] || [ "$iops" = 0 ]; then
        echo "fio: $rw qd$qd $e: failed (err=${err:-?}): $(echo "$out" | grep -v '^3;' | head -n 3 | tr '\n' ' ')"
        return
    fi
    echo "fio: $rw qd$qd $e: $iops IOPS"
    echo "$rw $qd $e $iops" >> "$res"
}

median() {    # values on stdin -> median
    sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'
}

for rw in randread randwrite; do
    for qd in 1 32; do
        r=0
        while [ $r -lt "$rounds" ]; do
            # rotate the order: round r starts at engine r
            set -- $engines
            i=0
            while [ $i -lt $((r % nengines)) ]; do e=$1; shift; set -- "$@" $e; i=$((i + 1)); done
            for e in "$@"; do run_one "$e" "$rw" "$qd"; done
            r=$((r + 1))
        done
    done
done

echo
echo "fio medians (IOPS; ratio n/best-k per cell; o/n: through the owner against in-process)"
printf '%-10s %-4s' rw qd
for e in $engines; do printf ' %9s' "$e"; done
printf ' %10s %10s %10s %10s\n' "n-plain/k" "n-poll/k" "o/n-plain" "o/n-poll"
for rw in randread randwrite; do
    for qd in 1 32; do
        printf '%-10s %-4s' "$rw" "$qd"
        m_k_irq=0 m_k_poll=0 m_n_plain=0 m_n_poll=0 m_o_plain=0 m_o_poll=0   # (a subset ran)
        for e in $engines; do
            m=$(awk -v rw="$rw" -v qd="$qd" -v e="$e" '$1 == rw && $2 == qd && $3 == e { print $4 }' "$res" | median)
            eval "m_${e%%-*}_${e##*-}=$m"
            printf ' %9s' "$m"
        done
        best=$m_k_irq; [ "$m_k_poll" -gt "$best" ] && best=$m_k_poll
        ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2fx", a/b; else printf "-" }'; }
        printf ' %10s %10s %10s %10s\n' "$(ratio "$m_n_plain" "$best")" "$(ratio "$m_n_poll" "$best")" \
            "$(ratio "$m_o_plain" "$m_n_plain")" "$(ratio "$m_o_poll" "$m_n_poll")"
    done
done
