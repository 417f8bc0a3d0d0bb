//! `arbor bench ...`: throughput figures printed by the binary, never asserted in tests.
//!
//! `billrun` provisions a throwaway tenant with N accounts, each on a 200/month plan plus a
//! metered item (2.50 per unit, 10 units used last month), bills the month, and compares the
//! rate with a baseline: plain multi-row INSERTs of the same invoice and line rows (no
//! pricing, no locking, no cursors), rolled back. The tenant is dropped afterwards.

use std::time::Instant;

use anyhow::{anyhow, Context};
use chrono::{Datelike, NaiveDate};
use diesel::{prelude::*, sql_query};

use crate::{
    auth::{
        domain::{Email, PersonName},
        password,
    },
    db::{self, scope},
    invoicing::{billrun, email::Links, repo as invoices},
    tenants::{
        domain::{TenantName, TenantSlug},
        provision,
    },
    Config,
};

pub struct BillRunReport {
    pub subscriptions: i64,
    pub invoices: i32,
    pub seconds: f64,
    pub baseline_seconds: f64,
}

impl BillRunReport {
    pub fn print(&self) {
        let rate = f64::from(self.invoices) / self.seconds;
        let base = f64::from(self.invoices) / self.baseline_seconds;
        println!(
            "bill run: {} subscriptions, {} invoices in {:.3} s = {:.0} invoices/s",
            self.subscriptions, self.invoices, self.seconds, rate
        );
        println!("baseline (multi-row INSERT of the same invoice and line rows): {:.3} s = {:.0} invoices/s", self.baseline_seconds, base);
        println!(
            "ratio: {:.0}% of baseline (targets: >= 4500 invoices/s and >= 50%)",
            100.0 * rate / base
        );
    }
}

/// A tenant for one benchmark run, provisioned through the production code path and owned by
/// a new user `email`. The caller hashes the password (argon2 is deliberately slow, so a bench
/// creating many owners hashes once and reuses the hash).
pub fn provision_throwaway(
    c: &mut PgConnection,
    slug: &str,
    name: &str,
    email: &str,
    password_hash: String,
) -> anyhow::Result<provision::Provisioned> {
    let owner = provision::Owner::New {
        email: Email::parse(email).map_err(|e| anyhow!(e))?,
        name: PersonName::parse("Bench owner").map_err(|e| anyhow!(e))?,
        password_hash,
    };
    let slug = TenantSlug::parse(slug).map_err(|e| anyhow!(e))?;
    let name = TenantName::parse(name).map_err(|e| anyhow!(e))?;
    Ok(provision::provision(c, &slug, &name, owner)?)
}

/// Drops a throwaway tenant: its schema, its control row (memberships and jobs cascade) and
/// its owner.
pub fn drop_throwaway(c: &mut PgConnection, p: &provision::Provisioned) -> anyhow::Result<()> {
    db::migrate::drop_tenant(c, p.tenant_id)?;
    exec(
        c,
        &format!("DELETE FROM control.users WHERE id = {}", p.owner_id),
    )?;
    Ok(())
}

fn exec(c: &mut PgConnection, sql: &str) -> anyhow::Result<usize> {
    sql_query(sql)
        .execute(c)
        .with_context(|| sql.chars().take(80).collect::<String>())
}

