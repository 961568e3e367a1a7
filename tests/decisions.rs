//! The decision log over HTTP (R19, issue 13): an unauthenticated flood of
//! emergency batches against the real binary settles no exemption without
//! its record, a queue bound reached is answered `audit_unavailable`, and a
//! well-behaved client alongside is still answered (its latency printed;
//! figures belong in `loadtest/`, not here).

mod common;
use common::server::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const DOC2: &str = "D110105000002";
/// Flood clients, batches each at most, lines per batch, and the longest a flood runs.
const FLOODERS: u64 = 6;
const MAX_ROUNDS: u64 = 200;
const LINES: u64 = 200;
const FLOOD_FOR: Duration = Duration::from_secs(4);
/// The decision log's queue bound in this test: small, so a flood reaches it.
const QUEUE_RECORDS: &str = "256";

fn setup(server: &Server) -> u64 {
    let mut seq = 0;
    for event in [
        designated(INST, "2024-01-01"),
        registered(DOC, INST, "2024-01-01"),
        registered(DOC2, INST, "2024-01-01"),
        violation("V1", DOC, "2026-03-10", 9, "serious"),
    ] {
        let reply = server.admin_post("/v1/events", &event);
        assert_eq!(reply.status, 200, "{}", reply.text());
        seq = reply.json()["seq"].as_u64().unwrap();
    }
    seq
}

#[test]
fn a_flood_of_emergency_batches_settles_no_exemption_without_its_record() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &["--audit-queue-records", QUEUE_RECORDS]);
    let head = setup(&server);
    let wait = server.check(&with(claim(DOC, "2026-03-20", true), "min_seq", json!(head))).json();
    assert_eq!(wait["reason"], "emergency_exemption", "{wait}");

    let check = server.check;
    let started = Instant::now();
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|w| {
            std::thread::spawn(move || {
                let (mut settled, mut refused, mut causes) = (Vec::new(), 0u64, HashSet::new());
                for round in 0..MAX_ROUNDS {
                    if started.elapsed() > FLOOD_FOR {
                        break;
                    }
                    let ids: Vec<String> = (0..LINES).map(|n| format!("F-{w}-{round}-{n}")).collect();
                    // 3 of 4 lines emergency (exemptions), the rest rejects.
                    let lines: Vec<Value> = ids
                        .iter()
                        .enumerate()
                        .map(|(n, id)| with(claim(DOC, "2026-03-20", n % 4 != 0), "claim_id", json!(id)))
                        .collect();
                    let reply = post(check, "/v1/check/batch", &[], &json!({"lines": lines}));
                    assert_eq!(reply.status, 200, "{}", reply.text());
                    for (r, id) in reply.json()["results"].as_array().unwrap().iter().zip(&ids) {
                        match (r["reason"].as_str(), r["error"].as_str()) {
                            (Some("emergency_exemption"), _) => {
                                assert_eq!(r["verdict"], "settle", "{r}");
                                settled.push(id.clone());
                            }
                            (Some("practitioner_suspended"), _) => assert_eq!(r["verdict"], "reject", "{r}"),
                            (_, Some("audit_unavailable")) => {
                                refused += 1;
                                causes.insert(r["cause"].as_str().unwrap().to_owned());
                            }
                            other => panic!("unexpected answer {other:?}: {r}"),
                        }
                    }
                }
                (settled, refused, causes)
            })
        })
        .collect();
    // A well-behaved client meanwhile: single lines that settle `ok`.
    let mut latencies = Vec::new();
    while started.elapsed() < FLOOD_FOR {
        let t = Instant::now();
        let reply = server.check(&claim(DOC2, "2026-03-20", false));
        latencies.push(t.elapsed());
        assert_eq!((reply.status, &reply.json()["reason"]), (200, &json!("ok")), "{}", reply.text());
    }
    let (mut settled, mut refused, mut causes) = (Vec::new(), 0, HashSet::new());
    for f in flooders {
        let (s, r, c) = f.join().unwrap();
        settled.extend(s);
        refused += r;
        causes.extend(c);
    }
    latencies.sort();
    eprintln!(
        "well-behaved client during the flood: {} checks, median {:?}, max {:?}; flood: {} exemptions settled, {} refused ({causes:?})",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies.last().unwrap(),
        settled.len(),
        refused
    );
    assert!(!settled.is_empty(), "the flood settled exemptions");
    assert!(causes.iter().all(|c| c == "queue_full" || c == "timeout"), "{causes:?}");
    let metrics = request(server.check, "GET", "/metrics", &[], b"").text();
    let counter = |name: &str| {
        metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok()).unwrap()
    };
    assert_eq!(counter("claimgate_audit_exemptions_refused_total"), refused, "every refusal is counted");

    // Every exemption answered settle is in the log, with its claim_id as sent.
    assert_eq!(server.terminate().code(), Some(0));
    let exported = claimgate(&["audit", "export", "--data", data.path().to_str().unwrap()]);
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    let logged: HashSet<String> = String::from_utf8_lossy(&exported.stdout)
        .lines()
        .filter_map(|l| {
            let r: Value = serde_json::from_str(l).ok()?;
            (r["reason"] == "emergency_exemption").then(|| r["claim_id"].as_str().map(str::to_owned))?
        })
        .collect();
    let missing: Vec<&String> = settled.iter().filter(|c| !logged.contains(*c)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} settled exemptions have no record: {missing:?}",
        missing.len(),
        settled.len()
    );
}
