//! The accounting push end to end: entries posted to a local receiver through the outbox with
//! a stable idempotency key, retried after a server error, stopped by a refusal, alerted to
//! admins, sent again from the integration health page; plus the QBO and Xero file shapes.

use std::time::Duration;

use arbor::{db::scope::in_tenant, integrations::alerts, jobs::worker::drain_tenant};
use hmac::{Hmac, Mac};
use rust_decimal::Decimal;
use serde_json::Value;
use sha2::Sha256;

use crate::{
    accounts::put_account,
    billing::{bill, exec, one, product_with_price, subscribe},
    helpers::{new_client, replay, Seen, SmtpSink, TestApp, TestTenant},
};

/// A tenant billing one auto-finalized 100 + 20% tax invoice on 2026-01-01.
async fn billed_tenant(app: &TestApp, client: &reqwest::Client, prefix: &str) -> (TestTenant, i64) {
    let t = app.signup(client, prefix).await;
    exec(app, &t, "INSERT INTO settings (key, value) VALUES ('billing.auto_finalize', 'true'), ('tax.standard_rate', '\"20\"')");
    let (_, price) = product_with_price(
        app,
        client,
        &t,
        "PLAN",
        &[("model", "flat"), ("amount", "100")],
    )
    .await;
    let aid = put_account(app, &t, "Push Customer", None);
    subscribe(
        app,
        client,
        &t,
        aid,
        &[
            ("start_date", "2026-01-01"),
            ("item0_price", &price.to_string()),
        ],
    )
    .await;
    (t, aid)
}

