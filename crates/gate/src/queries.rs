//! Ledger reads clients ask for: integrity files (R22) and `explain`.
//!
//! They run on [`QUERY_CONNECTIONS`] threads of their own, one per query
//! connection of the ledger, at a lower scheduling priority
//! ([`QUERY_NICENESS`]): a 20,000-event file costs real CPU, and the index
//! sync, `min_seq` waits and the check handlers must not wait behind it,
//! neither for a ledger connection (the sync tails on its own) nor for a
//! core. At most `--max-queued-reads` wait for a thread, each at most
//! [`QUERY_READ_WAIT`]; past either bound a read is refused at once (503
//! `busy` at the boundary). Nothing here blocks a tokio worker.

use claimgate_store::ledger::QUERY_CONNECTIONS;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Default for `--max-queued-reads`: reads that may wait for a query thread.
pub const DEFAULT_MAX_QUEUED_READS: usize = 64;
/// Longest a read waits for a query thread; then it is refused.
pub const QUERY_READ_WAIT: Duration = Duration::from_secs(5);
/// How much lower than the gate's other threads the query threads run.
pub const QUERY_NICENESS: i32 = 10;

/// Why a read was not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryRefusal {
    /// `--max-queued-reads` reads were already waiting.
    QueueFull,
    /// No query thread came free within [`QUERY_READ_WAIT`].
    WaitedTooLong,
    /// The read panicked (a bug; the thread lives on).
    Panicked,
}

/// A read waiting for a thread; it runs only if its caller still waits.
type Job = Box<dyn FnOnce() + Send>;

/// The query threads and their bounded queue.
pub struct QueryPool {
    queue: Sender<Job>,
    /// Reads submitted and not yet done (running or waiting); at most
    /// `capacity`, which bounds the channel.
    admitted: Arc<AtomicUsize>,
    /// Threads plus `--max-queued-reads`.
    capacity: usize,
}

impl QueryPool {
    /// Starts [`QUERY_CONNECTIONS`] threads; at most `max_queued` reads wait.
    pub fn start(max_queued: usize) -> QueryPool {
        QueryPool::with_threads(QUERY_CONNECTIONS, max_queued)
    }

    fn with_threads(threads: usize, max_queued: usize) -> QueryPool {
        assert!(threads > 0, "a read needs a thread");
        let (queue, jobs) = channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let admitted = Arc::new(AtomicUsize::new(0));
        for n in 0..threads {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("ledger-query-{n}"))
                .spawn(move || {
                    claimgate_store::thread_priority::renice(QUERY_NICENESS, "ledger query");
                    while let Some(job) = next(&jobs) {
                        job();
                    }
                })
                .expect("spawning a ledger query thread");
        }
        QueryPool { queue, admitted, capacity: threads + max_queued }
    }

    /// Runs `read` on a query thread and returns what it returned: at once
    /// if a thread is free, else after a wait in the bounded queue (see
    /// [`Self::submit`] and [`Pending::answer`]).
    pub async fn run<T: Send + 'static>(&self, read: impl FnOnce() -> T + Send + 'static) -> Result<T, QueryRefusal> {
        self.submit(read)?.answer().await
    }

    /// Hands `read` to a free thread, or queues it; refused at once when the
    /// queue is full.
    pub fn submit<T: Send + 'static>(
        &self,
        read: impl FnOnce() -> T + Send + 'static,
    ) -> Result<Pending<T>, QueryRefusal> {
        let (start, started) = oneshot::channel();
        let (answer, answered) = oneshot::channel();
        let admitted = self.admitted.clone();
        let job: Job = Box::new(move || {
            // A caller that stopped waiting is skipped: nothing is read for nobody.
            // A panicking read loses its answer, never the thread.
            let value = if start.send(()).is_ok() {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).ok()
            } else {
                None
            };
            // The place is given back before the answer goes out, so a caller
            // that submits again at once finds it free.
            admitted.fetch_sub(1, Ordering::AcqRel);
            if let Some(value) = value {
                let _ = answer.send(value);
            }
        });
        let capacity = self.capacity;
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < capacity).then_some(n + 1))
            .map_err(|_full| QueryRefusal::QueueFull)?;
        self.queue.send(job).expect("the query threads live as long as the pool");
        Ok(Pending { started, answered })
    }
}

/// A submitted read's answer, to come.
pub struct Pending<T> {
    started: oneshot::Receiver<()>,
    answered: oneshot::Receiver<T>,
}

