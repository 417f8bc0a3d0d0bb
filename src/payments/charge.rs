//! Automatic charges of stored payment methods.
//!
//! Rules: an invoice has at most one live attempt (scheduled, processing or pending; a partial
//! unique index). Executing an attempt first claims it (`scheduled → processing`) in its own
//! transaction, so two workers never both reach the gateway; the gateway gets the attempt's
//! idempotency key, so re-asking after a crash between the gateway's answer and our record
//! cannot charge twice. The answer is recorded in one transaction: a payment applied to the
//! invoice, or the decline with its class, the next attempt by the retry rules, and for a
//! hard decline the method marked unusable, the customer asked for a new one and a task for
//! a person. Attempts run from a job at their time, and the daily dunning run executes any
//! that are due by its date (which is how tests move the clock).

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use super::{
    gateway::{self, ChargeRequest, DeclineClass, Outcome},
    methods::{self, PaymentMethod},
    repo as payments,
};
use crate::{
    db::{
        self,
        schema::tenant::charge_attempts as ca,
        scope::{in_tenant, TenantSchema},
    },
    dunning,
    error::{AppError, AppResult},
    invoicing::{
        email::Links,
        repo::{self as invoices, Invoice},
    },
    jobs::{kinds, queue, JobFailure},
    money::Currency,
    web::AppState,
};

/// A crashed execution leaves its attempt `processing`; after this long it is re-asked.
const STALE_PROCESSING_SECS: i64 = 120;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ca)]
pub struct Attempt {
    pub id: i64,
    pub invoice_id: i64,
    pub account_id: i64,
    pub payment_method_id: i64,
    pub attempt_no: i32,
    pub trigger: String,
    pub idempotency_key: String,
    pub currency: String,
    pub amount: Option<Decimal>,
    pub status: String,
    pub scheduled_for: DateTime<Utc>,
    pub attempted_at: Option<DateTime<Utc>>,
    pub gateway: Option<String>,
    pub gateway_ref: Option<String>,
    pub decline_code: Option<String>,
    pub message: Option<String>,
    pub payment_id: Option<i64>,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl Attempt {
    pub fn is_failure(&self) -> bool {
        matches!(
            self.status.as_str(),
            "soft_decline" | "hard_decline" | "retryable_error"
        )
    }

    pub fn status_label(&self) -> &'static str {
        match self.status.as_str() {
            "scheduled" => "Scheduled",
            "processing" => "Processing",
            "pending" => "Pending at gateway",
            "succeeded" => "Succeeded",
            "soft_decline" => "Declined (soft)",
            "hard_decline" => "Declined (hard)",
            "retryable_error" => "Gateway error",
            _ => "Canceled",
        }
    }
}

pub fn for_invoice(conn: &mut PgConnection, invoice_id: i64) -> AppResult<Vec<Attempt>> {
    Ok(ca::table
        .filter(ca::invoice_id.eq(invoice_id))
        .order(ca::attempt_no)
        .select(Attempt::as_select())
        .load(conn)?)
}

pub fn for_account(
    conn: &mut PgConnection,
    account_id: i64,
    limit: i64,
) -> AppResult<Vec<Attempt>> {
    Ok(ca::table
        .filter(ca::account_id.eq(account_id))
        .order(ca::id.desc())
        .limit(limit)
        .select(Attempt::as_select())
        .load(conn)?)
}

/// Schedules the next attempt on the payer's default method. `None` when the invoice owes
/// nothing, the payer has no usable method, or an attempt is already live.
pub fn schedule(
    conn: &mut PgConnection,
    tenant_id: i64,
    invoice_id: i64,
    trigger: &str,
    at: DateTime<Utc>,
    by: Option<i64>,
) -> AppResult<Option<i64>> {
    let inv = invoices::get(conn, invoice_id)?;
    if inv.kind != "invoice" || inv.status != "open" || inv.amount_due <= Decimal::ZERO {
        return Ok(None);
    }
    let Some(method) = methods::default_for(conn, inv.bill_to_account_id)? else {
        return Ok(None);
    };
    if method.status != "active" {
        return Ok(None);
    }
    let last: Option<i32> = ca::table
        .filter(ca::invoice_id.eq(invoice_id))
        .select(diesel::dsl::max(ca::attempt_no))
        .first(conn)?;
    let attempt_no = last.unwrap_or(0) + 1;
    let id: Option<i64> = diesel::insert_into(ca::table)
        .values((
            ca::invoice_id.eq(invoice_id),
            ca::account_id.eq(inv.bill_to_account_id),
            ca::payment_method_id.eq(method.id),
            ca::attempt_no.eq(attempt_no),
            ca::trigger.eq(trigger),
            ca::idempotency_key.eq(uuid::Uuid::new_v4().to_string()),
            ca::currency.eq(&inv.currency),
            ca::scheduled_for.eq(at),
            ca::created_by.eq(by),
        ))
        .on_conflict_do_nothing()
        .returning(ca::id)
        .get_result(conn)
        .optional()?;
    if let Some(id) = id {
        let mut job = queue::NewJob::new(
            kinds::PAYMENT_CHARGE,
            Some(tenant_id),
            json!({ "attempt_id": id }),
        );
        job.dedupe_key = Some(format!("charge:{tenant_id}:{id}"));
        job.run_at = Some(at);
        job.max_attempts = 10;
        queue::enqueue(conn, &job)?;
    }
    Ok(id)
}

