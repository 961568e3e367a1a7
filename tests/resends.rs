//! R7a re-sends on both ledger backends: an event whose `event_id` the
//! ledger already accepted is stored once and answered with its original
//! `seq` when identical, refused `duplicate_event` when not; revocations and
//! violations re-sent without one are recognised by what they name. And the
//! schema migration that brought `event_id` to ledgers written before it.
//!
//! The PostgreSQL runs need `CLAIMGATE_TEST_POSTGRES` (CI sets it) and print
//! that they are skipped otherwise.

mod common;

use claimgate::domain::CivilDate;
use claimgate::event::Event;
use claimgate::ledger::{Appended, Ledger, LEDGER_FILE};
use claimgate::policy::Policy;
use claimgate::refusal::RefusalCode;
use common::{postgres_url, PgSchema};
use serde_json::{json, Value};

const H: &str = "H11010500001";
const P: &str = "D110105000001";

fn event(v: Value) -> Event {
    Event::parse(&v, &Policy::default()).unwrap_or_else(|e| panic!("{v}: {e}"))
}

/// Designates `H` and registers `P` there.
fn setup(ledger: &Ledger) {
    for v in [
        json!({"type": "institution_designated", "institution": H, "effective": "2024-01-01"}),
        json!({"type": "practitioner_registered", "practitioner": P, "institution": H, "effective": "2024-01-01"}),
    ] {
        ledger.append(&event(v)).unwrap();
    }
}

/// One event of every kind, each with an `event_id` of its own, valid in
/// this order after [`setup`].
fn one_of_each_kind() -> Vec<Value> {
    vec![
        json!({"type": "institution_designated", "event_id": "E-1", "institution": "P44030500012", "effective": "2024-01-01"}),
        json!({"type": "institution_suspended", "event_id": "E-2", "institution": H, "effective": "2026-07-01", "until": "2026-08-01"}),
        json!({"type": "institution_rated", "event_id": "E-3", "institution": H, "year": 2025, "score": 91, "direct_e": []}),
        json!({"type": "practitioner_registered", "event_id": "E-4", "practitioner": "D110105000002", "institution": H, "effective": "2024-01-01"}),
        json!({"type": "practitioner_deregistered", "event_id": "E-5", "practitioner": "D110105000002", "institution": H, "effective": "2025-01-01"}),
        json!({"type": "violation_scored", "event_id": "京医保罚〔2025〕12号", "violation_id": "V1", "practitioner": P, "institution": H,
               "effective": "2026-03-10", "points": 3, "severity": "minor", "responsibility": "general"}),
        json!({"type": "violation_revoked", "event_id": "E-7", "violation_id": "V1", "effective": "2026-04-01"}),
        json!({"type": "points_repaired", "event_id": "E-8", "practitioner": P, "points": 2, "effective": "2026-05-01"}),
        json!({"type": "institution_terminated", "event_id": "E-9", "institution": "P44030500012", "effective": "2026-09-01"}),
    ]
}

/// `v` with one field changed (still a valid event of its kind).
fn changed(v: &Value) -> Value {
    let mut v = v.clone();
    let field = match v["type"].as_str().unwrap() {
        "institution_rated" => "score",
        "violation_scored" => "points",
        "points_repaired" => "points",
        "institution_suspended" => "until",
        _ => "effective",
    };
    v[field] = match field {
        "score" => json!(92),
        "points" => json!(1),
        "until" => json!("2026-09-01"),
        _ => json!("2024-02-01"),
    };
    v
}

/// Runs `test` on an embedded ledger, then on a PostgreSQL one if the
/// server under test is given.
fn on_both_backends(name: &str, test: impl Fn(&Ledger)) {
    test(&Ledger::open_in_memory(&Policy::default()).unwrap());
    if let Some(server) = postgres_url(name) {
        let schema = PgSchema::new(&server, "resend");
        test(&Ledger::open_postgres(&schema.url(), &Policy::default()).unwrap());
    }
}

