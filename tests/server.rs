//! The HTTP gate end to end: the real `claimgate serve` binary on loopback
//! ports, driven over real sockets by the tiny HTTP/1.1 client of
//! `common/server.rs` (one request per connection, `Connection: close`, read
//! to EOF). Hostile clients (slow, idle, pipelined, malformed) are in
//! `hostile.rs`.
//!
//! Every server runs in its own temporary data directory and is killed when
//! its guard drops, even when a test panics; every socket has read and write
//! timeouts, so no test can hang.
//!
//! (Over 600 lines: a test file, its length is the API's behaviours.)
#![cfg(unix)]

mod common;
use common::server::*;
use common::{case_files, postgres_url, PgSchema};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The server's body limit (crates/gate/src/config.rs MAX_BODY_BYTES).
const MAX_BODY: usize = 1024 * 1024;
/// Most lines in one check batch and most events in one events request.
const MAX_BATCH: usize = 10_000;

// ---------------------------------------------------------------------------
// Conformance cases and `replay`.

/// What `claimgate replay FILE` prints, one JSON value per line.
fn replay(file: &Path) -> Vec<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_claimgate")).arg("replay").arg(file).output().unwrap();
    assert!(output.status.success(), "replay {} failed: {}", file.display(), String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("replay printed a non-JSON line {l:?}: {e}")))
        .collect()
}

/// `value` without the test-runner keys (`expect`, `expect_error`): what a real client sends.
fn without_expectations(value: &Value) -> Value {
    let mut value = value.clone();
    if let Some(map) = value.as_object_mut() {
        map.remove("expect");
        map.remove("expect_error");
    }
    value
}

// ---------------------------------------------------------------------------
// The tests.

/// SCENARIOS.md: "the same events sent to the running server's event API, and
/// the same checks sent to its check API, must give the same answers" as
/// `replay` (R5 seqs, R8 error codes, R17-R19 verdicts, reasons and waivers);
/// and a batch answers exactly as the single checks do.
#[test]
fn every_conformance_case_answers_over_http_exactly_as_replay_does() {
    assert_every_case_answers_over_http_as_replay(None);
}

/// Issue 7: the same on the PostgreSQL ledger, each case in a schema of its own.
#[test]
fn every_conformance_case_answers_over_http_on_postgresql_as_replay_does() {
    let Some(server) = postgres_url("the conformance suite over HTTP on PostgreSQL") else { return };
    assert_every_case_answers_over_http_as_replay(Some(&server));
}

/// Runs every spec case through a fresh `serve` (on the embedded ledger, or
/// on a fresh schema of `postgres` when given) and compares each answer with
/// `replay`'s.
fn assert_every_case_answers_over_http_as_replay(postgres: Option<&str>) {
    let mut failures = Vec::new();
    for file in case_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let events = doc["events"].as_array().unwrap_or_else(|| panic!("{name}: no events"));
        let checks = doc["checks"].as_array().unwrap_or_else(|| panic!("{name}: no checks"));
        let lines = replay(&file);
        assert_eq!(lines.len(), events.len() + checks.len(), "{name}: replay printed {lines:?}");

        let dir = tempfile::tempdir().unwrap();
        let schema = postgres.map(|url| PgSchema::new(url, "http_case"));
        let store = schema.as_ref().map(|s| s.url());
        let args: Vec<&str> = store.iter().flat_map(|url| ["--store", url.as_str()]).collect();
        let server = Server::start(dir.path(), &args);
        assert_eq!(server.start_seq, 0, "{name}: a fresh ledger starts at seq 0");
        let mut head = 0;
        for (i, event) in events.iter().enumerate() {
            let reply = server.admin_post("/v1/events", &without_expectations(event));
            let line = &lines[i];
            match (line["seq"].as_u64(), line["error"].as_str()) {
                (Some(seq), _) => {
                    // R7a: a re-send answers an earlier seq and says so.
                    let expected =
                        if seq <= head { json!({"seq": seq, "already_recorded": true}) } else { json!({"seq": seq}) };
                    if reply.status != 200 || reply.json() != expected {
                        failures.push(format!(
                            "{name} event {i}: replay {line}, server {} {}",
                            reply.status,
                            reply.text()
                        ));
                    }
                    head = head.max(seq);
                }
                (None, Some(code)) => {
                    let status = if code == "invalid_request" { 400 } else { 422 };
                    let body = reply.json();
                    if reply.status != status || body["error"] != code || !body["message"].is_string() {
                        failures.push(format!("{name} event {i}: replay {line}, server {} {body}", reply.status));
                    }
                }
                _ => panic!("{name}: unexpected replay line {line}"),
            }
        }
        assert_eq!(server.ledger_head(), head, "{name}: refused events left no trace (R8)");

        let sent: Vec<Value> = checks
            .iter()
            .map(|c| {
                let mut c = without_expectations(c);
                if let Some(map) = c.as_object_mut() {
                    map.insert("min_seq".into(), json!(head));
                }
                c
            })
            .collect();
        let mut singles = Vec::new();
        for (j, check) in sent.iter().enumerate() {
            let reply = server.check(check);
            let line = &lines[events.len() + j];
            let body = reply.json();
            let same = match line["error"].as_str() {
                None => {
                    reply.status == 200
                        && body["verdict"] == line["verdict"]
                        && body["reason"] == line["reason"]
                        && body["waived"] == line["waived"]
                        && body["seq"] == head
                }
                Some(code) => reply.status == 400 && body["error"] == code,
            };
            if !same {
                failures.push(format!("{name} check {j}: replay {line}, server {} {body}", reply.status));
            }
            singles.push(body);
        }

        let reply = server.batch(&json!({"lines": sent}));
        assert_eq!(reply.status, 200, "{name}: batch: {}", reply.text());
        let batch = reply.json();
        assert_eq!(batch["seq"], head, "{name}: batch seq");
        if batch["results"] != Value::Array(singles.clone()) {
            failures.push(format!("{name}: batch {} differs from single checks {singles:?}", batch["results"]));
        }
    }
    assert!(failures.is_empty(), "server and replay disagree:\n{}", failures.join("\n"));
}

/// The admin listener needs `Authorization: Bearer <token>`; anything else is
/// 401 `unauthorized` and writes nothing (R5: no seq is spent). The two
/// listeners do not share routes.
#[test]
fn admin_requests_without_the_right_bearer_token_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let event = designated(INST, "2024-01-01");
    let refused: [(&str, Option<String>); 7] = [
        ("no header", None),
        ("wrong token, same length", Some(bearer("test-tokeN"))),
        ("shorter token", Some(bearer("test"))),
        ("longer token", Some(bearer("test-token-and-more"))),
        ("empty token", Some("Bearer ".to_owned())),
        ("basic scheme", Some(format!("Basic {TOKEN}"))),
        ("bare token", Some(TOKEN.to_owned())),
    ];
    for (what, header) in &refused {
        let headers: Vec<(&str, &str)> = header.iter().map(|h| ("Authorization", h.as_str())).collect();
        let single = post(server.admin, "/v1/events", &headers, &event);
        assert_error(what, &single, 401, "unauthorized", Field::Absent);
        assert_eq!(single.header("www-authenticate"), Some("Bearer"), "{what}");
        let array = post(server.admin, "/v1/events", &headers, &json!([event]));
        assert_error(what, &array, 401, "unauthorized", Field::Absent);
        let audit = request(server.admin, "GET", "/v1/audit", &headers, b"");
        assert_error(what, &audit, 401, "unauthorized", Field::Absent);
    }
    assert_eq!(server.ledger_head(), 0, "no refused admin request reached the ledger");
    let metrics = request(server.check, "GET", "/metrics", &[], b"").text();
    assert!(
        metrics.lines().any(|l| l == format!("claimgate_unauthorized_total {}", refused.len() * 3)),
        "every refusal is counted:\n{metrics}"
    );

    // Admin routes do not exist on the check listener, even with the token, and vice versa.
    let auth = [("Authorization", bearer(TOKEN))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_error("events on check", &post(server.check, "/v1/events", &auth, &event), 404, "not_found", Field::Absent);
    assert_error(
        "audit on check",
        &request(server.check, "GET", "/v1/audit", &auth, b""),
        404,
        "not_found",
        Field::Absent,
    );
    let line = claim(DOC, "2026-01-05", false);
    assert_error("check on admin", &post(server.admin, "/v1/check", &auth, &line), 404, "not_found", Field::Absent);
    assert_error(
        "batch on admin",
        &post(server.admin, "/v1/check/batch", &auth, &json!({"lines": [line]})),
        404,
        "not_found",
        Field::Absent,
    );
    assert_eq!(server.ledger_head(), 0);

    // The right token works, and the first stored event gets seq 1.
    assert_eq!(server.event(&event), 1);
    assert_eq!(server.ledger_head(), 1);
}

