//! Finding a database to use.
//!
//! With `DATABASE_URL` set we use it (creating the database if the server lacks it). Without
//! it we look for the local PostgreSQL on 127.0.0.1:5432 or its Unix socket, start the
//! installed cluster if it is down, and create the `arbor` database. If PostgreSQL is not
//! installed the error says exactly what to install.

use std::{process::Command, thread, time::Duration};

use anyhow::{anyhow, bail, Context};
use diesel::{sql_types::Text, Connection, PgConnection, RunQueryDsl};

use crate::config::{redact_url, Config};

const SOCKET_DIR: &str = "/var/run/postgresql";

/// Returns a URL for a database that exists and accepts connections.
pub fn resolve_database_url(config: &Config) -> anyhow::Result<String> {
    if let Some(url) = &config.database_url {
        ensure_database(url)?;
        return Ok(url.clone());
    }
    let server = local_server_url()?;
    let url = with_database(&server, &config.database_name)?;
    ensure_database(&url)?;
    Ok(url)
}

/// Replaces the database name in a URL.
pub fn with_database(url: &str, db: &str) -> anyhow::Result<String> {
    let mut u = url::Url::parse(url).context("database URL is not a valid URL")?;
    u.set_path(&format!("/{db}"));
    Ok(u.to_string())
}

fn database_name(url: &str) -> anyhow::Result<String> {
    let u = url::Url::parse(url).context("database URL is not a valid URL")?;
    let name = u.path().trim_start_matches('/').to_owned();
    if name.is_empty() {
        bail!("database URL {} names no database", redact_url(url));
    }
    Ok(name)
}

/// Connects to the server's `postgres` database to create `url`'s database when missing.
pub fn ensure_database(url: &str) -> anyhow::Result<()> {
    match PgConnection::establish(url) {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("does not exist") => {
            let name = database_name(url)?;
            let admin_url = with_database(url, "postgres")?;
            let mut admin = PgConnection::establish(&admin_url)
                .with_context(|| format!("connecting to {}", redact_url(&admin_url)))?;
            create_database(&mut admin, &name)?;
            Ok(())
        }
        Err(e) => Err(anyhow!(e)).with_context(|| format!("connecting to {}", redact_url(url))),
    }
}

/// Creates a database; tolerates a concurrent creator.
pub fn create_database(admin: &mut PgConnection, name: &str) -> anyhow::Result<()> {
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        bail!("refusing to create database with unusual name {name:?}");
    }
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let exists: N = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(name)
        .get_result(admin)?;
    if exists.n == 0 {
        if let Err(e) = diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(admin) {
            if !e.to_string().contains("already exists") {
                return Err(e.into());
            }
        }
        tracing::info!(database = name, "created database");
    }
    Ok(())
}

/// Local cluster URLs to try. TLS is off on loopback: it protects nothing there, costs a
/// handshake per pooled connection, and libpq's OpenSSL state is torn down by an `atexit`
/// handler while r2d2's background threads may still be connecting, which aborted test
/// binaries at exit with "double free or corruption".
fn candidates() -> Vec<String> {
    let user = std::env::var("USER").unwrap_or_else(|_| "postgres".to_owned());
    vec![
        format!("postgres://postgres@localhost/postgres?host={SOCKET_DIR}"),
        "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".to_owned(),
        format!("postgres://{user}@127.0.0.1:5432/postgres?sslmode=disable"),
        format!("postgres://{user}@localhost/postgres?host={SOCKET_DIR}"),
    ]
}

fn try_candidates() -> Result<String, String> {
    let mut last = String::new();
    for url in candidates() {
        match PgConnection::establish(&url) {
            Ok(_) => return Ok(url),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// Finds (and if needed starts) the local cluster; returns a URL to its `postgres` database.
pub fn local_server_url() -> anyhow::Result<String> {
    let first_error = match try_candidates() {
        Ok(url) => return Ok(url),
        Err(e) => e,
    };
    let clusters = installed_clusters()?;
    if clusters.is_empty() {
        bail!(
            "PostgreSQL is not installed or has no cluster. Install it with \
             `apt-get install -y postgresql` (Debian/Ubuntu), or set DATABASE_URL to a \
             PostgreSQL 15+ server. Last connection error: {first_error}"
        );
    }
    for (version, name) in &clusters {
        tracing::info!(version, name, "starting local PostgreSQL cluster");
        let status = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", version, name, "start"])
            .status();
        if let Err(e) = status {
            tracing::warn!(error = %e, "pg_ctlcluster failed");
        }
    }
    for _ in 0..60 {
        if let Ok(url) = try_candidates() {
            return Ok(url);
        }
        thread::sleep(Duration::from_millis(500));
    }
    bail!(
        "could not connect to the local PostgreSQL after starting it ({first_error}). \
         Check `pg_lsclusters`, or set DATABASE_URL"
    )
}

/// `(version, name)` of every cluster `pg_lsclusters` knows; empty when PostgreSQL is absent.
fn installed_clusters() -> anyhow::Result<Vec<(String, String)>> {
    let out = match Command::new("pg_lsclusters").arg("--no-header").output() {
        Ok(o) => o,
        Err(_) => return Ok(Vec::new()),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        let u = with_database("postgres://u:p@h:5432/postgres?host=/x", "arbor").unwrap();
        assert_eq!(database_name(&u).unwrap(), "arbor");
        assert!(u.contains("host=/x"));
    }
}
