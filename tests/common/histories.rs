//! The one generator of histories for the property tests (`properties.rs`,
//! `index_properties.rs`), with knobs: raw random choices (a setup of
//! designations and registrations, then body operations) that each test's
//! own builder turns into events. [`Knobs::ORDER_INDEPENDENT`] keeps to what
//! an order-independent builder can accept in any order (R6);
//! [`Knobs::ROUGH`] adds same-day ties, early registrations (inside a ban,
//! R15), resent and altered events (R7a, R8) and larger repairs (past R13's
//! cap), for tests where every implementation sees the same ledger.

#![allow(dead_code)] // each test binary uses its own part

use claimgate::domain::{CivilDate, InstitutionCode, PractitionerCode};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::{BoxedStrategy, Union};
use serde_json::{json, Value};
use std::ops::RangeInclusive;

// ---------------------------------------------------------------------------
// Codes and dates
// ---------------------------------------------------------------------------

pub const INSTITUTIONS: [&str; 3] = ["H11010500001", "H44030500002", "P11010500003"];
pub const PRACTITIONERS: [&str; 4] = ["D110105000001", "HY110000000002", "HJ4403050000000003", "D440305000000000004"];
/// Never designated: claims naming it must be `unknown_institution` (R18 test 1).
pub const STRANGER_INSTITUTION: &str = "H31000000099";
/// Never registered: claims naming it must be `unknown_practitioner` (R18 test 2).
pub const STRANGER_PRACTITIONER: &str = "D310000000099";

pub const SEVERITIES: [(&str, u32); 4] = [("minor", 1), ("moderate", 4), ("serious", 7), ("fraud", 10)];
pub const RESPONSIBILITIES: [&str; 3] = ["primary", "important", "general"];
/// Body events are dated in 2025-2028 (day offsets from 2025-01-01).
pub const BODY_DAYS: i32 = 4 * 365 + 1;

pub fn ymd(y: i32, m: u32, d: u32) -> CivilDate {
    CivilDate::from_ymd(y, m, d).expect("valid test date")
}

pub fn setup_start() -> CivilDate {
    ymd(2024, 1, 1)
}

pub fn body_start() -> CivilDate {
    ymd(2025, 1, 1)
}

/// Registrations from here on are after the end of every ban a body
/// violation can cause (R15), so they are accepted in any order; earlier
/// ones may fall inside a ban.
pub fn late_start() -> CivilDate {
    ymd(2032, 6, 1)
}

pub fn offset(base: CivilDate, days: i32) -> CivilDate {
    CivilDate::from_day_number(base.day_number() + days).expect("test dates stay in range")
}

pub fn body_offset(date: CivilDate) -> i32 {
    date.day_number() - body_start().day_number()
}

pub fn inst_code(i: usize) -> InstitutionCode {
    InstitutionCode::parse(INSTITUTIONS[i]).unwrap()
}

pub fn prac_code(p: usize) -> PractitionerCode {
    PractitionerCode::parse(PRACTITIONERS[p]).unwrap()
}

// ---------------------------------------------------------------------------
// Raw generated choices
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct RawPractitioner {
    /// Bit mask of the setup institutions registered at (0 means "the first").
    pub sites: u8,
    /// Registration day offsets from 2024-01-01, one per institution.
    pub registered: Vec<i32>,
    /// Optionally deregister from one of the sites some days later.
    pub deregister: Option<(Index, i32)>,
}

#[derive(Debug, Clone)]
pub struct RawSetup {
    /// Institutions designated in the setup (the others may be designated in
    /// the body, or never).
    pub institutions: usize,
    /// Designation day offsets from 2024-01-01, one per institution.
    pub designated: Vec<i32>,
    /// Practitioners registered in the setup (the others may be registered in
    /// the body, or never).
    pub practitioners: Vec<RawPractitioner>,
}

#[derive(Debug, Clone)]
pub struct RawViolation {
    pub prac: Index,
    pub inst: Index,
    pub day: i32,
    pub severity: usize,
    pub step: u32,
    pub months: Option<u32>,
    pub responsibility: usize,
}

#[derive(Debug, Clone)]
pub enum RawOp {
    Violation(RawViolation),
    Repair {
        prac: Index,
        day: i32,
        points: u32,
    },
    /// Picks among the violations issued so far (and, for a rough builder,
    /// one never issued: `unknown_violation`).
    Revoke {
        pick: Index,
        day: i32,
    },
    Suspend {
        inst: Index,
        day: i32,
        len: i32,
    },
    Terminate {
        inst: Index,
        day: i32,
    },
    Designate {
        inst: Index,
        day: i32,
    },
    /// Several ratings of one year may be generated (the latest by `seq` counts).
    Rate {
        inst: Index,
        year: i32,
        half_points: u32,
        direct_e: bool,
    },
    /// Deregistration in 2025-2028 (from anywhere, filed there or not).
    Deregister {
        prac: Index,
        inst: Index,
        day: i32,
    },
    /// Registration dated from [`late_start`] (`late`), or in the body years,
    /// where it may fall inside a ban (R15; only with
    /// [`Knobs::early_registrations`]).
    Register {
        prac: Index,
        inst: Index,
        day: i32,
        late: bool,
    },
    /// Sends an earlier body event again; `altered`, a violation gets other
    /// points (`duplicate_violation`), else it is recorded once (R7a). Only
    /// with a [`Mix::resend`] weight.
    Resend {
        pick: Index,
        altered: bool,
    },
}

