//! R8: may this event be appended? Checks run in R8's order and the first
//! failure is the answer. The ledger is read only through [`LedgerFacts`], so
//! the same validation serves every storage backend and the tests.

use super::practitioner;
use crate::domain::{InstitutionCode, PractitionerCode, Score, Seq, ViolationId};
use crate::event::{Event, RecordedEvent, Violation};
use crate::policy::{Policy, MAX_SUSPENSION_MONTHS};
use crate::refusal::{Refusal, RefusalCode};

/// A violation the ledger already holds.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownViolation {
    pub seq: Seq,
    pub violation: Violation,
    pub revoked: bool,
}

/// What validation needs to know about accepted events.
pub trait LedgerFacts {
    /// A storage failure, passed through untouched.
    type Error;
    /// Whether any `institution_designated` names `code`.
    fn institution_designated(&mut self, code: InstitutionCode) -> Result<bool, Self::Error>;
    /// Whether any `practitioner_registered` names `code`.
    fn practitioner_registered(&mut self, code: PractitionerCode) -> Result<bool, Self::Error>;
    /// The violation scored under `id`, if any.
    fn violation(&mut self, id: &ViolationId) -> Result<Option<KnownViolation>, Self::Error>;
    /// Every accepted event about `code`, revocations of their violations included.
    fn practitioner_history(&mut self, code: PractitionerCode) -> Result<Vec<RecordedEvent>, Self::Error>;
}

/// The outcome of validating an acceptable event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Append it with the next `seq`.
    Append,
    /// The identical violation was already accepted under this `seq`: answer
    /// with it and store nothing (R8 `duplicate_violation`).
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
    if let Event::ViolationRevoked { violation_id, .. } = event {
        match facts.violation(violation_id)? {
            None => {
                return Ok(Err(Refusal::at(
                    C::UnknownViolation,
                    "violation_id",
                    format!("no violation `{violation_id}` was ever scored"),
                )))
            }
            Some(known) if known.revoked => {
                return Ok(Err(Refusal::at(
                    C::AlreadyRevoked,
                    "violation_id",
                    format!("violation `{violation_id}` is already revoked"),
                )))
            }
            Some(_) => {}
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
    if let Event::PractitionerRegistered { practitioner: code, effective, .. } = event {
        let history = facts.practitioner_history(*code)?;
        let standing = practitioner::derive(*code, &history, policy);
        if let Some(ban) = standing.ban_on(*effective) {
            let until = ban.ban_until.map_or("the end of the calendar".to_owned(), |d| d.to_string());
            return Ok(Err(Refusal::at(
                C::RegistrationBanned,
                "effective",
                format!(
                    "practitioner {code} was terminated on {} (violation `{}`); registration is barred until {until} (R15)",
                    ban.interval.from, ban.cause
                ),
            )));
        }
    }
    if let Event::InstitutionRated { score, .. } = event {
        if Score::new(*score).is_none() {
            return Ok(Err(Refusal::at(C::InvalidScore, "score", format!("score {score} is not within 0-100 (R20)"))));
        }
    }
    if let Event::PointsRepaired { practitioner: code, points, effective } = event {
        let history = facts.practitioner_history(*code)?;
        let standing = practitioner::derive(*code, &history, policy);
        let year = effective.year();
        let already = standing.repaired_in_year(year);
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
