//! The invoice list: filters, totals per currency, pagination and a CSV export that keeps
//! invoice ids (so a spreadsheet round trip can be matched back).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::NaiveDate;
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::repo::Invoice;
use crate::{
    accounts::{csv_io::cell, handlers::visibility, repo::Visibility},
    auth::permissions::{can, Allowed},
    db::schema::tenant::{accounts, invoices},
    error::{AppError, AppResult},
    money::Currency,
    tenants::repo::Member,
    web::{render, AppState},
};

pub const PER_PAGE: i64 = 50;

#[derive(Debug, Deserialize, Default, Clone)]
pub struct ListParams {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub page: i64,
}

impl ListParams {
    fn date(s: &str) -> Option<NaiveDate> {
        crate::dates::parse_iso(s).ok()
    }

    pub fn link(&self, page: i64) -> String {
        serde_urlencoded::to_string([
            ("status", self.status.as_str()),
            ("kind", self.kind.as_str()),
            ("q", self.q.as_str()),
            ("account", self.account.as_str()),
            ("owner", self.owner.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
            ("page", &page.to_string()),
        ])
        .unwrap_or_default()
    }
}

type Boxed<'a> = invoices::BoxedQuery<'a, diesel::pg::Pg>;

/// Applies the list's filters to `$q`, any boxed query over `invoices` (the page and the
/// grouped totals), so both always agree on which invoices are listed.
macro_rules! filter_invoices {
    ($q:expr, $p:expr, $vis:expr) => {{
        let (p, vis): (&ListParams, Visibility) = ($p, $vis);
        let mut q = $q;
        if !p.status.is_empty() {
            q = q.filter(invoices::status.eq(p.status.clone()));
        }
        if !p.kind.is_empty() {
            q = q.filter(invoices::kind.eq(p.kind.clone()));
        }
        if let Ok(id) = p.account.parse::<i64>() {
            q = q.filter(
                invoices::account_id
                    .eq(id)
                    .or(invoices::bill_to_account_id.eq(id)),
            );
        }
        if let Some(d) = ListParams::date(&p.from) {
            q = q.filter(invoices::issue_date.ge(d));
        }
        if let Some(d) = ListParams::date(&p.to) {
            q = q.filter(invoices::issue_date.le(d));
        }
        let q_text = p.q.trim();
        if !q_text.is_empty() {
            let like = format!("%{}%", q_text.replace(['%', '_'], ""));
            let matching = accounts::table
                .filter(
                    accounts::display_name
                        .ilike(like.clone())
                        .or(accounts::legal_name.ilike(like.clone())),
                )
                .select(accounts::id);
            q = q.filter(
                invoices::number
                    .ilike(like)
                    .or(invoices::account_id.eq_any(matching)),
            );
        }
        let owner = match (vis.owner_only, p.owner.parse::<i64>().ok()) {
            (Some(me), _) => Some(me),
            (None, o) => o,
        };
        if let Some(o) = owner {
            q = q.filter(
                invoices::account_id.eq_any(
                    accounts::table
                        .filter(accounts::owner_user_id.eq(o))
                        .select(accounts::id),
                ),
            );
        }
        q
    }};
}

fn filtered(p: &ListParams, vis: Visibility) -> Boxed<'static> {
    filter_invoices!(invoices::table.into_boxed(), p, vis)
}

/// Per currency: every listed invoice, the non-void ones, and their total and amount due.
type Totals = (String, i64, i64, Option<Decimal>, Option<Decimal>);

/// A page of the list, and its count and per-currency totals in one grouped statement (void
/// excluded from the sums and from the per-currency count, as the page says; included in the
/// pager's count).
fn page_and_totals(
    c: &mut PgConnection,
    p: &ListParams,
    vis: Visibility,
    page: i64,
) -> AppResult<(Vec<Invoice>, Vec<Totals>)> {
    let list = filtered(p, vis)
        .order((invoices::issue_date.desc(), invoices::id.desc()))
        .limit(PER_PAGE)
        .offset(page * PER_PAGE)
        .select(Invoice::as_select())
        .load(c)?;
    let q = invoices::table
        .group_by(invoices::currency)
        .select((
            invoices::currency,
            diesel::dsl::count(invoices::id),
            diesel::dsl::count(invoices::id).aggregate_filter(invoices::status.ne("void")),
            diesel::dsl::sum(invoices::total).aggregate_filter(invoices::status.ne("void")),
            diesel::dsl::sum(invoices::amount_due).aggregate_filter(invoices::status.ne("void")),
        ))
        .order(invoices::currency)
        .into_boxed();
    let totals = filter_invoices!(q, p, vis).load(c)?;
    Ok((list, totals))
}

