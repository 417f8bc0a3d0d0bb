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
-- Settlements dated after $1. A cash application counts on its payment's received_on when
-- written with the payment (same created_at), else on its own UTC day. Rather than joining
-- every application created after $1 to its payment to decide (a hash join over all
-- payments), take (a) every application created after $1 from a covering index, (b) take
-- back the ones written with a payment created after $1 but received by $1 (backdated
-- cash), and (c) add the ones written with a payment created by $1 but received after it
-- (post-dated cash); (b) and (c) read few rows through the payments indexes. The planner
-- assumes the two dates independent and expects many such payments, then hashes every
-- application; `OFFSET 0` keeps the lateral lookup per payment found. `w` counts the
-- settlements so an invoice whose only candidates were taken back gets no `adj` row, as before.
late AS (
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
    SELECT i.id, GREATEST(i.amount_credited - COALESCE((
               SELECT sum(c.total) FROM invoices c
                WHERE c.related_invoice_id = i.id AND c.kind = 'credit_note'
                  AND c.status NOT IN ('draft', 'void') AND c.issue_date <= $1::date), 0), 0), 1
      FROM invoices i
     WHERE i.amount_credited > 0
       AND i.id IN (SELECT c.related_invoice_id FROM invoices c
                     WHERE c.kind = 'credit_note' AND c.status NOT IN ('draft', 'void')
                       AND c.issue_date > $1::date AND c.related_invoice_id IS NOT NULL)
),
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

/// Account level (summary): one hash aggregate over the invoices per account and currency
/// with the six bucket sums (materialized so the planner hashes it instead of sorting 10⁵+
/// invoices for a merge join), then the accounts that pass the filters (joined per group, not
/// per invoice). Sums are taken in integer minor units (amounts are NUMERIC(19,4)):
/// PostgreSQL sums int8 with a 128-bit accumulator, several times faster than numeric, and
/// exact, and the roll-up and ranking then add and compare int8 instead of numeric; [`UNITS`]
/// turns them back into amounts once per output row. An account's bucket above ≈922 trillion
/// would overflow the cast and fail the report rather than mis-sum it.
const PER: &str = ",
per_acc AS MATERIALIZED (
    SELECT b.bill_to_account_id AS account_id, b.currency,
           COALESCE(sum(b.m) FILTER (WHERE b.bucket = 0), 0)::bigint AS b0,
           COALESCE(sum(b.m) FILTER (WHERE b.bucket = 1), 0)::bigint AS b1,
           COALESCE(sum(b.m) FILTER (WHERE b.bucket = 2), 0)::bigint AS b2,
           COALESCE(sum(b.m) FILTER (WHERE b.bucket = 3), 0)::bigint AS b3,
           COALESCE(sum(b.m) FILTER (WHERE b.bucket = 4), 0)::bigint AS b4,
           COALESCE(sum(b.m) FILTER (WHERE b.bucket = 5), 0)::bigint AS b5,
           count(*) AS n
      FROM (SELECT bill_to_account_id, currency, bucket, (balance * 10000)::bigint AS m FROM bal) b
     GROUP BY b.bill_to_account_id, b.currency
),
PER_ACCOUNTS
)";

/// `per` from `per_acc` when the owner or an account filter matters: the accounts joined per
/// group.
const PER_FILTERED: &str = "per AS (
    SELECT p.account_id, a.owner_user_id, p.currency, p.b0, p.b1, p.b2, p.b3, p.b4, p.b5,
           PER_TOTAL, p.n
      FROM per_acc p JOIN accounts a ON a.id = p.account_id
     WHERE ACCOUNT_OK";

/// `per` without account filters and not grouped by owner: every invoice's payer exists
/// (foreign key), so joining the accounts would change nothing and cost a pass over them.
const PER_ALL: &str = "per AS (
    SELECT p.account_id, NULL::bigint AS owner_user_id, p.currency, p.b0, p.b1, p.b2, p.b3,
           p.b4, p.b5, PER_TOTAL, p.n
      FROM per_acc p";

/// An account's total is the sum of its buckets (every invoice is in exactly one bucket):
/// adding six int8 per account is cheaper than a seventh aggregate over every invoice.
const PER_TOTAL: &str = "p.b0 + p.b1 + p.b2 + p.b3 + p.b4 + p.b5 AS total";

/// Minor units (scale 0) back to amounts with the columns' scale 4, as a numeric sum of the
/// amounts would give: numeric × 0.0001 is exact and has scale 0 + 4.
const UNITS: &str = "b0 * 0.0001 AS b0, b1 * 0.0001 AS b1, b2 * 0.0001 AS b2, b3 * 0.0001 AS b3,
       b4 * 0.0001 AS b4, b5 * 0.0001 AS b5, total * 0.0001 AS total";

/// Whether account `a` passes the account, owner and visibility filters.
fn account_ok(a: &str) -> String {
    format!(
        "($5::bigint IS NULL OR {a}.id IN (SELECT id FROM sub))
       AND ($3::bigint IS NULL OR {a}.owner_user_id = $3)
       AND (NOT $4::bool OR {a}.owner_user_id IS NULL)
       AND ($8::bigint IS NULL OR {a}.owner_user_id = $8)"
    )
}

