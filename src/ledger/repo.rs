//! Ledger queries. Every function runs inside the caller's tenant transaction.

use chrono::NaiveDate;
use diesel::{
    prelude::*,
    sql_query,
    sql_types::{Numeric, Text},
};
use rust_decimal::Decimal;

use super::{
    domain::{MappingRule, NewEntry, Role, Roles},
    export,
};
use crate::{
    db::schema::tenant::{gl_accounts, gl_mapping_rules as rules, journal_entries, journal_lines},
    error::AppResult,
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = gl_accounts)]
pub struct GlAccount {
    pub code: String,
    pub name: String,
    pub kind: String,
    pub role: Option<String>,
}

impl GlAccount {
    pub fn export(&self) -> export::Account {
        export::Account {
            code: self.code.clone(),
            name: self.name.clone(),
            kind: self.kind.clone(),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rules)]
pub struct RuleRow {
    pub id: i64,
    pub product_id: Option<i64>,
    pub entity: Option<String>,
    pub currency: Option<String>,
    pub revenue_account: String,
    pub deferred_account: String,
    pub version: i32,
    pub replaces_id: Option<i64>,
    pub active: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub retired_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl RuleRow {
    pub fn rule(&self) -> MappingRule {
        MappingRule {
            id: self.id,
            product_id: self.product_id,
            entity: self.entity.clone(),
            currency: self.currency.clone(),
            revenue_account: self.revenue_account.clone(),
            deferred_account: self.deferred_account.clone(),
        }
    }
}

pub fn chart(conn: &mut PgConnection) -> AppResult<Vec<GlAccount>> {
    Ok(gl_accounts::table
        .order(gl_accounts::code)
        .select(GlAccount::as_select())
        .load(conn)?)
}

pub fn roles(conn: &mut PgConnection) -> AppResult<Roles> {
    let rows: Vec<(String, Option<String>)> = gl_accounts::table
        .filter(gl_accounts::role.is_not_null())
        .select((gl_accounts::code, gl_accounts::role))
        .load(conn)?;
    Ok(Roles(
        rows.into_iter()
            .filter_map(|(code, role)| Some((Role::parse(&role?)?, code)))
            .collect(),
    ))
}

/// Every rule, active first, then history newest first.
pub fn all_rules(conn: &mut PgConnection) -> AppResult<Vec<RuleRow>> {
    Ok(rules::table
        .order((rules::active.desc(), rules::id.desc()))
        .select(RuleRow::as_select())
        .load(conn)?)
}

pub fn active_rules(conn: &mut PgConnection) -> AppResult<Vec<MappingRule>> {
    Ok(rules::table
        .filter(rules::active.eq(true))
        .select(RuleRow::as_select())
        .load(conn)?
        .iter()
        .map(RuleRow::rule)
        .collect())
}

/// Writes an entry; one dated in a closed month posts on the first day of the first open
/// month instead, its memo noting the original date (`revenue::open_date`).
pub fn insert_entry(conn: &mut PgConnection, e: &NewEntry) -> AppResult<i64> {
    let date = super::revenue::open_date(conn, e.date)?;
    let memo = if date == e.date {
        e.memo.clone()
    } else {
        format!("{} (dated {}, period closed)", e.memo, e.date)
    };
    let id: i64 = diesel::insert_into(journal_entries::table)
        .values((
            journal_entries::entry_date.eq(date),
            journal_entries::source_type.eq(e.source_type.code()),
            journal_entries::source_id.eq(e.source_id),
            journal_entries::document.eq(&e.document),
            journal_entries::memo.eq(&memo),
            journal_entries::currency.eq(&e.currency),
        ))
        .returning(journal_entries::id)
        .get_result(conn)?;
    let rows: Vec<_> = e
        .postings
        .iter()
        .zip(1..)
        .map(|(p, pos): (_, i32)| {
            (
                journal_lines::entry_id.eq(id),
                journal_lines::position.eq(pos),
                journal_lines::account_code.eq(&p.account),
                journal_lines::amount.eq(p.amount),
                journal_lines::currency.eq(&e.currency),
                journal_lines::source_line.eq(p.source_line),
                journal_lines::memo.eq(&p.memo),
            )
        })
        .collect();
    diesel::insert_into(journal_lines::table)
        .values(&rows)
        .execute(conn)?;
    super::push::on_entry(conn, id)?;
    Ok(id)
}

#[derive(Debug, Clone, Default)]
pub struct JournalFilter {
    /// One entry only.
    pub id: Option<i64>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub source_type: Option<String>,
    pub account: Option<String>,
    pub limit: Option<i64>,
}

type EntryRow = (i64, NaiveDate, String, i64, String, String, String);

/// Entries in date order with their lines; `account` keeps entries touching that account.
pub fn entries(conn: &mut PgConnection, f: &JournalFilter) -> AppResult<Vec<export::Entry>> {
    let mut q = journal_entries::table
        .select((
            journal_entries::id,
            journal_entries::entry_date,
            journal_entries::source_type,
            journal_entries::source_id,
            journal_entries::document,
            journal_entries::memo,
            journal_entries::currency,
        ))
        .order((journal_entries::entry_date, journal_entries::id))
        .into_boxed();
    if let Some(id) = f.id {
        q = q.filter(journal_entries::id.eq(id));
    }
    if let Some(d) = f.from {
        q = q.filter(journal_entries::entry_date.ge(d));
    }
    if let Some(d) = f.to {
        q = q.filter(journal_entries::entry_date.le(d));
    }
    if let Some(t) = &f.source_type {
        q = q.filter(journal_entries::source_type.eq(t.clone()));
    }
    if let Some(a) = &f.account {
        let touching = journal_lines::table
            .filter(journal_lines::account_code.eq(a.clone()))
            .select(journal_lines::entry_id);
        q = q.filter(journal_entries::id.eq_any(touching));
    }
    if let Some(n) = f.limit {
        q = q.limit(n);
    }
    let heads: Vec<EntryRow> = q.load(conn)?;
    let ids: Vec<i64> = heads.iter().map(|h| h.0).collect();
    let lines: Vec<(i64, String, Decimal, Option<i64>, String)> = journal_lines::table
        .filter(journal_lines::entry_id.eq_any(&ids))
        .order((journal_lines::entry_id, journal_lines::position))
        .select((
            journal_lines::entry_id,
            journal_lines::account_code,
            journal_lines::amount,
            journal_lines::source_line,
            journal_lines::memo,
        ))
        .load(conn)?;
    let mut by_entry: std::collections::HashMap<i64, Vec<export::Line>> = Default::default();
    for (entry, account_code, amount, source_line, memo) in lines {
        by_entry.entry(entry).or_default().push(export::Line {
            account_code,
            amount,
            source_line,
            memo,
        });
    }
    Ok(heads
        .into_iter()
        .map(
            |(id, date, source_type, source_id, document, memo, currency)| export::Entry {
                lines: by_entry.remove(&id).unwrap_or_default(),
                id,
                date,
                source_type,
                source_id,
                document,
                memo,
                currency,
            },
        )
        .collect())
}

#[derive(Debug, Clone, QueryableByName)]
pub struct ReconRow {
    #[diesel(sql_type = Text)]
    pub what: String,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Numeric)]
    pub ledger: Decimal,
    #[diesel(sql_type = Numeric)]
    pub documents: Decimal,
}

