//! `POST /api/v1/usage_records`: metered usage for a subscription item.
//!
//! Rules: the same checks as usage entered on the subscription page (the item must belong to the
//! subscription, quantity zero or more, date defaults to today). `external_id` is required and
//! unique per tenant, so a resend of the same record is harmless: the existing record is
//! answered with 200 instead of 201 and nothing changes. Audited as `usage.recorded`.

use actix_web::{web, HttpRequest, HttpResponse};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::{accounts::fields_of, idempotency, ApiCtx, ApiError, ApiResult};
use crate::{
    audit::{self, Entry},
    db::schema::tenant::usage_records as u,
    error::{AppError, FieldErrors},
    invoicing::handlers::today,
    subscriptions::repo,
    web::AppState,
};

type UsageRow = (i64, i64, i64, chrono::NaiveDate, Decimal, String, String);

fn to_json(r: &UsageRow, item_id: i64) -> Value {
    let (id, sub, product, date, qty, ext, source) = r;
    json!({
        "id": id, "object": "usage_record", "subscription_id": sub,
        "subscription_item_id": item_id, "product_id": product,
        "usage_date": date.to_string(), "quantity": qty.normalize().to_string(),
        "external_id": ext, "source": source,
    })
}

pub async fn create(
    req: HttpRequest,
    ctx: ApiCtx,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    ctx.require_write()?;
    let body = crate::web::body::read(&req, payload, super::MAX_BODY).await?;
    let f = fields_of(&body)?;
    let mut e = FieldErrors::default();
    let sub_id = f.get("subscription_id").parse::<i64>().ok();
    if sub_id.is_none() {
        e.add("subscription_id", "Give the subscription's id.");
    }
    let item_id = f.get("subscription_item_id").parse::<i64>().ok();
    if item_id.is_none() {
        e.add("subscription_item_id", "Give the subscription item's id.");
    }
    let quantity = match f.decimal("quantity") {
        Ok(Some(q)) if q >= Decimal::ZERO => Some(q),
        Ok(_) => {
            e.add("quantity", "Give the quantity used (zero or more).");
            None
        }
        Err(m) => {
            e.add("quantity", m);
            None
        }
    };
    let date = match f.date("usage_date") {
        Ok(d) => Some(d.unwrap_or_else(today)),
        Err(m) => {
            e.add("usage_date", m);
            None
        }
    };
    let external_id = f.get("external_id").to_owned();
    if external_id.is_empty() || external_id.chars().count() > 200 {
        e.add(
            "external_id",
            "Give your unique id for this record (1 to 200 characters).",
        );
    }
    let (Some(sub_id), Some(item_id), Some(quantity), Some(date)) =
        (sub_id, item_id, quantity, date)
    else {
        return Err(ApiError::Validation(e));
    };
    e.into_result()?;
    let actor = ctx.actor();
    idempotency::run(&req, &ctx, &state, &body, move |c| {
        let cols = (
            u::id,
            u::subscription_id,
            u::product_id,
            u::usage_date,
            u::quantity,
            u::external_id,
            u::source,
        );
        let sub = repo::get(c, sub_id)?;
        let Some(item) = repo::items_of(c, sub.id)?
            .into_iter()
            .find(|i| i.id == item_id)
        else {
            let mut e = FieldErrors::default();
            e.add(
                "subscription_item_id",
                "This item is not on that subscription.",
            );
            return Ok(Err(ApiError::Validation(e)));
        };
        let inserted: Option<UsageRow> = diesel::insert_into(u::table)
            .values((
                u::subscription_id.eq(sub.id),
                u::product_id.eq(item.product_id),
                u::usage_date.eq(date),
                u::quantity.eq(quantity),
                u::external_id.eq(&external_id),
                u::source.eq("api"),
            ))
            .on_conflict(u::external_id)
            .do_nothing()
            .returning(cols)
            .get_result(c)
            .optional()?;
        let Some(row) = inserted else {
            let existing: UsageRow = u::table
                .filter(u::external_id.eq(&external_id))
                .select(cols)
                .first(c)?;
            if existing.1 != sub.id {
                return Err(AppError::Conflict(
                    "This external_id is already used for another subscription.".into(),
                ));
            }
            return Ok(Ok((200, to_json(&existing, item_id))));
        };
        audit::record(
            c,
            &actor,
            &Entry::new("usage.recorded", "subscription", sub.id).after(json!({
                "product_id": item.product_id, "date": date, "quantity": quantity,
                "external_id": external_id, "source": "api",
            })),
        )?;
        Ok(Ok((201, to_json(&row, item_id))))
    })
    .await
}
