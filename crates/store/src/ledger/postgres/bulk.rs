//! PostgreSQL's half of a bulk load ([`crate::ledger::bulk`]): one
//! transaction on a session of its own that locks the head, drops the
//! `events` table's secondary indexes, COPYs each batch's rows in (binary
//! format), builds the indexes again by sorting, moves the head and commits,
//! notifying the other nodes as an append does.
//!
//! DDL is transactional in PostgreSQL: until the commit, other sessions'
//! reads of `events` wait for the dropped indexes' lock and their appends
//! for the head's, and a load that fails or whose client dies is rolled
//! back whole, leaving the empty ledger with its indexes.

use super::*;
use crate::ledger::bulk::Sink;
use crate::ledger::Ledger;
use ::postgres::binary_copy::BinaryCopyInWriter;
use ::postgres::types::Type;

/// Memory each index build may sort in before it spills to disk.
const BULK_MAINTENANCE_WORK_MEM: &str = "1GB";
/// An index build over tens of millions of rows takes minutes; between
/// batches the client reads its files. Longer than the append sessions'
/// 60 s, still bounded: a client that vanished frees the head.
const BULK_IDLE_TIMEOUT: &str = "10min";

const COPY_EVENTS: &str = "COPY events (seq, kind, effective, practitioner, institution, violation_id, body, event_id, points) FROM STDIN (FORMAT binary)";
const COPY_TYPES: [Type; 9] =
    [Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::INT8];
/// The `events` table's indexes other than its primary key, with their definitions.
const SECONDARY_INDEXES: &str = "SELECT c.relname, pg_get_indexdef(i.indexrelid)
     FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
     WHERE i.indrelid = 'events'::regclass AND NOT i.indisprimary ORDER BY c.relname";

/// A load in its open transaction.
pub(in crate::ledger) struct PgSink {
    client: Client,
    ledger: PostgresLedger,
    indexes: Vec<(String, String)>,
}

impl PostgresLedger {
    /// A bulk load's transaction, begun and holding the head, if the ledger
    /// is empty; else the ledger back.
    pub(in crate::ledger) fn into_bulk(self) -> Result<Result<PgSink, PostgresLedger>, LedgerError> {
        const DOING: &str = "starting a bulk load";
        let mut client = self.target.connect(&self.target.writer_session)?;
        client
            .batch_execute(&format!(
                "SET idle_in_transaction_session_timeout TO '{BULK_IDLE_TIMEOUT}'; \
                 BEGIN; SET LOCAL maintenance_work_mem TO '{BULK_MAINTENANCE_WORK_MEM}'"
            ))
            .map_err(pg(DOING))?;
        let head = head_from(client.query_opt(LOCK_HEAD, &[]).map_err(pg("locking the ledger head"))?)?;
        if head != 0 {
            client.batch_execute("ROLLBACK").map_err(pg(DOING))?;
            return Ok(Err(self));
        }
        let indexes: Vec<(String, String)> = client
            .query(SECONDARY_INDEXES, &[])
            .map_err(pg(DOING))?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, ::postgres::Error>>()
            .map_err(pg(DOING))?;
        for (name, _) in &indexes {
            client.batch_execute(&format!("DROP INDEX {}", quote_ident(name))).map_err(pg(DOING))?;
        }
        Ok(Ok(PgSink { client, ledger: self, indexes }))
    }
}

impl Sink for PgSink {
    fn write(&mut self, rows: &[sql::Columns<'_>]) -> Result<(), LedgerError> {
        const DOING: &str = "copying a bulk load's rows";
        if rows.is_empty() {
            return Ok(());
        }
        let writer = self.client.copy_in(COPY_EVENTS).map_err(pg(DOING))?;
        let mut copy = BinaryCopyInWriter::new(writer, &COPY_TYPES);
        for c in rows {
            copy.write(&row_params(c)).map_err(pg(DOING))?;
        }
        copy.finish().map_err(pg(DOING))?;
        Ok(())
    }

    fn body_at(&mut self, seq: Seq) -> Result<Option<String>, LedgerError> {
        const DOING: &str = "reading back a bulk-loaded event";
        let row = self.client.query_opt("SELECT body FROM events WHERE seq = $1", &[&to_db(seq)]).map_err(pg(DOING))?;
        row.map(|r| r.try_get(0)).transpose().map_err(pg(DOING))
    }

    fn finish(mut self: Box<Self>, head: Seq, progress: &mut dyn FnMut(&str)) -> Result<Ledger, LedgerError> {
        const DOING: &str = "indexing a bulk load";
        for (name, create) in &self.indexes {
            progress(&format!("building index {name}"));
            self.client.batch_execute(create).map_err(pg(DOING))?;
        }
        if head > 0 {
            self.client
                .query(SET_HEAD_AND_NOTIFY, &[&to_db(head), &NOTIFY_CHANNEL])
                .map_err(pg("moving the ledger head"))?;
        }
        progress("committing");
        self.client.batch_execute("COMMIT").map_err(pg("committing a bulk load"))?;
        progress("done");
        Ok(Ledger { backend: super::super::Backend::Postgres(self.ledger) })
    }
}
