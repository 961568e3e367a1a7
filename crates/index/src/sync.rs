//! Keeping the index current: [`IndexHandle`] holds the version readers use
//! (arc-swap: a load never blocks and never sees a half-built version);
//! [`Syncer`] tails the ledger by `seq`, re-derives only the practitioners and
//! institutions the new events touch (histories it holds from the last steps
//! plus the new events; the others in one read), and publishes the next
//! version.

use super::compact::{CompactInstitution, CompactPractitioner};
use super::IndexVersion;
use arc_swap::ArcSwap;
use claimgate_rules::changes;
use claimgate_rules::domain::{CivilDate, InstitutionCode, PractitionerCode, Seq, ViolationId};
use claimgate_rules::event::{Event, RecordedEvent};
use claimgate_rules::policy::Policy;
use claimgate_rules::{filed_under, institution, practitioner, Filed};
use claimgate_store::changes::ChangeLog;
use claimgate_store::ledger::{Lane, LaneReads, Ledger, LedgerError};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Most ledger events folded into one published version.
pub const MAX_SYNC_BATCH: usize = 4_096;
// Each event touches at most one entity, so a batch's histories fit one read.
const _: () = assert!(MAX_SYNC_BATCH <= claimgate_store::ledger::MAX_HISTORY_CODES);
/// Most events a step derives to record its standing changes itself
/// (counting each touched history once per event of it in the step, and
/// once more); a step over it leaves them to the change log's own thread,
/// so a practitioner with a long history and many events at once never
/// holds the index back.
pub const MAX_INLINE_CHANGE_WORK: usize = 1 << 20;
/// Most events the syncer keeps decoded in [`HistoryCache`] (about 100 MB).
pub const MAX_CACHED_EVENTS: usize = 262_144;
/// Overlay size (entities) past which the syncer folds it into a new base.
pub const MERGE_THRESHOLD: usize = 262_144;

/// The current index version, swapped atomically.
pub struct IndexHandle {
    current: ArcSwap<IndexVersion>,
}

impl IndexHandle {
    /// A handle serving `version`.
    pub fn new(version: IndexVersion) -> IndexHandle {
        IndexHandle { current: ArcSwap::from_pointee(version) }
    }

    /// The current version, held as long as the caller keeps the `Arc` (use
    /// this across long work; never hold an arc-swap guard across an await).
    pub fn load(&self) -> Arc<IndexVersion> {
        self.current.load_full()
    }

    /// A cheap, short-lived view of the current version for one check.
    pub fn peek(&self) -> arc_swap::Guard<Arc<IndexVersion>> {
        self.current.load()
    }

    /// Publishes `next`; `seq` never goes back.
    pub fn publish(&self, next: IndexVersion) {
        let current = self.current.load();
        assert!(next.seq() >= current.seq(), "index seq would go back: {} -> {}", current.seq(), next.seq());
        self.current.store(Arc::new(next));
    }
}

/// Applies ledger events to an [`IndexHandle`].
pub struct Syncer {
    ledger: Arc<Ledger>,
    handle: Arc<IndexHandle>,
    merge_threshold: usize,
    /// A base being rebuilt with the overlay folded in, off the sync path.
    merge: std::sync::Mutex<Option<Merge>>,
    cache: std::sync::Mutex<HistoryCache>,
    /// Events the cache holds at most ([`MAX_CACHED_EVENTS`]; tests use small ones).
    cache_limit: usize,
    /// Where each step's standing changes go, when the log is at the
    /// version the step starts from ([`crate::changes`] brings it there),
    /// and today's date to record them under (the caller's clock).
    changes: Option<(Arc<ChangeLog>, Today)>,
}

/// The histories of entities the last steps touched, decoded, as they stand
/// at `at` (the version the syncer published last): the next step touching
/// one appends the new events it tails instead of reading and decoding the
/// whole history again (what an append-heavy node spent most of its sync
/// on). Valid only for the version it was kept for, so a step from any other
/// version starts it afresh; bounded by [`MAX_CACHED_EVENTS`].
#[derive(Default)]
struct HistoryCache {
    at: Seq,
    practitioners: HashMap<PractitionerCode, Vec<RecordedEvent>>,
    institutions: HashMap<InstitutionCode, Vec<RecordedEvent>>,
    /// Events held (an upper bound: counted as they arrive).
    events: usize,
}

impl HistoryCache {
    fn clear(&mut self, at: Seq) {
        *self = HistoryCache { at, ..HistoryCache::default() };
    }
}

/// A background merge: the version it started from, and the thread building
/// that version's state as a new base.
struct Merge {
    from: Arc<IndexVersion>,
    thread: std::thread::JoinHandle<IndexVersion>,
}

