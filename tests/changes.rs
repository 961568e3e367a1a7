//! Who is affected, over HTTP (issue 16): the change feed `GET /v1/changes`
//! on the real binary, as pages, long-polls and Server-Sent Events.
#![cfg(unix)]

mod common;
use common::postgres_url;
use common::server::*;
use common::PgSchema;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const SECOND_INST: &str = "H31011500007";

/// An SSE client on one connection: reads events as they come.
struct Stream {
    reader: BufReader<TcpStream>,
}

impl Stream {
    fn open(addr: SocketAddr, query: &str, last_event_id: Option<u64>) -> Stream {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let resume = last_event_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
        write!(
            socket,
            "GET /v1/changes{query} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {READ_TOKEN}\r\nAccept: text/event-stream\r\n{resume}\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(socket);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
        }
        Stream { reader }
    }

    /// The next event's `(id, data)`, skipping comments and chunk framing;
    /// `None` when the server closes the stream.
    fn next(&mut self) -> Option<(u64, Value)> {
        let (mut id, mut data) = (None, None);
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse().unwrap());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(v).unwrap());
            } else if line.is_empty() {
                if let (Some(id), Some(data)) = (id, data.take()) {
                    return Some((id, data));
                }
            }
        }
    }
}

/// Every change in the feed after `after`, page by page (small pages, so
/// paging itself is exercised).
fn all_pages(server: &Server, after: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = after;
    loop {
        let page = server.read_get(&format!("/v1/changes?after_seq={after}&limit=2")).json();
        let changes = page["changes"].as_array().unwrap().clone();
        let next = page["next_after_seq"].as_u64().unwrap();
        out.extend(changes.iter().cloned());
        if changes.is_empty() && next == after {
            return out;
        }
        after = next;
    }
}

/// Waits until the feed holds every change of events up to `seq`.
fn wait_through(server: &Server, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = server.read_get(&format!("/v1/changes?after_seq={seq}&limit=1")).json();
        if page["through_seq"].as_u64().unwrap() >= seq {
            return;
        }
        assert!(Instant::now() < deadline, "the feed never reached seq {seq}: {page}");
        let _ = server.read_get(&format!("/v1/changes?after_seq={seq}&wait_ms=500"));
    }
}

