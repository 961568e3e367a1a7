//! claimgate: the claim-settlement gate for China's medical-insurance
//! practitioner scoring. See ARCHITECTURE.md for the map; RULES.md (R1–R25)
//! for the law it enforces.
//!
//! This crate is the binary (`src/main.rs`, one function per command), the
//! conformance runner ([`scenario`]) and the demo (`src/demo.rs`); the layers are
//! crates of their own, each depending only on those above it, and are
//! re-exported here under the names the tests, benches and tools use:
//! - [`rules`] (`claimgate-rules`): [`domain`], [`event`], [`refusal`],
//!   [`policy`], [`claim`], [`strict_json`] and the pure law. No I/O.
//! - [`ledger`], [`data_dir`], [`data_lock`] (`claimgate-store`): the
//!   authoritative ledger (R5) and the data directory.
//! - [`audit`] (`claimgate-audit`): the decision log (R19).
//! - [`index`] (`claimgate-index`): the eligibility index.
//! - [`server`], [`clock`] (`claimgate-gate`): the HTTP gate and the one clock.
//! - [`population`] (`claimgate-population`): synthetic data for the demo,
//!   benches and load tests only.

pub use claimgate_audit as audit;
pub use claimgate_gate as server;
pub use claimgate_gate::clock;
pub use claimgate_index as index;
pub use claimgate_population as population;
pub use claimgate_rules as rules;
pub use claimgate_rules::{claim, domain, event, policy, refusal, strict_json};
pub use claimgate_store::{changes, data_dir, data_lock, ledger, transfer};

pub mod scenario;
