//! Property tests: laws of RULES.md that must hold for *every* history, not
//! only for the hand-written conformance scenarios.
//!
//! - R6: derived state is a pure function of the events ordered by
//!   (`effective`, `seq`), so the order in which events arrive does not matter.
//! - R12: a revoked violation is as if it had never been scored.
//! - R10/R11: the year total is a running balance that never goes below 0 at
//!   any step (a repair cannot be banked), cleared on 1 January; R13: a
//!   repair removes min(requested, the total at its step).
//! - R14/R15: the suspensions and terminations are exactly those of a plain
//!   reference walk written here, every crossing its own sanction.
//! - R18/R19: an emergency only ever waives reasons 5-7.
//!
//! Histories are generated as raw random choices and turned into valid events
//! by a deterministic builder ([`build`]), which also keeps an independent
//! model of the points (for R11) and the constraints that make the histories
//! order-independent by construction: per practitioner and per institution
//! every body event has its own effective date (R6 breaks same-day ties by
//! `seq`, which legitimately depends on arrival order), at most one rating per
//! institution and year, and at most 6 repaired points per practitioner and
//! year (R13's default cap), so every event is accepted in any order.
//!
//! (Over 600 lines: a test file, its length is its builder, its model and
//! its laws.)

use claimgate::domain::{CivilDate, InstitutionCode, PractitionerCode};
use claimgate::event::Event;
use claimgate::ledger::{AppendError, Ledger};
use claimgate::policy::Policy;
use claimgate::rules::changes::{self, Windows};
use claimgate::rules::file::PractitionerFile;
use claimgate::rules::practitioner;
use claimgate::rules::{Claim, Reason, SanctionKind, Verdict, World};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

#[path = "common/histories.rs"]
mod histories;
use histories::*;

/// R13 default policy cap.
const REPAIR_CAP: u32 = 6;

// ---------------------------------------------------------------------------
// The builder: raw choices -> valid events plus an independent model
// ---------------------------------------------------------------------------

/// What a body event means to the independent model.
#[derive(Debug, Clone, PartialEq)]
enum Fact {
    Violation {
        prac: usize,
        points: u32,
    },
    /// Revokes the violation at this body index.
    Revocation {
        of: usize,
    },
    Repair {
        prac: usize,
        points: u32,
    },
    Registration,
    Institution,
}

#[derive(Debug, Clone)]
struct BodyEvent {
    json: Value,
    effective: CivilDate,
    fact: Fact,
}

#[derive(Debug, Clone)]
struct Built {
    institutions: usize,
    practitioners: usize,
    setup: Vec<Value>,
    body: Vec<BodyEvent>,
}

/// Options of [`build`].
#[derive(Debug, Clone, Copy)]
struct BuildOptions {
    /// Give every body event of one practitioner (one institution) its own date.
    distinct_dates: bool,
    /// Keep `Revoke` choices (otherwise they are dropped).
    revocations: bool,
    /// Keep late `Register` choices (otherwise they are dropped).
    late_registrations: bool,
}

/// Picks the first free day at or after `day` (when dates must be distinct).
fn free_day(used: &HashSet<i32>, mut day: i32, distinct: bool) -> i32 {
    while distinct && used.contains(&day) {
        day += 1;
    }
    day
}

