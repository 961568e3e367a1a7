//! Export and restore (issue 15; ROSTERS.md "On the command line"): an
//! export restored into an empty ledger reproduces it exactly, on both
//! backends (the same events at the same `seq`s, so the same answers); a
//! file that does not reproduce is refused naming its line; the CLI builds an
//! embedded restore aside and leaves `--data` untouched when it is refused.

mod common;

use claimgate::claim::parse_claim;
use claimgate::ledger::Ledger;
use claimgate::policy::Policy;
use claimgate::rules::World;
use claimgate::scenario::{self, without_annotations, Scenario};
use claimgate::transfer::{self, TransferError};
use std::process::Command;

fn source_of(case: &std::path::Path) -> (Scenario, Ledger) {
    let scenario = Scenario::load(case).expect("a spec case");
    let ledger = Ledger::open_in_memory(&Policy::default()).unwrap();
    scenario::run(&scenario, &ledger).expect("the case runs");
    (scenario, ledger)
}

fn exported(ledger: &Ledger) -> Vec<u8> {
    let mut out = Vec::new();
    transfer::export(ledger, &mut out, |_, _| {}).expect("export");
    out
}

/// The answers every check of the case gets from `ledger`'s events.
fn answers(scenario: &Scenario, ledger: &Ledger) -> Vec<String> {
    let world = World::from_events(&ledger.all_events().unwrap(), ledger.policy());
    scenario
        .checks
        .iter()
        .filter_map(|raw| parse_claim(&without_annotations(raw)).ok())
        .map(|claim| format!("{:?}", world.decide(&claim)))
        .collect()
}

fn assert_reproduces(case: &std::path::Path, source: &Ledger, scenario: &Scenario, restored: &Ledger) {
    let name = case.display();
    assert_eq!(restored.all_events().unwrap(), source.all_events().unwrap(), "{name}: event for event, seq for seq");
    assert_eq!(restored.head().unwrap(), source.head().unwrap(), "{name}");
    assert_eq!(answers(scenario, restored), answers(scenario, source), "{name}: the same answers");
    assert_eq!(exported(restored), exported(source), "{name}: and the same export again");
}

#[test]
fn an_export_restored_into_an_empty_embedded_ledger_reproduces_every_spec_case() {
    for case in common::case_files() {
        let (scenario, source) = source_of(&case);
        let file = exported(&source);
        let restored = Ledger::open_in_memory(&Policy::default()).unwrap();
        let done = transfer::restore(&mut &restored, &file[..], |_| {}).expect("restore");
        assert_eq!(done.events, source.head().unwrap());
        assert_reproduces(&case, &source, &scenario, &restored);
    }
}

#[test]
fn an_export_restored_through_an_embedded_bulk_load_reproduces_every_spec_case() {
    let dir = tempfile::tempdir().unwrap();
    for (n, case) in common::case_files().iter().enumerate() {
        let (scenario, source) = source_of(case);
        let empty = Ledger::open(&dir.path().join(n.to_string()), &Policy::default()).unwrap();
        let mut bulk = empty.into_bulk_load().unwrap().ok().expect("a new ledger loads in bulk");
        transfer::restore(&mut bulk, &exported(&source)[..], |_| {}).expect("restore");
        assert_reproduces(case, &source, &scenario, &bulk.finish(|_| {}).unwrap());
    }
}

#[test]
fn an_export_restored_into_an_empty_postgres_schema_reproduces_every_spec_case() {
    let Some(server) = common::postgres_url("the PostgreSQL restore test") else { return };
    for case in common::case_files() {
        let (scenario, source) = source_of(&case);
        let schema = common::PgSchema::new(&server, "restore");
        // Through a bulk load, as the CLI restores.
        let empty = Ledger::open_postgres(&schema.url(), &Policy::default()).unwrap();
        let mut bulk = empty.into_bulk_load().unwrap().ok().expect("an empty schema loads in bulk");
        transfer::restore(&mut bulk, &exported(&source)[..], |_| {}).expect("restore");
        let restored = bulk.finish(|_| {}).unwrap();
        assert_reproduces(&case, &source, &scenario, &restored);
        // And back: the PostgreSQL ledger's export restores into SQLite alike.
        let again = Ledger::open_in_memory(&Policy::default()).unwrap();
        transfer::restore(&mut &again, &exported(&restored)[..], |_| {}).expect("restore from PostgreSQL's export");
        assert_reproduces(&case, &source, &scenario, &again);
    }
}

