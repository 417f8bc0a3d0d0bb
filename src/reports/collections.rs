//! Collections report (issue #7): the pure arithmetic, no I/O.
//!
//! Definitions, stated on the page as well:
//! - **AR at a date** is the aging report's reconstructed balance as of that date (rules in
//!   [`super`]), per currency; the repo reuses `aging_repo::summary` grouped by currency.
//! - **Credit sales** of a period: totals of invoices (`kind = 'invoice'`, not draft or void)
//!   issued in it, by the payer's currency.
//! - **Standard DSO** for a period of N days = AR at period end ÷ credit sales × N; undefined
//!   (shown "—") when the period had no sales.
//! - **Count-back DSO** at a date: walk back month by month from the date, subtracting each
//!   month's sales from the ending AR; a month fully consumed counts all its days, the month
//!   where AR runs out counts (remaining AR ÷ its sales) × its days. The month of the date
//!   counts only the days up to it. When the history runs out first, the result is a lower
//!   bound and says so.
//! - **Collections lag** of an invoice fully paid in cash: the payment that brought its cash
//!   applications up to its balance dates it; days to pay = payment date − issue date, days
//!   past due = payment date − due date (negative when early). Average and median per month
//!   of payment, per payer account and per rep (the payer's owner).
//! - **CEI** = (opening AR + credit sales − closing AR) ÷ (opening AR + credit sales −
//!   closing current AR) × 100, where current AR is the part not yet due at the period end;
//!   undefined when the denominator is zero.
//! - Amounts are never summed across currencies; ratios and day counts are Decimals rounded
//!   to one place for display only.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

/// Standard DSO; `None` when there were no sales to divide by.
pub fn standard_dso(ar: Decimal, sales: Decimal, days: i64) -> Option<Decimal> {
    if sales <= Decimal::ZERO {
        return None;
    }
    Some(ar / sales * Decimal::from(days))
}

/// One month of history for the count-back, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthSales {
    pub sales: Decimal,
    pub days: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountBack {
    pub days: Decimal,
    /// AR was still left when the history ran out: `days` is a lower bound.
    pub exhausted: bool,
}

/// Count-back DSO over `months` (newest first, the first being the month of the end date).
pub fn count_back_dso(ar: Decimal, months: &[MonthSales]) -> CountBack {
    let mut left = ar;
    let mut days = Decimal::ZERO;
    for m in months {
        if left <= Decimal::ZERO {
            break;
        }
        if m.sales >= left {
            // `m.sales > 0` here because `left > 0`.
            days += left / m.sales * Decimal::from(m.days);
            left = Decimal::ZERO;
        } else {
            days += Decimal::from(m.days);
            left -= m.sales.max(Decimal::ZERO);
        }
    }
    CountBack {
        days,
        exhausted: left > Decimal::ZERO,
    }
}

/// Collection effectiveness index in percent; `None` when nothing was collectible.
pub fn cei(
    opening: Decimal,
    sales: Decimal,
    closing: Decimal,
    current: Decimal,
) -> Option<Decimal> {
    let denominator = opening + sales - current;
    if denominator.is_zero() {
        return None;
    }
    Some((opening + sales - closing) / denominator * Decimal::from(100))
}

/// Average and median of a list of day counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    pub average: Decimal,
    pub median: Decimal,
}

pub fn spread(values: &[i64]) -> Option<Spread> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let n = v.len();
    let sum: i64 = v.iter().sum();
    let average = Decimal::from(sum) / Decimal::from(n);
    let median = if n % 2 == 1 {
        Decimal::from(v[n / 2])
    } else {
        Decimal::from(v[n / 2 - 1] + v[n / 2]) / Decimal::TWO
    };
    Some(Spread { average, median })
}

/// Lag statistics of a group of paid invoices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    pub invoices: usize,
    pub to_pay: Spread,
    pub past_due: Spread,
}

/// `(days to pay, days past due at payment)` per invoice.
pub fn lag(rows: &[(i64, i64)]) -> Option<Lag> {
    let to_pay: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let past_due: Vec<i64> = rows.iter().map(|r| r.1).collect();
    Some(Lag {
        invoices: rows.len(),
        to_pay: spread(&to_pay)?,
        past_due: spread(&past_due)?,
    })
}

/// One rounded figure for display and CSV (plain, not localized), half away from zero like
/// money, so 56.25 days reads 56.3.
pub fn one_place(d: Decimal) -> String {
    let r = d.round_dp_with_strategy(1, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    format!("{r:.1}")
}

/// The first day of `d`'s month.
pub fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

/// The last day of `d`'s month.
pub fn month_end(d: NaiveDate) -> NaiveDate {
    month_start(d)
        .checked_add_months(chrono::Months::new(1))
        .and_then(|n| n.pred_opt())
        .unwrap_or(d)
}

/// A slice of the report range: a calendar month clipped to `[from, to]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub month: NaiveDate,
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Period {
    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days() + 1
    }
}

/// The months of `[from, to]`, oldest first, the first and last clipped to the range.
pub fn periods(from: NaiveDate, to: NaiveDate) -> Vec<Period> {
    let mut out = Vec::new();
    let mut m = month_start(from);
    while m <= to {
        out.push(Period {
            month: m,
            start: m.max(from),
            end: month_end(m).min(to),
        });
        match m.checked_add_months(chrono::Months::new(1)) {
            Some(n) => m = n,
            None => break,
        }
    }
    out
}

