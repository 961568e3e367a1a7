//! The ledger out and back in as JSON Lines (ROSTERS.md, "On the command
//! line"): [`export`] writes every accepted event with its `seq`, one line
//! each (`{"seq":N,"event":{...}}`), from one consistent view; [`restore`]
//! rebuilds an empty ledger from such a file, `seq` for `seq`, on either
//! backend.
//!
//! Consistency without a long transaction: the ledger is append-only and its
//! `seq`s are dense (R5), and a head of H is read only once every event up to
//! H is committed (one transaction on SQLite; the head row is written in the
//! appending transaction on PostgreSQL). So export reads the head once and
//! then the events up to it page by page: later appends have higher `seq`s
//! and are left out, nothing before H can change.
//!
//! Restore appends through [`Append`] (a ledger, or the bulk load the CLI
//! uses), so every event passes R8 again, in order, and must land at exactly
//! the `seq` it had: a file that was altered, reordered, or exported under
//! another policy is refused at the first line that does not reproduce,
//! naming it. Into a ledger, a refused restore leaves the batches before the
//! line committed; a bulk load leaves nothing (it is all or nothing).

use crate::ledger::{Append, Ledger, LedgerError, MAX_APPEND_BATCH, MAX_TAIL_BATCH};
use claimgate_rules::domain::Seq;
use claimgate_rules::event::Event;
use claimgate_rules::refusal::Refusal;
use std::io::{BufRead, Read, Write};

/// Longest line [`restore`] reads (an event is at most a few KiB; a longer
/// line is not an export).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Why an export or a restore stopped.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("reading or writing the export failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the ledger to restore into already holds {head} event(s); restore rebuilds an empty ledger only: use a new --data directory (or a new schema)")]
    NotEmpty { head: Seq },
    #[error("line {line}: {message}")]
    BadLine { line: u64, message: String },
    #[error("line {line}: seq {seq} where {expected} was due: an export has every seq from 1, in order")]
    OutOfOrder { line: u64, seq: Seq, expected: Seq },
    #[error("line {line} (seq {seq}) is refused by this ledger: {refusal}. Was the file exported under another policy (--policy)?")]
    Refused { line: u64, seq: Seq, refusal: Refusal },
    #[error("line {line} (seq {seq}) is an event the file holds earlier (it answered as a re-send of seq {at}): not an export")]
    Repeated { line: u64, seq: Seq, at: Seq },
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    pub events: u64,
    /// The head the export was read at: every event up to it, none after.
    pub head: Seq,
}

/// Writes every event up to the head read at the start, ascending by `seq`;
/// `progress(events so far, head)` after each page.
pub fn export(
    ledger: &Ledger,
    out: &mut impl Write,
    mut progress: impl FnMut(u64, Seq),
) -> Result<Exported, TransferError> {
    let head = ledger.head()?;
    let mut after = 0;
    let mut events = 0;
    while after < head {
        let page = ledger.events_since(after, MAX_TAIL_BATCH)?;
        if page.is_empty() {
            return Err(LedgerError::Corrupt {
                seq: after + 1,
                message: format!("the head is {head} but no event follows seq {after}"),
            }
            .into());
        }
        for r in page.iter().take_while(|r| r.seq <= head) {
            writeln!(out, "{{\"seq\":{},\"event\":{}}}", r.seq, r.event.to_json())?;
            events += 1;
        }
        after = page.last().map_or(head, |r| r.seq);
        progress(events, head);
    }
    out.flush()?;
    Ok(Exported { events, head })
}

/// What a restore rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    pub events: u64,
    pub head: Seq,
}

/// Rebuilds `ledger`, which must be empty (a ledger, or a bulk load into
/// one), from an export read from `input`; `progress(events so far)` after
/// each appended batch.
pub fn restore(
    ledger: &mut impl Append,
    input: impl BufRead,
    mut progress: impl FnMut(u64),
) -> Result<Restored, TransferError> {
    let head = ledger.head()?;
    if head != 0 {
        return Err(TransferError::NotEmpty { head });
    }
    let mut input = input;
    let mut batch: Vec<(u64, Seq, Event)> = Vec::with_capacity(MAX_APPEND_BATCH);
    let mut expected = 1;
    let mut line = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = input.by_ref().take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        line += 1;
        if n > MAX_LINE_BYTES {
            return Err(TransferError::BadLine { line, message: format!("longer than {MAX_LINE_BYTES} bytes") });
        }
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (seq, event) = parse_line(text).map_err(|message| TransferError::BadLine { line, message })?;
        if seq != expected {
            return Err(TransferError::OutOfOrder { line, seq, expected });
        }
        expected += 1;
        batch.push((line, seq, event));
        if batch.len() == MAX_APPEND_BATCH {
            append(&mut *ledger, &mut batch)?;
            progress(expected - 1);
        }
    }
    append(&mut *ledger, &mut batch)?;
    progress(expected - 1);
    Ok(Restored { events: expected - 1, head: ledger.head()? })
}

/// One export line: exactly `seq` (a positive integer) and `event`, no key twice.
fn parse_line(text: &[u8]) -> Result<(Seq, Event), String> {
    let value =
        claimgate_rules::strict_json::from_slice(text).map_err(|e| format!("not a JSON line of an export: {e}"))?;
    let serde_json::Value::Object(map) = value else { return Err("not a JSON object".to_owned()) };
    if let Some(other) = map.keys().find(|k| *k != "seq" && *k != "event") {
        return Err(format!("unknown field `{other}` (an export line holds `seq` and `event` only)"));
    }
    let seq = map.get("seq").and_then(serde_json::Value::as_u64).filter(|s| *s > 0);
    let seq = seq.ok_or_else(|| "`seq` is missing or not a positive integer".to_owned())?;
    let event = map.get("event").ok_or_else(|| "`event` is missing".to_owned())?;
    // As the ledger reads its own rows (a v1 repair without event_id included);
    // the policy does not change how an event parses.
    let event = Event::parse_stored(event, &claimgate_rules::policy::Policy::default())
        .map_err(|r| format!("`event` is not an event: {r}"))?;
    Ok((seq, event))
}

/// Appends `batch` in one transaction; each event must land at its own `seq`.
fn append(ledger: &mut impl Append, batch: &mut Vec<(u64, Seq, Event)>) -> Result<(), TransferError> {
    if batch.is_empty() {
        return Ok(());
    }
    let events: Vec<Event> = batch.iter().map(|(_, _, e)| e.clone()).collect();
    let outcomes = ledger.append_batch(&events)?;
    for ((line, seq, _), outcome) in batch.iter().zip(outcomes) {
        match outcome {
            Err(refusal) => return Err(TransferError::Refused { line: *line, seq: *seq, refusal }),
            Ok(a) if a.already_recorded => return Err(TransferError::Repeated { line: *line, seq: *seq, at: a.seq }),
            Ok(a) => assert_eq!(a.seq, *seq, "an empty ledger appends dense seqs from 1, as the file does"),
        }
    }
    batch.clear();
    Ok(())
}
