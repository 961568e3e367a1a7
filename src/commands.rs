//! What each command does, one function per command; `main.rs` parses the
//! command line and calls one of them with a [`Cx`].

use crate::cli::{ExportArgs, FileKind, ServerArgs};
use crate::{
    append_events, bad_input, has_ledger, lock_data, open_existing, random_token, read_events, require_ledger,
    require_no_ledger, run_server, with_temporary_schema, AppendTally, Failure, Missing, EXIT_SOME_REFUSED,
};
use claimgate::claim::parse_claim;
use claimgate::clock::{Clock, SystemClock};
use claimgate::domain::{CivilDate, InstitutionCode, PractitionerCode};
use claimgate::index::snapshot::{self, Owner};
use claimgate::index::{restore, IndexHandle, Syncer};
use claimgate::ledger::Ledger;
use claimgate::policy::Policy;
use claimgate::rules::World;
use claimgate::scenario::{self, ReplayLine, Scenario};
use claimgate::transfer;
use std::io::{BufWriter, StdoutLock, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// What every command is given: the `--store` URL if any, the policy, and
/// standard output (buffered; flushed by `main` after the command).
pub struct Cx<'a> {
    pub store: Option<&'a str>,
    pub policy: Policy,
    pub out: BufWriter<StdoutLock<'a>>,
}

/// `claimgate replay FILE`: run a SCENARIOS.md file against a fresh temporary store, one JSON line per event and check.
pub fn replay(cx: &mut Cx<'_>, file: PathBuf) -> Result<(), Failure> {
    let scenario = Scenario::load(&file).map_err(|e| bad_input(e.to_string()))?;
    let dir = tempfile::tempdir()?;
    // A fresh temporary store: a directory, or a new schema dropped afterwards.
    let ledger = match cx.store {
        None => Ledger::open(dir.path(), &cx.policy)?,
        Some(url) => Ledger::open_postgres(&with_temporary_schema(url), &cx.policy)?,
    };
    for line in scenario::run(&scenario, &ledger)? {
        writeln!(cx.out, "{}", line.to_json())?;
        match &line {
            ReplayLine::Refused { event, refusal, .. } => eprintln!("event {event} refused: {refusal}"),
            ReplayLine::BadCheck { check, refusal, .. } => eprintln!("check {check} refused: {refusal}"),
            _ => {}
        }
    }
    ledger.drop_temporary()?;
    Ok(())
}

/// `claimgate append`: append events from a file or standard input, one JSON line per event, a summary on standard error.
pub fn append(cx: &mut Cx<'_>, data: PathBuf, file: Option<PathBuf>, init: bool) -> Result<(), Failure> {
    // Before anything is created: a mistyped --data must not become a new ledger.
    let missing = if init { Missing::Create } else { Missing::RefuseOrInit };
    require_ledger(&data, cx.store, missing)?;
    let values = read_events(file)?;
    // The embedded ledger is written here: the data directory must be ours.
    let _lock = if cx.store.is_none() { Some(lock_data(&data)?) } else { None };
    // Again under the lock: nothing else changes the directory from here on.
    require_ledger(&data, cx.store, missing)?;
    let ledger = Ledger::open_store(cx.store, &data, &cx.policy)?;
    // An offline writer: a damaged page anywhere refuses the append
    // (a server finds damage when it reads; this reads everything first).
    if let Some(check) = ledger.page_check() {
        check.run()?;
    }
    let mut tally = AppendTally { total: values.len(), ..AppendTally::default() };
    if let Err(Failure(message, code)) = append_events(&ledger, &values, &cx.policy, &mut cx.out, &mut tally) {
        cx.out.flush()?;
        return Err(Failure(format!("{message} (before it: {})", tally.summary()), code));
    }
    cx.out.flush()?;
    if !tally.refused.is_empty() {
        return Err(Failure(tally.summary(), EXIT_SOME_REFUSED));
    }
    eprintln!("claimgate: {}", tally.summary());
    Ok(())
}

