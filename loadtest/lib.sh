# Shell functions shared by loadtest/run.sh and loadtest/nodes.sh (sourced, not run):
# the processes a script started, stopping them, and waiting for a server to listen.
# Messages name the script: set `me` before sourcing.

# Process ids of everything the script started, stopped by stop_started.
pids=()

# Sends SIGTERM to every started process, waits up to 15 s for each, then SIGKILL.
stop_started() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# Waits for a {"listening":...} line on a process's stdout (file $1, pid $2, up to $3 s);
# exits with the process's stderr (file $1 with .err for .out) if it stops first.
wait_listening() {
    local out=$1 pid=$2 limit=$3
    for _ in $(seq 1 $((limit * 10))); do
        if grep -q '"listening"' "$out" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$me: the process writing $out exited before listening; its stderr:" >&2
            tail -20 "${out%.out}.err" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    echo "$me: no listening line in $out after $limit s" >&2
    exit 1
}

# Sets cores, mem (GiB), model and today (UTC date), for a BENCHMARKS.md section.
machine_facts() {
    cores=$(nproc)
    mem=$(free -g | awk '/Mem:/ {print $2}')
    model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
    today=$(date -u +%Y-%m-%d)
}

# True when BENCHMARKS.md's last "## " heading is not $1: the section must start with it.
needs_heading() {
    [ "$(grep '^## ' BENCHMARKS.md 2>/dev/null | tail -1 || true)" != "$1" ]
}

# Appends the section file $1 to BENCHMARKS.md unless $2 is 0, and prints it.
publish_section() {
    if [ "$2" != 0 ]; then
        cat "$1" >>BENCHMARKS.md
        echo "== appended to BENCHMARKS.md (also in $1)"
    else
        echo "== section written to $1 (BENCHMARKS.md untouched: --no-append)"
    fi
    cat "$1"
}
