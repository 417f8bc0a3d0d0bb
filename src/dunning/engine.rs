//! The dunning engine: evaluates every open invoice for a date.
//!
//! Rules: each invoice is evaluated in its own transaction holding its row lock, so two
//! engines (two instances, or a retry after a crash) queue instead of both acting. Every
//! action of every step whose day has come is claimed by inserting its row under a unique
//! key before it runs; a claimed action is never run again. After downtime the first run
//! executes each missed step once, in order. While the account is paused or a promise to pay
//! is open, steps falling due are recorded as skipped; a dispute, a credit note, payment or
//! the policy's stop step ends dunning. Charges due by the date run last.

use chrono::{NaiveDate, NaiveTime, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use super::{
    actions::{self, Done},
    domain::{Action, MIN_OFFSET},
    repo,
};
use crate::{
    db::{
        self,
        schema::tenant::{
            dunning_actions as da, invoice_dunning as idn, invoices, promises_to_pay as promises,
        },
        scope::{in_tenant, TenantSchema},
    },
    error::{AppError, AppResult},
    invoicing::{
        email::Links,
        repo::{self as invoice_repo},
    },
    jobs::{kinds, queue, JobFailure},
    payments::{charge, repo as payments},
    web::AppState,
};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub evaluated: usize,
    pub actions: usize,
    pub charges: usize,
}

