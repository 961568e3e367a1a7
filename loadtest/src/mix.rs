//! The request mix, drawn deterministically (by seed) from the demo's
//! synthetic population before the timed run (the admin events written
//! during a run, in `writes`, target its practitioners).
//!
//! Claim lines: mostly practitioners with no violation at one of the
//! institutions they are registered at, on a day of 2024-2026 inside that
//! registration; [`UNKNOWN_PER_MILLE`] codes of valid format that no
//! population has; some practitioners suspended or terminated on the
//! reference date, claimed at their institution on that date; and an
//! emergency flag on [`EMERGENCY_PER_MILLE`] of all lines.

use claimgate::domain::{CivilDate, InstitutionCode, PractitionerCode};
use claimgate::event::Event;
use claimgate::population::{self, Population, PopulationSpec, REGION_PREFIXES};
use claimgate::rules::SanctionKind;

/// Unknown practitioner codes, per mille of lines.
pub const UNKNOWN_PER_MILLE: u64 = 30;
/// Practitioners suspended on the reference date, per mille of lines.
pub const SUSPENDED_PER_MILLE: u64 = 20;
/// Practitioners terminated on the reference date, per mille of lines.
pub const TERMINATED_PER_MILLE: u64 = 10;
/// Lines flagged as emergencies, per mille (independent of the kind).
pub const EMERGENCY_PER_MILLE: u64 = 50;
/// Service dates of ordinary lines fall in these years.
pub const SERVICE_YEARS: (i32, i32) = (2024, 2026);
/// Sanctioned practitioners kept for the mix, of each kind.
const SANCTIONED_WANTED: usize = 256;
/// Practitioners examined for sanctions before giving up.
const SANCTION_SCAN_LIMIT: u64 = 400_000;

/// The project's one deterministic generator (the population's SplitMix64).
pub use claimgate::population::Rng;

/// The load generator's stream for `seed`, apart from the population's own
/// ("loadtest" in ASCII, so the two never start from one state).
pub fn rng(seed: u64) -> Rng {
    Rng::new(seed ^ 0x6c6f_6164_7465_7374)
}

/// What a claim line is meant to exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Good,
    Unknown,
    Suspended,
    Terminated,
}

/// One claim line.
#[derive(Debug, Clone)]
pub struct Line {
    pub kind: Kind,
    pub practitioner: PractitionerCode,
    pub institution: InstitutionCode,
    pub date: CivilDate,
    pub emergency: bool,
}

impl Line {
    /// The line as the check API takes it.
    pub fn json(&self) -> String {
        format!(
            r#"{{"practitioner_id":"{}","institution_id":"{}","service_date":"{}","emergency":{}}}"#,
            self.practitioner, self.institution, self.date, self.emergency
        )
    }
}

/// The pool of claim lines, and how it was made.
pub struct Mix {
    pub lines: Vec<Line>,
    /// Suspended / terminated practitioners found (distinct).
    pub sanctioned_found: (usize, usize),
    pub seconds: f64,
}

