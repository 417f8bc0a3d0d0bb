//! A month of a finance team's work in Chromium: sign up, 2FA, invite, accounts, catalog,
//! subscription, bill run, finalize and email, a failed charge, dunning, a payment, aging + CSV.

use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use diesel::{sql_types::Date, QueryableByName, RunQueryDsl};
use rust_decimal::Decimal;
use serde_json::json;

use crate::{
    driver::{Browser, Driver},
    helpers::{SmtpSink, TestApp, PASSWORD},
};

/// The sandbox gateway declines this card (insufficient funds).
const DECLINED_CARD: &str = "4000 0000 0000 9995";

/// Raw messages of the sink sent to `to`, with quoted-printable soft breaks undone.
fn mail_to(sink: &SmtpSink, to: &str) -> Vec<String> {
    sink.messages()
        .into_iter()
        .map(|m| {
            m.replace("=\r\n", "")
                .replace("=\n", "")
                .replace("=3D", "=")
        })
        .filter(|m| m.contains(to))
        .collect()
}

async fn wait_for_mail(sink: &SmtpSink, to: &str, needle: &str) -> String {
    let start = Instant::now();
    loop {
        if let Some(m) = mail_to(sink, to).into_iter().find(|m| m.contains(needle)) {
            return m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "no mail to {to} containing {needle:?}; the sink holds {} message(s)",
            sink.messages().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The aging report's grand total, as the page shows it (`data-amount` of the total row).
async fn aging_total(b: &mut Browser, base: &str) -> Decimal {
    b.goto(&format!("{base}/reports/aging")).await;
    let v = b
        .client
        .execute(
            "const a = document.querySelectorAll(\"tr[data-row='total'] a[data-amount]\");
             return a.length ? a[a.length - 1].dataset.amount : '0';",
            vec![],
        )
        .await
        .expect("aging total");
    v.as_str().unwrap_or("0").parse().expect("a decimal total")
}

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = Date)]
    due: NaiveDate,
}

