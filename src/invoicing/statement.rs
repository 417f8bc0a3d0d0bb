//! Customer statements: the page, its CSV and PDF, and emailing it to the billing contacts.
//!
//! Rules (the arithmetic is in [`domain`]):
//! - The account is the payer: invoices and credit notes it is billed for
//!   (`bill_to_account_id`), payments it made. Drafts and void documents never appear (a void
//!   invoice is treated as never issued; whatever account credit it drew was returned).
//! - Everything is reconstructed from dates, never from today's `amount_due`: documents on
//!   their issue date, payments on `received_on`, bounces on the day they were reversed,
//!   refunds on `refunded_on`, credit notes settle their invoice on their issue date. An
//!   application written in the transaction that recorded its payment settles on the date
//!   the cash was received; one made later (applying unapplied cash, unapplying) on the day it
//!   was made. Timestamps are read as UTC days, like the billing date.
//! - The default range is the 90 days (both ends included) up to today; the emailed statement
//!   covers the 90 days up to the day it is delivered.
//! - User text reaches Typst only through `sys.inputs`, never as markup.

#[path = "statement_data.rs"]
pub mod data;
#[path = "statement_domain.rs"]
pub mod domain;
#[path = "statement_pdf.rs"]
pub mod print;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{Days, NaiveDate};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use self::{
    data::{build, company, file_name, recipients, show, views, SectionView},
    domain::{Kind, Statement},
    print::{prepare, typeset},
};
use super::handlers::today;
use crate::{
    accounts::{csv_io::cell, domain::Fields, handlers::visibility, repo as accounts},
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed, Permission},
    db::{self, scope::TenantSchema, PgPool},
    email::message::OutgoingEmail,
    error::{AppError, AppResult, FieldErrors},
    jobs::outbox as jobs_outbox,
    money::Currency,
    tenants::TenantCtx,
    web::{csrf, layout::Layout, render, AppState},
};

/// Days a statement covers when no start date is given (90 with both ends included).
const DEFAULT_SPAN: Days = Days::new(89);

/// Everything the page needs; shared by the full page and its htmx partial.
pub struct View {
    pub base: String,
    pub csrf_token: String,
    pub account_id: i64,
    pub account_name: String,
    pub account_number: String,
    pub from: String,
    pub to: String,
    pub from_day: String,
    pub to_day: String,
    pub query: String,
    pub errors: FieldErrors,
    pub notice: String,
    pub sections: Vec<SectionView>,
    pub can_send: bool,
    pub email_key: String,
}

#[derive(Template)]
#[template(path = "invoicing/statement_partial.html")]
pub struct StatementPartial {
    pub v: View,
}

#[derive(Template)]
#[template(path = "invoicing/statement.html")]
pub struct StatementPage {
    pub layout: Layout,
    pub v: View,
}

