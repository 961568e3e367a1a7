//! Named behaviours of RULES.md beyond the public conformance cases, each
//! through the real path: parse (R4) → ledger validation (R8) → derivation
//! (R9–R16, R20) → check (R17–R19).

use claimgate::domain::{CivilDate, Grade, InstitutionCode, PractitionerCode};
use claimgate::event::Event;
use claimgate::ledger::{AppendError, Ledger};
use claimgate::policy::Policy;
use claimgate::refusal::RefusalCode;
use claimgate::rules::file::PractitionerState;
use claimgate::rules::{Claim, Reason, SanctionKind, Verdict, World};
use serde_json::{json, Value};

const H1: &str = "H11010500001";
const H2: &str = "H31011500007";
const P: &str = "D110105000001";

struct Gate {
    ledger: Ledger,
    policy: Policy,
}

impl Gate {
    fn new() -> Gate {
        Gate::with_policy(Policy::default())
    }

    fn with_policy(policy: Policy) -> Gate {
        let gate = Gate { ledger: Ledger::open_in_memory(&policy).unwrap(), policy };
        gate.ok(json!({"type": "institution_designated", "institution": H1, "effective": "2024-01-01"}));
        gate.ok(json!({"type": "institution_designated", "institution": H2, "effective": "2024-01-01"}));
        gate.ok(
            json!({"type": "practitioner_registered", "practitioner": P, "institution": H1, "effective": "2024-01-01"}),
        );
        gate.ok(
            json!({"type": "practitioner_registered", "practitioner": P, "institution": H2, "effective": "2024-01-01"}),
        );
        gate
    }

    fn append(&self, v: Value) -> Result<u64, RefusalCode> {
        let event = Event::parse(&v, &self.policy).map_err(|r| r.code)?;
        match self.ledger.append(&event) {
            Ok(a) => Ok(a.seq),
            Err(AppendError::Refused(r)) => Err(r.code),
            Err(e) => panic!("storage failure: {e}"),
        }
    }

    fn ok(&self, v: Value) -> u64 {
        self.append(v.clone()).unwrap_or_else(|code| panic!("{v} refused: {code}"))
    }

    fn violation(&self, id: &str, effective: &str, points: u32, extra: Value) -> u64 {
        let severity = match points {
            1..=3 => "minor",
            4..=6 => "moderate",
            7..=9 => "serious",
            _ => "fraud",
        };
        let mut v = json!({"type": "violation_scored", "violation_id": id, "practitioner": P, "institution": H1,
                           "effective": effective, "points": points, "severity": severity, "responsibility": "primary"});
        if let Value::Object(extra) = extra {
            v.as_object_mut().unwrap().extend(extra);
        }
        self.ok(v)
    }

    fn world(&self) -> World {
        World::from_events(&self.ledger.all_events().unwrap(), &self.policy)
    }

    fn check(&self, institution: &str, date: &str, emergency: bool) -> (Verdict, Reason, Vec<Reason>) {
        let claim = Claim {
            practitioner: PractitionerCode::parse(P).unwrap(),
            institution: InstitutionCode::parse(institution).unwrap(),
            service_date: day(date),
            emergency,
        };
        let d = self.world().decide(&claim);
        (d.verdict, d.reason, d.waived.iter().collect())
    }

    fn reason(&self, date: &str) -> Reason {
        self.check(H1, date, false).1
    }
}

fn day(s: &str) -> CivilDate {
    CivilDate::parse(s).unwrap()
}

#[test]
fn a_total_of_ten_or_eleven_suspends_for_the_policy_months_r14() {
    let g = Gate::new();
    g.violation("A", "2026-03-01", 4, json!({}));
    g.violation("B", "2026-04-01", 6, json!({})); // 4 -> 10: default 4 months
    assert_eq!(g.reason("2026-07-31"), Reason::PractitionerSuspended);
    assert_eq!(g.reason("2026-08-01"), Reason::Ok);

    let g = Gate::with_policy(Policy { suspension_months_at_total: [1, 1, 5], ..Policy::default() });
    g.violation("A", "2026-03-01", 5, json!({}));
    g.violation("B", "2026-03-31", 6, json!({})); // 5 -> 11: 5 months by this policy
    assert_eq!(g.reason("2026-08-30"), Reason::PractitionerSuspended);
    assert_eq!(g.reason("2026-08-31"), Reason::Ok);
}

