//! The Stripe connector end to end: charges against a local server replaying recorded Stripe
//! responses, and signed webhooks settling a pending charge and flagging a dispute.

use arbor::payments::{charge, gateway::Outcome};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    accounts::{count, put_account},
    billing::{bill, day, exec, one, product_with_price, subscribe},
    helpers::{new_client, replay, TestApp},
};

fn sign(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn hook(app: &TestApp, slug: &str, signature: &str, body: &str) -> (u16, String) {
    let r = new_client()
        .post(app.url(&format!("/hooks/{slug}/stripe")))
        .header("Stripe-Signature", signature)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn stripe_charges_follow_recorded_answers_and_signed_webhooks_settle_and_dispute() {
    // Arrange: Stripe answers a decline, then "processing".
    let (url, seen) = replay(vec![
        (
            402,
            include_str!("../fixtures/stripe/402_card_declined_insufficient_funds.json"),
        ),
        (
            200,
            include_str!("../fixtures/stripe/200_payment_intent_processing.json"),
        ),
    ]);
    let app = TestApp::spawn_with(|c| {
        c.workers = 0;
        c.stripe_api_base = url;
    })
    .await;
    let owner = new_client();
    let t = app.signup(&owner, "stripe").await;
    exec(
        &app,
        &t,
        "INSERT INTO settings (key, value) VALUES ('billing.auto_finalize', 'true')",
    );
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/settings/payments", t.slug),
            &[
                ("api_key", "sk_test_arbor123"),
                ("webhook_secret", "whsec_arbor"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let stored = one(&app, &t, "SELECT count(*) AS id FROM settings WHERE key = 'payments.stripe_secret_key' AND value::text NOT LIKE '%sk_test%'");
    assert_eq!(stored, 1, "the key is sealed at rest");
    let (_, price) = product_with_price(
        &app,
        &owner,
        &t,
        "PLAN",
        &[("model", "flat"), ("amount", "100")],
    )
    .await;
    let aid = put_account(&app, &t, "Stripe Customer", None);
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/accounts/{aid}/payment-methods", t.slug),
            &[
                ("gateway", "stripe"),
                ("customer_ref", "cus_Q1"),
                ("token", "pm_card_Q1"),
                ("last4", "4242"),
                ("brand", "Visa"),
                ("auto_charge", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
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
    bill(&app, &t, "2026-01-01");
    let inv = one(
        &app,
        &t,
        "SELECT id FROM invoices WHERE source = 'bill_run'",
    );
    let first = one(&app, &t, "SELECT id FROM charge_attempts");

    // Act 1: the first charge is declined for insufficient funds.
    let o = charge::execute(&app.state, t.id, &t.schema(), first, day("2026-01-01"))
        .await
        .unwrap();

    // Assert 1: the request Stripe saw, and a soft decline with a retry the next day.
    assert!(
        matches!(o, Some(Outcome::Declined { ref code, .. }) if code == "insufficient_funds"),
        "{o:?}"
    );
    {
        let seen = seen.lock().unwrap();
        let (line, headers, body) = &seen[0];
        assert_eq!(line, "POST /v1/payment_intents HTTP/1.1");
        let h = |k: &str| {
            headers
                .iter()
                .find(|x| x.0 == k)
                .map(|x| x.1.clone())
                .unwrap_or_default()
        };
        assert_eq!(h("authorization"), "Bearer sk_test_arbor123");
        let key: String = arbor::db::scope::in_tenant(&mut app.conn(), &t.schema(), |c| {
            use arbor::db::schema::tenant::charge_attempts as ca;
            use diesel::prelude::*;
            Ok(ca::table.find(first).select(ca::idempotency_key).first(c)?)
        })
        .unwrap();
        assert_eq!(h("idempotency-key"), key);
        let form: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap();
        let f = |k: &str| {
            form.iter()
                .find(|x| x.0 == k)
                .map(|x| x.1.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            (
                f("amount"),
                f("currency"),
                f("customer"),
                f("payment_method")
            ),
            (
                "10000".into(),
                "eur".into(),
                "cus_Q1".into(),
                "pm_card_Q1".into()
            )
        );
        assert_eq!(
            (f("confirm"), f("off_session")),
            ("true".into(), "true".into())
        );
        assert_eq!(f("metadata[invoice_id]"), inv.to_string());
    }
    let second = one(
        &app,
        &t,
        "SELECT id FROM charge_attempts WHERE status = 'scheduled'",
    );

    // Act 2: the retry is accepted but still processing at Stripe.
    let o = charge::execute(&app.state, t.id, &t.schema(), second, day("2026-01-02"))
        .await
        .unwrap();
    assert!(matches!(o, Some(Outcome::Pending { .. })), "{o:?}");
    assert_eq!(count(&app, &t, "payments"), 0);

    // Act 3: Stripe's signed webhook says it succeeded; it is delivered twice.
    let mut event: serde_json::Value = serde_json::from_str(include_str!(
        "../fixtures/stripe/event_payment_intent_succeeded.json"
    ))
    .unwrap();
    event["data"]["object"]["id"] = "pi_3PXhSepaDebitQvTm0pRoCeS5".into();
    let body = event.to_string();
    let now = chrono::Utc::now().timestamp();
    let (status, reply) = hook(&app, &t.slug, &sign("whsec_arbor", now, &body), &body).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = hook(&app, &t.slug, &sign("whsec_arbor", now, &body), &body).await;
    assert_eq!(status, 200);
    assert!(reply.contains("duplicate"));

    // Assert 3: one payment settles the invoice.
    assert_eq!(count(&app, &t, "payments"), 1);
    assert_eq!(
        one(
            &app,
            &t,
            &format!("SELECT count(*) AS id FROM invoices WHERE id = {inv} AND status = 'paid'")
        ),
        1
    );

    // Forged, tampered and stale deliveries change nothing.
    let mut forged = event.clone();
    forged["id"] = "evt_forged".into();
    let forged = forged.to_string();
    assert_eq!(
        hook(&app, &t.slug, &sign("whsec_wrong", now, &forged), &forged)
            .await
            .0,
        400
    );
    assert_eq!(
        hook(&app, &t.slug, &sign("whsec_arbor", now, &body), &forged)
            .await
            .0,
        400,
        "tampered body"
    );
    assert_eq!(
        hook(
            &app,
            &t.slug,
            &sign("whsec_arbor", now - 301, &forged),
            &forged
        )
        .await
        .0,
        400,
        "older than 300 s"
    );
    assert_eq!(count(&app, &t, "gateway_events"), 1);

    // A dispute flags the invoice: no dunning, a task for a person.
    let mut dispute: serde_json::Value = serde_json::from_str(include_str!(
        "../fixtures/stripe/event_charge_dispute_created.json"
    ))
    .unwrap();
    dispute["data"]["object"]["payment_intent"] = "pi_3PXhSepaDebitQvTm0pRoCeS5".into();
    let dbody = dispute.to_string();
    let (status, reply) = hook(&app, &t.slug, &sign("whsec_arbor", now, &dbody), &dbody).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        one(
            &app,
            &t,
            &format!(
                "SELECT count(*) AS id FROM invoice_dunning WHERE invoice_id = {inv} AND disputed"
            )
        ),
        1
    );
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM collections_tasks WHERE title LIKE 'Card dispute opened%'"
        ),
        1
    );
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM events WHERE type = 'invoice.disputed'"
        ),
        1
    );
}
