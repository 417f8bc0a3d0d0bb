//! `Idempotency-Key` for API POSTs.
//!
//! Rules: the request hash is SHA-256 of method, path (with query) and body. The first request
//! with a key runs its effect and stores the successful response in the same tenant
//! transaction, so the effect and the stored answer commit or roll back together. A repeat with
//! the same hash gets the stored status and body without running the effect again; with a
//! different hash it is 422. Failed requests (validation, 4xx) are not stored, so a corrected
//! retry may reuse the key. Requests with the same key are serialised by a transaction-level
//! advisory lock. Stored responses older than 24 hours are forgotten when the key comes back.

use actix_web::{http::StatusCode, HttpRequest, HttpResponse};
use diesel::{prelude::*, sql_types::Text};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::{ApiCtx, ApiError, ApiResult};
use crate::{db::schema::tenant::api_idempotency as idem, error::AppResult, web::AppState};

/// The outcome of a POST's effect: a status and JSON body, or an error not worth storing.
pub type Outcome = Result<(u16, Value), ApiError>;

/// SHA-256 (hex) of what makes two requests "the same".
pub fn request_hash(method: &str, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

/// The `Idempotency-Key` header, if any; over 255 characters is a 400.
fn key_of(req: &HttpRequest) -> ApiResult<Option<String>> {
    let Some(v) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let k = v
        .to_str()
        .map_err(|_| ApiError::BadRequest("Idempotency-Key must be ASCII.".into()))?
        .trim();
    if k.is_empty() || k.len() > 255 {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must be 1 to 255 characters.".into(),
        ));
    }
    Ok(Some(k.to_owned()))
}

/// Runs `effect` in the key's tenant transaction, honouring the request's Idempotency-Key.
pub async fn run<F>(
    req: &HttpRequest,
    ctx: &ApiCtx,
    state: &AppState,
    body: &[u8],
    effect: F,
) -> ApiResult<HttpResponse>
where
    F: FnOnce(&mut PgConnection) -> AppResult<Outcome> + Send + 'static,
{
    let key = key_of(req)?;
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.path().to_owned(), |p| p.as_str().to_owned());
    let hash = request_hash(req.method().as_str(), &path, body);
    let lock_name = format!(
        "api-idem:{}:{}",
        ctx.tenant.schema,
        key.clone().unwrap_or_default()
    );
    let expired_before = chrono::Utc::now() - chrono::Duration::hours(24);
    let outcome = ctx
        .db(state, move |c| {
            let Some(key) = key else {
                return effect(c);
            };
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1)::bigint)")
                .bind::<Text, _>(&lock_name)
                .execute(c)?;
            diesel::delete(
                idem::table
                    .filter(idem::key.eq(&key))
                    .filter(idem::created_at.lt(expired_before)),
            )
            .execute(c)?;
            let stored: Option<(String, i32, Value)> = idem::table
                .find(&key)
                .select((idem::request_hash, idem::status, idem::response_body))
                .first(c)
                .optional()?;
            if let Some((h, status, body)) = stored {
                return Ok(if h == hash {
                    Ok((u16::try_from(status).unwrap_or(200), body))
                } else {
                    Err(ApiError::IdempotencyMismatch)
                });
            }
            let out = effect(c)?;
            if let Ok((status, body)) = &out {
                diesel::insert_into(idem::table)
                    .values((
                        idem::key.eq(&key),
                        idem::request_hash.eq(&hash),
                        idem::status.eq(i32::from(*status)),
                        idem::response_body.eq(body),
                    ))
                    .execute(c)?;
            }
            Ok(out)
        })
        .await??;
    let (status, body) = outcome;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    Ok(HttpResponse::build(status).json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_method_path_and_body() {
        let a = request_hash("POST", "/api/v1/accounts", b"{}");
        assert_eq!(a, request_hash("POST", "/api/v1/accounts", b"{}"));
        assert_ne!(a, request_hash("POST", "/api/v1/accounts", b"{ }"));
        assert_ne!(a, request_hash("POST", "/api/v1/usage_records", b"{}"));
        assert_ne!(a, request_hash("PUT", "/api/v1/accounts", b"{}"));
    }
}
