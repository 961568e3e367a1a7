//! The decision log (R19) on its own: segments, torn tails, damage, the
//! queue bound, the free-space reserve, retention, the index and its
//! cursor, the export, and the import of the older SQLite log.

use claimgate::audit::export::{export, Exported, Format};
use claimgate::audit::log::{AuditConfig, Writer, MIN_SEGMENT_BYTES};
use claimgate::audit::{segment, AuditLog, AuditQuery, AuditRecord, Unrecorded};
use claimgate::rules::{Reason, Verdict};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

fn record(i: u64) -> AuditRecord {
    let exemption = i.is_multiple_of(4);
    AuditRecord {
        id: 0,
        at_ms: 1_790_000_000_000 + i,
        seq: 10 + i / 100,
        claim_id: Some(if i.is_multiple_of(3) { json!(i) } else { json!(format!("C-{i}")) }),
        practitioner_id: format!("D1101050{:05}", i % 50),
        institution_id: format!("H110105{:05}", i % 7),
        service_date: format!("2026-03-{:02}", 1 + i % 28),
        emergency: exemption,
        verdict: if exemption { Verdict::Settle } else { Verdict::Reject },
        reason: if exemption { Reason::EmergencyExemption } else { Reason::PractitionerSuspended },
        waived: if exemption { vec![Reason::PractitionerSuspended] } else { vec![] },
        refs: Default::default(),
    }
}

fn config(dir: &Path) -> AuditConfig {
    AuditConfig { reserve_bytes: 0, ..AuditConfig::new(dir.to_owned()) }
}

fn exported(dir: &Path, q: &AuditQuery) -> (Vec<AuditRecord>, Exported) {
    let mut out = Vec::new();
    let done = export(dir, q, Format::Jsonl, &mut out, &mut |_| {}).expect("export");
    let records =
        out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
    (records, done)
}

fn write(writer: &Writer, from: u64, to: u64, per_group: u64) {
    let mut i = from;
    while i < to {
        let group: Vec<AuditRecord> = (i..(i + per_group).min(to)).map(record).collect();
        writer.write_now(group).expect("the log takes the group");
        i += per_group;
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn records_come_back_in_order_with_consecutive_ids_across_segment_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let writer = Writer::open(AuditConfig { segment_bytes: MIN_SEGMENT_BYTES, ..config(dir.path()) }, tx).unwrap();
    write(&writer, 0, 3_000, 37);
    writer.close();
    let segments = segment::list(dir.path()).unwrap();
    assert!(segments.len() > 3, "64 KiB segments rotate: {segments:?}");
    let (records, done) = exported(dir.path(), &AuditQuery::all());
    assert_eq!((done.written, done.damaged.len()), (3_000, 0));
    for (n, r) in records.iter().enumerate() {
        assert_eq!(r.id, n as u64 + 1);
        assert_eq!(AuditRecord { id: 0, ..r.clone() }, record(n as u64), "record {n} as written");
    }
    // A numeric claim_id stays a number.
    assert_eq!(records[0].claim_id, Some(json!(0)));
    // Reopened, the log goes on from the next id.
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let writer = Writer::open(config(dir.path()), tx).unwrap();
    assert_eq!(writer.shared.durable.lock().unwrap().next_id, 3_001);
    writer.close();
}

#[test]
fn a_torn_tail_is_cut_at_start_kept_beside_the_segment_and_never_read_as_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let writer = Writer::open(config(dir.path()), tx).unwrap();
    write(&writer, 0, 10, 5);
    writer.close();
    let (first, path) = segment::list(dir.path()).unwrap().pop().unwrap();
    let clean = segment::repair_tail(&path, first).unwrap();
    assert_eq!((clean.cut_bytes, clean.next_id), (0, 11), "the writer's preallocated zeros are no tail: {clean:?}");
    let sound = clean.end;
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len >= sound + segment::PREALLOCATE_BYTES - 4096, "zeros are written ahead: {len}");
    // A crash in the middle of the next group: a whole frame, then half of one.
    let mut torn = Vec::new();
    segment::encode(&AuditRecord { id: 11, ..record(10) }, &mut torn);
    let whole = torn.len();
    segment::encode(&AuditRecord { id: 12, ..record(11) }, &mut torn);
    torn.truncate(whole + 20);
    // ... and its first frame's checksum damaged, as a torn page would.
    torn[whole / 2] ^= 0xff;
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().write_all_at(&torn, sound).unwrap();
    let tail = segment::repair_tail(&path, first).unwrap();
    assert_eq!((tail.end, tail.next_id, tail.cut_bytes), (sound, 11, len - sound), "{tail:?}");
    let kept = tail.kept_in.expect("the cut bytes are kept");
    assert_eq!(std::fs::read(&kept).unwrap()[..torn.len()], torn[..]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), sound);
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let writer = Writer::open(config(dir.path()), tx).unwrap();
    write(&writer, 100, 101, 1);
    writer.close();
    let (records, done) = exported(dir.path(), &AuditQuery::all());
    assert_eq!(done.damaged, Vec::<String>::new());
    assert_eq!(records.len(), 11);
    assert_eq!((records[10].id, &records[10].claim_id), (11, &Some(json!("C-100"))), "the next record takes id 11");
}

