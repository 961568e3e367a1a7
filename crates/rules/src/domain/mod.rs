//! Domain values that cannot hold invalid states: identifiers (R1, R2), civil
//! dates and intervals (R3), scoring vocabulary (R9) and credit grades (R20).
//!
//! Everything here is pure: parsing gives a [`FieldError`] naming what was
//! wrong, and higher layers turn it into the R8 error `invalid_request`.

mod codes;
mod credit;
mod date;
mod echo;
mod scoring;

pub use codes::{
    EventId, InstitutionCode, InsuredId, PractitionerCode, SuspensionId, ViolationId, MAX_INSURED_CHARS,
    MAX_REFERENCE_CHARS,
};
pub use credit::{CreditNotice, Grade, Inspection, Score};
pub use date::{CivilDate, DateInterval, MAX_YEAR, MIN_YEAR};
pub use echo::{echo, MAX_ECHO_CHARS};
pub use scoring::{InsuredCause, Responsibility, Severity};

/// Why a single value failed to parse. The caller knows the field name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError(pub String);

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Ledger sequence number (R5): strictly increasing, assigned on acceptance.
pub type Seq = u64;
