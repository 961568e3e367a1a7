//! Routing and handlers. Check-listener routes answer from the index only;
//! admin routes (events, snapshots, audit) exist only on the admin listener.
//! Writes need the admin bearer token; reads of personal data (integrity
//! files on either listener, the audit) take it or the read-only token.
//!
//! Over 600 lines on purpose: the routing table and every handler, so the
//! API's whole surface reads in one file; what a handler needs beyond
//! answering lives elsewhere (bodies in `bodies.rs`, the health snapshot in
//! `health.rs`, reads of the ledger in `queries.rs`).

use super::api::{constant_time_eq, json, read_body, text, ApiError, Reply};
use super::appends::{AppendRefusal, MAX_QUEUED_APPENDS};
use super::bodies::{parse_batch_body, parse_check_body, parse_events_body, CheckBatch, CheckLine, EventsBody};
use super::config::MAX_MIN_SEQ_WAIT;
use super::gate::Gate;
use super::metrics::Route;
use super::queries::{QueryRefusal, QUERY_READ_WAIT};
use super::snapshots::SnapshotRefusal;
use super::Listener;
use super::{feed, lists, readjudication};
use crate::clock::{Clock, SystemClock};
use claimgate_audit::query::{parse_cursor, MAX_PAGE as MAX_AUDIT_PAGE, REASONS as AUDIT_REASONS};
use claimgate_audit::{AuditQuery, AuditRecord, Unrecorded};
use claimgate_index::IndexVersion;
use claimgate_rules::domain::{CivilDate, CreditNotice, Grade, Inspection, InstitutionCode, PractitionerCode, Seq};
use claimgate_rules::event::Event;
use claimgate_rules::refusal::Refusal;
use claimgate_rules::{Claim, Decision, Reason, Verdict, Waivers};
use claimgate_store::ledger::{Appended, QUERY_CONNECTIONS};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{json as j, Value};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

pub async fn handle(gate: Arc<Gate>, which: Listener, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let started = Instant::now();
    let (route, result) = dispatch(&gate, which, req).await;
    let reply = result.unwrap_or_else(|e| e.reply());
    gate.metrics.request(route, reply.status().as_u16(), started.elapsed().as_micros() as u64);
    Ok(reply)
}

