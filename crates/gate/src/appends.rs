//! Group commit for `POST /v1/events`: the appends of every request waiting
//! at once go to the ledger as one transaction, so concurrent writers share
//! a commit (one fsync on SQLite, one head-row lock, round trip and WAL
//! flush on PostgreSQL) instead of queueing for one each.
//!
//! One thread takes the first request waiting and every other already
//! queued behind it, up to [`MAX_APPEND_BATCH`] events in all, and reads
//! their facts ahead; another, the ledger's only appender in this process,
//! appends their events in queue order in one transaction meanwhile, and
//! answers each request with its own outcomes.
//! Each event is judged against everything before it (R8), exactly as if the
//! requests had been appended one after another in that order: per-event
//! verdicts never depend on the grouping. Nothing is answered before the
//! commit (R5); a storage failure fails every request of the group, and none
//! of their events is stored. At most [`MAX_QUEUED_APPENDS`] requests wait;
//! past that a request is refused at once (503 `busy` at the boundary).

use claimgate_rules::event::Event;
use claimgate_rules::refusal::Refusal;
use claimgate_store::ledger::{Appended, Ledger, LedgerError, Prepared, MAX_APPEND_BATCH};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Requests that may wait for the appending thread.
pub const MAX_QUEUED_APPENDS: usize = 256;

/// One request's outcomes, or the storage failure of its group.
pub type Outcome = Result<Vec<Result<Appended, Refusal>>, Arc<LedgerError>>;

/// Why a request's events were not appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendRefusal {
    /// [`MAX_QUEUED_APPENDS`] requests were already waiting.
    QueueFull,
    /// The appending thread is gone (it panicked: a bug, in the log).
    Stopped,
}

struct Job {
    events: Vec<Event>,
    reply: oneshot::Sender<Outcome>,
}

/// What the appending thread did: how much a commit was shared (`/metrics`).
#[derive(Debug, Default)]
pub struct AppendStats {
    /// `append_batch` calls (transactions begun).
    pub transactions: AtomicU64,
    /// Requests they carried.
    pub requests: AtomicU64,
}

/// The appending thread and its bounded queue.
pub struct Appends {
    queue: Option<crossbeam_channel::Sender<Job>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub stats: Arc<AppendStats>,
}

impl Appends {
    /// Starts the appending thread on `ledger`.
    pub fn start(ledger: Arc<Ledger>) -> Appends {
        let (queue, jobs) = crossbeam_channel::bounded(MAX_QUEUED_APPENDS);
        let stats = Arc::new(AppendStats::default());
        let counted = stats.clone();
        let thread = std::thread::Builder::new()
            .name("ledger-appends".into())
            .spawn(move || run(&ledger, &jobs, &counted))
            .expect("spawning the append thread");
        Appends { queue: Some(queue), thread: Mutex::new(Some(thread)), stats }
    }

    /// Appends `events` (at most [`MAX_APPEND_BATCH`]) with whatever other
    /// requests wait, in one transaction; their outcomes, in order.
    pub async fn append(&self, events: Vec<Event>) -> Result<Outcome, AppendRefusal> {
        assert!(events.len() <= MAX_APPEND_BATCH, "a request's events were bounded at its body");
        let (reply, answer) = oneshot::channel();
        let queue = self.queue.as_ref().expect("open until dropped");
        queue.try_send(Job { events, reply }).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(_) => AppendRefusal::QueueFull,
            crossbeam_channel::TrySendError::Disconnected(_) => AppendRefusal::Stopped,
        })?;
        answer.await.map_err(|_| AppendRefusal::Stopped)
    }
}

impl Drop for Appends {
    fn drop(&mut self) {
        // The thread ends when its queue closes, after the group in hand.
        self.queue.take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

/// Appends the queue's requests in groups until it closes: this thread
/// forms each group and reads its facts ahead ([`Ledger::prepare`]) while a
/// second one commits the group before, so on PostgreSQL the head's lock is
/// held for the inserts and the commit, not the reads. The hand-over is a
/// rendezvous: at most one group is prepared ahead, so its facts are at
/// most one group behind when its turn comes. Should the committing thread
/// die (a bug), the next hand-over fails, this thread returns and the queue
/// closes: requests are refused as stopped, never left waiting.
fn run(ledger: &Ledger, jobs: &crossbeam_channel::Receiver<Job>, stats: &AppendStats) {
    let (ready, groups) = crossbeam_channel::bounded::<Group>(0);
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("ledger-commits".into())
            .spawn_scoped(scope, move || {
                for group in groups {
                    commit(ledger, group, stats);
                }
            })
            .expect("spawning the append committing thread");
        form_groups(ledger, jobs, &ready);
        drop(ready);
    });
}

/// A group of requests, their events in queue order, and the facts read
/// ahead for them.
struct Group {
    jobs: Vec<Job>,
    events: Vec<Event>,
    prepared: Prepared,
}

