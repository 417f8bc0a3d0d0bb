//! Outbound: business events to webhook subscribers and invoice/payment status back to the
//! CRM deal they came from.
//!
//! Rules:
//! - [`fan_out`] runs in the transaction that records the event (`payments::repo::event`):
//!   one outbox row per subscribed endpoint (`webhook.deliver`) and, for billing status
//!   events on an account with a CRM deal, one per connector with write-back on
//!   (`crm.writeback`). Keys `webhook:<endpoint>:<event>` and `crm:<connector>:<event>` make
//!   each delivery happen once however often the fan-out runs.
//! - Webhook body: `{"id": "evt_<event>", "type", "created_at", "data": {"object": ...}}`,
//!   signed `X-Arbor-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>`, with
//!   `Idempotency-Key` the event id. Receivers answer 2xx; others retry with backoff.
//! - Write-back shapes: HubSpot CRM v3 `PATCH /crm/v3/objects/deals/{id}` with
//!   `{"properties": {...}}`; Salesforce REST `PATCH /services/data/v60.0/sobjects/Opportunity/{id}`
//!   with the custom fields; generic: the webhook body plus the deal id, POSTed to the
//!   connector's write-back URL and signed with its secret. The values are read when the
//!   delivery runs, so a late retry sends the current state.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, PgConnection};
use serde_json::{json, Value};

use super::repo;
use crate::{
    db::{
        self,
        schema::tenant::{events, invoices, webhook_endpoints as we},
        scope::TenantSchema,
    },
    email::transport::Delivered,
    error::AppResult,
    integrations::{health, http},
    jobs::{outbox, JobFailure},
    web::AppState,
};

pub const KIND_WEBHOOK: &str = "webhook.deliver";
pub const KIND_WRITEBACK: &str = "crm.writeback";

/// Events that change what the CRM should show about a deal's billing.
pub const WRITEBACK_EVENTS: [&str; 6] = [
    "invoice.finalized",
    "invoice.paid",
    "invoice.overdue",
    "invoice.written_off",
    "payment.failed",
    "payment.succeeded",
];

/// Every event type a webhook endpoint can subscribe to.
pub const EVENT_TYPES: [&str; 10] = [
    "invoice.finalized",
    "invoice.paid",
    "invoice.overdue",
    "invoice.disputed",
    "invoice.written_off",
    "payment.received",
    "payment.succeeded",
    "payment.failed",
    "account.created",
    "subscription.created",
];

