//! The JSON form of a claim line (SCENARIOS.md checks, and later the check
//! API): `{practitioner_id, institution_id, service_date, emergency}`.

use crate::json_fields::Fields;
use crate::refusal::Refusal;
use crate::rules::Claim;
use serde_json::Value;

/// Every field a claim line may carry: the claim itself, and what the check
/// API reads besides (`claim_id`, `min_seq`, `explain`).
pub const CLAIM_LINE_FIELDS: &[&str] =
    &["practitioner_id", "institution_id", "service_date", "emergency", "claim_id", "min_seq", "explain"];

/// Parses a claim line; a malformed field is `invalid_request` naming it, and
/// so is a field a claim line does not define (R4: a misspelt `minseq` must
/// never silently drop the read-your-writes wait). `claim_id`, `min_seq` and
/// `explain` are left to the caller.
pub fn parse_claim(value: &Value) -> Result<Claim, Refusal> {
    let f = Fields::of(value, "claim line")?;
    if let Some(unknown) = f.0.keys().find(|k| !CLAIM_LINE_FIELDS.contains(&k.as_str())) {
        return Err(Refusal::invalid(
            unknown,
            format!(
                "`{}` is not a field of a claim line (R4); its fields are {}",
                unknown.escape_debug(),
                CLAIM_LINE_FIELDS.join(", ")
            ),
        ));
    }
    Ok(Claim {
        practitioner: f.practitioner("practitioner_id")?,
        institution: f.institution("institution_id")?,
        service_date: f.date("service_date")?,
        emergency: f.bool("emergency")?,
    })
}
