//! The embedded ledger's contract (R5, R8): every acknowledged `seq` is on
//! disk in order with its content; refused events leave no trace; foreign or
//! damaged files are refused, never replaced.

use claimgate::event::{Event, RecordedEvent};
use claimgate::ledger::{AppendError, Ledger, LedgerError, LEDGER_FILE};
use claimgate::policy::Policy;
use claimgate::refusal::RefusalCode;
use serde_json::{json, Value};

fn event(v: Value) -> Event {
    Event::parse(&v, &Policy::default()).unwrap()
}

/// A deterministic mix of every event kind that the rules accept in order.
fn workload(n: usize) -> Vec<Event> {
    let mut out = vec![
        event(json!({"type": "institution_designated", "institution": "H11010500001", "effective": "2024-01-01"})),
        event(json!({"type": "institution_designated", "institution": "P44030500012", "effective": "2024-01-01"})),
    ];
    for i in 0..n {
        let p = format!("D1101050{:05}", i % 50);
        let day = format!("2026-{:02}-{:02}", 1 + i % 12, 1 + i % 28);
        out.push(match i % 6 {
            0 | 1 => event(json!({"type": "practitioner_registered", "practitioner": p, "institution": "H11010500001", "effective": "2025-01-01"})),
            2 => event(json!({"type": "violation_scored", "violation_id": format!("V{i}"), "practitioner": format!("D1101050{:05}", (i - 2) % 50),
                              "institution": "H11010500001", "effective": day, "points": 1 + i % 3, "severity": "minor", "responsibility": "general"})),
            3 => event(json!({"type": "violation_revoked", "violation_id": format!("V{}", i - 1), "effective": day})),
            4 => event(json!({"type": "institution_rated", "institution": "P44030500012", "year": 2025, "score": i % 101, "direct_e": []})),
            _ => event(json!({"type": "institution_suspended", "institution": "P44030500012", "effective": day, "until": "2027-01-01"})),
        });
    }
    out
}

#[test]
fn every_acknowledged_seq_is_found_in_order_after_reopening_following_each_append() {
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy::default();
    let mut acknowledged: Vec<RecordedEvent> = Vec::new();
    for e in workload(240) {
        let ledger = Ledger::open(dir.path(), &policy).unwrap();
        let appended = ledger.append(&e).unwrap_or_else(|err| panic!("{e:?} refused: {err}"));
        assert!(!appended.already_recorded);
        assert_eq!(appended.seq, acknowledged.last().map_or(1, |r| r.seq + 1), "seq is dense and increasing");
        acknowledged.push(RecordedEvent { seq: appended.seq, event: e });
        drop(ledger);

        let reopened = Ledger::open(dir.path(), &policy).unwrap();
        assert_eq!(reopened.head().unwrap(), appended.seq);
        assert_eq!(reopened.all_events().unwrap(), acknowledged);
    }
}

#[test]
fn refused_events_leave_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path(), &Policy::default()).unwrap();
    for e in workload(12) {
        ledger.append(&e).unwrap();
    }
    let before = ledger.all_events().unwrap();
    let refused = [
        (
            json!({"type": "practitioner_registered", "practitioner": "D110105000001", "institution": "H99999999999", "effective": "2025-01-01"}),
            RefusalCode::UnknownInstitution,
        ),
        (
            json!({"type": "points_repaired", "event_id": "R-1", "practitioner": "D999999999999", "points": 1, "effective": "2026-01-01"}),
            RefusalCode::UnknownPractitioner,
        ),
        (
            json!({"type": "violation_scored", "violation_id": "V2", "practitioner": "D110105000000", "institution": "H11010500001",
                "effective": "2026-05-05", "points": 3, "severity": "minor", "responsibility": "primary"}),
            RefusalCode::DuplicateViolation,
        ),
        (
            json!({"type": "violation_revoked", "violation_id": "V2", "effective": "2026-06-01"}),
            RefusalCode::AlreadyRevoked,
        ),
        (
            json!({"type": "institution_rated", "institution": "H11010500001", "year": 2025, "score": 101, "direct_e": []}),
            RefusalCode::InvalidScore,
        ),
    ];
    for (value, code) in refused {
        match ledger.append(&event(value.clone())) {
            Err(AppendError::Refused(r)) => assert_eq!(r.code, code, "{value}"),
            other => panic!("{value}: expected {code}, got {other:?}"),
        }
    }
    assert_eq!(ledger.all_events().unwrap(), before);
    assert_eq!(Ledger::open(dir.path(), &Policy::default()).unwrap().all_events().unwrap(), before);
}

