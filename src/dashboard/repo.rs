//! The dashboard's own queries: the signed-in user's open collections tasks and the latest
//! failures (declined or errored charges, undeliverable outbox messages). Receivable figures
//! come from the collections report's queries so both pages agree.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::{
    prelude::*,
    sql_query,
    sql_types::{BigInt, Date, Nullable, Text, Timestamptz},
};

use crate::error::AppResult;

/// Rows per dashboard list.
pub const LIST_LIMIT: i64 = 10;

#[derive(Debug, Clone, QueryableByName)]
pub struct MyTask {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub account_id: i64,
    #[diesel(sql_type = Text)]
    pub account: String,
    #[diesel(sql_type = Text)]
    pub title: String,
    #[diesel(sql_type = Date)]
    pub due_on: NaiveDate,
}

/// Open tasks assigned to `user`, most overdue first.
pub fn my_tasks(conn: &mut PgConnection, user: i64) -> AppResult<Vec<MyTask>> {
    Ok(sql_query(
        "SELECT t.id, t.account_id, a.display_name AS account, t.title, t.due_on
           FROM collections_tasks t JOIN accounts a ON a.id = t.account_id
          WHERE t.status = 'open' AND t.assignee_user_id = $1
          ORDER BY t.due_on, t.id
          LIMIT $2",
    )
    .bind::<BigInt, _>(user)
    .bind::<BigInt, _>(LIST_LIMIT)
    .load(conn)?)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct ChargeFailure {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub invoice_id: i64,
    #[diesel(sql_type = BigInt)]
    pub account_id: i64,
    #[diesel(sql_type = Text)]
    pub account: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub message: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub at: DateTime<Utc>,
}

/// The latest failed charge attempts; sales see only their accounts'.
pub fn charge_failures(
    conn: &mut PgConnection,
    visible_owner: Option<i64>,
) -> AppResult<Vec<ChargeFailure>> {
    Ok(sql_query(
        "SELECT c.id, c.invoice_id, c.account_id, a.display_name AS account, c.status,
                COALESCE(c.message, c.decline_code) AS message,
                COALESCE(c.attempted_at, c.created_at) AS at
           FROM charge_attempts c JOIN accounts a ON a.id = c.account_id
          WHERE c.status IN ('soft_decline', 'hard_decline', 'retryable_error')
            AND ($1::bigint IS NULL OR a.owner_user_id = $1)
          ORDER BY at DESC, c.id DESC
          LIMIT $2",
    )
    .bind::<Nullable<BigInt>, _>(visible_owner)
    .bind::<BigInt, _>(LIST_LIMIT)
    .load(conn)?)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct OutboxFailure {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
}

/// Outbox messages that are dead or still retrying, newest first.
pub fn outbox_failures(conn: &mut PgConnection) -> AppResult<Vec<OutboxFailure>> {
    Ok(sql_query(
        "SELECT id, kind, status, last_error, created_at FROM outbox
          WHERE status IN ('dead', 'retrying')
          ORDER BY created_at DESC, id DESC
          LIMIT $1",
    )
    .bind::<BigInt, _>(LIST_LIMIT)
    .load(conn)?)
}
