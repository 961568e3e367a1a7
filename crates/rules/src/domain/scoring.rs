//! The scoring vocabulary of R9: severity bands and responsibility.

use serde::Serialize;
use std::ops::RangeInclusive;

/// Severity of a violation; each band allows a range of points (R9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Minor,
    Moderate,
    Serious,
    Fraud,
}

impl Severity {
    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<Severity> {
        Some(match text {
            "minor" => Severity::Minor,
            "moderate" => Severity::Moderate,
            "serious" => Severity::Serious,
            "fraud" => Severity::Fraud,
            _ => return None,
        })
    }

    /// The points this band allows (R9).
    pub fn band(self) -> RangeInclusive<u32> {
        match self {
            Severity::Minor => 1..=3,
            Severity::Moderate => 4..=6,
            Severity::Serious => 7..=9,
            Severity::Fraud => 10..=12,
        }
    }
}

/// The scored person's responsibility for a violation (R9); recorded, not
/// used to recompute points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Responsibility {
    Primary,
    Important,
    General,
}

impl Responsibility {
    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<Responsibility> {
        Some(match text {
            "primary" => Responsibility::Primary,
            "important" => Responsibility::Important,
            "general" => Responsibility::General,
            _ => return None,
        })
    }
}

/// Why an insured person's direct settlement is suspended (R24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InsuredCause {
    /// Lending one's credential, claiming twice, reselling drugs, taking
    /// cash or goods back: 3 to 12 months.
    BenefitMisuse,
    /// Suspected fraud and a refusal to cooperate with the investigation:
    /// no fixed length, until lifted if `until` is absent.
    Investigation,
}

impl InsuredCause {
    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<InsuredCause> {
        Some(match text {
            "benefit_misuse" => InsuredCause::BenefitMisuse,
            "investigation" => InsuredCause::Investigation,
            _ => return None,
        })
    }

    /// The months a suspension for this cause must last, if it has a
    /// fixed range (R24: benefit misuse 3 to 12).
    pub fn months(self) -> Option<RangeInclusive<u32>> {
        match self {
            InsuredCause::BenefitMisuse => Some(3..=12),
            InsuredCause::Investigation => None,
        }
    }
}
