//! Stripe connector: charges a stored PaymentMethod off-session and checks Stripe's webhooks.
//!
//! Rules:
//! - One charge is one `POST /v1/payment_intents` that creates and confirms the intent
//!   off-session, sent with the attempt's idempotency key, so asking again after a crash or a
//!   timeout returns Stripe's first answer instead of charging twice.
//! - The API version is pinned (`Stripe-Version`), so upgrading the account in Stripe's
//!   dashboard cannot change the shapes read here.
//! - Every answer goes through [`classify`] (pure; its table is in its doc). A transport
//!   failure is a retryable `network` outcome, never an error.
//! - Messages handed back are shown to staff: they never contain the API key.
//! - A webhook body is trusted only after [`verify_signature`] accepted it: HMAC-SHA256 over
//!   `"{t}.{raw body}"` with the endpoint's secret, any `v1` entry may match, and `t` must be
//!   within [`TOLERANCE_SECS`] of now so a captured request cannot be replayed later.

use std::fmt;
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::future::BoxFuture;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{ChargeRequest, DeclineClass, Gateway, Outcome};

/// Production API host; tests point the gateway at a local server instead.
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";
/// The API version every request is pinned to.
pub const API_VERSION: &str = "2024-06-20";
/// Largest accepted gap, in seconds, between a webhook's signed timestamp and now (Stripe's
/// own libraries use the same default).
pub const TOLERANCE_SECS: i64 = 300;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);
const REDACTED: &str = "[redacted]";

pub struct StripeGateway {
    client: reqwest::Client,
    api_key: String,
    /// `{base}/v1/payment_intents`, built once so a bad base URL fails at start-up.
    endpoint: String,
}

impl fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeGateway")
            .field("endpoint", &self.endpoint)
            .field("api_key", &REDACTED)
            .finish_non_exhaustive()
    }
}

impl StripeGateway {
    /// `base_url` is [`DEFAULT_BASE_URL`] in production.
    pub fn new(api_key: String, base_url: &str) -> anyhow::Result<Self> {
        Self::with_timeouts(api_key, base_url, CONNECT_TIMEOUT, TOTAL_TIMEOUT)
    }

    fn with_timeouts(
        api_key: String,
        base_url: &str,
        connect_timeout: Duration,
        total_timeout: Duration,
    ) -> anyhow::Result<Self> {
        // Checked here because a key that cannot travel in a header would otherwise surface
        // as a "network" failure on every charge. The error never quotes the key.
        if api_key.is_empty() {
            bail!("the Stripe API key is empty");
        }
        if !api_key.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("the Stripe API key contains spaces or control characters");
        }
        let base = reqwest::Url::parse(base_url.trim())
            .with_context(|| format!("the Stripe base URL {base_url:?} is not a URL"))?;
        if !matches!(base.scheme(), "https" | "http") {
            bail!("the Stripe base URL {base_url:?} is not http(s)");
        }
        let endpoint = format!("{}/v1/payment_intents", base.as_str().trim_end_matches('/'));
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(total_timeout)
            .user_agent(concat!("arbor/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client for Stripe")?;
        Ok(Self {
            client,
            api_key,
            endpoint,
        })
    }

    async fn send_charge(&self, req: &ChargeRequest) -> Outcome {
        let response = match self
            .client
            .post(&self.endpoint)
            .bearer_auth(&self.api_key)
            .header("Idempotency-Key", &req.idempotency_key)
            .header("Stripe-Version", API_VERSION)
            .form(&charge_form(req))
            .send()
            .await
        {
            Ok(response) => response,
            Err(err) => return transport_failure(&err),
        };
        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(err) => return transport_failure(&err),
        };
        let outcome = match serde_json::from_slice::<Value>(&bytes) {
            Ok(body) => classify(status, &body),
            Err(_) => network(format!(
                "Stripe answered HTTP {status} with a body that is not JSON; the charge will be \
                 retried"
            )),
        };
        log_outcome(&outcome, status, &request_id);
        outcome
    }

    /// Belt and braces: Stripe echoes parts of a rejected key in its messages, and a proxy
    /// in front of it might echo the whole header.
    fn redact(&self, outcome: Outcome) -> Outcome {
        match outcome {
            Outcome::Declined {
                class,
                code,
                message,
                reference,
            } if message.contains(&self.api_key) => Outcome::Declined {
                class,
                code,
                message: message.replace(&self.api_key, REDACTED),
                reference,
            },
            other => other,
        }
    }
}

