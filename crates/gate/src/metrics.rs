//! Counters and a latency histogram, exposed for Prometheus. Recording on
//! the check path is a few relaxed increments of plain atomics; a scrape
//! reads them once and hands the values to the Prometheus client
//! (`prometheus-client`, the official Rust client) to encode as OpenMetrics
//! text, so escaping, number formatting and the histogram's shape are the
//! kept crate's.

use claimgate_rules::Reason;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
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
    Backup,
    Changes,
    Readjudication,
    Other,
}

const ROUTES: [&str; 12] = [
    "check",
    "check_batch",
    "events",
    "files",
    "audit",
    "health",
    "metrics",
    "snapshot",
    "backup",
    "changes",
    "readjudication",
    "other",
];

/// Every reason a decision can carry, in metric order.
const REASONS: [Reason; 9] = Reason::ALL;

/// Request latency bucket bounds, microseconds.
const LATENCY_BOUNDS_US: [u64; 12] = [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 250_000];

#[derive(Default)]
pub struct Metrics {
    requests: [AtomicU64; 12],
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
    /// The change log's mark (every change of events up to it recorded; 0 without a log).
    pub change_log_seq: u64,
    /// Open connections on the check and the admin listener.
    pub open_connections: [u64; 2],
    /// Request-body bytes held now against `--max-inflight-body-bytes`.
    pub body_bytes_held: u64,
    /// The background page check found the ledger file damaged.
    pub ledger_damaged: bool,
    /// Append transactions, and the `POST /v1/events` requests they carried (group commit).
    pub append_transactions: u64,
    pub append_requests: u64,
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