async fn configure(
    app: &TestApp,
    client: &reqwest::Client,
    t: &TestTenant,
    url: &str,
    format: &str,
) {
    let r = app
        .post_form(
            client,
            &format!("/t/{}/settings/accounting", t.slug),
            &[
                ("enabled", "on"),
                ("url", url),
                ("format", format),
                ("token", "tok-123"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn drain(app: &TestApp, t: &TestTenant) {
    drain_tenant(&app.state, t.id).await.unwrap();
}

fn header(seen: &Seen, i: usize, name: &str) -> String {
    seen.lock().unwrap()[i]
        .1
        .iter()
        .find(|h| h.0 == name)
        .map(|h| h.1.clone())
        .unwrap_or_default()
}

fn dec(v: &Value) -> Decimal {
    v.to_string().parse().unwrap()
}

#[tokio::test]
async fn each_entry_is_pushed_once_with_a_stable_key_retried_after_a_server_error_and_logged() {
    // Arrange: a receiver that fails once with 503, then takes everything.
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let owner = new_client();
    let (url, seen) = replay(vec![
        (503, r#"{"Fault":{"type":"SERVICE"}}"#),
        (200, r#"{"JournalEntry":{"Id":"148"}}"#),
    ]);
    let (t, _) = billed_tenant(&app, &owner, "push").await;
    configure(
        &app,
        &owner,
        &t,
        &format!("{url}/v3/company/42/journalentry"),
        "qbo",
    )
    .await;

    // Act: the bill run finalizes the invoice and posts its entry; the worker pushes it.
    bill(&app, &t, "2026-01-01");
    let entry = one(
        &app,
        &t,
        "SELECT id FROM journal_entries WHERE source_type = 'invoice'",
    );
    drain(&app, &t).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drain(&app, &t).await;

    // Assert: two attempts with the same key, QBO shape, bearer token and a valid signature.
    let key = format!("arbor-{}-JE-{entry}", t.id);
    assert_eq!(seen.lock().unwrap().len(), 2);
    for i in 0..2 {
        let line = seen.lock().unwrap()[i].0.clone();
        assert!(
            line.starts_with(&format!(
                "POST /v3/company/42/journalentry?requestid={key} "
            )),
            "{line}"
        );
        assert_eq!(header(&seen, i, "idempotency-key"), key);
        assert_eq!(header(&seen, i, "authorization"), "Bearer tok-123");
    }
    let body = seen.lock().unwrap()[1].2.clone();
    let sig = header(&seen, 1, "x-arbor-signature");
    let (ts, v1) = sig.split_once(",v1=").unwrap();
    let ts = ts.trim_start_matches("t=");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"tok-123").unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    assert_eq!(v1, hex::encode(mac.finalize().into_bytes()));
    let je: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(je["DocNumber"], format!("JE-{entry}"));
    let lines = je["Line"].as_array().unwrap();
    let side = |p: &str| -> Decimal {
        lines
            .iter()
            .filter(|l| l["JournalEntryLineDetail"]["PostingType"] == p)
            .map(|l| dec(&l["Amount"]))
            .sum()
    };
    assert_eq!(side("Debit"), Decimal::from(120));
    assert_eq!(side("Credit"), Decimal::from(120));

    // The posting log: a failed attempt with its status, then the receiver's id.
    assert_eq!(
        one(&app, &t, "SELECT count(*) AS id FROM connector_deliveries WHERE connector = 'accounting' AND NOT ok AND http_status = 503 AND attempt = 1"),
        1
    );
    assert_eq!(
        one(&app, &t, "SELECT count(*) AS id FROM connector_deliveries WHERE ok AND remote_ref = '148' AND attempt = 2"),
        1
    );
    assert_eq!(
        one(&app, &t, &format!("SELECT count(*) AS id FROM outbox WHERE kind = 'ledger.push' AND status = 'delivered' AND idempotency_key = 'ledger.push:{entry}'")),
        1
    );
    let page = app
        .html(&owner, &format!("/t/{}/integrations", t.slug))
        .await;
    assert!(page.contains("status-healthy"), "{page}");
    assert!(page.contains(&format!("JE-{entry} (invoice")), "{page}");
    let csv = app
        .get(
            &owner,
            &format!(
                "/t/{}/integrations/deliveries.csv?connector=accounting&outcome=failed",
                t.slug
            ),
        )
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.contains(",503,"), "{csv}");

    // Draining again sends nothing more.
    drain(&app, &t).await;
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_refused_push_stops_alerts_the_admins_once_and_is_sent_again_from_the_health_page() {
    // Arrange
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = TestApp::spawn_with(|c| {
        c.workers = 0;
        c.smtp_url = Some(smtp);
    })
    .await;
    let owner = new_client();
    let (url, seen) = replay(vec![
        (
            400,
            r#"{"Fault":{"Error":[{"Message":"Invalid account reference"}]}}"#,
        ),
        (200, r#"{"id":"remote-9"}"#),
    ]);
    let (t, _) = billed_tenant(&app, &owner, "pushdead").await;
    configure(&app, &owner, &t, &format!("{url}/journal"), "arbor").await;
    bill(&app, &t, "2026-01-01");
    drain(&app, &t).await;
    let outbox_id = one(&app, &t, "SELECT id FROM outbox WHERE kind = 'ledger.push'");
    assert_eq!(
        one(
            &app,
            &t,
            &format!(
                "SELECT count(*) AS id FROM outbox WHERE id = {outbox_id} AND status = 'dead'"
            )
        ),
        1,
        "a 400 is not retried"
    );
    let page = app
        .html(&owner, &format!("/t/{}/integrations", t.slug))
        .await;
    assert!(page.contains("status-failing"), "{page}");
    assert!(page.contains("Invalid account reference"), "{page}");

    // Act: the alert check runs twice.
    let check = |app: &TestApp, t: &TestTenant| {
        let mut c = app.conn();
        let admins = alerts::admin_emails(&mut c, t.id).unwrap();
        in_tenant(&mut c, &t.schema(), |c| {
            alerts::check(
                c,
                t.id,
                &admins,
                "http://arbor.test/integrations",
                chrono::Utc::now(),
            )
        })
        .unwrap()
    };
    assert_eq!(check(&app, &t).len(), 1);
    assert_eq!(check(&app, &t).len(), 0, "one alert per incident");
    drain(&app, &t).await;

    // Assert: one alert email to the owner naming the connector and the receiver's answer.
    let mails: Vec<String> = sink
        .messages()
        .into_iter()
        .filter(|m| m.contains("Accounting push is failing"))
        .collect();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains(&t.email), "{}", mails[0]);
    assert!(
        mails[0].contains("Invalid account reference"),
        "{}",
        mails[0]
    );

    // Act: send it again from the health page.
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/integrations/outbox/{outbox_id}/retry", t.slug),
            &[] as &[(&str, &str)],
        )
        .await;
    assert_eq!(r.status(), 303);
    drain(&app, &t).await;

    // Assert: delivered with the same key as the refused attempt; the alert closes.
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(
        header(&seen, 0, "idempotency-key"),
        header(&seen, 1, "idempotency-key")
    );
    let sent: Value = serde_json::from_str(&seen.lock().unwrap()[1].2).unwrap();
    assert_eq!(sent["source_type"], "invoice");
    let debit: Decimal = sent["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["debit"].as_str().unwrap().parse::<Decimal>().unwrap())
        .sum();
    let credit: Decimal = sent["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["credit"].as_str().unwrap().parse::<Decimal>().unwrap())
        .sum();
    assert_eq!((debit, credit), (Decimal::from(120), Decimal::from(120)));
    assert_eq!(
        one(
            &app,
            &t,
            &format!(
                "SELECT count(*) AS id FROM outbox WHERE id = {outbox_id} AND status = 'delivered'"
            )
        ),
        1
    );
    check(&app, &t);
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM integration_alerts WHERE resolved_at IS NULL"
        ),
        0
    );
    assert!(crate::helpers::audit_actions(&app, &t).contains(&"integration.redelivered".to_owned()));
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_alerts_after_five_minutes_not_before() {
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let owner = new_client();
    // Nothing listens on this port: every attempt fails to connect and is retried.
    let port = crate::helpers::free_port();
    let (t, _) = billed_tenant(&app, &owner, "pushdown").await;
    configure(
        &app,
        &owner,
        &t,
        &format!("http://127.0.0.1:{port}/journal"),
        "xero",
    )
    .await;
    bill(&app, &t, "2026-01-01");
    drain(&app, &t).await;
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM outbox WHERE kind = 'ledger.push' AND status = 'retrying'"
        ),
        1
    );
    let run = |app: &TestApp, minutes: i64| {
        let mut c = app.conn();
        in_tenant(&mut c, &t.schema(), |c| {
            alerts::check(
                c,
                t.id,
                &[],
                "http://arbor.test/integrations",
                chrono::Utc::now() + chrono::Duration::minutes(minutes),
            )
        })
        .unwrap()
        .len()
    };
    assert_eq!(run(&app, 4), 0);
    assert_eq!(run(&app, 6), 1);
    let page = app
        .html(&owner, &format!("/t/{}/integrations", t.slug))
        .await;
    assert!(page.contains("Accounting push is failing"), "{page}");
    assert!(page.contains("retries continue"), "{page}");
}

#[tokio::test]
async fn earlier_entries_are_sent_on_request_once_and_bad_settings_change_nothing() {
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let owner = new_client();
    let (url, seen) = replay(vec![(200, "{}"), (200, "{}"), (200, "{}")]);
    let (t, _) = billed_tenant(&app, &owner, "pushback").await;
    bill(&app, &t, "2026-01-01");
    bill(&app, &t, "2026-02-01");

    // Bad input: plain http to another host, and switching on without an endpoint.
    for (fields, message) in [
        (
            vec![
                ("enabled", "on"),
                ("url", "http://books.example.com/j"),
                ("format", "qbo"),
            ],
            "Use https://",
        ),
        (
            vec![("enabled", "on"), ("url", ""), ("format", "qbo")],
            "Enter the endpoint",
        ),
        (
            vec![("url", "https://books.example.com/j"), ("format", "sage")],
            "Choose a format",
        ),
    ] {
        let r = app
            .post_form(
                &owner,
                &format!("/t/{}/settings/accounting", t.slug),
                &fields,
            )
            .await;
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains(message));
    }
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM settings WHERE key = 'ledger.push'"
        ),
        0
    );

    configure(&app, &owner, &t, &format!("{url}/journal"), "arbor").await;
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM outbox WHERE kind = 'ledger.push'"
        ),
        0,
        "earlier entries wait"
    );
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/settings/accounting/send", t.slug),
            &[("from", "2026-02-01")],
        )
        .await;
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Queued 1 entry dated 2026-02-01 or later."));
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/settings/accounting/send", t.slug),
            &[("from", "2026-01-01")],
        )
        .await;
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Queued 1 entry dated 2026-01-01 or later."),
        "the February entry is not queued twice"
    );
    drain(&app, &t).await;
    assert_eq!(seen.lock().unwrap().len(), 2);
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/settings/accounting/send", t.slug),
            &[("from", "yesterday")],
        )
        .await;
    assert_eq!(r.status(), 422);
    // The token is sealed: never stored or shown in clear.
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM settings WHERE value::text LIKE '%tok-123%'"
        ),
        0
    );
    let page = app
        .html(&owner, &format!("/t/{}/settings/accounting", t.slug))
        .await;
    assert!(!page.contains("tok-123") && page.contains("(set; leave empty to keep)"));
}

