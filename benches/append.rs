//! The append path's cost against history (criterion, issue 12): one append
//! for a practitioner with 20,000 events on file, against one with none (the
//! baseline in the same run), and a 10,000-event array of mixed
//! practitioners. The ledger is the embedded one in a temporary directory
//! on this machine's disk, with its real synchronous commits (R5), so every
//! figure includes the commit's fsync.
//!
//! The 20,000-event history spans 2006–2025 at 1,000 events a year: 978
//! registrations and deregistrations cycling through 40 institutions, 10
//! one-point violations (a suspension each year from the ninth), 6 one-point
//! repairs and 6 revocations. `registration_worst` is the pathological
//! case the bound is stated for: 20,000 scoring steps all inside the four
//! years a registration ban can reach, so validation reads every one of
//! them (O(the practitioner's own steps), never O(the ledger)).

use claimgate::event::Event;
use claimgate::ledger::{Ledger, MAX_APPEND_BATCH};
use claimgate::policy::Policy;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::{json, Value};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Events on file for the practitioner under test.
const HISTORY: usize = 20_000;
/// Institutions the history cycles through.
const INSTITUTIONS: usize = 40;
/// Events in the mixed array.
const ARRAY: usize = 10_000;
/// Practitioners the mixed array names.
const ARRAY_PRACTITIONERS: usize = 2_000;

const HEAVY: &str = "D110105000001";
const WORST: &str = "D110105000003";
const FRESH: &str = "D110105000002";

fn institution(i: usize) -> String {
    format!("H110105{:05}", i % INSTITUTIONS)
}

fn array_practitioner(k: usize) -> String {
    format!("D2201050{:05}", k % ARRAY_PRACTITIONERS)
}

fn event(v: Value) -> Event {
    Event::parse(&v, &Policy::default()).unwrap_or_else(|e| panic!("{v}: {e}"))
}

/// Appends `events` in the largest batches the ledger takes; every one must be accepted.
fn append_all(ledger: &Ledger, events: Vec<Event>) {
    for chunk in events.chunks(MAX_APPEND_BATCH) {
        for (e, outcome) in chunk.iter().zip(ledger.append_batch(chunk).unwrap()) {
            assert!(outcome.is_ok(), "set-up event refused: {e:?}: {outcome:?}");
        }
    }
}

fn register(p: &str, i: usize, day: &str) -> Value {
    json!({"type": "practitioner_registered", "practitioner": p, "institution": institution(i), "effective": day})
}

fn violation(id: &str, p: &str, day: &str, points: u32) -> Value {
    let severity = if points <= 3 { "minor" } else { "fraud" };
    json!({"type": "violation_scored", "violation_id": id, "practitioner": p, "institution": institution(0),
           "effective": day, "points": points, "severity": severity, "responsibility": "general"})
}

fn repair(id: &str, p: &str, day: &str) -> Value {
    json!({"type": "points_repaired", "event_id": id, "practitioner": p, "points": 1, "effective": day})
}

/// The ledger (in `dir`, else in memory): institutions, the practitioners
/// and their histories.
fn ledger(dir: Option<&std::path::Path>) -> Ledger {
    let ledger = match dir {
        Some(dir) => Ledger::open(dir, &Policy::default()).unwrap(),
        None => Ledger::open_in_memory(&Policy::default()).unwrap(),
    };
    let mut events: Vec<Value> = (0..INSTITUTIONS)
        .map(|i| json!({"type": "institution_designated", "institution": institution(i), "effective": "2000-01-01"}))
        .collect();
    for p in [HEAVY, FRESH, WORST] {
        events.push(register(p, 0, "2000-01-01"));
    }
    for k in 0..ARRAY_PRACTITIONERS {
        events.push(register(&array_practitioner(k), k, "2000-01-01"));
    }
    for year in 2006..2026 {
        let day = |n: usize| format!("{year}-{:02}-{:02}", 1 + n % 12, 1 + n % 28);
        for n in 0..10 {
            events.push(violation(&format!("V-{year}-{n}"), HEAVY, &day(n), 1));
        }
        for n in 0..6 {
            events.push(repair(&format!("R-{year}-{n}"), HEAVY, &day(n + 3)));
            events.push(
                json!({"type": "violation_revoked", "violation_id": format!("V-{year}-{n}"), "effective": day(n + 4)}),
            );
        }
        for n in 0..(HISTORY / 20 - 22) {
            let kind = if n % 2 == 0 { "practitioner_registered" } else { "practitioner_deregistered" };
            events.push(json!({"type": kind, "practitioner": HEAVY, "institution": institution(1 + n / 2),
                               "effective": day(n)}));
        }
    }
    // The worst case: every event a scoring step, all in 2023-2026.
    for n in 0..HISTORY {
        let day = format!("{}-{:02}-{:02}", 2023 + n % 4, 1 + n % 12, 1 + n % 28);
        events.push(violation(&format!("W-{n}"), WORST, &day, 1));
    }
    append_all(&ledger, events.into_iter().map(event).collect());
    ledger
}

