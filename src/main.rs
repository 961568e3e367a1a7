//! The `claimgate` command line.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use claimgate::claim::parse_claim;
use claimgate::clock::{Clock, SystemClock};
use claimgate::data_lock::DataDirLock;
use claimgate::domain::{CivilDate, InstitutionCode, PractitionerCode};
use claimgate::event::Event;
use claimgate::index::snapshot::{self, Owner};
use claimgate::index::{restore, IndexHandle, Syncer};
use claimgate::ledger::{Ledger, MAX_APPEND_BATCH};
use claimgate::policy::Policy;
use claimgate::refusal::Refusal;
use claimgate::rules::World;
use claimgate::scenario::{self, ReplayLine, Scenario};
use claimgate::server::{self, Gate, ServeConfig};
use claimgate::strict_json::{self, Document, Duplicate, Step, StrictError};

mod demo;
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Largest event input `append` reads, in bytes.
const MAX_APPEND_INPUT_BYTES: u64 = 256 * 1024 * 1024;
/// `append`'s exit code when some events were refused (the others were appended).
const EXIT_SOME_REFUSED: u8 = 3;
/// Refused events `append`'s summary names one by one; the rest are counted.
const MAX_REFUSALS_SUMMARISED: usize = 5;

/// The exit codes, for `--help`.
const EXIT_CODES: &str = "Exit codes: 0 done; 1 could not run (the ledger is damaged, foreign, lost, \
locked by another process, or failed); 2 bad input (usage, an unreadable input file, no ledger at --data, \
`init` where a ledger exists); 3 `append` only: some events were refused (the others were appended).";

