//! The CRM connector through HTTP: the seven-step handoff (deal won → account, contact and
//! subscription → draft invoice reviewed and sent → payment status back to the CRM → a
//! failed payment opens a task), duplicates applied once, a held deal fixed by its mapping
//! and replayed, signatures (generic, HubSpot v3, Salesforce organization), and a write-back
//! that waits out a receiver that was down.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    time::Duration,
};

use arbor::jobs::worker::drain_tenant;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use scraper::{Html, Selector};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::{
    accounts::id_from,
    billing::{bill, exec, one, product_with_price},
    helpers::{location, new_client, replay, Seen, SmtpSink, TestApp, TestTenant},
};

fn sign(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let at = html
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in page"))
        + start.len();
    let rest = &html[at..];
    &rest[..rest.find(end).unwrap()]
}

pub struct Crm {
    pub id: i64,
    pub url: String,
    pub secret: String,
}

/// A connector of `kind` made through the UI and saved with `settings` (its name first):
/// its id, its receiving URL and the settings page as saved.
async fn connector(
    app: &TestApp,
    client: &reqwest::Client,
    t: &TestTenant,
    kind: &str,
    settings: &[(&str, &str)],
) -> (i64, String, String) {
    let name = settings[0].1;
    let r = app
        .post_form(
            client,
            &format!("/t/{}/crm", t.slug),
            &[("kind", kind), ("name", name)],
        )
        .await;
    assert_eq!(r.status(), 303);
    let id = id_from(&r);
    let html = app
        .post_form(client, &format!("/t/{}/crm/{id}", t.slug), settings)
        .await
        .text()
        .await
        .unwrap();
    let url = between(&html, "id=\"receiving-url\">", "<").to_owned();
    (id, url, html)
}

/// HubSpot's v3 signature of a POST to `url`.
fn hubspot_v3(secret: &str, url: &str, body: &str, ts: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("POST{url}{body}{ts}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A generic connector with write-back to `writeback` (if any), made through the UI.
pub async fn generic_connector(
    app: &TestApp,
    client: &reqwest::Client,
    t: &TestTenant,
    writeback: Option<&str>,
) -> Crm {
    let mut fields = vec![
        ("name", "Pipeline"),
        ("active", "on"),
        ("regenerate_secret", "on"),
    ];
    if let Some(url) = writeback {
        fields.push(("writeback", "on"));
        fields.push(("writeback_url", url));
    }
    let (id, url, html) = connector(app, client, t, "generic", &fields).await;
    Crm {
        id,
        url,
        secret: between(&html, "id=\"new-secret\">", "<").to_owned(),
    }
}

pub fn deal(event_id: &str, deal_id: &str, company: &str) -> Value {
    json!({
        "id": event_id,
        "type": "deal.won",
        "occurred_at": "2026-03-15T10:00:00Z",
        "data": { "object": {
            "id": deal_id,
            "name": "Annual platform",
            "stage": "closedwon",
            "close_date": "2026-03-15",
            "currency": "eur",
            "billing_frequency": "Annual",
            "payment_terms": "Net 30",
            "revenue_recognition": "Ratable",
            "po_number": "PO-77",
            "company": {
                "id": format!("C-{deal_id}"),
                "name": company,
                "domain": format!("{}.example", company.to_lowercase().replace(' ', "")),
                "tax_id": "DE123456789",
                "address": { "line1": "Main St 1", "city": "Berlin", "postal_code": "10115", "country": "DE" }
            },
            "contact": { "id": "P-3", "name": "Ana Ruiz", "email": "ana@acme.example" },
            "line_items": [ { "sku": "PLAN-PRO", "quantity": "10", "price": "90.00", "name": "Pro plan" } ]
        }}
    })
}

pub async fn post_event(app: &TestApp, crm: &Crm, body: &str) -> (u16, String) {
    let t = chrono::Utc::now().timestamp();
    let r = new_client()
        .post(&crm.url)
        .header("Content-Type", "application/json")
        .header("X-Arbor-Signature", sign(&crm.secret, t, body))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let _ = app;
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn drain(app: &TestApp, t: &TestTenant) {
    drain_tenant(&app.state, t.id).await.unwrap();
}

/// Every inbox row as "status: reason", for assertion messages.
fn inbox(app: &TestApp, t: &TestTenant) -> Vec<String> {
    use diesel::{prelude::*, sql_query, sql_types::Text};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        line: String,
    }
    arbor::db::scope::in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(sql_query(
            "SELECT status || ': ' || COALESCE(reason, '') AS line FROM crm_inbox ORDER BY id",
        )
        .load::<Row>(c)?)
    })
    .unwrap()
    .into_iter()
    .map(|r| r.line)
    .collect()
}

async fn setup(app: &TestApp, owner: &reqwest::Client, prefix: &str) -> TestTenant {
    let t = app.signup(owner, prefix).await;
    exec(
        app,
        &t,
        "INSERT INTO settings (key, value) VALUES ('tax.standard_rate', '\"20\"')",
    );
    product_with_price(
        app,
        owner,
        &t,
        "PLAN-PRO",
        &[
            ("model", "per_unit"),
            ("unit_amount", "100"),
            ("interval_months", "12"),
        ],
    )
    .await;
    t
}

fn bodies(seen: &Seen) -> Vec<Value> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str(&r.2).unwrap())
        .collect()
}

