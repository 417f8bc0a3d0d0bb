//! Subscription pages: the editor with a live preview of the first invoice, the detail page
//! with items, amendment history and invoices, amendments and usage entry.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::json;

use super::{
    amend::{self, AmendInput, AmendKind},
    charges::{self, Timing},
    domain::{Collection, SubscriptionInput, CYCLES, FORM_ITEMS},
    repo::{self, Amendment, Subscription},
};
use crate::{
    accounts::{
        domain::{Fields, TermsKind},
        handlers::visibility,
        repo as accounts,
    },
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed, Permission},
    catalog::{handlers::terms_summary, repo as catalog},
    db::schema::tenant::usage_records,
    error::{AppError, AppResult, FieldErrors},
    invoicing::{billrun::links_for, build, handlers::today, repo as invoices},
    money::Currency,
    tenants::TenantCtx,
    web::{csrf, render, AppState},
};

/// `(price id, "Product · nickname — terms")` for the account's currency.
fn price_options(
    conn: &mut diesel::PgConnection,
    currency: &str,
) -> AppResult<Vec<(String, String)>> {
    let products = catalog::list_products(conn, false)?;
    Ok(
        catalog::prices_with_current(conn, None, Some(currency), true)?
            .into_iter()
            .filter_map(|p| {
                let product = products.iter().find(|x| x.id == p.price.product_id)?;
                let terms = p.current.as_ref().map(terms_summary).unwrap_or_default();
                Some((
                    p.price.id.to_string(),
                    format!("{} · {} — {}", product.name, p.price.nickname, terms),
                ))
            })
            .collect(),
    )
}

pub struct PreviewLine {
    pub description: String,
    pub period: String,
    pub quantity: String,
    pub amount: String,
}

#[derive(Template)]
#[template(path = "subscriptions/preview_partial.html")]
pub struct PreviewPartial {
    pub currency: String,
    pub period: String,
    pub lines: Vec<PreviewLine>,
    pub subtotal: String,
    pub tax: String,
    pub total: String,
    pub message: String,
}

fn period_label(start: NaiveDate, last: NaiveDate) -> String {
    format!(
        "{} – {}",
        start.format("%-d %b %Y"),
        last.format("%-d %b %Y")
    )
}

