//! The `claimgate` command line.

use claimgate::claim::parse_claim;
use claimgate::clock::{Clock, SystemClock};
use claimgate::domain::{CivilDate, InstitutionCode, PractitionerCode};
use claimgate::event::Event;
use claimgate::index::snapshot::{self, Owner};
use claimgate::index::{restore, IndexHandle, Syncer};
use claimgate::ledger::{Ledger, MAX_APPEND_BATCH};
use claimgate::policy::Policy;
use claimgate::rules::World;
use claimgate::scenario::{self, ReplayLine, Scenario};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Largest event input `append` reads, in bytes.
const MAX_APPEND_INPUT_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Parser)]
#[command(
    name = "claimgate",
    version,
    about = "Claim-settlement gate for medical-insurance practitioner scoring (RULES.md R1-R22)"
)]
struct Cli {
    /// A JSON policy file (R13, R14, R20); absent keys keep their defaults.
    #[arg(long, global = true, value_name = "FILE")]
    policy: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a conformance scenario in a fresh temporary ledger and print JSON Lines.
    Replay {
        /// The scenario file (SCENARIOS.md).
        file: PathBuf,
    },
    /// Append events to the ledger: a JSON array, a scenario file, or one JSON object per line.
    Append {
        /// Data directory holding the ledger (created if absent).
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// The events file; `-` or absent reads standard input.
        file: Option<PathBuf>,
    },
    /// Judge one claim line against the ledger (R17-R19).
    Check {
        #[arg(long, default_value = "data")]
        data: PathBuf,
        #[arg(long)]
        practitioner: String,
        #[arg(long)]
        institution: String,
        /// Service date, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        #[arg(long)]
        emergency: bool,
    },
    /// Write or verify index snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Print the integrity file of a practitioner or an institution (R22).
    File {
        #[arg(value_enum)]
        kind: FileKind,
        code: String,
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Report status on this date instead of today (China Standard Time).
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<String>,
    },
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Build the index (from the newest snapshot plus the ledger's tail, or
    /// from the whole ledger) and write it as a new snapshot.
    Write {
        #[arg(long, default_value = "data")]
        data: PathBuf,
    },
    /// Check snapshot files: header, length, checksum, archive validity.
    Verify {
        /// Snapshot files; with none, every snapshot under --data.
        files: Vec<PathBuf>,
        #[arg(long, default_value = "data")]
        data: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FileKind {
    Practitioner,
    Institution,
}

/// A failure to report: the message, and the exit code (2 for bad input).
struct Failure(String, u8);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(e.to_string(), 1)
    }
}

fn bad_input(message: impl Into<String>) -> Failure {
    Failure(message.into(), 2)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message, code)) => {
            eprintln!("claimgate: {message}");
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let policy = match &cli.policy {
        Some(path) => Policy::load(path).map_err(|e| bad_input(e.to_string()))?,
        None => Policy::default(),
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match cli.command {
        Command::Replay { file } => {
            let scenario = Scenario::load(&file).map_err(|e| bad_input(e.to_string()))?;
            let dir = tempfile::tempdir()?;
            let ledger = Ledger::open(dir.path(), &policy)?;
            for line in scenario::run(&scenario, &ledger)? {
                writeln!(out, "{}", line.to_json())?;
                match &line {
                    ReplayLine::Refused { event, refusal, .. } => eprintln!("event {event} refused: {refusal}"),
                    ReplayLine::BadCheck { check, refusal, .. } => eprintln!("check {check} refused: {refusal}"),
                    _ => {}
                }
            }
        }
        Command::Append { data, file } => {
            let values = read_events(file)?;
            let ledger = Ledger::open(&data, &policy)?;
            let mut index = 0;
            for chunk in values.chunks(MAX_APPEND_BATCH) {
                let mut parsed = Vec::with_capacity(chunk.len());
                let mut outcomes: Vec<Option<Result<u64, claimgate::refusal::Refusal>>> = Vec::new();
                for raw in chunk {
                    match Event::parse(raw, &policy) {
                        Ok(event) => {
                            parsed.push(event);
                            outcomes.push(None);
                        }
                        Err(refusal) => outcomes.push(Some(Err(refusal))),
                    }
                }
                let mut appended = ledger.append_batch(&parsed)?.into_iter();
                for outcome in outcomes {
                    let outcome =
                        outcome.unwrap_or_else(|| appended.next().expect("one per parsed event").map(|a| a.seq));
                    let line = match outcome {
                        Ok(seq) => ReplayLine::Accepted { event: index, seq },
                        Err(refusal) => {
                            eprintln!("event {index} refused: {refusal}");
                            ReplayLine::Refused { event: index, error: refusal.code, refusal }
                        }
                    };
                    writeln!(out, "{}", line.to_json())?;
                    index += 1;
                }
            }
        }
        Command::Check { data, practitioner, institution, date, emergency } => {
            let claim = parse_claim(&serde_json::json!({
                "practitioner_id": practitioner, "institution_id": institution,
                "service_date": date, "emergency": emergency,
            }))
            .map_err(|e| bad_input(e.to_string()))?;
            let ledger = open_existing(&data, &policy)?;
            let world = World::from_events(&ledger.all_events()?, &policy);
            let decision = world.decide(&claim);
            let answer = serde_json::json!({
                "verdict": decision.verdict, "reason": decision.reason, "waived": decision.waived,
                "seq": world.seq(), "institution_grade": decision.institution_grade,
            });
            writeln!(out, "{answer}")?;
        }
        Command::Snapshot(SnapshotCommand::Write { data }) => {
            let ledger = Arc::new(open_existing(&data, &policy)?);
            let started = Instant::now();
            let restored = restore::restore(&data, &ledger)?;
            for (path, why) in &restored.refused {
                eprintln!("claimgate: skipped snapshot {}: {why}", path.display());
            }
            let handle = Arc::new(IndexHandle::new(restored.version));
            Syncer::new(ledger.clone(), handle.clone()).catch_up()?;
            let version = handle.load();
            let version = if version.overlay_len() > 0 { Arc::new(version.merged()) } else { version };
            let built = started.elapsed();
            let owner = Owner::new(ledger.id(), ledger.policy());
            let path = snapshot::write(&data.join(snapshot::SNAPSHOT_DIR), version.base(), owner)?;
            let base = version.base();
            writeln!(
                out,
                "{}",
                serde_json::json!({
                    "snapshot": path.display().to_string(), "seq": base.seq(),
                    "practitioners": base.practitioner_count(), "institutions": base.institution_count(),
                    "bytes": base.bytes().len() + snapshot::HEADER_LEN,
                    "build_seconds": built.as_secs_f64(), "total_seconds": started.elapsed().as_secs_f64(),
                })
            )?;
        }
        Command::Snapshot(SnapshotCommand::Verify { files, data }) => {
            let files = if files.is_empty() { snapshot::list(&data.join(snapshot::SNAPSHOT_DIR))? } else { files };
            if files.is_empty() {
                return Err(bad_input(format!("no snapshots under {}", data.join(snapshot::SNAPSHOT_DIR).display())));
            }
            let mut bad = 0;
            for path in files {
                let started = Instant::now();
                let line = match snapshot::load(&path, None) {
                    Ok(base) => serde_json::json!({
                        "snapshot": path.display().to_string(), "valid": true, "seq": base.seq(),
                        "practitioners": base.practitioner_count(), "institutions": base.institution_count(),
                        "bytes": base.bytes().len() + snapshot::HEADER_LEN, "load_seconds": started.elapsed().as_secs_f64(),
                    }),
                    Err(e) => {
                        bad += 1;
                        serde_json::json!({"snapshot": path.display().to_string(), "valid": false, "error": e.to_string()})
                    }
                };
                writeln!(out, "{line}")?;
            }
            if bad > 0 {
                out.flush()?;
                return Err(Failure(format!("{bad} snapshot(s) failed verification"), 1));
            }
        }
        Command::File { kind, code, data, as_of } => {
            let as_of = match as_of {
                Some(text) => CivilDate::parse(&text).map_err(|e| bad_input(format!("--as-of: {e}")))?,
                None => SystemClock.today(),
            };
            let ledger = open_existing(&data, &policy)?;
            let json = match kind {
                FileKind::Practitioner => {
                    let code = PractitionerCode::parse(&code).map_err(|e| bad_input(e.to_string()))?;
                    let file = ledger.practitioner_file(code, as_of)?;
                    file.map(|f| serde_json::to_string_pretty(&f)).transpose()?
                }
                FileKind::Institution => {
                    let code = InstitutionCode::parse(&code).map_err(|e| bad_input(e.to_string()))?;
                    let file = ledger.institution_file(code, as_of)?;
                    file.map(|f| serde_json::to_string_pretty(&f)).transpose()?
                }
            };
            let json =
                json.ok_or_else(|| Failure(format!("the ledger in {} has no events for {code}", data.display()), 1))?;
            writeln!(out, "{json}")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Opens the ledger of an existing data directory (never creates one).
fn open_existing(data: &std::path::Path, policy: &Policy) -> Result<Ledger, Failure> {
    if !data.join(claimgate::ledger::LEDGER_FILE).exists() {
        return Err(bad_input(format!(
            "no ledger in {}; append events first (claimgate append --data {} FILE)",
            data.display(),
            data.display()
        )));
    }
    Ok(Ledger::open(data, policy)?)
}

/// Reads events as a JSON array, a scenario file's `events`, one JSON object,
/// or JSON Lines (one event per line).
fn read_events(file: Option<PathBuf>) -> Result<Vec<Value>, Failure> {
    let mut text = String::new();
    match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => std::fs::File::open(&path)
            .map_err(|e| bad_input(format!("cannot read {}: {e}", path.display())))?
            .take(MAX_APPEND_INPUT_BYTES)
            .read_to_string(&mut text)?,
        None => std::io::stdin().take(MAX_APPEND_INPUT_BYTES).read_to_string(&mut text)?,
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(events)) => return Ok(events),
        Ok(Value::Object(mut doc)) => {
            return Ok(match doc.remove("events") {
                Some(Value::Array(events)) => events,
                Some(_) => return Err(bad_input("`events` is not an array")),
                None => vec![Value::Object(doc)],
            })
        }
        Ok(_) => return Err(bad_input("expected events: a JSON array, an object, or one object per line")),
        Err(_) => {}
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str(l).map_err(|e| bad_input(format!("line {}: not valid JSON: {e}", n + 1))))
        .collect()
}