#[tokio::test]
async fn a_won_deal_is_billed_sent_and_paid_without_retyping_and_a_failed_payment_opens_a_task() {
    // Arrange: an SMTP sink, a CRM receiver for the write-back, a tenant with a product.
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = TestApp::spawn_with(|c| {
        c.workers = 0;
        c.smtp_url = Some(smtp);
    })
    .await;
    let owner = new_client();
    let (crm_url, seen) = replay(vec![(200, "{}"); 6]);
    let t = setup(&app, &owner, "handoff").await;
    let crm = generic_connector(&app, &owner, &t, Some(&format!("{crm_url}/deals"))).await;

    // 1. Sales marks the deal won: the CRM posts it.
    let (status, answer) = post_event(
        &app,
        &crm,
        &deal("evt-1", "D-1001", "Acme GmbH").to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["received"],
        1
    );

    // 2. Billing takes the account, billing contact, terms and tax profile from it.
    drain(&app, &t).await;
    let aid = one(&app, &t, "SELECT id FROM accounts WHERE legal_name = 'Acme GmbH' AND terms_days = 30 AND currency = 'EUR' AND tax_id = 'DE123456789'");
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM contacts WHERE account_id = {aid} AND email = 'ana@acme.example' AND receives_invoices")), 1);
    let sub = one(
        &app,
        &t,
        &format!("SELECT id FROM subscriptions WHERE account_id = {aid} AND po_number = 'PO-77'"),
    );
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM crm_inbox WHERE status = 'applied'"
        ),
        1
    );
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM crm_links WHERE object_type = 'deal' AND crm_id = 'D-1001' AND subscription_id = {sub}")), 1);

    // 3. The bill run creates a draft invoice (review mode).
    bill(&app, &t, "2026-03-15");
    let inv = one(
        &app,
        &t,
        &format!("SELECT id FROM invoices WHERE subscription_id = {sub} AND status = 'draft'"),
    );

    // 4. An admin reviews tax, discount and PO, then finalizes.
    let page = app
        .html(&owner, &format!("/t/{}/invoices/{inv}", t.slug))
        .await;
    for expected in ["PO-77", "1,080.00", "180.00", "100.00"] {
        assert!(page.contains(expected), "{expected} on the draft: {page}");
    }
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/invoices/{inv}/finalize", t.slug),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);

    // 5. The invoice is emailed to the billing contact from the CRM.
    drain(&app, &t).await;
    let mails = sink.messages();
    assert!(
        mails
            .iter()
            .any(|m| m.contains("ana@acme.example") && m.contains("application/pdf")),
        "invoice email: {mails:?}"
    );

    // 6. The customer pays; the status goes back to the CRM deal.
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/accounts/{aid}/payments", t.slug),
            &[
                ("method", "wire"),
                ("amount", "1080"),
                ("received_on", "2026-03-20"),
                ("reference", "W-1"),
                ("allocation", "oldest"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    drain(&app, &t).await;
    let sent = bodies(&seen);
    let types: Vec<&str> = sent.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["invoice.finalized", "invoice.paid"], "{sent:?}");
    assert!(sent.iter().all(|b| b["deal_id"] == "D-1001"));
    assert_eq!(sent[1]["invoice"]["status"], "paid");
    assert_eq!(sent[1]["invoice"]["amount_due"], "0");

    // 7. Next year the stored card declines: a follow-up task opens and the CRM hears of it.
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/accounts/{aid}/payment-methods", t.slug),
            &[
                ("gateway", "sandbox"),
                ("card_number", "4000000000009987"),
                ("expiry", "12/30"),
                ("auto_charge", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    bill(&app, &t, "2027-03-15");
    let next = one(
        &app,
        &t,
        &format!("SELECT id FROM invoices WHERE subscription_id = {sub} AND status = 'draft'"),
    );
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/invoices/{next}/finalize", t.slug),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    drain(&app, &t).await;
    assert_eq!(
        one(&app, &t, &format!("SELECT count(*) AS id FROM collections_tasks WHERE account_id = {aid} AND status = 'open'")),
        1,
        "a failed payment opens a follow-up task"
    );
    let sent = bodies(&seen);
    let types: Vec<&str> = sent.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert!(
        types.ends_with(&["invoice.finalized", "payment.failed"]),
        "{types:?}"
    );
    let _ = location;
}

#[tokio::test]
async fn the_same_event_ten_times_makes_one_account_and_bad_signatures_store_nothing() {
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let owner = new_client();
    let t = setup(&app, &owner, "dupes").await;
    let crm = generic_connector(&app, &owner, &t, None).await;
    let body = deal("evt-dup", "D-7", "Duplicate Ltd").to_string();

    // Bad signatures: tampered body, stale timestamp, none, another secret.
    let stale = chrono::Utc::now().timestamp() - 600;
    for (sig, sent) in [
        (
            sign(&crm.secret, chrono::Utc::now().timestamp(), &body),
            body.replace("Duplicate", "Duplicaat"),
        ),
        (sign(&crm.secret, stale, &body), body.clone()),
        (String::new(), body.clone()),
        (
            sign("whsec_other", chrono::Utc::now().timestamp(), &body),
            body.clone(),
        ),
    ] {
        let r = new_client()
            .post(&crm.url)
            .header("Content-Type", "application/json")
            .header("X-Arbor-Signature", sig)
            .body(sent)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    assert_eq!(one(&app, &t, "SELECT count(*) AS id FROM crm_inbox"), 0);

    for i in 0..10 {
        let (status, answer) = post_event(&app, &crm, &body).await;
        assert_eq!(status, 200);
        let v: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(v["received"], if i == 0 { 1 } else { 0 });
    }
    drain(&app, &t).await;
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM accounts WHERE legal_name = 'Duplicate Ltd'"
        ),
        1,
        "{:?}",
        inbox(&app, &t)
    );
    assert_eq!(one(&app, &t, "SELECT count(*) AS id FROM subscriptions"), 1);
    assert_eq!(
        one(&app, &t, "SELECT duplicates::bigint AS id FROM crm_inbox"),
        9
    );

    // The same deal won again under another event id is not billed twice.
    post_event(
        &app,
        &crm,
        &deal("evt-dup-2", "D-7", "Duplicate Ltd").to_string(),
    )
    .await;
    drain(&app, &t).await;
    assert_eq!(one(&app, &t, "SELECT count(*) AS id FROM subscriptions"), 1);
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM crm_inbox WHERE status = 'ignored'"
        ),
        1
    );
}

