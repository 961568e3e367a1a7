//! `claimgate import` (issue 15; ROSTERS.md): roster CSV files and JSON
//! Lines of events into the ledger. Planted bad rows, and only they, are in
//! the reject file with their line, column and code; every other row is
//! imported; a second run adds nothing (content-derived event_ids, R7a); a
//! run killed mid-way and run again leaves the complete ledger with no
//! duplicate; headers are read as ROSTERS.md says, and a header that leaves a
//! column ambiguous or missing refuses the file.

mod common;

use claimgate::ledger::Ledger;
use claimgate::policy::Policy;
use common::server::COMMAND_TIMEOUT;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn claimgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_claimgate")).args(args).output().expect("claimgate runs")
}

fn summary(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Polls `condition` until it holds or `limit` passes; whether it held.
fn wait_until(limit: std::time::Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    condition()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An institutions roster of `n` designated institutions, platform names.
fn institutions(dir: &Path, n: usize) -> PathBuf {
    let mut text = String::from("\u{feff}fixmedins_code,fixmedins_name,begntime,endtime\n");
    for i in 0..n {
        text += &format!("H{:011},Hospital {i},2020-01-01 00:00:00,\n", 11010500000 + i);
    }
    let file = dir.join("institutions.csv");
    std::fs::write(&file, text).unwrap();
    file
}

/// A registrations roster of `n` rows (practitioner i at institution i % 10),
/// with claimgate's own names; `bad` rows replaced by planted faults.
fn registrations(dir: &Path, n: usize, bad: &[(usize, &str)]) -> PathBuf {
    let mut text = String::from("practitioner,institution,effective,deregistered,title\n");
    for i in 0..n {
        match bad.iter().find(|(at, _)| *at == i) {
            Some((_, row)) => text += row,
            None => {
                text += &format!("D{:012},H{:011},2022-03-01,,doctor", 110105000000u64 + i as u64, 11010500000 + i % 10)
            }
        }
        text.push('\n');
    }
    let file = dir.join("registrations.csv");
    std::fs::write(&file, text).unwrap();
    file
}

fn rejects(file: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(file).unwrap();
    r.records().map(|rec| rec.unwrap().iter().map(str::to_owned).collect()).collect()
}

#[test]
fn planted_bad_rows_and_only_they_are_rejected_by_line_and_a_second_run_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let inst = institutions(dir.path(), 10);
    // Data rows start on line 2 (line 1 is the header): row i is on line i + 2.
    let planted: [(usize, &str); 4] = [
        (7, "D110105000007,H99999999999,2022-03-01,,doctor"), // never designated: R8
        (100, "DX,H00011010500,2022-03-01,,doctor"),          // not a code: R4
        (250, "D110105000250,H00011010500,2022-13-40,,doctor"), // not a date: R4
        (400, "D110105000400,H00011010500,2022-03-01,2021-01-01,doctor"), // ends before it starts
    ];
    let reg = registrations(dir.path(), 1_000, &planted);
    let data = dir.path().join("data");
    let rejected = dir.path().join("rejects.csv");
    // Registrations named first: institutions are imported first anyway.
    let out =
        claimgate(&["import", "--data", path(&data), "--init", "--rejects", path(&rejected), path(&reg), path(&inst)]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&out);
    assert_eq!((s["rows"].as_u64(), s["refused"].as_u64()), (Some(1_010), Some(4)), "{s}");
    assert_eq!(s["appended"], 10 + 996, "{s}");
    let rows = rejects(&rejected);
    let got: Vec<(String, String, String)> = rows.iter().map(|r| (r[1].clone(), r[2].clone(), r[3].clone())).collect();
    assert_eq!(
        got,
        [
            ("9".into(), "institution".into(), "unknown_institution".into()),
            ("102".into(), "practitioner".into(), "invalid_request".into()),
            ("252".into(), "effective".into(), "invalid_request".into()),
            ("402".into(), "deregistered".into(), "invalid_request".into()),
        ],
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r[0] == path(&reg)), "{rows:?}");

    let ledger = Ledger::open(&data, &Policy::default()).unwrap();
    assert_eq!(ledger.head().unwrap(), 1_006);
    drop(ledger);

    // Again: every row already there, nothing appended, the same rows refused.
    let again = claimgate(&["import", "--data", path(&data), "--rejects", path(&rejected), path(&inst), path(&reg)]);
    assert_eq!(again.status.code(), Some(3));
    let s = summary(&again);
    assert_eq!((s["appended"].as_u64(), s["already_recorded"].as_u64()), (Some(0), Some(1_006)), "{s}");
    assert_eq!(rejects(&rejected).len(), 4);
}

