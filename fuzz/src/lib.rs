//! The fuzz harnesses (issue 8): one function per target, each feeding
//! arbitrary bytes through claimgate's production entry points and panicking
//! only when a property fails. The cargo-fuzz targets in `fuzz_targets/` call
//! them, and so does `tests/fuzz_regressions.rs` (included there by path), so
//! a saved crash replays in plain `cargo test` through the very same code.
//!
//! Every harness is bounded: inputs are cut at [`MAX_INPUT_BYTES`], and the
//! work per input is capped by the named constants below.

use claimgate::domain::{CivilDate, InstitutionCode, PractitionerCode};
use claimgate::event::{Event, RecordedEvent};
use claimgate::index::snapshot::{self, Header, Owner, FORMAT_VERSION, HEADER_LEN};
use claimgate::index::{build, IndexVersion, MAX_CHECK_BATCH};
use claimgate::ledger::Ledger;
use claimgate::policy::Policy;
use claimgate::refusal::RefusalCode;
use claimgate::rules::{Claim, World};
use claimgate::server::bodies::{
    parse_batch_body, parse_batch_general, parse_batch_value, parse_check_body, parse_check_general, parse_check_value,
    parse_events_body,
};
use claimgate::server::{parse_json, MAX_BODY_BYTES};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Longest input a harness looks at: the server's own body limit.
pub const MAX_INPUT_BYTES: usize = MAX_BODY_BYTES;
/// Most distinct practitioners, institutions and dates the event harness
/// crosses into claims for its index-versus-rules comparison.
const MAX_CLAIM_CODES: usize = 4;
const MAX_CLAIM_DATES: usize = 8;
/// Most entries the snapshot harness judges claims for after a load.
const MAX_SNAPSHOT_CLAIMS: usize = 256;
/// The owner the checksummed-payload harness writes into its headers.
const FUZZ_LEDGER_ID: u64 = 0xF022;

/// Events on the ledger before the fuzzed ones (R8 then has something to
/// validate against: a designated institution, a registered practitioner,
/// a violation to revoke or repeat).
pub const SEED_EVENTS: [&str; 4] = [
    r#"{"type":"institution_designated","institution":"H11010500001","effective":"2024-01-01"}"#,
    r#"{"type":"practitioner_registered","practitioner":"D110105000001","institution":"H11010500001","effective":"2024-01-01"}"#,
    r#"{"type":"violation_scored","violation_id":"V1","practitioner":"D110105000001","institution":"H11010500001","effective":"2026-03-10","points":5,"severity":"moderate","responsibility":"primary"}"#,
    r#"{"type":"institution_rated","institution":"H11010500001","year":2025,"score":82.5,"direct_e":[]}"#,
];

fn bounded(data: &[u8]) -> &[u8] {
    &data[..data.len().min(MAX_INPUT_BYTES)]
}

/// `POST /v1/check` and `POST /v1/check/batch`: the same bytes through both
/// body parsers. Properties: no panic; the fast typed path never disagrees
/// with the general parser (same lines, or the same named error); a batch
/// never holds more than `MAX_CHECK_BATCH` lines; errors are 4xx with a code.
///
/// R4: a body with a key named twice anywhere is never accepted whole, and
/// whatever either path accepts, a strict whole-document read
/// ([`parse_json`], which refuses any duplicated key) accepts identically.
pub fn check_request(data: &[u8]) {
    let data = bounded(data);
    let single = parse_check_body(data);
    let general = parse_check_general(data);
    assert_eq!(single, general, "POST /v1/check: the fast path disagrees with the general parser");
    if let Err(e) = &single {
        assert!(e.status.is_client_error() && !e.error.is_empty(), "unnamed error {e:?}");
    }
    let strict = parse_json(data);
    if let Ok(line) = &single {
        let whole = strict.clone().and_then(|v| parse_check_value(&v));
        assert_eq!(Ok(line), whole.as_ref(), "POST /v1/check accepted a line a strict read refuses");
    }
    let batch = parse_batch_body(data);
    let general = parse_batch_general(data);
    assert_eq!(batch, general, "POST /v1/check/batch: the fast path disagrees with the general parser");
    if let (Ok(b), Ok(v)) = (&batch, &strict) {
        assert_eq!(Ok(b), parse_batch_value(v).as_ref(), "a batch read strictly whole answers the same");
    }
    if let (Ok(b), Err(e)) = (&batch, &strict) {
        // Only duplicates inside lines may leave the body readable: each is that line's error.
        assert!(b.lines.iter().any(Result::is_err), "a batch with a duplicated key accepted every line: {e:?}");
    }
    match &batch {
        Ok(b) => assert!(b.lines.len() <= MAX_CHECK_BATCH),
        Err(e) => assert!(e.status.is_client_error() && !e.error.is_empty(), "unnamed error {e:?}"),
    }
}

