//! Hostile input through the real app: every body over its endpoint's limit is refused with
//! 413 and a message naming the limit, and changes nothing; user text is shown escaped on
//! every page (see `escaping`).

mod escaping;

use std::io::{Read, Write};

use reqwest::{multipart, Client};
use serde_json::{json, Value};

use crate::{
    accounts::{count, put_account},
    api::create_key,
    billing::{product_with_price, subscribe},
    crm::{deal, generic_connector, post_event},
    helpers::{new_client, TestApp, TestTenant},
};

/// One byte over the largest form the app reads (`web::csrf::FORM_LIMIT`).
const OVER_FORM_LIMIT: usize = 1024 * 1024 + 1;
/// One byte over the largest upload (`accounts::import::MAX_BYTES`).
const OVER_UPLOAD_LIMIT: usize = 10 * 1024 * 1024 + 1;
/// Over the JSON API's and the Stripe webhook's 256 KB.
const OVER_JSON_LIMIT: usize = 256 * 1024 + 1;

async fn tenant(app: &TestApp, prefix: &str) -> (Client, TestTenant) {
    let owner = new_client();
    let t = app.signup(&owner, prefix).await;
    (owner, t)
}

async fn status_and_text(r: reqwest::Response) -> (u16, String) {
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// Posts `file` as a multipart upload the way the import forms do (token in the query).
async fn upload(app: &TestApp, client: &Client, path: &str, file: Vec<u8>) -> (u16, String) {
    let token = app.csrf(client).await;
    let part = multipart::Part::bytes(file)
        .file_name("big.csv")
        .mime_str("text/csv")
        .unwrap();
    let r = client
        .post(app.url(&format!("{path}?csrf_token={token}")))
        .multipart(multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    status_and_text(r).await
}

/// A CSV of `size` bytes: a header and rows that would all be valid.
fn csv_of(header: &str, row: &str, size: usize) -> Vec<u8> {
    let mut out = format!("{header}\n").into_bytes();
    while out.len() < size {
        out.extend_from_slice(row.as_bytes());
        out.push(b'\n');
    }
    out.truncate(size);
    out
}

#[tokio::test]
async fn an_oversized_form_is_413_whether_the_token_is_in_the_body_or_a_header() {
    // Arrange
    let app = TestApp::spawn().await;
    let (owner, t) = tenant(&app, "big-form").await;
    let huge = "x".repeat(OVER_FORM_LIMIT);
    let path = format!("/t/{}/accounts", t.slug);
    // Act: a plain form post (the CSRF middleware reads the body) ...
    let (plain, plain_body) =
        status_and_text(app.post_form(&owner, &path, &[("legal_name", &huge)]).await).await;
    // ... and an htmx post (token in a header, so the form extractor reads the body).
    let token = app.csrf(&owner).await;
    let (htmx, htmx_body) = status_and_text(
        owner
            .post(app.url(&path))
            .header("X-CSRF-Token", token)
            .header("HX-Request", "true")
            .form(&[("legal_name", huge.as_str())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Assert
    assert_eq!(plain, 413, "{}", &plain_body[..plain_body.len().min(300)]);
    assert_eq!(htmx, 413, "{}", &htmx_body[..htmx_body.len().min(300)]);
    for body in [plain_body, htmx_body] {
        assert!(body.contains("larger than 1 MB"), "the limit is named");
    }
    assert_eq!(count(&app, &t, "accounts"), 0);
}

#[tokio::test]
async fn an_oversized_upload_is_413_on_every_import_and_stores_nothing() {
    // Arrange
    let app = TestApp::spawn().await;
    let (owner, t) = tenant(&app, "big-upload").await;
    let base = format!("/t/{}", t.slug);
    let uploads = [
        (
            format!("{base}/imports"),
            csv_of("legal_name", "Acme Ltd", OVER_UPLOAD_LIMIT),
        ),
        (
            format!("{base}/usage/import"),
            csv_of(
                "subscription,sku,date,quantity,external_id",
                "SUB-1,API,2026-01-05,1,e",
                OVER_UPLOAD_LIMIT,
            ),
        ),
        (
            format!("{base}/cash/import"),
            csv_of("date,amount,payer", "2026-01-05,10,Acme", OVER_UPLOAD_LIMIT),
        ),
    ];
    for (path, file) in uploads {
        // Act
        let (status, body) = upload(&app, &owner, &path, file).await;
        // Assert
        assert_eq!(status, 413, "{path}: {}", &body[..body.len().min(300)]);
        assert!(
            body.contains("larger than 10 MB"),
            "{path}: the limit is named"
        );
    }
    for table in ["imports", "usage_records", "remittance_lines"] {
        assert_eq!(count(&app, &t, table), 0, "{table}");
    }
}

#[tokio::test]
async fn an_upload_just_under_the_limit_is_still_read() {
    // Arrange: a remittance file of 9 MB, every row for an unknown currency so it is refused
    // row by row (and stores nothing) rather than for its size.
    let app = TestApp::spawn().await;
    let (owner, t) = tenant(&app, "near-limit").await;
    let file = csv_of("date,amount,currency", "2026-01-05,10,XXX", 9 * 1024 * 1024);
    // Act
    let (status, body) = upload(&app, &owner, &format!("/t/{}/cash/import", t.slug), file).await;
    // Assert
    assert_eq!(status, 422);
    assert!(body.contains("XXX is not a supported ISO 4217 currency code"));
    assert_eq!(count(&app, &t, "remittance_lines"), 0);
}

/// Sends a POST with a chunked body (no Content-Length), the way a streaming client does,
/// and returns the status code.
fn post_chunked(address: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
    let addr = address.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer and close before it has read everything: stop writing then.
    for chunk in body.chunks(16 * 1024) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if stream.write_all(&framed).is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

#[tokio::test]
async fn an_oversized_json_api_body_is_413_json_whether_announced_or_streamed() {
    // Arrange
    let app = TestApp::spawn().await;
    let (owner, t) = tenant(&app, "big-json").await;
    let key = create_key(&app, &owner, &t, "write").await;
    let body = json!({ "legal_name": "Acme", "notes": "x".repeat(OVER_JSON_LIMIT) }).to_string();
    // Act
    let r = Client::new()
        .post(app.url("/api/v1/accounts"))
        .bearer_auth(&key)
        .header("Content-Type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let json: Value = r.json().await.unwrap();
    let auth = format!("Bearer {key}");
    let streamed = tokio::task::spawn_blocking({
        let (addr, body) = (app.address.clone(), body.into_bytes());
        move || {
            post_chunked(
                &addr,
                "/api/v1/accounts",
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                &body,
            )
        }
    })
    .await
    .unwrap();
    // Assert
    assert_eq!(status, 413);
    assert_eq!(json["error"]["type"], "payload_too_large");
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("256 KB"));
    assert_eq!(streamed, 413, "a streamed body is counted as it arrives");
    assert_eq!(count(&app, &t, "accounts"), 0);
    assert_eq!(count(&app, &t, "api_idempotency"), 0);
}

#[tokio::test]
async fn an_oversized_stripe_event_is_413_and_nothing_is_recorded() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_owner, t) = tenant(&app, "big-stripe").await;
    let body = json!({ "id": "evt_big", "type": "payment_intent.succeeded", "created": 1,
        "data": { "object": { "pad": "x".repeat(OVER_JSON_LIMIT) } } })
    .to_string();
    // Act
    let r = new_client()
        .post(app.url(&format!("/hooks/{}/stripe", t.slug)))
        .header("Stripe-Signature", "t=1,v1=00")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, text) = status_and_text(r).await;
    // Assert: refused before the signature is even looked at.
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("256 KB"), "{text}");
    assert_eq!(count(&app, &t, "gateway_events"), 0);
}

#[tokio::test]
async fn a_crm_event_over_the_default_extractor_limit_but_within_a_megabyte_is_received() {
    // Arrange: before, the body went through actix's `Bytes` extractor and its 256 KB
    // default, so a legitimate 300 KB message (many line items) was refused with 413.
    let app = TestApp::spawn().await;
    let (owner, t) = tenant(&app, "crm-300k").await;
    let crm = generic_connector(&app, &owner, &t, None).await;
    let mut event = deal("evt-300k", "D-300", "Padded Ltd");
    event["data"]["object"]["pad"] = json!("x".repeat(300 * 1024));
    // Act
    let (status, body) = post_event(&app, &crm, &event.to_string()).await;
    let (over, _) = post_event(
        &app,
        &crm,
        &json!({ "id": "evt-big", "pad": "x".repeat(1024 * 1024) }).to_string(),
    )
    .await;
    // Assert
    assert_eq!(status, 200, "{body}");
    assert_eq!(over, 413);
    assert_eq!(
        count(&app, &t, "crm_inbox"),
        1,
        "only the event within the limit"
    );
}

#[tokio::test]
async fn oversized_bodies_never_reach_a_usage_record_or_a_subscription() {
    // Arrange: a real subscription, so a small valid record would be stored.
    let app = TestApp::spawn().await;
    let (owner, t) = tenant(&app, "big-usage").await;
    let (_, price) = product_with_price(
        &app,
        &owner,
        &t,
        "API",
        &[("model", "usage"), ("unit_amount", "1")],
    )
    .await;
    let aid = put_account(&app, &t, "Usage Ltd", None);
    subscribe(
        &app,
        &owner,
        &t,
        aid,
        &[
            ("start_date", "2026-01-01"),
            ("item0_price", &price.to_string()),
        ],
    )
    .await;
    let key = create_key(&app, &owner, &t, "write").await;
    // Act
    let mut statuses = Vec::new();
    for path in ["/api/v1/usage_records", "/api/v1/subscriptions"] {
        let r = Client::new()
            .post(app.url(path))
            .bearer_auth(&key)
            .json(&json!({ "account_id": aid, "pad": "x".repeat(OVER_JSON_LIMIT) }))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    // Assert
    assert_eq!(statuses, [413, 413]);
    assert_eq!(count(&app, &t, "usage_records"), 0);
    assert_eq!(
        count(&app, &t, "subscriptions"),
        1,
        "only the one made above"
    );
}
