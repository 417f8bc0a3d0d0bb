//! Cash application: matching a bank or remittance line to the account and invoices it pays.
//!
//! Order of evidence: invoice numbers named in the reference (one or several invoices of one
//! account), then an open invoice with exactly that amount due, then the payer's name against
//! account names (normalised like duplicate detection). One candidate matches; several make
//! the line ambiguous; none leaves it unmatched. Ambiguous and unmatched lines wait in the
//! queue with suggestions for a person.

use std::collections::BTreeMap;

use diesel::prelude::*;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::domain::{self, OpenInvoice};
use crate::{
    accounts::dedupe::name_key,
    db::schema::tenant::{accounts, invoices, number_series},
    error::AppResult,
};

/// Invoice numbers named in a free-text reference, in canonical form (`INV-000123`).
/// Accepts the prefix in any case, with or without its dash, and any zero padding.
pub fn invoice_numbers_in(reference: &str, prefix: &str) -> Vec<String> {
    let upper = reference.to_uppercase();
    let bare = prefix.trim_end_matches('-').to_uppercase();
    let mut out = Vec::new();
    if bare.is_empty() {
        return out;
    }
    let bytes = upper.as_bytes();
    let mut at = 0;
    while let Some(pos) = upper[at..].find(&bare) {
        let start = at + pos;
        let before_ok = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        let mut i = start + bare.len();
        while i < bytes.len() && (bytes[i] == b'-' || bytes[i] == b' ' || bytes[i] == b'#') {
            i += 1;
        }
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if before_ok && i > digits_start {
            if let Ok(n) = upper[digits_start..i].parse::<i64>() {
                let number = crate::invoicing::domain::document_number(prefix, n);
                if !out.contains(&number) {
                    out.push(number);
                }
            }
        }
        at = start + bare.len();
    }
    out
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Suggestion {
    pub account_id: i64,
    pub name: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Matched {
        account_id: i64,
        allocation: Vec<(i64, Decimal)>,
        by: &'static str,
    },
    Ambiguous(Vec<Suggestion>),
    Unmatched(Vec<Suggestion>),
}

type OpenRow = (
    i64,
    i64,
    Decimal,
    Option<chrono::NaiveDate>,
    chrono::NaiveDate,
    Option<String>,
);

fn open_rows(conn: &mut PgConnection, currency: &str) -> AppResult<Vec<OpenRow>> {
    Ok(invoices::table
        .filter(invoices::kind.eq("invoice"))
        .filter(invoices::status.eq("open"))
        .filter(invoices::currency.eq(currency))
        .filter(invoices::amount_due.gt(Decimal::ZERO))
        .select((
            invoices::id,
            invoices::bill_to_account_id,
            invoices::amount_due,
            invoices::due_date,
            invoices::issue_date,
            invoices::number,
        ))
        .load(conn)?)
}

fn as_open(r: &OpenRow) -> OpenInvoice {
    OpenInvoice {
        id: r.0,
        due: r.2,
        due_date: r.3,
        issue_date: r.4,
    }
}

fn names(conn: &mut PgConnection, ids: &[i64]) -> AppResult<BTreeMap<i64, String>> {
    Ok(accounts::table
        .filter(accounts::id.eq_any(ids))
        .select((accounts::id, accounts::display_name))
        .load::<(i64, String)>(conn)?
        .into_iter()
        .collect())
}

fn suggestions(conn: &mut PgConnection, ids: &[i64], why: &str) -> AppResult<Vec<Suggestion>> {
    Ok(names(conn, ids)?
        .into_iter()
        .map(|(account_id, name)| Suggestion {
            account_id,
            name,
            why: why.to_owned(),
        })
        .collect())
}

/// Decides what a line pays. Reads only; the caller records the payment.
pub fn decide(
    conn: &mut PgConnection,
    amount: Decimal,
    currency: &str,
    payer: &str,
    reference: &str,
) -> AppResult<Outcome> {
    let open = open_rows(conn, currency)?;
    let prefix: String = number_series::table
        .find("invoice")
        .select(number_series::prefix)
        .first(conn)?;
    // 1. Invoice numbers in the reference.
    let wanted = invoice_numbers_in(reference, &prefix);
    let named: Vec<&OpenRow> = open
        .iter()
        .filter(|r| r.5.as_ref().is_some_and(|n| wanted.contains(n)))
        .collect();
    if !named.is_empty() {
        let mut payers: Vec<i64> = named.iter().map(|r| r.1).collect();
        payers.sort_unstable();
        payers.dedup();
        if let [account_id] = payers[..] {
            let list: Vec<OpenInvoice> = named.iter().map(|r| as_open(r)).collect();
            return Ok(Outcome::Matched {
                account_id,
                allocation: domain::oldest_first(amount, &list),
                by: "invoice_number",
            });
        }
        return Ok(Outcome::Ambiguous(suggestions(
            conn,
            &payers,
            "invoices named in the reference",
        )?));
    }
    // 2. Exactly the amount due on one open invoice.
    let same: Vec<&OpenRow> = open.iter().filter(|r| r.2 == amount).collect();
    if let [one] = same[..] {
        return Ok(Outcome::Matched {
            account_id: one.1,
            allocation: vec![(one.0, amount)],
            by: "amount",
        });
    }
    let mut amount_accounts: Vec<i64> = same.iter().map(|r| r.1).collect();
    amount_accounts.sort_unstable();
    amount_accounts.dedup();
    // 3. The payer's name.
    let key = name_key(payer);
    let by_name: Vec<i64> = if key.is_empty() {
        Vec::new()
    } else {
        accounts::table
            .filter(accounts::name_key.eq(&key))
            .filter(accounts::status.ne("merged"))
            .select(accounts::id)
            .load(conn)?
    };
    if let [account_id] = by_name[..] {
        let list: Vec<OpenInvoice> = open
            .iter()
            .filter(|r| r.1 == account_id)
            .map(as_open)
            .collect();
        return Ok(Outcome::Matched {
            account_id,
            allocation: domain::oldest_first(amount, &list),
            by: "payer",
        });
    }
    if !amount_accounts.is_empty() || by_name.len() > 1 {
        let mut s = suggestions(
            conn,
            &amount_accounts,
            "an open invoice for exactly this amount",
        )?;
        s.extend(suggestions(conn, &by_name, "same name")?);
        return Ok(Outcome::Ambiguous(s));
    }
    // Nothing certain: offer accounts whose name starts like the payer's.
    let start: String = key.chars().take(4).collect();
    let similar: Vec<i64> = if start.chars().count() < 3 {
        Vec::new()
    } else {
        accounts::table
            .filter(accounts::name_key.like(format!("{start}%")))
            .filter(accounts::status.ne("merged"))
            .select(accounts::id)
            .limit(5)
            .load(conn)?
    };
    Ok(Outcome::Unmatched(suggestions(
        conn,
        &similar,
        "similar name",
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoice_numbers_are_found_in_free_text() {
        assert_eq!(
            invoice_numbers_in("Payment inv-42 and INV 000043, thanks", "INV-"),
            ["INV-000042", "INV-000043"]
        );
        assert_eq!(invoice_numbers_in("INV#7/INV-7", "INV-"), ["INV-000007"]);
        assert!(invoice_numbers_in("INVOICE for March", "INV-").is_empty());
        assert!(
            invoice_numbers_in("XINV-5", "INV-").is_empty(),
            "part of another word"
        );
    }
}