async fn dispatch(gate: &Arc<Gate>, which: Listener, req: Request<Incoming>) -> (Route, Result<Reply, ApiError>) {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let wrong_method = |allowed: &str| {
        Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("{path} takes {allowed}")))
    };
    match (which, segments.as_slice()) {
        (_, ["healthz"]) => (
            Route::Health,
            if method == Method::GET { Ok(json(StatusCode::OK, &j!({"status": "ok"}))) } else { wrong_method("GET") },
        ),
        (_, ["readyz"]) => {
            (Route::Health, if method == Method::GET { Ok(ready(gate).await) } else { wrong_method("GET") })
        }
        (_, ["metrics"]) => {
            (Route::Metrics, if method == Method::GET { Ok(metrics(gate).await) } else { wrong_method("GET") })
        }
        (Listener::Check, ["v1", "check"]) => (
            Route::Check,
            match no_query(&req) {
                Err(e) => Err(e),
                Ok(()) if method == Method::POST => check(gate, req).await,
                Ok(()) => wrong_method("POST"),
            },
        ),
        (Listener::Check, ["v1", "check", "batch"]) => (
            Route::CheckBatch,
            match no_query(&req) {
                Err(e) => Err(e),
                Ok(()) if method == Method::POST => check_batch(gate, req).await,
                Ok(()) => wrong_method("POST"),
            },
        ),
        (_, ["v1", kind @ ("practitioners" | "institutions"), code]) => {
            let (kind, code) = (kind.to_string(), code.to_string());
            (
                Route::Files,
                match authorize(gate, &req, Access::Read) {
                    Err(e) => Err(e),
                    Ok(()) if method == Method::GET => file(gate, &kind, &code, req.uri().query()).await,
                    Ok(()) => wrong_method("GET"),
                },
            )
        }
        (_, ["v1", "changes"]) => (
            Route::Changes,
            match authorize(gate, &req, Access::Read) {
                Err(e) => Err(e),
                Ok(()) if method == Method::GET => changes(gate, &req).await,
                Ok(()) => wrong_method("GET"),
            },
        ),
        (_, ["v1", "readjudication"]) => (
            Route::Readjudication,
            match authorize(gate, &req, Access::Read) {
                Err(e) => Err(e),
                Ok(()) if method == Method::GET => {
                    match strict_query(req.uri().query(), &readjudication::PARAMETERS).and_then(readjudication::parse) {
                        Ok(q) => readjudication::handle(gate, q).await,
                        Err(e) => Err(e),
                    }
                }
                Ok(()) => wrong_method("GET"),
            },
        ),
        (_, ["v1", which @ ("sanctions" | "statistics")]) => {
            let sanctions = *which == "sanctions";
            (
                Route::Readjudication,
                match authorize(gate, &req, Access::Read) {
                    Err(e) => Err(e),
                    Ok(()) if method == Method::GET => {
                        let known: &[&str] =
                            if sanctions { &lists::SANCTION_PARAMETERS } else { &lists::STATISTICS_PARAMETERS };
                        match strict_query(req.uri().query(), known) {
                            Ok(params) if sanctions => lists::sanctions(gate, params).await,
                            Ok(params) => lists::statistics(gate, params).await,
                            Err(e) => Err(e),
                        }
                    }
                    Ok(()) => wrong_method("GET"),
                },
            )
        }
        (Listener::Admin, ["v1", "events"]) => (
            Route::Events,
            match authorize(gate, &req, Access::Write).and_then(|()| no_query(&req)) {
                Err(e) => Err(e),
                Ok(()) if method == Method::POST => events(gate, req).await,
                Ok(()) => wrong_method("POST"),
            },
        ),
        (Listener::Admin, ["v1", "snapshot"]) => (
            Route::Snapshot,
            match authorize(gate, &req, Access::Write).and_then(|()| no_query(&req)) {
                Err(e) => Err(e),
                Ok(()) if method == Method::POST => write_snapshot(gate).await,
                Ok(()) => wrong_method("POST"),
            },
        ),
        (Listener::Admin, ["v1", "backup"]) => (
            Route::Backup,
            match authorize(gate, &req, Access::Write).and_then(|()| no_query(&req)) {
                Err(e) => Err(e),
                Ok(()) if method == Method::POST => backup(gate).await,
                Ok(()) => wrong_method("POST"),
            },
        ),
        (Listener::Admin, ["v1", "audit"]) => (
            Route::Audit,
            match authorize(gate, &req, Access::Read) {
                Err(e) => Err(e),
                Ok(()) if method == Method::GET => audit(gate, req.uri().query()).await,
                Ok(()) => wrong_method("GET"),
            },
        ),
        _ => (Route::Other, Err(ApiError::not_found(format!("no route {method} {path} on this listener")))),
    }
}

/// Refuses a query sent to an API route that takes none (R4: `/v1/check?min_seq=5`
/// must not be answered as if the wait had been asked for).
fn no_query(req: &Request<Incoming>) -> Result<(), ApiError> {
    strict_query(req.uri().query(), &[]).map(|_| ())
}