#[derive(Parser)]
#[command(
    name = "claimgate",
    version,
    about = "Claim-settlement gate for medical-insurance practitioner scoring (RULES.md R1-R22)",
    after_help = EXIT_CODES
)]
struct Cli {
    /// A JSON policy file (R13, R14, R20); absent keys keep their defaults.
    #[arg(long, global = true, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The ledger on PostgreSQL (postgres://user@host:port/db?schema=NAME) instead
    /// of the embedded one under --data; snapshots and the audit log stay under --data.
    /// TLS as libpq: sslmode=disable|prefer|require|verify-ca|verify-full, sslrootcert=PEM.
    #[arg(long, global = true, value_name = "URL", env = "CLAIMGATE_STORE")]
    store: Option<String>,
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
    #[command(after_help = "Standard output: one JSON line per event, {\"event\":i,\"seq\":n} or \
{\"event\":i,\"error\":\"<R8 code>\"}. Standard error: each refusal's reason, then a summary \
(\"appended 8 of 10 events (1 already recorded); 2 refused: ...\").\n\nExit codes: 0 every event \
was accepted; 3 some were refused (the others were appended); 1 could not run (the ledger is damaged, \
foreign, lost, locked, or failed: nothing more was appended); 2 bad input (usage, unreadable events, \
no ledger at --data without --init).")]
    Append {
        /// Data directory holding the ledger; one without a ledger is refused unless --init.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Start a new, empty ledger if --data has none (see `claimgate init`).
        #[arg(long)]
        init: bool,
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
    /// Serve the HTTP gate on a data directory (checks, administration, health, metrics).
    #[command(after_help = EXIT_CODES)]
    Serve {
        /// Start a new, empty ledger if --data has none, creating the directory
        /// (without it such a directory is refused); an existing ledger is opened.
        /// A lost ledger (its audit log or snapshots remain) is refused even so.
        /// No effect with --store (a PostgreSQL schema is created on first use).
        #[arg(long)]
        init: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Start a new, empty embedded ledger in --data (creating the directory), under
    /// --policy if given. Refused where a ledger exists (exit 2) or was lost (exit 1).
    Init {
        #[arg(long, default_value = "data")]
        data: PathBuf,
    },
    /// Create a data directory with a generated national population, print example
    /// requests with real codes from it, and serve.
    Demo {
        /// Practitioners to generate (institutions: one per 20).
        #[arg(long, default_value_t = claimgate::population::DEMO_PRACTITIONERS)]
        practitioners: u64,
        /// Seed of the generated population.
        #[arg(long, default_value_t = claimgate::population::DEMO_SEED)]
        seed: u64,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Write or verify index snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Read the decision log (every reject and emergency exemption, R19).
    #[command(subcommand)]
    Audit(AuditCommand),
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

#[derive(clap::Args)]
struct ServerArgs {
    /// Data directory holding the ledger, snapshots and audit log.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Address for checks (port 0 picks a free port).
    #[arg(long, default_value = server::DEFAULT_LISTEN)]
    listen: std::net::SocketAddr,
    /// Address for administration (port 0 picks a free port).
    #[arg(long, default_value = server::DEFAULT_ADMIN_LISTEN)]
    admin_listen: std::net::SocketAddr,
    /// File holding the admin bearer token (else CLAIMGATE_ADMIN_TOKEN).
    #[arg(long, value_name = "PATH")]
    admin_token_file: Option<PathBuf>,
    /// File holding a read-only bearer token (else CLAIMGATE_READ_TOKEN): it
    /// reads integrity files and the audit, and cannot append. Without one,
    /// only the admin token reads them.
    #[arg(long, value_name = "PATH")]
    read_token_file: Option<PathBuf>,
    /// How long a check with `min_seq` waits for the index, in milliseconds.
    #[arg(long, default_value_t = server::DEFAULT_MIN_SEQ_WAIT.as_millis() as u64)]
    min_seq_wait_ms: u64,
    /// Ready only while the index is at most this many events behind the ledger.
    #[arg(long, default_value_t = server::DEFAULT_READY_MAX_LAG)]
    ready_max_lag: u64,
    /// While the ledger cannot be read, stay ready at most this long (ms).
    #[arg(long, default_value_t = server::DEFAULT_READY_MAX_OUTAGE.as_millis() as u64)]
    ready_max_outage_ms: u64,
    /// Most open connections on the check listener; past it new ones are closed at once.
    #[arg(long, default_value_t = server::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Most open connections one client address may hold on the check listener
    /// (the admin listener allows 16 per address); past it new ones are closed at once.
    #[arg(long, default_value_t = server::limits::DEFAULT_MAX_CONNECTIONS_PER_CLIENT)]
    max_connections_per_client: usize,
    /// Request-body bytes all requests together may hold while they are read and
    /// parsed (each body's first 64 KiB excepted); past it a request is 503 busy.
    #[arg(long, default_value_t = server::limits::DEFAULT_MAX_INFLIGHT_BODY_BYTES)]
    max_inflight_body_bytes: usize,
    /// Integrity-file and explain reads that may wait for one of the 4 query
    /// threads (each at most 5 s); past it a read is 503 busy.
    #[arg(long, default_value_t = server::queries::DEFAULT_MAX_QUEUED_READS)]
    max_queued_reads: usize,
    /// Write an index snapshot (in the background) every this many events, so a
    /// restart tails only what came after; 0: only on POST /v1/snapshot.
    #[arg(long, default_value_t = server::DEFAULT_SNAPSHOT_EVERY_EVENTS)]
    snapshot_every_events: u64,
    /// Tests only: the sync thread's poll interval when nothing woke it, in
    /// milliseconds (default 50), so a test can tell a notification from polling.
    #[arg(long, hide = true, value_name = "MS")]
    sync_idle_ms: Option<u64>,
    /// Crash campaign only: pause every snapshot write at STAGE for MS
    /// milliseconds (half-written:MS or before-rename:MS).
    #[arg(long, hide = true, value_name = "STAGE:MS", value_parser = server::FaultPause::parse)]
    fault_snapshot_pause: Option<server::FaultPause>,
    /// Most open connections on the admin listener (a cap of its own, so a flood
    /// of check connections cannot lock administration out).
    #[arg(long, default_value_t = server::DEFAULT_ADMIN_MAX_CONNECTIONS)]
    admin_max_connections: usize,
    /// How long a client may take to send a request's headers, in milliseconds;
    /// also how long an idle keep-alive connection is kept. Then it is closed.
    #[arg(long, default_value_t = server::DEFAULT_HEADER_READ_TIMEOUT.as_millis() as u64)]
    header_timeout_ms: u64,
    /// How long a client may take to send a request body once its headers are
    /// in, in milliseconds; then 408 request_timeout.
    #[arg(long, default_value_t = server::DEFAULT_BODY_READ_TIMEOUT.as_millis() as u64)]
    body_timeout_ms: u64,
    /// How long writing an answer may make no progress (a client that leaves
    /// its answers unread), in milliseconds; then the connection is closed.
    #[arg(long, default_value_t = server::DEFAULT_WRITE_STALL_TIMEOUT.as_millis() as u64)]
    write_timeout_ms: u64,
    /// The decision log's directory (default DATA/audit): put it on a disk of
    /// its own to keep its growth away from the ledger's.
    #[arg(long, value_name = "DIR")]
    audit_dir: Option<PathBuf>,
    /// Seal a decision-log segment and begin the next past this many bytes.
    #[arg(long, default_value_t = claimgate::audit::log::DEFAULT_SEGMENT_BYTES)]
    audit_segment_bytes: u64,
    /// Delete sealed decision-log segments last written more than this many
    /// days ago (default: keep everything).
    #[arg(long, value_name = "DAYS")]
    audit_retain_days: Option<u64>,
    /// Free bytes the decision log never takes on its file system; past it,
    /// exemptions are answered audit_unavailable (rejects still answered).
    #[arg(long, default_value_t = claimgate::audit::log::DEFAULT_RESERVE_BYTES)]
    audit_reserve_bytes: u64,
    /// Decision records accepted but not yet written before new ones are refused
    /// (a batch's records are taken or refused whole: keep this above the
    /// largest batch's lines).
    #[arg(long, default_value_t = claimgate::audit::log::DEFAULT_QUEUE_RECORDS)]
    audit_queue_records: usize,
}

impl ServerArgs {
    fn config(&self) -> Result<ServeConfig, Failure> {
        let admin_token = token_from(self.admin_token_file.as_deref(), "--admin-token-file", "CLAIMGATE_ADMIN_TOKEN")?;
        let read_token = token_from(self.read_token_file.as_deref(), "--read-token-file", "CLAIMGATE_READ_TOKEN")?;
        if admin_token.is_some() && admin_token == read_token {
            return Err(bad_input(
                "the read-only token (--read-token-file or CLAIMGATE_READ_TOKEN) is the admin token \
                 (--admin-token-file or CLAIMGATE_ADMIN_TOKEN): a read token must not be able to append, give it a value of its own",
            ));
        }
        let mut config = ServeConfig::new(self.data.clone());
        config.listen = self.listen;
        config.admin_listen = self.admin_listen;
        config.admin_token = admin_token;
        config.read_token = read_token;
        config.min_seq_wait = std::time::Duration::from_millis(self.min_seq_wait_ms);
        config.ready_max_lag = self.ready_max_lag;
        config.ready_max_outage = std::time::Duration::from_millis(self.ready_max_outage_ms);
        for (flag, value) in [
            ("--max-connections", self.max_connections as u64),
            ("--max-connections-per-client", self.max_connections_per_client as u64),
            ("--max-inflight-body-bytes", self.max_inflight_body_bytes as u64),
            ("--admin-max-connections", self.admin_max_connections as u64),
            ("--header-timeout-ms", self.header_timeout_ms),
            ("--body-timeout-ms", self.body_timeout_ms),
            ("--write-timeout-ms", self.write_timeout_ms),
        ] {
            if value == 0 {
                return Err(bad_input(format!("{flag} must be at least 1")));
            }
        }
        config.max_connections = self.max_connections;
        config.max_connections_per_client = self.max_connections_per_client;
        config.max_inflight_body_bytes = self.max_inflight_body_bytes;
        config.max_queued_reads = self.max_queued_reads;
        if let Some(ms) = self.sync_idle_ms {
            config.sync_idle = std::time::Duration::from_millis(ms.max(1));
        }
        config.snapshot_every_events = self.snapshot_every_events;
        config.fault_snapshot_pause = self.fault_snapshot_pause;
        config.admin_max_connections = self.admin_max_connections;
        config.header_read_timeout = std::time::Duration::from_millis(self.header_timeout_ms);
        config.body_read_timeout = std::time::Duration::from_millis(self.body_timeout_ms);
        config.write_stall_timeout = std::time::Duration::from_millis(self.write_timeout_ms);
        if let Some(dir) = &self.audit_dir {
            config.audit.dir = dir.clone();
        }
        if self.audit_segment_bytes < claimgate::audit::log::MIN_SEGMENT_BYTES {
            return Err(bad_input(format!(
                "--audit-segment-bytes must be at least {}",
                claimgate::audit::log::MIN_SEGMENT_BYTES
            )));
        }
        if self.audit_queue_records == 0 || self.audit_retain_days == Some(0) {
            return Err(bad_input("--audit-queue-records and --audit-retain-days must be at least 1"));
        }
        config.audit.segment_bytes = self.audit_segment_bytes;
        config.audit.retain = self.audit_retain_days.map(|d| std::time::Duration::from_secs(d * 86_400));
        config.audit.reserve_bytes = self.audit_reserve_bytes;
        config.audit.queue_records = self.audit_queue_records;
        Ok(config)
    }
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

#[derive(Subcommand)]
enum AuditCommand {
    /// Write the decision log's records, oldest first, straight from its
    /// segments (a running gate may go on writing meanwhile), as JSON Lines
    /// or CSV; filters as GET /v1/audit's. Progress goes to stderr.
    Export {
        /// The data directory (its audit log is DATA/audit unless --audit-dir).
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// The audit directory, if the gate was given --audit-dir.
        #[arg(long)]
        audit_dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: claimgate::audit::export::Format,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[arg(long)]
        practitioner: Option<String>,
        #[arg(long)]
        institution: Option<String>,
        /// Service dates on or after this day.
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: Option<String>,
        /// Service dates before this day.
        #[arg(long, value_name = "YYYY-MM-DD")]
        until: Option<String>,
        #[arg(long)]
        claim_id: Option<String>,
        #[arg(long)]
        reason: Option<String>,
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
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad_input(format!("cannot read policy file {}: {e}", path.display())))?;
            Policy::parse(&text, &path.display().to_string()).map_err(|e| bad_input(e.to_string()))?
        }
        None => Policy::default(),
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match cli.command {
        Command::Replay { file } => {
            let scenario = Scenario::load(&file).map_err(|e| bad_input(e.to_string()))?;
            let dir = tempfile::tempdir()?;
            // A fresh temporary store: a directory, or a new schema dropped afterwards.
            let ledger = match &cli.store {
                None => Ledger::open(dir.path(), &policy)?,
                Some(url) => Ledger::open_postgres(&with_temporary_schema(url), &policy)?,
            };
            for line in scenario::run(&scenario, &ledger)? {
                writeln!(out, "{}", line.to_json())?;
                match &line {
                    ReplayLine::Refused { event, refusal, .. } => eprintln!("event {event} refused: {refusal}"),
                    ReplayLine::BadCheck { check, refusal, .. } => eprintln!("check {check} refused: {refusal}"),
                    _ => {}
                }
            }
            ledger.drop_temporary()?;
        }
        Command::Append { data, file, init } => {
            // Before anything is created: a mistyped --data must not become a new ledger.
            let missing = if init { Missing::Create } else { Missing::RefuseOrInit };
            require_ledger(&data, cli.store.as_deref(), missing)?;
            let values = read_events(file)?;
            // The embedded ledger is written here: the data directory must be ours.
            let _lock = if cli.store.is_none() { Some(lock_data(&data)?) } else { None };
            // Again under the lock: nothing else changes the directory from here on.
            require_ledger(&data, cli.store.as_deref(), missing)?;
            let ledger = Ledger::open_store(cli.store.as_deref(), &data, &policy)?;
            // An offline writer: a damaged page anywhere refuses the append
            // (a server finds damage when it reads; this reads everything first).
            if let Some(check) = ledger.page_check() {
                check.run()?;
            }
            let mut tally = AppendTally { total: values.len(), ..AppendTally::default() };
            if let Err(Failure(message, code)) = append_events(&ledger, &values, &policy, &mut out, &mut tally) {
                out.flush()?;
                return Err(Failure(format!("{message} (before it: {})", tally.summary()), code));
            }
            out.flush()?;
            if !tally.refused.is_empty() {
                return Err(Failure(tally.summary(), EXIT_SOME_REFUSED));
            }
            eprintln!("claimgate: {}", tally.summary());
        }
        Command::Check { data, practitioner, institution, date, emergency } => {
            let claim = parse_claim(&serde_json::json!({
                "practitioner_id": practitioner, "institution_id": institution,
                "service_date": date, "emergency": emergency,
            }))
            .map_err(|e| bad_input(e.to_string()))?;
            let ledger = open_existing(&data, cli.store.as_deref(), &policy)?;
            // Only the two entities the claim names decide it (R18): read
            // their histories, as of the head read first, not the ledger.
            let seq = ledger.head()?;
            let mut events = ledger.practitioner_history(claim.practitioner)?;
            events.extend(ledger.institution_history(claim.institution)?);
            events.retain(|r| r.seq <= seq);
            let decision = World::from_events(&events, &policy).decide(&claim);
            let answer = serde_json::json!({
                "verdict": decision.verdict, "reason": decision.reason, "waived": decision.waived,
                "seq": seq, "institution_grade": decision.institution_grade,
            });
            writeln!(out, "{answer}")?;
        }
        Command::Serve { init, server } => {
            let mut config = server.config()?;
            config.store = cli.store.clone();
            // Before the lock creates the directory: a mistyped --data must not become a new ledger.
            let missing = if init { Missing::Create } else { Missing::RefuseOrInit };
            require_ledger(&config.data, config.store.as_deref(), missing)?;
            let lock = lock_data(&config.data)?;
            // Again under the lock (the gate checks for a lost ledger once more).
            require_ledger(&config.data, config.store.as_deref(), missing)?;
            drop(out);
            run_server(config, &policy, None, lock)?;
            return Ok(());
        }
        Command::Demo { practitioners, seed, server } => {
            let mut config = server.config()?;
            config.store = cli.store.clone();
            if config.admin_token.is_none() {
                config.admin_token = Some(random_token()?);
            }
            if config.read_token.is_none() {
                config.read_token = Some(random_token()?);
            }
            // The demo makes its own ledger, but never over one that was lost.
            require_ledger(&config.data, config.store.as_deref(), Missing::Create)?;
            let lock = lock_data(&config.data)?;
            let examples = demo::prepare(&config.data, config.store.as_deref(), practitioners, seed, &policy)?;
            drop(out);
            run_server(config, &policy, Some(examples), lock)?;
            return Ok(());
        }
        Command::Init { data } => {
            if cli.store.is_some() {
                return Err(bad_input(
                    "init makes an embedded ledger under --data; a PostgreSQL store (--store, CLAIMGATE_STORE) \
                     creates its schema on first use",
                ));
            }
            require_no_ledger(&data)?;
            let _lock = lock_data(&data)?;
            // Again under the lock: another process may have made one meanwhile.
            require_no_ledger(&data)?;
            let ledger = Ledger::open(&data, &policy)?;
            writeln!(out, "{}", serde_json::json!({"created": ledger.describe(), "seq": ledger.head()?}))?;
        }
        Command::Snapshot(SnapshotCommand::Write { data }) => {
            require_ledger(&data, cli.store.as_deref(), Missing::Refuse)?;
            let _lock = lock_data(&data)?;
            let ledger = Arc::new(open_existing(&data, cli.store.as_deref(), &policy)?);
            let started = Instant::now();
            let restored = restore::restore(&data, &ledger)?;
            for (path, why) in &restored.refused {
                eprintln!("claimgate: skipped snapshot {}: {why}", path.display());
            }
            let handle = Arc::new(IndexHandle::new(restored.version));
            Syncer::new(ledger.clone(), handle.clone()).catch_up()?;
            let base = handle.load().whole_base();
            let built = started.elapsed();
            let owner = Owner::new(ledger.id(), ledger.policy());
            let path = snapshot::write(&data.join(snapshot::SNAPSHOT_DIR), &base, owner)?;
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
        Command::Audit(AuditCommand::Export {
            data,
            audit_dir,
            format,
            output,
            practitioner,
            institution,
            from,
            until,
            claim_id,
            reason,
        }) => {
            let dir = audit_dir.unwrap_or_else(|| data.join(claimgate::audit::AUDIT_DIR));
            let date = |flag: &str, v: Option<String>| {
                v.map(|t| CivilDate::parse(&t).map(|d| d.to_string()).map_err(|e| bad_input(format!("{flag}: {e}"))))
                    .transpose()
            };
            let q = claimgate::audit::AuditQuery {
                practitioner: practitioner
                    .map(|c| PractitionerCode::parse(&c).map(|c| c.to_string()))
                    .transpose()
                    .map_err(|e| bad_input(format!("--practitioner: {e}")))?,
                institution: institution
                    .map(|c| InstitutionCode::parse(&c).map(|c| c.to_string()))
                    .transpose()
                    .map_err(|e| bad_input(format!("--institution: {e}")))?,
                from: date("--from", from)?,
                until: date("--until", until)?,
                claim_id,
                reason: match reason {
                    Some(r) if !claimgate::audit::query::REASONS.contains(&r.as_str()) => {
                        return Err(bad_input(format!(
                            "--reason must be one of {}",
                            claimgate::audit::query::REASONS.join(", ")
                        )))
                    }
                    r => r,
                },
                before: None,
                limit: usize::MAX,
            };
            let started = std::time::Instant::now();
            let mut progress = |e: &claimgate::audit::export::Exported| {
                eprintln!(
                    "audit export: {} records read, {} written ({:.0} records/s)",
                    e.examined,
                    e.written,
                    e.examined as f64 / started.elapsed().as_secs_f64().max(1e-9)
                )
            };
            let done = match &output {
                Some(path) => {
                    let mut file = BufWriter::new(std::fs::File::create(path)?);
                    let done = claimgate::audit::export::export(&dir, &q, format, &mut file, &mut progress)?;
                    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                    done
                }
                None => claimgate::audit::export::export(&dir, &q, format, &mut out, &mut progress)?,
            };
            eprintln!(
                "audit export: {} records written of {} read from {} segment(s) in {}, {:.1} s",
                done.written,
                done.examined,
                done.segments,
                dir.display(),
                started.elapsed().as_secs_f64()
            );
            if !done.damaged.is_empty() {
                for d in &done.damaged {
                    eprintln!("audit export: damaged, skipped: {d}");
                }
                out.flush()?;
                return Err(Failure(
                    format!("{} damaged segment part(s) were skipped (listed above); the records before each damage were exported", done.damaged.len()),
                    1,
                ));
            }
        }
        Command::File { kind, code, data, as_of } => {
            let as_of = match as_of {
                Some(text) => CivilDate::parse(&text).map_err(|e| bad_input(format!("--as-of: {e}")))?,
                None => SystemClock.today(),
            };
            let ledger = open_existing(&data, cli.store.as_deref(), &policy)?;
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
