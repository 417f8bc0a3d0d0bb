//! The aging summary statement (rules in [`super`], filters, binding and rows in
//! [`super::aging_repo`]).
//!
//! Where the time goes, and why the statement is shaped this way (1M invoices, 200k open,
//! 100k accounts): nearly all of it is one hash aggregate of the open receivables per account
//! and currency, so everything else is arranged to feed that aggregate as little as possible
//! and to touch its output as rarely as possible.
//! - The open receivables come from `ar_open` (migration `000021_aging_open`), a slim copy of
//!   the open invoices kept by triggers on `invoices`, balances already in integer minor
//!   units: no NUMERIC arithmetic per invoice.
//! - Balances are additive, so the statement never joins every open invoice to its late
//!   settlements. `own` takes every open row as it is today; for the few invoices whose
//!   balance as of the date differs (settled after it, or uncollectible and maybe written off
//!   by then) `fix` adds the difference to the invoice's bucket and corrects its payer's
//!   invoice count (+1 for one paid since, −1 for one whose balance then was nil). Keeping
//!   only groups whose count stays above zero gives exactly the rows and counts of a
//!   per-invoice computation. As of today `adj` holds only the odd post-dated or late-applied
//!   payment, and `fix` reads little more than the uncollectible rows (a partial index).
//! - What settled after the date comes from `ar_settlements` (migration
//!   `000023_aging_settlements`), every cash application with its effective day and its
//!   invoice's payer, currency and dates, kept by triggers: 30 days back that is one index
//!   range of ~70k rows at 1M invoices, where reading applications, their payments and then
//!   every invoice settled since cost ~300 ms of lookups.
//! - The summary runs with merge joins off (`aging_repo::tune_for_summary` says why).
//! - Sums use `ar_sum` (int8 state, raises on overflow): `sum(int8)` allocates a 128-bit
//!   state per group and bucket, most of the aggregate's cost at 10⁵ groups.
//! - The hierarchy roll-up happens inside that one aggregate: an invoice of an account below a
//!   parent is counted once for the account and once per ancestor (a hash join against the
//!   ~10% of accounts that have a parent), so there is no second pass over per-account rows.
//!   Each invoice reaches exactly one root of its tree, so the per-currency totals are the sum
//!   of the root rows, taken in the same pass that counts the rows shown.
//! - Per-currency cut: a bounded top-N per currency; names are looked up for shown rows only.

use super::aging::sql_case;
use super::aging_repo::{account_ok, credited_late, Filters, Group, Owner, SUB, UNITS};

/// Settlements after `$1` per invoice, in minor units, with the invoice's aging columns:
/// cash from `ar_settlements` (migration `000023_aging_settlements`: each application with
/// the day it counts on, one index range and no lookups), credit notes from
/// [`credited_late`] (few rows, looked up). Invoices issued after `$1` are out already, and
/// an invoice whose late settlements cancel out keeps its balance, so it needs no row.
const ADJ: &str = concat!(
    "credited(invoice_id, amount, w) AS (
",
    credited_late!(),
    "
),
adj AS (
    SELECT invoice_id, account_id, currency, issue_date, due, uncollectible, ar_sum(m) AS m
      FROM (SELECT s.invoice_id, s.account_id, s.currency, s.issue_date, s.due,
                   s.uncollectible, s.m
              FROM ar_settlements s
             WHERE s.eff > $1::date AND s.issue_date <= $1::date
            UNION ALL
            SELECT i.id, i.bill_to_account_id, i.currency, i.issue_date,
                   COALESCE(i.due_date, i.issue_date), i.status = 'uncollectible',
                   (c.amount * 10000)::bigint
              FROM credited c JOIN invoices i ON i.id = c.invoice_id
             WHERE i.kind = 'invoice' AND i.status NOT IN ('draft', 'void')
               AND i.issue_date <= $1::date) l
     GROUP BY invoice_id, account_id, currency, issue_date, due, uncollectible
    HAVING ar_sum(m) <> 0
)"
);

