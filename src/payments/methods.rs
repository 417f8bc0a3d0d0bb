//! Stored payment methods of an account.
//!
//! Rules: the card number never reaches the database; the sandbox tokenizes test cards and
//! Stripe methods are entered as the ids Stripe gave them (`cus_...`, `pm_...`). An account
//! has at most one default method; adding one makes it the default. A hard decline marks the
//! method `needs_update`, and nothing charges it again until a new one is added.

use actix_web::{web, HttpRequest, HttpResponse};
use diesel::prelude::*;
use serde_json::json;

use super::gateway::sandbox;
use crate::{
    accounts::{domain::Fields, handlers::visibility, repo as accounts},
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed},
    db::schema::tenant::payment_methods as pm,
    error::{AppError, AppResult, FieldErrors},
    web::{render, AppState},
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pm)]
pub struct PaymentMethod {
    pub id: i64,
    pub account_id: i64,
    pub gateway: String,
    pub token: String,
    pub customer_ref: Option<String>,
    pub brand: String,
    pub last4: String,
    pub exp_month: Option<i32>,
    pub exp_year: Option<i32>,
    pub is_default: bool,
    pub auto_charge: bool,
    pub status: String,
    pub status_reason: Option<String>,
}

impl PaymentMethod {
    pub fn label(&self) -> String {
        let exp = match (self.exp_month, self.exp_year) {
            (Some(m), Some(y)) => format!(" exp {m:02}/{y}"),
            _ => String::new(),
        };
        format!("{} •••• {}{exp} ({})", self.brand, self.last4, self.gateway)
    }
}

