//! AR aging: buckets, as-of reconstruction, hierarchy roll-up, currencies, CSV = screen,
//! filters and who sees what. Data goes straight into the tenant's tables (the report reads
//! them; how invoices and payments get there is tested elsewhere).

use arbor::auth::Role;
use scraper::{Html, Selector};

use crate::{
    billing::{exec, one},
    helpers::{member, new_client, TestApp, TestTenant},
};

fn account(
    app: &TestApp,
    t: &TestTenant,
    name: &str,
    cur: &str,
    parent: Option<i64>,
    owner: Option<i64>,
) -> i64 {
    let parent = parent.map_or("NULL".into(), |p| p.to_string());
    let owner = owner.map_or("NULL".into(), |o| o.to_string());
    one(app, t, &format!(
        "INSERT INTO accounts (account_number, legal_name, display_name, name_key, currency, parent_id, owner_user_id) \
         VALUES ('R-{n}', '{name}', '{name}', lower('{name}'), '{cur}', {parent}, {owner}) RETURNING id",
        n = uuid::Uuid::new_v4().simple().to_string().get(..10).unwrap()
    ))
}

/// An open invoice (nothing paid yet).
pub fn invoice(
    app: &TestApp,
    t: &TestTenant,
    acct: i64,
    cur: &str,
    issue: &str,
    due: &str,
    total: &str,
) -> i64 {
    one(app, t, &format!(
        "INSERT INTO invoices (kind, number, status, account_id, bill_to_account_id, source, currency, issue_date, \
                               due_date, terms_kind, terms_days, subtotal, total, amount_due, finalized_at) \
         VALUES ('invoice', 'INV-' || substr(md5(random()::text), 1, 12), 'open', {acct}, {acct}, 'manual', '{cur}', '{issue}', \
                 '{due}', 'net', 30, {total}, {total}, {total}, now()) RETURNING id"
    ))
}

/// Cash received on `on`, applied to `inv` when it was recorded (as the cash screen does).
fn pay(app: &TestApp, t: &TestTenant, acct: i64, inv: i64, cur: &str, amount: &str, on: &str) {
    exec(
        app,
        t,
        &format!(
            "WITH p AS (INSERT INTO payments (account_id, method, currency, amount, received_on) \
                    VALUES ({acct}, 'wire', '{cur}', {amount}, '{on}') RETURNING id, created_at) \
         INSERT INTO payment_applications (payment_id, invoice_id, amount, created_at) \
         SELECT id, {inv}, {amount}, created_at FROM p"
        ),
    );
    exec(app, t, &format!(
        "UPDATE invoices SET amount_paid = amount_paid + {amount}, amount_due = amount_due - {amount}, \
                status = CASE WHEN amount_due - {amount} = 0 THEN 'paid' ELSE status END WHERE id = {inv}"
    ));
}

fn csv_rows(body: &str) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_reader(body.as_bytes());
    r.records()
        .map(|x| x.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

async fn csv_of(app: &TestApp, c: &reqwest::Client, t: &TestTenant, q: &str) -> Vec<Vec<String>> {
    let resp = app
        .get(c, &format!("/t/{}/reports/aging?{q}&format=csv", t.slug))
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("text/csv"));
    csv_rows(&resp.text().await.unwrap())
}

async fn page(app: &TestApp, c: &reqwest::Client, t: &TestTenant, q: &str) -> Html {
    let resp = app
        .get(c, &format!("/t/{}/reports/aging?{q}", t.slug))
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    Html::parse_document(&resp.text().await.unwrap())
}

fn attrs(doc: &Html, sel: &str, attr: &str) -> Vec<String> {
    let s = Selector::parse(sel).unwrap();
    doc.select(&s)
        .filter_map(|e| e.value().attr(attr).map(str::to_owned))
        .collect()
}

/// Summary CSV rows as (row_type, currency, key, [6 buckets + total]).
fn summary(rows: &[Vec<String>]) -> Vec<(String, String, String, Vec<String>)> {
    rows.iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[3].clone(), r[6..13].to_vec()))
        .collect()
}

