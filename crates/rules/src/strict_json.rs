//! JSON that names no key twice (R4), read wherever bytes become JSON: the
//! HTTP bodies (`server::api`, `server::bodies`), scenario files
//! (`scenario`) and `claimgate append`'s input.
//!
//! serde_json's own `Value` takes the last of two equal keys, so
//! `{"points": 1, "points": 12}` would be read as 12 without a word. The
//! parser here builds the same `Value` through a [`DeserializeSeed`] of its
//! own that notices every object key seen twice, at any depth, and records
//! it with its path (`lines[3].emergency`). Everything else is serde_json's:
//! the syntax, the UTF-8 and escape checks, and the recursion limit (128
//! levels), because the seed drives serde_json's own deserializer.
//!
//! Duplicates are recorded rather than raised at once so that a body of many
//! items (an events array, a batch's `lines`, a scenario's `events` and
//! `checks`) can refuse only the item that holds one, the way every other
//! bad field of an item is answered ([`split_elements`]), and so that a claim
//! line can name all its faults in one answer. A caller that wants the whole
//! document strict uses [`from_slice`]. The [`Document`]'s value keeps the
//! first of two equal keys; it must never be used without its duplicates
//! being answered. At most [`MAX_DUPLICATES`] are recorded: past that the
//! document is refused whole ([`StrictError::TooManyDuplicates`]), so the
//! record stays bounded whatever the input.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;
use std::fmt;

/// Most duplicated keys one document may hold before it is refused whole.
pub const MAX_DUPLICATES: usize = 1024;

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A key that one object names more than once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// Where the object holding the key is (empty: the document itself).
    pub path: Vec<Step>,
    /// The duplicated key.
    pub key: String,
}

impl Duplicate {
    /// The key's path, e.g. `lines[3].emergency` (`[0].points` in an array).
    pub fn path_text(&self) -> String {
        let mut out = String::new();
        for step in self.path.iter().chain([&Step::Key(self.key.clone())]) {
            match step {
                Step::Index(i) => out.push_str(&format!("[{i}]")),
                Step::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&quoted_key(k));
                }
            }
        }
        out
    }

    /// A sentence for the sender: which key, where, and what to do.
    pub fn message(&self) -> String {
        let at = if self.path.is_empty() { String::new() } else { format!(" (at `{}`)", self.path_text()) };
        format!(
            "the key `{}` appears more than once in one object{at}; an ambiguous object is refused (R4): send each key once",
            quoted_key(&self.key)
        )
    }

    /// This duplicate as seen from the element at `prefix`, if it lies inside it.
    pub fn within(&self, prefix: &[Step]) -> Option<Duplicate> {
        self.path.strip_prefix(prefix).map(|rest| Duplicate { path: rest.to_vec(), key: self.key.clone() })
    }
}

/// `key` for a message or a `field`: escaped, and cut at
/// [`crate::domain::MAX_ECHO_CHARS`].
pub fn quoted_key(key: &str) -> String {
    crate::domain::echo(key)
}

/// Why bytes are not strict JSON.
#[derive(Debug, thiserror::Error)]
pub enum StrictError {
    /// Not JSON at all (syntax, UTF-8, nesting past serde_json's limit).
    #[error("{0}")]
    Syntax(serde_json::Error),
    /// An object names a key twice (only from [`from_slice`]; [`parse`] records them).
    #[error("{}", .0.message())]
    Duplicate(Duplicate),
    #[error(
        "more than {MAX_DUPLICATES} keys appear more than once in their objects; an ambiguous object is refused (R4): send each key once"
    )]
    TooManyDuplicates,
}

/// A parsed document and every duplicated key in it, in document order.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The value, keeping the first of two equal keys: never use it without
    /// answering [`Document::duplicates`].
    pub value: Value,
    pub duplicates: Vec<Duplicate>,
}

/// Parses `bytes`, recording every duplicated key.
pub fn parse(bytes: &[u8]) -> Result<Document, StrictError> {
    let mut state = State { path: Vec::new(), duplicates: Vec::new(), too_many: false };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Seed(&mut state).deserialize(&mut de).and_then(|value| de.end().map(|()| value));
    match parsed {
        Ok(value) => Ok(Document { value, duplicates: state.duplicates }),
        Err(_) if state.too_many => Err(StrictError::TooManyDuplicates),
        Err(e) => Err(StrictError::Syntax(e)),
    }
}

/// Parses `bytes` as one strict document: the first duplicated key anywhere
/// refuses it.
pub fn from_slice(bytes: &[u8]) -> Result<Value, StrictError> {
    let Document { value, duplicates } = parse(bytes)?;
    match duplicates.into_iter().next() {
        Some(d) => Err(StrictError::Duplicate(d)),
        None => Ok(value),
    }
}

/// [`from_slice`] for text.
pub fn from_str(text: &str) -> Result<Value, StrictError> {
    from_slice(text.as_bytes())
}

/// Splits `duplicates` by the elements of the array at `array`: those
/// inside element `i` (their paths made relative to it) under `i`, and the
/// rest, which lie outside every element.
pub fn split_elements(duplicates: Vec<Duplicate>, array: &[Step]) -> (BTreeMap<usize, Vec<Duplicate>>, Vec<Duplicate>) {
    let mut inside: BTreeMap<usize, Vec<Duplicate>> = BTreeMap::new();
    let mut rest = Vec::new();
    for d in duplicates {
        match d.path.strip_prefix(array) {
            Some([Step::Index(i), tail @ ..]) => {
                inside.entry(*i).or_default().push(Duplicate { path: tail.to_vec(), key: d.key })
            }
            _ => rest.push(d),
        }
    }
    (inside, rest)
}

struct State {
    path: Vec<Step>,
    duplicates: Vec<Duplicate>,
    too_many: bool,
}

