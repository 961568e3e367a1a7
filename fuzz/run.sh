#!/usr/bin/env bash
# Coverage-guided fuzzing campaign over claimgate's boundaries (issue 8).
#
#   fuzz/run.sh [SECONDS_PER_TARGET]        (default 60)
#
# Installs cargo-fuzz if missing, seeds the corpora from the spec cases
# (fuzz/seed.py), builds the targets, runs each for SECONDS_PER_TARGET with
# bounded memory and a per-input timeout, and prints per target the inputs
# executed (libFuzzer's final stats), the seconds, the crashes found (new
# artifacts in fuzz/artifacts/<target>/) and the corpus size, then a total.
# Exits non-zero if any target crashed. Stops by itself.
#
# Environment:
#   FUZZ_TARGETS    targets to run (default: all four)
#   FUZZ_SANITIZER  address (default) or none: none runs ~2x faster, but
#                   -malloc_limit_mb is then not enforced (no malloc hooks)
#   FUZZ_LOG_DIR    where each target's libFuzzer log goes (default fuzz/runs/<time>)
#
# Only the stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass
# its nightly flags (-Zsanitizer, coverage instrumentation) to stable rustc.
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
TARGETS=(${FUZZ_TARGETS:-check_request event snapshot snapshot_payload})
SANITIZER="${FUZZ_SANITIZER:-address}"
# Memory and time bounds per input (the issue's campaign settings).
RSS_LIMIT_MB=2048
MALLOC_LIMIT_MB=1024
INPUT_TIMEOUT_SECONDS=10
# Extra wall time a target may take beyond its budget (start-up, final merge
# of the corpus) before it is interrupted.
GRACE_SECONDS=120

if ! [[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: fuzz/run.sh [SECONDS_PER_TARGET]" >&2
    exit 2
fi

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$FUZZ_DIR")"
cd "$ROOT"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "== seeding corpora from the spec cases"
cargo build --quiet --bin claimgate
python3 "$FUZZ_DIR/seed.py" "$ROOT/target/debug/claimgate"

echo "== building targets (sanitizer: $SANITIZER)"
cargo fuzz build --sanitizer "$SANITIZER"

LOG_DIR="${FUZZ_LOG_DIR:-$FUZZ_DIR/runs/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$LOG_DIR"
echo "== fuzzing ${#TARGETS[@]} targets, ${SECONDS_PER_TARGET} s each; logs in $LOG_DIR"

total_inputs=0
total_crashes=0
total_seconds=0
summary=()
for target in "${TARGETS[@]}"; do
    artifacts="$FUZZ_DIR/artifacts/$target"
    mkdir -p "$artifacts" "$FUZZ_DIR/corpus/$target"
    before=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    started=$(date +%s)
    set +e
    timeout --signal=INT --kill-after=30 $((SECONDS_PER_TARGET + GRACE_SECONDS)) \
        cargo fuzz run --sanitizer "$SANITIZER" "$target" "$FUZZ_DIR/corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" \
        -rss_limit_mb="$RSS_LIMIT_MB" -malloc_limit_mb="$MALLOC_LIMIT_MB" \
        -timeout="$INPUT_TIMEOUT_SECONDS" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$LOG_DIR/$target.log" 2>&1
    status=$?
    set -e
    seconds=$(($(date +%s) - started))
    inputs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$LOG_DIR/$target.log" | tail -n 1 | grep -o '[0-9]*$' || true)
    inputs=${inputs:-0}
    after=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    crashes=$((after - before))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        echo "$target: libFuzzer exited $status without an artifact; see $LOG_DIR/$target.log" >&2
        crashes=1
    fi
    corpus=$(find "$FUZZ_DIR/corpus/$target" -type f | wc -l)
    # libFuzzer's own (reduced, in-memory) corpus and edge coverage at the end.
    active=$(grep -o 'DONE .*corp: [0-9]*' "$LOG_DIR/$target.log" | tail -n 1 | grep -o '[0-9]*$' || true)
    cov=$(grep -o 'DONE *cov: [0-9]*' "$LOG_DIR/$target.log" | tail -n 1 | grep -o '[0-9]*$' || true)
    line=$(printf '%-17s inputs %12d  seconds %6d  crashes %3d  corpus %6d files (%s active)  cov %s  sanitizer %s' \
        "$target" "$inputs" "$seconds" "$crashes" "$corpus" "${active:-?}" "${cov:-?}" "$SANITIZER")
    echo "$line"
    summary+=("$line")
    total_inputs=$((total_inputs + inputs))
    total_crashes=$((total_crashes + crashes))
    total_seconds=$((total_seconds + seconds))
done

echo "== summary ($(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ))"
printf '%s\n' "${summary[@]}"
printf '%-17s inputs %12d  seconds %6d  crashes %3d\n' total "$total_inputs" "$total_seconds" "$total_crashes"
if [ "$total_crashes" -gt 0 ]; then
    echo "crash inputs are under $FUZZ_DIR/artifacts/<target>/; replay one with" >&2
    echo "  RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>" >&2
    exit 1
fi
