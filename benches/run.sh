#!/usr/bin/env bash
# Index benchmarks at scale. Usage: benches/run.sh [PRACTITIONERS...]
# (default: 1000000 20000000). Prints criterion's check latencies and the
# one-shot figures (build, bytes, snapshot, delta, merge) as JSON lines.
# Needs about 4 GiB of memory per 20M practitioners; runs only on this machine
# (no network), bounded by the timeouts below.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000 20000000)
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(lscpu | sed -n 's/^Model name: *//p')"
for n in "${sizes[@]}"; do
    echo "== $n practitioners: figures"
    timeout 900 cargo bench --quiet --bench index_figures -- "$n"
    echo "== $n practitioners: check latency (criterion)"
    CLAIMGATE_BENCH_PRACTITIONERS="$n" timeout 1200 cargo bench --quiet --bench check -- --measurement-time 5 \
        2>&1 | grep -E "^check|time:|thrpt:|population"
done
