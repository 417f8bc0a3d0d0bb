//! Account list, creation and the detail page with its tabs.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::{filters::HtmlSafeOutput, Template};
use serde::Deserialize;

use super::{
    domain::{Addresses, CustomFieldDef, Fields, General, Terms, TERMS_FIELDS},
    edit::{self, SectionPartial},
    repo::{self, Visibility},
    service::{self, Policy, Saved},
    views::{self, DuplicateView, Options, Row},
};
use crate::{
    audit::{self, handlers::History, Actor},
    auth::permissions::{can, Allowed, Permission},
    db,
    error::{AppError, AppResult, FieldErrors},
    tenants::{repo::Member, TenantCtx},
    web::{csrf, render, AppState},
};

pub const PER_PAGE: i64 = 50;

pub fn visibility(ctx: &TenantCtx) -> Visibility {
    Visibility {
        owner_only: (ctx.role == crate::auth::Role::Sales).then_some(ctx.user.id),
    }
}

pub fn policy(ctx: &TenantCtx) -> Policy {
    Policy {
        terms: ctx.can(Permission::AccountsEditTerms),
        owner_only: visibility(ctx).owner_only,
    }
}

pub async fn members(state: &AppState, tenant_id: i64) -> AppResult<Vec<Member>> {
    db::run(&state.pool, move |c| {
        crate::tenants::repo::members(c, tenant_id)
    })
    .await
}

/// The tenant's billing currency for new accounts.
pub fn default_currency(conn: &mut diesel::PgConnection) -> AppResult<String> {
    use diesel::prelude::*;

    use crate::db::schema::tenant::settings;
    let v: Option<serde_json::Value> = settings::table
        .filter(settings::key.eq("company.currency"))
        .select(settings::value)
        .first(conn)
        .optional()?;
    Ok(v.and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "USD".into()))
}

#[derive(Debug, Deserialize, Default)]
pub struct ListParams {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub dir: String,
    #[serde(default)]
    pub page: i64,
}

impl ListParams {
    pub fn query(&self, per_page: i64) -> repo::ListQuery {
        repo::ListQuery {
            q: self.q.chars().take(100).collect(),
            owner: self.owner.parse().ok(),
            status: (!self.status.is_empty()).then(|| self.status.clone()),
            currency: (!self.currency.is_empty()).then(|| self.currency.to_uppercase()),
            parent: None,
            sort: if repo::SORTS.contains(&self.sort.as_str()) {
                self.sort.clone()
            } else {
                "name".into()
            },
            desc: self.dir == "desc",
            page: self.page.max(0),
            per_page,
        }
    }

    /// The query string of these filters with another sort or page.
    pub fn link(&self, sort: &str, page: i64) -> String {
        let dir = if sort == self.sort && self.dir != "desc" {
            "desc"
        } else if sort == self.sort {
            "asc"
        } else {
            self.dir.as_str()
        };
        serde_urlencoded::to_string([
            ("q", self.q.as_str()),
            ("owner", self.owner.as_str()),
            ("status", self.status.as_str()),
            ("currency", self.currency.as_str()),
            ("sort", sort),
            ("dir", dir),
            ("page", &page.to_string()),
        ])
        .unwrap_or_default()
    }

    pub fn export_link(&self) -> String {
        serde_urlencoded::to_string([
            ("q", self.q.as_str()),
            ("owner", self.owner.as_str()),
            ("status", self.status.as_str()),
            ("currency", self.currency.as_str()),
        ])
        .unwrap_or_default()
    }
}

#[derive(Template)]
#[template(path = "accounts/list_partial.html")]
pub struct ListPartial {
    pub base: String,
    pub rows: Vec<Row>,
    pub total: i64,
    pub from: i64,
    pub to: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub params: ListParams,
    pub opts: Options,
    pub can_create: bool,
}

