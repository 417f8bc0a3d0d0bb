//! The JSON API under `/api/v1`, authenticated with per-tenant API keys.
//!
//! Rules:
//! - A token is `arb_<tenant slug>_<prefix>_<secret>`. The slug in the token names the tenant,
//!   so the tenant is found with one control lookup and the key is then checked inside the
//!   tenant's own schema (`api_keys`), with no cross-tenant table and no control migration.
//!   Only a keyed digest of the whole token is stored; the prefix is public.
//! - A missing, malformed, unknown or revoked key is 401; a read key on a write is 403; another
//!   tenant's ids are 404 (a key can only ever see its own schema).
//! - Errors are JSON `{ "error": { "type": ..., "message": ..., "fields"?: {...} } }`; money is a
//!   string, dates ISO 8601, field names snake_case.
//! - POSTs honour `Idempotency-Key` (see `idempotency`): same key and body → the stored response;
//!   same key, different body → 422. Stored responses expire after 24 hours.
//! - Lists page by id: `?limit=` (1–100, default 20) and `?starting_after=<id>`, answering
//!   `{ "data": [...], "has_more": bool }`.

pub mod accounts;
pub mod auth;
pub mod billing;
pub mod idempotency;
pub mod keys;
pub mod openapi;
pub mod usage;
pub mod writes;

use std::fmt;

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{AppError, FieldErrors};

pub use auth::ApiCtx;

/// Largest JSON body a POST may carry; an object with a few hundred fields fits many times.
pub const MAX_BODY: usize = 256 * 1024;

/// An API failure, rendered as a JSON error body.
pub enum ApiError {
    Unauthorized,
    Forbidden(&'static str),
    NotFound,
    BadRequest(String),
    Validation(FieldErrors),
    IdempotencyMismatch,
    App(AppError),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::App(e) => write!(f, "{e:?}"),
            other => f.write_str(other.kind()),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

impl ApiError {
    fn kind(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound => "not_found",
            Self::BadRequest(_) => "bad_request",
            Self::Validation(_) => "validation",
            Self::IdempotencyMismatch => "idempotency_mismatch",
            Self::App(AppError::Validation(_)) => "validation",
            Self::App(AppError::Conflict(_)) => "conflict",
            Self::App(AppError::NotFound) => "not_found",
            Self::App(AppError::PayloadTooLarge(_)) => "payload_too_large",
            Self::App(AppError::Unavailable(_)) => "unavailable",
            Self::App(_) => "internal",
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Unauthorized => "Missing, invalid or revoked API key.".into(),
            Self::Forbidden(why) => (*why).into(),
            Self::NotFound => "No such object.".into(),
            Self::BadRequest(m) => m.clone(),
            Self::Validation(_) | Self::App(AppError::Validation(_)) => {
                "The request has invalid fields.".into()
            }
            Self::IdempotencyMismatch => {
                "This Idempotency-Key was already used with a different request.".into()
            }
            Self::App(AppError::Conflict(m)) => m.clone(),
            Self::App(AppError::NotFound) => "No such object.".into(),
            Self::App(AppError::PayloadTooLarge(m)) => m.clone(),
            Self::App(AppError::Unavailable(_)) => "Service temporarily unavailable.".into(),
            Self::App(_) => "Unexpected error.".into(),
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound => Self::NotFound,
            AppError::Validation(f) => Self::Validation(f),
            other => Self::App(other),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        Self::App(e.into())
    }
}

/// The JSON body of an error (also what the idempotency store keeps for nothing: only successes
/// are stored, so a corrected retry under the same key is possible).
pub fn error_body(kind: &str, message: &str, fields: Option<&FieldErrors>) -> Value {
    let mut err = Map::new();
    err.insert("type".into(), json!(kind));
    err.insert("message".into(), json!(message));
    if let Some(f) = fields {
        let m: Map<String, Value> = f.0.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        err.insert("fields".into(), Value::Object(m));
    }
    json!({ "error": err })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound | Self::App(AppError::NotFound) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_)
            | Self::IdempotencyMismatch
            | Self::App(AppError::Validation(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::App(AppError::Conflict(_)) => StatusCode::CONFLICT,
            Self::App(AppError::PayloadTooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::App(AppError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::App(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            // The client's mistake, answered in full; nothing for an operator to look at.
            Self::App(AppError::PayloadTooLarge(_)) => {}
            Self::App(e) => tracing::error!(error = ?e, "api request failed"),
            _ => {}
        }
        let fields = match self {
            Self::Validation(f) | Self::App(AppError::Validation(f)) => Some(f),
            _ => None,
        };
        let mut b = HttpResponse::build(self.status_code());
        if matches!(self, Self::Unauthorized) {
            b.insert_header(("WWW-Authenticate", "Bearer"));
        }
        b.json(error_body(self.kind(), &self.message(), fields))
    }
}

/// `?limit=&starting_after=` of every list.
#[derive(Debug, Deserialize)]
pub struct Page {
    pub limit: Option<i64>,
    pub starting_after: Option<i64>,
}

impl Page {
    /// The page size, clamped to 1–100 (default 20).
    pub fn limit(&self) -> i64 {
        self.limit.unwrap_or(20).clamp(1, 100)
    }
}

/// Wraps one page of rows: `rows` was fetched with `limit + 1` to learn whether more follow.
pub fn list_body(mut rows: Vec<Value>, limit: i64) -> Value {
    let has_more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    json!({ "object": "list", "data": rows, "has_more": has_more })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_clamped() {
        let p = |l| Page {
            limit: l,
            starting_after: None,
        };
        assert_eq!(p(None).limit(), 20);
        assert_eq!(p(Some(0)).limit(), 1);
        assert_eq!(p(Some(1000)).limit(), 100);
    }

    #[test]
    fn list_body_reports_more() {
        let rows = vec![json!(1), json!(2), json!(3)];
        let b = list_body(rows, 2);
        assert_eq!(b["data"].as_array().map(Vec::len), Some(2));
        assert_eq!(b["has_more"], json!(true));
    }
}
