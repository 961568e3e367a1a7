//! Tests of the PostgreSQL backend against a real server
//! (`CLAIMGATE_TEST_POSTGRES`; under CI its absence fails them): every
//! conformance case against the embedded backend, durability across reopen,
//! concurrent appenders and nodes, reconnection, TLS, and the durability
//! settings refused by name.
//! (A test file: its length is its cases.)

use super::*;
use crate::ledger::postgres_tls::TlsMode;
use crate::ledger::Ledger;
use claimgate_rules::claim::parse_claim;
use claimgate_rules::refusal::RefusalCode;
use claimgate_rules::World;
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::Instant;

const H: &str = "H11010500001";
const D1: &str = "D110105000001";
const D2: &str = "D110105000002";

/// The server under test, or `None` (and a note) when none is
/// configured; under CI its absence fails the test.
fn server() -> Option<String> {
    claimgate_testkit::postgres_url("the PostgreSQL ledger tests")
}

/// A schema of one test's own, dropped when the guard goes, even when the
/// test panics.
struct TestSchema {
    server: String,
    name: String,
}

impl TestSchema {
    fn new(server: &str, test: &str) -> TestSchema {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("t_{test}_{}_{}_{n}", std::process::id(), nanos % 1_000_000_000_000);
        assert!(name.len() <= MAX_SCHEMA_BYTES, "{name} is too long a schema name");
        TestSchema { server: server.to_owned(), name }
    }

    fn url(&self) -> String {
        let sep = if self.server.contains('?') { '&' } else { '?' };
        format!("{}{sep}schema={}", self.server, self.name)
    }

    fn open(&self) -> PostgresLedger {
        PostgresLedger::open(&self.url(), &Policy::default()).unwrap()
    }

    fn admin(&self) -> Client {
        Target::parse(&self.server).unwrap().connect("").unwrap()
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = Target::parse(&self.server).and_then(|t| t.connect("")) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(&self.name)));
        }
    }
}

fn event(value: serde_json::Value) -> Event {
    Event::parse(&value, &Policy::default()).unwrap()
}

fn designate(institution: &str) -> Event {
    event(json!({"type": "institution_designated", "institution": institution, "effective": "2024-01-01"}))
}

fn register(practitioner: &str, institution: &str, effective: &str) -> Event {
    event(json!({"type": "practitioner_registered", "practitioner": practitioner, "institution": institution,
                 "effective": effective}))
}

fn violation(id: &str, practitioner: &str, points: u32) -> Event {
    event(json!({"type": "violation_scored", "violation_id": id, "practitioner": practitioner, "institution": H,
                 "effective": "2026-03-10", "points": points, "severity": "minor", "responsibility": "general"}))
}

fn revoke(id: &str) -> Event {
    event(json!({"type": "violation_revoked", "violation_id": id, "effective": "2026-04-01"}))
}

fn repair(practitioner: &str, points: u32) -> Event {
    // R7a: each repair its own reference.
    static REPAIRS: AtomicU64 = AtomicU64::new(0);
    let id = format!("R-{}", REPAIRS.fetch_add(1, Ordering::Relaxed));
    event(json!({"type": "points_repaired", "event_id": id, "practitioner": practitioner, "points": points,
                 "effective": "2026-05-01"}))
}

fn code(outcome: &Result<Appended, Refusal>) -> Option<RefusalCode> {
    outcome.as_ref().err().map(|r| r.code)
}

