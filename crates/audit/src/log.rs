//! The decision log's writer: handlers hand it groups of records without
//! blocking, one thread writes them to the newest segment and fsyncs, and
//! each group's sender learns the outcome only after that fsync completed
//! (R19: recorded before answered). Records that arrive while an fsync runs
//! form the next group, so the fsync rate follows the disk, not the traffic,
//! and nothing waits on a timer.
//!
//! When the log cannot take a record (its queue bound reached, the disk full
//! or read-only, an I/O error, free space down to the reserve) the group is
//! refused at once and said so: the caller answers an exemption
//! `audit_unavailable` and still answers a reject. After a failed write the
//! log refuses new records for [`RETRY_INTERVAL`] before it tries the disk
//! again, so a broken disk costs no spinning core and no growing queue, and
//! a shutdown never waits on it.
//!
//! Over 600 lines on purpose: the writer thread and every path a record can
//! take through it (queued, written, fsynced, refused, retried) stay in one
//! file, because the invariant they keep together (no answer without its
//! durable record) is only checkable read as a whole.

use super::record::AuditRecord;
use super::segment::{self, HEADER_BYTES};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Default for `--audit-segment-bytes`: a segment is sealed and a new one
/// begun past this size.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Smallest segment size accepted (a frame must fit with room to spare).
pub const MIN_SEGMENT_BYTES: u64 = 64 * 1024;
/// Default for `--audit-reserve-bytes`: free space on the audit directory's
/// file system the log never takes, so audit growth cannot take the space
/// the ledger needs when both share a disk.
pub const DEFAULT_RESERVE_BYTES: u64 = 256 * 1024 * 1024;
/// Default for `--audit-queue-records`: records accepted but not yet written
/// before new ones are refused (`queue_full`).
pub const DEFAULT_QUEUE_RECORDS: usize = 65_536;
/// Most records one group (one write, one fsync) takes.
pub const MAX_GROUP_RECORDS: usize = 16_384;
/// After a failed write, how long new records are refused before the disk is
/// tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Longest a handler waits for its group's fsync before it answers as if the
/// log had refused it (a disk that hangs must not hold answers forever).
pub const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// At shutdown, how many unwritten records are logged one by one (the rest
/// are counted).
pub const MAX_LOGGED_UNWRITTEN: usize = 100;

/// How the log is set up (`claimgate serve --audit-*`).
#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    /// Sealed segments older than this are deleted (`None`: keep everything).
    pub retain: Option<Duration>,
    pub reserve_bytes: u64,
    pub queue_records: usize,
}

impl AuditConfig {
    /// Defaults, in `dir`.
    pub fn new(dir: PathBuf) -> AuditConfig {
        AuditConfig {
            dir,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            retain: None,
            reserve_bytes: DEFAULT_RESERVE_BYTES,
            queue_records: DEFAULT_QUEUE_RECORDS,
        }
    }
}

/// Why a group of records was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrecorded {
    /// The queue holds its bound of records already.
    QueueFull,
    /// Free space is down to the reserve (`--audit-reserve-bytes`).
    SpaceReserve,
    DiskFull,
    ReadOnly,
    Io,
    /// The write did not complete within [`ANSWER_WAIT`].
    Timeout,
    /// The log is shutting down.
    Closed,
}

impl Unrecorded {
    /// The `cause` an answer names.
    pub fn cause(self) -> &'static str {
        match self {
            Unrecorded::QueueFull => "queue_full",
            Unrecorded::SpaceReserve => "space_reserve",
            Unrecorded::DiskFull => "disk_full",
            Unrecorded::ReadOnly => "read_only",
            Unrecorded::Io => "io_error",
            Unrecorded::Timeout => "timeout",
            Unrecorded::Closed => "shutting_down",
        }
    }

    fn of(e: &std::io::Error) -> Unrecorded {
        match e.raw_os_error() {
            Some(28) | Some(122) => Unrecorded::DiskFull, // ENOSPC, EDQUOT
            Some(30) => Unrecorded::ReadOnly,             // EROFS
            _ => Unrecorded::Io,
        }
    }
}

