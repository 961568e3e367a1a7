//! The server's settings and its named limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default check listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default administration listener.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8081";
/// Largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most events in one `POST /v1/events`.
pub const MAX_EVENTS_PER_REQUEST: usize = claimgate_store::ledger::MAX_APPEND_BATCH;
/// Longest a client may ask `min_seq` to wait, whatever it asks.
pub const MAX_MIN_SEQ_WAIT: Duration = Duration::from_secs(30);
/// Largest request head (request line and headers), in bytes (hyper's
/// `max_header_size`; without it only hyper's read buffer limit, about 400 KiB
/// and not exact, applied). A larger head is refused by hyper with a bare 431
/// and the connection closed; the gate's own heads are a few hundred bytes.
/// (hyper also refuses more than 100 headers, likewise.)
pub const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;
/// Default for `--header-timeout-ms`: how long a client may take to send a
/// request's head (request line and headers). hyper starts this timer whenever
/// a connection waits for a request head, on a new connection and between
/// keep-alive requests alike, so it also bounds how long an idle connection
/// holds one of the connection cap's slots. On expiry the connection is
/// closed without an answer (counted as `claimgate_header_timeouts_total`).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for `--body-timeout-ms`: how long a client may take to send a
/// request body once its headers are in (1 MiB at 1 Mbit/s takes about 8 s).
/// On expiry the answer is 408 `request_timeout` and the connection closes.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for `--write-timeout-ms`: how long writing an answer may make no
/// progress (a client that leaves its answers unread) before the connection
/// is closed (counted as `claimgate_write_timeouts_total`).
pub const DEFAULT_WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for `--max-connections`: most open connections on the check listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4_096;
/// Default for `--admin-max-connections`: most open connections on the admin
/// listener. A cap of its own, so a flood of check connections can never lock
/// the operators (and their `/metrics` and `/readyz`) out of the admin listener.
pub const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 64;

/// Default for `--min-seq-wait-ms`: how long a check with `min_seq` waits
/// for the index before 503 `stale_index`.
pub const DEFAULT_MIN_SEQ_WAIT: Duration = Duration::from_secs(1);
/// Default for `--ready-max-lag`: ready only while the index is at most this
/// many events behind the ledger.
pub const DEFAULT_READY_MAX_LAG: u64 = 10_000;
/// Default for `--ready-max-outage-ms`: how long the gate stays ready,
/// serving its last index, while the ledger cannot be read.
pub const DEFAULT_READY_MAX_OUTAGE: Duration = Duration::from_secs(30);

/// How often the sync thread reads the ledger head when nothing woke it (a
/// local append, a `min_seq` wait, a PostgreSQL notification).
pub const DEFAULT_SYNC_IDLE: Duration = Duration::from_millis(50);

/// Events between the snapshots a serving gate writes by itself.
pub const DEFAULT_SNAPSHOT_EVERY_EVENTS: u64 = 1_000_000;

/// Everything `claimgate serve` is told.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data: PathBuf,
    /// The ledger on PostgreSQL, if given; else the embedded one under `data`.
    pub store: Option<String>,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Bearer token for the admin listener; the server will not start without one.
    pub admin_token: Option<String>,
    /// Bearer token that reads (integrity files, the audit) but never writes;
    /// `None`: only the admin token reads them.
    pub read_token: Option<String>,
    /// How long a check with `min_seq` waits for the index to catch up.
    pub min_seq_wait: Duration,
    /// Ready only while the index is at most this many events behind the ledger.
    pub ready_max_lag: u64,
    /// While the ledger cannot be read, stay ready (serving the last index) at
    /// most this long; then fail closed.
    pub ready_max_outage: Duration,
    /// How long a client may take to send a request head; also the longest an
    /// idle keep-alive connection is kept ([`DEFAULT_HEADER_READ_TIMEOUT`]).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request body ([`DEFAULT_BODY_READ_TIMEOUT`]).
    pub body_read_timeout: Duration,
    /// How long writing an answer may make no progress ([`DEFAULT_WRITE_STALL_TIMEOUT`]).
    pub write_stall_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Sync thread's poll interval when no write woke it.
    pub sync_idle: Duration,
    /// Most open connections on the check listener; past it a new connection
    /// is closed at once and counted (`claimgate_connections_refused_total`).
    pub max_connections: usize,
    /// Write an index snapshot every this many events (0: only on request).
    pub snapshot_every_events: u64,
    /// Whether this node keeps a change log and serves the change feed and
    /// the readjudication lists (`--no-change-feed` turns it off).
    pub change_feed: bool,
    /// Crash campaign only: pause snapshot writes at a stage.
    pub fault_snapshot_pause: Option<super::snapshots::FaultPause>,
    /// Most open connections on the admin listener, likewise.
    pub admin_max_connections: usize,
    /// The decision log: its directory (default `DATA/audit`), segment size,
    /// retention, free-space reserve and queue bound.
    pub audit: claimgate_audit::AuditConfig,
    /// Most open connections one client address may hold on the check listener.
    pub max_connections_per_client: usize,
    /// Request-body bytes all requests together may hold (past each body's
    /// free part, [`super::limits::BODY_FREE_BYTES`]).
    pub max_inflight_body_bytes: usize,
    /// Integrity-file and `explain` reads that may wait for a query
    /// connection ([`super::queries::DEFAULT_MAX_QUEUED_READS`]).
    pub max_queued_reads: usize,
}

impl ServeConfig {
    /// Defaults for everything but the data directory.
    pub fn new(data: PathBuf) -> ServeConfig {
        ServeConfig {
            audit: claimgate_audit::AuditConfig::new(data.join(claimgate_audit::AUDIT_DIR)),
            max_connections_per_client: super::limits::DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            max_inflight_body_bytes: super::limits::DEFAULT_MAX_INFLIGHT_BODY_BYTES,
            max_queued_reads: super::queries::DEFAULT_MAX_QUEUED_READS,
            data,
            store: None,
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            admin_listen: DEFAULT_ADMIN_LISTEN.parse().expect("valid default"),
            admin_token: None,
            read_token: None,
            min_seq_wait: DEFAULT_MIN_SEQ_WAIT,
            ready_max_lag: DEFAULT_READY_MAX_LAG,
            ready_max_outage: DEFAULT_READY_MAX_OUTAGE,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            write_stall_timeout: DEFAULT_WRITE_STALL_TIMEOUT,
            shutdown_grace: Duration::from_secs(10),
            sync_idle: DEFAULT_SYNC_IDLE,
            snapshot_every_events: DEFAULT_SNAPSHOT_EVERY_EVENTS,
            change_feed: true,
            fault_snapshot_pause: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            admin_max_connections: DEFAULT_ADMIN_MAX_CONNECTIONS,
        }
    }
}
