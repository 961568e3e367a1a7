//! Admin writers shared by the campaigns: each thread appends its own event
//! stream through `POST /v1/events` and records, for every event, what the
//! gate said: acknowledged with a `seq`, refused (R4/R8), or unknown (the
//! connection failed before an answer: the event may or may not be stored).
//!
//! A share of the events a writer sends are re-sends (R7a): an event it sent
//! before and saw acknowledged, sent again as identical JSON, as a client
//! does that is unsure its first send arrived. Each must be answered with
//! the original `seq` and `already_recorded: true`, and store nothing.

use crate::gate::TOKEN;
use crate::http::Http;
use crate::model::{Rng, World, Writer};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest one admin request may take before the writer gives up on it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A re-send picks among the writer's last this many acknowledged events
/// half of the time (a retry soon after), else among all of them.
const RECENT: usize = 64;
/// Failure samples kept per kind.
const SAMPLES: usize = 3;

/// `--resend-percent`, shared by both campaigns.
#[derive(clap::Args, Clone, Copy)]
pub struct ResendArgs {
    /// Percent of writes that re-send an event already acknowledged, as
    /// identical JSON (R7a: answered with the original seq, stored once).
    #[arg(long = "resend-percent", default_value_t = 10)]
    pub percent: u64,
}

impl ResendArgs {
    /// Refuses a share outside 0-100, naming the flag.
    pub fn check(&self) -> Result<(), String> {
        if self.percent > 100 {
            return Err(format!("--resend-percent is {}; it must be 0 to 100", self.percent));
        }
        Ok(())
    }
}

/// What the re-sends of acknowledged events came to (R7a).
#[derive(Default, Clone, serde::Serialize)]
pub struct Resends {
    pub sent: u64,
    /// Answered with the original `seq` and `already_recorded: true`.
    pub answered_original_seq: u64,
    /// Answered with another `seq`: the gate stored a second copy (must be 0).
    pub answered_new_seq: u64,
    /// Answered with the original `seq` but not marked `already_recorded` (must be 0).
    pub not_marked: u64,
    /// Refused, though identical to an accepted event (must be 0).
    pub refused: u64,
    /// Answered with neither a seq nor a refusal (e.g. a 503; must be 0).
    pub failed: u64,
    /// Sent without an answer (the gate was killed); retried like any unanswered event.
    pub unanswered: u64,
    pub samples: Vec<String>,
}

impl Resends {
    pub fn merge(&mut self, other: Resends) {
        self.sent += other.sent;
        self.answered_original_seq += other.answered_original_seq;
        self.answered_new_seq += other.answered_new_seq;
        self.not_marked += other.not_marked;
        self.refused += other.refused;
        self.failed += other.failed;
        self.unanswered += other.unanswered;
        self.samples.extend(other.samples);
        self.samples.truncate(SAMPLES);
    }

    /// Answers that break R7a.
    pub fn wrong(&self) -> u64 {
        self.answered_new_seq + self.not_marked + self.refused + self.failed
    }

    /// What is wrong with the answers, if anything.
    pub fn problem(&self) -> Option<String> {
        (self.wrong() > 0)
            .then(|| format!("{} re-sends not answered with their original seq: {:?}", self.wrong(), self.samples))
    }

    fn file(&mut self, original: u64, answer: &Answer, event: &Value) {
        match *answer {
            Answer::Acked { seq, already_recorded: true } if seq == original => self.answered_original_seq += 1,
            Answer::Acked { seq, .. } if seq == original => self.not_marked += 1,
            Answer::Acked { .. } => self.answered_new_seq += 1,
            Answer::Refused(_) => self.refused += 1,
            Answer::Failed(_) => self.failed += 1,
        }
        if !matches!(answer, Answer::Acked { seq, already_recorded: true } if *seq == original)
            && self.samples.len() < SAMPLES
        {
            self.samples.push(format!("re-send of seq {original} {event}: {answer:?}"));
        }
    }
}

