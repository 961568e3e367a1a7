//! Index snapshots written while serving, so a restart loads a recent base
//! and tails only what came after: on request (admin `POST /v1/snapshot`) and
//! every `--snapshot-every-events` events, one write at a time, never on a
//! request thread or the sync thread.
//!
//! A write merges the version's overlay into a new base first when it has
//! one (the published version is untouched), then writes it with
//! [`snapshot::write_with`]: temporary file, fsync, rename, directory fsync.
//! A process killed at any point leaves either the previous snapshots or the
//! new one complete, plus at most a temporary file that the next start
//! removes.

use claimgate_index::snapshot::{self, Owner, SnapshotError, WriteStage};
use claimgate_index::IndexVersion;
use claimgate_rules::domain::Seq;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest pause `--fault-snapshot-pause` may ask for.
pub const MAX_FAULT_PAUSE: Duration = Duration::from_secs(60);

/// A deliberate pause inside snapshot writes, for the crash campaign: it
/// kills the process while a write is at `stage`.
#[derive(Debug, Clone, Copy)]
pub struct FaultPause {
    pub stage: WriteStage,
    pub pause: Duration,
}

impl FaultPause {
    /// Parses `half-written:MS` or `before-rename:MS`.
    pub fn parse(text: &str) -> Result<FaultPause, String> {
        let (stage, ms) = text.split_once(':').ok_or("expected STAGE:MS, e.g. before-rename:500")?;
        let stage = match stage {
            "half-written" => WriteStage::HalfWritten,
            "before-rename" => WriteStage::BeforeRename,
            other => return Err(format!("`{other}` is not a stage; use half-written or before-rename")),
        };
        let pause = Duration::from_millis(ms.parse().map_err(|_| format!("`{ms}` is not a number of milliseconds"))?);
        if pause > MAX_FAULT_PAUSE {
            return Err(format!("a pause of more than {} s is not a fault worth injecting", MAX_FAULT_PAUSE.as_secs()));
        }
        Ok(FaultPause { stage, pause })
    }
}

/// Why a requested snapshot was not written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotRefusal {
    #[error("a snapshot is being written already; try again when it is done")]
    Busy,
    #[error(transparent)]
    Failed(#[from] SnapshotError),
}

/// A snapshot that was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub path: PathBuf,
    pub seq: Seq,
    pub bytes: u64,
    pub seconds: f64,
}

/// Writes the gate's snapshots (see the module docs).
pub struct Snapshots {
    dir: PathBuf,
    owner: Owner,
    /// Events between automatic snapshots; 0: only on request.
    every_events: u64,
    fault: Option<FaultPause>,
    busy: AtomicBool,
    /// The `seq` of the newest snapshot written or loaded.
    pub last_seq: AtomicU64,
    pub written: AtomicU64,
    pub failed: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl Snapshots {
    /// For the data directory `data`, whose index started at `start_seq`
    /// (restored from a snapshot at that seq, or built). Removes temporary
    /// files of writes that never finished.
    pub fn new(data: &Path, owner: Owner, every_events: u64, fault: Option<FaultPause>, start_seq: Seq) -> Snapshots {
        let dir = data.join(snapshot::SNAPSHOT_DIR);
        let removed = snapshot::remove_unfinished(&dir);
        if removed > 0 {
            tracing::warn!(removed, dir = %dir.display(), "removed unfinished snapshot files of an earlier process");
        }
        Snapshots {
            dir,
            owner,
            every_events,
            fault,
            busy: AtomicBool::new(false),
            last_seq: AtomicU64::new(start_seq),
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// After a swap to `version`: starts a background write if enough events
    /// have passed since the last snapshot and none is running.
    pub fn after_swap(self: &Arc<Self>, version: Arc<IndexVersion>) {
        let due = self.every_events > 0 && version.seq() >= self.last_seq.load(Ordering::Relaxed) + self.every_events;
        if !due || self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        let spawned = std::thread::Builder::new().name("index-snapshot".into()).spawn(move || {
            match this.write_claimed(&version) {
                Ok(w) => {
                    tracing::info!(snapshot = %w.path.display(), seq = w.seq, seconds = w.seconds, "snapshot written")
                }
                Err(e) => tracing::error!(error = %e, "writing a snapshot failed; the next one will be tried later"),
            }
        });
        if let Err(e) = spawned {
            self.busy.store(false, Ordering::Release);
            tracing::error!(error = %e, "cannot start the snapshot thread");
        }
    }

    /// Writes a snapshot of `version` now (blocking), unless one is running.
    pub fn write_now(&self, version: &IndexVersion) -> Result<Written, SnapshotRefusal> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(SnapshotRefusal::Busy);
        }
        Ok(self.write_claimed(version)?)
    }

    /// Writes with `busy` already claimed; releases it.
    fn write_claimed(&self, version: &IndexVersion) -> Result<Written, SnapshotError> {
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _release = Release(&self.busy);
        let started = Instant::now();
        let base = version.whole_base();
        let hook = |stage: WriteStage| {
            if let Some(fault) = self.fault.filter(|f| f.stage == stage) {
                tracing::warn!(
                    ?stage,
                    pause_ms = fault.pause.as_millis() as u64,
                    "fault injection: pausing a snapshot write"
                );
                std::thread::sleep(fault.pause);
            }
        };
        match snapshot::write_with(&self.dir, &base, self.owner, &hook) {
            Ok(path) => {
                self.last_seq.fetch_max(base.seq(), Ordering::Relaxed);
                self.written.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock().expect("not poisoned") = None;
                let bytes = (base.bytes().len() + snapshot::HEADER_LEN) as u64;
                Ok(Written { path, seq: base.seq(), bytes, seconds: started.elapsed().as_secs_f64() })
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock().expect("not poisoned") = Some(e.to_string());
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_pauses_parse_by_stage_and_refuse_nonsense() {
        let f = FaultPause::parse("before-rename:250").unwrap();
        assert_eq!((f.stage, f.pause), (WriteStage::BeforeRename, Duration::from_millis(250)));
        assert_eq!(FaultPause::parse("half-written:0").unwrap().stage, WriteStage::HalfWritten);
        assert!(FaultPause::parse("rename:5").unwrap_err().contains("not a stage"));
        assert!(FaultPause::parse("before-rename").is_err());
        assert!(FaultPause::parse("before-rename:x").unwrap_err().contains("milliseconds"));
        assert!(FaultPause::parse("before-rename:600000").is_err());
    }
}
