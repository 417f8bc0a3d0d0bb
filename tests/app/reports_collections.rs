//! The collections report and the dashboard against a hand-computed fixture.
//!
//! EUR, payer "Alpha" (owned by a sales rep), range 2025-01-01..2025-03-31:
//! - I1 issued 01-10 due 02-09, 1000, paid 02-19 (lag 40 days, 10 past due)
//! - I2 issued 02-05 due 03-07, 2000, 500 paid 03-01, 1500 open
//! - I5 issued 02-10 due 03-12, 500, paid 02-25 (lag 15, −15)
//! - I3 issued 03-15 due 04-14, 1000 open
//!
//! Sales Jan 1000, Feb 2500, Mar 1000; AR Jan 31 1000, Feb 28 2000, Mar 31 2500 (current
//! 1000). Standard DSO: Jan 31.0, Feb 22.4, Mar 77.5, range 2500/4500×90 = 50.0. Count-back
//! at Mar 31: 31 + 1500/2500×28 = 47.8. CEI range (4500−2500)/(4500−1000) = 57.1, March
//! (3000−2500)/(3000−2000) = 25.0. USD payer "Beta" (unassigned): I4 issued 01-20 due 02-19,
//! 300, paid 100 on 02-01 and 200 on 03-21 (lag 60, 30). Lag over both: days to pay
//! [15, 40, 60] avg 38.3 median 40.0; past due [−15, 10, 30] avg 8.3 median 10.0.

use arbor::auth::Role;
use chrono::{Duration, Utc};

use crate::{
    billing::{exec, one},
    helpers::{member, new_client, TestApp, TestTenant},
};

const RANGE: &str = "from=2025-01-01&to=2025-03-31";

fn account(app: &TestApp, t: &TestTenant, name: &str, currency: &str, owner: Option<i64>) -> i64 {
    let owner = owner.map_or("NULL".into(), |o| o.to_string());
    one(
        app,
        t,
        &format!(
            "INSERT INTO accounts (account_number, legal_name, display_name, name_key, currency, owner_user_id) \
             VALUES ('{name}', '{name}', '{name}', lower('{name}'), '{currency}', {owner}) RETURNING id"
        ),
    )
}

#[allow(clippy::too_many_arguments)]
fn invoice(
    app: &TestApp,
    t: &TestTenant,
    aid: i64,
    cur: &str,
    num: &str,
    issued: &str,
    due: &str,
    total: &str,
    paid: &str,
) -> i64 {
    one(
        app,
        t,
        &format!(
            "INSERT INTO invoices (account_id, bill_to_account_id, source, currency, issue_date, due_date, \
             terms_kind, terms_days, status, number, subtotal, total, amount_paid, amount_due, finalized_at) \
             VALUES ({aid}, {aid}, 'manual', '{cur}', '{issued}', '{due}', 'net', 30, \
             CASE WHEN {total} = {paid} THEN 'paid' ELSE 'open' END, '{num}', {total}, {total}, {paid}, {total} - {paid}, now()) RETURNING id"
        ),
    )
}

/// A payment applied in full to one invoice, dated `on` (the application is written with it).
fn pay(app: &TestApp, t: &TestTenant, aid: i64, inv: i64, cur: &str, amount: &str, on: &str) {
    let p = one(
        app,
        t,
        &format!(
            "INSERT INTO payments (account_id, method, currency, amount, received_on) \
             VALUES ({aid}, 'wire', '{cur}', {amount}, '{on}') RETURNING id"
        ),
    );
    exec(
        app,
        t,
        &format!(
            "INSERT INTO payment_applications (payment_id, invoice_id, amount, created_at) \
             SELECT id, {inv}, amount, created_at FROM payments WHERE id = {p}"
        ),
    );
}

struct Fixture {
    alpha: i64,
    beta: i64,
    sales: reqwest::Client,
}

