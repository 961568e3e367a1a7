//! What the campaigns compare against: the ledger as stored (read with the
//! library after the gate has stopped) and the reference rules engine
//! (`claimgate::rules::World`) evaluated on it at any `seq`.
//!
//! A decision about practitioner P at institution I depends only on P's
//! events (revocations included, by the violation's owner) and I's own
//! institution events, so the reference at `seq` S is the World of those
//! events with `seq` ≤ S: exact, and cheap enough for a million answers.

use claimgate::claim::parse_claim;
use claimgate::domain::{InstitutionCode, PractitionerCode, Seq};
use claimgate::event::{Event, RecordedEvent};
use claimgate::ledger::Ledger;
use claimgate::policy::Policy;
use claimgate::rules::World;
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
    practitioners: HashMap<PractitionerCode, Vec<RecordedEvent>>,
    institutions: HashMap<InstitutionCode, Vec<RecordedEvent>>,
    policy: Policy,
}

impl Reference {
    pub fn new(events: &[RecordedEvent]) -> Reference {
        let mut owner = HashMap::new();
        let mut practitioners: HashMap<PractitionerCode, Vec<RecordedEvent>> = HashMap::new();
        let mut institutions: HashMap<InstitutionCode, Vec<RecordedEvent>> = HashMap::new();
        for r in events {
            let who = match &r.event {
                Event::ViolationScored(v) => {
                    owner.entry(v.violation_id.clone()).or_insert(v.practitioner);
                    Some(v.practitioner)
                }
                Event::ViolationRevoked { violation_id, .. } => owner.get(violation_id).copied(),
                e => e.practitioner(),
            };
            match (who, r.event.institution()) {
                (Some(p), _) => practitioners.entry(p).or_default().push(r.clone()),
                (None, Some(i)) => institutions.entry(i).or_default().push(r.clone()),
                (None, None) => {}
            }
        }
        Reference { practitioners, institutions, policy: Policy::default() }
    }

    /// The reference answer (verdict, reason, waived, institution_grade) to
    /// `claim` (a claim line as sent) at ledger `seq`.
    pub fn answer(&self, claim: &Value, seq: Seq) -> Value {
        let claim = parse_claim(claim).expect("the campaigns send only well-formed claims");
        let upto = |events: Option<&Vec<RecordedEvent>>| -> Vec<RecordedEvent> {
            let events = events.map(Vec::as_slice).unwrap_or_default();
            events[..events.partition_point(|r| r.seq <= seq)].to_vec()
        };
        let mut relevant = upto(self.practitioners.get(&claim.practitioner));
        relevant.extend(upto(self.institutions.get(&claim.institution)));
        let decision = World::from_events(&relevant, &self.policy).decide(&claim);
        json!({"verdict": decision.verdict, "reason": decision.reason, "waived": decision.waived,
            "institution_grade": decision.institution_grade})
    }
}

/// The fields of a gate's answer that the reference decides.
pub fn decided(answer: &Value) -> Value {
    json!({"verdict": answer["verdict"], "reason": answer["reason"], "waived": answer["waived"],
        "institution_grade": answer["institution_grade"]})
}
