//! Recurring revenue (MRR/ARR with movements) and invoice status by owner, through HTTP
//! against PostgreSQL, checked against hand-computed figures.

use arbor::auth::Role;

use crate::{
    accounts::put_account,
    billing::{exec, one, product_with_price, subscribe},
    helpers::{member, new_client, TestApp, TestTenant},
};

/// The `data-amount` values of a page, in document order.
fn amounts(html: &str) -> Vec<String> {
    html.split("data-amount=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_owned)
        .collect()
}

async fn csv(app: &TestApp, client: &reqwest::Client, path: &str) -> Vec<Vec<String>> {
    let resp = app.get(client, path).await;
    assert_eq!(resp.status(), 200, "{path}");
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/csv"), "{ct}");
    let body = resp.text().await.unwrap();
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body.as_bytes());
    r.records()
        .map(|rec| rec.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|s| (*s).to_owned()).collect()
}

/// The only item row of a subscription.
fn first_item(app: &TestApp, t: &TestTenant, sub: i64) -> i64 {
    one(
        app,
        t,
        &format!("SELECT id FROM subscription_items WHERE subscription_id = {sub}"),
    )
}

/// An amendment as the amend flow stores it: end the row the day before, start the next.
fn change_quantity(app: &TestApp, t: &TestTenant, item: i64, from: &str, qty: &str) -> i64 {
    exec(
        app,
        t,
        &format!("UPDATE subscription_items SET end_date = DATE '{from}' - 1 WHERE id = {item}"),
    );
    one(
        app,
        t,
        &format!(
            "INSERT INTO subscription_items (subscription_id, product_id, price_id, price_version_id, quantity, start_date, replaces_id)
             SELECT subscription_id, product_id, price_id, price_version_id, {qty}, '{from}', id
               FROM subscription_items WHERE id = {item} RETURNING id"
        ),
    )
}

struct Fixture {
    t: TestTenant,
    owner: reqwest::Client,
    alpha: i64,
    beta: i64,
    gamma: i64,
    sales: reqwest::Client,
}

async fn mrr_fixture(app: &TestApp) -> Fixture {
    let owner = new_client();
    let t = app.signup(&owner, "mrr").await;
    let (sales, sales_uid, _) = member(app, &t, Role::Sales).await;
    let (_, seats) = product_with_price(
        app,
        &owner,
        &t,
        "SEAT",
        &[("model", "per_unit"), ("unit_amount", "10")],
    )
    .await;
    // 300 quoted per quarter, billed quarterly: 100 a month.
    let (_, quarterly) = product_with_price(
        app,
        &owner,
        &t,
        "QPLAN",
        &[("model", "flat"), ("amount", "300")],
    )
    .await;
    exec(
        app,
        &t,
        &format!("UPDATE price_versions SET interval_months = 3 WHERE price_id = {quarterly}"),
    );
    let (_, usd) = product_with_price(
        app,
        &owner,
        &t,
        "USDPLAN",
        &[("model", "per_unit"), ("unit_amount", "7")],
    )
    .await;
    let alpha = put_account(app, &t, "Alpha Ltd", None);
    let beta = put_account(app, &t, "Beta Ltd", None);
    let gamma = put_account(app, &t, "Gamma Inc", Some(sales_uid));

    // Alpha: 2 seats in January, 5 from 15 February, 3 from 10 March, canceled 20 April,
    // back with 1 seat in June.
    let a1 = subscribe(
        app,
        &owner,
        &t,
        alpha,
        &[
            ("start_date", "2026-01-01"),
            ("anchor_day", "1"),
            ("item0_price", &seats.to_string()),
            ("item0_quantity", "2"),
        ],
    )
    .await;
    let i1 = first_item(app, &t, a1);
    let i2 = change_quantity(app, &t, i1, "2026-02-15", "5");
    change_quantity(app, &t, i2, "2026-03-10", "3");
    exec(
        app,
        &t,
        &format!("UPDATE subscriptions SET status = 'canceled', end_date = '2026-04-20', canceled_at = '2026-04-01T10:00:00Z' WHERE id = {a1}"),
    );
    subscribe(
        app,
        &owner,
        &t,
        alpha,
        &[
            ("start_date", "2026-06-01"),
            ("anchor_day", "1"),
            ("item0_price", &seats.to_string()),
            ("item0_quantity", "1"),
        ],
    )
    .await;
    // Beta: quarterly plan from March.
    subscribe(
        app,
        &owner,
        &t,
        beta,
        &[
            ("start_date", "2026-03-01"),
            ("anchor_day", "1"),
            ("cycle", "3"),
            ("item0_price", &quarterly.to_string()),
        ],
    )
    .await;
    // Gamma (owned by the sales rep) pays in USD.
    let g = subscribe(
        app,
        &owner,
        &t,
        gamma,
        &[
            ("start_date", "2026-01-01"),
            ("anchor_day", "1"),
            ("item0_price", &usd.to_string()),
        ],
    )
    .await;
    exec(
        app,
        &t,
        &format!("UPDATE prices SET currency = 'USD' WHERE id = {usd}"),
    );
    exec(
        app,
        &t,
        &format!("UPDATE subscriptions SET currency = 'USD' WHERE id = {g}"),
    );
    Fixture {
        t,
        owner,
        alpha,
        beta,
        gamma,
        sales,
    }
}

