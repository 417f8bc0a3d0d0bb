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
}

pub fn find_by_email(conn: &mut PgConnection, email: &Email) -> AppResult<Option<UserRow>> {
    Ok(users::table
        // Emails are stored normalized (trimmed, lower-case) by `Email::parse`.
        .filter(users::email.eq(email.as_str()))
        .select((
            users::id,
            users::email,
            users::name,
            users::password_hash,
            users::status,
        ))
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
