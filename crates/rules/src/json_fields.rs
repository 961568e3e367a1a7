//! Field readers shared by the event and claim parsers: each gives an R4
//! `invalid_request` naming the field when a value is missing or malformed.

use crate::domain::{CivilDate, FieldError, InstitutionCode, PractitionerCode};
use crate::refusal::Refusal;
use serde_json::{Map, Value};

/// A JSON object being read field by field.
pub(crate) struct Fields<'a>(pub &'a Map<String, Value>);

impl<'a> Fields<'a> {
    /// Reads `value` as an object, or refuses it.
    pub fn of(value: &'a Value, what: &str) -> Result<Fields<'a>, Refusal> {
        value.as_object().map(Fields).ok_or_else(|| {
            // Not a field of anything: the whole value is the wrong shape.
            Refusal::new(crate::refusal::RefusalCode::InvalidRequest, format!("the {what} must be a JSON object"))
        })
    }

    fn get(&self, field: &str) -> Result<&'a Value, Refusal> {
        match self.0.get(field) {
            Some(Value::Null) | None => Err(Refusal::invalid(field, format!("missing field `{field}`"))),
            Some(v) => Ok(v),
        }
    }

    /// Whether the field is present and not null.
    pub fn has(&self, field: &str) -> bool {
        !matches!(self.0.get(field), None | Some(Value::Null))
    }

    pub fn str(&self, field: &str) -> Result<&'a str, Refusal> {
        self.get(field)?.as_str().ok_or_else(|| Refusal::invalid(field, format!("`{field}` must be a string")))
    }

    pub fn parsed<T>(&self, field: &str, parse: impl FnOnce(&str) -> Result<T, FieldError>) -> Result<T, Refusal> {
        parse(self.str(field)?).map_err(|e| Refusal::invalid(field, e.0))
    }

    pub fn date(&self, field: &str) -> Result<CivilDate, Refusal> {
        self.parsed(field, CivilDate::parse)
    }

    pub fn practitioner(&self, field: &str) -> Result<PractitionerCode, Refusal> {
        self.parsed(field, PractitionerCode::parse)
    }

    pub fn institution(&self, field: &str) -> Result<InstitutionCode, Refusal> {
        self.parsed(field, InstitutionCode::parse)
    }

    /// A whole, non-negative number; values past `u32::MAX` saturate (they are
    /// refused later by the bound that applies to the field).
    pub fn count(&self, field: &str) -> Result<u32, Refusal> {
        let v = self.get(field)?;
        if let Some(n) = v.as_u64() {
            return Ok(u32::try_from(n).unwrap_or(u32::MAX));
        }
        Err(Refusal::invalid(field, format!("`{field}` must be a whole non-negative number")))
    }

    pub fn number(&self, field: &str) -> Result<f64, Refusal> {
        self.get(field)?.as_f64().ok_or_else(|| Refusal::invalid(field, format!("`{field}` must be a number")))
    }

    pub fn bool(&self, field: &str) -> Result<bool, Refusal> {
        self.get(field)?.as_bool().ok_or_else(|| Refusal::invalid(field, format!("`{field}` must be true or false")))
    }

    pub fn array(&self, field: &str) -> Result<&'a Vec<Value>, Refusal> {
        self.get(field)?.as_array().ok_or_else(|| Refusal::invalid(field, format!("`{field}` must be an array")))
    }
}
