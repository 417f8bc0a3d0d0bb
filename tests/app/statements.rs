//! Customer statements: balances rebuilt from dates, aging, currencies, CSV = screen, PDF and
//! email through real SMTP, and bad input.

use std::time::Duration;

use arbor::{audit::Actor, db::scope::in_tenant, invoicing::finalize};
use base64::Engine;
use reqwest::Client;
use scraper::{Html, Selector};

use crate::{
    accounts::{id_from, put_account},
    billing::{day, exec, links, one},
    helpers::{audit_actions, member, new_client, SmtpSink, TestApp, TestTenant},
};

/// A finalized invoice (or, with `credits`, a credit note of that invoice) issued on
/// `issued`, finalized by the production code so account credit and settlement apply.
#[allow(clippy::too_many_arguments)]
fn document(
    app: &TestApp,
    t: &TestTenant,
    aid: i64,
    currency: &str,
    total: &str,
    issued: &str,
    net_days: i64,
    credits: Option<i64>,
) -> i64 {
    let (kind, related, due) = match credits {
        Some(inv) => ("credit_note", inv.to_string(), "0"),
        None => ("invoice", "NULL".to_owned(), total),
    };
    let id = one(
        app,
        t,
        &format!(
            "INSERT INTO invoices (kind, account_id, bill_to_account_id, source, currency, \
             issue_date, terms_kind, terms_days, related_invoice_id, subtotal, total, amount_due) \
             VALUES ('{kind}', {aid}, {aid}, 'manual', '{currency}', '{issued}', 'net', \
             {net_days}, {related}, {total}, {total}, {due}) RETURNING id"
        ),
    );
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        finalize::finalize(c, &Actor::system(), &links(app, t), &[id], day(issued))
    })
    .unwrap();
    id
}

fn invoice(app: &TestApp, t: &TestTenant, aid: i64, total: &str, issued: &str, net: i64) -> i64 {
    document(app, t, aid, "EUR", total, issued, net, None)
}

