//! `GET /reports/mrr`: recurring revenue per currency by month with its movements (rules in
//! [`super::mrr`]), a drill-down to the accounts behind any cell (`month` + `movement`), and
//! `format=csv` of exactly the rows on screen.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{
    filters,
    mrr::{self, Month, Movement},
    mrr_repo::{self as repo, Filters},
    mrr_view::{build_detail, build_summary, detail_csv, summary_csv, Block, DetailLine, Drill},
};
use crate::{
    accounts::handlers::{members, visibility},
    auth::permissions::{can, Allowed, Permission},
    error::{AppError, AppResult, FieldErrors},
    tenants::repo::Member,
    web::{render, AppState},
};

/// The longest range one page computes (ten years of month ends).
pub const MAX_MONTHS: i64 = 120;

#[derive(Debug, Deserialize, Default, Clone)]
pub struct Params {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub month: String,
    #[serde(default)]
    pub movement: String,
    #[serde(default)]
    pub format: String,
}

impl Params {
    /// The query string of this view with some parameters replaced (empty ones dropped).
    pub fn link(&self, changes: &[(&str, &str)]) -> String {
        filters::link(
            vec![
                ("from", self.from.as_str()),
                ("to", self.to.as_str()),
                ("currency", self.currency.as_str()),
                ("owner", self.owner.as_str()),
                ("account", self.account.as_str()),
                ("month", self.month.as_str()),
                ("movement", self.movement.as_str()),
            ],
            changes,
        )
    }
}

/// Validated request.
#[derive(Debug, Clone)]
pub struct Query {
    pub from: Month,
    pub to: Month,
    pub filters: Filters,
    /// Detail view: the month and which accounts.
    pub detail: Option<(Month, Drill)>,
}

fn month(e: &mut FieldErrors, field: &str, raw: &str) -> Option<Month> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let m = Month::parse(raw);
    if m.is_none() {
        e.add(field, format!("{raw:?} is not a month; use YYYY-MM."));
    }
    m
}

/// Checks every filter; all problems are reported at once (422), never a 500.
pub fn validate(
    p: &Params,
    today: chrono::NaiveDate,
    visible_owner: Option<i64>,
) -> Result<Query, FieldErrors> {
    let mut e = FieldErrors::default();
    let to = month(&mut e, "to", &p.to).unwrap_or(Month::of(today));
    let from = month(&mut e, "from", &p.from).unwrap_or_else(|| (0..11).fold(to, |m, _| m.prev()));
    if from > to {
        e.add("to", "The last month is before the first.");
    } else if from.span(to) > MAX_MONTHS {
        e.add(
            "from",
            format!("Choose at most {MAX_MONTHS} months at a time."),
        );
    }
    let currency = filters::currency(&mut e, &p.currency);
    let owner = filters::owner(&mut e, &p.owner);
    let account = filters::account(&mut e, &p.account);
    let at = month(&mut e, "month", &p.month);
    let drill = match p.movement.trim() {
        "" => Some(Drill::Moved),
        "closing" => Some(Drill::Closing),
        raw => Movement::parse(raw).map(Drill::Movement).or_else(|| {
            e.add(
                "movement",
                "The movement is new, expansion, contraction, churn, reactivation or closing.",
            );
            None
        }),
    };
    if at.is_none() && !p.movement.trim().is_empty() {
        e.add("month", "Choose the month of the movement (YYYY-MM).");
    }
    if !matches!(p.format.trim(), "" | "html" | "csv") {
        e.add("format", "The format is html or csv.");
    }
    if !e.is_empty() {
        return Err(e);
    }
    let last = at.map_or(to, |a| a.max(to));
    Ok(Query {
        from,
        to,
        filters: Filters {
            currency,
            owner,
            account,
            visible_owner,
            until: last.last_day(),
        },
        detail: at.zip(drill),
    })
}

pub struct MrrDetail {
    pub month: String,
    pub what: String,
    pub lines: Vec<DetailLine>,
}

pub struct MrrData {
    pub base: String,
    pub params: Params,
    pub from: String,
    pub to: String,
    pub members: Vec<Member>,
    pub movements: Vec<(&'static str, &'static str)>,
    pub blocks: Vec<Block>,
    pub detail: Option<MrrDetail>,
    pub csv: Option<String>,
    pub summary_link: String,
}

#[derive(Template)]
#[template(path = "reports/mrr_partial.html")]
pub struct MrrPartial {
    pub v: MrrData,
}

pub async fn page(
    req: HttpRequest,
    ctx: Allowed<can::ReportsView>,
    state: web::Data<AppState>,
    params: web::Query<Params>,
) -> AppResult<HttpResponse> {
    let params = params.into_inner();
    let csv = params.format.trim() == "csv";
    if csv && !ctx.can(Permission::ReportsExport) {
        return Err(AppError::Forbidden);
    }
    let today = crate::invoicing::handlers::today();
    let q = validate(&params, today, visibility(&ctx).owner_only).map_err(AppError::Validation)?;
    let members = members(&state, ctx.tenant.id).await?;
    let f = q.filters.clone();
    let loaded = ctx.db(&state, move |c| repo::load(c, &f)).await?;
    let base = ctx.base();
    let (blocks, detail) = match q.detail {
        Some((m, drill)) => {
            let report = mrr::report(&loaded.subs, m, m);
            let lines = build_detail(&base, &report, &loaded.names, m, drill);
            let what = match drill {
                Drill::Moved => "Every movement".to_owned(),
                Drill::Movement(mv) => mv.label().to_owned(),
                Drill::Closing => "Accounts with MRR at month end".to_owned(),
            };
            (
                Vec::new(),
                Some(MrrDetail {
                    month: m.to_string(),
                    what,
                    lines,
                }),
            )
        }
        None => {
            let report = mrr::report(&loaded.subs, q.from, q.to);
            (build_summary(&base, &params, &report), None)
        }
    };
    if csv {
        let (name, body) = match &detail {
            Some(d) => (format!("mrr-detail-{}", d.month), detail_csv(&d.lines)?),
            None => (format!("mrr-{}-{}", q.from, q.to), summary_csv(&blocks)?),
        };
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                format!("attachment; filename=\"{name}.csv\""),
            ))
            .body(body));
    }
    let v = MrrData {
        from: q.from.to_string(),
        to: q.to.to_string(),
        movements: Movement::ALL
            .iter()
            .map(|m| (m.code(), m.label()))
            .collect(),
        csv: ctx
            .can(Permission::ReportsExport)
            .then(|| params.link(&[("format", "csv")])),
        summary_link: params.link(&[("month", ""), ("movement", "")]),
        base,
        params,
        members,
        blocks,
        detail,
    };
    render::page(
        &req,
        ctx.layout(&req, "Recurring revenue", "reports"),
        MrrPartial { v },
    )
}
