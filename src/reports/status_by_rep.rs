//! `GET /reports/invoice-status`: invoice counts and amounts per status per owner ("rep").
//!
//! Rules:
//! - Invoices only (`kind = 'invoice'`; credit notes are not counted), filtered by issue date
//!   (`from`/`to`, inclusive), currency, and payer account (`account` = the account and its
//!   descendants). An invoice belongs to the owner (`owner_user_id`) of its payer
//!   (`bill_to_account_id`); payers without one form the "No owner" row.
//! - Statuses: draft, open, overdue, paid, void, uncollectible, where overdue = open with a due
//!   date before today and open = every other open invoice, so each invoice is in exactly one
//!   column. The amount is the invoice total. Never summed across currencies.
//! - Owner names come from the control schema through the members listing, never from a join
//!   with tenant tables. Sales see only accounts they own.
//! - Each cell links to a detail view of its invoices (`view=detail&status=&owner=&currency=`),
//!   because the invoice list filters by the customer's owner rather than the payer's and has
//!   no overdue or currency filter. The CSV holds exactly the rows on screen.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::{
    filters,
    mrr_repo::Owner,
    status_repo::{detail, summary, AggRow, InvoiceRow},
};
use crate::{
    accounts::{
        csv_io::cell,
        handlers::{members, visibility},
    },
    auth::permissions::{can, Allowed, Permission},
    error::{AppError, AppResult, FieldErrors},
    money::Currency,
    tenants::repo::Member,
    web::{render, AppState},
};

pub const STATUSES: [(&str, &str); 6] = [
    ("draft", "Draft"),
    ("open", "Open"),
    ("overdue", "Overdue"),
    ("paid", "Paid"),
    ("void", "Void"),
    ("uncollectible", "Uncollectible"),
];

/// Invoices the detail view lists at most.
pub const DETAIL_LIMIT: i64 = 1000;

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
    pub status: String,
    #[serde(default)]
    pub view: String,
    #[serde(default)]
    pub format: String,
}

impl Params {
    pub fn link(&self, changes: &[(&str, &str)]) -> String {
        filters::link(
            vec![
                ("from", self.from.as_str()),
                ("to", self.to.as_str()),
                ("currency", self.currency.as_str()),
                ("owner", self.owner.as_str()),
                ("account", self.account.as_str()),
                ("status", self.status.as_str()),
                ("view", self.view.as_str()),
            ],
            changes,
        )
    }

    pub fn is_detail(&self) -> bool {
        self.view.trim() == "detail"
    }
}

#[derive(Debug, Clone)]
pub struct Filters {
    pub today: NaiveDate,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub currency: Option<String>,
    pub owner: Owner,
    pub account: Option<i64>,
    pub status: Option<&'static str>,
    pub visible_owner: Option<i64>,
}

/// Checks every filter; all problems are reported at once (422), never a 500.
pub fn validate(
    p: &Params,
    today: NaiveDate,
    visible_owner: Option<i64>,
) -> Result<Filters, FieldErrors> {
    let mut e = FieldErrors::default();
    let from = filters::date(&mut e, "from", &p.from);
    let to = filters::date(&mut e, "to", &p.to);
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            e.add("to", "The end of the issue date range is before its start.");
        }
    }
    let currency = filters::currency(&mut e, &p.currency);
    let owner = filters::owner(&mut e, &p.owner);
    let account = filters::account(&mut e, &p.account);
    let status = match p.status.trim() {
        "" => None,
        raw => STATUSES
            .iter()
            .find(|(c, _)| *c == raw)
            .map(|(c, _)| *c)
            .or_else(|| {
                e.add(
                    "status",
                    "The status is draft, open, overdue, paid, void or uncollectible.",
                );
                None
            }),
    };
    if !matches!(p.view.trim(), "" | "summary" | "detail") {
        e.add("view", "The view is summary or detail.");
    }
    if !matches!(p.format.trim(), "" | "html" | "csv") {
        e.add("format", "The format is html or csv.");
    }
    if !e.is_empty() {
        return Err(e);
    }
    Ok(Filters {
        today,
        from,
        to,
        currency,
        owner,
        account,
        status,
        visible_owner,
    })
}

