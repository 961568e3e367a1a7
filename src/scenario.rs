//! Conformance scenarios (SCENARIOS.md): load a file, apply its events to a
//! ledger in order, then answer its checks against the resulting state.
//!
//! This module never looks at `expect*` fields: comparing is the test's job.

use crate::claim::parse_claim;
use crate::domain::Seq;
use crate::event::Event;
use crate::ledger::{Ledger, LedgerError};
use crate::refusal::{Refusal, RefusalCode};
use crate::rules::{Reason, Verdict, Waivers, World};
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Largest scenario file read, in bytes.
pub const MAX_SCENARIO_BYTES: u64 = 64 * 1024 * 1024;

/// A scenario: raw events and checks, parsed one by one when run so that a
/// malformed one is answered with its named error rather than failing the file.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: Option<String>,
    pub events: Vec<Value>,
    pub checks: Vec<Value>,
}

/// A file that is not a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("scenario {path} is larger than {MAX_SCENARIO_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("scenario {path} is not valid JSON: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error(
        "scenario {path} is not a scenario: {message} (see SCENARIOS.md: an object with `events` and `checks` arrays)"
    )]
    Shape { path: PathBuf, message: String },
}

impl Scenario {
    /// Reads and shape-checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let read_err = |source| ScenarioError::Read { path: path.to_owned(), source };
        let len = std::fs::metadata(path).map_err(read_err)?.len();
        if len > MAX_SCENARIO_BYTES {
            return Err(ScenarioError::TooLarge { path: path.to_owned() });
        }
        let text = std::fs::read(path).map_err(read_err)?;
        let value: Value =
            serde_json::from_slice(&text).map_err(|source| ScenarioError::Json { path: path.to_owned(), source })?;
        Scenario::from_value(value).map_err(|message| ScenarioError::Shape { path: path.to_owned(), message })
    }

    /// Shape-checks a parsed scenario document.
    pub fn from_value(value: Value) -> Result<Scenario, String> {
        let Value::Object(mut doc) = value else { return Err("the top level is not a JSON object".into()) };
        let mut list = |key: &str| match doc.remove(key) {
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(format!("`{key}` is not an array")),
            None => Err(format!("`{key}` is missing")),
        };
        let events = list("events")?;
        let checks = list("checks")?;
        let name = doc.get("name").and_then(Value::as_str).map(str::to_owned);
        Ok(Scenario { name, events, checks })
    }
}

/// One line of `replay` output (SCENARIOS.md "The runner's contract").
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ReplayLine {
    Accepted {
        event: usize,
        seq: Seq,
    },
    Refused {
        event: usize,
        error: RefusalCode,
        #[serde(skip)]
        refusal: Refusal,
    },
    Answered {
        check: usize,
        verdict: Verdict,
        reason: Reason,
        waived: Waivers,
    },
    BadCheck {
        check: usize,
        error: RefusalCode,
        #[serde(skip)]
        refusal: Refusal,
    },
}

impl ReplayLine {
    /// The line as compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("replay lines serialize")
    }
}

/// Applies the scenario's events to `ledger` in order, then answers its
/// checks from the state the ledger now holds.
pub fn run(scenario: &Scenario, ledger: &Ledger) -> Result<Vec<ReplayLine>, LedgerError> {
    let mut lines = Vec::with_capacity(scenario.events.len() + scenario.checks.len());
    for (index, raw) in scenario.events.iter().enumerate() {
        let outcome = match Event::parse(&as_sent(raw), ledger.policy()) {
            Err(refusal) => Err(refusal),
            Ok(event) => match ledger.append(&event) {
                Ok(appended) => Ok(appended.seq),
                Err(crate::ledger::AppendError::Refused(refusal)) => Err(refusal),
                Err(crate::ledger::AppendError::Ledger(e)) => return Err(e),
            },
        };
        lines.push(match outcome {
            Ok(seq) => ReplayLine::Accepted { event: index, seq },
            Err(refusal) => ReplayLine::Refused { event: index, error: refusal.code, refusal },
        });
    }
    let world = World::from_events(&ledger.all_events()?, ledger.policy());
    for (index, raw) in scenario.checks.iter().enumerate() {
        lines.push(match parse_claim(&as_sent(raw)) {
            Ok(claim) => {
                let d = world.decide(&claim);
                ReplayLine::Answered { check: index, verdict: d.verdict, reason: d.reason, waived: d.waived }
            }
            Err(refusal) => ReplayLine::BadCheck { check: index, error: refusal.code, refusal },
        });
    }
    Ok(lines)
}

/// A scenario's event or check as a client sends it: without the `expect*`
/// fields that are for test runners (SCENARIOS.md), which the parsers
/// refuse as unknown (R4).
pub fn as_sent(raw: &Value) -> Value {
    match raw {
        Value::Object(fields) => Value::Object(
            fields.iter().filter(|(k, _)| !k.starts_with("expect")).map(|(k, v)| (k.clone(), v.clone())).collect(),
        ),
        other => other.clone(),
    }
}
