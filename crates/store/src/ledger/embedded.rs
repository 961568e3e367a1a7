//! The embedded ledger: one SQLite file, `ledger.sqlite3`, under the data
//! directory. Appends are serialised by a mutex and a `BEGIN IMMEDIATE`
//! transaction; validation (R8) reads the same transaction, so what it sees is
//! exactly what was accepted before.
//!
//! Over 600 lines on purpose: what an SQLite file must be before it is used
//! as a ledger (its application id, schema, durability settings, pages) is
//! checked here, next to the connections it guards; the SQL both backends
//! share is in `sql.rs`.

mod backup;
mod bulk;

pub use backup::{Backup, BACKUP_DIR, KEEP_BACKUPS};
pub(super) use bulk::SqliteSink;
pub use bulk::BULK_ASIDE;

use super::error::NotDurable;
use super::{sql, Appended, Histories, HistoryOf, Lane, LedgerError};
use claimgate_rules::domain::{InstitutionCode, PractitionerCode, Seq, ViolationId};
use claimgate_rules::event::{Event, RecordedEvent};
use claimgate_rules::policy::Policy;
use claimgate_rules::refusal::Refusal;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The ledger's file name inside the data directory.
pub use crate::data_dir::LEDGER_FILE;
/// Most events one [`Ledger::append_batch`] takes.
pub const MAX_APPEND_BATCH: usize = 10_000;
/// The appending connection's page cache, KiB (SQLite's default is 2,000).
pub const WRITER_CACHE_KIB: i64 = 64 * 1024;
/// Most events one [`Ledger::events_since`] returns.
pub const MAX_TAIL_BATCH: usize = 10_000;

/// Marks the SQLite file as ours ("ClGt"), so a foreign database is refused.
const APPLICATION_ID: i64 = 0x436C_4774;
/// The schema this build writes and reads.
const SCHEMA_VERSION: i64 = 2;
/// How long a connection waits for a lock another holds before failing.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL,
    effective    TEXT NOT NULL,
    practitioner TEXT,
    institution  TEXT,
    violation_id TEXT,
    body         TEXT NOT NULL
) STRICT;
CREATE INDEX events_by_practitioner ON events(practitioner, kind) WHERE practitioner IS NOT NULL;
CREATE INDEX events_by_institution ON events(institution, kind) WHERE institution IS NOT NULL;
CREATE INDEX events_by_violation ON events(violation_id, kind) WHERE violation_id IS NOT NULL;
";

