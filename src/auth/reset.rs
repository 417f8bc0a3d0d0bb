//! Password reset by email. The answer to "forgot password" is the same whether or not the
//! email exists. The link carries a random token stored only as a keyed digest, expires after
//! an hour, works once, and using it signs out every session and clears any lockout.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{Duration, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, RunQueryDsl};
use serde::Deserialize;
use serde_json::json;

use super::{domain::NewPassword, password, repo, session, Email};
use crate::{
    audit::{self, Actor, Entry},
    crypto,
    db::{self, schema::control::password_resets},
    email::message::OutgoingEmail,
    error::{AppError, AppResult},
    jobs::{kinds, queue},
    web::{csrf, csrf::random_token, layout::Layout, render, AppState},
};

const PURPOSE: &str = "password-reset";

#[derive(Template)]
#[template(path = "auth/forgot_partial.html")]
pub struct ForgotPartial {
    pub csrf_token: String,
    pub sent: bool,
}

#[derive(Template)]
#[template(path = "auth/reset_partial.html")]
pub struct ResetPartial {
    pub csrf_token: String,
    pub token: String,
    pub valid: bool,
    pub error: String,
}

#[derive(Debug, Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    pub email: String,
}

pub async fn forgot_form(req: HttpRequest) -> AppResult<HttpResponse> {
    render::page(
        &req,
        Layout::for_request(&req, "Reset your password"),
        ForgotPartial {
            csrf_token: csrf::token(&req),
            sent: false,
        },
    )
}

pub async fn forgot(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<ForgotForm>,
) -> AppResult<HttpResponse> {
    if let Ok(email) = Email::parse(&form.email) {
        let key = state.config.secret_key.clone();
        let base = state.config.base_url.clone();
        db::run(&state.pool, move |c| {
            let Some(user) = repo::find_by_email(c, &email)?.filter(|u| u.status == "active") else {
                return Ok(());
            };
            let token = random_token();
            diesel::insert_into(password_resets::table)
                .values((
                    password_resets::user_id.eq(user.id),
                    password_resets::token_hash.eq(crypto::digest(&key, PURPOSE, &token)),
                    password_resets::expires_at.eq(Utc::now() + Duration::hours(1)),
                ))
                .execute(c)?;
            let mail = OutgoingEmail {
                to: vec![user.email.clone()],
                cc: vec![],
                subject: "Reset your Arbor password".into(),
                text: format!(
                    "Hello {},\n\nSomeone (hopefully you) asked to reset your Arbor password.\n\
                     Open this link within an hour to choose a new one:\n\n{base}/password/reset/{token}\n\n\
                     If you did not ask for this, ignore this email; your password stays the same.\n",
                    user.name
                ),
                html: None,
                attachments: vec![],
                reply_to: None,
                sensitive: true,
 attach_invoice_pdf: None,
 attach_invoice_pdfs: Vec::new(),
 attach_statement: None,
            };
            let mut job = queue::NewJob::new(kinds::SYSTEM_EMAIL, None, json!({ "email": mail }));
            job.max_attempts = 10;
            queue::enqueue(c, &job)?;
            Ok(())
        })
        .await?;
        state.wakeup.notify();
    }
    render::page(
        &req,
        Layout::for_request(&req, "Reset your password"),
        ForgotPartial {
            csrf_token: csrf::token(&req),
            sent: true,
        },
    )
}

fn find(
    c: &mut diesel::PgConnection,
    key: &crate::config::SecretKey,
    token: &str,
) -> AppResult<Option<(i64, i64)>> {
    Ok(password_resets::table
        .filter(password_resets::token_hash.eq(crypto::digest(key, PURPOSE, token)))
        .filter(password_resets::used_at.is_null())
        .filter(password_resets::expires_at.gt(Utc::now()))
        .select((password_resets::id, password_resets::user_id))
        .first(c)
        .optional()?)
}

pub async fn reset_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let token = path.into_inner();
    let key = state.config.secret_key.clone();
    let t = token.clone();
    let valid = db::run(&state.pool, move |c| find(c, &key, &t))
        .await?
        .is_some();
    let partial = ResetPartial {
        csrf_token: csrf::token(&req),
        token,
        valid,
        error: String::new(),
    };
    render::page(
        &req,
        Layout::for_request(&req, "Choose a new password"),
        partial,
    )
}

#[derive(Debug, Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    pub password: String,
}

pub async fn reset(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<ResetForm>,
) -> AppResult<HttpResponse> {
    let token = path.into_inner();
    let key = state.config.secret_key.clone();
    let t = token.clone();
    let Some((reset_id, uid)) = db::run(&state.pool, move |c| find(c, &key, &t)).await? else {
        let partial = ResetPartial {
            csrf_token: csrf::token(&req),
            token,
            valid: false,
            error: String::new(),
        };
        return render::page_with_status(
            &req,
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            Layout::for_request(&req, "Choose a new password"),
            partial,
        );
    };
    let user = db::run(&state.pool, move |c| repo::find_by_id(c, uid))
        .await?
        .ok_or(AppError::NotFound)?;
    let email = Email::parse(&user.email).ok();
    let new = match NewPassword::parse(&form.password, email.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            let partial = ResetPartial {
                csrf_token: csrf::token(&req),
                token,
                valid: true,
                error: e,
            };
            return render::page_with_status(
                &req,
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                Layout::for_request(&req, "Choose a new password"),
                partial,
            );
        }
    };
    let hash = password::hash(new.expose().to_owned()).await?;
    let actor = Actor {
        user_id: Some(uid),
        email: Some(user.email.clone()),
        ip: audit::client_ip(&req),
    };
    db::run(&state.pool, move |c| {
        diesel::Connection::transaction::<_, AppError, _>(c, |c| {
            // Marking used first makes a concurrent second use find nothing.
            let n = diesel::update(
                password_resets::table
                    .find(reset_id)
                    .filter(password_resets::used_at.is_null()),
            )
            .set(password_resets::used_at.eq(Some(Utc::now())))
            .execute(c)?;
            if n == 0 {
                return Err(AppError::Conflict(
                    "This reset link was already used.".into(),
                ));
            }
            repo::set_password(c, uid, &hash)?;
            repo::clear_failures(c, uid)?;
            session::revoke_all_for_user(c, uid)?;
            Ok(())
        })?;
        audit::record_for_user(
            c,
            uid,
            &actor,
            &Entry::new("user.password_reset", "user", uid),
        )
    })
    .await?;
    Ok(render::see_other(&req, "/login?reset=1"))
}
