//! Payment pages: record a payment on an account, see where it went, apply what is left,
//! refund, or reverse a bounced payment.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use rust_decimal::Decimal;
use serde_json::json;

use super::{
    domain::{self, Method, OpenInvoice},
    repo::{self, NewPayment, Payment},
};
use crate::{
    accounts::{domain::Fields, handlers::visibility, repo as accounts},
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed, Permission},
    error::{AppError, AppResult, FieldErrors},
    invoicing::{handlers::today, repo as invoices},
    money::Currency,
    tenants::TenantCtx,
    web::{csrf, render, AppState},
};

pub struct OpenView {
    pub id: i64,
    pub label: String,
    pub due_date: String,
    pub due: String,
}

fn open_views(
    conn: &mut diesel::PgConnection,
    open: &[OpenInvoice],
    currency: &str,
) -> AppResult<Vec<OpenView>> {
    let m = Currency::formatter(currency);
    open.iter()
        .map(|o| {
            Ok(OpenView {
                id: o.id,
                label: invoices::get(conn, o.id)?.label(),
                due_date: o.due_date.map(|d| d.to_string()).unwrap_or_default(),
                due: m(o.due),
            })
        })
        .collect()
}

/// Every filled `apply_<invoice id>` field, open invoice or not (check_chosen names the
/// ones that are not open).
fn chosen(form: &Fields, e: &mut FieldErrors) -> Vec<(i64, Decimal)> {
    let mut out = Vec::new();
    let mut names: Vec<&str> = form.names().filter(|n| n.starts_with("apply_")).collect();
    names.sort_unstable();
    for field in names {
        let Ok(id) = field["apply_".len()..].parse::<i64>() else {
            continue;
        };
        match form.decimal(field) {
            Ok(Some(a)) => out.push((id, a)),
            Ok(None) => {}
            Err(m) => e.add(field, m),
        }
    }
    out
}

/// The allocation a form asks for: chosen amounts, or oldest first.
fn allocation(
    form: &Fields,
    available: Decimal,
    open: &[OpenInvoice],
    e: &mut FieldErrors,
) -> Vec<(i64, Decimal)> {
    if form.get("allocation") != "chosen" {
        return domain::oldest_first(available, open);
    }
    let picked = chosen(form, e);
    if let Err(errs) = domain::check_chosen(available, &picked, open) {
        for (f, m) in errs {
            e.add(&f, m);
        }
    }
    picked
}

pub struct AttemptRow {
    pub invoice_id: i64,
    pub invoice: String,
    pub when: String,
    pub amount: String,
    pub status: &'static str,
    pub detail: String,
}

pub struct PaymentRow {
    pub id: i64,
    pub received_on: String,
    pub method: String,
    pub reference: String,
    pub amount: String,
    pub unapplied: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "payments/account_tab_partial.html")]
pub struct AccountTabPartial {
    pub base: String,
    pub csrf_token: String,
    pub account_id: i64,
    pub currency: String,
    pub rows: Vec<PaymentRow>,
    pub open: Vec<OpenView>,
    pub methods: Vec<(&'static str, &'static str)>,
    /// Stored payment methods and the latest automatic charges.
    pub stored: Vec<super::methods::PaymentMethod>,
    pub attempts: Vec<AttemptRow>,
    pub can_record: bool,
    pub form: Fields,
    pub errors: FieldErrors,
}

