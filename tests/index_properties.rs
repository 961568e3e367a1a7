//! Property tests of the eligibility index (`crates/index`) against the rules
//! engine: for generated histories, after every appended event, the index —
//! kept current by deltas ([`Syncer`]), built fresh from the ledger, and with
//! its overlay merged into a new base — answers every generated claim exactly
//! like [`World`] (R17-R19 over the state of R6-R16 and R20-R21).
//!
//! Histories come from the generator tests/properties.rs uses too
//! (`common/histories.rs`), with its rough knobs ([`Knobs::ROUGH`]), because
//! all implementations see the same ledger:
//! same-day ties (R6 breaks them by `seq`), practitioners and institutions
//! that first appear mid-history, events naming ones not registered or
//! designated yet (refused `unknown_*`), registrations dated inside a ban
//! (`registration_banned`, R15), repairs past the yearly cap
//! (`repair_limit_exceeded`, R13), revocations of revoked or unknown
//! violations, and resent or altered violations (accepted once, or
//! `duplicate_violation`, R8). Refused events leave the ledger unchanged and
//! the index must not move either.
//!
//! A second property appends a history in chunks and steps the syncer in
//! between: every published version at seq S answers like the rules engine
//! over exactly the events with seq <= S. A deterministic test then makes one
//! step stop at `MAX_SYNC_BATCH` while the ledger already holds later events
//! about the same entities (the only way, single-threaded, to have the
//! re-derived histories run past the version's seq).
//!
//! (Over 600 lines: a test file, its length is its builder and cases.)

use claimgate::changes::{ChangeFilter, ChangeLog};
use claimgate::domain::{CivilDate, InstitutionCode, PractitionerCode, Seq};
use claimgate::event::{Event, RecordedEvent};
use claimgate::index::changes::catch_up_step;
use claimgate::index::sync::MAX_SYNC_BATCH;
use claimgate::index::{build, IndexHandle, IndexVersion, Syncer, MAX_CHECK_BATCH};
use claimgate::ledger::{AppendError, Ledger};
use claimgate::policy::Policy;
use claimgate::rules::changes as rule_changes;
use claimgate::rules::{Claim, Decision, InstitutionStanding, PractitionerStanding, Reason, Verdict, World};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

#[path = "common/histories.rs"]
mod histories;
use histories::*;

/// Dates checked after each single append (the full grid is checked at the end).
const STEP_DATES: usize = 40;

fn practitioner_codes() -> Vec<PractitionerCode> {
    PRACTITIONERS.iter().chain([&STRANGER_PRACTITIONER]).map(|c| PractitionerCode::parse(c).unwrap()).collect()
}

fn institution_codes() -> Vec<InstitutionCode> {
    INSTITUTIONS.iter().chain([&STRANGER_INSTITUTION]).map(|c| InstitutionCode::parse(c).unwrap()).collect()
}

// ---------------------------------------------------------------------------
// The builder: raw choices -> event JSON, in arrival order
// ---------------------------------------------------------------------------

/// Mostly one of the first `known` (of the setup), sometimes any of `all`.
fn pick(index: &Index, known: usize, all: usize) -> usize {
    let k = index.index(3 * known + all);
    if k < 3 * known {
        k % known
    } else {
        k - 3 * known
    }
}