/// A source ledger with a few events, its export as lines.
fn small_export() -> (Ledger, Vec<String>) {
    let case = common::case_files().into_iter().next().unwrap();
    let (_, source) = source_of(&case);
    let text = String::from_utf8(exported(&source)).unwrap();
    (source, text.lines().map(str::to_owned).collect())
}

fn restore_lines(lines: &[String]) -> Result<transfer::Restored, TransferError> {
    let ledger = Ledger::open_in_memory(&Policy::default()).unwrap();
    transfer::restore(&mut &ledger, lines.join("\n").as_bytes(), |_| {})
}

#[test]
fn a_file_that_does_not_reproduce_is_refused_naming_its_line() {
    let (_, lines) = small_export();
    assert!(lines.len() >= 3, "the first case has a few events");

    let mut swapped = lines.clone();
    swapped.swap(1, 2);
    assert!(
        matches!(restore_lines(&swapped), Err(TransferError::OutOfOrder { line: 2, seq: 3, expected: 2 })),
        "reordered lines"
    );

    let mut unknown = lines.clone();
    unknown[0] = unknown[0].replacen("{\"seq\"", "{\"sequence\":1,\"seq\"", 1);
    let err = restore_lines(&unknown).unwrap_err();
    assert!(matches!(&err, TransferError::BadLine { line: 1, .. }) && err.to_string().contains("sequence"), "{err}");

    let mut twice = lines.clone();
    twice[0] = twice[0].replacen("{\"seq\":1", "{\"seq\":1,\"seq\":1", 1);
    assert!(matches!(restore_lines(&twice), Err(TransferError::BadLine { line: 1, .. })), "a key named twice (R4)");

    // The second line made to name an institution the ledger has never seen
    // (its first event designates the one it names): R8 refuses it on restore.
    let mut altered = lines.clone();
    altered.truncate(1);
    altered.push(
        "{\"seq\":2,\"event\":{\"type\":\"practitioner_registered\",\"practitioner\":\"D110105000001\",\
         \"institution\":\"H99999999999\",\"effective\":\"2024-02-01\"}}"
            .to_owned(),
    );
    let err = restore_lines(&altered).unwrap_err();
    assert!(matches!(&err, TransferError::Refused { line: 2, seq: 2, .. }), "{err}");
    assert!(err.to_string().contains("unknown_institution"), "{err}");
}

#[test]
fn restore_refuses_a_ledger_that_is_not_empty() {
    let (source, lines) = small_export();
    let err = transfer::restore(&mut &source, lines.join("\n").as_bytes(), |_| {}).unwrap_err();
    assert!(matches!(err, TransferError::NotEmpty { .. }), "{err}");
}

