//! The hosted invoice page: a customer opens the signed link from the email, sees the
//! invoice and their account statement and downloads the PDF, without signing in. Any
//! mismatch (unknown tenant, wrong or revoked token, draft) is a plain 404.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::prelude::*;

use super::{
    billrun::links_for,
    email,
    handlers::{line_views, LineView},
    pdf_doc,
    repo::{self, Invoice},
};
use crate::{
    db::{self, schema::tenant::invoices, scope::TenantSchema},
    error::{AppError, AppResult},
    web::{layout::Layout, render, AppState},
};

pub struct StatementRow {
    pub number: String,
    pub kind: String,
    pub issue_date: String,
    pub due_date: String,
    pub total: String,
    pub amount_due: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "invoicing/hosted_partial.html")]
pub struct HostedPartial {
    pub company: String,
    pub inv: Invoice,
    pub bill_to_name: String,
    pub lines: Vec<LineView>,
    pub subtotal: String,
    pub tax: String,
    pub total: String,
    pub paid: String,
    pub due: String,
    pub pdf_url: String,
    pub statement: Vec<StatementRow>,
    pub balance: String,
}

/// The invoice behind a link, if the link is current.
async fn resolve(
    state: &AppState,
    slug: String,
    id: i64,
    token: String,
) -> AppResult<(i64, TenantSchema, Invoice)> {
    let s = slug.clone();
    let (tenant_id, schema) = db::run(&state.pool, move |c| {
        crate::tenants::repo::find_id_by_slug(c, &s)
    })
    .await?
    .ok_or(AppError::NotFound)?;
    let schema = TenantSchema::parse(&schema).map_err(|_| AppError::NotFound)?;
    let links = links_for(state, tenant_id, &slug);
    let sc = schema.clone();
    let inv = db::run(&state.pool, move |c| {
        db::scope::in_tenant(c, &sc, |c| {
            let inv = repo::get(c, id)?;
            let nonce = email::link_nonce(c, id)?.ok_or(AppError::NotFound)?;
            if inv.status == "draft" || !links.verify(id, &nonce, &token) {
                return Err(AppError::NotFound);
            }
            Ok(inv)
        })
    })
    .await?;
    Ok((tenant_id, schema, inv))
}

pub async fn page(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, i64, String)>,
) -> AppResult<HttpResponse> {
    let (slug, id, token) = path.into_inner();
    let (_, schema, inv) = resolve(&state, slug.clone(), id, token.clone()).await?;
    let payer = inv.bill_to_account_id;
    let (lines, statement, company) = db::run(&state.pool, move |c| {
        db::scope::in_tenant(c, &schema, |c| {
            let lines = repo::lines_of(c, id)?;
            let statement: Vec<Invoice> = invoices::table
                .filter(invoices::bill_to_account_id.eq(payer))
                .filter(invoices::status.ne("draft"))
                .order((invoices::issue_date.desc(), invoices::id.desc()))
                .limit(100)
                .select(Invoice::as_select())
                .load(c)?;
            let company = repo::text_setting(c, "company.legal_name")?;
            let company = if company.is_empty() {
                repo::text_setting(c, "company.name")?
            } else {
                company
            };
            Ok((lines, statement, company))
        })
    })
    .await?;
    let m = crate::money::Currency::formatter(&inv.currency);
    let balance: rust_decimal::Decimal = statement
        .iter()
        .filter(|i| i.currency == inv.currency && i.status == "open")
        .map(|i| i.amount_due)
        .sum();
    let partial = HostedPartial {
        company,
        bill_to_name: inv
            .bill_to
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned(),
        lines: line_views(&inv, &lines),
        subtotal: m(inv.subtotal),
        tax: m(inv.tax_total),
        total: m(inv.total),
        paid: m(inv.amount_paid + inv.amount_credited + inv.credit_applied),
        due: m(inv.amount_due),
        pdf_url: format!("/p/{slug}/invoices/{id}/{token}/pdf"),
        statement: statement
            .iter()
            .map(|i| {
                let mm = crate::money::Currency::formatter(&i.currency);
                StatementRow {
                    number: i.label(),
                    kind: if i.is_credit_note() {
                        "Credit note".into()
                    } else {
                        "Invoice".into()
                    },
                    issue_date: i.issue_date.to_string(),
                    due_date: i.due_date.map(|d| d.to_string()).unwrap_or_default(),
                    total: format!("{} {}", i.currency, mm(i.total)),
                    amount_due: mm(i.amount_due),
                    status: i.status.clone(),
                }
            })
            .collect(),
        balance: format!("{} {}", inv.currency, m(balance)),
        inv,
    };
    let title = format!("Invoice {}", partial.inv.label());
    let mut resp = render::page(&req, Layout::for_request(&req, title), partial)?;
    // A capability URL: keep it out of referrers and shared caches.
    resp.headers_mut().insert(
        actix_web::http::header::REFERRER_POLICY,
        actix_web::http::header::HeaderValue::from_static("no-referrer"),
    );
    resp.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("private, no-store"),
    );
    Ok(resp)
}

pub async fn pdf(
    state: web::Data<AppState>,
    path: web::Path<(String, i64, String)>,
) -> AppResult<HttpResponse> {
    let (slug, id, token) = path.into_inner();
    let (tenant_id, schema, inv) = resolve(&state, slug.clone(), id, token).await?;
    let links = links_for(&state, tenant_id, &slug);
    let bytes = pdf_doc::render_invoice(&state.pool, &schema, &links, inv.id).await?;
    Ok(pdf_doc::response(&inv, bytes))
}
