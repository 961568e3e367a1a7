//! Every conformance scenario in ../shared/spec/cases (SCENARIOS.md), run
//! twice: through the library and through the built binary's `replay`. Each
//! event outcome and each check must match its `expect*` fields.

use claimgate::ledger::Ledger;
use claimgate::policy::Policy;
use claimgate::scenario::{self, Scenario};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

mod common;
use common::{case_files, postgres_url};

/// Compares replay output lines with the scenario's `expect*` fields and
/// returns every mismatch.
fn mismatches(file: &PathBuf, lines: &[Value]) -> Vec<String> {
    let doc: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let events = doc["events"].as_array().unwrap();
    let checks = doc["checks"].as_array().unwrap();
    let mut problems = Vec::new();
    if lines.len() != events.len() + checks.len() {
        problems.push(format!("{} lines for {} events and {} checks", lines.len(), events.len(), checks.len()));
        return problems;
    }
    for (i, event) in events.iter().enumerate() {
        let line = &lines[i];
        if line["event"] != i {
            problems.push(format!("line {i} is {line}, expected event {i}"));
        }
        match event.get("expect_error") {
            Some(code) if line["error"] != *code => {
                problems.push(format!("event {i}: expected error {code}, got {line}"))
            }
            None if !line["seq"].is_u64() => problems.push(format!("event {i}: expected acceptance, got {line}")),
            _ => {}
        }
    }
    for (j, check) in checks.iter().enumerate() {
        let line = &lines[events.len() + j];
        let expect = &check["expect"];
        if let Some(error) = expect.get("error") {
            // A line that is bad input (R4) is answered with its named error.
            if line["check"] != j || line["error"] != *error {
                problems.push(format!("check {j} {check}: expected error {error}, got {line}"));
            }
            continue;
        }
        let waived = expect.get("waived").cloned().unwrap_or(Value::Array(vec![]));
        let answered = match expect.get("error") {
            // SCENARIOS.md: a line that is bad input (R4) expects {"error": "invalid_request"}.
            Some(code) => line["error"] == *code && line.get("verdict").is_none(),
            None => {
                line["verdict"] == expect["verdict"] && line["reason"] == expect["reason"] && line["waived"] == waived
            }
        };
        if line["check"] != j || !answered {
            problems.push(format!("check {j} {check}: got {line}"));
        }
    }
    problems
}

#[test]
fn every_case_passes_through_the_library() {
    let mut failures = Vec::new();
    for file in case_files() {
        let scenario = Scenario::load(&file).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path(), &Policy::default()).unwrap();
        let lines: Vec<Value> = scenario::run(&scenario, &ledger)
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(&l.to_json()).unwrap())
            .collect();
        failures.extend(mismatches(&file, &lines).into_iter().map(|m| format!("{}: {m}", file.display())));
    }
    assert!(failures.is_empty(), "conformance failures:\n{}", failures.join("\n"));
}

#[test]
fn every_case_passes_through_the_replay_command() {
    let mut failures = Vec::new();
    for file in case_files() {
        let output = Command::new(env!("CARGO_BIN_EXE_claimgate")).arg("replay").arg(&file).output().unwrap();
        assert!(
            output.status.success(),
            "replay {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<Value> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("replay printed a non-JSON line {l:?}: {e}")))
            .collect();
        failures.extend(mismatches(&file, &lines).into_iter().map(|m| format!("{}: {m}", file.display())));
    }
    assert!(failures.is_empty(), "conformance failures:\n{}", failures.join("\n"));
}

#[test]
fn every_case_passes_through_the_replay_command_on_postgresql() {
    let Some(url) = postgres_url("the conformance suite through replay on PostgreSQL") else { return };
    let mut failures = Vec::new();
    for file in case_files() {
        let output = Command::new(env!("CARGO_BIN_EXE_claimgate"))
            .args(["replay", "--store", &url])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "replay {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<Value> =
            String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        failures.extend(mismatches(&file, &lines).into_iter().map(|m| format!("{}: {m}", file.display())));
    }
    assert!(failures.is_empty(), "conformance failures on PostgreSQL:\n{}", failures.join("\n"));
}

#[test]
fn replay_refuses_a_file_that_is_not_a_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("not_json.json", "{ this is not json"),
        ("array.json", "[1, 2, 3]"),
        ("no_checks.json", r#"{"events": []}"#),
        ("events_object.json", r#"{"events": {}, "checks": []}"#),
    ];
    for (name, text) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_claimgate")).arg("replay").arg(&path).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}");
        assert!(output.stdout.is_empty(), "{name}: printed {:?}", String::from_utf8_lossy(&output.stdout));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&path.display().to_string()), "{name}: message does not name the file: {stderr}");
    }
    let missing =
        Command::new(env!("CARGO_BIN_EXE_claimgate")).args(["replay", "/nonexistent/case.json"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read scenario"));
}

#[test]
fn replay_answers_malformed_events_and_checks_with_named_errors() {
    let (code, lines, stderr) = replay_text(
        r#"{"events": ["a string", {"type": "institution_designated", "institution": "H11010500001", "effective": "2024-01-01"}],
            "checks": [{"practitioner_id": "D1", "institution_id": "H11010500001", "service_date": "2026-01-01", "emergency": false}]}"#,
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        lines,
        [
            r#"{"event":0,"error":"invalid_request"}"#,
            r#"{"event":1,"seq":1}"#,
            r#"{"check":0,"error":"invalid_request"}"#,
        ]
    );
    assert!(stderr.contains("practitioner_id"), "the message names the field: {stderr}");
}