/// Seeds the bench tenant: catalog, accounts, subscriptions (billed in arrears from the first
/// day of last month, so this month's run bills exactly one period each) and usage. The fault
/// tests seed their big bill run with it too.
pub fn seed(c: &mut PgConnection, n: i64, start: NaiveDate) -> anyhow::Result<()> {
    exec(c, "INSERT INTO products (sku, name, gl_revenue_account) VALUES ('PLAN', 'Plan', '4000'), ('API', 'API calls', '4010')")?;
    exec(c, "INSERT INTO prices (product_id, nickname, currency) SELECT id, 'List', 'USD' FROM products")?;
    exec(c, "INSERT INTO price_versions (price_id, version, model_kind, model) SELECT pr.id, 1, CASE p.sku WHEN 'PLAN' THEN 'flat' ELSE 'usage' END, \
             CASE p.sku WHEN 'PLAN' THEN '{\"model\": \"flat\", \"amount\": \"200\"}'::jsonb ELSE '{\"model\": \"usage\", \"unit_amount\": \"2.50\", \"included\": \"0\"}'::jsonb END \
             FROM prices pr JOIN products p ON p.id = pr.product_id")?;
    exec(c, "UPDATE prices SET current_version_id = v.id FROM price_versions v WHERE v.price_id = prices.id")?;
    exec(c, &format!("INSERT INTO accounts (account_number, legal_name, display_name, name_key, currency) \
                      SELECT 'B-' || g, 'Bench Customer ' || g, 'Bench Customer ' || g, 'bench customer ' || g, 'USD' FROM generate_series(1, {n}) g"))?;
    exec(c, &format!("INSERT INTO subscriptions (number, account_id, currency, start_date, interval_months, anchor_day, timing, billed_through) \
                      SELECT 'SUB-B' || a.id, a.id, 'USD', '{start}', 1, 1, 'arrears', '{start}' FROM accounts a"))?;
    exec(c, &format!("INSERT INTO subscription_items (subscription_id, product_id, price_id, price_version_id, start_date) \
                      SELECT s.id, pr.product_id, pr.id, pr.current_version_id, '{start}' FROM subscriptions s CROSS JOIN prices pr"))?;
    exec(c, &format!("INSERT INTO usage_records (subscription_id, product_id, usage_date, quantity, external_id, source) \
                      SELECT s.id, p.id, '{start}'::date + 9, 10, 'bench-' || s.id, 'api' FROM subscriptions s CROSS JOIN products p WHERE p.sku = 'API'"))?;
    exec(c, "ANALYZE")?;
    Ok(())
}

/// The baseline: the same invoice and line rows, inserted plainly in the same chunk size.
fn baseline(c: &mut PgConnection, run_id: i64) -> anyhow::Result<f64> {
    use crate::db::schema::tenant::invoices as inv;
    let rows: Vec<invoices::Invoice> = inv::table
        .filter(inv::bill_run_id.eq(run_id))
        .select(invoices::Invoice::as_select())
        .load(c)?;
    let mut new_rows = Vec::with_capacity(rows.len());
    let mut new_lines = Vec::new();
    for i in &rows {
        new_rows.push(invoices::NewInvoice {
            kind: i.kind.clone(),
            account_id: i.account_id,
            bill_to_account_id: i.bill_to_account_id,
            subscription_id: None,
            source: "manual".into(),
            period_start: i.period_start,
            period_end: i.period_end,
            bill_run_id: None,
            related_invoice_id: None,
            currency: i.currency.clone(),
            issue_date: i.issue_date,
            terms_kind: i.terms_kind.clone(),
            terms_days: i.terms_days,
            po_number: i.po_number.clone(),
            notes: i.notes.clone(),
            subtotal: i.subtotal,
            tax_total: i.tax_total,
            total: i.total,
            amount_due: i.amount_due,
        });
        for l in invoices::lines_of(c, i.id)? {
            new_lines.push(invoices::NewLine {
                invoice_id: 0,
                position: l.position,
                kind: l.kind,
                description: l.description,
                product_id: l.product_id,
                subscription_item_id: l.subscription_item_id,
                price_version_id: l.price_version_id,
                credited_line_id: None,
                period_start: l.period_start,
                period_end: l.period_end,
                quantity: l.quantity,
                unit_price: l.unit_price,
                amount: l.amount,
                discount: l.discount,
                net: l.net,
                tax_category: l.tax_category,
                tax_rate: l.tax_rate,
                tax: l.tax,
                gl_account: l.gl_account,
            });
        }
    }
    let per_invoice = new_lines.len() / new_rows.len().max(1);
    let started = Instant::now();
    let result = c.transaction::<(), diesel::result::Error, _>(|c| {
        let mut line_at = 0;
        for chunk in new_rows.chunks(500) {
            let ids: Vec<i64> = diesel::insert_into(inv::table)
                .values(chunk)
                .returning(inv::id)
                .get_results(c)?;
            let mut lines = Vec::with_capacity(ids.len() * per_invoice);
            for id in ids {
                for l in &new_lines[line_at..line_at + per_invoice] {
                    lines.push(invoices::NewLine {
                        invoice_id: id,
                        ..l.clone()
                    });
                }
                line_at += per_invoice;
            }
            for lc in lines.chunks(1000) {
                diesel::insert_into(crate::db::schema::tenant::invoice_lines::table)
                    .values(lc)
                    .execute(c)?;
            }
        }
        Err(diesel::result::Error::RollbackTransaction)
    });
    let elapsed = started.elapsed().as_secs_f64();
    match result {
        Err(diesel::result::Error::RollbackTransaction) => Ok(elapsed),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(elapsed),
    }
}

