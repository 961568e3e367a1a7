//! Request bodies into typed requests: pure functions from bytes, with no
//! I/O, used by the routes and by the fuzz targets (`fuzz/`), so the fuzzer
//! exercises the exact parsing code the server runs.
//!
//! Check bodies have two paths: a fast typed read of the common shape (no
//! JSON tree), and the general parser, which takes anything and names the
//! field at fault. The fast path may only ever accept what the general path
//! accepts, with the same result; `fuzz/` checks that property.

#[cfg(doc)]
use super::api::parse_json;
use super::api::{parse_json_document, ApiError};
use super::config::MAX_EVENTS_PER_REQUEST;
use claimgate_index::MAX_CHECK_BATCH;
use claimgate_rules::claim::{optional_min_seq, parse_line, ClaimLine, ClaimRefs, Faults};
use claimgate_rules::domain::{CivilDate, InstitutionCode, PractitionerCode, Seq};
use claimgate_rules::event::Event;
use claimgate_rules::policy::Policy;
use claimgate_rules::refusal::Refusal;
use claimgate_rules::strict_json::{self, quoted_key, Document, Duplicate, Step};
use claimgate_rules::Claim;
use hyper::StatusCode;
use serde_json::Value;
use std::collections::BTreeMap;

pub use claimgate_rules::claim::MAX_CLAIM_ID_BYTES;
/// Most lines of one batch that may ask for `explain`: each reads the
/// ledger, so an unauthenticated batch of thousands would hold the ledger's
/// read session for seconds.
pub const MAX_EXPLAINED_LINES_PER_BATCH: usize = 100;
/// The fields of a batch body; any other is refused (R4).
pub const BATCH_FIELDS: [&str; 2] = ["lines", "min_seq"];

/// One parsed claim line of the check API (the same lines scenario checks take).
pub type CheckLine = ClaimLine;

/// A parsed `POST /v1/check/batch` body: one outcome per line, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckBatch {
    pub lines: Vec<Result<CheckLine, ApiError>>,
    /// The batch-wide `min_seq`, if given.
    pub min_seq: Option<Seq>,
}

/// A parsed `POST /v1/events` body: one outcome per event, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsBody {
    pub events: Vec<Result<Event, Refusal>>,
    /// The body was one event (not an array): the answer is that event's.
    pub single: bool,
}

/// Parses a `POST /v1/check` body: the fast typed path, else the general one.
pub fn parse_check_body(bytes: &[u8]) -> Result<CheckLine, ApiError> {
    if let Some(line) = serde_json::from_slice::<Object<WireLine>>(bytes).ok().and_then(|l| l.0.fast()) {
        return Ok(line);
    }
    parse_check_general(bytes)
}

/// The general path of `POST /v1/check`: strict JSON, and every fault of
/// the line named in one answer (R4: duplicated, unknown, missing, malformed).
pub fn parse_check_general(bytes: &[u8]) -> Result<CheckLine, ApiError> {
    let Document { value, duplicates } = parse_json_document(bytes)?;
    parse_line(&value, &duplicates).map_err(ApiError::from)
}

/// Parses one claim line from a JSON value that has no duplicated keys
/// (one read by [`parse_json`], or built in code).
pub fn parse_check_value(value: &Value) -> Result<CheckLine, ApiError> {
    parse_line(value, &[]).map_err(ApiError::from)
}

/// Parses a `POST /v1/check/batch` body: the fast typed path if every line
/// takes it, else the general one. A bad line is its own error; a body that is
/// not `{"lines": [...], "min_seq"?}` of at most [`MAX_CHECK_BATCH`] lines is refused whole.
pub fn parse_batch_body(bytes: &[u8]) -> Result<CheckBatch, ApiError> {
    let fast = serde_json::from_slice::<Object<WireBatch>>(bytes)
        .ok()
        .map(|b| b.0)
        .filter(|b| b.lines.len() <= MAX_CHECK_BATCH)
        .and_then(|b| Some((b.lines.into_iter().map(|l| l.0.fast()).collect::<Option<Vec<_>>>()?, b.min_seq)));
    match fast {
        Some((lines, min_seq)) => {
            within_explain_limit(CheckBatch { lines: lines.into_iter().map(Ok).collect(), min_seq })
        }
        None => parse_batch_general(bytes),
    }
}

