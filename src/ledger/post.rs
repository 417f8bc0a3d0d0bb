//! Posting: the one-line calls the billing code makes inside its own transaction. Each loads
//! what the event changed, builds the entry with `domain` and writes it; an error aborts the
//! billing action with it, so no document exists without its entry.

use chrono::NaiveDate;
use diesel::prelude::*;
use rust_decimal::Decimal;

use super::{
    domain::{self, DocLine, Document, NewEntry, PostingError, Role, SourceType},
    repo,
    revenue::{self, RatableLine},
};
use crate::{
    db::schema::tenant::{
        account_credits, accounts, payment_applications as apps, products, refunds,
    },
    error::{AppError, AppResult, FieldErrors},
    invoicing::repo as invoices,
    payments::repo as payments,
};

impl From<PostingError> for AppError {
    fn from(e: PostingError) -> Self {
        match e {
            PostingError::Unbalanced { .. } => AppError::internal(anyhow::anyhow!("{e}")),
            other => {
                let mut f = FieldErrors::default();
                f.add("gl_mapping", other.to_string());
                AppError::Validation(f)
            }
        }
    }
}

fn write(conn: &mut PgConnection, e: Result<NewEntry, PostingError>) -> AppResult<()> {
    repo::insert_entry(conn, &e?)?;
    Ok(())
}

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// A finalized invoice or credit note (called after its settlement is written).
pub fn document(conn: &mut PgConnection, invoice_id: i64) -> AppResult<()> {
    let inv = invoices::get(conn, invoice_id)?;
    let lines = invoices::lines_of(conn, invoice_id)?;
    let product_ids: Vec<i64> = lines.iter().filter_map(|l| l.product_id).collect();
    let known: Vec<(i64, String, String)> = products::table
        .filter(products::id.eq_any(&product_ids))
        .select((products::id, products::name, products::revenue_recognition))
        .load(conn)?;
    let entities: Vec<String> = accounts::table
        .filter(accounts::id.eq_any([inv.account_id, inv.bill_to_account_id]))
        .select(accounts::account_number)
        .load(conn)?;
    let settled_from_credit = if inv.is_credit_note() {
        let to_account: Option<Decimal> = account_credits::table
            .filter(account_credits::invoice_id.eq(inv.id))
            .filter(account_credits::amount.gt(Decimal::ZERO))
            .select(diesel::dsl::sum(account_credits::amount))
            .first(conn)?;
        to_account.unwrap_or_default()
    } else {
        inv.credit_applied
    };
    let mut doc = Document {
        id: inv.id,
        credit_note: inv.is_credit_note(),
        number: inv.number.clone().unwrap_or_else(|| inv.label()),
        date: inv.issue_date,
        currency: inv.currency.clone(),
        entities,
        total: inv.total,
        settled_from_credit,
        lines: lines
            .iter()
            .map(|l| {
                let product = l.product_id.and_then(|p| known.iter().find(|k| k.0 == p));
                DocLine {
                    id: Some(l.id),
                    product_id: l.product_id,
                    product_name: product.map(|p| p.1.clone()),
                    ratable: product.is_some_and(|p| p.2 == "ratable"),
                    late_fee: l.product_id.is_none()
                        && l.gl_account.as_deref() == Some("late_fees"),
                    net: l.net,
                    discount: l.discount,
                    tax: l.tax,
                }
            })
            .collect(),
    };
    if doc.lines.is_empty() {
        doc.lines.push(DocLine {
            id: None,
            product_id: None,
            product_name: None,
            ratable: false,
            late_fee: false,
            net: inv.subtotal,
            discount: Decimal::ZERO,
            tax: inv.tax_total,
        });
    }
    let roles = repo::roles(conn)?;
    let rules = repo::active_rules(conn)?;
    write(conn, domain::document_entry(&doc, &roles, &rules))?;
    // The entry resolved every line's rule, so these lookups cannot miss.
    let ratable: Vec<RatableLine> = doc
        .lines
        .iter()
        .filter(|l| l.ratable && !l.late_fee)
        .filter_map(|l| {
            let src = lines.iter().find(|x| Some(x.id) == l.id)?;
            let rule = domain::resolve(&rules, l.product_id, &doc.entities, &doc.currency)?;
            Some(RatableLine {
                line_id: src.id,
                gross: l.net + l.discount,
                period: src.period_start.zip(src.period_end),
                credited_line_id: src.credited_line_id,
                revenue_account: rule.revenue_account.clone(),
                deferred_account: rule.deferred_account.clone(),
            })
        })
        .collect();
    revenue::add_schedules(
        conn,
        doc.id,
        doc.credit_note,
        doc.date,
        &doc.currency,
        &ratable,
    )
}

fn transfer(
    conn: &mut PgConnection,
    head: (NaiveDate, SourceType, i64, &str, &str, &str),
    debit: Role,
    credit: Role,
    amount: Decimal,
) -> AppResult<()> {
    let roles = repo::roles(conn)?;
    let (date, source_type, source_id, document, memo, currency) = head;
    let entry = domain::transfer(
        date,
        source_type,
        source_id,
        document,
        memo,
        currency,
        roles.account(debit)?,
        roles.account(credit)?,
        amount,
    );
    write(conn, entry)
}

