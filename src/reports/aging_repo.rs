//! The aging queries: one SQL statement per view, aggregated in PostgreSQL (rules in
//! [`super`]). Filters are bound parameters; the only text spliced into the SQL is the bucket
//! `CASE` generated from constants and the choice of grouping.
//!
//! The detail (a page of invoices) reads `invoices` through the covering partial index of
//! the open receivables. The summary, which aggregates every open receivable, reads the slim
//! trigger-kept copy `ar_open` instead and is built in [`super::aging_summary`] (where its
//! cost goes is explained there). The detail takes settlements after the date from [`LATE`]
//! (applications and payments), the summary its cash from the trigger-kept `ar_settlements`;
//! the two can only disagree if a trigger-kept table drifted, which the integration tests
//! check after every kind of change.

use chrono::NaiveDate;
use diesel::{
    pg::Pg,
    prelude::*,
    query_builder::{BoxedSqlQuery, SqlQuery},
    sql_query,
    sql_types::{BigInt, Bool, Date, Int4, Nullable, Numeric, Text},
};
use rust_decimal::Decimal;

use super::aging::{sql_case, Bucket};
use super::aging_summary::summary_sql;
use crate::error::AppResult;

/// Rows shown per currency at most; the page says when a block was cut.
pub const ROW_LIMIT: i64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Account,
    Owner,
    Currency,
}

impl Group {
    pub fn parse(s: &str) -> Option<Group> {
        match s.trim() {
            "" | "account" => Some(Group::Account),
            "owner" => Some(Group::Owner),
            "currency" => Some(Group::Currency),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Group::Account => "account",
            Group::Owner => "owner",
            Group::Currency => "currency",
        }
    }
}

/// Whose accounts: anyone, nobody's (unassigned) or one member's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Any,
    Unassigned,
    User(i64),
}

/// Validated filters, shared by the summary and the detail query.
#[derive(Debug, Clone)]
pub struct Filters {
    pub as_of: NaiveDate,
    pub currency: Option<String>,
    pub owner: Owner,
    /// The account and every descendant (hierarchy).
    pub account: Option<i64>,
    /// Issue date range of the invoices.
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub bucket: Option<Bucket>,
    /// Sales: only accounts this user owns.
    pub visible_owner: Option<i64>,
}

/// The part of `amount_credited` settled by credit notes issued after `$1`, per invoice
/// (`SELECT invoice_id, amount, 1`): a note settles its invoice on its issue date, and the part
/// that did is `min(amount_credited, Σ totals of its notes issued ≤ $1)`. Shared by [`LATE`]
/// and the summary, which takes cash from the trigger-kept `ar_settlements` instead.
macro_rules! credited_late {
    () => {
        "    SELECT i.id, GREATEST(i.amount_credited - COALESCE((
               SELECT sum(c.total) FROM invoices c
                WHERE c.related_invoice_id = i.id AND c.kind = 'credit_note'
                  AND c.status NOT IN ('draft', 'void') AND c.issue_date <= $1::date), 0), 0), 1
      FROM invoices i
     WHERE i.amount_credited > 0
       AND i.id IN (SELECT c.related_invoice_id FROM invoices c
                     WHERE c.kind = 'credit_note' AND c.status NOT IN ('draft', 'void')
                       AND c.issue_date > $1::date AND c.related_invoice_id IS NOT NULL)"
    };
}
pub(crate) use credited_late;

/// Every settlement dated after `$1`, per invoice (`late`), for the detail statement (the
/// summary reads the same cash from `ar_settlements`, with the same effective days).
///
/// A cash application counts on its payment's received_on when written with the payment
/// (same created_at), else on its own UTC day. Rather than joining every application created
/// after $1 to its payment to decide (a hash join over all payments), take (a) every
/// application created after $1 from a covering index, (b) take back the ones written with a
/// payment created after $1 but received by $1 (backdated cash), and (c) add the ones written
/// with a payment created by $1 but received after it (post-dated cash); (b) and (c) read few
/// rows through the payments indexes. The planner assumes the two dates independent and
/// expects many such payments, then hashes every application; `OFFSET 0` keeps the lateral
/// lookup per payment found. `w` counts the settlements so an invoice whose only candidates
/// were taken back gets no `adj` row.
pub(crate) const LATE: &str = concat!(
    "late AS (
    SELECT pa.invoice_id, pa.amount, 1 AS w FROM payment_applications pa
     WHERE pa.created_at >= (($1::date + 1)::timestamp AT TIME ZONE 'UTC')
    UNION ALL
    SELECT pa.invoice_id, -pa.amount, -1 FROM payments p
     CROSS JOIN LATERAL (SELECT x.invoice_id, x.amount FROM payment_applications x
                          WHERE x.payment_id = p.id AND x.created_at = p.created_at OFFSET 0) pa
     WHERE p.created_at >= (($1::date + 1)::timestamp AT TIME ZONE 'UTC')
       AND p.received_on <= $1::date
    UNION ALL
    SELECT pa.invoice_id, pa.amount, 1 FROM payments p
     CROSS JOIN LATERAL (SELECT x.invoice_id, x.amount FROM payment_applications x
                          WHERE x.payment_id = p.id AND x.created_at = p.created_at OFFSET 0) pa
     WHERE p.received_on > $1::date
       AND p.created_at < (($1::date + 1)::timestamp AT TIME ZONE 'UTC')
    UNION ALL
",
    credited_late!(),
    "
)"
);

