//! The collections timeline of an account or an invoice: dunning actions, charge attempts,
//! notes and calls, promises to pay, tasks and payments, merged newest first.
//!
//! Rules: each source becomes events by a pure function and [`merge`] orders them, so the
//! order is defined here and tested without a database. Dunning actions and payments carry
//! the business date they happened on (the engine's run date, the day money was received)
//! with the time of day they were recorded, so a catch-up run lands on the day it stands
//! for. Ties sort by source, then by newest row, so the order never depends on the query.

use askama::Template;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;

use super::repo::{Note, Promise, Task};
use crate::{
    db::schema::tenant::{
        collections_notes as notes, collections_tasks as tasks, dunning_actions as da, invoices,
        payment_applications as apps, promises_to_pay as promises,
    },
    error::AppResult,
    money::Currency,
    payments::{charge::Attempt, repo::Payment},
    tenants::repo::Member,
};

/// Where an event comes from; also the tie-break order for events at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Payment,
    Charge,
    Dunning,
    Promise,
    Task,
    Note,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::Payment => "Payment",
            Source::Charge => "Charge",
            Source::Dunning => "Dunning",
            Source::Promise => "Promise to pay",
            Source::Task => "Task",
            Source::Note => "Note",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub source: Source,
    pub title: String,
    pub detail: String,
    pub status: String,
    pub invoice_id: Option<i64>,
    /// The invoice's number, filled by the loader.
    pub invoice: String,
    pub by: Option<i64>,
    /// The member's name, filled by [`name_people`].
    pub who: String,
    /// Row id within its source, for a stable order.
    pub seq: i64,
}

impl Event {
    fn new(at: DateTime<Utc>, source: Source, seq: i64, title: String) -> Self {
        Self {
            at,
            source,
            title,
            detail: String::new(),
            status: String::new(),
            invoice_id: None,
            invoice: String::new(),
            by: None,
            who: String::new(),
            seq,
        }
    }

    pub fn when(&self) -> String {
        self.at.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// `day` at the time of day of `recorded`.
pub fn day_at(day: NaiveDate, recorded: DateTime<Utc>) -> DateTime<Utc> {
    day.and_time(recorded.time()).and_utc()
}

/// Every source's events as one list, newest first, at most `limit`.
pub fn merge(groups: Vec<Vec<Event>>, limit: usize) -> Vec<Event> {
    let mut all: Vec<Event> = groups.into_iter().flatten().collect();
    all.sort_by(|a, b| {
        b.at.cmp(&a.at)
            .then(a.source.cmp(&b.source))
            .then(b.seq.cmp(&a.seq))
    });
    all.truncate(limit);
    all
}

/// One row of `dunning_actions`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = da)]
pub struct ActionRow {
    pub id: i64,
    pub invoice_id: i64,
    pub step_no: i32,
    pub action: String,
    pub status: String,
    pub detail: String,
    pub executed_on: NaiveDate,
    pub created_at: DateTime<Utc>,
}

pub fn action_label(code: &str) -> &'static str {
    match code {
        "reminder" => "Reminder",
        "retry_payment" => "Payment retry",
        "late_fee" => "Late fee",
        "task" => "Task",
        "hold" => "Hold",
        "stop" => "Stop",
        "overdue" => "Overdue",
        _ => "Action",
    }
}

pub fn from_action(a: &ActionRow) -> Event {
    // Step numbers are stored from 0; people count from 1. -1 marks "became overdue".
    let title = if a.step_no < 0 {
        "Became overdue".to_owned()
    } else {
        format!("Step {}: {}", a.step_no + 1, action_label(&a.action))
    };
    let mut e = Event::new(
        day_at(a.executed_on, a.created_at),
        Source::Dunning,
        a.id,
        title,
    );
    e.status = a.status.clone();
    e.detail = a.detail.clone();
    e.invoice_id = Some(a.invoice_id);
    e
}

pub fn from_charge(a: &Attempt) -> Event {
    let m = Currency::formatter(&a.currency);
    let amount = a.amount.map(|x| format!(" of {} {}", a.currency, m(x)));
    let mut e = Event::new(
        a.attempted_at.unwrap_or(a.scheduled_for),
        Source::Charge,
        a.id,
        format!(
            "Charge attempt {}{}",
            a.attempt_no,
            amount.unwrap_or_default()
        ),
    );
    e.status = a.status_label().to_owned();
    e.detail = [a.decline_code.clone(), a.message.clone()]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    e.invoice_id = Some(a.invoice_id);
    e.by = a.created_by;
    e
}

pub fn note_kind_label(kind: &str) -> &'static str {
    match kind {
        "call" => "Call",
        "email" => "Email",
        _ => "Note",
    }
}

