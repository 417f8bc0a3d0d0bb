//! Invoice queries, inside a tenant-scoped transaction. Inserts are set-based so a bill run
//! writes hundreds of invoices per round trip.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::{
    prelude::*,
    sql_types::{Array, BigInt, Date},
};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::{
    db::schema::tenant::{account_credits, invoice_lines as lines, invoices, settings},
    error::{AppError, AppResult},
};

use super::domain::TaxRates;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = invoices)]
pub struct Invoice {
    pub id: i64,
    pub kind: String,
    pub number: Option<String>,
    pub status: String,
    pub account_id: i64,
    pub bill_to_account_id: i64,
    pub subscription_id: Option<i64>,
    pub source: String,
    pub period_start: Option<NaiveDate>,
    pub period_end: Option<NaiveDate>,
    pub bill_run_id: Option<i64>,
    pub related_invoice_id: Option<i64>,
    pub currency: String,
    pub issue_date: NaiveDate,
    pub due_date: Option<NaiveDate>,
    pub terms_kind: String,
    pub terms_days: i32,
    pub po_number: Option<String>,
    pub notes: String,
    pub bill_to: Value,
    pub recipients: Vec<String>,
    pub subtotal: Decimal,
    pub tax_total: Decimal,
    pub total: Decimal,
    pub credit_applied: Decimal,
    pub amount_credited: Decimal,
    pub amount_paid: Decimal,
    pub amount_due: Decimal,
    pub void_reason: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub finalized_at: Option<DateTime<Utc>>,
}

impl Invoice {
    /// The number, or a placeholder for drafts.
    pub fn label(&self) -> String {
        self.number
            .clone()
            .unwrap_or_else(|| format!("Draft #{}", self.id))
    }
    pub fn is_credit_note(&self) -> bool {
        self.kind == "credit_note"
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = lines)]
pub struct Line {
    pub id: i64,
    pub invoice_id: i64,
    pub position: i32,
    pub kind: String,
    pub description: String,
    pub product_id: Option<i64>,
    pub subscription_item_id: Option<i64>,
    pub price_version_id: Option<i64>,
    pub credited_line_id: Option<i64>,
    pub period_start: Option<NaiveDate>,
    pub period_end: Option<NaiveDate>,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    pub amount: Decimal,
    pub discount: Decimal,
    pub net: Decimal,
    pub tax_category: String,
    pub tax_rate: Decimal,
    pub tax: Decimal,
    pub gl_account: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = invoices)]
pub struct NewInvoice {
    pub kind: String,
    pub account_id: i64,
    pub bill_to_account_id: i64,
    pub subscription_id: Option<i64>,
    pub source: String,
    pub period_start: Option<NaiveDate>,
    pub period_end: Option<NaiveDate>,
    pub bill_run_id: Option<i64>,
    pub related_invoice_id: Option<i64>,
    pub currency: String,
    pub issue_date: NaiveDate,
    pub terms_kind: String,
    pub terms_days: i32,
    pub po_number: Option<String>,
    pub notes: String,
    pub subtotal: Decimal,
    pub tax_total: Decimal,
    pub total: Decimal,
    pub amount_due: Decimal,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = lines)]
pub struct NewLine {
    pub invoice_id: i64,
    pub position: i32,
    pub kind: String,
    pub description: String,
    pub product_id: Option<i64>,
    pub subscription_item_id: Option<i64>,
    pub price_version_id: Option<i64>,
    pub credited_line_id: Option<i64>,
    pub period_start: Option<NaiveDate>,
    pub period_end: Option<NaiveDate>,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    pub amount: Decimal,
    pub discount: Decimal,
    pub net: Decimal,
    pub tax_category: String,
    pub tax_rate: Decimal,
    pub tax: Decimal,
    pub gl_account: Option<String>,
}

/// Bind parameters per statement stay far below PostgreSQL's 65,535.
const CHUNK: usize = 1000;

