//! The decision log (R19): every reject and every emergency exemption the
//! gate answers, recorded before it is answered.
//!
//! - [`segment`]: the files, append-only checksummed frames, torn-tail repair.
//! - [`log`]: the writer thread, group commit (one fsync per group of
//!   lines), the queue bound, the free-space reserve, rotation, retention.
//! - [`index`]: a SQLite index derived from the segments, and paged queries.
//! - [`query`]: the filters and cursor shared by the API and the export.
//! - [`export`]: `claimgate audit export`, straight from the segments.
//!
//! The segments are the record; the index can always be rebuilt from them.
//! The log lives in its own directory (`--audit-dir`, default
//! `DATA/audit`) so it can sit on a disk of its own.

pub mod export;
pub mod index;
pub mod log;
pub mod query;
pub mod record;
pub mod segment;

pub use index::{Page, QueryError};
pub use log::{AuditConfig, Ticket, Unrecorded};
pub use query::AuditQuery;
pub use record::AuditRecord;

use claimgate_rules::{Reason, Verdict};
use std::path::Path;
use std::sync::Arc;

/// The audit directory's name inside the data directory, and the legacy
/// log's file: the data directory's layout names them.
pub use claimgate_store::data_dir::{AUDIT_DIR, LEGACY_AUDIT_FILE};

/// The writer and the index, opened together.
pub struct AuditLog {
    pub writer: log::Writer,
    pub index: index::AuditIndex,
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the audit log in {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
    #[error("cannot open the audit index in {dir}: {source}")]
    Index { dir: String, source: rusqlite::Error },
    #[error("cannot import the older audit log {file}: {source}; it is left as it was")]
    Import { file: String, source: rusqlite::Error },
}

impl AuditLog {
    /// Opens the log (importing a legacy `audit.sqlite3` from `data` first,
    /// if there is one) and starts its writer and indexer.
    pub fn open(data: &Path, config: AuditConfig) -> Result<AuditLog, OpenError> {
        let dir = config.dir.display().to_string();
        let io = |source| OpenError::Io { dir: dir.clone(), source };
        let legacy = data.join(LEGACY_AUDIT_FILE);
        let legacy_records = if legacy.exists() {
            Some(
                read_legacy(&legacy)
                    .map_err(|source| OpenError::Import { file: legacy.display().to_string(), source })?,
            )
        } else {
            None
        };
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let writer = log::Writer::open(config, wake_tx).map_err(io)?;
        if let Some(records) = legacy_records {
            let n = records.len();
            for chunk in records.chunks(log::MAX_GROUP_RECORDS) {
                writer.write_now(chunk.to_vec()).map_err(|cause| {
                    io(std::io::Error::other(format!("importing the older log: {}", cause.cause())))
                })?;
            }
            let done = legacy.with_extension("sqlite3.imported");
            std::fs::rename(&legacy, &done).map_err(io)?;
            let _ = segment::sync_dir(data);
            tracing::info!(records = n, from = %legacy.display(), kept_as = %done.display(), "older audit log imported into the segments");
        }
        let index = index::AuditIndex::start(Arc::clone(&writer.shared), wake_rx)
            .map_err(|source| OpenError::Index { dir: dir.clone(), source })?;
        Ok(AuditLog { writer, index })
    }

    /// Stops taking records, writes what is queued, stops the indexer.
    pub fn close(&self) {
        self.writer.close();
        self.index.stop();
    }
}

/// The rows of a legacy `audit.sqlite3`, oldest first.
fn read_legacy(path: &Path) -> rusqlite::Result<Vec<AuditRecord>> {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare(
        "SELECT at_ms, seq, claim_id, practitioner, institution, service_date, emergency, verdict, reason, waived
         FROM audit ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        let waived: String = r.get(9)?;
        // A name this build does not know is a damaged row, never a guess.
        let bad = |column: usize, what: &str| {
            rusqlite::Error::FromSqlConversionFailure(
                column,
                rusqlite::types::Type::Text,
                format!("not a {what}").into(),
            )
        };
        let reason = |text: &str, column| {
            Reason::parse(text).filter(|r| *r != Reason::Ok).ok_or_else(|| bad(column, "recorded reason"))
        };
        let verdict: String = r.get(7)?;
        let reason_text: String = r.get(8)?;
        Ok(AuditRecord {
            id: 0,
            at_ms: r.get::<_, i64>(0)? as u64,
            seq: r.get::<_, i64>(1)? as u64,
            claim_id: r.get::<_, Option<String>>(2)?.map(serde_json::Value::String),
            practitioner_id: r.get(3)?,
            institution_id: r.get(4)?,
            service_date: r.get(5)?,
            emergency: r.get::<_, i64>(6)? != 0,
            verdict: Verdict::parse(&verdict).ok_or_else(|| bad(7, "verdict"))?,
            reason: reason(&reason_text, 8)?,
            waived: waived.split(',').filter(|s| !s.is_empty()).map(|w| reason(w, 9)).collect::<Result<_, _>>()?,
            refs: Default::default(),
        })
    })?;
    rows.collect()
}