/// Called by finalization: charges at once when the payer's default method allows it.
pub fn on_finalize(conn: &mut PgConnection, tenant_id: i64, inv: &Invoice) -> AppResult<()> {
    if inv.kind != "invoice" {
        return Ok(());
    }
    let auto = methods::default_for(conn, inv.bill_to_account_id)?
        .is_some_and(|m| m.status == "active" && m.auto_charge);
    let by_subscription = match inv.subscription_id {
        Some(sub) => crate::db::schema::tenant::subscriptions::table
            .find(sub)
            .select(crate::db::schema::tenant::subscriptions::collection_method)
            .first::<String>(conn)
            .optional()?
            .is_some_and(|m| m == "auto_charge"),
        None => false,
    };
    if auto || by_subscription {
        schedule(conn, tenant_id, inv.id, "finalize", Utc::now(), None)?;
    }
    Ok(())
}

/// Cancels live attempts of an invoice that no longer needs them (paid, voided, disputed).
pub fn cancel_live(conn: &mut PgConnection, invoice_id: i64, why: &str) -> AppResult<usize> {
    Ok(diesel::update(
        ca::table
            .filter(ca::invoice_id.eq(invoice_id))
            .filter(ca::status.eq("scheduled")),
    )
    .set((ca::status.eq("canceled"), ca::message.eq(why)))
    .execute(conn)?)
}

/// Attempts due by the end of `day` that have not run, for the daily run.
pub fn due_by(conn: &mut PgConnection, day: NaiveDate) -> AppResult<Vec<i64>> {
    let end = (day + chrono::Duration::days(1))
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    Ok(ca::table
        .filter(ca::status.eq("scheduled"))
        .filter(ca::scheduled_for.lt(end))
        .order(ca::id)
        .select(ca::id)
        .load(conn)?)
}

enum Claim {
    Go(Box<(Attempt, PaymentMethod, Decimal)>),
    Done,
}

/// Locks the attempt's invoice, then the attempt: the same order as the dunning engine
/// (invoice first, then its attempts), so the two never deadlock.
fn lock_attempt(conn: &mut PgConnection, attempt_id: i64) -> AppResult<(Invoice, Attempt)> {
    let invoice_id: i64 = ca::table
        .find(attempt_id)
        .select(ca::invoice_id)
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)?;
    let inv = invoices::lock(conn, invoice_id)?;
    let a: Attempt = ca::table
        .find(attempt_id)
        .select(Attempt::as_select())
        .for_update()
        .first(conn)?;
    Ok((inv, a))
}

fn claim(conn: &mut PgConnection, attempt_id: i64) -> AppResult<Claim> {
    let (inv, a) = lock_attempt(conn, attempt_id)?;
    let stale = a
        .attempted_at
        .is_some_and(|t| (Utc::now() - t).num_seconds() > STALE_PROCESSING_SECS);
    match a.status.as_str() {
        "scheduled" => {}
        // Our earlier run reached the gateway and died before recording: ask again with the
        // same key, which returns the first answer.
        "processing" if stale => {}
        _ => return Ok(Claim::Done),
    }
    let method = methods::get(conn, a.payment_method_id)?;
    let cancel = if inv.status != "open" || inv.amount_due <= Decimal::ZERO {
        Some("The invoice no longer has a balance.")
    } else if method.status != "active" {
        Some("The payment method can no longer be charged.")
    } else if dunning::repo::is_disputed(conn, inv.id)? {
        Some("The invoice is disputed.")
    } else {
        None
    };
    if let Some(why) = cancel {
        diesel::update(ca::table.find(a.id))
            .set((ca::status.eq("canceled"), ca::message.eq(why)))
            .execute(conn)?;
        return Ok(Claim::Done);
    }
    // A retry after a crash charges what the first request asked for.
    let amount = a.amount.unwrap_or(inv.amount_due);
    diesel::update(ca::table.find(a.id))
        .set((
            ca::status.eq("processing"),
            ca::amount.eq(amount),
            ca::gateway.eq(&method.gateway),
            ca::attempted_at.eq(Utc::now()),
        ))
        .execute(conn)?;
    Ok(Claim::Go(Box::new((a, method, amount))))
}

