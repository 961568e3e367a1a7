//! The storage layer: the authoritative, append-only event ledger (R5) behind
//! one interface ([`ledger::Ledger`]) on two backends, and the data directory
//! it lives in.
//!
//! - [`ledger`]: the facade, the embedded (SQLite) backend and, with the
//!   default `postgres` feature, the shared PostgreSQL backend; both run
//!   `claimgate_rules::validate` (R8) inside their append transaction.
//! - [`data_dir`]: the directory's layout (every file name in it) and the
//!   lost-ledger rule.
//! - [`data_lock`]: one writing process per data directory.
//! - [`thread_priority`]: background threads run lower, the decision log's
//!   writer higher.
//!
//! Depends on `claimgate-rules` only; nothing here knows the index, the
//! decision log or HTTP.

pub mod changes;
pub mod data_dir;
pub mod data_lock;
pub mod ledger;
pub mod thread_priority;
pub mod transfer;
