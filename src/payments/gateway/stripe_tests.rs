//! The Stripe connector against recorded Stripe answers served from a local socket, and the
//! webhook checks against signatures computed independently (Python's hmac module).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::json;

use super::*;

const API_KEY: &str = "sk_test_51ArborFixtureKey0000DoNotUseQx9Zk2Lm";

const SUCCEEDED: &str =
    include_str!("../../../tests/fixtures/stripe/200_payment_intent_succeeded.json");
const PROCESSING: &str =
    include_str!("../../../tests/fixtures/stripe/200_payment_intent_processing.json");
const INSUFFICIENT_FUNDS: &str =
    include_str!("../../../tests/fixtures/stripe/402_card_declined_insufficient_funds.json");
const LOST_CARD: &str =
    include_str!("../../../tests/fixtures/stripe/402_card_declined_lost_card.json");
const STOLEN_CARD: &str =
    include_str!("../../../tests/fixtures/stripe/402_card_declined_stolen_card.json");
const EXPIRED_CARD: &str = include_str!("../../../tests/fixtures/stripe/402_expired_card.json");
const PROCESSING_ERROR: &str =
    include_str!("../../../tests/fixtures/stripe/402_processing_error.json");
const AUTHENTICATION_REQUIRED: &str =
    include_str!("../../../tests/fixtures/stripe/402_authentication_required.json");
const RATE_LIMIT: &str = include_str!("../../../tests/fixtures/stripe/429_rate_limit.json");
const API_ERROR: &str = include_str!("../../../tests/fixtures/stripe/500_api_error.json");
const BAD_API_KEY: &str =
    include_str!("../../../tests/fixtures/stripe/401_authentication_error.json");
const RESOURCE_MISSING: &str =
    include_str!("../../../tests/fixtures/stripe/400_resource_missing.json");

const EVENT_SUCCEEDED: &str =
    include_str!("../../../tests/fixtures/stripe/event_payment_intent_succeeded.json");
const EVENT_FAILED: &str =
    include_str!("../../../tests/fixtures/stripe/event_payment_intent_payment_failed.json");
const EVENT_DISPUTE: &str =
    include_str!("../../../tests/fixtures/stripe/event_charge_dispute_created.json");

// ---- a one-shot HTTP/1.1 server that records the request and replays a fixture ----

struct Recorded {
    method: String,
    path: String,
    /// Names lower-cased.
    headers: Vec<(String, String)>,
    body: String,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_str(&self.body).unwrap()
    }
}

fn serve_once(status: u16, body: &str) -> (String, JoinHandle<Recorded>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let body = body.to_owned();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap().to_owned();
        let path = parts.next().unwrap().to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .map_or(0, |(_, value)| value.parse::<usize>().unwrap());
        let mut request_body = vec![0; length];
        reader.read_exact(&mut request_body).unwrap();
        let response = format!(
            "HTTP/1.1 {status} Fixture\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nRequest-Id: req_fixture\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).unwrap();
        stream.flush().unwrap();
        Recorded {
            method,
            path,
            headers,
            body: String::from_utf8(request_body).unwrap(),
        }
    });
    (base, server)
}

