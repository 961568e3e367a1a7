//! The gate's health at one instant, and the rule that decides readiness.
//!
//! `/readyz` and `/metrics` report the same shared state. [`Gate::health`]
//! reads it once (each lock taken once, here and in no route) into a
//! [`Health`] of plain values with every age already measured; the routes
//! only render it. [`readiness`] decides from it whether the gate may settle
//! claims: a pure function (no clock, no lock), so the rule that fails closed
//! is tested below without a server.
//!
//! Nothing here reads the ledger: the head is the sync thread's last reading
//! (a flood of `/readyz` must not compete with the sync for the ledger).

use crate::gate::{AppendFailure, Gate, LedgerPages, LedgerTrouble};
use crate::metrics::Gauges;
use crate::Listener;
use claimgate_rules::domain::Seq;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What the readiness rule reads.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyInputs {
    /// The head the sync thread read last (`None`: that read failed).
    pub head: Option<Seq>,
    /// The last head read successfully.
    pub last_seen_head: Seq,
    /// How long reads of the ledger have failed, if they fail now.
    pub unreachable_for: Option<Duration>,
    /// How old the sync thread's last reading is.
    pub reading_age: Duration,
    /// The `seq` the served index reflects.
    pub index_seq: Seq,
    /// `--ready-max-lag`.
    pub max_lag: u64,
    /// `--ready-max-outage-ms`.
    pub max_outage: Duration,
    /// Why appends fail now, if they do (`LedgerError::cause`).
    pub append_failure: Option<&'static str>,
    /// Why the decision log refuses records now, if it does.
    pub audit_failure: Option<&'static str>,
}

/// The readiness decision and what it rests on.
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    pub ready: bool,
    /// The head as read; `None` when the read failed or the reading is older
    /// than the outage bound (the sync thread itself is stuck).
    pub head: Option<Seq>,
    /// The head read last, else the last one read before an outage.
    pub known_head: Seq,
    /// How far the index is behind `known_head`.
    pub lag: u64,
    /// How long the ledger has been unreadable (or the reading stale).
    pub outage: Option<Duration>,
    /// Why the gate is not ready, or what is degraded while it is.
    pub reason: Option<String>,
}

/// Ready when the index is within `max_lag` of the last known head and the
/// ledger has been unreadable for at most `max_outage`; a reading older than
/// `max_outage` counts as an outage (fail closed). A ready gate still names
/// what is degraded: a ledger outage within the bound, failing appends, a
/// decision log refusing records.
pub fn readiness(i: &ReadyInputs) -> Readiness {
    let stuck = i.reading_age > i.max_outage;
    let head = i.head.filter(|_| !stuck);
    let known_head = head.unwrap_or(i.last_seen_head);
    let lag = known_head.saturating_sub(i.index_seq);
    let outage = if stuck { Some(i.reading_age) } else { i.unreachable_for };
    let within_lag = lag <= i.max_lag;
    let ready = within_lag && outage.is_none_or(|o| o <= i.max_outage);
    let reason = match (head, outage) {
        (None, Some(o)) if ready => Some(format!(
            "the ledger cannot be read for {:.1} s; serving the last index (fails closed after {} s)",
            o.as_secs_f64(),
            i.max_outage.as_secs()
        )),
        (None, Some(o)) => Some(format!("the ledger cannot be read for {:.1} s: failing closed", o.as_secs_f64())),
        (None, None) => Some("the ledger cannot be read".to_owned()),
        _ if !within_lag => Some("the index is further behind the ledger than max_lag".to_owned()),
        _ => i
            .append_failure
            .map(|cause| format!("appends fail ({cause}): checks are answered from the index; see append_failure"))
            .or_else(|| {
                i.audit_failure.map(|cause| {
                    format!("the decision log refuses records ({cause}): emergency exemptions are answered audit_unavailable; see audit")
                })
            }),
    };
    Readiness { ready, head, known_head, lag, outage, reason }
}

/// A failure that is still going on: its cause, for how long, what it said.
#[derive(Debug, Clone)]
pub struct Ongoing {
    pub cause: &'static str,
    pub for_seconds: f64,
    pub what: String,
}

/// The decision log's state.
#[derive(Debug, Clone)]
pub struct AuditHealth {
    pub dir: PathBuf,
    pub failure: Option<Ongoing>,
    /// Records durable (written and fsynced) since the log began.
    pub records: u64,
    pub queued: usize,
    pub queue_bound: usize,
    pub free_bytes: u64,
    pub reserve_bytes: u64,
    /// Records in the derived index.
    pub indexed: u64,
    pub index_lag: u64,
    pub index_error: Option<String>,
    pub damaged_segments: Vec<String>,
    /// A torn tail cut at start: its bytes and where they were kept.
    pub torn_tail: Option<(u64, Option<PathBuf>)>,
    pub written: u64,
    pub failed_writes: u64,
    pub groups: u64,
    pub group_write_us: u64,
}

