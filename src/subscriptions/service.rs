//! Creating a subscription for an account: the rules every entry point (form, CRM connector)
//! shares, in the caller's tenant transaction.

use rust_decimal::Decimal;
use serde_json::json;

use super::{domain::SubscriptionInput, repo};
use crate::{
    accounts::repo::Account,
    audit::{self, Actor, Entry},
    error::{AppResult, FieldErrors},
};

/// Creates the subscription, its first amendment record and the audit entry. A closed,
/// merged or held account, or an item whose price does not fit the account, is refused with
/// the field errors to show (nothing written).
pub fn create(
    c: &mut diesel::PgConnection,
    actor: &Actor,
    account: &Account,
    input: &SubscriptionInput,
) -> AppResult<Result<i64, FieldErrors>> {
    if account.status == "merged" || account.status == "closed" {
        let mut e = FieldErrors::default();
        e.add(
            "item0_price",
            format!(
                "{} is {}; it cannot take new subscriptions.",
                account.display_name, account.status
            ),
        );
        return Ok(Err(e));
    }
    if let Some(why) = crate::dunning::repo::hold_reason(c, account.id)? {
        let mut e = FieldErrors::default();
        e.add("item0_price", format!("{} is on hold ({why}); settle the overdue balance or lift the hold under Collections first.", account.display_name));
        return Ok(Err(e));
    }
    let resolved = match repo::resolve_items(c, &input.items, &account.currency)? {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let id = repo::insert(c, account.id, &account.currency, input, &resolved, None)?;
    repo::record_amendment(
        c,
        &repo::NewAmendment {
            sub_id: id,
            kind: "created",
            effective: input.start_date,
            summary: format!("Created with {} item(s)", input.items.len()),
            credit: Decimal::ZERO,
            charge: Decimal::ZERO,
            invoice_id: None,
            actor: actor.user_id,
        },
    )?;
    audit::record(
        c,
        actor,
        &Entry::new("subscription.created", "subscription", id).after(json!({
            "account_id": account.id, "start_date": input.start_date, "interval_months": input.interval_months,
            "timing": input.timing.as_str(), "items": input.items.iter().map(|i| json!({"price_id": i.price_id, "quantity": i.quantity})).collect::<Vec<_>>(),
        })),
    )?;
    Ok(Ok(id))
}
