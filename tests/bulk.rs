//! Bulk loading (issue 15; `ledger::BulkLoad`): an empty ledger filled in
//! one load, its secondary indexes built at the end and R8's facts read from
//! memory, gives every event the verdict appending would (R5, R7a, R8) and
//! leaves the same ledger, event for event, on both backends; a load that is
//! not finished leaves the ledger empty; a ledger that is not empty is given
//! back untouched.

mod common;

use claimgate::event::Event;
use claimgate::ledger::{Appended, BulkLoad, Ledger, BULK_ASIDE, LEDGER_FILE};
use claimgate::policy::Policy;
use claimgate::refusal::Refusal;
use claimgate::scenario::without_annotations;
use std::path::Path;

/// The events a case sends that parse, twice over (the second half re-sends
/// the first, R7a), so lookups cross batches and land inside one.
fn case_events(case: &Path) -> Vec<Event> {
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(case).unwrap()).unwrap();
    let events: Vec<Event> = raw["events"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| Event::parse(&without_annotations(e), &Policy::default()).ok()).collect())
        .unwrap_or_default();
    events.iter().chain(events.iter()).cloned().collect()
}

type Outcomes = Vec<Result<Appended, Refusal>>;

/// `events` appended to an in-memory ledger in batches of `size`.
fn appended(events: &[Event], size: usize) -> (Outcomes, Ledger) {
    let ledger = Ledger::open_in_memory(&Policy::default()).unwrap();
    let outcomes = events.chunks(size).flat_map(|c| ledger.append_batch(c).unwrap()).collect();
    (outcomes, ledger)
}

/// `events` bulk-loaded in batches of `size`, the load finished.
fn loaded(mut bulk: BulkLoad, events: &[Event], size: usize) -> (Outcomes, Ledger) {
    let outcomes = events.chunks(size).flat_map(|c| bulk.append_batch(c).unwrap()).collect();
    (outcomes, bulk.finish(|_| {}).unwrap())
}

fn embedded_bulk(data: &Path) -> BulkLoad {
    Ledger::open(data, &Policy::default())
        .unwrap()
        .into_bulk_load()
        .unwrap()
        .ok()
        .expect("an empty ledger loads in bulk")
}

/// The names of the embedded ledger's indexes, read from its file.
fn sqlite_indexes(data: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(data.join(LEDGER_FILE)).unwrap();
    let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

#[test]
fn a_bulk_load_gives_every_spec_cases_events_the_verdicts_and_ledger_of_appending_them() {
    let dir = tempfile::tempdir().unwrap();
    for (n, case) in common::case_files().iter().enumerate() {
        let events = case_events(case);
        for size in [3, 10_000] {
            let (want, reference) = appended(&events, size);
            let data = dir.path().join(format!("{n}-{size}"));
            let (got, ledger) = loaded(embedded_bulk(&data), &events, size);
            assert_eq!(got, want, "{}, batches of {size}", case.display());
            assert_eq!(ledger.all_events().unwrap(), reference.all_events().unwrap(), "{}", case.display());
        }
    }
}

#[test]
fn a_bulk_load_into_postgres_gives_every_spec_cases_events_the_verdicts_and_ledger_of_appending_them() {
    let Some(server) = common::postgres_url("the PostgreSQL bulk-load test") else { return };
    for case in common::case_files() {
        let events = case_events(&case);
        let (want, reference) = appended(&events, 3);
        let schema = common::PgSchema::new(&server, "bulk");
        let ledger = Ledger::open_postgres(&schema.url(), &Policy::default()).unwrap();
        let (got, ledger) = loaded(ledger.into_bulk_load().unwrap().ok().expect("empty"), &events, 3);
        assert_eq!(got, want, "{}", case.display());
        assert_eq!(ledger.all_events().unwrap(), reference.all_events().unwrap(), "{}", case.display());
        assert_eq!(ledger.head().unwrap(), reference.head().unwrap());
    }
}

/// A few events of the first case, to load.
fn some_events() -> Vec<Event> {
    let events = case_events(&common::case_files()[0]);
    assert!(events.len() >= 4, "the first case has a few events");
    events
}

#[test]
fn an_embedded_bulk_load_keeps_the_ledgers_identity_and_indexes_and_appends_go_on_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let id = Ledger::open(&data, &Policy::default()).unwrap().id();
    let fresh = sqlite_indexes(&data);
    let events = some_events();
    let (_, ledger) = loaded(embedded_bulk(&data), &events, 10_000);
    assert_eq!(ledger.id(), id, "snapshots of the ledger it replaced stay its own");
    let head = ledger.head().unwrap();
    drop(ledger);
    assert_eq!(sqlite_indexes(&data), fresh, "every index built again");
    assert!(!data.join(BULK_ASIDE).exists(), "nothing left aside");
    let ledger = Ledger::open(&data, &Policy::default()).unwrap();
    // Appends after the load are judged against it, as after appending (R7a re-sends included).
    let (_, reference) = appended(&events, 10_000);
    assert_eq!(ledger.append_batch(&events).unwrap(), reference.append_batch(&events).unwrap());
    assert_eq!(ledger.all_events().unwrap(), reference.all_events().unwrap());
    assert!(ledger.head().unwrap() >= head);
}

