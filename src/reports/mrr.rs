//! Recurring revenue (MRR/ARR) and its monthly movements: pure rules, no I/O.
//!
//! Rules:
//! - MRR is measured at the last day of each month (M). A subscription contributes on M when it
//!   has started (`start ≤ M`), has not ended (its last day of service — `end_date`, or the day
//!   it was canceled when it has none — is ≥ M) and its trial is over (`trial_end ≤ M`; trial
//!   months count 0, since `trial_end` is the first charged day).
//! - An item row contributes when it is valid on M (`start ≤ M ≤ end`, open end = forever).
//!   Its monthly amount is the catalog's own recurring amount for its quantity scaled to one
//!   month ([`ItemTerms::cycle_amount`]`(1)`, so a price quoted per quarter counts a third),
//!   less its discount: a percentage as is, a fixed amount (quoted per billing cycle of the
//!   subscription) divided by the cycle's months and never more than the amount. Usage prices
//!   and minimum commits are not recurring and count 0.
//! - An account's MRR in a currency is the sum over its subscriptions in that currency, rounded
//!   to the currency's minor unit (half away from zero), so every figure on the page adds up
//!   exactly. Revenue belongs to the subscription's account (not the payer). ARR = 12 × MRR.
//! - Movements compare an account's MRR at the end of the previous month with this month's:
//!   new (0 → >0, never had MRR before, at any earlier month end), reactivation (0 → >0 having had
//!   MRR before), expansion (up, both > 0), contraction (down, still > 0), churn (>0 → 0).
//!   Each movement's amount is `closing − opening` of that account, so contraction and churn are
//!   negative and `opening + Σ movements = closing` holds for every month and currency.
//! - Currencies are never summed together: every series is per currency.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;

pub use super::mrr_month::Month;
use crate::{money::Currency, subscriptions::charges::ItemTerms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Movement {
    New,
    Expansion,
    Contraction,
    Churn,
    Reactivation,
}

impl Movement {
    pub const ALL: [Movement; 5] = [
        Movement::New,
        Movement::Expansion,
        Movement::Contraction,
        Movement::Churn,
        Movement::Reactivation,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Movement::New => "new",
            Movement::Expansion => "expansion",
            Movement::Contraction => "contraction",
            Movement::Churn => "churn",
            Movement::Reactivation => "reactivation",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Movement::New => "New",
            Movement::Expansion => "Expansion",
            Movement::Contraction => "Contraction",
            Movement::Churn => "Churn",
            Movement::Reactivation => "Reactivation",
        }
    }

    pub fn parse(raw: &str) -> Option<Movement> {
        Movement::ALL.into_iter().find(|m| m.code() == raw.trim())
    }

    /// The movement from `opening` to `closing`; `had_before` = the account had MRR at some
    /// earlier month end.
    pub fn classify(opening: Decimal, closing: Decimal, had_before: bool) -> Option<Movement> {
        let (was, is) = (opening > Decimal::ZERO, closing > Decimal::ZERO);
        match (was, is) {
            (false, true) if had_before => Some(Movement::Reactivation),
            (false, true) => Some(Movement::New),
            (true, false) => Some(Movement::Churn),
            _ if closing > opening => Some(Movement::Expansion),
            _ if closing < opening => Some(Movement::Contraction),
            _ => None,
        }
    }

    fn slot(self) -> usize {
        match self {
            Movement::New => 0,
            Movement::Expansion => 1,
            Movement::Contraction => 2,
            Movement::Churn => 3,
            Movement::Reactivation => 4,
        }
    }
}

/// One subscription with the dated item rows that price it.
#[derive(Debug, Clone)]
pub struct SubTerms {
    pub account_id: i64,
    pub currency: String,
    pub start: NaiveDate,
    /// Last day of service (inclusive), `None` = open.
    pub end: Option<NaiveDate>,
    /// First charged day after a trial.
    pub trial_end: Option<NaiveDate>,
    /// The billing cycle, which a fixed discount amount is quoted per.
    pub interval_months: u32,
    pub items: Vec<ItemTerms>,
}

