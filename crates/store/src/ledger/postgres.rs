//! The PostgreSQL ledger: the same append-only event ledger as the embedded
//! one (R5–R8), in one schema of a PostgreSQL database, so that several gate
//! nodes can share one authoritative store.
//!
//! Appends are serialised across connections and nodes by the one-row head
//! table: each append transaction first locks it (`SELECT … FOR UPDATE`), then
//! validates (R8) by reading inside that same transaction, inserts the accepted
//! events with the next `seq`s, moves the head and commits. Because the next
//! appender cannot even read the head before the previous one has committed,
//! `seq` order is commit order: a tailer reading `seq > last` never skips a
//! row that commits later with a lower number, and two nodes never both accept
//! what R8 refuses when the events are taken in order. Every accepted batch
//! sends `NOTIFY claimgate_events, '<new head>'`, delivered on commit.
//!
//! Reads (tailing, histories) use their own connection, so they never queue
//! behind an append; a full scan uses a connection of its own, inside one
//! `REPEATABLE READ` snapshot.

mod bulk;
mod schema;
mod target;

use super::postgres_tls::TlsSettings;
use super::{sql, Appended, Histories, HistoryOf, Lane, LedgerError, Prepared, MAX_APPEND_BATCH, MAX_TAIL_BATCH};
use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::types::ToSql;
use ::postgres::{Client, Config, GenericClient, IsolationLevel, NoTls, Row, Statement, Transaction};
use claimgate_rules::domain::{InstitutionCode, PractitionerCode, Seq, ViolationId};
use claimgate_rules::event::{Event, RecordedEvent};
use claimgate_rules::policy::Policy;
use claimgate_rules::refusal::Refusal;
#[cfg(test)]
use schema::DURABLE_SYNCHRONOUS_COMMIT;
use schema::{durability_refusal, init};
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
#[cfg(test)]
use target::split_url;
use target::{quote_ident, Target};

/// The schema used when the URL names none.
pub const DEFAULT_SCHEMA: &str = "claimgate";
/// The channel every accepted batch notifies, with the new head as payload.
pub const NOTIFY_CHANNEL: &str = "claimgate_events";
/// The schema this build writes and reads.
const SCHEMA_VERSION: i64 = 2;
/// Longest schema name PostgreSQL keeps (longer ones are silently truncated).
const MAX_SCHEMA_BYTES: usize = 63;
/// Connect timeout when the URL sets none.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest one statement of a client's read (an integrity file, `explain`)
/// may run on the server before PostgreSQL cancels it, so no read holds a
/// query session indefinitely.
const QUERY_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

const LOCK_HEAD: &str = "SELECT seq FROM claimgate_head WHERE id = 1 FOR UPDATE";
/// [`LOCK_HEAD`] in the transaction it begins, as one simple query (one round trip).
const BEGIN_AND_LOCK_HEAD: &str = "BEGIN; SELECT seq FROM claimgate_head WHERE id = 1 FOR UPDATE";
const READ_HEAD: &str = "SELECT seq FROM claimgate_head WHERE id = 1";
/// Moves the head and queues the notification (sent on commit), in one round trip.
const SET_HEAD_AND_NOTIFY: &str = "WITH moved AS (UPDATE claimgate_head SET seq = $1 WHERE id = 1 RETURNING seq)
     SELECT pg_notify($2, seq::text) FROM moved";
/// A practitioner's standing violations and repairs dated in a span of years (R11).
const SCORING_STEPS: &str = "SELECT e.kind, e.effective, e.seq, e.points FROM events e
     WHERE e.practitioner = $1 AND e.kind IN ('violation_scored', 'points_repaired')
       AND e.effective COLLATE \"C\" >= $2 AND e.effective COLLATE \"C\" <= $3
       AND NOT (e.kind = 'violation_scored' AND EXISTS (SELECT 1 FROM events r
                WHERE r.violation_id = e.violation_id AND r.kind = 'violation_revoked'))
     ORDER BY e.effective COLLATE \"C\", e.seq";