fn charge_request() -> ChargeRequest {
    ChargeRequest {
        idempotency_key: "arbor-charge-4812-1".to_owned(),
        amount_minor: 12550,
        currency: "EUR".to_owned(),
        customer_ref: Some("cus_QOz1ArborAcme".to_owned()),
        method_token: "pm_1PXg7uL2kRz5QvTmVisa4242".to_owned(),
        description: "Invoice INV-2024-0042".to_owned(),
        metadata: vec![
            ("invoice_id".to_owned(), "4812".to_owned()),
            ("invoice_number".to_owned(), "INV-2024-0042".to_owned()),
        ],
    }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn assert_charge_request(recorded: &Recorded) {
    assert_eq!(recorded.method, "POST");
    assert_eq!(recorded.path, "/v1/payment_intents");
    let bearer = format!("Bearer {API_KEY}");
    assert_eq!(recorded.header("authorization"), Some(bearer.as_str()));
    assert_eq!(
        recorded.header("idempotency-key"),
        Some("arbor-charge-4812-1")
    );
    assert_eq!(recorded.header("stripe-version"), Some("2024-06-20"));
    assert_eq!(
        recorded.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        recorded.form(),
        pairs(&[
            ("amount", "12550"),
            ("currency", "eur"),
            ("customer", "cus_QOz1ArborAcme"),
            ("payment_method", "pm_1PXg7uL2kRz5QvTmVisa4242"),
            ("confirm", "true"),
            ("off_session", "true"),
            ("automatic_payment_methods[enabled]", "true"),
            ("automatic_payment_methods[allow_redirects]", "never"),
            ("description", "Invoice INV-2024-0042"),
            ("metadata[invoice_id]", "4812"),
            ("metadata[invoice_number]", "INV-2024-0042"),
        ])
    );
}

/// Charges against a server replaying `body` with `status`, checks the request Stripe would
/// have received, and returns the outcome.
async fn charge_fixture(status: u16, body: &str) -> Outcome {
    let (base, server) = serve_once(status, body);
    let gateway = StripeGateway::new(API_KEY.to_owned(), &base).unwrap();
    let outcome = gateway.charge(&charge_request()).await;
    let recorded = server.join().unwrap();
    assert_charge_request(&recorded);
    assert!(
        !format!("{outcome:?}").contains(API_KEY),
        "the outcome leaks the API key: {outcome:?}"
    );
    outcome
}

fn declined(class: DeclineClass, code: &str, reference: Option<&str>) -> impl Fn(&Outcome) {
    let code = code.to_owned();
    let reference = reference.map(str::to_owned);
    move |outcome: &Outcome| match outcome {
        Outcome::Declined {
            class: got_class,
            code: got_code,
            message,
            reference: got_reference,
        } => {
            assert_eq!(*got_class, class, "class of {outcome:?}");
            assert_eq!(*got_code, code, "code of {outcome:?}");
            assert_eq!(*got_reference, reference, "reference of {outcome:?}");
            assert!(!message.is_empty(), "empty message in {outcome:?}");
        }
        other => panic!("expected a decline, got {other:?}"),
    }
}

fn message_of(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Declined { message, .. } => message,
        other => panic!("expected a decline, got {other:?}"),
    }
}

// ---- charges against recorded answers ----

#[tokio::test]
async fn succeeded_intent_is_a_success_with_the_intent_id() {
    let outcome = charge_fixture(200, SUCCEEDED).await;
    assert_eq!(
        outcome,
        Outcome::Succeeded {
            reference: "pi_3PXg8bL2kRz5QvTm1aB2cD3e".to_owned()
        }
    );
}

#[tokio::test]
async fn processing_intent_is_pending() {
    let outcome = charge_fixture(200, PROCESSING).await;
    assert_eq!(
        outcome,
        Outcome::Pending {
            reference: "pi_3PXhSepaDebitQvTm0pRoCeS5".to_owned()
        }
    );
}

#[tokio::test]
async fn insufficient_funds_is_a_soft_decline() {
    let outcome = charge_fixture(402, INSUFFICIENT_FUNDS).await;
    declined(
        DeclineClass::Soft,
        "insufficient_funds",
        Some("pi_3PXgInSuFfIcIeNt01"),
    )(&outcome);
    assert_eq!(message_of(&outcome), "Your card has insufficient funds.");
}

#[tokio::test]
async fn lost_card_is_a_hard_decline() {
    let outcome = charge_fixture(402, LOST_CARD).await;
    declined(
        DeclineClass::Hard,
        "lost_card",
        Some("pi_3PXgLoStCaRd00000002"),
    )(&outcome);
}

