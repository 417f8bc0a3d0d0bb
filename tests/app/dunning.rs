//! Automatic charges and dunning against the real database: every gateway outcome drives its
//! retry schedule, a full timeline under a fake clock, catch-up after downtime, and
//! concurrent workers that never charge twice.

use std::time::Duration;

use arbor::{
    db::scope::in_tenant,
    dunning::engine,
    payments::{charge, gateway::Outcome},
};
use chrono::NaiveDate;

use crate::{
    accounts::{count, put_account},
    billing::{bill, day, exec, one, product_with_price, subscribe},
    helpers::{new_client, SmtpSink, TestApp, TestTenant},
};

const SUCCESS: &str = "4242 4242 4242 4242";
const INSUFFICIENT: &str = "4000 0000 0000 9995";
const LOST: &str = "4000 0000 0000 9987";
const PROCESSING: &str = "4000 0000 0000 0119";

/// An app whose workers do not run, so the test decides when charges and dunning happen.
async fn quiet_app() -> TestApp {
    TestApp::spawn_with(|c| c.workers = 0).await
}

/// An account with a billing contact, optionally a stored test card, and a 100.00/month
/// subscription from 1 Jan 2026 (net 30: the January invoice is due on 31 Jan).
async fn customer(
    app: &TestApp,
    owner: &reqwest::Client,
    t: &TestTenant,
    name: &str,
    price: i64,
    card: Option<&str>,
) -> i64 {
    let aid = put_account(app, t, name, None);
    exec(app, t, &format!("INSERT INTO contacts (account_id, name, email, receives_invoices) VALUES ({aid}, 'AP', 'ap-{aid}@customer.example', true)"));
    if let Some(number) = card {
        let r = app
            .post_form(
                owner,
                &format!("/t/{}/accounts/{aid}/payment-methods", t.slug),
                &[
                    ("gateway", "sandbox"),
                    ("card_number", number),
                    ("expiry", "12/30"),
                    ("auto_charge", "on"),
                ],
            )
            .await;
        assert_eq!(r.status(), 303, "card stored");
    }
    subscribe(
        app,
        owner,
        t,
        aid,
        &[
            ("start_date", "2026-01-01"),
            ("item0_price", &price.to_string()),
        ],
    )
    .await;
    aid
}

async fn tenant(app: &TestApp, prefix: &str) -> (reqwest::Client, TestTenant, i64) {
    let owner = new_client();
    let t = app.signup(&owner, prefix).await;
    exec(
        app,
        &t,
        "INSERT INTO settings (key, value) VALUES ('billing.auto_finalize', 'true')",
    );
    let (_, price) = product_with_price(
        app,
        &owner,
        &t,
        "PLAN",
        &[("model", "flat"), ("amount", "100")],
    )
    .await;
    (owner, t, price)
}

fn invoice_of(app: &TestApp, t: &TestTenant, aid: i64) -> i64 {
    one(app, t, &format!("SELECT id FROM invoices WHERE account_id = {aid} AND source = 'bill_run' ORDER BY id LIMIT 1"))
}

fn live_attempt(app: &TestApp, t: &TestTenant, inv: i64) -> Option<i64> {
    let n = one(app, t, &format!("SELECT count(*) AS id FROM charge_attempts WHERE invoice_id = {inv} AND status = 'scheduled'"));
    (n > 0).then(|| {
        one(
            app,
            t,
            &format!(
                "SELECT id FROM charge_attempts WHERE invoice_id = {inv} AND status = 'scheduled'"
            ),
        )
    })
}

fn scheduled_day(app: &TestApp, t: &TestTenant, attempt: i64) -> NaiveDate {
    let secs = one(app, t, &format!("SELECT extract(epoch FROM scheduled_for)::bigint AS id FROM charge_attempts WHERE id = {attempt}"));
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .date_naive()
}

async fn run_attempt(app: &TestApp, t: &TestTenant, attempt: i64, on: &str) -> Option<Outcome> {
    charge::execute(&app.state, t.id, &t.schema(), attempt, day(on))
        .await
        .unwrap()
}

async fn dun(app: &TestApp, t: &TestTenant, on: &str) -> engine::Summary {
    engine::run(&app.state, t.id, &t.schema(), day(on))
        .await
        .unwrap()
}

fn actions(app: &TestApp, t: &TestTenant, inv: i64, step: i32, action: &str) -> i64 {
    one(app, t, &format!("SELECT count(*) AS id FROM dunning_actions WHERE invoice_id = {inv} AND step_no = {step} AND action = '{action}' AND status = 'done'"))
}

