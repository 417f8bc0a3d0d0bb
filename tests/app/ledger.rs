//! The general ledger: each billing event's entry for a fixture tenant, AR reconciled after a
//! sequence, exports accepted by the real hledger and bean-check (and rejected once altered),
//! and a mapping gap that blocks finalization with its reason.

use std::{collections::BTreeMap, process::Command};

use arbor::db::scope::in_tenant;
use diesel::{
    prelude::*,
    sql_query,
    sql_types::{Numeric, Text},
};
use rust_decimal::Decimal;

mod fees;
mod push;
mod revenue;

use crate::{
    accounts::{count, id_from, put_account},
    billing::{bill, d, exec, one, product_with_price, subscribe},
    helpers::{new_client, TestApp, TestTenant},
};

#[derive(QueryableByName)]
struct Posting {
    #[diesel(sql_type = Text)]
    account: String,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
}

/// Net amount per account of the entries from one source document, zeros dropped.
fn entry(app: &TestApp, t: &TestTenant, source: &str, id: i64) -> Vec<(String, Decimal)> {
    let rows: Vec<Posting> = in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(sql_query(format!(
            "SELECT l.account_code AS account, sum(l.amount) AS amount FROM journal_lines l \
             JOIN journal_entries e ON e.id = l.entry_id \
             WHERE e.source_type = '{source}' AND e.source_id = {id} GROUP BY 1 ORDER BY 1"
        ))
        .load(c)?)
    })
    .unwrap();
    rows.into_iter()
        .filter(|r| !r.amount.is_zero())
        .map(|r| (r.account, r.amount.normalize()))
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> Vec<(String, Decimal)> {
    let m: BTreeMap<String, Decimal> = pairs
        .iter()
        .map(|(a, v)| ((*a).to_owned(), d(v).normalize()))
        .collect();
    m.into_iter().collect()
}

/// The newest application of a payment to an invoice.
fn application(app: &TestApp, t: &TestTenant, payment: i64, invoice: i64) -> i64 {
    one(app, t, &format!("SELECT max(id) AS id FROM payment_applications WHERE payment_id = {payment} AND invoice_id = {invoice}"))
}

/// Every entry balances, and AR in the ledger equals the open invoice balances (in cents).
fn assert_reconciled(app: &TestApp, t: &TestTenant) {
    let unbalanced = one(app, t, "SELECT count(*) AS id FROM (SELECT entry_id FROM journal_lines GROUP BY entry_id, currency HAVING sum(amount) <> 0) x");
    assert_eq!(unbalanced, 0, "every entry balances");
    let ar = one(app, t, "SELECT (COALESCE(sum(amount), 0) * 100)::bigint AS id FROM journal_lines WHERE account_code = '1200'");
    let open = one(app, t, "SELECT (COALESCE(sum(amount_due), 0) * 100)::bigint AS id FROM invoices WHERE kind = 'invoice' AND status IN ('open', 'paid')");
    assert_eq!(
        ar, open,
        "AR in the ledger equals the open invoice balances"
    );
}