fn build(setup: &RawSetup, ops: &[RawOp], options: BuildOptions) -> Built {
    let n_inst = setup.institutions;
    let n_prac = setup.practitioners.len();
    let events = setup_events(setup);

    let distinct = options.distinct_dates;
    let mut prac_days: Vec<HashSet<i32>> = vec![HashSet::new(); n_prac];
    let mut inst_days: Vec<HashSet<i32>> = vec![HashSet::new(); n_inst];
    let mut repaired: HashMap<(usize, i32), u32> = HashMap::new();
    let mut rated: HashSet<(usize, i32)> = HashSet::new();
    // Body indices of violations not revoked yet.
    let mut revocable: Vec<usize> = Vec::new();
    let mut body: Vec<BodyEvent> = Vec::new();
    for op in ops {
        match op {
            RawOp::Violation(raw) => {
                let prac = raw.prac.index(n_prac);
                let inst = raw.inst.index(n_inst);
                let day = free_day(&prac_days[prac], raw.day, distinct);
                prac_days[prac].insert(day);
                let effective = offset(body_start(), day);
                let (json, points) = violation_json(&format!("V{}", body.len()), prac, inst, effective, raw);
                revocable.push(body.len());
                body.push(BodyEvent { json, effective, fact: Fact::Violation { prac, points } });
            }
            RawOp::Repair { prac, day, points } => {
                let prac = prac.index(n_prac);
                let day = free_day(&prac_days[prac], *day, distinct);
                let effective = offset(body_start(), day);
                let sum = repaired.entry((prac, effective.year())).or_default();
                let points = (*points).min(REPAIR_CAP - *sum);
                if points == 0 {
                    continue;
                }
                *sum += points;
                prac_days[prac].insert(day);
                body.push(BodyEvent {
                    json: json!({"type": "points_repaired", "event_id": format!("R-{}", body.len()), "practitioner": PRACTITIONERS[prac],
                                 "points": points, "effective": effective.to_string()}),
                    effective,
                    fact: Fact::Repair { prac, points },
                });
            }
            RawOp::Revoke { pick, day } => {
                if !options.revocations || revocable.is_empty() {
                    continue;
                }
                let of = revocable.remove(pick.index(revocable.len()));
                let Fact::Violation { prac, .. } = body[of].fact else { unreachable!("only violations are revocable") };
                let day = free_day(&prac_days[prac], *day, distinct);
                prac_days[prac].insert(day);
                let effective = offset(body_start(), day);
                body.push(BodyEvent {
                    json: json!({"type": "violation_revoked", "violation_id": body[of].json["violation_id"],
                                 "effective": effective.to_string()}),
                    effective,
                    fact: Fact::Revocation { of },
                });
            }
            RawOp::Suspend { inst, day, .. } | RawOp::Terminate { inst, day } | RawOp::Designate { inst, day } => {
                let inst = inst.index(n_inst);
                let day = free_day(&inst_days[inst], *day, distinct);
                inst_days[inst].insert(day);
                let effective = offset(body_start(), day);
                let json = match op {
                    RawOp::Suspend { len, .. } => {
                        json!({"type": "institution_suspended", "institution": INSTITUTIONS[inst],
                        "effective": effective.to_string(), "until": offset(effective, *len).to_string()})
                    }
                    RawOp::Terminate { .. } => {
                        json!({"type": "institution_terminated", "institution": INSTITUTIONS[inst],
                        "effective": effective.to_string()})
                    }
                    _ => json!({"type": "institution_designated", "institution": INSTITUTIONS[inst],
                        "effective": effective.to_string()}),
                };
                body.push(BodyEvent { json, effective, fact: Fact::Institution });
            }
            RawOp::Register { late: false, .. } | RawOp::Resend { .. } => {
                unreachable!("Knobs::ORDER_INDEPENDENT generates no early registrations and no re-sends")
            }
            RawOp::Deregister { prac, inst, day } | RawOp::Register { prac, inst, day, late: true } => {
                let late = matches!(op, RawOp::Register { .. });
                if late && !options.late_registrations {
                    continue;
                }
                let (prac, inst) = (prac.index(n_prac), inst.index(n_inst));
                let base = if late { late_start() } else { body_start() };
                let day = free_day(&prac_days[prac], *day + base.day_number() - body_start().day_number(), distinct);
                prac_days[prac].insert(day);
                let effective = offset(body_start(), day);
                let kind = if late { "practitioner_registered" } else { "practitioner_deregistered" };
                body.push(BodyEvent {
                    json: json!({"type": kind, "practitioner": PRACTITIONERS[prac], "institution": INSTITUTIONS[inst],
                                 "effective": effective.to_string()}),
                    effective,
                    fact: Fact::Registration,
                });
            }
            RawOp::Rate { inst, year, half_points, direct_e } => {
                let inst = inst.index(n_inst);
                if !rated.insert((inst, *year)) {
                    continue;
                }
                let codes: Vec<&str> = if *direct_e { vec!["refused_rectification"] } else { vec![] };
                body.push(BodyEvent {
                    json: json!({"type": "institution_rated", "institution": INSTITUTIONS[inst], "year": year,
                                 "score": f64::from(*half_points) / 2.0, "direct_e": codes}),
                    effective: ymd(*year, 1, 1),
                    fact: Fact::Institution,
                });
            }
        }
    }
    Built { institutions: n_inst, practitioners: n_prac, setup: events, body }
}

/// A permutation of the body in which every revocation still comes after the
/// violation it revokes (otherwise it would be refused as `unknown_violation`).
fn permutation(built: &Built, keys: &[u32]) -> Vec<usize> {
    let mut key: Vec<u32> = (0..built.body.len()).map(|i| keys[i % keys.len()]).collect();
    for i in 0..built.body.len() {
        if let Fact::Revocation { of } = built.body[i].fact {
            key[i] = key[i].max(key[of]);
        }
    }
    let mut order: Vec<usize> = (0..built.body.len()).collect();
    order.sort_by_key(|&i| (key[i], matches!(built.body[i].fact, Fact::Revocation { .. }), i));
    order
}

// ---------------------------------------------------------------------------
// Ledger and world helpers
// ---------------------------------------------------------------------------

