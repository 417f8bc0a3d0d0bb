//! CSV export and import of accounts: per-row errors, all-or-nothing commit, duplicates
//! flagged, ids preserved for a round trip.

use std::time::Duration;

use arbor::db::scope::in_tenant;
use diesel::{QueryableByName, RunQueryDsl};
use reqwest::multipart;

use crate::{
    accounts::{account, put_account},
    helpers::{location, new_client, TestApp, TestTenant},
};

async fn upload(
    app: &TestApp,
    client: &reqwest::Client,
    t: &TestTenant,
    csv: &str,
) -> reqwest::Response {
    upload_kind(app, client, t, "accounts", csv).await
}

async fn upload_kind(
    app: &TestApp,
    client: &reqwest::Client,
    t: &TestTenant,
    kind: &'static str,
    csv: &str,
) -> reqwest::Response {
    let token = app.csrf(client).await;
    let form = multipart::Form::new().text("kind", kind).part(
        "file",
        multipart::Part::bytes(csv.as_bytes().to_vec())
            .file_name(format!("{kind}.csv"))
            .mime_str("text/csv")
            .unwrap(),
    );
    client
        .post(app.url(&format!("/t/{}/imports?csrf_token={token}", t.slug)))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

fn status_of(app: &TestApp, t: &TestTenant, id: i64) -> String {
    #[derive(QueryableByName)]
    struct S {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
    }
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(
            diesel::sql_query(format!("SELECT status FROM imports WHERE id = {id}"))
                .get_result::<S>(c)?,
        )
    })
    .unwrap()
    .status
}

/// Confirms an import and waits until the commit job has finished it.
async fn commit(
    app: &TestApp,
    client: &reqwest::Client,
    t: &TestTenant,
    id: i64,
    fields: &[(&str, &str)],
) {
    let r = app
        .post_form(
            client,
            &format!("/t/{}/imports/{id}/commit", t.slug),
            fields,
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    assert!(
        app.eventually(Duration::from_secs(20), || status_of(app, t, id) == "done")
            .await,
        "import committed"
    );
}

/// Uploads, waits for the preview job, returns the import id and the preview page.
async fn preview(
    app: &TestApp,
    client: &reqwest::Client,
    t: &TestTenant,
    csv: &str,
) -> (i64, String) {
    let r = upload(app, client, t, csv).await;
    assert_eq!(r.status().as_u16(), 303, "{}", r.text().await.unwrap());
    let id: i64 = location(&r).rsplit('/').next().unwrap().parse().unwrap();
    assert!(
        app.eventually(Duration::from_secs(20), || status_of(app, t, id)
            != "validating")
            .await,
        "preview finished"
    );
    let html = app
        .html(client, &format!("/t/{}/imports/{id}", t.slug))
        .await;
    (id, html)
}

fn accounts_count(app: &TestApp, t: &TestTenant) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(diesel::sql_query("SELECT count(*) AS n FROM accounts").get_result::<N>(c)?)
    })
    .unwrap()
    .n
}

#[tokio::test]
async fn an_import_with_bad_rows_reports_each_row_and_writes_nothing() {
    // Arrange
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "imp").await;
    let csv = "legal_name,currency,terms_kind,terms_days,tax_mode,tax_rate,parent\n\
               Good One Ltd,EUR,net,30,,,\n\
               ,EUR,net,30,,,\n\
               Bad Currency BV,EURO,net,30,,,\n\
               Bad Terms SA,EUR,net,999,custom_rate,150,\n\
               Orphan GmbH,EUR,net,30,,,NOPE-404\n";
    // Act
    let (id, html) = preview(&app, &owner, &t, csv).await;
    // Assert: each bad row with its line, field and message; no commit button.
    assert_eq!(status_of(&app, &t, id), "preview");
    for (line, field, msg) in [
        ("3", "legal_name", "Enter the legal name."),
        (
            "4",
            "currency",
            "EURO is not a supported ISO 4217 currency code.",
        ),
        ("5", "terms_days", "Enter whole days from 0 to 365."),
        ("5", "tax_rate", "Enter a rate between 0 and 100"),
        ("6", "parent", "No account has the number NOPE-404."),
    ] {
        assert!(html.contains(&format!("<td>{line}</td>")), "line {line}");
        assert!(
            html.contains(&format!("<strong>{field}</strong>: {msg}")),
            "{field}: {msg}\n{html}"
        );
    }
    assert!(html.contains("Nothing has been written"));
    assert!(!html.contains("Import all rows"));
    assert_eq!(accounts_count(&app, &t), 0, "the preview wrote nothing");
    // Committing anyway is refused.
    let r = app
        .post_form(&owner, &format!("/t/{}/imports/{id}/commit", t.slug), &[])
        .await;
    assert_eq!(r.status().as_u16(), 409);
    assert_eq!(accounts_count(&app, &t), 0);
}