#[tokio::test]
async fn qbo_and_xero_files_balance_and_carry_the_documents() {
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let owner = new_client();
    let (t, _) = billed_tenant(&app, &owner, "pushfiles").await;
    bill(&app, &t, "2026-01-01");
    let number: String = {
        use arbor::db::schema::tenant::invoices;
        use diesel::prelude::*;
        in_tenant(&mut app.conn(), &t.schema(), |c| {
            Ok(invoices::table
                .filter(invoices::kind.eq("invoice"))
                .select(invoices::number)
                .first::<Option<String>>(c)?)
        })
        .unwrap()
        .unwrap()
    };
    let get = |path: &'static str| {
        let app = &app;
        let owner = &owner;
        let slug = t.slug.clone();
        async move {
            let r = app
                .get(
                    owner,
                    &format!("/t/{slug}{path}?from=2026-01-01&to=2026-01-31"),
                )
                .await;
            assert_eq!(r.status(), 200);
            serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap()
        }
    };

    let qbo = get("/ledger/export.qbo.json").await;
    let entries = qbo["JournalEntry"].as_array().unwrap();
    assert!(!entries.is_empty());
    for je in entries {
        let mut debit = Decimal::ZERO;
        let mut credit = Decimal::ZERO;
        for l in je["Line"].as_array().unwrap() {
            let amount = dec(&l["Amount"]);
            assert!(amount > Decimal::ZERO, "{l}");
            match l["JournalEntryLineDetail"]["PostingType"].as_str().unwrap() {
                "Debit" => debit += amount,
                "Credit" => credit += amount,
                other => panic!("{other}"),
            }
            assert!(!l["JournalEntryLineDetail"]["AccountRef"]["value"]
                .as_str()
                .unwrap()
                .is_empty());
        }
        assert_eq!(debit, credit, "{je}");
    }
    let xero = get("/ledger/export.xero.json").await;
    for j in xero["ManualJournals"].as_array().unwrap() {
        let sum: Decimal = j["JournalLines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| dec(&l["LineAmount"]))
            .sum();
        assert_eq!(sum, Decimal::ZERO, "{j}");
    }

    let qi = get("/ledger/invoices.qbo.json").await;
    let inv = &qi["Invoice"][0];
    assert_eq!(inv["DocNumber"], number.as_str());
    assert_eq!(dec(&inv["TotalAmt"]), Decimal::from(120));
    assert_eq!(dec(&inv["TxnTaxDetail"]["TotalTax"]), Decimal::from(20));
    assert_eq!(
        inv["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"],
        "PLAN"
    );
    let xi = get("/ledger/invoices.xero.json").await;
    let inv = &xi["Invoices"][0];
    assert_eq!(inv["Type"], "ACCREC");
    assert_eq!(inv["InvoiceNumber"], number.as_str());
    assert_eq!(inv["Contact"]["Name"], "Push Customer");
    let item = &inv["LineItems"][0];
    assert_eq!(dec(&item["LineAmount"]), Decimal::from(100));
    assert_eq!(dec(&item["TaxAmount"]), Decimal::from(20));
    // The line's account is the revenue account its journal entry credited.
    let credited = one(&app, &t, "SELECT l.account_code::bigint AS id FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id WHERE e.source_type = 'invoice' AND l.source_line IS NOT NULL AND l.amount = -100");
    assert_eq!(item["AccountCode"], credited.to_string());
}
