//! The whole derived state of a ledger, held naively in hash maps.
//!
//! This is the reference the compact index is tested against, and what
//! `replay` checks with: simple enough to trust, not built for 20 million.

use super::{check, institution, practitioner, Claim, Decision, InstitutionStanding, PractitionerStanding};
use crate::domain::{InstitutionCode, PractitionerCode, Seq, ViolationId};
use crate::event::{Event, RecordedEvent};
use crate::policy::Policy;
use std::collections::HashMap;

/// Every practitioner's and institution's standing at one ledger `seq`.
#[derive(Debug, Clone, Default)]
pub struct World {
    seq: Seq,
    institutions: HashMap<InstitutionCode, InstitutionStanding>,
    practitioners: HashMap<PractitionerCode, PractitionerStanding>,
}

/// Events by the entity they belong to.
pub type Histories<K> = HashMap<K, Vec<RecordedEvent>>;

/// Whose history an event is filed in: a practitioner's (their
/// registrations, violations, repairs, and revocations of their violations)
/// or an institution's own (designations, suspensions, terminations,
/// ratings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filed {
    Practitioner(PractitionerCode),
    Institution(InstitutionCode),
}

/// The history `event` is filed in; a revocation under its violation's
/// `owner` (none for a violation never scored).
pub fn filed_under(event: &Event, owner: impl FnOnce(&ViolationId) -> Option<PractitionerCode>) -> Option<Filed> {
    match event {
        Event::ViolationRevoked { violation_id, .. } => owner(violation_id).map(Filed::Practitioner),
        other => match (other.practitioner(), other.institution()) {
            (Some(p), _) => Some(Filed::Practitioner(p)),
            (None, Some(i)) => Some(Filed::Institution(i)),
            (None, None) => None,
        },
    }
}

/// Each entity's history, as its standing is derived from it: a
/// practitioner's events (revocations of their violations included, by the
/// violation's owner) and an institution's own events, each in the order
/// given. A revocation of a violation never scored belongs to no one.
pub fn histories(events: &[RecordedEvent]) -> (Histories<PractitionerCode>, Histories<InstitutionCode>) {
    let mut owner: HashMap<&ViolationId, PractitionerCode> = HashMap::new();
    for r in events {
        if let Event::ViolationScored(v) = &r.event {
            owner.entry(&v.violation_id).or_insert(v.practitioner);
        }
    }
    let mut by_practitioner: Histories<PractitionerCode> = HashMap::new();
    let mut by_institution: Histories<InstitutionCode> = HashMap::new();
    for r in events {
        match filed_under(&r.event, |id| owner.get(id).copied()) {
            Some(Filed::Practitioner(p)) => by_practitioner.entry(p).or_default().push(r.clone()),
            Some(Filed::Institution(i)) => by_institution.entry(i).or_default().push(r.clone()),
            None => {}
        }
    }
    (by_practitioner, by_institution)
}

impl World {
    /// Derives the state from accepted events, in any order (R6).
    pub fn from_events(events: &[RecordedEvent], policy: &Policy) -> World {
        let (by_practitioner, by_institution) = histories(events);
        World {
            seq: events.iter().map(|r| r.seq).max().unwrap_or(0),
            institutions: by_institution.into_iter().map(|(code, ev)| (code, institution::derive(code, &ev))).collect(),
            practitioners: by_practitioner
                .into_iter()
                .map(|(code, ev)| (code, practitioner::derive(code, &ev, policy)))
                .collect(),
        }
    }

    /// The highest `seq` reflected.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// Judges one claim (R17–R19).
    pub fn decide(&self, claim: &Claim) -> Decision {
        check::decide(
            self.institutions.get(&claim.institution).filter(|i| !i.designations.is_empty()),
            self.practitioners.get(&claim.practitioner).filter(|p| p.registered_ever),
            claim,
        )
    }

    /// A practitioner's standing, if the ledger names them.
    pub fn practitioner(&self, code: PractitionerCode) -> Option<&PractitionerStanding> {
        self.practitioners.get(&code)
    }

    /// An institution's standing, if the ledger names it.
    pub fn institution(&self, code: InstitutionCode) -> Option<&InstitutionStanding> {
        self.institutions.get(&code)
    }

    /// All practitioners with any event.
    pub fn practitioners(&self) -> impl Iterator<Item = &PractitionerStanding> {
        self.practitioners.values()
    }

    /// All institutions with any institution event.
    pub fn institutions(&self) -> impl Iterator<Item = &InstitutionStanding> {
        self.institutions.values()
    }
}
