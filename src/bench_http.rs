//! `arbor bench http [--seconds 10] [--connections 64]`: a signed-in page under concurrent load.
//!
//! Provisions a throwaway tenant (production provisioning, an argon2-hashed owner) with
//! `bench_load::SEED_INVOICES` invoices, starts `arbor serve` as a child process on a loopback
//! port, signs in through the login form and keeps K keep-alive connections busy for T seconds
//! on the invoice list (`/t/{slug}/invoices`: session, membership and tenant checks, the first
//! page of `invoicing::list::PER_PAGE` rows, the count and per-currency totals, the layout),
//! then T seconds on `/healthz` of the same server (no database, a JSON literal: the price of
//! HTTP, middleware and the runtime alone). Prints p50/p99 latency and req/s of both, the
//! ratio of their rates and the server's peak RSS, and drops the tenant.

use std::time::Duration;

use crate::{
    bench::drop_throwaway,
    bench_load::{self, get_request, load, verdict, ChildServer, LoadResult, Until},
    config::Config,
    db, invoicing, startup,
};

pub struct HttpReport {
    pub connections: usize,
    pub seconds: u64,
    pub page: LoadResult,
    pub baseline: LoadResult,
    pub peak_rss_kib: u64,
}

impl HttpReport {
    pub fn print(&self) {
        let ratio = self.page.rate() / self.baseline.rate();
        let mb = self.peak_rss_kib as f64 / 1024.0;
        println!(
            "http: {} keep-alive connections over loopback, {} s per route; `arbor serve` as a child process",
            self.connections, self.seconds
        );
        println!(
            "invoice list, signed in ({} of {} invoices): {}",
            invoicing::list::PER_PAGE,
            bench_load::SEED_INVOICES,
            self.page.summary()
        );
        println!(
            "baseline GET /healthz (no database):         {}",
            self.baseline.summary()
        );
        println!(
            "ratio: invoice list req/s = {:.1}% of baseline req/s",
            100.0 * ratio
        );
        println!("server peak RSS (VmHWM): {mb:.1} MB");
        println!(
            "targets: p99 <= 25 ms: {}; >= 25% of baseline req/s: {}; RSS <= 150 MB: {}",
            verdict(self.page.ms(99.0) <= 25.0),
            verdict(ratio >= 0.25),
            verdict(mb <= 150.0)
        );
    }
}

pub async fn http(config: &Config, seconds: u64, connections: usize) -> anyhow::Result<HttpReport> {
    let pool = startup::prepare_database(config).await?;
    let cfg = config.clone();
    let url =
        tokio::task::spawn_blocking(move || db::bootstrap::resolve_database_url(&cfg)).await??;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (email, password) = (
        format!("bench-http-{tag}@bench.invalid"),
        uuid::Uuid::new_v4().to_string(),
    );
    let p = bench_load::seeded_tenant(
        &pool,
        format!("bench-http-{tag}"),
        email.clone(),
        password.clone(),
    )
    .await?;
    let outcome = async {
        let server = ChildServer::spawn(&url).await?;
        let cookie = bench_load::sign_in(server.addr, &email, &password).await?;
        let page = get_request(
            server.addr,
            &format!("/t/{}/invoices", p.slug),
            Some(&cookie),
        );
        // The page must be the full list, not a redirect or an error page that happens to be 200.
        let mut probe = bench_load::HttpConn::connect(server.addr).await?;
        let status = probe.roundtrip(&page).await?;
        let shown = format!(
            "1–{} of {}",
            invoicing::list::PER_PAGE,
            bench_load::SEED_INVOICES
        );
        if status != 200 || !String::from_utf8_lossy(probe.body()).contains(&shown) {
            anyhow::bail!("the invoice list answered {status} without \"{shown}\"");
        }
        let run = Until::Elapsed(Duration::from_secs(seconds));
        // Warm-up: pooled database connections, caches, allocator arenas.
        load(
            server.addr,
            &page,
            connections,
            Until::Elapsed(Duration::from_secs(2)),
        )
        .await?;
        let page = load(server.addr, &page, connections, run).await?;
        let health = get_request(server.addr, "/healthz", None);
        load(
            server.addr,
            &health,
            connections,
            Until::Elapsed(Duration::from_secs(1)),
        )
        .await?;
        let baseline = load(server.addr, &health, connections, run).await?;
        let peak_rss_kib = server.stop().await?;
        Ok(HttpReport {
            connections,
            seconds,
            page,
            baseline,
            peak_rss_kib,
        })
    }
    .await;
    let pool2 = pool.clone();
    tokio::task::spawn_blocking(move || drop_throwaway(&mut *pool2.get()?, &p)).await??;
    outcome
}
