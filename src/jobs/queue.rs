//! The queue's SQL. All functions take a plain connection: the queue is control data.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::{
    sql_types::{BigInt, Int4, Jsonb, Nullable, Text},
    OptionalExtension, PgConnection, RunQueryDsl,
};
use rand::Rng as _;
use serde_json::Value;

use crate::error::AppResult;

#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct Job {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub tenant_id: Option<i64>,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Jsonb)]
    pub payload: Value,
    /// Attempts including the current one.
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    #[diesel(sql_type = Int4)]
    pub max_attempts: i32,
}

#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub tenant_id: Option<i64>,
    pub kind: &'a str,
    pub payload: Value,
    pub dedupe_key: Option<String>,
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
}

impl<'a> NewJob<'a> {
    pub fn new(kind: &'a str, tenant_id: Option<i64>, payload: Value) -> Self {
        Self {
            tenant_id,
            kind,
            payload,
            dedupe_key: None,
            run_at: None,
            max_attempts: 8,
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Enqueues a job; with a dedupe key an existing job is kept and `None` returned.
/// Safe inside a tenant transaction: the table is schema-qualified.
pub fn enqueue(conn: &mut PgConnection, job: &NewJob<'_>) -> AppResult<Option<i64>> {
    let id: Option<Id> = diesel::sql_query(
        "INSERT INTO control.jobs (tenant_id, kind, payload, dedupe_key, run_at, max_attempts) \
         VALUES ($1, $2, $3, $4, COALESCE($5, now()), $6) \
         ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
    )
    .bind::<Nullable<BigInt>, _>(job.tenant_id)
    .bind::<Text, _>(job.kind)
    .bind::<Jsonb, _>(&job.payload)
    .bind::<Nullable<Text>, _>(job.dedupe_key.as_deref())
    .bind::<Nullable<diesel::sql_types::Timestamptz>, _>(job.run_at)
    .bind::<Int4, _>(job.max_attempts)
    .get_result(conn)
    .optional()?;
    Ok(id.map(|i| i.id))
}

/// Claims the next due job, or `None`. Concurrent callers never get the same job.
/// `only_tenant` restricts the claim to one tenant (used by per-tenant drains).
pub fn claim(
    conn: &mut PgConnection,
    worker: &str,
    only_tenant: Option<i64>,
) -> AppResult<Option<Job>> {
    Ok(diesel::sql_query(
        "UPDATE control.jobs j SET status = 'running', locked_by = $1, locked_at = now(), \
                attempts = j.attempts + 1 \
         WHERE j.id = ( \
            SELECT id FROM control.jobs \
            WHERE status = 'queued' AND run_at <= now() \
              AND ($2::bigint IS NULL OR tenant_id = $2) \
            ORDER BY run_at, id \
            FOR UPDATE SKIP LOCKED LIMIT 1) \
         RETURNING j.id, j.tenant_id, j.kind, j.payload, j.attempts, j.max_attempts",
    )
    .bind::<Text, _>(worker)
    .bind::<Nullable<BigInt>, _>(only_tenant)
    .get_result(conn)
    .optional()?)
}

pub fn complete(conn: &mut PgConnection, job_id: i64) -> AppResult<()> {
    diesel::sql_query(
        "UPDATE control.jobs SET status = 'done', finished_at = now(), locked_by = NULL, \
                last_error = NULL WHERE id = $1",
    )
    .bind::<BigInt, _>(job_id)
    .execute(conn)?;
    Ok(())
}

/// What happened to a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    Retry,
    Dead,
}

/// Delay before attempt `attempt + 1`: base · 2^(attempt-1), capped at one hour, ±20 % jitter
/// so many failures after one outage do not retry in lockstep.
pub fn backoff(base: Duration, attempt: i32) -> Duration {
    let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 20)).unwrap_or(0);
    let raw = base
        .saturating_mul(2u32.saturating_pow(exp))
        .min(Duration::from_secs(3600));
    let jitter = rand::rng().random_range(0.8..1.2);
    raw.mul_f64(jitter)
}

pub fn fail(
    conn: &mut PgConnection,
    job: &Job,
    error: &str,
    retryable: bool,
    base: Duration,
) -> AppResult<FailOutcome> {
    let outcome = if retryable && job.attempts < job.max_attempts {
        FailOutcome::Retry
    } else {
        FailOutcome::Dead
    };
    let delay_ms = i64::try_from(backoff(base, job.attempts).as_millis()).unwrap_or(i64::MAX);
    let error: String = error.chars().take(2000).collect();
    match outcome {
        FailOutcome::Retry => diesel::sql_query(
            "UPDATE control.jobs SET status = 'queued', locked_by = NULL, locked_at = NULL, \
                    last_error = $2, run_at = now() + make_interval(secs => $3::double precision / 1000) \
             WHERE id = $1",
        )
        .bind::<BigInt, _>(job.id)
        .bind::<Text, _>(&error)
        .bind::<BigInt, _>(delay_ms)
        .execute(conn)?,
        FailOutcome::Dead => diesel::sql_query(
            "UPDATE control.jobs SET status = 'dead', locked_by = NULL, finished_at = now(), \
                    last_error = $2 WHERE id = $1",
        )
        .bind::<BigInt, _>(job.id)
        .bind::<Text, _>(&error)
        .execute(conn)?,
    };
    Ok(outcome)
}