/// `MIGRATIONS[v - 1]` takes the schema from version `v` to `v + 1`.
/// Version 2 (RULES.md v2): `event_id` for re-sends (R7a), unique among
/// accepted events; `points` of violations and repairs, so validation reads
/// a practitioner's scoring steps without decoding bodies. The backfill
/// fills the new derived column from each row's own body, once; no event's
/// content changes. `events_scoring` covers what the scoring-step query
/// reads, so it never visits the table.
const MIGRATIONS: &[&str] = &["
ALTER TABLE events ADD COLUMN event_id TEXT;
ALTER TABLE events ADD COLUMN points INTEGER;
UPDATE events SET points = json_extract(body, '$.points') WHERE kind IN ('violation_scored', 'points_repaired');
CREATE UNIQUE INDEX events_by_event_id ON events(event_id) WHERE event_id IS NOT NULL;
CREATE INDEX events_scoring ON events(practitioner, effective, kind, points, violation_id)
    WHERE kind IN ('violation_scored', 'points_repaired');
"];

/// The append-only event ledger on an embedded SQLite file (the default backend).
pub struct EmbeddedLedger {
    /// A second, read-only connection for tailing and history reads, so the
    /// index sync never waits behind an append's synchronous commit (WAL lets
    /// readers and the writer run at once). `None` for an in-memory ledger.
    /// Declared (so dropped) before the writer: the last connection to close
    /// checkpoints the WAL into the main file and removes it, and only the
    /// writer can, so a stopped ledger is one self-contained file.
    reader: Option<Mutex<Connection>>,
    /// Read-only connections for the reads clients ask for (integrity files,
    /// `explain`), [`super::QUERY_CONNECTIONS`] of them, each opened when
    /// first needed: a slow one never holds the index sync's `reader`. Empty
    /// for an in-memory ledger.
    queries: Vec<Mutex<Option<Connection>>>,
    /// The read-only connection of [`Lane::Background`] (the change log's
    /// catch-up), opened when first needed: a low-priority thread holding it
    /// never holds the sync's `reader`.
    background: Mutex<Option<Connection>>,
    conn: Mutex<Connection>,
    policy: Policy,
    path: PathBuf,
    id: u64,
}

fn storage(doing: &'static str) -> impl FnOnce(rusqlite::Error) -> LedgerError {
    move |source| LedgerError::Storage { doing, source }
}

/// A file operation on `path` that failed while `doing` (bulk loads, backups).
fn io<'a>(doing: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LedgerError + 'a {
    move |source| LedgerError::Io { doing, path: path.to_owned(), source }
}

impl EmbeddedLedger {
    /// Opens the ledger in `data_dir`, creating the directory and an empty
    /// ledger if there is none. An existing file that is not a claimgate
    /// ledger, or one created under another policy, is refused untouched.
    pub fn open(data_dir: &Path, policy: &Policy) -> Result<EmbeddedLedger, LedgerError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| LedgerError::CreateDir { path: data_dir.to_owned(), source })?;
        let path = data_dir.join(LEDGER_FILE);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| not_a_ledger(&path, e))?;
        EmbeddedLedger::init(conn, path, policy)
    }

    /// A ledger that lives in memory only (for tests and throwaway runs).
    pub fn open_in_memory(policy: &Policy) -> Result<EmbeddedLedger, LedgerError> {
        let conn = Connection::open_in_memory().map_err(storage("opening an in-memory ledger"))?;
        EmbeddedLedger::init(conn, PathBuf::from(":memory:"), policy)
    }

    fn init(mut conn: Connection, path: PathBuf, policy: &Policy) -> Result<EmbeddedLedger, LedgerError> {
        // Reading the header is the first touch: a non-SQLite file fails here.
        let app_id: i64 =
            conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(|e| not_a_ledger(&path, e))?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| not_a_ledger(&path, e))?;
        let policy_json = serde_json::to_string(policy).expect("policy serializes");
        if app_id == 0 && tables == 0 {
            // A new, empty file: make it a ledger.
            conn.pragma_update(None, "journal_mode", "WAL").map_err(storage("enabling the write-ahead log"))?;
            let tx = conn.transaction().map_err(storage("creating the schema"))?;
            tx.execute_batch(SCHEMA).map_err(storage("creating the schema"))?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', '1'), ('policy', ?1), ('ledger_id', ?2)",
                params![policy_json, super::new_ledger_id()?.to_string()],
            )
            .map_err(storage("creating the schema"))?;
            tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(storage("creating the schema"))?;
            tx.commit().map_err(storage("creating the schema"))?;
        } else if app_id != APPLICATION_ID {
            return Err(LedgerError::NotALedger {
                path,
                detail: format!("it is an SQLite database of another application (application_id {app_id:#x})"),
            });
        }
        let meta = |conn: &Connection, key: &str| -> Result<Option<String>, LedgerError> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(storage("reading ledger metadata"))
        };
        let version: i64 = meta(&conn, "schema_version")?
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| LedgerError::NotALedger { path: path.clone(), detail: "it has no schema version".into() })?;
        if version > SCHEMA_VERSION {
            return Err(LedgerError::SchemaTooNew { path, found: version, supported: SCHEMA_VERSION });
        }
        if version < 1 {
            return Err(LedgerError::NotALedger { path, detail: format!("its schema version is {version}") });
        }
        if version < SCHEMA_VERSION {
            let tx = conn.transaction().map_err(storage("migrating the ledger schema"))?;
            for migration in &MIGRATIONS[version as usize - 1..SCHEMA_VERSION as usize - 1] {
                tx.execute_batch(migration).map_err(storage("migrating the ledger schema"))?;
            }
            tx.execute("UPDATE meta SET value = ?1 WHERE key = 'schema_version'", [SCHEMA_VERSION.to_string()])
                .map_err(storage("migrating the ledger schema"))?;
            tx.commit().map_err(storage("migrating the ledger schema"))?;
        }
        let stored_policy = meta(&conn, "policy")?.unwrap_or_default();
        if serde_json::from_str::<Policy>(&stored_policy).ok().as_ref() != Some(policy) {
            return Err(LedgerError::PolicyMismatch { stored: stored_policy });
        }
        let id = meta(&conn, "ledger_id")?.and_then(|v| v.parse().ok()).unwrap_or(0);
        // R5: an acknowledged event survives a crash or power loss.
        conn.pragma_update(None, "synchronous", "FULL").map_err(storage("setting synchronous commits"))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(storage("setting the busy timeout"))?;
        // Validation reads and index inserts touch pages all over a large
        // ledger (event_ids are content hashes): keep more of them in memory.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB).map_err(storage("sizing the page cache"))?;
        check_durability(&conn, &path)?;
        let in_memory = path.as_os_str() == ":memory:";
        let reader = if in_memory { None } else { Some(Mutex::new(open_reader(&path)?)) };
        let queries =
            if in_memory { Vec::new() } else { (0..super::QUERY_CONNECTIONS).map(|_| Mutex::new(None)).collect() };
        Ok(EmbeddedLedger {
            conn: Mutex::new(conn),
            reader,
            queries,
            background: Mutex::new(None),
            policy: policy.clone(),
            path,
            id,
        })
    }

    /// A number chosen when the ledger was created, so that index snapshots
    /// of one ledger are never loaded over another.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Where the ledger lives (`:memory:` for an in-memory one).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy the ledger validates with.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The connection for reads that need not see an open append.
    fn read(&self) -> std::sync::MutexGuard<'_, Connection> {
        match &self.reader {
            Some(r) => r.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
            None => self.lock(),
        }
    }

    /// Runs `op` on `lane`'s connection: the sync's `reader`, or the
    /// background one (opened on first use). An in-memory ledger has only
    /// the writer's.
    fn with_lane<T>(
        &self,
        lane: Lane,
        op: impl FnOnce(&Connection) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        match lane {
            Lane::Sync => op(&self.read()),
            Lane::Background if self.reader.is_none() => op(&self.lock()),
            Lane::Background => self.in_slot(&self.background, op),
        }
    }

    /// Runs `op` on the read-only connection in `slot`, opening it first if
    /// there is none yet.
    fn in_slot<T>(
        &self,
        slot: &Mutex<Option<Connection>>,
        op: impl FnOnce(&Connection) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let mut guard = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let conn = match &mut *guard {
            Some(conn) => conn,
            empty => empty.insert(open_reader(&self.path)?),
        };
        op(conn)
    }

    /// The page check of this ledger's file, to run on a thread of its own
    /// without holding the ledger; `None` for an in-memory ledger.
    pub fn page_check(&self) -> Option<PageCheck> {
        (self.path.as_os_str() != ":memory:").then(|| PageCheck { path: self.path.clone() })
    }

    /// Runs `op` on a read-only connection opened for it (the writer's, for
    /// an in-memory ledger), so a long read never holds the shared ones.
    fn with_own_reader<T>(&self, op: impl FnOnce(&Connection) -> Result<T, LedgerError>) -> Result<T, LedgerError> {
        if self.path.as_os_str() == ":memory:" {
            return op(&self.lock());
        }
        op(&open_reader(&self.path)?)
    }

    /// Runs `op` on a query connection: a free one if there is one (opened
    /// on first use), else the first, waiting for it. The server never runs
    /// more than [`super::QUERY_CONNECTIONS`] at once, so it never waits here.
    fn with_query<T>(&self, op: impl FnOnce(&Connection) -> Result<T, LedgerError>) -> Result<T, LedgerError> {
        if self.queries.is_empty() {
            return op(&self.lock());
        }
        let free = self.queries.iter().position(|slot| slot.try_lock().is_ok() || slot.is_poisoned()).unwrap_or(0);
        self.in_slot(&self.queries[free], op)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-written event:
        // the open transaction rolls back when dropped.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Validates and appends each event in order, in one durable transaction;
    /// each is judged against everything accepted before it, earlier events of
    /// the batch included. Returns one outcome per event.
    pub fn append_batch(&self, events: &[Event]) -> Result<Vec<Result<Appended, Refusal>>, LedgerError> {
        if events.len() > MAX_APPEND_BATCH {
            return Err(LedgerError::BatchTooLarge { len: events.len(), max: MAX_APPEND_BATCH });
        }
        self.append_in_transaction(events).map_err(|e| self.name_the_fault(e))
    }

    fn append_in_transaction(&self, events: &[Event]) -> Result<Vec<Result<Appended, Refusal>>, LedgerError> {
        let mut conn = self.lock();
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage("starting an append"))?;
        let start = head_of(&tx)?;
        let (outcomes, head) = sql::append_all(&mut SqliteTx(&tx), start, events, &self.policy, None)?;
        if head == start {
            // Nothing stored: end without a commit to sync (as on PostgreSQL).
            tx.rollback().map_err(storage("ending an append"))?;
        } else {
            tx.commit().map_err(storage("committing an append"))?;
        }
        Ok(outcomes)
    }

    /// A failed write named by its cause where SQLite's code, or a probe write
    /// beside the ledger, shows it: a full disk or a read-only data directory
    /// (the operator's fix differs). Anything else stays a storage error.
    fn name_the_fault(&self, e: LedgerError) -> LedgerError {
        let LedgerError::Storage { doing, source } = e else { return e };
        // An in-memory ledger has no directory to name or probe.
        let (Some(dir), Some(_)) = (self.path.parent(), &self.reader) else {
            return LedgerError::Storage { doing, source };
        };
        let dir = dir.to_owned();
        match source.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => LedgerError::DiskFull { dir, doing },
            Some(ErrorCode::ReadOnly) => LedgerError::ReadOnly { dir, doing, detail: source.to_string() },
            // An I/O error (SQLite says only "disk I/O error"): ask the file system.
            Some(ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => match probe_write(&dir) {
                Err(p)
                    if p.kind() == std::io::ErrorKind::StorageFull || p.kind() == std::io::ErrorKind::QuotaExceeded =>
                {
                    LedgerError::DiskFull { dir, doing }
                }
                Err(p)
                    if p.kind() == std::io::ErrorKind::ReadOnlyFilesystem
                        || p.kind() == std::io::ErrorKind::PermissionDenied =>
                {
                    LedgerError::ReadOnly { dir, doing, detail: p.to_string() }
                }
                _ => LedgerError::Storage { doing, source },
            },
            _ => LedgerError::Storage { doing, source },
        }
    }

    /// The highest `seq` accepted (0 for an empty ledger).
    pub fn head(&self) -> Result<Seq, LedgerError> {
        head_of(&self.read())
    }

    /// Accepted events with `seq > after`, ascending, at most `limit`
    /// (capped at [`MAX_TAIL_BATCH`]), on `lane`'s connection.
    pub fn events_since(&self, lane: Lane, after: Seq, limit: usize) -> Result<Vec<RecordedEvent>, LedgerError> {
        self.with_lane(lane, |conn| {
            let mut stmt = conn.prepare_cached(sql::EVENTS_SINCE).map_err(storage("reading events"))?;
            let rows = stmt
                .query_map(params![after as i64, limit.min(MAX_TAIL_BATCH) as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(storage("reading events"))?;
            decode_rows(rows, &self.policy)
        })
    }

    /// Every accepted event about a practitioner, revocations of their
    /// violations included, ascending by `seq`.
    pub fn practitioner_history(&self, code: PractitionerCode) -> Result<Vec<RecordedEvent>, LedgerError> {
        history(&self.read(), HistoryOf::Practitioner(code), &self.policy)
    }

    /// Every accepted institution event (designation, suspension,
    /// termination, rating) about an institution, ascending by `seq`.
    pub fn institution_history(&self, code: InstitutionCode) -> Result<Vec<RecordedEvent>, LedgerError> {
        history(&self.read(), HistoryOf::Institution(code), &self.policy)
    }

    /// Many histories as they stood at `upto`, on `lane`'s connection (a
    /// statement each: SQLite is no round trip away).
    pub fn histories_upto(
        &self,
        lane: Lane,
        practitioners: &[PractitionerCode],
        institutions: &[InstitutionCode],
        upto: Seq,
    ) -> Result<Histories, LedgerError> {
        let upto = |mut h: Vec<RecordedEvent>| {
            h.retain(|r| r.seq <= upto);
            h
        };
        self.with_lane(lane, |conn| {
            Ok(Histories {
                practitioners: practitioners
                    .iter()
                    .map(|&code| history(conn, HistoryOf::Practitioner(code), &self.policy).map(upto))
                    .collect::<Result<_, _>>()?,
                institutions: institutions
                    .iter()
                    .map(|&code| history(conn, HistoryOf::Institution(code), &self.policy).map(upto))
                    .collect::<Result<_, _>>()?,
            })
        })
    }

    /// [`Self::practitioner_history`] on a query connection (a client's read).
    pub fn query_practitioner_history(&self, code: PractitionerCode) -> Result<Vec<RecordedEvent>, LedgerError> {
        self.with_query(|conn| history(conn, HistoryOf::Practitioner(code), &self.policy))
    }

    /// [`Self::institution_history`] on a query connection (a client's read).
    pub fn query_institution_history(&self, code: InstitutionCode) -> Result<Vec<RecordedEvent>, LedgerError> {
        self.with_query(|conn| history(conn, HistoryOf::Institution(code), &self.policy))
    }

    /// The practitioner a violation belongs to, if it was ever scored (read
    /// on `lane`'s connection).
    pub fn violation_owner(&self, lane: Lane, id: &ViolationId) -> Result<Option<PractitionerCode>, LedgerError> {
        self.with_lane(lane, |conn| Ok(sql::find_violation(&mut SqliteTx(conn), id)?.map(|(_, v)| v.practitioner)))
    }

    /// Streams every entity's history at one consistent `seq` (returned): each
    /// practitioner's events (revocations of their violations included), then
    /// each institution's own events, grouped by code. A file ledger is read
    /// on a separate read-only connection, so appends go on meanwhile (WAL).
    pub fn scan_histories(
        &self,
        mut on_practitioner: impl FnMut(PractitionerCode, &[RecordedEvent]),
        mut on_institution: impl FnMut(InstitutionCode, &[RecordedEvent]),
    ) -> Result<Seq, LedgerError> {
        self.with_own_reader(|conn| {
            // One read transaction: the head and both scans see the same snapshot.
            conn.execute_batch("BEGIN").map_err(storage("starting a scan"))?;
            let head = head_of(conn)?;
            const DOING: &str = "scanning the ledger";
            let scan = |sql: &str, on: &mut sql::GroupSink| {
                let mut stmt = conn.prepare(sql).map_err(storage(DOING))?;
                let mut rows = stmt.query([head as i64]).map_err(storage(DOING))?;
                let mut groups = sql::Groups::new(&self.policy);
                while let Some(row) = rows.next().map_err(storage(DOING))? {
                    let (key, seq, body): (String, i64, String) = (
                        row.get(0).map_err(storage(DOING))?,
                        row.get(1).map_err(storage(DOING))?,
                        row.get(2).map_err(storage(DOING))?,
                    );
                    groups.row(key, seq, &body, on)?;
                }
                groups.finish(on)
            };
            sql::scan_histories(scan, &mut on_practitioner, &mut on_institution)?;
            conn.execute_batch("COMMIT").map_err(storage("ending a scan"))?;
            Ok(head)
        })
    }
}

/// A check of every page of a ledger file (SQLite's `PRAGMA quick_check`): a
/// damaged page anywhere is found even where no read would reach it soon.
/// O(file size), on a read connection of its own, so appends and the index
/// sync go on meanwhile.
#[derive(Debug, Clone)]
pub struct PageCheck {
    path: PathBuf,
}

impl PageCheck {
    /// Runs the check on a read-only connection of its own.
    pub fn run(&self) -> Result<(), LedgerError> {
        quick_check(&open_reader(&self.path)?, &self.path)
    }
}

/// `PRAGMA synchronous` values under which a commit returns only after the
/// WAL is fsynced: FULL (2) and EXTRA (3). NORMAL (1) syncs at checkpoints
/// only, so a power loss can take the last commits; OFF (0) never syncs.
const DURABLE_SYNCHRONOUS: RangeInclusive<i64> = 2..=3;
/// The journal mode the ledger runs in (set when the file is created, kept
/// in its header): the write-ahead log that lets readers and the writer run
/// at once and that `synchronous=FULL` fsyncs at every commit.
const JOURNAL_MODE: &str = "wal";

/// Reads back, on the writing connection `conn`, the settings an
/// acknowledged event's survival rests on, and refuses (`NotDurable`, naming
/// the setting, its value and the fix) unless they are what [`EmbeddedLedger`]
/// set: `synchronous` FULL or EXTRA, and the write-ahead log. An in-memory
/// ledger has no journal to check (nothing of it survives a stop anyway).
fn check_durability(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    let store = path.display().to_string();
    let synchronous: i64 =
        conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).map_err(storage("reading back synchronous"))?;
    if !DURABLE_SYNCHRONOUS.contains(&synchronous) {
        let name = match synchronous {
            0 => "OFF",
            1 => "NORMAL",
            _ => "unknown",
        };
        return Err(NotDurable {
            store,
            setting: "PRAGMA synchronous",
            value: format!("{synchronous} ({name})"),
            fix: "claimgate sets it to FULL on the connection it appends on; this build or its SQLite library \
                  does not honour that (a SQLITE_DEFAULT_SYNCHRONOUS or SQLITE_EXTRA_INIT override?): \
                  rebuild claimgate with the bundled SQLite (`cargo build --release`)"
                .into(),
        }
        .into());
    }
    if path.as_os_str() == ":memory:" {
        return Ok(());
    }
    let mode: String =
        conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).map_err(storage("reading back the journal mode"))?;
    if !mode.eq_ignore_ascii_case(JOURNAL_MODE) {
        return Err(NotDurable {
            fix: format!(
                "claimgate creates its ledger in write-ahead-log mode and runs only in it; this file was switched \
                 to `{mode}` (or its file system cannot hold a WAL's shared-memory file). With claimgate stopped, \
                 run `sqlite3 {store} 'PRAGMA journal_mode=WAL'` on a local file system, then start it again"
            ),
            store,
            setting: "PRAGMA journal_mode",
            value: mode,
        }
        .into());
    }
    Ok(())
}