/// Per currency: AR in the ledger vs open invoice balances, unapplied cash vs what payments
/// have left, customer credit vs account credit balances. Liabilities are shown positive.
pub fn reconciliation(conn: &mut PgConnection) -> AppResult<Vec<ReconRow>> {
    Ok(sql_query(
        "WITH role_bal AS (
             SELECT a.role, l.currency, sum(l.amount) AS bal
             FROM journal_lines l JOIN gl_accounts a ON a.code = l.account_code
             WHERE a.role IN ('receivable', 'unapplied_cash', 'customer_credit')
             GROUP BY a.role, l.currency),
         docs AS (
             SELECT 'receivable' AS role, currency, sum(amount_due) AS bal FROM invoices
             WHERE kind = 'invoice' AND status IN ('open', 'paid') GROUP BY currency
             UNION ALL
             SELECT 'unapplied_cash', p.currency, sum(p.amount - p.refunded
                 - COALESCE((SELECT sum(a.amount) FROM payment_applications a WHERE a.payment_id = p.id), 0))
             FROM payments p WHERE p.status = 'succeeded' GROUP BY p.currency
             UNION ALL
             SELECT 'customer_credit', currency, sum(amount) FROM account_credits GROUP BY currency),
         keys AS (SELECT role, currency FROM role_bal UNION SELECT role, currency FROM docs)
         SELECT k.role AS what, k.currency,
             COALESCE((SELECT CASE WHEN k.role = 'receivable' THEN bal ELSE -bal END
                       FROM role_bal r WHERE r.role = k.role AND r.currency = k.currency), 0)::numeric AS ledger,
             COALESCE((SELECT sum(bal) FROM docs d WHERE d.role = k.role AND d.currency = k.currency), 0)::numeric AS documents
         FROM keys k
         ORDER BY k.currency, array_position(ARRAY['receivable', 'unapplied_cash', 'customer_credit'], k.role)",
    )
    .load(conn)?)
}