impl Gateway for StripeGateway {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn charge<'a>(&'a self, req: &'a ChargeRequest) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { self.redact(self.send_charge(req).await) })
    }
}

/// The form body of `POST /v1/payment_intents`, in the order it is sent.
///
/// `automatic_payment_methods[allow_redirects]=never` is there because since API version
/// 2023-08-16 intents accept the dashboard's payment methods by default, and Stripe then
/// refuses to confirm without a `return_url`; nobody can follow a redirect off-session anyway.
fn charge_form(req: &ChargeRequest) -> Vec<(String, String)> {
    let mut form = vec![
        ("amount".to_owned(), req.amount_minor.to_string()),
        ("currency".to_owned(), req.currency.to_ascii_lowercase()),
    ];
    if let Some(customer) = &req.customer_ref {
        form.push(("customer".to_owned(), customer.clone()));
    }
    form.push(("payment_method".to_owned(), req.method_token.clone()));
    form.push(("confirm".to_owned(), "true".to_owned()));
    form.push(("off_session".to_owned(), "true".to_owned()));
    form.push((
        "automatic_payment_methods[enabled]".to_owned(),
        "true".to_owned(),
    ));
    form.push((
        "automatic_payment_methods[allow_redirects]".to_owned(),
        "never".to_owned(),
    ));
    // Stripe treats an empty string as "unset this field"; sending nothing says the same.
    if !req.description.is_empty() {
        form.push(("description".to_owned(), req.description.clone()));
    }
    for (key, value) in &req.metadata {
        form.push((format!("metadata[{key}]"), value.clone()));
    }
    form
}

fn transport_failure(err: &reqwest::Error) -> Outcome {
    // Built from the error's kind, not its text, which names the URL and could carry more
    // than staff should see.
    let what = if err.is_timeout() {
        "Stripe did not answer in time"
    } else if err.is_connect() {
        "could not connect to Stripe"
    } else if err.is_builder() {
        "could not build the request to Stripe (check the idempotency key and base URL)"
    } else if err.is_body() || err.is_decode() {
        "the connection to Stripe broke while reading its answer"
    } else {
        "the request to Stripe failed in transit"
    };
    network(format!("{what}; the charge will be retried"))
}

fn network(message: String) -> Outcome {
    Outcome::Declined {
        class: DeclineClass::Retryable,
        code: "network".to_owned(),
        message,
        reference: None,
    }
}

fn log_outcome(outcome: &Outcome, status: u16, request_id: &str) {
    match outcome {
        Outcome::Succeeded { reference } | Outcome::Pending { reference } => {
            tracing::info!(
                gateway = "stripe",
                status,
                request_id,
                reference,
                "charge accepted"
            );
        }
        Outcome::Declined {
            class,
            code,
            reference,
            ..
        } => {
            tracing::warn!(
                gateway = "stripe",
                status,
                request_id,
                class = class.as_str(),
                code,
                reference = reference.as_deref().unwrap_or_default(),
                "charge not accepted"
            );
        }
    }
}