#[tokio::test]
async fn stolen_card_is_a_hard_decline() {
    let outcome = charge_fixture(402, STOLEN_CARD).await;
    declined(
        DeclineClass::Hard,
        "stolen_card",
        Some("pi_3PXgStOlEnCaRd000003"),
    )(&outcome);
}

#[tokio::test]
async fn expired_card_is_a_hard_decline() {
    let outcome = charge_fixture(402, EXPIRED_CARD).await;
    declined(
        DeclineClass::Hard,
        "expired_card",
        Some("pi_3PXgExPiReDcArD00004"),
    )(&outcome);
    assert_eq!(message_of(&outcome), "Your card has expired.");
}

#[tokio::test]
async fn processing_error_is_retryable() {
    let outcome = charge_fixture(402, PROCESSING_ERROR).await;
    declined(
        DeclineClass::Retryable,
        "processing_error",
        Some("pi_3PXgPrOcEsSiNg000005"),
    )(&outcome);
}

#[tokio::test]
async fn authentication_required_off_session_is_a_hard_decline() {
    let outcome = charge_fixture(402, AUTHENTICATION_REQUIRED).await;
    declined(
        DeclineClass::Hard,
        "authentication_required",
        Some("pi_3PXgAuThReQuIrEd0006"),
    )(&outcome);
    assert!(message_of(&outcome).contains("authenticate"));
}

#[tokio::test]
async fn rate_limit_is_retryable() {
    let outcome = charge_fixture(429, RATE_LIMIT).await;
    declined(DeclineClass::Retryable, "rate_limit", None)(&outcome);
}

#[tokio::test]
async fn api_error_is_retryable() {
    let outcome = charge_fixture(500, API_ERROR).await;
    declined(DeclineClass::Retryable, "api_error", None)(&outcome);
}

#[tokio::test]
async fn bad_api_key_is_retryable_and_points_staff_to_settings() {
    let outcome = charge_fixture(401, BAD_API_KEY).await;
    declined(DeclineClass::Retryable, "authentication_error", None)(&outcome);
    let message = message_of(&outcome);
    assert!(message.contains("Settings → Payments"), "{message}");
    // Stripe's own message quotes the key's tail; it must not be passed on.
    assert!(!message.contains("sk_test"), "{message}");
}

#[tokio::test]
async fn missing_payment_method_is_a_hard_decline() {
    let outcome = charge_fixture(400, RESOURCE_MISSING).await;
    declined(DeclineClass::Hard, "resource_missing", None)(&outcome);
    assert!(message_of(&outcome).contains("No such PaymentMethod"));
}

#[tokio::test]
async fn closed_port_is_a_retryable_network_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let gateway = StripeGateway::new(API_KEY.to_owned(), &base).unwrap();
    let outcome = gateway.charge(&charge_request()).await;
    declined(DeclineClass::Retryable, "network", None)(&outcome);
    let message = message_of(&outcome);
    assert!(message.contains("could not connect"), "{message}");
    assert!(!message.contains(API_KEY));
    assert!(!message.contains("127.0.0.1"), "{message}");
}

#[tokio::test]
async fn silent_server_times_out_as_a_network_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        thread::sleep(Duration::from_millis(1500));
        drop(stream);
    });
    let gateway = StripeGateway::with_timeouts(
        API_KEY.to_owned(),
        &base,
        Duration::from_secs(1),
        Duration::from_millis(200),
    )
    .unwrap();
    let outcome = gateway.charge(&charge_request()).await;
    declined(DeclineClass::Retryable, "network", None)(&outcome);
    assert!(message_of(&outcome).contains("did not answer in time"));
    server.join().unwrap();
}

#[tokio::test]
async fn body_that_is_not_json_is_a_network_failure() {
    let outcome = charge_fixture(502, "<html><body>Bad gateway</body></html>").await;
    declined(DeclineClass::Retryable, "network", None)(&outcome);
    assert!(message_of(&outcome).contains("HTTP 502"));
}

