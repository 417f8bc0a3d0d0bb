//! Duplicate detection and merging of accounts.

use arbor::{accounts::merge, db::scope::in_tenant};
use diesel::{sql_types::Text, QueryableByName, RunQueryDsl};

use crate::{
    accounts::{account, count, create, id_from, put_account, set_parent},
    helpers::{location, new_client, TestApp},
};

#[derive(QueryableByName)]
struct Action {
    #[diesel(sql_type = Text)]
    action: String,
    #[diesel(sql_type = Text)]
    entity_id: String,
}

#[tokio::test]
async fn likely_duplicates_are_shown_before_saving() {
    // Arrange
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "dup").await;
    let r = create(
        &app,
        &owner,
        &t,
        &[
            ("legal_name", "Acme Inc."),
            ("tax_id", "DE 123 456 789"),
            ("domain", "acme.com"),
        ],
    )
    .await;
    assert_eq!(r.status().as_u16(), 303);
    let acme = id_from(&r);
    // Act / Assert: each variant is caught, with its reason, and nothing is written.
    for (fields, reason) in [
        (vec![("legal_name", "ACME, inc")], "same name"),
        (vec![("legal_name", "Acme GmbH")], "same name"),
        (vec![("legal_name", "acme limited.")], "same name"),
        (
            vec![
                ("legal_name", "Totally Different"),
                ("tax_id", "de123456789"),
            ],
            "same tax id",
        ),
        (
            vec![
                ("legal_name", "Other Name"),
                ("domain", "https://www.acme.com/contact"),
            ],
            "same domain",
        ),
    ] {
        let r = create(&app, &owner, &t, &fields).await;
        assert_eq!(r.status().as_u16(), 422, "{fields:?}");
        let html = r.text().await.unwrap();
        assert!(
            html.contains("This looks like an existing account"),
            "{fields:?}"
        );
        assert!(html.contains(reason), "{fields:?} should say {reason}");
        assert!(html.contains(&format!("/accounts/{acme}")));
    }
    assert_eq!(count(&app, &t, "accounts"), 1);
    // A contact's email domain counts too.
    app.post_form(
        &owner,
        &format!("/t/{}/accounts/{acme}/contacts", t.slug),
        &[("name", "Ann Payable"), ("email", "ap@acme-billing.com")],
    )
    .await;
    let r = create(
        &app,
        &owner,
        &t,
        &[("legal_name", "Billing Co"), ("domain", "acme-billing.com")],
    )
    .await;
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("a contact uses this domain"));
    // Unrelated names pass; a confirmed duplicate is saved.
    assert_eq!(
        create(&app, &owner, &t, &[("legal_name", "Initech LLC")])
            .await
            .status()
            .as_u16(),
        303
    );
    let r = create(
        &app,
        &owner,
        &t,
        &[("legal_name", "Acme GmbH"), ("confirm_duplicates", "yes")],
    )
    .await;
    assert_eq!(r.status().as_u16(), 303);
    // Editing an account into a duplicate asks too.
    let initech = put_account(&app, &t, "Initech 2", None);
    let a = account(&app, &t, initech);
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/accounts/{initech}/general", t.slug),
            &[
                ("legal_name", "Acme"),
                ("account_number", &a.account_number),
                ("version", &a.version.to_string()),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 422);
    assert_eq!(account(&app, &t, initech).legal_name, "Initech 2");
}

#[tokio::test]
async fn merge_moves_everything_and_leaves_a_redirect_and_an_audit_trail() {
    // Arrange: Acme (survivor) and "ACME Inc" (duplicate) with contacts, a child and a CRM id.
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "mrg").await;
    let acme = put_account(&app, &t, "Acme", None);
    let dup = put_account(&app, &t, "ACME Inc", None);
    let child = put_account(&app, &t, "Acme Subsidiary", None);
    let dup_number = account(&app, &t, dup).account_number;
    set_parent(&app, &owner, &t, child, &dup_number).await;
    for (name, email) in [
        ("Pat Payable", "pat@acme.com"),
        ("Sam Signer", "sam@acme.com"),
    ] {
        let r = app
            .post_form(
                &owner,
                &format!("/t/{}/accounts/{dup}/contacts", t.slug),
                &[("name", name), ("email", email), ("role_signer", "on")],
            )
            .await;
        assert_eq!(r.status().as_u16(), 303);
    }
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(diesel::sql_query(format!("INSERT INTO account_external_ids (account_id, system, external_id) VALUES ({dup}, 'hubspot', 'HS-1')")).execute(c)?)
    })
    .unwrap();
    // The survivor's page proposes the merge.
    let html = app
        .html(&owner, &format!("/t/{}/accounts/{acme}", t.slug))
        .await;
    assert!(html.contains("Possible duplicates") && html.contains(&dup_number));
    let preview = app
        .html(
            &owner,
            &format!("/t/{}/accounts/{acme}/merge?other={dup_number}", t.slug),
        )
        .await;
    assert!(preview.contains("2 contact(s) move"), "{preview}");
    // Act
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/accounts/{acme}/merge", t.slug),
            &[("other", &dup_number), ("reason", "same company")],
        )
        .await;
    // Assert
    assert_eq!(r.status().as_u16(), 303);
    let in_t = |sql: String| -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        in_tenant(&mut app.conn(), &t.schema(), |c| {
            Ok(diesel::sql_query(sql).get_result::<N>(c)?)
        })
        .unwrap()
        .n
    };
    assert_eq!(
        in_t(format!(
            "SELECT count(*) AS n FROM contacts WHERE account_id = {acme}"
        )),
        2
    );
    assert_eq!(
        in_t(format!(
            "SELECT count(*) AS n FROM contacts WHERE account_id = {dup}"
        )),
        0
    );
    assert_eq!(account(&app, &t, child).parent_id, Some(acme));
    assert_eq!(in_t(format!("SELECT count(*) AS n FROM account_external_ids WHERE account_id = {acme} AND external_id = 'HS-1'")), 1);
    let merged = account(&app, &t, dup);
    assert_eq!(
        (merged.status.as_str(), merged.merged_into_id),
        ("merged", Some(acme))
    );
    let r = app
        .get(&owner, &format!("/t/{}/accounts/{dup}", t.slug))
        .await;
    assert_eq!(r.status().as_u16(), 301);
    assert_eq!(location(&r), format!("/t/{}/accounts/{acme}", t.slug));
    // The merged account is out of the list and cannot be edited.
    let list = app.html(&owner, &format!("/t/{}/accounts", t.slug)).await;
    assert!(!list.contains(&dup_number));
    assert_eq!(
        app.status(
            &owner,
            &format!("/t/{}/accounts/{dup}/general/edit", t.slug)
        )
        .await,
        409
    );
    // Audit: one merge entry on each account, a move per contact, with the reason.
    let rows: Vec<Action> = in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(diesel::sql_query("SELECT action, coalesce(entity_id, '') AS entity_id FROM audit_log WHERE action IN ('account.merged', 'account.merged_away', 'contact.moved') AND reason IS NOT NULL ORDER BY seq").load(c)?)
    })
    .unwrap();
    let actions: Vec<(String, String)> =
        rows.into_iter().map(|r| (r.action, r.entity_id)).collect();
    assert!(actions.contains(&("account.merged".into(), acme.to_string())));
    assert!(actions.contains(&("account.merged_away".into(), dup.to_string())));
    assert_eq!(actions.iter().filter(|a| a.0 == "contact.moved").count(), 2);
    let history = app
        .html(
            &owner,
            &format!("/t/{}/accounts/{acme}?tab=activity", t.slug),
        )
        .await;
    assert!(history.contains("account.merged"));
    assert!(
        history.contains("<div class=\"history\">"),
        "history is markup"
    );
    // Merging again is refused with a message, not an error page.
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/accounts/{acme}/merge", t.slug),
            &[("other", &dup_number)],
        )
        .await;
    assert_eq!(r.status().as_u16(), 422);
}

