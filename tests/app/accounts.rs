//! Accounts: creation and validation, hierarchy rules, bill-to-parent, duplicates, merge,
//! contacts and the sales restrictions.

use arbor::{
    accounts::{repo, service},
    audit::Actor,
    auth::Role,
    db::scope::in_tenant,
};
use diesel::{QueryableByName, RunQueryDsl};

use crate::helpers::{audit_actions, location, member, new_client, TestApp, TestTenant};

/// Creates an account through the production service code (system actor).
pub fn put_account(app: &TestApp, t: &TestTenant, legal_name: &str, owner: Option<i64>) -> i64 {
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        let mut d = service::blank("EUR");
        d.legal_name = legal_name.into();
        d.display_name = legal_name.into();
        d.owner_user_id = owner;
        match service::create(c, &Actor::system(), d, true, None)? {
            service::Saved::Done(id) => Ok(id),
            other => panic!("not created: {other:?}"),
        }
    })
    .unwrap()
}

pub fn account(app: &TestApp, t: &TestTenant, id: i64) -> repo::Account {
    in_tenant(&mut app.conn(), &t.schema(), |c| repo::get(c, id))
        .unwrap()
        .unwrap()
}

pub fn count(app: &TestApp, t: &TestTenant, table: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(diesel::sql_query(format!("SELECT count(*) AS n FROM {table}")).get_result::<N>(c)?)
    })
    .unwrap()
    .n
}

pub fn id_from(resp: &reqwest::Response) -> i64 {
    location(resp).rsplit('/').next().unwrap().parse().unwrap()
}

pub async fn create(
    app: &TestApp,
    client: &reqwest::Client,
    t: &TestTenant,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    app.post_form(client, &format!("/t/{}/accounts", t.slug), fields)
        .await
}

#[tokio::test]
async fn an_account_is_created_listed_and_shown_with_defaults() {
    // Arrange
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "acc").await;
    // Act
    let r = create(
        &app,
        &owner,
        &t,
        &[
            ("legal_name", "Globex Corporation"),
            ("display_name", "Globex"),
            ("tax_id", "US 12-3456789"),
            ("currency", "usd"),
            ("terms_kind", "eom"),
            ("terms_days", "15"),
            ("billing_line1", "1 Globex Way"),
            ("billing_city", "Cypress Creek"),
            ("crm_ids", "salesforce:0015g00000GLOBEX"),
        ],
    )
    .await;
    // Assert
    assert_eq!(r.status().as_u16(), 303, "{}", r.text().await.unwrap());
    let id = id_from(&r);
    let a = account(&app, &t, id);
    assert_eq!(a.currency, "USD");
    assert_eq!(a.terms_kind, "eom");
    assert_eq!(a.terms_days, 15);
    assert!(a.account_number.starts_with("ACC-"));
    let list = app
        .html(&owner, &format!("/t/{}/accounts?q=glob", t.slug))
        .await;
    assert!(list.contains("Globex") && list.contains(&a.account_number));
    let detail = app
        .html(&owner, &format!("/t/{}/accounts/{id}", t.slug))
        .await;
    assert!(detail.contains("End of month + 15"));
    // Embedded partials are real markup, not escaped text.
    assert!(detail.contains("<article id=\"section-terms\"") && !detail.contains("&#60;article"));
    assert!(detail.contains("salesforce:0015g00000GLOBEX"));
    assert!(audit_actions(&app, &t).contains(&"account.created".to_string()));
    // A search that matches nothing shows the empty state, not an error.
    let none = app
        .get(
            &owner,
            &format!("/t/{}/accounts?q=zzzz&sort=bogus&page=-3", t.slug),
        )
        .await;
    assert_eq!(none.status().as_u16(), 200);
    assert!(none.text().await.unwrap().contains("No accounts match"));
}

