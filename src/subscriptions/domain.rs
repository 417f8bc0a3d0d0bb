//! Parsing the subscription form.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use super::{charges::Timing, periods::Schedule};
use crate::{
    accounts::domain::{Fields, TermsKind},
    error::FieldErrors,
};

text_enum!(Collection {
    SendInvoice = "send_invoice" / "Send invoice",
    AutoCharge = "auto_charge" / "Charge automatically",
});

/// Billing cycles offered in the form; "custom" uses `every_months`.
pub const CYCLES: &[(&str, &str)] = &[
    ("1", "Monthly"),
    ("3", "Quarterly"),
    ("6", "Semi-annual"),
    ("12", "Annual"),
    ("custom", "Every N months"),
];

/// How many item rows the new-subscription form offers.
pub const FORM_ITEMS: usize = 4;

#[derive(Debug, Clone, PartialEq)]
pub struct ItemInput {
    pub price_id: i64,
    pub quantity: Decimal,
    pub discount_percent: Option<Decimal>,
    pub discount_amount: Option<Decimal>,
    pub end_date: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionInput {
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub trial_end: Option<NaiveDate>,
    pub interval_months: u32,
    pub anchor_day: u32,
    pub timing: Timing,
    pub term_months: i32,
    pub auto_renew: bool,
    pub po_number: Option<String>,
    pub collection: Collection,
    pub terms: Option<(TermsKind, i32)>,
    pub notes: String,
    pub items: Vec<ItemInput>,
}

impl SubscriptionInput {
    pub fn schedule(&self) -> Schedule {
        Schedule {
            start: self.start_date,
            anchor_day: self.anchor_day,
            interval_months: self.interval_months,
        }
    }

    /// Without auto-renewal and without an explicit end, the subscription ends with its term.
    pub fn apply_term_end(&mut self) {
        if self.auto_renew || self.end_date.is_some() {
            return;
        }
        let months = u32::try_from(self.term_months).unwrap_or(12);
        self.end_date = self
            .start_date
            .checked_add_months(chrono::Months::new(months))
            .and_then(|d| d.pred_opt());
    }