#[tokio::test]
async fn api_key_echoed_by_the_server_is_redacted() {
    let body = json!({"error": {
        "type": "invalid_request_error",
        "code": "parameter_invalid_string",
        "message": format!("Bad header near {API_KEY} (echoed by a proxy)"),
    }})
    .to_string();
    let outcome = charge_fixture(400, &body).await;
    declined(DeclineClass::Retryable, "unexpected_response", None)(&outcome);
    let message = message_of(&outcome);
    assert!(!message.contains(API_KEY), "{message}");
    assert!(message.contains("[redacted]"), "{message}");
}

#[tokio::test]
async fn optional_fields_are_left_out_and_metadata_is_encoded() {
    let (base, server) = serve_once(200, SUCCEEDED);
    let gateway = StripeGateway::new(API_KEY.to_owned(), &base).unwrap();
    let request = ChargeRequest {
        idempotency_key: "arbor-charge-77-3".to_owned(),
        amount_minor: 990,
        currency: "Usd".to_owned(),
        customer_ref: None,
        method_token: "pm_card_visa".to_owned(),
        description: String::new(),
        metadata: vec![("note".to_owned(), "A&B = 50% off, ok?".to_owned())],
    };
    let outcome = gateway.charge(&request).await;
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    let recorded = server.join().unwrap();
    assert_eq!(
        recorded.header("idempotency-key"),
        Some("arbor-charge-77-3")
    );
    assert!(
        !recorded.body.contains(' '),
        "not form-encoded: {}",
        recorded.body
    );
    assert_eq!(
        recorded.form(),
        pairs(&[
            ("amount", "990"),
            ("currency", "usd"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("off_session", "true"),
            ("automatic_payment_methods[enabled]", "true"),
            ("automatic_payment_methods[allow_redirects]", "never"),
            ("metadata[note]", "A&B = 50% off, ok?"),
        ])
    );
}

// ---- construction ----

#[test]
fn debug_output_hides_the_api_key() {
    let gateway = StripeGateway::new(API_KEY.to_owned(), DEFAULT_BASE_URL).unwrap();
    let debug = format!("{gateway:?}");
    assert!(!debug.contains(API_KEY), "{debug}");
    assert!(debug.contains("[redacted]"), "{debug}");
    assert!(
        debug.contains("https://api.stripe.com/v1/payment_intents"),
        "{debug}"
    );
    assert_eq!(gateway.name(), "stripe");
}

#[test]
fn construction_rejects_bad_keys_and_urls_without_quoting_the_key() {
    let newline_key = format!("{API_KEY}\n");
    for (key, url) in [
        ("", DEFAULT_BASE_URL),
        (newline_key.as_str(), DEFAULT_BASE_URL),
        (API_KEY, "not a url"),
        (API_KEY, "ftp://api.stripe.com"),
    ] {
        let err = StripeGateway::new(key.to_owned(), url).unwrap_err();
        let text = format!("{err:#}");
        assert!(key.is_empty() || !text.contains(key.trim()), "{text}");
    }
    let trailing = StripeGateway::new(API_KEY.to_owned(), "http://127.0.0.1:9/").unwrap();
    assert_eq!(trailing.endpoint, "http://127.0.0.1:9/v1/payment_intents");
}

// ---- classify on answers not worth a socket ----

#[test]
fn intent_needing_the_customer_is_a_hard_authentication_decline() {
    for status in [
        "requires_action",
        "requires_payment_method",
        "requires_confirmation",
    ] {
        let body = json!({"id": "pi_1", "object": "payment_intent", "status": status,
                          "last_payment_error": null});
        declined(DeclineClass::Hard, "authentication_required", Some("pi_1"))(&classify(
            200, &body,
        ));
    }
}

#[test]
fn intent_returned_to_requires_payment_method_uses_its_last_error() {
    let body = json!({"id": "pi_2", "object": "payment_intent",
                      "status": "requires_payment_method",
                      "last_payment_error": {"type": "card_error", "code": "card_declined",
                                             "decline_code": "do_not_honor",
                                             "message": "Your card was declined."}});
    declined(DeclineClass::Soft, "do_not_honor", Some("pi_2"))(&classify(200, &body));
}

#[test]
fn requires_capture_is_pending() {
    let body = json!({"id": "pi_3", "status": "requires_capture"});
    assert_eq!(
        classify(200, &body),
        Outcome::Pending {
            reference: "pi_3".to_owned()
        }
    );
}

#[test]
fn odd_success_bodies_are_unexpected() {
    declined(DeclineClass::Retryable, "unexpected_response", Some("pi_4"))(&classify(
        200,
        &json!({"id": "pi_4", "status": "canceled"}),
    ));
    declined(DeclineClass::Retryable, "unexpected_response", None)(&classify(
        200,
        &json!({"status": "succeeded"}),
    ));
}

#[test]
fn idempotency_conflicts_are_retryable() {
    let body = json!({"error": {"type": "idempotency_error",
        "message": "There is currently another in-progress request using this Idempotent Key."}});
    declined(DeclineClass::Retryable, "idempotency_error", None)(&classify(409, &body));
    let reused = json!({"error": {"type": "idempotency_error",
        "message": "Keys for idempotent requests can only be used with the same parameters."}});
    declined(DeclineClass::Retryable, "idempotency_error", None)(&classify(400, &reused));
}

#[test]
fn restricted_key_without_permission_is_retryable() {
    let body = json!({"error": {"type": "invalid_request_error",
        "message": "The provided key 'rk_test_***Qx9' does not have the required permissions."}});
    let outcome = classify(403, &body);
    declined(DeclineClass::Retryable, "permission_error", None)(&outcome);
    assert!(message_of(&outcome).contains("Settings → Payments"));
}

#[test]
fn gateway_errors_without_a_body_are_retryable() {
    for status in [500, 502, 503, 504] {
        declined(DeclineClass::Retryable, "api_error", None)(&classify(status, &Value::Null));
    }
    let lock = json!({"error": {"type": "invalid_request_error", "code": "lock_timeout",
                                "message": "This object cannot be accessed right now."}});
    declined(DeclineClass::Retryable, "lock_timeout", None)(&classify(429, &lock));
}

#[test]
fn unknown_decline_code_is_soft_and_keeps_its_code() {
    let body = json!({"error": {"type": "card_error", "code": "card_declined",
                                "decline_code": "brand_new_issuer_reason",
                                "message": "Your card was declined."}});
    declined(DeclineClass::Soft, "brand_new_issuer_reason", None)(&classify(402, &body));
    let no_decline_code = json!({"error": {"type": "card_error", "code": "card_declined",
                                           "message": "Your card was declined."}});
    declined(DeclineClass::Soft, "card_declined", None)(&classify(402, &no_decline_code));
}

#[test]
fn issuer_advice_not_to_retry_makes_a_soft_decline_hard() {
    let body = json!({"error": {"type": "card_error", "code": "card_declined",
                                "decline_code": "generic_decline",
                                "advice_code": "do_not_try_again",
                                "message": "Your card was declined."}});
    declined(DeclineClass::Hard, "generic_decline", None)(&classify(402, &body));
    let hard = json!({"error": {"type": "card_error", "code": "card_declined",
                                "decline_code": "pickup_card", "advice_code": "try_again_later",
                                "message": "Your card was declined."}});
    declined(DeclineClass::Hard, "pickup_card", None)(&classify(402, &hard));
}

#[test]
fn other_invalid_requests_are_unexpected_and_resource_missing_on_404_is_hard() {
    let body = json!({"error": {"type": "invalid_request_error", "code": "parameter_missing",
                                "param": "amount", "message": "Missing required param: amount."}});
    let outcome = classify(400, &body);
    declined(DeclineClass::Retryable, "unexpected_response", None)(&outcome);
    assert!(message_of(&outcome).contains("parameter_missing"));
    let gone = json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
                                "message": "No such customer: 'cus_gone'"}});
    declined(DeclineClass::Hard, "resource_missing", None)(&classify(404, &gone));
    declined(DeclineClass::Retryable, "unexpected_response", None)(&classify(418, &json!({})));
}

