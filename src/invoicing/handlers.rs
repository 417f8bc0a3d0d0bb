//! The invoice page and its actions: edit a draft, finalize, send again, void, credit,
//! manage the hosted link, download the PDF.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::NaiveDate;
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use super::{
    billrun::links_for,
    build::{self, Header, Payer},
    domain::{self, TaxCategory},
    email::{self, Links},
    finalize,
    repo::{self, Invoice, Line},
};
use crate::{
    accounts::{
        domain::{Fields, PaymentTerms, TermsKind},
        handlers::visibility,
        repo as accounts,
    },
    audit::{self, handlers::History, Actor, Entry},
    auth::permissions::{can, Allowed, Permission},
    db::schema::tenant::{invoice_lines, invoices},
    error::{AppError, AppResult, FieldErrors},
    money::Currency,
    subscriptions::charges::{DraftLine, LineKind},
    tenants::TenantCtx,
    web::{csrf, render, AppState},
};

/// The billing date. UTC for now: per-tenant time zones (`company.timezone`) are not applied yet.
pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// An invoice the member may see: sales only see their accounts' invoices.
pub fn visible(
    conn: &mut PgConnection,
    ctx_vis: accounts::Visibility,
    id: i64,
) -> AppResult<Invoice> {
    let inv = repo::get(conn, id)?;
    accounts::get_visible(conn, inv.account_id, ctx_vis)?;
    Ok(inv)
}

pub struct LineView {
    pub id: i64,
    pub description: String,
    pub kind: String,
    pub period: String,
    pub quantity: String,
    pub unit_price: String,
    pub discount: String,
    pub net: String,
    pub tax_rate: String,
    pub tax: String,
    pub source: String,
}

