//! The claim check (R17–R19): may this service be settled from the fund?

use super::{InstitutionStanding, PractitionerStanding, SanctionKind};
use crate::domain::{CivilDate, Grade, InstitutionCode, PractitionerCode};
use serde::{Deserialize, Serialize, Serializer};

/// One claim line: who delivered the service, where, on which date (R17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    pub practitioner: PractitionerCode,
    pub institution: InstitutionCode,
    pub service_date: CivilDate,
    pub emergency: bool,
}

/// Settle or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Settle,
    Reject,
}

impl Verdict {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Settle => "settle",
            Verdict::Reject => "reject",
        }
    }

    /// The verdict of a wire name, if it is one.
    pub fn parse(text: &str) -> Option<Verdict> {
        [Verdict::Settle, Verdict::Reject].into_iter().find(|v| v.as_str() == text)
    }
}

/// Why: `ok`, `emergency_exemption`, or the first failing test of R18.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Reason {
    Ok = 0,
    EmergencyExemption = 8,
    UnknownInstitution = 1,
    UnknownPractitioner = 2,
    InstitutionNotDesignated = 3,
    NotRegisteredAtInstitution = 4,
    PractitionerTerminated = 5,
    PractitionerSuspended = 6,
    InstitutionSuspended = 7,
}

impl Reason {
    /// Every reason, `ok` first.
    pub const ALL: [Reason; 9] = [
        Reason::Ok,
        Reason::EmergencyExemption,
        Reason::UnknownInstitution,
        Reason::UnknownPractitioner,
        Reason::InstitutionNotDesignated,
        Reason::NotRegisteredAtInstitution,
        Reason::PractitionerTerminated,
        Reason::PractitionerSuspended,
        Reason::InstitutionSuspended,
    ];

    /// The reason of a wire name, if it is one.
    pub fn parse(text: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::EmergencyExemption => "emergency_exemption",
            Reason::UnknownInstitution => "unknown_institution",
            Reason::UnknownPractitioner => "unknown_practitioner",
            Reason::InstitutionNotDesignated => "institution_not_designated",
            Reason::NotRegisteredAtInstitution => "not_registered_at_institution",
            Reason::PractitionerTerminated => "practitioner_terminated",
            Reason::PractitionerSuspended => "practitioner_suspended",
            Reason::InstitutionSuspended => "institution_suspended",
        }
    }
}

/// The waivable reasons (R18 tests 5–7) that applied to a claim, as a set
/// that iterates in R18 order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Waivers(u8);

const WAIVABLE: [Reason; 3] =
    [Reason::PractitionerTerminated, Reason::PractitionerSuspended, Reason::InstitutionSuspended];

impl Waivers {
    /// Adds a waivable reason.
    pub fn insert(&mut self, reason: Reason) {
        let bit = WAIVABLE.iter().position(|r| *r == reason).expect("only reasons 5-7 are waivable (R19)");
        self.0 |= 1 << bit;
    }

    /// Whether no reason applied.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The first reason in R18 order.
    pub fn first(self) -> Option<Reason> {
        (self.0 != 0).then(|| WAIVABLE[self.0.trailing_zeros() as usize])
    }

    /// The reasons in R18 order.
    pub fn iter(self) -> impl Iterator<Item = Reason> {
        WAIVABLE.into_iter().enumerate().filter(move |(i, _)| self.0 & (1 << i) != 0).map(|(_, r)| r)
    }
}

impl Serialize for Waivers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// A decision (R18, R19). `waived` is non-empty only for
/// `emergency_exemption`; `institution_grade` is informational (R21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: Reason,
    pub waived: Waivers,
    pub institution_grade: Option<Grade>,
}

impl Decision {
    fn reject(reason: Reason, institution_grade: Option<Grade>) -> Decision {
        Decision { verdict: Verdict::Reject, reason, waived: Waivers::default(), institution_grade }
    }
}

/// What the check needs to know about an institution on a service date.
/// Implemented by the reference standings and by the compact index, so both
/// are judged by the one [`decide`].
pub trait InstitutionOnDate {
    /// An agreement was in force on `day` (R18 test 3).
    fn designated_on(&self, day: CivilDate) -> bool;
    /// The agreement was suspended for services on `day` (R18 test 7).
    fn suspended_on(&self, day: CivilDate) -> bool;
    /// The grade of the latest rated year (R21).
    fn latest_grade(&self) -> Option<Grade>;
}

/// What the check needs to know about a practitioner on a service date.
pub trait PractitionerOnDate {
    /// Filed at `institution` on `day` (R18 test 4).
    fn registered_at(&self, institution: InstitutionCode, day: CivilDate) -> bool;
    /// A termination in force on `day` (R15, R18 test 5).
    fn terminated_on(&self, day: CivilDate) -> bool;
    /// A suspension in force on `day` (R14, R18 test 6).
    fn suspended_on(&self, day: CivilDate) -> bool;
}

impl InstitutionOnDate for &InstitutionStanding {
    fn designated_on(&self, day: CivilDate) -> bool {
        InstitutionStanding::designated_on(self, day)
    }
    fn suspended_on(&self, day: CivilDate) -> bool {
        InstitutionStanding::suspended_on(self, day)
    }
    fn latest_grade(&self) -> Option<Grade> {
        InstitutionStanding::latest_grade(self)
    }
}

impl PractitionerOnDate for &PractitionerStanding {
    fn registered_at(&self, institution: InstitutionCode, day: CivilDate) -> bool {
        PractitionerStanding::registered_at(self, institution, day)
    }
    fn terminated_on(&self, day: CivilDate) -> bool {
        self.sanction_on(SanctionKind::Termination, day).is_some()
    }
    fn suspended_on(&self, day: CivilDate) -> bool {
        self.sanction_on(SanctionKind::Suspension, day).is_some()
    }
}

/// Judges a claim by its service date (R17), taking the first failing test in
/// R18's order; an emergency waives tests 5–7 (R19). `institution` is `None`
/// when the ledger never designated the claim's institution, `practitioner`
/// when it never registered the claim's practitioner.
pub fn decide<I: InstitutionOnDate, P: PractitionerOnDate>(
    institution: Option<I>,
    practitioner: Option<P>,
    claim: &Claim,
) -> Decision {
    let day = claim.service_date;
    let Some(institution) = institution else {
        return Decision::reject(Reason::UnknownInstitution, None);
    };
    let grade = institution.latest_grade();
    let Some(practitioner) = practitioner else {
        return Decision::reject(Reason::UnknownPractitioner, grade);
    };
    if !institution.designated_on(day) {
        return Decision::reject(Reason::InstitutionNotDesignated, grade);
    }
    if !practitioner.registered_at(claim.institution, day) {
        return Decision::reject(Reason::NotRegisteredAtInstitution, grade);
    }
    let mut failing = Waivers::default();
    if practitioner.terminated_on(day) {
        failing.insert(Reason::PractitionerTerminated);
    }
    if practitioner.suspended_on(day) {
        failing.insert(Reason::PractitionerSuspended);
    }
    if institution.suspended_on(day) {
        failing.insert(Reason::InstitutionSuspended);
    }
    match failing.first() {
        None => Decision {
            verdict: Verdict::Settle,
            reason: Reason::Ok,
            waived: Waivers::default(),
            institution_grade: grade,
        },
        Some(_) if claim.emergency => Decision {
            verdict: Verdict::Settle,
            reason: Reason::EmergencyExemption,
            waived: failing,
            institution_grade: grade,
        },
        Some(first) => Decision::reject(first, grade),
    }
}