/// The payments tab of an account page.
pub fn account_tab(
    conn: &mut diesel::PgConnection,
    ctx: &TenantCtx,
    csrf_token: String,
    account_id: i64,
    form: Fields,
    errors: FieldErrors,
) -> AppResult<AccountTabPartial> {
    let account = accounts::get(conn, account_id)?.ok_or(AppError::NotFound)?;
    let mut rows = Vec::new();
    for p in repo::for_account(conn, account_id)? {
        let m = Currency::formatter(&p.currency);
        let left = repo::unapplied(conn, &p)?;
        rows.push(PaymentRow {
            id: p.id,
            received_on: p.received_on.to_string(),
            method: Method::parse(&p.method).map_or(p.method.clone(), |x| x.label().to_owned()),
            reference: p.reference.clone(),
            amount: format!("{} {}", p.currency, m(p.amount)),
            unapplied: m(left),
            status: p.status.clone(),
        });
    }
    let open = repo::open_invoices(conn, account_id, &account.currency)?;
    let mut form = form;
    if form.get("received_on").is_empty() {
        form.set("received_on", today().to_string());
        form.set("method", "wire");
        form.set("allocation", "oldest");
    }
    let mut attempts = Vec::new();
    for a in super::charge::for_account(conn, account_id, 20)? {
        let m = Currency::formatter(&a.currency);
        attempts.push(AttemptRow {
            invoice_id: a.invoice_id,
            invoice: invoices::get(conn, a.invoice_id)?.label(),
            when: a
                .attempted_at
                .unwrap_or(a.scheduled_for)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            amount: a.amount.map(&m).unwrap_or_default(),
            status: a.status_label(),
            detail: a.message.clone().unwrap_or_default(),
        });
    }
    Ok(AccountTabPartial {
        stored: super::methods::for_account(conn, account_id)?,
        attempts,
        base: ctx.base(),
        csrf_token,
        account_id,
        open: open_views(conn, &open, &account.currency)?,
        currency: account.currency,
        rows,
        methods: Method::options(),
        can_record: ctx.can(Permission::PaymentsRecord),
        form,
        errors,
    })
}

pub async fn record(
    req: HttpRequest,
    ctx: Allowed<can::PaymentsRecord>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let account_id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let actor = Actor::from_ctx(&ctx, &req);
    let (vis, uid, token) = (visibility(&ctx), ctx.user.id, csrf::token(&req));
    let ctx2 = (*ctx).clone();
    let outcome = ctx
        .db(&state, move |c| {
            let account = accounts::get_visible(c, account_id, vis)?;
            let mut e = FieldErrors::default();
            let method = Method::parse(form.get("method"));
            if method.is_none() {
                e.add("method", "Choose how the payment was made.");
            }
            let amount = match form.decimal("amount") {
                Ok(Some(a)) if a > Decimal::ZERO => a,
                Ok(_) => {
                    e.add("amount", "Enter the amount received (above zero).");
                    Decimal::ZERO
                }
                Err(m) => {
                    e.add("amount", m);
                    Decimal::ZERO
                }
            };
            let received_on = match form.date("received_on") {
                Ok(Some(d)) if d <= today() => d,
                Ok(Some(_)) => {
                    e.add("received_on", "A payment cannot be received in the future.");
                    today()
                }
                Ok(None) => today(),
                Err(m) => {
                    e.add("received_on", m);
                    today()
                }
            };
            let reference = form.get("reference").chars().take(200).collect::<String>();
            let currency = Currency::parse(&account.currency).map_err(|m| AppError::internal(anyhow::anyhow!(m)))?;
            let amount = currency.round(amount);
            let open = repo::open_invoices(c, account_id, currency.code())?;
            let alloc = allocation(&form, amount, &open, &mut e);
            let Some(method) = method.filter(|_| e.is_empty()) else {
                return Ok(Err(account_tab(c, &ctx2, token, account_id, form, e)?));
            };
            let id = repo::insert(c, &NewPayment { account_id, method: method.as_str(), currency: currency.code(), amount, received_on, reference: &reference, created_by: Some(uid) })?;
            repo::apply(c, id, &alloc, Some(uid))?;
            repo::event(c, "payment.received", "payment", id, json!({ "account_id": account_id, "amount": amount, "currency": currency.code(), "method": method.as_str() }))?;
            audit::record(c, &actor, &Entry::new("payment.recorded", "payment", id).after(json!({
                "account_id": account_id, "method": method.as_str(), "amount": amount, "received_on": received_on,
                "reference": reference, "applied": alloc,
            })))?;
            Ok(Ok(id))
        })
        .await?;
    match outcome {
        Ok(id) => Ok(render::see_other(
            &req,
            &format!("{}/payments/{id}", ctx.base()),
        )),
        Err(partial) => render::page_with_status(
            &req,
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            ctx.layout(&req, "Record payment", "accounts"),
            partial,
        ),
    }
}

