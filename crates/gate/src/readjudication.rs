//! `GET /v1/readjudication` (issue 16): what the fund owes and what it may
//! have to recover, from the change log and the decision log.
//!
//! - `list=resettlement`: the rejected lines in the decision log whose answer
//!   at the index's current `seq` differs (settle now, or another reason),
//!   each under the change that caused it: the latest change after the
//!   decision covering its service date, for its practitioner at its
//!   institution or for the institution; so a line is listed once, under
//!   the page of that change's `seq`. An appeal upheld (R12) puts the lines
//!   rejected during the revoked suspension here.
//! - `list=recovery`: the windows that became blocked (`ok` before) for
//!   service dates already past when the change was recorded, per
//!   institution (and practitioner): the agency matches them against the
//!   claims it settled (the gate logs no `ok` line). A back-dated violation
//!   (R6) yields one at each institution where the practitioner is filed.
//!
//! Paged by change `seq` (`after_seq`, `next_after_seq`), JSON or CSV
//! (`format=csv`), behind the read token. Bounded: [`MAX_CHANGES`] changes
//! read and [`MAX_LINES`] lines listed per page (a page ends early, at a
//! change boundary, rather than pass them).

use super::api::{audit_query_failed, csv_format, csv_reply, internal, json, ApiError, Reply};
use super::gate::Gate;
use claimgate_audit::{AuditQuery, AuditRecord};
use claimgate_rules::changes::StandingChange;
use claimgate_rules::domain::{CivilDate, InstitutionCode, PractitionerCode, Seq};
use claimgate_rules::{Claim, Decision, Verdict};
use claimgate_store::changes::{ChangeFilter, ChangeLog, RecoveryWindow};
use hyper::StatusCode;
use serde::Serialize;
use std::sync::Arc;

/// Changes one page reads.
pub const MAX_CHANGES: usize = 1_000;
/// Lines one re-settlement page lists; past it the page ends at the last
/// change whose lines all fit.
pub const MAX_LINES: usize = 10_000;
/// The query parameters of `GET /v1/readjudication`.
pub const PARAMETERS: [&str; 7] = ["list", "after_seq", "institution", "practitioner", "region", "limit", "format"];

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Resettlement,
    Recovery,
}

/// A request, parsed.
#[derive(Debug, Clone)]
pub struct Query {
    pub list: List,
    pub after_seq: Seq,
    pub filter: ChangeFilter,
    pub limit: usize,
    pub csv: bool,
}

pub fn parse(params: Vec<(String, String)>) -> Result<Query, ApiError> {
    let mut list = None;
    let mut q = Query {
        list: List::Resettlement,
        after_seq: 0,
        filter: ChangeFilter::default(),
        limit: MAX_CHANGES,
        csv: false,
    };
    for (k, v) in params {
        match k.as_str() {
            "list" => {
                list = Some(match v.as_str() {
                    "resettlement" => List::Resettlement,
                    "recovery" => List::Recovery,
                    _ => {
                        return Err(ApiError::invalid("list", format!("`list` is resettlement or recovery, not `{v}`")))
                    }
                })
            }
            "after_seq" => {
                q.after_seq = v.parse().map_err(|_| {
                    ApiError::invalid("after_seq", format!("`after_seq` must be a whole number, not `{v}`"))
                })?
            }
            "institution" | "practitioner" | "region" => super::feed::filter_param(&k, v, &mut q.filter)?,
            "limit" => {
                q.limit = v.parse().ok().filter(|n| (1..=MAX_CHANGES).contains(n)).ok_or_else(|| {
                    ApiError::invalid("limit", format!("`limit` (changes read) must be 1 to {MAX_CHANGES}"))
                })?
            }
            "format" => q.csv = csv_format(&v)?,
            other => unreachable!("the caller's strict query refused `{other}`"),
        }
    }
    q.list = list.ok_or_else(|| ApiError::invalid("list", "name the list: `list=resettlement` or `list=recovery`"))?;
    Ok(q)
}

/// An answer as given then and as it would be given now.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub verdict: Verdict,
    pub reason: claimgate_rules::Reason,
    /// The index version it was (or is) given at.
    pub seq: Seq,
}

