//! API key tokens and the `ApiCtx` extractor.
//!
//! Rules: the bearer token names its tenant by slug; the key row is then found by prefix in that
//! tenant's schema and accepted only when the keyed digest of the whole token matches (constant
//! time) and the key is not revoked. Anything else is the same 401, so a caller cannot tell a
//! wrong tenant from a wrong secret. A tenant whose schema is behind is 503, as for pages.

use actix_web::{web::Data, FromRequest, HttpRequest};
use diesel::prelude::*;
use futures_util::future::LocalBoxFuture;
use rand::RngCore as _;
use subtle::ConstantTimeEq as _;

use super::ApiError;
use crate::{
    audit::{client_ip, Actor},
    crypto,
    db::{self, migrate::latest_tenant_version, schema::control::tenants, scope::TenantSchema},
    error::AppError,
    tenants::TenantRef,
    web::AppState,
};

/// Digest purpose of API key tokens.
pub const DIGEST_PURPOSE: &str = "api_key";

/// A freshly generated token and the public prefix it carries.
pub struct NewToken {
    pub token: String,
    pub prefix: String,
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// A new token for the tenant `slug`: 64 bits of public prefix, 192 bits of secret.
pub fn generate(slug: &str) -> NewToken {
    let prefix = random_hex(8);
    let token = format!("arb_{slug}_{prefix}_{}", random_hex(24));
    NewToken { token, prefix }
}

/// Splits `arb_<slug>_<prefix>_<secret>` into (slug, prefix); slugs never contain `_`.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("arb_")?;
    let mut parts = rest.rsplitn(3, '_');
    let secret = parts.next()?;
    let prefix = parts.next()?;
    let slug = parts.next()?;
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    (ok(secret) && ok(prefix) && !slug.is_empty()).then_some((slug, prefix))
}

/// The tenant and key an API request acts as.
#[derive(Debug, Clone)]
pub struct ApiCtx {
    pub tenant: TenantRef,
    pub key_id: i64,
    pub key_name: String,
    pub prefix: String,
    pub write: bool,
    pub ip: Option<String>,
}

impl ApiCtx {
    /// Runs `f` in a transaction scoped to the key's tenant.
    pub async fn db<T, F>(&self, state: &AppState, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> Result<T, AppError> + Send + 'static,
    {
        let schema = self.tenant.schema.clone();
        Ok(db::run(&state.pool, move |c| db::scope::in_tenant(c, &schema, f)).await?)
    }

    /// Writes need a write key.
    pub fn require_write(&self) -> Result<(), ApiError> {
        if self.write {
            Ok(())
        } else {
            Err(ApiError::Forbidden("This API key is read-only."))
        }
    }

    /// Audit actor: no user, the key named instead.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: None,
            email: Some(format!("api-key:{} ({})", self.key_name, self.prefix)),
            ip: self.ip.clone(),
        }
    }
}

type KeyRow = (i64, String, String, Vec<u8>);

impl FromRequest for ApiCtx {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            use crate::db::schema::tenant::api_keys as k;
            let token = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(|t| t.trim().to_owned())
                .ok_or(ApiError::Unauthorized)?;
            let (slug, prefix) = parse(&token).ok_or(ApiError::Unauthorized)?;
            let (slug, prefix) = (slug.to_owned(), prefix.to_owned());
            let state = req
                .app_data::<Data<AppState>>()
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("AppState missing")))?
                .clone();
            let want = crypto::digest(&state.config.secret_key, DIGEST_PURPOSE, &token);
            let s2 = slug.clone();
            let found: Option<(i64, String, String, String, Option<String>)> =
                db::run(&state.pool, move |c| {
                    Ok(tenants::table
                        .filter(tenants::slug.eq(&s2))
                        .filter(tenants::status.eq("active"))
                        .select((
                            tenants::id,
                            tenants::slug,
                            tenants::name,
                            tenants::schema_name,
                            tenants::schema_version,
                        ))
                        .first(c)
                        .optional()?)
                })
                .await?;
            let (id, slug, name, schema_name, version) = found.ok_or(ApiError::Unauthorized)?;
            let latest = latest_tenant_version().map_err(AppError::Internal)?;
            if version.as_deref() != Some(latest.as_str()) {
                return Err(AppError::unavailable(anyhow::anyhow!(
                    "tenant {slug} schema is behind; run `arbor migrate`"
                ))
                .into());
            }
            let schema = TenantSchema::parse(&schema_name)
                .map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
            let p2 = prefix.clone();
            let row: Option<KeyRow> = db::run(&state.pool, {
                let schema = schema.clone();
                move |c| {
                    db::scope::in_tenant(c, &schema, |c| {
                        let row: Option<KeyRow> = k::table
                            .filter(k::prefix.eq(&p2))
                            .filter(k::revoked_at.is_null())
                            .select((k::id, k::name, k::scope, k::digest))
                            .first(c)
                            .optional()?;
                        if let Some((kid, ..)) = &row {
                            // Shown on the settings page; one cheap update per request.
                            diesel::update(k::table.find(*kid))
                                .set(k::last_used_at.eq(diesel::dsl::now))
                                .execute(c)?;
                        }
                        Ok(row)
                    })
                }
            })
            .await?;
            let (key_id, key_name, scope, digest) = row.ok_or(ApiError::Unauthorized)?;
            if !bool::from(digest.as_slice().ct_eq(want.as_slice())) || want.is_empty() {
                return Err(ApiError::Unauthorized);
            }
            Ok(ApiCtx {
                tenant: TenantRef {
                    id,
                    slug,
                    name,
                    schema,
                },
                key_id,
                key_name,
                prefix,
                write: scope == "write",
                ip: client_ip(&req),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let t = generate("acme-co");
        assert_eq!(parse(&t.token), Some(("acme-co", t.prefix.as_str())));
        assert_eq!(t.prefix.len(), 16);
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        for bad in [
            "",
            "arb_",
            "arb_acme_",
            "arb__abc_def",
            "xyz_acme_ab_cd",
            "arb_acme_zz_cd",
            "arb_acme_ab",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
