//! Amendments: quantity, price or plan changes and cancellations, with day-exact proration.

use chrono::NaiveDate;
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use super::{
    charges::{ItemTerms, LineKind, Timing},
    domain::ItemInput,
    periods::{add_months_on_day, Period},
    proration,
    repo::{self, NewAmendment, Subscription},
};
use crate::{
    accounts::{domain::Fields, repo as accounts},
    audit::{self, Actor, Entry},
    db::schema::tenant::{invoices, subscriptions},
    error::{AppError, AppResult, FieldErrors},
    invoicing::{
        build::{self, Header, Payer},
        email::Links,
        finalize, repo as invoices_repo,
    },
    money::Currency,
    subscriptions::charges::DraftLine,
};

text_enum!(AmendKind {
    Quantity = "quantity" / "Change quantity",
    Price = "price" / "Move to the current price version",
    Plan = "plan" / "Change plan (another price)",
    CancelNow = "cancel_now" / "Cancel now",
    CancelAtTermEnd = "cancel_at_term_end" / "Cancel at end of term",
});

#[derive(Debug, Clone)]
pub struct AmendInput {
    pub kind: AmendKind,
    pub item_id: Option<i64>,
    pub quantity: Option<Decimal>,
    pub price_id: Option<i64>,
    pub effective: NaiveDate,
    pub reason: String,
}

impl AmendInput {
    pub fn parse(f: &Fields, today: NaiveDate) -> Result<Self, FieldErrors> {
        let mut e = FieldErrors::default();
        let kind = AmendKind::parse(f.get("kind"));
        if kind.is_none() {
            e.add("kind", "Choose what to change.");
        }
        let effective = match f.date("effective_date") {
            Ok(d) => d.unwrap_or(today),
            Err(m) => {
                e.add("effective_date", m);
                today
            }
        };
        let item_id = f.get("item_id").parse::<i64>().ok();
        let needs_item = matches!(
            kind,
            Some(AmendKind::Quantity | AmendKind::Price | AmendKind::Plan)
        );
        if needs_item && item_id.is_none() {
            e.add("item_id", "Choose the item to change.");
        }
        let quantity = match f.decimal("quantity") {
            Ok(Some(q)) if q < Decimal::ZERO => {
                e.add("quantity", "The quantity cannot be negative.");
                None
            }
            Ok(q) => q,
            Err(m) => {
                e.add("quantity", m);
                None
            }
        };
        if kind == Some(AmendKind::Quantity) && quantity.is_none() && e.get("quantity").is_none() {
            e.add("quantity", "Enter the new quantity.");
        }
        let price_id = f.get("price_id").parse::<i64>().ok();
        if kind == Some(AmendKind::Plan) && price_id.is_none() {
            e.add("price_id", "Choose the new price.");
        }
        match kind {
            Some(kind) if e.is_empty() => Ok(Self {
                kind,
                item_id,
                quantity,
                price_id,
                effective,
                reason: f.get("reason").to_owned(),
            }),
            _ => Err(e),
        }
    }
}

/// The last day of the contract term that contains `day`.
pub fn term_end(sub: &Subscription, day: NaiveDate) -> NaiveDate {
    let months = u32::try_from(sub.term_months.max(1)).unwrap_or(12);
    let start_day = chrono::Datelike::day(&sub.start_date);
    let mut k = 1;
    loop {
        let end = add_months_on_day(sub.start_date, months * k, start_day);
        if end > day || end == NaiveDate::MAX {
            return end.pred_opt().unwrap_or(end);
        }
        k += 1;
    }
}

fn field_error(field: &str, msg: impl Into<String>) -> AppError {
    let mut e = FieldErrors::default();
    e.add(field, msg);
    AppError::Validation(e)
}

/// The full-cycle amount after a percentage discount (what the customer was billed per cycle).
fn billed_cycle(item: &ItemTerms, months: u32) -> Decimal {
    let full = item.cycle_amount(months);
    match item.discount_percent {
        Some(p) => full - full * p / Decimal::ONE_HUNDRED,
        None => full,
    }
}

pub struct Outcome {
    pub summary: String,
    pub document: Option<i64>,
}