#[tokio::test]
async fn invalid_input_is_reported_per_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "inv").await;
    let r = create(
        &app,
        &owner,
        &t,
        &[
            ("legal_name", ""),
            ("currency", "XYZ"),
            ("tax_mode", "exempt"),
            ("terms_days", "900"),
            ("domain", "not a domain"),
            ("crm_ids", "no-colon"),
        ],
    )
    .await;
    assert_eq!(r.status().as_u16(), 422);
    let html = r.text().await.unwrap();
    for msg in [
        "Enter the legal name.",
        "XYZ is not a supported ISO 4217 currency code.",
        "Enter the exemption certificate reference.",
        "Enter whole days from 0 to 365.",
        "Enter a domain like acme.com.",
        "as system:id",
    ] {
        assert!(html.contains(msg), "missing message {msg:?}");
    }
    assert_eq!(count(&app, &t, "accounts"), 0);
}

/// Saves one section of an account's form at its current version.
pub async fn save_section(
    app: &TestApp,
    client: &reqwest::Client,
    t: &TestTenant,
    id: i64,
    section: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let version = account(app, t, id).version.to_string();
    let mut all = fields.to_vec();
    all.push(("version", &version));
    app.post_form(
        client,
        &format!("/t/{}/accounts/{id}/{section}", t.slug),
        &all,
    )
    .await
}

pub async fn set_parent(
    app: &TestApp,
    client: &reqwest::Client,
    t: &TestTenant,
    id: i64,
    parent: &str,
) -> reqwest::Response {
    let a = account(app, t, id);
    let fields = [
        ("legal_name", a.legal_name.as_str()),
        ("account_number", &a.account_number),
        ("parent", parent),
    ];
    save_section(app, client, t, id, "general", &fields).await
}

#[tokio::test]
async fn a_hierarchy_cycle_is_rejected_by_the_form_and_by_the_database() {
    // Arrange: Holding > Europe > Germany
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "cyc").await;
    let holding = put_account(&app, &t, "Holding AG", None);
    let europe = put_account(&app, &t, "Europe BV", None);
    let germany = put_account(&app, &t, "Germany GmbH", None);
    let num = |id| account(&app, &t, id).account_number;
    assert_eq!(
        set_parent(&app, &owner, &t, europe, &num(holding))
            .await
            .status()
            .as_u16(),
        303
    );
    assert_eq!(
        set_parent(&app, &owner, &t, germany, &num(europe))
            .await
            .status()
            .as_u16(),
        303
    );
    // Act: make Holding a child of its grandchild.
    let r = set_parent(&app, &owner, &t, holding, &num(germany)).await;
    // Assert
    assert_eq!(r.status().as_u16(), 422);
    assert!(r.text().await.unwrap().contains("that would make a loop"));
    assert_eq!(account(&app, &t, holding).parent_id, None);
    // Its own parent is refused too.
    let r = set_parent(&app, &owner, &t, holding, &num(holding)).await;
    assert_eq!(r.status().as_u16(), 422);
    // The trigger refuses what bypasses the application.
    let err = in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(diesel::sql_query(format!(
            "UPDATE accounts SET parent_id = {germany} WHERE id = {holding}"
        ))
        .execute(c)?)
    });
    assert!(format!("{err:?}").contains("cycle"), "{err:?}");
    // The parent's page shows the tree; the grandchild's breadcrumb shows its ancestors.
    let html = app
        .html(&owner, &format!("/t/{}/accounts/{holding}", t.slug))
        .await;
    assert!(html.contains("Europe BV") && html.contains("Germany GmbH"));
    let html = app
        .html(&owner, &format!("/t/{}/accounts/{germany}", t.slug))
        .await;
    assert!(html.contains(&format!("/accounts/{holding}\">Holding AG")));
}

