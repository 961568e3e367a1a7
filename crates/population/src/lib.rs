//! A deterministic synthetic national population, for benchmarks, the load
//! generator and the demo.
//!
//! A [`Population`] is a pure function of a [`PopulationSpec`] (a practitioner
//! count and a seed): the same spec gives the same codes and the same events,
//! byte for byte, on every machine, because all randomness comes from one
//! SplitMix64 generator ([`Rng`], a fixed algorithm whose first outputs a test
//! pins), seeded per entity. Nothing is stored: institution `j` and practitioner `i`
//! are generated on demand from `(seed, j)` and `(seed, i)`, so 20 million
//! practitioners stream through [`Population::events`] in constant memory.
//!
//! Every generated event is accepted, in the order [`Population::events`]
//! gives, by a fresh ledger under [`Policy::default`] (tested below). The
//! population is a snapshot as of [`reference_date`] (2026-06-15): every event
//! is dated before it, while sanctions and suspensions may run past it.
//!
//! The shape, each share a named constant below:
//! - one institution per [`PRACTITIONERS_PER_INSTITUTION`] practitioners; codes
//!   `H` (80%) or `P` (20%), a region from [`REGION_PREFIXES`] and a serial
//!   (R2); designated 2000–2014 (85%) or 2015–2024; 5% suspended for 1–6
//!   months and 1% terminated (half of them designated again) in 2023–2026;
//!   rated for 2023–2025 with credit tiers A–E, a few with `direct_e` codes;
//! - practitioner codes `D` (60%), `HY` (15%) or `HJ` (25%), the region, a
//!   serial and mostly no more digits (12 digits, a few up to 18; R1);
//!   registered 2015–2025 at 1 (70%), 2 (22%), 3 or 4 (8%) institutions, mostly
//!   in their own region, pharmacy staff (`HY`) mostly at pharmacies; 8% move
//!   and 3% leave practice;
//! - 2% score violations in 2024–2026 (R9 bands): minor histories, repairs
//!   (R13 cap respected), suspensions (R14, some in force on the reference
//!   date), terminations (R15, some by a single 12-point fraud, some followed
//!   by a registration after the ban), and some upheld appeals (R12).
//!
//! This file keeps the shape's named constants (every share listed above),
//! the public types and the generation of institutions and codes together,
//! so the distribution reads in one place (over 600 lines for that reason);
//! a practitioner's plan is built in `plan.rs`, randomness is `random.rs`.

use claimgate_rules::domain::{
    CivilDate, EventId, InstitutionCode, PractitionerCode, Responsibility, Severity, ViolationId,
};
use claimgate_rules::event::{Event, RecordedEvent, Violation};
use claimgate_rules::policy::{Policy, BAN_YEARS, MAX_SUSPENSION_MONTHS, SUSPENSION_THRESHOLD, TERMINATION_THRESHOLD};
use claimgate_rules::practitioner::{self, PractitionerStanding};
use claimgate_rules::SanctionKind;

mod plan;
mod random;
#[cfg(test)]
mod tests;

use plan::*;
pub use random::Rng;
use random::{shuffle, slot_entry, units, unshuffle, PER_MILLE};

// ---------------------------------------------------------------------------
// Limits and the reference date
// ---------------------------------------------------------------------------

/// The most practitioners a population may have. Up to here every code is
/// unique and within R1/R2 (institution serials stay within 5 digits,
/// practitioner serials within 6).
pub const MAX_PRACTITIONERS: u64 = 50_000_000;
/// Practitioners of the demo's population unless told otherwise (`claimgate
/// demo --practitioners`, and the load tests' request mix, which must match).
pub const DEMO_PRACTITIONERS: u64 = 1_000_000;
/// Seed of the demo's population unless told otherwise (likewise).
pub const DEMO_SEED: u64 = 20_261_124;
/// One institution per this many practitioners (and at least one).
pub const PRACTITIONERS_PER_INSTITUTION: u64 = 20;
/// The date [`Notable`] standings refer to, as (year, month, day); see
/// [`reference_date`]. (`CivilDate` has no `const` constructor.)
pub const REFERENCE_DATE_YMD: (i32, u32, u32) = (2026, 6, 15);
/// How many practitioners (from index 0) [`Population::find_practitioner`]
/// examines before giving up.
pub const FIND_SCAN_LIMIT: u64 = 100_000;

/// The reference date, 2026-06-15 ([`REFERENCE_DATE_YMD`]): the population is
/// a snapshot as of this day, and [`Notable`] standings hold on it.
pub fn reference_date() -> CivilDate {
    let (y, m, d) = REFERENCE_DATE_YMD;
    CivilDate::from_ymd(y, m, d).expect("the reference date is a calendar day")
}

