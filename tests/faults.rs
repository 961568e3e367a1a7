//! Storage faults end to end (issue 8): the real `claimgate serve` binary on a
//! data directory that fills up, turns read-only, holds a damaged or foreign
//! ledger, a damaged newest snapshot, or is already in use. Each fault must
//! give a named error that says what to do, leave nothing half-written, and
//! lose no acknowledged event (R5).
//!
//! The disk faults are real, not simulated: each test runs its servers in a
//! private mount namespace (`unshare --mount`, held by a `sleep` process and
//! entered with `nsenter`), where a size-limited tmpfs fills up for real
//! (ENOSPC, SQLITE_FULL) and an ext4 image on a loop device is turned
//! read-only by the kernel's own error path (`errors=remount-ro` and
//! `/sys/fs/ext4/DEV/trigger_fs_error`, the path an I/O error takes), so every
//! write through an open file then fails with EROFS; a directory read-only
//! before start is a read-only bind mount. Root ignores permission bits, so
//! chmod could not make a directory read-only here. The namespace and its
//! mounts vanish with its last process, even if the test is killed.
//! Where mount namespaces are not permitted (not root), these tests print a
//! notice and pass, except under CI (`CI` set), where that is a failure.
//!
//! (Over 600 lines: a test file, one binary so every fault shares the
//! mount-namespace harness.)
#![cfg(target_os = "linux")]

mod common;
use claimgate::event::{Event, RecordedEvent};
use claimgate::ledger::{Ledger, LEDGER_FILE};
use claimgate::policy::Policy;
use common::server::*;
use common::under_ci;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long the namespace holder lives at most (its servers keep the namespace after).
const HOLD_SECONDS: &str = "600";
/// Size of the tmpfs that fills up.
const TMPFS_SIZE: &str = "8m";
/// Size of the ext4 image that turns read-only.
const EXT4_IMAGE_BYTES: u64 = 32 * 1024 * 1024;
/// The decision log's free-space reserve in these tests (the mounts are small).
const AUDIT_RESERVE: &str = "1048576";
/// Bytes written per step while filling a file system.
const FILL_CHUNK: usize = 256 * 1024;
/// Most fill steps (bounds the loop well past the tmpfs size).
const MAX_FILL_CHUNKS: usize = 1024;

const DOC2: &str = "D110105000002";

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_claimgate")
}

