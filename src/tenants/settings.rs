//! Tenant security settings: which roles must use two-factor authentication. A member of such
//! a role without 2FA is sent to enrollment before any page of the tenant.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::repo;
use crate::{
    audit::{self, Actor, Entry},
    auth::{
        permissions::{can, Allowed},
        Role,
    },
    db,
    error::AppResult,
    web::{csrf, render, AppState},
};

#[derive(Template)]
#[template(path = "tenants/security_settings_partial.html")]
pub struct SecuritySettingsPartial {
    pub csrf_token: String,
    pub base: String,
    pub roles: Vec<(&'static str, &'static str, bool)>,
    pub message: String,
}

async fn render_settings(
    req: &HttpRequest,
    ctx: &super::TenantCtx,
    state: &AppState,
    message: String,
) -> AppResult<HttpResponse> {
    let tid = ctx.tenant.id;
    let required = db::run(&state.pool, move |c| repo::require_2fa_roles(c, tid)).await?;
    let partial = SecuritySettingsPartial {
        csrf_token: csrf::token(req),
        base: ctx.base(),
        roles: Role::ALL
            .iter()
            .map(|r| {
                (
                    r.as_str(),
                    r.label(),
                    required.iter().any(|x| x == r.as_str()),
                )
            })
            .collect(),
        message,
    };
    render::page(
        req,
        ctx.layout(req, "Security settings", "settings"),
        partial,
    )
}

pub async fn page(
    req: HttpRequest,
    ctx: Allowed<can::SettingsManage>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    render_settings(&req, &ctx, &state, String::new()).await
}

pub async fn save(
    req: HttpRequest,
    ctx: Allowed<can::SettingsManage>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    // Repeated checkbox fields (`require_2fa=owner&require_2fa=admin`) need a list of pairs.
    let mut roles: Vec<String> = body
        .into_inner()
        .into_iter()
        .filter(|(k, _)| k == "require_2fa")
        .filter_map(|(_, v)| Role::parse(&v).ok().map(|r| r.as_str().to_owned()))
        .collect();
    roles.sort();
    roles.dedup();
    let (tid, schema, actor) = (
        ctx.tenant.id,
        ctx.tenant.schema.clone(),
        Actor::from_ctx(&ctx, &req),
    );
    let r = roles.clone();
    db::run(&state.pool, move |c| {
        diesel::Connection::transaction(c, |c| {
            let before = repo::set_require_2fa_roles(c, tid, &r)?;
            db::scope::in_tenant(c, &schema, |c| {
                audit::record(
                    c,
                    &actor,
                    &Entry::new("settings.security_changed", "tenant", tid)
                        .before(serde_json::json!({ "require_2fa_roles": before }))
                        .after(serde_json::json!({ "require_2fa_roles": r })),
                )
            })
        })
    })
    .await?;
    render_settings(&req, &ctx, &state, "Saved. Members of the selected roles must set up two-factor authentication at their next request.".into()).await
}