#[derive(Debug, Deserialize, Default, Clone)]
pub struct RangeParams {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

/// The range asked for, or the messages to show next to the date fields.
fn range(p: &RangeParams) -> Result<(NaiveDate, NaiveDate), FieldErrors> {
    let form = Fields::from_pairs([("from".into(), p.from.clone()), ("to".into(), p.to.clone())]);
    let mut e = FieldErrors::default();
    let to = form.date("to").map_err(|m| e.add("to", m)).ok().flatten();
    let from = form
        .date("from")
        .map_err(|m| e.add("from", m))
        .ok()
        .flatten();
    let to = to.unwrap_or_else(today);
    if to > today() {
        e.add("to", "A statement cannot end after today.");
    }
    let from = from.unwrap_or_else(|| to.checked_sub_days(DEFAULT_SPAN).unwrap_or(to));
    if from > to && e.is_empty() {
        e.add("from", "The start date must be on or before the end date.");
    }
    if e.is_empty() {
        Ok((from, to))
    } else {
        Err(e)
    }
}

/// The page, with the statement when the range is valid (422 with messages otherwise).
async fn respond(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    id: i64,
    p: &RangeParams,
    notice: String,
) -> AppResult<HttpResponse> {
    let asked = range(p);
    let span = asked.as_ref().ok().copied();
    let vis = visibility(ctx);
    let (account, statement) = ctx
        .db(state, move |c| {
            let a = accounts::get_visible(c, id, vis)?;
            let s = match span {
                Some((from, to)) => Some(build(c, id, from, to)?),
                None => None,
            };
            Ok((a, s))
        })
        .await?;
    let base = ctx.base();
    let (errors, from, to, edges) = match asked {
        Ok((f, t)) => (
            FieldErrors::default(),
            f.to_string(),
            t.to_string(),
            (show(f), show(t)),
        ),
        Err(e) => (e, p.from.clone(), p.to.clone(), Default::default()),
    };
    let valid = errors.is_empty();
    let v = View {
        sections: statement.map(|s| views(&s, &base)).unwrap_or_default(),
        base,
        csrf_token: csrf::token(req),
        account_id: id,
        account_name: account.display_name.clone(),
        account_number: account.account_number.clone(),
        query: serde_urlencoded::to_string([("from", &from), ("to", &to)]).unwrap_or_default(),
        from,
        to,
        from_day: edges.0,
        to_day: edges.1,
        errors,
        notice,
        can_send: ctx.can(Permission::InvoicesSend),
        email_key: uuid::Uuid::new_v4().simple().to_string(),
    };
    let body = if render::is_htmx(req) {
        StatementPartial { v }.render()
    } else {
        let title = format!("Statement · {}", account.display_name);
        let layout = ctx.layout(req, title, "accounts");
        StatementPage { layout, v }.render()
    }
    .map_err(AppError::internal)?;
    Ok(HttpResponse::build(render::status_for(valid))
        .content_type("text/html; charset=utf-8")
        .insert_header(("Vary", "HX-Request"))
        .body(body))
}

/// `GET /accounts/{aid}/statement`
pub async fn page(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesView>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    q: web::Query<RangeParams>,
) -> AppResult<HttpResponse> {
    respond(&req, &ctx, &state, path.1, &q, String::new()).await
}

/// Amounts for spreadsheets: rounded to the currency, no grouping, `.` as decimal point.
fn plain(code: &str, d: Decimal) -> String {
    match Currency::parse(code) {
        Ok(c) => {
            let r = c.round(d);
            let r = if r.is_zero() { Decimal::ZERO } else { r };
            format!("{:.*}", c.exponent() as usize, r)
        }
        Err(_) => d.normalize().to_string(),
    }
}

pub const CSV_COLUMNS: [&str; 10] = [
    "currency",
    "date",
    "type",
    "invoice_id",
    "payment_id",
    "reference",
    "details",
    "charge",
    "credit",
    "balance",
];

fn csv_of(s: &Statement) -> AppResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_COLUMNS).map_err(AppError::internal)?;
    for x in &s.sections {
        let c = x.currency.as_str();
        let edge = |w: &mut csv::Writer<Vec<u8>>, kind: &str, day: NaiveDate, bal: Decimal| {
            let (day, bal) = (day.to_string(), plain(c, bal));
            w.write_record([c, &day, kind, "", "", "", "", "", "", &bal])
        };
        edge(&mut w, "opening_balance", s.from, x.opening).map_err(AppError::internal)?;
        for r in &x.rows {
            let m = &r.movement;
            let doc = matches!(m.kind, Kind::Invoice | Kind::CreditNote);
            let id = m.id.to_string();
            let (inv, pay) = if doc {
                (id.as_str(), "")
            } else {
                ("", id.as_str())
            };
            let amount = plain(c, m.amount);
            let (charge, credit) = if m.kind.is_charge() {
                (amount.as_str(), "")
            } else {
                ("", amount.as_str())
            };
            let (date, balance) = (m.date.to_string(), plain(c, r.balance));
            let (reference, details) = (cell(&m.reference), cell(&m.details));
            w.write_record([
                c,
                &date,
                m.kind.code(),
                inv,
                pay,
                &reference,
                &details,
                charge,
                credit,
                &balance,
            ])
            .map_err(AppError::internal)?;
        }
        edge(&mut w, "closing_balance", s.to, x.closing).map_err(AppError::internal)?;
    }
    w.into_inner().map_err(AppError::internal)
}

/// `GET /accounts/{aid}/statement.csv`: the rows of the page, ids kept, plain decimals.
pub async fn csv(
    ctx: Allowed<can::InvoicesView>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    q: web::Query<RangeParams>,
) -> AppResult<HttpResponse> {
    let (id, (from, to)) = (path.1, range(&q).map_err(AppError::Validation)?);
    let vis = visibility(&ctx);
    let (number, body) = ctx
        .db(&state, move |c| {
            let a = accounts::get_visible(c, id, vis)?;
            Ok((a.account_number, csv_of(&build(c, id, from, to)?)?))
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{}\"", file_name(&number, to, "csv")),
        ))
        .body(body))
}

