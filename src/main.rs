//! The `claimgate` command line.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use claimgate::data_lock::DataDirLock;
use claimgate::event::Event;
use claimgate::ledger::{Ledger, MAX_APPEND_BATCH};
use claimgate::policy::Policy;
use claimgate::refusal::Refusal;
use claimgate::scenario::{self, ReplayLine};
use claimgate::server::{self, Gate, ServeConfig};
use claimgate::strict_json::{self, Document, Duplicate, Step, StrictError};

mod cli;
mod commands;
mod demo;
mod gate_client;
mod import;
mod readjudication;
mod roster;
use clap::Parser;
use cli::{AuditCommand, Cli, Command, SnapshotCommand};
use commands::Cx;
use serde_json::Value;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Largest event input `append` reads, in bytes.
const MAX_APPEND_INPUT_BYTES: u64 = 256 * 1024 * 1024;
/// `append`'s exit code when some events were refused (the others were appended).
const EXIT_SOME_REFUSED: u8 = 3;
/// Refused events `append`'s summary names one by one; the rest are counted.
const MAX_REFUSALS_SUMMARISED: usize = 5;

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
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad_input(format!("cannot read policy file {}: {e}", path.display())))?;
            Policy::parse(&text, &path.display().to_string()).map_err(|e| bad_input(e.to_string()))?
        }
        None => Policy::default(),
    };
    let mut cx = Cx { store: cli.store.as_deref(), policy, out: BufWriter::new(std::io::stdout().lock()) };
    match cli.command {
        Command::Replay { file } => commands::replay(&mut cx, file)?,
        Command::Append { data, file, init } => commands::append(&mut cx, data, file, init)?,
        Command::Check { data, practitioner, institution, date, emergency } => {
            commands::check(&mut cx, data, practitioner, institution, date, emergency)?
        }
        Command::Serve { init, server } => return commands::serve(cx, init, server),
        Command::Demo { practitioners, seed, server } => return commands::demo(cx, practitioners, seed, server),
        Command::Init { data } => commands::init(&mut cx, data)?,
        Command::Export { data, output } => commands::export(&mut cx, data, output)?,
        Command::Roster { practitioners, seed, out } => commands::roster(&mut cx, practitioners, seed, out)?,
        Command::Import { data, init, rejects, gate, token_file, files } => {
            let gate = gate.map(|url| (url, token_file));
            commands::import(&mut cx, data, init, rejects, gate, files)?
        }
        Command::Restore { data, file } => commands::restore(&mut cx, data, file)?,
        Command::Readjudication { gate, token_file, list, after_seq, institution, practitioner, region, format } => {
            let filters = [("institution", institution), ("practitioner", practitioner), ("region", region)]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
                .collect();
            commands::readjudication(&mut cx, gate, token_file, list, after_seq, filters, format == "csv")?
        }
        Command::Snapshot(SnapshotCommand::Write { data }) => commands::snapshot_write(&mut cx, data)?,
        Command::Snapshot(SnapshotCommand::Verify { files, data }) => commands::snapshot_verify(&mut cx, files, data)?,
        Command::Audit(AuditCommand::Export(args)) => commands::audit_export(&mut cx, args)?,
        Command::File { kind, code, data, as_of } => commands::file(&mut cx, kind, code, data, as_of)?,
    }
    cx.out.flush()?;
    Ok(())
}

/// `url` with a `schema=` parameter naming a new, unique schema.
fn with_temporary_schema(url: &str) -> String {
    // Unique across processes and runs: the pid and 64 bits from the OS (a
    // failing random source falls back to the pid alone, still unique per process).
    let nonce = getrandom::u64().unwrap_or(0);
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}schema=replay_{}_{nonce:016x}", std::process::id())
}

