//! `claimgate readjudication --gate URL`: the re-settlement or recovery list
//! (issue 16) of a running gate, every page of it from `--after-seq` on, as
//! JSON Lines (one line or window per line) or CSV (one header). With
//! several nodes, run it against each and take the union of the
//! re-settlement lists (README, "Who is affected").

use serde_json::Value;
use std::io::Write;
use std::time::Duration;

/// Longest one page may take, connect to answer.
const PAGE_TIMEOUT: Duration = Duration::from_secs(120);
/// Most pages one run reads (each up to 1,000 changes): a bound, not a
/// target; past it the run stops and says where to resume.
pub const MAX_PAGES: usize = 100_000;

/// What to ask for.
pub struct Ask {
    pub gate: String,
    pub token: String,
    /// `resettlement` or `recovery`.
    pub list: String,
    pub after_seq: u64,
    /// Extra query parameters (`institution=...`, `practitioner=...`, `region=...`).
    pub filters: Vec<(String, String)>,
    pub csv: bool,
}

/// Writes every page to `out`; returns the seq to resume after and the
/// number of items written.
pub fn run(ask: &Ask, out: &mut impl Write) -> Result<(u64, usize), String> {
    let gate = ask.gate.trim_end_matches('/');
    if !gate.starts_with("http://") {
        return Err(format!("--gate {gate}: give a listener's address as http://HOST:PORT"));
    }
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(PAGE_TIMEOUT)).http_status_as_error(false).build().into();
    let authorization = format!("Bearer {}", ask.token.trim());
    let mut after = ask.after_seq;
    let mut written = 0;
    for page in 0..MAX_PAGES {
        let mut url = format!("{gate}/v1/readjudication?list={}&after_seq={after}", ask.list);
        for (k, v) in &ask.filters {
            url.push_str(&format!("&{k}={v}"));
        }
        if ask.csv {
            url.push_str("&format=csv");
        }
        let mut reply = agent
            .get(&url)
            .header("Authorization", &authorization)
            .call()
            .map_err(|e| format!("--gate {gate}: cannot reach the gate ({e}); is it running?"))?;
        let status = reply.status().as_u16();
        let next = reply.headers().get("x-next-after-seq").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let text = reply.body_mut().read_to_string().map_err(|e| format!("--gate {gate}: reading its answer: {e}"))?;
        match status {
            200 => {}
            401 | 403 => return Err(format!("--gate {gate}: the gate refused the token ({status}): give the read-only or admin token in --token-file")),
            _ => return Err(format!("--gate {gate}: the gate answered {status}: {}", text.trim())),
        }
        let (items, next_after_seq) = if ask.csv {
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            if page == 0 {
                writeln!(out, "{header}").map_err(|e| e.to_string())?;
            }
            let mut n = 0;
            for line in lines {
                writeln!(out, "{line}").map_err(|e| e.to_string())?;
                n += 1;
            }
            (n, next.ok_or("the gate's CSV page has no x-next-after-seq header")?)
        } else {
            let answer: Value = serde_json::from_str(&text).map_err(|e| format!("--gate {gate}: not JSON: {e}"))?;
            let items = answer[ask.list.as_str()].as_array().cloned().unwrap_or_default();
            for item in &items {
                writeln!(out, "{item}").map_err(|e| e.to_string())?;
            }
            (items.len(), answer["next_after_seq"].as_u64().ok_or("the gate's page has no next_after_seq")?)
        };
        written += items;
        if next_after_seq == after && items == 0 {
            return Ok((after, written));
        }
        after = next_after_seq;
    }
    Err(format!("stopped after {MAX_PAGES} pages; resume with --after-seq {after}"))
}