fn code(outcome: Result<Appended, claimgate::ledger::AppendError>) -> Option<RefusalCode> {
    match outcome {
        Err(claimgate::ledger::AppendError::Refused(r)) => Some(r.code),
        Err(e) => panic!("storage failed: {e}"),
        Ok(_) => None,
    }
}

#[test]
fn an_identical_resend_of_every_kind_answers_its_original_seq_and_stores_nothing_r7a() {
    on_both_backends("the R7a re-send tests on PostgreSQL", |ledger| {
        setup(ledger);
        for v in one_of_each_kind() {
            let first = ledger.append(&event(v.clone())).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert!(!first.already_recorded, "{v}");
            let head = ledger.head().unwrap();
            let again = ledger.append(&event(v.clone())).unwrap();
            assert_eq!(again, Appended { seq: first.seq, already_recorded: true }, "{v}");
            assert_eq!(ledger.head().unwrap(), head, "{v}: a re-send stores nothing");
        }
        // Re-sent within one batch, and in a later batch: still once.
        let batch: Vec<Event> = one_of_each_kind().into_iter().map(event).collect();
        let head = ledger.head().unwrap();
        let outcomes = ledger.append_batch(&batch).unwrap();
        assert!(outcomes.iter().all(|o| o.as_ref().is_ok_and(|a| a.already_recorded)), "{outcomes:?}");
        assert_eq!(ledger.head().unwrap(), head);
    });
}

#[test]
fn a_changed_event_under_a_known_event_id_is_refused_duplicate_event_r7a() {
    on_both_backends("the R7a duplicate_event tests on PostgreSQL", |ledger| {
        setup(ledger);
        let kinds = one_of_each_kind();
        for v in &kinds {
            ledger.append(&event(v.clone())).unwrap();
        }
        let head = ledger.head().unwrap();
        for v in &kinds {
            assert_eq!(code(ledger.append(&event(changed(v)))), Some(RefusalCode::DuplicateEvent), "{v}");
        }
        // Another kind of event under a known id (case 12's shape).
        let other = json!({"type": "violation_scored", "event_id": "E-8", "violation_id": "V9", "practitioner": P,
                           "institution": H, "effective": "2026-03-20", "points": 4, "severity": "moderate",
                           "responsibility": "primary"});
        assert_eq!(code(ledger.append(&event(other))), Some(RefusalCode::DuplicateEvent));
        // duplicate_event comes before every later check of R8.
        let unknown = json!({"type": "points_repaired", "event_id": "E-8", "practitioner": "D999999999999",
                             "points": 2, "effective": "2026-05-01"});
        assert_eq!(code(ledger.append(&event(unknown))), Some(RefusalCode::DuplicateEvent));
        assert_eq!(ledger.head().unwrap(), head, "refusals store nothing");
    });
}

#[test]
fn revocations_and_violations_resent_without_event_id_are_recognised_by_what_they_name_r7a() {
    on_both_backends("the R7a self-naming re-send tests on PostgreSQL", |ledger| {
        setup(ledger);
        let violation = json!({"type": "violation_scored", "violation_id": "V1", "practitioner": P, "institution": H,
                               "effective": "2026-03-10", "points": 3, "severity": "minor", "responsibility": "general"});
        let revocation = json!({"type": "violation_revoked", "violation_id": "V1", "effective": "2026-04-01"});
        let scored = ledger.append(&event(violation.clone())).unwrap();
        let revoked = ledger.append(&event(revocation.clone())).unwrap();
        assert_eq!(ledger.append(&event(violation.clone())).unwrap(), Appended { already_recorded: true, ..scored });
        assert_eq!(ledger.append(&event(revocation.clone())).unwrap(), Appended { already_recorded: true, ..revoked });
        let mut later = revocation.clone();
        later["effective"] = json!("2026-04-02");
        assert_eq!(code(ledger.append(&event(later))), Some(RefusalCode::AlreadyRevoked));
        // "Identical" includes event_id: the same revocation with one is another event.
        let mut with_id = revocation;
        with_id["event_id"] = json!("E-REV");
        assert_eq!(code(ledger.append(&event(with_id))), Some(RefusalCode::AlreadyRevoked));
        let mut violation_with_id = violation;
        violation_with_id["event_id"] = json!("E-V1");
        assert_eq!(code(ledger.append(&event(violation_with_id))), Some(RefusalCode::DuplicateViolation));
    });
}