#[derive(QueryableByName)]
struct LineAccount {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    line: i64,
    #[diesel(sql_type = Text)]
    account: String,
}

/// Issued invoices and credit notes (not drafts) with an issue date in the range, with the
/// revenue account each line was credited to and its product's SKU, for the QBO/Xero shapes.
pub fn invoice_docs(
    conn: &mut PgConnection,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> AppResult<Vec<super::export_apps::InvoiceDoc>> {
    use crate::db::schema::tenant::{invoice_lines, invoices, products};
    use crate::invoicing::repo::{Invoice, Line};
    let mut q = invoices::table
        .filter(invoices::number.is_not_null())
        .order((invoices::issue_date, invoices::id))
        .select(Invoice::as_select())
        .into_boxed();
    if let Some(d) = from {
        q = q.filter(invoices::issue_date.ge(d));
    }
    if let Some(d) = to {
        q = q.filter(invoices::issue_date.le(d));
    }
    let docs: Vec<Invoice> = q.load(conn)?;
    let ids: Vec<i64> = docs.iter().map(|d| d.id).collect();
    let lines: Vec<Line> = invoice_lines::table
        .filter(invoice_lines::invoice_id.eq_any(&ids))
        .order((invoice_lines::invoice_id, invoice_lines::position))
        .select(Line::as_select())
        .load(conn)?;
    let line_ids: Vec<i64> = lines.iter().map(|l| l.id).collect();
    let accounts: Vec<LineAccount> = sql_query(
        "SELECT DISTINCT ON (l.source_line) l.source_line AS line, l.account_code AS account \
         FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id \
         JOIN gl_accounts a ON a.code = l.account_code \
         WHERE l.source_line = ANY($1) AND e.source_type IN ('invoice', 'credit_note') \
           AND (a.role IS NULL OR a.role IN ('deferred_revenue', 'late_fees')) \
         ORDER BY l.source_line, l.id",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(&line_ids)
    .load(conn)?;
    let product_ids: Vec<i64> = lines.iter().filter_map(|l| l.product_id).collect();
    let products: Vec<(i64, String, String)> = products::table
        .filter(products::id.eq_any(&product_ids))
        .select((products::id, products::sku, products::name))
        .load(conn)?;
    let line_accounts: Vec<(i64, String)> =
        accounts.into_iter().map(|a| (a.line, a.account)).collect();
    Ok(docs
        .into_iter()
        .map(|invoice| {
            let own: Vec<Line> = lines
                .iter()
                .filter(|l| l.invoice_id == invoice.id)
                .cloned()
                .collect();
            let own_accounts = line_accounts
                .iter()
                .filter(|(id, _)| own.iter().any(|l| l.id == *id))
                .cloned()
                .collect();
            let own_products = products
                .iter()
                .filter(|(id, _, _)| own.iter().any(|l| l.product_id == Some(*id)))
                .cloned()
                .collect();
            super::export_apps::InvoiceDoc {
                invoice,
                lines: own,
                line_accounts: own_accounts,
                products: own_products,
            }
        })
        .collect())
}
