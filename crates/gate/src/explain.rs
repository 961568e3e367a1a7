//! The facts behind a decision (`"explain": true` on a check): what the
//! rules derived from the two histories a claim names, as of the answer's
//! `seq` (R6: only events with `seq` at most that count): the registration
//! the service fell in, the sanctions in force with their causes and the
//! year's violations that made them (R9-R15), the year's total, the
//! institution's agreement and suspension (R16). A pure function: the route
//! reads the histories on a query thread and hands them here.

use claimgate_rules::domain::Seq;
use claimgate_rules::event::RecordedEvent;
use claimgate_rules::policy::Policy;
use claimgate_rules::{institution, practitioner, Claim};
use serde_json::{json, Value};

/// The facts behind `claim`'s decision at `seq`, from the practitioner's and
/// the institution's histories (any later events are left out).
pub fn facts(
    claim: &Claim,
    p_events: Vec<RecordedEvent>,
    i_events: Vec<RecordedEvent>,
    seq: Seq,
    policy: &Policy,
) -> Value {
    let upto = |mut v: Vec<RecordedEvent>| {
        v.retain(|r| r.seq <= seq);
        v
    };
    let day = claim.service_date;
    let p = practitioner::derive(claim.practitioner, &upto(p_events), policy);
    let i = institution::derive(claim.institution, &upto(i_events));
    let registration = p.registrations.iter().find(|r| r.institution == claim.institution && r.interval.contains(day));
    let sanctions: Vec<Value> = p
        .sanctions
        .iter()
        .filter(|s| s.interval.contains(day))
        .map(|s| {
            let cause = p.violations.iter().find(|v| v.violation.violation_id == s.cause);
            json!({
                "kind": s.kind, "from": s.interval.from, "until": s.interval.until, "ban_until": s.ban_until,
                "cause": {"violation_id": s.cause, "seq": s.cause_seq, "points": cause.map(|v| v.violation.points),
                          "effective": cause.map(|v| v.violation.effective), "year_total": s.year_total},
                "year_violations": p.violations.iter()
                    .filter(|v| v.revoked.is_none() && v.violation.effective.year() == s.interval.from.year() && v.violation.effective <= s.interval.from)
                    .map(|v| json!({"violation_id": v.violation.violation_id, "seq": v.seq, "points": v.violation.points, "effective": v.violation.effective}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "registration": registration,
        "sanctions": sanctions,
        "year_total": p.year_total_on(day),
        "agreement": i.agreements.iter().find(|a| a.contains(day)),
        "institution_suspension": i.suspensions.iter().find(|s| s.interval.contains(day)),
        "seq": seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use claimgate_rules::domain::{CivilDate, InstitutionCode, PractitionerCode};
    use claimgate_rules::event::Event;

    fn recorded(seq: Seq, value: Value) -> RecordedEvent {
        RecordedEvent { seq, event: Event::parse(&value, &Policy::default()).expect("a valid event") }
    }

    const H: &str = "H11010500001";
    const D: &str = "D110105000001";

    fn histories() -> (Vec<RecordedEvent>, Vec<RecordedEvent>) {
        let designated =
            recorded(1, json!({"type": "institution_designated", "institution": H, "effective": "2025-01-01"}));
        let registered = recorded(
            2,
            json!({"type": "practitioner_registered", "practitioner": D, "institution": H, "effective": "2025-02-01"}),
        );
        // 9 points in one year: a suspension (R14) of 2 months from its date.
        let violation = recorded(
            3,
            json!({"type": "violation_scored", "violation_id": "V1", "practitioner": D, "institution": H,
                   "effective": "2026-03-01", "points": 9, "severity": "serious", "responsibility": "primary",
                   "suspension_months": 2}),
        );
        (vec![registered, violation], vec![designated])
    }

    fn claim(date: &str) -> Claim {
        Claim {
            practitioner: PractitionerCode::parse(D).unwrap(),
            institution: InstitutionCode::parse(H).unwrap(),
            service_date: CivilDate::parse(date).unwrap(),
            emergency: false,
        }
    }

    #[test]
    fn a_suspended_practitioner_is_explained_by_the_sanction_its_cause_and_the_years_violations() {
        let (p, i) = histories();
        let facts = facts(&claim("2026-03-15"), p, i, 3, &Policy::default());
        let sanctions = facts["sanctions"].as_array().unwrap();
        assert_eq!(sanctions.len(), 1, "{facts}");
        assert_eq!(sanctions[0]["cause"]["violation_id"], "V1", "{facts}");
        assert_eq!(sanctions[0]["cause"]["points"], 9, "{facts}");
        assert_eq!(sanctions[0]["year_violations"].as_array().unwrap().len(), 1, "{facts}");
        assert_eq!(facts["year_total"], 9, "{facts}");
        assert!(facts["registration"].is_object() && facts["agreement"].is_object(), "{facts}");
        assert_eq!(facts["seq"], 3);
    }

    #[test]
    fn events_after_the_answers_seq_are_left_out() {
        let (p, i) = histories();
        // As of seq 2 the violation (seq 3) had not been recorded (R6).
        let facts = facts(&claim("2026-03-15"), p, i, 2, &Policy::default());
        assert_eq!(facts["sanctions"], json!([]), "{facts}");
        assert_eq!(facts["year_total"], 0, "{facts}");
    }
}
