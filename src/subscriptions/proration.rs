//! Mid-period amendments to items billed in advance, exact to the day.
//!
//! Rules: the unused remainder of what was billed is credited at the old amount and charged again
//! at the new amount, both as (days of [effective, service end)) / (days of the nominal cycle), so
//! a stub is amended at the same daily rate it was billed at. Results are unrounded: round credit
//! and charge separately with `round_money` when they become invoice lines, so each line stands on its own.
//! Cancelling at the end of the term needs no proration, as no billed day goes unused.

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};

use super::periods::{prorate, BillingPeriod, Period};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proration {
    /// [effective, nominal.end) ∩ billed service; `None` when nothing billed is left.
    pub remaining: Option<Period>,
    /// Unused part of what was billed at the old amount (≥ 0 for non-negative amounts).
    pub credit: Decimal,
    /// Remaining part at the new amount (≥ 0 for non-negative amounts).
    pub charge: Decimal,
}

impl Proration {
    /// charge − credit: positive means the customer owes more.
    pub fn net(&self) -> Decimal {
        self.charge - self.credit
    }

    fn none() -> Self {
        Self {
            remaining: None,
            credit: Decimal::ZERO,
            charge: Decimal::ZERO,
        }
    }
}

/// Change of an in-advance item from `old_amount` to `new_amount` (both full-period amounts for
/// `billed.nominal`) effective `effective`. Effective on or before the service start credits the
/// whole billed amount and charges the new one for the whole service period; effective on or after
/// the service end yields zeros.
pub fn amend(
    billed: &BillingPeriod,
    old_amount: Decimal,
    new_amount: Decimal,
    effective: NaiveDate,
) -> Proration {
    let service = billed.service;
    let Some(remaining) = Period::new(effective.max(service.start), service.end) else {
        return Proration::none();
    };
    Proration {
        remaining: Some(remaining),
        credit: prorate(old_amount, &remaining, &billed.nominal),
        charge: prorate(new_amount, &remaining, &billed.nominal),
    }
}

/// Cancel now = amend to zero: credits the unused days from `effective`.
/// Cancelling at the end of the term is `effective == billed.service.end`, which yields zeros:
/// the period was fully used, so there is nothing to credit and the next period is simply not
/// billed.
pub fn cancel_now(billed: &BillingPeriod, old_amount: Decimal, effective: NaiveDate) -> Proration {
    amend(billed, old_amount, Decimal::ZERO, effective)
}

/// Round half away from zero to `exponent` decimals (the currency's minor units).
pub fn round_money(amount: Decimal, exponent: u32) -> Decimal {
    amount.round_dp_with_strategy(exponent, RoundingStrategy::MidpointAwayFromZero)
}

#[cfg(test)]
mod tests {
    use super::super::periods::Schedule;
    use super::*;
    use proptest::prelude::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn monthly(start: &str, anchor_day: u32) -> Schedule {
        Schedule {
            start: date(start),
            anchor_day,
            interval_months: 1,
        }
    }

    fn first_period(s: &Schedule) -> BillingPeriod {
        s.periods(date("2100-01-01"), None)[0]
    }

    fn cents(amount: Decimal) -> Decimal {
        round_money(amount, 2)
    }

    #[test]
    fn monthly_stubs_prorate_by_days() {
        let cases = [
            ("2027-02-15", 14, 28, "50.00"), // 28-day month
            ("2026-04-16", 15, 30, "50.00"), // 30-day month
            ("2026-05-17", 15, 31, "48.39"), // 31-day month
            ("2028-02-15", 15, 29, "51.72"), // leap February
        ];
        for (start, days, cycle, want) in cases {
            let b = first_period(&monthly(start, 1));
            assert_eq!(
                (b.service.days(), b.nominal.days()),
                (days, cycle),
                "{start}"
            );
            let billed = prorate(dec("100.00"), &b.service, &b.nominal);
            assert_eq!(cents(billed), dec(want), "{start}");
            assert_eq!(cents(billed).to_string(), want);
        }
    }

