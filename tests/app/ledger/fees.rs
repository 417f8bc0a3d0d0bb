//! Late fees, credit notes that overflow into account credit, and credit drawn by the next
//! invoice: their entries, and the customer-credit reconciliation.

use arbor::{audit::Actor, db::scope::in_tenant, invoicing::finalize};

use super::{assert_reconciled, entry, expect};
use crate::{
    accounts::put_account,
    billing::{day, exec, links, one},
    helpers::{new_client, TestApp, TestTenant},
};

/// A document written by SQL and finalized by the production code; returns its id.
fn finalized(
    app: &TestApp,
    t: &TestTenant,
    aid: i64,
    kind: &str,
    source: &str,
    total: &str,
    related: &str,
) -> i64 {
    let id = one(app, t, &format!(
        "INSERT INTO invoices (kind, account_id, bill_to_account_id, source, currency, issue_date, \
         terms_kind, terms_days, related_invoice_id, subtotal, total, amount_due) VALUES ('{kind}', \
         {aid}, {aid}, '{source}', 'EUR', '2026-03-01', 'net', 30, {related}, {total}, {total}, {total}) RETURNING id"
    ));
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        finalize::finalize(
            c,
            &Actor::system(),
            &links(app, t),
            &[id],
            day("2026-03-01"),
        )
    })
    .unwrap();
    id
}

#[tokio::test]
async fn late_fees_credit_notes_to_account_credit_and_credit_drawn_post_and_reconcile() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "fees").await;
    let aid = put_account(&app, &t, "Fee Customer", None);

    // A late fee (its line carries gl_account late_fees): Dr AR / Cr late fee income.
    let fee = one(
        &app,
        &t,
        &format!(
        "INSERT INTO invoices (kind, account_id, bill_to_account_id, source, currency, issue_date, \
         terms_kind, terms_days, subtotal, total, amount_due) VALUES ('invoice', {aid}, {aid}, \
         'late_fee', 'EUR', '2026-03-01', 'due_on_receipt', 0, 15, 15, 15) RETURNING id"
    ),
    );
    exec(&app, &t, &format!(
        "INSERT INTO invoice_lines (invoice_id, position, kind, description, quantity, unit_price, \
         amount, net, tax_category, gl_account) VALUES ({fee}, 1, 'one_off', 'Late fee', 1, 15, 15, 15, 'exempt', 'late_fees')"
    ));
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        finalize::finalize(
            c,
            &Actor::system(),
            &links(&app, &t),
            &[fee],
            day("2026-03-01"),
        )
    })
    .unwrap();
    assert_eq!(
        entry(&app, &t, "invoice", fee),
        expect(&[("1200", "15"), ("4800", "-15")])
    );

    // A 100.00 invoice credited by 150.00: 100.00 off AR, 50.00 to customer credit.
    let inv = finalized(&app, &t, aid, "invoice", "manual", "100", "NULL");
    let note = finalized(
        &app,
        &t,
        aid,
        "credit_note",
        "manual",
        "150",
        &inv.to_string(),
    );
    assert_eq!(
        entry(&app, &t, "credit_note", note),
        expect(&[("1200", "-100"), ("2150", "-50"), ("4000", "150")])
    );
    // The next invoice draws the 50.00 of credit: AR carries only what is still due.
    let next = finalized(&app, &t, aid, "invoice", "manual", "80", "NULL");
    assert_eq!(
        entry(&app, &t, "invoice", next),
        expect(&[("1200", "30"), ("2150", "50"), ("4000", "-80")])
    );
    assert_reconciled(&app, &t);
    let page = app
        .html(&owner, &format!("/t/{}/ledger/reconciliation", t.slug))
        .await;
    assert!(page.contains(r#"data-check="customer_credit" data-currency="EUR" data-ledger="0.00" data-documents="0.00""#), "{page}");
    assert!(page.contains(r#"data-check="receivable" data-currency="EUR" data-ledger="45.00" data-documents="45.00""#), "{page}");
}