enum Queued {
    Sent(Vec<String>),
    Repeat,
    NoContact,
}

/// `POST /accounts/{aid}/statement/email`: the outbox renders the PDF when it delivers. The
/// form's `key` is minted with the page, so a double submit queues one email, not two.
pub async fn email(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesSend>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let key = form.get("key");
    let key =
        if !key.is_empty() && key.len() <= 64 && key.chars().all(|c| c.is_ascii_alphanumeric()) {
            key.to_owned()
        } else {
            uuid::Uuid::new_v4().simple().to_string()
        };
    let (actor, vis, tenant_id) = (Actor::from_ctx(&ctx, &req), visibility(&ctx), ctx.tenant.id);
    let queued = ctx
        .db(&state, move |c| {
            let a = accounts::get_visible(c, id, vis)?;
            let to = recipients(c, id)?;
            if to.is_empty() {
                return Ok(Queued::NoContact);
            }
            let company = company(c)?;
            let mail = OutgoingEmail {
                to: to.clone(),
                cc: Vec::new(),
                subject: format!("Statement of account from {company}"),
                text: format!(
                    "Hello {},\n\nplease find attached your statement of account for the last \
                     90 days, with your open invoices by age.\n\nIf anything does not match \
                     your records, just reply to this email.\n\nThank you,\n{company}",
                    a.legal_name
                ),
                html: None,
                attachments: Vec::new(),
                reply_to: None,
                sensitive: false,
                attach_invoice_pdf: None,
                attach_invoice_pdfs: Vec::new(),
                attach_statement: Some(id),
            };
            let key = format!("statement-email:{id}:{key}");
            let kind = jobs_outbox::KIND_EMAIL;
            let Some(outbox_id) =
                jobs_outbox::enqueue(c, tenant_id, kind, &json!(mail), Some(&key))?
            else {
                return Ok(Queued::Repeat);
            };
            audit::record(
                c,
                &actor,
                &Entry::new("statement.emailed", "account", id)
                    .after(json!({ "to": to, "outbox_id": outbox_id })),
            )?;
            Ok(Queued::Sent(to))
        })
        .await?;
    state.wakeup.notify();
    let notice = match queued {
        Queued::Sent(to) => format!("The statement is queued for delivery to {}.", to.join(", ")),
        Queued::Repeat => "This statement email was already queued.".to_owned(),
        Queued::NoContact => "No active contact of this account with an email address receives \
                              invoices or is a billing contact: add one, then send again."
            .to_owned(),
    };
    let p = RangeParams {
        from: form.get("from").to_owned(),
        to: form.get("to").to_owned(),
    };
    respond(&req, &ctx, &state, id, &p, notice).await
}

/// `(file name, PDF)` of the account's statement for the 90 days up to `as_of` (the email
/// attachment; the deliverer has no user, so no visibility check here).
pub async fn render_pdf(
    pool: &PgPool,
    schema: &TenantSchema,
    account_id: i64,
    as_of: NaiveDate,
) -> AppResult<(String, Vec<u8>)> {
    let from = as_of.checked_sub_days(DEFAULT_SPAN).unwrap_or(as_of);
    let schema = schema.clone();
    let (name, data) = db::run(pool, move |c| {
        db::scope::in_tenant(c, &schema, |c| {
            let a = accounts::get(c, account_id)?.ok_or(AppError::NotFound)?;
            prepare(c, &a, from, as_of)
        })
    })
    .await?;
    Ok((name, typeset(data).await?))
}

/// `GET /accounts/{aid}/statement.pdf`
pub async fn pdf_download(
    ctx: Allowed<can::InvoicesView>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    q: web::Query<RangeParams>,
) -> AppResult<HttpResponse> {
    let (id, (from, to)) = (path.1, range(&q).map_err(AppError::Validation)?);
    let vis = visibility(&ctx);
    let (name, data) = ctx
        .db(&state, move |c| {
            let a = accounts::get_visible(c, id, vis)?;
            prepare(c, &a, from, to)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((
            "Content-Disposition",
            format!("inline; filename=\"{name}\""),
        ))
        .insert_header(("Cache-Control", "private, no-store"))
        .body(typeset(data).await?))
}
