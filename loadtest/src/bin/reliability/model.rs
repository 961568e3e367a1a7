//! The small world the campaigns write and check: institutions and
//! practitioners with fixed codes, a mix of every R7 event kind on them at
//! dates over ten years (so yearly totals, suspensions, terminations,
//! revocations, repairs, re-registrations and institution sanctions all
//! happen), and claim lines on the same people. Deterministic from a seed.

use serde_json::{json, Value};

/// First year of effective and service dates.
const FIRST_YEAR: u32 = 2020;
/// Years covered.
const YEARS: u32 = 10;
/// The date every institution is designated and every practitioner first registered.
const SETUP_DATE: &str = "2019-01-01";

/// The project's one deterministic generator (the population's SplitMix64):
/// reproducible campaigns from a seed.
pub use claimgate::population::Rng;

/// The world's people and places (shared by every writer and checker).
#[derive(Clone)]
pub struct World {
    pub practitioners: u64,
    pub institutions: u64,
}

impl World {
    pub fn new(practitioners: u64, institutions: u64) -> World {
        assert!(practitioners > 0 && institutions > 1);
        World { practitioners, institutions }
    }

    pub fn practitioner(&self, i: u64) -> String {
        format!("D{:012}", 110_105_000_000 + i)
    }

    pub fn institution(&self, j: u64) -> String {
        format!("H{:011}", 11_010_500_000 + j)
    }

    /// The institution practitioner `i` is first registered at (a second for every third one).
    fn home(&self, i: u64) -> (u64, Option<u64>) {
        let first = i % self.institutions;
        (first, i.is_multiple_of(3).then(|| (first + 1) % self.institutions))
    }

    /// Designations and first registrations, in an order R8 accepts.
    pub fn setup_events(&self) -> Vec<Value> {
        let mut events: Vec<Value> = (0..self.institutions)
            .map(|j| json!({"type": "institution_designated", "institution": self.institution(j), "effective": SETUP_DATE}))
            .collect();
        for i in 0..self.practitioners {
            let (first, second) = self.home(i);
            for j in std::iter::once(first).chain(second) {
                events.push(json!({"type": "practitioner_registered", "practitioner": self.practitioner(i),
                    "institution": self.institution(j), "effective": SETUP_DATE}));
            }
        }
        events
    }

    /// A claim line: mostly at one of the practitioner's own institutions.
    pub fn claim(&self, rng: &mut Rng) -> Value {
        let i = rng.below(self.practitioners);
        let (first, second) = self.home(i);
        let j = match rng.below(10) {
            0..=5 => first,
            6 | 7 => second.unwrap_or(first),
            _ => rng.below(self.institutions),
        };
        json!({"practitioner_id": self.practitioner(i), "institution_id": self.institution(j),
            "service_date": date(rng), "emergency": rng.chance(50)})
    }
}

/// Percent of violations and revocations that carry an `event_id` besides
/// the `violation_id` that names them (R7a: either identifies a re-send).
const SELF_NAMED_WITH_EVENT_ID_PERCENT: u64 = 30;

/// One writer's stream of events: violation ids and event ids are unique to
/// the writer (and the run's `nonce`), revocations name the writer's own
/// violations. Every event has an identity a re-send is recognised by
/// (R7a): kinds that do not name themselves always carry an `event_id`, so
/// any of them may be re-sent (a retry after a lost answer) without being
/// stored twice.
pub struct Writer {
    world: World,
    prefix: String,
    scored: u64,
    ids: u64,
    rng: Rng,
}

impl Writer {
    pub fn new(world: &World, nonce: &str, writer: usize, seed: u64) -> Writer {
        Writer { world: world.clone(), prefix: format!("{nonce}-w{writer}"), scored: 0, ids: 0, rng: Rng::new(seed) }
    }

    /// A fresh `event_id` (R7a: 1-64 characters).
    fn event_id(&mut self) -> Value {
        self.ids += 1;
        json!(format!("{}-e{}", self.prefix, self.ids))
    }

    /// The next event (some will be refused by R8, which is part of the test).
    pub fn next_event(&mut self) -> Value {
        let w = &self.world;
        let rng = &mut self.rng;
        let p = w.practitioner(rng.below(w.practitioners));
        let i = w.institution(rng.below(w.institutions));
        let (mut event, self_named) = match rng.below(100) {
            0..=39 => {
                self.scored += 1;
                let (severity, low) =
                    [("minor", 1), ("moderate", 4), ("serious", 7), ("fraud", 10)][rng.below(4) as usize];
                let responsibility = ["primary", "important", "general"][rng.below(3) as usize];
                let mut v = json!({"type": "violation_scored", "violation_id": format!("{}-{}", self.prefix, self.scored),
                    "practitioner": p, "institution": i, "effective": date(rng), "points": low + rng.below(3),
                    "severity": severity, "responsibility": responsibility});
                if rng.chance(150) {
                    v["suspension_months"] = json!(1 + rng.below(6));
                }
                (v, true)
            }
            40..=49 if self.scored > 0 => (
                json!({"type": "violation_revoked",
                "violation_id": format!("{}-{}", self.prefix, 1 + rng.below(self.scored)), "effective": date(rng)}),
                true,
            ),
            40..=64 => (
                json!({"type": "points_repaired", "practitioner": p, "points": 1 + rng.below(3), "effective": date(rng)}),
                false,
            ),
            65..=79 => (
                json!({"type": "practitioner_registered", "practitioner": p, "institution": i, "effective": date(rng)}),
                false,
            ),
            80..=87 => (
                json!({"type": "practitioner_deregistered", "practitioner": p, "institution": i, "effective": date(rng)}),
                false,
            ),
            88..=91 => {
                let from = date(rng);
                let until = format!("{}{}", from[..4].parse::<u32>().expect("year") + 1, &from[4..]);
                (json!({"type": "institution_suspended", "institution": i, "effective": from, "until": until}), false)
            }
            92 | 93 => (json!({"type": "institution_terminated", "institution": i, "effective": date(rng)}), false),
            94..=96 => (json!({"type": "institution_designated", "institution": i, "effective": date(rng)}), false),
            _ => {
                let direct_e = if rng.chance(200) { json!(["refused_rectification"]) } else { json!([]) };
                let event = json!({"type": "institution_rated", "institution": i,
                    "year": FIRST_YEAR + rng.below(YEARS as u64) as u32, "score": rng.below(101), "direct_e": direct_e});
                (event, false)
            }
        };
        if !self_named || self.rng.chance(10 * SELF_NAMED_WITH_EVENT_ID_PERCENT) {
            event["event_id"] = self.event_id();
        }
        event
    }
}

/// A civil date in the covered years (days 1–28, valid in every month).
fn date(rng: &mut Rng) -> String {
    format!("{}-{:02}-{:02}", FIRST_YEAR + rng.below(YEARS as u64) as u32, 1 + rng.below(12), 1 + rng.below(28))
}
