//! Checker clients of the crash campaign (issue 13): while the writers
//! append and the gate is killed, each thread sends claim lines to the check
//! listener, as single `POST /v1/check` requests and as batches
//! (`POST /v1/check/batch`), every line with a `claim_id` unique in the
//! trial (a string, or for one line in [`NUMERIC_CLAIM_ID_EVERY`] a number,
//! which the decision log must keep a number). The mix is emergency-heavy:
//! [`EMERGENCY_PERCENT`] of the lines are emergencies, most of them for
//! practitioners the set-up terminated (answered `emergency_exemption`), and
//! [`REJECT_PERCENT`] are lines that must be rejected (the terminated
//! practitioners without an emergency, or practitioners never registered).
//! Every line answered `emergency_exemption` or `reject` is recorded; after
//! the restart [`DecisionFindings::of`] holds them against the decision log
//! as `claimgate audit export` reads it from its segments: R19 says each was
//! recorded before it was answered, so none may be missing after a kill -9.

use crate::http::Http;
use crate::model::{Rng, World};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Longest one check request may take before the checker gives up on it.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// Percent of lines flagged `emergency: true`.
pub const EMERGENCY_PERCENT: u64 = 25;
/// Of those, percent (of all lines) for a terminated practitioner: exemptions.
const EXEMPTION_PERCENT: u64 = 18;
/// Percent of lines that must be rejected (terminated without an emergency,
/// or never registered).
pub const REJECT_PERCENT: u64 = 10;
/// Percent of requests that are batches (the rest single lines).
const BATCH_PERCENT: u64 = 30;
/// Most lines in one batch.
const MAX_BATCH_LINES: u64 = 64;
/// Every this many lines one carries a numeric `claim_id`.
const NUMERIC_CLAIM_ID_EVERY: u64 = 10;
/// Practitioners the set-up terminates, at an institution of their own
/// (outside the writers' range, so no writer event touches either).
const SANCTIONED: u64 = 8;
/// The service date of lines for them: inside their termination.
const SANCTIONED_SERVICE_DATE: &str = "2024-06-15";
/// Samples of missing or altered records kept per trial.
const SAMPLES: usize = 3;

/// The practitioners and the institution the set-up terminates (R15: 8 then
/// 4 points in 2024 reach 12), beyond the world's own codes.
pub struct Sanctioned<'w>(pub &'w World);

impl Sanctioned<'_> {
    fn practitioner(&self, k: u64) -> String {
        self.0.practitioner(self.0.practitioners + k)
    }

    fn institution(&self) -> String {
        self.0.institution(self.0.institutions)
    }

    /// A practitioner code the world never registers.
    fn unknown(&self, k: u64) -> String {
        self.0.practitioner(self.0.practitioners + SANCTIONED + 1 + k)
    }

    /// Their designation, registrations and violations, in an order R8 accepts.
    pub fn events(&self) -> Vec<Value> {
        let h = self.institution();
        let mut events = vec![json!({"type": "institution_designated", "institution": h, "effective": "2019-01-01"})];
        for k in 0..SANCTIONED {
            let p = self.practitioner(k);
            events.push(json!({"type": "practitioner_registered", "practitioner": p, "institution": h,
                "effective": "2019-01-01"}));
            events.push(json!({"type": "violation_scored", "violation_id": format!("sanction-{k}-a"),
                "practitioner": p, "institution": h, "effective": "2024-02-01", "points": 8,
                "severity": "serious", "responsibility": "primary"}));
            events.push(json!({"type": "violation_scored", "violation_id": format!("sanction-{k}-b"),
                "practitioner": p, "institution": h, "effective": "2024-03-01", "points": 4,
                "severity": "moderate", "responsibility": "important"}));
        }
        events
    }

    /// One claim line of the campaign's mix (without its `claim_id`).
    fn line(&self, rng: &mut Rng) -> Value {
        let roll = rng.below(100);
        let sanctioned = |rng: &mut Rng, emergency: bool| {
            json!({"practitioner_id": self.practitioner(rng.below(SANCTIONED)), "institution_id": self.institution(),
                "service_date": SANCTIONED_SERVICE_DATE, "emergency": emergency})
        };
        if roll < EXEMPTION_PERCENT {
            sanctioned(rng, true)
        } else if roll < EMERGENCY_PERCENT {
            // Emergencies for the world's own practitioners: mostly ok.
            let mut line = self.0.claim(rng);
            line["emergency"] = json!(true);
            line
        } else if roll < EMERGENCY_PERCENT + REJECT_PERCENT / 2 {
            sanctioned(rng, false)
        } else if roll < EMERGENCY_PERCENT + REJECT_PERCENT {
            json!({"practitioner_id": self.unknown(rng.below(SANCTIONED)), "institution_id": self.institution(),
                "service_date": SANCTIONED_SERVICE_DATE, "emergency": false})
        } else {
            let mut line = self.0.claim(rng);
            line["emergency"] = json!(false);
            line
        }
    }
}