    /// The exposition of every metric, in the OpenMetrics text format
    /// ([`CONTENT_TYPE`]), encoded by the Prometheus client from one reading
    /// of the atomics and `g`.
    pub fn render(&self, g: &Gauges) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let flag = |b: bool| i64::from(b);
        let mut families = Vec::with_capacity(48);
        families.push(Family::labelled(
            "claimgate_requests",
            "HTTP requests by route.",
            ROUTES
                .iter()
                .enumerate()
                .map(|(i, route)| (vec![("route", *route)], Value::Counter(get(&self.requests[i])))),
        ));
        families.push(Family::labelled(
            "claimgate_responses_errors",
            "Error responses by class.",
            [
                (vec![("class", "4xx")], Value::Counter(get(&self.client_errors))),
                (vec![("class", "5xx")], Value::Counter(get(&self.server_errors))),
            ],
        ));
        families.push(Family::labelled(
            "claimgate_decisions",
            "Claim-line decisions by verdict and reason.",
            REASONS.iter().enumerate().map(|(i, reason)| {
                let verdict =
                    if matches!(reason, Reason::Ok | Reason::EmergencyExemption) { "settle" } else { "reject" };
                (vec![("verdict", verdict), ("reason", reason.as_str())], Value::Counter(get(&self.decisions[i])))
            }),
        ));
        let counters: [(&'static str, &'static str, u64); 28] = [
            (
                "claimgate_append_transactions",
                "Ledger append transactions run for POST /v1/events (each commits every request waiting at once).",
                g.append_transactions,
            ),
            ("claimgate_append_requests", "POST /v1/events requests appended.", g.append_requests),
            ("claimgate_snapshots_written", "Index snapshots written while serving.", g.snapshots_written),
            ("claimgate_snapshot_failures", "Index snapshot writes that failed.", g.snapshot_failures),
            (
                "claimgate_ledger_listener_losses",
                "Append-notification sessions lost (shared ledger).",
                get(&self.listener_losses),
            ),
            ("claimgate_index_swaps", "Index versions published.", get(&self.swaps)),
            ("claimgate_index_sync_errors", "Failed ledger reads by the sync thread.", get(&self.sync_errors)),
            ("claimgate_events_accepted", "Ledger events accepted through the admin API.", get(&self.events_accepted)),
            ("claimgate_events_refused", "Ledger events refused (R4, R8).", get(&self.events_refused)),
            (
                "claimgate_events_already_recorded",
                "Re-sent events answered with their original seq, nothing stored (R7a).",
                get(&self.events_already_recorded),
            ),
            (
                "claimgate_audit_exemptions_refused",
                "Emergency exemptions answered 503 audit_unavailable because the decision log could not record them (never settled unrecorded).",
                get(&self.audit_exemptions_refused),
            ),
            (
                "claimgate_audit_rejects_unrecorded",
                "Rejects answered whose decision record the log could not take (see /readyz audit).",
                get(&self.audit_rejects_unrecorded),
            ),
            (
                "claimgate_audit_failed_writes",
                "Decision-log writes or fsyncs that failed, and groups refused by the free-space reserve.",
                g.audit_failed_writes,
            ),
            ("claimgate_audit_written", "Decision records written and fsynced.", g.audit_written),
            ("claimgate_audit_groups", "Decision-log groups written (one fsync each).", g.audit_groups),
            (
                "claimgate_audit_group_write_microseconds",
                "Time spent writing and fsyncing decision-log groups (divide by claimgate_audit_groups_total for the mean).",
                g.audit_group_write_us,
            ),
            ("claimgate_audit_indexed", "Decision records in the audit index (queries see these).", g.audit_indexed),
            ("claimgate_stale_index", "Checks answered 503 stale_index (min_seq not reached in time).", get(&self.stale_index)),
            (
                "claimgate_header_timeouts",
                "Connections closed because a request head did not arrive in time (slow or idle clients).",
                get(&self.header_timeouts),
            ),
            (
                "claimgate_body_timeouts",
                "Requests answered 408 request_timeout because the body did not arrive in time.",
                get(&self.body_timeouts),
            ),
            (
                "claimgate_write_timeouts",
                "Connections closed because the client left an answer unread too long.",
                get(&self.write_timeouts),
            ),
            (
                "claimgate_connections_refused",
                "Connections closed at once because the connection cap was reached.",
                get(&self.connections_refused),
            ),
            (
                "claimgate_connections_refused_per_client",
                "Connections closed at once because their client address held its cap (--max-connections-per-client).",
                get(&self.connections_refused_per_client),
            ),
            (
                "claimgate_body_budget_refusals",
                "Requests answered 503 busy because request bodies in flight held the budget (--max-inflight-body-bytes).",
                get(&self.body_budget_refusals),
            ),
            (
                "claimgate_ledger_head_reads",
                "Reads of the ledger head, all by the sync thread: /readyz and /metrics serve its last reading.",
                get(&self.ledger_head_reads),
            ),
            ("claimgate_unauthorized", "Requests refused for a missing or wrong token (401).", get(&self.unauthorized)),
            ("claimgate_forbidden", "Writes refused because they came with the read-only token (403).", get(&self.forbidden)),
            (
                "claimgate_query_reads_busy",
                "Integrity-file and explain reads refused busy: every query connection taken, the wait queue full or the wait past its bound.",
                get(&self.query_reads_busy),
            ),
        ];
        families.extend(counters.into_iter().map(|(name, help, v)| Family::one(name, help, Value::Counter(v))));
        families.push(Family::labelled(
            "claimgate_connections_open",
            "Open connections by listener (each has its own cap).",
            ["check", "admin"]
                .into_iter()
                .zip(g.open_connections)
                .map(|(l, open)| (vec![("listener", l)], Value::gauge(open))),
        ));
        let gauges: [(&'static str, &'static str, Value); 14] = [
            (
                "claimgate_min_seq_waiting",
                "Checks waiting now for the index to reach their min_seq.",
                Value::gauge(get(&self.min_seq_waiting)),
            ),
            (
                "claimgate_inflight_body_bytes",
                "Request-body bytes held now against --max-inflight-body-bytes (each body's first 64 KiB not counted).",
                Value::gauge(g.body_bytes_held),
            ),
            (
                "claimgate_audit_writable",
                "0 while the decision log refuses records (disk full, reserve, I/O error: see /readyz), else 1.",
                Value::Gauge(flag(g.audit_writable)),
            ),
            (
                "claimgate_audit_free_bytes",
                "Free bytes on the decision log's file system, as last measured by its writer.",
                Value::gauge(g.audit_free_bytes),
            ),
            (
                "claimgate_ledger_damaged",
                "1 if the start-up check of the ledger file found a damaged page (see /readyz), else 0.",
                Value::Gauge(flag(g.ledger_damaged)),
            ),
            (
                "claimgate_change_log_seq",
                "Every standing change of events up to this seq is in the change feed (0: no change log).",
                Value::gauge(g.change_log_seq),
            ),
            (
                "claimgate_snapshot_last_seq",
                "Seq of the newest snapshot written or loaded at start (0: none).",
                Value::gauge(g.last_snapshot_seq),
            ),
            (
                "claimgate_ledger_reachable",
                "1 if the ledger's head could be read just now, else 0.",
                Value::Gauge(flag(g.ledger_reachable)),
            ),
            (
                "claimgate_ledger_writable",
                "0 while appends fail (disk full, read-only data directory: see /readyz), else 1.",
                Value::Gauge(flag(g.ledger_writable)),
            ),
            ("claimgate_index_seq", "Ledger seq the served index reflects.", Value::gauge(g.index_seq)),
            (
                "claimgate_ledger_head_seq",
                "Highest seq on the ledger (the last one read, while unreachable).",
                Value::gauge(g.ledger_head),
            ),
            ("claimgate_index_overlay_entities", "Entities in the index overlay.", Value::gauge(g.overlay_entities)),
            (
                "claimgate_audit_queue_depth",
                "Decision records accepted, not yet written.",
                Value::gauge(g.audit_queue_depth),
            ),
            (
                "claimgate_index_last_swap_age_seconds",
                "Seconds since the last index swap.",
                Value::GaugeF64(g.last_swap_age_seconds),
            ),
        ];
        families.extend(gauges.into_iter().map(|(name, help, v)| Family::one(name, help, v)));
        let mut buckets: Vec<(f64, u64)> = LATENCY_BOUNDS_US
            .iter()
            .enumerate()
            .map(|(i, bound)| (*bound as f64 / 1e6, get(&self.latency_buckets[i])))
            .collect();
        buckets.push((f64::MAX, get(&self.latency_buckets[LATENCY_BOUNDS_US.len()])));
        let latency =
            Latency { sum_seconds: get(&self.latency_sum_us) as f64 / 1e6, count: get(&self.latency_count), buckets };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Scrape { families, latency }));
        let mut out = String::with_capacity(8192);
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

