//! What each connection task records, merged after the run: latency
//! histograms, errors by kind, verdicts, completions per 100 ms window, and
//! the index `seq` each check answer carried.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Latency histograms hold 1 µs to this, in µs (beyond: recorded as this).
pub const MAX_TRACKED_US: u64 = 120_000_000;
/// Width of a throughput window, in µs.
pub const WINDOW_US: u64 = 100_000;
/// Failed exchanges kept verbatim per run (the earliest), so an error can be investigated.
pub const MAX_ERROR_SAMPLES: usize = 8;
/// Characters of an error body (or message) kept in a sample.
pub const SAMPLE_DETAIL_CHARS: usize = 400;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3).expect("valid histogram bounds")
}

/// Errors by kind.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Errors {
    /// Connecting (or reconnecting) failed.
    pub connect: u64,
    /// No complete response within the request timeout.
    pub timeout: u64,
    /// The connection failed or was closed mid-exchange.
    pub io: u64,
    /// Bytes that were not an HTTP/1.1 response.
    pub protocol: u64,
    /// A 2xx answer whose body was not the expected JSON.
    pub non_json: u64,
    /// Non-2xx answers by status.
    pub http_status: BTreeMap<u16, u64>,
    /// Error codes named in non-2xx bodies (`{"error": ...}`), e.g. `stale_index`.
    pub error_codes: BTreeMap<String, u64>,
    /// The earliest failures of the run, verbatim (at most [`MAX_ERROR_SAMPLES`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<ErrorSample>,
}

/// One failed exchange (or refused event), as it was seen.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorSample {
    /// Milliseconds since the run's start when it was seen.
    pub at_ms: f64,
    /// `status`, `timeout`, `io`, `protocol`, `connect`, `non_json` or `refused`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The answer's body, or the client's error message (cut at [`SAMPLE_DETAIL_CHARS`]).
    pub detail: String,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.io + self.protocol + self.non_json + self.http_status.values().sum::<u64>()
    }

    fn merge(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.timeout += o.timeout;
        self.io += o.io;
        self.protocol += o.protocol;
        self.non_json += o.non_json;
        add_all(&mut self.http_status, &o.http_status);
        add_all(&mut self.error_codes, &o.error_codes);
        self.samples.extend(o.samples.iter().cloned());
        self.samples.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        self.samples.truncate(MAX_ERROR_SAMPLES);
    }

    /// Keeps a failure verbatim if fewer than [`MAX_ERROR_SAMPLES`] are kept.
    pub fn sample(&mut self, at_us: u64, kind: &'static str, status: Option<u16>, detail: &str) {
        if self.samples.len() < MAX_ERROR_SAMPLES {
            let mut kept: String = detail.chars().take(SAMPLE_DETAIL_CHARS).collect();
            if kept.len() < detail.len() {
                kept.push('…');
            }
            let detail = kept;
            self.samples.push(ErrorSample { at_ms: at_us as f64 / 1000.0, kind, status, detail });
        }
    }

    /// Counts (and samples) a non-2xx answer seen `at_us` after the start.
    pub fn status(&mut self, at_us: u64, status: u16, body: &[u8]) {
        self.sample(at_us, "status", Some(status), &String::from_utf8_lossy(body));
        *self.http_status.entry(status).or_default() += 1;
        #[derive(Deserialize)]
        struct ErrorBody<'a> {
            #[serde(borrow)]
            error: Cow<'a, str>,
        }
        if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
            bump(&mut self.error_codes, &e.error);
        }
    }
}

/// The samples as summary lines (`   first errors:` then one line each), or nothing.
pub fn samples_text(errors: &Errors) -> String {
    let mut out = String::new();
    if !errors.samples.is_empty() {
        out.push_str("   first errors (kept verbatim):\n");
    }
    for x in &errors.samples {
        let status = x.status.map_or(String::new(), |s| format!(" {s}"));
        out.push_str(&format!("     at {:.1} ms: {}{status}: {}\n", x.at_ms, x.kind, x.detail));
    }
    out
}

fn add_all<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

pub fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

