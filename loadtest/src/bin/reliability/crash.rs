//! The crash campaign (issue 8): `kill -9` the gate at a random moment —
//! during appends, while a snapshot is half written, just before a snapshot
//! is renamed into place, or during start-up — restart it, and prove that
//! every acknowledged event is on the ledger at its `seq` with identical
//! content, that nothing else is there but events whose answer was lost in
//! the kill, that no half-written snapshot is ever picked up, and that the
//! restarted index answers exactly as the reference rules engine on the
//! ledger.

use crate::gate::{Launch, TOKEN};
use crate::http::Http;
use crate::model::{Rng, World};
use crate::verify::{decided, parse_event, stored_events, Reference};
use crate::writers::{self, Outcomes, Pace};
use crate::{Setup, MAX_SECONDS, MAX_WORKERS};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a snapshot write is held at the injected pause.
const SNAPSHOT_PAUSE_MS: u64 = 400;
/// Longest wait for the snapshot write to reach its pause.
const PAUSE_WAIT: Duration = Duration::from_secs(10);
/// Longest wait for a restarted gate to catch up with the ledger.
const CATCH_UP_WAIT: Duration = Duration::from_secs(30);
/// Claim lines checked per practitioner after the restart.
const CLAIMS_PER_PRACTITIONER: u64 = 3;
/// Timeout of the campaign's own requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where in the gate's life the kill lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moment {
    Appends,
    SnapshotHalfWritten,
    SnapshotBeforeRename,
    StartUp,
}

impl Moment {
    const ALL: [Moment; 4] =
        [Moment::Appends, Moment::SnapshotHalfWritten, Moment::SnapshotBeforeRename, Moment::StartUp];

    pub fn name(self) -> &'static str {
        match self {
            Moment::Appends => "appends",
            Moment::SnapshotHalfWritten => "snapshot_half_written",
            Moment::SnapshotBeforeRename => "snapshot_before_rename",
            Moment::StartUp => "start_up",
        }
    }
}

/// Most trials one run may ask for.
const MAX_TRIALS: u64 = 100_000;

/// The campaign's settings (`reliability crash --help`).
#[derive(clap::Args)]
pub struct Settings {
    #[arg(long, default_value_t = 100)]
    pub trials: u64,
    /// Concurrent admin writers.
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    #[arg(long, default_value_t = 200)]
    pub practitioners: u64,
    #[arg(long, default_value_t = 10)]
    pub institutions: u64,
    /// Stop starting new trials after this many seconds.
    #[arg(long, default_value_t = 3_600.0)]
    pub max_seconds: f64,
}

impl Settings {
    /// Refuses settings outside the campaign's bounds, saying which.
    pub fn check(&self) -> Result<(), String> {
        let valid = (1..=MAX_TRIALS).contains(&self.trials)
            && (1..=MAX_WORKERS).contains(&self.writers)
            && self.practitioners > 0
            && self.institutions > 1
            && (0.0..=MAX_SECONDS).contains(&self.max_seconds);
        valid.then_some(()).ok_or_else(|| {
            format!("crash needs --trials 1..={MAX_TRIALS}, --writers 1..={MAX_WORKERS}, at least 1 practitioner and 2 institutions, --max-seconds up to {MAX_SECONDS}")
        })
    }
}

/// One trial's findings.
#[derive(Default, serde::Serialize)]
pub struct Trial {
    pub trial: u64,
    pub moment: &'static str,
    pub acknowledged: usize,
    pub found: usize,
    pub lost: usize,
    pub altered: usize,
    pub unacknowledged_present: usize,
    pub unexplained_present: usize,
    pub gap_or_disorder: bool,
    pub answers_checked: usize,
    pub wrong_answers: usize,
    pub refused_snapshots_at_restart: usize,
    /// Whether the restart began from a snapshot (else from the whole ledger).
    pub restarted_from_snapshot: bool,
    pub unfinished_snapshot_files_after_restart: usize,
    pub pause_reached: Option<bool>,
    /// Start-up trials: whether the second kill came before the gate was listening.
    pub killed_before_listening: Option<bool>,
    pub failed_writes: usize,
    pub seconds: f64,
    pub problems: Vec<String>,
}

