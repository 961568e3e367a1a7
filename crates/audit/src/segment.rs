//! The decision log's files: append-only segments of checksummed frames.
//!
//! A segment is `{first_id:020}.audit` in the audit directory: a 16-byte
//! header (`SEGMENT_MAGIC`, then the id of its first record, little-endian)
//! and frames `[payload length: u32 LE][xxh3-64 of id and payload: u64 LE]
//! [payload: one record as JSON]`. Ids are consecutive across segments, so
//! a frame out of order is as bad as a wrong checksum. Only the newest
//! segment is ever written; the others are sealed (fsynced before the next
//! was created) and only read or, past the retention, deleted whole.
//!
//! After a crash the newest segment may end in a torn frame (a group whose
//! fsync never completed). [`repair_tail`] finds the last sound frame, keeps
//! the bytes after it in a side file (`*.torn-<offset>`, nothing that was on
//! disk is destroyed) and cuts the segment there; those records were never
//! answered (R19: answered only once durable).

use super::record::AuditRecord;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The first bytes of every segment.
pub const SEGMENT_MAGIC: &[u8; 8] = b"CGAUDIT1";
/// Header bytes: magic and first id.
pub const HEADER_BYTES: u64 = 16;
/// Frame bytes before the payload: length and checksum.
pub const FRAME_HEAD_BYTES: usize = 12;
/// Largest payload a frame may carry (a record is a few hundred bytes; a
/// longer length field is damage, not a record).
pub const MAX_RECORD_BYTES: usize = 16 * 1024;
/// A segment file's extension (the data directory's layout names it).
pub use claimgate_store::data_dir::SEGMENT_EXTENSION;

/// The path of the segment whose first record is `first_id`.
pub fn segment_path(dir: &Path, first_id: u64) -> PathBuf {
    dir.join(format!("{first_id:020}.{SEGMENT_EXTENSION}"))
}

/// The segments in `dir`, oldest first, as `(first_id, path)`.
pub fn list(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if let Some(first) = claimgate_store::data_dir::segment_first_id(&path) {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

/// The checksum of one frame: over the record's id and its payload, so a
/// frame copied to the wrong place does not verify.
fn checksum(id: u64, payload: &[u8]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&id.to_le_bytes());
    h.update(payload);
    h.digest()
}

/// Appends one record's frame to `out`.
pub fn encode(record: &AuditRecord, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEAD_BYTES]);
    serde_json::to_writer(&mut *out, record).expect("a record serializes");
    let len = out.len() - start - FRAME_HEAD_BYTES;
    debug_assert!(len <= MAX_RECORD_BYTES, "a record is bounded by its fields' limits");
    let sum = checksum(record.id, &out[start + FRAME_HEAD_BYTES..]);
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + FRAME_HEAD_BYTES].copy_from_slice(&sum.to_le_bytes());
}

/// A new segment's header.
pub fn header(first_id: u64) -> [u8; HEADER_BYTES as usize] {
    let mut h = [0; HEADER_BYTES as usize];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..].copy_from_slice(&first_id.to_le_bytes());
    h
}

/// Why reading a segment stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameFault {
    #[error("the header is missing or is not a claimgate audit segment's")]
    Header,
    #[error("a frame is cut short")]
    Short,
    #[error("a frame's length ({0} bytes) is past the largest record")]
    Length(u32),
    #[error("a frame's checksum does not match its record")]
    Checksum,
    #[error("a frame's record is not readable: {0}")]
    Record(String),
    #[error("a frame holds record {found} where record {expected} belongs")]
    OutOfOrder { expected: u64, found: u64 },
    #[error("zeros stand where a frame belongs, and data follows them")]
    ZeroGap,
}

/// Bytes of zeros the writer keeps written ahead of its position in the
/// newest segment, fsynced once, so that a group's fdatasync changes no file
/// size or block map (no journal commit shared with other files on the file
/// system, which is what makes an fsync slow on a busy disk). A sealed
/// segment is cut back to its last frame.
pub const PREALLOCATE_BYTES: u64 = 4 * 1024 * 1024;

/// Reads a segment's frames in order from a buffered file.
pub struct SegmentReader {
    file: std::io::BufReader<File>,
    /// Offset of the next frame.
    pub offset: u64,
    /// Id the next frame must hold.
    pub next_id: u64,
    /// Stop before this offset (the durable end of the segment being written).
    end: Option<u64>,
    /// The newest segment: a frame head of zeros followed by nothing but
    /// zeros is the end of what was written (the writer's preallocation).
    zero_tail: bool,
    payload: Vec<u8>,
}

