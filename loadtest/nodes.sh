#!/usr/bin/env bash
# Append rate and cross-node freshness on a shared PostgreSQL ledger (issue 7),
# with the embedded ledger as the baseline, on this machine only.
#
# Usage: loadtest/nodes.sh [--quick] [--duration SECS] [--practitioners N] [--postgres URL]
#                          [--write-rate R] [--no-append]
#
#   --quick          3 s per scenario (about 1 minute in all, after the build)
#   --duration       seconds per scenario (default 15: about 4 minutes in all)
#   --practitioners  population of the demo gates (default 20,000)
#   --postgres URL   the PostgreSQL database (default postgres://postgres@127.0.0.1:5432/test,
#                    or CLAIMGATE_BENCH_POSTGRES); it must be on this machine (127.0.0.1 or ::1)
#   --write-rate     admin events/s to node A while node B is read (default 1,000)
#   --no-append      leave BENCHMARKS.md as it is (by default this run's figures replace
#                    the previous run's there)
#
# Builds the workspace (release), creates a fresh schema in the database, starts
#   node A  claimgate demo  --store (the schema) --practitioners N  (generates the population into it)
#   node B  claimgate serve --store (the same schema), its own data directory and ports
#   embedded  claimgate demo (no --store: the embedded SQLite ledger) on its own data directory
# on free loopback ports, and runs:
#   a  append rate on the PostgreSQL ledger (node A): 1 and 8 writers, single events
#   b  the same with 100 events per request
#   c  the same four against the embedded ledger, as the baseline of the same run
#      (each PostgreSQL scenario is followed by its embedded twin)
#   d  freshness across nodes: --write-rate events/s to node A's admin listener while node B
#      answers checks (open loop, 5,000 checks/s); freshness = time from node A's ack of a
#      write to the first check answer from node B carrying a seq at least as high
# writes each JSON report to loadtest/results/<stamp>/, replaces its figures in BENCHMARKS.md,
# and on exit (trap EXIT) stops what it started, drops the schema and deletes the data
# directories.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0 duration="" practitioners=20000 seed=20261124 write_rate=1000 append=1
pg=${CLAIMGATE_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --duration) duration=$2; shift ;;
        --practitioners) practitioners=$2; shift ;;
        --postgres) pg=$2; shift ;;
        --write-rate) write_rate=$2; shift ;;
        --no-append) append=0 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "nodes.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$quick" = 1 ]; then
    duration=${duration:-3}
else
    duration=${duration:-15}
fi
pg_host=$(printf '%s' "$pg" | sed -E 's#^postgres(ql)?://([^@/]*@)?(\[[^]]*\]|[^:/?]*).*#\3#')
case "$pg_host" in
    127.0.0.1 | localhost | "[::1]") ;;
    *) echo "nodes.sh: --postgres must be a postgres:// URL on 127.0.0.1 or [::1] (this machine only), not $pg" >&2; exit 2 ;;
esac
command -v psql >/dev/null || { echo "nodes.sh: psql is needed to create and drop the schema (apt-get install postgresql-client)" >&2; exit 1; }
psql "$pg" -qAtc "select 1" >/dev/null || { echo "nodes.sh: cannot reach PostgreSQL at $pg" >&2; exit 1; }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=loadtest/results/$stamp
logs=$results/logs
work=target/loadtest/nodes-$stamp
schema=bench_nodes_$(date -u +%Y%m%d%H%M%S)_$$
sep='?'
case "$pg" in *\?*) sep='&' ;; esac
store="$pg${sep}schema=$schema"
mkdir -p "$logs" "$work"

echo "== building (release)"
cargo build --release --workspace --quiet
LT=target/release/loadtest
GATE=target/release/claimgate