#[tokio::test]
async fn every_gateway_outcome_drives_its_retry_schedule() {
    // Arrange: four customers with the sandbox's test cards; billing finalizes and queues a
    // charge for each (auto-charge on finalize).
    let app = quiet_app().await;
    let (owner, t, price) = tenant(&app, "gw").await;
    let ok = customer(&app, &owner, &t, "Pays Fine", price, Some(SUCCESS)).await;
    let soft = customer(
        &app,
        &owner,
        &t,
        "Short Of Funds",
        price,
        Some(INSUFFICIENT),
    )
    .await;
    let hard = customer(&app, &owner, &t, "Lost Card", price, Some(LOST)).await;
    let flaky = customer(&app, &owner, &t, "Flaky Bank", price, Some(PROCESSING)).await;
    let _ = customer(&app, &owner, &t, "No Card", price, None).await;
    bill(&app, &t, "2026-01-01");
    let inv = |aid| invoice_of(&app, &t, aid);
    assert_eq!(
        count(&app, &t, "charge_attempts"),
        4,
        "one charge per account with a card, none without"
    );

    // Success: a card payment settles the invoice and an event goes out.
    let a = live_attempt(&app, &t, inv(ok)).unwrap();
    assert!(matches!(
        run_attempt(&app, &t, a, "2026-01-01").await,
        Some(Outcome::Succeeded { .. })
    ));
    assert_eq!(
        one(
            &app,
            &t,
            &format!(
                "SELECT count(*) AS id FROM invoices WHERE id = {} AND status = 'paid'",
                inv(ok)
            )
        ),
        1
    );
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM events WHERE type = 'payment.succeeded'"
        ),
        1
    );
    assert_eq!(live_attempt(&app, &t, inv(ok)), None);

    // Soft decline: retried on days 1, 3, 5 and 7 after the first failure, then a person.
    let mut on = day("2026-01-01");
    let mut days = Vec::new();
    while let Some(a) = live_attempt(&app, &t, inv(soft)) {
        match run_attempt(&app, &t, a, &on.to_string()).await {
            Some(Outcome::Declined { code, .. }) => assert_eq!(code, "insufficient_funds"),
            other => panic!("expected a soft decline, got {other:?}"),
        }
        if let Some(next) = live_attempt(&app, &t, inv(soft)) {
            on = scheduled_day(&app, &t, next);
            days.push((on - day("2026-01-01")).num_days());
        }
    }
    assert_eq!(days, [1, 3, 5, 7]);
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM charge_attempts WHERE invoice_id = {} AND status = 'soft_decline'", inv(soft))), 5);
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM collections_tasks WHERE account_id = {soft} AND title LIKE 'Automatic payment retries used up%'")), 1);
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM events WHERE type = 'payment.failed'"
        ),
        5
    );

    // Hard decline: never retried; the method is marked, the customer asked for a new one,
    // and a task opens for a person.
    let a = live_attempt(&app, &t, inv(hard)).unwrap();
    run_attempt(&app, &t, a, "2026-01-01").await;
    assert_eq!(
        live_attempt(&app, &t, inv(hard)),
        None,
        "no retry after a hard decline"
    );
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM payment_methods WHERE account_id = {hard} AND status = 'needs_update' AND status_reason = 'lost_card'")), 1);
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM outbox WHERE idempotency_key LIKE 'update-method:%'"
        ),
        1
    );
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM collections_tasks WHERE account_id = {hard} AND source = 'payment_failed'")), 1);
    // Charging it by hand is refused now: there is no usable method.
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/invoices/{}/charge", t.slug, inv(hard)),
            &[],
        )
        .await;
    assert_eq!(r.status(), 409);

    // Retryable error: backed off by hours, not days.
    let a = live_attempt(&app, &t, inv(flaky)).unwrap();
    run_attempt(&app, &t, a, "2026-01-01").await;
    let next = live_attempt(&app, &t, inv(flaky)).expect("retried later");
    let wait = one(&app, &t, &format!("SELECT extract(epoch FROM scheduled_for - now())::bigint AS id FROM charge_attempts WHERE id = {next}"));
    assert!(
        (3000..=3700).contains(&wait),
        "first backoff is an hour, was {wait}s"
    );
}

