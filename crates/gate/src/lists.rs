//! The lists agencies publish (issue 16): `GET /v1/sanctions`, who is
//! suspended or terminated on a date (a row per institution where the
//! practitioner is filed, R16), and `GET /v1/statistics`, counts by region
//! and month of violations, suspensions, terminations (from the change log's
//! standings) and of exemptions and rejects (this node's decision log).
//! JSON or CSV (`format=csv`), behind the read token.

use super::api::{audit_query_failed, csv_format, csv_reply, internal, json, ApiError, Reply};
use super::gate::Gate;
use crate::clock::{Clock, SystemClock};
use claimgate_rules::domain::{CivilDate, Seq};
use claimgate_store::changes::{SanctionQuery, MAX_PAGE_CHANGES};
use hyper::StatusCode;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The query parameters of `GET /v1/sanctions`.
pub const SANCTION_PARAMETERS: [&str; 7] = ["on", "institution", "region", "kind", "cursor", "limit", "format"];
/// The query parameters of `GET /v1/statistics`.
pub const STATISTICS_PARAMETERS: [&str; 1] = ["format"];
/// Rows per sanctions page unless `limit` says otherwise.
pub const DEFAULT_SANCTIONS_PAGE: usize = 1_000;

/// `GET /v1/sanctions`: `on` (default today, China Standard Time), filters,
/// a page in (practitioner, institution) order resumed by `cursor`.
pub async fn sanctions(gate: &Arc<Gate>, params: Vec<(String, String)>) -> Result<Reply, ApiError> {
    let log = super::feed::log_of(gate)?;
    let mut on = SystemClock.today();
    let mut csv = false;
    let mut q = SanctionQuery { limit: DEFAULT_SANCTIONS_PAGE, ..SanctionQuery::default() };
    let mut filter = claimgate_store::changes::ChangeFilter::default();
    for (k, v) in params {
        match k.as_str() {
            "on" => on = CivilDate::parse(&v).map_err(|e| ApiError::invalid("on", e.0))?,
            "institution" | "region" => super::feed::filter_param(&k, v, &mut filter)?,
            "kind" => {
                q.kind = Some(match v.as_str() {
                    "suspension" => "suspension",
                    "termination" => "termination",
                    _ => {
                        return Err(ApiError::invalid(
                            "kind",
                            format!("`kind` is suspension or termination, not `{v}`"),
                        ))
                    }
                })
            }
            "cursor" => {
                let (p, i) = v.split_once(':').ok_or_else(|| {
                    ApiError::invalid(
                        "cursor",
                        "`cursor` is not one this gate gave out: pass a `next_cursor` unchanged",
                    )
                })?;
                q.after = Some((p.to_owned(), i.to_owned()))
            }
            "limit" => {
                q.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE_CHANGES).contains(n))
                    .ok_or_else(|| ApiError::invalid("limit", format!("`limit` must be 1 to {MAX_PAGE_CHANGES}")))?
            }
            "format" => csv = csv_format(&v)?,
            other => unreachable!("the caller's strict query refused `{other}`"),
        }
    }
    q.institution = filter.institution;
    q.region = filter.region;
    let limit = q.limit;
    let (rows, mark) =
        tokio::task::spawn_blocking(move || log.sanctions_on(on, &q)).await.map_err(internal)?.map_err(internal)?;
    let next_cursor =
        (rows.len() == limit).then(|| rows.last().map(|r| format!("{}:{}", r.practitioner, r.institution))).flatten();
    if csv {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["practitioner", "institution", "kind", "from", "until", "cause", "cause_seq", "year_total"])
            .map_err(internal)?;
        for r in &rows {
            w.write_record([
                r.practitioner.clone(),
                r.institution.clone(),
                r.kind.clone(),
                r.from.clone(),
                r.until.clone().unwrap_or_default(),
                r.cause.clone(),
                r.cause_seq.to_string(),
                r.year_total.to_string(),
            ])
            .map_err(internal)?;
        }
        return csv_reply(w);
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"on": on, "sanctions": rows, "next_cursor": next_cursor, "through_seq": mark}),
    ))
}

/// One region and month of `GET /v1/statistics`.
#[derive(Debug, Default, serde::Serialize)]
struct Row {
    region: String,
    month: String,
    violations: u64,
    suspensions: u64,
    terminations: u64,
    exemptions: u64,
    rejects: u64,
}

/// `GET /v1/statistics`: every region and month with anything to count.
pub async fn statistics(gate: &Arc<Gate>, params: Vec<(String, String)>) -> Result<Reply, ApiError> {
    let log = super::feed::log_of(gate)?;
    let mut csv = false;
    for (k, v) in params {
        match k.as_str() {
            "format" => csv = csv_format(&v)?,
            other => unreachable!("the caller's strict query refused `{other}`"),
        }
    }
    let g = gate.clone();
    let (standing, decided, mark): (Vec<_>, Vec<_>, Seq) = tokio::task::spawn_blocking(move || {
        let (standing, mark) = log.statistics().map_err(internal)?;
        let decided = g.audit.index.counts().map_err(audit_query_failed)?;
        Ok::<_, ApiError>((standing, decided, mark))
    })
    .await
    .map_err(internal)??;
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    fn row<'a>(rows: &'a mut BTreeMap<(String, String), Row>, region: &str, month: &str) -> &'a mut Row {
        rows.entry((region.to_owned(), month.to_owned())).or_insert_with(|| Row {
            region: region.to_owned(),
            month: month.to_owned(),
            ..Row::default()
        })
    }
    for c in &standing {
        let r = row(&mut rows, &c.region, &c.month);
        match c.what.as_str() {
            "violations" => r.violations += c.count,
            "suspension" => r.suspensions += c.count,
            _ => r.terminations += c.count,
        }
    }
    for c in &decided {
        let r = row(&mut rows, &c.region, &c.month);
        if c.reason == "emergency_exemption" {
            r.exemptions += c.count
        } else {
            r.rejects += c.count
        }
    }
    if csv {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["region", "month", "violations", "suspensions", "terminations", "exemptions", "rejects"])
            .map_err(internal)?;
        for r in rows.values() {
            w.write_record([
                r.region.clone(),
                r.month.clone(),
                r.violations.to_string(),
                r.suspensions.to_string(),
                r.terminations.to_string(),
                r.exemptions.to_string(),
                r.rejects.to_string(),
            ])
            .map_err(internal)?;
        }
        return csv_reply(w);
    }
    let rows: Vec<&Row> = rows.values().collect();
    Ok(json(StatusCode::OK, &serde_json::json!({"statistics": rows, "through_seq": mark})))
}