/// The media type of [`Metrics::render`]'s text (Prometheus scrapes it as is).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One sample's value. Counters and integer gauges are written as integers.
#[derive(Debug, Clone, Copy)]
enum Value {
    Counter(u64),
    Gauge(i64),
    GaugeF64(f64),
}

impl Value {
    /// An integer gauge; a reading past `i64::MAX` (never, for these) saturates.
    fn gauge(v: u64) -> Value {
        Value::Gauge(i64::try_from(v).unwrap_or(i64::MAX))
    }

    fn metric_type(self) -> MetricType {
        match self {
            Value::Counter(_) => MetricType::Counter,
            Value::Gauge(_) | Value::GaugeF64(_) => MetricType::Gauge,
        }
    }

    fn encode(self, encoder: &mut MetricEncoder<'_>) -> std::fmt::Result {
        match self {
            Value::Counter(v) => encoder.encode_counter::<NoLabelSet, _, u64>(&v, None),
            Value::Gauge(v) => encoder.encode_gauge(&v),
            Value::GaugeF64(v) => encoder.encode_gauge(&v),
        }
    }
}

/// Label pairs of one sample.
type Labels = Vec<(&'static str, &'static str)>;

/// One metric family as read at one scrape. A counter's name is given
/// without `_total`: the encoder adds it to its samples.
#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Labels, Value)>,
}

