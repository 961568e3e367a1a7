//! An institution's standing from its accepted events: agreement intervals,
//! suspensions, terminations and annual grades (R7, R18, R20).

use crate::domain::{CivilDate, DateInterval, Grade, InstitutionCode, Score, Seq};
use crate::event::{Event, RecordedEvent};
use serde::Serialize;

/// One year's credit evaluation (R20); a later rating of the same year
/// replaces an earlier one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rating {
    pub year: i32,
    pub score: f64,
    pub direct_e: Vec<String>,
    pub grade: Grade,
    pub seq: Seq,
}

/// A dated institution event, for the integrity file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Dated {
    pub effective: CivilDate,
    pub seq: Seq,
}

/// A suspension of the agreement for services in `[from, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AgreementSuspension {
    #[serde(flatten)]
    pub interval: DateInterval,
    pub seq: Seq,
}

/// Everything derived about one institution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstitutionStanding {
    pub code: InstitutionCode,
    /// Periods with an agreement in force, sorted, disjoint.
    pub agreements: Vec<DateInterval>,
    pub designations: Vec<Dated>,
    pub terminations: Vec<Dated>,
    pub suspensions: Vec<AgreementSuspension>,
    /// By year, ascending.
    pub ratings: Vec<Rating>,
}

impl InstitutionStanding {
    /// Whether an agreement was in force on `day` (R18 test 3).
    pub fn designated_on(&self, day: CivilDate) -> bool {
        self.agreements.iter().any(|a| a.contains(day))
    }

    /// Whether the agreement was suspended for services on `day` (R18 test 7).
    pub fn suspended_on(&self, day: CivilDate) -> bool {
        self.suspensions.iter().any(|s| s.interval.contains(day))
    }

    /// The grade of the latest rated year (R21).
    pub fn latest_grade(&self) -> Option<Grade> {
        self.ratings.last().map(|r| r.grade)
    }
}

/// Derives an institution's standing; events naming other institutions are
/// ignored, and the order of `events` does not matter (R6).
pub fn derive(code: InstitutionCode, events: &[RecordedEvent]) -> InstitutionStanding {
    let mut mine: Vec<&RecordedEvent> = events.iter().filter(|r| r.event.institution() == Some(code)).collect();
    mine.sort_by_key(|r| (r.event.effective(), r.seq));

    let mut standing = InstitutionStanding {
        code,
        agreements: Vec::new(),
        designations: Vec::new(),
        terminations: Vec::new(),
        suspensions: Vec::new(),
        ratings: Vec::new(),
    };
    let mut in_force: Option<CivilDate> = None;
    for r in mine {
        match &r.event {
            Event::InstitutionDesignated { effective, .. } => {
                standing.designations.push(Dated { effective: *effective, seq: r.seq });
                in_force.get_or_insert(*effective);
            }
            Event::InstitutionTerminated { effective, .. } => {
                standing.terminations.push(Dated { effective: *effective, seq: r.seq });
                if let Some(from) = in_force.take() {
                    if *effective > from {
                        standing.agreements.push(DateInterval::new(from, Some(*effective)));
                    }
                }
            }
            Event::InstitutionSuspended { effective, until, .. } => standing
                .suspensions
                .push(AgreementSuspension { interval: DateInterval::new(*effective, Some(*until)), seq: r.seq }),
            Event::InstitutionRated { year, score, direct_e, .. } => {
                let grade = Grade::from_score(Score::new(*score).expect("validated score"), !direct_e.is_empty());
                let rating = Rating { year: *year, score: *score, direct_e: direct_e.clone(), grade, seq: r.seq };
                match standing.ratings.iter_mut().find(|x| x.year == *year) {
                    Some(existing) if existing.seq < r.seq => *existing = rating,
                    Some(_) => {}
                    None => standing.ratings.push(rating),
                }
            }
            _ => {}
        }
    }
    if let Some(from) = in_force {
        standing.agreements.push(DateInterval::new(from, None));
    }
    standing.ratings.sort_by_key(|r| r.year);
    standing
}
