//! The Collections tab's forms: notes and calls, promises to pay, pause and resume, hold
//! and lift, the account's policy, and disputes.
//!
//! Rules: every form checks all its input before writing anything and answers bad input
//! with 422 and the messages next to the fields (the tab re-rendered), nothing changed;
//! every change is audited in the same transaction. A promise is dated today or later; a
//! pause needs an end date and a reason; a hold or its lifting needs a reason; a dispute
//! needs a reason and stops reminders, fees and charges for that invoice until cleared.

use actix_web::{web, HttpRequest, HttpResponse};
use diesel::PgConnection;
use rust_decimal::Decimal;
use serde_json::json;

use super::account::{account_tab, NOTE_KINDS, OUTCOMES};
use crate::{
    accounts::{
        domain::Fields,
        handlers::{members, visibility},
        repo as accounts,
    },
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed},
    dunning::repo::{self, NewNote, NewPromise},
    error::{AppError, AppResult, FieldErrors},
    invoicing::{handlers::today, repo::Invoice},
    money::Currency,
    tenants::TenantCtx,
    web::{csrf, render, AppState},
};

/// What a form did: the audit entry to record, or the messages to show.
type Outcome = Result<Entry, FieldErrors>;

/// Shared shape of the tab's forms: check visibility, act, audit; errors re-render the tab.
async fn act(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    account_id: i64,
    form: Fields,
    f: impl FnOnce(&mut PgConnection, &Fields, Option<i64>) -> AppResult<Outcome> + Send + 'static,
) -> AppResult<HttpResponse> {
    let actor = Actor::from_ctx(ctx, req);
    let (vis, uid, f2) = (visibility(ctx), ctx.user.id, form.clone());
    let outcome = ctx
        .db(state, move |c| {
            accounts::get_visible(c, account_id, vis)?;
            match f(c, &f2, Some(uid))? {
                Ok(entry) => audit::record(c, &actor, &entry).map(|()| Ok(())),
                Err(e) => Ok(Err(e)),
            }
        })
        .await?;
    let errors = match outcome {
        Ok(()) => {
            return Ok(render::see_other(
                req,
                &format!("{}/accounts/{account_id}?tab=collections", ctx.base()),
            ))
        }
        Err(e) => e,
    };
    let members = members(state, ctx.tenant.id).await?;
    let (ctx2, token) = (ctx.clone(), csrf::token(req));
    let mut partial = ctx
        .db(state, move |c| {
            account_tab(c, &ctx2, token, account_id, &members, form, errors)
        })
        .await?;
    partial.standalone = true;
    let title = format!("{} · Collections", partial.account_name);
    render::page_with_status(
        req,
        actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
        ctx.layout(req, title, "accounts"),
        partial,
    )
}

fn text(form: &Fields, name: &str, max: usize) -> String {
    form.get(name).chars().take(max).collect()
}

/// An optional invoice of this account named by a form field.
fn invoice_of(
    c: &mut PgConnection,
    form: &Fields,
    name: &str,
    account_id: i64,
    e: &mut FieldErrors,
) -> AppResult<Option<Invoice>> {
    let raw = form.get(name);
    if raw.is_empty() {
        return Ok(None);
    }
    let found = match raw.parse::<i64>() {
        Ok(id) => crate::invoicing::repo::get(c, id).ok(),
        Err(_) => None,
    };
    match found.filter(|i| i.bill_to_account_id == account_id || i.account_id == account_id) {
        Some(i) => Ok(Some(i)),
        None => {
            e.add(name, "Choose one of this account's invoices.");
            Ok(None)
        }
    }
}

type Path = web::Path<(String, i64)>;
type Body = web::Form<Vec<(String, String)>>;

pub async fn add_note(
    req: HttpRequest,
    ctx: Allowed<can::CollectionsWork>,
    state: web::Data<AppState>,
    path: Path,
    body: Body,
) -> AppResult<HttpResponse> {
    let aid = path.1;
    act(&req, &ctx, &state, aid, Fields::from_pairs(body.into_inner()), move |c, f, uid| {
        let mut e = FieldErrors::default();
        let kind = NOTE_KINDS.iter().find(|k| k.0 == f.get("kind")).map(|k| k.0);
        if kind.is_none() {
            e.add("kind", "Choose call, email or note.");
        }
        let body = text(f, "body", 5000);
        if body.is_empty() {
            e.add("body", "Write what happened.");
        }
        let outcome = match f.get("outcome") {
            "" => None,
            o => match OUTCOMES.iter().find(|x| x.0 == o) {
                Some(x) => Some(x.0),
                None => {
                    e.add("outcome", "Choose an outcome from the list.");
                    None
                }
            },
        };
        let inv = invoice_of(c, f, "note_invoice", aid, &mut e)?;
        let Some(kind) = kind.filter(|_| e.is_empty()) else {
            return Ok(Err(e));
        };
        let id = repo::add_note(c, &NewNote { account_id: aid, invoice_id: inv.as_ref().map(|i| i.id), kind, body: &body, outcome, created_by: uid })?;
        Ok(Ok(Entry::new("collections.note_added", "account", aid).after(json!({ "note_id": id, "kind": kind, "outcome": outcome, "invoice_id": inv.map(|i| i.id) }))))
    })
    .await
}

