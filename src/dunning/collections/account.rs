//! An account's Collections tab: what it owes and where each invoice stands in dunning
//! (policy version, last step done, next step and its date), promises, notes and calls,
//! tasks and the timeline. The forms that change them are in [`super::forms`].
//!
//! Rules: an invoice's dunning is described from its pinned version once it started, from
//! the version it would start with otherwise; a paused, disputed, stopped or excluded
//! invoice shows no next step as coming. Last contact is the latest call or email logged.

use askama::{filters::HtmlSafeOutput, Template};
use chrono::NaiveDate;
use diesel::PgConnection;
use rust_decimal::Decimal;

use super::{member_name, task_rows, TaskRow};
use crate::{
    accounts::{
        domain::Fields,
        handlers::{members, visibility},
        repo as accounts,
    },
    auth::permissions::Permission,
    dunning::{
        repo::{self, Collections},
        timeline,
    },
    error::{AppResult, FieldErrors},
    invoicing::{handlers::today, repo::Invoice},
    money::Currency,
    tenants::{repo::Member, TenantCtx},
    web::AppState,
};

pub const NOTE_KINDS: &[(&str, &str)] = &[("call", "Call"), ("email", "Email"), ("note", "Note")];
pub const OUTCOMES: &[(&str, &str)] = &[
    ("reached", "Reached the customer"),
    ("voicemail", "Left a voicemail"),
    ("no_answer", "No answer"),
    ("promised", "Promised to pay"),
    ("disputed", "Disputes the invoice"),
    ("wrong_contact", "Wrong contact"),
];

fn outcome_label(code: &str) -> String {
    OUTCOMES
        .iter()
        .find(|o| o.0 == code)
        .map_or_else(|| code.to_owned(), |o| o.1.to_owned())
}

pub struct OpenRow {
    pub id: i64,
    pub label: String,
    pub due_date: String,
    pub days_overdue: i64,
    pub balance: String,
    pub policy: String,
    pub status: String,
    pub last_step: String,
    pub next_step: String,
    pub disputed: bool,
    pub dispute_reason: String,
}

pub struct NoteRow {
    pub at: String,
    pub kind: String,
    pub body: String,
    pub outcome: String,
    pub who: String,
    pub invoice: String,
}

pub struct PromiseRow {
    pub id: i64,
    pub amount: String,
    pub promised_on: NaiveDate,
    pub status: String,
    pub invoice: String,
    pub note: String,
    pub who: String,
}

#[derive(Template)]
#[template(path = "dunning/account_tab_partial.html")]
pub struct AccountTabPartial {
    pub base: String,
    pub csrf_token: String,
    pub account_id: i64,
    pub account_name: String,
    /// Rendered on its own (a form came back with errors), not inside the account page.
    pub standalone: bool,
    pub open: Vec<OpenRow>,
    pub total_due: String,
    pub coll: Collections,
    pub effective: String,
    pub last_contact: String,
    pub notes: Vec<NoteRow>,
    pub promises: Vec<PromiseRow>,
    pub tasks: Vec<TaskRow>,
    pub timeline: HtmlSafeOutput<timeline::TimelinePartial>,
    pub invoice_options: Vec<(String, String)>,
    pub policy_options: Vec<(String, String)>,
    pub note_kinds: &'static [(&'static str, &'static str)],
    pub outcomes: &'static [(&'static str, &'static str)],
    pub can_work: bool,
    pub can_configure: bool,
    pub form: Fields,
    pub errors: FieldErrors,
}

impl AccountTabPartial {
    pub fn dispute_err(&self, invoice: &i64) -> &str {
        self.errors.for_field(&format!("dispute_{invoice}"))
    }
}

