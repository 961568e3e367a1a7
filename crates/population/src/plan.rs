//! One practitioner's plan: the profile drawn for them (a career, or a
//! history of violations with repairs, sanctions and appeals, R9-R15) and
//! the events that make it, built by [`Builder`] in chronological order.

use super::*;

/// A practitioner's code and what it says.
#[derive(Debug, Clone, Copy)]
pub(super) struct Identity {
    pub(super) code: PractitionerCode,
    /// Index into [`REGION_PREFIXES`].
    pub(super) region: usize,
    /// Index into [`PRACTITIONER_CATEGORIES`].
    pub(super) category: usize,
}

/// A practitioner's generated events and the institutions they name.
pub(super) struct Plan {
    pub(super) code: PractitionerCode,
    pub(super) events: Vec<Event>,
    /// Institution index and code of every site ever registered at.
    pub(super) sites: Vec<(u64, InstitutionCode)>,
}

pub(super) struct Assessment {
    pub(super) standing: PractitionerStanding,
    pub(super) current_site: Option<InstitutionCode>,
    pub(super) former_site: Option<InstitutionCode>,
}

pub(super) enum Entity {
    Institution(u64),
    Practitioner(u64),
}

/// An institution's agreement history, as day numbers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Profile {
    pub(super) designated: i32,
    /// `[from, until)`.
    pub(super) suspended: Option<(i32, i32)>,
    pub(super) terminated: Option<i32>,
    pub(super) redesignated: Option<i32>,
    /// Index into [`CREDIT_TIERS`].
    pub(super) tier: usize,
}

impl Profile {
    pub(super) fn in_force_on(&self, d: i32) -> bool {
        d >= self.designated
            && match self.terminated {
                None => true,
                Some(t) => d < t || self.redesignated.is_some_and(|r| d >= r),
            }
    }

    /// The first day on or after `d` with an agreement in force, if any.
    pub(super) fn in_force_from(&self, d: i32) -> Option<i32> {
        let d = d.max(self.designated);
        match self.terminated {
            Some(t) if d >= t => self.redesignated.map(|r| d.max(r)),
            _ => Some(d),
        }
    }

    pub(super) fn serviceable_on(&self, d: i32) -> bool {
        self.in_force_on(d) && !self.suspended.is_some_and(|(from, until)| (from..until).contains(&d))
    }
}

pub(super) const TIER_WEIGHTS: [(usize, u64); 5] = [
    (0, CREDIT_TIERS[0].1),
    (1, CREDIT_TIERS[1].1),
    (2, CREDIT_TIERS[2].1),
    (3, CREDIT_TIERS[3].1),
    (4, CREDIT_TIERS[4].1),
];

/// One step of a violation history, dated later.
#[derive(Debug, Clone, Copy)]
pub(super) enum Step {
    Scored { points: u32, months: Option<u32> },
    Repaired(u32),
}

/// Builds one practitioner's events.
pub(super) struct Builder<'p> {
    pub(super) pop: &'p Population,
    pub(super) rng: Rng,
    pub(super) id: Identity,
    pub(super) events: Vec<Event>,
    pub(super) sites: Vec<(u64, InstitutionCode)>,
    /// Scored violations and their day numbers.
    pub(super) violations: Vec<(ViolationId, i32)>,
}

