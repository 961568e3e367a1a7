#!/usr/bin/env bash
# Issue 15's acceptance at scale: a registration roster of about a million rows
# with planted bad rows, imported into a new embedded ledger and a new
# PostgreSQL schema. Exactly the planted rows must be in the reject file, with
# their line numbers and error codes; every other row imported; a second run
# imports 0 events; an import killed (-9) mid-way and run again leaves the
# complete ledger with no event twice.
#
# Usage: loadtest/planted.sh [--practitioners N] [--postgres URL]
#
#   --practitioners N  the roster's population (default 700,000: about 1,000,000
#                      registration rows)
#   --postgres URL     the server (default postgres://postgres@127.0.0.1:5432/test;
#                      fresh schemas, dropped afterwards); it must be on this machine
#
# Prints what it checked; exits 1 on the first check that fails. Talks only to
# 127.0.0.1; stops by itself; removes what it made (the roster is kept in
# target/loadtest/).
set -euo pipefail
cd "$(dirname "$0")/.."

practitioners=700000 pg="postgres://postgres@127.0.0.1:5432/test"
while [ $# -gt 0 ]; do
    case "$1" in
        --practitioners) practitioners=$2; shift ;;
        --postgres) pg=$2; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "planted.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$pg" in *@127.0.0.1[:/]* | *@localhost[:/]* | *@\[::1\][:/]*) ;; *) echo "planted.sh: --postgres must be on this machine" >&2; exit 2 ;; esac
work=$(mktemp -d)
stamp=$(date -u +%Y%m%dt%H%M%S)
cleanup() {
    for s in planted_a_$stamp planted_b_$stamp; do psql "$pg" -qc "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "planted.sh: FAILED: $*" >&2; exit 1; }

cargo build --release --quiet -p claimgate --bin claimgate
B=$PWD/target/release/claimgate
roster=target/loadtest/roster-$practitioners
[ -f "$roster/registrations.csv" ] || "$B" roster --practitioners "$practitioners" --out "$roster" >/dev/null 2>&1
rows=$(($(wc -l <"$roster/registrations.csv") - 1))
echo "== $rows registration rows ($roster), bad rows planted on these lines:"
# line:expected code:column:the row that replaces it (header is line 1)
planted=(
    "1000:unknown_institution:fixmedins_code:D110105999001,H99999999999,2022-03-01 00:00:00,"
    "123457:invalid_request:prac_psn_code:DX,H11010500001,2022-03-01 00:00:00,"
    "400000:invalid_request:begntime:D110105999002,H11010500001,2022-13-40 00:00:00,"
    "654321:invalid_request:endtime:D110105999003,H11010500001,2022-03-01 00:00:00,2021-01-01 00:00:00"
    "$((rows - 5)):invalid_request:fixmedins_code:D110105999004,,2022-03-01 00:00:00,"
)
awk_script='BEGIN { FS = "\t" } NR == FNR { bad[$1] = $2; next } (FNR in bad) { print bad[FNR]; next } { print }'
for p in "${planted[@]}"; do
    IFS=: read -r line code column row <<<"$p"
    printf '%s\t%s\n' "$line" "$row"
    echo "   line $line: $code ($column)" >&2
done >"$work/bad.tsv"
awk "$awk_script" "$work/bad.tsv" "$roster/registrations.csv" >"$work/registrations.csv"
expected=$(for p in "${planted[@]}"; do IFS=: read -r line code column _ <<<"$p"; echo "$line,$column,$code"; done | sort -n)

run() { # name, then import arguments: runs it, prints the summary; exit 0 or 3 expected
    local name=$1; shift
    set +e; "$B" "$@" >"$work/$name.json" 2>"$work/$name.err"; local rc=$?; set -e
    [ "$rc" = 0 ] || [ "$rc" = 3 ] || { tail -5 "$work/$name.err" >&2; fail "$name exited $rc"; }
    cat "$work/$name.json"
}
check_rejects() { # reject file -> compares line,column,code with the planted rows
    local got
    got=$(tail -n +2 "$1" | cut -d, -f2-4 | sort -n)
    [ "$got" = "$expected" ] || { echo "got:"; echo "$got"; echo "expected:"; echo "$expected"; fail "the reject file is not exactly the planted rows"; }
}
field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$work/$2.json"; }
files=("$roster/institutions.csv" "$work/registrations.csv")
institution_rows=$(($(wc -l <"$roster/institutions.csv") - 1))

for store in embedded postgres; do
    echo "== $store"
    # Each ledger as the arguments before and after the subcommand (--store is global, --data not).
    if [ "$store" = embedded ]; then
        a=() a_=(--data "$work/a") b=() b_=(--data "$work/b") init=(--init)
    else
        a=(--store "$pg?schema=planted_a_$stamp") a_=() b=(--store "$pg?schema=planted_b_$stamp") b_=() init=()
    fi
    start=$(date +%s.%N)
    run first "${a[@]}" import "${a_[@]}" "${init[@]}" --rejects "$work/rejects.csv" "${files[@]}" >/dev/null
    echo "   first run: $(cat "$work/first.json") in $(echo "$(date +%s.%N) - $start" | bc | cut -c1-6) s"
    check_rejects "$work/rejects.csv"
    [ "$(field refused first)" = "${#planted[@]}" ] || fail "refused is not ${#planted[@]}"
    [ "$(field rows first)" = "$((rows + institution_rows))" ] || fail "not every row was read"
    appended=$(field appended first)
    echo "   the reject file holds exactly the ${#planted[@]} planted rows, with their lines, columns and codes"
    run second "${a[@]}" import "${a_[@]}" --rejects "$work/rejects2.csv" "${files[@]}" >/dev/null
    [ "$(field appended second)" = 0 ] || fail "the second run appended $(field appended second)"
    [ "$(field already_recorded second)" = "$appended" ] || fail "the second run did not recognise every event"
    check_rejects "$work/rejects2.csv"
    echo "   second run: 0 appended, $appended already recorded, the same rejects"

    # Killed mid-way (into an empty ledger: one bulk load, so nothing is left), then again.
    [ "$store" = embedded ] && "$B" init --data "$work/b" >/dev/null
    "$B" "${b[@]}" import "${b_[@]}" --rejects "$work/rejects3.csv" "${files[@]}" >/dev/null 2>&1 &
    pid=$!
    sleep 3
    kill -0 "$pid" 2>/dev/null || fail "the import to kill had already ended: use a larger roster"
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true
    run third "${b[@]}" import "${b_[@]}" --rejects "$work/rejects3.csv" "${files[@]}" >/dev/null
    [ "$(field appended third)" = "$appended" ] || fail "after the kill, the rerun appended $(field appended third), not $appended"
    "$B" "${b[@]}" export "${b_[@]}" --output "$work/b.jsonl" 2>/dev/null
    "$B" "${a[@]}" export "${a_[@]}" --output "$work/a.jsonl" 2>/dev/null
    [ "$(wc -l <"$work/b.jsonl")" = "$appended" ] || fail "the killed-then-rerun ledger has $(wc -l <"$work/b.jsonl") events"
    dupes=$(grep -o '"event_id":"[^"]*"' "$work/b.jsonl" | sort | uniq -d | wc -l)
    [ "$dupes" = 0 ] || fail "$dupes event_ids twice"
    cmp -s "$work/a.jsonl" "$work/b.jsonl" || fail "the killed-then-rerun ledger differs from the first"
    echo "   killed (-9) after 3 s, run again: $appended events, none twice, identical to the first ledger"
done
echo "planted.sh: passed"
