//! `loadtest`: an HTTP load generator for the claimgate gate, and a baseline
//! server on the same stack that does no work.
//!
//! It talks only to loopback addresses (127.0.0.0/8, ::1) and refuses any
//! other target. Every run is bounded in time (`--duration`) and in requests
//! (`--max-requests`) and stops by itself.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod append;
mod baseline;
mod client;
mod exchange;
mod feed;
mod markdown;
mod mix;
mod probe;
mod run;
mod stats;
mod writes;

use clap::{Parser, Subcommand};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Longest run accepted, in seconds.
const MAX_DURATION_S: f64 = 3_600.0;
/// Most requests one run may send.
const MAX_REQUESTS: u64 = 1_000_000_000;
/// Most connections one run may open.
const MAX_CONNECTIONS: usize = 4_096;
/// Batch sizes accepted besides 0 (single lines).
const BATCH_SIZES: std::ops::RangeInclusive<usize> = 16..=1_000;
/// Events per `POST /v1/events` accepted (the gate takes up to 10,000).
const EVENTS_PER_REQUEST: std::ops::RangeInclusive<usize> = 1..=10_000;
/// Longest wait for one answer accepted, in milliseconds.
const MAX_TIMEOUT_MS: u64 = 120_000;
/// Most generator runtime threads.
const MAX_THREADS: usize = 64;
/// Most claim lines in the pre-generated pool.
const MAX_POOL_LINES: usize = 4_000_000;

#[derive(Parser)]
#[command(name = "loadtest", version, about = "HTTP load generator for the claimgate gate (loopback only)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a fixed small JSON answer to every request on the gate's stack
    /// (tokio, hyper http1, keep-alive), doing no work; prints
    /// {"listening":"ADDR"} first, stops on SIGTERM or Ctrl-C.
    Baseline {
        /// Loopback address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Drive a check listener (and optionally the admin listener) for a bounded time.
    Run(Box<RunArgs>),
    /// Append rate: closed-loop admin writes (POST /v1/events) for a bounded time.
    Append(Box<AppendArgs>),
    /// Change-feed read rate: one consumer reading GET /v1/changes pages from
    /// the start to the feed's end (or --max-changes, or --duration).
    Feed(Box<FeedArgs>),
    /// Print a Markdown table (and notes) of JSON reports, in the order given.
    Markdown {
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
    /// Print one value of a JSON report, by JSON pointer (e.g. /throughput/requests_per_s).
    Get { report: PathBuf, pointer: String },
}

/// Flags `run` and `append` share.
#[derive(clap::Args)]
struct CommonArgs {
    /// Seconds during which requests are sent.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Most requests sent (the run stops at whichever limit comes first).
    #[arg(long, default_value_t = 10_000_000)]
    max_requests: u64,
    /// Practitioners of the population (must match the gate's demo).
    #[arg(long, default_value_t = claimgate::population::DEMO_PRACTITIONERS)]
    practitioners: u64,
    /// Seed of the population (must match the gate's demo).
    #[arg(long, default_value_t = claimgate::population::DEMO_SEED)]
    seed: u64,
    /// Claim lines drawn from the population before the run (checks; the practitioners writes name).
    #[arg(long, default_value_t = 65_536)]
    pool_lines: usize,
    /// Generator runtime threads (the generator shares the machine with the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The server's process id, to report the CPU time it used during the run.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The check listener (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    target: String,
    /// The admin listener, for writes during the run (loopback only).
    #[arg(long, default_value = "127.0.0.1:8081")]
    admin: String,
    /// Admin bearer token (else CLAIMGATE_ADMIN_TOKEN); needed with --write-rate.
    #[arg(long)]
    admin_token: Option<String>,
    /// closed: each connection sends when its previous answer arrives;
    /// open: requests are due at --rate, latency counted from the due time.
    #[arg(long, value_enum, default_value = "closed")]
    mode: run::Mode,
    /// Keep-alive connections (one task each).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Open loop: requests per second.
    #[arg(long)]
    rate: Option<f64>,
    /// 0: single lines to POST /v1/check; 16-1000: that many lines per POST /v1/check/batch.
    #[arg(long, default_value_t = 0)]
    batch_size: usize,
    /// Admin events per second during the run (0: none).
    #[arg(long, default_value_t = 0.0)]
    write_rate: f64,
    /// Admin connections for the writes.
    #[arg(long, default_value_t = 8)]
    write_connections: usize,
    /// Longest wait for one answer, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u64,
    /// Name of the scenario in the report.
    #[arg(long, default_value = "run")]
    label: String,
    /// With --write-rate: write each acknowledged write (ack time and seq, and
    /// when a check answer first reflected it; µs since the start) as CSV here.
    #[arg(long, value_name = "PATH")]
    dump_writes: Option<PathBuf>,
}

#[derive(clap::Args)]
struct AppendArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The admin listener (loopback only).
    #[arg(long, default_value = "127.0.0.1:8081")]
    admin: String,
    /// Admin bearer token (else CLAIMGATE_ADMIN_TOKEN).
    #[arg(long)]
    admin_token: Option<String>,
    /// Keep-alive admin connections, each sending when its previous answer arrives.
    #[arg(long, default_value_t = 1)]
    writers: usize,
    /// 1: one event per request; more: a JSON array of that many (at most 10,000).
    #[arg(long, default_value_t = 1)]
    events_per_request: usize,
    /// Longest wait for one answer, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Name of the scenario in the report.
    #[arg(long, default_value = "append")]
    label: String,
}