impl Mix {
    /// `count` lines from the population of (`practitioners`, `seed`).
    pub fn new(practitioners: u64, seed: u64, count: usize) -> Result<Mix, String> {
        if practitioners == 0 || practitioners > population::MAX_PRACTITIONERS {
            return Err(format!("--practitioners must be 1 to {}", population::MAX_PRACTITIONERS));
        }
        let started = std::time::Instant::now();
        let pop = Population::new(PopulationSpec::new(practitioners, seed));
        let institutions = pop.spec().institutions();
        let (suspended, terminated) = sanctioned(&pop);
        let mut rng = rng(seed);
        let mut lines = Vec::with_capacity(count);
        let first = day(SERVICE_YEARS.0, 1, 1);
        let last = day(SERVICE_YEARS.1, 12, 31);
        while lines.len() < count {
            let roll = rng.below(1000);
            let emergency = rng.chance(EMERGENCY_PER_MILLE);
            let reference = population::reference_date();
            let line = if roll < UNKNOWN_PER_MILLE {
                Some(Line {
                    kind: Kind::Unknown,
                    practitioner: unknown_code(&mut rng),
                    institution: pop.institution_code(rng.below(institutions)),
                    date: CivilDate::from_day_number(first + rng.below((last - first + 1) as u64) as i32)
                        .expect("a day of the service years"),
                    emergency,
                })
            } else if roll < UNKNOWN_PER_MILLE + SUSPENDED_PER_MILLE && !suspended.is_empty() {
                let (p, i) = suspended[rng.below(suspended.len() as u64) as usize];
                Some(Line { kind: Kind::Suspended, practitioner: p, institution: i, date: reference, emergency })
            } else if roll < UNKNOWN_PER_MILLE + SUSPENDED_PER_MILLE + TERMINATED_PER_MILLE && !terminated.is_empty() {
                let (p, i) = terminated[rng.below(terminated.len() as u64) as usize];
                Some(Line { kind: Kind::Terminated, practitioner: p, institution: i, date: reference, emergency })
            } else {
                good_line(&pop, &mut rng, first, last).map(|(practitioner, institution, date)| Line {
                    kind: Kind::Good,
                    practitioner,
                    institution,
                    date,
                    emergency,
                })
            };
            lines.extend(line);
        }
        Ok(Mix {
            lines,
            sanctioned_found: (suspended.len(), terminated.len()),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Lines per kind.
    pub fn count(&self, kind: Kind) -> usize {
        self.lines.iter().filter(|l| l.kind == kind).count()
    }

    /// Lines flagged as emergencies.
    pub fn emergencies(&self) -> usize {
        self.lines.iter().filter(|l| l.emergency).count()
    }

    /// The `k`-th request body: one line, or `batch` consecutive lines (wrapping).
    pub fn body(&self, k: usize, batch: usize) -> String {
        if batch == 0 {
            return self.lines[k % self.lines.len()].json();
        }
        let mut out = String::with_capacity(batch * 120 + 16);
        out.push_str(r#"{"lines":["#);
        for n in 0..batch {
            if n > 0 {
                out.push(',');
            }
            out.push_str(&self.lines[(k * batch + n) % self.lines.len()].json());
        }
        out.push_str("]}");
        out
    }
}

fn day(y: i32, m: u32, d: u32) -> i32 {
    CivilDate::from_ymd(y, m, d).expect("a calendar day").day_number()
}

/// A code of valid format that no population has: serials from 980000 up are
/// never issued (a population of the most practitioners stays under 968,000).
fn unknown_code(rng: &mut Rng) -> PractitionerCode {
    let region = REGION_PREFIXES[rng.below(REGION_PREFIXES.len() as u64) as usize];
    let serial = 980_000 + rng.below(10_000);
    PractitionerCode::parse(&format!("D{region}{serial:06}")).expect("a valid code")
}

/// A practitioner with no violation, one of their registrations, and a day
/// of the service years inside it; `None` if the draw has none.
fn good_line(
    pop: &Population,
    rng: &mut Rng,
    first: i32,
    last: i32,
) -> Option<(PractitionerCode, InstitutionCode, CivilDate)> {
    let i = rng.below(pop.spec().practitioners);
    let events = pop.practitioner_events(i);
    if events.iter().any(|e| matches!(e, Event::ViolationScored(_))) {
        return None;
    }
    let registrations: Vec<(usize, InstitutionCode, i32)> = events
        .iter()
        .enumerate()
        .filter_map(|(k, e)| match e {
            Event::PractitionerRegistered { institution, effective, .. } => {
                Some((k, *institution, effective.day_number()))
            }
            _ => None,
        })
        .collect();
    if registrations.is_empty() {
        return None;
    }
    let (k, institution, from) = registrations[rng.below(registrations.len() as u64) as usize];
    let until = events[k + 1..]
        .iter()
        .find_map(|e| match e {
            Event::PractitionerDeregistered { institution: at, effective, .. } if *at == institution => {
                Some(effective.day_number() - 1)
            }
            _ => None,
        })
        .unwrap_or(last);
    let (lo, hi) = (from.max(first), until.min(last));
    if lo > hi {
        return None;
    }
    let date = CivilDate::from_day_number(lo + rng.below((hi - lo + 1) as u64) as i32)?;
    Some((pop.practitioner_code(i), institution, date))
}

type Sanctioned = Vec<(PractitionerCode, InstitutionCode)>;

/// Practitioners suspended (not terminated) and terminated on the reference
/// date, each with an institution they are registered at then.
fn sanctioned(pop: &Population) -> (Sanctioned, Sanctioned) {
    let reference = population::reference_date();
    let (mut suspended, mut terminated) = (Vec::new(), Vec::new());
    for i in 0..pop.spec().practitioners.min(SANCTION_SCAN_LIMIT) {
        if suspended.len() >= SANCTIONED_WANTED && terminated.len() >= SANCTIONED_WANTED {
            break;
        }
        if !pop.practitioner_events(i).iter().any(|e| matches!(e, Event::ViolationScored(_))) {
            continue;
        }
        let standing = pop.practitioner_standing(i);
        let Some(institution) = pop.claim_institution(i) else { continue };
        let registered =
            standing.registrations.iter().any(|r| r.institution == institution && r.interval.contains(reference));
        if !registered {
            continue;
        }
        let code = pop.practitioner_code(i);
        if standing.sanction_on(SanctionKind::Termination, reference).is_some() {
            if terminated.len() < SANCTIONED_WANTED {
                terminated.push((code, institution));
            }
        } else if standing.sanction_on(SanctionKind::Suspension, reference).is_some()
            && suspended.len() < SANCTIONED_WANTED
        {
            suspended.push((code, institution));
        }
    }
    (suspended, terminated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_deterministic_and_shaped_as_documented() {
        let a = Mix::new(20_000, 20_261_124, 4_000).unwrap();
        let b = Mix::new(20_000, 20_261_124, 4_000).unwrap();
        let bodies = |m: &Mix| (0..50).map(|k| m.body(k, 0)).collect::<Vec<_>>();
        assert_eq!(bodies(&a), bodies(&b));
        assert_eq!(a.lines.len(), 4_000);
        let share = |n: usize| n as f64 / 4_000.0;
        assert!((0.015..0.045).contains(&share(a.count(Kind::Unknown))), "{}", a.count(Kind::Unknown));
        assert!((0.03..0.08).contains(&share(a.emergencies())), "{}", a.emergencies());
        assert!(share(a.count(Kind::Good)) > 0.85);
        assert!(a.sanctioned_found.0 > 0 && a.sanctioned_found.1 > 0, "{:?}", a.sanctioned_found);
        assert!(a.count(Kind::Suspended) > 0 && a.count(Kind::Terminated) > 0);
        let body = a.body(3, 16);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["lines"].as_array().unwrap().len(), 16);
        for line in &a.lines {
            let (y, _, _) = line.date.ymd();
            assert!((SERVICE_YEARS.0..=SERVICE_YEARS.1).contains(&y));
        }
    }

    #[test]
    fn unknown_codes_are_valid_and_not_in_the_population() {
        let pop = Population::new(PopulationSpec::new(50_000, 7));
        let known: std::collections::HashSet<_> = (0..50_000).map(|i| pop.practitioner_code(i)).collect();
        let mut rng = rng(1);
        for _ in 0..1_000 {
            assert!(!known.contains(&unknown_code(&mut rng)));
        }
    }
}
