//! Payment gateways: where a stored payment method is charged.
//!
//! Rules: every charge carries an idempotency key (the charge attempt's key), so asking the
//! gateway again after a crash returns the first answer instead of charging twice. Every
//! answer is classified into one of four outcomes that drive the retry schedule: success,
//! soft decline (retry on the policy's days), hard decline (never retry; ask the customer to
//! update the method) and retryable error (network, rate limit, gateway outage: back off).
//! Transport failures are retryable outcomes, never errors, because the caller must record
//! them and schedule the next attempt either way.

pub mod sandbox;
pub mod stripe;

use futures_util::future::BoxFuture;

/// One charge of a stored payment method.
#[derive(Debug, Clone, PartialEq)]
pub struct ChargeRequest {
    /// Sent as the gateway's idempotency key; one per charge attempt.
    pub idempotency_key: String,
    /// In the currency's minor unit (cents); always above zero.
    pub amount_minor: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    /// The gateway's customer id, when the gateway needs one (Stripe `cus_...`).
    pub customer_ref: Option<String>,
    /// The stored method's token (`pm_...` at Stripe, `tok_sandbox_...` in the sandbox).
    pub method_token: String,
    pub description: String,
    /// Sent as metadata (invoice id and number), so the gateway's dashboard and webhooks
    /// lead back to the invoice.
    pub metadata: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclineClass {
    /// Insufficient funds, do not honor, generic decline: try again later.
    Soft,
    /// Lost or stolen card, expired, closed account: never retry this method.
    Hard,
    /// Processing error, network failure, rate limit, gateway outage: back off and retry.
    Retryable,
}

impl DeclineClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Soft => "soft_decline",
            Self::Hard => "hard_decline",
            Self::Retryable => "retryable_error",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded {
        /// The gateway's id of the charge (`pi_...`), kept as the payment's reference.
        reference: String,
    },
    /// Accepted but not final yet (bank debits, some 3-D Secure flows): the gateway's
    /// webhook settles it later. Never retried with a new key, which could charge twice.
    Pending { reference: String },
    Declined {
        class: DeclineClass,
        /// Machine code (`insufficient_funds`, `lost_card`, `processing_error`, `network`).
        code: String,
        /// Human message safe to show staff (never contains the API key).
        message: String,
        reference: Option<String>,
    },
}

pub trait Gateway: Send + Sync {
    /// `sandbox` or `stripe`, as stored on payment methods.
    fn name(&self) -> &'static str;
    fn charge<'a>(&'a self, req: &'a ChargeRequest) -> BoxFuture<'a, Outcome>;
}

/// Setting keys of the tenant's Stripe account; values are sealed (AES-GCM) and base64.
pub const STRIPE_SECRET_KEY: &str = "payments.stripe_secret_key";
pub const STRIPE_WEBHOOK_SECRET: &str = "payments.stripe_webhook_secret";

/// Reads a sealed setting; `None` when unset.
pub fn sealed_setting(
    conn: &mut diesel::PgConnection,
    key: &crate::config::SecretKey,
    name: &str,
) -> crate::error::AppResult<Option<String>> {
    use base64::Engine as _;
    let raw = crate::invoicing::repo::text_setting(conn, name)?;
    if raw.is_empty() {
        return Ok(None);
    }
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(crate::error::AppError::internal)?;
    let plain =
        crate::crypto::open(key, name, &sealed).map_err(crate::error::AppError::internal)?;
    String::from_utf8(plain)
        .map(Some)
        .map_err(crate::error::AppError::internal)
}

pub fn put_sealed_setting(
    conn: &mut diesel::PgConnection,
    key: &crate::config::SecretKey,
    name: &str,
    value: &str,
) -> crate::error::AppResult<()> {
    use base64::Engine as _;
    let sealed = crate::crypto::seal(key, name, value.as_bytes())
        .map_err(crate::error::AppError::internal)?;
    crate::invoicing::repo::put_setting(
        conn,
        name,
        serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(sealed)),
    )
}

/// The gateway a stored method belongs to, configured for this tenant.
pub async fn build(
    state: &crate::web::AppState,
    schema: &crate::db::scope::TenantSchema,
    name: &str,
) -> anyhow::Result<Box<dyn Gateway>> {
    match name {
        "sandbox" => Ok(Box::new(sandbox::SandboxGateway::new(
            state.pool.clone(),
            schema.clone(),
        ))),
        "stripe" => {
            let s = schema.clone();
            let key = state.config.secret_key.clone();
            let api_key = crate::db::run(&state.pool, move |c| {
                crate::db::scope::in_tenant(c, &s, |c| sealed_setting(c, &key, STRIPE_SECRET_KEY))
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .ok_or_else(|| {
                anyhow::anyhow!("Stripe is not set up: add the API key in Settings → Payments.")
            })?;
            Ok(Box::new(stripe::StripeGateway::new(
                api_key,
                &state.config.stripe_api_base,
            )?))
        }
        other => anyhow::bail!("unknown payment gateway {other:?}"),
    }
}
