//! Ledger events (R7) and their JSON form (SCENARIOS.md).
//!
//! [`Event::parse`] accepts exactly the R7 shapes and refuses everything else
//! with `invalid_request` naming the field (R4). Bounds that R8 checks later in
//! its order (points band, suspension months, score, repair cap) are kept as
//! sent here and enforced by [`crate::rules::validate`].

use crate::domain::{
    CivilDate, InstitutionCode, PractitionerCode, Responsibility, Severity, ViolationId, MAX_YEAR, MIN_YEAR,
};
use crate::json_fields::Fields;
use crate::policy::Policy;
use crate::refusal::Refusal;
use serde::{Serialize, Serializer};
use serde_json::Value;

/// Most `direct_e` circumstance codes one rating may list.
pub const MAX_DIRECT_E_CODES: usize = 16;

/// One violation decision (R7 `violation_scored`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub violation_id: ViolationId,
    pub practitioner: PractitionerCode,
    pub institution: InstitutionCode,
    pub effective: CivilDate,
    pub points: u32,
    pub severity: Severity,
    pub responsibility: Responsibility,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspension_months: Option<u32>,
}

/// An accepted event with the `seq` the ledger gave it (R5).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub seq: crate::domain::Seq,
    pub event: Event,
}

/// A ledger event (R7). Field names and the `type` tag are the wire format.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    InstitutionDesignated {
        institution: InstitutionCode,
        effective: CivilDate,
    },
    InstitutionSuspended {
        institution: InstitutionCode,
        effective: CivilDate,
        until: CivilDate,
    },
    InstitutionTerminated {
        institution: InstitutionCode,
        effective: CivilDate,
    },
    InstitutionRated {
        institution: InstitutionCode,
        year: i32,
        #[serde(serialize_with = "whole_or_fraction")]
        score: f64,
        direct_e: Vec<String>,
    },
    PractitionerRegistered {
        practitioner: PractitionerCode,
        institution: InstitutionCode,
        effective: CivilDate,
    },
    PractitionerDeregistered {
        practitioner: PractitionerCode,
        institution: InstitutionCode,
        effective: CivilDate,
    },
    ViolationScored(Violation),
    ViolationRevoked {
        violation_id: ViolationId,
        effective: CivilDate,
    },
    PointsRepaired {
        practitioner: PractitionerCode,
        points: u32,
        effective: CivilDate,
    },
}

fn whole_or_fraction<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        s.serialize_i64(*value as i64)
    } else {
        s.serialize_f64(*value)
    }
}

impl Event {
    /// Parses one event from JSON (R4, R7). Unknown extra fields (`expect_error`,
    /// comments) are ignored; `policy` supplies the known direct-E codes (R20).
    pub fn parse(value: &Value, policy: &Policy) -> Result<Event, Refusal> {
        let f = Fields::of(value, "event")?;
        let kind = f.str("type")?;
        Ok(match kind {
            "institution_designated" => Event::InstitutionDesignated {
                institution: f.institution("institution")?,
                effective: f.date("effective")?,
            },
            "institution_suspended" => {
                let institution = f.institution("institution")?;
                let effective = f.date("effective")?;
                let until = f.date("until")?;
                if until <= effective {
                    return Err(Refusal::invalid(
                        "until",
                        format!("`until` ({until}) must be after `effective` ({effective})"),
                    ));
                }
                Event::InstitutionSuspended { institution, effective, until }
            }
            "institution_terminated" => Event::InstitutionTerminated {
                institution: f.institution("institution")?,
                effective: f.date("effective")?,
            },
            "institution_rated" => {
                let institution = f.institution("institution")?;
                let year = f.count("year")?;
                if !(MIN_YEAR as u32..=MAX_YEAR as u32).contains(&year) {
                    return Err(Refusal::invalid("year", format!("`year` must be {MIN_YEAR} to {MAX_YEAR}")));
                }
                let score = f.number("score")?;
                let listed = f.array("direct_e")?;
                if listed.len() > MAX_DIRECT_E_CODES {
                    return Err(Refusal::invalid("direct_e", format!("at most {MAX_DIRECT_E_CODES} codes")));
                }
                let mut direct_e = Vec::with_capacity(listed.len());
                for code in listed {
                    match code.as_str() {
                        Some(c) if policy.is_direct_e_code(c) => direct_e.push(c.to_owned()),
                        _ => {
                            return Err(Refusal::invalid(
                                "direct_e",
                                format!(
                                    "unknown circumstance code {code}; known: {}",
                                    policy.direct_e_codes.join(", ")
                                ),
                            ))
                        }
                    }
                }
                Event::InstitutionRated { institution, year: year as i32, score, direct_e }
            }
            "practitioner_registered" | "practitioner_deregistered" => {
                let practitioner = f.practitioner("practitioner")?;
                let institution = f.institution("institution")?;
                let effective = f.date("effective")?;
                if kind == "practitioner_registered" {
                    Event::PractitionerRegistered { practitioner, institution, effective }
                } else {
                    Event::PractitionerDeregistered { practitioner, institution, effective }
                }
            }
            "violation_scored" => {
                let violation_id = f.parsed("violation_id", ViolationId::parse)?;
                let practitioner = f.practitioner("practitioner")?;
                let institution = f.institution("institution")?;
                let effective = f.date("effective")?;
                let points = f.count("points")?;
                let severity = Severity::parse(f.str("severity")?).ok_or_else(|| {
                    Refusal::invalid("severity", "`severity` must be minor, moderate, serious or fraud")
                })?;
                let responsibility = Responsibility::parse(f.str("responsibility")?).ok_or_else(|| {
                    Refusal::invalid("responsibility", "`responsibility` must be primary, important or general")
                })?;
                let suspension_months =
                    if f.has("suspension_months") { Some(f.count("suspension_months")?) } else { None };
                Event::ViolationScored(Violation {
                    violation_id,
                    practitioner,
                    institution,
                    effective,
                    points,
                    severity,
                    responsibility,
                    suspension_months,
                })
            }
            "violation_revoked" => Event::ViolationRevoked {
                violation_id: f.parsed("violation_id", ViolationId::parse)?,
                effective: f.date("effective")?,
            },
            "points_repaired" => {
                let practitioner = f.practitioner("practitioner")?;
                let points = f.count("points")?;
                if points == 0 {
                    return Err(Refusal::invalid("points", "a repair must remove at least 1 point"));
                }
                Event::PointsRepaired { practitioner, points, effective: f.date("effective")? }
            }
            other => return Err(Refusal::invalid("type", format!("unknown event type `{}`", other.escape_debug()))),
        })
    }