#[tokio::test]
async fn a_dunning_timeline_under_a_fake_clock_reminds_retries_charges_a_fee_once_and_stops_on_payment(
) {
    // Arrange: the January invoice (due 31 Jan) of a customer whose card has no funds; the
    // card is stored after billing, so only dunning charges it.
    let app = quiet_app().await;
    let (owner, t, price) = tenant(&app, "fake").await;
    let aid = customer(&app, &owner, &t, "Slow Payer", price, None).await;
    bill(&app, &t, "2026-01-01");
    let inv = invoice_of(&app, &t, aid);
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/accounts/{aid}/payment-methods", t.slug),
            &[("gateway", "sandbox"), ("card_number", INSUFFICIENT)],
        )
        .await;
    assert_eq!(r.status(), 303);
    let reminders = || {
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM outbox WHERE idempotency_key LIKE 'dunning-reminder:%'",
        )
    };

    // Act + Assert, day by day.
    assert_eq!(
        dun(&app, &t, "2026-01-27").await.actions,
        0,
        "nothing before the first step"
    );
    dun(&app, &t, "2026-01-28").await;
    assert_eq!(
        actions(&app, &t, inv, 0, "reminder"),
        1,
        "a reminder three days before due"
    );
    assert_eq!(reminders(), 1);
    for d in ["2026-01-29", "2026-01-30", "2026-01-31"] {
        dun(&app, &t, d).await;
    }
    assert_eq!(reminders(), 1, "nothing more until the invoice is overdue");
    dun(&app, &t, "2026-02-01").await;
    assert_eq!(actions(&app, &t, inv, 1, "reminder"), 1);
    assert_eq!(actions(&app, &t, inv, 1, "retry_payment"), 1);
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM events WHERE type = 'invoice.overdue'"
        ),
        1
    );
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM charge_attempts WHERE invoice_id = {inv} AND status = 'soft_decline'")), 1, "the retry ran that day and was declined");
    for d in [
        "2026-02-02",
        "2026-02-03",
        "2026-02-04",
        "2026-02-05",
        "2026-02-06",
        "2026-02-07",
        "2026-02-07",
        "2026-02-08",
    ] {
        dun(&app, &t, d).await;
    }
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM charge_attempts WHERE invoice_id = {inv} AND status = 'soft_decline'")), 5, "days 1, 3, 5, 7 after the first failure");
    let fees = || {
        one(&app, &t, &format!("SELECT count(*) AS id FROM invoices WHERE source = 'late_fee' AND related_invoice_id = {inv}"))
    };
    assert_eq!(fees(), 1, "the late fee once, though day 7 ran twice");
    assert_eq!(one(&app, &t, &format!("SELECT (total * 100)::bigint AS id FROM invoices WHERE source = 'late_fee' AND related_invoice_id = {inv}")), 150, "1.5% of 100.00");
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM invoices WHERE source = 'late_fee' AND number IS NOT NULL"
        ),
        1,
        "the fee is finalized"
    );
    for d in ["2026-02-13", "2026-02-14"] {
        dun(&app, &t, d).await;
    }
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM collections_tasks WHERE invoice_id = {inv} AND source = 'dunning'")), 1, "a task at step 4");

    // The customer pays everything (invoice and fee) by wire on 15 Feb.
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/accounts/{aid}/payments", t.slug),
            &[
                ("method", "wire"),
                ("amount", "101.50"),
                ("received_on", "2026-02-15"),
                ("allocation", "oldest"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        one(&app, &t, &format!("SELECT count(*) AS id FROM invoice_dunning WHERE invoice_id = {inv} AND status = 'completed'")),
        1,
        "payment ends dunning at once, not at the next run"
    );
    let before = count(&app, &t, "dunning_actions");
    for d in ["2026-02-16", "2026-03-02", "2026-03-20"] {
        dun(&app, &t, d).await;
    }
    assert_eq!(
        count(&app, &t, "dunning_actions"),
        before,
        "nothing after payment"
    );
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM invoice_dunning WHERE invoice_id = {inv} AND status = 'completed' AND stop_reason = 'paid'")), 1);
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM account_collections WHERE account_id = {aid} AND on_hold")), 0, "never put on hold");
}

