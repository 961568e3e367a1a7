//! Index snapshots: a base written to a file and mapped back into memory.
//!
//! File layout: a 64-byte header (magic, format version, ledger id, policy
//! hash, `seq`, payload length, xxh3 checksum of the payload), then the rkyv
//! archive of the base's tables. A load checks the header, the length and the
//! checksum, then validates the archive with rkyv and checks the tables'
//! internal bounds, all before the first lookup. Snapshots are written to a
//! temporary name, synced, and renamed into place, so a reader never maps a
//! file that is still being written or later rewritten (no SIGBUS).

use super::base::{ArchivedTables, Base};
use claimgate_rules::domain::Seq;
use memmap2::Mmap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_64;

/// Identifies a claimgate index snapshot.
pub const MAGIC: [u8; 16] = *b"CLAIMGATE-INDEX\0";
/// The snapshot format this build writes and reads. 2: standings derived by
/// RULES.md v2 (R11's running balance, R14's re-crossing); a version 1
/// snapshot holds v1's answers, so it is refused and the index rebuilt.
pub const FORMAT_VERSION: u32 = 2;
/// Bytes before the archive (keeps the archive 16-byte aligned in the map).
pub const HEADER_LEN: usize = 64;
/// Snapshots kept in the directory after a new one is written.
pub const KEEP_SNAPSHOTS: usize = 2;
/// The directory under the data directory that holds snapshots.
pub use claimgate_store::data_dir::SNAPSHOT_DIR;

/// What a snapshot says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub format_version: u32,
    pub ledger_id: u64,
    pub policy_hash: u64,
    pub seq: Seq,
    pub payload_len: u64,
    pub checksum: u64,
}

impl Header {
    /// The header's 64 bytes, as written before the archive.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..16].copy_from_slice(&MAGIC);
        h[16..20].copy_from_slice(&self.format_version.to_le_bytes());
        h[24..32].copy_from_slice(&self.ledger_id.to_le_bytes());
        h[32..40].copy_from_slice(&self.policy_hash.to_le_bytes());
        h[40..48].copy_from_slice(&self.seq.to_le_bytes());
        h[48..56].copy_from_slice(&self.payload_len.to_le_bytes());
        h[56..64].copy_from_slice(&self.checksum.to_le_bytes());
        h
    }

    fn decode(bytes: &[u8]) -> Result<Header, SnapshotError> {
        if bytes.len() < HEADER_LEN {
            return Err(SnapshotError::Truncated { expected: HEADER_LEN as u64, found: bytes.len() as u64 });
        }
        if bytes[..16] != MAGIC {
            return Err(SnapshotError::Foreign);
        }
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        Ok(Header {
            format_version: u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes")),
            ledger_id: u64_at(24),
            policy_hash: u64_at(32),
            seq: u64_at(40),
            payload_len: u64_at(48),
            checksum: u64_at(56),
        })
    }
}

/// Why a snapshot cannot be used. The index in service is never affected.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot I/O on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("not a claimgate index snapshot (wrong magic bytes)")]
    Foreign,
    #[error("snapshot format version {found} is not the {FORMAT_VERSION} this build reads; rebuild it with `claimgate snapshot write`")]
    UnsupportedVersion { found: u32 },
    #[error("snapshot is truncated or padded: {found} bytes where the header says {expected}")]
    Truncated { expected: u64, found: u64 },
    #[error("snapshot checksum mismatch (stored {stored:#018x}, computed {computed:#018x}): the file is corrupt")]
    ChecksumMismatch { stored: u64, computed: u64 },
    #[error("snapshot archive is invalid: {0}")]
    Invalid(String),
    #[error(
        "snapshot belongs to another ledger or policy (ledger id {found_ledger:#x}, expected {expected_ledger:#x})"
    )]
    OtherLedger { found_ledger: u64, expected_ledger: u64 },
    #[error("snapshot is at seq {snapshot} but the ledger ends at {ledger}: it is not of this ledger")]
    AheadOfLedger { snapshot: Seq, ledger: Seq },
}

impl SnapshotError {
    /// For a write that failed on the disk itself: `disk_full` or `read_only`
    /// (the words of `LedgerError::cause`), with what the operator should do.
    pub fn disk_fault(&self) -> Option<(&'static str, &'static str)> {
        let SnapshotError::Io { source, .. } = self else { return None };
        match source.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                Some(("disk_full", "free space on that file system, then write the snapshot again"))
            }
            std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => {
                Some(("read_only", "make the data directory writable again"))
            }
            _ => None,
        }
    }
}

/// The file name of the snapshot at `seq`.
pub fn file_name(seq: Seq) -> String {
    claimgate_store::data_dir::snapshot_name(seq)
}

/// Who a snapshot is for: the ledger's id and a hash of its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub ledger_id: u64,
    pub policy_hash: u64,
}