/// Builds a `Value` like serde_json's own visitor, recording duplicated keys.
struct Seed<'s>(&'s mut State);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // As serde_json's own visitor: a non-finite float is null.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let state = self.0;
        let mut items = Vec::new();
        loop {
            state.path.push(Step::Index(items.len()));
            let item = seq.next_element_seed(Seed(&mut *state))?;
            state.path.pop();
            match item {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let state = self.0;
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            state.path.push(Step::Key(key));
            let value = access.next_value_seed(Seed(&mut *state))?;
            let Some(Step::Key(key)) = state.path.pop() else { unreachable!("the key pushed above") };
            if map.contains_key(&key) {
                if state.duplicates.len() == MAX_DUPLICATES {
                    state.too_many = true;
                    return Err(serde::de::Error::custom("too many duplicated keys"));
                }
                state.duplicates.push(Duplicate { path: state.path.clone(), key });
            } else {
                map.insert(key, value);
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dup(bytes: &str) -> Duplicate {
        match from_str(bytes) {
            Err(StrictError::Duplicate(d)) => d,
            other => panic!("{bytes}: expected a duplicate, got {other:?}"),
        }
    }

    #[test]
    fn a_document_without_duplicates_reads_as_serde_json_reads_it() {
        let texts = [
            r#"{"a": 1, "b": [1, -2, 3.5, 1e300, "x\u00e9\ud83d\ude00", null, true], "c": {"d": {}}, "e": []}"#,
            r#"[{"a": 1}, {"a": 1}, 18446744073709551615, -9223372036854775808]"#,
            r#""just a string""#,
            "  7 ",
        ];
        for text in texts {
            let ours = from_str(text).unwrap();
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
        }
    }

    #[test]
    fn a_duplicated_key_is_named_with_its_path_at_any_depth_r4() {
        let d = dup(r#"{"points": 1, "points": 12}"#);
        assert_eq!((d.key.as_str(), d.path_text().as_str()), ("points", "points"));
        let d = dup(r#"{"lines": [{"a": 1}, {"a": 2}, {}, {"emergency": false, "x": 1, "emergency": true}]}"#);
        assert_eq!((d.key.as_str(), d.path_text().as_str()), ("emergency", "lines[3].emergency"));
        let d = dup(r#"[{"type": "a"}, {"o": {"p": [0, {"q": 1, "q": 1}]}}]"#);
        assert_eq!(d.path_text(), "[1].o.p[1].q");
        assert!(d.message().contains("`q`") && d.message().contains("[1].o.p[1].q"), "{}", d.message());
        // Equal after unescaping is equal: `\u0061` is `a`.
        assert_eq!(dup(r#"{"a": 1, "\u0061": 2}"#).key, "a");
        // Equal values are still an ambiguous object.
        assert_eq!(dup(r#"{"emergency": true, "emergency": true}"#).key, "emergency");
    }

    #[test]
    fn every_duplicate_is_recorded_and_the_first_value_kept() {
        let doc = parse(br#"[{"a": 1, "a": 2, "b": 0, "b": 0}, {"c": 1}, {"d": {"e": 1, "e": 2}}]"#).unwrap();
        assert_eq!(doc.value, json!([{"a": 1, "b": 0}, {"c": 1}, {"d": {"e": 1}}]));
        let paths: Vec<String> = doc.duplicates.iter().map(Duplicate::path_text).collect();
        assert_eq!(paths, ["[0].a", "[0].b", "[2].d.e"]);
        let (inside, rest) = split_elements(doc.duplicates, &[]);
        assert!(rest.is_empty());
        assert_eq!(inside.keys().copied().collect::<Vec<_>>(), [0, 2]);
        assert_eq!(inside[&2][0].path_text(), "d.e", "paths are relative to the element");
    }

    #[test]
    fn split_elements_keeps_what_lies_outside_the_array() {
        let doc = parse(br#"{"lines": [{"x": 1, "x": 1}], "min_seq": 1, "min_seq": 2}"#).unwrap();
        let (inside, rest) = split_elements(doc.duplicates, &[Step::Key("lines".into())]);
        assert_eq!(inside[&0][0].key, "x");
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].path_text(), "min_seq");
    }

    #[test]
    fn serde_json_limits_still_hold() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(from_str(&deep), Err(StrictError::Syntax(_))), "recursion limit");
        assert!(matches!(from_slice(b"{\"a\": \"\xff\"}"), Err(StrictError::Syntax(_))), "UTF-8");
        assert!(matches!(from_str(r#"{"a": "\ud800"}"#), Err(StrictError::Syntax(_))), "lone surrogate");
        assert!(matches!(from_str(r#"{"a": 1} x"#), Err(StrictError::Syntax(_))), "trailing characters");
        assert!(matches!(from_str(""), Err(StrictError::Syntax(_))));
    }

    #[test]
    fn the_record_of_duplicates_is_bounded() {
        let many = format!("{{\"a\": 0{}}}", ", \"a\": 0".repeat(MAX_DUPLICATES));
        assert_eq!(parse(many.as_bytes()).unwrap().duplicates.len(), MAX_DUPLICATES);
        let too_many = format!("{{\"a\": 0{}}}", ", \"a\": 0".repeat(MAX_DUPLICATES + 1));
        assert!(matches!(parse(too_many.as_bytes()), Err(StrictError::TooManyDuplicates)));
    }

    #[test]
    fn long_keys_are_cut_in_messages() {
        let key = "k".repeat(1000);
        let d = dup(&format!(r#"{{"{key}": 1, "{key}": 2}}"#));
        assert_eq!(d.key, key, "the field is named in full");
        assert!(d.message().len() < 300, "{}", d.message());
    }
}
