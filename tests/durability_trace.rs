//! Durability checked on the real binary (issue 13, item 5): `claimgate
//! serve` runs under `strace`, and for every acknowledged append and every
//! answered emergency exemption and reject the trace must show, in order:
//! the write of that event's (decision's) bytes to its file, an
//! `fsync`/`fdatasync` of that same file that returned 0, and only after it
//! completed the first write of the answer to the client's socket. A kill -9
//! keeps the page cache, so only the order of system calls shows that
//! `synchronous=FULL` or the audit log's fdatasync is really there.
//!
//! Each event carries a unique `event_id` and each decision a unique
//! `claim_id`, so its bytes are found in the write to the ledger's WAL page
//! or the audit segment, and its answer on the socket (`{"seq":N}` for an
//! append, the echoed `claim_id` for a check).
//!
//! `strace` is a Debian package: when it is missing the test runs
//! `.ci/ensure-strace` (apt-get, as root) and fails, naming the fix, if it
//! is still missing or ptrace is not permitted. It never skips.

mod common;

use common::server::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Acknowledged appends traced (after the set-up's own, which count too).
const APPENDS: usize = 30;
/// Checks answered `emergency_exemption`, and answered `reject`, traced.
const EXEMPTIONS: usize = 30;
const REJECTS: usize = 10;
/// Longest the traced gate may take to exit after SIGTERM (strace slows it).
const TRACED_EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of each written buffer strace prints: more than one SQLite page
/// (4,096 bytes) and any answer or audit group this test makes.
const STRACE_STRING_BYTES: &str = "16384";
/// The system calls traced: every way bytes reach a file or a socket, and
/// the two that make a file's bytes durable.
const TRACED_CALLS: &str = "trace=write,writev,pwrite64,pwritev,pwritev2,sendto,sendmsg,sendmmsg,fsync,fdatasync";
/// The calls that make a file's written bytes durable.
const SYNC_CALLS: &[&str] = &["fsync", "fdatasync"];
/// The calls that write bytes.
const WRITE_CALLS: &[&str] = &["write", "writev", "pwrite64", "pwritev", "pwritev2", "sendto", "sendmsg", "sendmmsg"];
/// The script that installs strace where it is missing.
const ENSURE_STRACE: &str = ".ci/ensure-strace";

/// The practitioner the set-up terminates, and its events (each acknowledged too).
const TERMINATED: &str = "D110105000003";
const SETUP_EVENTS: usize = 4;

// ---------------------------------------------------------------------------
// The trace.

/// One completed system call of the trace.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    pid: u32,
    name: String,
    /// What strace printed for the first argument's descriptor (`-yy`): a
    /// path, or `TCP:[a->b]` for a socket; empty when there is none.
    fd: String,
    /// Everything between the parentheses, as printed (strings escaped).
    args: String,
    /// The return value; `None` when strace printed `?` (the process died).
    ret: Option<i64>,
    /// Entry and return, in seconds since the epoch (`-ttt`, `-T`).
    start: f64,
    end: f64,
}

impl Call {
    fn is_socket(&self) -> bool {
        ["TCP:", "TCPv6:", "UNIX:", "socket:"].iter().any(|p| self.fd.starts_with(p))
    }
}