#[tokio::test]
async fn catch_up_after_ten_missed_days_runs_each_missed_step_once() {
    let app = quiet_app().await;
    let (owner, t, price) = tenant(&app, "catch").await;
    let aid = customer(&app, &owner, &t, "Forgotten", price, None).await;
    bill(&app, &t, "2026-01-01");
    let inv = invoice_of(&app, &t, aid);
    dun(&app, &t, "2026-01-27").await;

    // Act: the engine was down from 28 Jan to 9 Feb; it runs on 10 Feb, twice, and on the 11th.
    dun(&app, &t, "2026-02-10").await;
    dun(&app, &t, "2026-02-10").await;
    dun(&app, &t, "2026-02-11").await;

    // Assert: steps 1-3 (-3, +1, +7 days) each once; one email covers them; one fee.
    for step in 0..3 {
        assert_eq!(actions(&app, &t, inv, step, "reminder"), 1, "step {step}");
    }
    assert_eq!(
        actions(&app, &t, inv, 3, "reminder"),
        0,
        "step 4 is not due yet"
    );
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM outbox WHERE idempotency_key LIKE 'dunning-reminder:%'"
        ),
        1,
        "one email, not three"
    );
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM invoices WHERE source = 'late_fee' AND related_invoice_id = {inv}")), 1);
}

#[tokio::test]
async fn two_workers_and_a_crash_never_charge_twice() {
    let app = quiet_app().await;
    let (owner, t, price) = tenant(&app, "twice").await;
    let aid = customer(&app, &owner, &t, "Double Trouble", price, Some(SUCCESS)).await;
    bill(&app, &t, "2026-01-01");
    let inv = invoice_of(&app, &t, aid);
    let a = live_attempt(&app, &t, inv).unwrap();

    // Act: two workers execute the same attempt at once, and two engines run the same day.
    let (x, y, _, _) = tokio::join!(
        run_attempt(&app, &t, a, "2026-01-01"),
        run_attempt(&app, &t, a, "2026-01-01"),
        dun(&app, &t, "2026-01-01"),
        dun(&app, &t, "2026-01-01"),
    );

    // Assert: exactly one reached the gateway; one charge, one payment.
    assert_eq!(usize::from(x.is_some()) + usize::from(y.is_some()), 1);
    assert_eq!(count(&app, &t, "sandbox_charges"), 1);
    assert_eq!(count(&app, &t, "payments"), 1);
    assert_eq!(
        one(
            &app,
            &t,
            &format!("SELECT count(*) AS id FROM invoices WHERE id = {inv} AND status = 'paid'")
        ),
        1
    );

    // A crash after the gateway answered but before we recorded it: asking again with the
    // same idempotency key returns the first charge instead of making a second one.
    let aid2 = customer(&app, &owner, &t, "Crash Victim", price, Some(SUCCESS)).await;
    bill(&app, &t, "2026-01-01");
    let inv2 = invoice_of(&app, &t, aid2);
    let a2 = live_attempt(&app, &t, inv2).unwrap();
    run_attempt(&app, &t, a2, "2026-01-01").await;
    exec(&app, &t, &format!("DELETE FROM payment_applications WHERE payment_id = (SELECT payment_id FROM charge_attempts WHERE id = {a2})"));
    exec(&app, &t, &format!("UPDATE charge_attempts SET status = 'processing', payment_id = NULL, attempted_at = now() - interval '10 minutes' WHERE id = {a2}"));
    exec(&app, &t, &format!("DELETE FROM payments WHERE id NOT IN (SELECT payment_id FROM charge_attempts WHERE payment_id IS NOT NULL) AND account_id = {aid2}"));
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        arbor::invoicing::repo::recompute_balance(c, inv2)
    })
    .unwrap();
    let again = run_attempt(&app, &t, a2, "2026-01-01").await;
    assert!(matches!(again, Some(Outcome::Succeeded { .. })));
    assert_eq!(
        count(&app, &t, "sandbox_charges"),
        2,
        "one gateway charge per invoice"
    );
    assert_eq!(
        one(
            &app,
            &t,
            &format!("SELECT count(*) AS id FROM invoices WHERE id = {inv2} AND status = 'paid'")
        ),
        1
    );
}

