//! Writing an invoice off as uncollectible.
//!
//! Rules: only an open invoice with a balance can be written off, with a reason (audited).
//! Its status becomes `uncollectible` and its balance stays as the amount written off, so the
//! accounting connector can post it to bad debt from the `invoice.written_off` event. Dunning
//! and pending charges stop.

use actix_web::{web, HttpRequest, HttpResponse};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use super::{
    handlers::{back, visible},
    repo,
};
use crate::{
    accounts::{domain::Fields, handlers::visibility},
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed},
    db::schema::tenant::invoices,
    error::{AppError, AppResult, FieldErrors},
    web::AppState,
};

pub async fn write_off(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesVoid>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let form = Fields::from_pairs(body.into_inner());
    let reason = form
        .get("reason")
        .trim()
        .chars()
        .take(500)
        .collect::<String>();
    if reason.is_empty() {
        let mut e = FieldErrors::default();
        e.add(
            "reason",
            "Say why the invoice is written off; the reason goes to the audit log.",
        );
        return Err(AppError::Validation(e));
    }
    let actor = Actor::from_ctx(&ctx, &req);
    let vis = visibility(&ctx);
    ctx.db(&state, move |c| {
        let inv = visible(c, vis, id)?;
        let inv = repo::lock(c, inv.id)?;
        if inv.kind != "invoice" || inv.status != "open" || inv.amount_due <= Decimal::ZERO {
            return Err(AppError::Conflict(
                "Only an open invoice with a balance can be written off.".into(),
            ));
        }
        diesel::update(invoices::table.find(id))
            .set((
                invoices::status.eq("uncollectible"),
                invoices::void_reason.eq(&reason),
                invoices::version.eq(inv.version + 1),
            ))
            .execute(c)?;
        crate::dunning::repo::settle_if_paid(c, id)?;
        crate::ledger::post::written_off(c, id, inv.amount_due)?;
        crate::payments::repo::event(
            c,
            "invoice.written_off",
            "invoice",
            id,
            json!({ "amount": inv.amount_due, "currency": inv.currency, "reason": reason,
                    "account_id": inv.bill_to_account_id }),
        )?;
        audit::record(
            c,
            &actor,
            &Entry::new("invoice.written_off", "invoice", id)
                .before(json!({ "status": inv.status, "amount_due": inv.amount_due }))
                .after(json!({ "status": "uncollectible" }))
                .reason(Some(reason)),
        )
    })
    .await?;
    Ok(back(&req, &ctx, id))
}
