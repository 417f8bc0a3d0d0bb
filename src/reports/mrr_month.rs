//! Calendar months as the MRR report counts them: `YYYY-MM` in the query string, measured
//! at their last day.

use std::fmt;

use chrono::{Datelike, NaiveDate};

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    /// `YYYY-MM`.
    pub fn parse(raw: &str) -> Option<Month> {
        let (y, m) = raw.trim().split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let year: i32 = y.parse().ok()?;
        let month: u32 = m.parse().ok()?;
        NaiveDate::from_ymd_opt(year, month, 1)?;
        Some(Month { year, month })
    }

    pub fn of(d: NaiveDate) -> Month {
        Month {
            year: d.year(),
            month: d.month(),
        }
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN)
    }

    pub fn last_day(self) -> NaiveDate {
        self.next()
            .first_day()
            .pred_opt()
            .unwrap_or_else(|| self.first_day())
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn prev(self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// Months from `self` to `to`, both included (empty when `to` is earlier).
    pub fn until(self, to: Month) -> Vec<Month> {
        let mut out = Vec::new();
        let mut m = self;
        while m <= to {
            out.push(m);
            m = m.next();
        }
        out
    }

    /// Number of months from `self` to `to`, both included.
    pub fn span(self, to: Month) -> i64 {
        i64::from(to.year - self.year) * 12 + i64::from(to.month) - i64::from(self.month) + 1
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }
    fn month(s: &str) -> Month {
        Month::parse(s).unwrap()
    }

    #[test]
    fn months_parse_and_step() {
        assert_eq!(month("2026-12").next(), month("2027-01"));
        assert_eq!(month("2026-01").prev(), month("2025-12"));
        assert_eq!(month("2028-02").last_day(), day("2028-02-29"));
        assert_eq!(month("2026-01").span(month("2026-12")), 12);
        for bad in ["2026-13", "2026-1", "26-01", "x", "", "2026-00"] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
    }
}