/// The whole history: setup (designations, registrations, deregistrations),
/// then the body. Body events mostly name practitioners and institutions of
/// the setup, sometimes others (refused, or registered or designated late).
fn build_history(setup: &RawSetup, ops: &[RawOp]) -> Vec<Value> {
    let n_inst = setup.institutions;
    let n_prac = setup.practitioners.len();
    let mut events = setup_events(setup);

    let mut violations: Vec<Value> = Vec::new();
    let mut body: Vec<Value> = Vec::new();
    for op in ops {
        let prac = |i: &Index| pick(i, n_prac, PRACTITIONERS.len());
        let inst = |i: &Index| pick(i, n_inst, INSTITUTIONS.len());
        let json = match op {
            RawOp::Violation(raw) => {
                let (v, _) = violation_json(
                    &format!("V{}", violations.len()),
                    prac(&raw.prac),
                    inst(&raw.inst),
                    offset(body_start(), raw.day),
                    raw,
                );
                violations.push(v.clone());
                v
            }
            RawOp::Repair { prac: p, day, points } => {
                json!({"type": "points_repaired", "event_id": format!("R-{}", body.len()), "practitioner": PRACTITIONERS[prac(p)], "points": points,
                       "effective": offset(body_start(), *day).to_string()})
            }
            RawOp::Revoke { pick, day } => {
                let k = pick.index(violations.len() + 1);
                let id = violations.get(k).map_or("V-never-scored", |v| v["violation_id"].as_str().unwrap());
                json!({"type": "violation_revoked", "violation_id": id,
                       "effective": offset(body_start(), *day).to_string()})
            }
            RawOp::Suspend { inst: i, day, len } => {
                let effective = offset(body_start(), *day);
                json!({"type": "institution_suspended", "institution": INSTITUTIONS[inst(i)],
                       "effective": effective.to_string(), "until": offset(effective, *len).to_string()})
            }
            RawOp::Terminate { inst: i, day } => {
                json!({"type": "institution_terminated", "institution": INSTITUTIONS[inst(i)],
                       "effective": offset(body_start(), *day).to_string()})
            }
            RawOp::Designate { inst: i, day } => {
                json!({"type": "institution_designated", "institution": INSTITUTIONS[inst(i)],
                       "effective": offset(body_start(), *day).to_string()})
            }
            RawOp::Rate { inst: i, year, half_points, direct_e } => {
                let codes: Vec<&str> = if *direct_e { vec!["refused_rectification"] } else { vec![] };
                json!({"type": "institution_rated", "institution": INSTITUTIONS[inst(i)], "year": year,
                       "score": f64::from(*half_points) / 2.0, "direct_e": codes})
            }
            RawOp::Deregister { prac: p, inst: i, day } => {
                json!({"type": "practitioner_deregistered", "practitioner": PRACTITIONERS[prac(p)],
                       "institution": INSTITUTIONS[inst(i)], "effective": offset(body_start(), *day).to_string()})
            }
            RawOp::Register { prac: p, inst: i, day, late } => {
                let effective = if *late { offset(late_start(), *day) } else { offset(body_start(), *day) };
                json!({"type": "practitioner_registered", "practitioner": PRACTITIONERS[prac(p)],
                       "institution": INSTITUTIONS[inst(i)], "effective": effective.to_string()})
            }
            RawOp::Resend { pick, altered } => {
                if body.is_empty() {
                    continue;
                }
                let mut again: Value = body[pick.index(body.len())].clone();
                if *altered && again["type"] == "violation_scored" {
                    let severity = again["severity"].as_str().unwrap();
                    let start = SEVERITIES.iter().find(|(s, _)| *s == severity).unwrap().1;
                    let points = again["points"].as_u64().unwrap() as u32;
                    again["points"] = json!(start + (points - start + 1) % 3);
                }
                again
            }
        };
        body.push(json);
    }
    events.extend(body);
    events
}

// ---------------------------------------------------------------------------
// Dates and claims
// ---------------------------------------------------------------------------

fn with_day_before(dates: &mut BTreeSet<CivilDate>, d: CivilDate) {
    dates.insert(d);
    if let Some(p) = d.pred() {
        dates.insert(p);
    }
}

/// Dates always checked: the ends of the calendar (open intervals), year
/// boundaries, a leap day, and dates before, inside and after the body years.
fn fixed_dates() -> BTreeSet<CivilDate> {
    let mut dates =
        BTreeSet::from([CivilDate::MIN, CivilDate::MAX, ymd(2026, 7, 1), ymd(2028, 2, 29), ymd(2031, 6, 30)]);
    for y in [2024, 2029, 2033, 2036] {
        with_day_before(&mut dates, ymd(y, 1, 1));
    }
    dates
}

