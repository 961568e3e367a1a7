#!/usr/bin/env bash
# HTTP load scenarios against the gate (issue 5), on this machine only.
#
# Usage: loadtest/run.sh [--quick] [--practitioners N] [--seed S] [--duration SECS]
#                        [--connections C] [--write-rate R] [--data DIR] [--fresh] [--no-append]
#
#   --quick          100,000 practitioners, 5 s per scenario (about 2 minutes in all)
#   --practitioners  population of the demo (default 1,000,000; must match --seed's demo data)
#   --duration       seconds per scenario (default 30: the whole run takes about 5-7 minutes,
#                    plus about 45 s the first time a 1M population is generated)
#   --data DIR       the demo's data directory (default target/loadtest/data-N-SEED, reused
#                    across runs; the writes scenario adds events to it); --fresh deletes it first
#   --no-append      leave BENCHMARKS.md as it is (by default this run's figures replace
#                    the previous run's there)
#   CLAIMGATE_BIN    (environment) the claimgate binary to measure instead of this build's
#                    (an older build, to compare two in the same session)
#
# Builds the workspace (release), starts the baseline server and the gate
# (`claimgate demo`) on free loopback ports, runs:
#   1 closed loop, single lines, against the baseline (a server that does no work)
#   2 closed loop, single lines, against the gate
#   3 closed loop, batches of 100 and of 1,000 lines, against the gate; then the batches of
#     1,000 again with the gate restarted with its decision log on a tmpfs (/dev/shm), the
#     same work without the fsync each reject waits for (R19), and restarted back
#   4 open loop, single lines, at half the rate measured in 2
#   5 as 4, with admin writes at --write-rate (default 1,000 events/s) during the reads
# writes each JSON report to loadtest/results/<stamp>/, replaces its figures in
# BENCHMARKS.md, and stops what it started (trap EXIT).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0 practitioners="" seed=20261124 duration="" connections=32 write_rate=1000 data="" fresh=0 append=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --practitioners) practitioners=$2; shift ;;
        --seed) seed=$2; shift ;;
        --duration) duration=$2; shift ;;
        --connections) connections=$2; shift ;;
        --write-rate) write_rate=$2; shift ;;
        --data) data=$2; shift ;;
        --fresh) fresh=1 ;;
        --no-append) append=0 ;;
        -h | --help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$quick" = 1 ]; then
    practitioners=${practitioners:-100000}
    duration=${duration:-5}
    warmup=1
else
    practitioners=${practitioners:-1000000}
    duration=${duration:-30}
    warmup=3
fi
data=${data:-target/loadtest/data-$practitioners-$seed}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=loadtest/results/$stamp
logs=$results/logs
mkdir -p "$logs"

echo "== building (release)"
cargo build --release --workspace --quiet
LT=target/release/loadtest
# CLAIMGATE_BIN: another claimgate binary to measure (an older build, for A/B).
GATE=${CLAIMGATE_BIN:-target/release/claimgate}

