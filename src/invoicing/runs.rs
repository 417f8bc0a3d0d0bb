//! Bill-run pages (history, start a run, live progress) and the billing settings (review
//! or auto-finalize, tax rates, invoice email template with a preview).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use rust_decimal::Decimal;
use serde_json::json;

use super::{
    billrun::{self, BillRun, Failure},
    email, repo,
};
use crate::{
    accounts::domain::Fields,
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed, Permission},
    error::{AppResult, FieldErrors},
    tenants::TenantCtx,
    web::{csrf, render, AppState},
};

pub struct RunView {
    pub run: BillRun,
    pub failures: Vec<Failure>,
    pub percent: i32,
}

impl RunView {
    fn new(run: BillRun) -> Self {
        let failures = serde_json::from_value(run.failures.clone()).unwrap_or_default();
        let percent = if run.total > 0 {
            (run.processed * 100 / run.total).min(100)
        } else if run.status == "done" {
            100
        } else {
            0
        };
        Self {
            run,
            failures,
            percent,
        }
    }
}

#[derive(Template)]
#[template(path = "invoicing/runs_partial.html")]
pub struct RunsPartial {
    pub base: String,
    pub csrf_token: String,
    pub runs: Vec<RunView>,
    pub can_run: bool,
    pub auto_finalize: bool,
}

pub async fn list(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesView>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let (runs, auto) = ctx
        .db(&state, |c| {
            Ok((billrun::recent(c, 50)?, repo::auto_finalize(c)?))
        })
        .await?;
    let partial = RunsPartial {
        base: ctx.base(),
        csrf_token: csrf::token(&req),
        runs: runs.into_iter().map(RunView::new).collect(),
        can_run: ctx.can(Permission::BillingRun),
        auto_finalize: auto,
    };
    render::page(&req, ctx.layout(&req, "Bill runs", "invoices"), partial)
}

/// Starts a bill run for today; the worker does the work and the page shows progress.
pub async fn start(
    req: HttpRequest,
    ctx: Allowed<can::BillingRun>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let actor = Actor::from_ctx(&ctx, &req);
    let (tid, uid) = (ctx.tenant.id, ctx.user.id);
    let id = ctx
        .db(&state, move |c| {
            let id = billrun::create(c, chrono::Utc::now().date_naive(), "manual", Some(uid))?;
            billrun::enqueue(c, tid, id)?;
            audit::record(c, &actor, &Entry::new("bill_run.started", "bill_run", id))?;
            Ok(id)
        })
        .await?;
    state.wakeup.notify();
    Ok(render::see_other(
        &req,
        &format!("{}/billing/runs/{id}", ctx.base()),
    ))
}

#[derive(Template)]
#[template(path = "invoicing/run_partial.html")]
pub struct RunPartial {
    pub base: String,
    pub view: RunView,
    pub invoices: Vec<(i64, String, String, String)>,
}

pub async fn show(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesView>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    use diesel::prelude::*;

    use crate::db::schema::tenant::invoices;
    let id = path.1;
    let (run, invs) = ctx
        .db(&state, move |c| {
            let run = billrun::get(c, id)?;
            let invs: Vec<repo::Invoice> = invoices::table
                .filter(invoices::bill_run_id.eq(id))
                .order(invoices::id)
                .limit(200)
                .select(repo::Invoice::as_select())
                .load(c)?;
            Ok((run, invs))
        })
        .await?;
    let partial = RunPartial {
        base: ctx.base(),
        view: RunView::new(run),
        invoices: invs
            .iter()
            .map(|i| {
                (
                    i.id,
                    i.label(),
                    i.status.clone(),
                    crate::money::Currency::formatter(&i.currency)(i.total),
                )
            })
            .collect(),
    };
    render::page(
        &req,
        ctx.layout(&req, format!("Bill run #{id}"), "invoices"),
        partial,
    )
}

#[derive(Template)]
#[template(path = "invoicing/settings_partial.html")]
pub struct SettingsPartial {
    pub base: String,
    pub csrf_token: String,
    pub form: Fields,
    pub errors: FieldErrors,
    pub placeholders: &'static [&'static str],
    pub preview_subject: String,
    pub preview_body: String,
    pub message: String,
}

