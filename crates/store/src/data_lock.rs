//! One writer per data directory: an exclusive advisory lock (`flock`) on
//! `DATA/LOCK`, taken before the ledger is opened by every command that writes
//! to the data directory (`serve`, `demo`, `append`, `snapshot write`) and held
//! for as long as the process runs. The OS drops it when the process ends,
//! however it ends (SIGKILL and power loss included), so a restart after a
//! crash is never blocked by a stale lock. The file holds the holder's pid,
//! only to name it in the refusal.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// Longest pid text read back from a lock file.
const MAX_HOLDER_BYTES: usize = 32;

/// Why the data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("data directory {} is in use by another claimgate process ({holder}); stop it or use another --data", dir.display())]
    InUse { dir: PathBuf, holder: String },
    #[error("cannot lock data directory {} ({}): {source}; check that it exists and that this user may write it", dir.display(), path.display())]
    Io { dir: PathBuf, path: PathBuf, source: std::io::Error },
}

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    dir: PathBuf,
}

impl DataDirLock {
    /// Locks `dir` (which must exist) for this process, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io { dir: dir.to_owned(), path: path.clone(), source };
        let file = match OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path) {
            Ok(file) => file,
            // A read-only file system: an existing lock file can still be
            // locked (flock needs no write access), so what is refused next
            // is named for the real problem, the ledger's file system.
            Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => File::open(&path).map_err(io)?,
            Err(e) => return Err(io(e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LockError::InUse { dir: dir.to_owned(), holder: holder(&path) })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        // Best effort: a lock file on a read-only file system keeps the old text.
        let _ = file.set_len(0).and_then(|()| (&file).write_all(format!("{}\n", std::process::id()).as_bytes()));
        Ok(DataDirLock { _file: file, dir: dir.to_owned() })
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// "pid N" as the holder wrote it, or that it is not known.
fn holder(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text[..text.len().min(MAX_HOLDER_BYTES)]).trim().to_owned();
    match text.parse::<u32>() {
        Ok(pid) => format!("pid {pid}"),
        Err(_) => "pid not known".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_directory_is_refused_naming_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let refused = DataDirLock::acquire(dir.path()).unwrap_err().to_string();
        let pid = std::process::id();
        assert!(refused.contains(&format!("in use by another claimgate process (pid {pid})")), "{refused}");
        assert!(refused.contains(&dir.path().display().to_string()), "{refused}");
        drop(first);
        DataDirLock::acquire(dir.path()).expect("released when dropped");
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it_not_a_new_directory() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        let refused = DataDirLock::acquire(&missing).unwrap_err().to_string();
        assert!(refused.contains(&missing.display().to_string()), "{refused}");
        assert!(!missing.exists());
    }
}
