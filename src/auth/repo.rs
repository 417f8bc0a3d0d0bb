//! User queries (control schema).

use diesel::{
    result::{DatabaseErrorKind, Error as DieselError},
    ExpressionMethods, OptionalExtension, PgConnection, QueryDsl, RunQueryDsl,
};

use super::domain::Email;
use crate::{
    db::schema::control::users,
    error::{AppError, AppResult, FieldErrors},
};

#[derive(Debug, Clone, diesel::Queryable)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub status: String,
    pub locked_until: Option<chrono::DateTime<chrono::Utc>>,
    pub mfa_enabled: bool,
}

impl UserRow {
    pub fn is_locked(&self) -> bool {
        self.locked_until.is_some_and(|t| t > chrono::Utc::now())
    }
}

type UserColumns = (
    users::id,
    users::email,
    users::name,
    users::password_hash,
    users::status,
    users::locked_until,
    diesel::dsl::IsNotNull<users::totp_enabled_at>,
);

fn user_columns() -> UserColumns {
    (
        users::id,
        users::email,
        users::name,
        users::password_hash,
        users::status,
        users::locked_until,
        users::totp_enabled_at.is_not_null(),
    )
}

/// Consecutive failures that lock an account, and for how long.
pub const LOCK_AFTER: i32 = 5;
pub const LOCK_MINUTES: i32 = 15;

pub fn find_by_email(conn: &mut PgConnection, email: &Email) -> AppResult<Option<UserRow>> {
    Ok(users::table
        // Emails are stored normalized (trimmed, lower-case) by `Email::parse`.
        .filter(users::email.eq(email.as_str()))
        .select(user_columns())
        .first(conn)
        .optional()?)
}

/// Inserts a user; a taken email becomes a field error, not a 500.
pub fn insert(
    conn: &mut PgConnection,
    email: &Email,
    name: &str,
    password_hash: &str,
) -> AppResult<i64> {
    let result = diesel::insert_into(users::table)
        .values((
            users::email.eq(email.as_str()),
            users::name.eq(name),
            users::password_hash.eq(password_hash),
        ))
        .returning(users::id)
        .get_result(conn);
    match result {
        Ok(id) => Ok(id),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            let mut errors = FieldErrors::default();
            errors.add(
                "email",
                "An account with this email already exists. Sign in instead.",
            );
            Err(AppError::Validation(errors))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn find_by_id(conn: &mut PgConnection, id: i64) -> AppResult<Option<UserRow>> {
    Ok(users::table
        .find(id)
        .select(user_columns())
        .first(conn)
        .optional()?)
}

/// Counts a failed sign-in; returns true when this failure locked the account.
pub fn register_failure(conn: &mut PgConnection, user_id: i64) -> AppResult<bool> {
    #[derive(diesel::QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        locked: bool,
    }
    let r: Locked = diesel::sql_query(
        "UPDATE control.users SET \
            failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END, \
            locked_until = CASE WHEN failed_logins + 1 >= $2 \
                           THEN now() + make_interval(mins => $3) ELSE locked_until END \
         WHERE id = $1 RETURNING (locked_until > now()) IS TRUE AS locked",
    )
    .bind::<diesel::sql_types::BigInt, _>(user_id)
    .bind::<diesel::sql_types::Integer, _>(LOCK_AFTER)
    .bind::<diesel::sql_types::Integer, _>(LOCK_MINUTES)
    .get_result(conn)?;
    Ok(r.locked)
}

pub fn clear_failures(conn: &mut PgConnection, user_id: i64) -> AppResult<()> {
    diesel::update(users::table.find(user_id))
        .set((
            users::failed_logins.eq(0),
            users::locked_until.eq(None::<chrono::DateTime<chrono::Utc>>),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn set_password(conn: &mut PgConnection, user_id: i64, hash: &str) -> AppResult<()> {
    diesel::update(users::table.find(user_id))
        .set((
            users::password_hash.eq(hash),
            users::updated_at.eq(chrono::Utc::now()),
        ))
        .execute(conn)?;
    Ok(())
}
