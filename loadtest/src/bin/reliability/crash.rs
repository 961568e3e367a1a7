//! The crash campaign (issue 8): `kill -9` the gate at a random moment —
//! during appends, while a snapshot is half written, just before a snapshot
//! is renamed into place, or during start-up — restart it, and prove that
//! every acknowledged event is on the ledger at its `seq` with identical
//! content, that nothing else is there but events whose answer was lost in
//! the kill, that no half-written snapshot is ever picked up, and that the
//! restarted index answers exactly as the reference rules engine on the
//! ledger.
//!
//! While they append, the writers re-send a share of the events already
//! acknowledged (`--resend-percent`, R7a): each must be answered with its
//! original `seq` and stored once. After the restart the campaign does what
//! a client does after a crash: it retries every event whose answer the kill
//! swallowed, and proves each landed exactly once (stored before the kill
//! and answered `already_recorded` now, or stored now, or refused by R8 and
//! not stored at all).
//!
//! Checker clients send claim lines meanwhile (`--checkers`,
//! [`crate::checkers`]: single lines and batches, 25% emergencies, 10%
//! rejects, each with a unique `claim_id`); after the restart every line
//! answered `emergency_exemption` or `reject` before the kill must be in the
//! decision log (`claimgate audit export`) with its `claim_id` exactly as
//! sent and its reason (R19: recorded before answered).

use crate::checkers::{self, Checked, DecisionFindings, Sanctioned};
use crate::gate::{Launch, TOKEN};
use crate::http::Http;
use crate::model::{Rng, World};
use crate::verify::{self, decided, identity, parse_event, stored_events, LedgerFindings, Reference};
use crate::writers::{self, Answer, Outcomes, Pace, ResendArgs, Resends};
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
    /// Concurrent check clients (single lines and batches, emergency-heavy).
    #[arg(long, default_value_t = 2)]
    pub checkers: usize,
    #[arg(long, default_value_t = 200)]
    pub practitioners: u64,
    #[arg(long, default_value_t = 10)]
    pub institutions: u64,
    /// Stop starting new trials after this many seconds.
    #[arg(long, default_value_t = 3_600.0)]
    pub max_seconds: f64,
    #[command(flatten)]
    pub resend: ResendArgs,
}

impl Settings {
    /// Refuses settings outside the campaign's bounds, saying which.
    pub fn check(&self) -> Result<(), String> {
        let valid = (1..=MAX_TRIALS).contains(&self.trials)
            && (1..=MAX_WORKERS).contains(&self.writers)
            && (1..=MAX_WORKERS).contains(&self.checkers)
            && self.practitioners > 0
            && self.institutions > 1
            && (0.0..=MAX_SECONDS).contains(&self.max_seconds);
        valid.then_some(()).ok_or_else(|| {
            format!("crash needs --trials 1..={MAX_TRIALS}, --writers and --checkers 1..={MAX_WORKERS}, at least 1 practitioner and 2 institutions, --max-seconds up to {MAX_SECONDS}")
        })?;
        self.resend.check()
    }
}