fn amount(currency: &str, d: Decimal) -> (String, String) {
    match Currency::parse(currency) {
        Ok(c) => {
            let r = c.round(d);
            (c.format(r), format!("{:.*}", c.exponent() as usize, r))
        }
        Err(_) => (d.to_string(), d.to_string()),
    }
}

pub struct StatusCell {
    pub count: i64,
    pub shown: String,
    pub plain: String,
    pub href: String,
}

pub struct OwnerLine {
    pub is_total: bool,
    pub owner_id: String,
    pub owner: String,
    pub cells: Vec<StatusCell>,
}

pub struct Block {
    pub currency: String,
    pub lines: Vec<OwnerLine>,
}

fn owner_label(members: &[Member], key: Option<i64>) -> String {
    match key {
        None => "No owner".to_owned(),
        Some(id) => members
            .iter()
            .find(|m| m.user_id == id)
            .map_or_else(|| format!("User #{id}"), |m| m.name.clone()),
    }
}

pub fn build(base: &str, p: &Params, members: &[Member], rows: &[AggRow]) -> Vec<Block> {
    // (currency, owner) → status → (count, amount); owners sort by name, "No owner" last.
    type Sums = BTreeMap<&'static str, (i64, Decimal)>;
    type OwnerKey = (bool, String, Option<i64>);
    let mut by: BTreeMap<String, BTreeMap<OwnerKey, Sums>> = BTreeMap::new();
    for r in rows {
        let Some((st, _)) = STATUSES.iter().find(|(c, _)| *c == r.status) else {
            continue;
        };
        let key = (
            r.owner_user_id.is_none(),
            owner_label(members, r.owner_user_id),
            r.owner_user_id,
        );
        let e = by
            .entry(r.currency.clone())
            .or_default()
            .entry(key)
            .or_default()
            .entry(st)
            .or_default();
        e.0 += r.n;
        e.1 += r.amount;
    }
    by.into_iter()
        .map(|(currency, owners)| {
            let cells_of = |sums: &Sums, owner: &str| {
                STATUSES
                    .iter()
                    .map(|(st, _)| {
                        let (count, total) = sums.get(st).copied().unwrap_or_default();
                        let (shown, plain) = amount(&currency, total);
                        let q = p.link(&[
                            ("view", "detail"),
                            ("status", st),
                            ("owner", owner),
                            ("currency", &currency),
                        ]);
                        StatusCell {
                            count,
                            shown,
                            plain,
                            href: format!("{base}/reports/invoice-status?{q}"),
                        }
                    })
                    .collect::<Vec<_>>()
            };
            let mut all = Sums::new();
            let mut lines: Vec<OwnerLine> = owners
                .iter()
                .map(|((_, label, id), sums)| {
                    for (st, (n, a)) in sums {
                        let e = all.entry(st).or_default();
                        e.0 += n;
                        e.1 += a;
                    }
                    let owner = id.map_or_else(|| "none".to_owned(), |i| i.to_string());
                    OwnerLine {
                        is_total: false,
                        owner_id: id.map(|i| i.to_string()).unwrap_or_default(),
                        owner: label.clone(),
                        cells: cells_of(sums, &owner),
                    }
                })
                .collect();
            lines.push(OwnerLine {
                is_total: true,
                owner_id: String::new(),
                owner: format!("Total {currency}"),
                cells: cells_of(&all, &p.owner),
            });
            Block { currency, lines }
        })
        .collect()
}

pub fn summary_csv(blocks: &[Block]) -> AppResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["currency".to_owned(), "owner_id".into(), "owner".into()];
    for (st, _) in STATUSES {
        header.push(format!("{st}_count"));
        header.push(format!("{st}_amount"));
    }
    w.write_record(&header).map_err(AppError::internal)?;
    for b in blocks {
        for l in &b.lines {
            let mut rec = vec![b.currency.clone(), l.owner_id.clone(), cell(&l.owner)];
            for c in &l.cells {
                rec.push(c.count.to_string());
                rec.push(c.plain.clone());
            }
            w.write_record(&rec).map_err(AppError::internal)?;
        }
    }
    w.into_inner().map_err(AppError::internal)
}

