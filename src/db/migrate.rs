//! Migrations: the `control` schema once, then each tenant schema with the embedded tenant set.
//!
//! Each run is one transaction holding a Postgres advisory lock (control: a global key;
//! tenants: one key per tenant), so several instances starting together, or `arbor migrate`
//! racing a provisioning request, apply each migration exactly once. Each tenant's newest
//! applied version is recorded in `control.tenants.schema_version`; the tenant middleware
//! refuses to serve a tenant that is behind.

use anyhow::{anyhow, Context};
use diesel::{
    pg::Pg,
    sql_types::{BigInt, Text},
    BoolExpressionMethods, Connection, ExpressionMethods, PgConnection, QueryDsl, RunQueryDsl,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{
    schema::control::tenants,
    scope::{set_local_search_path, TenantSchema},
};

pub const CONTROL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/control");
pub const TENANT_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/tenant");

/// Advisory lock namespace for migrations ("ARBR").
const LOCK_NAMESPACE: i32 = 0x4152_4252;
const CONTROL_LOCK: i32 = 0;

fn newest(m: &EmbeddedMigrations) -> anyhow::Result<String> {
    diesel::migration::MigrationSource::<Pg>::migrations(m)
        .map_err(|e| anyhow!("reading embedded migrations: {e}"))?
        .iter()
        .map(|m| m.name().version().to_string())
        .max()
        .ok_or_else(|| anyhow!("no migrations embedded"))
}

/// Version of the newest tenant migration this binary carries (computed once).
pub fn latest_tenant_version() -> anyhow::Result<String> {
    static LATEST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(v) = LATEST.get() {
        return Ok(v.clone());
    }
    let v = newest(&TENANT_MIGRATIONS)?;
    Ok(LATEST.get_or_init(|| v).clone())
}

fn lock(conn: &mut PgConnection, key: i32) -> diesel::QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind::<diesel::sql_types::Integer, _>(LOCK_NAMESPACE)
        .bind::<diesel::sql_types::Integer, _>(key)
        .execute(conn)
        .map(|_| ())
}

/// Applies pending control migrations; returns how many ran.
pub fn migrate_control(conn: &mut PgConnection) -> anyhow::Result<usize> {
    conn.transaction::<usize, anyhow::Error, _>(|c| {
        lock(c, CONTROL_LOCK)?;
        diesel::sql_query("CREATE SCHEMA IF NOT EXISTS control").execute(c)?;
        diesel::sql_query("SELECT set_config('search_path', 'control', true)").execute(c)?;
        let ran = c
            .run_pending_migrations(CONTROL_MIGRATIONS)
            .map_err(|e| anyhow!("control migrations failed: {e}"))?;
        Ok(ran.len())
    })
}

/// Whether the control schema is missing migrations this binary carries.
pub fn control_pending(conn: &mut PgConnection) -> anyhow::Result<usize> {
    conn.transaction::<usize, anyhow::Error, _>(|c| {
        diesel::sql_query("SELECT set_config('search_path', 'control', true)").execute(c)?;
        let pending = c
            .pending_migrations(CONTROL_MIGRATIONS)
            .map_err(|e| anyhow!("checking control migrations: {e}"))?;
        Ok(pending.len())
    })
}

/// Brings one tenant schema up to date. Must run inside the caller's transaction, which also
/// creates the schema when provisioning, so a failed migration leaves no half-made tenant.
pub fn migrate_tenant_in_tx(
    conn: &mut PgConnection,
    tenant_id: i64,
    schema: &TenantSchema,
) -> anyhow::Result<usize> {
    let key = i32::try_from(tenant_id % i64::from(i32::MAX)).context("tenant id")?;
    lock(conn, key.max(1))?;
    // The schema name is validated by TenantSchema, so interpolating it is safe.
    diesel::sql_query(format!("CREATE SCHEMA IF NOT EXISTS {}", schema.as_str())).execute(conn)?;
    set_local_search_path(conn, schema)?;
    let ran = conn
        .run_pending_migrations(TENANT_MIGRATIONS)
        .map_err(|e| anyhow!("tenant {schema} migrations failed: {e}"))?
        .len();
    let version = latest_tenant_version()?;
    diesel::update(tenants::table.filter(tenants::id.eq(tenant_id)))
        .set(tenants::schema_version.eq(version))
        .execute(conn)?;
    Ok(ran)
}

/// Summary of `migrate_all`.
#[derive(Debug, Default)]
pub struct MigrateReport {
    pub control: usize,
    pub tenants: usize,
    pub migrations_applied: usize,
}

/// Upgrades the control schema and then every tenant, one transaction per tenant.
pub fn migrate_all(conn: &mut PgConnection) -> anyhow::Result<MigrateReport> {
    let control = migrate_control(conn)?;
    let all: Vec<(i64, String)> = tenants::table
        .select((tenants::id, tenants::schema_name))
        .order(tenants::id)
        .load(conn)?;
    let mut report = MigrateReport {
        control,
        ..Default::default()
    };
    for (id, schema_name) in all {
        let schema = TenantSchema::parse(&schema_name).map_err(|e| anyhow!(e))?;
        let ran =
            conn.transaction::<usize, anyhow::Error, _>(|c| migrate_tenant_in_tx(c, id, &schema))?;
        report.tenants += 1;
        report.migrations_applied += ran;
    }
    Ok(report)
}

/// Number of tenants whose schema is behind this binary's migrations.
pub fn tenants_behind(conn: &mut PgConnection) -> anyhow::Result<i64> {
    let latest = latest_tenant_version()?;
    let n: i64 = tenants::table
        .filter(
            tenants::schema_version
                .is_null()
                .or(tenants::schema_version.ne(latest)),
        )
        .count()
        .get_result(conn)?;
    Ok(n)
}

#[derive(diesel::QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

/// Whether a schema exists (used by tests and `readyz`).
pub fn schema_exists(conn: &mut PgConnection, name: &str) -> anyhow::Result<bool> {
    let row: Exists = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS exists",
    )
    .bind::<Text, _>(name)
    .get_result(conn)?;
    Ok(row.exists)
}

/// Drops a tenant schema and its control row (tests and throwaway benchmark tenants).
pub fn drop_tenant(conn: &mut PgConnection, tenant_id: i64) -> anyhow::Result<()> {
    conn.transaction::<(), anyhow::Error, _>(|c| {
        let schema_name: String = tenants::table
            .filter(tenants::id.eq(tenant_id))
            .select(tenants::schema_name)
            .get_result(c)?;
        let schema = TenantSchema::parse(&schema_name).map_err(|e| anyhow!(e))?;
        diesel::sql_query(format!("DROP SCHEMA IF EXISTS {} CASCADE", schema.as_str()))
            .execute(c)?;
        diesel::sql_query("DELETE FROM control.tenants WHERE id = $1")
            .bind::<BigInt, _>(tenant_id)
            .execute(c)?;
        Ok(())
    })
}