// ---------------------------------------------------------------------------
// Codes (R1, R2)
// ---------------------------------------------------------------------------

/// Issuing regions: one district of each of the 31 provincial-level divisions
/// of the mainland (Beijing Chaoyang, Tianjin Heping, ..., Shanghai Pudong,
/// ..., Shenzhen Nanshan, ..., Urumqi Tianshan). Every region is equally likely.
pub const REGION_PREFIXES: [u32; 31] = [
    110105, 120101, 130102, 140105, 150102, 210102, 220102, 230102, 310115, 320106, 330106, 340104, 350102, 360102,
    370102, 410105, 420106, 430104, 440305, 450103, 460105, 500103, 510107, 520102, 530102, 540102, 610113, 620102,
    630102, 640104, 650102,
];
const REGIONS: u64 = REGION_PREFIXES.len() as u64;

/// Institution letters and their share in fifths: `H` medical institution 80%,
/// `P` retail pharmacy 20% (R2).
pub const INSTITUTION_LETTERS: [(u8, u64); 2] = [(b'H', 4), (b'P', 1)];
const LETTER_SLOTS: u64 = slot_total(&INSTITUTION_LETTERS);
const PHARMACY_LETTER: usize = 1;
const HOSPITAL_LETTER: usize = 0;
/// Digits of an institution serial (after the 6-digit region: 11 in all, R2).
const INSTITUTION_SERIAL_DIGITS: u32 = 5;

/// Practitioner categories and their share in twentieths: `D` physician 60%,
/// `HY` pharmacy staff 15%, `HJ` technical staff 25% (R1).
pub const PRACTITIONER_CATEGORIES: [(&str, u64); 3] = [("D", 12), ("HY", 3), ("HJ", 5)];
const CATEGORY_SLOTS: u64 = slot_total(&PRACTITIONER_CATEGORIES);
const PHARMACY_STAFF: usize = 1;
/// Digits of a practitioner serial (after the 6-digit region).
const PRACTITIONER_SERIAL_DIGITS: u32 = 6;
/// Digits of a region prefix.
const REGION_DIGITS: u32 = 6;
/// More digits after the serial, in per mille of practitioners: 90% have none
/// (12 digits in all), a few have 2, 4 or 6 more (14, 16, 18 digits; R1).
pub const PRACTITIONER_EXTRA_DIGITS: [(u32, u64); 4] = [(0, 900), (2, 60), (4, 30), (6, 10)];

/// Codes are issued in blocks: block `b` holds one entity for every (region,
/// letter-or-category slot) pair, in a per-block shuffled order, and gives
/// each the serial `b * slots_of_its_letter + rank_of_its_slot`. So distinct
/// indices always get distinct (letter, region, serial), hence distinct codes.
const INSTITUTION_BLOCK: u64 = REGIONS * LETTER_SLOTS;
const PRACTITIONER_BLOCK: u64 = REGIONS * CATEGORY_SLOTS;
/// The most institutions whose serials fit 5 digits (1-based, `H` has 4 slots).
const MAX_INSTITUTIONS: u64 = (10u64.pow(INSTITUTION_SERIAL_DIGITS) - 1) / 4 * INSTITUTION_BLOCK;
const _: () = assert!(MAX_PRACTITIONERS / PRACTITIONERS_PER_INSTITUTION <= MAX_INSTITUTIONS);
const _: () = assert!(MAX_PRACTITIONERS.div_ceil(PRACTITIONER_BLOCK) * 12 <= 10u64.pow(PRACTITIONER_SERIAL_DIGITS));

const fn slot_total<T>(table: &[(T, u64)]) -> u64 {
    let mut total = 0;
    let mut k = 0;
    while k < table.len() {
        total += table[k].1;
        k += 1;
    }
    total
}

// ---------------------------------------------------------------------------
// Institutions
// ---------------------------------------------------------------------------