#[tokio::test]
async fn bill_to_parent_resolves_to_the_nearest_paying_ancestor() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "b2p").await;
    let group = put_account(&app, &t, "Group plc", None);
    let region = put_account(&app, &t, "Region Ltd", None);
    let branch = put_account(&app, &t, "Branch Ltd", None);
    let num = |id| account(&app, &t, id).account_number;
    set_parent(&app, &owner, &t, region, &num(group)).await;
    set_parent(&app, &owner, &t, branch, &num(region)).await;
    let terms = |id: i64, b2p: &'static str| {
        let (app, owner, t) = (&app, &owner, &t);
        async move {
            let fields = [
                ("currency", "EUR"),
                ("terms_kind", "net"),
                ("terms_days", "30"),
                ("bill_to_parent", b2p),
            ];
            save_section(app, owner, t, id, "terms", &fields).await
        }
    };
    // Bill-to-parent without a parent is refused.
    let r = terms(group, "yes").await;
    assert_eq!(r.status().as_u16(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Set a parent account before billing to it."));
    // Branch bills to Region, which pays for itself.
    assert_eq!(terms(branch, "yes").await.status().as_u16(), 303);
    let payer = |id| {
        in_tenant(&mut app.conn(), &t.schema(), |c| repo::bill_to(c, id))
            .unwrap()
            .id
    };
    assert_eq!(payer(branch), region);
    // Region bills to Group as well: Branch's invoices go to Group.
    assert_eq!(terms(region, "yes").await.status().as_u16(), 303);
    assert_eq!(payer(branch), group);
    assert_eq!(payer(group), group);
    let html = app
        .html(&owner, &format!("/t/{}/accounts/{branch}", t.slug))
        .await;
    assert!(
        html.contains("Group plc (") && html.contains("billed to parent"),
        "detail names the payer"
    );
}

#[tokio::test]
async fn a_stale_edit_is_refused_instead_of_overwriting() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "stale").await;
    let id = put_account(&app, &t, "Vandelay Industries", None);
    let a = account(&app, &t, id);
    let edit = |name: &'static str| {
        let path = format!("/t/{}/accounts/{id}/general", t.slug);
        let (number, owner, app) = (a.account_number.clone(), owner.clone(), &app);
        async move {
            app.post_form(
                &owner,
                &path,
                &[
                    ("legal_name", name),
                    ("account_number", &number),
                    ("version", "1"),
                ],
            )
            .await
        }
    };
    assert_eq!(edit("Vandelay Imports").await.status().as_u16(), 303);
    let r = edit("Vandelay Exports").await;
    assert_eq!(r.status().as_u16(), 409);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Someone else changed this account"));
    assert_eq!(account(&app, &t, id).legal_name, "Vandelay Imports");
}

