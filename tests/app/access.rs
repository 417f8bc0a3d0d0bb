//! Route × role: every tenant route, requested by every role, is allowed exactly when the
//! permission matrix says so (403 otherwise, never 500).

use arbor::auth::{
    permissions::{allows, Permission},
    Role,
};

use crate::{
    helpers::{member, new_client, TestApp, TestTenant},
    tenancy::put_mail,
};

#[tokio::test]
async fn every_tenant_route_for_every_role_matches_the_permission_matrix() {
    let app = TestApp::spawn().await;
    let mut checked = 0;
    for role in Role::ALL {
        // Arrange: a tenant per role so one role's writes cannot affect another's checks.
        let owner = new_client();
        let t = app.signup(&owner, &format!("rr-{}", role.as_str())).await;
        let ids = RouteIds::seed(&app, &t).await;
        let client = if role == Role::Owner {
            owner
        } else {
            member(&app, &t, role).await.0
        };
        for route in arbor::web::routes::TENANT_ROUTES {
            let path = ids.fill(&t, route.path);
            // Act
            let resp = if route.method == "get" {
                app.get(&client, &path).await
            } else {
                app.post_form(
                    &client,
                    &path,
                    &[("role", "sales"), ("email", "new@person.example")],
                )
                .await
            };
            // Assert
            let status = resp.status().as_u16();
            let perm = route
                .permission
                .and_then(Permission::parse)
                .expect("every tenant route names a permission");
            assert_ne!(status, 500, "{} {path} as {role}", route.method);
            if allows(role, perm) {
                assert_ne!(
                    status, 403,
                    "{} {path} as {role} should be allowed ({perm})",
                    route.method
                );
            } else {
                assert_eq!(
                    status, 403,
                    "{} {path} as {role} should be forbidden ({perm})",
                    route.method
                );
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        Role::ALL.len() * arbor::web::routes::TENANT_ROUTES.len()
    );
}

#[tokio::test]
async fn navigation_hides_what_the_role_cannot_do() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "nav").await;
    let (sales, _, _) = member(&app, &t, Role::Sales).await;
    let html = app.html(&sales, &format!("/t/{}", t.slug)).await;
    assert!(
        !html.contains(&format!("/t/{}/members\"", t.slug)),
        "sales sees no Members link"
    );
    assert!(!html.contains(&format!("/t/{}/audit\"", t.slug)));
    assert!(!html.contains(&format!("/t/{}/settings/security\"", t.slug)));
    let html = app.html(&owner, &format!("/t/{}", t.slug)).await;
    assert!(html.contains(&format!("/t/{}/members\"", t.slug)));
    assert!(html.contains(&format!("/t/{}/audit\"", t.slug)));
    let (auditor, _, _) = member(&app, &t, Role::Auditor).await;
    let page = app.html(&auditor, &format!("/t/{}/members", t.slug)).await;
    assert!(
        !page.contains("Send invitation"),
        "read-only role sees no invite form"
    );
}

/// One record of every kind a tenant route can name, so each `{placeholder}` resolves.
pub struct RouteIds {
    mail: i64,
    victim: i64,
    account: (i64, i64, i64, i64),
    billing: BillingIds,
    collections: (i64, i64, i64),
    crm: (i64, i64, i64),
    payment_method: i64,
}

impl RouteIds {
    pub async fn seed(app: &TestApp, t: &TestTenant) -> Self {
        let (_victim_client, victim, _) = member(app, t, Role::Sales).await;
        let mail = put_mail(app, t, "route test");
        let account = seed_account_records(app, t);
        let aid = account.0;
        let billing = seed_billing_records(app, t, aid);
        let collections = seed_collections_records(app, t, aid);
        let crm = seed_crm_records(app, t);
        let payment_method = crate::billing::one(app, t, &format!("INSERT INTO payment_methods (account_id, gateway, token, brand, last4) VALUES ({aid}, 'sandbox', 'tok_sandbox_ok_00', 'Visa', '4242') RETURNING id"));
        Self {
            mail,
            victim,
            account,
            billing,
            collections,
            crm,
            payment_method,
        }
    }

    pub fn account_id(&self) -> i64 {
        self.account.0
    }

    /// `/t/<slug><route>` with every placeholder replaced by this tenant's record.
    pub fn fill(&self, t: &TestTenant, route: &str) -> String {
        let (aid, cid, iid, fid) = self.account;
        let (tid, ppid, polid) = self.collections;
        let b = &self.billing;
        format!("/t/{}{}", t.slug, route)
            .replace("{id}", &self.mail.to_string())
            .replace("{oid}", &self.mail.to_string())
            .replace("{crmid}", &self.crm.0.to_string())
            .replace("{eid}", &self.crm.1.to_string())
            .replace("{wid}", &self.crm.2.to_string())
            .replace("{uid}", &self.victim.to_string())
            .replace("{aid}", &aid.to_string())
            .replace("{cid}", &cid.to_string())
            .replace("{iid}", &iid.to_string())
            .replace("{fid}", &fid.to_string())
            .replace("{pid}", &b.product.to_string())
            .replace("{prid}", &b.price.to_string())
            .replace("{sid}", &b.subscription.to_string())
            .replace("{inv}", &b.invoice.to_string())
            .replace("{lid}", &b.line.to_string())
            .replace("{run}", &b.run.to_string())
            .replace("{pay}", &b.payment.to_string())
            .replace("{rid}", &b.remittance.to_string())
            .replace("{tid}", &tid.to_string())
            .replace("{ppid}", &ppid.to_string())
            .replace("{polid}", &polid.to_string())
            .replace("{pmid}", &self.payment_method.to_string())
            .replace("{op}", "auto_off")
            .replace("{kind}", "general")
    }
}