/// Issue 13, item 4: integrity files (personal data, R22) and the audit need a
/// token, on either listener: the admin token or the read-only token. The
/// read-only token cannot write: events and snapshots with it are 403
/// `forbidden` and store nothing; no token or a wrong one is 401.
#[test]
fn integrity_files_and_the_audit_need_a_token_and_the_read_only_token_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    server.event(&designated(INST, "2024-01-01"));
    server.event(&registered(DOC, INST, "2024-01-01"));
    let head = server.ledger_head();
    let (check, admin) = (server.check, server.admin);
    let tokens: [(&str, Option<&str>); 5] = [
        ("no token", None),
        ("a wrong token", Some("test-read-tokeN")),
        ("the read token as a prefix", Some("test-read-token-and-more")),
        ("the read-only token", Some(READ_TOKEN)),
        ("the admin token", Some(TOKEN)),
    ];
    let reads = [
        (check, format!("/v1/practitioners/{DOC}")),
        (admin, format!("/v1/practitioners/{DOC}?as_of=2026-01-01")),
        (check, format!("/v1/institutions/{INST}")),
        (admin, format!("/v1/institutions/{INST}")),
        (admin, "/v1/audit?limit=5".to_owned()),
    ];
    let (mut unauthorized, mut forbidden) = (0, 0);
    for (what, token) in tokens {
        let header = token.map(bearer);
        let headers: Vec<(&str, &str)> = header.iter().map(|h| ("Authorization", h.as_str())).collect();
        for (addr, path) in &reads {
            let reply = request(*addr, "GET", path, &headers, b"");
            match token {
                Some(READ_TOKEN) | Some(TOKEN) => assert_eq!(reply.status, 200, "{what}: GET {path}: {}", reply.text()),
                _ => {
                    assert_error(&format!("{what}: GET {path}"), &reply, 401, "unauthorized", Field::Absent);
                    assert!(!reply.text().contains(DOC), "a refusal says nothing of the file: {}", reply.text());
                    unauthorized += 1;
                }
            }
        }
        let event = violation(&format!("V-{}", what.len()), DOC, "2026-01-05", 3, "minor");
        let writes = [
            ("an event", post(admin, "/v1/events", &headers, &event)),
            ("an events array", post(admin, "/v1/events", &headers, &json!([event]))),
            ("a snapshot", request(admin, "POST", "/v1/snapshot", &headers, b"")),
        ];
        for (write, reply) in writes {
            let what = format!("{what}: {write}");
            match token {
                Some(TOKEN) => assert_eq!(reply.status, 200, "{what}: {}", reply.text()),
                Some(READ_TOKEN) => {
                    assert_error(&what, &reply, 403, "forbidden", Field::Absent);
                    assert!(reply.text().contains("admin token"), "{what}: the message says which token writes");
                    forbidden += 1;
                }
                _ => {
                    assert_error(&what, &reply, 401, "unauthorized", Field::Absent);
                    unauthorized += 1;
                }
            }
        }
        if token != Some(TOKEN) {
            assert_eq!(server.ledger_head(), head, "{what}: nothing was stored");
        }
    }
    assert_eq!(server.ledger_head(), head + 1, "the admin token's event (its re-send is already recorded)");
    let metrics = request(check, "GET", "/metrics", &[], b"").text();
    for (name, value) in [("claimgate_unauthorized_total", unauthorized), ("claimgate_forbidden_total", forbidden)] {
        assert!(metrics.lines().any(|l| l == format!("{name} {value}")), "{name} {value}:\n{metrics}");
    }
}

/// A read-only token equal to the admin token would let its holder append:
/// `serve` refuses it (exit 2), naming both settings, and creates nothing.
#[test]
fn serve_refuses_a_read_only_token_equal_to_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token_file = dir.path().join("read-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_claimgate"));
    command.arg("serve").arg("--init").arg("--data").arg(&data).arg("--read-token-file").arg(&token_file);
    command.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    command.env("CLAIMGATE_ADMIN_TOKEN", TOKEN).env_remove("CLAIMGATE_READ_TOKEN");
    let output = run_bounded(command);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for named in ["--read-token-file", "CLAIMGATE_READ_TOKEN", "--admin-token-file", "CLAIMGATE_ADMIN_TOKEN"] {
        assert!(stderr.contains(named), "the refusal names {named}: {stderr}");
    }
    assert!(!data.exists(), "nothing was created");
}

