//! The law of RULES.md as pure functions: no I/O, no clock.
//!
//! Data flow: accepted ledger events → [`practitioner::derive`] and
//! [`institution::derive`] (R9–R16, R20) → standings → [`check::decide`]
//! (R17–R19). [`validate`] decides whether a new event may be appended (R8),
//! reading the ledger only through the narrow [`validate::LedgerFacts`] trait.
//! Derived state depends on events ordered by (`effective`, `seq`) only (R6).

pub mod check;
pub mod file;
pub mod institution;
pub mod practitioner;
pub mod validate;
mod world;

pub use check::{decide, Claim, Decision, InstitutionOnDate, PractitionerOnDate, Reason, Verdict, Waivers};
pub use institution::InstitutionStanding;
pub use practitioner::{PractitionerStanding, Sanction, SanctionKind};
pub use world::{histories, Histories, World};