#[derive(Debug, Clone, Queryable)]
pub struct Endpoint {
    pub id: i64,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub secret_sealed: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

impl Endpoint {
    pub fn wants(&self, kind: &str) -> bool {
        self.status == "active"
            && (self.event_types.is_empty() || self.event_types.iter().any(|t| t == kind))
    }
}

pub fn endpoints(conn: &mut PgConnection) -> AppResult<Vec<Endpoint>> {
    Ok(we::table.order(we::id).load(conn)?)
}

#[derive(Debug, Clone, Queryable)]
pub struct EventRow {
    pub id: i64,
    pub event_type: String,
    pub entity: String,
    pub entity_id: i64,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

fn event_row(conn: &mut PgConnection, id: i64) -> AppResult<Option<EventRow>> {
    Ok(events::table.find(id).first(conn).optional()?)
}

/// The invoice an event is about, if any.
fn invoice_of(e_entity: &str, entity_id: i64, payload: &Value) -> Option<i64> {
    match e_entity {
        "invoice" => Some(entity_id),
        _ => payload.get("invoice_id").and_then(Value::as_i64),
    }
}

/// The CRM deal an invoice's billing belongs to: the one that created its subscription, else
/// the newest deal of its account.
fn deal_for_invoice(
    conn: &mut PgConnection,
    connector_id: i64,
    invoice_id: i64,
) -> AppResult<Option<repo::Link>> {
    let inv: Option<(Option<i64>, i64, i64)> = invoices::table
        .find(invoice_id)
        .select((
            invoices::subscription_id,
            invoices::account_id,
            invoices::bill_to_account_id,
        ))
        .first(conn)
        .optional()?;
    let Some((sub, account, payer)) = inv else {
        return Ok(None);
    };
    let mut deals: Vec<repo::Link> = repo::deals_for_account(conn, account)?;
    if payer != account {
        deals.extend(repo::deals_for_account(conn, payer)?);
    }
    deals.retain(|d| d.connector_id == connector_id);
    if let Some(d) = deals
        .iter()
        .find(|d| sub.is_some() && d.subscription_id == sub)
    {
        return Ok(Some(d.clone()));
    }
    Ok(deals.into_iter().max_by_key(|d| d.id))
}

/// Queues the deliveries an event causes (same transaction as the event).
pub fn fan_out(
    conn: &mut PgConnection,
    event_id: i64,
    kind: &str,
    entity: &str,
    entity_id: i64,
    payload: &Value,
) -> AppResult<()> {
    let hooks: Vec<Endpoint> = endpoints(conn)?
        .into_iter()
        .filter(|e| e.wants(kind))
        .collect();
    let writeback: Vec<repo::Connector> = if WRITEBACK_EVENTS.contains(&kind) {
        repo::connectors(conn)?
            .into_iter()
            .filter(|c| c.status == "active" && c.settings().writeback)
            .collect()
    } else {
        Vec::new()
    };
    if hooks.is_empty() && writeback.is_empty() {
        return Ok(());
    }
    let tenant_id = db::scope::current_tenant_id(conn)?;
    for h in hooks {
        outbox::enqueue(
            conn,
            tenant_id,
            KIND_WEBHOOK,
            &json!({ "endpoint_id": h.id, "event_id": event_id }),
            Some(&format!("webhook:{}:{event_id}", h.id)),
        )?;
    }
    let Some(invoice_id) = invoice_of(entity, entity_id, payload) else {
        return Ok(());
    };
    for c in writeback {
        if let Some(deal) = deal_for_invoice(conn, c.id, invoice_id)? {
            outbox::enqueue(
                conn,
                tenant_id,
                KIND_WRITEBACK,
                &json!({ "connector_id": c.id, "event_id": event_id, "deal": deal.crm_id, "invoice_id": invoice_id }),
                Some(&format!("crm:{}:{event_id}", c.id)),
            )?;
        }
    }
    Ok(())
}

/// The public shape of an event.
pub fn event_body(tenant_id: i64, e: &EventRow) -> Value {
    let mut object = e.payload.clone();
    if let Some(o) = object.as_object_mut() {
        o.insert("entity".into(), json!(e.entity));
        o.insert("entity_id".into(), json!(e.entity_id));
    }
    json!({
        "id": format!("evt_{tenant_id}_{}", e.id),
        "type": e.event_type,
        "created_at": e.created_at.to_rfc3339(),
        "data": { "object": object },
    })
}

#[derive(Debug, Clone, Queryable)]
struct InvoiceState {
    number: Option<String>,
    status: String,
    currency: String,
    total: rust_decimal::Decimal,
    amount_due: rust_decimal::Decimal,
    due_date: Option<chrono::NaiveDate>,
}

fn invoice_state(conn: &mut PgConnection, id: i64) -> AppResult<Option<InvoiceState>> {
    Ok(invoices::table
        .find(id)
        .select((
            invoices::number,
            invoices::status,
            invoices::currency,
            invoices::total,
            invoices::amount_due,
            invoices::due_date,
        ))
        .first(conn)
        .optional()?)
}

/// The CRM update for a deal, per vendor: (method, path or URL, body).
fn writeback_request(
    c: &repo::Connector,
    tenant_id: i64,
    deal: &str,
    e: &EventRow,
    inv: Option<&InvoiceState>,
) -> (reqwest::Method, String, Value) {
    let s = c.settings();
    let number = inv.and_then(|i| i.number.clone()).unwrap_or_default();
    let status = inv.map(|i| i.status.clone()).unwrap_or_default();
    let due = inv
        .map(|i| i.amount_due.normalize().to_string())
        .unwrap_or_default();
    let total = inv
        .map(|i| i.total.normalize().to_string())
        .unwrap_or_default();
    let currency = inv.map(|i| i.currency.clone()).unwrap_or_default();
    let due_date = inv
        .and_then(|i| i.due_date)
        .map(|d| d.to_string())
        .unwrap_or_default();
    let payment_failed = e.event_type == "payment.failed";
    match c.kind.as_str() {
        "hubspot" => {
            let base = if s.hubspot_api_base.is_empty() {
                "https://api.hubapi.com".to_owned()
            } else {
                s.hubspot_api_base.trim_end_matches('/').to_owned()
            };
            (
                reqwest::Method::PATCH,
                format!("{base}/crm/v3/objects/deals/{deal}"),
                json!({ "properties": {
                    "arbor_invoice_number": number,
                    "arbor_invoice_status": status,
                    "arbor_invoice_total": total,
                    "arbor_amount_due": due,
                    "arbor_currency": currency,
                    "arbor_due_date": due_date,
                    "arbor_payment_failed": payment_failed.to_string(),
                    "arbor_last_billing_event": e.event_type,
                    "arbor_last_billing_event_at": e.created_at.to_rfc3339(),
                }}),
            )
        }
        "salesforce" => (
            reqwest::Method::PATCH,
            format!(
                "{}/services/data/v60.0/sobjects/Opportunity/{deal}",
                s.salesforce_instance_url.trim_end_matches('/')
            ),
            json!({
                "Arbor_Invoice_Number__c": number,
                "Arbor_Invoice_Status__c": status,
                "Arbor_Invoice_Total__c": total,
                "Arbor_Amount_Due__c": due,
                "Arbor_Due_Date__c": if due_date.is_empty() { Value::Null } else { json!(due_date) },
                "Arbor_Payment_Failed__c": payment_failed,
                "Arbor_Last_Billing_Event__c": e.event_type,
            }),
        ),
        _ => {
            let mut body = event_body(tenant_id, e);
            if let Some(o) = body.as_object_mut() {
                o.insert("deal_id".into(), json!(deal));
                o.insert(
                    "invoice".into(),
                    json!({ "number": number, "status": status, "total": total, "amount_due": due,
                            "currency": currency, "due_date": due_date }),
                );
            }
            (reqwest::Method::POST, s.writeback_url.clone(), body)
        }
    }
}

async fn log_attempt(
    state: &AppState,
    schema: &TenantSchema,
    connector: &'static str,
    row: &outbox::OutboxRow,
    subject: String,
    a: &http::Attempt,
) -> Result<(), JobFailure> {
    let s = schema.clone();
    let ok = matches!(a.class, http::Class::Success | http::Class::Duplicate);
    let status = a.status.map(i32::from);
    let error = a.error.clone();
    let ms = a.duration_ms;
    let outbox_id = row.id;
    let attempt = row.attempts + 1;
    db::run(&state.pool, move |c| {
        db::scope::in_tenant(c, &s, |c| {
            health::log(
                c,
                &health::NewDelivery {
                    connector,
                    outbox_id,
                    subject: &subject,
                    attempt,
                    ok,
                    http_status: status,
                    error: error.as_deref(),
                    remote_ref: None,
                    duration_ms: ms,
                },
            )
        })
    })
    .await?;
    Ok(())
}

fn outcome(a: &http::Attempt) -> Result<Delivered, JobFailure> {
    let error = a.error.clone().unwrap_or_default();
    match a.class {
        http::Class::Success | http::Class::Duplicate => Ok(Delivered::Sent),
        http::Class::Retry => Err(JobFailure::retry(error)),
        http::Class::Permanent => Err(JobFailure::permanent(error)),
    }
}

/// Delivers one `webhook.deliver` outbox row.
pub async fn deliver_webhook(
    state: &AppState,
    tenant_id: i64,
    schema: &TenantSchema,
    row: &outbox::OutboxRow,
) -> Result<Delivered, JobFailure> {
    let endpoint_id = row.payload.get("endpoint_id").and_then(Value::as_i64);
    let event_id = row.payload.get("event_id").and_then(Value::as_i64);
    let (Some(endpoint_id), Some(event_id)) = (endpoint_id, event_id) else {
        return Err(JobFailure::permanent(
            "webhook delivery without endpoint or event",
        ));
    };
    let key = state.config.secret_key.clone();
    let s = schema.clone();
    let (endpoint, event, secret) = db::run(&state.pool, move |c| {
        db::scope::in_tenant(c, &s, |c| {
            let ep: Option<Endpoint> = we::table.find(endpoint_id).first(c).optional()?;
            let secret = match &ep {
                Some(e) => Some(super::handlers::open_secret(&key, &e.secret_sealed)?),
                None => None,
            };
            Ok((ep, event_row(c, event_id)?, secret))
        })
    })
    .await?;
    let (Some(endpoint), Some(event)) = (endpoint, event) else {
        return Err(JobFailure::permanent(
            "the endpoint or the event no longer exists",
        ));
    };
    if endpoint.status != "active" {
        return Err(JobFailure::permanent(
            "the endpoint is disabled; enable it, then send again",
        ));
    }
    let body = serde_json::to_vec(&event_body(tenant_id, &event)).map_err(JobFailure::permanent)?;
    let idempotency_key = format!("evt_{tenant_id}_{event_id}");
    let a = http::post(
        &state.http,
        &http::Request {
            method: reqwest::Method::POST,
            url: &endpoint.url,
            body,
            idempotency_key: &idempotency_key,
            bearer: None,
            signing_secret: secret.as_deref(),
        },
    )
    .await;
    let subject = format!(
        "{} evt_{tenant_id}_{event_id} → {}",
        event.event_type, endpoint.url
    );
    log_attempt(
        state,
        schema,
        crate::integrations::WEBHOOKS.code,
        row,
        subject,
        &a,
    )
    .await?;
    outcome(&a)
}

/// Delivers one `crm.writeback` outbox row.
pub async fn deliver_writeback(
    state: &AppState,
    tenant_id: i64,
    schema: &TenantSchema,
    row: &outbox::OutboxRow,
) -> Result<Delivered, JobFailure> {
    let connector_id = row.payload.get("connector_id").and_then(Value::as_i64);
    let event_id = row.payload.get("event_id").and_then(Value::as_i64);
    let deal = row
        .payload
        .get("deal")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let invoice_id = row.payload.get("invoice_id").and_then(Value::as_i64);
    let (Some(connector_id), Some(event_id)) = (connector_id, event_id) else {
        return Err(JobFailure::permanent(
            "write-back without connector or event",
        ));
    };
    let key = state.config.secret_key.clone();
    let s = schema.clone();
    let (connector, event, inv, secret, token) = db::run(&state.pool, move |c| {
        db::scope::in_tenant(c, &s, |c| {
            let connector = repo::connector(c, connector_id)?;
            let secret = super::handlers::open_optional(&key, connector.secret_sealed.as_deref())?;
            let token =
                super::handlers::open_optional(&key, connector.api_token_sealed.as_deref())?;
            let inv = match invoice_id {
                Some(i) => invoice_state(c, i)?,
                None => None,
            };
            Ok((connector, event_row(c, event_id)?, inv, secret, token))
        })
    })
    .await?;
    let event = event.ok_or_else(|| JobFailure::permanent("the event no longer exists"))?;
    let (method, url, body) = writeback_request(&connector, tenant_id, &deal, &event, inv.as_ref());
    if url.is_empty() || !url.starts_with("http") {
        return Err(JobFailure::permanent(format!(
            "{} has no write-back address; set it on the connector, then send again",
            connector.name
        )));
    }
    let idempotency_key = format!("arbor-{tenant_id}-evt-{event_id}-{connector_id}");
    let generic = connector.kind == "generic";
    let a = http::post(
        &state.http,
        &http::Request {
            method,
            url: &url,
            body: serde_json::to_vec(&body).map_err(JobFailure::permanent)?,
            idempotency_key: &idempotency_key,
            bearer: if generic { None } else { token.as_deref() },
            signing_secret: if generic { secret.as_deref() } else { None },
        },
    )
    .await;
    let subject = format!("{} → {} deal {deal}", event.event_type, connector.name);
    log_attempt(
        state,
        schema,
        crate::integrations::CRM_WRITEBACK.code,
        row,
        subject,
        &a,
    )
    .await?;
    outcome(&a)
}
