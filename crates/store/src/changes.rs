//! The standing-change log (issue 16): every change
//! (`claimgate_rules::changes`) of the ledger's accepted events, in `seq`
//! order, in `DATA/changes.sqlite3`, read by the change feed in pages.
//!
//! Derived, not authoritative: written without waiting for the disk (WAL,
//! `synchronous=NORMAL`), its `mark` (every change of events up to it is
//! here) moving in the same transaction as its rows, so after a crash it is
//! whole up to an earlier mark and the gate computes the rest again, the
//! same changes (they are a function of the ledger). A log of another
//! ledger (its id differs) is discarded at open. A page never splits one
//! `seq`'s changes, so `after_seq` resumes exactly.

use claimgate_rules::changes::{BatchChanges, StandingChange};
use claimgate_rules::check::Reason;
use claimgate_rules::domain::{CivilDate, InstitutionCode, PractitionerCode, Seq};
use claimgate_rules::event::Event;
use claimgate_rules::practitioner::{PractitionerStanding, SanctionKind};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Most changes one page holds (a page may exceed it by the rest of one
/// `seq`'s changes, which a page never splits).
pub const MAX_PAGE_CHANGES: usize = 10_000;
/// Reader connections; a read beyond them waits for one.
const READERS: usize = 4;

/// The change log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ChangeLogError {
    #[error("the change log {path} failed while {doing}: {source}; it is derived from the ledger: stop the gate and delete the file to have it computed again")]
    Storage { path: PathBuf, doing: &'static str, source: rusqlite::Error },
    #[error("the change log {path} holds a row it cannot read ({detail}); stop the gate and delete the file to have it computed again")]
    Corrupt { path: PathBuf, detail: String },
}

/// Which changes a page holds: all of them, or those of one institution, one
/// practitioner, one region (the six digits after an institution code's
/// letter: the region where the service is), or several of these at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    pub institution: Option<InstitutionCode>,
    pub practitioner: Option<PractitionerCode>,
    pub region: Option<String>,
}

/// One page of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// In `seq` order, each `seq`'s changes whole.
    pub changes: Vec<StandingChange>,
    /// What to ask for next: the last `seq` of a full page, else the mark
    /// (nothing else up to it matches the filter).
    pub next_after_seq: Seq,
    /// The log's mark when the page was read.
    pub mark: Seq,
}

/// Which sanctions [`ChangeLog::sanctions_on`] lists.
#[derive(Debug, Clone, Default)]
pub struct SanctionQuery {
    pub institution: Option<InstitutionCode>,
    pub region: Option<String>,
    /// `suspension` or `termination`.
    pub kind: Option<&'static str>,
    /// The last (practitioner, institution) of the previous page.
    pub after: Option<(String, String)>,
    pub limit: usize,
}

/// A sanctioned practitioner at an institution where they are filed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SanctionRow {
    pub practitioner: String,
    pub institution: String,
    pub kind: String,
    pub from: String,
    pub until: Option<String>,
    /// The violation whose points crossed the threshold, and its seq.
    pub cause: String,
    pub cause_seq: Seq,
    pub year_total: u32,
}

/// One count of [`ChangeLog::statistics`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MonthCount {
    pub region: String,
    /// `YYYY-MM`.
    pub month: String,
    /// `violations`, `suspension` or `termination`.
    pub what: String,
    pub count: u64,
}

/// Which rows a page of the log reads.
#[derive(Debug, Clone, Copy)]
enum Rows {
    /// Every change (the feed).
    Changes,
    /// The changes that blocked dates already past when recorded (recovery).
    Recovery,
}

/// A window of the recovery list: a change that blocked `[change.from,
/// until)`, `until` clipped to the day it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryWindow {
    pub change: StandingChange,
    pub until: Option<CivilDate>,
    pub recorded_on: CivilDate,
}

/// One page of the recovery list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPage {
    pub windows: Vec<RecoveryWindow>,
    pub next_after_seq: Seq,
    pub mark: Seq,
}

