//! Members of a tenant: invitations by email, role changes, deactivation, per-member history.
//!
//! Rules: only owners and admins manage members; only an owner can make or unmake an owner;
//! the last active owner can be neither demoted nor deactivated; nobody deactivates themself.
//! Deactivation takes effect at once: the member's sessions are revoked. Invitations are
//! single-use links valid for 7 days, bound to the invited email, sent through the outbox.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{Duration, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, RunQueryDsl};
use serde::Deserialize;
use serde_json::json;

use super::{provision, repo};
use crate::{
    audit::{self, handlers::HistoryPartial, Actor, Entry},
    auth::{
        domain::{NewPassword, PersonName},
        extract::MaybeUser,
        password,
        permissions::{can, codes_for, Allowed, MATRIX},
        repo as users, session, Email, MaybeUserExt as _, Role,
    },
    crypto,
    db::{
        self,
        schema::control::{invitations, tenants},
        scope::TenantSchema,
    },
    email::message::OutgoingEmail,
    error::{AppError, AppResult, FieldErrors},
    jobs::outbox,
    web::{csrf, csrf::random_token, layout::Layout, render, AppState},
};

const INVITE_PURPOSE: &str = "invitation";
pub const INVITE_DAYS: i64 = 7;

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

fn invitable_roles() -> Vec<(&'static str, &'static str)> {
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

async fn render_members(
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
            .filter(invitations::accepted_at.is_null())
            .filter(invitations::revoked_at.is_null())
            .filter(invitations::expires_at.gt(Utc::now()))
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
    let status = if errors.is_empty() {
        actix_web::http::StatusCode::OK
    } else {
        actix_web::http::StatusCode::UNPROCESSABLE_ENTITY
    };
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

#[derive(Debug, Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub role: String,
}

pub async fn invite(
    req: HttpRequest,
    ctx: Allowed<can::UsersManage>,
    state: web::Data<AppState>,
    form: web::Form<InviteForm>,
) -> AppResult<HttpResponse> {
    let form = form.into_inner();
    let mut errors = FieldErrors::default();
    let email = Email::parse(&form.email)
        .map_err(|e| errors.add("email", e))
        .ok();
    let role = Role::parse(&form.role).ok().filter(|r| *r != Role::Owner);
    if role.is_none() {
        errors.add("role", "Choose a role.");
    }
    let (Some(email), Some(role)) = (email, role) else {
        return render_members(
            &req,
            &ctx,
            &state,
            (form.email, form.role),
            errors,
            String::new(),
        )
        .await;
    };
    let tid = ctx.tenant.id;
    let schema = ctx.tenant.schema.clone();
    let key = state.config.secret_key.clone();
    let base = state.config.base_url.clone();
    let (tenant_name, inviter) = (ctx.tenant.name.clone(), ctx.user.name.clone());
    let actor = Actor::from_ctx(&ctx, &req);
    let em = email.clone();
    let result = db::run(&state.pool, move |c| {
        if let Some(u) = users::find_by_email(c, &em)? {
            if repo::membership_of(c, tid, u.id)?.is_some_and(|m| m.status == "active") {
                let mut e = FieldErrors::default();
                e.add("email", "This person is already a member.");
                return Err(AppError::Validation(e));
            }
        }
        let token = random_token();
        db::scope::in_tenant(c, &schema, |c| {
            let id: i64 = diesel::insert_into(invitations::table)
                .values((
                    invitations::tenant_id.eq(tid),
                    invitations::email.eq(em.as_str()),
                    invitations::role.eq(role.as_str()),
                    invitations::token_hash.eq(crypto::digest(&key, INVITE_PURPOSE, &token)),
                    invitations::invited_by.eq(actor.user_id),
                    invitations::expires_at.eq(Utc::now() + Duration::days(INVITE_DAYS)),
                ))
                .returning(invitations::id)
                .get_result(c)?;
            let mail = OutgoingEmail {
                to: vec![em.as_str().to_owned()],
                cc: vec![],
                subject: format!("{inviter} invited you to {tenant_name} on Arbor"),
                text: format!(
                    "Hello,\n\n{inviter} invited you to join {tenant_name} on Arbor as {}.\n\n\
                     Accept the invitation within {INVITE_DAYS} days:\n{base}/invite/{token}\n\n\
                     If you did not expect this, you can ignore this email.\n",
                    role.label()
                ),
                html: None,
                attachments: vec![],
                reply_to: None,
                sensitive: true,
            };
            let payload = serde_json::to_value(&mail).map_err(AppError::internal)?;
            outbox::enqueue(
                c,
                tid,
                outbox::KIND_EMAIL,
                &payload,
                Some(&format!("invitation:{id}")),
            )?;
            audit::record(
                c,
                &actor,
                &Entry::new("member.invited", "invitation", id)
                    .after(json!({ "email": em.as_str(), "role": role.as_str() })),
            )
        })
    })
    .await;
    match result {
        Ok(()) => {
            state.wakeup.notify();
            render_members(
                &req,
                &ctx,
                &state,
                (String::new(), "finance".into()),
                FieldErrors::default(),
                format!("Invitation sent to {email}."),
            )
            .await
        }
        Err(AppError::Validation(e)) => {
            render_members(
                &req,
                &ctx,
                &state,
                (form.email, form.role),
                e,
                String::new(),
            )
            .await
        }
        Err(e) => Err(e),
    }
}

pub async fn revoke_invite(
    req: HttpRequest,
    ctx: Allowed<can::UsersManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().1;
    let (tid, schema, actor) = (
        ctx.tenant.id,
        ctx.tenant.schema.clone(),
        Actor::from_ctx(&ctx, &req),
    );
    db::run(&state.pool, move |c| {
        db::scope::in_tenant(c, &schema, |c| {
            let n = diesel::update(
                invitations::table
                    .find(id)
                    .filter(invitations::tenant_id.eq(tid))
                    .filter(invitations::accepted_at.is_null())
                    .filter(invitations::revoked_at.is_null()),
            )
            .set(invitations::revoked_at.eq(Some(Utc::now())))
            .execute(c)?;
            if n == 0 {
                return Err(AppError::NotFound);
            }
            audit::record(
                c,
                &actor,
                &Entry::new("member.invitation_revoked", "invitation", id),
            )
        })
    })
    .await?;
    Ok(render::see_other(&req, &format!("{}/members", ctx.base())))
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
    pub history: HistoryPartial,
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
    let status = if error.is_empty() {
        actix_web::http::StatusCode::OK
    } else {
        actix_web::http::StatusCode::UNPROCESSABLE_ENTITY
    };
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

// ---- Accepting an invitation (public link) ----

#[derive(Template)]
#[template(path = "tenants/accept_partial.html")]
pub struct AcceptPartial {
    pub csrf_token: String,
    pub token: String,
    pub valid: bool,
    pub tenant_name: String,
    pub email: String,
    pub role: String,
    /// The invited email already has an account: sign in as it to accept.
    pub existing: bool,
    pub signed_in_as_invitee: bool,
    pub name: String,
    pub errors: FieldErrors,
}

struct Invitation {
    id: i64,
    tenant_id: i64,
    tenant_name: String,
    schema: String,
    email: String,
    role: String,
}

fn find_invitation(
    c: &mut diesel::PgConnection,
    key: &crate::config::SecretKey,
    token: &str,
) -> AppResult<Option<Invitation>> {
    let row: Option<(i64, i64, String, String, String, String)> = invitations::table
        .inner_join(tenants::table)
        .filter(invitations::token_hash.eq(crypto::digest(key, INVITE_PURPOSE, token)))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .filter(invitations::expires_at.gt(Utc::now()))
        .select((
            invitations::id,
            invitations::tenant_id,
            tenants::name,
            tenants::schema_name,
            invitations::email,
            invitations::role,
        ))
        .first(c)
        .optional()?;
    Ok(row.map(
        |(id, tenant_id, tenant_name, schema, email, role)| Invitation {
            id,
            tenant_id,
            tenant_name,
            schema,
            email,
            role,
        },
    ))
}

async fn accept_view(
    req: &HttpRequest,
    state: &AppState,
    user: &MaybeUser,
    token: String,
    name: String,
    errors: FieldErrors,
) -> AppResult<HttpResponse> {
    let key = state.config.secret_key.clone();
    let t = token.clone();
    let inv = db::run(&state.pool, move |c| {
        let Some(inv) = find_invitation(c, &key, &t)? else {
            return Ok(None);
        };
        let existing = Email::parse(&inv.email)
            .ok()
            .map(|e| users::find_by_email(c, &e))
            .transpose()?
            .flatten()
            .is_some();
        Ok(Some((inv, existing)))
    })
    .await?;
    let layout = Layout::for_request(req, "Join workspace").maybe_user(user);
    let status = if errors.is_empty() {
        actix_web::http::StatusCode::OK
    } else {
        actix_web::http::StatusCode::UNPROCESSABLE_ENTITY
    };
    let partial = match inv {
        None => AcceptPartial {
            csrf_token: csrf::token(req),
            token,
            valid: false,
            tenant_name: String::new(),
            email: String::new(),
            role: String::new(),
            existing: false,
            signed_in_as_invitee: false,
            name,
            errors,
        },
        Some((inv, existing)) => AcceptPartial {
            csrf_token: csrf::token(req),
            token,
            valid: true,
            signed_in_as_invitee: user.0.as_ref().is_some_and(|u| u.email == inv.email),
            tenant_name: inv.tenant_name,
            email: inv.email,
            role: inv.role,
            existing,
            name,
            errors,
        },
    };
    render::page_with_status(req, status, layout, partial)
}

pub async fn accept_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: MaybeUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    accept_view(
        &req,
        &state,
        &user,
        path.into_inner(),
        String::new(),
        FieldErrors::default(),
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct AcceptForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub password: String,
}

pub async fn accept(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: MaybeUser,
    path: web::Path<String>,
    form: web::Form<AcceptForm>,
) -> AppResult<HttpResponse> {
    let token = path.into_inner();
    let key = state.config.secret_key.clone();
    let t = token.clone();
    let Some(inv) = db::run(&state.pool, move |c| find_invitation(c, &key, &t)).await? else {
        return accept_view(
            &req,
            &state,
            &user,
            token,
            String::new(),
            FieldErrors::default(),
        )
        .await;
    };
    let email = Email::parse(&inv.email).map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
    let em = email.clone();
    let existing = db::run(&state.pool, move |c| users::find_by_email(c, &em)).await?;
    // Existing account: only that signed-in user may accept. New account: name + password.
    let new_user = match &existing {
        Some(u) => {
            if user.0.as_ref().map(|s| s.id) != Some(u.id) {
                return Ok(render::see_other(
                    &req,
                    &format!("/login?next=/invite/{token}"),
                ));
            }
            None
        }
        None => {
            let mut errors = FieldErrors::default();
            let name = PersonName::parse(&form.name)
                .map_err(|e| errors.add("name", e))
                .ok();
            let pw = NewPassword::parse(&form.password, Some(&email))
                .map_err(|e| errors.add("password", e))
                .ok();
            let (Some(name), Some(pw)) = (name, pw) else {
                return accept_view(&req, &state, &user, token, form.name.clone(), errors).await;
            };
            Some((name, password::hash(pw.expose().to_owned()).await?))
        }
    };
    let ip = audit::client_ip(&req);
    let ua = req
        .headers()
        .get("User-Agent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let had_session = user.0.is_some();
    let inv_id = inv.id;
    let (tenant_slug, session_token) = db::run(&state.pool, move |c| {
        diesel::Connection::transaction::<_, AppError, _>(c, |c| {
            let n = diesel::update(
                invitations::table
                    .find(inv_id)
                    .filter(invitations::accepted_at.is_null()),
            )
            .set(invitations::accepted_at.eq(Some(Utc::now())))
            .execute(c)?;
            if n == 0 {
                return Err(AppError::Conflict(
                    "This invitation was already used.".into(),
                ));
            }
            let uid = match (existing, new_user) {
                (Some(u), _) => u.id,
                (None, Some((name, hash))) => users::insert(c, &email, name.as_str(), &hash)?,
                (None, None) => {
                    return Err(AppError::internal(anyhow::anyhow!(
                        "invitation without user"
                    )))
                }
            };
            let role =
                Role::parse(&inv.role).map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
            provision::add_member(c, inv.tenant_id, uid, role)?;
            let schema = TenantSchema::parse(&inv.schema)
                .map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
            let actor = Actor {
                user_id: Some(uid),
                email: Some(email.as_str().to_owned()),
                ip: ip.clone(),
            };
            db::scope::in_tenant(c, &schema, |c| {
                audit::record(
                    c,
                    &actor,
                    &Entry::new("member.joined", "member", uid)
                        .after(json!({ "role": role.as_str(), "invitation": inv_id })),
                )
            })?;
            let slug: String = tenants::table
                .find(inv.tenant_id)
                .select(tenants::slug)
                .first(c)?;
            let token = if had_session {
                None
            } else {
                Some(session::create(
                    c,
                    uid,
                    ip.as_deref(),
                    ua.as_deref(),
                    false,
                )?)
            };
            Ok((slug, token))
        })
    })
    .await?;
    let to = format!("/t/{tenant_slug}");
    let mut resp = render::see_other(&req, &to);
    if let Some(t) = session_token {
        let _ = resp.add_cookie(&session::cookie(t, state.config.secure_cookies()));
    }
    Ok(resp)
}

/// For templates: the codes a role has.
pub fn role_codes(role: Role) -> Vec<&'static str> {
    codes_for(role)
}