async fn fixture(app: &TestApp, t: &TestTenant) -> Fixture {
    let (sales, rep, _) = member(app, t, Role::Sales).await;
    let alpha = account(app, t, "Alpha", "EUR", Some(rep));
    let beta = account(app, t, "Beta", "USD", None);
    let i1 = invoice(
        app,
        t,
        alpha,
        "EUR",
        "I1",
        "2025-01-10",
        "2025-02-09",
        "1000",
        "1000",
    );
    pay(app, t, alpha, i1, "EUR", "1000", "2025-02-19");
    let i2 = invoice(
        app,
        t,
        alpha,
        "EUR",
        "I2",
        "2025-02-05",
        "2025-03-07",
        "2000",
        "500",
    );
    pay(app, t, alpha, i2, "EUR", "500", "2025-03-01");
    let i5 = invoice(
        app,
        t,
        alpha,
        "EUR",
        "I5",
        "2025-02-10",
        "2025-03-12",
        "500",
        "500",
    );
    pay(app, t, alpha, i5, "EUR", "500", "2025-02-25");
    invoice(
        app,
        t,
        alpha,
        "EUR",
        "I3",
        "2025-03-15",
        "2025-04-14",
        "1000",
        "0",
    );
    let i4 = invoice(
        app,
        t,
        beta,
        "USD",
        "I4",
        "2025-01-20",
        "2025-02-19",
        "300",
        "300",
    );
    pay(app, t, beta, i4, "USD", "100", "2025-02-01");
    pay(app, t, beta, i4, "USD", "200", "2025-03-21");
    Fixture { alpha, beta, sales }
}

/// CSV records as `(section, currency, group, key, measure) → value`.
fn records(csv: &str) -> Vec<[String; 6]> {
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            [0, 1, 2, 3, 7, 8].map(|i| rec[i].to_owned())
        })
        .collect()
}

fn value(recs: &[[String; 6]], section: &str, cur: &str, key: &str, measure: &str) -> String {
    recs.iter()
        .find(|r| r[0] == section && r[1] == cur && r[3] == key && r[4] == measure)
        .unwrap_or_else(|| panic!("no {section}/{cur}/{key}/{measure} in {recs:?}"))[5]
        .clone()
}

