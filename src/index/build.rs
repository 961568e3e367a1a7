//! Building a whole index version: from the ledger (streaming, one entity at
//! a time, so memory is the index plus one history) or from a reference World.

use super::base::BaseBuilder;
use super::compact::{CompactInstitution, CompactPractitioner};
use super::IndexVersion;
use crate::ledger::{Ledger, LedgerError};
use crate::rules::{institution, practitioner, World};
use std::sync::Arc;

/// Builds the index of everything the ledger holds now.
pub fn from_ledger(ledger: &Ledger) -> Result<IndexVersion, LedgerError> {
    let builder = std::cell::RefCell::new(BaseBuilder::default());
    let policy = ledger.policy().clone();
    let progress = std::cell::RefCell::new(Progress::new());
    let seq = ledger.scan_histories(
        |code, events| {
            let standing = practitioner::derive(code, events, &policy);
            if standing.registered_ever {
                builder.borrow_mut().add_practitioner(code, &CompactPractitioner::from_standing(&standing));
            }
            progress.borrow_mut().practitioner();
        },
        |code, events| {
            let standing = institution::derive(code, events);
            if !standing.designations.is_empty() {
                builder.borrow_mut().add_institution(code, &CompactInstitution::from_standing(&standing));
            }
        },
    )?;
    let progress = progress.into_inner();
    if progress.logged {
        tracing::info!(
            practitioners = progress.practitioners,
            seconds = progress.started.elapsed().as_secs_f64(),
            "index build from the ledger: all histories read"
        );
    }
    Ok(IndexVersion::new(Arc::new(builder.into_inner().finish(seq))))
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

/// Builds the index of a synthetic population without a ledger (benchmarks,
/// load tests): the same derivation as a ledger build, fed from memory.
pub fn from_population(population: &crate::population::Population) -> IndexVersion {
    use crate::population::Group;
    let spec = population.spec();
    let policy = crate::policy::Policy::default();
    let mut builder = BaseBuilder::with_capacity(spec.practitioners as usize, spec.institutions() as usize);
    let mut seq = 0;
    for group in population.groups() {
        match group {
            Group::Institution(code, events) => {
                seq = seq.max(events.last().map_or(0, |r| r.seq));
                let standing = institution::derive(code, &events);
                builder.add_institution(code, &CompactInstitution::from_standing(&standing));
            }
            Group::Practitioner(code, events) => {
                seq = seq.max(events.last().map_or(0, |r| r.seq));
                let standing = practitioner::derive(code, &events, &policy);
                builder.add_practitioner(code, &CompactPractitioner::from_standing(&standing));
            }
        }
    }
    IndexVersion::new(Arc::new(builder.finish(seq)))
}
