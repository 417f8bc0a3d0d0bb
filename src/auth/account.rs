//! A user's own security page: two-factor enrollment and removal, recovery codes, active
//! sessions with revoke, and password change. Every change is audited in all the user's
//! tenants.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{domain::NewPassword, password, repo, session, totp, CurrentUser, MaybeUserExt as _};
use crate::{
    audit::{self, Actor, Entry},
    auth::extract::MaybeUser,
    db,
    error::{AppError, AppResult},
    tenants::repo as tenants,
    web::{csrf, layout::Layout, render, AppState},
};

pub struct SessionView {
    pub id: i64,
    pub created: String,
    pub last_seen: String,
    pub ip: String,
    pub agent: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "auth/security_partial.html")]
pub struct SecurityPartial {
    pub csrf_token: String,
    pub required: bool,
    pub mfa_enabled: bool,
    pub recovery_left: i64,
    pub enrollment: Option<totp::Enrollment>,
    pub new_codes: Vec<String>,
    pub sessions: Vec<SessionView>,
    pub message: String,
    pub error: String,
}

#[derive(Debug, Deserialize)]
pub struct SecurityQuery {
    pub required: Option<String>,
}

fn actor(user: &CurrentUser, req: &HttpRequest) -> Actor {
    Actor {
        user_id: Some(user.id),
        email: Some(user.email.clone()),
        ip: audit::client_ip(req),
    }
}

struct Extra {
    enrollment: Option<totp::Enrollment>,
    new_codes: Vec<String>,
    message: String,
    error: String,
    required: bool,
}

async fn render_security(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    extra: Extra,
    status: actix_web::http::StatusCode,
) -> AppResult<HttpResponse> {
    let (uid, sid) = (user.id, user.session_id);
    let key = state.config.secret_key.clone();
    let email = user.email.clone();
    let want_pending = extra.enrollment.is_none() && extra.new_codes.is_empty();
    let (enabled, left, rows, pending, required) = db::run(&state.pool, move |c| {
        let enabled = totp::is_enabled(c, uid)?;
        let pending = if want_pending && !enabled {
            totp::pending_enrollment(c, &key, uid, &email)?
        } else {
            None
        };
        Ok((
            enabled,
            totp::remaining_recovery_codes(c, uid)?,
            session::list_for_user(c, uid)?,
            pending,
            tenants::requires_2fa(c, uid)?,
        ))
    })
    .await?;
    let partial = SecurityPartial {
        csrf_token: csrf::token(req),
        required: (extra.required || required) && !enabled,
        mfa_enabled: enabled,
        recovery_left: left,
        enrollment: extra.enrollment.or(pending),
        new_codes: extra.new_codes,
        sessions: rows
            .into_iter()
            .map(|s| SessionView {
                id: s.id,
                created: s.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                last_seen: s.last_seen_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                ip: s.ip.unwrap_or_default(),
                agent: s.user_agent.unwrap_or_default().chars().take(80).collect(),
                current: s.id == sid,
            })
            .collect(),
        message: extra.message,
        error: extra.error,
    };
    let layout = Layout::for_request(req, "Security").maybe_user(&MaybeUser(Some(user.clone())));
    render::page_with_status(req, status, layout, partial)
}

