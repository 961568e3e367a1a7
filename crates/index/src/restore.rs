//! Start-up: the newest valid snapshot, else a full build from the ledger.
//! The caller then tails the ledger from the restored version's `seq`.

use super::snapshot::{self, Owner, SnapshotError, SNAPSHOT_DIR};
use super::{build, IndexVersion};
use claimgate_store::ledger::{Ledger, LedgerError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What start-up found.
pub struct Restored {
    pub version: IndexVersion,
    /// The snapshot the version came from, or `None` for a ledger build.
    pub snapshot: Option<PathBuf>,
    /// Snapshots that were tried and refused, newest first, with why.
    pub refused: Vec<(PathBuf, SnapshotError)>,
}

/// Restores the index for `ledger` from `data_dir/snapshots`, falling back to
/// older snapshots and finally to building from the ledger.
pub fn restore(data_dir: &Path, ledger: &Ledger) -> Result<Restored, LedgerError> {
    let owner = Owner::new(ledger.id(), ledger.policy());
    let head = ledger.head()?;
    let mut refused = Vec::new();
    let dir = data_dir.join(SNAPSHOT_DIR);
    let candidates = snapshot::list(&dir).unwrap_or_else(|e| {
        refused.push((dir.clone(), e));
        Vec::new()
    });
    for path in candidates {
        match snapshot::load(&path, Some(owner)) {
            Ok(base) if base.seq() <= head => {
                return Ok(Restored { version: IndexVersion::new(Arc::new(base)), snapshot: Some(path), refused })
            }
            Ok(base) => refused.push((path, SnapshotError::AheadOfLedger { snapshot: base.seq(), ledger: head })),
            Err(e) => refused.push((path, e)),
        }
    }
    tracing::info!(head, "no usable snapshot: building the index from the whole ledger");
    Ok(Restored { version: build::from_ledger(ledger)?, snapshot: None, refused })
}
