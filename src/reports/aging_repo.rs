//! The aging queries: one SQL statement per view, aggregated in PostgreSQL (rules in
//! [`super`]). Filters are bound parameters; the only text spliced into the SQL is the bucket
//! `CASE` generated from constants and the choice of grouping.

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

/// Every invoice's balance as of `$1`, filtered: current amount due plus whatever settled it
/// after the date (payment applications by their effective day, the credit-note part of
/// `amount_credited` issued later), so the usual case (as of today) touches only open
/// invoices through a partial index and the few late settlements.
fn aged_ctes() -> String {
    format!(
        "WITH RECURSIVE
sub(id) AS (
    SELECT id FROM accounts WHERE id = $5
    UNION
    SELECT a.id FROM accounts a JOIN sub ON a.parent_id = sub.id
),
late_apps AS (
    SELECT pa.id FROM payment_applications pa
     WHERE pa.created_at >= (($1::date + 1)::timestamp AT TIME ZONE 'UTC')
    UNION
    SELECT pa.id FROM payments p JOIN payment_applications pa ON pa.payment_id = p.id
     WHERE p.received_on > $1::date
),
late AS (
    SELECT pa.invoice_id, pa.amount
      FROM late_apps l
      JOIN payment_applications pa ON pa.id = l.id
      JOIN payments p ON p.id = pa.payment_id
     WHERE CASE WHEN pa.created_at = p.created_at THEN p.received_on
                ELSE (pa.created_at AT TIME ZONE 'UTC')::date END > $1::date
    UNION ALL
    SELECT i.id, GREATEST(i.amount_credited - COALESCE((
               SELECT sum(c.total) FROM invoices c
                WHERE c.related_invoice_id = i.id AND c.kind = 'credit_note'
                  AND c.status NOT IN ('draft', 'void') AND c.issue_date <= $1::date), 0), 0)
      FROM invoices i
     WHERE i.amount_credited > 0
       AND i.id IN (SELECT c.related_invoice_id FROM invoices c
                     WHERE c.kind = 'credit_note' AND c.status NOT IN ('draft', 'void')
                       AND c.issue_date > $1::date AND c.related_invoice_id IS NOT NULL)
),
adj AS (SELECT invoice_id, sum(amount) AS amount FROM late GROUP BY invoice_id),
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

/// Account level (summary): one hash aggregate over the invoices, per account and currency
/// with the six bucket sums, for the accounts that pass the filters.
const PER: &str = ",
per AS (
    SELECT b.bill_to_account_id AS account_id, a.owner_user_id, b.currency,
           COALESCE(sum(b.balance) FILTER (WHERE b.bucket = 0), 0) AS b0,
           COALESCE(sum(b.balance) FILTER (WHERE b.bucket = 1), 0) AS b1,
           COALESCE(sum(b.balance) FILTER (WHERE b.bucket = 2), 0) AS b2,
           COALESCE(sum(b.balance) FILTER (WHERE b.bucket = 3), 0) AS b3,
           COALESCE(sum(b.balance) FILTER (WHERE b.bucket = 4), 0) AS b4,
           COALESCE(sum(b.balance) FILTER (WHERE b.bucket = 5), 0) AS b5,
           sum(b.balance) AS total, count(*) AS n
      FROM bal b JOIN accounts a ON a.id = b.bill_to_account_id
     WHERE ACCOUNT_OK
     GROUP BY b.bill_to_account_id, a.owner_user_id, b.currency
)";

/// Whether account `a` passes the account, owner and visibility filters.
fn account_ok(a: &str) -> String {
    format!(
        "($5::bigint IS NULL OR {a}.id IN (SELECT id FROM sub))
       AND ($3::bigint IS NULL OR {a}.owner_user_id = $3)
       AND (NOT $4::bool OR {a}.owner_user_id IS NULL)
       AND ($8::bigint IS NULL OR {a}.owner_user_id = $8)"
    )
}

const ROLLED_SUMS: &str = "sum(b0) AS b0, sum(b1) AS b1, sum(b2) AS b2, sum(b3) AS b3,
       sum(b4) AS b4, sum(b5) AS b5, sum(total) AS total, sum(n)::bigint AS n";

/// The summary statement for `group`: rows (cut at `$9` per currency, largest first) and one
/// total row per currency computed from the accounts' own invoices, never from the
/// (overlapping) rolled-up rows.
pub fn summary_sql(group: Group) -> String {
    let body = match group {
        // Only accounts below a parent contribute upwards (a minority), so the roll-up adds
        // those contributions to the ancestors' own rows instead of re-aggregating every
        // account; names are looked up after the cut, for the rows shown only.
        Group::Account => format!(
            ",
anc(account_id, ancestor) AS (
    SELECT per.account_id, a.parent_id FROM per JOIN accounts a ON a.id = per.account_id
     WHERE a.parent_id IS NOT NULL
    UNION
    SELECT anc.account_id, a.parent_id FROM anc JOIN accounts a ON a.id = anc.ancestor
     WHERE a.parent_id IS NOT NULL
),
contrib AS (
    SELECT anc.ancestor AS key, per.currency, {ROLLED_SUMS}
      FROM anc JOIN per ON per.account_id = anc.account_id GROUP BY anc.ancestor, per.currency
),
rolled AS (
    SELECT COALESCE(p.account_id, c.key) AS key, COALESCE(p.currency, c.currency) AS currency,
           COALESCE(p.b0, 0) + COALESCE(c.b0, 0) AS b0, COALESCE(p.b1, 0) + COALESCE(c.b1, 0) AS b1,
           COALESCE(p.b2, 0) + COALESCE(c.b2, 0) AS b2, COALESCE(p.b3, 0) + COALESCE(c.b3, 0) AS b3,
           COALESCE(p.b4, 0) + COALESCE(c.b4, 0) AS b4, COALESCE(p.b5, 0) + COALESCE(c.b5, 0) AS b5,
           COALESCE(p.total, 0) + COALESCE(c.total, 0) AS total,
           COALESCE(p.n, 0) + COALESCE(c.n, 0) AS n
      FROM per p FULL JOIN contrib c ON c.key = p.account_id AND c.currency = p.currency
),
visible AS (
    SELECT r.* FROM rolled r
     WHERE r.key IN (SELECT account_id FROM per)
        OR r.key IN (SELECT a.id FROM accounts a WHERE a.id IN (SELECT key FROM contrib) AND {ok})
),
ranked AS (
    SELECT v.*, row_number() OVER (PARTITION BY currency ORDER BY total DESC, key) AS rn,
           count(*) OVER (PARTITION BY currency) AS shown_of
      FROM visible v
),
rows_ AS (
    SELECT r.currency, r.key, a.display_name AS label, a.parent_id, false AS is_total,
           r.b0, r.b1, r.b2, r.b3, r.b4, r.b5, r.total, r.n, r.rn, r.shown_of
      FROM ranked r JOIN accounts a ON a.id = r.key
     WHERE r.rn <= $9
    UNION ALL
    SELECT currency, NULL, NULL, NULL, true, {ROLLED_SUMS}, 1, 1 FROM per GROUP BY currency
)",
            ok = account_ok("a")
        ),
        Group::Owner => format!(
            ",
rows_ AS (
    SELECT currency, owner_user_id AS key, NULL::text AS label, NULL::bigint AS parent_id,
           GROUPING(owner_user_id) = 1 AS is_total, {ROLLED_SUMS}
      FROM per GROUP BY GROUPING SETS ((currency, owner_user_id), (currency))
)"
        ),
        Group::Currency => format!(
            ",
rows_ AS (
    SELECT currency, NULL::bigint AS key, NULL::text AS label, NULL::bigint AS parent_id,
           false AS is_total, {ROLLED_SUMS}
      FROM per GROUP BY currency
)"
        ),
    };
    let select = if group == Group::Account {
        "SELECT currency, key, label, parent_id, is_total, b0, b1, b2, b3, b4, b5, total, n, shown_of
  FROM rows_
 ORDER BY currency, is_total, total DESC, key"
    } else {
        "SELECT currency, key, label, parent_id, is_total, b0, b1, b2, b3, b4, b5, total, n, shown_of
  FROM (SELECT r.*,
               row_number() OVER (PARTITION BY currency, is_total ORDER BY total DESC, key) AS rn,
               count(*) OVER (PARTITION BY currency, is_total) AS shown_of
          FROM rows_ r) x
 WHERE is_total OR rn <= $9
 ORDER BY currency, is_total, total DESC, key"
    };
    format!(
        "{ctes}{per}{body}
{select}",
        ctes = aged_ctes(),
        per = PER.replace("ACCOUNT_OK", &account_ok("a")),
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
    tune_for_report(conn)?;
    let sql = format!("EXPLAIN (ANALYZE, BUFFERS) {}", summary_sql(group));
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

pub fn summary(conn: &mut PgConnection, f: &Filters, group: Group) -> AppResult<Vec<SummaryRow>> {
    tune_for_report(conn)?;
    Ok(bound(summary_sql(group), f, ROW_LIMIT).load(conn)?)
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
