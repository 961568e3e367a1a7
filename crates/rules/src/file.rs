//! The integrity file, "one person, one file" (R22): everything the ledger
//! says about a practitioner or an institution, and their status on a date.

use super::institution::{AgreementSuspension, Dated, Rating};
use super::practitioner::{RepairRecord, ViolationRecord};
use super::{InstitutionStanding, PractitionerStanding, SanctionKind};
use crate::domain::{CivilDate, DateInterval, Grade, InstitutionCode, PractitionerCode};
use crate::practitioner::{Registration, Sanction};
use serde::Serialize;
use std::collections::BTreeSet;

/// A practitioner's points in one calendar year (R10, R11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct YearTotal {
    pub year: i32,
    /// Points of violations still standing.
    pub scored: u64,
    /// Points of revoked violations (R12), not counted.
    pub revoked: u64,
    /// Points the year's repairs removed: their effective points, each at
    /// most the total standing at its step (R11, R13).
    pub repaired: u64,
    /// Points the year's repairs asked to remove (R13's cap counts these).
    pub repair_requested: u64,
    /// The total on 31 December (R11).
    pub total: u32,
}

/// Standing on the file's `as_of` date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PractitionerState {
    GoodStanding,
    Suspended,
    Terminated,
}

/// The current status block of a practitioner file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PractitionerStatus {
    pub as_of: CivilDate,
    pub state: PractitionerState,
    /// When the sanction in force ends, if one is and it has an end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<CivilDate>,
    pub year_total: u32,
    /// Institutions where the practitioner is filed on `as_of`.
    pub registered_at: Vec<InstitutionCode>,
}

/// R22 for a practitioner.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PractitionerFile {
    pub practitioner: PractitionerCode,
    pub status: PractitionerStatus,
    pub registrations: Vec<Registration>,
    pub violations: Vec<ViolationRecord>,
    pub repairs: Vec<RepairRecord>,
    pub year_totals: Vec<YearTotal>,
    pub sanctions: Vec<Sanction>,
}

impl PractitionerFile {
    /// The file of `standing`, with status on `as_of` (the caller's clock).
    pub fn new(standing: &PractitionerStanding, as_of: CivilDate) -> PractitionerFile {
        let s = standing;
        let in_force = |kind| s.sanction_on(kind, as_of);
        let (state, until) = match (in_force(SanctionKind::Termination), in_force(SanctionKind::Suspension)) {
            (Some(t), _) => (PractitionerState::Terminated, t.interval.until),
            (None, Some(x)) => (PractitionerState::Suspended, x.interval.until),
            (None, None) => (PractitionerState::GoodStanding, None),
        };
        let mut registered_at: Vec<InstitutionCode> =
            s.registrations.iter().filter(|r| r.interval.contains(as_of)).map(|r| r.institution).collect();
        registered_at.dedup();

        let years: BTreeSet<i32> = s
            .violations
            .iter()
            .map(|v| v.violation.effective.year())
            .chain(s.repairs.iter().map(|r| r.effective.year()))
            .collect();
        let year_totals = years
            .into_iter()
            .map(|year| {
                let points = |revoked: bool| -> u64 {
                    s.violations
                        .iter()
                        .filter(|v| v.violation.effective.year() == year && v.revoked.is_some() == revoked)
                        .map(|v| u64::from(v.violation.points))
                        .sum()
                };
                let year_end = CivilDate::from_ymd(year, 12, 31).expect("year came from a valid date");
                YearTotal {
                    year,
                    scored: points(false),
                    revoked: points(true),
                    repaired: s.repaired_in_year(year),
                    repair_requested: s.repair_requested_in_year(year),
                    total: s.year_total_on(year_end),
                }
            })
            .collect();
        PractitionerFile {
            practitioner: s.code,
            status: PractitionerStatus { as_of, state, until, year_total: s.year_total_on(as_of), registered_at },
            registrations: s.registrations.clone(),
            violations: s.violations.clone(),
            repairs: s.repairs.clone(),
            year_totals,
            sanctions: s.sanctions.clone(),
        }
    }
}

/// The current status block of an institution file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstitutionStatus {
    pub as_of: CivilDate,
    pub designated: bool,
    pub suspended: bool,
    pub latest_grade: Option<Grade>,
}

/// R22 for an institution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstitutionFile {
    pub institution: InstitutionCode,
    pub status: InstitutionStatus,
    pub agreements: Vec<DateInterval>,
    pub designations: Vec<Dated>,
    pub suspensions: Vec<AgreementSuspension>,
    pub terminations: Vec<Dated>,
    pub grades: Vec<Rating>,
}

impl InstitutionFile {
    /// The file of `standing`, with status on `as_of`.
    pub fn new(standing: &InstitutionStanding, as_of: CivilDate) -> InstitutionFile {
        InstitutionFile {
            institution: standing.code,
            status: InstitutionStatus {
                as_of,
                designated: standing.designated_on(as_of),
                suspended: standing.suspended_on(as_of),
                latest_grade: standing.latest_grade(),
            },
            agreements: standing.agreements.clone(),
            designations: standing.designations.clone(),
            suspensions: standing.suspensions.clone(),
            terminations: standing.terminations.clone(),
            grades: standing.ratings.clone(),
        }
    }
}