/// Years in which established institutions were designated (inclusive).
pub const ESTABLISHED_DESIGNATION_YEARS: (i32, i32) = (2000, 2014);
/// Per mille of institutions designated recently, in [`NEW_DESIGNATION_YEARS`].
pub const NEW_INSTITUTION_PER_MILLE: u64 = 150;
/// Years in which new institutions were designated (inclusive).
pub const NEW_DESIGNATION_YEARS: (i32, i32) = (2015, 2024);
/// First year of institution suspensions and terminations (up to the reference date).
pub const INSTITUTION_SANCTION_FROM_YEAR: i32 = 2023;
/// Per mille of institutions with an `institution_suspended` interval.
pub const INSTITUTION_SUSPENDED_PER_MILLE: u64 = 50;
/// Length of an institution suspension, months (inclusive).
pub const INSTITUTION_SUSPENSION_MONTHS: (u32, u32) = (1, 6);
/// Per mille of institutions whose agreement is terminated.
pub const INSTITUTION_TERMINATED_PER_MILLE: u64 = 10;
/// Per mille of terminated institutions designated again (if before the reference date).
pub const REDESIGNATED_PER_MILLE: u64 = 500;
/// Months from a termination to the new designation (inclusive).
pub const REDESIGNATION_AFTER_MONTHS: (u32, u32) = (3, 18);
/// Shortest agreement before a termination, days.
const MIN_AGREEMENT_DAYS: i32 = 365;
/// Shortest agreement before a suspension, days.
const MIN_DAYS_BEFORE_SUSPENSION: i32 = 30;
/// Years rated (R20), inclusive; an institution is rated for the years it held an agreement.
pub const RATING_YEARS: (i32, i32) = (2023, 2025);
/// Credit tiers: score range in tenths of a point (inclusive) and per mille of
/// institutions. The ranges are the grade bands of R20, so grades A–E all occur.
pub const CREDIT_TIERS: [((u32, u32), u64); 5] = [
    ((900, 1000), 300), // A
    ((800, 899), 380),  // B
    ((700, 799), 200),  // C
    ((600, 699), 80),   // D
    ((350, 599), 40),   // E
];
const TIER_E: usize = 4;
/// Per mille of ratings one tier better, and one tier worse, than the institution's usual.
pub const TIER_DRIFT_PER_MILLE: u64 = 100;
/// Per mille of ratings listing one `direct_e` circumstance (R20) drawn from the policy.
pub const DIRECT_E_PER_MILLE: u64 = 10;
/// The circumstance a terminated institution's rating for that year lists.
const TERMINATED_DIRECT_E: &str = "agreement_terminated_for_violation";
/// When a year's rating is recorded: this month and day of the following year.
const RATING_RECORDED_ON: (u32, u32) = (3, 31);

// ---------------------------------------------------------------------------
// Practitioners
// ---------------------------------------------------------------------------

/// Years of first registrations (inclusive).
pub const REGISTRATION_YEARS: (i32, i32) = (2015, 2025);
/// Institutions a practitioner is filed at, per mille (multi-site practice).
pub const SITE_COUNTS: [(usize, u64); 4] = [(1, 700), (2, 220), (3, 60), (4, 20)];
/// Further sites are registered within this many days of the first.
pub const EXTRA_SITE_WITHIN_DAYS: u64 = 730;
/// Per mille of first sites in the practitioner's own region.
pub const SAME_REGION_PER_MILLE: u64 = 850;
/// Per mille of further sites in the practitioner's own region.
pub const SAME_REGION_EXTRA_PER_MILLE: u64 = 700;
/// Per mille of pharmacy staff (`HY`) filed at pharmacies (`P`); everyone else is filed at `H`.
pub const PHARMACY_STAFF_AT_PHARMACY_PER_MILLE: u64 = 850;
/// Candidates tried when looking for a site before falling back to any institution.
const SITE_PICK_TRIES: u32 = 8;
/// Careers of practitioners without violations, per mille: stay, move (leave
/// the first site for another) or leave practice (deregistered everywhere).
pub const CAREERS: [(Career, u64); 3] = [(Career::Stay, 890), (Career::Move, 80), (Career::Leave, 30)];
/// Shortest registration before a deregistration, days.
pub const MIN_TENURE_DAYS: i32 = 90;
/// A mover registers at the new site within this many days of leaving the old.
const MOVE_GAP_DAYS: u64 = 30;

/// What happens in a career without violations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Career {
    Stay,
    Move,
    Leave,
}

// ---------------------------------------------------------------------------
// Violations (R9-R15)
// ---------------------------------------------------------------------------

/// Per mille of practitioners with violations.
pub const VIOLATOR_PER_MILLE: u64 = 20;
/// Years of violations and their weight per mille (2026 only up to the reference date).
pub const VIOLATION_YEARS: [(i32, u64); 3] = [(2024, 350), (2025, 400), (2026, 250)];
/// Kinds of violation history, per mille of practitioners with violations.
pub const VIOLATION_HISTORIES: [(History, u64); 4] =
    [(History::Minor, 450), (History::Repaired, 150), (History::Suspended, 250), (History::Terminated, 150)];
