//! Fuzzing's findings kept as plain tests (issue 8): the committed seed
//! inputs (`fuzz/seeds/`) and every input a fuzz campaign crashed on
//! (`tests/fuzz_regressions/<target>/`) are replayed through the very
//! harnesses the fuzz targets run (`fuzz/src/lib.rs`, included by path), and a
//! few hostile inputs (deep nesting, huge numbers, non-UTF-8, damaged
//! snapshots) are checked to end in named errors. No nightly toolchain needed.

#[path = "../fuzz/src/lib.rs"]
mod harness;

use claimgate::index::build;
use claimgate::index::snapshot::{self, Header, Owner, SnapshotError, FORMAT_VERSION, HEADER_LEN};
use claimgate::policy::Policy;
use claimgate::server::bodies::{parse_batch_body, parse_check_body, parse_events_body};
use claimgate::server::ApiError;
use std::path::{Path, PathBuf};

type Harness = fn(&[u8]);

const TARGETS: [(&str, Harness); 4] = [
    ("check_request", harness::check_request),
    ("event", harness::event),
    ("snapshot", harness::snapshot),
    ("snapshot_payload", harness::snapshot_payload),
];

fn inputs_under(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.expect("readable directory entry").path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("reading {}: {e}", dir.display()),
    };
    files.sort();
    files
}

fn replay(folder: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut replayed = 0;
    for (target, run) in TARGETS {
        for file in inputs_under(&root.join(folder).join(target)) {
            let data = std::fs::read(&file).expect("readable input");
            eprintln!("replaying {}", file.display());
            run(&data);
            replayed += 1;
        }
    }
    replayed
}

/// Inputs committed under `folder`, counted apart from the replay (so a
/// replay that silently skipped some would not match).
fn committed(folder: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    TARGETS.iter().map(|(target, _)| inputs_under(&root.join(target)).len()).sum()
}

/// The fewest crash inputs the regression folder holds (6 when this was
/// written: 5 check requests, 1 snapshot payload); a lost folder fails here.
const MIN_REGRESSIONS: usize = 6;

#[test]
fn committed_seed_inputs_pass_every_harness() {
    let replayed = replay("fuzz/seeds");
    assert!(replayed >= TARGETS.len(), "fuzz/seeds holds at least one input per target");
    assert_eq!(replayed, committed("fuzz/seeds"), "every committed seed was replayed");
}

#[test]
fn inputs_that_once_crashed_a_fuzz_target_now_pass() {
    let replayed = replay("tests/fuzz_regressions");
    assert_eq!(replayed, committed("tests/fuzz_regressions"), "every committed crash input was replayed");
    assert!(
        replayed >= MIN_REGRESSIONS,
        "only {replayed} crash inputs replayed, fewer than the {MIN_REGRESSIONS} committed"
    );
}

fn named(result: Result<impl std::fmt::Debug, ApiError>, error: &str, field: &str) {
    let e = result.expect_err("refused");
    assert_eq!((e.error.as_str(), e.field.as_deref()), (error, Some(field)), "{e:?}");
    assert!(e.status.is_client_error());
}

#[test]
fn deep_nesting_is_a_named_error_not_a_stack_overflow() {
    // serde_json's recursion limit (128) turns this into a parse error.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    named(parse_check_body(deep.as_bytes()), "invalid_request", "body");
    named(parse_batch_body(deep.as_bytes()), "invalid_request", "body");
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(50_000), "}".repeat(50_000));
    named(parse_events_body(deep_object.as_bytes(), &Policy::default()), "invalid_request", "body");
    harness::check_request(deep.as_bytes());
    harness::event(deep.as_bytes());
}

const LINE: &str = r#""practitioner_id":"D110105000001","institution_id":"H11010500001","service_date":"2026-05-01","emergency":false"#;