/// One task's record (and, merged, the run's).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Every request that ended in a response or a timeout, in µs (closed
    /// loop: from the send; open loop: from the intended send time).
    pub latency: Histogram<u64>,
    /// Open loop: actual send time minus intended send time, in µs.
    pub send_lag: Histogram<u64>,
    /// Like `latency`, but always from the actual send (in closed loop the same).
    pub service: Histogram<u64>,
    /// Requests sent (written to a connection).
    pub sent: u64,
    /// Responses received, any status.
    pub responses: u64,
    /// 2xx answers with the expected JSON.
    pub ok: u64,
    /// Claim lines judged in `ok` answers (checks only).
    pub lines: u64,
    pub errors: Errors,
    /// Verdicts and reasons of judged lines (`settle`, `reject`; `ok`, ...);
    /// batch lines refused as malformed count under `error:<code>`.
    pub verdicts: BTreeMap<String, u64>,
    pub reasons: BTreeMap<String, u64>,
    /// `ok` answers (appends: acknowledged events) per [`WINDOW_US`] window since the start.
    pub windows: Vec<u64>,
    /// (µs since start, seq) whenever this connection saw a higher index seq.
    pub seq_marks: Vec<(u64, u64)>,
    /// Writes: (µs since start when acknowledged, seq).
    pub acks: Vec<(u64, u64)>,
    /// Writes acknowledged as already recorded or refused (R8 code).
    pub refused: BTreeMap<String, u64>,
    /// Single lines only: `latency` split by the answer, [`ANSWER_CLASSES`]
    /// (an `ok` line never waits for the decision log; a reject and an
    /// exemption wait for their record's fsync, R19).
    pub by_answer: [Histogram<u64>; 3],
    /// The class of the last single-line answer recorded (set by [`record_check`]).
    pub last_class: Option<usize>,
}

/// The classes of `Stats::by_answer`, in order.
pub const ANSWER_CLASSES: [&str; 3] = ["ok", "reject", "emergency_exemption"];

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency: histogram(),
            send_lag: histogram(),
            service: histogram(),
            sent: 0,
            responses: 0,
            ok: 0,
            lines: 0,
            errors: Errors::default(),
            verdicts: BTreeMap::new(),
            reasons: BTreeMap::new(),
            windows: Vec::new(),
            seq_marks: Vec::new(),
            acks: Vec::new(),
            refused: BTreeMap::new(),
            by_answer: [histogram(), histogram(), histogram()],
            last_class: None,
        }
    }
}

impl Stats {
    pub fn merge(&mut self, o: &Stats) {
        self.latency.add(&o.latency).expect("same bounds");
        for (mine, theirs) in self.by_answer.iter_mut().zip(&o.by_answer) {
            mine.add(theirs).expect("same bounds");
        }
        self.send_lag.add(&o.send_lag).expect("same bounds");
        self.service.add(&o.service).expect("same bounds");
        self.sent += o.sent;
        self.responses += o.responses;
        self.ok += o.ok;
        self.lines += o.lines;
        self.errors.merge(&o.errors);
        add_all(&mut self.verdicts, &o.verdicts);
        add_all(&mut self.reasons, &o.reasons);
        if self.windows.len() < o.windows.len() {
            self.windows.resize(o.windows.len(), 0);
        }
        for (a, b) in self.windows.iter_mut().zip(&o.windows) {
            *a += b;
        }
        self.seq_marks.extend_from_slice(&o.seq_marks);
        self.acks.extend_from_slice(&o.acks);
        add_all(&mut self.refused, &o.refused);
    }

    /// Counts one completion in the window of `at_us`.
    pub fn window(&mut self, at_us: u64) {
        self.window_add(at_us, 1);
    }

    /// Counts `n` completions in the window of `at_us`.
    pub fn window_add(&mut self, at_us: u64, n: u64) {
        let w = (at_us / WINDOW_US) as usize;
        if self.windows.len() <= w {
            self.windows.resize(w + 1, 0);
        }
        self.windows[w] += n;
    }

    /// Records one ended request (answered or timed out): from `from` (the
    /// intended send time in open loop, else the send) and from the send.
    pub fn ended(&mut self, from: std::time::Instant, sent: std::time::Instant, done: std::time::Instant) {
        let us = |t: std::time::Instant| done.saturating_duration_since(t).as_micros() as u64;
        self.latency.saturating_record(us(from).max(1));
        self.service.saturating_record(us(sent).max(1));
    }

    /// Files the latency of the single line just recorded by its answer's class.
    pub fn classify(&mut self, from: std::time::Instant, done: std::time::Instant) {
        if let Some(class) = self.last_class.take() {
            self.by_answer[class].saturating_record((done.saturating_duration_since(from).as_micros() as u64).max(1));
        }
    }

    /// Notes the seq a check answer carried, if it is new for this connection.
    pub fn seq_seen(&mut self, at_us: u64, seq: u64) {
        if self.seq_marks.last().is_none_or(|&(_, s)| seq > s) {
            self.seq_marks.push((at_us, seq));
        }
    }
}