/// Runs one attempt end to end. Returns the gateway's outcome when this call reached it.
pub async fn execute(
    state: &AppState,
    tenant_id: i64,
    schema: &TenantSchema,
    attempt_id: i64,
    today: NaiveDate,
) -> AppResult<Option<Outcome>> {
    let s = schema.clone();
    let claimed = db::run(&state.pool, move |c| {
        in_tenant(c, &s, |c| claim(c, attempt_id))
    })
    .await?;
    let Claim::Go(go) = claimed else {
        return Ok(None);
    };
    let (attempt, method, amount) = *go;
    let currency =
        Currency::parse(&attempt.currency).map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
    let minor = (amount * Decimal::from(10_i64.pow(currency.exponent())))
        .round()
        .try_into()
        .unwrap_or(0_i64);
    let s = schema.clone();
    let inv_id = attempt.invoice_id;
    let number = db::run(&state.pool, move |c| {
        in_tenant(c, &s, |c| Ok(invoices::get(c, inv_id)?.label()))
    })
    .await?;
    let request = ChargeRequest {
        idempotency_key: attempt.idempotency_key.clone(),
        amount_minor: minor,
        currency: attempt.currency.clone(),
        customer_ref: method.customer_ref.clone(),
        method_token: method.token.clone(),
        description: format!("Invoice {number}"),
        metadata: vec![
            ("invoice_id".into(), attempt.invoice_id.to_string()),
            ("invoice_number".into(), number),
            ("attempt_id".into(), attempt.id.to_string()),
        ],
    };
    let outcome = match gateway::build(state, schema, &method.gateway).await {
        Ok(g) => g.charge(&request).await,
        Err(e) => Outcome::Declined {
            class: DeclineClass::Retryable,
            code: "not_configured".into(),
            message: format!("{e}"),
            reference: None,
        },
    };
    let s = schema.clone();
    let o = outcome.clone();
    let slug = db::run(&state.pool, move |c| {
        crate::tenants::repo::slug_of(c, tenant_id)
    })
    .await?
    .ok_or(AppError::NotFound)?;
    let links = crate::invoicing::billrun::links_for(state, tenant_id, &slug);
    db::run(&state.pool, move |c| {
        in_tenant(c, &s, |c| record(c, &links, attempt.id, &o, today))
    })
    .await?;
    Ok(Some(outcome))
}

/// Records the gateway's answer (also used by the Stripe webhook for pending charges).
pub fn record(
    conn: &mut PgConnection,
    links: &Links,
    attempt_id: i64,
    outcome: &Outcome,
    today: NaiveDate,
) -> AppResult<()> {
    let (inv, a) = lock_attempt(conn, attempt_id)?;
    if !matches!(a.status.as_str(), "processing" | "pending") {
        return Ok(()); // recorded by someone else already
    }
    let amount = a.amount.unwrap_or(Decimal::ZERO);
    match outcome {
        Outcome::Succeeded { reference } => {
            let pay = payments::insert(
                conn,
                &payments::NewPayment {
                    account_id: a.account_id,
                    method: "card",
                    currency: &a.currency,
                    amount,
                    received_on: today,
                    reference,
                    created_by: None,
                },
            )?;
            // Paid some other way meanwhile: the rest stays as unapplied cash to refund or apply.
            let apply = amount.min(inv.amount_due).max(Decimal::ZERO);
            payments::apply(conn, pay, &[(a.invoice_id, apply)], None)?;
            diesel::update(ca::table.find(a.id))
                .set((
                    ca::status.eq("succeeded"),
                    ca::gateway_ref.eq(reference),
                    ca::payment_id.eq(pay),
                ))
                .execute(conn)?;
            payments::event(
                conn,
                "payment.succeeded",
                "payment",
                pay,
                json!({ "invoice_id": a.invoice_id, "amount": amount, "currency": a.currency,
                        "gateway_ref": reference, "attempt_id": a.id }),
            )?;
            dunning::repo::settle_if_paid(conn, a.invoice_id)?;
        }
        Outcome::Pending { reference } => {
            diesel::update(ca::table.find(a.id))
                .set((ca::status.eq("pending"), ca::gateway_ref.eq(reference)))
                .execute(conn)?;
        }
        // No answer: the gateway may have charged. Ask again with the same key (and amount),
        // which returns the first result instead of charging a second time.
        Outcome::Declined {
            class: DeclineClass::Retryable,
            code,
            message,
            ..
        } if code == "network" => {
            let rules = dunning::repo::retry_rules_for(conn, a.invoice_id)?.unwrap_or_default();
            let streak = i64::from(a.attempt_no).min(8);
            let wait = rules
                .retryable_hours
                .first()
                .map_or(1, |h| i64::from(*h))
                .saturating_mul(1 << (streak - 1).max(0));
            let at = Utc::now() + chrono::Duration::hours(wait.min(48));
            diesel::update(ca::table.find(a.id))
                .set((
                    ca::status.eq("scheduled"),
                    ca::scheduled_for.eq(at),
                    ca::message.eq(message),
                ))
                .execute(conn)?;
            let mut job = queue::NewJob::new(
                kinds::PAYMENT_CHARGE,
                Some(links.tenant_id),
                json!({ "attempt_id": a.id }),
            );
            job.dedupe_key = Some(format!(
                "charge:{}:{}:{}",
                links.tenant_id,
                a.id,
                at.timestamp()
            ));
            job.run_at = Some(at);
            queue::enqueue(conn, &job)?;
        }
        Outcome::Declined {
            class,
            code,
            message,
            reference,
        } => {
            diesel::update(ca::table.find(a.id))
                .set((
                    ca::status.eq(class.as_str()),
                    ca::decline_code.eq(code),
                    ca::message.eq(message),
                    ca::gateway_ref.eq(reference),
                ))
                .execute(conn)?;
            payments::event(
                conn,
                "payment.failed",
                "invoice",
                a.invoice_id,
                json!({ "attempt_id": a.id, "class": class.as_str(), "code": code,
                        "message": message, "amount": amount, "currency": a.currency }),
            )?;
            after_decline(conn, links, &a, code, today)?;
        }
    }
    Ok(())
}

