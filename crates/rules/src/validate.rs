//! R8: may this event be appended? Checks run in R8's order and the first
//! failure is the answer. The ledger is read only through [`LedgerFacts`], so
//! the same validation serves every storage backend and the tests.

use super::practitioner::{self, Change, ScoringStep};
use super::SanctionKind;
use crate::domain::{EventId, InstitutionCode, PractitionerCode, Score, Seq, SuspensionId, ViolationId};
use crate::event::{Event, InsuredSuspension, RecordedEvent, Violation};
use crate::policy::{Policy, MAX_SUSPENSION_MONTHS, SINGLE_INCIDENT_BAN_YEARS};
use crate::refusal::{Refusal, RefusalCode};
use std::ops::RangeInclusive;

/// A violation the ledger already holds.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownViolation {
    pub seq: Seq,
    pub violation: Violation,
    /// Its accepted revocation, if an appeal was upheld (R12).
    pub revocation: Option<RecordedEvent>,
}

/// An insured person's suspension the ledger already holds (R24).
#[derive(Debug, Clone, PartialEq)]
pub struct KnownSuspension {
    pub seq: Seq,
    pub suspension: InsuredSuspension,
    /// Its accepted lifting, if it was lifted.
    pub lifting: Option<RecordedEvent>,
}

/// What validation needs to know about accepted events. Every method is
/// bounded by one entity's own events (an index lookup, or one
/// practitioner's scoring steps in a few years), never by the whole ledger,
/// so an append's cost does not grow with history elsewhere.
pub trait LedgerFacts {
    /// A storage failure, passed through untouched.
    type Error;
    /// Whether any `institution_designated` names `code`.
    fn institution_designated(&mut self, code: InstitutionCode) -> Result<bool, Self::Error>;
    /// Whether any `practitioner_registered` names `code`.
    fn practitioner_registered(&mut self, code: PractitionerCode) -> Result<bool, Self::Error>;
    /// The accepted event that carries `id` (R7a), if any.
    fn event_with_id(&mut self, id: &EventId) -> Result<Option<RecordedEvent>, Self::Error>;
    /// The violation scored under `id`, if any, with its revocation.
    fn violation(&mut self, id: &ViolationId) -> Result<Option<KnownViolation>, Self::Error>;
    /// The insured person's suspension under `id`, if any, with its lifting.
    fn suspension(&mut self, id: &SuspensionId) -> Result<Option<KnownSuspension>, Self::Error>;
    /// The practitioner's scoring steps dated in `years`: standing
    /// (non-revoked) violations and repairs, sorted by (`effective`, `seq`).
    fn scoring_steps(
        &mut self,
        code: PractitionerCode,
        years: RangeInclusive<i32>,
    ) -> Result<Vec<ScoringStep>, Self::Error>;
}

/// The outcome of validating an acceptable event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Append it with the next `seq`.
    Append,
    /// The identical event was already accepted under this `seq`: answer
    /// with it and store nothing (R7a re-send).
    AlreadyRecorded(Seq),
}

