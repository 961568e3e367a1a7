//! The change feed, `GET /v1/changes` (issue 16): the standing changes of
//! the ledger's events in `seq` order, from the change log, so an
//! institution's system or a downstream service follows its own staff.
//!
//! A JSON page (`after_seq`, filters, `limit`), waiting up to `wait_ms` for
//! a change when there is none yet (long-poll); or, with
//! `Accept: text/event-stream`, Server-Sent Events, one event per `seq`
//! (`id` the seq, so a reconnect's `Last-Event-ID` resumes after it, with no
//! gap and no duplicate). Behind the read token (personal data). Bounded:
//! pages of at most [`MAX_PAGE_CHANGES`], waits of at most [`MAX_WAIT`],
//! at most [`MAX_CHANGE_STREAMS`] streams open, each sending through a
//! channel of [`STREAM_CHUNKS`] (a client that stops reading is cut off by
//! the write-stall timeout, not buffered for).

use super::api::{internal, json, stream, ApiError, Reply};
use super::gate::Gate;
use bytes::Bytes;
use claimgate_rules::changes::StandingChange;
use claimgate_rules::domain::{InstitutionCode, PractitionerCode, Seq};
use claimgate_store::changes::{ChangeFilter, ChangeLog, Page, MAX_PAGE_CHANGES};
use hyper::StatusCode;
use std::sync::Arc;
use std::time::Duration;

/// Change streams open at once; one more is refused with 503 `busy`.
pub const MAX_CHANGE_STREAMS: usize = 64;
/// Changes per page unless `limit` says otherwise.
pub const DEFAULT_PAGE_CHANGES: usize = 1_000;
/// The longest `wait_ms` a page may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// A stream with nothing to send says so this often (an SSE comment), so
/// proxies and clients see it alive.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Chunks a stream holds for a slow client before its task waits.
pub const STREAM_CHUNKS: usize = 16;
/// The query parameters of `GET /v1/changes`.
pub const PARAMETERS: [&str; 6] = ["after_seq", "institution", "practitioner", "region", "limit", "wait_ms"];

/// A feed request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedQuery {
    pub after_seq: Seq,
    pub filter: ChangeFilter,
    pub limit: usize,
    pub wait: Duration,
}

/// Parses the query (each parameter known and given once, R4) and, for a
/// stream, the `Last-Event-ID` it resumes after; the two must agree when
/// both are given.
pub fn parse(params: Vec<(String, String)>, last_event_id: Option<&str>) -> Result<FeedQuery, ApiError> {
    let number = |name: &str, v: &str| -> Result<u64, ApiError> {
        v.parse::<u64>().map_err(|_| ApiError::invalid(name, format!("`{name}` must be a whole number, not `{v}`")))
    };
    let mut q =
        FeedQuery { after_seq: 0, filter: ChangeFilter::default(), limit: DEFAULT_PAGE_CHANGES, wait: Duration::ZERO };
    let mut after = None;
    for (k, v) in params {
        match k.as_str() {
            "after_seq" => after = Some(number("after_seq", &v)?),
            "institution" | "practitioner" | "region" => filter_param(&k, v, &mut q.filter)?,
            "limit" => {
                q.limit = number("limit", &v)
                    .ok()
                    .map(|n| n as usize)
                    .filter(|n| (1..=MAX_PAGE_CHANGES).contains(n))
                    .ok_or_else(|| ApiError::invalid("limit", format!("`limit` must be 1 to {MAX_PAGE_CHANGES}")))?
            }
            "wait_ms" => {
                let ms = number("wait_ms", &v)?;
                if ms > MAX_WAIT.as_millis() as u64 {
                    return Err(ApiError::invalid(
                        "wait_ms",
                        format!("`wait_ms` must be 0 to {}", MAX_WAIT.as_millis()),
                    ));
                }
                q.wait = Duration::from_millis(ms)
            }
            other => unreachable!("the caller's strict query refused `{other}`"),
        }
    }
    let resumed = last_event_id
        .map(|id| {
            id.trim().parse::<u64>().map_err(|_| {
                ApiError::invalid("last-event-id", format!("`Last-Event-ID` is a seq this feed sent, not `{id}`"))
            })
        })
        .transpose()?;
    q.after_seq = match (after, resumed) {
        (Some(a), Some(r)) if a != r => {
            return Err(ApiError::invalid(
                "after_seq",
                format!(
                "`after_seq` ({a}) and `Last-Event-ID` ({r}) disagree; an ambiguous request is refused (R4): send one"
            ),
            ))
        }
        (a, r) => a.or(r).unwrap_or(0),
    };
    Ok(q)
}

/// Sets the change filter's parameter `k` (institution, practitioner or
/// region) from `v`, or names what is wrong with it.
pub fn filter_param(k: &str, v: String, filter: &mut ChangeFilter) -> Result<(), ApiError> {
    match k {
        "institution" => {
            filter.institution = Some(InstitutionCode::parse(&v).map_err(|e| ApiError::invalid("institution", e.0))?)
        }
        "practitioner" => {
            filter.practitioner = Some(PractitionerCode::parse(&v).map_err(|e| ApiError::invalid("practitioner", e.0))?)
        }
        _ => {
            if v.len() != 6 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::invalid(
                    "region",
                    format!("`region` is the six region digits of a code (110105 in H11010500001), not `{v}`"),
                ));
            }
            filter.region = Some(v)
        }
    }
    Ok(())
}

