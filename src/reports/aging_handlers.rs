//! `GET /reports/aging`: the summary (rows × buckets per currency, with drill-down links and
//! a bar chart), the invoice-level detail, and `format=csv` of exactly the rows on screen.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::NaiveDate;
use serde::Deserialize;

use super::{
    aging::Bucket,
    aging_repo::{self as repo, Filters, Group},
    aging_view::{build_detail, build_summary, detail_csv, summary_csv, DetailView, SummaryView},
    filters,
};
use crate::{
    accounts::handlers::{members, visibility},
    auth::permissions::{can, Allowed, Permission},
    error::{AppError, AppResult, FieldErrors},
    tenants::repo::Member,
    web::{layout::Layout, render, AppState},
};

/// Invoice rows the detail view shows at most (the page says when it cut).
pub const DETAIL_LIMIT: i64 = 2000;

/// The raw query string, echoed back into the form and every link.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct Params {
    #[serde(default)]
    pub as_of: String,
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub view: String,
    #[serde(default)]
    pub bucket: String,
    #[serde(default)]
    pub format: String,
}

impl Params {
    /// The query string of this view with some parameters replaced (empty ones dropped).
    pub fn link(&self, changes: &[(&str, &str)]) -> String {
        filters::link(
            vec![
                ("as_of", self.as_of.as_str()),
                ("currency", self.currency.as_str()),
                ("owner", self.owner.as_str()),
                ("account", self.account.as_str()),
                ("from", self.from.as_str()),
                ("to", self.to.as_str()),
                ("group", self.group.as_str()),
                ("view", self.view.as_str()),
                ("bucket", self.bucket.as_str()),
            ],
            changes,
        )
    }

    pub fn is_detail(&self) -> bool {
        self.view == "detail"
    }
}

/// Checks every filter; all problems are reported at once (422), never a 500.
pub fn validate(
    p: &Params,
    today: NaiveDate,
    visible_owner: Option<i64>,
) -> Result<(Filters, Group), FieldErrors> {
    let mut e = FieldErrors::default();
    let as_of = filters::date(&mut e, "as_of", &p.as_of).unwrap_or(today);
    let currency = filters::currency(&mut e, &p.currency);
    let owner = filters::owner(&mut e, &p.owner);
    let account = filters::account(&mut e, &p.account);
    let from = filters::date(&mut e, "from", &p.from);
    let to = filters::date(&mut e, "to", &p.to);
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            e.add("to", "The end of the issue date range is before its start.");
        }
    }
    let group = Group::parse(&p.group).unwrap_or_else(|| {
        e.add("group", "Group by account, owner or currency.");
        Group::Account
    });
    if !matches!(p.view.trim(), "" | "summary" | "detail") {
        e.add("view", "The view is summary or detail.");
    }
    if !matches!(p.format.trim(), "" | "html" | "csv") {
        e.add("format", "The format is html or csv.");
    }
    let bucket = match p.bucket.trim() {
        "" => None,
        raw => Bucket::parse(raw).or_else(|| {
            e.add(
                "bucket",
                "The bucket is one of current, 1-30, 31-60, 61-90, 91-120, 120+.",
            );
            None
        }),
    };
    if !e.is_empty() {
        return Err(e);
    }
    Ok((
        Filters {
            as_of,
            currency,
            owner,
            account,
            from,
            to,
            bucket,
            visible_owner,
        },
        group,
    ))
}

/// Everything the page shows; shared by the full page and its htmx partial.
pub struct AgingData {
    pub base: String,
    pub params: Params,
    pub as_of: String,
    pub group: &'static str,
    pub members: Vec<Member>,
    pub buckets: Vec<(&'static str, &'static str)>,
    pub summary: Option<SummaryView>,
    pub detail: Option<DetailView>,
    pub csv: Option<String>,
    pub summary_link: String,
}

#[derive(Template)]
#[template(path = "reports/aging_partial.html")]
pub struct AgingPartial {
    pub v: AgingData,
}

#[derive(Template)]
#[template(path = "reports/aging.html")]
pub struct AgingPage {
    pub layout: Layout,
    pub v: AgingData,
}

enum Loaded {
    Summary(Vec<repo::SummaryRow>),
    Detail(Vec<repo::DetailRow>),
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
    let (filters, group) =
        validate(&params, today, visibility(&ctx).owner_only).map_err(AppError::Validation)?;
    let members = members(&state, ctx.tenant.id).await?;
    let f = filters.clone();
    let detail = params.is_detail();
    let loaded = ctx
        .db(&state, move |c| {
            Ok(if detail {
                Loaded::Detail(repo::detail(c, &f, DETAIL_LIMIT)?)
            } else {
                Loaded::Summary(repo::summary(c, &f, group)?)
            })
        })
        .await?;
    let base = ctx.base();
    if csv {
        let (name, body) = match loaded {
            Loaded::Summary(rows) => (
                "aging-summary",
                summary_csv(&build_summary(&base, &params, group, &members, rows))?,
            ),
            Loaded::Detail(rows) => ("aging-detail", detail_csv(&build_detail(&base, rows))?),
        };
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                format!("attachment; filename=\"{name}-{}.csv\"", filters.as_of),
            ))
            .body(body));
    }
    let (summary, detail) = match loaded {
        Loaded::Summary(rows) => (
            Some(build_summary(&base, &params, group, &members, rows)),
            None,
        ),
        Loaded::Detail(rows) => (None, Some(build_detail(&base, rows))),
    };
    let v = AgingData {
        as_of: filters.as_of.to_string(),
        group: group.code(),
        buckets: Bucket::ALL.iter().map(|b| (b.code(), b.label())).collect(),
        csv: ctx
            .can(Permission::ReportsExport)
            .then(|| params.link(&[("format", "csv")])),
        summary_link: params.link(&[("view", ""), ("bucket", "")]),
        base,
        params,
        members,
        summary,
        detail,
    };
    let body = if render::is_htmx(&req) {
        AgingPartial { v }.render()
    } else {
        AgingPage {
            layout: ctx.layout(&req, "AR aging", "reports"),
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