#[test]
fn the_feed_names_each_windows_change_with_its_cause_and_pages_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    server.event(&designated(INST, "2024-01-01"));
    server.event(&designated(SECOND_INST, "2024-01-01"));
    server.event(&registered(DOC, INST, "2024-01-01"));
    server.event(&registered(DOC, SECOND_INST, "2025-01-01"));
    let seq = server.event(&violation("V1", DOC, "2026-03-10", 9, "serious"));
    wait_through(&server, seq);

    // R14 and R16: the suspension at both institutions where DOC is filed.
    let page = server.read_get(&format!("/v1/changes?after_seq={}", seq - 1)).json();
    let suspension: Vec<(&str, &str, &str, &str)> = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(
                (&c["seq"], &c["kind"], &c["practitioner"]),
                (&json!(seq), &json!("violation_scored"), &json!(DOC))
            );
            (
                c["institution"].as_str().unwrap(),
                c["from"].as_str().unwrap(),
                c["before"].as_str().unwrap(),
                c["after"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        suspension,
        [
            (INST, "2026-03-10", "ok", "practitioner_suspended"),
            (SECOND_INST, "2026-03-10", "ok", "practitioner_suspended")
        ]
    );
    assert_eq!(page["changes"][0]["until"], "2026-05-10", "a total of 9: 2 months by the default policy (R14)");

    // Filters: one institution's staff, one region, one practitioner.
    let at_second = server.read_get(&format!("/v1/changes?institution={SECOND_INST}")).json();
    assert!(at_second["changes"].as_array().unwrap().iter().all(|c| c["institution"] == SECOND_INST), "{at_second}");
    let region = server.read_get("/v1/changes?region=310115").json();
    assert_eq!(region["changes"], at_second["changes"], "H31011500007 is region 310115");
    let everything = all_pages(&server, 0);
    let mine = server.read_get(&format!("/v1/changes?practitioner={DOC}")).json();
    let expected: Vec<&Value> = everything.iter().filter(|c| c["practitioner"] == DOC).collect();
    assert_eq!(mine["changes"].as_array().unwrap().iter().collect::<Vec<_>>(), expected);
    // Pages of 2 never split a seq and resume exactly: no gap, no repeat.
    let seqs: Vec<u64> = everything.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "{seqs:?}");
    assert_eq!(everything, server.read_get("/v1/changes?limit=10000").json()["changes"].as_array().unwrap().clone());

    // Asked past the log's end, a page stays where it was asked.
    let beyond = server.read_get("/v1/changes?after_seq=999999").json();
    assert_eq!((&beyond["changes"], &beyond["next_after_seq"]), (&json!([]), &json!(999999)), "{beyond}");
    // /readyz says how far the change log is.
    let ready = request(server.check, "GET", "/readyz", &[], b"").json();
    assert_eq!((&ready["change_log"]["seq"], &ready["change_log"]["behind"]), (&json!(seq), &json!(0)), "{ready}");
    // Behind the read token; refused names (R4).
    let anonymous = request(server.check, "GET", "/v1/changes", &[], b"");
    assert_error("no token", &anonymous, 401, "unauthorized", Field::Absent);
    let typo = server.read_get("/v1/changes?after=3");
    assert_error("a misspelt parameter", &typo, 400, "invalid_request", Field::Is("after"));
    let twice = server.read_get("/v1/changes?after_seq=1&after_seq=2");
    assert_error("a parameter twice", &twice, 400, "invalid_request", Field::Is("after_seq"));
    let region = server.read_get("/v1/changes?region=31011");
    assert_error("a short region", &region, 400, "invalid_request", Field::Is("region"));
}

#[test]
fn a_long_poll_answers_as_soon_as_a_change_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let seq = server.event(&designated(INST, "2024-01-01"));
    wait_through(&server, seq);
    let check = server.check;
    let waiting = std::thread::spawn(move || {
        let started = Instant::now();
        let reply = request(
            check,
            "GET",
            &format!("/v1/changes?after_seq={seq}&wait_ms=20000"),
            &[("Authorization", &bearer(READ_TOKEN))],
            b"",
        );
        (reply.json(), started.elapsed())
    });
    // The poll is waiting once the empty answer would be the only one.
    let next = server.event(&registered(DOC, INST, "2024-01-01"));
    let (page, took) = waiting.join().unwrap();
    assert!(took < Duration::from_secs(15), "the poll waited out its 20 s: {took:?}");
    let changes = page["changes"].as_array().unwrap();
    assert!(!changes.is_empty() && changes.iter().all(|c| c["seq"] == next), "{page}");
}

#[test]
fn an_sse_client_started_before_a_restart_resumes_after_it_without_a_gap_or_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    server.event(&designated(INST, "2024-01-01"));
    let mut stream = Stream::open(server.check, "", None);
    let mut seen: Vec<(u64, Value)> = Vec::new();
    let first = server.event(&registered(DOC, INST, "2024-01-01"));
    while seen.last().is_none_or(|(id, _)| *id < first) {
        seen.push(stream.next().expect("an event before the restart"));
    }
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(stream.next().is_none(), "the stream ends when the server stops");

    // Written while the client is away, then the client comes back.
    let mut again = Server::start(dir.path(), &[]);
    again.event(&designated(SECOND_INST, "2024-01-01"));
    again.event(&registered(DOC, SECOND_INST, "2025-01-01"));
    let last = again.event(&violation("V1", DOC, "2026-03-10", 9, "serious"));
    let resume_after = seen.last().unwrap().0;
    let mut stream = Stream::open(again.check, "", Some(resume_after));
    while seen.last().is_none_or(|(id, _)| *id < last) {
        seen.push(stream.next().expect("an event after the restart"));
    }
    let ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    let expected: Vec<u64> = (1..=last).collect();
    assert_eq!(ids, expected, "every seq once, in order, across the restart (every event here changes something)");
    for (id, data) in &seen {
        assert_eq!(&data["seq"], &json!(id));
        assert!(data["changes"].as_array().unwrap().iter().all(|c| c["seq"] == json!(id)));
    }
    // The stream's events are the pages' changes, grouped by seq.
    let streamed: Vec<Value> = seen.iter().flat_map(|(_, d)| d["changes"].as_array().unwrap().clone()).collect();
    assert_eq!(streamed, all_pages(&again, 0));
    let status = again.terminate();
    assert_eq!(status.code(), Some(0), "{status}");
}