/// `replay FILE` on `text`: (exit code, stdout lines, stderr).
fn replay_text(text: &str) -> (Option<i32>, Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.json");
    std::fs::write(&path, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_claimgate")).arg("replay").arg(&path).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    (output.status.code(), stdout.lines().map(str::to_owned).collect(), String::from_utf8_lossy(&output.stderr).into())
}

const DESIGNATED: &str =
    r#"{"type": "institution_designated", "institution": "H11010500001", "effective": "2024-01-01""#;
const REGISTERED: &str = r#"{"type": "practitioner_registered", "practitioner": "D110105000001", "institution": "H11010500001", "effective": "2024-01-01""#;
const CHECK: &str = r#"{"practitioner_id": "D110105000001", "institution_id": "H11010500001", "service_date": "2026-01-05", "emergency": false"#;

/// SCENARIOS.md: `name`, `rules` and `expect*` are for people and test
/// runners; loading ignores them, even once R4 refuses fields an event or a
/// line does not define, and even when an annotation names a key twice.
#[test]
fn scenario_annotations_are_ignored_when_events_and_checks_are_loaded() {
    let text = format!(
        r#"{{"name": "n", "rules": ["R4"], "events": [{DESIGNATED}, "expect_error": null, "expect": {{"a": 1, "a": 2}}}},
            {REGISTERED}, "expect_anything": 1}}],
            "checks": [{CHECK}, "expect": {{"verdict": "settle", "verdict": "settle", "reason": "ok"}}}}]}}"#
    );
    let (code, lines, stderr) = replay_text(&text);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        lines,
        [
            r#"{"event":0,"seq":1}"#,
            r#"{"event":1,"seq":2}"#,
            r#"{"check":0,"verdict":"settle","reason":"ok","waived":[]}"#
        ]
    );
}

/// R4 in scenario files: a key named twice inside one event or check
/// refuses that one (`invalid_request`, the key named on standard error), and
/// the others run; so does a check line's unknown field (`minseq`, case 12).
#[test]
fn a_scenario_event_or_check_naming_a_key_twice_is_refused_alone_r4() {
    let text = format!(
        r#"{{"events": [{DESIGNATED}, "type": "violation_revoked"}}, {DESIGNATED}}}, {REGISTERED}}}],
            "checks": [{CHECK}, "emergency": true}}, {CHECK}, "minseq": 1}}, {CHECK}}}]}}"#
    );
    let (code, lines, stderr) = replay_text(&text);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        lines,
        [
            r#"{"event":0,"error":"invalid_request"}"#,
            r#"{"event":1,"seq":1}"#,
            r#"{"event":2,"seq":2}"#,
            r#"{"check":0,"error":"invalid_request"}"#,
            r#"{"check":1,"error":"invalid_request"}"#,
            r#"{"check":2,"verdict":"settle","reason":"ok","waived":[]}"#,
        ]
    );
    assert!(stderr.contains("`type`") && stderr.contains("`emergency`") && stderr.contains("`minseq`"), "{stderr}");
}

/// A key named twice outside every event and check (two `events` lists)
/// makes the file ambiguous: it is not a scenario, and nothing runs.
#[test]
fn a_scenario_naming_a_top_level_key_twice_is_not_a_scenario() {
    let text = format!(r#"{{"events": [{DESIGNATED}}}], "events": [], "checks": []}}"#);
    let (code, lines, stderr) = replay_text(&text);
    assert_eq!(code, Some(2), "{lines:?}");
    assert!(lines.is_empty(), "{lines:?}");
    assert!(stderr.contains("`events`") && stderr.contains("more than once"), "{stderr}");
}

/// `claimgate append` reads strictly too (R4): an event naming a key twice
/// is refused on its own, naming it; a scenario file's annotations are dropped.
#[test]
fn append_refuses_an_event_naming_a_key_twice_and_ignores_scenario_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.json");
    std::fs::write(
        &input,
        format!(r#"{{"events": [{DESIGNATED}, "effective": "2025-01-01"}}, {DESIGNATED}, "expect_error": null}}]}}"#),
    )
    .unwrap();
    let data = dir.path().join("data");
    let output = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args(["append", "--init", "--data"])
        .arg(&data)
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // One event refused: the documented exit code 3, the rest appended.
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [r#"{"event":0,"error":"invalid_request"}"#, r#"{"event":1,"seq":1}"#]
    );
    assert!(stderr.contains("`effective`"), "{stderr}");
}