/// What one writer's events came to.
#[derive(Default)]
pub struct Outcomes {
    /// First sends (and retries) answered with a `seq`.
    pub acked: Vec<(u64, Value)>,
    pub refused: u64,
    /// Sent without an answer (the gate died, or the connection failed).
    pub unknown: Vec<Value>,
    /// Answers that were neither an acknowledgement nor a refusal (e.g. 503).
    pub failed: Vec<String>,
    pub resends: Resends,
}

impl Outcomes {
    pub fn merge(&mut self, other: Outcomes) {
        self.acked.extend(other.acked);
        self.refused += other.refused;
        self.unknown.extend(other.unknown);
        self.failed.extend(other.failed);
        self.resends.merge(other.resends);
    }
}

/// How the writers pace themselves, and when they stop.
#[derive(Clone, Copy)]
pub struct Pace {
    /// Stop at the first failed connection (the gate was killed) rather than at `stop` only.
    pub stop_on_error: bool,
    /// Events per request (1: a single event object; more: a JSON array).
    pub per_request: usize,
    /// Requests per second per writer; `None`: as fast as answers come.
    pub requests_per_s: Option<f64>,
    /// Percent of events that re-send an acknowledged one.
    pub resend_percent: u64,
}

/// The gate's answer to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Acked {
        seq: u64,
        already_recorded: bool,
    },
    /// An R4/R8 refusal, by code.
    Refused(String),
    /// Neither (e.g. a 503), as status and body.
    Failed(String),
}

/// The answers to one request of `n` events (`single`: sent as one object).
fn answers(status: u16, body: &Value, n: usize, single: bool) -> Vec<Answer> {
    let acked =
        |v: &Value| v["seq"].as_u64().map(|seq| Answer::Acked { seq, already_recorded: v["already_recorded"] == true });
    let refused = |v: &Value| Answer::Refused(v["error"].as_str().unwrap_or("?").to_owned());
    match (status, body) {
        (200, Value::Array(lines)) if !single && lines.len() == n => {
            lines.iter().map(|line| acked(line).unwrap_or_else(|| refused(line))).collect()
        }
        (200, _) if single => vec![acked(body).unwrap_or_else(|| Answer::Failed(format!("200 without a seq: {body}")))],
        (400 | 422, _) if single => vec![refused(body)],
        _ => vec![Answer::Failed(format!("{status} {body}")); n],
    }
}

/// Sends one event as a single object; `None` if no answer came.
pub fn send_one(http: &mut Http, event: &Value) -> Option<Answer> {
    let reply = http.send("POST", "/v1/events", Some(TOKEN), event.to_string().as_bytes()).ok()?;
    answers(reply.status, &reply.json(), 1, true).pop()
}

/// One writer thread's state: its fresh stream, and which of its
/// acknowledged events it may re-send.
struct Thread {
    stream: Writer,
    rng: Rng,
    out: Outcomes,
}

impl Thread {
    /// The next event: a fresh one, or (at `percent`) the index in
    /// `out.acked` of an acknowledged one to re-send.
    fn next(&mut self, percent: u64) -> (Value, Option<usize>) {
        let acked = self.out.acked.len();
        if acked > 0 && self.rng.chance(10 * percent) {
            let k = if self.rng.chance(500) {
                acked - 1 - self.rng.below(acked.min(RECENT) as u64) as usize
            } else {
                self.rng.below(acked as u64) as usize
            };
            return (self.out.acked[k].1.clone(), Some(k));
        }
        (self.stream.next_event(), None)
    }

