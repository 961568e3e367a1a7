//! The gate's shared state: the ledger, the index handle and the thread that
//! keeps it current, the audit writer, metrics, and readiness.

use super::config::ServeConfig;
use super::metrics::Metrics;
use super::snapshots::Snapshots;
use super::Listener;
use claimgate_audit::{AuditLog, AuditRecord, Unrecorded};
use claimgate_index::snapshot::{Owner, SnapshotError};
use claimgate_index::{restore, IndexHandle, IndexVersion, Syncer};
use claimgate_rules::domain::Seq;
use claimgate_rules::policy::Policy;
use claimgate_store::changes::ChangeLog;
use claimgate_store::data_lock::DataDirLock;
use claimgate_store::ledger::{Ledger, LedgerError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The change log's catch-up runs below the checks and the index sync.
const CHANGES_NICENESS: i32 = 10;

/// Why the gate could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no admin token configured: set CLAIMGATE_ADMIN_TOKEN or pass --admin-token-file (the admin listener never runs unauthenticated)")]
    NoAdminToken,
    #[error("the read-only token is the admin token: give --read-token-file (CLAIMGATE_READ_TOKEN) a value of its own, or none")]
    ReadTokenIsAdminToken,
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot open the audit log: {0}")]
    Audit(String),
    #[error("the lock is on {} but the data directory is {}", locked.display(), data.display())]
    WrongLock { locked: PathBuf, data: PathBuf },
    #[error(transparent)]
    LedgerLost(#[from] claimgate_store::data_dir::LedgerLost),
    #[error("cannot build the index from the ledger {ledger}: {source}{advice}")]
    LedgerUnreadable { ledger: String, source: LedgerError, advice: &'static str },
}

/// Checks every page of the ledger file on a thread of its own (holding
/// neither the ledger nor the gate, so shutdown never waits for it) and
/// records what it found in `pages`.
fn start_page_check(check: claimgate_store::ledger::PageCheck, pages: Arc<Mutex<LedgerPages>>) {
    *pages.lock().expect("not poisoned") = LedgerPages::Checking { since: Instant::now() };
    let result = pages.clone();
    let spawned = std::thread::Builder::new().name("ledger-pages".into()).spawn(move || {
        let started = Instant::now();
        let found = match check.run() {
            Ok(()) => {
                tracing::info!(seconds = started.elapsed().as_secs_f64(), "ledger file checked: every page is sound");
                LedgerPages::Sound { seconds: started.elapsed().as_secs_f64() }
            }
            Err(LedgerError::Damaged { detail, .. }) => {
                tracing::error!(%detail, "the ledger file is damaged: keep it, and restore the data directory from a backup; checks go on from the index, and reads or appends that reach the damage will fail");
                LedgerPages::Damaged { detail }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not check the ledger file's pages");
                LedgerPages::Unchecked { error: e.to_string() }
            }
        };
        *result.lock().expect("not poisoned") = found;
    });
    if let Err(e) = spawned {
        *pages.lock().expect("not poisoned") = LedgerPages::Unchecked { error: e.to_string() };
    }
}

impl StartError {
    /// The ledger opened but could not be read through: name it, and say
    /// what to do when it is damaged.
    fn unreadable(ledger: &Ledger, source: LedgerError) -> StartError {
        let advice = if source.cause() == "corrupt" {
            ". The ledger is damaged: keep the file (it is the authoritative record) and restore the data directory from a backup"
        } else {
            ""
        };
        StartError::LedgerUnreadable { ledger: ledger.describe(), source, advice }
    }
}

/// What the sync thread last did, for `/readyz`.
#[derive(Debug, Clone)]
pub struct SyncStatus {
    pub last_swap: Instant,
    pub last_error: Option<String>,
}

/// What the gate last learned about the ledger's head, for `/readyz` and
/// `/metrics` while the ledger cannot be reached.
#[derive(Debug, Clone, Copy)]
pub struct LedgerSeen {
    /// The last head read successfully.
    pub head: Seq,
    /// Since when reads have failed, if they do now.
    pub unreachable_since: Option<Instant>,
}

/// The last time the ledger failed the gate (a lost session, a failed read),
/// for `/readyz`: an outage of milliseconds is still reported afterwards.
#[derive(Debug, Clone)]
pub struct LedgerTrouble {
    /// How many times since start.
    pub count: u64,
    pub last_at: Instant,
    /// What the gate was doing and the error, as logged.
    pub last: String,
}

/// Why appends fail now (until one succeeds again), for `/readyz`.
#[derive(Debug, Clone)]
pub struct AppendFailure {
    /// When the first of the current run of failures happened.
    pub since: Instant,
    /// [`LedgerError::cause`] of the latest failure.
    pub cause: &'static str,
    /// The latest failure, as answered.
    pub what: String,
}

/// The background check of the embedded ledger file's pages, started with
/// the gate: a restore from a snapshot reads only the ledger's tail, so
/// damage elsewhere would otherwise surface only when a read reaches it.
#[derive(Debug, Clone)]
pub enum LedgerPages {
    /// A shared (PostgreSQL) ledger: the database checks its own pages.
    NotChecked,
    Checking {
        since: Instant,
    },
    Sound {
        seconds: f64,
    },
    Damaged {
        detail: String,
    },
    /// The check itself could not run (say, the file could not be opened).
    Unchecked {
        error: String,
    },
}

/// Decision records handed to the log, not yet known durable.
pub struct Recording {
    exemptions: u64,
    rejects: u64,
    ticket: Result<claimgate_audit::Ticket, Unrecorded>,
}

/// Shared state of a running gate.
pub struct Gate {
    pub config: ServeConfig,
    pub ledger: Arc<Ledger>,
    pub index: Arc<IndexHandle>,
    pub metrics: Metrics,
    pub audit: AuditLog,
    /// The published index `seq`, for `min_seq` waiters.
    pub seq_watch: tokio::sync::watch::Sender<Seq>,
    pub sync_status: Mutex<SyncStatus>,
    /// Snapshots refused at start-up, reported by `/readyz`.
    pub refused_snapshots: Vec<(PathBuf, String)>,
    /// The snapshot the index was restored from at start-up (`None`: built from the ledger).
    pub restored_from: Option<PathBuf>,
    wake_sync: crossbeam_channel::Sender<()>,
    stop: Arc<AtomicBool>,
    sync_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    listen_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// For a shared ledger: whether the append-notification session is up.
    pub listener_connected: AtomicBool,
    ledger_seen: Mutex<LedgerSeen>,
    /// The sync thread's last reading of the ledger head (`None`: it failed)
    /// and when it was taken: `/readyz` and `/metrics` serve this, so a
    /// request to them never reads the ledger.
    head_reading: Mutex<(Option<Seq>, Instant)>,
    /// The ledger's failures since start (see [`LedgerTrouble`]).
    pub ledger_trouble: Mutex<Option<LedgerTrouble>>,
    /// Set while appends fail (a full disk, a read-only data directory).
    pub append_failure: Mutex<Option<AppendFailure>>,
    /// Snapshots written while serving.
    pub snapshots: Arc<Snapshots>,
    /// What the background page check of the ledger file found.
    pub ledger_pages: Arc<Mutex<LedgerPages>>,
    /// Connection slots: the check listener's and the admin listener's.
    connections: [Arc<tokio::sync::Semaphore>; 2],
    /// Connections per client address, per listener.
    client_slots: [super::limits::ClientSlots; 2],
    /// Request-body bytes in flight.
    pub body_budget: super::limits::BodyBudget,
    /// The threads that run ledger reads for clients (integrity files, `explain`).
    pub queries: super::queries::QueryPool,
    /// The one thread that appends, in groups (`POST /v1/events`).
    pub appends: super::appends::Appends,
    /// Set while `POST /v1/backup` writes one.
    pub backup_running: AtomicBool,
    /// The standing-change log the feed reads (`None`: it could not be
    /// opened; the feed answers `changes_unavailable`, checks go on).
    pub changes: Option<Arc<ChangeLog>>,
    /// The change log's mark, for feed readers waiting on new changes.
    pub changes_watch: tokio::sync::watch::Sender<Seq>,
    /// Set when the server begins to shut down: open change streams end.
    pub shutting_down: tokio::sync::watch::Sender<bool>,
    /// Open change streams (Server-Sent Events), at most [`super::feed::MAX_CHANGE_STREAMS`].
    pub change_streams: Arc<tokio::sync::Semaphore>,
    wake_changes: crossbeam_channel::Sender<()>,
    changes_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// This process's hold on the data directory, for as long as the gate lives.
    _data_lock: DataDirLock,
}

impl Gate {
    /// Opens the ledger, restores the index (newest valid snapshot, then the
    /// ledger's tail), opens the audit log and starts the sync thread. `lock`
    /// is the caller's hold on `config.data` ([`DataDirLock::acquire`]).
    pub fn start(config: ServeConfig, policy: &Policy, lock: DataDirLock) -> Result<Arc<Gate>, StartError> {
        if config.admin_token.as_deref().is_none_or(str::is_empty) {
            return Err(StartError::NoAdminToken);
        }
        if config.read_token.as_deref().is_some_and(|t| Some(t) == config.admin_token.as_deref()) {
            return Err(StartError::ReadTokenIsAdminToken);
        }
        if lock.dir() != config.data {
            return Err(StartError::WrongLock { locked: lock.dir().to_owned(), data: config.data.clone() });
        }
        if config.store.is_none() {
            claimgate_store::data_dir::refuse_lost_ledger(&config.data)?;
        }
        let ledger = Arc::new(Ledger::open_store(config.store.as_deref(), &config.data, policy)?);
        tracing::info!(ledger = %ledger.describe(), "ledger open");
        let unreadable = |source| StartError::unreadable(&ledger, source);
        let restored = restore::restore(&config.data, &ledger).map_err(unreadable)?;
        for (path, why) in &restored.refused {
            tracing::warn!(snapshot = %path.display(), error = %why, "snapshot refused; falling back");
        }
        match &restored.snapshot {
            Some(path) => {
                tracing::info!(snapshot = %path.display(), seq = restored.version.seq(), "index restored from snapshot")
            }
            None => tracing::info!(seq = restored.version.seq(), "index built from the ledger"),
        }
        // A start without a snapshot reads the whole ledger to build the
        // index anyway: check every page first, so a damaged file is refused
        // at start whichever pages the build happens to read (the file is
        // left untouched). A start from a snapshot reads only the tail, and
        // checks in the background below.
        let pages_checked = match (&restored.snapshot, ledger.page_check()) {
            (None, Some(check)) => {
                let started = Instant::now();
                check.run()?;
                Some(LedgerPages::Sound { seconds: started.elapsed().as_secs_f64() })
            }
            _ => None,
        };
        let refused_snapshots =
            restored.refused.iter().map(|(p, e): &(PathBuf, SnapshotError)| (p.clone(), e.to_string())).collect();
        let start_seq = restored.snapshot.as_ref().map_or(0, |_| restored.version.seq());
        let index = Arc::new(IndexHandle::new(restored.version));
        let started = Instant::now();
        let caught_up = Syncer::new(ledger.clone(), index.clone()).catch_up().map_err(unreadable)?;
        tracing::info!(seq = caught_up, seconds = started.elapsed().as_secs_f64(), "index caught up with the ledger");
        let snapshots = Arc::new(Snapshots::new(
            &config.data,
            Owner::new(ledger.id(), policy),
            config.snapshot_every_events,
            config.fault_snapshot_pause,
            start_seq,
        ));
        let audit = AuditLog::open(&config.data, config.audit.clone()).map_err(|e| StartError::Audit(e.to_string()))?;
        tracing::info!(dir = %config.audit.dir.display(), next_record = audit.writer.shared.durable.lock().expect("not poisoned").next_id, "audit log open");
        let (wake_sync, wake_rx) = crossbeam_channel::bounded(1);
        let (seq_watch, _) = tokio::sync::watch::channel(caught_up);
        let config_caps = (config.max_connections_per_client, config.max_inflight_body_bytes, config.max_queued_reads);
        let connections = [config.max_connections, config.admin_max_connections]
            .map(|cap| Arc::new(tokio::sync::Semaphore::new(cap)));
        let appends = super::appends::Appends::start(ledger.clone());
        let opened = if config.change_feed { Some(ChangeLog::open(&config.data, ledger.id())) } else { None };
        let changes = match opened {
            None => {
                tracing::info!("no change log on this node (--no-change-feed)");
                None
            }
            Some(Ok(log)) => {
                tracing::info!(mark = log.mark(), "change log open");
                Some(Arc::new(log))
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot open the change log; the change feed is unavailable, checks go on");
                None
            }
        };
        let (changes_watch, _) = tokio::sync::watch::channel(changes.as_ref().map_or(0, |l| l.mark()));
        let (wake_changes, wake_changes_rx) = crossbeam_channel::bounded(1);
        let gate = Arc::new(Gate {
            config,
            ledger,
            appends,
            backup_running: AtomicBool::new(false),
            changes,
            changes_watch,
            shutting_down: tokio::sync::watch::channel(false).0,
            change_streams: Arc::new(tokio::sync::Semaphore::new(super::feed::MAX_CHANGE_STREAMS)),
            wake_changes,
            changes_thread: Mutex::new(None),
            index,
            metrics: Metrics::default(),
            audit,
            seq_watch,
            sync_status: Mutex::new(SyncStatus { last_swap: Instant::now(), last_error: None }),
            refused_snapshots,
            restored_from: restored.snapshot.clone(),
            wake_sync,
            stop: Arc::new(AtomicBool::new(false)),
            sync_thread: Mutex::new(None),
            listen_thread: Mutex::new(None),
            listener_connected: AtomicBool::new(false),
            ledger_seen: Mutex::new(LedgerSeen { head: caught_up, unreachable_since: None }),
            head_reading: Mutex::new((Some(caught_up), Instant::now())),
            ledger_trouble: Mutex::new(None),
            append_failure: Mutex::new(None),
            snapshots,
            ledger_pages: Arc::new(Mutex::new(pages_checked.clone().unwrap_or(LedgerPages::NotChecked))),
            connections,
            client_slots: [
                super::limits::ClientSlots::new(config_caps.0),
                super::limits::ClientSlots::new(super::limits::ADMIN_MAX_CONNECTIONS_PER_CLIENT),
            ],
            body_budget: super::limits::BodyBudget::new(config_caps.1),
            queries: super::queries::QueryPool::start(config_caps.2),
            _data_lock: lock,
        });
        let thread = {
            let gate = gate.clone();
            std::thread::Builder::new()
                .name("index-sync".into())
                .spawn(move || gate.sync_loop(wake_rx))
                .expect("spawning the sync thread")
        };
        *gate.sync_thread.lock().expect("not poisoned") = Some(thread);
        if let Some(log) = gate.changes.clone() {
            let g = gate.clone();
            let thread = std::thread::Builder::new()
                .name("change-log".into())
                .spawn(move || g.changes_loop(log, wake_changes_rx))
                .expect("spawning the change-log thread");
            *gate.changes_thread.lock().expect("not poisoned") = Some(thread);
        }
        if let (None, Some(check)) = (&pages_checked, gate.ledger.page_check()) {
            start_page_check(check, gate.ledger_pages.clone());
        }
        // A start that built from the ledger (or an old snapshot) far behind
        // the head writes a snapshot now, in the background, so the next
        // restart does not repeat the build.
        gate.snapshots.after_swap(gate.index.load());
        if gate.ledger.listen_supported() {
            let listener = {
                let gate = gate.clone();
                std::thread::Builder::new()
                    .name("ledger-listen".into())
                    .spawn(move || gate.listen_loop())
                    .expect("spawning the ledger listener")
            };
            *gate.listen_thread.lock().expect("not poisoned") = Some(listener);
        }
        Ok(gate)
    }

    /// Shared ledger only: wakes the sync thread on every append notified by
    /// any node, so freshness is not a poll interval. A lost session is
    /// reopened with backoff; polling every `sync_idle` goes on meanwhile.
    fn listen_loop(self: Arc<Gate>) {
        const WAIT: std::time::Duration = std::time::Duration::from_millis(250);
        const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);
        let mut backoff = std::time::Duration::from_millis(100);
        let mut listener = None;
        while !self.stop.load(Ordering::Relaxed) {
            let Some(l) = listener.as_mut() else {
                match self.ledger.listen() {
                    Some(Ok(l)) => {
                        tracing::info!("listening for appends on the shared ledger");
                        self.listener_connected.store(true, Ordering::Relaxed);
                        backoff = std::time::Duration::from_millis(100);
                        listener = Some(l);
                        // Anything appended while the session was down.
                        self.wake_sync();
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot listen for appends; polling meanwhile");
                        self.note_ledger_trouble(format!("cannot listen for appends: {e}"));
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                    None => return,
                }
                continue;
            };
            match l.wait(WAIT) {
                Ok(true) => self.wake_sync(),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "lost the append-notification session; reconnecting");
                    self.note_ledger_trouble(format!("lost the append-notification session: {e}"));
                    self.metrics.listener_losses.fetch_add(1, Ordering::Relaxed);
                    self.listener_connected.store(false, Ordering::Relaxed);
                    listener = None;
                }
            }
        }
    }

    /// Brings the change log up to the index whenever it is behind (after a
    /// restart from a snapshot, on a new node, after a failed write), one
    /// bounded step at a time at a low priority; the sync records every
    /// step itself once the log is at the index.
    fn changes_loop(self: Arc<Gate>, log: Arc<ChangeLog>, wake: crossbeam_channel::Receiver<()>) {
        const IDLE: std::time::Duration = std::time::Duration::from_secs(1);
        claimgate_store::thread_priority::renice(CHANGES_NICENESS, "change log");
        let started = (Instant::now(), log.mark());
        let mut reported = false;
        while !self.stop.load(Ordering::Relaxed) {
            let today = crate::clock::Clock::today(&crate::clock::SystemClock);
            match claimgate_index::changes::catch_up_step(&self.ledger, &log, self.index.load().seq(), today) {
                Ok(Some(mark)) => {
                    self.changes_watch.send_replace(mark);
                    reported = false;
                }
                Ok(None) => {
                    if !reported && log.mark() > started.1 {
                        tracing::info!(
                            mark = log.mark(),
                            seconds = started.0.elapsed().as_secs_f64(),
                            "change log caught up with the index"
                        );
                        reported = true;
                    }
                    let _ = wake.recv_timeout(IDLE);
                }
                Err(e) => {
                    tracing::error!(error = %e, "change log catch-up failed; retrying");
                    let _ = wake.recv_timeout(IDLE);
                }
            }
        }
    }

    /// Tails the ledger: woken by local writes, else polls every `sync_idle`.
    fn sync_loop(self: Arc<Gate>, wake: crossbeam_channel::Receiver<()>) {
        let mut syncer = Syncer::new(self.ledger.clone(), self.index.clone());
        if let Some(log) = &self.changes {
            syncer =
                syncer.with_changes(log.clone(), Arc::new(|| crate::clock::Clock::today(&crate::clock::SystemClock)));
        }
        while !self.stop.load(Ordering::Relaxed) {
            let _ = wake.recv_timeout(self.config.sync_idle);
            let applied = syncer.apply_pending(|seq| {
                if let Some(log) = &self.changes {
                    self.changes_watch.send_replace(log.mark());
                    if log.mark() < seq {
                        let _ = self.wake_changes.try_send(());
                    }
                }
                self.seq_watch.send_replace(seq);
                self.metrics.swaps.fetch_add(1, Ordering::Relaxed);
                let mut status = self.sync_status.lock().expect("not poisoned");
                status.last_swap = Instant::now();
                status.last_error = None;
                drop(status);
                self.snapshots.after_swap(self.index.load());
            });
            if let Err(e) = applied {
                tracing::error!(error = %e, "index sync failed; serving the last good version");
                self.metrics.sync_errors.fetch_add(1, Ordering::Relaxed);
                self.note_ledger_trouble(format!("index sync failed: {e}"));
                self.sync_status.lock().expect("not poisoned").last_error = Some(e.to_string());
            }
            // The head, for /readyz and /metrics (which never read the ledger).
            // A reading taken just before one of this node's appends returned
            // must not undo what that append noted: the head never goes back.
            let (head, _) = self.observe_head();
            let mut reading = self.head_reading.lock().expect("not poisoned");
            let head = match (head, reading.0) {
                (Some(now), Some(before)) => Some(now.max(before)),
                (now, _) => now,
            };
            *reading = (head, Instant::now());
        }
    }

    /// The sync thread's last reading of the ledger head, what is known from
    /// earlier readings, and how old the last reading is (memory only).
    pub fn head_reading(&self) -> (Option<Seq>, LedgerSeen, std::time::Duration) {
        let (head, at) = *self.head_reading.lock().expect("not poisoned");
        (head, *self.ledger_seen.lock().expect("not poisoned"), at.elapsed())
    }

    /// An append this node made reached `seq`: the head is at least that
    /// (known without reading the ledger; other nodes' appends are seen by
    /// the sync thread's next reading).
    pub fn note_head_at_least(&self, seq: Seq) {
        let mut reading = self.head_reading.lock().expect("not poisoned");
        if let (Some(head), _) = *reading {
            if head < seq {
                *reading = (Some(seq), reading.1);
            }
        }
        let mut seen = self.ledger_seen.lock().expect("not poisoned");
        seen.head = seen.head.max(seq);
    }

    /// Reads the ledger head (blocking) and returns what is known: the head if
    /// it could be read now, and the last successful reading.
    pub fn observe_head(&self) -> (Option<Seq>, LedgerSeen) {
        self.metrics.ledger_head_reads.fetch_add(1, Ordering::Relaxed);
        let head = match self.ledger.head() {
            Ok(head) => Some(head),
            Err(e) => {
                self.note_ledger_trouble(format!("reading the ledger head failed: {e}"));
                None
            }
        };
        let mut seen = self.ledger_seen.lock().expect("not poisoned");
        match head {
            Some(h) => *seen = LedgerSeen { head: h.max(seen.head), unreachable_since: None },
            None => {
                seen.unreachable_since.get_or_insert_with(Instant::now);
            }
        }
        (head, *seen)
    }

    /// Records how an append went: a storage failure is logged and kept for
    /// `/readyz` until an append succeeds again.
    pub fn note_append(&self, result: Result<(), &LedgerError>) {
        let mut failure = self.append_failure.lock().expect("not poisoned");
        match result {
            Ok(()) => {
                if let Some(f) = failure.take() {
                    tracing::info!(failing_for_seconds = f.since.elapsed().as_secs_f64(), "appends succeed again");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, cause = e.cause(), "append failed; nothing was stored");
                let since = failure.as_ref().map_or_else(Instant::now, |f| f.since);
                *failure = Some(AppendFailure { since, cause: e.cause(), what: e.to_string() });
                drop(failure);
                self.note_ledger_trouble(format!("append failed: {e}"));
            }
        }
    }

    /// Remembers a failure of the ledger for `/readyz`.
    fn note_ledger_trouble(&self, what: String) {
        let mut trouble = self.ledger_trouble.lock().expect("not poisoned");
        let count = trouble.as_ref().map_or(0, |t| t.count) + 1;
        *trouble = Some(LedgerTrouble { count, last_at: Instant::now(), last: what });
    }

    /// Asks the sync thread to look at the ledger now.
    pub fn wake_sync(&self) {
        let _ = self.wake_sync.try_send(());
    }

    /// The version to answer from.
    pub fn version(&self) -> Arc<IndexVersion> {
        self.index.load()
    }

    /// A slot for one more connection on `which` listener, if under its cap.
    pub fn connection_permit(&self, which: Listener) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.slots(which).clone().try_acquire_owned().ok()
    }

    /// A slot for one more connection from `ip` on `which` listener, if that
    /// address holds fewer than its cap.
    pub fn client_slot(&self, which: Listener, ip: std::net::IpAddr) -> Option<super::limits::ClientSlot> {
        match which {
            Listener::Check => self.client_slots[0].take(ip),
            Listener::Admin => self.client_slots[1].take(ip),
        }
    }

    /// Connections open on `which` listener.
    pub fn open_connections(&self, which: Listener) -> u64 {
        let cap = match which {
            Listener::Check => self.config.max_connections,
            Listener::Admin => self.config.admin_max_connections,
        };
        cap.saturating_sub(self.slots(which).available_permits()) as u64
    }

    fn slots(&self, which: Listener) -> &Arc<tokio::sync::Semaphore> {
        match which {
            Listener::Check => &self.connections[0],
            Listener::Admin => &self.connections[1],
        }
    }

    /// Hands the decision records of one request to the decision log without
    /// waiting; [`Gate::recorded`] then waits until they are durable (R19:
    /// recorded before answered). In between the caller shapes its answer, so
    /// that work overlaps the fsync.
    pub fn start_recording(&self, records: Vec<AuditRecord>) -> Recording {
        let exemptions = records.iter().filter(|r| r.is_exemption()).count() as u64;
        let rejects = records.len() as u64 - exemptions;
        Recording { exemptions, rejects, ticket: self.audit.writer.submit(records) }
    }

    /// Waits (asynchronously, bounded) for a recording to be durable. On a
    /// refusal the caller answers each exemption `audit_unavailable` and each
    /// reject as decided; both are counted here.
    pub async fn recorded(&self, recording: Recording) -> Result<(), Unrecorded> {
        let Recording { exemptions, rejects, ticket } = recording;
        let outcome = match ticket {
            Ok(ticket) => ticket.durable().await,
            Err(cause) => Err(cause),
        };
        if let Err(cause) = outcome {
            self.metrics.audit_exemptions_refused.fetch_add(exemptions, Ordering::Relaxed);
            let before = self.metrics.audit_rejects_unrecorded.fetch_add(rejects, Ordering::Relaxed);
            if (before + rejects).is_power_of_two() || before == 0 {
                tracing::error!(
                    cause = cause.cause(),
                    exemptions_refused = exemptions,
                    rejects_unrecorded_total = before + rejects,
                    "the decision log refused records: exemptions answered audit_unavailable, rejects answered and counted"
                );
            }
        }
        outcome
    }

    /// Stops the sync thread and flushes the audit log.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.shutting_down.send_replace(true);
        self.wake_sync();
        let _ = self.wake_changes.try_send(());
        if let Some(t) = self.sync_thread.lock().expect("not poisoned").take() {
            let _ = t.join();
        }
        if let Some(t) = self.changes_thread.lock().expect("not poisoned").take() {
            let _ = t.join();
        }
        if let Some(t) = self.listen_thread.lock().expect("not poisoned").take() {
            let _ = t.join();
        }
        self.audit.close();
    }
}