pub struct DetailLine {
    pub id: i64,
    pub number: String,
    pub href: String,
    pub account_id: i64,
    pub account: String,
    pub account_href: String,
    pub owner_id: String,
    pub owner: String,
    pub currency: String,
    pub issue_date: String,
    pub due_date: String,
    pub status: String,
    pub shown: String,
    pub plain: String,
}

fn build_detail(base: &str, members: &[Member], rows: Vec<InvoiceRow>) -> Vec<DetailLine> {
    rows.into_iter()
        .map(|r| {
            let (shown, plain) = amount(&r.currency, r.total);
            DetailLine {
                href: format!("{base}/invoices/{}", r.id),
                number: r.number.unwrap_or_else(|| format!("Draft #{}", r.id)),
                id: r.id,
                account_href: format!("{base}/accounts/{}", r.account_id),
                account_id: r.account_id,
                account: r.display_name,
                owner_id: r.owner_user_id.map(|i| i.to_string()).unwrap_or_default(),
                owner: owner_label(members, r.owner_user_id),
                currency: r.currency,
                issue_date: r.issue_date.to_string(),
                due_date: r.due_date.map(|d| d.to_string()).unwrap_or_default(),
                status: r.st,
                shown,
                plain,
            }
        })
        .collect()
}

fn detail_csv(lines: &[DetailLine]) -> AppResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "invoice_id",
        "number",
        "account_id",
        "account",
        "owner_id",
        "owner",
        "currency",
        "issue_date",
        "due_date",
        "status",
        "total",
    ])
    .map_err(AppError::internal)?;
    for l in lines {
        w.write_record([
            l.id.to_string().as_str(),
            &cell(&l.number),
            &l.account_id.to_string(),
            &cell(&l.account),
            &l.owner_id,
            &cell(&l.owner),
            &l.currency,
            &l.issue_date,
            &l.due_date,
            &l.status,
            &l.plain,
        ])
        .map_err(AppError::internal)?;
    }
    w.into_inner().map_err(AppError::internal)
}

pub struct StatusData {
    pub base: String,
    pub params: Params,
    pub members: Vec<Member>,
    pub statuses: Vec<(&'static str, &'static str)>,
    pub blocks: Vec<Block>,
    pub detail: Option<Vec<DetailLine>>,
    pub limit: i64,
    pub csv: Option<String>,
    pub summary_link: String,
}

#[derive(Template)]
#[template(path = "reports/status_partial.html")]
pub struct StatusPartial {
    pub v: StatusData,
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
    let f = validate(&params, today, visibility(&ctx).owner_only).map_err(AppError::Validation)?;
    let members = members(&state, ctx.tenant.id).await?;
    let base = ctx.base();
    let detail_view = params.is_detail();
    let (blocks, detail) = if detail_view {
        let rows = ctx.db(&state, move |c| detail(c, &f)).await?;
        (Vec::new(), Some(build_detail(&base, &members, rows)))
    } else {
        let rows = ctx.db(&state, move |c| summary(c, &f)).await?;
        (build(&base, &params, &members, &rows), None)
    };
    if csv {
        let (name, body) = match &detail {
            Some(lines) => ("invoice-status-detail", detail_csv(lines)?),
            None => ("invoice-status", summary_csv(&blocks)?),
        };
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                format!("attachment; filename=\"{name}-{today}.csv\""),
            ))
            .body(body));
    }
    let v = StatusData {
        statuses: STATUSES.to_vec(),
        csv: ctx
            .can(Permission::ReportsExport)
            .then(|| params.link(&[("format", "csv")])),
        summary_link: params.link(&[("view", ""), ("status", "")]),
        limit: DETAIL_LIMIT,
        base,
        params,
        members,
        blocks,
        detail,
    };
    render::page(
        &req,
        ctx.layout(&req, "Invoice status by owner", "reports"),
        StatusPartial { v },
    )
}