#[test]
fn suspension_months_on_the_violation_override_the_table_and_clamp_to_month_end_r3_r14() {
    let g = Gate::new();
    g.violation("A", "2026-01-31", 9, json!({"suspension_months": 1}));
    assert_eq!(g.reason("2026-02-27"), Reason::PractitionerSuspended);
    assert_eq!(g.reason("2026-02-28"), Reason::Ok);
}

#[test]
fn only_the_crossing_from_below_nine_suspends_r14() {
    let g = Gate::new();
    g.violation("A", "2026-03-01", 9, json!({}));
    g.violation("B", "2026-06-01", 1, json!({})); // 9 -> 10: no new suspension
    assert_eq!(g.reason("2026-06-02"), Reason::Ok);
    let standing = g.world().practitioner(PractitionerCode::parse(P).unwrap()).unwrap().clone();
    assert_eq!(standing.sanctions.len(), 1);
    assert_eq!(standing.sanctions[0].cause.as_str(), "A");
}

#[test]
fn a_jump_from_below_nine_to_twelve_terminates_without_suspending_r15() {
    let g = Gate::new();
    g.violation("A", "2026-03-01", 3, json!({}));
    g.violation("B", "2026-04-01", 9, json!({}));
    let world = g.world();
    let standing = world.practitioner(PractitionerCode::parse(P).unwrap()).unwrap();
    assert_eq!(standing.sanctions.len(), 1);
    assert_eq!(standing.sanctions[0].kind, SanctionKind::Termination);
    assert_eq!(standing.sanctions[0].ban_until, Some(day("2027-04-01")), "one-year ban: B alone scored 9");
}

#[test]
fn an_emergency_waives_every_applicable_reason_in_r18_order_r19() {
    let g = Gate::new();
    g.violation("A", "2026-03-01", 9, json!({})); // suspended 2026-03-01..2026-05-01
    g.violation("B", "2026-04-01", 3, json!({})); // 12: terminated from 2026-04-01
    g.ok(json!({"type": "institution_suspended", "institution": H1, "effective": "2026-04-10", "until": "2026-04-20"}));
    assert_eq!(
        g.check(H1, "2026-04-15", true),
        (
            Verdict::Settle,
            Reason::EmergencyExemption,
            vec![Reason::PractitionerTerminated, Reason::PractitionerSuspended, Reason::InstitutionSuspended]
        )
    );
    assert_eq!(g.check(H1, "2026-04-15", false), (Verdict::Reject, Reason::PractitionerTerminated, vec![]));
    assert_eq!(
        g.check(H2, "2026-03-15", false),
        (Verdict::Reject, Reason::PractitionerSuspended, vec![]),
        "R16: everywhere"
    );
}

#[test]
fn a_termination_holds_until_a_registration_after_the_ban_anywhere_r15_r16() {
    let g = Gate::new();
    g.violation("A", "2026-05-01", 12, json!({})); // single incident: 3-year ban to 2029-05-01
    assert_eq!(g.reason("2035-01-01"), Reason::PractitionerTerminated, "no re-registration: still terminated");
    assert_eq!(
        g.append(
            json!({"type": "practitioner_registered", "practitioner": P, "institution": H2, "effective": "2029-04-30"})
        ),
        Err(RefusalCode::RegistrationBanned)
    );
    g.ok(json!({"type": "practitioner_registered", "practitioner": P, "institution": H2, "effective": "2029-06-01"}));
    assert_eq!(g.check(H2, "2029-05-31", false).1, Reason::PractitionerTerminated);
    assert_eq!(g.check(H2, "2029-06-01", false).1, Reason::Ok);
    assert_eq!(g.check(H1, "2029-06-01", false).1, Reason::Ok, "the earlier filing at H1 was never deregistered");
}

#[test]
fn revoking_the_violation_behind_a_termination_lifts_its_ban_r12_r15() {
    let g = Gate::new();
    g.violation("A", "2026-05-01", 12, json!({}));
    let late =
        json!({"type": "practitioner_registered", "practitioner": P, "institution": H2, "effective": "2027-01-01"});
    assert_eq!(g.append(late.clone()), Err(RefusalCode::RegistrationBanned));
    g.ok(json!({"type": "violation_revoked", "violation_id": "A", "effective": "2026-09-01"}));
    assert_eq!(g.reason("2026-06-01"), Reason::Ok, "revoked: as if never scored, even before the revocation date");
    g.ok(late);
}

