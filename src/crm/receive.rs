//! `POST /hooks/<tenant>/crm/<token>`: verify, store raw, queue, answer.
//!
//! Answers: 200 (HubSpot, generic: `{"received": n, "duplicates": m}`; Salesforce: the SOAP
//! `<Ack>true</Ack>`) once every event is stored; 401 for a missing or wrong signature or a
//! stale timestamp; 403 for another Salesforce organization; 400 for a body that is not the
//! vendor's shape; 404 for an unknown connector; 409 when the connector is paused (the
//! sender retries later). Nothing is stored unless the request is authentic.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use diesel::PgConnection;
use serde_json::json;

use super::{
    repo::{self, Connector},
    vendors::{generic, hubspot, salesforce, InboundError, InboundEvent},
};
use crate::{
    db::{self, scope::TenantSchema},
    error::{AppError, AppResult},
    jobs::{kinds, queue},
    tenants::repo as tenants,
    web::AppState,
};

/// Largest request accepted (a Salesforce outbound message carries up to 100 notifications).
pub const MAX_BODY: usize = 1024 * 1024;

fn header<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn reject(e: &InboundError) -> HttpResponse {
    let status = match e {
        InboundError::MissingSignature | InboundError::BadSignature | InboundError::Stale(_) => {
            actix_web::http::StatusCode::UNAUTHORIZED
        }
        InboundError::WrongOrganization => actix_web::http::StatusCode::FORBIDDEN,
        InboundError::Malformed(_) => actix_web::http::StatusCode::BAD_REQUEST,
    };
    HttpResponse::build(status).json(json!({ "error": e.to_string() }))
}

/// The URL HubSpot signed: this server's public origin and the request's path and query.
fn public_uri(state: &AppState, req: &HttpRequest) -> String {
    format!(
        "{}{}",
        state.config.base_url.trim_end_matches('/'),
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or_default()
    )
}

/// Checks the request and reads its events, per connector kind.
pub fn verify_and_parse(
    state: &AppState,
    req: &HttpRequest,
    c: &Connector,
    secret: Option<&str>,
    body: &[u8],
) -> Result<Vec<InboundEvent>, InboundError> {
    let now = Utc::now();
    // Salesforce outbound messages carry no signature (the organization id is checked);
    // everything else needs the connector's secret.
    let needs_secret = c.kind != "salesforce" || header(req, "Content-Type").contains("json");
    let secret = match secret.filter(|s| !s.is_empty()) {
        Some(s) => s,
        None if needs_secret => return Err(InboundError::MissingSignature),
        None => "",
    };
    match c.kind.as_str() {
        "hubspot" => {
            let uri = public_uri(state, req);
            let v3 = header(req, "X-HubSpot-Signature-v3");
            if !v3.is_empty() {
                hubspot::verify_v3(
                    secret,
                    req.method().as_str(),
                    &uri,
                    body,
                    header(req, "X-HubSpot-Request-Timestamp"),
                    v3,
                    now,
                )?;
            } else {
                let legacy = header(req, "X-HubSpot-Signature");
                let version = header(req, "X-HubSpot-Signature-Version");
                let allowed = c.settings().hubspot_legacy;
                match version {
                    "v1" if allowed.iter().any(|v| v == "v1") => {
                        hubspot::verify_v1(secret, body, legacy)?
                    }
                    "v2" if allowed.iter().any(|v| v == "v2") => {
                        hubspot::verify_v2(secret, req.method().as_str(), &uri, body, legacy)?
                    }
                    _ => return Err(InboundError::MissingSignature),
                }
            }
            hubspot::parse_webhook(body)
        }
        "salesforce" => {
            let is_json = header(req, "Content-Type").contains("json");
            if is_json {
                // Change Data Capture events reach us through a relay, signed like the
                // generic webhook; Salesforce itself does not sign them.
                generic::verify(
                    secret,
                    header(req, "X-Arbor-Signature"),
                    body,
                    now,
                    chrono::Duration::minutes(5),
                )?;
                salesforce::parse_cdc(body)
            } else {
                let org = c.settings().salesforce_org_id;
                salesforce::parse_outbound_message(body, &org).map(|m| m.events)
            }
        }
        _ => {
            generic::verify(
                secret,
                header(req, "X-Arbor-Signature"),
                body,
                now,
                chrono::Duration::minutes(5),
            )?;
            generic::parse(body).map(|e| vec![e])
        }
    }
}

