//! `arbor bench tenants [--tenants 1000]`: what a thousand tenant schemas cost.
//!
//! All bench tenants get the slug prefix `bench-tn-<random>-` and owners under
//! `@bench-tn-<random>.invalid`, so the run is safe on a development database and everything
//! it created (schemas, control rows, owners) is removed at the end, whatever happened.
//!
//! 1. A probe tenant seeded with `bench_load::SEED_INVOICES` invoices; `arbor serve` as a
//!    child process; its owner signs in through the form; the invoice list is requested
//!    `SEQUENTIAL` times over one connection, then `CONCURRENT` times over
//!    `CONCURRENT_CLIENTS` connections (after a warm-up), `ROUNDS` times; the medians over
//!    the rounds of p50/p99 with one tenant.
//! 2. N tenants provisioned through `tenants::provision` (schema, every tenant migration,
//!    owner, membership) by `PROVISION_WORKERS` threads; the wall time is printed.
//! 3. The same latency measurement on a fresh server with 1 + N tenants, and the ratios. Each
//!    measurement first waits until no autovacuum worker runs (see [`settle`]).
//! 4. migrate-all: the newest tenant migration is reverted in every bench tenant (its
//!    `down.sql`, through diesel's migration harness, which also deletes its
//!    `__diesel_schema_migrations` row), then `db::migrate::migrate_all` (what `arbor migrate`
//!    and start-up run) re-applies it; a second, no-op pass shows the fixed cost per tenant.
//!
//! The server's peak RSS (VmHWM) is printed for both servers.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Instant,
};

use anyhow::anyhow;
use diesel::{
    sql_types::{BigInt, Text},
    Connection, PgConnection, QueryableByName, RunQueryDsl,
};
use diesel_migrations::MigrationHarness;

use crate::{
    auth::password,
    bench::provision_throwaway,
    bench_load::{self, get_request, load, verdict, ChildServer, LoadResult, Until},
    config::Config,
    db::{
        self,
        migrate::{self, MigrateReport, TENANT_MIGRATIONS},
        scope::{set_local_search_path, TenantSchema},
    },
    startup,
};

const SEQUENTIAL: usize = 1_000;
const CONCURRENT: usize = 3_000;
const CONCURRENT_CLIENTS: usize = 8;
/// Provisioning is DDL executed by PostgreSQL; a few sessions keep both cores busy, more only
/// queue on the catalog.
const PROVISION_WORKERS: usize = 4;

/// Rounds of each measurement. One round's p99 on two cores shared with PostgreSQL and the
/// load generator swings by ±40% from scheduling alone; the median of five is steadier.
const ROUNDS: usize = 5;