#[tokio::test]
async fn a_clean_import_commits_every_row_and_flags_duplicates() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "imq").await;
    put_account(&app, &t, "Existing Customer Inc.", None);
    // Rows may refer to parents created earlier in the same file.
    let csv = "account_number,legal_name,parent,bill_to_parent,domain,custom.unknown_col\n\
               P-1,Parent Holdings,,,,\n";
    let (_, html) = preview(&app, &owner, &t, csv).await;
    assert!(html.contains("Unknown column(s): custom.unknown_col"));
    let csv = "account_number,legal_name,parent,bill_to_parent,domain\n\
               P-1,Parent Holdings,,,parent.example\n\
               C-1,Child One,P-1,yes,\n\
               C-2,Existing Customer GmbH,,,\n\
               C-3,Parent Holdings Ltd,,,\n";
    let (id, html) = preview(&app, &owner, &t, csv).await;
    assert!(html.contains("Import all rows"), "{html}");
    assert!(html.contains("Looks like Existing Customer Inc."));
    assert!(
        html.contains("Looks like Parent Holdings"),
        "in-file duplicate flagged"
    );
    assert_eq!(accounts_count(&app, &t), 1);
    // Act: commit, skipping duplicates.
    commit(&app, &owner, &t, id, &[("on_duplicate", "skip")]).await;
    // Assert
    assert_eq!(accounts_count(&app, &t), 3);
    let html = app
        .html(&owner, &format!("/t/{}/imports/{id}", t.slug))
        .await;
    assert!(
        html.contains("2 created, 0 updated, 2 skipped as duplicates"),
        "{html}"
    );
    let child = in_tenant(&mut app.conn(), &t.schema(), |c| {
        arbor::accounts::repo::id_by_number(c, "C-1")
    })
    .unwrap()
    .unwrap();
    let parent = in_tenant(&mut app.conn(), &t.schema(), |c| {
        arbor::accounts::repo::id_by_number(c, "P-1")
    })
    .unwrap()
    .unwrap();
    let payer = in_tenant(&mut app.conn(), &t.schema(), |c| {
        arbor::accounts::repo::bill_to(c, child)
    })
    .unwrap();
    assert_eq!(payer.id, parent);
    // A second commit of the same import does nothing.
    let r = app
        .post_form(&owner, &format!("/t/{}/imports/{id}/commit", t.slug), &[])
        .await;
    assert_eq!(r.status().as_u16(), 409);
    assert_eq!(accounts_count(&app, &t), 3);
}

#[tokio::test]
async fn an_export_edited_and_imported_back_updates_the_same_accounts() {
    // Arrange
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "rt").await;
    let a = put_account(&app, &t, "Round Trip Ltd", None);
    let b = put_account(&app, &t, "=HYPERLINK(\"x\") Corp", None);
    app.post_form(
        &owner,
        &format!("/t/{}/accounts/{a}/contacts", t.slug),
        &[
            ("name", "Rita Receivable"),
            ("email", "rita@roundtrip.example"),
        ],
    )
    .await;
    // Act: export
    let r = app
        .get(&owner, &format!("/t/{}/accounts.csv", t.slug))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("id,account_number,legal_name"));
    assert!(csv.contains(&format!("{a},")) && csv.contains("Round Trip Ltd"));
    assert!(csv.contains("'=HYPERLINK"), "formulas are neutralised");
    let contacts = app
        .html(&owner, &format!("/t/{}/contacts.csv", t.slug))
        .await;
    assert!(contacts.contains(&format!(",{a},")) && contacts.contains("rita@roundtrip.example"));
    // Edit in the "spreadsheet" and import back.
    let edited = csv
        .replace("Round Trip Ltd", "Round Trip Limited")
        .replace(",net,30,", ",net,45,");
    let (id, html) = preview(&app, &owner, &t, &edited).await;
    assert!(html.contains("<strong>0</strong> to create"), "{html}");
    assert!(html.contains("<strong>2</strong> to update"), "{html}");
    commit(&app, &owner, &t, id, &[]).await;
    // Assert: same ids, new values, formula restored as plain text.
    let ra = account(&app, &t, a);
    assert_eq!(
        (ra.legal_name.as_str(), ra.terms_days),
        ("Round Trip Limited", 45)
    );
    assert_eq!(account(&app, &t, b).legal_name, "=HYPERLINK(\"x\") Corp");
    assert_eq!(accounts_count(&app, &t), 2);
}

