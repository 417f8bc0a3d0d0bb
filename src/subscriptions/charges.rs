//! What a subscription owes for one billing period, free of I/O.
//!
//! Rules: each item row is valid on its own dates (amendments and ramps end one row and start
//! the next), so a period is charged per row over the days the row covers, prorated by day
//! against the nominal cycle. Trial days are never charged. Recurring prices are quoted per
//! `interval_months` and scaled to the subscription's cycle; usage is charged on what was
//! recorded: in arrears with the period itself, or on the next invoice when the plan bills in
//! advance. A minimum commit lifts an item's charge for the period to the (prorated) minimum.

use chrono::{Days, NaiveDate};
use rust_decimal::Decimal;

use super::periods::{prorate, BillingPeriod, Period, Schedule};
use crate::{
    catalog::domain::PriceTerms, catalog::pricing::commit_top_up, invoicing::domain::TaxCategory,
};

text_enum!(Timing {
    Advance = "advance" / "In advance",
    Arrears = "arrears" / "In arrears",
});

text_enum!(LineKind {
    Recurring = "recurring" / "Recurring",
    Usage = "usage" / "Usage",
    MinimumCommit = "minimum_commit" / "Minimum commit",
    ProrationCredit = "proration_credit" / "Proration credit",
    ProrationCharge = "proration_charge" / "Proration charge",
    OneOff = "one_off" / "One-off",
    Credit = "credit" / "Credit",
});

#[derive(Debug, Clone)]
pub struct ItemTerms {
    pub item_id: i64,
    pub product_id: i64,
    pub price_version_id: i64,
    pub product_name: String,
    pub quantity: Decimal,
    pub discount_percent: Option<Decimal>,
    pub discount_amount: Option<Decimal>,
    pub start: NaiveDate,
    /// Last day (inclusive).
    pub end: Option<NaiveDate>,
    pub terms: PriceTerms,
    pub tax_category: TaxCategory,
    pub gl_account: String,
}

impl ItemTerms {
    /// The days the row is valid, as a half-open range.
    pub fn validity(&self) -> Option<Period> {
        let end = match self.end {
            Some(e) => e.checked_add_days(Days::new(1))?,
            None => NaiveDate::MAX,
        };
        Period::new(self.start, end)
    }

    /// The recurring amount of a whole cycle of `interval_months`, unrounded.
    pub fn cycle_amount(&self, interval_months: u32) -> Decimal {
        scale(
            self.terms.model.amount(self.quantity),
            &self.terms,
            interval_months,
        )
    }
}

fn scale(amount: Decimal, terms: &PriceTerms, interval_months: u32) -> Decimal {
    let quoted = Decimal::from(terms.interval_months.max(1));
    amount * Decimal::from(interval_months) / quoted
}

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub schedule: Schedule,
    /// Last day of service (inclusive).
    pub end: Option<NaiveDate>,
    pub trial_end: Option<NaiveDate>,
    pub timing: Timing,
}

impl Plan {
    fn end_exclusive(&self) -> Option<NaiveDate> {
        self.end.and_then(|e| e.checked_add_days(Days::new(1)))
    }

    /// Periods not yet invoiced (`billed_through` is the cursor) that are due on `today`: in
    /// advance once they start, in arrears once they end. Catch-up after downtime is the
    /// same call with an older cursor.
    pub fn due_periods(&self, billed_through: NaiveDate, today: NaiveDate) -> Vec<BillingPeriod> {
        let until = match self.timing {
            Timing::Advance => today.checked_add_days(Days::new(1)).unwrap_or(today),
            Timing::Arrears => today,
        };
        self.schedule
            .periods(until, self.end_exclusive())
            .into_iter()
            .filter(|p| p.service.start >= billed_through)
            .filter(|p| self.timing == Timing::Advance || p.service.end <= today)
            .collect()
    }

    /// The period whose usage is charged on the invoice for `bp`.
    pub fn usage_period(&self, bp: &BillingPeriod) -> Option<BillingPeriod> {
        match self.timing {
            Timing::Arrears => Some(*bp),
            Timing::Advance => {
                let before = bp.service.start.pred_opt()?;
                self.schedule
                    .period_containing(before, self.end_exclusive())
            }
        }
    }

    /// The chargeable part of a period: trial days are free.
    fn chargeable(&self, p: &Period) -> Option<Period> {
        match self.trial_end {
            Some(t) => Period::new(p.start.max(t), p.end),
            None => Some(*p),
        }
    }
}

/// An invoice line before rounding.
#[derive(Debug, Clone, PartialEq)]
pub struct DraftLine {
    pub kind: LineKind,
    pub description: String,
    pub product_id: Option<i64>,
    pub item_id: Option<i64>,
    pub price_version_id: Option<i64>,
    pub period: Option<Period>,
    pub quantity: Decimal,
    pub amount: Decimal,
    pub discount: Decimal,
    pub tax_category: TaxCategory,
    pub gl_account: Option<String>,
}

