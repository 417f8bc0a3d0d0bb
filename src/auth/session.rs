//! Server-side sessions in `control.sessions`.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use chrono::{Duration, Utc};
use diesel::{
    sql_types::{BigInt, Bytea, Text},
    ExpressionMethods, OptionalExtension, PgConnection, QueryDsl, RunQueryDsl,
};
use sha2::{Digest, Sha256};

use super::extract::CurrentUser;
use crate::{
    db::schema::control::sessions,
    error::AppResult,
    web::csrf::{random_token, SESSION_COOKIE},
};

/// Sliding idle timeout and absolute lifetime of a session.
pub const IDLE: Duration = Duration::hours(12);
pub const ABSOLUTE_DAYS: i64 = 7;

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a session and returns the raw token for the cookie (only its hash is stored).
/// A session with `mfa_pending` only grants access to the second-factor step and expires
/// after ten minutes.
pub fn create(
    conn: &mut PgConnection,
    user_id: i64,
    ip: Option<&str>,
    user_agent: Option<&str>,
    mfa_pending: bool,
) -> AppResult<String> {
    let token = random_token();
    let ttl = if mfa_pending {
        Duration::minutes(10)
    } else {
        IDLE
    };
    diesel::insert_into(sessions::table)
        .values((
            sessions::token_hash.eq(digest(&token)),
            sessions::user_id.eq(user_id),
            sessions::mfa_pending.eq(mfa_pending),
            sessions::expires_at.eq(Utc::now() + ttl),
            sessions::ip.eq(ip),
            sessions::user_agent.eq(user_agent.map(|u| u.chars().take(300).collect::<String>())),
        ))
        .execute(conn)?;
    Ok(token)
}

#[derive(diesel::QueryableByName)]
struct Found {
    #[diesel(sql_type = BigInt)]
    session_id: i64,
    #[diesel(sql_type = BigInt)]
    user_id: i64,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    mfa_enabled: bool,
}

/// Resolves a cookie token to its user if the session is live, sliding its expiry forward.
pub fn lookup(conn: &mut PgConnection, token: &str) -> AppResult<Option<CurrentUser>> {
    // One statement: validate, touch (at most once a minute) and return the user.
    let found: Option<Found> = diesel::sql_query(
        "WITH s AS ( \
            SELECT s.id, s.user_id FROM control.sessions s \
            JOIN control.users u ON u.id = s.user_id \
            WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now() \
              AND u.status = 'active' AND NOT s.mfa_pending \
         ), touched AS ( \
            UPDATE control.sessions t SET last_seen_at = now(), \
                   expires_at = LEAST(t.created_at + make_interval(days => $2::int), now() + make_interval(hours => $3::int)) \
            FROM s WHERE t.id = s.id AND t.last_seen_at < now() - interval '1 minute' \
         ) \
         SELECT s.id AS session_id, u.id AS user_id, u.email, u.name, \
                u.totp_enabled_at IS NOT NULL AS mfa_enabled \
         FROM s JOIN control.users u ON u.id = s.user_id",
    )
    .bind::<Bytea, _>(digest(token))
    .bind::<diesel::sql_types::Integer, _>(ABSOLUTE_DAYS as i32)
    .bind::<diesel::sql_types::Integer, _>(IDLE.num_hours() as i32)
    .get_result(conn)
    .optional()?;
    Ok(found.map(|f| CurrentUser {
        id: f.user_id,
        email: f.email,
        name: f.name,
        session_id: f.session_id,
        mfa_enabled: f.mfa_enabled,
    }))
}

/// A session waiting for its second factor: `(session_id, user_id, email)`.
pub fn lookup_pending(
    conn: &mut PgConnection,
    token: &str,
) -> AppResult<Option<(i64, i64, String)>> {
    use crate::db::schema::control::users;
    Ok(sessions::table
        .inner_join(users::table)
        .filter(sessions::token_hash.eq(digest(token)))
        .filter(sessions::mfa_pending.eq(true))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(Utc::now()))
        .filter(users::status.eq("active"))
        .select((sessions::id, users::id, users::email))
        .first(conn)
        .optional()?)
}

#[derive(Debug, Clone, diesel::Queryable)]
pub struct SessionRow {
    pub id: i64,
    pub created_at: chrono::DateTime<Utc>,
    pub last_seen_at: chrono::DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The user's live sessions, most recently used first.
pub fn list_for_user(conn: &mut PgConnection, user_id: i64) -> AppResult<Vec<SessionRow>> {
    Ok(sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::mfa_pending.eq(false))
        .filter(sessions::expires_at.gt(Utc::now()))
        .select((
            sessions::id,
            sessions::created_at,
            sessions::last_seen_at,
            sessions::ip,
            sessions::user_agent,
        ))
        .order(sessions::last_seen_at.desc())
        .load(conn)?)
}

/// Revokes one of the user's own sessions; false when it is not theirs.
pub fn revoke_own(conn: &mut PgConnection, user_id: i64, session_id: i64) -> AppResult<bool> {
    let n = diesel::update(
        sessions::table
            .filter(sessions::id.eq(session_id))
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(Some(Utc::now())))
    .execute(conn)?;
    Ok(n == 1)
}

/// Revokes all of a user's sessions but `keep`.
pub fn revoke_others(conn: &mut PgConnection, user_id: i64, keep: i64) -> AppResult<usize> {
    Ok(diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::id.ne(keep))
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(Some(Utc::now())))
    .execute(conn)?)
}

pub fn revoke(conn: &mut PgConnection, session_id: i64) -> AppResult<()> {
    diesel::update(sessions::table.filter(sessions::id.eq(session_id)))
        .set(sessions::revoked_at.eq(Some(Utc::now())))
        .execute(conn)?;
    Ok(())
}

/// Revokes every live session of a user (deactivation, password change).
pub fn revoke_all_for_user(conn: &mut PgConnection, user_id: i64) -> AppResult<usize> {
    Ok(diesel::sql_query(
        "UPDATE control.sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind::<BigInt, _>(user_id)
    .execute(conn)?)
}

pub fn cookie(token: String, secure: bool) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(CookieDuration::days(ABSOLUTE_DAYS))
        .finish()
}

pub fn removal_cookie(secure: bool) -> Cookie<'static> {
    let mut c = Cookie::build(SESSION_COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .finish();
    c.make_removal();
    c
}

pub fn is_revoked(conn: &mut PgConnection, session_id: i64) -> AppResult<bool> {
    let revoked: Option<Option<chrono::DateTime<Utc>>> = sessions::table
        .filter(sessions::id.eq(session_id))
        .select(sessions::revoked_at)
        .first(conn)
        .optional()?;
    Ok(!matches!(revoked, Some(None)))
}