/// The account filter's subtree (`$5`).
pub(crate) const SUB: &str = "sub(id) AS (
    SELECT id FROM accounts WHERE id = $5
    UNION
    SELECT a.id FROM accounts a JOIN sub ON a.parent_id = sub.id
)";

/// Every invoice's balance as of `$1`, filtered, per invoice (the detail view): current
/// amount due plus whatever settled it after the date (payment applications by their
/// effective day, the credit-note part of `amount_credited` issued later), so the usual case
/// (as of today) touches only open invoices through a partial index and the few late
/// settlements.
fn aged_ctes() -> String {
    format!(
        "WITH RECURSIVE
{SUB},
{LATE},
adj AS (
    SELECT invoice_id, sum(amount) AS amount FROM late GROUP BY invoice_id HAVING sum(w) > 0
),
bal AS (
    SELECT id, number, bill_to_account_id, currency, issue_date, due, balance,
           ($1::date - due) AS days, {bucket} AS bucket
      FROM (
        SELECT i.id, i.number, i.bill_to_account_id, i.currency, i.issue_date,
               COALESCE(i.due_date, i.issue_date) AS due, i.status,
               i.amount_due + COALESCE(adj.amount, 0) AS balance
          FROM invoices i LEFT JOIN adj ON adj.invoice_id = i.id
         WHERE i.kind = 'invoice' AND i.status IN ('open', 'uncollectible') AND i.amount_due > 0
           AND i.issue_date <= $1::date
        UNION ALL
        SELECT i.id, i.number, i.bill_to_account_id, i.currency, i.issue_date,
               COALESCE(i.due_date, i.issue_date), i.status, i.amount_due + adj.amount
          FROM adj JOIN invoices i ON i.id = adj.invoice_id
         WHERE i.kind = 'invoice' AND i.status NOT IN ('draft', 'void')
           AND NOT (i.status IN ('open', 'uncollectible') AND i.amount_due > 0)
           AND i.issue_date <= $1::date
      ) b
     WHERE b.balance <> 0
       AND (b.status <> 'uncollectible' OR NOT EXISTS (
            SELECT 1 FROM events e
             WHERE e.entity = 'invoice' AND e.entity_id = b.id AND e.type = 'invoice.written_off'
               AND (e.created_at AT TIME ZONE 'UTC')::date <= $1::date))
       AND ($2::text IS NULL OR b.currency = $2)
       AND ($6::date IS NULL OR b.issue_date >= $6)
       AND ($7::date IS NULL OR b.issue_date <= $7)
)",
        bucket = sql_case("($1::date - due)")
    )
}

/// Invoice level (detail): `bal` for the accounts that pass the filters.
const AGED: &str = ",
aged AS (
    SELECT b.*, a.display_name FROM bal b JOIN accounts a ON a.id = b.bill_to_account_id
     WHERE ACCOUNT_OK
)";

/// Minor units (scale 0) back to amounts with the columns' scale 4, as a numeric sum of the
/// amounts would give: numeric × 0.0001 is exact and has scale 0 + 4.
pub(crate) const UNITS: &str =
    "b0 * 0.0001 AS b0, b1 * 0.0001 AS b1, b2 * 0.0001 AS b2, b3 * 0.0001 AS b3,
       b4 * 0.0001 AS b4, b5 * 0.0001 AS b5, total * 0.0001 AS total";

/// Whether account `a` passes the account, owner and visibility filters.
pub(crate) fn account_ok(a: &str) -> String {
    format!(
        "($5::bigint IS NULL OR {a}.id IN (SELECT id FROM sub))
       AND ($3::bigint IS NULL OR {a}.owner_user_id = $3)
       AND (NOT $4::bool OR {a}.owner_user_id IS NULL)
       AND ($8::bigint IS NULL OR {a}.owner_user_id = $8)"
    )
}

/// The invoice-level statement: rows cut at `$9`, with each currency's full count and sum.
pub fn detail_sql() -> String {
    format!(
        "{ctes}{aged}
SELECT id, number, bill_to_account_id AS account_id, display_name, currency, issue_date, due,
       days, bucket, balance,
       count(*) OVER (PARTITION BY currency) AS currency_count,
       sum(balance) OVER (PARTITION BY currency) AS currency_total
  FROM aged
 WHERE ($10::int IS NULL OR bucket = $10)
 ORDER BY currency, days DESC, id
 LIMIT $9",
        ctes = aged_ctes(),
        aged = AGED.replace("ACCOUNT_OK", &account_ok("a")),
    )
}

