//! `/api/v1/accounts`: list, fetch and create customer accounts.
//!
//! Rules: creation goes through the same parsing and `accounts::service::create` as the form,
//! with the flat JSON object read like form fields (`legal_name`, `currency`, `terms_days`,
//! `billing_line1`, ...); invalid fields are 422 with the messages by field. Likely duplicates
//! are 409 unless `confirm_duplicates` is true. Merged accounts are not listed.

use actix_web::{web, HttpRequest, HttpResponse};
use diesel::prelude::*;
use serde_json::{json, Value};

use super::{idempotency, list_body, ApiCtx, ApiError, ApiResult, Page};
use crate::{
    accounts::{
        domain::{parse_custom, Fields},
        handlers::{default_currency, members},
        repo::{self, Account},
        service::{self, Policy, Saved},
    },
    db::schema::tenant::accounts as a,
    error::{AppError, FieldErrors},
    web::AppState,
};

/// The API representation of an account.
pub fn to_json(acc: &Account) -> Value {
    json!({
        "id": acc.id,
        "object": "account",
        "account_number": acc.account_number,
        "legal_name": acc.legal_name,
        "display_name": acc.display_name,
        "status": acc.status,
        "currency": acc.currency,
        "tax_id": acc.tax_id,
        "tax_mode": acc.tax_mode,
        "tax_rate": acc.tax_rate.map(|r| r.to_string()),
        "terms_kind": acc.terms_kind,
        "terms_days": acc.terms_days,
        "invoice_delivery": acc.invoice_delivery,
        "domain": acc.domain,
        "po_number": acc.po_number,
        "parent_id": acc.parent_id,
        "bill_to_parent": acc.bill_to_parent,
        "billing_address": acc.billing_address,
        "shipping_address": acc.shipping_address,
        "custom_fields": acc.custom_fields,
        "created_at": acc.created_at.to_rfc3339(),
        "updated_at": acc.updated_at.to_rfc3339(),
    })
}

pub async fn list(
    ctx: ApiCtx,
    state: web::Data<AppState>,
    page: web::Query<Page>,
) -> ApiResult<HttpResponse> {
    let limit = page.limit();
    let after = page.starting_after.unwrap_or(0);
    let rows = ctx
        .db(&state, move |c| {
            Ok(a::table
                .filter(a::id.gt(after))
                .filter(a::merged_into_id.is_null())
                .order(a::id)
                .limit(limit + 1)
                .select(Account::as_select())
                .load::<Account>(c)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(list_body(rows.iter().map(to_json).collect(), limit)))
}

pub async fn get(
    ctx: ApiCtx,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let acc = ctx
        .db(&state, move |c| repo::get(c, id))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(to_json(&acc)))
}

type ContactRow = (
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Vec<String>,
    bool,
    bool,
    String,
);

/// `GET /api/v1/accounts/{id}/contacts`: the account's contacts (404 for unknown accounts).
pub async fn contacts(
    ctx: ApiCtx,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    page: web::Query<Page>,
) -> ApiResult<HttpResponse> {
    use crate::db::schema::tenant::contacts as ct;
    let (id, limit, after) = (
        id.into_inner(),
        page.limit(),
        page.starting_after.unwrap_or(0),
    );
    let rows = ctx
        .db(&state, move |c| {
            repo::get(c, id)?.ok_or(AppError::NotFound)?;
            Ok(ct::table
                .filter(ct::account_id.eq(id))
                .filter(ct::id.gt(after))
                .order(ct::id)
                .limit(limit + 1)
                .select((
                    ct::id,
                    ct::account_id,
                    ct::name,
                    ct::email,
                    ct::phone,
                    ct::job_title,
                    ct::roles,
                    ct::receives_invoices,
                    ct::receives_reminders,
                    ct::status,
                ))
                .load::<ContactRow>(c)?)
        })
        .await?;
    let data = rows
        .iter()
        .map(
            |(id, acc, name, email, phone, title, roles, inv, rem, status)| {
                json!({
                    "id": id, "object": "contact", "account_id": acc, "name": name, "email": email,
                    "phone": phone, "job_title": title, "roles": roles, "receives_invoices": inv,
                    "receives_reminders": rem, "status": status,
                })
            },
        )
        .collect();
    Ok(HttpResponse::Ok().json(list_body(data, limit)))
}

/// A flat JSON object as form fields: strings as they are, numbers and booleans as text.
pub fn fields_of(body: &[u8]) -> ApiResult<Fields> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("The body is not valid JSON: {e}")))?;
    let Value::Object(map) = v else {
        return Err(ApiError::BadRequest(
            "The body must be a JSON object.".into(),
        ));
    };
    let mut pairs = Vec::new();
    for (k, v) in map {
        let s = match v {
            Value::Null => continue,
            Value::String(s) => s,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            _ => {
                let mut e = FieldErrors::default();
                e.add(&k, "Must be a string, number or boolean.");
                return Err(ApiError::Validation(e));
            }
        };
        pairs.push((k, s));
    }
    Ok(Fields::from_pairs(pairs))
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
    let members = members(&state, ctx.tenant.id).await?;
    let actor = ctx.actor();
    let confirmed = f.flag("confirm_duplicates");
    // A write key acts for the whole tenant, like an admin.
    let policy = Policy {
        terms: true,
        owner_only: None,
    };
    idempotency::run(&req, &ctx, &state, &body, move |c| {
        let mut errors = FieldErrors::default();
        let defs = repo::custom_field_defs(c)?;
        let currency = default_currency(c)?;
        let mut d = service::data_from_fields(c, &f, &currency, &members, policy, &mut errors)?;
        let custom = parse_custom(&f, &defs, &mut errors);
        service::apply_custom(&mut d, &defs, custom);
        if !errors.is_empty() {
            return Ok(Err(ApiError::Validation(errors)));
        }
        match service::create(c, &actor, d.clone(), confirmed, None)? {
            Saved::Done(id) => {
                service::note_hierarchy_change(c, &actor, id, None, d.parent_id)?;
                let acc = repo::get(c, id)?.ok_or(AppError::NotFound)?;
                Ok(Ok((201, to_json(&acc))))
            }
            Saved::Duplicates(m) => {
                let ids: Vec<String> = m.iter().map(|x| x.0.to_string()).collect();
                Ok(Err(ApiError::App(AppError::Conflict(format!(
                    "This looks like existing account(s) {}; send confirm_duplicates: true to create it anyway.",
                    ids.join(", ")
                )))))
            }
            Saved::Stale => Err(AppError::Conflict("Please try again.".into())),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_become_fields() {
        let f =
            fields_of(br#"{"legal_name":"Acme","terms_days":45,"bill_to_parent":true,"x":null}"#)
                .map_err(|_| ())
                .unwrap();
        assert_eq!(f.get("legal_name"), "Acme");
        assert_eq!(f.get("terms_days"), "45");
        assert!(f.flag("bill_to_parent"));
        assert!(fields_of(b"[1]").is_err());
        assert!(fields_of(br#"{"a":[1]}"#).is_err());
    }
}