/// One item's monthly recurring amount on `at`, unrounded.
pub fn item_mrr(item: &ItemTerms, cycle_months: u32, at: NaiveDate) -> Decimal {
    if item.start > at || item.end.is_some_and(|e| e < at) || item.terms.model.is_usage() {
        return Decimal::ZERO;
    }
    let monthly = item.cycle_amount(1);
    let discount = match (item.discount_percent, item.discount_amount) {
        (Some(p), _) => monthly * p / Decimal::ONE_HUNDRED,
        (None, Some(a)) => (a / Decimal::from(cycle_months.max(1))).min(monthly.max(Decimal::ZERO)),
        _ => Decimal::ZERO,
    };
    monthly - discount
}

/// A subscription's monthly recurring amount on `at`, unrounded.
pub fn subscription_mrr(sub: &SubTerms, at: NaiveDate) -> Decimal {
    let live =
        sub.start <= at && sub.end.is_none_or(|e| e >= at) && sub.trial_end.is_none_or(|t| t <= at);
    if !live {
        return Decimal::ZERO;
    }
    sub.items
        .iter()
        .map(|i| item_mrr(i, sub.interval_months, at))
        .sum()
}

fn round(currency: &str, d: Decimal) -> Decimal {
    Currency::parse(currency).map_or(d, |c| c.round(d))
}

/// One account's month in one currency (only months where something was or is recurring).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountMonth {
    pub account_id: i64,
    pub currency: String,
    pub month: Month,
    pub opening: Decimal,
    pub closing: Decimal,
    pub movement: Option<Movement>,
}

impl AccountMonth {
    pub fn change(&self) -> Decimal {
        self.closing - self.opening
    }
}

/// One month of one currency's series.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthRow {
    pub month: Month,
    pub opening: Decimal,
    /// Indexed like [`Movement::ALL`].
    pub movements: [Decimal; 5],
    pub closing: Decimal,
}

impl MonthRow {
    pub fn movement(&self, m: Movement) -> Decimal {
        self.movements[m.slot()]
    }