pub async fn list(
    req: HttpRequest,
    ctx: Allowed<can::AccountsView>,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> AppResult<HttpResponse> {
    let params = params.into_inner();
    let members = members(&state, ctx.tenant.id).await?;
    let (query, vis) = (params.query(PER_PAGE), visibility(&ctx));
    let sort = query.sort.clone();
    let (accounts, total) = ctx.db(&state, move |c| repo::list(c, &query, vis)).await?;
    let page = params.page.max(0);
    let from = page * PER_PAGE;
    let shown = i64::try_from(accounts.len()).unwrap_or(0);
    let partial = ListPartial {
        base: ctx.base(),
        rows: accounts.iter().map(|a| Row::new(a, &members)).collect(),
        total,
        from: if shown == 0 { 0 } else { from + 1 },
        to: from + shown,
        prev: (page > 0).then(|| params.link(&sort, page - 1)),
        next: (from + shown < total).then(|| params.link(&sort, page + 1)),
        opts: Options::new(&ctx, &members),
        can_create: ctx.can(Permission::AccountsCreate),
        params,
    };
    render::page(&req, ctx.layout(&req, "Accounts", "accounts"), partial)
}

#[derive(Template)]
#[template(path = "accounts/new_partial.html")]
pub struct NewPartial {
    pub base: String,
    pub csrf_token: String,
    pub form: Fields,
    pub errors: FieldErrors,
    pub opts: Options,
    pub defs: Vec<CustomFieldDef>,
    pub duplicates: Vec<DuplicateView>,
    pub default_terms: String,
}

async fn render_new(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    form: Fields,
    errors: FieldErrors,
    duplicates: Vec<DuplicateView>,
) -> AppResult<HttpResponse> {
    let members = members(state, ctx.tenant.id).await?;
    let (defs, currency) = ctx
        .db(state, |c| {
            Ok((repo::custom_field_defs(c)?, default_currency(c)?))
        })
        .await?;
    let status = render::status_for(errors.is_empty() && duplicates.is_empty());
    let partial = NewPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        form,
        errors,
        opts: Options::new(ctx, &members),
        defs,
        duplicates,
        default_terms: format!("{currency}, net 30, invoices by email"),
    };
    render::page_with_status(
        req,
        status,
        ctx.layout(req, "New account", "accounts"),
        partial,
    )
}

pub async fn new_form(
    req: HttpRequest,
    ctx: Allowed<can::AccountsCreate>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    // Start from the workspace defaults, so the currency picker does not open on the first
    // currency of the list.
    let currency = ctx.db(&state, default_currency).await?;
    let mut form = views::fields_of(&service::blank(&currency), None, &[], &[], false);
    if ctx.role == crate::auth::Role::Sales {
        form.set("owner", ctx.user.id.to_string());
    }
    render_new(&req, &ctx, &state, form, FieldErrors::default(), Vec::new()).await
}

/// Refuses terms fields from a member who may not set them (they never see those inputs).
pub fn check_terms_allowed(ctx: &TenantCtx, f: &Fields) -> AppResult<()> {
    if !ctx.can(Permission::AccountsEditTerms) && TERMS_FIELDS.iter().any(|n| !f.get(n).is_empty())
    {
        return Err(AppError::Forbidden);
    }
    Ok(())
}

