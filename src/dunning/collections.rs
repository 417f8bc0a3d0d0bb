//! The collections workspace: the tasks inbox here, an account's collections tab in
//! [`account`] and its forms in [`forms`].
//!
//! Rules: the inbox shows a member's own tasks, the team's unassigned ones, or all; open
//! tasks overdue first, then by due date, 50 a page. The CSV export is the same query with
//! raw ids and unformatted decimals (the on-screen page, or every page when no page is
//! asked for), so a spreadsheet matches the screen. Completing a task needs a resolution;
//! completing and reassigning are audited. Nothing here changes what dunning does; the
//! account tab's actions (pause, hold, promise, dispute) do, through `account_collections`,
//! `promises_to_pay` and `invoice_dunning`, which the engine reads.

pub mod account;
pub mod forms;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::NaiveDate;
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use super::repo::{self, TaskScope};
use crate::{
    accounts::{csv_io::cell, domain::Fields, handlers::members},
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed, Permission},
    db::schema::tenant::{accounts, invoices},
    error::{AppError, AppResult, FieldErrors},
    invoicing::handlers::today,
    money::Currency,
    tenants::{repo::Member, TenantCtx},
    web::{csrf, render, AppState},
};

pub const PER_PAGE: i64 = 50;

/// A member's name for display; unknown ids stay visible rather than vanish.
pub fn member_name(members: &[Member], id: Option<i64>) -> String {
    match id {
        Some(id) => members
            .iter()
            .find(|m| m.user_id == id)
            .map_or_else(|| format!("user #{id}"), |m| m.name.clone()),
        None => "Team".into(),
    }
}

/// `("team", "Team (unassigned)")` and every active member, for assignee pickers.
pub fn assignee_options(members: &[Member]) -> Vec<(String, String)> {
    let mut out = vec![("team".to_owned(), "Team (unassigned)".to_owned())];
    out.extend(
        members
            .iter()
            .filter(|m| m.status == "active")
            .map(|m| (m.user_id.to_string(), m.name.clone())),
    );
    out
}

#[derive(Debug, Deserialize, Default, Clone)]
pub struct InboxParams {
    #[serde(default)]
    pub who: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub page: Option<i64>,
    #[serde(default)]
    pub format: String,
}

impl InboxParams {
    pub fn who(&self) -> &'static str {
        match self.who.as_str() {
            "team" => "team",
            "all" => "all",
            _ => "mine",
        }
    }
    pub fn done(&self) -> bool {
        self.status == "done"
    }
    fn scope(&self, uid: i64) -> TaskScope {
        match self.who() {
            "team" => TaskScope::Team,
            "all" => TaskScope::All,
            _ => TaskScope::Mine(uid),
        }
    }
    pub fn page(&self) -> i64 {
        self.page.unwrap_or(0).max(0)
    }
    /// The query string of this view with another filter or page.
    pub fn link(&self, who: &str, done: bool, page: i64) -> String {
        let status = if done { "done" } else { "open" };
        serde_urlencoded::to_string([
            ("who", who),
            ("status", status),
            ("page", &page.to_string()),
        ])
        .unwrap_or_default()
    }
    pub fn here(&self) -> String {
        self.link(self.who(), self.done(), self.page())
    }
}

pub struct TaskRow {
    pub id: i64,
    pub title: String,
    pub detail: String,
    pub account_id: i64,
    pub account: String,
    pub invoice_id: Option<i64>,
    pub invoice: String,
    pub currency: String,
    pub amount_due: Option<Decimal>,
    pub due_on: NaiveDate,
    pub days_overdue: i64,
    pub assignee_id: Option<i64>,
    pub assignee: String,
    pub source: String,
    pub status: String,
    pub resolution: String,
    pub created_on: NaiveDate,
    pub completed_at: String,
}

impl TaskRow {
    pub fn overdue(&self) -> bool {
        self.status == "open" && self.days_overdue > 0
    }
    /// Whether `code` (an assignee option) is this task's assignee.
    pub fn assigned_to(&self, code: &str) -> bool {
        match self.assignee_id {
            Some(id) => code == id.to_string(),
            None => code == "team",
        }
    }
    pub fn m_amount_due(&self) -> String {
        self.amount_due
            .map(|a| {
                format!(
                    "{} {}",
                    self.currency,
                    Currency::formatter(&self.currency)(a)
                )
            })
            .unwrap_or_default()
    }
}