fn event_dates(event: &Event, dates: &mut BTreeSet<CivilDate>) {
    with_day_before(dates, event.effective());
    if let Event::InstitutionSuspended { until, .. } = event {
        with_day_before(dates, *until);
    }
}

fn practitioner_dates(p: &PractitionerStanding, dates: &mut BTreeSet<CivilDate>) {
    for r in &p.registrations {
        for d in [Some(r.interval.from), r.interval.until].into_iter().flatten() {
            with_day_before(dates, d);
        }
    }
    for s in &p.sanctions {
        for d in [Some(s.interval.from), s.interval.until, s.ban_until].into_iter().flatten() {
            with_day_before(dates, d);
        }
    }
}

fn institution_dates(i: &InstitutionStanding, dates: &mut BTreeSet<CivilDate>) {
    for a in &i.agreements {
        for d in [Some(a.from), a.until].into_iter().flatten() {
            with_day_before(dates, d);
        }
    }
    for s in &i.suspensions {
        for d in [Some(s.interval.from), s.interval.until].into_iter().flatten() {
            with_day_before(dates, d);
        }
    }
}

/// Every event date and every interval end the world knows, each with the
/// day before.
fn boundary_dates(events: &[RecordedEvent], world: &World) -> BTreeSet<CivilDate> {
    let mut dates = BTreeSet::new();
    for r in events {
        event_dates(&r.event, &mut dates);
    }
    for p in world.practitioners() {
        practitioner_dates(p, &mut dates);
    }
    for i in world.institutions() {
        institution_dates(i, &mut dates);
    }
    dates
}

/// The full date set: every 2 weeks over 2024-2034, every year boundary,
/// the fixed dates and every boundary.
fn full_dates(boundaries: &BTreeSet<CivilDate>) -> BTreeSet<CivilDate> {
    let mut dates = fixed_dates();
    let mut d = ymd(2024, 1, 1);
    while d <= ymd(2034, 12, 31) {
        dates.insert(d);
        d = offset(d, 14);
    }
    for y in 2024..=2036 {
        with_day_before(&mut dates, ymd(y, 1, 1));
    }
    dates.extend(boundaries);
    dates
}

/// About [`STEP_DATES`] dates: the fixed ones, the `focus` dates (the latest
/// event's and its entities' boundaries) and an evenly spread sample of the
/// other boundaries that rotates with `turn`, so that over a history every
/// boundary is visited.
fn sampled_dates(focus: BTreeSet<CivilDate>, boundaries: &BTreeSet<CivilDate>, turn: usize) -> BTreeSet<CivilDate> {
    let mut dates = fixed_dates();
    dates.extend(focus);
    let rest: Vec<CivilDate> = boundaries.difference(&dates).copied().collect();
    let budget = STEP_DATES.saturating_sub(dates.len()).max(8);
    let stride = rest.len().div_ceil(budget).max(1);
    dates.extend(rest.iter().skip(turn % stride).step_by(stride));
    dates
}

/// The boundaries of the latest event and of the entities it names.
fn focus_dates(event: &Event, world: &World) -> BTreeSet<CivilDate> {
    let mut dates = BTreeSet::new();
    event_dates(event, &mut dates);
    let owner = match event {
        Event::ViolationRevoked { violation_id, .. } => world
            .practitioners()
            .find(|p| p.violations.iter().any(|v| &v.violation.violation_id == violation_id))
            .map(|p| p.code),
        other => other.practitioner(),
    };
    if let Some(p) = owner.and_then(|p| world.practitioner(p)) {
        practitioner_dates(p, &mut dates);
    }
    if let Some(i) = event.institution().and_then(|i| world.institution(i)) {
        institution_dates(i, &mut dates);
    }
    dates
}

/// Every practitioner (with the stranger) x every institution (with the
/// stranger) x `dates` x emergency or not.
fn grid(dates: &BTreeSet<CivilDate>) -> Vec<Claim> {
    let institutions = institution_codes();
    let mut claims = Vec::new();
    for practitioner in practitioner_codes() {
        for &institution in &institutions {
            for &service_date in dates {
                for emergency in [false, true] {
                    claims.push(Claim { practitioner, institution, service_date, emergency });
                }
            }
        }
    }
    claims
}