/// The writer's current trouble, for `/readyz`.
#[derive(Debug, Clone)]
pub struct Failure {
    pub cause: Unrecorded,
    pub since: Instant,
    pub what: String,
}

/// Where the durable records end: the writer moves it after each fsync, the
/// indexer reads up to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durable {
    /// First id of the segment being written.
    pub segment: u64,
    /// Its length up to the last fsynced frame.
    pub end: u64,
    /// The id the next record gets.
    pub next_id: u64,
}

/// Counters the gate reports.
#[derive(Debug, Default)]
pub struct Stats {
    pub written: AtomicU64,
    pub groups: AtomicU64,
    /// Microseconds spent writing and fsyncing groups (with `groups`, the mean).
    pub group_write_us: AtomicU64,
    pub failed_writes: AtomicU64,
    /// Records refused at submission or in a failed group.
    pub refused: AtomicU64,
    pub segments_deleted: AtomicU64,
}

type Reply = tokio::sync::oneshot::Sender<Result<(), Unrecorded>>;

enum Msg {
    Group(Vec<AuditRecord>, Reply),
    Close,
}

/// State shared by handlers, the writer and the indexer.
pub struct Shared {
    pub config: AuditConfig,
    queued: AtomicUsize,
    /// While failing: refuse until this instant (ms since `epoch`).
    refuse_until_ms: AtomicU64,
    epoch: Instant,
    closed: AtomicBool,
    pub failure: Mutex<Option<Failure>>,
    /// Why records were last refused (kept after the failure clears).
    pub last_refusal: Mutex<Option<Unrecorded>>,
    pub durable: Mutex<Durable>,
    pub stats: Stats,
    /// Free bytes on the log's file system, as last measured by the writer.
    pub free_bytes: AtomicU64,
    /// A torn tail cut at start (see [`segment::repair_tail`]).
    pub repaired: Option<segment::Tail>,
    wake_indexer: crossbeam_channel::Sender<()>,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn note_refused(&self, records: usize, cause: Unrecorded) {
        self.stats.refused.fetch_add(records as u64, Ordering::Relaxed);
        *self.last_refusal.lock().expect("not poisoned") = Some(cause);
    }

    /// Records waiting for the writer.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// A group's place in line: resolves once it is durable, or refused.
pub struct Ticket(tokio::sync::oneshot::Receiver<Result<(), Unrecorded>>);

impl Ticket {
    /// Waits (asynchronously, bounded by [`ANSWER_WAIT`]) for the outcome.
    pub async fn durable(self) -> Result<(), Unrecorded> {
        match tokio::time::timeout(ANSWER_WAIT, self.0).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Unrecorded::Closed),
            Err(_) => Err(Unrecorded::Timeout),
        }
    }
}

/// The handlers' side of the writer.
pub struct Writer {
    tx: crossbeam_channel::Sender<Msg>,
    /// The audit directory's `LOCK`: one writer per log, wherever it sits
    /// (two gates given the same `--audit-dir` would interleave frames).
    lock: Mutex<Option<claimgate_store::data_lock::DataDirLock>>,
    pub shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Closed by the writer thread as it ends.
    finished: crossbeam_channel::Receiver<()>,
}

/// The writer's scheduling priority relative to the gate's other threads (a
/// `nice` increment; negative raises it where the process may, as root): the
/// answers of rejects and exemptions wait on its fsync, and it uses little
/// CPU, so on a busy machine it should run as soon as a group arrives.
pub const WRITER_NICENESS: i32 = -10;

/// Longest [`Writer::close`] waits for the writer to finish what is queued
/// (a disk that hangs in fsync must not hang the shutdown); past it the
/// process may exit with those records unwritten, and says so.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

