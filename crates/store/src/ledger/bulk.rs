//! Bulk loading: millions of events into an empty ledger at once (a roster
//! import, a restore, the demo's generation), an order of magnitude faster
//! than appending them batch by batch, with the same verdicts.
//!
//! What makes an append slow at national scale is not validation but the
//! ledger's secondary indexes: each event lands at a random place in five
//! of them (event_ids are content hashes, codes arrive in any order), so
//! every batch rewrites thousands of scattered pages. A bulk load writes the
//! rows in `seq` order with those indexes dropped and builds them once, by
//! sorting, at the end ([`BulkLoad::finish`]); meanwhile R8 reads its facts
//! from memory ([`Memory`], what this load appended: the ledger was empty).
//! Every event still passes [`validate::validate`], in order, exactly as an
//! append would judge it against the same history.
//!
//! All or nothing: until `finish` returns, the ledger is as it was (empty).
//! The embedded ledger is built in a file beside it and moved into place;
//! PostgreSQL loads in one transaction that holds the head lock and the
//! dropped indexes' locks (other nodes' appends and reads of `events` wait
//! for it), so a load that is interrupted, killed or refused leaves nothing
//! behind, and running it again starts over. It is meant for a first load,
//! before nodes serve.

use super::{decode_stored, sql, Appended, Ledger, LedgerError, MAX_APPEND_BATCH};
use claimgate_rules::domain::{EventId, InstitutionCode, PractitionerCode, Seq, SuspensionId, ViolationId};
use claimgate_rules::event::{Event, RecordedEvent};
use claimgate_rules::policy::Policy;
use claimgate_rules::practitioner::{Change, ScoringStep};
use claimgate_rules::refusal::Refusal;
use claimgate_rules::validate::{self, Admission, KnownSuspension, KnownViolation, LedgerFacts};
use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;

/// The backend's half of a bulk load: where the rows go.
pub(super) trait Sink {
    /// Writes one batch's rows, ascending by `seq`, following the last batch's.
    fn write(&mut self, rows: &[sql::Columns<'_>]) -> Result<(), LedgerError>;
    /// The stored body of the event an earlier batch wrote at `seq`.
    fn body_at(&mut self, seq: Seq) -> Result<Option<String>, LedgerError>;
    /// Builds the indexes, makes everything durable and the ledger's, and
    /// opens it; `head` is the last `seq` written. `progress` hears each step.
    fn finish(self: Box<Self>, head: Seq, progress: &mut dyn FnMut(&str)) -> Result<Ledger, LedgerError>;
}

/// A bulk load in progress (see the module's documentation).
pub struct BulkLoad {
    sink: Box<dyn Sink>,
    memory: Memory,
    policy: Policy,
    head: Seq,
}

impl BulkLoad {
    pub(super) fn new(sink: Box<dyn Sink>, policy: Policy) -> BulkLoad {
        BulkLoad { sink, memory: Memory::default(), policy, head: 0 }
    }

    /// The policy the load validates with (the ledger's).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The last `seq` given so far.
    pub fn head(&self) -> Seq {
        self.head
    }

    /// Validates each event in order (R8, against every event this load
    /// admitted before it) and writes those admitted; one outcome per event,
    /// as [`Ledger::append_batch`] would give on the same history. Nothing is
    /// the ledger's before [`BulkLoad::finish`].
    pub fn append_batch(&mut self, events: &[Event]) -> Result<Vec<Result<Appended, Refusal>>, LedgerError> {
        if events.len() > MAX_APPEND_BATCH {
            return Err(LedgerError::BatchTooLarge { len: events.len(), max: MAX_APPEND_BATCH });
        }
        let written = self.head;
        let mut pending: Vec<&Event> = Vec::new();
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            let mut facts = Lookup {
                memory: &self.memory,
                sink: self.sink.as_mut(),
                pending: &pending,
                written,
                policy: &self.policy,
            };
            let outcome = match validate::validate(event, &self.policy, &mut facts)? {
                Err(refusal) => Err(refusal),
                Ok(Admission::AlreadyRecorded(seq)) => Ok(Appended { seq, already_recorded: true }),
                Ok(Admission::Append) => {
                    self.head += 1;
                    self.memory.note(self.head, event);
                    pending.push(event);
                    Ok(Appended { seq: self.head, already_recorded: false })
                }
            };
            outcomes.push(outcome);
        }
        let rows: Vec<sql::Columns<'_>> = pending
            .iter()
            .zip(written + 1..)
            .map(|(event, seq)| sql::columns(seq, event, self.memory.revoked_owner(event)))
            .collect();
        self.sink.write(&rows)?;
        Ok(outcomes)
    }

    /// Indexes what was loaded and makes it the ledger, durably; returns the
    /// ledger, open. `progress` hears each step of the indexing.
    pub fn finish(self, mut progress: impl FnMut(&str)) -> Result<Ledger, LedgerError> {
        self.sink.finish(self.head, &mut progress)
    }
}

/// What R8 needs to know of the events a load admitted, kept in memory. An
/// event_id is kept as its 128-bit hash with the `seq` it came with (16 + 8
/// bytes for each of 25 million events), and a hit is confirmed by reading
/// that event back; two ids that share a hash, never seen, would be kept
/// whole in `colliding`.
#[derive(Default)]
struct Memory {
    ids: HashMap<u128, Seq>,
    colliding: HashMap<String, Seq>,
    designated: HashSet<InstitutionCode>,
    registered: HashSet<PractitionerCode>,
    violations: HashMap<ViolationId, KnownViolation>,
    /// Insured persons' suspensions and their liftings (R24).
    suspensions: HashMap<SuspensionId, KnownSuspension>,
    /// Each practitioner's violations and repairs, in `seq` order.
    steps: HashMap<PractitionerCode, Vec<ScoringStep>>,
    /// The `seq`s of revoked violations (R12), which no longer count.
    revoked: HashSet<Seq>,
}

fn id_hash(id: &EventId) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_str().as_bytes())
}

