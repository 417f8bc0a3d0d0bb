//! The tenant a request is for, resolved from `/t/{slug}` and the user's membership.

use std::str::FromStr;

use actix_web::{web::Data, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::repo;
use crate::{
    auth::{
        extract::{remember, session_token},
        permissions::{self, Permission},
        session, CurrentUser, Role,
    },
    db::{self, migrate::latest_tenant_version, scope::TenantSchema},
    error::AppError,
    web::{layout::Layout, telemetry, AppState},
};

#[derive(Debug, Clone)]
pub struct TenantRef {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub schema: TenantSchema,
}

/// A signed-in member of the tenant named in the path, with their role.
#[derive(Debug, Clone)]
pub struct TenantCtx {
    pub tenant: TenantRef,
    pub role: Role,
    pub user: CurrentUser,
}

impl TenantCtx {
    pub fn layout(&self, req: &HttpRequest, title: impl Into<String>, nav: &'static str) -> Layout {
        Layout::for_request(req, title)
            .with_user(&self.user.name, &self.user.email)
            .with_tenant(&self.tenant.slug, &self.tenant.name, self.role, nav)
    }

    pub fn can(&self, p: Permission) -> bool {
        permissions::allows(self.role, p)
    }

    /// Runs `f` in a transaction scoped to this tenant's schema.
    pub async fn db<T, F>(&self, state: &AppState, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut diesel::PgConnection) -> Result<T, AppError> + Send + 'static,
    {
        let schema = self.tenant.schema.clone();
        db::run(&state.pool, move |c| db::scope::in_tenant(c, &schema, f)).await
    }

    /// Base path of this tenant's pages, e.g. `/t/acme`.
    pub fn base(&self) -> String {
        format!("/t/{}", self.tenant.slug)
    }
}

impl FromRequest for TenantCtx {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if let Some(ctx) = req.extensions().get::<TenantCtx>() {
                return Ok(ctx.clone());
            }
            let slug = req.match_info().get("slug").unwrap_or_default().to_owned();
            let state = req
                .app_data::<Data<AppState>>()
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("AppState missing")))?
                .clone();
            let known = req.extensions().get::<CurrentUser>().cloned();
            // Session and membership in one checkout: every tenant page starts here, and a
            // pooled connection costs a validity check and a thread hop each time.
            let (user, found) = match known {
                Some(user) => {
                    let uid = user.id;
                    let found =
                        db::run(&state.pool, move |c| repo::membership(c, &slug, uid)).await?;
                    (user, found)
                }
                None => {
                    let token = session_token(&req).ok_or(AppError::Unauthenticated)?;
                    let (user, found) = db::run(&state.pool, move |c| {
                        let Some(user) = session::lookup(c, &token)? else {
                            return Ok((None, None));
                        };
                        let found = repo::membership(c, &slug, user.id)?;
                        Ok((Some(user), found))
                    })
                    .await?;
                    let user = user.ok_or(AppError::Unauthenticated)?;
                    remember(&req, &user);
                    (user, found)
                }
            };
            let found = found.ok_or(AppError::NotFound)?;
            let latest = latest_tenant_version().map_err(AppError::Internal)?;
            if found.schema_version.as_deref() != Some(latest.as_str()) {
                return Err(AppError::unavailable(anyhow::anyhow!(
                    "tenant {} schema is at {:?}, binary expects {latest}; run `arbor migrate`",
                    found.slug,
                    found.schema_version
                )));
            }
            let schema = TenantSchema::parse(&found.schema_name)
                .map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
            let role =
                Role::from_str(&found.role).map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
            // The tenant's policy may require a second factor for this role.
            if !user.mfa_enabled && found.require_2fa_roles.iter().any(|r| r == role.as_str()) {
                return Err(AppError::MfaEnrollmentRequired);
            }
            telemetry::record(&req, "tenant", &found.slug);
            let ctx = TenantCtx {
                tenant: TenantRef {
                    id: found.id,
                    slug: found.slug,
                    name: found.name,
                    schema,
                },
                role,
                user,
            };
            req.extensions_mut().insert(ctx.clone());
            Ok(ctx)
        })
    }
}