#[test]
fn a_repair_lowers_later_totals_but_not_a_running_suspension_r13() {
    let g = Gate::new();
    g.violation("A", "2026-03-01", 9, json!({})); // suspended to 2026-05-01
    g.ok(json!({"type": "points_repaired", "event_id": "R-1", "practitioner": P, "points": 5, "effective": "2026-03-15"}));
    assert_eq!(g.reason("2026-04-30"), Reason::PractitionerSuspended);
    g.violation("B", "2026-06-01", 3, json!({})); // 9 - 5 + 3 = 7: no new sanction
    assert_eq!(g.reason("2026-06-02"), Reason::Ok);
    let world = g.world();
    let standing = world.practitioner(PractitionerCode::parse(P).unwrap()).unwrap();
    assert_eq!(standing.year_total_on(day("2026-03-14")), 9);
    assert_eq!(standing.year_total_on(day("2026-03-15")), 4);
    assert_eq!(standing.year_total_on(day("2026-06-01")), 7);
    assert_eq!(standing.year_total_on(day("2027-01-01")), 0, "R10: clears on 1 January");
}

#[test]
fn the_repair_cap_counts_the_calendar_year_of_the_repair_r13() {
    let g = Gate::new();
    let repair = |points: u32, date: &str| {
        g.append(json!({"type": "points_repaired", "event_id": format!("R-{date}-{points}"), "practitioner": P, "points": points, "effective": date}))
    };
    assert!(repair(4, "2026-02-01").is_ok());
    assert!(repair(2, "2026-12-31").is_ok());
    assert_eq!(repair(1, "2026-06-01"), Err(RefusalCode::RepairLimitExceeded));
    assert!(repair(6, "2027-01-01").is_ok());
    assert_eq!(repair(13, "2028-01-01"), Err(RefusalCode::RepairLimitExceeded));
}

/// RULES.md R11's example: a 6-point repair on 1 February followed by a
/// 9-point violation on 1 March leaves 9, not 3 (the repair found nothing to
/// remove), so the violation suspends (R14).
#[test]
fn a_repair_before_any_points_banks_nothing_and_the_later_violation_suspends_r11_r14() {
    let g = Gate::new();
    g.ok(json!({"type": "points_repaired", "event_id": "R-1", "practitioner": P, "points": 6, "effective": "2026-02-01"}));
    g.violation("A", "2026-03-01", 9, json!({}));
    let world = g.world();
    let standing = world.practitioner(PractitionerCode::parse(P).unwrap()).unwrap();
    assert_eq!(standing.year_total_on(day("2026-02-01")), 0, "never below 0 (R11)");
    assert_eq!(standing.year_total_on(day("2026-03-01")), 9, "not 3: nothing was banked");
    assert_eq!((standing.repairs[0].points, standing.repairs[0].effective_points), (6, 0));
    assert_eq!(g.reason("2026-02-28"), Reason::Ok);
    assert_eq!(g.reason("2026-03-01"), Reason::PractitionerSuspended);
    assert_eq!(g.reason("2026-04-30"), Reason::PractitionerSuspended, "total 9: 2 months (R14)");
    assert_eq!(g.reason("2026-05-01"), Reason::Ok);
}

/// R13, R22: the integrity file shows each repair's requested and effective
/// points, and the year's `repaired` is what the repairs removed.
#[test]
fn the_integrity_file_shows_requested_and_effective_repair_points_r13_r22() {
    let g = Gate::new();
    g.violation("A", "2026-02-01", 4, json!({}));
    g.ok(json!({"type": "points_repaired", "event_id": "R-1", "practitioner": P, "points": 5, "effective": "2026-03-01"}));
    let file = g.ledger.practitioner_file(PractitionerCode::parse(P).unwrap(), day("2026-03-01")).unwrap().unwrap();
    let json = serde_json::to_value(&file).unwrap();
    assert_eq!(json["repairs"][0]["event_id"], "R-1");
    assert_eq!(json["repairs"][0]["requested_points"], 5);
    assert_eq!(json["repairs"][0]["effective_points"], 4, "min(requested 5, total 4)");
    let year = &json["year_totals"][0];
    assert_eq!((&year["year"], &year["scored"], &year["repaired"]), (&json!(2026), &json!(4), &json!(4)));
    assert_eq!((&year["repair_requested"], &year["total"]), (&json!(5), &json!(0)));
    assert_eq!(json["status"]["year_total"], 0);
}

