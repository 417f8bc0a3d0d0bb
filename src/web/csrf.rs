//! CSRF protection for every state-changing request, in one middleware so no route can forget.
//!
//! The token is a synchronizer token derived, not stored: HMAC(secret, seed), where the seed is
//! the session cookie once signed in, or a random pre-session cookie before. Signing in
//! changes the seed, so tokens rotate with the session. The token travels in the `csrf_token`
//! form field, the `X-CSRF-Token` header (htmx sends it from `hx-headers` on `<body>`), or the
//! query string for multipart uploads; it is compared in constant time. An `Origin` header, if
//! present, must be this site. Machine endpoints authenticated by signatures or API keys
//! (`/api/`, `/hooks/`) are exempt.

use actix_web::{
    body::MessageBody,
    cookie::{Cookie, SameSite},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{header, Method},
    middleware::Next,
    web::{Bytes, BytesMut},
    Error, HttpMessage,
};
use base64::Engine as _;
use futures_util::StreamExt as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use super::AppState;
use crate::{config::SecretKey, error::AppError};

pub const SESSION_COOKIE: &str = "arbor_session";
pub const PRESESSION_COOKIE: &str = "arbor_csrf";
pub const FORM_FIELD: &str = "csrf_token";
pub const HEADER: &str = "X-CSRF-Token";
/// Largest urlencoded form accepted: what the middleware buffers and what `FormConfig` reads
/// (one number, so every oversized form gets the same 413). A CRM sample payload pasted into
/// the mapping page is the largest legitimate form, up to the 1 MB a webhook may carry.
pub const FORM_LIMIT: usize = 1024 * 1024;

/// The CSRF token for the current request, placed in request extensions for templates.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

/// The current request's token, for forms rendered in partials.
pub fn token(req: &actix_web::HttpRequest) -> String {
    req.extensions()
        .get::<CsrfToken>()
        .map(|t| t.0.clone())
        .unwrap_or_default()
}

/// 32 random bytes, URL-safe base64; used for session and pre-session cookies.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn token_for(key: &SecretKey, seed: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key.derive("csrf")) else {
        return String::new();
    };
    mac.update(seed.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn is_exempt(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/hooks/")
}

fn origin_ok(req: &ServiceRequest, base_url: &str) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if origin == base_url.trim_end_matches('/') {
        return true;
    }
    let info = req.connection_info();
    origin == format!("{}://{}", info.scheme(), info.host())
}

async fn form_field(req: &mut ServiceRequest) -> Result<Option<String>, AppError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok(None);
    }
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::internal(anyhow::anyhow!("reading body: {e}")))?;
        if body.len() + chunk.len() > FORM_LIMIT {
            return Err(super::body::too_large(FORM_LIMIT));
        }
        body.extend_from_slice(&chunk);
    }
    let bytes: Bytes = body.freeze();
    let found = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|fields| fields.into_iter().find(|(k, _)| k == FORM_FIELD))
        .map(|(_, v)| v);
    req.set_payload(Payload::from(bytes));
    Ok(found)
}

fn query_field(req: &ServiceRequest) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
        .ok()?
        .into_iter()
        .find(|(k, _)| k == FORM_FIELD)
        .map(|(_, v)| v)
}

pub async fn csrf_middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(state) = req.app_data::<actix_web::web::Data<AppState>>().cloned() else {
        return Err(AppError::internal(anyhow::anyhow!("AppState missing")).into());
    };
    let existing = req
        .cookie(SESSION_COOKIE)
        .or_else(|| req.cookie(PRESESSION_COOKIE))
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty());
    let (seed, fresh) = match existing {
        Some(s) => (s, false),
        None => (random_token(), true),
    };
    let expected = token_for(&state.config.secret_key, &seed);
    req.extensions_mut().insert(CsrfToken(expected.clone()));

    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method && !is_exempt(req.path()) {
        if !origin_ok(&req, &state.config.base_url) {
            tracing::warn!("cross-origin state-changing request rejected");
            return Err(AppError::Csrf.into());
        }
        let provided = match req.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
            Some(h) => Some(h.to_owned()),
            None => match form_field(&mut req).await? {
                Some(f) => Some(f),
                None => query_field(&req),
            },
        };
        let valid =
            !fresh && provided.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())));
        if !valid {
            tracing::warn!("missing or invalid CSRF token");
            return Err(AppError::Csrf.into());
        }
    }

    let mut res = next.call(req).await?;
    if fresh {
        let cookie = Cookie::build(PRESESSION_COOKIE, seed)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(state.config.secure_cookies())
            .finish();
        let _ = res.response_mut().add_cookie(&cookie);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_depends_on_seed_and_key() {
        let k = SecretKey::development();
        let other = SecretKey::parse(&"ab".repeat(32)).unwrap();
        assert_eq!(token_for(&k, "s1"), token_for(&k, "s1"));
        assert_ne!(token_for(&k, "s1"), token_for(&k, "s2"));
        assert_ne!(token_for(&k, "s1"), token_for(&other, "s1"));
    }

    #[test]
    fn machine_endpoints_are_exempt() {
        assert!(is_exempt("/api/v1/accounts"));
        assert!(is_exempt("/hooks/hubspot/x"));
        assert!(!is_exempt("/t/acme/accounts"));
        assert!(!is_exempt("/login"));
    }
}
