//! Who is affected: the service-date windows whose non-emergency verdict an
//! accepted event changed (issue 16), as a pure function of the standings
//! before and after it.
//!
//! A claim's verdict (R18) splits into two sides that no event touches both
//! of: the **pair** side, the tests about the practitioner at that
//! institution (2 `unknown_practitioner`, 4 `not_registered_at_institution`,
//! 5 `practitioner_terminated`, 6 `practitioner_suspended`), and the
//! **institution** side (1 `unknown_institution`, 3
//! `institution_not_designated`, 7 `institution_suspended`). Each side's
//! status on a date is its first failing test, or `ok`; the verdict's reason
//! is the first failing of the two in R18's order ([`combine`]). So a
//! practitioner event (a registration, deregistration, violation, revocation
//! or repair) changes pair windows only, at every institution where the
//! practitioner is filed (R16), and an institution event changes that
//! institution's windows only; a consumer holding both sides knows every
//! claim's verdict. Folding the changes from an empty ledger gives each
//! side's windows at the head ([`Windows::apply`]), an institution starting
//! from `unknown_institution` on every date and a pair from
//! [`Windows::new_pair`].

use crate::check::Reason;
use crate::domain::{CivilDate, InstitutionCode, PractitionerCode, Seq};
use crate::event::{Event, RecordedEvent};
use crate::institution::{self, InstitutionStanding};
use crate::policy::Policy;
use crate::practitioner::{self, PractitionerStanding, SanctionKind};
use crate::world::{filed_under, Filed};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// The pair side of a verdict on `day` (R18 tests 2, 4, 5, 6): `None` or a
/// standing with no registration ever is `unknown_practitioner`.
pub fn pair_status(
    practitioner: Option<&PractitionerStanding>,
    institution: InstitutionCode,
    day: CivilDate,
) -> Reason {
    let Some(p) = practitioner.filter(|p| p.registered_ever) else { return Reason::UnknownPractitioner };
    if !p.registered_at(institution, day) {
        Reason::NotRegisteredAtInstitution
    } else if p.sanction_on(SanctionKind::Termination, day).is_some() {
        Reason::PractitionerTerminated
    } else if p.sanction_on(SanctionKind::Suspension, day).is_some() {
        Reason::PractitionerSuspended
    } else {
        Reason::Ok
    }
}

/// The institution side of a verdict on `day` (R18 tests 1, 3, 7): `None` or
/// a standing never designated is `unknown_institution`.
pub fn institution_status(institution: Option<&InstitutionStanding>, day: CivilDate) -> Reason {
    let Some(i) = institution.filter(|i| !i.designations.is_empty()) else { return Reason::UnknownInstitution };
    if !i.designated_on(day) {
        Reason::InstitutionNotDesignated
    } else if i.suspended_on(day) {
        Reason::InstitutionSuspended
    } else {
        Reason::Ok
    }
}

/// The verdict's reason for a non-emergency claim from its two sides: the
/// first failing test in R18's order, `ok` when neither fails.
pub fn combine(institution: Reason, pair: Reason) -> Reason {
    let rank = |r: Reason| if r == Reason::Ok { u8::MAX } else { r as u8 };
    if rank(institution) <= rank(pair) {
        institution
    } else {
        pair
    }
}

/// A maximal run of service dates `[from, until)` with one status; `until`
/// `None` runs without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub from: CivilDate,
    pub until: Option<CivilDate>,
    pub status: Reason,
}

/// One side's status over every date, as windows from [`CivilDate::MIN`]
/// on, sorted, adjacent, no two neighbours alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Windows(Vec<Window>);

impl Windows {
    /// One status on every date.
    pub fn constant(status: Reason) -> Windows {
        Windows(vec![Window { from: CivilDate::MIN, until: None, status }])
    }