/// R13: the cap counts requested points, so a repair that removed nothing
/// still uses its share of the year's 6.
#[test]
fn the_repair_cap_counts_requested_points_even_when_nothing_was_removed_r13() {
    let g = Gate::new();
    let repair = |id: &str, points: u32, date: &str| {
        g.append(
            json!({"type": "points_repaired", "event_id": id, "practitioner": P, "points": points, "effective": date}),
        )
    };
    assert!(repair("R-1", 6, "2026-02-01").is_ok(), "nothing standing: 0 effective points");
    g.violation("A", "2026-03-01", 5, json!({}));
    assert_eq!(repair("R-2", 1, "2026-04-01"), Err(RefusalCode::RepairLimitExceeded), "6 requested already");
    let world = g.world();
    let standing = world.practitioner(PractitionerCode::parse(P).unwrap()).unwrap();
    assert_eq!(standing.repairs[0].effective_points, 0);
    assert_eq!(standing.year_total_on(day("2026-12-31")), 5);
    assert!(repair("R-3", 1, "2027-01-01").is_ok(), "a new year, a new cap");
}

#[test]
fn deregistration_ends_the_filing_at_that_institution_only() {
    let g = Gate::new();
    g.ok(json!({"type": "practitioner_deregistered", "practitioner": P, "institution": H1, "effective": "2026-07-01"}));
    assert_eq!(g.check(H1, "2026-06-30", false).1, Reason::Ok);
    assert_eq!(g.check(H1, "2026-07-01", false).1, Reason::NotRegisteredAtInstitution);
    assert_eq!(g.check(H2, "2026-07-01", false).1, Reason::Ok);
    g.ok(json!({"type": "practitioner_registered", "practitioner": P, "institution": H1, "effective": "2026-09-01"}));
    assert_eq!(g.check(H1, "2026-08-31", false).1, Reason::NotRegisteredAtInstitution);
    assert_eq!(g.check(H1, "2026-09-01", false).1, Reason::Ok);
}

#[test]
fn a_terminated_institution_designated_again_is_designated_from_the_new_date_r18() {
    let g = Gate::new();
    g.ok(json!({"type": "institution_terminated", "institution": H1, "effective": "2026-01-01"}));
    g.ok(json!({"type": "institution_designated", "institution": H1, "effective": "2026-06-01"}));
    assert_eq!(g.check(H1, "2025-12-31", false).1, Reason::Ok);
    assert_eq!(g.check(H1, "2026-03-01", true), (Verdict::Reject, Reason::InstitutionNotDesignated, vec![]));
    assert_eq!(g.check(H1, "2026-06-01", false).1, Reason::Ok);
    assert_eq!(g.check(H1, "2023-12-31", false).1, Reason::InstitutionNotDesignated, "before the first designation");
}

#[test]
fn the_answer_carries_the_latest_rated_grade_and_direct_e_forces_e_r20_r21() {
    let g = Gate::new();
    let claim = |g: &Gate| {
        g.world().decide(&Claim {
            practitioner: PractitionerCode::parse(P).unwrap(),
            institution: InstitutionCode::parse(H1).unwrap(),
            service_date: day("2026-01-10"),
            emergency: false,
        })
    };
    assert_eq!(claim(&g).institution_grade, None);
    g.ok(json!({"type": "institution_rated", "institution": H1, "year": 2025, "score": 92, "direct_e": []}));
    g.ok(json!({"type": "institution_rated", "institution": H1, "year": 2024, "score": 50, "direct_e": []}));
    assert_eq!(claim(&g).institution_grade, Some(Grade::A), "latest year, not latest sent");
    g.ok(json!({"type": "institution_rated", "institution": H1, "year": 2025, "score": 95, "direct_e": ["obstructed_inspection"]}));
    let d = claim(&g);
    assert_eq!(d.institution_grade, Some(Grade::E), "a re-rating of the same year replaces it");
    assert_eq!((d.verdict, d.reason), (Verdict::Settle, Reason::Ok), "R21: the grade never changes the verdict");
}

