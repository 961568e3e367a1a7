//! An online backup of the embedded ledger: a consistent copy of the file
//! taken while the gate serves and appends (`VACUUM INTO` on a connection
//! of its own reads one snapshot; the writer goes on, WAL lets it), written
//! under a temporary name, synced, then renamed, so a file under a backup's
//! name is always whole. The copy is a ledger: copied into an empty data
//! directory as `ledger.sqlite3`, it opens as this one did at its head.
//!
//! Bounded: a backup needs room for a copy of the ledger, checked before it
//! starts ([`LedgerError::DiskFull`] otherwise: fail closed, nothing
//! written); at most [`KEEP_BACKUPS`] are kept, the oldest removed once a
//! new one is whole.

use super::{io, storage, EmbeddedLedger};
use crate::ledger::LedgerError;
use claimgate_rules::domain::Seq;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// The directory inside the data directory that backups are written to.
pub const BACKUP_DIR: &str = "backups";
/// Backups kept; the oldest beyond this is removed after each new one.
pub const KEEP_BACKUPS: usize = 3;
/// Free space a backup must leave, beyond its own size.
const BACKUP_HEADROOM_BYTES: u64 = 64 * 1024 * 1024;

/// A backup written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub path: PathBuf,
    /// The head of the copy: every event up to it, none after.
    pub seq: Seq,
    pub bytes: u64,
}

impl EmbeddedLedger {
    /// Writes a backup into `DATA/backups/`, named by the time `stamp` gives
    /// (`YYYYMMDDTHHMMSSmmmZ`, the caller's clock) and its head.
    pub fn backup(&self, stamp: &str) -> Result<Backup, LedgerError> {
        const DOING: &str = "writing a backup";
        let data = self.path.parent().map(Path::to_owned).unwrap_or_default();
        let dir = data.join(BACKUP_DIR);
        std::fs::create_dir_all(&dir).map_err(io("creating the backup directory", &dir))?;
        let size = std::fs::metadata(&self.path).map_err(io("reading the ledger's size", &self.path))?.len();
        let free = rustix::fs::statvfs(&dir).map(|s| s.f_bavail * s.f_frsize).unwrap_or(u64::MAX);
        if free < size + BACKUP_HEADROOM_BYTES {
            return Err(LedgerError::DiskFull { dir, doing: DOING });
        }
        let partial = dir.join(format!("ledger-{stamp}.partial"));
        let _ = std::fs::remove_file(&partial);
        let source = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(storage("opening the ledger for a backup"))?;
        let written = source.execute("VACUUM INTO ?1", [partial.to_string_lossy()]).map(drop);
        if let Err(e) = written {
            let _ = std::fs::remove_file(&partial);
            return Err(storage(DOING)(e));
        }
        drop(source);
        // The copy comes out in rollback-journal mode; a ledger runs in WAL mode only.
        let copy = Connection::open(&partial).map_err(storage(DOING))?;
        copy.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(())).map_err(storage(DOING))?;
        let seq: i64 = copy
            .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))
            .map_err(storage("reading a backup's head"))?;
        copy.close().map_err(|(_, e)| storage(DOING)(e))?;
        std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(io("syncing a backup", &partial))?;
        let path = dir.join(format!("ledger-{stamp}-seq{seq}.sqlite3"));
        std::fs::rename(&partial, &path).map_err(io("naming a backup", &path))?;
        std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(io("syncing the backup directory", &dir))?;
        let bytes = std::fs::metadata(&path).map_err(io("reading a backup's size", &path))?.len();
        prune(&dir)?;
        Ok(Backup { path, seq: seq as Seq, bytes })
    }
}

/// Removes the oldest backups beyond [`KEEP_BACKUPS`] (their names sort by time).
fn prune(dir: &Path) -> Result<(), LedgerError> {
    let mut backups: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io("listing the backups", dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ledger-") && n.ends_with(".sqlite3"))
        })
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(KEEP_BACKUPS);
    for old in &backups[..excess] {
        std::fs::remove_file(old).map_err(io("removing an old backup", old))?;
    }
    Ok(())
}