    /// A pair's windows before its first change: `unknown_practitioner` on
    /// every date while the practitioner was never `known` (named by any
    /// earlier change: their first registration is one, at its institution),
    /// `not_registered_at_institution` once they are (a practitioner becoming
    /// known changes every pair they are not filed in from 2 to 4, which no
    /// feed could list).
    pub fn new_pair(known: bool) -> Windows {
        Windows::constant(if known { Reason::NotRegisteredAtInstitution } else { Reason::UnknownPractitioner })
    }

    /// The windows of `status`, a function that can change only on the
    /// given dates.
    fn of(mut bounds: Vec<CivilDate>, status: impl Fn(CivilDate) -> Reason) -> Windows {
        bounds.push(CivilDate::MIN);
        bounds.sort_unstable();
        bounds.dedup();
        let mut out: Vec<Window> = Vec::new();
        for from in bounds {
            let status = status(from);
            if out.last().is_some_and(|w| w.status == status) {
                continue;
            }
            if let Some(last) = out.last_mut() {
                last.until = Some(from);
            }
            out.push(Window { from, until: None, status });
        }
        Windows(out)
    }

    /// The pair side of `practitioner` at `institution`.
    pub fn pair(practitioner: Option<&PractitionerStanding>, institution: InstitutionCode) -> Windows {
        let mut bounds = Vec::new();
        if let Some(p) = practitioner {
            for r in p.registrations.iter().filter(|r| r.institution == institution) {
                bounds.extend([Some(r.interval.from), r.interval.until].into_iter().flatten());
            }
            for s in &p.sanctions {
                bounds.extend([Some(s.interval.from), s.interval.until].into_iter().flatten());
            }
        }
        Windows::of(bounds, |day| pair_status(practitioner, institution, day))
    }

    /// The institution side of `institution`.
    pub fn institution(institution: Option<&InstitutionStanding>) -> Windows {
        let mut bounds = Vec::new();
        if let Some(i) = institution {
            for a in &i.agreements {
                bounds.extend([Some(a.from), a.until].into_iter().flatten());
            }
            for s in &i.suspensions {
                bounds.extend([Some(s.interval.from), s.interval.until].into_iter().flatten());
            }
        }
        Windows::of(bounds, |day| institution_status(institution, day))
    }

    /// The windows, in date order.
    pub fn as_slice(&self) -> &[Window] {
        &self.0
    }

    /// The status on `day`.
    pub fn status_on(&self, day: CivilDate) -> Reason {
        let at = self.0.partition_point(|w| w.from <= day);
        self.0[at - 1].status
    }

    /// The runs where `self` and `after` differ: `(from, until, before, after)`.
    fn diff(&self, after: &Windows) -> Vec<(CivilDate, Option<CivilDate>, Reason, Reason)> {
        let bounds: BTreeSet<CivilDate> = self.0.iter().chain(&after.0).map(|w| w.from).collect();
        let mut out: Vec<(CivilDate, Option<CivilDate>, Reason, Reason)> = Vec::new();
        let mut open = false;
        for day in bounds {
            let (b, a) = (self.status_on(day), after.status_on(day));
            let same_run = open && out.last().is_some_and(|r| (r.2, r.3) == (b, a));
            if same_run {
                continue;
            }
            if open {
                out.last_mut().expect("open run").1 = Some(day);
            }
            open = b != a;
            if open {
                out.push((day, None, b, a));
            }
        }
        out
    }

    /// Applies a change: `[from, until)` becomes `after`. Refused (`Err`,
    /// nothing changed) unless every date of it had the status `before`: a
    /// fold that holds is a proof the changes describe the windows.
    pub fn apply(&mut self, change: &StandingChange) -> Result<(), String> {
        let covered = |w: &Window| change.until.is_none_or(|u| w.from < u) && w.until.is_none_or(|u| u > change.from);
        if let Some(w) = self.0.iter().find(|w| covered(w) && w.status != change.before) {
            return Err(format!("{change:?} found {:?} on [{}, {:?})", w.status, w.from, w.until));
        }
        let mut bounds: Vec<CivilDate> = self.0.iter().map(|w| w.from).collect();
        bounds.extend([Some(change.from), change.until].into_iter().flatten());
        let inside = |day: CivilDate| day >= change.from && change.until.is_none_or(|u| day < u);
        let old = self.clone();
        *self = Windows::of(bounds, |day| if inside(day) { change.after } else { old.status_on(day) });
        Ok(())
    }
}

