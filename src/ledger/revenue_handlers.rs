//! `/ledger/revenue` (schedules per invoice line, "Recognize now"), the waterfall
//! `/ledger/revenue/waterfall{,.csv}?from=YYYY-MM&to=YYYY-MM` (rows: invoice month, columns:
//! recognition month, per currency; the CSV holds exactly what the screen shows) and
//! `/ledger/periods` (close or reopen a month; audited).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::NaiveDate;
use diesel::{
    prelude::*,
    sql_query,
    sql_types::{Date, Int8, Nullable, Numeric, Text},
};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use super::{revenue, revrec};
use crate::{
    accounts::domain::Fields,
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed, Permission},
    db::schema::tenant::ledger_periods,
    error::{AppError, AppResult, FieldErrors},
    web::{csrf, render, AppState},
};

#[derive(Debug, Clone, QueryableByName)]
pub struct LineSchedule {
    #[diesel(sql_type = Int8)]
    pub invoice_id: i64,
    #[diesel(sql_type = Text)]
    pub document: String,
    #[diesel(sql_type = Int8)]
    pub line_id: i64,
    #[diesel(sql_type = Text)]
    pub description: String,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Date)]
    pub first_month: NaiveDate,
    #[diesel(sql_type = Date)]
    pub last_month: NaiveDate,
    #[diesel(sql_type = Numeric)]
    pub total: Decimal,
    #[diesel(sql_type = Numeric)]
    pub recognized: Decimal,
    #[diesel(sql_type = Numeric)]
    pub unrecognized: Decimal,
}

#[derive(Template)]
#[template(path = "ledger/revenue_partial.html")]
pub struct RevenuePartial {
    pub base: String,
    pub csrf_token: String,
    pub lines: Vec<LineSchedule>,
    pub can_recognize: bool,
    pub this_month: String,
}

pub async fn page(
    req: HttpRequest,
    ctx: Allowed<can::ReportsView>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let lines: Vec<LineSchedule> = ctx
        .db(&state, |c| {
            Ok(sql_query(
                "SELECT s.invoice_id, COALESCE(i.number, 'Draft ' || i.id) AS document, s.line_id,
                     l.description, s.currency, min(s.month) AS first_month, max(s.month) AS last_month,
                     sum(s.amount) AS total,
                     COALESCE(sum(s.amount) FILTER (WHERE s.recognized_entry_id IS NOT NULL), 0) AS recognized,
                     COALESCE(sum(s.amount) FILTER (WHERE s.recognized_entry_id IS NULL), 0) AS unrecognized
                 FROM revenue_schedules s JOIN invoices i ON i.id = s.invoice_id
                     JOIN invoice_lines l ON l.id = s.line_id
                 GROUP BY s.invoice_id, i.number, i.id, s.line_id, l.description, s.currency
                 ORDER BY s.invoice_id DESC, s.line_id LIMIT 500",
            )
            .load(c)?)
        })
        .await?;
    let partial = RevenuePartial {
        base: ctx.base(),
        csrf_token: csrf::token(&req),
        lines,
        can_recognize: ctx.can(Permission::ConnectorsManage),
        this_month: chrono::Utc::now().date_naive().format("%Y-%m").to_string(),
    };
    render::page(
        &req,
        ctx.layout(&req, "Revenue schedules", "ledger"),
        partial,
    )
}

/// `YYYY-MM` to the month's first day; blank is `None`.
fn parse_month(e: &mut FieldErrors, field: &str, raw: &str) -> Option<NaiveDate> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let d = crate::dates::parse_iso(&format!("{raw}-01")).ok();
    if d.is_none() {
        e.add(field, format!("{raw:?} is not a month; use YYYY-MM."));
    }
    d
}

/// Recognizes every scheduled month through `through` (default: the current month).
pub async fn recognize_now(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let f = Fields::from_pairs(body.into_inner());
    let mut e = FieldErrors::default();
    let through = parse_month(&mut e, "through", f.get("through"));
    e.into_result()?;
    let through = through.unwrap_or_else(|| revrec::month_of(chrono::Utc::now().date_naive()));
    let actor = Actor::from_ctx(&ctx, &req);
    ctx.db(&state, move |c| {
        let posted = revenue::recognize(c, through)?;
        audit::record(
            c,
            &actor,
            &Entry::new("revenue.recognized", "ledger", through.format("%Y-%m"))
                .after(json!({ "through": through, "entries": posted })),
        )
    })
    .await?;
    Ok(render::see_other(
        &req,
        &format!("{}/ledger/revenue", ctx.base()),
    ))
}