/// The append-only event ledger in a PostgreSQL schema.
pub struct PostgresLedger {
    target: Target,
    /// The connection appends run on.
    writer: Mutex<Option<Conn>>,
    /// The connection tailing and history reads run on.
    reader: Mutex<Option<Conn>>,
    /// Sessions for the reads clients ask for (integrity files, `explain`),
    /// [`super::QUERY_CONNECTIONS`] of them, each opened when first needed:
    /// a slow one never holds the index sync's `reader`.
    queries: Vec<Mutex<Option<Conn>>>,
    /// The session of [`Lane::Background`] (the change log's catch-up),
    /// opened when first needed: a low-priority thread holding it never
    /// holds the sync's `reader`.
    background: Mutex<Option<Conn>>,
    /// The session [`Self::prepare`] reads a batch's facts ahead on, outside
    /// the head's lock (opened when first needed).
    ahead: Mutex<Option<Conn>>,
    policy: Policy,
    id: u64,
}

/// A session waiting for append notifications (see [`PostgresLedger::listen`]).
pub struct NotifyListener {
    client: Client,
}

impl NotifyListener {
    /// Waits up to `timeout` for appends; `Ok(true)` if any were notified
    /// (all pending ones are consumed), `Ok(false)` on timeout, an error if
    /// the session was lost (open a new listener).
    pub fn wait(&mut self, timeout: std::time::Duration) -> Result<bool, LedgerError> {
        use ::postgres::fallible_iterator::FallibleIterator;
        let mut notifications = self.client.notifications();
        let any = notifications.timeout_iter(timeout).next().map_err(pg("waiting for append notifications"))?.is_some();
        // Consume what else is already pending: one wake-up covers them all.
        while notifications.iter().next().map_err(pg("waiting for append notifications"))?.is_some() {}
        Ok(any)
    }
}

/// One open session and the statements prepared on it.
struct Conn {
    client: Client,
    statements: Statements,
}

