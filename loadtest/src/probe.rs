//! What a run learns besides its own requests: CPU seconds from /proc, the
//! server's counters from its `/metrics`, the machine; and the number
//! formats the summaries share.

use crate::client::{build_request, Connection};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Longest wait for the server's `/metrics`.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// CPU seconds used during a run.
#[derive(Debug, Serialize)]
pub struct CpuReport {
    pub generator: Option<f64>,
    pub server: Option<f64>,
}

/// CPU times read at a run's start, to report what the run used.
pub struct CpuMark {
    generator: Option<f64>,
    server: Option<f64>,
    server_pid: Option<u32>,
}

impl CpuMark {
    /// This process's and (if given) the server's CPU seconds so far.
    pub fn now(server_pid: Option<u32>) -> CpuMark {
        CpuMark { generator: cpu_seconds(None), server: cpu_seconds(server_pid), server_pid }
    }

    /// CPU seconds used since the mark.
    pub fn since(&self) -> CpuReport {
        CpuReport {
            generator: cpu_seconds(None).zip(self.generator).map(|(b, a)| round3(b - a)),
            server: cpu_seconds(self.server_pid).zip(self.server).map(|(b, a)| round3(b - a)),
        }
    }
}

impl CpuReport {
    /// The summary line.
    pub fn line(&self, elapsed_s: f64, machine: &Machine) -> String {
        format!(
            "   cpu: generator {} s, server {} s, over {elapsed_s:.1} s on {} cores\n",
            self.generator.map_or("?".into(), |v| format!("{v:.1}")),
            self.server.map_or("-".into(), |v| format!("{v:.1}")),
            machine.cores
        )
    }
}

/// The machine the run shared with the server.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
}

impl Machine {
    /// This machine.
    pub fn this() -> Machine {
        Machine { cores: std::thread::available_parallelism().map_or(0, |n| n.get()) }
    }
}

/// CPU seconds (user + system) a process has used, from /proc (Linux; ticks of 1/100 s).
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces), which ends at the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name and state.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The server's `*_total` counters from GET /metrics (Prometheus text); empty if it has none.
pub async fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let request = build_request("GET", "/metrics", &addr.to_string(), &[], b"");
    let answer = async {
        let mut conn = Connection::connect(addr).await.ok()?;
        conn.exchange(&request).await.ok().filter(|r| r.status == 200)
    };
    let Ok(Some(r)) = tokio::time::timeout(SCRAPE_TIMEOUT, answer).await else { return Default::default() };
    parse_counters(&String::from_utf8_lossy(&r.body))
}

fn parse_counters(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            let base = name.split('{').next()?;
            base.ends_with("_total").then(|| Some((name.to_owned(), value.trim().parse().ok()?)))?
        })
        .collect()
}

/// Counters that changed between two scrapes, by how much.
pub fn counter_deltas(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d != 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

/// Rounded to three decimals (for JSON reports).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Microseconds as milliseconds for a summary line.
pub fn ms(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.0} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} ms", us as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_prometheus_text() {
        let before = parse_counters(
            "# HELP x\nclaimgate_audit_dropped_total 5\nclaimgate_index_seq 9\nclaimgate_decisions_total{verdict=\"settle\",reason=\"ok\"} 10\n",
        );
        assert_eq!(before.len(), 2);
        let after = parse_counters(
            "claimgate_audit_dropped_total 7\nclaimgate_decisions_total{verdict=\"settle\",reason=\"ok\"} 10\nnew_total 1\n",
        );
        let d = counter_deltas(&before, &after);
        assert_eq!(d.get("claimgate_audit_dropped_total"), Some(&2.0));
        assert_eq!(d.get("new_total"), Some(&1.0));
        assert_eq!(d.len(), 2);
        assert!(parse_counters(r#"{"seq":0}"#).is_empty());
    }
}