/// Parses `strace -f -ttt -T -yy` output into completed calls, in the order
/// they returned. A call another thread interrupted is printed as
/// `name(args <unfinished ...>` and later `<... name resumed>rest) = ...`
/// by the same pid: the two are joined, entry from the first line. Signals,
/// exits and anything else strace prints are skipped; a line that looks
/// like a call but cannot be read is an error (the trace would lie).
fn parse_trace(text: &str) -> Result<Vec<Call>, String> {
    let mut calls = Vec::new();
    let mut pending: HashMap<u32, (String, String, f64)> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |why: &str| format!("trace line {}: {why}: {}", n + 1, line.chars().take(200).collect::<String>());
        // `PID  TIME CALL...`: strace pads the pid with spaces.
        let Some((pid, rest)) = line.split_once(' ') else { continue };
        let Some((ts, rest)) = rest.trim_start().split_once(' ') else { continue };
        let (Ok(pid), Ok(ts)) = (pid.parse::<u32>(), ts.parse::<f64>()) else { continue };
        let rest = rest.trim_start();
        if rest.starts_with("+++") || rest.starts_with("---") {
            continue;
        }
        let (name, args_and_result, start) = if let Some(resumed) = rest.strip_prefix("<... ") {
            let (name, tail) = resumed.split_once(" resumed>").ok_or_else(|| bad("a resumed line without its name"))?;
            let Some((first_name, head, start)) = pending.remove(&pid) else {
                return Err(bad("resumed, but this pid had no unfinished call"));
            };
            if first_name != name {
                return Err(bad(&format!("resumes {name}, but the unfinished call was {first_name}")));
            }
            (first_name, format!("{head}{tail}"), start)
        } else {
            let Some(open) = rest.find('(') else { continue };
            let name = &rest[..open];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let body = &rest[open + 1..];
            if let Some(head) = body.strip_suffix(" <unfinished ...>") {
                pending.insert(pid, (name.to_owned(), head.to_owned(), ts));
                continue;
            }
            (name.to_owned(), body.to_owned(), ts)
        };
        // `ARGS) = RET <DURATION>`, or `ARGS) = ? <unavailable>`, or with an errno text.
        let close = args_and_result.rfind(") = ").ok_or_else(|| bad("no `) = ` before the result"))?;
        let args = args_and_result[..close].to_owned();
        let result = &args_and_result[close + 4..];
        let ret = match result.split(' ').next() {
            Some("?") => None,
            Some(r) => Some(r.parse::<i64>().map_err(|_| bad("an unreadable return value"))?),
            None => return Err(bad("no return value")),
        };
        let duration = match (result.rfind('<'), result.ends_with('>')) {
            (Some(at), true) => result[at + 1..result.len() - 1].parse::<f64>().ok(),
            _ => None,
        };
        let duration = match (ret, duration) {
            (_, Some(d)) => d,
            (None, None) => 0.0,
            (Some(_), None) => return Err(bad("no duration (-T)")),
        };
        // Returned at entry + duration; a resumed line's own time is when strace saw the return.
        let end = if start == ts { start + duration } else { ts.max(start + duration) };
        let fd = descriptor(&args);
        calls.push(Call { pid, name, fd, args, ret, start, end });
    }
    Ok(calls)
}

/// What `-yy` printed in angle brackets after the first argument's number
/// (`7</data/ledger.sqlite3-wal>` gives the path; nested brackets kept).
fn descriptor(args: &str) -> String {
    let digits = args.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || args.as_bytes().get(digits) != Some(&b'<') {
        return String::new();
    }
    let mut depth = 0;
    for (i, c) in args[digits..].char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    return args[digits + 1..digits + i].to_owned();
                }
            }
            _ => {}
        }
    }
    String::new()
}

/// A value written to a file and then answered on a socket.
#[derive(Debug)]
struct Expectation {
    what: String,
    /// Found in the write of the value's bytes to its file (as strace
    /// prints them).
    in_file: String,
    /// Which files may hold it.
    file: fn(&str) -> bool,
    /// Found in the answer's bytes on the socket, once the file write is done.
    in_answer: String,
}