/// One line of the re-settlement list.
#[derive(Debug, Clone, Serialize)]
pub struct Resettlement {
    /// The decision-log record.
    pub record: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<serde_json::Value>,
    /// The platform's references the line carried, if any.
    #[serde(flatten)]
    pub refs: claimgate_rules::claim::ClaimRefs,
    pub practitioner_id: String,
    pub institution_id: String,
    pub service_date: String,
    pub emergency: bool,
    pub original: Answer,
    pub now: Answer,
    pub cause: StandingChange,
}

pub async fn handle(gate: &Arc<Gate>, q: Query) -> Result<Reply, ApiError> {
    let log = super::feed::log_of(gate)?;
    let g = gate.clone();
    tokio::task::spawn_blocking(move || match q.list {
        List::Recovery => recovery(&log, &q),
        List::Resettlement => resettlement(&g, &log, &q),
    })
    .await
    .map_err(internal)?
}

fn recovery(log: &ChangeLog, q: &Query) -> Result<Reply, ApiError> {
    let page = log.recovery(q.after_seq, &q.filter, q.limit).map_err(internal)?;
    if q.csv {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["seq", "kind", "institution", "practitioner", "from", "until", "reason", "recorded_on"])
            .map_err(internal)?;
        for RecoveryWindow { change: c, until, recorded_on } in &page.windows {
            w.write_record([
                c.seq.to_string(),
                c.kind.to_owned(),
                c.institution.to_string(),
                c.practitioner.map(|p| p.to_string()).unwrap_or_default(),
                c.from.to_string(),
                until.map(|u| u.to_string()).unwrap_or_default(),
                c.after.as_str().to_owned(),
                recorded_on.to_string(),
            ])
            .map_err(internal)?;
        }
        return csv_page(w, page.next_after_seq);
    }
    #[derive(Serialize)]
    struct Window<'a> {
        seq: Seq,
        kind: &'a str,
        institution: InstitutionCode,
        #[serde(skip_serializing_if = "Option::is_none")]
        practitioner: Option<PractitionerCode>,
        from: CivilDate,
        until: Option<CivilDate>,
        reason: claimgate_rules::Reason,
        recorded_on: CivilDate,
    }
    let windows: Vec<Window> = page
        .windows
        .iter()
        .map(|w| Window {
            seq: w.change.seq,
            kind: w.change.kind,
            institution: w.change.institution,
            practitioner: w.change.practitioner,
            from: w.change.from,
            until: w.until,
            reason: w.change.after,
            recorded_on: w.recorded_on,
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"recovery": windows, "next_after_seq": page.next_after_seq, "through_seq": page.mark}),
    ))
}

/// The lines each change of the page caused to answer otherwise now.
fn resettlement(gate: &Gate, log: &ChangeLog, q: &Query) -> Result<Reply, ApiError> {
    let version = gate.index.load();
    let page = log.page(q.after_seq, &q.filter, q.limit).map_err(internal)?;
    let mut lines: Vec<Resettlement> = Vec::new();
    let mut next_after_seq = page.next_after_seq;
    for group in page.changes.chunk_by(|a, b| a.seq == b.seq) {
        let before = lines.len();
        for change in group {
            for r in rejected_during(gate, change)? {
                let Some(line) = reanswered(&version, log, change, &r)? else { continue };
                lines.push(line);
            }
        }
        if lines.len() > MAX_LINES {
            // This seq's lines do not fit: end the page before it.
            lines.truncate(before);
            next_after_seq = group[0].seq - 1;
            if before == 0 {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "too_many_lines",
                    format!("the change at seq {} alone re-answers more than {MAX_LINES} lines; narrow the request with institution or practitioner", group[0].seq),
                ));
            }
            break;
        }
    }
    if q.csv {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "record",
            "claim_id",
            "practitioner_id",
            "institution_id",
            "service_date",
            "emergency",
            "original_verdict",
            "original_reason",
            "original_seq",
            "now_verdict",
            "now_reason",
            "now_seq",
            "cause_seq",
            "cause_kind",
            "cause_from",
            "cause_until",
            "cause_before",
            "cause_after",
        ])
        .map_err(internal)?;
        for l in &lines {
            w.write_record([
                l.record.to_string(),
                l.claim_id
                    .as_ref()
                    .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned))
                    .unwrap_or_default(),
                l.practitioner_id.clone(),
                l.institution_id.clone(),
                l.service_date.clone(),
                l.emergency.to_string(),
                l.original.verdict.as_str().to_owned(),
                l.original.reason.as_str().to_owned(),
                l.original.seq.to_string(),
                l.now.verdict.as_str().to_owned(),
                l.now.reason.as_str().to_owned(),
                l.now.seq.to_string(),
                l.cause.seq.to_string(),
                l.cause.kind.to_owned(),
                l.cause.from.to_string(),
                l.cause.until.map(|u| u.to_string()).unwrap_or_default(),
                l.cause.before.as_str().to_owned(),
                l.cause.after.as_str().to_owned(),
            ])
            .map_err(internal)?;
        }
        return csv_page(w, next_after_seq);
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"resettlement": lines, "next_after_seq": next_after_seq, "through_seq": page.mark}),
    ))
}