/// Prepared statements of one session, by their SQL.
#[derive(Default)]
struct Statements(HashMap<&'static str, Statement>);

fn pg(doing: &'static str) -> impl FnOnce(::postgres::Error) -> LedgerError {
    move |source| LedgerError::Postgres { doing, source }
}

impl PostgresLedger {
    /// Opens the ledger at `url` (a libpq-style URL,
    /// `postgres://user@host:port/db?...`), creating its schema and an empty
    /// ledger if there is none and migrating an older one. Our own query
    /// parameter `schema=NAME` (default `claimgate`) selects the schema; every
    /// statement runs in it. A schema holding other tables, a newer ledger,
    /// or one created under another policy is refused untouched.
    pub fn open(url: &str, policy: &Policy) -> Result<PostgresLedger, LedgerError> {
        let target = Target::parse(url)?;
        let mut client = target.connect(&target.writer_session)?;
        let id = init(&mut client, &target, policy)?;
        let writer = Conn { client, statements: Statements::default() };
        let reader = Conn::open(&target, &target.reader_session)?;
        Ok(PostgresLedger {
            target,
            writer: Mutex::new(Some(writer)),
            reader: Mutex::new(Some(reader)),
            queries: (0..super::QUERY_CONNECTIONS).map(|_| Mutex::new(None)).collect(),
            background: Mutex::new(None),
            ahead: Mutex::new(None),
            policy: policy.clone(),
            id,
        })
    }

    /// A number chosen when the ledger was created, so that index snapshots
    /// of one ledger are never loaded over another.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The policy the ledger validates with.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Where the ledger lives, for messages: the URL without its password,
    /// and the schema.
    pub fn describe(&self) -> String {
        self.target.description.clone()
    }

    /// Whether the read session is encrypted (as the server sees it): with
    /// the default `sslmode=prefer` that depends on the server.
    pub fn session_encrypted(&self) -> Result<bool, LedgerError> {
        self.read(|client, _| {
            let row = client
                .query_one("SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)", &[])
                .map_err(pg("asking whether the session is encrypted"))?;
            Ok(row.get(0))
        })
    }

    /// A dedicated session LISTENing on [`NOTIFY_CHANNEL`]: every committed
    /// append (from any node) wakes it. The channel is per database, so a
    /// notification means "look at the ledger now", nothing more.
    pub fn listen(&self) -> Result<NotifyListener, LedgerError> {
        let mut client = self.target.connect(&self.target.reader_session)?;
        client.batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}")).map_err(pg("listening for appends"))?;
        Ok(NotifyListener { client })
    }

    /// Validates and appends each event in order, in one durable transaction;
    /// each is judged against everything accepted before it, earlier events of
    /// the batch included, by whichever node appended it. Returns one outcome
    /// per event.
    pub fn append_batch(&self, events: &[Event]) -> Result<Vec<Result<Appended, Refusal>>, LedgerError> {
        self.append_prepared(events, Prepared::nothing(events))
    }

    /// The facts validating `events` will ask for, read now in one statement
    /// on a session of its own, outside the head's lock, with the head they
    /// are at; `None` for a batch too small to pay for it. An appender reads
    /// the next batch's facts while the one before commits.
    pub fn prepare(&self, events: &[Event]) -> Result<Prepared, LedgerError> {
        if events.len() < 2 || events.len() > MAX_APPEND_BATCH {
            return Ok(Prepared::nothing(events));
        }
        let keys = sql::BatchKeys::of(events);
        let policy = &self.policy;
        let read = self.with(&self.ahead, &self.target.reader_session, |conn| {
            let (tx, statements) = (&mut conn.client, &mut conn.statements);
            sql::Tx::prefetch(&mut PgTx { tx, statements, policy, pending: HeldRows::default() }, keys)
        });
        match read {
            Ok(facts) => Ok(Prepared { facts, events: events.len() }),
            // A lost session: the append reads them under its lock instead.
            Err(e) if session_lost(&e) => Ok(Prepared::nothing(events)),
            Err(e) => Err(e),
        }
    }

    /// [`Self::append_batch`] with the facts [`Self::prepare`] read ahead for
    /// these `events`: under the head's lock only the events appended since
    /// they were read are (at most [`MAX_PREPARED_GAP`]; past that the facts
    /// are read afresh), so the lock is held for the inserts and the commit.
    pub fn append_prepared(
        &self,
        events: &[Event],
        prepared: Prepared,
    ) -> Result<Vec<Result<Appended, Refusal>>, LedgerError> {
        assert_eq!(prepared.events, events.len(), "facts prepared for another batch");
        let mut prepared = prepared.facts;
        if events.len() > MAX_APPEND_BATCH {
            return Err(LedgerError::BatchTooLarge { len: events.len(), max: MAX_APPEND_BATCH });
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // A session lost before the transaction began wrote nothing: retry
        // once on a fresh one. A loss later (at commit, say) is returned.
        match self.append_once(events, prepared.take()) {
            Err(e @ LedgerError::Postgres { doing: STARTING_AN_APPEND, .. }) if session_lost(&e) => {
                self.append_once(events, None)
            }
            other => other,
        }
    }

    fn append_once(
        &self,
        events: &[Event],
        prepared: Option<sql::Prefetched>,
    ) -> Result<Vec<Result<Appended, Refusal>>, LedgerError> {
        self.with(&self.writer, &self.target.writer_session, |conn| {
            let start = begin_and_lock_head(&mut conn.client)?;
            let result = catch_up(conn, start, prepared, &self.policy)
                .and_then(|ready| append_locked(conn, start, events, ready, &self.policy));
            if result.is_err() && !conn.client.is_closed() {
                // The transaction is still open: end it, storing nothing.
                let _ = conn.client.batch_execute("ROLLBACK");
            }
            result
        })
    }

    /// The highest `seq` accepted (0 for an empty ledger).
    pub fn head(&self) -> Result<Seq, LedgerError> {
        self.read(|client, statements| {
            head_from(statements.query_opt(client, READ_HEAD, &[]).map_err(pg("reading the ledger head"))?)
        })
    }

    /// Accepted events with `seq > after`, ascending, at most `limit`
    /// (capped at [`MAX_TAIL_BATCH`]), on `lane`'s session.
    pub fn events_since(&self, lane: Lane, after: Seq, limit: usize) -> Result<Vec<RecordedEvent>, LedgerError> {
        let limit = limit.min(MAX_TAIL_BATCH) as i64;
        self.read_on(lane, |client, statements| {
            let rows =
                statements.query(client, sql::EVENTS_SINCE, &[&to_db(after), &limit]).map_err(pg("reading events"))?;
            decode_rows(&rows, &self.policy, "reading events")
        })
    }

    /// Every accepted event about a practitioner, revocations of their
    /// violations included, ascending by `seq`.
    pub fn practitioner_history(&self, code: PractitionerCode) -> Result<Vec<RecordedEvent>, LedgerError> {
        self.read(|client, statements| history(client, statements, HistoryOf::Practitioner(code), &self.policy))
    }

    /// Every accepted institution event (designation, suspension,
    /// termination, rating) about an institution, ascending by `seq`.
    pub fn institution_history(&self, code: InstitutionCode) -> Result<Vec<RecordedEvent>, LedgerError> {
        self.read(|client, statements| history(client, statements, HistoryOf::Institution(code), &self.policy))
    }

    /// Many histories as they stood at `upto`, in one round trip
    /// ([`sql::HISTORIES`]) on `lane`'s session; each row goes to its code's slot.
    pub fn histories_upto(
        &self,
        lane: Lane,
        practitioners: &[PractitionerCode],
        institutions: &[InstitutionCode],
        upto: Seq,
    ) -> Result<Histories, LedgerError> {
        const DOING: &str = "reading the histories the new events touch";
        let p_keys: Vec<String> = practitioners.iter().map(|c| c.to_string()).collect();
        let i_keys: Vec<String> = institutions.iter().map(|c| c.to_string()).collect();
        let slot_p: HashMap<&str, usize> = p_keys.iter().enumerate().map(|(n, k)| (k.as_str(), n)).collect();
        let slot_i: HashMap<&str, usize> = i_keys.iter().enumerate().map(|(n, k)| (k.as_str(), n)).collect();
        self.read_on(lane, |client, statements| {
            let rows = statements.query(client, sql::HISTORIES, &[&p_keys, &i_keys]).map_err(pg(DOING))?;
            let mut out = Histories::empty(practitioners.len(), institutions.len());
            for row in &rows {
                let part: i32 = row.try_get(0).map_err(pg(DOING))?;
                let key: &str = row.try_get(1).map_err(pg(DOING))?;
                let seq: i64 = row.try_get(2).map_err(pg(DOING))?;
                if seq > to_db(upto) {
                    continue;
                }
                let body: &str = row.try_get(3).map_err(pg(DOING))?;
                let (slots, histories) = match part {
                    1 => (&slot_p, &mut out.practitioners),
                    _ => (&slot_i, &mut out.institutions),
                };
                let slot = *slots.get(key).expect("the read returns only the codes asked for");
                histories[slot].push(super::decode_stored(seq, body, &self.policy)?);
            }
            for history in out.practitioners.iter_mut().chain(&mut out.institutions) {
                history.sort_unstable_by_key(|r| r.seq);
            }
            Ok(out)
        })
    }

    /// [`Self::practitioner_history`] on a query session (a client's read).
    pub fn query_practitioner_history(&self, code: PractitionerCode) -> Result<Vec<RecordedEvent>, LedgerError> {
        self.query(|client, statements| history(client, statements, HistoryOf::Practitioner(code), &self.policy))
    }

    /// [`Self::institution_history`] on a query session (a client's read).
    pub fn query_institution_history(&self, code: InstitutionCode) -> Result<Vec<RecordedEvent>, LedgerError> {
        self.query(|client, statements| history(client, statements, HistoryOf::Institution(code), &self.policy))
    }

    /// The practitioner a violation belongs to, if it was ever scored (read
    /// on `lane`'s session).
    pub fn violation_owner(&self, lane: Lane, id: &ViolationId) -> Result<Option<PractitionerCode>, LedgerError> {
        let policy = &self.policy;
        self.read_on(lane, |client, statements| {
            Ok(sql::find_violation(&mut PgTx { tx: client, statements, policy, pending: HeldRows::default() }, id)?
                .map(|(_, v)| v.practitioner))
        })
    }

    /// Streams every entity's history at one consistent `seq` (returned): each
    /// practitioner's events (revocations of their violations included), then
    /// each institution's own events, grouped by code. Runs on a connection of
    /// its own inside one read-only snapshot, so appends and tailing go on
    /// meanwhile.
    pub fn scan_histories(
        &self,
        mut on_practitioner: impl FnMut(PractitionerCode, &[RecordedEvent]),
        mut on_institution: impl FnMut(InstitutionCode, &[RecordedEvent]),
    ) -> Result<Seq, LedgerError> {
        const DOING: &str = "scanning the ledger";
        let mut client = self.target.connect(&self.target.reader_session)?;
        // One snapshot: the head and both scans see the same accepted events.
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(pg("starting a scan"))?;
        let head = head_from(tx.query_opt(READ_HEAD, &[]).map_err(pg("reading the ledger head"))?)?;
        let policy = &self.policy;
        let scan = |sql: &str, on: &mut sql::GroupSink| {
            let mut rows = tx.query_raw(sql, [to_db(head)]).map_err(pg(DOING))?;
            let mut groups = sql::Groups::new(policy);
            while let Some(row) = rows.next().map_err(pg(DOING))? {
                let key: String = row.try_get(0).map_err(pg(DOING))?;
                groups.row(key, row.try_get(1).map_err(pg(DOING))?, row.try_get(2).map_err(pg(DOING))?, on)?;
            }
            groups.finish(on)
        };
        sql::scan_histories(scan, &mut on_practitioner, &mut on_institution)?;
        tx.commit().map_err(pg("ending a scan"))?;
        Ok(head)
    }

    /// Drops the schema and everything in it (tests and temporary replays
    /// only).
    pub fn drop_schema(self) -> Result<(), LedgerError> {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(&self.target.schema));
        // Close the read session first: it holds nothing, but need not linger.
        drop(lock(&self.reader).take());
        drop(lock(&self.background).take());
        drop(lock(&self.ahead).take());
        self.with(&self.writer, &self.target.writer_session, |conn| {
            conn.client.batch_execute(&sql).map_err(pg("dropping the ledger schema"))
        })
    }

    /// Runs `op` on the read session. Reads change nothing, so a read that
    /// finds its session lost (say, terminated by an administrator) is run once
    /// more on a fresh one before an error is returned.
    fn read<T>(
        &self,
        op: impl FnMut(&mut Client, &mut Statements) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        self.read_on(Lane::Sync, op)
    }

    /// [`Self::read`] on `lane`'s session: the sync's, or the background one.
    fn read_on<T>(
        &self,
        lane: Lane,
        op: impl FnMut(&mut Client, &mut Statements) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let slot = match lane {
            Lane::Sync => &self.reader,
            Lane::Background => &self.background,
        };
        self.retried(slot, &self.target.reader_session, op)
    }

    /// Runs the read `op` on the session in `slot`; reads change nothing, so
    /// one that finds its session lost is run once more on a fresh one.
    fn retried<T>(
        &self,
        slot: &Mutex<Option<Conn>>,
        session: &str,
        mut op: impl FnMut(&mut Client, &mut Statements) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        match self.with(slot, session, |conn| op(&mut conn.client, &mut conn.statements)) {
            Err(e) if session_lost(&e) => self.with(slot, session, |conn| op(&mut conn.client, &mut conn.statements)),
            other => other,
        }
    }

    /// Runs `op` on a query session: a free one if there is one, else the
    /// first (the server never runs more than [`super::QUERY_CONNECTIONS`]
    /// at once, so it never waits here). Like [`Self::read`], a lost session
    /// is replaced and the read run once more.
    fn query<T>(
        &self,
        op: impl FnMut(&mut Client, &mut Statements) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let free = self.queries.iter().position(|slot| slot.try_lock().is_ok() || slot.is_poisoned()).unwrap_or(0);
        self.retried(&self.queries[free], &self.target.query_session, op)
    }

    /// Runs `op` on the session in `slot`, opening it first if there is none
    /// or it was closed. A call that finds the connection broken (closed, or
    /// an error without a database error code) returns its error and leaves
    /// the slot empty, so the next call reconnects.
    fn with<T>(
        &self,
        slot: &Mutex<Option<Conn>>,
        session: &str,
        op: impl FnOnce(&mut Conn) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let mut guard = lock(slot);
        let conn = match &mut *guard {
            Some(conn) if !conn.client.is_closed() => conn,
            stale => stale.insert(Conn::open(&self.target, session)?),
        };
        let result = op(conn);
        let broken = conn.client.is_closed()
            || matches!(&result, Err(LedgerError::Postgres { source, .. }) if source.code().is_none());
        if broken {
            *guard = None;
        }
        result
    }
}

