//! Subscription queries, inside a tenant-scoped transaction.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::{prelude::*, sql_types::BigInt};
use rust_decimal::Decimal;

use super::{
    charges::{ItemTerms, Plan, Timing},
    domain::{ItemInput, SubscriptionInput},
    periods::Schedule,
};
use crate::{
    catalog::repo as catalog,
    db::schema::tenant::{
        products, subscription_amendments as amendments, subscription_items as items,
        subscriptions, usage_records,
    },
    error::{AppError, AppResult, FieldErrors},
    invoicing::domain::TaxCategory,
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = subscriptions)]
pub struct Subscription {
    pub id: i64,
    pub number: String,
    pub account_id: i64,
    pub currency: String,
    pub status: String,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub trial_end: Option<NaiveDate>,
    pub interval_months: i32,
    pub anchor_day: i32,
    pub timing: String,
    pub term_months: i32,
    pub auto_renew: bool,
    pub po_number: Option<String>,
    pub collection_method: String,
    pub terms_kind: Option<String>,
    pub terms_days: Option<i32>,
    pub billed_through: NaiveDate,
    pub cancel_reason: Option<String>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub external_ref: Option<String>,
    pub notes: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Subscription {
    pub fn plan(&self) -> Plan {
        Plan {
            schedule: Schedule {
                start: self.start_date,
                anchor_day: u32::try_from(self.anchor_day).unwrap_or(1),
                interval_months: u32::try_from(self.interval_months).unwrap_or(1),
            },
            end: self.end_date,
            trial_end: self.trial_end,
            timing: Timing::parse(&self.timing).unwrap_or(Timing::Advance),
        }
    }

    pub fn cycle_label(&self) -> String {
        match self.interval_months {
            1 => "Monthly".into(),
            3 => "Quarterly".into(),
            6 => "Semi-annual".into(),
            12 => "Annual".into(),
            n => format!("Every {n} months"),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = items)]
pub struct ItemRow {
    pub id: i64,
    pub subscription_id: i64,
    pub product_id: i64,
    pub price_id: i64,
    pub price_version_id: i64,
    pub quantity: Decimal,
    pub discount_percent: Option<Decimal>,
    pub discount_amount: Option<Decimal>,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub replaces_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = amendments)]
pub struct Amendment {
    pub id: i64,
    pub subscription_id: i64,
    pub kind: String,
    pub effective_date: NaiveDate,
    pub summary: String,
    pub credit: Decimal,
    pub charge: Decimal,
    pub invoice_id: Option<i64>,
    pub actor_user_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

pub fn get(conn: &mut PgConnection, id: i64) -> AppResult<Subscription> {
    subscriptions::table
        .find(id)
        .select(Subscription::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

/// Locks the subscription row: amendments and the bill run serialise on it.
pub fn lock(conn: &mut PgConnection, id: i64) -> AppResult<Subscription> {
    subscriptions::table
        .find(id)
        .select(Subscription::as_select())
        .for_update()
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

pub fn for_account(conn: &mut PgConnection, account_id: i64) -> AppResult<Vec<Subscription>> {
    Ok(subscriptions::table
        .filter(subscriptions::account_id.eq(account_id))
        .order(subscriptions::id.desc())
        .select(Subscription::as_select())
        .load(conn)?)
}

pub fn items_of(conn: &mut PgConnection, sub_id: i64) -> AppResult<Vec<ItemRow>> {
    Ok(items::table
        .filter(items::subscription_id.eq(sub_id))
        .order((items::start_date, items::id))
        .select(ItemRow::as_select())
        .load(conn)?)
}

pub fn amendments_of(conn: &mut PgConnection, sub_id: i64) -> AppResult<Vec<Amendment>> {
    Ok(amendments::table
        .filter(amendments::subscription_id.eq(sub_id))
        .order(amendments::id.desc())
        .select(Amendment::as_select())
        .load(conn)?)
}

/// Item rows of many subscriptions with their product and price version, ready to charge.
pub fn item_terms(
    conn: &mut PgConnection,
    sub_ids: &[i64],
) -> AppResult<HashMap<i64, Vec<ItemTerms>>> {
    let rows: Vec<(ItemRow, String, String, String)> = items::table
        .inner_join(products::table)
        .filter(items::subscription_id.eq_any(sub_ids))
        .order((items::subscription_id, items::start_date, items::id))
        .select((
            ItemRow::as_select(),
            products::name,
            products::tax_category,
            products::gl_revenue_account,
        ))
        .load(conn)?;
    let mut version_ids: Vec<i64> = rows.iter().map(|r| r.0.price_version_id).collect();
    version_ids.sort_unstable();
    version_ids.dedup();
    let versions: HashMap<i64, _> = catalog::versions_by_id(conn, &version_ids)?
        .into_iter()
        .map(|v| (v.id, v.terms))
        .collect();
    let mut out: HashMap<i64, Vec<ItemTerms>> = HashMap::new();
    for (row, name, tax, gl) in rows {
        let Some(terms) = versions.get(&row.price_version_id) else {
            continue;
        };
        out.entry(row.subscription_id).or_default().push(ItemTerms {
            item_id: row.id,
            product_id: row.product_id,
            price_version_id: row.price_version_id,
            product_name: name,
            quantity: row.quantity,
            discount_percent: row.discount_percent,
            discount_amount: row.discount_amount,
            start: row.start_date,
            end: row.end_date,
            terms: terms.clone(),
            tax_category: TaxCategory::parse(&tax).unwrap_or(TaxCategory::Standard),
            gl_account: gl,
        });
    }
    Ok(out)
}

/// A price a form item may use: active, on an active product, in the subscription's currency.
pub struct Sellable {
    pub price_id: i64,
    pub product_id: i64,
    pub version_id: i64,
}

pub fn sellable(
    conn: &mut PgConnection,
    price_id: i64,
    currency: &str,
) -> Result<Sellable, String> {
    let price =
        catalog::get_price(conn, price_id).map_err(|_| "That price does not exist.".to_owned())?;
    let product = catalog::get_product(conn, price.product_id)
        .map_err(|_| "That price has no product.".to_owned())?;
    if price.status != "active" || product.status != "active" {
        return Err(format!(
            "{} · {} is archived and cannot be sold.",
            product.name, price.nickname
        ));
    }
    if price.currency != currency {
        return Err(format!(
            "{} · {} is priced in {}, but this account is billed in {currency}.",
            product.name, price.nickname, price.currency
        ));
    }
    let version_id = price
        .current_version_id
        .ok_or_else(|| "That price has no version yet.".to_owned())?;
    Ok(Sellable {
        price_id,
        product_id: product.id,
        version_id,
    })
}

/// Resolves every form item, reporting each bad one against its field.
pub fn resolve_items(
    conn: &mut PgConnection,
    inputs: &[ItemInput],
    currency: &str,
) -> AppResult<Result<Vec<Sellable>, FieldErrors>> {
    let mut e = FieldErrors::default();
    let mut out = Vec::new();
    for (i, item) in inputs.iter().enumerate() {
        match sellable(conn, item.price_id, currency) {
            Ok(s) => out.push(s),
            Err(m) => e.add(&format!("item{i}_price"), m),
        }
    }
    Ok(if e.is_empty() { Ok(out) } else { Err(e) })
}

fn next_number(conn: &mut PgConnection) -> AppResult<String> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let n: N =
        diesel::sql_query("SELECT nextval('subscription_number_seq') AS n").get_result(conn)?;
    Ok(format!("SUB-{:06}", n.n))
}

pub fn insert(
    conn: &mut PgConnection,
    account_id: i64,
    currency: &str,
    s: &SubscriptionInput,
    resolved: &[Sellable],
    external_ref: Option<&str>,
) -> AppResult<i64> {
    let number = next_number(conn)?;
    let id: i64 = diesel::insert_into(subscriptions::table)
        .values((
            subscriptions::number.eq(&number),
            subscriptions::account_id.eq(account_id),
            subscriptions::currency.eq(currency),
            subscriptions::start_date.eq(s.start_date),
            subscriptions::end_date.eq(s.end_date),
            subscriptions::trial_end.eq(s.trial_end),
            subscriptions::interval_months.eq(i32::try_from(s.interval_months).unwrap_or(1)),
            subscriptions::anchor_day.eq(i32::try_from(s.anchor_day).unwrap_or(1)),
            subscriptions::timing.eq(s.timing.as_str()),
            subscriptions::term_months.eq(s.term_months),
            subscriptions::auto_renew.eq(s.auto_renew),
            subscriptions::po_number.eq(&s.po_number),
            subscriptions::collection_method.eq(s.collection.as_str()),
            subscriptions::terms_kind.eq(s.terms.map(|t| t.0.as_str())),
            subscriptions::terms_days.eq(s.terms.map(|t| t.1)),
            subscriptions::billed_through.eq(s.start_date),
            subscriptions::external_ref.eq(external_ref),
            subscriptions::notes.eq(&s.notes),
        ))
        .returning(subscriptions::id)
        .get_result(conn)?;
    for (input, r) in s.items.iter().zip(resolved) {
        insert_item(conn, id, r, input, s.start_date, None)?;
    }
    Ok(id)
}

pub fn insert_item(
    conn: &mut PgConnection,
    sub_id: i64,
    r: &Sellable,
    input: &ItemInput,
    start: NaiveDate,
    replaces: Option<i64>,
) -> AppResult<i64> {
    Ok(diesel::insert_into(items::table)
        .values((
            items::subscription_id.eq(sub_id),
            items::product_id.eq(r.product_id),
            items::price_id.eq(r.price_id),
            items::price_version_id.eq(r.version_id),
            items::quantity.eq(input.quantity),
            items::discount_percent.eq(input.discount_percent),
            items::discount_amount.eq(input.discount_amount),
            items::start_date.eq(start),
            items::end_date.eq(input.end_date),
            items::replaces_id.eq(replaces),
        ))
        .returning(items::id)
        .get_result(conn)?)
}

pub fn end_item(conn: &mut PgConnection, item_id: i64, last_day: NaiveDate) -> AppResult<()> {
    diesel::update(items::table.find(item_id))
        .set(items::end_date.eq(last_day))
        .execute(conn)?;
    Ok(())
}

pub struct NewAmendment<'a> {
    pub sub_id: i64,
    pub kind: &'a str,
    pub effective: NaiveDate,
    pub summary: String,
    pub credit: Decimal,
    pub charge: Decimal,
    pub invoice_id: Option<i64>,
    pub actor: Option<i64>,
}

pub fn record_amendment(conn: &mut PgConnection, a: &NewAmendment<'_>) -> AppResult<i64> {
    Ok(diesel::insert_into(amendments::table)
        .values((
            amendments::subscription_id.eq(a.sub_id),
            amendments::kind.eq(a.kind),
            amendments::effective_date.eq(a.effective),
            amendments::summary.eq(&a.summary),
            amendments::credit.eq(a.credit),
            amendments::charge.eq(a.charge),
            amendments::invoice_id.eq(a.invoice_id),
            amendments::actor_user_id.eq(a.actor),
        ))
        .returning(amendments::id)
        .get_result(conn)?)
}

/// Usage of many subscriptions between two dates, as (subscription, product, date, quantity).
pub fn usage_between(
    conn: &mut PgConnection,
    sub_ids: &[i64],
    from: NaiveDate,
    to_exclusive: NaiveDate,
) -> AppResult<Vec<(i64, i64, NaiveDate, Decimal)>> {
    Ok(usage_records::table
        .filter(usage_records::subscription_id.eq_any(sub_ids))
        .filter(usage_records::usage_date.ge(from))
        .filter(usage_records::usage_date.lt(to_exclusive))
        .select((
            usage_records::subscription_id,
            usage_records::product_id,
            usage_records::usage_date,
            usage_records::quantity,
        ))
        .load(conn)?)
}