fn all_events(ledger: &PostgresLedger) -> Vec<RecordedEvent> {
    let mut all: Vec<RecordedEvent> = Vec::new();
    loop {
        let batch = ledger.events_since(Lane::Sync, all.last().map_or(0, |r| r.seq), MAX_TAIL_BATCH).unwrap();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

type Scan = (Seq, Vec<(PractitionerCode, Vec<RecordedEvent>)>, Vec<(InstitutionCode, Vec<RecordedEvent>)>);

fn scan_postgres(ledger: &PostgresLedger) -> Scan {
    let (mut p, mut i) = (Vec::new(), Vec::new());
    let seq = ledger.scan_histories(|c, e| p.push((c, e.to_vec())), |c, e| i.push((c, e.to_vec()))).unwrap();
    (seq, p, i)
}

fn scan_embedded(ledger: &Ledger) -> Scan {
    let (mut p, mut i) = (Vec::new(), Vec::new());
    let seq = ledger.scan_histories(|c, e| p.push((c, e.to_vec())), |c, e| i.push((c, e.to_vec()))).unwrap();
    (seq, p, i)
}

/// A conformance case's events and checks (SCENARIOS.md), read as plain
/// JSON: the runner proper (`claimgate::scenario`) sits above this crate.
struct Case {
    events: Vec<serde_json::Value>,
    checks: Vec<serde_json::Value>,
}

impl Case {
    fn load(path: &Path) -> Case {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let list = |key: &str| value.get(key).and_then(|v| v.as_array()).cloned().unwrap_or_default();
        Case { events: list("events"), checks: list("checks") }
    }
}

/// An event or check without its `expect*` annotations (SCENARIOS.md).
fn without_annotations(item: &serde_json::Value) -> serde_json::Value {
    let mut item = item.clone();
    if let serde_json::Value::Object(map) = &mut item {
        map.retain(|k, _| !k.starts_with("expect"));
    }
    item
}

fn case_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/spec/cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the conformance cases in {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {}", dir.display());
    files
}

#[test]
fn every_case_gives_the_embedded_ledgers_outcomes_and_verdicts() {
    let Some(server) = server() else { return };
    let policy = Policy::default();
    for file in case_files() {
        let name = file.display();
        let scenario = Case::load(&file);
        let schema = TestSchema::new(&server, "cases");
        let pg = schema.open();
        let embedded = Ledger::open_in_memory(&policy).unwrap();
        for (i, raw) in scenario.events.iter().enumerate() {
            let (got, want) = match Event::parse(&without_annotations(raw), &policy) {
                Err(refusal) => (Err(refusal.clone()), Err(refusal)),
                Ok(event) => (
                    pg.append_batch(std::slice::from_ref(&event)).unwrap().pop().unwrap(),
                    embedded.append_batch(std::slice::from_ref(&event)).unwrap().pop().unwrap(),
                ),
            };
            assert_eq!(got, want, "{name}: event {i} {raw}");
            let expected = raw.get("expect_error").and_then(|c| c.as_str());
            assert_eq!(code(&got).map(RefusalCode::as_str), expected, "{name}: event {i} {raw}");
        }
        assert_eq!(pg.head().unwrap(), embedded.head().unwrap(), "{name}");
        let (pg_events, embedded_events) = (all_events(&pg), embedded.all_events().unwrap());
        assert_eq!(pg_events, embedded_events, "{name}");
        for r in &embedded_events {
            if let Some(p) = r.event.practitioner() {
                assert_eq!(pg.practitioner_history(p).unwrap(), embedded.practitioner_history(p).unwrap());
            }
            if let Some(i) = r.event.institution() {
                assert_eq!(pg.institution_history(i).unwrap(), embedded.institution_history(i).unwrap());
            }
            if let Event::ViolationScored(v) = &r.event {
                let owner = pg.violation_owner(Lane::Sync, &v.violation_id).unwrap();
                assert_eq!(owner, embedded.violation_owner(&v.violation_id).unwrap());
                assert_eq!(owner, Some(v.practitioner));
            }
        }
        let unknown = ViolationId::parse("never-scored").unwrap();
        assert_eq!(pg.violation_owner(Lane::Sync, &unknown).unwrap(), None);
        assert_eq!(scan_postgres(&pg), scan_embedded(&embedded), "{name}");
        let (pg_world, embedded_world) =
            (World::from_events(&pg_events, &policy), World::from_events(&embedded_events, &policy));
        for (j, raw) in scenario.checks.iter().enumerate() {
            if let Ok(claim) = parse_claim(raw) {
                assert_eq!(pg_world.decide(&claim), embedded_world.decide(&claim), "{name}: check {j} {raw}");
            }
        }
        pg.drop_schema().unwrap();
    }
}

#[test]
fn reopening_finds_every_acknowledged_event_and_no_refused_one() {
    let Some(server) = server() else { return };
    let schema = TestSchema::new(&server, "reopen");
    let ledger = schema.open();
    let batch = [
        designate(H),
        register(D1, H, "2024-01-01"),
        register(D2, "H31011500007", "2024-01-01"), // never designated
        violation("V1", D1, 3),
        violation("V1", D1, 3), // the same again: its original seq
        violation("V1", D1, 2), // same id, other content
        repair(D2, 1),          // never registered
        revoke("V1"),
        // Another revocation of it (not a re-send: another date).
        event(json!({"type": "violation_revoked", "violation_id": "V1", "effective": "2026-04-02"})),
        repair(D1, 7), // over the yearly cap of 6
        repair(D1, 3),
        event(json!({"type": "institution_rated", "institution": H, "year": 2025, "score": 101, "direct_e": []})),
    ];
    let outcomes = ledger.append_batch(&batch).unwrap();
    let ok = |seq| Some(Ok(Appended { seq, already_recorded: false }));
    let codes: Vec<Option<RefusalCode>> = outcomes.iter().map(code).collect();
    use RefusalCode as C;
    assert_eq!(
        codes,
        [
            None,
            None,
            Some(C::UnknownInstitution),
            None,
            None,
            Some(C::DuplicateViolation),
            Some(C::UnknownPractitioner),
            None,
            Some(C::AlreadyRevoked),
            Some(C::RepairLimitExceeded),
            None,
            Some(C::InvalidScore),
        ]
    );
    assert_eq!(outcomes[4], Ok(Appended { seq: 3, already_recorded: true }));
    let mut acked: Vec<RecordedEvent> = Vec::new();
    for (event, outcome) in batch.iter().zip(&outcomes) {
        if let Ok(Appended { seq, already_recorded: false }) = outcome {
            assert_eq!(*seq, acked.len() as Seq + 1, "seqs are consecutive from 1");
            acked.push(RecordedEvent { seq: *seq, event: event.clone() });
        }
    }
    assert_eq!(acked.len(), 5);
    for event in [register(D2, H, "2025-01-01"), violation("V2", D2, 2)] {
        let outcome = ledger.append_batch(std::slice::from_ref(&event)).unwrap().pop();
        assert_eq!(outcome, ok(acked.len() as Seq + 1));
        acked.push(RecordedEvent { seq: acked.len() as Seq + 1, event });
    }
    // A batch refused whole changes nothing; an identical re-send of the
    // revocation stores nothing either and answers its seq (R7a).
    let again = event(json!({"type": "violation_revoked", "violation_id": "V1", "effective": "2026-04-02"}));
    assert_eq!(code(&ledger.append_batch(&[again]).unwrap()[0]), Some(C::AlreadyRevoked));
    assert_eq!(ledger.append_batch(&[revoke("V1")]).unwrap()[0], Ok(Appended { seq: 4, already_recorded: true }));
    assert_eq!(ledger.append_batch(&[]).unwrap(), []);
    assert_eq!(ledger.head().unwrap(), 7);
    let id = ledger.id();
    assert_ne!(id, 0);
    drop(ledger);

    let ledger = schema.open();
    assert_eq!(ledger.id(), id);
    assert_eq!(ledger.head().unwrap(), 7);
    assert_eq!(all_events(&ledger), acked);
    let rows: i64 = schema
        .admin()
        .query_one(&format!("SELECT count(*) FROM {}.events", quote_ident(&schema.name)), &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 7, "refused events leave no trace");
    assert_eq!(ledger.events_since(Lane::Sync, 3, 2).unwrap(), acked[3..5]);
    assert_eq!(ledger.events_since(Lane::Sync, 7, 10).unwrap(), []);
    assert_eq!(ledger.events_since(Lane::Sync, 0, 0).unwrap(), []);
    let seqs = |events: Vec<RecordedEvent>| events.iter().map(|r| r.seq).collect::<Vec<_>>();
    let d1 = PractitionerCode::parse(D1).unwrap();
    let d2 = PractitionerCode::parse(D2).unwrap();
    assert_eq!(seqs(ledger.practitioner_history(d1).unwrap()), [2, 3, 4, 5], "the revocation is filed under D1");
    assert_eq!(seqs(ledger.practitioner_history(d2).unwrap()), [6, 7]);
    assert_eq!(seqs(ledger.institution_history(InstitutionCode::parse(H).unwrap()).unwrap()), [1]);
    assert_eq!(ledger.violation_owner(Lane::Sync, &ViolationId::parse("V1").unwrap()).unwrap(), Some(d1));
    let (head, practitioners, institutions) = scan_postgres(&ledger);
    assert_eq!((head, practitioners.len(), institutions.len()), (7, 2, 1));
    // Appends go on where they stopped.
    assert_eq!(ledger.append_batch(&[repair(D2, 1)]).unwrap().pop(), ok(8));
    let description = ledger.describe();
    assert!(description.contains(&schema.name), "{description}");
    ledger.drop_schema().unwrap();
}

/// The index's one read per sync batch: each code's history as it stood at
/// `upto`, in the order asked, the same on both backends and the same as
/// reading each history alone (revocations filed under their owner).
#[test]
fn many_histories_in_one_read_are_each_history_up_to_the_seq_asked() {
    let Some(server) = server() else { return };
    let schema = TestSchema::new(&server, "histories");
    let ledger = schema.open();
    let embedded = Ledger::open_in_memory(&Policy::default()).unwrap();
    let h2 = "H31011500007";
    let batch = [
        designate(H),
        designate(h2),
        register(D1, H, "2024-01-01"),
        register(D2, h2, "2024-01-01"),
        violation("V1", D1, 3),
        revoke("V1"),
        violation("V2", D2, 2),
        event(json!({"type": "institution_suspended", "institution": h2, "effective": "2026-02-01",
                     "until": "2026-03-01"})),
    ];
    let outcomes = ledger.append_batch(&batch).unwrap();
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    embedded.append_batch(&batch).unwrap();
    let p = |c: &str| PractitionerCode::parse(c).unwrap();
    let i = |c: &str| InstitutionCode::parse(c).unwrap();
    let practitioners = [p(D2), p("D110105000099"), p(D1)];
    let institutions = [i(h2), i(H)];
    for upto in [0, 5, 6, 8] {
        let got = ledger.histories_upto(Lane::Background, &practitioners, &institutions, upto).unwrap();
        let on_embedded = embedded.on(Lane::Background).histories_upto(&practitioners, &institutions, upto).unwrap();
        let alone = |h: Vec<RecordedEvent>| h.into_iter().filter(|r| r.seq <= upto).collect::<Vec<_>>();
        for (n, &code) in practitioners.iter().enumerate() {
            assert_eq!(got.practitioners[n], alone(ledger.practitioner_history(code).unwrap()), "{code} at {upto}");
            assert_eq!(got.practitioners[n], on_embedded.practitioners[n]);
        }
        for (n, &code) in institutions.iter().enumerate() {
            assert_eq!(got.institutions[n], alone(ledger.institution_history(code).unwrap()), "{code} at {upto}");
            assert_eq!(got.institutions[n], on_embedded.institutions[n]);
        }
    }
    let d1 = ledger.histories_upto(Lane::Sync, &[p(D1)], &[], 8).unwrap();
    let kinds: Vec<&str> = d1.practitioners[0].iter().map(|r| r.event.kind()).collect();
    assert_eq!(kinds, ["practitioner_registered", "violation_scored", "violation_revoked"]);
}

/// R12 and R15 across transactions: a termination's violation revoked in one
/// append no longer bars a registration in a later one. The batch read takes
/// the revocations apart from the scoring steps and drops the revoked steps
/// itself; this holds it to the embedded ledger's answers, one batch each.
#[test]
fn a_violation_revoked_in_an_earlier_transaction_bars_no_later_registration() {
    let Some(server) = server() else { return };
    let schema = TestSchema::new(&server, "revoked_steps");
    let ledger = schema.open();
    let embedded = Ledger::open_in_memory(&Policy::default()).unwrap();
    let h2 = "H31011500007";
    let batches = [
        vec![designate(H), designate(h2), register(D1, H, "2024-01-01")],
        // R9: 12 points is a fraud.
        vec![event(json!({"type": "violation_scored", "violation_id": "V1", "practitioner": D1, "institution": H,
                          "effective": "2026-03-10", "points": 12, "severity": "fraud",
                          "responsibility": "primary"}))],
        // Two events each: one alone is validated without the batch read.
        vec![register(D2, H, "2026-06-01"), register(D1, h2, "2026-06-01")],
        vec![revoke("V1")],
        vec![register(D2, H, "2026-06-02"), register(D1, h2, "2026-06-02")],
    ];
    let mut codes = Vec::new();
    for batch in &batches {
        let on_postgres = ledger.append_batch(batch).unwrap();
        assert_eq!(on_postgres, embedded.append_batch(batch).unwrap(), "the backends disagree on {batch:?}");
        codes.push(on_postgres.iter().map(code).collect::<Vec<_>>());
    }
    assert_eq!(codes[2], [None, Some(RefusalCode::RegistrationBanned)], "12 points standing bar it (R15)");
    assert_eq!(codes[4], [None, None], "the revoked violation bars nothing (R12)");
}

#[test]
fn concurrent_appenders_leave_no_gap_for_a_tailer() {
    let Some(server) = server() else { return };
    const APPENDERS: u64 = 8;
    const EACH: u64 = 300;
    let schema = TestSchema::new(&server, "gap");
    let setup = schema.open();
    assert_eq!(setup.append_batch(&[designate(H)]).unwrap()[0], Ok(Appended { seq: 1, already_recorded: false }));
    let done = AtomicBool::new(false);
    let start = Barrier::new(APPENDERS as usize + 1);
    let started = Instant::now();
    let (tailed, appended) = std::thread::scope(|s| {
        let tailer = s.spawn(|| {
            let ledger = schema.open();
            start.wait();
            let (mut seen, mut polls) = (Vec::<RecordedEvent>::new(), 0u64);
            loop {
                let finished = done.load(Ordering::Acquire);
                let batch = ledger.events_since(Lane::Sync, seen.last().map_or(0, |r| r.seq), 100).unwrap();
                polls += 1;
                if batch.is_empty() && finished {
                    return (seen, polls);
                }
                for r in batch {
                    let expected = seen.last().map_or(0, |r| r.seq) + 1;
                    assert_eq!(r.seq, expected, "the tailer skipped or repeated a seq");
                    seen.push(r);
                }
            }
        });
        let appenders: Vec<_> = (0..APPENDERS)
            .map(|t| {
                let (schema, start) = (&schema, &start);
                s.spawn(move || {
                    let ledger = schema.open();
                    start.wait();
                    let mut mine = Vec::new();
                    for i in 0..EACH {
                        let code = format!("D{:012}", 110_105_000_000 + t * 1000 + i + 1);
                        let event = register(&code, H, "2024-02-01");
                        let outcome = ledger.append_batch(std::slice::from_ref(&event)).unwrap().pop().unwrap();
                        let seq = outcome.unwrap().seq;
                        assert!(mine.last().is_none_or(|(last, _)| *last < seq));
                        mine.push((seq, event));
                    }
                    mine
                })
            })
            .collect();
        let appended: Vec<(Seq, Event)> = appenders.into_iter().flat_map(|a| a.join().unwrap()).collect();
        done.store(true, Ordering::Release);
        (tailer.join().unwrap(), appended)
    });
    let elapsed = started.elapsed();
    let (tailed, polls) = tailed;
    let head = setup.head().unwrap();
    assert_eq!(head, 1 + APPENDERS * EACH);
    assert_eq!(tailed.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=head).collect::<Vec<_>>());
    assert_eq!(tailed, all_events(&setup), "the tailer read what the table holds");
    for (seq, event) in &appended {
        assert_eq!(&tailed[*seq as usize - 1].event, event, "seq {seq} holds what was acknowledged");
    }
    eprintln!(
        "gap test: {} single-event appends from {APPENDERS} connections in {elapsed:.2?} ({:.0}/s), {polls} tail polls",
        appended.len(),
        appended.len() as f64 / elapsed.as_secs_f64()
    );
    setup.drop_schema().unwrap();
}

#[test]
fn concurrent_nodes_never_accept_what_r8_refuses_in_order() {
    let Some(server) = server() else { return };
    const NODES: usize = 16;
    let schema = TestSchema::new(&server, "r8");
    let setup = schema.open();
    let setup_events = [designate(H), register(D1, H, "2024-01-01"), violation("V1", D1, 3)];
    for event in setup_events {
        assert!(setup.append_batch(&[event]).unwrap()[0].is_ok());
    }
    let start = Barrier::new(NODES);
    let started = Instant::now();
    let outcomes: Vec<(Event, Result<Appended, Refusal>)> = std::thread::scope(|s| {
        let nodes: Vec<_> = (0..NODES)
            .map(|n| {
                let (schema, start) = (&schema, &start);
                s.spawn(move || {
                    let ledger = schema.open();
                    let (revocation, repair) = (revoke("V1"), repair(D1, 1 + n as u32 % 3));
                    start.wait();
                    let batches = match n % 3 {
                        0 => vec![vec![revocation, repair]],
                        1 => vec![vec![revocation], vec![repair]],
                        _ => vec![vec![repair], vec![revocation]],
                    };
                    let mut outcomes = Vec::new();
                    for batch in batches {
                        outcomes.extend(batch.iter().cloned().zip(ledger.append_batch(&batch).unwrap()));
                    }
                    outcomes
                })
            })
            .collect();
        nodes.into_iter().flat_map(|n| n.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    let revocations: Vec<_> = outcomes.iter().filter(|(e, _)| matches!(e, Event::ViolationRevoked { .. })).collect();
    assert_eq!(revocations.len(), NODES);
    // R7a: the identical revocation sent by every node at once is stored
    // once, and every node is answered with that one seq.
    let stored: Vec<Seq> = revocations
        .iter()
        .filter_map(|(_, o)| match o {
            Ok(Appended { seq, already_recorded: false }) => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(stored.len(), 1, "exactly one revocation stored: {revocations:?}");
    assert!(
        revocations.iter().all(|(_, o)| o.as_ref().is_ok_and(|a| a.seq == stored[0])),
        "every re-send answers the stored seq: {revocations:?}"
    );
    let mut repaired = 0;
    for (event, outcome) in &outcomes {
        if let (Event::PointsRepaired { points, .. }, Ok(_)) = (event, outcome) {
            repaired += points;
        }
        if let (Event::PointsRepaired { .. }, Err(refusal)) = (event, outcome) {
            assert_eq!(refusal.code, RefusalCode::RepairLimitExceeded);
        }
    }
    assert!(repaired <= 6, "accepted repairs sum to {repaired}, past the yearly cap");
    assert!(repaired >= 4, "a repair that fits is never refused: accepted only {repaired}");
    // What the ledger holds is exactly what R8 accepts taken in seq order.
    let replay = Ledger::open_in_memory(&Policy::default()).unwrap();
    let all = all_events(&setup);
    assert_eq!(all.len() as Seq, setup.head().unwrap());
    for r in &all {
        assert_eq!(replay.append(&r.event).unwrap(), Appended { seq: r.seq, already_recorded: false }, "{r:?}");
    }
    eprintln!("r8 test: {} events from {NODES} connections in {elapsed:.2?}", outcomes.len());
    setup.drop_schema().unwrap();
}

#[test]
fn open_refuses_what_it_must_and_concurrent_opens_agree() {
    let Some(server) = server() else { return };
    let schema = TestSchema::new(&server, "open");
    // Many nodes creating one new ledger at once make one ledger.
    let ids: Vec<u64> = std::thread::scope(|s| {
        let opens: Vec<_> = (0..8).map(|_| s.spawn(|| schema.open().id())).collect();
        opens.into_iter().map(|o| o.join().unwrap()).collect()
    });
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let policy = Policy { repair_cap_per_year: 5, ..Policy::default() };
    let err = PostgresLedger::open(&schema.url(), &policy).err().unwrap();
    assert!(matches!(err, LedgerError::PolicyMismatch { .. }), "{err}");
    let mut admin = schema.admin();
    let table = format!("{}.claimgate_schema", quote_ident(&schema.name));
    admin.batch_execute(&format!("UPDATE {table} SET version = 99")).unwrap();
    let err = PostgresLedger::open(&schema.url(), &Policy::default()).err().unwrap();
    assert!(matches!(err, LedgerError::SchemaTooNew { found: 99, supported: SCHEMA_VERSION, .. }), "{err}");
    assert!(err.to_string().contains(&schema.name), "{err}");
    admin.batch_execute(&format!("UPDATE {table} SET version = {SCHEMA_VERSION}")).unwrap();
    schema.open().drop_schema().unwrap();

    let foreign = TestSchema::new(&server, "foreign");
    admin.batch_execute(&format!("CREATE SCHEMA {0}; CREATE TABLE {0}.t (x int)", quote_ident(&foreign.name))).unwrap();
    let err = PostgresLedger::open(&foreign.url(), &Policy::default()).err().unwrap();
    assert!(matches!(err, LedgerError::NotALedger { .. }), "{err}");
    let tables: i64 =
        admin.query_one("SELECT count(*) FROM pg_tables WHERE schemaname = $1", &[&foreign.name]).unwrap().get(0);
    assert_eq!(tables, 1, "a foreign schema is left untouched");

    let empty = format!("{}{}schema=", schema.server, if schema.server.contains('?') { '&' } else { '?' });
    assert!(matches!(PostgresLedger::open(&empty, &Policy::default()), Err(LedgerError::NotALedger { .. })));
    let bad = format!("{}{}no_such_option=1", schema.server, if schema.server.contains('?') { '&' } else { '?' });
    assert!(matches!(PostgresLedger::open(&bad, &Policy::default()), Err(LedgerError::Postgres { .. })));
}

#[test]
fn a_lost_connection_fails_one_call_and_is_reopened() {
    let Some(server) = server() else { return };
    let schema = TestSchema::new(&server, "reconnect");
    let app = schema.name.clone();
    let url = format!("{}&application_name={app}", schema.url());
    let ledger = PostgresLedger::open(&url, &Policy::default()).unwrap();
    assert!(ledger.append_batch(&[designate(H)]).unwrap()[0].is_ok());
    let mut admin = schema.admin();
    let kill = |admin: &mut Client| -> i64 {
        admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(kill(&mut admin), 2, "the writer and the reader");
    std::thread::sleep(Duration::from_millis(100));
    let mut failures = 0;
    let head = loop {
        match ledger.head() {
            Ok(head) => break head,
            Err(LedgerError::Postgres { .. }) if failures == 0 => failures += 1,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(head, 1);
    let mut failures = 0;
    let outcome = loop {
        match ledger.append_batch(&[register(D1, H, "2024-01-01")]) {
            Ok(mut outcomes) => break outcomes.pop().unwrap(),
            Err(LedgerError::Postgres { .. }) if failures == 0 => failures += 1,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(outcome, Ok(Appended { seq: 2, already_recorded: false }));
    assert_eq!(ledger.events_since(Lane::Sync, 0, 10).unwrap().len(), 2);
    ledger.drop_schema().unwrap();
}

/// Issue 13: client reads (integrity files, `explain`) run on query
/// sessions of their own, opened when first needed, at most
/// QUERY_CONNECTIONS, with a statement timeout; they read what the sync
/// reader reads, and a terminated one is replaced within the same call.
#[test]
fn query_sessions_read_what_the_sync_reader_reads_and_are_replaced_when_lost() {
    let Some(server) = server() else { return };
    let schema = TestSchema::new(&server, "queries");
    let app = schema.name.clone();
    let url = format!("{}&application_name={app}", schema.url());
    let ledger = PostgresLedger::open(&url, &Policy::default()).unwrap();
    let events = [designate(H), register(D1, H, "2024-01-01"), violation("V1", D1, 3)];
    assert!(ledger.append_batch(&events).unwrap().iter().all(Result::is_ok));
    let mut admin = schema.admin();
    let count = |admin: &mut Client, sql: &str| -> i64 { admin.query_one(sql, &[&app]).unwrap().get(0) };
    let open = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1";
    let terminate = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1";
    assert_eq!(count(&mut admin, open), 2, "the writer and the sync reader; no query session yet");
    let code = PractitionerCode::parse(D1).unwrap();
    let institution = InstitutionCode::parse(H).unwrap();
    assert_eq!(ledger.query_practitioner_history(code).unwrap(), ledger.practitioner_history(code).unwrap());
    assert_eq!(
        ledger.query_institution_history(institution).unwrap(),
        ledger.institution_history(institution).unwrap()
    );
    assert_eq!(count(&mut admin, open), 3, "one query session, opened for the first read");
    let timeout: String = {
        let mut conn = lock(&ledger.queries[0]);
        conn.as_mut().unwrap().client.query_one("SHOW statement_timeout", &[]).unwrap().get(0)
    };
    assert_eq!(timeout, "10s", "QUERY_STATEMENT_TIMEOUT, as PostgreSQL shows it");
    assert_eq!(count(&mut admin, terminate), 3, "every session terminated");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(ledger.query_practitioner_history(code).unwrap().len(), 2, "read again on a fresh session");
    // The writer's session is gone too: the schema guard drops the schema.
}

#[test]
fn an_accepted_batch_notifies_its_new_head_on_commit() {
    let Some(server) = server() else { return };
    let schema = TestSchema::new(&server, "notify");
    let ledger = schema.open();
    let mut listener = schema.admin();
    listener.batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}")).unwrap();
    let batch = [designate(H), register(D1, H, "2024-01-01"), register(D2, H, "2024-01-01")];
    assert!(ledger.append_batch(&batch).unwrap().iter().all(Result::is_ok));
    // The channel is per database: other tests' ledgers may notify on it too.
    let mut notifications = listener.notifications();
    let mut payloads = notifications.timeout_iter(Duration::from_secs(5)).iterator();
    assert!(
        payloads.any(|n| n.is_ok_and(|n| n.channel() == NOTIFY_CHANNEL && n.payload() == "3")),
        "no notification of head 3"
    );
    ledger.drop_schema().unwrap();
}

/// The server's certificate file, or `None` (and a note) when the server
/// under test does not offer TLS.
fn server_certificate(schema: &TestSchema) -> Option<String> {
    let mut admin = schema.admin();
    let ssl: String = admin.query_one("SHOW ssl", &[]).unwrap().get(0);
    if ssl != "on" {
        assert!(!claimgate_testkit::under_ci(), "the PostgreSQL server under CI has ssl=off; the TLS tests need it on");
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"skipped: the PostgreSQL server under test has ssl=off; TLS tests need it on\n",
        );
        return None;
    }
    Some(admin.query_one("SHOW ssl_cert_file", &[]).unwrap().get(0))
}

#[test]
fn sslmode_require_and_verify_ca_encrypt_the_session_and_disable_does_not() {
    let Some(server) = server() else { return };
    let schema = TestSchema::new(&server, "tls");
    let Some(certificate) = server_certificate(&schema) else { return };
    let with = |params: &str| format!("{}&{params}", schema.url());
    for (params, encrypted) in [
        ("sslmode=disable".to_owned(), false),
        ("sslmode=require".to_owned(), true),
        (format!("sslmode=verify-ca&sslrootcert={certificate}"), true),
    ] {
        let ledger =
            PostgresLedger::open(&with(&params), &Policy::default()).unwrap_or_else(|e| panic!("{params}: {e}"));
        assert_eq!(ledger.session_encrypted().unwrap(), encrypted, "{params}");
        assert!(ledger.describe().contains("tls "), "{}", ledger.describe());
        let appended = ledger.append_batch(&[event(json!({"type": "institution_designated",
            "effective": "2025-01-01", "institution": H}))]);
        assert!(appended.is_ok(), "{params}: {appended:?}");
    }
}

#[test]
fn verify_ca_refuses_a_server_whose_certificate_the_roots_do_not_sign() {
    let Some(server) = server() else { return };
    let schema = TestSchema::new(&server, "tlsbad");
    let Some(certificate) = server_certificate(&schema) else { return };
    // Any other certificate as the only root: the server's chain cannot end there.
    let other = tempfile::NamedTempFile::new().unwrap();
    let rogue = std::fs::read_dir("/etc/ssl/certs").unwrap().filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
        p.extension().is_some_and(|x| x == "pem") && !p.ends_with(&certificate) && {
            std::fs::read_to_string(p).is_ok_and(|t| {
                t.contains("BEGIN CERTIFICATE")
                    && !t.contains(&std::fs::read_to_string(&certificate).unwrap_or_default())
            })
        }
    });
    let Some(rogue) = rogue else { return };
    std::fs::copy(rogue, other.path()).unwrap();
    let url = format!("{}&sslmode=verify-ca&sslrootcert={}", schema.url(), other.path().display());
    let error = PostgresLedger::open(&url, &Policy::default()).err().expect("a foreign root must be refused");
    let message = error.to_string();
    assert!(
        message.contains("connecting to PostgreSQL") && message.to_lowercase().contains("certificate"),
        "{message}"
    );
}

#[test]
fn the_schema_parameter_is_ours_and_descriptions_hold_no_password() {
    let split = |url| split_url(url).map(|(rest, schema, tls)| (rest, schema, tls.mode)).unwrap();
    assert_eq!(split("postgres://u@h/db"), ("postgres://u@h/db?sslmode=prefer".to_owned(), None, TlsMode::Prefer));
    assert_eq!(
        split("postgres://u@h/db?schema=a%20b&sslmode=disable&schema=c"),
        ("postgres://u@h/db?sslmode=disable".to_owned(), Some("c".to_owned()), TlsMode::Disable)
    );
    assert_eq!(
        split("postgres://u@h/db?schema=a%22b&sslmode=verify-full&sslrootcert=%2Fr.pem"),
        ("postgres://u@h/db?sslmode=require".to_owned(), Some("a\"b".into()), TlsMode::VerifyFull)
    );
    let target = Target::parse("postgres://root:secret@127.0.0.1:5433/test?schema=s1&sslmode=disable").unwrap();
    assert_eq!(target.description, "postgres://root@127.0.0.1:5433/test (schema s1, tls disable)");
    let target = Target::parse("postgresql://u:pw@h1,h2/db?password=other").unwrap();
    assert_eq!(target.description, "postgres://u@h1:5432,h2:5432/db (schema claimgate, tls prefer)");
    assert!(!target.description.contains("pw") && !target.description.contains("other"));
    assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    assert!(matches!(Target::parse("postgres://h/db?schema="), Err(LedgerError::NotALedger { .. })));
    assert!(Target::parse(&format!("postgres://h/db?schema={}", "x".repeat(64))).is_err());
}

/// `PostgresLedger::open` must fail; its error.
fn refused(url: &str) -> LedgerError {
    match PostgresLedger::open(url, &Policy::default()) {
        Ok(_) => panic!("{url}: the ledger opened"),
        Err(e) => e,
    }
}

#[test]
fn only_fsync_on_with_a_flushing_synchronous_commit_is_durable() {
    for value in DURABLE_SYNCHRONOUS_COMMIT {
        assert_eq!(durability_refusal((value, "default"), ("on", "default"), "cg"), None, "{value}");
    }
    let (setting, value, fix) = durability_refusal(("on", "default"), ("off", "configuration file"), "cg").unwrap();
    assert_eq!((setting, value.as_str()), ("fsync", "off"));
    assert!(fix.contains("configuration file") && fix.contains("fsync = on"), "{fix}");
    for (source, names) in [
        ("client", "options"),
        ("user", "ALTER ROLE cg RESET"),
        ("database", "ALTER DATABASE"),
        ("database user", "ALTER ROLE cg IN DATABASE"),
        ("configuration file", "postgresql.conf"),
        ("default", "ALTER ROLE cg SET synchronous_commit = on"),
    ] {
        let (setting, value, fix) = durability_refusal(("off", source), ("on", "default"), "cg").unwrap();
        assert_eq!((setting, value.as_str()), ("synchronous_commit", "off"));
        assert!(fix.contains(source) && fix.contains(names), "{source}: {fix}");
    }
}

#[test]
fn a_session_asking_for_synchronous_commit_off_in_the_url_is_refused_by_name() {
    let Some(server) = server() else { return };
    let schema = TestSchema::new(&server, "sync_off");
    let url = format!("{}&options=-c%20synchronous_commit%3Doff", schema.url());
    let err = refused(&url);
    let message = err.to_string();
    assert!(matches!(&err, LedgerError::NotDurable(r) if r.setting == "synchronous_commit"), "{err:?}");
    assert!(message.contains("synchronous_commit is `off`"), "{message}");
    assert!(message.contains("from client") && message.contains("options"), "{message}");
    // Refused before anything was written: no schema was made.
    let made: i64 = schema
        .admin()
        .query_one("SELECT count(*) FROM pg_namespace WHERE nspname = $1", &[&schema.name])
        .unwrap()
        .get(0);
    assert_eq!(made, 0, "a refused open created its schema");
    // The same URL without the option opens, and its append session reads back `on`.
    let ledger = schema.open();
    let mut writer = lock(&ledger.writer);
    let on: String = writer.as_mut().unwrap().client.query_one("SHOW synchronous_commit", &[]).unwrap().get(0);
    assert_eq!(on, "on");
}

#[test]
fn a_role_set_to_synchronous_commit_off_is_refused_with_the_alter_role_fix() {
    let Some(server) = server() else { return };
    let schema = TestSchema::new(&server, "role_off");
    let role = format!("cg_{}", schema.name);
    /// Drops the role however the test ends.
    struct Role<'a>(&'a TestSchema, String);
    impl Drop for Role<'_> {
        fn drop(&mut self) {
            let _ = self.0.admin().batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_ident(&self.1)));
        }
    }
    let _guard = Role(&schema, role.clone());
    schema
        .admin()
        .batch_execute(&format!(
            "CREATE ROLE {r} LOGIN; ALTER ROLE {r} SET synchronous_commit = off",
            r = quote_ident(&role)
        ))
        .unwrap();
    let mut config: Config = Target::parse(&schema.url()).unwrap().config;
    config.user(&role);
    let (host, port, db) = match (config.get_hosts(), config.get_ports(), config.get_dbname()) {
        ([::postgres::config::Host::Tcp(h), ..], [p, ..], Some(db)) => (h.clone(), *p, db.to_owned()),
        other => panic!("CLAIMGATE_TEST_POSTGRES is not a TCP URL with a database: {other:?}"),
    };
    let url = format!("postgres://{role}@{host}:{port}/{db}?schema={}", schema.name);
    let err = refused(&url);
    let message = err.to_string();
    assert!(matches!(&err, LedgerError::NotDurable(r) if r.setting == "synchronous_commit"), "{err:?}");
    assert!(message.contains("synchronous_commit is `off`"), "{message}");
    assert!(message.contains(&format!("ALTER ROLE {role} RESET synchronous_commit")), "{message}");
}

/// Each case's events sent in batches: PostgreSQL validates a batch from
/// the facts it prefetched for all its keys at once (kept current as the
/// batch appends: event_ids, designations, registrations, violations and
/// their revocations, scoring steps) and writes its rows in one statement,
/// SQLite one read and one row at a time; the outcomes must not differ.
/// The facts are read under the head's lock (`append_batch`), or, as the
/// gate's appender does, read ahead (`prepare`) one or two batches before
/// their turn and caught up at the lock from the events appended since.
#[test]
fn every_case_in_batches_gives_the_embedded_ledgers_outcomes_facts_read_at_the_lock_or_ahead() {
    let Some(server) = server() else { return };
    let policy = Policy::default();
    for file in case_files() {
        let name = file.display();
        let case = Case::load(&file);
        let events: Vec<Event> =
            case.events.iter().filter_map(|raw| Event::parse(&without_annotations(raw), &policy).ok()).collect();
        // Twice over: the second half are re-sends of the first (R7a) within the batch.
        let doubled: Vec<Event> = events.iter().chain(events.iter()).cloned().collect();
        // One batch, and batches of 2, 3 and 5: facts prefetched, kept current,
        // and rows held back to be written together, across batch edges too;
        // `ahead`: how many batches before its turn a batch's facts are read.
        for (size, ahead) in [(doubled.len().max(1), 0), (3, 0), (2, 0), (3, 1), (2, 2), (5, 1)] {
            let what = format!("{name}, batches of {size}, facts read {ahead} batches ahead (0: at the lock)");
            let schema = TestSchema::new(&server, "batch");
            let pg = schema.open();
            let embedded = Ledger::open_in_memory(&policy).unwrap();
            let chunks: Vec<&[Event]> = doubled.chunks(size).collect();
            let mut prepared: std::collections::VecDeque<Prepared> =
                chunks.iter().take(ahead).map(|c| pg.prepare(c).unwrap()).collect();
            for (n, chunk) in chunks.iter().enumerate() {
                let got = if ahead == 0 {
                    pg.append_batch(chunk).unwrap()
                } else {
                    if let Some(next) = chunks.get(n + ahead) {
                        prepared.push_back(pg.prepare(next).unwrap());
                    }
                    pg.append_prepared(chunk, prepared.pop_front().unwrap()).unwrap()
                };
                let want = embedded.append_batch(chunk).unwrap();
                assert_eq!(got, want, "{what}");
            }
            assert_eq!(all_events(&pg), embedded.all_events().unwrap(), "{what}");
            pg.drop_schema().unwrap();
        }
    }
}

/// The change log's catch-up reads on [`Lane::Background`]: its own session,
/// so while it holds it the sync's session is free (a low-priority thread
/// never makes the sync, or `min_seq`, wait).
#[test]
fn a_read_in_progress_on_the_background_lane_leaves_the_sync_session_free() {
    let Some(server) = server() else { return };
    let schema = TestSchema::new(&server, "lanes");
    let ledger = schema.open();
    ledger.append_batch(&[designate(H)]).unwrap();
    ledger
        .read_on(Lane::Background, |_, _| {
            assert!(ledger.reader.try_lock().is_ok(), "the background read holds the sync session");
            assert_eq!(ledger.events_since(Lane::Sync, 0, 10)?.len(), 1);
            Ok(())
        })
        .unwrap();
    ledger
        .read_on(Lane::Sync, |_, _| {
            assert!(ledger.background.try_lock().is_ok(), "the sync read holds the background session");
            Ok(())
        })
        .unwrap();
}

/// R12 and R15 across a gap: facts read ahead for a re-registration of a
/// practitioner terminated by four violations; before its turn another node
/// revokes one of them (a violation the batch never names). The batch must
/// see the revocation: the ban is gone and the registration accepted, as in
/// turn. And past [`MAX_PREPARED_GAP`] the facts are read afresh, same outcome.
#[test]
fn a_revocation_appended_after_facts_were_read_ahead_lifts_the_ban_they_held() {
    let Some(server) = server() else { return };
    let policy = Policy::default();
    let h2 = "H31011500007";
    // Four minor violations of 3 points (R9): 12 in the year, a termination (R15).
    let mut base = vec![designate(H), designate(h2), register(D1, H, "2024-01-01")];
    base.extend((1..=4).map(|n| violation(&format!("V{n}"), D1, 3)));
    let batch = [register(D1, h2, "2026-06-01"), register(D2, h2, "2026-06-01")];
    for filler in [0, MAX_PREPARED_GAP + 1] {
        let schema = TestSchema::new(&server, "gap");
        let pg = schema.open();
        let other_node = schema.open();
        assert!(pg.append_batch(&base).unwrap().iter().all(Result::is_ok));
        let prepared = pg.prepare(&batch).unwrap();
        let mut gap = vec![revoke("V1")];
        gap.extend((0..filler).map(|n| designate(&format!("H4403050{n:04}"))));
        for chunk in gap.chunks(MAX_APPEND_BATCH) {
            other_node.append_batch(chunk).unwrap();
        }
        let got = pg.append_prepared(&batch, prepared).unwrap();

        let in_turn = Ledger::open_in_memory(&policy).unwrap();
        in_turn.append_batch(&base).unwrap();
        let without_revocation = Ledger::open_in_memory(&policy).unwrap();
        without_revocation.append_batch(&base).unwrap();
        for chunk in gap.chunks(MAX_APPEND_BATCH) {
            in_turn.append_batch(chunk).unwrap();
        }
        let want = in_turn.append_batch(&batch).unwrap();
        assert!(want[0].is_ok(), "the revocation lifts the ban (R12): {want:?}");
        assert_ne!(
            code(&without_revocation.append_batch(&batch).unwrap()[0]),
            None,
            "without it the registration is refused (R15), so the test tells them apart"
        );
        assert_eq!(got, want, "a gap of {} events", gap.len());
        assert_eq!(all_events(&pg), in_turn.all_events().unwrap());
        pg.drop_schema().unwrap();
    }
}
