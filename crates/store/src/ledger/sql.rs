//! The SQL core both backends share: the statements (one text each, `$n`
//! placeholders in order of appearance, which SQLite reads as PostgreSQL
//! does), the columns a stored event becomes, the facts validation reads
//! (R8), and the append loop, written once over [`Tx`], the narrow interface
//! each backend's append transaction implements. What differs stays in the
//! backends: how a transaction begins and ends (BEGIN IMMEDIATE, or a head
//! row locked FOR UPDATE and a NOTIFY), and the one statement whose text must
//! differ (the scoring steps' date collation).

use super::{decode_stored, indexed_points, scoring_step, stored_day_bounds, Appended, LedgerError};
use claimgate_rules::domain::{EventId, InstitutionCode, PractitionerCode, Seq, SuspensionId, ViolationId};
use claimgate_rules::event::{Event, RecordedEvent, Violation};
use claimgate_rules::policy::Policy;
use claimgate_rules::practitioner::{Change, ScoringStep};
use claimgate_rules::refusal::Refusal;
use claimgate_rules::validate::{self, Admission, KnownSuspension, KnownViolation, LedgerFacts};
use std::ops::RangeInclusive;

pub(super) const INSERT: &str =
    "INSERT INTO events (seq, kind, effective, practitioner, institution, violation_id, body, event_id, points)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(super) const EVENTS_SINCE: &str = "SELECT seq, body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2";
pub(super) const PRACTITIONER_HISTORY: &str = "SELECT seq, body FROM events WHERE practitioner = $1 ORDER BY seq";
pub(super) const INSTITUTION_HISTORY: &str =
    "SELECT seq, body FROM events WHERE institution = $1 AND kind LIKE 'institution_%' ORDER BY seq";
/// Many histories at once, for a backend with arrays (PostgreSQL): `part` 1
/// rows are the practitioners' of `$1` (keyed by code), part 2 the
/// institutions' of `$2`; in no order (the reader sorts each by `seq` and
/// keeps those up to the version it builds: a `seq <= $3` here had
/// PostgreSQL scan the primary key's whole range instead of the codes').
#[cfg(feature = "postgres")]
pub(super) const HISTORIES: &str = "
SELECT 1 AS part, practitioner AS key, seq, body FROM events WHERE practitioner = ANY($1)
UNION ALL
SELECT 2, institution, seq, body FROM events WHERE institution = ANY($2) AND kind LIKE 'institution_%'";
pub(super) const FIND_VIOLATION: &str =
    "SELECT seq, body FROM events WHERE violation_id = $1 AND kind = 'violation_scored'";
pub(super) const INSTITUTION_DESIGNATED: &str =
    "SELECT 1 FROM events WHERE institution = $1 AND kind = 'institution_designated' LIMIT 1";
pub(super) const PRACTITIONER_REGISTERED: &str =
    "SELECT 1 FROM events WHERE practitioner = $1 AND kind = 'practitioner_registered' LIMIT 1";
pub(super) const REVOCATION_OF: &str =
    "SELECT seq, body FROM events WHERE violation_id = $1 AND kind = 'violation_revoked' ORDER BY seq LIMIT 1";
/// An insured person's suspension by its id, which is stored in the
/// `violation_id` column (an id column of its own kind, R7a), and its lifting.
pub(super) const FIND_SUSPENSION: &str =
    "SELECT seq, body FROM events WHERE violation_id = $1 AND kind = 'insured_settlement_suspended'";
pub(super) const LIFTING_OF: &str = "SELECT seq, body FROM events WHERE violation_id = $1 \
     AND kind = 'insured_settlement_lifted' ORDER BY seq LIMIT 1";
