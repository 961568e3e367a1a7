//! `loadtest run`: connection tasks (one per keep-alive connection), paced
//! by a pacer thread in open loop, optional admin writers, then the merged
//! report.
//!
//! Every run stops by itself: no request is sent after `--duration`, none
//! beyond `--max-requests`, each waits at most `--timeout-ms`, and whatever
//! is still running at duration + timeout + 1 s is abandoned.

use crate::client::{build_request, ClientError, Connection};
use crate::mix::{Kind, Mix, Writes};
use crate::stats::{self, Stats};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

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

#[derive(Debug, Serialize)]
pub struct CpuReport {
    pub generator: Option<f64>,
    pub server: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
}

/// Shared by the tasks of one run.
struct Shared {
    start: Instant,
    /// No request is sent from here on.
    end: Instant,
    /// Tasks still running here give up.
    hard_end: Instant,
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

    /// The next ticket, waiting for it to be due; `None` when the run is over.
    async fn next(&self, tickets: &AtomicU64, hard_end: Instant) -> Option<u64> {
        let permit = tokio::select! {
            p = self.permits.acquire() => p.ok()?,
            _ = tokio::time::sleep_until(hard_end.into()) => return None,
        };
        permit.forget();
        let k = tickets.fetch_add(1, Ordering::Relaxed);
        if self.done.load(Ordering::Acquire) && k >= self.released.load(Ordering::Acquire) {
            // A poison permit: wake the next waiter too.
            self.permits.add_permits(1);
            return None;
        }
        Some(k)
    }
}

enum Outcome {
    Answer(crate::client::Response),
    Timeout,
    Failed(ClientError),
}

/// One exchange with a timeout, (re)connecting as needed. `None`: could not connect.
async fn exchange(
    conn: &mut Option<Connection>,
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
    stats: &mut Stats,
) -> Option<(Instant, Outcome)> {
    if conn.is_none() {
        match tokio::time::timeout(timeout, Connection::connect(addr)).await {
            Ok(Ok(c)) => *conn = Some(c),
            _ => {
                stats.errors.connect += 1;
                return None;
            }
        }
    }
    let c = conn.as_mut().expect("connected above");
    let sent = Instant::now();
    stats.sent += 1;
    let outcome = match tokio::time::timeout(timeout, c.exchange(request)).await {
        Ok(Ok(r)) => Outcome::Answer(r),
        Ok(Err(e)) => Outcome::Failed(e),
        Err(_) => Outcome::Timeout,
    };
    if !matches!(&outcome, Outcome::Answer(r) if !r.close) {
        *conn = None;
    }
    Some((sent, outcome))
}

/// One connection's loop of checks.
async fn check_task(shared: Arc<Shared>, addr: SocketAddr, pacer: Option<(Arc<Pacer>, f64)>) -> Stats {
    let mut stats = Stats::default();
    let mut conn = tokio::time::timeout(shared.timeout, Connection::connect(addr)).await.ok().and_then(Result::ok);
    if conn.is_none() {
        stats.errors.connect += 1;
    }
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
                let Some(k) = pacer.next(&shared.tickets, shared.hard_end).await else { break };
                (k, Some(shared.start + Duration::from_secs_f64(k as f64 / rate)))
            }
        };
        let request = &shared.requests[(k as usize) % shared.requests.len()];
        let remaining = shared.hard_end.saturating_duration_since(Instant::now());
        let timeout = shared.timeout.min(remaining);
        let Some((sent, outcome)) = exchange(&mut conn, addr, request, timeout, &mut stats).await else {
            // Could not connect: back off briefly, then take the next ticket.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let done = Instant::now();
        if let Some(intended) = intended {
            stats.send_lag.saturating_record(sent.saturating_duration_since(intended).as_micros() as u64);
        }
        match outcome {
            Outcome::Answer(r) => {
                stats.responses += 1;
                stats.ended(intended.unwrap_or(sent), sent, done);
                if (200..300).contains(&r.status) {
                    match stats::record_check(&mut stats, &r.body, shared.batch) {
                        Some(seq) => {
                            stats.ok += 1;
                            let at = shared.micros(done);
                            stats.window(at);
                            stats.seq_seen(at, seq);
                        }
                        None => stats.errors.non_json += 1,
                    }
                } else {
                    stats.errors.status(r.status, &r.body);
                }
            }
            Outcome::Timeout => {
                stats.errors.timeout += 1;
                stats.ended(intended.unwrap_or(sent), sent, done);
            }
            Outcome::Failed(ClientError::Io(_)) => stats.errors.io += 1,
            Outcome::Failed(ClientError::Protocol(_)) => stats.errors.protocol += 1,
        }
    }
    stats
}