#[tokio::test]
async fn sales_see_only_their_accounts_and_cannot_touch_terms() {
    // Arrange
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "sal").await;
    let (sales, sales_id, _) = member(&app, &t, Role::Sales).await;
    let theirs = put_account(&app, &t, "Own Customer", Some(sales_id));
    let other = put_account(&app, &t, "Someone Else's Customer", None);
    // Act / Assert: reading
    let list = app.html(&sales, &format!("/t/{}/accounts", t.slug)).await;
    assert!(list.contains("Own Customer") && !list.contains("Someone Else"));
    assert_eq!(
        app.status(&sales, &format!("/t/{}/accounts/{other}", t.slug))
            .await,
        404
    );
    assert_eq!(
        app.status(&sales, &format!("/t/{}/accounts/{theirs}", t.slug))
            .await,
        200
    );
    // Terms: the terms form and save are forbidden; sneaking terms into create is too.
    assert_eq!(
        app.status(
            &sales,
            &format!("/t/{}/accounts/{theirs}/terms/edit", t.slug)
        )
        .await,
        403
    );
    let a = account(&app, &t, theirs);
    let r = save_section(
        &app,
        &sales,
        &t,
        theirs,
        "terms",
        &[
            ("currency", "USD"),
            ("terms_kind", "net"),
            ("terms_days", "90"),
        ],
    )
    .await;
    assert_eq!(r.status().as_u16(), 403);
    let r = create(
        &app,
        &sales,
        &t,
        &[("legal_name", "New Prospect"), ("terms_days", "120")],
    )
    .await;
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(account(&app, &t, theirs).terms_days, 30);
    // Creating without terms works and the account is theirs, with the tenant defaults.
    let r = create(&app, &sales, &t, &[("legal_name", "New Prospect")]).await;
    assert_eq!(r.status().as_u16(), 303);
    let created = account(&app, &t, id_from(&r));
    assert_eq!(created.owner_user_id, Some(sales_id));
    assert_eq!(
        (created.terms_kind.as_str(), created.terms_days),
        ("net", 30)
    );
    // They may edit general fields of their own account but not give it away.
    let someone_else = t.id.to_string();
    let fields = [
        ("legal_name", "Own Customer Ltd"),
        ("account_number", a.account_number.as_str()),
        ("owner", &someone_else),
    ];
    let r = save_section(&app, &sales, &t, theirs, "general", &fields).await;
    assert_eq!(r.status().as_u16(), 422);
    let r = save_section(
        &app,
        &sales,
        &t,
        theirs,
        "general",
        &[
            ("legal_name", "Own Customer Ltd"),
            ("account_number", &a.account_number),
        ],
    )
    .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(account(&app, &t, theirs).legal_name, "Own Customer Ltd");
    // Finance may set terms.
    let (finance, _, _) = member(&app, &t, Role::Finance).await;
    let r = save_section(
        &app,
        &finance,
        &t,
        theirs,
        "terms",
        &[
            ("currency", "USD"),
            ("terms_kind", "net"),
            ("terms_days", "45"),
        ],
    )
    .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(account(&app, &t, theirs).terms_days, 45);
}

#[tokio::test]
async fn a_contact_moves_to_another_account_with_its_history() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "con").await;
    let old = put_account(&app, &t, "Old Employer", None);
    let new = put_account(&app, &t, "New Employer", None);
    // Validation: invoices need an email.
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/accounts/{old}/contacts", t.slug),
            &[("name", "Jo"), ("receives_invoices", "yes")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("An email address is needed"));
    assert_eq!(count(&app, &t, "contacts"), 0);
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/accounts/{old}/contacts", t.slug),
            &[
                ("name", "Jo Billing"),
                ("email", "Jo@Old.example"),
                ("role_billing", "on"),
                ("receives_invoices", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let html = app
        .html(
            &owner,
            &format!("/t/{}/accounts/{old}?tab=contacts", t.slug),
        )
        .await;
    assert!(html.contains("jo@old.example") && html.contains("Billing contact"));
    assert!(
        html.contains("<div id=\"contacts\">"),
        "contacts tab is markup"
    );
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let cid = in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(diesel::sql_query("SELECT id FROM contacts").get_result::<Id>(c)?)
    })
    .unwrap()
    .id;
    // Act
    let bad = app
        .post_form(
            &owner,
            &format!("/t/{}/contacts/{cid}/move", t.slug),
            &[("account", "NOPE-1")],
        )
        .await;
    assert_eq!(bad.status().as_u16(), 422);
    let number = account(&app, &t, new).account_number;
    let r = app
        .post_form(
            &owner,
            &format!("/t/{}/contacts/{cid}/move", t.slug),
            &[("account", &number), ("reason", "changed jobs")],
        )
        .await;
    // Assert
    assert_eq!(r.status().as_u16(), 303);
    let page = app
        .html(&owner, &format!("/t/{}/contacts/{cid}", t.slug))
        .await;
    assert!(
        page.contains("New Employer")
            && page.contains("contact.moved")
            && page.contains("changed jobs")
    );
    assert!(audit_actions(&app, &t).contains(&"contact.moved".to_string()));
}

