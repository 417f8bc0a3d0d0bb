//! Payment queries and the operations that keep invoice balances equal to their
//! applications. Every function runs inside the caller's tenant transaction.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::domain::OpenInvoice;
use crate::{
    db::schema::tenant::{events, invoices, payment_applications as apps, payments, refunds},
    error::{AppError, AppResult},
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = payments)]
pub struct Payment {
    pub id: i64,
    pub account_id: i64,
    pub method: String,
    pub currency: String,
    pub amount: Decimal,
    pub received_on: NaiveDate,
    pub reference: String,
    pub status: String,
    pub refunded: Decimal,
    pub reversal_reason: Option<String>,
    pub reversed_at: Option<DateTime<Utc>>,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

pub struct NewPayment<'a> {
    pub account_id: i64,
    pub method: &'a str,
    pub currency: &'a str,
    pub amount: Decimal,
    pub received_on: NaiveDate,
    pub reference: &'a str,
    pub created_by: Option<i64>,
}

/// Appends a business event for the connectors.
pub fn event(
    conn: &mut PgConnection,
    kind: &str,
    entity: &str,
    id: i64,
    payload: Value,
) -> AppResult<()> {
    let event_id: i64 = diesel::insert_into(events::table)
        .values((
            events::event_type.eq(kind),
            events::entity.eq(entity),
            events::entity_id.eq(id),
            events::payload.eq(&payload),
        ))
        .returning(events::id)
        .get_result(conn)?;
    crate::crm::outbound::fan_out(conn, event_id, kind, entity, id, &payload)?;
    Ok(())
}

pub fn insert(conn: &mut PgConnection, p: &NewPayment<'_>) -> AppResult<i64> {
    let id = diesel::insert_into(payments::table)
        .values((
            payments::account_id.eq(p.account_id),
            payments::method.eq(p.method),
            payments::currency.eq(p.currency),
            payments::amount.eq(p.amount),
            payments::received_on.eq(p.received_on),
            payments::reference.eq(p.reference),
            payments::created_by.eq(p.created_by),
        ))
        .returning(payments::id)
        .get_result(conn)?;
    crate::ledger::post::payment_received(conn, id)?;
    Ok(id)
}

pub fn get(conn: &mut PgConnection, id: i64) -> AppResult<Payment> {
    payments::table
        .find(id)
        .select(Payment::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

pub fn lock(conn: &mut PgConnection, id: i64) -> AppResult<Payment> {
    payments::table
        .find(id)
        .select(Payment::as_select())
        .for_update()
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

pub fn for_account(conn: &mut PgConnection, account_id: i64) -> AppResult<Vec<Payment>> {
    Ok(payments::table
        .filter(payments::account_id.eq(account_id))
        .order((payments::received_on.desc(), payments::id.desc()))
        .select(Payment::as_select())
        .load(conn)?)
}

/// `(invoice id, net applied)` of a payment, for invoices with a non-zero net.
pub fn applied_by_invoice(
    conn: &mut PgConnection,
    payment_id: i64,
) -> AppResult<Vec<(i64, Decimal)>> {
    let rows: Vec<(i64, Decimal)> = apps::table
        .filter(apps::payment_id.eq(payment_id))
        .select((apps::invoice_id, apps::amount))
        .load(conn)?;
    let mut out = crate::money::sum_by(rows);
    out.retain(|(_, a)| !a.is_zero());
    Ok(out)
}

/// Cash of a payment not applied to any invoice nor refunded.
pub fn unapplied(conn: &mut PgConnection, p: &Payment) -> AppResult<Decimal> {
    if p.status == "reversed" {
        return Ok(Decimal::ZERO);
    }
    let applied: Decimal = applied_by_invoice(conn, p.id)?
        .iter()
        .map(|(_, a)| *a)
        .sum();
    Ok(p.amount - p.refunded - applied)
}

/// Open invoices a payment of `account_id` in `currency` can settle, locked.
pub fn open_invoices(
    conn: &mut PgConnection,
    account_id: i64,
    currency: &str,
) -> AppResult<Vec<OpenInvoice>> {
    let rows: Vec<(i64, Decimal, Option<NaiveDate>, NaiveDate)> = invoices::table
        .filter(invoices::bill_to_account_id.eq(account_id))
        .filter(invoices::currency.eq(currency))
        .filter(invoices::kind.eq("invoice"))
        .filter(invoices::status.eq("open"))
        .filter(invoices::amount_due.gt(Decimal::ZERO))
        .order(invoices::id)
        .select((
            invoices::id,
            invoices::amount_due,
            invoices::due_date,
            invoices::issue_date,
        ))
        .for_update()
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, due, due_date, issue_date)| OpenInvoice {
            id,
            due,
            due_date,
            issue_date,
        })
        .collect())
}