impl Writer {
    /// Opens the log in `config.dir` (creating it), cuts a torn tail, and
    /// starts the writer thread. `wake_indexer` is poked after each group.
    pub fn open(config: AuditConfig, wake_indexer: crossbeam_channel::Sender<()>) -> std::io::Result<Writer> {
        std::fs::create_dir_all(&config.dir)?;
        let lock = claimgate_store::data_lock::DataDirLock::acquire(&config.dir).map_err(|e| match e {
            claimgate_store::data_lock::LockError::InUse { holder, .. } => std::io::Error::other(format!(
                "the audit directory {} is in use by another claimgate process ({holder}): give each gate its own --audit-dir",
                config.dir.display()
            )),
            e => std::io::Error::other(e.to_string()),
        })?;
        let segments = segment::list(&config.dir)?;
        let (first, file, tail) = match segments.last() {
            None => {
                let path = segment::segment_path(&config.dir, 1);
                let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
                f.write_all(&segment::header(1))?;
                f.sync_all()?;
                segment::sync_dir(&config.dir)?;
                (1, f, segment::Tail { end: HEADER_BYTES, next_id: 1, cut_bytes: 0, kept_in: None, fault: None })
            }
            Some((first, path)) => {
                if let [.., (before, sealed), _] = segments.as_slice() {
                    let cut = segment::seal(sealed, *before)?;
                    if cut > 0 {
                        tracing::info!(segment = %sealed.display(), bytes = cut, "audit log: a sealed segment's preallocated tail was cut");
                    }
                }
                let tail = segment::repair_tail(path, *first)?;
                if tail.cut_bytes > 0 {
                    tracing::warn!(
                        segment = %path.display(), at = tail.end, bytes = tail.cut_bytes,
                        kept_in = %tail.kept_in.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                        fault = %tail.fault.as_ref().map(ToString::to_string).unwrap_or_default(),
                        "audit log: a torn tail (a write a crash interrupted, never answered) was cut; its bytes are kept beside the segment"
                    );
                }
                let f = std::fs::OpenOptions::new().write(true).open(path)?;
                (*first, f, tail)
            }
        };
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            refuse_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            closed: AtomicBool::new(false),
            failure: Mutex::new(None),
            last_refusal: Mutex::new(None),
            durable: Mutex::new(Durable { segment: first, end: tail.end, next_id: tail.next_id }),
            stats: Stats::default(),
            free_bytes: AtomicU64::new(free_bytes(&config.dir).unwrap_or(0)),
            repaired: (tail.cut_bytes > 0).then_some(tail.clone()),
            wake_indexer,
            config,
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let allocated = file.metadata()?.len().max(tail.end);
        let mut state = WriterState {
            shared: shared.clone(),
            allocated,
            file,
            segment: first,
            end: tail.end,
            next_id: tail.next_id,
            rotate_first: false,
            buf: Vec::new(),
        };
        state.apply_retention();
        let (finish, finished) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                claimgate_store::thread_priority::renice(WRITER_NICENESS, "audit writer");
                state.run(rx);
                drop(finish);
            })
            .expect("spawning");
        Ok(Writer { tx, lock: Mutex::new(Some(lock)), shared, thread: Mutex::new(Some(thread)), finished })
    }

    /// Hands a group to the writer without waiting; refused at once when the
    /// log cannot take it now.
    pub fn submit(&self, records: Vec<AuditRecord>) -> Result<Ticket, Unrecorded> {
        let s = &self.shared;
        let refuse = |cause| {
            s.note_refused(records.len(), cause);
            Err(cause)
        };
        if s.closed.load(Ordering::Acquire) {
            return refuse(Unrecorded::Closed);
        }
        if s.now_ms() < s.refuse_until_ms.load(Ordering::Relaxed) {
            let cause = s.failure.lock().expect("not poisoned").as_ref().map_or(Unrecorded::Io, |f| f.cause);
            return refuse(cause);
        }
        let n = records.len();
        let before = s.queued.fetch_add(n, Ordering::AcqRel);
        if before + n > s.config.queue_records {
            s.queued.fetch_sub(n, Ordering::AcqRel);
            return refuse(Unrecorded::QueueFull);
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Msg::Group(records, reply)).is_err() {
            s.queued.fetch_sub(n, Ordering::AcqRel);
            return Err(Unrecorded::Closed);
        }
        Ok(Ticket(rx))
    }

    /// Stops taking records, writes what is queued (if the disk takes it)
    /// and stops the writer; what could not be written is logged.
    pub fn close(&self) {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.tx.send(Msg::Close);
        if let Some(t) = self.thread.lock().expect("not poisoned").take() {
            match self.finished.recv_timeout(CLOSE_WAIT) {
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    tracing::error!(
                        queued = self.shared.queued(),
                        waited_seconds = CLOSE_WAIT.as_secs(),
                        "audit log: the writer did not finish within the wait (a write or fsync hangs); the records still queued are not written, and none of their exemptions was settled"
                    );
                    return;
                }
                _ => {
                    let _ = t.join();
                }
            }
        }
        self.lock.lock().expect("not poisoned").take();
        let refused = self.shared.stats.refused.load(Ordering::Relaxed);
        if refused > 0 {
            let last = self.shared.failure.lock().expect("not poisoned").clone();
            let cause = *self.shared.last_refusal.lock().expect("not poisoned");
            tracing::error!(
                records = refused,
                last_cause = cause.map_or("", Unrecorded::cause),
                failing_now = last.map(|f| f.what).unwrap_or_default(),
                "audit log closed: records could not be written since start; their exemptions were answered audit_unavailable (not settled), their rejects were answered and counted in claimgate_audit_rejects_unrecorded_total"
            );
        }
    }
}