impl<T> Pending<T> {
    /// Waits at most [`QUERY_READ_WAIT`] for a thread to take the read, then
    /// for the read itself, however long it takes: a read once begun is
    /// never wasted by a timeout (under load, timed-out reads that ran on
    /// would take the threads from reads that can still be answered). The
    /// read's own cost bounds that second wait (one entity's history; on
    /// PostgreSQL also its statement timeout). A caller that stops waiting
    /// before its read begins (the wait ran out, the client went away) is
    /// skipped when its turn comes.
    pub async fn answer(self) -> Result<T, QueryRefusal> {
        match tokio::time::timeout(QUERY_READ_WAIT, self.started).await {
            Ok(Ok(())) => {}
            // Jobs are dropped unrun only with the pool itself.
            Ok(Err(_)) | Err(_) => return Err(QueryRefusal::WaitedTooLong),
        }
        // A read that panicked dropped its answer: say so, never hang.
        self.answered.await.map_err(|_dropped| QueryRefusal::Panicked)
    }
}

/// The next job, or `None` once the pool is dropped.
fn next(jobs: &Mutex<Receiver<Job>>) -> Option<Job> {
    jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).recv().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A read that runs until its gate opens, and says when it started.
    fn blocked(started: mpsc::Sender<()>, gate: Arc<Mutex<()>>) -> impl FnOnce() -> u32 + Send + 'static {
        move || {
            let _ = started.send(());
            let _open = gate.lock().unwrap();
            7
        }
    }

    #[tokio::test]
    async fn reads_run_on_the_threads_then_wait_in_the_bounded_queue_then_are_refused() {
        let pool = QueryPool::with_threads(2, 1);
        let gate = Arc::new(Mutex::new(()));
        let closed = gate.lock().unwrap();
        let (started, running) = mpsc::channel();
        let a = pool.submit(blocked(started.clone(), gate.clone())).unwrap();
        let b = pool.submit(blocked(started.clone(), gate.clone())).unwrap();
        running.recv().unwrap();
        running.recv().unwrap();
        // Both threads busy: one read queues, the next is refused at once.
        let queued = pool.submit(blocked(started, gate.clone())).expect("the queue holds one");
        assert_eq!(pool.submit(|| 0).err(), Some(QueryRefusal::QueueFull));
        drop(closed);
        for read in [a, b, queued] {
            assert_eq!(read.answer().await, Ok(7));
        }
        assert_eq!(pool.run(|| 9).await, Ok(9), "free again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_that_waits_past_the_bound_is_refused_and_never_runs() {
        let pool = QueryPool::with_threads(1, 4);
        let gate = Arc::new(Mutex::new(()));
        let closed = gate.lock().unwrap();
        let (started, running) = mpsc::channel();
        let first = {
            let read = blocked(started, gate.clone());
            let pool = &pool;
            async move { pool.run(read).await }
        };
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let second = {
            let ran = ran.clone();
            let pool = &pool;
            async move {
                running.recv().unwrap();
                let waited = tokio::time::Instant::now();
                let refused = pool.run(move || ran.store(true, std::sync::atomic::Ordering::SeqCst)).await;
                (refused, waited.elapsed())
            }
        };
        let release = async {
            // Past the bound on the paused clock, then open the gate.
            tokio::time::sleep(QUERY_READ_WAIT + Duration::from_millis(1)).await;
            drop(closed);
        };
        let (first, (refused, waited), ()) = tokio::join!(first, second, release);
        assert_eq!(first, Ok(7), "a read once begun is waited for");
        assert_eq!(refused, Err(QueryRefusal::WaitedTooLong));
        assert_eq!(waited, QUERY_READ_WAIT);
        // The thread finishes the first read and skips the second (on real
        // time, which the paused clock must not race: wait without a timer).
        while pool.admitted.load(Ordering::Acquire) > 0 {
            std::thread::yield_now();
        }
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst), "the refused read was skipped, never run");
    }

    #[tokio::test]
    async fn a_read_that_panics_is_answered_as_such_and_the_thread_lives_on() {
        let pool = QueryPool::with_threads(1, 0);
        assert_eq!(pool.run(|| -> u32 { panic!("a bug") }).await, Err(QueryRefusal::Panicked));
        assert_eq!(pool.run(|| 3).await, Ok(3), "the one thread still reads, and its place came back");
    }
}
