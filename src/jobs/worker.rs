//! Worker tasks: claim a job, run its handler, record the outcome.

use std::time::Duration;

use tokio::{sync::watch, task::JoinHandle};

use super::{kinds, outbox, queue, JobFailure};
use crate::{db, error::AppResult, web::AppState};

/// How often the scheduler part of the reaper queues the daily runs and checks integrations.
const SCHEDULE_EVERY: Duration = Duration::from_secs(30);

pub struct Workers {
    handles: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Workers {
    /// Asks workers to stop after their current job and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            let _ = h.await;
        }
    }
}

pub fn spawn(state: AppState, count: usize) -> Workers {
    let (stop, rx) = watch::channel(false);
    let mut handles = Vec::new();
    if count > 0 {
        let instance = uuid::Uuid::new_v4().simple().to_string();
        for n in 0..count {
            let name = format!("{}-{n}", &instance[..8]);
            handles.push(tokio::spawn(worker_loop(state.clone(), name, rx.clone())));
        }
        handles.push(tokio::spawn(reaper_loop(state, rx)));
    }
    Workers { handles, stop }
}

async fn worker_loop(state: AppState, name: String, mut stop: watch::Receiver<bool>) {
    tracing::debug!(worker = %name, "job worker started");
    loop {
        if *stop.borrow() {
            break;
        }
        match run_one(&state, &name, None).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(worker = %name, error = ?e, "job worker could not claim"),
        }
        tokio::select! {
            _ = tokio::time::sleep(state.config.job_poll) => {}
            _ = state.wakeup.wait() => {}
            _ = stop.changed() => {}
        }
    }
}

