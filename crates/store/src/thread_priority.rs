//! A thread's scheduling priority, as a `nice` increment (on Linux, per
//! thread): background threads (the audit indexer, the ledger query threads)
//! run lower, so on a busy machine the check handlers and the index sync come
//! first; the decision log's writer, whose fsync rejects and exemptions wait
//! on, runs higher where the process may (as root).

/// Adds `niceness` to the calling thread's nice value (positive lowers its
/// priority, negative raises it); `what` names the thread in the debug log
/// when the system refuses, which costs only that thread's promptness.
pub fn renice(niceness: i32, what: &str) {
    let tid = rustix::thread::gettid();
    let now = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(Some(tid), now + niceness) {
        tracing::debug!(error = %e, thread = what, niceness, "cannot change the thread's priority");
    }
}
