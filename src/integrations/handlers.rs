//! `/integrations`: the integration health page (connectors, alerts, failed deliveries with
//! "Send again", and the delivery log with its CSV).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{
    by_code, by_kind,
    health::{self, ConnectorHealth, Delivery, LogFilter},
    CONNECTORS,
};
use crate::{
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed},
    error::{AppError, AppResult},
    jobs::outbox,
    web::{csrf, render, AppState},
};

#[derive(Debug, Deserialize, Default, Clone)]
pub struct Params {
    #[serde(default)]
    pub connector: String,
    #[serde(default)]
    pub outcome: String,
    pub page: Option<i64>,
}

impl Params {
    /// Unknown values show everything rather than an error page (links get edited by hand).
    fn filter(&self) -> LogFilter {
        LogFilter {
            connector: by_code(self.connector.trim()).map(|c| c.code.to_owned()),
            ok: match self.outcome.trim() {
                "ok" => Some(true),
                "failed" => Some(false),
                _ => None,
            },
            page: self.page.unwrap_or(1).max(1),
        }
    }

    fn query(&self, page: i64) -> String {
        let f = self.filter();
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(c) = f.connector {
            pairs.push(("connector", c));
        }
        if let Some(ok) = f.ok {
            pairs.push(("outcome", if ok { "ok" } else { "failed" }.into()));
        }
        if page > 1 {
            pairs.push(("page", page.to_string()));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

pub struct DeadView {
    pub id: i64,
    pub connector: String,
    pub what: String,
    pub attempts: i32,
    pub error: String,
    pub created_at: String,
}

#[derive(Template)]
#[template(path = "integrations/health_partial.html")]
pub struct HealthPartial {
    pub base: String,
    pub csrf_token: String,
    pub connectors: Vec<ConnectorHealth>,
    pub alerts: Vec<health::Alert>,
    pub dead: Vec<DeadView>,
    pub deliveries: Vec<Delivery>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    pub connector: String,
    pub outcome: String,
    pub codes: Vec<(&'static str, &'static str)>,
    pub query: String,
    pub prev_query: String,
    pub next_query: String,
    /// Incoming CRM connectors with their inbox counts.
    pub crm: Vec<(crate::crm::repo::Connector, crate::crm::repo::InboxCounts)>,
    /// Held and failed CRM events (the dead-letter queue), newest first.
    pub waiting: Vec<crate::crm::repo::InboxRow>,
}

impl HealthPartial {
    pub fn label(&self, code: &str) -> String {
        if let Some(id) = code
            .strip_prefix("crm.")
            .and_then(|i| i.parse::<i64>().ok())
        {
            return self.crm.iter().find(|(c, _)| c.id == id).map_or_else(
                || "CRM connector".to_owned(),
                |(c, _)| format!("CRM connector {}", c.name),
            );
        }
        by_code(code).map_or("?", |c| c.label).to_owned()
    }

    pub fn crm_name(&self, id: &i64) -> String {
        self.crm
            .iter()
            .find(|(c, _)| c.id == *id)
            .map(|(c, _)| c.name.clone())
            .unwrap_or_default()
    }

    /// Held and failed events as a share of the last day's, in percent.
    pub fn failure_rate(c: &crate::crm::repo::InboxCounts) -> String {
        if c.last_day == 0 {
            return "—".into();
        }
        let tenths = c.last_day_bad * 1000 / c.last_day;
        format!("{}.{}%", tenths / 10, tenths % 10)
    }
}

pub fn ago(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub async fn page(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    params: web::Query<Params>,
) -> AppResult<HttpResponse> {
    let params = params.into_inner();
    let filter = params.filter();
    let f = filter.clone();
    let (connectors, alerts, dead, (deliveries, total), (crm, waiting)) = ctx
        .db(&state, move |c| {
            let push_on = crate::ledger::push::settings(c)?.enabled;
            let connectors = health::all(c, |conn| match conn.code {
                "accounting" => push_on,
                _ => true,
            })?;
            Ok((
                connectors,
                health::recent_alerts(c, 10)?,
                health::dead(c, 50)?,
                health::deliveries(c, &f)?,
                crm_state(c)?,
            ))
        })
        .await?;
    let dead = dead
        .into_iter()
        .map(|r| DeadView {
            id: r.id,
            connector: by_kind(&r.kind).map_or("?", |c| c.label).to_owned(),
            what: describe(&r),
            attempts: r.attempts,
            error: r.last_error.unwrap_or_default(),
            created_at: ago(&r.created_at),
        })
        .collect();
    let pages = ((total + health::PAGE_SIZE - 1) / health::PAGE_SIZE).max(1);
    let page = filter.page.min(pages);
    let partial = HealthPartial {
        base: ctx.base(),
        csrf_token: csrf::token(&req),
        connectors,
        alerts,
        dead,
        deliveries,
        total,
        page,
        pages,
        connector: filter.connector.clone().unwrap_or_default(),
        outcome: params.outcome.trim().to_owned(),
        codes: CONNECTORS.iter().map(|c| (c.code, c.label)).collect(),
        query: params.query(1),
        prev_query: params.query(page - 1),
        next_query: params.query(page + 1),
        crm,
        waiting,
    };
    render::page(
        &req,
        ctx.layout(&req, "Integration health", "settings"),
        partial,
    )
}

type CrmState = (
    Vec<(crate::crm::repo::Connector, crate::crm::repo::InboxCounts)>,
    Vec<crate::crm::repo::InboxRow>,
);

fn crm_state(c: &mut diesel::PgConnection) -> AppResult<CrmState> {
    use crate::crm::repo;
    let mut list = Vec::new();
    for conn in repo::connectors(c)? {
        let counts = repo::inbox_counts(c, conn.id)?;
        list.push((conn, counts));
    }
    let mut waiting = Vec::new();
    for status in ["failed", "held"] {
        let f = repo::InboxFilter {
            connector_id: None,
            status: Some(status.into()),
            page: 1,
        };
        waiting.extend(repo::inbox_page(c, &f)?.0.into_iter().take(25));
    }
    Ok((list, waiting))
}

/// A dead outbox row in words: an email's subject, an entry's number.
fn describe(r: &outbox::OutboxRow) -> String {
    match r.kind.as_str() {
        outbox::KIND_EMAIL => r
            .payload
            .get("subject")
            .and_then(serde_json::Value::as_str)
            .map(|s| format!("Email: {s}"))
            .unwrap_or_else(|| "Email".into()),
        crate::crm::outbound::KIND_WEBHOOK | crate::crm::outbound::KIND_WRITEBACK => format!(
            "Event {}{}",
            r.payload
                .get("event_id")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or_default(),
            r.payload
                .get("deal")
                .and_then(serde_json::Value::as_str)
                .map(|d| format!(" for deal {d}"))
                .unwrap_or_default()
        ),
        crate::ledger::push::KIND => r
            .payload
            .get("entry_id")
            .and_then(serde_json::Value::as_i64)
            .map(|id| format!("Journal entry JE-{id}"))
            .unwrap_or_else(|| "Journal entry".into()),
        other => other.to_owned(),
    }
}

pub async fn deliveries_csv(
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    params: web::Query<Params>,
) -> AppResult<HttpResponse> {
    let mut filter = params.filter();
    let rows = ctx
        .db(&state, move |c| {
            // Every matching row, page by page (the log can be long).
            let mut all = Vec::new();
            filter.page = 1;
            loop {
                let (rows, total) = health::deliveries(c, &filter)?;
                let n = rows.len();
                all.extend(rows);
                if n == 0 || i64::try_from(all.len()).unwrap_or(i64::MAX) >= total {
                    break;
                }
                filter.page += 1;
            }
            Ok(all)
        })
        .await?;
    let cell = crate::accounts::csv_io::cell;
    let write = || -> Result<Vec<u8>, csv::Error> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "delivery_id",
            "at",
            "connector",
            "outbox_id",
            "subject",
            "attempt",
            "outcome",
            "http_status",
            "remote_ref",
            "duration_ms",
            "error",
        ])?;
        for d in &rows {
            w.write_record([
                d.id.to_string(),
                d.created_at.to_rfc3339(),
                d.connector.clone(),
                d.outbox_id.map(|i| i.to_string()).unwrap_or_default(),
                cell(&d.subject),
                d.attempt.to_string(),
                if d.ok { "ok" } else { "failed" }.to_owned(),
                d.http_status.map(|s| s.to_string()).unwrap_or_default(),
                cell(d.remote_ref.as_deref().unwrap_or_default()),
                d.duration_ms.to_string(),
                cell(d.error.as_deref().unwrap_or_default()),
            ])?;
        }
        w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
    };
    let body = write().map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"integration-deliveries.csv\"",
        ))
        .body(body))
}

/// "Send again" for a dead delivery of any connector.
pub async fn redeliver(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().1;
    let tenant_id = ctx.tenant.id;
    let actor = Actor::from_ctx(&ctx, &req);
    ctx.db(&state, move |c| {
        let row = outbox::get(c, id)?
            .filter(|r| by_kind(&r.kind).is_some())
            .ok_or(AppError::NotFound)?;
        // A webhook subscriber may ask for a delivered event again; other connectors only
        // resend what failed, so nothing is booked twice by accident.
        let webhook = row.kind == crate::crm::outbound::KIND_WEBHOOK;
        outbox::resend(c, tenant_id, &row, webhook)?;
        audit::record(
            c,
            &actor,
            &Entry::new("integration.redelivered", "outbox", id)
                .after(serde_json::json!({ "kind": row.kind })),
        )
    })
    .await?;
    state.wakeup.notify();
    Ok(render::see_other(
        &req,
        &format!("{}/integrations", ctx.base()),
    ))
}