/// A read-only connection to the ledger file at `path` (WAL: it reads while
/// the writer writes).
fn open_reader(path: &Path) -> Result<Connection, LedgerError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(storage("opening a read connection"))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(storage("setting the busy timeout"))?;
    Ok(conn)
}

/// SQLite's `PRAGMA quick_check` on `conn`: `Damaged` naming what it found.
fn quick_check(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    let damaged = |detail: String| LedgerError::Damaged { path: path.to_owned(), detail };
    let mut statement = conn.prepare("PRAGMA quick_check").map_err(|e| damaged(e.to_string()))?;
    let findings: Vec<String> = statement
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| damaged(e.to_string()))?;
    match findings.as_slice() {
        [ok] if ok == "ok" => Ok(()),
        _ => Err(damaged(findings.into_iter().take(3).collect::<Vec<_>>().join("; "))),
    }
}

/// Bytes of the probe [`EmbeddedLedger::name_the_fault`] writes: one page, so
/// a full file system fails it as it failed the ledger's write.
const PROBE_BYTES: usize = 4096;

/// Writes, syncs and removes a small file in `dir`: the error, if any, is the
/// file system's own account of why the ledger's write failed.
fn probe_write(dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(format!(".write-probe-{}", std::process::id()));
    let result = std::fs::File::create(&path).and_then(|mut f| {
        f.write_all(&[0u8; PROBE_BYTES])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&path);
    result
}

/// Why a file could not be opened as a ledger: damaged (SQLite's own file, but
/// malformed), not reachable (the directory or file system), or not SQLite.
fn not_a_ledger(path: &Path, e: rusqlite::Error) -> LedgerError {
    let (path, detail) = (path.to_owned(), e.to_string());
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt) => LedgerError::Damaged { path, detail },
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            // SQLite does not say why: the file system does, to a test write.
            let beside = path.parent().map(|dir| (dir, probe_write(dir)));
            let detail = match beside {
                Some((dir, Err(probe))) => format!("{detail}; a test write in {} fails: {probe}", dir.display()),
                _ => detail,
            };
            LedgerError::CannotOpen { path, detail }
        }
        _ => LedgerError::NotALedger { path, detail },
    }
}