/// What a request does with its token: reads personal data (integrity
/// files, the audit) or writes (events, snapshots).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// Checks the bearer token: the admin token may do anything, the read-only
/// token (`--read-token-file`) only [`Access::Read`]. A missing or unknown
/// token is 401 `unauthorized`, the read token on a write 403 `forbidden`.
/// Both comparisons always run, in constant time, so the timing never says
/// which token a guess was close to.
fn authorize(gate: &Gate, req: &Request<Incoming>, access: Access) -> Result<(), ApiError> {
    let given = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().as_bytes());
    let matches = |expected: Option<&str>| {
        let expected = expected.unwrap_or_default().as_bytes();
        given.is_some_and(|token| constant_time_eq(token, expected)) && !expected.is_empty()
    };
    let (admin, read) = (matches(gate.config.admin_token.as_deref()), matches(gate.config.read_token.as_deref()));
    match (admin, read, access) {
        (true, _, _) | (false, true, Access::Read) => Ok(()),
        (false, true, Access::Write) => {
            gate.metrics.forbidden.fetch_add(1, Ordering::Relaxed);
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the read-only token cannot write: send the admin token for events and snapshots",
            ))
        }
        (false, false, _) => {
            gate.metrics.unauthorized.fetch_add(1, Ordering::Relaxed);
            let which = match access {
                Access::Read => "the read-only token or the admin token",
                Access::Write => "the admin token",
            };
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("send {which} as `Authorization: Bearer <token>`"),
            ))
        }
    }
}

/// The current version, waiting (bounded) until it reflects `min_seq`.
async fn version_at_least(gate: &Gate, min_seq: Option<Seq>) -> Result<Arc<IndexVersion>, ApiError> {
    let version = gate.version();
    let Some(min) = min_seq.filter(|m| *m > version.seq()) else { return Ok(version) };
    let mut rx = gate.seq_watch.subscribe();
    gate.wake_sync();
    let wait = gate.config.min_seq_wait.min(MAX_MIN_SEQ_WAIT);
    /// Counts this check among the waiting while it waits (however it ends).
    struct Waiting<'a>(&'a std::sync::atomic::AtomicU64);
    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    gate.metrics.min_seq_waiting.fetch_add(1, Ordering::Relaxed);
    let waiting = Waiting(&gate.metrics.min_seq_waiting);
    let reached = tokio::time::timeout(wait, async { rx.wait_for(|s| *s >= min).await.is_ok() }).await;
    drop(waiting);
    match reached {
        Ok(true) => Ok(gate.version()),
        _ => {
            gate.metrics.stale_index.fetch_add(1, Ordering::Relaxed);
            let now = gate.version().seq();
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stale_index",
                format!(
                    "the index is at seq {now}, not yet at the requested min_seq {min} after {} ms; retry",
                    wait.as_millis()
                ),
            ))
        }
    }
}

/// A check answer, in the order the API documents its fields.
#[derive(serde::Serialize)]
struct Answer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    claim_id: Option<&'a Value>,
    verdict: Verdict,
    reason: Reason,
    waived: Waivers,
    seq: Seq,
    institution_grade: Option<Grade>,
    advance_payment_withheld: bool,
    inspection: Inspection,
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<Value>,
}

/// Counts the decision and shapes the answer.
fn answer<'a>(gate: &Gate, line: &'a CheckLine, decision: &Decision, seq: Seq) -> Answer<'a> {
    gate.metrics.decision(decision.reason);
    let notice = CreditNotice::for_grade(decision.institution_grade);
    Answer {
        claim_id: line.claim_id.as_ref(),
        verdict: decision.verdict,
        reason: decision.reason,
        waived: decision.waived,
        seq,
        institution_grade: notice.institution_grade,
        advance_payment_withheld: notice.advance_payment_withheld,
        inspection: notice.inspection,
        explain: None,
    }
}

/// The decision record of a reject or an exemption (R19); `None` for `ok`,
/// which is never recorded and never waits.
fn audit_record(line: &CheckLine, decision: &Decision, seq: Seq) -> Option<AuditRecord> {
    if decision.reason == Reason::Ok {
        return None;
    }
    let at_ms = crate::clock::system_unix_ms();
    Some(AuditRecord {
        id: 0,
        at_ms,
        seq,
        claim_id: line.claim_id.clone(),
        practitioner_id: line.claim.practitioner.to_string(),
        institution_id: line.claim.institution.to_string(),
        service_date: line.claim.service_date.to_string(),
        emergency: line.claim.emergency,
        verdict: decision.verdict,
        reason: decision.reason,
        waived: decision.waived.iter().collect(),
        refs: line.refs.clone(),
    })
}