/// Free bytes available to this process on `dir`'s file system.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

struct WriterState {
    shared: Arc<Shared>,
    /// The newest segment's length: frames up to `end`, zeros after
    /// ([`segment::PREALLOCATE_BYTES`]).
    allocated: u64,
    file: File,
    segment: u64,
    end: u64,
    next_id: u64,
    /// An fsync failed: what the page cache holds of this segment is not to
    /// be trusted, so the next write begins a new segment.
    rotate_first: bool,
    buf: Vec<u8>,
}

impl WriterState {
    fn run(&mut self, rx: crossbeam_channel::Receiver<Msg>) {
        let mut closing = false;
        let mut unwritten: Vec<AuditRecord> = Vec::new();
        let mut unwritten_count = 0u64;
        loop {
            let mut group: Vec<(Vec<AuditRecord>, Reply)> = Vec::new();
            let mut records = 0;
            let first = if closing { rx.try_recv().ok() } else { rx.recv().ok() };
            let Some(first) = first else { break };
            let mut take = |msg: Msg, group: &mut Vec<_>, records: &mut usize| match msg {
                Msg::Group(r, reply) => {
                    *records += r.len();
                    group.push((r, reply));
                }
                Msg::Close => closing = true,
            };
            take(first, &mut group, &mut records);
            while records < MAX_GROUP_RECORDS {
                match rx.try_recv() {
                    Ok(msg) => take(msg, &mut group, &mut records),
                    Err(_) => break,
                }
            }
            if group.is_empty() {
                continue;
            }
            let outcome = self.write_group(&mut group);
            self.shared.queued.fetch_sub(records, Ordering::AcqRel);
            if let Err(cause) = outcome {
                self.shared.note_refused(records, cause);
                if closing {
                    unwritten_count += records as u64;
                    for (r, _) in &group {
                        let room = MAX_LOGGED_UNWRITTEN.saturating_sub(unwritten.len());
                        unwritten.extend(r.iter().take(room).cloned());
                    }
                }
            }
            for (_, reply) in group {
                let _ = reply.send(outcome);
            }
        }
        if unwritten_count > 0 {
            let cause = self.shared.failure.lock().expect("not poisoned").as_ref().map(|f| f.what.clone());
            for r in &unwritten {
                tracing::error!(record = %serde_json::to_string(r).unwrap_or_default(), "audit log: at shutdown, this record could not be written");
            }
            tracing::error!(
                records = unwritten_count, logged = unwritten.len(), cause = cause.unwrap_or_default(),
                "audit log: at shutdown, records could not be written (their exemptions were answered audit_unavailable, not settled)"
            );
        }
    }

