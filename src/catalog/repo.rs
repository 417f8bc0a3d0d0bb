//! Catalog queries, inside a tenant-scoped transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::Value;

use super::{
    domain::{PriceInput, PriceTerms, ProductInput},
    pricing::PriceModel,
};
use crate::{
    db::schema::tenant::{price_versions, prices, products},
    error::{AppError, AppResult},
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = products)]
pub struct Product {
    pub id: i64,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub gl_revenue_account: String,
    pub tax_category: String,
    pub revenue_recognition: String,
    pub status: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = prices)]
pub struct Price {
    pub id: i64,
    pub product_id: i64,
    pub nickname: String,
    pub currency: String,
    pub status: String,
    pub current_version_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = price_versions)]
pub struct VersionRow {
    pub id: i64,
    pub price_id: i64,
    pub version: i32,
    pub model_kind: String,
    pub model: Value,
    pub interval_months: i32,
    pub minimum_commit: Option<Decimal>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<i64>,
}

/// A price version with its model decoded.
#[derive(Debug, Clone)]
pub struct PriceVersion {
    pub id: i64,
    pub price_id: i64,
    pub version: i32,
    pub terms: PriceTerms,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<VersionRow> for PriceVersion {
    type Error = AppError;
    fn try_from(r: VersionRow) -> AppResult<Self> {
        let model: PriceModel = serde_json::from_value(r.model).map_err(|e| {
            AppError::internal(anyhow::anyhow!(
                "price version {} has a bad model: {e}",
                r.id
            ))
        })?;
        Ok(Self {
            id: r.id,
            price_id: r.price_id,
            version: r.version,
            terms: PriceTerms {
                model,
                interval_months: r.interval_months,
                minimum_commit: r.minimum_commit,
            },
            created_at: r.created_at,
        })
    }
}

/// A price with its current version, for lists and pickers.
#[derive(Debug, Clone)]
pub struct PriceWithCurrent {
    pub price: Price,
    pub current: Option<PriceVersion>,
}

pub fn list_products(conn: &mut PgConnection, include_archived: bool) -> AppResult<Vec<Product>> {
    let mut q = products::table.select(Product::as_select()).into_boxed();
    if !include_archived {
        q = q.filter(products::status.eq("active"));
    }
    Ok(q.order((products::name, products::id)).load(conn)?)
}

pub fn get_product(conn: &mut PgConnection, id: i64) -> AppResult<Product> {
    products::table
        .find(id)
        .select(Product::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

pub fn sku_taken(conn: &mut PgConnection, sku: &str, except: Option<i64>) -> AppResult<bool> {
    let n: i64 = products::table
        .filter(products::sku.eq(sku))
        .filter(products::id.ne(except.unwrap_or(0)))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub fn insert_product(conn: &mut PgConnection, p: &ProductInput) -> AppResult<i64> {
    Ok(diesel::insert_into(products::table)
        .values((
            products::sku.eq(&p.sku),
            products::name.eq(&p.name),
            products::description.eq(&p.description),
            products::gl_revenue_account.eq(&p.gl_revenue_account),
            products::tax_category.eq(p.tax_category.as_str()),
            products::revenue_recognition.eq(p.recognition.as_str()),
        ))
        .returning(products::id)
        .get_result(conn)?)
}

/// Saves if `version` is still current; false when someone else saved first.
pub fn update_product(
    conn: &mut PgConnection,
    id: i64,
    version: i32,
    p: &ProductInput,
    status: &str,
) -> AppResult<bool> {
    let n = diesel::update(
        products::table
            .find(id)
            .filter(products::version.eq(version)),
    )
    .set((
        products::sku.eq(&p.sku),
        products::name.eq(&p.name),
        products::description.eq(&p.description),
        products::gl_revenue_account.eq(&p.gl_revenue_account),
        products::tax_category.eq(p.tax_category.as_str()),
        products::revenue_recognition.eq(p.recognition.as_str()),
        products::status.eq(status),
        products::version.eq(version + 1),
        products::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

fn model_json(m: &PriceModel) -> AppResult<Value> {
    serde_json::to_value(m).map_err(AppError::internal)
}

/// Creates a price with its first version.
pub fn insert_price(
    conn: &mut PgConnection,
    product_id: i64,
    p: &PriceInput,
    actor: Option<i64>,
) -> AppResult<i64> {
    let price_id: i64 = diesel::insert_into(prices::table)
        .values((
            prices::product_id.eq(product_id),
            prices::nickname.eq(&p.nickname),
            prices::currency.eq(p.currency.code()),
        ))
        .returning(prices::id)
        .get_result(conn)?;
    add_version(conn, price_id, &p.terms, actor)?;
    Ok(price_id)
}

/// Adds the next version of a price and makes it current. Existing subscription items keep
/// the version they reference.
pub fn add_version(
    conn: &mut PgConnection,
    price_id: i64,
    t: &PriceTerms,
    actor: Option<i64>,
) -> AppResult<PriceVersion> {
    // Locking the price serialises concurrent edits so version numbers stay unique and dense.
    let _: i64 = prices::table
        .find(price_id)
        .select(prices::id)
        .for_update()
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)?;
    let last: Option<i32> = price_versions::table
        .filter(price_versions::price_id.eq(price_id))
        .select(diesel::dsl::max(price_versions::version))
        .first(conn)?;
    let row: VersionRow = diesel::insert_into(price_versions::table)
        .values((
            price_versions::price_id.eq(price_id),
            price_versions::version.eq(last.unwrap_or(0) + 1),
            price_versions::model_kind.eq(t.model.kind()),
            price_versions::model.eq(model_json(&t.model)?),
            price_versions::interval_months.eq(t.interval_months),
            price_versions::minimum_commit.eq(t.minimum_commit),
            price_versions::created_by.eq(actor),
        ))
        .returning(VersionRow::as_returning())
        .get_result(conn)?;
    diesel::update(prices::table.find(price_id))
        .set(prices::current_version_id.eq(row.id))
        .execute(conn)?;
    row.try_into()
}

pub fn get_price(conn: &mut PgConnection, id: i64) -> AppResult<Price> {
    prices::table
        .find(id)
        .select(Price::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

pub fn set_price_status(conn: &mut PgConnection, id: i64, status: &str) -> AppResult<()> {
    diesel::update(prices::table.find(id))
        .set(prices::status.eq(status))
        .execute(conn)?;
    Ok(())
}

pub fn versions_of(conn: &mut PgConnection, price_id: i64) -> AppResult<Vec<PriceVersion>> {
    price_versions::table
        .filter(price_versions::price_id.eq(price_id))
        .order(price_versions::version.desc())
        .select(VersionRow::as_select())
        .load(conn)?
        .into_iter()
        .map(PriceVersion::try_from)
        .collect()
}

pub fn version(conn: &mut PgConnection, id: i64) -> AppResult<PriceVersion> {
    price_versions::table
        .find(id)
        .select(VersionRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)?
        .try_into()
}

pub fn versions_by_id(conn: &mut PgConnection, ids: &[i64]) -> AppResult<Vec<PriceVersion>> {
    price_versions::table
        .filter(price_versions::id.eq_any(ids))
        .select(VersionRow::as_select())
        .load(conn)?
        .into_iter()
        .map(PriceVersion::try_from)
        .collect()
}

/// Prices of a product (or of every product), each with its current version.
pub fn prices_with_current(
    conn: &mut PgConnection,
    product_id: Option<i64>,
    currency: Option<&str>,
    active_only: bool,
) -> AppResult<Vec<PriceWithCurrent>> {
    let mut q = prices::table.select(Price::as_select()).into_boxed();
    if let Some(p) = product_id {
        q = q.filter(prices::product_id.eq(p));
    }
    if let Some(c) = currency {
        q = q.filter(prices::currency.eq(c.to_owned()));
    }
    if active_only {
        q = q.filter(prices::status.eq("active"));
    }
    let list: Vec<Price> = q.order((prices::product_id, prices::id)).load(conn)?;
    let ids: Vec<i64> = list.iter().filter_map(|p| p.current_version_id).collect();
    let versions = versions_by_id(conn, &ids)?;
    Ok(list
        .into_iter()
        .map(|price| {
            let current = versions
                .iter()
                .find(|v| Some(v.id) == price.current_version_id)
                .cloned();
            PriceWithCurrent { price, current }
        })
        .collect())
}
