//! Request extractors for the signed-in user.

use actix_web::{web::Data, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::session;
use crate::{
    db,
    error::AppError,
    web::{csrf::SESSION_COOKIE, telemetry, AppState},
};

/// The signed-in user; routes taking it redirect anonymous visitors to /login.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub session_id: i64,
    pub mfa_enabled: bool,
}

/// The signed-in user if any. Unlike `Option<CurrentUser>`, a database outage is still a 503.
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<CurrentUser>);

/// The session cookie's token, if the request carries a non-empty one.
pub(crate) fn session_token(req: &HttpRequest) -> Option<String> {
    req.cookie(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|t| !t.is_empty())
}

/// Keeps the resolved user on the request, so later extractors do not look it up again.
pub(crate) fn remember(req: &HttpRequest, user: &CurrentUser) {
    telemetry::record(req, "user_id", &user.id.to_string());
    req.extensions_mut().insert(user.clone());
}

async fn load(req: HttpRequest) -> Result<Option<CurrentUser>, AppError> {
    if let Some(u) = req.extensions().get::<CurrentUser>() {
        return Ok(Some(u.clone()));
    }
    let Some(token) = session_token(&req) else {
        return Ok(None);
    };
    let state = req
        .app_data::<Data<AppState>>()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("AppState missing")))?
        .clone();
    let user = db::run(&state.pool, move |c| session::lookup(c, &token)).await?;
    if let Some(u) = &user {
        remember(&req, u);
    }
    Ok(user)
}

impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { load(req).await?.ok_or(AppError::Unauthenticated) })
    }
}

impl FromRequest for MaybeUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { load(req).await.map(MaybeUser) })
    }
}