/// One admin connection's loop of writes, paced at the write rate.
async fn write_task(
    shared: Arc<Shared>,
    addr: SocketAddr,
    token: String,
    writes: Arc<Writes>,
    pacer: Arc<Pacer>,
    rate: f64,
    tickets: Arc<AtomicU64>,
) -> Stats {
    let mut stats = Stats::default();
    let mut conn = tokio::time::timeout(shared.timeout, Connection::connect(addr)).await.ok().and_then(Result::ok);
    let host = addr.to_string();
    let auth = format!("Bearer {token}");
    tokio::time::sleep_until(shared.start.into()).await;
    while let Some(k) = pacer.next(&tickets, shared.hard_end).await {
        let intended = shared.start + Duration::from_secs_f64(k as f64 / rate);
        let body = writes.event(k);
        let request = build_request("POST", "/v1/events", &host, &[("Authorization", &auth)], body.as_bytes());
        let remaining = shared.hard_end.saturating_duration_since(Instant::now());
        let Some((sent, outcome)) =
            exchange(&mut conn, addr, &request, shared.timeout.min(remaining), &mut stats).await
        else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let done = Instant::now();
        stats.send_lag.saturating_record(sent.saturating_duration_since(intended).as_micros() as u64);
        match outcome {
            Outcome::Answer(r) => {
                stats.responses += 1;
                stats.ended(intended, sent, done);
                if (200..300).contains(&r.status) {
                    match stats::write_seq(&r.body) {
                        Some(seq) => {
                            stats.ok += 1;
                            stats.acks.push((shared.micros(done), seq));
                        }
                        None => stats.errors.non_json += 1,
                    }
                } else {
                    #[derive(serde::Deserialize)]
                    struct Refusal {
                        error: String,
                    }
                    if let Ok(refusal) = serde_json::from_slice::<Refusal>(&r.body) {
                        stats::bump(&mut stats.refused, &refusal.error);
                    }
                    stats.errors.status(r.status, &r.body);
                }
            }
            Outcome::Timeout => {
                stats.errors.timeout += 1;
                stats.ended(intended, sent, done);
            }
            Outcome::Failed(ClientError::Io(_)) => stats.errors.io += 1,
            Outcome::Failed(ClientError::Protocol(_)) => stats.errors.protocol += 1,
        }
    }
    stats
}

/// CPU seconds (user + system) a process has used, from /proc (Linux; ticks of 1/100 s).
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces), which ends at the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name and state.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The server's `*_total` counters from GET /metrics (Prometheus text); empty if it has none.
async fn scrape(addr: SocketAddr) -> std::collections::BTreeMap<String, f64> {
    let request = build_request("GET", "/metrics", &addr.to_string(), &[], b"");
    let answer = async {
        let mut conn = Connection::connect(addr).await.ok()?;
        conn.exchange(&request).await.ok().filter(|r| r.status == 200)
    };
    let Ok(Some(r)) = tokio::time::timeout(Duration::from_secs(5), answer).await else { return Default::default() };
    parse_counters(&String::from_utf8_lossy(&r.body))
}

fn parse_counters(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            let base = name.split('{').next()?;
            base.ends_with("_total").then(|| Some((name.to_owned(), value.trim().parse().ok()?)))?
        })
        .collect()
}