/// Task rows with their account and invoice, in the order given.
pub fn task_rows(
    conn: &mut PgConnection,
    tasks: &[repo::Task],
    members: &[Member],
    today: NaiveDate,
) -> AppResult<Vec<TaskRow>> {
    let account_ids: Vec<i64> = tasks.iter().map(|t| t.account_id).collect();
    let names: Vec<(i64, String)> = accounts::table
        .filter(accounts::id.eq_any(&account_ids))
        .select((accounts::id, accounts::display_name))
        .load(conn)?;
    let invoice_ids: Vec<i64> = tasks.iter().filter_map(|t| t.invoice_id).collect();
    let invs: Vec<(i64, Option<String>, String, Decimal)> = invoices::table
        .filter(invoices::id.eq_any(&invoice_ids))
        .select((
            invoices::id,
            invoices::number,
            invoices::currency,
            invoices::amount_due,
        ))
        .load(conn)?;
    Ok(tasks
        .iter()
        .map(|t| {
            let inv = t.invoice_id.and_then(|i| invs.iter().find(|x| x.0 == i));
            TaskRow {
                id: t.id,
                title: t.title.clone(),
                detail: t.detail.clone(),
                account_id: t.account_id,
                account: names
                    .iter()
                    .find(|n| n.0 == t.account_id)
                    .map(|n| n.1.clone())
                    .unwrap_or_default(),
                invoice_id: t.invoice_id,
                invoice: inv
                    .map(|i| i.1.clone().unwrap_or_else(|| format!("Draft #{}", i.0)))
                    .unwrap_or_default(),
                currency: inv.map(|i| i.2.clone()).unwrap_or_default(),
                amount_due: inv.map(|i| i.3),
                due_on: t.due_on,
                days_overdue: (today - t.due_on).num_days().max(0),
                assignee_id: t.assignee_user_id,
                assignee: member_name(members, t.assignee_user_id),
                source: t.source.clone(),
                status: t.status.clone(),
                resolution: t.resolution.clone().unwrap_or_default(),
                created_on: t.created_at.date_naive(),
                completed_at: t
                    .completed_at
                    .map(|c| c.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default(),
            }
        })
        .collect())
}

#[derive(Template)]
#[template(path = "dunning/inbox_partial.html")]
pub struct InboxPartial {
    pub base: String,
    pub csrf_token: String,
    pub params: InboxParams,
    pub rows: Vec<TaskRow>,
    pub total: i64,
    pub from: i64,
    pub to: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub assignees: Vec<(String, String)>,
    pub errors: FieldErrors,
    pub form: Fields,
    pub can_configure: bool,
    pub scopes: &'static [(&'static str, &'static str)],
}

impl InboxPartial {
    pub fn err(&self, task: &i64, name: &str) -> &str {
        self.errors.for_field(&format!("task{task}_{name}"))
    }
}

const CSV_COLUMNS: &[&str] = &[
    "task_id",
    "title",
    "account_id",
    "account",
    "invoice_id",
    "invoice",
    "currency",
    "amount_due",
    "due_on",
    "days_overdue",
    "assignee_id",
    "assignee",
    "source",
    "status",
    "created_on",
    "completed_at",
    "resolution",
];

fn csv(rows: &[TaskRow]) -> AppResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_COLUMNS).map_err(AppError::internal)?;
    let opt = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
    for r in rows {
        w.write_record([
            r.id.to_string(),
            cell(&r.title),
            r.account_id.to_string(),
            cell(&r.account),
            opt(r.invoice_id),
            cell(&r.invoice),
            r.currency.clone(),
            r.amount_due
                .map(|a| a.normalize().to_string())
                .unwrap_or_default(),
            r.due_on.to_string(),
            r.days_overdue.to_string(),
            opt(r.assignee_id),
            cell(&r.assignee),
            r.source.clone(),
            r.status.clone(),
            r.created_on.to_string(),
            r.completed_at.clone(),
            cell(&r.resolution),
        ])
        .map_err(AppError::internal)?;
    }
    w.into_inner().map_err(AppError::internal)
}

async fn render_inbox(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    params: InboxParams,
    form: Fields,
    errors: FieldErrors,
) -> AppResult<HttpResponse> {
    let members = members(state, ctx.tenant.id).await?;
    let (scope, done, page, day) = (
        params.scope(ctx.user.id),
        params.done(),
        params.page(),
        today(),
    );
    let csv_all = params.format == "csv" && params.page.is_none();
    let m2 = members.clone();
    let (rows, total) = ctx
        .db(state, move |c| {
            let (limit, offset) = if csv_all {
                (i64::MAX, 0)
            } else {
                (PER_PAGE, page * PER_PAGE)
            };
            let (tasks, total) = repo::inbox(c, scope, done, day, limit, offset)?;
            Ok((task_rows(c, &tasks, &m2, day)?, total))
        })
        .await?;
    if params.format == "csv" {
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                "attachment; filename=\"collections-tasks.csv\"",
            ))
            .body(csv(&rows)?));
    }
    let from = page * PER_PAGE;
    let shown = i64::try_from(rows.len()).unwrap_or(0);
    let partial = InboxPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        prev: (page > 0).then(|| params.link(params.who(), done, page - 1)),
        next: (from + shown < total).then(|| params.link(params.who(), done, page + 1)),
        from: if shown == 0 { 0 } else { from + 1 },
        to: from + shown,
        total,
        rows,
        params,
        assignees: assignee_options(&members),
        errors,
        form,
        can_configure: ctx.can(Permission::DunningConfigure),
        scopes: &[
            ("mine", "My tasks"),
            ("team", "Team (unassigned)"),
            ("all", "All"),
        ],
    };
    let status = render::status_for(partial.errors.is_empty());
    render::page_with_status(
        req,
        status,
        ctx.layout(req, "Collections", "collections"),
        partial,
    )
}

