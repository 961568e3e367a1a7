//! The authoritative store: an append-only event ledger (R5–R8).
//!
//! Every accepted event gets the next `seq` and is durable (synchronously
//! committed) before `append` returns. Refused events leave no trace. Nothing
//! is ever updated or deleted. Readers tail it with [`Ledger::events_since`].
//!
//! One interface, two backends: the embedded SQLite file under the data
//! directory (the default), and PostgreSQL (`--store postgres://...`) for a
//! deployment where many gate nodes share one ledger. Both validate with the
//! same pure `rules::validate` inside their append transaction.

mod bulk;
mod embedded;
mod error;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres_tls;
mod sql;

pub use bulk::BulkLoad;
pub use embedded::{
    Backup, EmbeddedLedger, PageCheck, BACKUP_DIR, BULK_ASIDE, KEEP_BACKUPS, LEDGER_FILE, MAX_APPEND_BATCH,
    MAX_TAIL_BATCH,
};
pub use error::{AppendError, LedgerError, NotDurable};
#[cfg(feature = "postgres")]
pub use postgres::{NotifyListener, PostgresLedger};

/// Without the `postgres` feature there is no shared ledger, so no session
/// is ever notified: an uninhabited type, [`Ledger::listen`] returns `None`.
#[cfg(not(feature = "postgres"))]
pub enum NotifyListener {}

#[cfg(not(feature = "postgres"))]
impl NotifyListener {
    /// Never called: no value of this type exists.
    pub fn wait(&mut self, _timeout: std::time::Duration) -> Result<bool, LedgerError> {
        match *self {}
    }
}

use claimgate_rules::domain::{CivilDate, InstitutionCode, PractitionerCode, Seq, ViolationId};
use claimgate_rules::event::{Event, RecordedEvent};
use claimgate_rules::file::{InstitutionFile, PractitionerFile};
use claimgate_rules::policy::Policy;
use claimgate_rules::refusal::Refusal;
use claimgate_rules::{institution, practitioner};
use std::path::Path;

/// Connections (SQLite read-only connections, PostgreSQL sessions) for the
/// reads clients ask for: integrity files and `explain`. They are apart from
/// the connection the index sync tails on, so however slow or many those
/// reads are, the sync and `min_seq` never queue behind them; the server runs
/// at most this many at once (`server::limits::QueryReads`).
pub const QUERY_CONNECTIONS: usize = 4;

/// An accepted event's `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: Seq,
    /// The identical violation was already on the ledger; nothing was stored
    /// and `seq` is the original one (R8).
    pub already_recorded: bool,
}

/// Whose history a backend reads: a practitioner's (revocations of their
/// violations included) or an institution's own events. One reader per
/// backend serves both, on any of its connections.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HistoryOf {
    Practitioner(PractitionerCode),
    Institution(InstitutionCode),
}

impl HistoryOf {
    /// The code the rows are keyed by, as stored.
    pub(crate) fn key(self) -> String {
        match self {
            HistoryOf::Practitioner(code) => code.to_string(),
            HistoryOf::Institution(code) => code.to_string(),
        }
    }

    /// What the read is doing, for errors.
    pub(crate) fn doing(self) -> &'static str {
        match self {
            HistoryOf::Practitioner(_) => "reading a practitioner's history",
            HistoryOf::Institution(_) => "reading an institution's history",
        }
    }
}

/// Most codes (practitioners and institutions together) one
/// [`LaneReads::histories_upto`] read takes: the index's sync batch touches at
/// most one entity per event, and is held within this.
pub const MAX_HISTORY_CODES: usize = 10_000;

/// The histories [`LaneReads::histories_upto`] read: one per code asked for,
/// in the order asked, each ascending by `seq`.
#[derive(Debug, Default)]
pub struct Histories {
    pub practitioners: Vec<Vec<RecordedEvent>>,
    pub institutions: Vec<Vec<RecordedEvent>>,
}

impl Histories {
    /// Room for `practitioners` and `institutions` empty histories.
    #[cfg(feature = "postgres")]
    pub(crate) fn empty(practitioners: usize, institutions: usize) -> Histories {
        Histories {
            practitioners: (0..practitioners).map(|_| Vec::new()).collect(),
            institutions: (0..institutions).map(|_| Vec::new()).collect(),
        }
    }
}

/// A new ledger's identity, from the operating system's random source (so
/// two ledgers' snapshots are never taken for each other's): 63 bits, so it
/// stores as a positive integer on both backends.
pub(crate) fn new_ledger_id() -> Result<u64, LedgerError> {
    let id = getrandom::u64().map_err(|e| LedgerError::NoRandomness { detail: e.to_string() })?;
    Ok(id >> 1)
}

