#!/usr/bin/env bash
# The change feed's cost and speed (issue 16): the append rate of one
# PostgreSQL node that keeps the change log against one that does not
# (--no-change-feed), arrays of 100 from 8 writers, alternated for --rounds
# rounds (medians quoted); then one consumer reading the whole feed of the
# node that keeps it (`loadtest feed`, pages of 10,000 and of 1,000).
#
# Usage: loadtest/feed.sh [--duration SECS] [--rounds N] [--practitioners N] [--postgres URL] [--no-append]
#
#   --duration       seconds per append scenario (default 10)
#   --rounds         rounds of the with/without pair (default 3: about 2 minutes of appends)
#   --practitioners  population of the demo gates (default 200,000, as append.sh)
#   --postgres URL   the database (default postgres://postgres@127.0.0.1:5432/test), on this machine
#   --no-append      leave BENCHMARKS.md as it is (by default this run's figures replace the last)
#
# Writes its reports to loadtest/results/<stamp>/; stops what it started, drops
# the schemas and removes the data directories on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10 rounds=3 practitioners=200000 seed=20261124 append=1 pg=postgres://postgres@127.0.0.1:5432/test
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --practitioners) practitioners=$2; shift ;;
        --postgres) pg=$2; shift ;;
        --no-append) append=0 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "feed.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$pg" in *@127.0.0.1[:/]* | *@localhost[:/]* | *@\[::1\][:/]*) ;; *) echo "feed.sh: --postgres must be on this machine" >&2; exit 2 ;; esac
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=loadtest/results/$stamp
logs=$results/logs
work=target/loadtest/feed-$stamp
schema=bench_feed_$(date -u +%Y%m%d%H%M%S)_$$
sep='?'
case "$pg" in *\?*) sep='&' ;; esac
mkdir -p "$logs" "$work"

echo "== building (release)"
cargo build --release --workspace --quiet
LT=target/release/loadtest
GATE=target/release/claimgate
me=feed.sh
. loadtest/lib.sh
cleanup() {
    stop_started
    for s in "${schema}_with" "${schema}_without"; do
        psql "$pg" -qc "DROP SCHEMA IF EXISTS \"$s\" CASCADE" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export CLAIMGATE_ADMIN_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
start_gate with demo --store "$pg${sep}schema=${schema}_with" --data "$work/w" --practitioners "$practitioners" --seed "$seed"
w_pid=$pid w_admin=$(field "$logs/with.out" admin) w_check=$(field "$logs/with.out" check)
start_gate without demo --store "$pg${sep}schema=${schema}_without" --data "$work/n" --practitioners "$practitioners" --seed "$seed" --no-change-feed
n_pid=$pid n_admin=$(field "$logs/without.out" admin)

# The node with the feed first computes the changes of the demo's ledger
# (its catch-up); appends are measured once that is done.
echo "== waiting for the change log to catch up with the demo's ledger"
for _ in $(seq 1 1200); do
    grep -q "change log caught up" "$logs/with.err" && break
    sleep 0.5
done
grep -q "change log caught up" "$logs/with.err" || { echo "feed.sh: the change log did not catch up in 10 minutes" >&2; exit 1; }
grep "change log caught up" "$logs/with.err" | tail -1 | tee "$results/catch-up.txt"

run_one() { # label admin pid
    wait_quiet "$w_pid" "$n_pid"
    timeout $((duration + 120)) "$LT" append --label "$1" --admin "$2" --server-pid "$3" \
        --practitioners "$practitioners" --seed "$seed" --pool-lines 262144 --duration "$duration" \
        --max-requests 100000000 --writers 8 --events-per-request 100 --json "$results/$1.json" \
        2>>"$logs/loadtest.err" | tee -a "$results/summary.txt"
}
with=() without=()
for r in $(seq 1 "$rounds"); do
    run_one "with-feed-$r" "$w_admin" "$w_pid"
    run_one "without-feed-$r" "$n_admin" "$n_pid"
    with+=("$(printf '%.0f' "$("$LT" get "$results/with-feed-$r.json" /throughput/events_per_s)")")
    without+=("$(printf '%.0f' "$("$LT" get "$results/without-feed-$r.json" /throughput/events_per_s)")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
m_with=$(median "${with[@]}") m_without=$(median "${without[@]}")

echo "== waiting for the feed to hold every change of the appends"
wait_quiet "$w_pid"
"$LT" feed --addr "$w_check" --limit 10000 --json "$results/feed-10000.json" | tee -a "$results/summary.txt"
"$LT" feed --addr "$w_check" --limit 1000 --json "$results/feed-1000.json" | tee -a "$results/summary.txt"

machine_facts
pg_version=$(psql "$pg" -qAtc "show server_version" 2>/dev/null | cut -d" " -f1 || echo "?")
get() { "$LT" get "$results/$1.json" "$2"; }
section=$results/section.md
{
    if needs_heading feed.sh; then
        echo
        echo "## The change feed: its cost to appends and its read rate (issue 16)"
        echo
        echo "\`loadtest/feed.sh\`: two PostgreSQL nodes on schemas of their own, one keeping the change log"
        echo "(the default) and one with \`--no-change-feed\`, appended to in turn (\`loadtest append\`, 8"
        echo "writers, arrays of 100); then \`loadtest feed\`, one consumer reading the first node's whole"
        echo "feed page by page on one connection."
    fi
    echo
    echo "### $today: $practitioners practitioners, $rounds rounds of $duration s"
    echo
    echo "Machine: $cores cores ($model), $mem GiB (free -g), $today; PostgreSQL $pg_version on the same"
    echo "machine (127.0.0.1), release build; generator, gates and PostgreSQL share the $cores cores."
    echo "Reports: \`$results/\` (not committed)."
    echo
    echo "| node | events/s, each round | median |"
    echo "|---|---|---:|"
    echo "| keeps the change log | $(printf '%s / ' "${with[@]}" | sed 's| / $||') | $m_with |"
    echo "| \`--no-change-feed\` | $(printf '%s / ' "${without[@]}" | sed 's| / $||') | $m_without |"
    echo
    echo "With the change log / without: $(awk -v a="$m_with" -v b="$m_without" 'BEGIN { printf "%.3f", a / b }') (medians)."
    echo "The demo's ledger caught up first: $(sed 's/.*mark=\([0-9]*\) seconds=\([0-9]*\.[0-9]\).*/\1 events in \2 s/' "$results/catch-up.txt")."
    echo
    echo "| feed read | changes | pages | seconds | changes/s | MiB/s | page p50 ms | page p99 ms |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for l in 10000 1000; do
        echo "| pages of $l | $(get "feed-$l" /changes) | $(get "feed-$l" /pages) | $(get "feed-$l" /elapsed_s) | $(printf '%.0f' "$(get "feed-$l" /changes_per_s)") | $(get "feed-$l" /mib_per_s) | $(awk -v u="$(get "feed-$l" /page_latency_us/p50)" 'BEGIN { printf "%.2f", u / 1000 }') | $(awk -v u="$(get "feed-$l" /page_latency_us/p99)" 'BEGIN { printf "%.2f", u / 1000 }') |"
    done
} >"$section"
publish_section "$section" "$append" feed.sh