impl Memory {
    /// Notes `event`, just admitted at `seq`.
    fn note(&mut self, seq: Seq, event: &Event) {
        if let Some(id) = event.event_id() {
            if let Some(other) = self.ids.insert(id_hash(id), seq) {
                // Another id with this hash: keep this one whole, the first under the hash.
                self.ids.insert(id_hash(id), other);
                self.colliding.insert(id.as_str().to_owned(), seq);
            }
        }
        match event {
            Event::InstitutionDesignated { institution, .. } => {
                self.designated.insert(*institution);
            }
            Event::PractitionerRegistered { practitioner, .. } => {
                self.registered.insert(*practitioner);
            }
            Event::ViolationScored(v) => {
                self.violations
                    .insert(v.violation_id.clone(), KnownViolation { seq, violation: v.clone(), revocation: None });
                let step = ScoringStep { effective: v.effective, seq, change: Change::Scored(v.points) };
                self.steps.entry(v.practitioner).or_default().push(step);
            }
            Event::PointsRepaired { practitioner, points, effective, .. } => {
                let step = ScoringStep { effective: *effective, seq, change: Change::Repaired(*points) };
                self.steps.entry(*practitioner).or_default().push(step);
            }
            Event::ViolationRevoked { violation_id, .. } => {
                if let Some(known) = self.violations.get_mut(violation_id) {
                    known.revocation = Some(RecordedEvent { seq, event: event.clone() });
                    self.revoked.insert(known.seq);
                }
            }
            Event::InsuredSettlementSuspended(s) => {
                self.suspensions
                    .insert(s.suspension_id.clone(), KnownSuspension { seq, suspension: s.clone(), lifting: None });
            }
            Event::InsuredSettlementLifted { suspension_id, .. } => {
                if let Some(known) = self.suspensions.get_mut(suspension_id) {
                    known.lifting = Some(RecordedEvent { seq, event: event.clone() });
                }
            }
            _ => {}
        }
    }

    /// Whose violation a revocation revokes (its row is filed under them).
    fn revoked_owner(&self, event: &Event) -> Option<PractitionerCode> {
        match event {
            Event::ViolationRevoked { violation_id, .. } => {
                self.violations.get(violation_id).map(|k| k.violation.practitioner)
            }
            _ => None,
        }
    }
}

/// [`LedgerFacts`] from a load's memory, reading an event back from the
/// sink (or from the batch not yet written) only when R7a needs it whole.
struct Lookup<'a> {
    memory: &'a Memory,
    sink: &'a mut dyn Sink,
    /// This batch's admitted events, at `written + 1` on.
    pending: &'a [&'a Event],
    written: Seq,
    policy: &'a Policy,
}

impl Lookup<'_> {
    fn event_at(&mut self, seq: Seq) -> Result<RecordedEvent, LedgerError> {
        if seq > self.written {
            let event = self.pending[(seq - self.written - 1) as usize];
            return Ok(RecordedEvent { seq, event: event.clone() });
        }
        let body = self.sink.body_at(seq)?.ok_or_else(|| LedgerError::Corrupt {
            seq,
            message: "a bulk load wrote this event but cannot read it back".into(),
        })?;
        decode_stored(seq as i64, &body, self.policy)
    }
}

impl LedgerFacts for Lookup<'_> {
    type Error = LedgerError;

    fn institution_designated(&mut self, code: InstitutionCode) -> Result<bool, LedgerError> {
        Ok(self.memory.designated.contains(&code))
    }

    fn practitioner_registered(&mut self, code: PractitionerCode) -> Result<bool, LedgerError> {
        Ok(self.memory.registered.contains(&code))
    }

    fn event_with_id(&mut self, id: &EventId) -> Result<Option<RecordedEvent>, LedgerError> {
        if let Some(&seq) = self.memory.colliding.get(id.as_str()) {
            return self.event_at(seq).map(Some);
        }
        let Some(&seq) = self.memory.ids.get(&id_hash(id)) else { return Ok(None) };
        let found = self.event_at(seq)?;
        Ok((found.event.event_id() == Some(id)).then_some(found))
    }

    fn violation(&mut self, id: &ViolationId) -> Result<Option<KnownViolation>, LedgerError> {
        Ok(self.memory.violations.get(id).cloned())
    }

    fn suspension(&mut self, id: &SuspensionId) -> Result<Option<KnownSuspension>, LedgerError> {
        Ok(self.memory.suspensions.get(id).cloned())
    }

    fn scoring_steps(
        &mut self,
        code: PractitionerCode,
        years: RangeInclusive<i32>,
    ) -> Result<Vec<ScoringStep>, LedgerError> {
        let Some(steps) = self.memory.steps.get(&code) else { return Ok(Vec::new()) };
        let mut standing: Vec<ScoringStep> = steps
            .iter()
            .filter(|s| years.contains(&s.effective.year()))
            .filter(|s| !(matches!(s.change, Change::Scored(_)) && self.memory.revoked.contains(&s.seq)))
            .cloned()
            .collect();
        standing.sort_by_key(|s| (s.effective, s.seq));
        Ok(standing)
    }
}