/// For each expectation: its first file write, the first socket write of
/// its answer after that, and a successful fsync/fdatasync of that same
/// file entered after the file write returned and returned before the
/// answer's write was entered. Returns one line per violation, and for the
/// ones kept the shortest margin between sync return and answer (seconds).
fn violations(calls: &[Call], expected: &[Expectation]) -> (Vec<String>, f64) {
    let mut found = Vec::new();
    let mut margin = f64::INFINITY;
    for e in expected {
        let Some(data) = calls.iter().find(|c| {
            WRITE_CALLS.contains(&c.name.as_str())
                && (e.file)(&c.fd)
                && c.ret.is_some_and(|r| r > 0)
                && c.args.contains(&e.in_file)
        }) else {
            found.push(format!("{}: no write of {:?} to its file in the trace", e.what, e.in_file));
            continue;
        };
        let Some(answer) = calls
            .iter()
            .filter(|c| c.start >= data.end)
            .find(|c| WRITE_CALLS.contains(&c.name.as_str()) && c.is_socket() && contains_token(&c.args, &e.in_answer))
        else {
            found.push(format!("{}: no answer {:?} written to a socket after its file write", e.what, e.in_answer));
            continue;
        };
        let sync = calls
            .iter()
            .filter(|c| SYNC_CALLS.contains(&c.name.as_str()) && c.fd == data.fd && c.ret == Some(0))
            .filter(|c| c.start >= data.end && c.end <= answer.start)
            .min_by(|a, b| a.end.total_cmp(&b.end));
        match sync {
            Some(s) => margin = margin.min(answer.start - s.end),
            None => found.push(format!(
                "{}: written to {} at {:.6} (pid {}), answered at {:.6} (pid {}) with no fsync/fdatasync of that file \
                 completed between them",
                e.what, data.fd, data.end, data.pid, answer.start, answer.pid
            )),
        }
    }
    (found, margin)
}

/// Whether `text` holds `token` not followed by another digit (so `"seq":1`
/// is not found in `"seq":12`).
fn contains_token(text: &str, token: &str) -> bool {
    text.match_indices(token).any(|(at, _)| !text[at + token.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

// ---------------------------------------------------------------------------
// strace itself.

/// The strace binary, installing it with [`ENSURE_STRACE`] if missing;
/// panics naming the fix when it cannot be had or cannot trace here.
fn strace() -> PathBuf {
    let find = || {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("strace")).find(|p| p.is_file()))
    };
    let found = find().or_else(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(ENSURE_STRACE);
        let status = Command::new("bash").arg(&script).stdin(Stdio::null()).status();
        eprintln!("strace was missing: ran {} ({status:?})", script.display());
        find()
    });
    let Some(strace) = found else {
        panic!(
            "strace is not installed and {ENSURE_STRACE} could not install it: as root run \
             `apt-get update && apt-get install -y strace` (Debian), then run the tests again"
        );
    };
    let probe = Command::new(&strace)
        .args(["-f", "-o", "/dev/null", "-e", "trace=fsync", "true"])
        .stdin(Stdio::null())
        .output()
        .expect("running strace");
    assert!(
        probe.status.success(),
        "strace cannot trace here ({}): ptrace is not permitted. Run the tests as root or with CAP_SYS_PTRACE \
         (a container needs --cap-add=SYS_PTRACE and a seccomp profile that allows ptrace), or lower \
         kernel.yama.ptrace_scope",
        String::from_utf8_lossy(&probe.stderr).trim()
    );
    strace
}

/// The gate's own pid under strace (strace's child); SIGKILLed on drop, so
/// a failing test never leaves it running once strace is gone.
struct Traced(u32);

impl Traced {
    fn of(strace_pid: u32) -> Traced {
        let children = std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children"))
            .expect("reading strace's children");
        let pid = children.split_whitespace().next().and_then(|p| p.parse().ok()).expect("strace has a child");
        Traced(pid)
    }

    fn signal(&self, signal: &str) {
        let _ = Command::new("kill").args([signal, &self.0.to_string()]).status();
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        self.signal("-KILL");
    }
}

// ---------------------------------------------------------------------------
// The test.