#[derive(Template)]
#[template(path = "payments/detail_partial.html")]
pub struct DetailPartial {
    pub base: String,
    pub csrf_token: String,
    pub p: Payment,
    pub account_name: String,
    pub amount: String,
    pub unapplied: String,
    pub refunded: String,
    pub applied: Vec<(i64, String, String, String)>,
    pub open: Vec<OpenView>,
    pub can_manage: bool,
    pub has_unapplied: bool,
    pub errors: FieldErrors,
    pub message: String,
}

async fn render_detail(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    id: i64,
    errors: FieldErrors,
    message: String,
) -> AppResult<HttpResponse> {
    let vis = visibility(ctx);
    let (p, account_name, unapplied, applied, open) = ctx
        .db(state, move |c| {
            let p = repo::get(c, id)?;
            let account = accounts::get_visible(c, p.account_id, vis)?;
            let unapplied = repo::unapplied(c, &p)?;
            let mut applied = Vec::new();
            for (inv, a) in repo::applied_by_invoice(c, id)? {
                let i = invoices::get(c, inv)?;
                applied.push((
                    inv,
                    i.label(),
                    Currency::formatter(&p.currency)(a),
                    i.status,
                ));
            }
            let open = repo::open_invoices(c, p.account_id, &p.currency)?;
            let open = open_views(c, &open, &p.currency)?;
            Ok((p, account.display_name, unapplied, applied, open))
        })
        .await?;
    let m = Currency::formatter(&p.currency);
    let partial = DetailPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        amount: m(p.amount),
        unapplied: m(unapplied),
        refunded: m(p.refunded),
        has_unapplied: unapplied > Decimal::ZERO,
        can_manage: ctx.can(Permission::PaymentsRecord) && p.status == "succeeded",
        applied,
        open,
        account_name,
        errors,
        message,
        p,
    };
    let status = render::status_for(partial.errors.is_empty());
    render::page_with_status(
        req,
        status,
        ctx.layout(req, format!("Payment #{id}"), "accounts"),
        partial,
    )
}

pub async fn detail(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesView>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    render_detail(
        &req,
        &ctx,
        &state,
        path.1,
        FieldErrors::default(),
        String::new(),
    )
    .await
}

/// Shared shape of the payment actions: lock, check, act, audit; errors re-render the page.
async fn act(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    id: i64,
    action: &'static str,
    f: impl FnOnce(
            &mut diesel::PgConnection,
            &Payment,
            Option<i64>,
        ) -> AppResult<Result<serde_json::Value, FieldErrors>>
        + Send
        + 'static,
) -> AppResult<HttpResponse> {
    let actor = Actor::from_ctx(ctx, req);
    let (vis, uid) = (visibility(ctx), ctx.user.id);
    let outcome = ctx
        .db(state, move |c| {
            let p = repo::lock(c, id)?;
            accounts::get_visible(c, p.account_id, vis)?;
            if p.status != "succeeded" {
                return Err(AppError::Conflict(
                    "This payment was reversed; it cannot change.".into(),
                ));
            }
            match f(c, &p, Some(uid))? {
                Ok(after) => {
                    audit::record(c, &actor, &Entry::new(action, "payment", id).after(after))?;
                    Ok(Ok(()))
                }
                Err(e) => Ok(Err(e)),
            }
        })
        .await?;
    match outcome {
        Ok(()) => Ok(render::see_other(
            req,
            &format!("{}/payments/{id}", ctx.base()),
        )),
        Err(e) => render_detail(req, ctx, state, id, e, String::new()).await,
    }
}