#[tokio::test]
async fn buckets_follow_the_day_boundaries_and_the_csv_is_the_screen() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "aging-b").await;
    let a = account(&app, &t, "Boundary Co", "USD", None, None);
    // Due `d` days before 2026-06-30; the amount names the day so every bucket sum is unique.
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    for d in [0u64, 1, 30, 31, 60, 61, 90, 91, 120, 121] {
        let due = as_of - chrono::Days::new(d);
        let issue = due - chrono::Days::new(30);
        invoice(
            &app,
            &t,
            a,
            "USD",
            &issue.to_string(),
            &due.to_string(),
            &format!("{}", 1000 + d),
        );
    }
    let q = "as_of=2026-06-30&group=currency";
    let rows = summary(&csv_of(&app, &owner, &t, q).await);
    assert_eq!(rows.len(), 1);
    let want = [
        "1000.00", "2031.00", "2091.00", "2151.00", "2211.00", "1121.00", "10605.00",
    ];
    assert_eq!(rows[0].3, want);

    // The detail puts each invoice in its bucket, with days past due.
    let detail = csv_of(&app, &owner, &t, "as_of=2026-06-30&view=detail").await;
    let got: Vec<(String, String)> = detail
        .iter()
        .map(|r| (r[7].clone(), r[8].clone()))
        .collect();
    for (days, bucket) in [
        ("0", "Current"),
        ("1", "1–30"),
        ("30", "1–30"),
        ("31", "31–60"),
        ("60", "31–60"),
        ("61", "61–90"),
        ("90", "61–90"),
        ("91", "91–120"),
        ("120", "91–120"),
        ("121", "120+"),
    ] {
        assert!(
            got.contains(&(days.into(), bucket.into())),
            "{days} days → {bucket}: {got:?}"
        );
    }

    // CSV = screen: the same amounts in the same order, and the same invoices in the same order.
    let doc = page(&app, &owner, &t, q).await;
    let shown = attrs(&doc, "table.aging td a[data-amount]", "data-amount");
    let exported: Vec<String> = rows.iter().flat_map(|r| r.3.clone()).collect();
    assert_eq!(shown, exported);
    assert!(doc.html().contains("<svg"), "bar chart rendered");
    let doc = page(&app, &owner, &t, "as_of=2026-06-30&view=detail").await;
    let ids = attrs(&doc, "tr[data-invoice]", "data-invoice");
    assert_eq!(ids, detail.iter().map(|r| r[0].clone()).collect::<Vec<_>>());

    // A drill-down link of the 31–60 cell leads to exactly those two invoices.
    let links = attrs(
        &page(&app, &owner, &t, q).await,
        "table.aging td a[data-amount]",
        "href",
    );
    let drill = links[2].split_once('?').unwrap().1.to_owned();
    let cell = csv_of(&app, &owner, &t, &drill).await;
    assert_eq!(
        cell.iter().map(|r| r[7].as_str()).collect::<Vec<_>>(),
        ["60", "31"]
    );
}

#[tokio::test]
async fn balances_are_as_of_the_date_and_later_payments_do_not_reduce_them() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "aging-asof").await;
    let a = account(&app, &t, "Late Payer", "USD", None, None);
    let inv = invoice(&app, &t, a, "USD", "2026-05-01", "2026-05-31", "100");
    pay(&app, &t, a, inv, "USD", "30", "2026-06-10");
    pay(&app, &t, a, inv, "USD", "70", "2026-07-10");
    let total = |rows: Vec<Vec<String>>| rows.iter().map(|r| r[9].clone()).collect::<Vec<_>>();
    let detail = |d: &'static str| format!("as_of={d}&view=detail");
    assert_eq!(
        total(csv_of(&app, &owner, &t, &detail("2026-06-05")).await),
        ["100.00"]
    );
    assert_eq!(
        total(csv_of(&app, &owner, &t, &detail("2026-06-30")).await),
        ["70.00"]
    );
    assert!(csv_of(&app, &owner, &t, &detail("2026-07-15"))
        .await
        .is_empty());
    // Not issued yet on the date: not owed.
    assert!(csv_of(&app, &owner, &t, &detail("2026-04-30"))
        .await
        .is_empty());
    // A credit note issued after the date does not reduce the balance either.
    let b = invoice(&app, &t, a, "USD", "2026-05-01", "2026-05-31", "40");
    exec(&app, &t, &format!(
        "INSERT INTO invoices (kind, number, status, account_id, bill_to_account_id, source, related_invoice_id, currency, \
                               issue_date, terms_kind, terms_days, total, finalized_at) \
         VALUES ('credit_note', 'CN-R{b}', 'paid', {a}, {a}, 'credit', {b}, 'USD', '2026-07-01', 'net', 0, 40, now())"));
    exec(&app, &t, &format!("UPDATE invoices SET amount_credited = 40, amount_due = 0, status = 'paid' WHERE id = {b}"));
    assert_eq!(
        total(csv_of(&app, &owner, &t, &detail("2026-06-30")).await),
        ["70.00", "40.00"]
    );
    assert_eq!(
        total(csv_of(&app, &owner, &t, &detail("2026-07-01")).await),
        ["70.00"]
    );
}