const HEADER: [&str; 10] = [
    "currency",
    "month",
    "opening_mrr",
    "new",
    "expansion",
    "contraction",
    "churn",
    "reactivation",
    "closing_mrr",
    "arr",
];

#[tokio::test]
async fn mrr_movements_normalize_periods_separate_currencies_and_the_csv_is_the_screen() {
    // Arrange
    let app = TestApp::spawn().await;
    let f = mrr_fixture(&app).await;
    let path = format!("/t/{}/reports/mrr?from=2026-01&to=2026-06", f.t.slug);

    // Act
    let page = app.html(&f.owner, &path).await;
    let rows = csv(&app, &f.owner, &format!("{path}&format=csv")).await;

    // Assert: new 20, expansion +30 (quantity 2 → 5), contraction −20 (5 → 3) and a quarterly
    // 300 counted as 100 new in March, churn −30 in April, reactivation +10 in June.
    let eur = |m: &str, o: &str, mv: [&str; 5], c: &str, arr: &str| {
        let mut r = vec!["EUR", m, o];
        r.extend(mv);
        r.extend([c, arr]);
        row(&r)
    };
    let z = "0.00";
    let usd = |m: &str, o: &str, n: &str| row(&["USD", m, o, n, z, z, z, z, "7.00", "84.00"]);
    assert_eq!(
        rows,
        vec![
            row(&HEADER),
            eur("2026-01", z, ["20.00", z, z, z, z], "20.00", "240.00"),
            eur("2026-02", "20.00", [z, "30.00", z, z, z], "50.00", "600.00"),
            eur(
                "2026-03",
                "50.00",
                ["100.00", z, "-20.00", z, z],
                "130.00",
                "1560.00"
            ),
            eur(
                "2026-04",
                "130.00",
                [z, z, z, "-30.00", z],
                "100.00",
                "1200.00"
            ),
            eur("2026-05", "100.00", [z, z, z, z, z], "100.00", "1200.00"),
            eur(
                "2026-06",
                "100.00",
                [z, z, z, z, "10.00"],
                "110.00",
                "1320.00"
            ),
            usd("2026-01", z, "7.00"),
            usd("2026-02", "7.00", z),
            usd("2026-03", "7.00", z),
            usd("2026-04", "7.00", z),
            usd("2026-05", "7.00", z),
            usd("2026-06", "7.00", z),
        ]
    );
    // The CSV holds exactly the amounts on screen, in the same order.
    let from_csv: Vec<String> = rows[1..].iter().flat_map(|r| r[2..].to_vec()).collect();
    assert_eq!(amounts(&page), from_csv);
    assert!(page.contains("<svg class=\"mrr-chart\""), "{page}");
    assert!(page.contains("<polyline points=\""));

    // Drill-down: the accounts behind a cell.
    let detail = app
        .html(
            &f.owner,
            &format!("{path}&month=2026-03&movement=new&currency=EUR"),
        )
        .await;
    assert!(
        detail.contains(&format!("data-account=\"{}\"", f.beta)),
        "{detail}"
    );
    assert!(!detail.contains(&format!("data-account=\"{}\"", f.alpha)));
    let churn = csv(
        &app,
        &f.owner,
        &format!("{path}&month=2026-04&movement=churn&format=csv"),
    )
    .await;
    assert_eq!(
        churn,
        vec![
            row(&[
                "currency",
                "month",
                "account_id",
                "account",
                "movement",
                "opening_mrr",
                "closing_mrr",
                "change"
            ]),
            row(&[
                "EUR",
                "2026-04",
                &f.alpha.to_string(),
                "Alpha Ltd",
                "churn",
                "30.00",
                "0.00",
                "-30.00"
            ]),
        ]
    );

    // Filters: one currency; an htmx request gets the partial alone.
    let only_usd = csv(&app, &f.owner, &format!("{path}&currency=usd&format=csv")).await;
    assert_eq!(only_usd.len(), 7);
    assert!(only_usd[1..].iter().all(|r| r[0] == "USD"));
    let partial = f
        .owner
        .get(app.url(&path))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(partial.starts_with("<section id=\"mrr\">"), "{partial}");
}

