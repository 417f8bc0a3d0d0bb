//! Web plumbing shared by every feature: layout, htmx rendering, CSRF and security headers,
//! request spans and application state.

pub mod body;
pub mod csrf;
pub mod headers;
pub mod layout;
pub mod render;
pub mod routes;
pub mod telemetry;

use std::sync::Arc;

use crate::{config::Config, db::PgPool, email::transport::Mailer, jobs::Wakeup};

/// Everything handlers need, shared across workers.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    /// Nudges idle job workers when something was enqueued in this process.
    pub wakeup: Wakeup,
    pub mailer: Arc<Mailer>,
    /// Shared HTTP client for connectors (connection pooling; per-request timeouts).
    pub http: reqwest::Client,
}