/// Applies an amendment in the caller's transaction.
pub fn apply(
    conn: &mut PgConnection,
    actor: &Actor,
    links: &Links,
    sub_id: i64,
    input: &AmendInput,
    today: NaiveDate,
) -> AppResult<Outcome> {
    let sub = repo::lock(conn, sub_id)?;
    if sub.status != "active" {
        return Err(field_error(
            "kind",
            "This subscription is canceled; it cannot be amended.",
        ));
    }
    if input.effective < sub.start_date {
        return Err(field_error(
            "effective_date",
            format!(
                "The change cannot take effect before the subscription starts ({}).",
                sub.start_date
            ),
        ));
    }
    if sub.end_date.is_some_and(|e| input.effective > e) {
        return Err(field_error(
            "effective_date",
            "The subscription has ended by then.",
        ));
    }
    let plan = sub.plan();
    let months = plan.schedule.interval_months;
    let terms = repo::item_terms(conn, &[sub.id])?
        .remove(&sub.id)
        .unwrap_or_default();
    let active_on = |t: &ItemTerms| t.validity().is_some_and(|v| v.contains(input.effective));
    let day_before = input.effective.pred_opt().unwrap_or(input.effective);
    // What already-invoiced time the change touches (in advance only; arrears bills later).
    let billed = (plan.timing == Timing::Advance && input.effective < sub.billed_through)
        .then(|| plan.schedule.period_containing(input.effective, None))
        .flatten();
    let mut credits: Vec<(ItemTerms, Decimal)> = Vec::new();
    let mut charges: Vec<(ItemTerms, Decimal)> = Vec::new();
    let summary;
    let kind;
    match input.kind {
        AmendKind::Quantity | AmendKind::Price | AmendKind::Plan => {
            let Some(old) = terms
                .iter()
                .find(|t| Some(t.item_id) == input.item_id && active_on(t))
                .cloned()
            else {
                return Err(field_error(
                    "item_id",
                    "That item is not active on the effective date.",
                ));
            };
            let row = repo::items_of(conn, sub.id)?
                .into_iter()
                .find(|r| r.id == old.item_id)
                .ok_or(AppError::NotFound)?;
            let price_id = match input.kind {
                AmendKind::Plan => input.price_id.unwrap_or(row.price_id),
                _ => row.price_id,
            };
            let sellable = repo::sellable(conn, price_id, &sub.currency)
                .map_err(|m| field_error("price_id", m))?;
            let new_input = ItemInput {
                price_id,
                quantity: input
                    .quantity
                    .filter(|_| input.kind != AmendKind::Price)
                    .unwrap_or(row.quantity),
                discount_percent: row.discount_percent,
                discount_amount: row.discount_amount,
                end_date: row.end_date,
            };
            repo::end_item(conn, row.id, day_before)?;
            let new_id = repo::insert_item(
                conn,
                sub.id,
                &sellable,
                &new_input,
                input.effective,
                Some(row.id),
            )?;
            let new_terms = repo::item_terms(conn, &[sub.id])?
                .remove(&sub.id)
                .unwrap_or_default()
                .into_iter()
                .find(|t| t.item_id == new_id)
                .ok_or(AppError::NotFound)?;
            summary = match input.kind {
                AmendKind::Quantity => format!(
                    "{}: quantity {} → {}",
                    old.product_name,
                    old.quantity.normalize(),
                    new_terms.quantity.normalize()
                ),
                AmendKind::Price => {
                    format!("{}: moved to the current price version", old.product_name)
                }
                _ => format!("{} → {}", old.product_name, new_terms.product_name),
            };
            kind = input.kind.as_str();
            if let Some(bp) = billed {
                let p = proration::amend(
                    &bp,
                    billed_cycle(&old, months),
                    billed_cycle(&new_terms, months),
                    input.effective,
                );
                credits.push((old, p.credit));
                charges.push((new_terms, p.charge));
            }
        }
        AmendKind::CancelNow => {
            for t in terms
                .iter()
                .filter(|t| t.validity().is_some_and(|v| v.end > input.effective))
            {
                repo::end_item(
                    conn,
                    t.item_id,
                    day_before.max(t.start.pred_opt().unwrap_or(t.start)),
                )?;
                if let Some(bp) = billed.filter(|_| active_on(t)) {
                    let p = proration::cancel_now(&bp, billed_cycle(t, months), input.effective);
                    credits.push((t.clone(), p.credit));
                }
            }
            let status = if input.effective <= today {
                "canceled"
            } else {
                "active"
            };
            diesel::update(subscriptions::table.find(sub.id))
                .set((
                    subscriptions::end_date.eq(Some(day_before.max(sub.start_date))),
                    subscriptions::status.eq(status),
                    subscriptions::auto_renew.eq(false),
                    subscriptions::cancel_reason.eq(Some(&input.reason)),
                    subscriptions::canceled_at.eq(Some(chrono::Utc::now())),
                ))
                .execute(conn)?;
            summary = format!("Canceled from {}", input.effective);
            kind = "cancel_now";
        }
        AmendKind::CancelAtTermEnd => {
            let end = term_end(&sub, input.effective);
            diesel::update(subscriptions::table.find(sub.id))
                .set((
                    subscriptions::end_date.eq(Some(end)),
                    subscriptions::auto_renew.eq(false),
                    subscriptions::cancel_reason.eq(Some(&input.reason)),
                ))
                .execute(conn)?;
            summary = format!("Ends at the end of its term, {end}");
            kind = "cancel_at_term_end";
        }
    }
    let credit: Decimal = credits.iter().map(|(_, c)| *c).sum();
    let charge: Decimal = charges.iter().map(|(_, c)| *c).sum();
    let document = match billed {
        Some(bp) if credit != charge => Some(settle(
            conn,
            actor,
            links,
            &sub,
            bp.service,
            &credits,
            &charges,
            input.effective,
            today,
        )?),
        _ => None,
    };
    repo::record_amendment(
        conn,
        &NewAmendment {
            sub_id: sub.id,
            kind,
            effective: input.effective,
            summary: summary.clone(),
            credit,
            charge,
            invoice_id: document,
            actor: actor.user_id,
        },
    )?;
    audit::record(
        conn,
        actor,
        &Entry::new("subscription.amended", "subscription", sub.id)
            .after(json!({ "kind": kind, "effective": input.effective, "summary": summary, "credit": credit, "charge": charge, "document": document }))
            .reason((!input.reason.is_empty()).then(|| input.reason.clone())),
    )?;
    Ok(Outcome { summary, document })
}