#[test]
fn a_retried_repair_removes_its_points_once_r7a_r11() {
    on_both_backends("the retried-repair test on PostgreSQL", |ledger| {
        setup(ledger);
        ledger
            .append(&event(json!({"type": "violation_scored", "violation_id": "V1", "practitioner": P, "institution": H,
                                   "effective": "2026-03-01", "points": 5, "severity": "moderate", "responsibility": "primary"})))
            .unwrap();
        let repair = json!({"type": "points_repaired", "event_id": "R-7", "practitioner": P, "points": 2, "effective": "2026-03-10"});
        let first = ledger.append(&event(repair.clone())).unwrap();
        for _ in 0..3 {
            assert_eq!(ledger.append(&event(repair.clone())).unwrap().seq, first.seq);
        }
        let day = CivilDate::parse("2026-03-31").unwrap();
        let file =
            ledger.practitioner_file(claimgate::domain::PractitionerCode::parse(P).unwrap(), day).unwrap().unwrap();
        assert_eq!(file.status.year_total, 3, "5 scored, 2 repaired once");
        assert_eq!(file.repairs.len(), 1);
    });
}

/// R7a on a shared ledger: many nodes re-sending the same repair (and the
/// same violation) at the same moment store each once, and every node is
/// answered with that one seq.
#[test]
fn nodes_resending_one_event_at_once_on_postgresql_store_it_once_r7a() {
    const NODES: usize = 8;
    let Some(server) = postgres_url("the concurrent re-send test on PostgreSQL") else { return };
    let schema = PgSchema::new(&server, "resend_nodes");
    let policy = Policy::default();
    setup(&Ledger::open_postgres(&schema.url(), &policy).unwrap());
    let repair = event(json!({"type": "points_repaired", "event_id": "R-SHARED", "practitioner": P, "points": 2,
                              "effective": "2026-03-10"}));
    let violation =
        event(json!({"type": "violation_scored", "event_id": "DEC-1", "violation_id": "V1", "practitioner": P,
                                 "institution": H, "effective": "2026-03-01", "points": 5, "severity": "moderate",
                                 "responsibility": "primary"}));
    let ledgers: Vec<Ledger> = (0..NODES).map(|_| Ledger::open_postgres(&schema.url(), &policy).unwrap()).collect();
    let start = std::sync::Barrier::new(NODES);
    let answers: Vec<(Appended, Appended)> = std::thread::scope(|s| {
        let nodes: Vec<_> = ledgers
            .iter()
            .map(|ledger| {
                let (start, repair, violation) = (&start, &repair, &violation);
                s.spawn(move || {
                    start.wait();
                    (ledger.append(violation).unwrap(), ledger.append(repair).unwrap())
                })
            })
            .collect();
        nodes.into_iter().map(|n| n.join().unwrap()).collect()
    });
    for pick in [|a: &(Appended, Appended)| a.0, |a: &(Appended, Appended)| a.1] {
        let stored: Vec<Appended> = answers.iter().map(pick).filter(|a| !a.already_recorded).collect();
        assert_eq!(stored.len(), 1, "stored exactly once: {answers:?}");
        assert!(answers.iter().map(pick).all(|a| a.seq == stored[0].seq), "one seq for every node: {answers:?}");
    }
    let rows: i64 =
        schema.admin().query_one(&format!("SELECT count(*) FROM \"{}\".events", schema.name), &[]).unwrap().get(0);
    assert_eq!(rows, 4, "two setup events, the violation and the repair");
}

