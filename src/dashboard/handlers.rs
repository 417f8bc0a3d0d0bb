use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;

use super::repo::{self as dash, ChargeFailure, MyTask, OutboxFailure};
use crate::{
    accounts::handlers::visibility,
    auth::permissions::{can, Allowed, Permission},
    db,
    email::{handlers::MailView, repo as mail, repo::StatusCounts},
    error::AppResult,
    jobs::queue::{self, JobCounts},
    reports::{
        aging_repo::Owner,
        collections::{one_place, standard_dso},
        collections_repo::{self as cr, Filters},
        collections_view::money,
        mrr::subscription_mrr,
        mrr_repo,
    },
    tenants::repo as tenants,
    web::{render, AppState},
};

/// Days of the DSO shown on the dashboard.
pub const DSO_DAYS: i64 = 90;

/// Today's figures in one currency, formatted.
pub struct Totals {
    pub currency: String,
    pub ar: String,
    pub overdue: String,
    pub overdue_nonzero: bool,
    pub dso: String,
    pub mrr: String,
}

pub struct TaskView {
    pub t: MyTask,
    pub overdue: bool,
}

#[derive(Template)]
#[template(path = "dashboard/dashboard_partial.html")]
pub struct DashboardPartial {
    pub base: String,
    pub tenant_name: String,
    pub user_name: String,
    pub role: String,
    pub members: usize,
    pub mail: StatusCounts,
    pub recent: Vec<MailView>,
    pub jobs: JobCounts,
    pub can_users: bool,
    pub can_mail: bool,
    pub can_reports: bool,
    pub can_collections: bool,
    pub today: String,
    pub totals: Vec<Totals>,
    pub tasks: Vec<TaskView>,
    pub charge_failures: Vec<ChargeFailure>,
    pub outbox_failures: Vec<OutboxFailure>,
}

/// What the role may see of receivables, tasks and failures.
#[derive(Default)]
struct Money {
    totals: Vec<Totals>,
    tasks: Vec<MyTask>,
    charges: Vec<ChargeFailure>,
    outbox: Vec<OutboxFailure>,
}

fn totals(
    c: &mut diesel::PgConnection,
    today: NaiveDate,
    visible_owner: Option<i64>,
) -> AppResult<Vec<Totals>> {
    let from = today - Duration::days(DSO_DAYS - 1);
    let f = Filters {
        from,
        to: today,
        currency: None,
        owner: Owner::Any,
        account: None,
        visible_owner,
    };
    let ar = cr::ar_as_of(c, &f, today)?;
    let mut sales: BTreeMap<String, Decimal> = BTreeMap::new();
    for s in cr::sales_by_month(c, &f, from)? {
        *sales.entry(s.currency).or_default() += s.in_range;
    }
    let subs = mrr_repo::load(
        c,
        &mrr_repo::Filters {
            currency: None,
            owner: mrr_repo::Owner::Any,
            account: None,
            visible_owner,
            until: today,
        },
    )?;
    let mut mrr: BTreeMap<String, Decimal> = BTreeMap::new();
    for s in &subs.subs {
        *mrr.entry(s.currency.clone()).or_default() += subscription_mrr(s, today);
    }
    let mut currencies: Vec<String> = ar
        .iter()
        .map(|r| r.currency.clone())
        .chain(sales.keys().cloned())
        .chain(mrr.keys().cloned())
        .collect();
    currencies.sort();
    currencies.dedup();
    Ok(currencies
        .into_iter()
        .map(|cur| {
            let (total, current) = ar
                .iter()
                .find(|r| r.currency == cur)
                .map_or((Decimal::ZERO, Decimal::ZERO), |r| (r.total, r.current));
            let overdue = total - current;
            let s = sales.get(&cur).copied().unwrap_or_default();
            Totals {
                ar: money(&cur, total).shown,
                overdue: money(&cur, overdue).shown,
                overdue_nonzero: overdue > Decimal::ZERO,
                dso: standard_dso(total, s, DSO_DAYS).map_or_else(|| "—".into(), one_place),
                mrr: money(&cur, mrr.get(&cur).copied().unwrap_or_default()).shown,
                currency: cur,
            }
        })
        .collect())
}

pub async fn show(
    req: HttpRequest,
    ctx: Allowed<can::DashboardView>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let tid = ctx.tenant.id;
    let (members, jobs) = db::run(&state.pool, move |c| {
        Ok((
            tenants::members(c, tid)?.len(),
            queue::counts_for_tenant(c, tid)?,
        ))
    })
    .await?;
    let (counts, recent) = ctx
        .db(&state, |c| {
            let counts = mail::status_counts(c)?;
            let (rows, _) = mail::list(c, None, 1)?;
            Ok((counts, rows.into_iter().take(5).collect::<Vec<_>>()))
        })
        .await?;
    let today = crate::invoicing::handlers::today();
    let can_reports = ctx.can(Permission::ReportsView);
    let can_collections = ctx.can(Permission::CollectionsWork);
    let can_mail = ctx.can(Permission::MailView);
    let visible_owner = visibility(&ctx).owner_only;
    let uid = ctx.user.id;
    let m = ctx
        .db(&state, move |c| {
            let mut m = Money::default();
            if can_reports {
                m.totals = totals(c, today, visible_owner)?;
            }
            if can_collections {
                m.tasks = dash::my_tasks(c, uid)?;
                m.charges = dash::charge_failures(c, visible_owner)?;
            }
            if can_mail {
                m.outbox = dash::outbox_failures(c)?;
            }
            Ok(m)
        })
        .await?;
    let partial = DashboardPartial {
        base: ctx.base(),
        tenant_name: ctx.tenant.name.clone(),
        user_name: ctx.user.name.clone(),
        role: ctx.role.label().to_owned(),
        members,
        mail: counts,
        recent: recent.into_iter().map(MailView::from_row).collect(),
        jobs,
        can_users: ctx.can(Permission::UsersView),
        can_mail,
        can_reports,
        can_collections,
        today: today.to_string(),
        totals: m.totals,
        tasks: m
            .tasks
            .into_iter()
            .map(|t| TaskView {
                overdue: t.due_on < today,
                t,
            })
            .collect(),
        charge_failures: m.charges,
        outbox_failures: m.outbox,
    };
    render::page(&req, ctx.layout(&req, "Dashboard", "dashboard"), partial)
}