/// Inserts bill-run drafts; one that already exists for its `(subscription_id, period_start)`
/// is skipped. Returns `(index into new, id)` of every row written.
pub fn insert_period_invoices(
    conn: &mut PgConnection,
    new: &[NewInvoice],
) -> AppResult<Vec<(usize, i64)>> {
    let mut out = Vec::with_capacity(new.len());
    for (c, chunk) in new.chunks(CHUNK).enumerate() {
        let index: std::collections::HashMap<(Option<i64>, Option<NaiveDate>), usize> = chunk
            .iter()
            .enumerate()
            .map(|(i, n)| ((n.subscription_id, n.period_start), c * CHUNK + i))
            .collect();
        let rows: Vec<(i64, Option<i64>, Option<NaiveDate>)> = diesel::insert_into(invoices::table)
            .values(chunk)
            .on_conflict_do_nothing()
            .returning((
                invoices::id,
                invoices::subscription_id,
                invoices::period_start,
            ))
            .get_results(conn)?;
        for (id, sub, start) in rows {
            let i = index.get(&(sub, start)).copied().ok_or_else(|| {
                AppError::internal(anyhow::anyhow!("inserted invoice {id} matches no period"))
            })?;
            out.push((i, id));
        }
    }
    Ok(out)
}

pub fn insert_one(conn: &mut PgConnection, new: &NewInvoice) -> AppResult<i64> {
    Ok(diesel::insert_into(invoices::table)
        .values(new)
        .returning(invoices::id)
        .get_result(conn)?)
}

pub fn insert_lines(conn: &mut PgConnection, new: &[NewLine]) -> AppResult<()> {
    for chunk in new.chunks(CHUNK) {
        diesel::insert_into(lines::table)
            .values(chunk)
            .execute(conn)?;
    }
    Ok(())
}

