//! One timed exchange on a keep-alive connection that reconnects when lost,
//! and how an exchange without an answer is counted: shared by the check
//! connections and the admin writers of `loadtest run` and by the writers of
//! `loadtest append`.

use crate::client::{ClientError, Connection, Response};
use crate::stats::Stats;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Why an exchange ended without an answer.
pub enum NoAnswer {
    /// No complete answer within the timeout.
    Timeout,
    Failed(ClientError),
}

/// A connection to one address, opened again after a failure; `start` is
/// the run's start, from which error samples are timed.
pub struct Link {
    addr: SocketAddr,
    conn: Option<Connection>,
    start: Instant,
}

impl Link {
    /// Connects (within `timeout`); a failure is counted and the first
    /// exchange tries again.
    pub async fn open(addr: SocketAddr, timeout: Duration, start: Instant, stats: &mut Stats) -> Link {
        let conn = match tokio::time::timeout(timeout, Connection::connect(addr)).await {
            Ok(Ok(c)) => Some(c),
            Ok(Err(e)) => {
                stats.errors.connect += 1;
                stats.errors.sample(0, "connect", None, &format!("connecting to {addr}: {e}"));
                None
            }
            Err(_) => {
                stats.errors.connect += 1;
                stats.errors.sample(0, "connect", None, &format!("connecting to {addr}: no answer within {timeout:?}"));
                None
            }
        };
        Link { addr, conn, start }
    }

    /// Microseconds from the run's start to `t` (0 before it).
    pub fn micros(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_micros() as u64
    }

    /// Sends `request` and waits for its answer, at most `timeout`,
    /// (re)connecting first if needed. Returns the send time and how it
    /// ended; `None` if it could not connect (counted).
    pub async fn exchange(
        &mut self,
        request: &[u8],
        timeout: Duration,
        stats: &mut Stats,
    ) -> Option<(Instant, Result<Response, NoAnswer>)> {
        if self.conn.is_none() {
            match tokio::time::timeout(timeout, Connection::connect(self.addr)).await {
                Ok(Ok(c)) => self.conn = Some(c),
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {timeout:?}"),
                    };
                    stats.errors.connect += 1;
                    let at = self.micros(Instant::now());
                    stats.errors.sample(at, "connect", None, &format!("reconnecting to {}: {why}", self.addr));
                    return None;
                }
            }
        }
        let c = self.conn.as_mut().expect("connected above");
        let sent = Instant::now();
        stats.sent += 1;
        let outcome = match tokio::time::timeout(timeout, c.exchange(request)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(NoAnswer::Failed(e)),
            Err(_) => Err(NoAnswer::Timeout),
        };
        if !matches!(&outcome, Ok(r) if !r.close) {
            self.conn = None;
        }
        Some((sent, outcome))
    }

    /// Counts (and samples) an exchange that ended without an answer. A
    /// timeout also counts in the latency: the request ended then, from
    /// `from` (its intended send time in open loop, else its send).
    pub fn no_answer(&self, stats: &mut Stats, why: NoAnswer, from: Instant, sent: Instant, timeout: Duration) {
        let done = Instant::now();
        let at = self.micros(done);
        match why {
            NoAnswer::Timeout => {
                stats.errors.timeout += 1;
                stats.ended(from, sent, done);
                let sent_at = self.micros(sent) as f64 / 1000.0;
                stats.errors.sample(
                    at,
                    "timeout",
                    None,
                    &format!("no complete answer within {timeout:?} (sent at {sent_at:.1} ms)"),
                );
            }
            NoAnswer::Failed(e @ ClientError::Io(_)) => {
                stats.errors.io += 1;
                stats.errors.sample(at, "io", None, &e.to_string());
            }
            NoAnswer::Failed(e @ ClientError::Protocol(_)) => {
                stats.errors.protocol += 1;
                stats.errors.sample(at, "protocol", None, &e.to_string());
            }
        }
    }
}
