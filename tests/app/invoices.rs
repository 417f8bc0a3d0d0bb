//! Finalized invoices: email with PDF through real SMTP, the hosted link, credit notes and
//! account credit, amendments with proration.

use std::time::Duration;

use arbor::{db::scope::in_tenant, invoicing::repo as invoices};
use base64::Engine;

use crate::{
    accounts::{count, put_account},
    billing::{bill, d, exec, one, product_with_price, subscribe},
    helpers::{new_client, SmtpSink, TestApp, TestTenant},
};

fn invoice(app: &TestApp, t: &TestTenant, id: i64) -> invoices::Invoice {
    in_tenant(&mut app.conn(), &t.schema(), |c| invoices::get(c, id)).unwrap()
}

fn pdf_text(pdf: &[u8]) -> String {
    let path = std::env::temp_dir().join(format!("arbor-{}.pdf", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is required for the PDF tests");
    let _ = std::fs::remove_file(&path);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The base64 body of the first PDF attachment of a raw message.
fn attached_pdf(raw: &str) -> Vec<u8> {
    let start = raw
        .find("Content-Type: application/pdf")
        .expect("a PDF attachment");
    let rest = &raw[start..];
    let body_at = rest
        .find("\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| rest.find("\n\n").map(|i| i + 2))
        .unwrap();
    let body: String = rest[body_at..]
        .lines()
        .take_while(|l| !l.starts_with("--") && !l.trim().is_empty())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .unwrap()
}

#[tokio::test]
async fn a_finalized_invoice_is_emailed_with_its_pdf_and_a_revocable_customer_link() {
    // Arrange: auto-finalize; a billing contact with a Unicode name on the paying account.
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = TestApp::spawn_with(|c| c.smtp_url = Some(url)).await;
    let owner = new_client();
    let t = app.signup(&owner, "mail").await;
    exec(&app, &t, "INSERT INTO settings (key, value) VALUES ('billing.auto_finalize', 'true'), ('tax.standard_rate', '\"19\"')");
    let (_, price) = product_with_price(
        &app,
        &owner,
        &t,
        "PLAN",
        &[("model", "flat"), ("amount", "100")],
    )
    .await;
    let aid = put_account(&app, &t, "Zoë Ørsted-Łukasiewicz GmbH", None);
    exec(&app, &t, &format!("INSERT INTO contacts (account_id, name, email, receives_invoices) VALUES ({aid}, 'Zoë AP', 'ap@zoe.example', true)"));
    subscribe(
        &app,
        &owner,
        &t,
        aid,
        &[
            ("start_date", "2026-05-01"),
            ("item0_price", &price.to_string()),
        ],
    )
    .await;

    // Act
    let run = bill(&app, &t, "2026-05-01");
    app.state.wakeup.notify();

    // Assert: one email to the contact, with the PDF of the invoice attached.
    assert_eq!(run.created, 1);
    assert!(
        app.eventually(Duration::from_secs(30), || sink.messages().len() == 1)
            .await,
        "email delivered"
    );
    let raw = sink.messages().remove(0);
    assert!(raw.contains("ap@zoe.example"));
    assert!(
        raw.contains("INV-000001.pdf"),
        "attachment named after the number"
    );
    let text = pdf_text(&attached_pdf(&raw));
    assert!(text.contains("INV-000001"), "{text}");
    assert!(
        text.contains("Zoë Ørsted-Łukasiewicz GmbH"),
        "Unicode name in the PDF: {text}"
    );
    assert!(text.contains("119.00"), "total with 19% tax: {text}");
    // The email's link opens the invoice without signing in; revoking it makes it a 404.
    // The text part may be quoted-printable: undo its soft line breaks before looking.
    let unfolded = raw.replace("=\r\n", "").replace("=\n", "");
    let link = unfolded
        .split_whitespace()
        .find(|w| w.contains("/p/") && w.contains("/invoices/"))
        .expect("a customer link in the email")
        .trim_end_matches(['.', ','])
        .to_owned();
    let path = &link[link.find("/p/").unwrap()..];
    let anon = new_client();
    let page = app.html(&anon, path).await;
    assert!(
        page.contains("INV-000001") && page.contains("Your statement"),
        "{page}"
    );
    assert_eq!(app.status(&anon, &format!("{path}/pdf")).await, 200);
    assert_eq!(
        app.status(&anon, &format!("{}x", path)).await,
        404,
        "a wrong token is a 404"
    );
    let inv_id = one(
        &app,
        &t,
        "SELECT id FROM invoices WHERE number = 'INV-000001'",
    );
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/invoices/{inv_id}/link", t.slug),
            &[("action", "revoke")],
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(app.status(&anon, path).await, 404, "revoked");
    // Staff can resend: a second message arrives.
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/invoices/{inv_id}/send", t.slug),
            &[],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        app.eventually(Duration::from_secs(30), || sink.messages().len() == 2)
            .await,
        "resent"
    );
}

#[tokio::test]
async fn credit_notes_reduce_what_is_due_and_the_excess_is_applied_to_the_next_invoice() {
    // Arrange: a finalized 120.00 invoice (100 + 20% tax).
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "credit").await;
    exec(&app, &t, "INSERT INTO settings (key, value) VALUES ('billing.auto_finalize', 'true'), ('tax.standard_rate', '\"20\"')");
    let (_, price) = product_with_price(
        &app,
        &owner,
        &t,
        "PLAN",
        &[("model", "flat"), ("amount", "100")],
    )
    .await;
    let aid = put_account(&app, &t, "Credit Customer", None);
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
    bill(&app, &t, "2026-01-01");
    let jan = one(
        &app,
        &t,
        "SELECT id FROM invoices WHERE period_start = '2026-01-01'",
    );
    let line = one(
        &app,
        &t,
        &format!("SELECT id FROM invoice_lines WHERE invoice_id = {jan}"),
    );
    assert_eq!(invoice(&app, &t, jan).amount_due, d("120.00"));

    // Act 1: credit 25.00 of the line (tax credited at the line's rate).
    let path = format!("/t/{}/invoices/{jan}/credit", t.slug);
    let resp = app
        .post_form(
            &owner,
            &path,
            &[
                ("scope", "lines"),
                (&format!("line_{line}"), "25"),
                ("reason", "Outage"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 303);
    // Assert 1: 30.00 off what is due.
    assert_eq!(invoice(&app, &t, jan).amount_due, d("90.00"));
    let note = one(
        &app,
        &t,
        "SELECT id FROM invoices WHERE kind = 'credit_note'",
    );
    assert_eq!(invoice(&app, &t, note).number.as_deref(), Some("CN-000001"));

    // Bad input changes nothing: over the line, no reason.
    let resp = app
        .post_form(
            &owner,
            &path,
            &[
                ("scope", "lines"),
                (&format!("line_{line}"), "500"),
                ("reason", ""),
            ],
        )
        .await;
    assert_eq!(resp.status(), 422);
    assert_eq!(count(&app, &t, "invoices WHERE kind = 'credit_note'"), 1);

    // Act 2: the customer paid the rest (payments arrive with #6; set here), then a 50.00 credit.
    exec(&app, &t, &format!("UPDATE invoices SET amount_paid = 90, amount_due = 0, status = 'paid' WHERE id = {jan}"));
    let resp = app
        .post_form(
            &owner,
            &path,
            &[
                ("scope", "lines"),
                (&format!("line_{line}"), "50"),
                ("reason", "Goodwill"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 303);
    // Assert 2: nothing left to reduce, so 60.00 (50 + tax) becomes account credit…
    let credit = one(&app, &t, &format!("SELECT COALESCE(sum(amount), 0)::bigint AS id FROM account_credits WHERE account_id = {aid}"));
    assert_eq!(credit, 60);
    // …which the February invoice draws: 120.00 − 60.00.
    bill(&app, &t, "2026-02-01");
    let feb = one(
        &app,
        &t,
        "SELECT id FROM invoices WHERE period_start = '2026-02-01'",
    );
    let f = invoice(&app, &t, feb);
    assert_eq!(
        (f.total, f.credit_applied, f.amount_due),
        (d("120.00"), d("60.00"), d("60.00"))
    );
    let left = one(&app, &t, &format!("SELECT COALESCE(sum(amount), 0)::bigint AS id FROM account_credits WHERE account_id = {aid}"));
    assert_eq!(left, 0);
    // A finalized invoice's lines cannot be edited.
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/invoices/{feb}/lines", t.slug),
            &[("description", "Extra"), ("unit_price", "5")],
        )
        .await;
    assert_eq!(resp.status(), 409);
}

#[tokio::test]
async fn an_upgrade_mid_period_is_invoiced_and_a_downgrade_credited_by_the_day() {
    // Arrange: 10 seats at 30.00 per month from 1 April (30 days), invoiced in advance.
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "amend").await;
    exec(
        &app,
        &t,
        "INSERT INTO settings (key, value) VALUES ('billing.auto_finalize', 'true')",
    );
    let (_, price) = product_with_price(
        &app,
        &owner,
        &t,
        "SEAT",
        &[("model", "per_unit"), ("unit_amount", "30")],
    )
    .await;
    let aid = put_account(&app, &t, "Amend Customer", None);
    let sub = subscribe(
        &app,
        &owner,
        &t,
        aid,
        &[
            ("start_date", "2026-04-01"),
            ("item0_price", &price.to_string()),
            ("item0_quantity", "10"),
        ],
    )
    .await;
    bill(&app, &t, "2026-04-01");
    let item = one(
        &app,
        &t,
        &format!("SELECT id FROM subscription_items WHERE subscription_id = {sub}"),
    );

    // Act: 15 seats from 16 April (15 of 30 days left).
    let amend = format!("/t/{}/subscriptions/{sub}/amend", t.slug);
    let resp = app
        .post_form(
            &owner,
            &amend,
            &[
                ("kind", "quantity"),
                ("item_id", &item.to_string()),
                ("quantity", "15"),
                ("effective_date", "2026-04-16"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 303);

    // Assert: credit 150.00 unused, charge 225.00 remaining: an invoice of 75.00.
    let up = one(
        &app,
        &t,
        "SELECT id FROM invoices WHERE source = 'amendment' AND kind = 'invoice'",
    );
    assert_eq!(invoice(&app, &t, up).total, d("75.00"));
    let new_item = one(&app, &t, &format!("SELECT id FROM subscription_items WHERE subscription_id = {sub} AND replaces_id = {item}"));

    // Act: back to 5 seats from 21 April (10 days left): credit 150.00, charge 50.00.
    let resp = app
        .post_form(
            &owner,
            &amend,
            &[
                ("kind", "quantity"),
                ("item_id", &new_item.to_string()),
                ("quantity", "5"),
                ("effective_date", "2026-04-21"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let down = one(
        &app,
        &t,
        "SELECT id FROM invoices WHERE kind = 'credit_note'",
    );
    let note = invoice(&app, &t, down);
    assert_eq!(note.total, d("100.00"));
    assert_eq!(
        note.related_invoice_id,
        Some(one(
            &app,
            &t,
            "SELECT id FROM invoices WHERE source = 'bill_run'"
        ))
    );
    // May bills 5 seats; the history lists every change.
    bill(&app, &t, "2026-05-01");
    let may = one(
        &app,
        &t,
        "SELECT id FROM invoices WHERE period_start = '2026-05-01'",
    );
    assert_eq!(invoice(&app, &t, may).total, d("150.00"));
    let page = app
        .html(&owner, &format!("/t/{}/subscriptions/{sub}", t.slug))
        .await;
    assert!(
        page.contains("quantity 10 → 15") && page.contains("quantity 15 → 5"),
        "{page}"
    );
    // An effective date before the start is refused and changes nothing.
    let resp = app
        .post_form(
            &owner,
            &amend,
            &[
                ("kind", "quantity"),
                ("item_id", &new_item.to_string()),
                ("quantity", "1"),
                ("effective_date", "2025-01-01"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 422);
    assert_eq!(count(&app, &t, "subscription_amendments"), 3);
}

/// An invoice in `status` with `total` and `due`, as it would stand after its history.
fn listed(
    app: &TestApp,
    t: &TestTenant,
    acct: i64,
    cur: &str,
    status: &str,
    total: &str,
    due: &str,
) -> i64 {
    let id = crate::reports::invoice(app, t, acct, cur, "2026-03-01", "2026-03-31", total);
    exec(app, t, &format!(
        "UPDATE invoices SET status = '{status}', amount_paid = {total} - {due}, amount_due = {due} WHERE id = {id}"
    ));
    id
}

#[tokio::test]
async fn the_invoice_list_counts_every_invoice_and_totals_each_currency_without_void_under_any_filter(
) {
    // Arrange: EUR open 100, paid 50 and void 70 for Alpha; USD open 30 for Beta.
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "listtotals").await;
    let alpha = put_account(&app, &t, "Alpha Ltd", None);
    let beta = put_account(&app, &t, "Beta GmbH", None);
    listed(&app, &t, alpha, "EUR", "open", "100", "100");
    listed(&app, &t, alpha, "EUR", "paid", "50", "0");
    listed(&app, &t, alpha, "EUR", "void", "70", "70");
    listed(&app, &t, beta, "USD", "open", "30", "30");
    let list = |q: &str| format!("/t/{}/invoices?{q}", t.slug);

    // Act: the whole list, then filtered by status and by account.
    let all = app.html(&owner, &list("")).await;
    let open = app.html(&owner, &list("status=open")).await;
    let beta_only = app.html(&owner, &list(&format!("account={beta}"))).await;

    // Assert: the pager counts the void invoice; totals per currency leave it out; a filter
    // narrows both the rows and the totals.
    assert!(all.contains("1–4 of 4"), "{all}");
    assert!(all.contains("2 in EUR: total 150.00, due 100.00"), "{all}");
    assert!(all.contains("1 in USD: total 30.00, due 30.00"), "{all}");
    assert!(open.contains("1–2 of 2"), "{open}");
    assert!(
        open.contains("1 in EUR: total 100.00, due 100.00"),
        "{open}"
    );
    assert!(beta_only.contains("1–1 of 1"), "{beta_only}");
    assert!(!beta_only.contains("in EUR"), "{beta_only}");
    assert!(beta_only.contains("Beta GmbH") && !beta_only.contains("Alpha Ltd"));
}
