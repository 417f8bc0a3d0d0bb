//! `/ledger/journal` (filters by date, source and account; CSV with `reports.export`),
//! `/ledger/export.{csv,hledger,beancount,qbo.json,xero.json}?from=&to=`,
//! `/ledger/invoices.{qbo,xero}.json?from=&to=` and `/ledger/reconciliation`.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::{
    export, export_apps,
    repo::{self, JournalFilter, ReconRow},
};
use crate::{
    auth::permissions::{can, Allowed, Permission},
    error::{AppError, AppResult, FieldErrors},
    web::{render, AppState},
};

/// Entries the journal page shows at most (exports have no limit).
const PAGE_LIMIT: i64 = 500;

#[derive(Debug, Deserialize, Default, Clone)]
pub struct Params {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub source_type: String,
    #[serde(default)]
    pub account: String,
}

impl Params {
    fn filter(&self) -> AppResult<JournalFilter> {
        let mut e = FieldErrors::default();
        let mut date = |field: &str, raw: &str| {
            let raw = raw.trim();
            if raw.is_empty() {
                return None;
            }
            let d = crate::dates::parse_iso(raw).ok();
            if d.is_none() {
                e.add(field, format!("{raw:?} is not a date; use YYYY-MM-DD."));
            }
            d
        };
        let from = date("from", &self.from);
        let to = date("to", &self.to);
        if from.zip(to).is_some_and(|(f, t)| f > t) {
            e.add("to", "The end of the date range is before its start.");
        }
        let source_type = match self.source_type.trim() {
            "" => None,
            t if SOURCE_TYPES.iter().any(|(c, _)| *c == t) => Some(t.to_owned()),
            _ => {
                e.add("source_type", "Choose a source from the list.");
                None
            }
        };
        e.into_result()?;
        let account = Some(self.account.trim().to_owned()).filter(|a| !a.is_empty());
        Ok(JournalFilter {
            id: None,
            from,
            to,
            source_type,
            account,
            limit: None,
        })
    }

    pub fn query(&self) -> String {
        let pairs = [
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
            ("source_type", self.source_type.as_str()),
            ("account", self.account.as_str()),
        ];
        let kept: Vec<_> = pairs
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        serde_urlencoded::to_string(kept).unwrap_or_default()
    }
}

pub const SOURCE_TYPES: [(&str, &str); 9] = [
    ("invoice", "Invoice"),
    ("credit_note", "Credit note"),
    ("payment", "Payment received"),
    ("payment_application", "Payment applied / unapplied"),
    ("refund", "Refund"),
    ("payment_reversal", "Payment reversal"),
    ("write_off", "Write-off"),
    ("void", "Void"),
    ("revenue_recognition", "Revenue recognition"),
];

pub struct LineView {
    pub account: String,
    pub debit: String,
    pub credit: String,
    pub source_line: String,
    pub memo: String,
}

pub struct EntryView {
    pub e: export::Entry,
    pub lines: Vec<LineView>,
}

#[derive(Template)]
#[template(path = "ledger/journal_partial.html")]
pub struct JournalPartial {
    pub base: String,
    pub params: Params,
    pub query: String,
    pub sources: [(&'static str, &'static str); 9],
    pub accounts: Vec<repo::GlAccount>,
    pub entries: Vec<EntryView>,
    pub limit: i64,
    pub can_export: bool,
}

pub async fn page(
    req: HttpRequest,
    ctx: Allowed<can::ReportsView>,
    state: web::Data<AppState>,
    params: web::Query<Params>,
) -> AppResult<HttpResponse> {
    let params = params.into_inner();
    let mut filter = params.filter()?;
    filter.limit = Some(PAGE_LIMIT);
    let (accounts, entries) = ctx
        .db(&state, move |c| {
            Ok((repo::chart(c)?, repo::entries(c, &filter)?))
        })
        .await?;
    let entries = entries
        .into_iter()
        .map(|e| EntryView {
            lines: e
                .lines
                .iter()
                .map(|l| {
                    let name = accounts
                        .iter()
                        .find(|a| a.code == l.account_code)
                        .map(|a| format!("{} {}", a.code, a.name))
                        .unwrap_or_else(|| l.account_code.clone());
                    let (debit, credit) = if l.amount > Decimal::ZERO {
                        (l.amount.round_dp(2).to_string(), String::new())
                    } else {
                        (String::new(), (-l.amount).round_dp(2).to_string())
                    };
                    LineView {
                        account: name,
                        debit,
                        credit,
                        source_line: l.source_line.map(|s| s.to_string()).unwrap_or_default(),
                        memo: l.memo.clone(),
                    }
                })
                .collect(),
            e,
        })
        .collect();
    let partial = JournalPartial {
        base: ctx.base(),
        query: params.query(),
        params,
        sources: SOURCE_TYPES,
        accounts,
        entries,
        limit: PAGE_LIMIT,
        can_export: ctx.can(Permission::ReportsExport),
    };
    render::page(&req, ctx.layout(&req, "Journal", "ledger"), partial)
}

#[derive(Clone, Copy)]
enum Format {
    Csv,
    Hledger,
    Beancount,
    Qbo,
    Xero,
}

