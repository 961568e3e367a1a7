//! The only clock in claimgate: today's civil date in China Standard Time,
//! and the wall-clock instant a decision record is stamped with. Rules never
//! read it; commands pass "today" in, so tests stay deterministic.

use claimgate_rules::domain::CivilDate;

/// China Standard Time is UTC+8 all year (R3).
const CST_OFFSET_SECONDS: i64 = 8 * 3600;
const SECONDS_PER_DAY: i64 = 86_400;

/// Something that knows today's date.
pub trait Clock {
    fn today(&self) -> CivilDate;
}

/// The system clock, read in China Standard Time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn today(&self) -> CivilDate {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let days = (now + CST_OFFSET_SECONDS).div_euclid(SECONDS_PER_DAY);
        CivilDate::from_day_number(days as i32).expect("the system clock is within years 1-9999")
    }
}

/// A clock stopped on one date (tests, `--as-of`).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub CivilDate);

impl Clock for FixedClock {
    fn today(&self) -> CivilDate {
        self.0
    }
}

/// Milliseconds since the Unix epoch, from the system clock: the time a
/// decision record was made (R19), shown as `at` in the audit. A clock set
/// before 1970 reads 0.
pub fn system_unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Now in UTC as `YYYYMMDDTHHMMSSmmmZ` (to the millisecond), for the names of
/// files the gate writes (backups), which then sort by time.
pub fn utc_stamp() -> String {
    let ms = system_unix_ms();
    let secs = (ms / 1000) as i64;
    let day = CivilDate::from_day_number(secs.div_euclid(SECONDS_PER_DAY) as i32)
        .expect("the system clock is within years 1-9999");
    let t = secs.rem_euclid(SECONDS_PER_DAY);
    let date = day.to_string().replace('-', "");
    format!("{date}T{:02}{:02}{:02}{:03}Z", t / 3600, t / 60 % 60, t % 60, ms % 1000)
}