/// Turns one Stripe answer (HTTP status and parsed JSON body) into an [`Outcome`].
///
/// | answer | outcome |
/// |---|---|
/// | 2xx, intent `succeeded` | `Succeeded { reference: id }` |
/// | 2xx, intent `processing` or `requires_capture` | `Pending { reference: id }` |
/// | 2xx, intent `requires_payment_method` carrying a card `last_payment_error` | as a 402 card error with that error |
/// | 2xx, intent `requires_action`, `requires_payment_method` or `requires_confirmation` | Hard `authentication_required` (off-session nobody can authenticate) |
/// | 401 (any type) | Retryable `authentication_error`: check the API key in Settings → Payments |
/// | 403 | Retryable `permission_error`: the key may not create PaymentIntents |
/// | 429, or code `rate_limit` / `lock_timeout` | Retryable, Stripe's code |
/// | 5xx, or type `api_error` | Retryable, Stripe's code or `api_error` |
/// | 409, or type `idempotency_error` | Retryable `idempotency_error` |
/// | `card_error` with code `processing_error` | Retryable `processing_error` |
/// | `card_error` | by [`decline_class`] of `decline_code`, else of `code`; an unknown or soft code turns Hard when `advice_code` is `do_not_try_again` or `confirm_card_data` |
/// | 400/404 `invalid_request_error` `resource_missing` | Hard `resource_missing` (method or customer gone) |
/// | anything else | Retryable `unexpected_response` |
///
/// The outcome's `code` is Stripe's `decline_code` when present, else `error.code`; its
/// reference is the intent's id (`error.payment_intent.id` on errors) when Stripe sent one.
pub fn classify(http_status: u16, body: &Value) -> Outcome {
    if (200..300).contains(&http_status) {
        return classify_intent(body);
    }
    let error = body.get("error").unwrap_or(&Value::Null);
    let kind = str_field(error, "type");
    let code = str_field(error, "code");
    let reference = error
        .pointer("/payment_intent/id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let stripe_message = str_field(error, "message");

    if http_status == 401 || kind == Some("authentication_error") {
        // Stripe's own message quotes part of the key; staff need the fix, not the key.
        return declined(
            DeclineClass::Retryable,
            "authentication_error",
            "Stripe rejected the API key. Check the Stripe API key in Settings → Payments; \
             the charge will be retried."
                .to_owned(),
            reference,
        );
    }
    if http_status == 403 || kind == Some("permission_error") {
        return declined(
            DeclineClass::Retryable,
            "permission_error",
            "The Stripe API key may not create payments. Use a secret key, or a restricted \
             key with PaymentIntents write access, in Settings → Payments; the charge will be \
             retried."
                .to_owned(),
            reference,
        );
    }
    if http_status == 429 || matches!(code, Some("rate_limit" | "lock_timeout")) {
        return declined(
            DeclineClass::Retryable,
            code.unwrap_or("rate_limit"),
            with_fallback(stripe_message, "Stripe is rate limiting requests"),
            reference,
        );
    }
    if (500..600).contains(&http_status) || kind == Some("api_error") {
        return declined(
            DeclineClass::Retryable,
            code.unwrap_or("api_error"),
            with_fallback(stripe_message, "Stripe had an internal error"),
            reference,
        );
    }
    if http_status == 409 || kind == Some("idempotency_error") {
        return declined(
            DeclineClass::Retryable,
            "idempotency_error",
            with_fallback(stripe_message, "Stripe reported an idempotency conflict"),
            reference,
        );
    }
    if kind == Some("card_error") {
        return classify_card_error(error, reference);
    }
    if kind == Some("invalid_request_error")
        && code == Some("resource_missing")
        && matches!(http_status, 400 | 404)
    {
        return declined(
            DeclineClass::Hard,
            "resource_missing",
            with_fallback(
                stripe_message,
                "The payment method or customer no longer exists at Stripe",
            ),
            reference,
        );
    }
    let detail = [kind, code, stripe_message]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ");
    declined(
        DeclineClass::Retryable,
        "unexpected_response",
        format!("Unexpected answer from Stripe (HTTP {http_status}) {detail}")
            .trim_end()
            .to_owned(),
        reference,
    )
}

fn classify_intent(intent: &Value) -> Outcome {
    let id = str_field(intent, "id");
    let status = str_field(intent, "status");
    let Some(id) = id else {
        return declined(
            DeclineClass::Retryable,
            "unexpected_response",
            "Stripe accepted the request but sent no PaymentIntent id".to_owned(),
            None,
        );
    };
    let reference = id.to_owned();
    match status {
        Some("succeeded") => Outcome::Succeeded { reference },
        // requires_capture only happens when the account forces manual capture: the money is
        // held, so a fresh attempt could charge twice; the webhook settles it.
        Some("processing" | "requires_capture") => Outcome::Pending { reference },
        Some("requires_payment_method")
            if str_field(&intent["last_payment_error"], "type") == Some("card_error") =>
        {
            classify_card_error(&intent["last_payment_error"], Some(reference))
        }
        Some("requires_action" | "requires_payment_method" | "requires_confirmation") => {
            authentication_required(Some(reference))
        }
        other => declined(
            DeclineClass::Retryable,
            "unexpected_response",
            format!(
                "Stripe answered with a PaymentIntent in status {:?}",
                other.unwrap_or("(none)")
            ),
            Some(reference),
        ),
    }
}

fn classify_card_error(error: &Value, reference: Option<String>) -> Outcome {
    let code = str_field(error, "code");
    let decline_code = str_field(error, "decline_code");
    let effective = decline_code.or(code).unwrap_or("card_declined");
    if code == Some("processing_error") || effective == "processing_error" {
        return declined(
            DeclineClass::Retryable,
            "processing_error",
            with_fallback(
                str_field(error, "message"),
                "An error occurred while processing the card",
            ),
            reference,
        );
    }
    if effective == "authentication_required" {
        return authentication_required(reference);
    }
    let mut class = decline_class(effective);
    // The issuer's advice code outranks a vague decline code: card networks fine merchants
    // who keep retrying after "do not try again".
    if class == DeclineClass::Soft
        && matches!(
            str_field(error, "advice_code"),
            Some("do_not_try_again" | "confirm_card_data")
        )
    {
        class = DeclineClass::Hard;
    }
    declined(
        class,
        effective,
        with_fallback(str_field(error, "message"), "The card was declined"),
        reference,
    )
}

/// Soft or Hard for a Stripe card decline code (`error.decline_code`, or `error.code` when
/// there is none). Unknown codes are Soft: a few retries on the policy's days, then a human.
///
/// Hard means retrying the same stored method cannot succeed without the customer: the card
/// is gone or blocked (lost, stolen, pickup, restricted, fraudulent, revoked, stop payment),
/// its details are wrong or out of date (expired, number, CVC, ZIP, new account
/// information), the card or currency is not supported, the issuer said never to retry, or
/// the bank wants the customer present (authentication, PIN). `not_permitted` and
/// `transaction_not_allowed` are Hard because card networks class "transaction not permitted"
/// as "issuer will never approve" and charge for reattempts.
pub fn decline_class(code: &str) -> DeclineClass {
    match code {
        "authentication_required"
        | "card_not_supported"
        | "currency_not_supported"
        | "do_not_try_again"
        | "expired_card"
        | "fraudulent"
        | "incorrect_cvc"
        | "incorrect_number"
        | "incorrect_pin"
        | "incorrect_zip"
        | "invalid_account"
        | "invalid_cvc"
        | "invalid_expiry_month"
        | "invalid_expiry_year"
        | "invalid_number"
        | "invalid_pin"
        | "lost_card"
        | "merchant_blacklist"
        | "new_account_information_available"
        | "not_permitted"
        | "offline_pin_required"
        | "online_or_offline_pin_required"
        | "pickup_card"
        | "pin_try_exceeded"
        | "restricted_card"
        | "revocation_of_all_authorizations"
        | "revocation_of_authorization"
        | "security_violation"
        | "service_not_allowed"
        | "stolen_card"
        | "stop_payment_order"
        | "testmode_decline"
        | "transaction_not_allowed" => DeclineClass::Hard,
        "processing_error" => DeclineClass::Retryable,
        // Listed to document the choice; they share the default below: insufficient_funds,
        // do_not_honor, generic_decline, card_declined, try_again_later,
        // card_velocity_exceeded, withdrawal_count_limit_exceeded, issuer_not_available,
        // reenter_transaction, approve_with_id, call_issuer, no_action_taken,
        // duplicate_transaction, invalid_amount.
        _ => DeclineClass::Soft,
    }
}

fn authentication_required(reference: Option<String>) -> Outcome {
    declined(
        DeclineClass::Hard,
        "authentication_required",
        "The bank requires the customer to authenticate this payment, which cannot happen \
         off-session; ask the customer to pay the invoice themselves or update the card."
            .to_owned(),
        reference,
    )
}

fn declined(
    class: DeclineClass,
    code: &str,
    message: String,
    reference: Option<String>,
) -> Outcome {
    Outcome::Declined {
        class,
        code: code.to_owned(),
        message,
        reference,
    }
}

fn str_field<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn with_fallback(message: Option<&str>, fallback: &str) -> String {
    message.unwrap_or(fallback).to_owned()
}

/// Why a webhook's `Stripe-Signature` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("malformed Stripe-Signature header: {0}")]
    Malformed(&'static str),
    #[error("the Stripe-Signature header has no v1 signature")]
    NoV1Signature,
    #[error("no v1 signature matches the body and the endpoint's signing secret")]
    Mismatch,
    /// `age` is now minus the signed timestamp, in seconds; negative when it is in the future.
    #[error(
        "the signed timestamp is {age} s from now, beyond the tolerance (replayed request or \
         clock skew)"
    )]
    Stale { age: i64 },
    /// An empty key would let anyone sign: refuse rather than compare.
    #[error("no webhook signing secret is configured")]
    MissingSecret,
}