async fn reaper_loop(state: AppState, mut stop: watch::Receiver<bool>) {
    let lease = state.config.job_lease;
    // Stale jobs are looked for twice per lease, so a killed worker's job waits at most 1.5
    // leases; the daily scheduling keeps its own slower pace.
    let pass = (lease / 2).clamp(Duration::from_millis(200), SCHEDULE_EVERY);
    let mut last_schedule: Option<tokio::time::Instant> = None;
    loop {
        let requeued = db::run(&state.pool, move |c| queue::requeue_stale(c, lease)).await;
        match requeued {
            Ok(n) if n > 0 => tracing::warn!(jobs = n, "requeued jobs of vanished workers"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e, "reaper failed"),
        }
        let due = last_schedule.is_none_or(|t| t.elapsed() >= SCHEDULE_EVERY);
        if state.config.schedule_bill_runs && due {
            last_schedule = Some(tokio::time::Instant::now());
            let today = chrono::Utc::now().date_naive();
            let queued = db::run(&state.pool, move |c| {
                crate::invoicing::billrun::schedule_daily(c, today)
            })
            .await;
            match queued {
                Ok(n) if n > 0 => tracing::info!(tenants = n, "queued daily bill runs"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "could not queue daily bill runs"),
            }
            let queued = db::run(&state.pool, move |c| {
                crate::dunning::engine::schedule_daily(c, today)
            })
            .await;
            match queued {
                Ok(n) if n > 0 => tracing::info!(tenants = n, "queued daily dunning runs"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "could not queue daily dunning runs"),
            }
            let queued = db::run(&state.pool, move |c| {
                crate::ledger::revenue::schedule_daily(c, today)
            })
            .await;
            if let Err(e) = queued {
                tracing::warn!(error = ?e, "could not queue daily revenue recognition");
            }
            // Every pass (30 s): a failing integration is alerted well inside 15 minutes.
            match crate::integrations::alerts::check_all(&state).await {
                Ok(n) if n > 0 => tracing::warn!(alerts = n, "integration alerts opened"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "integration alert check failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pass) => {}
            _ = stop.changed() => break,
        }
    }
}

/// Claims and runs one job. Returns whether there was one.
pub async fn run_one(state: &AppState, worker: &str, only_tenant: Option<i64>) -> AppResult<bool> {
    let name = worker.to_owned();
    let Some(job) = db::run(&state.pool, move |c| queue::claim(c, &name, only_tenant)).await?
    else {
        return Ok(false);
    };
    let span = tracing::info_span!("job", id = job.id, kind = %job.kind, tenant_id = job.tenant_id, attempt = job.attempts);
    // Instrumented, not entered: a guard held across an await can be dropped on another
    // thread, which corrupts the span stack (tracing-subscriber panics on it under load).
    let beat = tokio::spawn(heartbeat(state.clone(), worker.to_owned()));
    let result = tracing::Instrument::instrument(dispatch(state, &job), span).await;
    beat.abort();
    match result {
        Ok(()) => {
            let id = job.id;
            db::run(&state.pool, move |c| queue::complete(c, id)).await?;
        }
        Err(failure) => {
            let base = state.config.retry_base;
            let j = job.clone();
            let msg = failure.message.clone();
            let outcome = db::run(&state.pool, move |c| {
                queue::fail(c, &j, &msg, failure.retryable, base)
            })
            .await?;
            if outcome == queue::FailOutcome::Dead {
                tracing::error!(job = job.id, kind = %job.kind, error = %failure.message, "job is dead after {} attempts", job.attempts);
            } else {
                tracing::warn!(job = job.id, kind = %job.kind, error = %failure.message, "job failed; will retry");
            }
        }
    }
    Ok(true)
}

/// Keeps the leases of a worker's running jobs fresh for as long as the worker is alive, so a
/// long job (a big bill run) is never taken over while a killed worker's jobs are taken over
/// within one lease.
async fn heartbeat(state: AppState, worker: String) {
    let every = state.config.job_lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let w = worker.clone();
        if let Err(e) = db::run(&state.pool, move |c| queue::touch(c, &w)).await {
            tracing::warn!(worker = %worker, error = ?e, "job heartbeat failed");
        }
    }
}

/// Runs every due job of one tenant until none is left (CLI and tests).
pub async fn drain_tenant(state: &AppState, tenant_id: i64) -> AppResult<usize> {
    let mut n = 0;
    while run_one(state, "drain", Some(tenant_id)).await? {
        n += 1;
    }
    Ok(n)
}

async fn dispatch(state: &AppState, job: &queue::Job) -> Result<(), JobFailure> {
    match job.kind.as_str() {
        kinds::OUTBOX_DELIVER => outbox::deliver(state, job).await,
        kinds::SYSTEM_EMAIL => system_email(state, job).await,
        kinds::NOOP => Ok(()),
        kinds::ACCOUNTS_IMPORT => crate::accounts::import::run_job(state, job).await,
        kinds::BILL_RUN => crate::invoicing::billrun::run_job(state, job).await,
        kinds::PAYMENT_CHARGE => crate::payments::charge::run_job(state, job).await,
        kinds::DUNNING_RUN => crate::dunning::engine::run_job(state, job).await,
        kinds::LEDGER_RECOGNIZE => crate::ledger::revenue::run_job(state, job).await,
        kinds::CRM_PROCESS => crate::crm::batch::run_job(state, job).await,
        other => Err(JobFailure::permanent(format!("unknown job kind {other:?}"))),
    }
}

/// Sends a system email, then blanks the payload: it may hold a one-time link.
async fn system_email(state: &AppState, job: &queue::Job) -> Result<(), JobFailure> {
    let mail: crate::email::message::OutgoingEmail = job
        .payload
        .get("email")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| JobFailure::permanent("malformed system email payload"))?;
    let message_id = format!("<system-{}@{}>", job.id, state.mailer.domain());
    state
        .mailer
        .send(&mail, &message_id)
        .await
        .map_err(|e| JobFailure::retry(format!("{e:#}")))?;
    let id = job.id;
    db::run(&state.pool, move |c| {
        diesel::RunQueryDsl::execute(
            diesel::sql_query(
                "UPDATE control.jobs SET payload = '{\"redacted\": true}' WHERE id = $1",
            )
            .bind::<diesel::sql_types::BigInt, _>(id),
            c,
        )?;
        Ok(())
    })
    .await?;
    Ok(())
}
