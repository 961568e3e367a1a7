//! The decision log's read side at scale (criterion, issue 13): filtered
//! pages of `GET /v1/audit` (the index query, without HTTP) over
//! `AUDIT_BENCH_RECORDS` records (default 10,000,000), against the newest
//! page with no filter (the baseline in the same run). The log is built once
//! into `target/audit-bench/<N>` (segments written through the real writer,
//! then indexed by the real indexer; the build's rates are printed) and
//! reused by later runs.
//!
//! The records: 200,000 practitioners (50 records each), 50,000
//! institutions (200 each), a unique `claim_id` per record, service dates
//! over 2026, one in four an emergency exemption.

use claimgate::audit::log::{AuditConfig, MAX_GROUP_RECORDS};
use claimgate::audit::query::parse_cursor;
use claimgate::audit::{AuditLog, AuditQuery, AuditRecord};
use claimgate::rules::{Reason, Verdict};
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const PRACTITIONERS: u64 = 200_000;
const INSTITUTIONS: u64 = 50_000;

fn records() -> u64 {
    std::env::var("AUDIT_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000)
}

fn practitioner(i: u64) -> String {
    format!("D1101{:08}", i % PRACTITIONERS)
}

fn institution(i: u64) -> String {
    format!("H1101{:07}", (i / 7) % INSTITUTIONS)
}

fn record(i: u64) -> AuditRecord {
    let exemption = i.is_multiple_of(4);
    let day = 1 + (i * 7919) % 365;
    let (month, dom) = month_day(day);
    AuditRecord {
        id: 0,
        at_ms: 1_790_000_000_000 + i,
        seq: 1_000_000 + i / 1_000,
        claim_id: Some(serde_json::Value::String(format!("CLM-{i:010}"))),
        practitioner_id: practitioner(i),
        institution_id: institution(i),
        service_date: format!("2026-{month:02}-{dom:02}"),
        emergency: exemption,
        verdict: if exemption { Verdict::Settle } else { Verdict::Reject },
        reason: if exemption { Reason::EmergencyExemption } else { Reason::PractitionerSuspended },
        waived: if exemption { vec![Reason::PractitionerSuspended] } else { vec![] },
        refs: Default::default(),
    }
}

fn month_day(day: u64) -> (u64, u64) {
    const DAYS: [u64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut d = day;
    for (m, len) in DAYS.iter().enumerate() {
        if d <= *len {
            return (m as u64 + 1, d);
        }
        d -= len;
    }
    (12, 31)
}

/// The log with `n` records, built (or reused) under `target/audit-bench`.
fn built(n: u64) -> (PathBuf, AuditLog) {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/audit-bench").join(n.to_string());
    let dir = data.join("audit");
    let config = AuditConfig { reserve_bytes: 0, ..AuditConfig::new(dir.clone()) };
    let complete = data.join("complete");
    if !complete.exists() {
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).unwrap();
        let log = AuditLog::open(&data, config.clone()).unwrap();
        let started = Instant::now();
        let mut i = 0;
        while i < n {
            let group: Vec<AuditRecord> = (i..(i + MAX_GROUP_RECORDS as u64).min(n)).map(record).collect();
            i += group.len() as u64;
            log.writer.write_now(group).unwrap();
            if i.is_multiple_of(1_000_000) {
                eprintln!("audit bench: {i} records written ({:.0}/s)", i as f64 / started.elapsed().as_secs_f64());
            }
        }
        eprintln!("audit bench: {n} records written in {:.1} s", started.elapsed().as_secs_f64());
        wait_indexed(&log, n, started);
        log.close();
        std::fs::write(&complete, b"").unwrap();
    }
    let log = AuditLog::open(&data, config).unwrap();
    wait_indexed(&log, n, Instant::now());
    (data, log)
}

fn wait_indexed(log: &AuditLog, n: u64, started: Instant) {
    let mut last = Instant::now();
    while log.index.status.next_id.load(Ordering::Relaxed) <= n {
        std::thread::sleep(Duration::from_millis(200));
        if last.elapsed() > Duration::from_secs(10) {
            let done = log.index.status.next_id.load(Ordering::Relaxed) - 1;
            eprintln!("audit bench: {done} indexed ({:.0}/s)", done as f64 / started.elapsed().as_secs_f64());
            last = Instant::now();
        }
    }
    eprintln!("audit bench: index holds {n} records, {:.1} s", started.elapsed().as_secs_f64());
}

fn bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

fn queries(c: &mut Criterion) {
    let n = records();
    let (data, log) = built(n);
    let dir = data.join("audit");
    let index_bytes = bytes(&dir)
        - claimgate::audit::segment::list(&dir).unwrap().iter().map(|(_, p)| p.metadata().unwrap().len()).sum::<u64>();
    eprintln!("audit bench: {n} records, {} bytes on disk ({index_bytes} of them the index)", bytes(&dir));
    let middle = n / 2;
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery::all();
        f(&mut q);
        q
    };
    let deep_cursor = {
        let page = log.index.query(&q(|q| q.practitioner = Some(practitioner(4_242)))).unwrap();
        assert_eq!(page.records.len(), 50.min(n as usize / PRACTITIONERS as usize).min(100));
        page.records.get(20).map(|r| r.id)
    };
    let cases: Vec<(&str, AuditQuery)> = vec![
        ("newest_page_no_filter", AuditQuery::all()),
        ("practitioner", q(|q| q.practitioner = Some(practitioner(4_242)))),
        (
            "practitioner_after_cursor",
            AuditQuery { before: deep_cursor, ..q(|q| q.practitioner = Some(practitioner(4_242))) },
        ),
        (
            "institution_and_dates",
            q(|q| {
                q.institution = Some(institution(123_456));
                q.from = Some("2026-03-01".into());
                q.until = Some("2026-07-01".into());
            }),
        ),
        ("claim_id", AuditQuery { claim_id: Some(format!("CLM-{middle:010}")), ..AuditQuery::all() }),
        ("reason_exemptions", q(|q| q.reason = Some("emergency_exemption".into()))),
        (
            "one_service_day_no_other_filter",
            q(|q| {
                q.from = Some("2026-06-15".into());
                q.until = Some("2026-06-16".into());
            }),
        ),
        (
            "exemptions_of_an_institution",
            q(|q| {
                q.institution = Some(institution(654_321));
                q.reason = Some("emergency_exemption".into());
            }),
        ),
    ];
    let mut group = c.benchmark_group(format!("audit_query_{n}"));
    group.sample_size(30).measurement_time(Duration::from_secs(3));
    for (name, query) in cases {
        let page = log.index.query(&query).unwrap();
        eprintln!(
            "audit bench: {name}: {} records, next_cursor {}",
            page.records.len(),
            page.next_cursor.as_deref().map_or("none".into(), |c| format!("{c} (id {})", parse_cursor(c).unwrap()))
        );
        group.bench_function(name, |b| b.iter(|| log.index.query(&query).unwrap()));
    }
    group.finish();
    log.close();
}

criterion_group!(benches, queries);
criterion_main!(benches);
