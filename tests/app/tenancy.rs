use arbor::{
    db::{self, scope::in_tenant},
    email::message::OutgoingEmail,
    jobs::outbox,
};
use diesel::{sql_types::Text, QueryableByName, RunQueryDsl};

use crate::{
    access::RouteIds,
    helpers::{new_client, TestApp, TestTenant},
};

fn mail(subject: &str) -> serde_json::Value {
    serde_json::to_value(OutgoingEmail {
        to: vec!["ap@customer.example".into()],
        cc: vec![],
        subject: subject.into(),
        text: "body".into(),
        html: None,
        attachments: vec![],
        reply_to: None,
        sensitive: false,
        attach_invoice_pdf: None,
        attach_invoice_pdfs: Vec::new(),
        attach_statement: None,
    })
    .unwrap()
}

pub fn put_mail(app: &TestApp, t: &TestTenant, subject: &str) -> i64 {
    let mut c = app.conn();
    in_tenant(&mut c, &t.schema(), |c| {
        Ok(outbox::enqueue(c, t.id, outbox::KIND_EMAIL, &mail(subject), None)?.unwrap())
    })
    .unwrap()
}

#[derive(Debug, QueryableByName)]
struct Subject {
    #[diesel(sql_type = Text)]
    subject: String,
}

#[derive(QueryableByName)]
struct SearchPath {
    #[diesel(sql_type = Text)]
    search_path: String,
}

#[tokio::test]
async fn a_member_of_tenant_a_gets_404_on_every_url_of_tenant_b() {
    // Arrange
    let app = TestApp::spawn().await;
    let alice = new_client();
    let a = app.signup(&alice, "alpha").await;
    let bob = new_client();
    let b = app.signup(&bob, "bravo").await;
    let b_mail = put_mail(&app, &b, "Invoice for Bravo's customer");
    // Act / Assert
    for path in ["", "/", "/mail", "/members", &format!("/mail/{b_mail}")] {
        let r = app.get(&alice, &format!("/t/{}{path}", b.slug)).await;
        assert_eq!(r.status().as_u16(), 404, "GET /t/<b>{path}");
        assert!(
            !r.text().await.unwrap().contains("Bravo"),
            "no data of B leaks"
        );
    }
    let r = app
        .post_form(&alice, &format!("/t/{}/mail/{b_mail}/retry", b.slug), &[])
        .await;
    assert_eq!(r.status().as_u16(), 404);
    // B's email id does not resolve inside A's tenant either (ids are per schema).
    let r = app
        .get(&alice, &format!("/t/{}/mail/{b_mail}", a.slug))
        .await;
    assert_eq!(r.status().as_u16(), 404);
    // Bob sees his own.
    let r = app.get(&bob, &format!("/t/{}/mail/{b_mail}", b.slug)).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("Invoice for Bravo"));
    // Anonymous visitors are sent to sign in.
    let anon = new_client();
    let r = app.get(&anon, &format!("/t/{}", a.slug)).await;
    assert_eq!(r.status().as_u16(), 303);
}