/// Count-back history at `end` from calendar-month sales (`month → sales`, any order): the
/// month of `end` counts its days up to `end`, earlier months all their days.
pub fn history(
    end: NaiveDate,
    months_back: u32,
    sales: &[(NaiveDate, Decimal)],
) -> Vec<MonthSales> {
    let first = month_start(end);
    (0..months_back)
        .filter_map(|i| first.checked_sub_months(chrono::Months::new(i)))
        .map(|m| {
            let last = if m == first { end } else { month_end(m) };
            MonthSales {
                sales: sales.iter().filter(|(k, _)| *k == m).map(|(_, v)| *v).sum(),
                days: (last - m).num_days() + 1,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn standard_dso_is_ar_over_sales_times_days() {
        // 1500 / 3000 × 90 = 45
        assert_eq!(standard_dso(d("1500"), d("3000"), 90), Some(d("45")));
        assert_eq!(
            one_place(standard_dso(d("100"), d("300"), 30).unwrap()),
            "10.0"
        );
        assert_eq!(standard_dso(d("100"), Decimal::ZERO, 30), None);
        assert_eq!(one_place(d("56.25")), "56.3");
        assert_eq!(one_place(d("-0.25")), "-0.3");
    }

    #[test]
    fn count_back_consumes_whole_months_then_a_fraction_of_the_last() {
        // AR 2500; March (31 d) sales 1000, Feb (28 d) 1000, Jan (31 d) 2000:
        // 31 + 28 + 500/2000 × 31 = 66.75
        let months = [
            MonthSales {
                sales: d("1000"),
                days: 31,
            },
            MonthSales {
                sales: d("1000"),
                days: 28,
            },
            MonthSales {
                sales: d("2000"),
                days: 31,
            },
        ];
        let r = count_back_dso(d("2500"), &months);
        assert_eq!(r.days, d("66.75"));
        assert!(!r.exhausted);
        // AR inside the first month: 250/1000 × 31 = 7.75
        assert_eq!(count_back_dso(d("250"), &months).days, d("7.75"));
    }

    #[test]
    fn count_back_skips_months_without_sales_and_flags_exhausted_history() {
        let months = [
            MonthSales {
                sales: Decimal::ZERO,
                days: 30,
            },
            MonthSales {
                sales: d("100"),
                days: 31,
            },
        ];
        assert_eq!(count_back_dso(d("50"), &months).days, d("45.5"));
        let r = count_back_dso(d("500"), &months);
        assert_eq!(r.days, d("61"));
        assert!(r.exhausted);
        assert_eq!(count_back_dso(Decimal::ZERO, &months).days, Decimal::ZERO);
    }

    #[test]
    fn cei_matches_the_formula_and_is_undefined_without_collectible_ar() {
        // (1000 + 3000 − 1500) / (1000 + 3000 − 500) × 100 = 2500/3500 × 100 = 71.428…
        let c = cei(d("1000"), d("3000"), d("1500"), d("500")).unwrap();
        assert_eq!(one_place(c), "71.4");
        assert_eq!(
            cei(Decimal::ZERO, Decimal::ZERO, Decimal::ZERO, Decimal::ZERO),
            None
        );
        // Everything collected: 100 %.
        assert_eq!(cei(d("100"), d("50"), d("0"), d("0")), Some(d("100")));
    }

    #[test]
    fn median_and_average_of_even_and_odd_lists() {
        let s = spread(&[10, 40, 20]).unwrap();
        assert_eq!(s.median, d("20"));
        assert_eq!(one_place(s.average), "23.3");
        let s = spread(&[-5, 3, 10, 30]).unwrap();
        assert_eq!(s.median, d("6.5"));
        assert_eq!(s.average, d("9.5"));
        assert_eq!(spread(&[]), None);
        let l = lag(&[(30, 0), (45, 15)]).unwrap();
        assert_eq!(
            (l.invoices, l.to_pay.average, l.past_due.median),
            (2, d("37.5"), d("7.5"))
        );
    }

    #[test]
    fn periods_clip_the_first_and_last_month() {
        let p = periods(day("2026-01-15"), day("2026-03-10"));
        assert_eq!(p.len(), 3);
        assert_eq!(
            (p[0].start, p[0].end, p[0].days()),
            (day("2026-01-15"), day("2026-01-31"), 17)
        );
        assert_eq!(p[1].days(), 28);
        assert_eq!((p[2].end, p[2].days()), (day("2026-03-10"), 10));
        assert_eq!(month_end(day("2024-02-10")), day("2024-02-29"));
    }

    #[test]
    fn history_counts_the_partial_month_of_the_end_date() {
        let sales = [(day("2026-03-01"), d("100")), (day("2026-02-01"), d("200"))];
        let h = history(day("2026-03-10"), 3, &sales);
        assert_eq!(
            h[0],
            MonthSales {
                sales: d("100"),
                days: 10
            }
        );
        assert_eq!(
            h[1],
            MonthSales {
                sales: d("200"),
                days: 28
            }
        );
        assert_eq!(
            h[2],
            MonthSales {
                sales: Decimal::ZERO,
                days: 31
            }
        );
    }
}