/// Issues the proration: an invoice for a net charge, a credit note for a net credit.
#[allow(clippy::too_many_arguments)]
fn settle(
    conn: &mut PgConnection,
    actor: &Actor,
    links: &Links,
    sub: &Subscription,
    service: Period,
    credits: &[(ItemTerms, Decimal)],
    charges: &[(ItemTerms, Decimal)],
    effective: NaiveDate,
    today: NaiveDate,
) -> AppResult<i64> {
    let currency =
        Currency::parse(&sub.currency).map_err(|m| AppError::internal(anyhow::anyhow!(m)))?;
    let payer_account = accounts::bill_to(conn, sub.account_id)?;
    let payer = Payer::of(&payer_account);
    let rates = invoices_repo::tax_rates(conn)?;
    let window = Period::new(effective, service.end);
    let line = |t: &ItemTerms, kind: LineKind, desc: String, amount: Decimal| DraftLine {
        kind,
        description: desc,
        product_id: Some(t.product_id),
        item_id: Some(t.item_id),
        price_version_id: Some(t.price_version_id),
        period: window,
        quantity: t.quantity,
        amount,
        discount: Decimal::ZERO,
        tax_category: t.tax_category,
        gl_account: Some(t.gl_account.clone()),
    };
    let net: Decimal =
        charges.iter().map(|c| c.1).sum::<Decimal>() - credits.iter().map(|c| c.1).sum::<Decimal>();
    let is_credit = net < Decimal::ZERO;
    // A credit note carries positive amounts; an invoice carries the credit as a negative line.
    let sign = if is_credit {
        Decimal::NEGATIVE_ONE
    } else {
        Decimal::ONE
    };
    let mut drafts = Vec::new();
    for (t, c) in credits.iter().filter(|c| !c.1.is_zero()) {
        drafts.push(line(
            t,
            LineKind::ProrationCredit,
            format!(
                "Unused time on {} × {}",
                t.quantity.normalize(),
                t.product_name
            ),
            -*c * sign,
        ));
    }
    for (t, c) in charges.iter().filter(|c| !c.1.is_zero()) {
        drafts.push(line(
            t,
            LineKind::ProrationCharge,
            format!(
                "Remaining time on {} × {}",
                t.quantity.normalize(),
                t.product_name
            ),
            *c * sign,
        ));
    }
    let related: Option<i64> = invoices::table
        .filter(invoices::subscription_id.eq(sub.id))
        .filter(invoices::period_start.eq(service.start))
        .filter(invoices::source.eq("bill_run"))
        .select(invoices::id)
        .first(conn)
        .optional()?;
    let built = build::build(
        Header {
            kind: if is_credit { "credit_note" } else { "invoice" },
            source: if is_credit && related.is_none() {
                "credit"
            } else {
                "amendment"
            },
            account_id: sub.account_id,
            subscription_id: Some(sub.id),
            period: window.map(|w| (w.start, w.last_day())),
            bill_run_id: None,
            related_invoice_id: if is_credit { related } else { None },
            currency,
            issue_date: today,
            terms: build::terms_for(sub, &payer),
            po_number: sub.po_number.clone(),
            notes: format!("Proration for the change effective {effective}."),
        },
        &payer,
        rates,
        &drafts,
    );
    let id = invoices_repo::insert_one(conn, &built.invoice)?;
    let lines: Vec<_> = built
        .lines
        .into_iter()
        .map(|l| invoices_repo::NewLine {
            invoice_id: id,
            ..l
        })
        .collect();
    invoices_repo::insert_lines(conn, &lines)?;
    audit::record(conn, actor, &Entry::new("invoice.created", "invoice", id).after(json!({ "source": "amendment", "subscription_id": sub.id, "total": built.invoice.total })))?;
    if invoices_repo::auto_finalize(conn)? {
        finalize::finalize(conn, actor, links, &[id], today)?;
    }
    Ok(id)
}

/// First day after the subscription's last billed period (for display).
pub fn next_bill_date(sub: &Subscription) -> Option<NaiveDate> {
    let plan = sub.plan();
    let p = plan.schedule.period_containing(sub.billed_through, None)?;
    match plan.timing {
        Timing::Advance => Some(p.service.start),
        Timing::Arrears => Some(p.service.end),
    }
}
