//! The collections queries (rules in [`super::collections`]). Sums happen in PostgreSQL with
//! bound parameters; AR as of a date is the aging report's own reconstruction
//! (`aging_repo::summary` grouped by currency), so both reports always agree. Only the
//! per-invoice lag rows are loaded, filtered to the payment date range and capped.

use chrono::NaiveDate;
use diesel::{
    pg::Pg,
    prelude::*,
    query_builder::{BoxedSqlQuery, SqlQuery},
    sql_query,
    sql_types::{BigInt, Bool, Date, Nullable, Numeric, Text},
};
use rust_decimal::Decimal;

use super::aging_repo::{self, Group, Owner};
use crate::error::AppResult;

/// Paid invoices loaded for the lag tables at most; the page says when it cut.
pub const LAG_LIMIT: i64 = 20_000;

/// Validated filters. `from`/`to` bound the report's periods (issue dates of sales, payment
/// dates of the lag); overdue and promises are as of `today`.
#[derive(Debug, Clone)]
pub struct Filters {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub currency: Option<String>,
    pub owner: Owner,
    /// The account and every descendant.
    pub account: Option<i64>,
    /// Sales: only accounts this user owns.
    pub visible_owner: Option<i64>,
}

/// Parameters `$1..$5`: currency, owner, unassigned, account, visible owner. Queries add
/// their own from `$6`.
fn bound(sql: String, f: &Filters) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    let (owner_id, unassigned) = match f.owner {
        Owner::Any => (None, false),
        Owner::Unassigned => (None, true),
        Owner::User(u) => (Some(u), false),
    };
    sql_query(sql)
        .into_boxed::<Pg>()
        .bind::<Nullable<Text>, _>(f.currency.clone())
        .bind::<Nullable<BigInt>, _>(owner_id)
        .bind::<Bool, _>(unassigned)
        .bind::<Nullable<BigInt>, _>(f.account)
        .bind::<Nullable<BigInt>, _>(f.visible_owner)
}

const SUB: &str = "WITH RECURSIVE sub(id) AS (
    SELECT id FROM accounts WHERE id = $4
    UNION
    SELECT a.id FROM accounts a JOIN sub ON a.parent_id = sub.id
)";

/// Whether account `a` (and currency column `cur`) pass the filters.
fn ok(a: &str, cur: &str) -> String {
    format!(
        "($1::text IS NULL OR {cur} = $1)
       AND ($4::bigint IS NULL OR {a}.id IN (SELECT id FROM sub))
       AND ($2::bigint IS NULL OR {a}.owner_user_id = $2)
       AND (NOT $3::bool OR {a}.owner_user_id IS NULL)
       AND ($5::bigint IS NULL OR {a}.owner_user_id = $5)"
    )
}

/// AR as of `as_of` per currency: `(currency, total, current part)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArTotal {
    pub currency: String,
    pub total: Decimal,
    pub current: Decimal,
}

pub fn ar_as_of(conn: &mut PgConnection, f: &Filters, as_of: NaiveDate) -> AppResult<Vec<ArTotal>> {
    let af = aging_repo::Filters {
        as_of,
        currency: f.currency.clone(),
        owner: f.owner,
        account: f.account,
        from: None,
        to: None,
        bucket: None,
        visible_owner: f.visible_owner,
    };
    Ok(aging_repo::summary(conn, &af, Group::Currency)?
        .into_iter()
        .filter(|r| !r.is_total)
        .map(|r| ArTotal {
            currency: r.currency,
            total: r.total,
            current: r.b0,
        })
        .collect())
}

#[derive(Debug, Clone, QueryableByName)]
pub struct MonthSales {
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Date)]
    pub month: NaiveDate,
    /// The whole calendar month (count-back history).
    #[diesel(sql_type = Numeric)]
    pub sales: Decimal,
    /// The part issued on or after `from` (the first period may start mid-month).
    #[diesel(sql_type = Numeric)]
    pub in_range: Decimal,
}

/// Credit sales per currency and calendar month, issued in `[history_start, to]`.
pub fn sales_by_month(
    conn: &mut PgConnection,
    f: &Filters,
    history_start: NaiveDate,
) -> AppResult<Vec<MonthSales>> {
    let sql = format!(
        "{SUB}
SELECT i.currency, date_trunc('month', i.issue_date)::date AS month,
       sum(i.total) AS sales,
       COALESCE(sum(i.total) FILTER (WHERE i.issue_date >= $8), 0) AS in_range
  FROM invoices i JOIN accounts a ON a.id = i.bill_to_account_id
 WHERE i.kind = 'invoice' AND i.status NOT IN ('draft', 'void')
   AND i.issue_date >= $6 AND i.issue_date <= $7
   AND {ok}
 GROUP BY 1, 2 ORDER BY 1, 2",
        ok = ok("a", "i.currency")
    );
    Ok(bound(sql, f)
        .bind::<Date, _>(history_start)
        .bind::<Date, _>(f.to)
        .bind::<Date, _>(f.from)
        .load(conn)?)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct PaidRow {
    #[diesel(sql_type = BigInt)]
    pub invoice_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub number: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub account_id: i64,
    #[diesel(sql_type = Text)]
    pub account: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub owner_user_id: Option<i64>,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Date)]
    pub issue_date: NaiveDate,
    #[diesel(sql_type = Date)]
    pub due: NaiveDate,
    #[diesel(sql_type = Date)]
    pub paid_on: NaiveDate,
}

