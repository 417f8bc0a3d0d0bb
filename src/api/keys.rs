//! Settings → API keys: create, list and revoke the tenant's JSON API keys.
//!
//! Rules: admin only (`connectors.manage`); the token is shown once, right after creation, and
//! only its keyed digest is stored; revoking is immediate and permanent. Creation and
//! revocation are audited with the key's name, scope and prefix, never the token.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use super::auth::{generate, DIGEST_PURPOSE};
use crate::{
    accounts::domain::Fields,
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed},
    crypto,
    db::schema::tenant::api_keys as k,
    error::{AppError, AppResult, FieldErrors},
    tenants::TenantCtx,
    web::{csrf, render, AppState},
};

/// One key as listed.
#[derive(Debug, Clone, Queryable)]
pub struct KeyRow {
    pub id: i64,
    pub name: String,
    pub scope: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl KeyRow {
    pub fn created(&self) -> String {
        self.created_at.format("%Y-%m-%d %H:%M UTC").to_string()
    }
    pub fn last_used(&self) -> String {
        self.last_used_at.map_or_else(
            || "never".into(),
            |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
        )
    }
    pub fn revoked(&self) -> String {
        self.revoked_at
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    }
}

#[derive(Template)]
#[template(path = "api/keys_partial.html")]
pub struct KeysPartial {
    pub base: String,
    pub csrf_token: String,
    pub keys: Vec<KeyRow>,
    pub new_token: String,
    pub message: String,
    pub errors: FieldErrors,
    pub api_base: String,
}

async fn render_page(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    errors: FieldErrors,
    new_token: String,
    message: String,
) -> AppResult<HttpResponse> {
    let keys = ctx
        .db(state, |c| {
            Ok(k::table
                .order((k::revoked_at.is_not_null(), k::id.desc()))
                .select((
                    k::id,
                    k::name,
                    k::scope,
                    k::prefix,
                    k::created_at,
                    k::last_used_at,
                    k::revoked_at,
                ))
                .load::<KeyRow>(c)?)
        })
        .await?;
    let partial = KeysPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        keys,
        new_token,
        message,
        api_base: format!("{}/api/v1", state.config.base_url.trim_end_matches('/')),
        errors,
    };
    let status = render::status_for(partial.errors.is_empty());
    render::page_with_status(
        req,
        status,
        ctx.layout(req, "API keys", "settings"),
        partial,
    )
}

pub async fn page(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    render_page(
        &req,
        &ctx,
        &state,
        FieldErrors::default(),
        String::new(),
        String::new(),
    )
    .await
}

pub async fn create(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let form = Fields::from_pairs(body.into_inner());
    let name = form.get("name").to_owned();
    let scope = form.get("scope").to_owned();
    let mut e = FieldErrors::default();
    if name.is_empty() || name.chars().count() > 100 {
        e.add(
            "name",
            "Name the key (up to 100 characters), e.g. after the system using it.",
        );
    }
    if scope != "read" && scope != "write" {
        e.add("scope", "Choose read or write.");
    }
    if !e.is_empty() {
        return render_page(&req, &ctx, &state, e, String::new(), String::new()).await;
    }
    let t = generate(&ctx.tenant.slug);
    let digest = crypto::digest(&state.config.secret_key, DIGEST_PURPOSE, &t.token);
    let actor = Actor::from_ctx(&ctx, &req);
    let uid = ctx.user.id;
    let prefix = t.prefix.clone();
    ctx.db(&state, move |c| {
        let id: i64 = diesel::insert_into(k::table)
            .values((
                k::name.eq(&name),
                k::scope.eq(&scope),
                k::prefix.eq(&prefix),
                k::digest.eq(&digest),
                k::created_by.eq(uid),
            ))
            .returning(k::id)
            .get_result(c)?;
        audit::record(
            c,
            &actor,
            &Entry::new("api_key.created", "api_key", id)
                .after(json!({ "name": name, "scope": scope, "prefix": prefix })),
        )
    })
    .await?;
    render_page(
        &req,
        &ctx,
        &state,
        FieldErrors::default(),
        t.token,
        "API key created. Copy it now: it will not be shown again.".into(),
    )
    .await
}

pub async fn revoke(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let form = Fields::from_pairs(body.into_inner());
    let Ok(id) = form.get("id").parse::<i64>() else {
        let mut e = FieldErrors::default();
        e.add("id", "Choose a key to revoke.");
        return render_page(&req, &ctx, &state, e, String::new(), String::new()).await;
    };
    let actor = Actor::from_ctx(&ctx, &req);
    ctx.db(&state, move |c| {
        let found: Option<(String, String)> =
            diesel::update(k::table.find(id).filter(k::revoked_at.is_null()))
                .set(k::revoked_at.eq(diesel::dsl::now))
                .returning((k::name, k::prefix))
                .get_result(c)
                .optional()?;
        let (name, prefix) = found.ok_or(AppError::NotFound)?;
        audit::record(
            c,
            &actor,
            &Entry::new("api_key.revoked", "api_key", id)
                .after(json!({ "name": name, "prefix": prefix })),
        )
    })
    .await?;
    render_page(
        &req,
        &ctx,
        &state,
        FieldErrors::default(),
        String::new(),
        "API key revoked.".into(),
    )
    .await
}