// ---------------------------------------------------------------------------
// Comparing the index with the rules engine
// ---------------------------------------------------------------------------

/// Every `version` answers every claim like `world` does, one claim at a time
/// and in batches (of at most [`MAX_CHECK_BATCH`] lines).
fn assert_answers_like(
    world: &World,
    versions: &[(&str, &IndexVersion)],
    claims: &[Claim],
    context: &dyn Fn() -> String,
) -> Result<(), TestCaseError> {
    let expected: Vec<Decision> = claims.iter().map(|c| world.decide(c)).collect();
    let mut batch: Vec<Decision> = Vec::with_capacity(claims.len());
    for (name, version) in versions {
        batch.clear();
        for chunk in claims.chunks(MAX_CHECK_BATCH) {
            version.check_batch(chunk, &mut batch);
        }
        prop_assert_eq!(batch.len(), claims.len(), "{} check_batch answered every line", name);
        for ((claim, want), batched) in claims.iter().zip(&expected).zip(&batch) {
            let single = version.check(claim);
            prop_assert_eq!(
                single,
                *want,
                "{} index (seq {}) disagrees with the rules engine (seq {}) on {:?}\n{}",
                name,
                version.seq(),
                world.seq(),
                claim,
                context()
            );
            prop_assert_eq!(
                *batched,
                single,
                "{} check_batch disagrees with check on {:?}\n{}",
                name,
                claim,
                context()
            );
        }
    }
    Ok(())
}

/// The ledger events with `seq <= seq`.
fn events_upto(events: &[RecordedEvent], seq: Seq) -> Vec<RecordedEvent> {
    events.iter().filter(|r| r.seq <= seq).cloned().collect()
}

