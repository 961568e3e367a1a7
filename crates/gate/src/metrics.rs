//! Counters and a latency histogram, rendered in the Prometheus text format.
//! Plain atomics: recording on the check path is a few relaxed increments.

use claimgate_rules::Reason;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Routes counted separately.
#[derive(Debug, Clone, Copy)]
pub enum Route {
    Check = 0,
    CheckBatch,
    Events,
    Files,
    Audit,
    Health,
    Metrics,
    Snapshot,
    Other,
}

const ROUTES: [&str; 9] =
    ["check", "check_batch", "events", "files", "audit", "health", "metrics", "snapshot", "other"];

/// Every reason a decision can carry, in metric order.
const REASONS: [Reason; 9] = Reason::ALL;

/// Request latency bucket bounds, microseconds.
const LATENCY_BOUNDS_US: [u64; 12] = [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 250_000];

#[derive(Default)]
pub struct Metrics {
    requests: [AtomicU64; 9],
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    decisions: [AtomicU64; 9],
    latency_buckets: [AtomicU64; 13],
    latency_sum_us: AtomicU64,
    latency_count: AtomicU64,
    pub swaps: AtomicU64,
    pub sync_errors: AtomicU64,
    pub events_accepted: AtomicU64,
    pub events_refused: AtomicU64,
    /// Re-sends answered with their original `seq`, storing nothing (R7a).
    pub events_already_recorded: AtomicU64,
    /// Emergency exemptions answered `audit_unavailable` (the log refused them).
    pub audit_exemptions_refused: AtomicU64,
    /// Rejects answered whose record the log refused.
    pub audit_rejects_unrecorded: AtomicU64,
    pub stale_index: AtomicU64,
    pub connections_refused: AtomicU64,
    /// Connections closed at once because their client address held its cap.
    pub connections_refused_per_client: AtomicU64,
    /// Requests answered 503 `busy` because the in-flight body budget was spent.
    pub body_budget_refusals: AtomicU64,
    /// Reads of the ledger head (by the sync thread; never by a request).
    pub ledger_head_reads: AtomicU64,
    pub header_timeouts: AtomicU64,
    pub body_timeouts: AtomicU64,
    pub write_timeouts: AtomicU64,
    pub unauthorized: AtomicU64,
    pub forbidden: AtomicU64,
    pub query_reads_busy: AtomicU64,
    /// A gauge: checks waiting now for `min_seq`.
    pub min_seq_waiting: AtomicU64,
    pub listener_losses: AtomicU64,
}

/// Values read from elsewhere at render time.
pub struct Gauges {
    pub ledger_reachable: bool,
    /// No append has failed since the last one that succeeded.
    pub ledger_writable: bool,
    pub index_seq: u64,
    pub ledger_head: u64,
    pub overlay_entities: u64,
    pub audit_queue_depth: u64,
    pub audit_written: u64,
    pub audit_failed_writes: u64,
    pub audit_groups: u64,
    pub audit_group_write_us: u64,
    pub audit_indexed: u64,
    pub audit_free_bytes: u64,
    pub audit_writable: bool,
    pub last_swap_age_seconds: f64,
    pub snapshots_written: u64,
    pub snapshot_failures: u64,
    pub last_snapshot_seq: u64,
    /// Open connections on the check and the admin listener.
    pub open_connections: [u64; 2],
    /// Request-body bytes held now against `--max-inflight-body-bytes`.
    pub body_bytes_held: u64,
    /// The background page check found the ledger file damaged.
    pub ledger_damaged: bool,
}