#[test]
fn validation_reports_the_first_failure_in_r8_order() {
    let g = Gate::new();
    let v = |id: &str, p: &str, i: &str, points: u32, severity: &str, months: Option<u32>| {
        let mut e = json!({"type": "violation_scored", "violation_id": id, "practitioner": p, "institution": i,
                           "effective": "2026-03-01", "points": points, "severity": severity, "responsibility": "primary"});
        if let Some(m) = months {
            e["suspension_months"] = json!(m);
        }
        g.append(e)
    };
    assert_eq!(v("X", P, "H99999999999", 99, "minor", Some(9)), Err(RefusalCode::UnknownInstitution));
    assert_eq!(v("X", "D999999999999", H1, 99, "minor", Some(9)), Err(RefusalCode::UnknownPractitioner));
    assert_eq!(v("X", P, H1, 99, "minor", Some(9)), Err(RefusalCode::PointsOutOfBand));
    assert_eq!(v("X", P, H1, 2, "minor", Some(0)), Err(RefusalCode::InvalidSuspensionMonths));
    assert!(v("X", P, H1, 2, "minor", None).is_ok());
    assert_eq!(v("X", P, H1, 13, "fraud", None), Err(RefusalCode::PointsOutOfBand), "band before duplicate");
    assert_eq!(v("X", P, H1, 3, "minor", None), Err(RefusalCode::DuplicateViolation));
    assert_eq!(
        g.append(json!({"type": "institution_rated", "institution": "H99999999999", "year": 2025, "score": 500, "direct_e": []})),
        Err(RefusalCode::UnknownInstitution)
    );
    assert_eq!(
        g.append(json!({"type": "violation_revoked", "violation_id": "X", "effective": "2026-13-01"})),
        Err(RefusalCode::InvalidRequest)
    );
}

#[test]
fn the_integrity_file_shows_violations_totals_sanctions_and_status_r22() {
    let g = Gate::new();
    g.violation("A", "2025-11-01", 6, json!({}));
    g.violation("B", "2025-12-20", 3, json!({"suspension_months": 2}));
    g.violation("C", "2026-01-05", 2, json!({}));
    g.ok(json!({"type": "violation_revoked", "violation_id": "C", "effective": "2026-02-01"}));
    g.ok(json!({"type": "points_repaired", "event_id": "R-1", "practitioner": P, "points": 1, "effective": "2026-01-10"}));
    let file = g.ledger.practitioner_file(PractitionerCode::parse(P).unwrap(), day("2026-02-01")).unwrap().unwrap();
    assert_eq!(file.status.state, PractitionerState::Suspended);
    assert_eq!(file.status.until, Some(day("2026-02-20")));
    assert_eq!(file.status.year_total, 0);
    assert_eq!(file.status.registered_at.len(), 2);
    assert_eq!(file.violations.len(), 3);
    assert!(file.violations.iter().find(|v| v.violation.violation_id.as_str() == "C").unwrap().revoked.is_some());
    let totals: Vec<(i32, u64, u64, u64, u64, u32)> = file
        .year_totals
        .iter()
        .map(|t| (t.year, t.scored, t.revoked, t.repaired, t.repair_requested, t.total))
        .collect();
    // 2026: the repair of 1 found nothing standing (C is revoked): 0 removed (R11, R13).
    assert_eq!(totals, [(2025, 9, 0, 0, 0, 9), (2026, 0, 2, 0, 1, 0)]);
    assert_eq!(file.sanctions.len(), 1);
    assert_eq!(file.sanctions[0].cause.as_str(), "B");
    let json = serde_json::to_value(&file).unwrap();
    assert_eq!(json["sanctions"][0]["kind"], "suspension");
    assert_eq!(json["sanctions"][0]["from"], "2025-12-20");
    assert_eq!(json["sanctions"][0]["until"], "2026-02-20");

    let institution =
        g.ledger.institution_file(InstitutionCode::parse(H1).unwrap(), day("2026-02-01")).unwrap().unwrap();
    assert!(institution.status.designated && !institution.status.suspended);
    assert_eq!(institution.agreements.len(), 1);
    assert!(g
        .ledger
        .practitioner_file(PractitionerCode::parse("D999999999999").unwrap(), day("2026-02-01"))
        .unwrap()
        .is_none());
}