/// The first invoice this form would produce, computed with the real charging code.
fn preview(
    conn: &mut diesel::PgConnection,
    account_id: i64,
    currency: &str,
    input: &SubscriptionInput,
) -> AppResult<PreviewPartial> {
    let cur = Currency::parse(currency).map_err(|m| AppError::internal(anyhow::anyhow!(m)))?;
    let empty = |message: &str| PreviewPartial {
        currency: currency.to_owned(),
        period: String::new(),
        lines: Vec::new(),
        subtotal: String::new(),
        tax: String::new(),
        total: String::new(),
        message: message.to_owned(),
    };
    let resolved = match repo::resolve_items(conn, &input.items, currency)? {
        Ok(r) => r,
        Err(_) => {
            return Ok(empty(
                "Choose prices in the account's currency to see the first invoice.",
            ))
        }
    };
    let versions = catalog::versions_by_id(
        conn,
        &resolved.iter().map(|r| r.version_id).collect::<Vec<_>>(),
    )?;
    let products = catalog::list_products(conn, true)?;
    let mut items = Vec::new();
    for (i, (inp, r)) in input.items.iter().zip(&resolved).enumerate() {
        let (Some(v), Some(p)) = (
            versions.iter().find(|v| v.id == r.version_id),
            products.iter().find(|p| p.id == r.product_id),
        ) else {
            continue;
        };
        items.push(charges::ItemTerms {
            item_id: i64::try_from(i).unwrap_or(0),
            product_id: p.id,
            price_version_id: v.id,
            product_name: p.name.clone(),
            quantity: inp.quantity,
            discount_percent: inp.discount_percent,
            discount_amount: inp.discount_amount,
            start: input.start_date,
            end: inp.end_date,
            terms: v.terms.clone(),
            tax_category: crate::invoicing::domain::TaxCategory::parse(&p.tax_category)
                .unwrap_or(crate::invoicing::domain::TaxCategory::Standard),
            gl_account: p.gl_revenue_account.clone(),
        });
    }
    let plan = charges::Plan {
        schedule: input.schedule(),
        end: input.end_date,
        trial_end: input.trial_end,
        timing: input.timing,
    };
    let end_exclusive = plan.end.and_then(|e| e.succ_opt());
    let Some(first) = plan
        .schedule
        .period_containing(input.start_date, end_exclusive)
    else {
        return Ok(empty("This schedule has no billing period."));
    };
    let drafts = charges::lines_for(&plan, &first, &items, &|_, _| Decimal::ZERO);
    let payer = build::Payer::of(&accounts::bill_to(conn, account_id)?);
    let rates = invoices::tax_rates(conn)?;
    let built = build::build(
        build::Header {
            kind: "invoice",
            source: "bill_run",
            account_id,
            subscription_id: None,
            period: Some((first.service.start, first.service.last_day())),
            bill_run_id: None,
            related_invoice_id: None,
            currency: cur,
            issue_date: first.service.start,
            terms: payer.terms,
            po_number: None,
            notes: String::new(),
        },
        &payer,
        rates,
        &drafts,
    );
    Ok(PreviewPartial {
        currency: currency.to_owned(),
        period: period_label(first.service.start, first.service.last_day()),
        lines: built
            .lines
            .iter()
            .map(|l| PreviewLine {
                description: l.description.clone(),
                period: match (l.period_start, l.period_end) {
                    (Some(s), Some(e)) => period_label(s, e),
                    _ => String::new(),
                },
                quantity: l.quantity.normalize().to_string(),
                amount: cur.format(l.net),
            })
            .collect(),
        subtotal: cur.format(built.invoice.subtotal),
        tax: cur.format(built.invoice.tax_total),
        total: cur.format(built.invoice.total),
        message: if plan.timing == Timing::Arrears {
            "Billed in arrears: this invoice is issued when the period ends. Usage is added from what is recorded.".into()
        } else {
            "Usage is billed on the following invoice from what is recorded.".into()
        },
    })
}

#[derive(Template)]
#[template(path = "subscriptions/new_partial.html")]
pub struct NewPartial {
    pub base: String,
    pub csrf_token: String,
    pub account_id: i64,
    pub account_name: String,
    pub currency: String,
    pub form: Fields,
    pub errors: FieldErrors,
    pub prices: Vec<(String, String)>,
    pub cycles: Vec<(&'static str, &'static str)>,
    pub timings: Vec<(&'static str, &'static str)>,
    pub collections: Vec<(&'static str, &'static str)>,
    pub terms_kinds: Vec<(&'static str, &'static str)>,
    pub rows: Vec<usize>,
    pub preview: Option<askama::filters::HtmlSafeOutput<PreviewPartial>>,
}

async fn render_new(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    account_id: i64,
    form: Fields,
    errors: FieldErrors,
) -> AppResult<HttpResponse> {
    let vis = visibility(ctx);
    let (account, prices) = ctx
        .db(state, move |c| {
            let a = accounts::get_visible(c, account_id, vis)?;
            let p = price_options(c, &a.currency)?;
            Ok((a, p))
        })
        .await?;
    let status = render::status_for(errors.is_empty());
    let partial = NewPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        account_id,
        account_name: account.display_name.clone(),
        currency: account.currency.clone(),
        form,
        errors,
        prices,
        cycles: CYCLES.to_vec(),
        timings: Timing::options(),
        collections: Collection::options(),
        terms_kinds: TermsKind::options(),
        rows: (0..FORM_ITEMS).collect(),
        preview: None,
    };
    render::page_with_status(
        req,
        status,
        ctx.layout(
            req,
            format!("New subscription for {}", account.display_name),
            "accounts",
        ),
        partial,
    )
}