/// Begins an append's transaction and locks the head row (serialising
/// appenders on every connection and node until commit), in one round trip;
/// returns the head.
fn begin_and_lock_head(client: &mut Client) -> Result<Seq, LedgerError> {
    use ::postgres::SimpleQueryMessage;
    let messages = client.simple_query(BEGIN_AND_LOCK_HEAD).map_err(pg(STARTING_AN_APPEND))?;
    let head = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(row.get(0).and_then(|v| v.parse::<i64>().ok())),
        _ => None,
    });
    match head {
        Some(Some(seq)) if seq >= 0 => Ok(seq as Seq),
        Some(_) => Err(LedgerError::Corrupt { seq: 0, message: "the claimgate_head row holds no valid seq".into() }),
        None => {
            let _ = client.batch_execute("ROLLBACK");
            Err(LedgerError::Corrupt { seq: 0, message: "the claimgate_head row is missing".into() })
        }
    }
}

/// Validates and inserts `events` in the transaction [`begin_and_lock_head`]
/// began at `start`, then moves the head, notifies and commits in one round
/// trip; or rolls back when nothing was stored.
fn append_locked(
    conn: &mut Conn,
    start: Seq,
    events: &[Event],
    ready: Option<sql::Prefetched>,
    policy: &Policy,
) -> Result<Vec<Result<Appended, Refusal>>, LedgerError> {
    let tx = &mut conn.client;
    let statements = &mut conn.statements;
    let mut tx = PgTx { tx, statements, policy, pending: HeldRows::default() };
    let (outcomes, head) = sql::append_all(&mut tx, start, events, policy, ready)?;
    if head == start {
        // Nothing stored: release the head without a commit to flush.
        conn.client.batch_execute("ROLLBACK").map_err(pg("ending an append"))?;
        return Ok(outcomes);
    }
    // Numbers only: nothing of a client's is spliced into the statement.
    let head = to_db(head);
    conn.client
        .batch_execute(&format!(
            "UPDATE claimgate_head SET seq = {head} WHERE id = 1; SELECT pg_notify('{NOTIFY_CHANNEL}', '{head}'); COMMIT"
        ))
        .map_err(pg("committing an append"))?;
    Ok(outcomes)
}

