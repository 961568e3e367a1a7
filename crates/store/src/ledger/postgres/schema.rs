//! A PostgreSQL ledger's schema at open: created or migrated (additively,
//! in one transaction, one node at a time under an advisory lock), checked
//! against the policy it was created with, and the durability settings the
//! session runs with read back and refused by name when they could lose an
//! acknowledged event (R5).

use super::*;

/// `MIGRATIONS[v]` takes the schema from version `v` to `v + 1`; version 0 is
/// an empty `claimgate_schema` table. Code columns compare bytewise (`"C"`),
/// so grouping and ordering match the embedded ledger whatever the database's
/// collation.
pub(super) const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE claimgate_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE events (
    seq          bigint PRIMARY KEY,
    kind         text COLLATE \"C\" NOT NULL,
    effective    text NOT NULL,
    practitioner text COLLATE \"C\",
    institution  text COLLATE \"C\",
    violation_id text COLLATE \"C\",
    body         text NOT NULL
);
CREATE INDEX events_by_practitioner ON events(practitioner, kind) WHERE practitioner IS NOT NULL;
CREATE INDEX events_by_institution ON events(institution, kind) WHERE institution IS NOT NULL;
CREATE INDEX events_by_violation ON events(violation_id, kind) WHERE violation_id IS NOT NULL;
CREATE TABLE claimgate_head (id int PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL);
INSERT INTO claimgate_head (id, seq) VALUES (1, 0);
",
    "
-- Version 2 (RULES.md v2): event_id for re-sends (R7a), unique among accepted
-- events; points of violations and repairs, so validation reads scoring steps
-- without decoding bodies. The backfill derives the column from each row's own
-- body, once; no event's content changes.
ALTER TABLE events ADD COLUMN event_id text COLLATE \"C\", ADD COLUMN points bigint;
UPDATE events SET points = (body::json->>'points')::bigint WHERE kind IN ('violation_scored', 'points_repaired');
CREATE UNIQUE INDEX events_by_event_id ON events(event_id) WHERE event_id IS NOT NULL;
CREATE INDEX events_scoring ON events(practitioner, effective COLLATE \"C\") INCLUDE (kind, points, violation_id)
    WHERE kind IN ('violation_scored', 'points_repaired');
",
];

