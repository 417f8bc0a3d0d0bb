//! The collections workspace and the dunning policy editor, through the real pages: policy
//! versions, the tasks inbox and its CSV, promises, pauses and disputes as the engine sees
//! them, and who may change what.

mod inbox;
mod policies;

use arbor::{db::scope::in_tenant, dunning::engine};
use chrono::{Duration, NaiveDate, Utc};

use crate::{
    accounts::{count, id_from, put_account},
    billing::{links, one},
    helpers::{audit_actions, new_client, TestApp, TestTenant},
};

/// Workers off: the test decides when dunning runs.
async fn quiet_app() -> TestApp {
    TestApp::spawn_with(|c| c.workers = 0).await
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// A finalized, unpaid EUR 100.00 invoice of `aid` due on `due`.
fn open_invoice(app: &TestApp, t: &TestTenant, aid: i64, number: &str, due: NaiveDate) -> i64 {
    let issued = due - Duration::days(30);
    one(
        app,
        t,
        &format!(
            "INSERT INTO invoices (account_id, bill_to_account_id, source, currency, issue_date, due_date, \
             terms_kind, terms_days, status, number, subtotal, total, amount_due, recipients, finalized_at) \
             VALUES ({aid}, {aid}, 'manual', 'EUR', '{issued}', '{due}', 'net', 30, 'open', '{number}', \
             100, 100, 100, '{{ap@customer.example}}', now()) RETURNING id"
        ),
    )
}

fn evaluate(app: &TestApp, t: &TestTenant, invoice: i64, on: NaiveDate) -> usize {
    let l = links(app, t);
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        engine::evaluate(c, &l, invoice, on)
    })
    .unwrap()
}

fn pinned_version(app: &TestApp, t: &TestTenant, invoice: i64) -> i64 {
    one(
        app,
        t,
        &format!(
            "SELECT policy_version_id AS id FROM invoice_dunning WHERE invoice_id = {invoice}"
        ),
    )
}

/// `(status, detail)` of one executed action of an invoice.
fn action(app: &TestApp, t: &TestTenant, invoice: i64, step: i32, code: &str) -> (String, String) {
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        use arbor::db::schema::tenant::dunning_actions as da;
        use diesel::prelude::*;
        Ok(da::table
            .filter(da::invoice_id.eq(invoice))
            .filter(da::step_no.eq(step))
            .filter(da::action.eq(code))
            .select((da::status, da::detail))
            .first::<(String, String)>(c)?)
    })
    .unwrap()
}