/// Relative weights of the body operations (0: never generated).
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub violation: u32,
    pub repair: u32,
    pub revoke: u32,
    pub institution: u32,
    pub rate: u32,
    pub registration: u32,
    pub resend: u32,
}

pub const BALANCED: Mix =
    Mix { violation: 8, repair: 3, revoke: 2, institution: 3, rate: 1, registration: 2, resend: 0 };
pub const REPAIR_HEAVY: Mix =
    Mix { violation: 5, repair: 6, revoke: 2, institution: 1, rate: 1, registration: 1, resend: 0 };

/// The generator's knobs.
#[derive(Debug, Clone)]
pub struct Knobs {
    pub mix: Mix,
    /// Practitioners registered in the setup.
    pub practitioners: RangeInclusive<usize>,
    /// Body operations at most.
    pub max_ops: usize,
    /// Bias body dates to a few shared days (same-day ties across kinds, R6).
    pub shared_days: bool,
    /// Points asked for by one repair.
    pub repair_points: RangeInclusive<u32>,
    /// Years ratings are for.
    pub rating_years: RangeInclusive<i32>,
    /// Generate registrations dated in the body years too (not only late ones).
    pub early_registrations: bool,
}

impl Knobs {
    /// What an order-independent builder accepts in any order: no shared
    /// days, small repairs, late registrations only, no re-sends.
    pub const ORDER_INDEPENDENT: Knobs = Knobs {
        mix: BALANCED,
        practitioners: 2..=4,
        max_ops: 40,
        shared_days: false,
        repair_points: 1..=3,
        rating_years: 2025..=2028,
        early_registrations: false,
    };

    /// Everything, refused events included, for tests where every
    /// implementation reads the same ledger.
    pub const ROUGH: Knobs = Knobs {
        mix: Mix { violation: 8, repair: 3, revoke: 2, institution: 3, rate: 1, registration: 3, resend: 1 },
        practitioners: 1..=4,
        max_ops: 48,
        shared_days: true,
        repair_points: 1..=4,
        rating_years: 2024..=2029,
        early_registrations: true,
    };

    pub fn with_mix(self, mix: Mix) -> Knobs {
        Knobs { mix, ..self }
    }
}

pub fn setup_strategy(knobs: &Knobs) -> impl Strategy<Value = RawSetup> {
    let practitioner = (1u8..8, prop::collection::vec(0i32..600, 3), prop::option::of((any::<Index>(), 1i32..=120)))
        .prop_map(|(sites, registered, deregister)| RawPractitioner { sites, registered, deregister });
    (2usize..=3, prop::collection::vec(0i32..366, 3), prop::collection::vec(practitioner, knobs.practitioners.clone()))
        .prop_map(|(institutions, designated, practitioners)| RawSetup { institutions, designated, practitioners })
}

/// A body day offset, biased towards year ends (R10's 1 January boundary)
/// and, with [`Knobs::shared_days`], a few shared days.
pub fn body_day(knobs: &Knobs) -> BoxedStrategy<i32> {
    let year_ends = prop_oneof![
        6 => 0..BODY_DAYS,
        1 => (2025i32..=2028).prop_map(|y| body_offset(ymd(y, 1, 1))),
        1 => (2025i32..=2028).prop_map(|y| body_offset(ymd(y, 12, 31))),
    ];
    if knobs.shared_days {
        prop_oneof![8 => year_ends, 2 => prop::sample::select(vec![40, 41, 100, 400, 401, 730])].boxed()
    } else {
        year_ends.boxed()
    }
}

pub fn violation_strategy(knobs: &Knobs) -> impl Strategy<Value = RawViolation> {
    (any::<Index>(), any::<Index>(), body_day(knobs), 0usize..4, 0u32..3, prop::option::of(1u32..=6), 0usize..3)
        .prop_map(|(prac, inst, day, severity, step, months, responsibility)| RawViolation {
            prac,
            inst,
            day,
            severity,
            step,
            months,
            responsibility,
        })
}