#[tokio::test]
async fn inline_edits_over_htmx_return_only_the_section() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "htmx").await;
    let id = put_account(&app, &t, "Sirius Cybernetics", None);
    let token = app.csrf(&owner).await;
    // The edit form comes back as a fragment.
    let form = owner
        .get(app.url(&format!("/t/{}/accounts/{id}/addresses/edit", t.slug)))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        form.starts_with("\n<article id=\"section-addresses\"")
            || form
                .trim_start()
                .starts_with("<article id=\"section-addresses\""),
        "{form}"
    );
    assert!(!form.contains("<html"));
    let post = |fields: Vec<(&'static str, String)>| {
        let (owner, url, token) = (
            owner.clone(),
            app.url(&format!("/t/{}/accounts/{id}/addresses", t.slug)),
            token.clone(),
        );
        async move {
            owner
                .post(url)
                .header("HX-Request", "true")
                .header("X-CSRF-Token", token)
                .form(&fields)
                .send()
                .await
                .unwrap()
        }
    };
    // A mistake: 422 with the form fragment and the message next to the field.
    let r = post(vec![
        ("billing_city", "x".repeat(201)),
        ("version", "1".into()),
    ])
    .await;
    assert_eq!(r.status().as_u16(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("Use at most 200 characters.") && !html.contains("<html"));
    assert_eq!(account(&app, &t, id).version, 1, "nothing written");
    // Success: the display fragment with the new value.
    let r = post(vec![
        ("billing_line1", "Frogstar B".into()),
        ("billing_city", "Megabrantis".into()),
        ("version", "1".into()),
    ])
    .await;
    assert_eq!(r.status().as_u16(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Frogstar B")
            && html.contains("<dl class=\"facts\">")
            && !html.contains("<html")
    );
    assert_eq!(account(&app, &t, id).billing().city, "Megabrantis");
}

#[tokio::test]
async fn the_new_account_form_opens_on_the_workspace_defaults() {
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = app.signup(&owner, "def").await;
    in_tenant(&mut app.conn(), &t.schema(), |c| {
        Ok(diesel::sql_query(
            "INSERT INTO settings (key, value) VALUES ('company.currency', '\"CHF\"')",
        )
        .execute(c)?)
    })
    .unwrap();
    let html = app
        .html(&owner, &format!("/t/{}/accounts/new", t.slug))
        .await;
    assert!(
        html.contains("<option value=\"CHF\" selected>"),
        "default currency preselected"
    );
    assert!(html.contains("name=\"terms_days\" value=\"30\""));
}

#[tokio::test]
async fn accounts_of_another_tenant_are_invisible_through_every_account_route() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (new_client(), new_client());
    let a = app.signup(&alice, "iso-a").await;
    let b = app.signup(&bob, "iso-b").await;
    let secret = put_account(&app, &b, "Bravo Secret Customer", None);
    let b_number = account(&app, &b, secret).account_number;
    // Alice, in B's workspace: 404 everywhere.
    for path in [
        "/accounts",
        "/accounts.csv",
        "/contacts.csv",
        &format!("/accounts/{secret}"),
        &format!("/accounts/{secret}/merge"),
    ] {
        let r = app.get(&alice, &format!("/t/{}{path}", b.slug)).await;
        assert_eq!(r.status().as_u16(), 404, "{path}");
        assert!(!r.text().await.unwrap().contains("Bravo Secret"));
    }
    // In her own workspace B's id and number resolve to nothing.
    assert_eq!(
        app.status(&alice, &format!("/t/{}/accounts/{secret}", a.slug))
            .await,
        404
    );
    let csv = app
        .html(&alice, &format!("/t/{}/accounts.csv", a.slug))
        .await;
    assert!(!csv.contains("Bravo"));
    let own = put_account(&app, &a, "Alpha Customer", None);
    let r = app
        .post_form(
            &alice,
            &format!("/t/{}/accounts/{own}/merge", a.slug),
            &[("other", &b_number)],
        )
        .await;
    // B's number names at most an account of A's own (never B's): the merge is refused.
    assert_eq!(r.status().as_u16(), 422);
    assert_eq!(account(&app, &b, secret).status, "active");
}
