//! What a statement shows: the account's dated movements loaded from the tenant's tables
//! (see the rules in [`super`]) and the statement formatted for the page and the PDF.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;

use super::domain::{self, Kind, Movement, Receivable, Statement, BUCKETS};
use crate::{
    accounts::contacts_repo,
    db::schema::tenant::{
        account_credits, invoices, payment_applications as apps, payments, refunds,
    },
    error::AppResult,
    invoicing::repo,
    money::Currency,
    payments::domain::Method,
};

/// Dates as the invoice shows them.
pub fn show(d: NaiveDate) -> String {
    d.format("%-d %b %Y").to_string()
}

pub fn file_name(number: &str, to: NaiveDate, ext: &str) -> String {
    let safe: String = number
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("statement-{safe}-{to}.{ext}")
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = invoices)]
struct Doc {
    id: i64,
    kind: String,
    number: Option<String>,
    currency: String,
    issue_date: NaiveDate,
    due_date: Option<NaiveDate>,
    total: Decimal,
    credit_applied: Decimal,
    related_invoice_id: Option<i64>,
}

impl Doc {
    fn label(&self) -> String {
        self.number
            .clone()
            .unwrap_or_else(|| format!("#{}", self.id))
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = payments)]
struct Pay {
    id: i64,
    method: String,
    currency: String,
    amount: Decimal,
    received_on: NaiveDate,
    reference: String,
    refunded: Decimal,
    reversed_at: Option<DateTime<Utc>>,
}

/// `(invoice, amount, applied at, payment received on, payment recorded at)`
type Applied = (i64, Decimal, DateTime<Utc>, NaiveDate, DateTime<Utc>);

/// Every dated amount that settled each invoice: account credit drawn at finalization, the
/// part of each credit note that went to it, and payment applications.
fn settlements(
    conn: &mut PgConnection,
    docs: &[Doc],
) -> AppResult<HashMap<i64, Vec<(NaiveDate, Decimal)>>> {
    let ids: Vec<i64> = docs.iter().map(|d| d.id).collect();
    // The part of a credit note that did not go to its invoice became account credit.
    let kept: Vec<(i64, Decimal)> = account_credits::table
        .filter(account_credits::invoice_id.eq_any(&ids))
        .filter(account_credits::amount.gt(Decimal::ZERO))
        .select((account_credits::invoice_id, account_credits::amount))
        .load(conn)?;
    let mut out: HashMap<i64, Vec<(NaiveDate, Decimal)>> = HashMap::new();
    for d in docs {
        match (d.kind.as_str(), d.related_invoice_id) {
            ("credit_note", Some(r)) => {
                let to_account: Decimal = kept.iter().filter(|k| k.0 == d.id).map(|k| k.1).sum();
                out.entry(r)
                    .or_default()
                    .push((d.issue_date, d.total - to_account));
            }
            ("invoice", _) if !d.credit_applied.is_zero() => {
                out.entry(d.id)
                    .or_default()
                    .push((d.issue_date, d.credit_applied));
            }
            _ => {}
        }
    }
    let applied: Vec<Applied> = apps::table
        .inner_join(payments::table)
        .filter(apps::invoice_id.eq_any(&ids))
        .select((
            apps::invoice_id,
            apps::amount,
            apps::created_at,
            payments::received_on,
            payments::created_at,
        ))
        .load(conn)?;
    for (invoice, amount, at, received, recorded) in applied {
        // now() is the transaction's start, so equal stamps mean "applied when recorded".
        let on = if at == recorded {
            received
        } else {
            at.date_naive()
        };
        out.entry(invoice).or_default().push((on, amount));
    }
    Ok(out)
}