pub(crate) fn bound(sql: String, f: &Filters, limit: i64) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    let (owner_id, unassigned) = match f.owner {
        Owner::Any => (None, false),
        Owner::Unassigned => (None, true),
        Owner::User(u) => (Some(u), false),
    };
    sql_query(sql)
        .into_boxed::<Pg>()
        .bind::<Date, _>(f.as_of)
        .bind::<Nullable<Text>, _>(f.currency.clone())
        .bind::<Nullable<BigInt>, _>(owner_id)
        .bind::<Bool, _>(unassigned)
        .bind::<Nullable<BigInt>, _>(f.account)
        .bind::<Nullable<Date>, _>(f.from)
        .bind::<Nullable<Date>, _>(f.to)
        .bind::<Nullable<BigInt>, _>(f.visible_owner)
        .bind::<BigInt, _>(limit)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct SummaryRow {
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub key: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub label: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub parent_id: Option<i64>,
    #[diesel(sql_type = Bool)]
    pub is_total: bool,
    #[diesel(sql_type = Numeric)]
    pub b0: Decimal,
    #[diesel(sql_type = Numeric)]
    pub b1: Decimal,
    #[diesel(sql_type = Numeric)]
    pub b2: Decimal,
    #[diesel(sql_type = Numeric)]
    pub b3: Decimal,
    #[diesel(sql_type = Numeric)]
    pub b4: Decimal,
    #[diesel(sql_type = Numeric)]
    pub b5: Decimal,
    #[diesel(sql_type = Numeric)]
    pub total: Decimal,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
    /// Rows of this kind in the currency before the cut.
    #[diesel(sql_type = BigInt)]
    pub shown_of: i64,
}

impl SummaryRow {
    pub fn buckets(&self) -> [Decimal; 6] {
        [self.b0, self.b1, self.b2, self.b3, self.b4, self.b5]
    }
}

#[derive(Debug, Clone, QueryableByName)]
pub struct DetailRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub number: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub account_id: i64,
    #[diesel(sql_type = Text)]
    pub display_name: String,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Date)]
    pub issue_date: NaiveDate,
    #[diesel(sql_type = Date)]
    pub due: NaiveDate,
    #[diesel(sql_type = Int4)]
    pub days: i32,
    #[diesel(sql_type = Int4)]
    pub bucket: i32,
    #[diesel(sql_type = Numeric)]
    pub balance: Decimal,
    #[diesel(sql_type = BigInt)]
    pub currency_count: i64,
    #[diesel(sql_type = Numeric)]
    pub currency_total: Decimal,
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the summary, for `arbor bench aging --explain`.
pub fn explain_summary(conn: &mut PgConnection, f: &Filters, group: Group) -> AppResult<String> {
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
        line: String,
    }
    tune_for_summary(conn)?;
    let sql = format!("EXPLAIN (ANALYZE, BUFFERS) {}", summary_sql(group, f));
    let lines: Vec<Line> = bound(sql, f, ROW_LIMIT).load(conn)?;
    Ok(lines
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Report settings for the rest of the transaction (`set_config(.., true)` is `SET LOCAL`).
/// The planner's cost estimate for these aggregates crosses the JIT threshold, and compiling
/// the plan took longer (≈1.3 s at a million invoices) than running it; and the default
/// work_mem made the per-account sorts spill to disk.
pub fn tune_for_report(conn: &mut PgConnection) -> AppResult<()> {
    sql_query("SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true)")
        .execute(conn)?;
    Ok(())
}

/// [`tune_for_report`] plus, for the summary only: the hierarchy (a recursive CTE) is
/// estimated at ten times its size with unknown distinct values, so the planner sorts the
/// 10⁵ open receivables for a merge join with it; hashing the hierarchy's few rows instead is
/// three times cheaper, and nothing else in the statement wants a merge join.
fn tune_for_summary(conn: &mut PgConnection) -> AppResult<()> {
    tune_for_report(conn)?;
    sql_query("SELECT set_config('enable_mergejoin', 'off', true)").execute(conn)?;
    Ok(())
}

pub fn summary(conn: &mut PgConnection, f: &Filters, group: Group) -> AppResult<Vec<SummaryRow>> {
    tune_for_summary(conn)?;
    Ok(bound(summary_sql(group, f), f, ROW_LIMIT).load(conn)?)
}

pub fn detail(conn: &mut PgConnection, f: &Filters, limit: i64) -> AppResult<Vec<DetailRow>> {
    tune_for_report(conn)?;
    let bucket = f
        .bucket
        .map(|b| i32::try_from(b.index()).unwrap_or_default());
    Ok(bound(detail_sql(), f, limit)
        .bind::<Nullable<Int4>, _>(bucket)
        .load(conn)?)
}