fn screen_values(html: &str) -> Vec<String> {
    html.split("data-value=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn dso_cei_and_lag_match_the_hand_computed_fixture_and_csv_equals_screen() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "rcol").await;
    let f = fixture(&app, &t).await;
    let base = format!("/t/{}/reports/collections", t.slug);

    let csv = app
        .html(&owner, &format!("{base}?{RANGE}&format=csv"))
        .await;
    let r = records(&csv);
    // DSO standard per month and over the range; count-back.
    assert_eq!(value(&r, "dso", "EUR", "2025-01", "dso_standard"), "31.0");
    assert_eq!(value(&r, "dso", "EUR", "2025-02", "dso_standard"), "22.4");
    assert_eq!(value(&r, "dso", "EUR", "2025-03", "dso_standard"), "77.5");
    assert_eq!(value(&r, "dso", "EUR", "", "dso_standard"), "50.0");
    assert_eq!(value(&r, "dso", "EUR", "", "ar_end"), "2500.00");
    assert_eq!(value(&r, "dso", "EUR", "", "credit_sales"), "4500.00");
    assert_eq!(value(&r, "dso", "EUR", "", "days"), "90");
    assert_eq!(value(&r, "dso", "EUR", "2025-03", "dso_count_back"), "47.8");
    assert_eq!(value(&r, "dso", "EUR", "2025-02", "dso_count_back"), "22.4");
    // CEI.
    assert_eq!(value(&r, "cei", "EUR", "", "cei_percent"), "57.1");
    assert_eq!(value(&r, "cei", "EUR", "2025-03", "cei_percent"), "25.0");
    assert_eq!(value(&r, "cei", "EUR", "2025-02", "cei_percent"), "100.0");
    // Lag across all paid invoices, by account and by rep.
    assert_eq!(value(&r, "lag", "", "", "invoices"), "3");
    assert_eq!(value(&r, "lag", "", "", "days_to_pay_avg"), "38.3");
    assert_eq!(value(&r, "lag", "", "", "days_to_pay_median"), "40.0");
    assert_eq!(value(&r, "lag", "", "", "days_past_due_avg"), "8.3");
    assert_eq!(value(&r, "lag", "", "", "days_past_due_median"), "10.0");
    assert_eq!(
        value(&r, "lag", "", &f.alpha.to_string(), "days_to_pay_median"),
        "27.5"
    );
    assert_eq!(
        value(&r, "lag", "", &f.beta.to_string(), "days_past_due_avg"),
        "30.0"
    );
    assert_eq!(value(&r, "lag", "", "2025-03", "days_to_pay_avg"), "60.0");
    assert_eq!(value(&r, "lag", "", "none", "invoices"), "1");
    // Overdue as of today: I2 and I3 are both past due by now.
    assert_eq!(
        value(&r, "overdue", "EUR", &f.alpha.to_string(), "overdue"),
        "2500.00"
    );
    assert_eq!(
        value(&r, "overdue", "EUR", &f.alpha.to_string(), "invoices"),
        "2"
    );

    // The CSV holds exactly the figures of the page, in order.
    let html = app.html(&owner, &format!("{base}?{RANGE}")).await;
    assert!(html.contains("<svg class=\"dso-chart\""), "DSO chart drawn");
    assert!(html.contains("count-back"), "definitions are stated");
    let csv_values: Vec<String> = r.iter().map(|x| x[5].clone()).collect();
    assert_eq!(screen_values(&html), csv_values);

    // Filters apply to both: EUR only drops Beta's USD figures from screen and file.
    let q = format!("{base}?{RANGE}&currency=EUR&section=lag");
    let html = app.html(&owner, &q).await;
    let csv = app.html(&owner, &format!("{q}&format=csv")).await;
    let r = records(&csv);
    assert!(r.iter().all(|x| x[0] == "lag"));
    assert_eq!(value(&r, "lag", "", "", "invoices"), "2");
    assert!(!html.contains("Beta"));
    assert_eq!(
        screen_values(&html),
        r.iter().map(|x| x[5].clone()).collect::<Vec<_>>()
    );
    // Account filter (bookmarkable): Beta alone.
    let csv = app
        .html(
            &owner,
            &format!("{base}?{RANGE}&account={}&section=dso&format=csv", f.beta),
        )
        .await;
    let r = records(&csv);
    assert!(r.iter().all(|x| x[1] == "USD"), "{r:?}");

    // Bad filters are a 422 with a message, never a 500.
    let resp = app.get(&owner, &format!("{base}?from=2025-13-01")).await;
    assert_eq!(resp.status().as_u16(), 422);
    assert!(resp.text().await.unwrap().contains("is not a date"));
    assert_eq!(
        app.status(&owner, &format!("{base}?section=nope")).await,
        422
    );
    assert_eq!(
        app.status(&owner, &format!("{base}?from=2020-01-01&to=2025-01-01"))
            .await,
        422
    );

    // Sales see only the accounts they own, and cannot export.
    let html = app.html(&f.sales, &format!("{base}?{RANGE}")).await;
    assert!(html.contains("Alpha"));
    assert!(!html.contains("Beta"));
    assert!(!html.contains("data-currency=\"USD\""));
    assert_eq!(
        app.status(&f.sales, &format!("{base}?{RANGE}&format=csv"))
            .await,
        403
    );
}

#[tokio::test]
async fn promises_due_and_the_dashboard_show_tasks_failures_and_totals() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "rdash").await;
    let f = fixture(&app, &t).await;
    let today = Utc::now().date_naive();
    let soon = today + Duration::days(3);
    let later = today + Duration::days(20);
    let due = one(&app, &t, &format!("INSERT INTO promises_to_pay (account_id, currency, amount, promised_on) VALUES ({}, 'EUR', 300, '{soon}') RETURNING id", f.alpha));
    let not_yet = one(&app, &t, &format!("INSERT INTO promises_to_pay (account_id, currency, amount, promised_on) VALUES ({}, 'EUR', 99, '{later}') RETURNING id", f.alpha));
    let canceled = one(&app, &t, &format!("INSERT INTO promises_to_pay (account_id, currency, amount, promised_on, status) VALUES ({}, 'EUR', 77, '{today}', 'canceled') RETURNING id", f.alpha));

    let base = format!("/t/{}/reports/collections", t.slug);
    let r = records(
        &app.html(&owner, &format!("{base}?section=promises&format=csv"))
            .await,
    );
    assert_eq!(
        value(&r, "promises", "EUR", &due.to_string(), "amount"),
        "300.00"
    );
    assert_eq!(
        value(&r, "promises", "EUR", &due.to_string(), "promised_on"),
        soon.to_string()
    );
    assert_eq!(
        value(&r, "promises", "EUR", &due.to_string(), "account_id"),
        f.alpha.to_string()
    );
    assert!(!r
        .iter()
        .any(|x| x[3] == not_yet.to_string() || x[3] == canceled.to_string()));

    // Dashboard: a collector's own task and a recent failure.
    let (collector, cid, _) = member(&app, &t, Role::Collections).await;
    let task = one(&app, &t, &format!("INSERT INTO collections_tasks (account_id, title, due_on, source, assignee_user_id) VALUES ({}, 'Call Alpha about I2', '{}', 'manual', {cid}) RETURNING id", f.alpha, today - Duration::days(2)));
    one(&app, &t, &format!("INSERT INTO collections_tasks (account_id, title, due_on, source) VALUES ({}, 'Someone else''s task', '{today}', 'manual') RETURNING id", f.alpha));
    let inv = one(&app, &t, "SELECT id FROM invoices WHERE number = 'I2'");
    let pm = one(&app, &t, &format!("INSERT INTO payment_methods (account_id, gateway, token, brand, last4) VALUES ({}, 'sandbox', 'tok_x', 'Visa', '4242') RETURNING id", f.alpha));
    let attempt = one(&app, &t, &format!("INSERT INTO charge_attempts (invoice_id, account_id, payment_method_id, attempt_no, trigger, idempotency_key, currency, status, scheduled_for, message) VALUES ({inv}, {}, {pm}, 1, 'retry', 'k1', 'EUR', 'hard_decline', now(), 'Card declined') RETURNING id", f.alpha));
    let dead = one(&app, &t, "INSERT INTO outbox (kind, payload, status, last_error) VALUES ('webhook.deliver', '{}', 'dead', 'HTTP 500') RETURNING id");

    let dash = app.html(&collector, &format!("/t/{}/", t.slug)).await;
    assert!(dash.contains(&format!("data-task=\"{task}\"")), "{dash}");
    assert!(dash.contains("Call Alpha about I2"));
    assert!(!dash.contains("Someone else"));
    assert!(dash.contains(&format!("data-charge-attempt=\"{attempt}\"")));
    assert!(dash.contains("Card declined"));
    assert!(dash.contains(&format!("data-outbox=\"{dead}\"")));
    // Today's totals per currency: EUR AR 2500 all overdue.
    assert!(dash.contains("data-currency=\"EUR\""));
    assert!(
        dash.contains("2,500.00") || dash.contains("2500.00") || dash.contains("2 500,00"),
        "{dash}"
    );

    // Sales: no tasks or failures blocks, only their own accounts' totals.
    let dash = app.html(&f.sales, &format!("/t/{}/", t.slug)).await;
    assert!(!dash.contains("id=\"my-tasks\""));
    assert!(!dash.contains("id=\"recent-failures\""));
    assert!(dash.contains("data-currency=\"EUR\""));
    assert!(!dash.contains("data-currency=\"USD\""));
}