/// One trial's findings.
#[derive(Default, serde::Serialize)]
pub struct Trial {
    pub trial: u64,
    pub moment: &'static str,
    #[serde(flatten)]
    pub ledger: LedgerFindings,
    /// Re-sends of acknowledged events while appending (R7a).
    pub resends: Resends,
    #[serde(flatten)]
    pub retries: Retries,
    /// The lines answered exemption or reject before the kill, held against the decision log.
    pub decisions: DecisionFindings,
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

/// The retries after the restart of every event whose answer the kill
/// swallowed (R7a): each must land exactly once.
#[derive(Default, serde::Serialize)]
pub struct Retries {
    pub retried_after_kill: usize,
    /// Stored before the kill: answered `already_recorded` with that seq.
    pub retried_already_stored: usize,
    /// Not stored before the kill: stored by the retry.
    pub retried_stored_now: usize,
    /// Refused by R8 (as its first send was): not stored at all.
    pub retried_refused: usize,
    /// Acknowledged retries whose event the ledger holds exactly once, at the
    /// answered seq, identical (must equal already stored + stored now).
    pub retried_landed_once: usize,
    /// Refused retries whose identity the ledger holds anyway (must be 0).
    pub retried_refused_but_stored: usize,
}

impl Retries {
    fn merge(&mut self, other: &Retries) {
        self.retried_after_kill += other.retried_after_kill;
        self.retried_already_stored += other.retried_already_stored;
        self.retried_stored_now += other.retried_stored_now;
        self.retried_refused += other.retried_refused;
        self.retried_landed_once += other.retried_landed_once;
        self.retried_refused_but_stored += other.retried_refused_but_stored;
    }
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
            "crash: trial {t:>3} {:<23} acked {:>5} found {:>5} lost {} altered {} resent {:>4} (original seq {:>4}) retried {} (landed once {}) duplicates {} wrong {} exemptions {:>4} rejects {:>4} logged {:>4} missing {} {}",
            moment.name(),
            trial.ledger.acknowledged,
            trial.ledger.found,
            trial.ledger.lost,
            trial.ledger.altered,
            trial.resends.sent,
            trial.resends.answered_original_seq,
            trial.retries.retried_after_kill,
            trial.retries.retried_landed_once,
            trial.ledger.duplicates_stored,
            trial.wrong_answers,
            trial.decisions.exemptions_answered,
            trial.decisions.rejects_answered,
            trial.decisions.decisions_found,
            trial.decisions.exemptions_missing + trial.decisions.rejects_missing,
            if trial.passed() { "ok".to_owned() } else { format!("FAILED: {}", trial.problems.join("; ")) }
        );
        trials.push(trial);
    }
    trials
}