    pub fn parse(f: &Fields, today: NaiveDate) -> Result<Self, FieldErrors> {
        let mut e = FieldErrors::default();
        let date = |name: &str, e: &mut FieldErrors| {
            f.date(name).map_err(|m| e.add(name, m)).ok().flatten()
        };
        let start_date = date("start_date", &mut e).unwrap_or(today);
        let end_date = date("end_date", &mut e);
        let trial_end = date("trial_end", &mut e);
        if end_date.is_some_and(|d| d < start_date) {
            e.add(
                "end_date",
                "The end date must be on or after the start date.",
            );
        }
        if trial_end.is_some_and(|d| d <= start_date) {
            e.add("trial_end", "The trial must end after the start date.");
        }
        let interval_months = match f.get("cycle") {
            "custom" => f.get("every_months").parse::<u32>().ok(),
            other => other.parse::<u32>().ok(),
        };
        let interval_months = match interval_months {
            Some(n) if (1..=36).contains(&n) => n,
            _ => {
                e.add("every_months", "Bill every 1 to 36 months.");
                1
            }
        };
        let anchor_day = match f.get("anchor_day") {
            "" => start_date.day(),
            raw => match raw.parse::<u32>() {
                Ok(n) if (1..=31).contains(&n) => n,
                _ => {
                    e.add(
                        "anchor_day",
                        "The anchor day is a day of the month, 1 to 31.",
                    );
                    1
                }
            },
        };
        let timing = Timing::parse(f.get("timing")).unwrap_or_else(|| {
            e.add("timing", "Choose in advance or in arrears.");
            Timing::Advance
        });
        let term_months = match f.get("term_months").parse::<i32>() {
            Ok(n) if (1..=120).contains(&n) => n,
            _ => {
                e.add("term_months", "The term is 1 to 120 months.");
                12
            }
        };
        let collection =
            Collection::parse(f.get("collection_method")).unwrap_or(Collection::SendInvoice);
        let terms = match f.get("terms_kind") {
            "" => None,
            raw => match (TermsKind::parse(raw), f.get("terms_days").parse::<i32>()) {
                (Some(TermsKind::DueOnReceipt), _) => Some((TermsKind::DueOnReceipt, 0)),
                (Some(k), Ok(d)) if (0..=365).contains(&d) => Some((k, d)),
                _ => {
                    e.add("terms_days", "Enter the payment terms in days (0 to 365).");
                    None
                }
            },
        };
        let po = f.get("po_number");
        if po.chars().count() > 100 {
            e.add("po_number", "Keep the PO number under 100 characters.");
        }
        let mut items = Vec::new();
        for i in 0..FORM_ITEMS.max(count_items(f)) {
            if let Some(item) = parse_item(f, i, &mut e) {
                items.push(item);
            }
        }
        if items.is_empty() && e.get("item0_price").is_none() {
            e.add("item0_price", "Add at least one item with a price.");
        }
        if e.is_empty() {
            Ok(Self {
                start_date,
                end_date,
                trial_end,
                interval_months,
                anchor_day,
                timing,
                term_months,
                auto_renew: f.flag("auto_renew"),
                po_number: (!po.is_empty()).then(|| po.to_owned()),
                collection,
                terms,
                notes: f.get("notes").to_owned(),
                items,
            })
        } else {
            Err(e)
        }
    }
}

fn count_items(f: &Fields) -> usize {
    (0..50)
        .take_while(|i| !f.get(&format!("item{i}_price")).is_empty() || *i < FORM_ITEMS)
        .count()
}

/// Item `i` of the form (`item{i}_price`, `item{i}_quantity`, ...); a row without a price is
/// skipped.
pub fn parse_item(f: &Fields, i: usize, e: &mut FieldErrors) -> Option<ItemInput> {
    let key = |s: &str| format!("item{i}_{s}");
    let price = f.get(&key("price"));
    if price.is_empty() {
        return None;
    }
    let Ok(price_id) = price.parse::<i64>() else {
        e.add(&key("price"), "Choose a price from the list.");
        return None;
    };
    let quantity = match f.decimal(&key("quantity")) {
        Ok(None) => Decimal::ONE,
        Ok(Some(q)) if q >= Decimal::ZERO => q,
        Ok(Some(_)) => {
            e.add(&key("quantity"), "The quantity cannot be negative.");
            Decimal::ONE
        }
        Err(m) => {
            e.add(&key("quantity"), m);
            Decimal::ONE
        }
    };
    let mut discount_percent = None;
    let mut discount_amount = None;
    let raw = f.get(&key("discount"));
    if let Some(pct) = raw.strip_suffix('%') {
        // Through the amount parser so a fifth decimal is refused, not rounded by the
        // NUMERIC(7,4) column.
        match crate::money::parse_amount(pct) {
            Ok(p) if p > Decimal::ZERO && p <= Decimal::ONE_HUNDRED => discount_percent = Some(p),
            _ => e.add(
                &key("discount"),
                "A percentage discount is above 0% and at most 100%.",
            ),
        }
    } else if !raw.is_empty() {
        match f.decimal(&key("discount")) {
            Ok(Some(a)) if a > Decimal::ZERO => discount_amount = Some(a),
            _ => e.add(
                &key("discount"),
                "Enter a discount amount above zero, or a percentage like 10%.",
            ),
        }
    }
    let end_date = f
        .date(&key("end_date"))
        .map_err(|m| e.add(&key("end_date"), m))
        .ok()
        .flatten();
    Some(ItemInput {
        price_id,
        quantity,
        discount_percent,
        discount_amount,
        end_date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        Fields::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }
    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_valid_form_defaults_the_anchor_to_the_start_day() {
        let s = SubscriptionInput::parse(
            &fields(&[
                ("start_date", "2026-03-17"),
                ("cycle", "3"),
                ("timing", "advance"),
                ("term_months", "12"),
                ("item0_price", "7"),
                ("item0_quantity", "25"),
                ("item0_discount", "10%"),
            ]),
            day("2026-01-01"),
        )
        .unwrap();
        assert_eq!((s.anchor_day, s.interval_months), (17, 3));
        assert_eq!(s.items[0].discount_percent, Some(Decimal::TEN));
    }

    #[test]
    fn without_auto_renew_the_term_sets_the_end() {
        let base = [
            ("start_date", "2026-01-31"),
            ("cycle", "1"),
            ("timing", "advance"),
            ("term_months", "12"),
            ("item0_price", "1"),
        ];
        let mut s = SubscriptionInput::parse(&fields(&base), day("2026-01-01")).unwrap();
        s.apply_term_end();
        assert_eq!(s.end_date, Some(day("2027-01-30")));
        let mut renewing = fields(&base);
        renewing.set("auto_renew", "yes");
        let mut s = SubscriptionInput::parse(&renewing, day("2026-01-01")).unwrap();
        s.apply_term_end();
        assert_eq!(s.end_date, None);
    }

    #[test]
    fn every_bad_field_is_reported() {
        let e = SubscriptionInput::parse(
            &fields(&[
                ("start_date", "2026-03-17"),
                ("end_date", "2026-01-01"),
                ("trial_end", "nope"),
                ("cycle", "custom"),
                ("every_months", "40"),
                ("anchor_day", "32"),
                ("timing", "x"),
                ("term_months", "0"),
                ("item0_price", "7"),
                ("item0_quantity", "-1"),
                ("item0_discount", "150%"),
            ]),
            day("2026-01-01"),
        )
        .unwrap_err();
        for f in [
            "end_date",
            "trial_end",
            "every_months",
            "anchor_day",
            "timing",
            "term_months",
            "item0_quantity",
            "item0_discount",
        ] {
            assert!(e.get(f).is_some(), "{f}: {e:?}");
        }
        let none = SubscriptionInput::parse(
            &fields(&[("cycle", "1"), ("timing", "advance"), ("term_months", "12")]),
            day("2026-01-01"),
        )
        .unwrap_err();
        assert!(none.get("item0_price").is_some());
    }

    #[test]
    fn a_quantity_or_percentage_the_columns_would_round_is_refused() {
        // Before: accepted, then rounded to four places by NUMERIC(19,4) / NUMERIC(7,4).
        let e = SubscriptionInput::parse(
            &fields(&[
                ("start_date", "2026-03-17"),
                ("cycle", "1"),
                ("timing", "advance"),
                ("term_months", "12"),
                ("item0_price", "7"),
                ("item0_quantity", "1.00001"),
                ("item0_discount", "12.34567%"),
            ]),
            day("2026-01-01"),
        )
        .unwrap_err();
        assert!(
            e.for_field("item0_quantity").contains("decimal places"),
            "{e:?}"
        );
        assert!(e.get("item0_discount").is_some(), "{e:?}");
    }
}
