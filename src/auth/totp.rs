//! TOTP second factor: two-step enrollment, verification with replay protection, recovery
//! codes.
//!
//! Rules: the secret is generated server-side and kept encrypted as *pending* until the user
//! proves their authenticator works by entering a code; only then is 2FA enabled. A code is
//! accepted only for a time step later than the last accepted one (RFC 6238 §5.2), enforced by
//! a conditional UPDATE so two concurrent requests cannot both use one code. Ten recovery codes
//! are shown once at enrollment, stored as keyed digests and each usable once.

use base64::Engine as _;
use chrono::Utc;
use diesel::{ExpressionMethods, OptionalExtension, PgConnection, QueryDsl, RunQueryDsl};
use rand::Rng as _;
use totp_rs::{Builder, Secret, Totp};

use crate::{
    config::SecretKey,
    crypto,
    db::schema::control::{recovery_codes, users},
    error::{AppError, AppResult},
};

const ISSUER: &str = "Arbor";
const SEAL_PURPOSE: &str = "totp";
pub const RECOVERY_CODES: usize = 10;

fn totp_for(secret: &[u8], account: &str) -> AppResult<Totp> {
    Builder::new()
        .with_secret(secret.to_vec())
        .with_account_name(account)
        .with_issuer(Some(ISSUER))
        .build()
        .map_err(|e| AppError::internal(anyhow::anyhow!("building TOTP: {e:?}")))
}

/// What the enrollment page shows.
pub struct Enrollment {
    pub manual_key: String,
    pub qr_png_base64: String,
    pub otpauth_url: String,
}

/// Step 1: creates (or replaces) the pending secret and returns how to add it.
pub fn start_enrollment(
    conn: &mut PgConnection,
    key: &SecretKey,
    user_id: i64,
    email: &str,
) -> AppResult<Enrollment> {
    let secret = Secret::generate();
    let bytes = secret.as_bytes().to_vec();
    let sealed = crypto::seal(key, SEAL_PURPOSE, &bytes).map_err(AppError::Internal)?;
    diesel::update(users::table.find(user_id))
        .set(users::totp_pending_enc.eq(Some(sealed)))
        .execute(conn)?;
    enrollment_view(&bytes, email)
}

/// The pending enrollment again (page reload), if any.
pub fn pending_enrollment(
    conn: &mut PgConnection,
    key: &SecretKey,
    user_id: i64,
    email: &str,
) -> AppResult<Option<Enrollment>> {
    let pending: Option<Vec<u8>> = users::table
        .find(user_id)
        .select(users::totp_pending_enc)
        .first(conn)?;
    match pending {
        Some(sealed) => {
            let bytes = crypto::open(key, SEAL_PURPOSE, &sealed).map_err(AppError::Internal)?;
            Ok(Some(enrollment_view(&bytes, email)?))
        }
        None => Ok(None),
    }
}

fn enrollment_view(secret: &[u8], email: &str) -> AppResult<Enrollment> {
    let t = totp_for(secret, email)?;
    let png = t
        .to_qr_png()
        .map_err(|e| AppError::internal(anyhow::anyhow!("QR: {e:?}")))?;
    Ok(Enrollment {
        manual_key: t.secret().to_base32(),
        qr_png_base64: base64::engine::general_purpose::STANDARD.encode(png),
        otpauth_url: t.to_url().unwrap_or_default(),
    })
}

/// Step 2: confirms the pending secret with a code; returns fresh recovery codes.
pub fn confirm_enrollment(
    conn: &mut PgConnection,
    key: &SecretKey,
    user_id: i64,
    email: &str,
    code: &str,
) -> AppResult<Option<Vec<String>>> {
    let pending: Option<Vec<u8>> = users::table
        .find(user_id)
        .select(users::totp_pending_enc)
        .first(conn)?;
    let Some(sealed) = pending else {
        return Ok(None);
    };
    let secret = crypto::open(key, SEAL_PURPOSE, &sealed).map_err(AppError::Internal)?;
    let Some(step) = totp_for(&secret, email)?.check_current(code.trim()) else {
        return Ok(None);
    };
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    diesel::update(users::table.find(user_id))
        .set((
            users::totp_secret_enc.eq(Some(sealed)),
            users::totp_pending_enc.eq(None::<Vec<u8>>),
            users::totp_enabled_at.eq(Some(Utc::now())),
            users::totp_last_step.eq(Some(step)),
        ))
        .execute(conn)?;
    Ok(Some(replace_recovery_codes(conn, key, user_id)?))
}