pub struct Row {
    pub id: i64,
    pub label: String,
    pub kind: String,
    pub status: String,
    pub account_id: i64,
    pub account: String,
    pub issue_date: String,
    pub due_date: String,
    pub currency: String,
    pub total: String,
    pub amount_due: String,
    pub overdue: bool,
}

fn rows(conn: &mut PgConnection, list: &[Invoice]) -> AppResult<Vec<Row>> {
    let ids: Vec<i64> = list.iter().map(|i| i.account_id).collect();
    let names: Vec<(i64, String)> = accounts::table
        .filter(accounts::id.eq_any(ids))
        .select((accounts::id, accounts::display_name))
        .load(conn)?;
    let today = chrono::Utc::now().date_naive();
    Ok(list
        .iter()
        .map(|i| {
            let money = Currency::formatter(&i.currency);
            Row {
                id: i.id,
                label: i.label(),
                kind: if i.is_credit_note() {
                    "Credit note".into()
                } else {
                    "Invoice".into()
                },
                status: i.status.clone(),
                account_id: i.account_id,
                account: names
                    .iter()
                    .find(|(id, _)| *id == i.account_id)
                    .map(|n| n.1.clone())
                    .unwrap_or_default(),
                issue_date: i.issue_date.to_string(),
                due_date: i.due_date.map(|d| d.to_string()).unwrap_or_default(),
                currency: i.currency.clone(),
                total: money(i.total),
                amount_due: money(i.amount_due),
                overdue: i.status == "open" && i.due_date.is_some_and(|d| d < today),
            }
        })
        .collect())
}

#[derive(Template)]
#[template(path = "invoicing/list_partial.html")]
pub struct ListPartial {
    pub base: String,
    pub rows: Vec<Row>,
    pub totals: Vec<(String, String, String, i64)>,
    pub total: i64,
    pub from: i64,
    pub to: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub params: ListParams,
    pub members: Vec<Member>,
    pub export: String,
}