/// A ledger file written before RULES.md v2 (schema 1: no `event_id` or
/// `points` columns, repairs without `event_id`) is migrated when opened:
/// every event is kept, the old repair still counts toward R13's cap, and
/// re-sends are recognised from then on.
#[test]
fn a_schema_1_ledger_is_migrated_on_open_and_keeps_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy::default();
    {
        let ledger = Ledger::open(dir.path(), &policy).unwrap();
        setup(&ledger);
        ledger
            .append(&event(json!({"type": "violation_scored", "violation_id": "V1", "practitioner": P, "institution": H,
                                   "effective": "2026-03-01", "points": 6, "severity": "moderate", "responsibility": "primary"})))
            .unwrap();
    }
    // Turn it into what schema 1 wrote, with a v1 repair (no event_id).
    {
        let db = rusqlite::Connection::open(dir.path().join(LEDGER_FILE)).unwrap();
        db.execute_batch(&format!(
            "DROP INDEX events_by_event_id; DROP INDEX events_scoring;
             ALTER TABLE events DROP COLUMN event_id; ALTER TABLE events DROP COLUMN points;
             UPDATE meta SET value = '1' WHERE key = 'schema_version';
             INSERT INTO events (seq, kind, effective, practitioner, institution, violation_id, body)
             VALUES (4, 'points_repaired', '2026-04-01', '{P}', NULL, NULL,
                     '{{\"type\":\"points_repaired\",\"practitioner\":\"{P}\",\"points\":4,\"effective\":\"2026-04-01\"}}');"
        ))
        .unwrap();
    }
    let ledger = Ledger::open(dir.path(), &policy).unwrap();
    assert_eq!(ledger.head().unwrap(), 4);
    let all = ledger.all_events().unwrap();
    assert_eq!(all.len(), 4, "every event is read back");
    assert!(matches!(all[3].event, Event::PointsRepaired { points: 4, event_id: None, .. }));
    // The migrated repair counts: 4 + 3 passes the cap of 6 (R13).
    let over = json!({"type": "points_repaired", "event_id": "R-2", "practitioner": P, "points": 3, "effective": "2026-05-01"});
    assert_eq!(code(ledger.append(&event(over))), Some(RefusalCode::RepairLimitExceeded));
    let fits = event(
        json!({"type": "points_repaired", "event_id": "R-2", "practitioner": P, "points": 2, "effective": "2026-05-01"}),
    );
    let first = ledger.append(&fits).unwrap();
    assert_eq!(ledger.append(&fits).unwrap(), Appended { already_recorded: true, ..first });
    let version: String = rusqlite::Connection::open(dir.path().join(LEDGER_FILE))
        .unwrap()
        .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, "2");
}

/// Over the admin API a re-send is answered as the original was, with its
/// `seq` and `"already_recorded": true`, in a single answer and in an
/// array's; the gate counts it apart from first acceptances.
#[cfg(unix)]
#[test]
fn the_event_api_answers_a_resend_with_its_original_seq_and_says_so_r7a() {
    use common::server::{designated, registered, Server};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    server.event(&designated(H, "2024-01-01"));
    server.event(&registered(P, H, "2024-01-01"));
    let repair = json!({"type": "points_repaired", "event_id": "R-7", "practitioner": P, "points": 2, "effective": "2026-03-10"});
    let first = server.admin_post("/v1/events", &repair).json();
    assert_eq!(first, json!({"seq": 3}));
    let again = server.admin_post("/v1/events", &repair).json();
    assert_eq!(again, json!({"seq": 3, "already_recorded": true}));
    let mut changed = repair.clone();
    changed["points"] = json!(3);
    let array = server.admin_post("/v1/events", &json!([repair, changed])).json();
    assert_eq!(array[0], json!({"event": 0, "seq": 3, "already_recorded": true}));
    assert_eq!((array[1]["error"].as_str(), array[1]["field"].as_str()), (Some("duplicate_event"), Some("event_id")));
    assert_eq!(server.ledger_head(), 3);
    let metrics = common::server::request(server.check, "GET", "/metrics", &[], b"").text();
    assert!(metrics.contains("claimgate_events_already_recorded_total 2"), "{metrics}");
}
