//! `arbor bench webhooks --events N`: the CRM connector end to end under load.
//!
//! Starts the app on a loopback port with its job workers, provisions a throwaway tenant with
//! one product and a generic CRM connector, then posts N signed `deal.won` events (each a new
//! customer) over HTTP, 32 in flight. It prints how fast they were accepted (verified and
//! stored) and how fast they were fully processed (account, billing contact and subscription
//! written), and drops the tenant.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use diesel::{sql_query, RunQueryDsl};
use futures_util::{stream, StreamExt};
use serde_json::json;

use crate::{auth::password, config::Config, db, db::scope, Application};

const IN_FLIGHT: usize = 32;

pub struct WebhookReport {
    pub events: usize,
    pub workers: usize,
    pub accepted_seconds: f64,
    pub processed_seconds: f64,
    pub applied: i64,
    pub other: i64,
    /// Why the first event that did not apply did not.
    pub first_problem: Option<String>,
}

impl WebhookReport {
    pub fn print(&self) {
        let n = self.events as f64;
        println!(
            "webhooks: {} signed deal.won events over loopback HTTP, {IN_FLIGHT} in flight, {} job workers",
            self.events, self.workers
        );
        println!(
            "accepted (verified and stored): {:8.0} events/s ({:.2} s)",
            n / self.accepted_seconds,
            self.accepted_seconds
        );
        println!(
            "fully processed (account, contact and subscription written): {:8.0} events/s ({:.2} s); applied {}, not applied {}",
            n / self.processed_seconds,
            self.processed_seconds,
            self.applied,
            self.other
        );
        if let Some(p) = &self.first_problem {
            println!("first event not applied: {p}");
        }
        println!("target: >= 2000 events/s fully processed");
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count(
    c: &mut diesel::PgConnection,
    schema: &scope::TenantSchema,
    sql: &str,
) -> anyhow::Result<i64> {
    let r: Count = scope::in_tenant(c, schema, |c| Ok(sql_query(sql).get_result(c)?))?;
    Ok(r.n)
}

pub async fn webhooks(config: &Config, events: usize) -> anyhow::Result<WebhookReport> {
    let mut cfg = config.clone();
    cfg.bind = "127.0.0.1:0".into();
    cfg.base_url = "http://127.0.0.1:0".into();
    cfg.schedule_bill_runs = false;
    cfg.smtp_url = None;
    cfg.workers = cfg.workers.max(4);
    cfg.job_poll = Duration::from_millis(20);
    let workers = cfg.workers;
    let app = Application::build(cfg).await?;
    let port = app.port();
    let state = app.state().clone();
    let server = tokio::spawn(app.run_forever());
    let pool = state.pool.clone();
    let key = state.config.secret_key.clone();
    let secret = "whsec_bench_secret".to_owned();

    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let s = secret.clone();
    let (p, token) = db::run(&pool, move |c| {
        let p = crate::bench::provision_throwaway(
            c,
            &format!("bench-crm-{tag}"),
            "Bench CRM",
            &format!("bench-crm-{tag}@bench.invalid"),
            password::hash_blocking(&uuid::Uuid::new_v4().to_string())?,
        )
        .map_err(crate::error::AppError::internal)?;
        let token = format!("bench{}", uuid::Uuid::new_v4().simple());
        scope::in_tenant(c, &p.schema, |c| {
            sql_query(
                "WITH p AS (INSERT INTO products (sku, name, gl_revenue_account) VALUES ('PLAN-PRO', 'Pro plan', '4000') RETURNING id), \
                      pr AS (INSERT INTO prices (product_id, nickname, currency) SELECT id, 'List', 'EUR' FROM p RETURNING id), \
                      v AS (INSERT INTO price_versions (price_id, version, model_kind, model, interval_months) \
                            SELECT id, 1, 'per_unit', '{\"model\": \"per_unit\", \"unit_amount\": \"100\"}', 12 FROM pr RETURNING id, price_id) \
                 SELECT 1 FROM v",
            )
            .execute(c)?;
            // A separate statement: rows inserted by the CTEs above are not visible to an
            // UPDATE in the same statement.
            sql_query(
                "UPDATE prices SET current_version_id = v.id FROM price_versions v WHERE v.price_id = prices.id",
            )
            .execute(c)?;
            let spec = serde_json::to_value(crate::crm::mapping::default_spec("generic"))
                .map_err(crate::error::AppError::internal)?;
            let id = crate::crm::repo::create(c, "generic", "Bench", &token, &spec, &json!({}))?;
            crate::crm::repo::set_secret(c, id, &crate::crm::handlers::seal_secret(&key, &s)?)?;
            Ok(())
        })?;
        Ok((p, token))
    })
    .await?;

    let url = format!("http://127.0.0.1:{port}/hooks/{}/crm/{token}", p.slug);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()?;
    let bodies: Vec<String> = (0..events)
        .map(|i| {
            json!({
                "id": format!("evt-{i}"),
                "type": "deal.won",
                "occurred_at": "2026-03-15T10:00:00Z",
                "data": { "object": {
                    "id": format!("D-{i}"),
                    "close_date": "2026-03-15",
                    "currency": "EUR",
                    "billing_frequency": "Annual",
                    "payment_terms": "Net 30",
                    "revenue_recognition": "Ratable",
                    // Unrelated names: duplicate detection holds look-alikes, as it should.
                    "company": { "id": format!("C-{i}"), "name": uuid::Uuid::new_v4().simple().to_string() },
                    "contact": { "name": "Billing", "email": format!("billing{i}@customer{i}.example") },
                    "line_items": [ { "sku": "PLAN-PRO", "quantity": "3" } ]
                }}
            })
            .to_string()
        })
        .collect();

    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = stream::iter(bodies)
        .map(|body| {
            let client = client.clone();
            let url = url.clone();
            let secret = secret.clone();
            async move {
                let t = chrono::Utc::now().timestamp();
                let sig = crate::crm::vendors::generic::sign(&secret, t, body.as_bytes());
                let r = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .header("X-Arbor-Signature", sig)
                    .body(body)
                    .send()
                    .await?;
                if !r.status().is_success() {
                    return Err(anyhow!("HTTP {}", r.status()));
                }
                Ok(())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let accepted_seconds = started.elapsed().as_secs_f64();
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        return Err(e.context("an event was refused"));
    }
    let schema = p.schema.clone();
    let n = i64::try_from(events)?;
    loop {
        let s = schema.clone();
        // Whether any event still waits, from `crm_inbox_status_idx`: polling must not cost
        // the database a count of every event at each look.
        let waiting = db::run(&pool, move |c| {
            count(
                c,
                &s,
                "SELECT count(*) AS n FROM (SELECT 1 FROM crm_inbox WHERE status = 'received' LIMIT 1) w",
            )
            .map_err(crate::error::AppError::internal)
        })
        .await?;
        if waiting == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err(anyhow!(
                "some of the {n} events still not processed after 30 minutes"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let processed_seconds = started.elapsed().as_secs_f64();
    let s = schema.clone();
    let applied = db::run(&pool, move |c| {
        count(
            c,
            &s,
            "SELECT count(*) AS n FROM crm_inbox WHERE status = 'applied'",
        )
        .map_err(crate::error::AppError::internal)
    })
    .await?;
    let s = schema.clone();
    let first_problem = db::run(&pool, move |c| {
        #[derive(diesel::QueryableByName)]
        struct Reason {
            #[diesel(sql_type = diesel::sql_types::Text)]
            reason: String,
        }
        let r: Vec<Reason> = scope::in_tenant(c, &s, |c| {
            Ok(sql_query(
                "SELECT status || ': ' || COALESCE(reason, '') AS reason FROM crm_inbox WHERE status <> 'applied' ORDER BY id LIMIT 1",
            )
            .load(c)?)
        })?;
        Ok(r.into_iter().next().map(|r| r.reason))
    })
    .await?;
    // Throwaway: the schema and the control rows go.
    db::run(&pool, move |c| {
        crate::bench::drop_throwaway(c, &p).map_err(crate::error::AppError::internal)
    })
    .await?;
    server.abort();
    Ok(WebhookReport {
        events,
        workers,
        accepted_seconds,
        processed_seconds,
        applied,
        other: n - applied,
        first_problem,
    })
}