/// The general path of `POST /v1/check/batch`: strict JSON; a line naming a
/// key twice is that line's error, a key named twice in the envelope refuses
/// the body.
pub fn parse_batch_general(bytes: &[u8]) -> Result<CheckBatch, ApiError> {
    let Document { value, duplicates } = parse_json_document(bytes)?;
    parse_batch(&value, duplicates)
}

/// Refuses a batch with more than [`MAX_EXPLAINED_LINES_PER_BATCH`] lines asking for `explain`.
fn within_explain_limit(batch: CheckBatch) -> Result<CheckBatch, ApiError> {
    let explained = batch.lines.iter().filter(|l| l.as_ref().is_ok_and(|l| l.explain)).count();
    if explained > MAX_EXPLAINED_LINES_PER_BATCH {
        return Err(ApiError::invalid(
            "explain",
            format!(
                "{explained} lines ask for `explain`; a batch may explain at most {MAX_EXPLAINED_LINES_PER_BATCH}: \
                 ask for the others without it, or in further batches"
            ),
        ));
    }
    Ok(batch)
}

/// Parses a batch body from a JSON value that has no duplicated keys (one
/// read by [`parse_json`], or built in code).
pub fn parse_batch_value(body: &Value) -> Result<CheckBatch, ApiError> {
    parse_batch(body, Vec::new())
}

/// The batch envelope's faults (duplicated or unknown keys, `lines` not an
/// array, a malformed `min_seq`) refuse the body, all named at once; then
/// each line is parsed with the duplicates found inside it.
fn parse_batch(body: &Value, duplicates: Vec<Duplicate>) -> Result<CheckBatch, ApiError> {
    let (mut in_lines, envelope) = strict_json::split_elements(duplicates, &[Step::Key("lines".into())]);
    let mut faults = Faults::default();
    for d in &envelope {
        faults.add(&d.key, || d.message());
    }
    if let Some(body) = body.as_object() {
        for key in body.keys().filter(|k| !BATCH_FIELDS.contains(&k.as_str())) {
            faults.add(key, || {
                format!("unknown field `{}`; a batch is {{\"lines\": [claim lines], \"min_seq\"?}}", quoted_key(key))
            });
        }
    }
    let lines = faults.take(
        body.get("lines")
            .and_then(Value::as_array)
            .ok_or_else(|| Refusal::invalid("lines", "the body must be {\"lines\": [claim lines]}")),
    );
    let min_seq = faults.take(optional_min_seq(body));
    if let Some(refusal) = faults.refusal() {
        return Err(refusal.into());
    }
    let (Some(lines), Some(min_seq)) = (lines, min_seq) else { unreachable!("every field that failed is a fault") };
    if lines.len() > MAX_CHECK_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("{} lines; a batch holds at most {MAX_CHECK_BATCH}", lines.len()),
        )
        .at("lines"));
    }
    let lines = lines
        .iter()
        .enumerate()
        .map(|(i, line)| parse_line(line, &in_lines.remove(&i).unwrap_or_default()).map_err(ApiError::from))
        .collect();
    within_explain_limit(CheckBatch { lines, min_seq })
}

/// Parses a `POST /v1/events` body: one event, or an array of at most
/// [`MAX_EVENTS_PER_REQUEST`] events, each parsed on its own (R4).
/// An event naming a key twice is refused `invalid_request` naming it (R4),
/// on its own: the other events of an array are answered as usual.
pub fn parse_events_body(bytes: &[u8], policy: &Policy) -> Result<EventsBody, ApiError> {
    let Document { value, duplicates } = parse_json_document(bytes)?;
    let (raw, single) = match value {
        Value::Array(items) => (items, false),
        other => (vec![other], true),
    };
    if raw.len() > MAX_EVENTS_PER_REQUEST {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("{} events; one request takes at most {MAX_EVENTS_PER_REQUEST}", raw.len()),
        ));
    }
    let duplicated: BTreeMap<usize, Vec<Duplicate>> = if single {
        BTreeMap::from_iter((!duplicates.is_empty()).then_some((0, duplicates)))
    } else {
        strict_json::split_elements(duplicates, &[]).0
    };
    let events = raw
        .iter()
        .enumerate()
        .map(|(i, v)| match duplicated.get(&i).and_then(|d| d.first()) {
            Some(d) => Err(Refusal::invalid(&d.key, d.message())),
            None => Event::parse(v, policy),
        })
        .collect();
    Ok(EventsBody { events, single })
}