pub fn log_of(gate: &Gate) -> Result<Arc<ChangeLog>, ApiError> {
    gate.changes.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "changes_unavailable",
            if gate.config.change_feed {
                "the change log could not be opened on this node (its log says why); checks go on; ask another node"
            } else {
                "this node runs with --no-change-feed; ask a node that keeps the change log"
            },
        )
    })
}

async fn read_page(log: Arc<ChangeLog>, q: &FeedQuery, after: Seq, limit: usize) -> Result<Page, ApiError> {
    let filter = q.filter.clone();
    tokio::task::spawn_blocking(move || log.page(after, &filter, limit)).await.map_err(internal)?.map_err(internal)
}

/// A JSON page, after waiting (up to `q.wait`) for a change when the first
/// read finds none.
pub async fn page(gate: &Arc<Gate>, q: FeedQuery) -> Result<Reply, ApiError> {
    let log = log_of(gate)?;
    let deadline = tokio::time::Instant::now() + q.wait;
    let mut marks = gate.changes_watch.subscribe();
    let mut after = q.after_seq;
    loop {
        let page = read_page(log.clone(), &q, after, q.limit).await?;
        let waited_out = tokio::time::Instant::now() >= deadline;
        if !page.changes.is_empty() || waited_out {
            return Ok(json(StatusCode::OK, &PageBody::of(&page)));
        }
        // Nothing up to the mark matches: wait for the log to move past it.
        after = after.max(page.next_after_seq);
        let mark = page.mark;
        let moved = async { marks.wait_for(|m| *m > mark).await.is_ok() };
        if !tokio::time::timeout_at(deadline, moved).await.unwrap_or(false) {
            return Ok(json(StatusCode::OK, &PageBody::of(&page)));
        }
    }
}

/// A page as answered: the changes, where to go on, and how far the log is.
#[derive(serde::Serialize)]
struct PageBody<'a> {
    changes: &'a [StandingChange],
    next_after_seq: Seq,
    /// Every change of events up to this seq is in the feed.
    through_seq: Seq,
}

impl PageBody<'_> {
    fn of(page: &Page) -> PageBody<'_> {
        PageBody { changes: &page.changes, next_after_seq: page.next_after_seq, through_seq: page.mark }
    }
}

/// A stream event's data: one seq's changes.
#[derive(serde::Serialize)]
struct SeqBody<'a> {
    seq: Seq,
    changes: &'a [StandingChange],
}

/// What a waiting stream woke for.
enum Woke {
    Moved,
    Stop,
    Quiet,
}

/// One SSE event: a seq's changes (those the filter selects).
fn sse_event(seq: Seq, changes: &[StandingChange]) -> Bytes {
    let data = serde_json::to_string(&SeqBody { seq, changes }).expect("changes serialize");
    Bytes::from(format!("id: {seq}\nevent: changes\ndata: {data}\n\n"))
}

/// A stream of SSE events from `q.after_seq` on, until the client goes or
/// the server shuts down.
pub fn events(gate: &Arc<Gate>, q: FeedQuery) -> Result<Reply, ApiError> {
    let log = log_of(gate)?;
    let Ok(permit) = gate.change_streams.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("{MAX_CHANGE_STREAMS} change streams are open on this node; retry shortly, or read pages"),
        ));
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(STREAM_CHUNKS);
    let mut marks = gate.changes_watch.subscribe();
    let mut stopping = gate.shutting_down.subscribe();
    tokio::spawn(async move {
        let _permit = permit;
        // Reconnect after a second; then say the stream is up.
        if tx.send(Bytes::from_static(b"retry: 1000\n: claimgate change feed\n\n")).await.is_err() {
            return;
        }
        let mut after = q.after_seq;
        loop {
            let stop_now = *stopping.borrow();
            if stop_now {
                return;
            }
            let page = match read_page(log.clone(), &q, after, MAX_PAGE_CHANGES).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e.message, "change stream: reading the log failed; ending the stream");
                    return;
                }
            };
            for group in page.changes.chunk_by(|a, b| a.seq == b.seq) {
                if tx.send(sse_event(group[0].seq, group)).await.is_err() {
                    return; // the client went away
                }
            }
            let full = page.next_after_seq < page.mark;
            after = page.next_after_seq;
            if full {
                continue;
            }
            let mark = page.mark;
            let moved = async { marks.wait_for(|m| *m > mark).await.is_ok() };
            let stop = async { stopping.wait_for(|s| *s).await.map(|_| ()) };
            let woke = tokio::select! {
                alive = moved => if alive { Woke::Moved } else { Woke::Stop },
                _ = stop => Woke::Stop,
                _ = tokio::time::sleep(HEARTBEAT) => Woke::Quiet,
            };
            match woke {
                Woke::Moved => {}
                Woke::Stop => return,
                Woke::Quiet => {
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(stream("text/event-stream", rx))
}