/// Forms groups from the queue (the first request waiting and every other
/// already queued behind it, up to [`MAX_APPEND_BATCH`] events), reads each
/// one's facts ahead and hands it over; returns when the queue closes or
/// the committing side is gone.
fn form_groups(ledger: &Ledger, jobs: &crossbeam_channel::Receiver<Job>, ready: &crossbeam_channel::Sender<Group>) {
    let mut held: Option<Job> = None;
    loop {
        let first = match held.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let mut total = first.events.len();
        let mut group = vec![first];
        while let Ok(next) = jobs.try_recv() {
            if total + next.events.len() > MAX_APPEND_BATCH {
                held = Some(next); // first in the next group
                break;
            }
            total += next.events.len();
            group.push(next);
        }
        let events: Vec<Event> = if group.len() == 1 {
            std::mem::take(&mut group[0].events)
        } else {
            group.iter().flat_map(|j| j.events.iter().cloned()).collect()
        };
        let prepared = ledger.prepare(&events).unwrap_or_else(|e| {
            // The append reads the facts itself, and reports what fails then.
            tracing::warn!(error = %e, "reading a batch's facts ahead failed; the append reads them");
            Prepared::nothing(&events)
        });
        if ready.send(Group { jobs: group, events, prepared }).is_err() {
            return;
        }
    }
}

/// Appends one group in one transaction and answers each request with its
/// own outcomes, or every request with the group's storage failure.
fn commit(ledger: &Ledger, group: Group, stats: &AppendStats) {
    let Group { jobs, events, prepared } = group;
    let lengths: Vec<usize> =
        if jobs.len() == 1 { vec![events.len()] } else { jobs.iter().map(|j| j.events.len()).collect() };
    stats.transactions.fetch_add(1, Ordering::Relaxed);
    stats.requests.fetch_add(lengths.len() as u64, Ordering::Relaxed);
    match ledger.append_prepared(&events, prepared) {
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            for (job, n) in jobs.into_iter().zip(lengths) {
                // A request whose client left is simply not answered.
                let _ = job.reply.send(Ok(outcomes.by_ref().take(n).collect()));
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claimgate_rules::policy::Policy;
    use serde_json::json;

    fn event(value: serde_json::Value) -> Event {
        Event::parse(&value, &Policy::default()).unwrap()
    }

    fn designated(h: &str) -> Event {
        event(json!({"type": "institution_designated", "institution": h, "effective": "2024-01-01"}))
    }

    fn registered(d: &str, h: &str) -> Event {
        event(
            json!({"type": "practitioner_registered", "practitioner": d, "institution": h, "effective": "2024-02-01"}),
        )
    }

    /// `requests` queued before the thread looks, then run to the end.
    fn run_queued(ledger: &Ledger, requests: Vec<Vec<Event>>) -> (Vec<Outcome>, AppendStats) {
        let (queue, jobs) = crossbeam_channel::bounded(MAX_QUEUED_APPENDS);
        let answers: Vec<_> = requests
            .into_iter()
            .map(|events| {
                let (reply, answer) = oneshot::channel();
                queue.try_send(Job { events, reply }).unwrap();
                answer
            })
            .collect();
        drop(queue);
        let stats = AppendStats::default();
        run(ledger, &jobs, &stats);
        (answers.into_iter().map(|mut a| a.try_recv().expect("every request answered")).collect(), stats)
    }

    #[test]
    fn requests_waiting_together_share_one_transaction_and_get_the_verdicts_of_appending_them_in_turn() {
        let (h, d) = ("H11010500001", "D110105000001");
        let requests = vec![
            vec![registered(d, h)], // before the designation: unknown_institution (R8)
            vec![designated(h)],
            vec![registered(d, h), registered("D110105000002", "H11010500002")],
        ];
        let grouped = Ledger::open_in_memory(&Policy::default()).unwrap();
        let (got, stats) = run_queued(&grouped, requests.clone());
        assert_eq!((stats.transactions.into_inner(), stats.requests.into_inner()), (1, 3), "one commit for three");
        let in_turn = Ledger::open_in_memory(&Policy::default()).unwrap();
        let want: Vec<_> = requests.iter().map(|r| in_turn.append_batch(r).unwrap()).collect();
        let got: Vec<_> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, want);
        assert_eq!(grouped.all_events().unwrap(), in_turn.all_events().unwrap());
    }

    #[test]
    fn a_group_never_holds_more_than_one_append_batch() {
        let ledger = Ledger::open_in_memory(&Policy::default()).unwrap();
        let institutions = |from: usize, n: usize| -> Vec<Event> {
            (from..from + n).map(|i| designated(&format!("H{:011}", 11010500000u64 + i as u64))).collect()
        };
        let half = MAX_APPEND_BATCH / 2 + 1;
        let (got, stats) =
            run_queued(&ledger, vec![institutions(0, half), institutions(half, half), institutions(2 * half, 1)]);
        assert_eq!(stats.transactions.into_inner(), 2, "the second request starts the next group");
        assert!(got.iter().all(|o| o.as_ref().is_ok_and(|v| v.iter().all(Result::is_ok))));
        assert_eq!(ledger.head().unwrap(), (2 * half + 1) as u64);
    }
}
