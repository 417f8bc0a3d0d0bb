//! `POST /api/v1/accounts/{id}/contacts` and `POST /api/v1/subscriptions` (write keys).
//!
//! Rules: the same parsing, checks and audit as the forms (`ContactData::parse`,
//! `SubscriptionInput::parse` and `subscriptions::service::create`); subscription items come
//! as `"items": [{"price_id", "quantity", "discount"}]` (a discount is an amount or `"10%"`).
//! Invalid fields are 422 by field; `Idempotency-Key` is honoured like every POST.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{idempotency, ApiCtx, ApiError, ApiResult};
use crate::{
    accounts::{
        contacts_repo::{self as contacts, ContactData},
        domain::Fields,
        repo as accounts,
    },
    audit::{self, Entry},
    error::{AppError, FieldErrors},
    subscriptions::domain::SubscriptionInput,
    web::AppState,
};

fn scalar(k: &str, v: &Value) -> Result<Option<String>, ApiError> {
    Ok(match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(if *b { "on".into() } else { String::new() }),
        Value::Number(n) => Some(n.to_string()),
        _ => {
            let mut e = FieldErrors::default();
            e.add(k, "Must be a string, number or boolean.");
            return Err(ApiError::Validation(e));
        }
    })
}

/// A JSON object as form fields; `items` (an array of objects) becomes `item<i>_<field>`;
/// `defaults` fill fields the body leaves out.
pub fn fields_with_items(body: &[u8], defaults: &[(&str, &str)]) -> Result<Fields, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("The body is not valid JSON: {e}")))?;
    let Value::Object(map) = v else {
        return Err(ApiError::BadRequest(
            "The body must be a JSON object.".into(),
        ));
    };
    let mut pairs = Vec::new();
    for (k, v) in map {
        if k == "items" {
            let Value::Array(items) = v else {
                let mut e = FieldErrors::default();
                e.add("items", "Must be an array of items.");
                return Err(ApiError::Validation(e));
            };
            for (i, item) in items.iter().enumerate() {
                let Value::Object(fields) = item else {
                    let mut e = FieldErrors::default();
                    e.add(&format!("item{i}_price"), "Each item is an object.");
                    return Err(ApiError::Validation(e));
                };
                for (f, v) in fields {
                    let name = match f.as_str() {
                        "price_id" => "price".to_owned(),
                        other => other.to_owned(),
                    };
                    if let Some(s) = scalar(&format!("item{i}_{name}"), v)? {
                        pairs.push((format!("item{i}_{name}"), s));
                    }
                }
            }
            continue;
        }
        if let Some(s) = scalar(&k, &v)? {
            pairs.push((k, s));
        }
    }
    for (k, v) in defaults {
        if !pairs.iter().any(|(n, _)| n == k) {
            pairs.push(((*k).to_owned(), (*v).to_owned()));
        }
    }
    Ok(Fields::from_pairs(pairs))
}

pub async fn create_contact(
    req: HttpRequest,
    ctx: ApiCtx,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    ctx.require_write()?;
    let body = crate::web::body::read(&req, payload, super::MAX_BODY).await?;
    let account_id = path.into_inner();
    let f = fields_with_items(&body, &[])?;
    let actor = ctx.actor();
    idempotency::run(&req, &ctx, &state, &body, move |c| {
        let a = accounts::get(c, account_id)?.ok_or(AppError::NotFound)?;
        if a.status == "merged" {
            return Ok(Err(ApiError::App(AppError::Conflict(
                "This account was merged into another.".into(),
            ))));
        }
        let mut errors = FieldErrors::default();
        let Some(d) = ContactData::parse(&f, &mut errors) else {
            return Ok(Err(ApiError::Validation(errors)));
        };
        let id = contacts::insert(c, account_id, &d)?;
        let mut after = d.audit_json();
        if let Some(o) = after.as_object_mut() {
            o.insert("account_id".into(), json!(account_id));
        }
        audit::record(c, &actor, &Entry::new("contact.created", "contact", id).after(after))?;
        Ok(Ok((
            201,
            json!({
                "id": id, "object": "contact", "account_id": account_id, "name": d.name,
                "email": d.email, "phone": d.phone, "job_title": d.job_title, "roles": d.roles,
                "receives_invoices": d.receives_invoices, "receives_reminders": d.receives_reminders,
                "status": d.status,
            }),
        )))
    })
    .await
}

pub async fn create_subscription(
    req: HttpRequest,
    ctx: ApiCtx,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    ctx.require_write()?;
    let body = crate::web::body::read(&req, payload, super::MAX_BODY).await?;
    // What the form preselects: billed in advance, monthly, for a year.
    let f = fields_with_items(
        &body,
        &[("timing", "advance"), ("cycle", "1"), ("term_months", "12")],
    )?;
    let account_id = f.get("account_id").parse::<i64>().ok();
    let today = chrono::Utc::now().date_naive();
    let mut input = match SubscriptionInput::parse(&f, today) {
        Ok(i) => i,
        Err(e) => return Err(ApiError::Validation(e)),
    };
    if input.items.is_empty() {
        let mut e = FieldErrors::default();
        e.add("items", "Add at least one item with a price_id.");
        return Err(ApiError::Validation(e));
    }
    let Some(account_id) = account_id else {
        let mut e = FieldErrors::default();
        e.add("account_id", "Name the account by its id.");
        return Err(ApiError::Validation(e));
    };
    input.apply_term_end();
    let actor = ctx.actor();
    idempotency::run(&req, &ctx, &state, &body, move |c| {
        let account = accounts::get(c, account_id)?.ok_or(AppError::NotFound)?;
        match crate::subscriptions::service::create(c, &actor, &account, &input)? {
            Err(e) => Ok(Err(ApiError::Validation(e))),
            Ok(id) => {
                let s = crate::subscriptions::repo::get(c, id)?;
                Ok(Ok((
                    201,
                    json!({
                        "id": s.id, "object": "subscription", "number": s.number, "account_id": s.account_id,
                        "currency": s.currency, "status": s.status, "start_date": s.start_date.to_string(),
                        "end_date": s.end_date.map(|d| d.to_string()), "interval_months": s.interval_months,
                        "auto_renew": s.auto_renew, "po_number": s.po_number,
                    }),
                )))
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_become_numbered_form_fields() {
        let f = fields_with_items(
            br#"{"account_id": 7, "cycle": "12", "auto_renew": true,
                "items": [{"price_id": 3, "quantity": "2", "discount": "10%"}, {"price_id": 4}]}"#,
            &[("cycle", "1"), ("timing", "advance")],
        )
        .unwrap();
        assert_eq!(f.get("cycle"), "12", "the body wins over a default");
        assert_eq!(f.get("timing"), "advance");
        assert_eq!(f.get("account_id"), "7");
        assert_eq!(f.get("auto_renew"), "on");
        assert_eq!(f.get("item0_price"), "3");
        assert_eq!(f.get("item0_discount"), "10%");
        assert_eq!(f.get("item1_price"), "4");
        assert!(fields_with_items(br#"{"items": 3}"#, &[]).is_err());
        assert!(fields_with_items(br#"[1]"#, &[]).is_err());
    }
}