/// Everything `/readyz` and `/metrics` report, read at one instant.
#[derive(Debug, Clone)]
pub struct Health {
    pub inputs: ReadyInputs,
    pub readiness: Readiness,
    pub last_swap_age_seconds: f64,
    pub last_swap_error: Option<String>,
    pub overlay_entities: u64,
    /// Where the ledger lives (never a password).
    pub ledger: String,
    /// For a shared ledger: whether append notifications arrive.
    pub ledger_notifications: Option<&'static str>,
    /// The background page check's finding, as `/readyz` shows it.
    pub ledger_pages: Value,
    pub ledger_damaged: bool,
    pub ledger_failures: u64,
    /// The last ledger failure: how long ago, and what it was.
    pub last_ledger_failure: Option<(f64, String)>,
    pub append_failure: Option<Ongoing>,
    pub index_restored_from: String,
    pub last_snapshot_seq: u64,
    /// The change log's mark (`None`: this node keeps none).
    pub change_log: Option<u64>,
    pub last_snapshot_error: Option<String>,
    pub snapshots_written: u64,
    /// Append transactions and the requests they carried (group commit).
    pub append_transactions: u64,
    pub append_requests: u64,
    pub snapshot_failures: u64,
    pub snapshots_refused_at_start: Vec<(PathBuf, String)>,
    pub audit: AuditHealth,
    pub exemptions_refused: u64,
    pub rejects_unrecorded: u64,
    pub open_connections: [u64; 2],
    pub body_bytes_held: u64,
}

impl Gate {
    /// The gate's health now: one read of every piece of shared state.
    pub fn health(&self) -> Health {
        let (head, seen, reading_age) = self.head_reading();
        let version = self.version();
        let status = self.sync_status.lock().expect("not poisoned").clone();
        let trouble: Option<LedgerTrouble> = self.ledger_trouble.lock().expect("not poisoned").clone();
        let append_failure: Option<AppendFailure> = self.append_failure.lock().expect("not poisoned").clone();
        let shared = &self.audit.writer.shared;
        let audit_failure = shared.failure.lock().expect("not poisoned").as_ref().map(|f| Ongoing {
            cause: f.cause.cause(),
            for_seconds: f.since.elapsed().as_secs_f64(),
            what: f.what.clone(),
        });
        let durable_next = shared.durable.lock().expect("not poisoned").next_id;
        let index_status = &self.audit.index.status;
        let indexed_next = index_status.next_id.load(Ordering::Relaxed);
        let pages = self.ledger_pages.lock().expect("not poisoned").clone();
        let inputs = ReadyInputs {
            head,
            last_seen_head: seen.head,
            unreachable_for: seen.unreachable_since.map(|t| t.elapsed()),
            reading_age,
            index_seq: version.seq(),
            max_lag: self.config.ready_max_lag,
            max_outage: self.config.ready_max_outage,
            append_failure: append_failure.as_ref().map(|f| f.cause),
            audit_failure: audit_failure.as_ref().map(|f| f.cause),
        };
        Health {
            readiness: readiness(&inputs),
            inputs,
            last_swap_age_seconds: status.last_swap.elapsed().as_secs_f64(),
            last_swap_error: status.last_error,
            overlay_entities: version.overlay_len() as u64,
            ledger: self.ledger.describe(),
            ledger_notifications: self.ledger.listen_supported().then(|| {
                if self.listener_connected.load(Ordering::Relaxed) {
                    "connected"
                } else {
                    "disconnected: polling"
                }
            }),
            ledger_damaged: matches!(pages, LedgerPages::Damaged { .. }),
            ledger_pages: match pages {
                LedgerPages::NotChecked => Value::Null,
                LedgerPages::Checking { since } => {
                    json!({"state": "checking", "for_seconds": since.elapsed().as_secs_f64()})
                }
                LedgerPages::Sound { seconds } => json!({"state": "sound", "seconds": seconds}),
                LedgerPages::Damaged { detail } => json!({"state": "damaged", "detail": detail}),
                LedgerPages::Unchecked { error } => json!({"state": "unchecked", "error": error}),
            },
            ledger_failures: trouble.as_ref().map_or(0, |t| t.count),
            last_ledger_failure: trouble.map(|t| (t.last_at.elapsed().as_secs_f64(), t.last)),
            append_failure: append_failure.map(|f| Ongoing {
                cause: f.cause,
                for_seconds: f.since.elapsed().as_secs_f64(),
                what: f.what,
            }),
            index_restored_from: self
                .restored_from
                .as_ref()
                .map_or_else(|| "ledger".to_owned(), |p| p.display().to_string()),
            last_snapshot_seq: self.snapshots.last_seq.load(Ordering::Relaxed),
            change_log: self.changes.as_ref().map(|l| l.mark()),
            last_snapshot_error: self.snapshots.last_error.lock().expect("not poisoned").clone(),
            snapshots_written: self.snapshots.written.load(Ordering::Relaxed),
            append_transactions: self.appends.stats.transactions.load(Ordering::Relaxed),
            append_requests: self.appends.stats.requests.load(Ordering::Relaxed),
            snapshot_failures: self.snapshots.failed.load(Ordering::Relaxed),
            snapshots_refused_at_start: self.refused_snapshots.clone(),
            audit: AuditHealth {
                dir: shared.config.dir.clone(),
                failure: audit_failure,
                records: durable_next - 1,
                queued: shared.queued(),
                queue_bound: shared.config.queue_records,
                free_bytes: shared.free_bytes.load(Ordering::Relaxed),
                reserve_bytes: shared.config.reserve_bytes,
                indexed: indexed_next.saturating_sub(1),
                index_lag: durable_next.saturating_sub(indexed_next.max(1)),
                index_error: index_status.last_error.lock().expect("not poisoned").clone(),
                damaged_segments: index_status.damaged.lock().expect("not poisoned").clone(),
                torn_tail: shared.repaired.as_ref().map(|t| (t.cut_bytes, t.kept_in.clone())),
                written: shared.stats.written.load(Ordering::Relaxed),
                failed_writes: shared.stats.failed_writes.load(Ordering::Relaxed),
                groups: shared.stats.groups.load(Ordering::Relaxed),
                group_write_us: shared.stats.group_write_us.load(Ordering::Relaxed),
            },
            exemptions_refused: self.metrics.audit_exemptions_refused.load(Ordering::Relaxed),
            rejects_unrecorded: self.metrics.audit_rejects_unrecorded.load(Ordering::Relaxed),
            open_connections: [self.open_connections(Listener::Check), self.open_connections(Listener::Admin)],
            body_bytes_held: self.config.max_inflight_body_bytes.saturating_sub(self.body_budget.available()) as u64,
        }
    }
}

