//! The cash application page: import a bank/remittance CSV (`date,amount,payer,reference`,
//! optional `currency`), match every line it can, and work the queue of the rest.

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::NaiveDate;
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use super::{
    domain,
    matching::{self, Outcome, Suggestion},
    remittance_csv::parse,
    repo::{self, NewPayment},
};
use crate::{
    accounts::{
        handlers::default_currency,
        import::{csv_text, read_upload},
    },
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed, Permission},
    db::schema::tenant::remittance_lines as lines,
    error::{AppError, AppResult},
    tenants::TenantCtx,
    web::{csrf, render, AppState},
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = lines)]
pub struct Line {
    pub id: i64,
    pub filename: String,
    pub line_no: i32,
    pub received_on: NaiveDate,
    pub amount: Decimal,
    pub currency: String,
    pub payer: String,
    pub reference: String,
    pub status: String,
    pub matched_by: Option<String>,
    pub payment_id: Option<i64>,
    pub suggestions: serde_json::Value,
    pub created_by: Option<i64>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Records the payment of a line for `account_id` and applies it.
fn settle(
    conn: &mut PgConnection,
    actor: &Actor,
    line: &Line,
    account_id: i64,
    allocation: &[(i64, Decimal)],
    by: &str,
) -> AppResult<i64> {
    let id = repo::insert(
        conn,
        &NewPayment {
            account_id,
            method: "wire",
            currency: &line.currency,
            amount: line.amount,
            received_on: line.received_on,
            reference: &line.reference,
            created_by: actor.user_id,
        },
    )?;
    repo::apply(conn, id, allocation, actor.user_id)?;
    repo::event(
        conn,
        "payment.received",
        "payment",
        id,
        json!({ "account_id": account_id, "amount": line.amount, "currency": line.currency, "method": "wire", "remittance_line": line.id }),
    )?;
    diesel::update(lines::table.find(line.id))
        .set((
            lines::status.eq("matched"),
            lines::matched_by.eq(by),
            lines::payment_id.eq(Some(id)),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        actor,
        &Entry::new("remittance.matched", "remittance_line", line.id).after(json!({
            "payment_id": id, "account_id": account_id, "by": by, "applied": allocation,
        })),
    )?;
    Ok(id)
}

#[derive(Template)]
#[template(path = "payments/cash_partial.html")]
pub struct CashPartial {
    pub base: String,
    pub csrf_token: String,
    pub queue: Vec<(Line, Vec<Suggestion>)>,
    pub matched: Vec<Line>,
    pub errors: Vec<(usize, String, String)>,
    pub message: String,
    pub can_work: bool,
}

async fn render_page(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    errors: Vec<(usize, String, String)>,
    message: String,
) -> AppResult<HttpResponse> {
    let (queue, matched) = ctx
        .db(state, |c| {
            let queue: Vec<Line> = lines::table
                .filter(lines::status.ne("matched"))
                .order(lines::id)
                .limit(200)
                .select(Line::as_select())
                .load(c)?;
            let matched: Vec<Line> = lines::table
                .filter(lines::status.eq("matched"))
                .order(lines::id.desc())
                .limit(50)
                .select(Line::as_select())
                .load(c)?;
            Ok((queue, matched))
        })
        .await?;
    let ok = errors.is_empty();
    let partial = CashPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        queue: queue
            .into_iter()
            .map(|l| {
                let s = serde_json::from_value(l.suggestions.clone()).unwrap_or_default();
                (l, s)
            })
            .collect(),
        matched,
        errors,
        message,
        can_work: ctx.can(Permission::PaymentsRecord),
    };
    render::page_with_status(
        req,
        render::status_for(ok),
        ctx.layout(req, "Cash application", "invoices"),
        partial,
    )
}

pub async fn page(
    req: HttpRequest,
    ctx: Allowed<can::InvoicesView>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    render_page(&req, &ctx, &state, Vec::new(), String::new()).await
}

pub async fn import(
    req: HttpRequest,
    ctx: Allowed<can::PaymentsRecord>,
    state: web::Data<AppState>,
    payload: Multipart,
) -> AppResult<HttpResponse> {
    let (filename, bytes, _) = match read_upload(&req, payload).await? {
        Ok(f) => f,
        Err(m) => {
            return render_page(
                &req,
                &ctx,
                &state,
                vec![(0, "file".into(), m)],
                String::new(),
            )
            .await
        }
    };
    let text = match csv_text(bytes) {
        Ok(text) => text,
        Err(m) => {
            return render_page(
                &req,
                &ctx,
                &state,
                vec![(0, "file".into(), m)],
                String::new(),
            )
            .await
        }
    };
    let actor = Actor::from_ctx(&ctx, &req);
    let outcome = ctx
        .db(&state, move |c| {
            let rows = match parse(&text, &default_currency(c)?) {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            let (mut matched, mut waiting) = (0, 0);
            for r in rows {
                let decision = matching::decide(c, r.amount, &r.currency, &r.payer, &r.reference)?;
                let (status, sugg) = match &decision {
                    Outcome::Matched { .. } => ("unmatched", Vec::new()),
                    Outcome::Ambiguous(s) => ("ambiguous", s.clone()),
                    Outcome::Unmatched(s) => ("unmatched", s.clone()),
                };
                let line: Line = diesel::insert_into(lines::table)
                    .values((
                        lines::filename.eq(&filename),
                        lines::line_no.eq(r.line_no),
                        lines::received_on.eq(r.received_on),
                        lines::amount.eq(r.amount),
                        lines::currency.eq(&r.currency),
                        lines::payer.eq(&r.payer),
                        lines::reference.eq(&r.reference),
                        lines::status.eq(status),
                        lines::suggestions.eq(json!(sugg)),
                        lines::created_by.eq(actor.user_id),
                    ))
                    .returning(Line::as_returning())
                    .get_result(c)?;
                if let Outcome::Matched {
                    account_id,
                    allocation,
                    by,
                } = decision
                {
                    settle(c, &actor, &line, account_id, &allocation, by)?;
                    matched += 1;
                } else {
                    waiting += 1;
                }
            }
            audit::record(
                c,
                &actor,
                &Entry::new("remittance.imported", "remittance", &filename)
                    .after(json!({ "matched": matched, "queued": waiting })),
            )?;
            Ok(Ok((matched, waiting)))
        })
        .await?;
    match outcome {
        Ok((m, w)) => {
            render_page(
                &req,
                &ctx,
                &state,
                Vec::new(),
                format!("{m} line(s) matched and applied; {w} wait in the queue."),
            )
            .await
        }
        Err(errors) => {
            render_page(
                &req,
                &ctx,
                &state,
                errors,
                "Nothing was imported: fix these rows and upload the file again.".into(),
            )
            .await
        }
    }
}

/// A person matches a queued line to an account; the cash goes to its oldest open invoices.
pub async fn match_line(
    req: HttpRequest,
    ctx: Allowed<can::PaymentsRecord>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let account_id = body
        .iter()
        .find(|(k, _)| k == "account_id")
        .and_then(|(_, v)| v.parse::<i64>().ok());
    let Some(account_id) = account_id else {
        return render_page(
            &req,
            &ctx,
            &state,
            vec![(
                0,
                "account_id".into(),
                "Choose the account that paid.".into(),
            )],
            String::new(),
        )
        .await;
    };
    let actor = Actor::from_ctx(&ctx, &req);
    ctx.db(&state, move |c| {
        let line: Line = lines::table
            .find(id)
            .select(Line::as_select())
            .for_update()
            .first(c)
            .optional()?
            .ok_or(AppError::NotFound)?;
        if line.status == "matched" {
            return Err(AppError::Conflict("This line is already matched.".into()));
        }
        crate::accounts::repo::get(c, account_id)?.ok_or(AppError::NotFound)?;
        let open = repo::open_invoices(c, account_id, &line.currency)?;
        let allocation = domain::oldest_first(line.amount, &open);
        settle(c, &actor, &line, account_id, &allocation, "manual")
    })
    .await?;
    Ok(render::see_other(&req, &format!("{}/cash", ctx.base())))
}

/// Undoes a match: the payment is reversed (invoices reopen) and the line returns to the queue.
pub async fn unmatch(
    req: HttpRequest,
    ctx: Allowed<can::PaymentsRecord>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let actor = Actor::from_ctx(&ctx, &req);
    ctx.db(&state, move |c| {
        let line: Line = lines::table
            .find(id)
            .select(Line::as_select())
            .for_update()
            .first(c)
            .optional()?
            .ok_or(AppError::NotFound)?;
        let Some(payment_id) = line.payment_id else {
            return Err(AppError::Conflict("This line is not matched.".into()));
        };
        let p = repo::lock(c, payment_id)?;
        if p.status == "succeeded" {
            repo::reverse(c, &p, "Remittance match undone", actor.user_id)?;
        }
        diesel::update(lines::table.find(id))
            .set((
                lines::status.eq("unmatched"),
                lines::matched_by.eq(None::<String>),
                lines::payment_id.eq(None::<i64>),
            ))
            .execute(c)?;
        audit::record(
            c,
            &actor,
            &Entry::new("remittance.unmatched", "remittance_line", id)
                .before(json!({ "payment_id": payment_id })),
        )
    })
    .await?;
    Ok(render::see_other(&req, &format!("{}/cash", ctx.base())))
}