#[tokio::test]
async fn uploads_that_are_not_csv_get_a_clear_message() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "upl").await;
    let r = upload(&app, &owner, &t, "").await;
    assert_eq!(r.status().as_u16(), 422);
    assert!(r.text().await.unwrap().contains("Choose a CSV file"));
    let r = upload(&app, &owner, &t, "legal_name\n").await;
    assert_eq!(r.status().as_u16(), 422);
    assert!(r.text().await.unwrap().contains("no data rows"));
}

async fn upload_contacts(
    app: &TestApp,
    client: &reqwest::Client,
    t: &TestTenant,
    csv: &str,
) -> i64 {
    let r = upload_kind(app, client, t, "contacts", csv).await;
    assert_eq!(r.status().as_u16(), 303);
    let id: i64 = location(&r).rsplit('/').next().unwrap().parse().unwrap();
    assert!(
        app.eventually(Duration::from_secs(20), || status_of(app, t, id)
            != "validating")
            .await
    );
    id
}

#[tokio::test]
async fn contacts_import_creates_updates_and_moves_or_writes_nothing() {
    // Arrange
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "cimp").await;
    let a = put_account(&app, &t, "Contact Home Ltd", None);
    let b = put_account(&app, &t, "Contact New Home Ltd", None);
    let (na, nb) = (
        account(&app, &t, a).account_number,
        account(&app, &t, b).account_number,
    );
    // A bad file: each row reported, nothing written.
    let bad = format!("account_number,name,email,roles,receives_invoices\n{na},Ok Person,ok@home.example,billing,yes\nNOPE-1,Lost Person,,,\n{na},,x@home.example,,\n{na},Bad Role,b@home.example,ceo,\n{na},No Mail,,,yes\n");
    let id = upload_contacts(&app, &owner, &t, &bad).await;
    let html = app
        .html(&owner, &format!("/t/{}/imports/{id}", t.slug))
        .await;
    for msg in [
        "No account has the number NOPE-1.",
        "Enter the contact&#39;s name.",
        "is not a role",
        "An email address is needed",
    ] {
        assert!(html.contains(msg), "{msg}\n{html}");
    }
    assert!(!html.contains("Import all rows"));
    // A good file creates.
    let good = format!("account_number,name,email,roles,receives_invoices\n{na},Ok Person,ok@home.example,billing;signer,yes\n");
    let id = upload_contacts(&app, &owner, &t, &good).await;
    commit(&app, &owner, &t, id, &[]).await;
    // Export, change the account and the phone, import back: the same contact moves.
    let csv = app
        .html(&owner, &format!("/t/{}/contacts.csv", t.slug))
        .await;
    let edited = csv
        .replace(&format!(",{a},{na},"), &format!(",,{nb},"))
        .replace(",ok@home.example,,", ",ok@home.example,+44 20 7946 0000,");
    let id = upload_contacts(&app, &owner, &t, &edited).await;
    let html = app
        .html(&owner, &format!("/t/{}/imports/{id}", t.slug))
        .await;
    assert!(
        html.contains("<strong>1</strong> to update"),
        "{html}\n{edited}"
    );
    commit(&app, &owner, &t, id, &[]).await;
    let page = app
        .html(&owner, &format!("/t/{}/accounts/{b}?tab=contacts", t.slug))
        .await;
    assert!(page.contains("ok@home.example") && page.contains("+44 20 7946 0000"));
    assert!(crate::helpers::audit_actions(&app, &t).contains(&"contact.moved".to_string()));
}