#[tokio::test]
async fn every_reference_to_accounts_is_moved_by_a_merge() {
    // Every foreign key to accounts in a tenant schema must be handled by the merge.
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "fk").await;
    #[derive(QueryableByName)]
    struct Fk {
        #[diesel(sql_type = Text)]
        tbl: String,
        #[diesel(sql_type = Text)]
        col: String,
    }
    let fks: Vec<Fk> = diesel::sql_query(format!(
        "SELECT c.conrelid::regclass::text AS tbl, a.attname::text AS col \
         FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) \
         WHERE c.contype = 'f' AND c.confrelid = '{}.accounts'::regclass",
        t.schema
    ))
    .load(&mut app.conn())
    .unwrap();
    assert!(fks.len() >= 3);
    for fk in fks {
        let table = fk.tbl.rsplit('.').next().unwrap().to_owned();
        let covered = merge::ACCOUNT_REFERENCES.contains(&(table.as_str(), fk.col.as_str()))
            || (table == "accounts" && merge::HIERARCHY_COLUMNS.contains(&fk.col.as_str()));
        assert!(
            covered,
            "{table}.{} refers to accounts but a merge would not move it",
            fk.col
        );
    }
}

#[tokio::test]
async fn accounts_of_one_hierarchy_are_not_duplicates_of_each_other() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "fam").await;
    let r = create(
        &app,
        &owner,
        &t,
        &[
            ("legal_name", "Contoso Group plc"),
            ("domain", "contoso.example"),
        ],
    )
    .await;
    let group = id_from(&r);
    let number = account(&app, &t, group).account_number;
    // A subsidiary on the same domain, created under the group, is not a duplicate...
    let r = create(
        &app,
        &owner,
        &t,
        &[
            ("legal_name", "Contoso UK Ltd"),
            ("domain", "contoso.example"),
            ("parent", &number),
        ],
    )
    .await;
    assert_eq!(r.status().as_u16(), 303);
    let uk = id_from(&r);
    let html = app
        .html(&owner, &format!("/t/{}/accounts/{group}", t.slug))
        .await;
    assert!(
        !html.contains("Possible duplicates"),
        "family members are not flagged"
    );
    // ...but the same domain outside the group is.
    let r = create(
        &app,
        &owner,
        &t,
        &[
            ("legal_name", "Contoso Lookalike"),
            ("domain", "contoso.example"),
        ],
    )
    .await;
    assert_eq!(r.status().as_u16(), 422);
    assert!(account(&app, &t, uk).parent_id == Some(group));
}

#[tokio::test]
async fn a_similar_name_is_found_through_the_name_prefix() {
    // Arrange: the candidate is found by the indexed three-character prefix of its name.
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "similar").await;
    let r = create(&app, &owner, &t, &[("legal_name", "Northwind Traders Ltd")]).await;
    assert_eq!(r.status().as_u16(), 303);
    let northwind = id_from(&r);
    let r = create(&app, &owner, &t, &[("legal_name", "Southwind Traders")]).await;
    assert_eq!(
        r.status().as_u16(),
        303,
        "another prefix is another company"
    );
    // Act
    let r = create(&app, &owner, &t, &[("legal_name", "Northwind Trader")]).await;
    // Assert
    assert_eq!(r.status().as_u16(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("similar name (94%)"), "{html}");
    assert!(html.contains(&format!("/accounts/{northwind}")));
    assert_eq!(count(&app, &t, "accounts"), 2);
}