/// An account with a contact, an import and a custom field, for routes that name them.
fn seed_account_records(app: &TestApp, t: &TestTenant) -> (i64, i64, i64, i64) {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let aid = crate::accounts::put_account(app, t, "Route Test Ltd", None);
    let one = |sql: String| -> i64 {
        arbor::db::scope::in_tenant(&mut app.conn(), &t.schema(), |c| {
            Ok(diesel::RunQueryDsl::get_result::<Id>(
                diesel::sql_query(sql),
                c,
            )?)
        })
        .unwrap()
        .id
    };
    let cid = one(format!(
        "INSERT INTO contacts (account_id, name) VALUES ({aid}, 'Route Contact') RETURNING id"
    ));
    let iid = one("INSERT INTO imports (kind, filename, content) VALUES ('accounts', 'r.csv', 'legal_name\nX\n') RETURNING id".into());
    let fid = one("INSERT INTO custom_field_defs (key, label, kind) VALUES ('region', 'Region', 'text') RETURNING id".into());
    (aid, cid, iid, fid)
}

pub struct BillingIds {
    pub product: i64,
    pub price: i64,
    pub subscription: i64,
    pub invoice: i64,
    pub line: i64,
    pub run: i64,
    pub payment: i64,
    pub remittance: i64,
}

/// A product with a price version, a subscription, a draft invoice with a line and a bill run.
pub fn seed_billing_records(app: &TestApp, t: &TestTenant, aid: i64) -> BillingIds {
    use crate::billing::one;
    let product = one(app, t, "INSERT INTO products (sku, name, gl_revenue_account) VALUES ('RT', 'Route product', '4000') RETURNING id");
    let price = one(app, t, &format!("INSERT INTO prices (product_id, nickname, currency) VALUES ({product}, 'List', 'EUR') RETURNING id"));
    let version = one(app, t, &format!("INSERT INTO price_versions (price_id, version, model_kind, model) VALUES ({price}, 1, 'flat', '{{\"model\": \"flat\", \"amount\": \"10\"}}') RETURNING id"));
    crate::billing::exec(
        app,
        t,
        &format!("UPDATE prices SET current_version_id = {version} WHERE id = {price}"),
    );
    let subscription = one(app, t, &format!("INSERT INTO subscriptions (number, account_id, currency, start_date, interval_months, anchor_day, billed_through) VALUES ('SUB-RT', {aid}, 'EUR', '2026-01-01', 1, 1, '2026-01-01') RETURNING id"));
    crate::billing::exec(app, t, &format!("INSERT INTO subscription_items (subscription_id, product_id, price_id, price_version_id, start_date) VALUES ({subscription}, {product}, {price}, {version}, '2026-01-01')"));
    let invoice = one(app, t, &format!("INSERT INTO invoices (account_id, bill_to_account_id, source, currency, issue_date, terms_kind, terms_days) VALUES ({aid}, {aid}, 'manual', 'EUR', '2026-01-01', 'net', 30) RETURNING id"));
    let line = one(app, t, &format!("INSERT INTO invoice_lines (invoice_id, position, kind, description, quantity, unit_price, amount, net) VALUES ({invoice}, 1, 'one_off', 'Thing', 1, 10, 10, 10) RETURNING id"));
    let run = one(
        app,
        t,
        "INSERT INTO bill_runs (run_date, trigger) VALUES ('2026-01-01', 'manual') RETURNING id",
    );
    let payment = one(app, t, &format!("INSERT INTO payments (account_id, method, currency, amount, received_on) VALUES ({aid}, 'wire', 'EUR', 10, '2026-01-02') RETURNING id"));
    let remittance = one(app, t, "INSERT INTO remittance_lines (filename, line_no, received_on, amount, currency, status) VALUES ('bank.csv', 2, '2026-01-03', 10, 'EUR', 'unmatched') RETURNING id");
    BillingIds {
        product,
        price,
        subscription,
        invoice,
        line,
        run,
        payment,
        remittance,
    }
}

/// A collections task, a promise to pay and a second dunning policy, as
/// `(task, promise, policy)`.
fn seed_collections_records(app: &TestApp, t: &TestTenant, aid: i64) -> (i64, i64, i64) {
    use crate::billing::one;
    let task = one(app, t, &format!("INSERT INTO collections_tasks (account_id, title, due_on, source) VALUES ({aid}, 'Route task', '2026-01-10', 'manual') RETURNING id"));
    let promise = one(app, t, &format!("INSERT INTO promises_to_pay (account_id, currency, amount, promised_on) VALUES ({aid}, 'EUR', 10, '2030-01-01') RETURNING id"));
    let policy = arbor::db::scope::in_tenant(&mut app.conn(), &t.schema(), |c| {
        arbor::dunning::repo::create_policy(
            c,
            "Route policy",
            &arbor::dunning::domain::Policy::standard(),
            false,
            None,
        )
    })
    .unwrap();
    (task, promise, policy)
}

/// A CRM connector, one received event and a webhook endpoint, for routes that name them.
fn seed_crm_records(app: &TestApp, t: &TestTenant) -> (i64, i64, i64) {
    let one = |sql: &str| crate::billing::one(app, t, sql);
    let cid = one("INSERT INTO crm_connectors (kind, name, token, mapping) VALUES ('generic', 'Route test', 'routetesttoken0000000000000000', '{}') RETURNING id");
    let eid = one(&format!("INSERT INTO crm_inbox (connector_id, event_id, object_type, object_id, change, raw_body, event, status) VALUES ({cid}, 'e1', 'deal', 'D1', 'won', '{{}}', '{{}}', 'held') RETURNING id"));
    let wid = one("INSERT INTO webhook_endpoints (url, secret_sealed) VALUES ('https://hooks.example/x', 'AAAA') RETURNING id");
    (cid, eid, wid)
}
