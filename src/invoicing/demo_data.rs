//! Demo billing data: a catalog in three currencies, subscriptions that started three months
//! ago on the demo accounts, usage, and a bill run whose past periods are finalized (and
//! emailed to the sent-mail page) while this month's invoices wait as drafts for review.

use chrono::{Datelike, Months, NaiveDate};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use super::{billrun, email::Links, finalize, repo};
use crate::{
    accounts::domain::Fields,
    audit::Actor,
    catalog::{
        domain::{PriceInput, ProductInput},
        repo as catalog,
    },
    db::schema::tenant::{accounts, invoices, usage_records},
    error::{AppError, AppResult},
    subscriptions::{domain::SubscriptionInput, repo as subs},
};

fn fields(pairs: &[(&str, &str)]) -> Fields {
    Fields::from_pairs(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
}

fn product(
    c: &mut PgConnection,
    f: &[(&str, &str)],
    prices: &[(&str, &[(&str, &str)])],
) -> AppResult<Vec<(String, i64)>> {
    let p = ProductInput::parse(&fields(f)).map_err(AppError::Validation)?;
    let id = catalog::insert_product(c, &p)?;
    let mut out = Vec::new();
    for (currency, terms) in prices {
        let mut all = vec![
            ("nickname", "List price"),
            ("currency", *currency),
            ("interval_months", "1"),
        ];
        all.extend_from_slice(terms);
        let price = PriceInput::parse(&fields(&all)).map_err(AppError::Validation)?;
        out.push((
            (*currency).to_owned(),
            catalog::insert_price(c, id, &price, None)?,
        ));
    }
    Ok(out)
}

fn price_for(prices: &[(String, i64)], currency: &str) -> Option<i64> {
    prices
        .iter()
        .find(|(c, _)| c == currency)
        .map(|(_, id)| *id)
}

pub fn seed(c: &mut PgConnection, actor: &Actor, links: &Links, today: NaiveDate) -> AppResult<()> {
    repo::put_setting(c, "tax.standard_rate", json!("20"))?;
    repo::put_setting(c, "tax.reduced_rate", json!("5"))?;
    let platform = product(
        c,
        &[
            ("sku", "PLAT"),
            ("name", "Arbor Platform"),
            ("gl_revenue_account", "4000"),
            ("tax_category", "standard"),
            ("revenue_recognition", "ratable"),
        ],
        &[
            ("GBP", &[("model", "flat"), ("amount", "400")]),
            ("EUR", &[("model", "flat"), ("amount", "460")]),
            ("USD", &[("model", "flat"), ("amount", "500")]),
        ],
    )?;
    let tiers = "10 25\n50 20\n* 15";
    let seats = product(
        c,
        &[
            ("sku", "SEAT"),
            ("name", "User seats"),
            ("gl_revenue_account", "4010"),
            ("tax_category", "standard"),
            ("revenue_recognition", "ratable"),
        ],
        &[
            ("GBP", &[("model", "tiered"), ("tiers", tiers)]),
            ("EUR", &[("model", "tiered"), ("tiers", tiers)]),
            ("USD", &[("model", "volume"), ("tiers", tiers)]),
        ],
    )?;
    let api = product(
        c,
        &[
            ("sku", "API"),
            ("name", "API calls"),
            ("gl_revenue_account", "4020"),
            ("tax_category", "standard"),
            ("revenue_recognition", "point_in_time"),
        ],
        &[
            (
                "GBP",
                &[
                    ("model", "usage"),
                    ("unit_amount", "0.002"),
                    ("included", "10000"),
                    ("minimum_commit", "20"),
                ],
            ),
            (
                "EUR",
                &[
                    ("model", "usage"),
                    ("unit_amount", "0.0025"),
                    ("included", "10000"),
                ],
            ),
            (
                "USD",
                &[
                    ("model", "usage"),
                    ("unit_amount", "0.003"),
                    ("included", "10000"),
                ],
            ),
        ],
    )?;
    product(
        c,
        &[
            ("sku", "TRAIN"),
            ("name", "Training day"),
            ("gl_revenue_account", "4100"),
            ("tax_category", "reduced"),
            ("revenue_recognition", "point_in_time"),
        ],
        &[("GBP", &[("model", "per_unit"), ("unit_amount", "950")])],
    )?;
    let start = NaiveDate::from_ymd_opt(today.year(), today.month(), 1)
        .and_then(|d| d.checked_sub_months(Months::new(3)))
        .unwrap_or(today);
    let payers: Vec<(i64, String)> = accounts::table
        .filter(accounts::status.eq("active"))
        .order(accounts::id)
        .limit(6)
        .select((accounts::id, accounts::currency))
        .load(c)?;
    for (n, (account_id, currency)) in payers.iter().enumerate() {
        let (Some(plat), Some(seat), Some(api_price)) = (
            price_for(&platform, currency),
            price_for(&seats, currency),
            price_for(&api, currency),
        ) else {
            continue;
        };
        let qty = (12 + 7 * n).to_string();
        let form = fields(&[
            ("start_date", &start.to_string()),
            ("cycle", if n == 2 { "3" } else { "1" }),
            ("anchor_day", "1"),
            ("timing", "advance"),
            ("term_months", "12"),
            ("auto_renew", "yes"),
            ("collection_method", "send_invoice"),
            ("po_number", &format!("PO-{}", 4100 + n)),
            ("item0_price", &plat.to_string()),
            ("item1_price", &seat.to_string()),
            ("item1_quantity", &qty),
            ("item2_price", &api_price.to_string()),
        ]);
        let input = SubscriptionInput::parse(&form, today).map_err(AppError::Validation)?;
        let resolved = match subs::resolve_items(c, &input.items, currency)? {
            Ok(r) => r,
            Err(e) => return Err(AppError::Validation(e)),
        };
        let sub = subs::insert(c, *account_id, currency, &input, &resolved, None)?;
        let api_product: i64 = resolved.get(2).map_or(0, |r| r.product_id);
        for m in 0..3u32 {
            let Some(day) = start
                .checked_add_months(Months::new(m))
                .and_then(|d| d.checked_add_days(chrono::Days::new(14)))
            else {
                continue;
            };
            diesel::insert_into(usage_records::table)
                .values((
                    usage_records::subscription_id.eq(sub),
                    usage_records::product_id.eq(api_product),
                    usage_records::usage_date.eq(day),
                    usage_records::quantity.eq(Decimal::from(
                        9_000 + 4_000 * i64::from(m) + 1_500 * i64::try_from(n).unwrap_or(0),
                    )),
                    usage_records::external_id.eq(format!("demo-{sub}-{m}")),
                    usage_records::source.eq("api"),
                ))
                .execute(c)?;
        }
    }
    let outcome = billrun::bill_batch(c, None, 0, today, None)?;
    let this_month = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
    let past: Vec<(i64, Option<NaiveDate>)> = invoices::table
        .filter(invoices::id.eq_any(&outcome.created))
        .filter(invoices::period_start.lt(this_month))
        .order(invoices::id)
        .select((invoices::id, invoices::period_start))
        .load(c)?;
    // Each month's invoices are issued on its first day, as that day's bill run would have,
    // so the older ones are overdue by now and dunning has something to do.
    let mut by_month: Vec<(NaiveDate, Vec<i64>)> = Vec::new();
    for (id, start) in past {
        let issued = start.unwrap_or(today);
        match by_month.iter_mut().find(|(d, _)| *d == issued) {
            Some((_, ids)) => ids.push(id),
            None => by_month.push((issued, vec![id])),
        }
    }
    by_month.sort_by_key(|(d, _)| *d);
    for (issued, ids) in &by_month {
        finalize::finalize(c, actor, links, ids, *issued)?;
    }
    // The oldest invoices of the first accounts are paid by wire, one of them only in part.
    let paying: Vec<(i64, String)> = invoices::table
        .filter(invoices::status.eq("open"))
        .select((invoices::bill_to_account_id, invoices::currency))
        .distinct()
        .order(invoices::bill_to_account_id)
        .limit(3)
        .load(c)?;
    for (n, (account_id, currency)) in paying.iter().enumerate() {
        let open = crate::payments::repo::open_invoices(c, *account_id, currency)?;
        let Some(first) = open.iter().min_by_key(|o| o.id) else {
            continue;
        };
        let amount = if n == 1 {
            (first.due / Decimal::TWO).round_dp(2)
        } else {
            first.due
        };
        let id = crate::payments::repo::insert(
            c,
            &crate::payments::repo::NewPayment {
                account_id: *account_id,
                method: "wire",
                currency,
                amount,
                received_on: first.due_date.unwrap_or(today).min(today),
                reference: &format!("BANK-{}", 7700 + n),
                created_by: actor.user_id,
            },
        )?;
        crate::payments::repo::apply(c, id, &[(first.id, amount)], actor.user_id)?;
    }
    Ok(())
}