pub fn line_views(inv: &Invoice, lines: &[Line]) -> Vec<LineView> {
    let m = Currency::formatter(&inv.currency);
    lines
        .iter()
        .map(|l| LineView {
            id: l.id,
            description: l.description.clone(),
            kind: l.kind.clone(),
            period: match (l.period_start, l.period_end) {
                (Some(s), Some(e)) => {
                    format!("{} – {}", s.format("%-d %b %Y"), e.format("%-d %b %Y"))
                }
                _ => String::new(),
            },
            quantity: l.quantity.normalize().to_string(),
            unit_price: m(l.unit_price),
            discount: if l.discount.is_zero() {
                String::new()
            } else {
                m(l.discount)
            },
            net: m(l.net),
            tax_rate: format!("{}%", l.tax_rate.normalize()),
            tax: m(l.tax),
            source: [
                l.subscription_item_id.map(|i| format!("item {i}")),
                l.price_version_id.map(|v| format!("price version {v}")),
                l.gl_account.as_ref().map(|g| format!("GL {g}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" · "),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "invoicing/detail_partial.html")]
pub struct DetailPartial {
    pub base: String,
    pub csrf_token: String,
    pub inv: Invoice,
    pub account_name: String,
    pub payer_name: String,
    pub lines: Vec<LineView>,
    pub m_subtotal: String,
    pub m_discount: String,
    pub m_tax: String,
    pub m_total: String,
    pub m_credit_applied: String,
    pub m_credited: String,
    pub m_paid: String,
    pub m_due: String,
    pub notes_form: Fields,
    pub line_form: Fields,
    pub errors: FieldErrors,
    pub message: String,
    pub related: Vec<(i64, String, String)>,
    pub link: Option<String>,
    pub outbox: Vec<(i64, String, String)>,
    /// `(payment id, received on, method, amount)` applied to this invoice.
    pub payments: Vec<(i64, String, String, String)>,
    pub can_edit: bool,
    pub can_finalize: bool,
    pub can_send: bool,
    pub can_void: bool,
    /// Open with a balance: can be charged now or written off.
    pub can_charge: bool,
    pub can_write_off: bool,
    pub can_credit: bool,
    pub tax_categories: Vec<(&'static str, &'static str)>,
    pub history: History,
    pub collections_timeline:
        askama::filters::HtmlSafeOutput<crate::dunning::timeline::TimelinePartial>,
}

pub async fn render_detail(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    id: i64,
    line_form: Fields,
    errors: FieldErrors,
    message: String,
) -> AppResult<HttpResponse> {
    let vis = visibility(ctx);
    let links = links_for(state, ctx.tenant.id, &ctx.tenant.slug);
    let (inv, lines, account_name, payer_name, related, link, (outbox, payments), history) = ctx
        .db(state, move |c| {
            let inv = visible(c, vis, id)?;
            let lines = repo::lines_of(c, id)?;
            let name = |c: &mut PgConnection, id| {
                accounts::get(c, id).map(|a| a.map(|a| a.display_name).unwrap_or_default())
            };
            let account_name = name(c, inv.account_id)?;
            let payer_name = name(c, inv.bill_to_account_id)?;
            let mut related: Vec<(i64, String, String)> = repo::credit_notes_of(c, id)?
                .into_iter()
                .map(|n| (n.id, n.label(), Currency::formatter(&n.currency)(n.total)))
                .collect();
            if let Some(r) = inv.related_invoice_id {
                let orig = repo::get(c, r)?;
                related.push((
                    orig.id,
                    format!("Credits {}", orig.label()),
                    Currency::formatter(&orig.currency)(orig.total),
                ));
            }
            let link = email::link_nonce(c, id)?.map(|n| links.hosted(id, &n));
            let outbox: Vec<(i64, String, String)> = crate::db::schema::tenant::outbox::table
                .filter(
                    crate::db::schema::tenant::outbox::idempotency_key
                        .like(format!("invoice-email:{id}:%")),
                )
                .order(crate::db::schema::tenant::outbox::id.desc())
                .select((
                    crate::db::schema::tenant::outbox::id,
                    crate::db::schema::tenant::outbox::status,
                    crate::db::schema::tenant::outbox::created_at,
                ))
                .load::<(i64, String, chrono::DateTime<chrono::Utc>)>(c)?
                .into_iter()
                .map(|(i, s, t)| (i, s, t.format("%Y-%m-%d %H:%M").to_string()))
                .collect();
            let history = audit::handlers::history(c, "invoice", &id.to_string())?;
            let m = Currency::formatter(&inv.currency);
            let payments: Vec<(i64, String, String, String)> =
                crate::payments::repo::for_invoice(c, id)?
                    .into_iter()
                    .filter(|(_, a)| !a.is_zero())
                    .map(|(p, a)| (p.id, p.received_on.to_string(), p.method, m(a)))
                    .collect();
            Ok((
                inv,
                lines,
                account_name,
                payer_name,
                related,
                link,
                (outbox, payments),
                history,
            ))
        })
        .await?;
    let collections_timeline =
        crate::dunning::collections::account::invoice_timeline(ctx, state, id).await?;
    let m = Currency::formatter(&inv.currency);
    let discount: Decimal = lines.iter().map(|l| l.discount).sum();
    let draft = inv.status == "draft";
    let mut notes_form = Fields::default();
    notes_form.set("po_number", inv.po_number.clone().unwrap_or_default());
    notes_form.set("notes", inv.notes.clone());
    notes_form.set("version", inv.version.to_string());
    let partial = DetailPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        lines: line_views(&inv, &lines),
        m_subtotal: m(inv.subtotal),
        m_discount: if discount.is_zero() {
            String::new()
        } else {
            m(discount)
        },
        m_tax: m(inv.tax_total),
        m_total: m(inv.total),
        m_credit_applied: m(inv.credit_applied),
        m_credited: m(inv.amount_credited),
        m_paid: m(inv.amount_paid),
        m_due: m(inv.amount_due),
        notes_form,
        line_form,
        errors,
        message,
        related,
        link,
        outbox,
        payments,
        can_edit: draft && ctx.can(Permission::InvoicesEdit),
        can_finalize: draft && ctx.can(Permission::InvoicesFinalize),
        can_send: !draft && inv.status != "void" && ctx.can(Permission::InvoicesSend),
        can_charge: inv.kind == "invoice"
            && inv.status == "open"
            && inv.amount_due > Decimal::ZERO
            && ctx.can(Permission::PaymentsRecord),
        can_write_off: inv.kind == "invoice"
            && inv.status == "open"
            && inv.amount_due > Decimal::ZERO
            && ctx.can(Permission::InvoicesVoid),
        can_void: matches!(inv.status.as_str(), "draft" | "open")
            && inv.amount_paid.is_zero()
            && ctx.can(Permission::InvoicesVoid),
        can_credit: !inv.is_credit_note()
            && matches!(inv.status.as_str(), "open" | "paid")
            && ctx.can(Permission::InvoicesCredit),
        tax_categories: TaxCategory::options(),
        history,
        collections_timeline,
        account_name,
        payer_name,
        inv,
    };
    let status = render::status_for(partial.errors.is_empty());
    let title = partial.inv.label();
    render::page_with_status(req, status, ctx.layout(req, title, "invoices"), partial)
}

pub async fn detail(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesView>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let mut f = Fields::default();
    f.set("quantity", "1");
    f.set("tax_category", "standard");
    render_detail(
        &req,
        &ctx,
        &state,
        path.1,
        f,
        FieldErrors::default(),
        String::new(),
    )
    .await
}

pub(crate) fn back(req: &HttpRequest, ctx: &TenantCtx, id: i64) -> HttpResponse {
    render::see_other(req, &format!("{}/invoices/{id}", ctx.base()))
}

/// Recomputes a draft's totals from its lines.
fn retotal(conn: &mut PgConnection, id: i64) -> AppResult<()> {
    let lines = repo::lines_of(conn, id)?;
    let amounts: Vec<domain::LineAmounts> = lines
        .iter()
        .map(|l| domain::LineAmounts {
            amount: l.amount,
            discount: l.discount,
            net: l.net,
            tax: l.tax,
        })
        .collect();
    let t = domain::totals(&amounts);
    diesel::update(
        invoices::table
            .find(id)
            .filter(invoices::status.eq("draft")),
    )
    .set((
        invoices::subtotal.eq(t.subtotal),
        invoices::tax_total.eq(t.tax_total),
        invoices::total.eq(t.total),
        invoices::amount_due.eq(t.total.max(Decimal::ZERO)),
    ))
    .execute(conn)?;
    Ok(())
}

fn draft_for_edit(
    conn: &mut PgConnection,
    vis: accounts::Visibility,
    id: i64,
) -> AppResult<Invoice> {
    let inv = visible(conn, vis, id)?;
    let inv = repo::lock(conn, inv.id)?;
    if inv.status != "draft" {
        return Err(AppError::Conflict(
            "This invoice is finalized and cannot be edited; issue a credit note instead.".into(),
        ));
    }
    Ok(inv)
}

/// Adds a one-off line to a draft.
pub async fn add_line(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesEdit>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let mut e = FieldErrors::default();
    let description = form.get("description").to_owned();
    if description.is_empty() || description.chars().count() > 500 {
        e.add("description", "Describe the charge (up to 500 characters).");
    }
    let quantity = form
        .decimal("quantity")
        .map_err(|m| e.add("quantity", m))
        .ok()
        .flatten()
        .unwrap_or(Decimal::ONE);
    let unit_price = match form.decimal("unit_price") {
        Ok(Some(p)) => p,
        Ok(None) => {
            e.add("unit_price", "Enter the unit price.");
            Decimal::ZERO
        }
        Err(m) => {
            e.add("unit_price", m);
            Decimal::ZERO
        }
    };
    let discount = form
        .decimal("discount")
        .map_err(|m| e.add("discount", m))
        .ok()
        .flatten()
        .unwrap_or(Decimal::ZERO);
    let category = TaxCategory::parse(form.get("tax_category")).unwrap_or(TaxCategory::Standard);
    if !e.is_empty() {
        return render_detail(&req, &ctx, &state, id, form, e, String::new()).await;
    }
    let actor = Actor::from_ctx(&ctx, &req);
    let vis = visibility(&ctx);
    ctx.db(&state, move |c| {
        let inv = draft_for_edit(c, vis, id)?;
        let currency = Currency::parse(&inv.currency).map_err(|m| AppError::internal(anyhow::anyhow!(m)))?;
        let payer = Payer::of(&accounts::get(c, inv.bill_to_account_id)?.ok_or(AppError::NotFound)?);
        let rate = payer.tax.rate(category, repo::tax_rates(c)?);
        let a = domain::line(currency, quantity * unit_price, discount, rate);
        let position: Option<i32> = invoice_lines::table.filter(invoice_lines::invoice_id.eq(id)).select(diesel::dsl::max(invoice_lines::position)).first(c)?;
        repo::insert_lines(c, &[repo::NewLine {
            invoice_id: id, position: position.unwrap_or(0) + 1, kind: LineKind::OneOff.as_str().into(), description: description.clone(),
            product_id: None, subscription_item_id: None, price_version_id: None, credited_line_id: None, period_start: None, period_end: None,
            quantity, unit_price, amount: a.amount, discount: a.discount, net: a.net, tax_category: category.as_str().into(), tax_rate: rate, tax: a.tax, gl_account: None,
        }])?;
        retotal(c, id)?;
        audit::record(c, &actor, &Entry::new("invoice.line_added", "invoice", id).after(json!({ "description": description, "quantity": quantity, "unit_price": unit_price, "net": a.net, "tax": a.tax })))
    })
    .await?;
    Ok(back(&req, &ctx, id))
}

pub async fn remove_line(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesEdit>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64, i64)>,
) -> AppResult<HttpResponse> {
    let (_, id, line_id) = path.into_inner();
    let actor = Actor::from_ctx(&ctx, &req);
    let vis = visibility(&ctx);
    ctx.db(&state, move |c| {
        draft_for_edit(c, vis, id)?;
        let n = diesel::delete(
            invoice_lines::table
                .filter(invoice_lines::id.eq(line_id))
                .filter(invoice_lines::invoice_id.eq(id)),
        )
        .execute(c)?;
        if n == 0 {
            return Err(AppError::NotFound);
        }
        retotal(c, id)?;
        audit::record(
            c,
            &actor,
            &Entry::new("invoice.line_removed", "invoice", id)
                .before(json!({ "line_id": line_id })),
        )
    })
    .await?;
    Ok(back(&req, &ctx, id))
}

pub async fn save_notes(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesEdit>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let po = form.get("po_number").to_owned();
    let notes = form.get("notes").to_owned();
    if po.chars().count() > 100 || notes.chars().count() > 5000 {
        let mut e = FieldErrors::default();
        e.add(
            "po_number",
            "Keep the PO number under 100 and the notes under 5,000 characters.",
        );
        return render_detail(&req, &ctx, &state, id, Fields::default(), e, String::new()).await;
    }
    let actor = Actor::from_ctx(&ctx, &req);
    let vis = visibility(&ctx);
    ctx.db(&state, move |c| {
        let inv = draft_for_edit(c, vis, id)?;
        diesel::update(invoices::table.find(id))
            .set((
                invoices::po_number.eq((!po.is_empty()).then_some(&po)),
                invoices::notes.eq(&notes),
                invoices::version.eq(inv.version + 1),
            ))
            .execute(c)?;
        audit::record(
            c,
            &actor,
            &Entry::new("invoice.updated", "invoice", id)
                .before(json!({ "po_number": inv.po_number, "notes": inv.notes }))
                .after(json!({ "po_number": po, "notes": notes })),
        )
    })
    .await?;
    Ok(back(&req, &ctx, id))
}

pub async fn finalize_one(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesFinalize>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let actor = Actor::from_ctx(&ctx, &req);
    let links = links_for(&state, ctx.tenant.id, &ctx.tenant.slug);
    let vis = visibility(&ctx);
    ctx.db(&state, move |c| {
        let inv = visible(c, vis, id)?;
        if inv.status != "draft" {
            return Err(AppError::Conflict(format!(
                "{} is already finalized.",
                inv.label()
            )));
        }
        if repo::lines_of(c, id)?.is_empty() {
            let mut e = FieldErrors::default();
            e.add(
                "description",
                "An invoice needs at least one line before it can be finalized.",
            );
            return Err(AppError::Validation(e));
        }
        finalize::finalize(c, &actor, &links, &[id], today())
    })
    .await?;
    Ok(back(&req, &ctx, id))
}

/// Emails the invoice again to its recipients (a new outbox message each time).
pub async fn send(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesSend>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let actor = Actor::from_ctx(&ctx, &req);
    let links = links_for(&state, ctx.tenant.id, &ctx.tenant.slug);
    let vis = visibility(&ctx);
    let queued = ctx
        .db(&state, move |c| {
            let inv = visible(c, vis, id)?;
            if inv.status == "draft" || inv.status == "void" {
                return Err(AppError::Conflict(
                    "Only finalized invoices can be sent.".into(),
                ));
            }
            let q = email::queue_invoice_email(c, &links, id)?;
            audit::record(
                c,
                &actor,
                &Entry::new("invoice.sent", "invoice", id)
                    .after(json!({ "to": inv.recipients, "outbox_id": q })),
            )?;
            Ok(q)
        })
        .await?;
    state.wakeup.notify();
    let msg = if queued.is_some() {
        "The invoice email is queued for delivery."
    } else {
        "No contact of the paying account receives invoices by email: add one with an email address and \"receives invoices\"."
    };
    render_detail(
        &req,
        &ctx,
        &state,
        id,
        Fields::default(),
        FieldErrors::default(),
        msg.into(),
    )
    .await
}

pub async fn void(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesVoid>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let reason = form.get("reason").to_owned();
    if reason.is_empty() {
        let mut e = FieldErrors::default();
        e.add(
            "reason",
            "Say why the invoice is voided; the reason goes to the audit log.",
        );
        return render_detail(&req, &ctx, &state, id, Fields::default(), e, String::new()).await;
    }
    let actor = Actor::from_ctx(&ctx, &req);
    let vis = visibility(&ctx);
    ctx.db(&state, move |c| {
        let inv = visible(c, vis, id)?;
        let inv = repo::lock(c, inv.id)?;
        if !matches!(inv.status.as_str(), "draft" | "open") || !inv.amount_paid.is_zero() {
            return Err(AppError::Conflict(
                "Only unpaid draft or open invoices can be voided; credit a paid one instead."
                    .into(),
            ));
        }
        if inv.credit_applied > Decimal::ZERO {
            repo::add_credit(
                c,
                inv.bill_to_account_id,
                &inv.currency,
                inv.credit_applied,
                inv.id,
                &format!("Returned from voided {}", inv.label()),
            )?;
        }
        diesel::update(invoices::table.find(id))
            .set((
                invoices::status.eq("void"),
                invoices::amount_due.eq(Decimal::ZERO),
                invoices::void_reason.eq(&reason),
            ))
            .execute(c)?;
        crate::ledger::post::voided(c, id)?;
        audit::record(
            c,
            &actor,
            &Entry::new("invoice.voided", "invoice", id)
                .before(json!({ "status": inv.status, "amount_due": inv.amount_due }))
                .after(json!({ "status": "void" }))
                .reason(Some(reason)),
        )
    })
    .await?;
    Ok(back(&req, &ctx, id))
}

/// Issues a credit note for chosen lines (`line_<id>` = amount) or the whole invoice.
pub async fn credit(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesCredit>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let reason = form.get("reason").to_owned();
    let whole = form.get("scope") == "full";
    let actor = Actor::from_ctx(&ctx, &req);
    let links = links_for(&state, ctx.tenant.id, &ctx.tenant.slug);
    let vis = visibility(&ctx);
    let result = ctx
        .db(&state, move |c| {
            let inv = visible(c, vis, id)?;
            if inv.is_credit_note() || !matches!(inv.status.as_str(), "open" | "paid") {
                return Err(AppError::Conflict(
                    "Only finalized invoices can be credited.".into(),
                ));
            }
            let lines = repo::lines_of(c, id)?;
            let mut e = FieldErrors::default();
            let mut drafts = Vec::new();
            for l in &lines {
                let amount = if whole {
                    Some(l.net)
                } else {
                    match form.decimal(&format!("line_{}", l.id)) {
                        Ok(v) => v,
                        Err(m) => {
                            e.add(&format!("line_{}", l.id), m);
                            None
                        }
                    }
                };
                let Some(amount) = amount.filter(|a| !a.is_zero()) else {
                    continue;
                };
                if amount.abs() > l.net.abs()
                    || amount.is_sign_negative() != l.net.is_sign_negative()
                {
                    e.add(
                        &format!("line_{}", l.id),
                        format!("Credit at most {} on this line.", l.net),
                    );
                    continue;
                }
                drafts.push((l.clone(), amount));
            }
            if drafts.is_empty() && e.is_empty() {
                e.add(
                    "scope",
                    "Choose the lines and amounts to credit, or credit the whole invoice.",
                );
            }
            if reason.is_empty() {
                e.add("reason", "Give a reason for the credit note.");
            }
            if !e.is_empty() {
                return Ok(Err(e));
            }
            let payer =
                Payer::of(&accounts::get(c, inv.bill_to_account_id)?.ok_or(AppError::NotFound)?);
            let rates = repo::tax_rates(c)?;
            let currency = Currency::parse(&inv.currency)
                .map_err(|m| AppError::internal(anyhow::anyhow!(m)))?;
            let draft_lines: Vec<DraftLine> = drafts
                .iter()
                .map(|(l, amount)| DraftLine {
                    kind: LineKind::Credit,
                    description: format!("Credit: {}", l.description),
                    product_id: l.product_id,
                    item_id: l.subscription_item_id,
                    price_version_id: l.price_version_id,
                    period: None,
                    quantity: Decimal::ONE,
                    amount: *amount,
                    discount: Decimal::ZERO,
                    tax_category: TaxCategory::parse(&l.tax_category)
                        .unwrap_or(TaxCategory::Standard),
                    gl_account: l.gl_account.clone(),
                })
                .collect();
            let mut built = build::build(
                Header {
                    kind: "credit_note",
                    source: "manual",
                    account_id: inv.account_id,
                    subscription_id: inv.subscription_id,
                    period: None,
                    bill_run_id: None,
                    related_invoice_id: Some(inv.id),
                    currency,
                    issue_date: today(),
                    terms: PaymentTerms {
                        kind: TermsKind::DueOnReceipt,
                        days: 0,
                    },
                    po_number: inv.po_number.clone(),
                    notes: reason.clone(),
                },
                &payer,
                rates,
                &draft_lines,
            );
            // Credit the tax actually charged on each line, not a recomputation at today's rate.
            for (nl, (l, amount)) in built.lines.iter_mut().zip(&drafts) {
                nl.credited_line_id = Some(l.id);
                nl.tax_rate = l.tax_rate;
                nl.tax = if *amount == l.net {
                    l.tax
                } else {
                    currency.round(*amount * l.tax_rate / Decimal::ONE_HUNDRED)
                };
            }
            let tax: Decimal = built.lines.iter().map(|l| l.tax).sum();
            built.invoice.tax_total = tax;
            built.invoice.total = built.invoice.subtotal + tax;
            built.invoice.amount_due = Decimal::ZERO;
            let credited_already: Decimal = repo::credit_notes_of(c, id)?
                .iter()
                .filter(|n| n.status != "void")
                .map(|n| n.total)
                .sum();
            if credited_already + built.invoice.total > inv.total {
                let mut e = FieldErrors::default();
                e.add(
                    "scope",
                    format!(
                        "Credit notes would exceed the invoice total ({} already credited).",
                        credited_already
                    ),
                );
                return Ok(Err(e));
            }
            let note_id = repo::insert_one(c, &built.invoice)?;
            let lines: Vec<_> = built
                .lines
                .into_iter()
                .map(|l| repo::NewLine {
                    invoice_id: note_id,
                    ..l
                })
                .collect();
            repo::insert_lines(c, &lines)?;
            audit::record(
                c,
                &actor,
                &Entry::new("credit_note.created", "invoice", note_id)
                    .after(json!({ "invoice_id": id, "total": built.invoice.total }))
                    .reason(Some(reason)),
            )?;
            finalize::finalize(c, &actor, &links, &[note_id], today())?;
            Ok(Ok(note_id))
        })
        .await?;
    match result {
        Ok(note) => Ok(render::see_other(
            &req,
            &format!("{}/invoices/{note}", ctx.base()),
        )),
        Err(e) => render_detail(&req, &ctx, &state, id, Fields::default(), e, String::new()).await,
    }
}

/// Renews (`action=renew`) or revokes the hosted link.
pub async fn link(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesSend>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let revoke = Fields::from_pairs(body.into_inner()).get("action") == "revoke";
    let actor = Actor::from_ctx(&ctx, &req);
    let vis = visibility(&ctx);
    ctx.db(&state, move |c| {
        let inv = visible(c, vis, id)?;
        if inv.status == "draft" {
            return Err(AppError::Conflict("Drafts have no customer link.".into()));
        }
        if revoke {
            email::revoke_link(c, id)?;
        } else {
            email::renew_link(c, id)?;
        }
        audit::record(
            c,
            &actor,
            &Entry::new(
                if revoke {
                    "invoice.link_revoked"
                } else {
                    "invoice.link_renewed"
                },
                "invoice",
                id,
            ),
        )
    })
    .await?;
    Ok(back(&req, &ctx, id))
}

/// Links for a tenant context (used by pages that queue emails).
pub fn links(state: &AppState, ctx: &TenantCtx) -> Links {
    links_for(state, ctx.tenant.id, &ctx.tenant.slug)
}

pub async fn pdf(
    ctx: Allowed<can::InvoicesView>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let vis = visibility(&ctx);
    let inv = ctx.db(&state, move |c| visible(c, vis, id)).await?;
    let bytes =
        super::pdf_doc::render_invoice(&state.pool, &ctx.tenant.schema, &links(&state, &ctx), id)
            .await?;
    Ok(super::pdf_doc::response(&inv, bytes))
}

/// Starts a one-off draft invoice for an account; lines are added on the invoice page.
pub async fn new_one_off(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesEdit>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let account_id = path.1;
    let actor = Actor::from_ctx(&ctx, &req);
    let vis = visibility(&ctx);
    let id = ctx
        .db(&state, move |c| {
            let account = accounts::get_visible(c, account_id, vis)?;
            if matches!(account.status.as_str(), "merged" | "closed") {
                return Err(AppError::Conflict(format!(
                    "{} is {}; it cannot be invoiced.",
                    account.display_name, account.status
                )));
            }
            let payer = Payer::of(&accounts::bill_to(c, account_id)?);
            let currency = Currency::parse(&account.currency)
                .map_err(|m| AppError::internal(anyhow::anyhow!(m)))?;
            let built = build::build(
                Header {
                    kind: "invoice",
                    source: "manual",
                    account_id,
                    subscription_id: None,
                    period: None,
                    bill_run_id: None,
                    related_invoice_id: None,
                    currency,
                    issue_date: today(),
                    terms: payer.terms,
                    po_number: account.po_number.clone(),
                    notes: String::new(),
                },
                &payer,
                repo::tax_rates(c)?,
                &[],
            );
            let id = repo::insert_one(c, &built.invoice)?;
            audit::record(
                c,
                &actor,
                &Entry::new("invoice.created", "invoice", id)
                    .after(json!({ "source": "manual", "account_id": account_id })),
            )?;
            Ok(id)
        })
        .await?;
    Ok(back(&req, &ctx, id))
}
