//! `reliability`: the gate's reliability campaigns (issue 8), run against the
//! real `claimgate serve` binary on loopback ports and data directories of
//! their own, bounded in trials and time:
//!
//! - `crash`: kill -9 at random moments (appends, snapshot half written,
//!   snapshot before rename, start-up), restart, and prove nothing
//!   acknowledged was lost or altered and the index answers as the rules do;
//! - `soak`: checks at a steady rate while events arrive, every answer
//!   compared afterwards with the rules engine at the answer's `seq`.
//!
//! Each prints one line per trial (crash) or a summary (soak) on standard
//! error, the JSON report on standard output (and to `--json`), and exits 1
//! if anything was lost, altered or answered wrongly.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod crash;
mod gate;
mod http;
mod model;
mod soak;
mod verify;
mod writers;

use clap::{Parser, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Most crash trials one run may ask for.
const MAX_TRIALS: u64 = 100_000;
/// Longest run accepted, in seconds.
const MAX_SECONDS: f64 = 24.0 * 3_600.0;

#[derive(Parser)]
#[command(
    name = "reliability",
    version,
    about = "Crash and differential-soak campaigns against claimgate serve (loopback only)"
)]
struct Cli {
    /// The claimgate binary (default: the one beside this program).
    #[arg(long, global = true)]
    gate: Option<PathBuf>,
    /// Working directory for data directories and logs (kept for failed trials).
    #[arg(long, global = true, default_value = "target/reliability")]
    work: PathBuf,
    /// Seed of the campaign (events, claims, kill moments).
    #[arg(long, global = true, default_value_t = 20_261_125)]
    seed: u64,
    /// Also write the JSON report to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// kill -9 trials (moments rotate: appends, snapshot half written, snapshot before rename, start-up).
    Crash {
        #[arg(long, default_value_t = 100)]
        trials: u64,
        /// Concurrent admin writers.
        #[arg(long, default_value_t = 4)]
        writers: usize,
        #[arg(long, default_value_t = 200)]
        practitioners: u64,
        #[arg(long, default_value_t = 10)]
        institutions: u64,
        /// Stop starting new trials after this many seconds.
        #[arg(long, default_value_t = 3_600.0)]
        max_seconds: f64,
    },
    /// Checks at a steady rate while events arrive; every answer verified afterwards.
    Soak {
        /// Seconds of load.
        #[arg(long, default_value_t = 600.0)]
        duration: f64,
        /// Admin events per second (in all).
        #[arg(long, default_value_t = 1_000.0)]
        events_per_s: f64,
        /// Events per admin request (1-10,000).
        #[arg(long, default_value_t = 10)]
        events_per_request: usize,
        #[arg(long, default_value_t = 2)]
        writers: usize,
        /// Check requests per second (in all; one in ten is a batch of 16 lines).
        #[arg(long, default_value_t = 2_000.0)]
        checks_per_s: f64,
        #[arg(long, default_value_t = 4)]
        checkers: usize,
        #[arg(long, default_value_t = 20_000)]
        practitioners: u64,
        #[arg(long, default_value_t = 200)]
        institutions: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let binary = cli.gate.clone().unwrap_or_else(gate::default_binary);
    if !binary.is_file() {
        eprintln!(
            "reliability: no claimgate binary at {}; build it (cargo build --release) or pass --gate",
            binary.display()
        );
        return ExitCode::from(2);
    }
    if let Err(e) = std::fs::create_dir_all(&cli.work) {
        eprintln!("reliability: cannot create --work {}: {e}", cli.work.display());
        return ExitCode::from(2);
    }
    let (report, passed) = match cli.command {
        Command::Crash { trials, writers, practitioners, institutions, max_seconds } => {
            if !(1..=MAX_TRIALS).contains(&trials)
                || !(1..=64).contains(&writers)
                || !(0.0..=MAX_SECONDS).contains(&max_seconds)
            {
                eprintln!(
                    "reliability: --trials 1..={MAX_TRIALS}, --writers 1..=64, --max-seconds up to {MAX_SECONDS}"
                );
                return ExitCode::from(2);
            }
            let settings = crash::Settings {
                binary,
                work: cli.work.clone(),
                trials,
                seed: cli.seed,
                writers,
                practitioners,
                institutions,
                max_seconds,
            };
            let results = crash::run(&settings);
            let sum = |f: fn(&crash::Trial) -> usize| results.iter().map(f).sum::<usize>();
            let passed = !results.is_empty() && results.iter().all(crash::Trial::passed);
            let mut moments = std::collections::BTreeMap::new();
            for t in &results {
                *moments.entry(t.moment).or_insert(0u64) += 1;
            }
            let report = json!({
                "campaign": "crash", "trials": results.len(), "passed": passed, "kills_by_moment": moments,
                "events_acknowledged": sum(|t| t.acknowledged), "acknowledged_found": sum(|t| t.found),
                "lost": sum(|t| t.lost), "altered": sum(|t| t.altered),
                "unacknowledged_present": sum(|t| t.unacknowledged_present),
                "unexplained_present": sum(|t| t.unexplained_present),
                "answers_checked": sum(|t| t.answers_checked), "wrong_answers": sum(|t| t.wrong_answers),
                "start_up_kills_before_listening":
                    results.iter().filter(|t| t.killed_before_listening == Some(true)).count(),
                "snapshot_pauses_reached": results.iter().filter(|t| t.pause_reached == Some(true)).count(),
                "refused_snapshots_at_restart": sum(|t| t.refused_snapshots_at_restart),
                "restarts_from_a_snapshot": results.iter().filter(|t| t.restarted_from_snapshot).count(),
                "seconds": results.iter().map(|t| t.seconds).sum::<f64>(),
                "failed_trials": results.iter().filter(|t| !t.passed()).collect::<Vec<_>>(),
            });
            (report, passed)
        }
        Command::Soak {
            duration,
            events_per_s,
            events_per_request,
            writers,
            checks_per_s,
            checkers,
            practitioners,
            institutions,
        } => {
            let valid = (1.0..=MAX_SECONDS).contains(&duration)
                && events_per_s > 0.0
                && (1..=10_000).contains(&events_per_request)
                && (1..=64).contains(&writers)
                && checks_per_s > 0.0
                && (1..=64).contains(&checkers);
            if !valid {
                eprintln!("reliability: soak needs --duration 1..={MAX_SECONDS}, positive rates, --events-per-request 1..=10000, 1..=64 writers and checkers");
                return ExitCode::from(2);
            }
            let settings = soak::Settings {
                binary,
                work: cli.work.clone(),
                seconds: duration,
                events_per_s,
                events_per_request,
                writers,
                checks_per_s,
                checkers,
                practitioners,
                institutions,
                seed: cli.seed,
            };
            let report = soak::run(&settings);
            eprintln!(
                "soak: {:.0} s, {} events acknowledged ({:.0}/s), {} answers ({:.0}/s), {} wrong, {} failed checks, {} seq decreases, verified in {:.1} s",
                report.seconds, report.events_acknowledged, report.events_per_s, report.answers, report.answers_per_s,
                report.wrong_answers, report.failed_checks, report.seq_went_back, report.verify_seconds
            );
            let passed = report.passed();
            (json!({"campaign": "soak", "passed": passed, "report": report}), passed)
        }
    };
    let text = serde_json::to_string_pretty(&report).expect("report serializes");
    println!("{text}");
    if let Some(path) = &cli.json {
        if let Err(e) = std::fs::write(path, &text) {
            eprintln!("reliability: cannot write {}: {e}", path.display());
        }
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