/// Per mille of minor histories with a second violation.
pub const SECOND_MINOR_PER_MILLE: u64 = 400;
/// Per mille of second minor violations in the same year as the first (else another year).
pub const SAME_YEAR_MINOR_PER_MILLE: u64 = 500;
/// Per mille of minor violations in the `minor` band (else `moderate`).
pub const MINOR_BAND_PER_MILLE: u64 = 700;
/// Per mille of suspension histories placed so the suspension is in force on
/// the reference date (the last violation within [`CURRENT_SUSPENSION_WINDOW_DAYS`] before it).
pub const CURRENT_SUSPENSION_PER_MILLE: u64 = 400;
/// A current suspension starts at most this many days before the reference
/// date; shorter than the shortest such suspension (2 months), so it covers it.
pub const CURRENT_SUSPENSION_WINDOW_DAYS: i32 = 55;
/// Per mille of suspensions whose violation names `suspension_months` (else the policy table, R14).
pub const EXPLICIT_SUSPENSION_MONTHS_PER_MILLE: u64 = 300;
/// Per mille of terminations by a single 12-point fraud (3-year ban, R15).
pub const SINGLE_INCIDENT_PER_MILLE: u64 = 350;
/// Per mille of single-incident terminations preceded by a minor violation that year.
pub const PRIOR_MINOR_PER_MILLE: u64 = 300;
/// Per mille of terminated practitioners deregistered by their institutions soon after.
pub const DEREGISTERED_ON_TERMINATION_PER_MILLE: u64 = 500;
/// Deregistration after a termination follows within this many days.
const DEREGISTRATION_AFTER_TERMINATION_DAYS: u64 = 30;
/// Per mille of practitioners whose ban ended before the reference date who register again.
pub const REREGISTERED_PER_MILLE: u64 = 600;
/// A new registration follows the end of a ban within this many days.
const REREGISTRATION_WITHIN_DAYS: u64 = 90;
/// Per mille of histories other than terminations with one violation revoked on appeal (R12).
pub const REVOKED_PER_MILLE: u64 = 120;
/// An appeal is upheld this many days after the violation (inclusive).
pub const REVOCATION_AFTER_DAYS: (i32, i32) = (10, 90);
/// Responsibility of scored persons, per mille (R9).
pub const RESPONSIBILITIES: [(Responsibility, u64); 3] =
    [(Responsibility::Primary, 500), (Responsibility::Important, 300), (Responsibility::General, 200)];
/// Points below which a history stays free of sanctions.
const BELOW_SUSPENSION: u32 = SUSPENSION_THRESHOLD - 1;

/// The shape of a violation history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// One or two violations, never 9 points in a year.
    Minor,
    /// Violations and repairs (at most the R13 default cap of 6 a year), never 9 points.
    Repaired,
    /// A year total reaching 9–11 (R14).
    Suspended,
    /// A year total reaching 12 or more (R15).
    Terminated,
}

/// The most points repaired per year here: the default cap of R13.
const REPAIR_CAP: u32 = 6;

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/// What population to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PopulationSpec {
    pub practitioners: u64,
    pub seed: u64,
}

impl PopulationSpec {
    /// A spec. Panics if `practitioners` exceeds [`MAX_PRACTITIONERS`].
    pub fn new(practitioners: u64, seed: u64) -> Self {
        assert!(
            practitioners <= MAX_PRACTITIONERS,
            "a population has at most {MAX_PRACTITIONERS} practitioners, not {practitioners}"
        );
        PopulationSpec { practitioners, seed }
    }

    /// How many institutions: one per [`PRACTITIONERS_PER_INSTITUTION`], at least one.
    pub fn institutions(&self) -> u64 {
        (self.practitioners / PRACTITIONERS_PER_INSTITUTION).max(1)
    }
}

/// One entity's events with the `seq` a fresh ledger gives them.
#[derive(Debug, Clone, PartialEq)]
pub enum Group {
    Institution(InstitutionCode, Vec<RecordedEvent>),
    Practitioner(PractitionerCode, Vec<RecordedEvent>),
}

impl Group {
    /// The group's events.
    pub fn events(&self) -> &[RecordedEvent] {
        match self {
            Group::Institution(_, events) | Group::Practitioner(_, events) => events,
        }
    }
}

/// A standing on the reference date worth an example claim. Each comes with
/// an institution from [`Population::claim_institution`] whose agreement is in
/// force and not suspended then, so a claim there on [`reference_date`] is
/// decided by the practitioner's standing alone:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Notable {
    /// No violation ever, registered at that institution: `settle`, `ok`.
    GoodStanding,
    /// A suspension (and no termination) in force, registered there: `practitioner_suspended`.
    Suspended,
    /// A termination in force, still registered there: `practitioner_terminated`.
    Terminated,
    /// No violation, registered nowhere any more, formerly there: `not_registered_at_institution`.
    Deregistered,
}

