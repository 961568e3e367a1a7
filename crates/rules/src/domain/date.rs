//! Civil dates and half-open intervals (R3).
//!
//! A [`CivilDate`] is a proleptic-Gregorian day in China Standard Time,
//! stored as days since 1970-01-01 so comparisons and interval lookups are
//! integer compares. Month arithmetic clamps to the month's last day.

use super::FieldError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The earliest year a date may carry (four-digit years only, R3).
pub const MIN_YEAR: i32 = 1;
/// The latest year a date may carry (four-digit years only, R3).
pub const MAX_YEAR: i32 = 9999;

/// A civil date `YYYY-MM-DD` (R3).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CivilDate(i32);

impl CivilDate {
    /// 0001-01-01.
    pub const MIN: CivilDate = CivilDate(days_from_civil(MIN_YEAR, 1, 1));
    /// 9999-12-31.
    pub const MAX: CivilDate = CivilDate(days_from_civil(MAX_YEAR, 12, 31));

    /// The date for a year, month and day, if it exists and is in range.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<CivilDate> {
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) || !(1..=12).contains(&month) {
            return None;
        }
        if day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(CivilDate(days_from_civil(year, month, day)))
    }

    /// Parses exactly `YYYY-MM-DD` (ten ASCII characters, a real calendar day).
    pub fn parse(text: &str) -> Result<CivilDate, FieldError> {
        let bad = || FieldError(format!("`{}` is not a date of the form YYYY-MM-DD", super::echo(text)));
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            b[r].iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
        };
        let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) else {
            return Err(bad());
        };
        CivilDate::from_ymd(y as i32, m, d)
            .ok_or_else(|| FieldError(format!("`{}` is not a day of the calendar", super::echo(text))))
    }

    /// Days since 1970-01-01 (negative before).
    pub fn day_number(self) -> i32 {
        self.0
    }

    /// The date for a day number, if in range.
    pub fn from_day_number(days: i32) -> Option<CivilDate> {
        (CivilDate::MIN.0..=CivilDate::MAX.0).contains(&days).then_some(CivilDate(days))
    }

    /// (year, month, day).
    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.0)
    }

    /// The calendar year.
    pub fn year(self) -> i32 {
        self.ymd().0
    }

    /// 1 January of `year`, if in range.
    pub fn first_of_year(year: i32) -> Option<CivilDate> {
        CivilDate::from_ymd(year, 1, 1)
    }

    /// The next day, or `None` after [`CivilDate::MAX`].
    pub fn succ(self) -> Option<CivilDate> {
        CivilDate::from_day_number(self.0 + 1)
    }

    /// The previous day, or `None` before [`CivilDate::MIN`].
    pub fn pred(self) -> Option<CivilDate> {
        CivilDate::from_day_number(self.0 - 1)
    }

    /// Adds `months`, keeping the day of month clamped to the target month's
    /// last day (R3: 2026-01-31 + 1 month = 2026-02-28). `None` past 9999-12-31,
    /// which callers treat as "never ends".
    pub fn add_months(self, months: u32) -> Option<CivilDate> {
        let (y, m, d) = self.ymd();
        let index = i64::from(y) * 12 + i64::from(m - 1) + i64::from(months);
        let year = i32::try_from(index.div_euclid(12)).ok()?;
        let month = (index.rem_euclid(12) + 1) as u32;
        if year > MAX_YEAR {
            return None;
        }
        CivilDate::from_ymd(year, month, d.min(days_in_month(year, month)))
    }
}

impl fmt::Display for CivilDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl fmt::Debug for CivilDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for CivilDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CivilDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        CivilDate::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => unreachable!("month {month} out of 1..=12"),
    }
}

// Howard Hinnant's days_from_civil / civil_from_days algorithms.
const fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u32;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i32 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A half-open interval `[from, until)` of service dates (R3). `until: None`
/// means the interval has not ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DateInterval {
    pub from: CivilDate,
    pub until: Option<CivilDate>,
}

impl DateInterval {
    /// An interval; `until`, when present, must be after `from`.
    pub fn new(from: CivilDate, until: Option<CivilDate>) -> DateInterval {
        assert!(until.is_none_or(|u| u > from), "empty interval {from:?}..{until:?}");
        DateInterval { from, until }
    }

    /// Whether `day` lies in `[from, until)`.
    pub fn contains(&self, day: CivilDate) -> bool {
        day >= self.from && self.until.is_none_or(|u| day < u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> CivilDate {
        CivilDate::parse(s).unwrap()
    }

    #[test]
    fn parse_round_trips_and_refuses_impossible_days() {
        for s in ["2026-01-31", "2024-02-29", "0001-01-01", "9999-12-31", "1970-01-01"] {
            assert_eq!(d(s).to_string(), s);
        }
        for s in [
            "2026-02-30",
            "2025-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-1-01",
            "26-01-01",
            "2026/01/01",
            "2026-01-01T00:00",
            "0000-01-01",
            "+2026-01-0",
            "",
        ] {
            assert!(CivilDate::parse(s).is_err(), "{s} should be refused");
        }
    }

    #[test]
    fn day_numbers_are_consecutive_across_month_and_year_ends() {
        let mut day = d("1999-12-25");
        for _ in 0..800 {
            let next = day.succ().unwrap();
            assert_eq!(next.day_number(), day.day_number() + 1);
            assert!(next.to_string() > day.to_string());
            day = next;
        }
    }

    #[test]
    fn adding_months_clamps_to_month_end_r3() {
        assert_eq!(d("2026-01-31").add_months(1), Some(d("2026-02-28")));
        assert_eq!(d("2024-01-31").add_months(1), Some(d("2024-02-29")));
        assert_eq!(d("2026-03-10").add_months(2), Some(d("2026-05-10")));
        assert_eq!(d("2025-12-20").add_months(2), Some(d("2026-02-20")));
        assert_eq!(d("2024-02-29").add_months(12), Some(d("2025-02-28")));
        assert_eq!(d("2026-01-20").add_months(36), Some(d("2029-01-20")));
        assert_eq!(d("9999-06-01").add_months(7), None);
    }

    #[test]
    fn intervals_include_from_and_exclude_until() {
        let i = DateInterval::new(d("2026-07-01"), Some(d("2026-08-01")));
        assert!(!i.contains(d("2026-06-30")));
        assert!(i.contains(d("2026-07-01")));
        assert!(i.contains(d("2026-07-31")));
        assert!(!i.contains(d("2026-08-01")));
        assert!(DateInterval::new(d("2026-07-01"), None).contains(CivilDate::MAX));
    }
}