impl DraftLine {
    pub fn unit_price(&self) -> Decimal {
        if self.quantity.is_zero() {
            self.amount
        } else {
            (self.amount / self.quantity).round_dp(4)
        }
    }
}

fn discount_for(
    item: &ItemTerms,
    amount: Decimal,
    fraction_of: impl Fn(Decimal) -> Decimal,
) -> Decimal {
    match (item.discount_percent, item.discount_amount) {
        (Some(p), _) => amount * p / Decimal::ONE_HUNDRED,
        (None, Some(a)) => fraction_of(a).min(amount.max(Decimal::ZERO)),
        _ => Decimal::ZERO,
    }
}

fn line(
    kind: LineKind,
    item: &ItemTerms,
    description: String,
    period: Period,
    quantity: Decimal,
    amount: Decimal,
    discount: Decimal,
) -> DraftLine {
    DraftLine {
        kind,
        description,
        product_id: Some(item.product_id),
        item_id: Some(item.item_id),
        price_version_id: Some(item.price_version_id),
        period: Some(period),
        quantity,
        amount,
        discount,
        tax_category: item.tax_category,
        gl_account: Some(item.gl_account.clone()),
    }
}

/// Lines for the invoice of `bp`. `usage(product_id, period)` sums recorded quantities.
pub fn lines_for(
    plan: &Plan,
    bp: &BillingPeriod,
    items: &[ItemTerms],
    usage: &dyn Fn(i64, &Period) -> Decimal,
) -> Vec<DraftLine> {
    let months = plan.schedule.interval_months;
    let mut out = Vec::new();
    let window = plan.chargeable(&bp.service);
    let usage_bp = plan.usage_period(bp);
    let usage_window = usage_bp.and_then(|u| plan.chargeable(&u.service));
    for item in items {
        let Some(valid) = item.validity() else {
            continue;
        };
        let mut charged = Decimal::ZERO;
        let mut commit_span: Option<(Period, Period)> = None;
        if item.terms.model.is_usage() {
            let (Some(ub), Some(uw)) = (usage_bp, usage_window) else {
                continue;
            };
            let Some(seg) = uw.intersect(&valid) else {
                continue;
            };
            let qty = usage(item.product_id, &seg);
            let amount = item.terms.model.amount(qty);
            let discount = discount_for(item, amount, |a| prorate(a, &seg, &ub.nominal));
            let desc = format!("{} (usage)", item.product_name);
            out.push(line(
                LineKind::Usage,
                item,
                desc,
                seg,
                qty,
                amount,
                discount,
            ));
            charged += amount - discount;
            commit_span = Some((seg, ub.nominal));
        } else if let Some(seg) = window.and_then(|w| w.intersect(&valid)) {
            let full = item.cycle_amount(months);
            let amount = if seg == bp.nominal {
                full
            } else {
                prorate(full, &seg, &bp.nominal)
            };
            let discount = discount_for(item, amount, |a| prorate(a, &seg, &bp.nominal));
            let desc = if seg == bp.nominal {
                item.product_name.clone()
            } else {
                format!(
                    "{} (prorated {} of {} days)",
                    item.product_name,
                    seg.days(),
                    bp.nominal.days()
                )
            };
            out.push(line(
                LineKind::Recurring,
                item,
                desc,
                seg,
                item.quantity,
                amount,
                discount,
            ));
            charged += amount - discount;
            commit_span = Some((seg, bp.nominal));
        }
        if let (Some(min), Some((seg, nominal))) = (item.terms.minimum_commit, commit_span) {
            let minimum = prorate(scale(min, &item.terms, months), &seg, &nominal);
            let top_up = commit_top_up(charged, minimum);
            if top_up > Decimal::ZERO {
                let desc = format!("{} minimum commit top-up", item.product_name);
                out.push(line(
                    LineKind::MinimumCommit,
                    item,
                    desc,
                    seg,
                    Decimal::ONE,
                    top_up,
                    Decimal::ZERO,
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::catalog::pricing::{PriceModel, Tier};

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }
    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }
    fn item(id: i64, model: PriceModel, qty: &str, start: &str, end: Option<&str>) -> ItemTerms {
        ItemTerms {
            item_id: id,
            product_id: id,
            price_version_id: id,
            product_name: format!("P{id}"),
            quantity: d(qty),
            discount_percent: None,
            discount_amount: None,
            start: day(start),
            end: end.map(day),
            terms: PriceTerms {
                model,
                interval_months: 1,
                minimum_commit: None,
            },
            tax_category: TaxCategory::Standard,
            gl_account: "4000".into(),
        }
    }
    fn plan(start: &str, anchor: u32, months: u32, timing: Timing) -> Plan {
        Plan {
            schedule: Schedule {
                start: day(start),
                anchor_day: anchor,
                interval_months: months,
            },
            end: None,
            trial_end: None,
            timing,
        }
    }
    const NO_USAGE: &dyn Fn(i64, &Period) -> Decimal = &|_, _| Decimal::ZERO;

    #[test]
    fn ramp_rows_split_a_period_at_their_boundary() {
        let p = plan("2026-01-01", 1, 1, Timing::Advance);
        let seats = |a: &str| PriceModel::PerUnit { unit_amount: d(a) };
        let items = vec![
            item(1, seats("10"), "30", "2026-01-01", Some("2026-03-15")),
            item(2, seats("12"), "30", "2026-03-16", None),
        ];
        let march = p.due_periods(day("2026-03-01"), day("2026-03-01"));
        assert_eq!(march.len(), 1);
        let lines = lines_for(&p, &march[0], &items, NO_USAGE);
        // 300 × 15/31 + 360 × 16/31
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].amount.round_dp(2), d("145.16"));
        assert_eq!(lines[1].amount.round_dp(2), d("185.81"));
        // The period before the ramp is charged on the old row only.
        let feb = p.due_periods(day("2026-02-01"), day("2026-02-01"));
        let lines = lines_for(&p, &feb[0], &items, NO_USAGE);
        assert_eq!((lines.len(), lines[0].amount), (1, d("300")));
    }

    #[test]
    fn trial_days_are_free_and_quarterly_scales_a_monthly_price() {
        let mut p = plan("2026-01-01", 1, 3, Timing::Advance);
        p.trial_end = Some(day("2026-01-15"));
        let items = vec![item(
            1,
            PriceModel::Flat { amount: d("100") },
            "1",
            "2026-01-01",
            None,
        )];
        let due = p.due_periods(day("2026-01-01"), day("2026-04-01"));
        assert_eq!(due.len(), 2);
        let q1 = lines_for(&p, &due[0], &items, NO_USAGE);
        // 300 for the quarter, 76 of its 90 days charged.
        assert_eq!(q1[0].amount.round_dp(2), d("253.33"));
        assert_eq!(lines_for(&p, &due[1], &items, NO_USAGE)[0].amount, d("300"));
    }

    #[test]
    fn usage_goes_on_the_next_invoice_in_advance_and_the_same_one_in_arrears() {
        let usage_model = PriceModel::Usage {
            unit_amount: d("2.5"),
            included: d("4"),
        };
        let items = vec![item(1, usage_model, "1", "2026-01-01", None)];
        let used: &dyn Fn(i64, &Period) -> Decimal = &|_, p| {
            if p.start == day("2026-01-01") {
                d("10")
            } else {
                d("0")
            }
        };
        let adv = plan("2026-01-01", 1, 1, Timing::Advance);
        let due = adv.due_periods(day("2026-01-01"), day("2026-02-01"));
        assert!(lines_for(&adv, &due[0], &items, used).is_empty());
        let feb = lines_for(&adv, &due[1], &items, used);
        assert_eq!((feb[0].quantity, feb[0].amount), (d("10"), d("15")));
        let arr = plan("2026-01-01", 1, 1, Timing::Arrears);
        assert!(arr
            .due_periods(day("2026-01-01"), day("2026-01-31"))
            .is_empty());
        let due = arr.due_periods(day("2026-01-01"), day("2026-02-01"));
        assert_eq!(lines_for(&arr, &due[0], &items, used)[0].amount, d("15"));
    }

    #[test]
    fn minimum_commit_tops_up_and_discounts_apply() {
        let tiers = vec![
            Tier {
                up_to: Some(d("10")),
                unit_amount: d("5"),
                flat_amount: d("0"),
            },
            Tier {
                up_to: None,
                unit_amount: d("4"),
                flat_amount: d("0"),
            },
        ];
        let mut i = item(1, PriceModel::Tiered { tiers }, "3", "2026-01-01", None);
        i.terms.minimum_commit = Some(d("50"));
        i.discount_percent = Some(d("10"));
        let p = plan("2026-01-01", 1, 1, Timing::Advance);
        let due = p.due_periods(day("2026-01-01"), day("2026-01-01"));
        let lines = lines_for(&p, &due[0], &[i], NO_USAGE);
        assert_eq!((lines[0].amount, lines[0].discount), (d("15"), d("1.5")));
        assert_eq!(
            (lines[1].kind, lines[1].amount),
            (LineKind::MinimumCommit, d("36.5"))
        );
    }
}
