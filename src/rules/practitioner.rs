//! A practitioner's standing from their accepted events: registrations,
//! scored violations, repairs, year totals and sanctions (R9–R16).

use crate::domain::{CivilDate, DateInterval, InstitutionCode, PractitionerCode, Seq, ViolationId};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RepairRecord {
    pub seq: Seq,
    pub points: u32,
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

    /// The year total on `day` (R11): points of non-revoked violations in
    /// that calendar year on or before `day`, minus repairs in that year on or
    /// before `day`, never below 0.
    pub fn year_total_on(&self, day: CivilDate) -> u32 {
        let year = day.year();
        let in_year = |d: CivilDate| d.year() == year && d <= day;
        let scored: u64 = self
            .violations
            .iter()
            .filter(|v| v.revoked.is_none() && in_year(v.violation.effective))
            .map(|v| u64::from(v.violation.points))
            .sum();
        let repaired: u64 = self.repairs.iter().filter(|r| in_year(r.effective)).map(|r| u64::from(r.points)).sum();
        u32::try_from(scored.saturating_sub(repaired)).unwrap_or(u32::MAX)
    }

    /// Points repaired in `year` (R13's cap counts these).
    pub fn repaired_in_year(&self, year: i32) -> u64 {
        self.repairs.iter().filter(|r| r.effective.year() == year).map(|r| u64::from(r.points)).sum()
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
            Event::PointsRepaired { practitioner, points, effective } if *practitioner == code => {
                repairs.push(RepairRecord { seq: r.seq, points: *points, effective: *effective })
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
        if let Event::ViolationRevoked { violation_id, effective } = &r.event {
            if let Some(v) = violations.iter_mut().find(|v| &v.violation.violation_id == violation_id) {
                v.revoked.get_or_insert(Revocation { seq: r.seq, effective: *effective });
            }
        }
    }

    let registrations = registrations(&registration_events);
    let sanctions = sanctions(&violations, &repairs, &registration_events, policy);
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

/// Walks scored points and repairs in (`effective`, `seq`) order, year by
/// year, and records each threshold crossing (R10, R11, R13–R15).
fn sanctions(
    violations: &[ViolationRecord],
    repairs: &[RepairRecord],
    registration_events: &[&RecordedEvent],
    policy: &Policy,
) -> Vec<Sanction> {
    enum Step<'a> {
        Scored(&'a ViolationRecord),
        Repaired(u32),
    }
    let mut steps: Vec<(CivilDate, Seq, Step)> = violations
        .iter()
        .filter(|v| v.revoked.is_none())
        .map(|v| (v.violation.effective, v.seq, Step::Scored(v)))
        .chain(repairs.iter().map(|r| (r.effective, r.seq, Step::Repaired(r.points))))
        .collect();
    steps.sort_by_key(|(d, seq, _)| (*d, *seq));

    let mut out = Vec::new();
    let mut year = None;
    let (mut scored, mut repaired) = (0u64, 0u64);
    for (day, _, step) in steps {
        if year != Some(day.year()) {
            // R10: totals clear to zero on 1 January.
            year = Some(day.year());
            (scored, repaired) = (0, 0);
        }
        let before = scored.saturating_sub(repaired);
        match step {
            Step::Repaired(points) => repaired += u64::from(points),
            Step::Scored(v) => {
                scored += u64::from(v.violation.points);
                let after = scored.saturating_sub(repaired);
                let total = u32::try_from(after).unwrap_or(u32::MAX);
                let threshold = |t: u32| before < u64::from(t) && after >= u64::from(t);
                if threshold(TERMINATION_THRESHOLD) {
                    let years = if v.violation.points >= SINGLE_INCIDENT_POINTS {
                        SINGLE_INCIDENT_BAN_YEARS
                    } else {
                        BAN_YEARS
                    };
                    let ban_until = day.add_months(12 * years);
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
                } else if threshold(SUSPENSION_THRESHOLD) {
                    let months =
                        v.violation.suspension_months.unwrap_or_else(|| policy.default_suspension_months(total));
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
    }
    out.sort_by_key(|s| (s.interval.from, s.cause_seq));
    out
}