#[derive(Deserialize)]
struct CheckAnswer<'a> {
    seq: u64,
    #[serde(borrow)]
    verdict: Cow<'a, str>,
    #[serde(borrow)]
    reason: Cow<'a, str>,
}

#[derive(Deserialize)]
struct BatchAnswer<'a> {
    seq: u64,
    #[serde(borrow)]
    results: Vec<BatchLine<'a>>,
}

#[derive(Deserialize)]
struct BatchLine<'a> {
    #[serde(borrow, default)]
    verdict: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    error: Option<Cow<'a, str>>,
}

/// Reads a 2xx check answer into `stats`: its lines, verdicts and seq.
/// Returns the seq, or `None` if the body is not a check answer.
pub fn record_check(stats: &mut Stats, body: &[u8], batch: bool) -> Option<u64> {
    if batch {
        let answer: BatchAnswer = serde_json::from_slice(body).ok()?;
        for line in &answer.results {
            match (&line.verdict, &line.reason, &line.error) {
                (Some(v), Some(r), _) => {
                    bump(&mut stats.verdicts, v);
                    bump(&mut stats.reasons, r);
                }
                (_, _, e) => bump(&mut stats.verdicts, &format!("error:{}", e.as_deref().unwrap_or("unknown"))),
            }
        }
        stats.lines += answer.results.len() as u64;
        Some(answer.seq)
    } else {
        let answer: CheckAnswer = serde_json::from_slice(body).ok()?;
        stats.last_class = Some(match &*answer.reason {
            "ok" => 0,
            "emergency_exemption" => 2,
            _ => 1,
        });
        bump(&mut stats.verdicts, &answer.verdict);
        bump(&mut stats.reasons, &answer.reason);
        stats.lines += 1;
        Some(answer.seq)
    }
}

/// Percentiles of a histogram, in µs.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    /// `p50 X  p90 X  p99 X  p99.9 X  max X`, in milliseconds.
    pub fn text(&self) -> String {
        use crate::probe::ms;
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.p999),
            ms(self.max)
        )
    }

    pub fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
        }
    }
}

/// Freshness of writes as seen by checks.
#[derive(Debug, Clone, Serialize)]
pub struct Freshness {
    /// Acknowledged writes considered.
    pub acked: u64,
    /// Of those, how many a check answer reflected before the ack arrived (counted as 0).
    pub visible_before_ack: u64,
    /// Of those, how many no check answer reflected, among those acknowledged
    /// before the last check answer of the run.
    pub never_seen: u64,
    /// Acknowledged after the last check answer of the run (left out: no answer could show them).
    pub acked_after_reads: u64,
    /// From the ack to the first check answer with seq >= the write's seq, in µs.
    pub latency_us: Percentiles,
}

/// Check-answer marks (time, seq) sorted by time, each seq replaced by the
/// highest any answer received by then carried.
fn running_max(marks: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut marks = marks.to_vec();
    marks.sort_unstable();
    let mut best = 0;
    for m in &mut marks {
        best = best.max(m.1);
        m.1 = best;
    }
    marks
}

/// For each ack (time, seq): (ack time, seq, time of the first check answer
/// with a seq at least as high, if any), as CSV lines, for a closer look.
pub fn freshness_csv(marks: &[(u64, u64)], acks: &[(u64, u64)]) -> String {
    let marks = running_max(marks);
    let mut acks = acks.to_vec();
    acks.sort_unstable();
    let mut out = String::from("ack_us,seq,first_answer_at_or_past_us\n");
    for (acked_at, seq) in acks {
        let seen = marks.get(marks.partition_point(|&(_, s)| s < seq)).map_or(String::new(), |m| m.0.to_string());
        out.push_str(&format!("{acked_at},{seq},{seen}\n"));
    }
    out
}

/// For each ack (time, seq), the time from it to the first check answer
/// (received at time t, carrying seq) with a seq at least as high.
pub fn freshness(marks: &[(u64, u64)], acks: &[(u64, u64)]) -> Freshness {
    let marks = running_max(marks);
    let mut h = histogram();
    let (mut before, mut never, mut after) = (0, 0, 0);
    let last_answer = marks.last().map_or(0, |m| m.0);
    for &(acked_at, seq) in acks {
        let i = marks.partition_point(|&(_, s)| s < seq);
        if i == marks.len() && acked_at > last_answer {
            after += 1;
            continue;
        }
        match marks.get(i) {
            None => never += 1,
            Some(&(seen_at, _)) if seen_at <= acked_at => {
                before += 1;
                h.saturating_record(0);
            }
            Some(&(seen_at, _)) => h.saturating_record(seen_at - acked_at),
        }
    }
    Freshness {
        acked: acks.len() as u64,
        visible_before_ack: before,
        never_seen: never,
        acked_after_reads: after,
        latency_us: Percentiles::of(&h),
    }
}

