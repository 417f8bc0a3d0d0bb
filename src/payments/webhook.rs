//! Stripe webhooks: `POST /hooks/{slug}/stripe`.
//!
//! Rules: the `Stripe-Signature` header must verify against the tenant's signing secret
//! within 300 s, else 400 and nothing changes. Each event id is stored before it is acted on,
//! so Stripe's redeliveries have one effect. Pending charges are settled by
//! `payment_intent.succeeded` / `payment_intent.payment_failed`; `charge.dispute.created`
//! flags the invoice as disputed (which stops its dunning and charges) and opens a task.
//! A body over [`MAX_BODY`] is 413 and nothing is stored.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use diesel::prelude::*;
use serde_json::Value;

use super::{
    charge,
    gateway::{self, stripe, Outcome},
};
use crate::{
    db::{
        self,
        schema::tenant::{charge_attempts as ca, gateway_events as ge},
        scope::{in_tenant, TenantSchema},
    },
    dunning,
    error::{AppError, AppResult},
    web::AppState,
};

fn bad(msg: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/plain; charset=utf-8")
        .body(msg.to_owned())
}

/// Largest event accepted. Stripe's events are a few KB; the largest objects it sends (an
/// invoice with many lines) stay well under this.
pub const MAX_BODY: usize = 256 * 1024;

pub async fn stripe(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> AppResult<HttpResponse> {
    // Refused before any lookup, and as text like the other refusals: Stripe shows the
    // answer in its delivery log.
    let body = match crate::web::body::read(&req, payload, MAX_BODY).await {
        Ok(b) => b,
        Err(AppError::PayloadTooLarge(m)) => {
            return Ok(HttpResponse::PayloadTooLarge()
                .content_type("text/plain; charset=utf-8")
                .body(m))
        }
        Err(e) => return Err(e),
    };
    let slug = path.into_inner();
    let (tenant_id, schema) = db::run(&state.pool, move |c| {
        crate::tenants::repo::find_id_by_slug(c, &slug)
    })
    .await?
    .ok_or(AppError::NotFound)?;
    let schema =
        TenantSchema::parse(&schema).map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
    let key = state.config.secret_key.clone();
    let s = schema.clone();
    let secret = db::run(&state.pool, move |c| {
        in_tenant(c, &s, |c| {
            gateway::sealed_setting(c, &key, gateway::STRIPE_WEBHOOK_SECRET)
        })
    })
    .await?
    .ok_or(AppError::NotFound)?;
    let header = req
        .headers()
        .get("Stripe-Signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Err(e) = stripe::verify_signature(
        header,
        &body,
        &secret,
        Utc::now().timestamp(),
        stripe::TOLERANCE_SECS,
    ) {
        tracing::warn!(tenant_id, error = %e, "rejected a Stripe webhook");
        return Ok(bad(&format!("signature check failed: {e}")));
    }
    let event = match stripe::parse_event(&body) {
        Ok(e) => e,
        Err(e) => return Ok(bad(&format!("not a Stripe event: {e}"))),
    };
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let slug = db::run(&state.pool, move |c| {
        crate::tenants::repo::slug_of(c, tenant_id)
    })
    .await?
    .ok_or(AppError::NotFound)?;
    let links = crate::invoicing::billrun::links_for(&state, tenant_id, &slug);
    let today = Utc::now().date_naive();
    let result = db::run(&state.pool, move |c| {
        in_tenant(c, &schema, |c| {
            let fresh = diesel::insert_into(ge::table)
                .values((
                    ge::gateway.eq("stripe"),
                    ge::event_id.eq(&event.id),
                    ge::event_type.eq(&event.event_type),
                    ge::payload.eq(&payload),
                ))
                .on_conflict_do_nothing()
                .execute(c)?;
            if fresh == 0 {
                return Ok("duplicate".to_owned());
            }
            let result = apply(c, &links, &event, today)?;
            diesel::update(ge::table.find(("stripe", &event.id)))
                .set(ge::result.eq(&result))
                .execute(c)?;
            Ok(result)
        })
    })
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(serde_json::json!({ "received": true, "result": result }).to_string()))
}

/// The attempt a PaymentIntent belongs to: by our metadata, else by the intent id.
fn attempt_of(conn: &mut PgConnection, object: &Value) -> AppResult<Option<charge::Attempt>> {
    let by_meta = stripe::metadata_i64(object, "attempt_id");
    let intent = stripe::payment_intent_id(object).map(str::to_owned);
    let mut q = ca::table.into_boxed();
    q = match (by_meta, intent) {
        (Some(id), _) => q.filter(ca::id.eq(id)),
        (None, Some(pi)) => q.filter(ca::gateway_ref.eq(pi)),
        (None, None) => return Ok(None),
    };
    Ok(q.select(charge::Attempt::as_select())
        .first(conn)
        .optional()?)
}

fn apply(
    conn: &mut PgConnection,
    links: &crate::invoicing::email::Links,
    event: &stripe::WebhookEvent,
    today: chrono::NaiveDate,
) -> AppResult<String> {
    let object = &event.object;
    match event.event_type.as_str() {
        "payment_intent.succeeded" | "payment_intent.payment_failed" => {
            let Some(a) = attempt_of(conn, object)? else {
                return Ok("no matching charge".into());
            };
            if !matches!(a.status.as_str(), "pending" | "processing") {
                return Ok(format!("charge already {}", a.status));
            }
            let outcome = match stripe::classify(200, object) {
                Outcome::Pending { .. } if event.event_type == "payment_intent.payment_failed" => {
                    stripe::classify(
                        402,
                        &serde_json::json!({ "error": object.get("last_payment_error") }),
                    )
                }
                o => o,
            };
            charge::record(conn, links, a.id, &outcome, today)?;
            Ok(format!("charge {} recorded", a.id))
        }
        "charge.dispute.created" => {
            let Some(a) = attempt_of(conn, object)? else {
                return Ok("no matching charge".into());
            };
            let reason = object
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("dispute opened at the card network");
            dunning::repo::set_dispute(conn, a.invoice_id, true, Some(reason), today)?;
            dunning::repo::create_task(
                conn,
                &dunning::repo::NewTask {
                    account_id: a.account_id,
                    invoice_id: Some(a.invoice_id),
                    title: format!("Card dispute opened ({reason})"),
                    detail: "Respond with evidence in Stripe before the deadline.".into(),
                    assignee: dunning::domain::Assignee::AccountOwner,
                    due_on: today + chrono::Duration::days(3),
                    source: "payment_failed",
                },
            )?;
            crate::payments::repo::event(
                conn,
                "invoice.disputed",
                "invoice",
                a.invoice_id,
                serde_json::json!({ "reason": reason, "gateway": "stripe" }),
            )?;
            Ok("invoice flagged as disputed".into())
        }
        _ => Ok("ignored".into()),
    }
}
