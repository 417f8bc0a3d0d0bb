//! Planner statistics that keep up with a burst of writes into a young tenant.
//!
//! A new tenant's tables start empty and unanalysed. A burst (a CRM backlog, an import) then
//! runs the same statements thousands of times on pooled connections, whose prepared plans
//! were made while the tables were empty: scans of the whole table that stay cached until the
//! table is next analysed, which autovacuum gets to late when many schemas share a database.
//! So after such a batch, each table that has more than doubled since it was last analysed
//! (and by at least [`MIN_CHANGES`] rows) is analysed at once: that invalidates the stale
//! plans, and by the doubling rule it happens only a few times in a table's life.

use diesel::{
    sql_query,
    sql_types::{BigInt, Text},
    PgConnection, QueryableByName, RunQueryDsl,
};

use crate::error::AppResult;

/// Fewer changed rows than this never trigger an analyse of their own.
pub const MIN_CHANGES: i64 = 500;

#[derive(QueryableByName)]
struct Stale {
    #[diesel(sql_type = Text)]
    relname: String,
}

/// Analyses those of `tables` (in the current tenant schema) that have outgrown their
/// statistics; returns their names. `tables` are the caller's own constants, never input.
pub fn refresh_if_outgrown(conn: &mut PgConnection, tables: &[&str]) -> AppResult<Vec<String>> {
    let stale: Vec<Stale> = sql_query(
        "SELECT c.relname::text AS relname FROM pg_class c \
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($1) \
           AND pg_stat_get_mod_since_analyze(c.oid) >= $2 \
           AND pg_stat_get_mod_since_analyze(c.oid) > greatest(c.reltuples, 0)",
    )
    .bind::<diesel::sql_types::Array<Text>, _>(tables)
    .bind::<BigInt, _>(MIN_CHANGES)
    .load(conn)?;
    let mut done = Vec::new();
    for s in stale {
        // Only names from `tables`, matched against the catalog above, reach this statement.
        if tables.contains(&s.relname.as_str()) {
            sql_query(format!("ANALYZE {}", s.relname)).execute(conn)?;
            done.push(s.relname);
        }
    }
    Ok(done)
}
