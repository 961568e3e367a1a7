//! A practitioner's standing from their accepted events: registrations,
//! scored violations, repairs, year totals and sanctions (R9–R16).

use crate::domain::{CivilDate, DateInterval, EventId, InstitutionCode, PractitionerCode, Seq, ViolationId};
use crate::event::{Event, RecordedEvent, Violation};
use crate::policy::{
    Policy, BAN_YEARS, SINGLE_INCIDENT_BAN_YEARS, SINGLE_INCIDENT_POINTS, SUSPENSION_THRESHOLD, TERMINATION_THRESHOLD,
};
use serde::Serialize;

/// A period during which the practitioner was filed at an institution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    pub institution: InstitutionCode,
    #[serde(flatten)]
    pub interval: DateInterval,
    /// The `practitioner_registered` event that opened it.
    pub registered_seq: Seq,
    /// The `practitioner_deregistered` event that closed it, if any.
    pub deregistered_seq: Option<Seq>,
}

/// A scored violation and, if an appeal was upheld, its revocation (R12).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViolationRecord {
    pub seq: Seq,
    #[serde(flatten)]
    pub violation: Violation,
    pub revoked: Option<Revocation>,
}

/// The revocation of a violation (R12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Revocation {
    pub seq: Seq,
    pub effective: CivilDate,
}

/// Points removed through the repair mechanism (R13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairRecord {
    pub seq: Seq,
    /// The source's reference for the repair (R7a); `None` only for a repair
    /// a v1 ledger stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// The points the repair asked to remove (R13's cap counts these).
    #[serde(rename = "requested_points")]
    pub points: u32,
    /// The points it removed: min(requested, the total at its step) (R11, R13).
    pub effective_points: u32,
    pub effective: CivilDate,
}

/// Suspension (R14) or termination (R15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SanctionKind {
    Termination,
    Suspension,
}

/// A sanction interval and the violation that triggered it (R14–R16).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sanction {
    pub kind: SanctionKind,
    #[serde(flatten)]
    pub interval: DateInterval,
    /// The violation whose points crossed the threshold.
    pub cause: ViolationId,
    pub cause_seq: Seq,
    /// The year total right after the cause was scored.
    pub year_total: u32,
    /// Termination only: registrations dated before this are refused (R15);
    /// `None` on a termination means the ban outlasts the calendar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ban_until: Option<CivilDate>,
}

impl Sanction {
    /// The ban interval of a termination: `[from, ban_until)`.
    pub fn ban(&self) -> Option<DateInterval> {
        (self.kind == SanctionKind::Termination).then(|| DateInterval::new(self.interval.from, self.ban_until))
    }
}

/// Everything derived about one practitioner (R9–R16, R22).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PractitionerStanding {
    pub code: PractitionerCode,
    /// Whether any `practitioner_registered` was accepted (R18 test 2), even
    /// one closed again on the same day.
    pub registered_ever: bool,
    /// Sorted by institution, then start.
    pub registrations: Vec<Registration>,
    /// In (`effective`, `seq`) order, revoked ones included and marked.
    pub violations: Vec<ViolationRecord>,
    /// In (`effective`, `seq`) order.
    pub repairs: Vec<RepairRecord>,
    /// Sorted by start date.
    pub sanctions: Vec<Sanction>,
}

impl PractitionerStanding {
    /// Whether the practitioner was filed at `institution` on `day`.
    pub fn registered_at(&self, institution: InstitutionCode, day: CivilDate) -> bool {
        self.registrations.iter().any(|r| r.institution == institution && r.interval.contains(day))
    }

    /// The sanction of `kind` in force on `day`, if any.
    pub fn sanction_on(&self, kind: SanctionKind, day: CivilDate) -> Option<&Sanction> {
        self.sanctions.iter().find(|s| s.kind == kind && s.interval.contains(day))
    }

    /// The termination ban covering `day`, if any (R15).
    pub fn ban_on(&self, day: CivilDate) -> Option<&Sanction> {
        self.sanctions.iter().find(|s| s.ban().is_some_and(|b| b.contains(day)))
    }

    /// The year total on `day` (R11): the running balance after every step
    /// of that calendar year dated on or before `day`. Each repair's
    /// effective points were found by the same walk, so this is the points
    /// of the year's standing violations so far less those effective points.
    pub fn year_total_on(&self, day: CivilDate) -> u32 {
        let year = day.year();
        let in_year = |d: CivilDate| d.year() == year && d <= day;
        let scored: u64 = self
            .violations
            .iter()
            .filter(|v| v.revoked.is_none() && in_year(v.violation.effective))
            .map(|v| u64::from(v.violation.points))
            .sum();
        let repaired: u64 =
            self.repairs.iter().filter(|r| in_year(r.effective)).map(|r| u64::from(r.effective_points)).sum();
        debug_assert!(repaired <= scored, "R11: a repair never removes points not standing");
        u32::try_from(scored - repaired.min(scored)).unwrap_or(u32::MAX)
    }

