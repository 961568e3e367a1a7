//! Ledger events (R7) and their JSON form (SCENARIOS.md).
//!
//! [`Event::parse`] accepts exactly the R7 shapes and refuses everything else
//! with `invalid_request` naming the field (R4). Bounds that R8 checks later in
//! its order (points band, suspension months, score, repair cap) are kept as
//! sent here and enforced by [`crate::validate`].

use crate::domain::{
    CivilDate, EventId, InstitutionCode, InsuredCause, InsuredId, PractitionerCode, Responsibility, Severity,
    SuspensionId, ViolationId, MAX_YEAR, MIN_YEAR,
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
    /// The source's reference for the decision (R7a), if it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
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
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<EventId>,
    },
    InstitutionSuspended {
        institution: InstitutionCode,
        effective: CivilDate,
        until: CivilDate,
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<EventId>,
    },
    InstitutionTerminated {
        institution: InstitutionCode,
        effective: CivilDate,
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<EventId>,
    },
    InstitutionRated {
        institution: InstitutionCode,
        year: i32,
        #[serde(serialize_with = "whole_or_fraction")]
        score: f64,
        direct_e: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<EventId>,
    },
    PractitionerRegistered {
        practitioner: PractitionerCode,
        institution: InstitutionCode,
        effective: CivilDate,
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<EventId>,
    },
    PractitionerDeregistered {
        practitioner: PractitionerCode,
        institution: InstitutionCode,
        effective: CivilDate,
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<EventId>,
    },
    ViolationScored(Violation),
    ViolationRevoked {
        violation_id: ViolationId,
        effective: CivilDate,
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<EventId>,
    },
    PointsRepaired {
        practitioner: PractitionerCode,
        points: u32,
        effective: CivilDate,
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<EventId>,
    },
    /// An insured person's direct settlement suspended for services dated
    /// in `[effective, until)` (R24); no `until`: until lifted.
    InsuredSettlementSuspended(InsuredSuspension),
    InsuredSettlementLifted {
        suspension_id: SuspensionId,
        effective: CivilDate,
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<EventId>,
    },
}

/// One suspension of an insured person's direct settlement (R7
/// `insured_settlement_suspended`, R24).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InsuredSuspension {
    pub suspension_id: SuspensionId,
    pub insured: InsuredId,
    pub cause: InsuredCause,
    pub effective: CivilDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<CivilDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
}

/// R4: an interval's `until` must be after its `effective`.
fn after_effective(until: CivilDate, effective: CivilDate) -> Result<(), Refusal> {
    if until <= effective {
        return Err(Refusal::invalid("until", format!("`until` ({until}) must be after `effective` ({effective})")));
    }
    Ok(())
}

fn whole_or_fraction<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        s.serialize_i64(*value as i64)
    } else {
        s.serialize_f64(*value)
    }
}

/// Every event kind (R7) and the fields it defines besides `type` and
/// `event_id` (R7a): anything else in an event is refused (R4).
const KINDS: &[(&str, &[&str])] = &[
    ("institution_designated", &["institution", "effective"]),
    ("institution_suspended", &["institution", "effective", "until"]),
    ("institution_terminated", &["institution", "effective"]),
    ("institution_rated", &["institution", "year", "score", "direct_e"]),
    ("practitioner_registered", &["practitioner", "institution", "effective"]),
    ("practitioner_deregistered", &["practitioner", "institution", "effective"]),
    (
        "violation_scored",
        &[
            "violation_id",
            "practitioner",
            "institution",
            "effective",
            "points",
            "severity",
            "responsibility",
            "suspension_months",
        ],
    ),
    ("violation_revoked", &["violation_id", "effective"]),
    ("points_repaired", &["practitioner", "points", "effective"]),
    ("insured_settlement_suspended", &["suspension_id", "insured", "cause", "effective", "until"]),
    ("insured_settlement_lifted", &["suspension_id", "effective"]),
];

/// Where an event being parsed comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Sent to be appended: every rule of R4 and R7a applies.
    Submitted,
    /// Read back from the ledger. A ledger written before RULES.md v2 holds
    /// repairs without `event_id` (v1 did not require one); they stay readable.
    Stored,
}

