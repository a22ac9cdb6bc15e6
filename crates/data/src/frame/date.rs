//! Calendar dates of the proleptic Gregorian calendar, read from ISO 8601 text.

use std::fmt;

/// A calendar date (`1970-01-01`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: i32,
    month: u32,
    day: u32,
}

const DAYS_BEFORE_MONTH: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Date {
    /// The date, when it exists (`month` 1 to 12, `day` within the month).
    pub fn new(year: i32, month: u32, day: u32) -> Option<Date> {
        ((1..=12).contains(&month) && (1..=days_in_month(year, month)).contains(&day))
            .then_some(Date { year, month, day })
    }

    /// Reads `YYYY-MM-DD`, optionally followed by a time (`T` or a space, then
    /// anything), which is ignored: `1970-01-01`, `2024-02-29T13:45:00Z`.
    pub fn parse(text: &str) -> Option<Date> {
        let (date, rest) = text.split_at_checked(10)?;
        if !(rest.is_empty() || rest.starts_with(['T', ' ']) && rest.len() > 1) {
            return None;
        }
        let b = date.as_bytes();
        if b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let digits = |s: &str| {
            s.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| s.parse::<u32>().ok())
                .flatten()
        };
        let year = digits(&date[..4])?;
        Date::new(
            i32::try_from(year).ok()?,
            digits(&date[5..7])?,
            digits(&date[8..10])?,
        )
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month, 1 to 12.
    pub fn month(self) -> u32 {
        self.month
    }

    /// The day of the month, from 1.
    pub fn day(self) -> u32 {
        self.day
    }

    /// The day of the year, 1 to 366.
    pub fn day_of_year(self) -> u32 {
        let leap = u32::from(self.month > 2 && is_leap(self.year));
        DAYS_BEFORE_MONTH[self.month as usize - 1] + self.day + leap
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iso_dates_and_counts_days() {
        let d = Date::parse("1970-01-01");
        assert_eq!(d, Date::new(1970, 1, 1));
        assert_eq!(d.map(Date::day_of_year), Some(1));
        let leap = Date::parse("2024-12-31T23:59:59Z");
        assert_eq!(leap.map(Date::day_of_year), Some(366));
        assert_eq!(Date::parse("2023-03-01").map(Date::day_of_year), Some(60));
        assert_eq!(Date::parse("2024-03-01").map(Date::day_of_year), Some(61));
        for bad in [
            "2023-02-29",
            "1970-13-01",
            "1970-1-01",
            "70-01-01",
            "1970/01/01",
            "1970-01-01X",
            "1970-01-01T",
            "+970-01-01",
            "",
        ] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Date::new(1999, 7, 4).map(|d| d.to_string()),
            Some("1999-07-04".into())
        );
    }
}