fn head_of(conn: &Connection) -> Result<Seq, LedgerError> {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get::<_, i64>(0))
        .map(|s| s as Seq)
        .map_err(storage("reading the ledger head"))
}

fn decode_rows(
    rows: impl Iterator<Item = rusqlite::Result<(i64, String)>>,
    policy: &Policy,
) -> Result<Vec<RecordedEvent>, LedgerError> {
    rows.map(|row| {
        let (seq, body) = row.map_err(storage("reading events"))?;
        super::decode_stored(seq, &body, policy)
    })
    .collect()
}

fn history(conn: &Connection, of: HistoryOf, policy: &Policy) -> Result<Vec<RecordedEvent>, LedgerError> {
    let sql = match of {
        HistoryOf::Practitioner(_) => sql::PRACTITIONER_HISTORY,
        HistoryOf::Institution(_) => sql::INSTITUTION_HISTORY,
    };
    let mut stmt = conn.prepare_cached(sql).map_err(storage(of.doing()))?;
    let rows = stmt.query_map([of.key()], |r| Ok((r.get(0)?, r.get(1)?))).map_err(storage(of.doing()))?;
    decode_rows(rows, policy)
}

/// A practitioner's standing violations and repairs dated in a span of
/// years (R11), read from `events_scoring` alone (it covers every column
/// named here); the kind list matches the index's so SQLite can use it.
/// (PostgreSQL's text differs only in its date collation.)
const SCORING_STEPS: &str = "SELECT e.kind, e.effective, e.seq, e.points FROM events e
     WHERE e.practitioner = $1 AND e.kind IN ('violation_scored', 'points_repaired')
       AND e.effective >= $2 AND e.effective <= $3
       AND NOT (e.kind = 'violation_scored' AND EXISTS (SELECT 1 FROM events r
                WHERE r.violation_id = e.violation_id AND r.kind = 'violation_revoked'))
     ORDER BY e.effective, e.seq";