/// Checks a code for a user with 2FA enabled, consuming its time step. False for a wrong,
/// stale or replayed code.
pub fn verify_code(
    conn: &mut PgConnection,
    key: &SecretKey,
    user_id: i64,
    email: &str,
    code: &str,
) -> AppResult<bool> {
    let sealed: Option<Vec<u8>> = users::table
        .find(user_id)
        .select(users::totp_secret_enc)
        .first(conn)?;
    let Some(sealed) = sealed else {
        return Ok(false);
    };
    let secret = crypto::open(key, SEAL_PURPOSE, &sealed).map_err(AppError::Internal)?;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(step) = totp_for(&secret, email)?.check_current(&code) else {
        return Ok(false);
    };
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    // Only one request can move the step forward; a replay finds nothing to update.
    let n = diesel::sql_query(
        "UPDATE control.users SET totp_last_step = $2 \
         WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
    )
    .bind::<diesel::sql_types::BigInt, _>(user_id)
    .bind::<diesel::sql_types::BigInt, _>(step)
    .execute(conn)?;
    Ok(n == 1)
}

fn normalize_recovery(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Generates ten new codes (`XXXXX-XXXXX`), replacing any old ones.
pub fn replace_recovery_codes(
    conn: &mut PgConnection,
    key: &SecretKey,
    user_id: i64,
) -> AppResult<Vec<String>> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let raw: String = (0..10)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            format!("{}-{}", &raw[..5], &raw[5..])
        })
        .collect();
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
        .execute(conn)?;
    for c in &codes {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::user_id.eq(user_id),
                recovery_codes::code_hash.eq(crypto::digest(
                    key,
                    "recovery",
                    &normalize_recovery(c),
                )),
            ))
            .execute(conn)?;
    }
    Ok(codes)
}

/// Uses a recovery code once.
pub fn use_recovery_code(
    conn: &mut PgConnection,
    key: &SecretKey,
    user_id: i64,
    code: &str,
) -> AppResult<bool> {
    let h = crypto::digest(key, "recovery", &normalize_recovery(code));
    let used: Option<i64> = diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::code_hash.eq(h))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(Some(Utc::now())))
    .returning(recovery_codes::id)
    .get_result(conn)
    .optional()?;
    Ok(used.is_some())
}

pub fn remaining_recovery_codes(conn: &mut PgConnection, user_id: i64) -> AppResult<i64> {
    Ok(recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)?)
}

pub fn disable(conn: &mut PgConnection, user_id: i64) -> AppResult<()> {
    diesel::update(users::table.find(user_id))
        .set((
            users::totp_secret_enc.eq(None::<Vec<u8>>),
            users::totp_pending_enc.eq(None::<Vec<u8>>),
            users::totp_enabled_at.eq(None::<chrono::DateTime<Utc>>),
        ))
        .execute(conn)?;
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
        .execute(conn)?;
    Ok(())
}

pub fn is_enabled(conn: &mut PgConnection, user_id: i64) -> AppResult<bool> {
    let at: Option<chrono::DateTime<Utc>> = users::table
        .find(user_id)
        .select(users::totp_enabled_at)
        .first(conn)?;
    Ok(at.is_some())
}

/// The current code for a base32 secret (tests and the CLI use this, as an authenticator app would).
pub fn current_code(base32_secret: &str) -> Option<String> {
    let secret = Secret::try_from_base32(base32_secret).ok()?;
    let t = totp_for(secret.as_bytes(), "x").ok()?;
    Some(t.generate_current().to_string())
}

/// The code of the step after the current one (tests use it to get a fresh, unreplayed code).
pub fn code_at(base32_secret: &str, unix: u64) -> Option<String> {
    let secret = Secret::try_from_base32(base32_secret).ok()?;
    let t = totp_for(secret.as_bytes(), "x").ok()?;
    Some(t.generate(unix).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_normalize() {
        assert_eq!(normalize_recovery(" abcde-fghjk "), "ABCDEFGHJK");
    }

    #[test]
    fn generated_codes_verify() {
        let s = Secret::generate();
        let b32 = s.to_base32();
        let code = current_code(&b32).unwrap();
        assert_eq!(code.len(), 6);
        let t = totp_for(s.as_bytes(), "a@b.example").unwrap();
        assert!(t.check_current(&code).is_some());
    }
}