me=nodes.sh
. loadtest/lib.sh
schema_made=0
cleanup() {
    stop_started
    if [ "$schema_made" = 1 ]; then
        psql "$pg" -qc "DROP SCHEMA IF EXISTS \"$schema\" CASCADE" >/dev/null 2>&1 \
            || echo "nodes.sh: could not drop schema $schema; drop it by hand" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export CLAIMGATE_ADMIN_TOKEN=$token

echo "== node A: claimgate demo --store ...?schema=$schema --practitioners $practitioners"
schema_made=1 # node A creates it; the cleanup drops it
start_gate node-a demo --store "$store" --data "$work/a" --practitioners "$practitioners" --seed "$seed"
a_pid=$pid a_check=$(field "$logs/node-a.out" check) a_admin=$(field "$logs/node-a.out" admin)
start_seq=$(sed -n 's/.*"seq":\([0-9]*\).*/\1/p' "$logs/node-a.out" | head -1)
echo "== node B: claimgate serve --store (the same schema)"
start_gate node-b serve --store "$store" --data "$work/b"
b_pid=$pid b_check=$(field "$logs/node-b.out" check)
echo "== embedded: claimgate demo --practitioners $practitioners (own data directory)"
start_gate embedded demo --data "$work/embedded" --practitioners "$practitioners" --seed "$seed"
e_pid=$pid e_admin=$(field "$logs/embedded.out" admin)
echo "   node A checks $a_check admin $a_admin; node B checks $b_check; embedded admin $e_admin (ledger at seq $start_seq)"

# One append run: label, admin address, server pid, then loadtest append flags.
append_run() {
    local label=$1 admin=$2 server=$3
    shift 3
    timeout $((${duration%.*} + 120)) "$LT" append --label "$label" --admin "$admin" --server-pid "$server" \
        --practitioners "$practitioners" --seed "$seed" --duration "$duration" --max-requests 100000000 \
        --json "$results/$label.json" "$@" 2>>"$logs/loadtest.err" | tee -a "$results/summary.txt"
}

# A scenario's name: ledger, writers, events per request.
label() { echo "$1-${2}w-$([ "$3" = 1 ] && echo single || echo "batch$3")"; }
# PostgreSQL and embedded alternate, so that each pair compared ran close in
# time on this shared machine.
echo "== append rate, $duration s per scenario"
for k in 1 100; do
    for w in 1 8; do
        append_run "$(label postgres "$w" "$k")" "$a_admin" "$a_pid" --writers "$w" --events-per-request "$k"
        append_run "$(label embedded "$w" "$k")" "$e_admin" "$e_pid" --writers "$w" --events-per-request "$k"
    done
done
order=()
for ledger in postgres embedded; do
    for k in 1 100; do
        for w in 1 8; do order+=("$results/$(label "$ledger" "$w" "$k").json"); done
    done
done

echo "== freshness across nodes: $write_rate writes/s to node A, checks to node B"
timeout $((${duration%.*} + 180)) "$LT" run --label freshness-a-to-b --target "$b_check" --admin "$a_admin" \
    --mode open --rate 5000 --connections 16 --write-rate "$write_rate" --write-connections 8 \
    --practitioners "$practitioners" --seed "$seed" --duration "$duration" --server-pid "$b_pid" \
    --json "$results/freshness-a-to-b.json" --dump-writes "$results/freshness-writes.csv" \
    2>>"$logs/loadtest.err" | tee -a "$results/summary.txt"
curl -s "http://$a_check/metrics" >"$logs/node-a-metrics.txt" 2>/dev/null || true
curl -s "http://$b_check/metrics" >"$logs/node-b-metrics.txt" 2>/dev/null || true

get() { "$LT" get "$results/$1.json" "$2"; }
rate() { get "$1" /throughput/events_per_s_median_window; }
ms() { awk -v u="$(get "$1" "/writes/freshness/latency_us/$2")" 'BEGIN { printf "%.2f", u / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }'; }
machine_facts
pg_version=$(psql "$pg" -qAtc "show server_version" 2>/dev/null | cut -d" " -f1 || echo "?")
sync_commit=$(psql "$pg" -qAtc "show synchronous_commit" 2>/dev/null || echo "?")

section=$results/section.md
{
    heading="## Append rate and freshness across nodes (issue 7)"
    if needs_heading nodes.sh; then
        echo
        echo "$heading"
        echo
        echo "\`loadtest/nodes.sh\` starts, on one fresh PostgreSQL schema, node A (\`claimgate demo --store\`,"
        echo "which generates the population into it) and node B (\`claimgate serve --store\`, its own data"
        echo "directory), plus an embedded-ledger gate (\`claimgate demo\`, no \`--store\`) as the baseline."
        echo "Append rate: \`loadtest append\`, closed loop: each writer connection sends \`POST /v1/events\`"
        echo "(one event, or a JSON array of 100) when its previous answer arrives; events/s counts events"
        echo "answered with a \`seq\`; latency is per request, from its send. Each writer has its own stream"
        echo "of events: 70% one-point minor violations with fresh ids for practitioners of the demo, then"
        echo "per 10 events one registration of a new practitioner, a violation and a one-point repair for"
        echo "them, so every event is accepted (R8) and reruns on one ledger are not duplicates. \"events/s,"
        echo "median 100 ms\" is the median 100 ms window's count x 10: the steady rate, less moved than the"
        echo "mean by a burst of other work on the machine. Freshness: \`loadtest run\` with writes sent to"
        echo "node A's admin listener and checks to node B (open loop); for each write, the time from node"
        echo "A's ack to the first check answer from node B carrying a \`seq\` at least as high."
    fi
    echo
    echo "### $today: $practitioners practitioners, $duration s per scenario$([ "$quick" = 1 ] && echo " (--quick)")"
    echo
    echo "Machine: $cores cores ($model), $mem GiB (free -g), $today; PostgreSQL $pg_version on the same"
    echo "machine (127.0.0.1, synchronous_commit $sync_commit), release build. **The generator, the gates"
    echo "(node A, node B and the embedded one) and PostgreSQL share these $cores cores**, and on a shared"
    echo "ledger node B's sync follows every append too. Ledger at seq $start_seq before the runs. Reports:"
    echo "\`$results/\`."
    echo
    "$LT" markdown "${order[@]}"
    echo
    "$LT" markdown "$results/freshness-a-to-b.json"
    echo
    echo "Median-window events/s, PostgreSQL / embedded: single events $(ratio "$(rate postgres-1w-single)" "$(rate embedded-1w-single)") (1 writer),"
    echo "$(ratio "$(rate postgres-8w-single)" "$(rate embedded-8w-single)") (8 writers); 100 per request $(ratio "$(rate postgres-1w-batch100)" "$(rate embedded-1w-batch100)") (1 writer),"
    echo "$(ratio "$(rate postgres-8w-batch100)" "$(rate embedded-8w-batch100)") (8 writers). 8 writers / 1 writer, single events: PostgreSQL"
    echo "$(ratio "$(rate postgres-8w-single)" "$(rate postgres-1w-single)"), embedded $(ratio "$(rate embedded-8w-single)" "$(rate embedded-1w-single)"). 100 per request / single, 1 writer: PostgreSQL"
    echo "$(ratio "$(rate postgres-1w-batch100)" "$(rate postgres-1w-single)"), embedded $(ratio "$(rate embedded-1w-batch100)" "$(rate embedded-1w-single)"). Freshness across nodes (node A's ack to node"
    echo "B's first answer at that seq) at $write_rate writes/s: p50 $(ms freshness-a-to-b p50) ms, p99 $(ms freshness-a-to-b p99) ms,"
    echo "max $(ms freshness-a-to-b max) ms, over $(get freshness-a-to-b /writes/freshness/latency_us/count) writes."
} >"$section"

publish_section "$section" "$append" nodes.sh
