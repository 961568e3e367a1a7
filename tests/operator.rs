//! No silent operator mistakes (issue 12): the real `claimgate` binary on a
//! data directory without a ledger, which `serve` and `append` refuse unless
//! told to start one (`--init`, or `claimgate init`), and `append`'s summary
//! and exit code when events are refused.
#![cfg(unix)]

mod common;
use claimgate::ledger::LEDGER_FILE;
use common::server::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `claimgate serve --data DATA` on free loopback ports, plus `extra`, run to its end.
fn serve(data: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["serve", "--data", path_str(data), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"];
    args.extend(extra);
    claimgate(&args)
}

/// `claimgate append --data DATA FILE` with `events` in FILE (beside DATA), plus `extra`.
fn append(data: &Path, events: &Value, extra: &[&str]) -> Output {
    let file = data.with_extension("events.json");
    std::fs::write(&file, events.to_string()).unwrap();
    let mut args = vec!["append", "--data", path_str(data), path_str(&file)];
    args.extend(extra);
    claimgate(&args)
}

/// The names in `dir`, sorted (empty if it does not exist).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// The refusal of a data directory without a ledger: exit 2, naming the
/// ledger's path, `claimgate init --data DIR` and `--init`.
fn assert_no_ledger_refusal(out: &Output, data: &Path, what: &str) {
    let said = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{what}: {said}");
    let ledger = data.join(LEDGER_FILE);
    assert!(said.contains(&format!("no ledger at {}", ledger.display())), "{what}: names the path: {said}");
    assert!(said.contains(&format!("claimgate init --data {}", data.display())), "{what}: names init: {said}");
    assert!(said.contains("--init"), "{what}: names the flag: {said}");
}

#[test]
fn serve_on_a_missing_ledger_exits_2_naming_the_path_and_the_flag_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A mistyped --data: not even the directory is made.
    let typo = dir.path().join("dta");
    assert_no_ledger_refusal(&serve(&typo, &[]), &typo, "a missing directory");
    assert!(!typo.exists(), "serve created {}", typo.display());
    // An existing directory without a ledger: nothing is made in it (not even the lock file).
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_no_ledger_refusal(&serve(&empty, &[]), &empty, "an empty directory");
    assert_eq!(listing(&empty), Vec::<String>::new(), "serve made something in an empty directory");
    // An empty ledger file (which SQLite would make a new ledger of) is no ledger either.
    let zero = dir.path().join("zero");
    std::fs::create_dir(&zero).unwrap();
    std::fs::write(zero.join(LEDGER_FILE), b"").unwrap();
    let out = serve(&zero, &[]);
    assert_no_ledger_refusal(&out, &zero, "an empty ledger file");
    assert!(stderr(&out).contains("(the file is empty)"), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(zero.join(LEDGER_FILE)).unwrap().len(), 0, "the empty file was written");
    assert_eq!(listing(&zero), vec![LEDGER_FILE.to_owned()]);
}

#[test]
fn serve_with_init_on_a_missing_or_empty_directory_starts_a_new_ledger_and_becomes_ready() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for data in [dir.path().join("new"), empty] {
        // Server::start passes --init.
        let mut server = Server::start(&data, &[]);
        assert_eq!(server.start_seq, 0);
        let ready = request(server.check, "GET", "/readyz", &[], b"");
        assert_eq!(ready.status, 200, "{}", ready.text());
        assert_eq!(server.event(&designated(INST, "2024-01-01")), 1);
        assert_eq!(server.terminate().code(), Some(0));
        assert!(data.join(LEDGER_FILE).exists());
        // The ledger is there now: serve needs no --init, and --init opens it as it is.
        let mut again = Server::start_existing(&data, &[]);
        assert_eq!(again.start_seq, 1, "{}", data.display());
        assert_eq!(again.terminate().code(), Some(0));
        let again = Server::start(&data, &[]);
        assert_eq!(again.start_seq, 1, "{}", data.display());
    }
}