/// Most events appended between a batch's facts read ahead and its head's
/// lock that are read and applied to them; past it they are read afresh
/// (one statement either way, and this one reads less).
pub const MAX_PREPARED_GAP: usize = 2_048;

/// Facts read ahead at some head, brought up to `start` (the head now
/// locked) with the events appended since, read in the transaction; `None`
/// (read them afresh) when there were none read or the gap is past
/// [`MAX_PREPARED_GAP`].
fn catch_up(
    conn: &mut Conn,
    start: Seq,
    prepared: Option<sql::Prefetched>,
    policy: &Policy,
) -> Result<Option<sql::Prefetched>, LedgerError> {
    const DOING: &str = "reading the events appended since a batch's facts";
    let Some(mut known) = prepared else { return Ok(None) };
    assert!(known.head <= start, "facts read ahead at {} are past the locked head {start}", known.head);
    let gap = start - known.head;
    if gap == 0 {
        return Ok(Some(known));
    }
    if gap > MAX_PREPARED_GAP as Seq {
        return Ok(None);
    }
    let rows = conn
        .statements
        .query(&mut conn.client, sql::EVENTS_SINCE, &[&to_db(known.head), &(gap as i64)])
        .map_err(pg(DOING))?;
    known.caught_up(&decode_rows(&rows, policy, DOING)?);
    Ok(Some(known))
}