/// An event as stored (its canonical JSON) read back; anything that does not
/// parse is a damaged ledger, never a silently skipped event.
pub(crate) fn decode_stored(seq: i64, body: &str, policy: &Policy) -> Result<RecordedEvent, LedgerError> {
    let seq = seq as Seq;
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| LedgerError::Corrupt { seq, message: e.to_string() })?;
    let event =
        Event::parse_stored(&value, policy).map_err(|e| LedgerError::Corrupt { seq, message: e.to_string() })?;
    Ok(RecordedEvent { seq, event })
}

/// The `points` column of an event's row: a violation's points or a
/// repair's requested points, so validation reads scoring steps without
/// decoding bodies (R8 in O(the practitioner's steps)).
pub(crate) fn indexed_points(event: &Event) -> Option<i64> {
    match event {
        Event::ViolationScored(v) => Some(i64::from(v.points)),
        Event::PointsRepaired { points, .. } => Some(i64::from(*points)),
        _ => None,
    }
}

/// The first and last day of `years` as stored (`YYYY-MM-DD`, which sorts as
/// text), within the calendar R3 allows.
pub(crate) fn stored_day_bounds(years: &std::ops::RangeInclusive<i32>) -> (String, String) {
    let clamp = |y: i32| y.clamp(claimgate_rules::domain::MIN_YEAR, claimgate_rules::domain::MAX_YEAR);
    (format!("{:04}-01-01", clamp(*years.start())), format!("{:04}-12-31", clamp(*years.end())))
}

/// One scoring step from its row's `kind`, `effective`, `seq` and `points`.
pub(crate) fn scoring_step(
    kind: &str,
    effective: &str,
    seq: i64,
    points: Option<i64>,
) -> Result<claimgate_rules::practitioner::ScoringStep, LedgerError> {
    use claimgate_rules::practitioner::{Change, ScoringStep};
    let seq = seq as Seq;
    let corrupt = |what: &str| LedgerError::Corrupt { seq, message: format!("its indexed {what} is not valid") };
    let points = points.and_then(|p| u32::try_from(p).ok()).ok_or_else(|| corrupt("points"))?;
    let change = match kind {
        "violation_scored" => Change::Scored(points),
        "points_repaired" => Change::Repaired(points),
        _ => return Err(corrupt("kind")),
    };
    Ok(ScoringStep { effective: CivilDate::parse(effective).map_err(|_| corrupt("date"))?, seq, change })
}

/// What appends events in order, judging each by R8: a ledger (each batch
/// committed on its own) or a bulk load into an empty one (all at its end).
pub trait Append {
    /// The policy events are validated under.
    fn policy(&self) -> &Policy;
    /// The last `seq` given (0 for nothing yet).
    fn head(&self) -> Result<Seq, LedgerError>;
    /// Validates and appends `events` in order: one outcome each.
    fn append_batch(&mut self, events: &[Event]) -> Result<Vec<Result<Appended, Refusal>>, LedgerError>;
}

impl Append for &Ledger {
    fn policy(&self) -> &Policy {
        Ledger::policy(self)
    }
    fn head(&self) -> Result<Seq, LedgerError> {
        Ledger::head(self)
    }
    fn append_batch(&mut self, events: &[Event]) -> Result<Vec<Result<Appended, Refusal>>, LedgerError> {
        Ledger::append_batch(self, events)
    }
}

impl Append for BulkLoad {
    fn policy(&self) -> &Policy {
        BulkLoad::policy(self)
    }
    fn head(&self) -> Result<Seq, LedgerError> {
        Ok(BulkLoad::head(self))
    }
    fn append_batch(&mut self, events: &[Event]) -> Result<Vec<Result<Appended, Refusal>>, LedgerError> {
        BulkLoad::append_batch(self, events)
    }
}

// One ledger per process, behind an Arc: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Embedded(EmbeddedLedger),
    #[cfg(feature = "postgres")]
    Postgres(PostgresLedger),
}

/// The ledger, on whichever backend was opened.
pub struct Ledger {
    backend: Backend,
}

macro_rules! each {
    ($self:ident, $l:ident => $e:expr) => {
        match &$self.backend {
            Backend::Embedded($l) => $e,
            #[cfg(feature = "postgres")]
            Backend::Postgres($l) => $e,
        }
    };
}

/// A batch's facts read ahead by [`Ledger::prepare`], for
/// [`Ledger::append_prepared`] of the same events.
pub struct Prepared {
    /// `None`: nothing read ahead (the append reads what it needs).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    facts: Option<sql::Prefetched>,
    /// How many events they were read for.
    events: usize,
}

