//! claimgate: the claim-settlement gate for China's medical-insurance
//! practitioner scoring. See ARCHITECTURE.md for the map; RULES.md (R1–R22)
//! for the law this crate enforces.
//!
//! Layers, each depending only on those above it:
//! - [`domain`]: values that cannot be invalid (codes, dates, grades).
//! - [`event`], [`refusal`], [`policy`]: the ledger's vocabulary (R7, R8).
//! - [`rules`]: pure derivation, validation and the claim check.
//! - [`ledger`]: the authoritative, append-only event store (R5).
//! - [`audit`]: the decision log (R19), recorded before answered.
//! - [`data_lock`], [`data_dir`]: one writing process per data directory; a lost ledger is never recreated empty.
//! - [`scenario`]: the conformance runner behind `claimgate replay`.
//! - [`strict_json`]: JSON that names no key twice (R4), for every boundary.

pub mod audit;
pub mod claim;
pub mod clock;
pub mod data_dir;
pub mod data_lock;
pub mod domain;
pub mod event;
pub mod index;
mod json_fields;
pub mod ledger;
pub mod policy;
pub mod population;
pub mod refusal;
pub mod rules;
pub mod scenario;
pub mod server;
pub mod strict_json;
mod thread_priority;
