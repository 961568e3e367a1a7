//! Errors at the ledger boundary.

use claimgate_rules::domain::Seq;
use claimgate_rules::refusal::Refusal;
use std::path::PathBuf;

/// The store cannot be used: nothing about the event's validity.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a claimgate ledger ({detail}); refusing to open it. Point --data at the directory claimgate created, or at an empty one for a new ledger")]
    NotALedger { path: PathBuf, detail: String },
    #[error("{path} is damaged ({detail}); refusing to use it or to create a new ledger over it. Keep the file (it is the authoritative record) and restore the data directory from a backup; `sqlite3 {path} 'PRAGMA integrity_check'` shows the damage")]
    Damaged { path: PathBuf, detail: String },
    #[error("cannot open the ledger {path}: {detail}; check that the data directory exists, is writable by this user, and is on a mounted, writable file system")]
    CannotOpen { path: PathBuf, detail: String },
    #[error(
        "{path} has ledger schema version {found}, newer than this build supports ({supported}); upgrade claimgate"
    )]
    SchemaTooNew { path: PathBuf, found: i64, supported: i64 },
    #[error("the ledger was created with a different policy than the one given; derived state would change retroactively. Stored policy: {stored}")]
    PolicyMismatch { stored: String },
    #[error("ledger event at seq {seq} cannot be read back: {message}; the ledger file is damaged")]
    Corrupt { seq: Seq, message: String },
    #[error("ledger storage failed while {doing}: {source}")]
    Storage { doing: &'static str, source: rusqlite::Error },
    #[error("the file system holding the ledger ({}) is full (while {doing}). Free space on it or grow it; appends resume by themselves, nothing acknowledged is lost", dir.display())]
    DiskFull { dir: std::path::PathBuf, doing: &'static str },
    #[error("the ledger's data directory {} is read-only (while {doing}: {detail}). Make it writable again (if the kernel remounted its file system read-only after an I/O error: stop claimgate, repair it with fsck, remount it read-write), then restart claimgate; nothing acknowledged is lost", dir.display())]
    ReadOnly { dir: std::path::PathBuf, doing: &'static str, detail: String },
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL ledger failed while {doing}: {}", postgres_detail(source))]
    Postgres { doing: &'static str, source: postgres::Error },
    #[cfg(not(feature = "postgres"))]
    #[error("this claimgate was built without PostgreSQL (the `postgres` feature), so --store cannot be used: build it with default features, or drop --store to use the embedded ledger in --data")]
    NoPostgres,
    #[error("cannot set up TLS to PostgreSQL: {detail}")]
    Tls { detail: String },
    /// A setting an acknowledged event's survival rests on (R5) reads back
    /// as one that would lose it on a crash or power loss.
    #[error("{0}")]
    NotDurable(Box<NotDurable>),
    #[error("cannot read the system's random source for a new ledger's id: {detail}; nothing was created")]
    NoRandomness { detail: String },
    #[error("{} failed while {doing}: {source}", path.display())]
    Io { doing: &'static str, path: PathBuf, source: std::io::Error },
    #[error("a batch of {len} events is more than the {max} one append takes")]
    BatchTooLarge { len: usize, max: usize },
}

impl LedgerError {
    /// The cause in one word, for APIs and `/readyz`: `disk_full`, `read_only`
    /// (either backend), `corrupt`, or `storage` for any other failure.
    pub fn cause(&self) -> &'static str {
        match self {
            LedgerError::DiskFull { .. } => "disk_full",
            LedgerError::ReadOnly { .. } => "read_only",
            LedgerError::Corrupt { .. } | LedgerError::NotALedger { .. } | LedgerError::Damaged { .. } => "corrupt",
            LedgerError::Storage { source, .. } => match source.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => "corrupt",
                Some(rusqlite::ErrorCode::DiskFull) => "disk_full",
                Some(rusqlite::ErrorCode::ReadOnly) => "read_only",
                _ => "storage",
            },
            #[cfg(feature = "postgres")]
            LedgerError::Postgres { source, .. } => match source.code() {
                Some(c) if *c == ::postgres::error::SqlState::DISK_FULL => "disk_full",
                Some(c) if *c == ::postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION => "read_only",
                _ => "storage",
            },
            _ => "storage",
        }
    }
}

/// The durability setting a ledger was refused for (see [`LedgerError::NotDurable`]).
#[derive(Debug, thiserror::Error)]
#[error("refusing to use the ledger {store}: {setting} is `{value}`, so an acknowledged event could be lost on a crash or power loss (R5). {fix}")]
pub struct NotDurable {
    /// The ledger: its file, or its PostgreSQL URL (no password) and schema.
    pub store: String,
    /// The setting as it is read back (`PRAGMA synchronous`, `fsync`, ...).
    pub setting: &'static str,
    /// Its value.
    pub value: String,
    /// What to do.
    pub fix: String,
}

impl From<NotDurable> for LedgerError {
    fn from(refusal: NotDurable) -> LedgerError {
        LedgerError::NotDurable(Box::new(refusal))
    }
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The event is invalid (R4, R8); nothing was stored.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// The store failed; nothing was acknowledged.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The useful part of a PostgreSQL error: the server's message and code, or
/// the underlying I/O cause ("db error" alone tells the operator nothing).
#[cfg(feature = "postgres")]
fn postgres_detail(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({}: {})", db.message(), db.severity(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}