/// Validates `event` against the accepted events (R8). The outer `Result` is
/// a storage failure; the inner one the verdict.
pub fn validate<F: LedgerFacts>(
    event: &Event,
    policy: &Policy,
    facts: &mut F,
) -> Result<Result<Admission, Refusal>, F::Error> {
    use RefusalCode as C;
    // invalid_request (R4) was decided by Event::parse.
    if let Some(id) = event.event_id() {
        if let Some(known) = facts.event_with_id(id)? {
            if &known.event == event {
                return Ok(Ok(Admission::AlreadyRecorded(known.seq)));
            }
            return Ok(Err(Refusal::at(
                C::DuplicateEvent,
                "event_id",
                format!(
                    "event_id `{id}` was already accepted (seq {}, a {}) with different content (R7a); \
                     a correction is a new event with its own event_id",
                    known.seq,
                    known.event.kind()
                ),
            )));
        }
    }
    if !matches!(event, Event::InstitutionDesignated { .. }) {
        if let Some(code) = event.institution() {
            if !facts.institution_designated(code)? {
                return Ok(Err(Refusal::at(
                    C::UnknownInstitution,
                    "institution",
                    format!("institution {code} was never designated; send its institution_designated event first"),
                )));
            }
        }
    }
    if !matches!(event, Event::PractitionerRegistered { .. }) {
        if let Some(code) = event.practitioner() {
            if !facts.practitioner_registered(code)? {
                return Ok(Err(Refusal::at(
                    C::UnknownPractitioner,
                    "practitioner",
                    format!("practitioner {code} was never registered; send a practitioner_registered event first"),
                )));
            }
        }
    }
    if let Event::ViolationScored(v) = event {
        let band = v.severity.band();
        if !band.contains(&v.points) {
            return Ok(Err(Refusal::at(
                C::PointsOutOfBand,
                "points",
                format!(
                    "{} points is outside the {:?} band {}-{} (R9)",
                    v.points,
                    v.severity,
                    band.start(),
                    band.end()
                ),
            )));
        }
        if let Some(m) = v.suspension_months.filter(|m| !(1..=MAX_SUSPENSION_MONTHS).contains(m)) {
            return Ok(Err(Refusal::at(
                C::InvalidSuspensionMonths,
                "suspension_months",
                format!("suspension_months is {m}; it must be 1 to {MAX_SUSPENSION_MONTHS} (R14)"),
            )));
        }
    }
    if let Event::InsuredSettlementSuspended(s) = event {
        if let (Some(months), Some(until)) = (s.cause.months(), s.until) {
            let shortest = s.effective.add_months(*months.start());
            let longest = s.effective.add_months(*months.end());
            if shortest.is_some_and(|d| until < d) || longest.is_some_and(|d| until > d) {
                return Ok(Err(Refusal::at(
                    C::InvalidSuspensionPeriod,
                    "until",
                    format!(
                        "a {} suspension lasts {} to {} months (R24): from {} `until` must be {} to {}; it is {until}",
                        "benefit_misuse",
                        months.start(),
                        months.end(),
                        s.effective,
                        shortest.map_or("?".to_owned(), |d| d.to_string()),
                        longest.map_or("the calendar's end".to_owned(), |d| d.to_string()),
                    ),
                )));
            }
        }
    }
    if let Event::ViolationRevoked { violation_id, .. } = event {
        match facts.violation(violation_id)? {
            None => {
                return Ok(Err(Refusal::at(
                    C::UnknownViolation,
                    "violation_id",
                    format!("no violation `{violation_id}` was ever scored"),
                )))
            }
            Some(known) => {
                let again = ended_before(event, known.revocation.as_ref(), C::AlreadyRevoked, "violation_id", |seq| {
                    format!("violation `{violation_id}` is already revoked (seq {seq})")
                });
                if let Some(answer) = again {
                    return Ok(answer);
                }
            }
        }
    }
    if let Event::InsuredSettlementLifted { suspension_id, .. } = event {
        match facts.suspension(suspension_id)? {
            None => {
                return Ok(Err(Refusal::at(
                    C::UnknownSuspension,
                    "suspension_id",
                    format!("no suspension `{suspension_id}` of an insured person was ever recorded (R24)"),
                )))
            }
            Some(known) => {
                let again = ended_before(event, known.lifting.as_ref(), C::AlreadyLifted, "suspension_id", |seq| {
                    format!("suspension `{suspension_id}` is already lifted (seq {seq}); it can be lifted once (R24)")
                });
                if let Some(answer) = again {
                    return Ok(answer);
                }
            }
        }
    }
    if let Event::ViolationScored(v) = event {
        if let Some(known) = facts.violation(&v.violation_id)? {
            if &known.violation == v {
                return Ok(Ok(Admission::AlreadyRecorded(known.seq)));
            }
            return Ok(Err(Refusal::at(
                C::DuplicateViolation,
                "violation_id",
                format!(
                    "violation `{}` was already scored (seq {}) with different content; use a new violation_id",
                    v.violation_id, known.seq
                ),
            )));
        }
    }
    if let Event::InsuredSettlementSuspended(s) = event {
        if let Some(known) = facts.suspension(&s.suspension_id)? {
            if &known.suspension == s {
                return Ok(Ok(Admission::AlreadyRecorded(known.seq)));
            }
            return Ok(Err(Refusal::at(
                C::DuplicateSuspension,
                "suspension_id",
                format!(
                    "suspension `{}` was already recorded (seq {}) with different content (R7a); use a new suspension_id",
                    s.suspension_id, known.seq
                ),
            )));
        }
    }
    if let Event::PractitionerRegistered { practitioner: code, effective, .. } = event {
        // A ban lasts at most SINGLE_INCIDENT_BAN_YEARS, so only terminations
        // of those years and this one can cover the date (R15).
        let year = effective.year();
        let steps = facts.scoring_steps(*code, year - SINGLE_INCIDENT_BAN_YEARS as i32..=year)?;
        let covering = bans(&steps).find(|(from, until)| from <= effective && until.is_none_or(|u| *effective < u));
        if let Some((from, until)) = covering {
            let until = until.map_or("the end of the calendar".to_owned(), |d| d.to_string());
            return Ok(Err(Refusal::at(
                C::RegistrationBanned,
                "effective",
                format!("practitioner {code} was terminated on {from}; registration is barred until {until} (R15)"),
            )));
        }
    }
    if let Event::InstitutionRated { score, .. } = event {
        if Score::new(*score).is_none() {
            return Ok(Err(Refusal::at(C::InvalidScore, "score", format!("score {score} is not within 0-100 (R20)"))));
        }
    }
    if let Event::PointsRepaired { practitioner: code, points, effective, .. } = event {
        // R13: the cap counts requested points, so it does not move when a
        // back-dated event arrives.
        let year = effective.year();
        let already: u64 = facts
            .scoring_steps(*code, year..=year)?
            .iter()
            .map(|s| match s.change {
                Change::Repaired(p) => u64::from(p),
                Change::Scored(_) => 0,
            })
            .sum();
        let cap = u64::from(policy.repair_cap_per_year);
        if already + u64::from(*points) > cap {
            return Ok(Err(Refusal::at(
                C::RepairLimitExceeded,
                "points",
                format!(
                    "{points} points would bring {year}'s repairs for {code} to {}; at most {cap} a year (R13)",
                    already + u64::from(*points)
                ),
            )));
        }
    }
    Ok(Ok(Admission::Append))
}

/// `event` ends something (a revocation, a lifting) that `earlier` already
/// ended, if it is `Some`: an identical re-send answers the original seq
/// (R7a), anything else is `code` at `field` (`message` given that seq).
fn ended_before(
    event: &Event,
    earlier: Option<&RecordedEvent>,
    code: RefusalCode,
    field: &str,
    message: impl FnOnce(Seq) -> String,
) -> Option<Result<Admission, Refusal>> {
    let earlier = earlier?;
    Some(if &earlier.event == event {
        Ok(Admission::AlreadyRecorded(earlier.seq))
    } else {
        Err(Refusal::at(code, field, message(earlier.seq)))
    })
}

/// The registration bans (R15) that the terminations among `steps` start:
/// `[from, until)`, `until` `None` past the calendar's end.
fn bans(
    steps: &[ScoringStep],
) -> impl Iterator<Item = (crate::domain::CivilDate, Option<crate::domain::CivilDate>)> + '_ {
    practitioner::walk(steps).into_iter().zip(steps).filter_map(|(walked, step)| match (walked.crossed, step.change) {
        (Some(SanctionKind::Termination), Change::Scored(points)) => {
            Some((step.effective, practitioner::ban_until(step.effective, points)))
        }
        _ => None,
    })
}