type HmacSha256 = Hmac<Sha256>;

/// Checks a `Stripe-Signature` header (`t=<unix>,v1=<hex>[,v1=<hex>...]`) against the raw
/// body and the endpoint's signing secret (`whsec_...`, used as-is). Any `v1` may match, so
/// both secrets verify while Stripe rolls one over; other schemes (`v0`) are ignored. The
/// signature is checked before the timestamp, so `Stale` is only reported for authentic
/// requests. Returns the signed timestamp.
pub fn verify_signature(
    header: &str,
    payload: &[u8],
    secret: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<i64, SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::MissingSecret);
    }
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            return Err(SignatureError::Malformed("an entry is not key=value"));
        };
        match key {
            "t" => {
                let t = value
                    .parse::<i64>()
                    .map_err(|_| SignatureError::Malformed("t is not a unix timestamp"))?;
                if timestamp.replace(t).is_some() {
                    return Err(SignatureError::Malformed("t appears twice"));
                }
            }
            "v1" => candidates.push(value),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return Err(SignatureError::Malformed("no t= timestamp"));
    };
    if candidates.is_empty() {
        return Err(SignatureError::NoV1Signature);
    }
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::MissingSecret)?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    // A candidate that is not hex cannot match; it is skipped rather than fatal so one odd
    // entry does not hide a good one.
    let matched = candidates.iter().any(|candidate| {
        hex::decode(candidate).is_ok_and(|bytes| mac.clone().verify_slice(&bytes).is_ok())
    });
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    let age = now_unix.saturating_sub(timestamp);
    if age.saturating_abs() > tolerance_secs {
        return Err(SignatureError::Stale { age });
    }
    Ok(timestamp)
}