/// The campaign's report over its trials, and whether every trial passed.
pub fn summary(results: &[Trial]) -> (serde_json::Value, bool) {
    let sum = |f: fn(&Trial) -> usize| results.iter().map(f).sum::<usize>();
    let (mut resends, mut retries, mut decisions) =
        (Resends::default(), Retries::default(), DecisionFindings::default());
    for t in results {
        resends.merge(t.resends.clone());
        retries.merge(&t.retries);
        decisions.merge(&t.decisions);
    }
    let count = |f: fn(&Trial) -> bool| results.iter().filter(|t| f(t)).count();
    let passed = !results.is_empty() && results.iter().all(Trial::passed);
    let mut moments = std::collections::BTreeMap::new();
    for t in results {
        *moments.entry(t.moment).or_insert(0u64) += 1;
    }
    let report = json!({
        "campaign": "crash", "trials": results.len(), "passed": passed, "kills_by_moment": moments,
        "events_acknowledged": sum(|t| t.ledger.acknowledged), "acknowledged_found": sum(|t| t.ledger.found),
        "lost": sum(|t| t.ledger.lost), "altered": sum(|t| t.ledger.altered),
        "unacknowledged_present": sum(|t| t.ledger.unacknowledged_present),
        "unexplained_present": sum(|t| t.ledger.unexplained_present),
        "duplicates_stored": sum(|t| t.ledger.duplicates_stored),
        "resends": resends, "retries": retries, "decisions": decisions,
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
        Ok((outcomes, checked)) => {
            verify(setup, &dir, &world, &launch(vec![]), outcomes, checked, &mut rng, &mut trial)
        }
        Err(e) => trial.problems.push(e),
    }
    trial.seconds = started.elapsed().as_secs_f64();
    if trial.passed() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    trial
}

/// Starts the gate, writes and checks, and kills it at `moment`; returns
/// what the writers and the checkers saw.
fn kill_during(
    settings: &Settings,
    world: &World,
    launch: &dyn Fn(Vec<String>) -> Launch,
    moment: Moment,
    rng: &mut Rng,
    trial: &mut Trial,
) -> Result<(Outcomes, Checked), String> {
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
    let sanctioned = writers::append_all(gate.admin, &Sanctioned(world).events())?;
    let sanctions_seq = sanctioned.acked.iter().map(|(seq, _)| *seq).max().unwrap_or(0);
    outcomes.merge(sanctioned);
    let stop = Arc::new(AtomicBool::new(false));
    let nonce = format!("t{}", trial.trial);
    let pace =
        Pace { per_request: 1, requests_per_s: None, stop_on_error: true, resend_percent: settings.resend.percent };
    let handles = writers::start(gate.admin, world, &nonce, settings.writers, rng.next_u64(), pace, stop.clone());
    let checking = checkers::start(gate.check, world, settings.checkers, rng.next_u64(), sanctions_seq, stop);
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
    let checked = checkers::join(checking);
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
    Ok((outcomes, checked))
}

/// Restarts the gate, retries the events whose answer the kill swallowed,
/// and checks the ledger, the snapshots, the answers and the decision log.
#[allow(clippy::too_many_arguments)]
fn verify(
    setup: &Setup,
    dir: &Path,
    world: &World,
    launch: &Launch,
    mut outcomes: Outcomes,
    mut checked: Checked,
    rng: &mut Rng,
    trial: &mut Trial,
) {
    trial.failed_writes = outcomes.failed.len();
    trial.resends = std::mem::take(&mut outcomes.resends);
    trial.problems.extend(trial.resends.problem());
    let gate = match launch.start() {
        Ok(gate) => gate,
        Err(e) => return trial.problems.push(format!("restart after the kill failed: {e}")),
    };
    let retried = retry(&gate, &mut outcomes, trial);
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
    match checkers::exported(&setup.binary, &dir.join("data")) {
        Ok(records) => {
            verify::plant_decision(setup.plant, &mut checked, trial.trial);
            trial.decisions = DecisionFindings::of(&checked, &records, &mut trial.problems);
        }
        Err(e) => trial.problems.push(e),
    }
    let mut stored = match stored_events(&dir.join("data")) {
        Ok(stored) => stored,
        Err(e) => return trial.problems.push(e),
    };
    verify::plant(setup.plant, &mut stored);
    trial.ledger = LedgerFindings::of(&stored, &outcomes.acked, &outcomes.unknown, &mut trial.problems);
    landed_once(&stored, &retried, trial);
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

/// Retries every event the kill left unanswered, one request each, as a
/// client does after a crash; files each answer in `outcomes` (acknowledged
/// or refused) and returns the retried events with their answers.
fn retry(gate: &crate::gate::Gate, outcomes: &mut Outcomes, trial: &mut Trial) -> Vec<(Value, Answer)> {
    let mut http = Http::new(gate.admin, REQUEST_TIMEOUT);
    let mut retried = Vec::new();
    for event in std::mem::take(&mut outcomes.unknown) {
        trial.retries.retried_after_kill += 1;
        let Some(answer) = writers::send_one(&mut http, &event) else {
            trial.problems.push(format!("the retry of {event} after the restart got no answer"));
            outcomes.unknown.push(event);
            continue;
        };
        match &answer {
            Answer::Acked { seq, already_recorded } => {
                if *already_recorded {
                    trial.retries.retried_already_stored += 1;
                } else {
                    trial.retries.retried_stored_now += 1;
                }
                outcomes.acked.push((*seq, event.clone()));
            }
            Answer::Refused(_) => {
                trial.retries.retried_refused += 1;
                outcomes.refused += 1;
            }
            Answer::Failed(why) => {
                trial.problems.push(format!("the retry of {event} after the restart failed: {why}"));
                outcomes.failed.push(why.clone());
            }
        }
        retried.push((event, answer));
    }
    retried
}

/// Each acknowledged retry is on the ledger exactly once, at its answered
/// seq, identical; a refused one not at all (R7a).
fn landed_once(stored: &[claimgate::event::RecordedEvent], retried: &[(Value, Answer)], trial: &mut Trial) {
    let mut seqs_of: std::collections::HashMap<String, Vec<u64>> = std::collections::HashMap::new();
    for r in stored {
        if let Some(key) = identity(&r.event) {
            seqs_of.entry(key).or_default().push(r.seq);
        }
    }
    for (sent, answer) in retried {
        let event = parse_event(sent);
        let seqs = identity(&event).and_then(|k| seqs_of.get(&k)).map(Vec::as_slice).unwrap_or_default();
        match *answer {
            Answer::Acked { seq, .. } => {
                let at = stored.get((seq as usize).wrapping_sub(1)).filter(|r| r.seq == seq);
                if seqs == [seq] && at.is_some_and(|r| r.event == event) {
                    trial.retries.retried_landed_once += 1;
                } else {
                    trial.problems.push(format!("the retry of {sent} answered seq {seq}, stored at {seqs:?}"));
                }
            }
            Answer::Refused(_)
                if seqs.iter().any(|&s| stored.get(s as usize - 1).is_some_and(|r| r.event == event)) =>
            {
                trial.retries.retried_refused_but_stored += 1;
                trial.problems.push(format!("the retry of {sent} was refused, yet it is stored at {seqs:?}"));
            }
            _ => {}
        }
    }
}