pub async fn inbox(
    req: HttpRequest,
    ctx: Allowed<can::CollectionsWork>,
    state: web::Data<AppState>,
    params: web::Query<InboxParams>,
) -> AppResult<HttpResponse> {
    render_inbox(
        &req,
        &ctx,
        &state,
        params.into_inner(),
        Fields::default(),
        FieldErrors::default(),
    )
    .await
}

/// The inbox view a task form came from (hidden fields), so the answer returns to it.
fn view_of(form: &Fields) -> InboxParams {
    InboxParams {
        who: form.get("who").to_owned(),
        status: form.get("status").to_owned(),
        page: form.get("page").parse().ok(),
        format: String::new(),
    }
}

/// Shared shape of the task actions: lock, act, audit; bad input re-renders the inbox.
async fn task_action(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    id: i64,
    form: Fields,
    f: impl FnOnce(&mut PgConnection, &repo::Task, &Fields) -> AppResult<Result<Entry, FieldErrors>>
        + Send
        + 'static,
) -> AppResult<HttpResponse> {
    let actor = Actor::from_ctx(ctx, req);
    let f2 = form.clone();
    let outcome = ctx
        .db(state, move |c| {
            let task = repo::lock_task(c, id)?;
            match f(c, &task, &f2)? {
                Ok(entry) => {
                    audit::record(c, &actor, &entry)?;
                    Ok(Ok(()))
                }
                Err(e) => Ok(Err(e)),
            }
        })
        .await?;
    let view = view_of(&form);
    match outcome {
        Ok(()) => Ok(render::see_other(
            req,
            &format!("{}/collections?{}", ctx.base(), view.here()),
        )),
        Err(e) => render_inbox(req, ctx, state, view, form, e).await,
    }
}

pub async fn complete(
    req: HttpRequest,
    ctx: Allowed<can::CollectionsWork>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let (id, uid) = (path.1, ctx.user.id);
    let form = Fields::from_pairs(body.into_inner());
    task_action(&req, &ctx, &state, id, form, move |c, task, form| {
        if task.status != "open" {
            return Err(AppError::Conflict("This task is already closed.".into()));
        }
        let resolution: String = form.get("resolution").chars().take(2000).collect();
        if resolution.is_empty() {
            let mut e = FieldErrors::default();
            e.add(
                &format!("task{id}_resolution"),
                "Say how the task was resolved.",
            );
            return Ok(Err(e));
        }
        repo::complete_task(c, id, &resolution, uid)?;
        Ok(Ok(Entry::new(
            "collections.task_completed",
            "collections_task",
            id,
        )
        .before(json!({ "status": task.status }))
        .after(
            json!({ "status": "done", "resolution": resolution, "account_id": task.account_id }),
        )))
    })
    .await
}

pub async fn reassign(
    req: HttpRequest,
    ctx: Allowed<can::CollectionsWork>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let active: Vec<i64> = members(&state, ctx.tenant.id)
        .await?
        .into_iter()
        .filter(|m| m.status == "active")
        .map(|m| m.user_id)
        .collect();
    task_action(&req, &ctx, &state, id, form, move |c, task, form| {
        let assignee = match form.get("assignee") {
            "team" => None,
            raw => match raw.parse::<i64>() {
                Ok(uid) if active.contains(&uid) => Some(uid),
                _ => {
                    let mut e = FieldErrors::default();
                    e.add(
                        &format!("task{id}_assignee"),
                        "Choose an active member or the team.",
                    );
                    return Ok(Err(e));
                }
            },
        };
        repo::assign_task(c, id, assignee)?;
        Ok(Ok(Entry::new(
            "collections.task_reassigned",
            "collections_task",
            id,
        )
        .before(json!({ "assignee_user_id": task.assignee_user_id }))
        .after(json!({ "assignee_user_id": assignee }))))
    })
    .await
}