/// What an append was doing when its transaction could not even begin.
const STARTING_AN_APPEND: &str = "starting an append";

/// Whether an error means the session itself is gone (closed, terminated by
/// an administrator, or a connection-class failure), not a refused statement.
fn session_lost(e: &LedgerError) -> bool {
    let LedgerError::Postgres { source, .. } = e else { return false };
    source.is_closed()
        || match source.code() {
            None => true,
            Some(code) => {
                let c = code.code();
                c.starts_with("08") || c == "57P01" || c == "57P02" || c == "57P03"
            }
        }
}

/// Locks a session slot. A panic while it was held rolled back any open
/// transaction (dropping it does), but the session is not trusted again.
fn lock(slot: &Mutex<Option<Conn>>) -> MutexGuard<'_, Option<Conn>> {
    match slot.lock() {
        Ok(guard) => guard,
        Err(poisoned) => {
            let mut guard = poisoned.into_inner();
            *guard = None;
            slot.clear_poison();
            guard
        }
    }
}

impl Conn {
    fn open(target: &Target, session: &str) -> Result<Conn, LedgerError> {
        Ok(Conn { client: target.connect(session)?, statements: Statements::default() })
    }
}

impl Statements {
    /// The statement for `sql`, prepared on first use (through `client`,
    /// which must be this session or a transaction on it).
    fn get(&mut self, client: &mut impl GenericClient, sql: &'static str) -> Result<Statement, ::postgres::Error> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql)?;
        self.0.insert(sql, statement.clone());
        Ok(statement)
    }

