//! Shared by the integration tests: where the spec's conformance cases are,
//! the PostgreSQL server they may use, and (`server`) the gate under test.

#[cfg(unix)]
pub mod server;

use std::path::PathBuf;

/// Every `*.json` case in the spec's case directory (`CLAIMGATE_SPEC_CASES`,
/// else `../shared/spec/cases` beside the checkout), sorted. A missing or
/// empty directory fails the test loudly: a suite over no cases proves nothing.
#[allow(dead_code)] // not every test binary runs the cases
pub fn case_files() -> Vec<PathBuf> {
    let dir = std::env::var_os("CLAIMGATE_SPEC_CASES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/spec/cases"));
    cases_in(dir)
}

/// Every `*.json` case in the insured-persons cases (R23–R25):
/// `cases-insured` beside the cases directory.
#[allow(dead_code)]
pub fn insured_case_files() -> Vec<PathBuf> {
    let cases = case_files();
    cases_in(cases[0].parent().expect("a cases directory").with_file_name("cases-insured"))
}

/// Every `*.json` case in `dir`, sorted; a missing or empty one fails loudly.
fn cases_in(dir: PathBuf) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the conformance cases are missing: cannot read {} ({e}). Clone the project with ../shared beside it, \
             or set CLAIMGATE_SPEC_CASES to the cases directory",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.json cases in {}: the suite would prove nothing", dir.display());
    files
}

/// Whether the tests run under CI, and the PostgreSQL server they may use:
/// shared with the crates' own tests (`claimgate-testkit`).
#[allow(unused_imports)] // not every test binary uses both
pub use claimgate_testkit::{postgres_url, under_ci};

/// A schema of one test's own on the PostgreSQL server under test, dropped
/// (with everything in it) when the guard goes, even when the test panics.
#[allow(dead_code)]
pub struct PgSchema {
    pub server: String,
    pub name: String,
}

#[allow(dead_code)]
impl PgSchema {
    pub fn new(server: &str, test: &str) -> PgSchema {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("t_{test}_{}_{}_{n}", std::process::id(), nanos % 1_000_000_000_000);
        assert!(name.len() <= 63, "{name} is too long a schema name");
        PgSchema { server: server.to_owned(), name }
    }

    /// The server's URL naming this schema (`--store`).
    pub fn url(&self) -> String {
        let sep = if self.server.contains('?') { '&' } else { '?' };
        format!("{}{sep}schema={}", self.server, self.name)
    }

    /// A session on the server, outside the schema (plain TCP).
    pub fn admin(&self) -> postgres::Client {
        postgres::Client::connect(&self.server, postgres::NoTls).expect("connecting to CLAIMGATE_TEST_POSTGRES")
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.server, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
        }
    }
}