/// The parts of a Stripe event a handler needs; `object` is `data.object` (a PaymentIntent,
/// a Dispute, ...), left as JSON because its shape depends on `event_type`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    pub id: String,
    pub event_type: String,
    pub created: i64,
    pub object: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the webhook body is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the webhook body has no {0}; it is not a Stripe event")]
    Missing(&'static str),
}

/// Reads Stripe's event shape (`id`, `type`, `created`, `data.object`). Call only on a body
/// that [`verify_signature`] accepted.
pub fn parse_event(payload: &[u8]) -> Result<WebhookEvent, EventError> {
    let mut event: Value = serde_json::from_slice(payload)?;
    let id = str_field(&event, "id").ok_or(EventError::Missing("id"))?;
    let event_type = str_field(&event, "type").ok_or(EventError::Missing("type"))?;
    let created = event
        .get("created")
        .and_then(Value::as_i64)
        .ok_or(EventError::Missing("created"))?;
    let (id, event_type) = (id.to_owned(), event_type.to_owned());
    let object = event
        .pointer_mut("/data/object")
        .filter(|object| object.is_object())
        .map(Value::take)
        .ok_or(EventError::Missing("data.object"))?;
    Ok(WebhookEvent {
        id,
        event_type,
        created,
        object,
    })
}

/// `metadata[key]` of a Stripe object as a string; `None` when absent or empty.
pub fn metadata_str<'v>(object: &'v Value, key: &str) -> Option<&'v str> {
    object
        .get("metadata")
        .and_then(|metadata| str_field(metadata, key))
}

/// `metadata[key]` of a Stripe object as an integer. Stripe stores metadata values as
/// strings, so `"4812"` reads as 4812; anything that is not an integer is `None`.
pub fn metadata_i64(object: &Value, key: &str) -> Option<i64> {
    let value = object.get("metadata")?.get(key)?;
    match value {
        Value::String(text) => text.trim().parse().ok(),
        other => other.as_i64(),
    }
}

/// The PaymentIntent an event's object belongs to: its own id for a PaymentIntent, its
/// `payment_intent` field for a Charge, Dispute or Refund. Disputes carry no copy of the
/// intent's metadata, so this is how they lead back to the payment and its invoice.
pub fn payment_intent_id(object: &Value) -> Option<&str> {
    if str_field(object, "object") == Some("payment_intent") {
        return str_field(object, "id");
    }
    str_field(object, "payment_intent")
}

#[cfg(test)]
#[path = "stripe_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "stripe_props.rs"]
mod props;