/// The `per` CTE for this grouping and these filters.
fn per_accounts(group: Group, f: &Filters) -> String {
    let filtered = group == Group::Owner
        || f.owner != Owner::Any
        || f.account.is_some()
        || f.visible_owner.is_some();
    if filtered {
        PER_FILTERED
            .replace("ACCOUNT_OK", &account_ok("a"))
            .replace("PER_TOTAL", PER_TOTAL)
    } else {
        PER_ALL.replace("PER_TOTAL", PER_TOTAL)
    }
}

/// Sums of `per` rows (minor units, still int8: see [`PER`]).
const ROLLED_SUMS: &str = "sum(b0)::bigint AS b0, sum(b1)::bigint AS b1, sum(b2)::bigint AS b2,
       sum(b3)::bigint AS b3, sum(b4)::bigint AS b4, sum(b5)::bigint AS b5,
       sum(total)::bigint AS total, sum(n)::bigint AS n";

/// Per-currency totals over every account: summed as numeric (int8 sums are exact in
/// numeric), converted by [`UNITS`] like the rows.
const TOTAL_SUMS: &str = "sum(b0) AS b0, sum(b1) AS b1, sum(b2) AS b2, sum(b3) AS b3,
       sum(b4) AS b4, sum(b5) AS b5, sum(total) AS total, sum(n)::bigint AS n";

/// The summary statement for `group`: rows (cut at `$9` per currency, largest first) and one
/// total row per currency computed from the accounts' own invoices, never from the
/// (overlapping) rolled-up rows.
pub fn summary_sql(group: Group, f: &Filters) -> String {
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
           COALESCE(p.n, 0) + COALESCE(c.n, 0) AS n,
           -- An account in `per` passed the filters; only ancestors known from `contrib` alone
           -- are checked (the same check `per` applies).
           p.account_id IS NOT NULL AS own
      FROM per p FULL JOIN contrib c ON c.key = p.account_id AND c.currency = p.currency
),
visible AS (
    SELECT r.key, r.currency, r.b0, r.b1, r.b2, r.b3, r.b4, r.b5, r.total, r.n FROM rolled r
     WHERE r.own
        OR r.key IN (SELECT a.id FROM accounts a WHERE a.id IN (SELECT key FROM contrib) AND {ok})
),
-- The cut per currency is a top-N (a bounded heap sort) per currency instead of numbering
-- every row; the count before the cut comes from one pass.
cur AS (SELECT currency, count(*) AS shown_of FROM visible GROUP BY currency),
rows_ AS (
    SELECT c.currency, t.key, a.display_name AS label, a.parent_id, false AS is_total,
           t.b0, t.b1, t.b2, t.b3, t.b4, t.b5, t.total, t.n, c.shown_of
      FROM cur c
     CROSS JOIN LATERAL (SELECT v.* FROM visible v WHERE v.currency = c.currency
                          ORDER BY v.total DESC, v.key LIMIT $9) t
     -- One lookup per shown row (the planner expects far more rows and hashes every account).
     CROSS JOIN LATERAL (SELECT x.display_name, x.parent_id FROM accounts x
                          WHERE x.id = t.key OFFSET 0) a
    UNION ALL
    SELECT currency, NULL, NULL, NULL, true, {TOTAL_SUMS}, 1 FROM per GROUP BY currency
)",
            ok = account_ok("a")
        ),
        Group::Owner => format!(
            ",
rows_ AS (
    SELECT currency, owner_user_id AS key, NULL::text AS label, NULL::bigint AS parent_id,
           GROUPING(owner_user_id) = 1 AS is_total, {TOTAL_SUMS}
      FROM per GROUP BY GROUPING SETS ((currency, owner_user_id), (currency))
)"
        ),
        Group::Currency => format!(
            ",
rows_ AS (
    SELECT currency, NULL::bigint AS key, NULL::text AS label, NULL::bigint AS parent_id,
           false AS is_total, {TOTAL_SUMS}
      FROM per GROUP BY currency
)"
        ),
    };
    let select = if group == Group::Account {
        format!(
            "SELECT currency, key, label, parent_id, is_total, {UNITS}, n, shown_of
  FROM rows_
 ORDER BY currency, is_total, rows_.total DESC, key"
        )
    } else {
        format!(
            "SELECT currency, key, label, parent_id, is_total, {UNITS}, n, shown_of
  FROM (SELECT r.*,
               row_number() OVER (PARTITION BY currency, is_total ORDER BY total DESC, key) AS rn,
               count(*) OVER (PARTITION BY currency, is_total) AS shown_of
          FROM rows_ r) x
 WHERE is_total OR rn <= $9
 ORDER BY currency, is_total, x.total DESC, key"
        )
    };
    format!(
        "{ctes}{per}{body}
{select}",
        ctes = aged_ctes(),
        per = PER.replace("PER_ACCOUNTS", &per_accounts(group, f)),
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

pub fn summary(conn: &mut PgConnection, f: &Filters, group: Group) -> AppResult<Vec<SummaryRow>> {
    tune_for_report(conn)?;
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
