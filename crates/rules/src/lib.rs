//! The law of RULES.md as pure functions: no I/O, no clock. The bottom
//! layer of claimgate: everything else depends on it, it on nothing that
//! reads a file, a socket or the time (`.ci/check-layers` keeps it so).
//!
//! Vocabulary: [`domain`] (values that cannot be invalid: codes R1, R2, dates
//! R3, grades R20), [`event`] (the R7 events, R4 parsing), [`refusal`] (R8's
//! codes), [`policy`] (R13, R14, R20 choices and the named constants),
//! [`claim`] (a claim line's JSON form), [`strict_json`] (JSON that names no
//! key twice, R4).
//!
//!
//! Data flow: accepted ledger events → [`practitioner::derive`] and
//! [`institution::derive`] (R9–R16, R20) → standings → [`check::decide`]
//! (R17–R19). [`validate`] decides whether a new event may be appended (R8),
//! reading the ledger only through the narrow [`validate::LedgerFacts`] trait.
//! Derived state depends on events ordered by (`effective`, `seq`) only (R6).

pub mod changes;
pub mod check;
pub mod claim;
pub mod domain;
pub mod event;
pub mod file;
pub mod institution;
mod json_fields;
pub mod policy;
pub mod practitioner;
pub mod refusal;
pub mod strict_json;
pub mod validate;
mod world;

pub use check::{decide, Claim, Decision, InstitutionOnDate, PractitionerOnDate, Reason, Verdict, Waivers};
pub use institution::InstitutionStanding;
pub use practitioner::{PractitionerStanding, Sanction, SanctionKind};
pub use world::{filed_under, histories, Filed, Histories, World};