/// Runs `command`, which must succeed.
fn run_ok(command: Command) -> Output {
    let what = format!("{command:?}");
    let out = run_bounded(command);
    assert!(out.status.success(), "{what}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

// ---------------------------------------------------------------------------
// A private mount namespace.

/// A mount namespace of the test's own, held open by a `sleep` process;
/// dropping it kills the holder, and the namespace (with its mounts) goes
/// when its last process does.
struct Namespace {
    holder: Child,
}

impl Namespace {
    /// A new namespace, or `None` (with a notice) where that is not permitted
    /// outside CI; under CI, not being able to run a fault test is a failure.
    fn new(test: &str) -> Option<Namespace> {
        let unavailable = |why: String| -> Option<Namespace> {
            assert!(!under_ci(), "{test} cannot run under CI: {why}");
            let note = format!("skipped: {test} needs root and mount namespaces ({why})\n");
            let _ = std::io::stderr().write_all(note.as_bytes());
            None
        };
        let spawned = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sleep", HOLD_SECONDS])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut ns = match spawned {
            Ok(holder) => Namespace { holder },
            Err(e) => return unavailable(format!("cannot run unshare: {e}")),
        };
        // `unshare` execs `sleep` once the namespace is made: wait for that.
        let own = std::fs::read_link("/proc/self/ns/mnt").expect("reading our mount namespace");
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            if let Some(status) = ns.holder.try_wait().expect("waiting for unshare") {
                return unavailable(format!("unshare --mount exited with {status}"));
            }
            if std::fs::read_link(format!("/proc/{}/ns/mnt", ns.holder.id())).is_ok_and(|n| n != own) {
                return Some(ns);
            }
            assert!(Instant::now() < deadline, "unshare made no namespace within {COMMAND_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `program` to run inside the namespace.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command.args(["--target", &self.holder.id().to_string(), "--mount", "--", program]);
        command
    }

    /// Runs `program args` inside the namespace; it must succeed.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let mut command = self.command(program);
        command.args(args);
        run_ok(command)
    }

    /// `inside` (an absolute path as the namespace sees it), reachable from here.
    fn path(&self, inside: &Path) -> PathBuf {
        let relative = inside.strip_prefix("/").expect("an absolute path");
        PathBuf::from(format!("/proc/{}/root", self.holder.id())).join(relative)
    }

    /// A server on `data` inside the namespace.
    fn server(&self, data: &Path) -> Server {
        let mut command = self.command(binary());
        command.stderr(Stdio::inherit());
        // The mounts here are a few MiB: a reserve of 1 MiB, not the default.
        Server::start_with(command, data, &["--audit-reserve-bytes", AUDIT_RESERVE])
    }

    /// A server with these flags, its standard error captured (a thread
    /// drains it, so the pipe never fills); the text once it has exited.
    fn server_logging(&self, data: &Path, flags: &[&str]) -> (Server, std::thread::JoinHandle<String>) {
        let mut command = self.command(binary());
        command.stderr(Stdio::piped());
        let mut server = Server::start_with(command, data, flags);
        let mut stderr = server.child.stderr.take().expect("piped");
        let drained = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        (server, drained)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

// ---------------------------------------------------------------------------
// What was acknowledged, and what the ledger holds.

/// Every event a server acknowledged, with its `seq`.
#[derive(Default)]
struct Acknowledged(Vec<(u64, Value)>);

impl Acknowledged {
    /// Appends `event`, which must be accepted with the next `seq`.
    fn append(&mut self, server: &Server, event: Value) -> u64 {
        let seq = server.event(&event);
        assert_eq!(seq, self.last() + 1, "seq is dense (R5): nothing half-written took one");
        self.0.push((seq, event));
        seq
    }

    fn last(&self) -> u64 {
        self.0.last().map_or(0, |(seq, _)| *seq)
    }

    /// The ledger in `data` (no server running) holds exactly these events,
    /// each at its `seq` with identical content. The ledger's files are read
    /// from a copy: SQLite resolves `/proc/PID/root` to our own namespace.
    fn assert_exactly_on(&self, data: &Path) {
        let copy = tempfile::tempdir().unwrap();
        for suffix in ["", "-wal"] {
            let from = data.join(format!("{LEDGER_FILE}{suffix}"));
            if from.exists() || suffix.is_empty() {
                std::fs::copy(&from, copy.path().join(format!("{LEDGER_FILE}{suffix}")))
                    .unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
            }
        }
        let policy = Policy::default();
        let ledger = Ledger::open(copy.path(), &policy).expect("the ledger opens after the fault");
        let stored = ledger.all_events().expect("every event reads back");
        let expected: Vec<RecordedEvent> = self
            .0
            .iter()
            .map(|(seq, v)| RecordedEvent { seq: *seq, event: Event::parse(v, &policy).unwrap() })
            .collect();
        assert_eq!(stored, expected, "the ledger holds exactly the acknowledged events");
    }
}

/// A history that suspends DOC from 2026-03-10 (R14: 9 points), so a check
/// on 2026-03-20 is rejected and one on 2026-01-05 settles.
fn suspend_doc(server: &Server, acknowledged: &mut Acknowledged) {
    acknowledged.append(server, designated(INST, "2024-01-01"));
    acknowledged.append(server, registered(DOC, INST, "2024-01-01"));
    acknowledged.append(server, violation("V1", DOC, "2026-03-10", 9, "serious"));
}

/// A data directory whose ledger holds the history of [`suspend_doc`],
/// written through a server that has stopped again.
fn stopped_with_history(data: &Path) -> Acknowledged {
    let mut server = Server::start(data, &[]);
    let mut acknowledged = Acknowledged::default();
    suspend_doc(&server, &mut acknowledged);
    assert_eq!(server.terminate().code(), Some(0));
    acknowledged
}

/// Checks are answered from the index by the history of [`suspend_doc`], at `seq`.
fn assert_checks_answer(server: &Server, seq: u64) {
    let rejected = server.check(&with(claim(DOC, "2026-03-20", false), "min_seq", json!(seq))).json();
    assert_eq!((&rejected["reason"], &rejected["seq"]), (&json!("practitioner_suspended"), &json!(seq)), "{rejected}");
    let settled = server.check(&claim(DOC, "2026-01-05", false)).json();
    assert_eq!(settled["verdict"], "settle", "{settled}");
}

/// Waits (bounded) until the `/metrics` value of `name` passes `wanted`.
fn wait_for_metric(server: &Server, name: &str, wanted: fn(f64) -> bool) {
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        let metrics = request(server.check, "GET", "/metrics", &[], b"").text();
        let value = metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok());
        if value.is_some_and(wanted) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} is {value:?} after {COMMAND_TIMEOUT:?}: {metrics}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn readyz(server: &Server) -> (u16, Value) {
    let reply = request(server.check, "GET", "/readyz", &[], b"");
    (reply.status, reply.json())
}

/// Writes `path` until its file system has no room left; returns the bytes written.
fn fill(path: &Path) -> usize {
    let mut file = std::fs::File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    let chunk = vec![0xA5u8; FILL_CHUNK];
    let mut written = 0;
    for _ in 0..MAX_FILL_CHUNKS {
        match file.write(&chunk) {
            Ok(0) => return written,
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return written,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    panic!("{} did not fill within {} bytes", path.display(), FILL_CHUNK * MAX_FILL_CHUNKS)
}

// ---------------------------------------------------------------------------
// The tests.

/// Issue 8, a full disk: appends are refused with 503 `ledger_unavailable`
/// (cause `disk_full`, a message naming the directory and the fix), a refused
/// batch stores none of its events, checks go on from the index, `/readyz`
/// and `/metrics` say appends fail; once space is freed the same append is
/// accepted at the next `seq`, and the ledger holds exactly the acknowledged
/// events (R5). A snapshot asked for meanwhile fails with 503
/// `snapshot_failed` (cause `disk_full`) and leaves no partial file taking
/// room. The decision log shares the disk (R19): an emergency exemption it
/// cannot record is answered 503 `audit_unavailable`, never settled
/// unrecorded, and a reject is still answered and counted; once there is room
/// all of it works again. A real tmpfs of 8 MiB, filled by a file beside the
/// ledger.
#[test]
fn a_full_disk_refuses_appends_by_name_checks_go_on_and_nothing_acknowledged_is_lost() {
    let Some(ns) = Namespace::new("the full-disk test") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mount = tmp.path().join("mnt");
    std::fs::create_dir(&mount).unwrap();
    ns.run("mount", &["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "claimgate-test", path_str(&mount)]);
    let data = mount.join("data");
    let mut server = ns.server(&data);
    let mut acknowledged = Acknowledged::default();
    suspend_doc(&server, &mut acknowledged);

    let filler = ns.path(&mount.join("filler"));
    fill(&filler);
    let refused = server.admin_post("/v1/events", &registered(DOC2, INST, "2025-01-01"));
    assert_error("append on a full disk", &refused, 503, "ledger_unavailable", Field::Absent);
    let body = refused.json();
    assert_eq!(body["cause"], "disk_full", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(path_str(&data)) && message.contains("is full"), "{message}");
    assert!(message.contains("Free space"), "the message says what to do: {message}");
    let batch = json!([registered(DOC2, INST, "2025-01-01"), violation("V2", DOC2, "2026-03-10", 12, "serious")]);
    let refused = server.admin_post("/v1/events", &batch);
    assert_error("batch on a full disk", &refused, 503, "ledger_unavailable", Field::Absent);

    assert_checks_answer(&server, acknowledged.last());
    let (status, ready) = readyz(&server);
    assert_eq!(status, 200, "checks are still served: {ready}");
    assert_eq!(ready["ledger_writable"], false, "{ready}");
    assert_eq!(ready["append_failure"]["cause"], "disk_full", "{ready}");
    assert!(ready["reason"].as_str().is_some_and(|r| r.contains("appends fail")), "{ready}");
    assert_eq!(ready["ledger_head"], acknowledged.last(), "nothing was half-written: {ready}");
    let metrics = request(server.check, "GET", "/metrics", &[], b"").text();
    assert!(metrics.contains("\nclaimgate_ledger_writable 0\n"), "{metrics}");
    // A snapshot cannot be written either, and leaves no partial file taking room.
    let refused = server.admin_post("/v1/snapshot", &json!({}));
    assert_error("snapshot on a full disk", &refused, 503, "snapshot_failed", Field::Absent);
    assert_eq!(refused.json()["cause"], "disk_full", "{}", refused.text());
    let snapshots = ns.path(&data.join("snapshots"));
    let left: Vec<_> =
        std::fs::read_dir(&snapshots).map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "the failed snapshot left {left:?}");
    // The decision log cannot take a record either: the exemption is not
    // settled unrecorded, the reject (asserted above) was answered and counted.
    let exemption = server.check(&claim(DOC, "2026-03-20", true));
    assert_error("an exemption on a full disk", &exemption, 503, "audit_unavailable", Field::Absent);
    let cause = exemption.json()["cause"].clone();
    assert!(cause == "disk_full" || cause == "space_reserve", "{}", exemption.text());
    wait_for_metric(&server, "claimgate_audit_rejects_unrecorded_total", |n| n >= 1.0);
    wait_for_metric(&server, "claimgate_audit_exemptions_refused_total", |n| n == 1.0);
    let (_, ready) = readyz(&server);
    assert_eq!(ready["audit"]["writable"], false, "{ready}");

    std::fs::remove_file(&filler).unwrap();
    acknowledged.append(&server, registered(DOC2, INST, "2025-01-01"));
    let (_, ready) = readyz(&server);
    assert_eq!((&ready["ledger_writable"], &ready["append_failure"]), (&json!(true), &Value::Null), "{ready}");
    let written = server.admin_post("/v1/snapshot", &json!({}));
    assert_eq!(written.status, 200, "a snapshot is written once there is room: {}", written.text());
    // The log tries the disk again within its retry interval: the same
    // exemption is then recorded and settled.
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let settled = loop {
        let reply = server.check(&with(claim(DOC, "2026-03-20", true), "claim_id", json!("E-after")));
        if reply.status == 200 || Instant::now() > deadline {
            break reply;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(settled.json()["reason"], "emergency_exemption", "{}", settled.text());
    let exported =
        String::from_utf8_lossy(&ns.run(binary(), &["audit", "export", "--data", path_str(&data)]).stdout).into_owned();
    assert!(exported.contains("\"claim_id\":\"E-after\""), "the settled exemption is in the log: {exported}");
    assert!(ready["ledger_failures"].as_u64().is_some_and(|n| n >= 2), "the failures stay counted: {ready}");

    assert_eq!(server.terminate().code(), Some(0));
    acknowledged.assert_exactly_on(&ns.path(&data));
    let again = ns.server(&data);
    assert_eq!(again.start_seq, acknowledged.last());
    assert_checks_answer(&again, acknowledged.last());
}

/// Issue 8, a data directory that turns read-only under a running server (the
/// kernel remounts an ext4 file system read-only after an error): appends are
/// refused with 503 `ledger_unavailable` (cause `read_only`, a message naming
/// the directory and the repair), checks go on from the index and `/readyz`
/// says appends fail. The repair an operator makes (stop, fsck, remount
/// read-write, start) loses nothing acknowledged (R5), and appends resume.
#[test]
fn a_read_only_data_directory_refuses_appends_by_name_and_a_repair_loses_nothing() {
    let Some(ns) = Namespace::new("the read-only test") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("ext4.img");
    std::fs::File::create(&image).unwrap().set_len(EXT4_IMAGE_BYTES).unwrap();
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F", path_str(&image)]);
    run_ok(mkfs);
    let mount = tmp.path().join("mnt");
    std::fs::create_dir(&mount).unwrap();
    let mount_image = || ns.run("mount", &["-o", "loop,errors=remount-ro", path_str(&image), path_str(&mount)]);
    mount_image();
    let data = mount.join("data");
    let mut server = ns.server(&data);
    let mut acknowledged = Acknowledged::default();
    suspend_doc(&server, &mut acknowledged);

    // The kernel's own error path: errors=remount-ro turns the file system
    // read-only at once, under every file the server holds open.
    let device = String::from_utf8(ns.run("findmnt", &["-n", "-o", "SOURCE", path_str(&mount)]).stdout).unwrap();
    let device = device.trim().rsplit('/').next().expect("a device name").to_owned();
    std::fs::write(format!("/sys/fs/ext4/{device}/trigger_fs_error"), "claimgate fault test: read-only")
        .expect("triggering an ext4 error");
    let refused = server.admin_post("/v1/events", &registered(DOC2, INST, "2025-01-01"));
    assert_error("append on a read-only file system", &refused, 503, "ledger_unavailable", Field::Absent);
    let body = refused.json();
    assert_eq!(body["cause"], "read_only", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(path_str(&data)) && message.contains("read-only"), "{message}");
    assert!(message.contains("fsck") && message.contains("restart claimgate"), "says what to do: {message}");

    assert_checks_answer(&server, acknowledged.last());
    let (status, ready) = readyz(&server);
    assert_eq!(status, 200, "checks are still served: {ready}");
    assert_eq!((&ready["ledger_writable"], &ready["append_failure"]["cause"]), (&json!(false), &json!("read_only")));
    assert_eq!(ready["ledger_head"], acknowledged.last(), "nothing was half-written: {ready}");

    // The repair: stop the server, check the file system, mount it read-write.
    assert_eq!(server.terminate().code(), Some(0), "a read-only ledger still shuts down cleanly");
    ns.run("umount", &[path_str(&mount)]);
    let mut fsck = Command::new("e2fsck");
    fsck.args(["-f", "-y", path_str(&image)]);
    let fsck = run_bounded(fsck);
    assert!(matches!(fsck.status.code(), Some(0..=1)), "e2fsck repaired the image: {}", fsck.status);
    mount_image();
    acknowledged.assert_exactly_on(&ns.path(&data));
    let again = ns.server(&data);
    assert_eq!(again.start_seq, acknowledged.last());
    assert_checks_answer(&again, acknowledged.last());
    acknowledged.append(&again, registered(DOC2, INST, "2025-01-01"));
}

/// `claimgate serve` on `data` with free loopback ports and `extra` flags,
/// which must refuse to start: exits 1; returns what it printed on stderr.
fn serve_refused(data: &Path, extra: &[&str]) -> String {
    let mut args = vec!["serve", "--data", path_str(data), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"];
    args.extend(extra);
    let out = claimgate(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "serve on {} started: {}\n{stderr}", data.display(), out.status);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

/// Issue 8: one claimgate process per data directory. A second `serve` (and
/// `demo`, `append`, `snapshot write`) on a directory a server holds is
/// refused with a message naming the directory and the holder's pid, exits
/// non-zero, and the first server goes on answering and accepting events.
/// The lock dies with its process: after SIGKILL a new server starts at once.
#[test]
fn a_second_process_on_a_data_directory_is_refused_and_the_first_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = Server::start(&data, &[]);
    let mut acknowledged = Acknowledged::default();
    suspend_doc(&first, &mut acknowledged);
    let in_use = format!(
        "data directory {} is in use by another claimgate process (pid {}); stop it or use another --data",
        data.display(),
        first.child.id()
    );
    let stderr = serve_refused(&data, &[]);
    assert!(stderr.contains(&in_use), "{stderr}");

    let events = dir.path().join("events.json");
    std::fs::write(&events, json!([registered(DOC2, INST, "2025-01-01")]).to_string()).unwrap();
    let d = path_str(&data);
    for args in [
        &["append", "--data", d, path_str(&events)][..],
        &["snapshot", "write", "--data", d],
        &["demo", "--practitioners", "20", "--data", d, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
    ] {
        let out = claimgate(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(&in_use), "{args:?}: {stderr}");
    }

    assert!(first.exited().is_none(), "the first server is still running");
    assert_checks_answer(&first, acknowledged.last());
    acknowledged.append(&first, registered(DOC2, INST, "2025-01-01"));

    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");
    let again = Server::start(&data, &[]);
    assert_eq!(again.start_seq, acknowledged.last(), "a crash leaves no stale lock");
    assert_checks_answer(&again, acknowledged.last());
}

/// Issue 8, a data directory that is read-only before the server starts (a
/// read-only bind mount): `serve` refuses to start (exit 1) with a message
/// naming the ledger file and the file system's own reason, and touches
/// nothing; once the mount is read-write again it serves every event.
#[test]
fn a_data_directory_read_only_at_start_stops_serve_by_name_until_it_is_writable() {
    let Some(ns) = Namespace::new("the read-only start test") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let acknowledged = stopped_with_history(&data);
    let before = std::fs::read(data.join(LEDGER_FILE)).unwrap();
    let d = path_str(&data);
    ns.run("mount", &["--bind", d, d]);
    ns.run("mount", &["-o", "remount,bind,ro", d]);

    let mut serve = ns.command(binary());
    serve.args(["serve", "--data", d, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    serve.env("CLAIMGATE_ADMIN_TOKEN", TOKEN);
    let out = run_bounded(serve);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let ledger = data.join(LEDGER_FILE);
    assert!(stderr.contains(&format!("cannot open the ledger {}", ledger.display())), "{stderr}");
    assert!(stderr.contains("Read-only file system") && stderr.contains("writable"), "{stderr}");
    assert!(std::fs::read(&ledger).unwrap() == before, "the ledger was changed");

    ns.run("mount", &["-o", "remount,bind,rw", d]);
    let again = ns.server(&data);
    assert_eq!(again.start_seq, acknowledged.last());
    assert_checks_answer(&again, acknowledged.last());
}

/// A ledger file in a fresh data directory made by `make`, for `serve` to refuse.
struct BadLedger {
    what: &'static str,
    /// Words the refusal must contain besides the file's path.
    says: &'static [&'static str],
    make: fn(&Path),
}

/// Deterministic bytes that are not SQLite (the project's one generator).
fn garbage(len: usize) -> Vec<u8> {
    let mut rng = claimgate::population::Rng::new(0x9E37_79B9_7F4A_7C15);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// A real ledger with a few events, closed cleanly (everything in the main file).
fn real_ledger(data: &Path) {
    let policy = Policy::default();
    let ledger = Ledger::open(data, &policy).unwrap();
    for (i, v) in [designated(INST, "2024-01-01"), registered(DOC, INST, "2024-01-01")].iter().enumerate() {
        let seq = ledger.append(&Event::parse(v, &policy).unwrap()).unwrap().seq;
        assert_eq!(seq, i as u64 + 1);
    }
    for i in 0..200 {
        let v = violation(&format!("V{i}"), DOC, "2025-02-01", 1, "minor");
        ledger.append(&Event::parse(&v, &policy).unwrap()).unwrap();
    }
}

fn truncate_ledger(data: &Path, keep: impl Fn(u64) -> u64) {
    let file = std::fs::OpenOptions::new().write(true).open(data.join(LEDGER_FILE)).unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(keep(len)).unwrap();
}

fn bad_ledgers() -> Vec<BadLedger> {
    vec![
        BadLedger {
            what: "garbage bytes",
            says: &["is not a claimgate ledger", "Point --data at"],
            make: |data| std::fs::write(data.join(LEDGER_FILE), garbage(64 * 1024)).unwrap(),
        },
        BadLedger {
            what: "a ledger truncated inside its header",
            says: &["is damaged", "restore the data directory from a backup"],
            make: |data| {
                real_ledger(data);
                truncate_ledger(data, |_| 50);
            },
        },
        BadLedger {
            what: "a ledger truncated to half its length",
            says: &["damaged", "restore the data directory from a backup"],
            make: |data| {
                real_ledger(data);
                truncate_ledger(data, |len| len / 2);
            },
        },
        BadLedger {
            what: "a ledger without its last page",
            says: &["damaged", "restore the data directory from a backup"],
            make: |data| {
                real_ledger(data);
                truncate_ledger(data, |len| len - 4096);
            },
        },
        BadLedger {
            what: "a ledger with a page of garbage inside",
            says: &["damaged", "restore the data directory from a backup"],
            make: |data| {
                real_ledger(data);
                let path = data.join(LEDGER_FILE);
                let mut bytes = std::fs::read(&path).unwrap();
                let page = bytes.len() / 4096 / 2 * 4096;
                bytes[page..page + 4096].copy_from_slice(&garbage(4096));
                std::fs::write(&path, bytes).unwrap();
            },
        },
        BadLedger {
            what: "a ledger emptied beside the audit log of the server that used it",
            says: &["is missing or empty", "a ledger was there", "Restore it from a backup"],
            make: |data| {
                stopped_with_history(data);
                truncate_ledger(data, |_| 0);
            },
        },
        BadLedger {
            what: "a ledger removed from beside its snapshot",
            says: &["is missing or empty", "1 index snapshot(s)", "Restore it from a backup"],
            make: |data| {
                real_ledger(data);
                write_snapshot(data);
                std::fs::remove_file(data.join(LEDGER_FILE)).unwrap();
            },
        },
        BadLedger {
            what: "an SQLite database of another application",
            says: &["another application", "Point --data at"],
            make: |data| {
                let db = rusqlite::Connection::open(data.join(LEDGER_FILE)).unwrap();
                db.execute_batch(
                    "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT); INSERT INTO notes (text) VALUES ('mine');",
                )
                .unwrap();
            },
        },
        BadLedger {
            what: "a ledger of a newer schema",
            says: &["newer than this build supports", "upgrade claimgate"],
            make: |data| {
                real_ledger(data);
                let db = rusqlite::Connection::open(data.join(LEDGER_FILE)).unwrap();
                db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'", []).unwrap();
            },
        },
    ]
}

/// Issue 8: a damaged or foreign ledger file at start, or one that is gone
/// while the files beside it show it existed. `serve` refuses to start
/// (exit 1) with a message naming the file and what to do, and leaves the
/// directory as it was (only the lock file may be new): never a fresh ledger
/// over it, no index built, no audit log opened.
#[test]
fn a_damaged_or_foreign_ledger_stops_serve_and_append_by_name_and_is_left_untouched() {
    for bad in bad_ledgers() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        (bad.make)(&data);
        let ledger = data.join(LEDGER_FILE);
        let before = std::fs::read(&ledger).ok();
        let listing = || {
            let mut names: Vec<String> = std::fs::read_dir(&data)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n != claimgate::data_lock::LOCK_FILE)
                .collect();
            names.sort();
            names
        };
        let listed = listing();
        // `--init` (make a ledger where there is none) changes nothing here:
        // none of these is a directory without a ledger.
        for init in [&[][..], &["--init"]] {
            let stderr = serve_refused(&data, init);
            assert!(stderr.contains(path_str(&ledger)), "{} {init:?}: names the file: {stderr}", bad.what);
            for words in bad.says {
                assert!(stderr.contains(words), "{} {init:?}: says {words:?}: {stderr}", bad.what);
            }
            assert!(std::fs::read(&ledger).ok() == before, "{} {init:?}: the file was changed", bad.what);
            assert_eq!(listing(), listed, "{} {init:?}: nothing was made or removed", bad.what);
        }
        // `claimgate append` refuses the same directory the same way.
        let events = dir.path().join("events.json");
        std::fs::write(
            &events,
            r#"[{"type":"institution_designated","institution":"H11010500001","effective":"2024-01-01"}]"#,
        )
        .unwrap();
        for init in [&[][..], &["--init"]] {
            let mut args = vec!["append", "--data", path_str(&data), path_str(&events)];
            args.extend(init);
            let out = claimgate(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{} {init:?}: append was not refused: {stderr}", bad.what);
            assert!(stderr.contains(path_str(&ledger)), "{} {init:?}: append names the file: {stderr}", bad.what);
            assert!(std::fs::read(&ledger).ok() == before, "{} {init:?}: append changed the file", bad.what);
            assert_eq!(listing(), listed, "{} {init:?}: append made or removed something", bad.what);
        }
        // Nor does `claimgate init`.
        let out = claimgate(&["init", "--data", path_str(&data)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}: init succeeded: {stderr}", bad.what);
        assert!(stderr.contains(path_str(&ledger)), "{}: init names the file: {stderr}", bad.what);
        assert!(std::fs::read(&ledger).ok() == before, "{}: init changed the file", bad.what);
        assert_eq!(listing(), listed, "{}: init made or removed something", bad.what);
    }
}

/// `claimgate check` on a stopped data directory: the rules engine's answer
/// from the whole ledger, the reference a served check must equal.
fn reference_check(data: &Path, practitioner: &str, date: &str) -> Value {
    let out = claimgate(&[
        "check",
        "--data",
        path_str(data),
        "--practitioner",
        practitioner,
        "--institution",
        INST,
        "--date",
        date,
    ]);
    assert!(out.status.success(), "check: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `claimgate snapshot write` on a stopped data directory; returns the snapshot's path.
fn write_snapshot(data: &Path) -> PathBuf {
    let out = claimgate(&["snapshot", "write", "--data", path_str(data)]);
    assert!(out.status.success(), "snapshot write: {}", String::from_utf8_lossy(&out.stderr));
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    PathBuf::from(line["snapshot"].as_str().expect("the snapshot's path"))
}

/// A server on `data` whose log (RUST_LOG=warn) goes to `log`.
fn logged_server(data: &Path, log: &Path) -> Server {
    let mut command = Command::new(binary());
    command.stderr(std::fs::File::create(log).unwrap());
    Server::start_with(command, data, &[])
}

/// Issue 8: a damaged newest snapshot. The server falls back to the previous
/// valid snapshot, and with that one damaged too, to a build from the ledger;
/// it says so in its log and in `/readyz` (`snapshots_refused_at_start`,
/// `index_restored_from`), and answers every check exactly as the rules engine
/// does on the whole ledger (the snapshot's tail included).
#[test]
fn a_damaged_newest_snapshot_falls_back_says_so_and_answers_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut acknowledged = stopped_with_history(&data);
    let older = write_snapshot(&data);
    let mut server = Server::start(&data, &[]);
    acknowledged.append(&server, violation("V2", DOC, "2026-04-01", 4, "moderate"));
    assert_eq!(server.terminate().code(), Some(0));
    let newest = write_snapshot(&data);
    assert_ne!(older, newest);
    // A tail beyond the newest snapshot, which the restored index must catch up on.
    let mut server = Server::start(&data, &[]);
    acknowledged.append(&server, registered(DOC2, INST, "2025-01-01"));
    acknowledged.append(&server, violation("V3", DOC2, "2026-02-01", 9, "serious"));
    assert_eq!(server.terminate().code(), Some(0));
    let claims =
        [(DOC, "2026-01-05"), (DOC, "2026-03-20"), (DOC, "2026-04-10"), (DOC2, "2026-01-20"), (DOC2, "2026-02-10")];
    let expected: Vec<Value> = claims.iter().map(|(p, d)| reference_check(&data, p, d)).collect();
    let reasons: std::collections::HashSet<String> = expected.iter().map(|v| v["reason"].to_string()).collect();
    assert!(reasons.len() >= 3, "the claims tell the snapshots' states apart: {expected:?}");

    // One bit of the newest snapshot's payload flips: its checksum fails.
    let mut bytes = std::fs::read(&newest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&newest, bytes).unwrap();
    let log = dir.path().join("first.log");
    let mut server = logged_server(&data, &log);
    let assert_served = |server: &Server, refused: &[&Path], from: &str| {
        let (status, ready) = readyz(server);
        assert_eq!(status, 200, "{ready}");
        assert_eq!(ready["index_restored_from"], from, "{ready}");
        let listed: Vec<&str> = ready["snapshots_refused_at_start"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["path"].as_str().unwrap())
            .collect();
        assert_eq!(listed, refused.iter().map(|p| path_str(p)).collect::<Vec<_>>(), "{ready}");
        assert_eq!(server.start_seq, acknowledged.last(), "caught up on the tail");
        for ((p, d), want) in claims.iter().zip(&expected) {
            let got = server.check(&claim(p, d, false)).json();
            let answer = |v: &Value| (v["verdict"].clone(), v["reason"].clone(), v["seq"].clone());
            assert_eq!(answer(&got), answer(want), "{p} on {d}: {got}");
        }
        ready
    };
    let ready = assert_served(&server, &[&newest], path_str(&older));
    assert!(ready["snapshots_refused_at_start"][0]["error"].as_str().unwrap().contains("checksum"), "{ready}");
    assert_eq!(server.terminate().code(), Some(0));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("snapshot refused; falling back") && logged.contains(path_str(&newest)), "{logged}");

    // The older one is cut short as well: the index is built from the ledger.
    let file = std::fs::OpenOptions::new().write(true).open(&older).unwrap();
    file.set_len(file.metadata().unwrap().len() / 2).unwrap();
    let server = logged_server(&data, &dir.path().join("second.log"));
    let ready = assert_served(&server, &[&newest, &older], "ledger");
    assert!(ready["snapshots_refused_at_start"][1]["error"].as_str().unwrap().contains("truncated"), "{ready}");
}

/// Waits (bounded) for the background page check to finish; returns `/readyz`.
fn pages_checked(server: &Server) -> Value {
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        let (_, ready) = readyz(server);
        if ready["ledger_pages"]["state"] != "checking" {
            return ready;
        }
        assert!(Instant::now() < deadline, "the page check never finished: {ready}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue 8: a damaged page behind a snapshot. Restoring from the snapshot
/// reads only the ledger's tail, so the gate starts; the page check it runs
/// in the background reads every page, finds the damage, and says so on
/// `/readyz` (`ledger_pages`), in `/metrics` and in the log, while checks go
/// on from the index. A sound ledger is reported sound.
#[test]
fn a_damaged_page_behind_a_snapshot_is_found_in_the_background_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    real_ledger(&data);
    write_snapshot(&data);
    let mut server = Server::start(&data, &[]);
    let ready = pages_checked(&server);
    assert_eq!(ready["ledger_pages"]["state"], "sound", "{ready}");
    assert_eq!(server.terminate().code(), Some(0));

    let path = data.join(LEDGER_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let page = bytes.len() / 4096 / 2 * 4096;
    bytes[page..page + 4096].copy_from_slice(&garbage(4096));
    std::fs::write(&path, bytes).unwrap();
    let log = dir.path().join("damaged.log");
    let mut server = logged_server(&data, &log);
    let ready = pages_checked(&server);
    assert_eq!(ready["ledger_pages"]["state"], "damaged", "{ready}");
    assert!(ready["ledger_pages"]["detail"].as_str().is_some_and(|d| !d.is_empty()), "{ready}");
    let reply = server.check(&claim(DOC, "2024-06-01", false));
    assert_eq!(reply.status, 200, "checks go on from the index: {}", reply.text());
    let metrics = request(server.check, "GET", "/metrics", &[], b"").text();
    assert!(metrics.contains("\nclaimgate_ledger_damaged 1\n"), "{metrics}");
    assert_eq!(server.terminate().code(), Some(0));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("the ledger file is damaged"), "{logged}");
}

/// Issue 13, the free-space reserve: audit growth never takes the space the
/// ledger needs. On a tmpfs with the log beside the ledger and a reserve of
/// 4 MiB, once free space is under the reserve an unauthenticated flood of
/// emergency lines (single and batched) gets 503 `audit_unavailable` for
/// every exemption it cannot record (0 settled without a record), rejects
/// are still answered, ledger appends keep working, `/readyz` says why; and
/// with the disk then full, SIGTERM during the flood exits 0 within the stop
/// timeout and says what it could not write.
#[test]
fn past_the_audit_reserve_no_exemption_settles_unrecorded_appends_go_on_and_sigterm_is_prompt() {
    let Some(ns) = Namespace::new("the audit reserve test") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mount = tmp.path().join("mnt");
    std::fs::create_dir(&mount).unwrap();
    ns.run("mount", &["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "claimgate-test", path_str(&mount)]);
    let data = mount.join("data");
    let reserve: u64 = 4 * 1024 * 1024;
    let (mut server, stderr) = ns.server_logging(&data, &["--audit-reserve-bytes", &reserve.to_string()]);
    let mut acknowledged = Acknowledged::default();
    suspend_doc(&server, &mut acknowledged);
    let first = server.check(&with(
        with(claim(DOC, "2026-03-20", true), "claim_id", json!("E-before")),
        "min_seq",
        json!(acknowledged.last()),
    ));
    assert_eq!(first.json()["reason"], "emergency_exemption", "room above the reserve: {}", first.text());

    // Leave 2 MiB free: under the reserve, room for the ledger.
    let free = claimgate::audit::log::free_bytes(&ns.path(&mount)).unwrap();
    let filler = ns.path(&mount.join("filler"));
    std::fs::write(&filler, vec![0u8; (free - 2 * 1024 * 1024) as usize]).unwrap();

    let flood = |worker: u64| {
        let server = (server.check, worker);
        move || {
            let (check, worker) = server;
            let (mut settled, mut refused) = (Vec::new(), 0u64);
            for round in 0..400u64 {
                let lines: Vec<Value> = (0..50)
                    .map(|n| with(claim(DOC, "2026-03-20", true), "claim_id", json!(format!("F-{worker}-{round}-{n}"))))
                    .collect();
                // The server goes away under SIGTERM: the flood ends there.
                let Some(reply) = try_post(check, "/v1/check/batch", &json!({"lines": lines})) else { break };
                if reply.status != 200 {
                    continue;
                }
                for (n, r) in reply.json()["results"].as_array().unwrap().iter().enumerate() {
                    match r["reason"].as_str() {
                        Some("emergency_exemption") => settled.push(format!("F-{worker}-{round}-{n}")),
                        _ => {
                            assert_eq!(r["error"], "audit_unavailable", "{r}");
                            refused += 1;
                        }
                    }
                }
            }
            (settled, refused)
        }
    };
    let workers: Vec<_> = (0..4).map(|w| std::thread::spawn(flood(w))).collect();
    let single = server.check(&claim(DOC, "2026-03-20", true));
    assert_error("a single exemption past the reserve", &single, 503, "audit_unavailable", Field::Absent);
    assert_eq!(single.json()["cause"], "space_reserve", "{}", single.text());
    assert!(single.json()["message"].as_str().unwrap().contains("not settled"), "{}", single.text());
    assert_checks_answer(&server, acknowledged.last());
    // The ledger still takes appends: the reserve kept its room.
    acknowledged.append(&server, registered(DOC2, INST, "2025-01-01"));
    let (status, ready) = readyz(&server);
    assert_eq!(
        (status, &ready["ledger_writable"], &ready["audit"]["writable"]),
        (200, &json!(true), &json!(false)),
        "{ready}"
    );
    assert_eq!(ready["audit"]["failure"]["cause"], "space_reserve", "{ready}");
    assert!(ready["audit"]["failure"]["what"].as_str().unwrap().contains("--audit-reserve-bytes"), "{ready}");
    wait_for_metric(&server, "claimgate_audit_rejects_unrecorded_total", |n| n >= 1.0);

    // Then the disk fills up for good, and SIGTERM comes while the flood goes
    // on: prompt, and it says what it could not write.
    let full = ns.path(&mount.join("full"));
    fill(&full);
    let started = Instant::now();
    assert_eq!(server.terminate().code(), Some(0));
    let took = started.elapsed();
    let mut settled = Vec::new();
    let mut refused = 0;
    for w in workers {
        let (s, r) = w.join().unwrap();
        settled.extend(s);
        refused += r;
    }
    let said = stderr.join().unwrap();
    assert!(took < EXIT_TIMEOUT, "{took:?}");
    assert!(said.contains("records could not be written since start"), "{said}");
    assert!(refused > 0, "the flood met the reserve");
    // Every exemption answered settle is in the log (R19).
    std::fs::remove_file(&filler).unwrap();
    std::fs::remove_file(&full).unwrap();
    let exported =
        String::from_utf8_lossy(&ns.run(binary(), &["audit", "export", "--data", path_str(&data)]).stdout).into_owned();
    let logged: std::collections::HashSet<String> = exported
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["claim_id"].as_str().map(str::to_owned))
        .collect();
    assert!(logged.contains("E-before"));
    let missing: Vec<&String> = settled.iter().filter(|c| !logged.contains(*c)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} settled exemptions have no record: {missing:?}",
        missing.len(),
        settled.len()
    );
    acknowledged.assert_exactly_on(&ns.path(&data));
}
