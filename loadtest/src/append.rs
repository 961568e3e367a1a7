//! `loadtest append`: the append rate of the gate's ledger, closed loop.
//! `--writers` keep-alive admin connections each send `POST /v1/events`
//! (one event, or an array of `--events-per-request`) as soon as the previous
//! answer arrives, each with its own stream of valid, fresh events (see
//! `writes`), for `--duration` or `--max-requests`.
//!
//! It reports acknowledged events and requests per second, the latency of a
//! request from its send (HdrHistogram), refused events by code, and errors
//! by kind with the first few kept verbatim. Every run stops by itself: no
//! request is sent after the duration, and each waits at most its full
//! `--timeout-ms` (the run's end never cuts one short).

use crate::client::build_request;
use crate::exchange::Link;
use crate::mix::Mix;
use crate::probe::{round3, CpuMark, CpuReport, Machine};
use crate::run::RECONNECT_BACKOFF;
use crate::stats::{self, Stats};
use crate::writes::{self, Writes};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest wait for the preflight request.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);
/// Writers connect before the clock starts.
const CONNECT_LEAD: Duration = Duration::from_millis(300);

/// Everything an append run is told (validated by the caller).
#[derive(Debug, Clone)]
pub struct AppendConfig {
    pub label: String,
    pub admin: SocketAddr,
    pub token: String,
    pub writers: usize,
    pub events_per_request: usize,
    pub duration: Duration,
    pub max_requests: u64,
    pub timeout: Duration,
    pub practitioners: u64,
    pub seed: u64,
    pub pool_lines: usize,
    pub threads: usize,
    pub server_pid: Option<u32>,
}

/// The report of one append run (also written as JSON).
#[derive(Debug, Serialize)]
pub struct AppendReport {
    /// Always `append` (tells `loadtest markdown` which table it belongs in).
    pub kind: &'static str,
    pub label: String,
    pub started_unix_s: u64,
    pub config: ConfigReport,
    /// Seconds from the start until the last writer stopped.
    pub elapsed_s: f64,
    pub requests: Requests,
    pub events: Events,
    pub throughput: Throughput,
    /// Every request answered or timed out, from its send.
    pub latency_us: stats::Percentiles,
    pub errors_total: u64,
    pub errors: stats::Errors,
    /// Acknowledged events per 100 ms window.
    pub windows: stats::Windows,
    /// Lowest and highest `seq` acknowledged during the run.
    pub seq_range: Option<(u64, u64)>,
    pub cpu_s: CpuReport,
    pub machine: Machine,
}

#[derive(Debug, Serialize)]
pub struct ConfigReport {
    pub admin: String,
    pub writers: usize,
    pub events_per_request: usize,
    pub duration_s: f64,
    pub max_requests: u64,
    pub timeout_ms: u64,
    pub practitioners: u64,
    pub seed: u64,
    pub generator_threads: usize,
}

#[derive(Debug, Serialize)]
pub struct Requests {
    pub sent: u64,
    pub answered: u64,
    /// 2xx answers read as the API's JSON.
    pub ok: u64,
}

