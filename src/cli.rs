//! The command line's definitions (clap): the commands, their flags and
//! help, and the settings a server takes. What each command does is in
//! `commands.rs`, one function per command.

use crate::{bad_input, token_from, Failure};
use claimgate::server::{self, ServeConfig};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The exit codes, for `--help`.
pub const EXIT_CODES: &str = "Exit codes: 0 done; 1 could not run (the ledger is damaged, foreign, lost, \
locked by another process, or failed); 2 bad input (usage, an unreadable input file, no ledger at --data, \
`init` where a ledger exists); 3 `append` only: some events were refused (the others were appended).";

#[derive(Parser)]
#[command(
    name = "claimgate",
    version,
    about = "Claim-settlement gate for medical-insurance practitioner scoring (RULES.md R1-R22)",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// A JSON policy file (R13, R14, R20); absent keys keep their defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The ledger on PostgreSQL (postgres://user@host:port/db?schema=NAME) instead
    /// of the embedded one under --data; snapshots and the audit log stay under --data.
    /// TLS as libpq: sslmode=disable|prefer|require|verify-ca|verify-full, sslrootcert=PEM.
    #[arg(long, global = true, value_name = "URL", env = "CLAIMGATE_STORE")]
    pub store: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Import roster CSV files (ROSTERS.md: institutions, registrations) and JSON
    /// Lines of events (.jsonl): each row's events carry an event_id derived from
    /// its content (R7a), so importing again, or again after an interruption,
    /// adds nothing already there. Institutions go first, then registrations, then
    /// events. Rows refused (bad input R4, or R8) are written to --rejects with
    /// file, line, column, error code and message; the others are imported.
    #[command(
        after_help = "Standard output: one JSON summary {\"rows\",\"appended\",\"already_recorded\",\"refused\",\"rejects\"}. \
Standard error: progress (rows, rows/s, time left), then a summary.\n\nExit codes: 0 every row imported (or \
already there); 3 some rows were refused (listed in --rejects; the others were imported); 1 could not run \
(the ledger is damaged, foreign, lost, locked, or failed); 2 bad input (usage, an unreadable file, a file \
that is not a roster, no ledger at --data without --init)."
    )]
    Import {
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Make the embedded ledger if --data has none (never over a lost one).
        #[arg(long)]
        init: bool,
        /// Where refused rows are listed (CSV: file,line,column,error,message).
        #[arg(long, value_name = "FILE", default_value = "import-rejects.csv")]
        rejects: PathBuf,
        /// Send the events to a running gate's admin API (http://HOST:PORT of its
        /// admin listener) instead of opening a ledger: for the ledger a serving
        /// gate holds. Needs --token-file.
        #[arg(long, value_name = "URL", conflicts_with = "init")]
        gate: Option<String>,
        /// The file holding the admin token, with --gate.
        #[arg(long, value_name = "FILE", requires = "gate")]
        token_file: Option<PathBuf>,
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Write roster CSV files (ROSTERS.md: institutions.csv, registrations.csv) of
    /// the synthetic population, to try and measure `import` at any size.
    Roster {
        #[arg(long, default_value_t = claimgate::population::DEMO_PRACTITIONERS)]
        practitioners: u64,
        #[arg(long, default_value_t = claimgate::population::DEMO_SEED)]
        seed: u64,
        /// The directory to write the two files into (created if absent).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Write the ledger as JSON Lines, one accepted event per line with its seq
    /// ({"seq":N,"event":{...}}), every event up to the head read at the start
    /// (a consistent view; a serving gate's ledger can be exported while it serves).
    Export {
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Write here (synced to disk at the end) instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Rebuild an empty ledger from an export, seq for seq: every event passes R8
    /// again and must land at its own seq. Into --data, a directory without a
    /// ledger (built aside and moved into place only when complete), or into
    /// --store's empty schema. FILE `-` reads standard input.
    Restore {
        #[arg(long, default_value = "data")]
        data: PathBuf,
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print a running gate's re-settlement list (the rejected lines whose answer
    /// now differs, with the change that caused it) or recovery list (windows
    /// blocked for dates already past), every page from --after-seq, as JSON
    /// Lines or CSV. With several nodes, run it against each node and take the
    /// union of the re-settlement lists (each node logs its own decisions).
    Readjudication {
        /// The gate's listener, http://HOST:PORT (check or admin).
        #[arg(long)]
        gate: String,
        /// The file holding the read-only (or admin) token.
        #[arg(long, value_name = "FILE")]
        token_file: PathBuf,
        /// resettlement or recovery.
        #[arg(long, value_parser = ["resettlement", "recovery"])]
        list: String,
        /// Only changes after this seq (a previous run's last line says where to resume).
        #[arg(long, default_value_t = 0)]
        after_seq: u64,
        #[arg(long)]
        institution: Option<String>,
        #[arg(long)]
        practitioner: Option<String>,
        /// The six region digits of an institution code.
        #[arg(long)]
        region: Option<String>,
        #[arg(long, default_value = "json", value_parser = ["json", "csv"])]
        format: String,
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
pub struct ServerArgs {
    /// Data directory holding the ledger, snapshots and audit log.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Address for checks (port 0 picks a free port).
    #[arg(long, default_value = server::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// Address for administration (port 0 picks a free port).
    #[arg(long, default_value = server::DEFAULT_ADMIN_LISTEN)]
    pub admin_listen: std::net::SocketAddr,
    /// File holding the admin bearer token (else CLAIMGATE_ADMIN_TOKEN).
    #[arg(long, value_name = "PATH")]
    pub admin_token_file: Option<PathBuf>,
    /// File holding a read-only bearer token (else CLAIMGATE_READ_TOKEN): it
    /// reads integrity files and the audit, and cannot append. Without one,
    /// only the admin token reads them.
    #[arg(long, value_name = "PATH")]
    pub read_token_file: Option<PathBuf>,
    /// How long a check with `min_seq` waits for the index, in milliseconds.
    #[arg(long, default_value_t = server::DEFAULT_MIN_SEQ_WAIT.as_millis() as u64)]
    pub min_seq_wait_ms: u64,
    /// Ready only while the index is at most this many events behind the ledger.
    #[arg(long, default_value_t = server::DEFAULT_READY_MAX_LAG)]
    pub ready_max_lag: u64,
    /// While the ledger cannot be read, stay ready at most this long (ms).
    #[arg(long, default_value_t = server::DEFAULT_READY_MAX_OUTAGE.as_millis() as u64)]
    pub ready_max_outage_ms: u64,
    /// Most open connections on the check listener; past it new ones are closed at once.
    #[arg(long, default_value_t = server::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Most open connections one client address may hold on the check listener
    /// (the admin listener allows 16 per address); past it new ones are closed at once.
    #[arg(long, default_value_t = server::limits::DEFAULT_MAX_CONNECTIONS_PER_CLIENT)]
    pub max_connections_per_client: usize,
    /// Request-body bytes all requests together may hold while they are read and
    /// parsed (each body's first 64 KiB excepted); past it a request is 503 busy.
    #[arg(long, default_value_t = server::limits::DEFAULT_MAX_INFLIGHT_BODY_BYTES)]
    pub max_inflight_body_bytes: usize,
    /// Integrity-file and explain reads that may wait for one of the 4 query
    /// threads (each at most 5 s); past it a read is 503 busy.
    #[arg(long, default_value_t = server::queries::DEFAULT_MAX_QUEUED_READS)]
    pub max_queued_reads: usize,
    /// Write an index snapshot (in the background) every this many events, so a
    /// restart tails only what came after; 0: only on POST /v1/snapshot.
    #[arg(long, default_value_t = server::DEFAULT_SNAPSHOT_EVERY_EVENTS)]
    pub snapshot_every_events: u64,
    /// Keep no change log on this node: no standing changes are computed, and
    /// /v1/changes and /v1/readjudication answer 503 changes_unavailable (a
    /// node that only answers checks; the append-cost baseline of BENCHMARKS.md).
    #[arg(long)]
    pub no_change_feed: bool,
    /// Tests only: the sync thread's poll interval when nothing woke it, in
    /// milliseconds (default 50), so a test can tell a notification from polling.
    #[arg(long, hide = true, value_name = "MS")]
    pub sync_idle_ms: Option<u64>,
    /// Crash campaign only: pause every snapshot write at STAGE for MS
    /// milliseconds (half-written:MS or before-rename:MS).
    #[arg(long, hide = true, value_name = "STAGE:MS", value_parser = server::FaultPause::parse)]
    pub fault_snapshot_pause: Option<server::FaultPause>,
    /// Most open connections on the admin listener (a cap of its own, so a flood
    /// of check connections cannot lock administration out).
    #[arg(long, default_value_t = server::DEFAULT_ADMIN_MAX_CONNECTIONS)]
    pub admin_max_connections: usize,
    /// How long a client may take to send a request's headers, in milliseconds;
    /// also how long an idle keep-alive connection is kept. Then it is closed.
    #[arg(long, default_value_t = server::DEFAULT_HEADER_READ_TIMEOUT.as_millis() as u64)]
    pub header_timeout_ms: u64,
    /// How long a client may take to send a request body once its headers are
    /// in, in milliseconds; then 408 request_timeout.
    #[arg(long, default_value_t = server::DEFAULT_BODY_READ_TIMEOUT.as_millis() as u64)]
    pub body_timeout_ms: u64,
    /// How long writing an answer may make no progress (a client that leaves
    /// its answers unread), in milliseconds; then the connection is closed.
    #[arg(long, default_value_t = server::DEFAULT_WRITE_STALL_TIMEOUT.as_millis() as u64)]
    pub write_timeout_ms: u64,
    /// The decision log's directory (default DATA/audit): put it on a disk of
    /// its own to keep its growth away from the ledger's.
    #[arg(long, value_name = "DIR")]
    pub audit_dir: Option<PathBuf>,
    /// Seal a decision-log segment and begin the next past this many bytes.
    #[arg(long, default_value_t = claimgate::audit::log::DEFAULT_SEGMENT_BYTES)]
    pub audit_segment_bytes: u64,
    /// Delete sealed decision-log segments last written more than this many
    /// days ago (default: keep everything).
    #[arg(long, value_name = "DAYS")]
    pub audit_retain_days: Option<u64>,
    /// Free bytes the decision log never takes on its file system; past it,
    /// exemptions are answered audit_unavailable (rejects still answered).
    #[arg(long, default_value_t = claimgate::audit::log::DEFAULT_RESERVE_BYTES)]
    pub audit_reserve_bytes: u64,
    /// Decision records accepted but not yet written before new ones are refused
    /// (a batch's records are taken or refused whole: keep this above the
    /// largest batch's lines).
    #[arg(long, default_value_t = claimgate::audit::log::DEFAULT_QUEUE_RECORDS)]
    pub audit_queue_records: usize,
}

impl ServerArgs {
    pub fn config(&self) -> Result<ServeConfig, Failure> {
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
        config.change_feed = !self.no_change_feed;
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
pub enum SnapshotCommand {
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
pub enum AuditCommand {
    /// Write the decision log's records, oldest first, straight from its
    /// segments (a running gate may go on writing meanwhile), as JSON Lines
    /// or CSV; filters as GET /v1/audit's. Progress goes to stderr.
    Export(ExportArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FileKind {
    Practitioner,
    Institution,
}

/// What `claimgate audit export` selects and where it writes.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// The data directory (its audit log is DATA/audit unless --audit-dir).
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// The audit directory, if the gate was given --audit-dir.
    #[arg(long)]
    pub audit_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: claimgate::audit::export::Format,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    #[arg(long)]
    pub practitioner: Option<String>,
    #[arg(long)]
    pub institution: Option<String>,
    /// Service dates on or after this day.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: Option<String>,
    /// Service dates before this day.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub until: Option<String>,
    #[arg(long)]
    pub claim_id: Option<String>,
    #[arg(long)]
    pub reason: Option<String>,
}
