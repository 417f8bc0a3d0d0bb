//! TOTP two-factor: enrollment, sign-in with a code, replay protection, recovery codes,
//! forced enrollment by tenant policy.

use std::time::{SystemTime, UNIX_EPOCH};

use arbor::auth::{totp, Role};
use reqwest::Client;

use crate::helpers::{audit_actions, location, member, new_client, TestApp, PASSWORD};

fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = html.find(start)? + start.len();
    let j = html[i..].find(end)? + i;
    Some(&html[i..j])
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Enrolls the signed-in `client`; returns the base32 key and the recovery codes.
async fn enroll(app: &TestApp, client: &Client) -> (String, Vec<String>) {
    let page = app
        .post_form(client, "/account/2fa/start", &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("data:image/png;base64,"), "QR code shown");
    let key = between(&page, "<code id=\"manual-key\">", "</code>")
        .expect("manual key shown")
        .to_owned();
    // A wrong code does not enable anything.
    let r = app
        .post_form(client, "/account/2fa/confirm", &[("code", "000000")])
        .await;
    assert_eq!(r.status().as_u16(), 422);
    let code = totp::current_code(&key).unwrap();
    let page = app
        .post_form(client, "/account/2fa/confirm", &[("code", &code)])
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Two-factor authentication is on"), "enabled");
    let list = between(&page, "<ul class=\"recovery-codes\">", "</ul>").unwrap();
    let codes: Vec<String> = list
        .split("<code>")
        .skip(1)
        .map(|s| s.split("</code>").next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    (key, codes)
}

async fn password_step(app: &TestApp, email: &str) -> Client {
    let c = new_client();
    let r = app.login(&c, email, PASSWORD).await;
    assert_eq!(r.status().as_u16(), 303);
    assert!(
        location(&r).starts_with("/login/2fa"),
        "second step required, got {}",
        location(&r)
    );
    c
}

#[tokio::test]
async fn enrollment_sign_in_with_code_and_replay_rejected() {
    // Arrange
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "totp").await;
    let (key, _) = enroll(&app, &owner).await;
    // Act: a new sign-in needs the second factor; the pending session opens nothing yet.
    let c = password_step(&app, &t.email).await;
    assert_eq!(app.status(&c, &format!("/t/{}", t.slug)).await, 303);
    let r = app.post_form(&c, "/login/2fa", &[("code", "123456")]).await;
    assert_eq!(r.status().as_u16(), 422);
    // The enrollment consumed the current step, so use the next one (within the allowed skew).
    let fresh = totp::code_at(&key, now() + 30).unwrap();
    let r = app.post_form(&c, "/login/2fa", &[("code", &fresh)]).await;
    // Assert
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(app.status(&c, &format!("/t/{}", t.slug)).await, 200);
    // The same code again, in another sign-in, is a replay.
    let c2 = password_step(&app, &t.email).await;
    let r = app.post_form(&c2, "/login/2fa", &[("code", &fresh)]).await;
    assert_eq!(r.status().as_u16(), 422, "replayed code rejected");
    assert_eq!(app.status(&c2, &format!("/t/{}", t.slug)).await, 303);
    let actions = audit_actions(&app, &t);
    assert!(actions.contains(&"user.2fa_enabled".to_owned()));
    assert!(actions.contains(&"auth.second_factor_failed".to_owned()));
}

#[tokio::test]
async fn recovery_codes_work_once_and_disabling_needs_password_and_code() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "recov").await;
    let (key, codes) = enroll(&app, &owner).await;
    let c = password_step(&app, &t.email).await;
    let r = app
        .post_form(&c, "/login/2fa", &[("code", &codes[0].to_lowercase())])
        .await;
    assert_eq!(
        r.status().as_u16(),
        303,
        "recovery code accepted (case-insensitive)"
    );
    let c2 = password_step(&app, &t.email).await;
    let r = app
        .post_form(&c2, "/login/2fa", &[("code", &codes[0])])
        .await;
    assert_eq!(r.status().as_u16(), 422, "a recovery code works once");
    let r = app
        .post_form(&c2, "/login/2fa", &[("code", &codes[1])])
        .await;
    assert_eq!(r.status().as_u16(), 303);
    // Disabling with a wrong password keeps 2FA on.
    let r = app
        .post_form(
            &owner,
            "/account/2fa/disable",
            &[("password", "wrong password!"), ("code", &codes[2])],
        )
        .await;
    assert_eq!(r.status().as_u16(), 422);
    let code = totp::code_at(&key, now() + 30).unwrap();
    let r = app
        .post_form(
            &owner,
            "/account/2fa/disable",
            &[("password", PASSWORD), ("code", &code)],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let r = app.login(&new_client(), &t.email, PASSWORD).await;
    assert_eq!(location(&r), "/", "no second step once disabled");
    assert!(audit_actions(&app, &t).contains(&"user.2fa_disabled".to_owned()));
}

#[tokio::test]
async fn tenant_policy_forces_enrollment_for_the_chosen_roles() {
    // Arrange: the owner requires 2FA for finance.
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "policy").await;
    let (_, _, fin_email) = member(&app, &t, Role::Finance).await;
    let (sales, _, _) = member(&app, &t, Role::Sales).await;
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/settings/security", t.slug),
            &[("require_2fa", "finance")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    // Act: finance signs in next.
    let fin = new_client();
    let r = app.login(&fin, &fin_email, PASSWORD).await;
    // Assert: sent to enrollment, and tenant pages redirect there until enrolled.
    assert_eq!(location(&r), "/account/security?required=1");
    let r = app.get(&fin, &format!("/t/{}", t.slug)).await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(location(&r), "/account/security?required=1");
    let page = app.html(&fin, "/account/security?required=1").await;
    assert!(page.contains("requires two-factor authentication"));
    enroll(&app, &fin).await;
    assert_eq!(app.status(&fin, &format!("/t/{}", t.slug)).await, 200);
    // Sales is not affected.
    assert_eq!(app.status(&sales, &format!("/t/{}", t.slug)).await, 200);
    assert!(audit_actions(&app, &t).contains(&"settings.security_changed".to_owned()));
}
