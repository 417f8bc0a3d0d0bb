//! Settings → Dunning: the tenant's dunning policies and their editor (the form itself is
//! read and written by [`form`]).
//!
//! Rules: a save never changes a stored version; it adds the next one, so invoices already
//! in dunning keep the steps they started with and only new dunning uses the edit. A save
//! that changes nothing adds nothing. The whole form is checked before anything is written.
//! Two people saving at once queue on the policy's row lock, and the second is told to
//! reload instead of overwriting.

pub mod form;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use serde_json::json;

use self::form::{canonical, parse_policy, policy_fields, step_views, StepView};
use super::{
    domain::{Policy, PLACEHOLDERS},
    repo,
};
use crate::{
    accounts::{domain::Fields, handlers::members},
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed},
    error::{AppError, AppResult, FieldErrors},
    tenants::{repo::Member, TenantCtx},
    web::{csrf, render, AppState},
};

pub struct PolicyListRow {
    pub row: repo::PolicyRow,
    pub versions: i64,
    pub accounts: i64,
}

#[derive(Template)]
#[template(path = "dunning/policies_partial.html")]
pub struct ListPartial {
    pub base: String,
    pub csrf_token: String,
    pub policies: Vec<PolicyListRow>,
    pub sources: Vec<(String, String)>,
    pub form: Fields,
    pub errors: FieldErrors,
}

async fn render_list(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    form: Fields,
    errors: FieldErrors,
) -> AppResult<HttpResponse> {
    let policies = ctx
        .db(state, |c| {
            let rows = repo::policies(c)?;
            let stats = repo::policy_stats(c)?;
            Ok(rows
                .into_iter()
                .map(|row| {
                    let s = stats
                        .iter()
                        .find(|s| s.0 == row.id)
                        .copied()
                        .unwrap_or((row.id, 0, 0));
                    PolicyListRow {
                        row,
                        versions: s.1,
                        accounts: s.2,
                    }
                })
                .collect::<Vec<_>>())
        })
        .await?;
    let mut sources = vec![("standard".to_owned(), "The standard policy".to_owned())];
    sources.extend(
        policies
            .iter()
            .map(|p| (p.row.id.to_string(), format!("A copy of {}", p.row.name))),
    );
    let partial = ListPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        policies,
        sources,
        form,
        errors,
    };
    let status = render::status_for(partial.errors.is_empty());
    render::page_with_status(
        req,
        status,
        ctx.layout(req, "Dunning policies", "collections"),
        partial,
    )
}

pub async fn list(
    req: HttpRequest,
    ctx: Allowed<can::DunningConfigure>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    render_list(
        &req,
        &ctx,
        &state,
        Fields::default(),
        FieldErrors::default(),
    )
    .await
}

/// Creates a policy from the standard one or a copy of another's current version.
pub async fn create(
    req: HttpRequest,
    ctx: Allowed<can::DunningConfigure>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let form = Fields::from_pairs(body.into_inner());
    let name: String = form.get("name").to_owned();
    let from = form.get("from").to_owned();
    let (actor, uid) = (Actor::from_ctx(&ctx, &req), ctx.user.id);
    let outcome = ctx
        .db(&state, move |c| {
            let mut e = FieldErrors::default();
            if name.is_empty() || name.chars().count() > 100 {
                e.add("name", "Name the policy (up to 100 characters).");
            } else if repo::policies(c)?
                .iter()
                .any(|p| p.name.eq_ignore_ascii_case(&name))
            {
                e.add("name", "A policy with this name exists.");
            }
            let start = match from.as_str() {
                "standard" | "" => Some(Policy::standard()),
                raw => match raw
                    .parse::<i64>()
                    .ok()
                    .map(|id| repo::current_version(c, id))
                {
                    Some(Ok(v)) => Some(v.policy()?),
                    _ => None,
                },
            };
            let Some(start) = start.filter(|_| e.is_empty()) else {
                if e.is_empty() {
                    e.add("from", "Choose what the new policy starts from.");
                }
                return Ok(Err(e));
            };
            let id = repo::create_policy(c, &name, &start, false, Some(uid))?;
            audit::record(
                c,
                &actor,
                &Entry::new("dunning.policy_created", "dunning_policy", id)
                    .after(json!({ "name": name, "from": from })),
            )?;
            Ok(Ok(id))
        })
        .await?;
    match outcome {
        Ok(id) => Ok(render::see_other(
            &req,
            &format!("{}/settings/dunning/{id}", ctx.base()),
        )),
        Err(e) => render_list(&req, &ctx, &state, form, e).await,
    }
}

pub struct VersionView {
    pub version: i32,
    pub at: String,
    pub by: String,
}

#[derive(Template)]
#[template(path = "dunning/policy_partial.html")]
pub struct EditPartial {
    pub base: String,
    pub csrf_token: String,
    pub policy: repo::PolicyRow,
    pub current: i32,
    pub steps: Vec<StepView>,
    pub form: Fields,
    pub errors: FieldErrors,
    pub assignees: Vec<(String, String)>,
    pub fee_types: Vec<(&'static str, &'static str)>,
    pub placeholders: &'static [&'static str],
    pub versions: Vec<VersionView>,
    pub accounts: i64,
    pub message: String,
}

fn active_members(members: &[Member]) -> Vec<&Member> {
    members.iter().filter(|m| m.status == "active").collect()
}

