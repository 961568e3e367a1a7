//! Shared by the integration tests: where the spec's conformance cases are.

use std::path::PathBuf;

/// Every `*.json` case in the spec's case directory (`CLAIMGATE_SPEC_CASES`,
/// else `../shared/spec/cases` beside the checkout), sorted. A missing or
/// empty directory fails the test loudly: a suite over no cases proves nothing.
pub fn case_files() -> Vec<PathBuf> {
    let dir = std::env::var_os("CLAIMGATE_SPEC_CASES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/spec/cases"));
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