impl SegmentReader {
    /// Opens `path` (a segment starting at `first_id`) at `offset` (0: its
    /// first frame), where the record `next_id` must be.
    pub fn open(path: &Path, first_id: u64, offset: u64, next_id: u64) -> Result<SegmentReader, ReadError> {
        let mut file = File::open(path).map_err(ReadError::Io)?;
        let mut head = [0u8; HEADER_BYTES as usize];
        if file.read_exact(&mut head).is_err() || &head[..8] != SEGMENT_MAGIC || head[8..] != first_id.to_le_bytes() {
            return Err(ReadError::Fault { offset: 0, fault: FrameFault::Header });
        }
        let offset = offset.max(HEADER_BYTES);
        file.seek(SeekFrom::Start(offset)).map_err(ReadError::Io)?;
        Ok(SegmentReader {
            file: std::io::BufReader::with_capacity(256 * 1024, file),
            offset,
            next_id: if offset == HEADER_BYTES { first_id } else { next_id },
            end: None,
            zero_tail: false,
            payload: Vec::new(),
        })
    }

    /// Reads the newest segment: its preallocated zeros end it cleanly.
    pub fn newest(mut self) -> SegmentReader {
        self.zero_tail = true;
        self
    }

    /// Reads no frame at or past `end`.
    pub fn until(mut self, end: Option<u64>) -> SegmentReader {
        self.end = end;
        self
    }

    /// Whether everything after the current position is zeros.
    fn rest_is_zero(&mut self) -> std::io::Result<bool> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => return Ok(true),
                Ok(n) if buf[..n].iter().all(|b| *b == 0) => {}
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next record, `Ok(None)` at a clean end, or the fault at `offset`.
    pub fn next_record(&mut self) -> Result<Option<AuditRecord>, ReadError> {
        if self.end.is_some_and(|e| self.offset >= e) {
            return Ok(None);
        }
        let fault = |f| ReadError::Fault { offset: self.offset, fault: f };
        let mut head = [0u8; FRAME_HEAD_BYTES];
        match read_full(&mut self.file, &mut head).map_err(ReadError::Io)? {
            0 => return Ok(None),
            n if head[..n].iter().all(|b| *b == 0) && self.zero_tail => {
                let offset = self.offset;
                return match self.rest_is_zero() {
                    Ok(true) => Ok(None),
                    Ok(false) => Err(ReadError::Fault { offset, fault: FrameFault::ZeroGap }),
                    Err(e) => Err(ReadError::Io(e)),
                };
            }
            n if n < FRAME_HEAD_BYTES => return Err(fault(FrameFault::Short)),
            _ => {}
        }
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        if len as usize > MAX_RECORD_BYTES || len == 0 {
            return Err(fault(FrameFault::Length(len)));
        }
        self.payload.resize(len as usize, 0);
        if read_full(&mut self.file, &mut self.payload).map_err(ReadError::Io)? < len as usize {
            return Err(fault(FrameFault::Short));
        }
        let sum = u64::from_le_bytes(head[4..].try_into().expect("8 bytes"));
        if sum != checksum(self.next_id, &self.payload) {
            return Err(fault(FrameFault::Checksum));
        }
        let record = decode(&self.payload).map_err(fault)?;
        if record.id != self.next_id {
            return Err(fault(FrameFault::OutOfOrder { expected: self.next_id, found: record.id }));
        }
        self.offset += (FRAME_HEAD_BYTES + len as usize) as u64;
        self.next_id += 1;
        Ok(Some(record))
    }
}

/// A frame's payload as a record: JSON of the record's exact fields, and
/// never the record of an `ok` line (those are not recorded, so one that
/// says so was not written by this log).
fn decode(payload: &[u8]) -> Result<AuditRecord, FrameFault> {
    let record: AuditRecord = serde_json::from_slice(payload).map_err(|e| FrameFault::Record(e.to_string()))?;
    if record.reason == claimgate_rules::Reason::Ok {
        return Err(FrameFault::Record("the record of an `ok` line, which is never recorded".into()));
    }
    Ok(record)
}