pub fn op_strategy(knobs: &Knobs) -> impl Strategy<Value = RawOp> {
    let day = || body_day(knobs);
    let institution_op = prop_oneof![
        (any::<Index>(), day(), 1i32..=120).prop_map(|(inst, day, len)| RawOp::Suspend { inst, day, len }),
        (any::<Index>(), day()).prop_map(|(inst, day)| RawOp::Terminate { inst, day }),
        (any::<Index>(), day()).prop_map(|(inst, day)| RawOp::Designate { inst, day }),
    ];
    let mut registration: Vec<(u32, BoxedStrategy<RawOp>)> = vec![
        (
            1,
            (any::<Index>(), any::<Index>(), day())
                .prop_map(|(prac, inst, day)| RawOp::Deregister { prac, inst, day })
                .boxed(),
        ),
        (
            1,
            (any::<Index>(), any::<Index>(), 0i32..730)
                .prop_map(|(prac, inst, day)| RawOp::Register { prac, inst, day, late: true })
                .boxed(),
        ),
    ];
    if knobs.early_registrations {
        registration.push((
            1,
            (any::<Index>(), any::<Index>(), day())
                .prop_map(|(prac, inst, day)| RawOp::Register { prac, inst, day, late: false })
                .boxed(),
        ));
    }
    let m = knobs.mix;
    let options: Vec<(u32, BoxedStrategy<RawOp>)> = vec![
        (m.violation, violation_strategy(knobs).prop_map(RawOp::Violation).boxed()),
        (
            m.repair,
            (any::<Index>(), day(), knobs.repair_points.clone())
                .prop_map(|(prac, day, points)| RawOp::Repair { prac, day, points })
                .boxed(),
        ),
        (m.revoke, (any::<Index>(), day()).prop_map(|(pick, day)| RawOp::Revoke { pick, day }).boxed()),
        (m.institution, institution_op.boxed()),
        (m.registration, Union::new_weighted(registration).boxed()),
        (
            m.rate,
            (any::<Index>(), knobs.rating_years.clone(), 0u32..=200, any::<bool>())
                .prop_map(|(inst, year, half_points, direct_e)| RawOp::Rate { inst, year, half_points, direct_e })
                .boxed(),
        ),
        (m.resend, (any::<Index>(), any::<bool>()).prop_map(|(pick, altered)| RawOp::Resend { pick, altered }).boxed()),
    ];
    Union::new_weighted(options.into_iter().filter(|(weight, _)| *weight > 0).collect())
}

pub fn ops_strategy(knobs: &Knobs) -> impl Strategy<Value = Vec<RawOp>> {
    prop::collection::vec(op_strategy(knobs), 0..knobs.max_ops)
}

// ---------------------------------------------------------------------------
// Pieces both builders use
// ---------------------------------------------------------------------------

/// A violation's JSON and its points.
pub fn violation_json(id: &str, prac: usize, inst: usize, effective: CivilDate, raw: &RawViolation) -> (Value, u32) {
    let (severity, band_start) = SEVERITIES[raw.severity];
    let points = band_start + raw.step;
    let mut json = json!({
        "type": "violation_scored", "violation_id": id,
        "practitioner": PRACTITIONERS[prac], "institution": INSTITUTIONS[inst],
        "effective": effective.to_string(), "points": points, "severity": severity,
        "responsibility": RESPONSIBILITIES[raw.responsibility],
    });
    if let Some(m) = raw.months {
        json["suspension_months"] = json!(m);
    }
    (json, points)
}

/// The setup's events: designations, registrations, then deregistrations.
pub fn setup_events(setup: &RawSetup) -> Vec<Value> {
    let n_inst = setup.institutions;
    let mut events = Vec::new();
    for (code, day) in INSTITUTIONS.iter().zip(&setup.designated).take(n_inst) {
        events.push(json!({"type": "institution_designated", "institution": code,
                           "effective": offset(setup_start(), *day).to_string()}));
    }
    let mut deregistrations = Vec::new();
    for (p, raw) in setup.practitioners.iter().enumerate() {
        let mask = raw.sites & ((1u8 << n_inst) - 1);
        let sites: Vec<usize> = (0..n_inst).filter(|i| (mask == 0 && *i == 0) || mask & (1 << i) != 0).collect();
        for &i in &sites {
            events.push(json!({"type": "practitioner_registered", "practitioner": PRACTITIONERS[p],
                               "institution": INSTITUTIONS[i],
                               "effective": offset(setup_start(), raw.registered[i]).to_string()}));
        }
        if let Some((pick, len)) = &raw.deregister {
            let i = sites[pick.index(sites.len())];
            deregistrations.push(json!({"type": "practitioner_deregistered", "practitioner": PRACTITIONERS[p],
                                        "institution": INSTITUTIONS[i],
                                        "effective": offset(setup_start(), raw.registered[i] + len).to_string()}));
        }
    }
    events.extend(deregistrations);
    events
}
