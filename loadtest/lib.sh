# Shell functions shared by the loadtest scripts (sourced, not run): the processes
# a script started, stopping them, starting a gate, reading a field of its listening
# line, waiting for a server to listen or go quiet.
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

# The text value of JSON field $2 in file $1 (the first), e.g. a gate's "admin" address.
field() { sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p" "$1" | head -1; }

# Starts a gate on free loopback ports: a name (its logs are $logs/NAME.out and
# .err), then claimgate's arguments; runs $GATE, sets $pid, waits until it listens.
start_gate() {
    local name=$1
    shift
    "$GATE" "$@" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 >"$logs/$name.out" 2>"$logs/$name.err" &
    pid=$!
    pids+=("$pid")
    wait_listening "$logs/$name.out" "$pid" 600
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

# CPU ticks (user + system, every thread) a process has used so far.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# Waits until the processes $@ are quiet (together under 5 ticks, 50 ms, of
# CPU in a 0.5 s window: a previous scenario's background work, such as an
# index merge, done), up to 60 s; says so and goes on if they never are.
wait_quiet() {
    local before after pid
    for _ in $(seq 1 120); do
        before=0 after=0
        for pid in "$@"; do before=$((before + $(cpu_ticks "$pid"))); done
        sleep 0.5
        for pid in "$@"; do after=$((after + $(cpu_ticks "$pid"))); done
        [ $((after - before)) -lt 5 ] && return 0
    done
    echo "$me: the servers were still busy after 60 s; measuring anyway" >&2
}

# Sets cores, mem (GiB), model and today (UTC date), for a BENCHMARKS.md section.
machine_facts() {
    cores=$(nproc)
    mem=$(free -g | awk '/Mem:/ {print $2}')
    model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
    today=$(date -u +%Y-%m-%d)
}

# The markers around a script's figures in BENCHMARKS.md: each run replaces
# what lies between them, so the file reports the current figures (run
# history stays in loadtest/results/, which git ignores).
figures_begin() { echo "<!-- $1: the latest figures, replaced by each run -->"; }
figures_end() { echo "<!-- end of $1's figures -->"; }

# True when BENCHMARKS.md holds no figures of script $1 yet: the section must
# then bring its "## " heading and introduction (kept outside the markers).
needs_heading() {
    ! grep -qF "$(figures_begin "$1")" BENCHMARKS.md 2>/dev/null
}

# publish_section FILE WRITE NAME: puts the section in FILE into BENCHMARKS.md
# as script NAME's current figures (replacing its previous ones; the first
# time, appended with the heading and introduction before the first "### "
# line left outside the markers), unless WRITE is 0; prints it either way.
publish_section() {
    local file=$1 write=$2 name=$3 begin end tmp
    if [ "$write" = 0 ]; then
        echo "== section written to $file (BENCHMARKS.md untouched: --no-append)"
        cat "$file"
        return
    fi
    begin=$(figures_begin "$name")
    end=$(figures_end "$name")
    tmp=$(mktemp)
    if grep -qF "$begin" BENCHMARKS.md; then
        awk -v b="$begin" -v e="$end" -v f="$file" '
            $0 == b { print; while ((getline line < f) > 0) print line; print ""; skip = 1; next }
            $0 == e { skip = 0 }
            !skip { print }
        ' BENCHMARKS.md >"$tmp"
        echo "== BENCHMARKS.md: $name's figures replaced by this run's (also in $file)"
    else
        cat BENCHMARKS.md >"$tmp"
        awk -v b="$begin" -v e="$end" '
            /^### / && !body { print b; print ""; body = 1 }
            { print }
            END { if (body) { print ""; print e } }
        ' "$file" >>"$tmp"
        echo "== BENCHMARKS.md: $name's figures appended (also in $file)"
    fi
    mv "$tmp" BENCHMARKS.md
    cat "$file"
}