/// Records a payment through the app, applied oldest invoice first; returns its id.
async fn pay(app: &TestApp, c: &Client, t: &TestTenant, aid: i64, amount: &str, on: &str) -> i64 {
    let resp = app
        .post_form(
            c,
            &format!("/t/{}/accounts/{aid}/payments", t.slug),
            &[
                ("method", "wire"),
                ("amount", amount),
                ("received_on", on),
                ("reference", &format!("WIRE-{amount}")),
                ("allocation", "oldest"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 303, "payment recorded");
    id_from(&resp)
}

fn statement_path(t: &TestTenant, aid: i64, suffix: &str, from: &str, to: &str) -> String {
    format!(
        "/t/{}/accounts/{aid}/statement{suffix}?from={from}&to={to}",
        t.slug
    )
}

/// `(currency, kind, id, balance)` of every row on the page, balances without grouping.
fn screen_rows(html: &str) -> Vec<(String, String, String, String)> {
    let doc = Html::parse_document(html);
    let article = Selector::parse("article[data-currency]").unwrap();
    let row = Selector::parse("tr[data-kind]").unwrap();
    let cell = Selector::parse("td").unwrap();
    let mut out = Vec::new();
    for a in doc.select(&article) {
        let currency = a.value().attr("data-currency").unwrap().to_owned();
        for tr in a.select(&row) {
            let balance: String = tr.select(&cell).last().unwrap().text().collect();
            out.push((
                currency.clone(),
                tr.value().attr("data-kind").unwrap().to_owned(),
                tr.value().attr("data-id").unwrap_or("").to_owned(),
                balance.trim().replace(',', ""),
            ));
        }
    }
    out
}

/// Cells of the aging row of the `currency` section: six buckets then the total.
fn aging(html: &str, currency: &str) -> Vec<String> {
    let doc = Html::parse_document(html);
    let sel = Selector::parse(&format!(
        "article[data-currency=\"{currency}\"] table.aging tbody td"
    ))
    .unwrap();
    doc.select(&sel)
        .map(|td| td.text().collect::<String>().trim().to_owned())
        .collect()
}

fn pdf_text(pdf: &[u8]) -> String {
    let path = std::env::temp_dir().join(format!("arbor-{}.pdf", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-layout".as_ref(), path.as_os_str(), "-".as_ref()])
        .output()
        .expect("pdftotext (poppler-utils) is required for the PDF tests");
    let _ = std::fs::remove_file(&path);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The base64 body of the first PDF attachment of a raw message, and its file name.
fn attached_pdf(raw: &str) -> (String, Vec<u8>) {
    let start = raw
        .find("Content-Type: application/pdf")
        .expect("a PDF attachment");
    let rest = &raw[start..];
    // lettre writes the disposition (RFC 2231 `filename*0=`) before the content type.
    let name = raw
        .split("filename")
        .nth(1)
        .and_then(|s| s.split('"').nth(1))
        .unwrap_or_default()
        .to_owned();
    let body_at = rest
        .find("\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| rest.find("\n\n").map(|i| i + 2))
        .unwrap();
    let body: String = rest[body_at..]
        .lines()
        .take_while(|l| !l.starts_with("--") && !l.trim().is_empty())
        .collect();
    let pdf = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .unwrap();
    (name, pdf)
}

#[tokio::test]
async fn balances_are_rebuilt_from_dates_and_the_page_csv_and_pdf_agree() {
    // Arrange, in the order it happened (hand-computed below):
    //   1 Jun  A  100.00 (due 1 Jul)          20 Jun  P1  60.00 → A
    //  10 Jul  B  250.00 (due 9 Aug)          15 Jul  CN  50.00 on B
    //   1 Aug  P2 300.00 → A 40, B 200, 60 unapplied;  5 Aug refund 20.00 of P2
    //  20 Aug  C   80.00 (due 4 Sep)          10 Sep  D 120.00 (due 10 Oct)
    //  20 Sep  P3  50.00 → C
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "stmt").await;
    let aid = put_account(&app, &t, "Statement Customer GmbH", None);
    let a = invoice(&app, &t, aid, "100.00", "2026-06-01", 30);
    let p1 = pay(&app, &owner, &t, aid, "60.00", "2026-06-20").await;
    let b = invoice(&app, &t, aid, "250.00", "2026-07-10", 30);
    let cn = document(&app, &t, aid, "EUR", "50.00", "2026-07-15", 0, Some(b));
    let p2 = pay(&app, &owner, &t, aid, "300.00", "2026-08-01").await;
    let refund = app
        .post_form(
            &owner,
            &format!("/t/{}/payments/{p2}/refund", t.slug),
            &[("refund_amount", "20"), ("refunded_on", "2026-08-05")],
        )
        .await;
    assert_eq!(refund.status(), 303);
    let c = invoice(&app, &t, aid, "80.00", "2026-08-20", 15);
    let dd = invoice(&app, &t, aid, "120.00", "2026-09-10", 30);
    let p3 = pay(&app, &owner, &t, aid, "50.00", "2026-09-20").await;

    // Act
    let path = statement_path(&t, aid, "", "2026-07-01", "2026-09-30");
    let html = app.html(&owner, &path).await;

    // Assert: opening 100 − 60; each row's running balance; closing
    // 40 + 450 − 50 − 350 + 20 = 110.
    let s = |kind: &str, id: i64, bal: &str| -> (String, String, String, String) {
        ("EUR".into(), kind.into(), id.to_string(), bal.into())
    };
    let expected: Vec<(String, String, String, String)> = vec![
        (
            "EUR".into(),
            "opening_balance".into(),
            String::new(),
            "40.00".into(),
        ),
        s("invoice", b, "290.00"),
        s("credit_note", cn, "240.00"),
        s("payment", p2, "-60.00"),
        s("refund", p2, "-40.00"),
        s("invoice", c, "40.00"),
        s("invoice", dd, "160.00"),
        s("payment", p3, "110.00"),
        (
            "EUR".into(),
            "closing_balance".into(),
            String::new(),
            "110.00".into(),
        ),
    ];
    assert_eq!(screen_rows(&html), expected, "{html}");
    assert!(
        !html.contains(&format!("data-id=\"{a}\"")),
        "A is before the period"
    );
    assert!(!html.contains(&format!("data-id=\"{p1}\"")));
    assert!(html.contains("Invoiced 450.00") && html.contains("Credited 50.00"));
    assert!(html.contains("Paid 350.00") && html.contains("Refunded 20.00"));
    // Aging on 30 Sep: C has 30.00 left, 26 days late; D is not due yet; 40.00 of P2 is
    // unapplied, so open 150.00 − 40.00 = the closing balance.
    assert_eq!(
        aging(&html, "EUR"),
        ["120.00", "30.00", "0.00", "0.00", "0.00", "0.00", "150.00"]
    );
    assert!(
        html.contains("Unapplied payments and credits -40.00"),
        "{html}"
    );

    // The CSV is the rows on screen: same order, kinds, ids and balances, plain decimals.
    let resp = app
        .get(
            &owner,
            &statement_path(&t, aid, ".csv", "2026-07-01", "2026-09-30"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let body = resp.text().await.unwrap();
    let mut r = csv::Reader::from_reader(body.as_bytes());
    let csv_rows: Vec<(String, String, String, String)> = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            let id = if rec[3].is_empty() { &rec[4] } else { &rec[3] };
            (rec[0].into(), rec[2].into(), id.into(), rec[9].into())
        })
        .collect();
    assert_eq!(csv_rows, expected, "{body}");
    assert!(
        body.contains(",WIRE-300.00,"),
        "payment reference kept: {body}"
    );

    // The PDF says the same.
    let resp = app
        .get(
            &owner,
            &statement_path(&t, aid, ".pdf", "2026-07-01", "2026-09-30"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    let text = pdf_text(&resp.bytes().await.unwrap());
    for needle in [
        "Statement of account",
        "Statement Customer GmbH",
        "Opening balance",
        "EUR 110.00",
        "1 Jul 2026 – 30 Sep 2026",
        "Current",
        "1–30",
        "120+",
        "150.00",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }

    // As of 31 July, before P2: the later payment does not count. A's 40.00 is 30 days late.
    let html = app
        .html(
            &owner,
            &statement_path(&t, aid, "", "2026-07-01", "2026-07-31"),
        )
        .await;
    let rows = screen_rows(&html);
    assert_eq!(rows.last().unwrap().3, "240.00", "{html}");
    assert_eq!(
        aging(&html, "EUR"),
        ["200.00", "40.00", "0.00", "0.00", "0.00", "0.00", "240.00"]
    );

    // Applying P2's remaining 40.00 today (C 30, D 10) changes no past statement, and no
    // balance: it only settles invoices from today on.
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/payments/{p2}/apply", t.slug),
            &[("allocation", "oldest")],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let again = app.html(&owner, &path).await;
    assert_eq!(screen_rows(&again), expected);
    assert_eq!(aging(&again, "EUR")[6], "150.00");
    let today = arbor::invoicing::handlers::today();
    let now = app
        .html(
            &owner,
            &statement_path(&t, aid, "", "2026-07-01", &today.to_string()),
        )
        .await;
    assert_eq!(screen_rows(&now).last().unwrap().3, "110.00");
    assert_eq!(aging(&now, "EUR")[6], "110.00", "D less 10.00: {now}");
}

#[tokio::test]
async fn aging_buckets_split_at_their_boundaries_and_currencies_stay_apart() {
    // Arrange: ten EUR invoices of 1, 2, 4 … 512, each due n days before 31 Oct.
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "aging").await;
    let aid = put_account(&app, &t, "Aging Customer", None);
    let to = day("2026-10-31");
    let issued = day("2026-05-01");
    for (i, n) in [0, 1, 30, 31, 60, 61, 90, 91, 120, 121]
        .into_iter()
        .enumerate()
    {
        let net = (to - issued).num_days() - n;
        let amount = (1u32 << i).to_string();
        invoice(&app, &t, aid, &amount, "2026-05-01", net);
    }
    // A US-dollar invoice, part credited, part paid in dollars.
    let usd = document(&app, &t, aid, "USD", "70.00", "2026-10-01", 30, None);
    document(&app, &t, aid, "USD", "20.00", "2026-10-02", 0, Some(usd));
    exec(
        &app,
        &t,
        &format!("UPDATE accounts SET currency = 'USD' WHERE id = {aid}"),
    );
    let p = pay(&app, &owner, &t, aid, "15.00", "2026-10-03").await;

    // Act
    let html = app
        .html(
            &owner,
            &statement_path(&t, aid, "", "2026-10-01", "2026-10-31"),
        )
        .await;

    // Assert: day 0 is current; 1 and 30 are 1–30; 31 and 60 are 31–60; and so on.
    assert_eq!(
        aging(&html, "EUR"),
        ["1.00", "6.00", "24.00", "96.00", "384.00", "512.00", "1,023.00"]
    );
    // Dollars: their own section, never added to euros.
    assert_eq!(
        aging(&html, "USD"),
        ["35.00", "0.00", "0.00", "0.00", "0.00", "0.00", "35.00"]
    );
    let rows = screen_rows(&html);
    let closing = |c: &str| {
        rows.iter()
            .find(|r| r.0 == c && r.1 == "closing_balance")
            .unwrap()
            .3
            .clone()
    };
    assert_eq!(closing("EUR"), "1023.00");
    assert_eq!(closing("USD"), "35.00");
    assert!(rows
        .iter()
        .any(|r| r.0 == "USD" && r.1 == "payment" && r.2 == p.to_string()));
    assert!(!rows.iter().any(|r| r.0 == "EUR" && r.1 == "payment"));
    assert!(
        !html.contains("1,058.00") && !html.contains("1,093.00"),
        "no cross-currency sum"
    );
    let csv = app
        .html(
            &owner,
            &statement_path(&t, aid, ".csv", "2026-10-01", "2026-10-31"),
        )
        .await;
    assert!(
        csv.contains("USD,2026-10-31,closing_balance,,,,,,,35.00"),
        "{csv}"
    );
    assert!(
        csv.contains("EUR,2026-10-31,closing_balance,,,,,,,1023.00"),
        "{csv}"
    );
}

#[tokio::test]
async fn the_statement_is_emailed_once_to_billing_contacts_with_its_pdf() {
    // Arrange: activity within the 90 days before today; a billing contact.
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = TestApp::spawn_with(|c| c.smtp_url = Some(url)).await;
    let owner = new_client();
    let t = app.signup(&owner, "stmail").await;
    let aid = put_account(&app, &t, "Müller & Söhne GmbH", None);
    let today = arbor::invoicing::handlers::today();
    let issued = (today - chrono::Days::new(10)).to_string();
    invoice(&app, &t, aid, "321.00", &issued, 30);
    exec(&app, &t, &format!("INSERT INTO contacts (account_id, name, email, roles) VALUES ({aid}, 'Anna AP', 'ap@mueller.example', '{{billing}}')"));
    let silent = put_account(&app, &t, "No Contact Ltd", None);
    let page = app
        .html(&owner, &format!("/t/{}/accounts/{aid}/statement", t.slug))
        .await;
    let key = page
        .split("name=\"key\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let send = format!("/t/{}/accounts/{aid}/statement/email", t.slug);

    // Act: the form is submitted twice (a double click).
    let first = app.post_form(&owner, &send, &[("key", &key)]).await;
    let second = app.post_form(&owner, &send, &[("key", &key)]).await;

    // Assert
    assert_eq!(first.status(), 200);
    assert!(first
        .text()
        .await
        .unwrap()
        .contains("queued for delivery to ap@mueller.example"));
    assert!(second.text().await.unwrap().contains("already queued"));
    assert!(
        app.eventually(Duration::from_secs(30), || !sink.messages().is_empty())
            .await,
        "statement email delivered"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "one email for a double submit");
    let raw = &messages[0];
    assert!(raw.contains("ap@mueller.example"));
    let (name, pdf) = attached_pdf(raw);
    assert!(
        name.starts_with("statement-") && name.ends_with(".pdf"),
        "{name:?}"
    );
    let text = pdf_text(&pdf);
    assert!(text.contains("Statement of account"), "{text}");
    assert!(text.contains("Müller & Söhne GmbH"), "{text}");
    assert!(text.contains("EUR 321.00"), "closing balance: {text}");
    assert!(audit_actions(&app, &t).contains(&"statement.emailed".to_owned()));

    // Without a billing contact nothing is queued and the page says why.
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/accounts/{silent}/statement/email", t.slug),
            &[],
        )
        .await;
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("No active contact of this account"));
}

#[tokio::test]
async fn bad_dates_are_422_and_only_visible_accounts_have_statements() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "stbad").await;
    let (sales, sales_id, _) = member(&app, &t, arbor::auth::Role::Sales).await;
    let aid = put_account(&app, &t, "Quiet Customer", None);
    let mine = put_account(&app, &t, "Sales Own Customer", Some(sales_id));
    let base = format!("/t/{}/accounts/{aid}/statement", t.slug);

    // A date that is no date, a reversed range and a future end are 422 with a message.
    let resp = app.get(&owner, &format!("{base}?from=2026-13-01")).await;
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("is not a date"));
    for suffix in [".csv", ".pdf"] {
        let status = app
            .status(
                &owner,
                &format!("/t/{}/accounts/{aid}/statement{suffix}?from=nope", t.slug),
            )
            .await;
        assert_eq!(status, 422, "{suffix}");
    }
    let resp = app
        .get(&owner, &format!("{base}?from=2026-05-02&to=2026-05-01"))
        .await;
    assert_eq!(resp.status(), 422);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("on or before the end date"));
    assert_eq!(
        app.status(&owner, &format!("{base}?to=2999-01-01")).await,
        422
    );

    // No activity: an empty state, no sections; htmx gets the partial alone.
    let html = app.html(&owner, &base).await;
    assert!(
        html.contains("No balance, activity or open invoices"),
        "{html}"
    );
    assert!(screen_rows(&html).is_empty());
    let partial = owner
        .get(app.url(&base))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        partial
            .trim_start()
            .starts_with("<section id=\"statement\">"),
        "{partial}"
    );

    // The account page links to the statement.
    let account = app
        .html(&owner, &format!("/t/{}/accounts/{aid}", t.slug))
        .await;
    assert!(account.contains(&format!("/accounts/{aid}/statement\"")));

    // Sales see statements of their own accounts only.
    assert_eq!(app.status(&sales, &base).await, 404);
    assert_eq!(
        app.status(&sales, &format!("/t/{}/accounts/{mine}/statement", t.slug))
            .await,
        200
    );
}