/// Stores the events and queues their processing in one transaction. Returns (new, repeats).
pub fn store_all(
    conn: &mut PgConnection,
    tenant_id: i64,
    connector_id: i64,
    events: &[InboundEvent],
    raw: &str,
) -> AppResult<(usize, usize)> {
    let mut fresh = 0;
    let mut repeats = 0;
    for e in events {
        let (id, new) = repo::store(conn, connector_id, e, raw)?;
        if new {
            fresh += 1;
            enqueue(conn, tenant_id, id, "0")?;
        } else {
            repeats += 1;
        }
    }
    Ok((fresh, repeats))
}

/// Queues processing of an inbox row; `round` separates replays from the first run.
pub fn enqueue(
    conn: &mut PgConnection,
    tenant_id: i64,
    inbox_id: i64,
    round: &str,
) -> AppResult<()> {
    let mut job = queue::NewJob::new(
        kinds::CRM_PROCESS,
        Some(tenant_id),
        json!({ "inbox_id": inbox_id }),
    );
    job.dedupe_key = Some(format!("crm:{tenant_id}:{inbox_id}:{round}"));
    job.max_attempts = 8;
    queue::enqueue(conn, &job)?;
    Ok(())
}

pub async fn receive(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> AppResult<HttpResponse> {
    // Read here rather than through the `Bytes` extractor, whose default 256 KB limit would
    // refuse the 1 MB a Salesforce message may carry.
    let body = match crate::web::body::read(&req, payload, MAX_BODY).await {
        Ok(b) => b,
        Err(AppError::PayloadTooLarge(m)) => {
            return Ok(HttpResponse::PayloadTooLarge().json(json!({ "error": m })))
        }
        Err(e) => return Err(e),
    };
    let (slug, token) = path.into_inner();
    let key = state.config.secret_key.clone();
    let t = token.clone();
    // The tenant and its connector in one trip to the database: this path takes bursts.
    let found = db::run(&state.pool, move |c| {
        let Some((tenant_id, schema_name)) = tenants::find_id_by_slug(c, &slug)? else {
            return Ok(None);
        };
        let schema = TenantSchema::parse(&schema_name)
            .map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
        let found = db::scope::in_tenant(c, &schema, |c| {
            let Some(conn) = repo::by_token(c, &t)? else {
                return Ok(None);
            };
            let secret = super::handlers::open_optional(&key, conn.secret_sealed.as_deref())?;
            Ok(Some((conn, secret)))
        })?;
        Ok(found.map(|(conn, secret)| (tenant_id, schema, conn, secret)))
    })
    .await?;
    let Some((tenant_id, schema, connector, secret)) = found else {
        return Err(AppError::NotFound);
    };
    if connector.status != "active" {
        return Ok(HttpResponse::Conflict().json(json!({ "error": "connector paused" })));
    }
    let events = match verify_and_parse(&state, &req, &connector, secret.as_deref(), &body) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(connector = connector.id, error = %e, "CRM webhook refused");
            return Ok(reject(&e));
        }
    };
    let raw = String::from_utf8_lossy(&body).into_owned();
    let cid = connector.id;
    let (fresh, repeats) = db::run(&state.pool, move |c| {
        db::scope::in_tenant(c, &schema, |c| store_all(c, tenant_id, cid, &events, &raw))
    })
    .await?;
    if fresh > 0 {
        state.wakeup.notify();
    }
    if connector.kind == "salesforce" && !header(&req, "Content-Type").contains("json") {
        return Ok(HttpResponse::Ok()
            .content_type("text/xml; charset=utf-8")
            .body(salesforce::ack(true)));
    }
    Ok(HttpResponse::Ok().json(json!({ "received": fresh, "duplicates": repeats })))
}

/// The events a sample payload would produce, for the mapping page (no signature check).
pub fn sample_events(kind: &str, body: &[u8]) -> Result<Vec<InboundEvent>, InboundError> {
    match kind {
        "hubspot" => hubspot::parse_webhook(body),
        "salesforce" => {
            if body.trim_ascii_start().starts_with(b"{") {
                salesforce::parse_cdc(body)
            } else {
                salesforce::parse_outbound_sample(body).map(|m| m.events)
            }
        }
        _ => generic::parse(body).map(|e| vec![e]),
    }
}