/// INST and SECOND_INST designated, DOC filed at both (multi-site practice).
fn filed_at_two(server: &Server) {
    server.event(&designated(INST, "2024-01-01"));
    server.event(&designated(SECOND_INST, "2024-01-01"));
    server.event(&registered(DOC, INST, "2024-01-01"));
    server.event(&registered(DOC, SECOND_INST, "2024-06-01"));
}

/// The named text fields of each item of `list`.
fn fields<'a>(list: &'a Value, names: &[&str]) -> Vec<Vec<&'a str>> {
    list.as_array().unwrap().iter().map(|item| names.iter().map(|n| item[*n].as_str().unwrap()).collect()).collect()
}

/// Waits until the decision log's index answers `count` records.
fn wait_audited(server: &Server, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.admin_get("/v1/audit?limit=1000").json()["records"].as_array().unwrap().len() < count {
        assert!(Instant::now() < deadline, "the decision log never indexed {count} records");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_appeal_upheld_puts_the_lines_rejected_during_the_revoked_suspension_and_only_those_on_the_resettlement_list_r12()
{
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    server.event(&designated(INST, "2024-01-01"));
    server.event(&registered(DOC, INST, "2024-01-01"));
    let scored = server.event(&violation("V1", DOC, "2026-03-10", 9, "serious"));
    let line =
        |id: &str, date: &str| with(with(claim(DOC, date, false), "claim_id", json!(id)), "min_seq", json!(scored));
    // The second line carries the platform's references (NHSA-INTERFACES.md).
    let platform = |v: Value| {
        with(with(with(v, "mdtrt_id", json!("MD-77")), "setl_id", json!("ST-9")), "feedetl_sn", json!("F-1"))
    };
    assert_eq!(server.check(&line("L-during-1", "2026-03-15")).json()["reason"], "practitioner_suspended");
    assert_eq!(server.check(&platform(line("L-during-2", "2026-05-09"))).json()["reason"], "practitioner_suspended");
    let too_long = with(line("L-bad", "2026-03-15"), "setl_id", json!("S".repeat(65)));
    assert_error("a 65-byte setl_id", &server.check(&too_long), 400, "invalid_request", Field::Is("setl_id"));
    assert_eq!(server.check(&line("L-after", "2026-05-10")).json()["reason"], "ok", "the suspension ends (R14)");
    // Rejected for another reason, on a date the revocation does not touch.
    let stranger = with(
        with(claim("D110105000099", "2026-03-15", false), "claim_id", json!("L-stranger")),
        "min_seq",
        json!(scored),
    );
    assert_eq!(server.check(&stranger).json()["reason"], "unknown_practitioner");
    wait_audited(&server, 3);

    let revoked = server.event(&json!({"type": "violation_revoked", "violation_id": "V1", "effective": "2026-04-01"}));
    wait_through(&server, revoked);
    let list = server.read_get("/v1/readjudication?list=resettlement").json();
    let lines = list["resettlement"].as_array().unwrap();
    let ids: Vec<&str> = lines.iter().map(|l| l["claim_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert!(ids.contains(&"L-during-1") && ids.contains(&"L-during-2"), "{list}");
    let second = lines.iter().find(|l| l["claim_id"] == "L-during-2").unwrap();
    assert_eq!(
        (&second["mdtrt_id"], &second["setl_id"], &second["feedetl_sn"]),
        (&json!("MD-77"), &json!("ST-9"), &json!("F-1"))
    );
    for l in lines {
        assert_eq!(
            (&l["original"]["verdict"], &l["original"]["reason"]),
            (&json!("reject"), &json!("practitioner_suspended"))
        );
        assert_eq!(
            (&l["now"]["verdict"], &l["now"]["reason"], &l["now"]["seq"]),
            (&json!("settle"), &json!("ok"), &json!(revoked))
        );
        assert_eq!((&l["cause"]["seq"], &l["cause"]["kind"]), (&json!(revoked), &json!("violation_revoked")), "{l}");
    }
    // Paged from before the revocation: the same lines, under the same cause.
    let from_revocation =
        server.read_get(&format!("/v1/readjudication?list=resettlement&after_seq={}", revoked - 1)).json();
    assert_eq!(from_revocation["resettlement"], list["resettlement"]);
    let after = server.read_get(&format!("/v1/readjudication?list=resettlement&after_seq={revoked}")).json();
    assert_eq!(after["resettlement"], json!([]), "nothing changed since");
    // As CSV for the agency's tools.
    let csv = server.read_get("/v1/readjudication?list=resettlement&format=csv");
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let text = csv.text();
    assert!(text.starts_with("record,claim_id,practitioner_id,"), "{text}");
    assert_eq!(text.lines().filter(|l| l.contains("L-during-")).count(), 2, "{text}");
    let unnamed = server.read_get("/v1/readjudication");
    assert_error("no list named", &unnamed, 400, "invalid_request", Field::Is("list"));
    // The same list from the command line, every page, as JSON Lines.
    let token = dir.path().join("read-token");
    std::fs::write(&token, READ_TOKEN).unwrap();
    let gate = format!("http://{}", server.admin);
    let out = claimgate(&[
        "readjudication",
        "--gate",
        &gate,
        "--token-file",
        token.to_str().unwrap(),
        "--list",
        "resettlement",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(Value::Array(printed), list["resettlement"]);
}

#[test]
fn a_back_dated_violation_yields_a_recovery_window_at_each_institution_where_the_practitioner_is_filed_r6_r16() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    filed_at_two(&server);
    // Decided on 2025-03-10, recorded now: every day of its suspension is past.
    let seq = server.event(&violation("V-late", DOC, "2025-03-10", 9, "serious"));
    wait_through(&server, seq);
    let list = server.read_get("/v1/readjudication?list=recovery").json();
    assert!(list["recovery"].as_array().unwrap().iter().all(|w| w["seq"] == seq), "{list}");
    assert_eq!(
        fields(&list["recovery"], &["institution", "from", "until", "reason"]),
        [
            [INST, "2025-03-10", "2025-05-10", "practitioner_suspended"],
            [SECOND_INST, "2025-03-10", "2025-05-10", "practitioner_suspended"],
        ],
        "{list}"
    );
    // Registrations and designations blocked nothing that was settleable.
    let at_second = server.read_get(&format!("/v1/readjudication?list=recovery&institution={SECOND_INST}")).json();
    assert_eq!(at_second["recovery"].as_array().unwrap().len(), 1, "{at_second}");
}

/// Several nodes on one PostgreSQL ledger: each serves the same feed (the
/// changes are a function of the ledger), and each node's re-settlement list
/// holds the lines decided, and logged, on it; the agency's complete list is
/// the union of every node's (README, "Who is affected").
#[test]
fn on_one_postgresql_ledger_every_node_serves_the_same_feed_and_the_union_of_their_lists_is_complete() {
    let Some(url) = postgres_url("the two-node change-feed test") else { return };
    let schema = PgSchema::new(&url, "feed_nodes");
    let store = schema.url();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = Server::start(d1.path(), &["--store", &store]);
    let two = Server::start(d2.path(), &["--store", &store]);
    one.event(&designated(INST, "2024-01-01"));
    one.event(&registered(DOC, INST, "2024-01-01"));
    let scored = one.event(&violation("V1", DOC, "2026-03-10", 9, "serious"));
    let line = |id: &str| with(with(claim(DOC, "2026-03-15", false), "claim_id", json!(id)), "min_seq", json!(scored));
    assert_eq!(one.check(&line("L-on-one")).json()["reason"], "practitioner_suspended");
    assert_eq!(two.check(&line("L-on-two")).json()["reason"], "practitioner_suspended");
    wait_audited(&one, 1);
    wait_audited(&two, 1);
    let revoked = two.event(&json!({"type": "violation_revoked", "violation_id": "V1", "effective": "2026-04-01"}));
    wait_through(&one, revoked);
    wait_through(&two, revoked);
    assert_eq!(all_pages(&one, 0), all_pages(&two, 0), "one ledger, one feed, whichever node serves it");
    let ids = |node: &Server| -> Vec<String> {
        let list = node.read_get("/v1/readjudication?list=resettlement").json();
        list["resettlement"].as_array().unwrap().iter().map(|l| l["claim_id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!((ids(&one), ids(&two)), (vec!["L-on-one".to_owned()], vec!["L-on-two".to_owned()]));
    drop((one, two));
}

#[test]
fn the_sanction_list_names_who_is_suspended_on_a_date_at_each_institution_and_statistics_count_by_region_and_month() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    filed_at_two(&server);
    let seq = server.event(&violation("V1", DOC, "2026-03-10", 9, "serious"));
    let reject = with(claim(DOC, "2026-03-20", false), "min_seq", json!(seq));
    assert_eq!(server.check(&reject).json()["reason"], "practitioner_suspended");
    let exempt = with(claim(DOC, "2026-03-21", true), "min_seq", json!(seq));
    assert_eq!(server.check(&exempt).json()["reason"], "emergency_exemption");
    wait_through(&server, seq);
    wait_audited(&server, 2);

    let on = server.read_get("/v1/sanctions?on=2026-04-01").json();
    assert_eq!(
        fields(&on["sanctions"], &["institution", "kind", "from", "cause"]),
        [[INST, "suspension", "2026-03-10", "V1"], [SECOND_INST, "suspension", "2026-03-10", "V1"]],
        "{on}"
    );
    assert_eq!(server.read_get("/v1/sanctions?on=2026-05-10").json()["sanctions"], json!([]), "ended (R14)");
    assert_eq!(server.read_get("/v1/sanctions?on=2026-04-01&kind=termination").json()["sanctions"], json!([]));
    let second = server.read_get("/v1/sanctions?on=2026-04-01&region=310115").json();
    assert_eq!(second["sanctions"].as_array().unwrap().len(), 1, "{second}");
    let page = server.read_get("/v1/sanctions?on=2026-04-01&limit=1").json();
    let next = page["next_cursor"].as_str().unwrap().to_owned();
    let rest = server.read_get(&format!("/v1/sanctions?on=2026-04-01&limit=1&cursor={next}")).json();
    assert_eq!(rest["sanctions"][0]["institution"], SECOND_INST, "{rest}");
    let csv = server.read_get("/v1/sanctions?on=2026-04-01&format=csv").text();
    assert_eq!(csv.lines().count(), 3, "a header and two rows: {csv}");

    let stats = server.read_get("/v1/statistics").json();
    let march = stats["statistics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == "110105" && r["month"] == "2026-03")
        .cloned()
        .unwrap_or_else(|| panic!("no row for 110105, 2026-03: {stats}"));
    assert_eq!(
        (&march["violations"], &march["suspensions"], &march["terminations"], &march["exemptions"], &march["rejects"]),
        (&json!(1), &json!(1), &json!(0), &json!(1), &json!(1)),
        "{march}"
    );
    let bad = server.read_get("/v1/sanctions?on=2026-02-30");
    assert_error("an impossible date", &bad, 400, "invalid_request", Field::Is("on"));
}
