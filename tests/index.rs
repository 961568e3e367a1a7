//! The eligibility index: it answers like the rules engine on every spec case,
//! snapshots round-trip and refuse damage, restarts resume from the newest
//! valid snapshot, and readers never see a torn or older state.

mod common;
use claimgate::claim::parse_claim;
use claimgate::domain::{CivilDate, InstitutionCode, PractitionerCode};
use claimgate::event::Event;
use claimgate::index::snapshot::{self, Owner, SnapshotError, HEADER_LEN, SNAPSHOT_DIR};
use claimgate::index::{build, restore, IndexHandle, Syncer};
use claimgate::ledger::Ledger;
use claimgate::policy::Policy;
use claimgate::rules::{Claim, Reason, World};
use claimgate::scenario::{self, Scenario};
use common::case_files;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Every scenario's events, with the index kept current by deltas after each
/// event and rebuilt fresh at the end; all three must answer every check
/// exactly as the rules engine does.
#[test]
fn the_index_answers_every_spec_check_like_the_rules_engine() {
    let policy = Policy::default();
    for file in case_files() {
        let scenario = Scenario::load(&file).unwrap();
        let ledger = Arc::new(Ledger::open_in_memory(&policy).unwrap());
        let handle = Arc::new(IndexHandle::new(build::from_ledger(&ledger).unwrap()));
        let syncer = Syncer::new(ledger.clone(), handle.clone());
        for raw in &scenario.events {
            if let Ok(event) = Event::parse(&scenario::without_annotations(raw), &policy) {
                let _ = ledger.append(&event);
            }
            assert_eq!(syncer.catch_up().unwrap(), ledger.head().unwrap());
        }
        let world = World::from_events(&ledger.all_events().unwrap(), &policy);
        let fresh = build::from_ledger(&ledger).unwrap();
        let deltas = handle.load();
        let merged = deltas.merged();
        for raw in &scenario.checks {
            // A check that is bad input (R4) asks the index nothing.
            let Ok(claim) = parse_claim(&scenario::without_annotations(raw)) else { continue };
            let expected = world.decide(&claim);
            assert_eq!(fresh.check(&claim), expected, "{}: fresh index on {raw}", file.display());
            assert_eq!(deltas.check(&claim), expected, "{}: delta index on {raw}", file.display());
            assert_eq!(merged.check(&claim), expected, "{}: merged index on {raw}", file.display());
        }
    }
}

fn event(v: serde_json::Value) -> Event {
    Event::parse(&v, &Policy::default()).unwrap()
}

fn practitioner(n: usize) -> PractitionerCode {
    PractitionerCode::parse(&format!("D{:012}", 110105000000u64 + n as u64)).unwrap()
}

const H1: &str = "H11010500001";

/// A ledger with one institution and `n` registered practitioners, every
/// 7th suspended by 9 points on 2026-03-01.
fn populated(dir: &std::path::Path, n: usize) -> Arc<Ledger> {
    let ledger = Arc::new(Ledger::open(dir, &Policy::default()).unwrap());
    let mut events =
        vec![event(json!({"type": "institution_designated", "institution": H1, "effective": "2024-01-01"}))];
    for i in 0..n {
        events.push(event(json!({"type": "practitioner_registered", "practitioner": practitioner(i).to_string(),
                                 "institution": H1, "effective": "2024-01-01"})));
        if i % 7 == 0 {
            events.push(event(json!({"type": "violation_scored", "violation_id": format!("V{i}"), "practitioner": practitioner(i).to_string(),
                "institution": H1, "effective": "2026-03-01", "points": 9, "severity": "serious", "responsibility": "primary"})));
        }
    }
    for outcome in ledger.append_batch(&events).unwrap() {
        outcome.unwrap();
    }
    ledger
}

fn claim(i: usize, date: &str) -> Claim {
    Claim {
        practitioner: practitioner(i),
        institution: InstitutionCode::parse(H1).unwrap(),
        service_date: CivilDate::parse(date).unwrap(),
        emergency: false,
    }
}

#[test]
fn a_snapshot_round_trips_and_answers_like_the_index_it_was_written_from() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = populated(dir.path(), 500);
    let version = build::from_ledger(&ledger).unwrap();
    let owner = Owner::new(ledger.id(), ledger.policy());
    let path = snapshot::write(&dir.path().join(SNAPSHOT_DIR), version.base(), owner).unwrap();
    let loaded = snapshot::load(&path, Some(owner)).unwrap();
    assert_eq!(loaded.seq(), version.seq());
    assert_eq!(loaded.practitioner_count(), 500);
    let reloaded = claimgate::index::IndexVersion::new(Arc::new(loaded));
    for i in 0..520 {
        for date in ["2026-02-28", "2026-03-01", "2026-05-01"] {
            assert_eq!(reloaded.check(&claim(i, date)), version.check(&claim(i, date)));
        }
    }
    assert_eq!(reloaded.check(&claim(7, "2026-03-02")).reason, Reason::PractitionerSuspended);
    assert_eq!(reloaded.check(&claim(510, "2026-03-02")).reason, Reason::UnknownPractitioner);
}