#[tokio::test]
async fn parents_roll_up_children_and_currencies_are_never_summed() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "aging-h").await;
    let parent = account(&app, &t, "Parent Group", "USD", None, None);
    let child = account(&app, &t, "Child Unit", "USD", Some(parent), None);
    let euro = account(&app, &t, "Euro GmbH", "EUR", Some(child), None);
    invoice(&app, &t, parent, "USD", "2026-06-01", "2026-06-30", "100");
    invoice(&app, &t, child, "USD", "2026-06-01", "2026-06-30", "50");
    invoice(&app, &t, euro, "EUR", "2026-06-01", "2026-06-30", "7");
    let rows = summary(&csv_of(&app, &owner, &t, "as_of=2026-06-30").await);
    let find = |ty: &str, cur: &str, key: String| {
        rows.iter()
            .find(|r| r.0 == ty && r.1 == cur && r.2 == key)
            .map(|r| r.3[6].clone())
    };
    assert_eq!(
        find("row", "USD", parent.to_string()).as_deref(),
        Some("150.00")
    );
    assert_eq!(
        find("row", "USD", child.to_string()).as_deref(),
        Some("50.00")
    );
    assert_eq!(
        find("total", "USD", String::new()).as_deref(),
        Some("150.00")
    );
    // The EUR invoice rolls up to both ancestors, in its own currency block.
    assert_eq!(
        find("row", "EUR", parent.to_string()).as_deref(),
        Some("7.00")
    );
    assert_eq!(
        find("row", "EUR", child.to_string()).as_deref(),
        Some("7.00")
    );
    assert_eq!(find("total", "EUR", String::new()).as_deref(), Some("7.00"));
    assert!(
        rows.iter().all(|r| r.3[6] != "157.00"),
        "never summed across currencies"
    );
    let doc = page(&app, &owner, &t, "as_of=2026-06-30").await;
    assert_eq!(
        attrs(&doc, "article.aging-block", "data-currency"),
        ["EUR", "USD"]
    );

    // The account filter takes the hierarchy below it, on the screen and in the CSV.
    let q = format!("as_of=2026-06-30&account={child}");
    let rows = summary(&csv_of(&app, &owner, &t, &q).await);
    assert!(rows.iter().all(|r| r.2 != parent.to_string()));
    assert!(rows
        .iter()
        .any(|r| r.0 == "total" && r.1 == "USD" && r.3[6] == "50.00"));
    let doc = page(&app, &owner, &t, &q).await;
    assert!(!doc.html().contains("Parent Group"));
    assert!(doc.html().contains("Euro GmbH"));
}

