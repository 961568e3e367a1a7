//! Institution credit: annual scores, grades (R20) and what a grade means for
//! a check answer (R21).

use serde::{Serialize, Serializer};

/// An annual credit score, 0 to 100 inclusive (R20). Fractional scores are
/// allowed; grade boundaries are `>=` comparisons.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Score(f64);

impl Score {
    /// A score, if it is a finite number in 0..=100.
    pub fn new(value: f64) -> Option<Score> {
        (value.is_finite() && (0.0..=100.0).contains(&value)).then_some(Score(value))
    }

    /// The numeric value.
    pub fn value(self) -> f64 {
        self.0
    }
}

impl Serialize for Score {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Whole scores print as integers so stored events read as they were sent.
        if self.0.fract() == 0.0 {
            s.serialize_u64(self.0 as u64)
        } else {
            s.serialize_f64(self.0)
        }
    }
}

/// Credit grade (R20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Grade {
    A,
    B,
    C,
    D,
    E,
}

impl Grade {
    /// The grade for a score; any direct-E circumstance makes it `E` (R20).
    pub fn from_score(score: Score, has_direct_e: bool) -> Grade {
        let s = score.value();
        match () {
            _ if has_direct_e => Grade::E,
            _ if s >= 90.0 => Grade::A,
            _ if s >= 80.0 => Grade::B,
            _ if s >= 70.0 => Grade::C,
            _ if s >= 60.0 => Grade::D,
            _ => Grade::E,
        }
    }
}

/// Inspection intensity implied by a grade (R21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Inspection {
    Reduced,
    Normal,
    Increased,
}

/// What an institution's latest grade adds to a check answer (R21). The grade
/// never changes the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CreditNotice {
    pub institution_grade: Option<Grade>,
    pub advance_payment_withheld: bool,
    pub inspection: Inspection,
}

impl CreditNotice {
    /// The notice for an institution's latest grade, if it was ever rated.
    pub fn for_grade(grade: Option<Grade>) -> CreditNotice {
        CreditNotice {
            institution_grade: grade,
            advance_payment_withheld: grade == Some(Grade::E),
            inspection: match grade {
                Some(Grade::A) => Inspection::Reduced,
                Some(Grade::E) => Inspection::Increased,
                _ => Inspection::Normal,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_follow_score_bands_and_direct_e_r20() {
        let g = |s: f64, e: bool| Grade::from_score(Score::new(s).unwrap(), e);
        assert_eq!(g(100.0, false), Grade::A);
        assert_eq!(g(90.0, false), Grade::A);
        assert_eq!(g(89.9, false), Grade::B);
        assert_eq!(g(80.0, false), Grade::B);
        assert_eq!(g(79.5, false), Grade::C);
        assert_eq!(g(60.0, false), Grade::D);
        assert_eq!(g(59.99, false), Grade::E);
        assert_eq!(g(0.0, false), Grade::E);
        assert_eq!(g(95.0, true), Grade::E);
        assert!(Score::new(100.5).is_none() && Score::new(-1.0).is_none() && Score::new(f64::NAN).is_none());
    }

    #[test]
    fn notices_follow_r21() {
        let e = CreditNotice::for_grade(Some(Grade::E));
        assert!(e.advance_payment_withheld);
        assert_eq!(e.inspection, Inspection::Increased);
        let a = CreditNotice::for_grade(Some(Grade::A));
        assert!(!a.advance_payment_withheld);
        assert_eq!(a.inspection, Inspection::Reduced);
        assert_eq!(CreditNotice::for_grade(None).inspection, Inspection::Normal);
        assert_eq!(CreditNotice::for_grade(Some(Grade::C)).inspection, Inspection::Normal);
    }
}