#[tokio::test]
async fn mrr_sales_sees_only_own_accounts_and_bad_filters_are_422() {
    // Arrange
    let app = TestApp::spawn().await;
    let f = mrr_fixture(&app).await;
    let base = format!("/t/{}/reports/mrr", f.t.slug);

    // Act
    let page = app
        .html(&f.sales, &format!("{base}?from=2026-01&to=2026-02"))
        .await;

    // Assert: only Gamma (USD) is the rep's, and the rep may not export.
    assert!(page.contains("data-currency=\"USD\""), "{page}");
    assert!(!page.contains("data-currency=\"EUR\""));
    assert_eq!(
        app.status(&f.sales, &format!("{base}?format=csv")).await,
        403
    );
    let detail = app
        .html(&f.sales, &format!("{base}?month=2026-01&movement=closing"))
        .await;
    assert!(detail.contains(&format!("data-account=\"{}\"", f.gamma)));
    assert!(!detail.contains(&format!("data-account=\"{}\"", f.alpha)));
    for bad in [
        "from=2026-13",
        "to=soon",
        "from=2026-05&to=2026-01",
        "currency=XX",
        "owner=bob",
        "account=x",
        "month=2026-01&movement=bogus",
        "movement=new",
        "format=pdf",
        "from=2000-01&to=2026-01",
    ] {
        assert_eq!(
            app.status(&f.owner, &format!("{base}?{bad}")).await,
            422,
            "{bad}"
        );
    }
}

fn invoice(
    app: &TestApp,
    t: &TestTenant,
    acc: i64,
    status: &str,
    due: &str,
    total: &str,
    cur: &str,
) {
    let number = if status == "draft" {
        "NULL".to_owned()
    } else {
        format!("'T-{}'", uuid::Uuid::new_v4().simple())
    };
    exec(
        app,
        t,
        &format!(
            "INSERT INTO invoices (kind, number, status, account_id, bill_to_account_id, source, currency, issue_date, due_date, terms_kind, terms_days, subtotal, total, amount_due)
             VALUES ('invoice', {number}, '{status}', {acc}, {acc}, 'manual', '{cur}', '2026-01-10', '{due}', 'net', 30, {total}, {total}, 0)"
        ),
    );
}