/// The invoices whose balance as of `$1` is not today's open row, with what each changes in
/// `own`: `m` is added to the invoice's bucket and `c` to its payer's invoice count.
/// - Settled after `$1` and open today: the open row is counted already, so `m` is just the
///   later settlements, and `c` is −1 when they cancel the balance as of `$1` (a reversal or
///   unapplying after the date), else 0.
/// - Settled after `$1` and not open today (paid since, or nothing due): its balance then is
///   what settled it since, one more invoice.
/// - Uncollectible (out of AR from its write-off day): the open branch skips it, so it comes
///   here whole, with any later settlements.
///
/// The open row is found by a lookup per settled invoice (`OFFSET 0` keeps the planner from
/// hashing all of `ar_open` for them). Materialized: `own` is inlined twice (payers and
/// ancestors), and computed inline those ~35k lookups 30 days back ran twice.
const FIX: &str = "fix AS MATERIALIZED (
    SELECT a.invoice_id AS id, a.account_id, a.currency, a.issue_date, a.due, a.uncollectible,
           CASE WHEN NOT o.uncollectible THEN a.m ELSE COALESCE(o.m, 0) + a.m END AS m,
           CASE WHEN NOT o.uncollectible THEN CASE WHEN o.m + a.m = 0 THEN -1 ELSE 0 END
                WHEN COALESCE(o.m, 0) + a.m <> 0 THEN 1 ELSE 0 END AS c
      FROM adj a
      LEFT JOIN LATERAL (SELECT x.m, x.uncollectible FROM ar_open x
                          WHERE x.invoice_id = a.invoice_id OFFSET 0) o ON true
    UNION ALL
    SELECT o.invoice_id, o.account_id, o.currency, o.issue_date, o.due, true, o.m, 1
      FROM ar_open o
     WHERE o.uncollectible AND o.issue_date <= $1::date
       AND NOT EXISTS (SELECT 1 FROM adj WHERE adj.invoice_id = o.invoice_id)
)";

/// Signed rows whose sums per payer and currency are the balances as of `$1` (`m`, minor
/// units) and the number of invoices with a balance (`c`), filtered (`filters` names the row
/// `x`). Each branch filters its own rows and all column types match, so the planner
/// flattens the union into the consumer's scan instead of stacking a projection per level
/// over 10⁵ rows; consumers bucket by `due` after any join, not before.
fn own_cte(filters: &str) -> String {
    let filters = |x: &str| filters.replace("x.", &format!("{x}."));
    format!(
        "own AS NOT MATERIALIZED (
    SELECT o.account_id, o.currency, o.due, o.m, 1::bigint AS c
      FROM ar_open o
     WHERE NOT o.uncollectible AND o.issue_date <= $1::date{fo}
    UNION ALL
    SELECT f.account_id, f.currency, f.due, f.m, f.c::bigint FROM fix f
     WHERE (f.m <> 0 OR f.c <> 0){ff}
       AND (NOT f.uncollectible OR NOT EXISTS (
            SELECT 1 FROM events e
             WHERE e.entity = 'invoice' AND e.entity_id = f.id
               AND e.type = 'invoice.written_off'
               AND (e.created_at AT TIME ZONE 'UTC')::date <= $1::date))
)",
        fo = filters("o"),
        ff = filters("f"),
    )
}

/// The six bucket sums of `m` by `bucket`, with aggregate `agg` (0 for an empty bucket).
fn bucket_sums(agg: &str) -> String {
    (0..6)
        .map(|i| format!("COALESCE({agg}(m) FILTER (WHERE bucket = {i}), 0) AS b{i}"))
        .collect::<Vec<_>>()
        .join(",\n           ")
}

