//! Payments and their application: partial, over, multi-invoice, refund, reversal. After
//! every step each invoice's paid amount equals the sum of its applications.

use arbor::{db::scope::in_tenant, invoicing::repo as invoices};
use rust_decimal::Decimal;

use crate::{
    accounts::{count, id_from, put_account},
    billing::{bill, d, exec, one, product_with_price, subscribe},
    helpers::{new_client, TestApp, TestTenant},
};

fn due(app: &TestApp, t: &TestTenant, id: i64) -> (Decimal, String) {
    let i = in_tenant(&mut app.conn(), &t.schema(), |c| invoices::get(c, id)).unwrap();
    (i.amount_due, i.status)
}

fn assert_balances_match_applications(app: &TestApp, t: &TestTenant) {
    let broken = one(app, t, "SELECT count(*) AS id FROM invoices i WHERE amount_paid <> COALESCE((SELECT sum(amount) FROM payment_applications a WHERE a.invoice_id = i.id), 0) \
         OR amount_due <> GREATEST(total - credit_applied - amount_credited - amount_paid, 0) \
         OR (status = 'paid') <> (amount_due = 0 AND status IN ('open', 'paid'))");
    assert_eq!(
        broken, 0,
        "every invoice's balance follows its applications"
    );
}

#[tokio::test]
async fn payments_apply_partially_across_invoices_and_refunds_and_reversals_keep_balances_exact() {
    // Arrange: three finalized monthly invoices of 100.00 (Jan, Feb, Mar).
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "pay").await;
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
    let aid = put_account(&app, &t, "Paying Customer", None);
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
    bill(&app, &t, "2026-03-01");
    let inv = |m: &str| {
        one(
            &app,
            &t,
            &format!("SELECT id FROM invoices WHERE period_start = '2026-{m}-01'"),
        )
    };
    let (jan, feb, mar) = (inv("01"), inv("02"), inv("03"));
    let record = format!("/t/{}/accounts/{aid}/payments", t.slug);

    // Act 1: 150.00 by wire, oldest first.
    let resp = app
        .post_form(
            &owner,
            &record,
            &[
                ("method", "wire"),
                ("amount", "150"),
                ("received_on", "2026-03-05"),
                ("reference", "WIRE-1"),
                ("allocation", "oldest"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let p1 = id_from(&resp);
    // Assert 1: January paid, February half paid, March untouched.
    assert_eq!(due(&app, &t, jan), (d("0"), "paid".into()));
    assert_eq!(due(&app, &t, feb), (d("50"), "open".into()));
    assert_eq!(due(&app, &t, mar), (d("100"), "open".into()));
    assert_balances_match_applications(&app, &t);

    // Act 2: 200.00 with chosen amounts: March in full, February's rest; 50.00 stays unapplied.
    let resp = app
        .post_form(
            &owner,
            &record,
            &[
                ("method", "check"),
                ("amount", "200"),
                ("allocation", "chosen"),
                (&format!("apply_{mar}"), "100"),
                (&format!("apply_{feb}"), "50"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let p2 = id_from(&resp);
    assert_eq!(due(&app, &t, feb).1, "paid");
    assert_eq!(due(&app, &t, mar).1, "paid");
    let page = app
        .html(&owner, &format!("/t/{}/payments/{p2}", t.slug))
        .await;
    assert!(page.contains("id=\"unapplied\">50.00<"), "{page}");
    assert_balances_match_applications(&app, &t);

    // Bad input changes nothing: a zero amount, an application above the balance.
    let before = count(&app, &t, "payments");
    let resp = app
        .post_form(&owner, &record, &[("method", "wire"), ("amount", "0")])
        .await;
    assert_eq!(resp.status(), 422);
    let resp = app
        .post_form(
            &owner,
            &record,
            &[
                ("method", "wire"),
                ("amount", "10"),
                ("allocation", "chosen"),
                (&format!("apply_{jan}"), "5"),
            ],
        )
        .await;
    assert_eq!(
        resp.status(),
        422,
        "January is paid: not open for applications"
    );
    assert_eq!(count(&app, &t, "payments"), before);

    // Act 3: refund 30.00 of the unapplied cash; more than what is left is refused.
    let refund = format!("/t/{}/payments/{p2}/refund", t.slug);
    assert_eq!(
        app.post_form(
            &owner,
            &refund,
            &[("refund_amount", "30"), ("refund_reference", "RF-1")]
        )
        .await
        .status(),
        303
    );
    assert_eq!(
        app.post_form(&owner, &refund, &[("refund_amount", "30")])
            .await
            .status(),
        422
    );
    assert!(app
        .html(&owner, &format!("/t/{}/payments/{p2}", t.slug))
        .await
        .contains("id=\"unapplied\">20.00<"));

    // Act 4: the first payment bounces: January and February reopen by what it paid.
    let reverse = format!("/t/{}/payments/{p1}/reverse", t.slug);
    assert_eq!(
        app.post_form(&owner, &reverse, &[("reason", "")])
            .await
            .status(),
        422,
        "a reason is required"
    );
    assert_eq!(
        app.post_form(&owner, &reverse, &[("reason", "Returned by the bank")])
            .await
            .status(),
        303
    );
    assert_eq!(due(&app, &t, jan), (d("100"), "open".into()));
    assert_eq!(due(&app, &t, feb), (d("50"), "open".into()));
    assert_balances_match_applications(&app, &t);
    // A reversed payment cannot be used again.
    assert_eq!(
        app.post_form(
            &owner,
            &format!("/t/{}/payments/{p1}/apply", t.slug),
            &[("allocation", "oldest")]
        )
        .await
        .status(),
        409
    );

    // Act 5: the remaining 20.00 goes to the oldest open invoice; unapplying restores it.
    assert_eq!(
        app.post_form(
            &owner,
            &format!("/t/{}/payments/{p2}/apply", t.slug),
            &[("allocation", "oldest")]
        )
        .await
        .status(),
        303
    );
    assert_eq!(due(&app, &t, jan).0, d("80"));
    assert_eq!(
        app.post_form(
            &owner,
            &format!("/t/{}/payments/{p2}/unapply/{jan}", t.slug),
            &[]
        )
        .await
        .status(),
        303
    );
    assert_eq!(due(&app, &t, jan).0, d("100"));
    assert_balances_match_applications(&app, &t);
    // Every step left an event for the connectors.
    let events = one(
        &app,
        &t,
        "SELECT count(*) AS id FROM events WHERE type LIKE 'payment.%'",
    );
    assert!(events >= 9, "{events} events");
}

#[tokio::test]
async fn remittance_lines_match_by_invoice_number_amount_and_payer_and_the_rest_wait_for_a_person()
{
    // Arrange: four accounts with open invoices (per-unit price of 1.00, so quantity = amount).
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "cash").await;
    exec(
        &app,
        &t,
        "INSERT INTO settings (key, value) VALUES ('billing.auto_finalize', 'true')",
    );
    let (_, unit) = product_with_price(
        &app,
        &owner,
        &t,
        "UNIT",
        &[("model", "per_unit"), ("unit_amount", "1")],
    )
    .await;
    let mut ids = Vec::new();
    for (name, qty, start) in [
        ("Acme Trading Ltd", "100", "2026-01-01"),
        ("Beta Widgets GmbH", "250", "2026-02-01"),
        ("Gamma Foods", "60", "2026-02-01"),
        ("Delta Tools", "60", "2026-02-01"),
    ] {
        let aid = put_account(&app, &t, name, None);
        subscribe(
            &app,
            &owner,
            &t,
            aid,
            &[
                ("start_date", start),
                ("item0_price", &unit.to_string()),
                ("item0_quantity", qty),
            ],
        )
        .await;
        ids.push(aid);
    }
    bill(&app, &t, "2026-02-01");
    let number = |n: i64| {
        one(
            &app,
            &t,
            &format!("SELECT id FROM invoices WHERE number = 'INV-{n:06}'"),
        )
    };
    let upload = |csv: &'static str| {
        let (app, owner, t) = (&app, &owner, &t);
        async move {
            let token = app.csrf(owner).await;
            let part = reqwest::multipart::Part::bytes(csv.as_bytes().to_vec())
                .file_name("bank.csv")
                .mime_str("text/csv")
                .unwrap();
            owner
                .post(app.url(&format!("/t/{}/cash/import?csrf_token={token}", t.slug)))
                .multipart(reqwest::multipart::Form::new().part("file", part))
                .send()
                .await
                .unwrap()
        }
    };
    // A file with a bad row imports nothing.
    let resp =
        upload("date,amount,payer,reference\n2026-03-10,200,X,INV-1\n10/03/2026,5,Y,Z\n").await;
    assert_eq!(resp.status(), 422);
    assert_eq!(count(&app, &t, "remittance_lines"), 0);

    // Act
    let resp = upload(
        "date,amount,currency,payer,reference\n\
         2026-03-10,200,EUR,Someone,Payment for inv-000001 and INV 2\n\
         2026-03-10,250,EUR,Unknown payer,wire 998\n\
         2026-03-11,40,EUR,ACME TRADING LIMITED,advance\n\
         2026-03-12,60,EUR,A. N. Other,misc\n\
         2026-03-12,75,EUR,Nobody Known,misc\n",
    )
    .await;

    // Assert: three matched (number, amount, payer); the 60.00 line is ambiguous (two invoices
    // of 60.00) and the 75.00 line unmatched.
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(body.contains("3 line(s) matched"), "{body}");
    assert_eq!(due(&app, &t, number(1)).1, "paid");
    assert_eq!(due(&app, &t, number(2)).1, "paid");
    assert_eq!(due(&app, &t, number(3)).1, "paid");
    let by = |how: &str| {
        count(
            &app,
            &t,
            &format!("remittance_lines WHERE matched_by = '{how}'"),
        )
    };
    assert_eq!((by("invoice_number"), by("amount"), by("payer")), (1, 1, 1));
    let acme_unapplied = one(&app, &t, &format!("SELECT (amount - refunded)::bigint AS id FROM payments WHERE account_id = {} AND amount = 40", ids[0]));
    assert_eq!(acme_unapplied, 40, "nothing open: kept as unapplied cash");
    assert_eq!(
        count(&app, &t, "remittance_lines WHERE status = 'ambiguous'"),
        1
    );
    assert_eq!(
        count(&app, &t, "remittance_lines WHERE status = 'unmatched'"),
        1
    );
    let page = app.html(&owner, &format!("/t/{}/cash", t.slug)).await;
    assert!(
        page.contains("Gamma Foods") && page.contains("Delta Tools"),
        "both candidates suggested: {page}"
    );

    // A person matches the ambiguous line to Gamma; undoing it reopens the invoice.
    let line = one(
        &app,
        &t,
        "SELECT id FROM remittance_lines WHERE status = 'ambiguous'",
    );
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/cash/lines/{line}/match", t.slug),
            &[("account_id", &ids[2].to_string())],
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(due(&app, &t, number(4)).1, "paid");
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/cash/lines/{line}/unmatch", t.slug),
            &[],
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(due(&app, &t, number(4)), (d("60"), "open".into()));
    assert_eq!(
        count(&app, &t, "remittance_lines WHERE status = 'matched'"),
        3
    );
    assert_balances_match_applications(&app, &t);
}
