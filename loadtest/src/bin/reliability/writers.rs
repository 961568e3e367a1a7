//! Admin writers shared by the campaigns: each thread appends its own event
//! stream through `POST /v1/events` and records, for every event, what the
//! gate said: acknowledged with a `seq`, refused (R4/R8), or unknown (the
//! connection failed before an answer: the event may or may not be stored).

use crate::gate::TOKEN;
use crate::http::Http;
use crate::model::{World, Writer};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest one admin request may take before the writer gives up on it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What one writer's events came to.
#[derive(Default)]
pub struct Outcomes {
    pub acked: Vec<(u64, Value)>,
    pub refused: u64,
    /// Sent without an answer (the gate died, or the connection failed).
    pub unknown: Vec<Value>,
    /// Answers that were neither an acknowledgement nor a refusal (e.g. 503).
    pub failed: Vec<String>,
}

impl Outcomes {
    pub fn merge(&mut self, other: Outcomes) {
        self.acked.extend(other.acked);
        self.refused += other.refused;
        self.unknown.extend(other.unknown);
        self.failed.extend(other.failed);
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
            let mut stream = Writer::new(world, nonce, w, seed.wrapping_add(w as u64 * 7919));
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut http = Http::new(admin, WRITE_TIMEOUT);
                let mut out = Outcomes::default();
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
                    let events: Vec<Value> = (0..pace.per_request).map(|_| stream.next_event()).collect();
                    let body = if pace.per_request == 1 {
                        events[0].to_string()
                    } else {
                        Value::from(events.clone()).to_string()
                    };
                    match http.send("POST", "/v1/events", Some(TOKEN), body.as_bytes()) {
                        Ok(r) => record(&mut out, r.status, &r.json(), events),
                        Err(_) => {
                            out.unknown.extend(events);
                            if pace.stop_on_error {
                                break;
                            }
                        }
                    }
                }
                out
            })
        })
        .collect()
}

/// Files one answer's outcomes.
fn record(out: &mut Outcomes, status: u16, body: &Value, events: Vec<Value>) {
    match (status, body) {
        (200, Value::Array(lines)) if lines.len() == events.len() => {
            for (line, event) in lines.iter().zip(events) {
                match line["seq"].as_u64() {
                    Some(seq) => out.acked.push((seq, event)),
                    None => out.refused += 1,
                }
            }
        }
        (200, _) if events.len() == 1 => match body["seq"].as_u64() {
            Some(seq) => out.acked.push((seq, events.into_iter().next().expect("one event"))),
            None => out.failed.push(format!("200 without a seq: {body}")),
        },
        (400 | 422, _) if events.len() == 1 => out.refused += 1,
        _ => out.failed.push(format!("{status} {body}")),
    }
}

/// Events per request when setting the world up: under both the API's
/// 10,000 events and its 1 MiB body (a registration is about 130 bytes).
const SET_UP_EVENTS_PER_REQUEST: usize = 5_000;

/// Appends the world's designations and first registrations, all of which
/// must be acknowledged; returns them as acknowledged outcomes.
pub fn set_up(admin: SocketAddr, world: &World) -> Result<Outcomes, String> {
    let mut http = Http::new(admin, WRITE_TIMEOUT);
    let mut out = Outcomes::default();
    for chunk in world.setup_events().chunks(SET_UP_EVENTS_PER_REQUEST) {
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
