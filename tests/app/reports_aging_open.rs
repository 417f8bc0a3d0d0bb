//! The open receivables the aging summary reads (`ar_open`, kept by triggers on invoices)
//! equal a from-scratch computation from the invoices after every kind of change to a
//! balance, status, due date or payer, made through the real code paths: bill runs
//! (set-based inserts and finalization), payments applied oldest first, credit notes,
//! unapplying, write-off, a reversal, void and an account merge. After each step the summary
//! (which reads `ar_open` and `ar_settlements`) also agrees with the invoice-level detail
//! (which reads `invoices`, `payment_applications` and `payments`).

use std::collections::BTreeMap;

use arbor::{
    db::scope::in_tenant,
    reports::aging_repo::{self, Filters, Group, Owner},
};
use rust_decimal::Decimal;

use crate::{
    accounts::{account, id_from, put_account},
    billing::{bill, day, exec, one, product_with_price, subscribe},
    helpers::{new_client, TestApp, TestTenant},
};

/// Rows of `ar_open` missing from, or extra to, the open receivables computed from scratch.
fn drift(app: &TestApp, t: &TestTenant) -> i64 {
    one(
        app,
        t,
        "WITH want AS (
             SELECT id AS invoice_id, bill_to_account_id AS account_id, currency, issue_date,
                    COALESCE(due_date, issue_date) AS due, (amount_due * 10000)::bigint AS m,
                    status = 'uncollectible' AS uncollectible
               FROM invoices
              WHERE kind = 'invoice' AND status IN ('open', 'uncollectible') AND amount_due > 0),
         have AS (
             SELECT invoice_id, account_id, currency, issue_date, due, m, uncollectible
               FROM ar_open)
         SELECT count(*) AS id FROM (
             (SELECT * FROM want EXCEPT ALL SELECT * FROM have)
             UNION ALL
             (SELECT * FROM have EXCEPT ALL SELECT * FROM want)) x",
    )
}

/// Rows of `ar_settlements` (cash applications with their effective day and their invoice's
/// aging columns, kept by triggers on applications and invoices) missing from, or extra to,
/// the same computed from the applications, their payments and invoices.
fn settlement_drift(app: &TestApp, t: &TestTenant) -> i64 {
    one(
        app,
        t,
        "WITH want AS (
             SELECT pa.id AS application_id, pa.invoice_id,
                    CASE WHEN p.created_at = pa.created_at THEN p.received_on
                         ELSE (pa.created_at AT TIME ZONE 'UTC')::date END AS eff,
                    (pa.amount * 10000)::bigint AS m, i.bill_to_account_id AS account_id,
                    i.currency, i.issue_date, COALESCE(i.due_date, i.issue_date) AS due,
                    i.status = 'uncollectible' AS uncollectible
               FROM payment_applications pa
               JOIN payments p ON p.id = pa.payment_id
               JOIN invoices i ON i.id = pa.invoice_id
              WHERE i.kind = 'invoice' AND i.status NOT IN ('draft', 'void')),
         have AS (
             SELECT application_id, invoice_id, eff, m, account_id, currency, issue_date, due,
                    uncollectible
               FROM ar_settlements)
         SELECT count(*) AS id FROM (
             (SELECT * FROM want EXCEPT ALL SELECT * FROM have)
             UNION ALL
             (SELECT * FROM have EXCEPT ALL SELECT * FROM want)) x",
    )
}

fn open_rows(app: &TestApp, t: &TestTenant) -> i64 {
    one(app, t, "SELECT count(*) AS id FROM ar_open")
}

/// Per currency and as of each date: (total, invoices) from the summary grouped by currency
/// and by account (its total rows), and from the detail's invoices.
fn assert_summary_matches_detail(app: &TestApp, t: &TestTenant, step: &str) {
    for as_of in [
        "2026-01-15",
        "2026-02-07",
        "2026-02-20",
        "2026-03-10",
        "2026-12-31",
    ] {
        let f = Filters {
            as_of: day(as_of),
            currency: None,
            owner: Owner::Any,
            account: None,
            from: None,
            to: None,
            bucket: None,
            visible_owner: None,
        };
        let (by_currency, by_account, detail) = in_tenant(&mut app.conn(), &t.schema(), |c| {
            Ok((
                aging_repo::summary(c, &f, Group::Currency)?,
                aging_repo::summary(c, &f, Group::Account)?,
                aging_repo::detail(c, &f, 10_000)?,
            ))
        })
        .unwrap();
        let mut want: BTreeMap<String, (Decimal, i64)> = BTreeMap::new();
        for r in &detail {
            let e = want.entry(r.currency.clone()).or_default();
            e.0 += r.balance;
            e.1 += 1;
        }
        let totals = |rows: &[aging_repo::SummaryRow], only_totals: bool| {
            rows.iter()
                .filter(|r| !only_totals || r.is_total)
                .map(|r| (r.currency.clone(), (r.total, r.n)))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            totals(&by_currency, false),
            want,
            "{step}, by currency as of {as_of}"
        );
        assert_eq!(
            totals(&by_account, true),
            want,
            "{step}, by account as of {as_of}"
        );
    }
}

fn check(app: &TestApp, t: &TestTenant, step: &str) {
    assert_eq!(drift(app, t), 0, "ar_open drifted after: {step}");
    assert_eq!(
        settlement_drift(app, t),
        0,
        "ar_settlements drifted after: {step}"
    );
    assert_summary_matches_detail(app, t, step);
}

