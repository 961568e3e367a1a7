//! Issue 17, the ledger's part: insured persons' settlement suspensions
//! (R7, R7a, R8, R23, R24) recorded on both backends. Every event of the
//! spec's `cases-insured/` is refused with its `expect_error` code or
//! accepted; an identical re-send of each accepted one answers its original
//! `seq` (R7a); PostgreSQL gives the embedded ledger's outcomes, one at a
//! time and in one batch, and a bulk load (import, restore) gives them too.

mod common;

use claimgate::event::Event;
use claimgate::ledger::{Appended, Ledger};
use claimgate::policy::Policy;
use claimgate::refusal::RefusalCode;
use common::{insured_case_files, postgres_url, PgSchema};
use serde_json::Value;
use std::path::PathBuf;

/// Each event of a case without its annotations, with the code it expects.
fn events_of(file: &PathBuf) -> Vec<(Value, Option<String>)> {
    let case: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    case["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|raw| {
            let mut event = raw.clone();
            let object = event.as_object_mut().expect("an event is an object");
            let expected = object.remove("expect_error").and_then(|v| v.as_str().map(str::to_owned));
            object.retain(|k, _| !k.starts_with("expect") && k != "note");
            (event, expected)
        })
        .collect()
}

/// Appends each event alone; the wire code of each outcome (`None`: accepted).
fn one_by_one(ledger: &Ledger, events: &[(Value, Option<String>)]) -> Vec<Result<Appended, String>> {
    let policy = Policy::default();
    events
        .iter()
        .map(|(raw, _)| match Event::parse(raw, &policy) {
            Err(refusal) => Err(refusal.code.as_str().to_owned()),
            Ok(event) => ledger.append_batch(&[event]).unwrap().remove(0).map_err(|r| r.code.as_str().to_owned()),
        })
        .collect()
}

#[test]
fn every_insured_case_event_gets_its_expected_code_and_a_resend_its_original_seq() {
    let policy = Policy::default();
    for file in insured_case_files() {
        let name = file.display();
        let events = events_of(&file);
        let ledger = Ledger::open_in_memory(&policy).unwrap();
        let outcomes = one_by_one(&ledger, &events);
        for ((raw, expected), got) in events.iter().zip(&outcomes) {
            assert_eq!(got.as_ref().err(), expected.as_ref(), "{name}: {raw}");
        }
        // R7a: identical re-sends of the kinds that name themselves (a
        // suspension by its id, a lifting) answer the original seq and
        // store nothing.
        let head = ledger.head().unwrap();
        for ((raw, _), first) in events.iter().zip(&outcomes) {
            let Ok(first) = first else { continue };
            if !raw["type"].as_str().is_some_and(|t| t.starts_with("insured_")) {
                continue;
            }
            let again = ledger.append_batch(&[Event::parse(raw, &policy).unwrap()]).unwrap().remove(0).unwrap();
            assert_eq!((again.seq, again.already_recorded), (first.seq, true), "{name}: {raw}");
        }
        assert_eq!(ledger.head().unwrap(), head, "{name}: a re-send stored nothing");
    }
}

/// R24 and R7a beyond the public case: a lifting re-sent with other content
/// is `already_lifted`; a suspension id reused with other content is
/// `duplicate_suspension`; and in R8's order, a period out of range is
/// answered before an unknown or duplicate id.
#[test]
fn a_second_lifting_and_a_reused_suspension_id_are_refused_by_name() {
    let policy = Policy::default();
    let ledger = Ledger::open_in_memory(&policy).unwrap();
    let event = |v: Value| Event::parse(&v, &policy).unwrap();
    let suspended = |id: &str, until: &str| {
        event(serde_json::json!({"type": "insured_settlement_suspended", "suspension_id": id,
            "insured": "44000012345678901234", "cause": "benefit_misuse", "effective": "2026-03-01", "until": until}))
    };
    let lifted = |id: &str, on: &str| {
        event(serde_json::json!({"type": "insured_settlement_lifted", "suspension_id": id, "effective": on}))
    };
    let code = |outcome: Result<Appended, claimgate::refusal::Refusal>| outcome.err().map(|r| r.code);
    let run = |e: Event| ledger.append_batch(&[e]).unwrap().remove(0);
    assert_eq!(code(run(suspended("S1", "2027-03-01"))), None, "12 months exactly is allowed (R24, R3)");
    assert_eq!(code(run(suspended("S1", "2026-12-01"))), Some(RefusalCode::DuplicateSuspension));
    assert_eq!(
        code(run(suspended("S1", "2027-03-02"))),
        Some(RefusalCode::InvalidSuspensionPeriod),
        "R8: period first"
    );
    assert_eq!(code(run(suspended("S2", "2026-06-01"))), None, "3 months exactly is allowed");
    assert_eq!(code(run(lifted("S1", "2026-05-01"))), None);
    assert!(run(lifted("S1", "2026-05-01")).unwrap().already_recorded, "an identical re-send (R7a)");
    assert_eq!(code(run(lifted("S1", "2026-06-01"))), Some(RefusalCode::AlreadyLifted));
    assert_eq!(code(run(lifted("S9", "2026-06-01"))), Some(RefusalCode::UnknownSuspension));
}

/// PostgreSQL and a bulk load give the embedded ledger's outcomes: each
/// event alone, and all of a case in one batch (facts read for the batch).
#[test]
fn postgresql_and_a_bulk_load_record_insured_events_as_the_embedded_ledger_does() {
    let policy = Policy::default();
    let server = postgres_url("the insured events on PostgreSQL");
    for file in insured_case_files() {
        let name = file.display();
        let events = events_of(&file);
        let parsed: Vec<Event> = events.iter().filter_map(|(raw, _)| Event::parse(raw, &policy).ok()).collect();
        let embedded = Ledger::open_in_memory(&policy).unwrap();
        let want = embedded.append_batch(&parsed).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let fresh = Ledger::open(dir.path(), &policy).unwrap();
        let mut bulk = fresh.into_bulk_load().unwrap().ok().expect("an empty file ledger loads in bulk");
        let got = bulk.append_batch(&parsed).unwrap();
        assert_eq!(got, want, "{name}: bulk load");

        if let Some(server) = &server {
            let schema = PgSchema::new(server, "insured");
            let pg = Ledger::open_postgres(&schema.url(), &policy).unwrap();
            assert_eq!(pg.append_batch(&parsed).unwrap(), want, "{name}: PostgreSQL, one batch");
            let alone = PgSchema::new(server, "insured1");
            let pg1 = Ledger::open_postgres(&alone.url(), &policy).unwrap();
            let embedded1 = Ledger::open_in_memory(&policy).unwrap();
            assert_eq!(one_by_one(&pg1, &events), one_by_one(&embedded1, &events), "{name}: PostgreSQL, alone");
            assert_eq!(pg.all_events().unwrap(), embedded.all_events().unwrap(), "{name}");
        }
    }
}
