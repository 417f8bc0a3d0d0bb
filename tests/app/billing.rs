//! Catalog → subscription → bill run → invoice, against PostgreSQL through the real code.

use std::str::FromStr;

use arbor::{
    audit::Actor,
    db::scope::in_tenant,
    invoicing::{billrun, email::Links, finalize, repo as invoices},
};
use chrono::NaiveDate;
use diesel::{prelude::*, sql_query, sql_types::BigInt};
use rust_decimal::Decimal;

use crate::{
    accounts::{count, id_from, put_account},
    helpers::{new_client, TestApp, TestTenant},
};

pub fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

pub fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Runs SQL returning one `id` in the tenant's schema.
pub fn one(app: &TestApp, t: &TestTenant, sql: &str) -> i64 {
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(sql_query(sql).get_result::<Id>(c)?)
    })
    .unwrap()
    .id
}

pub fn exec(app: &TestApp, t: &TestTenant, sql: &str) {
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(sql_query(sql).execute(c)?)
    })
    .unwrap();
}

pub fn links(app: &TestApp, t: &TestTenant) -> Links {
    billrun::links_for(&app.state, t.id, &t.slug)
}

/// A product with one EUR price; returns (product id, price id).
pub async fn product_with_price(
    app: &TestApp,
    client: &reqwest::Client,
    t: &TestTenant,
    sku: &str,
    price: &[(&str, &str)],
) -> (i64, i64) {
    let resp = app
        .post_form(
            client,
            &format!("/t/{}/catalog/products", t.slug),
            &[
                ("sku", sku),
                ("name", &format!("Product {sku}")),
                ("gl_revenue_account", "4000"),
                ("tax_category", "standard"),
                ("revenue_recognition", "ratable"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 303, "product created");
    let pid = id_from(&resp);
    let mut fields = vec![
        ("nickname", "List"),
        ("currency", "EUR"),
        ("interval_months", "1"),
    ];
    fields.extend_from_slice(price);
    let resp = app
        .post_form(
            client,
            &format!("/t/{}/catalog/products/{pid}/prices", t.slug),
            &fields,
        )
        .await;
    assert_eq!(resp.status(), 303, "price created");
    let prid = one(
        app,
        t,
        &format!("SELECT id FROM prices WHERE product_id = {pid}"),
    );
    (pid, prid)
}

pub async fn subscribe(
    app: &TestApp,
    client: &reqwest::Client,
    t: &TestTenant,
    aid: i64,
    fields: &[(&str, &str)],
) -> i64 {
    let mut all = vec![
        ("cycle", "1"),
        ("timing", "advance"),
        ("term_months", "12"),
        ("collection_method", "send_invoice"),
    ];
    all.extend_from_slice(fields);
    let resp = app
        .post_form(
            client,
            &format!("/t/{}/accounts/{aid}/subscriptions", t.slug),
            &all,
        )
        .await;
    assert_eq!(
        resp.status(),
        303,
        "subscription created: {}",
        resp.text().await.unwrap_or_default()
    );
    id_from(&resp)
}

/// Runs a bill run for `date` to the end and returns it.
pub fn bill(app: &TestApp, t: &TestTenant, date: &str) -> billrun::BillRun {
    let mut c = app.conn();
    let id = in_tenant(&mut c, &t.schema(), |c| {
        billrun::create(c, day(date), "manual", None)
    })
    .unwrap();
    billrun::run(&mut c, &t.schema(), &links(app, t), id).unwrap()
}

pub fn invoice_totals(app: &TestApp, t: &TestTenant, sub: i64) -> Vec<(NaiveDate, Decimal)> {
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        let mut v: Vec<(NaiveDate, Decimal)> = invoices::for_subscription(c, sub)?
            .into_iter()
            .filter(|i| i.source == "bill_run")
            .map(|i| (i.period_start.unwrap(), i.total))
            .collect();
        v.sort();
        Ok(v)
    })
    .unwrap()
}