/// The ledger with [`SEED_EVENTS`] accepted.
pub fn seeded_ledger(policy: &Policy) -> Ledger {
    let ledger = Ledger::open_in_memory(policy).expect("an in-memory ledger opens");
    for seed in SEED_EVENTS {
        let event = Event::parse(&serde_json::from_str(seed).expect("seed is JSON"), policy).expect("seed parses");
        ledger.append(&event).expect("seed event is accepted");
    }
    ledger
}

/// `POST /v1/events` bodies into a seeded in-memory ledger: parse (R4) with
/// the route's own body parser, append in order (R8 validation runs in the
/// append transaction). Properties: no panic; parse refusals are
/// `invalid_request`; every accepted event reads back from the ledger equal to
/// what was sent (R5: the stored JSON is faithful); and the index built from
/// the ledger judges claims exactly as the reference rules engine (R17-R19).
pub fn event(data: &[u8]) {
    let policy = Policy::default();
    let Ok(body) = parse_events_body(bounded(data), &policy) else { return };
    for refusal in body.events.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(refusal.code, RefusalCode::InvalidRequest, "parse refusals are R4's: {refusal:?}");
    }
    let valid: Vec<Event> = body.events.into_iter().filter_map(Result::ok).collect();
    let ledger = seeded_ledger(&policy);
    let outcomes = ledger.append_batch(&valid).expect("the in-memory ledger stores");
    let stored: Vec<&Event> = valid
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| matches!(o, Ok(a) if !a.already_recorded))
        .map(|(e, _)| e)
        .collect();
    let all = ledger.all_events().expect("every stored event reads back");
    assert_eq!(all.len(), SEED_EVENTS.len() + stored.len(), "one stored row per accepted event");
    for (read, sent) in all[SEED_EVENTS.len()..].iter().zip(&stored) {
        assert_eq!(&read.event, *sent, "an accepted event reads back changed");
    }
    index_agrees_with_rules(&ledger, &all, &policy);
}

fn index_agrees_with_rules(ledger: &Ledger, all: &[RecordedEvent], policy: &Policy) {
    let world = World::from_events(all, policy);
    let index = build::from_ledger(ledger).expect("the in-memory ledger reads");
    let mut practitioners: Vec<PractitionerCode> = Vec::new();
    let mut institutions: Vec<InstitutionCode> = Vec::new();
    let mut dates: Vec<CivilDate> = Vec::new();
    for r in all.iter().rev() {
        let e = &r.event;
        push_bounded(&mut practitioners, e.practitioner(), MAX_CLAIM_CODES);
        push_bounded(&mut institutions, e.institution(), MAX_CLAIM_CODES);
        for d in [Some(e.effective()), e.effective().pred(), e.effective().succ()] {
            push_bounded(&mut dates, d, MAX_CLAIM_DATES);
        }
    }
    for &practitioner in &practitioners {
        for &institution in &institutions {
            for &service_date in &dates {
                for emergency in [false, true] {
                    let claim = Claim { practitioner, institution, service_date, emergency };
                    assert_eq!(index.check(&claim), world.decide(&claim), "index and rules disagree on {claim:?}");
                }
            }
        }
    }
}

