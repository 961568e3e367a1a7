//! One-shot figures for the index at scale: build time, bytes per
//! practitioner, snapshot write and load (with checksum, rkyv validation and
//! bounds check timed apart), delta apply for one event, and overlay merge.
//! Not criterion: each step takes seconds at 20M, so it runs once per figure
//! (delta apply: the median of many). `benches/run.sh` runs it.
//!
//! `cargo bench --bench index_figures -- 20000000`

use claimgate::domain::{CivilDate, EventId};
use claimgate::domain::{Responsibility, Severity, ViolationId};
use claimgate::event::{Event, RecordedEvent, Violation};
use claimgate::index::base::{check_tables, ArchivedTables};
use claimgate::index::compact::CompactPractitioner;
use claimgate::index::{build, snapshot, IndexHandle, Syncer};
use claimgate::ledger::Ledger;
use claimgate::policy::Policy;
use claimgate::population::{Population, PopulationSpec};
use claimgate::rules::practitioner;
use std::sync::Arc;
use std::time::Instant;

/// Single-event deltas timed for the median.
const DELTAS: u64 = 2_000;
const SEED: u64 = 20_261_124;

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// Memory of this process backed by transparent huge pages, MiB.
fn anon_huge_mib() -> f64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("AnonHugePages:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Practitioners in the file ledger used to time a whole sync step.
const LEDGER_PRACTITIONERS: u64 = 100_000;
/// Single-event sync steps timed for the median.
const LEDGER_DELTAS: usize = 500;

/// A whole single-event sync step on a real (file) ledger: read the new
/// event, read the touched practitioner's history, derive, publish. The
/// append itself is not timed (its fsync is the ledger's cost, not the
/// index's).
fn ledger_delta_figures() -> serde_json::Value {
    let dir = tempfile::tempdir_in(std::env::var("CLAIMGATE_BENCH_DIR").unwrap_or_else(|_| "target".into())).unwrap();
    let ledger = Arc::new(Ledger::open(dir.path(), &Policy::default()).unwrap());
    let population = Population::new(PopulationSpec::new(LEDGER_PRACTITIONERS, SEED));
    let t = Instant::now();
    let events: Vec<Event> = population.events().collect();
    for chunk in events.chunks(claimgate::ledger::MAX_APPEND_BATCH) {
        for outcome in ledger.append_batch(chunk).unwrap() {
            outcome.unwrap();
        }
    }
    let load_s = secs(t);
    let handle = Arc::new(IndexHandle::new(build::from_ledger(&ledger).unwrap()));
    let syncer = Syncer::new(ledger.clone(), handle.clone());
    let mut times = Vec::with_capacity(LEDGER_DELTAS);
    for d in 0..LEDGER_DELTAS {
        let i = (d as u64 * 7_919) % LEDGER_PRACTITIONERS;
        let repair = Event::PointsRepaired {
            practitioner: population.practitioner_code(i),
            points: 1,
            effective: CivilDate::parse("2026-01-02").unwrap(),
            event_id: Some(EventId::parse(&format!("bench-repair-{d}")).unwrap()),
        };
        let _ = ledger.append(&repair);
        let t = Instant::now();
        syncer.step().unwrap();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    serde_json::json!({
        "ledger_practitioners": LEDGER_PRACTITIONERS, "ledger_events": events.len(), "ledger_load_seconds": load_s,
        "sync_step_median_us": times[times.len() / 2] * 1e6, "sync_step_p99_us": times[times.len() * 99 / 100] * 1e6,
    })
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .or_else(|| std::env::var("CLAIMGATE_BENCH_PRACTITIONERS").ok().and_then(|v| v.parse().ok()))
        .unwrap_or(1_000_000);
    let population = Population::new(PopulationSpec::new(n, SEED));

    let t = Instant::now();
    let version = population.index();
    let build_s = secs(t);
    let huge_mib = anon_huge_mib();
    let base = version.base().clone();
    let bytes = base.bytes().len();

    let dir = tempfile::tempdir_in(std::env::var("CLAIMGATE_BENCH_DIR").unwrap_or_else(|_| "target".into())).unwrap();
    let owner = snapshot::Owner::new(1, &Policy::default());
    let t = Instant::now();
    let path = snapshot::write(dir.path(), &base, owner).unwrap();
    let write_s = secs(t);

    let t = Instant::now();
    let loaded = snapshot::load(&path, Some(owner)).unwrap();
    let load_s = secs(t);
    let t = Instant::now();
    let sum = xxhash_rust::xxh3::xxh3_64(loaded.bytes());
    let checksum_s = secs(t);
    let t = Instant::now();
    let tables = rkyv::access::<ArchivedTables, rkyv::rancor::Error>(loaded.bytes()).unwrap();
    let validate_s = secs(t);
    let t = Instant::now();
    check_tables(tables).unwrap();
    let bounds_s = secs(t);
    drop(loaded);

    // Delta apply: one new violation for a practitioner, re-derived from
    // their history and published as the next version (overlay grows).
    let policy = Policy::default();
    let mut current = version;
    let mut times = Vec::with_capacity(DELTAS as usize);
    let day = CivilDate::parse("2026-06-01").unwrap();
    for d in 0..DELTAS {
        let i = (d * 7_919) % n;
        let code = population.practitioner_code(i);
        let mut history: Vec<RecordedEvent> = population
            .practitioner_events(i)
            .into_iter()
            .enumerate()
            .map(|(k, event)| RecordedEvent { seq: k as u64 + 1, event })
            .collect();
        let institution = history.iter().find_map(|r| r.event.institution()).unwrap();
        let seq = current.seq() + 1;
        history.push(RecordedEvent {
            seq,
            event: Event::ViolationScored(Violation {
                violation_id: ViolationId::parse(&format!("bench-{d}")).unwrap(),
                practitioner: code,
                institution,
                effective: day,
                points: 2,
                severity: Severity::Minor,
                responsibility: Responsibility::General,
                suspension_months: None,
                event_id: None,
            }),
        });
        let t = Instant::now();
        let standing = practitioner::derive(code, &history, &policy);
        current = current.apply(seq, [(code, CompactPractitioner::from_standing(&standing))], []);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median_us = times[times.len() / 2] * 1e6;
    let p99_us = times[times.len() * 99 / 100] * 1e6;

    let t = Instant::now();
    let merged = current.merged();
    let merge_s = secs(t);
    assert_eq!(merged.base().practitioner_count(), base.practitioner_count());

    let ledger_delta = ledger_delta_figures();

    let figures = serde_json::json!({
        "practitioners": n, "institutions": base.institution_count(), "index_bytes": bytes,
        "bytes_per_practitioner": bytes as f64 / n as f64, "build_seconds": build_s,
        "snapshot_write_seconds": write_s, "snapshot_load_seconds": load_s,
        "load_parts_seconds": {"checksum": checksum_s, "rkyv_validation": validate_s, "bounds_check": bounds_s},
        "delta_apply_median_us": median_us, "delta_apply_p99_us": p99_us, "overlay_merge_seconds": merge_s,
        "peak_rss_mib": rss_mib(), "anon_huge_pages_mib_after_build": huge_mib, "checksum": format!("{sum:#x}"),
        "ledger_delta": ledger_delta,
    });
    println!("{figures}");
}
