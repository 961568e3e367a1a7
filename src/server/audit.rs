//! The audit log: every reject and every emergency exemption (R19), with the
//! claim line, the decision and the `seq` it was made at, in
//! `DATA/audit.sqlite3`. Handlers hand records to a bounded queue; a writer
//! thread commits them in batches. When the queue is full, a reject's record
//! is dropped and counted (`claimgate_audit_dropped_total`) and logged, so a
//! loss is never silent and the check is not slowed; an emergency exemption's
//! record (R19: always recorded) spills into a bounded overflow list the writer
//! drains first, and only past `MAX_OVERFLOW` waits, up to `MUST_KEEP_WAIT`.
//! A commit that fails (a full disk, a read-only data directory) keeps its
//! records in that list and is retried every `RETRY_INTERVAL`, so a passing
//! fault loses nothing; records are lost (logged and counted) only when the
//! list is full or at shutdown.

use super::config::{AUDIT_COMMIT_INTERVAL, AUDIT_QUEUE_CAPACITY, AUDIT_WRITE_BATCH, MAX_AUDIT_PAGE};
use rusqlite::{params, Connection};
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Exemption records held beside a full queue before a handler has to wait.
pub const MAX_OVERFLOW: usize = 1_000_000;

/// Longest an emergency exemption waits for room in a full audit queue.
pub const MUST_KEEP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How often a failed commit is tried again while no new record arrives.
pub const RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// The audit database's file name inside the data directory.
pub const AUDIT_FILE: &str = "audit.sqlite3";

/// One audited decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub at_ms: u64,
    pub seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<String>,
    pub practitioner_id: String,
    pub institution_id: String,
    pub service_date: String,
    pub emergency: bool,
    pub verdict: String,
    pub reason: String,
    pub waived: Vec<String>,
}

/// Filters for reading the log back.
#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    pub practitioner: Option<String>,
    pub institution: Option<String>,
    pub from: Option<String>,
    pub until: Option<String>,
    pub limit: usize,
}

/// The queue, the writer thread and a read connection.
pub struct AuditLog {
    queue: Mutex<Option<crossbeam_channel::Sender<AuditRecord>>>,
    depth: Arc<AtomicU64>,
    pub written: Arc<AtomicU64>,
    /// Records a failed commit lost (logged and counted).
    pub lost: Arc<AtomicU64>,
    /// Commits that failed (their records kept for a retry, or lost).
    pub failed_commits: Arc<AtomicU64>,
    /// Exemption records that found the queue full (drained first).
    overflow: Arc<Mutex<Vec<AuditRecord>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    reader: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    claim_id TEXT,
    practitioner TEXT NOT NULL,
    institution TEXT NOT NULL,
    service_date TEXT NOT NULL,
    emergency INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    waived TEXT NOT NULL
);
";

