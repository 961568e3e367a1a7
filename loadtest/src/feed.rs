//! `loadtest feed`: how fast one consumer reads the change feed
//! (`GET /v1/changes`, issue 16): pages of `--limit` changes, one after the
//! other on one keep-alive connection, from `after_seq=0` until the feed's
//! end (`through_seq` reached), `--max-changes` or `--duration`, whichever
//! comes first. Reports changes and pages per second, bytes read, and the
//! latency of a page (HdrHistogram).

use crate::probe::round3;
use crate::stats;
use claimgate_testkit::http::{Blocking, Request};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What a feed run is told (validated by the caller).
#[derive(Debug, Clone)]
pub struct FeedConfig {
    pub addr: SocketAddr,
    pub token: String,
    pub limit: usize,
    pub max_changes: u64,
    pub duration: Duration,
    pub timeout: Duration,
}

/// The report of one feed run (also written as JSON).
#[derive(Debug, Serialize)]
pub struct FeedReport {
    pub kind: &'static str,
    pub limit: usize,
    pub elapsed_s: f64,
    pub changes: u64,
    pub pages: u64,
    pub bytes: u64,
    pub changes_per_s: f64,
    pub mib_per_s: f64,
    /// The feed's `through_seq` when the run stopped, and the last seq read.
    pub through_seq: u64,
    pub last_seq: u64,
    /// Every page, from its send.
    pub page_latency_us: stats::Percentiles,
}

pub fn run(config: FeedConfig) -> Result<FeedReport, String> {
    let mut client = Blocking::new(config.addr, config.timeout);
    let auth = format!("Bearer {}", config.token);
    let mut latencies = hdrhistogram::Histogram::<u64>::new(3).expect("a histogram");
    let (mut after, mut changes, mut pages, mut bytes, mut through) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    while changes < config.max_changes && started.elapsed() < config.duration {
        let path = format!("/v1/changes?after_seq={after}&limit={}", config.limit);
        let sent = Instant::now();
        let reply = client
            .send(&Request::new("GET", &path, &[("authorization", auth.as_str())], Vec::new()))
            .map_err(|e| format!("GET {path}: {e:?}"))?;
        let _ = latencies.record(sent.elapsed().as_micros() as u64);
        if reply.status != 200 {
            return Err(format!("GET {path}: {} {}", reply.status, String::from_utf8_lossy(&reply.body)));
        }
        let page: Page = serde_json::from_slice(&reply.body).map_err(|e| format!("GET {path}: not a page: {e}"))?;
        pages += 1;
        bytes += reply.body.len() as u64;
        changes += page.changes.len() as u64;
        through = page.through_seq;
        if page.changes.is_empty() && page.next_after_seq == after {
            break; // the end of the feed
        }
        after = page.next_after_seq;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(FeedReport {
        kind: "feed",
        limit: config.limit,
        elapsed_s: round3(elapsed),
        changes,
        pages,
        bytes,
        changes_per_s: (changes as f64 / elapsed).round(),
        mib_per_s: round3(bytes as f64 / elapsed / (1024.0 * 1024.0)),
        through_seq: through,
        last_seq: after,
        page_latency_us: stats::Percentiles::of(&latencies),
    })
}

/// A page, only as far as the run needs it (changes counted, not kept).
#[derive(serde::Deserialize)]
struct Page {
    changes: Vec<serde::de::IgnoredAny>,
    next_after_seq: u64,
    through_seq: u64,
}

pub fn summary(r: &FeedReport) -> String {
    format!(
        "== feed: {} changes in {} pages of up to {} in {:.2} s: {} changes/s, {:.1} MiB/s; page p50 {} us, p99 {} us; through seq {}\n",
        r.changes,
        r.pages,
        r.limit,
        r.elapsed_s,
        r.changes_per_s,
        r.mib_per_s,
        r.page_latency_us.p50,
        r.page_latency_us.p99,
        r.through_seq
    )
}
