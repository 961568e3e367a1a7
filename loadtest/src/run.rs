//! `loadtest run`: connection tasks (one per keep-alive connection), paced
//! by a pacer thread in open loop, optional admin writers, then the merged
//! report.
//!
//! Every run stops by itself: no request is sent after `--duration` (in open
//! loop, requests due before it but behind schedule may still go out during
//! [`BACKLOG_GRACE`]; the rest count as never sent), none beyond
//! `--max-requests`, and each waits at most `--timeout-ms`. A request is never
//! cut short by the run's end: the last is sent a full timeout before it
//! (issue 7: open-loop writes reported as timeouts the requests that were
//! sent in the last milliseconds with the time left as their timeout).
//!
//! Over 600 lines on purpose: one scenario driver (closed and open loop,
//! writes during reads, freshness) whose timing rules must be read together.

use crate::client::{build_request, Connection};
use crate::exchange::Link;
use crate::mix::{Kind, Mix};
use crate::probe::{counter_deltas, ms, round3, scrape, CpuMark, CpuReport, Machine};
use crate::stats::{self, Stats};
use crate::writes::{self, Writes};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Pause before the next ticket after a connection could not be made.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);
/// Open loop: how long after the duration requests still due are sent.
pub const BACKLOG_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Each connection sends its next request when the previous answer arrives.
    Closed,
    /// Requests are due at a fixed rate; latency counts from the due time.
    Open,
}

/// Everything a run is told (validated by the caller).
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub label: String,
    pub target: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub admin_token: Option<String>,
    pub mode: Mode,
    pub connections: usize,
    pub rate: f64,
    pub duration: Duration,
    pub max_requests: u64,
    pub batch_size: usize,
    pub practitioners: u64,
    pub seed: u64,
    pub write_rate: f64,
    pub write_connections: usize,
    pub timeout: Duration,
    pub pool_lines: usize,
    pub threads: usize,
    pub server_pid: Option<u32>,
    /// Write each acknowledged write's ack time, seq and first sighting here (CSV).
    pub dump_writes: Option<std::path::PathBuf>,
}

/// The report of one run (also written as JSON).
#[derive(Debug, Serialize)]
pub struct Report {
    pub label: String,
    pub started_unix_s: u64,
    pub config: ConfigReport,
    pub mix: MixReport,
    /// Seconds from the start until the last task stopped.
    pub elapsed_s: f64,
    pub requests: Counts,
    pub throughput: Throughput,
    /// Every request answered or timed out; from the send (closed loop) or
    /// from the intended send time (open loop).
    pub latency_us: stats::Percentiles,
    /// Open loop only: the same requests timed from the actual send (the
    /// server's and the connection's share, without the generator's lateness).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_from_send_us: Option<stats::Percentiles>,
    /// Open loop only: how late the generator sent, against the schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag_us: Option<stats::Percentiles>,
    /// Open loop only: requests due before the end that were never sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_sent: Option<u64>,
    /// Single lines only: `latency_us` by the answer (`ok`, `reject`,
    /// `emergency_exemption`): the cost of recording before answering (R19).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_by_answer_us: Option<std::collections::BTreeMap<String, stats::Percentiles>>,
    pub errors: stats::Errors,
    pub errors_total: u64,
    pub verdicts: std::collections::BTreeMap<String, u64>,
    pub reasons: std::collections::BTreeMap<String, u64>,
    /// Check answers per 100 ms window (the dip: lowest vs median window).
    pub windows: stats::Windows,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writes: Option<WritesReport>,
    /// CPU seconds used during the run (from /proc; Linux).
    pub cpu_s: CpuReport,
    /// The server's own counters (`*_total` in GET /metrics) that changed
    /// during the run, when it has them (the gate does, the baseline not).
    pub server_counters: std::collections::BTreeMap<String, f64>,
    pub machine: Machine,
}

