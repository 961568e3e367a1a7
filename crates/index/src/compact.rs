//! Compact, check-only forms of standings: just the intervals R18 tests, with
//! dates as `u32` day numbers. Everything else (causes, events) stays in the
//! ledger and the integrity file.

use claimgate_rules::domain::{CivilDate, DateInterval, Grade, InstitutionCode};
use claimgate_rules::{InstitutionOnDate, InstitutionStanding, PractitionerOnDate, PractitionerStanding, SanctionKind};

/// A day as stored in the index: days since 0001-01-01.
pub type Day = u32;
/// An interval with no end.
pub const OPEN: Day = u32::MAX;

/// Encodes a date for the index.
pub fn day(date: CivilDate) -> Day {
    (date.day_number() - CivilDate::MIN.day_number()) as Day
}

/// Encodes `[from, until)`; an open end is [`OPEN`].
pub fn span(interval: &DateInterval) -> (Day, Day) {
    (day(interval.from), interval.until.map_or(OPEN, day))
}

/// Packs `[from, until)` into one word: `from | until << 32`.
pub fn pack_span(from: Day, until: Day) -> u64 {
    u64::from(from) | (u64::from(until) << 32)
}

/// Whether a packed span contains `d`.
#[inline]
pub fn span_contains(packed: u64, d: Day) -> bool {
    let from = packed as u32;
    let until = (packed >> 32) as u32;
    d >= from && d < until
}

/// A registration: institution (packed code) and packed span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactRegistration {
    pub institution: u64,
    pub span: u64,
}

/// What the index keeps of a practitioner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactPractitioner {
    pub registrations: Vec<CompactRegistration>,
    /// Packed spans of terminations.
    pub terminations: Vec<u64>,
    /// Packed spans of suspensions.
    pub suspensions: Vec<u64>,
}

impl CompactPractitioner {
    /// The check-relevant part of a standing.
    pub fn from_standing(s: &PractitionerStanding) -> CompactPractitioner {
        let spans = |kind| -> Vec<u64> {
            s.sanctions
                .iter()
                .filter(|x| x.kind == kind)
                .map(|x| {
                    let (f, u) = span(&x.interval);
                    pack_span(f, u)
                })
                .collect()
        };
        CompactPractitioner {
            registrations: s
                .registrations
                .iter()
                .map(|r| {
                    let (f, u) = span(&r.interval);
                    CompactRegistration { institution: r.institution.packed(), span: pack_span(f, u) }
                })
                .collect(),
            terminations: spans(SanctionKind::Termination),
            suspensions: spans(SanctionKind::Suspension),
        }
    }
}

impl PractitionerOnDate for &CompactPractitioner {
    fn registered_at(&self, institution: InstitutionCode, date: CivilDate) -> bool {
        let (code, d) = (institution.packed(), day(date));
        self.registrations.iter().any(|r| r.institution == code && span_contains(r.span, d))
    }
    fn terminated_on(&self, date: CivilDate) -> bool {
        let d = day(date);
        self.terminations.iter().any(|s| span_contains(*s, d))
    }
    fn suspended_on(&self, date: CivilDate) -> bool {
        let d = day(date);
        self.suspensions.iter().any(|s| span_contains(*s, d))
    }
}

/// What the index keeps of an institution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactInstitution {
    /// Packed spans with an agreement in force.
    pub agreements: Vec<u64>,
    /// Packed spans of agreement suspensions.
    pub suspensions: Vec<u64>,
    pub grade: Option<Grade>,
}

impl CompactInstitution {
    /// The check-relevant part of a standing.
    pub fn from_standing(s: &InstitutionStanding) -> CompactInstitution {
        let pack = |i: &DateInterval| {
            let (f, u) = span(i);
            pack_span(f, u)
        };
        CompactInstitution {
            agreements: s.agreements.iter().map(pack).collect(),
            suspensions: s.suspensions.iter().map(|x| pack(&x.interval)).collect(),
            grade: s.latest_grade(),
        }
    }
}

impl InstitutionOnDate for &CompactInstitution {
    fn designated_on(&self, date: CivilDate) -> bool {
        let d = day(date);
        self.agreements.iter().any(|s| span_contains(*s, d))
    }
    fn suspended_on(&self, date: CivilDate) -> bool {
        let d = day(date);
        self.suspensions.iter().any(|s| span_contains(*s, d))
    }
    fn latest_grade(&self) -> Option<Grade> {
        self.grade
    }
}

/// Grade as a small number: 0 none, 1..=5 for A..E.
pub fn grade_code(grade: Option<Grade>) -> u64 {
    match grade {
        None => 0,
        Some(Grade::A) => 1,
        Some(Grade::B) => 2,
        Some(Grade::C) => 3,
        Some(Grade::D) => 4,
        Some(Grade::E) => 5,
    }
}

/// Inverse of [`grade_code`].
pub fn grade_of(code: u64) -> Option<Grade> {
    match code {
        1 => Some(Grade::A),
        2 => Some(Grade::B),
        3 => Some(Grade::C),
        4 => Some(Grade::D),
        5 => Some(Grade::E),
        _ => None,
    }
}