/// Reads the record `id` whose frame starts at `offset` of a segment (the
/// index's pointer), verifying its checksum.
pub fn read_at(file: &File, offset: u64, id: u64) -> Result<AuditRecord, ReadError> {
    use std::os::unix::fs::FileExt;
    let fault = |f| ReadError::Fault { offset, fault: f };
    let mut head = [0u8; FRAME_HEAD_BYTES];
    file.read_exact_at(&mut head, offset).map_err(|_| fault(FrameFault::Short))?;
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
    if len as usize > MAX_RECORD_BYTES || len == 0 {
        return Err(fault(FrameFault::Length(len)));
    }
    let mut payload = vec![0u8; len as usize];
    file.read_exact_at(&mut payload, offset + FRAME_HEAD_BYTES as u64).map_err(|_| fault(FrameFault::Short))?;
    if u64::from_le_bytes(head[4..].try_into().expect("8 bytes")) != checksum(id, &payload) {
        return Err(fault(FrameFault::Checksum));
    }
    let record = decode(&payload).map_err(fault)?;
    if record.id != id {
        return Err(fault(FrameFault::OutOfOrder { expected: id, found: record.id }));
    }
    Ok(record)
}

/// Fills `buf` as far as the file goes; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Why a segment could not be read through.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("at byte {offset}: {fault}")]
    Fault { offset: u64, fault: FrameFault },
}

/// What [`repair_tail`] found at the end of the newest segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// The segment's length after the repair (the end of its last sound frame).
    pub end: u64,
    /// Id the next record written gets.
    pub next_id: u64,
    /// Bytes cut after the last sound frame (0: the segment ended cleanly),
    /// kept in `kept_in`.
    pub cut_bytes: u64,
    pub kept_in: Option<PathBuf>,
    pub fault: Option<FrameFault>,
}

/// Reads the newest segment through, and cuts a torn tail (see the module
/// doc); the segment is fsynced after a cut. Its preallocated zeros after the
/// last frame are kept (they are no tail).
pub fn repair_tail(path: &Path, first_id: u64) -> std::io::Result<Tail> {
    let len = std::fs::metadata(path)?.len();
    let mut reader = match SegmentReader::open(path, first_id, 0, first_id) {
        Ok(r) => r.newest(),
        Err(ReadError::Io(e)) => return Err(e),
        // A header cut short: the crash came while the segment was created.
        Err(ReadError::Fault { .. }) => return cut(path, 0, len, first_id, Some(FrameFault::Header)),
    };
    loop {
        match reader.next_record() {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Ok(Tail {
                    end: reader.offset,
                    next_id: reader.next_id,
                    cut_bytes: 0,
                    kept_in: None,
                    fault: None,
                })
            }
            Err(ReadError::Io(e)) => return Err(e),
            Err(ReadError::Fault { offset, fault }) => return cut(path, offset, len, reader.next_id, Some(fault)),
        }
    }
}

fn cut(path: &Path, at: u64, len: u64, next_id: u64, fault: Option<FrameFault>) -> std::io::Result<Tail> {
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let kept = path.with_extension(format!("{SEGMENT_EXTENSION}.torn-{at}"));
    let mut torn = Vec::with_capacity((len - at) as usize);
    file.seek(SeekFrom::Start(at))?;
    file.read_to_end(&mut torn)?;
    let mut side = File::create(&kept)?;
    side.write_all(&torn)?;
    side.sync_all()?;
    if at < HEADER_BYTES {
        // Not even a header: the segment held nothing. Write it afresh.
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header(next_id))?;
    } else {
        file.set_len(at)?;
    }
    file.sync_all()?;
    Ok(Tail { end: at.max(HEADER_BYTES), next_id, cut_bytes: len - at, kept_in: Some(kept), fault })
}

/// Cuts a sealed segment's preallocated zeros after its last frame (a crash
/// between sealing a segment and beginning the next can leave them), so a
/// sealed segment ends at its last frame. Damage is left for the readers to
/// report. Returns the bytes cut.
pub fn seal(path: &Path, first_id: u64) -> std::io::Result<u64> {
    let len = std::fs::metadata(path)?.len();
    let Ok(reader) = SegmentReader::open(path, first_id, 0, first_id) else { return Ok(0) };
    let mut reader = reader.newest();
    loop {
        match reader.next_record() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => return Ok(0),
        }
    }
    if reader.offset < len {
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.set_len(reader.offset)?;
        file.sync_all()?;
    }
    Ok(len - reader.offset)
}

/// fsyncs a directory, so a file created or removed in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
