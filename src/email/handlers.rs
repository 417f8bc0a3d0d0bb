//! The "Sent mail" pages: every email the tenant sent or tried to send, with its status.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{message::OutgoingEmail, repo};
use crate::{
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed, Permission},
    error::{AppError, AppResult},
    jobs::outbox,
    web::{csrf, render, AppState},
};

pub struct MailView {
    pub id: i64,
    pub to: String,
    pub subject: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: String,
    pub created_at: String,
    pub delivered_at: String,
    pub text: String,
    pub attachments: Vec<String>,
}

impl MailView {
    pub fn from_row(r: outbox::OutboxRow) -> Self {
        let mail: Option<OutgoingEmail> = serde_json::from_value(r.payload).ok();
        Self {
            id: r.id,
            to: mail.as_ref().map(|m| m.to.join(", ")).unwrap_or_default(),
            subject: mail
                .as_ref()
                .map(|m| m.subject.clone())
                .unwrap_or_else(|| "(unreadable message)".into()),
            status: r.status,
            attempts: r.attempts,
            last_error: r.last_error.unwrap_or_default(),
            created_at: r.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            delivered_at: r
                .delivered_at
                .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default(),
            text: mail
                .as_ref()
                .map(|m| {
                    if m.sensitive {
                        "(Not shown: this message carries a one-time sign-in link.)".to_owned()
                    } else {
                        m.text.clone()
                    }
                })
                .unwrap_or_default(),
            attachments: mail
                .map(|m| m.attachments.into_iter().map(|a| a.filename).collect())
                .unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "email/mail_list_partial.html")]
pub struct MailListPartial {
    pub base: String,
    pub mails: Vec<MailView>,
    pub status: String,
    pub page: i64,
    pub pages: i64,
    pub total: i64,
    pub smtp: bool,
}

#[derive(Template)]
#[template(path = "email/mail_detail_partial.html")]
pub struct MailDetailPartial {
    pub csrf_token: String,
    pub base: String,
    pub mail: MailView,
    pub can_retry: bool,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub status: Option<String>,
    pub page: Option<i64>,
}

const STATUSES: [&str; 5] = ["pending", "retrying", "delivered", "captured", "dead"];

pub async fn list(
    req: HttpRequest,
    ctx: Allowed<can::MailView>,
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    // An unknown filter value shows everything rather than an error page.
    let status = q.status.clone().filter(|s| STATUSES.contains(&s.as_str()));
    let page = q.page.unwrap_or(1).max(1);
    let st = status.clone();
    let (rows, total) = ctx
        .db(&state, move |c| repo::list(c, st.as_deref(), page))
        .await?;
    let partial = MailListPartial {
        base: ctx.base(),
        mails: rows.into_iter().map(MailView::from_row).collect(),
        status: status.unwrap_or_default(),
        page,
        pages: ((total + repo::PAGE_SIZE - 1) / repo::PAGE_SIZE).max(1),
        total,
        smtp: state.mailer.is_smtp(),
    };
    render::page(&req, ctx.layout(&req, "Sent mail", "mail"), partial)
}

pub async fn detail(
    req: HttpRequest,
    ctx: Allowed<can::MailView>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().1;
    let row = ctx.db(&state, move |c| outbox::get(c, id)).await?;
    let row = row
        .filter(|r| r.kind == outbox::KIND_EMAIL)
        .ok_or(AppError::NotFound)?;
    let can_retry = row.status == "dead" && ctx.can(Permission::MailResend);
    let partial = MailDetailPartial {
        csrf_token: csrf::token(&req),
        base: ctx.base(),
        mail: MailView::from_row(row),
        can_retry,
    };
    render::page(&req, ctx.layout(&req, "Email", "mail"), partial)
}

/// Sends a dead email again (after fixing SMTP settings or the address).
pub async fn retry(
    req: HttpRequest,
    ctx: Allowed<can::MailResend>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().1;
    let tenant_id = ctx.tenant.id;
    let actor = Actor::from_ctx(&ctx, &req);
    ctx.db(&state, move |c| {
        let row = outbox::get(c, id)?
            .filter(|r| r.kind == outbox::KIND_EMAIL)
            .ok_or(AppError::NotFound)?;
        if row.status != "dead" {
            return Err(AppError::Conflict(
                "Only failed emails can be sent again.".into(),
            ));
        }
        outbox::redeliver(c, tenant_id, &row)?;
        audit::record(c, &actor, &Entry::new("mail.resent", "email", id))
    })
    .await?;
    state.wakeup.notify();
    Ok(render::see_other(
        &req,
        &format!("{}/mail/{id}", ctx.base()),
    ))
}