pub async fn new_form(
    req: HttpRequest,
    ctx: Allowed<can::SubscriptionsManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let mut form = Fields::default();
    form.set("start_date", today().to_string());
    form.set("cycle", "1");
    form.set("timing", "advance");
    form.set("term_months", "12");
    form.set("auto_renew", "yes");
    form.set("collection_method", "send_invoice");
    render_new(&req, &ctx, &state, path.1, form, FieldErrors::default()).await
}

/// htmx: recomputes the first invoice as the form changes.
pub async fn preview_form(
    _req: HttpRequest,
    ctx: Allowed<can::SubscriptionsManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let account_id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let vis = visibility(&ctx);
    let partial = ctx
        .db(&state, move |c| {
            let a = accounts::get_visible(c, account_id, vis)?;
            match SubscriptionInput::parse(&form, today()) {
                Ok(input) => preview(c, a.id, &a.currency, &input),
                Err(e) => Ok(PreviewPartial {
                    currency: a.currency.clone(),
                    period: String::new(),
                    lines: Vec::new(),
                    subtotal: String::new(),
                    tax: String::new(),
                    total: String::new(),
                    message: e.0.first().map(|(_, m)| m.clone()).unwrap_or_default(),
                }),
            }
        })
        .await?;
    render::fragment(partial)
}

pub async fn create(
    req: HttpRequest,
    ctx: Allowed<can::SubscriptionsManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let account_id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let mut input = match SubscriptionInput::parse(&form, today()) {
        Ok(i) => i,
        Err(e) => return render_new(&req, &ctx, &state, account_id, form, e).await,
    };
    input.apply_term_end();
    let actor = Actor::from_ctx(&ctx, &req);
    let vis = visibility(&ctx);
    let created = ctx
        .db(&state, move |c| {
            let account = accounts::get_visible(c, account_id, vis)?;
            super::service::create(c, &actor, &account, &input)
        })
        .await?;
    match created {
        Ok(id) => Ok(render::see_other(
            &req,
            &format!("{}/subscriptions/{id}", ctx.base()),
        )),
        Err(e) => render_new(&req, &ctx, &state, account_id, form, e).await,
    }
}

pub struct ItemView {
    pub id: i64,
    pub product: String,
    pub terms: String,
    pub version: i32,
    pub quantity: String,
    pub discount: String,
    pub from: String,
    pub until: String,
    pub active: bool,
    pub usage: bool,
}

#[derive(Template)]
#[template(path = "subscriptions/detail_partial.html")]
pub struct DetailPartial {
    pub base: String,
    pub csrf_token: String,
    pub sub: Subscription,
    pub account_name: String,
    pub cycle: String,
    pub next_bill: String,
    pub items: Vec<ItemView>,
    pub has_usage: bool,
    pub amendments: Vec<Amendment>,
    pub invoices: Vec<(i64, String, String, String, String)>,
    pub prices: Vec<(String, String)>,
    pub kinds: Vec<(&'static str, &'static str)>,
    pub can_manage: bool,
    pub form: Fields,
    pub errors: FieldErrors,
    pub message: String,
    pub term_end: String,
}

