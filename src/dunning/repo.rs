//! Dunning and collections queries. Every function runs inside the caller's tenant
//! transaction.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::Value;

use super::domain::{Assignee, Policy, RetryRules};
use crate::{
    db::schema::tenant::{
        account_collections as ac, accounts, collections_notes as notes,
        collections_tasks as tasks, dunning_policies as policies,
        dunning_policy_versions as versions, invoice_dunning as idn, invoices,
        promises_to_pay as promises,
    },
    error::{AppError, AppResult},
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = policies)]
pub struct PolicyRow {
    pub id: i64,
    pub name: String,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = versions)]
pub struct VersionRow {
    pub id: i64,
    pub policy_id: i64,
    pub version: i32,
    pub definition: Value,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl VersionRow {
    pub fn policy(&self) -> AppResult<Policy> {
        serde_json::from_value(self.definition.clone()).map_err(AppError::internal)
    }
}

pub fn policies(conn: &mut PgConnection) -> AppResult<Vec<PolicyRow>> {
    ensure_default(conn)?;
    Ok(policies::table
        .order((policies::is_default.desc(), policies::name))
        .select(PolicyRow::as_select())
        .load(conn)?)
}

pub fn policy(conn: &mut PgConnection, id: i64) -> AppResult<PolicyRow> {
    policies::table
        .find(id)
        .select(PolicyRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

/// A tenant starts with the standard policy as its default.
pub fn ensure_default(conn: &mut PgConnection) -> AppResult<()> {
    let any: i64 = policies::table.count().get_result(conn)?;
    if any == 0 {
        create_policy(conn, "Standard", &Policy::standard(), true, None)?;
    }
    Ok(())
}

pub fn create_policy(
    conn: &mut PgConnection,
    name: &str,
    p: &Policy,
    is_default: bool,
    by: Option<i64>,
) -> AppResult<i64> {
    let id: i64 = diesel::insert_into(policies::table)
        .values((policies::name.eq(name), policies::is_default.eq(is_default)))
        .on_conflict_do_nothing()
        .returning(policies::id)
        .get_result(conn)
        .optional()?
        .ok_or_else(|| {
            let mut e = crate::error::FieldErrors::default();
            e.add("name", "A policy with this name exists.");
            AppError::Validation(e)
        })?;
    add_version(conn, id, p, by)?;
    Ok(id)
}

/// Saves an edit as a new version; invoices already in dunning keep theirs.
pub fn add_version(
    conn: &mut PgConnection,
    policy_id: i64,
    p: &Policy,
    by: Option<i64>,
) -> AppResult<i64> {
    let last: Option<i32> = versions::table
        .filter(versions::policy_id.eq(policy_id))
        .select(diesel::dsl::max(versions::version))
        .first(conn)?;
    Ok(diesel::insert_into(versions::table)
        .values((
            versions::policy_id.eq(policy_id),
            versions::version.eq(last.unwrap_or(0) + 1),
            versions::definition.eq(serde_json::to_value(p).map_err(AppError::internal)?),
            versions::created_by.eq(by),
        ))
        .returning(versions::id)
        .get_result(conn)?)
}

pub fn set_default(conn: &mut PgConnection, policy_id: i64) -> AppResult<()> {
    policy(conn, policy_id)?;
    diesel::update(policies::table)
        .set(policies::is_default.eq(false))
        .execute(conn)?;
    diesel::update(policies::table.find(policy_id))
        .set(policies::is_default.eq(true))
        .execute(conn)?;
    Ok(())
}

pub fn versions_of(conn: &mut PgConnection, policy_id: i64) -> AppResult<Vec<VersionRow>> {
    Ok(versions::table
        .filter(versions::policy_id.eq(policy_id))
        .order(versions::version.desc())
        .select(VersionRow::as_select())
        .load(conn)?)
}

pub fn current_version(conn: &mut PgConnection, policy_id: i64) -> AppResult<VersionRow> {
    versions::table
        .filter(versions::policy_id.eq(policy_id))
        .order(versions::version.desc())
        .select(VersionRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

pub fn version(conn: &mut PgConnection, id: i64) -> AppResult<VersionRow> {
    versions::table
        .find(id)
        .select(VersionRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

#[derive(Debug, Clone, Default, Queryable, Selectable)]
#[diesel(table_name = ac)]
pub struct Collections {
    pub account_id: i64,
    pub dunning_policy_id: Option<i64>,
    pub dunning_excluded: bool,
    pub on_hold: bool,
    pub hold_reason: Option<String>,
    pub paused_until: Option<NaiveDate>,
    pub pause_reason: Option<String>,
}

pub fn collections(conn: &mut PgConnection, account_id: i64) -> AppResult<Collections> {
    Ok(ac::table
        .find(account_id)
        .select(Collections::as_select())
        .first(conn)
        .optional()?
        .unwrap_or(Collections {
            account_id,
            ..Collections::default()
        }))
}

pub fn save_collections(conn: &mut PgConnection, c: &Collections) -> AppResult<()> {
    diesel::insert_into(ac::table)
        .values((
            ac::account_id.eq(c.account_id),
            ac::dunning_policy_id.eq(c.dunning_policy_id),
            ac::dunning_excluded.eq(c.dunning_excluded),
            ac::on_hold.eq(c.on_hold),
            ac::hold_reason.eq(&c.hold_reason),
            ac::paused_until.eq(c.paused_until),
            ac::pause_reason.eq(&c.pause_reason),
        ))
        .on_conflict(ac::account_id)
        .do_update()
        .set((
            ac::dunning_policy_id.eq(c.dunning_policy_id),
            ac::dunning_excluded.eq(c.dunning_excluded),
            ac::on_hold.eq(c.on_hold),
            ac::hold_reason.eq(&c.hold_reason),
            ac::paused_until.eq(c.paused_until),
            ac::pause_reason.eq(&c.pause_reason),
            ac::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The reason an account is on hold, which blocks new subscriptions and amendments.
pub fn hold_reason(conn: &mut PgConnection, account_id: i64) -> AppResult<Option<String>> {
    let c = collections(conn, account_id)?;
    Ok(c.on_hold
        .then(|| c.hold_reason.unwrap_or_else(|| "On hold".into())))
}

/// The policy version new dunning of this account starts with; `None` when excluded.
pub fn effective_for_account(
    conn: &mut PgConnection,
    account_id: i64,
) -> AppResult<Option<VersionRow>> {
    let c = collections(conn, account_id)?;
    if c.dunning_excluded {
        return Ok(None);
    }
    let policy_id = match c.dunning_policy_id {
        Some(p) => p,
        None => {
            ensure_default(conn)?;
            policies::table
                .filter(policies::is_default)
                .select(policies::id)
                .first(conn)?
        }
    };
    current_version(conn, policy_id).map(Some)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = idn)]
pub struct InvoiceDunning {
    pub invoice_id: i64,
    pub account_id: i64,
    pub policy_version_id: i64,
    pub started_on: NaiveDate,
    pub status: String,
    pub stop_reason: Option<String>,
    pub disputed: bool,
    pub dispute_reason: Option<String>,
    pub last_evaluated_on: Option<NaiveDate>,
}

pub fn invoice_dunning(
    conn: &mut PgConnection,
    invoice_id: i64,
) -> AppResult<Option<InvoiceDunning>> {
    Ok(idn::table
        .find(invoice_id)
        .select(InvoiceDunning::as_select())
        .first(conn)
        .optional()?)
}

/// Retry rules for an invoice's charges: its pinned version's, else its account's; `None`
/// when the account is excluded from dunning.
pub fn retry_rules_for(conn: &mut PgConnection, invoice_id: i64) -> AppResult<Option<RetryRules>> {
    let v = match invoice_dunning(conn, invoice_id)? {
        Some(d) => Some(version(conn, d.policy_version_id)?),
        None => {
            let payer: i64 = invoices::table
                .find(invoice_id)
                .select(invoices::bill_to_account_id)
                .first(conn)?;
            effective_for_account(conn, payer)?
        }
    };
    v.map(|v| v.policy().map(|p| p.retry)).transpose()
}

pub fn is_disputed(conn: &mut PgConnection, invoice_id: i64) -> AppResult<bool> {
    Ok(invoice_dunning(conn, invoice_id)?.is_some_and(|d| d.disputed))
}

/// Flags or clears a dispute. A disputed invoice gets no reminders, fees or charges.
pub fn set_dispute(
    conn: &mut PgConnection,
    invoice_id: i64,
    disputed: bool,
    reason: Option<&str>,
    today: NaiveDate,
) -> AppResult<()> {
    let inv = crate::invoicing::repo::get(conn, invoice_id)?;
    let pinned = match invoice_dunning(conn, invoice_id)? {
        Some(d) => d.policy_version_id,
        None => match effective_for_account(conn, inv.bill_to_account_id)? {
            Some(v) => v.id,
            None => {
                ensure_default(conn)?;
                let id: i64 = policies::table
                    .filter(policies::is_default)
                    .select(policies::id)
                    .first(conn)?;
                current_version(conn, id)?.id
            }
        },
    };
    diesel::insert_into(idn::table)
        .values((
            idn::invoice_id.eq(invoice_id),
            idn::account_id.eq(inv.bill_to_account_id),
            idn::policy_version_id.eq(pinned),
            idn::started_on.eq(today),
            idn::disputed.eq(disputed),
            idn::dispute_reason.eq(reason),
        ))
        .on_conflict(idn::invoice_id)
        .do_update()
        .set((
            idn::disputed.eq(disputed),
            idn::dispute_reason.eq(reason),
            idn::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    if disputed {
        crate::payments::charge::cancel_live(conn, invoice_id, "The invoice is disputed.")?;
    }
    Ok(())
}

/// Ends dunning of an invoice that no longer owes anything, and cancels pending charges.
pub fn settle_if_paid(conn: &mut PgConnection, invoice_id: i64) -> AppResult<()> {
    let (status, due): (String, Decimal) = invoices::table
        .find(invoice_id)
        .select((invoices::status, invoices::amount_due))
        .first(conn)?;
    if status == "open" && due > Decimal::ZERO {
        return Ok(());
    }
    let reason = match status.as_str() {
        "void" => "voided",
        "uncollectible" => "written off",
        _ => "paid",
    };
    diesel::update(idn::table.find(invoice_id).filter(idn::status.eq("active")))
        .set((
            idn::status.eq("completed"),
            idn::stop_reason.eq(reason),
            idn::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    crate::payments::charge::cancel_live(conn, invoice_id, "The invoice no longer has a balance.")?;
    diesel::update(
        promises::table
            .filter(promises::invoice_id.eq(invoice_id))
            .filter(promises::status.eq("open")),
    )
    .set((
        promises::status.eq("kept"),
        promises::resolved_at.eq(Utc::now()),
    ))
    .execute(conn)?;
    lift_dunning_hold(conn, invoice_id)?;
    Ok(())
}

/// A hold dunning put on (not one a person set) ends when nothing of the account is overdue.
fn lift_dunning_hold(conn: &mut PgConnection, invoice_id: i64) -> AppResult<()> {
    let payer: i64 = invoices::table
        .find(invoice_id)
        .select(invoices::bill_to_account_id)
        .first(conn)?;
    let mut c = collections(conn, payer)?;
    let by_dunning = c
        .hold_reason
        .as_deref()
        .is_some_and(|r| r.starts_with(super::actions::HOLD_REASON_PREFIX));
    if !c.on_hold || !by_dunning {
        return Ok(());
    }
    let overdue: i64 = invoices::table
        .filter(invoices::bill_to_account_id.eq(payer))
        .filter(invoices::status.eq("open"))
        .filter(invoices::amount_due.gt(Decimal::ZERO))
        .filter(invoices::due_date.lt(Utc::now().date_naive()))
        .count()
        .get_result(conn)?;
    if overdue > 0 {
        return Ok(());
    }
    let before = c.hold_reason.take();
    c.on_hold = false;
    save_collections(conn, &c)?;
    crate::audit::record(
        conn,
        &crate::audit::Actor::system(),
        &crate::audit::Entry::new("account.hold_lifted", "account", payer)
            .before(serde_json::json!({ "on_hold": true, "reason": before }))
            .after(serde_json::json!({ "on_hold": false, "why": "nothing overdue any more" })),
    )
}

pub struct NewTask {
    pub account_id: i64,
    pub invoice_id: Option<i64>,
    pub title: String,
    pub detail: String,
    pub assignee: Assignee,
    pub due_on: NaiveDate,
    pub source: &'static str,
}

pub fn create_task(conn: &mut PgConnection, t: &NewTask) -> AppResult<i64> {
    let assignee = match t.assignee {
        Assignee::User(id) => Some(id),
        Assignee::Team => None,
        Assignee::AccountOwner => accounts::table
            .find(t.account_id)
            .select(accounts::owner_user_id)
            .first::<Option<i64>>(conn)?,
    };
    Ok(diesel::insert_into(tasks::table)
        .values((
            tasks::account_id.eq(t.account_id),
            tasks::invoice_id.eq(t.invoice_id),
            tasks::title.eq(&t.title),
            tasks::detail.eq(&t.detail),
            tasks::assignee_user_id.eq(assignee),
            tasks::due_on.eq(t.due_on),
            tasks::source.eq(t.source),
        ))
        .returning(tasks::id)
        .get_result(conn)?)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tasks)]
pub struct Task {
    pub id: i64,
    pub account_id: i64,
    pub invoice_id: Option<i64>,
    pub title: String,
    pub detail: String,
    pub assignee_user_id: Option<i64>,
    pub due_on: NaiveDate,
    pub status: String,
    pub source: String,
    pub resolution: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub completed_by: Option<i64>,
}

pub fn task(conn: &mut PgConnection, id: i64) -> AppResult<Task> {
    tasks::table
        .find(id)
        .select(Task::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

pub fn tasks_for_account(conn: &mut PgConnection, account_id: i64) -> AppResult<Vec<Task>> {
    Ok(tasks::table
        .filter(tasks::account_id.eq(account_id))
        .order((tasks::status.desc(), tasks::due_on, tasks::id))
        .select(Task::as_select())
        .load(conn)?)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = notes)]
pub struct Note {
    pub id: i64,
    pub account_id: i64,
    pub invoice_id: Option<i64>,
    pub kind: String,
    pub body: String,
    pub outcome: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

pub fn notes_for_account(conn: &mut PgConnection, account_id: i64) -> AppResult<Vec<Note>> {
    Ok(notes::table
        .filter(notes::account_id.eq(account_id))
        .order(notes::id.desc())
        .select(Note::as_select())
        .load(conn)?)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = promises)]
pub struct Promise {
    pub id: i64,
    pub account_id: i64,
    pub invoice_id: Option<i64>,
    pub currency: String,
    pub amount: Decimal,
    pub promised_on: NaiveDate,
    pub status: String,
    pub note: String,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

pub fn promises_for_account(conn: &mut PgConnection, account_id: i64) -> AppResult<Vec<Promise>> {
    Ok(promises::table
        .filter(promises::account_id.eq(account_id))
        .order(promises::id.desc())
        .select(Promise::as_select())
        .load(conn)?)
}

/// An open promise covering this invoice (its own, or one for the whole account) that has
/// not passed its date.
pub fn promise_covering(
    conn: &mut PgConnection,
    account_id: i64,
    invoice_id: i64,
    today: NaiveDate,
) -> AppResult<Option<Promise>> {
    Ok(promises::table
        .filter(promises::account_id.eq(account_id))
        .filter(promises::status.eq("open"))
        .filter(promises::promised_on.ge(today))
        .filter(
            promises::invoice_id
                .eq(invoice_id)
                .or(promises::invoice_id.is_null()),
        )
        .order(promises::promised_on)
        .select(Promise::as_select())
        .first(conn)
        .optional()?)
}

// Collections workspace queries (policy editor, tasks inbox, account collections tab).

/// `(policy id, versions, accounts assigned to it)` for the policy list.
pub fn policy_stats(conn: &mut PgConnection) -> AppResult<Vec<(i64, i64, i64)>> {
    let versions: Vec<(i64, i64)> = versions::table
        .group_by(versions::policy_id)
        .select((versions::policy_id, diesel::dsl::count_star()))
        .load(conn)?;
    let assigned: Vec<(Option<i64>, i64)> = ac::table
        .filter(ac::dunning_policy_id.is_not_null())
        .group_by(ac::dunning_policy_id)
        .select((ac::dunning_policy_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(policies::table
        .select(policies::id)
        .load::<i64>(conn)?
        .into_iter()
        .map(|id| {
            let v = versions.iter().find(|x| x.0 == id).map_or(0, |x| x.1);
            let a = assigned.iter().find(|x| x.0 == Some(id)).map_or(0, |x| x.1);
            (id, v, a)
        })
        .collect())
}

/// Which tasks the inbox shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskScope {
    /// Assigned to this user.
    Mine(i64),
    /// Unassigned: the team's.
    Team,
    All,
}

/// A page of the inbox and the number of matching tasks. Open tasks come overdue first,
/// then by due date; done ones most recently completed first.
pub fn inbox(
    conn: &mut PgConnection,
    scope: TaskScope,
    done: bool,
    today: NaiveDate,
    limit: i64,
    offset: i64,
) -> AppResult<(Vec<Task>, i64)> {
    let filtered = || {
        let mut q = tasks::table.into_boxed();
        q = match scope {
            TaskScope::Mine(uid) => q.filter(tasks::assignee_user_id.eq(uid)),
            TaskScope::Team => q.filter(tasks::assignee_user_id.is_null()),
            TaskScope::All => q,
        };
        if done {
            q.filter(tasks::status.ne("open"))
        } else {
            q.filter(tasks::status.eq("open"))
        }
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let q = filtered();
    let q = if done {
        q.order((tasks::completed_at.desc().nulls_last(), tasks::id.desc()))
    } else {
        q.order((tasks::due_on.lt(today).desc(), tasks::due_on, tasks::id))
    };
    let rows = q
        .limit(limit)
        .offset(offset)
        .select(Task::as_select())
        .load(conn)?;
    Ok((rows, total))
}

pub fn lock_task(conn: &mut PgConnection, id: i64) -> AppResult<Task> {
    tasks::table
        .find(id)
        .select(Task::as_select())
        .for_update()
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

pub fn complete_task(conn: &mut PgConnection, id: i64, resolution: &str, by: i64) -> AppResult<()> {
    diesel::update(tasks::table.find(id).filter(tasks::status.eq("open")))
        .set((
            tasks::status.eq("done"),
            tasks::resolution.eq(resolution),
            tasks::completed_at.eq(Utc::now()),
            tasks::completed_by.eq(by),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn assign_task(conn: &mut PgConnection, id: i64, assignee: Option<i64>) -> AppResult<()> {
    diesel::update(tasks::table.find(id))
        .set(tasks::assignee_user_id.eq(assignee))
        .execute(conn)?;
    Ok(())
}

pub struct NewNote<'a> {
    pub account_id: i64,
    pub invoice_id: Option<i64>,
    pub kind: &'a str,
    pub body: &'a str,
    pub outcome: Option<&'a str>,
    pub created_by: Option<i64>,
}

pub fn add_note(conn: &mut PgConnection, n: &NewNote<'_>) -> AppResult<i64> {
    Ok(diesel::insert_into(notes::table)
        .values((
            notes::account_id.eq(n.account_id),
            notes::invoice_id.eq(n.invoice_id),
            notes::kind.eq(n.kind),
            notes::body.eq(n.body),
            notes::outcome.eq(n.outcome),
            notes::created_by.eq(n.created_by),
        ))
        .returning(notes::id)
        .get_result(conn)?)
}

pub struct NewPromise<'a> {
    pub account_id: i64,
    pub invoice_id: Option<i64>,
    pub currency: &'a str,
    pub amount: Decimal,
    pub promised_on: NaiveDate,
    pub note: &'a str,
    pub created_by: Option<i64>,
}

pub fn add_promise(conn: &mut PgConnection, p: &NewPromise<'_>) -> AppResult<i64> {
    Ok(diesel::insert_into(promises::table)
        .values((
            promises::account_id.eq(p.account_id),
            promises::invoice_id.eq(p.invoice_id),
            promises::currency.eq(p.currency),
            promises::amount.eq(p.amount),
            promises::promised_on.eq(p.promised_on),
            promises::note.eq(p.note),
            promises::created_by.eq(p.created_by),
        ))
        .returning(promises::id)
        .get_result(conn)?)
}

pub fn lock_promise(conn: &mut PgConnection, id: i64) -> AppResult<Promise> {
    promises::table
        .find(id)
        .select(Promise::as_select())
        .for_update()
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

pub fn cancel_promise(conn: &mut PgConnection, id: i64) -> AppResult<()> {
    diesel::update(promises::table.find(id).filter(promises::status.eq("open")))
        .set((
            promises::status.eq("canceled"),
            promises::resolved_at.eq(Utc::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Open invoices the account pays (its own and its children's billed to it), oldest due first.
pub fn open_invoices_of(
    conn: &mut PgConnection,
    account_id: i64,
) -> AppResult<Vec<crate::invoicing::repo::Invoice>> {
    Ok(invoices::table
        .filter(invoices::bill_to_account_id.eq(account_id))
        .filter(invoices::kind.eq("invoice"))
        .filter(invoices::status.eq("open"))
        .filter(invoices::amount_due.gt(Decimal::ZERO))
        .order((invoices::due_date.asc().nulls_last(), invoices::id))
        .select(crate::invoicing::repo::Invoice::as_select())
        .load(conn)?)
}

/// The highest step done on an invoice under a policy version (`None`: none yet).
pub fn last_step_done(
    conn: &mut PgConnection,
    invoice_id: i64,
    version_id: i64,
) -> AppResult<Option<i32>> {
    use crate::db::schema::tenant::dunning_actions as da;
    Ok(da::table
        .filter(da::invoice_id.eq(invoice_id))
        .filter(da::policy_version_id.eq(version_id))
        .filter(da::step_no.ge(0))
        .filter(da::status.ne("skipped"))
        .select(diesel::dsl::max(da::step_no))
        .first(conn)?)
}

/// Locks a policy so concurrent edits add versions one after the other.
pub fn lock_policy(conn: &mut PgConnection, id: i64) -> AppResult<PolicyRow> {
    policies::table
        .find(id)
        .select(PolicyRow::as_select())
        .for_update()
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}
