//! The data directory: its layout (the one place that names its files) and
//! the rule that holds before any ledger is opened. An embedded ledger that is
//! missing or empty where its audit log or index snapshots remain was lost,
//! not new, and is refused rather than recreated empty (which would answer
//! every claim wrongly). `serve`, `demo`, `init`, `append`, `check`, `file`
//! and `snapshot write` all apply it.
//!
//! The decision log (`claimgate-audit`) and the index snapshots
//! (`claimgate-index`) take their names from here, so this rule sees exactly
//! the files they write without depending on either.

use std::path::{Path, PathBuf};

/// The embedded ledger's file inside the data directory.
pub const LEDGER_FILE: &str = "ledger.sqlite3";
/// The audit directory's name inside the data directory, by default.
pub const AUDIT_DIR: &str = "audit";
/// The decision log of versions before segments (one SQLite file in the
/// data directory); imported into the segments once, then renamed
/// `audit.sqlite3.imported`.
pub const LEGACY_AUDIT_FILE: &str = "audit.sqlite3";
/// The extension of a decision-log segment, `<first id, 20 digits>.audit`.
pub const SEGMENT_EXTENSION: &str = "audit";
/// The standing-change log (derived from the ledger, rebuilt when lost or
/// when it belongs to another ledger): `DATA/changes.sqlite3`.
pub const CHANGES_FILE: &str = "changes.sqlite3";
/// Index snapshots live in `DATA/snapshots`.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// The file name of the snapshot of the index at `seq`.
pub fn snapshot_name(seq: u64) -> String {
    format!("index-{seq:020}.snap")
}

/// Whether `name` is a snapshot's file name (as [`snapshot_name`] makes them).
pub fn is_snapshot_name(name: &str) -> bool {
    name.starts_with("index-") && name.ends_with(".snap")
}

/// The first record id of the segment at `path`, if it is named as one.
pub fn segment_first_id(path: &Path) -> Option<u64> {
    if path.extension().and_then(|e| e.to_str()) != Some(SEGMENT_EXTENSION) {
        return None;
    }
    path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok())
}

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
    let path = data.join(LEDGER_FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
        return Ok(());
    }
    let names = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default()
    };
    let snapshots = names(&data.join(SNAPSHOT_DIR))
        .iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_snapshot_name))
        .count();
    let has_segments = names(&data.join(AUDIT_DIR)).iter().any(|p| segment_first_id(p).is_some());
    let mut traces = Vec::new();
    if has_segments || data.join(LEGACY_AUDIT_FILE).exists() {
        traces.push("the audit log".to_owned());
    }
    if snapshots > 0 {
        traces.push(format!("{snapshots} index snapshot(s)"));
    }
    if traces.is_empty() {
        Ok(())
    } else {
        Err(LedgerLost { path, traces: traces.join(" and ") })
    }
}