/// Every field of the connector's mapping form, as the page has it.
fn mapping_form(html: &str) -> Vec<(String, String)> {
    let doc = Html::parse_document(html);
    let form = Selector::parse("form[action$=\"/mapping\"]").unwrap();
    let inputs = Selector::parse("input, textarea, select").unwrap();
    let selected = Selector::parse("option[selected]").unwrap();
    let mut out = Vec::new();
    let f = doc.select(&form).next().unwrap();
    for el in f.select(&inputs) {
        let Some(name) = el.value().attr("name") else {
            continue;
        };
        let value = match el.value().name() {
            "textarea" => el.text().collect::<String>(),
            "select" => el
                .select(&selected)
                .next()
                .and_then(|o| o.value().attr("value"))
                .unwrap_or_default()
                .to_owned(),
            _ => {
                if el.value().attr("type") == Some("checkbox")
                    && el.value().attr("checked").is_none()
                {
                    continue;
                }
                el.value().attr("value").unwrap_or("on").to_owned()
            }
        };
        out.push((name.to_owned(), value));
    }
    out
}

#[tokio::test]
async fn a_deal_without_currency_is_held_with_the_reason_and_applies_after_the_mapping_is_fixed() {
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let owner = new_client();
    let t = setup(&app, &owner, "held").await;
    let crm = generic_connector(&app, &owner, &t, None).await;
    let mut event = deal("evt-h", "D-9", "Held Corp");
    event["data"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("currency");

    // Act: the deal arrives without a currency.
    post_event(&app, &crm, &event.to_string()).await;
    drain(&app, &t).await;

    // Assert: held, nothing created, the reason names the field.
    let eid = one(&app, &t, "SELECT id FROM crm_inbox WHERE status = 'held'");
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM accounts WHERE legal_name = 'Held Corp'"
        ),
        0
    );
    let page = app
        .html(&owner, &format!("/t/{}/crm/events/{eid}", t.slug))
        .await;
    assert!(page.contains("account.currency"), "{page}");
    assert!(page.to_lowercase().contains("currency"), "{page}");
    let list = app
        .html(&owner, &format!("/t/{}/crm?status=held", t.slug))
        .await;
    assert!(list.contains("Held Corp") || list.contains("D-9"), "{list}");

    // A test against the sample shows the problem before saving anything.
    let html = app
        .html(&owner, &format!("/t/{}/crm/{}", t.slug, crm.id))
        .await;
    let mut form = mapping_form(&html);
    form.retain(|(k, _)| k != "sample" && k != "action");
    form.push(("sample".into(), event.to_string()));
    form.push(("action".into(), "test".into()));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/crm/{}/mapping", t.slug, crm.id),
            &pairs,
        )
        .await;
    let tested = r.text().await.unwrap();
    assert!(
        tested.contains("Test result") && tested.contains("class=\"problem\""),
        "{tested}"
    );

    // Fix: a default currency in the mapping, then replay.
    for (k, v) in form.iter_mut() {
        if k == "def_account.currency" {
            *v = "EUR".into();
        }
        if k == "action" {
            *v = "save".into();
        }
    }
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/crm/{}/mapping", t.slug, crm.id),
            &pairs,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Mapping saved"));
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/crm/events/{eid}/replay", t.slug),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    drain(&app, &t).await;
    assert_eq!(
        one(
            &app,
            &t,
            &format!(
                "SELECT count(*) AS id FROM crm_inbox WHERE id = {eid} AND status = 'applied'"
            )
        ),
        1
    );
    assert_eq!(one(&app, &t, "SELECT count(*) AS id FROM accounts WHERE legal_name = 'Held Corp' AND currency = 'EUR'"), 1);
    assert!(crate::helpers::audit_actions(&app, &t).contains(&"crm.event_replayed".to_owned()));
}