pub async fn add_promise(
    req: HttpRequest,
    ctx: Allowed<can::CollectionsWork>,
    state: web::Data<AppState>,
    path: Path,
    body: Body,
) -> AppResult<HttpResponse> {
    let aid = path.1;
    act(&req, &ctx, &state, aid, Fields::from_pairs(body.into_inner()), move |c, f, uid| {
        let mut e = FieldErrors::default();
        let amount = match f.decimal("promise_amount") {
            Ok(Some(a)) if a > Decimal::ZERO => a,
            Ok(_) => {
                e.add("promise_amount", "Enter the amount promised (above zero).");
                Decimal::ZERO
            }
            Err(m) => {
                e.add("promise_amount", m);
                Decimal::ZERO
            }
        };
        let on = match f.date("promise_date") {
            Ok(Some(d)) if d >= today() => Some(d),
            Ok(Some(_)) => {
                e.add("promise_date", "A promise is for today or a later date.");
                None
            }
            Ok(None) => {
                e.add("promise_date", "Enter the date the customer promised to pay by.");
                None
            }
            Err(m) => {
                e.add("promise_date", m);
                None
            }
        };
        let inv = invoice_of(c, f, "promise_invoice", aid, &mut e)?;
        let currency = match &inv {
            Some(i) => i.currency.clone(),
            None => accounts::get(c, aid)?.ok_or(AppError::NotFound)?.currency,
        };
        let Some(on) = on.filter(|_| e.is_empty()) else {
            return Ok(Err(e));
        };
        let amount = Currency::parse(&currency).map_or(amount, |cur| cur.round(amount));
        let note = text(f, "promise_note", 1000);
        let id = repo::add_promise(c, &NewPromise { account_id: aid, invoice_id: inv.as_ref().map(|i| i.id), currency: &currency, amount, promised_on: on, note: &note, created_by: uid })?;
        Ok(Ok(Entry::new("collections.promise_recorded", "account", aid).after(json!({
            "promise_id": id, "amount": amount, "currency": currency, "promised_on": on, "invoice_id": inv.map(|i| i.id), "note": note,
        }))))
    })
    .await
}

pub async fn cancel_promise(
    req: HttpRequest,
    ctx: Allowed<can::CollectionsWork>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64, i64)>,
    body: Body,
) -> AppResult<HttpResponse> {
    let (_, aid, pid) = path.into_inner();
    act(
        &req,
        &ctx,
        &state,
        aid,
        Fields::from_pairs(body.into_inner()),
        move |c, f, _| {
            let p = repo::lock_promise(c, pid)?;
            if p.account_id != aid {
                return Err(AppError::NotFound);
            }
            if p.status != "open" {
                return Err(AppError::Conflict(format!(
                    "This promise is already {}.",
                    p.status
                )));
            }
            repo::cancel_promise(c, pid)?;
            Ok(Ok(Entry::new(
                "collections.promise_canceled",
                "account",
                aid,
            )
            .before(json!({ "promise_id": pid, "status": p.status }))
            .after(json!({ "promise_id": pid, "status": "canceled" }))
            .reason(Some(text(f, "reason", 500)))))
        },
    )
    .await
}

/// Pauses dunning until a date with a reason (`action=pause`), or resumes it.
pub async fn pause(
    req: HttpRequest,
    ctx: Allowed<can::CollectionsWork>,
    state: web::Data<AppState>,
    path: Path,
    body: Body,
) -> AppResult<HttpResponse> {
    let aid = path.1;
    act(
        &req,
        &ctx,
        &state,
        aid,
        Fields::from_pairs(body.into_inner()),
        move |c, f, _| {
            let mut e = FieldErrors::default();
            let mut coll = repo::collections(c, aid)?;
            let before =
                json!({ "paused_until": coll.paused_until, "pause_reason": coll.pause_reason });
            let action = match f.get("action") {
                "resume" => {
                    coll.paused_until = None;
                    coll.pause_reason = None;
                    "collections.dunning_resumed"
                }
                "pause" => {
                    match f.date("paused_until") {
                        Ok(Some(d)) if d >= today() => coll.paused_until = Some(d),
                        Ok(Some(_)) => e.add("paused_until", "Pause until today or a later date."),
                        Ok(None) => e.add("paused_until", "Enter the date dunning resumes after."),
                        Err(m) => e.add("paused_until", m),
                    }
                    let reason = text(f, "pause_reason", 500);
                    if reason.is_empty() {
                        e.add("pause_reason", "Say why dunning is paused.");
                    }
                    coll.pause_reason = Some(reason);
                    "collections.dunning_paused"
                }
                _ => {
                    e.add("paused_until", "Choose to pause or resume dunning.");
                    ""
                }
            };
            if !e.is_empty() {
                return Ok(Err(e));
            }
            repo::save_collections(c, &coll)?;
            Ok(Ok(Entry::new(action, "account", aid).before(before).after(
                json!({ "paused_until": coll.paused_until, "pause_reason": coll.pause_reason }),
            )))
        },
    )
    .await
}