/// Starts the gate (which keeps `lock` while it lives) and serves until SIGTERM or Ctrl-C.
fn run_server(
    config: ServeConfig,
    policy: &Policy,
    examples: Option<demo::Examples>,
    lock: DataDirLock,
) -> Result<(), Failure> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let gate = runtime.block_on(async {
        let bound = server::bind(&config)
            .await
            .map_err(|e| Failure(format!("cannot listen on {} / {}: {e}", config.listen, config.admin_listen), 1))?;
        let gate = {
            let config = ServeConfig { listen: bound.check_addr, admin_listen: bound.admin_addr, ..config.clone() };
            let policy = policy.clone();
            tokio::task::spawn_blocking(move || Gate::start(config, &policy, lock))
                .await
                .map_err(|e| Failure(e.to_string(), 1))?
                .map_err(|e| Failure(e.to_string(), 1))?
        };
        // The signal handlers are in place before the listening line says
        // the gate is up: a SIGTERM right after it is a graceful stop.
        let shutdown = server::shutdown_signal();
        let line = serde_json::json!({
            "listening": {"check": bound.check_addr.to_string(), "admin": bound.admin_addr.to_string()},
            "seq": gate.version().seq(),
        });
        println!("{line}");
        if let Some(examples) = examples {
            demo::print(
                &examples,
                bound.check_addr,
                bound.admin_addr,
                config.admin_token.as_deref().unwrap_or_default(),
                config.read_token.as_deref(),
            );
        }
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        server::serve(gate.clone(), bound, shutdown).await;
        Ok::<_, Failure>(gate)
    })?;
    // The ledger (a PostgreSQL client runs its own runtime) must be dropped
    // outside the server's runtime: stop the runtime first, then the gate.
    drop(runtime);
    drop(gate);
    Ok(())
}

/// A bearer token from `file` (trimmed) if given, else from the environment
/// variable `var`; an empty one counts as none.
fn token_from(file: Option<&std::path::Path>, flag: &str, var: &str) -> Result<Option<String>, Failure> {
    let token = match file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| bad_input(format!("cannot read {flag} {}: {e}", path.display())))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var(var).ok().map(|t| t.trim().to_owned()),
    };
    Ok(token.filter(|t| !t.is_empty()))
}

/// A random token for the demo: 32 hex digits from the operating system's
/// random source (`getrandom`), never from anything guessable; if the OS
/// cannot give randomness the demo refuses to start rather than make up a
/// predictable token.
fn random_token() -> Result<String, Failure> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        Failure(format!("cannot read the system's random source for the demo's token ({e}): set CLAIMGATE_ADMIN_TOKEN and CLAIMGATE_READ_TOKEN"), 1)
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Creates the data directory if need be and locks it for this process
/// (released when the process ends, however it ends).
fn lock_data(data: &std::path::Path) -> Result<DataDirLock, Failure> {
    std::fs::create_dir_all(data)
        .map_err(|source| claimgate::ledger::LedgerError::CreateDir { path: data.to_owned(), source })?;
    Ok(DataDirLock::acquire(data)?)
}

/// What a command does with a data directory whose embedded ledger file is
/// missing or empty (SQLite would silently make a new, empty ledger of it).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// Refused: the command reads a ledger (`check`, `file`, `snapshot write`).
    Refuse,
    /// Refused, naming `claimgate init` and `--init` (`serve`, `append`).
    RefuseOrInit,
    /// A new ledger will be made (`--init`).
    Create,
}

/// Whether `data` holds an embedded ledger file that is not empty.
fn has_ledger(data: &std::path::Path) -> bool {
    std::fs::metadata(data.join(claimgate::ledger::LEDGER_FILE)).is_ok_and(|m| m.len() > 0)
}

