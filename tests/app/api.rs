//! The JSON API: keys from the settings page, scopes, revocation, pagination, idempotency,
//! tenant isolation and the OpenAPI document.

use reqwest::{Client, Response};
use serde_json::{json, Value};

use crate::helpers::{audit_actions, new_client, TestApp, TestTenant};

/// Creates a key through Settings → API keys and returns the token shown once.
pub async fn create_key(app: &TestApp, owner: &Client, t: &TestTenant, scope: &str) -> String {
    let resp = app
        .post_form(
            owner,
            &format!("/t/{}/settings/api-keys", t.slug),
            &[("name", &format!("{scope} key")), ("scope", scope)],
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let html = resp.text().await.unwrap();
    let start = html.find("id=\"new-api-key\">").expect("token shown") + 17;
    let end = start + html[start..].find('<').unwrap();
    html[start..end].to_owned()
}

async fn api_get(app: &TestApp, token: &str, path: &str) -> Response {
    Client::new()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn api_post(
    app: &TestApp,
    token: &str,
    path: &str,
    key: Option<&str>,
    body: &Value,
) -> Response {
    let mut r = Client::new()
        .post(app.url(path))
        .bearer_auth(token)
        .json(body);
    if let Some(k) = key {
        r = r.header("Idempotency-Key", k);
    }
    r.send().await.unwrap()
}

async fn status_and_json(resp: Response) -> (u16, Value) {
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap())
}

#[tokio::test]
async fn keys_have_scopes_pages_and_can_be_revoked() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "api-keys").await;
    let write = create_key(&app, &owner, &t, "write").await;
    let read = create_key(&app, &owner, &t, "read").await;
    assert!(write.starts_with(&format!("arb_{}_", t.slug)));

    // No key, a wrong secret: 401 JSON.
    let (s, body) = status_and_json(
        Client::new()
            .get(app.url("/api/v1/accounts"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, body["error"]["type"].as_str()),
        (401, Some("unauthorized"))
    );
    let wrong = format!("{}0", &write[..write.len() - 1]);
    let wrong = if wrong == write {
        format!("{}1", &write[..write.len() - 1])
    } else {
        wrong
    };
    assert_eq!(
        api_get(&app, &wrong, "/api/v1/accounts")
            .await
            .status()
            .as_u16(),
        401
    );

    // Write key creates; read key may list but not create.
    let mut ids = Vec::new();
    for name in ["Alpha Ltd", "Beta Ltd", "Gamma Ltd"] {
        let (s, body) = status_and_json(
            api_post(
                &app,
                &write,
                "/api/v1/accounts",
                None,
                &json!({ "legal_name": name }),
            )
            .await,
        )
        .await;
        assert_eq!(s, 201, "{body}");
        assert_eq!(body["legal_name"], json!(name));
        ids.push(body["id"].as_i64().unwrap());
    }
    let (s, body) = status_and_json(
        api_post(
            &app,
            &read,
            "/api/v1/accounts",
            None,
            &json!({ "legal_name": "Nope" }),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, body["error"]["type"].as_str()),
        (403, Some("forbidden"))
    );

    // Pagination by cursor.
    let (s, page1) = status_and_json(api_get(&app, &read, "/api/v1/accounts?limit=2").await).await;
    assert_eq!(s, 200);
    let got: Vec<i64> = page1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, ids[..2]);
    assert_eq!(page1["has_more"], json!(true));
    let (_, page2) = status_and_json(
        api_get(
            &app,
            &read,
            &format!("/api/v1/accounts?limit=2&starting_after={}", ids[1]),
        )
        .await,
    )
    .await;
    let got: Vec<i64> = page2["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, ids[2..]);
    assert_eq!(page2["has_more"], json!(false));
    let (s, one) =
        status_and_json(api_get(&app, &read, &format!("/api/v1/accounts/{}", ids[0])).await).await;
    assert_eq!((s, one["display_name"].as_str()), (200, Some("Alpha Ltd")));

    // Validation errors name the field.
    let (s, body) = status_and_json(
        api_post(
            &app,
            &write,
            "/api/v1/accounts",
            None,
            &json!({ "display_name": "No legal name" }),
        )
        .await,
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(body["error"]["type"], json!("validation"));
    assert!(body["error"]["fields"]["legal_name"].is_string(), "{body}");

    // Revoking the read key locks it out at once; the page lists it as revoked.
    let page = app
        .html(&owner, &format!("/t/{}/settings/api-keys", t.slug))
        .await;
    assert!(!page.contains(&read), "tokens are shown only once");
    let read_id: i64 = {
        use diesel::{sql_types::BigInt, QueryableByName, RunQueryDsl};
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = BigInt)]
            id: i64,
        }
        let prefix = arbor::api::auth::parse(&read).unwrap().1.to_owned();
        arbor::db::scope::in_tenant(&mut app.conn(), &t.schema(), |c| {
            Ok(
                diesel::sql_query(format!("SELECT id FROM api_keys WHERE prefix = '{prefix}'"))
                    .get_result::<Id>(c)?,
            )
        })
        .unwrap()
        .id
    };
    let resp = app
        .post_form(
            &owner,
            &format!("/t/{}/settings/api-keys/revoke", t.slug),
            &[("id", &read_id.to_string())],
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await.unwrap().contains("revoked"));
    assert_eq!(
        api_get(&app, &read, "/api/v1/accounts")
            .await
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        api_get(&app, &write, "/api/v1/accounts")
            .await
            .status()
            .as_u16(),
        200
    );
    let actions = audit_actions(&app, &t);
    assert!(actions.iter().any(|a| a == "api_key.created"));
    assert!(actions.iter().any(|a| a == "api_key.revoked"));
    assert!(actions.iter().filter(|a| *a == "account.created").count() >= 3);
}

