#!/usr/bin/env bash
# Export then restore at scale (issue 15): a demo ledger of N practitioners
# exported, restored into a new embedded ledger and into a new PostgreSQL
# schema, each restored ledger exported again and compared with the first
# export byte for byte (the same events at the same seqs, event by event),
# and a sample of claim lines answered by all three ledgers compared answer
# by answer. The spec cases' round trips are tests (tests/transfer.rs).
#
# Usage: loadtest/roundtrip.sh [--practitioners N] [--sample K] [--postgres URL]
#
#   --practitioners N  the demo population (default 1,000,000)
#   --sample K         claim lines answered by each ledger (default 300)
#   --postgres URL     the server (default postgres://postgres@127.0.0.1:5432/test;
#                      a fresh schema, dropped afterwards); it must be on this machine
#
# Prints the timings and the verdict; exits 1 if anything differs. Talks only to
# 127.0.0.1; stops by itself; removes what it made.
set -euo pipefail
cd "$(dirname "$0")/.."

practitioners=1000000 sample=300 pg="postgres://postgres@127.0.0.1:5432/test"
while [ $# -gt 0 ]; do
    case "$1" in
        --practitioners) practitioners=$2; shift ;;
        --sample) sample=$2; shift ;;
        --postgres) pg=$2; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "roundtrip.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$pg" in *@127.0.0.1[:/]* | *@localhost[:/]* | *@\[::1\][:/]*) ;; *) echo "roundtrip.sh: --postgres must be on this machine" >&2; exit 2 ;; esac
work=$(mktemp -d)
schema=roundtrip_$(date -u +%Y%m%dt%H%M%S)
demo_pid=
cleanup() {
    [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null || true
    psql "$pg" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== building (release)"
cargo build --release --quiet -p claimgate --bin claimgate
B=$PWD/target/release/claimgate
# timed LOG cmd...: runs cmd, its output to LOG (failing loudly), and prints the seconds it took.
timed() {
    local log=$1 s e; shift
    s=$(date +%s.%N)
    "$@" >"$log" 2>&1 || { echo "roundtrip.sh: $* failed:" >&2; tail -5 "$log" >&2; exit 1; }
    e=$(date +%s.%N)
    printf '%.1f' "$(echo "$e - $s" | bc)"
}

echo "== the demo ledger: $practitioners practitioners (generated, served until ready, stopped)"
"$B" demo --practitioners "$practitioners" --data "$work/demo" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    >"$work/demo.out" 2>"$work/demo.err" &
demo_pid=$!
for _ in $(seq 1 1800); do
    grep -q "^claimgate demo: a generated national population, served" "$work/demo.out" 2>/dev/null && break
    kill -0 "$demo_pid" 2>/dev/null || { echo "roundtrip.sh: the demo stopped:" >&2; tail -5 "$work/demo.err" >&2; exit 1; }
    sleep 1
done
kill -TERM "$demo_pid"; wait "$demo_pid" || true; demo_pid=

echo "== export"
t_export=$(timed "$work/export.log" "$B" export --data "$work/demo" --output "$work/original.jsonl")
events=$(wc -l <"$work/original.jsonl")
echo "   $events events in $t_export s"

echo "== restore into a new embedded ledger, export it again"
t_restore_e=$(timed "$work/restore.log" "$B" restore --data "$work/restored" "$work/original.jsonl")
"$B" export --data "$work/restored" --output "$work/restored.jsonl" 2>/dev/null
echo "   restored in $t_restore_e s"

echo "== restore into a new PostgreSQL schema, export it again"
url="$pg?schema=$schema"
t_restore_p=$(timed "$work/restore-pg.log" "$B" --store "$url" restore "$work/original.jsonl")
"$B" --store "$url" export --output "$work/postgres.jsonl" 2>/dev/null
echo "   restored in $t_restore_p s"

verdict=0
for copy in restored postgres; do
    if cmp -s "$work/original.jsonl" "$work/$copy.jsonl"; then
        echo "   $copy: identical to the original, event by event ($events lines)"
    else
        echo "   $copy: DIFFERS from the original:"; cmp "$work/original.jsonl" "$work/$copy.jsonl" | head -3; verdict=1
    fi
done

echo "== $sample claim lines answered by the three ledgers"
# Registrations and violations of the original (so sanctions are among the
# answers), spread over the file; dates in the demo's years.
grep -E '"type":"(practitioner_registered|violation_scored)"' "$work/original.jsonl" \
    | awk -v n="$sample" -v total="$events" 'NR % int(total / (3 * n) + 1) == 0 && kept < n { kept++; print }' \
    | sed -n 's/.*"practitioner":"\([^"]*\)","institution":"\([^"]*\)".*/\1 \2/p' >"$work/lines"
dates=(2024-03-01 2025-06-15 2026-11-20)
i=0
while read -r p h; do
    d=${dates[$((i % 3))]}; i=$((i + 1))
    for copy in demo restored; do
        "$B" check --data "$work/$copy" --practitioner "$p" --institution "$h" --date "$d" >>"$work/answers-$copy" 2>&1 </dev/null || true
    done
    "$B" --store "$url" check --practitioner "$p" --institution "$h" --date "$d" >>"$work/answers-postgres" 2>&1 </dev/null || true
done <"$work/lines"
lines=$(wc -l <"$work/lines")
for copy in restored postgres; do
    if cmp -s "$work/answers-demo" "$work/answers-$copy"; then
        echo "   $copy: the same $lines answers"
    else
        echo "   $copy: DIFFERENT answers:"; diff "$work/answers-demo" "$work/answers-$copy" | head -5; verdict=1
    fi
done
echo "   verdicts in the sample: $(grep -o '"verdict":"[a-z]*"' "$work/answers-demo" | sort | uniq -c | tr '\n' ' ')"
echo "   reasons in the sample: $(grep -o '"reason":"[a-z_]*"' "$work/answers-demo" | sort | uniq -c | tr '\n' ' ')"
[ "$verdict" = 0 ] && echo "roundtrip.sh: passed" || echo "roundtrip.sh: FAILED"
exit "$verdict"