impl Owner {
    /// The owner for a ledger with this id and policy.
    pub fn new(ledger_id: u64, policy: &claimgate_rules::policy::Policy) -> Owner {
        let policy_json = serde_json::to_vec(policy).expect("policy serializes");
        Owner { ledger_id, policy_hash: xxh3_64(&policy_json) }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io { path: path.to_owned(), source }
}

/// Writes `base` into `dir` as a new snapshot file, atomically: temporary
/// file, fsync, rename, fsync of the directory. Older snapshots beyond
/// [`KEEP_SNAPSHOTS`] are removed. Returns the new file's path.
pub fn write(dir: &Path, base: &Base, owner: Owner) -> Result<PathBuf, SnapshotError> {
    write_with(dir, base, owner, &|_| {})
}

/// Where [`write_with`] is in writing a snapshot, for its hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteStage {
    /// The header and half the payload are in the temporary file.
    HalfWritten,
    /// The temporary file is complete and synced, not yet renamed.
    BeforeRename,
}

/// [`write`], calling `hook` at each [`WriteStage`]: the crash campaign
/// pauses there to kill the process mid-write (`serve --fault-snapshot-pause`).
pub fn write_with(dir: &Path, base: &Base, owner: Owner, hook: &dyn Fn(WriteStage)) -> Result<PathBuf, SnapshotError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let payload = base.bytes();
    let header = Header {
        format_version: FORMAT_VERSION,
        ledger_id: owner.ledger_id,
        policy_hash: owner.policy_hash,
        seq: base.seq(),
        payload_len: payload.len() as u64,
        checksum: xxh3_64(payload),
    };
    let path = dir.join(file_name(base.seq()));
    let tmp = dir.join(format!(".{}.{}.tmp", file_name(base.seq()), std::process::id()));
    let written = (|| {
        let mut file = File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&header.encode()).map_err(io(&tmp))?;
        let (first, second) = payload.split_at(payload.len() / 2);
        file.write_all(first).map_err(io(&tmp))?;
        file.flush().map_err(io(&tmp))?;
        hook(WriteStage::HalfWritten);
        file.write_all(second).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        hook(WriteStage::BeforeRename);
        std::fs::rename(&tmp, &path).map_err(io(&path))
    })();
    if written.is_err() {
        // A write that failed (a full disk) gives back the room it took.
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    for old in list(dir)?.into_iter().skip(KEEP_SNAPSHOTS) {
        // Mapped readers keep their pages: unlinking never truncates a mapping.
        let _ = std::fs::remove_file(old);
    }
    Ok(path)
}

/// Removes temporary files left by snapshot writes that never finished (a
/// process killed mid-write); returns how many. Only the writer of a data
/// directory may call this.
pub fn remove_unfinished(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".index-") && n.ends_with(".tmp"))
        })
        .filter(|p| std::fs::remove_file(p).is_ok())
        .count()
}

/// Snapshot files in `dir`, newest (highest `seq`) first.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, SnapshotError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SnapshotError::Io { path: dir.to_owned(), source: e }),
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(claimgate_store::data_dir::is_snapshot_name))
        .collect();
    found.sort();
    found.reverse();
    Ok(found)
}

/// Reads only the header of a snapshot file.
pub fn read_header(path: &Path) -> Result<Header, SnapshotError> {
    let mut head = [0u8; HEADER_LEN];
    let mut file = File::open(path).map_err(io(path))?;
    let n = std::io::Read::read(&mut file, &mut head).map_err(io(path))?;
    Header::decode(&head[..n])
}

/// Maps and fully validates a snapshot; `owner`, if given, must match.
pub fn load(path: &Path, owner: Option<Owner>) -> Result<Base, SnapshotError> {
    let file = File::open(path).map_err(io(path))?;
    // SAFETY: snapshot files are never modified after the rename that
    // publishes them; they are only ever replaced by new names or unlinked,
    // which leaves an existing mapping intact.
    let map = unsafe { Mmap::map(&file) }.map_err(io(path))?;
    let header = Header::decode(&map)?;
    if header.format_version != FORMAT_VERSION {
        return Err(SnapshotError::UnsupportedVersion { found: header.format_version });
    }
    if let Some(owner) = owner {
        if owner.ledger_id != header.ledger_id || owner.policy_hash != header.policy_hash {
            return Err(SnapshotError::OtherLedger {
                found_ledger: header.ledger_id,
                expected_ledger: owner.ledger_id,
            });
        }
    }
    let found = (map.len() - HEADER_LEN) as u64;
    if found != header.payload_len {
        return Err(SnapshotError::Truncated { expected: header.payload_len, found });
    }
    let payload = &map[HEADER_LEN..];
    let computed = xxh3_64(payload);
    if computed != header.checksum {
        return Err(SnapshotError::ChecksumMismatch { stored: header.checksum, computed });
    }
    let tables = rkyv::access::<ArchivedTables, rkyv::rancor::Error>(payload)
        .map_err(|e| SnapshotError::Invalid(e.to_string()))?;
    super::base::check_tables(tables).map_err(SnapshotError::Invalid)?;
    if tables.seq.to_native() != header.seq {
        return Err(SnapshotError::Invalid("header and archive disagree on seq".into()));
    }
    let len = payload.len();
    // SAFETY: the payload (`map[HEADER_LEN..HEADER_LEN + len]`) just passed
    // rkyv's validation and `check_tables`, and the map is read-only.
    Ok(unsafe { Base::from_validated_map(map, HEADER_LEN, len) })
}
