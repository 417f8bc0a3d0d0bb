//! Reading the state of each connector from its outbox rows and delivery log.

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_query,
    sql_types::{BigInt, Nullable, Text, Timestamptz},
};

use super::{Connector, CONNECTORS};
use crate::{
    db::schema::tenant::{connector_deliveries as cd, integration_alerts as ia, outbox},
    error::AppResult,
};

/// Delivery log rows per page.
pub const PAGE_SIZE: i64 = 50;

#[derive(Debug, Clone, Default, QueryableByName)]
pub struct Counts {
    #[diesel(sql_type = BigInt)]
    pub pending: i64,
    #[diesel(sql_type = BigInt)]
    pub retrying: i64,
    #[diesel(sql_type = BigInt)]
    pub dead: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub oldest_undelivered: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub pending_since: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub failing_since: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
}

/// Undelivered rows of one outbox kind (through the partial index on undelivered rows).
pub fn counts(conn: &mut PgConnection, kind: &str) -> AppResult<Counts> {
    Ok(sql_query(
        "SELECT count(*) FILTER (WHERE status = 'pending') AS pending, \
                count(*) FILTER (WHERE status = 'retrying') AS retrying, \
                count(*) FILTER (WHERE status = 'dead') AS dead, \
                min(created_at) AS oldest_undelivered, \
                min(created_at) FILTER (WHERE status = 'pending') AS pending_since, \
                min(created_at) FILTER (WHERE status = 'retrying') AS failing_since, \
                (array_agg(last_error ORDER BY id DESC) FILTER (WHERE last_error IS NOT NULL))[1] AS last_error \
         FROM outbox WHERE kind = $1 AND status IN ('pending', 'retrying', 'dead')",
    )
    .bind::<Text, _>(kind)
    .get_result(conn)?)
}

#[derive(Debug, Clone, Queryable)]
pub struct Alert {
    pub id: i64,
    pub connector: String,
    pub summary: String,
    pub opened_at: DateTime<Utc>,
    pub notified_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
}

pub fn open_alerts(conn: &mut PgConnection) -> AppResult<Vec<Alert>> {
    Ok(ia::table
        .filter(ia::resolved_at.is_null())
        .order(ia::opened_at.desc())
        .load(conn)?)
}

pub fn recent_alerts(conn: &mut PgConnection, limit: i64) -> AppResult<Vec<Alert>> {
    Ok(ia::table.order(ia::id.desc()).limit(limit).load(conn)?)
}

#[derive(Debug, Clone)]
pub struct ConnectorHealth {
    pub connector: Connector,
    pub enabled: bool,
    pub counts: Counts,
    pub last_success: Option<DateTime<Utc>>,
    pub last_failure: Option<(DateTime<Utc>, String)>,
    pub alert: Option<Alert>,
}

impl ConnectorHealth {
    /// `failing` (an open alert or dead deliveries), `retrying`, `healthy` or `off`.
    pub fn state(&self) -> &'static str {
        if self.alert.is_some() || self.counts.dead > 0 {
            "failing"
        } else if self.counts.retrying > 0 {
            "retrying"
        } else if self.enabled {
            "healthy"
        } else {
            "off"
        }
    }
}

pub fn connector(
    conn: &mut PgConnection,
    c: Connector,
    enabled: bool,
    alerts: &[Alert],
) -> AppResult<ConnectorHealth> {
    let counts = counts(conn, c.outbox_kind)?;
    let last_success: Option<Option<DateTime<Utc>>> = outbox::table
        .filter(outbox::kind.eq(c.outbox_kind))
        .filter(outbox::status.eq_any(["delivered", "captured"]))
        .order(outbox::id.desc())
        .select(outbox::delivered_at)
        .first(conn)
        .optional()?;
    let logged: Option<(DateTime<Utc>, Option<String>)> = cd::table
        .filter(cd::connector.eq(c.code))
        .filter(cd::ok.eq(false))
        .order(cd::id.desc())
        .select((cd::created_at, cd::error))
        .first(conn)
        .optional()?;
    let last_failure = logged
        .map(|(at, e)| (at, e.unwrap_or_default()))
        .or_else(|| {
            counts
                .last_error
                .clone()
                .zip(counts.failing_since.or(counts.oldest_undelivered))
                .map(|(e, at)| (at, e))
        });
    Ok(ConnectorHealth {
        connector: c,
        enabled,
        last_success: last_success.flatten(),
        last_failure,
        alert: alerts.iter().find(|a| a.connector == c.code).cloned(),
        counts,
    })
}

/// Every connector's health; `enabled` says which are configured.
pub fn all(
    conn: &mut PgConnection,
    enabled: impl Fn(Connector) -> bool,
) -> AppResult<Vec<ConnectorHealth>> {
    let alerts = open_alerts(conn)?;
    CONNECTORS
        .iter()
        .map(|c| connector(conn, *c, enabled(*c), &alerts))
        .collect()
}

#[derive(Debug, Clone, Queryable)]
pub struct Delivery {
    pub id: i64,
    pub connector: String,
    pub outbox_id: Option<i64>,
    pub subject: String,
    pub attempt: i32,
    pub ok: bool,
    pub http_status: Option<i32>,
    pub error: Option<String>,
    pub remote_ref: Option<String>,
    pub duration_ms: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub connector: Option<String>,
    /// `Some(true)` successes only, `Some(false)` failures only.
    pub ok: Option<bool>,
    pub page: i64,
}

/// One page of the delivery log, newest first, and the number of matching rows.
pub fn deliveries(conn: &mut PgConnection, f: &LogFilter) -> AppResult<(Vec<Delivery>, i64)> {
    let filtered = || {
        let mut q = cd::table.into_boxed();
        if let Some(c) = &f.connector {
            q = q.filter(cd::connector.eq(c.clone()));
        }
        if let Some(ok) = f.ok {
            q = q.filter(cd::ok.eq(ok));
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let rows = filtered()
        .order(cd::id.desc())
        .limit(PAGE_SIZE)
        .offset((f.page.max(1) - 1) * PAGE_SIZE)
        .load(conn)?;
    Ok((rows, total))
}

#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub connector: &'a str,
    pub outbox_id: i64,
    pub subject: &'a str,
    pub attempt: i32,
    pub ok: bool,
    pub http_status: Option<i32>,
    pub error: Option<&'a str>,
    pub remote_ref: Option<&'a str>,
    pub duration_ms: i32,
}

pub fn log(conn: &mut PgConnection, d: &NewDelivery<'_>) -> AppResult<()> {
    let error = d.error.map(|e| e.chars().take(2000).collect::<String>());
    diesel::insert_into(cd::table)
        .values((
            cd::connector.eq(d.connector),
            cd::outbox_id.eq(d.outbox_id),
            cd::subject.eq(d.subject),
            cd::attempt.eq(d.attempt.max(1)),
            cd::ok.eq(d.ok),
            cd::http_status.eq(d.http_status),
            cd::error.eq(error),
            cd::remote_ref.eq(d.remote_ref),
            cd::duration_ms.eq(d.duration_ms.max(0)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Dead rows of the connectors' kinds, newest first, for the "send again" list.
pub fn dead(conn: &mut PgConnection, limit: i64) -> AppResult<Vec<crate::jobs::outbox::OutboxRow>> {
    let kinds: Vec<&str> = CONNECTORS.iter().map(|c| c.outbox_kind).collect();
    Ok(outbox::table
        .filter(outbox::status.eq("dead"))
        .filter(outbox::kind.eq_any(kinds))
        .order(outbox::id.desc())
        .limit(limit)
        .load(conn)?)
}