#[test]
fn the_cli_restores_an_export_and_leaves_data_untouched_when_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, lines) = small_export();
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let bin = env!("CARGO_BIN_EXE_claimgate");
    let run = |args: &[&str]| Command::new(bin).args(args).output().expect("claimgate runs");

    let data = dir.path().join("restored");
    let out = run(&["restore", "--data", data.to_str().unwrap(), file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = run(&["export", "--data", data.to_str().unwrap()]);
    assert!(again.status.success());
    assert_eq!(String::from_utf8(again.stdout).unwrap(), lines.join("\n") + "\n", "export -> restore -> export");

    // Into a directory that holds a ledger: bad input (2), nothing touched.
    let out = run(&["restore", "--data", data.to_str().unwrap(), file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));

    // A refused file: exit 1, and --data holds no ledger afterwards.
    let bad = dir.path().join("bad.jsonl");
    let mut broken = lines.clone();
    broken.swap(1, 2);
    std::fs::write(&bad, broken.join("\n")).unwrap();
    let target = dir.path().join("refused");
    let out = run(&["restore", "--data", target.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!target.join("ledger.sqlite3").exists(), "a refused restore leaves no ledger behind");
    let out = run(&["restore", "--data", target.to_str().unwrap(), file.to_str().unwrap()]);
    assert!(out.status.success(), "and the directory takes a good file afterwards");
}

#[test]
fn a_serving_gates_ledger_is_exported_without_stopping_it_and_restores_to_the_head_it_read() {
    use common::server::{bearer, designated, post, registered, Server, DOC, INST, TOKEN};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let auth = bearer(TOKEN);
    let headers = [("Authorization", auth.as_str())];
    let reply = post(
        server.admin,
        "/v1/events",
        &headers,
        &serde_json::json!([designated(INST, "2024-01-01"), registered(DOC, INST, "2024-02-01")]),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());

    // The gate holds the data directory's lock and keeps serving: export reads beside it.
    let out = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args(["export", "--data", data.to_str().unwrap()])
        .output()
        .expect("claimgate runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reply = post(server.admin, "/v1/events", &headers, &registered("D110105000002", INST, "2024-03-01"));
    assert_eq!(reply.status, 200, "the gate still appends: {}", reply.text());
    let ready = common::server::request(server.check, "GET", "/readyz", &[], b"");
    assert_eq!(ready.status, 200);

    let restored = Ledger::open_in_memory(&Policy::default()).unwrap();
    let done = transfer::restore(&mut &restored, &out.stdout[..], |_| {}).expect("restore");
    assert_eq!(done.events, 2, "the export holds the events up to the head it read, and no later one");
    drop(server);
    let source = Ledger::open(&data, &Policy::default()).unwrap();
    assert_eq!(restored.all_events().unwrap()[..], source.all_events().unwrap()[..2]);
}

#[test]
fn a_serving_gate_writes_an_online_backup_that_opens_as_its_ledger_and_keeps_the_newest_three() {
    use common::server::{bearer, designated, post, registered, Server, DOC, INST, TOKEN};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let auth = bearer(TOKEN);
    let headers = [("Authorization", auth.as_str())];
    let events = serde_json::json!([designated(INST, "2024-01-01"), registered(DOC, INST, "2024-02-01")]);
    assert_eq!(post(server.admin, "/v1/events", &headers, &events).status, 200);

    let unauthorised = post(server.admin, "/v1/backup", &[], &serde_json::json!({}));
    assert_eq!(unauthorised.status, 401, "{}", unauthorised.text());
    let reply = post(server.admin, "/v1/backup", &headers, &serde_json::json!({}));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer: serde_json::Value = serde_json::from_str(&reply.text()).unwrap();
    assert_eq!(answer["seq"], 2, "{answer}");
    let backup = std::path::PathBuf::from(answer["backup"].as_str().unwrap());
    assert!(backup.starts_with(data.join(claimgate::ledger::BACKUP_DIR)), "{}", backup.display());
    assert_eq!(std::fs::metadata(&backup).unwrap().len(), answer["bytes"].as_u64().unwrap());

    // The gate goes on appending; the backup holds what it had.
    let reply = post(server.admin, "/v1/events", &headers, &registered("D110105000002", INST, "2024-03-01"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let copy = dir.path().join("from-backup");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(&backup, copy.join(claimgate::ledger::LEDGER_FILE)).unwrap();
    let restored = Ledger::open(&copy, &Policy::default()).unwrap();
    assert_eq!(restored.head().unwrap(), 2);

    // At most KEEP_BACKUPS are kept, the newest (names sort by time, to the millisecond).
    for _ in 0..claimgate::ledger::KEEP_BACKUPS + 1 {
        let reply = post(server.admin, "/v1/backup", &headers, &serde_json::json!({}));
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let kept = std::fs::read_dir(data.join(claimgate::ledger::BACKUP_DIR)).unwrap().count();
    assert_eq!(kept, claimgate::ledger::KEEP_BACKUPS);
    drop(server);
    let source = Ledger::open(&data, &Policy::default()).unwrap();
    assert_eq!(restored.all_events().unwrap()[..], source.all_events().unwrap()[..2]);
}
