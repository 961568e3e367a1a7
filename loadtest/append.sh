#!/usr/bin/env bash
# Append rate of one node (issue 15): a gate on a fresh PostgreSQL schema and
# a gate on the embedded ledger, nothing else running, appended to by 4, 8
# and 16 writers with single events and with arrays of 100; each PostgreSQL
# scenario is followed by its embedded twin (the baseline of the same run).
# 16 writers is the most one client address may hold on the admin listener
# (ADMIN_MAX_CONNECTIONS_PER_CLIENT); more are refused at connect, by design.
# Concurrent requests share a commit (group commit, crates/gate/src/appends.rs).
# An event about a practitioner costs in proportion to that practitioner's
# history (the index re-derives it; R11 reads the standing scoring steps), so
# the writes are spread over a population large enough (200,000, the
# violations over the ~150,000 the request pool draws) that a run of about a
# million events leaves each history near a real one's length; on the 20,000
# of the demo the same run piles 50 violations on each, and the rate falls as
# they grow (measured 2026-12-07 on PostgreSQL: 14,000, 11,300 and 9,500
# events/s in arrays of 100 for the three batch scenarios, in turn).
#
# Usage: loadtest/append.sh [--duration SECS] [--practitioners N] [--postgres URL] [--no-append]
#
#   --duration       seconds per scenario (default 10: about 3 minutes in all)
#   --practitioners  population of the demo gates (default 200,000)
#   --postgres URL   the database (default postgres://postgres@127.0.0.1:5432/test), on this machine
#   --no-append      leave BENCHMARKS.md as it is (by default this run's figures replace the last)
#
# Writes its reports to loadtest/results/<stamp>/; stops what it started, drops
# the schema and removes the data directories on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10 practitioners=200000 seed=20261124 append=1 pg=postgres://postgres@127.0.0.1:5432/test
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=$2; shift ;;
        --practitioners) practitioners=$2; shift ;;
        --postgres) pg=$2; shift ;;
        --no-append) append=0 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "append.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$pg" in *@127.0.0.1[:/]* | *@localhost[:/]* | *@\[::1\][:/]*) ;; *) echo "append.sh: --postgres must be on this machine" >&2; exit 2 ;; esac
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=loadtest/results/$stamp
logs=$results/logs
work=target/loadtest/append-$stamp
schema=bench_append_$(date -u +%Y%m%d%H%M%S)_$$
sep='?'
case "$pg" in *\?*) sep='&' ;; esac
mkdir -p "$logs" "$work"

echo "== building (release)"
cargo build --release --workspace --quiet
LT=target/release/loadtest
GATE=target/release/claimgate
me=append.sh
. loadtest/lib.sh
cleanup() {
    stop_started
    psql "$pg" -qc "DROP SCHEMA IF EXISTS \"$schema\" CASCADE" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export CLAIMGATE_ADMIN_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
start_gate postgres demo --store "$pg${sep}schema=$schema" --data "$work/p" --practitioners "$practitioners" --seed "$seed"
p_pid=$pid p_admin=$(field "$logs/postgres.out" admin)
start_gate embedded demo --data "$work/e" --practitioners "$practitioners" --seed "$seed"
e_pid=$pid e_admin=$(field "$logs/embedded.out" admin)

run_one() { # label admin pid writers events-per-request
    wait_quiet "$p_pid" "$e_pid"
    timeout $((duration + 120)) "$LT" append --label "$1" --admin "$2" --server-pid "$3" \
        --practitioners "$practitioners" --seed "$seed" --pool-lines 262144 --duration "$duration" --max-requests 100000000 \
        --writers "$4" --events-per-request "$5" --json "$results/$1.json" 2>>"$logs/loadtest.err" \
        | tee -a "$results/summary.txt"
}
label() { echo "$1-${2}w-$([ "$3" = 1 ] && echo single || echo "batch$3")"; }
order_p=() order_e=()
for k in 1 100; do
    for w in 4 8 16; do
        run_one "$(label postgres "$w" "$k")" "$p_admin" "$p_pid" "$w" "$k"
        run_one "$(label embedded "$w" "$k")" "$e_admin" "$e_pid" "$w" "$k"
        order_p+=("$results/$(label postgres "$w" "$k").json")
        order_e+=("$results/$(label embedded "$w" "$k").json")
    done
done
metric() { curl -s "http://$(field "$logs/$1.out" check)/metrics" | sed -n "s/^$2 \([0-9]*\).*/\1/p" | head -1; }
p_tx=$(metric postgres claimgate_append_transactions_total) p_req=$(metric postgres claimgate_append_requests_total)
e_tx=$(metric embedded claimgate_append_transactions_total) e_req=$(metric embedded claimgate_append_requests_total)

machine_facts
pg_version=$(psql "$pg" -qAtc "show server_version" 2>/dev/null | cut -d" " -f1 || echo "?")
section=$results/section.md
{
    if needs_heading append.sh; then
        echo
        echo "## Append rate of one node (issue 15)"
        echo
        echo "\`loadtest/append.sh\`: one gate on a fresh PostgreSQL schema and one on the embedded ledger,"
        echo "nothing else running (no second node), \`loadtest append\` as in the section above with 4, 8"
        echo "and 16 writers (16: the admin listener's cap of connections per client address); each"
        echo "PostgreSQL scenario followed by its embedded twin. Requests waiting at once share one append"
        echo "transaction (group commit)."
    fi
    echo
    echo "### $today: $practitioners practitioners, $duration s per scenario"
    echo
    echo "Machine: $cores cores ($model), $mem GiB (free -g), $today; PostgreSQL $pg_version on the same"
    echo "machine (127.0.0.1), release build; the generator, both gates and PostgreSQL share the $cores cores."
    echo "Reports: \`$results/\` (not committed)."
    echo
    "$LT" markdown "${order_p[@]}" "${order_e[@]}"
    echo
    echo "Requests per append transaction over the run (\`claimgate_append_requests\` /"
    echo "\`claimgate_append_transactions\`): PostgreSQL $(awk -v r="$p_req" -v t="$p_tx" 'BEGIN { if (t > 0) printf "%.1f", r / t; else print "?" }'),"
    echo "embedded $(awk -v r="$e_req" -v t="$e_tx" 'BEGIN { if (t > 0) printf "%.1f", r / t; else print "?" }')."
} >"$section"
publish_section "$section" "$append" append.sh
