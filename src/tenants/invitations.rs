//! Invitations: an owner or admin invites an email with a role; the invitee gets a single-use
//! link valid for 7 days (sent through the outbox, never shown in the app) and joins with a
//! new account or, if the email already has one, by signing in as it. Accepting is atomic:
//! the invitation is marked used in the same transaction that adds the membership.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{Duration, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, RunQueryDsl};
use serde::Deserialize;
use serde_json::json;

use super::{members::render_members, provision, repo};
use crate::{
    audit::{self, Actor, Entry},
    auth::{
        domain::{NewPassword, PersonName},
        extract::MaybeUser,
        password,
        permissions::{can, Allowed},
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
                attach_invoice_pdf: None,
                attach_invoice_pdfs: Vec::new(),
                attach_statement: None,
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

// Accepting an invitation (public link).

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
        .filter(repo::invitation_pending(Utc::now()))
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
    let status = render::status_for(errors.is_empty());
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
