//! Finalization: the moment a draft becomes a legal document.
//!
//! Rules: numbers are gapless per series, taken from a counter row locked by the finalizing
//! transaction, so a rollback returns its numbers and concurrent finalizations queue instead
//! of skipping. The payer's name, address and tax id and the email recipients are
//! snapshotted, account credit is drawn, and the invoice email is written to the outbox in
//! the same transaction. Credit notes settle against their invoice and put any excess on
//! account as credit.

use chrono::NaiveDate;
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use super::{
    domain::{document_number, split_credit},
    email::{self, Links},
    repo::{self, Invoice},
};
use crate::{
    accounts::{
        contacts_repo,
        domain::{PaymentTerms, TermsKind},
        repo as accounts,
        values::Address,
    },
    audit::{self, Actor, Entry},
    db::schema::tenant::{invoices, number_series},
    error::{AppError, AppResult},
};

/// Reserves `n` consecutive numbers of a series; returns the first value and the prefix.
fn reserve(conn: &mut PgConnection, series: &str, n: i64) -> AppResult<(String, i64)> {
    let (prefix, next): (String, i64) = number_series::table
        .find(series)
        .select((number_series::prefix, number_series::next_value))
        .for_update()
        .first(conn)?;
    diesel::update(number_series::table.find(series))
        .set(number_series::next_value.eq(next + n))
        .execute(conn)?;
    Ok((prefix, next))
}

fn snapshot(
    conn: &mut PgConnection,
    payer_id: i64,
) -> AppResult<(serde_json::Value, Vec<String>, bool)> {
    let a = accounts::get(conn, payer_id)?.ok_or(AppError::NotFound)?;
    let address: Address = serde_json::from_value(a.billing_address.clone()).unwrap_or_default();
    let bill_to = json!({
        "account_number": a.account_number,
        "name": a.legal_name,
        "address": address.lines(),
        "tax_id": a.tax_id,
    });
    let mut recipients: Vec<String> = contacts_repo::list(conn, payer_id)?
        .into_iter()
        .filter(|c| c.status == "active" && c.receives_invoices)
        .filter_map(|c| c.email)
        .collect();
    recipients.sort();
    recipients.dedup();
    Ok((bill_to, recipients, a.invoice_delivery == "email"))
}

/// Finalizes the given drafts (others are ignored), in id order. Returns the finalized ids.
pub fn finalize(
    conn: &mut PgConnection,
    actor: &Actor,
    links: &Links,
    ids: &[i64],
    today: NaiveDate,
) -> AppResult<Vec<i64>> {
    let drafts: Vec<Invoice> = invoices::table
        .filter(invoices::id.eq_any(ids))
        .filter(invoices::status.eq("draft"))
        .order(invoices::id)
        .select(Invoice::as_select())
        .for_update()
        .load(conn)?;
    let count =
        |kind: &str| i64::try_from(drafts.iter().filter(|d| d.kind == kind).count()).unwrap_or(0);
    let mut next_invoice = match count("invoice") {
        0 => (String::new(), 0),
        n => reserve(conn, "invoice", n)?,
    };
    let mut next_credit = match count("credit_note") {
        0 => (String::new(), 0),
        n => reserve(conn, "credit_note", n)?,
    };
    let mut done = Vec::with_capacity(drafts.len());
    for inv in drafts {
        let counter = if inv.is_credit_note() {
            &mut next_credit
        } else {
            &mut next_invoice
        };
        let number = document_number(&counter.0, counter.1);
        counter.1 += 1;
        finalize_one(conn, actor, links, &inv, &number, today)?;
        done.push(inv.id);
    }
    Ok(done)
}

fn finalize_one(
    conn: &mut PgConnection,
    actor: &Actor,
    links: &Links,
    inv: &Invoice,
    number: &str,
    today: NaiveDate,
) -> AppResult<()> {
    let (bill_to, recipients, by_email) = snapshot(conn, inv.bill_to_account_id)?;
    let terms = PaymentTerms {
        kind: TermsKind::parse(&inv.terms_kind).unwrap_or(TermsKind::Net),
        days: u16::try_from(inv.terms_days).unwrap_or(0),
    };
    let (status, credit_applied, amount_due, due_date) = if inv.is_credit_note() {
        settle_credit_note(conn, inv, number)?;
        ("open", Decimal::ZERO, Decimal::ZERO, None)
    } else {
        let available = repo::credit_balance(conn, inv.bill_to_account_id, &inv.currency)?;
        let applied = available.min(inv.total).max(Decimal::ZERO);
        if applied > Decimal::ZERO {
            repo::add_credit(
                conn,
                inv.bill_to_account_id,
                &inv.currency,
                -applied,
                inv.id,
                &format!("Applied to {number}"),
            )?;
        }
        let due = inv.total - applied;
        let status = if due > Decimal::ZERO { "open" } else { "paid" };
        (
            status,
            applied,
            due.max(Decimal::ZERO),
            Some(terms.due_date(today)),
        )
    };
    diesel::update(invoices::table.find(inv.id))
        .set((
            invoices::number.eq(number),
            invoices::status.eq(status),
            invoices::issue_date.eq(today),
            invoices::due_date.eq(due_date),
            invoices::bill_to.eq(&bill_to),
            invoices::recipients.eq(&recipients),
            invoices::credit_applied.eq(credit_applied),
            invoices::amount_due.eq(amount_due),
            invoices::finalized_at.eq(diesel::dsl::now),
            invoices::version.eq(inv.version + 1),
        ))
        .execute(conn)?;
    crate::ledger::post::document(conn, inv.id)?;
    crate::payments::repo::event(
        conn,
        if inv.is_credit_note() {
            "credit_note.issued"
        } else {
            "invoice.finalized"
        },
        "invoice",
        inv.id,
        json!({ "number": number, "total": inv.total, "amount_due": amount_due, "currency": inv.currency,
                "due_date": due_date, "account_id": inv.bill_to_account_id }),
    )?;
    audit::record(
        conn,
        actor,
        &Entry::new("invoice.finalized", "invoice", inv.id).after(json!({
            "number": number, "total": inv.total, "credit_applied": credit_applied,
            "amount_due": amount_due, "due_date": due_date, "recipients": recipients,
        })),
    )?;
    if by_email && !recipients.is_empty() {
        email::queue_invoice_email(conn, links, inv.id)?;
    }
    if amount_due > Decimal::ZERO {
        crate::payments::charge::on_finalize(conn, links.tenant_id, inv)?;
    }
    Ok(())
}

/// A credit note reduces what its invoice still owes; the rest becomes account credit.
fn settle_credit_note(conn: &mut PgConnection, note: &Invoice, number: &str) -> AppResult<()> {
    let credit = note.total;
    let mut to_account = credit;
    if let Some(inv_id) = note.related_invoice_id {
        let inv = repo::lock(conn, inv_id)?;
        if matches!(inv.status.as_str(), "open" | "paid") {
            let (to_invoice, rest) = split_credit(inv.amount_due, credit);
            to_account = rest;
            diesel::update(invoices::table.find(inv_id))
                .set(invoices::amount_credited.eq(inv.amount_credited + to_invoice))
                .execute(conn)?;
            repo::recompute_balance(conn, inv_id)?;
        }
    }
    if to_account > Decimal::ZERO {
        repo::add_credit(
            conn,
            note.bill_to_account_id,
            &note.currency,
            to_account,
            note.id,
            &format!("Credit note {number}"),
        )?;
    }
    Ok(())
}