pub fn billrun(config: &Config, pool: &db::PgPool, n: i64) -> anyhow::Result<BillRunReport> {
    let mut conn = pool.get()?;
    let c = &mut *conn;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let p = provision_throwaway(
        c,
        &format!("bench-{tag}"),
        "Bench",
        &format!("bench-{tag}@bench.invalid"),
        password::hash_blocking(&uuid::Uuid::new_v4().to_string())?,
    )?;
    let today = chrono::Utc::now().date_naive();
    let this_month = NaiveDate::from_ymd_opt(today.year(), today.month(), 1)
        .ok_or_else(|| anyhow!("bad date"))?;
    let last_month = this_month
        .pred_opt()
        .and_then(|d| NaiveDate::from_ymd_opt(d.year(), d.month(), 1))
        .ok_or_else(|| anyhow!("bad date"))?;
    let outcome = (|| -> anyhow::Result<BillRunReport> {
        scope::in_tenant(c, &p.schema, |c| {
            seed(c, n, last_month).map_err(crate::error::AppError::internal)
        })?;
        let links = Links {
            base_url: config.base_url.clone(),
            slug: p.slug.clone(),
            tenant_id: p.tenant_id,
            key: config.secret_key.clone(),
        };
        let run_id = scope::in_tenant(c, &p.schema, |c| {
            billrun::create(c, this_month, "bench", None)
        })?;
        let started = Instant::now();
        let run = billrun::run(c, &p.schema, &links, run_id)?;
        let seconds = started.elapsed().as_secs_f64();
        let baseline_seconds = scope::in_tenant(c, &p.schema, |c| {
            baseline(c, run_id).map_err(crate::error::AppError::internal)
        })?;
        Ok(BillRunReport {
            subscriptions: n,
            invoices: run.created,
            seconds,
            baseline_seconds,
        })
    })();
    // Throwaway: the schema and the control rows go, whatever happened above.
    drop_throwaway(c, &p)?;
    outcome
}

// ---- aging ---------------------------------------------------------------------------------
//
// `aging` provisions a throwaway tenant with N accounts (every tenth a sub-account, every
// tenth billing in EUR) and M invoices issued over two years: 80% paid (one payment each,
// received 0–59 days after issue, never after today), 20% open (a tenth of those part paid).
// It times the aging summary (grouped by account with the hierarchy roll-up, as of today and
// as of 30 days ago) against one plain aggregate scan of the same invoices, medians of
// `AGING_RUNS` runs each, and drops the tenant.

const AGING_RUNS: usize = 7;

pub struct AgingReport {
    pub invoices: i64,
    pub accounts: i64,
    pub rows: usize,
    pub today_ms: f64,
    pub past_ms: f64,
    /// The same report grouped by currency only (no per-account rows, no hierarchy).
    pub by_currency_ms: f64,
    pub baseline_ms: f64,
}