/// A deterministic synthetic population (see the module docs).
#[derive(Debug, Clone)]
pub struct Population {
    spec: PopulationSpec,
    institutions: u64,
    policy: Policy,
    days: Days,
    /// Units modulo [`INSTITUTION_BLOCK`] and their inverses (block shuffles).
    institution_units: Vec<(u64, u64)>,
    /// Units modulo [`PRACTITIONER_BLOCK`] and their inverses.
    practitioner_units: Vec<(u64, u64)>,
}

/// Day numbers of the fixed dates, computed once.
#[derive(Debug, Clone, Copy)]
struct Days {
    reference: i32,
    /// The last day events are dated.
    horizon: i32,
    established: (i32, i32),
    new: (i32, i32),
    sanctions_from: i32,
    registration: (i32, i32),
    violations_from: i32,
}

impl Population {
    /// The population of `spec`. Panics if it has more than [`MAX_PRACTITIONERS`].
    pub fn new(spec: PopulationSpec) -> Population {
        assert!(spec.practitioners <= MAX_PRACTITIONERS, "at most {MAX_PRACTITIONERS} practitioners");
        let year_span = |(from, until): (i32, i32)| (day(from, 1, 1), day(until, 12, 31));
        let reference = reference_date().day_number();
        let days = Days {
            reference,
            horizon: reference - 1,
            established: year_span(ESTABLISHED_DESIGNATION_YEARS),
            new: year_span(NEW_DESIGNATION_YEARS),
            sanctions_from: day(INSTITUTION_SANCTION_FROM_YEAR, 1, 1),
            registration: year_span(REGISTRATION_YEARS),
            violations_from: day(VIOLATION_YEARS[0].0, 1, 1),
        };
        Population {
            spec,
            institutions: spec.institutions(),
            policy: Policy::default(),
            days,
            institution_units: units(INSTITUTION_BLOCK),
            practitioner_units: units(PRACTITIONER_BLOCK),
        }
    }

    /// The spec this population was made from.
    pub fn spec(&self) -> &PopulationSpec {
        &self.spec
    }

    /// The code of institution number j (0-based, j < institutions()).
    pub fn institution_code(&self, j: u64) -> InstitutionCode {
        debug_assert!(j < self.institutions, "institution {j} of {}", self.institutions);
        let (block, v) = shuffle(self.spec.seed, TAG_INSTITUTION_BLOCK, j, INSTITUTION_BLOCK, &self.institution_units);
        let region = REGION_PREFIXES[(v / LETTER_SLOTS) as usize];
        let (letter, rank, width) = slot_entry(&INSTITUTION_LETTERS, v % LETTER_SLOTS);
        let serial = block * width + rank + 1;
        let mut buf = [0u8; 12];
        buf[0] = INSTITUTION_LETTERS[letter].0;
        let at = put_digits(&mut buf, 1, u64::from(region), REGION_DIGITS);
        put_digits(&mut buf, at, serial, INSTITUTION_SERIAL_DIGITS);
        InstitutionCode::parse(std::str::from_utf8(&buf).expect("ASCII")).expect("generated codes follow R2")
    }

    /// The code of practitioner number i (0-based, i < practitioners).
    pub fn practitioner_code(&self, i: u64) -> PractitionerCode {
        self.identity(i).code
    }

    /// Institution j's events (designation, maybe a termination and
    /// re-designation, maybe a suspension, ratings for a few years), in a
    /// valid append order.
    pub fn institution_events(&self, j: u64) -> Vec<Event> {
        let code = self.institution_code(j);
        let p = self.institution_profile(j);
        let mut events = Vec::with_capacity(6);
        events.push(Event::InstitutionDesignated { institution: code, effective: civil(p.designated), event_id: None });
        if let Some((from, until)) = p.suspended {
            events.push(Event::InstitutionSuspended {
                institution: code,
                effective: civil(from),
                until: civil(until),
                event_id: None,
            });
        }
        if let Some(t) = p.terminated {
            events.push(Event::InstitutionTerminated { institution: code, effective: civil(t), event_id: None });
        }
        if let Some(d) = p.redesignated {
            events.push(Event::InstitutionDesignated { institution: code, effective: civil(d), event_id: None });
        }
        let mut rng = Rng::stream(self.spec.seed, TAG_RATING, j);
        let designated_year = civil(p.designated).year();
        let terminated_year = p.terminated.map(|t| civil(t).year());
        let suspended_year = p.suspended.map(|(from, _)| civil(from).year());
        for year in RATING_YEARS.0..=RATING_YEARS.1 {
            // Fixed draws per year keep one year's rating independent of the others.
            let drift = rng.below(PER_MILLE);
            let direct_e = rng.chance(DIRECT_E_PER_MILLE);
            let code_pick = rng.next_u64();
            let score_pick = rng.next_u64();
            let ended = terminated_year.is_some_and(|t| t < year) && p.redesignated.is_none();
            if designated_year > year || ended {
                continue;
            }
            let mut tier = p.tier;
            if drift < TIER_DRIFT_PER_MILLE {
                tier = tier.saturating_sub(1);
            } else if drift < 2 * TIER_DRIFT_PER_MILLE || suspended_year == Some(year) {
                tier = (tier + 1).min(TIER_E);
            }
            let mut listed = Vec::new();
            if terminated_year == Some(year) {
                tier = TIER_E;
                listed.push(TERMINATED_DIRECT_E.to_owned());
            } else if direct_e && !self.policy.direct_e_codes.is_empty() {
                let codes = &self.policy.direct_e_codes;
                listed.push(codes[(code_pick % codes.len() as u64) as usize].clone());
            }
            let (lo, hi) = CREDIT_TIERS[tier].0;
            let tenths = lo + (score_pick % u64::from(hi - lo + 1)) as u32;
            events.push(Event::InstitutionRated {
                institution: code,
                year,
                score: f64::from(tenths) / 10.0,
                direct_e: listed,
                event_id: None,
            });
        }
        // In the order the agency records them; a year's rating early the next year.
        let (month, dom) = RATING_RECORDED_ON;
        events.sort_by_key(|e| match e {
            Event::InstitutionRated { year, .. } => day(year + 1, month, dom),
            other => other.effective().day_number(),
        });
        events
    }