/// Creates or migrates the ledger in the target schema and checks it against
/// `policy`, in one transaction; returns the ledger id.
pub(super) fn init(client: &mut Client, target: &Target, policy: &Policy) -> Result<u64, LedgerError> {
    const DOING: &str = "creating the ledger schema";
    let schema = target.schema.as_str();
    let mut tx = client.transaction().map_err(pg(DOING))?;
    // Nodes opening the same schema at once take turns.
    let key = (xxhash_rust::xxh3::xxh3_64(format!("claimgate:{schema}").as_bytes()) >> 1) as i64;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key]).map_err(pg(DOING))?;
    let count = |tx: &mut Transaction<'_>, sql: &str| -> Result<i64, LedgerError> {
        tx.query_one(sql, &[&schema]).and_then(|row| row.try_get(0)).map_err(pg(DOING))
    };
    if count(&mut tx, "SELECT count(*) FROM pg_namespace WHERE nspname = $1")? == 0 {
        // Only when absent: a schema made beforehand needs no CREATE right on the database.
        tx.batch_execute(&format!("CREATE SCHEMA {}", quote_ident(schema))).map_err(pg(DOING))?;
    }
    let versioned = count(
        &mut tx,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = 'claimgate_schema' AND c.relkind IN ('r', 'p')",
    )?;
    if versioned == 0 {
        let others = count(
            &mut tx,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
        )?;
        if others > 0 {
            return Err(target.refuse(format!(
                "schema `{schema}` already holds {others} relations of another application and no claimgate_schema table"
            )));
        }
        tx.batch_execute(
            "CREATE TABLE claimgate_schema (version bigint NOT NULL); INSERT INTO claimgate_schema VALUES (0);",
        )
        .map_err(pg(DOING))?;
    }
    let versions: Vec<i64> = tx
        .query("SELECT version FROM claimgate_schema", &[])
        .map_err(pg("reading the schema version"))?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(pg("reading the schema version"))?;
    let [found] = versions[..] else {
        return Err(target.refuse(format!("its claimgate_schema table holds {} rows instead of one", versions.len())));
    };
    if found > SCHEMA_VERSION {
        return Err(LedgerError::SchemaTooNew {
            path: PathBuf::from(&target.description),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 0 {
        return Err(target.refuse(format!("its schema version is {found}")));
    }
    if found < SCHEMA_VERSION {
        for migration in &MIGRATIONS[found as usize..SCHEMA_VERSION as usize] {
            tx.batch_execute(migration).map_err(pg("migrating the ledger schema"))?;
        }
        tx.execute("UPDATE claimgate_schema SET version = $1", &[&SCHEMA_VERSION])
            .map_err(pg("migrating the ledger schema"))?;
    }
    let policy_json = serde_json::to_string(policy).expect("policy serializes");
    if found == 0 {
        tx.execute(
            "INSERT INTO claimgate_meta (key, value) VALUES ('policy', $1), ('ledger_id', $2)",
            &[&policy_json, &crate::ledger::new_ledger_id()?.to_string()],
        )
        .map_err(pg(DOING))?;
    }
    let mut meta = |key: &str| -> Result<Option<String>, LedgerError> {
        tx.query_opt("SELECT value FROM claimgate_meta WHERE key = $1", &[&key])
            .and_then(|row| row.map(|r| r.try_get(0)).transpose())
            .map_err(pg("reading ledger metadata"))
    };
    let stored_policy = meta("policy")?.unwrap_or_default();
    if serde_json::from_str::<Policy>(&stored_policy).ok().as_ref() != Some(policy) {
        return Err(LedgerError::PolicyMismatch { stored: stored_policy });
    }
    let id = meta("ledger_id")?.and_then(|v| v.parse().ok()).unwrap_or(0);
    let head = head_from(tx.query_opt(READ_HEAD, &[]).map_err(pg("reading the ledger head"))?)?;
    let last: i64 = tx
        .query_one("SELECT coalesce(max(seq), 0) FROM events", &[])
        .and_then(|row| row.try_get(0))
        .map_err(pg("reading the ledger head"))?;
    if last as Seq != head {
        return Err(LedgerError::Corrupt {
            seq: last as Seq,
            message: format!("the head row says {head} but the last stored event is {last}"),
        });
    }
    tx.commit().map_err(pg(DOING))?;
    Ok(id)
}

/// `synchronous_commit` values under which a commit returns only after its
/// WAL is flushed to this server's disk: `local`, `on`, and the two that
/// also wait for a synchronous standby (`remote_write`, `remote_apply`; with
/// no standby named they act as `on`). Only `off` returns before the flush.
pub(super) const DURABLE_SYNCHRONOUS_COMMIT: &[&str] = &["on", "local", "remote_write", "remote_apply"];

/// Why the append session is not durable, as (setting, value with its
/// source, what to do), or `None` when it is: `fsync` must be `on` (with it
/// off the server never flushes, whatever a session asks) and
/// `synchronous_commit` one of [`DURABLE_SYNCHRONOUS_COMMIT`]. Each setting
/// is `(value, pg_settings.source)`; `user` is the role claimgate logs in as.
/// A session set to `off` is refused rather than set back to `on`: the
/// operator, a role or the URL asked for it, and the fix belongs there.
pub(super) fn durability_refusal(
    synchronous_commit: (&str, &str),
    fsync: (&str, &str),
    user: &str,
) -> Option<(&'static str, String, String)> {
    let (value, source) = fsync;
    if value != "on" {
        return Some((
            "fsync",
            value.to_owned(),
            format!("It comes from the server's {source}: the server never flushes its WAL to disk. Set `fsync = on` in postgresql.conf and reload the server \
             (`SELECT pg_reload_conf()`); a crash while it was off may have damaged the database, so check it \
             (amcheck, pg_checksums) before appending again"
            ),
        ));
    }
    let (value, source) = synchronous_commit;
    if DURABLE_SYNCHRONOUS_COMMIT.contains(&value) {
        return None;
    }
    let fix = match source {
        "client" => "the connection asks for it: remove `-c synchronous_commit=...` from the `options` of the \
                     --store URL"
            .to_owned(),
        "user" => format!("the role asks for it: `ALTER ROLE {user} RESET synchronous_commit`"),
        "database" => "the database asks for it: `ALTER DATABASE <db> RESET synchronous_commit`".to_owned(),
        "database user" => {
            format!(
                "the role in this database asks for it: `ALTER ROLE {user} IN DATABASE <db> RESET synchronous_commit`"
            )
        }
        _ => format!(
            "set `synchronous_commit = on` in postgresql.conf and reload, or only for claimgate's role: \
             `ALTER ROLE {user} SET synchronous_commit = on`"
        ),
    };
    Some(("synchronous_commit", value.to_owned(), format!("It comes from {source} (pg_settings.source): {fix}")))
}