/// Invoices the engine looks at on `today`: open ones whose first possible step has come,
/// and ones still marked in dunning (to close them).
fn candidates(conn: &mut PgConnection, today: NaiveDate) -> AppResult<Vec<i64>> {
    let horizon = today + chrono::Duration::days(i64::from(-MIN_OFFSET));
    // Late fees are not dunned on their own: the original invoice's reminders list them with
    // the account's other overdue invoices, and a fee never earns a fee.
    let mut ids: Vec<i64> = invoices::table
        .filter(invoices::kind.eq("invoice"))
        .filter(invoices::source.ne("late_fee"))
        .filter(invoices::status.eq("open"))
        .filter(invoices::amount_due.gt(Decimal::ZERO))
        .filter(invoices::due_date.le(horizon))
        .select(invoices::id)
        .load(conn)?;
    let active: Vec<i64> = idn::table
        .filter(idn::status.eq("active"))
        .select(idn::invoice_id)
        .load(conn)?;
    ids.extend(active);
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Promises past their date: kept when the invoice (or the account, for account-wide
/// promises) was paid enough since, else broken, which resumes dunning and tells a person.
fn resolve_promises(conn: &mut PgConnection, today: NaiveDate) -> AppResult<()> {
    let due: Vec<repo::Promise> = promises::table
        .filter(promises::status.eq("open"))
        .filter(promises::promised_on.lt(today))
        .select(repo::Promise::as_select())
        .for_update()
        .load(conn)?;
    for p in due {
        let kept = match p.invoice_id {
            Some(inv) => invoice_repo::get(conn, inv)?.amount_due <= Decimal::ZERO,
            None => {
                let since: Vec<payments::Payment> = payments::for_account(conn, p.account_id)?
                    .into_iter()
                    .filter(|x| x.created_at >= p.created_at && x.status == "succeeded")
                    .filter(|x| x.currency == p.currency)
                    .collect();
                since.iter().map(|x| x.amount).sum::<Decimal>() >= p.amount
            }
        };
        diesel::update(promises::table.find(p.id))
            .set((
                promises::status.eq(if kept { "kept" } else { "broken" }),
                promises::resolved_at.eq(Utc::now()),
            ))
            .execute(conn)?;
        if !kept {
            repo::create_task(
                conn,
                &repo::NewTask {
                    account_id: p.account_id,
                    invoice_id: p.invoice_id,
                    title: format!("Promise to pay by {} was broken", p.promised_on),
                    detail: p.note.clone(),
                    assignee: super::domain::Assignee::AccountOwner,
                    due_on: today,
                    source: "dunning",
                },
            )?;
        }
    }
    Ok(())
}

/// Claims an action; `false` when it ran (or was skipped) before.
fn claim(
    conn: &mut PgConnection,
    inv: &invoice_repo::Invoice,
    version_id: i64,
    step_no: i32,
    action: &str,
    due_on: NaiveDate,
    today: NaiveDate,
) -> AppResult<Option<i64>> {
    Ok(diesel::insert_into(da::table)
        .values((
            da::invoice_id.eq(inv.id),
            da::account_id.eq(inv.bill_to_account_id),
            da::policy_version_id.eq(version_id),
            da::step_no.eq(step_no),
            da::action.eq(action),
            da::status.eq("done"),
            da::due_on.eq(due_on),
            da::executed_on.eq(today),
        ))
        .on_conflict_do_nothing()
        .returning(da::id)
        .get_result(conn)
        .optional()?)
}

fn finish(conn: &mut PgConnection, action_id: i64, done: &Done) -> AppResult<()> {
    diesel::update(da::table.find(action_id))
        .set((
            da::status.eq(done.status),
            da::detail.eq(&done.detail),
            da::ref_kind.eq(done.reference.map(|r| r.0)),
            da::ref_id.eq(done.reference.map(|r| r.1)),
        ))
        .execute(conn)?;
    Ok(())
}

fn stop(conn: &mut PgConnection, invoice_id: i64, reason: &str) -> AppResult<()> {
    diesel::update(idn::table.find(invoice_id))
        .set((
            idn::status.eq("stopped"),
            idn::stop_reason.eq(reason),
            idn::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Evaluates one invoice; returns the number of actions run or skipped now.
pub fn evaluate(
    conn: &mut PgConnection,
    links: &Links,
    invoice_id: i64,
    today: NaiveDate,
) -> AppResult<usize> {
    let inv = invoice_repo::lock(conn, invoice_id)?;
    repo::settle_if_paid(conn, invoice_id)?;
    let Some(due_date) = inv.due_date else {
        return Ok(0);
    };
    if inv.kind != "invoice" || inv.status != "open" || inv.amount_due <= Decimal::ZERO {
        return Ok(0);
    }
    let existing = repo::invoice_dunning(conn, invoice_id)?;
    if existing
        .as_ref()
        .is_some_and(|d| d.status != "active" || d.disputed)
    {
        return Ok(0);
    }
    let version = match &existing {
        Some(d) => repo::version(conn, d.policy_version_id)?,
        None => match repo::effective_for_account(conn, inv.bill_to_account_id)? {
            Some(v) => v,
            None => return Ok(0), // excluded from dunning
        },
    };
    let policy = version.policy()?;
    let due = policy.due_steps(due_date, today);
    if due.is_empty() {
        return Ok(0);
    }
    if existing.is_none() {
        diesel::insert_into(idn::table)
            .values((
                idn::invoice_id.eq(invoice_id),
                idn::account_id.eq(inv.bill_to_account_id),
                idn::policy_version_id.eq(version.id),
                idn::started_on.eq(today),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?;
    }
    let credited: i64 = invoices::table
        .filter(invoices::related_invoice_id.eq(invoice_id))
        .filter(invoices::kind.eq("credit_note"))
        .filter(invoices::status.ne("draft"))
        .filter(invoices::status.ne("void"))
        .count()
        .get_result(conn)?;
    if credited > 0 {
        stop(conn, invoice_id, "credit note issued")?;
        return Ok(0);
    }
    let mut count = 0;
    if due_date < today {
        if let Some(id) = claim(conn, &inv, version.id, -1, "overdue", due_date, today)? {
            payments::event(
                conn,
                "invoice.overdue",
                "invoice",
                invoice_id,
                json!({ "number": inv.number, "due_date": due_date, "amount_due": inv.amount_due,
                        "currency": inv.currency, "account_id": inv.bill_to_account_id }),
            )?;
            finish(
                conn,
                id,
                &Done {
                    status: "done",
                    detail: "Became overdue".into(),
                    reference: None,
                },
            )?;
        }
    }
    let coll = repo::collections(conn, inv.bill_to_account_id)?;
    let paused = coll.paused_until.filter(|u| *u >= today).map(|u| {
        format!(
            "Dunning paused until {u}: {}",
            coll.pause_reason.clone().unwrap_or_default()
        )
    });
    let promised = repo::promise_covering(conn, inv.bill_to_account_id, invoice_id, today)?
        .map(|p| format!("Promise to pay by {}", p.promised_on));
    let waiting = paused.or(promised);
    // After downtime several reminder steps can be due at once: only the latest one's
    // message goes out (it is the right tone), the earlier ones are recorded as covered.
    let last_reminder = due
        .iter()
        .filter(|(i, _)| {
            policy
                .steps
                .get(*i)
                .is_some_and(|s| s.actions.contains(&Action::Reminder))
        })
        .map(|(i, _)| *i)
        .max();
    for (step_no, on) in due {
        let Some(step) = policy.steps.get(step_no) else {
            continue;
        };
        let n = i32::try_from(step_no).unwrap_or(i32::MAX);
        for action in &step.actions {
            let Some(action_id) = claim(conn, &inv, version.id, n, action.code(), on, today)?
            else {
                continue;
            };
            count += 1;
            let done = match (&waiting, action) {
                (Some(why), _) => Done::skipped(why.clone()),
                (None, Action::Reminder) if last_reminder.is_some_and(|l| l > step_no) => Done {
                    status: "done",
                    detail: format!(
                        "Caught up: covered by the reminder of step {}",
                        last_reminder.unwrap_or(step_no) + 1
                    ),
                    reference: None,
                },
                (None, Action::Reminder) => actions::reminder(conn, links, &inv, step, today)?,
                (None, Action::RetryPayment) => {
                    let at = today.and_time(NaiveTime::MIN).and_utc().min(Utc::now());
                    match charge::schedule(conn, links.tenant_id, invoice_id, "dunning", at, None)?
                    {
                        Some(id) => Done {
                            status: "done",
                            detail: "Payment retry scheduled".into(),
                            reference: Some(("charge", id)),
                        },
                        None => Done::skipped(
                            "No usable payment method, or a charge is already scheduled.",
                        ),
                    }
                }
                (None, Action::LateFee { fee }) => {
                    actions::late_fee(conn, links, &inv, *fee, step_no, today)?
                }
                (
                    None,
                    Action::Task {
                        title,
                        assignee,
                        due_in_days,
                    },
                ) => actions::task(conn, &inv, title, *assignee, *due_in_days, today)?,
                (None, Action::Hold) => actions::hold(conn, &inv)?,
                (None, Action::Stop) => {
                    stop(conn, invoice_id, "policy ended")?;
                    Done {
                        status: "done",
                        detail: "Dunning ended; a person takes over".into(),
                        reference: None,
                    }
                }
            };
            finish(conn, action_id, &done)?;
        }
    }
    diesel::update(idn::table.find(invoice_id))
        .set(idn::last_evaluated_on.eq(today))
        .execute(conn)?;
    Ok(count)
}

/// Evaluates every candidate invoice in the caller's transaction (the demo and tools; the
/// daily run uses one transaction per invoice). Charges are left to their jobs.
pub fn evaluate_all(conn: &mut PgConnection, links: &Links, today: NaiveDate) -> AppResult<usize> {
    resolve_promises(conn, today)?;
    let mut n = 0;
    for id in candidates(conn, today)? {
        n += evaluate(conn, links, id, today)?;
    }
    Ok(n)
}

/// One tenant's run for `today`.
pub async fn run(
    state: &AppState,
    tenant_id: i64,
    schema: &TenantSchema,
    today: NaiveDate,
) -> AppResult<Summary> {
    let slug = db::run(&state.pool, move |c| {
        crate::tenants::repo::slug_of(c, tenant_id)
    })
    .await?
    .ok_or(AppError::NotFound)?;
    let links = crate::invoicing::billrun::links_for(state, tenant_id, &slug);
    let s = schema.clone();
    let ids = db::run(&state.pool, move |c| {
        in_tenant(c, &s, |c| {
            resolve_promises(c, today)?;
            candidates(c, today)
        })
    })
    .await?;
    let mut summary = Summary::default();
    for id in ids {
        let (s, l) = (schema.clone(), links.clone());
        summary.actions += db::run(&state.pool, move |c| {
            in_tenant(c, &s, |c| evaluate(c, &l, id, today))
        })
        .await?;
        summary.evaluated += 1;
    }
    let s = schema.clone();
    let due = db::run(&state.pool, move |c| {
        in_tenant(c, &s, |c| charge::due_by(c, today))
    })
    .await?;
    for attempt in due {
        if charge::execute(state, tenant_id, schema, attempt, today)
            .await?
            .is_some()
        {
            summary.charges += 1;
        }
    }
    Ok(summary)
}

/// Queues every tenant's run of `today` (once per day and tenant).
pub fn schedule_daily(conn: &mut PgConnection, today: NaiveDate) -> AppResult<usize> {
    use crate::db::schema::control::tenants;
    let ids: Vec<i64> = tenants::table.select(tenants::id).load(conn)?;
    let mut queued = 0;
    for tenant_id in ids {
        let mut job = queue::NewJob::new(
            kinds::DUNNING_RUN,
            Some(tenant_id),
            json!({ "date": today }),
        );
        job.dedupe_key = Some(format!("dunning-daily:{tenant_id}:{today}"));
        job.max_attempts = 5;
        if queue::enqueue(conn, &job)?.is_some() {
            queued += 1;
        }
    }
    Ok(queued)
}

/// Handler of `dunning.run` jobs.
pub async fn run_job(state: &AppState, job: &queue::Job) -> Result<(), JobFailure> {
    let tenant_id = job
        .tenant_id
        .ok_or_else(|| JobFailure::permanent("dunning job without tenant"))?;
    let today: NaiveDate = job
        .payload
        .get("date")
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .unwrap_or_else(|| Utc::now().date_naive());
    let schema = db::run(&state.pool, move |c| {
        crate::tenants::repo::schema_of(c, tenant_id)
    })
    .await?
    .ok_or_else(|| JobFailure::permanent("tenant no longer exists"))?;
    let schema = TenantSchema::parse(&schema).map_err(JobFailure::permanent)?;
    let summary = run(state, tenant_id, &schema, today).await?;
    tracing::info!(tenant_id, %today, ?summary, "dunning run finished");
    Ok(())
}