#[test]
fn every_acknowledged_append_and_answered_decision_is_fsynced_before_its_answer_is_written() {
    let strace = strace();
    let data = tempfile::tempdir().unwrap();
    let root = data.path().canonicalize().unwrap();
    let trace_path = root.join("strace.out");
    let mut command = Command::new(&strace);
    command
        .args(["-f", "-ttt", "-T", "-yy", "-s", STRACE_STRING_BYTES, "-e", TRACED_CALLS, "-o"])
        .arg(&trace_path)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_claimgate"))
        .stderr(Stdio::inherit());
    let ledger = root.join("ledger");
    let mut server = Server::start_with(command, &ledger, &[]);
    let gate = Traced::of(server.child.id());

    // Acknowledged appends, each with an event_id of its own.
    let mut expected = Vec::new();
    let mut append = |event: Value, n: usize| {
        let id = format!("DT-EV-{n:04}");
        let seq = server.event(&with(event, "event_id", json!(id)));
        expected.push(Expectation {
            what: format!("append {id} (seq {seq})"),
            in_file: id,
            file: |fd| fd.ends_with("/ledger.sqlite3-wal") || fd.ends_with("/ledger.sqlite3"),
            in_answer: format!(r#"\"seq\":{seq}"#),
        });
        seq
    };
    append(designated(INST, "2024-01-01"), 0);
    append(registered(TERMINATED, INST, "2024-01-01"), 1);
    // 8 + 4 points in 2026: terminated (R15).
    append(violation("V-T1", TERMINATED, "2026-02-01", 8, "serious"), 2);
    let v2 = with(violation("V-T2", TERMINATED, "2026-03-01", 4, "moderate"), "responsibility", json!("important"));
    let mut head = append(v2, 3);
    for n in 0..APPENDS {
        head = append(registered(&format!("D1101051{n:05}"), INST, "2025-01-01"), SETUP_EVENTS + n);
    }

    // Decisions: emergency lines for the terminated practitioner are
    // exempted, the others rejected; each is recorded before it is answered.
    for n in 0..EXEMPTIONS + REJECTS {
        let emergency = n < EXEMPTIONS;
        let id = format!("DT-CL-{n:04}");
        let line =
            with(with(claim(TERMINATED, "2026-06-15", emergency), "claim_id", json!(id)), "min_seq", json!(head));
        let reply = server.check(&line);
        assert_eq!(reply.status, 200, "{}", reply.text());
        let answer = reply.json();
        let want = if emergency { "emergency_exemption" } else { "practitioner_terminated" };
        assert_eq!(answer["reason"], want, "{answer}");
        expected.push(Expectation {
            what: format!("{want} {id}"),
            in_file: format!(r#"{id}\""#),
            file: |fd| fd.contains("/audit/") && fd.ends_with(".audit"),
            in_answer: format!(r#"{id}\""#),
        });
    }

    // Stop the gate, and with it strace, which then has written the whole trace.
    gate.signal("-TERM");
    let deadline = Instant::now() + TRACED_EXIT_TIMEOUT;
    while server.exited().is_none() {
        assert!(Instant::now() < deadline, "the traced gate did not exit within {TRACED_EXIT_TIMEOUT:?} of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let trace = std::fs::read_to_string(&trace_path).expect("reading the trace");
    let calls = parse_trace(&trace).unwrap_or_else(|e| panic!("{e}"));
    let syncs = calls.iter().filter(|c| SYNC_CALLS.contains(&c.name.as_str())).count();
    let (found, margin) = violations(&calls, &expected);
    if !found.is_empty() {
        let kept = data.keep();
        panic!(
            "{} of {} acknowledged answers were written before their bytes were fsynced ({} calls traced, {syncs} \
             syncs; trace kept at {}):\n{}",
            found.len(),
            expected.len(),
            calls.len(),
            kept.join("strace.out").display(),
            found.join("\n")
        );
    }
    eprintln!(
        "durability trace: {} appends and {} decisions, each answered after its file's fsync/fdatasync returned \
         (shortest margin {:.0} µs; {} calls, {syncs} syncs)",
        APPENDS + SETUP_EVENTS,
        EXEMPTIONS + REJECTS,
        margin * 1e6,
        calls.len()
    );
}

// ---------------------------------------------------------------------------
// The parser and the rule, on hand-written traces.

#[test]
fn the_parser_joins_unfinished_and_resumed_lines_per_pid_and_reads_descriptors() {
    let trace = r#"100  1000.000100 pwrite64(7</d/ledger.sqlite3-wal>, "page DT-EV-0001 x", 17, 0) = 17 <0.000010>
101 1000.000150 write(2</dev/null<char 1:3>>, "log", 3) = 3 <0.000001>
100 1000.000200 fdatasync(7</d/ledger.sqlite3-wal> <unfinished ...>
102 1000.000300 writev(9<TCP:[127.0.0.1:8081->127.0.0.1:5000]>, [{iov_base="HTTP/1.1 200 OK\r\n", iov_len=17}], 1 <unfinished ...>
100 1000.000900 <... fdatasync resumed>) = 0 <0.000700>
102 1000.001000 <... writev resumed>) = 17 <0.000700>
102 1000.001100 --- SIGTERM {si_signo=SIGTERM} ---
100 1000.001200 +++ exited with 0 +++
"#;
    let calls = parse_trace(trace).unwrap();
    assert_eq!(calls.len(), 4, "{calls:#?}");
    assert_eq!(calls[0].fd, "/d/ledger.sqlite3-wal");
    assert_eq!(calls[1].fd, "/dev/null<char 1:3>");
    let sync = &calls[2];
    assert_eq!((sync.name.as_str(), sync.pid, sync.ret), ("fdatasync", 100, Some(0)));
    assert_eq!(sync.fd, "/d/ledger.sqlite3-wal");
    assert!((sync.start - 1000.000200).abs() < 1e-7 && (sync.end - 1000.000900).abs() < 1e-7, "{sync:?}");
    let writev = &calls[3];
    assert!(writev.is_socket() && writev.args.contains("HTTP/1.1 200"), "{writev:?}");
    assert!(parse_trace("100 1.0 <... fsync resumed>) = 0 <0.1>\n").is_err(), "a resume without its start");
}

#[test]
fn an_answer_written_before_its_files_fsync_returned_is_a_violation() {
    let expect = || {
        vec![Expectation {
            what: "append".into(),
            in_file: "DT-EV-0001".into(),
            file: |fd| fd.ends_with("-wal"),
            in_answer: r#"\"seq\":1"#.into(),
        }]
    };
    let head = r#"1 10.000000 pwrite64(7</d/l-wal>, "DT-EV-0001", 10, 0) = 10 <0.000010>
"#;
    let answer = r#"2 10.000500 write(9<TCP:[127.0.0.1:1->127.0.0.1:2]>, "{\"seq\":1}", 9) = 9 <0.000001>
"#;
    // fsync returned before the answer: fine.
    let good = format!("{head}1 10.000100 fdatasync(7</d/l-wal>) = 0 <0.000100>\n{answer}");
    assert!(violations(&parse_trace(&good).unwrap(), &expect()).0.is_empty());
    // The answer went out while the fsync still ran.
    let racing = format!(
        "{head}1 10.000100 fdatasync(7</d/l-wal> <unfinished ...>\n{answer}1 10.000900 <... fdatasync resumed>) = 0 <0.000800>\n"
    );
    assert_eq!(violations(&parse_trace(&racing).unwrap(), &expect()).0.len(), 1);
    // No fsync at all; a failed one; one of another file; one before the write.
    for sync in [
        String::new(),
        "1 10.000100 fdatasync(7</d/l-wal>) = -1 EIO (Input/output error) <0.000100>\n".into(),
        "1 10.000100 fdatasync(8</d/other>) = 0 <0.000100>\n".into(),
    ] {
        let trace = format!("{head}{sync}{answer}");
        assert_eq!(violations(&parse_trace(&trace).unwrap(), &expect()).0.len(), 1, "{trace}");
    }
    let early = format!("1 9.000000 fdatasync(7</d/l-wal>) = 0 <0.000100>\n{head}{answer}");
    assert_eq!(violations(&parse_trace(&early).unwrap(), &expect()).0.len(), 1);
    // `"seq":12` is not the answer of seq 1.
    let other = format!("{head}1 10.000100 fdatasync(7</d/l-wal>) = 0 <0.000100>\n{}", answer.replace(":1}", ":12}"));
    assert_eq!(violations(&parse_trace(&other).unwrap(), &expect()).0.len(), 1);
}
