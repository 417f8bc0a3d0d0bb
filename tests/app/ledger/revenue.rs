//! Revenue recognition (#9 part 2): the schedule of a 12-month annual invoice starting
//! mid-month, recognized once however often the job runs, the waterfall CSV equal to the
//! screen, and a closed month redirecting what posts into it to the next open month.

use arbor::{db::scope::in_tenant, ledger::revrec};
use diesel::{prelude::*, sql_query, sql_types::Date, sql_types::Numeric, sql_types::Text};
use rust_decimal::Decimal;

use super::{assert_reconciled, entry, expect};
use crate::{
    accounts::{id_from, put_account},
    billing::{bill, d, day, exec, one, product_with_price, subscribe},
    helpers::{new_client, TestApp, TestTenant},
};

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Date)]
    month: chrono::NaiveDate,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
}

fn schedule(app: &TestApp, t: &TestTenant, invoice: i64) -> Vec<(String, Decimal)> {
    let rows: Vec<Row> = in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(sql_query(format!(
            "SELECT month, amount FROM revenue_schedules WHERE invoice_id = {invoice} ORDER BY month"
        ))
        .load(c)?)
    })
    .unwrap();
    rows.into_iter()
        .map(|r| (r.month.format("%Y-%m").to_string(), r.amount.normalize()))
        .collect()
}

/// The 1,200.00 annual ratable invoice billed from 15 March 2026 (365 days of service).
async fn annual_invoice(prefix: &str, name: &str) -> (TestApp, reqwest::Client, TestTenant, i64) {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, prefix).await;
    exec(
        &app,
        &t,
        "INSERT INTO settings (key, value) VALUES ('billing.auto_finalize', 'true')",
    );
    let (_, price) = product_with_price(
        &app,
        &owner,
        &t,
        "ANNUAL",
        &[("model", "flat"), ("amount", "1200")],
    )
    .await;
    exec(
        &app,
        &t,
        &format!("UPDATE price_versions SET interval_months = 12 WHERE price_id = {price}"),
    );
    let aid = put_account(&app, &t, name, None);
    let sub = [
        ("start_date", "2026-03-15"),
        ("anchor_day", "15"),
        ("cycle", "12"),
        ("item0_price", &price.to_string()),
    ];
    subscribe(&app, &owner, &t, aid, &sub).await;
    bill(&app, &t, "2026-03-15");
    let inv = one(
        &app,
        &t,
        "SELECT id FROM invoices WHERE period_start = '2026-03-15'",
    );
    (app, owner, t, inv)
}

/// Net balance of a GL account in cents.
fn cents(app: &TestApp, t: &TestTenant, code: &str) -> i64 {
    one(
        app,
        t,
        &format!("SELECT (COALESCE(sum(amount), 0) * 100)::bigint AS id FROM journal_lines WHERE account_code = '{code}'"),
    )
}