    fn query(
        &mut self,
        client: &mut impl GenericClient,
        sql: &'static str,
        params: &[&(dyn ::postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, ::postgres::Error> {
        let statement = self.get(client, sql)?;
        client.query(&statement, params)
    }

    fn query_opt(
        &mut self,
        client: &mut impl GenericClient,
        sql: &'static str,
        params: &[&(dyn ::postgres::types::ToSql + Sync)],
    ) -> Result<Option<Row>, ::postgres::Error> {
        let statement = self.get(client, sql)?;
        client.query_opt(&statement, params)
    }

    fn execute(
        &mut self,
        client: &mut impl GenericClient,
        sql: &'static str,
        params: &[&(dyn ::postgres::types::ToSql + Sync)],
    ) -> Result<u64, ::postgres::Error> {
        let statement = self.get(client, sql)?;
        client.execute(&statement, params)
    }
}

/// A `seq` as stored (`bigint`); past `i64::MAX` reads as "everything".
fn to_db(seq: Seq) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn head_from(row: Option<Row>) -> Result<Seq, LedgerError> {
    let row =
        row.ok_or_else(|| LedgerError::Corrupt { seq: 0, message: "the claimgate_head row is missing".into() })?;
    let seq: i64 = row.try_get(0).map_err(pg("reading the ledger head"))?;
    Ok(seq as Seq)
}

fn decode_rows(rows: &[Row], policy: &Policy, doing: &'static str) -> Result<Vec<RecordedEvent>, LedgerError> {
    rows.iter()
        .map(|row| {
            let seq: i64 = row.try_get(0).map_err(pg(doing))?;
            let body: &str = row.try_get(1).map_err(pg(doing))?;
            super::decode_stored(seq, body, policy)
        })
        .collect()
}

fn history(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    of: HistoryOf,
    policy: &Policy,
) -> Result<Vec<RecordedEvent>, LedgerError> {
    let sql = match of {
        HistoryOf::Practitioner(_) => sql::PRACTITIONER_HISTORY,
        HistoryOf::Institution(_) => sql::INSTITUTION_HISTORY,
    };
    let rows = statements.query(client, sql, &[&of.key()]).map_err(pg(of.doing()))?;
    decode_rows(&rows, policy, of.doing())
}

/// The shared SQL core's [`sql::Tx`] on a PostgreSQL transaction, with
/// its session's prepared statements.
struct PgTx<'a, C: GenericClient> {
    tx: &'a mut C,
    statements: &'a mut Statements,
    /// How stored events parse (R20's direct-E codes).
    policy: &'a Policy,
    /// Rows inserted but not yet written: written before the next read and
    /// at the end, so a batch's inserts cost a round trip, not one each.
    pending: HeldRows,
}

impl<C: GenericClient> sql::Tx for PgTx<'_, C> {
    fn first(
        &mut self,
        sql: &'static str,
        key: &str,
        doing: &'static str,
    ) -> Result<Option<(i64, String)>, LedgerError> {
        self.flush()?;
        let Some(row) = self.statements.query_opt(self.tx, sql, &[&key]).map_err(pg(doing))? else {
            return Ok(None);
        };
        Ok(Some((row.try_get(0).map_err(pg(doing))?, row.try_get(1).map_err(pg(doing))?)))
    }

    fn exists(&mut self, sql: &'static str, key: &str, doing: &'static str) -> Result<bool, LedgerError> {
        self.flush()?;
        Ok(self.statements.query_opt(self.tx, sql, &[&key]).map_err(pg(doing))?.is_some())
    }

    fn scoring_rows(&mut self, practitioner: &str, first: &str, last: &str) -> Result<Vec<sql::StepRow>, LedgerError> {
        let doing = sql::READING_SCORING_STEPS;
        self.flush()?;
        let rows = self.statements.query(self.tx, SCORING_STEPS, &[&practitioner, &first, &last]).map_err(pg(doing))?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0).map_err(pg(doing))?,
                    row.try_get(1).map_err(pg(doing))?,
                    row.try_get(2).map_err(pg(doing))?,
                    row.try_get(3).map_err(pg(doing))?,
                ))
            })
            .collect()
    }

    fn prefetch(&mut self, keys: sql::BatchKeys) -> Result<Option<sql::Prefetched>, LedgerError> {
        const DOING: &str = "reading a batch's facts";
        let mut known = sql::Prefetched::new(keys);
        let k = known.keys();
        let params: [&(dyn ToSql + Sync); 5] =
            [&k.event_ids, &k.institutions, &k.practitioners, &k.violation_ids, &k.practitioners];
        let rows = self.statements.query(self.tx, sql::BATCH_FACTS, &params).map_err(pg(DOING))?;
        let mut violations = Vec::new();
        let mut revoked = std::collections::HashSet::new();
        for row in &rows {
            let part: i32 = row.try_get(0).map_err(pg(DOING))?;
            let text = |i: usize| row.try_get::<_, Option<String>>(i).map_err(pg(DOING));
            let seq = || row.try_get::<_, i64>(1).map_err(pg(DOING));
            let stored = || -> Result<RecordedEvent, LedgerError> {
                super::decode_stored(seq()?, &text(2)?.unwrap_or_default(), self.policy)
            };
            match part {
                0 => known.head = seq()? as Seq,
                1 => {
                    let r = stored()?;
                    if let Some(id) = r.event.event_id() {
                        known.events_by_id.insert(id.as_str().to_owned(), r.clone());
                    }
                }
                2 => drop(text(3)?.map(|i| known.designated.insert(i))),
                3 => drop(text(3)?.map(|p| known.registered.insert(p))),
                4 => violations.push(stored()?),
                6 => drop(text(7)?.map(|id| revoked.insert(id))),
                _ => {
                    let (Some(practitioner), Some(kind), Some(effective)) = (text(3)?, text(4)?, text(5)?) else {
                        return Err(LedgerError::Corrupt {
                            seq: seq()? as Seq,
                            message: "a scoring step without its columns".into(),
                        });
                    };
                    let points: Option<i64> = row.try_get(6).map_err(pg(DOING))?;
                    let step = super::scoring_step(&kind, &effective, seq()?, points)?;
                    known.steps.entry(practitioner).or_default().push((step, text(7)?));
                }
            }
        }
        // R12: a revoked violation is no standing step.
        for steps in known.steps.values_mut() {
            steps.retain(|(_, id)| id.as_ref().is_none_or(|id| !revoked.contains(id)));
        }
        violations.sort_by_key(|r| r.seq);
        known.add_violation_rows(violations);
        known.index_steps();
        Ok(Some(known))
    }

    fn insert(&mut self, c: &sql::Columns<'_>) -> Result<(), LedgerError> {
        self.pending.push(c);
        if self.pending.len() >= MAX_HELD_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), LedgerError> {
        self.flush()
    }
}