/// Median over the rounds of the `p`th percentile latency, in ms.
fn median_ms(rounds: &[LoadResult], p: f64) -> f64 {
    let mut v: Vec<f64> = rounds.iter().map(|r| r.ms(p)).collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Median figures over the rounds, and each round's p99.
fn rounds_summary(rounds: &[LoadResult]) -> String {
    let mut rates: Vec<f64> = rounds.iter().map(LoadResult::rate).collect();
    rates.sort_by(f64::total_cmp);
    format!(
        "median of {} rounds: p50 {:6.2} ms, p99 {:6.2} ms, {:7.0} req/s (p99 per round: {})",
        rounds.len(),
        median_ms(rounds, 50.0),
        median_ms(rounds, 99.0),
        rates.get(rates.len() / 2).copied().unwrap_or(f64::NAN),
        rounds
            .iter()
            .map(|r| format!("{:.2}", r.ms(99.0)))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Latency of one server over the probe tenant's invoice list.
pub struct Latency {
    pub tenants: i64,
    /// How long the bench waited for autovacuum to finish before measuring.
    pub settled_seconds: f64,
    /// `ROUNDS` runs each; figures are the median over the rounds.
    pub sequential: Vec<LoadResult>,
    pub concurrent: Vec<LoadResult>,
    pub peak_rss_kib: u64,
}

pub struct TenantsReport {
    pub n: usize,
    pub provision_seconds: f64,
    pub one: Latency,
    pub many: Latency,
    pub reverted: String,
    /// Bench tenants (the probe and the N) the newest migration was reverted in.
    pub reverted_in: usize,
    pub migrate: MigrateReport,
    pub migrate_seconds: f64,
    pub noop_seconds: f64,
    pub cleanup_seconds: f64,
}

impl TenantsReport {
    pub fn print(&self) {
        println!(
            "tenants: provisioned {} tenants (tenants::provision, {PROVISION_WORKERS} sessions) in {:.1} s = {:.1} ms per tenant",
            self.n,
            self.provision_seconds,
            1000.0 * self.provision_seconds / self.n as f64
        );
        for l in [&self.one, &self.many] {
            println!(
                "invoice list with {:>5} tenants (after {:.0} s waiting for autovacuum): sequential {}",
                l.tenants,
                l.settled_seconds,
                rounds_summary(&l.sequential)
            );
            println!(
                "                              {CONCURRENT_CLIENTS} connections {}",
                rounds_summary(&l.concurrent)
            );
            println!(
                "                              server peak RSS (VmHWM) {:.1} MB",
                l.peak_rss_kib as f64 / 1024.0
            );
        }
        let r = |p: f64, f: fn(&Latency) -> &[LoadResult]| {
            median_ms(f(&self.many), p) / median_ms(f(&self.one), p)
        };
        let ratios = [
            r(50.0, |l| &l.sequential),
            r(99.0, |l| &l.sequential),
            r(50.0, |l| &l.concurrent),
            r(99.0, |l| &l.concurrent),
        ];
        println!(
            "ratio {} / {} tenants: sequential p50 {:.2}x, p99 {:.2}x; concurrent p50 {:.2}x, p99 {:.2}x",
            self.many.tenants, self.one.tenants, ratios[0], ratios[1], ratios[2], ratios[3]
        );
        println!(
            "migrate-all (db::migrate::migrate_all over {} tenants, re-applying {} in {} bench tenants): {:.1} s; {} migrations applied",
            self.migrate.tenants, self.reverted, self.reverted_in, self.migrate_seconds, self.migrate.migrations_applied
        );
        println!(
            "migrate-all with nothing pending: {:.1} s ({:.2} ms per tenant)",
            self.noop_seconds,
            1000.0 * self.noop_seconds / self.migrate.tenants.max(1) as f64
        );
        println!(
            "cleanup (drop {} schemas, control rows, owners): {:.1} s",
            self.n + 1,
            self.cleanup_seconds
        );
        let rss = self.one.peak_rss_kib.max(self.many.peak_rss_kib) as f64 / 1024.0;
        println!(
            "targets: latency at {} tenants <= 1.2x of 1 tenant (p50 and p99): {}; migrate-all <= 60 s: {}; RSS <= 150 MB: {}",
            self.many.tenants,
            verdict(ratios.iter().all(|r| *r <= 1.2)),
            verdict(self.migrate_seconds <= 60.0),
            verdict(rss <= 150.0)
        );
    }
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Tenant {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    schema_name: String,
}

fn tenant_count(c: &mut PgConnection) -> anyhow::Result<i64> {
    let r: Row = diesel::sql_query("SELECT count(*) AS n FROM control.tenants").get_result(c)?;
    Ok(r.n)
}

fn bench_tenants(c: &mut PgConnection, prefix: &str) -> anyhow::Result<Vec<Tenant>> {
    Ok(diesel::sql_query(
        "SELECT id, schema_name FROM control.tenants WHERE starts_with(slug, $1) ORDER BY id",
    )
    .bind::<Text, _>(prefix)
    .load(c)?)
}

/// Runs `job(connection, i)` for i in 0..n on `PROVISION_WORKERS` threads; the first error wins.
fn parallel(
    pool: &db::PgPool,
    n: usize,
    job: impl Fn(&mut PgConnection, usize) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<()> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..PROVISION_WORKERS)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    let mut c = pool.get()?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(());
                        }
                        if let Err(e) = job(&mut c, i) {
                            // The others stop too: the rest of the queue stays undone.
                            next.store(n, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| anyhow!("a bench worker panicked"))?)
    })
}

/// Autovacuum workers busy in the database right now.
fn autovacuum_workers(c: &mut PgConnection) -> anyhow::Result<i64> {
    let r: Row = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity \
          WHERE backend_type = 'autovacuum worker' AND datname = current_database()",
    )
    .get_result(c)?;
    Ok(r.n)
}

