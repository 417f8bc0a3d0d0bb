//! Account queries. Every function runs inside a tenant-scoped transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::{
    dsl::sql,
    prelude::*,
    sql_types::{BigInt, Text},
    PgConnection,
};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use super::{
    dedupe::{self, Probe},
    domain::{Address, CustomFieldDef},
};
pub use super::{
    hierarchy::{
        ancestors, bill_to, children_count, descendants, family, merge_chain_end, would_cycle,
    },
    repo_dedupe::{dedupe_index_all, dedupe_index_for, duplicates_of},
};
use crate::{
    db::schema::tenant::{account_external_ids as ext, accounts, custom_field_defs},
    error::{AppError, AppResult},
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = accounts)]
pub struct Account {
    pub id: i64,
    pub account_number: String,
    pub legal_name: String,
    pub display_name: String,
    pub name_key: String,
    pub tax_id: Option<String>,
    pub tax_id_key: Option<String>,
    pub domain: Option<String>,
    pub tax_mode: String,
    pub tax_rate: Option<Decimal>,
    pub tax_exempt_certificate: Option<String>,
    pub currency: String,
    pub terms_kind: String,
    pub terms_days: i32,
    pub invoice_delivery: String,
    pub billing_address: Value,
    pub shipping_address: Value,
    pub po_number: Option<String>,
    pub owner_user_id: Option<i64>,
    pub csm_user_id: Option<i64>,
    pub status: String,
    pub parent_id: Option<i64>,
    pub bill_to_parent: bool,
    pub merged_into_id: Option<i64>,
    pub notes: String,
    pub custom_fields: Value,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Account {
    pub fn billing(&self) -> Address {
        serde_json::from_value(self.billing_address.clone()).unwrap_or_default()
    }

    pub fn shipping(&self) -> Address {
        serde_json::from_value(self.shipping_address.clone()).unwrap_or_default()
    }

    pub fn custom(&self) -> BTreeMap<String, String> {
        serde_json::from_value(self.custom_fields.clone()).unwrap_or_default()
    }

    /// The writable state, as edited and as recorded in the audit log.
    pub fn data(&self, crm_ids: Vec<(String, String)>) -> AccountData {
        AccountData {
            account_number: self.account_number.clone(),
            legal_name: self.legal_name.clone(),
            display_name: self.display_name.clone(),
            tax_id: self.tax_id.clone(),
            domain: self.domain.clone(),
            tax_mode: self.tax_mode.clone(),
            tax_rate: self.tax_rate,
            tax_exempt_certificate: self.tax_exempt_certificate.clone(),
            currency: self.currency.clone(),
            terms_kind: self.terms_kind.clone(),
            terms_days: self.terms_days,
            invoice_delivery: self.invoice_delivery.clone(),
            billing_address: self.billing(),
            shipping_address: self.shipping(),
            po_number: self.po_number.clone(),
            owner_user_id: self.owner_user_id,
            csm_user_id: self.csm_user_id,
            status: self.status.clone(),
            parent_id: self.parent_id,
            bill_to_parent: self.bill_to_parent,
            notes: self.notes.clone(),
            custom_fields: self.custom(),
            crm_ids,
        }
    }
}

/// Everything a person can set on an account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountData {
    pub account_number: String,
    pub legal_name: String,
    pub display_name: String,
    pub tax_id: Option<String>,
    pub domain: Option<String>,
    pub tax_mode: String,
    pub tax_rate: Option<Decimal>,
    pub tax_exempt_certificate: Option<String>,
    pub currency: String,
    pub terms_kind: String,
    pub terms_days: i32,
    pub invoice_delivery: String,
    pub billing_address: Address,
    pub shipping_address: Address,
    pub po_number: Option<String>,
    pub owner_user_id: Option<i64>,
    pub csm_user_id: Option<i64>,
    pub status: String,
    pub parent_id: Option<i64>,
    pub bill_to_parent: bool,
    pub notes: String,
    pub custom_fields: BTreeMap<String, String>,
    pub crm_ids: Vec<(String, String)>,
}

impl AccountData {
    pub fn audit_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "crm_ids".into(),
                Value::String(super::domain::format_crm_ids(&self.crm_ids)),
            );
        }
        v
    }

    pub fn probe(&self) -> Probe {
        Probe::new(
            &self.legal_name,
            self.tax_id.as_deref(),
            self.domain.as_deref(),
            &self.crm_ids,
        )
    }
}

/// Which accounts the current member may see: sales only their own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Visibility {
    pub owner_only: Option<i64>,
}

