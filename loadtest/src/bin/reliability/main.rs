//! `reliability`: the gate's reliability campaigns (issue 8), run against the
//! real `claimgate serve` binary on loopback ports and data directories of
//! their own, bounded in trials and time:
//!
//! - `crash`: kill -9 at random moments (appends, snapshot half written,
//!   snapshot before rename, start-up), restart, and prove nothing
//!   acknowledged was lost or altered, the index answers as the rules do,
//!   and every exemption and reject answered before the kill is in the
//!   decision log;
//! - `soak`: checks at a steady rate while events arrive, every answer
//!   compared afterwards with the rules engine at the answer's `seq`.
//!
//! Each prints one line per trial (crash) or a summary (soak) on standard
//! error, the JSON report on standard output (and to `--json`), and exits 1
//! if anything was lost, altered or answered wrongly.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod checkers;
mod crash;
mod feed;
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

/// Longest run accepted, in seconds.
const MAX_SECONDS: f64 = 24.0 * 3_600.0;
/// Most concurrent writers or checkers.
const MAX_WORKERS: usize = 64;

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
    /// Plant a fault in what is verified, to show the verification catches
    /// it (the run must then fail).
    #[arg(long, global = true, value_enum, hide = true)]
    plant_fault: Option<verify::PlantedFault>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// kill -9 trials (moments rotate: appends, snapshot half written, snapshot before rename, start-up).
    Crash(crash::Settings),
    /// Checks at a steady rate while events arrive; every answer verified afterwards.
    Soak(soak::Settings),
}

/// What every campaign is given: the binary under test, where to work, the
/// seed, and a fault to plant, if any.
pub struct Setup {
    pub binary: PathBuf,
    pub work: PathBuf,
    pub seed: u64,
    pub plant: Option<verify::PlantedFault>,
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
    let checked = match &cli.command {
        Command::Crash(settings) => settings.check(),
        Command::Soak(settings) => settings.check(),
    };
    if let Err(e) = checked {
        eprintln!("reliability: {e}");
        return ExitCode::from(2);
    }
    let setup = Setup { binary, work: cli.work.clone(), seed: cli.seed, plant: cli.plant_fault };
    let (report, passed) = match &cli.command {
        Command::Crash(settings) => {
            let (report, passed) = crash::summary(&crash::run(&setup, settings));
            let d = &report["decisions"];
            eprintln!(
                "crash: {} trials, {} events acknowledged, {} lost, {} altered; {} check lines answered, {} exemptions and {} rejects answered before the kill, {} found in the decision log, {} exemptions and {} rejects missing, {} altered; {}",
                report["trials"], report["events_acknowledged"], report["lost"], report["altered"],
                d["check_lines_answered"], d["exemptions_answered"], d["rejects_answered"], d["decisions_found"],
                d["exemptions_missing"], d["rejects_missing"], d["decisions_altered"],
                if passed { "passed" } else { "FAILED" }
            );
            (report, passed)
        }
        Command::Soak(settings) => {
            let report = soak::run(&setup, settings);
            eprintln!(
                "soak: {:.0} s, {} events acknowledged ({:.0}/s), {} lost, {} altered, {} re-sent ({} answered with the original seq, {} stored twice), {} answers ({:.0}/s), {} wrong, {} failed checks, {} seq decreases, verified in {:.1} s",
                report.seconds, report.events_acknowledged, report.events_per_s, report.ledger.lost, report.ledger.altered,
                report.resends.sent, report.resends.answered_original_seq, report.ledger.duplicates_stored,
                report.answers, report.answers_per_s,
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