impl Syncer {
    pub fn new(ledger: Arc<Ledger>, handle: Arc<IndexHandle>) -> Syncer {
        Syncer {
            ledger,
            handle,
            merge_threshold: MERGE_THRESHOLD,
            merge: std::sync::Mutex::new(None),
            cache: std::sync::Mutex::new(HistoryCache::default()),
            cache_limit: MAX_CACHED_EVENTS,
            changes: None,
        }
    }

    /// Whether a background merge is still building (the next step after it
    /// finishes folds it in); tests wait on this rather than sleep.
    pub fn merging(&self) -> bool {
        self.merge.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|m| !m.thread.is_finished())
    }

    /// Records each step's standing changes in `log` while the log is at the
    /// version the step starts from (from the histories the step holds
    /// anyway; a log behind is brought up by [`crate::changes::catch_up_step`]).
    pub fn with_changes(mut self, log: Arc<ChangeLog>, today: Today) -> Syncer {
        self.changes = Some((log, today));
        self
    }

    /// The most events the history cache keeps (0: none past a step).
    pub fn with_history_cache(mut self, events: usize) -> Syncer {
        self.cache_limit = events;
        self
    }

    /// The overlay size that starts a background merge (tests use small ones).
    pub fn with_merge_threshold(mut self, entities: usize) -> Syncer {
        self.merge_threshold = entities.max(1);
        self
    }

    /// Applies at most [`MAX_SYNC_BATCH`] new events and publishes one
    /// version; returns its `seq`, or `None` if there was nothing new.
    pub fn step(&self) -> Result<Option<Seq>, LedgerError> {
        let current = self.handle.load();
        let events = self.ledger.events_since(current.seq(), MAX_SYNC_BATCH)?;
        let Some(last) = events.last().map(|r| r.seq) else { return Ok(None) };
        let next = self.next_version(&current, &events, last)?;
        self.handle.publish(next);
        Ok(Some(last))
    }

    /// Applies everything the ledger holds now; returns the published `seq`.
    pub fn catch_up(&self) -> Result<Seq, LedgerError> {
        while self.step()?.is_some() {}
        Ok(self.handle.load().seq())
    }

    fn next_version(
        &self,
        current: &IndexVersion,
        events: &[RecordedEvent],
        last: Seq,
    ) -> Result<IndexVersion, LedgerError> {
        // A cached history plus these events is the ledger's history.
        let Touched { practitioners, institutions, owners } = Touched::by(self.ledger.on(Lane::Sync), events)?;
        let policy = self.ledger.policy();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.at != current.seq() {
            // Not the version the cache was kept for: start it afresh.
            cache.clear(current.seq());
        }
        // The histories the cache lacks in one read (a round trip on
        // PostgreSQL, not one per entity), and only events up to `last`: the
        // version must reflect exactly seq <= last. That read already holds
        // this batch's events; a cached history gets them appended.
        let missing_p: Vec<PractitionerCode> =
            practitioners.keys().filter(|c| !cache.practitioners.contains_key(*c)).copied().collect();
        let missing_i: Vec<InstitutionCode> =
            institutions.keys().filter(|c| !cache.institutions.contains_key(*c)).copied().collect();
        let read = self.ledger.on(Lane::Sync).histories_upto(&missing_p, &missing_i, last)?;
        for (&code, new) in &practitioners {
            if let Some(history) = cache.practitioners.get_mut(&code) {
                history.extend(new.iter().map(|r| (*r).clone()));
            }
        }
        for (&code, new) in &institutions {
            if let Some(history) = cache.institutions.get_mut(&code) {
                history.extend(new.iter().map(|r| (*r).clone()));
            }
        }
        cache.events += events.len();
        for (code, history) in missing_p.into_iter().zip(read.practitioners) {
            cache.events += history.len();
            cache.practitioners.insert(code, history);
        }
        for (code, history) in missing_i.into_iter().zip(read.institutions) {
            cache.events += history.len();
            cache.institutions.insert(code, history);
        }
        if let Some((log, today)) = &self.changes {
            // The work of the batch's changes: each touched history derived
            // once per event of it, and once more.
            let work: usize = practitioners
                .iter()
                .map(|(c, new)| (new.len() + 1) * cache.practitioners[c].len())
                .chain(institutions.iter().map(|(c, new)| (new.len() + 1) * cache.institutions[c].len()))
                .sum();
            if work <= MAX_INLINE_CHANGE_WORK {
                let batch = Batch { after: current.seq(), upto: last, events, owners: &owners, today: today() };
                record_changes(log, &batch, &cache, policy);
            }
        }
        let mut changed_p = Vec::with_capacity(practitioners.len());
        for &code in practitioners.keys() {
            let standing = practitioner::derive(code, &cache.practitioners[&code], policy);
            if standing.registered_ever {
                changed_p.push((code, CompactPractitioner::from_standing(&standing)));
            }
        }
        let mut changed_i = Vec::with_capacity(institutions.len());
        for &code in institutions.keys() {
            let standing = institution::derive(code, &cache.institutions[&code]);
            if !standing.designations.is_empty() {
                changed_i.push((code, CompactInstitution::from_standing(&standing)));
            }
        }
        if cache.events > self.cache_limit {
            // Bounded: dropped whole, refilled from the ledger as touched.
            cache.clear(last);
        } else {
            cache.at = last;
        }
        drop(cache);
        let next = current.apply(last, changed_p, changed_i);
        Ok(self.fold_overlay(next))
    }

    /// Keeps the overlay small without ever stalling the sync path: past the
    /// threshold, a thread rebuilds the base from a frozen version; once it is
    /// done, the next version is that base plus only the entities that changed
    /// after the frozen version.
    fn fold_overlay(&self, next: IndexVersion) -> IndexVersion {
        let mut merge = self.merge.lock().unwrap_or_else(|p| p.into_inner());
        if merge.as_ref().is_some_and(|m| m.thread.is_finished()) {
            let done = merge.take().expect("checked above");
            match done.thread.join() {
                Ok(merged) => return next.rebased_onto(&merged, &done.from),
                Err(_) => tracing::error!("index merge thread panicked; keeping the overlay"),
            }
        }
        if merge.is_none() && next.overlay_len() > self.merge_threshold {
            let from = Arc::new(next.clone());
            let frozen = from.clone();
            let thread = std::thread::Builder::new()
                .name("index-merge".into())
                .spawn(move || frozen.merged())
                .expect("spawning the index merge thread");
            *merge = Some(Merge { from, thread });
        }
        next
    }

    /// Applies everything the ledger holds past the current version, one
    /// [`Syncer::step`] after another, calling `on_swap` with each version's
    /// `seq` as it is published; returns once a step finds nothing new. This
    /// is the whole of the serving gate's sync (its thread calls it when woken
    /// or on each poll), so tests drive the same code. On an error the last
    /// good version stays in service and the error is returned.
    pub fn apply_pending(&self, mut on_swap: impl FnMut(Seq)) -> Result<(), LedgerError> {
        while let Some(seq) = self.step()? {
            on_swap(seq);
        }
        Ok(())
    }
}