/// Before an embedded ledger in `data` is opened: a ledger that was lost (its
/// audit log or snapshots remain) is refused (exit 1), and so is one that is
/// missing or empty (exit 2) unless `missing` is [`Missing::Create`]. Creates
/// nothing. A PostgreSQL store (`--store`) is not checked: it creates its
/// schema on first use.
fn require_ledger(data: &std::path::Path, store: Option<&str>, missing: Missing) -> Result<(), Failure> {
    if store.is_some() {
        return Ok(());
    }
    claimgate::data_dir::refuse_lost_ledger(data)?;
    if missing == Missing::Create || has_ledger(data) {
        return Ok(());
    }
    let path = data.join(claimgate::ledger::LEDGER_FILE);
    let what = if path.exists() { " (the file is empty)" } else { "" };
    let d = data.display();
    Err(bad_input(match missing {
        Missing::RefuseOrInit => format!(
            "no ledger at {}{what}; to start a new ledger there, run `claimgate init --data {d}` or pass --init",
            path.display()
        ),
        _ => format!(
            "no ledger at {}{what}; start one with `claimgate init --data {d}`, then `claimgate append --data {d} FILE`",
            path.display()
        ),
    }))
}

/// `init`'s refusal of a data directory that holds a ledger (exit 2) or held
/// one that was lost (exit 1): `init` only ever starts a new ledger.
fn require_no_ledger(data: &std::path::Path) -> Result<(), Failure> {
    claimgate::data_dir::refuse_lost_ledger(data)?;
    if has_ledger(data) {
        return Err(bad_input(format!(
            "{} already exists; init only starts a new ledger where there is none (to serve the one there: `claimgate serve --data {}`)",
            data.join(claimgate::ledger::LEDGER_FILE).display(),
            data.display()
        )));
    }
    Ok(())
}

/// Opens the ledger of an existing data directory (never creates one).
fn open_existing(data: &std::path::Path, store: Option<&str>, policy: &Policy) -> Result<Ledger, Failure> {
    require_ledger(data, store, Missing::Refuse)?;
    match store {
        Some(url) => Ok(Ledger::open_postgres(url, policy)?),
        None => Ok(Ledger::open(data, policy)?),
    }
}

/// What `claimgate append` did, for its summary on standard error.
#[derive(Default)]
struct AppendTally {
    /// Events read.
    total: usize,
    /// Events accepted (appended, or already recorded).
    accepted: usize,
    /// Of those, re-sends already on the ledger (nothing stored, R7a).
    already_recorded: usize,
    /// Refused events: index and refusal.
    refused: Vec<(usize, claimgate::refusal::Refusal)>,
}

impl AppendTally {
    /// "appended 8 of 10 events (1 already recorded); 2 refused: event 3 duplicate_violation (field `violation_id`), ..."
    fn summary(&self) -> String {
        let mut text = format!("appended {} of {} events", self.accepted, self.total);
        if self.already_recorded > 0 {
            text += &format!(" ({} already recorded)", self.already_recorded);
        }
        if !self.refused.is_empty() {
            let named: Vec<String> = self
                .refused
                .iter()
                .take(MAX_REFUSALS_SUMMARISED)
                .map(|(index, r)| match &r.field {
                    Some(field) => format!("event {index} {} (field `{field}`)", r.code),
                    None => format!("event {index} {}", r.code),
                })
                .collect();
            text += &format!("; {} refused: {}", self.refused.len(), named.join(", "));
            if self.refused.len() > MAX_REFUSALS_SUMMARISED {
                text += &format!(" and {} more", self.refused.len() - MAX_REFUSALS_SUMMARISED);
            }
        }
        text
    }
}