#[test]
fn a_damaged_or_foreign_snapshot_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = populated(dir.path(), 200);
    let version = build::from_ledger(&ledger).unwrap();
    let owner = Owner::new(ledger.id(), ledger.policy());
    let good = snapshot::write(&dir.path().join("s"), version.base(), owner).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let variant = |name: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = bytes.clone();
        f(&mut b);
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        snapshot::load(&p, Some(owner)).err().unwrap_or_else(|| panic!("{name} was accepted"))
    };
    let flipped = variant("flipped", &|b| b[HEADER_LEN + 100] ^= 0x40);
    assert!(matches!(flipped, SnapshotError::ChecksumMismatch { .. }), "{flipped}");
    let truncated = variant("truncated", &|b| b.truncate(b.len() - 1000));
    assert!(matches!(truncated, SnapshotError::Truncated { .. }), "{truncated}");
    let header_only = variant("short", &|b| b.truncate(10));
    assert!(matches!(header_only, SnapshotError::Truncated { .. }), "{header_only}");
    let version_bumped = variant("version", &|b| b[16] = 99);
    assert!(matches!(version_bumped, SnapshotError::UnsupportedVersion { found: 99 }), "{version_bumped}");
    assert!(version_bumped.to_string().contains("snapshot write"));
    let foreign = variant("foreign", &|b| b[..16].copy_from_slice(b"SQLite format 3\0"));
    assert!(matches!(foreign, SnapshotError::Foreign), "{foreign}");
    let other = snapshot::load(&good, Some(Owner { ledger_id: owner.ledger_id ^ 1, ..owner })).err().unwrap();
    assert!(matches!(other, SnapshotError::OtherLedger { .. }), "{other}");
    // A payload that is internally inconsistent but carries a correct checksum
    // (say, written by a buggy build) is still refused by validation.
    let lying = variant("lying", &|b| {
        let payload_len = b.len() - HEADER_LEN;
        for x in &mut b[HEADER_LEN..HEADER_LEN + payload_len / 2] {
            *x = 0xFF;
        }
        let sum = xxhash_rust::xxh3::xxh3_64(&b[HEADER_LEN..]);
        b[56..64].copy_from_slice(&sum.to_le_bytes());
    });
    assert!(matches!(lying, SnapshotError::Invalid(_)), "{lying}");
}

#[test]
fn a_restart_resumes_from_the_newest_valid_snapshot_and_tails_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = populated(dir.path(), 300);
    let owner = Owner::new(ledger.id(), ledger.policy());
    let snaps = dir.path().join(SNAPSHOT_DIR);
    let older = build::from_ledger(&ledger).unwrap();
    snapshot::write(&snaps, older.base(), owner).unwrap();
    ledger
        .append(&event(
            json!({"type": "violation_scored", "violation_id": "late", "practitioner": practitioner(1).to_string(),
        "institution": H1, "effective": "2026-04-01", "points": 12, "severity": "fraud", "responsibility": "primary"}),
        ))
        .unwrap();
    let newer = build::from_ledger(&ledger).unwrap();
    let newest = snapshot::write(&snaps, newer.base(), owner).unwrap();
    ledger
        .append(&event(json!({"type": "violation_revoked", "violation_id": "V14", "effective": "2026-06-01"})))
        .unwrap();

    let restored = restore::restore(dir.path(), &ledger).unwrap();
    assert_eq!(restored.snapshot.as_deref(), Some(newest.as_path()));
    assert_eq!(restored.version.seq(), newer.seq());
    let handle = Arc::new(IndexHandle::new(restored.version));
    Syncer::new(ledger.clone(), handle.clone()).catch_up().unwrap();
    let current = handle.load();
    assert_eq!(current.seq(), ledger.head().unwrap());
    assert_eq!(current.check(&claim(1, "2026-04-02")).reason, Reason::PractitionerTerminated);
    assert_eq!(current.check(&claim(14, "2026-03-02")).reason, Reason::Ok, "V14 revoked after the snapshot");

    // Corrupt the newest: start-up says so and falls back to the older one.
    let mut bytes = std::fs::read(&newest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&newest, bytes).unwrap();
    let restored = restore::restore(dir.path(), &ledger).unwrap();
    assert_eq!(restored.version.seq(), older.seq());
    assert_eq!(restored.refused.len(), 1);
    assert!(matches!(restored.refused[0].1, SnapshotError::ChecksumMismatch { .. }));

    // No usable snapshot at all: built from the ledger.
    for p in snapshot::list(&snaps).unwrap() {
        std::fs::write(p, b"garbage").unwrap();
    }
    let restored = restore::restore(dir.path(), &ledger).unwrap();
    assert!(restored.snapshot.is_none());
    assert_eq!(restored.version.seq(), ledger.head().unwrap());
}

