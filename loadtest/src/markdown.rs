//! `loadtest markdown` and `loadtest get`: reading JSON reports back, for
//! run.sh (a Markdown table for BENCHMARKS.md; single figures) without
//! needing jq or Python on the machine.

use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

fn load(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not a JSON report: {e}", path.display()))
}

/// The value at a JSON pointer (`/throughput/requests_per_s`), strings unquoted.
pub fn get(path: &Path, pointer: &str) -> Result<String, String> {
    let report = load(path)?;
    match report.pointer(pointer) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Ok(v.to_string()),
        None => Err(format!("{} has no {pointer}", path.display())),
    }
}

fn num(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer).and_then(Value::as_f64).unwrap_or(0.0)
}

/// Microseconds as milliseconds for a table cell.
fn ms(us: f64) -> String {
    if us >= 100_000.0 {
        format!("{:.0}", us / 1000.0)
    } else if us >= 10_000.0 {
        format!("{:.1}", us / 1000.0)
    } else {
        format!("{:.2}", us / 1000.0)
    }
}

/// Thousands separated by commas.
fn whole(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn errors(v: &Value) -> String {
    let total = num(v, "/errors_total");
    if total == 0.0 {
        return "0".into();
    }
    let mut parts = Vec::new();
    for kind in ["connect", "timeout", "io", "protocol", "non_json"] {
        let n = num(v, &format!("/errors/{kind}"));
        if n > 0.0 {
            parts.push(format!("{kind} {}", whole(n)));
        }
    }
    if let Some(Value::Object(statuses)) = v.pointer("/errors/http_status") {
        for (status, n) in statuses {
            parts.push(format!("HTTP {status}: {}", whole(n.as_f64().unwrap_or(0.0))));
        }
    }
    format!("{} ({})", whole(total), parts.join(", "))
}

fn load_cell(v: &Value) -> String {
    let mut s = match v.pointer("/config/mode").and_then(Value::as_str) {
        Some("open") => format!("open {}/s", whole(num(v, "/config/rate"))),
        _ => "closed".to_owned(),
    };
    let _ = write!(s, ", {} conn", num(v, "/config/connections"));
    match num(v, "/config/batch_size") {
        b if b > 0.0 => {
            let _ = write!(s, ", batch {b}");
        }
        _ => s.push_str(", single"),
    }
    let w = num(v, "/config/write_rate");
    if w > 0.0 {
        let _ = write!(s, ", + {} writes/s", whole(w));
    }
    s
}

/// Markdown tables of reports, in the order given: `loadtest append`
/// reports in one table (then their error samples), `loadtest run` reports
/// in another, then per-scenario notes (open-loop send lag, the 100 ms dip,
/// writes and freshness).
pub fn table(paths: &[std::path::PathBuf]) -> Result<String, String> {
    let reports: Vec<Value> = paths.iter().map(|p| load(p)).collect::<Result<_, _>>()?;
    let (appends, runs): (Vec<Value>, Vec<Value>) =
        reports.into_iter().partition(|v| v.pointer("/kind").and_then(Value::as_str) == Some("append"));
    let mut s = String::new();
    if !appends.is_empty() {
        s.push_str(&append_table(&appends));
    }
    if !runs.is_empty() {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str(&run_table(&runs));
    }
    Ok(s)
}

fn cpu_cell(v: &Value) -> String {
    let cpu = |who: &str| {
        v.pointer(&format!("/cpu_s/{who}")).and_then(Value::as_f64).map_or("-".to_owned(), |c| format!("{c:.1}"))
    };
    format!("{} / {} of {:.0}", cpu("generator"), cpu("server"), num(v, "/elapsed_s") * num(v, "/machine/cores"))
}

/// Append reports: events and requests per second, latency per request,
/// errors and refusals; then the first error samples of any that had errors.
fn append_table(reports: &[Value]) -> String {
    let mut s = String::new();
    s.push_str("| scenario | writers | events / request | events/s | events/s, median 100 ms | requests/s | p50 ms | p90 ms | p99 ms | max ms | errors | refused | CPU s generator / server |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|\n");
    for v in reports {
        let label = v.pointer("/label").and_then(Value::as_str).unwrap_or("?");
        let refused = match v.pointer("/events/refused") {
            Some(Value::Object(m)) if !m.is_empty() => Value::Object(m.clone()).to_string(),
            _ => "0".to_owned(),
        };
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {refused} | {} |",
            num(v, "/config/writers"),
            num(v, "/config/events_per_request"),
            whole(num(v, "/throughput/events_per_s")),
            whole(num(v, "/throughput/events_per_s_median_window")),
            whole(num(v, "/throughput/requests_per_s")),
            ms(num(v, "/latency_us/p50")),
            ms(num(v, "/latency_us/p90")),
            ms(num(v, "/latency_us/p99")),
            ms(num(v, "/latency_us/max")),
            errors(v),
            cpu_cell(v),
        );
    }
    for v in reports {
        if let Some(Value::Array(samples)) = v.pointer("/errors/samples") {
            let label = v.pointer("/label").and_then(Value::as_str).unwrap_or("?");
            let first: Vec<String> = samples
                .iter()
                .take(3)
                .map(|x| {
                    format!(
                        "at {:.0} ms {} {}: `{}`",
                        num(x, "/at_ms"),
                        x.pointer("/kind").and_then(Value::as_str).unwrap_or("?"),
                        x.pointer("/status").map_or(String::new(), Value::to_string),
                        x.pointer("/detail").and_then(Value::as_str).unwrap_or("").replace('`', "'")
                    )
                })
                .collect();
            let _ = writeln!(s, "\n- {label}, first errors: {}.", first.join("; "));
        }
    }
    s
}