#[derive(Debug, Serialize)]
pub struct ConfigReport {
    pub target: String,
    /// The admin listener the writes went to (another node's, for freshness across nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    pub mode: Mode,
    pub connections: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    pub duration_s: f64,
    pub max_requests: u64,
    pub batch_size: usize,
    pub practitioners: u64,
    pub seed: u64,
    pub write_rate: f64,
    pub timeout_ms: u64,
    pub generator_threads: usize,
}

#[derive(Debug, Serialize)]
pub struct MixReport {
    pub pool_lines: usize,
    pub distinct_bodies: usize,
    pub good: usize,
    pub unknown: usize,
    pub suspended: usize,
    pub terminated: usize,
    pub emergency: usize,
    /// Distinct suspended / terminated practitioners found for the mix.
    pub sanctioned_practitioners: (usize, usize),
    pub build_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Counts {
    pub sent: u64,
    pub responses: u64,
    pub ok: u64,
    pub lines: u64,
}

#[derive(Debug, Serialize)]
pub struct Throughput {
    /// OK answers per second of elapsed time.
    pub requests_per_s: f64,
    /// Claim lines judged per second of elapsed time.
    pub lines_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct WritesReport {
    pub rate: f64,
    pub connections: usize,
    pub sent: u64,
    pub acked: u64,
    pub acked_per_s: f64,
    pub refused: std::collections::BTreeMap<String, u64>,
    pub errors: stats::Errors,
    /// From the intended send time to the ack.
    pub ack_latency_us: stats::Percentiles,
    /// From the actual send to the ack.
    pub ack_latency_from_send_us: stats::Percentiles,
    /// Actual send time minus intended (a backlog when writes are slower than their rate).
    pub send_lag_us: stats::Percentiles,
    pub freshness: stats::Freshness,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_sent: Option<u64>,
}

/// Shared by the tasks of one run.
struct Shared {
    start: Instant,
    /// No new request (closed loop) or newly due one (open loop) from here on.
    end: Instant,
    /// Open loop: no request at all from here on (end + [`BACKLOG_GRACE`]).
    last_send: Instant,
    timeout: Duration,
    requests: Vec<Vec<u8>>,
    batch: bool,
    /// Next ticket (request number).
    tickets: AtomicU64,
    max_requests: u64,
}

impl Shared {
    fn micros(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_micros() as u64
    }
}

/// Releases tickets on schedule (open loop): ticket k is due at start + k / rate.
struct Pacer {
    permits: Arc<Semaphore>,
    /// Tickets released in all, valid once `done`.
    released: AtomicU64,
    done: AtomicBool,
}

impl Pacer {
    /// Runs on its own thread: `std::thread::sleep` is far finer than tokio's
    /// 1 ms timer, which would bunch sends and add up to 1 ms to every latency.
    fn spawn(start: Instant, end: Instant, rate: f64, total: u64, poison: usize) -> Arc<Pacer> {
        let pacer = Arc::new(Pacer { permits: Arc::new(Semaphore::new(0)), released: 0.into(), done: false.into() });
        let p = pacer.clone();
        std::thread::Builder::new()
            .name("pacer".into())
            .spawn(move || {
                let due_by = |t: Instant| -> u64 {
                    let elapsed = t.saturating_duration_since(start).as_secs_f64();
                    if t < start {
                        0
                    } else {
                        ((elapsed * rate).floor() as u64 + 1).min(total)
                    }
                };
                let mut released = 0u64;
                loop {
                    let now = Instant::now();
                    let due = due_by(now.min(end));
                    if due > released {
                        p.permits.add_permits((due - released) as usize);
                        released = due;
                    }
                    if released >= total || now >= end {
                        break;
                    }
                    let next = start + Duration::from_secs_f64(released as f64 / rate);
                    let wait = next.min(end).saturating_duration_since(Instant::now());
                    if !wait.is_zero() {
                        std::thread::sleep(wait);
                    }
                }
                // Everything due strictly before the end.
                let span = end.saturating_duration_since(start).as_secs_f64();
                let last = ((span * rate).ceil() as u64).min(total);
                if last > released {
                    p.permits.add_permits((last - released) as usize);
                    released = last;
                }
                p.released.store(released, Ordering::Release);
                p.done.store(true, Ordering::Release);
                p.permits.add_permits(poison);
            })
            .expect("spawning the pacer thread");
        pacer
    }