impl Health {
    /// `/readyz`'s body.
    pub fn readyz(&self) -> Value {
        let r = &self.readiness;
        let ongoing = |f: &Ongoing| json!({"cause": f.cause, "failing_for_seconds": f.for_seconds, "what": f.what});
        let a = &self.audit;
        json!({
            "ready": r.ready,
            "index_seq": self.inputs.index_seq,
            "ledger_head": r.head,
            "ledger_head_read_seconds_ago": self.inputs.reading_age.as_secs_f64(),
            "ledger_reachable": r.head.is_some(),
            "last_known_ledger_head": r.known_head,
            "lag": r.lag,
            "max_lag": self.inputs.max_lag,
            "last_swap_age_seconds": self.last_swap_age_seconds,
            "last_swap_error": self.last_swap_error,
            "ledger": self.ledger,
            "ledger_notifications": self.ledger_notifications,
            "ledger_pages": self.ledger_pages,
            "ledger_failures": self.ledger_failures,
            "last_ledger_failure": self.last_ledger_failure.as_ref().map(|(age, what)| json!({"age_seconds": age, "what": what})),
            "ledger_writable": self.append_failure.is_none(),
            "append_failure": self.append_failure.as_ref().map(ongoing),
            "index_restored_from": self.index_restored_from,
            "last_snapshot_seq": self.last_snapshot_seq,
            "change_log": self.change_log.map(|mark| json!({"seq": mark, "behind": self.inputs.index_seq.saturating_sub(mark)})),
            "last_snapshot_error": self.last_snapshot_error,
            "snapshots_refused_at_start": self.snapshots_refused_at_start.iter().map(|(p, e)| json!({"path": p.display().to_string(), "error": e})).collect::<Vec<_>>(),
            "audit": {
                "dir": a.dir.display().to_string(),
                "writable": a.failure.is_none(),
                "failure": a.failure.as_ref().map(ongoing),
                "records": a.records,
                "queued": a.queued,
                "queue_bound": a.queue_bound,
                "free_bytes": a.free_bytes,
                "reserve_bytes": a.reserve_bytes,
                "exemptions_refused": self.exemptions_refused,
                "rejects_unrecorded": self.rejects_unrecorded,
                "index_lag": a.index_lag,
                "index_error": a.index_error,
                "damaged_segments": a.damaged_segments,
                "torn_tail_cut_at_start": a.torn_tail.as_ref().map(|(bytes, kept)| json!({"bytes": bytes, "kept_in": kept.as_ref().map(|p| p.display().to_string())})),
            },
            "reason": r.reason,
        })
    }