pub async fn render_detail(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    id: i64,
    form: Fields,
    errors: FieldErrors,
    message: String,
) -> AppResult<HttpResponse> {
    let vis = visibility(ctx);
    let (sub, account, rows, amendments, prices, invs, products, versions) = ctx
        .db(state, move |c| {
            let sub = repo::get(c, id)?;
            let account = accounts::get_visible(c, sub.account_id, vis)?;
            let rows = repo::items_of(c, id)?;
            let amendments = repo::amendments_of(c, id)?;
            let prices = price_options(c, &sub.currency)?;
            let invs = crate::invoicing::repo::for_subscription(c, id)?;
            let products = catalog::list_products(c, true)?;
            let vids: Vec<i64> = rows.iter().map(|r| r.price_version_id).collect();
            let versions = catalog::versions_by_id(c, &vids)?;
            Ok((
                sub, account, rows, amendments, prices, invs, products, versions,
            ))
        })
        .await?;
    let money = Currency::formatter(&sub.currency);
    let today = today();
    let items: Vec<ItemView> = rows
        .iter()
        .map(|r| {
            let v = versions.iter().find(|v| v.id == r.price_version_id);
            ItemView {
                id: r.id,
                product: products
                    .iter()
                    .find(|p| p.id == r.product_id)
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                terms: v.map(terms_summary).unwrap_or_default(),
                version: v.map_or(0, |v| v.version),
                quantity: r.quantity.normalize().to_string(),
                discount: match (r.discount_percent, r.discount_amount) {
                    (Some(p), _) => format!("{}%", p.normalize()),
                    (None, Some(a)) => money(a),
                    _ => String::new(),
                },
                from: r.start_date.to_string(),
                until: r.end_date.map(|d| d.to_string()).unwrap_or_default(),
                active: r.start_date <= today.max(sub.start_date)
                    && r.end_date.is_none_or(|e| e >= today.max(sub.start_date)),
                usage: v.is_some_and(|v| v.terms.model.is_usage()),
            }
        })
        .collect();
    let partial = DetailPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        account_name: account.display_name.clone(),
        cycle: sub.cycle_label(),
        next_bill: amend::next_bill_date(&sub)
            .map(|d| d.to_string())
            .unwrap_or_else(|| "—".into()),
        term_end: amend::term_end(&sub, today.max(sub.start_date)).to_string(),
        has_usage: items.iter().any(|i: &ItemView| i.usage),
        items,
        amendments,
        invoices: invs
            .iter()
            .map(|i| {
                (
                    i.id,
                    i.label(),
                    i.status.clone(),
                    i.period_start.map(|d| d.to_string()).unwrap_or_default(),
                    money(i.total),
                )
            })
            .collect(),
        prices,
        kinds: AmendKind::options(),
        can_manage: ctx.can(Permission::SubscriptionsManage) && sub.status == "active",
        form,
        errors,
        message,
        sub,
    };
    let status = render::status_for(partial.errors.is_empty());
    let title = partial.sub.number.clone();
    render::page_with_status(req, status, ctx.layout(req, title, "accounts"), partial)
}

pub async fn detail(
    req: HttpRequest,
    ctx: Allowed<can::AccountsView>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let mut form = Fields::default();
    form.set("effective_date", today().to_string());
    render_detail(
        &req,
        &ctx,
        &state,
        path.1,
        form,
        FieldErrors::default(),
        String::new(),
    )
    .await
}

pub async fn amend_submit(
    req: HttpRequest,
    ctx: Allowed<can::SubscriptionsManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let input = match AmendInput::parse(&form, today()) {
        Ok(i) => i,
        Err(e) => return render_detail(&req, &ctx, &state, id, form, e, String::new()).await,
    };
    let actor = Actor::from_ctx(&ctx, &req);
    let links = links_for(&state, ctx.tenant.id, &ctx.tenant.slug);
    let vis = visibility(&ctx);
    let result = ctx
        .db(&state, move |c| {
            let sub = repo::get(c, id)?;
            accounts::get_visible(c, sub.account_id, vis)?;
            let cancels = matches!(input.kind, AmendKind::CancelNow | AmendKind::CancelAtTermEnd);
            if !cancels {
                if let Some(why) = crate::dunning::repo::hold_reason(c, sub.account_id)? {
                    let mut e = FieldErrors::default();
                    e.add("kind", format!("The account is on hold ({why}); only cancellation is possible until the hold is lifted."));
                    return Ok(Err(e));
                }
            }
            match amend::apply(c, &actor, &links, id, &input, today()) {
                Ok(o) => Ok(Ok(o)),
                Err(AppError::Validation(e)) => Ok(Err(e)),
                Err(e) => Err(e),
            }
        })
        .await?;
    match result {
        Ok(_) => Ok(render::see_other(
            &req,
            &format!("{}/subscriptions/{id}", ctx.base()),
        )),
        Err(e) => render_detail(&req, &ctx, &state, id, form, e, String::new()).await,
    }
}

