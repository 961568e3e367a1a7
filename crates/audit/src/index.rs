//! The decision log's index: a SQLite file beside the segments, derived from
//! them and never the record of anything (it can be deleted; it is rebuilt).
//! A thread tails the durable segments into it; queries read it through a
//! small pool of connections, newest first, page by page with a cursor.
//!
//! Work per query is bounded: the most selective filter given picks the
//! index walked (`claim_id`, then `practitioner`, `institution`, `reason`,
//! else the record order), the other filters are applied to what it yields,
//! and a page stops after [`MAX_EXAMINED`] candidates. A page shorter than
//! its limit that carries a `next_cursor` means only that the walk paused;
//! the cursor goes on from there.

use super::log::{Durable, Shared};
use super::query::AuditQuery;
use super::record::AuditRecord;
use super::segment::{self, ReadError, SegmentReader};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The index's file name in the audit directory.
pub const INDEX_FILE: &str = "index.sqlite3";
/// Candidates one page examines at most (bounded work per request).
pub const MAX_EXAMINED: usize = 20_000;
/// Queries reading the index at once; past it a query is answered busy.
pub const MAX_CONCURRENT_QUERIES: usize = 4;
/// The index's layout version (`PRAGMA user_version`); another is rebuilt.
const INDEX_VERSION: i64 = 1;
/// Records indexed per transaction.
const INDEX_BATCH: usize = 65_536;
/// Least time between two updates of the index. Each update rewrites every
/// index page it touches, and the keys are random: many small updates would
/// write far more than the records themselves, and their writes would slow
/// the fsyncs the answers wait on. Queries see a record this much later.
pub const INDEX_MIN_INTERVAL: Duration = Duration::from_millis(250);
/// The indexer's page cache (SQLite `cache_size`, KiB when negative).
const INDEX_CACHE_KIB: i64 = 64 * 1024;
/// How often the indexer looks at the segments when nothing woke it.
const INDEX_IDLE: Duration = Duration::from_secs(1);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    practitioner TEXT NOT NULL,
    institution TEXT NOT NULL,
    service_date TEXT NOT NULL,
    claim_key TEXT,
    reason TEXT NOT NULL,
    segment INTEGER NOT NULL,
    offset INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_practitioner ON records (practitioner, id);
CREATE INDEX IF NOT EXISTS records_by_institution ON records (institution, id);
CREATE INDEX IF NOT EXISTS records_by_claim ON records (claim_key, id);
CREATE INDEX IF NOT EXISTS records_by_reason ON records (reason, id);
CREATE TABLE IF NOT EXISTS position (
    k INTEGER PRIMARY KEY CHECK (k = 0),
    segment INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    next_id INTEGER NOT NULL
);
";

/// One page of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<AuditRecord>,
    /// Where the next page begins (`None`: nothing older matches).
    pub next_cursor: Option<String>,
}

/// Why a query was not answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{MAX_CONCURRENT_QUERIES} audit queries are running already; retry shortly")]
    Busy,
    #[error("reading the audit index: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("reading a record the audit index points to: {0}")]
    Segment(String),
}

/// What the indexer has done, for `/readyz` and `/metrics`.
#[derive(Debug, Default)]
pub struct IndexStatus {
    /// The id the next indexed record will have.
    pub next_id: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// Sealed segments found damaged (their readable frames indexed).
    pub damaged: Mutex<Vec<String>>,
}

