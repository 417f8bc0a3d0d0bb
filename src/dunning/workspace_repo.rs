//! Collections workspace queries: tasks, notes and promises to pay.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;

use super::domain::Assignee;
use crate::{
    db::schema::tenant::{
        accounts, collections_notes as notes, collections_tasks as tasks, invoices,
        promises_to_pay as promises,
    },
    error::{AppError, AppResult},
};

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