#[tokio::test]
async fn a_bill_run_creates_each_due_period_once_with_proration_tax_and_catch_up() {
    // Arrange: 20% standard tax; a 200/month seat price and a usage price.
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "bill").await;
    exec(
        &app,
        &t,
        "INSERT INTO settings (key, value) VALUES ('tax.standard_rate', '\"20\"')",
    );
    let (_, seats) = product_with_price(
        &app,
        &owner,
        &t,
        "SEAT",
        &[("model", "per_unit"), ("unit_amount", "200")],
    )
    .await;
    let (_, api) = product_with_price(
        &app,
        &owner,
        &t,
        "API",
        &[
            ("model", "usage"),
            ("unit_amount", "2.50"),
            ("included", "4"),
        ],
    )
    .await;
    let aid = put_account(&app, &t, "Billing Test GmbH", None);
    // Starts mid-month (15 of 30 days in April), anchored on the 1st, two seats.
    let sub = subscribe(
        &app,
        &owner,
        &t,
        aid,
        &[
            ("start_date", "2026-04-16"),
            ("anchor_day", "1"),
            ("item0_price", &seats.to_string()),
            ("item0_quantity", "2"),
            ("item1_price", &api.to_string()),
        ],
    )
    .await;
    exec(&app, &t, &format!("INSERT INTO usage_records (subscription_id, product_id, usage_date, quantity, external_id, source) SELECT {sub}, product_id, '2026-04-20', 10, 'u-1', 'api' FROM prices WHERE id = {api}"));

    // Act: the system was down until 2 June: one run catches up April, May and June.
    let run = bill(&app, &t, "2026-06-02");

    // Assert: April prorated 15/30 of 400 = 200 + 20% tax; May 400 + usage of April (6 × 2.50) + tax; June 400 + tax.
    assert_eq!((run.created, run.failed), (3, 0), "{run:?}");
    assert_eq!(
        invoice_totals(&app, &t, sub),
        vec![
            (day("2026-04-16"), d("240.00")),
            (day("2026-05-01"), d("498.00")),
            (day("2026-06-01"), d("480.00")),
        ]
    );
    // Every line traces back to its item, price version and GL account.
    let untraced = one(&app, &t, "SELECT count(*) AS id FROM invoice_lines WHERE subscription_item_id IS NULL OR price_version_id IS NULL OR gl_account IS NULL");
    assert_eq!(untraced, 0);

    // Act again: the same day and a later day before July bill nothing new.
    let again = bill(&app, &t, "2026-06-02");
    let later = bill(&app, &t, "2026-06-30");
    assert_eq!((again.created, later.created), (0, 0));
    assert_eq!(count(&app, &t, "invoices"), 3);
    // The page shows the run's summary.
    let page = app
        .html(&owner, &format!("/t/{}/billing/runs/{}", t.slug, run.id))
        .await;
    assert!(page.contains("id=\"run-created\">3<"), "{page}");
}

