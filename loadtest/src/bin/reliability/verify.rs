//! What the campaigns compare against: the ledger as stored (read with the
//! library after the gate has stopped) and the reference rules engine
//! (`claimgate::rules::World`) evaluated on it at any `seq`.
//!
//! A decision about practitioner P at institution I depends only on P's
//! events (revocations included, by the violation's owner) and I's own
//! institution events, so the reference at `seq` S derives the two standings
//! from those events with `seq` ≤ S and decides, as `rules::World` does:
//! exact, and cheap enough for millions of answers.
//!
//! The stored ledger is also held against what the writers were told
//! ([`LedgerFindings`]): every acknowledged event at its `seq`, nothing
//! stored that nobody sent, and no event stored twice under one identity
//! (R7a: a re-send must be answered with its original `seq`, not stored
//! again). `--plant-fault` ([`PlantedFault`]) shows that this catches it.

use claimgate::claim::parse_claim;
use claimgate::domain::{InstitutionCode, PractitionerCode, Seq};
use claimgate::event::{Event, RecordedEvent};
use claimgate::ledger::Ledger;
use claimgate::policy::Policy;
use claimgate::rules::{
    decide, histories, institution, practitioner, Claim, Histories, InstitutionStanding, PractitionerStanding,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// Every event on the embedded ledger under `data`, in `seq` order (the gate must be stopped).
pub fn stored_events(data: &Path) -> Result<Vec<RecordedEvent>, String> {
    let ledger = Ledger::open(data, &Policy::default())
        .map_err(|e| format!("cannot open the ledger under {}: {e}", data.display()))?;
    ledger.all_events().map_err(|e| format!("cannot read the ledger under {}: {e}", data.display()))
}

/// The event a campaign sent, as the ledger would hold it.
pub fn parse_event(sent: &Value) -> Event {
    Event::parse(sent, &Policy::default()).expect("the campaigns send only well-formed events")
}

/// The reference engine over one ledger, by entity.
pub struct Reference {
    practitioners: Histories<PractitionerCode>,
    institutions: Histories<InstitutionCode>,
    policy: Policy,
}

impl Reference {
    pub fn new(events: &[RecordedEvent]) -> Reference {
        let (practitioners, institutions) = histories(events);
        Reference { practitioners, institutions, policy: Policy::default() }
    }

    /// The reference answers (verdict, reason, waived, institution_grade)
    /// to claim lines (as sent), each at its ledger `seq`: `World`'s own
    /// steps (derive each standing from the entity's events, then decide),
    /// with each practitioner's standing derived once per distinct cut of
    /// its events and each institution's once per cut of its own.
    pub fn answers(&self, queries: &[(Value, Seq)]) -> Vec<Value> {
        let claims: Vec<Claim> =
            queries.iter().map(|(c, _)| parse_claim(c).expect("the campaigns send only well-formed claims")).collect();
        let mut order: Vec<usize> = (0..queries.len()).collect();
        order.sort_by_key(|&k| (claims[k].practitioner, queries[k].1));
        let mut out = vec![Value::Null; queries.len()];
        let mut institutions: HashMap<(InstitutionCode, usize), InstitutionStanding> = HashMap::new();
        let mut current: Option<(PractitionerCode, usize, PractitionerStanding)> = None;
        for k in order {
            let (claim, seq) = (&claims[k], queries[k].1);
            let p_events = self.practitioners.get(&claim.practitioner).map(Vec::as_slice).unwrap_or_default();
            let p_cut = p_events.partition_point(|r| r.seq <= seq);
            if !matches!(&current, Some((p, cut, _)) if *p == claim.practitioner && *cut == p_cut) {
                let standing = practitioner::derive(claim.practitioner, &p_events[..p_cut], &self.policy);
                current = Some((claim.practitioner, p_cut, standing));
            }
            let i_events = self.institutions.get(&claim.institution).map(Vec::as_slice).unwrap_or_default();
            let i_cut = i_events.partition_point(|r| r.seq <= seq);
            let institution = institutions
                .entry((claim.institution, i_cut))
                .or_insert_with(|| institution::derive(claim.institution, &i_events[..i_cut]));
            let practitioner = current.as_ref().map(|(_, _, s)| s).filter(|p| p.registered_ever);
            let decision = decide(Some(&*institution).filter(|i| !i.designations.is_empty()), practitioner, claim);
            out[k] = json!({"verdict": decision.verdict, "reason": decision.reason, "waived": decision.waived,
                "institution_grade": decision.institution_grade});
        }
        out
    }
}

/// The fields of a gate's answer that the reference decides.
pub fn decided(answer: &Value) -> Value {
    json!({"verdict": answer["verdict"], "reason": answer["reason"], "waived": answer["waived"],
        "institution_grade": answer["institution_grade"]})
}

/// What a re-send is recognised by (R7a): the `event_id` if the event has
/// one, else the `violation_id` of a `violation_scored`, else for a
/// `violation_revoked` its violation (a violation is revoked at most once).
/// Events without any (the campaigns' set-up) have none.
pub fn identity(event: &Event) -> Option<String> {
    if let Some(id) = event.event_id() {
        return Some(format!("event_id {id}"));
    }
    match event {
        Event::ViolationScored(v) => Some(format!("violation_id {}", v.violation_id)),
        Event::ViolationRevoked { violation_id, .. } => Some(format!("revocation of {violation_id}")),
        _ => None,
    }
}

/// Every identity that more than one stored event carries, with their seqs:
/// a re-send stored as a second copy (R7a: must be none).
pub fn duplicates(stored: &[RecordedEvent]) -> Vec<(String, Vec<Seq>)> {
    let mut by_identity: HashMap<String, Vec<Seq>> = HashMap::new();
    for r in stored {
        if let Some(key) = identity(&r.event) {
            by_identity.entry(key).or_default().push(r.seq);
        }
    }
    let mut out: Vec<_> = by_identity.into_iter().filter(|(_, seqs)| seqs.len() > 1).collect();
    out.sort_by_key(|(_, seqs)| seqs[0]);
    out
}

/// A fault planted on purpose to show that the verification catches it
/// (`reliability --plant-fault`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedFault {
    /// The ledger as read holds a second copy of its last event that has an
    /// identity, at the next seq: what a gate that stored a re-send again
    /// (R7a broken) would leave.
    ResendStoredTwice,
    /// The checkers' record holds one more answered exemption, under a
    /// `claim_id` no line ever carried: what a gate that answered an
    /// exemption without recording it (R19 broken) would leave.
    DecisionNeverLogged,
}