#[test]
fn huge_numbers_are_named_errors() {
    named(
        parse_check_body(format!("{{{LINE},\"min_seq\":18446744073709551616}}").as_bytes()),
        "invalid_request",
        "min_seq",
    );
    named(parse_check_body(format!("{{{LINE},\"min_seq\":-1}}").as_bytes()), "invalid_request", "min_seq");
    named(parse_check_body(format!("{{{LINE},\"claim_id\":1e300}}").as_bytes()), "invalid_request", "claim_id");
    named(parse_check_body(format!("{{{LINE},\"min_seq\":1e400}}").as_bytes()), "invalid_request", "body");
    let policy = Policy::default();
    let rated = r#"{"type":"institution_rated","institution":"H11010500001","year":99999999999999999999,"score":1,"direct_e":[]}"#;
    let parsed = parse_events_body(rated.as_bytes(), &policy).expect("a JSON body");
    let refusal = parsed.events[0].as_ref().expect_err("year out of range");
    assert_eq!(refusal.field.as_deref(), Some("year"));
    for input in [
        rated,
        r#"{"type":"points_repaired","event_id":"R-1","practitioner":"D110105000001","points":4294967296000,"effective":"2026-03-01"}"#,
    ] {
        harness::event(input.as_bytes());
    }
}

#[test]
fn non_utf8_bodies_are_named_errors() {
    let body = b"{\"practitioner_id\":\"D11010500\xff\xfe001\",\"institution_id\":\"H11010500001\"}";
    named(parse_check_body(body), "invalid_request", "body");
    named(parse_batch_body(b"\xc3\x28"), "invalid_request", "body");
    named(parse_events_body(b"\x80", &Policy::default()), "invalid_request", "body");
    harness::check_request(body);
    harness::event(body);
}

/// A real snapshot of the seeded ledger, as the gate writes it.
fn real_snapshot(dir: &Path) -> (Vec<u8>, Owner) {
    let policy = Policy::default();
    let ledger = harness::seeded_ledger(&policy);
    let version = build::from_ledger(&ledger).expect("the in-memory ledger reads");
    let owner = Owner::new(ledger.id(), &policy);
    let path = snapshot::write(dir, version.base(), owner).expect("snapshot written");
    (std::fs::read(path).expect("snapshot readable"), owner)
}

fn load_bytes(dir: &Path, bytes: &[u8], owner: Owner) -> Result<(), SnapshotError> {
    let path = dir.join("probe.snap");
    std::fs::write(&path, bytes).expect("written");
    snapshot::load(&path, Some(owner)).map(|_| ())
}

#[test]
fn damaged_snapshots_are_named_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (real, owner) = real_snapshot(dir.path());
    load_bytes(dir.path(), &real, owner).expect("the real snapshot loads");
    harness::snapshot(&real);

    for cut in [0, 10, HEADER_LEN, real.len() - 1] {
        let err = load_bytes(dir.path(), &real[..cut], owner).expect_err("truncated");
        assert!(matches!(err, SnapshotError::Truncated { .. }), "cut at {cut}: {err}");
        harness::snapshot(&real[..cut]);
    }

    let mut flipped = real.clone();
    *flipped.last_mut().expect("non-empty") ^= 1;
    let err = load_bytes(dir.path(), &flipped, owner).expect_err("corrupt");
    assert!(matches!(err, SnapshotError::ChecksumMismatch { .. }), "{err}");

    // A valid header and checksum over garbage: rkyv's validation refuses it.
    let garbage: Vec<u8> = (0..real.len() - HEADER_LEN).map(|i| (i * 7 + 3) as u8).collect();
    let header = Header {
        format_version: FORMAT_VERSION,
        ledger_id: owner.ledger_id,
        policy_hash: owner.policy_hash,
        seq: 4,
        payload_len: garbage.len() as u64,
        checksum: xxhash_rust::xxh3::xxh3_64(&garbage),
    };
    let forged = [header.encode().as_slice(), &garbage].concat();
    let err = load_bytes(dir.path(), &forged, owner).expect_err("garbage payload");
    assert!(matches!(err, SnapshotError::Invalid(_)), "{err}");
    harness::snapshot_payload(&[4u64.to_le_bytes().as_slice(), &garbage].concat());
}