/// Appends `values` in batches of at most [`MAX_APPEND_BATCH`], one JSON
/// line per event on `out` and each refusal's reason on standard error;
/// `tally` counts what was done, also when a batch fails for storage.
fn append_events(
    ledger: &Ledger,
    values: &[Result<Value, Refusal>],
    policy: &Policy,
    out: &mut impl Write,
    tally: &mut AppendTally,
) -> Result<(), Failure> {
    let mut index = 0;
    for chunk in values.chunks(MAX_APPEND_BATCH) {
        let mut parsed = Vec::with_capacity(chunk.len());
        let mut outcomes: Vec<Option<Result<claimgate::ledger::Appended, claimgate::refusal::Refusal>>> = Vec::new();
        for raw in chunk {
            match raw.as_ref().map_err(Refusal::clone).and_then(|raw| Event::parse(raw, policy)) {
                Ok(event) => {
                    parsed.push(event);
                    outcomes.push(None);
                }
                Err(refusal) => outcomes.push(Some(Err(refusal))),
            }
        }
        let mut appended = ledger.append_batch(&parsed)?.into_iter();
        for outcome in outcomes {
            let outcome = outcome.unwrap_or_else(|| appended.next().expect("one per parsed event"));
            let line = match outcome {
                Ok(done) => {
                    tally.accepted += 1;
                    tally.already_recorded += usize::from(done.already_recorded);
                    ReplayLine::Accepted { event: index, seq: done.seq }
                }
                Err(refusal) => {
                    eprintln!("event {index} refused: {refusal}");
                    let line = ReplayLine::Refused { event: index, error: refusal.code, refusal: refusal.clone() };
                    tally.refused.push((index, refusal));
                    line
                }
            };
            writeln!(out, "{}", line.to_json())?;
            index += 1;
        }
    }
    Ok(())
}

/// Reads events as a JSON array, a scenario file's `events` (their `expect*`
/// annotations dropped, as `replay` drops them), one JSON object, or JSON
/// Lines (one event per line). An event naming a key twice is refused on its
/// own (R4: `invalid_request` naming the key); a duplicated key outside every
/// event fails the input.
fn read_events(file: Option<PathBuf>) -> Result<Vec<Result<Value, Refusal>>, Failure> {
    let mut text = String::new();
    match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => std::fs::File::open(&path)
            .map_err(|e| bad_input(format!("cannot read {}: {e}", path.display())))?
            .take(MAX_APPEND_INPUT_BYTES)
            .read_to_string(&mut text)?,
        None => std::io::stdin().take(MAX_APPEND_INPUT_BYTES).read_to_string(&mut text)?,
    };
    let refused = |d: &Duplicate| Refusal::invalid(&d.key, d.message());
    let each = |items: Vec<Value>, duplicates, array: &[Step], annotated: bool| {
        let (mut inside, outside) = strict_json::split_elements(duplicates, array);
        if let Some(d) = outside.first() {
            return Err(bad_input(d.message()));
        }
        Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, mut v)| {
                let mut duplicated = inside.remove(&i).unwrap_or_default();
                if annotated {
                    duplicated.retain(|d| !scenario::is_annotation(d));
                    scenario::strip_annotations(&mut v);
                }
                duplicated.first().map_or(Ok(v), |d| Err(refused(d)))
            })
            .collect())
    };
    match strict_json::parse(text.as_bytes()) {
        Ok(Document { value: Value::Array(events), duplicates }) => return each(events, duplicates, &[], false),
        Ok(Document { value: Value::Object(mut doc), duplicates }) => {
            return match doc.remove("events") {
                Some(Value::Array(events)) => each(events, duplicates, &[Step::Key("events".into())], true),
                Some(_) => Err(bad_input("`events` is not an array")),
                None => Ok(vec![duplicates.first().map_or(Ok(Value::Object(doc)), |d| Err(refused(d)))]),
            }
        }
        Ok(_) => return Err(bad_input("expected events: a JSON array, an object, or one object per line")),
        Err(e @ StrictError::TooManyDuplicates) => return Err(bad_input(e.to_string())),
        Err(_) => {}
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| match strict_json::from_str(l) {
            Ok(v) => Ok(Ok(v)),
            Err(StrictError::Duplicate(d)) => Ok(Err(refused(&d))),
            Err(e) => Err(bad_input(format!("line {}: not valid JSON: {e}", n + 1))),
        })
        .collect()
}