/// 503 `audit_unavailable`: an emergency exemption the decision log could
/// not record is not settled (R19: recorded before answered).
fn audit_unavailable(cause: Unrecorded) -> ApiError {
    let fix = match cause {
        Unrecorded::QueueFull | Unrecorded::Timeout => "the decision log is busy; retry shortly",
        Unrecorded::Closed => "the gate is shutting down; retry on another node",
        _ => "the decision log cannot write (see /readyz audit); retry on another node or once it is repaired",
    };
    ApiError {
        cause: Some(cause.cause()),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            format!("this line would settle as an emergency exemption, which is answered only once recorded (R19), and the decision log could not record it ({}): not settled; {fix}", cause.cause()),
        )
    }
}

/// The current version if it reflects `min_seq`, without cloning its `Arc`;
/// otherwise waits (bounded) for it.
async fn judge<T>(gate: &Gate, min_seq: Option<Seq>, f: impl FnOnce(&IndexVersion) -> T) -> Result<T, ApiError> {
    match min_seq {
        Some(min) if min > gate.index.peek().seq() => Ok(f(&*version_at_least(gate, Some(min)).await?)),
        _ => Ok(f(&gate.index.peek())),
    }
}

async fn check(gate: &Arc<Gate>, req: Request<Incoming>) -> Result<Reply, ApiError> {
    let body = read_body(gate, req).await?;
    let line = parse_check_body(&body)?;
    let (out, record) = if line.explain {
        let version = version_at_least(gate, line.min_seq).await?;
        let decision = version.check(&line.claim);
        let mut out = answer(gate, &line, &decision, version.seq());
        out.explain = Some(explain(gate, line.claim, version.seq()).await?);
        (out, audit_record(&line, &decision, version.seq()))
    } else {
        judge(gate, line.min_seq, |version| {
            let decision = version.check(&line.claim);
            (answer(gate, &line, &decision, version.seq()), audit_record(&line, &decision, version.seq()))
        })
        .await?
    };
    let Some(record) = record else { return Ok(json(StatusCode::OK, &out)) };
    let exemption = record.is_exemption();
    let recording = gate.start_recording(vec![record]);
    let reply = json(StatusCode::OK, &out);
    match gate.recorded(recording).await {
        Err(cause) if exemption => Err(audit_unavailable(cause)),
        _ => Ok(reply),
    }
}

async fn check_batch(gate: &Arc<Gate>, req: Request<Incoming>) -> Result<Reply, ApiError> {
    let CheckBatch { lines: parsed, min_seq: batch_min_seq } = parse_batch_body(&read_body(gate, req).await?)?;
    let min_seq = parsed.iter().filter_map(|l| l.as_ref().ok()?.min_seq).chain(batch_min_seq).max();
    let claims: Vec<Claim> = parsed.iter().filter_map(|l| l.as_ref().ok().map(|l| l.claim)).collect();
    let explains = parsed.iter().any(|l| l.as_ref().is_ok_and(|l| l.explain));
    let version = if explains { Some(version_at_least(gate, min_seq).await?) } else { None };
    let judge_all = |version: &IndexVersion| {
        let mut decisions = Vec::with_capacity(claims.len());
        version.check_batch(&claims, &mut decisions);
        (decisions, version.seq())
    };
    let (decisions, seq) = match &version {
        Some(v) => judge_all(v),
        None => judge(gate, min_seq, judge_all).await?,
    };
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Result_<'a> {
        Answer(Answer<'a>),
        Error(std::borrow::Cow<'a, ApiError>),
    }
    let mut decisions = decisions.into_iter();
    let mut results = Vec::with_capacity(parsed.len());
    let mut records = Vec::new();
    // Which results are exemptions waiting for their record.
    let mut exemptions = Vec::new();
    for line in &parsed {
        results.push(match line {
            Ok(line) => {
                let decision = decisions.next().expect("one decision per valid line");
                let mut out = answer(gate, line, &decision, seq);
                if line.explain {
                    out.explain = Some(explain(gate, line.claim, seq).await?);
                }
                if let Some(record) = audit_record(line, &decision, seq) {
                    if record.is_exemption() {
                        exemptions.push(results.len());
                    }
                    records.push(record);
                }
                Result_::Answer(out)
            }
            Err(e) => Result_::Error(std::borrow::Cow::Borrowed(e)),
        });
    }
    #[derive(serde::Serialize)]
    struct BatchAnswer<'a> {
        seq: Seq,
        results: Vec<Result_<'a>>,
    }
    if records.is_empty() {
        return Ok(json(StatusCode::OK, &BatchAnswer { seq, results }));
    }
    // One group for the whole batch: one wait, one fsync shared with
    // whatever else arrived meanwhile; the answer is shaped while it runs.
    let recording = gate.start_recording(records);
    let mut answer = BatchAnswer { seq, results };
    let reply = json(StatusCode::OK, &answer);
    match gate.recorded(recording).await {
        Ok(()) => Ok(reply),
        Err(cause) => {
            let refused = audit_unavailable(cause);
            for i in exemptions {
                answer.results[i] = Result_::Error(std::borrow::Cow::Owned(refused.clone()));
            }
            Ok(json(StatusCode::OK, &answer))
        }
    }
}

