//! National identifiers: practitioner codes (R1), institution codes (R2) and
//! violation ids.
//!
//! Codes are packed losslessly into integers: two different codes never pack
//! to the same value, and the text is recovered exactly from the packing. That
//! keeps them `Copy`, cheap to hash and compact in the index, without ever
//! trusting a lossy hash to tell two practitioners apart.

use super::FieldError;
use serde::{Serialize, Serializer};
use std::fmt;

/// Digits after the category letters of a practitioner code (R1).
const PRACTITIONER_DIGITS: std::ops::RangeInclusive<usize> = 12..=18;
/// Longest practitioner code in characters (R1).
const PRACTITIONER_MAX_LEN: usize = 20;
/// Digits after the letter of an institution code (R2).
const INSTITUTION_DIGITS: usize = 11;
/// Longest violation id accepted, in bytes.
/// Longest source reference (R7a: `event_id`, `violation_id`, `suspension_id`), in characters.
pub const MAX_REFERENCE_CHARS: usize = 64;

/// Letters A-Z, packed as 1..=26 (0: no second letter).
const ALPHABET: u64 = 26;
const VALUE_BITS: u32 = 60; // 10^18 - 1 < 2^60
const COUNT_BITS: u32 = 5;
const LETTER_BITS: u32 = 5;

/// A national medical-insurance personnel code (R1): one or two uppercase
/// ASCII letters, then 12 to 18 digits, at most 20 characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PractitionerCode(u128);

impl PractitionerCode {
    /// Parses and validates a code (R1).
    pub fn parse(text: &str) -> Result<PractitionerCode, FieldError> {
        let bad = |why: &str| {
            FieldError(format!(
                "`{}` is not a practitioner code ({why}); expected 1-2 uppercase letters then 12-18 digits, e.g. D110105000123",
                super::echo(text)
            ))
        };
        let b = text.as_bytes();
        if b.len() > PRACTITIONER_MAX_LEN {
            return Err(bad("longer than 20 characters"));
        }
        let letters = b.iter().take_while(|c| c.is_ascii_uppercase()).count();
        if !(1..=2).contains(&letters) {
            return Err(bad("must start with one or two uppercase letters"));
        }
        let digits = &b[letters..];
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad("letters must be followed by digits only"));
        }
        if !PRACTITIONER_DIGITS.contains(&digits.len()) {
            return Err(bad("needs 12 to 18 digits"));
        }
        let value = digits.iter().fold(0u64, |acc, &c| acc * 10 + u64::from(c - b'0'));
        let l1 = u128::from(b[0] - b'A' + 1);
        let l2 = if letters == 2 { u128::from(b[1] - b'A' + 1) } else { 0 };
        let packed = (l1 << (VALUE_BITS + COUNT_BITS + LETTER_BITS))
            | (l2 << (VALUE_BITS + COUNT_BITS))
            | ((digits.len() as u128) << VALUE_BITS)
            | u128::from(value);
        Ok(PractitionerCode(packed))
    }

    /// The lossless packed form (for index keys and storage).
    pub fn packed(self) -> u128 {
        self.0
    }

    /// Rebuilds a code from [`PractitionerCode::packed`], if it is one: the
    /// packing `parse` gives for some text, checked field by field (cheap
    /// enough to run on every entry of a snapshot as it loads).
    pub fn from_packed(packed: u128) -> Option<PractitionerCode> {
        let field = |shift: u32, bits: u32| ((packed >> shift) & ((1 << bits) - 1)) as u64;
        let value = field(0, VALUE_BITS);
        let count = field(VALUE_BITS, COUNT_BITS) as usize;
        let l2 = field(VALUE_BITS + COUNT_BITS, LETTER_BITS);
        let l1 = field(VALUE_BITS + COUNT_BITS + LETTER_BITS, LETTER_BITS);
        let letters = if l2 == 0 { 1 } else { 2 };
        let valid = packed >> (VALUE_BITS + COUNT_BITS + 2 * LETTER_BITS) == 0
            && (1..=ALPHABET).contains(&l1)
            && l2 <= ALPHABET
            && PRACTITIONER_DIGITS.contains(&count)
            && letters + count <= PRACTITIONER_MAX_LEN
            && value < 10u64.pow(count as u32);
        valid.then_some(PractitionerCode(packed))
    }
}

