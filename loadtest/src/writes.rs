//! Admin writes: the events a run appends through `POST /v1/events`, and
//! reading the gate's answers to them. Used by `loadtest run --write-rate`
//! (writes during reads) and by `loadtest append` (the append rate).
//!
//! Every writer connection has its own stream of events, numbered from 0, in
//! cycles of [`CYCLE`]: [`POPULATION_VIOLATIONS`] one-point minor violations
//! against practitioners of the request pool (the demo's population), then
//! the registration of a practitioner new to the population, a violation for
//! them, and a one-point repair for them. The only dependency, a new
//! practitioner's registration before their violation and repair, stays
//! within one stream: the same connection sent it (and had it answered) first,
//! or it stands earlier in the same array. So every event is accepted (R8)
//! however many writers run, and the only refusals are those caused by an
//! earlier error on the same stream (a registration that was not stored).
//!
//! Violation ids and new codes carry a per-run nonce, so runs repeated on one
//! ledger are not refused as duplicates, and a new practitioner gets one
//! repair a run, far below the yearly cap (R13).

use crate::client::Response;
use crate::mix::{rng, Kind, Mix};
use crate::stats::{self, Stats};
use claimgate::domain::{CivilDate, InstitutionCode, PractitionerCode};
use claimgate::population::{self, REGION_PREFIXES};
use serde::Deserialize;

/// Events per cycle of a stream.
pub const CYCLE: u64 = 10;
/// Of each cycle, the violations against practitioners of the population;
/// then a registration, a violation and a repair for one new practitioner.
pub const POPULATION_VIOLATIONS: u64 = 7;
/// Most streams (writer connections) of one run: new practitioners' numbers
/// interleave the streams.
pub const MAX_STREAMS: u64 = 256;
/// Refused events kept verbatim (as error samples) per run.
const MAX_REFUSAL_SAMPLES: usize = 4;
/// Serials of new practitioners: 10 digits after the region and `99`.
const NEW_SERIALS: u64 = 10_000_000_000;

/// The events of one run (a function of the seed, the nonce, the stream and
/// the event's number in it).
pub struct Writes {
    /// Practitioners of the pool, each with an institution they are
    /// registered at and a day inside that registration.
    targets: Vec<(PractitionerCode, InstitutionCode, CivilDate)>,
    nonce: u64,
    /// Three digits of the nonce, in new practitioners' codes.
    salt: u64,
    seed: u64,
}