/// The log: one writer (the gate's sync), readers for the feed.
pub struct ChangeLog {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    /// The committed mark, for readers that must not touch the file.
    mark: AtomicU64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    practitioner TEXT,
    institution TEXT NOT NULL,
    region TEXT NOT NULL,
    date_from TEXT NOT NULL,
    date_until TEXT,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    recorded_on TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS changes_by_seq ON changes(seq);
CREATE INDEX IF NOT EXISTS changes_by_institution ON changes(institution, seq);
CREATE INDEX IF NOT EXISTS changes_by_practitioner ON changes(practitioner, seq) WHERE practitioner IS NOT NULL;
CREATE INDEX IF NOT EXISTS changes_by_region ON changes(region, seq);
-- Beside the changes, each practitioner's sanctions (a row per institution
-- where they are filed, R16) and standing violations as of the mark,
-- replaced whole whenever an event touches the practitioner.
CREATE TABLE IF NOT EXISTS sanctions (
    practitioner TEXT NOT NULL,
    institution TEXT NOT NULL,
    region TEXT NOT NULL,
    kind TEXT NOT NULL,
    date_from TEXT NOT NULL,
    date_until TEXT,
    cause TEXT NOT NULL,
    cause_seq INTEGER NOT NULL,
    cause_region TEXT NOT NULL,
    year_total INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS sanctions_by_practitioner ON sanctions(practitioner, institution);
CREATE INDEX IF NOT EXISTS sanctions_by_from ON sanctions(date_from);
CREATE TABLE IF NOT EXISTS violations (
    practitioner TEXT NOT NULL,
    violation_id TEXT NOT NULL,
    region TEXT NOT NULL,
    effective TEXT NOT NULL,
    points INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS violations_by_practitioner ON violations(practitioner);
";

/// The region digits of an institution code (R2: a letter, then 11 digits,
/// the first six the region).
pub fn institution_region(code: InstitutionCode) -> String {
    code.to_string().chars().skip(1).take(6).collect()
}

impl ChangeLog {
    /// Opens (or creates) the log of the ledger `ledger_id` in `data_dir`;
    /// a log of another ledger is emptied first.
    pub fn open(data_dir: &Path, ledger_id: u64) -> Result<ChangeLog, ChangeLogError> {
        let path = data_dir.join(crate::data_dir::CHANGES_FILE);
        let fail = |doing: &'static str| {
            let path = path.clone();
            move |source| ChangeLogError::Storage { path, doing, source }
        };
        let writer = Connection::open(&path).map_err(fail("opening it"))?;
        writer
            .execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;")
            .map_err(fail("setting it up"))?;
        writer.execute_batch(SCHEMA).map_err(fail("creating its tables"))?;
        let stored: Option<i64> = writer
            .query_row("SELECT value FROM meta WHERE key = 'ledger_id'", [], |r| r.get(0))
            .optional()
            .map_err(fail("reading its ledger id"))?;
        if stored != Some(ledger_id as i64) {
            // Another ledger's changes (or a new log): start from seq 0.
            writer
                .execute_batch(
                    "BEGIN; DELETE FROM changes; DELETE FROM sanctions; DELETE FROM violations; DELETE FROM meta; COMMIT;",
                )
                .map_err(fail("emptying a log of another ledger"))?;
            writer
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('ledger_id', ?1), ('mark', 0)",
                    params![ledger_id as i64],
                )
                .map_err(fail("recording its ledger id"))?;
        }
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let conn = Connection::open(&path).map_err(fail("opening a reader"))?;
            conn.execute_batch("PRAGMA busy_timeout=5000; PRAGMA query_only=ON;")
                .map_err(fail("setting up a reader"))?;
            readers.push(Mutex::new(conn));
        }
        let mark = read_mark(&writer).map_err(fail("reading its mark"))?;
        Ok(ChangeLog { path, writer: Mutex::new(writer), readers, mark: AtomicU64::new(mark) })
    }

    fn storage(&self, doing: &'static str) -> impl FnOnce(rusqlite::Error) -> ChangeLogError + '_ {
        move |source| ChangeLogError::Storage { path: self.path.clone(), doing, source }
    }

    /// Every change of events up to the mark is in the log (as committed;
    /// read without touching the file).
    pub fn mark(&self) -> Seq {
        self.mark.load(Ordering::Acquire)
    }

    /// Appends the changes of the events `(after, upto]`, recorded on
    /// `recorded_on` (the gate's date: service dates before it were already
    /// past, see [`ChangeLog::recovery`]), and moves the mark to `upto`, in
    /// one transaction; `Ok(false)`, nothing written, when the mark is not
    /// `after` (another writer got there first, or the log is behind and
    /// catching up).
    pub fn append(
        &self,
        after: Seq,
        upto: Seq,
        batch: &BatchChanges,
        recorded_on: CivilDate,
    ) -> Result<bool, ChangeLogError> {
        let changes = &batch.changes;
        assert!(upto >= after, "the mark would go back: {after} -> {upto}");
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(self.storage("beginning an append"))?;
        if read_mark(&tx).map_err(self.storage("reading its mark"))? != after {
            return Ok(false);
        }
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO changes (seq, kind, practitioner, institution, region, date_from, date_until,
                     before, after, recorded_on) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(self.storage("preparing an append"))?;
            for c in changes {
                assert!(c.seq > after && c.seq <= upto, "a change of seq {} outside ({after}, {upto}]", c.seq);
                insert
                    .execute(params![
                        c.seq as i64,
                        c.kind,
                        c.practitioner.map(|p| p.to_string()),
                        c.institution.to_string(),
                        institution_region(c.institution),
                        c.from.to_string(),
                        c.until.map(|u| u.to_string()),
                        c.before.as_str(),
                        c.after.as_str(),
                        recorded_on.to_string(),
                    ])
                    .map_err(self.storage("appending changes"))?;
            }
        }
        self.replace_standings(&tx, &batch.practitioners)?;
        tx.execute("UPDATE meta SET value = ?1 WHERE key = 'mark'", params![upto as i64])
            .map_err(self.storage("moving its mark"))?;
        tx.commit().map_err(self.storage("committing an append"))?;
        self.mark.store(upto, Ordering::Release);
        Ok(true)
    }

    /// Replaces the sanctions and standing violations of each practitioner.
    fn replace_standings(&self, tx: &Connection, practitioners: &[PractitionerStanding]) -> Result<(), ChangeLogError> {
        let doing = "recording sanctions and violations";
        let mut delete_s =
            tx.prepare_cached("DELETE FROM sanctions WHERE practitioner = ?1").map_err(self.storage(doing))?;
        let mut delete_v =
            tx.prepare_cached("DELETE FROM violations WHERE practitioner = ?1").map_err(self.storage(doing))?;
        let mut insert_s = tx
            .prepare_cached(
                "INSERT INTO sanctions (practitioner, institution, region, kind, date_from, date_until, cause,
                 cause_seq, cause_region, year_total) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(self.storage(doing))?;
        let mut insert_v = tx
            .prepare_cached(
                "INSERT INTO violations (practitioner, violation_id, region, effective, points) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(self.storage(doing))?;
        for p in practitioners {
            let code = p.code.to_string();
            delete_s.execute([&code]).map_err(self.storage(doing))?;
            delete_v.execute([&code]).map_err(self.storage(doing))?;
            let filed: std::collections::BTreeSet<InstitutionCode> =
                p.registrations.iter().map(|r| r.institution).collect();
            for s in &p.sanctions {
                let cause_region = p
                    .violations
                    .iter()
                    .find(|v| v.seq == s.cause_seq)
                    .map_or_else(String::new, |v| institution_region(v.violation.institution));
                let kind = match s.kind {
                    SanctionKind::Suspension => "suspension",
                    SanctionKind::Termination => "termination",
                };
                for &institution in &filed {
                    insert_s
                        .execute(params![
                            code,
                            institution.to_string(),
                            institution_region(institution),
                            kind,
                            s.interval.from.to_string(),
                            s.interval.until.map(|u| u.to_string()),
                            s.cause.as_str(),
                            s.cause_seq as i64,
                            cause_region,
                            s.year_total,
                        ])
                        .map_err(self.storage(doing))?;
                }
            }
            for v in p.violations.iter().filter(|v| v.revoked.is_none()) {
                insert_v
                    .execute(params![
                        code,
                        v.violation.violation_id.as_str(),
                        institution_region(v.violation.institution),
                        v.violation.effective.to_string(),
                        v.violation.points,
                    ])
                    .map_err(self.storage(doing))?;
            }
        }
        Ok(())
    }

    /// Who is suspended or terminated on `day` (issue 16): a row per
    /// sanctioned practitioner and institution where they are filed (R16),
    /// in (practitioner, institution) order after `after` (a cursor), at
    /// most `limit`, filtered by institution, region and kind.
    pub fn sanctions_on(&self, day: CivilDate, q: &SanctionQuery) -> Result<(Vec<SanctionRow>, Seq), ChangeLogError> {
        let limit = q.limit.clamp(1, MAX_PAGE_CHANGES);
        let mut conn = self.reader();
        let tx = conn.transaction().map_err(self.storage("beginning a read"))?;
        let mark = read_mark(&tx).map_err(self.storage("reading its mark"))?;
        let mut sql = String::from(
            "SELECT practitioner, institution, kind, date_from, date_until, cause, cause_seq, year_total FROM sanctions
             WHERE date_from <= ?1 AND (date_until IS NULL OR date_until > ?1)",
        );
        let mut args: Vec<String> = vec![day.to_string()];
        let and = |sql: &mut String, args: &mut Vec<String>, cond: &str, v: String| {
            args.push(v);
            sql.push_str(&cond.replace("?", &format!("?{}", args.len())));
        };
        if let Some(i) = q.institution {
            and(&mut sql, &mut args, " AND institution = ?", i.to_string());
        }
        if let Some(r) = &q.region {
            and(&mut sql, &mut args, " AND region = ?", r.clone());
        }
        if let Some(k) = q.kind {
            and(&mut sql, &mut args, " AND kind = ?", k.to_owned());
        }
        if let Some((p, i)) = &q.after {
            args.push(p.clone());
            args.push(i.clone());
            sql.push_str(&format!(" AND (practitioner, institution) > (?{}, ?{})", args.len() - 1, args.len()));
        }
        sql.push_str(&format!(" ORDER BY practitioner, institution, date_from LIMIT {limit}"));
        let mut stmt = tx.prepare(&sql).map_err(self.storage("preparing a read"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok(SanctionRow {
                    practitioner: r.get(0)?,
                    institution: r.get(1)?,
                    kind: r.get(2)?,
                    from: r.get(3)?,
                    until: r.get(4)?,
                    cause: r.get(5)?,
                    cause_seq: r.get::<_, i64>(6)? as Seq,
                    year_total: r.get(7)?,
                })
            })
            .map_err(self.storage("reading sanctions"))?;
        let rows = rows.collect::<Result<Vec<_>, _>>().map_err(self.storage("reading sanctions"))?;
        Ok((rows, mark))
    }

    /// Counts by region and month (issue 16): standing violations by their
    /// institution's region and effective month; suspensions and
    /// terminations by their cause's region and start month (a sanction
    /// once, however many institutions it applies at).
    pub fn statistics(&self) -> Result<(Vec<MonthCount>, Seq), ChangeLogError> {
        let mut conn = self.reader();
        let tx = conn.transaction().map_err(self.storage("beginning a read"))?;
        let mark = read_mark(&tx).map_err(self.storage("reading its mark"))?;
        let mut stmt = tx
            .prepare_cached(
                "SELECT region, substr(effective, 1, 7), 'violations', count(*) FROM violations GROUP BY 1, 2
                 UNION ALL
                 SELECT cause_region, substr(date_from, 1, 7), kind, count(*) FROM
                   (SELECT DISTINCT practitioner, cause_seq, kind, date_from, cause_region FROM sanctions)
                 GROUP BY 1, 2, 3
                 ORDER BY 1, 2, 3",
            )
            .map_err(self.storage("preparing statistics"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(MonthCount {
                    region: r.get(0)?,
                    month: r.get(1)?,
                    what: r.get(2)?,
                    count: r.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(self.storage("counting"))?;
        let rows = rows.collect::<Result<Vec<_>, _>>().map_err(self.storage("counting"))?;
        Ok((rows, mark))
    }

    /// The changes of events after `after_seq` that `filter` selects, at most
    /// about `limit` (capped at [`MAX_PAGE_CHANGES`]; a `seq` is never split).
    pub fn page(&self, after_seq: Seq, filter: &ChangeFilter, limit: usize) -> Result<Page, ChangeLogError> {
        let (rows, next_after_seq, mark) = self.read_page(after_seq, filter, limit, Rows::Changes)?;
        Ok(Page { changes: rows.into_iter().map(|(c, _)| c).collect(), next_after_seq, mark })
    }

    /// The recovery list (issue 16): windows that became blocked (`ok`
    /// before, a reject reason after) for service dates already past when
    /// the change was recorded, clipped to those dates: claims settled there
    /// may have to be recovered. After `after_seq`, at most about `limit`
    /// windows (a seq is not split), filtered as [`ChangeLog::page`].
    pub fn recovery(
        &self,
        after_seq: Seq,
        filter: &ChangeFilter,
        limit: usize,
    ) -> Result<RecoveryPage, ChangeLogError> {
        let (rows, next_after_seq, mark) = self.read_page(after_seq, filter, limit, Rows::Recovery)?;
        let windows = rows
            .into_iter()
            .map(|(change, recorded_on)| {
                let until = Some(change.until.map_or(recorded_on, |u| u.min(recorded_on)));
                RecoveryWindow { until, recorded_on, change }
            })
            .collect();
        Ok(RecoveryPage { windows, next_after_seq, mark })
    }

    /// The rows `rows` names after `after_seq` and up to the mark that
    /// `filter` selects, with the day each was recorded: at most `limit`
    /// (capped at [`MAX_PAGE_CHANGES`]), except that a page never splits one
    /// seq's rows: a page cut inside a seq ends before it, and a seq alone
    /// past the limit is read whole (one event's changes are few). Returns
    /// the rows, the `after_seq` to ask next, and the mark.
    #[allow(clippy::type_complexity)]
    fn read_page(
        &self,
        after_seq: Seq,
        filter: &ChangeFilter,
        limit: usize,
        rows: Rows,
    ) -> Result<(Vec<(StandingChange, CivilDate)>, Seq, Seq), ChangeLogError> {
        let limit = limit.clamp(1, MAX_PAGE_CHANGES);
        let mut conn = self.reader();
        let tx = conn.transaction().map_err(self.storage("beginning a read"))?;
        let mark = read_mark(&tx).map_err(self.storage("reading its mark"))?;
        let mut got = self.select(&tx, after_seq, mark, filter, rows, Some(limit + 1))?;
        let next_after_seq = if got.len() > limit {
            let last = got[limit].0.seq;
            got.retain(|(c, _)| c.seq != last);
            match got.last() {
                Some((c, _)) => c.seq,
                None => {
                    got = self.select(&tx, last - 1, last, filter, rows, None)?;
                    last
                }
            }
        } else {
            // Nothing more up to the mark (a page asked past it stays put).
            mark.max(after_seq)
        };
        Ok((got, next_after_seq, mark))
    }

    /// The rows `rows` names with `after < seq <= upto` that `filter`
    /// selects, in (seq, id) order, at most `limit`.
    fn select(
        &self,
        conn: &Connection,
        after: Seq,
        upto: Seq,
        filter: &ChangeFilter,
        rows: Rows,
        limit: Option<usize>,
    ) -> Result<Vec<(StandingChange, CivilDate)>, ChangeLogError> {
        let (clause, args) = filter_clause(filter, 3);
        let only = match rows {
            Rows::Changes => "",
            Rows::Recovery => " AND before = 'ok' AND after <> 'ok' AND date_from < recorded_on",
        };
        let sql = format!(
            "SELECT seq, kind, practitioner, institution, date_from, date_until, before, after, recorded_on
             FROM changes WHERE seq > ?1 AND seq <= ?2{only}{clause} ORDER BY seq, id LIMIT ?3"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(self.storage("preparing a read"))?;
        // SQLite reads a negative LIMIT as none.
        let (after, upto, lim) = (after as i64, upto as i64, limit.map_or(-1, |l| l as i64));
        let mut bound: Vec<&dyn rusqlite::ToSql> = vec![&after, &upto, &lim];
        bound.extend(args.iter().map(|a| a as &dyn rusqlite::ToSql));
        let found = stmt
            .query_map(bound.as_slice(), |r| Ok((raw_row(r)?, r.get::<_, String>(8)?)))
            .map_err(self.storage("reading changes"))?;
        let mut out = Vec::new();
        for row in found {
            let (row, recorded_on) = row.map_err(self.storage("reading changes"))?;
            let recorded_on = CivilDate::parse(&recorded_on)
                .map_err(|e| ChangeLogError::Corrupt { path: self.path.clone(), detail: e.0 })?;
            out.push((self.decode(row)?, recorded_on));
        }
        Ok(out)
    }

    /// Whether a change after `seq` covers `day` for the practitioner at the
    /// institution (either side: theirs, or the institution's own).
    pub fn covered_later(
        &self,
        seq: Seq,
        practitioner: PractitionerCode,
        institution: InstitutionCode,
        day: CivilDate,
    ) -> Result<bool, ChangeLogError> {
        let conn = self.reader();
        let day = day.to_string();
        conn.prepare_cached(
            "SELECT 1 FROM changes WHERE institution = ?1 AND seq > ?2
               AND (practitioner = ?3 OR practitioner IS NULL)
               AND date_from <= ?4 AND (date_until IS NULL OR date_until > ?4) LIMIT 1",
        )
        .and_then(|mut stmt| stmt.exists(params![institution.to_string(), seq as i64, practitioner.to_string(), day]))
        .map_err(self.storage("looking for a later change"))
    }

    fn decode(
        &self,
        (seq, kind, practitioner, institution, from, until, before, after): RawRow,
    ) -> Result<StandingChange, ChangeLogError> {
        let bad = |detail: String| ChangeLogError::Corrupt { path: self.path.clone(), detail };
        let date = |s: &str| CivilDate::parse(s).map_err(|e| bad(format!("seq {seq}: {e}")));
        let reason = |s: &str| Reason::parse(s).ok_or_else(|| bad(format!("seq {seq}: reason `{s}`")));
        Ok(StandingChange {
            seq: seq as Seq,
            kind: Event::kind_named(&kind).ok_or_else(|| bad(format!("seq {seq}: kind `{kind}`")))?,
            practitioner: practitioner
                .map(|p| PractitionerCode::parse(&p).map_err(|e| bad(format!("seq {seq}: {e}"))))
                .transpose()?,
            institution: InstitutionCode::parse(&institution).map_err(|e| bad(format!("seq {seq}: {e}")))?,
            from: date(&from)?,
            until: until.as_deref().map(date).transpose()?,
            before: reason(&before)?,
            after: reason(&after)?,
        })
    }

    /// A free reader, else the first once it is free.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.readers.iter().find_map(|r| r.try_lock().ok()).unwrap_or_else(|| lock(&self.readers[0]))
    }
}

/// A change's columns as stored, in the order every read selects them.
type RawRow = (i64, String, Option<String>, String, String, Option<String>, String, String);

/// The columns of [`RawRow`] from a row that starts with them.
fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
}

/// The filter's conditions (` AND column = ?n`, numbered after `taken`
/// parameters) and their values.
fn filter_clause(filter: &ChangeFilter, taken: usize) -> (String, Vec<String>) {
    let mut clause = String::new();
    let mut args = Vec::new();
    for (column, value) in [
        ("institution", filter.institution.map(|i| i.to_string())),
        ("practitioner", filter.practitioner.map(|p| p.to_string())),
        ("region", filter.region.clone()),
    ] {
        if let Some(value) = value {
            args.push(value);
            clause.push_str(&format!(" AND {column} = ?{}", args.len() + taken));
        }
    }
    (clause, args)
}

fn read_mark(conn: &Connection) -> rusqlite::Result<Seq> {
    conn.query_row("SELECT value FROM meta WHERE key = 'mark'", [], |r| r.get::<_, i64>(0)).map(|m| m as Seq)
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seq: Seq, institution: &str, practitioner: Option<&str>) -> StandingChange {
        StandingChange {
            seq,
            kind: "violation_scored",
            practitioner: practitioner.map(|p| PractitionerCode::parse(p).unwrap()),
            institution: InstitutionCode::parse(institution).unwrap(),
            from: CivilDate::parse("2026-03-10").unwrap(),
            until: Some(CivilDate::parse("2026-05-10").unwrap()),
            before: Reason::Ok,
            after: Reason::PractitionerSuspended,
        }
    }

    fn of(changes: &[StandingChange]) -> BatchChanges {
        BatchChanges { changes: changes.to_vec(), practitioners: Vec::new() }
    }

    fn day() -> CivilDate {
        CivilDate::parse("2026-12-07").unwrap()
    }

    const H1: &str = "H11010500001";
    const H2: &str = "H31011500007";
    const P1: &str = "D110105000001";

    #[test]
    fn pages_resume_after_their_last_seq_and_never_split_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = ChangeLog::open(dir.path(), 7).unwrap();
        assert_eq!(log.mark(), 0);
        let batch = [change(1, H1, Some(P1)), change(1, H2, Some(P1)), change(2, H1, None), change(4, H2, None)];
        assert!(log.append(0, 5, &of(&batch), day()).unwrap());
        assert!(!log.append(0, 6, &of(&[]), day()).unwrap(), "not after the mark: nothing written");
        let all = ChangeFilter::default();
        let first = log.page(0, &all, 1).unwrap();
        assert_eq!(first.changes, batch[..2], "seq 1's two changes whole, past the limit of 1");
        assert_eq!(first.next_after_seq, 1);
        let second = log.page(1, &all, 2).unwrap();
        assert_eq!((second.changes.as_slice(), second.next_after_seq, second.mark), (&batch[2..], 5, 5));
        let at_h2 = log.page(0, &ChangeFilter { institution: batch[1].institution.into(), ..all.clone() }, 10).unwrap();
        assert_eq!(at_h2.changes, [batch[1].clone(), batch[3].clone()]);
        let region = ChangeFilter { region: Some("310115".into()), ..all.clone() };
        assert_eq!(log.page(0, &region, 10).unwrap().changes, at_h2.changes);
        let p1 = ChangeFilter { practitioner: batch[0].practitioner, ..all };
        assert_eq!(log.page(0, &p1, 10).unwrap().changes, batch[..2]);
    }

    #[test]
    fn a_recovery_page_never_drops_a_seq_whose_windows_pass_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let log = ChangeLog::open(dir.path(), 7).unwrap();
        // One back-dated violation blocking past days at two institutions, then another at one.
        let blocked = |seq, institution| StandingChange {
            from: CivilDate::parse("2025-03-10").unwrap(),
            ..change(seq, institution, Some(P1))
        };
        let batch = [blocked(2, H1), blocked(2, H2), blocked(3, H1)];
        assert!(log.append(0, 3, &of(&batch), day()).unwrap());
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let page = log.recovery(after, &ChangeFilter::default(), 1).unwrap();
            if page.windows.is_empty() && page.next_after_seq == after {
                break;
            }
            seen.extend(page.windows.into_iter().map(|w| (w.change.seq, w.change.institution)));
            after = page.next_after_seq;
        }
        let expected: Vec<_> = batch.iter().map(|c| (c.seq, c.institution)).collect();
        assert_eq!(seen, expected, "seq 2's two windows whole, past the limit of 1; then seq 3");
    }

    #[test]
    fn a_log_of_another_ledger_is_emptied_and_one_of_the_same_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = ChangeLog::open(dir.path(), 7).unwrap();
        assert!(log.append(0, 3, &of(&[change(2, H1, None)]), day()).unwrap());
        drop(log);
        let same = ChangeLog::open(dir.path(), 7).unwrap();
        assert_eq!((same.mark(), same.page(0, &ChangeFilter::default(), 10).unwrap().changes.len()), (3, 1));
        drop(same);
        let other = ChangeLog::open(dir.path(), 8).unwrap();
        assert_eq!((other.mark(), other.page(0, &ChangeFilter::default(), 10).unwrap().changes.len()), (0, 0));
    }
}