pub fn from_note(n: &Note) -> Event {
    let mut e = Event::new(
        n.created_at,
        Source::Note,
        n.id,
        note_kind_label(&n.kind).into(),
    );
    e.detail = n.body.clone();
    e.status = n.outcome.clone().unwrap_or_default();
    e.invoice_id = n.invoice_id;
    e.by = n.created_by;
    e
}

/// A promise is made, and later kept, broken or canceled.
pub fn from_promise(p: &Promise) -> Vec<Event> {
    let amount = format!(
        "{} {}",
        p.currency,
        Currency::formatter(&p.currency)(p.amount)
    );
    let mut made = Event::new(
        p.created_at,
        Source::Promise,
        p.id,
        format!("Promised {amount} by {}", p.promised_on),
    );
    made.detail = p.note.clone();
    made.invoice_id = p.invoice_id;
    made.by = p.created_by;
    let mut out = vec![made];
    if let Some(at) = p.resolved_at {
        let mut r = Event::new(
            at,
            Source::Promise,
            p.id,
            format!("Promise of {amount} {}", p.status),
        );
        r.status = p.status.clone();
        r.invoice_id = p.invoice_id;
        out.push(r);
    }
    out
}

pub fn from_task(t: &Task) -> Vec<Event> {
    let mut created = Event::new(
        t.created_at,
        Source::Task,
        t.id,
        format!("Task created: {}", t.title),
    );
    created.detail = format!("Due {}", t.due_on);
    created.status = t.source.clone();
    created.invoice_id = t.invoice_id;
    let mut out = vec![created];
    if let Some(at) = t.completed_at {
        let mut done = Event::new(
            at,
            Source::Task,
            t.id,
            format!("Task {}: {}", t.status, t.title),
        );
        done.detail = t.resolution.clone().unwrap_or_default();
        done.status = t.status.clone();
        done.invoice_id = t.invoice_id;
        done.by = t.completed_by;
        out.push(done);
    }
    out
}

pub fn from_payment(p: &Payment) -> Vec<Event> {
    let m = Currency::formatter(&p.currency);
    let mut received = Event::new(
        day_at(p.received_on, p.created_at),
        Source::Payment,
        p.id,
        format!("Payment received: {} {}", p.currency, m(p.amount)),
    );
    received.detail = p.reference.clone();
    received.status = p.method.clone();
    received.by = p.created_by;
    let mut out = vec![received];
    if let Some(at) = p.reversed_at {
        let mut r = Event::new(at, Source::Payment, p.id, "Payment reversed".into());
        r.detail = p.reversal_reason.clone().unwrap_or_default();
        r.status = "reversed".into();
        out.push(r);
    }
    out
}

/// One application (or, negative, an unapplication) of a payment to an invoice.
pub fn from_application(
    id: i64,
    payment_id: i64,
    invoice_id: i64,
    amount: Decimal,
    currency: &str,
    at: DateTime<Utc>,
) -> Event {
    let m = Currency::formatter(currency);
    let title = if amount < Decimal::ZERO {
        format!("Payment #{payment_id} unapplied: {currency} {}", m(-amount))
    } else {
        format!("Payment #{payment_id} applied: {currency} {}", m(amount))
    };
    let mut e = Event::new(at, Source::Payment, id, title);
    e.invoice_id = Some(invoice_id);
    e
}

