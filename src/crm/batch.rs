//! Running `crm.process` jobs in bursts.
//!
//! A webhook burst queues one job per event. The worker that claims one also claims the other
//! due `crm.process` jobs of the same tenant (up to [`BATCH`]) and applies all their events in
//! one tenant transaction, each inside its own savepoint: an event that fails or is held rolls
//! back only its own effects, and every job keeps its own attempts, retries and outcome. A
//! burst then costs one commit and a handful of queue statements per batch instead of several
//! round trips and commits per event.

use chrono::Utc;
use diesel::{
    sql_query,
    sql_types::{Array, BigInt},
    Connection, PgConnection, QueryableByName, RunQueryDsl,
};
use serde_json::Value;

use super::{hubspot_api::FetchError, process, repo};
use crate::{
    db::{self, scope::TenantSchema},
    error::AppError,
    jobs::{queue, JobFailure},
    web::AppState,
};

/// Events applied in one transaction at most.
pub const BATCH: i64 = 100;

/// Tables a burst of won deals fills and then looks up by other columns than the id (duplicate
/// detection, CRM links): their statistics must keep up (`db::statistics`).
const GROWING_TABLES: [&str; 5] = [
    "accounts",
    "contacts",
    "account_external_ids",
    "crm_links",
    "subscriptions",
];

/// What one job of the batch carries into the transaction.
struct Work {
    slot: usize,
    inbox_id: i64,
    /// The deal document read from the CRM's API, when the connector reads one.
    doc: Option<Value>,
    /// The API said the deal cannot be read: the event is held with this reason.
    hold: Option<String>,
    last_try: bool,
}