/// `claimgate check`: decide one claim line from the two histories it names (R18), without a server.
pub fn check(
    cx: &mut Cx<'_>,
    data: PathBuf,
    practitioner: String,
    institution: String,
    date: String,
    emergency: bool,
) -> Result<(), Failure> {
    let claim = parse_claim(&serde_json::json!({
        "practitioner_id": practitioner, "institution_id": institution,
        "service_date": date, "emergency": emergency,
    }))
    .map_err(|e| bad_input(e.to_string()))?;
    let ledger = open_existing(&data, cx.store, &cx.policy)?;
    // Only the two entities the claim names decide it (R18): read
    // their histories, as of the head read first, not the ledger.
    let seq = ledger.head()?;
    let mut events = ledger.practitioner_history(claim.practitioner)?;
    events.extend(ledger.institution_history(claim.institution)?);
    events.retain(|r| r.seq <= seq);
    let decision = World::from_events(&events, &cx.policy).decide(&claim);
    let answer = serde_json::json!({
        "verdict": decision.verdict, "reason": decision.reason, "waived": decision.waived,
        "seq": seq, "institution_grade": decision.institution_grade,
    });
    writeln!(cx.out, "{answer}")?;
    Ok(())
}

/// `claimgate init`: make a new, empty embedded ledger (never over one, never over a lost one).
pub fn init(cx: &mut Cx<'_>, data: PathBuf) -> Result<(), Failure> {
    if cx.store.is_some() {
        return Err(bad_input(
            "init makes an embedded ledger under --data; a PostgreSQL store (--store, CLAIMGATE_STORE) \
                 creates its schema on first use",
        ));
    }
    require_no_ledger(&data)?;
    let _lock = lock_data(&data)?;
    // Again under the lock: another process may have made one meanwhile.
    require_no_ledger(&data)?;
    let ledger = Ledger::open(&data, &cx.policy)?;
    writeln!(cx.out, "{}", serde_json::json!({"created": ledger.describe(), "seq": ledger.head()?}))?;
    Ok(())
}

/// `claimgate snapshot write`: build the index as of the head and write it as a snapshot.
pub fn snapshot_write(cx: &mut Cx<'_>, data: PathBuf) -> Result<(), Failure> {
    require_ledger(&data, cx.store, Missing::Refuse)?;
    let _lock = lock_data(&data)?;
    let ledger = Arc::new(open_existing(&data, cx.store, &cx.policy)?);
    let started = Instant::now();
    let restored = restore::restore(&data, &ledger)?;
    for (path, why) in &restored.refused {
        eprintln!("claimgate: skipped snapshot {}: {why}", path.display());
    }
    let handle = Arc::new(IndexHandle::new(restored.version));
    Syncer::new(ledger.clone(), handle.clone()).catch_up()?;
    let base = handle.load().whole_base();
    let built = started.elapsed();
    let owner = Owner::new(ledger.id(), ledger.policy());
    let path = snapshot::write(&data.join(snapshot::SNAPSHOT_DIR), &base, owner)?;
    writeln!(
        cx.out,
        "{}",
        serde_json::json!({
            "snapshot": path.display().to_string(), "seq": base.seq(),
            "practitioners": base.practitioner_count(), "institutions": base.institution_count(),
            "bytes": base.bytes().len() + snapshot::HEADER_LEN,
            "build_seconds": built.as_secs_f64(), "total_seconds": started.elapsed().as_secs_f64(),
        })
    )?;
    Ok(())
}

/// `claimgate snapshot verify`: load and fully validate snapshots, one JSON line each.
pub fn snapshot_verify(cx: &mut Cx<'_>, files: Vec<PathBuf>, data: PathBuf) -> Result<(), Failure> {
    let files = if files.is_empty() { snapshot::list(&data.join(snapshot::SNAPSHOT_DIR))? } else { files };
    if files.is_empty() {
        return Err(bad_input(format!("no snapshots under {}", data.join(snapshot::SNAPSHOT_DIR).display())));
    }
    let mut bad = 0;
    for path in files {
        let started = Instant::now();
        let line = match snapshot::load(&path, None) {
            Ok(base) => serde_json::json!({
                "snapshot": path.display().to_string(), "valid": true, "seq": base.seq(),
                "practitioners": base.practitioner_count(), "institutions": base.institution_count(),
                "bytes": base.bytes().len() + snapshot::HEADER_LEN, "load_seconds": started.elapsed().as_secs_f64(),
            }),
            Err(e) => {
                bad += 1;
                serde_json::json!({"snapshot": path.display().to_string(), "valid": false, "error": e.to_string()})
            }
        };
        writeln!(cx.out, "{line}")?;
    }
    if bad > 0 {
        cx.out.flush()?;
        return Err(Failure(format!("{bad} snapshot(s) failed verification"), 1));
    }
    Ok(())
}

