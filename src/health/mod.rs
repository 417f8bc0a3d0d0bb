//! Liveness and readiness. `/healthz` says the process serves HTTP; `/readyz` says it can do
//! useful work: the database answers, control migrations are applied and no tenant schema is
//! behind this binary. Load balancers should route on `/readyz`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::{
    db::{self, migrate},
    error::AppError,
    web::AppState,
};

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let checked = db::run(&state.pool, |c| {
        diesel::RunQueryDsl::execute(diesel::sql_query("SELECT 1"), c)?;
        let control = migrate::control_pending(c).map_err(AppError::Internal)?;
        let behind = migrate::tenants_behind(c).map_err(AppError::Internal)?;
        Ok((control, behind))
    })
    .await;
    match checked {
        Ok((0, 0)) => HttpResponse::Ok()
            .json(json!({ "status": "ready", "database": "ok", "migrations": "current" })),
        Ok((control, behind)) => HttpResponse::ServiceUnavailable().json(json!({
            "status": "not ready",
            "database": "ok",
            "migrations": "pending",
            "control_pending": control,
            "tenants_behind": behind,
        })),
        Err(e) => {
            tracing::warn!(error = ?e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .json(json!({ "status": "not ready", "database": "unreachable" }))
        }
    }
}
