//! Rules of the data directory that hold before any ledger is opened: an
//! embedded ledger that is missing or empty where its audit log or index
//! snapshots remain was lost, not new, and is refused rather than recreated
//! empty (which would answer every claim wrongly). `serve`, `demo`, `init`,
//! `append`, `check`, `file` and `snapshot write` all apply it.

use std::path::{Path, PathBuf};

/// A ledger that was there and is gone.
#[derive(Debug, thiserror::Error)]
#[error("{} is missing or empty, but there is {traces} beside it, so a ledger was there: it was lost or moved, and a new, empty one would answer every claim wrongly. Restore it from a backup; to start a new ledger on purpose, use an empty --data", path.display())]
pub struct LedgerLost {
    pub path: PathBuf,
    /// What shows a ledger existed ("the audit log and 2 index snapshot(s)").
    pub traces: String,
}

/// Refuses an embedded ledger file that is missing or empty (SQLite would
/// make a new ledger of it) where an audit log or snapshots show one existed.
pub fn refuse_lost_ledger(data: &Path) -> Result<(), LedgerLost> {
    let path = data.join(crate::ledger::LEDGER_FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
        return Ok(());
    }
    let snapshots = crate::index::snapshot::list(&data.join(crate::index::snapshot::SNAPSHOT_DIR)).unwrap_or_default();
    let mut traces = Vec::new();
    let audit_dir = data.join(crate::audit::AUDIT_DIR);
    let has_segments = crate::audit::segment::list(&audit_dir).is_ok_and(|s| !s.is_empty());
    if has_segments || data.join(crate::audit::LEGACY_AUDIT_FILE).exists() {
        traces.push("the audit log".to_owned());
    }
    if !snapshots.is_empty() {
        traces.push(format!("{} index snapshot(s)", snapshots.len()));
    }
    if traces.is_empty() {
        Ok(())
    } else {
        Err(LedgerLost { path, traces: traces.join(" and ") })
    }
}