#[tokio::test]
async fn hubspot_v3_and_salesforce_outbound_messages_are_checked_before_anything_is_stored() {
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let owner = new_client();
    let t = setup(&app, &owner, "vendors").await;

    // HubSpot with its app's client secret.
    let settings = [
        ("name", "HubSpot"),
        ("active", "on"),
        ("secret", "hs-client-secret"),
        ("hubspot_api_base", "https://api.hubapi.com"),
    ];
    let (_, url, _) = connector(&app, &owner, &t, "hubspot", &settings).await;
    let body = r#"[{"eventId":100,"subscriptionId":5,"portalId":62515,"appId":54321,"occurredAt":1774000000000,"subscriptionType":"deal.propertyChange","attemptNumber":0,"objectId":1234,"propertyName":"dealstage","propertyValue":"closedwon","changeSource":"CRM"}]"#;
    let hs = |ts: i64, body: &str| hubspot_v3("hs-client-secret", &url, body, ts);
    let send = |ts: i64, sig: String, body: String| {
        let url = url.clone();
        async move {
            new_client()
                .post(&url)
                .header("Content-Type", "application/json")
                .header("X-HubSpot-Request-Timestamp", ts.to_string())
                .header("X-HubSpot-Signature-v3", sig)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let now = chrono::Utc::now().timestamp_millis();
    assert_eq!(
        send(now, hs(now, body), body.replace("closedwon", "closedlost")).await,
        401,
        "tampered"
    );
    let old = now - 6 * 60 * 1000;
    assert_eq!(
        send(old, hs(old, body), body.to_owned()).await,
        401,
        "stale"
    );
    assert_eq!(one(&app, &t, "SELECT count(*) AS id FROM crm_inbox"), 0);
    assert_eq!(
        send(now, hs(now, body), body.to_owned()).await,
        200,
        "valid"
    );
    assert_eq!(one(&app, &t, "SELECT count(*) AS id FROM crm_inbox WHERE event_id = '100' AND change = 'won' AND object_id = '1234'"), 1);

    // Salesforce: the organization id is checked and the answer is the SOAP Ack.
    let settings = [
        ("name", "Salesforce"),
        ("active", "on"),
        ("salesforce_org_id", "00D000000000062"),
    ];
    let (_, sf_url, _) = connector(&app, &owner, &t, "salesforce", &settings).await;
    let soap = |org: &str| {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{org}</OrganizationId>
   <ActionId>04k000000000001AAA</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/60.0/00D000000000062</EnterpriseUrl>
   <PartnerUrl>https://example.my.salesforce.com/services/Soap/u/60.0/00D000000000062</PartnerUrl>
   <Notification>
    <Id>04l000000000001AAA</Id>
    <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>006000000000001AAA</sf:Id>
     <sf:Name>Big deal</sf:Name>
     <sf:StageName>Closed Won</sf:StageName>
     <sf:IsWon>true</sf:IsWon>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#
        )
    };
    let post = |body: String| {
        let url = sf_url.clone();
        async move {
            let r = new_client()
                .post(&url)
                .header("Content-Type", "text/xml; charset=utf-8")
                .header("SOAPAction", "\"\"")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, _) = post(soap("00D000000000099")).await;
    assert_eq!(status, 403);
    let (status, ack) = post(soap("00D000000000062AAA")).await;
    assert_eq!(status, 200);
    assert!(ack.contains("<Ack>true</Ack>"), "{ack}");
    assert_eq!(one(&app, &t, "SELECT count(*) AS id FROM crm_inbox WHERE object_type = 'deal' AND change = 'won' AND object_id = '006000000000001AAA'"), 1);
    // Without its company and contact the deal is held, not billed wrong.
    drain(&app, &t).await;
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM crm_inbox WHERE status = 'held'"
        ),
        2
    );
    assert_eq!(one(&app, &t, "SELECT count(*) AS id FROM subscriptions"), 0);
}

/// Serves `responses` on `listener` once it is given, one per connection.
fn serve_later(listener: TcpListener, responses: Vec<(u16, &'static str)>) -> Seen {
    let seen: Seen = Seen::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for (status, body) in responses {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut len = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end().to_lowercase();
                if h.is_empty() {
                    break;
                }
                if let Some(v) = h.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut buf = vec![0; len];
            reader.read_exact(&mut buf).unwrap();
            log.lock().unwrap().push((
                line.trim_end().to_owned(),
                Vec::new(),
                String::from_utf8(buf).unwrap(),
            ));
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).unwrap();
        }
    });
    seen
}

#[tokio::test]
async fn the_write_back_waits_out_a_receiver_that_was_down() {
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let owner = new_client();
    let t = setup(&app, &owner, "wbdown").await;
    // Reserve a port, then close it: the receiver is down.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let crm = generic_connector(
        &app,
        &owner,
        &t,
        Some(&format!("http://127.0.0.1:{port}/deals")),
    )
    .await;
    post_event(&app, &crm, &deal("evt-w", "D-11", "Down Ltd").to_string()).await;
    drain(&app, &t).await;
    exec(&app, &t, "INSERT INTO settings (key, value) VALUES ('billing.auto_finalize', 'true') ON CONFLICT (key) DO UPDATE SET value = 'true'");
    bill(&app, &t, "2026-03-15");
    drain(&app, &t).await;
    assert_eq!(one(&app, &t, "SELECT count(*) AS id FROM outbox WHERE kind = 'crm.writeback' AND status = 'retrying'"), 1);
    assert!(one(&app, &t, "SELECT count(*) AS id FROM connector_deliveries WHERE connector = 'crm_writeback' AND NOT ok") >= 1);

    // The receiver comes back; the retry delivers the finalized invoice to the deal.
    let seen = serve_later(
        TcpListener::bind(("127.0.0.1", port)).unwrap(),
        vec![(200, "{}")],
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    drain(&app, &t).await;
    assert_eq!(one(&app, &t, "SELECT count(*) AS id FROM outbox WHERE kind = 'crm.writeback' AND status = 'delivered'"), 1);
    let got = bodies(&seen);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["type"], "invoice.finalized");
    assert_eq!(got[0]["deal_id"], "D-11");
}