#[derive(clap::Args)]
struct FeedArgs {
    /// A listener of the gate (check or admin; loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// A token that may read (the admin or read-only token; else CLAIMGATE_READ_TOKEN, then CLAIMGATE_ADMIN_TOKEN).
    #[arg(long)]
    token: Option<String>,
    /// Changes per page (the gate serves at most 10,000).
    #[arg(long, default_value_t = 10_000)]
    limit: usize,
    /// Stop after this many changes.
    #[arg(long, default_value_t = 100_000_000)]
    max_changes: u64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

/// A loopback socket address, or why not. `localhost:PORT` means 127.0.0.1:PORT.
fn loopback(text: &str, flag: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = match text.strip_prefix("localhost:") {
        Some(port) => SocketAddr::from((
            Ipv4Addr::LOCALHOST,
            port.parse::<u16>().map_err(|_| format!("{flag} {text}: bad port"))?,
        )),
        None => text.parse().map_err(|_| format!("{flag} {text}: expected IP:PORT, e.g. 127.0.0.1:8080"))?,
    };
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{flag} {addr} is not a loopback address: loadtest only sends to this machine (127.0.0.0/8 or [::1])"
        ));
    }
    Ok(addr)
}

/// A loopback socket address with a port (not 0), or why not.
fn loopback_port(text: &str, flag: &str) -> Result<SocketAddr, String> {
    let addr = loopback(text, flag)?;
    if addr.port() == 0 {
        return Err(format!("{flag} needs a port"));
    }
    Ok(addr)
}

/// The admin token from the flag, else CLAIMGATE_ADMIN_TOKEN, or why not.
fn admin_token(flag: Option<String>, needed_by: &str) -> Result<String, String> {
    flag.or_else(|| std::env::var("CLAIMGATE_ADMIN_TOKEN").ok())
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("{needed_by} needs the admin token: --admin-token or CLAIMGATE_ADMIN_TOKEN"))
}

/// The checks of the flags `run` and `append` share, and of the timeout.
fn check_common(c: &CommonArgs, timeout_ms: u64) -> Result<(), String> {
    if !(c.duration > 0.0 && c.duration <= MAX_DURATION_S) {
        return Err(format!("--duration must be more than 0 and at most {MAX_DURATION_S} seconds"));
    }
    if !(1..=MAX_REQUESTS).contains(&c.max_requests) {
        return Err(format!("--max-requests must be 1 to {MAX_REQUESTS}"));
    }
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(format!("--timeout-ms must be 1 to {MAX_TIMEOUT_MS}"));
    }
    if !(1..=MAX_THREADS).contains(&c.threads) {
        return Err(format!("--threads must be 1 to {MAX_THREADS}"));
    }
    if !(1..=MAX_POOL_LINES).contains(&c.pool_lines) {
        return Err(format!("--pool-lines must be 1 to {MAX_POOL_LINES}"));
    }
    Ok(())
}