impl Event {
    /// Parses one event from JSON (R4, R7, R7a). A field the kind does not
    /// define is refused naming it (annotations such as a scenario's
    /// `expect_error` are the caller's to remove); `policy` supplies the
    /// known direct-E codes (R20).
    pub fn parse(value: &Value, policy: &Policy) -> Result<Event, Refusal> {
        Event::parse_from(value, policy, Origin::Submitted)
    }

    /// Parses an event read back from the ledger: as [`Event::parse`], but a
    /// repair stored before v2 made `event_id` required is still read. For the
    /// store only: a submitted event goes through [`Event::parse`].
    pub fn parse_stored(value: &Value, policy: &Policy) -> Result<Event, Refusal> {
        Event::parse_from(value, policy, Origin::Stored)
    }

    fn parse_from(value: &Value, policy: &Policy, origin: Origin) -> Result<Event, Refusal> {
        let f = Fields::of(value, "event")?;
        let kind = f.str("type")?;
        let Some((_, defined)) = KINDS.iter().find(|(k, _)| *k == kind) else {
            let known: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
            return Err(Refusal::invalid(
                "type",
                format!("unknown event type `{}`; the kinds are {}", crate::domain::echo(kind), known.join(", ")),
            ));
        };
        if let Some(unknown) =
            f.0.keys().find(|k| !matches!(k.as_str(), "type" | "event_id") && !defined.contains(&k.as_str()))
        {
            return Err(Refusal::invalid(
                unknown,
                format!(
                    "`{}` is not a field of {kind} (R4); its fields are type, event_id (optional), {}",
                    crate::domain::echo(unknown),
                    defined.join(", ")
                ),
            ));
        }
        let event_id = if f.has("event_id") { Some(f.parsed("event_id", EventId::parse)?) } else { None };
        Ok(match kind {
            "institution_designated" => Event::InstitutionDesignated {
                institution: f.institution("institution")?,
                effective: f.date("effective")?,
                event_id,
            },
            "institution_suspended" => {
                let institution = f.institution("institution")?;
                let effective = f.date("effective")?;
                let until = f.date("until")?;
                after_effective(until, effective)?;
                Event::InstitutionSuspended { institution, effective, until, event_id }
            }
            "institution_terminated" => Event::InstitutionTerminated {
                institution: f.institution("institution")?,
                effective: f.date("effective")?,
                event_id,
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
                Event::InstitutionRated { institution, year: year as i32, score, direct_e, event_id }
            }
            "practitioner_registered" | "practitioner_deregistered" => {
                let practitioner = f.practitioner("practitioner")?;
                let institution = f.institution("institution")?;
                let effective = f.date("effective")?;
                if kind == "practitioner_registered" {
                    Event::PractitionerRegistered { practitioner, institution, effective, event_id }
                } else {
                    Event::PractitionerDeregistered { practitioner, institution, effective, event_id }
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
                    event_id,
                })
            }
            "violation_revoked" => Event::ViolationRevoked {
                violation_id: f.parsed("violation_id", ViolationId::parse)?,
                effective: f.date("effective")?,
                event_id,
            },
            "points_repaired" => {
                if event_id.is_none() && origin == Origin::Submitted {
                    return Err(Refusal::invalid(
                        "event_id",
                        "a points_repaired event must carry an `event_id` (R7a): a repair has no other identity, \
                         and a retried repair without one would remove its points twice",
                    ));
                }
                let practitioner = f.practitioner("practitioner")?;
                let points = f.count("points")?;
                if points == 0 {
                    return Err(Refusal::invalid("points", "a repair must remove at least 1 point"));
                }
                Event::PointsRepaired { practitioner, points, effective: f.date("effective")?, event_id }
            }
            "insured_settlement_suspended" => {
                let suspension_id = f.parsed("suspension_id", SuspensionId::parse)?;
                let insured = f.parsed("insured", InsuredId::parse)?;
                let cause = InsuredCause::parse(f.str("cause")?).ok_or_else(|| {
                    Refusal::invalid("cause", "`cause` must be benefit_misuse or investigation (R24)")
                })?;
                let effective = f.date("effective")?;
                let until = match (f.has("until"), cause) {
                    (true, _) => Some(f.date("until")?),
                    (false, InsuredCause::Investigation) => None,
                    (false, InsuredCause::BenefitMisuse) => {
                        return Err(Refusal::invalid(
                            "until",
                            "a benefit_misuse suspension must carry `until` (R24: 3 to 12 months); only an \
                             investigation may run until lifted",
                        ))
                    }
                };
                if let Some(until) = until {
                    after_effective(until, effective)?;
                }
                Event::InsuredSettlementSuspended(InsuredSuspension {
                    suspension_id,
                    insured,
                    cause,
                    effective,
                    until,
                    event_id,
                })
            }
            "insured_settlement_lifted" => Event::InsuredSettlementLifted {
                suspension_id: f.parsed("suspension_id", SuspensionId::parse)?,
                effective: f.date("effective")?,
                event_id,
            },
            _ => unreachable!("every kind in KINDS is parsed above"),
        })
    }

    /// The source's reference for the event (R7a), if it carries one.
    pub fn event_id(&self) -> Option<&EventId> {
        match self {
            Event::InstitutionDesignated { event_id, .. }
            | Event::InstitutionSuspended { event_id, .. }
            | Event::InstitutionTerminated { event_id, .. }
            | Event::InstitutionRated { event_id, .. }
            | Event::PractitionerRegistered { event_id, .. }
            | Event::PractitionerDeregistered { event_id, .. }
            | Event::ViolationScored(Violation { event_id, .. })
            | Event::ViolationRevoked { event_id, .. }
            | Event::PointsRepaired { event_id, .. }
            | Event::InsuredSettlementSuspended(InsuredSuspension { event_id, .. })
            | Event::InsuredSettlementLifted { event_id, .. } => event_id.as_ref(),
        }
    }

    /// The kind named `text`, as [`Event::kind`] spells it, if it is one.
    pub fn kind_named(text: &str) -> Option<&'static str> {
        KINDS.iter().map(|(k, _)| *k).find(|k| *k == text)
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
            Event::InsuredSettlementSuspended(_) => "insured_settlement_suspended",
            Event::InsuredSettlementLifted { .. } => "insured_settlement_lifted",
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
            Event::ViolationRevoked { .. }
            | Event::PointsRepaired { .. }
            | Event::InsuredSettlementSuspended(_)
            | Event::InsuredSettlementLifted { .. } => None,
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

    /// The insured person the event names directly, if any (a lifting
    /// names its suspension; the ledger resolves the person from it).
    pub fn insured(&self) -> Option<&InsuredId> {
        match self {
            Event::InsuredSettlementSuspended(s) => Some(&s.insured),
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
            | Event::PointsRepaired { effective, .. }
            | Event::InsuredSettlementLifted { effective, .. } => *effective,
            Event::ViolationScored(v) => v.effective,
            Event::InsuredSettlementSuspended(s) => s.effective,
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
            json!({"type": "points_repaired", "event_id": "R-1", "practitioner": "D110105000001", "points": 4, "effective": "2026-03-01"}),
            json!({"type": "violation_revoked", "violation_id": "V2", "effective": "2026-04-01", "event_id": "京医保罚〔2025〕12号"}),
            json!({"type": "institution_designated", "institution": "H11010500001", "effective": "2024-01-01", "event_id": "D-1"}),
            json!({"type": "insured_settlement_suspended", "suspension_id": "S1", "insured": "44000012345678901234",
                   "cause": "benefit_misuse", "effective": "2026-03-01", "until": "2026-09-01"}),
            json!({"type": "insured_settlement_suspended", "suspension_id": "S4", "insured": "31A0000000000007",
                   "cause": "investigation", "effective": "2026-04-01", "event_id": "沪医保暂停〔2026〕4号"}),
            json!({"type": "insured_settlement_lifted", "suspension_id": "S4", "effective": "2026-06-15"}),
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
                json!({"type": "points_repaired", "practitioner": "D110105000001", "points": 0, "effective": "2026-03-01", "event_id": "R-1"}),
                "points",
            ),
            (
                json!({"type": "points_repaired", "practitioner": "D110105000001", "points": -2, "effective": "2026-03-01", "event_id": "R-1"}),
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

    /// One valid event of every kind, each with every field it defines.
    fn one_of_each_kind() -> Vec<Value> {
        vec![
            json!({"type": "institution_designated", "institution": "H11010500001", "effective": "2024-01-01"}),
            json!({"type": "institution_suspended", "institution": "H11010500001", "effective": "2026-07-01", "until": "2026-08-01"}),
            json!({"type": "institution_terminated", "institution": "P44030500012", "effective": "2026-09-01"}),
            json!({"type": "institution_rated", "institution": "H11010500001", "year": 2025, "score": 91, "direct_e": []}),
            json!({"type": "practitioner_registered", "practitioner": "D110105000001", "institution": "H11010500001", "effective": "2024-01-01"}),
            json!({"type": "practitioner_deregistered", "practitioner": "D110105000001", "institution": "H11010500001", "effective": "2025-01-01"}),
            json!({"type": "violation_scored", "violation_id": "V2", "practitioner": "D110105000001", "institution": "H11010500001",
                   "effective": "2026-03-10", "points": 3, "severity": "minor", "responsibility": "general", "suspension_months": 2}),
            json!({"type": "violation_revoked", "violation_id": "V1", "effective": "2026-04-01"}),
            json!({"type": "points_repaired", "event_id": "R-1", "practitioner": "D110105000001", "points": 4, "effective": "2026-03-01"}),
        ]
    }

    #[test]
    fn a_field_the_kind_does_not_define_is_refused_naming_it_for_every_kind_r4() {
        for value in one_of_each_kind() {
            assert!(parse(value.clone()).is_ok(), "{value}");
            // A misspelling, an annotation and another kind's field are all unknown.
            let borrowed = if value["type"] == "points_repaired" { "severity" } else { "until_date" };
            for unknown in ["suspension_month", "expect_error", "institution_code", borrowed] {
                if value.get(unknown).is_some() {
                    continue;
                }
                let mut bad = value.clone();
                bad[unknown] = json!(1);
                let refusal = parse(bad.clone()).unwrap_err();
                assert_eq!(refusal.code, RefusalCode::InvalidRequest, "{bad}");
                assert_eq!(refusal.field.as_deref(), Some(unknown), "{bad}: {refusal}");
            }
        }
    }

    #[test]
    fn a_misspelt_suspension_months_is_refused_never_defaulted_r4() {
        let refusal = parse(json!({"type": "violation_scored", "violation_id": "V3", "practitioner": "D110105000001",
            "institution": "H11010500001", "effective": "2026-03-20", "points": 9, "severity": "serious",
            "responsibility": "primary", "suspension_month": 1}))
        .unwrap_err();
        assert_eq!(refusal.field.as_deref(), Some("suspension_month"));
        assert!(refusal.message.contains("suspension_months"), "the message lists the kind's fields: {refusal}");
    }

    #[test]
    fn every_kind_takes_an_event_id_and_a_repair_requires_one_r7a() {
        for mut value in one_of_each_kind() {
            value["event_id"] = json!("京医保罚〔2025〕12号");
            let event = parse(value.clone()).unwrap();
            assert_eq!(event.event_id().map(EventId::as_str), Some("京医保罚〔2025〕12号"));
            for bad in [json!(""), json!("x".repeat(65)), json!("a\u{0}b"), json!(7)] {
                value["event_id"] = bad.clone();
                assert_eq!(parse(value.clone()).unwrap_err().field.as_deref(), Some("event_id"), "{bad}");
            }
        }
        let repair =
            json!({"type": "points_repaired", "practitioner": "D110105000001", "points": 2, "effective": "2026-03-01"});
        let refusal = parse(repair.clone()).unwrap_err();
        assert_eq!((refusal.code, refusal.field.as_deref()), (RefusalCode::InvalidRequest, Some("event_id")));
        // A repair a v1 ledger stored without one is still read back.
        assert!(Event::parse_stored(&repair, &Policy::default()).is_ok());
    }
}