/// The reading side, and the indexing thread.
pub struct AuditIndex {
    path: PathBuf,
    dir: PathBuf,
    readers: Mutex<Vec<Connection>>,
    in_flight: AtomicU64,
    pub status: Arc<IndexStatus>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

impl AuditIndex {
    /// Opens (or rebuilds, if unreadable) the index in `dir` and starts the
    /// thread that tails the log into it.
    pub fn start(shared: Arc<Shared>, wake: crossbeam_channel::Receiver<()>) -> rusqlite::Result<AuditIndex> {
        let path = shared.config.dir.join(INDEX_FILE);
        let conn = match prepare(&path) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(index = %path.display(), error = %e, "the audit index is unreadable; rebuilding it from the segments");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                prepare(&path)?
            }
        };
        conn.pragma_update(None, "cache_size", -INDEX_CACHE_KIB)?;
        let status = Arc::new(IndexStatus::default());
        let stop = Arc::new(AtomicBool::new(false));
        let dir = shared.config.dir.clone();
        let thread = {
            let (status, stop) = (status.clone(), stop.clone());
            std::thread::Builder::new()
                .name("audit-index".into())
                .spawn(move || {
                    claimgate_store::thread_priority::renice(INDEXER_NICENESS, "audit indexer");
                    index_loop(conn, &shared, &status, &stop, &wake)
                })
                .expect("spawning the audit indexer")
        };
        Ok(AuditIndex {
            dir,
            path,
            readers: Mutex::new(Vec::new()),
            in_flight: AtomicU64::new(0),
            status,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops the indexer (what it has not indexed yet is indexed at the next start).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.lock().expect("not poisoned").take() {
            let _ = t.join();
        }
    }

    /// One page of records matching `q`, newest first (blocking: call from
    /// a blocking thread).
    pub fn query(&self, q: &AuditQuery) -> Result<Page, QueryError> {
        self.with_reader(|conn| run_query(conn, &self.dir, q))
    }

    /// Runs `op` on a reader connection, as one of at most
    /// [`MAX_CONCURRENT_QUERIES`] (else `Busy`).
    fn with_reader<T>(&self, op: impl FnOnce(&Connection) -> Result<T, QueryError>) -> Result<T, QueryError> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_CONCURRENT_QUERIES as u64 {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(QueryError::Busy);
        }
        let conn = self.readers.lock().expect("not poisoned").pop();
        let result = (|| {
            let conn = match conn {
                Some(c) => c,
                None => open_connection(&self.path)?,
            };
            let out = op(&conn);
            self.readers.lock().expect("not poisoned").push(conn);
            out
        })();
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        result
    }
}

/// Decisions recorded, by the region of the line's institution (the six
/// digits after its letter), the month of its service date and its reason
/// (`emergency_exemption`, or a reject reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonCount {
    pub region: String,
    pub month: String,
    pub reason: String,
    pub count: u64,
}

impl AuditIndex {
    /// Every [`ReasonCount`] of the records indexed so far (blocking; one
    /// pass over the index, counted as one of its concurrent queries).
    pub fn counts(&self) -> Result<Vec<ReasonCount>, QueryError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT substr(institution, 2, 6), substr(service_date, 1, 7), reason, count(*) FROM records
                 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(ReasonCount {
                    region: r.get(0)?,
                    month: r.get(1)?,
                    reason: r.get(2)?,
                    count: r.get::<_, i64>(3)? as u64,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}

/// How much lower than the gate's threads the indexer runs (a `nice`
/// increment): it is background work, and on a busy machine the check
/// handlers and the log's writer, whose fsync answers wait on, come first.
pub const INDEXER_NICENESS: i32 = 10;

fn prepare(path: &Path) -> rusqlite::Result<Connection> {
    let conn = open_connection(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // Derived data: a crash loses at most the last few batches, which the
    // indexer reads again from the segments (its position commits with them).
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0))?;
    if tables > 0 && version != INDEX_VERSION {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!("index layout {version}, this build writes {INDEX_VERSION}")),
        ));
    }
    conn.execute_batch(SCHEMA)?;
    conn.pragma_update(None, "user_version", INDEX_VERSION)?;
    let check: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some(format!("quick_check: {check}")),
        ));
    }
    Ok(conn)
}