me=run.sh
. loadtest/lib.sh
shm_audit=/dev/shm/claimgate-loadtest-audit.$$
cleanup() { stop_started; rm -rf "$shm_audit"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting the baseline server"
"$LT" baseline --listen 127.0.0.1:0 >"$logs/baseline.out" 2>"$logs/baseline.err" &
baseline_pid=$!
pids+=("$baseline_pid")
wait_listening "$logs/baseline.out" "$baseline_pid" 30
baseline=$(sed -n 's/.*"listening":"\([^"]*\)".*/\1/p' "$logs/baseline.out" | head -1)

if [ "$fresh" = 1 ]; then
    rm -rf "$data"
fi
mkdir -p "$(dirname "$data")"
reused="generated"
[ -e "$data/ledger.sqlite3" ] && reused="reused"
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
# Starts (or restarts) the gate on $data with extra serve flags; sets gate_pid, check, admin, start_seq.
gate_starts=0
start_gate() {
    gate_starts=$((gate_starts + 1))
    local out=$logs/gate-$gate_starts.out
    CLAIMGATE_ADMIN_TOKEN=$token "$GATE" demo --data "$data" --practitioners "$practitioners" --seed "$seed" \
        --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 "$@" >"$out" 2>"${out%.out}.err" &
    gate_pid=$!
    pids+=("$gate_pid")
    wait_listening "$out" "$gate_pid" 600
    check=$(sed -n 's/.*"check":"\([^"]*\)".*/\1/p' "$out" | head -1)
    admin=$(sed -n 's/.*"admin":"\([^"]*\)".*/\1/p' "$out" | head -1)
    start_seq=$(sed -n 's/.*"seq":\([0-9]*\).*/\1/p' "$out" | head -1)
}
# Stops the running gate (SIGTERM, up to 30 s).
stop_gate() {
    kill -TERM "$gate_pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
        kill -0 "$gate_pid" 2>/dev/null || break
        sleep 0.1
    done
    wait "$gate_pid" 2>/dev/null || true
}
echo "== starting the gate: $GATE demo --data $data --practitioners $practitioners ($reused data; the first run of 1M takes about 45 s)"
start_gate
echo "   baseline on $baseline; gate checks on $check, admin on $admin (ledger at seq $start_seq)"

# Waits (up to 60 s) until the gate's audit queue is empty, so one scenario's
# audit backlog does not run into the next one's measurements.
audit_drained() {
    command -v curl >/dev/null || return 0
    local depth=""
    for _ in $(seq 1 600); do
        depth=$(curl -s "http://$check/metrics" | sed -n 's/^claimgate_audit_queue_depth \([0-9]*\)$/\1/p')
        [ "${depth:-0}" = 0 ] && return 0
        sleep 0.1
    done
    echo "run.sh: the gate's audit queue is still at $depth after 60 s; going on" >&2
}

# One run: label, then loadtest run flags. Bounded by its own --duration and
# --max-requests; `timeout` is only a backstop.
scenario() {
    local label=$1
    shift
    CLAIMGATE_ADMIN_TOKEN=$token timeout $((${duration%.*} * 3 + 180)) "$LT" run --label "$label" \
        --json "$results/$label.json" --practitioners "$practitioners" --seed "$seed" \
        --max-requests 200000000 "$@" 2>>"$logs/loadtest.err" | tee -a "$results/summary.txt"
}

echo "== warm-up (not reported)"
scenario warmup-baseline --target "$baseline" --duration "$warmup" --connections "$connections" >/dev/null
scenario warmup-gate --target "$check" --duration "$warmup" --connections "$connections" \
    --server-pid "$gate_pid" >/dev/null

echo "== scenarios, $duration s each"
scenario 1-baseline-single --target "$baseline" --duration "$duration" --connections "$connections" \
    --server-pid "$baseline_pid"
audit_drained
scenario 2-gate-single --target "$check" --duration "$duration" --connections "$connections" \
    --server-pid "$gate_pid"
audit_drained
scenario 3-gate-batch100 --target "$check" --duration "$duration" --connections 8 --batch-size 100 \
    --server-pid "$gate_pid"
audit_drained
scenario 3-gate-batch1000 --target "$check" --duration "$duration" --connections 4 --batch-size 1000 \
    --server-pid "$gate_pid"
audit_drained
if [ -d /dev/shm ] && [ "$(stat -f -c %T /dev/shm)" = tmpfs ]; then
    echo "== the batches of 1,000 again, the decision log on a tmpfs ($shm_audit): no fsync to wait for"
    stop_gate
    start_gate --audit-dir "$shm_audit" --audit-reserve-bytes 0
    scenario 3-gate-batch1000-audit-tmpfs --target "$check" --duration "$duration" --connections 4 --batch-size 1000 \
        --server-pid "$gate_pid"
    stop_gate
    rm -rf "$shm_audit"
    start_gate
    tmpfs_ran=1
else
    echo "run.sh: /dev/shm is not a tmpfs here; the decision-log comparison is left out" >&2
    tmpfs_ran=0
fi
max_rate=$("$LT" get "$results/2-gate-single.json" /throughput/requests_per_s)
half=$(awk -v r="$max_rate" 'BEGIN { printf "%d", r / 2 }')
audit_drained
scenario 4-gate-open-half --target "$check" --duration "$duration" --mode open --rate "$half" --connections 64 \
    --server-pid "$gate_pid"
audit_drained
scenario 5-gate-open-half-writes --target "$check" --duration "$duration" --mode open --rate "$half" \
    --connections 64 --admin "$admin" --write-rate "$write_rate" --server-pid "$gate_pid" \
    --dump-writes "$results/5-writes.csv"

# The gate's own view after the runs (audit queue, refusals, index swaps).
curl -s "http://$check/metrics" >"$logs/gate-metrics.txt" 2>/dev/null || true

order=(1-baseline-single 2-gate-single 3-gate-batch100 3-gate-batch1000)
[ "$tmpfs_ran" = 1 ] && order+=(3-gate-batch1000-audit-tmpfs)
order+=(4-gate-open-half 5-gate-open-half-writes)
files=()
for label in "${order[@]}"; do files+=("$results/$label.json"); done
baseline_rate=$("$LT" get "$results/1-baseline-single.json" /throughput/requests_per_s)
ratio=$(awk -v g="$max_rate" -v b="$baseline_rate" 'BEGIN { printf "%.2f", g / b }')
machine_facts
audit_unrecorded=$(sed -n 's/^claimgate_audit_rejects_unrecorded_total \([0-9]*\)$/\1/p' "$logs/gate-metrics.txt")
audit_written=$(sed -n 's/^claimgate_audit_written_total \([0-9]*\)$/\1/p' "$logs/gate-metrics.txt")
# The decision log's cost under batches of 1,000 (each batch's rejects wait for one fsync).
get_or_0() { "$LT" get "$1" "$2" 2>/dev/null || echo 0; }
b1000=$(get_or_0 "$results/3-gate-batch1000.json" /throughput/lines_per_s)
b1000_unrecorded=$(get_or_0 "$results/3-gate-batch1000.json" /server_counters/claimgate_audit_rejects_unrecorded_total)
b1000_written=$(get_or_0 "$results/3-gate-batch1000.json" /server_counters/claimgate_audit_written_total)
b1000_rejects=$(get_or_0 "$results/3-gate-batch1000.json" /verdicts/reject)
b1000_exempt=$(get_or_0 "$results/3-gate-batch1000.json" /reasons/emergency_exemption)
if [ "$tmpfs_ran" = 1 ]; then
    b1000_tmpfs=$(get_or_0 "$results/3-gate-batch1000-audit-tmpfs.json" /throughput/lines_per_s)
    audit_ratio=$(awk -v d="$b1000" -v t="$b1000_tmpfs" 'BEGIN { if (t > 0) printf "%.2f", d / t; else print "?" }')
fi

section=$results/section.md
{
    heading="## HTTP load (issue 5)"
    if needs_heading run.sh; then
        echo
        echo "$heading"
        echo
        echo "\`loadtest/run.sh\` drives \`claimgate demo\` over loopback HTTP with the \`loadtest\` crate: raw"
        echo "HTTP/1.1 on keep-alive connections (one task each), a request pool drawn from the demo's"
        echo "population before the run (about 94% practitioners without violations at one of their"
        echo "institutions on a day of 2024-2026, 3% unknown codes, 2% suspended, 1% terminated on"
        echo "2026-06-15, 5% flagged emergencies), latencies in HdrHistogram. Closed loop: each connection"
        echo "sends when its previous answer arrives, latency from the send. Open loop: requests due at a"
        echo "fixed rate, released by a pacer thread, latency from the *intended* send time, so a stall"
        echo "shows in the percentiles instead of slowing the generator (no coordinated omission). The"
        echo "baseline is \`loadtest baseline\`: the gate's stack (tokio, hyper http1, keep-alive, mimalloc)"
        echo "answering a fixed check-sized JSON body with no work. Freshness: for each acknowledged"
        echo "write, the time from its ack to the first check answer carrying a \`seq\` at least as high."
    fi
    echo
    echo "### $today: $practitioners practitioners, $duration s per scenario$([ "$quick" = 1 ] && echo " (--quick)")"
    echo
    echo "Machine: $cores cores ($model), $mem GiB (free -g), $today. **The generator and the server"
    echo "share these $cores cores**: every throughput here is what the pair reaches, not the gate alone;"
    echo "the last column shows the CPU seconds each used (of cores x elapsed). Generator: 1 runtime"
    echo "thread, plus a pacer thread in open loop. Data: $reused demo directory, ledger at seq"
    echo "$start_seq when the gate started. Reports: \`$results/\`."
    echo
    "$LT" markdown "${files[@]}"
    echo
    echo "Gate / baseline throughput, closed loop, single lines: **$ratio** ($(printf '%.0f' "$max_rate") vs"
    echo "$(printf '%.0f' "$baseline_rate") requests/s). Scenarios 4 and 5 run at half of scenario 2's rate"
    echo "($half requests/s); 5 adds $write_rate admin events/s (70% one-point minor violations with fresh"
    echo "ids for practitioners of the mix; then per 10 events a new practitioner's registration, a"
    echo "violation and a one-point repair for them: see loadtest/README.md). Gate counters are"
    echo "deltas of its \`/metrics\` over each scenario; before each gate scenario run.sh waits for the"
    echo "gate's audit queue to empty. Gate totals after the runs (since its last start): decision records"
    echo "written ${audit_written:-?}, rejects unrecorded ${audit_unrecorded:-?}."
    echo
    echo "Decision log (R19: a reject or an exemption is answered only once its record is fsynced):"
    echo "batches of 1,000 reached $(printf '%.0f' "$b1000") lines/s with the log on this machine's disk,"
    echo "answering $(printf '%.0f' "$b1000_rejects") rejects and $(printf '%.0f' "$b1000_exempt") exemptions;"
    echo "the gate wrote $(printf '%.0f' "$b1000_written") records meanwhile and left $(printf '%.0f' "$b1000_unrecorded") rejects unrecorded."
    if [ "$tmpfs_ran" = 1 ]; then
        echo "With the log on a tmpfs (the gate restarted with \`--audit-dir /dev/shm/...\`): $(printf '%.0f' "$b1000_tmpfs")"
        echo "lines/s; disk / tmpfs = **$audit_ratio**."
    fi
    echo "The open-loop rows give the latency of single lines by their answer (ok lines never wait)."
} >"$section"

publish_section "$section" "$append" run.sh
