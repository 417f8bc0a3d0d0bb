//! The bill run: every invoice due up to a date, for every active subscription.
//!
//! Rules: one invoice per subscription period, guaranteed by the unique
//! `(subscription_id, period_start)` index and by each subscription's `billed_through`
//! cursor. Work goes in batches of subscriptions, each batch one transaction that locks its
//! subscriptions, writes invoices and lines set-based, moves the cursors and the run's
//! counters. A crash loses at most the open batch, which rolls back whole (numbers included);
//! the requeued job continues from the cursors, so a rerun creates no duplicates and no gaps.
//! Several workers or instances may run bill runs at once: they serialise on the row locks
//! and the second finds nothing left to bill. Periods missed during downtime are caught up.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    build::{self, Header, Payer},
    email::Links,
    finalize,
    repo::{self, NewLine},
};
use crate::{
    accounts::repo as accounts,
    audit::Actor,
    db::{
        self,
        schema::tenant::{bill_runs, subscriptions},
        scope::TenantSchema,
    },
    error::{AppError, AppResult},
    jobs::{kinds, queue, JobFailure},
    money::Currency,
    subscriptions::{
        charges::{self, ItemTerms},
        periods::Period,
        repo::{self as subs, Subscription},
    },
    web::AppState,
};

pub const BATCH: i64 = 500;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = bill_runs)]
pub struct BillRun {
    pub id: i64,
    pub run_date: NaiveDate,
    pub trigger: String,
    pub status: String,
    pub total: i32,
    pub processed: i32,
    pub created: i32,
    pub skipped: i32,
    pub failed: i32,
    pub failures: serde_json::Value,
    pub requested_by: Option<i64>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Failure {
    pub subscription: String,
    pub reason: String,
}

/// What one batch did.
#[derive(Debug, Default, Clone)]
pub struct BatchOutcome {
    pub last_id: i64,
    pub subscriptions: usize,
    pub created: Vec<i64>,
    pub skipped: usize,
    pub failures: Vec<Failure>,
}

pub fn create(
    conn: &mut PgConnection,
    run_date: NaiveDate,
    trigger: &str,
    by: Option<i64>,
) -> AppResult<i64> {
    Ok(diesel::insert_into(bill_runs::table)
        .values((
            bill_runs::run_date.eq(run_date),
            bill_runs::trigger.eq(trigger),
            bill_runs::requested_by.eq(by),
        ))
        .returning(bill_runs::id)
        .get_result(conn)?)
}

pub fn get(conn: &mut PgConnection, id: i64) -> AppResult<BillRun> {
    bill_runs::table
        .find(id)
        .select(BillRun::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

pub fn recent(conn: &mut PgConnection, limit: i64) -> AppResult<Vec<BillRun>> {
    Ok(bill_runs::table
        .order(bill_runs::id.desc())
        .limit(limit)
        .select(BillRun::as_select())
        .load(conn)?)
}

/// Queues a run; the dedupe key makes a second request for the same run a no-op.
pub fn enqueue(conn: &mut PgConnection, tenant_id: i64, run_id: i64) -> AppResult<()> {
    let mut job = queue::NewJob::new(
        kinds::BILL_RUN,
        Some(tenant_id),
        json!({ "bill_run_id": run_id }),
    );
    job.dedupe_key = Some(format!("billrun:{tenant_id}:{run_id}"));
    job.max_attempts = 5;
    queue::enqueue(conn, &job)?;
    Ok(())
}

fn due_count(conn: &mut PgConnection, today: NaiveDate) -> AppResult<i64> {
    Ok(subscriptions::table
        .filter(subscriptions::status.eq("active"))
        .filter(subscriptions::billed_through.le(today))
        .count()
        .get_result(conn)?)
}

/// Per-(subscription, product) usage by day, to sum over any sub-period.
struct Usage(HashMap<(i64, i64), Vec<(NaiveDate, Decimal)>>);

impl Usage {
    fn sum(&self, sub: i64, product: i64, p: &Period) -> Decimal {
        self.0.get(&(sub, product)).map_or(Decimal::ZERO, |v| {
            v.iter()
                .filter(|(d, _)| p.contains(*d))
                .map(|(_, q)| *q)
                .sum()
        })
    }
}

/// Payers of the accounts in a batch: most pay for themselves; bill-to-parent walks up.
fn payers(conn: &mut PgConnection, account_ids: &[i64]) -> AppResult<HashMap<i64, Payer>> {
    use crate::db::schema::tenant::accounts as a;
    let list: Vec<accounts::Account> = a::table
        .filter(a::id.eq_any(account_ids))
        .select(accounts::Account::as_select())
        .load(conn)?;
    let mut out = HashMap::with_capacity(list.len());
    for acc in list {
        let payer = if acc.bill_to_parent {
            Payer::of(&accounts::bill_to(conn, acc.id)?)
        } else {
            Payer::of(&acc)
        };
        out.insert(acc.id, payer);
    }
    Ok(out)
}

/// Bills subscriptions with id > `after` (up to [`BATCH`]) in the caller's transaction.
pub fn bill_batch(
    conn: &mut PgConnection,
    run_id: Option<i64>,
    after: i64,
    today: NaiveDate,
    only: Option<i64>,
) -> AppResult<BatchOutcome> {
    // `only` narrows the batch to one subscription (an amendment bills its own periods).
    let (low, high) = match only {
        Some(id) => (id - 1, id),
        None => (after, i64::MAX),
    };
    let subs: Vec<Subscription> = subscriptions::table
        .filter(subscriptions::status.eq("active"))
        .filter(subscriptions::billed_through.le(today))
        .filter(subscriptions::id.gt(low.max(after)))
        .filter(subscriptions::id.le(high))
        .order(subscriptions::id)
        .limit(BATCH)
        .select(Subscription::as_select())
        .for_update()
        .load(conn)?;
    let mut out = BatchOutcome {
        last_id: subs.last().map_or(after, |s| s.id),
        subscriptions: subs.len(),
        ..Default::default()
    };
    if subs.is_empty() {
        return Ok(out);
    }
    let ids: Vec<i64> = subs.iter().map(|s| s.id).collect();
    let items = subs::item_terms(conn, &ids)?;
    let due: Vec<(Subscription, Vec<_>)> = subs
        .into_iter()
        .map(|s| {
            let periods = s.plan().due_periods(s.billed_through, today);
            (s, periods)
        })
        .collect();
    let (mut from, mut to) = (NaiveDate::MAX, NaiveDate::MIN);
    for (s, periods) in &due {
        for p in periods.iter().filter_map(|bp| s.plan().usage_period(bp)) {
            from = from.min(p.service.start);
            to = to.max(p.service.end);
        }
    }
    let mut usage = Usage(HashMap::new());
    if from < to {
        for (sub, product, date, qty) in subs::usage_between(conn, &ids, from, to)? {
            usage.0.entry((sub, product)).or_default().push((date, qty));
        }
    }
    let account_ids: Vec<i64> = due
        .iter()
        .map(|(s, _)| s.account_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let payers = payers(conn, &account_ids)?;
    let rates = repo::tax_rates(conn)?;
    let mut built = Vec::new();
    let mut cursor_ids = Vec::new();
    let mut cursor_dates = Vec::new();
    let no_items: Vec<ItemTerms> = Vec::new();
    for (s, periods) in &due {
        if periods.is_empty() {
            out.skipped += 1;
            continue;
        }
        let fail = |reason: &str| Failure {
            subscription: s.number.clone(),
            reason: reason.to_owned(),
        };
        let (Some(payer), Ok(currency)) = (payers.get(&s.account_id), Currency::parse(&s.currency))
        else {
            out.failures
                .push(fail("its account or currency could not be read"));
            continue;
        };
        let sub_items = items.get(&s.id).unwrap_or(&no_items);
        if sub_items.is_empty() {
            out.failures.push(fail("it has no items to bill"));
            continue;
        }
        let plan = s.plan();
        let usage_of = |product: i64, p: &Period| usage.sum(s.id, product, p);
        for bp in periods {
            let drafts = charges::lines_for(&plan, bp, sub_items, &usage_of);
            if drafts.is_empty() {
                continue;
            }
            built.push(build::build(
                Header {
                    kind: "invoice",
                    source: "bill_run",
                    account_id: s.account_id,
                    subscription_id: Some(s.id),
                    period: Some((bp.service.start, bp.service.last_day())),
                    bill_run_id: run_id,
                    related_invoice_id: None,
                    currency,
                    issue_date: today,
                    terms: build::terms_for(s, payer),
                    po_number: s.po_number.clone(),
                    notes: String::new(),
                },
                payer,
                rates,
                &drafts,
            ));
        }
        if let Some(last) = periods.last() {
            cursor_ids.push(s.id);
            cursor_dates.push(last.service.end);
        }
    }
    let headers: Vec<_> = built.iter().map(|b| b.invoice.clone()).collect();
    let written = repo::insert_period_invoices(conn, &headers)?;
    out.skipped += headers.len() - written.len();
    let mut lines: Vec<NewLine> = Vec::new();
    for (i, id) in &written {
        for l in &built[*i].lines {
            lines.push(NewLine {
                invoice_id: *id,
                ..l.clone()
            });
        }
        out.created.push(*id);
    }
    repo::insert_lines(conn, &lines)?;
    repo::advance_cursors(conn, &cursor_ids, &cursor_dates)?;
    Ok(out)
}

fn record_progress(conn: &mut PgConnection, run_id: i64, o: &BatchOutcome) -> AppResult<()> {
    let n = |x: usize| i32::try_from(x).unwrap_or(i32::MAX);
    let run = get(conn, run_id)?;
    let mut failures: Vec<Failure> = serde_json::from_value(run.failures).unwrap_or_default();
    failures.extend(o.failures.iter().cloned());
    diesel::update(bill_runs::table.find(run_id))
        .set((
            bill_runs::processed.eq(bill_runs::processed + n(o.subscriptions)),
            bill_runs::created.eq(bill_runs::created + n(o.created.len())),
            bill_runs::skipped.eq(bill_runs::skipped + n(o.skipped)),
            bill_runs::failed.eq(bill_runs::failed + n(o.failures.len())),
            bill_runs::failures.eq(json!(failures)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Runs a bill run to the end, batch by batch, each in its own transaction.
pub fn run(
    c: &mut PgConnection,
    schema: &TenantSchema,
    links: &Links,
    run_id: i64,
) -> AppResult<BillRun> {
    let run = db::scope::in_tenant(c, schema, |c| {
        let run = get(c, run_id)?;
        if run.status != "done" {
            let total = i32::try_from(due_count(c, run.run_date)?).unwrap_or(i32::MAX);
            diesel::update(bill_runs::table.find(run_id))
                .set((
                    bill_runs::status.eq("running"),
                    bill_runs::started_at.eq(run.started_at.unwrap_or_else(Utc::now)),
                    // A resumed run counts what is left on top of what it already did.
                    bill_runs::total.eq(run.processed + total),
                ))
                .execute(c)?;
        }
        Ok(run)
    })?;
    if run.status == "done" {
        return Ok(run);
    }
    let actor = Actor::system();
    let mut after = 0;
    loop {
        let outcome = db::scope::in_tenant(c, schema, |c| {
            let o = bill_batch(c, Some(run_id), after, run.run_date, None)?;
            if !o.created.is_empty() && repo::auto_finalize(c)? {
                finalize::finalize(c, &actor, links, &o.created, run.run_date)?;
            }
            record_progress(c, run_id, &o)?;
            Ok(o)
        })?;
        if outcome.subscriptions == 0 {
            break;
        }
        after = outcome.last_id;
    }
    db::scope::in_tenant(c, schema, |c| {
        diesel::update(bill_runs::table.find(run_id))
            .set((
                bill_runs::status.eq("done"),
                bill_runs::finished_at.eq(diesel::dsl::now),
            ))
            .execute(c)?;
        get(c, run_id)
    })
}

/// Links for documents of a tenant, from the app's configuration.
pub fn links_for(state: &AppState, tenant_id: i64, slug: &str) -> Links {
    Links {
        base_url: state.config.base_url.clone(),
        slug: slug.to_owned(),
        tenant_id,
        key: state.config.secret_key.clone(),
    }
}

/// The scheduled run of `day`, created on first request.
fn scheduled_run(conn: &mut PgConnection, day: NaiveDate) -> AppResult<i64> {
    diesel::insert_into(bill_runs::table)
        .values((
            bill_runs::run_date.eq(day),
            bill_runs::trigger.eq("schedule"),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(bill_runs::table
        .filter(bill_runs::run_date.eq(day))
        .filter(bill_runs::trigger.eq("schedule"))
        .select(bill_runs::id)
        .first(conn)?)
}

/// Queues today's bill run of every tenant (once per tenant and day; the job creates the run).
/// Called by the workers' housekeeping loop, so a restarted instance catches up at once.
pub fn schedule_daily(conn: &mut PgConnection, today: NaiveDate) -> AppResult<usize> {
    use crate::db::schema::control::tenants;
    let ids: Vec<i64> = tenants::table.select(tenants::id).load(conn)?;
    let mut queued = 0;
    for tenant_id in ids {
        let mut job =
            queue::NewJob::new(kinds::BILL_RUN, Some(tenant_id), json!({ "date": today }));
        job.dedupe_key = Some(format!("billrun-daily:{tenant_id}:{today}"));
        job.max_attempts = 5;
        if queue::enqueue(conn, &job)?.is_some() {
            queued += 1;
        }
    }
    Ok(queued)
}

/// Handler of `billing.run` jobs.
pub async fn run_job(state: &AppState, job: &queue::Job) -> Result<(), JobFailure> {
    let tenant_id = job
        .tenant_id
        .ok_or_else(|| JobFailure::permanent("bill run job without tenant"))?;
    let run_id = job
        .payload
        .get("bill_run_id")
        .and_then(serde_json::Value::as_i64);
    let day: Option<NaiveDate> = job
        .payload
        .get("date")
        .and_then(|d| serde_json::from_value(d.clone()).ok());
    if run_id.is_none() && day.is_none() {
        return Err(JobFailure::permanent(
            "bill run job names neither a run nor a date",
        ));
    }
    let (schema, slug) = db::run(&state.pool, move |c| {
        let schema = crate::tenants::repo::schema_of(c, tenant_id)?;
        let slug = crate::tenants::repo::slug_of(c, tenant_id)?;
        Ok(schema.zip(slug))
    })
    .await?
    .ok_or_else(|| JobFailure::permanent("tenant no longer exists"))?;
    let schema = TenantSchema::parse(&schema).map_err(JobFailure::permanent)?;
    let links = links_for(state, tenant_id, &slug);
    db::run(&state.pool, move |c| {
        let run_id = match (run_id, day) {
            (Some(id), _) => id,
            (None, Some(day)) => db::scope::in_tenant(c, &schema, |c| scheduled_run(c, day))?,
            (None, None) => return Err(AppError::NotFound),
        };
        run(c, &schema, &links, run_id)
    })
    .await?;
    Ok(())
}