fn one_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let file = ledger(Some(dir.path()));
    eprintln!("append bench: set-up of {} events in {:.1?}", file.head().unwrap(), started.elapsed());
    appends(c, "append_one", &file);
    // The same without the commit's fsync: what the history costs, apart
    // from the disk's latency (which dominates, and varies, above).
    appends(c, "append_one_in_memory", &ledger(None));
    arrays(c, &file);
}

fn appends(c: &mut Criterion, name: &str, ledger: &Ledger) {
    let n = Cell::new(0usize);
    let next = || {
        n.set(n.get() + 1);
        n.get()
    };
    let mut group = c.benchmark_group(name);
    for (label, p) in [("history_20000", HEAVY), ("history_0", FRESH)] {
        group.bench_function(format!("registration/{label}"), |b| {
            b.iter_batched(
                || event(register(p, next(), "2026-06-01")),
                |e| assert!(!ledger.append(&e).unwrap().already_recorded),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("violation/{label}"), |b| {
            b.iter_batched(
                || {
                    let k = next();
                    event(violation(&format!("B-{k}"), p, &format!("{}-03-01", 2030 + k % 5000), 1))
                },
                |e| assert!(!ledger.append(&e).unwrap().already_recorded),
                BatchSize::SmallInput,
            )
        });
        // One point a year keeps every repair under R13's cap.
        group.bench_function(format!("repair/{label}"), |b| {
            b.iter_batched(
                || {
                    let k = next();
                    event(repair(&format!("BR-{k}"), p, &format!("{}-06-01", 2030 + k % 7000)))
                },
                |e| assert!(!ledger.append(&e).unwrap().already_recorded),
                BatchSize::SmallInput,
            )
        });
    }
    // Refused (the practitioner is terminated), so no commit: the cost is
    // validation reading the 20,000 steps.
    group.bench_function("registration_worst/history_20000_steps", |b| {
        b.iter_batched(
            || event(register(WORST, next(), "2026-06-01")),
            |e| assert!(ledger.append(&e).is_err()),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn arrays(c: &mut Criterion, ledger: &Ledger) {
    let n = Cell::new(1_000_000usize);
    let next = || {
        n.set(n.get() + 1);
        n.get()
    };
    let mut group = c.benchmark_group("append_array");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("10000_mixed_practitioners", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let round = next();
                let events: Vec<Event> = (0..ARRAY)
                    .map(|k| {
                        // Each practitioner gets one event of each kind a round.
                        let p = array_practitioner(k);
                        let day = format!("{}-{:02}-{:02}", 2026 + round % 50, 1 + k % 12, 1 + k % 28);
                        event(match (k / ARRAY_PRACTITIONERS) % 5 {
                            0 => register(&p, k, &day),
                            1 | 2 => violation(&format!("A-{round}-{k}"), &p, &day, 1),
                            3 => repair(&format!("AR-{round}-{k}"), &p, &day),
                            _ => json!({"type": "institution_rated", "institution": institution(k), "year": 2025,
                                        "score": (k % 101) as u32, "direct_e": []}),
                        })
                    })
                    .collect();
                let t = Instant::now();
                let outcomes = ledger.append_batch(&events).unwrap();
                spent += t.elapsed();
                let refused: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).take(3).collect();
                assert!(refused.is_empty(), "the mixed array is accepted whole: {refused:?}");
            }
            spent
        })
    });
    group.finish();
}

criterion_group!(benches, one_append);
criterion_main!(benches);
