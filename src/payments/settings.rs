//! Settings → Payments: the tenant's Stripe account.
//!
//! Rules: the secret API key and the webhook signing secret are sealed at rest (AES-GCM) and
//! never shown again, only whether they are set; leaving a field empty keeps the stored
//! value. The page shows the webhook URL to register at Stripe. Admin only.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::json;

use super::gateway::{
    put_sealed_setting, sealed_setting, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET,
};
use crate::{
    accounts::domain::Fields,
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed},
    error::{AppResult, FieldErrors},
    tenants::TenantCtx,
    web::{csrf, render, AppState},
};

#[derive(Template)]
#[template(path = "payments/settings_partial.html")]
pub struct SettingsPartial {
    pub base: String,
    pub csrf_token: String,
    pub webhook_url: String,
    pub key_set: bool,
    pub secret_set: bool,
    pub errors: FieldErrors,
    pub message: String,
}

async fn render_page(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    errors: FieldErrors,
    message: String,
) -> AppResult<HttpResponse> {
    let key = state.config.secret_key.clone();
    let (key_set, secret_set) = ctx
        .db(state, move |c| {
            Ok((
                sealed_setting(c, &key, STRIPE_SECRET_KEY)?.is_some(),
                sealed_setting(c, &key, STRIPE_WEBHOOK_SECRET)?.is_some(),
            ))
        })
        .await?;
    let partial = SettingsPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        webhook_url: format!(
            "{}/hooks/{}/stripe",
            state.config.base_url.trim_end_matches('/'),
            ctx.tenant.slug
        ),
        key_set,
        secret_set,
        message,
        errors,
    };
    let status = render::status_for(partial.errors.is_empty());
    render::page_with_status(
        req,
        status,
        ctx.layout(req, "Payment settings", "settings"),
        partial,
    )
}

pub async fn page(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    render_page(&req, &ctx, &state, FieldErrors::default(), String::new()).await
}

pub async fn save(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let form = Fields::from_pairs(body.into_inner());
    let api_key = form.get("api_key").trim().to_owned();
    let webhook_secret = form.get("webhook_secret").trim().to_owned();
    let mut e = FieldErrors::default();
    if !(api_key.is_empty() || api_key.starts_with("sk_") || api_key.starts_with("rk_")) {
        e.add(
            "api_key",
            "A Stripe secret key starts with sk_ (or rk_ for a restricted key).",
        );
    }
    if !webhook_secret.is_empty() && !webhook_secret.starts_with("whsec_") {
        e.add(
            "webhook_secret",
            "A Stripe signing secret starts with whsec_.",
        );
    }
    if !e.is_empty() {
        return render_page(&req, &ctx, &state, e, String::new()).await;
    }
    let actor = Actor::from_ctx(&ctx, &req);
    let key = state.config.secret_key.clone();
    ctx.db(&state, move |c| {
        if !api_key.is_empty() {
            put_sealed_setting(c, &key, STRIPE_SECRET_KEY, &api_key)?;
        }
        if !webhook_secret.is_empty() {
            put_sealed_setting(c, &key, STRIPE_WEBHOOK_SECRET, &webhook_secret)?;
        }
        // Which secrets changed, never their values.
        audit::record(
            c,
            &actor,
            &Entry::new("settings.payments", "settings", "payments").after(json!({
                "api_key_changed": !api_key.is_empty(),
                "webhook_secret_changed": !webhook_secret.is_empty(),
            })),
        )
    })
    .await?;
    render_page(
        &req,
        &ctx,
        &state,
        FieldErrors::default(),
        "Payment settings saved.".into(),
    )
    .await
}