/// The task ids of an inbox page, top to bottom.
fn task_ids(html: &str) -> Vec<i64> {
    html.split("data-task=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next()?.parse().ok())
        .collect()
}

/// A two-step policy: a reminder the day after the due date, a team task five days after.
fn gentle_form(based_on: &str) -> Vec<(&'static str, String)> {
    vec![
        ("rows", "3".into()),
        ("based_on", based_on.into()),
        ("step0_offset", "1".into()),
        ("step0_reminder", "yes".into()),
        ("step0_subject", "Overdue: {{invoice_numbers}}".into()),
        ("step0_body", "Please pay {{total_overdue}}.".into()),
        ("step1_offset", "5".into()),
        ("step1_task_on", "yes".into()),
        ("step1_task_title", "Call the customer".into()),
        ("step1_task_assignee", "team".into()),
        ("step1_task_due", "2".into()),
        ("soft_days", "1,3".into()),
        ("retryable_hours", "1,4".into()),
    ]
}

async fn post(
    app: &TestApp,
    c: &reqwest::Client,
    path: &str,
    f: &[(&str, String)],
) -> reqwest::Response {
    let fields: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.post_form(c, path, &fields).await
}

/// Creates the gentle policy through the editor and assigns it to `aid`; returns its id.
async fn gentle_policy_for(
    app: &TestApp,
    owner: &reqwest::Client,
    t: &TestTenant,
    aid: i64,
) -> i64 {
    let base = format!("/t/{}", t.slug);
    let r = app
        .post_form(
            owner,
            &format!("{base}/settings/dunning"),
            &[("name", "Gentle"), ("from", "standard")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let pid = id_from(&r);
    let r = post(
        app,
        owner,
        &format!("{base}/settings/dunning/{pid}"),
        &gentle_form("1"),
    )
    .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let r = app
        .post_form(
            owner,
            &format!("{base}/accounts/{aid}/collections/policy"),
            &[("policy", &pid.to_string())],
        )
        .await;
    assert_eq!(r.status(), 303);
    pid
}

#[tokio::test]
async fn a_promise_to_pay_makes_dunning_skip_steps_until_its_date() {
    // Arrange: the gentle policy on an account with an invoice two days overdue.
    let app = quiet_app().await;
    let owner = new_client();
    let t = app.signup(&owner, "promise").await;
    let base = format!("/t/{}", t.slug);
    let aid = put_account(&app, &t, "Promising Ltd", None);
    gentle_policy_for(&app, &owner, &t, aid).await;
    let inv = open_invoice(&app, &t, aid, "P-1", today() - Duration::days(2));
    let promises = format!("{base}/accounts/{aid}/collections/promises");
    let yesterday = (today() - Duration::days(1)).to_string();
    let r = app
        .post_form(
            &owner,
            &promises,
            &[("promise_amount", "100"), ("promise_date", &yesterday)],
        )
        .await;
    assert_eq!(r.status(), 422, "a promise cannot be dated in the past");
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("A promise is for today or a later date."));
    assert_eq!(count(&app, &t, "promises_to_pay"), 0);

    // Act: promise to pay in five days, then run dunning today and after the date.
    let due = (today() + Duration::days(5)).to_string();
    let inv_s = inv.to_string();
    let r = app
        .post_form(
            &owner,
            &promises,
            &[
                ("promise_amount", "100"),
                ("promise_date", &due),
                ("promise_invoice", &inv_s),
                ("promise_note", "CFO approved"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    evaluate(&app, &t, inv, today());

    // Assert: today's step is recorded as skipped, and stays so; later steps run after the date.
    let (status, detail) = action(&app, &t, inv, 0, "reminder");
    assert_eq!(status, "skipped");
    assert!(detail.contains("Promise to pay by"), "{detail}");
    evaluate(&app, &t, inv, today() + Duration::days(6));
    assert_eq!(action(&app, &t, inv, 0, "reminder").0, "skipped");
    assert_eq!(action(&app, &t, inv, 1, "task").0, "done");
    assert_eq!(count(&app, &t, "collections_tasks"), 1);
    let tab = app
        .html(&owner, &format!("{base}/accounts/{aid}?tab=collections"))
        .await;
    assert!(
        tab.contains("Promised EUR 100.00 by") && tab.contains("CFO approved"),
        "{tab}"
    );
    assert!(tab.contains("Step 1: Reminder") && tab.contains("Gentle v2"));
    let page = app.html(&owner, &format!("{base}/invoices/{inv}")).await;
    assert!(
        page.contains("Collections timeline") && page.contains("Step 2: Task"),
        "{page}"
    );
    // An open promise can be canceled, once.
    let pid = one(&app, &t, "SELECT id FROM promises_to_pay");
    let cancel = format!("{base}/accounts/{aid}/collections/promises/{pid}/cancel");
    assert_eq!(app.post_form(&owner, &cancel, &[]).await.status(), 303);
    assert_eq!(app.post_form(&owner, &cancel, &[]).await.status(), 409);
    assert!(audit_actions(&app, &t).contains(&"collections.promise_canceled".to_string()));
}

#[tokio::test]
async fn a_pause_skips_steps_and_a_dispute_stops_dunning() {
    let app = quiet_app().await;
    let owner = new_client();
    let t = app.signup(&owner, "pause").await;
    let base = format!("/t/{}", t.slug);
    let paused = put_account(&app, &t, "Paused Ltd", None);
    gentle_policy_for(&app, &owner, &t, paused).await;
    let inv = open_invoice(&app, &t, paused, "Q-1", today() - Duration::days(2));
    let pause = format!("{base}/accounts/{paused}/collections/pause");
    let until = (today() + Duration::days(3)).to_string();

    // A pause without a reason changes nothing.
    let r = app
        .post_form(
            &owner,
            &pause,
            &[("action", "pause"), ("paused_until", &until)],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Say why dunning is paused."));
    assert_eq!(
        count(
            &app,
            &t,
            "account_collections WHERE paused_until IS NOT NULL"
        ),
        0
    );
    let r = app
        .post_form(
            &owner,
            &pause,
            &[
                ("action", "pause"),
                ("paused_until", &until),
                ("pause_reason", "Awaiting PO"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    evaluate(&app, &t, inv, today());
    let (status, detail) = action(&app, &t, inv, 0, "reminder");
    assert_eq!(status, "skipped");
    assert!(
        detail.contains("Dunning paused until") && detail.contains("Awaiting PO"),
        "{detail}"
    );
    assert_eq!(
        app.post_form(&owner, &pause, &[("action", "resume")])
            .await
            .status(),
        303
    );
    evaluate(&app, &t, inv, today() + Duration::days(4));
    assert_eq!(
        action(&app, &t, inv, 1, "task").0,
        "done",
        "resumed dunning runs the next step"
    );

    // A disputed invoice gets nothing until the dispute is cleared.
    let disputed = put_account(&app, &t, "Disputing Ltd", None);
    let inv = open_invoice(&app, &t, disputed, "Q-2", today() - Duration::days(2));
    let dispute = format!("{base}/invoices/{inv}/dispute");
    let r = app.post_form(&owner, &dispute, &[("action", "flag")]).await;
    assert_eq!(r.status(), 422);
    assert_eq!(count(&app, &t, "invoice_dunning WHERE disputed"), 0);
    let r = app
        .post_form(
            &owner,
            &dispute,
            &[("action", "flag"), ("reason", "Wrong quantity")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(evaluate(&app, &t, inv, today()), 0);
    assert_eq!(
        count(
            &app,
            &t,
            &format!("dunning_actions WHERE invoice_id = {inv}")
        ),
        0
    );
    let tab = app
        .html(
            &owner,
            &format!("{base}/accounts/{disputed}?tab=collections"),
        )
        .await;
    assert!(
        tab.contains("Disputed: no reminders, fees or charges") && tab.contains("Wrong quantity")
    );
    let r = app
        .post_form(
            &owner,
            &dispute,
            &[("action", "clear"), ("reason", "Credit agreed")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(evaluate(&app, &t, inv, today()) > 0);
    let actions = audit_actions(&app, &t);
    for a in [
        "collections.dunning_paused",
        "collections.dunning_resumed",
        "invoice.disputed",
        "invoice.dispute_cleared",
    ] {
        assert!(actions.contains(&a.to_string()), "{a} audited");
    }
}