#[tokio::test]
async fn webhooks_are_signed_retried_logged_and_redelivered_on_request() {
    // Arrange: a subscriber that fails once, then takes everything.
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let owner = new_client();
    let t = setup(&app, &owner, "hooks").await;
    let (url, seen) = replay(vec![(500, "busy"), (200, "{}"), (200, "{}")]);
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/settings/webhooks", t.slug),
            &[
                ("url", &format!("{url}/hook")),
                ("event_types", "invoice.finalized"),
            ],
        )
        .await;
    let page = r.text().await.unwrap();
    let secret = between(&page, "id=\"new-secret\">", "<").to_owned();
    let bad = app
        .post_form(
            &owner,
            &format!("/t/{}/settings/webhooks", t.slug),
            &[("url", "ftp://x.example/")],
        )
        .await;
    assert_eq!(bad.status(), 422);

    // Act: a won deal is billed and finalized (the subscriber only asked for finalized invoices).
    let crm = generic_connector(&app, &owner, &t, None).await;
    post_event(
        &app,
        &crm,
        &deal("evt-wh", "D-21", "Hooked Inc").to_string(),
    )
    .await;
    drain(&app, &t).await;
    exec(
        &app,
        &t,
        "INSERT INTO settings (key, value) VALUES ('billing.auto_finalize', 'true')",
    );
    bill(&app, &t, "2026-03-15");
    drain(&app, &t).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    drain(&app, &t).await;

    // Assert: two attempts, one key, a valid signature, the event's shape; both logged.
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let key = |i: usize| {
        requests[i]
            .1
            .iter()
            .find(|h| h.0 == "idempotency-key")
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(key(0), key(1));
    let sig = requests[1]
        .1
        .iter()
        .find(|h| h.0 == "x-arbor-signature")
        .unwrap()
        .1
        .clone();
    let ts: i64 = sig
        .trim_start_matches("t=")
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(sig, sign(&secret, ts, &requests[1].2));
    let body: Value = serde_json::from_str(&requests[1].2).unwrap();
    assert_eq!(body["type"], "invoice.finalized");
    assert_eq!(body["id"], key(1));
    assert!(body["data"]["object"]["number"]
        .as_str()
        .unwrap()
        .starts_with("INV-"));
    assert_eq!(one(&app, &t, "SELECT count(*) AS id FROM connector_deliveries WHERE connector = 'webhooks' AND NOT ok AND http_status = 500"), 1);
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM connector_deliveries WHERE connector = 'webhooks' AND ok"
        ),
        1
    );

    // Manual redeliver from the delivery log sends the same event again, same key.
    let oid = one(
        &app,
        &t,
        "SELECT id FROM outbox WHERE kind = 'webhook.deliver'",
    );
    let log = app
        .html(
            &owner,
            &format!("/t/{}/integrations?connector=webhooks", t.slug),
        )
        .await;
    assert!(
        log.contains(&format!("/integrations/outbox/{oid}/retry")),
        "{log}"
    );
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/integrations/outbox/{oid}/retry", t.slug),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    drain(&app, &t).await;
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    assert_eq!(
        requests[2]
            .1
            .iter()
            .find(|h| h.0 == "idempotency-key")
            .unwrap()
            .1,
        key(1)
    );

    // A disabled endpoint gets nothing new.
    let wid = one(&app, &t, "SELECT id FROM webhook_endpoints");
    app.post_form(
        &owner,
        &format!("/t/{}/settings/webhooks/{wid}/toggle", t.slug),
        &[],
    )
    .await;
    bill(&app, &t, "2027-03-15");
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM outbox WHERE kind = 'webhook.deliver'"
        ),
        1
    );
}

#[tokio::test]
async fn a_hubspot_deal_won_is_read_from_the_hubspot_api_and_billed() {
    // Arrange: a HubSpot API replaying the deal, its company, contact and line items.
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let owner = new_client();
    let t = setup(&app, &owner, "hsapi").await;
    let (api, seen) = replay(vec![
        (
            200,
            r#"{"id":"1234","properties":{"hs_object_id":"1234","dealname":"Annual","closedate":"2026-03-15T09:30:00.000Z","deal_currency_code":"EUR","payment_terms":"Net 30","billing_frequency":"annual","revenue_recognition":"ratable","po_number":"PO-HS-1"},"associations":{"companies":{"results":[{"id":"55","type":"deal_to_company"}]},"contacts":{"results":[{"id":"77","type":"deal_to_contact"}]},"line_items":{"results":[{"id":"901","type":"deal_to_line_item"}]}}}"#,
        ),
        (
            200,
            r#"{"id":"55","properties":{"hs_object_id":"55","name":"Spot Industries","domain":"spot.example","city":"Boston","country":"US"}}"#,
        ),
        (
            200,
            r#"{"id":"77","properties":{"hs_object_id":"77","firstname":"Lee","lastname":"Park","email":"lee@spot.example"}}"#,
        ),
        (
            200,
            r#"{"status":"COMPLETE","results":[{"id":"901","properties":{"hs_object_id":"901","hs_sku":"PLAN-PRO","quantity":"2","price":"100","hs_discount_percentage":"5","name":"Pro"}}]}"#,
        ),
    ]);
    let settings = [
        ("name", "HubSpot"),
        ("active", "on"),
        ("secret", "hs-secret"),
        ("api_token", "pat-na1-token"),
        ("hubspot_api_base", api.as_str()),
    ];
    let (_, url, _) = connector(&app, &owner, &t, "hubspot", &settings).await;
    let body = r#"[{"eventId":501,"subscriptionId":5,"portalId":62515,"appId":54321,"occurredAt":1774000000000,"subscriptionType":"deal.propertyChange","attemptNumber":0,"objectId":1234,"propertyName":"dealstage","propertyValue":"closedwon","changeSource":"CRM"}]"#;
    let ts = chrono::Utc::now().timestamp_millis();
    let sig = hubspot_v3("hs-secret", &url, body, ts);

    // Act
    let r = new_client()
        .post(&url)
        .header("Content-Type", "application/json")
        .header("X-HubSpot-Request-Timestamp", ts.to_string())
        .header("X-HubSpot-Signature-v3", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drain(&app, &t).await;

    // Assert: four API reads with the token, then the account, contact and subscription.
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 4, "{:?}", inbox(&app, &t));
    assert!(
        requests[0].0.starts_with("GET /crm/v3/objects/deals/1234?"),
        "{}",
        requests[0].0
    );
    assert!(
        requests[0].0.contains("associations=companies"),
        "{}",
        requests[0].0
    );
    assert!(requests[3]
        .0
        .starts_with("POST /crm/v3/objects/line_items/batch/read"));
    assert!(requests.iter().all(|r| r
        .1
        .iter()
        .any(|h| h.0 == "authorization" && h.1 == "Bearer pat-na1-token")));
    let aid = one(
        &app,
        &t,
        "SELECT id FROM accounts WHERE legal_name = 'Spot Industries' AND currency = 'EUR'",
    );
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM contacts WHERE account_id = {aid} AND name = 'Lee Park' AND email = 'lee@spot.example'")), 1);
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM subscriptions WHERE account_id = {aid} AND po_number = 'PO-HS-1'")), 1);
    assert_eq!(one(&app, &t, "SELECT count(*) AS id FROM subscription_items WHERE quantity = 2 AND discount_percent = 5"), 1);
}

