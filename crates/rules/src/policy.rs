//! Provincial policy: the choices RULES.md marks **policy** (R13, R14, R20).
//!
//! A policy is fixed for a deployment: the ledger's validation and the rules
//! derivation must use the same one, or the index would disagree with what the
//! ledger accepted.

use serde::{Deserialize, Serialize};

/// Longest suspension the rules allow, in months (R14).
pub const MAX_SUSPENSION_MONTHS: u32 = 6;
/// Year total that suspends (R14).
pub const SUSPENSION_THRESHOLD: u32 = 9;
/// Year total that terminates (R15).
pub const TERMINATION_THRESHOLD: u32 = 12;
/// Points of a single violation that make the ban three years (R15).
pub const SINGLE_INCIDENT_POINTS: u32 = 12;
/// Ban after an accumulated termination, in years (R15).
pub const BAN_YEARS: u32 = 1;
/// Ban after a single-incident termination, in years (R15).
pub const SINGLE_INCIDENT_BAN_YEARS: u32 = 3;
/// Largest repair cap a policy may set, points per year (R13).
pub const MAX_REPAIR_CAP: u32 = 12;

/// The configurable parts of the rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Suspension months when a violation raises the year total to 9, 10 and
    /// 11 and names no `suspension_months` (R14; default 2, 4, 6).
    pub suspension_months_at_total: [u32; 3],
    /// Most points repairable per practitioner per calendar year (R13; default 6).
    pub repair_cap_per_year: u32,
    /// Circumstance codes that make a grade E (R20).
    pub direct_e_codes: Vec<String>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            suspension_months_at_total: [2, 4, 6],
            repair_cap_per_year: 6,
            direct_e_codes: [
                "agreement_terminated_for_violation",
                "suspended_two_consecutive_years",
                "refused_rectification",
                "obstructed_inspection",
                "falsified_credit_information",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy file {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

impl Policy {
    /// Suspension months for a violation that raised the total to `total`
    /// (9..=11) and named none itself (R14).
    pub fn default_suspension_months(&self, total: u32) -> u32 {
        assert!((SUSPENSION_THRESHOLD..TERMINATION_THRESHOLD).contains(&total));
        self.suspension_months_at_total[(total - SUSPENSION_THRESHOLD) as usize]
    }

    /// Whether `code` is a known direct-E circumstance (R20).
    pub fn is_direct_e_code(&self, code: &str) -> bool {
        self.direct_e_codes.iter().any(|c| c == code)
    }

    /// Checks the policy's own bounds.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(m) = self.suspension_months_at_total.iter().find(|m| !(1..=MAX_SUSPENSION_MONTHS).contains(m)) {
            return Err(format!(
                "suspension_months_at_total has {m}; each entry must be 1 to {MAX_SUSPENSION_MONTHS} (R14)"
            ));
        }
        if self.repair_cap_per_year > MAX_REPAIR_CAP {
            return Err(format!("repair_cap_per_year must be at most {MAX_REPAIR_CAP}"));
        }
        if self.direct_e_codes.iter().any(|c| c.is_empty() || !c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')) {
            return Err("direct_e_codes must be non-empty snake_case names".into());
        }
        Ok(())
    }

    /// Parses a policy file's text (`shown` names it in errors); absent keys
    /// keep their defaults, unknown or repeated ones are refused. Pure: the
    /// caller reads the file (the rules do no I/O).
    pub fn parse(text: &str, shown: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = serde_json::from_str(text)
            .map_err(|e| PolicyError::Invalid { path: shown.to_owned(), message: e.to_string() })?;
        policy.validate().map_err(|message| PolicyError::Invalid { path: shown.to_owned(), message })?;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy file is read by serde's derive with `deny_unknown_fields`,
    /// which already refuses a key named twice and a misspelt one (R4), so
    /// it needs no strict_json pass of its own.
    #[test]
    fn a_policy_file_naming_a_key_twice_or_an_unknown_key_is_refused() {
        for (text, says) in [
            (r#"{"repair_cap_per_year": 6, "repair_cap_per_year": 12}"#, "duplicate field `repair_cap_per_year`"),
            (r#"{"repair_cap_per_yer": 12}"#, "unknown field `repair_cap_per_yer`"),
        ] {
            let error = Policy::parse(text, "policy.json").unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
