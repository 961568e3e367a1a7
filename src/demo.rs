//! `claimgate demo`: a data directory with a generated national population,
//! and example requests with real codes from it.

use super::{bad_input, Failure};
use claimgate::domain::{CivilDate, InstitutionCode, PractitionerCode};
use claimgate::index::snapshot::{self, Owner};
use claimgate::index::{restore, IndexHandle, Syncer};
use claimgate::ledger::{Ledger, LEDGER_FILE, MAX_APPEND_BATCH};
use claimgate::policy::Policy;
use claimgate::population::{self, Notable, Population, PopulationSpec};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Marks a data directory as made by the demo, with its population.
const DEMO_FILE: &str = "demo.json";

/// One example claim line.
pub struct Example {
    pub what: &'static str,
    pub practitioner: PractitionerCode,
    pub institution: InstitutionCode,
    pub emergency: bool,
}

pub struct Examples {
    pub date: CivilDate,
    pub lines: Vec<Example>,
}

/// Creates (or reuses) the demo data directory and picks example claims.
pub fn prepare(
    data: &Path,
    store: Option<&str>,
    practitioners: u64,
    seed: u64,
    policy: &Policy,
) -> Result<Examples, Failure> {
    if practitioners == 0 || practitioners > population::MAX_PRACTITIONERS {
        return Err(bad_input(format!("--practitioners must be 1 to {}", population::MAX_PRACTITIONERS)));
    }
    let population = Population::new(PopulationSpec::new(practitioners, seed));
    let marker = data.join(DEMO_FILE);
    let wanted = serde_json::json!({"practitioners": practitioners, "seed": seed});
    let has_ledger = match store {
        Some(url) => Ledger::open_postgres(url, policy)?.head()? > 0,
        None => data.join(LEDGER_FILE).exists(),
    };
    if has_ledger {
        let found: Option<serde_json::Value> =
            std::fs::read(&marker).ok().and_then(|b| serde_json::from_slice(&b).ok());
        if found.as_ref() != Some(&wanted) {
            return Err(bad_input(format!(
                "{} already holds a ledger that is not this demo's ({}); use another --data, or remove it to regenerate",
                data.display(),
                found.map_or("no demo.json".to_owned(), |f| f.to_string())
            )));
        }
        eprintln!("claimgate: reusing the demo ledger in {}", data.display());
    } else {
        generate(data, store, &population, policy)?;
        std::fs::write(&marker, wanted.to_string())?;
    }
    let mut lines = Vec::new();
    for (what, kind, emergency) in [
        ("settles (good standing)", Notable::GoodStanding, false),
        ("rejected: practitioner suspended (R14)", Notable::Suspended, false),
        ("emergency exemption during a termination (R19)", Notable::Terminated, true),
    ] {
        if let Some(i) = population.find_practitioner(kind) {
            if let Some(institution) = population.claim_institution(i) {
                lines.push(Example { what, practitioner: population.practitioner_code(i), institution, emergency });
            }
        }
    }
    Ok(Examples { date: population::reference_date(), lines })
}

fn generate(data: &Path, store: Option<&str>, population: &Population, policy: &Policy) -> Result<(), Failure> {
    let started = Instant::now();
    std::fs::create_dir_all(data)?;
    // A new ledger, so one bulk load (the import path): all or nothing.
    let Ok(mut bulk) = Ledger::open_store(store, data, policy)?.into_bulk_load()? else {
        return Err(bad_input(format!("the demo's ledger in {} is not empty", data.display())));
    };
    let total = population.spec().practitioners;
    eprintln!("claimgate: generating {total} practitioners into {}", data.display());
    let mut chunk = Vec::with_capacity(MAX_APPEND_BATCH);
    let mut next_report = 0u64;
    let mut flush = |chunk: &mut Vec<claimgate::event::Event>| -> Result<(), Failure> {
        for outcome in bulk.append_batch(chunk)? {
            outcome.map_err(|r| Failure(format!("the generated population was refused: {r}"), 1))?;
        }
        chunk.clear();
        let head = bulk.head();
        if head >= next_report {
            eprintln!("claimgate:   {head} events loaded ({:.0} s)", started.elapsed().as_secs_f64());
            next_report = head + 1_000_000;
        }
        Ok(())
    };
    for event in population.events() {
        chunk.push(event);
        if chunk.len() == MAX_APPEND_BATCH {
            flush(&mut chunk)?;
        }
    }
    flush(&mut chunk)?;
    let ledger =
        Arc::new(bulk.finish(|step| eprintln!("claimgate:   {step} ({:.0} s)", started.elapsed().as_secs_f64()))?);
    eprintln!("claimgate: {} events in {:.1} s; building the index", ledger.head()?, started.elapsed().as_secs_f64());
    let restored = restore::restore(data, &ledger)?;
    let handle = Arc::new(IndexHandle::new(restored.version));
    Syncer::new(ledger.clone(), handle.clone()).catch_up()?;
    let version = handle.load();
    let path = snapshot::write(&data.join(snapshot::SNAPSHOT_DIR), version.base(), Owner::new(ledger.id(), policy))?;
    eprintln!("claimgate: snapshot {} written; ready in {:.1} s", path.display(), started.elapsed().as_secs_f64());
    Ok(())
}

/// Prints example requests that work as printed.
pub fn print(examples: &Examples, check: SocketAddr, admin: SocketAddr, token: &str, read_token: Option<&str>) {
    println!("\nclaimgate demo: a generated national population, served on http://{check} (checks) and http://{admin} (admin).");
    println!("Admin token: {token}");
    // Integrity files are personal data: they need a token, the read-only one if there is one.
    let reader = read_token.unwrap_or(token);
    if let Some(read) = read_token {
        println!("Read-only token (integrity files, the audit; cannot append): {read}");
    }
    println!();
    for e in &examples.lines {
        println!("# {}", e.what);
        println!(
            "curl -s http://{check}/v1/check -d '{{\"practitioner_id\":\"{}\",\"institution_id\":\"{}\",\"service_date\":\"{}\",\"emergency\":{}}}'",
            e.practitioner, e.institution, examples.date, e.emergency
        );
    }
    if let Some(e) = examples.lines.first() {
        println!("\n# the integrity file (R22)");
        println!("curl -s -H 'Authorization: Bearer {reader}' http://{check}/v1/practitioners/{}", e.practitioner);
        println!("\n# score a violation (admin), then check again at least at its seq (bash)");
        println!(
            "SEQ=$(curl -s -H 'Authorization: Bearer {token}' http://{admin}/v1/events -d '{{\"type\":\"violation_scored\",\"violation_id\":\"DEMO-1\",\"practitioner\":\"{}\",\"institution\":\"{}\",\"effective\":\"{}\",\"points\":9,\"severity\":\"serious\",\"responsibility\":\"primary\"}}' | tr -dc 0-9); echo seq $SEQ",
            e.practitioner, e.institution, examples.date
        );
        println!(
            "curl -s http://{check}/v1/check -d '{{\"practitioner_id\":\"{}\",\"institution_id\":\"{}\",\"service_date\":\"{}\",\"emergency\":false,\"min_seq\":'$SEQ'}}'",
            e.practitioner, e.institution, examples.date
        );
    }
    println!("\n# rejections and emergency exemptions, as recorded (R19)");
    println!("curl -s -H 'Authorization: Bearer {reader}' 'http://{admin}/v1/audit?limit=5'");
    println!("\n# health and metrics\ncurl -s http://{check}/readyz\ncurl -s http://{check}/metrics | head -20\n");
}