/// Readers check continuously while a writer registers practitioners one by
/// one; practitioner k's registration is seq k + 2 (after the designation), so
/// it must be known in exactly the versions whose seq is at least that. A
/// reader that ever saw an answer disagreeing with its version's seq would
/// have seen a torn state.
#[test]
fn readers_never_block_never_see_torn_state_and_see_seq_only_grow() {
    const WRITES: usize = 3_000;
    let seq_of = |k: usize| k as u64 + 2;
    let dir = tempfile::tempdir().unwrap();
    let ledger = populated(dir.path(), 0);
    let handle = Arc::new(IndexHandle::new(build::from_ledger(&ledger).unwrap()));
    let stop = Arc::new(AtomicBool::new(false));
    // The sync thread as the gate runs it: Syncer::apply_pending on each poll.
    let sync = {
        let (syncer, stop) = (Syncer::new(ledger.clone(), handle.clone()), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                syncer.apply_pending(|_| {}).unwrap_or_else(|e| panic!("sync failed: {e}"));
                // The poll interval (the gate's --sync-idle), not a synchronisation.
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (handle, done) = (handle.clone(), done.clone());
            std::thread::spawn(move || {
                let (mut last_seq, mut checks, mut k, mut versions) = (0, 0u64, r, 0u64);
                while !done.load(Ordering::Acquire) || checks < 1_000 {
                    let version = handle.peek();
                    assert!(version.seq() >= last_seq, "seq went back: {last_seq} -> {}", version.seq());
                    versions += u64::from(version.seq() > last_seq);
                    last_seq = version.seq();
                    k = (k * 7 + 13) % WRITES;
                    let known = version.check(&claim(k, "2025-06-01")).reason == Reason::Ok;
                    assert_eq!(
                        known,
                        seq_of(k) <= version.seq(),
                        "practitioner {k} (seq {}) at version {}",
                        seq_of(k),
                        version.seq()
                    );
                    checks += 1;
                }
                (checks, versions)
            })
        })
        .collect();
    for k in 0..WRITES {
        let e = event(json!({"type": "practitioner_registered", "practitioner": practitioner(k).to_string(),
                             "institution": H1, "effective": "2024-01-01"}));
        assert_eq!(ledger.append(&e).unwrap().seq, seq_of(k));
    }
    let head = ledger.head().unwrap();
    while handle.load().seq() < head {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    done.store(true, Ordering::Release);
    let results: Vec<(u64, u64)> = readers.into_iter().map(|r| r.join().expect("reader panicked")).collect();
    stop.store(true, Ordering::Relaxed);
    sync.join().unwrap();
    assert!(results.iter().all(|(checks, _)| *checks >= 1_000));
    assert!(results.iter().any(|(_, versions)| *versions > 10), "readers saw the index move: {results:?}");
    let last = handle.load();
    for k in 0..WRITES {
        assert_eq!(last.check(&claim(k, "2025-06-01")).reason, Reason::Ok);
    }
}

/// A large overlay is folded into a new base on a background thread; the
/// version published after it finishes is that base plus exactly what changed
/// meanwhile, and answers as before.
#[test]
fn the_overlay_is_folded_into_a_new_base_without_stopping_the_sync() {
    const WRITES: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let ledger = populated(dir.path(), 0);
    let handle = Arc::new(IndexHandle::new(build::from_ledger(&ledger).unwrap()));
    let syncer = Syncer::new(ledger.clone(), handle.clone()).with_merge_threshold(16);
    let register = |k: usize| {
        event(json!({"type": "practitioner_registered", "practitioner": practitioner(k).to_string(),
                     "institution": H1, "effective": "2024-01-01"}))
    };
    // Waits (bounded) until no merge is building, so the next step folds it in.
    let merged = || {
        let started = std::time::Instant::now();
        while syncer.merging() {
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "a merge ran for 30 s");
            std::thread::yield_now();
        }
    };
    for k in 0..WRITES {
        ledger.append(&register(k)).unwrap();
        syncer.step().unwrap();
        if k % 50 == 49 {
            merged();
        }
    }
    merged();
    ledger.append(&register(WRITES)).unwrap();
    syncer.step().unwrap();
    let version = handle.load();
    assert_eq!(version.seq(), ledger.head().unwrap());
    assert!(version.overlay_len() < WRITES / 2, "the overlay was folded in: {} entities left", version.overlay_len());
    assert!(version.base().practitioner_count() > 0);
    let world = World::from_events(&ledger.all_events().unwrap(), &Policy::default());
    for k in 0..=WRITES + 5 {
        for date in ["2023-12-31", "2025-06-01"] {
            assert_eq!(version.check(&claim(k, date)), world.decide(&claim(k, date)), "practitioner {k} on {date}");
        }
    }
}
