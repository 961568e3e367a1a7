//! Bringing the standing-change log up to the index: after a restart from a
//! snapshot, for a new node, or after a write of the log failed, the log is
//! behind the version in service and the sync's own recording
//! ([`crate::sync::Syncer::with_changes`]) waits. [`catch_up_step`] computes
//! the next batch's changes from the ledger (the touched histories in one
//! read, as the sync does) until the log reaches the index; the sync records
//! every step after that itself.

use crate::sync::Touched;
use claimgate_rules::changes;
use claimgate_rules::domain::{CivilDate, InstitutionCode, PractitionerCode, Seq};
use claimgate_store::changes::{ChangeLog, ChangeLogError};
use claimgate_store::ledger::{Lane, Ledger, LedgerError};
use std::collections::HashMap;

/// A catch-up step failed.
#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Log(#[from] ChangeLogError),
}

/// Most events one catch-up step takes: a step is the unit the gate's stop
/// waits for, and a long history's events cost a derive each.
pub const MAX_CATCH_UP_BATCH: usize = 1_024;

/// Records the changes of at most [`MAX_CATCH_UP_BATCH`] events after the log's
/// mark and up to `limit` (the index's version); returns the new mark, or
/// `None` when the log is already at `limit` (or another writer moved it).
/// `today` is the date the changes are recorded under (the caller's clock).
pub fn catch_up_step(
    ledger: &Ledger,
    log: &ChangeLog,
    limit: Seq,
    today: CivilDate,
) -> Result<Option<Seq>, CatchUpError> {
    let mark = log.mark();
    if mark >= limit {
        return Ok(None);
    }
    // On the background lane: this thread runs at a low priority, and
    // holding the sync's connection here would make the sync (and every
    // `min_seq` check) wait on it.
    let reads = ledger.on(Lane::Background);
    let mut events = reads.events_since(mark, MAX_CATCH_UP_BATCH)?;
    events.retain(|r| r.seq <= limit);
    let Some(last) = events.last().map(|r| r.seq) else { return Ok(None) };
    let touched = Touched::by(reads, &events)?;
    let practitioners: Vec<PractitionerCode> = touched.practitioners.into_keys().collect();
    let institutions: Vec<InstitutionCode> = touched.institutions.into_keys().collect();
    let read = reads.histories_upto(&practitioners, &institutions, last)?;
    let p_histories: HashMap<_, _> = practitioners.into_iter().zip(read.practitioners).collect();
    let i_histories: HashMap<_, _> = institutions.into_iter().zip(read.institutions).collect();
    let owners = touched.owners;
    let found =
        changes::changes_in_batch(&events, &p_histories, &i_histories, |id| owners.get(id).copied(), ledger.policy());
    Ok(log.append(mark, last, &found, today)?.then_some(last))
}