#[test]
fn damage_inside_a_sealed_segment_is_reported_by_the_export_and_the_rest_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let writer = Writer::open(AuditConfig { segment_bytes: MIN_SEGMENT_BYTES, ..config(dir.path()) }, tx).unwrap();
    write(&writer, 0, 2_000, 50);
    writer.close();
    let segments = segment::list(dir.path()).unwrap();
    let (_, sealed) = &segments[0];
    let mut bytes = std::fs::read(sealed).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(sealed, &bytes).unwrap();
    let (records, done) = exported(dir.path(), &AuditQuery::all());
    assert_eq!(done.damaged.len(), 1, "{done:?}");
    assert!(records.len() < 2_000 && records.len() > 1_000, "{}", records.len());
    // Nothing misread: every record exported is one that was written.
    for r in &records {
        assert_eq!(AuditRecord { id: 0, ..r.clone() }, record(r.id - 1));
    }
}

#[test]
fn a_group_past_the_queue_bound_is_refused_at_once_and_one_at_the_bound_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let writer = Writer::open(AuditConfig { queue_records: 100, ..config(dir.path()) }, tx).unwrap();
    let over: Vec<AuditRecord> = (0..101).map(record).collect();
    assert_eq!(writer.submit(over).err(), Some(Unrecorded::QueueFull));
    let at: Vec<AuditRecord> = (0..100).map(record).collect();
    writer.write_now(at).expect("a group of exactly the bound is taken");
    assert_eq!(writer.shared.queued(), 0);
    writer.close();
    assert_eq!(writer.submit(vec![record(1)]).err(), Some(Unrecorded::Closed), "a closed log refuses");
}

#[test]
fn past_the_free_space_reserve_records_are_refused_at_once_without_a_write_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let free = claimgate::audit::log::free_bytes(dir.path()).unwrap();
    let writer = Writer::open(AuditConfig { reserve_bytes: free + (1 << 40), ..config(dir.path()) }, tx).unwrap();
    assert_eq!(writer.write_now(vec![record(0)]), Err(Unrecorded::SpaceReserve));
    // While refusing, new groups are refused at submission: no write is
    // attempted per group, so a flood costs no disk work and no queue.
    let started = Instant::now();
    let mut refused = 0;
    while started.elapsed() < Duration::from_millis(200) {
        if writer.submit(vec![record(1)]).is_err() {
            refused += 1;
        }
    }
    assert!(refused > 100, "{refused}");
    let attempts = writer.shared.stats.failed_writes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(attempts <= 2, "one attempt per retry interval, not per group: {attempts}");
    let failure = writer.shared.failure.lock().unwrap().clone().expect("the failure is kept for /readyz");
    assert!(failure.what.contains("--audit-reserve-bytes"), "{}", failure.what);
    writer.close();
    let (records, _) = exported(dir.path(), &AuditQuery::all());
    assert!(records.is_empty(), "nothing was written past the reserve");
}