#[derive(Debug, Serialize)]
pub struct Events {
    /// Events in the requests sent.
    pub sent: u64,
    /// Events answered with a `seq`.
    pub acknowledged: u64,
    /// Events refused, by R8 code.
    pub refused: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct Throughput {
    /// Acknowledged events per second of elapsed time.
    pub events_per_s: f64,
    /// 2xx answers per second of elapsed time.
    pub requests_per_s: f64,
    /// The median 100 ms window's acknowledged events, per second: the
    /// steady rate, less moved than the mean by a stall of the shared machine.
    pub events_per_s_median_window: f64,
}

/// Shared by the writers of one run.
struct Shared {
    start: Instant,
    /// No request is sent from here on.
    end: Instant,
    timeout: Duration,
    tickets: AtomicU64,
    config: AppendConfig,
    writes: Writes,
}

/// Checks that the admin listener answers and takes the token, so a wrong
/// address or token fails at once instead of as a run of errors.
async fn preflight(config: &AppendConfig) -> Result<(), String> {
    let admin = config.admin;
    let auth = format!("Bearer {}", config.token);
    let request = build_request("GET", "/v1/audit?limit=1", &admin.to_string(), &[("Authorization", &auth)], b"");
    let answer = async {
        let mut conn = crate::client::Connection::connect(admin)
            .await
            .map_err(|e| format!("nothing answers on the admin address {admin}: {e}"))?;
        conn.exchange(&request).await.map_err(|e| format!("{admin} did not answer: {e}"))
    };
    let r = tokio::time::timeout(PREFLIGHT_TIMEOUT, answer)
        .await
        .map_err(|_| format!("{admin} did not answer within {PREFLIGHT_TIMEOUT:?}"))??;
    match r.status {
        200..=299 => Ok(()),
        401 | 403 => Err(format!(
            "{admin} refused the admin token (status {}): pass the gate's token with --admin-token or CLAIMGATE_ADMIN_TOKEN",
            r.status
        )),
        s => Err(format!(
            "{admin} answered GET /v1/audit with status {s}: {}; is this the gate's admin listener?",
            String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
        )),
    }
}

/// One writer: its own stream of events, a request as soon as the last is answered.
async fn writer(shared: Arc<Shared>, stream: u64) -> Stats {
    let c = &shared.config;
    let mut stats = Stats::default();
    let mut link = Link::open(c.admin, shared.timeout, shared.start, &mut stats).await;
    let host = c.admin.to_string();
    let auth = format!("Bearer {}", c.token);
    tokio::time::sleep_until(shared.start.into()).await;
    let mut next = 0u64;
    while Instant::now() < shared.end && shared.tickets.fetch_add(1, Ordering::Relaxed) < c.max_requests {
        let body = shared.writes.body(stream, next, c.events_per_request);
        next += c.events_per_request as u64;
        let request = build_request("POST", "/v1/events", &host, &[("Authorization", &auth)], body.as_bytes());
        let timeout = shared.timeout;
        let Some((sent, outcome)) = link.exchange(&request, timeout, &mut stats).await else {
            tokio::time::sleep(RECONNECT_BACKOFF).await;
            continue;
        };
        match outcome {
            Ok(r) => {
                let done = Instant::now();
                stats.ended(sent, sent, done);
                let at = link.micros(done);
                let acked_before = stats.acks.len();
                writes::record_answer(&mut stats, &r, at);
                stats.window_add(at, (stats.acks.len() - acked_before) as u64);
            }
            Err(why) => link.no_answer(&mut stats, why, sent, sent, timeout),
        }
    }
    stats
}

pub fn run(config: AppendConfig) -> Result<AppendReport, String> {
    let started_unix_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    eprintln!(
        "loadtest: drawing write targets ({} pool lines from {} practitioners, seed {})",
        config.pool_lines, config.practitioners, config.seed
    );
    let mix = Mix::new(config.practitioners, config.seed, config.pool_lines)?;
    let writes = Writes::new(&mix, config.seed, Writes::nonce(started_unix_s));
    drop(mix);
    if writes.is_empty() {
        return Err("the request pool has no practitioner to write violations for".into());
    }
    crate::run::runtime(config.threads)?.block_on(async move {
        preflight(&config).await?;
        let start = Instant::now() + CONNECT_LEAD;
        let end = start + config.duration;
        let shared = Arc::new(Shared {
            start,
            end,
            timeout: config.timeout,
            tickets: AtomicU64::new(0),
            config: config.clone(),
            writes,
        });
        let cpu = CpuMark::now(config.server_pid);
        let tasks: Vec<_> = (0..config.writers as u64).map(|w| tokio::spawn(writer(shared.clone(), w))).collect();
        let mut total = Stats::default();
        for task in tasks {
            total.merge(&task.await.map_err(|e| format!("a writer task failed: {e}"))?);
        }
        let elapsed = Instant::now().saturating_duration_since(start).as_secs_f64();
        let cpu = cpu.since();
        let acknowledged = total.acks.len() as u64;
        let seqs = total.acks.iter().map(|&(_, seq)| seq);
        let seq_range = seqs.clone().min().zip(seqs.max());
        let full_windows = (config.duration.as_micros() as u64 / stats::WINDOW_US) as usize;
        let windows = stats::windows(&total.windows, full_windows);
        Ok(AppendReport {
            kind: "append",
            label: config.label.clone(),
            started_unix_s,
            config: ConfigReport {
                admin: config.admin.to_string(),
                writers: config.writers,
                events_per_request: config.events_per_request,
                duration_s: config.duration.as_secs_f64(),
                max_requests: config.max_requests,
                timeout_ms: config.timeout.as_millis() as u64,
                practitioners: config.practitioners,
                seed: config.seed,
                generator_threads: config.threads,
            },
            elapsed_s: round3(elapsed),
            requests: Requests { sent: total.sent, answered: total.responses, ok: total.ok },
            events: Events {
                sent: total.sent * config.events_per_request as u64,
                acknowledged,
                refused: total.refused.clone(),
            },
            throughput: Throughput {
                events_per_s: round3(acknowledged as f64 / elapsed),
                requests_per_s: round3(total.ok as f64 / elapsed),
                events_per_s_median_window: (windows.median * 1_000_000 / stats::WINDOW_US) as f64,
            },
            latency_us: stats::Percentiles::of(&total.latency),
            errors_total: total.errors.total(),
            errors: total.errors.clone(),
            windows,
            seq_range,
            cpu_s: cpu,
            machine: Machine::this(),
        })
    })
}

/// The human summary.
pub fn summary(r: &AppendReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let c = &r.config;
    let _ = writeln!(
        s,
        "== {}: closed loop, {} writer{}, {} to {}, {} s ({} practitioners, seed {})",
        r.label,
        c.writers,
        if c.writers == 1 { "" } else { "s" },
        if c.events_per_request == 1 {
            "single events".to_owned()
        } else {
            format!("{} events per request", c.events_per_request)
        },
        c.admin,
        c.duration_s,
        c.practitioners,
        c.seed
    );
    let _ = writeln!(
        s,
        "   events: {} sent, {} acknowledged in {:.2} s: {:.0} events/s (median 100 ms window: {:.0}/s); \
         requests: {} sent, {} ok, {:.0} req/s",
        r.events.sent,
        r.events.acknowledged,
        r.elapsed_s,
        r.throughput.events_per_s,
        r.throughput.events_per_s_median_window,
        r.requests.sent,
        r.requests.ok,
        r.throughput.requests_per_s
    );
    let _ = writeln!(s, "   latency per request: {}", r.latency_us.text());
    let e = &r.errors;
    let _ = writeln!(
        s,
        "   refused events: {:?}; errors: {} (connect {}, timeout {}, io {}, protocol {}, non-JSON {}, status {:?} {:?})",
        r.events.refused, r.errors_total, e.connect, e.timeout, e.io, e.protocol, e.non_json, e.http_status, e.error_codes
    );
    s.push_str(&stats::samples_text(e));
    let w = &r.windows;
    let _ = writeln!(
        s,
        "   events acknowledged per 100 ms: median {}, min {} (at {:.1} s), max {}; seq {:?}",
        w.median, w.min, w.min_at_s, w.max, r.seq_range
    );
    s.push_str(&r.cpu_s.line(r.elapsed_s, &r.machine));
    s
}