fn append_config(a: AppendArgs) -> Result<(append::AppendConfig, Option<PathBuf>), String> {
    let admin = loopback_port(&a.admin, "--admin")?;
    check_common(&a.common, a.timeout_ms)?;
    if !(1..=writes::MAX_STREAMS as usize).contains(&a.writers) {
        return Err(format!("--writers must be 1 to {}", writes::MAX_STREAMS));
    }
    if !EVENTS_PER_REQUEST.contains(&a.events_per_request) {
        return Err(format!(
            "--events-per-request must be {} to {} (the gate's limit per request)",
            EVENTS_PER_REQUEST.start(),
            EVENTS_PER_REQUEST.end()
        ));
    }
    let token = admin_token(a.admin_token, "loadtest append")?;
    Ok((
        append::AppendConfig {
            label: a.label,
            admin,
            token,
            writers: a.writers,
            events_per_request: a.events_per_request,
            duration: Duration::from_secs_f64(a.common.duration),
            max_requests: a.common.max_requests,
            timeout: Duration::from_millis(a.timeout_ms),
            practitioners: a.common.practitioners,
            seed: a.common.seed,
            pool_lines: a.common.pool_lines,
            threads: a.common.threads,
            server_pid: a.common.server_pid,
        },
        a.common.json,
    ))
}

/// Prints a report's summary and, if asked, writes it as JSON.
fn report<R: serde::Serialize>(report: &R, summary: String, json: Option<PathBuf>) -> Result<(), (String, u8)> {
    print!("{summary}");
    if let Some(path) = json {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| (format!("cannot create {}: {e}", dir.display()), 1))?;
        }
        let text = serde_json::to_string_pretty(report).expect("the report serializes");
        std::fs::write(&path, text + "\n").map_err(|e| (format!("cannot write {}: {e}", path.display()), 1))?;
    }
    Ok(())
}

fn feed_config(a: FeedArgs) -> Result<(feed::FeedConfig, Option<PathBuf>), String> {
    let token = a
        .token
        .or_else(|| std::env::var("CLAIMGATE_READ_TOKEN").ok())
        .or_else(|| std::env::var("CLAIMGATE_ADMIN_TOKEN").ok())
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or("loadtest feed needs a token: --token, CLAIMGATE_READ_TOKEN or CLAIMGATE_ADMIN_TOKEN")?;
    if !(1..=10_000).contains(&a.limit) {
        return Err("--limit must be 1 to 10,000 (the gate's page)".into());
    }
    if !(a.duration > 0.0 && a.duration <= MAX_DURATION_S) {
        return Err(format!("--duration must be more than 0 and at most {MAX_DURATION_S} seconds"));
    }
    let config = feed::FeedConfig {
        addr: loopback(&a.addr, "--addr")?,
        token,
        limit: a.limit,
        max_changes: a.max_changes.max(1),
        duration: Duration::from_secs_f64(a.duration),
        timeout: Duration::from_secs(30),
    };
    Ok((config, a.json))
}

