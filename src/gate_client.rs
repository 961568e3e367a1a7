//! `claimgate import --gate URL`: the import's events sent to a running
//! gate's admin API (`POST /v1/events`) instead of a ledger opened here, for
//! the ledger a serving embedded gate holds locked (or any gate's, from
//! another machine).
//!
//! Each import batch goes as JSON arrays of at most [`MAX_EVENTS_PER_REQUEST`]
//! events and [`MAX_REQUEST_BYTES`] of body, the admin API's own limits; the
//! gate judges every event (R8) and answers each with its `seq` or its
//! refusal, which the import reports as it would its own. A request the gate
//! refuses as `busy` (503: it stored nothing) is sent again after a pause,
//! at most [`MAX_BUSY_RETRIES`] times; any other failure stops the import,
//! naming it. Re-sending rows is safe (R7a): a row's events carry
//! content-derived `event_id`s, so a rerun adds nothing already there.

use crate::import::Sink;
use claimgate::event::Event;
use claimgate::ledger::Appended;
use claimgate::policy::Policy;
use claimgate::refusal::{Refusal, RefusalCode};
use serde_json::Value;
use std::time::Duration;

/// Most events one request carries (the admin API's batch limit).
pub const MAX_EVENTS_PER_REQUEST: usize = claimgate::server::MAX_EVENTS_PER_REQUEST;
/// Most body bytes one request carries (the admin API's body limit).
pub const MAX_REQUEST_BYTES: usize = claimgate::server::MAX_BODY_BYTES;
/// How often a `busy` request is sent again before the import gives up.
pub const MAX_BUSY_RETRIES: u32 = 20;
/// The first pause after `busy`; doubled each time, at most [`MAX_BUSY_PAUSE`].
const FIRST_BUSY_PAUSE: Duration = Duration::from_millis(50);
const MAX_BUSY_PAUSE: Duration = Duration::from_secs(2);
/// Longest one request may take, connect to answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Why the gate could not take an import's events.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("--gate {url}: {message}")]
    Failed { url: String, message: String },
}

/// A running gate's admin API, as the import's destination.
pub struct Gate {
    url: String,
    authorization: String,
    agent: ureq::Agent,
    policy: Policy,
}

impl Gate {
    /// The gate at `url` (its admin listener, `http://host:port`), with
    /// `token`; events are parsed under `policy` before they are sent.
    pub fn new(url: &str, token: &str, policy: Policy) -> Result<Gate, GateError> {
        let url = url.trim_end_matches('/').to_owned();
        if !url.starts_with("http://") {
            return Err(GateError::Failed {
                url,
                message: "give the admin listener's address as http://HOST:PORT (the gate speaks plain HTTP; put TLS in front of it with a proxy and point --gate at the proxy's plain side)".into(),
            });
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Gate { url, authorization: format!("Bearer {}", token.trim()), agent, policy })
    }

    fn failed(&self, message: String) -> GateError {
        GateError::Failed { url: self.url.clone(), message }
    }

    /// Sends one array of events; each one's outcome.
    fn send(&self, events: &[&str]) -> Result<Vec<Result<Appended, Refusal>>, GateError> {
        let body = format!("[{}]", events.join(","));
        let endpoint = format!("{}/v1/events", self.url);
        let mut pause = FIRST_BUSY_PAUSE;
        for attempt in 0..=MAX_BUSY_RETRIES {
            let reply = self
                .agent
                .post(&endpoint)
                .header("Authorization", &self.authorization)
                .header("Content-Type", "application/json")
                .send(body.as_bytes())
                .map_err(|e| {
                    self.failed(format!("cannot reach the gate ({e}); is it running, and is this its admin listener?"))
                });
            let mut reply = reply?;
            let status = reply.status().as_u16();
            let text =
                reply.body_mut().read_to_string().map_err(|e| self.failed(format!("reading its answer: {e}")))?;
            let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            match status {
                200 => return self.outcomes(&answer, events.len()),
                503 if answer["error"] == "busy" && attempt < MAX_BUSY_RETRIES => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_BUSY_PAUSE);
                }
                401 | 403 => {
                    return Err(self.failed(format!(
                        "the gate refused the token ({status}): give the admin token in --token-file"
                    )))
                }
                _ => return Err(self.failed(format!("the gate answered {status}: {}", text.trim()))),
            }
        }
        Err(self.failed(format!("the gate stayed busy through {MAX_BUSY_RETRIES} retries; nothing more was sent")))
    }

    /// The gate's answer to an array: one line per event, in order.
    fn outcomes(&self, answer: &Value, sent: usize) -> Result<Vec<Result<Appended, Refusal>>, GateError> {
        let lines = answer
            .as_array()
            .filter(|a| a.len() == sent)
            .ok_or_else(|| self.failed(format!("its answer is not one line per event sent ({sent}): {answer}")))?;
        lines
            .iter()
            .map(|line| {
                if let Some(seq) = line["seq"].as_u64() {
                    return Ok(Ok(Appended { seq, already_recorded: line["already_recorded"] == true }));
                }
                let code = line["error"].as_str().and_then(RefusalCode::from_wire);
                let code =
                    code.ok_or_else(|| self.failed(format!("an answer line is neither a seq nor a refusal: {line}")))?;
                let message = line["message"].as_str().unwrap_or_default();
                Ok(Err(match line["field"].as_str() {
                    Some(field) => Refusal::at(code, field, message),
                    None => Refusal { code, field: None, fields: Vec::new(), message: message.to_owned() },
                }))
            })
            .collect()
    }
}

impl Sink for Gate {
    type Error = GateError;

    fn policy(&self) -> &Policy {
        &self.policy
    }

    fn append_batch(&mut self, events: &[Event]) -> Result<Vec<Result<Appended, Refusal>>, GateError> {
        let bodies: Vec<String> = events.iter().map(Event::to_json).collect();
        let mut outcomes = Vec::with_capacity(events.len());
        let (mut from, mut bytes) = (0, 2);
        for (i, body) in bodies.iter().enumerate() {
            let full = i - from == MAX_EVENTS_PER_REQUEST || bytes + body.len() + 1 > MAX_REQUEST_BYTES;
            if full && i > from {
                let chunk: Vec<&str> = bodies[from..i].iter().map(String::as_str).collect();
                outcomes.extend(self.send(&chunk)?);
                (from, bytes) = (i, 2);
            }
            bytes += body.len() + 1;
        }
        if from < bodies.len() {
            let chunk: Vec<&str> = bodies[from..].iter().map(String::as_str).collect();
            outcomes.extend(self.send(&chunk)?);
        }
        Ok(outcomes)
    }
}
