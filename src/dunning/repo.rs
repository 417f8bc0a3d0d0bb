//! Dunning and collections queries. Every function runs inside the caller's tenant
//! transaction.

use chrono::{NaiveDate, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;

use super::domain::RetryRules;
use crate::{
    db::schema::tenant::{
        account_collections as ac, dunning_policies as policies, invoice_dunning as idn, invoices,
        promises_to_pay as promises,
    },
    error::AppResult,
};

pub use super::policy_repo::*;
pub use super::workspace_repo::*;

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
