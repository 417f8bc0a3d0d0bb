use diesel::{sql_types::Text, QueryableByName, RunQueryDsl};

use crate::helpers::{location, new_client, TestApp, PASSWORD};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count(app: &TestApp, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(&mut app.conn())
        .unwrap()
        .n
}

#[tokio::test]
async fn signup_creates_tenant_owner_and_session_then_shows_dashboard() {
    // Arrange
    let app = TestApp::spawn().await;
    let c = new_client();
    // Act
    let t = app.signup(&c, "acme").await;
    let dash = app.get(&c, &format!("/t/{}", t.slug)).await;
    // Assert
    assert_eq!(dash.status().as_u16(), 200);
    let html = dash.text().await.unwrap();
    assert!(html.contains("acme Ltd"), "dashboard shows the tenant name");
    assert!(html.contains("Olivia Owner"));
    assert!(arbor::db::migrate::schema_exists(&mut app.conn(), &t.schema).unwrap());
    let role: Vec<String> = diesel::sql_query(
        "SELECT m.role AS datname FROM control.memberships m JOIN control.users u ON u.id = m.user_id WHERE u.email = $1",
    )
    .bind::<Text, _>(&t.email)
    .load::<Name>(&mut app.conn())
    .unwrap()
    .into_iter()
    .map(|n| n.datname)
    .collect();
    assert_eq!(role, vec!["owner".to_owned()]);
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    datname: String,
}

#[tokio::test]
async fn signup_with_bad_input_shows_field_errors_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let c = new_client();
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[
                ("name", "A"),
                ("email", "not-an-email"),
                ("password", PASSWORD),
                ("org_name", "X Ltd"),
                ("slug", "xco"),
            ],
            "Enter an email address like",
        ),
        (
            &[
                ("name", "A"),
                ("email", "a@x.example"),
                ("password", "short"),
                ("org_name", "X Ltd"),
                ("slug", "xco"),
            ],
            "at least 10 characters",
        ),
        (
            &[
                ("name", "A"),
                ("email", "a@x.example"),
                ("password", PASSWORD),
                ("org_name", ""),
                ("slug", "xco"),
            ],
            "Enter your organisation",
        ),
        (
            &[
                ("name", "A"),
                ("email", "a@x.example"),
                ("password", PASSWORD),
                ("org_name", "X Ltd"),
                ("slug", "-bad slug-"),
            ],
            "letters a–z",
        ),
    ];
    for (fields, message) in cases {
        let r = app.post_form(&c, "/signup", fields).await;
        assert_eq!(r.status().as_u16(), 422);
        let html = r.text().await.unwrap();
        assert!(html.contains(message), "expected {message:?} in response");
        assert!(html.contains("aria-invalid=\"true\""));
        assert!(!html.contains(PASSWORD), "password is never echoed back");
    }
    assert_eq!(count(&app, "SELECT count(*) AS n FROM control.tenants"), 0);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM control.users"), 0);
}

#[tokio::test]
async fn taken_slug_or_email_is_a_field_error_and_rolls_back_everything() {
    let app = TestApp::spawn().await;
    let first = new_client();
    let t = app.signup(&first, "taken").await;
    let other = new_client();
    // Same slug, new email: nothing of the second sign-up may remain.
    let r = app
        .post_form(
            &other,
            "/signup",
            &[
                ("name", "B"),
                ("email", "b@other.example"),
                ("password", PASSWORD),
                ("org_name", "Other"),
                ("slug", &t.slug),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 422);
    assert!(r.text().await.unwrap().contains("address is taken"));
    // Same email, new slug.
    let r = app
        .post_form(
            &other,
            "/signup",
            &[
                ("name", "B"),
                ("email", &t.email.to_uppercase()),
                ("password", PASSWORD),
                ("org_name", "Other"),
                ("slug", "fresh-slug"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 422);
    assert!(r.text().await.unwrap().contains("already exists"));
    assert_eq!(count(&app, "SELECT count(*) AS n FROM control.tenants"), 1);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM control.users"), 1);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM pg_namespace WHERE nspname LIKE 't\\_%'"
        ),
        1
    );
}

#[tokio::test]
async fn sign_in_out_and_generic_errors() {
    // Arrange
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "login").await;
    let c = new_client();
    // Act / Assert: wrong password and unknown email give the same message.
    for (email, pw) in [
        (t.email.as_str(), "wrong password!!"),
        ("nobody@nowhere.example", PASSWORD),
    ] {
        let r = app.login(&c, email, pw).await;
        assert_eq!(r.status().as_u16(), 422);
        let html = r.text().await.unwrap();
        assert!(html.contains("Email or password is incorrect."));
    }
    assert_eq!(
        app.status(&c, &format!("/t/{}", t.slug)).await,
        303,
        "still anonymous"
    );
    // Correct credentials (email case-insensitive) sign in and issue a fresh session cookie.
    let r = app.login(&c, &t.email.to_uppercase(), PASSWORD).await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(location(&r), "/");
    let set_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert!(
        set_cookie.iter().any(|c| c.starts_with("arbor_session=")
            && c.contains("HttpOnly")
            && c.contains("SameSite=Lax")),
        "{set_cookie:?}"
    );
    let home = app.get(&c, "/").await;
    assert_eq!(
        location(&home),
        format!("/t/{}", t.slug),
        "single workspace: straight to it"
    );
    assert_eq!(app.status(&c, &format!("/t/{}", t.slug)).await, 200);
    // Sign out revokes the session server-side.
    let session_value = cookie_value(&set_cookie, "arbor_session");
    let r = app.post_form(&c, "/logout", &[]).await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(app.status(&c, &format!("/t/{}", t.slug)).await, 303);
    // Replaying the old cookie does not work either.
    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = replay
        .get(app.url(&format!("/t/{}", t.slug)))
        .header("Cookie", format!("arbor_session={session_value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(location(&r), "/login");
}

fn cookie_value(set_cookie: &[String], name: &str) -> String {
    set_cookie
        .iter()
        .find_map(|c| {
            c.strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap().to_owned())
        })
        .unwrap()
}

#[tokio::test]
async fn login_next_parameter_cannot_redirect_off_site() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "nexts").await;
    let c = new_client();
    let r = app
        .post_form(
            &c,
            "/login",
            &[
                ("email", &t.email),
                ("password", PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/");
    let c = new_client();
    let r = app
        .post_form(
            &c,
            "/login",
            &[
                ("email", &t.email),
                ("password", PASSWORD),
                ("next", &format!("/t/{}/mail", t.slug)),
            ],
        )
        .await;
    assert_eq!(location(&r), format!("/t/{}/mail", t.slug));
}

#[tokio::test]
async fn deactivated_user_cannot_use_existing_session_or_sign_in() {
    let app = TestApp::spawn().await;
    let c = new_client();
    let t = app.signup(&c, "deact").await;
    diesel::sql_query("UPDATE control.users SET status = 'deactivated' WHERE email = $1")
        .bind::<Text, _>(&t.email)
        .execute(&mut app.conn())
        .unwrap();
    assert_eq!(app.status(&c, &format!("/t/{}", t.slug)).await, 303);
    let fresh = new_client();
    assert_eq!(
        app.login(&fresh, &t.email, PASSWORD)
            .await
            .status()
            .as_u16(),
        422
    );
}