/// Re-renders the page with an error next to the forms (422).
async fn refuse(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    error: &str,
) -> AppResult<HttpResponse> {
    let e = Extra {
        error: error.into(),
        ..extra()
    };
    render_security(
        req,
        state,
        user,
        e,
        actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// Re-renders the page with a confirmation.
async fn confirm(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    message: &str,
) -> AppResult<HttpResponse> {
    let e = Extra {
        message: message.into(),
        ..extra()
    };
    render_security(req, state, user, e, actix_web::http::StatusCode::OK).await
}

fn extra() -> Extra {
    Extra {
        enrollment: None,
        new_codes: vec![],
        message: String::new(),
        error: String::new(),
        required: false,
    }
}

pub async fn page(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    q: web::Query<SecurityQuery>,
) -> AppResult<HttpResponse> {
    let e = Extra {
        required: q.required.is_some(),
        ..extra()
    };
    render_security(&req, &state, &user, e, actix_web::http::StatusCode::OK).await
}

pub async fn start_2fa(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
) -> AppResult<HttpResponse> {
    let key = state.config.secret_key.clone();
    let (uid, email) = (user.id, user.email.clone());
    let enrollment = db::run(&state.pool, move |c| {
        if totp::is_enabled(c, uid)? {
            return Err(AppError::Conflict(
                "Two-factor authentication is already on.".into(),
            ));
        }
        totp::start_enrollment(c, &key, uid, &email)
    })
    .await?;
    let e = Extra {
        enrollment: Some(enrollment),
        ..extra()
    };
    render_security(&req, &state, &user, e, actix_web::http::StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub password: String,
}

pub async fn confirm_2fa(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    form: web::Form<CodeForm>,
) -> AppResult<HttpResponse> {
    let key = state.config.secret_key.clone();
    let (uid, email, code) = (user.id, user.email.clone(), form.code.clone());
    let a = actor(&user, &req);
    let codes = db::run(&state.pool, move |c| {
        let codes = totp::confirm_enrollment(c, &key, uid, &email, &code)?;
        if codes.is_some() {
            audit::record_for_user(c, uid, &a, &Entry::new("user.2fa_enabled", "user", uid))?;
        }
        Ok(codes)
    })
    .await?;
    match codes {
        Some(new_codes) => {
            let e = Extra { new_codes, message: "Two-factor authentication is on. Store these recovery codes somewhere safe: they are shown only once.".into(), ..extra() };
            render_security(&req, &state, &user, e, actix_web::http::StatusCode::OK).await
        }
        None => {
            let e = Extra { error: "That code did not match. Check the time on your phone and try the current code.".into(), ..extra() };
            render_security(
                &req,
                &state,
                &user,
                e,
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// Checks the password and a current code (or recovery code) before a sensitive change.
async fn reauthenticate(state: &AppState, user: &CurrentUser, form: &CodeForm) -> AppResult<bool> {
    let uid = user.id;
    let row = db::run(&state.pool, move |c| repo::find_by_id(c, uid))
        .await?
        .ok_or(AppError::Unauthenticated)?;
    if !password::verify(form.password.clone(), Some(row.password_hash)).await? {
        return Ok(false);
    }
    if !row.mfa_enabled {
        return Ok(true);
    }
    let key = state.config.secret_key.clone();
    let (email, code) = (user.email.clone(), form.code.clone());
    db::run(&state.pool, move |c| {
        Ok(totp::verify_code(c, &key, uid, &email, &code)?
            || totp::use_recovery_code(c, &key, uid, &code)?)
    })
    .await
}

pub async fn disable_2fa(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    form: web::Form<CodeForm>,
) -> AppResult<HttpResponse> {
    if !reauthenticate(&state, &user, &form).await? {
        return refuse(
            &req,
            &state,
            &user,
            "Password or code is incorrect; two-factor authentication stays on.",
        )
        .await;
    }
    let uid = user.id;
    let a = actor(&user, &req);
    db::run(&state.pool, move |c| {
        totp::disable(c, uid)?;
        audit::record_for_user(c, uid, &a, &Entry::new("user.2fa_disabled", "user", uid))
    })
    .await?;
    confirm(&req, &state, &user, "Two-factor authentication is off.").await
}

pub async fn regenerate_codes(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    form: web::Form<CodeForm>,
) -> AppResult<HttpResponse> {
    if !reauthenticate(&state, &user, &form).await? || !user.mfa_enabled {
        return refuse(&req, &state, &user, "Password or code is incorrect.").await;
    }
    let key = state.config.secret_key.clone();
    let uid = user.id;
    let a = actor(&user, &req);
    let new_codes = db::run(&state.pool, move |c| {
        let codes = totp::replace_recovery_codes(c, &key, uid)?;
        audit::record_for_user(
            c,
            uid,
            &a,
            &Entry::new("user.recovery_codes_regenerated", "user", uid),
        )?;
        Ok(codes)
    })
    .await?;
    let e = Extra {
        new_codes,
        message: "New recovery codes; the old ones no longer work.".into(),
        ..extra()
    };
    render_security(&req, &state, &user, e, actix_web::http::StatusCode::OK).await
}

pub async fn revoke_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let (uid, sid) = (user.id, path.into_inner());
    let a = actor(&user, &req);
    let found = db::run(&state.pool, move |c| {
        let ok = session::revoke_own(c, uid, sid)?;
        if ok {
            audit::record_for_user(
                c,
                uid,
                &a,
                &Entry::new("user.session_revoked", "session", sid),
            )?;
        }
        Ok(ok)
    })
    .await?;
    if !found {
        return Err(AppError::NotFound);
    }
    Ok(render::see_other(&req, "/account/security"))
}

pub async fn revoke_other_sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
) -> AppResult<HttpResponse> {
    let (uid, keep) = (user.id, user.session_id);
    let a = actor(&user, &req);
    db::run(&state.pool, move |c| {
        let n = session::revoke_others(c, uid, keep)?;
        audit::record_for_user(
            c,
            uid,
            &a,
            &Entry::new("user.sessions_revoked", "user", uid)
                .after(serde_json::json!({ "count": n })),
        )
    })
    .await?;
    Ok(render::see_other(&req, "/account/security"))
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    pub current: String,
    #[serde(default)]
    pub new_password: String,
}

pub async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    form: web::Form<PasswordForm>,
) -> AppResult<HttpResponse> {
    let uid = user.id;
    let row = db::run(&state.pool, move |c| repo::find_by_id(c, uid))
        .await?
        .ok_or(AppError::Unauthenticated)?;
    let email = super::Email::parse(&row.email).ok();
    let fail = |msg: String| Extra {
        error: msg,
        ..extra()
    };
    if !password::verify(form.current.clone(), Some(row.password_hash)).await? {
        return render_security(
            &req,
            &state,
            &user,
            fail("Your current password is incorrect.".into()),
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let new = match NewPassword::parse(&form.new_password, email.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            return render_security(
                &req,
                &state,
                &user,
                fail(format!("New password: {e}")),
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    };
    let hash = password::hash(new.expose().to_owned()).await?;
    let keep = user.session_id;
    let a = actor(&user, &req);
    db::run(&state.pool, move |c| {
        repo::set_password(c, uid, &hash)?;
        session::revoke_others(c, uid, keep)?;
        audit::record_for_user(
            c,
            uid,
            &a,
            &Entry::new("user.password_changed", "user", uid),
        )
    })
    .await?;
    confirm(
        &req,
        &state,
        &user,
        "Password changed. Your other sessions were signed out.",
    )
    .await
}