/// Records applications and brings each invoice's balance up to date.
pub fn apply(
    conn: &mut PgConnection,
    payment_id: i64,
    allocation: &[(i64, Decimal)],
    by: Option<i64>,
) -> AppResult<()> {
    for (invoice_id, amount) in allocation.iter().filter(|(_, a)| !a.is_zero()) {
        diesel::insert_into(apps::table)
            .values((
                apps::payment_id.eq(payment_id),
                apps::invoice_id.eq(invoice_id),
                apps::amount.eq(amount),
                apps::created_by.eq(by),
            ))
            .execute(conn)?;
        crate::invoicing::repo::recompute_balance(conn, *invoice_id)?;
        crate::ledger::post::applied(conn, payment_id, *invoice_id)?;
        event(
            conn,
            if amount.is_sign_negative() {
                "payment.unapplied"
            } else {
                "payment.applied"
            },
            "invoice",
            *invoice_id,
            json!({ "payment_id": payment_id, "amount": amount }),
        )?;
    }
    Ok(())
}

pub fn refund(
    conn: &mut PgConnection,
    p: &Payment,
    amount: Decimal,
    on: NaiveDate,
    reference: &str,
    by: Option<i64>,
) -> AppResult<()> {
    diesel::insert_into(refunds::table)
        .values((
            refunds::payment_id.eq(p.id),
            refunds::amount.eq(amount),
            refunds::refunded_on.eq(on),
            refunds::reference.eq(reference),
            refunds::created_by.eq(by),
        ))
        .execute(conn)?;
    diesel::update(payments::table.find(p.id))
        .set(payments::refunded.eq(p.refunded + amount))
        .execute(conn)?;
    crate::ledger::post::refunded(conn, p.id)?;
    event(
        conn,
        "payment.refunded",
        "payment",
        p.id,
        json!({ "amount": amount, "on": on, "reference": reference }),
    )
}

/// A bounced payment: every application is undone and the payment marked reversed.
pub fn reverse(
    conn: &mut PgConnection,
    p: &Payment,
    reason: &str,
    by: Option<i64>,
) -> AppResult<Vec<i64>> {
    let applied = applied_by_invoice(conn, p.id)?;
    let undo: Vec<(i64, Decimal)> = applied.iter().map(|(i, a)| (*i, -*a)).collect();
    apply(conn, p.id, &undo, by)?;
    diesel::update(payments::table.find(p.id))
        .set((
            payments::status.eq("reversed"),
            payments::reversal_reason.eq(reason),
            payments::reversed_at.eq(Some(Utc::now())),
        ))
        .execute(conn)?;
    crate::ledger::post::reversed(conn, p.id)?;
    event(
        conn,
        "payment.reversed",
        "payment",
        p.id,
        json!({ "reason": reason, "reopened": undo.iter().map(|u| u.0).collect::<Vec<_>>() }),
    )?;
    Ok(applied.into_iter().map(|(i, _)| i).collect())
}

/// Payments applied to an invoice: `(payment, net amount)`.
pub fn for_invoice(conn: &mut PgConnection, invoice_id: i64) -> AppResult<Vec<(Payment, Decimal)>> {
    let rows: Vec<(i64, Decimal)> = apps::table
        .filter(apps::invoice_id.eq(invoice_id))
        .select((apps::payment_id, apps::amount))
        .load(conn)?;
    let mut out = Vec::new();
    for (p, a) in crate::money::sum_by(rows) {
        out.push((get(conn, p)?, a));
    }
    Ok(out)
}
