use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::{
    auth::permissions::{can, Allowed, Permission},
    db,
    email::{handlers::MailView, repo as mail, repo::StatusCounts},
    error::AppResult,
    jobs::queue::{self, JobCounts},
    tenants::repo as tenants,
    web::{render, AppState},
};

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
        can_mail: ctx.can(Permission::MailView),
    };
    render::page(&req, ctx.layout(&req, "Dashboard", "dashboard"), partial)
}
