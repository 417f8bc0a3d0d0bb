//! Members of a tenant: invitations by email, role changes, deactivation, per-member history.
//!
//! Rules: only owners and admins manage members; only an owner can make or unmake an owner;
//! the last active owner can be neither demoted nor deactivated; nobody deactivates themself.
//! Deactivation takes effect at once: the member's sessions are revoked. Invitations are
//! single-use links valid for 7 days, bound to the invited email, sent through the outbox.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::Utc;
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use serde::Deserialize;
use serde_json::json;

use super::repo;
use crate::{
    audit::{self, handlers::History, Actor, Entry},
    auth::{
        permissions::{can, Allowed, MATRIX},
        session, Role,
    },
    db::{self, schema::control::invitations, scope::TenantSchema},
    error::{AppError, AppResult, FieldErrors},
    web::{csrf, render, AppState},
};

pub struct MemberView {
    pub user_id: i64,
    pub name: String,
    pub email: String,
    pub role: String,
    pub status: String,
    pub joined: String,
}

impl From<repo::Member> for MemberView {
    fn from(m: repo::Member) -> Self {
        Self {
            user_id: m.user_id,
            name: m.name,
            email: m.email,
            role: m.role,
            status: m.status,
            joined: m.joined.format("%Y-%m-%d").to_string(),
        }
    }
}

pub struct InviteView {
    pub id: i64,
    pub email: String,
    pub role: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "tenants/members_partial.html")]
