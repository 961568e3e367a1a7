//! Building a whole index version: from the ledger (streaming, one entity at
//! a time, so memory is the index plus one history), from any other source of
//! histories through [`Builder`], or from a reference World.

use super::base::BaseBuilder;
use super::compact::{CompactInstitution, CompactPractitioner};
use super::IndexVersion;
use claimgate_rules::domain::{InstitutionCode, PractitionerCode, Seq};
use claimgate_rules::event::RecordedEvent;
use claimgate_rules::policy::Policy;
use claimgate_rules::{institution, practitioner, World};
use claimgate_store::ledger::{Ledger, LedgerError};
use std::sync::Arc;

/// Builds an index version from entity histories, whatever their source (a
/// ledger scan, a synthetic population fed from memory): each history is
/// derived by the rules and its check-only record added, one at a time, so
/// memory is the index plus one history.
pub struct Builder {
    base: BaseBuilder,
    policy: Policy,
}

impl Builder {
    /// A builder sized for about `practitioners` and `institutions` entries.
    pub fn with_capacity(practitioners: usize, institutions: usize, policy: Policy) -> Builder {
        Builder { base: BaseBuilder::with_capacity(practitioners, institutions), policy }
    }

    /// Adds one practitioner's whole history (any order, R6); one never
    /// registered is left out, as the rules do.
    pub fn practitioner(&mut self, code: PractitionerCode, events: &[RecordedEvent]) {
        let standing = practitioner::derive(code, events, &self.policy);
        if standing.registered_ever {
            self.base.add_practitioner(code, &CompactPractitioner::from_standing(&standing));
        }
    }

    /// Adds one institution's whole history; one never designated is left out.
    pub fn institution(&mut self, code: InstitutionCode, events: &[RecordedEvent]) {
        let standing = institution::derive(code, events);
        if !standing.designations.is_empty() {
            self.base.add_institution(code, &CompactInstitution::from_standing(&standing));
        }
    }

    /// The version of everything added, as of ledger `seq`.
    pub fn finish(self, seq: Seq) -> IndexVersion {
        IndexVersion::new(Arc::new(self.base.finish(seq)))
    }
}

/// Builds the index of everything the ledger holds now.
pub fn from_ledger(ledger: &Ledger) -> Result<IndexVersion, LedgerError> {
    let builder = std::cell::RefCell::new(Builder::with_capacity(0, 0, ledger.policy().clone()));
    let progress = std::cell::RefCell::new(Progress::new());
    let seq = ledger.scan_histories(
        |code, events| {
            builder.borrow_mut().practitioner(code, events);
            progress.borrow_mut().practitioner();
        },
        |code, events| builder.borrow_mut().institution(code, events),
    )?;
    let progress = progress.into_inner();
    if progress.logged {
        tracing::info!(
            practitioners = progress.practitioners,
            seconds = progress.started.elapsed().as_secs_f64(),
            "index build from the ledger: all histories read"
        );
    }
    Ok(builder.into_inner().finish(seq))
}

/// How often a long ledger build says how far it has come.
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// Practitioners between looks at the clock.
const PROGRESS_STRIDE: u64 = 65_536;

/// Progress of a ledger build, logged every [`PROGRESS_INTERVAL`].
struct Progress {
    practitioners: u64,
    started: std::time::Instant,
    last: std::time::Instant,
    logged: bool,
}

impl Progress {
    fn new() -> Progress {
        let now = std::time::Instant::now();
        Progress { practitioners: 0, started: now, last: now, logged: false }
    }

    fn practitioner(&mut self) {
        self.practitioners += 1;
        if self.practitioners.is_multiple_of(PROGRESS_STRIDE) && self.last.elapsed() >= PROGRESS_INTERVAL {
            self.last = std::time::Instant::now();
            self.logged = true;
            tracing::info!(
                practitioners = self.practitioners,
                seconds = self.started.elapsed().as_secs_f64(),
                "building the index from the ledger"
            );
        }
    }
}

/// Builds the index of a reference World.
pub fn from_world(world: &World) -> IndexVersion {
    let mut builder = BaseBuilder::default();
    for p in world.practitioners().filter(|p| p.registered_ever) {
        builder.add_practitioner(p.code, &CompactPractitioner::from_standing(p));
    }
    for i in world.institutions().filter(|i| !i.designations.is_empty()) {
        builder.add_institution(i.code, &CompactInstitution::from_standing(i));
    }
    IndexVersion::new(Arc::new(builder.finish(world.seq())))
}