pub async fn list(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesView>,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> AppResult<HttpResponse> {
    let params = params.into_inner();
    let vis = visibility(&ctx);
    let p = params.clone();
    let page = params.page.max(0);
    let tenant_id = ctx.tenant.id;
    // One connection and transaction for the whole page, members included: every checkout
    // and statement is a round trip, and this is the busiest page of the app.
    let (rows, count, sums, members) = ctx
        .db(&state, move |c| {
            let (list, totals) = page_and_totals(c, &p, vis, page)?;
            let count = totals.iter().map(|t| t.1).sum::<i64>();
            let sums: Vec<_> = totals
                .into_iter()
                .map(|(cur, _, n, t, d)| (cur, t, d, n))
                .collect();
            let members = crate::tenants::repo::members(c, tenant_id)?;
            Ok((rows(c, &list)?, count, sums, members))
        })
        .await?;
    let shown = i64::try_from(rows.len()).unwrap_or(0);
    let from = page * PER_PAGE;
    let partial = ListPartial {
        base: ctx.base(),
        totals: sums
            .into_iter()
            .map(|(cur, t, d, n)| {
                let c = Currency::parse(&cur).ok();
                let f = |x: Option<Decimal>| {
                    c.map_or_else(
                        || x.unwrap_or_default().to_string(),
                        |c| c.format(x.unwrap_or_default()),
                    )
                };
                (cur, f(t), f(d), n)
            })
            .collect(),
        total: count,
        from: if shown == 0 { 0 } else { from + 1 },
        to: from + shown,
        prev: (page > 0).then(|| params.link(page - 1)),
        next: (from + shown < count).then(|| params.link(page + 1)),
        export: params.link(0),
        params,
        members,
        rows,
    };
    render::page(&req, ctx.layout(&req, "Invoices", "invoices"), partial)
}

pub const CSV_COLUMNS: [&str; 16] = [
    "invoice_id",
    "number",
    "kind",
    "status",
    "account_id",
    "account",
    "bill_to_account_id",
    "subscription_id",
    "issue_date",
    "due_date",
    "currency",
    "subtotal",
    "tax_total",
    "total",
    "amount_paid",
    "amount_due",
];

pub async fn export(
    ctx: Allowed<can::InvoicesView>,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> AppResult<HttpResponse> {
    let p = params.into_inner();
    let vis = visibility(&ctx);
    let body = ctx
        .db(&state, move |c| {
            let list: Vec<Invoice> = filtered(&p, vis)
                .order(invoices::id)
                .select(Invoice::as_select())
                .load(c)?;
            let rows = rows(c, &list)?;
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(CSV_COLUMNS).map_err(AppError::internal)?;
            for (i, r) in list.iter().zip(rows) {
                w.write_record([
                    i.id.to_string(),
                    i.number.clone().unwrap_or_default(),
                    i.kind.clone(),
                    i.status.clone(),
                    i.account_id.to_string(),
                    cell(&r.account),
                    i.bill_to_account_id.to_string(),
                    i.subscription_id.map(|s| s.to_string()).unwrap_or_default(),
                    i.issue_date.to_string(),
                    i.due_date.map(|d| d.to_string()).unwrap_or_default(),
                    i.currency.clone(),
                    i.subtotal.to_string(),
                    i.tax_total.to_string(),
                    i.total.to_string(),
                    i.amount_paid.to_string(),
                    i.amount_due.to_string(),
                ])
                .map_err(AppError::internal)?;
            }
            w.into_inner().map_err(AppError::internal)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"invoices.csv\"",
        ))
        .body(body))
}

#[derive(Template)]
#[template(path = "invoicing/account_tab_partial.html")]
pub struct AccountTabPartial {
    pub base: String,
    pub account_id: i64,
    pub summary_only: bool,
    /// (currency, owed by this account, owed across its family, account credit)
    pub balances: Vec<(String, String, String, String)>,
    pub rows: Vec<Row>,
    pub can_invoice: bool,
    pub csrf_token: String,
}

/// The balance summary (overview) or invoice list (invoices tab) of an account page. The
/// family figure consolidates the account and every descendant, whoever pays.
pub fn account_tab(
    conn: &mut PgConnection,
    ctx: &crate::tenants::TenantCtx,
    csrf_token: String,
    account_id: i64,
    summary_only: bool,
) -> AppResult<AccountTabPartial> {
    use crate::db::schema::tenant::account_credits;
    let mut family: Vec<i64> = crate::accounts::repo::descendants(conn, account_id)?
        .into_iter()
        .map(|(a, _)| a.id)
        .collect();
    family.push(account_id);
    let open = |conn: &mut PgConnection,
                ids: &[i64],
                by_payer: bool|
     -> AppResult<Vec<(String, Decimal)>> {
        let q = invoices::table
            .filter(invoices::status.eq("open"))
            .filter(invoices::kind.eq("invoice"));
        let list: Vec<(String, Decimal)> = if by_payer {
            q.filter(invoices::bill_to_account_id.eq_any(ids))
                .select((invoices::currency, invoices::amount_due))
                .load(conn)?
        } else {
            q.filter(invoices::account_id.eq_any(ids))
                .select((invoices::currency, invoices::amount_due))
                .load(conn)?
        };
        Ok(crate::money::sum_by(list))
    };
    let own = open(conn, &[account_id], true)?;
    let fam = open(conn, &family, false)?;
    let credits: Vec<(String, Decimal)> = account_credits::table
        .filter(account_credits::account_id.eq(account_id))
        .select((account_credits::currency, account_credits::amount))
        .load(conn)?;
    let mut currencies: Vec<String> = own
        .iter()
        .chain(&fam)
        .chain(&credits)
        .map(|(c, _)| c.clone())
        .collect();
    currencies.sort();
    currencies.dedup();
    let pick = |v: &[(String, Decimal)], c: &str| {
        v.iter()
            .filter(|(x, _)| x == c)
            .map(|(_, a)| *a)
            .sum::<Decimal>()
    };
    let balances = currencies
        .iter()
        .map(|c| {
            let m = crate::money::Currency::formatter(c);
            (
                c.clone(),
                m(pick(&own, c)),
                m(pick(&fam, c)),
                m(pick(&credits, c)),
            )
        })
        .collect();
    let rows = if summary_only {
        Vec::new()
    } else {
        let list: Vec<Invoice> = invoices::table
            .filter(
                invoices::account_id
                    .eq(account_id)
                    .or(invoices::bill_to_account_id.eq(account_id)),
            )
            .order((invoices::issue_date.desc(), invoices::id.desc()))
            .limit(PER_PAGE)
            .select(Invoice::as_select())
            .load(conn)?;
        rows(conn, &list)?
    };
    Ok(AccountTabPartial {
        base: ctx.base(),
        account_id,
        summary_only,
        balances,
        rows,
        can_invoice: ctx.can(crate::auth::permissions::Permission::InvoicesEdit),
        csrf_token,
    })
}
