//! The differential soak (issue 8): claim checks at a steady rate while admin
//! events arrive at a steady rate on the practitioners the checks touch;
//! every answer is recorded with its `seq` and afterwards compared with the
//! reference rules engine evaluated on the ledger at that `seq`. Wrong
//! answers, failed checks, and a `seq` that goes back on one connection are
//! counted; each must be zero. The writers re-send a share of the events
//! already acknowledged (`--resend-percent`, R7a): each must be answered
//! with its original `seq`, and afterwards the ledger must hold every
//! acknowledged event at its `seq`, nothing else, and no event twice. A
//! consumer follows the change feed throughout (`feed.rs`); folded, what it
//! read must equal the rules engine's windows on the stored ledger.

use crate::gate::Launch;
use crate::http::Http;
use crate::model::{Rng, World};
use crate::verify::{self, decided, stored_events, LedgerFindings, Reference};
use crate::writers::{self, Pace, ResendArgs, Resends};
use crate::{Setup, MAX_SECONDS, MAX_WORKERS};
use claimgate::ledger::MAX_APPEND_BATCH as MAX_EVENTS_PER_REQUEST;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Timeout of one check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// One check request in this many is a batch.
const BATCH_EVERY: u64 = 10;
/// Lines in a batch check.
const BATCH_LINES: u64 = 16;
/// Most answers one checker records (memory bound: about 250 bytes each);
/// past it, the checker goes on but its answers are not verified.
const MAX_RECORDED_PER_CHECKER: usize = 4_000_000;

/// The soak's settings (`reliability soak --help`).
#[derive(clap::Args)]
pub struct Settings {
    /// Seconds of load.
    #[arg(long = "duration", default_value_t = 600.0)]
    pub seconds: f64,
    /// Admin events per second (in all).
    #[arg(long, default_value_t = 1_000.0)]
    pub events_per_s: f64,
    /// Events per admin request (1-10,000).
    #[arg(long, default_value_t = 10)]
    pub events_per_request: usize,
    #[arg(long, default_value_t = 2)]
    pub writers: usize,
    /// Check requests per second (in all; one in ten is a batch of 16 lines).
    #[arg(long, default_value_t = 2_000.0)]
    pub checks_per_s: f64,
    #[arg(long, default_value_t = 4)]
    pub checkers: usize,
    #[arg(long, default_value_t = 20_000)]
    pub practitioners: u64,
    #[arg(long, default_value_t = 200)]
    pub institutions: u64,
    #[command(flatten)]
    pub resend: ResendArgs,
}

impl Settings {
    /// Refuses settings outside the soak's bounds, saying which.
    pub fn check(&self) -> Result<(), String> {
        let valid = (1.0..=MAX_SECONDS).contains(&self.seconds)
            && self.events_per_s > 0.0
            && (1..=MAX_EVENTS_PER_REQUEST).contains(&self.events_per_request)
            && (1..=MAX_WORKERS).contains(&self.writers)
            && self.checks_per_s > 0.0
            && (1..=MAX_WORKERS).contains(&self.checkers)
            && self.practitioners > 0
            && self.institutions > 1;
        valid.then_some(()).ok_or_else(|| {
            format!("soak needs --duration 1..={MAX_SECONDS}, positive rates, --events-per-request 1..={MAX_EVENTS_PER_REQUEST}, 1..={MAX_WORKERS} writers and checkers, at least 1 practitioner and 2 institutions")
        })?;
        self.resend.check()
    }
}