    /// Points requested by the repairs dated in `year` (R13's cap counts
    /// these, so the cap does not move when a back-dated event arrives).
    pub fn repair_requested_in_year(&self, year: i32) -> u64 {
        self.repairs.iter().filter(|r| r.effective.year() == year).map(|r| u64::from(r.points)).sum()
    }

    /// Points the repairs dated in `year` removed: their effective points
    /// (R11, R13), never more than the year's standing points.
    pub fn repaired_in_year(&self, year: i32) -> u64 {
        self.repairs.iter().filter(|r| r.effective.year() == year).map(|r| u64::from(r.effective_points)).sum()
    }
}

/// Derives a practitioner's standing from their accepted events. Events of
/// other practitioners, institution events and revocations of violations not
/// in `events` are ignored; order of `events` does not matter (R6).
pub fn derive(code: PractitionerCode, events: &[RecordedEvent], policy: &Policy) -> PractitionerStanding {
    let mut mine: Vec<&RecordedEvent> = events.iter().collect();
    mine.sort_by_key(|r| (r.event.effective(), r.seq));

    let mut violations: Vec<ViolationRecord> = Vec::new();
    let mut repairs = Vec::new();
    let mut registration_events = Vec::new();
    for r in &mine {
        match &r.event {
            Event::ViolationScored(v) if v.practitioner == code => {
                violations.push(ViolationRecord { seq: r.seq, violation: v.clone(), revoked: None })
            }
            Event::PointsRepaired { practitioner, points, effective, event_id } if *practitioner == code => {
                repairs.push(RepairRecord {
                    seq: r.seq,
                    event_id: event_id.clone(),
                    points: *points,
                    // Found by the walk in `sanctions`.
                    effective_points: 0,
                    effective: *effective,
                })
            }
            Event::PractitionerRegistered { practitioner, .. }
            | Event::PractitionerDeregistered { practitioner, .. }
                if *practitioner == code =>
            {
                registration_events.push(*r)
            }
            _ => {}
        }
    }
    // R12: a revocation applies whenever it is dated; the earliest by seq counts.
    let mut revocations: Vec<&RecordedEvent> =
        mine.iter().copied().filter(|r| matches!(r.event, Event::ViolationRevoked { .. })).collect();
    revocations.sort_by_key(|r| r.seq);
    for r in revocations {
        if let Event::ViolationRevoked { violation_id, effective, .. } = &r.event {
            if let Some(v) = violations.iter_mut().find(|v| &v.violation.violation_id == violation_id) {
                v.revoked.get_or_insert(Revocation { seq: r.seq, effective: *effective });
            }
        }
    }

    let registrations = registrations(&registration_events);
    let sanctions = sanctions(&violations, &mut repairs, &registration_events, policy);
    let registered_ever = registration_events.iter().any(|r| matches!(r.event, Event::PractitionerRegistered { .. }));
    PractitionerStanding { code, registered_ever, registrations, violations, repairs, sanctions }
}

/// Registration intervals per institution from registration events sorted by
/// (`effective`, `seq`). Registering while filed, or deregistering while not
/// filed, changes nothing.
fn registrations(events: &[&RecordedEvent]) -> Vec<Registration> {
    let mut by_institution: Vec<(InstitutionCode, &RecordedEvent)> =
        events.iter().filter_map(|r| r.event.institution().map(|i| (i, *r))).collect();
    by_institution.sort_by_key(|(i, r)| (*i, r.event.effective(), r.seq));

    let mut out: Vec<Registration> = Vec::new();
    let mut open: Option<(InstitutionCode, CivilDate, Seq)> = None;
    for (institution, r) in by_institution {
        if open.is_some_and(|(i, _, _)| i != institution) {
            let (i, from, seq) = open.take().expect("checked above");
            out.push(Registration {
                institution: i,
                interval: DateInterval::new(from, None),
                registered_seq: seq,
                deregistered_seq: None,
            });
        }
        match (&r.event, open) {
            (Event::PractitionerRegistered { effective, .. }, None) => open = Some((institution, *effective, r.seq)),
            (Event::PractitionerDeregistered { effective, .. }, Some((i, from, seq))) => {
                open = None;
                if *effective > from {
                    out.push(Registration {
                        institution: i,
                        interval: DateInterval::new(from, Some(*effective)),
                        registered_seq: seq,
                        deregistered_seq: Some(r.seq),
                    });
                }
            }
            _ => {}
        }
    }
    if let Some((i, from, seq)) = open {
        out.push(Registration {
            institution: i,
            interval: DateInterval::new(from, None),
            registered_seq: seq,
            deregistered_seq: None,
        });
    }
    out
}

/// One step of a practitioner's running balance (R11): a standing
/// (non-revoked) violation or a repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoringStep {
    pub effective: CivilDate,
    pub seq: Seq,
    pub change: Change,
}

/// What a step does to the year total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A violation's points (R9, R10).
    Scored(u32),
    /// A repair's requested points (R13).
    Repaired(u32),
}