/// The facts behind a decision: the two histories read on a query thread,
/// explained by [`crate::explain::facts`] as of the answer's `seq`.
async fn explain(gate: &Arc<Gate>, claim: Claim, seq: Seq) -> Result<Value, ApiError> {
    let ledger = gate.ledger.clone();
    let (p_events, i_events) = on_query_thread(gate, move || {
        let p = ledger.query_practitioner_history(claim.practitioner)?;
        let i = ledger.query_institution_history(claim.institution)?;
        Ok((p, i))
    })
    .await?;
    Ok(crate::explain::facts(&claim, p_events, i_events, seq, gate.ledger.policy()))
}

/// Runs `read` (a ledger read a client asked for) on a query thread, or
/// answers 503 `busy` (counted) when the bounded queue is full or the
/// bounded wait ran out.
async fn on_query_thread<T: Send + 'static>(
    gate: &Gate,
    read: impl FnOnce() -> Result<T, claimgate_store::ledger::LedgerError> + Send + 'static,
) -> Result<T, ApiError> {
    let answer = gate.queries.run(read).await.map_err(|refusal| {
        let why = match refusal {
            QueryRefusal::QueueFull => {
                format!("{} reads already wait (--max-queued-reads)", gate.config.max_queued_reads)
            }
            QueryRefusal::WaitedTooLong => format!("none came free within {} s", QUERY_READ_WAIT.as_secs()),
            QueryRefusal::Panicked => return ApiError::internal("the ledger read failed (a bug: see the log)"),
        };
        gate.metrics.query_reads_busy.fetch_add(1, Ordering::Relaxed);
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("integrity files and explain read the ledger on {QUERY_CONNECTIONS} threads, all busy: {why}; retry shortly"),
        )
    })?;
    answer.map_err(|e| ApiError::ledger(&e, ""))
}

async fn file(gate: &Arc<Gate>, kind: &str, code: &str, query: Option<&str>) -> Result<Reply, ApiError> {
    let params = strict_query(query, &FILE_PARAMETERS)?;
    let as_of = match params.iter().find(|(k, _)| k == "as_of") {
        Some((_, v)) => CivilDate::parse(v).map_err(|e| ApiError::invalid("as_of", e.0))?,
        None => SystemClock.today(),
    };
    let ledger = gate.ledger.clone();
    // The file is read, derived and serialized (megabytes for a long
    // history) on a query thread, never on a tokio worker.
    let reply = if kind == "practitioners" {
        let code = PractitionerCode::parse(code).map_err(|e| ApiError::invalid("practitioner", e.0))?;
        on_query_thread(gate, move || Ok(ledger.practitioner_file(code, as_of)?.map(|f| json(StatusCode::OK, &f))))
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_practitioner",
                    format!("the ledger has no events for {code}"),
                )
            })
    } else {
        let code = InstitutionCode::parse(code).map_err(|e| ApiError::invalid("institution", e.0))?;
        on_query_thread(gate, move || Ok(ledger.institution_file(code, as_of)?.map(|f| json(StatusCode::OK, &f))))
            .await?
            .ok_or_else(|| {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_institution", format!("{code} was never designated"))
            })
    };
    reply
}

