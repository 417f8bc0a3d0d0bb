//! Invitations through the real SMTP sink, role changes, deactivation, sessions and resets.

use std::time::Duration;

use arbor::auth::Role;

use crate::helpers::{audit_actions, location, member, new_client, SmtpSink, TestApp, PASSWORD};

fn link_in(message: &str, prefix: &str) -> String {
    // Quoted-printable may wrap long lines with "=\n".
    let unfolded = message.replace("=\r\n", "").replace("=\n", "");
    let i = unfolded.find(prefix).expect("link in message");
    unfolded[i..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('.')
        .to_owned()
}

#[tokio::test]
async fn invitation_arrives_by_smtp_and_creates_the_member_with_that_role() {
    // Arrange
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = TestApp::spawn_with(|c| c.smtp_url = Some(url)).await;
    let owner = new_client();
    let t = app.signup(&owner, "invite").await;
    // Act
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/members/invite", t.slug),
            &[
                ("email", "New.Clerk@Customer.example"),
                ("role", "collections"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Invitation sent to new.clerk@customer.example"));
    assert!(
        app.eventually(Duration::from_secs(20), || !sink.messages().is_empty())
            .await,
        "invitation delivered"
    );
    let msg = sink.messages().remove(0);
    assert!(msg.contains("new.clerk@customer.example"));
    let link = link_in(&msg, &format!("{}/invite/", app.address));
    let path = link.trim_start_matches(&app.address).to_owned();
    // The link is never shown in the app's sent-mail page.
    let mail_page = app.html(&owner, &format!("/t/{}/mail", t.slug)).await;
    assert!(!mail_page.contains(&path));
    // The invitee accepts with a too-short password first, then properly.
    let invitee = new_client();
    let page = app.html(&invitee, &path).await;
    assert!(page.contains("Join invite Ltd") && page.contains("collections"));
    let r = app
        .post_form(
            &invitee,
            &path,
            &[("name", "Nia Clerk"), ("password", "short")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 422);
    let r = app
        .post_form(
            &invitee,
            &path,
            &[("name", "Nia Clerk"), ("password", PASSWORD)],
        )
        .await;
    // Assert
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(location(&r), format!("/t/{}", t.slug));
    assert_eq!(app.status(&invitee, &format!("/t/{}", t.slug)).await, 200);
    let members = app.html(&owner, &format!("/t/{}/members", t.slug)).await;
    assert!(members.contains("Nia Clerk") && members.contains("collections"));
    // A used link is dead.
    let again = app.get(&new_client(), &path).await.text().await.unwrap();
    assert!(again.contains("Invitation not valid"));
    let actions = audit_actions(&app, &t);
    assert!(
        actions.contains(&"member.invited".to_owned())
            && actions.contains(&"member.joined".to_owned())
    );
}

#[tokio::test]
async fn role_change_and_deactivation_follow_the_rules_and_revoke_sessions_at_once() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "roles").await;
    let (admin, _, _) = member(&app, &t, Role::Admin).await;
    let (fin, fin_id, _) = member(&app, &t, Role::Finance).await;
    let owner_id = {
        let e = arbor::auth::Email::parse(&t.email).unwrap();
        arbor::auth::repo::find_by_email(&mut app.conn(), &e)
            .unwrap()
            .unwrap()
            .id
    };
    // An admin cannot make anyone owner, nor demote the owner.
    let r = app
        .post_form(
            &admin,
            &format!("/t/{}/members/{fin_id}/role", t.slug),
            &[("role", "owner")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 422);
    let r = app
        .post_form(
            &admin,
            &format!("/t/{}/members/{owner_id}/role", t.slug),
            &[("role", "sales")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 422);
    // The last owner cannot demote themself.
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/members/{owner_id}/role", t.slug),
            &[("role", "admin")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("at least one active owner"));
    // An admin changes finance to sales, with a reason.
    let r = app
        .post_form(
            &admin,
            &format!("/t/{}/members/{fin_id}/role", t.slug),
            &[("role", "sales"), ("reason", "moved to sales team")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let detail = app
        .html(&owner, &format!("/t/{}/members/{fin_id}", t.slug))
        .await;
    assert!(
        detail.contains("member.role_changed") && detail.contains("moved to sales team"),
        "history on the detail page"
    );
    assert!(
        detail.contains("<div class=\"history\">"),
        "history is rendered as markup, not escaped text"
    );
    // Deactivation signs the member out immediately.
    assert_eq!(app.status(&fin, &format!("/t/{}", t.slug)).await, 200);
    let r = app
        .post_form(
            &admin,
            &format!("/t/{}/members/{fin_id}/deactivate", t.slug),
            &[("reason", "left the company")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(app.status(&fin, &format!("/t/{}", t.slug)).await, 303);
    let r = app
        .login(&new_client(), &format!("x{}", "@nowhere.example"), PASSWORD)
        .await;
    assert_eq!(r.status().as_u16(), 422);
    let actions = audit_actions(&app, &t);
    assert!(actions.contains(&"member.deactivated".to_owned()));
}

#[tokio::test]
async fn sessions_can_be_listed_and_revoked_and_password_change_signs_out_others() {
    let app = TestApp::spawn().await;
    let a = new_client();
    let t = app.signup(&a, "sess").await;
    let b = new_client();
    assert_eq!(
        app.login(&b, &t.email, PASSWORD).await.status().as_u16(),
        303
    );
    let page = app.html(&a, "/account/security").await;
    assert_eq!(
        page.matches("/revoke\"").count(),
        1,
        "one other session listed with a revoke button"
    );
    let i = page.find("/account/sessions/").unwrap();
    let id: String = page[i + 18..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let r = app
        .post_form(&a, &format!("/account/sessions/{id}/revoke"), &[])
        .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(
        app.status(&b, &format!("/t/{}", t.slug)).await,
        303,
        "revoked session is out"
    );
    // Password change keeps this session and ends the others.
    let c = new_client();
    app.login(&c, &t.email, PASSWORD).await;
    let r = app
        .post_form(
            &a,
            "/account/password",
            &[
                ("current", PASSWORD),
                ("new_password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(app.status(&a, &format!("/t/{}", t.slug)).await, 200);
    assert_eq!(app.status(&c, &format!("/t/{}", t.slug)).await, 303);
    assert_eq!(
        app.login(&new_client(), &t.email, "a brand new passphrase")
            .await
            .status()
            .as_u16(),
        303
    );
}

#[tokio::test]
async fn password_reset_by_email_works_once() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = TestApp::spawn_with(|c| c.smtp_url = Some(url)).await;
    let t = app.signup(&new_client(), "reset").await;
    let anon = new_client();
    // Unknown and known emails get the same answer.
    let unknown = app
        .post_form(
            &anon,
            "/password/forgot",
            &[("email", "nobody@nowhere.example")],
        )
        .await
        .text()
        .await
        .unwrap();
    let known = app
        .post_form(&anon, "/password/forgot", &[("email", &t.email)])
        .await
        .text()
        .await
        .unwrap();
    assert!(unknown.contains("If an account exists") && known.contains("If an account exists"));
    assert!(
        app.eventually(Duration::from_secs(20), || sink.messages().len() == 1)
            .await
    );
    let link = link_in(
        &sink.messages()[0],
        &format!("{}/password/reset/", app.address),
    );
    let path = link.trim_start_matches(&app.address).to_owned();
    let r = app
        .post_form(&anon, &path, &[("password", "reset passphrase 42")])
        .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(
        app.login(&new_client(), &t.email, PASSWORD)
            .await
            .status()
            .as_u16(),
        422,
        "old password gone"
    );
    assert_eq!(
        app.login(&new_client(), &t.email, "reset passphrase 42")
            .await
            .status()
            .as_u16(),
        303
    );
    let r = app
        .post_form(&anon, &path, &[("password", "another passphrase 43")])
        .await;
    assert_eq!(r.status().as_u16(), 422, "link works once");
    assert!(audit_actions(&app, &t).contains(&"user.password_reset".to_owned()));
}

#[tokio::test]
async fn repeated_failures_lock_the_account_and_the_ip_is_throttled() {
    let app = TestApp::spawn().await;
    let t = app.signup(&new_client(), "lock").await;
    for _ in 0..5 {
        assert_eq!(
            app.login(&new_client(), &t.email, "wrong password!!")
                .await
                .status()
                .as_u16(),
            422
        );
    }
    // Locked: even the right password is refused, with the same generic message.
    let r = app.login(&new_client(), &t.email, PASSWORD).await;
    assert_eq!(r.status().as_u16(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Email or password is incorrect."));
    let actions = audit_actions(&app, &t);
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "auth.sign_in_failed")
            .count(),
        6
    );
    assert!(actions.contains(&"auth.locked".to_owned()));

    // Per-IP throttle: a tight budget answers 429 past the burst.
    let limited = TestApp::spawn_with(|c| {
        c.auth_rate_per_minute = 1;
        c.auth_burst = 3;
    })
    .await;
    let c = new_client();
    let token = limited.csrf(&c).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = c
            .post(limited.url("/login"))
            .form(&[
                ("email", "a@b.example"),
                ("password", "x"),
                ("csrf_token", &token),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..3], &[422, 422, 422]);
    assert_eq!(statuses[4], 429, "{statuses:?}");
}