/// The shared SQL core's [`sql::Tx`] on an SQLite connection (the append
/// transaction, or the reader for a lookup).
struct SqliteTx<'a>(&'a Connection);

impl sql::Tx for SqliteTx<'_> {
    fn first(
        &mut self,
        sql: &'static str,
        key: &str,
        doing: &'static str,
    ) -> Result<Option<(i64, String)>, LedgerError> {
        self.0
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.query_row([key], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(storage(doing))
    }

    fn exists(&mut self, sql: &'static str, key: &str, doing: &'static str) -> Result<bool, LedgerError> {
        self.0.prepare_cached(sql).and_then(|mut stmt| stmt.exists([key])).map_err(storage(doing))
    }

    fn scoring_rows(&mut self, practitioner: &str, first: &str, last: &str) -> Result<Vec<sql::StepRow>, LedgerError> {
        let doing = sql::READING_SCORING_STEPS;
        let mut stmt = self.0.prepare_cached(SCORING_STEPS).map_err(storage(doing))?;
        let rows = stmt
            .query_map(params![practitioner, first, last], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(storage(doing))?;
        rows.collect::<rusqlite::Result<_>>().map_err(storage(doing))
    }

    fn insert(&mut self, c: &sql::Columns<'_>) -> Result<(), LedgerError> {
        self.0
            .prepare_cached(sql::INSERT)
            .and_then(|mut stmt| stmt.execute(row_params(c)))
            .map_err(storage(sql::APPENDING))?;
        Ok(())
    }
}

/// An event's row as [`sql::INSERT`]'s parameters.
fn row_params<'a>(c: &'a sql::Columns<'_>) -> [&'a dyn rusqlite::ToSql; 9] {
    [&c.seq, &c.kind, &c.effective, &c.practitioner, &c.institution, &c.violation_id, &c.body, &c.event_id, &c.points]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger_file() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        drop(EmbeddedLedger::open(dir.path(), &Policy::default()).unwrap());
        let path = dir.path().join(LEDGER_FILE);
        (dir, path)
    }

    #[test]
    fn the_writing_connection_of_an_opened_ledger_reads_back_full_and_wal() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = EmbeddedLedger::open(dir.path(), &Policy::default()).unwrap();
        let conn = ledger.lock();
        assert_eq!(conn.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0)).unwrap(), 2);
        assert_eq!(conn.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0)).unwrap(), "wal");
        check_durability(&conn, ledger.path()).unwrap();
    }

    #[test]
    fn a_writing_connection_with_synchronous_off_or_normal_is_refused_by_name() {
        let (_dir, path) = ledger_file();
        for (value, shown) in [("OFF", "0 (OFF)"), ("NORMAL", "1 (NORMAL)")] {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "synchronous", value).unwrap();
            let err = check_durability(&conn, &path).unwrap_err();
            assert!(matches!(&err, LedgerError::NotDurable(r) if r.setting == "PRAGMA synchronous"), "{err:?}");
            let message = err.to_string();
            assert!(message.contains(&format!("PRAGMA synchronous is `{shown}`")), "{message}");
            assert!(message.contains(&path.display().to_string()) && message.contains("rebuild"), "{message}");
        }
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "synchronous", "EXTRA").unwrap();
        check_durability(&conn, &path).unwrap();
    }

    #[test]
    fn a_ledger_file_switched_out_of_wal_is_refused_at_open_with_the_fix() {
        let (dir, path) = ledger_file();
        let conn = Connection::open(&path).unwrap();
        let mode: String = conn.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "delete");
        drop(conn);
        let err = EmbeddedLedger::open(dir.path(), &Policy::default()).err().expect("refused");
        assert!(matches!(&err, LedgerError::NotDurable(r) if r.setting == "PRAGMA journal_mode"), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("PRAGMA journal_mode is `delete`"), "{message}");
        assert!(message.contains("PRAGMA journal_mode=WAL"), "{message}");
    }

    /// The change log's catch-up reads on [`Lane::Background`] at a low
    /// priority; while it holds that connection the sync's is free, so the
    /// sync (and `min_seq`) never waits behind it (the hostile test's
    /// `stale_index` under 32 heavy readers came from one shared connection).
    #[test]
    fn a_read_in_progress_on_the_background_lane_leaves_the_sync_lane_free() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = EmbeddedLedger::open(dir.path(), &Policy::default()).unwrap();
        ledger
            .with_lane(Lane::Background, |_| {
                let sync = ledger.reader.as_ref().expect("a file ledger has a sync reader");
                assert!(sync.try_lock().is_ok(), "the background read holds the sync lane");
                assert_eq!(ledger.events_since(Lane::Sync, 0, 10)?, []);
                Ok(())
            })
            .unwrap();
        ledger
            .with_lane(Lane::Sync, |_| {
                assert!(ledger.background.try_lock().is_ok(), "the sync read holds the background lane");
                Ok(())
            })
            .unwrap();
    }
}