/// A Salesforce Outbound Message for one won Opportunity of org `00D000000000062`.
fn salesforce_won(opportunity: &str, account: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D000000000062AAA</OrganizationId>
   <ActionId>04k000000000001AAA</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/60.0/00D000000000062</EnterpriseUrl>
   <PartnerUrl>https://example.my.salesforce.com/services/Soap/u/60.0/00D000000000062</PartnerUrl>
   <Notification>
    <Id>04l{opportunity}</Id>
    <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>{opportunity}</sf:Id>
     <sf:AccountId>{account}</sf:AccountId>
     <sf:Name>Globex renewal</sf:Name>
     <sf:StageName>Closed Won</sf:StageName>
     <sf:IsWon>true</sf:IsWon>
     <sf:PO_Number__c>PO-SF-1</sf:PO_Number__c>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#
    )
}

#[tokio::test]
async fn a_salesforce_opportunity_won_is_completed_from_the_salesforce_api_and_billed() {
    // Arrange: a Salesforce REST API replaying the Opportunity, its Account, its primary
    // contact role, the contact and the line items, then refusing the token.
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let owner = new_client();
    let t = setup(&app, &owner, "sfapi").await;
    let (api, seen) = replay(vec![
        (
            200,
            r#"{"attributes":{"type":"Opportunity","url":"/services/data/v60.0/sobjects/Opportunity/006000000000002AAA"},"Id":"006000000000002AAA","AccountId":"001000000000002AAA","Name":"Globex renewal","StageName":"Closed Won","IsWon":true,"CloseDate":"2026-03-15","CurrencyIsoCode":"EUR","Payment_Terms__c":"Net 30","Billing_Frequency__c":"annual","Revenue_Recognition__c":"ratable","PO_Number__c":null}"#,
        ),
        (
            200,
            r#"{"attributes":{"type":"Account"},"Id":"001000000000002AAA","Name":"Globex Salesforce GmbH","BillingStreet":"Ring 2","BillingCity":"Hamburg","BillingState":null,"BillingPostalCode":"20095","BillingCountry":"DE"}"#,
        ),
        (
            200,
            r#"{"totalSize":1,"done":true,"records":[{"attributes":{"type":"OpportunityContactRole"},"ContactId":"003000000000002AAA"}]}"#,
        ),
        (
            200,
            r#"{"attributes":{"type":"Contact"},"Id":"003000000000002AAA","Name":"Mia Wong","Email":"mia@globex.example","Phone":null}"#,
        ),
        (
            200,
            r#"{"totalSize":1,"done":true,"records":[{"attributes":{"type":"OpportunityLineItem"},"Id":"00k000000000002AAA","ProductCode":"PLAN-PRO","Quantity":3.0,"UnitPrice":80.0,"Discount":10.0,"Name":"Pro"}]}"#,
        ),
        (
            401,
            r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
        ),
    ]);
    let settings = [
        ("name", "Salesforce"),
        ("active", "on"),
        ("salesforce_org_id", "00D000000000062"),
        ("salesforce_instance_url", api.as_str()),
        ("api_token", "00D000000000062!sf-token"),
    ];
    let (_, url, _) = connector(&app, &owner, &t, "salesforce", &settings).await;
    let post = |body: String| {
        let url = url.clone();
        async move {
            new_client()
                .post(&url)
                .header("Content-Type", "text/xml; charset=utf-8")
                .header("SOAPAction", "\"\"")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    // Act
    let status = post(salesforce_won("006000000000002AAA", "001000000000002AAA")).await;
    assert_eq!(status, 200);
    drain(&app, &t).await;

    // Assert: five reads with the token, then the account, contact and subscription from them.
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 5, "{:?}", inbox(&app, &t));
    let lines: Vec<&str> = requests.iter().map(|r| r.0.as_str()).collect();
    assert!(
        lines[0].starts_with("GET /services/data/v60.0/sobjects/Opportunity/006000000000002AAA "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("GET /services/data/v60.0/sobjects/Account/001000000000002AAA "),
        "{}",
        lines[1]
    );
    assert!(lines[2].starts_with("GET /services/data/v60.0/query?q=SELECT+ContactId+FROM+OpportunityContactRole+WHERE+OpportunityId+%3D+%27006000000000002AAA%27"), "{}", lines[2]);
    assert!(
        lines[3].starts_with("GET /services/data/v60.0/sobjects/Contact/003000000000002AAA "),
        "{}",
        lines[3]
    );
    assert!(lines[4].starts_with("GET /services/data/v60.0/query?q=SELECT+Id%2C+ProductCode%2C+Quantity%2C+UnitPrice%2C+Discount%2C+Name+FROM+OpportunityLineItem"), "{}", lines[4]);
    assert!(requests.iter().all(|r| r
        .1
        .iter()
        .any(|h| h.0 == "authorization" && h.1 == "Bearer 00D000000000062!sf-token")));
    assert_eq!(inbox(&app, &t), vec!["applied: ".to_owned()]);
    let aid = one(
        &app,
        &t,
        "SELECT id FROM accounts WHERE legal_name = 'Globex Salesforce GmbH' AND currency = 'EUR' AND terms_days = 30",
    );
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM contacts WHERE account_id = {aid} AND name = 'Mia Wong' AND email = 'mia@globex.example'")), 1);
    // The API's null PO number leaves the message's.
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM subscriptions WHERE account_id = {aid} AND po_number = 'PO-SF-1' AND start_date = '2026-03-15'")), 1);
    assert_eq!(one(&app, &t, "SELECT count(*) AS id FROM subscription_items WHERE quantity = 3 AND discount_percent = 10"), 1);

    // A refused token holds the next deal with what to fix, and creates nothing.
    let status = post(salesforce_won("006000000000003AAA", "001000000000003AAA")).await;
    assert_eq!(status, 200);
    drain(&app, &t).await;
    let rows = inbox(&app, &t);
    assert_eq!(rows.len(), 2);
    assert!(
        rows[1].starts_with("held: Salesforce refused the access token (HTTP 401)"),
        "{rows:?}"
    );
    assert_eq!(one(&app, &t, "SELECT count(*) AS id FROM accounts"), 1);
    assert_eq!(seen.lock().unwrap().len(), 6);
}

#[tokio::test]
async fn an_amendment_before_its_deal_waits_then_amends_the_subscription_and_older_changes_are_ignored(
) {
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let owner = new_client();
    let t = setup(&app, &owner, "amend").await;
    let crm = generic_connector(&app, &owner, &t, None).await;
    let amended = |id: &str, seq: i64, qty: &str| {
        let mut e = deal(id, "D-31", "Amended AG");
        e["type"] = json!("deal.amended");
        e["sequence"] = json!(seq);
        e["occurred_at"] = json!("2026-09-15T10:00:00Z");
        e["data"]["object"]["line_items"][0]["quantity"] = json!(qty);
        e["data"]["object"]["line_items"][0]
            .as_object_mut()
            .unwrap()
            .remove("price");
        e.to_string()
    };

    // Act 1: the amendment arrives first; it waits.
    post_event(&app, &crm, &amended("evt-a2", 2, "15")).await;
    drain(&app, &t).await;
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM crm_inbox WHERE status = 'received' AND attempts = 1"
        ),
        1,
        "{:?}",
        inbox(&app, &t)
    );

    // Act 2: the deal arrives; the waiting amendment applies on its retry.
    post_event(&app, &crm, &deal("evt-w", "D-31", "Amended AG").to_string()).await;
    drain(&app, &t).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    drain(&app, &t).await;
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM crm_inbox WHERE status = 'applied'"
        ),
        2,
        "{:?}",
        inbox(&app, &t)
    );
    let sub = one(&app, &t, "SELECT id FROM subscriptions");
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM subscription_items WHERE subscription_id = {sub} AND quantity = 15 AND end_date IS NULL")), 1);
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM subscription_amendments WHERE subscription_id = {sub} AND kind = 'quantity'")), 1);

    // Act 3: an older change (sequence 1) arrives late: ignored, quantity unchanged.
    post_event(&app, &crm, &amended("evt-a1", 1, "12")).await;
    drain(&app, &t).await;
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM crm_inbox WHERE status = 'ignored'"
        ),
        1,
        "{:?}",
        inbox(&app, &t)
    );
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM subscription_items WHERE subscription_id = {sub} AND quantity = 15 AND end_date IS NULL")), 1);
}

