//! `GET /reports/collections`: DSO (standard and count-back, monthly trend and chart),
//! collections lag, CEI, overdue by account and promises due; `section=` narrows the page,
//! `format=csv` exports exactly the tables on screen.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{Duration, Months, NaiveDate};
use serde::Deserialize;

use super::{
    collections::{month_start, periods},
    collections_repo::{self as repo, Filters},
    collections_view::{build, csv, Loaded, Table, COUNT_BACK_MONTHS},
    filters,
};
use crate::{
    accounts::handlers::{members, visibility},
    auth::permissions::{can, Allowed, Permission},
    error::{AppError, AppResult, FieldErrors},
    tenants::repo::Member,
    web::{layout::Layout, render, AppState},
};

/// Months a range may span (each month end is one AR reconstruction).
pub const MAX_MONTHS: usize = 24;

pub const SECTIONS: [(&str, &str); 5] = [
    ("dso", "DSO"),
    ("lag", "Collections lag"),
    ("cei", "CEI"),
    ("overdue", "Overdue by account"),
    ("promises", "Promises due"),
];

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
    pub section: String,
    #[serde(default)]
    pub format: String,
}

impl Params {
    /// This view's query string with some parameters replaced (empty ones dropped).
    pub fn link(&self, changes: &[(&str, &str)]) -> String {
        filters::link(
            vec![
                ("from", self.from.as_str()),
                ("to", self.to.as_str()),
                ("currency", self.currency.as_str()),
                ("owner", self.owner.as_str()),
                ("account", self.account.as_str()),
                ("section", self.section.as_str()),
            ],
            changes,
        )
    }
}

/// The default range: the last twelve months up to today.
pub fn default_from(today: NaiveDate) -> NaiveDate {
    month_start(today)
        .checked_sub_months(Months::new(11))
        .unwrap_or(today)
}

/// Checks every filter; all problems are reported at once (422), never a 500.
pub fn validate(
    p: &Params,
    today: NaiveDate,
    visible_owner: Option<i64>,
) -> Result<(Filters, Vec<&'static str>), FieldErrors> {
    let mut e = FieldErrors::default();
    let to = filters::date(&mut e, "to", &p.to).unwrap_or(today);
    let from = filters::date(&mut e, "from", &p.from).unwrap_or_else(|| default_from(to));
    if from > to {
        e.add("to", "The end of the date range is before its start.");
    } else if periods(from, to).len() > MAX_MONTHS {
        e.add(
            "from",
            format!("The range spans more than {MAX_MONTHS} months; choose a shorter one."),
        );
    }
    let currency = filters::currency(&mut e, &p.currency);
    let owner = filters::owner(&mut e, &p.owner);
    let account = filters::account(&mut e, &p.account);
    let sections: Vec<&'static str> = match p.section.trim() {
        "" => SECTIONS.iter().map(|(c, _)| *c).collect(),
        raw => match SECTIONS.iter().find(|(c, _)| *c == raw) {
            Some((c, _)) => vec![*c],
            None => {
                e.add(
                    "section",
                    "The section is one of dso, lag, cei, overdue, promises.",
                );
                vec![]
            }
        },
    };
    if !matches!(p.format.trim(), "" | "html" | "csv") {
        e.add("format", "The format is html or csv.");
    }
    if !e.is_empty() {
        return Err(e);
    }
    Ok((
        Filters {
            from,
            to,
            currency,
            owner,
            account,
            visible_owner,
        },
        sections,
    ))
}

/// Runs the queries the chosen sections need.
pub fn load(
    c: &mut diesel::PgConnection,
    f: &Filters,
    sections: &[&str],
    today: NaiveDate,
) -> AppResult<Loaded> {
    let mut l = Loaded {
        periods: periods(f.from, f.to),
        ..Loaded::default()
    };
    let has = |s: &str| sections.contains(&s);
    if has("dso") || has("cei") {
        let history = month_start(f.from)
            .checked_sub_months(Months::new(COUNT_BACK_MONTHS - 1))
            .unwrap_or(f.from);
        l.sales = repo::sales_by_month(c, f, history)?;
        let mut days: Vec<NaiveDate> = l.periods.iter().map(|p| p.end).collect();
        if has("cei") {
            days.insert(0, f.from - Duration::days(1));
        }
        for d in days {
            let ar = repo::ar_as_of(c, f, d)?;
            l.ar.push((d, ar));
        }
    }
    if has("lag") {
        l.paid = Some(repo::paid_invoices(c, f)?);
    }
    if has("overdue") {
        l.overdue = Some(repo::overdue_by_account(c, f, today)?);
    }
    if has("promises") {
        l.promises = Some(repo::promises_due(c, f, today + Duration::days(7))?);
    }
    Ok(l)
}

pub struct CollectionsData {
    pub base: String,
    pub params: Params,
    pub from: String,
    pub to: String,
    pub today: String,
    pub members: Vec<Member>,
    pub sections: Vec<(&'static str, &'static str)>,
    pub tables: Vec<Table>,
    pub csv: Option<String>,
}

#[derive(Template)]
#[template(path = "reports/collections_partial.html")]
pub struct CollectionsPartial {
    pub v: CollectionsData,
}

#[derive(Template)]
#[template(path = "reports/collections.html")]
pub struct CollectionsPage {
    pub layout: Layout,
    pub v: CollectionsData,
}

pub async fn page(
    req: HttpRequest,
    ctx: Allowed<can::ReportsView>,
    state: web::Data<AppState>,
    params: web::Query<Params>,
) -> AppResult<HttpResponse> {
    let params = params.into_inner();
    let is_csv = params.format.trim() == "csv";
    if is_csv && !ctx.can(Permission::ReportsExport) {
        return Err(AppError::Forbidden);
    }
    let today = crate::invoicing::handlers::today();
    let (filters, sections) =
        validate(&params, today, visibility(&ctx).owner_only).map_err(AppError::Validation)?;
    let members = members(&state, ctx.tenant.id).await?;
    let f = filters.clone();
    let s = sections.clone();
    let loaded = ctx.db(&state, move |c| load(c, &f, &s, today)).await?;
    let base = ctx.base();
    let tables = build(
        &base,
        &members,
        today,
        filters.from,
        filters.to,
        &sections,
        &loaded,
    );
    if is_csv {
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                format!(
                    "attachment; filename=\"collections-{}-{}.csv\"",
                    filters.from, filters.to
                ),
            ))
            .body(csv(&tables)?));
    }
    let v = CollectionsData {
        from: filters.from.to_string(),
        to: filters.to.to_string(),
        today: today.to_string(),
        sections: SECTIONS.to_vec(),
        csv: ctx
            .can(Permission::ReportsExport)
            .then(|| params.link(&[("format", "csv")])),
        base,
        params,
        members,
        tables,
    };
    let body = if render::is_htmx(&req) {
        CollectionsPartial { v }.render()
    } else {
        CollectionsPage {
            layout: ctx.layout(&req, "Collections report", "reports"),
            v,
        }
        .render()
    }
    .map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Vary", "HX-Request"))
        .body(body))
}
