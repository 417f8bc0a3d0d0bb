//! Tenant scope: every unit of tenant work is one transaction whose first statement sets a
//! transaction-local search_path (`set_config(..., true)`, i.e. `SET LOCAL`), bound as a
//! parameter. When the transaction ends the connection returns to the empty search_path, so a
//! pooled connection can never carry one tenant's scope into another request.

use std::fmt;

use diesel::{sql_types::Text, Connection, OptionalExtension, PgConnection, RunQueryDsl};

use crate::error::{AppError, AppResult};

/// A validated tenant schema name (`t_` followed by 1–40 of `[a-z0-9_]`).
/// Only ever constructed from `control.tenants.schema_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSchema(String);

impl TenantSchema {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let rest = raw
            .strip_prefix("t_")
            .ok_or_else(|| format!("schema name {raw:?} must start with t_"))?;
        let ok = (1..=40).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "schema name {raw:?} is not of the form t_[a-z0-9_]{{1,40}}"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Sets the transaction-local search_path. Must be called inside a transaction.
pub fn set_local_search_path(conn: &mut PgConnection, schema: &TenantSchema) -> QueryResult<()> {
    diesel::sql_query("SELECT set_config('search_path', $1, true)")
        .bind::<Text, _>(schema.as_str())
        .execute(conn)
        .map(|_| ())
}

type QueryResult<T> = Result<T, diesel::result::Error>;

/// Runs `f` in a transaction scoped to `schema`. Errors roll everything back.
pub fn in_tenant<T, F>(conn: &mut PgConnection, schema: &TenantSchema, f: F) -> AppResult<T>
where
    F: FnOnce(&mut PgConnection) -> AppResult<T>,
{
    conn.transaction::<T, AppError, _>(|c| {
        set_local_search_path(c, schema)?;
        f(c)
    })
}

#[derive(diesel::QueryableByName)]
struct TenantIdRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

/// The id of the tenant whose schema this transaction is scoped to: for code deep in a tenant
/// transaction (the ledger) that must queue a job, which the control queue keys by tenant.
/// Reads only the current tenant's own row.
pub fn current_tenant_id(conn: &mut PgConnection) -> AppResult<i64> {
    let row: Option<TenantIdRow> =
        diesel::sql_query("SELECT id FROM control.tenants WHERE schema_name = current_schema()")
            .get_result(conn)
            .optional()?;
    row.map(|r| r.id).ok_or(AppError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_validated() {
        assert!(TenantSchema::parse("t_1").is_ok());
        assert!(TenantSchema::parse("t_abc_123").is_ok());
        for bad in [
            "", "t_", "public", "control", "t_A", "t_1;drop", "t_a-b", "x_1", "t_\"x\"",
        ] {
            assert!(TenantSchema::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(TenantSchema::parse(&format!("t_{}", "a".repeat(41))).is_err());
        assert!(TenantSchema::parse(&format!("t_{}", "a".repeat(40))).is_ok());
    }
}