/// Cash in: Dr cash / Cr unapplied cash until it is applied.
pub fn payment_received(conn: &mut PgConnection, payment_id: i64) -> AppResult<()> {
    let p = payments::get(conn, payment_id)?;
    let doc = format!("Payment {}", p.id);
    let memo = format!("{} {} received", p.method, p.reference);
    let head = (
        p.received_on,
        SourceType::Payment,
        p.id,
        doc.as_str(),
        memo.trim(),
        p.currency.as_str(),
    );
    transfer(conn, head, Role::Cash, Role::UnappliedCash, p.amount)
}

/// The application just recorded (negative: unapplied or reversed): Dr unapplied / Cr AR.
pub fn applied(conn: &mut PgConnection, payment_id: i64, invoice_id: i64) -> AppResult<()> {
    let (app_id, amount): (i64, Decimal) = apps::table
        .filter(apps::payment_id.eq(payment_id))
        .filter(apps::invoice_id.eq(invoice_id))
        .order(apps::id.desc())
        .select((apps::id, apps::amount))
        .first(conn)?;
    let inv = invoices::get(conn, invoice_id)?;
    let label = inv.label();
    let verb = if amount.is_sign_negative() {
        "unapplied from"
    } else {
        "applied to"
    };
    let memo = format!("Payment {payment_id} {verb} {label}");
    let head = (
        today(),
        SourceType::PaymentApplication,
        app_id,
        label.as_str(),
        memo.as_str(),
        inv.currency.as_str(),
    );
    transfer(conn, head, Role::UnappliedCash, Role::Receivable, amount)
}

/// The refund just recorded: Dr unapplied cash / Cr cash.
pub fn refunded(conn: &mut PgConnection, payment_id: i64) -> AppResult<()> {
    let p = payments::get(conn, payment_id)?;
    let (id, amount, on): (i64, Decimal, NaiveDate) = refunds::table
        .filter(refunds::payment_id.eq(payment_id))
        .order(refunds::id.desc())
        .select((refunds::id, refunds::amount, refunds::refunded_on))
        .first(conn)?;
    let doc = format!("Payment {}", p.id);
    let memo = format!("Refund of payment {}", p.id);
    let head = (
        on,
        SourceType::Refund,
        id,
        doc.as_str(),
        memo.as_str(),
        p.currency.as_str(),
    );
    transfer(conn, head, Role::UnappliedCash, Role::Cash, amount)
}

/// A bounced payment, after its applications were undone: the cash it still held goes back.
pub fn reversed(conn: &mut PgConnection, payment_id: i64) -> AppResult<()> {
    let p = payments::get(conn, payment_id)?;
    let doc = format!("Payment {}", p.id);
    let memo = format!("Payment {} reversed", p.id);
    let head = (
        today(),
        SourceType::PaymentReversal,
        p.id,
        doc.as_str(),
        memo.as_str(),
        p.currency.as_str(),
    );
    transfer(
        conn,
        head,
        Role::UnappliedCash,
        Role::Cash,
        p.amount - p.refunded,
    )
}

/// An invoice written off: its balance moves from AR to bad debt.
pub fn written_off(conn: &mut PgConnection, invoice_id: i64, amount: Decimal) -> AppResult<()> {
    let inv = invoices::get(conn, invoice_id)?;
    let label = inv.label();
    let memo = format!("{label} written off");
    let head = (
        today(),
        SourceType::WriteOff,
        inv.id,
        label.as_str(),
        memo.as_str(),
        inv.currency.as_str(),
    );
    transfer(conn, head, Role::BadDebt, Role::Receivable, amount)
}

/// A voided invoice: the entry its finalization posted, reversed line by line (account credit
/// it drew goes back with it), so the ledger's AR keeps matching the open balances.
pub fn voided(conn: &mut PgConnection, invoice_id: i64) -> AppResult<()> {
    use crate::db::schema::tenant::{journal_entries as je, journal_lines as jl};
    let inv = invoices::get(conn, invoice_id)?;
    let lines: Vec<(String, Decimal, Option<i64>, String)> = jl::table
        .inner_join(je::table.on(je::id.eq(jl::entry_id)))
        .filter(je::source_type.eq(SourceType::Invoice.code()))
        .filter(je::source_id.eq(invoice_id))
        .order(jl::id)
        .select((jl::account_code, jl::amount, jl::source_line, jl::memo))
        .load(conn)?;
    if lines.is_empty() {
        return Ok(()); // a draft never posted
    }
    let label = inv.label();
    let entry = NewEntry {
        date: today(),
        source_type: SourceType::Void,
        source_id: inv.id,
        document: label.clone(),
        memo: format!("{label} voided"),
        currency: inv.currency.clone(),
        postings: lines
            .into_iter()
            .map(|(account, amount, source_line, memo)| domain::Posting {
                account,
                amount: -amount,
                source_line,
                memo,
            })
            .collect(),
    };
    repo::insert_entry(conn, &entry)?;
    revenue::void_schedules(conn, inv.id, today())
}