    pub fn arr(&self) -> Decimal {
        self.closing * Decimal::from(12)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub currency: String,
    pub rows: Vec<MonthRow>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One series per currency, in code order.
    pub series: Vec<Series>,
    /// Account-months of the range with a non-zero opening or closing.
    pub accounts: Vec<AccountMonth>,
}

/// The report for `from..=to`. History before `from` is walked too, so "new" and
/// "reactivation" are told apart by everything the account ever had.
pub fn report(subs: &[SubTerms], from: Month, to: Month) -> Report {
    let Some(first) = subs.iter().map(|s| Month::of(s.start)).min() else {
        return Report::default();
    };
    // Month ends before the first start hold nothing; one month earlier gives a zero opening.
    let walk_from = first.min(from).prev();
    let mut by_key: BTreeMap<(String, i64), Vec<&SubTerms>> = BTreeMap::new();
    for s in subs {
        by_key
            .entry((s.currency.clone(), s.account_id))
            .or_default()
            .push(s);
    }
    let currencies: BTreeSet<&String> = by_key.keys().map(|(c, _)| c).collect();
    let months = from.until(to);
    let mut series: BTreeMap<String, Vec<MonthRow>> = currencies
        .into_iter()
        .map(|c| {
            let rows = months
                .iter()
                .map(|m| MonthRow {
                    month: *m,
                    opening: Decimal::ZERO,
                    movements: [Decimal::ZERO; 5],
                    closing: Decimal::ZERO,
                })
                .collect();
            (c.clone(), rows)
        })
        .collect();
    let mut accounts = Vec::new();
    for ((currency, account_id), list) in &by_key {
        let mrr_at = |m: Month| {
            let at = m.last_day();
            round(currency, list.iter().map(|s| subscription_mrr(s, at)).sum())
        };
        let mut had = false;
        let mut prev = mrr_at(walk_from);
        for m in walk_from.next().until(to) {
            let cur = mrr_at(m);
            let movement = Movement::classify(prev, cur, had);
            if m >= from {
                if let Some(rows) = series.get_mut(currency) {
                    if let Some(row) = rows.iter_mut().find(|r| r.month == m) {
                        row.opening += prev;
                        row.closing += cur;
                        if let Some(mv) = movement {
                            row.movements[mv.slot()] += cur - prev;
                        }
                    }
                }
                if !prev.is_zero() || !cur.is_zero() {
                    accounts.push(AccountMonth {
                        account_id: *account_id,
                        currency: currency.clone(),
                        month: m,
                        opening: prev,
                        closing: cur,
                        movement,
                    });
                }
            }
            had |= prev > Decimal::ZERO;
            prev = cur;
        }
    }
    accounts.sort_by(|a, b| {
        (&a.currency, a.month, a.account_id).cmp(&(&b.currency, b.month, b.account_id))
    });
    Report {
        series: series
            .into_iter()
            .map(|(currency, rows)| Series { currency, rows })
            .collect(),
        accounts,
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::Datelike;
    use proptest::prelude::*;

    use super::*;
    use crate::{
        catalog::{domain::PriceTerms, pricing::PriceModel},
        invoicing::domain::TaxCategory,
    };

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }
    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }
    fn month(s: &str) -> Month {
        Month::parse(s).unwrap()
    }
    fn item(model: PriceModel, per: i32, qty: Decimal, start: NaiveDate) -> ItemTerms {
        ItemTerms {
            item_id: 1,
            product_id: 1,
            price_version_id: 1,
            product_name: "P".into(),
            quantity: qty,
            discount_percent: None,
            discount_amount: None,
            start,
            end: None,
            terms: PriceTerms {
                model,
                interval_months: per,
                minimum_commit: None,
            },
            tax_category: TaxCategory::Standard,
            gl_account: "4000".into(),
        }
    }
    fn seats(unit: &str, qty: &str, start: &str) -> ItemTerms {
        item(
            PriceModel::PerUnit {
                unit_amount: d(unit),
            },
            1,
            d(qty),
            day(start),
        )
    }
    fn sub(account: i64, currency: &str, start: &str, items: Vec<ItemTerms>) -> SubTerms {
        SubTerms {
            account_id: account,
            currency: currency.into(),
            start: day(start),
            end: None,
            trial_end: None,
            interval_months: 1,
            items,
        }
    }

    #[test]
    fn a_quarterly_price_counts_a_third_and_discounts_apply() {
        let mut q = item(
            PriceModel::Flat { amount: d("300") },
            3,
            Decimal::ONE,
            day("2026-01-01"),
        );
        assert_eq!(item_mrr(&q, 3, day("2026-01-31")), d("100"));
        q.discount_percent = Some(d("10"));
        assert_eq!(item_mrr(&q, 3, day("2026-01-31")), d("90"));
        q.discount_percent = None;
        q.discount_amount = Some(d("30"));
        assert_eq!(item_mrr(&q, 3, day("2026-01-31")), d("90"));
        let usage = item(
            PriceModel::Usage {
                unit_amount: d("1"),
                included: d("0"),
            },
            1,
            d("50"),
            day("2026-01-01"),
        );
        assert_eq!(item_mrr(&usage, 1, day("2026-01-31")), Decimal::ZERO);
    }

    #[test]
    fn movements_follow_an_account_through_its_life() {
        let mut up = seats("10", "2", "2026-01-10");
        up.end = Some(day("2026-02-14"));
        let mut after = seats("10", "5", "2026-02-15");
        after.end = Some(day("2026-03-09"));
        let down = {
            let mut i = seats("10", "3", "2026-03-10");
            i.end = Some(day("2026-04-30"));
            i
        };
        let mut s = sub(7, "EUR", "2026-01-10", vec![up, after, down]);
        s.end = Some(day("2026-04-20"));
        let back = sub(7, "EUR", "2026-06-01", vec![seats("10", "1", "2026-06-01")]);
        let r = report(&[s, back], month("2026-01"), month("2026-06"));
        let kinds: Vec<(String, Option<Movement>, Decimal)> = r
            .accounts
            .iter()
            .map(|a| (a.month.to_string(), a.movement, a.change()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("2026-01".into(), Some(Movement::New), d("20")),
                ("2026-02".into(), Some(Movement::Expansion), d("30")),
                ("2026-03".into(), Some(Movement::Contraction), d("-20")),
                ("2026-04".into(), Some(Movement::Churn), d("-30")),
                ("2026-06".into(), Some(Movement::Reactivation), d("10")),
            ]
        );
        let rows = &r.series[0].rows;
        assert_eq!(rows[5].closing, d("10"));
        assert_eq!(rows[5].arr(), d("120"));
    }