macro_rules! row {
    ($d:expr) => {{
        let d = $d;
        (
            accounts::account_number.eq(d.account_number.clone()),
            accounts::legal_name.eq(d.legal_name.clone()),
            accounts::display_name.eq(d.display_name.clone()),
            accounts::name_key.eq(dedupe::name_key(&d.legal_name)),
            accounts::tax_id.eq(d.tax_id.clone()),
            accounts::tax_id_key.eq(d.tax_id.as_deref().and_then(dedupe::tax_id_key)),
            accounts::domain.eq(d.domain.clone()),
            accounts::tax_mode.eq(d.tax_mode.clone()),
            accounts::tax_rate.eq(d.tax_rate),
            accounts::tax_exempt_certificate.eq(d.tax_exempt_certificate.clone()),
            accounts::currency.eq(d.currency.clone()),
            accounts::terms_kind.eq(d.terms_kind.clone()),
            accounts::terms_days.eq(d.terms_days),
            accounts::invoice_delivery.eq(d.invoice_delivery.clone()),
            accounts::billing_address
                .eq(serde_json::to_value(&d.billing_address).unwrap_or_default()),
            accounts::shipping_address
                .eq(serde_json::to_value(&d.shipping_address).unwrap_or_default()),
            accounts::po_number.eq(d.po_number.clone()),
            accounts::owner_user_id.eq(d.owner_user_id),
            accounts::csm_user_id.eq(d.csm_user_id),
            accounts::status.eq(d.status.clone()),
            accounts::parent_id.eq(d.parent_id),
            accounts::bill_to_parent.eq(d.bill_to_parent),
            accounts::notes.eq(d.notes.clone()),
            accounts::custom_fields.eq(serde_json::to_value(&d.custom_fields).unwrap_or_default()),
        )
    }};
}

/// The next free generated account number (`ACC-000042`).
pub fn next_number(conn: &mut PgConnection) -> AppResult<String> {
    loop {
        let n: i64 =
            diesel::select(sql::<BigInt>("nextval('account_number_seq')")).get_result(conn)?;
        let candidate = format!("ACC-{n:06}");
        if id_by_number(conn, &candidate)?.is_none() {
            return Ok(candidate);
        }
    }
}

pub fn insert(conn: &mut PgConnection, d: &AccountData) -> AppResult<i64> {
    let id = diesel::insert_into(accounts::table)
        .values(row!(d))
        .returning(accounts::id)
        .get_result(conn)?;
    set_external_ids(conn, id, &d.crm_ids)?;
    Ok(id)
}

/// Writes `d` if the account is still at `version`; `Ok(false)` when someone else changed it.
pub fn update(conn: &mut PgConnection, id: i64, version: i32, d: &AccountData) -> AppResult<bool> {
    let n = diesel::update(
        accounts::table
            .filter(accounts::id.eq(id))
            .filter(accounts::version.eq(version)),
    )
    .set((
        row!(d),
        accounts::version.eq(version + 1),
        accounts::updated_at.eq(Utc::now()),
    ))
    .execute(conn)?;
    if n == 0 {
        return Ok(false);
    }
    set_external_ids(conn, id, &d.crm_ids)?;
    Ok(true)
}

pub fn get(conn: &mut PgConnection, id: i64) -> AppResult<Option<Account>> {
    Ok(accounts::table
        .find(id)
        .select(Account::as_select())
        .first(conn)
        .optional()?)
}

/// An account the member may see, or 404.
pub fn get_visible(conn: &mut PgConnection, id: i64, vis: Visibility) -> AppResult<Account> {
    let a = get(conn, id)?.ok_or(AppError::NotFound)?;
    match vis.owner_only {
        Some(uid) if a.owner_user_id != Some(uid) => Err(AppError::NotFound),
        _ => Ok(a),
    }
}

pub fn id_by_number(conn: &mut PgConnection, number: &str) -> AppResult<Option<i64>> {
    Ok(accounts::table
        .filter(accounts::account_number.eq(number))
        .select(accounts::id)
        .first(conn)
        .optional()?)
}

pub fn external_ids(conn: &mut PgConnection, id: i64) -> AppResult<Vec<(String, String)>> {
    Ok(ext::table
        .filter(ext::account_id.eq(id))
        .select((ext::system, ext::external_id))
        .order(ext::id)
        .load(conn)?)
}

/// The account holding a CRM id.
pub fn by_external_id(conn: &mut PgConnection, system: &str, id: &str) -> AppResult<Option<i64>> {
    Ok(ext::table
        .filter(ext::system.eq(system))
        .filter(ext::external_id.eq(id))
        .select(ext::account_id)
        .first(conn)
        .optional()?)
}

