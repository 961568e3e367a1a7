//! The eligibility index: everything a check needs, in memory, answering in
//! tens of nanoseconds and moving to a new ledger `seq` without pausing
//! readers.
//!
//! An [`IndexVersion`] is immutable: a large [`base::Base`] (hash tables in an
//! rkyv archive, owned or memory-mapped from a snapshot) plus a small overlay
//! of practitioners and institutions changed since the base was built.
//! [`IndexHandle`] publishes versions with arc-swap; [`sync`] tails the ledger
//! and builds each next version from the events it has not yet applied,
//! recording their standing changes in the change log as it goes;
//! [`changes`] brings a log that fell behind up to the index.

pub mod base;
pub mod build;
pub mod changes;
pub mod compact;
pub mod restore;
pub mod snapshot;
pub mod sync;
mod version;

pub use sync::{IndexHandle, Syncer};
pub use version::{IndexVersion, MAX_CHECK_BATCH};
