//! The embedded ledger's half of a bulk load ([`super::super::bulk`]): a new
//! ledger file built in `DATA/bulk-in-progress/`, rows appended in `seq`
//! order without the secondary indexes, which are created by sorting at the
//! end; then the file is synced and renamed over the (empty) ledger.
//!
//! The file is not a ledger until it is renamed into place, so while it is
//! built it needs no journal and no syncs: a crash leaves a directory the
//! next load (or nothing else) removes, and the ledger untouched.

use super::{io, storage, EmbeddedLedger, LEDGER_FILE};
use crate::ledger::bulk::Sink;
use crate::ledger::{sql, Ledger, LedgerError};
use claimgate_rules::domain::Seq;
use claimgate_rules::policy::Policy;
use rusqlite::{Connection, OptionalExtension};
use std::path::{Path, PathBuf};

/// Where a bulk load builds the new ledger file, inside the data directory.
pub const BULK_ASIDE: &str = "bulk-in-progress";
/// The page cache of the building connection, KiB: also the memory SQLite
/// sorts an index's keys in before it spills to temporary files.
const BULK_CACHE_KIB: i64 = 1024 * 1024;

/// The new ledger file under construction.
pub(in crate::ledger) struct SqliteSink {
    conn: Option<Connection>,
    data_dir: PathBuf,
    aside: PathBuf,
    /// The secondary indexes to build at the end: name and `CREATE` statement.
    indexes: Vec<(String, String)>,
    policy: Policy,
}

impl SqliteSink {
    /// Closes `ledger` (empty, checked by the caller) and starts its replacement.
    pub(in crate::ledger) fn start(ledger: EmbeddedLedger) -> Result<SqliteSink, LedgerError> {
        const DOING: &str = "starting a bulk load";
        let data_dir = ledger.path.parent().map(Path::to_owned).unwrap_or_default();
        let (id, policy) = (ledger.id, ledger.policy.clone());
        drop(ledger);
        let aside = data_dir.join(BULK_ASIDE);
        if aside.exists() {
            // An interrupted load's leftovers: never a ledger.
            std::fs::remove_dir_all(&aside).map_err(io("removing an interrupted bulk load", &aside))?;
        }
        // A new, empty ledger made the usual way, then opened raw to fill.
        drop(EmbeddedLedger::open(&aside, &policy)?);
        let conn = Connection::open(aside.join(LEDGER_FILE)).map_err(storage(DOING))?;
        // Same identity as the ledger it replaces: snapshots of that one stay its own.
        conn.execute("UPDATE meta SET value = ?1 WHERE key = 'ledger_id'", [id.to_string()]).map_err(storage(DOING))?;
        let indexes = {
            let mut stmt = conn
                .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL ORDER BY name")
                .map_err(storage(DOING))?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(storage(DOING))?;
            rows.collect::<rusqlite::Result<Vec<(String, String)>>>().map_err(storage(DOING))?
        };
        for (name, _) in &indexes {
            conn.execute_batch(&format!("DROP INDEX \"{name}\"")).map_err(storage(DOING))?;
        }
        // Not yet a ledger: nothing to journal or sync until `finish`.
        conn.pragma_update_and_check(None, "journal_mode", "OFF", |_| Ok(())).map_err(storage(DOING))?;
        conn.pragma_update(None, "synchronous", "OFF").map_err(storage(DOING))?;
        conn.pragma_update(None, "cache_size", -BULK_CACHE_KIB).map_err(storage(DOING))?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        conn.pragma_update(None, "threads", threads as i64).map_err(storage(DOING))?;
        Ok(SqliteSink { conn: Some(conn), data_dir, aside, indexes, policy })
    }

    fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("open until finish")
    }
}

impl Sink for SqliteSink {
    fn write(&mut self, rows: &[sql::Columns<'_>]) -> Result<(), LedgerError> {
        const DOING: &str = "writing a bulk load";
        let conn = self.conn();
        let tx = conn.unchecked_transaction().map_err(storage(DOING))?;
        {
            let mut stmt = tx.prepare_cached(sql::INSERT).map_err(storage(DOING))?;
            for c in rows {
                stmt.execute(super::row_params(c)).map_err(storage(DOING))?;
            }
        }
        tx.commit().map_err(storage(DOING))
    }

    fn body_at(&mut self, seq: Seq) -> Result<Option<String>, LedgerError> {
        self.conn()
            .query_row("SELECT body FROM events WHERE seq = ?1", [seq as i64], |r| r.get(0))
            .optional()
            .map_err(storage("reading back a bulk-loaded event"))
    }

    fn finish(mut self: Box<Self>, _head: Seq, progress: &mut dyn FnMut(&str)) -> Result<Ledger, LedgerError> {
        const DOING: &str = "indexing a bulk load";
        let conn = self.conn.take().expect("open until finish");
        for (name, create) in &self.indexes {
            progress(&format!("building index {name}"));
            conn.execute_batch(create).map_err(storage(DOING))?;
        }
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(())).map_err(storage(DOING))?;
        conn.close().map_err(|(_, e)| storage(DOING)(e))?;
        let built = self.aside.join(LEDGER_FILE);
        std::fs::File::open(&built).and_then(|f| f.sync_all()).map_err(io("syncing a bulk-loaded ledger", &built))?;
        let target = self.data_dir.join(LEDGER_FILE);
        // The empty ledger this replaces is closed; its WAL, if any is left, must not meet the new file.
        for suffix in ["-wal", "-shm"] {
            let stale = self.data_dir.join(format!("{LEDGER_FILE}{suffix}"));
            if stale.exists() {
                std::fs::remove_file(&stale).map_err(io("removing the empty ledger's WAL", &stale))?;
            }
        }
        std::fs::rename(&built, &target).map_err(io("moving a bulk-loaded ledger into place", &target))?;
        std::fs::File::open(&self.data_dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing the data directory", &self.data_dir))?;
        std::fs::remove_dir_all(&self.aside).map_err(io("removing a bulk load's directory", &self.aside))?;
        progress("done");
        Ledger::open(&self.data_dir, &self.policy)
    }
}
