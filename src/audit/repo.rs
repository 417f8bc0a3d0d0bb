//! Audit queries (tenant scope).

use chrono::{DateTime, NaiveDate, Utc};
use diesel::{
    sql_types::{BigInt, Bool},
    ExpressionMethods, PgConnection, QueryDsl, RunQueryDsl, SelectableHelper,
    TextExpressionMethods,
};
use serde_json::Value;

use super::{Actor, Entry, Verification};
use crate::{db::schema::tenant::audit_log, error::AppResult};

pub fn insert(conn: &mut PgConnection, actor: &Actor, e: &Entry) -> AppResult<()> {
    // seq, prev_hash and hash are filled by the triggers (pending, then linked at commit); the
    // placeholders satisfy NOT NULL.
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::seq.eq(0),
            audit_log::hash.eq(Vec::<u8>::new()),
            audit_log::actor_user_id.eq(actor.user_id),
            audit_log::actor_email.eq(actor.email.as_deref()),
            audit_log::ip.eq(actor.ip.as_deref()),
            audit_log::action.eq(&e.action),
            audit_log::entity_type.eq(&e.entity_type),
            audit_log::entity_id.eq(e.entity_id.as_deref()),
            audit_log::before.eq(e.before.as_ref()),
            audit_log::after.eq(e.after.as_ref()),
            audit_log::reason.eq(e.reason.as_deref()),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = audit_log, check_for_backend(diesel::pg::Pg))]
pub struct Row {
    pub id: i64,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_user_id: Option<i64>,
    pub actor_email: Option<String>,
    pub ip: Option<String>,
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub reason: Option<String>,
}

/// Filters of the audit page (all optional).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub actor: Option<i64>,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub action: Option<String>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

type Boxed<'a> = audit_log::BoxedQuery<'a, diesel::pg::Pg>;

fn filtered(f: &Filter) -> Boxed<'static> {
    let mut q = audit_log::table.into_boxed();
    if let Some(a) = f.actor {
        q = q.filter(audit_log::actor_user_id.eq(a));
    }
    if let Some(t) = &f.entity_type {
        q = q.filter(audit_log::entity_type.eq(t.clone()));
    }
    if let Some(id) = &f.entity_id {
        q = q.filter(audit_log::entity_id.eq(id.clone()));
    }
    if let Some(a) = &f.action {
        // A prefix selects a family ("member." matches every membership action).
        q = q.filter(audit_log::action.like(format!("{}%", a.replace(['%', '_'], ""))));
    }
    if let Some(d) = f.from.and_then(|d| d.and_hms_opt(0, 0, 0)) {
        q = q.filter(audit_log::at.ge(d.and_utc()));
    }
    if let Some(d) =
        f.to.and_then(|d| d.succ_opt())
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        q = q.filter(audit_log::at.lt(d.and_utc()));
    }
    q
}

/// A page of entries, newest first, and the total matching.
pub fn list(
    conn: &mut PgConnection,
    f: &Filter,
    limit: i64,
    offset: i64,
) -> AppResult<(Vec<Row>, i64)> {
    let total: i64 = filtered(f).count().get_result(conn)?;
    let rows = filtered(f)
        .select(Row::as_select())
        .order(audit_log::seq.desc())
        .limit(limit)
        .offset(offset)
        .load(conn)?;
    Ok((rows, total))
}

/// Every matching entry, oldest first (CSV export streams these).
pub fn all(conn: &mut PgConnection, f: &Filter) -> AppResult<Vec<Row>> {
    Ok(filtered(f)
        .select(Row::as_select())
        .order(audit_log::seq.asc())
        .load(conn)?)
}

pub fn distinct_entity_types(conn: &mut PgConnection) -> AppResult<Vec<String>> {
    Ok(audit_log::table
        .select(audit_log::entity_type)
        .distinct()
        .order(audit_log::entity_type)
        .load(conn)?)
}

#[derive(diesel::QueryableByName)]
struct Check {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Bool)]
    hash_ok: bool,
    #[diesel(sql_type = Bool)]
    link_ok: bool,
    #[diesel(sql_type = Bool)]
    seq_ok: bool,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Recomputes every row's hash with the same database function the insert trigger used and
/// checks each row links to its predecessor. Reports the first broken row.
pub fn verify(conn: &mut PgConnection) -> AppResult<Verification> {
    let rows: Count = diesel::sql_query("SELECT count(*) AS n FROM audit_log").get_result(conn)?;
    let bad: Option<Check> = diesel::sql_query(
        "SELECT id, seq, hash_ok, link_ok, seq_ok FROM ( \
            SELECT a.id, a.seq, \
                   a.hash = audit_digest(a.prev_hash, a) AS hash_ok, \
                   a.prev_hash IS NOT DISTINCT FROM lag(a.hash) OVER w AS link_ok, \
                   a.seq = coalesce(lag(a.seq) OVER w, 0) + 1 AS seq_ok \
            FROM audit_log a WINDOW w AS (ORDER BY a.seq)) c \
         WHERE NOT (hash_ok AND link_ok AND seq_ok) ORDER BY seq LIMIT 1",
    )
    .get_result(conn)
    .map(Some)
    .or_else(|e| {
        if e == diesel::result::Error::NotFound {
            Ok(None)
        } else {
            Err(e)
        }
    })?;
    Ok(match bad {
        None => Verification::Intact { rows: rows.n },
        Some(b) => Verification::Broken {
            rows: rows.n,
            first_bad_seq: b.seq,
            first_bad_id: b.id,
            reason: if !b.seq_ok {
                "a row is missing before this one (sequence gap)".into()
            } else if !b.hash_ok {
                "content does not match its hash (row was altered)".into()
            } else if !b.link_ok {
                "does not link to the previous row's hash".into()
            } else {
                "inconsistent row".into()
            },
        },
    })
}