#[test]
fn sealed_segments_past_the_retention_are_deleted_and_the_newest_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let base = AuditConfig { segment_bytes: MIN_SEGMENT_BYTES, ..config(dir.path()) };
    let writer = Writer::open(base.clone(), tx).unwrap();
    write(&writer, 0, 1_500, 50);
    writer.close();
    let before = segment::list(dir.path()).unwrap();
    assert!(before.len() >= 3);
    let old = std::time::SystemTime::now() - Duration::from_secs(40 * 86_400);
    for (_, path) in &before[..2] {
        std::fs::File::options().write(true).open(path).unwrap().set_modified(old).unwrap();
    }
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let writer = Writer::open(AuditConfig { retain: Some(Duration::from_secs(30 * 86_400)), ..base }, tx).unwrap();
    writer.close();
    let after = segment::list(dir.path()).unwrap();
    assert_eq!(after, before[2..].to_vec(), "the two old sealed segments went, the rest stayed");
}

#[test]
fn the_index_pages_newest_first_with_a_cursor_and_every_filter_agrees_with_the_export() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("audit");
    let log = AuditLog::open(data.path(), config(&dir)).unwrap();
    write(&log.writer, 0, 2_500, 100);
    wait_until("the index to catch up", || {
        log.index.status.next_id.load(std::sync::atomic::Ordering::Relaxed) == 2_501
    });
    let queries = [
        AuditQuery::all(),
        AuditQuery { practitioner: Some("D110105000007".into()), ..AuditQuery::all() },
        AuditQuery { institution: Some("H11010500003".into()), from: Some("2026-03-10".into()), ..AuditQuery::all() },
        AuditQuery { claim_id: Some("30".into()), ..AuditQuery::all() },
        AuditQuery { claim_id: Some("C-31".into()), ..AuditQuery::all() },
        AuditQuery {
            reason: Some("emergency_exemption".into()),
            until: Some("2026-03-05".into()),
            ..AuditQuery::all()
        },
        AuditQuery { from: Some("2026-03-27".into()), ..AuditQuery::all() },
    ];
    for q in queries {
        let (mut want, _) = exported(&dir, &q);
        want.reverse();
        let mut got = Vec::new();
        let mut page_q = AuditQuery { limit: 37, ..q.clone() };
        loop {
            let page = log.index.query(&page_q).unwrap();
            assert!(page.records.len() <= 37);
            got.extend(page.records);
            match page.next_cursor {
                Some(c) => page_q.before = Some(claimgate::audit::query::parse_cursor(&c).unwrap()),
                None => break,
            }
        }
        assert_eq!(got, want, "{q:?}");
        assert!(!want.is_empty(), "{q:?} matches something");
    }
    log.close();
}

#[test]
fn a_deleted_index_is_rebuilt_from_the_segments() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("audit");
    let log = AuditLog::open(data.path(), config(&dir)).unwrap();
    write(&log.writer, 0, 300, 100);
    log.close();
    std::fs::remove_file(dir.join(claimgate::audit::index::INDEX_FILE)).unwrap();
    let log = AuditLog::open(data.path(), config(&dir)).unwrap();
    wait_until("the rebuild", || log.index.status.next_id.load(std::sync::atomic::Ordering::Relaxed) == 301);
    assert_eq!(log.index.query(&AuditQuery { limit: 1_000, ..AuditQuery::all() }).unwrap().records.len(), 300);
    log.close();
}