#[tokio::test]
async fn open_receivables_stay_equal_to_the_invoices_through_every_kind_of_change() {
    // Arrange: 20% tax, a 100.00 monthly plan, invoices finalized by the bill run, two
    // customers (the second will be merged into the first).
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "aropen").await;
    exec(&app, &t, "INSERT INTO settings (key, value) VALUES ('billing.auto_finalize', 'true'), ('tax.standard_rate', '\"20\"')");
    let (_, price) = product_with_price(
        &app,
        &owner,
        &t,
        "PLAN",
        &[("model", "flat"), ("amount", "100")],
    )
    .await;
    let price = price.to_string();
    let aid = put_account(&app, &t, "Open AR Customer", None);
    let dup = put_account(&app, &t, "Open AR Customer Ltd", None);
    for a in [aid, dup] {
        let sub = [
            ("start_date", "2026-01-01"),
            ("item0_price", price.as_str()),
        ];
        subscribe(&app, &owner, &t, a, &sub).await;
    }
    check(&app, &t, "nothing billed");

    // Bill runs: set-based inserts of drafts, then finalization.
    bill(&app, &t, "2026-01-01");
    bill(&app, &t, "2026-02-01");
    assert_eq!(open_rows(&app, &t), 4, "two months for two customers");
    check(&app, &t, "two bill runs");
    let inv = |period: &str, a: i64| {
        one(
            &app,
            &t,
            &format!(
                "SELECT id FROM invoices WHERE period_start = '{period}' AND account_id = {a}"
            ),
        )
    };
    let (jan, feb) = (inv("2026-01-01", aid), inv("2026-02-01", aid));

    // Cash applied oldest first: January paid, February part paid.
    let record = format!("/t/{}/accounts/{aid}/payments", t.slug);
    let fields = [
        ("method", "wire"),
        ("amount", "150"),
        ("received_on", "2026-02-05"),
        ("allocation", "oldest"),
    ];
    let resp = app.post_form(&owner, &record, &fields).await;
    assert_eq!(resp.status(), 303);
    let p1 = id_from(&resp);
    assert_eq!(open_rows(&app, &t), 3, "January paid");
    check(&app, &t, "payment applied oldest first");

    // A credit note on February.
    let line = one(
        &app,
        &t,
        &format!("SELECT id FROM invoice_lines WHERE invoice_id = {feb}"),
    );
    let credit = [
        ("scope", "lines"),
        (&format!("line_{line}") as &str, "25"),
        ("reason", "Outage"),
    ];
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/invoices/{feb}/credit", t.slug),
            &credit,
        )
        .await;
    assert_eq!(resp.status(), 303);
    check(&app, &t, "credit note");

    // Unapplying February's cash.
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/payments/{p1}/unapply/{feb}", t.slug),
            &[],
        )
        .await;
    assert_eq!(resp.status(), 303);
    check(&app, &t, "unapplied");

    // Write-off: February stays in ar_open as uncollectible (the report drops it from AR on
    // its write-off day).
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/invoices/{feb}/write-off", t.slug),
            &[("reason", "Customer insolvent")],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let uncollectible = one(
        &app,
        &t,
        &format!("SELECT count(*) AS id FROM ar_open WHERE invoice_id = {feb} AND uncollectible"),
    );
    assert_eq!(uncollectible, 1);
    check(&app, &t, "write-off");

    // A bounced payment: January reopens.
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/payments/{p1}/reverse", t.slug),
            &[("reason", "Returned by the bank")],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let reopened = one(
        &app,
        &t,
        &format!("SELECT count(*) AS id FROM ar_open WHERE invoice_id = {jan}"),
    );
    assert_eq!(reopened, 1, "January is open again");
    check(&app, &t, "payment reversed");

    // March billed, then voided.
    bill(&app, &t, "2026-03-01");
    let mar = inv("2026-03-01", aid);
    check(&app, &t, "third bill run");
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/invoices/{mar}/void", t.slug),
            &[("reason", "Sent to the wrong customer")],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let voided = one(
        &app,
        &t,
        &format!("SELECT count(*) AS id FROM ar_open WHERE invoice_id = {mar}"),
    );
    assert_eq!(voided, 0, "a void invoice is not receivable");
    check(&app, &t, "void");

    // The duplicate pays part of its January invoice, so the merge has a settlement to move.
    let fields = [
        ("method", "check"),
        ("amount", "30"),
        ("received_on", "2026-02-10"),
        ("allocation", "oldest"),
    ];
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/accounts/{dup}/payments", t.slug),
            &fields,
        )
        .await;
    assert_eq!(resp.status(), 303);
    check(&app, &t, "the duplicate's payment");

    // Merging the duplicate customer moves its invoices' payer.
    let dup_number = account(&app, &t, dup).account_number;
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/accounts/{aid}/merge", t.slug),
            &[("other", &dup_number), ("reason", "same company")],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let moved = one(
        &app,
        &t,
        &format!("SELECT count(*) AS id FROM ar_open WHERE account_id = {dup}"),
    );
    assert_eq!(
        moved, 0,
        "the duplicate's open invoices are now the survivor's"
    );
    let moved = one(
        &app,
        &t,
        &format!("SELECT count(*) AS id FROM ar_settlements WHERE account_id = {dup}"),
    );
    assert_eq!(moved, 0, "the duplicate's settlements follow its invoices");
    check(&app, &t, "account merge");

    // A statement touching every invoice at once (the triggers work per statement, over its
    // transition tables).
    exec(&app, &t, "UPDATE invoices SET version = version + 1");
    check(&app, &t, "every invoice updated in one statement");
    assert!(open_rows(&app, &t) > 0);
}