/// Invoices whose cash applications reached their balance (total − account credit −
/// credit notes) with a payment received in `[from, to]`; the first such payment dates it.
pub fn paid_invoices(conn: &mut PgConnection, f: &Filters) -> AppResult<Vec<PaidRow>> {
    let sql = format!(
        "{SUB},
cum AS (
    SELECT pa.invoice_id, p.received_on,
           sum(pa.amount) OVER (PARTITION BY pa.invoice_id
                                ORDER BY p.received_on, pa.id
                                ROWS UNBOUNDED PRECEDING) AS paid
      FROM invoices i
      JOIN payment_applications pa ON pa.invoice_id = i.id
      JOIN payments p ON p.id = pa.payment_id
     WHERE i.kind = 'invoice' AND i.status = 'paid' AND i.amount_paid > 0
),
done AS (
    SELECT c.invoice_id, min(c.received_on) AS paid_on
      FROM cum c JOIN invoices i ON i.id = c.invoice_id
     WHERE c.paid >= i.total - i.credit_applied - i.amount_credited
     GROUP BY c.invoice_id
)
SELECT i.id AS invoice_id, i.number, a.id AS account_id, a.display_name AS account,
       a.owner_user_id, i.currency, i.issue_date, COALESCE(i.due_date, i.issue_date) AS due,
       d.paid_on
  FROM done d JOIN invoices i ON i.id = d.invoice_id
  JOIN accounts a ON a.id = i.bill_to_account_id
 WHERE d.paid_on >= $6 AND d.paid_on <= $7 AND {ok}
 ORDER BY d.paid_on, i.id
 LIMIT $8",
        ok = ok("a", "i.currency")
    );
    Ok(bound(sql, f)
        .bind::<Date, _>(f.from)
        .bind::<Date, _>(f.to)
        .bind::<BigInt, _>(LAG_LIMIT)
        .load(conn)?)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct OverdueRow {
    #[diesel(sql_type = BigInt)]
    pub account_id: i64,
    #[diesel(sql_type = Text)]
    pub account: String,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Numeric)]
    pub overdue: Decimal,
    #[diesel(sql_type = BigInt)]
    pub invoices: i64,
    #[diesel(sql_type = Date)]
    pub oldest_due: NaiveDate,
}

/// Open invoices past their due date as of `today`, per payer and currency, largest first.
/// Written-off (uncollectible) invoices are out of AR, as in the aging report today.
pub fn overdue_by_account(
    conn: &mut PgConnection,
    f: &Filters,
    today: NaiveDate,
) -> AppResult<Vec<OverdueRow>> {
    let sql = format!(
        "{SUB}
SELECT a.id AS account_id, a.display_name AS account, i.currency,
       sum(i.amount_due) AS overdue, count(*) AS invoices,
       min(COALESCE(i.due_date, i.issue_date)) AS oldest_due
  FROM invoices i JOIN accounts a ON a.id = i.bill_to_account_id
 WHERE i.kind = 'invoice' AND i.status = 'open' AND i.amount_due > 0
   AND COALESCE(i.due_date, i.issue_date) < $6 AND {ok}
 GROUP BY a.id, a.display_name, i.currency
 ORDER BY i.currency, overdue DESC, a.id
 LIMIT 500",
        ok = ok("a", "i.currency")
    );
    Ok(bound(sql, f).bind::<Date, _>(today).load(conn)?)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct PromiseRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub account_id: i64,
    #[diesel(sql_type = Text)]
    pub account: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub invoice_id: Option<i64>,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Numeric)]
    pub amount: Decimal,
    #[diesel(sql_type = Date)]
    pub promised_on: NaiveDate,
}

/// Open promises to pay due on or before `until` (overdue promises included), soonest first.
pub fn promises_due(
    conn: &mut PgConnection,
    f: &Filters,
    until: NaiveDate,
) -> AppResult<Vec<PromiseRow>> {
    let sql = format!(
        "{SUB}
SELECT p.id, a.id AS account_id, a.display_name AS account, p.invoice_id, p.currency,
       p.amount, p.promised_on
  FROM promises_to_pay p JOIN accounts a ON a.id = p.account_id
 WHERE p.status = 'open' AND p.promised_on <= $6 AND {ok}
 ORDER BY p.currency, p.promised_on, p.id
 LIMIT 500",
        ok = ok("a", "p.currency")
    );
    Ok(bound(sql, f).bind::<Date, _>(until).load(conn)?)
}
