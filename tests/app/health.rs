use diesel::{sql_types::BigInt, RunQueryDsl};

use crate::helpers::{new_client, TestApp};

#[tokio::test]
async fn healthz_and_readyz_report_ok() {
    let app = TestApp::spawn().await;
    let c = new_client();
    let r = app.get(&c, "/healthz").await;
    assert_eq!(r.status().as_u16(), 200);
    let r = app.get(&c, "/readyz").await;
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["migrations"], "current");
}

#[tokio::test]
async fn readyz_and_tenant_pages_refuse_a_tenant_whose_schema_is_behind() {
    // Arrange
    let app = TestApp::spawn().await;
    let c = new_client();
    let t = app.signup(&c, "behind").await;
    diesel::sql_query("UPDATE control.tenants SET schema_version = '00000000000000' WHERE id = $1")
        .bind::<BigInt, _>(t.id)
        .execute(&mut app.conn())
        .unwrap();
    // Act
    let ready = app.get(&c, "/readyz").await;
    let page = app.get(&c, &format!("/t/{}", t.slug)).await;
    // Assert
    assert_eq!(ready.status().as_u16(), 503);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["tenants_behind"],
        1
    );
    assert_eq!(page.status().as_u16(), 503);
    assert!(page.headers().contains_key("retry-after"));
    // `arbor migrate` brings it back.
    arbor::db::migrate::migrate_all(&mut app.conn()).unwrap();
    assert_eq!(app.status(&c, &format!("/t/{}", t.slug)).await, 200);
    assert_eq!(app.status(&c, "/readyz").await, 200);
}

#[tokio::test]
async fn every_response_carries_security_headers_and_unknown_routes_get_the_404_page() {
    let app = TestApp::spawn().await;
    let c = new_client();
    let r = app.get(&c, "/no/such/page").await;
    assert_eq!(r.status().as_u16(), 404);
    let h = r.headers().clone();
    let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
    assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
    let body = r.text().await.unwrap();
    assert!(body.contains("Page not found"), "{body}");
}

#[tokio::test]
async fn static_assets_are_served() {
    let app = TestApp::spawn().await;
    let c = new_client();
    for path in [
        "/static/vendor/htmx-2.0.11.min.js",
        "/static/vendor/pico-2.1.1.min.css",
        "/static/css/app.css",
    ] {
        let r = app.get(&c, path).await;
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert!(r.bytes().await.unwrap().len() > 100, "{path}");
    }
}
