//! Queries behind the "Sent mail" page (tenant scope).

use diesel::{ExpressionMethods, PgConnection, QueryDsl, RunQueryDsl};

use crate::{
    db::schema::tenant::outbox,
    error::AppResult,
    jobs::outbox::{OutboxRow, KIND_EMAIL},
};

pub const PAGE_SIZE: i64 = 50;

/// One page of emails, newest first, optionally filtered by status.
pub fn list(
    conn: &mut PgConnection,
    status: Option<&str>,
    page: i64,
) -> AppResult<(Vec<OutboxRow>, i64)> {
    let mut q = outbox::table
        .filter(outbox::kind.eq(KIND_EMAIL))
        .into_boxed();
    let mut c = outbox::table
        .filter(outbox::kind.eq(KIND_EMAIL))
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(outbox::status.eq(s.to_owned()));
        c = c.filter(outbox::status.eq(s.to_owned()));
    }
    let total: i64 = c.count().get_result(conn)?;
    let rows = q
        .order(outbox::id.desc())
        .limit(PAGE_SIZE)
        .offset(page.saturating_sub(1).max(0) * PAGE_SIZE)
        .load(conn)?;
    Ok((rows, total))
}

#[derive(Debug, Default, Clone)]
pub struct StatusCounts {
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
}

pub fn status_counts(conn: &mut PgConnection) -> AppResult<StatusCounts> {
    let rows: Vec<(String, i64)> = outbox::table
        .filter(outbox::kind.eq(KIND_EMAIL))
        .group_by(outbox::status)
        .select((outbox::status, diesel::dsl::count_star()))
        .load(conn)?;
    let mut c = StatusCounts::default();
    for (status, n) in rows {
        match status.as_str() {
            "pending" | "retrying" => c.pending += n,
            "delivered" | "captured" => c.delivered += n,
            _ => c.failed += n,
        }
    }
    Ok(c)
}
