#!/usr/bin/env bash
# A/B of whole servers for closed-loop single lines, alternating, so a machine
# whose speed drifts affects every variant alike (BENCHMARKS.md, issue 13).
#
# Usage: loadtest/ab.sh [--rounds N] [--duration SECS] [--connections C] VARIANT...
#
#   VARIANT    a claimgate binary, or BINARY:tmpfs to run it with its decision
#              log on a tmpfs (--audit-dir under /dev/shm)
#   --rounds   rounds of (baseline, then each variant) (default 4)
#   --duration seconds per run (default 12)
#
# Uses the demo data of loadtest/run.sh (target/loadtest/data-1000000-20261124;
# run that first). Each gate is started on it, waits for its background page
# check, gets a 3 s warm-up, is measured, and is stopped. Prints one line per
# run and, at the end, the median of each variant and its ratio to the
# baseline's median. Everything listens on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=4 duration=12 connections=32 variants=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift ;;
        --duration) duration=$2; shift ;;
        --connections) connections=$2; shift ;;
        -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "ab.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
        *) variants+=("$1") ;;
    esac
    shift
done
[ ${#variants[@]} -gt 0 ] || { echo "ab.sh: name at least one claimgate binary (see --help)" >&2; exit 2; }
data=target/loadtest/data-1000000-20261124
[ -f "$data/ledger.sqlite3" ] || { echo "ab.sh: no demo data in $data: run loadtest/run.sh once first" >&2; exit 2; }
cargo build --release -p loadtest --quiet
LT=target/release/loadtest
logs=$(mktemp -d)
shm=/dev/shm/claimgate-ab.$$
me=ab.sh
. loadtest/lib.sh
trap 'stop_started; rm -rf "$shm" "$logs"' EXIT
trap 'exit 130' INT TERM

"$LT" baseline --listen 127.0.0.1:0 >"$logs/baseline.out" 2>"$logs/baseline.err" &
pids+=($!)
wait_listening "$logs/baseline.out" "$!" 30
baseline=$(sed -n 's/.*"listening":"\([^"]*\)".*/\1/p' "$logs/baseline.out" | head -1)

# Prints the requests/s of one closed-loop run against $1 for $2 seconds.
measure() {
    "$LT" run --label ab --target "$1" --practitioners 1000000 --seed 20261124 --duration "$2" \
        --connections "$connections" --max-requests 200000000 2>/dev/null |
        sed -n 's/.* \([0-9]*\) req\/s, .*/\1/p' | head -1
}

declare -A results
for round in $(seq "$rounds"); do
    rate=$(measure "$baseline" "$duration")
    echo "round $round: baseline $rate req/s"
    results[baseline]+=" $rate"
    for variant in "${variants[@]}"; do
        binary=${variant%:tmpfs} extra=()
        if [ "$variant" != "$binary" ]; then
            rm -rf "$shm"
            extra=(--audit-dir "$shm")
        fi
        out=$logs/gate.out
        rm -f "$out" "${out%.out}.err"
        CLAIMGATE_ADMIN_TOKEN=ab-token "$binary" demo --data "$data" --practitioners 1000000 --seed 20261124 \
            --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 "${extra[@]}" >"$out" 2>"${out%.out}.err" &
        gate=$!
        pids+=("$gate")
        wait_listening "$out" "$gate" 600
        check=$(sed -n 's/.*"check":"\([^"]*\)".*/\1/p' "$out" | head -1)
        for _ in $(seq 1 600); do
            grep -q "ledger file checked" "${out%.out}.err" && break
            sleep 0.1
        done
        measure "$check" 3 >/dev/null
        rate=$(measure "$check" "$duration")
        echo "round $round: $variant $rate req/s"
        results[$variant]+=" $rate"
        kill -TERM "$gate"
        wait "$gate" 2>/dev/null || true
    done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : int((v[NR/2]+v[NR/2+1])/2))}'; }
base=$(echo "${results[baseline]}" | median)
echo "medians of $rounds rounds, $duration s each, $connections connections:"
echo "  baseline: $base req/s"
for variant in "${variants[@]}"; do
    m=$(echo "${results[$variant]}" | median)
    echo "  $variant: $m req/s, $(awk -v a="$m" -v b="$base" 'BEGIN {printf "%.2f", a / b}') of the baseline"
done