/// Fills in who did what from the tenant's members.
pub fn name_people(events: &mut [Event], members: &[Member]) {
    for e in events {
        e.who = match e.by {
            Some(id) => members
                .iter()
                .find(|m| m.user_id == id)
                .map_or_else(|| format!("user #{id}"), |m| m.name.clone()),
            None => "System".into(),
        };
    }
}

fn label_invoices(conn: &mut PgConnection, events: &mut [Event]) -> AppResult<()> {
    let mut ids: Vec<i64> = events.iter().filter_map(|e| e.invoice_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let labels: Vec<(i64, Option<String>)> = invoices::table
        .filter(invoices::id.eq_any(&ids))
        .select((invoices::id, invoices::number))
        .load(conn)?;
    for e in events {
        if let Some(id) = e.invoice_id {
            e.invoice = labels
                .iter()
                .find(|l| l.0 == id)
                .and_then(|l| l.1.clone())
                .unwrap_or_else(|| format!("Draft #{id}"));
        }
    }
    Ok(())
}

/// An account's timeline (as payer), newest first.
pub fn for_account(
    conn: &mut PgConnection,
    account_id: i64,
    limit: usize,
) -> AppResult<Vec<Event>> {
    let cap = i64::try_from(limit).unwrap_or(i64::MAX);
    let actions: Vec<ActionRow> = da::table
        .filter(da::account_id.eq(account_id))
        .order(da::id.desc())
        .limit(cap)
        .select(ActionRow::as_select())
        .load(conn)?;
    let charges = crate::payments::charge::for_account(conn, account_id, cap)?;
    let notes = super::repo::notes_for_account(conn, account_id)?;
    let promises = super::repo::promises_for_account(conn, account_id)?;
    let tasks = super::repo::tasks_for_account(conn, account_id)?;
    let payments = crate::payments::repo::for_account(conn, account_id)?;
    let mut events = merge(
        vec![
            actions.iter().map(from_action).collect(),
            charges.iter().map(from_charge).collect(),
            notes.iter().map(from_note).collect(),
            promises.iter().flat_map(from_promise).collect(),
            tasks.iter().flat_map(from_task).collect(),
            payments.iter().flat_map(from_payment).collect(),
        ],
        limit,
    );
    label_invoices(conn, &mut events)?;
    Ok(events)
}

/// One invoice's timeline, newest first.
pub fn for_invoice(
    conn: &mut PgConnection,
    invoice_id: i64,
    limit: usize,
) -> AppResult<Vec<Event>> {
    let actions: Vec<ActionRow> = da::table
        .filter(da::invoice_id.eq(invoice_id))
        .select(ActionRow::as_select())
        .load(conn)?;
    let charges = crate::payments::charge::for_invoice(conn, invoice_id)?;
    let notes: Vec<Note> = notes::table
        .filter(notes::invoice_id.eq(invoice_id))
        .select(Note::as_select())
        .load(conn)?;
    let promises: Vec<Promise> = promises::table
        .filter(promises::invoice_id.eq(invoice_id))
        .select(Promise::as_select())
        .load(conn)?;
    let tasks: Vec<Task> = tasks::table
        .filter(tasks::invoice_id.eq(invoice_id))
        .select(Task::as_select())
        .load(conn)?;
    let currency: String = invoices::table
        .find(invoice_id)
        .select(invoices::currency)
        .first(conn)?;
    let applications: Vec<(i64, i64, Decimal, DateTime<Utc>)> = apps::table
        .filter(apps::invoice_id.eq(invoice_id))
        .select((apps::id, apps::payment_id, apps::amount, apps::created_at))
        .load(conn)?;
    let mut events = merge(
        vec![
            actions.iter().map(from_action).collect(),
            charges.iter().map(from_charge).collect(),
            notes.iter().map(from_note).collect(),
            promises.iter().flat_map(from_promise).collect(),
            tasks.iter().flat_map(from_task).collect(),
            applications
                .iter()
                .map(|(id, p, a, at)| from_application(*id, *p, invoice_id, *a, &currency, *at))
                .collect(),
        ],
        limit,
    );
    label_invoices(conn, &mut events)?;
    Ok(events)
}

/// The timeline table, embedded in the account's collections tab and the invoice page.
#[derive(Template)]
#[template(path = "dunning/timeline_partial.html")]
pub struct TimelinePartial {
    pub base: String,
    pub events: Vec<Event>,
    /// Show the invoice column (the account timeline spans several invoices).
    pub show_invoice: bool,
    /// The invoice's dunning state in one line (invoice page only).
    pub summary: String,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, h, 0, 0).unwrap()
    }

    fn ev(h: u32, source: Source, seq: i64) -> Event {
        Event::new(at(h), source, seq, format!("{source:?}{seq}"))
    }

    #[test]
    fn merge_puts_the_newest_first_across_sources_and_breaks_ties_stably() {
        let merged = merge(
            vec![
                vec![ev(9, Source::Note, 1), ev(12, Source::Note, 2)],
                vec![ev(10, Source::Dunning, 7), ev(12, Source::Dunning, 8)],
                vec![ev(12, Source::Dunning, 9), ev(8, Source::Payment, 3)],
            ],
            10,
        );
        let titles: Vec<&str> = merged.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(
            titles,
            ["Dunning9", "Dunning8", "Note2", "Dunning7", "Note1", "Payment3"]
        );
        assert_eq!(
            merge(
                vec![vec![ev(1, Source::Note, 1), ev(2, Source::Note, 2)]],
                1
            )[0]
            .seq,
            2
        );
        assert!(merge(vec![], 5).is_empty());
    }

    #[test]
    fn dunning_actions_show_steps_from_one_on_their_run_date() {
        let row = ActionRow {
            id: 4,
            invoice_id: 9,
            step_no: 1,
            action: "retry_payment".into(),
            status: "skipped".into(),
            detail: "Promise to pay by 2026-06-01".into(),
            executed_on: NaiveDate::from_ymd_opt(2026, 4, 2).unwrap(),
            created_at: at(15),
        };
        let e = from_action(&row);
        assert_eq!(e.title, "Step 2: Payment retry");
        assert_eq!(e.status, "skipped");
        assert_eq!(e.at, Utc.with_ymd_and_hms(2026, 4, 2, 15, 0, 0).unwrap());
        assert_eq!(e.invoice_id, Some(9));
        let overdue = from_action(&ActionRow {
            step_no: -1,
            action: "overdue".into(),
            ..row
        });
        assert_eq!(overdue.title, "Became overdue");
    }

    #[test]
    fn promises_and_tasks_yield_an_event_when_made_and_when_resolved() {
        let p = Promise {
            id: 1,
            account_id: 2,
            invoice_id: None,
            currency: "EUR".into(),
            amount: Decimal::new(125_050, 2),
            promised_on: NaiveDate::from_ymd_opt(2026, 5, 20).unwrap(),
            status: "broken".into(),
            note: "CFO said Friday".into(),
            created_by: Some(5),
            created_at: at(9),
            resolved_at: Some(at(11)),
        };
        let events = from_promise(&p);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].title, "Promised EUR 1,250.50 by 2026-05-20");
        assert_eq!(events[1].status, "broken");
        let mut named = events.clone();
        name_people(&mut named, &[]);
        assert_eq!(
            (named[0].who.as_str(), named[1].who.as_str()),
            ("user #5", "System")
        );
        let t = Task {
            id: 3,
            account_id: 2,
            invoice_id: Some(8),
            title: "Call".into(),
            detail: String::new(),
            assignee_user_id: None,
            due_on: NaiveDate::from_ymd_opt(2026, 5, 3).unwrap(),
            status: "open".into(),
            source: "manual".into(),
            resolution: None,
            created_at: at(9),
            completed_at: None,
            completed_by: None,
        };
        assert_eq!(from_task(&t).len(), 1);
        let applied = from_application(1, 7, 8, Decimal::new(-500, 2), "USD", at(10));
        assert_eq!(applied.title, "Payment #7 unapplied: USD 5.00");
    }
}