/// One run of service dates whose non-emergency verdict side an accepted
/// event changed: for the pair (`practitioner` at `institution`) when the
/// event is about a practitioner, for `institution` alone when it is about
/// the institution. `before` and `after` are `ok` or an R18 reason of that
/// side; `until` `None` runs without end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StandingChange {
    pub seq: Seq,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub practitioner: Option<PractitionerCode>,
    pub institution: InstitutionCode,
    pub from: CivilDate,
    pub until: Option<CivilDate>,
    pub before: Reason,
    pub after: Reason,
}

/// The changes of one event about `code` (its `seq` and `kind`), from the
/// practitioner's standing before it (`None`: no events yet) and after it:
/// at every institution where either standing files the practitioner.
pub fn practitioner_changes(
    seq: Seq,
    kind: &'static str,
    code: PractitionerCode,
    before: Option<&PractitionerStanding>,
    after: &PractitionerStanding,
) -> Vec<StandingChange> {
    let filed: BTreeSet<InstitutionCode> =
        before.into_iter().chain([after]).flat_map(|p| p.registrations.iter().map(|r| r.institution)).collect();
    let mut out = Vec::new();
    for institution in filed {
        let runs = Windows::pair(before, institution).diff(&Windows::pair(Some(after), institution));
        out.extend(runs.into_iter().map(|(from, until, before, after)| StandingChange {
            seq,
            kind,
            practitioner: Some(code),
            institution,
            from,
            until,
            before,
            after,
        }));
    }
    out
}

/// The changes of one event about an institution, from its standing before
/// (`None`: no events yet) and after it.
pub fn institution_changes(
    seq: Seq,
    kind: &'static str,
    code: InstitutionCode,
    before: Option<&InstitutionStanding>,
    after: &InstitutionStanding,
) -> Vec<StandingChange> {
    let runs = Windows::institution(before).diff(&Windows::institution(Some(after)));
    runs.into_iter()
        .map(|(from, until, before, after)| StandingChange {
            seq,
            kind,
            practitioner: None,
            institution: code,
            from,
            until,
            before,
            after,
        })
        .collect()
}

/// Every change of a ledger's accepted events, in `seq` order: the reference
/// the gate's feed is held to (it derives each entity once per event, not
/// built for 20 million).
pub fn changes_of(events: &[RecordedEvent], policy: &Policy) -> Vec<StandingChange> {
    let mut sorted: Vec<&RecordedEvent> = events.iter().collect();
    sorted.sort_by_key(|r| r.seq);
    let mut owner = HashMap::new();
    let mut p_history: HashMap<PractitionerCode, Vec<RecordedEvent>> = HashMap::new();
    let mut i_history: HashMap<InstitutionCode, Vec<RecordedEvent>> = HashMap::new();
    let mut p_now: HashMap<PractitionerCode, PractitionerStanding> = HashMap::new();
    let mut i_now: HashMap<InstitutionCode, InstitutionStanding> = HashMap::new();
    let mut out = Vec::new();
    for r in sorted {
        if let Event::ViolationScored(v) = &r.event {
            owner.entry(v.violation_id.clone()).or_insert(v.practitioner);
        }
        match filed_under(&r.event, |id| owner.get(id).copied()) {
            Some(Filed::Practitioner(code)) => {
                let history = p_history.entry(code).or_default();
                history.push(r.clone());
                let after = practitioner::derive(code, history, policy);
                out.extend(practitioner_changes(r.seq, r.event.kind(), code, p_now.get(&code), &after));
                p_now.insert(code, after);
            }
            Some(Filed::Institution(code)) => {
                let history = i_history.entry(code).or_default();
                history.push(r.clone());
                let after = institution::derive(code, history);
                out.extend(institution_changes(r.seq, r.event.kind(), code, i_now.get(&code), &after));
                i_now.insert(code, after);
            }
            None => {}
        }
    }
    out
}

