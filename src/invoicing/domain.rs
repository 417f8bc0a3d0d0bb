//! Invoice arithmetic, free of I/O. Rules (ARCHITECTURE.md): every line is rounded to the
//! currency's minor unit half away from zero (amount, discount, then tax on the rounded net);
//! the invoice total is the sum of rounded lines plus the sum of rounded line taxes, so a
//! document always adds up to the cent when re-added by hand or by an accounting system.

use rust_decimal::Decimal;

use crate::money::Currency;

text_enum!(TaxCategory {
    Standard = "standard" / "Standard rate",
    Reduced = "reduced" / "Reduced rate",
    Zero = "zero" / "Zero rated",
    Exempt = "exempt" / "Exempt",
});

text_enum!(InvoiceStatus {
    Draft = "draft" / "Draft",
    Open = "open" / "Open",
    Paid = "paid" / "Paid",
    Void = "void" / "Void",
    Uncollectible = "uncollectible" / "Uncollectible",
});

/// The tenant's tax rates in percent, by product category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaxRates {
    pub standard: Decimal,
    pub reduced: Decimal,
}

/// The paying account's tax profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaxProfile {
    Standard,
    /// The account's own rate replaces the standard and reduced rates.
    Custom(Decimal),
    Exempt,
}

impl TaxProfile {
    pub fn from_account(mode: &str, rate: Option<Decimal>) -> Self {
        match (mode, rate) {
            ("exempt", _) => TaxProfile::Exempt,
            ("custom_rate", Some(r)) => TaxProfile::Custom(r),
            _ => TaxProfile::Standard,
        }
    }

    /// Percent charged on a line of `category`.
    pub fn rate(self, category: TaxCategory, rates: TaxRates) -> Decimal {
        match (self, category) {
            (TaxProfile::Exempt, _) | (_, TaxCategory::Zero | TaxCategory::Exempt) => Decimal::ZERO,
            (TaxProfile::Custom(r), _) => r,
            (TaxProfile::Standard, TaxCategory::Standard) => rates.standard,
            (TaxProfile::Standard, TaxCategory::Reduced) => rates.reduced,
        }
    }
}

/// One line's rounded amounts. `amount` is before discount; `net = amount - discount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LineAmounts {
    pub amount: Decimal,
    pub discount: Decimal,
    pub net: Decimal,
    pub tax: Decimal,
}

/// Rounds a line: the discount never exceeds the amount (nor flips its sign), and tax is
/// computed on the rounded net.
pub fn line(
    currency: Currency,
    amount: Decimal,
    discount: Decimal,
    rate_percent: Decimal,
) -> LineAmounts {
    let amount = currency.round(amount);
    let mut discount = currency.round(discount.max(Decimal::ZERO));
    if discount > amount.abs() {
        discount = amount.abs();
    }
    let discount = if amount.is_sign_negative() {
        -discount
    } else {
        discount
    };
    let net = amount - discount;
    let tax = currency.round(net * rate_percent / Decimal::ONE_HUNDRED);
    LineAmounts {
        amount,
        discount,
        net,
        tax,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub subtotal: Decimal,
    pub discount_total: Decimal,
    pub tax_total: Decimal,
    pub total: Decimal,
}

pub fn totals<'a>(lines: impl IntoIterator<Item = &'a LineAmounts>) -> Totals {
    let mut t = Totals::default();
    for l in lines {
        t.subtotal += l.amount;
        t.discount_total += l.discount;
        t.tax_total += l.tax;
    }
    t.total = t.subtotal - t.discount_total + t.tax_total;
    t
}

/// How a credit note of `credit` settles against its invoice's open `due`: the part up to the
/// amount due reduces the invoice; the rest becomes account credit.
pub fn split_credit(due: Decimal, credit: Decimal) -> (Decimal, Decimal) {
    let to_invoice = credit.min(due).max(Decimal::ZERO);
    (to_invoice, credit - to_invoice)
}

/// An invoice's balance from its settlement columns; never negative.
pub fn amount_due(
    total: Decimal,
    credit_applied: Decimal,
    credited: Decimal,
    paid: Decimal,
) -> Decimal {
    (total - credit_applied - credited - paid).max(Decimal::ZERO)
}

/// The status an open or paid invoice has with this balance; void and uncollectible stay.
pub fn status_for(current: &str, due: Decimal) -> &str {
    match current {
        "open" | "paid" if due.is_zero() => "paid",
        "open" | "paid" => "open",
        other => other,
    }
}

/// Formats a gapless document number: prefix + at least six digits.
pub fn document_number(prefix: &str, value: i64) -> String {
    format!("{prefix}{value:06}")
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn tax_is_rounded_per_line_on_the_rounded_net() {
        let eur = Currency::parse("EUR").unwrap();
        // 3 lines of 0.125 net at 20%: each rounds to 0.13 and its tax 0.026 to 0.03.
        let lines: Vec<_> = (0..3)
            .map(|_| line(eur, d("0.125"), d("0"), d("20")))
            .collect();
        assert_eq!(
            lines[0],
            LineAmounts {
                amount: d("0.13"),
                discount: d("0"),
                net: d("0.13"),
                tax: d("0.03")
            }
        );
        let t = totals(&lines);
        assert_eq!(t.subtotal, d("0.39"));
        assert_eq!(t.tax_total, d("0.09"));
        // Taxing the rounded sum instead would give 0.08: per-line rounding is the rule.
        assert_eq!(t.total, d("0.48"));
    }

    #[test]
    fn discounts_are_capped_and_follow_the_sign() {
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(line(usd, d("10"), d("15"), d("0")).net, d("0"));
        let credit = line(usd, d("-10"), d("2.5"), d("10"));
        assert_eq!(
            (credit.discount, credit.net, credit.tax),
            (d("-2.50"), d("-7.50"), d("-0.75"))
        );
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(line(jpy, d("1000.5"), d("0"), d("10")).tax, d("100"));
    }

    #[test]
    fn tax_profiles_pick_the_rate() {
        let rates = TaxRates {
            standard: d("20"),
            reduced: d("5"),
        };
        assert_eq!(
            TaxProfile::Standard.rate(TaxCategory::Reduced, rates),
            d("5")
        );
        assert_eq!(
            TaxProfile::Custom(d("7.7")).rate(TaxCategory::Standard, rates),
            d("7.7")
        );
        assert_eq!(
            TaxProfile::Custom(d("7.7")).rate(TaxCategory::Zero, rates),
            d("0")
        );
        assert_eq!(
            TaxProfile::Exempt.rate(TaxCategory::Standard, rates),
            d("0")
        );
        assert_eq!(
            TaxProfile::from_account("custom_rate", Some(d("3"))),
            TaxProfile::Custom(d("3"))
        );
    }

    #[test]
    fn balance_and_status_follow_the_settlements() {
        assert_eq!(amount_due(d("120"), d("20"), d("30"), d("70")), d("0"));
        assert_eq!(amount_due(d("120"), d("0"), d("0"), d("50")), d("70"));
        assert_eq!(status_for("open", d("0")), "paid");
        assert_eq!(status_for("paid", d("5")), "open");
        assert_eq!(status_for("void", d("0")), "void");
    }

    #[test]
    fn credit_splits_between_invoice_and_account_credit() {
        assert_eq!(split_credit(d("100"), d("30")), (d("30"), d("0")));
        assert_eq!(split_credit(d("20"), d("30")), (d("20"), d("10")));
        assert_eq!(split_credit(d("0"), d("30")), (d("0"), d("30")));
        assert_eq!(document_number("INV-", 42), "INV-000042");
    }
}