    /// The wire name of the event's type.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::InstitutionDesignated { .. } => "institution_designated",
            Event::InstitutionSuspended { .. } => "institution_suspended",
            Event::InstitutionTerminated { .. } => "institution_terminated",
            Event::InstitutionRated { .. } => "institution_rated",
            Event::PractitionerRegistered { .. } => "practitioner_registered",
            Event::PractitionerDeregistered { .. } => "practitioner_deregistered",
            Event::ViolationScored(_) => "violation_scored",
            Event::ViolationRevoked { .. } => "violation_revoked",
            Event::PointsRepaired { .. } => "points_repaired",
        }
    }

    /// The institution the event names, if any.
    pub fn institution(&self) -> Option<InstitutionCode> {
        match self {
            Event::InstitutionDesignated { institution, .. }
            | Event::InstitutionSuspended { institution, .. }
            | Event::InstitutionTerminated { institution, .. }
            | Event::InstitutionRated { institution, .. }
            | Event::PractitionerRegistered { institution, .. }
            | Event::PractitionerDeregistered { institution, .. } => Some(*institution),
            Event::ViolationScored(v) => Some(v.institution),
            Event::ViolationRevoked { .. } | Event::PointsRepaired { .. } => None,
        }
    }

    /// The practitioner the event names directly, if any (a revocation names
    /// its violation; the ledger resolves the practitioner from it).
    pub fn practitioner(&self) -> Option<PractitionerCode> {
        match self {
            Event::PractitionerRegistered { practitioner, .. }
            | Event::PractitionerDeregistered { practitioner, .. }
            | Event::PointsRepaired { practitioner, .. } => Some(*practitioner),
            Event::ViolationScored(v) => Some(v.practitioner),
            _ => None,
        }
    }

    /// The date the event takes effect (R6 ordering). A rating has none; it
    /// orders at 1 January of its year.
    pub fn effective(&self) -> CivilDate {
        match self {
            Event::InstitutionDesignated { effective, .. }
            | Event::InstitutionSuspended { effective, .. }
            | Event::InstitutionTerminated { effective, .. }
            | Event::PractitionerRegistered { effective, .. }
            | Event::PractitionerDeregistered { effective, .. }
            | Event::ViolationRevoked { effective, .. }
            | Event::PointsRepaired { effective, .. } => *effective,
            Event::ViolationScored(v) => v.effective,
            Event::InstitutionRated { year, .. } => {
                CivilDate::first_of_year(*year).expect("rating year validated on parse")
            }
        }
    }

    /// The canonical JSON of the event, as stored and as served.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusal::RefusalCode;
    use serde_json::json;

    fn parse(v: Value) -> Result<Event, Refusal> {
        Event::parse(&v, &Policy::default())
    }

    #[test]
    fn every_r7_kind_round_trips_through_its_json() {
        let events = [
            json!({"type": "institution_designated", "institution": "H11010500001", "effective": "2024-01-01"}),
            json!({"type": "institution_suspended", "institution": "H11010500001", "effective": "2026-07-01", "until": "2026-08-01"}),
            json!({"type": "institution_terminated", "institution": "P44030500012", "effective": "2026-09-01"}),
            json!({"type": "institution_rated", "institution": "H11010500001", "year": 2025, "score": 91, "direct_e": []}),
            json!({"type": "institution_rated", "institution": "H11010500001", "year": 2025, "score": 59.5, "direct_e": ["refused_rectification"]}),
            json!({"type": "practitioner_registered", "practitioner": "D110105000001", "institution": "H11010500001", "effective": "2024-01-01"}),
            json!({"type": "practitioner_deregistered", "practitioner": "D110105000001", "institution": "H11010500001", "effective": "2025-01-01"}),
            json!({"type": "violation_scored", "violation_id": "V1", "practitioner": "D110105000001", "institution": "H11010500001",
                   "effective": "2026-03-10", "points": 9, "severity": "serious", "responsibility": "primary"}),
            json!({"type": "violation_scored", "violation_id": "V2", "practitioner": "D110105000001", "institution": "H11010500001",
                   "effective": "2026-03-10", "points": 3, "severity": "minor", "responsibility": "general", "suspension_months": 2}),
            json!({"type": "violation_revoked", "violation_id": "V1", "effective": "2026-04-01"}),
            json!({"type": "points_repaired", "practitioner": "D110105000001", "points": 4, "effective": "2026-03-01"}),
        ];
        for value in events {
            let event = parse(value.clone()).unwrap();
            let back: Value = serde_json::from_str(&event.to_json()).unwrap();
            assert_eq!(back, value);
            assert_eq!(parse(back).unwrap(), event);
        }
    }

    #[test]
    fn malformed_events_name_the_field_r4() {
        let cases = [
            (json!("not an object"), ""),
            (json!({"institution": "H11010500001"}), "type"),
            (json!({"type": "institution_exploded", "institution": "H11010500001"}), "type"),
            (
                json!({"type": "institution_designated", "institution": "h11010500001", "effective": "2024-01-01"}),
                "institution",
            ),
            (
                json!({"type": "institution_designated", "institution": "H11010500001", "effective": "2024-02-30"}),
                "effective",
            ),
            (json!({"type": "institution_designated", "institution": "H11010500001"}), "effective"),
            (
                json!({"type": "institution_suspended", "institution": "H11010500001", "effective": "2026-07-01", "until": "2026-07-01"}),
                "until",
            ),
            (
                json!({"type": "violation_scored", "violation_id": "V1", "practitioner": "D110105000001", "institution": "H11010500001",
                    "effective": "2026-03-10", "points": 9, "severity": "grave", "responsibility": "primary"}),
                "severity",
            ),
            (
                json!({"type": "violation_scored", "violation_id": "V1", "practitioner": "D110105000001", "institution": "H11010500001",
                    "effective": "2026-03-10", "points": 9, "severity": "serious", "responsibility": "boss"}),
                "responsibility",
            ),
            (
                json!({"type": "violation_scored", "violation_id": "V1", "practitioner": "D110105000001", "institution": "H11010500001",
                    "effective": "2026-03-10", "points": 8.5, "severity": "serious", "responsibility": "primary"}),
                "points",
            ),
            (
                json!({"type": "violation_scored", "violation_id": "", "practitioner": "D110105000001", "institution": "H11010500001",
                    "effective": "2026-03-10", "points": 8, "severity": "serious", "responsibility": "primary"}),
                "violation_id",
            ),
            (
                json!({"type": "institution_rated", "institution": "H11010500001", "year": 2025, "score": 91, "direct_e": ["bribed_auditor"]}),
                "direct_e",
            ),
            (
                json!({"type": "institution_rated", "institution": "H11010500001", "year": 2025, "score": "91", "direct_e": []}),
                "score",
            ),
            (
                json!({"type": "points_repaired", "practitioner": "D110105000001", "points": 0, "effective": "2026-03-01"}),
                "points",
            ),
            (
                json!({"type": "points_repaired", "practitioner": "D110105000001", "points": -2, "effective": "2026-03-01"}),
                "points",
            ),
        ];
        for (value, field) in cases {
            let refusal = parse(value.clone()).unwrap_err();
            assert_eq!(refusal.code, RefusalCode::InvalidRequest, "{value}");
            let expected = if field.is_empty() { None } else { Some(field) };
            assert_eq!(refusal.field.as_deref(), expected, "{value}: {refusal}");
        }
    }

    #[test]
    fn annotation_fields_are_ignored() {
        let e = parse(json!({"type": "institution_designated", "institution": "H11010500001",
                             "effective": "2024-01-01", "expect_error": "x", "comment": "y"}));
        assert!(e.is_ok());
    }
}
