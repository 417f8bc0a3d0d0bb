//! What a dunning step does. Each function runs in the engine's transaction for one
//! invoice, after the action's row was claimed, so it happens once or not at all.

use chrono::{Duration, NaiveDate};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use super::{
    domain::{self, Fee, Step},
    repo::{self, NewTask},
};
use crate::{
    accounts::repo as accounts,
    audit::{self, Actor, Entry},
    db::schema::tenant::{invoices as inv_t, outbox},
    email::message::OutgoingEmail,
    error::{AppError, AppResult},
    invoicing::{
        build::{self, Header, Payer},
        email::{fill, share_nonce, vars, Links},
        finalize,
        repo::{self as invoices, Invoice},
    },
    jobs::outbox as jobs_outbox,
    money::Currency,
    subscriptions::charges::{DraftLine, LineKind},
};

/// Where an action's result points (an outbox email, an invoice, a task).
pub struct Done {
    pub status: &'static str,
    pub detail: String,
    pub reference: Option<(&'static str, i64)>,
}

impl Done {
    fn ok(detail: impl Into<String>, reference: Option<(&'static str, i64)>) -> Self {
        Self {
            status: "done",
            detail: detail.into(),
            reference,
        }
    }
    pub fn skipped(detail: impl Into<String>) -> Self {
        Self {
            status: "skipped",
            detail: detail.into(),
            reference: None,
        }
    }
}

/// Invoices of the payer that are past due, oldest first (at most `limit`).
fn overdue_of(
    conn: &mut PgConnection,
    payer: i64,
    today: NaiveDate,
    limit: i64,
) -> AppResult<Vec<Invoice>> {
    Ok(inv_t::table
        .filter(inv_t::bill_to_account_id.eq(payer))
        .filter(inv_t::kind.eq("invoice"))
        .filter(inv_t::status.eq("open"))
        .filter(inv_t::amount_due.gt(Decimal::ZERO))
        .filter(inv_t::due_date.lt(today))
        .order((inv_t::due_date, inv_t::id))
        .limit(limit)
        .select(Invoice::as_select())
        .load(conn)?)
}

/// The step's reminder. Several invoices of one account reaching a step on the same day
/// share one email: it lists and attaches every overdue invoice plus a statement.
pub fn reminder(
    conn: &mut PgConnection,
    links: &Links,
    inv: &Invoice,
    step: &Step,
    today: NaiveDate,
) -> AppResult<Done> {
    if inv.recipients.is_empty() {
        return Ok(Done {
            status: "failed",
            detail: "No billing contact with an email address.".into(),
            reference: None,
        });
    }
    let prefix = format!("dunning-reminder:{}:{today}:", inv.bill_to_account_id);
    let sent_today: Vec<(i64, serde_json::Value)> = outbox::table
        .filter(outbox::idempotency_key.like(format!("{prefix}%")))
        .select((outbox::id, outbox::payload))
        .load(conn)?;
    for (id, payload) in &sent_today {
        let covered = payload
            .get("attach_invoice_pdfs")
            .and_then(|v| v.as_array())
            .is_some_and(|ids| ids.iter().any(|x| x.as_i64() == Some(inv.id)));
        if covered {
            return Ok(Done::ok(
                "Included in today's reminder",
                Some(("outbox", *id)),
            ));
        }
    }
    let mut listed = overdue_of(conn, inv.bill_to_account_id, today, 10)?;
    if !listed.iter().any(|i| i.id == inv.id) {
        listed.insert(0, inv.clone());
    }
    listed.retain(|i| i.currency == inv.currency);
    let money = Currency::formatter(&inv.currency);
    let total: Decimal = listed.iter().map(|i| i.amount_due).sum();
    let numbers = listed
        .iter()
        .map(Invoice::label)
        .collect::<Vec<_>>()
        .join(", ");
    let due_date = inv.due_date.unwrap_or(inv.issue_date);
    let nonce = share_nonce(conn, inv.id)?;
    let mut values = vars(conn, inv, links.hosted(inv.id, &nonce))?;
    values.extend([
        ("invoice_numbers", numbers.clone()),
        (
            "total_overdue",
            format!("{} {}", inv.currency, money(total)),
        ),
        ("due_date", due_date.to_string()),
        (
            "days_overdue",
            (today - due_date).num_days().max(0).to_string(),
        ),
        ("pay_link", links.hosted(inv.id, &nonce)),
    ]);
    let mail = OutgoingEmail {
        to: inv.recipients.clone(),
        cc: Vec::new(),
        subject: fill(&step.subject, &values),
        text: fill(&step.body, &values),
        html: None,
        attachments: Vec::new(),
        reply_to: None,
        sensitive: false,
        attach_invoice_pdf: None,
        attach_invoice_pdfs: listed.iter().map(|i| i.id).collect(),
        attach_statement: Some(inv.bill_to_account_id),
    };
    let id = jobs_outbox::enqueue(
        conn,
        links.tenant_id,
        jobs_outbox::KIND_EMAIL,
        &json!(mail),
        Some(&format!("{prefix}{}", inv.id)),
    )?;
    Ok(Done::ok(
        format!("Reminder to {} for {numbers}", inv.recipients.join(", ")),
        id.map(|id| ("outbox", id)),
    ))
}

/// A late fee is an invoice of its own, finalized at once and due on receipt. A percentage
/// is of this invoice's open balance only, so fees never compound.
pub fn late_fee(
    conn: &mut PgConnection,
    links: &Links,
    inv: &Invoice,
    fee: Fee,
    step_no: usize,
    today: NaiveDate,
) -> AppResult<Done> {
    if inv.source == "late_fee" {
        return Ok(Done::skipped("No fee on a late fee."));
    }
    let currency =
        Currency::parse(&inv.currency).map_err(|m| AppError::internal(anyhow::anyhow!(m)))?;
    let amount = domain::late_fee(fee, inv.amount_due, currency);
    if amount <= Decimal::ZERO {
        return Ok(Done::skipped("The fee would be zero."));
    }
    let payer_account = accounts::get(conn, inv.bill_to_account_id)?.ok_or(AppError::NotFound)?;
    let payer = Payer::of(&payer_account);
    let how = match fee {
        Fee::Fixed(_) => String::new(),
        Fee::Percent(p) => format!(
            ", {}% of {}",
            p.normalize(),
            currency.format(inv.amount_due)
        ),
    };
    let line = DraftLine {
        kind: LineKind::OneOff,
        description: format!(
            "Late fee on {} (reminder {}{how})",
            inv.label(),
            step_no + 1
        ),
        product_id: None,
        item_id: None,
        price_version_id: None,
        period: None,
        quantity: Decimal::ONE,
        amount,
        discount: Decimal::ZERO,
        tax_category: crate::invoicing::domain::TaxCategory::Exempt,
        gl_account: Some("late_fees".into()),
    };
    let built = build::build(
        Header {
            kind: "invoice",
            source: "late_fee",
            account_id: inv.account_id,
            subscription_id: None,
            period: None,
            bill_run_id: None,
            related_invoice_id: Some(inv.id),
            currency,
            issue_date: today,
            terms: crate::accounts::domain::PaymentTerms {
                kind: crate::accounts::domain::TermsKind::DueOnReceipt,
                days: 0,
            },
            po_number: inv.po_number.clone(),
            notes: format!("Late fee under our payment terms for {}.", inv.label()),
        },
        &payer,
        invoices::tax_rates(conn)?,
        &[line],
    );
    let fee_id = invoices::insert_one(conn, &built.invoice)?;
    let mut lines = built.lines;
    for l in &mut lines {
        l.invoice_id = fee_id;
    }
    invoices::insert_lines(conn, &lines)?;
    let actor = Actor::system();
    audit::record(
        conn,
        &actor,
        &Entry::new("invoice.created", "invoice", fee_id).after(json!({
            "source": "late_fee", "for_invoice": inv.id, "amount": amount,
        })),
    )?;
    finalize::finalize(conn, &actor, links, &[fee_id], today)?;
    Ok(Done::ok(
        format!("Late fee {} {}", inv.currency, currency.format(amount)),
        Some(("invoice", fee_id)),
    ))
}

/// One open task per account and step title: a second overdue invoice reaching the same
/// step is added to it instead of opening another.
pub fn task(
    conn: &mut PgConnection,
    inv: &Invoice,
    title: &str,
    assignee: domain::Assignee,
    due_in_days: i32,
    today: NaiveDate,
) -> AppResult<Done> {
    use crate::db::schema::tenant::collections_tasks as tasks;
    let open: Vec<(i64, String, String)> = tasks::table
        .filter(tasks::account_id.eq(inv.bill_to_account_id))
        .filter(tasks::status.eq("open"))
        .filter(tasks::source.eq("dunning"))
        .select((tasks::id, tasks::title, tasks::detail))
        .load(conn)?;
    let same = open.into_iter().find(|(_, t, _)| {
        t.strip_prefix(title)
            .is_some_and(|rest| rest.starts_with(" ("))
    });
    if let Some((id, _, detail)) = same {
        let detail = if detail.is_empty() {
            format!("Also: {}", inv.label())
        } else {
            format!("{detail}, {}", inv.label())
        };
        diesel::update(tasks::table.find(id))
            .set(tasks::detail.eq(detail))
            .execute(conn)?;
        return Ok(Done::ok(
            format!("Added to open task: {title}"),
            Some(("task", id)),
        ));
    }
    let id = repo::create_task(
        conn,
        &NewTask {
            account_id: inv.bill_to_account_id,
            invoice_id: Some(inv.id),
            title: format!("{title} ({})", inv.label()),
            detail: String::new(),
            assignee,
            due_on: today + Duration::days(i64::from(due_in_days)),
            source: "dunning",
        },
    )?;
    Ok(Done::ok(format!("Task: {title}"), Some(("task", id))))
}

/// Holds dunning sets start with this, so they can be lifted automatically once paid.
pub const HOLD_REASON_PREFIX: &str = "Overdue invoice";

pub fn hold(conn: &mut PgConnection, inv: &Invoice) -> AppResult<Done> {
    let mut c = repo::collections(conn, inv.bill_to_account_id)?;
    if c.on_hold {
        return Ok(Done::skipped("Already on hold."));
    }
    c.on_hold = true;
    c.hold_reason = Some(format!("{HOLD_REASON_PREFIX} {}", inv.label()));
    repo::save_collections(conn, &c)?;
    audit::record(
        conn,
        &Actor::system(),
        &Entry::new("account.hold", "account", inv.bill_to_account_id)
            .after(json!({ "on_hold": true, "reason": c.hold_reason })),
    )?;
    Ok(Done::ok("Account put on hold", None))
}

/// After a hard decline: the customer is asked for a new payment method.
pub fn ask_for_new_method(
    conn: &mut PgConnection,
    links: &Links,
    inv: &Invoice,
    code: &str,
) -> AppResult<Option<i64>> {
    if inv.recipients.is_empty() {
        return Ok(None);
    }
    let nonce = share_nonce(conn, inv.id)?;
    let values = vars(conn, inv, links.hosted(inv.id, &nonce))?;
    let company = values
        .iter()
        .find(|v| v.0 == "company")
        .map(|v| v.1.clone())
        .unwrap_or_default();
    let reason = match code {
        "lost_card" | "stolen_card" => "the card was reported lost or stolen",
        "expired_card" => "the card has expired",
        _ => "the card was declined",
    };
    let mail = OutgoingEmail {
        to: inv.recipients.clone(),
        cc: Vec::new(),
        subject: format!(
            "Action needed: update your payment method for {}",
            inv.label()
        ),
        text: format!(
            "Hello,\n\nWe could not collect payment for invoice {} because {reason}. \
             We will not try this card again.\n\nPlease pay the invoice or send us new \
             payment details: {}\n\nThank you,\n{company}",
            inv.label(),
            links.hosted(inv.id, &nonce)
        ),
        html: None,
        attachments: Vec::new(),
        reply_to: None,
        sensitive: false,
        attach_invoice_pdf: Some(inv.id),
        attach_invoice_pdfs: Vec::new(),
        attach_statement: None,
    };
    jobs_outbox::enqueue(
        conn,
        links.tenant_id,
        jobs_outbox::KIND_EMAIL,
        &json!(mail),
        Some(&format!("update-method:{}:{code}", inv.id)),
    )
}
