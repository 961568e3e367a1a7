//! Lowering the scheduling priority of a background thread (a `nice`
//! increment; on Linux per thread), so on a busy machine the check handlers,
//! the index sync and the decision log's writer come first.

/// Lowers the calling thread's priority by `niceness`; `what` names the
/// thread for the debug log when the system refuses (which only costs that
/// thread's work some speed).
pub fn lower_by(niceness: i32, what: &str) {
    let tid = rustix::thread::gettid();
    let now = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(Some(tid), now + niceness) {
        tracing::debug!(error = %e, thread = what, "cannot lower the thread's priority");
    }
}