    /// The values `/metrics` reads from outside the counters.
    pub fn gauges(&self) -> Gauges {
        let a = &self.audit;
        Gauges {
            ledger_reachable: self.inputs.head.is_some(),
            ledger_writable: self.append_failure.is_none(),
            index_seq: self.inputs.index_seq,
            ledger_head: self.inputs.head.unwrap_or(self.inputs.last_seen_head),
            overlay_entities: self.overlay_entities,
            audit_queue_depth: a.queued as u64,
            audit_written: a.written,
            audit_failed_writes: a.failed_writes,
            audit_groups: a.groups,
            audit_group_write_us: a.group_write_us,
            audit_indexed: a.indexed,
            audit_free_bytes: a.free_bytes,
            audit_writable: a.failure.is_none(),
            last_swap_age_seconds: self.last_swap_age_seconds,
            snapshots_written: self.snapshots_written,
            snapshot_failures: self.snapshot_failures,
            last_snapshot_seq: self.last_snapshot_seq,
            change_log_seq: self.change_log.unwrap_or(0),
            open_connections: self.open_connections,
            body_bytes_held: self.body_bytes_held,
            ledger_damaged: self.ledger_damaged,
            append_transactions: self.append_transactions,
            append_requests: self.append_requests,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTAGE: Duration = Duration::from_secs(30);

    fn healthy() -> ReadyInputs {
        ReadyInputs {
            head: Some(100),
            last_seen_head: 100,
            unreachable_for: None,
            reading_age: Duration::from_millis(40),
            index_seq: 100,
            max_lag: 10,
            max_outage: OUTAGE,
            append_failure: None,
            audit_failure: None,
        }
    }

    #[test]
    fn an_index_within_max_lag_of_a_readable_ledger_is_ready_and_says_nothing() {
        let r = readiness(&ReadyInputs { index_seq: 90, ..healthy() });
        assert_eq!((r.ready, r.lag, r.known_head, r.head, r.reason), (true, 10, 100, Some(100), None));
    }

    #[test]
    fn an_index_further_behind_than_max_lag_is_not_ready() {
        let r = readiness(&ReadyInputs { index_seq: 89, ..healthy() });
        assert!(!r.ready);
        assert_eq!(r.lag, 11);
        assert_eq!(r.reason.as_deref(), Some("the index is further behind the ledger than max_lag"));
    }

    #[test]
    fn an_unreadable_ledger_serves_the_last_index_until_the_outage_bound_then_fails_closed() {
        let within = readiness(&ReadyInputs { head: None, unreachable_for: Some(Duration::from_secs(5)), ..healthy() });
        assert!(within.ready);
        assert_eq!(within.known_head, 100, "the last head read before the outage");
        assert!(within.reason.unwrap().contains("serving the last index (fails closed after 30 s)"));
        let past = readiness(&ReadyInputs {
            head: None,
            unreachable_for: Some(OUTAGE + Duration::from_millis(1)),
            ..healthy()
        });
        assert!(!past.ready);
        assert!(past.reason.unwrap().contains("failing closed"));
    }

    #[test]
    fn a_reading_older_than_the_outage_bound_means_a_stuck_sync_and_fails_closed() {
        // The last reading succeeded, but long ago: nothing vouches for it now.
        let r = readiness(&ReadyInputs { reading_age: OUTAGE + Duration::from_secs(1), ..healthy() });
        assert!(!r.ready);
        assert_eq!(r.head, None);
        assert_eq!(r.outage, Some(OUTAGE + Duration::from_secs(1)));
    }

    #[test]
    fn failing_appends_and_a_refusing_decision_log_are_named_on_a_ready_gate() {
        let appends = readiness(&ReadyInputs { append_failure: Some("disk_full"), ..healthy() });
        assert!(appends.ready);
        assert!(appends.reason.unwrap().starts_with("appends fail (disk_full)"));
        let audit = readiness(&ReadyInputs { audit_failure: Some("space_reserve"), ..healthy() });
        assert!(audit.ready);
        assert!(audit.reason.unwrap().starts_with("the decision log refuses records (space_reserve)"));
        let both =
            readiness(&ReadyInputs { append_failure: Some("read_only"), audit_failure: Some("io"), ..healthy() });
        assert!(both.reason.unwrap().starts_with("appends fail (read_only)"), "appends are named first");
    }

    #[test]
    fn the_index_ahead_of_a_stale_head_reading_has_no_lag() {
        // This node appended past the sync thread's last reading.
        let r = readiness(&ReadyInputs { index_seq: 105, ..healthy() });
        assert_eq!((r.ready, r.lag), (true, 0));
    }
}