/// Waits (at most `SETTLE_LIMIT`) until no autovacuum worker is running; returns the wait.
/// Provisioning a thousand schemas leaves autovacuum analysing tens of thousands of new tables
/// and the catalogs for a minute or two; measured during that, the latency would be of the
/// provisioning's aftermath on two shared cores, not of serving with 1,000 tenants.
async fn settle(pool: &db::PgPool) -> anyhow::Result<f64> {
    let started = Instant::now();
    loop {
        let p = pool.clone();
        let busy =
            tokio::task::spawn_blocking(move || autovacuum_workers(&mut *p.get()?)).await??;
        if busy == 0 || started.elapsed() > SETTLE_LIMIT {
            return Ok(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

async fn measure(
    url: &str,
    pool: &db::PgPool,
    slug: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<Latency> {
    let settled_seconds = settle(pool).await?;
    let p = pool.clone();
    let tenants = tokio::task::spawn_blocking(move || tenant_count(&mut *p.get()?)).await??;
    let server = ChildServer::spawn(url).await?;
    let cookie = bench_load::sign_in(server.addr, email, password).await?;
    let page = get_request(server.addr, &format!("/t/{slug}/invoices"), Some(&cookie));
    load(server.addr, &page, CONCURRENT_CLIENTS, Until::Requests(500)).await?;
    let (mut sequential, mut concurrent) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        sequential.push(load(server.addr, &page, 1, Until::Requests(SEQUENTIAL)).await?);
        concurrent.push(
            load(
                server.addr,
                &page,
                CONCURRENT_CLIENTS,
                Until::Requests(CONCURRENT),
            )
            .await?,
        );
    }
    Ok(Latency {
        tenants,
        settled_seconds,
        sequential,
        concurrent,
        peak_rss_kib: server.stop().await?,
    })
}

/// Reverts the newest tenant migration in every bench tenant; returns its version.
fn revert_newest(pool: &db::PgPool, tenants: &[Tenant]) -> anyhow::Result<String> {
    let latest = migrate::latest_tenant_version()?;
    parallel(pool, tenants.len(), |c, i| {
        let t = &tenants[i];
        let schema = TenantSchema::parse(&t.schema_name).map_err(|e| anyhow!(e))?;
        c.transaction::<(), anyhow::Error, _>(|c| {
            set_local_search_path(c, &schema)?;
            let reverted = c
                .revert_last_migration(TENANT_MIGRATIONS)
                .map_err(|e| anyhow!("reverting in {}: {e}", t.schema_name))?;
            if reverted.to_string() != latest {
                return Err(anyhow!(
                    "{} had {reverted} as its newest migration, not {latest}",
                    t.schema_name
                ));
            }
            // Recorded as behind, as it now is, so nothing serves it until it is migrated.
            // Two statements: no query mixes tenant and control tables.
            #[derive(QueryableByName)]
            struct Version {
                #[diesel(sql_type = Text)]
                v: String,
            }
            let now: Version =
                diesel::sql_query("SELECT max(version) AS v FROM __diesel_schema_migrations")
                    .get_result(c)?;
            diesel::sql_query("UPDATE control.tenants SET schema_version = $1 WHERE id = $2")
                .bind::<Text, _>(now.v)
                .bind::<BigInt, _>(t.id)
                .execute(c)?;
            Ok(())
        })
    })?;
    Ok(latest)
}

pub async fn tenants(config: &Config, n: usize) -> anyhow::Result<TenantsReport> {
    let pool = startup::prepare_database(config).await?;
    let cfg = config.clone();
    let url =
        tokio::task::spawn_blocking(move || db::bootstrap::resolve_database_url(&cfg)).await??;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let prefix = format!("bench-tn-{tag}-");
    let domain = format!("bench-tn-{tag}.invalid");
    let (email, password) = (format!("probe@{domain}"), uuid::Uuid::new_v4().to_string());
    let probe = bench_load::seeded_tenant(
        &pool,
        format!("{prefix}probe"),
        email.clone(),
        password.clone(),
    )
    .await?;
    let outcome = async {
        let one = measure(&url, &pool, &probe.slug, &email, &password).await?;

        let (p, pre, d) = (pool.clone(), prefix.clone(), domain.clone());
        let started = Instant::now();
        tokio::task::spawn_blocking(move || {
            // One argon2 hash for every owner: hashing is deliberately slow and not what is measured.
            let hash = password::hash_blocking(&uuid::Uuid::new_v4().to_string())?;
            parallel(&p, n, |c, i| {
                let slug = format!("{pre}{i}");
                let owner = format!("owner-{i}@{d}");
                provision_throwaway(c, &slug, &format!("Bench tenant {i}"), &owner, hash.clone())
                    .map(|_| ())
            })
        })
        .await??;
        let provision_seconds = started.elapsed().as_secs_f64();

        let many = measure(&url, &pool, &probe.slug, &email, &password).await?;

        let (p, pre, u) = (pool.clone(), prefix.clone(), url.clone());
        let (reverted, reverted_in, migrate, migrate_seconds, noop_seconds) =
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let list = bench_tenants(&mut *p.get()?, &pre)?;
                let reverted = revert_newest(&p, &list)?;
                // One connection, as `arbor migrate` uses.
                let mut c = db::connect(&u)?;
                let started = Instant::now();
                let report = migrate::migrate_all(&mut c)?;
                let seconds = started.elapsed().as_secs_f64();
                let started = Instant::now();
                migrate::migrate_all(&mut c)?;
                let noop = started.elapsed().as_secs_f64();
                Ok((reverted, list.len(), report, seconds, noop))
            })
            .await??;
        Ok::<_, anyhow::Error>(TenantsReport {
            n,
            provision_seconds,
            one,
            many,
            reverted,
            reverted_in,
            migrate,
            migrate_seconds,
            noop_seconds,
            // Set once the cleanup below has run, whatever the outcome.
            cleanup_seconds: 0.0,
        })
    }
    .await;

    // Everything with the prefix goes, including tenants of a run that failed half-way.
    let started = Instant::now();
    let p = pool.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let list = bench_tenants(&mut *p.get()?, &prefix)?;
        parallel(&p, list.len(), |c, i| migrate::drop_tenant(c, list[i].id))?;
        diesel::sql_query("DELETE FROM control.users WHERE email LIKE '%@' || $1")
            .bind::<Text, _>(&domain)
            .execute(&mut *p.get()?)?;
        Ok(())
    })
    .await??;
    let cleanup_seconds = started.elapsed().as_secs_f64();

    let mut report = outcome?;
    report.cleanup_seconds = cleanup_seconds;
    Ok(report)
}