/// Bad input is refused with a named error, the right status and the field at
/// fault (R4 for claim lines and events, R8 for the ledger's refusals), and
/// nothing is stored. Unknown routes are 404 and wrong methods 405.
#[test]
fn bad_requests_are_refused_with_named_errors_and_the_field_at_fault() {
    use Field::{Absent, Any, Is};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let auth = bearer(TOKEN);
    let auth = [("Authorization", auth.as_str())];
    let raw = |s: &str| s.as_bytes().to_vec();
    let json_body = |v: Value| v.to_string().into_bytes();
    let base = claim(DOC, "2026-01-05", false);
    let set = |key: &str, v: Value| json_body(with(base.clone(), key, v));
    let unset = |key: &str| json_body(without(base.clone(), key));

    // Claim lines (R1-R4): every one is 400 invalid_request naming the field.
    let check_cases: Vec<(&str, Vec<u8>, Field)> = vec![
        ("malformed JSON", raw("{\"practitioner_id\": "), Is("body")),
        ("empty body", raw(""), Is("body")),
        ("array instead of object", json_body(json!([base])), Any),
        ("string instead of object", json_body(json!("claim")), Any),
        ("emergency \"yes\"", set("emergency", json!("yes")), Is("emergency")),
        ("emergency null", set("emergency", Value::Null), Is("emergency")),
        ("service_date a number", set("service_date", json!(20260101)), Is("service_date")),
        ("service_date 2026-02-30", set("service_date", json!("2026-02-30")), Is("service_date")),
        ("service_date 2026-1-5", set("service_date", json!("2026-1-5")), Is("service_date")),
        ("practitioner lowercase", set("practitioner_id", json!("d110105000001")), Is("practitioner_id")),
        ("practitioner 11 digits", set("practitioner_id", json!("D11010500001")), Is("practitioner_id")),
        ("practitioner 21 chars", set("practitioner_id", json!("D1101050000000000001")), Is("practitioner_id")),
        ("institution lowercase", set("institution_id", json!("h11010500001")), Is("institution_id")),
        ("institution 10 digits", set("institution_id", json!("H1101050000")), Is("institution_id")),
        ("practitioner_id missing", unset("practitioner_id"), Is("practitioner_id")),
        ("institution_id missing", unset("institution_id"), Is("institution_id")),
        ("service_date missing", unset("service_date"), Is("service_date")),
        ("emergency missing", unset("emergency"), Is("emergency")),
        ("min_seq negative", set("min_seq", json!(-1)), Is("min_seq")),
        ("min_seq a string", set("min_seq", json!("3")), Is("min_seq")),
        ("claim_id an object", set("claim_id", json!({})), Is("claim_id")),
        ("claim_id of 129 bytes", set("claim_id", json!("c".repeat(129))), Is("claim_id")),
        ("explain \"yes\"", set("explain", json!("yes")), Is("explain")),
    ];
    for (what, bytes, field) in check_cases {
        let reply = request(server.check, "POST", "/v1/check", &[], &bytes);
        assert_error(&format!("check: {what}"), &reply, 400, "invalid_request", field);
    }

    for (what, value) in [("no lines", json!({})), ("lines an object", json!({"lines": {}})), ("array", json!([base]))]
    {
        assert_error(&format!("batch: {what}"), &server.batch(&value), 400, "invalid_request", Is("lines"));
    }
    // A bad line in a batch is answered in its place; the good lines are still judged.
    let reply = server.batch(&json!({"lines": [with(base.clone(), "emergency", json!("yes")), base.clone()]}));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let results = reply.json()["results"].clone();
    assert_eq!(results[0]["error"], "invalid_request", "{results}");
    assert_eq!(results[0]["field"], "emergency", "{results}");
    assert!(results[0]["message"].is_string(), "{results}");
    assert_eq!(results[1]["reason"], "unknown_institution", "{results}");

    // Events: R4 (400 invalid_request naming the field), then R8's ledger refusals (422).
    let designation = designated(INST, "2024-01-01");
    let scored = violation("V1", DOC, "2026-03-01", 2, "minor");
    let suspension = json!({"type": "institution_suspended", "institution": INST,
                            "effective": "2026-03-01", "until": "2026-03-01"});
    let event_invalid: Vec<(&str, Vec<u8>, Field)> = vec![
        ("malformed JSON", raw("{\"type\": \"institution_designated\""), Is("body")),
        ("empty body", raw(""), Is("body")),
        ("string instead of object", json_body(json!("event")), Any),
        ("no type", json_body(json!({})), Is("type")),
        ("unknown type", json_body(json!({"type": "institution_exploded"})), Is("type")),
        ("effective a number", json_body(with(designation.clone(), "effective", json!(20240101))), Is("effective")),
        ("effective 2024-02-30", json_body(designated(INST, "2024-02-30")), Is("effective")),
        ("institution lowercase", json_body(designated("h11010500001", "2024-01-01")), Is("institution")),
        ("institution 6 digits", json_body(designated("H110105", "2024-01-01")), Is("institution")),
        ("institution missing", json_body(without(designation.clone(), "institution")), Is("institution")),
        ("until not after effective", json_body(suspension), Is("until")),
        ("practitioner 2 digits", json_body(registered("D11", INST, "2024-01-01")), Is("practitioner")),
        ("points a string", json_body(with(scored.clone(), "points", json!("2"))), Is("points")),
        ("unknown severity", json_body(with(scored.clone(), "severity", json!("grave"))), Is("severity")),
        (
            "unknown responsibility",
            json_body(with(scored.clone(), "responsibility", json!("no"))),
            Is("responsibility"),
        ),
    ];
    for (what, bytes, field) in event_invalid {
        let reply = request(server.admin, "POST", "/v1/events", &auth, &bytes);
        assert_error(&format!("event: {what}"), &reply, 400, "invalid_request", field);
    }
    for (what, event) in [("registration", registered(DOC, INST, "2024-01-01")), ("violation", scored.clone())] {
        let reply = server.admin_post("/v1/events", &event);
        assert_error(&format!("{what} at an undesignated institution"), &reply, 422, "unknown_institution", Any);
    }
    assert_eq!(server.ledger_head(), 0, "refused events leave no trace (R4, R8)");

    // An array of events is answered per event: refusals in place, the rest stored in order.
    let reply = server.admin_post("/v1/events", &json!([designated("h1", "2024-01-01"), designation]));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let lines = reply.json();
    assert_eq!(lines[0]["event"], 0, "{lines}");
    assert_eq!(lines[0]["error"], "invalid_request", "{lines}");
    assert_eq!(lines[0]["field"], "institution", "{lines}");
    assert_eq!(lines[1], json!({"event": 1, "seq": 1}), "{lines}");
    assert_eq!(server.ledger_head(), 1);

    // Routes and methods, on either listener (the admin ones with the token).
    let (check, admin) = (server.check, server.admin);
    let routing: Vec<(SocketAddr, &str, &str, u16, &str)> = vec![
        (check, "GET", "/v1/nothing", 404, "not_found"),
        (check, "GET", "/", 404, "not_found"),
        (check, "POST", "/v2/check", 404, "not_found"),
        (admin, "GET", "/v1/ledger", 404, "not_found"),
        (check, "GET", "/v1/check", 405, "method_not_allowed"),
        (check, "GET", "/v1/check/batch", 405, "method_not_allowed"),
        (check, "POST", "/healthz", 405, "method_not_allowed"),
        (check, "PUT", "/readyz", 405, "method_not_allowed"),
        (admin, "POST", "/metrics", 405, "method_not_allowed"),
        (check, "DELETE", "/v1/practitioners/D110105000001", 405, "method_not_allowed"),
        (admin, "GET", "/v1/events", 405, "method_not_allowed"),
        (admin, "POST", "/v1/audit", 405, "method_not_allowed"),
    ];
    for (addr, method, path, status, error) in routing {
        let reply = request(addr, method, path, &auth, b"");
        assert_error(&format!("{method} {path}"), &reply, status, error, Absent);
    }

    // Integrity files (R22) and audit filters name the bad parameter.
    let gets: Vec<(SocketAddr, &str, u16, &str, Field)> = vec![
        (check, "/v1/practitioners/d110105000001", 400, "invalid_request", Is("practitioner")),
        (check, "/v1/institutions/H1", 400, "invalid_request", Is("institution")),
        (check, "/v1/institutions/H11010500001?as_of=2026-02-30", 400, "invalid_request", Is("as_of")),
        (check, "/v1/practitioners/D110105000001", 404, "unknown_practitioner", Absent),
        (check, "/v1/institutions/H31011500007", 404, "unknown_institution", Absent),
        (admin, "/v1/audit?limit=0", 400, "invalid_request", Is("limit")),
        (admin, "/v1/audit?limit=1001", 400, "invalid_request", Is("limit")),
        (admin, "/v1/audit?limit=abc", 400, "invalid_request", Is("limit")),
        (admin, "/v1/audit?color=red", 400, "invalid_request", Is("color")),
        (admin, "/v1/audit?cursor=12", 400, "invalid_request", Is("cursor")),
        (admin, "/v1/audit?reason=ok", 400, "invalid_request", Is("reason")),
        (admin, "/v1/audit?claim_id=", 400, "invalid_request", Is("claim_id")),
        (admin, "/v1/audit?from=2026-02-30", 400, "invalid_request", Is("from")),
        (admin, "/v1/audit?practitioner=d110105000001", 400, "invalid_request", Is("practitioner")),
    ];
    for (addr, path, status, error, field) in gets {
        assert_error(&format!("GET {path}"), &request(addr, "GET", path, &auth, b""), status, error, field);
    }
    let file = server.read_get("/v1/institutions/H11010500001");
    assert_eq!(file.status, 200, "{}", file.text());
    assert_eq!(server.ledger_head(), 1);
}