/// `claimgate audit export`: the decision log, filtered, as JSON lines or CSV, straight from the segments.
pub fn audit_export(cx: &mut Cx<'_>, args: ExportArgs) -> Result<(), Failure> {
    let ExportArgs { data, audit_dir, format, output, practitioner, institution, from, until, claim_id, reason } = args;
    let dir = audit_dir.unwrap_or_else(|| data.join(claimgate::audit::AUDIT_DIR));
    let date = |flag: &str, v: Option<String>| {
        v.map(|t| CivilDate::parse(&t).map(|d| d.to_string()).map_err(|e| bad_input(format!("{flag}: {e}"))))
            .transpose()
    };
    let q = claimgate::audit::AuditQuery {
        practitioner: practitioner
            .map(|c| PractitionerCode::parse(&c).map(|c| c.to_string()))
            .transpose()
            .map_err(|e| bad_input(format!("--practitioner: {e}")))?,
        institution: institution
            .map(|c| InstitutionCode::parse(&c).map(|c| c.to_string()))
            .transpose()
            .map_err(|e| bad_input(format!("--institution: {e}")))?,
        from: date("--from", from)?,
        until: date("--until", until)?,
        claim_id,
        reason: match reason {
            Some(r) if !claimgate::audit::query::REASONS.contains(&r.as_str()) => {
                return Err(bad_input(format!(
                    "--reason must be one of {}",
                    claimgate::audit::query::REASONS.join(", ")
                )))
            }
            r => r,
        },
        before: None,
        limit: usize::MAX,
    };
    let started = std::time::Instant::now();
    let mut progress = |e: &claimgate::audit::export::Exported| {
        eprintln!(
            "audit export: {} records read, {} written ({:.0} records/s)",
            e.examined,
            e.written,
            e.examined as f64 / started.elapsed().as_secs_f64().max(1e-9)
        )
    };
    let done = match &output {
        Some(path) => {
            let mut file = BufWriter::new(std::fs::File::create(path)?);
            let done = claimgate::audit::export::export(&dir, &q, format, &mut file, &mut progress)?;
            file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            done
        }
        None => claimgate::audit::export::export(&dir, &q, format, &mut cx.out, &mut progress)?,
    };
    eprintln!(
        "audit export: {} records written of {} read from {} segment(s) in {}, {:.1} s",
        done.written,
        done.examined,
        done.segments,
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    if !done.damaged.is_empty() {
        for d in &done.damaged {
            eprintln!("audit export: damaged, skipped: {d}");
        }
        cx.out.flush()?;
        return Err(Failure(
            format!(
                "{} damaged segment part(s) were skipped (listed above); the records before each damage were exported",
                done.damaged.len()
            ),
            1,
        ));
    }
    Ok(())
}

/// `claimgate file`: a practitioner's or institution's integrity file (R22) as of a date.
pub fn file(
    cx: &mut Cx<'_>,
    kind: FileKind,
    code: String,
    data: PathBuf,
    as_of: Option<String>,
) -> Result<(), Failure> {
    let as_of = match as_of {
        Some(text) => CivilDate::parse(&text).map_err(|e| bad_input(format!("--as-of: {e}")))?,
        None => SystemClock.today(),
    };
    let ledger = open_existing(&data, cx.store, &cx.policy)?;
    let json = match kind {
        FileKind::Practitioner => {
            let code = PractitionerCode::parse(&code).map_err(|e| bad_input(e.to_string()))?;
            let file = ledger.practitioner_file(code, as_of)?;
            file.map(|f| serde_json::to_string_pretty(&f)).transpose()?
        }
        FileKind::Institution => {
            let code = InstitutionCode::parse(&code).map_err(|e| bad_input(e.to_string()))?;
            let file = ledger.institution_file(code, as_of)?;
            file.map(|f| serde_json::to_string_pretty(&f)).transpose()?
        }
    };
    let json = json.ok_or_else(|| Failure(format!("the ledger in {} has no events for {code}", data.display()), 1))?;
    writeln!(cx.out, "{json}")?;
    Ok(())
}

/// `claimgate serve`: the gate on an existing ledger (or a new one with
/// `--init`), until SIGTERM or Ctrl-C.
pub fn serve(cx: Cx<'_>, init: bool, server: ServerArgs) -> Result<(), Failure> {
    let Cx { store, policy, out } = cx;
    let mut config = server.config()?;
    config.store = store.map(str::to_owned);
    // Before the lock creates the directory: a mistyped --data must not become a new ledger.
    let missing = if init { Missing::Create } else { Missing::RefuseOrInit };
    require_ledger(&config.data, config.store.as_deref(), missing)?;
    let lock = lock_data(&config.data)?;
    // Again under the lock (the gate checks for a lost ledger once more).
    require_ledger(&config.data, config.store.as_deref(), missing)?;
    drop(out);
    run_server(config, &policy, None, lock)
}

/// `claimgate demo`: generate (or reuse) a demo data directory, print
/// working requests, and serve it.
pub fn demo(cx: Cx<'_>, practitioners: u64, seed: u64, server: ServerArgs) -> Result<(), Failure> {
    let Cx { store, policy, out } = cx;
    let mut config = server.config()?;
    config.store = store.map(str::to_owned);
    if config.admin_token.is_none() {
        config.admin_token = Some(random_token()?);
    }
    if config.read_token.is_none() {
        config.read_token = Some(random_token()?);
    }
    // The demo makes its own ledger, but never over one that was lost.
    require_ledger(&config.data, config.store.as_deref(), Missing::Create)?;
    let lock = lock_data(&config.data)?;
    let examples = crate::demo::prepare(&config.data, config.store.as_deref(), practitioners, seed, &policy)?;
    drop(out);
    run_server(config, &policy, Some(examples), lock)
}

/// `claimgate export`: the ledger as JSON Lines with seqs, from one view.
pub fn export(cx: &mut Cx<'_>, data: PathBuf, output: Option<PathBuf>) -> Result<(), Failure> {
    let ledger = open_existing(&data, cx.store, &cx.policy)?;
    let started = Instant::now();
    let progress = |events: u64, head: u64| {
        if events % 1_000_000 < claimgate::ledger::MAX_TAIL_BATCH as u64 && events < head {
            eprintln!("export: {events} of {head} events");
        }
    };
    let done = match &output {
        Some(path) => {
            let mut file = BufWriter::new(std::fs::File::create(path)?);
            let done = transfer::export(&ledger, &mut file, progress)?;
            file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            done
        }
        None => transfer::export(&ledger, &mut cx.out, progress)?,
    };
    eprintln!(
        "claimgate: exported {} event(s), seq 1 to {}, from {} in {:.1} s",
        done.events,
        done.head,
        ledger.describe(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `claimgate restore`: an empty ledger rebuilt from an export, seq for seq.
pub fn restore(cx: &mut Cx<'_>, data: PathBuf, file: PathBuf) -> Result<(), Failure> {
    let input: Box<dyn std::io::BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(&file).map_err(|e| bad_input(format!("cannot read {}: {e}", file.display())))?,
        ))
    };
    let started = Instant::now();
    let progress = |events: u64| {
        if events % 1_000_000 < claimgate::ledger::MAX_APPEND_BATCH as u64 {
            eprintln!("restore: {events} events");
        }
    };
    let indexing = |step: &str| eprintln!("restore: {step} ({:.0} s)", started.elapsed().as_secs_f64());
    let (done, into) = match cx.store {
        Some(url) => {
            let ledger = Ledger::open_postgres(url, &cx.policy)?;
            let head = ledger.head()?;
            // One bulk load: a refused or interrupted restore leaves the schema empty.
            let Ok(mut bulk) = ledger.into_bulk_load()? else {
                return Err(Failure(transfer::TransferError::NotEmpty { head }.to_string(), 1));
            };
            let done = transfer::restore(&mut bulk, input, progress)
                .map_err(|e| Failure(format!("{e}; nothing was restored: the schema is as it was"), 1))?;
            let ledger = bulk.finish(indexing)?;
            (done, ledger.describe())
        }
        None => {
            if has_ledger(&data) {
                return Err(bad_input(format!(
                    "{} already holds a ledger; restore builds a new one: give an empty --data",
                    data.join(claimgate::ledger::LEDGER_FILE).display()
                )));
            }
            claimgate::data_dir::refuse_lost_ledger(&data)?;
            let _lock = lock_data(&data)?;
            // Built aside and moved into place only when every line reproduced,
            // so a refused file leaves --data as it was.
            let aside = data.join(RESTORE_ASIDE);
            if aside.exists() {
                std::fs::remove_dir_all(&aside)?;
            }
            let Ok(mut bulk) = Ledger::open(&aside, &cx.policy)?.into_bulk_load()? else {
                unreachable!("a ledger just created is empty")
            };
            let done = match transfer::restore(&mut bulk, input, progress) {
                Ok(done) => done,
                Err(e) => {
                    drop(bulk);
                    let _ = std::fs::remove_dir_all(&aside);
                    return Err(Failure(format!("{e}; nothing was restored into {}", data.display()), 1));
                }
            };
            drop(bulk.finish(indexing)?);
            let target = data.join(claimgate::ledger::LEDGER_FILE);
            std::fs::rename(aside.join(claimgate::ledger::LEDGER_FILE), &target)?;
            std::fs::File::open(&data)?.sync_all()?;
            std::fs::remove_dir_all(&aside)?;
            (done, target.display().to_string())
        }
    };
    writeln!(cx.out, "{}", serde_json::json!({"restored": done.events, "seq": done.head, "into": into}))?;
    eprintln!(
        "claimgate: restored {} event(s), seq 1 to {}, in {:.1} s",
        done.events,
        done.head,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Where `restore` builds an embedded ledger before moving it into `--data`.
const RESTORE_ASIDE: &str = "restore-in-progress";

/// `claimgate import`: roster CSV files and JSON Lines of events, idempotent.
pub fn import(
    cx: &mut Cx<'_>,
    data: PathBuf,
    init: bool,
    rejects: PathBuf,
    gate: Option<(String, Option<PathBuf>)>,
    files: Vec<PathBuf>,
) -> Result<(), Failure> {
    for f in &files {
        if !f.is_file() {
            return Err(bad_input(format!("{} is not a readable file", f.display())));
        }
    }
    let started = Instant::now();
    let failed = |e| match e {
        crate::import::ImportError::Ledger(e) => Failure::from(e),
        crate::import::ImportError::Gate(e) => Failure(e.to_string(), 1),
        other => bad_input(other.to_string()),
    };
    let done = match gate {
        Some((url, token_file)) => {
            if cx.store.is_some() {
                return Err(bad_input("--gate sends to a gate's own ledger: drop --store"));
            }
            let token_file =
                token_file.ok_or_else(|| bad_input("--gate needs --token-file (the gate's admin token)"))?;
            let token = std::fs::read_to_string(&token_file)
                .map_err(|e| bad_input(format!("cannot read --token-file {}: {e}", token_file.display())))?;
            if token.trim().is_empty() {
                return Err(bad_input(format!("--token-file {} is empty", token_file.display())));
            }
            let mut gate =
                crate::gate_client::Gate::new(&url, &token, cx.policy.clone()).map_err(|e| bad_input(e.to_string()))?;
            crate::import::import(&mut gate, &files).map_err(failed)?
        }
        None => import_into_ledger(cx, &data, init, &files, started).map_err(|e| e.map_import(failed))?,
    };
    crate::import::write_rejects(&rejects, &done.rejects)
        .map_err(|e| Failure(format!("cannot write the reject file {}: {e}", rejects.display()), 1))?;
    writeln!(
        cx.out,
        "{}",
        serde_json::json!({
            "rows": done.rows, "appended": done.events_appended, "already_recorded": done.events_already_recorded,
            "refused": done.rejects.len(), "rejects": rejects.display().to_string(),
        })
    )?;
    let summary = format!(
        "imported {} row(s) in {:.1} s: {} event(s) appended, {} already there; {} row(s) refused{}",
        done.rows - done.rejects.len() as u64,
        started.elapsed().as_secs_f64(),
        done.events_appended,
        done.events_already_recorded,
        done.rejects.len(),
        if done.rejects.is_empty() { String::new() } else { format!(" (listed in {})", rejects.display()) }
    );
    if done.rejects.is_empty() {
        eprintln!("claimgate: {summary}");
        Ok(())
    } else {
        cx.out.flush()?;
        Err(Failure(summary, EXIT_SOME_REFUSED))
    }
}

/// Why [`import_into_ledger`] stopped: before the import (the ledger), or in it.
enum IntoLedger {
    Failure(Failure),
    Import(crate::import::ImportError),
}

impl IntoLedger {
    fn map_import(self, failed: impl FnOnce(crate::import::ImportError) -> Failure) -> Failure {
        match self {
            IntoLedger::Failure(f) => f,
            IntoLedger::Import(e) => failed(e),
        }
    }
}

impl<E: Into<Failure>> From<E> for IntoLedger {
    fn from(e: E) -> IntoLedger {
        IntoLedger::Failure(e.into())
    }
}

/// The import into the ledger opened here (`--data` or `--store`): one bulk
/// load when it is empty (all or nothing), else batch by batch.
fn import_into_ledger(
    cx: &Cx<'_>,
    data: &std::path::Path,
    init: bool,
    files: &[PathBuf],
    started: Instant,
) -> Result<crate::import::Outcome, IntoLedger> {
    let missing = if init { Missing::Create } else { Missing::RefuseOrInit };
    require_ledger(data, cx.store, missing)?;
    let _lock = if cx.store.is_none() { Some(lock_data(data)?) } else { None };
    require_ledger(data, cx.store, missing)?;
    let ledger = Ledger::open_store(cx.store, data, &cx.policy)?;
    Ok(match ledger.into_bulk_load()? {
        Ok(mut bulk) => {
            eprintln!("claimgate: the ledger is empty: loading in bulk (nothing is the ledger's until the end)");
            let done = crate::import::import(&mut bulk, files).map_err(IntoLedger::Import)?;
            bulk.finish(|step| eprintln!("import: {step} ({:.0} s)", started.elapsed().as_secs_f64()))?;
            done
        }
        Err(ledger) => crate::import::import(&mut &ledger, files).map_err(IntoLedger::Import)?,
    })
}

/// `claimgate roster`: roster CSV files of the synthetic population.
pub fn roster(cx: &mut Cx<'_>, practitioners: u64, seed: u64, out: PathBuf) -> Result<(), Failure> {
    if practitioners == 0 || practitioners > claimgate::population::MAX_PRACTITIONERS {
        return Err(bad_input(format!("--practitioners must be 1 to {}", claimgate::population::MAX_PRACTITIONERS)));
    }
    let population =
        claimgate::population::Population::new(claimgate::population::PopulationSpec::new(practitioners, seed));
    let started = Instant::now();
    let total = population.spec().practitioners + population.spec().institutions();
    let written = crate::roster::write(&population, &out, |groups| {
        eprintln!("roster: {groups} of {total} institutions and practitioners");
    })?;
    writeln!(
        cx.out,
        "{}",
        serde_json::json!({
            "institutions": written.institutions.display().to_string(), "institution_rows": written.institution_rows,
            "registrations": written.registrations.display().to_string(), "registration_rows": written.registration_rows,
        })
    )?;
    eprintln!(
        "claimgate: wrote {} institution and {} registration rows in {:.1} s",
        written.institution_rows,
        written.registration_rows,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `claimgate readjudication`: a running gate's list, every page of it.
pub fn readjudication(
    cx: &mut Cx<'_>,
    gate: String,
    token_file: PathBuf,
    list: String,
    after_seq: u64,
    filters: Vec<(String, String)>,
    csv: bool,
) -> Result<(), Failure> {
    let token = std::fs::read_to_string(&token_file)
        .map_err(|e| bad_input(format!("cannot read --token-file {}: {e}", token_file.display())))?;
    let ask = crate::readjudication::Ask { gate, token, list, after_seq, filters, csv };
    let (resume, written) = crate::readjudication::run(&ask, &mut cx.out)
        .map_err(|e| Failure(format!("claimgate readjudication: {e}"), 1))?;
    cx.out.flush()?;
    eprintln!("claimgate readjudication: {written} written; through seq {resume} (resume with --after-seq {resume})");
    Ok(())
}