#[tokio::test]
async fn idempotency_key_replays_and_rejects_a_different_body() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "api-idem").await;
    let key = create_key(&app, &owner, &t, "write").await;
    let body = json!({ "legal_name": "Idem GmbH", "terms_days": 45 });

    let (s1, b1) =
        status_and_json(api_post(&app, &key, "/api/v1/accounts", Some("k-1"), &body).await).await;
    let (s2, b2) =
        status_and_json(api_post(&app, &key, "/api/v1/accounts", Some("k-1"), &body).await).await;
    assert_eq!(s1, 201, "{b1}");
    assert_eq!((s1, &b1), (s2, &b2), "the repeat gets the stored response");
    let (_, list) = status_and_json(api_get(&app, &key, "/api/v1/accounts").await).await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "one account only"
    );

    let (s, err) = status_and_json(
        api_post(
            &app,
            &key,
            "/api/v1/accounts",
            Some("k-1"),
            &json!({ "legal_name": "Other" }),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, err["error"]["type"].as_str()),
        (422, Some("idempotency_mismatch"))
    );

    // A failed request is not stored: the key can be reused with a corrected body.
    let (s, _) =
        status_and_json(api_post(&app, &key, "/api/v1/accounts", Some("k-2"), &json!({})).await)
            .await;
    assert_eq!(s, 422);
    let (s, b) = status_and_json(
        api_post(
            &app,
            &key,
            "/api/v1/accounts",
            Some("k-2"),
            &json!({ "legal_name": "Fixed Inc" }),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{b}");
}

#[tokio::test]
async fn a_key_only_sees_its_own_tenant() {
    let app = TestApp::spawn().await;
    let (oa, ob) = (new_client(), new_client());
    let ta = app.signup(&oa, "api-a").await;
    let tb = app.signup(&ob, "api-b").await;
    let ka = create_key(&app, &oa, &ta, "write").await;
    let kb = create_key(&app, &ob, &tb, "write").await;
    let (_, acc) = status_and_json(
        api_post(
            &app,
            &ka,
            "/api/v1/accounts",
            None,
            &json!({ "legal_name": "Secret A" }),
        )
        .await,
    )
    .await;
    let id = acc["id"].as_i64().unwrap();

    let contact = crate::billing::one(
        &app,
        &ta,
        &format!("INSERT INTO contacts (account_id, name, email, roles) VALUES ({id}, 'Ann Payable', 'ann@a.example', '{{billing}}') RETURNING id"),
    );
    let (s, cl) =
        status_and_json(api_get(&app, &ka, &format!("/api/v1/accounts/{id}/contacts")).await).await;
    assert_eq!(s, 200, "{cl}");
    assert_eq!(cl["data"][0]["id"], json!(contact));
    assert_eq!(cl["data"][0]["roles"], json!(["billing"]));
    let (s, _) =
        status_and_json(api_get(&app, &kb, &format!("/api/v1/accounts/{id}/contacts")).await).await;
    assert_eq!(s, 404);

    let (s, body) =
        status_and_json(api_get(&app, &kb, &format!("/api/v1/accounts/{id}")).await).await;
    assert_eq!(
        (s, body["error"]["type"].as_str()),
        (404, Some("not_found"))
    );
    let (_, list) = status_and_json(api_get(&app, &kb, "/api/v1/accounts").await).await;
    assert!(list["data"].as_array().unwrap().is_empty());
    // B's slug with A's prefix and secret: the key is not in B's schema.
    let forged = ka.replacen(&ta.slug, &tb.slug, 1);
    assert_eq!(
        api_get(&app, &forged, "/api/v1/accounts")
            .await
            .status()
            .as_u16(),
        401
    );
}

#[tokio::test]
async fn openapi_describes_every_api_route() {
    let app = TestApp::spawn().await;
    let doc: Value = Client::new()
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], json!("3.1.0"));
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    for route in arbor::web::routes::API_ROUTES {
        assert!(
            doc["paths"][route.path][route.method].is_object(),
            "{} {} missing from openapi.json",
            route.method,
            route.path
        );
    }
}

