//! Why the ledger refused an event: the named errors of R8, in R8's order.
//!
//! This is the error type of the validation boundary. A refusal changes
//! nothing; its `code` is the wire name clients match on.

use serde::Serialize;
use std::fmt;

/// The R8 error codes, declared in the order validation checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// R4: a missing or malformed field, unknown type or code, empty interval.
    InvalidRequest,
    /// An `event_id` already accepted with different content (R7a).
    DuplicateEvent,
    /// An event naming an institution never designated.
    UnknownInstitution,
    /// A deregistration, violation or repair for a code never registered.
    UnknownPractitioner,
    /// Points outside the severity band (R9).
    PointsOutOfBand,
    /// `suspension_months` not 1-6 (R14).
    InvalidSuspensionMonths,
    /// An insured person's suspension whose `until` is outside what its
    /// cause allows (R24).
    InvalidSuspensionPeriod,
    /// A revocation of a violation id never scored.
    UnknownViolation,
    /// A second revocation of one violation.
    AlreadyRevoked,
    /// A lifting of a suspension id never suspended (R24).
    UnknownSuspension,
    /// A second lifting of one suspension (R24).
    AlreadyLifted,
    /// A violation id already used for different content.
    DuplicateViolation,
    /// A suspension id already used for different content (R7a).
    DuplicateSuspension,
    /// A registration dated inside a termination ban (R15).
    RegistrationBanned,
    /// A credit score outside 0-100 (R20).
    InvalidScore,
    /// A repair that would pass the yearly cap (R13).
    RepairLimitExceeded,
}

impl RefusalCode {
    /// Every code, in R8's order.
    pub const ALL: [RefusalCode; 16] = [
        RefusalCode::InvalidRequest,
        RefusalCode::DuplicateEvent,
        RefusalCode::UnknownInstitution,
        RefusalCode::UnknownPractitioner,
        RefusalCode::PointsOutOfBand,
        RefusalCode::InvalidSuspensionMonths,
        RefusalCode::InvalidSuspensionPeriod,
        RefusalCode::UnknownViolation,
        RefusalCode::AlreadyRevoked,
        RefusalCode::UnknownSuspension,
        RefusalCode::AlreadyLifted,
        RefusalCode::DuplicateViolation,
        RefusalCode::DuplicateSuspension,
        RefusalCode::RegistrationBanned,
        RefusalCode::InvalidScore,
        RefusalCode::RepairLimitExceeded,
    ];

    /// The code a wire name names, if any (an answer read back from a gate).
    pub fn from_wire(name: &str) -> Option<RefusalCode> {
        RefusalCode::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The wire name, e.g. `duplicate_violation`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::InvalidRequest => "invalid_request",
            RefusalCode::DuplicateEvent => "duplicate_event",
            RefusalCode::UnknownInstitution => "unknown_institution",
            RefusalCode::UnknownPractitioner => "unknown_practitioner",
            RefusalCode::PointsOutOfBand => "points_out_of_band",
            RefusalCode::InvalidSuspensionMonths => "invalid_suspension_months",
            RefusalCode::InvalidSuspensionPeriod => "invalid_suspension_period",
            RefusalCode::UnknownViolation => "unknown_violation",
            RefusalCode::AlreadyRevoked => "already_revoked",
            RefusalCode::UnknownSuspension => "unknown_suspension",
            RefusalCode::AlreadyLifted => "already_lifted",
            RefusalCode::DuplicateViolation => "duplicate_violation",
            RefusalCode::DuplicateSuspension => "duplicate_suspension",
            RefusalCode::RegistrationBanned => "registration_banned",
            RefusalCode::InvalidScore => "invalid_score",
            RefusalCode::RepairLimitExceeded => "repair_limit_exceeded",
        }
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused event: the code, the field at fault if one is, and a sentence
/// for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    #[serde(rename = "error")]
    pub code: RefusalCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every field at fault, `field` first: one unless a claim line had
    /// several faults (it names them all in one answer, R4); empty when the
    /// refusal is not about a field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    pub message: String,
}

impl Refusal {
    /// A refusal not tied to one field.
    pub fn new(code: RefusalCode, message: impl Into<String>) -> Refusal {
        Refusal { code, field: None, fields: Vec::new(), message: message.into() }
    }

    /// A refusal naming the field at fault.
    pub fn at(code: RefusalCode, field: &str, message: impl Into<String>) -> Refusal {
        // A field named by the client (an unknown key) is quoted, bounded.
        let field = crate::domain::echo(field);
        Refusal { code, field: Some(field.clone()), fields: vec![field], message: message.into() }
    }

    /// `invalid_request` for a field (R4).
    pub fn invalid(field: &str, message: impl Into<String>) -> Refusal {
        Refusal::at(RefusalCode::InvalidRequest, field, message)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(_) if self.fields.len() > 1 => {
                write!(f, "{} (fields `{}`): {}", self.code, self.fields.join("`, `"), self.message)
            }
            Some(field) => write!(f, "{} (field `{field}`): {}", self.code, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for Refusal {}