/// Appends every event in order to a fresh in-memory ledger, requiring each to
/// be accepted and newly stored, and derives the world from it.
fn ledger_of<'a>(
    policy: &Policy,
    events: impl IntoIterator<Item = &'a Value>,
) -> Result<(Ledger, World), TestCaseError> {
    let ledger = Ledger::open_in_memory(policy).expect("in-memory ledger");
    for (n, value) in events.into_iter().enumerate() {
        let event = Event::parse(value, policy).map_err(|e| TestCaseError::fail(format!("event {n} {value}: {e}")))?;
        match ledger.append(&event) {
            Ok(appended) => prop_assert!(!appended.already_recorded, "event {n} {value} was already recorded"),
            Err(AppendError::Refused(r)) => return Err(TestCaseError::fail(format!("event {n} {value} refused: {r}"))),
            Err(AppendError::Ledger(e)) => panic!("ledger failure: {e}"),
        }
    }
    let world = World::from_events(&ledger.all_events().expect("read back"), policy);
    Ok((ledger, world))
}

/// The history built from `setup` and `ops` (revocations and late
/// registrations kept), appended in order, and the world derived from it.
fn built_world(setup: &RawSetup, ops: &[RawOp], distinct_dates: bool) -> Result<(Built, World), TestCaseError> {
    let built = build(setup, ops, BuildOptions { distinct_dates, revocations: true, late_registrations: true });
    let (_ledger, world) = ledger_of(&Policy::default(), built.setup.iter().chain(built.body.iter().map(|e| &e.json)))?;
    Ok((built, world))
}

fn practitioner_codes(built: &Built) -> Vec<PractitionerCode> {
    (0..built.practitioners).map(prac_code).chain([PractitionerCode::parse(STRANGER_PRACTITIONER).unwrap()]).collect()
}

fn institution_codes(built: &Built) -> Vec<InstitutionCode> {
    (0..built.institutions).map(inst_code).chain([InstitutionCode::parse(STRANGER_INSTITUTION).unwrap()]).collect()
}

fn with_day_before(dates: &mut BTreeSet<CivilDate>, d: CivilDate) {
    dates.insert(d);
    if let Some(p) = d.pred() {
        dates.insert(p);
    }
}

/// Service dates to check: every 2 weeks over 2024-2034, every year end,
/// every event date and interval end, every sanction boundary, each with the
/// day before.
fn grid_dates<'a>(events: impl IntoIterator<Item = &'a Value>, worlds: &[&World]) -> BTreeSet<CivilDate> {
    let mut dates = BTreeSet::new();
    let mut d = ymd(2024, 1, 1);
    while d <= ymd(2034, 12, 31) {
        dates.insert(d);
        d = offset(d, 14);
    }
    for y in 2024..=2035 {
        with_day_before(&mut dates, ymd(y, 1, 1));
    }
    for v in events {
        for field in ["effective", "until"] {
            if let Some(s) = v[field].as_str() {
                with_day_before(&mut dates, CivilDate::parse(s).unwrap());
            }
        }
    }
    for w in worlds {
        for p in w.practitioners() {
            for s in &p.sanctions {
                for d in [Some(s.interval.from), s.interval.until, s.ban_until].into_iter().flatten() {
                    with_day_before(&mut dates, d);
                }
            }
        }
    }
    dates
}

/// A sanction without its `seq` fields, which depend on arrival order.
type SanctionShape = (SanctionKind, CivilDate, Option<CivilDate>, String, u32, Option<CivilDate>);