fn run_query(conn: &Connection, dir: &Path, q: &AuditQuery) -> Result<Page, QueryError> {
    let before = q.before.unwrap_or(i64::MAX as u64).min(i64::MAX as u64) as i64;
    let keys = q.claim_id.as_deref().map(super::record::claim_keys);
    const COLUMNS: &str =
        "SELECT id, practitioner, institution, service_date, claim_key, reason, segment, offset FROM records";
    let (filter, first): (&str, Option<String>) = if let Some(k) = &keys {
        ("claim_key IN (?1, ?2)", Some(k[0].clone()))
    } else if let Some(p) = &q.practitioner {
        ("practitioner = ?1 AND ?2 IS NULL", Some(p.clone()))
    } else if let Some(i) = &q.institution {
        ("institution = ?1 AND ?2 IS NULL", Some(i.clone()))
    } else if let Some(r) = &q.reason {
        ("reason = ?1 AND ?2 IS NULL", Some(r.clone()))
    } else {
        ("?1 IS NULL AND ?2 IS NULL", None)
    };
    let sql = format!("{COLUMNS} WHERE {filter} AND id < ?3 ORDER BY id DESC LIMIT ?4");
    let second = keys.as_ref().map(|k| k[1].clone());
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![first, second, before, MAX_EXAMINED as i64])?;
    let mut found = Vec::new();
    let (mut examined, mut last_id) = (0usize, None);
    while let Some(row) = rows.next()? {
        examined += 1;
        let id = row.get::<_, i64>(0)? as u64;
        last_id = Some(id);
        let text = |i| row.get_ref(i).and_then(|v| v.as_str().map_err(Into::into));
        let claim_key = match row.get_ref(4)? {
            rusqlite::types::ValueRef::Null => None,
            v => Some(v.as_str().map_err(rusqlite::Error::from)?),
        };
        let fields = super::query::Fields {
            id,
            practitioner: text(1)?,
            institution: text(2)?,
            service_date: text(3)?,
            claim_key,
            reason: text(5)?,
        };
        if q.matches_fields(&fields) {
            found.push((id, row.get::<_, i64>(6)? as u64, row.get::<_, i64>(7)? as u64));
            if found.len() == q.limit {
                break;
            }
        }
    }
    let next_cursor = if found.len() == q.limit || examined == MAX_EXAMINED {
        last_id.filter(|id| *id > 1).map(super::query::cursor)
    } else {
        None
    };
    // The records themselves, from the segments the index points into.
    let mut files: Vec<(u64, Option<std::fs::File>)> = Vec::new();
    let mut records = Vec::with_capacity(found.len());
    for (id, seg, offset) in found {
        let file = match files.iter().position(|(s, _)| *s == seg) {
            Some(i) => &files[i].1,
            None => {
                files.push((seg, std::fs::File::open(segment::segment_path(dir, seg)).ok()));
                &files.last().expect("just pushed").1
            }
        };
        // A segment deleted past the retention since this row was read: gone.
        let Some(file) = file else { continue };
        match segment::read_at(file, offset, id) {
            Ok(r) => records.push(r),
            Err(e) => return Err(QueryError::Segment(format!("{}: {e}", segment::segment_path(dir, seg).display()))),
        }
    }
    Ok(Page { records, next_cursor })
}

fn index_loop(
    mut conn: Connection,
    shared: &Shared,
    status: &IndexStatus,
    stop: &AtomicBool,
    wake: &crossbeam_channel::Receiver<()>,
) {
    let mut failing = 0u32;
    while !stop.load(Ordering::Relaxed) {
        match catch_up(&mut conn, shared, status, stop) {
            Ok(()) => {
                if failing > 0 {
                    tracing::info!("the audit index is being updated again");
                }
                failing = 0;
                *status.last_error.lock().expect("not poisoned") = None;
            }
            Err(e) => {
                failing += 1;
                if failing.is_power_of_two() {
                    tracing::warn!(error = %e, "updating the audit index failed; the records are safe in the segments, retrying");
                }
                *status.last_error.lock().expect("not poisoned") = Some(e.to_string());
            }
        }
        let _ = wake.recv_timeout(INDEX_IDLE);
        let pause = std::time::Instant::now() + INDEX_MIN_INTERVAL;
        while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < pause {
            std::thread::sleep(Duration::from_millis(25).min(pause - std::time::Instant::now()));
        }
    }
}