/// What a batch changed: its standing changes, and the standing after it of
/// each practitioner it touched (for the lists kept beside the changes:
/// sanctions, violations).
#[derive(Debug, Clone, Default)]
pub struct BatchChanges {
    pub changes: Vec<StandingChange>,
    pub practitioners: Vec<PractitionerStanding>,
}

/// The changes of a batch of consecutive events, from each touched entity's
/// history as it stands after the batch (`practitioners`, `institutions`:
/// every event of theirs up to the batch's last `seq`, in `seq` order) and
/// the owner of each revoked violation: what [`changes_of`] gives for the
/// batch's events, in the same order, without the history before the batch
/// (each event's before is its history with `seq` below the event's).
pub fn changes_in_batch(
    events: &[RecordedEvent],
    practitioners: &HashMap<PractitionerCode, Vec<RecordedEvent>>,
    institutions: &HashMap<InstitutionCode, Vec<RecordedEvent>>,
    owner: impl Fn(&crate::domain::ViolationId) -> Option<PractitionerCode>,
    policy: &Policy,
) -> BatchChanges {
    // Each history is in `seq` order: the events up to a seq are a prefix.
    fn upto(history: &[RecordedEvent], seq: Seq) -> &[RecordedEvent] {
        &history[..history.partition_point(|r| r.seq <= seq)]
    }
    // Each entity's standing after its last event so far: the next one's before.
    let mut p_now: HashMap<PractitionerCode, Option<PractitionerStanding>> = HashMap::new();
    let mut i_now: HashMap<InstitutionCode, Option<InstitutionStanding>> = HashMap::new();
    let mut out = Vec::new();
    for r in events {
        match filed_under(&r.event, &owner) {
            Some(Filed::Practitioner(code)) => {
                let history = practitioners.get(&code).map_or(&[][..], Vec::as_slice);
                let before = p_now.remove(&code).unwrap_or_else(|| {
                    let earlier = upto(history, r.seq - 1);
                    (!earlier.is_empty()).then(|| practitioner::derive(code, earlier, policy))
                });
                let after = practitioner::derive(code, upto(history, r.seq), policy);
                out.extend(practitioner_changes(r.seq, r.event.kind(), code, before.as_ref(), &after));
                p_now.insert(code, Some(after));
            }
            Some(Filed::Institution(code)) => {
                let history = institutions.get(&code).map_or(&[][..], Vec::as_slice);
                let before = i_now.remove(&code).unwrap_or_else(|| {
                    let earlier = upto(history, r.seq - 1);
                    (!earlier.is_empty()).then(|| institution::derive(code, earlier))
                });
                let after = institution::derive(code, upto(history, r.seq));
                out.extend(institution_changes(r.seq, r.event.kind(), code, before.as_ref(), &after));
                i_now.insert(code, Some(after));
            }
            None => {}
        }
    }
    let mut practitioners: Vec<PractitionerStanding> = p_now.into_values().flatten().collect();
    practitioners.sort_by_key(|p| p.code);
    BatchChanges { changes: out, practitioners }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(s: &str) -> CivilDate {
        CivilDate::parse(s).unwrap()
    }

    fn recorded(seq: Seq, value: serde_json::Value) -> RecordedEvent {
        RecordedEvent { seq, event: Event::parse(&value, &Policy::default()).unwrap() }
    }

    const H: &str = "H11010500001";
    const P: &str = "D110105000001";

    fn ledger() -> Vec<RecordedEvent> {
        vec![
            recorded(1, json!({"type": "institution_designated", "institution": H, "effective": "2024-01-01"})),
            recorded(
                2,
                json!({"type": "practitioner_registered", "practitioner": P, "institution": H,
                       "effective": "2024-03-01"}),
            ),
            recorded(
                3,
                json!({"type": "violation_scored", "violation_id": "V1", "practitioner": P, "institution": H,
                       "effective": "2026-03-10", "points": 9, "severity": "serious",
                       "responsibility": "primary", "suspension_months": 2}),
            ),
            recorded(4, json!({"type": "violation_revoked", "violation_id": "V1", "effective": "2026-04-01"})),
            recorded(
                5,
                json!({"type": "points_repaired", "event_id": "R1", "practitioner": P, "points": 1,
                                "effective": "2026-05-01"}),
            ),
        ]
    }

    #[test]
    fn a_suspension_and_its_revocation_change_the_same_window_both_ways_r12_r14() {
        let changes = changes_of(&ledger(), &Policy::default());
        let of = |seq| changes.iter().filter(|c| c.seq == seq).cloned().collect::<Vec<_>>();
        let h = InstitutionCode::parse(H).unwrap();
        let p = PractitionerCode::parse(P).unwrap();
        let designated = |from, until, after| StandingChange {
            seq: 1,
            kind: "institution_designated",
            practitioner: None,
            institution: h,
            from,
            until,
            before: Reason::UnknownInstitution,
            after,
        };
        assert_eq!(
            of(1),
            [
                designated(CivilDate::MIN, Some(d("2024-01-01")), Reason::InstitutionNotDesignated),
                designated(d("2024-01-01"), None, Reason::Ok),
            ],
            "unknown on every date before the designation (R18 test 1); not designated before its date after it (3)"
        );
        let registration = of(2);
        assert_eq!(registration.len(), 2, "{registration:?}");
        assert_eq!(
            (registration[0].from, registration[0].until, registration[0].before, registration[0].after),
            (CivilDate::MIN, Some(d("2024-03-01")), Reason::UnknownPractitioner, Reason::NotRegisteredAtInstitution)
        );
        assert_eq!(
            (registration[1].from, registration[1].until, registration[1].after),
            (d("2024-03-01"), None, Reason::Ok)
        );
        let suspension = StandingChange {
            seq: 3,
            kind: "violation_scored",
            practitioner: Some(p),
            institution: h,
            from: d("2026-03-10"),
            until: Some(d("2026-05-10")),
            before: Reason::Ok,
            after: Reason::PractitionerSuspended,
        };
        assert_eq!(of(3), std::slice::from_ref(&suspension));
        let revocation = StandingChange {
            seq: 4,
            kind: "violation_revoked",
            before: Reason::PractitionerSuspended,
            after: Reason::Ok,
            ..suspension
        };
        assert_eq!(of(4), [revocation], "R12: as if never scored");
        assert_eq!(of(5), [], "a repair with nothing standing changes no window");
    }

    #[test]
    fn the_two_sides_combine_in_r18_order() {
        use Reason::*;
        assert_eq!(combine(Ok, Ok), Ok);
        assert_eq!(combine(InstitutionSuspended, PractitionerSuspended), PractitionerSuspended);
        assert_eq!(combine(InstitutionNotDesignated, NotRegisteredAtInstitution), InstitutionNotDesignated);
        assert_eq!(combine(UnknownInstitution, UnknownPractitioner), UnknownInstitution);
        assert_eq!(combine(Ok, UnknownPractitioner), UnknownPractitioner);
        assert_eq!(combine(InstitutionSuspended, Ok), InstitutionSuspended);
    }

    #[test]
    fn a_fold_refuses_a_change_whose_before_is_not_what_the_windows_hold() {
        let changes = changes_of(&ledger(), &Policy::default());
        let h = InstitutionCode::parse(H).unwrap();
        let mut pair = Windows::new_pair(false);
        for c in changes.iter().filter(|c| c.practitioner.is_some()) {
            pair.apply(c).unwrap();
        }
        let world_p = practitioner::derive(PractitionerCode::parse(P).unwrap(), &ledger()[1..], &Policy::default());
        assert_eq!(pair, Windows::pair(Some(&world_p), h));
        let again = changes.iter().find(|c| c.seq == 4).unwrap();
        let before = pair.clone();
        assert!(pair.apply(again).is_err(), "the revoked suspension is not there to be lifted twice");
        assert_eq!(pair, before, "a refused change changes nothing");
    }
}