#[tokio::test]
async fn one_pooled_connection_alternating_tenants_never_mixes_rows_and_ends_unscoped() {
    // Arrange: two tenants with distinct rows, and a pool of exactly one connection.
    let app = TestApp::spawn().await;
    let (ca, cb) = (new_client(), new_client());
    let a = app.signup(&ca, "one").await;
    let b = app.signup(&cb, "two").await;
    for i in 0..3 {
        put_mail(&app, &a, &format!("A-{i}"));
        put_mail(&app, &b, &format!("B-{i}"));
    }
    let pool = db::build_pool(&app.db_url, 1).unwrap();
    // Act / Assert
    for round in 0..10 {
        let (t, own, other) = if round % 2 == 0 {
            (&a, "A-", "B-")
        } else {
            (&b, "B-", "A-")
        };
        let mut conn = pool.get().unwrap();
        let subjects: Vec<String> = in_tenant(&mut conn, &t.schema(), |c| {
            Ok(
                diesel::sql_query("SELECT payload->>'subject' AS subject FROM outbox ORDER BY id")
                    .load::<Subject>(c)?,
            )
        })
        .unwrap()
        .into_iter()
        .map(|s| s.subject)
        .collect();
        assert_eq!(subjects.len(), 3);
        assert!(subjects.iter().all(|s| s.starts_with(own)), "{subjects:?}");
        assert!(!subjects.iter().any(|s| s.starts_with(other)));
        // After the transaction the connection is back to an empty search_path ...
        let sp: SearchPath =
            diesel::sql_query("SELECT current_setting('search_path') AS search_path")
                .get_result(&mut conn)
                .unwrap();
        assert_eq!(
            sp.search_path, "\"\"",
            "search_path after a tenant transaction"
        );
        // ... so an unscoped tenant query fails instead of reading some tenant.
        let err = diesel::sql_query("SELECT payload->>'subject' AS subject FROM outbox")
            .load::<Subject>(&mut conn)
            .unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
    // A failed tenant transaction also leaves no scope behind.
    let mut conn = pool.get().unwrap();
    let failed: Result<(), _> = in_tenant(&mut conn, &a.schema(), |c| {
        diesel::sql_query("SELECT no_such_column FROM outbox").execute(c)?;
        Ok(())
    });
    assert!(failed.is_err());
    let sp: SearchPath = diesel::sql_query("SELECT current_setting('search_path') AS search_path")
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(sp.search_path, "\"\"");
}

#[tokio::test]
async fn the_sent_mail_page_lists_only_this_tenants_mail() {
    let app = TestApp::spawn().await;
    let (ca, cb) = (new_client(), new_client());
    let a = app.signup(&ca, "mailer").await;
    let b = app.signup(&cb, "other").await;
    put_mail(&app, &a, "Your invoice INV-0001 from Mailer");
    put_mail(&app, &b, "Secret subject of Other");
    let html = app.html(&ca, &format!("/t/{}/mail", a.slug)).await;
    assert!(html.contains("Your invoice INV-0001 from Mailer"));
    assert!(!html.contains("Secret subject of Other"));
    // htmx requests get the partial only.
    let partial = ca
        .get(app.url(&format!("/t/{}/mail", a.slug)))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(partial.contains("id=\"mail\""));
    assert!(!partial.contains("<html"));
}

/// Everything tenant B holds, as one comparable figure per table (and the audit log, which
/// every write touches).
fn footprint(app: &TestApp, t: &TestTenant) -> Vec<i64> {
    [
        "audit_log",
        "accounts",
        "contacts",
        "invoices",
        "invoice_lines",
        "payments",
        "subscriptions",
        "products",
        "collections_tasks",
        "crm_connectors",
        "webhook_endpoints",
    ]
    .iter()
    .map(|table| crate::billing::one(app, t, &format!("SELECT count(*) AS id FROM {table}")))
    .collect()
}

#[tokio::test]
async fn every_route_with_tenant_b_ids_answers_a_member_of_tenant_a_with_404_and_changes_nothing() {
    // Arrange: B holds one record of every kind a route can name; Alice belongs to A only.
    let app = TestApp::spawn().await;
    let alice = new_client();
    let a = app.signup(&alice, "iso-a").await;
    let bob = new_client();
    let b = app.signup(&bob, "iso-b").await;
    let ids = RouteIds::seed(&app, &b).await;
    let before = footprint(&app, &b);
    let a_key = crate::api::create_key(&app, &alice, &a, "write").await;

    // Act / Assert: every route of the router, B's slug, B's ids.
    for route in arbor::web::routes::TENANT_ROUTES {
        let path = ids.fill(&b, route.path);
        let resp = if route.method == "get" {
            app.get(&alice, &path).await
        } else {
            app.post_form(&alice, &path, &[("legal_name", "Hijack"), ("amount", "1")])
                .await
        };
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, 404, "{} {path}", route.method);
        for secret in [
            "Route Test Ltd",
            "Route Contact",
            "route test",
            "Route product",
        ] {
            assert!(
                !body.contains(secret),
                "{} {path} leaks {secret}",
                route.method
            );
        }
    }
    // The API is scoped by key: A's key never reaches B's rows, whatever id it names.
    let b_account = ids.account_id().to_string();
    let api = reqwest::Client::new();
    for route in arbor::web::routes::API_ROUTES
        .iter()
        .filter(|r| r.path.contains("{id}"))
    {
        let url = app.url(&route.path.replace("{id}", &b_account));
        let resp = if route.method == "get" {
            api.get(url).bearer_auth(&a_key).send().await.unwrap()
        } else {
            api.post(url)
                .bearer_auth(&a_key)
                .json(&serde_json::json!({"name": "Hijack", "email": "x@y.example"}))
                .send()
                .await
                .unwrap()
        };
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert!(
            status == 404 || status == 422,
            "{} {} gave {status}",
            route.method,
            route.path
        );
        assert!(!body.contains("Route Test Ltd"), "{} leaks", route.path);
    }
    assert_eq!(footprint(&app, &b), before, "nothing of B changed");
}