/// Records usage by hand. The external id makes a double submit harmless.
pub async fn add_usage(
    req: HttpRequest,
    ctx: Allowed<can::SubscriptionsManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    use diesel::prelude::*;
    let id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let mut e = FieldErrors::default();
    let item_id = form.get("usage_item").parse::<i64>().ok();
    if item_id.is_none() {
        e.add("usage_item", "Choose the usage item.");
    }
    let quantity = match form.decimal("usage_quantity") {
        Ok(Some(q)) if q >= Decimal::ZERO => Some(q),
        Ok(_) => {
            e.add("usage_quantity", "Enter the quantity used (zero or more).");
            None
        }
        Err(m) => {
            e.add("usage_quantity", m);
            None
        }
    };
    let date = match form.date("usage_date") {
        Ok(Some(d)) => Some(d),
        Ok(None) => Some(today()),
        Err(m) => {
            e.add("usage_date", m);
            None
        }
    };
    let external_id = match form.get("usage_external_id") {
        "" => format!("manual-{}", uuid::Uuid::new_v4()),
        s => s.chars().take(200).collect(),
    };
    let (Some(item_id), Some(quantity), Some(date)) = (item_id, quantity, date) else {
        return render_detail(&req, &ctx, &state, id, form, e, String::new()).await;
    };
    let actor = Actor::from_ctx(&ctx, &req);
    let uid = ctx.user.id;
    let vis = visibility(&ctx);
    let msg = ctx
        .db(&state, move |c| {
            let sub = repo::get(c, id)?;
            accounts::get_visible(c, sub.account_id, vis)?;
            let Some(item) = repo::items_of(c, id)?.into_iter().find(|i| i.id == item_id) else {
                return Err(AppError::NotFound);
            };
            let n = diesel::insert_into(usage_records::table)
                .values((
                    usage_records::subscription_id.eq(id),
                    usage_records::product_id.eq(item.product_id),
                    usage_records::usage_date.eq(date),
                    usage_records::quantity.eq(quantity),
                    usage_records::external_id.eq(&external_id),
                    usage_records::source.eq("manual"),
                    usage_records::created_by.eq(Some(uid)),
                ))
                .on_conflict(usage_records::external_id)
                .do_nothing()
                .execute(c)?;
            if n == 0 {
                return Ok(format!("Usage {external_id} was already recorded; nothing changed."));
            }
            audit::record(c, &actor, &Entry::new("usage.recorded", "subscription", id).after(json!({ "product_id": item.product_id, "date": date, "quantity": quantity, "external_id": external_id })))?;
            Ok(format!("Recorded {} on {date}.", quantity.normalize()))
        })
        .await?;
    render_detail(
        &req,
        &ctx,
        &state,
        id,
        Fields::default(),
        FieldErrors::default(),
        msg,
    )
    .await
}

pub struct SubRow {
    pub id: i64,
    pub number: String,
    pub status: String,
    pub cycle: String,
    pub start: String,
    pub end: String,
    pub next_bill: String,
}

#[derive(Template)]
#[template(path = "subscriptions/account_tab_partial.html")]
pub struct AccountTabPartial {
    pub base: String,
    pub account_id: i64,
    pub rows: Vec<SubRow>,
    pub can_manage: bool,
}

/// The subscriptions tab of an account page.
pub fn account_tab(
    conn: &mut diesel::PgConnection,
    ctx: &TenantCtx,
    account_id: i64,
) -> AppResult<AccountTabPartial> {
    let rows = repo::for_account(conn, account_id)?
        .into_iter()
        .map(|s| SubRow {
            id: s.id,
            number: s.number.clone(),
            status: s.status.clone(),
            cycle: s.cycle_label(),
            start: s.start_date.to_string(),
            end: s.end_date.map(|d| d.to_string()).unwrap_or_default(),
            next_bill: amend::next_bill_date(&s)
                .map(|d| d.to_string())
                .unwrap_or_default(),
        })
        .collect();
    Ok(AccountTabPartial {
        base: ctx.base(),
        account_id,
        rows,
        can_manage: ctx.can(Permission::SubscriptionsManage),
    })
}