#[test]
fn init_makes_a_new_ledger_under_the_policy_given_that_serve_then_opens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ledger-dir");
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, json!({"repair_cap_per_year": 3}).to_string()).unwrap();
    let p = path_str(&policy);
    let out = claimgate(&["--policy", p, "init", "--data", path_str(&data)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ledger = data.join(LEDGER_FILE);
    assert_eq!(line, json!({"created": path_str(&ledger), "seq": 0}));
    let made = std::fs::read(&ledger).unwrap();

    // A second init is an error naming the ledger, and leaves it as it was.
    let out = claimgate(&["--policy", p, "init", "--data", path_str(&data)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("{} already exists", ledger.display())), "{}", stderr(&out));
    assert!(std::fs::read(&ledger).unwrap() == made, "a second init changed the ledger");

    // The ledger carries init's policy: serving it under another is refused, under its own it serves.
    let out = serve(&data, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("different policy"), "{}", stderr(&out));
    let server = Server::start_existing(&data, &["--policy", p]);
    assert_eq!(server.start_seq, 0);
    assert_eq!(request(server.check, "GET", "/readyz", &[], b"").status, 200);

    // A PostgreSQL store makes its own schema: init is for the embedded ledger only.
    let elsewhere = dir.path().join("pg-node");
    let out = claimgate(&["--store", "postgres://nobody@127.0.0.1:1/none", "init", "--data", path_str(&elsewhere)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("creates its schema on first use"), "{}", stderr(&out));
    assert!(!elsewhere.exists());
}

#[test]
fn append_on_a_missing_ledger_is_refused_and_creates_nothing_unless_init() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dta");
    let events = json!([designated(INST, "2024-01-01")]);
    assert_no_ledger_refusal(&append(&data, &events, &[]), &data, "append");
    assert!(!data.exists(), "append created {}", data.display());
    let out = append(&data, &events, &["--init"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"event\":0,\"seq\":1}\n");
    assert!(data.join(LEDGER_FILE).exists());
}

#[test]
fn append_exits_0_when_every_event_is_accepted_and_3_with_a_summary_when_any_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = claimgate(&["init", "--data", path_str(&data)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = append(&data, &json!([designated(INST, "2024-01-01"), registered(DOC, INST, "2024-01-01")]), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"event\":0,\"seq\":1}\n{\"event\":1,\"seq\":2}\n");
    assert_eq!(stderr(&out), "claimgate: appended 2 of 2 events\n");

    let scored = violation("V1", DOC, "2026-03-10", 9, "serious");
    let events = json!([
        scored,
        scored,                                           // identical: already recorded (R8)
        violation("V1", DOC, "2026-03-10", 8, "serious"), // the same id, other content
        with(registered(DOC, INST, "2024-01-01"), "effective", json!("20240101")),
    ]);
    let out = append(&data, &events, &[]);
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    // Standard output keeps its one-line-per-event form.
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        lines,
        vec![
            json!({"event": 0, "seq": 3}),
            json!({"event": 1, "seq": 3}),
            json!({"event": 2, "error": "duplicate_violation"}),
            json!({"event": 3, "error": "invalid_request"}),
        ]
    );
    // Each refusal's reason, then the summary.
    assert!(said.contains("event 2 refused: duplicate_violation"), "{said}");
    assert!(said.contains("event 3 refused: invalid_request (field `effective`)"), "{said}");
    let summary = said.lines().last().unwrap();
    assert_eq!(
        summary,
        "claimgate: appended 2 of 4 events (1 already recorded); 2 refused: \
         event 2 duplicate_violation (field `violation_id`), event 3 invalid_request (field `effective`)"
    );

    // The codes are documented where an operator looks.
    let help = claimgate(&["append", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Exit codes: 0 every event was accepted; 3 some were refused"), "{help}");
}

#[test]
fn a_lost_ledger_is_refused_even_with_init() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    server.event(&designated(INST, "2024-01-01"));
    assert_eq!(server.terminate().code(), Some(0));
    let ledger = data.join(LEDGER_FILE);
    std::fs::remove_file(&ledger).unwrap();
    let listed = listing(&data);
    let init = ["init", "--data", path_str(&data)];
    for (what, out) in [
        ("serve", serve(&data, &[])),
        ("serve --init", serve(&data, &["--init"])),
        ("append --init", append(&data, &json!([designated(INST, "2024-01-01")]), &["--init"])),
        ("init", claimgate(&init)),
    ] {
        let said = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {said}");
        assert!(said.contains(&format!("{} is missing or empty", ledger.display())), "{what}: {said}");
        assert!(said.contains("the audit log") && said.contains("Restore it from a backup"), "{what}: {said}");
        assert!(!ledger.exists(), "{what} made a new ledger over the lost one");
        assert_eq!(listing(&data), listed, "{what} made or removed something");
    }
}
