//! Demo collections data: stored test cards, today's dunning run over the demo invoices
//! (reminders, a late fee, tasks), a promise to pay and a logged call.

use chrono::{Duration, NaiveDate};
use diesel::prelude::*;
use rust_decimal::Decimal;

use crate::{
    db::schema::tenant::{
        accounts, collections_notes as notes, invoices, promises_to_pay as promises,
    },
    error::AppResult,
    invoicing::email::Links,
    payments::{gateway::sandbox, methods},
};

pub fn seed(c: &mut PgConnection, links: &Links, owner: i64, today: NaiveDate) -> AppResult<()> {
    let payers: Vec<i64> = invoices::table
        .filter(invoices::status.eq("open"))
        .select(invoices::bill_to_account_id)
        .distinct()
        .order(invoices::bill_to_account_id)
        .load(c)?;
    // A card that works on the first paying account and one without funds on the last, so
    // the workers show a success and a decline with its retry schedule.
    let cards = [
        (payers.first(), "4242424242424242"),
        (payers.last(), "4000000000009995"),
    ];
    for (account, number) in cards {
        let (Some(account), Ok(card)) = (account, sandbox::tokenize(number)) else {
            continue;
        };
        methods::add(
            c,
            *account,
            &methods::NewMethod {
                gateway: "sandbox",
                token: card.token,
                customer_ref: None,
                brand: card.brand,
                last4: card.last4,
                exp_month: Some(12),
                exp_year: Some(2030),
                auto_charge: true,
            },
            Some(owner),
        )?;
    }
    super::engine::evaluate_all(c, links, today)?;
    if let Some(account) = payers.get(1) {
        let currency: String = accounts::table
            .find(account)
            .select(accounts::currency)
            .first(c)?;
        diesel::insert_into(notes::table)
            .values((
                notes::account_id.eq(account),
                notes::kind.eq("call"),
                notes::body.eq("Spoke with accounts payable: the invoice is approved and in next week's payment run."),
                notes::outcome.eq("Promised to pay"),
                notes::created_by.eq(owner),
            ))
            .execute(c)?;
        diesel::insert_into(promises::table)
            .values((
                promises::account_id.eq(account),
                promises::currency.eq(currency),
                promises::amount.eq(Decimal::from(1_000)),
                promises::promised_on.eq(today + Duration::days(7)),
                promises::note.eq("Next payment run"),
                promises::created_by.eq(owner),
            ))
            .execute(c)?;
    }
    Ok(())
}