impl Prepared {
    /// Nothing read ahead for `events`.
    pub fn nothing(events: &[Event]) -> Prepared {
        Prepared { facts: None, events: events.len() }
    }
}

/// Which of the ledger's read connections a tail or history read runs on.
/// The index sync has one of its own that nothing slower ever holds; the
/// change log's catch-up, on a low-priority thread, reads on another, so the
/// sync (and so `min_seq`) never waits behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The index sync's connection.
    Sync,
    /// The background work's connection (opened on first use).
    Background,
}

/// The reads the index sync and the change log's catch-up make, on one
/// [`Lane`]'s connection ([`Ledger::on`]).
#[derive(Clone, Copy)]
pub struct LaneReads<'a> {
    ledger: &'a Ledger,
    lane: Lane,
}

impl LaneReads<'_> {
    /// Accepted events with `seq > after`, ascending, at most `limit`
    /// (capped at [`MAX_TAIL_BATCH`]).
    pub fn events_since(&self, after: Seq, limit: usize) -> Result<Vec<RecordedEvent>, LedgerError> {
        let (lane, limit) = (self.lane, limit.min(MAX_TAIL_BATCH));
        let ledger = self.ledger;
        each!(ledger, l => l.events_since(lane, after, limit))
    }

    /// The histories of many practitioners and institutions as they stood at
    /// `upto` (events with `seq <= upto`), in one read where the backend is a
    /// round trip away: what the index's sync re-derives after a batch of
    /// appends. At most [`MAX_HISTORY_CODES`] codes in all (asserted).
    pub fn histories_upto(
        &self,
        practitioners: &[PractitionerCode],
        institutions: &[InstitutionCode],
        upto: Seq,
    ) -> Result<Histories, LedgerError> {
        assert!(
            practitioners.len() + institutions.len() <= MAX_HISTORY_CODES,
            "{} histories asked for in one read, past MAX_HISTORY_CODES",
            practitioners.len() + institutions.len()
        );
        let lane = self.lane;
        let ledger = self.ledger;
        each!(ledger, l => l.histories_upto(lane, practitioners, institutions, upto))
    }

    /// The practitioner a violation belongs to, if it was ever scored.
    pub fn violation_owner(&self, id: &ViolationId) -> Result<Option<PractitionerCode>, LedgerError> {
        let lane = self.lane;
        let ledger = self.ledger;
        each!(ledger, l => l.violation_owner(lane, id))
    }
}

impl Ledger {
    /// The embedded ledger in `data_dir` (created if absent).
    pub fn open(data_dir: &Path, policy: &Policy) -> Result<Ledger, LedgerError> {
        Ok(Ledger { backend: Backend::Embedded(EmbeddedLedger::open(data_dir, policy)?) })
    }

    /// An embedded ledger in memory only (tests, throwaway runs).
    pub fn open_in_memory(policy: &Policy) -> Result<Ledger, LedgerError> {
        Ok(Ledger { backend: Backend::Embedded(EmbeddedLedger::open_in_memory(policy)?) })
    }

    /// The PostgreSQL ledger at `url` (schema created or migrated on open).
    #[cfg(feature = "postgres")]
    pub fn open_postgres(url: &str, policy: &Policy) -> Result<Ledger, LedgerError> {
        Ok(Ledger { backend: Backend::Postgres(PostgresLedger::open(url, policy)?) })
    }

    /// Refuses `--store URL`: this build has no PostgreSQL backend.
    #[cfg(not(feature = "postgres"))]
    pub fn open_postgres(_url: &str, _policy: &Policy) -> Result<Ledger, LedgerError> {
        Err(LedgerError::NoPostgres)
    }

    /// `--store URL` if given (PostgreSQL), else the embedded ledger in `data_dir`.
    pub fn open_store(store: Option<&str>, data_dir: &Path, policy: &Policy) -> Result<Ledger, LedgerError> {
        match store {
            Some(url) => Ledger::open_postgres(url, policy),
            None => Ledger::open(data_dir, policy),
        }
    }