#[tokio::test]
async fn revenue_recognition_for_a_12_month_annual_invoice_starting_mid_month() {
    // Arrange: 1,200.00 a year, ratable, billed yearly from 15 March 2026.
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "revrec").await;
    exec(
        &app,
        &t,
        "INSERT INTO settings (key, value) VALUES ('billing.auto_finalize', 'true')",
    );
    let (_, price) = product_with_price(
        &app,
        &owner,
        &t,
        "ANNUAL",
        &[("model", "flat"), ("amount", "1200")],
    )
    .await;
    exec(
        &app,
        &t,
        &format!("UPDATE price_versions SET interval_months = 12 WHERE price_id = {price}"),
    );
    let aid = put_account(&app, &t, "Annual Customer", None);
    let sub = [
        ("start_date", "2026-03-15"),
        ("anchor_day", "15"),
        ("cycle", "12"),
        ("item0_price", &price.to_string()),
    ];
    subscribe(&app, &owner, &t, aid, &sub).await;

    // Act: the bill run finalizes the invoice, which posts and schedules it.
    bill(&app, &t, "2026-03-15");
    let inv = one(
        &app,
        &t,
        "SELECT id FROM invoices WHERE period_start = '2026-03-15'",
    );

    // Assert: 365 days; month = 1,200 × days / 365, the remainder in March 2027.
    let months = [
        ("2026-03", "55.89"),
        ("2026-04", "98.63"),
        ("2026-05", "101.92"),
        ("2026-06", "98.63"),
        ("2026-07", "101.92"),
        ("2026-08", "101.92"),
        ("2026-09", "98.63"),
        ("2026-10", "101.92"),
        ("2026-11", "98.63"),
        ("2026-12", "101.92"),
        ("2027-01", "101.92"),
        ("2027-02", "92.05"),
        ("2027-03", "46.02"),
    ];
    let want: Vec<(String, Decimal)> = months
        .iter()
        .map(|(m, a)| ((*m).to_owned(), d(a).normalize()))
        .collect();
    assert_eq!(schedule(&app, &t, inv), want);

    // Recognize through May from the page: one entry per month, Dr deferred / Cr revenue.
    let recognize = format!("/t/{}/ledger/revenue/recognize", t.slug);
    let resp = app
        .post_form(&owner, &recognize, &[("through", "2026-05")])
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        entry(&app, &t, "revenue_recognition", 202603),
        expect(&[("2200", "55.89"), ("4000", "-55.89")])
    );
    assert_eq!(
        entry(&app, &t, "revenue_recognition", 202605),
        expect(&[("2200", "101.92"), ("4000", "-101.92")])
    );
    let dated = one(&app, &t, "SELECT count(*) AS id FROM journal_entries WHERE source_type = 'revenue_recognition' AND source_id = 202604 AND entry_date = '2026-04-30'");
    assert_eq!(dated, 1, "a month's entry is dated its last day");

    // Idempotent: again from the page and from the job's function, nothing more posts.
    let resp = app
        .post_form(&owner, &recognize, &[("through", "2026-05")])
        .await;
    assert_eq!(resp.status(), 303);
    let again = in_tenant(&mut app.conn(), &t.schema(), |c| {
        revrec::recognize(c, day("2026-05-31"))
    })
    .unwrap();
    assert_eq!(again, 0);
    let posted = one(
        &app,
        &t,
        "SELECT count(*) AS id FROM journal_entries WHERE source_type = 'revenue_recognition'",
    );
    assert_eq!(posted, 3);
    let deferred = one(
        &app,
        &t,
        "SELECT (sum(amount) * 100)::bigint AS id FROM journal_lines WHERE account_code = '2200'",
    );
    assert_eq!(
        deferred,
        -(120_000 - 25_644),
        "deferred revenue holds what is left"
    );
    assert_reconciled(&app, &t);

    // The schedule page shows recognized and unrecognized per line.
    let page = app
        .get(&owner, &format!("/t/{}/ledger/revenue", t.slug))
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("data-recognized=\"256.44\""), "{html}");
    assert!(html.contains("data-unrecognized=\"943.56\""), "{html}");

    // Waterfall: the CSV holds exactly the screen's rows.
    let q = "from=2026-03&to=2026-03";
    let screen = app
        .get(
            &owner,
            &format!("/t/{}/ledger/revenue/waterfall?{q}", t.slug),
        )
        .await;
    assert_eq!(screen.status(), 200);
    let html = screen.text().await.unwrap();
    let csv = app
        .get(
            &owner,
            &format!("/t/{}/ledger/revenue/waterfall.csv?{q}", t.slug),
        )
        .await;
    assert_eq!(csv.status(), 200);
    let text = csv.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let head: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(head.len(), 2 + 13 + 1, "{text}");
    for h in &head[2..head.len() - 1] {
        assert!(html.contains(&format!("<th class=\"num\">{h}</th>")), "{h}");
    }
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    for r in &rows {
        let mut tr = format!(
            "<tr data-row=\"{} {}\"><td>{}</td><td>{}</td>",
            &r[0], &r[1], &r[0], &r[1]
        );
        for cell in r.iter().skip(2) {
            tr += &format!("<td class=\"num\">{cell}</td>");
        }
        tr += "</tr>";
        assert!(html.contains(&tr), "screen row {tr} in {html}");
    }
    assert_eq!(&rows[0][head.len() - 1], "1200.00");
}