impl fmt::Display for PractitionerCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0;
        let value = (p & ((1u128 << VALUE_BITS) - 1)) as u64;
        let count = ((p >> VALUE_BITS) & ((1 << COUNT_BITS) - 1)) as usize;
        let l2 = ((p >> (VALUE_BITS + COUNT_BITS)) & ((1 << LETTER_BITS) - 1)) as u8;
        let l1 = ((p >> (VALUE_BITS + COUNT_BITS + LETTER_BITS)) & ((1 << LETTER_BITS) - 1)) as u8;
        // Wrapping: a packing that is not a code (from_packed on damaged
        // bytes) prints as something `parse` refuses, never overflows.
        write!(f, "{}", char::from(b'A'.wrapping_add(l1.wrapping_sub(1))))?;
        if l2 != 0 {
            write!(f, "{}", char::from(b'A'.wrapping_add(l2 - 1)))?;
        }
        write!(f, "{value:0count$}")
    }
}

/// A national institution code (R2): one uppercase letter, then 11 digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstitutionCode(u64);

const INSTITUTION_VALUE_BITS: u32 = 37; // 10^11 - 1 < 2^37

impl InstitutionCode {
    /// Parses and validates a code (R2).
    pub fn parse(text: &str) -> Result<InstitutionCode, FieldError> {
        let b = text.as_bytes();
        let ok =
            b.len() == 1 + INSTITUTION_DIGITS && b[0].is_ascii_uppercase() && b[1..].iter().all(u8::is_ascii_digit);
        if !ok {
            return Err(FieldError(format!(
                "`{}` is not an institution code; expected one uppercase letter then 11 digits, e.g. H11010500001",
                super::echo(text)
            )));
        }
        let value = b[1..].iter().fold(0u64, |acc, &c| acc * 10 + u64::from(c - b'0'));
        Ok(InstitutionCode((u64::from(b[0] - b'A' + 1) << INSTITUTION_VALUE_BITS) | value))
    }

    /// The lossless packed form.
    pub fn packed(self) -> u64 {
        self.0
    }

    /// Rebuilds a code from [`InstitutionCode::packed`], if it is one.
    pub fn from_packed(packed: u64) -> Option<InstitutionCode> {
        let letter = packed >> INSTITUTION_VALUE_BITS;
        let value = packed & ((1 << INSTITUTION_VALUE_BITS) - 1);
        let valid = (1..=ALPHABET).contains(&letter) && value < 10u64.pow(INSTITUTION_DIGITS as u32);
        valid.then_some(InstitutionCode(packed))
    }
}

impl fmt::Display for InstitutionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letter = (self.0 >> INSTITUTION_VALUE_BITS) as u8;
        let value = self.0 & ((1 << INSTITUTION_VALUE_BITS) - 1);
        write!(f, "{}{value:011}", char::from(b'A'.wrapping_add(letter.wrapping_sub(1))))
    }
}