/// A batch's events by the history each is filed in (`rules::filed_under`:
/// a revocation under its violation's owner, read from the ledger), and
/// those owners.
pub(crate) struct Touched<'a> {
    pub practitioners: BTreeMap<PractitionerCode, Vec<&'a RecordedEvent>>,
    pub institutions: BTreeMap<InstitutionCode, Vec<&'a RecordedEvent>>,
    pub owners: HashMap<&'a ViolationId, PractitionerCode>,
}

impl<'a> Touched<'a> {
    /// Groups `events`, reading revoked violations' owners on `reads`' lane.
    pub fn by(reads: LaneReads<'_>, events: &'a [RecordedEvent]) -> Result<Touched<'a>, LedgerError> {
        let mut touched =
            Touched { practitioners: BTreeMap::new(), institutions: BTreeMap::new(), owners: HashMap::new() };
        for r in events {
            if let Event::ViolationRevoked { violation_id, .. } = &r.event {
                if let Some(owner) = reads.violation_owner(violation_id)? {
                    touched.owners.insert(violation_id, owner);
                }
            }
            match filed_under(&r.event, |id| touched.owners.get(id).copied()) {
                Some(Filed::Practitioner(p)) => touched.practitioners.entry(p).or_default().push(r),
                Some(Filed::Institution(i)) => touched.institutions.entry(i).or_default().push(r),
                None => {}
            }
        }
        Ok(touched)
    }
}

/// Today's date, from the caller's clock (the index reads none).
pub type Today = Arc<dyn Fn() -> CivilDate + Send + Sync>;

/// One step's events, for [`record_changes`].
struct Batch<'a> {
    after: Seq,
    upto: Seq,
    events: &'a [RecordedEvent],
    owners: &'a HashMap<&'a ViolationId, PractitionerCode>,
    today: CivilDate,
}

/// Records a step's changes in `log` if the log is at `after` (the version
/// the step starts from), from the histories the cache holds at `upto`; a
/// failure is logged and leaves the log behind, for the catch-up to mend:
/// the index goes on being published whatever becomes of the log.
fn record_changes(log: &ChangeLog, batch: &Batch<'_>, cache: &HistoryCache, policy: &Policy) {
    if log.mark() != batch.after {
        return;
    }
    let found = changes::changes_in_batch(
        batch.events,
        &cache.practitioners,
        &cache.institutions,
        |id| batch.owners.get(id).copied(),
        policy,
    );
    if let Err(e) = log.append(batch.after, batch.upto, &found, batch.today) {
        tracing::error!("change log: {e}; the feed is behind until it is caught up");
    }
}
