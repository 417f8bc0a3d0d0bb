//! Route × role: every tenant route, requested by every role, is allowed exactly when the
//! permission matrix says so (403 otherwise, never 500).

use arbor::auth::{
    permissions::{allows, Permission},
    Role,
};

use crate::{
    helpers::{member, new_client, TestApp},
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
        let client = if role == Role::Owner {
            owner
        } else {
            member(&app, &t, role).await.0
        };
        for route in arbor::web::routes::TENANT_ROUTES {
            let path = format!("/t/{}{}", t.slug, route.path)
                .replace("{id}", &mail.to_string())
                .replace("{uid}", &victim.to_string());
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
    let html = app
        .get(&sales, &format!("/t/{}", t.slug))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains(&format!("/t/{}/members\"", t.slug)),
        "sales sees no Members link"
    );
    assert!(!html.contains(&format!("/t/{}/audit\"", t.slug)));
    assert!(!html.contains(&format!("/t/{}/settings/security\"", t.slug)));
    let html = app
        .get(&owner, &format!("/t/{}", t.slug))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(&format!("/t/{}/members\"", t.slug)));
    assert!(html.contains(&format!("/t/{}/audit\"", t.slug)));
    let (auditor, _, _) = member(&app, &t, Role::Auditor).await;
    let page = app
        .get(&auditor, &format!("/t/{}/members", t.slug))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("Send invitation"),
        "read-only role sees no invite form"
    );
}