#[test]
fn a_bulk_load_not_finished_leaves_the_ledger_empty_and_the_next_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let events = some_events();
    let mut bulk = embedded_bulk(&data);
    bulk.append_batch(&events).unwrap();
    drop(bulk); // as a process killed mid-load would
    assert!(data.join(BULK_ASIDE).exists(), "the unfinished file is aside");
    let ledger = Ledger::open(&data, &Policy::default()).unwrap();
    assert_eq!(ledger.head().unwrap(), 0, "the ledger is as it was");
    let Ok(bulk) = ledger.into_bulk_load().unwrap() else { panic!("still empty, so still a bulk load") };
    let (_, ledger) = loaded(bulk, &events, 10_000);
    assert_eq!(ledger.all_events().unwrap(), appended(&events, 10_000).1.all_events().unwrap());
}

#[test]
fn a_ledger_that_is_not_empty_is_given_back_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let events = some_events();
    let ledger = Ledger::open(&data, &Policy::default()).unwrap();
    ledger.append_batch(&events[..1]).unwrap();
    let Err(ledger) = ledger.into_bulk_load().unwrap() else { panic!("a ledger with events is not bulk-loaded") };
    assert_eq!(ledger.head().unwrap(), 1);
    assert!(!data.join(BULK_ASIDE).exists());
    assert!(
        Ledger::open_in_memory(&Policy::default()).unwrap().into_bulk_load().unwrap().is_err(),
        "nor one in memory"
    );
}

#[test]
fn a_postgres_bulk_load_is_one_transaction_and_a_ledger_with_events_is_given_back() {
    let Some(server) = common::postgres_url("the PostgreSQL bulk-load test") else { return };
    let schema = common::PgSchema::new(&server, "bulk_tx");
    let indexes = |schema: &common::PgSchema| -> i64 {
        let row = schema
            .admin()
            .query_one(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = 'events'",
                &[&schema.name],
            )
            .unwrap();
        row.get(0)
    };
    let events = some_events();
    let ledger = Ledger::open_postgres(&schema.url(), &Policy::default()).unwrap();
    let before = indexes(&schema);
    let mut bulk = ledger.into_bulk_load().unwrap().ok().expect("empty");
    bulk.append_batch(&events).unwrap();
    drop(bulk); // its session closes: rolled back
    let ledger = Ledger::open_postgres(&schema.url(), &Policy::default()).unwrap();
    assert_eq!(ledger.head().unwrap(), 0, "an unfinished load leaves nothing");
    assert_eq!(indexes(&schema), before, "and every index");
    let (_, ledger) = loaded(ledger.into_bulk_load().unwrap().ok().expect("still empty"), &events, 10_000);
    assert_eq!(indexes(&schema), before, "built again at the end");
    let head = ledger.head().unwrap();
    assert!(head > 0);
    let Err(ledger) = ledger.into_bulk_load().unwrap() else { panic!("not empty now") };
    assert_eq!(ledger.head().unwrap(), head);
}