async fn render_edit(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    id: i64,
    form: Option<Fields>,
    errors: FieldErrors,
    message: String,
) -> AppResult<HttpResponse> {
    let members = members(state, ctx.tenant.id).await?;
    let (policy, current, versions, stats) = ctx
        .db(state, move |c| {
            let policy = repo::policy(c, id)?;
            let versions = repo::versions_of(c, id)?;
            let stats = repo::policy_stats(c)?
                .into_iter()
                .find(|s| s.0 == id)
                .unwrap_or((id, 0, 0));
            let current = repo::current_version(c, id)?;
            Ok((policy, current, versions, stats))
        })
        .await?;
    let mut form = match form {
        Some(f) => f,
        None => policy_fields(&current.policy()?),
    };
    if form.get("based_on").is_empty() {
        form.set("based_on", current.version.to_string());
    }
    let name_of = |uid: Option<i64>| {
        uid.map_or_else(
            || "System".to_owned(),
            |u| {
                members
                    .iter()
                    .find(|m| m.user_id == u)
                    .map_or_else(|| format!("user #{u}"), |m| m.name.clone())
            },
        )
    };
    let mut assignees = vec![
        ("owner".to_owned(), "The account owner".to_owned()),
        ("team".to_owned(), "The team (unassigned)".to_owned()),
    ];
    assignees.extend(
        active_members(&members)
            .into_iter()
            .map(|m| (m.user_id.to_string(), m.name.clone())),
    );
    let partial = EditPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        current: current.version,
        steps: step_views(&form, &errors),
        form,
        errors,
        assignees,
        fee_types: vec![
            ("percent", "% of the invoice balance"),
            ("fixed", "Fixed amount"),
        ],
        placeholders: PLACEHOLDERS,
        versions: versions
            .iter()
            .map(|v| VersionView {
                version: v.version,
                at: v.created_at.format("%Y-%m-%d %H:%M").to_string(),
                by: name_of(v.created_by),
            })
            .collect(),
        accounts: stats.2,
        message,
        policy,
    };
    let status = render::status_for(partial.errors.is_empty());
    let title = format!("Dunning policy {}", partial.policy.name);
    render::page_with_status(req, status, ctx.layout(req, title, "collections"), partial)
}

#[derive(Debug, Deserialize, Default)]
pub struct EditParams {
    #[serde(default)]
    pub saved: Option<i32>,
}

pub async fn edit(
    req: HttpRequest,
    ctx: Allowed<can::DunningConfigure>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    params: web::Query<EditParams>,
) -> AppResult<HttpResponse> {
    let message = params
        .saved
        .map(|v| format!("Saved as version {v}. Invoices already in dunning keep their version."))
        .unwrap_or_default();
    render_edit(
        &req,
        &ctx,
        &state,
        path.1,
        None,
        FieldErrors::default(),
        message,
    )
    .await
}

/// Saves the editor as the policy's next version.
pub async fn save(
    req: HttpRequest,
    ctx: Allowed<can::DunningConfigure>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let ids: Vec<i64> = active_members(&members(&state, ctx.tenant.id).await?)
        .iter()
        .map(|m| m.user_id)
        .collect();
    let policy = match parse_policy(&form, &ids) {
        Ok(p) => p,
        Err(e) => return render_edit(&req, &ctx, &state, id, Some(form), e, String::new()).await,
    };
    let based_on = form.get("based_on").parse::<i32>().ok();
    let (actor, uid) = (Actor::from_ctx(&ctx, &req), ctx.user.id);
    let saved = ctx
        .db(&state, move |c| {
            let row = repo::lock_policy(c, id)?;
            let current = repo::current_version(c, id)?;
            if based_on.is_some_and(|b| b != current.version) {
                return Err(AppError::Conflict(format!(
                    "Someone saved version {} of this policy meanwhile; reload the page and make your change again.",
                    current.version
                )));
            }
            let before = canonical(&current.policy()?);
            if canonical(&policy) == before {
                return Ok(None);
            }
            repo::add_version(c, id, &policy, Some(uid))?;
            audit::record(
                c,
                &actor,
                &Entry::new("dunning.policy_versioned", "dunning_policy", id)
                    .before(json!({ "name": row.name, "version": current.version, "definition": before }))
                    .after(json!({ "version": current.version + 1, "definition": policy })),
            )?;
            Ok(Some(current.version + 1))
        })
        .await?;
    match saved {
        Some(v) => Ok(render::see_other(
            &req,
            &format!("{}/settings/dunning/{id}?saved={v}", ctx.base()),
        )),
        None => {
            render_edit(
                &req,
                &ctx,
                &state,
                id,
                None,
                FieldErrors::default(),
                "No changes to save.".into(),
            )
            .await
        }
    }
}

/// Makes a policy the one accounts without their own policy follow.
pub async fn make_default(
    req: HttpRequest,
    ctx: Allowed<can::DunningConfigure>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let actor = Actor::from_ctx(&ctx, &req);
    ctx.db(&state, move |c| {
        let before = repo::policies(c)?
            .into_iter()
            .find(|p| p.is_default)
            .map(|p| p.id);
        repo::set_default(c, id)?;
        audit::record(
            c,
            &actor,
            &Entry::new("dunning.policy_default", "dunning_policy", id)
                .before(json!({ "default": before }))
                .after(json!({ "default": id })),
        )
    })
    .await?;
    Ok(render::see_other(
        &req,
        &format!("{}/settings/dunning", ctx.base()),
    ))
}