#[tokio::test]
async fn billing_lists_filter_and_stay_in_tenant() {
    let app = TestApp::spawn().await;
    let (oa, ob) = (new_client(), new_client());
    let ta = app.signup(&oa, "api-bill-a").await;
    let tb = app.signup(&ob, "api-bill-b").await;
    let ka = create_key(&app, &oa, &ta, "read").await;
    let kb = create_key(&app, &ob, &tb, "read").await;
    let aid = crate::accounts::put_account(&app, &ta, "Billed Ltd", None);
    let b = crate::access::seed_billing_records(&app, &ta, aid);

    let (s, list) = status_and_json(
        api_get(
            &app,
            &ka,
            &format!("/api/v1/invoices?account_id={aid}&status=draft"),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{list}");
    let ids: Vec<i64> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert!(ids.contains(&b.invoice), "{list}");
    let (_, none) = status_and_json(api_get(&app, &ka, "/api/v1/invoices?status=paid").await).await;
    assert!(!none["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["id"] == json!(b.invoice)));
    let (s, inv) =
        status_and_json(api_get(&app, &ka, &format!("/api/v1/invoices/{}", b.invoice)).await).await;
    assert_eq!(s, 200);
    assert!(inv["total"].is_string(), "money is a string: {inv}");
    let (_, pays) = status_and_json(api_get(&app, &ka, "/api/v1/payments").await).await;
    assert!(pays["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["id"] == json!(b.payment)));
    let (_, subs) = status_and_json(api_get(&app, &ka, "/api/v1/subscriptions").await).await;
    assert!(subs["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["id"] == json!(b.subscription)));

    // Tenant B sees none of it.
    let (s, _) =
        status_and_json(api_get(&app, &kb, &format!("/api/v1/invoices/{}", b.invoice)).await).await;
    assert_eq!(s, 404);
    for path in [
        "/api/v1/invoices",
        "/api/v1/payments",
        "/api/v1/subscriptions",
    ] {
        let (_, l) = status_and_json(api_get(&app, &kb, path).await).await;
        assert!(l["data"].as_array().unwrap().is_empty(), "{path}: {l}");
    }
}

#[tokio::test]
async fn usage_records_are_validated_and_idempotent_by_external_id() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "api-usage").await;
    let key = create_key(&app, &owner, &t, "write").await;
    let aid = crate::accounts::put_account(&app, &t, "Metered Ltd", None);
    let b = crate::access::seed_billing_records(&app, &t, aid);
    let item = crate::billing::one(
        &app,
        &t,
        &format!(
            "SELECT id FROM subscription_items WHERE subscription_id = {} LIMIT 1",
            b.subscription
        ),
    );
    let body = json!({
        "subscription_id": b.subscription, "subscription_item_id": item,
        "quantity": "12.5", "usage_date": "2026-02-03", "external_id": "evt-1",
    });
    let (s, rec) =
        status_and_json(api_post(&app, &key, "/api/v1/usage_records", None, &body).await).await;
    assert_eq!(s, 201, "{rec}");
    assert_eq!(
        (rec["quantity"].as_str(), rec["source"].as_str()),
        (Some("12.5"), Some("api"))
    );
    // Resent without an Idempotency-Key: the external id keeps it single.
    let (s, again) =
        status_and_json(api_post(&app, &key, "/api/v1/usage_records", None, &body).await).await;
    assert_eq!((s, &again["id"]), (200, &rec["id"]));
    let n = crate::billing::one(
        &app,
        &t,
        "SELECT count(*)::bigint AS id FROM usage_records WHERE external_id = 'evt-1'",
    );
    assert_eq!(n, 1);

    let (s, err) = status_and_json(
        api_post(
            &app,
            &key,
            "/api/v1/usage_records",
            None,
            &json!({ "subscription_id": b.subscription, "subscription_item_id": item, "quantity": "-1" }),
        )
        .await,
    )
    .await;
    assert_eq!(s, 422);
    assert!(err["error"]["fields"]["quantity"].is_string(), "{err}");
    assert!(err["error"]["fields"]["external_id"].is_string(), "{err}");
    let (s, _) = status_and_json(
        api_post(
            &app,
            &key,
            "/api/v1/usage_records",
            None,
            &json!({ "subscription_id": b.subscription + 999, "subscription_item_id": item, "quantity": "1", "external_id": "evt-2" }),
        )
        .await,
    )
    .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn contacts_and_subscriptions_are_created_with_form_rules_and_idempotency() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "api-writes").await;
    let write = create_key(&app, &owner, &t, "write").await;
    let read = create_key(&app, &owner, &t, "read").await;
    let aid = crate::accounts::put_account(&app, &t, "Written GmbH", None);
    let (_, price) = crate::billing::product_with_price(
        &app,
        &owner,
        &t,
        "SEAT",
        &[("model", "per_unit"), ("unit_amount", "20")],
    )
    .await;

    // Contacts: bad email is 422 by field; a read key is 403; the same key twice is one contact.
    let (s, v) = status_and_json(
        api_post(
            &app,
            &write,
            &format!("/api/v1/accounts/{aid}/contacts"),
            None,
            &json!({"name": "Ana", "email": "not-an-email"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"]["fields"]["email"].is_string(), "{v}");
    let (s, _) = status_and_json(
        api_post(
            &app,
            &read,
            &format!("/api/v1/accounts/{aid}/contacts"),
            None,
            &json!({"name": "Ana"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 403);
    let body = json!({"name": "Ana Ruiz", "email": "ana@written.example", "roles": "billing", "receives_invoices": true});
    let (s, first) = status_and_json(
        api_post(
            &app,
            &write,
            &format!("/api/v1/accounts/{aid}/contacts"),
            Some("c-1"),
            &body,
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{first}");
    let (s, again) = status_and_json(
        api_post(
            &app,
            &write,
            &format!("/api/v1/accounts/{aid}/contacts"),
            Some("c-1"),
            &body,
        )
        .await,
    )
    .await;
    assert_eq!((s, &again), (201, &first));
    assert_eq!(
        crate::billing::one(
            &app,
            &t,
            &format!("SELECT count(*) AS id FROM contacts WHERE account_id = {aid}")
        ),
        1
    );
    let (s, _) = status_and_json(
        api_post(
            &app,
            &write,
            "/api/v1/accounts/999999/contacts",
            None,
            &json!({"name": "X"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 404);

    // Subscriptions: items are required; a price in another currency is refused by field.
    let (s, v) = status_and_json(
        api_post(
            &app,
            &write,
            "/api/v1/subscriptions",
            None,
            &json!({"account_id": aid, "cycle": "1", "term_months": 12}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 422, "{v}");
    let body = json!({"account_id": aid, "start_date": "2026-04-01", "cycle": "1", "term_months": 12, "auto_renew": true,
                      "po_number": "PO-API", "items": [{"price_id": price, "quantity": "5", "discount": "10%"}]});
    let (s, sub) =
        status_and_json(api_post(&app, &write, "/api/v1/subscriptions", Some("s-1"), &body).await)
            .await;
    assert_eq!(s, 201, "{sub}");
    assert_eq!(sub["account_id"], aid);
    assert_eq!(sub["po_number"], "PO-API");
    let (s, _) = status_and_json(
        api_post(
            &app,
            &write,
            "/api/v1/subscriptions",
            Some("s-1"),
            &json!({"account_id": aid}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 422, "same key, different body");
    assert_eq!(crate::billing::one(&app, &t, &format!("SELECT count(*) AS id FROM subscription_items WHERE quantity = 5 AND discount_percent = 10 AND subscription_id = {}", sub["id"])), 1);
}