/// Moves the bill-run cursor of many subscriptions forward (never back).
pub fn advance_cursors(
    conn: &mut PgConnection,
    ids: &[i64],
    through: &[NaiveDate],
) -> AppResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "UPDATE subscriptions s SET billed_through = v.bt, updated_at = now() \
         FROM unnest($1, $2) AS v(id, bt) WHERE s.id = v.id AND s.billed_through < v.bt",
    )
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<Date>, _>(through)
    .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut PgConnection, id: i64) -> AppResult<Invoice> {
    invoices::table
        .find(id)
        .select(Invoice::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

pub fn lock(conn: &mut PgConnection, id: i64) -> AppResult<Invoice> {
    invoices::table
        .find(id)
        .select(Invoice::as_select())
        .for_update()
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

/// Brings an invoice's paid amount (the sum of its payment applications), balance and
/// status up to date after any settlement: payment, unapplication, reversal, credit note.
pub fn recompute_balance(conn: &mut PgConnection, invoice_id: i64) -> AppResult<()> {
    use crate::db::schema::tenant::payment_applications as apps;
    let inv = lock(conn, invoice_id)?;
    let paid: Option<Decimal> = apps::table
        .filter(apps::invoice_id.eq(invoice_id))
        .select(diesel::dsl::sum(apps::amount))
        .first(conn)?;
    let paid = paid.unwrap_or(Decimal::ZERO);
    let due = super::domain::amount_due(inv.total, inv.credit_applied, inv.amount_credited, paid);
    let status = super::domain::status_for(&inv.status, due);
    diesel::update(invoices::table.find(invoice_id))
        .set((
            invoices::amount_paid.eq(paid),
            invoices::amount_due.eq(due),
            invoices::status.eq(status),
        ))
        .execute(conn)?;
    if status == "paid" && inv.status != "paid" && inv.kind == "invoice" {
        crate::payments::repo::event(
            conn,
            "invoice.paid",
            "invoice",
            invoice_id,
            serde_json::json!({ "number": inv.number, "total": inv.total, "amount_paid": paid,
                                "currency": inv.currency, "account_id": inv.bill_to_account_id }),
        )?;
    }
    // Payment and credit notes are dunning's stop conditions: end it (and cancel pending
    // charges) in the same transaction rather than at the next daily run.
    crate::dunning::repo::settle_if_paid(conn, invoice_id)?;
    Ok(())
}

pub fn lines_of(conn: &mut PgConnection, invoice_id: i64) -> AppResult<Vec<Line>> {
    Ok(lines::table
        .filter(lines::invoice_id.eq(invoice_id))
        .order(lines::position)
        .select(Line::as_select())
        .load(conn)?)
}

pub fn for_subscription(conn: &mut PgConnection, sub_id: i64) -> AppResult<Vec<Invoice>> {
    Ok(invoices::table
        .filter(invoices::subscription_id.eq(sub_id))
        .order(invoices::id.desc())
        .select(Invoice::as_select())
        .load(conn)?)
}

pub fn credit_notes_of(conn: &mut PgConnection, invoice_id: i64) -> AppResult<Vec<Invoice>> {
    Ok(invoices::table
        .filter(invoices::related_invoice_id.eq(invoice_id))
        .order(invoices::id)
        .select(Invoice::as_select())
        .load(conn)?)
}

/// Account credit available in `currency`.
pub fn credit_balance(
    conn: &mut PgConnection,
    account_id: i64,
    currency: &str,
) -> AppResult<Decimal> {
    let sum: Option<Decimal> = account_credits::table
        .filter(account_credits::account_id.eq(account_id))
        .filter(account_credits::currency.eq(currency))
        .select(diesel::dsl::sum(account_credits::amount))
        .first(conn)?;
    Ok(sum.unwrap_or(Decimal::ZERO))
}

pub fn add_credit(
    conn: &mut PgConnection,
    account_id: i64,
    currency: &str,
    amount: Decimal,
    invoice_id: i64,
    memo: &str,
) -> AppResult<()> {
    diesel::insert_into(account_credits::table)
        .values((
            account_credits::account_id.eq(account_id),
            account_credits::currency.eq(currency),
            account_credits::amount.eq(amount),
            account_credits::invoice_id.eq(invoice_id),
            account_credits::memo.eq(memo),
        ))
        .execute(conn)?;
    Ok(())
}

/// A setting's raw JSON value, `None` when unset.
pub fn json_setting(conn: &mut PgConnection, key: &str) -> AppResult<Option<Value>> {
    setting(conn, key)
}

fn setting(conn: &mut PgConnection, key: &str) -> AppResult<Option<Value>> {
    Ok(settings::table
        .filter(settings::key.eq(key))
        .select(settings::value)
        .first(conn)
        .optional()?)
}

fn decimal_setting(conn: &mut PgConnection, key: &str) -> AppResult<Decimal> {
    Ok(match setting(conn, key)? {
        Some(Value::String(s)) => s.parse().unwrap_or(Decimal::ZERO),
        Some(Value::Number(n)) => n.to_string().parse().unwrap_or(Decimal::ZERO),
        _ => Decimal::ZERO,
    })
}

pub fn tax_rates(conn: &mut PgConnection) -> AppResult<TaxRates> {
    Ok(TaxRates {
        standard: decimal_setting(conn, "tax.standard_rate")?,
        reduced: decimal_setting(conn, "tax.reduced_rate")?,
    })
}

/// Whether the bill run finalizes what it creates (otherwise drafts wait for review).
pub fn auto_finalize(conn: &mut PgConnection) -> AppResult<bool> {
    Ok(matches!(
        setting(conn, "billing.auto_finalize")?,
        Some(Value::Bool(true))
    ))
}

pub fn text_setting(conn: &mut PgConnection, key: &str) -> AppResult<String> {
    Ok(match setting(conn, key)? {
        Some(Value::String(s)) => s,
        _ => String::new(),
    })
}

pub fn put_setting(conn: &mut PgConnection, key: &str, value: Value) -> AppResult<()> {
    diesel::insert_into(settings::table)
        .values((settings::key.eq(key), settings::value.eq(&value)))
        .on_conflict(settings::key)
        .do_update()
        .set((
            settings::value.eq(&value),
            settings::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(())
}