/// Indexes every durable record not yet indexed.
fn catch_up(conn: &mut Connection, shared: &Shared, status: &IndexStatus, stop: &AtomicBool) -> rusqlite::Result<()> {
    // The durable end first, then the listing: a segment begun after this
    // reading is not read, so a frame being written is never taken as damage.
    let durable: Durable = *shared.durable.lock().expect("not poisoned");
    let segments = segment::list(&shared.config.dir).unwrap_or_default();
    let Some(&(oldest, _)) = segments.first() else { return Ok(()) };
    let position: Option<(u64, u64, u64)> = conn
        .query_row("SELECT segment, offset, next_id FROM position WHERE k = 0", [], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64))
        })
        .optional()?;
    let (mut seg, mut offset, mut next_id) = position.unwrap_or((oldest, 0, oldest));
    if seg < oldest {
        // Segments past the retention were deleted: so are their rows.
        conn.execute("DELETE FROM records WHERE id < ?1", [oldest as i64])?;
        (seg, offset, next_id) = (oldest, 0, oldest);
    }
    if seg > durable.segment || (seg == durable.segment && offset > durable.end) {
        // The index is ahead of the log: the newest segment was cut at start
        // (damage past its last sound frame). Forget what is past the cut.
        conn.execute("DELETE FROM records WHERE id >= ?1", [durable.next_id as i64])?;
        (seg, offset, next_id) = (durable.segment, 0, durable.segment);
    }
    status.next_id.store(next_id, Ordering::Relaxed);
    let start = seg;
    for (first, path) in segments.iter().filter(|(f, _)| *f >= start && *f <= durable.segment) {
        if *first > seg {
            (seg, offset, next_id) = (*first, 0, *first);
        }
        let end = (*first == durable.segment).then_some(durable.end);
        let mut reader = match SegmentReader::open(path, *first, offset, next_id) {
            Ok(r) => r.until(end),
            Err(ReadError::Io(e)) => return Err(io_error(e)),
            Err(e @ ReadError::Fault { .. }) => {
                damaged(status, path, &e);
                continue;
            }
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let tx = conn.transaction()?;
            let mut n = 0;
            let mut fault = None;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO records (id, practitioner, institution, service_date, claim_key, reason, segment, offset)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                while n < INDEX_BATCH {
                    let at = reader.offset;
                    match reader.next_record() {
                        Ok(Some(r)) => {
                            insert.execute(params![
                                r.id as i64,
                                r.practitioner_id,
                                r.institution_id,
                                r.service_date,
                                r.claim_key(),
                                r.reason.as_str(),
                                *first as i64,
                                at as i64,
                            ])?;
                            n += 1;
                        }
                        Ok(None) => break,
                        Err(ReadError::Io(e)) => return Err(io_error(e)),
                        Err(e @ ReadError::Fault { .. }) => {
                            fault = Some(e);
                            break;
                        }
                    }
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO position (k, segment, offset, next_id) VALUES (0, ?1, ?2, ?3)",
                params![*first as i64, reader.offset as i64, reader.next_id as i64],
            )?;
            tx.commit()?;
            status.next_id.store(reader.next_id, Ordering::Relaxed);
            if let Some(e) = fault {
                damaged(status, path, &e);
                break;
            }
            if n < INDEX_BATCH {
                break;
            }
        }
    }
    Ok(())
}

fn damaged(status: &IndexStatus, path: &Path, e: &ReadError) {
    let what = format!("{}: {e}", path.display());
    let mut list = status.damaged.lock().expect("not poisoned");
    if !list.contains(&what) {
        tracing::error!(segment = %path.display(), error = %e, "a sealed audit segment is damaged: the records before the damage are indexed, the rest of that segment is skipped; keep the file for inspection");
        list.push(what);
    }
}

fn io_error(e: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}