/// Check throughput per window over the measured span.
#[derive(Debug, Clone, Serialize)]
pub struct Windows {
    pub window_ms: u64,
    /// Windows considered: the full ones of the run, the first (warm-up) left out.
    pub considered: usize,
    pub min: u64,
    pub median: u64,
    pub max: u64,
    /// Start of the lowest window, in seconds since the run's start.
    pub min_at_s: f64,
    /// Lowest window / median window (1.0: no dip).
    pub dip_ratio: f64,
    /// Every window's count of answers, from the start.
    pub counts: Vec<u64>,
}

pub fn windows(counts: &[u64], full_windows: usize) -> Windows {
    let mut counts = counts.to_vec();
    counts.resize(counts.len().max(full_windows), 0);
    let span: Vec<(usize, u64)> = counts.iter().copied().enumerate().take(full_windows).skip(1).collect();
    let (min_at, min) = span.iter().copied().min_by_key(|&(_, c)| c).unwrap_or((0, 0));
    let mut sorted: Vec<u64> = span.iter().map(|&(_, c)| c).collect();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    Windows {
        window_ms: WINDOW_US / 1000,
        considered: span.len(),
        min,
        median,
        max: sorted.last().copied().unwrap_or(0),
        min_at_s: min_at as f64 * WINDOW_US as f64 / 1e6,
        dip_ratio: if median > 0 { (min as f64 / median as f64 * 1000.0).round() / 1000.0 } else { 0.0 },
        counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_is_from_ack_to_the_first_answer_at_or_past_the_seq() {
        // Two connections' marks; the running max is 10@5, 12@8, 15@20.
        let marks = [(5, 10), (20, 15), (8, 12), (9, 11)];
        let acks = [(2, 12), (10, 13), (30, 16), (1, 9), (19, 16)];
        let f = freshness(&marks, &acks);
        assert_eq!((f.acked, f.visible_before_ack, f.never_seen, f.acked_after_reads), (5, 0, 1, 1));
        // 12: seen at 8, acked at 2 -> 6; 13: seen at 20 -> 10; 9: seen at 5 -> 4.
        assert_eq!((f.latency_us.count, f.latency_us.max), (3, 10));
        assert_eq!(
            freshness_csv(&marks, &[(30, 16), (2, 12)]),
            "ack_us,seq,first_answer_at_or_past_us\n2,12,8\n30,16,\n"
        );
        let f = freshness(&marks, &[(9, 12)]);
        assert_eq!((f.visible_before_ack, f.latency_us.max), (1, 0));
    }

    #[test]
    fn windows_find_the_dip_and_skip_the_first_window() {
        let w = windows(&[1, 10, 10, 3, 10, 10, 99], 6);
        assert_eq!((w.considered, w.min, w.median, w.max), (5, 3, 10, 10));
        assert!((w.min_at_s - 0.3).abs() < 1e-9);
        assert!((w.dip_ratio - 0.3).abs() < 1e-9);
    }

    #[test]
    fn check_answers_are_counted() {
        let mut s = Stats::default();
        let single = br#"{"advance_payment_withheld":false,"inspection":"normal","institution_grade":"C","reason":"ok","seq":7,"verdict":"settle","waived":[]}"#;
        assert_eq!(record_check(&mut s, single, false), Some(7));
        let batch = br#"{"seq":9,"results":[{"verdict":"reject","reason":"practitioner_suspended"},{"error":"invalid_request","field":"x","message":"m"}]}"#;
        assert_eq!(record_check(&mut s, batch, true), Some(9));
        assert_eq!(record_check(&mut s, b"<html>", false), None);
        assert_eq!(s.lines, 3);
        assert_eq!(s.verdicts.get("settle"), Some(&1));
        assert_eq!(s.verdicts.get("error:invalid_request"), Some(&1));
        assert_eq!(s.reasons.get("practitioner_suspended"), Some(&1));
        let mut e = Errors::default();
        e.status(0, 503, br#"{"error":"stale_index","message":"m"}"#);
        assert_eq!((e.total(), e.error_codes.get("stale_index")), (1, Some(&1)));
    }
}