/// Records a CRM id on an account (kept if it is already there).
pub fn add_external_id(
    conn: &mut PgConnection,
    account_id: i64,
    system: &str,
    id: &str,
) -> AppResult<()> {
    diesel::insert_into(ext::table)
        .values((
            ext::account_id.eq(account_id),
            ext::system.eq(system),
            ext::external_id.eq(id),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(())
}

/// The account already holding a CRM id, if any other than `except`.
pub fn holder_of_external_id(
    conn: &mut PgConnection,
    system: &str,
    id: &str,
    except: Option<i64>,
) -> AppResult<Option<String>> {
    let mut q = ext::table
        .inner_join(accounts::table)
        .filter(ext::system.eq(system))
        .filter(ext::external_id.eq(id))
        .select(accounts::account_number)
        .into_boxed();
    if let Some(e) = except {
        q = q.filter(accounts::id.ne(e));
    }
    Ok(q.first(conn).optional()?)
}

fn set_external_ids(conn: &mut PgConnection, id: i64, ids: &[(String, String)]) -> AppResult<()> {
    let current = external_ids(conn, id)?;
    if current == ids {
        return Ok(());
    }
    diesel::delete(ext::table.filter(ext::account_id.eq(id))).execute(conn)?;
    for (system, external_id) in ids {
        diesel::insert_into(ext::table)
            .values((
                ext::account_id.eq(id),
                ext::system.eq(system),
                ext::external_id.eq(external_id),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// `(id, number, display name, owner)` of an account.
pub type Summary = (i64, String, String, Option<i64>);

/// Short identification of accounts by id.
pub fn summaries(conn: &mut PgConnection, ids: &[i64]) -> AppResult<Vec<Summary>> {
    Ok(accounts::table
        .filter(accounts::id.eq_any(ids))
        .select((
            accounts::id,
            accounts::account_number,
            accounts::display_name,
            accounts::owner_user_id,
        ))
        .load(conn)?)
}

pub fn custom_field_defs(conn: &mut PgConnection) -> AppResult<Vec<CustomFieldDef>> {
    let rows: Vec<(i64, String, String, String, Vec<String>, bool)> = custom_field_defs::table
        .filter(custom_field_defs::archived.eq(false))
        .order((custom_field_defs::position, custom_field_defs::id))
        .select((
            custom_field_defs::id,
            custom_field_defs::key,
            custom_field_defs::label,
            custom_field_defs::kind,
            custom_field_defs::choices,
            custom_field_defs::required,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, key, label, kind, choices, required)| CustomFieldDef {
            id,
            key,
            label,
            kind,
            choices,
            required,
        })
        .collect())
}

/// Filters, sort and page of the account list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub q: String,
    pub owner: Option<i64>,
    pub status: Option<String>,
    pub currency: Option<String>,
    pub parent: Option<i64>,
    pub sort: String,
    pub desc: bool,
    pub page: i64,
    pub per_page: i64,
}

pub const SORTS: &[&str] = &["name", "number", "status", "currency", "created"];

type Boxed<'a> = accounts::BoxedQuery<'a, diesel::pg::Pg>;

fn filtered<'a>(q: &'a ListQuery, vis: Visibility) -> Boxed<'a> {
    let mut query = accounts::table.into_boxed();
    if let Some(uid) = vis.owner_only {
        query = query.filter(accounts::owner_user_id.eq(uid));
    }
    match q.status.as_deref() {
        Some("all") => {}
        Some(s) => query = query.filter(accounts::status.eq(s.to_owned())),
        None => query = query.filter(accounts::status.ne("merged")),
    }
    if let Some(o) = q.owner {
        query = query.filter(accounts::owner_user_id.eq(o));
    }
    if let Some(c) = &q.currency {
        query = query.filter(accounts::currency.eq(c.clone()));
    }
    if let Some(p) = q.parent {
        query = query.filter(accounts::parent_id.eq(p));
    }
    let term = q.q.trim();
    if !term.is_empty() {
        let pattern = format!("%{}%", like_escape(term));
        let key = format!("%{}%", like_escape(&dedupe::name_key(term)));
        query = query.filter(
            accounts::display_name
                .ilike(pattern.clone())
                .or(accounts::legal_name.ilike(pattern.clone()))
                .or(accounts::account_number.ilike(pattern.clone()))
                .or(accounts::tax_id.ilike(pattern.clone()))
                .or(accounts::domain.ilike(pattern))
                .or(accounts::name_key.like(key)),
        );
    }
    query
}

pub fn list(
    conn: &mut PgConnection,
    q: &ListQuery,
    vis: Visibility,
) -> AppResult<(Vec<Account>, i64)> {
    let total: i64 = filtered(q, vis).count().get_result(conn)?;
    let mut query = filtered(q, vis).select(Account::as_select());
    query = match (q.sort.as_str(), q.desc) {
        ("number", false) => query.order((accounts::account_number.asc(), accounts::id)),
        ("number", true) => query.order((accounts::account_number.desc(), accounts::id)),
        ("status", false) => query.order((accounts::status.asc(), accounts::id)),
        ("status", true) => query.order((accounts::status.desc(), accounts::id)),
        ("currency", false) => query.order((accounts::currency.asc(), accounts::id)),
        ("currency", true) => query.order((accounts::currency.desc(), accounts::id)),
        ("created", false) => query.order(accounts::id.asc()),
        ("created", true) => query.order(accounts::id.desc()),
        (_, false) => query.order((sql::<Text>("lower(display_name)").asc(), accounts::id)),
        (_, true) => query.order((sql::<Text>("lower(display_name)").desc(), accounts::id)),
    };
    if q.per_page > 0 {
        query = query.limit(q.per_page).offset(q.page.max(0) * q.per_page);
    }
    Ok((query.load(conn)?, total))
}