#[tokio::test]
async fn a_one_off_deal_becomes_a_draft_invoice_with_its_negotiated_price() {
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let owner = new_client();
    let t = setup(&app, &owner, "oneoff").await;
    let crm = generic_connector(&app, &owner, &t, None).await;
    let mut e = deal("evt-o", "D-41", "Once Only SA");
    e["data"]["object"]["kind"] = json!("one_off");
    e["data"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("billing_frequency");
    post_event(&app, &crm, &e.to_string()).await;
    drain(&app, &t).await;
    let inv = one(
        &app,
        &t,
        "SELECT id FROM invoices WHERE status = 'draft' AND po_number = 'PO-77'",
    );
    // 10 × 100 list, negotiated 90 each: 1000 less 100 discount, plus 20% tax on 900.
    assert_eq!(
        one(
            &app,
            &t,
            &format!("SELECT (total * 100)::bigint AS id FROM invoices WHERE id = {inv}")
        ),
        108_000
    );
    assert_eq!(one(&app, &t, "SELECT count(*) AS id FROM subscriptions"), 0);
    assert_eq!(
        one(
            &app,
            &t,
            &format!(
                "SELECT count(*) AS id FROM crm_links WHERE crm_id = 'D-41' AND invoice_id = {inv}"
            )
        ),
        1,
        "{:?}",
        inbox(&app, &t)
    );
}

#[tokio::test]
async fn an_oversized_or_unknown_hook_request_is_refused_and_stores_nothing() {
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let owner = new_client();
    let t = setup(&app, &owner, "bighook").await;
    let crm = generic_connector(&app, &owner, &t, None).await;
    let huge = format!(
        "{{\"id\": \"evt-big\", \"pad\": \"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let (status, _) = post_event(&app, &crm, &huge).await;
    assert_eq!(status, 413);
    let r = new_client()
        .post(app.url(&format!("/hooks/{}/crm/not-a-token", t.slug)))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (status, _) = post_event(&app, &crm, "{\"type\": \"deal.won\"}").await;
    assert_eq!(
        status, 400,
        "a signed body without an event id is malformed"
    );
    assert_eq!(one(&app, &t, "SELECT count(*) AS id FROM crm_inbox"), 0);
}

#[tokio::test]
async fn a_burst_of_events_is_applied_by_one_worker_pass_and_a_bad_one_spoils_nothing() {
    // Arrange: 12 won deals queued, the seventh without a currency.
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let owner = new_client();
    let t = setup(&app, &owner, "burst").await;
    let crm = generic_connector(&app, &owner, &t, None).await;
    for i in 0..12 {
        let mut body = deal(
            &format!("evt-b{i}"),
            &format!("D-b{i}"),
            &format!("Burst {i} Gmbh"),
        );
        if i == 6 {
            body["data"]["object"]["currency"] = Value::Null;
        }
        assert_eq!(post_event(&app, &crm, &body.to_string()).await.0, 200);
    }

    // Act: one claim by one worker.
    let ran = arbor::jobs::worker::run_one(&app.state, "burst-worker", Some(t.id))
        .await
        .unwrap();

    // Assert: every event was settled in that pass; the bad one is held, the others applied,
    // and no job is left running or queued.
    assert!(ran);
    let rows = inbox(&app, &t);
    assert_eq!(
        rows.iter().filter(|r| r.starts_with("applied")).count(),
        11,
        "{rows:?}"
    );
    assert!(rows[6].starts_with("held"), "{rows:?}");
    assert_eq!(
        one(&app, &t, "SELECT count(*) AS id FROM subscriptions"),
        11
    );
    let mut c = app.conn();
    let open: i64 = diesel::RunQueryDsl::get_result::<Count>(
        diesel::sql_query(format!(
            "SELECT count(*) AS n FROM control.jobs WHERE tenant_id = {} AND kind = 'crm.process' AND status <> 'done'",
            t.id
        )),
        &mut c,
    )
    .unwrap()
    .n;
    assert_eq!(open, 0);
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test]
async fn company_and_contact_changes_in_the_crm_update_the_linked_account_and_contact() {
    // Arrange: a won deal made the account (company C-D-9) and its contact (P-3).
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let owner = new_client();
    let t = setup(&app, &owner, "sync").await;
    let crm = generic_connector(&app, &owner, &t, None).await;
    post_event(&app, &crm, &deal("evt-s1", "D-9", "Sync Ltd").to_string()).await;
    drain(&app, &t).await;
    let change = |id: &str, kind: &str, object: Value| {
        json!({ "id": id, "type": kind, "data": { "object": object } }).to_string()
    };

    // Act: the company is renamed, the contact changes email, then a bad email arrives.
    for body in [
        change(
            "evt-s2",
            "company.updated",
            json!({ "id": "C-D-9", "name": "Sync Holdings Ltd" }),
        ),
        change(
            "evt-s3",
            "contact.updated",
            json!({ "id": "P-3", "name": "Ana Ruiz-Lopez", "email": "ana.lopez@acme.example" }),
        ),
        change(
            "evt-s4",
            "contact.updated",
            json!({ "id": "P-3", "email": "not an email" }),
        ),
        change(
            "evt-s5",
            "contact.updated",
            json!({ "id": "P-404", "email": "x@y.example" }),
        ),
    ] {
        assert_eq!(post_event(&app, &crm, &body).await.0, 200);
    }
    drain(&app, &t).await;

    // Assert
    let rows = inbox(&app, &t);
    assert!(rows[1].starts_with("applied"), "{rows:?}");
    assert!(rows[2].starts_with("applied"), "{rows:?}");
    assert!(
        rows[3].starts_with("held: The contact change is not valid"),
        "{rows:?}"
    );
    assert!(rows[4].starts_with("ignored"), "{rows:?}");
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM accounts WHERE legal_name = 'Sync Holdings Ltd'"
        ),
        1
    );
    assert_eq!(
        one(&app, &t, "SELECT count(*) AS id FROM contacts WHERE name = 'Ana Ruiz-Lopez' AND email = 'ana.lopez@acme.example'"),
        1
    );
    assert!(crate::helpers::audit_actions(&app, &t).contains(&"contact.updated".to_owned()));
}

