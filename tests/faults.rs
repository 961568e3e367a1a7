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
//! write through an open file then fails with EROFS. Root ignores permission
//! bits, so chmod could not make a directory read-only here. The namespace and
//! its mounts vanish with its last process, even if the test is killed.
//! Where mount namespaces are not permitted (not root), these tests print a
//! notice and pass, except under CI (`CI` set), where that is a failure.
#![cfg(target_os = "linux")]

mod common;
use claimgate::event::{Event, RecordedEvent};
use claimgate::ledger::{Ledger, LEDGER_FILE};
use claimgate::policy::Policy;
use common::server::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest a helper command (mount, fsck, a `serve` that must refuse) may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the namespace holder lives at most (its servers keep the namespace after).
const HOLD_SECONDS: &str = "600";
/// Size of the tmpfs that fills up.
const TMPFS_SIZE: &str = "8m";
/// Size of the ext4 image that turns read-only.
const EXT4_IMAGE_BYTES: u64 = 32 * 1024 * 1024;
/// Bytes written per step while filling a file system.
const FILL_CHUNK: usize = 256 * 1024;
/// Most fill steps (bounds the loop well past the tmpfs size).
const MAX_FILL_CHUNKS: usize = 1024;

const DOC2: &str = "D110105000002";

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_claimgate")
}

/// Runs `command` to its end (killed past [`COMMAND_TIMEOUT`]), capturing its output.
fn run_bounded(mut command: Command) -> Output {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let status = wait_bounded(&mut child, COMMAND_TIMEOUT)
        .unwrap_or_else(|| panic!("{what} did not finish within {COMMAND_TIMEOUT:?}"));
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// Waits for `child` up to `limit`; past it, kills and reaps it and returns `None`.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
            assert!(std::env::var_os("CI").is_none_or(|v| v.is_empty()), "{test} cannot run under CI: {why}");
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
        Server::start_with(command, data, &[])
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

/// Checks are answered from the index by the history of [`suspend_doc`], at `seq`.
fn assert_checks_answer(server: &Server, seq: u64) {
    let rejected = server.check(&with(claim(DOC, "2026-03-20", false), "min_seq", json!(seq))).json();
    assert_eq!((&rejected["reason"], &rejected["seq"]), (&json!("practitioner_suspended"), &json!(seq)), "{rejected}");
    let settled = server.check(&claim(DOC, "2026-01-05", false)).json();
    assert_eq!(settled["verdict"], "settle", "{settled}");
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
/// events (R5). A real tmpfs of 8 MiB, filled by a file beside the ledger.
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

    std::fs::remove_file(&filler).unwrap();
    acknowledged.append(&server, registered(DOC2, INST, "2025-01-01"));
    let (_, ready) = readyz(&server);
    assert_eq!((&ready["ledger_writable"], &ready["append_failure"]), (&json!(true), &Value::Null), "{ready}");
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