pub async fn apply(
    req: HttpRequest,
    ctx: Allowed<can::PaymentsRecord>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let form = Fields::from_pairs(body.into_inner());
    act(
        &req,
        &ctx,
        &state,
        path.1,
        "payment.applied",
        move |c, p, uid| {
            let available = repo::unapplied(c, p)?;
            let open = repo::open_invoices(c, p.account_id, &p.currency)?;
            let mut e = FieldErrors::default();
            let alloc = allocation(&form, available, &open, &mut e);
            if alloc.is_empty() && e.is_empty() {
                e.add(
                    "amount",
                    "Nothing to apply: no unapplied cash or no open invoice.",
                );
            }
            if !e.is_empty() {
                return Ok(Err(e));
            }
            repo::apply(c, p.id, &alloc, uid)?;
            Ok(Ok(json!({ "applied": alloc })))
        },
    )
    .await
}

pub async fn refund(
    req: HttpRequest,
    ctx: Allowed<can::PaymentsRecord>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let form = Fields::from_pairs(body.into_inner());
    act(&req, &ctx, &state, path.1, "payment.refunded", move |c, p, uid| {
        let available = repo::unapplied(c, p)?;
        let mut e = FieldErrors::default();
        let amount = match form.decimal("refund_amount") {
            Ok(Some(a)) if a > Decimal::ZERO && a <= available => a,
            Ok(_) => {
                e.add("refund_amount", format!("Refund between 0 and the unapplied {}; unapply from invoices first to refund more.", available.normalize()));
                Decimal::ZERO
            }
            Err(m) => {
                e.add("refund_amount", m);
                Decimal::ZERO
            }
        };
        let on = form.date("refunded_on").map_err(|m| e.add("refunded_on", m)).ok().flatten().unwrap_or_else(today);
        if !e.is_empty() {
            return Ok(Err(e));
        }
        let reference = form.get("refund_reference").chars().take(200).collect::<String>();
        repo::refund(c, p, amount, on, &reference, uid)?;
        Ok(Ok(json!({ "amount": amount, "on": on, "reference": reference })))
    })
    .await
}

/// Unapplies a payment from one invoice (the invoice reopens by that amount).
pub async fn unapply(
    req: HttpRequest,
    ctx: Allowed<can::PaymentsRecord>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64, i64)>,
) -> AppResult<HttpResponse> {
    let (_, id, invoice_id) = path.into_inner();
    act(
        &req,
        &ctx,
        &state,
        id,
        "payment.unapplied",
        move |c, p, uid| {
            let Some((_, applied)) = repo::applied_by_invoice(c, p.id)?
                .into_iter()
                .find(|(i, _)| *i == invoice_id)
            else {
                return Err(AppError::NotFound);
            };
            repo::apply(c, p.id, &[(invoice_id, -applied)], uid)?;
            Ok(Ok(json!({ "invoice_id": invoice_id, "amount": applied })))
        },
    )
    .await
}

/// A bounced payment: all its applications are undone and the invoices reopen.
pub async fn reverse(
    req: HttpRequest,
    ctx: Allowed<can::PaymentsRecord>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let reason = Fields::from_pairs(body.into_inner())
        .get("reason")
        .chars()
        .take(500)
        .collect::<String>();
    act(
        &req,
        &ctx,
        &state,
        path.1,
        "payment.reversed",
        move |c, p, uid| {
            if reason.is_empty() {
                let mut e = FieldErrors::default();
                e.add(
                    "reason",
                    "Say why the payment is reversed (e.g. returned by the bank).",
                );
                return Ok(Err(e));
            }
            if !p.refunded.is_zero() {
                return Err(AppError::Conflict(
                    "A payment with refunds cannot be reversed.".into(),
                ));
            }
            let reopened = repo::reverse(c, p, &reason, uid)?;
            Ok(Ok(json!({ "reason": reason, "reopened": reopened })))
        },
    )
    .await
}
