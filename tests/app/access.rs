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
        let (_victim_client, victim, _) = member(&app, &t, Role::Sales).await;
        let mail = put_mail(&app, &t, "route test");
        let (aid, cid, iid, fid) = seed_account_records(&app, &t);
        let client = if role == Role::Owner {
            owner
        } else {
            member(&app, &t, role).await.0
        };
        for route in arbor::web::routes::TENANT_ROUTES {
            let path = format!("/t/{}{}", t.slug, route.path)
                .replace("{id}", &mail.to_string())
                .replace("{uid}", &victim.to_string())
                .replace("{aid}", &aid.to_string())
                .replace("{cid}", &cid.to_string())
                .replace("{iid}", &iid.to_string())
                .replace("{fid}", &fid.to_string())
                .replace("{kind}", "general");
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
