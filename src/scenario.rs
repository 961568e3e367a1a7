//! Conformance scenarios (SCENARIOS.md): load a file, apply its events to a
//! ledger in order, then answer its checks against the resulting state.
//!
//! This module never looks at `expect*` fields: comparing is the test's job.
//! SCENARIOS.md: `name`, `rules` and `expect*` fields are for people and test
//! runners, so [`run`] parses each event and check without its `expect*`
//! keys ([`without_annotations`]; R4 refuses fields an event or claim line
//! does not define). The loaded [`Scenario`] keeps them, as in the file, for
//! the test runners that compare against them.
//!
//! Duplicated keys (R4): the file is read whole by [`claimgate_rules::strict_json`],
//! which records every key an object names twice with its path. One inside
//! an event or a check refuses that event or check (`invalid_request` naming
//! the key), so case files can test it, as any other malformed field is
//! answered; one inside an `expect*` annotation is ignored with it; one
//! anywhere else (two `events` keys, say) fails the file.

use claimgate_rules::claim::parse_line;
use claimgate_rules::domain::Seq;
use claimgate_rules::event::Event;
use claimgate_rules::refusal::{Refusal, RefusalCode};
use claimgate_rules::strict_json::{self, Document, Duplicate, Step, StrictError};
use claimgate_rules::{Reason, Verdict, Waivers, World};
use claimgate_store::ledger::{Ledger, LedgerError};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest scenario file read, in bytes.
pub const MAX_SCENARIO_BYTES: u64 = 64 * 1024 * 1024;

/// A scenario: raw events and checks, parsed one by one when run so that a
/// malformed one is answered with its named error rather than failing the file.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    pub name: Option<String>,
    /// The events as in the file, `expect*` annotations included: parse
    /// [`without_annotations`].
    pub events: Vec<Value>,
    /// The checks as in the file, likewise.
    pub checks: Vec<Value>,
    /// The keys named twice inside event `i` (paths relative to it): such an
    /// event is refused whole, and its value (which keeps the first of two
    /// equal keys) must not be used.
    pub event_duplicates: BTreeMap<usize, Vec<Duplicate>>,
    /// Likewise for check `i`.
    pub check_duplicates: BTreeMap<usize, Vec<Duplicate>>,
}

/// A file that is not a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("scenario {path} is larger than {MAX_SCENARIO_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("scenario {path} is not valid JSON: {source}")]
    Json { path: PathBuf, source: StrictError },
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
        let document =
            strict_json::parse(&text).map_err(|source| ScenarioError::Json { path: path.to_owned(), source })?;
        Scenario::from_document(document).map_err(|message| ScenarioError::Shape { path: path.to_owned(), message })
    }

    /// Shape-checks a parsed scenario document (one with no duplicated keys).
    pub fn from_value(value: Value) -> Result<Scenario, String> {
        Scenario::from_document(Document { value, duplicates: Vec::new() })
    }

    /// Shape-checks a scenario document read by [`strict_json::parse`]: a key
    /// named twice inside an event or check is kept for [`run`] to refuse
    /// that one; anywhere else it is not a scenario.
    pub fn from_document(document: Document) -> Result<Scenario, String> {
        let Document { value, duplicates } = document;
        let Value::Object(mut doc) = value else { return Err("the top level is not a JSON object".into()) };
        let mut list = |key: &str| match doc.remove(key) {
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(format!("`{key}` is not an array")),
            None => Err(format!("`{key}` is missing")),
        };
        let events = list("events")?;
        let checks = list("checks")?;
        let name = doc.get("name").and_then(Value::as_str).map(str::to_owned);
        let (event_duplicates, rest) = strict_json::split_elements(duplicates, &[Step::Key("events".into())]);
        let (check_duplicates, rest) = strict_json::split_elements(rest, &[Step::Key("checks".into())]);
        if let Some(d) = rest.first() {
            return Err(d.message());
        }
        let unannotated = |mut found: BTreeMap<usize, Vec<Duplicate>>| {
            found.values_mut().for_each(|d| d.retain(|d| !is_annotation(d)));
            found.retain(|_, d| !d.is_empty());
            found
        };
        Ok(Scenario {
            name,
            events,
            checks,
            event_duplicates: unannotated(event_duplicates),
            check_duplicates: unannotated(check_duplicates),
        })
    }
}

/// Whether a key is a test runner's annotation (SCENARIOS.md: `expect*`).
fn is_annotation_key(key: &str) -> bool {
    key.starts_with("expect")
}

/// Removes the `expect*` annotations of one event or check.
pub fn strip_annotations(item: &mut Value) {
    if let Value::Object(map) = item {
        map.retain(|k, _| !is_annotation_key(k));
    }
}

/// One event or check as the project reads it: without its `expect*` annotations.
pub fn without_annotations(item: &Value) -> Value {
    let mut item = item.clone();
    strip_annotations(&mut item);
    item
}

/// Whether a duplicate found in an event or check (its path relative to
/// that item) lies in an `expect*` annotation, which is ignored with it.
pub fn is_annotation(d: &Duplicate) -> bool {
    match d.path.first() {
        None => is_annotation_key(&d.key),
        Some(Step::Key(k)) => is_annotation_key(k),
        Some(Step::Index(_)) => false,
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
        let duplicated = scenario.event_duplicates.get(&index).and_then(|d| d.first());
        let parsed = duplicated
            .map_or_else(|| Event::parse(&without_annotations(raw), ledger.policy()), |d| Err(duplicate_refusal(d)));
        let outcome = match parsed {
            Err(refusal) => Err(refusal),
            Ok(event) => match ledger.append(&event) {
                Ok(appended) => Ok(appended.seq),
                Err(claimgate_store::ledger::AppendError::Refused(refusal)) => Err(refusal),
                Err(claimgate_store::ledger::AppendError::Ledger(e)) => return Err(e),
            },
        };
        lines.push(match outcome {
            Ok(seq) => ReplayLine::Accepted { event: index, seq },
            Err(refusal) => ReplayLine::Refused { event: index, error: refusal.code, refusal },
        });
    }
    let world = World::from_events(&ledger.all_events()?, ledger.policy());
    for (index, raw) in scenario.checks.iter().enumerate() {
        let duplicated = scenario.check_duplicates.get(&index).map_or(&[][..], Vec::as_slice);
        lines.push(match parse_line(&without_annotations(raw), duplicated).map(|line| line.claim) {
            Ok(claim) => {
                let d = world.decide(&claim);
                ReplayLine::Answered { check: index, verdict: d.verdict, reason: d.reason, waived: d.waived }
            }
            Err(refusal) => ReplayLine::BadCheck { check: index, error: refusal.code, refusal },
        });
    }
    Ok(lines)
}

/// `invalid_request` naming a key an event names twice (R4).
fn duplicate_refusal(d: &Duplicate) -> Refusal {
    Refusal::invalid(&d.key, d.message())
}