/// The common shape of a claim line, read without building a JSON tree.
/// Anything it cannot take (escaped strings, odd types, bad codes, fields it
/// does not know) goes to the general parser, which names the field at fault.
/// Unknown fields are refused rather than skipped because serde_json skips
/// without validating (invalid UTF-8, lone surrogates, nesting past the
/// recursion limit), which the general parser refuses (found by `fuzz/`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WireLine<'a> {
    #[serde(borrow)]
    practitioner_id: &'a str,
    #[serde(borrow)]
    institution_id: &'a str,
    #[serde(borrow)]
    service_date: &'a str,
    emergency: bool,
    #[serde(default)]
    claim_id: Option<Value>,
    #[serde(default, borrow)]
    mdtrt_id: Option<&'a str>,
    #[serde(default, borrow)]
    setl_id: Option<&'a str>,
    #[serde(default, borrow)]
    feedetl_sn: Option<&'a str>,
    #[serde(default)]
    min_seq: Option<u64>,
    #[serde(default)]
    explain: Option<bool>,
}

impl WireLine<'_> {
    fn fast(self) -> Option<CheckLine> {
        let claim_id = match self.claim_id {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() <= MAX_CLAIM_ID_BYTES => Some(Value::String(s)),
            Some(Value::Number(n)) if n.is_u64() => Some(Value::Number(n)),
            Some(_) => return None,
        };
        let reference = |r: Option<&str>| match r {
            None => Some(None),
            Some(text) if ClaimRefs::valid(text) => Some(Some(text.to_owned())),
            Some(_) => None,
        };
        let refs = ClaimRefs {
            mdtrt_id: reference(self.mdtrt_id)?,
            setl_id: reference(self.setl_id)?,
            feedetl_sn: reference(self.feedetl_sn)?,
        };
        Some(CheckLine {
            refs,
            claim: Claim {
                practitioner: PractitionerCode::parse(self.practitioner_id).ok()?,
                institution: InstitutionCode::parse(self.institution_id).ok()?,
                service_date: CivilDate::parse(self.service_date).ok()?,
                emergency: self.emergency,
            },
            claim_id,
            min_seq: self.min_seq,
            explain: self.explain.unwrap_or(false),
        })
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBatch<'a> {
    #[serde(borrow)]
    lines: Vec<Object<WireLine<'a>>>,
    #[serde(default)]
    min_seq: Option<u64>,
}