fn run_table(reports: &[Value]) -> String {
    let mut s = String::new();
    s.push_str("| scenario | load | requests/s | claim lines/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | CPU s generator / server |\n");
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---|---|\n");
    for v in reports {
        let label = v.pointer("/label").and_then(Value::as_str).unwrap_or("?");
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            load_cell(v),
            whole(num(v, "/throughput/requests_per_s")),
            whole(num(v, "/throughput/lines_per_s")),
            ms(num(v, "/latency_us/p50")),
            ms(num(v, "/latency_us/p99")),
            ms(num(v, "/latency_us/p999")),
            ms(num(v, "/latency_us/max")),
            errors(v),
            cpu_cell(v),
        );
    }
    s.push('\n');
    for v in reports {
        let label = v.pointer("/label").and_then(Value::as_str).unwrap_or("?");
        let mut notes = vec![format!(
            "per 100 ms window: median {}, lowest {} at {:.1} s (dip {:.2})",
            whole(num(v, "/windows/median")),
            whole(num(v, "/windows/min")),
            num(v, "/windows/min_at_s"),
            num(v, "/windows/dip_ratio")
        )];
        let lines = num(v, "/requests/lines");
        if lines > 0.0 {
            let rejected = num(v, "/verdicts/reject");
            notes.push(format!("{:.1}% of lines rejected", rejected / lines * 100.0));
        }
        if v.pointer("/latency_by_answer_us").is_some() {
            let class = |c: &str| {
                format!(
                    "{c} ({} lines) p50 {} / p99 {} ms",
                    whole(num(v, &format!("/latency_by_answer_us/{c}/count"))),
                    ms(num(v, &format!("/latency_by_answer_us/{c}/p50"))),
                    ms(num(v, &format!("/latency_by_answer_us/{c}/p99")))
                )
            };
            notes.push(format!("by answer: {}; {}; {}", class("ok"), class("reject"), class("emergency_exemption")));
        }
        if v.pointer("/send_lag_us").is_some() {
            notes.push(format!(
                "timed from the actual send instead: p50 {} / p99 {} / p99.9 {} / max {} ms; generator send lag \
                 p50 {} / p99 {} ms, {} due but never sent",
                ms(num(v, "/latency_from_send_us/p50")),
                ms(num(v, "/latency_from_send_us/p99")),
                ms(num(v, "/latency_from_send_us/p999")),
                ms(num(v, "/latency_from_send_us/max")),
                ms(num(v, "/send_lag_us/p50")),
                ms(num(v, "/send_lag_us/p99")),
                whole(num(v, "/not_sent"))
            ));
        }
        if v.pointer("/writes").is_some() {
            notes.push(format!(
                "writes: {} acknowledged ({}/s of {}/s due), {} errors; ack latency from the due time p50 {} / p99 {} / \
                 max {} ms, from the send p50 {} / p99 {} / max {} ms; freshness (ack to the first check answer at \
                 that seq) p50 {} / p99 {} / max {} ms, {} never seen, {} acknowledged after the reads ended",
                whole(num(v, "/writes/acked")),
                whole(num(v, "/writes/acked_per_s")),
                whole(num(v, "/writes/rate")),
                whole(num(v, "/writes/errors/timeout") + num(v, "/writes/errors/io") + num(v, "/writes/errors/connect")),
                ms(num(v, "/writes/ack_latency_us/p50")),
                ms(num(v, "/writes/ack_latency_us/p99")),
                ms(num(v, "/writes/ack_latency_us/max")),
                ms(num(v, "/writes/ack_latency_from_send_us/p50")),
                ms(num(v, "/writes/ack_latency_from_send_us/p99")),
                ms(num(v, "/writes/ack_latency_from_send_us/max")),
                ms(num(v, "/writes/freshness/latency_us/p50")),
                ms(num(v, "/writes/freshness/latency_us/p99")),
                ms(num(v, "/writes/freshness/latency_us/max")),
                whole(num(v, "/writes/freshness/never_seen")),
                whole(num(v, "/writes/freshness/acked_after_reads")),
            ));
            if let Some(Value::Object(refused)) = v.pointer("/writes/refused") {
                if !refused.is_empty() {
                    notes.push(format!("writes refused: {}", Value::Object(refused.clone())));
                }
            }
        }
        let counter = |k: &str| num(v, &format!("/server_counters/{k}"));
        if v.pointer("/server_counters").and_then(Value::as_object).is_some_and(|c| !c.is_empty()) {
            let (written, unrecorded, refused) = (
                counter("claimgate_audit_written_total"),
                counter("claimgate_audit_rejects_unrecorded_total"),
                counter("claimgate_audit_exemptions_refused_total"),
            );
            notes.push(format!(
                "gate decision records written {}, **rejects unrecorded {}, exemptions refused {}**",
                whole(written),
                whole(unrecorded),
                whole(refused)
            ));
        }
        let _ = writeln!(s, "- {label}: {}.", notes.join("; "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(whole(1234567.4), "1,234,567");
        assert_eq!(whole(999.0), "999");
        assert_eq!((ms(158.0), ms(12_345.0), ms(250_000.0)), ("0.16".into(), "12.3".into(), "250".into()));
    }

    #[test]
    fn a_table_from_a_report() {
        let dir = std::env::temp_dir().join(format!("loadtest-md-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        let report = serde_json::json!({
            "label": "gate-single", "config": {"mode": "open", "rate": 50000.0, "connections": 64, "batch_size": 0, "write_rate": 1000.0},
            "throughput": {"requests_per_s": 49990.2, "lines_per_s": 49990.2},
            "latency_us": {"p50": 150, "p99": 1200, "p999": 3000, "max": 9000},
            "errors_total": 2, "errors": {"timeout": 1, "http_status": {"503": 1}},
            "requests": {"lines": 1000}, "verdicts": {"reject": 70},
            "windows": {"median": 5000, "min": 4000, "min_at_s": 1.5, "dip_ratio": 0.8},
            "send_lag_us": {"p50": 100, "p99": 800}, "not_sent": 0,
            "writes": {"acked": 5000, "acked_per_s": 999.0, "errors": {}, "ack_latency_us": {"p50": 500}, "freshness": {"latency_us": {"p99": 17000}}, "refused": {}},
            "cpu_s": {"generator": 2.0, "server": 3.5}, "elapsed_s": 5.0, "machine": {"cores": 2}
        });
        std::fs::write(&path, report.to_string()).unwrap();
        let t = table(std::slice::from_ref(&path)).unwrap();
        assert!(t.contains("| gate-single | open 50,000/s, 64 conn, single, + 1,000 writes/s | 49,990 | 49,990 | 0.15 | 1.20 | 3.00 | 9.00 | 2 (timeout 1, HTTP 503: 1) | 2.0 / 3.5 of 10 |"), "{t}");
        assert!(t.contains("7.0% of lines rejected"), "{t}");
        assert!(t.contains("freshness"), "{t}");
        assert_eq!(get(&path, "/throughput/requests_per_s").unwrap(), "49990.2");
        assert_eq!(get(&path, "/label").unwrap(), "gate-single");
        assert!(get(&path, "/nope").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
