//! Revenue recognition schedules (issue #9, part 2): pure rules, no I/O. `revenue` writes the
//! rows these functions return and runs the recognition job; `recognize` is re-exported here.
//!
//! Rules:
//! - A ratable line is credited to deferred revenue by its gross amount (net + discount: the
//!   discount is expensed at once by the posting rules), so its schedule sums exactly to that
//!   amount and recognizing all of it empties deferred revenue for the line.
//! - A line with a service period (`period_start`..=`period_end`, both inclusive) is spread
//!   over the months it touches by days: month amount = gross × days in month ÷ days in period,
//!   rounded to the currency's minor unit half away from zero; the last month takes the
//!   rounding remainder, so the rows sum to the line exactly.
//! - Nothing is scheduled before the document's issue month: months before it fold into the
//!   issue month (revenue for service already delivered is recognized when it is billed, never
//!   back-dated into a past period).
//! - A credit note's ratable line produces the same schedule negated, over its own period or
//!   else the period of the line it credits: it reverses revenue month by month from its issue
//!   month on, and catches up at once for the months already recognized.
//! - A ratable line without any period is recognized at once: one row in the issue month.
//! - A void removes the unrecognized rows and adds, in the void's month, the negative of what
//!   was recognized, since the void entry reverses the whole deferred credit.
//! - Recognition posts one entry per month and currency, dated the month's last day: Dr
//!   deferred revenue / Cr the revenue account of the line's mapping rule (both resolved when
//!   the document posted). Negative rows reverse it. A row is recognized once: it keeps the
//!   entry's id, so running the job again posts nothing.
//! - The daily `ledger.recognize` job takes the months that have ended; "Recognize now" on
//!   the schedule page takes every month up to the one chosen (default: the current month).

use chrono::{Datelike, Months, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};

pub use super::revenue::recognize;

/// First day of `d`'s month.
pub fn month_of(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

/// Last day of the month starting at `month`.
pub fn month_end(month: NaiveDate) -> NaiveDate {
    month_of(month)
        .checked_add_months(Months::new(1))
        .and_then(|d| d.pred_opt())
        .unwrap_or(month)
}

fn next_month(month: NaiveDate) -> NaiveDate {
    month
        .checked_add_months(Months::new(1))
        .unwrap_or(NaiveDate::MAX)
}

/// The schedule of `amount` (signed) over `period` (inclusive dates), as `(month, amount)`
/// in month order, never before `not_before`'s month; `scale` is the currency's minor unit.
/// No period, or an empty one, yields one row in `not_before`'s month.
pub fn schedule(
    amount: Decimal,
    period: Option<(NaiveDate, NaiveDate)>,
    not_before: NaiveDate,
    scale: u32,
) -> Vec<(NaiveDate, Decimal)> {
    let first = month_of(not_before);
    let Some((start, end)) = period.filter(|(s, e)| s <= e) else {
        return vec![(first, amount)];
    };
    let total_days = Decimal::from((end - start).num_days() + 1);
    let mut rows: Vec<(NaiveDate, Decimal)> = Vec::new();
    let mut month = month_of(start);
    while month <= end {
        let from = start.max(month);
        let to = end.min(month_end(month));
        let days = Decimal::from((to - from).num_days() + 1);
        let share = (amount * days / total_days)
            .round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
        let at = month.max(first);
        match rows.last_mut() {
            Some(last) if last.0 == at => last.1 += share,
            _ => rows.push((at, share)),
        }
        month = next_month(month);
    }
    let allotted: Decimal = rows.iter().map(|r| r.1).sum();
    if let Some(last) = rows.last_mut() {
        last.1 += amount - allotted;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn annual_from_mid_march_by_days() {
        // 365 days; each month = 1,200 × days / 365; March 2027 takes the remainder
        // (46.03 by days, 46.02 after the other months' rounding).
        let rows = schedule(
            m("1200.00"),
            Some((d(2026, 3, 15), d(2027, 3, 14))),
            d(2026, 3, 15),
            2,
        );
        let expected = [
            (d(2026, 3, 1), m("55.89")),  // 17 days
            (d(2026, 4, 1), m("98.63")),  // 30
            (d(2026, 5, 1), m("101.92")), // 31
            (d(2026, 6, 1), m("98.63")),
            (d(2026, 7, 1), m("101.92")),
            (d(2026, 8, 1), m("101.92")),
            (d(2026, 9, 1), m("98.63")),
            (d(2026, 10, 1), m("101.92")),
            (d(2026, 11, 1), m("98.63")),
            (d(2026, 12, 1), m("101.92")),
            (d(2027, 1, 1), m("101.92")),
            (d(2027, 2, 1), m("92.05")), // 28
            (d(2027, 3, 1), m("46.02")), // 14, remainder
        ];
        assert_eq!(rows, expected);
    }

    #[test]
    fn months_before_issue_fold_into_issue_month() {
        let rows = schedule(
            m("-300"),
            Some((d(2026, 1, 1), d(2026, 3, 31))),
            d(2026, 2, 10),
            2,
        );
        assert_eq!(
            rows,
            [(d(2026, 2, 1), m("-196.66")), (d(2026, 3, 1), m("-103.34"))]
        );
        assert_eq!(rows.iter().map(|r| r.1).sum::<Decimal>(), m("-300"));
    }

    #[test]
    fn no_period_is_one_row_in_issue_month() {
        assert_eq!(
            schedule(m("10"), None, d(2026, 5, 20), 2),
            [(d(2026, 5, 1), m("10"))]
        );
        let backwards = Some((d(2026, 5, 2), d(2026, 5, 1)));
        assert_eq!(
            schedule(m("10"), backwards, d(2026, 5, 20), 2),
            [(d(2026, 5, 1), m("10"))]
        );
    }

    #[test]
    fn month_helpers() {
        assert_eq!(month_of(d(2028, 2, 17)), d(2028, 2, 1));
        assert_eq!(month_end(d(2028, 2, 1)), d(2028, 2, 29));
        assert_eq!(month_end(d(2026, 12, 1)), d(2026, 12, 31));
    }

    proptest! {
        #[test]
        fn schedules_sum_to_the_line(
            cents in -10_000_000i64..10_000_000,
            start in 0i64..2000,
            len in 0i64..1200,
            issue_shift in -400i64..400,
            scale in 0u32..4,
        ) {
            let amount = Decimal::new(cents, 2).round_dp(scale);
            let base = d(2024, 1, 1);
            let s = base + chrono::Duration::days(start);
            let e = s + chrono::Duration::days(len);
            let issue = s + chrono::Duration::days(issue_shift);
            let rows = schedule(amount, Some((s, e)), issue, scale);
            prop_assert_eq!(rows.iter().map(|r| r.1).sum::<Decimal>(), amount);
            prop_assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
            prop_assert!(rows.iter().all(|r| r.0.day() == 1 && r.0 >= month_of(issue)));
            prop_assert!(rows.iter().all(|r| r.1.scale() <= scale.max(amount.scale())));
        }
    }
}
