//! One decision as the log keeps it (R19): the claim line, the answer and
//! the index `seq` it was made at. `claim_id` is kept as the JSON value the
//! client sent (a number stays a number).

use claimgate_rules::claim::ClaimRefs;
use claimgate_rules::{Reason, Verdict};
use serde::{Deserialize, Serialize};

/// One audited decision: a reject or an emergency exemption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Position in the log, consecutive from 1; given by the writer.
    pub id: u64,
    /// When the decision was made, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The index version the decision was made at.
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<serde_json::Value>,
    pub practitioner_id: String,
    pub institution_id: String,
    pub service_date: String,
    pub emergency: bool,
    pub verdict: Verdict,
    /// Never `ok`: `ok` lines are not recorded (a record that says so is
    /// refused as damaged when read back).
    pub reason: Reason,
    /// The sanctions an exemption waived (R19), in R18 order.
    pub waived: Vec<Reason>,
    /// The platform's references the line carried (`mdtrt_id`, `setl_id`,
    /// `feedetl_sn`), for the re-settlement list.
    #[serde(default, skip_serializing_if = "ClaimRefs::is_empty")]
    pub refs: ClaimRefs,
}

impl AuditRecord {
    /// Whether this record waived a sanction (R19): its answer settles, so
    /// it must be durable before it is given.
    pub fn is_exemption(&self) -> bool {
        self.reason == Reason::EmergencyExemption
    }

    /// The key `claim_id` is indexed and matched by: the JSON text of the
    /// value (`"L1"` with its quotes, `42` without).
    pub fn claim_key(&self) -> Option<String> {
        self.claim_id.as_ref().map(|v| v.to_string())
    }
}

/// The keys a `claim_id=` filter matches: a string claim with that text, or
/// a numeric claim written the same way.
pub fn claim_keys(filter: &str) -> [String; 2] {
    let as_string = serde_json::Value::String(filter.to_owned()).to_string();
    let as_number = match serde_json::from_str::<serde_json::Value>(filter) {
        Ok(v @ serde_json::Value::Number(_)) => v.to_string(),
        _ => as_string.clone(),
    };
    [as_string, as_number]
}