#[derive(Debug, Deserialize, Default, Clone)]
pub struct Range {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

#[derive(Debug, Clone, QueryableByName)]
struct Cell {
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = Date)]
    invoice_month: NaiveDate,
    #[diesel(sql_type = Date)]
    month: NaiveDate,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
}

pub struct WaterfallRow {
    pub currency: String,
    pub invoice_month: String,
    /// One amount per column of `Waterfall::months` (empty where nothing is scheduled).
    pub cells: Vec<String>,
    pub total: String,
}

pub struct Waterfall {
    pub months: Vec<String>,
    pub rows: Vec<WaterfallRow>,
}

/// Scheduled amounts (recognized or not) of documents issued in `from..=to` months.
fn waterfall(
    c: &mut PgConnection,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> AppResult<Waterfall> {
    let cells: Vec<Cell> = sql_query(
        "SELECT s.currency, date_trunc('month', i.issue_date)::date AS invoice_month, s.month,
             sum(s.amount) AS amount
         FROM revenue_schedules s JOIN invoices i ON i.id = s.invoice_id
         WHERE ($1::date IS NULL OR i.issue_date >= $1) AND ($2::date IS NULL OR i.issue_date < ($2::date + interval '1 month'))
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .bind::<Nullable<Date>, _>(from)
    .bind::<Nullable<Date>, _>(to)
    .load(c)?;
    let mut months: Vec<NaiveDate> = cells.iter().map(|c| c.month).collect();
    months.sort();
    months.dedup();
    let mut rows: Vec<WaterfallRow> = Vec::new();
    let mut current: Option<(String, NaiveDate, Vec<Decimal>)> = None;
    let finish =
        |(currency, invoice_month, amounts): (String, NaiveDate, Vec<Decimal>)| WaterfallRow {
            currency,
            invoice_month: invoice_month.format("%Y-%m").to_string(),
            total: amounts.iter().sum::<Decimal>().round_dp(2).to_string(),
            cells: amounts
                .iter()
                .map(|a| {
                    if a.is_zero() {
                        String::new()
                    } else {
                        a.round_dp(2).to_string()
                    }
                })
                .collect(),
        };
    for cell in cells {
        let same = current
            .as_ref()
            .is_some_and(|r| r.0 == cell.currency && r.1 == cell.invoice_month);
        if !same {
            if let Some(done) = current.take() {
                rows.push(finish(done));
            }
            current = Some((
                cell.currency.clone(),
                cell.invoice_month,
                vec![Decimal::ZERO; months.len()],
            ));
        }
        if let (Some(r), Ok(i)) = (current.as_mut(), months.binary_search(&cell.month)) {
            r.2[i] += cell.amount;
        }
    }
    if let Some(done) = current.take() {
        rows.push(finish(done));
    }
    Ok(Waterfall {
        months: months
            .iter()
            .map(|m| m.format("%Y-%m").to_string())
            .collect(),
        rows,
    })
}

impl Range {
    fn parse(&self) -> AppResult<(Option<NaiveDate>, Option<NaiveDate>)> {
        let mut e = FieldErrors::default();
        let from = parse_month(&mut e, "from", &self.from);
        let to = parse_month(&mut e, "to", &self.to);
        if from.zip(to).is_some_and(|(f, t)| f > t) {
            e.add("to", "The end of the range is before its start.");
        }
        e.into_result()?;
        Ok((from, to))
    }

    fn query(&self) -> String {
        serde_urlencoded::to_string([("from", self.from.trim()), ("to", self.to.trim())])
            .unwrap_or_default()
    }
}

#[derive(Template)]
#[template(path = "ledger/waterfall_partial.html")]
pub struct WaterfallPartial {
    pub base: String,
    pub range: Range,
    pub query: String,
    pub w: Waterfall,
    pub can_export: bool,
}

pub async fn waterfall_page(
    req: HttpRequest,
    ctx: Allowed<can::ReportsView>,
    state: web::Data<AppState>,
    range: web::Query<Range>,
) -> AppResult<HttpResponse> {
    let range = range.into_inner();
    let (from, to) = range.parse()?;
    let w = ctx.db(&state, move |c| waterfall(c, from, to)).await?;
    let partial = WaterfallPartial {
        base: ctx.base(),
        query: range.query(),
        range,
        w,
        can_export: ctx.can(Permission::ReportsExport),
    };
    render::page(
        &req,
        ctx.layout(&req, "Revenue waterfall", "ledger"),
        partial,
    )
}

pub async fn waterfall_csv(
    ctx: Allowed<can::ReportsExport>,
    state: web::Data<AppState>,
    range: web::Query<Range>,
) -> AppResult<HttpResponse> {
    let (from, to) = range.parse()?;
    let w = ctx.db(&state, move |c| waterfall(c, from, to)).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut head = vec!["currency".to_owned(), "invoice_month".to_owned()];
    head.extend(w.months.iter().cloned());
    head.push("total".to_owned());
    out.write_record(&head).map_err(AppError::internal)?;
    for r in &w.rows {
        let mut rec = vec![r.currency.clone(), r.invoice_month.clone()];
        rec.extend(r.cells.iter().cloned());
        rec.push(r.total.clone());
        out.write_record(&rec).map_err(AppError::internal)?;
    }
    let body = out.into_inner().map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"revenue-waterfall.csv\"",
        ))
        .body(body))
}