/// What the running balance made of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walked {
    /// The year total just before the step.
    pub before: u32,
    /// The year total just after it.
    pub after: u32,
    /// The sanction the step started: a violation that raised the total
    /// from below 12 to 12 or more terminates (R15); one that raised it from
    /// below 9 to 9, 10 or 11 suspends (R14). Each crossing counts, so after
    /// a repair took the total below 9 a later violation suspends again.
    pub crossed: Option<SanctionKind>,
}

/// Walks `steps`, sorted by (`effective`, `seq`), as R10 and R11 say:
/// the total starts from 0 on each 1 January; a violation adds its points;
/// a repair subtracts its points but never takes the total below 0, so it
/// removes min(requested, total) (R13) and nothing is banked against later
/// violations. Returns one [`Walked`] per step, in order.
pub fn walk(steps: &[ScoringStep]) -> Vec<Walked> {
    debug_assert!(steps.windows(2).all(|w| (w[0].effective, w[0].seq) <= (w[1].effective, w[1].seq)));
    let mut year = None;
    let mut total = 0u32;
    steps
        .iter()
        .map(|step| {
            if year != Some(step.effective.year()) {
                // R10: totals clear to zero on 1 January.
                year = Some(step.effective.year());
                total = 0;
            }
            let before = total;
            total = match step.change {
                Change::Scored(points) => total.saturating_add(points),
                Change::Repaired(points) => total - points.min(total),
            };
            let crossed = match step.change {
                Change::Repaired(_) => None,
                Change::Scored(_) if before < TERMINATION_THRESHOLD && total >= TERMINATION_THRESHOLD => {
                    Some(SanctionKind::Termination)
                }
                Change::Scored(_) if before < SUSPENSION_THRESHOLD && total >= SUSPENSION_THRESHOLD => {
                    Some(SanctionKind::Suspension)
                }
                Change::Scored(_) => None,
            };
            Walked { before, after: total, crossed }
        })
        .collect()
}

/// The end of the registration ban after a termination on `from` by a
/// violation of `points` points (R15): 3 years if that one violation scored
/// 12 or more, else 1; `None` past the calendar's end.
pub fn ban_until(from: CivilDate, points: u32) -> Option<CivilDate> {
    let years = if points >= SINGLE_INCIDENT_POINTS { SINGLE_INCIDENT_BAN_YEARS } else { BAN_YEARS };
    from.add_months(12 * years)
}

/// Walks standing violations and repairs in (`effective`, `seq`) order
/// ([`walk`]), records each repair's effective points and each threshold
/// crossing as a sanction (R10, R11, R13–R15).
fn sanctions(
    violations: &[ViolationRecord],
    repairs: &mut [RepairRecord],
    registration_events: &[&RecordedEvent],
    policy: &Policy,
) -> Vec<Sanction> {
    enum Source {
        Violation(usize),
        Repair(usize),
    }
    let mut steps: Vec<(ScoringStep, Source)> = violations
        .iter()
        .enumerate()
        .filter(|(_, v)| v.revoked.is_none())
        .map(|(i, v)| {
            let step = ScoringStep {
                effective: v.violation.effective,
                seq: v.seq,
                change: Change::Scored(v.violation.points),
            };
            (step, Source::Violation(i))
        })
        .chain(repairs.iter().enumerate().map(|(i, r)| {
            (ScoringStep { effective: r.effective, seq: r.seq, change: Change::Repaired(r.points) }, Source::Repair(i))
        }))
        .collect();
    steps.sort_by_key(|(s, _)| (s.effective, s.seq));
    let walked = walk(&steps.iter().map(|(s, _)| *s).collect::<Vec<_>>());

    let mut out = Vec::new();
    for ((step, source), walked) in steps.iter().zip(walked) {
        let v = match *source {
            Source::Repair(i) => {
                repairs[i].effective_points = walked.before - walked.after;
                continue;
            }
            Source::Violation(i) => &violations[i],
        };
        let day = step.effective;
        let total = walked.after;
        match walked.crossed {
            None => {}
            Some(SanctionKind::Termination) => {
                let ban_until = ban_until(day, v.violation.points);
                // R15: the termination holds until the first registration
                // dated on or after the end of the ban.
                let until = ban_until.and_then(|end| {
                    registration_events
                        .iter()
                        .filter(|r| matches!(r.event, Event::PractitionerRegistered { .. }))
                        .map(|r| r.event.effective())
                        .filter(|d| *d >= end)
                        .min()
                });
                out.push(Sanction {
                    kind: SanctionKind::Termination,
                    interval: DateInterval::new(day, until),
                    cause: v.violation.violation_id.clone(),
                    cause_seq: v.seq,
                    year_total: total,
                    ban_until,
                });
            }
            Some(SanctionKind::Suspension) => {
                let months = v.violation.suspension_months.unwrap_or_else(|| policy.default_suspension_months(total));
                out.push(Sanction {
                    kind: SanctionKind::Suspension,
                    interval: DateInterval::new(day, day.add_months(months)),
                    cause: v.violation.violation_id.clone(),
                    cause_seq: v.seq,
                    year_total: total,
                    ban_until: None,
                });
            }
        }
    }
    out.sort_by_key(|s| (s.interval.from, s.cause_seq));
    out
}
