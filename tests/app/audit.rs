//! The audit log: entries for writes, filters and CSV, append-only, tamper detection.

use arbor::{
    audit::{repo, Verification},
    auth::Role,
    cli::audit_verify,
    db::scope::in_tenant,
};
use diesel::{sql_types::BigInt, RunQueryDsl};

use crate::helpers::{audit_actions, member, new_client, TestApp};

#[tokio::test]
async fn writes_are_audited_with_actor_and_changes_and_the_page_filters_and_exports() {
    // Arrange: a few writes of different kinds.
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "audit").await;
    let (_, fin_id, _) = member(&app, &t, Role::Finance).await;
    app.post_form(
        &owner,
        &format!("/t/{}/members/{fin_id}/role", t.slug),
        &[("role", "collections"), ("reason", "reorg")],
    )
    .await;
    app.post_form(
        &owner,
        &format!("/t/{}/members/invite", t.slug),
        &[("email", "x@y.example"), ("role", "auditor")],
    )
    .await;
    // Assert: the entries exist, in order, with the actor.
    let actions = audit_actions(&app, &t);
    for expected in [
        "tenant.created",
        "auth.sign_in",
        "member.role_changed",
        "member.invited",
    ] {
        assert!(
            actions.contains(&expected.to_owned()),
            "{expected} in {actions:?}"
        );
    }
    let page = app
        .html(&owner, &format!("/t/{}/audit?action=member.", t.slug))
        .await;
    assert!(page.contains("member.role_changed") && page.contains("member.invited"));
    assert!(!page.contains("tenant.created"), "filter applied");
    assert!(page.contains("Chain intact"));
    assert!(page.contains(&t.email), "actor shown");
    // CSV = the filtered rows, with ids and JSON before/after.
    let r = app
        .get(&owner, &format!("/t/{}/audit.csv?action=member.", t.slug))
        .await;
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "text/csv; charset=utf-8"
    );
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("seq,id,at_utc,actor_user_id"));
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        csv.contains("member.role_changed")
            && csv.contains("reorg")
            && csv.contains("\"{\"\"role\"\":\"\"finance\"\"")
    );
    // Bad filter input is a 422 with a message, not a 500.
    let r = app
        .get(&owner, &format!("/t/{}/audit?from=31/12/2026", t.slug))
        .await;
    assert_eq!(r.status().as_u16(), 422);
    assert!(r.text().await.unwrap().contains("Use a date like"));
}

#[tokio::test]
async fn the_log_is_append_only_and_tampering_is_found_by_verify() {
    // Arrange
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "tamper").await;
    for i in 0..3 {
        app.post_form(
            &owner,
            &format!("/t/{}/members/invite", t.slug),
            &[("email", &format!("p{i}@q.example")), ("role", "sales")],
        )
        .await;
    }
    let mut c = app.conn();
    let v = in_tenant(&mut c, &t.schema(), repo::verify).unwrap();
    let Verification::Intact { rows } = v else {
        panic!("{v:?}")
    };
    assert!(rows >= 4, "{rows}");
    assert!(audit_verify(&app.db_url, &t.slug).unwrap().is_ok());
    // UPDATE and DELETE are refused by the trigger.
    let upd = in_tenant(&mut c, &t.schema(), |c| {
        Ok(diesel::sql_query("UPDATE audit_log SET reason = 'x' WHERE seq = 2").execute(c)?)
    });
    assert!(format!("{upd:?}").contains("append-only"), "{upd:?}");
    let del = in_tenant(&mut c, &t.schema(), |c| {
        Ok(diesel::sql_query("DELETE FROM audit_log WHERE seq = 2").execute(c)?)
    });
    assert!(format!("{del:?}").contains("append-only"));
    // Act: someone with superuser rights bypasses the trigger and edits row 3.
    in_tenant(&mut c, &t.schema(), |c| {
        diesel::sql_query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
            .execute(c)?;
        diesel::sql_query("UPDATE audit_log SET after = '{\"role\": \"owner\"}' WHERE seq = $1")
            .bind::<BigInt, _>(3)
            .execute(c)?;
        diesel::sql_query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
            .execute(c)?;
        Ok(())
    })
    .unwrap();
    // Assert: verify names the first altered row.
    match in_tenant(&mut c, &t.schema(), repo::verify).unwrap() {
        Verification::Broken {
            first_bad_seq,
            reason,
            ..
        } => {
            assert_eq!(first_bad_seq, 3);
            assert!(reason.contains("altered"), "{reason}");
        }
        other => panic!("tampering not detected: {other:?}"),
    }
    let msg = audit_verify(&app.db_url, &t.slug).unwrap().unwrap_err();
    assert!(msg.contains("BROKEN at entry #3"), "{msg}");
    let page = app.html(&owner, &format!("/t/{}/audit", t.slug)).await;
    assert!(page.contains("Chain broken at entry #3"));
}