/// The summary statement for `group`: rows (cut at `$9` per currency, largest first) and one
/// total row per currency computed from the accounts' own invoices, never from the
/// (overlapping) rolled-up rows.
pub fn summary_sql(group: Group, f: &Filters) -> String {
    let filtered = group == Group::Owner
        || f.owner != Owner::Any
        || f.account.is_some()
        || f.visible_owner.is_some();
    // Row `x` passes the currency and issue-date filters; with account filters, its payer
    // passes them too (without, every payer does: foreign key, so no pass over the accounts).
    let mut filters = "
       AND ($2::text IS NULL OR x.currency = $2)
       AND ($6::date IS NULL OR x.issue_date >= $6)
       AND ($7::date IS NULL OR x.issue_date <= $7)"
        .to_owned();
    if filtered {
        filters.push_str(&format!(
            "\n       AND x.account_id IN (SELECT a.id FROM accounts a WHERE {})",
            account_ok("a")
        ));
    }
    let body = match group {
        Group::Account => {
            // Without filters every row is shown. With them, an ancestor with no own invoices
            // in the currency is shown only if it passes them itself (the check `own` applies
            // to payers); counting own invoices apart costs an aggregate per invoice, so only
            // then.
            let (visible, n_own) = if filtered {
                (
                    format!(
                        "n_own > 0 OR key IN (SELECT a.id FROM accounts a
                           WHERE a.id IN (SELECT ancestor FROM anc) AND {})",
                        account_ok("a")
                    ),
                    ",
                   ar_sum(c) FILTER (WHERE own) AS n_own",
                )
            } else {
                ("true".to_owned(), "")
            };
            format!(
                ",
anc(account_id, ancestor) AS (
    SELECT a.id, a.parent_id FROM accounts a WHERE a.parent_id IS NOT NULL
    UNION
    SELECT anc.account_id, a.parent_id FROM anc JOIN accounts a ON a.id = anc.ancestor
     WHERE a.parent_id IS NOT NULL
),
-- Each invoice counts for its payer and once more for each of the payer's ancestors.
-- A root (no one's child) row holds its whole tree, so the totals are the root rows' sums.
rolled AS MATERIALIZED (
    SELECT key, currency, b0, b1, b2, b3, b4, b5, b0 + b1 + b2 + b3 + b4 + b5 AS total, n,
           {visible} AS visible, key NOT IN (SELECT account_id FROM anc) AS root
      FROM (SELECT key, currency,
                   {sums},
                   ar_sum(c) AS n{n_own}
              FROM (SELECT r.account_id AS key, true AS own, r.currency, r.m, r.c, {bucket} AS bucket
                      FROM own r
                    UNION ALL
                    SELECT anc.ancestor, false, r.currency, r.m, r.c, {bucket}
                      FROM own r JOIN anc ON anc.account_id = r.account_id) x
             GROUP BY key, currency HAVING ar_sum(c) > 0) g
),
-- Totals from the root rows (summed as numeric: exact at any size), and the rows shown.
cur AS (
    SELECT currency, count(*) FILTER (WHERE visible) AS shown_of,
           sum(b0) FILTER (WHERE root) AS b0, sum(b1) FILTER (WHERE root) AS b1,
           sum(b2) FILTER (WHERE root) AS b2, sum(b3) FILTER (WHERE root) AS b3,
           sum(b4) FILTER (WHERE root) AS b4, sum(b5) FILTER (WHERE root) AS b5,
           sum(total) FILTER (WHERE root) AS total, (sum(n) FILTER (WHERE root))::bigint AS n
      FROM rolled GROUP BY currency
),
rows_ AS (
    SELECT c.currency, t.key, a.display_name AS label, a.parent_id, false AS is_total,
           t.b0, t.b1, t.b2, t.b3, t.b4, t.b5, t.total, t.n, c.shown_of
      FROM cur c
     CROSS JOIN LATERAL (SELECT v.key, v.b0, v.b1, v.b2, v.b3, v.b4, v.b5, v.total, v.n
                           FROM rolled v WHERE v.currency = c.currency AND v.visible
                          ORDER BY v.total DESC, v.key LIMIT $9) t
     -- One lookup per shown row (the planner expects far more rows and hashes every account).
     CROSS JOIN LATERAL (SELECT x.display_name, x.parent_id FROM accounts x
                          WHERE x.id = t.key OFFSET 0) a
    UNION ALL
    SELECT currency, NULL, NULL, NULL, true, b0, b1, b2, b3, b4, b5, total, n, 1 FROM cur
)",
                sums = bucket_sums("ar_sum"),
                bucket = sql_case("($1::date - r.due)"),
            )
        }
        Group::Owner => format!(
            ",
per AS (
    SELECT p.account_id, a.owner_user_id, p.currency, p.b0, p.b1, p.b2, p.b3, p.b4, p.b5,
           p.b0 + p.b1 + p.b2 + p.b3 + p.b4 + p.b5 AS total, p.n
      FROM (SELECT account_id, currency, {sums}, ar_sum(c) AS n
              FROM (SELECT r.*, {bucket} AS bucket FROM own r) r
             GROUP BY account_id, currency HAVING ar_sum(c) > 0) p
      JOIN accounts a ON a.id = p.account_id
),
rows_ AS (
    SELECT currency, owner_user_id AS key, NULL::text AS label, NULL::bigint AS parent_id,
           GROUPING(owner_user_id) = 1 AS is_total,
           sum(b0) AS b0, sum(b1) AS b1, sum(b2) AS b2, sum(b3) AS b3, sum(b4) AS b4,
           sum(b5) AS b5, sum(total) AS total, sum(n)::bigint AS n
      FROM per GROUP BY GROUPING SETS ((currency, owner_user_id), (currency))
)",
            sums = bucket_sums("ar_sum"),
            bucket = sql_case("($1::date - r.due)"),
        ),
        // Per-currency sums straight from the rows (two groups: the numeric-state `sum`
        // costs little here and cannot overflow).
        Group::Currency => format!(
            ",
rows_ AS (
    SELECT currency, NULL::bigint AS key, NULL::text AS label, NULL::bigint AS parent_id,
           false AS is_total, {sums}, sum(m) AS total, sum(c)::bigint AS n
      FROM (SELECT r.*, {bucket} AS bucket FROM own r) r GROUP BY currency HAVING sum(c) > 0
)",
            sums = bucket_sums("sum"),
            bucket = sql_case("($1::date - r.due)"),
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
        "WITH RECURSIVE
{SUB},
{ADJ},
{FIX},
{own}{body}
{select}",
        own = own_cte(&filters),
    )
}