/// Most rows [`PgTx`] holds back before it writes them in one statement.
const MAX_HELD_ROWS: usize = 1_000;

/// Rows written in one statement, column by column ([`PgTx::flush`]).
const INSERT_MANY: &str =
    "INSERT INTO events (seq, kind, effective, practitioner, institution, violation_id, body, event_id, points)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                          $8::text[], $9::bigint[])";

/// Rows held back by [`PgTx::insert`], as the columns of [`INSERT_MANY`].
#[derive(Default)]
struct HeldRows {
    seq: Vec<i64>,
    kind: Vec<&'static str>,
    effective: Vec<String>,
    practitioner: Vec<Option<String>>,
    institution: Vec<Option<String>>,
    violation_id: Vec<Option<String>>,
    body: Vec<String>,
    event_id: Vec<Option<String>>,
    points: Vec<Option<i64>>,
}

impl HeldRows {
    fn push(&mut self, c: &sql::Columns<'_>) {
        self.seq.push(c.seq);
        self.kind.push(c.kind);
        self.effective.push(c.effective.clone());
        self.practitioner.push(c.practitioner.clone());
        self.institution.push(c.institution.clone());
        self.violation_id.push(c.violation_id.map(str::to_owned));
        self.body.push(c.body.clone());
        self.event_id.push(c.event_id.map(str::to_owned));
        self.points.push(c.points);
    }

    fn len(&self) -> usize {
        self.seq.len()
    }
}

impl<C: GenericClient> PgTx<'_, C> {
    /// Writes the rows held back, in one round trip.
    fn flush(&mut self) -> Result<(), LedgerError> {
        let held = std::mem::take(&mut self.pending);
        match held.len() {
            0 => Ok(()),
            _ => {
                let params: [&(dyn ToSql + Sync); 9] = [
                    &held.seq,
                    &held.kind,
                    &held.effective,
                    &held.practitioner,
                    &held.institution,
                    &held.violation_id,
                    &held.body,
                    &held.event_id,
                    &held.points,
                ];
                self.statements.execute(self.tx, INSERT_MANY, &params).map_err(pg(sql::APPENDING))?;
                Ok(())
            }
        }
    }
}

/// An event's row as [`sql::INSERT`]'s (and the bulk load's COPY's) parameters.
fn row_params<'a>(c: &'a sql::Columns<'_>) -> [&'a (dyn ToSql + Sync); 9] {
    [&c.seq, &c.kind, &c.effective, &c.practitioner, &c.institution, &c.violation_id, &c.body, &c.event_id, &c.points]
}

#[cfg(test)]
mod tests;