#[tokio::test]
async fn a_crash_mid_run_then_a_rerun_leaves_no_duplicates_and_no_number_gaps() {
    // Arrange: auto-finalize, three monthly subscriptions.
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "crash").await;
    exec(
        &app,
        &t,
        "INSERT INTO settings (key, value) VALUES ('billing.auto_finalize', 'true')",
    );
    let (_, price) = product_with_price(
        &app,
        &owner,
        &t,
        "PLAN",
        &[("model", "flat"), ("amount", "100")],
    )
    .await;
    let mut subs = Vec::new();
    for n in 0..3 {
        let aid = put_account(&app, &t, &format!("Crash Customer {n}"), None);
        subs.push(
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
            .await,
        );
    }
    // Act: a worker bills and finalizes the first subscription's batch, then dies before
    // committing the second (the transaction rolls back, as a killed process's would).
    let mut c = app.conn();
    let l = links(&app, &t);
    let run_id = in_tenant(&mut c, &t.schema(), |c| {
        billrun::create(c, day("2026-02-10"), "manual", None)
    })
    .unwrap();
    in_tenant(&mut c, &t.schema(), |c| {
        let o = billrun::bill_batch(c, Some(run_id), 0, day("2026-02-10"), Some(subs[0]))?;
        finalize::finalize(c, &Actor::system(), &l, &o.created, day("2026-02-10"))?;
        Ok(())
    })
    .unwrap();
    let crashed: Result<(), arbor::error::AppError> = in_tenant(&mut c, &t.schema(), |c| {
        let o = billrun::bill_batch(c, Some(run_id), subs[0], day("2026-02-10"), None)?;
        finalize::finalize(c, &Actor::system(), &l, &o.created, day("2026-02-10"))?;
        Err(arbor::error::AppError::Internal(anyhow::anyhow!("killed")))
    });
    assert!(crashed.is_err());
    // The requeued job runs the same bill run to the end.
    let run = billrun::run(&mut c, &t.schema(), &l, run_id).unwrap();

    // Assert: two periods (Jan, Feb) for each of three subscriptions, numbered 1..6 without gaps.
    assert_eq!(run.status, "done");
    for s in &subs {
        assert_eq!(invoice_totals(&app, &t, *s).len(), 2, "subscription {s}");
    }
    let numbers: Vec<String> = in_tenant(&mut c, &t.schema(), |c| {
        use arbor::db::schema::tenant::invoices::dsl::*;
        Ok(invoices
            .filter(number.is_not_null())
            .select(number.assume_not_null())
            .order(number)
            .load::<String>(c)?)
    })
    .unwrap();
    assert_eq!(
        numbers,
        (1..=6).map(|n| format!("INV-{n:06}")).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn concurrent_finalization_gives_gapless_unique_numbers() {
    // Arrange: 24 one-line drafts.
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "gapless").await;
    let aid = put_account(&app, &t, "Numbering Ltd", None);
    let ids: Vec<i64> = (0..24)
        .map(|_| {
            let id = one(&app, &t, &format!("INSERT INTO invoices (account_id, bill_to_account_id, source, currency, issue_date, terms_kind, terms_days, subtotal, total, amount_due) VALUES ({aid}, {aid}, 'manual', 'EUR', '2026-03-01', 'net', 30, 10, 10, 10) RETURNING id"));
            exec(&app, &t, &format!("INSERT INTO invoice_lines (invoice_id, position, kind, description, quantity, unit_price, amount, net) VALUES ({id}, 1, 'one_off', 'Thing', 1, 10, 10, 10)"));
            id
        })
        .collect();
    // Act: four threads finalize them one by one, interleaved.
    let handles: Vec<_> = (0..4)
        .map(|k| {
            let mine: Vec<i64> = ids.iter().copied().skip(k).step_by(4).collect();
            let (pool, schema, l) = (app.pool.clone(), t.schema(), links(&app, &t));
            std::thread::spawn(move || {
                for id in mine {
                    let mut c = pool.get().unwrap();
                    in_tenant(&mut c, &schema, |c| {
                        finalize::finalize(c, &Actor::system(), &l, &[id], day("2026-03-02"))
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Assert
    let mut numbers: Vec<String> = in_tenant(&mut app.conn(), &t.schema(), |c| {
        use arbor::db::schema::tenant::invoices::dsl::*;
        Ok(invoices
            .select(number.assume_not_null())
            .load::<String>(c)?)
    })
    .unwrap();
    numbers.sort();
    assert_eq!(
        numbers,
        (1..=24).map(|n| format!("INV-{n:06}")).collect::<Vec<_>>()
    );
    // Finalized invoices are immutable in the database itself.
    let err = in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(sql_query(format!(
            "UPDATE invoices SET total = 1 WHERE id = {}",
            ids[0]
        ))
        .execute(c)?)
    });
    assert!(err.is_err(), "a finalized total cannot be changed");
    let line = in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(sql_query(format!("INSERT INTO invoice_lines (invoice_id, position, kind, description, quantity, unit_price, amount, net) VALUES ({}, 2, 'one_off', 'Sneaked in', 1, 1, 1, 1)", ids[0])).execute(c)?)
    });
    assert!(line.is_err(), "a finalized invoice takes no new line");
}

#[tokio::test]
async fn usage_csv_is_recorded_whole_or_not_at_all_and_a_reupload_adds_nothing() {
    // Arrange: a subscription with a usage item.
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "usage").await;
    let (_, api) = product_with_price(
        &app,
        &owner,
        &t,
        "API",
        &[("model", "usage"), ("unit_amount", "1")],
    )
    .await;
    let aid = put_account(&app, &t, "Usage Customer", None);
    let sub = subscribe(
        &app,
        &owner,
        &t,
        aid,
        &[
            ("start_date", "2026-01-01"),
            ("item0_price", &api.to_string()),
        ],
    )
    .await;
    let number = in_tenant(&mut app.conn(), &t.schema(), |c| {
        arbor::subscriptions::repo::get(c, sub)
    })
    .unwrap()
    .number;
    let upload = |csv: String| {
        let (app, owner, t) = (&app, &owner, &t);
        async move {
            let token = app.csrf(owner).await;
            let part = reqwest::multipart::Part::bytes(csv.into_bytes())
                .file_name("usage.csv")
                .mime_str("text/csv")
                .unwrap();
            owner
                .post(app.url(&format!("/t/{}/usage/import?csrf_token={token}", t.slug)))
                .multipart(reqwest::multipart::Form::new().part("file", part))
                .send()
                .await
                .unwrap()
        }
    };
    // Act: one good row and three bad ones.
    let bad = format!("subscription,sku,date,quantity,external_id\n{number},API,2026-01-05,10,e1\nSUB-NOPE,API,2026-01-05,1,e2\n{number},API,05/01/2026,1,e3\n{number},API,2026-01-06,-1,e4\n");
    let resp = upload(bad).await;
    // Assert: each bad row is named; nothing is recorded.
    assert_eq!(resp.status(), 422);
    let page = resp.text().await.unwrap();
    for needle in ["SUB-NOPE", "Use a date like", "zero or more"] {
        assert!(page.contains(needle), "{needle}: {page}");
    }
    assert_eq!(count(&app, &t, "usage_records"), 0);
    // A clean file is recorded; uploading it again adds nothing.
    let good = format!("subscription,sku,date,quantity,external_id\n{number},API,2026-01-05,10,e1\n{number},API,2026-01-20,5,e2\n");
    assert_eq!(upload(good.clone()).await.status(), 200);
    assert_eq!(upload(good).await.status(), 200);
    assert_eq!(count(&app, &t, "usage_records"), 2);
    // The January usage is billed in February (in advance, usage follows): 15 × 1.00.
    bill(&app, &t, "2026-02-01");
    // January has nothing to charge yet, so it gets no invoice.
    assert_eq!(
        invoice_totals(&app, &t, sub),
        vec![(day("2026-02-01"), d("15.00"))]
    );
}

#[tokio::test]
async fn the_subscription_editor_previews_the_first_invoice_as_the_form_changes() {
    // Arrange
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "preview").await;
    exec(
        &app,
        &t,
        "INSERT INTO settings (key, value) VALUES ('tax.standard_rate', '\"10\"')",
    );
    let (_, seats) = product_with_price(
        &app,
        &owner,
        &t,
        "SEAT",
        &[("model", "per_unit"), ("unit_amount", "12.50")],
    )
    .await;
    let aid = put_account(&app, &t, "Preview GmbH", None);
    let path = format!("/t/{}/accounts/{aid}/subscriptions/preview", t.slug);
    // Act: what htmx posts on change — 8 seats from the 17th of a 30-day month, anchored on the 1st.
    let fields = [
        ("start_date", "2026-06-17"),
        ("anchor_day", "1"),
        ("cycle", "1"),
        ("timing", "advance"),
        ("term_months", "12"),
        ("item0_price", &seats.to_string()),
        ("item0_quantity", "8"),
    ];
    let resp = app.post_form(&owner, &path, &fields).await;
    // Assert: 100.00 × 14/30 = 46.67, tax 4.67, total 51.34; nothing is saved.
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("46.67") && html.contains("51.34"), "{html}");
    assert!(!html.contains("<html"), "a fragment, not a page");
    assert_eq!(count(&app, &t, "subscriptions"), 0);
    // An invalid form previews its first problem instead.
    let resp = app
        .post_form(
            &owner,
            &path,
            &[
                ("start_date", "soon"),
                ("cycle", "1"),
                ("timing", "advance"),
                ("term_months", "12"),
            ],
        )
        .await;
    assert!(resp.text().await.unwrap().contains("is not a date"));
}