/// `text` (a JSON object) with `"key": value` added at its end: a key named twice.
fn twice(text: &str, key: &str, value: &str) -> String {
    let open = text.strip_suffix('}').expect("an object");
    format!("{open},\"{key}\":{value}}}")
}

/// R4 over HTTP: an event of every R7 kind naming a key twice is refused
/// `invalid_request` naming the key, and nothing is stored; the same event
/// sent once is accepted. In an array only that event is refused.
#[test]
fn events_of_every_kind_naming_a_key_twice_are_refused_by_name_and_store_nothing_r4() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let auth = bearer(TOKEN);
    let auth = [("Authorization", auth.as_str())];
    const I2: &str = "H31011500007";
    const P2: &str = "D110105000002";
    // In an order where each event, sent once, is accepted.
    let cases: Vec<(Value, &str, &str)> = vec![
        // The measured bug: a second `type` turned a designation into a revocation.
        (designated(I2, "2024-01-01"), "type", r#""violation_revoked""#),
        (
            json!({"type": "institution_suspended", "institution": I2, "effective": "2025-01-01", "until": "2025-02-01"}),
            "until",
            r#""2025-03-01""#,
        ),
        (
            json!({"type": "institution_rated", "institution": I2, "year": 2025, "score": 91, "direct_e": []}),
            "score",
            "59",
        ),
        (registered(P2, I2, "2024-01-01"), "institution", r#""H11010500001""#),
        // The measured bug: {"points": 1, ..., "points": 12} was stored as 12.
        (
            json!({"type": "violation_scored", "violation_id": "V9", "practitioner": P2, "institution": I2,
                   "effective": "2026-03-01", "points": 1, "severity": "minor", "responsibility": "primary"}),
            "points",
            "12",
        ),
        (
            json!({"type": "violation_revoked", "violation_id": "V9", "effective": "2026-04-01"}),
            "violation_id",
            r#""V9""#,
        ),
        (
            json!({"type": "points_repaired", "event_id": "R-1", "practitioner": P2, "points": 1, "effective": "2026-05-01"}),
            "points",
            "1",
        ),
        (
            json!({"type": "practitioner_deregistered", "practitioner": P2, "institution": I2, "effective": "2026-06-01"}),
            "effective",
            r#""2026-06-02""#,
        ),
        (
            json!({"type": "institution_terminated", "institution": I2, "effective": "2026-07-01"}),
            "institution",
            r#""H31011500007""#,
        ),
    ];
    let mut head = 0;
    for (event, key, value) in &cases {
        let kind = event["type"].as_str().unwrap();
        let sent = twice(&event.to_string(), key, value);
        let reply = request(server.admin, "POST", "/v1/events", &auth, sent.as_bytes());
        assert_error(&format!("{kind} with `{key}` twice"), &reply, 400, "invalid_request", Field::Is(key));
        let body = reply.json();
        assert_eq!(body["fields"], json!([key]), "{body}");
        assert!(body["message"].as_str().unwrap().contains("more than once"), "{body}");
        assert_eq!(server.ledger_head(), head, "{kind}: a refused event leaves no trace (R4)");
        head = server.event(event);
    }
    assert_eq!(head, cases.len() as u64, "each event, sent once, was accepted");

    // In an array, only the event that names a key twice is refused.
    let good = designated(INST, "2024-01-01").to_string();
    let bad = twice(&designated("H44030500012", "2024-01-01").to_string(), "effective", r#""2025-01-01""#);
    let reply = request(server.admin, "POST", "/v1/events", &auth, format!("[{bad},{good}]").as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.text());
    let lines = reply.json();
    assert_eq!((&lines[0]["error"], &lines[0]["field"]), (&json!("invalid_request"), &json!("effective")), "{lines}");
    assert_eq!(lines[1], json!({"event": 1, "seq": head + 1}), "{lines}");
    assert_eq!(server.ledger_head(), head + 1);
}

/// R4 over HTTP for claim lines, batches and query strings: a key named
/// twice, a field or parameter a route does not define, or a parameter given
/// twice is `invalid_request` naming it (`fields` names every fault of a
/// line); a check is never answered as if the bad part were absent.
#[test]
fn claim_lines_batches_and_queries_refuse_duplicated_and_unknown_names_r4() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    server.event(&designated(INST, "2024-01-01"));
    let head = server.event(&registered(DOC, INST, "2024-01-01"));
    // Each line waits (min_seq) for the index to hold both events.
    let base = with(claim(DOC, "2026-01-05", false), "min_seq", json!(head)).to_string();
    let post = |path: &str, text: &str| request(server.check, "POST", path, &[], text.as_bytes());
    assert_eq!(post("/v1/check", &base).json()["reason"], "ok");

    // The measured bugs: a second `emergency` settled as an emergency; `minseq` dropped the wait.
    let dup_emergency = twice(&base, "emergency", "true");
    let minseq = twice(&base, "minseq", "1");
    let many = twice(
        &twice(&twice(&claim("d1", "2026-02-30", false).to_string(), "emergency", "true"), "minseq", "1"),
        "insured_id",
        r#""P1""#,
    );
    let cases: [(&str, &str, &[&str]); 3] = [
        (&dup_emergency, "emergency", &["emergency"]),
        (&minseq, "minseq", &["minseq"]),
        (&many, "emergency", &["emergency", "insured_id", "minseq", "practitioner_id", "service_date"]),
    ];
    let mut singles = Vec::new();
    for (text, field, fields) in cases {
        let reply = post("/v1/check", text);
        assert_error(&format!("check {text}"), &reply, 400, "invalid_request", Field::Is(field));
        assert_eq!(reply.json()["fields"], json!(fields), "{text}");
        singles.push(reply.json());
    }
    // In a batch each such line is answered with the same error in its place.
    let reply = post("/v1/check/batch", &format!(r#"{{"lines":[{dup_emergency},{base},{minseq},{many}]}}"#));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let results = reply.json()["results"].clone();
    assert_eq!(results[1]["reason"], "ok", "{results}");
    assert_eq!([&results[0], &results[2], &results[3]], [&singles[0], &singles[1], &singles[2]], "{results}");

    // The batch envelope: its keys once, and only `lines` and `min_seq`.
    for (text, field) in [
        (format!(r#"{{"lines":[{base}],"lines":[]}}"#), "lines"),
        (format!(r#"{{"lines":[{base}],"minseq":99}}"#), "minseq"),
        (format!(r#"{{"lines":[{base}],"min_seq":1,"min_seq":99}}"#), "min_seq"),
    ] {
        assert_error(
            &format!("batch {text}"),
            &post("/v1/check/batch", &text),
            400,
            "invalid_request",
            Field::Is(field),
        );
    }

    // Query strings: known parameters, each once; none on routes that take none.
    let (check, admin) = (server.check, server.admin);
    let auth = bearer(TOKEN);
    let auth = [("Authorization", auth.as_str())];
    let file = format!("/v1/practitioners/{DOC}");
    let gets: Vec<(SocketAddr, &str, String, &str)> = vec![
        (check, "GET", format!("{file}?asof=2026-01-01"), "asof"),
        (check, "GET", format!("{file}?as_of=2026-01-01&as_of=2025-01-01"), "as_of"),
        (check, "GET", format!("/v1/institutions/{INST}?as_of=2026-01-01&as_of=2026-01-01"), "as_of"),
        (admin, "GET", "/v1/audit?limit=1&limit=1000".into(), "limit"),
        (admin, "GET", "/v1/audit?colour=red".into(), "colour"),
        (check, "POST", "/v1/check?min_seq=5".into(), "min_seq"),
        (check, "POST", "/v1/check/batch?explain=true".into(), "explain"),
        (admin, "POST", "/v1/events?dry_run=1".into(), "dry_run"),
    ];
    for (addr, method, path, field) in gets {
        let body = if method == "POST" { base.as_bytes() } else { b"" };
        let reply = request(addr, method, &path, &auth, body);
        assert_error(&format!("{method} {path}"), &reply, 400, "invalid_request", Field::Is(field));
    }
    let ok = server.read_get(&format!("{file}?as_of=2026-01-01"));
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(server.ledger_head(), 2, "nothing was stored");
}

/// Bodies over 1 MiB are refused with 413 `payload_too_large`, whether the
/// length is declared or the body is chunked; a body of exactly 1 MiB is
/// read. More than 10,000 lines or events in one request is 413
/// `batch_too_large`; exactly 10,000 lines are answered. Nothing is stored.
#[test]
fn oversize_bodies_and_batches_are_refused_with_413() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let auth = bearer(TOKEN);
    let auth = [("Authorization", auth.as_str())];
    // Valid JSON padded with spaces to an exact size, so only the size can be at fault.
    let padded = |value: &Value, len: usize| {
        let mut bytes = value.to_string().into_bytes();
        assert!(bytes.len() <= len);
        bytes.resize(len, b' ');
        bytes
    };
    let line = claim(DOC, "2026-01-05", false);
    let event = designated(INST, "2024-01-01");

    let reply = request(server.check, "POST", "/v1/check", &[], &padded(&line, MAX_BODY + 1));
    assert_error("check over 1 MiB", &reply, 413, "payload_too_large", Field::Absent);
    let reply = request(server.admin, "POST", "/v1/events", &auth, &padded(&event, MAX_BODY + 1));
    assert_error("event over 1 MiB", &reply, 413, "payload_too_large", Field::Absent);
    let reply = request(server.check, "POST", "/v1/check/batch", &[], &padded(&json!({"lines": [line]}), 2 * MAX_BODY));
    assert_error("batch over 1 MiB", &reply, 413, "payload_too_large", Field::Absent);

    // Chunked, with no Content-Length to refuse up front: the limit applies while reading.
    let body = padded(&line, MAX_BODY + 4096);
    let mut raw = format!(
        "POST /v1/check HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.check
    )
    .into_bytes();
    for chunk in body.chunks(64 * 1024) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    assert_error("chunked check over 1 MiB", &exchange(server.check, raw), 413, "payload_too_large", Field::Absent);

    // Exactly at the limit is fine.
    let reply = request(server.check, "POST", "/v1/check", &[], &padded(&line, MAX_BODY));
    assert_eq!(reply.status, 200, "a body of exactly 1 MiB: {}", reply.text());
    assert_eq!(reply.json()["reason"], "unknown_institution");

    // Line and event counts. `{}` keeps 10,001 entries well under the byte limit.
    let empties = |n: usize| Value::Array(vec![json!({}); n]);
    let reply = server.batch(&json!({"lines": empties(MAX_BATCH + 1)}));
    assert_error("10,001 lines", &reply, 413, "batch_too_large", Field::Is("lines"));
    let reply = server.batch(&json!({"lines": empties(MAX_BATCH)}));
    assert_eq!(reply.status, 200, "10,000 lines are one full batch: {}", reply.text());
    let results = reply.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), MAX_BATCH);
    assert!(results.iter().all(|r| r["error"] == "invalid_request" && r["field"] == "practitioner_id"));

    let reply = server.admin_post("/v1/events", &empties(MAX_BATCH + 1));
    assert_error("10,001 events", &reply, 413, "batch_too_large", Field::Any);
    let reply = server.admin_post("/v1/events", &Value::Array(vec![event.clone(); MAX_BATCH + 1]));
    assert_error("10,001 valid events", &reply, 413, "batch_too_large", Field::Any);
    assert_eq!(server.ledger_head(), 0, "a refused request stores nothing");

    // The server is still healthy afterwards.
    assert_eq!(server.event(&event), 1);
    let reply = request(server.check, "GET", "/healthz", &[], b"");
    assert_eq!((reply.status, reply.json()), (200, json!({"status": "ok"})));
}

/// Checks are answered from published index versions while the ledger is
/// being written (R5, R6): every check is 200, each client's `seq` never goes
/// back, and no practitioner's state ever appears to move backwards.
#[test]
fn checks_stay_available_and_monotonic_during_a_stream_of_admin_writes() {
    const PRACTITIONERS: usize = 200;
    const CHECKERS: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let doc = |p: usize| format!("D110105{p:06}");

    // 1 + 200 + 800 = 1,001 events: designation, registrations, then four
    // rounds of violations (2 + 2 + 2 + 3 = 9 points: a suspension, R14).
    let mut events = vec![designated(INST, "2024-01-01")];
    events.extend((0..PRACTITIONERS).map(|p| registered(&doc(p), INST, "2024-01-01")));
    for (round, points) in [2, 2, 2, 3].into_iter().enumerate() {
        for p in 0..PRACTITIONERS {
            let date = format!("2026-03-0{}", round + 1);
            events.push(violation(&format!("V{p}-{round}"), &doc(p), &date, points, "minor"));
        }
    }
    // The order in which one practitioner's answer may change as events arrive.
    let rank = |reason: &str| match reason {
        "unknown_institution" => 0,
        "unknown_practitioner" => 1,
        "ok" => 2,
        "practitioner_suspended" => 3,
        other => panic!("unexpected reason {other}"),
    };

    let done = AtomicBool::new(false);
    let checks: [AtomicUsize; CHECKERS] = Default::default();
    /// Stops the checkers even if the writer panics.
    struct SetOnDrop<'a>(&'a AtomicBool);
    impl Drop for SetOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let started = Instant::now();
    let (last_seq, counts) = std::thread::scope(|scope| {
        let checkers: Vec<_> = (0..CHECKERS)
            .map(|t| {
                let (server, done, checks) = (&server, &done, &checks);
                scope.spawn(move || {
                    let mut last_seq = 0;
                    let mut seen: HashMap<usize, u8> = HashMap::new();
                    let mut n = 0usize;
                    let mut seqs = std::collections::BTreeSet::new();
                    while !done.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(60) {
                        let p = (n * 7 + t * 13) % PRACTITIONERS;
                        let reply = server.check(&claim(&doc(p), "2026-03-10", false));
                        assert_eq!(reply.status, 200, "checker {t}, check {n}: {}", reply.text());
                        let body = reply.json();
                        let seq = body["seq"].as_u64().unwrap();
                        assert!(seq >= last_seq, "checker {t}: seq went back from {last_seq} to {seq}");
                        last_seq = seq;
                        seqs.insert(seq);
                        let r = rank(body["reason"].as_str().unwrap());
                        let before = seen.insert(p, r).unwrap_or(0);
                        assert!(r >= before, "checker {t}: {} went back to {body} at seq {seq}", doc(p));
                        n += 1;
                        checks[t].fetch_add(1, Ordering::SeqCst);
                    }
                    (n, seqs)
                })
            })
            .collect();
        let _stop = SetOnDrop(&done);
        // Writes start once every checker is answering, so the two overlap.
        let deadline = Instant::now() + Duration::from_secs(20);
        while checks.iter().any(|c| c.load(Ordering::SeqCst) == 0) {
            assert!(Instant::now() < deadline, "the checkers made no check within 20 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut last_seq = 0;
        for (k, chunk) in events.chunks(10).enumerate() {
            let reply = server.admin_post("/v1/events", &Value::Array(chunk.to_vec()));
            assert_eq!(reply.status, 200, "write {k}: {}", reply.text());
            for line in reply.json().as_array().unwrap() {
                let seq = line["seq"].as_u64().unwrap_or_else(|| panic!("write {k}: refused {line}"));
                assert_eq!(seq, last_seq + 1, "write {k}: seqs are consecutive");
                last_seq = seq;
            }
        }
        drop(_stop);
        let counts: Vec<_> = checkers.into_iter().map(|c| c.join().expect("checker panicked")).collect();
        (last_seq, counts)
    });
    assert_eq!(last_seq, events.len() as u64);
    // Every checker ran alongside the writes, and between them they saw the
    // index at intermediate versions, not only before and after.
    let intermediate: usize =
        counts.iter().map(|(_, seqs)| seqs.iter().filter(|s| (1..last_seq).contains(*s)).count()).sum();
    assert!(counts.iter().all(|(n, _)| *n > 0), "checks per checker: {counts:?}");
    assert!(intermediate > 0, "no check saw an intermediate version: {counts:?}");

    // Once caught up, every practitioner is suspended on that date (R14, R17).
    let lines: Vec<Value> = (0..PRACTITIONERS).map(|p| claim(&doc(p), "2026-03-10", false)).collect();
    let reply = server.batch(&json!({"min_seq": last_seq, "lines": lines}));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let batch = reply.json();
    assert!(batch["seq"].as_u64().unwrap() >= last_seq);
    for (p, r) in batch["results"].as_array().unwrap().iter().enumerate() {
        assert_eq!(r["reason"], "practitioner_suspended", "{}: {r}", doc(p));
    }
}

/// `min_seq` lets a client read its own writes: a check waits (bounded by
/// --min-seq-wait-ms) for the index to reach the seq, answers 503
/// `stale_index` if it does not, and otherwise reflects the event (R5, R14).
#[test]
fn min_seq_waits_for_the_index_and_answers_stale_index_past_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--min-seq-wait-ms", "300"]);

    let started = Instant::now();
    let reply = server.check(&with(claim(DOC, "2026-01-05", false), "min_seq", json!(5)));
    let waited = started.elapsed();
    assert_error("min_seq past the head", &reply, 503, "stale_index", Field::Absent);
    assert!(waited >= Duration::from_millis(250), "answered stale after only {waited:?}");
    assert!(waited < Duration::from_secs(5), "the wait is bounded by --min-seq-wait-ms, took {waited:?}");
    let reply = server.batch(&json!({"min_seq": 5, "lines": [claim(DOC, "2026-01-05", false)]}));
    assert_error("batch min_seq past the head", &reply, 503, "stale_index", Field::Absent);
    let reply = server.batch(&json!({"lines": [with(claim(DOC, "2026-01-05", false), "min_seq", json!(5))]}));
    assert_error("batch line min_seq past the head", &reply, 503, "stale_index", Field::Absent);

    assert_eq!(server.event(&designated(INST, "2024-01-01")), 1);
    // Read-your-writes, repeated to give a lagging index every chance to show.
    for p in 0..10 {
        let doc = format!("D110105{p:06}");
        let registered_at = server.event(&registered(&doc, INST, "2024-01-01"));
        let reply = server.check(&with(claim(&doc, "2026-03-10", false), "min_seq", json!(registered_at)));
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = reply.json();
        assert!(body["seq"].as_u64().unwrap() >= registered_at, "{body}");
        assert_eq!(body["reason"], "ok", "{doc} registered at seq {registered_at}: {body}");

        let scored_at = server.event(&violation(&format!("V{p}"), &doc, "2026-03-01", 9, "serious"));
        let reply = server.check(&with(claim(&doc, "2026-03-10", false), "min_seq", json!(scored_at)));
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = reply.json();
        assert!(body["seq"].as_u64().unwrap() >= scored_at, "{body}");
        assert_eq!(body["verdict"], "reject", "{body}");
        assert_eq!(body["reason"], "practitioner_suspended", "{doc} scored 9 at seq {scored_at}: {body}");
    }
    // min_seq at or below the head needs no wait.
    let reply = server.check(&with(claim(DOC, "2026-03-10", false), "min_seq", json!(1)));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let metrics = request(server.check, "GET", "/metrics", &[], b"").text();
    assert!(metrics.lines().any(|l| l == "claimgate_stale_index_total 3"), "{metrics}");
}

/// `/readyz` reports the index caught up with the ledger, `/metrics` exposes
/// decisions and the index seq, and the audit log lists every reject and
/// every emergency exemption (R19) with the seq it was decided at, but not
/// plain settlements. The integrity file (R22) and `explain` show the facts
/// behind a decision.
#[test]
fn health_metrics_and_audit_report_what_the_gate_did() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for addr in [server.check, server.admin] {
        let reply = request(addr, "GET", "/healthz", &[], b"");
        assert_eq!((reply.status, reply.json()), (200, json!({"status": "ok"})));
    }
    server.event(&designated(INST, "2024-01-01"));
    server.event(&registered(DOC, INST, "2024-01-01"));
    let head = server.event(&violation("V1", DOC, "2026-03-10", 9, "serious"));
    assert_eq!(head, 3);

    let reject = server.check(&json!({"claim_id": "C-reject", "practitioner_id": DOC, "institution_id": INST,
        "service_date": "2026-03-20", "emergency": false, "min_seq": head}));
    let reject = reject.json();
    assert_eq!(
        (&reject["claim_id"], &reject["verdict"], &reject["reason"], &reject["seq"]),
        (&json!("C-reject"), &json!("reject"), &json!("practitioner_suspended"), &json!(head)),
        "{reject}"
    );
    let exempt = server.check(&json!({"claim_id": 42, "practitioner_id": DOC, "institution_id": INST,
        "service_date": "2026-03-20", "emergency": true, "min_seq": head}));
    let exempt = exempt.json();
    assert_eq!(
        (&exempt["claim_id"], &exempt["verdict"], &exempt["reason"], &exempt["waived"]),
        (&json!(42), &json!("settle"), &json!("emergency_exemption"), &json!(["practitioner_suspended"])),
        "{exempt}"
    );
    let ok = server.check(&with(claim(DOC, "2026-03-01", false), "min_seq", json!(head))).json();
    assert_eq!(ok["reason"], "ok", "{ok}");
    assert_eq!(ok["institution_grade"], Value::Null, "no rating yet (R21): {ok}");
    assert_eq!(ok["advance_payment_withheld"], false, "{ok}");

    for addr in [server.check, server.admin] {
        let reply = request(addr, "GET", "/readyz", &[], b"");
        assert_eq!(reply.status, 200, "{}", reply.text());
        let ready = reply.json();
        assert_eq!(ready["ready"], true, "{ready}");
        assert_eq!(ready["index_seq"], head, "{ready}");
        assert_eq!(ready["ledger_head"], head, "{ready}");
        assert_eq!(ready["lag"], 0, "{ready}");
    }

    let reply = request(server.check, "GET", "/metrics", &[], b"");
    assert_eq!(reply.status, 200);
    // OpenMetrics text (Prometheus scrapes it), encoded by prometheus-client.
    assert!(
        reply.header("content-type").is_some_and(|c| c.starts_with("application/openmetrics-text; version=1.0.0")),
        "{:?}",
        reply.headers
    );
    let metrics = reply.text();
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    for line in [
        "claimgate_decisions_total{verdict=\"reject\",reason=\"practitioner_suspended\"} 1",
        "claimgate_decisions_total{verdict=\"settle\",reason=\"emergency_exemption\"} 1",
        "claimgate_decisions_total{verdict=\"settle\",reason=\"ok\"} 1",
        "claimgate_index_seq 3",
        "claimgate_ledger_head_seq 3",
        "claimgate_events_accepted_total 3",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no `{line}` in\n{metrics}");
    }

    // Both records were durable before their answers (R19); the index that
    // queries read follows the segments within moments: poll for it.
    let path = format!("/v1/audit?practitioner={DOC}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let records = loop {
        let reply = server.admin_get(&path);
        assert_eq!(reply.status, 200, "{}", reply.text());
        let records = reply.json()["records"].as_array().unwrap().clone();
        if records.len() >= 2 || Instant::now() > deadline {
            break records;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(records.len(), 2, "one reject and one exemption, no plain settlement: {records:?}");
    let (newest, oldest) = (&records[0], &records[1]);
    assert_eq!(newest["claim_id"], 42, "a numeric claim_id is kept a number, exactly as sent: {newest}");
    assert_eq!(newest["reason"], "emergency_exemption", "{newest}");
    assert_eq!(newest["verdict"], "settle", "{newest}");
    assert_eq!(newest["emergency"], true, "{newest}");
    assert_eq!(newest["waived"], json!(["practitioner_suspended"]), "{newest}");
    assert_eq!(oldest["claim_id"], "C-reject", "{oldest}");
    assert_eq!(oldest["reason"], "practitioner_suspended", "{oldest}");
    assert_eq!(oldest["verdict"], "reject", "{oldest}");
    assert_eq!(oldest["emergency"], false, "{oldest}");
    for r in &records {
        assert_eq!(
            (&r["seq"], &r["practitioner_id"], &r["institution_id"], &r["service_date"]),
            (&json!(head), &json!(DOC), &json!(INST), &json!("2026-03-20")),
            "{r}"
        );
    }
    let count = |path: &str| server.admin_get(path).json()["records"].as_array().unwrap().len();
    assert_eq!(count(&format!("/v1/audit?institution={INST}&from=2026-03-20&until=2026-03-21")), 2);
    assert_eq!(count(&format!("/v1/audit?institution={INST}&from=2026-03-21")), 0);
    assert_eq!(count("/v1/audit?practitioner=D110105000002"), 0);
    let one = server.admin_get("/v1/audit?limit=1").json();
    assert_eq!(one["records"].as_array().unwrap().len(), 1, "{one}");
    assert_eq!(one["records"][0]["claim_id"], 42, "newest first: {one}");
    // The cursor pages on to the older record, then says there is no more.
    let cursor = one["next_cursor"].as_str().expect("a full page carries a cursor").to_owned();
    let two = server.admin_get(&format!("/v1/audit?limit=1&cursor={cursor}")).json();
    assert_eq!(two["records"][0]["claim_id"], "C-reject", "{two}");
    let end = server.admin_get(&format!("/v1/audit?limit=5&cursor={cursor}")).json();
    assert_eq!((end["records"].as_array().unwrap().len(), &end["next_cursor"]), (1, &Value::Null), "{end}");
    // claim_id and reason filters.
    assert_eq!(count("/v1/audit?claim_id=42"), 1);
    assert_eq!(count("/v1/audit?claim_id=C-reject"), 1);
    assert_eq!(count("/v1/audit?claim_id=C-other"), 0);
    assert_eq!(count("/v1/audit?reason=emergency_exemption"), 1);
    assert_eq!(count(&format!("/v1/audit?reason=practitioner_suspended&practitioner={DOC}")), 1);

    // The practitioner's integrity file (R22) is served from the ledger.
    let reply = server.read_get(&format!("/v1/practitioners/{DOC}?as_of=2026-03-20"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.text().contains("V1"), "the file lists the violation: {}", reply.text());

    // `explain` gives the facts behind the decision: the 9-point violation and
    // the two-month suspension it caused (R14: total 9 -> 2 months).
    let explained =
        server.check(&with(with(claim(DOC, "2026-03-20", false), "min_seq", json!(head)), "explain", json!(true)));
    let explained = explained.json();
    let sanction = &explained["explain"]["sanctions"][0];
    assert_eq!(
        (&sanction["kind"], &sanction["from"], &sanction["until"], &sanction["cause"]["violation_id"]),
        (&json!("suspension"), &json!("2026-03-10"), &json!("2026-05-10"), &json!("V1")),
        "{explained}"
    );
    assert_eq!(explained["explain"]["seq"], head, "{explained}");
}

/// SIGTERM stops the server cleanly: an in-flight request is still answered,
/// the process exits 0, queued audit records are committed, and a restart on
/// the same data directory resumes at the same ledger head (R5).
#[test]
fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--min-seq-wait-ms", "1500"]);
    assert_eq!(server.event(&designated(INST, "2024-01-01")), 1);
    let reject = server.check(&with(claim(DOC, "2026-01-05", false), "min_seq", json!(1))).json();
    assert_eq!(reject["reason"], "unknown_practitioner", "{reject}");

    // A check that is still waiting for min_seq when the signal arrives.
    let (tx, rx) = mpsc::channel();
    let check_addr = server.check;
    let waiting = std::thread::spawn(move || {
        let _ = tx.send(());
        request(
            check_addr,
            "POST",
            "/v1/check",
            &[],
            with(claim(DOC, "2026-01-05", false), "min_seq", json!(99)).to_string().as_bytes(),
        )
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    // SIGTERM once the check is in flight on the server, waiting for its min_seq.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !request(server.admin, "GET", "/metrics", &[], b"").text().lines().any(|l| l == "claimgate_min_seq_waiting 1")
    {
        assert!(Instant::now() < deadline, "the check never started waiting for its min_seq");
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}");
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
    let in_flight = waiting.join().expect("the in-flight request got an answer");
    assert_error("in-flight check", &in_flight, 503, "stale_index", Field::Absent);

    let mut again = Server::start(dir.path(), &[]);
    assert_eq!(again.start_seq, 1, "the restarted index is at the acknowledged seq (R5)");
    assert_eq!(again.ledger_head(), 1);
    let records = again.admin_get("/v1/audit").json();
    let records = records["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "the audit record was committed before exit: {records:?}");
    assert_eq!(records[0]["reason"], "unknown_practitioner");
    let status = again.terminate();
    assert_eq!(status.code(), Some(0), "{status}");
}

/// R5: an accepted event is durable before its `seq` is returned, so a
/// server killed outright (SIGKILL, no shutdown) right after the
/// acknowledgement comes back with it, and judges by it.
#[test]
fn an_acknowledged_event_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    server.event(&designated(INST, "2024-01-01"));
    server.event(&registered(DOC, INST, "2024-01-01"));
    let seq = server.event(&violation("V1", DOC, "2026-03-10", 9, "serious"));
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");

    let again = Server::start(dir.path(), &[]);
    assert_eq!(again.start_seq, seq, "the restarted index is at the last acknowledged seq");
    let body = again.check(&with(claim(DOC, "2026-03-20", false), "min_seq", json!(seq))).json();
    assert_eq!((&body["reason"], &body["seq"]), (&json!("practitioner_suspended"), &json!(seq)), "{body}");
}

/// Issue 7: two gate nodes on one PostgreSQL ledger. An event written through
/// one node's admin API is visible on the other; a check there with `min_seq`
/// waits for it and answers by it. Freshness comes from LISTEN/NOTIFY, not
/// only the poll interval.
#[test]
fn two_nodes_on_one_postgresql_ledger_see_each_others_writes() {
    let Some(url) = postgres_url("the two-node PostgreSQL test") else { return };
    let schema = PgSchema::new(&url, "two_nodes");
    let store = schema.url();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Polling every 20 s: within the 5 s bounds below only a notification (or
    // a min_seq wait, which wakes the sync itself) can move a node's index.
    let nodes = ["--store", &store, "--min-seq-wait-ms", "5000", "--sync-idle-ms", "20000"];
    let one = Server::start(d1.path(), &nodes);
    let two = Server::start(d2.path(), &nodes);
    for node in [&one, &two] {
        let started = std::time::Instant::now();
        loop {
            let ready = request(node.check, "GET", "/readyz", &[], b"").json();
            if ready["ledger_notifications"] == "connected" {
                break;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(5), "never listening: {ready}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    one.event(&designated("H11010500001", "2024-01-01"));
    one.event(&registered("D110105000001", "H11010500001", "2024-01-01"));
    let seq = one.event(&violation("V1", "D110105000001", "2026-03-10", 9, "serious"));
    let answer = two.check(&with(claim("D110105000001", "2026-03-11", false), "min_seq", json!(seq))).json();
    assert_eq!(answer["reason"], "practitioner_suspended", "{answer}");
    assert!(answer["seq"].as_u64().unwrap() >= seq);

    // Without min_seq, node one catches up by notification alone: its next
    // poll is up to 20 s away, and the bound is 5 s.
    let started = std::time::Instant::now();
    let later = two.event(&violation("V2", "D110105000001", "2026-04-10", 3, "minor"));
    loop {
        let seen = request(one.check, "GET", "/readyz", &[], b"").json()["index_seq"].as_u64().unwrap();
        if seen >= later {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "node one never saw seq {later}");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    drop((one, two));
}

/// Issue 7: the node's database sessions are terminated while checks run.
/// No check fails (checks never touch the ledger), the node notices the loss,
/// reconnects, and a later write is answered correctly with `min_seq`.
#[test]
fn terminated_database_sessions_fail_no_check_and_the_node_reconnects() {
    let Some(url) = postgres_url("the connection-loss test") else { return };
    let schema = PgSchema::new(&url, "conn_loss");
    let app = format!("cg_{}", &schema.name[..schema.name.len().min(50)]);
    let store = format!("{}&application_name={app}", schema.url());
    let dir = tempfile::tempdir().unwrap();
    let node = Server::start(dir.path(), &["--store", &store, "--min-seq-wait-ms", "10000"]);
    node.event(&designated("H11010500001", "2024-01-01"));
    node.event(&registered("D110105000001", "H11010500001", "2024-01-01"));

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let checker = {
        let (addr, stop, answered) = (node.check, stop.clone(), answered.clone());
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let reply = post(addr, "/v1/check", &[], &claim("D110105000001", "2025-01-01", false));
                if reply.status == 200 {
                    ok += 1
                } else {
                    failed += 1
                }
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            (ok, failed)
        })
    };
    // Waits (bounded) until the checker has had `n` more answers than now.
    let checks_more = |n: u64| {
        let target = answered.load(std::sync::atomic::Ordering::SeqCst) + n;
        let started = std::time::Instant::now();
        while answered.load(std::sync::atomic::Ordering::SeqCst) < target {
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "the checker stalled");
            std::thread::yield_now();
        }
    };
    checks_more(20);
    let mut admin = schema.admin();
    let killed: i64 = admin
        .query_one("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", &[&app])
        .unwrap()
        .get(0);
    assert!(killed >= 2, "the node's sessions were terminated ({killed})");

    // The node notices (a lost listener, a failed sync or head read), says
    // so on /readyz, and recovers.
    let started = std::time::Instant::now();
    let loss = loop {
        let ready = request(node.check, "GET", "/readyz", &[], b"").json();
        if ready["ledger_failures"].as_u64().unwrap_or(0) > 0 {
            break ready;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "/readyz never reported the loss: {ready}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let what = loss["last_ledger_failure"]["what"].as_str().unwrap_or_default().to_owned();
    assert!(what.contains("terminat") || what.contains("lost") || what.contains("closed"), "{loss}");
    let seq = node.event(&violation("V1", "D110105000001", "2026-03-10", 9, "serious"));
    let answer = node.check(&with(claim("D110105000001", "2026-03-11", false), "min_seq", json!(seq))).json();
    assert_eq!(answer["reason"], "practitioner_suspended", "{answer}");
    checks_more(20);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = checker.join().unwrap();
    assert_eq!(failed, 0, "{failed} checks failed during the outage ({ok} answered)");
    assert!(ok > 10);
    let ready = request(node.check, "GET", "/readyz", &[], b"").json();
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["ledger_reachable"], true, "{ready}");
    drop(node);
}

/// Issue 13: an answer quotes at most `MAX_ECHO_CHARS` of the input it
/// refuses, however large (a 900 KB code once gave a 900 KB error): codes,
/// dates, event kinds, unknown field names and query parameter names.
#[test]
fn errors_quote_a_bounded_part_of_the_input_they_refuse() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let huge = "9".repeat(900_000);
    let mut line = claim(DOC, "2026-03-20", false);
    line["practitioner_id"] = json!(huge);
    let event = json!({"type": "x".repeat(900_000)});
    let mut unknown = registered(DOC, INST, "2024-01-01");
    unknown[format!("k{huge}")] = json!(1);
    let mut date = claim(DOC, "2026-03-20", false);
    date["service_date"] = json!(huge);
    let long_param = format!("/v1/audit?{}=1", "p".repeat(60_000));
    let replies = [
        ("a 900 KB practitioner code", server.check(&line)),
        ("a 900 KB service date", server.check(&date)),
        ("a 900 KB event type", server.admin_post("/v1/events", &event)),
        ("a 900 KB unknown field", server.admin_post("/v1/events", &unknown)),
        ("a 60 KB query parameter", server.admin_get(&long_param)),
    ];
    for (what, reply) in replies {
        assert_eq!(reply.status, 400, "{what}: {}", &reply.text()[..reply.text().len().min(300)]);
        assert!(reply.text().len() < 2_000, "{what}: an answer of {} bytes", reply.text().len());
        assert!(reply.text().contains("characters in all"), "{what}: the cut is said: {}", reply.text());
    }
}

/// Thread priorities, read back from /proc: the decision log's writer, whose
/// fsync rejects and exemptions wait on, runs at nice -10 where the process
/// may raise it (as root), else at 0; the audit indexer (+10) and the four
/// ledger query threads (+10) run lower than the check workers (0).
#[test]
fn the_audit_writer_runs_higher_and_background_threads_lower_than_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let pid = server.child.id();
    // Every thread's nice value, by thread name.
    let read = || {
        let mut nice: HashMap<String, Vec<i64>> = HashMap::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else { continue };
            // `pid (comm) state ...`: the fields after the comm's closing parenthesis; nice is field 19.
            let (comm, rest) = stat.split_once(" (").unwrap().1.rsplit_once(") ").unwrap();
            let value: i64 = rest.split(' ').nth(16).unwrap().parse().unwrap();
            nice.entry(comm.to_owned()).or_default().push(value);
        }
        for values in nice.values_mut() {
            values.sort();
        }
        nice
    };
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let writer = if root { -10 } else { 0 };
    let expected = |nice: &HashMap<String, Vec<i64>>| {
        let queries: Vec<i64> =
            nice.iter().filter(|(k, _)| k.starts_with("ledger-query")).flat_map(|(_, v)| v.clone()).collect();
        nice.get("audit-writer") == Some(&vec![writer])
            && nice.get("audit-index") == Some(&vec![10])
            && queries == vec![10; 4]
            && nice.get("tokio-rt-worker").is_some_and(|w| w.iter().all(|n| *n == 0))
    };
    // Each thread sets its own priority as it begins: wait (bounded) for all of them.
    let started = Instant::now();
    let mut nice = read();
    while !expected(&nice) && started.elapsed() < Duration::from_secs(10) {
        std::thread::yield_now();
        nice = read();
    }
    assert!(expected(&nice), "writer {writer}, indexer and 4 query threads +10, workers 0: {nice:?}");
}