/// The account's movements and receivables dated up to `to`.
pub fn load(
    conn: &mut PgConnection,
    account_id: i64,
    to: NaiveDate,
) -> AppResult<(Vec<Movement>, Vec<Receivable>)> {
    let docs: Vec<Doc> = invoices::table
        .filter(invoices::bill_to_account_id.eq(account_id))
        .filter(invoices::status.ne("draft"))
        .filter(invoices::status.ne("void"))
        .filter(invoices::issue_date.le(to))
        .select(Doc::as_select())
        .load(conn)?;
    let mut settled = settlements(conn, &docs)?;
    let numbers: HashMap<i64, String> = docs.iter().map(|d| (d.id, d.label())).collect();
    let mut movements = Vec::new();
    let mut receivables = Vec::new();
    for d in &docs {
        let note = d.kind == "credit_note";
        let details = match (note, d.related_invoice_id) {
            (true, Some(r)) => format!(
                "Credits {}",
                numbers.get(&r).map_or("an invoice", |s| s.as_str())
            ),
            (true, None) => "Account credit".to_owned(),
            (false, _) => d
                .due_date
                .map(|due| format!("Due {}", show(due)))
                .unwrap_or_default(),
        };
        movements.push(Movement {
            date: d.issue_date,
            currency: d.currency.clone(),
            kind: if note {
                Kind::CreditNote
            } else {
                Kind::Invoice
            },
            id: d.id,
            reference: d.label(),
            details,
            amount: d.total,
        });
        if !note {
            receivables.push(Receivable {
                id: d.id,
                currency: d.currency.clone(),
                issue_date: d.issue_date,
                due_date: d.due_date.unwrap_or(d.issue_date),
                total: d.total,
                settlements: settled.remove(&d.id).unwrap_or_default(),
            });
        }
    }
    let pays: Vec<Pay> = payments::table
        .filter(payments::account_id.eq(account_id))
        .filter(payments::received_on.le(to))
        .select(Pay::as_select())
        .load(conn)?;
    for p in &pays {
        let payment = Movement {
            date: p.received_on,
            currency: p.currency.clone(),
            kind: Kind::Payment,
            id: p.id,
            reference: p.reference.clone(),
            details: Method::parse(&p.method)
                .map_or("Payment", |m| m.label())
                .to_owned(),
            amount: p.amount,
        };
        if let Some(on) = p
            .reversed_at
            .map(|at| at.date_naive())
            .filter(|on| *on <= to)
        {
            // Nets the payment to what its refunds left, as the app treats a bounce.
            movements.push(Movement {
                date: on,
                kind: Kind::PaymentReversed,
                details: "Returned unpaid".into(),
                amount: p.amount - p.refunded,
                ..payment.clone()
            });
        }
        movements.push(payment);
    }
    let pay_ids: Vec<i64> = pays.iter().map(|p| p.id).collect();
    let refunded: Vec<(i64, Decimal, NaiveDate, String)> = refunds::table
        .filter(refunds::payment_id.eq_any(&pay_ids))
        .filter(refunds::refunded_on.le(to))
        .select((
            refunds::payment_id,
            refunds::amount,
            refunds::refunded_on,
            refunds::reference,
        ))
        .load(conn)?;
    for (payment, amount, on, reference) in refunded {
        let Some(p) = pays.iter().find(|p| p.id == payment) else {
            continue;
        };
        let of = if p.reference.is_empty() {
            format!("#{}", p.id)
        } else {
            p.reference.clone()
        };
        movements.push(Movement {
            date: on,
            currency: p.currency.clone(),
            kind: Kind::Refund,
            id: payment,
            reference,
            details: format!("Refund of payment {of}"),
            amount,
        });
    }
    Ok((movements, receivables))
}

pub fn build(
    conn: &mut PgConnection,
    account_id: i64,
    from: NaiveDate,
    to: NaiveDate,
) -> AppResult<Statement> {
    let (movements, receivables) = load(conn, account_id, to)?;
    Ok(domain::build(&movements, &receivables, from, to))
}

/// One row as shown (and printed): amounts formatted in the section's currency.
pub struct RowView {
    pub date: String,
    pub kind: &'static str,
    pub label: &'static str,
    pub id: i64,
    pub href: String,
    pub reference: String,
    pub details: String,
    pub charge: String,
    pub credit: String,
    pub balance: String,
}

pub struct SectionView {
    pub currency: String,
    pub opening: String,
    pub closing: String,
    pub rows: Vec<RowView>,
    pub totals: [(&'static str, String); 4],
    pub aging: Vec<(&'static str, String)>,
    pub open_total: String,
    pub unapplied: Option<String>,
}

pub fn views(s: &Statement, base: &str) -> Vec<SectionView> {
    s.sections
        .iter()
        .map(|x| {
            let m = Currency::formatter(&x.currency);
            let amount = |on: bool, a: Decimal| if on { m(a) } else { String::new() };
            let rows = x
                .rows
                .iter()
                .map(|r| {
                    let v = &r.movement;
                    let doc = matches!(v.kind, Kind::Invoice | Kind::CreditNote);
                    let page = if doc { "invoices" } else { "payments" };
                    RowView {
                        date: show(v.date),
                        kind: v.kind.code(),
                        label: v.kind.label(),
                        id: v.id,
                        href: format!("{base}/{page}/{}", v.id),
                        reference: if v.reference.is_empty() {
                            format!("#{}", v.id)
                        } else {
                            v.reference.clone()
                        },
                        details: v.details.clone(),
                        charge: amount(v.kind.is_charge(), v.amount),
                        credit: amount(!v.kind.is_charge(), v.amount),
                        balance: m(r.balance),
                    }
                })
                .collect();
            SectionView {
                currency: x.currency.clone(),
                opening: m(x.opening),
                closing: m(x.closing),
                rows,
                totals: [
                    ("Invoiced", m(x.invoiced)),
                    ("Credited", m(x.credited)),
                    ("Paid", m(x.paid)),
                    ("Refunded", m(x.refunded)),
                ],
                aging: BUCKETS
                    .iter()
                    .copied()
                    .zip(x.aging.buckets.map(&m))
                    .collect(),
                open_total: m(x.aging.open_total),
                unapplied: (!x.aging.unapplied.is_zero()).then(|| m(x.aging.unapplied)),
            }
        })
        .collect()
}

/// Who receives statements: active contacts with an email who get invoices or handle billing.
pub fn recipients(conn: &mut PgConnection, account_id: i64) -> AppResult<Vec<String>> {
    let mut to: Vec<String> = contacts_repo::list(conn, account_id)?
        .into_iter()
        .filter(|c| c.status == "active")
        .filter(|c| c.receives_invoices || c.roles.iter().any(|r| r == "billing"))
        .filter_map(|c| c.email)
        .filter(|e| !e.trim().is_empty())
        .collect();
    to.sort();
    to.dedup();
    Ok(to)
}

pub fn company(conn: &mut PgConnection) -> AppResult<String> {
    let legal = repo::text_setting(conn, "company.legal_name")?;
    if legal.is_empty() {
        repo::text_setting(conn, "company.name")
    } else {
        Ok(legal)
    }
}