impl Trial {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Runs the trials (bounded by `max_seconds`); returns each trial's findings.
pub fn run(setup: &Setup, settings: &Settings) -> Vec<Trial> {
    let started = Instant::now();
    let mut trials = Vec::new();
    for t in 0..settings.trials {
        if started.elapsed().as_secs_f64() > settings.max_seconds {
            eprintln!("crash: stopping after {t} trials: --max-seconds {} reached", settings.max_seconds);
            break;
        }
        let moment = Moment::ALL[(t % Moment::ALL.len() as u64) as usize];
        let trial = one_trial(setup, settings, t, moment);
        eprintln!(
            "crash: trial {t:>3} {:<23} acked {:>5} found {:>5} lost {} altered {} unacked-present {} wrong {} {}",
            moment.name(),
            trial.acknowledged,
            trial.found,
            trial.lost,
            trial.altered,
            trial.unacknowledged_present,
            trial.wrong_answers,
            if trial.passed() { "ok".to_owned() } else { format!("FAILED: {}", trial.problems.join("; ")) }
        );
        trials.push(trial);
    }
    trials
}

/// The campaign's report over its trials, and whether every trial passed.
pub fn summary(results: &[Trial]) -> (serde_json::Value, bool) {
    let sum = |f: fn(&Trial) -> usize| results.iter().map(f).sum::<usize>();
    let count = |f: fn(&Trial) -> bool| results.iter().filter(|t| f(t)).count();
    let passed = !results.is_empty() && results.iter().all(Trial::passed);
    let mut moments = std::collections::BTreeMap::new();
    for t in results {
        *moments.entry(t.moment).or_insert(0u64) += 1;
    }
    let report = json!({
        "campaign": "crash", "trials": results.len(), "passed": passed, "kills_by_moment": moments,
        "events_acknowledged": sum(|t| t.acknowledged), "acknowledged_found": sum(|t| t.found),
        "lost": sum(|t| t.lost), "altered": sum(|t| t.altered),
        "unacknowledged_present": sum(|t| t.unacknowledged_present),
        "unexplained_present": sum(|t| t.unexplained_present),
        "answers_checked": sum(|t| t.answers_checked), "wrong_answers": sum(|t| t.wrong_answers),
        "start_up_kills_before_listening": count(|t| t.killed_before_listening == Some(true)),
        "snapshot_pauses_reached": count(|t| t.pause_reached == Some(true)),
        "refused_snapshots_at_restart": sum(|t| t.refused_snapshots_at_restart),
        "restarts_from_a_snapshot": count(|t| t.restarted_from_snapshot),
        "seconds": results.iter().map(|t| t.seconds).sum::<f64>(),
        "failed_trials": results.iter().filter(|t| !t.passed()).collect::<Vec<_>>(),
    });
    (report, passed)
}

fn one_trial(setup: &Setup, settings: &Settings, t: u64, moment: Moment) -> Trial {
    let started = Instant::now();
    let mut trial = Trial { trial: t, moment: moment.name(), ..Trial::default() };
    let dir = setup.work.join(format!("trial-{t:04}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rng = Rng::new(setup.seed ^ (t + 1).wrapping_mul(0xA24B_AED4_963E_E407));
    let world = World::new(settings.practitioners, settings.institutions);
    let launch = |extra: Vec<String>| Launch {
        binary: setup.binary.clone(),
        data: dir.join("data"),
        log: dir.join("gate.log"),
        extra,
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        trial.problems.push(format!("cannot create {}: {e}", dir.display()));
        return trial;
    }
    if let Err(e) = launch(vec![]).init() {
        trial.problems.push(e);
        return trial;
    }
    match kill_during(settings, &world, &launch, moment, &mut rng, &mut trial) {
        Ok(outcomes) => verify(&dir, &world, &launch(vec![]), outcomes, &mut rng, &mut trial),
        Err(e) => trial.problems.push(e),
    }
    trial.seconds = started.elapsed().as_secs_f64();
    if trial.passed() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    trial
}

/// Starts the gate, writes, and kills it at `moment`; returns what the writers saw.
fn kill_during(
    settings: &Settings,
    world: &World,
    launch: &dyn Fn(Vec<String>) -> Launch,
    moment: Moment,
    rng: &mut Rng,
    trial: &mut Trial,
) -> Result<Outcomes, String> {
    let snapshot_every = ["0", "100", "1000"][rng.below(3) as usize].to_owned();
    let mut extra = vec!["--snapshot-every-events".to_owned(), snapshot_every];
    let stage = match moment {
        Moment::SnapshotHalfWritten => Some("half-written"),
        Moment::SnapshotBeforeRename => Some("before-rename"),
        _ => None,
    };
    if let Some(stage) = stage {
        extra = vec!["--snapshot-every-events".into(), "0".into()];
        extra.extend(["--fault-snapshot-pause".to_owned(), format!("{stage}:{SNAPSHOT_PAUSE_MS}")]);
    }
    let gate = launch(extra.clone()).start()?;
    let mut outcomes = writers::set_up(gate.admin, world)?;
    let stop = Arc::new(AtomicBool::new(false));
    let nonce = format!("t{}", trial.trial);
    let pace = Pace { per_request: 1, requests_per_s: None, stop_on_error: true };
    let handles = writers::start(gate.admin, world, &nonce, settings.writers, rng.next(), pace, stop);
    std::thread::sleep(Duration::from_millis(100 + rng.below(400)));
    if stage.is_some() {
        let admin = gate.admin;
        std::thread::spawn(move || {
            let _ = Http::new(admin, REQUEST_TIMEOUT).send("POST", "/v1/snapshot", Some(TOKEN), b"");
        });
        let reached = gate.paused.recv_timeout(PAUSE_WAIT).is_ok();
        trial.pause_reached = Some(reached);
        if reached {
            std::thread::sleep(Duration::from_millis(rng.below(SNAPSHOT_PAUSE_MS - 50)));
        } else {
            trial.problems.push("the snapshot write never reached its injected pause".into());
        }
    }
    gate.kill9();
    outcomes.merge(writers::join(handles));
    if moment == Moment::StartUp {
        // Time a restart on this very data (then kill it too), and kill the
        // next restart at a random moment within that time: while it opens
        // the ledger, loads a snapshot or catches up.
        let probe = launch(extra.clone()).start()?;
        let limit = probe.started_in.as_micros().max(1) as u64;
        probe.kill9();
        let mut spawned = launch(extra).spawn()?;
        std::thread::sleep(Duration::from_micros(rng.below(limit)));
        let _ = spawned.child.kill();
        let _ = spawned.child.wait();
        trial.killed_before_listening = Some(!spawned.is_listening());
    }
    Ok(outcomes)
}

/// Restarts the gate and checks the ledger, the snapshots and the answers.
fn verify(dir: &Path, world: &World, launch: &Launch, outcomes: Outcomes, rng: &mut Rng, trial: &mut Trial) {
    trial.acknowledged = outcomes.acked.len();
    trial.failed_writes = outcomes.failed.len();
    let gate = match launch.start() {
        Ok(gate) => gate,
        Err(e) => return trial.problems.push(format!("restart after the kill failed: {e}")),
    };
    let mut http = Http::new(gate.check, REQUEST_TIMEOUT);
    let deadline = Instant::now() + CATCH_UP_WAIT;
    let ready = loop {
        let r = http.send("GET", "/readyz", None, b"").map(|r| r.json()).unwrap_or(Value::Null);
        if r["ready"] == true && r["index_seq"] == r["ledger_head"] {
            break r;
        }
        if Instant::now() > deadline {
            return trial.problems.push(format!("the restarted gate never caught up: {r}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    trial.restarted_from_snapshot = ready["last_snapshot_seq"].as_u64().is_some_and(|s| s > 0);
    trial.refused_snapshots_at_restart = ready["snapshots_refused_at_start"].as_array().map_or(0, Vec::len);
    if trial.refused_snapshots_at_restart > 0 {
        trial.problems.push(format!("a snapshot was refused at restart: {}", ready["snapshots_refused_at_start"]));
    }
    trial.unfinished_snapshot_files_after_restart = std::fs::read_dir(dir.join("data/snapshots"))
        .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".tmp")).count())
        .unwrap_or(0);
    if trial.unfinished_snapshot_files_after_restart > 0 {
        trial.problems.push("an unfinished snapshot file outlived the restart".into());
    }
    let head = ready["ledger_head"].as_u64().unwrap_or(0);
    let claims: Vec<Value> = (0..world.practitioners * CLAIMS_PER_PRACTITIONER).map(|_| world.claim(rng)).collect();
    let body = json!({"lines": claims, "min_seq": head}).to_string();
    let answers = match http.send("POST", "/v1/check/batch", None, body.as_bytes()) {
        Ok(r) if r.status == 200 => r.json(),
        Ok(r) => return trial.problems.push(format!("batch check after restart: {} {}", r.status, r.json())),
        Err(e) => return trial.problems.push(format!("batch check after restart: {e}")),
    };
    if !gate.stop() {
        trial.problems.push("the restarted gate did not stop cleanly on SIGTERM".into());
    }
    let stored = match stored_events(&dir.join("data")) {
        Ok(stored) => stored,
        Err(e) => return trial.problems.push(e),
    };
    compare_ledger(&stored, outcomes, trial);
    let reference = Reference::new(&stored);
    let seq = answers["seq"].as_u64().unwrap_or(u64::MAX);
    if seq != head || seq != stored.len() as u64 {
        trial.problems.push(format!("answers at seq {seq}, ledger head {head}, {} events stored", stored.len()));
    }
    let results = answers["results"].as_array().map(Vec::as_slice).unwrap_or_default();
    let queries: Vec<(Value, u64)> = claims.iter().map(|c| (c.clone(), seq)).collect();
    for ((claim, answer), expected) in claims.iter().zip(results).zip(reference.answers(&queries)) {
        trial.answers_checked += 1;
        if decided(answer) != expected {
            trial.wrong_answers += 1;
            if trial.wrong_answers <= 3 {
                trial.problems.push(format!("wrong answer to {claim}: gate {answer}, reference {expected}"));
            }
        }
    }
    if trial.answers_checked != claims.len() {
        trial.problems.push(format!("{} answers for {} claim lines", trial.answers_checked, claims.len()));
    }
}

/// Every acknowledged event at its seq with identical content; nothing else
/// stored but events whose answer was lost; seqs 1..=n without a gap.
fn compare_ledger(stored: &[claimgate::event::RecordedEvent], outcomes: Outcomes, trial: &mut Trial) {
    trial.gap_or_disorder = stored.iter().enumerate().any(|(i, r)| r.seq != i as u64 + 1);
    if trial.gap_or_disorder {
        trial.problems.push("the stored seqs are not 1..=n".into());
    }
    let at = |seq: u64| stored.get((seq as usize).wrapping_sub(1)).filter(|r| r.seq == seq);
    let mut acked_seqs = std::collections::HashSet::new();
    for (seq, sent) in &outcomes.acked {
        acked_seqs.insert(*seq);
        match at(*seq) {
            None => trial.lost += 1,
            Some(r) if r.event != parse_event(sent) => trial.altered += 1,
            Some(_) => trial.found += 1,
        }
    }
    let mut unknown: Vec<_> = outcomes.unknown.iter().map(parse_event).collect();
    for r in stored.iter().filter(|r| !acked_seqs.contains(&r.seq)) {
        trial.unacknowledged_present += 1;
        match unknown.iter().position(|e| *e == r.event) {
            Some(k) => {
                unknown.swap_remove(k);
            }
            None => trial.unexplained_present += 1,
        }
    }
    if trial.lost + trial.altered + trial.unexplained_present > 0 {
        trial.problems.push(format!(
            "{} acknowledged events lost, {} altered, {} stored events nobody sent without an answer",
            trial.lost, trial.altered, trial.unexplained_present
        ));
    }
}