async fn events(gate: &Arc<Gate>, req: Request<Incoming>) -> Result<Reply, ApiError> {
    let EventsBody { events: parsed, single } = parse_events_body(&read_body(gate, req).await?, gate.ledger.policy())?;
    let valid: Vec<Event> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    // Group commit: with the other requests waiting, in one transaction.
    let appended = gate.appends.append(valid).await.map_err(|refusal| match refusal {
        AppendRefusal::QueueFull => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "{MAX_QUEUED_APPENDS} requests already wait to append; nothing from this one was stored: retry shortly"
            ),
        ),
        AppendRefusal::Stopped => {
            ApiError::internal("the appending thread stopped (a bug: see the log); nothing was stored")
        }
    })?;
    gate.note_append(appended.as_ref().map(|_| ()).map_err(|e| &**e));
    let appended = appended.map_err(|e| ApiError::ledger(&e, "; nothing from this request was stored"))?;
    if let Some(seq) = appended.iter().filter_map(|a| a.as_ref().ok().map(|a| a.seq)).max() {
        gate.note_head_at_least(seq);
    }
    gate.wake_sync();
    let mut appended = appended.into_iter();
    let outcomes: Vec<Result<Appended, Refusal>> =
        parsed.into_iter().map(|p| p.and_then(|_| appended.next().expect("one outcome per valid event"))).collect();
    let count = |keep: fn(&Result<Appended, Refusal>) -> bool| outcomes.iter().filter(|o| keep(o)).count() as u64;
    gate.metrics.events_accepted.fetch_add(count(|o| o.as_ref().is_ok_and(|a| !a.already_recorded)), Ordering::Relaxed);
    gate.metrics
        .events_already_recorded
        .fetch_add(count(|o| o.as_ref().is_ok_and(|a| a.already_recorded)), Ordering::Relaxed);
    gate.metrics.events_refused.fetch_add(count(|o| o.is_err()), Ordering::Relaxed);
    // A re-send (R7a) says so; a first acceptance keeps the plain shape.
    let accepted = |a: Appended, mut answer: Value| {
        if a.already_recorded {
            answer["already_recorded"] = Value::Bool(true);
        }
        answer
    };
    if single {
        return match outcomes.into_iter().next().expect("one event") {
            Ok(a) => Ok(json(StatusCode::OK, &accepted(a, j!({"seq": a.seq})))),
            Err(refusal) => Err(refusal.into()),
        };
    }
    let lines: Vec<Value> = outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| match o {
            Ok(a) => accepted(a, j!({"event": i, "seq": a.seq})),
            Err(r) => j!({"event": i, "error": r.code, "field": r.field, "message": r.message}),
        })
        .collect();
    Ok(json(StatusCode::OK, &lines))
}

/// Writes a snapshot of the served index now (merging its overlay first).
async fn write_snapshot(gate: &Arc<Gate>) -> Result<Reply, ApiError> {
    let g = gate.clone();
    let written = tokio::task::spawn_blocking(move || g.snapshots.write_now(&g.version()))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match written {
        Ok(w) => Ok(json(
            StatusCode::OK,
            &j!({"snapshot": w.path.display().to_string(), "seq": w.seq, "bytes": w.bytes, "seconds": w.seconds}),
        )),
        Err(e @ SnapshotRefusal::Busy) => {
            Err(ApiError::new(StatusCode::CONFLICT, "snapshot_in_progress", e.to_string()))
        }
        Err(SnapshotRefusal::Failed(e)) => Err(match e.disk_fault() {
            // The disk, not the gate: 503 with the cause and the fix.
            Some((cause, fix)) => ApiError {
                cause: Some(cause),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "snapshot_failed",
                    format!("{e}: {fix}; the previous snapshots are intact, nothing partial was left"),
                )
            },
            None => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "snapshot_failed",
                format!("{e}; the previous snapshots are intact"),
            ),
        }),
    }
}

