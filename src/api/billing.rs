//! Read-only billing lists: `/api/v1/invoices` (+ one invoice), `/payments`, `/subscriptions`.
//!
//! Rules: money is a decimal string in the document's currency, dates ISO 8601; lists page by
//! id like every list. Invoices filter by `account_id` and `status`.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{list_body, ApiCtx, ApiError, ApiResult, Page};
use crate::{
    db::schema::tenant::{invoices as i, payments as p, subscriptions as s},
    web::AppState,
};

type InvoiceRow = (
    i64,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
    String,
    NaiveDate,
    Option<NaiveDate>,
    (Decimal, Decimal, Decimal, Decimal, Decimal),
);

fn invoice_json(r: &InvoiceRow) -> Value {
    let (id, kind, number, status, account_id, sub, currency, issue, due, money) = r;
    let (subtotal, tax, total, paid, amount_due) = money;
    json!({
        "id": id, "object": "invoice", "kind": kind, "number": number, "status": status,
        "account_id": account_id, "subscription_id": sub, "currency": currency,
        "issue_date": issue.to_string(), "due_date": due.map(|d| d.to_string()),
        "subtotal": subtotal.to_string(), "tax_total": tax.to_string(), "total": total.to_string(),
        "amount_paid": paid.to_string(), "amount_due": amount_due.to_string(),
    })
}

macro_rules! invoice_cols {
    () => {
        (
            i::id,
            i::kind,
            i::number,
            i::status,
            i::account_id,
            i::subscription_id,
            i::currency,
            i::issue_date,
            i::due_date,
            (
                i::subtotal,
                i::tax_total,
                i::total,
                i::amount_paid,
                i::amount_due,
            ),
        )
    };
}

#[derive(Debug, Deserialize)]
pub struct InvoiceQuery {
    pub limit: Option<i64>,
    pub starting_after: Option<i64>,
    pub account_id: Option<i64>,
    pub status: Option<String>,
}

pub async fn invoices(
    ctx: ApiCtx,
    state: web::Data<AppState>,
    q: web::Query<InvoiceQuery>,
) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let limit = Page {
        limit: q.limit,
        starting_after: None,
    }
    .limit();
    let rows = ctx
        .db(&state, move |c| {
            let mut query = i::table
                .filter(i::id.gt(q.starting_after.unwrap_or(0)))
                .into_boxed();
            if let Some(a) = q.account_id {
                query = query.filter(i::account_id.eq(a));
            }
            if let Some(st) = q.status.filter(|v| !v.is_empty()) {
                query = query.filter(i::status.eq(st));
            }
            Ok(query
                .order(i::id)
                .limit(limit + 1)
                .select(invoice_cols!())
                .load::<InvoiceRow>(c)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(list_body(rows.iter().map(invoice_json).collect(), limit)))
}

pub async fn invoice(
    ctx: ApiCtx,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let row = ctx
        .db(&state, move |c| {
            Ok(i::table
                .find(id)
                .select(invoice_cols!())
                .first::<InvoiceRow>(c)
                .optional()?)
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(invoice_json(&row)))
}

type PaymentRow = (
    i64,
    i64,
    String,
    String,
    Decimal,
    Decimal,
    NaiveDate,
    String,
    String,
    DateTime<Utc>,
);

pub async fn payments(
    ctx: ApiCtx,
    state: web::Data<AppState>,
    page: web::Query<Page>,
) -> ApiResult<HttpResponse> {
    let limit = page.limit();
    let after = page.starting_after.unwrap_or(0);
    let rows = ctx
        .db(&state, move |c| {
            Ok(p::table
                .filter(p::id.gt(after))
                .order(p::id)
                .limit(limit + 1)
                .select((
                    p::id,
                    p::account_id,
                    p::method,
                    p::currency,
                    p::amount,
                    p::refunded,
                    p::received_on,
                    p::reference,
                    p::status,
                    p::created_at,
                ))
                .load::<PaymentRow>(c)?)
        })
        .await?;
    let data = rows
        .iter()
        .map(
            |(id, acc, method, cur, amount, refunded, on, reference, status, at)| {
                json!({
                    "id": id, "object": "payment", "account_id": acc, "method": method,
                    "currency": cur, "amount": amount.to_string(), "refunded": refunded.to_string(),
                    "received_on": on.to_string(), "reference": reference, "status": status,
                    "created_at": at.to_rfc3339(),
                })
            },
        )
        .collect();
    Ok(HttpResponse::Ok().json(list_body(data, limit)))
}

type SubscriptionRow = (
    i64,
    String,
    i64,
    String,
    String,
    NaiveDate,
    Option<NaiveDate>,
    i32,
    bool,
    NaiveDate,
);

pub async fn subscriptions(
    ctx: ApiCtx,
    state: web::Data<AppState>,
    page: web::Query<Page>,
) -> ApiResult<HttpResponse> {
    let limit = page.limit();
    let after = page.starting_after.unwrap_or(0);
    let rows = ctx
        .db(&state, move |c| {
            Ok(s::table
                .filter(s::id.gt(after))
                .order(s::id)
                .limit(limit + 1)
                .select((
                    s::id,
                    s::number,
                    s::account_id,
                    s::currency,
                    s::status,
                    s::start_date,
                    s::end_date,
                    s::interval_months,
                    s::auto_renew,
                    s::billed_through,
                ))
                .load::<SubscriptionRow>(c)?)
        })
        .await?;
    let data = rows
        .iter()
        .map(
            |(id, number, acc, cur, status, start, end, interval, renew, through)| {
                json!({
                    "id": id, "object": "subscription", "number": number, "account_id": acc,
                    "currency": cur, "status": status, "start_date": start.to_string(),
                    "end_date": end.map(|d| d.to_string()), "interval_months": interval,
                    "auto_renew": renew, "billed_through": through.to_string(),
                })
            },
        )
        .collect();
    Ok(HttpResponse::Ok().json(list_body(data, limit)))
}