/// What the soak found.
#[derive(Default, serde::Serialize)]
pub struct Report {
    pub seconds: f64,
    /// By the writers (the set-up's events aside).
    pub events_acknowledged: usize,
    pub events_refused: u64,
    /// The stored ledger against every acknowledged event, the set-up's included.
    pub ledger: LedgerFindings,
    /// Re-sends of acknowledged events (R7a).
    pub resends: Resends,
    pub events_per_s: f64,
    pub failed_writes: usize,
    pub check_requests: u64,
    pub answers: usize,
    pub answers_per_s: f64,
    pub failed_checks: u64,
    pub seq_went_back: u64,
    pub distinct_seqs_answered: usize,
    pub wrong_answers: usize,
    pub verify_seconds: f64,
    /// Changes the feed follower read, in how many pages, and the pairs and
    /// institutions whose folded windows were compared.
    pub feed_changes: usize,
    pub feed_pages: u64,
    pub feed_compared: usize,
    pub problems: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One recorded answer, as compact JSON text (about 250 bytes).
struct Answer {
    claim: String,
    /// The decided fields of the gate's answer (see `verify::decided`).
    decided: String,
    seq: u64,
}

/// What one checker thread recorded.
#[derive(Default)]
struct Checked {
    answers: Vec<Answer>,
    requests: u64,
    failed: u64,
    seq_went_back: u64,
    samples: Vec<String>,
}

pub fn run(setup: &Setup, settings: &Settings) -> Report {
    let mut report = Report::default();
    let dir = setup.work.join("soak");
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        report.problems.push(format!("cannot create {}: {e}", dir.display()));
        return report;
    }
    let world = World::new(settings.practitioners, settings.institutions);
    let launch =
        Launch { binary: setup.binary.clone(), data: dir.join("data"), log: dir.join("gate.log"), extra: vec![] };
    if let Err(e) = launch.init() {
        report.problems.push(e);
        return report;
    }
    let gate = match launch.start() {
        Ok(gate) => gate,
        Err(e) => {
            report.problems.push(e);
            return report;
        }
    };
    let set_up = match writers::set_up(gate.admin, &world) {
        Ok(set_up) => set_up,
        Err(e) => {
            report.problems.push(e);
            return report;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let requests_per_s = settings.events_per_s / settings.events_per_request as f64 / settings.writers as f64;
    let pace = Pace {
        per_request: settings.events_per_request,
        requests_per_s: Some(requests_per_s),
        stop_on_error: false,
        resend_percent: settings.resend.percent,
    };
    let head = Arc::new(std::sync::Mutex::new(None));
    let follower = crate::feed::start(gate.admin, stop.clone(), head.clone());
    let writer_handles = writers::start(gate.admin, &world, "soak", settings.writers, setup.seed, pace, stop.clone());
    let checker_handles: Vec<_> = (0..settings.checkers)
        .map(|c| {
            let (world, stop, addr) = (world.clone(), stop.clone(), gate.check);
            let rate = settings.checks_per_s / settings.checkers as f64;
            let mut rng = Rng::new(setup.seed ^ (0xC0FFEE + c as u64));
            std::thread::spawn(move || check_loop(addr, &world, rate, &mut rng, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(settings.seconds));
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = writers::join(writer_handles);
    let mut checked = Checked::default();
    for h in checker_handles {
        let c = h.join().expect("checker thread panicked");
        checked.requests += c.requests;
        checked.failed += c.failed;
        checked.seq_went_back += c.seq_went_back;
        checked.samples.extend(c.samples);
        checked.answers.extend(c.answers);
    }
    report.seconds = started.elapsed().as_secs_f64();
    // The writers are done: the feed must reach the last acknowledged seq.
    let last = set_up.acked.iter().chain(&outcomes.acked).map(|(seq, _)| *seq).max().unwrap_or(0);
    *head.lock().expect("not poisoned") = Some(last);
    let followed = follower.join().expect("feed follower panicked");
    report.feed_changes = followed.changes.len();
    report.feed_pages = followed.pages;
    report.problems.extend(followed.problems.iter().cloned());
    if !gate.stop() {
        report.problems.push("the gate did not stop cleanly on SIGTERM".into());
    }
    report.events_acknowledged = outcomes.acked.len();
    report.events_refused = outcomes.refused;
    // Events sent: first sends and re-sends.
    report.events_per_s =
        (outcomes.acked.len() as u64 + outcomes.refused + outcomes.resends.sent) as f64 / report.seconds;
    report.failed_writes = outcomes.failed.len() + outcomes.unknown.len();
    report.resends = std::mem::take(&mut outcomes.resends);
    report.problems.extend(report.resends.problem());
    report.check_requests = checked.requests;
    report.answers = checked.answers.len();
    report.answers_per_s = checked.answers.len() as f64 / report.seconds;
    report.failed_checks = checked.failed;
    report.seq_went_back = checked.seq_went_back;
    if report.failed_writes > 0 {
        report.problems.push(format!(
            "{} writes failed: {:?}",
            report.failed_writes,
            outcomes.failed.iter().take(3).collect::<Vec<_>>()
        ));
    }
    if checked.failed + checked.seq_went_back > 0 {
        report.problems.push(format!(
            "{} failed checks, {} answers at a lower seq than the one before: {:?}",
            checked.failed, checked.seq_went_back, checked.samples
        ));
    }
    let verify_started = Instant::now();
    match stored_events(&dir.join("data")) {
        Ok(mut stored) => {
            verify::plant(setup.plant, &mut stored);
            let mut acked = set_up.acked;
            acked.append(&mut outcomes.acked);
            report.ledger = LedgerFindings::of(&stored, &acked, &outcomes.unknown, &mut report.problems);
            drop(acked);
            let reference = Reference::new(&stored);
            let queries: Vec<(Value, u64)> = checked
                .answers
                .iter()
                .map(|a| (serde_json::from_str(&a.claim).expect("recorded from a Value"), a.seq))
                .collect();
            let expected = reference.answers(&queries);
            let mut seqs = std::collections::HashSet::new();
            for (a, expected) in checked.answers.iter().zip(&expected) {
                seqs.insert(a.seq);
                let given: Value = serde_json::from_str(&a.decided).expect("recorded from a Value");
                if given != *expected {
                    report.wrong_answers += 1;
                    if report.wrong_answers <= 3 {
                        report.problems.push(format!(
                            "wrong answer at seq {} to {}: gate {}, reference {expected}",
                            a.seq, a.claim, a.decided
                        ));
                    }
                }
            }
            report.distinct_seqs_answered = seqs.len();
            if followed.problems.is_empty() {
                report.feed_compared = crate::feed::check(&followed, &stored, &mut report.problems);
            }
        }
        Err(e) => report.problems.push(e),
    }
    report.verify_seconds = verify_started.elapsed().as_secs_f64();
    if report.answers == 0 {
        report.problems.push("no check was answered".into());
    }
    if report.passed() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    report
}

/// Sends checks at `rate` per second until `stop`, recording every answer.
fn check_loop(addr: std::net::SocketAddr, world: &World, rate: f64, rng: &mut Rng, stop: &AtomicBool) -> Checked {
    let mut http = Http::new(addr, CHECK_TIMEOUT);
    let mut out = Checked::default();
    let started = Instant::now();
    let mut last_seq = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = started + Duration::from_secs_f64(out.requests as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait.min(Duration::from_millis(50)));
            continue;
        }
        out.requests += 1;
        let batch = out.requests % BATCH_EVERY == 0;
        let claims: Vec<Value> = (0..if batch { BATCH_LINES } else { 1 }).map(|_| world.claim(rng)).collect();
        let (path, body) = if batch {
            ("/v1/check/batch", json!({"lines": claims}).to_string())
        } else {
            ("/v1/check", claims[0].to_string())
        };
        let reply = match http.send("POST", path, None, body.as_bytes()) {
            Ok(r) if r.status == 200 => r.json(),
            Ok(r) => {
                out.failed += 1;
                if out.samples.len() < 3 {
                    out.samples.push(format!("{} {}", r.status, String::from_utf8_lossy(&r.body)));
                }
                continue;
            }
            Err(e) => {
                out.failed += 1;
                if out.samples.len() < 3 {
                    out.samples.push(e.to_string());
                }
                continue;
            }
        };
        let seq = reply["seq"].as_u64().unwrap_or(0);
        if seq < last_seq {
            out.seq_went_back += 1;
        }
        last_seq = seq;
        let answers = if batch { reply["results"].as_array().cloned().unwrap_or_default() } else { vec![reply] };
        for (claim, answer) in claims.into_iter().zip(answers) {
            if out.answers.len() < MAX_RECORDED_PER_CHECKER {
                out.answers.push(Answer { claim: claim.to_string(), decided: decided(&answer).to_string(), seq });
            }
        }
    }
    out
}
