//! Signed JSON requests to another system, and how their answers are read.
//!
//! A request carries `Idempotency-Key` (stable across attempts) and, when the connector has a
//! secret, `Authorization: Bearer` and `X-Arbor-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
//! "t.body">` so the receiver can check origin and freshness.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long one attempt may take before it counts as a (retryable) failure.
pub const TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 2xx: taken.
    Success,
    /// 409: the receiver already has this document (an earlier attempt got through).
    Duplicate,
    /// Timeouts, throttling and server errors: try again later.
    Retry,
    /// Any other 4xx: the request itself is refused; retrying cannot help until a person
    /// fixes the cause (credentials, mapping, the receiver's configuration).
    Permanent,
}

pub fn classify(status: u16) -> Class {
    match status {
        200..=299 => Class::Success,
        409 => Class::Duplicate,
        408 | 425 | 429 | 500..=599 => Class::Retry,
        _ => Class::Permanent,
    }
}

pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm is unreachable in practice.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// POST, or PATCH for CRM record updates.
    pub method: reqwest::Method,
    pub url: &'a str,
    pub body: Vec<u8>,
    pub idempotency_key: &'a str,
    /// Sent as `Authorization: Bearer`.
    pub bearer: Option<&'a str>,
    /// Signs the body (`X-Arbor-Signature`).
    pub signing_secret: Option<&'a str>,
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status: Option<u16>,
    pub class: Class,
    pub body: String,
    pub error: Option<String>,
    pub duration_ms: i32,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("Arbor/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

pub async fn post(client: &reqwest::Client, r: &Request<'_>) -> Attempt {
    let started = Instant::now();
    let mut req = client
        .request(r.method.clone(), r.url)
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", r.idempotency_key)
        .body(r.body.clone());
    if let Some(token) = r.bearer.filter(|s| !s.is_empty()) {
        req = req.bearer_auth(token);
    }
    if let Some(secret) = r.signing_secret.filter(|s| !s.is_empty()) {
        let ts = chrono::Utc::now().timestamp();
        req = req.header("X-Arbor-Signature", signature(secret, ts, &r.body));
    }
    let result = req.send().await;
    let elapsed = |s: Instant| i32::try_from(s.elapsed().as_millis()).unwrap_or(i32::MAX);
    match result {
        Err(e) => Attempt {
            status: None,
            class: Class::Retry,
            body: String::new(),
            // reqwest's Display omits the cause ("error sending request"); the chain names it.
            error: Some(error_chain(&e)),
            duration_ms: elapsed(started),
        },
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            let class = classify(status);
            let error = match class {
                Class::Success | Class::Duplicate => None,
                _ => Some(format!("HTTP {status}: {}", snippet(&body))),
            };
            Attempt {
                status: Some(status),
                class,
                body,
                error,
                duration_ms: elapsed(started),
            }
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The start of a response body, on one line, for logs and the health page.
pub fn snippet(body: &str) -> String {
    let one: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s: String = one.chars().take(300).collect();
    if one.chars().count() > 300 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_whether_a_retry_can_help() {
        assert_eq!(classify(200), Class::Success);
        assert_eq!(classify(201), Class::Success);
        assert_eq!(classify(409), Class::Duplicate);
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert_eq!(classify(s), Class::Retry, "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            assert_eq!(classify(s), Class::Permanent, "{s}");
        }
    }

    #[test]
    fn signature_matches_an_independent_hmac() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        assert_eq!(
            signature("s3cret", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }

    #[test]
    fn snippets_are_one_short_line() {
        assert_eq!(snippet("a\n  b\tc"), "a b c");
        assert_eq!(snippet(&"x".repeat(400)).chars().count(), 301);
    }
}