/// Writes an online backup of the embedded ledger into `DATA/backups/`
/// (one at a time; the request waits for it), answering where, up to which
/// `seq`, and how large.
async fn backup(gate: &Arc<Gate>) -> Result<Reply, ApiError> {
    if gate.backup_running.swap(true, Ordering::AcqRel) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "backup_in_progress",
            "a backup is being written; wait for its answer (one at a time)".to_owned(),
        ));
    }
    let g = gate.clone();
    let started = std::time::Instant::now();
    let written = tokio::task::spawn_blocking(move || g.ledger.backup(&crate::clock::utc_stamp())).await;
    gate.backup_running.store(false, Ordering::Release);
    match written.map_err(|e| ApiError::internal(e.to_string()))? {
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "backup_not_supported",
            "this gate's ledger is on PostgreSQL: back it up with PostgreSQL's own tools (pg_dump --schema NAME, or base backups with WAL archiving), or `claimgate export --store URL`".to_owned(),
        )),
        Some(Ok(b)) => Ok(json(
            StatusCode::OK,
            &j!({"backup": b.path.display().to_string(), "seq": b.seq, "bytes": b.bytes,
                 "seconds": started.elapsed().as_secs_f64()}),
        )),
        Some(Err(e)) => Err(ApiError {
            cause: Some(e.cause()),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backup_failed",
                format!("{e}; no backup was written (nothing partial is left under a backup's name)"),
            )
        }),
    }
}

async fn audit(gate: &Arc<Gate>, query: Option<&str>) -> Result<Reply, ApiError> {
    let mut q = AuditQuery::all();
    for (k, v) in strict_query(query, &AUDIT_PARAMETERS)? {
        match k.as_str() {
            "practitioner" => {
                q.practitioner =
                    Some(PractitionerCode::parse(&v).map_err(|e| ApiError::invalid("practitioner", e.0))?.to_string())
            }
            "institution" => {
                q.institution =
                    Some(InstitutionCode::parse(&v).map_err(|e| ApiError::invalid("institution", e.0))?.to_string())
            }
            "from" => q.from = Some(CivilDate::parse(&v).map_err(|e| ApiError::invalid("from", e.0))?.to_string()),
            "until" => q.until = Some(CivilDate::parse(&v).map_err(|e| ApiError::invalid("until", e.0))?.to_string()),
            "claim_id" => {
                if v.is_empty() || v.len() > claimgate_rules::claim::MAX_CLAIM_ID_BYTES {
                    return Err(ApiError::invalid(
                        "claim_id",
                        format!("`claim_id` must be 1 to {} bytes", claimgate_rules::claim::MAX_CLAIM_ID_BYTES),
                    ));
                }
                q.claim_id = Some(v)
            }
            "reason" => {
                if !AUDIT_REASONS.contains(&v.as_str()) {
                    return Err(ApiError::invalid(
                        "reason",
                        format!("`reason` must be one of {} (ok lines are not recorded)", AUDIT_REASONS.join(", ")),
                    ));
                }
                q.reason = Some(v)
            }
            "cursor" => {
                q.before = Some(parse_cursor(&v).ok_or_else(|| {
                    ApiError::invalid(
                        "cursor",
                        "`cursor` is not one this gate gave out: pass a `next_cursor` unchanged",
                    )
                })?)
            }
            "limit" => {
                q.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_AUDIT_PAGE).contains(n))
                    .ok_or_else(|| ApiError::invalid("limit", format!("`limit` must be 1 to {MAX_AUDIT_PAGE}")))?
            }
            other => unreachable!("strict_query refused `{other}`"),
        }
    }
    let g = gate.clone();
    let page = tokio::task::spawn_blocking(move || g.audit.index.query(&q))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(super::api::audit_query_failed)?;
    Ok(json(StatusCode::OK, &j!({"records": page.records, "next_cursor": page.next_cursor})))
}