/// Applies `fault` to the ledger as read, before it is verified.
pub fn plant(fault: Option<PlantedFault>, stored: &mut Vec<RecordedEvent>) {
    if fault != Some(PlantedFault::ResendStoredTwice) {
        return;
    }
    if let Some(copy) = stored.iter().rev().find(|r| identity(&r.event).is_some()).map(|r| r.event.clone()) {
        let seq = stored.last().map_or(1, |r| r.seq + 1);
        stored.push(RecordedEvent { seq, event: copy });
    }
}

/// Applies `fault` to the exemptions the checkers saw answered, before they
/// are held against the decision log.
pub fn plant_decision(fault: Option<PlantedFault>, checked: &mut crate::checkers::Checked, trial: u64) {
    if fault == Some(PlantedFault::DecisionNeverLogged) {
        checked.exemptions.push(crate::checkers::Decision {
            claim_id: json!(format!("planted-never-sent-{trial}")),
            reason: "emergency_exemption".into(),
        });
    }
}

/// What the stored ledger says about the writers' outcomes.
#[derive(Default, Clone, serde::Serialize)]
pub struct LedgerFindings {
    /// Events answered with a seq (first sends and retries, not re-sends).
    pub acknowledged: usize,
    /// Of those, stored at their seq with identical content.
    pub found: usize,
    pub lost: usize,
    pub altered: usize,
    /// Stored events nobody saw acknowledged (an answer lost in a kill and never retried).
    pub unacknowledged_present: usize,
    /// Of those, events no unanswered send explains (nobody sent them).
    pub unexplained_present: usize,
    /// Extra stored copies of one identity (R7a: a re-send stored again).
    pub duplicates_stored: usize,
    pub gap_or_disorder: bool,
}

