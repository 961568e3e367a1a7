//! What claimgate's tests and tools share (never a dependency of a layer; it
//! depends on nothing of claimgate's): whether tests run under CI, the
//! PostgreSQL server they may use, and [`http`], the one HTTP client of the
//! tests and the reliability campaigns. Under CI a test
//! whose environment is missing fails; elsewhere it says what it skipped,
//! never silently passes.

pub mod http;

/// Whether the tests run under CI (`CI` set and not empty; `.ci/run` sets
/// it): there, a test whose environment is missing fails, it never passes.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// The PostgreSQL server the tests may use (`CLAIMGATE_TEST_POSTGRES`), or
/// `None` with a printed notice naming what is skipped: never a silent pass,
/// and under CI not a pass at all (the test fails).
pub fn postgres_url(skipped: &str) -> Option<String> {
    let url = std::env::var("CLAIMGATE_TEST_POSTGRES").ok().filter(|u| !u.trim().is_empty());
    assert!(
        url.is_some() || !under_ci(),
        "CI is set but CLAIMGATE_TEST_POSTGRES is not, so {skipped} cannot run: .ci/run sets it when PostgreSQL answers on 127.0.0.1:5432"
    );
    if url.is_none() {
        // Straight to the stream: the test harness captures eprintln! of passing tests.
        let note = format!("skipped: set CLAIMGATE_TEST_POSTGRES=postgres://... to run {skipped}\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), note.as_bytes());
    }
    url
}