    /// Writes and fsyncs one group, or says why not.
    fn write_group(&mut self, group: &mut [(Vec<AuditRecord>, Reply)]) -> Result<(), Unrecorded> {
        let s = self.shared.clone();
        if s.now_ms() < s.refuse_until_ms.load(Ordering::Relaxed) {
            return Err(s.failure.lock().expect("not poisoned").as_ref().map_or(Unrecorded::Io, |f| f.cause));
        }
        self.buf.clear();
        let mut id = self.next_id;
        for (records, _) in group.iter_mut() {
            for r in records.iter_mut() {
                r.id = id;
                id += 1;
                segment::encode(r, &mut self.buf);
            }
        }
        let count = id - self.next_id;
        let free = free_bytes(&s.config.dir).unwrap_or(u64::MAX);
        s.free_bytes.store(free, Ordering::Relaxed);
        if free < s.config.reserve_bytes.saturating_add(self.buf.len() as u64) {
            return self.fail(
                Unrecorded::SpaceReserve,
                format!(
                    "{} has {free} bytes free, and the audit log keeps {} free (--audit-reserve-bytes): free space, move --audit-dir to a larger disk, or set a retention (--audit-retain-days)",
                    s.config.dir.display(),
                    s.config.reserve_bytes
                ),
            );
        }
        if self.rotate_first || (self.end > HEADER_BYTES && self.end + self.buf.len() as u64 > s.config.segment_bytes) {
            if let Err(e) = self.rotate() {
                return self.fail(
                    Unrecorded::of(&e),
                    format!("starting a new audit segment in {}: {e}", s.config.dir.display()),
                );
            }
        }
        if let Err(e) = self.preallocate(self.buf.len() as u64) {
            return self
                .fail(Unrecorded::of(&e), format!("preallocating the audit log in {}: {e}", s.config.dir.display()));
        }
        use std::os::unix::fs::FileExt;
        let writing = Instant::now();
        if let Err(e) = self.file.write_all_at(&self.buf, self.end) {
            self.unwrite();
            return self.fail(Unrecorded::of(&e), format!("writing the audit log in {}: {e}", s.config.dir.display()));
        }
        if let Err(e) = self.file.sync_data() {
            self.unwrite();
            self.rotate_first = true;
            return self.fail(Unrecorded::of(&e), format!("fsync of the audit log in {}: {e}", s.config.dir.display()));
        }
        self.end += self.buf.len() as u64;
        self.next_id = id;
        *s.durable.lock().expect("not poisoned") =
            Durable { segment: self.segment, end: self.end, next_id: self.next_id };
        s.stats.written.fetch_add(count, Ordering::Relaxed);
        s.stats.groups.fetch_add(1, Ordering::Relaxed);
        s.stats.group_write_us.fetch_add(writing.elapsed().as_micros() as u64, Ordering::Relaxed);
        if let Some(f) = s.failure.lock().expect("not poisoned").take() {
            tracing::info!(
                cause = f.cause.cause(),
                failing_for_seconds = f.since.elapsed().as_secs_f64(),
                "audit log writes succeed again"
            );
        }
        let _ = s.wake_indexer.try_send(());
        Ok(())
    }