impl AuditLog {
    /// Opens (or creates) the audit log and starts its writer.
    pub fn open(data: &Path) -> rusqlite::Result<AuditLog> {
        let path = data.join(AUDIT_FILE);
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        let reader = Connection::open(&path)?;
        let (tx, rx) = crossbeam_channel::bounded::<AuditRecord>(AUDIT_QUEUE_CAPACITY);
        let depth = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let lost = Arc::new(AtomicU64::new(0));
        let failed_commits = Arc::new(AtomicU64::new(0));
        let overflow = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let (depth, written, lost, failed, overflow) =
                (depth.clone(), written.clone(), lost.clone(), failed_commits.clone(), overflow.clone());
            std::thread::Builder::new()
                .name("audit-writer".into())
                .spawn(move || write_loop(conn, rx, &overflow, &depth, &written, &lost, &failed))
                .expect("spawning the audit writer")
        };
        Ok(AuditLog {
            queue: Mutex::new(Some(tx)),
            depth,
            written,
            lost,
            failed_commits,
            overflow,
            writer: Mutex::new(Some(writer)),
            reader: Mutex::new(reader),
        })
    }

    /// Queues a record; `false` if the queue was full (the caller counts it).
    /// With `must_keep` (an emergency exemption, which R19 says is always
    /// recorded) a full queue spills into an overflow list the writer drains
    /// first (up to [`MAX_OVERFLOW`] records), and only past that waits, up to
    /// [`MUST_KEEP_WAIT`].
    pub fn submit(&self, record: AuditRecord, must_keep: bool) -> bool {
        let tx = {
            let queue = self.queue.lock().expect("not poisoned");
            let Some(tx) = queue.as_ref() else { return false };
            tx.clone()
        };
        let sent = match tx.try_send(record) {
            Ok(()) => true,
            Err(crossbeam_channel::TrySendError::Full(record)) if must_keep => {
                let mut overflow = self.overflow.lock().expect("not poisoned");
                if overflow.len() < MAX_OVERFLOW {
                    overflow.push(record);
                    true
                } else {
                    drop(overflow);
                    tx.send_timeout(record, MUST_KEEP_WAIT).is_ok()
                }
            }
            Err(_) => false,
        };
        if sent {
            self.depth.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// Records queued but not yet committed.
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Stops taking records, commits what is queued and stops the writer.
    pub fn close(&self) {
        self.queue.lock().expect("not poisoned").take();
        if let Some(w) = self.writer.lock().expect("not poisoned").take() {
            let _ = w.join();
        }
    }

    /// Reads records back, newest first.
    pub fn query(&self, q: &AuditQuery) -> rusqlite::Result<Vec<AuditRecord>> {
        let conn = self.reader.lock().expect("not poisoned");
        let mut stmt = conn.prepare_cached(
            "SELECT at_ms, seq, claim_id, practitioner, institution, service_date, emergency, verdict, reason, waived
             FROM audit
             WHERE (?1 IS NULL OR practitioner = ?1) AND (?2 IS NULL OR institution = ?2)
               AND (?3 IS NULL OR service_date >= ?3) AND (?4 IS NULL OR service_date < ?4)
             ORDER BY id DESC LIMIT ?5",
        )?;
        let rows = stmt.query_map(
            params![q.practitioner, q.institution, q.from, q.until, q.limit.min(MAX_AUDIT_PAGE) as i64],
            |r| {
                let waived: String = r.get(9)?;
                Ok(AuditRecord {
                    at_ms: r.get::<_, i64>(0)? as u64,
                    seq: r.get::<_, i64>(1)? as u64,
                    claim_id: r.get(2)?,
                    practitioner_id: r.get(3)?,
                    institution_id: r.get(4)?,
                    service_date: r.get(5)?,
                    emergency: r.get::<_, i64>(6)? != 0,
                    verdict: r.get(7)?,
                    reason: r.get(8)?,
                    waived: waived.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
                })
            },
        )?;
        rows.collect()
    }
}

fn write_loop(
    mut conn: Connection,
    rx: crossbeam_channel::Receiver<AuditRecord>,
    overflow: &Mutex<Vec<AuditRecord>>,
    depth: &AtomicU64,
    written: &AtomicU64,
    lost: &AtomicU64,
    failed_commits: &AtomicU64,
) {
    let mut closed = false;
    // Failed commits since the last good one (logged at 1, 2, 4, 8, ...).
    let mut failing: u64 = 0;
    while !closed {
        let mut batch = std::mem::take(&mut *overflow.lock().expect("not poisoned"));
        // With records waiting (a failed commit's), wake to retry them.
        let next = if batch.is_empty() {
            rx.recv().map_err(|_| crossbeam_channel::RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(RETRY_INTERVAL)
        };
        match next {
            Ok(first) => batch.push(first),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                closed = true;
                batch.append(&mut overflow.lock().expect("not poisoned"));
                if batch.is_empty() {
                    break;
                }
            }
        }
        // Group commit: gather for up to AUDIT_COMMIT_INTERVAL so the fsync
        // rate stays low however records trickle in (each commit is an fsync).
        let deadline = std::time::Instant::now() + AUDIT_COMMIT_INTERVAL;
        while batch.len() < AUDIT_WRITE_BATCH && !closed {
            match rx.recv_deadline(deadline) {
                Ok(r) => batch.push(r),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => break,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    closed = true;
                    batch.append(&mut overflow.lock().expect("not poisoned"));
                }
            }
        }
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO audit (at_ms, seq, claim_id, practitioner, institution, service_date, emergency, verdict, reason, waived)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?;
                for r in &batch {
                    stmt.execute(params![
                        r.at_ms as i64,
                        r.seq as i64,
                        r.claim_id,
                        r.practitioner_id,
                        r.institution_id,
                        r.service_date,
                        r.emergency as i64,
                        r.verdict,
                        r.reason,
                        r.waived.join(","),
                    ])?;
                }
            }
            tx.commit()
        })();
        match result {
            Ok(()) => {
                depth.fetch_sub(batch.len() as u64, Ordering::Relaxed);
                written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                if failing > 0 {
                    tracing::info!(failed_attempts = failing, records = batch.len(), "audit writes succeed again");
                    failing = 0;
                }
            }
            Err(e) => {
                failing += 1;
                failed_commits.fetch_add(1, Ordering::Relaxed);
                let mut waiting = overflow.lock().expect("not poisoned");
                if !closed && waiting.len() + batch.len() <= MAX_OVERFLOW {
                    if failing.is_power_of_two() {
                        tracing::error!(error = %e, records = batch.len(), failed_attempts = failing, "audit write failed; records kept, retrying");
                    }
                    // Oldest first, ahead of what spilled over meanwhile.
                    batch.append(&mut waiting);
                    *waiting = batch;
                } else {
                    depth.fetch_sub(batch.len() as u64, Ordering::Relaxed);
                    lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    tracing::error!(error = %e, records = batch.len(), "audit write failed; records lost (counted)");
                }
            }
        }
    }
}