#[tokio::test]
async fn a_closed_month_sends_what_posts_into_it_to_the_next_open_month() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "periods").await;
    let aid = put_account(&app, &t, "Period Customer", None);
    let pay = |on: &'static str| {
        let (app, owner, slug) = (&app, &owner, t.slug.clone());
        async move {
            let fields = [
                ("method", "wire"),
                ("amount", "50"),
                ("received_on", on),
                ("allocation", "oldest"),
            ];
            let resp = app
                .post_form(
                    owner,
                    &format!("/t/{slug}/accounts/{aid}/payments"),
                    &fields,
                )
                .await;
            assert_eq!(resp.status(), 303);
            id_from(&resp)
        }
    };
    let date_of = |id: i64| {
        in_tenant(&mut app.conn(), &t.schema(), |c| {
            #[derive(QueryableByName)]
            struct E {
                #[diesel(sql_type = Date)]
                entry_date: chrono::NaiveDate,
                #[diesel(sql_type = Text)]
                memo: String,
            }
            let e: E = sql_query(format!(
                "SELECT entry_date, memo FROM journal_entries WHERE source_type = 'payment' AND source_id = {id}"
            ))
            .get_result(c)?;
            Ok((e.entry_date.to_string(), e.memo))
        })
        .unwrap()
    };

    // A January payment before the close posts in January.
    let early = pay("2026-01-10").await;
    assert_eq!(date_of(early).0, "2026-01-10");

    // Close January (and February, so the next open month is March).
    let periods = format!("/t/{}/ledger/periods", t.slug);
    for m in ["2026-01", "2026-02"] {
        let resp = app
            .post_form(&owner, &periods, &[("month", m), ("action", "close")])
            .await;
        assert_eq!(resp.status(), 303);
    }
    let bad = app
        .post_form(
            &owner,
            &periods,
            &[("month", "January"), ("action", "close")],
        )
        .await;
    assert_eq!(bad.status(), 422);

    // A correction dated in January now posts on the first day of March, noting its date.
    let late = pay("2026-01-20").await;
    let (date, memo) = date_of(late);
    assert_eq!(date, "2026-03-01");
    assert!(memo.contains("dated 2026-01-20, period closed"), "{memo}");
    assert_eq!(
        entry(&app, &t, "payment", late),
        expect(&[("1000", "50"), ("2100", "-50")])
    );

    // Reopening February lets a January-dated entry post there instead.
    let resp = app
        .post_form(
            &owner,
            &periods,
            &[("month", "2026-02"), ("action", "reopen")],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let reopened = pay("2026-01-25").await;
    assert_eq!(date_of(reopened).0, "2026-02-01");

    // The page lists the periods; both actions are audited.
    let page = app.get(&owner, &periods).await;
    let html = page.text().await.unwrap();
    assert!(
        html.contains("data-month=\"2026-01\" data-closed=\"true\""),
        "{html}"
    );
    assert!(
        html.contains("data-month=\"2026-02\" data-closed=\"false\""),
        "{html}"
    );
    let audited = one(&app, &t, "SELECT count(*) AS id FROM audit_log WHERE action IN ('ledger_period.closed', 'ledger_period.reopened')");
    assert_eq!(audited, 3);
}

#[tokio::test]
async fn voiding_a_partly_recognized_invoice_unwinds_its_schedule_and_deferred_revenue() {
    // Arrange: the 1,200.00 annual ratable invoice from 15 March, recognized through May.
    let (app, owner, t, inv) = annual_invoice("revvoid", "Voided Annual").await;
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        arbor::ledger::revrec::recognize(c, day("2026-05-01"))
    })
    .unwrap();
    assert_eq!(cents(&app, &t, "4000"), -25644, "three months recognized");

    // Act: void it, then let recognition run through the current month.
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/invoices/{inv}/void", t.slug),
            &[("reason", "Contract rescinded")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let this_month = chrono::Utc::now().date_naive();
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        arbor::ledger::revrec::recognize(c, this_month)
    })
    .unwrap();

    // Assert: nothing is left to recognize, revenue and deferred revenue are back to zero,
    // and AR still equals the open balances.
    let left = one(&app, &t, &format!("SELECT (COALESCE(sum(amount), 0) * 100)::bigint AS id FROM revenue_schedules WHERE invoice_id = {inv}"));
    assert_eq!(left, 0, "the schedule nets to zero");
    assert_eq!(one(&app, &t, &format!("SELECT count(*) AS id FROM revenue_schedules WHERE invoice_id = {inv} AND recognized_entry_id IS NULL")), 0);
    assert_eq!(cents(&app, &t, "4000"), 0, "recognized revenue reversed");
    assert_eq!(cents(&app, &t, "2200"), 0, "deferred revenue empty");
    assert_reconciled(&app, &t);
}

#[tokio::test]
async fn a_full_credit_note_on_a_ratable_invoice_reverses_its_revenue_by_the_end_of_the_period() {
    let (app, owner, t, inv) = annual_invoice("revcn", "Credited Annual").await;
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        arbor::ledger::revrec::recognize(c, day("2026-05-01"))
    })
    .unwrap();

    // Act: credit the whole invoice, then recognize to the end of its service period.
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/invoices/{inv}/credit", t.slug),
            &[("scope", "full"), ("reason", "Service never delivered")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let note = one(
        &app,
        &t,
        &format!(
            "SELECT id FROM invoices WHERE kind = 'credit_note' AND related_invoice_id = {inv}"
        ),
    );
    let negative = one(&app, &t, &format!("SELECT (COALESCE(sum(amount), 0) * 100)::bigint AS id FROM revenue_schedules WHERE invoice_id = {note}"));
    assert_eq!(
        negative, -120000,
        "the credit note's schedule mirrors the line"
    );
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        arbor::ledger::revrec::recognize(c, day("2027-03-01"))
    })
    .unwrap();

    // Assert: revenue nets to zero, deferred revenue is empty, AR reconciles.
    assert_eq!(cents(&app, &t, "4000"), 0);
    assert_eq!(cents(&app, &t, "2200"), 0);
    assert_reconciled(&app, &t);
}