impl Metrics {
    pub fn request(&self, route: Route, status: u16, micros: u64) {
        self.requests[route as usize].fetch_add(1, Ordering::Relaxed);
        match status {
            400..=499 => self.client_errors.fetch_add(1, Ordering::Relaxed),
            500..=599 => self.server_errors.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        let bucket = LATENCY_BOUNDS_US.iter().position(|b| micros <= *b).unwrap_or(LATENCY_BOUNDS_US.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(micros, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn decision(&self, reason: Reason) {
        let i = REASONS.iter().position(|r| *r == reason).expect("every reason is listed");
        self.decisions[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP claimgate_requests_total HTTP requests by route.\n# TYPE claimgate_requests_total counter"
        );
        for (i, route) in ROUTES.iter().enumerate() {
            let _ = writeln!(out, "claimgate_requests_total{{route=\"{route}\"}} {}", get(&self.requests[i]));
        }
        let _ = writeln!(out, "# HELP claimgate_responses_errors_total Error responses by class.\n# TYPE claimgate_responses_errors_total counter");
        let _ = writeln!(out, "claimgate_responses_errors_total{{class=\"4xx\"}} {}", get(&self.client_errors));
        let _ = writeln!(out, "claimgate_responses_errors_total{{class=\"5xx\"}} {}", get(&self.server_errors));
        let _ = writeln!(out, "# HELP claimgate_decisions_total Claim-line decisions by verdict and reason.\n# TYPE claimgate_decisions_total counter");
        for (i, reason) in REASONS.iter().enumerate() {
            let verdict = if matches!(reason, Reason::Ok | Reason::EmergencyExemption) { "settle" } else { "reject" };
            let _ = writeln!(
                out,
                "claimgate_decisions_total{{verdict=\"{verdict}\",reason=\"{}\"}} {}",
                reason.as_str(),
                get(&self.decisions[i])
            );
        }
        let _ = writeln!(out, "# HELP claimgate_request_duration_seconds Request handling time.\n# TYPE claimgate_request_duration_seconds histogram");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BOUNDS_US.iter().enumerate() {
            cumulative += get(&self.latency_buckets[i]);
            let _ = writeln!(
                out,
                "claimgate_request_duration_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        cumulative += get(&self.latency_buckets[LATENCY_BOUNDS_US.len()]);
        let _ = writeln!(out, "claimgate_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "claimgate_request_duration_seconds_sum {}", get(&self.latency_sum_us) as f64 / 1e6);
        let _ = writeln!(out, "claimgate_request_duration_seconds_count {}", get(&self.latency_count));
        let counters: [(&str, &str, u64); 25] = [
            ("claimgate_snapshots_written_total", "Index snapshots written while serving.", g.snapshots_written),
            ("claimgate_snapshot_failures_total", "Index snapshot writes that failed.", g.snapshot_failures),
            (
                "claimgate_ledger_listener_losses_total",
                "Append-notification sessions lost (shared ledger).",
                get(&self.listener_losses),
            ),
            ("claimgate_index_swaps_total", "Index versions published.", get(&self.swaps)),
            ("claimgate_index_sync_errors_total", "Failed ledger reads by the sync thread.", get(&self.sync_errors)),
            (
                "claimgate_events_accepted_total",
                "Ledger events accepted through the admin API.",
                get(&self.events_accepted),
            ),
            ("claimgate_events_refused_total", "Ledger events refused (R4, R8).", get(&self.events_refused)),
            (
                "claimgate_events_already_recorded_total",
                "Re-sent events answered with their original seq, nothing stored (R7a).",
                get(&self.events_already_recorded),
            ),
            (
                "claimgate_audit_exemptions_refused_total",
                "Emergency exemptions answered 503 audit_unavailable because the decision log could not record them (never settled unrecorded).",
                get(&self.audit_exemptions_refused),
            ),
            (
                "claimgate_audit_rejects_unrecorded_total",
                "Rejects answered whose decision record the log could not take (see /readyz audit).",
                get(&self.audit_rejects_unrecorded),
            ),
            (
                "claimgate_audit_failed_writes_total",
                "Decision-log writes or fsyncs that failed, and groups refused by the free-space reserve.",
                g.audit_failed_writes,
            ),
            ("claimgate_audit_written_total", "Decision records written and fsynced.", g.audit_written),
            ("claimgate_audit_groups_total", "Decision-log groups written (one fsync each).", g.audit_groups),
            (
                "claimgate_audit_group_write_microseconds_total",
                "Time spent writing and fsyncing decision-log groups (divide by claimgate_audit_groups_total for the mean).",
                g.audit_group_write_us,
            ),
            ("claimgate_audit_indexed_total", "Decision records in the audit index (queries see these).", g.audit_indexed),
            (
                "claimgate_stale_index_total",
                "Checks answered 503 stale_index (min_seq not reached in time).",
                get(&self.stale_index),
            ),
            (
                "claimgate_header_timeouts_total",
                "Connections closed because a request head did not arrive in time (slow or idle clients).",
                get(&self.header_timeouts),
            ),
            (
                "claimgate_body_timeouts_total",
                "Requests answered 408 request_timeout because the body did not arrive in time.",
                get(&self.body_timeouts),
            ),
            (
                "claimgate_write_timeouts_total",
                "Connections closed because the client left an answer unread too long.",
                get(&self.write_timeouts),
            ),
            (
                "claimgate_connections_refused_per_client_total",
                "Connections closed at once because their client address held its cap (--max-connections-per-client).",
                get(&self.connections_refused_per_client),
            ),
            (
                "claimgate_body_budget_refusals_total",
                "Requests answered 503 busy because request bodies in flight held the budget (--max-inflight-body-bytes).",
                get(&self.body_budget_refusals),
            ),
            (
                "claimgate_ledger_head_reads_total",
                "Reads of the ledger head, all by the sync thread: /readyz and /metrics serve its last reading.",
                get(&self.ledger_head_reads),
            ),
            (
                "claimgate_unauthorized_total",
                "Requests refused for a missing or wrong token (401).",
                get(&self.unauthorized),
            ),
            (
                "claimgate_forbidden_total",
                "Writes refused because they came with the read-only token (403).",
                get(&self.forbidden),
            ),
            (
                "claimgate_query_reads_busy_total",
                "Integrity-file and explain reads refused busy: every query connection taken, the wait queue full or the wait past its bound.",
                get(&self.query_reads_busy),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP claimgate_connections_refused_total Connections closed at once because the connection cap was reached.\n# TYPE claimgate_connections_refused_total counter\nclaimgate_connections_refused_total {}",
            get(&self.connections_refused)
        );
        let _ = writeln!(out, "# HELP claimgate_connections_open Open connections by listener (each has its own cap).\n# TYPE claimgate_connections_open gauge");
        for (listener, open) in ["check", "admin"].iter().zip(g.open_connections) {
            let _ = writeln!(out, "claimgate_connections_open{{listener=\"{listener}\"}} {open}");
        }
        let _ = writeln!(
            out,
            "# HELP claimgate_min_seq_waiting Checks waiting now for the index to reach their min_seq.\n# TYPE claimgate_min_seq_waiting gauge\nclaimgate_min_seq_waiting {}",
            get(&self.min_seq_waiting)
        );
        let gauges: [(&str, &str, f64); 12] = [
            (
                "claimgate_inflight_body_bytes",
                "Request-body bytes held now against --max-inflight-body-bytes (each body's first 64 KiB not counted).",
                g.body_bytes_held as f64,
            ),
            (
                "claimgate_audit_writable",
                "0 while the decision log refuses records (disk full, reserve, I/O error: see /readyz), else 1.",
                f64::from(u8::from(g.audit_writable)),
            ),
            (
                "claimgate_audit_free_bytes",
                "Free bytes on the decision log's file system, as last measured by its writer.",
                g.audit_free_bytes as f64,
            ),
            (
                "claimgate_ledger_damaged",
                "1 if the start-up check of the ledger file found a damaged page (see /readyz), else 0.",
                f64::from(u8::from(g.ledger_damaged)),
            ),
            (
                "claimgate_snapshot_last_seq",
                "Seq of the newest snapshot written or loaded at start (0: none).",
                g.last_snapshot_seq as f64,
            ),
            (
                "claimgate_ledger_reachable",
                "1 if the ledger's head could be read just now, else 0.",
                f64::from(u8::from(g.ledger_reachable)),
            ),
            (
                "claimgate_ledger_writable",
                "0 while appends fail (disk full, read-only data directory: see /readyz), else 1.",
                f64::from(u8::from(g.ledger_writable)),
            ),
            ("claimgate_index_seq", "Ledger seq the served index reflects.", g.index_seq as f64),
            (
                "claimgate_ledger_head_seq",
                "Highest seq on the ledger (the last one read, while unreachable).",
                g.ledger_head as f64,
            ),
            ("claimgate_index_overlay_entities", "Entities in the index overlay.", g.overlay_entities as f64),
            ("claimgate_audit_queue_depth", "Decision records accepted, not yet written.", g.audit_queue_depth as f64),
            ("claimgate_index_last_swap_age_seconds", "Seconds since the last index swap.", g.last_swap_age_seconds),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        out
    }
}
