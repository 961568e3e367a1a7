//! The JSON form of a claim line (SCENARIOS.md checks, and later the check
//! API): `{practitioner_id, institution_id, service_date, emergency}`.

use crate::json_fields::Fields;
use crate::refusal::Refusal;
use crate::rules::Claim;
use serde_json::Value;

/// Parses a claim line; a malformed field is `invalid_request` naming it (R4).
/// Other fields (`claim_id`, `expect`) are left to the caller.
pub fn parse_claim(value: &Value) -> Result<Claim, Refusal> {
    let f = Fields::of(value, "claim line")?;
    Ok(Claim {
        practitioner: f.practitioner("practitioner_id")?,
        institution: f.institution("institution_id")?,
        service_date: f.date("service_date")?,
        emergency: f.bool("emergency")?,
    })
}