/// Where an invoice stands in dunning, in words.
pub(super) fn open_row(
    conn: &mut PgConnection,
    inv: &Invoice,
    effective: Option<&repo::VersionRow>,
    names: &[repo::PolicyRow],
    coll: &Collections,
    day: NaiveDate,
) -> AppResult<OpenRow> {
    let m = Currency::formatter(&inv.currency);
    let state = repo::invoice_dunning(conn, inv.id)?;
    let version = match &state {
        Some(d) => Some(repo::version(conn, d.policy_version_id)?),
        None => effective.cloned(),
    };
    let policy_name = |v: &repo::VersionRow| {
        let name = names
            .iter()
            .find(|p| p.id == v.policy_id)
            .map_or("Policy", |p| p.name.as_str());
        format!("{name} v{}", v.version)
    };
    let paused = coll.paused_until.filter(|u| *u >= day);
    let status = match &state {
        Some(d) if d.disputed => "Disputed: no reminders, fees or charges".to_owned(),
        Some(d) if d.status == "stopped" => {
            format!("Stopped ({})", d.stop_reason.clone().unwrap_or_default())
        }
        Some(d) if d.status == "completed" => {
            format!("Completed ({})", d.stop_reason.clone().unwrap_or_default())
        }
        _ if version.is_none() => "Excluded from dunning".to_owned(),
        _ if paused.is_some() => format!(
            "Paused until {}",
            paused.map(|p| p.to_string()).unwrap_or_default()
        ),
        Some(_) => "Active".to_owned(),
        None => "Not started".to_owned(),
    };
    let (mut last_step, mut next_step) = (String::new(), String::new());
    if let (Some(v), Some(due)) = (&version, inv.due_date) {
        let policy = v.policy()?;
        if let Some(n) = repo::last_step_done(conn, inv.id, v.id)? {
            let offset = usize::try_from(n)
                .ok()
                .and_then(|i| policy.steps.get(i))
                .map(|s| s.offset_days);
            last_step = format!(
                "Step {}{}",
                n + 1,
                offset.map(|o| format!(" (day {o})")).unwrap_or_default()
            );
        }
        let running = state
            .as_ref()
            .is_none_or(|d| d.status == "active" && !d.disputed);
        if running {
            if let Some((i, on)) = policy.next_step(due, day) {
                let what = policy.steps.get(i).map(|s| {
                    s.actions
                        .iter()
                        .map(|a| a.describe(&|x| m(x)))
                        .collect::<Vec<_>>()
                        .join(", ")
                });
                next_step = format!("Step {} on {on}: {}", i + 1, what.unwrap_or_default());
            }
        }
    }
    Ok(OpenRow {
        id: inv.id,
        label: inv.label(),
        due_date: inv.due_date.map(|d| d.to_string()).unwrap_or_default(),
        days_overdue: inv.due_date.map_or(0, |d| (day - d).num_days().max(0)),
        balance: format!("{} {}", inv.currency, m(inv.amount_due)),
        policy: version.as_ref().map(policy_name).unwrap_or_default(),
        status,
        last_step,
        next_step,
        disputed: state.as_ref().is_some_and(|d| d.disputed),
        dispute_reason: state.and_then(|d| d.dispute_reason).unwrap_or_default(),
    })
}