pub struct MembersPartial {
    pub csrf_token: String,
    pub base: String,
    pub can_manage: bool,
    pub members: Vec<MemberView>,
    pub invites: Vec<InviteView>,
    pub form_email: String,
    pub form_role: String,
    pub errors: FieldErrors,
    pub roles: Vec<(&'static str, &'static str)>,
    pub matrix: Vec<(&'static str, Vec<bool>)>,
    pub message: String,
}

pub(super) fn invitable_roles() -> Vec<(&'static str, &'static str)> {
    Role::ALL
        .iter()
        .filter(|r| **r != Role::Owner)
        .map(|r| (r.as_str(), r.label()))
        .collect()
}

fn matrix() -> Vec<(&'static str, Vec<bool>)> {
    MATRIX
        .iter()
        .map(|(_, code, roles)| (*code, Role::ALL.iter().map(|r| roles.contains(r)).collect()))
        .collect()
}

pub(super) async fn render_members(
    req: &HttpRequest,
    ctx: &crate::tenants::TenantCtx,
    state: &AppState,
    form: (String, String),
    errors: FieldErrors,
    message: String,
) -> AppResult<HttpResponse> {
    let tid = ctx.tenant.id;
    let (rows, invites) = db::run(&state.pool, move |c| {
        let invites: Vec<(i64, String, String, chrono::DateTime<Utc>)> = invitations::table
            .filter(invitations::tenant_id.eq(tid))
            .filter(repo::invitation_pending(Utc::now()))
            .select((
                invitations::id,
                invitations::email,
                invitations::role,
                invitations::expires_at,
            ))
            .order(invitations::created_at.desc())
            .load(c)?;
        Ok((repo::members(c, tid)?, invites))
    })
    .await?;
    let status = render::status_for(errors.is_empty());
    let partial = MembersPartial {
        csrf_token: csrf::token(req),
        base: ctx.base(),
        can_manage: ctx.can(crate::auth::permissions::Permission::UsersManage),
        members: rows.into_iter().map(MemberView::from).collect(),
        invites: invites
            .into_iter()
            .map(|(id, email, role, exp)| InviteView {
                id,
                email,
                role,
                expires: exp.format("%Y-%m-%d").to_string(),
            })
            .collect(),
        form_email: form.0,
        form_role: form.1,
        errors,
        roles: invitable_roles(),
        matrix: matrix(),
        message,
    };
    render::page_with_status(req, status, ctx.layout(req, "Members", "members"), partial)
}

pub async fn list(
    req: HttpRequest,
    ctx: Allowed<can::UsersView>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    render_members(
        &req,
        &ctx,
        &state,
        (String::new(), "finance".into()),
        FieldErrors::default(),
        String::new(),
    )
    .await
}

#[derive(Template)]
#[template(path = "tenants/member_partial.html")]
pub struct MemberPartial {
    pub csrf_token: String,
    pub base: String,
    pub member: MemberView,
    pub can_manage: bool,
    pub is_self: bool,
    pub roles: Vec<(&'static str, &'static str)>,
    pub history: History,
    pub error: String,
}

async fn load_member(state: &AppState, tid: i64, uid: i64) -> AppResult<repo::Member> {
    db::run(&state.pool, move |c| {
        Ok(repo::members(c, tid)?
            .into_iter()
            .find(|m| m.user_id == uid))
    })
    .await?
    .ok_or(AppError::NotFound)
}

async fn render_member(
    req: &HttpRequest,
    ctx: &crate::tenants::TenantCtx,
    state: &AppState,
    uid: i64,
    error: String,
) -> AppResult<HttpResponse> {
    let m = load_member(state, ctx.tenant.id, uid).await?;
    let history = ctx
        .db(state, move |c| {
            audit::handlers::history(c, "member", &uid.to_string())
        })
        .await?;
    let can_manage = ctx.can(crate::auth::permissions::Permission::UsersManage);
    let mut roles: Vec<(&'static str, &'static str)> = invitable_roles();
    if ctx.role == Role::Owner {
        roles.insert(0, (Role::Owner.as_str(), Role::Owner.label()));
    }
    let status = render::status_for(error.is_empty());
    let partial = MemberPartial {
        csrf_token: csrf::token(req),
        base: ctx.base(),
        is_self: uid == ctx.user.id,
        member: MemberView::from(m),
        can_manage,
        roles,
        history,
        error,
    };
    render::page_with_status(req, status, ctx.layout(req, "Member", "members"), partial)
}

pub async fn detail(
    req: HttpRequest,
    ctx: Allowed<can::UsersView>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    render_member(&req, &ctx, &state, path.into_inner().1, String::new()).await
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub reason: String,
}

/// A requested change to one membership.
struct Change {
    tenant_id: i64,
    schema: TenantSchema,
    user_id: i64,
    role: Option<Role>,
    status: Option<&'static str>,
    reason: Option<String>,
}

/// Applies a membership change with its rules; returns a user-facing refusal when it breaks one.
fn change_membership(
    c: &mut diesel::PgConnection,
    ctx_role: Role,
    actor: &Actor,
    change: Change,
) -> AppResult<Result<(), String>> {
    let Change {
        tenant_id: tid,
        schema,
        user_id: uid,
        role: new_role,
        status: new_status,
        reason,
    } = change;
    let Some(current) = repo::membership_of(c, tid, uid)? else {
        return Err(AppError::NotFound);
    };
    let role = new_role.map_or(current.role.clone(), |r| r.as_str().to_owned());
    let status = new_status.map_or(current.status.clone(), str::to_owned);
    if role == current.role && status == current.status {
        return Ok(Ok(()));
    }
    let touches_owner = current.role == "owner" || role == "owner";
    if touches_owner && ctx_role != Role::Owner {
        return Ok(Err(
            "Only an owner can grant or change the owner role.".into()
        ));
    }
    let stays_owner = role == "owner" && status == "active";
    if current.role == "owner"
        && current.status == "active"
        && !stays_owner
        && repo::active_owner_count(c, tid)? <= 1
    {
        return Ok(Err(
            "A workspace needs at least one active owner. Make someone else owner first.".into(),
        ));
    }
    if status == "deactivated" && actor.user_id == Some(uid) {
        return Ok(Err("You cannot deactivate yourself.".into()));
    }
    repo::set_membership(c, tid, uid, &role, &status)?;
    if status == "deactivated" && current.status == "active" {
        session::revoke_all_for_user(c, uid)?;
    }
    let action = if status != current.status {
        if status == "active" {
            "member.reactivated"
        } else {
            "member.deactivated"
        }
    } else {
        "member.role_changed"
    };
    db::scope::in_tenant(c, &schema, |c| {
        audit::record(
            c,
            actor,
            &Entry::new(action, "member", uid)
                .before(json!({ "role": current.role, "status": current.status }))
                .after(json!({ "role": role, "status": status }))
                .reason(reason),
        )
    })?;
    Ok(Ok(()))
}

async fn membership_action(
    req: HttpRequest,
    ctx: Allowed<can::UsersManage>,
    state: web::Data<AppState>,
    uid: i64,
    new_role: Option<Role>,
    new_status: Option<&'static str>,
    reason: Option<String>,
) -> AppResult<HttpResponse> {
    let (tid, schema, actor, role) = (
        ctx.tenant.id,
        ctx.tenant.schema.clone(),
        Actor::from_ctx(&ctx, &req),
        ctx.role,
    );
    let outcome = db::run(&state.pool, move |c| {
        diesel::Connection::transaction(c, |c| {
            let change = Change {
                tenant_id: tid,
                schema,
                user_id: uid,
                role: new_role,
                status: new_status,
                reason,
            };
            change_membership(c, role, &actor, change)
        })
    })
    .await?;
    match outcome {
        Ok(()) => Ok(render::see_other(
            &req,
            &format!("{}/members/{uid}", ctx.base()),
        )),
        Err(refusal) => render_member(&req, &ctx, &state, uid, refusal).await,
    }
}

pub async fn change_role(
    req: HttpRequest,
    ctx: Allowed<can::UsersManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<RoleForm>,
) -> AppResult<HttpResponse> {
    let uid = path.into_inner().1;
    let Ok(role) = Role::parse(&form.role) else {
        return render_member(&req, &ctx, &state, uid, "Choose a valid role.".into()).await;
    };
    let reason = Some(form.reason.clone());
    membership_action(req, ctx, state, uid, Some(role), None, reason).await
}

pub async fn deactivate(
    req: HttpRequest,
    ctx: Allowed<can::UsersManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<RoleForm>,
) -> AppResult<HttpResponse> {
    let reason = Some(form.reason.clone());
    membership_action(
        req,
        ctx,
        state,
        path.into_inner().1,
        None,
        Some("deactivated"),
        reason,
    )
    .await
}

pub async fn reactivate(
    req: HttpRequest,
    ctx: Allowed<can::UsersManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    membership_action(
        req,
        ctx,
        state,
        path.into_inner().1,
        None,
        Some("active"),
        None,
    )
    .await
}