    /// Practitioner i's events in a valid append order (registrations at 1-4
    /// institutions, and for some: deregistrations, violations, repairs,
    /// revocations, re-registration after a ban).
    pub fn practitioner_events(&self, i: u64) -> Vec<Event> {
        self.plan(i).events
    }

    /// Every event of the population in a valid append order: all
    /// institutions' events (j ascending) first, then each practitioner's (i
    /// ascending). Lazily generated: nothing is held but the current entity's events.
    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        (0..self.institutions)
            .flat_map(move |j| self.institution_events(j))
            .chain((0..self.spec.practitioners).flat_map(move |i| self.practitioner_events(i)))
    }

    /// The index of the whole population, built without a ledger
    /// (benchmarks, load tests): the index's own builder, fed from memory,
    /// so it holds what a ledger build of the same events would.
    pub fn index(&self) -> claimgate_index::IndexVersion {
        let spec = self.spec();
        let mut builder = claimgate_index::build::Builder::with_capacity(
            spec.practitioners as usize,
            spec.institutions() as usize,
            Policy::default(),
        );
        let mut seq = 0;
        for group in self.groups() {
            seq = seq.max(group.events().last().map_or(0, |r| r.seq));
            match &group {
                Group::Institution(code, events) => builder.institution(*code, events),
                Group::Practitioner(code, events) => builder.practitioner(*code, events),
            }
        }
        builder.finish(seq)
    }

    /// The same stream with the seq a fresh ledger would give each event (1,
    /// 2, 3, ...), grouped per entity: first one item per institution, then
    /// one per practitioner.
    pub fn groups(&self) -> impl Iterator<Item = Group> + '_ {
        let mut next_seq = 1;
        let mut record = move |events: Vec<Event>| -> Vec<RecordedEvent> {
            events
                .into_iter()
                .map(|event| {
                    let seq = next_seq;
                    next_seq += 1;
                    RecordedEvent { seq, event }
                })
                .collect()
        };
        (0..self.institutions)
            .map(Entity::Institution)
            .chain((0..self.spec.practitioners).map(Entity::Practitioner))
            .map(move |entity| match entity {
                Entity::Institution(j) => {
                    Group::Institution(self.institution_code(j), record(self.institution_events(j)))
                }
                Entity::Practitioner(i) => {
                    let plan = self.plan(i);
                    Group::Practitioner(plan.code, record(plan.events))
                }
            })
    }

    /// The lowest practitioner index with a notable standing on the reference
    /// date (see [`Notable`]), for example claims; `None` if none of the first
    /// [`FIND_SCAN_LIMIT`] practitioners has it.
    pub fn find_practitioner(&self, kind: Notable) -> Option<u64> {
        (0..self.spec.practitioners.min(FIND_SCAN_LIMIT)).find(|&i| self.is_notable(i, kind))
    }

    /// The institution an example claim for practitioner i should name: one
    /// where i is registered on the reference date whose agreement is in force
    /// and not suspended then; failing that, the last such institution i was
    /// registered at; `None` if there is neither.
    pub fn claim_institution(&self, i: u64) -> Option<InstitutionCode> {
        let a = self.assess(i);
        a.current_site.or(a.former_site)
    }

    /// Practitioner i's standing derived from their own events (R9–R16).
    pub fn practitioner_standing(&self, i: u64) -> PractitionerStanding {
        self.assess(i).standing
    }

    fn is_notable(&self, i: u64, kind: Notable) -> bool {
        let plan = self.plan(i);
        let violated = plan.events.iter().any(|e| matches!(e, Event::ViolationScored(_)));
        let wants_violations = matches!(kind, Notable::Suspended | Notable::Terminated);
        if violated != wants_violations {
            return false;
        }
        let a = self.assess_plan(plan);
        let reference = civil(self.days.reference);
        let suspended = a.standing.sanction_on(SanctionKind::Suspension, reference).is_some();
        let terminated = a.standing.sanction_on(SanctionKind::Termination, reference).is_some();
        match kind {
            Notable::GoodStanding => a.current_site.is_some(),
            Notable::Suspended => suspended && !terminated && a.current_site.is_some(),
            Notable::Terminated => terminated && a.current_site.is_some(),
            Notable::Deregistered => {
                let registered_now = a.standing.registrations.iter().any(|r| r.interval.contains(reference));
                a.standing.registered_ever && !registered_now && a.former_site.is_some()
            }
        }
    }

    fn assess(&self, i: u64) -> Assessment {
        self.assess_plan(self.plan(i))
    }

    fn assess_plan(&self, plan: Plan) -> Assessment {
        let recorded: Vec<RecordedEvent> =
            plan.events.into_iter().zip(1..).map(|(event, seq)| RecordedEvent { seq, event }).collect();
        let standing = practitioner::derive(plan.code, &recorded, &self.policy);
        let reference = civil(self.days.reference);
        let serviceable = |code: InstitutionCode| {
            plan.sites
                .iter()
                .find(|(_, c)| *c == code)
                .is_some_and(|(j, _)| self.institution_profile(*j).serviceable_on(self.days.reference))
        };
        let current_site = standing
            .registrations
            .iter()
            .find(|r| r.interval.contains(reference) && serviceable(r.institution))
            .map(|r| r.institution);
        let former_site = standing
            .registrations
            .iter()
            .filter(|r| r.interval.until.is_some_and(|u| u <= reference) && serviceable(r.institution))
            .max_by_key(|r| r.interval.until)
            .map(|r| r.institution);
        Assessment { standing, current_site, former_site }
    }

    // -----------------------------------------------------------------------
    // Generation
    // -----------------------------------------------------------------------

    fn identity(&self, i: u64) -> Identity {
        debug_assert!(i < self.spec.practitioners.max(1), "practitioner {i} of {}", self.spec.practitioners);
        let (block, v) =
            shuffle(self.spec.seed, TAG_PRACTITIONER_BLOCK, i, PRACTITIONER_BLOCK, &self.practitioner_units);
        let region = (v / CATEGORY_SLOTS) as usize;
        let (category, rank, width) = slot_entry(&PRACTITIONER_CATEGORIES, v % CATEGORY_SLOTS);
        let serial = block * width + rank;
        let mut rng = Rng::stream(self.spec.seed, TAG_PRACTITIONER_DIGITS, i);
        let extra = rng.weighted(&PRACTITIONER_EXTRA_DIGITS);
        let extra_value = rng.below(10u64.pow(extra));
        let mut buf = [0u8; 20];
        let letters = PRACTITIONER_CATEGORIES[category].0.as_bytes();
        buf[..letters.len()].copy_from_slice(letters);
        let mut at = put_digits(&mut buf, letters.len(), u64::from(REGION_PREFIXES[region]), REGION_DIGITS);
        at = put_digits(&mut buf, at, serial, PRACTITIONER_SERIAL_DIGITS);
        at = put_digits(&mut buf, at, extra_value, extra);
        let code = PractitionerCode::parse(std::str::from_utf8(&buf[..at]).expect("ASCII"))
            .expect("generated codes follow R1");
        Identity { code, region, category }
    }

    fn institution_profile(&self, j: u64) -> Profile {
        let d = &self.days;
        let mut rng = Rng::stream(self.spec.seed, TAG_INSTITUTION, j);
        let designated =
            if rng.chance(NEW_INSTITUTION_PER_MILLE) { rng.day_in(d.new) } else { rng.day_in(d.established) };
        // Every draw is made whether used or not, so each decision has fixed randomness.
        let terminates = rng.chance(INSTITUTION_TERMINATED_PER_MILLE);
        let termination = rng.day_in(((designated + MIN_AGREEMENT_DAYS).max(d.sanctions_from), d.horizon));
        let redesignates = rng.chance(REDESIGNATED_PER_MILLE);
        let gap = rng.between(REDESIGNATION_AFTER_MONTHS);
        let suspends = rng.chance(INSTITUTION_SUSPENDED_PER_MILLE);
        let suspension = rng.day_in(((designated + MIN_DAYS_BEFORE_SUSPENSION).max(d.sanctions_from), d.horizon));
        let months = rng.between(INSTITUTION_SUSPENSION_MONTHS);
        let tier = rng.weighted(&TIER_WEIGHTS);
        let terminated = terminates.then_some(termination);
        let redesignated = terminated.filter(|_| redesignates).map(|t| plus_months(t, gap)).filter(|&r| r <= d.horizon);
        let suspended = (suspends && !terminates).then(|| (suspension, plus_months(suspension, months)));
        Profile { designated, suspended, terminated, redesignated, tier }
    }

    fn plan(&self, i: u64) -> Plan {
        let id = self.identity(i);
        let mut b = Builder {
            pop: self,
            rng: Rng::stream(self.spec.seed, TAG_PRACTITIONER, i),
            id,
            events: Vec::with_capacity(4),
            sites: Vec::with_capacity(4),
            violations: Vec::new(),
        };
        let d = self.days;
        let mut violator = b.rng.chance(VIOLATOR_PER_MILLE);
        let site_count = b.rng.weighted(&SITE_COUNTS);
        let history = b.rng.weighted(&VIOLATION_HISTORIES);
        let career = b.rng.weighted(&CAREERS);
        // Violators' registrations all precede their first violation, so none
        // can fall inside a ban (R15).
        let latest = if violator { d.violations_from - 1 } else { d.registration.1 };
        let first = b.rng.day_in((d.registration.0, latest));
        let first = b.register_somewhere(first, latest);
        violator &= first <= latest;
        for _ in 1..site_count {
            let wanted = (first + b.rng.below(EXTRA_SITE_WITHIN_DAYS) as i32).min(latest).max(first);
            b.register_at_new_site(wanted, latest, SAME_REGION_EXTRA_PER_MILLE);
        }
        if violator {
            b.violation_history(history);
        } else {
            b.career(career, first);
        }
        // Chronological; same-day events keep the order they were made in.
        b.events.sort_by_key(Event::effective);
        Plan { code: b.id.code, events: b.events, sites: b.sites }
    }
}