pub struct PeriodView {
    pub month: String,
    pub closed: bool,
    pub closed_at: String,
    pub closed_by: String,
}

#[derive(Template)]
#[template(path = "ledger/periods_partial.html")]
pub struct PeriodsPartial {
    pub base: String,
    pub csrf_token: String,
    pub periods: Vec<PeriodView>,
    pub can_manage: bool,
}

pub async fn periods(
    req: HttpRequest,
    ctx: Allowed<can::ReportsView>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    type Row = (
        NaiveDate,
        Option<chrono::DateTime<chrono::Utc>>,
        Option<i64>,
    );
    let rows: Vec<Row> = ctx
        .db(&state, |c| {
            Ok(ledger_periods::table
                .order(ledger_periods::month.desc())
                .select((
                    ledger_periods::month,
                    ledger_periods::closed_at,
                    ledger_periods::closed_by,
                ))
                .load(c)?)
        })
        .await?;
    let partial = PeriodsPartial {
        base: ctx.base(),
        csrf_token: csrf::token(&req),
        periods: rows
            .into_iter()
            .map(|(month, at, by)| PeriodView {
                month: month.format("%Y-%m").to_string(),
                closed: at.is_some(),
                closed_at: at
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default(),
                closed_by: by.map(|u| format!("user {u}")).unwrap_or_default(),
            })
            .collect(),
        can_manage: ctx.can(Permission::ConnectorsManage),
    };
    render::page(&req, ctx.layout(&req, "Ledger periods", "ledger"), partial)
}

/// Closes (`action=close`) or reopens (`action=reopen`) the month `month` (YYYY-MM).
pub async fn set_period(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let f = Fields::from_pairs(body.into_inner());
    let mut e = FieldErrors::default();
    let month = parse_month(&mut e, "month", f.get("month"));
    if month.is_none() && f.get("month").trim().is_empty() {
        e.add("month", "Choose a month.");
    }
    let close = match f.get("action") {
        "close" => true,
        "reopen" => false,
        _ => {
            e.add("action", "Choose close or reopen.");
            false
        }
    };
    e.into_result()?;
    let Some(month) = month else {
        let mut e = FieldErrors::default();
        e.add("month", "Choose a month.");
        return Err(AppError::Validation(e));
    };
    let actor = Actor::from_ctx(&ctx, &req);
    let user_id = ctx.user.id;
    ctx.db(&state, move |c| {
        let before = revenue::closed_months(c)?.contains(&month);
        revenue::set_closed(c, month, close, user_id)?;
        let action = if close {
            "ledger_period.closed"
        } else {
            "ledger_period.reopened"
        };
        audit::record(
            c,
            &actor,
            &Entry::new(action, "ledger_period", month.format("%Y-%m"))
                .before(json!({ "closed": before }))
                .after(json!({ "closed": close })),
        )
    })
    .await?;
    Ok(render::see_other(
        &req,
        &format!("{}/ledger/periods", ctx.base()),
    ))
}