    /// Files the answers to one request's events.
    fn file(&mut self, events: Vec<(Value, Option<usize>)>, answers: Option<Vec<Answer>>) {
        let Some(answers) = answers else {
            for (event, resend) in events {
                if resend.is_some() {
                    self.out.resends.sent += 1;
                    self.out.resends.unanswered += 1;
                }
                self.out.unknown.push(event);
            }
            return;
        };
        for ((event, resend), answer) in events.into_iter().zip(answers) {
            if let Some(k) = resend {
                self.out.resends.sent += 1;
                let original = self.out.acked[k].0;
                self.out.resends.file(original, &answer, &event);
                continue;
            }
            match answer {
                Answer::Acked { seq, .. } => self.out.acked.push((seq, event)),
                Answer::Refused(_) => self.out.refused += 1,
                Answer::Failed(why) => self.out.failed.push(why),
            }
        }
    }
}

/// Starts `writers` threads appending to `admin` until `stop` is set or
/// (with `pace.stop_on_error`) the first failed connection; join them for the outcomes.
pub fn start(
    admin: SocketAddr,
    world: &World,
    nonce: &str,
    writers: usize,
    seed: u64,
    pace: Pace,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Outcomes>> {
    (0..writers)
        .map(|w| {
            let seed = seed.wrapping_add(w as u64 * 7919);
            let mut me =
                Thread { stream: Writer::new(world, nonce, w, seed), rng: Rng::new(!seed), out: Outcomes::default() };
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut http = Http::new(admin, WRITE_TIMEOUT);
                let started = Instant::now();
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rate) = pace.requests_per_s {
                        let due = started + Duration::from_secs_f64(sent as f64 / rate);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait.min(Duration::from_millis(50)));
                            continue;
                        }
                    }
                    sent += 1;
                    let events: Vec<(Value, Option<usize>)> =
                        (0..pace.per_request).map(|_| me.next(pace.resend_percent)).collect();
                    let single = pace.per_request == 1;
                    let body = if single {
                        events[0].0.to_string()
                    } else {
                        Value::from(events.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>()).to_string()
                    };
                    let reply = http.send("POST", "/v1/events", Some(TOKEN), body.as_bytes());
                    let answered = reply.as_ref().ok().map(|r| answers(r.status, &r.json(), events.len(), single));
                    let lost = answered.is_none();
                    me.file(events, answered);
                    if lost && pace.stop_on_error {
                        break;
                    }
                }
                me.out
            })
        })
        .collect()
}

/// Events per request when setting the world up: under both the API's
/// 10,000 events and its 1 MiB body (a registration is about 130 bytes).
const SET_UP_EVENTS_PER_REQUEST: usize = 5_000;

/// Appends the world's designations and first registrations, all of which
/// must be acknowledged; returns them as acknowledged outcomes.
pub fn set_up(admin: SocketAddr, world: &World) -> Result<Outcomes, String> {
    append_all(admin, &world.setup_events())
}

/// Appends `events`, all of which must be acknowledged; returns them as
/// acknowledged outcomes.
pub fn append_all(admin: SocketAddr, events: &[Value]) -> Result<Outcomes, String> {
    let mut http = Http::new(admin, WRITE_TIMEOUT);
    let mut out = Outcomes::default();
    for chunk in events.chunks(SET_UP_EVENTS_PER_REQUEST) {
        let body = Value::from(chunk.to_vec()).to_string();
        let reply =
            http.send("POST", "/v1/events", Some(TOKEN), body.as_bytes()).map_err(|e| format!("setup events: {e}"))?;
        let lines = reply.json();
        let lines = lines
            .as_array()
            .filter(|l| l.len() == chunk.len())
            .ok_or_else(|| format!("setup events: {} {lines}", reply.status))?;
        for (line, event) in lines.iter().zip(chunk) {
            let seq = line["seq"].as_u64().ok_or_else(|| format!("setup event refused: {line}"))?;
            out.acked.push((seq, event.clone()));
        }
    }
    Ok(out)
}

/// Joins writer threads and merges their outcomes.
pub fn join(handles: Vec<std::thread::JoinHandle<Outcomes>>) -> Outcomes {
    let mut all = Outcomes::default();
    for h in handles {
        all.merge(h.join().expect("writer thread panicked"));
    }
    all
}