impl Family {
    fn one(name: &'static str, help: &'static str, value: Value) -> Family {
        Family { name, help, samples: vec![(Vec::new(), value)] }
    }

    fn labelled(name: &'static str, help: &'static str, samples: impl IntoIterator<Item = (Labels, Value)>) -> Family {
        Family { name, help, samples: samples.into_iter().collect() }
    }
}

/// The request-latency histogram as read: per-bucket counts, upper bounds in
/// seconds, the last bucket `+Inf` (`f64::MAX`, as the encoder marks it).
#[derive(Debug)]
struct Latency {
    sum_seconds: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

/// Everything one scrape read, handed to the Prometheus client to encode.
#[derive(Debug)]
struct Scrape {
    families: Vec<Family>,
    latency: Latency,
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        for family in &self.families {
            let Some((_, first)) = family.samples.first() else { continue };
            let mut metric = encoder.encode_descriptor(family.name, family.help, None, first.metric_type())?;
            for (labels, value) in &family.samples {
                if labels.is_empty() {
                    value.encode(&mut metric)?;
                } else {
                    value.encode(&mut metric.encode_family(labels)?)?;
                }
            }
        }
        let l = &self.latency;
        encoder
            .encode_descriptor(
                "claimgate_request_duration_seconds",
                "Request handling time.",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(l.sum_seconds, l.count, &l.buckets, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            ledger_reachable: true,
            ledger_writable: true,
            index_seq: 3,
            ledger_head: 3,
            overlay_entities: 2,
            audit_queue_depth: 0,
            audit_written: 5,
            audit_failed_writes: 0,
            audit_groups: 4,
            audit_group_write_us: 900,
            audit_indexed: 5,
            audit_free_bytes: 1 << 30,
            audit_writable: true,
            last_swap_age_seconds: 0.25,
            snapshots_written: 1,
            snapshot_failures: 0,
            last_snapshot_seq: 2,
            change_log_seq: 2,
            open_connections: [7, 1],
            body_bytes_held: 0,
            ledger_damaged: false,
            append_transactions: 0,
            append_requests: 0,
        }
    }

    #[test]
    fn the_exposition_holds_every_family_with_its_type_and_ends_with_eof() {
        let m = Metrics::default();
        m.request(Route::Check, 200, 40);
        m.request(Route::Check, 400, 300_000);
        m.decision(Reason::PractitionerSuspended);
        let text = m.render(&gauges());
        for line in [
            "# TYPE claimgate_requests counter",
            "claimgate_requests_total{route=\"check\"} 2",
            "claimgate_responses_errors_total{class=\"4xx\"} 1",
            "claimgate_decisions_total{verdict=\"reject\",reason=\"practitioner_suspended\"} 1",
            "claimgate_decisions_total{verdict=\"settle\",reason=\"ok\"} 0",
            "# TYPE claimgate_index_seq gauge",
            "claimgate_index_seq 3",
            "claimgate_connections_open{listener=\"check\"} 7",
            "claimgate_index_last_swap_age_seconds 0.25",
            "claimgate_audit_written_total 5",
            "# TYPE claimgate_request_duration_seconds histogram",
            "claimgate_request_duration_seconds_count 2",
            "claimgate_request_duration_seconds_bucket{le=\"+Inf\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        // Cumulative buckets: 40 us is in every bucket from 50 us on, the 300 ms request only in +Inf.
        assert!(text.lines().any(|l| l == "claimgate_request_duration_seconds_bucket{le=\"0.00005\"} 1"), "{text}");
        assert!(text.lines().any(|l| l == "claimgate_request_duration_seconds_bucket{le=\"0.25\"} 1"), "{text}");
    }
}