#[tokio::test]
async fn filters_apply_to_screen_and_csv_and_sales_see_only_their_accounts() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "aging-f").await;
    let (sales, sales_id, _) = member(&app, &t, Role::Sales).await;
    let (auditor, _, _) = member(&app, &t, Role::Auditor).await;
    let mine = account(&app, &t, "Sales Own Ltd", "USD", None, Some(sales_id));
    let other = account(&app, &t, "Someone Else Inc", "USD", None, None);
    invoice(&app, &t, mine, "USD", "2026-06-01", "2026-06-10", "10");
    invoice(&app, &t, other, "USD", "2026-01-01", "2026-01-31", "20");
    invoice(&app, &t, other, "EUR", "2026-06-01", "2026-06-10", "30");

    for (q, want) in [
        ("as_of=2026-06-30&currency=EUR&view=detail", vec!["30.00"]),
        (
            &*format!("as_of=2026-06-30&owner={sales_id}&view=detail"),
            vec!["10.00"],
        ),
        (
            "as_of=2026-06-30&owner=none&currency=USD&view=detail",
            vec!["20.00"],
        ),
        (
            "as_of=2026-06-30&from=2026-05-01&to=2026-06-30&currency=USD&view=detail",
            vec!["10.00"],
        ),
        ("as_of=2026-06-30&bucket=120%2B&view=detail", vec!["20.00"]),
    ] {
        let csv = csv_of(&app, &owner, &t, q).await;
        assert_eq!(
            csv.iter().map(|r| r[9].as_str()).collect::<Vec<_>>(),
            want,
            "{q}"
        );
        let doc = page(&app, &owner, &t, q).await;
        let ids = attrs(&doc, "tr[data-invoice]", "data-invoice");
        assert_eq!(
            ids,
            csv.iter().map(|r| r[0].clone()).collect::<Vec<_>>(),
            "{q}"
        );
    }

    // Sales: only their account, whatever the filters say; no export.
    let html = page(&app, &sales, &t, "as_of=2026-06-30&group=owner")
        .await
        .html();
    assert!(html.contains("10.00") && !html.contains("20.00") && !html.contains("30.00"));
    let html = page(
        &app,
        &sales,
        &t,
        &format!("as_of=2026-06-30&account={other}"),
    )
    .await
    .html();
    assert!(!html.contains("Someone Else"));
    assert_eq!(
        app.status(&sales, &format!("/t/{}/reports/aging?format=csv", t.slug))
            .await,
        403
    );
    // Auditor: reads and exports everything.
    let all = csv_of(&app, &auditor, &t, "as_of=2026-06-30&view=detail").await;
    assert_eq!(all.len(), 3);

    // Bad filters: 422 with a message, never a 500.
    for q in [
        "as_of=yesterday",
        "currency=EURO",
        "owner=bob",
        "account=x",
        "group=region",
        "bucket=7-14",
        "from=2026-02-01&to=2026-01-01",
    ] {
        let resp = app
            .get(&owner, &format!("/t/{}/reports/aging?{q}", t.slug))
            .await;
        assert_eq!(resp.status().as_u16(), 422, "{q}");
    }
}

/// The day a cash application counts on: its payment's `received_on` when written with the
/// payment, even if that is after the day it was recorded (post-dated); its own day when made
/// later (applying unapplied cash). The report reads these through separate index paths, so
/// each case is checked on both sides of its day.
#[tokio::test]
async fn cash_counts_on_its_effective_day_post_dated_or_applied_later() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "aging-eff").await;
    let a = account(&app, &t, "Effective Day", "USD", None, None);
    let total = |rows: Vec<Vec<String>>| rows.iter().map(|r| r[9].clone()).collect::<Vec<_>>();
    let detail = |d: &str| format!("as_of={d}&view=detail");

    // Received 2026-06-01, applied on 2026-06-20 (a later application of unapplied cash).
    let later = invoice(&app, &t, a, "USD", "2026-05-01", "2026-05-31", "100");
    exec(&app, &t, &format!(
        "WITH p AS (INSERT INTO payments (account_id, method, currency, amount, received_on, created_at) \
                    VALUES ({a}, 'wire', 'USD', 100, '2026-06-01', '2026-06-01 09:00+00') RETURNING id) \
         INSERT INTO payment_applications (payment_id, invoice_id, amount, created_at) \
         SELECT id, {later}, 100, '2026-06-20 09:00+00' FROM p"));
    exec(&app, &t, &format!(
        "UPDATE invoices SET amount_paid = 100, amount_due = 0, status = 'paid' WHERE id = {later}"));
    assert_eq!(
        total(csv_of(&app, &owner, &t, &detail("2026-06-10")).await),
        ["100.00"]
    );
    assert_eq!(
        total(csv_of(&app, &owner, &t, &detail("2026-06-19")).await),
        ["100.00"]
    );
    assert!(csv_of(&app, &owner, &t, &detail("2026-06-20"))
        .await
        .is_empty());

    // A post-dated payment recorded today for ten days from now: owed until then.
    let today = chrono::Utc::now().date_naive();
    let post = invoice(&app, &t, a, "USD", "2026-05-01", "2026-05-31", "40");
    pay(
        &app,
        &t,
        a,
        post,
        "USD",
        "40",
        &(today + chrono::Days::new(10)).to_string(),
    );
    assert_eq!(
        total(csv_of(&app, &owner, &t, &detail(&today.to_string())).await),
        ["40.00"]
    );
    assert!(csv_of(
        &app,
        &owner,
        &t,
        &detail(&(today + chrono::Days::new(10)).to_string())
    )
    .await
    .is_empty());
}
