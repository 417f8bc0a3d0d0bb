//! The second sign-in step: a TOTP code or a recovery code for a session that passed the
//! password. Failures count towards the same lockout as wrong passwords.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{
    handlers::{safe_next, signed_in, NextQuery},
    repo, session, totp,
};
use crate::{
    audit::{self, Actor, Entry},
    db,
    error::{AppError, AppResult},
    web::{csrf, csrf::SESSION_COOKIE, layout::Layout, render, AppState},
};

#[derive(Template)]
#[template(path = "auth/mfa_partial.html")]
pub struct MfaPartial {
    pub csrf_token: String,
    pub next: String,
    pub error: String,
}

#[derive(Debug, Deserialize)]
pub struct MfaForm {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub next: String,
}

async fn pending(req: &HttpRequest, state: &AppState) -> AppResult<(i64, i64, String)> {
    let token = req
        .cookie(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .ok_or(AppError::Unauthenticated)?;
    db::run(&state.pool, move |c| session::lookup_pending(c, &token))
        .await?
        .ok_or(AppError::Unauthenticated)
}

pub async fn form(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<NextQuery>,
) -> AppResult<HttpResponse> {
    pending(&req, &state).await?;
    let next = q
        .next
        .as_deref()
        .and_then(safe_next)
        .unwrap_or("")
        .to_owned();
    let partial = MfaPartial {
        csrf_token: csrf::token(&req),
        next,
        error: String::new(),
    };
    render::page(&req, Layout::for_request(&req, "Two-factor code"), partial)
}

pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<MfaForm>,
) -> AppResult<HttpResponse> {
    let (pending_sid, user_id, email) = pending(&req, &state).await?;
    let form = form.into_inner();
    let key = state.config.secret_key.clone();
    let code = form.code.clone();
    let actor = Actor {
        user_id: Some(user_id),
        email: Some(email.clone()),
        ip: audit::client_ip(&req),
    };
    let ua = req
        .headers()
        .get("User-Agent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let outcome = db::run(&state.pool, move |c| {
        let digits_only = code
            .trim()
            .chars()
            .all(|ch| ch.is_ascii_digit() || ch == ' ');
        let (ok, method) = if digits_only {
            (totp::verify_code(c, &key, user_id, &email, &code)?, "totp")
        } else {
            (
                totp::use_recovery_code(c, &key, user_id, &code)?,
                "recovery_code",
            )
        };
        if ok {
            repo::clear_failures(c, user_id)?;
            session::revoke(c, pending_sid)?;
            let token = session::create(c, user_id, actor.ip.as_deref(), ua.as_deref(), false)?;
            audit::record_for_user(
                c,
                user_id,
                &actor,
                &Entry::new("auth.sign_in", "user", user_id)
                    .after(serde_json::json!({ "second_factor": method })),
            )?;
            Ok(Ok(token))
        } else {
            let locked = repo::register_failure(c, user_id)?;
            audit::record_for_user(
                c,
                user_id,
                &actor,
                &Entry::new("auth.second_factor_failed", "user", user_id),
            )?;
            if locked {
                session::revoke(c, pending_sid)?;
                audit::record_for_user(
                    c,
                    user_id,
                    &actor,
                    &Entry::new("auth.locked", "user", user_id),
                )?;
            }
            Ok(Err(locked))
        }
    })
    .await?;
    match outcome {
        Ok(token) => {
            let next = safe_next(&form.next).unwrap_or("/").to_owned();
            Ok(signed_in(&req, &state, token, &next))
        }
        Err(true) => Ok(render::see_other(&req, "/login")),
        Err(false) => {
            let partial = MfaPartial {
                csrf_token: csrf::token(&req),
                next: form.next,
                error: "That code is not valid. Codes can be used once; wait for the next one."
                    .into(),
            };
            render::page_with_status(
                &req,
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                Layout::for_request(&req, "Two-factor code"),
                partial,
            )
        }
    }
}