pub(super) const EVENT_WITH_ID: &str = "SELECT seq, body FROM events WHERE event_id = $1";
/// [`Tx::prefetch`]'s read, for a backend with arrays (PostgreSQL), in one
/// round trip: each row's `part` says which fact it is: 1 the event with an
/// event_id of `$1`; 2 an institution of `$2` designated; 3 a practitioner of
/// `$3` registered; 4 a scoring or revocation of a violation_id of `$4`; 5 a
/// scoring step of a practitioner of `$5` (R11); 6 the violation_id of a
/// revocation filed under a practitioner of `$5` (a revocation is filed under
/// its violation's owner), whose scoring is no standing step (R12).
///
/// Parts 1 to 4 are a lookup per key, by index (`LATERAL` with `LIMIT` or
/// `OFFSET 0`, which the planner does not flatten into a join): left to
/// itself, PostgreSQL planned `= ANY` over a few hundred keys that are mostly
/// new (no row) as a scan of the whole table, in every append transaction, a
/// cost that grows with the ledger; so it did a `NOT EXISTS` for the revoked
/// steps, which the reader now drops itself, from part 6. Parts 5 and 6 read
/// many rows per key, which a bitmap scan of `= ANY` does best.
#[cfg(feature = "postgres")]
pub(super) const BATCH_FACTS: &str = "
SELECT 0 AS part, seq, NULL::text AS body, NULL::text AS key, NULL::text AS kind, NULL::text AS effective,
       NULL::bigint AS points, NULL::text AS violation_id
  FROM claimgate_head WHERE id = 1
UNION ALL
SELECT 1, e.seq, e.body, NULL, NULL, NULL, NULL, NULL
  FROM unnest($1::text[]) k(id)
  CROSS JOIN LATERAL (SELECT seq, body FROM events WHERE event_id = k.id OFFSET 0) e
UNION ALL
SELECT 2, NULL, NULL, k.code, NULL, NULL, NULL, NULL
  FROM unnest($2::text[]) k(code)
  CROSS JOIN LATERAL (SELECT 1 FROM events WHERE institution = k.code AND kind = 'institution_designated' LIMIT 1) d
UNION ALL
SELECT 3, NULL, NULL, k.code, NULL, NULL, NULL, NULL
  FROM unnest($3::text[]) k(code)
  CROSS JOIN LATERAL (SELECT 1 FROM events WHERE practitioner = k.code AND kind = 'practitioner_registered' LIMIT 1) r
UNION ALL
SELECT 4, e.seq, e.body, NULL, NULL, NULL, NULL, NULL
  FROM unnest($4::text[]) k(id)
  CROSS JOIN LATERAL (SELECT seq, body FROM events
                       WHERE violation_id = k.id AND kind IN ('violation_scored', 'violation_revoked') OFFSET 0) e
UNION ALL
SELECT 5, seq, NULL, practitioner, kind, effective, points, violation_id FROM events
  WHERE practitioner = ANY($5) AND kind IN ('violation_scored', 'points_repaired')
UNION ALL
SELECT 6, NULL, NULL, practitioner, NULL, NULL, NULL, violation_id FROM events
  WHERE practitioner = ANY($5) AND kind = 'violation_revoked'";
pub(super) const SCAN_PRACTITIONERS: &str = "SELECT practitioner, seq, body FROM events
     WHERE practitioner IS NOT NULL AND seq <= $1 ORDER BY practitioner, seq";
pub(super) const SCAN_INSTITUTIONS: &str = "SELECT institution, seq, body FROM events
     WHERE institution IS NOT NULL AND kind LIKE 'institution_%' AND seq <= $1 ORDER BY institution, seq";

/// What a failure during validation was doing, for [`LedgerError`]'s message.
const VALIDATING: &str = "validating an event";
const LOOKING_UP_A_VIOLATION: &str = "looking up a violation";
pub(super) const READING_SCORING_STEPS: &str = "reading a practitioner's scoring steps";
pub(super) const APPENDING: &str = "appending an event";