#[tokio::test]
async fn concurrent_writers_keep_one_unbroken_chain() {
    let app = TestApp::spawn().await;
    let t = app.signup(&new_client(), "chain").await;
    let handles: Vec<_> = (0..4)
        .map(|w| {
            let url = app.db_url.clone();
            let schema = t.schema();
            std::thread::spawn(move || {
                let mut c = arbor::db::connect(&url).unwrap();
                for i in 0..25 {
                    in_tenant(&mut c, &schema, |c| {
                        arbor::audit::record(
                            c,
                            &arbor::audit::Actor::system(),
                            &arbor::audit::Entry::new("test.write", "thing", format!("{w}-{i}")),
                        )
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let v = in_tenant(&mut app.conn(), &t.schema(), repo::verify).unwrap();
    assert!(
        matches!(v, Verification::Intact { rows } if rows >= 101),
        "{v:?}"
    );
}

#[derive(diesel::QueryableByName)]
struct SeqOf {
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

fn seq_of(c: &mut diesel::PgConnection, schema: &arbor::db::scope::TenantSchema, id: &str) -> i64 {
    in_tenant(c, schema, |c| {
        Ok(diesel::sql_query(
            "SELECT seq FROM audit_log WHERE entity_type = 'thing' AND entity_id = $1",
        )
        .bind::<diesel::sql_types::Text, _>(id)
        .get_result::<SeqOf>(c)?)
    })
    .unwrap()
    .seq
}

#[tokio::test]
async fn an_open_transaction_with_entries_does_not_hold_up_other_writers() {
    // Arrange: a long transaction (a bill run, a burst of CRM events) has written an entry.
    let app = TestApp::spawn().await;
    let t = app.signup(&new_client(), "longtx").await;
    let schema = t.schema();
    let mut long = arbor::db::connect(&app.db_url).unwrap();
    let mut other = arbor::db::connect(&app.db_url).unwrap();
    let entry = |id: &str| arbor::audit::Entry::new("test.write", "thing", id);
    let system = arbor::audit::Actor::system();
    in_tenant(&mut long, &schema, |c| {
        arbor::audit::record(c, &system, &entry("long-1"))?;
        // Act: while it is open, another writer records and commits. Before, the chain lock
        // was taken at the first entry and held to commit: this waited for the long one
        // (here it would fail on the lock timeout instead of hanging the test).
        in_tenant(&mut other, &schema, |c| {
            diesel::sql_query("SET LOCAL lock_timeout = '2s'").execute(c)?;
            arbor::audit::record(c, &system, &entry("other-1"))
        })?;
        arbor::audit::record(c, &system, &entry("long-2"))?;
        Ok(())
    })
    .unwrap();

    // Assert: one unbroken chain in commit order, the long transaction's entries together and
    // in the order it wrote them.
    let v = in_tenant(&mut app.conn(), &schema, repo::verify).unwrap();
    assert!(matches!(v, Verification::Intact { .. }), "{v:?}");
    let (o, l1, l2) = (
        seq_of(&mut other, &schema, "other-1"),
        seq_of(&mut other, &schema, "long-1"),
        seq_of(&mut other, &schema, "long-2"),
    );
    assert!(o > 0 && o < l1, "other {o}, long {l1}");
    assert_eq!(l2, l1 + 1);
    // A pending entry cannot be altered on its way into the chain either.
    let sneaky = in_tenant(&mut long, &schema, |c| {
        arbor::audit::record(c, &system, &entry("long-3"))?;
        Ok(diesel::sql_query("UPDATE audit_log SET reason = 'edited' WHERE seq < 0").execute(c)?)
    });
    assert!(format!("{sneaky:?}").contains("append-only"), "{sneaky:?}");
    let v = in_tenant(&mut app.conn(), &schema, repo::verify).unwrap();
    assert!(matches!(v, Verification::Intact { .. }), "{v:?}");
}
