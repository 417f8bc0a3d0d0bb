//! Dunning policy queries: policies, their versions and usage.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;

use super::domain::Policy;
use crate::{
    db::schema::tenant::{
        account_collections as ac, dunning_policies as policies,
        dunning_policy_versions as versions,
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