/// `GET /v1/changes`: a page, or with `Accept: text/event-stream` a stream
/// resumed after `Last-Event-ID` (see `feed.rs`).
async fn changes(gate: &Arc<Gate>, req: &Request<Incoming>) -> Result<Reply, ApiError> {
    let params = strict_query(req.uri().query(), &feed::PARAMETERS)?;
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let streaming = header("accept").is_some_and(|a| a.contains("text/event-stream"));
    if streaming {
        let q = feed::parse(params, header("last-event-id"))?;
        if !q.wait.is_zero() {
            return Err(ApiError::invalid("wait_ms", "`wait_ms` is for pages; a stream waits by itself"));
        }
        feed::events(gate, q)
    } else {
        feed::page(gate, feed::parse(params, None)?).await
    }
}

async fn ready(gate: &Arc<Gate>) -> Reply {
    let health = gate.health();
    let status = if health.readiness.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json(status, &health.readyz())
}

async fn metrics(gate: &Arc<Gate>) -> Reply {
    text(StatusCode::OK, crate::metrics::CONTENT_TYPE, gate.metrics.render(&gate.health().gauges()))
}

/// The query parameters of the integrity file (R22).
const FILE_PARAMETERS: [&str; 1] = ["as_of"];
/// The filters of `GET /v1/audit`.
const AUDIT_PARAMETERS: [&str; 8] =
    ["practitioner", "institution", "from", "until", "claim_id", "reason", "cursor", "limit"];

/// A route's query parameters (R4): each one the route knows, each given
/// once, or `invalid_request` naming the parameter (`?asof=` must never
/// answer as of today, nor `?as_of=a&as_of=b` pick one of the two). A route
/// that takes none passes `&[]`, so any query it is sent is refused.
fn strict_query(query: Option<&str>, known: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let params = parse_query(query);
    for (i, (k, _)) in params.iter().enumerate() {
        let shown = claimgate_rules::strict_json::quoted_key(k);
        if !known.contains(&k.as_str()) {
            let takes = if known.is_empty() {
                "this route takes no query parameters".to_owned()
            } else {
                format!("this route takes {}", known.join(", "))
            };
            return Err(ApiError::invalid(k, format!("unknown query parameter `{shown}`; {takes}")));
        }
        if params[..i].iter().any(|(seen, _)| seen == k) {
            return Err(ApiError::invalid(
                k,
                format!("the query parameter `{shown}` is given more than once; an ambiguous query is refused (R4): give it once"),
            ));
        }
    }
    Ok(params)
}

/// `a=1&b=2` into pairs, with `%XX` and `+` decoded.
fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    // `+` is a space in a query (HTML forms); `%2B` decodes to `+` after it.
    let decode = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(query: &str, known: &[&str]) -> ApiError {
        strict_query(Some(query), known).expect_err(query)
    }

    #[test]
    fn a_query_names_only_known_parameters_each_once_r4() {
        let known = ["as_of"];
        assert_eq!(strict_query(Some("as_of=2026-03-01"), &known).unwrap(), [("as_of".into(), "2026-03-01".into())]);
        assert!(strict_query(None, &known).unwrap().is_empty());
        assert!(strict_query(Some("&"), &[]).unwrap().is_empty(), "an empty query names nothing");
        let unknown = refused("asof=2026-03-01", &known);
        assert_eq!((unknown.error.as_str(), unknown.field.as_deref()), ("invalid_request", Some("asof")));
        assert!(unknown.message.contains("takes as_of"), "{}", unknown.message);
        let twice = refused("as_of=2026-03-01&as_of=2026-04-01", &known);
        assert_eq!(twice.field.as_deref(), Some("as_of"));
        assert!(twice.message.contains("more than once"), "{}", twice.message);
        // Equal after decoding is the same parameter.
        assert_eq!(refused("as_of=a&as%5Fof=b", &known).field.as_deref(), Some("as_of"));
        assert!(refused("min_seq=5", &[]).message.contains("takes no query parameters"));
    }
}