impl Builder<'_> {
    pub(super) fn register(&mut self, j: u64, on: i32) {
        let institution = self.pop.institution_code(j);
        self.sites.push((j, institution));
        self.events.push(Event::PractitionerRegistered {
            practitioner: self.id.code,
            institution,
            effective: civil(on),
            event_id: None,
        });
    }

    pub(super) fn deregister(&mut self, institution: InstitutionCode, on: i32) {
        self.events.push(Event::PractitionerDeregistered {
            practitioner: self.id.code,
            institution,
            effective: civil(on),
            event_id: None,
        });
    }

    /// Registers at a first site on or after `wanted` (preferably by `latest`);
    /// returns the day.
    pub(super) fn register_somewhere(&mut self, wanted: i32, latest: i32) -> i32 {
        if let Some(on) = self.register_at_new_site(wanted, latest, SAME_REGION_PER_MILLE) {
            return on;
        }
        // Fallback: any institution, on the first day it has an agreement.
        let j = self.rng.below(self.pop.institutions);
        let p = self.pop.institution_profile(j);
        let on = p
            .in_force_from(wanted)
            .or_else(|| p.in_force_from(self.pop.days.registration.0))
            .expect("an agreement is in force before any termination");
        self.register(j, on);
        on
    }

    /// Registers at a site not yet used, on the first day on or after
    /// `wanted` its agreement is in force, if that is by `latest`.
    pub(super) fn register_at_new_site(&mut self, wanted: i32, latest: i32, same_region_per_mille: u64) -> Option<i32> {
        let (j, on) = self.pick_site(wanted, latest, same_region_per_mille)?;
        self.register(j, on);
        Some(on)
    }

    pub(super) fn pick_site(&mut self, wanted: i32, latest: i32, same_region_per_mille: u64) -> Option<(u64, i32)> {
        let pharmacist = self.id.category == PHARMACY_STAFF;
        for _ in 0..SITE_PICK_TRIES {
            let region =
                if self.rng.chance(same_region_per_mille) { self.id.region } else { self.rng.below(REGIONS) as usize };
            let letter = if pharmacist && self.rng.chance(PHARMACY_STAFF_AT_PHARMACY_PER_MILLE) {
                PHARMACY_LETTER
            } else {
                HOSPITAL_LETTER
            };
            let j = self.pop.institution_in(&mut self.rng, region, letter);
            if self.sites.iter().any(|(s, _)| *s == j) {
                continue;
            }
            if let Some(on) = self.pop.institution_profile(j).in_force_from(wanted).filter(|&on| on <= latest) {
                return Some((j, on));
            }
        }
        None
    }

    pub(super) fn career(&mut self, career: Career, first: i32) {
        let horizon = self.pop.days.horizon;
        match career {
            Career::Stay => {}
            Career::Move => {
                let earliest = first + MIN_TENURE_DAYS;
                if earliest > horizon {
                    return;
                }
                let left = self.rng.day_in((earliest, horizon));
                let wanted = (left + self.rng.below(MOVE_GAP_DAYS + 1) as i32).min(horizon);
                let old = self.sites[0].1;
                if self.register_at_new_site(wanted, horizon, SAME_REGION_PER_MILLE).is_some() {
                    self.deregister(old, left);
                }
            }
            Career::Leave => {
                let last = self.events.iter().map(|e| e.effective().day_number()).max().unwrap_or(first);
                let earliest = last + MIN_TENURE_DAYS;
                if earliest > horizon {
                    return;
                }
                let left = self.rng.day_in((earliest, horizon));
                for (_, institution) in self.sites.clone() {
                    self.deregister(institution, left);
                }
            }
        }
    }

    pub(super) fn violation_history(&mut self, history: History) {
        match history {
            History::Minor => {
                let first = minor_points(&mut self.rng);
                let second = self.rng.chance(SECOND_MINOR_PER_MILLE).then(|| minor_points(&mut self.rng));
                let same_year = self.rng.chance(SAME_YEAR_MINOR_PER_MILLE);
                let year = self.violation_year();
                match second {
                    Some(second) if same_year => {
                        let second = second.min(BELOW_SUSPENSION - first);
                        self.chain(year, &[scored(first), scored(second)]);
                    }
                    Some(second) => {
                        let other = self.other_violation_year(year);
                        let (early, late) = (year.min(other), year.max(other));
                        self.chain(early, &[scored(first)]);
                        self.chain(late, &[scored(second)]);
                    }
                    None => {
                        self.chain(year, &[scored(first)]);
                    }
                }
                self.maybe_revoke();
            }
            History::Repaired => {
                // v1, repair, then maybe v2 and a second repair; never 9 points, never past the cap.
                let year = self.violation_year();
                let v1 = self.rng.between((4, BELOW_SUSPENSION));
                let r1 = self.rng.between((1, v1.min(REPAIR_CAP)));
                let mut steps = vec![scored(v1), Step::Repaired(r1)];
                let standing = v1 - r1;
                if self.rng.chance(PER_MILLE / 2) && standing < BELOW_SUSPENSION {
                    let v2 = self.rng.between((1, BELOW_SUSPENSION - standing));
                    steps.push(scored(v2));
                    if self.rng.chance(PER_MILLE * 2 / 5) && r1 < REPAIR_CAP {
                        let r2 = self.rng.between((1, (REPAIR_CAP - r1).min(standing + v2)));
                        steps.push(Step::Repaired(r2));
                    }
                }
                self.chain(year, &steps);
                self.maybe_revoke();
            }
            History::Suspended => {
                let total = self.rng.between((SUSPENSION_THRESHOLD, TERMINATION_THRESHOLD - 1));
                let count = self.rng.weighted(&[(1u32, 350), (2, 450), (3, 200)]);
                let explicit = self.rng.chance(EXPLICIT_SUSPENSION_MONTHS_PER_MILLE);
                let current = self.rng.chance(CURRENT_SUSPENSION_PER_MILLE);
                let months = self.rng.between((if current { 2 } else { 1 }, MAX_SUSPENSION_MONTHS));
                let mut steps = Vec::with_capacity(3);
                let mut sum = 0;
                // Earlier violations stay below 9, so the last one crosses (R14).
                for k in 1..count {
                    let room = (BELOW_SUSPENSION - sum).min(total - sum - (count - k));
                    let points = self.rng.between((1, room.clamp(1, 6)));
                    sum += points;
                    steps.push(scored(points));
                }
                steps.push(Step::Scored { points: total - sum, months: explicit.then_some(months) });
                if current {
                    self.current_chain(&steps);
                } else {
                    let year = self.violation_year();
                    self.chain(year, &steps);
                }
                self.maybe_revoke();
            }
            History::Terminated => self.termination(),
        }
    }

    pub(super) fn termination(&mut self) {
        let d = self.pop.days;
        let single = self.rng.chance(SINGLE_INCIDENT_PER_MILLE);
        let prior_minor = self.rng.chance(PRIOR_MINOR_PER_MILLE);
        let deregistered = self.rng.chance(DEREGISTERED_ON_TERMINATION_PER_MILLE);
        let registers_again = self.rng.chance(REREGISTERED_PER_MILLE);
        let year = self.violation_year();
        let steps = if single {
            let mut steps = Vec::with_capacity(2);
            if prior_minor {
                steps.push(scored(self.rng.between((1, 3))));
            }
            steps.push(scored(TERMINATION_THRESHOLD));
            steps
        } else {
            // Accumulated: below 12 until the last violation, which reaches 12-14.
            let a = self.rng.between((5, SUSPENSION_THRESHOLD));
            let mut steps = vec![scored(a)];
            let mut sum = a;
            if self.rng.chance(PER_MILLE / 3) {
                let b = self.rng.between((1, TERMINATION_THRESHOLD - 1 - a));
                steps.push(scored(b));
                sum += b;
            }
            let need = TERMINATION_THRESHOLD - sum;
            steps.push(scored(self.rng.between((need, (need + 2).min(TERMINATION_THRESHOLD)))));
            steps
        };
        let days = self.chain(year, &steps);
        let terminated = *days.last().expect("a termination has a violation");
        if deregistered {
            for (_, institution) in self.sites.clone() {
                let on = terminated + 1 + self.rng.below(DEREGISTRATION_AFTER_TERMINATION_DAYS) as i32;
                if on <= d.horizon {
                    self.deregister(institution, on);
                }
            }
        }
        // R15: a new registration only on or after the end of the ban (1 year
        // here; a single 12-point fraud bans for 3 years, past the reference date).
        let ban_end = plus_months(terminated, 12 * BAN_YEARS);
        if !single && registers_again && ban_end <= d.horizon {
            let wanted = (ban_end + self.rng.below(REREGISTRATION_WITHIN_DAYS) as i32).min(d.horizon);
            if deregistered {
                let (j, _) = self.sites[0];
                if let Some(on) = self.pop.institution_profile(j).in_force_from(wanted).filter(|&on| on <= d.horizon) {
                    self.register(j, on);
                    return;
                }
            }
            self.register_at_new_site(wanted, d.horizon, SAME_REGION_PER_MILLE);
        }
    }

    pub(super) fn violation_year(&mut self) -> i32 {
        self.rng.weighted(&VIOLATION_YEARS)
    }

    pub(super) fn other_violation_year(&mut self, year: i32) -> i32 {
        let others: Vec<(i32, u64)> = VIOLATION_YEARS.iter().copied().filter(|(y, _)| *y != year).collect();
        self.rng.weighted(&others)
    }

    /// Dates `steps` on strictly increasing days of `year` (up to the horizon)
    /// and records them; returns the days of the scored steps.
    pub(super) fn chain(&mut self, year: i32, steps: &[Step]) -> Vec<i32> {
        let d = self.pop.days;
        let lo = day(year, 1, 1).max(d.violations_from);
        let hi = day(year, 12, 31).min(d.horizon);
        let days = spread(&mut self.rng, lo, hi, steps.len());
        self.record(steps, &days)
    }

    /// Like [`Builder::chain`], with the last step (the one crossing 9) on one
    /// of the [`CURRENT_SUSPENSION_WINDOW_DAYS`] days before the reference date.
    pub(super) fn current_chain(&mut self, steps: &[Step]) -> Vec<i32> {
        let d = self.pop.days;
        let last = self.rng.day_in((d.reference - CURRENT_SUSPENSION_WINDOW_DAYS, d.horizon));
        let lo = day(civil(last).year(), 1, 1).max(d.violations_from);
        let mut days = spread(&mut self.rng, lo, last - 1, steps.len() - 1);
        days.push(last);
        self.record(steps, &days)
    }

    pub(super) fn record(&mut self, steps: &[Step], days: &[i32]) -> Vec<i32> {
        let mut scored_days = Vec::with_capacity(steps.len());
        for (step, &on) in steps.iter().zip(days) {
            match *step {
                Step::Scored { points, months } => {
                    self.score(on, points, months);
                    scored_days.push(on);
                }
                Step::Repaired(points) => {
                    // R7a: a repair carries the agency's reference for it.
                    let effective = civil(on);
                    let number = self.events.len() + 1;
                    let event_id = EventId::parse(&format!("XF-{}-{}-{number}", effective.year(), self.id.code))
                        .expect("generated repair references are valid");
                    self.events.push(Event::PointsRepaired {
                        practitioner: self.id.code,
                        points,
                        effective,
                        event_id: Some(event_id),
                    })
                }
            }
        }
        scored_days
    }

    pub(super) fn score(&mut self, on: i32, points: u32, months: Option<u32>) {
        let effective = civil(on);
        let number = self.violations.len() + 1;
        let violation_id = ViolationId::parse(&format!("WG-{}-{}-{number}", effective.year(), self.id.code))
            .expect("generated violation ids are valid");
        let severity = severity_of(points);
        debug_assert!(severity.band().contains(&points));
        let responsibility = self.rng.weighted(&RESPONSIBILITIES);
        self.violations.push((violation_id.clone(), on));
        self.events.push(Event::ViolationScored(Violation {
            violation_id,
            practitioner: self.id.code,
            // Scored where they practise: their first site, registered before any violation.
            institution: self.sites[0].1,
            effective,
            points,
            severity,
            responsibility,
            suspension_months: months,
            event_id: None,
        }));
    }

    /// For some histories, an upheld appeal revokes one violation (R12).
    pub(super) fn maybe_revoke(&mut self) {
        let revoke = self.rng.chance(REVOKED_PER_MILLE);
        let which = self.rng.below(self.violations.len() as u64) as usize;
        let after = self.rng.between_i32(REVOCATION_AFTER_DAYS);
        let (violation_id, scored_on) = self.violations[which].clone();
        let on = scored_on + after;
        if revoke && on <= self.pop.days.horizon {
            self.events.push(Event::ViolationRevoked { violation_id, effective: civil(on), event_id: None });
        }
    }
}

pub(super) fn scored(points: u32) -> Step {
    Step::Scored { points, months: None }
}

pub(super) fn minor_points(rng: &mut Rng) -> u32 {
    if rng.chance(MINOR_BAND_PER_MILLE) {
        rng.between((1, 3))
    } else {
        rng.between((4, 6))
    }
}

/// The R9 band a number of points falls in.
pub(super) fn severity_of(points: u32) -> Severity {
    match points {
        0..=3 => Severity::Minor,
        4..=6 => Severity::Moderate,
        7..=9 => Severity::Serious,
        _ => Severity::Fraud,
    }
}

/// `n` strictly increasing days in `[lo, hi]` (which must hold `n` days):
/// one in each of `n` equal parts of the window.
pub(super) fn spread(rng: &mut Rng, lo: i32, hi: i32, n: usize) -> Vec<i32> {
    let mut days = Vec::with_capacity(n + 1);
    if n == 0 {
        return days;
    }
    let width = (hi - lo + 1) / n as i32;
    assert!(width >= 1, "no room for {n} days in {lo}..={hi}");
    for k in 0..n as i32 {
        days.push(lo + k * width + rng.below(width as u64) as i32);
    }
    days
}