impl Writes {
    pub fn new(mix: &Mix, seed: u64, nonce: u64) -> Writes {
        let targets: Vec<_> = mix
            .lines
            .iter()
            .filter(|l| l.kind == Kind::Good)
            .map(|l| (l.practitioner, l.institution, l.date))
            .collect();
        let salt = rng(nonce).below(1000);
        Writes { targets, nonce, salt, seed }
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// A run's nonce: its start time (s) and process id.
    pub fn nonce(started_unix_s: u64) -> u64 {
        started_unix_s * 1000 + u64::from(std::process::id() % 1000)
    }

    /// The `n`-th event of `stream` (below [`MAX_STREAMS`]), as JSON.
    pub fn event(&self, stream: u64, n: u64) -> String {
        debug_assert!(stream < MAX_STREAMS);
        let cycle = n / CYCLE;
        let key = (stream << 48 | n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut rng = rng(self.seed ^ self.nonce.rotate_left(32) ^ key);
        let (practitioner, institution, date) = self.targets[rng.below(self.targets.len() as u64) as usize];
        let id = format!("LT-{}-{stream}-{n}", self.nonce);
        let new = || self.new_practitioner(cycle * MAX_STREAMS + stream);
        let reference = population::reference_date();
        match n % CYCLE {
            k if k < POPULATION_VIOLATIONS => violation(&id, practitioner, institution, date),
            k if k == POPULATION_VIOLATIONS => format!(
                r#"{{"type":"practitioner_registered","practitioner":"{}","institution":"{institution}","effective":"{reference}"}}"#,
                new()
            ),
            k if k == POPULATION_VIOLATIONS + 1 => violation(&id, new(), institution, reference),
            _ => format!(
                r#"{{"type":"points_repaired","event_id":"{id}","practitioner":"{}","points":1,"effective":"{reference}"}}"#,
                new()
            ),
        }
    }

    /// `count` consecutive events of `stream` from `first`: one event as an
    /// object, more as a JSON array (the API takes either).
    pub fn body(&self, stream: u64, first: u64, count: usize) -> String {
        if count == 1 {
            return self.event(stream, first);
        }
        let mut out = String::with_capacity(count * 240 + 2);
        out.push('[');
        for k in 0..count as u64 {
            if k > 0 {
                out.push(',');
            }
            out.push_str(&self.event(stream, first + k));
        }
        out.push(']');
        out
    }

    /// The code of the run's `r`-th new practitioner: category `HJ`, a region,
    /// `99` (a serial the population never issues), then 10 digits: the salt
    /// and `r`'s share (unique per run below 31 * 10^7 new practitioners).
    fn new_practitioner(&self, r: u64) -> PractitionerCode {
        let region = REGION_PREFIXES[(r % REGION_PREFIXES.len() as u64) as usize];
        let per_salt = NEW_SERIALS / 1000;
        let tail = self.salt * per_salt + (r / REGION_PREFIXES.len() as u64) % per_salt;
        PractitionerCode::parse(&format!("HJ{region}99{tail:010}")).expect("a valid code")
    }
}

fn violation(id: &str, practitioner: PractitionerCode, institution: InstitutionCode, date: CivilDate) -> String {
    format!(
        r#"{{"type":"violation_scored","violation_id":"{id}","practitioner":"{practitioner}","institution":"{institution}","effective":"{date}","points":1,"severity":"minor","responsibility":"general"}}"#
    )
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Answer {
    /// One event: `{"seq": N}`.
    One { seq: u64 },
    /// An array: one line per event, `{"event": i, "seq": N}` or `{"event": i, "error": code, ...}`.
    Many(Vec<Line>),
}

#[derive(Deserialize)]
struct Line {
    seq: Option<u64>,
    error: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Refusal {
    error: String,
}

/// Records the gate's answer to one `POST /v1/events`, received `at_us`
/// after the start: each acknowledged event's seq in `acks`, refused events
/// by code in `refused` (with the first few kept as error samples), and a
/// non-2xx answer by status. A 2xx answer that is not the expected JSON
/// counts as `non_json`.
pub fn record_answer(stats: &mut Stats, r: &Response, at_us: u64) {
    stats.responses += 1;
    if !(200..300).contains(&r.status) {
        if let Ok(refusal) = serde_json::from_slice::<Refusal>(&r.body) {
            stats::bump(&mut stats.refused, &refusal.error);
        }
        stats.errors.status(at_us, r.status, &r.body);
        return;
    }
    match serde_json::from_slice::<Answer>(&r.body) {
        Ok(Answer::One { seq }) => {
            stats.ok += 1;
            stats.acks.push((at_us, seq));
        }
        Ok(Answer::Many(lines)) => {
            stats.ok += 1;
            for line in lines {
                match (line.seq, line.error) {
                    (Some(seq), _) => stats.acks.push((at_us, seq)),
                    (None, code) => {
                        let code = code.unwrap_or_else(|| "unknown".into());
                        if stats.refused.values().sum::<u64>() < MAX_REFUSAL_SAMPLES as u64 {
                            let detail = format!("{code}: {}", line.message.unwrap_or_default());
                            stats.errors.sample(at_us, "refused", Some(r.status), &detail);
                        }
                        stats::bump(&mut stats.refused, &code);
                    }
                }
            }
        }
        Err(_) => {
            stats.errors.non_json += 1;
            stats.errors.sample(at_us, "non_json", Some(r.status), &String::from_utf8_lossy(&r.body));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claimgate::event::Event;
    use claimgate::ledger::Ledger;
    use claimgate::policy::Policy;
    use claimgate::population::{Population, PopulationSpec};

    #[test]
    fn write_events_parse_and_are_fresh() {
        let mix = Mix::new(20_000, 1, 500).unwrap();
        let w = Writes::new(&mix, 1, 12_345);
        let policy = Policy::default();
        let mut seen = std::collections::HashSet::new();
        for stream in [0, 1, MAX_STREAMS - 1] {
            for n in 0..200 {
                let text = w.event(stream, n);
                let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                let event = Event::parse(&value, &policy).unwrap();
                // Registrations and repairs name a new practitioner each cycle; violations have fresh ids.
                assert!(seen.insert(text), "event {n} of stream {stream} repeats: {event:?}");
            }
        }
        let other_run = Writes::new(&mix, 1, 12_346);
        assert_ne!(w.event(0, 0), other_run.event(0, 0), "violation ids carry the nonce");
        let body: serde_json::Value = serde_json::from_str(&w.body(3, 5, 12)).unwrap();
        assert_eq!(body.as_array().unwrap().len(), 12);
        assert!(w.body(3, 5, 1).starts_with('{'));
    }

    /// Issue 7: the append benchmark's events must all be accepted (R8),
    /// however the streams interleave, one at a time or in arrays, and again
    /// in a second run on the same ledger.
    #[test]
    fn every_write_is_accepted_on_a_ledger_holding_the_population() {
        let (practitioners, seed) = (2_000, 7);
        let policy = Policy::default();
        let ledger = Ledger::open_in_memory(&policy).unwrap();
        let pop = Population::new(PopulationSpec::new(practitioners, seed));
        let events: Vec<Event> = pop.events().collect();
        for chunk in events.chunks(claimgate::ledger::MAX_APPEND_BATCH) {
            assert!(ledger.append_batch(chunk).unwrap().iter().all(Result::is_ok));
        }
        let mix = Mix::new(practitioners, seed, 300).unwrap();
        let parse = |text: &str| Event::parse(&serde_json::from_str(text).unwrap(), &policy).unwrap();
        for nonce in [1_000, 2_000] {
            let w = Writes::new(&mix, seed, nonce);
            // Streams 0 and 1 one event at a time, interleaved; stream 2 in arrays of 7.
            for n in 0..3 * CYCLE {
                for stream in [1, 0] {
                    let appended = ledger.append(&parse(&w.event(stream, n)));
                    assert!(
                        appended.as_ref().is_ok_and(|a| !a.already_recorded),
                        "stream {stream} event {n}: {appended:?}"
                    );
                }
            }
            for first in (0..5 * CYCLE).step_by(7) {
                let body: Vec<serde_json::Value> = serde_json::from_str(&w.body(2, first, 7)).unwrap();
                let batch: Vec<Event> = body.iter().map(|v| Event::parse(v, &policy).unwrap()).collect();
                for (k, outcome) in ledger.append_batch(&batch).unwrap().into_iter().enumerate() {
                    assert!(outcome.is_ok_and(|a| !a.already_recorded), "array at {first}, event {k}");
                }
            }
        }
    }

    #[test]
    fn answers_are_read_one_or_many() {
        let answer = |status: u16, body: &str| Response { status, body: body.as_bytes().to_vec(), close: false };
        let mut s = Stats::default();
        record_answer(&mut s, &answer(200, r#"{"seq":41}"#), 5);
        record_answer(
            &mut s,
            &answer(
                200,
                r#"[{"event":0,"seq":42},{"event":1,"error":"unknown_practitioner","field":"practitioner","message":"m"}]"#,
            ),
            6,
        );
        record_answer(&mut s, &answer(422, r#"{"error":"duplicate_violation","message":"m"}"#), 7);
        record_answer(&mut s, &answer(200, "<html>"), 8);
        assert_eq!(s.acks, vec![(5, 41), (6, 42)]);
        assert_eq!((s.responses, s.ok), (4, 2));
        assert_eq!(s.refused.get("unknown_practitioner"), Some(&1));
        assert_eq!(s.refused.get("duplicate_violation"), Some(&1));
        assert_eq!((s.errors.non_json, s.errors.http_status.get(&422)), (1, Some(&1)));
        let kinds: Vec<_> = s.errors.samples.iter().map(|x| x.kind).collect();
        assert_eq!(kinds, ["refused", "status", "non_json"]);
        assert!(s.errors.samples[0].detail.starts_with("unknown_practitioner: m"));
    }
}