/// Analyses of `accounts` so far (autovacuum's and ours).
fn analyses(app: &TestApp, t: &TestTenant) -> i64 {
    one(
        app,
        t,
        "SELECT (analyze_count + autoanalyze_count)::bigint AS id FROM pg_stat_user_tables \
         WHERE schemaname = current_schema() AND relname = 'accounts'",
    )
}

#[tokio::test]
async fn a_burst_into_a_young_tenant_refreshes_statistics_once_it_outgrows_them() {
    // Arrange: a new tenant's accounts table, never analysed, gets a burst of rows.
    let app = TestApp::spawn().await;
    let t = app.signup(&new_client(), "stats").await;
    let refresh = |app: &TestApp| {
        arbor::db::scope::in_tenant(&mut app.conn(), &t.schema(), |c| {
            arbor::db::statistics::refresh_if_outgrown(c, &["accounts", "contacts"])
        })
        .unwrap()
    };
    assert!(refresh(&app).is_empty(), "nothing has grown yet");
    // Autovacuum must not analyse it first (it may, within its minute, on a real server).
    exec(
        &app,
        &t,
        "ALTER TABLE accounts SET (autovacuum_enabled = false)",
    );
    exec(
        &app,
        &t,
        "INSERT INTO accounts (account_number, legal_name, display_name, name_key, currency) \
         SELECT 'S-' || g, 'Stats ' || g, 'Stats ' || g, 'stats ' || g, 'EUR' FROM generate_series(1, 800) g",
    );
    let before = analyses(&app, &t);
    // Act: the counters reach the statistics system within a second or so of the commit.
    let mut refreshed = Vec::new();
    for _ in 0..50 {
        refreshed = refresh(&app);
        if !refreshed.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Assert: the grown table (and only it) was analysed, once; more rows that do not double
    // it again leave it alone.
    assert_eq!(refreshed, vec!["accounts".to_owned()]);
    assert_eq!(analyses(&app, &t), before + 1);
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT reltuples::bigint AS id FROM pg_class WHERE oid = 'accounts'::regclass"
        ),
        800
    );
    exec(
        &app,
        &t,
        "INSERT INTO accounts (account_number, legal_name, display_name, name_key, currency) \
         SELECT 'T-' || g, 'More ' || g, 'More ' || g, 'more ' || g, 'EUR' FROM generate_series(1, 600) g",
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(refresh(&app).is_empty());
}
