//! Payment arithmetic, free of I/O.

use chrono::NaiveDate;
use rust_decimal::Decimal;

text_enum!(Method {
    Check = "check" / "Check",
    Wire = "wire" / "Wire transfer",
    Ach = "ach" / "ACH",
    Card = "card" / "Card",
    Other = "other" / "Other",
});

#[derive(Debug, Clone, PartialEq)]
pub struct OpenInvoice {
    pub id: i64,
    pub due: Decimal,
    pub due_date: Option<NaiveDate>,
    pub issue_date: NaiveDate,
}

/// Spreads `amount` over invoices, the earliest due first (then issued, then created).
pub fn oldest_first(amount: Decimal, invoices: &[OpenInvoice]) -> Vec<(i64, Decimal)> {
    let mut sorted: Vec<&OpenInvoice> = invoices.iter().filter(|i| i.due > Decimal::ZERO).collect();
    sorted.sort_by_key(|i| (i.due_date.unwrap_or(i.issue_date), i.issue_date, i.id));
    let mut left = amount;
    let mut out = Vec::new();
    for inv in sorted {
        if left <= Decimal::ZERO {
            break;
        }
        let take = left.min(inv.due);
        out.push((inv.id, take));
        left -= take;
    }
    out
}

/// Checks a chosen allocation: each amount positive and at most the invoice's balance, all
/// together at most what is available. Errors name the field `apply_<invoice id>`.
pub fn check_chosen(
    available: Decimal,
    chosen: &[(i64, Decimal)],
    invoices: &[OpenInvoice],
) -> Result<(), Vec<(String, String)>> {
    let mut errors = Vec::new();
    for (id, amount) in chosen {
        let field = format!("apply_{id}");
        match invoices.iter().find(|i| i.id == *id) {
            None => errors.push((
                field,
                "That invoice is not open on this account.".to_owned(),
            )),
            Some(_) if *amount <= Decimal::ZERO => {
                errors.push((field, "Apply an amount above zero.".to_owned()))
            }
            Some(i) if *amount > i.due => errors.push((
                field,
                format!("At most {} is due on this invoice.", i.due.normalize()),
            )),
            Some(_) => {}
        }
    }
    let total: Decimal = chosen.iter().map(|(_, a)| *a).sum();
    if errors.is_empty() && total > available {
        errors.push((
            "amount".to_owned(),
            format!(
                "The applications add up to {}, more than the {} available.",
                total.normalize(),
                available.normalize()
            ),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }
    fn inv(id: i64, due: &str, due_date: &str) -> OpenInvoice {
        let date = NaiveDate::parse_from_str(due_date, "%Y-%m-%d").unwrap();
        OpenInvoice {
            id,
            due: d(due),
            due_date: Some(date),
            issue_date: date,
        }
    }

    #[test]
    fn oldest_due_first_with_partial_and_overpayment() {
        let open = [
            inv(3, "50", "2026-03-01"),
            inv(1, "100", "2026-01-01"),
            inv(2, "80", "2026-02-01"),
        ];
        assert_eq!(
            oldest_first(d("150"), &open),
            vec![(1, d("100")), (2, d("50"))]
        );
        // More than everything due: the rest stays unapplied.
        let all = oldest_first(d("500"), &open);
        assert_eq!(all.iter().map(|a| a.1).sum::<Decimal>(), d("230"));
        assert!(oldest_first(d("0"), &open).is_empty());
    }

    #[test]
    fn chosen_allocations_are_checked_per_invoice_and_in_total() {
        let open = [inv(1, "100", "2026-01-01"), inv(2, "80", "2026-02-01")];
        assert!(check_chosen(d("120"), &[(1, d("100")), (2, d("20"))], &open).is_ok());
        let e =
            check_chosen(d("120"), &[(1, d("101")), (9, d("1")), (2, d("-1"))], &open).unwrap_err();
        assert_eq!(
            e.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
            ["apply_1", "apply_9", "apply_2"]
        );
        let e = check_chosen(d("50"), &[(1, d("40")), (2, d("20"))], &open).unwrap_err();
        assert_eq!(e[0].0, "amount");
    }
}