#[test]
fn decline_code_table() {
    for soft in [
        "insufficient_funds",
        "do_not_honor",
        "generic_decline",
        "try_again_later",
        "card_velocity_exceeded",
        "withdrawal_count_limit_exceeded",
        "issuer_not_available",
        "reenter_transaction",
        "approve_with_id",
        "call_issuer",
        "card_declined",
        "something_new",
    ] {
        assert_eq!(decline_class(soft), DeclineClass::Soft, "{soft}");
    }
    for hard in [
        "lost_card",
        "stolen_card",
        "pickup_card",
        "restricted_card",
        "fraudulent",
        "expired_card",
        "incorrect_number",
        "invalid_account",
        "card_not_supported",
        "do_not_try_again",
        "revocation_of_authorization",
        "authentication_required",
        "security_violation",
        "not_permitted",
        "transaction_not_allowed",
    ] {
        assert_eq!(decline_class(hard), DeclineClass::Hard, "{hard}");
    }
    assert_eq!(decline_class("processing_error"), DeclineClass::Retryable);
}

// ---- webhook signatures (expected values computed with Python's hmac, not this code) ----

const WH_PAYLOAD: &[u8] = br#"{"id":"evt_3PXg8bL2kRz5QvTm1kXwQ7nP","object":"event","type":"payment_intent.succeeded","data":{"object":{"id":"pi_3PXg8bL2kRz5QvTm1aB2cD3e","metadata":{"invoice_id":"4812"}}}}"#;
const WH_SECRET: &str = "whsec_arbor_test_9cF2bX7kLmQ4sT8vW1yZ3aD6";
const WH_OLD_SECRET: &str = "whsec_arbor_old_Hn5pR2tV8xB4dF7jK1mN3qS6";
const WH_T: i64 = 1_719_878_400;
const WH_NOW: i64 = WH_T + 42;
/// HMAC-SHA256(WH_SECRET, "1719878400." + WH_PAYLOAD)
const SIG_VALID: &str = "669a696fc247228acce4d66b393ca84af21ad03ef65609ee27f29804f442deaa";
/// HMAC-SHA256(WH_OLD_SECRET, "1719878400." + WH_PAYLOAD)
const SIG_OLD_SECRET: &str = "0afb57eea4ecdd8028aed7129557760eda8ca47e353be4e085bdbf0b0d07f69e";
/// HMAC-SHA256(WH_SECRET, "1719878141." + WH_PAYLOAD): 301 s before WH_NOW.
const SIG_STALE: &str = "3fbcd68054bc910eaf0b70ced46afc721b24e8bf37d753db019898c9864c359c";
/// HMAC-SHA256(WH_SECRET, "1719878743." + WH_PAYLOAD): 301 s after WH_NOW.
const SIG_FUTURE: &str = "51b85ed32ebea740f24b3e5163f66bf8febdbf48dce1cf9e40c0019a04634fde";
/// HMAC-SHA256(WH_SECRET, "1719878142." + WH_PAYLOAD): exactly 300 s before WH_NOW.
const SIG_EDGE: &str = "eb664831b443a021cedefff02c77bf17c688a41b0f55aab468e340c9ab0c303b";
/// Some other scheme's digest; v0 must never be accepted.
const SIG_V0: &str = "14bc7212a7fe0ba3274dbabce5b1e8160bbe35724a454f19c6eff1e11b9a490c";