fn after_decline(
    conn: &mut PgConnection,
    links: &Links,
    a: &Attempt,
    code: &str,
    today: NaiveDate,
) -> AppResult<()> {
    let history: Vec<DeclineClass> = for_invoice(conn, a.invoice_id)?
        .iter()
        .filter_map(|x| match x.status.as_str() {
            "soft_decline" => Some(DeclineClass::Soft),
            "hard_decline" => Some(DeclineClass::Hard),
            "retryable_error" => Some(DeclineClass::Retryable),
            _ => None,
        })
        .collect();
    let rules = dunning::repo::retry_rules_for(conn, a.invoice_id)?;
    let inv = invoices::get(conn, a.invoice_id)?;
    let label = inv.label();
    match rules.map(|r| dunning::domain::next_retry(&r, &history, today, Utc::now())) {
        Some(dunning::domain::Retry::At(at)) => {
            schedule(conn, links.tenant_id, a.invoice_id, "retry", at, None)?;
        }
        Some(dunning::domain::Retry::AskForNewMethod) => {
            methods::mark_needs_update(conn, a.payment_method_id, code)?;
            dunning::actions::ask_for_new_method(conn, links, &inv, code)?;
            dunning::repo::create_task(
                conn,
                &dunning::repo::NewTask {
                    account_id: a.account_id,
                    invoice_id: Some(a.invoice_id),
                    title: format!("Card declined ({code}) on {label}: get a new payment method"),
                    detail: String::new(),
                    assignee: dunning::domain::Assignee::AccountOwner,
                    due_on: today + chrono::Duration::days(2),
                    source: "payment_failed",
                },
            )?;
        }
        Some(dunning::domain::Retry::Exhausted) => {
            dunning::repo::create_task(
                conn,
                &dunning::repo::NewTask {
                    account_id: a.account_id,
                    invoice_id: Some(a.invoice_id),
                    title: format!("Automatic payment retries used up on {label}"),
                    detail: format!("Last decline: {code}"),
                    assignee: dunning::domain::Assignee::AccountOwner,
                    due_on: today + chrono::Duration::days(2),
                    source: "payment_failed",
                },
            )?;
        }
        // Excluded from dunning: a person handles the account.
        None => {}
    }
    Ok(())
}

/// Handler of `payments.charge` jobs.
pub async fn run_job(state: &AppState, job: &queue::Job) -> Result<(), JobFailure> {
    let tenant_id = job
        .tenant_id
        .ok_or_else(|| JobFailure::permanent("charge job without tenant"))?;
    let attempt_id = job
        .payload
        .get("attempt_id")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| JobFailure::permanent("charge job without attempt_id"))?;
    let schema = db::run(&state.pool, move |c| {
        crate::tenants::repo::schema_of(c, tenant_id)
    })
    .await?
    .ok_or_else(|| JobFailure::permanent("tenant no longer exists"))?;
    let schema = TenantSchema::parse(&schema).map_err(JobFailure::permanent)?;
    execute(
        state,
        tenant_id,
        &schema,
        attempt_id,
        Utc::now().date_naive(),
    )
    .await?;
    Ok(())
}
