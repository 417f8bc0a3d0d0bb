//! Inline editing of an account, one section at a time (htmx swaps the section; without
//! JavaScript the forms post and redirect). Terms have their own permission.

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;

use super::{
    domain::{Addresses, CustomFieldDef, Fields, General, Terms},
    handlers::{members, policy, visibility},
    repo::{self, Account},
    service::{self, Saved},
    views::{self, DuplicateView, Options},
};
use crate::{
    audit::Actor,
    auth::permissions::{can, Allowed, Permission},
    error::{AppError, AppResult, FieldErrors},
    tenants::{repo::Member, TenantCtx},
    web::{csrf, render, AppState},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    General,
    Terms,
    Addresses,
    Custom,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::General, Kind::Terms, Kind::Addresses, Kind::Custom];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::General => "general",
            Kind::Terms => "terms",
            Kind::Addresses => "addresses",
            Kind::Custom => "custom",
        }
    }

    pub(super) fn title(self) -> &'static str {
        match self {
            Kind::General => "Account",
            Kind::Terms => "Billing terms",
            Kind::Addresses => "Addresses",
            Kind::Custom => "Custom fields",
        }
    }

    fn permission(self) -> Permission {
        if self == Kind::Terms {
            Permission::AccountsEditTerms
        } else {
            Permission::AccountsEdit
        }
    }
}

#[derive(Template)]
#[template(path = "accounts/section_partial.html")]
pub struct SectionPartial {
    pub base: String,
    pub csrf_token: String,
    pub id: i64,
    pub kind: &'static str,
    pub title: &'static str,
    pub editing: bool,
    pub can_edit: bool,
    pub version: i32,
    pub form: Fields,
    pub errors: FieldErrors,
    pub opts: Options,
    pub defs: Vec<CustomFieldDef>,
    pub duplicates: Vec<DuplicateView>,
    pub display: Vec<(String, String)>,
    pub message: String,
}

/// Everything a section needs that lives in the tenant schema.
pub(super) struct Loaded {
    pub(super) account: Account,
    pub(super) crm_ids: Vec<(String, String)>,
    pub(super) parent: Option<(i64, String, String)>,
    pub(super) bill_to: Option<(i64, String, String)>,
    pub(super) defs: Vec<CustomFieldDef>,
}

fn load(conn: &mut diesel::PgConnection, account: Account) -> AppResult<Loaded> {
    let crm_ids = repo::external_ids(conn, account.id)?;
    let parent = match account.parent_id {
        Some(p) => repo::get(conn, p)?.map(|p| (p.id, p.account_number, p.display_name)),
        None => None,
    };
    let payer = repo::bill_to(conn, account.id)?;
    let bill_to =
        (payer.id != account.id).then_some((payer.id, payer.account_number, payer.display_name));
    Ok(Loaded {
        account,
        crm_ids,
        parent,
        bill_to,
        defs: repo::custom_field_defs(conn)?,
    })
}

/// A section in edit mode: the submitted values (stored ones when `None`) and what to say.
#[derive(Default)]
pub(super) struct Editing {
    form: Option<Fields>,
    errors: FieldErrors,
    duplicates: Vec<DuplicateView>,
    message: String,
}

fn section(
    req: &HttpRequest,
    ctx: &TenantCtx,
    kind: Kind,
    l: &Loaded,
    members: &[Member],
    editing: Option<Editing>,
) -> SectionPartial {
    let stored = || {
        views::fields_of(
            &l.account.data(l.crm_ids.clone()),
            l.parent.as_ref().map(|(_, n, _)| n.as_str()),
            members,
            &l.defs,
            false,
        )
    };
    let (editing, e) = match editing {
        Some(e) => (true, e),
        None => (false, Editing::default()),
    };
    let (form, errors, duplicates, message) = (
        e.form.unwrap_or_else(stored),
        e.errors,
        e.duplicates,
        e.message,
    );
    SectionPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        id: l.account.id,
        kind: kind.as_str(),
        title: kind.title(),
        editing,
        can_edit: ctx.can(kind.permission()) && l.account.status != "merged",
        version: l.account.version,
        form,
        errors,
        opts: Options::new(ctx, members),
        defs: l.defs.clone(),
        duplicates,
        display: views::section_facts(kind, l, members),
        message,
    }
}

/// The overview's sections, read-only.
pub async fn sections(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    account: &Account,
    members: &[Member],
) -> AppResult<Vec<SectionPartial>> {
    let a = account.clone();
    let l = ctx.db(state, move |c| load(c, a)).await?;
    Ok(Kind::ALL
        .iter()
        .filter(|k| **k != Kind::Custom || !l.defs.is_empty())
        .map(|k| section(req, ctx, *k, &l, members, None))
        .collect())
}

async fn render_section(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    id: i64,
    kind: Kind,
    editing: Option<Editing>,
    status: StatusCode,
) -> AppResult<HttpResponse> {
    let members = members(state, ctx.tenant.id).await?;
    let vis = visibility(ctx);
    let l = ctx
        .db(state, move |c| {
            let a = repo::get_visible(c, id, vis)?;
            load(c, a)
        })
        .await?;
    let partial = section(req, ctx, kind, &l, &members, editing);
    render::page_with_status(
        req,
        status,
        ctx.layout(req, kind.title(), "accounts"),
        partial,
    )
}

fn kind_of(raw: &str) -> AppResult<Kind> {
    Kind::ALL
        .into_iter()
        .find(|k| k.as_str() == raw)
        .ok_or(AppError::NotFound)
}