fn sanctions_of(world: &World, code: PractitionerCode) -> Vec<SanctionShape> {
    let mut out: Vec<SanctionShape> = world
        .practitioner(code)
        .map(|p| {
            p.sanctions
                .iter()
                .map(|s| {
                    (s.kind, s.interval.from, s.interval.until, s.cause.as_str().to_owned(), s.year_total, s.ban_until)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| (a.1, a.0, &a.3).cmp(&(b.1, b.0, &b.3)));
    out
}

/// Both worlds decide every claim of the grid alike, give the same year totals
/// on every grid date and the same sanctions (seq fields aside), and agree on
/// every institution's agreements, suspensions and latest grade.
fn assert_same_outcomes(built: &Built, a: &World, b: &World, dates: &BTreeSet<CivilDate>) -> Result<(), TestCaseError> {
    let practitioners = practitioner_codes(built);
    let institutions = institution_codes(built);
    for &p in &practitioners {
        prop_assert_eq!(sanctions_of(a, p), sanctions_of(b, p), "sanctions of {}", p);
        for &d in dates {
            let total = |w: &World| w.practitioner(p).map(|s| s.year_total_on(d));
            prop_assert_eq!(total(a), total(b), "year total of {} on {}", p, d);
            for &i in &institutions {
                for emergency in [false, true] {
                    let claim = Claim { practitioner: p, institution: i, service_date: d, emergency };
                    prop_assert_eq!(a.decide(&claim), b.decide(&claim), "claim {:?}", claim);
                }
            }
        }
    }
    for &i in &institutions {
        let shape = |w: &World| {
            w.institution(i).map(|s| {
                let mut suspensions: Vec<_> =
                    s.suspensions.iter().map(|x| (x.interval.from, x.interval.until)).collect();
                suspensions.sort();
                let agreements: Vec<_> = s.agreements.iter().map(|x| (x.from, x.until)).collect();
                (agreements, suspensions, s.latest_grade())
            })
        };
        prop_assert_eq!(shape(a), shape(b), "institution {}", i);
    }
    Ok(())
}

/// R11 recomputed from the builder's model, not from the library: walk the
/// non-revoked violations and repairs of `day`'s year dated on or before
/// `day` in (`effective`, arrival) order from 0; a violation adds its points,
/// a repair takes off at most what the total holds (the total never goes
/// below 0 at any step, so nothing is banked). With `only_on_day`, only
/// events dated exactly `day` count.
fn model_total(body: &[BodyEvent], prac: usize, day: CivilDate, only_on_day: bool) -> u32 {
    let revoked = revoked_violations(body);
    let counts = |d: CivilDate| if only_on_day { d == day } else { d.year() == day.year() && d <= day };
    let mut steps: Vec<(CivilDate, usize, i64)> = Vec::new();
    for (n, e) in body.iter().enumerate() {
        match e.fact {
            Fact::Violation { prac: p, points } if p == prac && !revoked.contains(&n) && counts(e.effective) => {
                steps.push((e.effective, n, i64::from(points)))
            }
            Fact::Repair { prac: p, points } if p == prac && counts(e.effective) => {
                steps.push((e.effective, n, -i64::from(points)))
            }
            _ => {}
        }
    }
    steps.sort();
    let mut total = 0i64;
    for (_, _, change) in steps {
        total = (total + change).max(0);
        assert!(total >= 0, "R11: the total is never below 0 at any step");
    }
    total as u32
}

/// Body indices of the violations some body event revokes (R12).
fn revoked_violations(body: &[BodyEvent]) -> HashSet<usize> {
    body.iter()
        .filter_map(|e| match e.fact {
            Fact::Revocation { of } => Some(of),
            _ => None,
        })
        .collect()
}

/// One step of [`model_walk`].
#[derive(Debug, Clone, Copy)]
struct ModelStep {
    /// The body index of the violation or repair.
    at: usize,
    effective: CivilDate,
    /// A violation's points (positive) or a repair's requested points (negative).
    change: i64,
    /// The year total just before and just after the step.
    before: u32,
    after: u32,
}

/// R10/R11 written plainly, from the builder's model: one practitioner's
/// non-revoked violations and repairs in (`effective`, arrival) order
/// (arrival is `seq` when the body is appended in order), the total from 0
/// on each 1 January, a violation adding its points, a repair removing what
/// it asks for but never more than the total holds.
fn model_walk(body: &[BodyEvent], prac: usize) -> Vec<ModelStep> {
    let revoked = revoked_violations(body);
    let mut steps: Vec<(CivilDate, usize, i64)> = body
        .iter()
        .enumerate()
        .filter_map(|(n, e)| match e.fact {
            Fact::Violation { prac: p, points } if p == prac && !revoked.contains(&n) => {
                Some((e.effective, n, i64::from(points)))
            }
            Fact::Repair { prac: p, points } if p == prac => Some((e.effective, n, -i64::from(points))),
            _ => None,
        })
        .collect();
    steps.sort_by_key(|&(effective, n, _)| (effective, n));
    let (mut year, mut total) = (None, 0i64);
    steps
        .into_iter()
        .map(|(effective, at, change)| {
            if year != Some(effective.year()) {
                (year, total) = (Some(effective.year()), 0);
            }
            let before = total;
            total = (total + change).max(0);
            ModelStep { at, effective, change, before: before as u32, after: total as u32 }
        })
        .collect()
}

/// R14/R15 written plainly over [`model_walk`]: a violation that takes the
/// total from below 12 to 12 or more terminates from its date, banning
/// registration for 1 year (3 if it alone scored 12), the termination
/// holding until the first registration (anywhere) dated on or after the
/// ban's end; one that takes it from below 9 to 9-11 suspends from its date
/// for its `suspension_months`, else 2, 4 or 6 months for a total of 9, 10
/// or 11 (R3 month arithmetic). Every crossing counts, also after a repair.
fn model_sanctions(built: &Built, prac: usize) -> Vec<SanctionShape> {
    let registrations: Vec<CivilDate> = built
        .setup
        .iter()
        .chain(built.body.iter().map(|e| &e.json))
        .filter(|v| v["type"] == "practitioner_registered" && v["practitioner"] == PRACTITIONERS[prac])
        .map(|v| CivilDate::parse(v["effective"].as_str().unwrap()).unwrap())
        .collect();
    let mut out = Vec::new();
    for step in model_walk(&built.body, prac).into_iter().filter(|s| s.change > 0) {
        let v = &built.body[step.at].json;
        let cause = v["violation_id"].as_str().unwrap().to_owned();
        let (day, total) = (step.effective, step.after);
        if step.before < 12 && total >= 12 {
            let ban_years = if step.change >= 12 { 3 } else { 1 };
            let ban_until = day.add_months(12 * ban_years);
            let until = ban_until.and_then(|end| registrations.iter().copied().filter(|d| *d >= end).min());
            out.push((SanctionKind::Termination, day, until, cause, total, ban_until));
        } else if step.before < 9 && (9..12).contains(&total) {
            let default = match total {
                9 => 2,
                10 => 4,
                _ => 6,
            };
            let months = v["suspension_months"].as_u64().map_or(default, |m| m as u32);
            out.push((SanctionKind::Suspension, day, day.add_months(months), cause, total, None));
        }
    }
    out.sort_by(|a, b| (a.1, a.0, &a.3).cmp(&(b.1, b.0, &b.3)));
    out
}

/// Folds a ledger's standing changes from an empty ledger (issue 16): each
/// pair's and each institution's windows, every change applied where its
/// `before` holds (a change that does not fails the test).
type Folded = (BTreeMap<(PractitionerCode, InstitutionCode), Windows>, BTreeMap<InstitutionCode, Windows>);

fn folded(ledger: &Ledger, policy: &Policy) -> Result<Folded, TestCaseError> {
    let mut pairs = BTreeMap::new();
    let mut institutions = BTreeMap::new();
    let mut known = HashSet::new();
    for c in changes::changes_of(&ledger.all_events().expect("read back"), policy) {
        let windows = match c.practitioner {
            Some(p) => pairs.entry((p, c.institution)).or_insert_with(|| Windows::new_pair(known.contains(&p))),
            None => institutions.entry(c.institution).or_insert_with(|| Windows::constant(Reason::UnknownInstitution)),
        };
        windows.apply(&c).map_err(TestCaseError::fail)?;
        known.extend(c.practitioner);
    }
    Ok((pairs, institutions))
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

    /// R6: derived state depends on (`effective`, `seq`) order only, so the
    /// same events arriving in another order (back-dated, late) give the same
    /// decisions, year totals and sanctions.
    #[test]
    fn r6_arrival_order_does_not_change_any_decision(
        setup in setup_strategy(&Knobs::ORDER_INDEPENDENT),
        ops in ops_strategy(&Knobs::ORDER_INDEPENDENT.with_mix(BALANCED)),
        keys in prop::collection::vec(any::<u32>(), 40),
    ) {
        let policy = Policy::default();
        let built = build(&setup, &ops, BuildOptions { distinct_dates: true, revocations: true, late_registrations: true });
        let order = permutation(&built, &keys);
        let (ledger_a, a) = ledger_of(&policy, built.setup.iter().chain(built.body.iter().map(|e| &e.json)))?;
        let (_ledger_b, b) =
            ledger_of(&policy, built.setup.iter().chain(order.iter().map(|&i| &built.body[i].json)))?;
        let dates = grid_dates(built.setup.iter().chain(built.body.iter().map(|e| &e.json)), &[&a, &b]);
        assert_same_outcomes(&built, &a, &b, &dates)?;

        // The per-practitioner history the ledger serves (R22) derives the
        // same standing as the whole ledger does.
        for p in 0..built.practitioners {
            let code = prac_code(p);
            let own = practitioner::derive(code, &ledger_a.practitioner_history(code).unwrap(), &policy);
            prop_assert_eq!(Some(&own), a.practitioner(code), "standing of {}", code);
        }
    }

    /// Issue 16: folding the standing changes from an empty ledger gives
    /// exactly the final standings' windows, for every pair where the
    /// practitioner is filed and every institution; and the two sides
    /// combine into every non-emergency verdict (R18). Arriving in another
    /// order with the same (`effective`, `seq`) order, the changes fold to
    /// the same windows (R6).
    #[test]
    fn standing_changes_fold_to_the_final_windows_in_any_arrival_order(
        setup in setup_strategy(&Knobs::ORDER_INDEPENDENT),
        ops in ops_strategy(&Knobs::ORDER_INDEPENDENT.with_mix(BALANCED)),
        keys in prop::collection::vec(any::<u32>(), 40),
    ) {
        let policy = Policy::default();
        let built = build(&setup, &ops, BuildOptions { distinct_dates: true, revocations: true, late_registrations: true });
        let (ledger_a, a) = ledger_of(&policy, built.setup.iter().chain(built.body.iter().map(|e| &e.json)))?;
        let (pairs, institutions) = folded(&ledger_a, &policy)?;
        for &i in &institution_codes(&built) {
            let direct = Windows::institution(a.institution(i));
            match institutions.get(&i) {
                Some(f) => prop_assert_eq!(f, &direct, "institution {}", i),
                None => prop_assert_eq!(&direct, &Windows::constant(Reason::UnknownInstitution), "{} had no change", i),
            }
        }
        for &p in &practitioner_codes(&built) {
            let standing = a.practitioner(p);
            let filed: BTreeSet<InstitutionCode> =
                standing.into_iter().flat_map(|s| s.registrations.iter().map(|r| r.institution)).collect();
            for &i in &filed {
                prop_assert_eq!(pairs.get(&(p, i)), Some(&Windows::pair(standing, i)), "{} at {}", p, i);
            }
            prop_assert!(pairs.keys().filter(|k| k.0 == p).all(|k| filed.contains(&k.1)), "changes only where filed");
        }
        // The folded windows answer every claim of the grid as the rules
        // engine does, the two sides combined in R18's order.
        let dates = grid_dates(built.setup.iter().chain(built.body.iter().map(|e| &e.json)), &[&a]);
        let unknown_institution = Windows::constant(Reason::UnknownInstitution);
        for &p in &practitioner_codes(&built) {
            let known = pairs.keys().any(|k| k.0 == p);
            for &i in &institution_codes(&built) {
                let pair = pairs.get(&(p, i)).cloned().unwrap_or_else(|| Windows::new_pair(known));
                let institution = institutions.get(&i).unwrap_or(&unknown_institution);
                for &day in &dates {
                    let claim = Claim { practitioner: p, institution: i, service_date: day, emergency: false };
                    let sides = changes::combine(institution.status_on(day), pair.status_on(day));
                    prop_assert_eq!(sides, a.decide(&claim).reason, "{:?}", claim);
                }
            }
        }

        // Batch by batch, from the histories as they stand after each batch
        // (how the gate's sync computes them), the same changes.
        let all = ledger_a.all_events().expect("read back");
        let mut batched = Vec::new();
        let mut rest = &all[..];
        let mut k = 0;
        while !rest.is_empty() {
            let (batch, tail) = rest.split_at((1 + keys[k % keys.len()] as usize % 7).min(rest.len()));
            rest = tail;
            k += 1;
            let last = batch.last().expect("non-empty").seq;
            let upto: Vec<_> = all.iter().filter(|r| r.seq <= last).cloned().collect();
            let (p_histories, i_histories) = claimgate::rules::histories(&upto);
            let owner = |id: &claimgate::domain::ViolationId| {
                upto.iter().find_map(|r| match &r.event {
                    Event::ViolationScored(v) if &v.violation_id == id => Some(v.practitioner),
                    _ => None,
                })
            };
            batched.extend(changes::changes_in_batch(batch, &p_histories, &i_histories, owner, &policy).changes);
        }
        prop_assert_eq!(batched, changes::changes_of(&all, &policy), "batch by batch");

        let order = permutation(&built, &keys);
        let (ledger_b, _) = ledger_of(&policy, built.setup.iter().chain(order.iter().map(|&i| &built.body[i].json)))?;
        prop_assert_eq!(folded(&ledger_b, &policy)?, (pairs, institutions), "another arrival order");
    }

    /// R12: a violation scored and later revoked leaves no trace in any
    /// decision, year total or sanction, wherever it falls in the history.
    #[test]
    fn r12_revoked_violation_is_as_if_never_scored(
        setup in setup_strategy(&Knobs::ORDER_INDEPENDENT),
        ops in ops_strategy(&Knobs::ORDER_INDEPENDENT.with_mix(BALANCED)),
        extra in violation_strategy(&Knobs::ORDER_INDEPENDENT),
        at in any::<Index>(),
        then in any::<Index>(),
        revoke_day in body_day(&Knobs::ORDER_INDEPENDENT),
    ) {
        let policy = Policy::default();
        // H: no revocations, and no registrations outside the setup (body
        // deregistrations only), so V cannot make R15's `registration_banned`
        // refuse anything in ledger A that ledger B accepts.
        let built = build(&setup, &ops, BuildOptions { distinct_dates: true, revocations: false, late_registrations: false });
        let prac = extra.prac.index(built.practitioners);
        let inst = extra.inst.index(built.institutions);
        let (v, _) = violation_json("VX", prac, inst, offset(body_start(), extra.day), &extra);
        let revoke = json!({"type": "violation_revoked", "violation_id": "VX",
                            "effective": offset(body_start(), revoke_day).to_string()});
        let n = built.body.len();
        let i = at.index(n + 1);
        let j = i + then.index(n - i + 1);
        let body: Vec<&Value> = built.body.iter().map(|e| &e.json).collect();
        let with_v: Vec<&Value> = built
            .setup
            .iter()
            .chain(body[..i].iter().copied())
            .chain([&v])
            .chain(body[i..j].iter().copied())
            .chain([&revoke])
            .chain(body[j..].iter().copied())
            .collect();
        let (_la, a) = ledger_of(&policy, with_v.iter().copied())?;
        let (_lb, b) = ledger_of(&policy, built.setup.iter().chain(body.iter().copied()))?;
        let dates = grid_dates(with_v.iter().copied(), &[&a, &b]);
        assert_same_outcomes(&built, &a, &b, &dates)?;
        let standing = a.practitioner(prac_code(prac)).unwrap();
        let record = standing.violations.iter().find(|r| r.violation.violation_id.as_str() == "VX");
        prop_assert!(record.is_some_and(|r| r.revoked.is_some()), "VX is on file, marked revoked (R22)");
    }

    /// R10/R11: the year total on any day is the independently recomputed
    /// running balance of that year's non-revoked points and repairs up to
    /// that day, even when repairs exceed the points standing (they remove
    /// only what is there); on 1 January only events dated that very day count.
    #[test]
    fn r10_r11_year_total_is_a_running_balance_cleared_on_1_january(
        setup in setup_strategy(&Knobs::ORDER_INDEPENDENT),
        ops in ops_strategy(&Knobs::ORDER_INDEPENDENT.with_mix(REPAIR_HEAVY)),
        distinct_dates in any::<bool>(),
    ) {
        let (built, world) = built_world(&setup, &ops, distinct_dates)?;
        let dates = grid_dates(built.setup.iter().chain(built.body.iter().map(|e| &e.json)), &[&world]);
        for (p, code) in PRACTITIONERS.iter().enumerate().take(built.practitioners) {
            let standing = world.practitioner(prac_code(p)).unwrap();
            for &d in &dates {
                prop_assert_eq!(
                    standing.year_total_on(d),
                    model_total(&built.body, p, d, false),
                    "year total of {} on {}", code, d
                );
            }
            for y in 2024..=2035 {
                let jan1 = ymd(y, 1, 1);
                prop_assert_eq!(
                    standing.year_total_on(jan1),
                    model_total(&built.body, p, jan1, true),
                    "year total of {} on {} counts only that day's events", code, jan1
                );
            }
        }
    }

    /// R18/R19: an emergency never waives reasons 1-4, and it changes the
    /// decision only when the ordinary reason is 5-7, into `settle` with
    /// `emergency_exemption`, waiving exactly the reasons 5-7 that apply, the
    /// ordinary reason first.
    #[test]
    fn r18_r19_emergency_only_waives_sanctions_and_institution_suspension(
        setup in setup_strategy(&Knobs::ORDER_INDEPENDENT),
        ops in ops_strategy(&Knobs::ORDER_INDEPENDENT.with_mix(BALANCED)),
        distinct_dates in any::<bool>(),
    ) {
        let (built, world) = built_world(&setup, &ops, distinct_dates)?;
        let dates = grid_dates(built.setup.iter().chain(built.body.iter().map(|e| &e.json)), &[&world]);
        let waivable = [Reason::PractitionerTerminated, Reason::PractitionerSuspended, Reason::InstitutionSuspended];
        for &p in &practitioner_codes(&built) {
            for &i in &institution_codes(&built) {
                for &d in &dates {
                    let claim = Claim { practitioner: p, institution: i, service_date: d, emergency: false };
                    let ordinary = world.decide(&claim);
                    let urgent = world.decide(&Claim { emergency: true, ..claim });
                    prop_assert!(ordinary.waived.is_empty(), "{:?}: {:?}", claim, ordinary);
                    prop_assert_ne!(ordinary.reason, Reason::EmergencyExemption);
                    prop_assert_eq!(ordinary.verdict == Verdict::Settle, ordinary.reason == Reason::Ok);
                    let waived: Vec<Reason> = urgent.waived.iter().collect();
                    prop_assert!(waived.iter().all(|r| waivable.contains(r)), "{:?}: {:?}", claim, urgent);
                    prop_assert_eq!(!waived.is_empty(), urgent.reason == Reason::EmergencyExemption);
                    if waivable.contains(&ordinary.reason) {
                        // Every reason 5-7 that applies, in R18 order.
                        let standing = world.practitioner(p).unwrap();
                        let expected: Vec<Reason> = [
                            standing.sanction_on(SanctionKind::Termination, d).is_some(),
                            standing.sanction_on(SanctionKind::Suspension, d).is_some(),
                            world.institution(i).unwrap().suspended_on(d),
                        ]
                        .into_iter()
                        .zip(waivable)
                        .filter_map(|(applies, r)| applies.then_some(r))
                        .collect();
                        prop_assert_eq!(ordinary.verdict, Verdict::Reject);
                        prop_assert_eq!(urgent.verdict, Verdict::Settle, "{:?}", claim);
                        prop_assert_eq!(urgent.reason, Reason::EmergencyExemption);
                        prop_assert_eq!(waived.first(), Some(&ordinary.reason));
                        prop_assert_eq!(&waived, &expected, "{:?}", claim);
                        prop_assert_eq!(urgent.institution_grade, ordinary.institution_grade);
                    } else {
                        prop_assert_eq!(urgent, ordinary, "{:?}", claim);
                    }
                }
            }
        }
    }

    /// R11/R13: no year total is ever below 0, at any step's date or the
    /// day before: each equals the plain running balance; every repair's
    /// effective points are min(requested, the total just before it); and
    /// the integrity file's year totals (R22) are the points scored less
    /// those removed.
    #[test]
    fn r11_r13_no_total_goes_below_zero_and_a_repair_removes_at_most_the_total(
        setup in setup_strategy(&Knobs::ORDER_INDEPENDENT),
        ops in ops_strategy(&Knobs::ORDER_INDEPENDENT.with_mix(REPAIR_HEAVY)),
        distinct_dates in any::<bool>(),
    ) {
        let (built, world) = built_world(&setup, &ops, distinct_dates)?;
        for p in 0..built.practitioners {
            let standing = world.practitioner(prac_code(p)).unwrap();
            let walk = model_walk(&built.body, p);
            for step in &walk {
                for d in [Some(step.effective), step.effective.pred()].into_iter().flatten() {
                    prop_assert_eq!(standing.year_total_on(d), model_total(&built.body, p, d, false), "{} on {}", prac_code(p), d);
                }
            }
            prop_assert_eq!(standing.repairs.len(), walk.iter().filter(|s| s.change < 0).count());
            for repair in &standing.repairs {
                let id = repair.event_id.as_ref().map(|id| id.as_str().to_owned()).unwrap_or_default();
                let step = walk.iter().find(|s| format!("R-{}", s.at) == id);
                prop_assert!(step.is_some(), "repair {} is one of the model's", id);
                let step = step.unwrap();
                prop_assert_eq!(i64::from(repair.points), -step.change, "requested points of {}", id);
                prop_assert_eq!(repair.effective_points, repair.points.min(step.before), "effective points of {}", id);
                prop_assert_eq!(step.before - step.after, repair.effective_points);
            }
            for year in PractitionerFile::new(standing, ymd(2030, 1, 1)).year_totals {
                prop_assert!(year.repaired <= year.repair_requested && year.repaired <= year.scored, "{:?}", year);
                prop_assert_eq!(u64::from(year.total), year.scored - year.repaired, "{:?}", year);
            }
        }
    }

    /// R14/R15: the suspension and termination intervals `derive` gives
    /// (kind, from, until, cause, year total, ban end) are exactly those of
    /// the plain reference walk [`model_sanctions`], repair-heavy histories
    /// included (repairs before violations bank nothing; a repair below 9
    /// lets a later violation suspend again).
    #[test]
    fn r14_r15_sanctions_equal_a_plain_reference_walk(
        setup in setup_strategy(&Knobs::ORDER_INDEPENDENT),
        ops in prop_oneof![ops_strategy(&Knobs::ORDER_INDEPENDENT.with_mix(BALANCED)), ops_strategy(&Knobs::ORDER_INDEPENDENT.with_mix(REPAIR_HEAVY))],
        distinct_dates in any::<bool>(),
    ) {
        let (built, world) = built_world(&setup, &ops, distinct_dates)?;
        for p in 0..built.practitioners {
            let code = prac_code(p);
            prop_assert_eq!(sanctions_of(&world, code), model_sanctions(&built, p), "sanctions of {}", code);
        }
    }
}

/// The repair-heavy generator makes R11's banking case often: a repair that
/// asks for more than the total holds at its step (part or all of it finds
/// nothing to remove), followed in the same year by a violation that still
/// crosses 9 (RULES.md R11's example: it must suspend).
#[test]
fn the_repair_heavy_generator_often_tries_to_bank_repairs_r11() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy =
        (setup_strategy(&Knobs::ORDER_INDEPENDENT), ops_strategy(&Knobs::ORDER_INDEPENDENT.with_mix(REPAIR_HEAVY)));
    let (cases, mut short, mut crossing_after) = (256, 0, 0);
    let options = BuildOptions { distinct_dates: true, revocations: true, late_registrations: true };
    for _ in 0..cases {
        let (setup, ops) = strategy.new_tree(&mut runner).unwrap().current();
        let built = build(&setup, &ops, options);
        let walks: Vec<Vec<ModelStep>> = (0..built.practitioners).map(|p| model_walk(&built.body, p)).collect();
        let is_short = |s: &ModelStep| s.change < 0 && i64::from(s.before) < -s.change;
        short += usize::from(walks.iter().flatten().any(is_short));
        crossing_after += usize::from(walks.iter().any(|w| {
            w.iter().enumerate().any(|(i, s)| {
                is_short(s)
                    && w[i + 1..].iter().any(|t| {
                        t.effective.year() == s.effective.year() && t.change > 0 && t.before < 9 && t.after >= 9
                    })
            })
        }));
    }
    eprintln!(
        "{cases} cases: {short} with a repair larger than the total, {crossing_after} with a crossing of 9 after it"
    );
    assert!(short * 2 >= cases, "only {short} of {cases} cases try to repair more than the total holds");
    assert!(crossing_after * 5 >= cases, "only {crossing_after} of {cases} cases cross 9 after such a repair");
}