/// Requeues jobs whose worker vanished (crash, kill) longer than `lease` ago.
pub fn requeue_stale(conn: &mut PgConnection, lease: Duration) -> AppResult<usize> {
    let secs = i64::try_from(lease.as_secs()).unwrap_or(i64::MAX);
    Ok(diesel::sql_query(
        "UPDATE control.jobs SET status = 'queued', locked_by = NULL, locked_at = NULL, \
                last_error = 'worker lease expired; requeued' \
         WHERE status = 'running' AND locked_at < now() - make_interval(secs => $1::double precision)",
    )
    .bind::<BigInt, _>(secs)
    .execute(conn)?)
}

/// The heartbeat of a worker: every job it is running (a batch leader and its companions)
/// starts its lease again.
pub fn touch(conn: &mut PgConnection, worker: &str) -> AppResult<usize> {
    Ok(diesel::sql_query(
        "UPDATE control.jobs SET locked_at = now() WHERE status = 'running' AND locked_by = $1",
    )
    .bind::<Text, _>(worker)
    .execute(conn)?)
}

/// Claims up to `limit` more due jobs of the leader's kind and tenant for the leader's worker,
/// for handlers that process a burst together. Each keeps its own attempts and outcome.
pub fn claim_companions(conn: &mut PgConnection, leader: &Job, limit: i64) -> AppResult<Vec<Job>> {
    if limit <= 0 {
        return Ok(Vec::new());
    }
    Ok(diesel::sql_query(
        "UPDATE control.jobs j SET status = 'running', locked_at = now(), attempts = j.attempts + 1, \
                locked_by = (SELECT locked_by FROM control.jobs WHERE id = $1) \
         WHERE j.id IN ( \
            SELECT id FROM control.jobs \
            WHERE status = 'queued' AND run_at <= now() AND kind = $2 AND tenant_id = $3 AND id <> $1 \
            ORDER BY run_at, id \
            FOR UPDATE SKIP LOCKED LIMIT $4) \
         RETURNING j.id, j.tenant_id, j.kind, j.payload, j.attempts, j.max_attempts",
    )
    .bind::<BigInt, _>(leader.id)
    .bind::<Text, _>(&leader.kind)
    .bind::<Nullable<BigInt>, _>(leader.tenant_id)
    .bind::<BigInt, _>(limit)
    .load(conn)?)
}

/// Puts a dead job back in the queue for another round of attempts (manual replay).
pub fn revive(conn: &mut PgConnection, job_id: i64) -> AppResult<bool> {
    let n = diesel::sql_query(
        "UPDATE control.jobs SET status = 'queued', attempts = 0, run_at = now(), \
                finished_at = NULL WHERE id = $1 AND status = 'dead'",
    )
    .bind::<BigInt, _>(job_id)
    .execute(conn)?;
    Ok(n == 1)
}

#[derive(Debug, Default, Clone, diesel::QueryableByName)]
pub struct JobCounts {
    #[diesel(sql_type = BigInt)]
    pub queued: i64,
    #[diesel(sql_type = BigInt)]
    pub running: i64,
    #[diesel(sql_type = BigInt)]
    pub dead: i64,
    #[diesel(sql_type = BigInt)]
    pub done: i64,
}

pub fn counts_for_tenant(conn: &mut PgConnection, tenant_id: i64) -> AppResult<JobCounts> {
    Ok(diesel::sql_query(
        "SELECT count(*) FILTER (WHERE status = 'queued') AS queued, \
                count(*) FILTER (WHERE status = 'running') AS running, \
                count(*) FILTER (WHERE status = 'dead') AS dead, \
                count(*) FILTER (WHERE status = 'done') AS done \
         FROM control.jobs WHERE tenant_id = $1",
    )
    .bind::<BigInt, _>(tenant_id)
    .get_result(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let base = Duration::from_secs(5);
        let b1 = backoff(base, 1);
        assert!(
            b1 >= Duration::from_secs(4) && b1 <= Duration::from_secs(6),
            "{b1:?}"
        );
        let b4 = backoff(base, 4);
        assert!(
            b4 >= Duration::from_secs(32) && b4 <= Duration::from_secs(48),
            "{b4:?}"
        );
        assert!(backoff(base, 30) <= Duration::from_secs(4320));
        assert!(backoff(base, 0) <= Duration::from_secs(6));
    }
}
