//! `claimgate audit export`: the decision log read straight from its
//! segments (no server, no index needed), oldest first, as JSON Lines or
//! CSV. A frame being written by a running gate at the very end of the
//! newest segment ends the export there; damage anywhere else is reported
//! and the export goes on with the next segment, then fails.

use super::query::AuditQuery;
use super::record::AuditRecord;
use super::segment::{self, ReadError, SegmentReader};
use std::io::Write;
use std::path::Path;

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line, each a record as `GET /v1/audit` returns it.
    Jsonl,
    /// A header and one row per record; `claim_id` is its JSON text and
    /// `waived` is `;`-separated.
    Csv,
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 11] = [
    "id",
    "at_ms",
    "seq",
    "claim_id",
    "practitioner_id",
    "institution_id",
    "service_date",
    "emergency",
    "verdict",
    "reason",
    "waived",
];

/// What an export did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Exported {
    pub examined: u64,
    pub written: u64,
    pub segments: u64,
    /// Damage found (segment and what), reported and skipped.
    pub damaged: Vec<String>,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read the audit directory {dir}: {source}; pass the directory the gate was given as --audit-dir (default DATA/audit)")]
    Dir { dir: String, source: std::io::Error },
    #[error("{dir} holds no audit segments (*.audit); is it the gate's --audit-dir?")]
    Empty { dir: String },
    #[error("reading {segment}: {source}")]
    Read { segment: String, source: std::io::Error },
    #[error("writing the export: {0}")]
    Write(#[from] std::io::Error),
    #[error("writing the export: {0}")]
    Csv(#[from] csv::Error),
}

/// Writes every record of `dir` matching `q` (its `limit` is ignored) to
/// `out`; `progress` is called every [`PROGRESS_EVERY`] records examined.
pub fn export(
    dir: &Path,
    q: &AuditQuery,
    format: Format,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(&Exported),
) -> Result<Exported, ExportError> {
    let segments = segment::list(dir).map_err(|source| ExportError::Dir { dir: dir.display().to_string(), source })?;
    if segments.is_empty() {
        return Err(ExportError::Empty { dir: dir.display().to_string() });
    }
    let mut done = Exported::default();
    let mut buf: Vec<u8> = Vec::new();
    if format == Format::Csv {
        buf.extend(csv_line(CSV_COLUMNS.map(str::to_owned))?);
    }
    let last = segments.len() - 1;
    for (i, (first, path)) in segments.iter().enumerate() {
        done.segments += 1;
        let read_err = |source| ExportError::Read { segment: path.display().to_string(), source };
        let mut reader = match SegmentReader::open(path, *first, 0, *first) {
            Ok(r) if i == last => r.newest(),
            Ok(r) => r,
            Err(ReadError::Io(e)) => return Err(read_err(e)),
            Err(e @ ReadError::Fault { .. }) => {
                if i != last {
                    done.damaged.push(format!("{}: {e}", path.display()));
                }
                continue;
            }
        };
        loop {
            match reader.next_record() {
                Ok(Some(r)) => {
                    done.examined += 1;
                    if q.matches(&r) {
                        done.written += 1;
                        match format {
                            Format::Csv => buf.extend(csv_line(csv_row(&r))?),
                            Format::Jsonl => {
                                serde_json::to_writer(&mut buf, &r).map_err(std::io::Error::from)?;
                                buf.push(b'\n');
                            }
                        }
                        if buf.len() >= 1 << 20 {
                            out.write_all(&buf)?;
                            buf.clear();
                        }
                    }
                    if done.examined % PROGRESS_EVERY == 0 {
                        progress(&done);
                    }
                }
                Ok(None) => break,
                Err(ReadError::Io(e)) => return Err(read_err(e)),
                Err(e @ ReadError::Fault { .. }) => {
                    // The newest segment's tail may be a write in progress.
                    if i != last {
                        done.damaged.push(format!("{}: {e}", path.display()));
                    }
                    break;
                }
            }
        }
    }
    out.write_all(&buf)?;
    out.flush()?;
    Ok(done)
}

/// Records examined between progress reports.
pub const PROGRESS_EVERY: u64 = 1_000_000;

/// One CSV line, quoted as the kept crate quotes.
fn csv_line(fields: [String; 11]) -> Result<Vec<u8>, ExportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&fields)?;
    w.into_inner().map_err(|e| ExportError::Write(e.into_error()))
}

fn csv_row(r: &AuditRecord) -> [String; 11] {
    [
        r.id.to_string(),
        r.at_ms.to_string(),
        r.seq.to_string(),
        r.claim_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        r.practitioner_id.clone(),
        r.institution_id.clone(),
        r.service_date.clone(),
        r.emergency.to_string(),
        r.verdict.as_str().to_owned(),
        r.reason.as_str().to_owned(),
        r.waived.iter().map(|w| w.as_str()).collect::<Vec<_>>().join(";"),
    ]
}