/// One stored event's columns, in [`INSERT`]'s order.
pub(super) struct Columns<'a> {
    pub seq: i64,
    pub kind: &'static str,
    pub effective: String,
    pub practitioner: Option<String>,
    pub institution: Option<String>,
    pub violation_id: Option<&'a str>,
    pub body: String,
    pub event_id: Option<&'a str>,
    pub points: Option<i64>,
}

/// A scoring step's row as the backend read it: kind, effective, seq, points.
pub(super) type StepRow = (String, String, i64, Option<i64>);

/// The reads and the one write an append transaction needs; each backend
/// maps its own errors to [`LedgerError`] naming `doing`.
pub(super) trait Tx {
    /// `(seq, body)` of the first row `sql` selects with `key` as `$1`.
    fn first(
        &mut self,
        sql: &'static str,
        key: &str,
        doing: &'static str,
    ) -> Result<Option<(i64, String)>, LedgerError>;
    /// Whether `sql` selects a row with `key` as `$1`.
    fn exists(&mut self, sql: &'static str, key: &str, doing: &'static str) -> Result<bool, LedgerError>;
    /// The practitioner's standing violations and repairs dated from `first`
    /// to `last` (stored day text), ordered by (effective, seq).
    fn scoring_rows(&mut self, practitioner: &str, first: &str, last: &str) -> Result<Vec<StepRow>, LedgerError>;
    /// Inserts one event's row ([`INSERT`]); a backend may hold rows back
    /// and write them together, before its next read and at [`Tx::finish`].
    fn insert(&mut self, columns: &Columns<'_>) -> Result<(), LedgerError>;
    /// Writes whatever rows [`Tx::insert`] held back.
    fn finish(&mut self) -> Result<(), LedgerError> {
        Ok(())
    }

    /// The facts a batch's validation will ask for most, read at once for
    /// all its keys (a backend where each read is a round trip reads them in
    /// three instead of three per event); `None`: read each when asked.
    fn prefetch(&mut self, _keys: BatchKeys) -> Result<Option<Prefetched>, LedgerError> {
        Ok(None)
    }
}

/// The keys a batch's events name: their event_ids, institutions,
/// practitioners and violation_ids.
#[derive(Debug, Default)]
pub(super) struct BatchKeys {
    pub event_ids: Vec<String>,
    pub institutions: Vec<String>,
    pub practitioners: Vec<String>,
    pub violation_ids: Vec<String>,
}

impl BatchKeys {
    pub(super) fn of(events: &[Event]) -> BatchKeys {
        let mut keys = BatchKeys::default();
        for e in events {
            if let Some(id) = e.event_id() {
                keys.event_ids.push(id.as_str().to_owned());
            }
            if let Some(i) = e.institution() {
                keys.institutions.push(i.to_string());
            }
            if let Some(p) = e.practitioner() {
                keys.practitioners.push(p.to_string());
            }
            match e {
                Event::ViolationScored(v) => keys.violation_ids.push(v.violation_id.as_str().to_owned()),
                Event::ViolationRevoked { violation_id, .. } => {
                    keys.violation_ids.push(violation_id.as_str().to_owned())
                }
                _ => {}
            }
        }
        for list in [&mut keys.event_ids, &mut keys.institutions, &mut keys.practitioners, &mut keys.violation_ids] {
            list.sort_unstable();
            list.dedup();
        }
        keys
    }
}

/// What [`Tx::prefetch`] read, kept current as the batch appends: for every
/// key of [`BatchKeys`], the event with that event_id (if any), whether the
/// institution is designated, whether the practitioner is registered, the
/// violation with that id (and its revocation), and the practitioner's
/// standing scoring steps.
#[derive(Debug, Default)]
pub(super) struct Prefetched {
    pub events_by_id: std::collections::HashMap<String, RecordedEvent>,
    pub designated: std::collections::HashSet<String>,
    pub registered: std::collections::HashSet<String>,
    pub violations: std::collections::HashMap<String, KnownViolation>,
    /// Each covered practitioner's standing steps, with the violation_id of a scored one.
    pub steps: std::collections::HashMap<String, Vec<(ScoringStep, Option<String>)>>,
    /// The practitioner of each violation among `steps` (so a revocation
    /// finds the steps it takes out without its violation being a key).
    step_owners: std::collections::HashMap<String, String>,
    /// The ledger's head the facts were read at.
    pub head: Seq,
    keys: BatchKeys,
}

/// How a backend that reads facts ahead fills them (PostgreSQL's).
#[cfg(feature = "postgres")]
impl Prefetched {
    pub(super) fn new(keys: BatchKeys) -> Prefetched {
        Prefetched { keys, ..Prefetched::default() }
    }

