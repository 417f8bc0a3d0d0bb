use std::time::Duration;

use arbor::{
    db::scope::in_tenant,
    email::message::{Attachment, OutgoingEmail},
    jobs::outbox,
};
use diesel::{sql_types::BigInt, QueryableByName, RunQueryDsl};

use crate::helpers::{new_client, SmtpSink, TestApp, TestTenant};

#[derive(QueryableByName)]
struct Status {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    last_error: Option<String>,
}

fn status(app: &TestApp, t: &TestTenant, id: i64) -> Status {
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(
            diesel::sql_query("SELECT status, attempts, last_error FROM outbox WHERE id = $1")
                .bind::<BigInt, _>(id)
                .get_result(c)?,
        )
    })
    .unwrap()
}

fn enqueue(app: &TestApp, t: &TestTenant, mail: &OutgoingEmail) -> i64 {
    let payload = serde_json::to_value(mail).unwrap();
    let id = in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(outbox::enqueue(c, t.id, outbox::KIND_EMAIL, &payload, None)?.unwrap())
    })
    .unwrap();
    app.state.wakeup.notify();
    id
}

fn invoice_mail() -> OutgoingEmail {
    OutgoingEmail {
        to: vec!["ap@zoë-gmbh.example".replace('ë', "e")],
        cc: vec![],
        subject: "Rechnung INV-0042 von Müller & Söhne".into(),
        text: "Guten Tag,\n\nanbei Ihre Rechnung.\n".into(),
        html: None,
        attachments: vec![Attachment {
            filename: "INV-0042.pdf".into(),
            content_type: "application/pdf".into(),
            data_base64: "JVBERi0xLjQKJcOkw7zDtsOfCg==".into(),
        }],
        reply_to: None,
        sensitive: false,
        attach_invoice_pdf: None,
        attach_invoice_pdfs: Vec::new(),
        attach_statement: None,
    }
}

#[tokio::test]
async fn outbox_email_is_delivered_once_through_real_smtp_with_attachment() {
    // Arrange
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = TestApp::spawn_with(|c| c.smtp_url = Some(url)).await;
    let t = app.signup(&new_client(), "smtp").await;
    // Act
    let id = enqueue(&app, &t, &invoice_mail());
    // Assert
    assert!(
        app.eventually(Duration::from_secs(20), || status(&app, &t, id).status
            == "delivered")
            .await,
        "delivered"
    );
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1, "exactly one message");
    let m = &msgs[0];
    assert!(m.contains("ap@zoe-gmbh.example"));
    assert!(m.contains("INV-0042.pdf"), "attachment present");
    assert!(
        m.contains(&format!("outbox-{}-{id}@", t.id)),
        "stable Message-ID"
    );
    assert!(
        m.contains("Subject: =?utf-8?") || m.contains("Rechnung INV-0042"),
        "subject encoded"
    );
    // Running the delivery job again (a duplicate) sends nothing more.
    let mut j = arbor::jobs::queue::NewJob::new(
        arbor::jobs::kinds::OUTBOX_DELIVER,
        Some(t.id),
        serde_json::json!({ "outbox_id": id }),
    );
    j.dedupe_key = Some("duplicate".into());
    arbor::jobs::queue::enqueue(&mut app.conn(), &j).unwrap();
    app.state.wakeup.notify();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(status(&app, &t, id).attempts, 1);
}

#[tokio::test]
async fn smtp_outage_is_retried_and_the_email_arrives_once_after_recovery() {
    // Arrange: a sink that is down when the email is queued.
    let mut sink = SmtpSink::start().await;
    sink.stop();
    let url = sink.url();
    let app = TestApp::spawn_with(|c| c.smtp_url = Some(url)).await;
    let t = app.signup(&new_client(), "outage").await;
    // Act
    let id = enqueue(&app, &t, &invoice_mail());
    assert!(
        app.eventually(Duration::from_secs(20), || status(&app, &t, id).status
            == "retrying")
            .await
    );
    let s = status(&app, &t, id);
    assert!(
        s.last_error.unwrap_or_default().contains("SMTP"),
        "the failure is recorded"
    );
    sink.restart().await;
    // Assert
    assert!(
        app.eventually(Duration::from_secs(30), || status(&app, &t, id).status
            == "delivered")
            .await,
        "delivered after recovery"
    );
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn without_smtp_emails_are_captured_and_shown_on_the_sent_mail_page() {
    let app = TestApp::spawn().await;
    let c = new_client();
    let t = app.signup(&c, "capture").await;
    let id = enqueue(&app, &t, &invoice_mail());
    assert!(
        app.eventually(Duration::from_secs(20), || status(&app, &t, id).status
            == "captured")
            .await
    );
    let html = app.html(&c, &format!("/t/{}/mail/{id}", t.slug)).await;
    assert!(
        html.contains("Rechnung INV-0042 von Müller &amp; Söhne")
            || html.contains("Rechnung INV-0042 von Müller &#38; Söhne"),
        "escaped subject shown"
    );
    assert!(html.contains("INV-0042.pdf"));
    let list = app
        .html(&c, &format!("/t/{}/mail?status=captured", t.slug))
        .await;
    assert!(list.contains(&format!("/mail/{id}")));
}

#[tokio::test]
async fn malformed_recipient_goes_dead_and_an_owner_can_send_it_again() {
    let app = TestApp::spawn().await;
    let c = new_client();
    let t = app.signup(&c, "dead").await;
    let mut mail = invoice_mail();
    mail.to = vec!["not an address".into()];
    let id = enqueue(&app, &t, &mail);
    // Without SMTP the build still validates recipients, and the failure is retried until dead;
    // with a 100 ms base the 10 attempts take a while, so push it over the edge directly.
    assert!(
        app.eventually(Duration::from_secs(20), || status(&app, &t, id).attempts
            >= 1)
            .await
    );
    diesel::sql_query("UPDATE control.jobs SET attempts = max_attempts - 1, run_at = now() WHERE tenant_id = $1 AND status = 'queued'")
        .bind::<BigInt, _>(t.id)
        .execute(&mut app.conn())
        .unwrap();
    app.state.wakeup.notify();
    assert!(
        app.eventually(Duration::from_secs(20), || status(&app, &t, id).status
            == "dead")
            .await
    );
    let page = app.html(&c, &format!("/t/{}/mail/{id}", t.slug)).await;
    assert!(page.contains("Send again"));
    let r = app
        .post_form(&c, &format!("/t/{}/mail/{id}/retry", t.slug), &[])
        .await;
    assert_eq!(r.status().as_u16(), 303);
    assert!(
        app.eventually(Duration::from_secs(20), || status(&app, &t, id).attempts
            >= 2)
            .await,
        "a new attempt ran"
    );
}