#[tokio::test]
async fn invoice_status_by_owner_counts_and_sums_per_status_and_sales_sees_only_own() {
    // Arrange: a sales rep's payer, a finance member's payer and one without an owner.
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "isr").await;
    let (sales, sales_uid, _) = member(&app, &t, Role::Sales).await;
    let (_, fin_uid, _) = member(&app, &t, Role::Finance).await;
    let a = put_account(&app, &t, "Rep Customer", Some(sales_uid));
    let b = put_account(&app, &t, "Finance Customer", Some(fin_uid));
    let c = put_account(&app, &t, "Nobody's Customer", None);
    let future = "2999-01-01";
    let past = "2020-01-01";
    invoice(&app, &t, a, "draft", future, "50", "EUR");
    invoice(&app, &t, a, "open", future, "100", "EUR");
    invoice(&app, &t, a, "open", past, "200", "EUR");
    invoice(&app, &t, a, "open", past, "25", "EUR");
    invoice(&app, &t, a, "paid", past, "300", "EUR");
    invoice(&app, &t, b, "void", future, "40", "EUR");
    invoice(&app, &t, b, "uncollectible", past, "60", "EUR");
    invoice(&app, &t, b, "paid", past, "70", "EUR");
    invoice(&app, &t, c, "open", future, "10", "USD");
    // A credit note is not an invoice and is not counted.
    exec(&app, &t, &format!("INSERT INTO invoices (kind, number, status, account_id, bill_to_account_id, source, currency, issue_date, terms_kind, terms_days, total) VALUES ('credit_note', 'CN-1', 'open', {b}, {b}, 'credit', 'EUR', '2026-01-10', 'net', 30, 999)"));
    let base = format!("/t/{}/reports/invoice-status", t.slug);

    // Act
    let rows = csv(&app, &owner, &format!("{base}?format=csv")).await;
    let page = app.html(&owner, &base).await;

    // Assert
    let (s, f) = (sales_uid.to_string(), fin_uid.to_string());
    let z = ["0", "0.00"];
    let line = |cur: &str, id: &str, name: &str, cells: [[&str; 2]; 6]| {
        let mut r = vec![cur, id, name];
        r.extend(cells.iter().flatten().copied());
        row(&r)
    };
    assert_eq!(
        rows[0][..5],
        row(&[
            "currency",
            "owner_id",
            "owner",
            "draft_count",
            "draft_amount"
        ])[..]
    );
    assert_eq!(
        rows[1..],
        vec![
            line(
                "EUR",
                &f,
                "Finance Person",
                [z, z, z, ["1", "70.00"], ["1", "40.00"], ["1", "60.00"]]
            ),
            line(
                "EUR",
                &s,
                "Sales Person",
                [
                    ["1", "50.00"],
                    ["1", "100.00"],
                    ["2", "225.00"],
                    ["1", "300.00"],
                    z,
                    z
                ]
            ),
            line(
                "EUR",
                "",
                "Total EUR",
                [
                    ["1", "50.00"],
                    ["1", "100.00"],
                    ["2", "225.00"],
                    ["2", "370.00"],
                    ["1", "40.00"],
                    ["1", "60.00"]
                ]
            ),
            line("USD", "", "No owner", [z, ["1", "10.00"], z, z, z, z]),
            line("USD", "", "Total USD", [z, ["1", "10.00"], z, z, z, z]),
        ][..]
    );
    let from_csv: Vec<String> = rows[1..]
        .iter()
        .flat_map(|r| {
            r[3..]
                .iter()
                .skip(1)
                .step_by(2)
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        amounts(&page),
        from_csv,
        "the CSV holds the amounts on screen"
    );

    // Drill-down to the invoices of one cell.
    let detail = app
        .html(
            &owner,
            &format!("{base}?view=detail&status=overdue&owner={s}&currency=EUR"),
        )
        .await;
    assert_eq!(detail.matches("data-invoice=").count(), 2, "{detail}");
    assert!(detail.contains("data-status=\"overdue\""));

    // Sales sees their own accounts only.
    let mine = app.html(&sales, &base).await;
    assert!(mine.contains(&format!("data-owner=\"{s}\"")), "{mine}");
    assert!(!mine.contains(&format!("data-owner=\"{f}\"")));
    assert!(!mine.contains("data-currency=\"USD\""));
    assert!(mine.contains("data-amount=\"225.00\""));
    assert!(!mine.contains("data-amount=\"370.00\""));
    assert_eq!(
        app.status(&owner, &format!("{base}?status=late")).await,
        422
    );
    assert_eq!(
        app.status(&owner, &format!("{base}?from=2026-02-30")).await,
        422
    );
}