/// The Collections tab of an account page.
pub fn account_tab(
    conn: &mut PgConnection,
    ctx: &TenantCtx,
    csrf_token: String,
    account_id: i64,
    members: &[Member],
    form: Fields,
    errors: FieldErrors,
) -> AppResult<AccountTabPartial> {
    let account = accounts::get_visible(conn, account_id, visibility(ctx))?;
    let day = today();
    let coll = repo::collections(conn, account_id)?;
    let names = repo::policies(conn)?;
    let effective = repo::effective_for_account(conn, account_id)?;
    let invoices = repo::open_invoices_of(conn, account_id)?;
    let mut open = Vec::new();
    for inv in &invoices {
        open.push(open_row(conn, inv, effective.as_ref(), &names, &coll, day)?);
    }
    let mut totals: Vec<(String, Decimal)> =
        crate::money::sum_by(invoices.iter().map(|i| (i.currency.clone(), i.amount_due)));
    totals.sort();
    let total_due = totals
        .iter()
        .map(|(c, a)| format!("{c} {}", Currency::formatter(c)(*a)))
        .collect::<Vec<_>>()
        .join(" + ");
    let label_of = |id: Option<i64>| {
        id.map(|i| {
            invoices
                .iter()
                .find(|x| x.id == i)
                .map_or_else(|| format!("#{i}"), Invoice::label)
        })
        .unwrap_or_default()
    };
    let notes = repo::notes_for_account(conn, account_id)?;
    let last_contact = notes
        .iter()
        .find(|n| n.kind == "call" || n.kind == "email")
        .map(|n| {
            let outcome = n
                .outcome
                .as_deref()
                .map(|o| format!(": {}", outcome_label(o)))
                .unwrap_or_default();
            format!(
                "{} · {} by {}{outcome}",
                n.created_at.format("%Y-%m-%d %H:%M"),
                timeline::note_kind_label(&n.kind),
                member_name(members, n.created_by)
            )
        })
        .unwrap_or_default();
    let notes = notes
        .iter()
        .map(|n| NoteRow {
            at: n.created_at.format("%Y-%m-%d %H:%M").to_string(),
            kind: timeline::note_kind_label(&n.kind).into(),
            body: n.body.clone(),
            outcome: n.outcome.as_deref().map(outcome_label).unwrap_or_default(),
            who: member_name(members, n.created_by),
            invoice: label_of(n.invoice_id),
        })
        .collect();
    let promises = repo::promises_for_account(conn, account_id)?
        .iter()
        .map(|p| PromiseRow {
            id: p.id,
            amount: format!(
                "{} {}",
                p.currency,
                Currency::formatter(&p.currency)(p.amount)
            ),
            promised_on: p.promised_on,
            status: p.status.clone(),
            invoice: label_of(p.invoice_id),
            note: p.note.clone(),
            who: member_name(members, p.created_by),
        })
        .collect();
    let tasks = repo::tasks_for_account(conn, account_id)?;
    let tasks = task_rows(conn, &tasks, members, day)?;
    let mut events = timeline::for_account(conn, account_id, 200)?;
    timeline::name_people(&mut events, members);
    let effective_label = match (&effective, coll.dunning_excluded) {
        (_, true) => "Excluded from dunning".to_owned(),
        (Some(v), false) => {
            let p = names.iter().find(|p| p.id == v.policy_id);
            let how = if coll.dunning_policy_id.is_some() {
                "assigned"
            } else {
                "default"
            };
            format!(
                "{} v{} ({how})",
                p.map_or("Policy", |p| p.name.as_str()),
                v.version
            )
        }
        (None, false) => "None".to_owned(),
    };
    let mut form = form;
    if form.get("policy").is_empty() {
        let current = match (coll.dunning_excluded, coll.dunning_policy_id) {
            (true, _) => "exclude".to_owned(),
            (false, Some(p)) => p.to_string(),
            (false, None) => "default".to_owned(),
        };
        form.set("policy", current);
    }
    let mut policy_options = vec![("default".to_owned(), "The default policy".to_owned())];
    policy_options.extend(names.iter().map(|p| (p.id.to_string(), p.name.clone())));
    policy_options.push(("exclude".into(), "Exclude from dunning".into()));
    Ok(AccountTabPartial {
        base: ctx.base(),
        csrf_token,
        account_id,
        account_name: account.display_name,
        standalone: false,
        invoice_options: invoices
            .iter()
            .map(|i| (i.id.to_string(), i.label()))
            .collect(),
        open,
        total_due,
        coll,
        effective: effective_label,
        last_contact,
        notes,
        promises,
        tasks,
        timeline: HtmlSafeOutput(timeline::TimelinePartial {
            base: ctx.base(),
            events,
            show_invoice: true,
            summary: String::new(),
        }),
        policy_options,
        note_kinds: NOTE_KINDS,
        outcomes: OUTCOMES,
        can_work: ctx.can(Permission::CollectionsWork),
        can_configure: ctx.can(Permission::DunningConfigure),
        form,
        errors,
    })
}

/// The invoice page's collections section: the invoice's dunning state and timeline.
pub async fn invoice_timeline(
    ctx: &TenantCtx,
    state: &AppState,
    invoice_id: i64,
) -> AppResult<HtmlSafeOutput<timeline::TimelinePartial>> {
    let members = members(state, ctx.tenant.id).await?;
    let base = ctx.base();
    ctx.db(state, move |c| {
        let inv = crate::invoicing::repo::get(c, invoice_id)?;
        let mut events = timeline::for_invoice(c, invoice_id, 200)?;
        timeline::name_people(&mut events, &members);
        let tracked = repo::invoice_dunning(c, invoice_id)?.is_some();
        let summary = if inv.kind == "invoice" && (inv.status == "open" || tracked) {
            let coll = repo::collections(c, inv.bill_to_account_id)?;
            let effective = repo::effective_for_account(c, inv.bill_to_account_id)?;
            let names = repo::policies(c)?;
            let r = open_row(c, &inv, effective.as_ref(), &names, &coll, today())?;
            [
                format!("Dunning: {}", r.status),
                r.policy,
                r.last_step.clone(),
                r.next_step,
            ]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" · ")
        } else {
            String::new()
        };
        Ok(HtmlSafeOutput(timeline::TimelinePartial {
            base,
            events,
            show_invoice: false,
            summary,
        }))
    })
    .await
}