/// A `T` read only from a JSON object. serde's derived structs also accept
/// a JSON array of the fields in order, which the general parser (and the
/// API) refuses; this keeps the fast path to objects (found by `fuzz/`).
struct Object<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OnlyMaps<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for OnlyMaps<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(OnlyMaps(std::marker::PhantomData)).map(Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(explain: bool) -> Value {
        json!({"practitioner_id": "D110105000001", "institution_id": "H11010500001",
            "service_date": "2026-03-11", "emergency": false, "explain": explain})
    }

    fn batch(body: Value) -> Result<CheckBatch, ApiError> {
        parse_batch_body(body.to_string().as_bytes())
    }

    #[test]
    fn a_batch_min_seq_that_is_not_a_whole_number_is_refused_as_on_a_single_line() {
        for bad in [json!("5"), json!(-1), json!(1.5), json!(true)] {
            let error = batch(json!({"lines": [line(false)], "min_seq": bad})).unwrap_err();
            assert_eq!((error.error.as_str(), error.field.as_deref()), ("invalid_request", Some("min_seq")), "{bad}");
            let single = parse_check_body(with_min_seq(line(false), bad.clone()).to_string().as_bytes()).unwrap_err();
            assert_eq!(single.field.as_deref(), Some("min_seq"), "{bad}");
        }
        assert_eq!(batch(json!({"lines": [line(false)], "min_seq": 7})).unwrap().min_seq, Some(7));
        assert_eq!(batch(json!({"lines": [line(false)], "min_seq": null})).unwrap().min_seq, None);
    }

    fn with_min_seq(mut line: Value, min_seq: Value) -> Value {
        line["min_seq"] = min_seq;
        line
    }

    #[test]
    fn a_batch_may_explain_at_most_its_limit_of_lines() {
        let at_limit: Vec<Value> =
            (0..MAX_EXPLAINED_LINES_PER_BATCH).map(|_| line(true)).chain([line(false)]).collect();
        assert_eq!(batch(json!({"lines": at_limit})).unwrap().lines.len(), MAX_EXPLAINED_LINES_PER_BATCH + 1);
        let over: Vec<Value> = (0..=MAX_EXPLAINED_LINES_PER_BATCH).map(|_| line(true)).collect();
        let error = batch(json!({"lines": over})).unwrap_err();
        assert_eq!((error.error.as_str(), error.field.as_deref()), ("invalid_request", Some("explain")));
        // The general path (an odd line sends the body there) keeps the same limit.
        let mut odd: Vec<Value> = (0..=MAX_EXPLAINED_LINES_PER_BATCH).map(|_| line(true)).collect();
        odd.push(json!("not a line"));
        assert_eq!(batch(json!({"lines": odd})).unwrap_err().field.as_deref(), Some("explain"));
    }

    const LINE: &str =
        r#""practitioner_id":"D110105000001","institution_id":"H11010500001","service_date":"2026-03-11""#;

    fn refused(result: Result<CheckLine, ApiError>) -> ApiError {
        let e = result.expect_err("refused");
        assert_eq!((e.status, e.error.as_str()), (StatusCode::BAD_REQUEST, "invalid_request"), "{e:?}");
        e
    }

    /// The fast path's safety rests on serde's derived struct refusing a
    /// field named twice (it must never take either value); the body then
    /// goes to the general path, which names the key (R4).
    #[test]
    fn serde_derive_refuses_a_duplicated_field_so_the_fast_path_never_takes_one() {
        let text = format!(r#"{{{LINE},"emergency":false,"emergency":true}}"#);
        let derived = serde_json::from_str::<Object<WireLine>>(&text).err().expect("derive refuses");
        assert!(derived.to_string().contains("duplicate field `emergency`"), "{derived}");
        let nested = format!(r#"{{"lines":[{{{LINE},"emergency":true,"emergency":true}}]}}"#);
        assert!(serde_json::from_str::<Object<WireBatch>>(&nested).is_err());
        let envelope = format!(r#"{{"lines":[{{{LINE},"emergency":true}}],"min_seq":1,"min_seq":2}}"#);
        assert!(serde_json::from_str::<Object<WireBatch>>(&envelope).is_err());
    }

    #[test]
    fn a_duplicated_emergency_is_refused_not_settled_as_an_emergency_r4_r19() {
        for text in [
            format!(r#"{{{LINE},"emergency":false,"emergency":true}}"#),
            format!(r#"{{"emergency":false,{LINE},"emergency":true}}"#),
            format!(r#"{{"emergency":true,{LINE},"emergency":true}}"#),
        ] {
            for e in [refused(parse_check_body(text.as_bytes())), refused(parse_check_general(text.as_bytes()))] {
                assert_eq!(
                    (e.field.as_deref(), e.fields.as_slice()),
                    (Some("emergency"), &["emergency".to_owned()][..]),
                    "{text}"
                );
                assert!(e.message.contains("more than once"), "{}", e.message);
            }
        }
    }

    #[test]
    fn a_misspelt_min_seq_is_refused_naming_it_on_both_paths_r4() {
        let text = format!(r#"{{{LINE},"emergency":false,"minseq":1}}"#);
        for e in [refused(parse_check_body(text.as_bytes())), refused(parse_check_general(text.as_bytes()))] {
            assert_eq!(e.field.as_deref(), Some("minseq"));
            assert!(e.message.contains("did you mean `min_seq`"), "{}", e.message);
        }
    }

    #[test]
    fn a_duplicate_nested_in_a_line_is_named_with_its_path() {
        let text = format!(r#"{{{LINE},"emergency":false,"claim_id":{{"a":1,"a":2}}}}"#);
        let e = refused(parse_check_body(text.as_bytes()));
        assert_eq!(e.fields, ["a", "claim_id"], "{e:?}");
        assert!(e.message.contains("`claim_id.a`"), "{}", e.message);
    }

    #[test]
    fn every_fault_of_a_line_is_in_one_answer() {
        let text = r#"{"practitioner_id":"D1","practitioner_id":"D1","service_date":"2026-02-30","emergency":"no","minseq":1}"#;
        let e = refused(parse_check_body(text.as_bytes()));
        assert_eq!(e.field.as_deref(), Some("practitioner_id"));
        assert_eq!(e.fields, ["practitioner_id", "minseq", "institution_id", "service_date", "emergency"]);
        assert_eq!(serde_json::to_value(&e).unwrap()["fields"], json!(e.fields));
    }

    #[test]
    fn a_batch_line_with_a_duplicated_or_unknown_key_is_its_own_error_r4() {
        let ok = format!(r#"{{{LINE},"emergency":false}}"#);
        let dup = format!(r#"{{{LINE},"emergency":false,"emergency":true}}"#);
        let unknown = format!(r#"{{{LINE},"emergency":false,"insured_id":"P1"}}"#);
        let body = format!(r#"{{"lines":[{ok},{dup},{ok},{unknown}]}}"#);
        for b in [parse_batch_body(body.as_bytes()).unwrap(), parse_batch_general(body.as_bytes()).unwrap()] {
            assert!(b.lines[0].is_ok() && b.lines[2].is_ok());
            let (d, u) = (b.lines[1].as_ref().unwrap_err(), b.lines[3].as_ref().unwrap_err());
            assert_eq!(d, &refused(parse_check_body(dup.as_bytes())), "a line errs in a batch as it does alone");
            assert_eq!((d.field.as_deref(), u.field.as_deref()), (Some("emergency"), Some("insured_id")));
        }
    }

    #[test]
    fn the_batch_envelope_refuses_duplicated_and_unknown_keys_r4() {
        let ok = format!(r#"{{{LINE},"emergency":false}}"#);
        let cases = [
            (format!(r#"{{"lines":[{ok}],"lines":[]}}"#), vec!["lines"]),
            (format!(r#"{{"lines":[{ok}],"min_seq":1,"min_seq":900}}"#), vec!["min_seq"]),
            (format!(r#"{{"lines":[{ok}],"minseq":900}}"#), vec!["minseq"]),
            (format!(r#"{{"line":[{ok}],"min_seq":"x"}}"#), vec!["line", "lines", "min_seq"]),
        ];
        for (body, fields) in cases {
            for e in [parse_batch_body(body.as_bytes()).unwrap_err(), parse_batch_general(body.as_bytes()).unwrap_err()]
            {
                assert_eq!((e.error.as_str(), e.field.as_deref()), ("invalid_request", Some(fields[0])), "{body}");
                assert_eq!(e.fields, fields, "{body}");
            }
        }
    }

    #[test]
    fn an_event_naming_a_key_twice_is_refused_alone_naming_it_r4() {
        let policy = Policy::default();
        let designated = r#"{"type":"institution_designated","institution":"H11010500001","effective":"2024-01-01""#;
        // The measured bug: a second `type` made this a violation_revoked.
        let body = format!(r#"{designated},"type":"violation_revoked","violation_id":"V1"}}"#);
        let parsed = parse_events_body(body.as_bytes(), &policy).unwrap();
        assert!(parsed.single);
        assert_eq!(parsed.events[0].as_ref().unwrap_err().field.as_deref(), Some("type"));
        let points = r#"{"type":"points_repaired","event_id":"R1","practitioner":"D110105000001","points":1,"effective":"2026-03-01","points":12}"#;
        let array = format!(r#"[{designated}}},{points},{designated}}}]"#);
        let parsed = parse_events_body(array.as_bytes(), &policy).unwrap();
        assert!(parsed.events[0].is_ok() && parsed.events[2].is_ok());
        let refusal = parsed.events[1].as_ref().unwrap_err();
        assert_eq!((refusal.code.as_str(), refusal.field.as_deref()), ("invalid_request", Some("points")));
    }

    mod generated {
        use super::*;
        use proptest::prelude::*;

        /// A valid claim line as ordered (key, JSON text) pairs.
        fn valid_line() -> impl Strategy<Value = Vec<(String, String)>> {
            (
                "[A-Z]{1,2}[0-9]{12,18}",
                "[HP][0-9]{11}",
                (2000u32..2100, 1u32..=12, 1u32..=28),
                any::<bool>(),
                proptest::option::of(prop_oneof![
                    "[A-Za-z0-9-]{1,20}".prop_map(|s| format!("\"{s}\"")),
                    any::<u64>().prop_map(|n| n.to_string())
                ]),
                proptest::option::of(any::<u64>()),
                proptest::option::of(any::<bool>()),
            )
                .prop_map(|(p, i, (y, m, d), emergency, claim_id, min_seq, explain)| {
                    let mut pairs = vec![
                        ("practitioner_id".to_owned(), format!("\"{p}\"")),
                        ("institution_id".to_owned(), format!("\"{i}\"")),
                        ("service_date".to_owned(), format!("\"{y:04}-{m:02}-{d:02}\"")),
                        ("emergency".to_owned(), emergency.to_string()),
                    ];
                    pairs.extend(claim_id.map(|c| ("claim_id".to_owned(), c)));
                    pairs.extend(min_seq.map(|n| ("min_seq".to_owned(), n.to_string())));
                    pairs.extend(explain.map(|b| ("explain".to_owned(), b.to_string())));
                    pairs
                })
        }

        /// What is inserted: a key of the line again, or a key it does not define.
        #[derive(Debug, Clone)]
        enum Insert {
            Duplicate { of: proptest::sample::Index, value: String },
            Unknown { key: String, value: String },
        }

        fn insert() -> impl Strategy<Value = Insert> {
            let value = prop_oneof![
                Just("true".to_owned()),
                Just("false".to_owned()),
                Just("null".to_owned()),
                any::<u32>().prop_map(|n| n.to_string()),
                "[A-Z0-9-]{0,14}".prop_map(|s| format!("\"{s}\"")),
            ];
            prop_oneof![
                (any::<proptest::sample::Index>(), value.clone())
                    .prop_map(|(of, value)| Insert::Duplicate { of, value }),
                ("[a-z_]{1,14}", value)
                    .prop_filter("a key the line does not define", |(k, _)| !claimgate_rules::claim::CLAIM_LINE_FIELDS
                        .contains(&k.as_str()))
                    .prop_map(|(key, value)| Insert::Unknown { key, value }),
            ]
        }

        fn text(pairs: &[(String, String)]) -> String {
            let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", inner.join(","))
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

            /// R4 on claim lines: whatever valid line, whatever key is named
            /// twice (with the same or another value) or added unknown, and
            /// wherever it is put, both parse paths refuse the line naming
            /// that key, alone and inside a batch; without it the line is read.
            #[test]
            fn a_duplicated_or_unknown_key_anywhere_in_a_valid_line_is_refused_by_name(
                mut pairs in valid_line(), insert in insert(), at in any::<proptest::sample::Index>(),
            ) {
                let clean = text(&pairs);
                prop_assert!(parse_check_body(clean.as_bytes()).is_ok(), "{clean}");
                let (key, value) = match insert {
                    Insert::Duplicate { of, value } => (pairs[of.index(pairs.len())].0.clone(), value),
                    Insert::Unknown { key, value } => (key, value),
                };
                pairs.insert(at.index(pairs.len() + 1), (key.clone(), value));
                let bad = text(&pairs);
                let single = parse_check_body(bad.as_bytes());
                prop_assert_eq!(&single, &parse_check_general(bad.as_bytes()));
                let e = single.expect_err("refused");
                prop_assert_eq!((e.error.as_str(), e.field.as_deref()), ("invalid_request", Some(key.as_str())), "{}", bad);
                prop_assert!(e.fields.contains(&key));
                let batch_text = format!(r#"{{"lines":[{clean},{bad}]}}"#);
                for batch in [parse_batch_body(batch_text.as_bytes()), parse_batch_general(batch_text.as_bytes())] {
                    let batch = batch.expect("the envelope is sound");
                    prop_assert!(batch.lines[0].is_ok());
                    prop_assert_eq!(batch.lines[1].as_ref().unwrap_err(), &e);
                }
            }
        }
    }
}