/// Counters that changed between two scrapes, by how much.
fn counter_deltas(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
) -> std::collections::BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d != 0.0).then(|| (k.clone(), d))
        })
        .collect()
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
    let nonce = started_unix_s * 1000 + u64::from(std::process::id() % 1000);
    let writes = Arc::new(Writes::new(&mix, config.seed, nonce));
    drop(mix);
    if config.write_rate > 0.0 && writes.is_empty() {
        return Err("the request pool has no practitioner to write violations for".into());
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        preflight(&config, &requests[0]).await?;
        // Connections are opened before the start, so the clock starts on requests.
        let start = Instant::now() + Duration::from_millis(300);
        let end = start + config.duration;
        let hard_end = end + config.timeout + Duration::from_secs(1);
        let open_total = match config.mode {
            Mode::Open => ((config.duration.as_secs_f64() * config.rate).ceil() as u64).min(config.max_requests),
            Mode::Closed => config.max_requests,
        };
        let shared = Arc::new(Shared {
            start,
            end,
            hard_end,
            timeout: config.timeout,
            requests,
            batch: config.batch_size > 0,
            tickets: AtomicU64::new(0),
            max_requests: config.max_requests,
        });
        let pacer = (config.mode == Mode::Open)
            .then(|| (Pacer::spawn(start, end, config.rate, open_total, config.connections), config.rate));
        let counters_before = scrape(config.target).await;
        let (cpu_self, cpu_server) = (cpu_seconds(None), cpu_seconds(config.server_pid));
        let checks: Vec<_> = (0..config.connections)
            .map(|_| tokio::spawn(check_task(shared.clone(), config.target, pacer.clone())))
            .collect();
        let mut writers = Vec::new();
        let write_pacer = if config.write_rate > 0.0 {
            let total = ((config.duration.as_secs_f64() * config.write_rate).ceil() as u64).min(config.max_requests);
            let pacer = Pacer::spawn(start, end, config.write_rate, total, config.write_connections);
            let tickets = Arc::new(AtomicU64::new(0));
            let (admin, token) = (config.admin.expect("validated"), config.admin_token.clone().expect("validated"));
            for _ in 0..config.write_connections {
                writers.push(tokio::spawn(write_task(
                    shared.clone(),
                    admin,
                    token.clone(),
                    writes.clone(),
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
        let cpu = CpuReport {
            generator: cpu_seconds(None).zip(cpu_self).map(|(b, a)| round3(b - a)),
            server: cpu_seconds(config.server_pid).zip(cpu_server).map(|(b, a)| round3(b - a)),
        };
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
            errors_total: total.errors.total(),
            errors: total.errors.clone(),
            verdicts: total.verdicts.clone(),
            reasons: total.reasons.clone(),
            windows: stats::windows(&total.windows, full_windows),
            writes: writes_report,
            cpu_s: cpu,
            server_counters,
            machine: Machine { cores: std::thread::available_parallelism().map_or(0, |n| n.get()) },
        };
        Ok(report)
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn ms(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.0} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} ms", us as f64 / 1000.0)
    }
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
    let _ = writeln!(
        s,
        "   latency{}: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        if c.mode == Mode::Open { " (from intended send)" } else { "" },
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.p999),
        ms(l.max)
    );
    if let Some(l) = &r.latency_from_send_us {
        let _ = writeln!(
            s,
            "   latency from actual send: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max)
        );
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
            "   writes: {} sent at {:.0}/s due, {} acked ({:.0}/s), refused {:?}, errors {}; ack latency p50 {} p99 {} max {} \
             (from the send: p50 {} p99 {} max {}; send lag p99 {})",
            wr.sent,
            wr.rate,
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
            "   gate counters during the run: audit written {}, audit dropped {}, index swaps {}, stale_index {}, \
             connections refused {}",
            pick("claimgate_audit_written_total"),
            pick("claimgate_audit_dropped_total"),
            pick("claimgate_index_swaps_total"),
            pick("claimgate_stale_index_total"),
            pick("claimgate_connections_refused_total")
        );
    }
    let _ = writeln!(
        s,
        "   cpu: generator {} s, server {} s, over {:.1} s on {} cores",
        r.cpu_s.generator.map_or("?".into(), |v| format!("{v:.1}")),
        r.cpu_s.server.map_or("-".into(), |v| format!("{v:.1}")),
        r.elapsed_s,
        r.machine.cores
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_prometheus_text() {
        let before = parse_counters(
            "# HELP x\nclaimgate_audit_dropped_total 5\nclaimgate_index_seq 9\nclaimgate_decisions_total{verdict=\"settle\",reason=\"ok\"} 10\n",
        );
        assert_eq!(before.len(), 2);
        let after = parse_counters(
            "claimgate_audit_dropped_total 7\nclaimgate_decisions_total{verdict=\"settle\",reason=\"ok\"} 10\nnew_total 1\n",
        );
        let d = counter_deltas(&before, &after);
        assert_eq!(d.get("claimgate_audit_dropped_total"), Some(&2.0));
        assert_eq!(d.get("new_total"), Some(&1.0));
        assert_eq!(d.len(), 2);
        assert!(parse_counters(r#"{"seq":0}"#).is_empty());
    }
}