fn verify(header: &str, payload: &[u8], secret: &str) -> Result<i64, SignatureError> {
    verify_signature(header, payload, secret, WH_NOW, TOLERANCE_SECS)
}

#[test]
fn valid_signature_returns_its_timestamp() {
    let header = format!("t={WH_T},v1={SIG_VALID}");
    assert_eq!(verify(&header, WH_PAYLOAD, WH_SECRET), Ok(WH_T));
    let with_v0 = format!("t={WH_T},v1={SIG_VALID},v0={SIG_V0}");
    assert_eq!(verify(&with_v0, WH_PAYLOAD, WH_SECRET), Ok(WH_T));
}

#[test]
fn tampered_body_is_a_mismatch() {
    let header = format!("t={WH_T},v1={SIG_VALID}");
    let tampered = String::from_utf8(WH_PAYLOAD.to_vec())
        .unwrap()
        .replace("4812", "4813");
    assert_eq!(
        verify(&header, tampered.as_bytes(), WH_SECRET),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn wrong_secret_is_a_mismatch() {
    let header = format!("t={WH_T},v1={SIG_VALID}");
    assert_eq!(
        verify(&header, WH_PAYLOAD, WH_OLD_SECRET),
        Err(SignatureError::Mismatch)
    );
    // Moving the signature to another timestamp breaks it too: t is signed.
    let shifted = format!("t={},v1={SIG_VALID}", WH_T + 1);
    assert_eq!(
        verify(&shifted, WH_PAYLOAD, WH_SECRET),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn old_timestamp_is_stale() {
    let header = format!("t={},v1={SIG_STALE}", WH_NOW - 301);
    assert_eq!(
        verify(&header, WH_PAYLOAD, WH_SECRET),
        Err(SignatureError::Stale { age: 301 })
    );
    let edge = format!("t={},v1={SIG_EDGE}", WH_NOW - 300);
    assert_eq!(verify(&edge, WH_PAYLOAD, WH_SECRET), Ok(WH_NOW - 300));
}

#[test]
fn timestamp_too_far_in_the_future_is_stale() {
    let header = format!("t={},v1={SIG_FUTURE}", WH_NOW + 301);
    assert_eq!(
        verify(&header, WH_PAYLOAD, WH_SECRET),
        Err(SignatureError::Stale { age: -301 })
    );
}

#[test]
fn any_v1_may_match_during_secret_rotation() {
    let header = format!("t={WH_T},v1={SIG_OLD_SECRET},v1={SIG_VALID}");
    assert_eq!(verify(&header, WH_PAYLOAD, WH_SECRET), Ok(WH_T));
    assert_eq!(verify(&header, WH_PAYLOAD, WH_OLD_SECRET), Ok(WH_T));
    let with_junk = format!("t={WH_T},v1=not-hex,v1={SIG_VALID}");
    assert_eq!(verify(&with_junk, WH_PAYLOAD, WH_SECRET), Ok(WH_T));
}

#[test]
fn only_v0_is_refused() {
    let header = format!("t={WH_T},v0={SIG_V0}");
    assert_eq!(
        verify(&header, WH_PAYLOAD, WH_SECRET),
        Err(SignatureError::NoV1Signature)
    );
}

#[test]
fn malformed_headers_are_refused() {
    for header in [
        "",
        "garbage",
        "v1=669a696fc247228acce4d66b393ca84af21ad03ef65609ee27f29804f442deaa",
        "t=yesterday,v1=669a696fc247228acce4d66b393ca84af21ad03ef65609ee27f29804f442deaa",
        "t=1719878400,t=1719878401,v1=00",
    ] {
        assert!(
            matches!(
                verify(header, WH_PAYLOAD, WH_SECRET),
                Err(SignatureError::Malformed(_))
            ),
            "{header:?}"
        );
    }
}

#[test]
fn empty_secret_is_refused() {
    let header = format!("t={WH_T},v1={SIG_VALID}");
    assert_eq!(
        verify(&header, WH_PAYLOAD, ""),
        Err(SignatureError::MissingSecret)
    );
}

#[test]
fn signature_errors_read_clearly() {
    assert_eq!(
        SignatureError::Stale { age: 301 }.to_string(),
        "the signed timestamp is 301 s from now, beyond the tolerance (replayed request or \
         clock skew)"
    );
    assert_eq!(
        SignatureError::Malformed("no t= timestamp").to_string(),
        "malformed Stripe-Signature header: no t= timestamp"
    );
}

// ---- webhook events ----

#[test]
fn payment_intent_succeeded_event_leads_back_to_the_invoice() {
    let event = parse_event(EVENT_SUCCEEDED.as_bytes()).unwrap();
    assert_eq!(event.id, "evt_3PXg8bL2kRz5QvTm1kXwQ7nP");
    assert_eq!(event.event_type, "payment_intent.succeeded");
    assert_eq!(event.created, 1_719_878_401);
    assert_eq!(event.object["status"], "succeeded");
    assert_eq!(metadata_i64(&event.object, "invoice_id"), Some(4812));
    assert_eq!(
        metadata_str(&event.object, "invoice_number"),
        Some("INV-2024-0042")
    );
    assert_eq!(
        payment_intent_id(&event.object),
        Some("pi_3PXg8bL2kRz5QvTm1aB2cD3e")
    );
}

#[test]
fn payment_failed_event_carries_the_decline() {
    let event = parse_event(EVENT_FAILED.as_bytes()).unwrap();
    assert_eq!(event.event_type, "payment_intent.payment_failed");
    assert_eq!(metadata_i64(&event.object, "invoice_id"), Some(4812));
    assert_eq!(
        event.object["last_payment_error"]["decline_code"],
        "insufficient_funds"
    );
    assert_eq!(
        payment_intent_id(&event.object),
        Some("pi_3PXgInSuFfIcIeNt01")
    );
}

#[test]
fn dispute_event_has_no_invoice_metadata_but_names_its_intent() {
    let event = parse_event(EVENT_DISPUTE.as_bytes()).unwrap();
    assert_eq!(event.event_type, "charge.dispute.created");
    assert_eq!(event.object["object"], "dispute");
    assert_eq!(event.object["amount"], 12550);
    // Stripe does not copy the intent's metadata onto the dispute.
    assert_eq!(metadata_i64(&event.object, "invoice_id"), None);
    assert_eq!(
        payment_intent_id(&event.object),
        Some("pi_3PXg8bL2kRz5QvTm1aB2cD3e")
    );
}

#[test]
fn metadata_helpers_accept_only_integers() {
    let object = json!({"metadata": {"a": "17", "b": " 18 ", "c": "x19", "d": 20, "e": ""}});
    assert_eq!(metadata_i64(&object, "a"), Some(17));
    assert_eq!(metadata_i64(&object, "b"), Some(18));
    assert_eq!(metadata_i64(&object, "c"), None);
    assert_eq!(metadata_i64(&object, "d"), Some(20));
    assert_eq!(metadata_i64(&object, "e"), None);
    assert_eq!(metadata_i64(&object, "missing"), None);
    assert_eq!(metadata_i64(&json!({}), "a"), None);
}

#[test]
fn bodies_that_are_not_events_are_refused() {
    assert!(matches!(parse_event(b"not json"), Err(EventError::Json(_))));
    assert!(matches!(
        parse_event(br#"{"id":"evt_1","type":"x","created":1}"#),
        Err(EventError::Missing("data.object"))
    ));
    assert!(matches!(
        parse_event(br#"{"type":"x","created":1,"data":{"object":{}}}"#),
        Err(EventError::Missing("id"))
    ));
    let minimal = parse_event(WH_PAYLOAD).unwrap_err();
    assert!(matches!(minimal, EventError::Missing("created")));
}