/// A line answered `emergency_exemption` or `reject`: its `claim_id` as
/// sent, and the answer's reason.
#[derive(Clone, Debug)]
pub struct Decision {
    pub claim_id: Value,
    pub reason: String,
}

/// What one checker's lines came to.
#[derive(Default)]
pub struct Checked {
    pub lines_sent: u64,
    pub lines_answered: u64,
    pub exemptions: Vec<Decision>,
    pub rejects: Vec<Decision>,
    /// Exemptions answered 503 `audit_unavailable` (not settled, so not owed a record).
    pub exemptions_refused: u64,
    /// Answers that were neither a decision nor a refusal (e.g. another 503), as samples.
    pub failed: Vec<String>,
}

impl Checked {
    pub fn merge(&mut self, other: Checked) {
        self.lines_sent += other.lines_sent;
        self.lines_answered += other.lines_answered;
        self.exemptions.extend(other.exemptions);
        self.rejects.extend(other.rejects);
        self.exemptions_refused += other.exemptions_refused;
        self.failed.extend(other.failed);
    }

    /// Files one answered line.
    fn file(&mut self, claim_id: &Value, answer: &Value) {
        self.lines_answered += 1;
        let decision =
            || Decision { claim_id: claim_id.clone(), reason: answer["reason"].as_str().unwrap_or("").into() };
        match (answer["verdict"].as_str(), answer["reason"].as_str(), answer["error"].as_str()) {
            (Some("settle"), Some("emergency_exemption"), _) => self.exemptions.push(decision()),
            (Some("reject"), _, _) => self.rejects.push(decision()),
            (Some(_), _, _) => {}
            (_, _, Some("audit_unavailable")) => self.exemptions_refused += 1,
            _ => {
                if self.failed.len() < SAMPLES {
                    self.failed.push(format!("{claim_id}: {answer}"));
                }
            }
        }
    }
}