/// Starts `claimgate import` of `files` into `data`, kills it (-9) once
/// `written()` holds, well before it ends.
fn import_killed_mid_way(data: &Path, rejects: &Path, files: &[&Path], written: impl FnMut() -> bool) {
    let mut args = vec!["import", "--data", path(data), "--rejects", path(rejects)];
    args.extend(files.iter().map(|f| path(f)));
    let mut child = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let grown = wait_until(COMMAND_TIMEOUT, written);
    let finished_first = child.try_wait().unwrap().is_some();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(grown, "the import wrote nothing within {COMMAND_TIMEOUT:?}");
    assert!(!finished_first, "the kill must land mid-way: make the roster larger if imports got this fast");
}

/// Every event of `data`'s ledger, checked to be `n` with no event_id twice.
fn assert_every_row_once(data: &Path, n: usize) {
    let events = Ledger::open(data, &Policy::default()).unwrap().all_events().unwrap();
    assert_eq!(events.len(), n, "every row once");
    let ids: std::collections::HashSet<_> = events.iter().filter_map(|r| r.event.event_id()).collect();
    assert_eq!(ids.len(), n, "no event twice");
}

#[test]
fn an_import_into_an_empty_ledger_killed_mid_way_leaves_it_empty_and_run_again_loads_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let inst = institutions(dir.path(), 10);
    let reg = registrations(dir.path(), 600_000, &[]);
    let data = dir.path().join("data");
    let rejected = dir.path().join("r.csv");
    assert!(claimgate(&["init", "--data", path(&data)]).status.success());
    // An empty ledger is loaded in bulk, in a file aside that becomes the ledger at the end.
    let aside = data.join(claimgate::ledger::BULK_ASIDE).join("ledger.sqlite3");
    import_killed_mid_way(&data, &rejected, &[&inst, &reg], || {
        std::fs::metadata(&aside).is_ok_and(|m| m.len() > 2 * 1024 * 1024)
    });
    assert_eq!(Ledger::open(&data, &Policy::default()).unwrap().head().unwrap(), 0, "all or nothing: nothing");

    let out = claimgate(&["import", "--data", path(&data), "--rejects", path(&rejected), path(&inst), path(&reg)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&out);
    assert_eq!((s["appended"].as_u64(), s["already_recorded"].as_u64()), (Some(600_010), Some(0)), "{s}");
    assert!(!data.join(claimgate::ledger::BULK_ASIDE).exists(), "the killed run's file is gone");
    assert_every_row_once(&data, 600_010);
}