    /// The keys it was read for.
    pub(super) fn keys(&self) -> &BatchKeys {
        &self.keys
    }

    /// Builds `violations` from the scorings and revocations read, ascending by `seq`.
    pub(super) fn add_violation_rows(&mut self, rows: Vec<RecordedEvent>) {
        for r in rows {
            match &r.event {
                Event::ViolationScored(v) => {
                    self.violations.insert(
                        v.violation_id.as_str().to_owned(),
                        KnownViolation { seq: r.seq, violation: v.clone(), revocation: None },
                    );
                }
                Event::ViolationRevoked { violation_id, .. } => {
                    if let Some(k) = self.violations.get_mut(violation_id.as_str()) {
                        k.revocation.get_or_insert(r);
                    }
                }
                _ => {}
            }
        }
    }

    /// Indexes `steps` by violation, once they are all read.
    pub(super) fn index_steps(&mut self) {
        for (practitioner, steps) in &self.steps {
            for id in steps.iter().filter_map(|(_, id)| id.as_ref()) {
                self.step_owners.insert(id.clone(), practitioner.clone());
            }
        }
    }

    /// Brings facts read at `self.head` up to date with the events appended
    /// since (`gap`, ascending from `head + 1`): afterwards they are the facts
    /// at the gap's last `seq`, as if read then. Events about keys it does
    /// not cover add entries no lookup consults.
    pub(super) fn caught_up(&mut self, gap: &[RecordedEvent]) {
        for r in gap {
            assert_eq!(r.seq, self.head + 1, "a gap read ahead is every seq after the facts' head, in order");
            self.appended(r.seq, &r.event);
        }
    }
}

impl Prefetched {
    /// Notes an event appended after the facts were read (by this batch or,
    /// through [`Self::caught_up`], before it), so later ones see it.
    fn appended(&mut self, seq: Seq, event: &Event) {
        self.head = seq;
        if let Some(id) = event.event_id() {
            self.events_by_id.insert(id.as_str().to_owned(), RecordedEvent { seq, event: event.clone() });
        }
        match event {
            Event::InstitutionDesignated { institution, .. } => {
                self.designated.insert(institution.to_string());
            }
            Event::PractitionerRegistered { practitioner, .. } => {
                self.registered.insert(practitioner.to_string());
            }
            Event::ViolationScored(v) => {
                let id = v.violation_id.as_str().to_owned();
                self.violations.insert(id.clone(), KnownViolation { seq, violation: v.clone(), revocation: None });
                let step = ScoringStep { effective: v.effective, seq, change: Change::Scored(v.points) };
                self.step_owners.insert(id.clone(), v.practitioner.to_string());
                self.steps.entry(v.practitioner.to_string()).or_default().push((step, Some(id)));
            }
            Event::PointsRepaired { practitioner, points, effective, .. } => {
                let step = ScoringStep { effective: *effective, seq, change: Change::Repaired(*points) };
                self.steps.entry(practitioner.to_string()).or_default().push((step, None));
            }
            Event::ViolationRevoked { violation_id, .. } => {
                if let Some(k) = self.violations.get_mut(violation_id.as_str()) {
                    k.revocation = Some(RecordedEvent { seq, event: event.clone() });
                }
                // R12: a revoked violation no longer counts (its violation
                // need not be a key: a revocation read in a gap).
                if let Some(steps) = self.step_owners.get(violation_id.as_str()).and_then(|p| self.steps.get_mut(p)) {
                    steps.retain(|(_, id)| id.as_deref() != Some(violation_id.as_str()));
                }
            }
            _ => {}
        }
    }