pub async fn show(
    req: HttpRequest,
    ctx: Allowed<can::AccountsView>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64, String)>,
) -> AppResult<HttpResponse> {
    let (_, id, kind) = path.into_inner();
    render_section(
        &req,
        &ctx,
        &state,
        id,
        kind_of(&kind)?,
        None,
        StatusCode::OK,
    )
    .await
}

async fn edit_form(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    id: i64,
    kind: Kind,
) -> AppResult<HttpResponse> {
    let members = members(state, ctx.tenant.id).await?;
    let vis = visibility(ctx);
    let l = ctx
        .db(state, move |c| {
            let a = repo::get_visible(c, id, vis)?;
            load(c, a)
        })
        .await?;
    if l.account.status == "merged" {
        return Err(AppError::Conflict(
            "This account was merged into another.".into(),
        ));
    }
    let partial = section(req, ctx, kind, &l, &members, Some(Editing::default()));
    render::page(req, ctx.layout(req, kind.title(), "accounts"), partial)
}

enum Outcome {
    Done,
    Again(FieldErrors, Vec<DuplicateView>, String, StatusCode),
}

async fn save(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    id: i64,
    kind: Kind,
    form: Fields,
) -> AppResult<HttpResponse> {
    let members = members(state, ctx.tenant.id).await?;
    let (actor, policy, vis) = (Actor::from_ctx(ctx, req), policy(ctx), visibility(ctx));
    let confirmed = form.flag("confirm_duplicates");
    let version: i32 = form.get("version").parse().unwrap_or(-1);
    let f = form.clone();
    let m2 = members.clone();
    let outcome = ctx
        .db(state, move |c| {
            let a = repo::get_visible(c, id, vis)?;
            if a.status == "merged" {
                return Err(AppError::Conflict("This account was merged into another.".into()));
            }
            let before = a.data(repo::external_ids(c, id)?);
            let mut after = before.clone();
            let mut errors = FieldErrors::default();
            match kind {
                Kind::General => {
                    if let Some(g) = General::parse(&f, &mut errors) {
                        service::apply_general(c, &mut after, g, &m2, policy, Some(id), &mut errors)?;
                    }
                }
                Kind::Terms => {
                    if let Some(t) = Terms::parse(&f, &before.currency, &mut errors) {
                        service::apply_terms(&mut after, t, &mut errors);
                    }
                }
                Kind::Addresses => {
                    if let Some(ad) = Addresses::parse(&f, &mut errors) {
                        service::apply_addresses(&mut after, ad);
                    }
                }
                Kind::Custom => {
                    let defs = repo::custom_field_defs(c)?;
                    let values = super::domain::parse_custom(&f, &defs, &mut errors);
                    service::apply_custom(&mut after, &defs, values);
                }
            }
            if !errors.is_empty() {
                return Ok(Outcome::Again(errors, Vec::new(), String::new(), StatusCode::UNPROCESSABLE_ENTITY));
            }
            match service::update(c, &actor, id, version, &before, &after, confirmed)? {
                Saved::Done(_) => {
                    service::note_hierarchy_change(c, &actor, id, before.parent_id, after.parent_id)?;
                    Ok(Outcome::Done)
                }
                Saved::Duplicates(m) => {
                    let ids: Vec<i64> = m.iter().map(|x| x.0).collect();
                    let s = repo::summaries(c, &ids)?;
                    Ok(Outcome::Again(
                        FieldErrors::default(),
                        views::duplicate_views(&m, &s, &m2),
                        String::new(),
                        StatusCode::UNPROCESSABLE_ENTITY,
                    ))
                }
                Saved::Stale => Ok(Outcome::Again(
                    FieldErrors::default(),
                    Vec::new(),
                    "Someone else changed this account since you opened the form. Cancel to see their changes, then edit again.".into(),
                    StatusCode::CONFLICT,
                )),
            }
        })
        .await?;
    match outcome {
        Outcome::Done if render::is_htmx(req) => {
            render_section(req, ctx, state, id, kind, None, StatusCode::OK).await
        }
        Outcome::Done => Ok(render::see_other(
            req,
            &format!("{}/accounts/{id}", ctx.base()),
        )),
        Outcome::Again(errors, dups, message, status) => {
            render_section(
                req,
                ctx,
                state,
                id,
                kind,
                Some(Editing {
                    form: Some(form),
                    errors,
                    duplicates: dups,
                    message,
                }),
                status,
            )
            .await
        }
    }
}

/// The edit form and save handler of one section, each demanding the section's permission.
macro_rules! section_handlers {
    ($($edit:ident, $save:ident, $perm:ident, $kind:expr;)*) => {$(
        pub async fn $edit(
            req: HttpRequest,
            ctx: Allowed<can::$perm>,
            state: web::Data<AppState>,
            path: web::Path<(String, i64)>,
        ) -> AppResult<HttpResponse> {
            edit_form(&req, &ctx, &state, path.into_inner().1, $kind).await
        }

        pub async fn $save(
            req: HttpRequest,
            ctx: Allowed<can::$perm>,
            state: web::Data<AppState>,
            path: web::Path<(String, i64)>,
            body: web::Form<Vec<(String, String)>>,
        ) -> AppResult<HttpResponse> {
            let form = Fields::from_pairs(body.into_inner());
            save(&req, &ctx, &state, path.into_inner().1, $kind, form).await
        }
    )*};
}

section_handlers!(
    edit_general, save_general, AccountsEdit, Kind::General;
    edit_terms, save_terms, AccountsEditTerms, Kind::Terms;
    edit_addresses, save_addresses, AccountsEdit, Kind::Addresses;
    edit_custom, save_custom, AccountsEdit, Kind::Custom;
);