#[tokio::test]
async fn a_finance_team_bills_collects_and_reports_in_a_real_browser() {
    // Arrange: the app with its workers and a real SMTP sink, and a browser.
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = TestApp::spawn_with(|c| c.smtp_url = Some(smtp)).await;
    let driver = Driver::start().await;
    let mut b = driver.browser(&app.address, "journey").await;
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let slug = format!("br-{suffix}");
    let owner_email = format!("owner-{suffix}@browser.example");
    let base = format!("/t/{slug}");
    let today = Utc::now().date_naive();

    // Sign up.
    b.goto("/signup").await;
    b.fill("input[name=name]", "Olivia Owner").await;
    b.fill("input[name=email]", &owner_email).await;
    b.fill("input[name=password]", PASSWORD).await;
    b.fill("input[name=org_name]", "Browser Books Ltd").await;
    b.fill("input[name=slug]", &slug).await;
    b.click("form[action='/signup'] button[type=submit]").await;
    assert_eq!(b.path().await, base, "signed up into the new workspace");

    // Enroll 2FA, then sign out and back in with the second factor.
    b.goto("/account/security").await;
    b.click("form[action='/account/2fa/start'] button").await;
    let key = b.find("#manual-key").await.text().await.expect("key text");
    let code = arbor::auth::totp::current_code(&key).expect("a TOTP code");
    b.fill(
        "form[action='/account/2fa/confirm'] input[name=code]",
        &code,
    )
    .await;
    b.click("form[action='/account/2fa/confirm'] button").await;
    b.wait_for_text("Two-factor authentication is on", None)
        .await;
    let recovery = b
        .find("ul.recovery-codes code")
        .await
        .text()
        .await
        .expect("a recovery code");
    b.click("form[action='/logout'] button").await;
    b.goto("/login").await;
    b.fill("input[name=email]", &owner_email).await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("form[action='/login'] button[type=submit]").await;
    assert_eq!(
        b.path().await,
        "/login/2fa",
        "the password alone is not enough"
    );
    // The TOTP step just used is spent (replay protection); a recovery code signs in.
    b.fill("input[name=code]", &recovery).await;
    b.click("form[action='/login/2fa'] button[type=submit]")
        .await;
    assert!(b.path().await.starts_with(&base), "signed in with 2FA");

    // Invite a finance user; they accept from the emailed link in their own browser.
    let finance_email = format!("fiona-{suffix}@browser.example");
    b.goto(&format!("{base}/members")).await;
    b.fill(
        "form[action$='/members/invite'] input[name=email]",
        &finance_email,
    )
    .await;
    b.select(
        "form[action$='/members/invite'] select[name=role]",
        "finance",
    )
    .await;
    b.click("form[action$='/members/invite'] button[type=submit]")
        .await;
    b.wait_for_text(&finance_email, None).await;
    let invite = wait_for_mail(&sink, &finance_email, "/invite/").await;
    let at = invite.find("/invite/").expect("invite link") + "/invite/".len();
    let token: String = invite[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let mut fiona = driver.browser(&app.address, "journey-invitee").await;
    fiona.goto(&format!("/invite/{token}")).await;
    fiona.fill("input[name=name]", "Fiona Finance").await;
    fiona.fill("input[name=password]", PASSWORD).await;
    fiona
        .click("form[action^='/invite/'] button[type=submit]")
        .await;
    fiona.goto(&format!("{base}/invoices")).await;
    fiona.wait_for_text("Invoices", None).await;
    fiona.finish().await;
    b.goto(&format!("{base}/members")).await;
    b.wait_for_text("Fiona Finance", None).await;

    // An account with a child account that has its own billing contact.
    b.goto(&format!("{base}/accounts/new")).await;
    b.fill("input[name=legal_name]", "Northwind Holdings").await;
    b.click("form[action$='/accounts'] button[type=submit]")
        .await;
    let parent_path = b.path().await;
    let parent_number = b
        .find("#account hgroup p")
        .await
        .text()
        .await
        .expect("account number")
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    b.goto(&format!("{base}/accounts/new")).await;
    b.fill("input[name=legal_name]", "Northwind Europe").await;
    b.fill("input[name=parent]", &parent_number).await;
    b.click("form[action$='/accounts'] button[type=submit]")
        .await;
    let child_path = b.path().await;
    assert_ne!(child_path, parent_path);
    b.wait_for_text("Northwind Holdings", None).await; // the breadcrumb names the parent
    b.goto(&parent_path).await;
    b.wait_for_text("Northwind Europe", None).await; // the hierarchy lists the child
    let payer_email = format!("ap-{suffix}@northwind.example");
    b.goto(&format!("{child_path}?tab=contacts")).await;
    b.expand("form[action$='/contacts']").await;
    b.fill("form[action$='/contacts'] input[name=name]", "Nora AP")
        .await;
    b.fill("form[action$='/contacts'] input[name=email]", &payer_email)
        .await;
    for flag in ["receives_invoices", "receives_reminders"] {
        let e = b
            .find(&format!("form[action$='/contacts'] input[name={flag}]"))
            .await;
        if !e.is_selected().await.unwrap_or(false) {
            e.click().await.expect("tick");
        }
    }
    b.click("form[action$='/contacts'] button[type=submit]")
        .await;
    b.wait_for_text(&payer_email, None).await;

    // A card that the gateway will decline, not charged automatically.
    b.goto(&format!("{child_path}?tab=payments")).await;
    b.expand("form[action$='/payment-methods']").await;
    b.fill("input[name=card_number]", DECLINED_CARD).await;
    b.fill("input[name=expiry]", "12/30").await;
    b.click("input[name=auto_charge]").await;
    b.click("form[action$='/payment-methods'] button[type=submit]")
        .await;
    b.wait_for_text("9995", None).await;

    // A product with a monthly price, and a subscription from today.
    b.goto(&format!("{base}/catalog")).await;
    b.fill("input[name=sku]", "PLATFORM").await;
    b.fill("input[name=name]", "Platform licence").await;
    b.fill("input[name=gl_revenue_account]", "4000").await;
    b.click("form[action$='/catalog/products'] button[type=submit]")
        .await;
    b.fill("form[action$='/prices'] input[name=nickname]", "Monthly")
        .await;
    let currency = b
        .client
        .execute(
            "return document.querySelector(\"form[action$='/prices'] select[name=currency] option[value='USD']\") ? 'USD' : 'EUR';",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "USD".into());
    b.select("form[action$='/prices'] select[name=currency]", &currency)
        .await;
    b.select("form[action$='/prices'] select[name=model]", "flat")
        .await;
    b.fill("form[action$='/prices'] input[name=interval_months]", "1")
        .await;
    b.fill("form[action$='/prices'] input[name=amount]", "250.00")
        .await;
    b.click("form[action$='/prices'] button[type=submit]").await;
    b.wait_for_text("Monthly", None).await;
    b.goto(&format!("{child_path}/subscriptions/new")).await;
    b.fill("input[name=start_date]", &today.to_string()).await;
    let price_value = b
        .client
        .execute(
            "const o = document.querySelector('select[name=item0_price] option:not([value=\"\"])'); return o ? o.value : '';",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    assert!(!price_value.is_empty(), "the new price is offered");
    b.select("select[name=item0_price]", &price_value).await;
    b.fill("input[name=item0_quantity]", "2").await;
    b.click("form[action$='/subscriptions'] button[type=submit]")
        .await;
    b.wait_for_text("SUB-", None).await;

    // The bill run creates the first invoice as a draft.
    b.goto(&format!("{base}/billing/runs")).await;
    b.click("form[action$='/billing/runs'] button[type=submit]")
        .await;
    let run_path = b.path().await;
    b.wait_for_text("done", Some(&run_path)).await;
    b.goto(&format!("{base}/invoices?status=draft")).await;
    b.click("table a[href*='/invoices/']").await;
    let invoice_path = b.path().await;

    // Finalize and email it; the customer's mailbox gets it.
    b.click("form[action$='/finalize'] button").await;
    let text = b.wait_for_text("INV-", None).await;
    let number = text
        .split_whitespace()
        .find(|w| w.starts_with("INV-"))
        .expect("an invoice number")
        .trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-')
        .to_owned();
    b.click("form[action$='/send'] button").await;
    wait_for_mail(&sink, &payer_email, &number).await;

    // Charging the declined card records a failed payment.
    b.goto(&invoice_path).await;
    b.click("form[action$='/charge'] button").await;
    b.goto(&format!("{child_path}?tab=payments")).await;
    b.wait_for_text("Declined", Some(&format!("{child_path}?tab=payments")))
        .await;

    // Fifteen days after the due date the daily dunning run (queued here as the scheduler
    // queues it that day) reminds the customer and opens a task for a person.
    let (tenant_id, schema) = arbor::tenants::repo::find_id_by_slug(&mut app.conn(), &slug)
        .expect("tenant lookup")
        .expect("tenant");
    let schema = arbor::db::scope::TenantSchema::parse(&schema).expect("schema");
    let due = arbor::db::scope::in_tenant(&mut app.conn(), &schema, |c| {
        Ok(diesel::sql_query(format!(
            "SELECT due_date AS due FROM invoices WHERE number = '{number}'"
        ))
        .get_result::<Due>(c)?)
    })
    .expect("due date")
    .due;
    let dunning_day = due.checked_add_days(Days::new(15)).expect("a date");
    let job = arbor::jobs::queue::NewJob::new(
        arbor::jobs::kinds::DUNNING_RUN,
        Some(tenant_id),
        json!({ "date": dunning_day }),
    );
    arbor::jobs::queue::enqueue(&mut app.conn(), &job).expect("dunning queued");
    app.state.wakeup.notify();
    wait_for_mail(&sink, &payer_email, "overdue").await;
    let inbox = format!("{base}/collections?who=all");
    b.goto(&inbox).await;
    b.wait_for_text("Call the customer", Some(&inbox)).await;

    // A payment recorded by hand lowers what the aging report shows, and its CSV agrees.
    let before = aging_total(&mut b, &base).await;
    assert!(before > Decimal::ZERO, "the open invoice is aged: {before}");
    b.goto(&format!("{child_path}?tab=payments")).await;
    b.select("form[action$='/payments'] select[name=method]", "wire")
        .await;
    b.fill(
        "form[action$='/payments'] input[name=received_on]",
        &today.to_string(),
    )
    .await;
    b.fill("form[action$='/payments'] input[name=amount]", "100.00")
        .await;
    b.fill("form[action$='/payments'] input[name=reference]", "WIRE-77")
        .await;
    b.click("form[action$='/payments'] button[type=submit]")
        .await;
    b.wait_for_text("WIRE-77", None).await;
    let after = aging_total(&mut b, &base).await;
    assert_eq!(
        after,
        before - Decimal::new(10000, 2),
        "aging fell by the payment"
    );
    let csv_href = b
        .find("#aging a[download]")
        .await
        .attr("href")
        .await
        .expect("href")
        .expect("a CSV link");
    let (status, content_type, body) = b.download(&csv_href).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert!(body.contains("Northwind"), "{body}");
    assert!(
        body.contains(&after.to_string()),
        "CSV total {after}: {body}"
    );

    b.finish().await;
}