macro_rules! debug_and_serialize_as_text {
    ($($t:ty),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}
debug_and_serialize_as_text!(PractitionerCode, InstitutionCode);

/// Checks the form R7a gives every source reference: 1 to
/// [`MAX_REFERENCE_CHARS`] characters, none of them a control character.
fn reference(text: &str, what: &str) -> Result<String, FieldError> {
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_REFERENCE_CHARS {
        return Err(FieldError(format!(
            "{what} must be 1 to {MAX_REFERENCE_CHARS} characters long (R7a); it has {chars}"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(FieldError(format!("{what} must not contain control characters (R7a)")));
    }
    Ok(text.to_owned())
}

macro_rules! source_reference {
    ($(#[$doc:meta])* $t:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $t(String);

        impl $t {
            /// Validates a reference (R7a).
            pub fn parse(text: &str) -> Result<$t, FieldError> {
                reference(text, $what).map($t)
            }

            /// The reference's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

source_reference!(
    /// The agency's identifier of one violation decision (R7, R7a).
    ViolationId,
    "a violation id"
);
source_reference!(
    /// The source's own reference for a fact, such as a decision number
    /// (`京医保罚〔2025〕12号`): what makes a re-send recognisable (R7a).
    EventId,
    "an event id"
);

source_reference!(
    /// The agency's identifier of one insured person's settlement
    /// suspension (R7, R7a, R24).
    SuspensionId,
    "a suspension id"
);

/// Most characters of an insured person's number (R23).
pub const MAX_INSURED_CHARS: usize = 30;

/// An insured person's national medical-insurance person number (`psn_no`,
/// R23): 1 to [`MAX_INSURED_CHARS`] ASCII digits and uppercase letters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct InsuredId(String);

impl InsuredId {
    /// Validates a person number (R23).
    pub fn parse(text: &str) -> Result<InsuredId, FieldError> {
        let len = text.len();
        if len == 0 || len > MAX_INSURED_CHARS {
            return Err(FieldError(format!(
                "an insured person's number must be 1 to {MAX_INSURED_CHARS} characters long (R23); it has {}",
                text.chars().count()
            )));
        }
        if !text.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
            return Err(FieldError(
                "an insured person's number is ASCII digits and uppercase letters only (R23)".to_owned(),
            ));
        }
        Ok(InsuredId(text.to_owned()))
    }

    /// The number's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InsuredId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insured_numbers_are_1_to_30_digits_and_uppercase_letters_r23() {
        for ok in ["44000012345678901234", "31A0000000000007", "1", &"9".repeat(30)] {
            assert_eq!(InsuredId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "44000012345678901234x", "31a0000000000007", &"9".repeat(31), "12 34", "１２"] {
            assert!(InsuredId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn practitioner_codes_follow_r1_and_round_trip() {
        for s in [
            "D110105000123",
            "HY110000000001",
            "HJ310115000003",
            "Y440305000009",
            "D000000000000",
            "AB999999999999999999",
            "Z123456789012345678",
        ] {
            let code = PractitionerCode::parse(s).unwrap();
            assert_eq!(code.to_string(), s);
            assert_eq!(PractitionerCode::from_packed(code.packed()), Some(code));
        }
        for s in [
            "d110105000123",
            "D11010500012",
            "DXY110105000123",
            "110105000123",
            "D1101050001234567890",
            "ABC11010500012",
            "D110105000123 ",
            "D11010500012X",
            "",
        ] {
            assert!(PractitionerCode::parse(s).is_err(), "{s} should be refused");
        }
    }

    #[test]
    fn leading_zeros_and_digit_counts_keep_codes_distinct() {
        let a = PractitionerCode::parse("D000000000001").unwrap();
        let b = PractitionerCode::parse("D0000000000001").unwrap();
        let c = PractitionerCode::parse("DA00000000001").unwrap_err();
        assert_ne!(a, b);
        assert_ne!(a.packed(), b.packed());
        assert!(c.0.contains("digits"));
    }

    #[test]
    fn institution_codes_follow_r2_and_round_trip() {
        for s in ["H11010500001", "P44030500012", "A00000000000", "Z99999999999"] {
            let code = InstitutionCode::parse(s).unwrap();
            assert_eq!(code.to_string(), s);
            assert_eq!(InstitutionCode::from_packed(code.packed()), Some(code));
        }
        for s in ["h11010500001", "H1101050000", "H110105000011", "HH1010500001", ""] {
            assert!(InstitutionCode::parse(s).is_err(), "{s} should be refused");
        }
    }

    /// Issue 8 (fuzzing a snapshot's payload): `from_packed` on bytes that are
    /// no code must answer `None`, never panic, and agree with printing the
    /// packing and parsing it back.
    #[test]
    fn from_packed_refuses_every_packing_that_is_not_a_code() {
        let valid = PractitionerCode::parse("HJ310115000003").unwrap().packed();
        let mut packings = vec![0, 1, u128::MAX, u128::from(u64::MAX), valid, valid | 1 << 80, valid ^ 1 << 60];
        packings.extend((0..128).map(|bit| 1u128 << bit));
        packings.extend((0..128).map(|bit| valid ^ (1u128 << bit)));
        for packed in packings {
            let round_trip = PractitionerCode::parse(&PractitionerCode(packed).to_string()).ok();
            let expected = round_trip.filter(|c| c.packed() == packed);
            assert_eq!(PractitionerCode::from_packed(packed), expected, "{packed:#x}");
        }
        let valid = InstitutionCode::parse("P44030500012").unwrap().packed();
        let mut packings = vec![0, 1, u64::MAX, valid, 27 << INSTITUTION_VALUE_BITS];
        packings.extend((0..64).map(|bit| 1u64 << bit));
        packings.extend((0..64).map(|bit| valid ^ (1u64 << bit)));
        for packed in packings {
            let round_trip = InstitutionCode::parse(&InstitutionCode(packed).to_string()).ok();
            let expected = round_trip.filter(|c| c.packed() == packed);
            assert_eq!(InstitutionCode::from_packed(packed), expected, "{packed:#x}");
        }
    }

    #[test]
    fn violation_ids_are_bounded_and_printable() {
        assert!(ViolationId::parse("V-2026-0001").is_ok());
        assert!(ViolationId::parse("违规-1").is_ok());
        assert!(ViolationId::parse("").is_err());
        assert!(ViolationId::parse("a\nb").is_err());
        assert!(ViolationId::parse(&"x".repeat(MAX_REFERENCE_CHARS + 1)).is_err());
        // R7a counts characters, not bytes: 64 Chinese characters are one reference.
        assert!(EventId::parse(&"号".repeat(MAX_REFERENCE_CHARS)).is_ok());
        assert!(EventId::parse(&"号".repeat(MAX_REFERENCE_CHARS + 1)).is_err());
        assert!(EventId::parse("京医保罚〔2025〕12号").is_ok());
        assert!(EventId::parse("a\u{7f}b").is_err());
    }
}