#[test]
fn an_import_into_a_ledger_with_events_killed_mid_way_and_run_again_leaves_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let inst = institutions(dir.path(), 10);
    let reg = registrations(dir.path(), 60_000, &[]);
    let data = dir.path().join("data");
    let rejected = dir.path().join("r.csv");
    // The institutions first: the registrations then go batch by batch, each committed.
    let out = claimgate(&["import", "--init", "--data", path(&data), "--rejects", path(&rejected), path(&inst)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Killed once a batch of registrations is committed, read beside the import.
    let file = data.join("ledger.sqlite3");
    import_killed_mid_way(&data, &rejected, &[&inst, &reg], || {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        let head = rusqlite::Connection::open_with_flags(&file, flags)
            .and_then(|c| c.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get::<_, i64>(0)));
        head.is_ok_and(|h| h > 10)
    });
    let partial = Ledger::open(&data, &Policy::default()).unwrap().head().unwrap();
    assert!(partial > 10 && partial < 60_010, "the kill must land mid-way (head {partial} of 60,010)");

    let out = claimgate(&["import", "--data", path(&data), "--rejects", path(&rejected), path(&inst), path(&reg)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&out);
    assert_eq!(s["appended"].as_u64().unwrap() + s["already_recorded"].as_u64().unwrap(), 60_010, "{s}");
    assert_eq!(s["already_recorded"].as_u64(), Some(partial), "what the killed run committed is recognised: {s}");
    assert_every_row_once(&data, 60_010);
}

#[test]
fn headers_follow_rosters_md_and_an_ambiguous_or_incomplete_header_refuses_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rejected = dir.path().join("r.csv");
    let file = dir.path().join("inst.csv");
    // The platform's date-time form, an empty optional cell, extra columns.
    std::fs::write(&file, "fixmedins_code,begntime,endtime,other\nH11010500001,2020-01-01 08:30:00,,x\nP11010500002,2021-01-01,2024-06-30 00:00:00,y\n").unwrap();
    let out = claimgate(&["import", "--data", path(&data), "--init", "--rejects", path(&rejected), path(&file)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary(&out)["appended"], 3, "two designations and a termination");

    // An events file is taken as it is.
    let events = dir.path().join("more.jsonl");
    std::fs::write(
        &events,
        "{\"type\":\"institution_designated\",\"institution\":\"H11010500003\",\"effective\":\"2022-01-01\"}\n",
    )
    .unwrap();
    let out = claimgate(&["import", "--data", path(&data), "--rejects", path(&rejected), path(&events)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary(&out)["appended"], 1);

    for (header, why) in [
        ("fixmedins_code,institution,begntime\n", "given 2 times"),
        ("fixmedins_code,endtime\n", "no `begntime`"),
        ("name,city\n", "neither a registrations roster"),
    ] {
        std::fs::write(&file, format!("{header}H11010500001,2020-01-01,2020-01-01\n")).unwrap();
        let out = claimgate(&["import", "--data", path(&data), "--rejects", path(&rejected), path(&file)]);
        assert_eq!(out.status.code(), Some(2), "{header}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{header}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_roster_generated_from_the_population_imports_whole_and_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("roster");
    let made = claimgate(&["roster", "--practitioners", "2000", "--seed", "7", "--out", path(&out)]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let written = summary(&made);
    let rows = written["institution_rows"].as_u64().unwrap() + written["registration_rows"].as_u64().unwrap();
    assert!(written["registration_rows"].as_u64().unwrap() >= 2000, "{written}");
    let (inst, reg) = (out.join("institutions.csv"), out.join("registrations.csv"));
    let data = dir.path().join("data");
    let rejected = dir.path().join("r.csv");
    let first =
        claimgate(&["import", "--data", path(&data), "--init", "--rejects", path(&rejected), path(&reg), path(&inst)]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let s = summary(&first);
    assert_eq!((s["rows"].as_u64(), s["refused"].as_u64()), (Some(rows), Some(0)), "{s}");
    let again = claimgate(&["import", "--data", path(&data), "--rejects", path(&rejected), path(&inst), path(&reg)]);
    assert_eq!(summary(&again)["appended"], 0);
}

#[test]
fn an_import_through_a_serving_gates_admin_api_rejects_and_imports_as_a_local_one_and_once() {
    use common::server::{Server, TOKEN};
    let dir = tempfile::tempdir().unwrap();
    let inst = institutions(dir.path(), 10);
    let planted: [(usize, &str); 2] = [
        (7, "D110105000007,H99999999999,2022-03-01,,doctor"), // never designated: R8, judged by the gate
        (100, "DX,H00011010500,2022-03-01,,doctor"),          // not a code: R4, refused here
    ];
    // More than one request's worth of events (10,000 a request).
    let reg = registrations(dir.path(), 25_000, &planted);
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let rejected = dir.path().join("rejects.csv");
    let admin = format!("http://{}", server.admin);
    let run = || {
        claimgate(&[
            "import",
            "--gate",
            &admin,
            "--token-file",
            path(&token),
            "--rejects",
            path(&rejected),
            path(&inst),
            path(&reg),
        ])
    };
    let out = run();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&out);
    assert_eq!((s["appended"].as_u64(), s["refused"].as_u64()), (Some(10 + 24_998), Some(2)), "{s}");
    let got: Vec<(String, String, String)> =
        rejects(&rejected).iter().map(|r| (r[1].clone(), r[2].clone(), r[3].clone())).collect();
    assert_eq!(
        got,
        [
            ("9".into(), "institution".into(), "unknown_institution".into()),
            ("102".into(), "practitioner".into(), "invalid_request".into()),
        ]
    );
    // Again: the gate answers every row as already recorded (R7a).
    let s = summary(&run());
    assert_eq!((s["appended"].as_u64(), s["already_recorded"].as_u64()), (Some(0), Some(25_008)), "{s}");

    // A wrong token is named, and nothing is sent.
    std::fs::write(&token, "not-the-token").unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-file"), "{}", String::from_utf8_lossy(&out.stderr));
    drop(server);
    assert_eq!(Ledger::open(&data, &Policy::default()).unwrap().head().unwrap(), 25_008);
}