impl LedgerFindings {
    /// Every acknowledged event at its seq with identical content; nothing
    /// else stored but events whose answer was lost (`outcomes.unknown`);
    /// no identity stored twice; seqs 1..=n without a gap. Problems are
    /// described in `problems`.
    pub fn of(stored: &[RecordedEvent], acked: &[(u64, Value)], unknown: &[Value], problems: &mut Vec<String>) -> Self {
        let mut f = LedgerFindings {
            acknowledged: acked.len(),
            gap_or_disorder: stored.iter().enumerate().any(|(i, r)| r.seq != i as u64 + 1),
            ..LedgerFindings::default()
        };
        if f.gap_or_disorder {
            problems.push("the stored seqs are not 1..=n".into());
        }
        let at = |seq: u64| stored.get((seq as usize).wrapping_sub(1)).filter(|r| r.seq == seq);
        let mut acked_seqs = std::collections::HashSet::new();
        for (seq, sent) in acked {
            acked_seqs.insert(*seq);
            match at(*seq) {
                None => f.lost += 1,
                Some(r) if r.event != parse_event(sent) => f.altered += 1,
                Some(_) => f.found += 1,
            }
        }
        let mut unknown: Vec<_> = unknown.iter().map(parse_event).collect();
        for r in stored.iter().filter(|r| !acked_seqs.contains(&r.seq)) {
            f.unacknowledged_present += 1;
            match unknown.iter().position(|e| *e == r.event) {
                Some(k) => {
                    unknown.swap_remove(k);
                }
                None => f.unexplained_present += 1,
            }
        }
        if f.lost + f.altered + f.unexplained_present > 0 {
            problems.push(format!(
                "{} acknowledged events lost, {} altered, {} stored events nobody sent without an answer",
                f.lost, f.altered, f.unexplained_present
            ));
        }
        let twice = duplicates(stored);
        f.duplicates_stored = twice.iter().map(|(_, seqs)| seqs.len() - 1).sum();
        if !twice.is_empty() {
            problems.push(format!(
                "{} events stored more than once (R7a), e.g. {:?}",
                twice.len(),
                twice.iter().take(3).collect::<Vec<_>>()
            ));
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(events: &[Value]) -> Vec<RecordedEvent> {
        events.iter().enumerate().map(|(i, e)| RecordedEvent { seq: i as u64 + 1, event: parse_event(e) }).collect()
    }

    /// The scan catches a re-send stored twice, by event_id, by
    /// violation_id and by revocation, and the planted fault makes one.
    #[test]
    fn a_second_stored_copy_of_one_identity_is_found() {
        let designated =
            json!({"type": "institution_designated", "institution": "H11010500001", "effective": "2020-01-01"});
        let repair = json!({"type": "points_repaired", "event_id": "e1", "practitioner": "D110105000001", "points": 1, "effective": "2021-01-01"});
        let scored = json!({"type": "violation_scored", "violation_id": "v1", "practitioner": "D110105000001",
            "institution": "H11010500001", "effective": "2021-02-01", "points": 2, "severity": "minor", "responsibility": "primary"});
        let revoked = json!({"type": "violation_revoked", "violation_id": "v1", "effective": "2021-03-01"});
        let sound = stored(&[designated.clone(), designated.clone(), repair.clone(), scored.clone(), revoked.clone()]);
        assert!(duplicates(&sound).is_empty(), "two identical set-up events without identity are not re-sends");
        for copy in [repair, scored, revoked] {
            let mut twice = sound.clone();
            twice.push(RecordedEvent { seq: 6, event: parse_event(&copy) });
            assert_eq!(duplicates(&twice).len(), 1, "{copy}");
        }
        let mut planted = sound.clone();
        plant(Some(PlantedFault::ResendStoredTwice), &mut planted);
        let mut problems = Vec::new();
        let acked: Vec<(u64, Value)> = Vec::new();
        let findings = LedgerFindings::of(&planted, &acked, &[], &mut problems);
        assert_eq!(findings.duplicates_stored, 1);
        assert!(!problems.is_empty());
    }
}