/// What happened to each sent event, for failure messages.
fn describe(log: &[String]) -> String {
    let mut out = String::from("history sent so far:\n");
    for line in log {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Appends one event, returns a log line; the ledger head moves by one
/// exactly when the event is newly accepted.
fn append(ledger: &Ledger, value: &Value, policy: &Policy) -> Result<(bool, String), TestCaseError> {
    let event = Event::parse(value, policy).map_err(|e| TestCaseError::fail(format!("generated {value}: {e}")))?;
    let before = ledger.head().expect("head");
    let (moved, line) = match ledger.append(&event) {
        Ok(a) if a.already_recorded => {
            prop_assert!(a.seq <= before);
            (false, format!("already recorded as seq {}: {value}", a.seq))
        }
        Ok(a) => {
            prop_assert_eq!(a.seq, before + 1);
            (true, format!("seq {}: {value}", a.seq))
        }
        Err(AppendError::Refused(r)) => (false, format!("refused {}: {value}", r.code)),
        Err(AppendError::Ledger(e)) => panic!("ledger failure: {e}"),
    };
    prop_assert_eq!(ledger.head().expect("head"), before + Seq::from(moved));
    Ok((moved, line))
}

fn config() -> Config {
    // `failure_persistence: None`: a failure is reported with its minimal
    // input, but no regression file is written into the source tree.
    Config { cases: 64, failure_persistence: None, max_shrink_iters: 4096, ..Config::default() }
}

// ---------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// After every appended event (accepted or refused): the delta-synced
    /// version is at the ledger head, and it, a fresh build and the rules
    /// engine decide every claim of the grid alike, one by one and in
    /// batches. At `merge_at` the overlay is folded into a new base and the
    /// deltas continue on top of it (base and overlay both non-empty). At the
    /// end the full date grid is checked, with the merged version too.
    #[test]
    fn index_answers_like_the_rules_engine_after_every_append(
        setup in setup_strategy(&Knobs::ROUGH),
        ops in ops_strategy(&Knobs::ROUGH),
        merge_at in prop::collection::btree_set(0usize..64, 0..=2),
        cache_limit in 0usize..=24,
    ) {
        let policy = Policy::default();
        let history = build_history(&setup, &ops);
        let ledger = Arc::new(Ledger::open_in_memory(&policy).expect("in-memory ledger"));
        let handle = Arc::new(IndexHandle::new(build::from_ledger(&ledger).expect("empty build")));
        // The history cache kept, refilled after it is dropped for its size,
        // and (0) dropped after every step: the same answers every way.
        let syncer = Syncer::new(ledger.clone(), handle.clone()).with_history_cache(cache_limit);
        let mut log: Vec<String> = Vec::new();
        for (n, value) in history.iter().enumerate() {
            let (moved, line) = append(&ledger, value, &policy)?;
            log.push(line);
            let before = handle.load().seq();
            let synced = syncer.catch_up().expect("sync");
            let head = ledger.head().expect("head");
            let delta = handle.load();
            prop_assert_eq!(synced, head, "catch_up returns the head\n{}", describe(&log));
            prop_assert_eq!(delta.seq(), head, "delta version at the head\n{}", describe(&log));
            if !moved {
                prop_assert_eq!(before, head, "a refused or repeated event publishes nothing");
            }

            let events = ledger.all_events().expect("read back");
            let world = World::from_events(&events, &policy);
            let fresh = build::from_ledger(&ledger).expect("fresh build");
            prop_assert_eq!(fresh.seq(), head);
            prop_assert_eq!(world.seq(), head);
            let event = Event::parse(value, &policy).unwrap();
            let dates = sampled_dates(focus_dates(&event, &world), &boundary_dates(&events, &world), n);
            let context = || describe(&log);
            assert_answers_like(&world, &[("delta", &delta), ("fresh", &fresh)], &grid(&dates), &context)?;

            if merge_at.contains(&n) {
                let merged = delta.merged();
                prop_assert_eq!(merged.seq(), head);
                prop_assert_eq!(merged.overlay_len(), 0);
                handle.publish(merged);
            }
        }

        let events = ledger.all_events().expect("read back");
        let world = World::from_events(&events, &policy);
        let delta = handle.load();
        let fresh = build::from_ledger(&ledger).expect("fresh build");
        let merged = delta.merged();
        let head = ledger.head().expect("head");
        prop_assert_eq!((delta.seq(), fresh.seq(), merged.seq()), (head, head, head));
        prop_assert_eq!(merged.overlay_len(), 0);
        let claims = grid(&full_dates(&boundary_dates(&events, &world)));
        let context = || describe(&log);
        assert_answers_like(
            &world,
            &[("delta", &delta), ("fresh", &fresh), ("merged", &merged), ("fresh merged", &fresh.merged())],
            &claims,
            &context,
        )?;
    }

    /// A history appended in chunks, with `step()` called 0-2 times between
    /// chunks, starting from an index built fresh after a prefix (a non-empty
    /// base). Every published version's seq never goes back, and a version
    /// at seq S answers exactly like the rules engine over the events with
    /// seq <= S: right after it is published, once the ledger has moved on
    /// past it (before the next step), and at the end, when the ledger holds
    /// the whole history.
    #[test]
    fn a_version_at_seq_s_reflects_exactly_the_events_up_to_s(
        setup in setup_strategy(&Knobs::ROUGH),
        ops in ops_strategy(&Knobs::ROUGH),
        prefix in 0usize..24,
        chunks in prop::collection::vec(1usize..=8, 1..=16),
        steps in prop::collection::vec(0usize..=2, 16),
    ) {
        let policy = Policy::default();
        let history = build_history(&setup, &ops);
        let ledger = Arc::new(Ledger::open_in_memory(&policy).expect("in-memory ledger"));
        let mut log: Vec<String> = Vec::new();
        let prefix = prefix.min(history.len());
        for value in &history[..prefix] {
            log.push(append(&ledger, value, &policy)?.1);
        }
        let handle = Arc::new(IndexHandle::new(build::from_ledger(&ledger).expect("prefix build")));
        // The change log starts behind (at 0, the index at the prefix): the
        // sync records nothing until the catch-up brings it to the index.
        let dir = tempfile::tempdir().expect("temp dir");
        let changes = Arc::new(ChangeLog::open(dir.path(), ledger.id()).expect("change log"));
        let today = CivilDate::parse("2026-12-07").unwrap();
        let syncer = Syncer::new(ledger.clone(), handle.clone()).with_changes(changes.clone(), Arc::new(move || today));
        prop_assert_eq!(handle.load().seq(), ledger.head().expect("head"));

        let check = |version: &IndexVersion, log: &[String], what: &str| -> Result<(), TestCaseError> {
            let all = ledger.all_events().expect("read back");
            let upto = events_upto(&all, version.seq());
            let world = World::from_events(&upto, &policy);
            prop_assert_eq!(world.seq(), version.seq(), "the ledger holds seq {}", version.seq());
            let dates = sampled_dates(BTreeSet::new(), &boundary_dates(&upto, &world), log.len());
            let context = || format!("{what}; ledger head {}\n{}", ledger.head().unwrap(), describe(log));
            assert_answers_like(&world, &[(what, version)], &grid(&dates), &context)
        };

        let mut published: Vec<Arc<IndexVersion>> = vec![handle.load()];
        let mut rest = &history[prefix..];
        let mut k = 0;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(chunks[k % chunks.len()].min(rest.len()));
            rest = tail;
            for value in chunk {
                log.push(append(&ledger, value, &policy)?.1);
            }
            // The ledger has moved on; the version in service has not.
            let stale = handle.load();
            check(&stale, &log, "version in service before the step")?;
            if k % 3 == 1 {
                while catch_up_step(&ledger, &changes, handle.load().seq(), today).expect("catch-up").is_some() {}
                prop_assert_eq!(changes.mark(), handle.load().seq(), "caught up to the index");
            }
            for _ in 0..steps[k % steps.len()] {
                let before = handle.load().seq();
                let stepped = syncer.step().expect("step");
                let version = handle.load();
                prop_assert!(version.seq() >= before, "seq went back: {} -> {}", before, version.seq());
                prop_assert!(version.seq() <= ledger.head().expect("head"));
                match stepped {
                    Some(seq) => {
                        prop_assert!(seq > before, "a step that publishes moves forward");
                        prop_assert_eq!(seq, version.seq());
                        check(&version, &log, "version just published")?;
                        published.push(version);
                    }
                    None => {
                        prop_assert_eq!(version.seq(), before, "an empty step publishes nothing");
                        prop_assert_eq!(before, ledger.head().expect("head"));
                    }
                }
            }
            k += 1;
        }
        let last = syncer.catch_up().expect("catch up");
        prop_assert_eq!(last, ledger.head().expect("head"));
        published.push(handle.load());
        // Whether recorded by the sync's steps or by the catch-up, the log
        // holds exactly the changes of the ledger's events (issue 16).
        while catch_up_step(&ledger, &changes, last, today).expect("catch-up").is_some() {}
        let mut recorded = Vec::new();
        let mut after = 0;
        loop {
            let page = changes.page(after, &ChangeFilter::default(), 5).expect("page");
            recorded.extend(page.changes);
            if page.next_after_seq == after || page.next_after_seq == page.mark && after == page.mark {
                break;
            }
            after = page.next_after_seq;
        }
        let all = ledger.all_events().expect("read back");
        prop_assert_eq!(recorded, rule_changes::changes_of(&all, &policy));
        // The sanctions kept beside the changes are the world's, on every
        // date a sanction starts or is still in force the day before it ends.
        let world = World::from_events(&all, &policy);
        let mut days = BTreeSet::new();
        for p in world.practitioners() {
            for s in &p.sanctions {
                days.insert(s.interval.from);
                days.extend(s.interval.until.and_then(|u| u.pred()));
            }
        }
        for day in days {
            let q = claimgate::changes::SanctionQuery { limit: 10_000, ..Default::default() };
            let (rows, _) = changes.sanctions_on(day, &q).expect("sanctions");
            let got: BTreeSet<(String, String, String)> =
                rows.into_iter().map(|r| (r.practitioner, r.institution, r.kind)).collect();
            let mut expected = BTreeSet::new();
            for p in world.practitioners() {
                let filed: BTreeSet<InstitutionCode> = p.registrations.iter().map(|r| r.institution).collect();
                for s in p.sanctions.iter().filter(|s| s.interval.contains(day)) {
                    let kind = if s.kind == claimgate::rules::SanctionKind::Suspension { "suspension" } else { "termination" };
                    for i in &filed {
                        expected.insert((p.code.to_string(), i.to_string(), kind.to_owned()));
                    }
                }
            }
            prop_assert_eq!(got, expected, "sanctions on {}", day);
        }
        for pair in published.windows(2) {
            prop_assert!(pair[0].seq() <= pair[1].seq());
        }
        // Versions are immutable: each still answers for its own seq.
        for version in &published {
            check(version, &log, "published version, rechecked at the end")?;
        }
    }
}