async fn export_as(
    ctx: Allowed<can::ReportsExport>,
    state: web::Data<AppState>,
    params: Params,
    format: Format,
) -> AppResult<HttpResponse> {
    let filter = params.filter()?;
    let (accounts, entries) = ctx
        .db(&state, move |c| {
            Ok((repo::chart(c)?, repo::entries(c, &filter)?))
        })
        .await?;
    let accounts: Vec<export::Account> = accounts.iter().map(repo::GlAccount::export).collect();
    let (body, mime, ext) = match format {
        Format::Csv => (
            export::csv(&accounts, &entries).map_err(AppError::internal)?,
            "text/csv; charset=utf-8",
            "csv",
        ),
        Format::Hledger => (
            export::hledger(&accounts, &entries),
            "text/plain; charset=utf-8",
            "journal",
        ),
        Format::Beancount => (
            export::beancount(&accounts, &entries),
            "text/plain; charset=utf-8",
            "beancount",
        ),
        Format::Qbo => (
            pretty(&export_apps::qbo_journal(&accounts, &entries))?,
            "application/json",
            "qbo.json",
        ),
        Format::Xero => (
            pretty(&export_apps::xero_journal(&entries))?,
            "application/json",
            "xero.json",
        ),
    };
    attachment(&params, "journal", ext, mime, body)
}

fn pretty(v: &serde_json::Value) -> AppResult<String> {
    serde_json::to_string_pretty(v).map_err(AppError::internal)
}

fn attachment(
    params: &Params,
    name: &str,
    ext: &str,
    mime: &str,
    body: String,
) -> AppResult<HttpResponse> {
    let range = format!(
        "{}_{}",
        params
            .from
            .trim()
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', ""),
        params
            .to
            .trim()
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "")
    );
    Ok(HttpResponse::Ok()
        .content_type(mime)
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}-{range}.{ext}\""),
        ))
        .body(body))
}

pub async fn export_csv(
    ctx: Allowed<can::ReportsExport>,
    state: web::Data<AppState>,
    params: web::Query<Params>,
) -> AppResult<HttpResponse> {
    export_as(ctx, state, params.into_inner(), Format::Csv).await
}

pub async fn export_hledger(
    ctx: Allowed<can::ReportsExport>,
    state: web::Data<AppState>,
    params: web::Query<Params>,
) -> AppResult<HttpResponse> {
    export_as(ctx, state, params.into_inner(), Format::Hledger).await
}

pub async fn export_beancount(
    ctx: Allowed<can::ReportsExport>,
    state: web::Data<AppState>,
    params: web::Query<Params>,
) -> AppResult<HttpResponse> {
    export_as(ctx, state, params.into_inner(), Format::Beancount).await
}

pub async fn export_qbo(
    ctx: Allowed<can::ReportsExport>,
    state: web::Data<AppState>,
    params: web::Query<Params>,
) -> AppResult<HttpResponse> {
    export_as(ctx, state, params.into_inner(), Format::Qbo).await
}

pub async fn export_xero(
    ctx: Allowed<can::ReportsExport>,
    state: web::Data<AppState>,
    params: web::Query<Params>,
) -> AppResult<HttpResponse> {
    export_as(ctx, state, params.into_inner(), Format::Xero).await
}

/// Issued invoices and credit notes in the range (by issue date) as QBO or Xero documents.
async fn invoices_as(
    ctx: Allowed<can::ReportsExport>,
    state: web::Data<AppState>,
    params: Params,
    xero: bool,
) -> AppResult<HttpResponse> {
    let filter = params.filter()?;
    let docs = ctx
        .db(&state, move |c| {
            repo::invoice_docs(c, filter.from, filter.to)
        })
        .await?;
    let (body, ext) = if xero {
        (pretty(&export_apps::xero_invoices(&docs))?, "xero.json")
    } else {
        (pretty(&export_apps::qbo_invoices(&docs))?, "qbo.json")
    };
    attachment(&params, "invoices", ext, "application/json", body)
}

pub async fn invoices_qbo(
    ctx: Allowed<can::ReportsExport>,
    state: web::Data<AppState>,
    params: web::Query<Params>,
) -> AppResult<HttpResponse> {
    invoices_as(ctx, state, params.into_inner(), false).await
}

pub async fn invoices_xero(
    ctx: Allowed<can::ReportsExport>,
    state: web::Data<AppState>,
    params: web::Query<Params>,
) -> AppResult<HttpResponse> {
    invoices_as(ctx, state, params.into_inner(), true).await
}

pub struct ReconView {
    pub label: &'static str,
    pub row: ReconRow,
    pub difference: Decimal,
}

#[derive(Template)]
#[template(path = "ledger/reconciliation_partial.html")]
pub struct ReconPartial {
    pub base: String,
    pub rows: Vec<ReconView>,
}

pub async fn reconciliation(
    req: HttpRequest,
    ctx: Allowed<can::ReportsView>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let rows = ctx.db(&state, repo::reconciliation).await?;
    let rows = rows
        .into_iter()
        .map(|row| ReconView {
            label: match row.what.as_str() {
                "receivable" => "Accounts receivable vs open invoice balances",
                "unapplied_cash" => "Unapplied cash vs unapplied payments",
                _ => "Customer credit vs account credit balances",
            },
            difference: row.ledger - row.documents,
            row,
        })
        .collect();
    let partial = ReconPartial {
        base: ctx.base(),
        rows,
    };
    render::page(
        &req,
        ctx.layout(&req, "Ledger reconciliation", "ledger"),
        partial,
    )
}