    fn fail(&mut self, cause: Unrecorded, what: String) -> Result<(), Unrecorded> {
        let s = &self.shared;
        s.stats.failed_writes.fetch_add(1, Ordering::Relaxed);
        s.refuse_until_ms.store(s.now_ms() + RETRY_INTERVAL.as_millis() as u64, Ordering::Relaxed);
        let mut failure = s.failure.lock().expect("not poisoned");
        if failure.as_ref().is_none_or(|f| f.cause != cause) {
            tracing::error!(cause = cause.cause(), %what, "audit log cannot take records: exemptions are answered audit_unavailable, rejects are answered and counted unrecorded");
        }
        let since = failure.as_ref().filter(|f| f.cause == cause).map_or_else(Instant::now, |f| f.since);
        *failure = Some(Failure { cause, since, what });
        Err(cause)
    }

    /// Makes sure `n` bytes past the end are written zeros (fsynced with the
    /// file's new length), [`segment::PREALLOCATE_BYTES`] at a time.
    fn preallocate(&mut self, n: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if self.end + n <= self.allocated {
            return Ok(());
        }
        let target = (self.end + n).max(self.allocated + segment::PREALLOCATE_BYTES);
        let zeros = vec![0u8; 1 << 20];
        let mut at = self.allocated;
        while at < target {
            let chunk = (target - at).min(zeros.len() as u64) as usize;
            self.file.write_all_at(&zeros[..chunk], at)?;
            at += chunk as u64;
        }
        self.file.sync_all()?;
        self.allocated = target;
        Ok(())
    }

    /// After a failed write or fsync: zeros over whatever of the group
    /// reached the file, so no frame of a refused group can be read later.
    fn unwrite(&mut self) {
        use std::os::unix::fs::FileExt;
        let _ = self.file.write_all_at(&vec![0u8; self.buf.len()], self.end);
    }

    /// Seals the current segment (its frames are fsynced already; its
    /// preallocated zeros are cut) and begins the next.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.set_len(self.end)?;
        self.file.sync_all()?;
        let dir = self.shared.config.dir.clone();
        let path = segment::segment_path(&dir, self.next_id);
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&path)?;
        let made = f
            .write_all(&segment::header(self.next_id))
            .and_then(|()| f.sync_all())
            .and_then(|()| segment::sync_dir(&dir));
        if let Err(e) = made {
            drop(f);
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        self.file = f;
        self.segment = self.next_id;
        self.end = HEADER_BYTES;
        self.allocated = HEADER_BYTES;
        self.rotate_first = false;
        *self.shared.durable.lock().expect("not poisoned") =
            Durable { segment: self.segment, end: self.end, next_id: self.next_id };
        self.apply_retention();
        Ok(())
    }

    /// Deletes sealed segments last written before the retention.
    fn apply_retention(&mut self) {
        let Some(retain) = self.shared.config.retain else { return };
        let Some(cutoff) = SystemTime::now().checked_sub(retain) else { return };
        let Ok(segments) = segment::list(&self.shared.config.dir) else { return };
        for (first, path) in segments {
            if first >= self.segment {
                break;
            }
            let old = std::fs::metadata(&path).and_then(|m| m.modified()).is_ok_and(|t| t < cutoff);
            if !old {
                break;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    self.shared.stats.segments_deleted.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(segment = %path.display(), "audit segment past the retention deleted");
                }
                Err(e) => {
                    tracing::warn!(segment = %path.display(), error = %e, "cannot delete an audit segment past the retention")
                }
            }
        }
        let _ = segment::sync_dir(&self.shared.config.dir);
    }
}

impl Writer {
    /// Submits and waits for the outcome, blocking (start-up only, outside
    /// the async runtime).
    pub fn write_now(&self, records: Vec<AuditRecord>) -> Result<(), Unrecorded> {
        let ticket = self.submit(records)?;
        ticket.0.blocking_recv().unwrap_or(Err(Unrecorded::Closed))
    }
}