pub fn get(conn: &mut PgConnection, id: i64) -> AppResult<PaymentMethod> {
    pm::table
        .find(id)
        .select(PaymentMethod::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

pub fn for_account(conn: &mut PgConnection, account_id: i64) -> AppResult<Vec<PaymentMethod>> {
    Ok(pm::table
        .filter(pm::account_id.eq(account_id))
        .filter(pm::status.ne("removed"))
        .order((pm::is_default.desc(), pm::id.desc()))
        .select(PaymentMethod::as_select())
        .load(conn)?)
}

pub fn default_for(conn: &mut PgConnection, account_id: i64) -> AppResult<Option<PaymentMethod>> {
    Ok(pm::table
        .filter(pm::account_id.eq(account_id))
        .filter(pm::is_default)
        .filter(pm::status.ne("removed"))
        .select(PaymentMethod::as_select())
        .first(conn)
        .optional()?)
}

pub fn mark_needs_update(conn: &mut PgConnection, id: i64, code: &str) -> AppResult<()> {
    diesel::update(pm::table.find(id))
        .set((
            pm::status.eq("needs_update"),
            pm::status_reason.eq(code),
            pm::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug)]
pub struct NewMethod {
    pub gateway: &'static str,
    pub token: String,
    pub customer_ref: Option<String>,
    pub brand: String,
    pub last4: String,
    pub exp_month: Option<i32>,
    pub exp_year: Option<i32>,
    pub auto_charge: bool,
}

/// Adds a method as the account's default.
pub fn add(
    conn: &mut PgConnection,
    account_id: i64,
    m: &NewMethod,
    by: Option<i64>,
) -> AppResult<i64> {
    diesel::update(pm::table.filter(pm::account_id.eq(account_id)))
        .set(pm::is_default.eq(false))
        .execute(conn)?;
    Ok(diesel::insert_into(pm::table)
        .values((
            pm::account_id.eq(account_id),
            pm::gateway.eq(m.gateway),
            pm::token.eq(&m.token),
            pm::customer_ref.eq(&m.customer_ref),
            pm::brand.eq(&m.brand),
            pm::last4.eq(&m.last4),
            pm::exp_month.eq(m.exp_month),
            pm::exp_year.eq(m.exp_year),
            pm::auto_charge.eq(m.auto_charge),
            pm::created_by.eq(by),
        ))
        .returning(pm::id)
        .get_result(conn)?)
}

fn parse_expiry(
    form: &Fields,
    e: &mut FieldErrors,
    today: chrono::NaiveDate,
) -> (Option<i32>, Option<i32>) {
    use chrono::Datelike as _;
    let raw = form.get("expiry");
    if raw.trim().is_empty() {
        return (None, None);
    }
    let parsed = raw.trim().split_once('/').and_then(|(m, y)| {
        let m: i32 = m.trim().parse().ok()?;
        let y: i32 = y.trim().parse().ok()?;
        let y = if y < 100 { 2000 + y } else { y };
        (1..=12).contains(&m).then_some((m, y))
    });
    match parsed {
        Some((m, y)) if (y, m) >= (today.year(), i32::try_from(today.month()).unwrap_or(12)) => {
            (Some(m), Some(y))
        }
        Some(_) => {
            e.add("expiry", "This card has expired.");
            (None, None)
        }
        None => {
            e.add("expiry", "Write the expiry as MM/YY.");
            (None, None)
        }
    }
}

/// Validates the add form: a sandbox test card, or Stripe customer and method ids.
pub fn parse_new(form: &Fields, today: chrono::NaiveDate) -> Result<NewMethod, FieldErrors> {
    let mut e = FieldErrors::default();
    let auto_charge = form.flag("auto_charge");
    let (exp_month, exp_year) = parse_expiry(form, &mut e, today);
    let method = match form.get("gateway") {
        "stripe" => {
            let customer = form.get("customer_ref").trim().to_owned();
            let token = form.get("token").trim().to_owned();
            if !customer.starts_with("cus_") {
                e.add("customer_ref", "Enter the Stripe customer id (cus_...).");
            }
            if !token.starts_with("pm_") {
                e.add("token", "Enter the Stripe payment method id (pm_...).");
            }
            let last4 = form.get("last4").trim().to_owned();
            if last4.len() != 4 || !last4.chars().all(|c| c.is_ascii_digit()) {
                e.add("last4", "Enter the card's last four digits.");
            }
            let brand = form.get("brand").trim();
            NewMethod {
                gateway: "stripe",
                token,
                customer_ref: Some(customer),
                brand: if brand.is_empty() {
                    "Card".into()
                } else {
                    brand.chars().take(40).collect()
                },
                last4,
                exp_month,
                exp_year,
                auto_charge,
            }
        }
        _ => match sandbox::tokenize(form.get("card_number")) {
            Ok(card) => NewMethod {
                gateway: "sandbox",
                token: card.token,
                customer_ref: None,
                brand: card.brand,
                last4: card.last4,
                exp_month,
                exp_year,
                auto_charge,
            },
            Err(m) => {
                e.add("card_number", m);
                return Err(e);
            }
        },
    };
    if e.is_empty() {
        Ok(method)
    } else {
        Err(e)
    }
}

fn tab_url(ctx: &crate::tenants::TenantCtx, account_id: i64) -> String {
    format!("{}/accounts/{account_id}?tab=payments", ctx.base())
}

pub async fn add_form(
    req: HttpRequest,
    ctx: Allowed<can::PaymentsRecord>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let account_id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let actor = Actor::from_ctx(&ctx, &req);
    let (vis, uid, token) = (visibility(&ctx), ctx.user.id, crate::web::csrf::token(&req));
    let ctx2 = (*ctx).clone();
    let today = crate::invoicing::handlers::today();
    let outcome = ctx
        .db(&state, move |c| {
            accounts::get_visible(c, account_id, vis)?;
            match parse_new(&form, today) {
                Ok(m) => {
                    let id = add(c, account_id, &m, Some(uid))?;
                    audit::record(
                        c,
                        &actor,
                        &Entry::new("payment_method.added", "account", account_id).after(json!({
                            "method_id": id, "gateway": m.gateway, "brand": m.brand,
                            "last4": m.last4, "auto_charge": m.auto_charge,
                        })),
                    )?;
                    Ok(Ok(()))
                }
                Err(e) => {
                    // Never echo a card number back into the page.
                    let mut form = form;
                    form.set("card_number", String::new());
                    Ok(Err(super::handlers::account_tab(
                        c, &ctx2, token, account_id, form, e,
                    )?))
                }
            }
        })
        .await?;
    match outcome {
        Ok(()) => Ok(render::see_other(&req, &tab_url(&ctx, account_id))),
        Err(partial) => render::page_with_status(
            &req,
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            ctx.layout(&req, "Payment methods", "accounts"),
            partial,
        ),
    }
}

/// `make_default`, `auto_on`, `auto_off` or `remove` on one method.
pub async fn change(
    req: HttpRequest,
    ctx: Allowed<can::PaymentsRecord>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64, i64, String)>,
) -> AppResult<HttpResponse> {
    let (_, account_id, method_id, op) = path.into_inner();
    let actor = Actor::from_ctx(&ctx, &req);
    let vis = visibility(&ctx);
    ctx.db(&state, move |c| {
        accounts::get_visible(c, account_id, vis)?;
        let m = get(c, method_id)?;
        if m.account_id != account_id || m.status == "removed" {
            return Err(AppError::NotFound);
        }
        let one = pm::table.find(method_id);
        match op.as_str() {
            "make_default" => {
                diesel::update(pm::table.filter(pm::account_id.eq(account_id)))
                    .set(pm::is_default.eq(false))
                    .execute(c)?;
                diesel::update(one)
                    .set(pm::is_default.eq(true))
                    .execute(c)?;
            }
            "auto_on" | "auto_off" => {
                diesel::update(one)
                    .set(pm::auto_charge.eq(op == "auto_on"))
                    .execute(c)?;
            }
            "remove" => {
                diesel::update(one)
                    .set((pm::status.eq("removed"), pm::is_default.eq(false)))
                    .execute(c)?;
            }
            _ => return Err(AppError::NotFound),
        }
        audit::record(
            c,
            &actor,
            &Entry::new("payment_method.changed", "account", account_id)
                .after(json!({ "method_id": method_id, "change": op })),
        )
    })
    .await?;
    Ok(render::see_other(&req, &tab_url(&ctx, account_id)))
}

/// "Charge now" on an invoice: runs an attempt on the payer's default method at once.
pub async fn charge_now(
    req: HttpRequest,
    ctx: Allowed<can::PaymentsRecord>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let invoice_id = path.1;
    let vis = visibility(&ctx);
    let (tenant_id, uid) = (ctx.tenant.id, ctx.user.id);
    let actor = Actor::from_ctx(&ctx, &req);
    let attempt = ctx
        .db(&state, move |c| {
            let inv = crate::invoicing::handlers::visible(c, vis, invoice_id)?;
            let id = super::charge::schedule(
                c,
                tenant_id,
                inv.id,
                "manual",
                chrono::Utc::now(),
                Some(uid),
            )?;
            let Some(id) = id else {
                return Err(AppError::Conflict(
                    "Nothing to charge: the invoice has no balance, the account has no usable \
                     payment method, or a charge is already in progress."
                        .into(),
                ));
            };
            audit::record(
                c,
                &actor,
                &Entry::new("invoice.charge_requested", "invoice", invoice_id)
                    .after(json!({ "attempt_id": id })),
            )?;
            Ok(id)
        })
        .await?;
    super::charge::execute(
        &state,
        tenant_id,
        &ctx.tenant.schema,
        attempt,
        crate::invoicing::handlers::today(),
    )
    .await?;
    Ok(crate::invoicing::handlers::back(&req, &ctx, invoice_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Fields {
        Fields::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    }
    fn day() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    #[test]
    fn a_sandbox_card_becomes_a_token_with_its_last_digits() {
        let m = parse_new(
            &form(&[
                ("gateway", "sandbox"),
                ("card_number", "4242 4242 4242 4242"),
                ("expiry", "12/29"),
            ]),
            day(),
        )
        .unwrap();
        assert_eq!(
            (m.gateway, m.last4.as_str(), m.exp_month, m.exp_year),
            ("sandbox", "4242", Some(12), Some(2029))
        );
        assert!(m.token.starts_with("tok_sandbox_"));
    }

    #[test]
    fn bad_input_names_each_field() {
        let e = parse_new(
            &form(&[("gateway", "sandbox"), ("card_number", "1234")]),
            day(),
        )
        .unwrap_err();
        assert!(e.get("card_number").is_some());
        let e = parse_new(
            &form(&[
                ("gateway", "sandbox"),
                ("card_number", "4242424242424242"),
                ("expiry", "10/26"),
            ]),
            day(),
        )
        .unwrap_err();
        assert_eq!(e.get("expiry"), Some("This card has expired."));
        let e = parse_new(
            &form(&[
                ("gateway", "stripe"),
                ("customer_ref", "x"),
                ("token", "tok"),
                ("last4", "12"),
            ]),
            day(),
        )
        .unwrap_err();
        let fields: Vec<&str> = e.0.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(fields, ["customer_ref", "token", "last4"]);
    }
}