impl AgingReport {
    pub fn print(&self) {
        println!(
            "aging: {} invoices, {} accounts; summary by account (roll-up) returned {} rows",
            self.invoices, self.accounts, self.rows
        );
        println!(
            "aging report as of today:       {:8.1} ms (median of {AGING_RUNS})",
            self.today_ms
        );
        println!(
            "aging report as of 30 days ago: {:8.1} ms (median of {AGING_RUNS})",
            self.past_ms
        );
        println!(
            "aging summary by currency only: {:8.1} ms (median of {AGING_RUNS})",
            self.by_currency_ms
        );
        println!(
            "baseline SELECT currency, sum(amount_due) FROM invoices GROUP BY currency: {:8.1} ms",
            self.baseline_ms
        );
        println!(
            "ratio: {:.2}x (today), {:.2}x (30 days ago), {:.2}x (by currency) of baseline (targets: <= 300 ms and <= 2x)",
            self.today_ms / self.baseline_ms,
            self.past_ms / self.baseline_ms,
            self.by_currency_ms / self.baseline_ms
        );
    }
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub(crate) fn aging_seed(
    c: &mut PgConnection,
    invoices: i64,
    accounts: i64,
    today: NaiveDate,
) -> anyhow::Result<()> {
    exec(c, &format!("INSERT INTO accounts (account_number, legal_name, display_name, name_key, currency) \
                      SELECT 'A-' || g, 'Aging Customer ' || g, 'Aging Customer ' || g, 'aging customer ' || g, \
                             CASE WHEN g % 10 = 3 THEN 'EUR' ELSE 'USD' END FROM generate_series(1, {accounts}) g"))?;
    // Every tenth account (ending in 5) becomes a child of the account five ids before it.
    exec(c, "UPDATE accounts c SET parent_id = p.id FROM accounts p \
             WHERE c.account_number ~ '5$' AND p.account_number = 'A-' || (substr(c.account_number, 3)::bigint - 5)")?;
    exec(c, &format!("WITH a AS (SELECT id, currency, row_number() OVER (ORDER BY id) - 1 AS rn FROM accounts) \
                      INSERT INTO invoices (kind, number, status, account_id, bill_to_account_id, source, currency, \
                                            issue_date, due_date, terms_kind, terms_days, subtotal, total, amount_paid, amount_due, finalized_at) \
                      SELECT 'invoice', 'INV-A' || g, CASE WHEN k < 2 THEN 'open' ELSE 'paid' END, a.id, a.id, 'manual', a.currency, \
                             DATE '{today}' - (g % 720)::int, DATE '{today}' - (g % 720)::int + 30, 'net', 30, \
                             100 + g % 900, 100 + g % 900, \
                             CASE WHEN k >= 2 THEN 100 + g % 900 WHEN g % 7 = 0 THEN 50 ELSE 0 END, \
                             CASE WHEN k >= 2 THEN 0 WHEN g % 7 = 0 THEN 50 + g % 900 ELSE 100 + g % 900 END, now() \
                        FROM generate_series(1, {invoices}) g \
                        CROSS JOIN LATERAL (SELECT abs(hashint8(g)) % 10 AS k) h \
                        JOIN a ON a.rn = g % {accounts}"))?;
    exec(
        c,
        &format!(
            // Recorded on the day the cash arrived, as a cash clerk would.
            "INSERT INTO payments (account_id, method, currency, amount, received_on, reference, created_at) \
             SELECT bill_to_account_id, 'wire', currency, amount_paid, r, id::text, r::timestamp AT TIME ZONE 'UTC' \
               FROM (SELECT *, LEAST(issue_date + (id % 60)::int, DATE '{today}') AS r \
                       FROM invoices WHERE amount_paid > 0) i"
        ),
    )?;
    exec(
        c,
        "INSERT INTO payment_applications (payment_id, invoice_id, amount, created_at) \
             SELECT id, reference::bigint, amount, created_at FROM payments",
    )?;
    Ok(())
}

fn time_runs<T>(
    c: &mut PgConnection,
    schema: &scope::TenantSchema,
    mut run: impl FnMut(&mut PgConnection) -> crate::error::AppResult<T>,
) -> anyhow::Result<(Vec<f64>, T)> {
    let mut times = Vec::with_capacity(AGING_RUNS);
    let mut last = None;
    for _ in 0..AGING_RUNS {
        let (ms, out) = scope::in_tenant(c, schema, |c| {
            let started = Instant::now();
            let out = run(c)?;
            Ok((started.elapsed().as_secs_f64() * 1000.0, out))
        })?;
        times.push(ms);
        last = Some(out);
    }
    Ok((times, last.ok_or_else(|| anyhow!("no runs"))?))
}

pub fn aging(
    pool: &db::PgPool,
    invoices: i64,
    accounts: i64,
    explain: bool,
) -> anyhow::Result<AgingReport> {
    use crate::reports::aging_repo::{self, Filters, Group, Owner};
    if invoices < 1 || accounts < 1 {
        return Err(anyhow!("--invoices and --accounts must be at least 1"));
    }
    let mut conn = pool.get()?;
    let c = &mut *conn;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let p = provision_throwaway(
        c,
        &format!("bench-aging-{tag}"),
        "Bench aging",
        &format!("bench-aging-{tag}@bench.invalid"),
        password::hash_blocking(&uuid::Uuid::new_v4().to_string())?,
    )?;
    let today = chrono::Utc::now().date_naive();
    let outcome = (|| -> anyhow::Result<AgingReport> {
        let seeded = Instant::now();
        scope::in_tenant(c, &p.schema, |c| {
            aging_seed(c, invoices, accounts, today).map_err(crate::error::AppError::internal)
        })?;
        // Outside a transaction: VACUUM sets the visibility map so index-only scans work.
        for t in [
            "accounts",
            "invoices",
            "payments",
            "payment_applications",
            "ar_settlements",
        ] {
            exec(c, &format!("VACUUM (ANALYZE) {}.{t}", p.schema.as_str()))?;
        }
        println!("seeded in {:.1} s", seeded.elapsed().as_secs_f64());
        let filters = |as_of| Filters {
            as_of,
            currency: None,
            owner: Owner::Any,
            account: None,
            from: None,
            to: None,
            bucket: None,
            visible_owner: None,
        };
        let now = filters(today);
        let (today_times, rows) = time_runs(c, &p.schema, |c| {
            aging_repo::summary(c, &now, Group::Account)
        })?;
        let past = filters(today - chrono::Days::new(30));
        if explain {
            for f in [&now, &past] {
                let plan = scope::in_tenant(c, &p.schema, |c| {
                    aging_repo::explain_summary(c, f, Group::Account)
                })?;
                println!("plan as of {}:\n{plan}\n", f.as_of);
            }
        }
        let (past_times, _) = time_runs(c, &p.schema, |c| {
            aging_repo::summary(c, &past, Group::Account)
        })?;
        #[derive(QueryableByName)]
        struct Sum {
            #[diesel(sql_type = diesel::sql_types::Text)]
            _currency: String,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Numeric>)]
            _sum: Option<rust_decimal::Decimal>,
        }
        let (currency_times, _) = time_runs(c, &p.schema, |c| {
            aging_repo::summary(c, &now, Group::Currency)
        })?;
        // The baseline runs with the same settings as the report, so the ratio compares work.
        let (base_times, _) = time_runs(c, &p.schema, |c| {
            aging_repo::tune_for_report(c)?;
            Ok(sql_query("SELECT currency AS _currency, sum(amount_due) AS _sum FROM invoices GROUP BY currency")
                .load::<Sum>(c)?)
        })?;
        Ok(AgingReport {
            invoices,
            accounts,
            rows: rows.len(),
            today_ms: median_ms(today_times),
            past_ms: median_ms(past_times),
            by_currency_ms: median_ms(currency_times),
            baseline_ms: median_ms(base_times),
        })
    })();
    drop_throwaway(c, &p)?;
    outcome
}