fn push_bounded<T: PartialEq>(into: &mut Vec<T>, item: Option<T>, max: usize) {
    if let Some(item) = item {
        if into.len() < max && !into.contains(&item) {
            into.push(item);
        }
    }
}

/// A scratch file for snapshot inputs, one per thread, in a directory that
/// lives as long as the process (libFuzzer runs inputs one after another).
fn scratch_path() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let made = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
        made.expect("a scratch directory")
    });
    dir.path().join(format!("{:?}.snap", std::thread::current().id()))
}

/// `snapshot::load` on arbitrary file contents. Properties: a clean
/// `SnapshotError` or a base that serves (see [`exercise_base`]); never a
/// panic, hang or unbounded allocation.
pub fn snapshot(data: &[u8]) {
    let path = scratch_path();
    std::fs::write(&path, data).expect("the scratch file is written");
    if let Ok(base) = snapshot::load(&path, None) {
        exercise_base(base);
    }
}

/// `snapshot::load` past its checksum: the input is an 8-byte little-endian
/// `seq` then the payload, and the harness writes a correct header (magic,
/// version, owner, length, xxh3) in front of it, so rkyv's validation and the
/// table bounds checks behind it see every mutation.
pub fn snapshot_payload(data: &[u8]) {
    let Some((seq, payload)) = data.split_first_chunk::<8>() else { return };
    let owner = Owner::new(FUZZ_LEDGER_ID, &Policy::default());
    let header = Header {
        format_version: FORMAT_VERSION,
        ledger_id: owner.ledger_id,
        policy_hash: owner.policy_hash,
        seq: u64::from_le_bytes(*seq),
        payload_len: payload.len() as u64,
        checksum: xxhash_rust::xxh3::xxh3_64(payload),
    };
    let mut file = Vec::with_capacity(HEADER_LEN + payload.len());
    file.extend_from_slice(&header.encode());
    file.extend_from_slice(payload);
    let path = scratch_path();
    std::fs::write(&path, &file).expect("the scratch file is written");
    if let Ok(base) = snapshot::load(&path, Some(owner)) {
        exercise_base(base);
    }
}

/// What the gate does with a restored base: find its entries, judge claims
/// against it, and fold it into a new base when the overlay grows (the merge
/// thread). A base that loaded must survive all of it.
fn exercise_base(base: claimgate::index::base::Base) {
    let version = IndexVersion::new(Arc::new(base));
    let practitioners: Vec<_> = version.base().practitioners().collect();
    let institutions: Vec<_> = version.base().institutions().collect();
    let some_institution = institutions.first().map(|(code, _)| *code);
    for (code, _) in institutions.iter().take(MAX_SNAPSHOT_CLAIMS) {
        assert!(version.base().institution(*code).is_some(), "a loaded institution is not found by its code");
    }
    for (code, p) in practitioners.iter().take(MAX_SNAPSHOT_CLAIMS) {
        assert!(version.base().practitioner(*code).is_some(), "a loaded practitioner is not found by its code");
        for r in p.registrations.iter().take(MAX_CLAIM_DATES) {
            let date = CivilDate::from_day_number(CivilDate::MIN.day_number().saturating_add(r.span as u32 as i32));
            let institution = InstitutionCode::from_packed(r.institution).or(some_institution);
            if let (Some(service_date), Some(institution)) = (date, institution) {
                let claim = Claim { practitioner: *code, institution, service_date, emergency: false };
                let mut batch = Vec::new();
                version.check_batch(&[claim], &mut batch);
                assert_eq!(batch, [version.check(&claim)], "batch and single checks disagree");
            }
        }
    }
    let merged = version.merged();
    assert_eq!(merged.base().practitioner_count(), practitioners.len() as u64);
    assert_eq!(merged.base().institution_count(), institutions.len() as u64);
}