/// Handler of `crm.process` jobs: this job and its companions, applied together.
pub async fn run_job(state: &AppState, job: &queue::Job) -> Result<(), JobFailure> {
    let tenant_id = job
        .tenant_id
        .ok_or_else(|| JobFailure::permanent("CRM job without tenant"))?;
    let schema_name = db::run(&state.pool, move |c| {
        crate::tenants::repo::schema_of(c, tenant_id)
    })
    .await?
    .ok_or_else(|| JobFailure::permanent("tenant no longer exists"))?;
    let schema = TenantSchema::parse(&schema_name).map_err(JobFailure::permanent)?;
    let leader = job.clone();
    // Without companions the leader still runs; they are only an optimisation.
    let companions = db::run(&state.pool, move |c| {
        queue::claim_companions(c, &leader, BATCH - 1)
    })
    .await
    .unwrap_or_default();
    let mut jobs = Vec::with_capacity(1 + companions.len());
    jobs.push(job.clone());
    jobs.extend(companions);
    let mut results = run_batch(state, tenant_id, &schema, &jobs).await;
    let leader_result = results.remove(0);
    let settle: Vec<(queue::Job, Result<(), JobFailure>)> =
        jobs.into_iter().skip(1).zip(results).collect();
    if !settle.is_empty() {
        let base = state.config.retry_base;
        let settled = db::run(&state.pool, move |c| {
            for (j, r) in &settle {
                match r {
                    Ok(()) => queue::complete(c, j.id)?,
                    Err(f) => {
                        queue::fail(c, j, &f.message, f.retryable, base)?;
                    }
                }
            }
            Ok(())
        })
        .await;
        if let Err(e) = settled {
            // Their inbox rows are settled already; the jobs run again after the lease and
            // find nothing left to do.
            tracing::warn!(error = ?e, "could not record the outcome of batched CRM jobs");
        }
    }
    leader_result
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The inbox rows whose deal document must be read from the CRM's API first (the same rule
/// as [`process::fetch_document`]).
fn needing_fetch(c: &mut PgConnection, ids: &[i64]) -> Result<Vec<i64>, AppError> {
    let rows: Vec<Id> = sql_query(
        "SELECT i.id FROM crm_inbox i JOIN crm_connectors k ON k.id = i.connector_id \
         WHERE i.id = ANY($1) AND k.api_token_sealed IS NOT NULL \
           AND (k.kind = 'hubspot' OR (k.kind = 'salesforce' \
                AND coalesce(k.settings->>'salesforce_instance_url', '') <> '')) \
           AND i.status = 'received' AND i.object_type = 'deal' AND i.change = 'won'",
    )
    .bind::<Array<BigInt>, _>(ids)
    .load(c)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Applies the jobs' events; one result per job, in order.
async fn run_batch(
    state: &AppState,
    tenant_id: i64,
    schema: &TenantSchema,
    jobs: &[queue::Job],
) -> Vec<Result<(), JobFailure>> {
    let mut out: Vec<Option<Result<(), JobFailure>>> = jobs.iter().map(|_| None).collect();
    let mut work = Vec::new();
    for (slot, j) in jobs.iter().enumerate() {
        match j.payload.get("inbox_id").and_then(Value::as_i64) {
            Some(inbox_id) => work.push(Work {
                slot,
                inbox_id,
                doc: None,
                hold: None,
                last_try: j.attempts >= j.max_attempts,
            }),
            None => out[slot] = Some(Err(JobFailure::permanent("CRM job without inbox_id"))),
        }
    }
    let s = schema.clone();
    let analysed = db::run(&state.pool, move |c| {
        db::scope::in_tenant(c, &s, |c| {
            db::statistics::refresh_if_outgrown(c, &GROWING_TABLES)
        })
    })
    .await;
    match analysed {
        Ok(t) if !t.is_empty() => {
            tracing::info!(tables = ?t, "analysed tables a CRM burst outgrew")
        }
        Ok(_) => {}
        // Only the plans suffer; the events still apply.
        Err(e) => tracing::warn!(error = ?e, "could not refresh planner statistics"),
    }
    let ids: Vec<i64> = work.iter().map(|w| w.inbox_id).collect();
    let s = schema.clone();
    let fetch = match db::run(&state.pool, move |c| {
        db::scope::in_tenant(c, &s, |c| needing_fetch(c, &ids))
    })
    .await
    {
        Ok(f) => f,
        Err(e) => return fail_all(out, &format!("{e:?}")),
    };
    let mut ready = Vec::with_capacity(work.len());
    for mut w in work {
        if fetch.contains(&w.inbox_id) {
            match process::fetch_document(state, schema, w.inbox_id).await {
                Ok(d) => w.doc = d,
                Err(FetchError::Retry(m)) => {
                    out[w.slot] = Some(Err(JobFailure::retry(m)));
                    continue;
                }
                Err(FetchError::Hold(m)) => w.hold = Some(m),
            }
        }
        ready.push(w);
    }
    let s = schema.clone();
    let st = state.clone();
    let applied = db::run(&state.pool, move |c| {
        db::scope::in_tenant(c, &s, |c| {
            let slug = crate::tenants::repo::slug_of(c, tenant_id)?.unwrap_or_default();
            let links = crate::invoicing::billrun::links_for(&st, tenant_id, &slug);
            let today = Utc::now().date_naive();
            let mut results = Vec::with_capacity(ready.len());
            for w in ready {
                let r = c.transaction::<_, AppError, _>(|c| match &w.hold {
                    Some(reason) => {
                        let row = repo::lock_inbox_row(c, w.inbox_id)?;
                        if row.status == "received" {
                            repo::finish(c, w.inbox_id, "held", Some(reason), None, None)?;
                        }
                        Ok(None)
                    }
                    None => process::process_with(c, w.inbox_id, today, w.doc, Some(&links)),
                });
                let r = match r {
                    Ok(Some(process::Outcome::Wait(reason))) => Err(JobFailure::retry(reason)),
                    Ok(_) => Ok(()),
                    Err(e) => {
                        let message = format!("{e:?}");
                        if w.last_try {
                            repo::finish(c, w.inbox_id, "failed", Some(&message), None, None)?;
                        }
                        Err(JobFailure::retry(message))
                    }
                };
                results.push((w.slot, r));
            }
            Ok(results)
        })
    })
    .await;
    match applied {
        Ok(results) => {
            for (slot, r) in results {
                out[slot] = Some(r);
            }
            out.into_iter()
                .map(|r| r.unwrap_or_else(|| Err(JobFailure::retry("not processed"))))
                .collect()
        }
        Err(e) => fail_all(out, &format!("{e:?}")),
    }
}

/// The transaction failed as a whole (the database went away): every job not settled yet is
/// retried.
fn fail_all(
    out: Vec<Option<Result<(), JobFailure>>>,
    message: &str,
) -> Vec<Result<(), JobFailure>> {
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(JobFailure::retry(message))))
        .collect()
}
