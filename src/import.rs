//! `claimgate import`: roster CSV files (ROSTERS.md) and JSON Lines of events
//! into the ledger, idempotent and resumable.
//!
//! Each roster row becomes its R7 events (a designation and, with `endtime`,
//! a termination; a registration and, with `endtime`, a deregistration), each
//! with an `event_id` derived from its content (R7a), so importing a file
//! again, or again after an interruption, adds nothing already there: the
//! ledger answers a re-sent row with its original `seq`. Institution files
//! go first, then registration files, then JSON Lines, whatever the order
//! given. A row that is bad input (R4) or that R8 refuses imports nothing and
//! is written to the reject file with its file, line, column, error code and
//! message; every other row is imported. Rows go in file order,
//! [`MAX_APPEND_BATCH`] events at a time, to an [`Append`]: a bulk load when
//! the ledger was empty (the command decides), else the ledger itself, a
//! transaction per batch.

use claimgate::domain::CivilDate;
use claimgate::event::Event;
use claimgate::ledger::{Append, Appended, LedgerError, MAX_APPEND_BATCH};
use claimgate::policy::Policy;
use claimgate::refusal::Refusal;
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often progress is shown.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);
/// Most events one roster row makes (an opening and a closing one).
const MAX_EVENTS_PER_ROW: usize = 2;
/// Longest JSON line of an events file.
pub const MAX_EVENT_LINE_BYTES: usize = 1024 * 1024;

/// What a file holds, told by its header (or its extension for JSON Lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Institutions,
    Registrations,
    Events,
}

/// A column of a roster: the platform's name, claimgate's synonym, and the
/// field of the row's events it fills (a refusal naming that field is put
/// on this column).
struct Column {
    name: &'static str,
    synonym: &'static str,
    required: bool,
    field: Option<&'static str>,
}

/// A roster kind: its columns (the codes, then `begntime` and `endtime`,
/// always the last two) and the events a row opens and closes with.
struct Shape {
    columns: &'static [Column],
    opens: &'static str,
    closes: &'static str,
}

const INSTITUTIONS: Shape = Shape {
    columns: &[
        Column { name: "fixmedins_code", synonym: "institution", required: true, field: Some("institution") },
        Column { name: "begntime", synonym: "effective", required: true, field: Some("effective") },
        Column { name: "endtime", synonym: "terminated", required: false, field: None },
    ],
    opens: "institution_designated",
    closes: "institution_terminated",
};

const REGISTRATIONS: Shape = Shape {
    columns: &[
        Column { name: "prac_psn_code", synonym: "practitioner", required: true, field: Some("practitioner") },
        Column { name: "fixmedins_code", synonym: "institution", required: true, field: Some("institution") },
        Column { name: "begntime", synonym: "effective", required: true, field: Some("effective") },
        Column { name: "endtime", synonym: "deregistered", required: false, field: None },
    ],
    opens: "practitioner_registered",
    closes: "practitioner_deregistered",
};

/// Why an import stopped (as opposed to rows refused, which it reports).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Gate(#[from] crate::gate_client::GateError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {message}", path.display())]
    BadFile { path: PathBuf, message: String },
}

/// One row refused, for the reject file.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub file: String,
    pub line: u64,
    /// The column at fault, as the file names it (empty when no column is).
    pub column: String,
    pub code: String,
    pub message: String,
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    pub rows: u64,
    pub events_appended: u64,
    pub events_already_recorded: u64,
    pub rejects: Vec<Reject>,
}

/// One row's events and where they came from.
struct Row {
    line: u64,
    events: Vec<Event>,
}