    fn covers(list: &[String], key: &str) -> bool {
        list.binary_search_by(|k| k.as_str().cmp(key)).is_ok()
    }

    /// The violation under `id`, if the batch's keys cover it.
    fn violation(&self, id: &ViolationId) -> Option<Option<&KnownViolation>> {
        Prefetched::covers(&self.keys.violation_ids, id.as_str()).then(|| self.violations.get(id.as_str()))
    }
}

/// The violation scored under `id`, with its `seq`.
pub(super) fn find_violation(tx: &mut impl Tx, id: &ViolationId) -> Result<Option<(Seq, Violation)>, LedgerError> {
    let Some((seq, body)) = tx.first(FIND_VIOLATION, id.as_str(), LOOKING_UP_A_VIOLATION)? else { return Ok(None) };
    // The policy does not affect how a violation parses.
    match decode_stored(seq, &body, &Policy::default())?.event {
        Event::ViolationScored(v) => Ok(Some((seq as Seq, v))),
        _ => Err(LedgerError::Corrupt { seq: seq as Seq, message: "indexed as a violation but is not one".into() }),
    }
}

/// Validates each event in order (R8, against what the transaction sees,
/// the events before it in this batch included) and inserts those admitted
/// after `head`. Returns each event's outcome and the new head: the caller
/// commits when the head moved and rolls back when it did not (nothing was
/// stored), on both backends alike.
///
/// `ready`: the batch's facts read ahead and caught up to `head` (see
/// [`Prefetched::caught_up`]); `None` reads them here when they pay.
pub(super) fn append_all(
    tx: &mut impl Tx,
    mut head: Seq,
    events: &[Event],
    policy: &Policy,
    ready: Option<Prefetched>,
) -> Result<(Vec<Result<Appended, Refusal>>, Seq), LedgerError> {
    let mut outcomes = Vec::with_capacity(events.len());
    let mut known = match ready {
        Some(known) => {
            assert_eq!(known.head, head, "facts read ahead are caught up to the head before the batch is judged");
            Some(known)
        }
        None if events.len() > 1 => {
            let known = tx.prefetch(BatchKeys::of(events))?;
            assert!(known.as_ref().is_none_or(|k| k.head == head), "facts read under the head's lock are at it");
            known
        }
        None => None,
    };
    for event in events {
        let outcome =
            match validate::validate(event, policy, &mut Facts { tx: &mut *tx, policy, known: known.as_ref() })? {
                Err(refusal) => Err(refusal),
                Ok(Admission::AlreadyRecorded(seq)) => Ok(Appended { seq, already_recorded: true }),
                Ok(Admission::Append) => {
                    head += 1;
                    insert(tx, head, event, known.as_ref())?;
                    if let Some(known) = known.as_mut() {
                        known.appended(head, event);
                    }
                    Ok(Appended { seq: head, already_recorded: false })
                }
            };
        outcomes.push(outcome);
    }
    tx.finish()?;
    Ok((outcomes, head))
}

/// Inserts `event` at `seq`. The unique index on `event_id` would refuse a
/// second event with one id; validation (R7a) answered a re-send before this.
fn insert(tx: &mut impl Tx, seq: Seq, event: &Event, known: Option<&Prefetched>) -> Result<(), LedgerError> {
    let owner = match event {
        // Filed under the practitioner the revoked violation belongs to.
        Event::ViolationRevoked { violation_id, .. } => match known.and_then(|k| k.violation(violation_id)) {
            Some(found) => found.map(|k| k.violation.practitioner),
            None => find_violation(tx, violation_id)?.map(|(_, v)| v.practitioner),
        },
        _ => None,
    };
    tx.insert(&columns(seq, event, owner))
}

/// The row `event` is stored as at `seq`; `revoked_owner` is the
/// practitioner whose violation a revocation revokes (its row is filed
/// under them), ignored for any other event.
pub(super) fn columns(seq: Seq, event: &Event, revoked_owner: Option<PractitionerCode>) -> Columns<'_> {
    let (practitioner, violation_id) = match event {
        Event::ViolationScored(v) => (Some(v.practitioner), Some(v.violation_id.as_str())),
        Event::ViolationRevoked { violation_id, .. } => (revoked_owner, Some(violation_id.as_str())),
        // A suspension's id goes in the id column, under its own kinds.
        Event::InsuredSettlementSuspended(s) => (None, Some(s.suspension_id.as_str())),
        Event::InsuredSettlementLifted { suspension_id, .. } => (None, Some(suspension_id.as_str())),
        other => (other.practitioner(), None),
    };
    Columns {
        seq: i64::try_from(seq).expect("a seq the ledger assigns fits a bigint"),
        kind: event.kind(),
        effective: event.effective().to_string(),
        practitioner: practitioner.map(|p| p.to_string()),
        institution: event.institution().map(|i| i.to_string()),
        violation_id,
        body: event.to_json(),
        event_id: event.event_id().map(EventId::as_str),
        points: indexed_points(event),
    }
}

