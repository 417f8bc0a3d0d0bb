//! Sign-up, sign-in and sign-out pages.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{
    domain::{Email, NewPassword, PersonName},
    password, repo, session, MaybeUserExt as _,
};
use crate::{
    audit::{self, Actor, Entry},
    auth::extract::MaybeUser,
    db,
    error::{AppError, AppResult, FieldErrors},
    tenants::{
        provision::{self, Owner},
        repo as tenants, TenantName, TenantSlug,
    },
    web::{csrf, layout::Layout, render, AppState},
};

#[derive(Template)]
#[template(path = "auth/signup_partial.html")]
pub struct SignupPartial {
    pub csrf_token: String,
    pub form: SignupForm,
    pub errors: FieldErrors,
}

#[derive(Debug, Default, Deserialize)]
pub struct SignupForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub org_name: String,
    #[serde(default)]
    pub slug: String,
}

#[derive(Template)]
#[template(path = "auth/login_partial.html")]
pub struct LoginPartial {
    pub csrf_token: String,
    pub email: String,
    pub next: String,
    pub error: String,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub next: String,
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    pub next: Option<String>,
}

/// Only same-site relative paths are followed after sign-in (no open redirects).
pub fn safe_next(next: &str) -> Option<&str> {
    (next.starts_with('/') && !next.starts_with("//") && !next.contains('\\')).then_some(next)
}

fn client_ip(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|a| a.ip().to_string())
}

fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("User-Agent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Responds with a new session cookie and a redirect.
pub(crate) fn signed_in(
    req: &HttpRequest,
    state: &AppState,
    token: String,
    to: &str,
) -> HttpResponse {
    let mut resp = render::see_other(req, to);
    let _ = resp.add_cookie(&session::cookie(token, state.config.secure_cookies()));
    resp
}

pub async fn signup_form(req: HttpRequest, user: MaybeUser) -> AppResult<HttpResponse> {
    let layout = Layout::for_request(&req, "Create your workspace").maybe_user(&user);
    let form = SignupForm {
        name: user.0.as_ref().map(|u| u.name.clone()).unwrap_or_default(),
        email: user.0.as_ref().map(|u| u.email.clone()).unwrap_or_default(),
        ..Default::default()
    };
    render::page(
        &req,
        layout,
        SignupPartial {
            csrf_token: csrf::token(&req),
            form,
            errors: FieldErrors::default(),
        },
    )
}

pub async fn signup(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: MaybeUser,
    form: web::Form<SignupForm>,
) -> AppResult<HttpResponse> {
    let mut form = form.into_inner();
    let mut errors = FieldErrors::default();
    let org = TenantName::parse(&form.org_name)
        .map_err(|e| errors.add("org_name", e))
        .ok();
    if form.slug.trim().is_empty() {
        form.slug = TenantSlug::suggest(&form.org_name);
    }
    let slug = TenantSlug::parse(&form.slug)
        .map_err(|e| errors.add("slug", e))
        .ok();
    // A signed-in user creating another workspace keeps their identity.
    let owner_input = match &user.0 {
        Some(u) => Some((None, None, Some(u.id))),
        None => {
            let name = PersonName::parse(&form.name)
                .map_err(|e| errors.add("name", e))
                .ok();
            let email = Email::parse(&form.email)
                .map_err(|e| errors.add("email", e))
                .ok();
            let pw = NewPassword::parse(&form.password, email.as_ref())
                .map_err(|e| errors.add("password", e))
                .ok();
            match (name, email, pw) {
                (Some(n), Some(e), Some(p)) => Some((Some((n, e)), Some(p), None)),
                _ => None,
            }
        }
    };
    let rerender = |req: &HttpRequest, form: SignupForm, errors: FieldErrors| {
        form_error(req, &user, form, errors)
    };
    let (Some(org), Some(slug), Some(owner_input), true) =
        (org, slug, owner_input, errors.is_empty())
    else {
        return rerender(&req, form, errors);
    };
    let owner = match owner_input {
        (_, _, Some(id)) => Owner::Existing(id),
        (Some((name, email)), Some(pw), None) => {
            let password_hash = password::hash(pw.expose().to_owned()).await?;
            Owner::New {
                email,
                name,
                password_hash,
            }
        }
        _ => {
            return Err(AppError::internal(anyhow::anyhow!(
                "inconsistent sign-up input"
            )))
        }
    };
    let (ip, ua) = (client_ip(&req), user_agent(&req));
    let existing_session = user.0.is_some();
    let result = db::run(&state.pool, move |c| {
        let p = provision::provision(c, &slug, &org, owner)?;
        let actor = Actor {
            user_id: Some(p.owner_id),
            email: None,
            ip: ip.clone(),
        };
        crate::db::scope::in_tenant(c, &p.schema, |c| {
            audit::record(
                c,
                &actor,
                &Entry::new("tenant.created", "tenant", p.tenant_id)
                    .after(serde_json::json!({ "slug": p.slug, "name": org.as_str() })),
            )
        })?;
        let token = if existing_session {
            None
        } else {
            Some(session::create(
                c,
                p.owner_id,
                ip.as_deref(),
                ua.as_deref(),
                false,
            )?)
        };
        Ok((p, token))
    })
    .await;
    match result {
        Ok((p, token)) => {
            tracing::info!(tenant = %p.slug, "tenant signed up");
            let to = format!("/t/{}", p.slug);
            Ok(match token {
                Some(t) => signed_in(&req, &state, t, &to),
                None => render::see_other(&req, &to),
            })
        }
        Err(AppError::Validation(errors)) => rerender(&req, form, errors),
        Err(e) => Err(e),
    }
}

fn form_error(
    req: &HttpRequest,
    user: &MaybeUser,
    mut form: SignupForm,
    errors: FieldErrors,
) -> AppResult<HttpResponse> {
    form.password.clear();
    let layout = Layout::for_request(req, "Create your workspace").maybe_user(user);
    render::page_with_status(
        req,
        actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
        layout,
        SignupPartial {
            csrf_token: csrf::token(req),
            form,
            errors,
        },
    )
}

pub async fn login_form(
    req: HttpRequest,
    q: web::Query<NextQuery>,
    user: MaybeUser,
) -> AppResult<HttpResponse> {
    if user.0.is_some() {
        return Ok(render::see_other(&req, "/"));
    }
    let next = q
        .next
        .as_deref()
        .and_then(safe_next)
        .unwrap_or("")
        .to_owned();
    let layout = Layout::for_request(&req, "Sign in");
    render::page(
        &req,
        layout,
        LoginPartial {
            csrf_token: csrf::token(&req),
            email: String::new(),
            next,
            error: String::new(),
        },
    )
}

pub const LOGIN_FAILED: &str = "Email or password is incorrect.";

pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> AppResult<HttpResponse> {
    let form = form.into_inner();
    let next = safe_next(&form.next).unwrap_or("/").to_owned();
    let email = Email::parse(&form.email).ok();
    let found = match email.clone() {
        Some(e) => db::run(&state.pool, move |c| repo::find_by_email(c, &e)).await?,
        None => None,
    };
    let active = found.filter(|u| u.status == "active");
    let ok = password::verify(
        form.password.clone(),
        active.as_ref().map(|u| u.password_hash.clone()),
    )
    .await?;
    let (ip, ua) = (client_ip(&req), user_agent(&req));
    let Some(user) = active else {
        tracing::info!("failed sign-in for an unknown or inactive email");
        return login_failed(&req, form);
    };
    let actor = Actor {
        user_id: Some(user.id),
        email: Some(user.email.clone()),
        ip: ip.clone(),
    };
    let uid = user.id;
    if !ok || user.is_locked() {
        // A locked account answers exactly like a wrong password.
        let was_locked = user.is_locked();
        db::run(&state.pool, move |c| {
            let locked_now = if was_locked {
                false
            } else {
                repo::register_failure(c, uid)?
            };
            audit::record_for_user(
                c,
                uid,
                &actor,
                &Entry::new("auth.sign_in_failed", "user", uid)
                    .reason(was_locked.then(|| "account locked".to_owned())),
            )?;
            if locked_now {
                audit::record_for_user(c, uid, &actor, &Entry::new("auth.locked", "user", uid))?;
            }
            Ok(())
        })
        .await?;
        tracing::info!(user_id = uid, "failed sign-in");
        return login_failed(&req, form);
    }
    let mfa = user.mfa_enabled;
    let (token, must_enroll) = db::run(&state.pool, move |c| {
        repo::clear_failures(c, uid)?;
        let token = session::create(c, uid, ip.as_deref(), ua.as_deref(), mfa)?;
        if !mfa {
            audit::record_for_user(c, uid, &actor, &Entry::new("auth.sign_in", "user", uid))?;
        }
        Ok((token, !mfa && tenants::requires_2fa(c, uid)?))
    })
    .await?;
    let to = if mfa {
        format!(
            "/login/2fa?{}",
            serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default()
        )
    } else if must_enroll {
        "/account/security?required=1".to_owned()
    } else {
        next
    };
    tracing::info!(user_id = uid, second_factor = mfa, "password accepted");
    Ok(signed_in(&req, &state, token, &to))
}

fn login_failed(req: &HttpRequest, form: LoginForm) -> AppResult<HttpResponse> {
    let layout = Layout::for_request(req, "Sign in");
    let partial = LoginPartial {
        csrf_token: csrf::token(req),
        email: form.email,
        next: form.next,
        error: LOGIN_FAILED.to_owned(),
    };
    render::page_with_status(
        req,
        actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
        layout,
        partial,
    )
}

pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: MaybeUser,
) -> AppResult<HttpResponse> {
    if let Some(u) = user.0 {
        let (sid, uid) = (u.session_id, u.id);
        let actor = Actor {
            user_id: Some(uid),
            email: Some(u.email.clone()),
            ip: client_ip(&req),
        };
        db::run(&state.pool, move |c| {
            session::revoke(c, sid)?;
            audit::record_for_user(c, uid, &actor, &Entry::new("auth.sign_out", "user", uid))
        })
        .await?;
    }
    let mut resp = render::see_other(&req, "/login");
    let _ = resp.add_cookie(&session::removal_cookie(state.config.secure_cookies()));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_must_be_a_local_path() {
        assert_eq!(safe_next("/t/acme"), Some("/t/acme"));
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "t/acme",
            "",
        ] {
            assert_eq!(safe_next(bad), None, "{bad}");
        }
    }
}