/// Starts `checkers` threads sending lines to `check` (each at least at
/// `min_seq`, so the set-up's sanctions are in the index) until `stop` is
/// set or the first failed connection (the kill); join them for what they saw.
pub fn start(
    check: SocketAddr,
    world: &World,
    checkers: usize,
    seed: u64,
    min_seq: u64,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Checked>> {
    (0..checkers)
        .map(|c| {
            let world = world.clone();
            let stop = stop.clone();
            let mut rng = Rng::new(seed.wrapping_add(c as u64 * 104_729));
            std::thread::spawn(move || {
                let sanctioned = Sanctioned(&world);
                let mut http = Http::new(check, CHECK_TIMEOUT);
                let mut out = Checked::default();
                let mut n = 0u64;
                let mut claim_id = || {
                    n += 1;
                    if n.is_multiple_of(NUMERIC_CLAIM_ID_EVERY) {
                        json!((c as u64 + 1) * 1_000_000_000 + n)
                    } else {
                        json!(format!("c{c}-{n}"))
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    let batch = rng.chance(10 * BATCH_PERCENT);
                    let count = if batch { 1 + rng.below(MAX_BATCH_LINES) } else { 1 };
                    let lines: Vec<Value> = (0..count)
                        .map(|_| {
                            let mut line = sanctioned.line(&mut rng);
                            line["claim_id"] = claim_id();
                            line
                        })
                        .collect();
                    out.lines_sent += count;
                    let sent = if batch {
                        let body = json!({"lines": lines, "min_seq": min_seq}).to_string();
                        http.send("POST", "/v1/check/batch", None, body.as_bytes())
                    } else {
                        let mut line = lines[0].clone();
                        line["min_seq"] = json!(min_seq);
                        http.send("POST", "/v1/check", None, line.to_string().as_bytes())
                    };
                    let Ok(reply) = sent else { break };
                    let body = reply.json();
                    if batch {
                        let results = body["results"].as_array().filter(|r| r.len() == lines.len());
                        match results {
                            Some(results) => {
                                for (line, answer) in lines.iter().zip(results) {
                                    out.file(&line["claim_id"], answer);
                                }
                            }
                            None => out.failed.push(format!("batch answered {} {body}", reply.status)),
                        }
                    } else {
                        out.file(&lines[0]["claim_id"], &body);
                    }
                }
                out
            })
        })
        .collect()
}

/// Joins checker threads and merges what they saw.
pub fn join(handles: Vec<std::thread::JoinHandle<Checked>>) -> Checked {
    let mut all = Checked::default();
    for h in handles {
        all.merge(h.join().expect("checker thread panicked"));
    }
    all
}

/// The decision log as `claimgate audit export --data DATA --format jsonl`
/// prints it: one JSON record per line, oldest first.
pub fn exported(binary: &Path, data: &Path) -> Result<Vec<Value>, String> {
    let out = Command::new(binary)
        .args(["audit", "export", "--data"])
        .arg(data)
        .args(["--format", "jsonl"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {} audit export: {e}", binary.display()))?;
    if !out.status.success() {
        return Err(format!(
            "claimgate audit export --data {} failed ({}): {}",
            data.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| format!("audit export printed a line that is not JSON ({e}): {l}"))
        })
        .collect()
}

/// What the decision log says about the lines answered before the kill.
#[derive(Default, Clone, serde::Serialize)]
pub struct DecisionFindings {
    pub check_lines_sent: u64,
    pub check_lines_answered: u64,
    pub exemptions_answered: usize,
    pub rejects_answered: usize,
    /// Exemptions answered 503 `audit_unavailable` instead (never settled).
    pub exemptions_refused: u64,
    /// Answered decisions found in the log, `claim_id` exactly as sent and the same reason.
    pub decisions_found: usize,
    /// Answered exemptions and rejects the log does not hold (must be 0).
    pub exemptions_missing: usize,
    pub rejects_missing: usize,
    /// Found under their `claim_id` with another verdict or reason, or more than once (must be 0).
    pub decisions_altered: usize,
    /// Records in the log (every decision, the restarted gate's too).
    pub records_in_log: usize,
}

impl DecisionFindings {
    /// Holds every answered decision in `checked` against the log's `records`.
    pub fn of(checked: &Checked, records: &[Value], problems: &mut Vec<String>) -> DecisionFindings {
        let mut by_claim: HashMap<String, Vec<&Value>> = HashMap::new();
        for r in records {
            if !r["claim_id"].is_null() {
                // The JSON text is the key: a number and the string of its digits differ.
                by_claim.entry(r["claim_id"].to_string()).or_default().push(r);
            }
        }
        let mut f = DecisionFindings {
            check_lines_sent: checked.lines_sent,
            check_lines_answered: checked.lines_answered,
            exemptions_answered: checked.exemptions.len(),
            rejects_answered: checked.rejects.len(),
            exemptions_refused: checked.exemptions_refused,
            records_in_log: records.len(),
            ..DecisionFindings::default()
        };
        let mut samples = Vec::new();
        for (decision, exemption) in
            checked.exemptions.iter().map(|d| (d, true)).chain(checked.rejects.iter().map(|d| (d, false)))
        {
            let verdict = if exemption { "settle" } else { "reject" };
            match by_claim.get(&decision.claim_id.to_string()).map(Vec::as_slice) {
                None | Some([]) => {
                    if exemption {
                        f.exemptions_missing += 1;
                    } else {
                        f.rejects_missing += 1;
                    }
                    if samples.len() < SAMPLES {
                        samples.push(format!(
                            "{verdict} {} {} not in the decision log",
                            decision.reason, decision.claim_id
                        ));
                    }
                }
                Some([r]) if r["verdict"] == verdict && r["reason"] == decision.reason.as_str() => {
                    f.decisions_found += 1
                }
                Some(found) => {
                    f.decisions_altered += 1;
                    if samples.len() < SAMPLES {
                        samples
                            .push(format!("{verdict} {} {}: logged as {found:?}", decision.reason, decision.claim_id));
                    }
                }
            }
        }
        let missing = f.exemptions_missing + f.rejects_missing;
        if missing + f.decisions_altered > 0 {
            problems.push(format!(
                "decision log: {} answered exemptions and {} answered rejects missing, {} altered: {}",
                f.exemptions_missing,
                f.rejects_missing,
                f.decisions_altered,
                samples.join("; ")
            ));
        }
        if !checked.failed.is_empty() {
            problems.push(format!("check lines answered neither a decision nor a refusal: {:?}", checked.failed));
        }
        f
    }

    pub fn merge(&mut self, o: &DecisionFindings) {
        self.check_lines_sent += o.check_lines_sent;
        self.check_lines_answered += o.check_lines_answered;
        self.exemptions_answered += o.exemptions_answered;
        self.rejects_answered += o.rejects_answered;
        self.exemptions_refused += o.exemptions_refused;
        self.decisions_found += o.decisions_found;
        self.exemptions_missing += o.exemptions_missing;
        self.rejects_missing += o.rejects_missing;
        self.decisions_altered += o.decisions_altered;
        self.records_in_log += o.records_in_log;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(claim_id: Value, reason: &str) -> Decision {
        Decision { claim_id, reason: reason.into() }
    }

    #[test]
    fn a_decision_answered_but_not_logged_or_logged_otherwise_is_found() {
        let checked = Checked {
            exemptions: vec![decision(json!("a"), "emergency_exemption"), decision(json!(7), "emergency_exemption")],
            rejects: vec![
                decision(json!("b"), "practitioner_terminated"),
                decision(json!("c"), "practitioner_terminated"),
            ],
            ..Checked::default()
        };
        let records = vec![
            json!({"claim_id": "a", "verdict": "settle", "reason": "emergency_exemption"}),
            // The number 7 logged as the string "7" is not the claim as sent.
            json!({"claim_id": "7", "verdict": "settle", "reason": "emergency_exemption"}),
            json!({"claim_id": "b", "verdict": "reject", "reason": "practitioner_not_registered"}),
        ];
        let mut problems = Vec::new();
        let f = DecisionFindings::of(&checked, &records, &mut problems);
        assert_eq!((f.decisions_found, f.exemptions_missing, f.rejects_missing, f.decisions_altered), (1, 1, 1, 1));
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn the_sanctioned_events_and_lines_use_codes_outside_the_writers_world() {
        let world = World::new(200, 10);
        let s = Sanctioned(&world);
        let mut rng = Rng::new(1);
        let (mut emergency, mut sanctioned_lines) = (0, 0);
        for _ in 0..10_000 {
            let line = s.line(&mut rng);
            emergency += u64::from(line["emergency"] == true);
            sanctioned_lines += u64::from(line["institution_id"] == s.institution().as_str());
        }
        assert!((2_300..2_700).contains(&emergency), "{emergency} emergency lines of 10,000");
        assert!(sanctioned_lines >= 2_600, "{sanctioned_lines}");
        assert_eq!(s.events().len() as u64, 1 + 3 * SANCTIONED);
        assert_eq!(world.practitioner(199), "D110105000199");
        assert_eq!(s.practitioner(0), "D110105000200");
        assert_eq!(s.institution(), "H11010500010");
    }
}