/// [`LedgerFacts`] read from inside the append transaction.
struct Facts<'a, T: Tx> {
    tx: &'a mut T,
    policy: &'a Policy,
    /// The batch's prefetched facts, if the backend read them.
    known: Option<&'a Prefetched>,
}

impl<T: Tx> Facts<'_, T> {
    /// The one event `sql` selects (`seq, body`) by `key`, if any.
    fn one(&mut self, sql: &'static str, key: &str) -> Result<Option<RecordedEvent>, LedgerError> {
        let row = self.tx.first(sql, key, VALIDATING)?;
        row.map(|(seq, body)| decode_stored(seq, &body, self.policy)).transpose()
    }
}

impl<T: Tx> LedgerFacts for Facts<'_, T> {
    type Error = LedgerError;

    fn institution_designated(&mut self, code: InstitutionCode) -> Result<bool, LedgerError> {
        let key = code.to_string();
        match self.known {
            Some(k) if Prefetched::covers(&k.keys.institutions, &key) => Ok(k.designated.contains(&key)),
            _ => self.tx.exists(INSTITUTION_DESIGNATED, &key, VALIDATING),
        }
    }

    fn practitioner_registered(&mut self, code: PractitionerCode) -> Result<bool, LedgerError> {
        let key = code.to_string();
        match self.known {
            Some(k) if Prefetched::covers(&k.keys.practitioners, &key) => Ok(k.registered.contains(&key)),
            _ => self.tx.exists(PRACTITIONER_REGISTERED, &key, VALIDATING),
        }
    }

    fn event_with_id(&mut self, id: &EventId) -> Result<Option<RecordedEvent>, LedgerError> {
        match self.known {
            Some(k) if Prefetched::covers(&k.keys.event_ids, id.as_str()) => {
                Ok(k.events_by_id.get(id.as_str()).cloned())
            }
            _ => self.one(EVENT_WITH_ID, id.as_str()),
        }
    }

    fn violation(&mut self, id: &ViolationId) -> Result<Option<KnownViolation>, LedgerError> {
        if let Some(found) = self.known.and_then(|k| k.violation(id)) {
            return Ok(found.cloned());
        }
        let Some((seq, violation)) = find_violation(self.tx, id)? else { return Ok(None) };
        let revocation = self.one(REVOCATION_OF, id.as_str())?;
        Ok(Some(KnownViolation { seq, violation, revocation }))
    }

    fn suspension(&mut self, id: &SuspensionId) -> Result<Option<KnownSuspension>, LedgerError> {
        let Some(found) = self.one(FIND_SUSPENSION, id.as_str())? else { return Ok(None) };
        let Event::InsuredSettlementSuspended(suspension) = found.event else {
            return Err(LedgerError::Corrupt {
                seq: found.seq,
                message: "indexed as a suspension but is not one".into(),
            });
        };
        let lifting = self.one(LIFTING_OF, id.as_str())?;
        Ok(Some(KnownSuspension { seq: found.seq, suspension, lifting }))
    }

    fn scoring_steps(
        &mut self,
        code: PractitionerCode,
        years: RangeInclusive<i32>,
    ) -> Result<Vec<ScoringStep>, LedgerError> {
        let key = code.to_string();
        if let Some(k) = self.known.filter(|k| Prefetched::covers(&k.keys.practitioners, &key)) {
            let mut steps: Vec<ScoringStep> = k
                .steps
                .get(&key)
                .into_iter()
                .flatten()
                .map(|(step, _)| *step)
                .filter(|s| years.contains(&s.effective.year()))
                .collect();
            steps.sort_by_key(|s| (s.effective, s.seq));
            return Ok(steps);
        }
        let (first, last) = stored_day_bounds(&years);
        let rows = self.tx.scoring_rows(&key, &first, &last)?;
        rows.iter().map(|(kind, effective, seq, points)| scoring_step(kind, effective, *seq, *points)).collect()
    }
}

