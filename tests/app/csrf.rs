use crate::helpers::{new_client, TestApp, PASSWORD};

#[tokio::test]
async fn state_changing_requests_without_a_valid_token_are_rejected() {
    // Arrange
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "csrf").await;
    let c = new_client();
    let _ = app.csrf(&c).await; // obtains the pre-session cookie
    let creds = [("email", t.email.as_str()), ("password", PASSWORD)];

    // Missing token.
    let r = c.post(app.url("/login")).form(&creds).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("Form expired"));

    // Wrong token.
    let mut with_bad = creds.to_vec();
    with_bad.push(("csrf_token", "forged"));
    let r = c
        .post(app.url("/login"))
        .form(&with_bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // Another visitor's token.
    let someone_else = new_client();
    let foreign = app.csrf(&someone_else).await;
    let mut with_foreign = creds.to_vec();
    with_foreign.push(("csrf_token", &foreign));
    let r = c
        .post(app.url("/login"))
        .form(&with_foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // A valid token from a foreign origin.
    let own = app.csrf(&c).await;
    let mut good = creds.to_vec();
    good.push(("csrf_token", &own));
    let r = c
        .post(app.url("/login"))
        .header("Origin", "https://evil.example")
        .form(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // No cookie at all (a cross-site form post from a fresh browser).
    let bare = new_client();
    let r = bare
        .post(app.url("/login"))
        .form(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // Act: the same request with its own token and same origin passes.
    let r = c
        .post(app.url("/login"))
        .header("Origin", app.address.clone())
        .form(&good)
        .send()
        .await
        .unwrap();
    // Assert
    assert_eq!(r.status().as_u16(), 303);
}

#[tokio::test]
async fn htmx_header_token_is_accepted_and_rotates_at_sign_in() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "htmx").await;
    let c = new_client();
    let before = app.csrf(&c).await;
    let r = c
        .post(app.url("/login"))
        .header("X-CSRF-Token", &before)
        .header("HX-Request", "true")
        .form(&[("email", t.email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers().get("hx-redirect").unwrap(), "/");
    let after = app.csrf(&c).await;
    assert_ne!(before, after, "signing in rotates the token");
    // The pre-sign-in token no longer works for the signed-in session.
    let r = c
        .post(app.url("/logout"))
        .header("X-CSRF-Token", &before)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = c
        .post(app.url("/logout"))
        .header("X-CSRF-Token", &after)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
}