// ---------------------------------------------------------------------------
// A step that stops short of the head
// ---------------------------------------------------------------------------

fn must_append(ledger: &Ledger, policy: &Policy, values: &[Value]) {
    let events: Vec<Event> = values.iter().map(|v| Event::parse(v, policy).expect("valid event")).collect();
    for chunk in events.chunks(claimgate::ledger::MAX_APPEND_BATCH) {
        for (n, outcome) in ledger.append_batch(chunk).expect("append").into_iter().enumerate() {
            let appended = outcome.unwrap_or_else(|r| panic!("{} refused: {r}", values[n]));
            assert!(!appended.already_recorded);
        }
    }
}

/// The syncer folds at most [`MAX_SYNC_BATCH`] events into one version. When
/// the ledger holds more, the version it publishes is at exactly that seq and
/// must not show the later events, although the histories it re-derives from
/// the ledger already contain them.
#[test]
fn a_step_that_stops_at_max_sync_batch_reflects_only_the_events_it_read() {
    let policy = Policy::default();
    let ledger = Arc::new(Ledger::open_in_memory(&policy).expect("in-memory ledger"));
    let handle = Arc::new(IndexHandle::new(build::from_ledger(&ledger).expect("empty build")));
    let syncer = Syncer::new(ledger.clone(), handle.clone());
    let [h1, h2, _] = INSTITUTIONS;
    let [p1, p2, ..] = PRACTITIONERS;
    let cut = MAX_SYNC_BATCH as Seq;

    let mut before_cut = vec![
        json!({"type": "institution_designated", "institution": h1, "effective": "2024-01-01"}),
        json!({"type": "institution_designated", "institution": h2, "effective": "2024-01-01"}),
        json!({"type": "practitioner_registered", "practitioner": p1, "institution": h1, "effective": "2024-01-01"}),
        json!({"type": "practitioner_registered", "practitioner": p2, "institution": h2, "effective": "2024-02-01"}),
    ];
    // Filler: one-day suspensions of H2 far in the future.
    let mut k = 0;
    while before_cut.len() < MAX_SYNC_BATCH - 3 {
        let from = offset(ymd(2040, 1, 1), 2 * k);
        before_cut.push(json!({"type": "institution_suspended", "institution": h2,
                               "effective": from.to_string(), "until": offset(from, 1).to_string()}));
        k += 1;
    }
    before_cut.extend([
        json!({"type": "institution_rated", "institution": h1, "year": 2024, "score": 50, "direct_e": []}),
        json!({"type": "violation_scored", "violation_id": "V1", "practitioner": p1, "institution": h1,
               "effective": "2025-03-01", "points": 8, "severity": "serious", "responsibility": "primary"}),
        json!({"type": "institution_suspended", "institution": h1, "effective": "2025-05-01", "until": "2025-06-01"}),
    ]);
    assert_eq!(before_cut.len(), MAX_SYNC_BATCH);
    let after_cut = vec![
        // P1 reaches 10 points: suspended from 2025-04-01 for 4 months (R14).
        json!({"type": "violation_scored", "violation_id": "V2", "practitioner": p1, "institution": h1,
               "effective": "2025-04-01", "points": 2, "severity": "minor", "responsibility": "general"}),
        json!({"type": "institution_suspended", "institution": h1, "effective": "2025-07-01", "until": "2025-08-01"}),
        json!({"type": "institution_rated", "institution": h1, "year": 2025, "score": 95, "direct_e": []}),
        json!({"type": "practitioner_registered", "practitioner": p2, "institution": h1, "effective": "2025-01-01"}),
        json!({"type": "institution_terminated", "institution": h2, "effective": "2026-01-01"}),
    ];
    must_append(&ledger, &policy, &before_cut);
    must_append(&ledger, &policy, &after_cut);
    let head = ledger.head().unwrap();
    assert_eq!(head, cut + after_cut.len() as Seq);

    assert_eq!(syncer.step().unwrap(), Some(cut), "one step folds at most MAX_SYNC_BATCH events");
    let at_cut = handle.load();
    assert_eq!(at_cut.seq(), cut);
    let all = ledger.all_events().unwrap();
    let world_at_cut = World::from_events(&events_upto(&all, cut), &policy);
    let world_at_head = World::from_events(&all, &policy);
    let dates = sampled_dates(
        BTreeSet::from([ymd(2025, 4, 15), ymd(2025, 5, 15), ymd(2025, 7, 15), ymd(2025, 8, 1), ymd(2026, 1, 1)]),
        &boundary_dates(&all, &world_at_head),
        0,
    );
    let claims = grid(&dates);
    let no_context = || String::new();
    assert_answers_like(&world_at_cut, &[("version at the cut", &at_cut)], &claims, &no_context)
        .unwrap_or_else(|e| panic!("{e}"));

    // The cut is meaningful: the later events change these answers.
    let claim = |p: &str, i: &str, d: CivilDate| Claim {
        practitioner: PractitionerCode::parse(p).unwrap(),
        institution: InstitutionCode::parse(i).unwrap(),
        service_date: d,
        emergency: false,
    };
    let p1_at_h1 = claim(p1, h1, ymd(2025, 4, 15));
    assert_eq!(at_cut.check(&p1_at_h1).reason, Reason::Ok);
    assert_eq!(world_at_head.decide(&p1_at_h1).reason, Reason::PractitionerSuspended);
    assert_eq!(at_cut.check(&p1_at_h1).institution_grade, Some(claimgate::domain::Grade::E));
    assert_eq!(world_at_head.decide(&p1_at_h1).institution_grade, Some(claimgate::domain::Grade::A));
    let p2_at_h1 = claim(p2, h1, ymd(2025, 2, 1));
    assert_eq!(at_cut.check(&p2_at_h1).reason, Reason::NotRegisteredAtInstitution);
    assert_eq!(world_at_head.decide(&p2_at_h1).verdict, Verdict::Settle);
    let p1_at_h1_july = claim(p1, h1, ymd(2025, 7, 15));
    assert_eq!(at_cut.check(&p1_at_h1_july).reason, Reason::Ok);
    assert_eq!(world_at_head.decide(&p1_at_h1_july).reason, Reason::PractitionerSuspended);
    let p2_at_h2 = claim(p2, h2, ymd(2026, 1, 1));
    assert_eq!(at_cut.check(&p2_at_h2).reason, Reason::Ok);
    assert_eq!(world_at_head.decide(&p2_at_h2).reason, Reason::InstitutionNotDesignated);

    assert_eq!(syncer.step().unwrap(), Some(head));
    assert_eq!(syncer.step().unwrap(), None);
    let at_head = handle.load();
    assert_eq!(at_head.seq(), head);
    let fresh = build::from_ledger(&ledger).unwrap();
    assert_answers_like(
        &world_at_head,
        &[("delta at head", &at_head), ("fresh", &fresh), ("merged", &at_head.merged())],
        &claims,
        &no_context,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The version at the cut is unchanged by the later step.
    assert_answers_like(&world_at_cut, &[("version at the cut, later", &at_cut)], &claims, &no_context)
        .unwrap_or_else(|e| panic!("{e}"));
}
