//! The soak's change-feed follower (issue 16): one consumer reads
//! `GET /v1/changes` pages while the soak runs (long-polling when it is at
//! the end), drains the feed once the writers stop, and afterwards the
//! changes it read, folded from an empty ledger, must equal the rules
//! engine's windows on the stored ledger: every pair where a practitioner
//! is filed and every institution.

use crate::gate::TOKEN;
use crate::http::Http;
use claimgate::domain::{InstitutionCode, PractitionerCode};
use claimgate::event::RecordedEvent;
use claimgate::policy::Policy;
use claimgate::rules::changes::{StandingChange, Windows};
use claimgate::rules::{Reason, World};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Timeout of one page (a long-poll waits at most 1 s of it).
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most changes the follower keeps (memory bound, about 200 bytes each);
/// past it the run is reported as not checked.
const MAX_CHANGES: usize = 4_000_000;
/// How long the drain after the writers stop may take.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// What the follower read.
#[derive(Default)]
pub struct Followed {
    pub changes: Vec<StandingChange>,
    pub pages: u64,
    pub problems: Vec<String>,
}

/// Follows the feed until `stop`, then until its `through_seq` reaches the
/// ledger head read then (`head`, filled in by the caller once writes end).
pub fn start(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    head: Arc<std::sync::Mutex<Option<u64>>>,
) -> std::thread::JoinHandle<Followed> {
    std::thread::spawn(move || {
        let mut http = Http::new(addr, PAGE_TIMEOUT);
        let mut out = Followed::default();
        let mut after = 0u64;
        let mut drain_started: Option<Instant> = None;
        loop {
            let target = if stop.load(Ordering::Relaxed) { *head.lock().expect("not poisoned") } else { None };
            if target.is_some() && drain_started.is_none() {
                drain_started = Some(Instant::now());
            }
            if drain_started.is_some_and(|t| t.elapsed() > DRAIN_LIMIT) {
                out.problems.push(format!("the change feed did not reach the head within {DRAIN_LIMIT:?}"));
                return out;
            }
            let path = format!("/v1/changes?after_seq={after}&limit=10000&wait_ms=1000");
            let page = match http.send("GET", &path, Some(TOKEN), b"") {
                Ok(r) if r.status == 200 => r.json(),
                Ok(r) => {
                    out.problems.push(format!("GET {path}: {} {}", r.status, String::from_utf8_lossy(&r.body)));
                    return out;
                }
                Err(e) => {
                    out.problems.push(format!("GET {path}: {e}"));
                    return out;
                }
            };
            out.pages += 1;
            let changes = page["changes"].as_array().cloned().unwrap_or_default();
            for c in &changes {
                match parse(c) {
                    Some(c) => out.changes.push(c),
                    None => {
                        out.problems.push(format!("a change the follower cannot read: {c}"));
                        return out;
                    }
                }
            }
            if out.changes.len() > MAX_CHANGES {
                out.problems.push(format!("more than {MAX_CHANGES} changes: the fold was not checked"));
                return out;
            }
            after = page["next_after_seq"].as_u64().unwrap_or(after);
            let through = page["through_seq"].as_u64().unwrap_or(0);
            if target.is_some_and(|t| through >= t && changes.is_empty()) {
                return out;
            }
        }
    })
}

fn parse(c: &serde_json::Value) -> Option<StandingChange> {
    let date = |k: &str| claimgate::domain::CivilDate::parse(c[k].as_str()?).ok();
    Some(StandingChange {
        seq: c["seq"].as_u64()?,
        kind: claimgate::event::Event::kind_named(c["kind"].as_str()?)?,
        practitioner: match c["practitioner"].as_str() {
            Some(p) => Some(PractitionerCode::parse(p).ok()?),
            None => None,
        },
        institution: InstitutionCode::parse(c["institution"].as_str()?).ok()?,
        from: date("from")?,
        until: if c["until"].is_null() { None } else { Some(date("until")?) },
        before: Reason::parse(c["before"].as_str()?)?,
        after: Reason::parse(c["after"].as_str()?)?,
    })
}

/// Folds the changes read and compares them with the rules engine's
/// windows on `stored`; returns the number of pairs and institutions
/// compared, or the first differences.
pub fn check(followed: &Followed, stored: &[RecordedEvent], problems: &mut Vec<String>) -> usize {
    let mut pairs: BTreeMap<(PractitionerCode, InstitutionCode), Windows> = BTreeMap::new();
    let mut institutions: BTreeMap<InstitutionCode, Windows> = BTreeMap::new();
    let mut known = HashSet::new();
    for c in &followed.changes {
        let windows = match c.practitioner {
            Some(p) => pairs.entry((p, c.institution)).or_insert_with(|| Windows::new_pair(known.contains(&p))),
            None => institutions.entry(c.institution).or_insert_with(|| Windows::constant(Reason::UnknownInstitution)),
        };
        if let Err(e) = windows.apply(c) {
            problems.push(format!("the feed's changes do not fold: {e}"));
            return 0;
        }
        known.extend(c.practitioner);
    }
    let world = World::from_events(stored, &Policy::default());
    let mut compared = 0;
    let mut differ = |what: String| {
        if problems.len() < 3 {
            problems.push(what);
        }
    };
    for p in world.practitioners() {
        let filed: std::collections::BTreeSet<InstitutionCode> =
            p.registrations.iter().map(|r| r.institution).collect();
        for &i in &filed {
            compared += 1;
            if pairs.get(&(p.code, i)) != Some(&Windows::pair(Some(p), i)) {
                differ(format!("the folded feed differs from the rules engine for {} at {i}", p.code));
            }
        }
    }
    for i in world.institutions() {
        compared += 1;
        let direct = Windows::institution(Some(i));
        let folded =
            institutions.get(&i.code).cloned().unwrap_or_else(|| Windows::constant(Reason::UnknownInstitution));
        if folded != direct {
            differ(format!("the folded feed differs from the rules engine for institution {}", i.code));
        }
    }
    compared
}