#[test]
fn an_identical_violation_sent_again_answers_its_original_seq_and_stores_nothing() {
    let ledger = Ledger::open_in_memory(&Policy::default()).unwrap();
    for e in workload(3) {
        ledger.append(&e).unwrap();
    }
    let v = event(
        json!({"type": "violation_scored", "violation_id": "X1", "practitioner": "D110105000000", "institution": "H11010500001",
                         "effective": "2026-03-10", "points": 4, "severity": "moderate", "responsibility": "primary"}),
    );
    let first = ledger.append(&v).unwrap();
    let head = ledger.head().unwrap();
    let again = ledger.append(&v).unwrap();
    assert_eq!(again.seq, first.seq);
    assert!(again.already_recorded && !first.already_recorded);
    assert_eq!(ledger.head().unwrap(), head);
}

#[test]
fn a_batch_judges_each_event_against_the_ones_before_it() {
    let ledger = Ledger::open_in_memory(&Policy::default()).unwrap();
    let batch = [
        event(
            json!({"type": "practitioner_registered", "practitioner": "D110105000001", "institution": "H11010500001", "effective": "2025-01-01"}),
        ),
        event(json!({"type": "institution_designated", "institution": "H11010500001", "effective": "2024-01-01"})),
        event(
            json!({"type": "practitioner_registered", "practitioner": "D110105000001", "institution": "H11010500001", "effective": "2025-01-01"}),
        ),
        event(
            json!({"type": "points_repaired", "event_id": "R-2", "practitioner": "D110105000001", "points": 6, "effective": "2026-01-01"}),
        ),
        event(
            json!({"type": "points_repaired", "event_id": "R-3", "practitioner": "D110105000001", "points": 1, "effective": "2026-12-31"}),
        ),
        event(
            json!({"type": "points_repaired", "event_id": "R-4", "practitioner": "D110105000001", "points": 1, "effective": "2027-01-01"}),
        ),
    ];
    let outcomes = ledger.append_batch(&batch).unwrap();
    let summary: Vec<Result<u64, RefusalCode>> =
        outcomes.into_iter().map(|o| o.map(|a| a.seq).map_err(|r| r.code)).collect();
    assert_eq!(
        summary,
        [Err(RefusalCode::UnknownInstitution), Ok(1), Ok(2), Ok(3), Err(RefusalCode::RepairLimitExceeded), Ok(4),]
    );
}

#[test]
fn tailing_pages_through_events_in_seq_order() {
    let ledger = Ledger::open_in_memory(&Policy::default()).unwrap();
    for e in workload(30) {
        ledger.append(&e).unwrap();
    }
    let mut seen = Vec::new();
    loop {
        let page = ledger.events_since(seen.last().copied().unwrap_or(0), 7).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        seen.extend(page.iter().map(|r| r.seq));
    }
    assert_eq!(seen, (1..=ledger.head().unwrap()).collect::<Vec<_>>());
}

#[test]
fn a_file_that_is_not_a_ledger_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(LEDGER_FILE);
    let garbage = b"this is not a database, and it must survive being opened".repeat(200);
    std::fs::write(&path, &garbage).unwrap();
    let err = Ledger::open(dir.path(), &Policy::default()).err().expect("garbage must be refused");
    assert!(matches!(err, LedgerError::NotALedger { .. }), "{err}");
    assert!(err.to_string().contains("refusing to open"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage);

    let foreign = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(foreign.path().join(LEDGER_FILE)).unwrap();
    conn.execute_batch("CREATE TABLE accounts (id INTEGER); INSERT INTO accounts VALUES (7);").unwrap();
    drop(conn);
    let err = Ledger::open(foreign.path(), &Policy::default()).err().expect("a foreign database must be refused");
    assert!(matches!(err, LedgerError::NotALedger { .. }), "{err}");
    let conn = rusqlite::Connection::open(foreign.path().join(LEDGER_FILE)).unwrap();
    let kept: i64 = conn.query_row("SELECT id FROM accounts", [], |r| r.get(0)).unwrap();
    assert_eq!(kept, 7);
}

#[test]
fn a_ledger_from_a_newer_schema_or_another_policy_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Ledger::open(dir.path(), &Policy::default()).unwrap());

    let stricter = Policy { repair_cap_per_year: 3, ..Policy::default() };
    let err = Ledger::open(dir.path(), &stricter).err().expect("policy mismatch");
    assert!(matches!(err, LedgerError::PolicyMismatch { .. }), "{err}");

    let conn = rusqlite::Connection::open(dir.path().join(LEDGER_FILE)).unwrap();
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'", []).unwrap();
    drop(conn);
    let err = Ledger::open(dir.path(), &Policy::default()).err().expect("newer schema");
    assert!(matches!(err, LedgerError::SchemaTooNew { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("upgrade claimgate"));
}