/// Receives one entity's history during a scan: its code as stored, events.
pub(super) type GroupSink<'a> = dyn FnMut(String, &[RecordedEvent]) -> Result<(), LedgerError> + 'a;

/// A scan's rows `(key, seq, body)`, ordered by key then seq, handed on as
/// one history per key.
pub(super) struct Groups<'a> {
    policy: &'a Policy,
    current: Option<String>,
    events: Vec<RecordedEvent>,
}

impl<'a> Groups<'a> {
    pub(super) fn new(policy: &'a Policy) -> Groups<'a> {
        Groups { policy, current: None, events: Vec::new() }
    }

    /// One row; a new key first hands on the finished history of the last.
    pub(super) fn row(&mut self, key: String, seq: i64, body: &str, on: &mut GroupSink<'_>) -> Result<(), LedgerError> {
        if self.current.as_deref() != Some(key.as_str()) {
            if let Some(done) = self.current.replace(key) {
                on(done, &self.events)?;
            }
            self.events.clear();
        }
        self.events.push(decode_stored(seq, body, self.policy)?);
        Ok(())
    }

    /// Hands on the last history.
    pub(super) fn finish(self, on: &mut GroupSink<'_>) -> Result<(), LedgerError> {
        match self.current {
            Some(done) => on(done, &self.events),
            None => Ok(()),
        }
    }
}

/// Both scans of a whole-ledger read, in one snapshot the caller holds:
/// `scan(sql, sink)` runs one of [`SCAN_PRACTITIONERS`] and
/// [`SCAN_INSTITUTIONS`] through [`Groups`] into `sink`; each history is
/// handed on under its code, a stored code that does not parse being damage.
pub(super) fn scan_histories(
    mut scan: impl FnMut(&'static str, &mut GroupSink<'_>) -> Result<(), LedgerError>,
    mut on_practitioner: impl FnMut(PractitionerCode, &[RecordedEvent]),
    mut on_institution: impl FnMut(InstitutionCode, &[RecordedEvent]),
) -> Result<(), LedgerError> {
    let bad_code = |key: &str| LedgerError::Corrupt { seq: 0, message: format!("indexed code `{key}` is not valid") };
    scan(SCAN_PRACTITIONERS, &mut |key, events| {
        on_practitioner(PractitionerCode::parse(&key).map_err(|_| bad_code(&key))?, events);
        Ok(())
    })?;
    scan(SCAN_INSTITUTIONS, &mut |key, events| {
        on_institution(InstitutionCode::parse(&key).map_err(|_| bad_code(&key))?, events);
        Ok(())
    })
}