impl Population {
    /// A random institution of `region` with `letter` (indices into
    /// [`REGION_PREFIXES`] and [`INSTITUTION_LETTERS`]), found by inverting a
    /// block shuffle; any institution if tries run out (small populations).
    fn institution_in(&self, rng: &mut Rng, region: usize, letter: usize) -> u64 {
        let n = self.institutions;
        let blocks = n.div_ceil(INSTITUTION_BLOCK);
        let first_slot: u64 = INSTITUTION_LETTERS[..letter].iter().map(|(_, w)| w).sum();
        let width = INSTITUTION_LETTERS[letter].1;
        for _ in 0..SITE_PICK_TRIES {
            let block = rng.below(blocks);
            let v = region as u64 * LETTER_SLOTS + first_slot + rng.below(width);
            let j = block * INSTITUTION_BLOCK
                + unshuffle(
                    self.spec.seed,
                    TAG_INSTITUTION_BLOCK,
                    block,
                    v,
                    INSTITUTION_BLOCK,
                    &self.institution_units,
                );
            if j < n {
                return j;
            }
        }
        rng.below(n)
    }
}

/// Writes `value` as exactly `width` decimal digits at `at`; returns the end.
fn put_digits(buf: &mut [u8], at: usize, mut value: u64, width: u32) -> usize {
    let end = at + width as usize;
    for digit in buf[at..end].iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
    debug_assert_eq!(value, 0, "value wider than {width} digits");
    end
}

fn day(year: i32, month: u32, dom: u32) -> i32 {
    CivilDate::from_ymd(year, month, dom).expect("a calendar day").day_number()
}

// Stream tags: one independent stream per purpose and entity.
const TAG_INSTITUTION: u64 = 0x494E_5354_0000_0001;
const TAG_RATING: u64 = 0x494E_5354_0000_0002;
const TAG_INSTITUTION_BLOCK: u64 = 0x494E_5354_0000_0003;
const TAG_PRACTITIONER: u64 = 0x5052_4143_0000_0001;
const TAG_PRACTITIONER_DIGITS: u64 = 0x5052_4143_0000_0002;
const TAG_PRACTITIONER_BLOCK: u64 = 0x5052_4143_0000_0003;

fn civil(day: i32) -> CivilDate {
    CivilDate::from_day_number(day).expect("generated days are in range")
}

fn plus_months(day: i32, months: u32) -> i32 {
    civil(day).add_months(months).expect("generated days are far from 9999").day_number()
}