#[test]
fn an_older_sqlite_audit_log_is_imported_once_and_kept_renamed() {
    let data = tempfile::tempdir().unwrap();
    let legacy = data.path().join(claimgate::audit::LEGACY_AUDIT_FILE);
    let conn = rusqlite::Connection::open(&legacy).unwrap();
    conn.execute_batch(
        "CREATE TABLE audit (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, seq INTEGER NOT NULL, claim_id TEXT,
            practitioner TEXT NOT NULL, institution TEXT NOT NULL, service_date TEXT NOT NULL, emergency INTEGER NOT NULL,
            verdict TEXT NOT NULL, reason TEXT NOT NULL, waived TEXT NOT NULL);
         INSERT INTO audit VALUES (1, 5, 3, 'L1', 'D110105000001', 'H11010500001', '2026-03-20', 1, 'settle', 'emergency_exemption', 'practitioner_suspended');
         INSERT INTO audit VALUES (2, 6, 3, NULL, 'D110105000001', 'H11010500001', '2026-03-20', 0, 'reject', 'practitioner_suspended', '');",
    )
    .unwrap();
    drop(conn);
    let dir = data.path().join("audit");
    let log = AuditLog::open(data.path(), config(&dir)).unwrap();
    log.close();
    assert!(!legacy.exists() && data.path().join("audit.sqlite3.imported").exists());
    let (records, _) = exported(&dir, &AuditQuery::all());
    assert_eq!(records.len(), 2);
    assert_eq!(
        (records[0].claim_id.clone(), records[0].waived.clone()),
        (Some(json!("L1")), vec![Reason::PractitionerSuspended])
    );
    assert_eq!((records[1].claim_id.clone(), records[1].reason.as_str()), (None, "practitioner_suspended"));
    // Opened again, nothing is imported twice.
    let log = AuditLog::open(data.path(), config(&dir)).unwrap();
    log.close();
    assert_eq!(exported(&dir, &AuditQuery::all()).0.len(), 2);
}

#[test]
fn a_second_writer_on_one_audit_directory_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let first = Writer::open(config(dir.path()), tx.clone()).unwrap();
    let refused = Writer::open(config(dir.path()), tx.clone()).err().expect("a second writer is refused");
    assert!(refused.to_string().contains("give each gate its own --audit-dir"), "{refused}");
    first.close();
    Writer::open(config(dir.path()), tx).expect("once the first has closed, the log opens").close();
}

#[test]
fn an_index_ahead_of_a_newest_segment_cut_at_start_forgets_what_was_cut() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("audit");
    let log = AuditLog::open(data.path(), config(&dir)).unwrap();
    write(&log.writer, 0, 300, 100);
    wait_until("the index", || log.index.status.next_id.load(std::sync::atomic::Ordering::Relaxed) == 301);
    log.close();
    drop(log);
    // Damage in the middle of the newest segment's frames: start cuts it there.
    let (first, path) = segment::list(&dir).unwrap().pop().unwrap();
    let frames_end = segment::repair_tail(&path, first).unwrap().end;
    let mut bytes = std::fs::read(&path).unwrap();
    let at = frames_end as usize / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let log = AuditLog::open(data.path(), config(&dir)).unwrap();
    let kept = log.writer.shared.durable.lock().unwrap().next_id - 1;
    assert!(kept > 100 && kept < 300, "{kept}");
    write(&log.writer, 1_000, 1_010, 10);
    wait_until("the index", || log.index.status.next_id.load(std::sync::atomic::Ordering::Relaxed) == kept + 11);
    let (mut want, _) = exported(&dir, &AuditQuery::all());
    want.reverse();
    let got = log.index.query(&AuditQuery { limit: 1_000, ..AuditQuery::all() }).unwrap().records;
    assert_eq!(got, want, "the index holds what the log holds, nothing cut");
    log.close();
}

#[test]
fn a_sealed_segment_left_with_preallocated_zeros_by_a_crash_is_cut_back_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let base = AuditConfig { segment_bytes: MIN_SEGMENT_BYTES, ..config(dir.path()) };
    let writer = Writer::open(base.clone(), tx.clone()).unwrap();
    write(&writer, 0, 1_000, 50);
    writer.close();
    let segments = segment::list(dir.path()).unwrap();
    assert!(segments.len() >= 2);
    // The segment before the newest, as if the crash came between beginning
    // the newest and cutting this one's zeros.
    let (_, sealed) = &segments[segments.len() - 2];
    let len = std::fs::metadata(sealed).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(sealed).unwrap().set_len(len + 1_000_000).unwrap();
    let (_, done) = exported(dir.path(), &AuditQuery::all());
    assert_eq!(done.damaged.len(), 1, "zeros in a sealed segment are not taken as its end: {done:?}");
    Writer::open(base, tx).unwrap().close();
    let (records, done) = exported(dir.path(), &AuditQuery::all());
    assert_eq!((records.len(), done.damaged.len()), (1_000, 0), "{done:?}");
    assert_eq!(std::fs::metadata(sealed).unwrap().len(), len);
}
