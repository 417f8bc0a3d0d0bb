//! Contacts under an account: roles, invoice and reminder flags, moving to another account.
//! A move changes only the contact's account: invoices stay with the account they were
//! issued to (they keep their own snapshot of recipients).

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::json;

use super::{
    contacts_repo::{self as crepo, Contact, ContactData},
    domain::{ContactRole, Fields},
    handlers::visibility,
    repo,
};
use crate::{
    audit::{self, handlers::History, Actor, Entry},
    auth::permissions::{can, Allowed, Permission},
    error::{AppError, AppResult, FieldErrors},
    tenants::TenantCtx,
    web::{csrf, render, AppState},
};

pub struct ContactView {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub phone: String,
    pub job_title: String,
    pub roles: String,
    pub receives_invoices: bool,
    pub receives_reminders: bool,
    pub archived: bool,
}

fn role_labels(roles: &[String]) -> String {
    roles
        .iter()
        .map(|r| ContactRole::parse(r).map_or_else(|| r.clone(), |x| x.label().to_owned()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<&Contact> for ContactView {
    fn from(c: &Contact) -> Self {
        Self {
            id: c.id,
            name: c.name.clone(),
            email: c.email.clone().unwrap_or_default(),
            phone: c.phone.clone().unwrap_or_default(),
            job_title: c.job_title.clone().unwrap_or_default(),
            roles: role_labels(&c.roles),
            receives_invoices: c.receives_invoices,
            receives_reminders: c.receives_reminders,
            archived: c.status == "archived",
        }
    }
}

/// Form values of a contact.
pub fn fields_of(c: &ContactData) -> Fields {
    let mut f = Fields::default();
    f.set("name", c.name.clone());
    f.set("email", c.email.clone().unwrap_or_default());
    f.set("phone", c.phone.clone().unwrap_or_default());
    f.set("job_title", c.job_title.clone().unwrap_or_default());
    f.set("roles", c.roles.join(";"));
    for r in &c.roles {
        f.set(&format!("role_{r}"), "on");
    }
    f.set(
        "receives_invoices",
        if c.receives_invoices { "yes" } else { "" },
    );
    f.set(
        "receives_reminders",
        if c.receives_reminders { "yes" } else { "" },
    );
    f.set("status", c.status.clone());
    f
}

#[derive(Template)]
#[template(path = "accounts/contacts_partial.html")]
pub struct ContactsPartial {
    pub base: String,
    pub csrf_token: String,
    pub account_id: i64,
    pub contacts: Vec<ContactView>,
    pub can_edit: bool,
    pub form: Fields,
    pub errors: FieldErrors,
    pub roles: Vec<(&'static str, &'static str)>,
}

pub async fn contacts_partial(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    account_id: i64,
    form: Fields,
    errors: FieldErrors,
) -> AppResult<ContactsPartial> {
    let vis = visibility(ctx);
    let (contacts, merged) = ctx
        .db(state, move |c| {
            let a = repo::get_visible(c, account_id, vis)?;
            Ok((crepo::list(c, account_id)?, a.status == "merged"))
        })
        .await?;
    Ok(ContactsPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        account_id,
        contacts: contacts.iter().map(ContactView::from).collect(),
        can_edit: ctx.can(Permission::AccountsEdit) && !merged,
        form,
        errors,
        roles: ContactRole::options(),
    })
}

pub async fn add(
    req: HttpRequest,
    ctx: Allowed<can::AccountsEdit>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let account_id = path.into_inner().1;
    let form = Fields::from_pairs(body.into_inner());
    let (actor, vis) = (Actor::from_ctx(&ctx, &req), visibility(&ctx));
    let f = form.clone();
    let result = ctx
        .db(&state, move |c| {
            let a = repo::get_visible(c, account_id, vis)?;
            if a.status == "merged" {
                return Err(AppError::Conflict(
                    "This account was merged into another.".into(),
                ));
            }
            let mut errors = FieldErrors::default();
            let Some(d) = ContactData::parse(&f, &mut errors) else {
                return Ok(Err(errors));
            };
            let id = crepo::insert(c, account_id, &d)?;
            let mut after = d.audit_json();
            if let Some(o) = after.as_object_mut() {
                o.insert("account_id".into(), json!(account_id));
            }
            audit::record(
                c,
                &actor,
                &Entry::new("contact.created", "contact", id).after(after),
            )?;
            Ok(Ok(id))
        })
        .await?;
    match result {
        Ok(_) if render::is_htmx(&req) => {
            let p = contacts_partial(
                &req,
                &ctx,
                &state,
                account_id,
                Fields::default(),
                FieldErrors::default(),
            )
            .await?;
            render::page(&req, ctx.layout(&req, "Contacts", "accounts"), p)
        }
        Ok(_) => Ok(render::see_other(
            &req,
            &format!("{}/accounts/{account_id}?tab=contacts", ctx.base()),
        )),
        Err(errors) => {
            let p = contacts_partial(&req, &ctx, &state, account_id, form, errors).await?;
            render::page_with_status(
                &req,
                StatusCode::UNPROCESSABLE_ENTITY,
                ctx.layout(&req, "Contacts", "accounts"),
                p,
            )
        }
    }
}

#[derive(Template)]
#[template(path = "accounts/contact_partial.html")]
pub struct ContactPartial {
    pub base: String,
    pub csrf_token: String,
    pub id: i64,
    pub version: i32,
    pub account: (i64, String, String),
    pub form: Fields,
    pub errors: FieldErrors,
    pub move_to: String,
    pub move_error: String,
    pub message: String,
    pub can_edit: bool,
    pub roles: Vec<(&'static str, &'static str)>,
    pub history: History,
}

/// A contact the member may see (through its account), with that account.
fn visible_contact(
    c: &mut diesel::PgConnection,
    id: i64,
    vis: repo::Visibility,
) -> AppResult<(Contact, repo::Account)> {
    let contact = crepo::get(c, id)?.ok_or(AppError::NotFound)?;
    let account = repo::get_visible(c, contact.account_id, vis)?;
    Ok((contact, account))
}

struct Edit {
    form: Option<Fields>,
    errors: FieldErrors,
    move_to: String,
    move_error: String,
    message: String,
}

async fn render_contact(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    id: i64,
    e: Edit,
    status: StatusCode,
) -> AppResult<HttpResponse> {
    let vis = visibility(ctx);
    let (contact, account, history) = ctx
        .db(state, move |c| {
            let (contact, account) = visible_contact(c, id, vis)?;
            let h = audit::handlers::history(c, "contact", &id.to_string())?;
            Ok((contact, account, h))
        })
        .await?;
    let partial = ContactPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        id,
        version: contact.version,
        account: (
            account.id,
            account.account_number.clone(),
            account.display_name.clone(),
        ),
        form: e.form.unwrap_or_else(|| fields_of(&contact.data())),
        errors: e.errors,
        move_to: e.move_to,
        move_error: e.move_error,
        message: e.message,
        can_edit: ctx.can(Permission::AccountsEdit),
        roles: ContactRole::options(),
        history,
    };
    render::page_with_status(
        req,
        status,
        ctx.layout(req, contact.name, "accounts"),
        partial,
    )
}

fn blank_edit() -> Edit {
    Edit {
        form: None,
        errors: FieldErrors::default(),
        move_to: String::new(),
        move_error: String::new(),
        message: String::new(),
    }
}

pub async fn detail(
    req: HttpRequest,
    ctx: Allowed<can::AccountsView>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    render_contact(
        &req,
        &ctx,
        &state,
        path.into_inner().1,
        blank_edit(),
        StatusCode::OK,
    )
    .await
}

pub async fn save(
    req: HttpRequest,
    ctx: Allowed<can::AccountsEdit>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().1;
    let form = Fields::from_pairs(body.into_inner());
    let (actor, vis) = (Actor::from_ctx(&ctx, &req), visibility(&ctx));
    let version: i32 = form.get("version").parse().unwrap_or(-1);
    let f = form.clone();
    let result = ctx
        .db(&state, move |c| {
            let (contact, _) = visible_contact(c, id, vis)?;
            let mut errors = FieldErrors::default();
            let Some(after) = ContactData::parse(&f, &mut errors) else {
                return Ok(Err((errors, String::new())));
            };
            let before = contact.data();
            if before == after {
                return Ok(Ok(()));
            }
            if !crepo::update(c, id, version, &after)? {
                return Ok(Err((errors, "Someone else changed this contact since you opened it; reload to see their changes.".into())));
            }
            audit::record(
                c,
                &actor,
                &Entry::new("contact.updated", "contact", id)
                    .before(before.audit_json())
                    .after(after.audit_json()),
            )?;
            Ok(Ok(()))
        })
        .await?;
    match result {
        Ok(()) => Ok(render::see_other(
            &req,
            &format!("{}/contacts/{id}", ctx.base()),
        )),
        Err((errors, message)) => {
            let status = if message.is_empty() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::CONFLICT
            };
            let e = Edit {
                form: Some(form),
                errors,
                message,
                ..blank_edit()
            };
            render_contact(&req, &ctx, &state, id, e, status).await
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct MoveForm {
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub reason: String,
}

pub async fn move_to(
    req: HttpRequest,
    ctx: Allowed<can::AccountsEdit>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<MoveForm>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().1;
    let form = form.into_inner();
    let (actor, vis) = (Actor::from_ctx(&ctx, &req), visibility(&ctx));
    let number = form.account.trim().to_owned();
    let reason = form.reason.clone();
    let result = ctx
        .db(&state, move |c| {
            let (contact, from) = visible_contact(c, id, vis)?;
            let target = match repo::id_by_number(c, &number)? {
                Some(t) => repo::get_visible(c, t, vis).ok(),
                None => None,
            };
            let Some(target) = target else {
                return Ok(Err(format!(
                    "No account you can see has the number \"{number}\"."
                )));
            };
            if target.status == "merged" {
                return Ok(Err(format!("{number} was merged into another account.")));
            }
            if target.id == from.id {
                return Ok(Err("The contact is already at that account.".into()));
            }
            crepo::set_account(c, id, target.id)?;
            audit::record(
                c,
                &actor,
                &Entry::new("contact.moved", "contact", contact.id)
                    .before(json!({ "account_id": from.id, "account": from.account_number }))
                    .after(json!({ "account_id": target.id, "account": target.account_number }))
                    .reason(Some(reason)),
            )?;
            Ok(Ok(()))
        })
        .await?;
    match result {
        Ok(()) => Ok(render::see_other(
            &req,
            &format!("{}/contacts/{id}", ctx.base()),
        )),
        Err(e) => {
            let edit = Edit {
                move_to: form.account,
                move_error: e,
                ..blank_edit()
            };
            render_contact(
                &req,
                &ctx,
                &state,
                id,
                edit,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}