    /// Where the ledger lives, for messages (never a password).
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Embedded(l) => l.path().display().to_string(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(l) => l.describe(),
        }
    }

    /// The PostgreSQL backend, if that is what this is (tests, `replay` cleanup).
    #[cfg(feature = "postgres")]
    pub fn into_postgres(self) -> Option<PostgresLedger> {
        match self.backend {
            Backend::Postgres(l) => Some(l),
            Backend::Embedded(_) => None,
        }
    }

    /// Drops a ledger made for one run (`replay --store`): a PostgreSQL
    /// ledger's schema is dropped; an embedded ledger is left to the
    /// (temporary) directory it lives in.
    pub fn drop_temporary(self) -> Result<(), LedgerError> {
        match self.backend {
            Backend::Embedded(_) => Ok(()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(l) => l.drop_schema(),
        }
    }

    /// The page check of an embedded ledger's file, to run in the
    /// background; `None` for PostgreSQL (which checks its own pages) and
    /// for an in-memory ledger.
    pub fn page_check(&self) -> Option<PageCheck> {
        match &self.backend {
            Backend::Embedded(l) => l.page_check(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => None,
        }
    }

    /// An online backup of an embedded ledger's file into `DATA/backups/`
    /// (see [`Backup`]), taken while it serves; `None` for PostgreSQL, whose
    /// own tools back it up, and for a ledger in memory.
    pub fn backup(&self, stamp: &str) -> Option<Result<Backup, LedgerError>> {
        match &self.backend {
            Backend::Embedded(l) if l.path().as_os_str() != ":memory:" => Some(l.backup(stamp)),
            _ => None,
        }
    }

    /// Whether other processes may append (a shared ledger worth listening to).
    pub fn listen_supported(&self) -> bool {
        #[cfg(feature = "postgres")]
        return matches!(self.backend, Backend::Postgres(_));
        #[cfg(not(feature = "postgres"))]
        false
    }

    /// A session notified of every append, for a shared (PostgreSQL) ledger;
    /// `None` for the embedded ledger, whose only writer is this process.
    pub fn listen(&self) -> Option<Result<NotifyListener, LedgerError>> {
        match &self.backend {
            Backend::Embedded(_) => None,
            #[cfg(feature = "postgres")]
            Backend::Postgres(l) => Some(l.listen()),
        }
    }

    /// A number chosen when the ledger was created (snapshots name it).
    pub fn id(&self) -> u64 {
        each!(self, l => l.id())
    }

    /// The policy the ledger validates with.
    pub fn policy(&self) -> &Policy {
        each!(self, l => l.policy())
    }

    /// Validates `event` (R8) and, if accepted, appends it durably.
    pub fn append(&self, event: &Event) -> Result<Appended, AppendError> {
        let mut results = self.append_batch(std::slice::from_ref(event))?;
        results.pop().expect("one result per event").map_err(AppendError::Refused)
    }

    /// Validates and appends each event in order, in one durable transaction;
    /// each is judged against everything accepted before it, earlier events of
    /// the batch included. Returns one outcome per event.
    pub fn append_batch(&self, events: &[Event]) -> Result<Vec<Result<Appended, Refusal>>, LedgerError> {
        self.append_prepared(events, Prepared::nothing(events))
    }

    /// Reads ahead, outside the append's lock, the facts validating
    /// `events` will ask for: on PostgreSQL one statement on a session of its
    /// own, at the head it saw; nothing on the embedded ledger (its reads
    /// are no round trip away). Give it to [`Self::append_prepared`] with the
    /// same events: an appender prepares the next batch while one commits.
    pub fn prepare(&self, events: &[Event]) -> Result<Prepared, LedgerError> {
        match &self.backend {
            Backend::Embedded(_) => Ok(Prepared::nothing(events)),
            #[cfg(feature = "postgres")]
            Backend::Postgres(l) => l.prepare(events),
        }
    }

    /// [`Self::append_batch`] with the facts [`Self::prepare`] read for
    /// `events` (the same events, asserted by count): the outcomes are the
    /// same as without them, whatever was appended between.
    pub fn append_prepared(
        &self,
        events: &[Event],
        prepared: Prepared,
    ) -> Result<Vec<Result<Appended, Refusal>>, LedgerError> {
        if events.len() > MAX_APPEND_BATCH {
            return Err(LedgerError::BatchTooLarge { len: events.len(), max: MAX_APPEND_BATCH });
        }
        match &self.backend {
            Backend::Embedded(l) => {
                assert_eq!(prepared.events, events.len(), "facts prepared for another batch");
                l.append_batch(events)
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(l) => l.append_prepared(events, prepared),
        }
    }

    /// A bulk load ([`BulkLoad`]) into this ledger if it is empty; the
    /// ledger back, untouched, if it is not (or lives in memory only, with
    /// no file to build beside). An embedded ledger is closed for the load:
    /// the caller holds its data directory's lock, so nothing else appends;
    /// a PostgreSQL load holds the head until it finishes.
    pub fn into_bulk_load(self) -> Result<Result<BulkLoad, Ledger>, LedgerError> {
        let policy = self.policy().clone();
        match self.backend {
            Backend::Embedded(l) => {
                if l.path().as_os_str() == ":memory:" || l.head()? != 0 {
                    return Ok(Err(Ledger { backend: Backend::Embedded(l) }));
                }
                Ok(Ok(BulkLoad::new(Box::new(embedded::SqliteSink::start(l)?), policy)))
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(l) => Ok(match l.into_bulk()? {
                Ok(sink) => Ok(BulkLoad::new(Box::new(sink), policy)),
                Err(l) => Err(Ledger { backend: Backend::Postgres(l) }),
            }),
        }
    }

    /// The highest `seq` accepted (0 for an empty ledger).
    pub fn head(&self) -> Result<Seq, LedgerError> {
        each!(self, l => l.head())
    }

    /// Accepted events with `seq > after`, ascending, at most `limit`
    /// (capped at [`MAX_TAIL_BATCH`]), on the sync's connection
    /// (`self.on(Lane::Sync).events_since`).
    pub fn events_since(&self, after: Seq, limit: usize) -> Result<Vec<RecordedEvent>, LedgerError> {
        self.on(Lane::Sync).events_since(after, limit)
    }

    /// The tail and history reads on `lane`'s connection.
    pub fn on(&self, lane: Lane) -> LaneReads<'_> {
        LaneReads { ledger: self, lane }
    }

    /// Every accepted event, ascending (for rebuilding derived state).
    pub fn all_events(&self) -> Result<Vec<RecordedEvent>, LedgerError> {
        let mut all = Vec::new();
        loop {
            let after = all.last().map_or(0, |r: &RecordedEvent| r.seq);
            let batch = self.events_since(after, MAX_TAIL_BATCH)?;
            if batch.is_empty() {
                return Ok(all);
            }
            all.extend(batch);
        }
    }

    /// Every accepted event about a practitioner, revocations of their
    /// violations included, ascending by `seq`.
    pub fn practitioner_history(&self, code: PractitionerCode) -> Result<Vec<RecordedEvent>, LedgerError> {
        each!(self, l => l.practitioner_history(code))
    }

    /// Every accepted institution event about an institution, ascending by `seq`.
    pub fn institution_history(&self, code: InstitutionCode) -> Result<Vec<RecordedEvent>, LedgerError> {
        each!(self, l => l.institution_history(code))
    }

    /// [`Self::practitioner_history`] on one of the [`QUERY_CONNECTIONS`]
    /// (a read a client asked for, such as `explain`).
    pub fn query_practitioner_history(&self, code: PractitionerCode) -> Result<Vec<RecordedEvent>, LedgerError> {
        each!(self, l => l.query_practitioner_history(code))
    }

    /// [`Self::institution_history`] on one of the [`QUERY_CONNECTIONS`].
    pub fn query_institution_history(&self, code: InstitutionCode) -> Result<Vec<RecordedEvent>, LedgerError> {
        each!(self, l => l.query_institution_history(code))
    }

    /// The practitioner a violation belongs to, if it was ever scored (on
    /// the sync's connection).
    pub fn violation_owner(&self, id: &ViolationId) -> Result<Option<PractitionerCode>, LedgerError> {
        self.on(Lane::Sync).violation_owner(id)
    }

    /// Streams every entity's history at one consistent `seq` (returned).
    pub fn scan_histories(
        &self,
        on_practitioner: impl FnMut(PractitionerCode, &[RecordedEvent]),
        on_institution: impl FnMut(InstitutionCode, &[RecordedEvent]),
    ) -> Result<Seq, LedgerError> {
        each!(self, l => l.scan_histories(on_practitioner, on_institution))
    }

    /// The integrity file of a practitioner (R22), status as of `as_of`;
    /// `None` if the ledger never names them. Read on a query connection.
    pub fn practitioner_file(
        &self,
        code: PractitionerCode,
        as_of: CivilDate,
    ) -> Result<Option<PractitionerFile>, LedgerError> {
        let history = self.query_practitioner_history(code)?;
        Ok((!history.is_empty())
            .then(|| PractitionerFile::new(&practitioner::derive(code, &history, self.policy()), as_of)))
    }

    /// The integrity file of an institution (R22), status as of `as_of`;
    /// `None` if it was never designated. Read on a query connection.
    pub fn institution_file(
        &self,
        code: InstitutionCode,
        as_of: CivilDate,
    ) -> Result<Option<InstitutionFile>, LedgerError> {
        let history = self.query_institution_history(code)?;
        Ok((!history.is_empty()).then(|| InstitutionFile::new(&institution::derive(code, &history), as_of)))
    }
}