    #[test]
    fn trials_count_nothing_until_they_end_and_currencies_stay_apart() {
        let mut t = sub(
            1,
            "EUR",
            "2026-01-05",
            vec![seats("100", "1", "2026-01-05")],
        );
        t.trial_end = Some(day("2026-02-05"));
        let usd = sub(1, "USD", "2026-01-01", vec![seats("7", "1", "2026-01-01")]);
        let r = report(&[t, usd], month("2026-01"), month("2026-02"));
        assert_eq!(r.series.len(), 2);
        assert_eq!(r.series[0].currency, "EUR");
        assert_eq!(r.series[0].rows[0].closing, Decimal::ZERO);
        assert_eq!(r.series[0].rows[1].movement(Movement::New), d("100"));
        assert_eq!(r.series[1].rows[1].closing, d("7"));
    }

    fn arb_sub() -> impl Strategy<Value = SubTerms> {
        (
            0i64..4,
            prop_oneof![Just("EUR"), Just("USD"), Just("JPY")],
            0u32..24,
            proptest::option::of(0u32..30),
            proptest::collection::vec((0u32..30, proptest::option::of(0u32..20), 0u32..50), 1..4),
            prop_oneof![Just(1i32), Just(3), Just(12)],
        )
            .prop_map(|(acc, cur, start, len, items, per)| {
                let base = month("2025-01");
                let at = |n: u32| {
                    (0..n)
                        .fold(base, |m, _| m.next())
                        .first_day()
                        .with_day(1 + n % 28)
                        .unwrap()
                };
                let start_day = at(start);
                SubTerms {
                    account_id: acc,
                    currency: cur.into(),
                    start: start_day,
                    end: len.map(|l| at(start + l)),
                    trial_end: None,
                    interval_months: 1,
                    items: items
                        .into_iter()
                        .map(|(s, l, q)| {
                            let mut i = item(
                                PriceModel::PerUnit {
                                    unit_amount: d("9.99"),
                                },
                                per,
                                Decimal::from(q),
                                at(start + s),
                            );
                            i.end = l.map(|l| at(start + s + l));
                            i
                        })
                        .collect(),
                }
            })
    }

    proptest! {
        #[test]
        fn movements_add_up_to_the_change_in_mrr(
            subs in proptest::collection::vec(arb_sub(), 0..8),
            from in 0u32..40,
            len in 0u32..24,
        ) {
            let from = (0..from).fold(month("2025-01"), |m, _| m.next());
            let to = (0..len).fold(from, |m, _| m.next());
            let r = report(&subs, from, to);
            for s in &r.series {
                let first = &s.rows[0];
                let last = &s.rows[s.rows.len() - 1];
                let sum: Decimal = s.rows.iter().flat_map(|r| r.movements).sum();
                prop_assert_eq!(sum, last.closing - first.opening, "{}", s.currency);
                for w in s.rows.windows(2) {
                    prop_assert_eq!(w[0].closing, w[1].opening);
                }
                for row in &s.rows {
                    prop_assert!(row.closing >= Decimal::ZERO);
                    let accounts: Decimal = r.accounts.iter()
                        .filter(|a| a.currency == s.currency && a.month == row.month)
                        .map(|a| a.closing).sum();
                    prop_assert_eq!(accounts, row.closing);
                }
            }
        }
    }
}