    /// The next ticket, waiting for it to be due; `None` when the run is
    /// over or `last_send` has passed (a ticket not taken counts as never sent).
    async fn next(&self, tickets: &AtomicU64, last_send: Instant) -> Option<u64> {
        let permit = tokio::select! {
            // Biased: once past `last_send`, a backlog of permits must not win the race.
            biased;
            _ = tokio::time::sleep_until(last_send.into()) => return None,
            p = self.permits.acquire() => p.ok()?,
        };
        permit.forget();
        if Instant::now() >= last_send {
            return None;
        }
        let k = tickets.fetch_add(1, Ordering::Relaxed);
        if self.done.load(Ordering::Acquire) && k >= self.released.load(Ordering::Acquire) {
            // A poison permit: wake the next waiter too.
            self.permits.add_permits(1);
            return None;
        }
        Some(k)
    }
}

/// One connection's loop of checks.
async fn check_task(shared: Arc<Shared>, addr: SocketAddr, pacer: Option<(Arc<Pacer>, f64)>) -> Stats {
    let mut stats = Stats::default();
    let mut link = Link::open(addr, shared.timeout, shared.start, &mut stats).await;
    tokio::time::sleep_until(shared.start.into()).await;
    loop {
        let (k, intended) = match &pacer {
            None => {
                if Instant::now() >= shared.end {
                    break;
                }
                let k = shared.tickets.fetch_add(1, Ordering::Relaxed);
                if k >= shared.max_requests {
                    break;
                }
                (k, None)
            }
            Some((pacer, rate)) => {
                let Some(k) = pacer.next(&shared.tickets, shared.last_send).await else { break };
                (k, Some(shared.start + Duration::from_secs_f64(k as f64 / rate)))
            }
        };
        let request = &shared.requests[(k as usize) % shared.requests.len()];
        let timeout = shared.timeout;
        let Some((sent, outcome)) = link.exchange(request, timeout, &mut stats).await else {
            // Could not connect: back off briefly, then take the next ticket.
            tokio::time::sleep(RECONNECT_BACKOFF).await;
            continue;
        };
        let done = Instant::now();
        if let Some(intended) = intended {
            stats.send_lag.saturating_record(sent.saturating_duration_since(intended).as_micros() as u64);
        }
        match outcome {
            Ok(r) => {
                stats.responses += 1;
                stats.ended(intended.unwrap_or(sent), sent, done);
                let at = shared.micros(done);
                if (200..300).contains(&r.status) {
                    match stats::record_check(&mut stats, &r.body, shared.batch) {
                        Some(seq) => {
                            stats.classify(intended.unwrap_or(sent), done);
                            stats.ok += 1;
                            stats.window(at);
                            stats.seq_seen(at, seq);
                        }
                        None => {
                            stats.errors.non_json += 1;
                            stats.errors.sample(at, "non_json", Some(r.status), &String::from_utf8_lossy(&r.body));
                        }
                    }
                } else {
                    stats.errors.status(at, r.status, &r.body);
                }
            }
            Err(why) => link.no_answer(&mut stats, why, intended.unwrap_or(sent), sent, timeout),
        }
    }
    stats
}

/// One admin connection's loop of writes (its own stream of events, see
/// `writes`), paced at the write rate.
async fn write_task(
    shared: Arc<Shared>,
    addr: SocketAddr,
    token: String,
    (writes, stream): (Arc<Writes>, u64),
    pacer: Arc<Pacer>,
    rate: f64,
    tickets: Arc<AtomicU64>,
) -> Stats {
    let mut stats = Stats::default();
    let mut link = Link::open(addr, shared.timeout, shared.start, &mut stats).await;
    let host = addr.to_string();
    let auth = format!("Bearer {token}");
    tokio::time::sleep_until(shared.start.into()).await;
    let mut next = 0u64;
    while let Some(k) = pacer.next(&tickets, shared.last_send).await {
        let intended = shared.start + Duration::from_secs_f64(k as f64 / rate);
        let body = writes.event(stream, next);
        next += 1;
        let request = build_request("POST", "/v1/events", &host, &[("Authorization", &auth)], body.as_bytes());
        let timeout = shared.timeout;
        let Some((sent, outcome)) = link.exchange(&request, timeout, &mut stats).await else {
            tokio::time::sleep(RECONNECT_BACKOFF).await;
            continue;
        };
        let done = Instant::now();
        stats.send_lag.saturating_record(sent.saturating_duration_since(intended).as_micros() as u64);
        match outcome {
            Ok(r) => {
                stats.ended(intended, sent, done);
                writes::record_answer(&mut stats, &r, shared.micros(done));
            }
            Err(why) => link.no_answer(&mut stats, why, intended, sent, timeout),
        }
    }
    stats
}

/// Sends one request before the run, so a wrong address fails fast and clearly.
async fn preflight(config: &RunConfig, request: &[u8]) -> Result<(), String> {
    let mut conn = tokio::time::timeout(Duration::from_secs(5), Connection::connect(config.target))
        .await
        .map_err(|_| format!("connecting to {} timed out", config.target))?
        .map_err(|e| format!("nothing answers on {}: {e}", config.target))?;
    let r = tokio::time::timeout(Duration::from_secs(30), conn.exchange(request))
        .await
        .map_err(|_| format!("{} accepted a connection but did not answer a check within 30 s", config.target))?
        .map_err(|e| format!("{} did not answer a check: {e}", config.target))?;
    if !(200..300).contains(&r.status) {
        return Err(format!(
            "{} answered a check with status {}: {}",
            config.target,
            r.status,
            String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
        ));
    }
    if let Some(admin) = config.admin.filter(|_| config.write_rate > 0.0) {
        Connection::connect(admin).await.map_err(|e| format!("nothing answers on the admin address {admin}: {e}"))?;
    }
    Ok(())
}

/// The generator's runtime: `threads` workers.
pub fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

pub fn run(config: RunConfig) -> Result<Report, String> {
    let started_unix_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    eprintln!(
        "loadtest: building the request pool ({} lines from {} practitioners, seed {})",
        config.pool_lines, config.practitioners, config.seed
    );
    let mix = Mix::new(config.practitioners, config.seed, config.pool_lines)?;
    let bodies = mix.lines.len().checked_div(config.batch_size).map_or(mix.lines.len(), |n| n.max(1));
    let path = if config.batch_size == 0 { "/v1/check" } else { "/v1/check/batch" };
    let host = config.target.to_string();
    let requests: Vec<Vec<u8>> = (0..bodies)
        .map(|k| build_request("POST", path, &host, &[], mix.body(k, config.batch_size).as_bytes()))
        .collect();
    let mix_report = MixReport {
        pool_lines: mix.lines.len(),
        distinct_bodies: requests.len(),
        good: mix.count(Kind::Good),
        unknown: mix.count(Kind::Unknown),
        suspended: mix.count(Kind::Suspended),
        terminated: mix.count(Kind::Terminated),
        emergency: mix.emergencies(),
        sanctioned_practitioners: mix.sanctioned_found,
        build_s: (mix.seconds * 1000.0).round() / 1000.0,
    };
    eprintln!(
        "loadtest: pool ready in {:.1} s: {} good, {} unknown, {} suspended, {} terminated, {} emergency; {} distinct bodies",
        mix.seconds,
        mix_report.good,
        mix_report.unknown,
        mix_report.suspended,
        mix_report.terminated,
        mix_report.emergency,
        requests.len()
    );
    let writes = Arc::new(Writes::new(&mix, config.seed, Writes::nonce(started_unix_s)));
    drop(mix);
    if config.write_rate > 0.0 && writes.is_empty() {
        return Err("the request pool has no practitioner to write violations for".into());
    }

    runtime(config.threads)?.block_on(async move {
        preflight(&config, &requests[0]).await?;
        // Connections are opened before the start, so the clock starts on requests.
        let start = Instant::now() + Duration::from_millis(300);
        let end = start + config.duration;
        let last_send = end + BACKLOG_GRACE;
        let open_total = match config.mode {
            Mode::Open => ((config.duration.as_secs_f64() * config.rate).ceil() as u64).min(config.max_requests),
            Mode::Closed => config.max_requests,
        };
        let shared = Arc::new(Shared {
            start,
            end,
            last_send,
            timeout: config.timeout,
            requests,
            batch: config.batch_size > 0,
            tickets: AtomicU64::new(0),
            max_requests: config.max_requests,
        });
        let pacer = (config.mode == Mode::Open)
            .then(|| (Pacer::spawn(start, end, config.rate, open_total, config.connections), config.rate));
        let counters_before = scrape(config.target).await;
        let cpu = CpuMark::now(config.server_pid);
        let checks: Vec<_> = (0..config.connections)
            .map(|_| tokio::spawn(check_task(shared.clone(), config.target, pacer.clone())))
            .collect();
        let mut writers = Vec::new();
        let write_pacer = if config.write_rate > 0.0 {
            let total = ((config.duration.as_secs_f64() * config.write_rate).ceil() as u64).min(config.max_requests);
            let pacer = Pacer::spawn(start, end, config.write_rate, total, config.write_connections);
            let tickets = Arc::new(AtomicU64::new(0));
            let (admin, token) = (config.admin.expect("validated"), config.admin_token.clone().expect("validated"));
            for stream in 0..config.write_connections as u64 {
                writers.push(tokio::spawn(write_task(
                    shared.clone(),
                    admin,
                    token.clone(),
                    (writes.clone(), stream),
                    pacer.clone(),
                    config.write_rate,
                    tickets.clone(),
                )));
            }
            Some((pacer, tickets))
        } else {
            None
        };
        let mut total = Stats::default();
        for task in checks {
            total.merge(&task.await.map_err(|e| format!("a connection task failed: {e}"))?);
        }
        let mut written = Stats::default();
        for task in writers {
            written.merge(&task.await.map_err(|e| format!("a writer task failed: {e}"))?);
        }
        let elapsed = Instant::now().saturating_duration_since(start).as_secs_f64();
        let cpu = cpu.since();
        let server_counters = counter_deltas(&counters_before, &scrape(config.target).await);
        let not_sent = |pacer: &Pacer, tickets: &AtomicU64| {
            let released = pacer.released.load(Ordering::Acquire);
            released.saturating_sub(tickets.load(Ordering::Relaxed).min(released))
        };
        if let Some(path) = &config.dump_writes {
            std::fs::write(path, stats::freshness_csv(&total.seq_marks, &written.acks))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        let writes_report = write_pacer.map(|(pacer, tickets)| WritesReport {
            rate: config.write_rate,
            connections: config.write_connections,
            sent: written.sent,
            acked: written.ok,
            acked_per_s: round3(written.ok as f64 / elapsed),
            refused: written.refused.clone(),
            errors: written.errors.clone(),
            ack_latency_us: stats::Percentiles::of(&written.latency),
            ack_latency_from_send_us: stats::Percentiles::of(&written.service),
            send_lag_us: stats::Percentiles::of(&written.send_lag),
            freshness: stats::freshness(&total.seq_marks, &written.acks),
            not_sent: Some(not_sent(&pacer, &tickets)),
        });
        let full_windows = (config.duration.as_micros() as u64 / stats::WINDOW_US) as usize;
        let report = Report {
            label: config.label.clone(),
            started_unix_s,
            config: ConfigReport {
                target: config.target.to_string(),
                admin: config.admin.filter(|_| config.write_rate > 0.0).map(|a| a.to_string()),
                mode: config.mode,
                connections: config.connections,
                rate: (config.mode == Mode::Open).then_some(config.rate),
                duration_s: config.duration.as_secs_f64(),
                max_requests: config.max_requests,
                batch_size: config.batch_size,
                practitioners: config.practitioners,
                seed: config.seed,
                write_rate: config.write_rate,
                timeout_ms: config.timeout.as_millis() as u64,
                generator_threads: config.threads,
            },
            mix: mix_report,
            elapsed_s: round3(elapsed),
            requests: Counts { sent: total.sent, responses: total.responses, ok: total.ok, lines: total.lines },
            throughput: Throughput {
                requests_per_s: round3(total.ok as f64 / elapsed),
                lines_per_s: round3(total.lines as f64 / elapsed),
            },
            latency_us: stats::Percentiles::of(&total.latency),
            latency_from_send_us: pacer.as_ref().map(|_| stats::Percentiles::of(&total.service)),
            send_lag_us: pacer.as_ref().map(|_| stats::Percentiles::of(&total.send_lag)),
            not_sent: pacer.as_ref().map(|(p, _)| not_sent(p, &shared.tickets)),
            latency_by_answer_us: (config.batch_size == 0).then(|| {
                stats::ANSWER_CLASSES
                    .iter()
                    .zip(&total.by_answer)
                    .map(|(class, h)| (class.to_string(), stats::Percentiles::of(h)))
                    .collect()
            }),
            errors_total: total.errors.total(),
            errors: total.errors.clone(),
            verdicts: total.verdicts.clone(),
            reasons: total.reasons.clone(),
            windows: stats::windows(&total.windows, full_windows),
            writes: writes_report,
            cpu_s: cpu,
            server_counters,
            machine: Machine::this(),
        };
        Ok(report)
    })
}

/// The human summary.
pub fn summary(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let c = &r.config;
    let _ = writeln!(
        s,
        "== {}: {:?} loop, {} connections{}, {} s, {} against {} ({} practitioners, seed {})",
        r.label,
        c.mode,
        c.connections,
        c.rate.map_or(String::new(), |r| format!(", {r:.0} req/s due")),
        c.duration_s,
        if c.batch_size == 0 { "single lines".to_owned() } else { format!("batches of {}", c.batch_size) },
        c.target,
        c.practitioners,
        c.seed
    );
    let _ = writeln!(
        s,
        "   requests: {} sent, {} answered, {} ok in {:.2} s: {:.0} req/s, {:.0} lines/s",
        r.requests.sent,
        r.requests.responses,
        r.requests.ok,
        r.elapsed_s,
        r.throughput.requests_per_s,
        r.throughput.lines_per_s
    );
    let l = &r.latency_us;
    let _ = writeln!(s, "   latency{}: {}", if c.mode == Mode::Open { " (from intended send)" } else { "" }, l.text());
    if let Some(l) = &r.latency_from_send_us {
        let _ = writeln!(s, "   latency from actual send: {}", l.text());
    }
    if let Some(by) = &r.latency_by_answer_us {
        for (class, l) in by {
            let _ = writeln!(s, "   latency of lines answered {class} ({} lines): {}", l.count, l.text());
        }
    }
    if let Some(lag) = &r.send_lag_us {
        let _ = writeln!(
            s,
            "   generator send lag: p50 {}  p99 {}  max {}; due but never sent: {}",
            ms(lag.p50),
            ms(lag.p99),
            ms(lag.max),
            r.not_sent.unwrap_or(0)
        );
    }
    let e = &r.errors;
    let _ = writeln!(
        s,
        "   errors: {} (connect {}, timeout {}, io {}, protocol {}, non-JSON {}, status {:?} {:?})",
        r.errors_total, e.connect, e.timeout, e.io, e.protocol, e.non_json, e.http_status, e.error_codes
    );
    s.push_str(&stats::samples_text(e));
    let _ = writeln!(s, "   verdicts: {:?}; reasons: {:?}", r.verdicts, r.reasons);
    let w = &r.windows;
    let _ = writeln!(
        s,
        "   per 100 ms: median {}, min {} (at {:.1} s), max {}; dip (min/median) {:.2}",
        w.median, w.min, w.min_at_s, w.max, w.dip_ratio
    );
    if let Some(wr) = &r.writes {
        let f = &wr.freshness;
        let _ = writeln!(
            s,
            "   writes to {}: {} sent at {:.0}/s due ({} due but never sent), {} acked ({:.0}/s), refused {:?}, \
             errors {}; ack latency p50 {} p99 {} max {} \
             (from the send: p50 {} p99 {} max {}; send lag p99 {})",
            c.admin.as_deref().unwrap_or("?"),
            wr.sent,
            wr.rate,
            wr.not_sent.unwrap_or(0),
            wr.acked,
            wr.acked_per_s,
            wr.refused,
            wr.errors.total(),
            ms(wr.ack_latency_us.p50),
            ms(wr.ack_latency_us.p99),
            ms(wr.ack_latency_us.max),
            ms(wr.ack_latency_from_send_us.p50),
            ms(wr.ack_latency_from_send_us.p99),
            ms(wr.ack_latency_from_send_us.max),
            ms(wr.send_lag_us.p99)
        );
        s.push_str(&stats::samples_text(&wr.errors));
        let _ = writeln!(
            s,
            "   freshness (ack -> first check answer at that seq): p50 {}  p99 {}  max {}; {} visible before the ack, \
             {} never seen, {} acked after the reads ended",
            ms(f.latency_us.p50),
            ms(f.latency_us.p99),
            ms(f.latency_us.max),
            f.visible_before_ack,
            f.never_seen,
            f.acked_after_reads
        );
    }
    let pick = |k: &str| r.server_counters.get(k).copied().unwrap_or(0.0);
    if !r.server_counters.is_empty() {
        let _ = writeln!(
            s,
            "   gate counters during the run: decision records written {} (in {} fsynced groups), rejects unrecorded {}, \
             exemptions refused {}, index swaps {}, stale_index {}, connections refused {}",
            pick("claimgate_audit_written_total"),
            pick("claimgate_audit_groups_total"),
            pick("claimgate_audit_rejects_unrecorded_total"),
            pick("claimgate_audit_exemptions_refused_total"),
            pick("claimgate_index_swaps_total"),
            pick("claimgate_stale_index_total"),
            pick("claimgate_connections_refused_total")
        );
    }
    s.push_str(&r.cpu_s.line(r.elapsed_s, &r.machine));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 7: an open-loop backlog must not be sent after `last_send` (those
    /// requests used to go out with the time left as their timeout and be
    /// counted as timeouts), even though its permits are ready.
    #[tokio::test]
    async fn a_backlog_is_not_sent_after_the_last_send_time() {
        let start = Instant::now();
        let end = start + Duration::from_millis(20);
        let last_send = end + Duration::from_millis(30);
        let pacer = Pacer::spawn(start, end, 100_000.0, 2_000, 1);
        let tickets = AtomicU64::new(0);
        assert_eq!(pacer.next(&tickets, last_send).await, Some(0), "due tickets are handed out before last_send");
        tokio::time::sleep_until((last_send + Duration::from_millis(5)).into()).await;
        assert!(pacer.permits.available_permits() > 0, "a backlog is waiting");
        assert_eq!(pacer.next(&tickets, last_send).await, None);
        assert_eq!(tickets.load(Ordering::Relaxed), 1, "no ticket taken after last_send: they count as never sent");
    }
}
