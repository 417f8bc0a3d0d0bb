//! Building the application: database, migrations, HTTP server and job workers.

use std::{net::TcpListener, sync::Arc};

use actix_files::Files;
use actix_web::{dev::Server, error, middleware::from_fn, web, App, HttpServer};
use tracing_actix_web::TracingLogger;

use crate::{
    config::Config,
    db, email,
    error::AppError,
    jobs,
    jobs::worker::Workers,
    web::{
        body,
        csrf::{csrf_middleware, FORM_LIMIT},
        headers::security_headers,
        routes,
        telemetry::ArborRootSpan,
        AppState,
    },
};

pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
    workers: Workers,
}

/// Where static files are served from: `ARBOR_STATIC_DIR`, else the source tree's `static/`.
fn static_dir() -> String {
    std::env::var("ARBOR_STATIC_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/static").to_owned())
}

/// Connects to the database (bootstrapping a local one if needed) and migrates when allowed.
pub async fn prepare_database(config: &Config) -> anyhow::Result<db::PgPool> {
    let cfg = config.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<db::PgPool> {
        let url = db::bootstrap::resolve_database_url(&cfg)?;
        let pool = db::build_pool(&url, cfg.pool_size)?;
        let mut conn = pool.get()?;
        if cfg.auto_migrate {
            let report = db::migrate::migrate_all(&mut conn)?;
            tracing::info!(
                control = report.control,
                tenants = report.tenants,
                applied = report.migrations_applied,
                "migrations current"
            );
        } else {
            let pending = db::migrate::control_pending(&mut conn)?;
            if pending > 0 {
                anyhow::bail!("{pending} control migrations pending; run `arbor migrate`");
            }
        }
        Ok(pool)
    })
    .await?
}

/// Per-IP budget for sign-in, sign-up, 2FA, reset and invitation requests.
fn auth_limit(config: &Config) -> anyhow::Result<routes::AuthLimit> {
    let per_min = config.auth_rate_per_minute.max(1);
    actix_governor::GovernorConfigBuilder::default()
        .period(std::time::Duration::from_nanos(60_000_000_000 / per_min))
        .burst_size(config.auth_burst.max(1))
        .methods(vec![actix_web::http::Method::POST])
        .finish()
        .ok_or_else(|| anyhow::anyhow!("invalid rate limit configuration"))
}

/// A form that cannot be read: too large is 413 like every other oversized body; anything
/// else is a message next to the form.
fn form_error(e: error::UrlencodedError, _: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::{PayloadError, UrlencodedError};
    match e {
        UrlencodedError::Overflow { limit, .. } => body::too_large(limit).into(),
        UrlencodedError::Payload(PayloadError::Overflow) => body::too_large(FORM_LIMIT).into(),
        other => {
            let mut errors = crate::error::FieldErrors::default();
            errors.add("form", format!("The form could not be read: {other}"));
            AppError::Validation(errors).into()
        }
    }
}

impl Application {
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        let pool = prepare_database(&config).await?;
        Self::build_with_pool(&mut config, pool).await
    }

    pub async fn build_with_pool(config: &mut Config, pool: db::PgPool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&config.bind)?;
        let port = listener.local_addr()?.port();
        // Binding port 0 (tests) picks a port; links and the origin check must use it.
        if config.base_url.ends_with(":0") {
            config.base_url = format!("{}{port}", config.base_url.trim_end_matches('0'));
        }
        let mailer = Arc::new(email::transport::Mailer::from_config(config)?);
        let state = AppState {
            pool,
            config: Arc::new(config.clone()),
            wakeup: jobs::Wakeup::default(),
            mailer,
            http: crate::integrations::http::client(),
        };
        let data = web::Data::new(state.clone());
        let static_dir = static_dir();
        let limit = auth_limit(config)?;
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(csrf_middleware))
                .wrap(security_headers())
                .wrap(TracingLogger::<ArborRootSpan>::new())
                .app_data(data.clone())
                .service(web::scope("/t/{slug}").configure(routes::tenant_routes))
                .service(web::scope("/account").configure(routes::account_routes))
                .configure(|cfg| routes::auth_routes(cfg, &limit))
                .app_data(
                    web::FormConfig::default()
                        .limit(FORM_LIMIT)
                        .error_handler(form_error),
                )
                .app_data(
                    web::PathConfig::default().error_handler(|_, _| AppError::NotFound.into()),
                )
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    let mut errors = crate::error::FieldErrors::default();
                    errors.add(
                        "query",
                        format!("The address has an invalid parameter: {e}"),
                    );
                    AppError::Validation(errors).into()
                }))
                .service(Files::new("/static", &static_dir).use_etag(true))
                .configure(routes::public_routes)
                .configure(routes::api_routes)
                .default_service(web::to(|| async {
                    Err::<actix_web::HttpResponse, _>(AppError::NotFound)
                }))
        })
        .listen(listener)?
        .disable_signals()
        .run();
        let workers = jobs::worker::spawn(state.clone(), config.workers);
        Ok(Self {
            port,
            server,
            state,
            workers,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until Ctrl-C / SIGTERM, then stops accepting, finishes requests and workers.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        shutdown_signal().await;
        tracing::info!("shutting down");
        handle.stop(true).await;
        self.workers.shutdown().await;
        server.await.map_err(std::io::Error::other)?
    }

    /// Runs the server forever (tests spawn this and drop it with the runtime).
    pub async fn run_forever(self) -> std::io::Result<()> {
        let _workers = self.workers;
        self.server.await
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