    #[test]
    fn quarterly_stub_is_17_of_92() {
        let s = Schedule {
            start: date("2026-01-15"),
            anchor_day: 1,
            interval_months: 3,
        };
        let b = first_period(&s);
        assert_eq!(prorate(dec("920"), &b.service, &b.nominal), dec("170"));
    }

    #[test]
    fn upgrade_mid_period() {
        let b = first_period(&monthly("2026-04-01", 1));
        let p = amend(&b, dec("100.00"), dec("150.00"), date("2026-04-16"));
        assert_eq!(
            p.remaining,
            Period::new(date("2026-04-16"), date("2026-05-01"))
        );
        assert_eq!(
            (cents(p.credit), cents(p.charge)),
            (dec("50.00"), dec("75.00"))
        );
        assert_eq!(cents(p.net()), dec("25.00"));
    }

    #[test]
    fn downgrade_mid_period_is_net_negative() {
        let b = first_period(&monthly("2026-05-01", 1));
        let p = amend(&b, dec("150.00"), dec("100.00"), date("2026-05-11"));
        // 21 of 31 days remain.
        assert_eq!(cents(p.credit), dec("101.61"));
        assert_eq!(cents(p.charge), dec("67.74"));
        assert_eq!(cents(p.net()), dec("-33.87"));
    }

    #[test]
    fn amend_within_a_stub_uses_the_nominal_daily_rate() {
        let b = first_period(&monthly("2026-04-16", 1));
        let p = amend(&b, dec("300"), dec("600"), date("2026-04-26"));
        assert_eq!(
            (p.credit, p.charge, p.net()),
            (dec("50"), dec("100"), dec("50"))
        );
    }

    #[test]
    fn effective_outside_the_service_period() {
        let b = first_period(&monthly("2026-04-16", 1));
        let early = amend(&b, dec("300"), dec("600"), date("2026-03-01"));
        assert_eq!(early.remaining, Some(b.service));
        assert_eq!((early.credit, early.charge), (dec("150"), dec("300")));
        let late = amend(&b, dec("300"), dec("600"), date("2026-05-01"));
        assert_eq!(
            late,
            Proration {
                remaining: None,
                credit: dec("0"),
                charge: dec("0")
            }
        );
    }

    #[test]
    fn cancel_now_mid_period() {
        let b = first_period(&monthly("2026-04-01", 1));
        let p = cancel_now(&b, dec("100.00"), date("2026-04-21"));
        assert_eq!(cents(p.credit), dec("33.33"));
        assert_eq!(p.charge, Decimal::ZERO);
        assert_eq!(cents(p.net()), dec("-33.33"));
    }

    #[test]
    fn cancel_at_end_of_term_prorates_nothing() {
        let b = first_period(&monthly("2026-04-01", 1));
        let p = cancel_now(&b, dec("100.00"), b.service.end);
        assert_eq!(p.remaining, None);
        assert_eq!(
            (p.credit, p.charge, p.net()),
            (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO)
        );
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round_money(dec("2.345"), 2), dec("2.35"));
        assert_eq!(round_money(dec("-2.345"), 2), dec("-2.35"));
        assert_eq!(round_money(dec("2.344999"), 2), dec("2.34"));
        assert_eq!(round_money(dec("12.5"), 0), dec("13"));
        assert_eq!(round_money(dec("1.2345"), 3), dec("1.235"));
    }

    proptest! {
        #[test]
        fn amend_to_same_amount_nets_zero(
            start in 0i64..10_000, anchor in 1u32..=31, interval in 1u32..=12,
            cents in 0i64..100_000_000, offset in -40i64..400,
        ) {
            let start = date("2020-01-01") + chrono::Duration::days(start);
            let s = Schedule { start, anchor_day: anchor, interval_months: interval };
            let b = first_period(&s);
            let amount = Decimal::new(cents, 2);
            let p = amend(&b, amount, amount, start + chrono::Duration::days(offset));
            prop_assert_eq!(p.net(), Decimal::ZERO);
            prop_assert!(p.credit >= Decimal::ZERO);
            prop_assert!(p.credit <= prorate(amount, &b.service, &b.nominal));
        }
    }
}