async fn render_settings(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    form: Option<Fields>,
    errors: FieldErrors,
    message: String,
) -> AppResult<HttpResponse> {
    let stored = ctx
        .db(state, |c| {
            let t = email::template(c)?;
            let rates = repo::tax_rates(c)?;
            let mut f = Fields::default();
            f.set(
                "auto_finalize",
                if repo::auto_finalize(c)? { "yes" } else { "" },
            );
            f.set("standard_rate", rates.standard.normalize().to_string());
            f.set("reduced_rate", rates.reduced.normalize().to_string());
            f.set("subject", t.subject);
            f.set("body", t.body);
            Ok(f)
        })
        .await?;
    let form = form.unwrap_or(stored);
    let sample = [
        ("number", "INV-000123".to_owned()),
        ("company", ctx.tenant.name.clone()),
        ("account", "Contoso Ltd".to_owned()),
        ("currency", "EUR".to_owned()),
        ("total", "1,200.00".to_owned()),
        ("amount_due", "1,200.00".to_owned()),
        ("due_date", "31 Dec 2026".to_owned()),
        (
            "link",
            format!(
                "{}/p/{}/invoices/123/…",
                state.config.base_url, ctx.tenant.slug
            ),
        ),
    ];
    let partial = SettingsPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        preview_subject: email::fill(form.get("subject"), &sample),
        preview_body: email::fill(form.get("body"), &sample),
        form,
        placeholders: email::PLACEHOLDERS,
        message,
        errors,
    };
    let status = render::status_for(partial.errors.is_empty());
    render::page_with_status(
        req,
        status,
        ctx.layout(req, "Billing settings", "settings"),
        partial,
    )
}

pub async fn settings(
    req: HttpRequest,
    ctx: Allowed<can::SettingsManage>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    render_settings(
        &req,
        &ctx,
        &state,
        None,
        FieldErrors::default(),
        String::new(),
    )
    .await
}

pub async fn save_settings(
    req: HttpRequest,
    ctx: Allowed<can::SettingsManage>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let form = Fields::from_pairs(body.into_inner());
    let mut e = FieldErrors::default();
    let mut rate = |name: &str| match form.decimal(name) {
        Ok(Some(r)) if r >= Decimal::ZERO && r <= Decimal::ONE_HUNDRED => r,
        Ok(None) => Decimal::ZERO,
        Ok(Some(_)) => {
            e.add(name, "A tax rate is a percentage from 0 to 100.");
            Decimal::ZERO
        }
        Err(m) => {
            e.add(name, m);
            Decimal::ZERO
        }
    };
    let (standard, reduced) = (rate("standard_rate"), rate("reduced_rate"));
    let subject = form.get("subject").to_owned();
    let body_text = form.get("body").to_owned();
    if subject.is_empty() || subject.chars().count() > 200 {
        e.add("subject", "Enter a subject of up to 200 characters.");
    }
    if body_text.is_empty() || body_text.chars().count() > 10_000 {
        e.add("body", "Enter a message of up to 10,000 characters.");
    }
    if form.get("action") == "preview" || !e.is_empty() {
        return render_settings(&req, &ctx, &state, Some(form), e, String::new()).await;
    }
    let auto = form.flag("auto_finalize");
    let actor = Actor::from_ctx(&ctx, &req);
    ctx.db(&state, move |c| {
        repo::put_setting(c, "billing.auto_finalize", json!(auto))?;
        repo::put_setting(c, "tax.standard_rate", json!(standard.to_string()))?;
        repo::put_setting(c, "tax.reduced_rate", json!(reduced.to_string()))?;
        repo::put_setting(c, "email.invoice_subject", json!(subject))?;
        repo::put_setting(c, "email.invoice_body", json!(body_text))?;
        audit::record(c, &actor, &Entry::new("settings.billing", "settings", "billing").after(json!({
            "auto_finalize": auto, "standard_rate": standard, "reduced_rate": reduced, "subject": subject,
        })))
    })
    .await?;
    render_settings(
        &req,
        &ctx,
        &state,
        None,
        FieldErrors::default(),
        "Billing settings saved.".into(),
    )
    .await
}