pub async fn create(
    req: HttpRequest,
    ctx: Allowed<can::AccountsCreate>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let form = Fields::from_pairs(body.into_inner());
    check_terms_allowed(&ctx, &form)?;
    let members = members(&state, ctx.tenant.id).await?;
    let (actor, policy, confirmed) = (
        Actor::from_ctx(&ctx, &req),
        policy(&ctx),
        form.flag("confirm_duplicates"),
    );
    let f = form.clone();
    let members2 = members.clone();
    let outcome = ctx
        .db(&state, move |c| {
            let mut errors = FieldErrors::default();
            let defs = repo::custom_field_defs(c)?;
            let mut d = service::blank(&default_currency(c)?);
            let general = General::parse(&f, &mut errors);
            let terms = Terms::parse(&f, &d.currency.clone(), &mut errors);
            let addresses = Addresses::parse(&f, &mut errors);
            let custom = super::domain::parse_custom(&f, &defs, &mut errors);
            if let Some(t) = terms {
                if let Some(g) = general {
                    service::apply_general(c, &mut d, g, &members2, policy, None, &mut errors)?;
                }
                service::apply_terms(&mut d, t, &mut errors);
            }
            if let Some(a) = addresses {
                service::apply_addresses(&mut d, a);
            }
            service::apply_custom(&mut d, &defs, custom);
            if !errors.is_empty() {
                return Ok(Err((errors, Vec::new())));
            }
            match service::create(c, &actor, d.clone(), confirmed, None)? {
                Saved::Done(id) => {
                    service::note_hierarchy_change(c, &actor, id, None, d.parent_id)?;
                    Ok(Ok(id))
                }
                Saved::Duplicates(m) => {
                    let ids: Vec<i64> = m.iter().map(|x| x.0).collect();
                    let s = repo::summaries(c, &ids)?;
                    Ok(Err((errors, views::duplicate_views(&m, &s, &members2))))
                }
                Saved::Stale => Err(AppError::Conflict("Please try again.".into())),
            }
        })
        .await?;
    match outcome {
        Ok(id) => Ok(render::see_other(
            &req,
            &format!("{}/accounts/{id}", ctx.base()),
        )),
        Err((errors, dups)) => render_new(&req, &ctx, &state, form, errors, dups).await,
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct DetailParams {
    #[serde(default)]
    pub tab: String,
}

pub const TABS: &[(&str, &str)] = &[
    ("overview", "Overview"),
    ("contacts", "Contacts"),
    ("subscriptions", "Subscriptions"),
    ("invoices", "Invoices"),
    ("payments", "Payments"),
    ("collections", "Collections"),
    ("activity", "Activity"),
];

pub struct TreeRow {
    pub id: i64,
    pub number: String,
    pub name: String,
    pub indent: String,
    pub status: String,
    pub bills_to_parent: bool,
}

#[derive(Template)]
#[template(path = "accounts/detail_partial.html")]
pub struct DetailPartial {
    pub base: String,
    pub csrf_token: String,
    pub id: i64,
    pub number: String,
    pub name: String,
    pub status: String,
    pub status_code: String,
    pub tab: String,
    pub tabs: Vec<(&'static str, &'static str)>,
    pub ancestors: Vec<(i64, String, String)>,
    pub tree: Vec<TreeRow>,
    pub sections: Vec<HtmlSafeOutput<SectionPartial>>,
    pub duplicates: Vec<DuplicateView>,
    pub contacts: Option<HtmlSafeOutput<super::contacts::ContactsPartial>>,
    pub history: Option<History>,
    pub can_merge: bool,
    pub subscriptions: Option<HtmlSafeOutput<crate::subscriptions::handlers::AccountTabPartial>>,
    pub invoices: Option<HtmlSafeOutput<crate::invoicing::list::AccountTabPartial>>,
    pub payments: Option<HtmlSafeOutput<crate::payments::handlers::AccountTabPartial>>,
    pub collections:
        Option<HtmlSafeOutput<crate::dunning::collections::account::AccountTabPartial>>,
}

pub async fn detail(
    req: HttpRequest,
    ctx: Allowed<can::AccountsView>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    params: web::Query<DetailParams>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().1;
    let tab = TABS
        .iter()
        .find(|(t, _)| *t == params.tab)
        .map_or("overview", |t| t.0)
        .to_owned();
    let members = members(&state, ctx.tenant.id).await?;
    let vis = visibility(&ctx);
    // A merged account redirects to the one it was merged into.
    let account = ctx
        .db(&state, move |c| repo::get_visible(c, id, vis))
        .await?;
    if let Some(target) = account.merged_into_id {
        let survivor = ctx
            .db(&state, move |c| repo::merge_chain_end(c, target))
            .await?;
        return Ok(HttpResponse::MovedPermanently()
            .insert_header(("Location", format!("{}/accounts/{survivor}", ctx.base())))
            .finish());
    }
    let sections = edit::sections(&req, &ctx, &state, &account, &members).await?;
    let tab2 = tab.clone();
    let m2 = members.clone();
    let stored = account.clone();
    let (ancestors, tree, duplicates, history) = ctx
        .db(&state, move |c| {
            let ids = repo::ancestors(c, id)?;
            let mut ancestors: Vec<(i64, String, String)> = repo::summaries(c, &ids[1..])?
                .into_iter()
                .map(|(i, n, d, _)| (i, n, d))
                .collect();
            ancestors.sort_by_key(|(i, _, _)| std::cmp::Reverse(ids.iter().position(|x| x == i)));
            let tree = repo::descendants(c, id)?
                .into_iter()
                .map(|(a, depth)| TreeRow {
                    id: a.id,
                    number: a.account_number.clone(),
                    name: a.display_name.clone(),
                    indent: "— ".repeat(usize::try_from(depth - 1).unwrap_or(0)),
                    status: views::status_label(&a.status),
                    bills_to_parent: a.bill_to_parent,
                })
                .collect();
            let probe = stored.data(repo::external_ids(c, id)?).probe();
            let matches = repo::duplicates_of(c, &probe, Some(id))?;
            let ids: Vec<i64> = matches.iter().map(|m| m.0).collect();
            let s = repo::summaries(c, &ids)?;
            let dups = views::duplicate_views(&matches, &s, &m2);
            let history = if tab2 == "activity" {
                Some(audit::handlers::history(c, "account", &id.to_string())?)
            } else {
                None
            };
            Ok((ancestors, tree, dups, history))
        })
        .await?;
    let (subscriptions, invoices, payments) = {
        let (tab3, ctx2, token) = (tab.clone(), ctx.clone(), csrf::token(&req));
        let token2 = token.clone();
        ctx.db(&state, move |c| {
            let subs = if tab3 == "subscriptions" {
                Some(HtmlSafeOutput(crate::subscriptions::handlers::account_tab(
                    c, &ctx2, id,
                )?))
            } else {
                None
            };
            let invs = if tab3 == "invoices" || tab3 == "overview" {
                Some(HtmlSafeOutput(crate::invoicing::list::account_tab(
                    c,
                    &ctx2,
                    token,
                    id,
                    tab3 == "overview",
                )?))
            } else {
                None
            };
            let pays = if tab3 == "payments" {
                Some(HtmlSafeOutput(crate::payments::handlers::account_tab(
                    c,
                    &ctx2,
                    token2,
                    id,
                    Fields::default(),
                    FieldErrors::default(),
                )?))
            } else {
                None
            };
            Ok((subs, invs, pays))
        })
        .await?
    };
    let collections = if tab == "collections" {
        let (ctx2, token, m) = (ctx.clone(), csrf::token(&req), members.clone());
        Some(HtmlSafeOutput(
            ctx.db(&state, move |c| {
                crate::dunning::collections::account::account_tab(
                    c,
                    &ctx2,
                    token,
                    id,
                    &m,
                    Fields::default(),
                    FieldErrors::default(),
                )
            })
            .await?,
        ))
    } else {
        None
    };
    let contacts = if tab == "contacts" {
        Some(HtmlSafeOutput(
            super::contacts::contacts_partial(
                &req,
                &ctx,
                &state,
                id,
                Fields::default(),
                FieldErrors::default(),
            )
            .await?,
        ))
    } else {
        None
    };
    let partial = DetailPartial {
        base: ctx.base(),
        csrf_token: csrf::token(&req),
        id,
        number: account.account_number.clone(),
        name: account.display_name.clone(),
        status: views::status_label(&account.status),
        status_code: account.status.clone(),
        tab,
        tabs: TABS.to_vec(),
        ancestors,
        tree,
        sections: sections.into_iter().map(HtmlSafeOutput).collect(),
        duplicates,
        contacts,
        history,
        can_merge: ctx.can(Permission::AccountsMerge),
        subscriptions,
        invoices,
        payments,
        collections,
    };
    let title = account.display_name.clone();
    render::page(&req, ctx.layout(&req, title, "accounts"), partial)
}