/// The rejected lines decided before `change` on its dates, for its
/// practitioner at its institution (or anyone at the institution).
fn rejected_during(gate: &Gate, change: &StandingChange) -> Result<Vec<AuditRecord>, ApiError> {
    let mut out = Vec::new();
    let mut query = AuditQuery {
        practitioner: change.practitioner.map(|p| p.to_string()),
        institution: Some(change.institution.to_string()),
        from: Some(change.from.to_string()),
        until: change.until.map(|u| u.to_string()),
        limit: claimgate_audit::query::MAX_PAGE,
        ..AuditQuery::default()
    };
    loop {
        let page = gate.audit.index.query(&query).map_err(audit_query_failed)?;
        out.extend(page.records.into_iter().filter(|r| r.verdict == Verdict::Reject && r.seq < change.seq));
        if out.len() > MAX_LINES {
            return Ok(out);
        }
        match page.next_cursor.as_deref().and_then(claimgate_audit::query::parse_cursor) {
            Some(before) => query.before = Some(before),
            None => return Ok(out),
        }
    }
}

/// The line, if its answer now differs and `change` is the latest change
/// covering its date (so it is listed once, under that change).
fn reanswered(
    version: &claimgate_index::IndexVersion,
    log: &ChangeLog,
    change: &StandingChange,
    r: &AuditRecord,
) -> Result<Option<Resettlement>, ApiError> {
    let bad = |what: &str| internal(format!("decision record {} holds a bad {what}", r.id));
    let practitioner = PractitionerCode::parse(&r.practitioner_id).map_err(|_| bad("practitioner"))?;
    let institution = InstitutionCode::parse(&r.institution_id).map_err(|_| bad("institution"))?;
    let service_date = CivilDate::parse(&r.service_date).map_err(|_| bad("service date"))?;
    let claim = Claim { practitioner, institution, service_date, emergency: r.emergency };
    let now: Decision = version.check(&claim);
    if (now.verdict, now.reason) == (r.verdict, r.reason) {
        return Ok(None);
    }
    if log.covered_later(change.seq, practitioner, institution, service_date).map_err(internal)? {
        return Ok(None);
    }
    Ok(Some(Resettlement {
        record: r.id,
        claim_id: r.claim_id.clone(),
        refs: r.refs.clone(),
        practitioner_id: r.practitioner_id.clone(),
        institution_id: r.institution_id.clone(),
        service_date: r.service_date.clone(),
        emergency: r.emergency,
        original: Answer { verdict: r.verdict, reason: r.reason, seq: r.seq },
        now: Answer { verdict: now.verdict, reason: now.reason, seq: version.seq() },
        cause: change.clone(),
    }))
}

/// A CSV page, with where to resume in `x-next-after-seq`.
fn csv_page(w: csv::Writer<Vec<u8>>, next_after_seq: Seq) -> Result<Reply, ApiError> {
    let mut reply = csv_reply(w)?;
    reply.headers_mut().insert("x-next-after-seq", next_after_seq.into());
    Ok(reply)
}