fn tool(program: &str, args: &[&str], file: &std::path::Path) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed (see .ci/run): {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Runs the checker on `text` and on a copy with one posting's amount changed.
fn check_export(text: &str, ext: &str, program: &str, args: &[&str]) {
    let dir = std::env::temp_dir().join(format!("arbor-ledger-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("ok.{ext}"));
    std::fs::write(&file, text).unwrap();
    let (ok, out) = tool(program, args, &file);
    assert!(ok, "{program} accepts the export:\n{out}\n{text}");
    let altered = text.replacen("120.0000 EUR", "121.0000 EUR", 1);
    assert_ne!(altered, text, "the export holds the 120.00 receivable");
    let bad = dir.join(format!("altered.{ext}"));
    std::fs::write(&bad, &altered).unwrap();
    let (ok, out) = tool(program, args, &bad);
    assert!(!ok, "{program} rejects an altered entry:\n{out}");
}

#[tokio::test]
async fn each_billing_event_posts_its_entry_ar_reconciles_and_exports_pass_hledger_and_bean_check()
{
    // Arrange: 20% tax, a 100.00 monthly plan (ratable), invoices finalized by the bill run.
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "ledger").await;
    exec(&app, &t, "INSERT INTO settings (key, value) VALUES ('billing.auto_finalize', 'true'), ('tax.standard_rate', '\"20\"')");
    let (product, price) = product_with_price(
        &app,
        &owner,
        &t,
        "PLAN",
        &[("model", "flat"), ("amount", "100")],
    )
    .await;
    let aid = put_account(&app, &t, "Ledger Customer", None);
    let sub = [
        ("start_date", "2026-01-01"),
        ("item0_price", &price.to_string()),
    ];
    subscribe(&app, &owner, &t, aid, &sub).await;

    // Invoice finalized, ratable product: Dr AR 120 / Cr deferred revenue 100 / Cr tax 20.
    bill(&app, &t, "2026-01-01");
    let jan = one(
        &app,
        &t,
        "SELECT id FROM invoices WHERE period_start = '2026-01-01'",
    );
    assert_eq!(
        entry(&app, &t, "invoice", jan),
        expect(&[("1200", "120"), ("2200", "-100"), ("2300", "-20")])
    );
    // Point-in-time product: revenue instead of deferred revenue.
    exec(
        &app,
        &t,
        &format!("UPDATE products SET revenue_recognition = 'point_in_time' WHERE id = {product}"),
    );
    bill(&app, &t, "2026-02-01");
    let feb = one(
        &app,
        &t,
        "SELECT id FROM invoices WHERE period_start = '2026-02-01'",
    );
    assert_eq!(
        entry(&app, &t, "invoice", feb),
        expect(&[("1200", "120"), ("2300", "-20"), ("4000", "-100")])
    );
    assert_reconciled(&app, &t);
    // Revenue and tax postings name their invoice line.
    let linked = one(&app, &t, &format!("SELECT count(*) AS id FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id JOIN invoice_lines il ON il.id = l.source_line WHERE e.source_id = {jan} AND e.source_type = 'invoice' AND il.invoice_id = {jan}"));
    assert_eq!(linked, 2);

    // Payment received and applied oldest first: cash in, then unapplied cash to AR.
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
    assert_eq!(
        entry(&app, &t, "payment", p1),
        expect(&[("1000", "150"), ("2100", "-150")])
    );
    let a_jan = application(&app, &t, p1, jan);
    let a_feb = application(&app, &t, p1, feb);
    assert_eq!(
        entry(&app, &t, "payment_application", a_jan),
        expect(&[("1200", "-120"), ("2100", "120")])
    );
    assert_eq!(
        entry(&app, &t, "payment_application", a_feb),
        expect(&[("1200", "-30"), ("2100", "30")])
    );
    assert_reconciled(&app, &t);

    // Credit note of 25.00 (+ tax) on February: the reversal reduces AR.
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
    let note = one(
        &app,
        &t,
        "SELECT id FROM invoices WHERE kind = 'credit_note'",
    );
    assert_eq!(
        entry(&app, &t, "credit_note", note),
        expect(&[("1200", "-30"), ("2300", "5"), ("4000", "25")])
    );
    assert_reconciled(&app, &t);

    // Unapplied cash, then a refund of part of it.
    let fields = [
        ("method", "check"),
        ("amount", "50"),
        ("received_on", "2026-02-10"),
        ("allocation", "chosen"),
    ];
    let resp = app.post_form(&owner, &record, &fields).await;
    assert_eq!(resp.status(), 303);
    let p2 = id_from(&resp);
    assert_eq!(
        entry(&app, &t, "payment", p2),
        expect(&[("1000", "50"), ("2100", "-50")])
    );
    let refund = [("refund_amount", "20"), ("refund_reference", "RF-1")];
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/payments/{p2}/refund", t.slug),
            &refund,
        )
        .await;
    assert_eq!(resp.status(), 303);
    let r = one(
        &app,
        &t,
        &format!("SELECT id FROM refunds WHERE payment_id = {p2}"),
    );
    assert_eq!(
        entry(&app, &t, "refund", r),
        expect(&[("1000", "-20"), ("2100", "20")])
    );

    // Unapplying February reverses its application.
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/payments/{p1}/unapply/{feb}", t.slug),
            &[],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let undo = application(&app, &t, p1, feb);
    assert_eq!(
        entry(&app, &t, "payment_application", undo),
        expect(&[("1200", "30"), ("2100", "-30")])
    );
    assert_reconciled(&app, &t);

    // Write-off: February's 90.00 balance goes from AR to bad debt.
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/invoices/{feb}/write-off", t.slug),
            &[("reason", "Customer insolvent")],
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        entry(&app, &t, "write_off", feb),
        expect(&[("1200", "-90"), ("6100", "90")])
    );
    assert_reconciled(&app, &t);

    // A bounced payment: January reopens and the cash goes back.
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/payments/{p1}/reverse", t.slug),
            &[("reason", "Returned by the bank")],
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        entry(&app, &t, "payment_reversal", p1),
        expect(&[("1000", "-150"), ("2100", "150")])
    );
    assert_reconciled(&app, &t);

    // The reconciliation page shows ledger and documents side by side, with no difference.
    let page = app
        .html(&owner, &format!("/t/{}/ledger/reconciliation", t.slug))
        .await;
    assert!(page.contains(r#"data-check="receivable" data-currency="EUR" data-ledger="120.00" data-documents="120.00" data-difference="0.00""#), "{page}");
    assert!(page.contains(r#"data-check="unapplied_cash" data-currency="EUR" data-ledger="30.00" data-documents="30.00""#), "{page}");
    assert!(!page.contains(r#"data-difference="-"#));
    let journal = app
        .html(
            &owner,
            &format!("/t/{}/ledger/journal?source_type=invoice", t.slug),
        )
        .await;
    assert_eq!(
        journal.matches("class=\"journal-entry\"").count(),
        2,
        "{journal}"
    );

    // Exports: the whole journal and January alone pass the real tools; an altered amount fails.
    let export = |fmt: &'static str, q: &'static str| {
        let (app, owner, slug) = (&app, &owner, t.slug.clone());
        async move {
            let resp = app
                .get(owner, &format!("/t/{slug}/ledger/export.{fmt}{q}"))
                .await;
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        }
    };
    for q in ["", "?from=2026-01-01&to=2026-01-31"] {
        check_export(
            &export("hledger", q).await,
            "journal",
            "hledger",
            &["check", "--strict", "-f"],
        );
        check_export(
            &export("beancount", q).await,
            "beancount",
            "bean-check",
            &[],
        );
    }
    let january = export("csv", "?from=2026-01-01&to=2026-01-31").await;
    assert!(
        january.starts_with("entry_id,date,source_type,source_id,document"),
        "{january}"
    );
    assert_eq!(
        january.lines().count(),
        4,
        "header and January's three postings:\n{january}"
    );
    let entries = count(&app, &t, "journal_entries");
    let csv = export("csv", "").await;
    let ids: std::collections::BTreeSet<&str> = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .collect();
    assert_eq!(ids.len() as i64, entries);

    // The journal is append-only.
    let changed = in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(sql_query("UPDATE journal_lines SET amount = amount + 1").execute(c)?)
    });
    assert!(changed.is_err());
}

#[tokio::test]
async fn a_mapping_gap_blocks_finalization_with_its_reason_until_a_rule_maps_the_product() {
    // Arrange: a draft invoice for product PLAN; the fallback rule removed.
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "gap").await;
    let (product, price) = product_with_price(
        &app,
        &owner,
        &t,
        "PLAN",
        &[("model", "flat"), ("amount", "100")],
    )
    .await;
    let aid = put_account(&app, &t, "Gap Customer", None);
    let sub = [
        ("start_date", "2026-01-01"),
        ("item0_price", &price.to_string()),
    ];
    subscribe(&app, &owner, &t, aid, &sub).await;
    bill(&app, &t, "2026-01-01");
    let inv = one(&app, &t, "SELECT id FROM invoices WHERE status = 'draft'");
    let fallback = one(&app, &t, "SELECT id FROM gl_mapping_rules WHERE product_id IS NULL AND entity IS NULL AND currency IS NULL AND active");
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/ledger/mappings/retire", t.slug),
            &[("id", &fallback.to_string())],
        )
        .await;
    assert_eq!(
        resp.status(),
        409,
        "the fallback cannot be removed from the editor"
    );
    exec(
        &app,
        &t,
        "UPDATE gl_mapping_rules SET active = false, retired_at = now()",
    );
    let chart = app
        .html(&owner, &format!("/t/{}/ledger/accounts", t.slug))
        .await;
    assert!(chart.contains("id=\"no-fallback\""));

    // Act: finalize. Assert: 422 naming the product and what to map; nothing finalized.
    let finalize = format!("/t/{}/invoices/{inv}/finalize", t.slug);
    let resp = app.post_form(&owner, &finalize, &[]).await;
    assert_eq!(resp.status(), 422);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("No GL mapping for product “Product PLAN” in EUR"),
        "{body}"
    );
    assert_eq!(count(&app, &t, "invoices WHERE status = 'draft'"), 1);
    assert_eq!(count(&app, &t, "invoices WHERE number IS NOT NULL"), 0);
    assert_eq!(count(&app, &t, "journal_entries"), 0);

    // A rule for the product (a new account first) unblocks it; the change is audited.
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/ledger/accounts", t.slug),
            &[
                ("code", "4050"),
                ("name", "Plan revenue"),
                ("kind", "income"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let rule = [
        ("product_id", &product.to_string() as &str),
        ("currency", "EUR"),
        ("revenue_account", "4050"),
        ("deferred_account", "2200"),
    ];
    let resp = app
        .post_form(&owner, &format!("/t/{}/ledger/mappings", t.slug), &rule)
        .await;
    assert_eq!(resp.status(), 303);
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/ledger/mappings", t.slug),
            &[
                ("product_id", &product.to_string() as &str),
                ("currency", "EUR"),
                ("revenue_account", "4050"),
                ("deferred_account", "2200"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 303, "saving again adds version 2");
    assert_eq!(
        one(
            &app,
            &t,
            "SELECT max(version)::bigint AS id FROM gl_mapping_rules WHERE active"
        ),
        2
    );
    assert_eq!(count(&app, &t, "audit_log WHERE action LIKE 'gl_%'"), 3);
    exec(
        &app,
        &t,
        &format!("UPDATE products SET revenue_recognition = 'point_in_time' WHERE id = {product}"),
    );
    let resp = app.post_form(&owner, &finalize, &[]).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        entry(&app, &t, "invoice", inv),
        expect(&[("1200", "100"), ("4050", "-100")])
    );
    // Bad input in the editor is a 422, not a 500.
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/ledger/mappings", t.slug),
            &[
                ("revenue_account", "9999"),
                ("deferred_account", "2200"),
                ("currency", "XX"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 422);
}

#[tokio::test]
async fn voiding_an_open_invoice_reverses_its_entry_and_keeps_ar_reconciled() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "ledvoid").await;
    exec(&app, &t, "INSERT INTO settings (key, value) VALUES ('billing.auto_finalize', 'true'), ('tax.standard_rate', '\"20\"')");
    let (_, price) = product_with_price(
        &app,
        &owner,
        &t,
        "PLAN",
        &[("model", "flat"), ("amount", "100")],
    )
    .await;
    let aid = put_account(&app, &t, "Void Customer", None);
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

    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/invoices/{jan}/void", t.slug),
            &[("reason", "Sent to the wrong customer")],
        )
        .await;
    assert_eq!(r.status(), 303);

    assert_eq!(
        entry(&app, &t, "void", jan),
        expect(&[("1200", "-120"), ("2200", "100"), ("2300", "20")])
    );
    assert_reconciled(&app, &t);
}