fn config(a: RunArgs) -> Result<(run::RunConfig, Option<PathBuf>), String> {
    let target = loopback_port(&a.target, "--target")?;
    check_common(&a.common, a.timeout_ms)?;
    if !(1..=MAX_CONNECTIONS).contains(&a.connections) {
        return Err(format!("--connections must be 1 to {MAX_CONNECTIONS}"));
    }
    if a.batch_size != 0 && !BATCH_SIZES.contains(&a.batch_size) {
        return Err(format!(
            "--batch-size must be 0 (single lines) or {} to {}",
            BATCH_SIZES.start(),
            BATCH_SIZES.end()
        ));
    }
    let rate = match (a.mode, a.rate) {
        (run::Mode::Open, Some(r)) if r > 0.0 && r <= 1e6 => r,
        (run::Mode::Open, _) => return Err("--mode open needs --rate between 0 and 1,000,000 requests/s".into()),
        (run::Mode::Closed, Some(_)) => return Err("--rate applies to --mode open only".into()),
        (run::Mode::Closed, None) => 0.0,
    };
    if !(0.0..=100_000.0).contains(&a.write_rate) {
        return Err("--write-rate must be 0 to 100,000 events/s".into());
    }
    if !(1..=writes::MAX_STREAMS as usize).contains(&a.write_connections) {
        return Err(format!("--write-connections must be 1 to {}", writes::MAX_STREAMS));
    }
    let (admin, admin_token) = if a.write_rate > 0.0 {
        let admin = loopback(&a.admin, "--admin")?;
        (Some(admin), Some(admin_token(a.admin_token, "--write-rate")?))
    } else {
        (None, None)
    };
    Ok((
        run::RunConfig {
            label: a.label,
            target,
            admin,
            admin_token,
            mode: a.mode,
            connections: a.connections,
            rate,
            duration: Duration::from_secs_f64(a.common.duration),
            max_requests: a.common.max_requests,
            batch_size: a.batch_size,
            practitioners: a.common.practitioners,
            seed: a.common.seed,
            write_rate: a.write_rate,
            write_connections: a.write_connections,
            timeout: Duration::from_millis(a.timeout_ms),
            pool_lines: a.common.pool_lines,
            threads: a.common.threads,
            server_pid: a.common.server_pid,
            dump_writes: a.dump_writes,
        },
        a.common.json,
    ))
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Baseline { listen } => {
            loopback(&listen, "--listen").map_err(|e| (e, 2)).and_then(|addr| baseline::run(addr).map_err(|e| (e, 1)))
        }
        Command::Run(args) => config(*args).map_err(|e| (e, 2)).and_then(|(config, json)| {
            let r = run::run(config).map_err(|e| (e, 1))?;
            report(&r, run::summary(&r), json)
        }),
        Command::Append(args) => append_config(*args).map_err(|e| (e, 2)).and_then(|(config, json)| {
            let r = append::run(config).map_err(|e| (e, 1))?;
            report(&r, append::summary(&r), json)
        }),
        Command::Feed(a) => feed_config(*a).map_err(|e| (e, 2)).and_then(|(config, json)| {
            let r = feed::run(config).map_err(|e| (e, 1))?;
            report(&r, feed::summary(&r), json)
        }),
        Command::Markdown { reports } => markdown::table(&reports).map(|t| print!("{t}")).map_err(|e| (e, 1)),
        Command::Get { report, pointer } => {
            markdown::get(&report, &pointer).map(|v| println!("{v}")).map_err(|e| (e, 1))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((message, code)) => {
            eprintln!("loadtest: {message}");
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert_eq!(loopback("127.0.0.1:8080", "--target").unwrap().port(), 8080);
        assert!(loopback("127.1.2.3:80", "--target").is_ok());
        assert!(loopback("[::1]:80", "--target").is_ok());
        assert_eq!(loopback("localhost:81", "--target").unwrap(), "127.0.0.1:81".parse::<SocketAddr>().unwrap());
        for bad in ["10.0.0.1:80", "192.168.1.1:8080", "8.8.8.8:53", "0.0.0.0:8080", "[::]:80", "example.com:80"] {
            assert!(loopback(bad, "--target").is_err(), "{bad} must be refused");
        }
        let e = loopback("172.16.0.1:8080", "--target").unwrap_err();
        assert!(e.contains("not a loopback address"), "{e}");
    }

    #[test]
    fn flags_are_checked() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["loadtest", "run"];
            args.extend_from_slice(extra);
            let Command::Run(a) = Cli::try_parse_from(args).unwrap().command else { panic!("run") };
            config(*a)
        };
        assert!(parse(&[]).is_ok());
        assert!(parse(&["--batch-size", "8"]).is_err());
        assert!(parse(&["--batch-size", "100"]).is_ok());
        assert!(parse(&["--mode", "open"]).is_err());
        assert!(parse(&["--mode", "open", "--rate", "1000"]).is_ok());
        assert!(parse(&["--duration", "0"]).is_err());
        assert!(parse(&["--max-requests", "0"]).is_err());
        assert!(parse(&["--target", "10.1.1.1:8080"]).is_err());
        std::env::remove_var("CLAIMGATE_ADMIN_TOKEN");
        assert!(parse(&["--write-rate", "100"]).is_err());
        assert!(parse(&["--write-rate", "100", "--admin-token", "t"]).is_ok());
        assert!(parse(&["--write-rate", "100", "--admin-token", "t", "--admin", "10.0.0.2:8081"]).is_err());
    }

    #[test]
    fn append_flags_are_checked() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["loadtest", "append", "--admin-token", "t"];
            args.extend_from_slice(extra);
            let Command::Append(a) = Cli::try_parse_from(args).unwrap().command else { panic!("append") };
            append_config(*a)
        };
        let (c, _) = parse(&[]).unwrap();
        assert_eq!((c.writers, c.events_per_request, c.token.as_str()), (1, 1, "t"));
        assert!(parse(&["--writers", "8", "--events-per-request", "100"]).is_ok());
        assert!(parse(&["--events-per-request", "10000"]).is_ok());
        assert!(parse(&["--events-per-request", "10001"]).is_err());
        assert!(parse(&["--events-per-request", "0"]).is_err());
        assert!(parse(&["--writers", "0"]).is_err());
        assert!(parse(&["--writers", "257"]).is_err());
        assert!(parse(&["--duration", "0"]).is_err());
        assert!(parse(&["--admin", "192.168.1.1:8081"]).is_err());
        assert!(parse(&["--admin", "127.0.0.1:0"]).is_err());
    }
}