/// Puts the account on hold (`action=hold`) or lifts the hold, with a reason either way.
pub async fn hold(
    req: HttpRequest,
    ctx: Allowed<can::CollectionsWork>,
    state: web::Data<AppState>,
    path: Path,
    body: Body,
) -> AppResult<HttpResponse> {
    let aid = path.1;
    act(
        &req,
        &ctx,
        &state,
        aid,
        Fields::from_pairs(body.into_inner()),
        move |c, f, _| {
            let mut e = FieldErrors::default();
            let mut coll = repo::collections(c, aid)?;
            let reason = text(f, "hold_reason", 500);
            if reason.is_empty() {
                e.add("hold_reason", "Give a reason.");
            }
            let hold = match f.get("action") {
                "hold" => true,
                "lift" => false,
                _ => {
                    e.add("hold_reason", "Choose to put on hold or lift the hold.");
                    false
                }
            };
            if !e.is_empty() {
                return Ok(Err(e));
            }
            let before = json!({ "on_hold": coll.on_hold, "reason": coll.hold_reason });
            coll.on_hold = hold;
            coll.hold_reason = hold.then(|| reason.clone());
            repo::save_collections(c, &coll)?;
            let action = if hold {
                "account.hold"
            } else {
                "account.hold_lifted"
            };
            Ok(Ok(Entry::new(action, "account", aid)
                .before(before)
                .after(json!({ "on_hold": hold }))
                .reason(Some(reason))))
        },
    )
    .await
}

/// Assigns a policy to the account, back to the default, or excludes it from dunning.
pub async fn set_policy(
    req: HttpRequest,
    ctx: Allowed<can::DunningConfigure>,
    state: web::Data<AppState>,
    path: Path,
    body: Body,
) -> AppResult<HttpResponse> {
    let aid = path.1;
    act(
        &req,
        &ctx,
        &state,
        aid,
        Fields::from_pairs(body.into_inner()),
        move |c, f, _| {
            let mut coll = repo::collections(c, aid)?;
            let before =
                json!({ "policy_id": coll.dunning_policy_id, "excluded": coll.dunning_excluded });
            match f.get("policy") {
                "default" => (coll.dunning_policy_id, coll.dunning_excluded) = (None, false),
                "exclude" => coll.dunning_excluded = true,
                raw => match raw.parse::<i64>().ok().map(|id| repo::policy(c, id)) {
                    Some(Ok(p)) => {
                        (coll.dunning_policy_id, coll.dunning_excluded) = (Some(p.id), false)
                    }
                    _ => {
                        let mut e = FieldErrors::default();
                        e.add("policy", "Choose a policy, the default or exclusion.");
                        return Ok(Err(e));
                    }
                },
            }
            repo::save_collections(c, &coll)?;
            Ok(Ok(Entry::new(
                "collections.policy_assigned",
                "account",
                aid,
            )
            .before(before)
            .after(
                json!({ "policy_id": coll.dunning_policy_id, "excluded": coll.dunning_excluded }),
            )))
        },
    )
    .await
}

/// Flags (`action=flag`, with a reason) or clears a dispute on an invoice.
pub async fn dispute(
    req: HttpRequest,
    ctx: Allowed<can::CollectionsWork>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: Body,
) -> AppResult<HttpResponse> {
    let iid = path.1;
    let vis = visibility(&ctx);
    let inv = ctx
        .db(&state, move |c| {
            crate::invoicing::handlers::visible(c, vis, iid)
        })
        .await?;
    if inv.kind != "invoice" || inv.status == "draft" {
        return Err(AppError::Conflict(
            "Only a finalized invoice can be disputed.".into(),
        ));
    }
    act(
        &req,
        &ctx,
        &state,
        inv.bill_to_account_id,
        Fields::from_pairs(body.into_inner()),
        move |c, f, _| {
            let field = format!("dispute_{iid}");
            let reason = text(f, "reason", 500);
            let flag = match f.get("action") {
                "flag" if reason.is_empty() => None,
                "flag" => Some(true),
                "clear" => Some(false),
                _ => None,
            };
            let Some(flag) = flag else {
                let mut e = FieldErrors::default();
                e.add(&field, "Give the reason for the dispute.");
                return Ok(Err(e));
            };
            let was = repo::is_disputed(c, iid)?;
            repo::set_dispute(c, iid, flag, flag.then_some(reason.as_str()), today())?;
            let action = if flag {
                "invoice.disputed"
            } else {
                "invoice.dispute_cleared"
            };
            Ok(Ok(Entry::new(action, "invoice", iid)
                .before(json!({ "disputed": was }))
                .after(json!({ "disputed": flag }))
                .reason(Some(reason))))
        },
    )
    .await
}