#[tokio::test]
async fn an_account_on_hold_takes_no_new_subscription_and_exclusion_stops_dunning() {
    let app = quiet_app().await;
    let (owner, t, price) = tenant(&app, "hold").await;
    let aid = customer(&app, &owner, &t, "Held Account", price, None).await;
    let excluded = customer(&app, &owner, &t, "Special Terms", price, None).await;
    exec(&app, &t, &format!("INSERT INTO account_collections (account_id, on_hold, hold_reason) VALUES ({aid}, true, 'Overdue INV-1')"));
    exec(&app, &t, &format!("INSERT INTO account_collections (account_id, dunning_excluded) VALUES ({excluded}, true)"));

    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/accounts/{aid}/subscriptions", t.slug),
            &[
                ("cycle", "1"),
                ("timing", "advance"),
                ("term_months", "12"),
                ("collection_method", "send_invoice"),
                ("start_date", "2026-02-01"),
                ("item0_price", &price.to_string()),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("is on hold (Overdue INV-1)"), "{body}");
    assert_eq!(
        one(
            &app,
            &t,
            &format!("SELECT count(*) AS id FROM subscriptions WHERE account_id = {aid}")
        ),
        1,
        "nothing added"
    );

    bill(&app, &t, "2026-01-01");
    dun(&app, &t, "2026-02-10").await;
    assert_eq!(
        one(
            &app,
            &t,
            &format!("SELECT count(*) AS id FROM dunning_actions WHERE account_id = {excluded}")
        ),
        0,
        "an excluded account is left to a person"
    );
    assert!(
        one(
            &app,
            &t,
            &format!("SELECT count(*) AS id FROM dunning_actions WHERE account_id = {aid}")
        ) > 0
    );
}

#[tokio::test]
async fn reminder_emails_reach_the_smtp_sink_with_overdue_invoices_and_a_statement_attached() {
    // Arrange: a real SMTP sink and running workers.
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = TestApp::spawn_with(|c| c.smtp_url = Some(url)).await;
    let (owner, t, price) = tenant(&app, "remind").await;
    let aid = customer(&app, &owner, &t, "Reminded GmbH", price, None).await;
    bill(&app, &t, "2026-01-01");
    bill(&app, &t, "2026-02-01");
    assert!(
        app.eventually(Duration::from_secs(30), || sink.messages().len() == 2)
            .await,
        "the two invoice emails"
    );

    // Act: the day after January's due date (February's invoice is due on 3 Mar, so the
    // reminder lists January only).
    dun(&app, &t, "2026-02-01").await;
    app.state.wakeup.notify();

    // Assert
    assert!(
        app.eventually(Duration::from_secs(30), || sink.messages().len() == 3)
            .await,
        "the reminder"
    );
    let raw = sink
        .messages()
        .into_iter()
        .find(|m| m.contains("Payment overdue"))
        .expect("the step 2 reminder");
    assert!(raw.contains(&format!("ap-{aid}@customer.example")));
    assert!(
        raw.contains("INV-000001.pdf"),
        "the overdue invoice attached"
    );
    assert!(
        !raw.contains("INV-000002.pdf"),
        "an invoice not yet due is not attached"
    );
    assert!(
        raw.to_lowercase().contains("statement"),
        "a statement attached"
    );
    assert_eq!(
        raw.matches("application/pdf").count(),
        2,
        "invoice and statement PDFs"
    );
}

#[tokio::test]
async fn a_written_off_invoice_leaves_dunning_and_posts_an_event() {
    let app = quiet_app().await;
    let (owner, t, price) = tenant(&app, "wo").await;
    let aid = customer(&app, &owner, &t, "Gone Bust", price, None).await;
    bill(&app, &t, "2026-01-01");
    let inv = invoice_of(&app, &t, aid);
    dun(&app, &t, "2026-02-01").await;
    let path = format!("/t/{}/invoices/{inv}/write-off", t.slug);

    // A reason is required; nothing changes without one.
    let r = app.post_form(&owner, &path, &[("reason", " ")]).await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        one(
            &app,
            &t,
            &format!("SELECT count(*) AS id FROM invoices WHERE id = {inv} AND status = 'open'")
        ),
        1
    );

    let r = app
        .post_form(&owner, &path, &[("reason", "Insolvency proceedings")])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM invoices WHERE id = {inv} AND status = 'uncollectible' AND amount_due = 100")), 1);
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT count(*) AS id FROM events WHERE type = 'invoice.written_off'"
        ),
        1
    );
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM invoice_dunning WHERE invoice_id = {inv} AND status = 'completed' AND stop_reason = 'written off'")), 1);
    let page = app
        .html(&owner, &format!("/t/{}/invoices/{inv}", t.slug))
        .await;
    assert!(page.contains("Written off as uncollectible: Insolvency proceedings"));
    let before = count(&app, &t, "dunning_actions");
    dun(&app, &t, "2026-03-15").await;
    assert_eq!(count(&app, &t, "dunning_actions"), before);
    // Twice is refused.
    let r = app.post_form(&owner, &path, &[("reason", "again")]).await;
    assert_eq!(r.status(), 409);
}
