//! Database access: the r2d2 pool, local-cluster bootstrap, migrations and tenant scoping.
//!
//! Every pooled connection starts with an empty search_path, so a query against a tenant table
//! outside [`scope::in_tenant`] fails with "relation does not exist" instead of silently
//! reading the wrong tenant.

pub mod bootstrap;
pub mod migrate;
pub mod schema;
pub mod scope;
pub mod statistics;

use std::time::Duration;

use diesel::{
    r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection},
    Connection, PgConnection, RunQueryDsl,
};

pub type PgPool = Pool<ConnectionManager<PgConnection>>;
pub type PgPooled = PooledConnection<ConnectionManager<PgConnection>>;

#[derive(Debug)]
struct EmptySearchPath;

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for EmptySearchPath {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        // Fail closed: with no schema on the path, unscoped tenant queries cannot resolve.
        diesel::sql_query("SET search_path TO ''")
            .execute(conn)
            .map(|_| ())
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Builds the pool. `connection_timeout` is short so a database outage becomes a quick 503.
pub fn build_pool(url: &str, size: u32) -> anyhow::Result<PgPool> {
    let manager = ConnectionManager::<PgConnection>::new(url);
    let pool = Pool::builder()
        .max_size(size)
        .min_idle(Some(1.min(size)))
        .connection_timeout(Duration::from_secs(5))
        .test_on_check_out(true)
        .connection_customizer(Box::new(EmptySearchPath))
        .build(manager)?;
    Ok(pool)
}

/// A single unpooled connection (CLI commands and tests), with the same empty search_path.
pub fn connect(url: &str) -> anyhow::Result<PgConnection> {
    let mut conn = PgConnection::establish(url)?;
    diesel::sql_query("SET search_path TO ''").execute(&mut conn)?;
    Ok(conn)
}

/// Runs blocking diesel work on the blocking pool with a pooled connection.
pub async fn run<T, F>(pool: &PgPool, f: F) -> crate::error::AppResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection) -> crate::error::AppResult<T> + Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get()?;
        f(&mut conn)
    })
    .await?
}
