//! What the campaigns compare against: the ledger as stored (read with the
//! library after the gate has stopped) and the reference rules engine
//! (`claimgate::rules::World`) evaluated on it at any `seq`.
//!
//! A decision about practitioner P at institution I depends only on P's
//! events (revocations included, by the violation's owner) and I's own
//! institution events, so the reference at `seq` S derives the two standings
//! from those events with `seq` ≤ S and decides, as `rules::World` does:
//! exact, and cheap enough for millions of answers.

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
