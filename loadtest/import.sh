#!/usr/bin/env bash
# Import rate (issue 15): roster files of the synthetic population imported
# into a new ledger, embedded and on PostgreSQL, rounds alternated.
#
# Usage: loadtest/import.sh [--practitioners N] [--postgres-practitioners M] [--rounds R]
#                           [--postgres-rounds P] [--postgres URL] [--no-append]
#
#   --practitioners N           population of the embedded runs (default 1,000,000)
#   --postgres-practitioners M  population of the PostgreSQL runs (default 100,000;
#                               0 skips them)
#   --rounds R                  rounds of (embedded, PostgreSQL), medians reported (default 3)
#   --postgres-rounds P         PostgreSQL runs only in the first P rounds (default R)
#   --postgres URL              the server (default postgres://postgres@127.0.0.1:5432/test;
#                               each run gets a fresh schema, dropped afterwards)
#   --no-append                 leave BENCHMARKS.md as it is (by default this run's figures
#                               replace the previous run's there)
#
# Builds the release binary, writes the rosters once (`claimgate roster`, kept in
# target/loadtest/roster-N), and times `claimgate import` of both files into a new
# embedded data directory and into a new PostgreSQL schema. Writes its report to
# loadtest/results/<stamp>/ and its figures into BENCHMARKS.md. Talks only to
# 127.0.0.1; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

practitioners=1000000 pg_practitioners=100000 rounds=3 pg_rounds="" pg="postgres://postgres@127.0.0.1:5432/test" append=1
while [ $# -gt 0 ]; do
    case "$1" in
        --practitioners) practitioners=$2; shift ;;
        --postgres-practitioners) pg_practitioners=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --postgres-rounds) pg_rounds=$2; shift ;;
        --postgres) pg=$2; shift ;;
        --no-append) append=0 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "import.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
pg_rounds=${pg_rounds:-$rounds}
me=import.sh
. loadtest/lib.sh
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=loadtest/results/$stamp
mkdir -p "$results"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== building (release)"
cargo build --release --quiet -p claimgate --bin claimgate
B=target/release/claimgate

roster() {
    local n=$1 dir=target/loadtest/roster-$1
    if [ ! -f "$dir/registrations.csv" ]; then
        "$B" roster --practitioners "$n" --out "$dir" >/dev/null 2>"$work/roster.err"
    fi
    echo "$dir"
}

# Times one import; prints "seconds events".
timed_import() {
    local out=$work/import.json start end
    start=$(date +%s.%N)
    "$@" >"$out" 2>"$work/import.err" || { echo "import.sh: the import failed:" >&2; tail -5 "$work/import.err" >&2; exit 1; }
    end=$(date +%s.%N)
    echo "$(echo "$end - $start" | bc) $(sed -n 's/.*"appended":\([0-9]*\).*/\1/p' "$out")"
}

median() { sort -n | awk '{v[NR]=$1} END {printf "%.1f\n", (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

embedded_roster=$(roster "$practitioners")
rows_embedded=$(($(wc -l <"$embedded_roster/institutions.csv") + $(wc -l <"$embedded_roster/registrations.csv") - 2))
if [ "$pg_practitioners" != 0 ]; then
    pg_roster=$(roster "$pg_practitioners")
    rows_pg=$(($(wc -l <"$pg_roster/institutions.csv") + $(wc -l <"$pg_roster/registrations.csv") - 2))
    pg_isready -h 127.0.0.1 -p 5432 -q || { echo "import.sh: PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }
fi
: >"$results/embedded.txt"
: >"$results/postgres.txt"
for round in $(seq "$rounds"); do
    rm -rf "$work/data"
    "$B" init --data "$work/data" >/dev/null
    read -r secs events < <(timed_import "$B" import --data "$work/data" --rejects "$work/rejects.csv" \
        "$embedded_roster/institutions.csv" "$embedded_roster/registrations.csv")
    echo "$secs $events" >>"$results/embedded.txt"
    echo "round $round: embedded, $events events in $secs s"
    if [ "$pg_practitioners" != 0 ] && [ "$round" -le "$pg_rounds" ]; then
        schema=import_bench_${stamp,,}_$round
        read -r secs events < <(timed_import "$B" --store "$pg?schema=$schema" import --rejects "$work/rejects.csv" \
            "$pg_roster/institutions.csv" "$pg_roster/registrations.csv")
        psql "$pg" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
        echo "$secs $events" >>"$results/postgres.txt"
        echo "round $round: PostgreSQL, $events events in $secs s"
    fi
done

machine_facts
figures() { # file -> "median seconds, events, events/s"
    local s e
    s=$(cut -d' ' -f1 "$1" | median)
    e=$(head -1 "$1" | cut -d' ' -f2)
    echo "$s $e $(awk -v e="$e" -v s="$s" 'BEGIN {printf "%.0f", e / s}')"
}
read -r es ee er < <(figures "$results/embedded.txt")
section=$results/section.md
{
    if needs_heading import.sh; then
        echo
        echo "## Roster import (issue 15)"
        echo
        echo "\`loadtest/import.sh\` writes roster files of the synthetic population (\`claimgate roster\`:"
        echo "a row per designation and per registration) and times \`claimgate import\` of both into a new"
        echo "embedded ledger and a new PostgreSQL schema, rounds alternated; medians. Into an empty ledger"
        echo "the import is one bulk load: every row passes R8 in file order (facts from memory), rows are"
        echo "written without the secondary indexes, which are built at the end."
    fi
    echo
    echo "### $today: $rounds rounds embedded, $pg_rounds PostgreSQL"
    echo
    echo "Machine: $cores cores ($model), $mem GiB (free -g), $today, release build; PostgreSQL on the same"
    echo "machine. Reports: \`$results/\` (not committed)."
    echo
    echo "| ledger | practitioners | rows | events | runs | median s | events/s |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    echo "| embedded | $practitioners | $rows_embedded | $ee | $rounds | $es | $er |"
    if [ "$pg_practitioners" != 0 ]; then
        read -r ps pe pr < <(figures "$results/postgres.txt")
        echo "| PostgreSQL | $pg_practitioners | $rows_pg | $pe | $pg_rounds | $ps | $pr |"
    fi
} >"$section"
publish_section "$section" "$append" import.sh
