//! The authoritative store: an append-only event ledger (R5–R8).
//!
//! Every accepted event gets the next `seq` and is durable (synchronously
//! committed) before `append` returns. Refused events leave no trace. Nothing
//! is ever updated or deleted. Readers tail it with [`Ledger::events_since`].
//!
//! The embedded backend is SQLite in WAL mode with `synchronous=FULL`, one
//! file under the data directory.

mod embedded;
mod error;

pub use embedded::{Ledger, LEDGER_FILE, MAX_APPEND_BATCH, MAX_TAIL_BATCH};
pub use error::{AppendError, LedgerError};

use crate::domain::Seq;

/// An accepted event's `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: Seq,
    /// The identical violation was already on the ledger; nothing was stored
    /// and `seq` is the original one (R8).
    pub already_recorded: bool,
}
