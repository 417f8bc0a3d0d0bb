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