/// An event field -> the column this file calls it, to put a refusal on.
type FieldColumns = [(&'static str, String)];

/// The column `refusal` is about, as the file names it (empty if none is).
fn column_of(fields: &FieldColumns, refusal: &Refusal) -> String {
    fields.iter().find(|(f, _)| refusal.field.as_deref() == Some(*f)).map_or(String::new(), |(_, c)| c.clone())
}

/// The kind of `path`: `.jsonl` is events; a CSV header with a practitioner
/// column is registrations, with an institution column institutions.
pub fn kind_of(path: &Path) -> Result<Kind, ImportError> {
    if path.extension().is_some_and(|e| e == "jsonl") {
        return Ok(Kind::Events);
    }
    let headers = read_headers(path)?;
    let has = |c: &Column| headers.iter().any(|h| h == c.name || h == c.synonym);
    if has(&REGISTRATIONS.columns[0]) {
        Ok(Kind::Registrations)
    } else if has(&INSTITUTIONS.columns[0]) {
        Ok(Kind::Institutions)
    } else {
        Err(ImportError::BadFile {
            path: path.to_owned(),
            message: "neither a registrations roster (no prac_psn_code or practitioner column) nor an institutions roster (no fixmedins_code or institution column), nor .jsonl events".into(),
        })
    }
}

fn reader(path: &Path) -> Result<csv::Reader<std::fs::File>, ImportError> {
    let file = std::fs::File::open(path).map_err(|source| ImportError::Io { path: path.to_owned(), source })?;
    Ok(csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(file))
}

fn read_headers(path: &Path) -> Result<Vec<String>, ImportError> {
    let bad = |message: String| ImportError::BadFile { path: path.to_owned(), message };
    let mut r = reader(path)?;
    let headers = r.headers().map_err(|e| bad(format!("cannot read the header row: {e}")))?;
    // An optional byte-order mark before the first name (ROSTERS.md).
    Ok(headers
        .iter()
        .enumerate()
        .map(|(i, h)| if i == 0 { h.trim_start_matches('\u{feff}') } else { h })
        .map(|h| h.trim().to_owned())
        .collect())
}

/// Where each column of `columns` is in `headers`: refused when a required
/// one is missing or one is named twice (under its name and its synonym,
/// say), since either would be a guess.
fn locate(path: &Path, headers: &[String], columns: &[Column]) -> Result<Vec<Option<(usize, String)>>, ImportError> {
    let bad = |message: String| ImportError::BadFile { path: path.to_owned(), message };
    columns
        .iter()
        .map(|c| {
            let found: Vec<usize> =
                headers.iter().enumerate().filter(|(_, h)| *h == c.name || *h == c.synonym).map(|(i, _)| i).collect();
            match found.as_slice() {
                [] if c.required => Err(bad(format!("no `{}` (or `{}`) column", c.name, c.synonym))),
                [] => Ok(None),
                [i] => Ok(Some((*i, headers[*i].clone()))),
                _ => Err(bad(format!(
                    "column `{}` is given {} times (as `{}` or `{}`): which one is meant?",
                    c.name,
                    found.len(),
                    c.name,
                    c.synonym
                ))),
            }
        })
        .collect()
}

/// A roster date: `YYYY-MM-DD`, or the platform's `YYYY-MM-DD HH:MM:SS` (the
/// time dropped, China Standard Time).
fn roster_date(text: &str) -> Result<CivilDate, String> {
    let day = match text.split_once(' ') {
        Some((day, time)) => {
            let t = time.as_bytes();
            let clock = t.len() == 8
                && t[2] == b':'
                && t[5] == b':'
                && t.iter().enumerate().all(|(i, c)| i == 2 || i == 5 || c.is_ascii_digit());
            if !clock {
                return Err(format!("`{text}` is not YYYY-MM-DD or YYYY-MM-DD HH:MM:SS"));
            }
            day
        }
        None => text,
    };
    CivilDate::parse(day).map_err(|e| e.0)
}

/// The `event_id` of an event made from a roster row: derived from the
/// event's content, so the same row always makes the same event (R7a).
fn content_id(event: &Value) -> String {
    let digest = xxhash_rust::xxh3::xxh3_128(event.to_string().as_bytes());
    format!("roster-{digest:032x}")
}

/// The event `fields` describe, with its content-derived `event_id`.
fn event_from(fields: Value, policy: &Policy) -> Result<Event, Refusal> {
    let mut fields = fields;
    let id = content_id(&fields);
    fields["event_id"] = json!(id);
    Event::parse(&fields, policy)
}

/// One CSV row of `shape` as its events, or the refusal and its column.
fn row_events(
    shape: &Shape,
    cells: &[Option<String>],
    names: &[Option<(usize, String)>],
    fields: &FieldColumns,
    policy: &Policy,
) -> Result<Vec<Event>, (String, Refusal)> {
    let column = |i: usize| names[i].as_ref().map_or(String::new(), |(_, n)| n.clone());
    let date = |i: usize| -> Result<Option<CivilDate>, (String, Refusal)> {
        cells[i].as_deref().map(roster_date).transpose().map_err(|m| (column(i), Refusal::invalid(&column(i), m)))
    };
    let codes = shape.columns.len() - 2;
    let (from, until) = (date(codes)?.expect("a required column"), date(codes + 1)?);
    if until.is_some_and(|u| u <= from) {
        return Err((column(codes + 1), Refusal::invalid(&column(codes + 1), "must be after begntime")));
    }
    let make = |ty: &str, on: CivilDate| {
        let mut value = json!({"type": ty, "effective": on.to_string()});
        for (c, cell) in shape.columns[..codes].iter().zip(cells) {
            value[c.field.expect("a code column fills a field")] = json!(cell.clone().unwrap_or_default());
        }
        event_from(value, policy).map_err(|r| (column_of(fields, &r), r))
    };
    let mut events = vec![make(shape.opens, from)?];
    if let Some(until) = until {
        events.push(make(shape.closes, until)?);
    }
    Ok(events)
}

/// Where an import's events go: anything that appends ([`Append`]: the
/// ledger batch by batch, or a bulk load into an empty one), or a running
/// gate's admin API (`crate::gate_client`).
pub trait Sink {
    type Error;
    /// The policy the rows' events are parsed under.
    fn policy(&self) -> &Policy;
    /// Validates and appends `events` in order: one outcome each.
    fn append_batch(&mut self, events: &[Event]) -> Result<Vec<Result<Appended, Refusal>>, Self::Error>;
}

impl<T: Append> Sink for T {
    type Error = LedgerError;
    fn policy(&self) -> &Policy {
        Append::policy(self)
    }
    fn append_batch(&mut self, events: &[Event]) -> Result<Vec<Result<Appended, Refusal>>, LedgerError> {
        Append::append_batch(self, events)
    }
}

/// Imports `files` into `dest`; progress is shown on standard error.
pub fn import<S: Sink>(dest: &mut S, files: &[PathBuf]) -> Result<Outcome, ImportError>
where
    ImportError: From<S::Error>,
{
    let policy = dest.policy().clone();
    let mut kinds: Vec<(Kind, &PathBuf)> =
        files.iter().map(|f| kind_of(f).map(|k| (k, f))).collect::<Result<_, _>>()?;
    kinds.sort_by_key(|(k, _)| *k); // stable: files of one kind keep their order
    let total_bytes: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let mut progress = Progress::new(total_bytes);
    let mut outcome = Outcome::default();
    for (kind, path) in kinds {
        let shown = path.display().to_string();
        let first_reject = outcome.rejects.len();
        // A roster's columns, where this file has them, and the event field each fills.
        let shape = match kind {
            Kind::Institutions => Some(&INSTITUTIONS),
            Kind::Registrations => Some(&REGISTRATIONS),
            Kind::Events => None,
        };
        let names = match shape {
            Some(s) => locate(path, &read_headers(path)?, s.columns)?,
            None => Vec::new(),
        };
        let fields: Vec<(&'static str, String)> = shape
            .map_or(&[][..], |s| s.columns)
            .iter()
            .zip(&names)
            .filter_map(|(c, n)| Some((c.field?, n.as_ref()?.1.clone())))
            .collect();
        let mut batch: Vec<Row> = Vec::new();
        let mut events_in_batch = 0;
        let mut flush = |batch: &mut Vec<Row>, outcome: &mut Outcome| -> Result<(), ImportError> {
            append_rows(&mut *dest, &shown, batch, &fields, outcome)?;
            batch.clear();
            Ok(())
        };
        let mut push = |row: Result<Row, Reject>,
                        bytes: u64,
                        batch: &mut Vec<Row>,
                        outcome: &mut Outcome|
         -> Result<(), ImportError> {
            outcome.rows += 1;
            progress.show(outcome.rows, bytes);
            match row {
                Err(reject) => outcome.rejects.push(reject),
                Ok(row) => {
                    events_in_batch += row.events.len();
                    batch.push(row);
                    if events_in_batch + MAX_EVENTS_PER_ROW > MAX_APPEND_BATCH {
                        events_in_batch = 0;
                        flush(batch, outcome)?;
                    }
                }
            }
            Ok(())
        };
        match shape {
            None => {
                // Line by line, each at most MAX_EVENT_LINE_BYTES: never the whole file in memory.
                let io = |source| ImportError::Io { path: path.clone(), source };
                let mut input = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
                let mut buf = Vec::new();
                let (mut line_no, mut done_bytes) = (0, 0);
                loop {
                    buf.clear();
                    let n =
                        input.by_ref().take(MAX_EVENT_LINE_BYTES as u64 + 1).read_until(b'\n', &mut buf).map_err(io)?;
                    if n == 0 {
                        break;
                    }
                    line_no += 1;
                    done_bytes += n as u64;
                    if n > MAX_EVENT_LINE_BYTES {
                        return Err(ImportError::BadFile {
                            path: path.clone(),
                            message: format!(
                                "line {line_no} is longer than {MAX_EVENT_LINE_BYTES} bytes: not a line of events"
                            ),
                        });
                    }
                    let line = String::from_utf8_lossy(&buf);
                    if line.trim().is_empty() {
                        continue;
                    }
                    let row = event_line(line.trim_end(), &policy)
                        .map(|event| Row { line: line_no, events: vec![event] })
                        .map_err(|r| reject(&shown, line_no, String::new(), &r));
                    push(row, done_bytes, &mut batch, &mut outcome)?;
                }
            }
            Some(shape) => {
                let mut r = reader(path)?;
                let mut record = csv::StringRecord::new();
                loop {
                    let more = r.read_record(&mut record).map_err(|e| ImportError::BadFile {
                        path: path.clone(),
                        message: format!("not CSV after line {}: {e}", r.position().line()),
                    })?;
                    if !more {
                        break;
                    }
                    let line = record.position().map_or(0, |p| p.line());
                    let cells: Vec<Option<String>> = names
                        .iter()
                        .map(|n| {
                            n.as_ref()
                                .map(|(i, _)| record.get(*i).unwrap_or("").trim().to_owned())
                                .filter(|v| !v.is_empty())
                        })
                        .collect();
                    let missing =
                        shape.columns.iter().zip(&cells).zip(&names).find(|((c, v), _)| c.required && v.is_none());
                    let row = match missing {
                        Some((_, name)) => {
                            let column = name.as_ref().map_or(String::new(), |(_, n)| n.clone());
                            Err(reject(&shown, line, column.clone(), &Refusal::invalid(&column, "is empty")))
                        }
                        None => row_events(shape, &cells, &names, &fields, &policy)
                            .map(|events| Row { line, events })
                            .map_err(|(column, r)| reject(&shown, line, column, &r)),
                    };
                    push(row, r.position().byte(), &mut batch, &mut outcome)?;
                }
            }
        }
        flush(&mut batch, &mut outcome)?;
        // R8's refusals arrive a batch later than R4's: list the file's in line order.
        outcome.rejects[first_reject..].sort_by_key(|r| r.line);
    }
    progress.finish(outcome.rows);
    Ok(outcome)
}

/// One JSON line of an events file as its event (R4: no key twice).
fn event_line(line: &str, policy: &Policy) -> Result<Event, Refusal> {
    let value = claimgate::strict_json::from_str(line).map_err(|e| Refusal::invalid("", e.to_string()))?;
    Event::parse(&value, policy)
}

fn reject(file: &str, line: u64, column: String, r: &Refusal) -> Reject {
    Reject { file: file.to_owned(), line, column, code: r.code.as_str().to_owned(), message: r.to_string() }
}

/// Appends the events of `rows` in one transaction; a row any of whose
/// events R8 refuses is a reject (its other events are re-sends or refused
/// too: a registration refused makes its deregistration unknown).
fn append_rows<S: Sink>(
    dest: &mut S,
    file: &str,
    rows: &[Row],
    fields: &FieldColumns,
    outcome: &mut Outcome,
) -> Result<(), ImportError>
where
    ImportError: From<S::Error>,
{
    if rows.is_empty() {
        return Ok(());
    }
    let events: Vec<Event> = rows.iter().flat_map(|r| r.events.iter().cloned()).collect();
    let mut results = dest.append_batch(&events)?.into_iter();
    for row in rows {
        let mut refused = None;
        for _ in &row.events {
            match results.next().expect("one outcome per event") {
                Ok(a) if a.already_recorded => outcome.events_already_recorded += 1,
                Ok(_) => outcome.events_appended += 1,
                Err(r) => {
                    refused.get_or_insert(r);
                }
            }
        }
        if let Some(r) = refused {
            outcome.rejects.push(reject(file, row.line, column_of(fields, &r), &r));
        }
    }
    Ok(())
}

/// Writes the reject file: `file,line,column,error,message`, one row each.
pub fn write_rejects(path: &Path, rejects: &[Reject]) -> std::io::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(["file", "line", "column", "error", "message"])?;
    for r in rejects {
        w.write_record([r.file.as_str(), &r.line.to_string(), &r.column, &r.code, &r.message])?;
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// Rows, rows per second and the time left, on one line rewritten in place
/// on a terminal, else a plain line every few seconds.
struct Progress {
    started: Instant,
    last: Instant,
    total_bytes: u64,
    terminal: bool,
}

impl Progress {
    fn new(total_bytes: u64) -> Progress {
        let now = Instant::now();
        Progress { started: now, last: now, total_bytes, terminal: std::io::stderr().is_terminal() }
    }

    fn show(&mut self, rows: u64, bytes: u64) {
        let interval = if self.terminal { PROGRESS_INTERVAL } else { PROGRESS_INTERVAL * 10 };
        if self.last.elapsed() < interval {
            return;
        }
        self.last = Instant::now();
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = rows as f64 / seconds.max(1e-9);
        let left =
            if bytes > 0 { seconds * (self.total_bytes.saturating_sub(bytes)) as f64 / bytes as f64 } else { 0.0 };
        let line = format!("import: {rows} rows, {rate:.0} rows/s, about {left:.0} s left");
        let mut err = std::io::stderr();
        let _ = if self.terminal { write!(err, "\r{line}   ") } else { writeln!(err, "{line}") };
    }

    fn finish(&mut self, rows: u64) {
        if self.terminal && self.started.elapsed() >= PROGRESS_INTERVAL {
            let _ = writeln!(std::io::stderr(), "\rimport: {rows} rows read                                 ");
        }
    }
}
