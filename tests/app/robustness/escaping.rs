//! Script in every user-entered field, typed through the real forms (or, for the few records
//! only the system creates, seeded with SQL), then every page fetched: no HTML response
//! carries the markup raw, and the pages that show a field carry it escaped.

use std::time::Duration;

use diesel::{sql_query, sql_types::BigInt, QueryableByName, RunQueryDsl};
use reqwest::{multipart, Client, Response};

use crate::{
    accounts::id_from,
    billing::{one, subscribe},
    crm::{deal, generic_connector, post_event},
    helpers::{new_client, TestApp, TestTenant, PASSWORD},
};

/// Markup that runs if a page prints it raw; `tag` tells which field it came from.
fn xss(tag: &str) -> String {
    format!("<script>alert('{tag}')</script><img src=x onerror=alert(1)>\"'&")
}

/// For fields with a short limit or without quotes allowed.
fn xss_short(tag: &str) -> String {
    format!("<script>alert('{tag}')")
}

/// How a page shows `xss(tag)` or `xss_short(tag)` when it escapes it (askama writes
/// numeric references: `&#60;` for `<`, `&#39;` for `'`).
fn escaped(tag: &str) -> String {
    format!("&#60;script&#62;alert(&#39;{tag}&#39;)")
}

/// What must never appear in an HTML response.
const RAW: [&str; 2] = ["<script>alert(", "<img src=x onerror"];

async fn ok(what: &str, r: Response) -> Response {
    let status = r.status().as_u16();
    if status != 200 && status != 303 {
        panic!("{what}: {status} {}", r.text().await.unwrap_or_default());
    }
    r
}

fn today_plus(days: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(days)).to_string()
}

/// Signs up through the form with script in the person's and the organisation's names.
async fn signup(app: &TestApp, client: &Client) -> TestTenant {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let slug = format!("xss-{suffix}");
    let email = format!("owner-{suffix}@xss.example");
    ok(
        "signup",
        app.post_form(
            client,
            "/signup",
            &[
                ("name", &xss("user")),
                ("email", &email),
                ("password", PASSWORD),
                ("org_name", &xss("org")),
                ("slug", &slug),
            ],
        )
        .await,
    )
    .await;
    let (id, schema) = {
        let mut c = app.conn();
        arbor::tenants::repo::find_id_by_slug(&mut c, &slug)
            .unwrap()
            .unwrap()
    };
    TestTenant {
        slug,
        email,
        id,
        schema,
    }
}

/// Every id a tenant route can name, by its placeholder.
type Ids = Vec<(&'static str, i64)>;

/// Enters the payload in every field the forms offer and returns the ids of what was made.
async fn fill_every_form(app: &TestApp, owner: &Client, t: &TestTenant) -> Ids {
    let base = format!("/t/{}", t.slug);
    let post = |path: String, fields: Vec<(&'static str, String)>| {
        let (app, owner) = (app, owner);
        async move {
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            ok(&path, app.post_form(owner, &path, &f).await).await
        }
    };
    let mut ids: Ids = Vec::new();

    // Accounts: a custom field, every text field of an account, a contact.
    post(
        format!("{base}/settings/custom-fields"),
        vec![
            ("key", "region".into()),
            ("label", xss("cflabel")),
            ("kind", "text".into()),
        ],
    )
    .await;
    let mut account = vec![
        ("legal_name", xss("legal")),
        ("display_name", xss("display")),
        ("notes", xss("notes")),
        ("po_number", xss("po")),
        ("tax_id", xss_short("taxid")),
        ("parent", String::new()),
        ("tax_mode", "exempt".into()),
        ("tax_exempt_certificate", xss("cert")),
        ("currency", "EUR".into()),
        ("custom.region", xss("cfvalue")),
    ];
    for (part, tag) in [
        ("billing_line1", "bl1"),
        ("billing_line2", "bl2"),
        ("billing_city", "bcity"),
        ("billing_region", "bregion"),
        ("billing_postal_code", "bpostal"),
        ("billing_country", "bcountry"),
        ("shipping_city", "scity"),
    ] {
        account.push((part, xss(tag)));
    }
    let aid = id_from(&post(format!("{base}/accounts"), account).await);
    post(
        format!("{base}/accounts/{aid}/contacts"),
        vec![
            ("name", xss("contact")),
            ("email", "ap@xss.example".into()),
            ("job_title", xss("job")),
            ("role_billing", "on".into()),
            ("receives_invoices", "on".into()),
        ],
    )
    .await;
    let cid = one(app, t, "SELECT id FROM contacts");

    // Catalog: product name and description, price nickname; a subscription to it.
    let pid = id_from(
        &post(
            format!("{base}/catalog/products"),
            vec![
                ("sku", "XSS-1".into()),
                ("name", xss("product")),
                ("description", xss("pdesc")),
                ("gl_revenue_account", "4000".into()),
                ("tax_category", "standard".into()),
                ("revenue_recognition", "ratable".into()),
            ],
        )
        .await,
    );
    post(
        format!("{base}/catalog/products/{pid}/prices"),
        vec![
            ("nickname", xss("nick")),
            ("currency", "EUR".into()),
            ("interval_months", "1".into()),
            ("model", "flat".into()),
            ("amount", "100".into()),
        ],
    )
    .await;
    let prid = one(app, t, "SELECT id FROM prices");
    let sid = subscribe(
        app,
        owner,
        t,
        aid,
        &[
            ("start_date", "2026-01-01"),
            ("item0_price", &prid.to_string()),
        ],
    )
    .await;

    // Billing settings: the invoice email's subject and body (used by the send below).
    post(
        format!("{base}/settings/billing"),
        vec![
            ("standard_rate", "20".into()),
            ("reduced_rate", "5".into()),
            ("subject", xss("subject")),
            ("body", xss("mailbody")),
        ],
    )
    .await;

    // Invoicing: a one-off invoice with a line, PO number and notes, finalized and sent.
    let inv = id_from(&post(format!("{base}/accounts/{aid}/invoices"), vec![]).await);
    post(
        format!("{base}/invoices/{inv}/lines"),
        vec![
            ("description", xss("line")),
            ("quantity", "1".into()),
            ("unit_price", "100".into()),
        ],
    )
    .await;
    post(
        format!("{base}/invoices/{inv}/notes"),
        vec![("po_number", xss("ipo")), ("notes", xss("inotes"))],
    )
    .await;
    let lid = one(
        app,
        t,
        &format!("SELECT id FROM invoice_lines WHERE invoice_id = {inv}"),
    );
    post(format!("{base}/invoices/{inv}/finalize"), vec![]).await;
    post(format!("{base}/invoices/{inv}/send"), vec![]).await;

    // Payments: a payment's reference; a bank file's payer and reference.
    let pay = id_from(
        &post(
            format!("{base}/accounts/{aid}/payments"),
            vec![
                ("method", "wire".into()),
                ("amount", "10".into()),
                ("reference", xss("payref")),
            ],
        )
        .await,
    );
    let bank = format!(
        "date,amount,payer,reference\n{},7.77,\"{}\",\"{}\"\n",
        today_plus(0),
        xss("payer").replace('"', "\"\""),
        xss("bankref").replace('"', "\"\""),
    );
    upload(app, owner, &format!("{base}/cash/import"), bank).await;
    let rid = one(app, t, "SELECT id FROM remittance_lines");

    // Collections: a note, a promise, a pause, a dispute; a task (made by the system from a
    // policy step, so seeded) completed with a resolution.
    post(
        format!("{base}/accounts/{aid}/collections/notes"),
        vec![("kind", "call".into()), ("body", xss("cnote"))],
    )
    .await;
    post(
        format!("{base}/accounts/{aid}/collections/promises"),
        vec![
            ("promise_amount", "5".into()),
            ("promise_date", today_plus(7)),
            ("promise_note", xss("promise")),
        ],
    )
    .await;
    post(
        format!("{base}/accounts/{aid}/collections/pause"),
        vec![
            ("action", "pause".into()),
            ("paused_until", today_plus(3)),
            ("pause_reason", xss("pause")),
        ],
    )
    .await;
    post(
        format!("{base}/invoices/{inv}/dispute"),
        vec![("action", "flag".into()), ("reason", xss("dispute"))],
    )
    .await;
    let title = xss("task").replace('\'', "''");
    let tid = one(app, t, &format!(
        "INSERT INTO collections_tasks (account_id, title, detail, due_on, source) VALUES ({aid}, '{title}', '{title}', '2026-01-10', 'manual') RETURNING id"
    ));
    let ppid = one(app, t, "SELECT id FROM promises_to_pay");

    // Dunning: a policy's name, a reminder's subject and body, a task title.
    let polid = id_from(
        &post(
            format!("{base}/settings/dunning"),
            vec![("name", xss("policy")), ("from", "standard".into())],
        )
        .await,
    );
    post(
        format!("{base}/settings/dunning/{polid}"),
        vec![
            ("rows", "2".into()),
            ("based_on", "1".into()),
            ("step0_offset", "1".into()),
            ("step0_reminder", "yes".into()),
            ("step0_subject", xss("rsubject")),
            ("step0_body", xss("rbody")),
            ("step1_offset", "5".into()),
            ("step1_task_on", "yes".into()),
            ("step1_task_title", xss("ttitle")),
            ("step1_task_assignee", "team".into()),
            ("step1_task_due", "2".into()),
        ],
    )
    .await;

    // Integrations: a CRM connector's name, a received event's company, a webhook
    // endpoint's description, an API key's name, a ledger account's name.
    let crmid = id_from(
        &post(
            format!("{base}/crm"),
            vec![("kind", "generic".into()), ("name", xss("crm"))],
        )
        .await,
    );
    let pipeline = generic_connector(app, owner, t, None).await;
    let (status, body) = post_event(
        app,
        &pipeline,
        &deal("evt-xss", "D-XSS", &xss("crmco")).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let eid = one(app, t, "SELECT id FROM crm_inbox");
    post(
        format!("{base}/settings/webhooks"),
        vec![
            ("url", "https://hooks.example/xss".into()),
            ("description", xss("hookdesc")),
            ("event_types", "invoice.finalized".into()),
        ],
    )
    .await;
    let wid = one(app, t, "SELECT id FROM webhook_endpoints");
    post(
        format!("{base}/settings/api-keys"),
        vec![("name", xss("apikey")), ("scope", "read".into())],
    )
    .await;
    post(
        format!("{base}/ledger/accounts"),
        vec![
            ("code", "X1".into()),
            ("name", xss_short("gl")),
            ("kind", "income".into()),
        ],
    )
    .await;

    // An accounts import whose row is rejected: the report names the row.
    let csv = format!(
        "legal_name,domain\n\"{}\",not a domain\n",
        xss("imported").replace('"', "\"\"")
    );
    upload(app, owner, &format!("{base}/imports"), csv).await;
    let iid = one(app, t, "SELECT id FROM imports");
    let settled = app
        .eventually(Duration::from_secs(20), || {
            one(app, t, &format!("SELECT count(*) AS id FROM imports WHERE id = {iid} AND status <> 'validating'")) == 1
        })
        .await;
    assert!(settled, "the import was checked");

    // Records only the system makes, for routes that name them.
    let run = one(
        app,
        t,
        "INSERT INTO bill_runs (run_date, trigger) VALUES ('2026-01-01', 'manual') RETURNING id",
    );
    let pmid = one(app, t, &format!("INSERT INTO payment_methods (account_id, gateway, token, brand, last4) VALUES ({aid}, 'sandbox', 'tok_sandbox_ok_00', 'Visa', '4242') RETURNING id"));
    let mail = one(app, t, "SELECT max(id) AS id FROM outbox");
    let uid = owner_id(app, t);
    let fid = one(app, t, "SELECT id FROM custom_field_defs");

    ids.extend([
        ("{aid}", aid),
        ("{cid}", cid),
        ("{fid}", fid),
        ("{iid}", iid),
        ("{pid}", pid),
        ("{prid}", prid),
        ("{sid}", sid),
        ("{inv}", inv),
        ("{lid}", lid),
        ("{pay}", pay),
        ("{rid}", rid),
        ("{tid}", tid),
        ("{ppid}", ppid),
        ("{polid}", polid),
        ("{crmid}", crmid),
        ("{eid}", eid),
        ("{wid}", wid),
        ("{run}", run),
        ("{pmid}", pmid),
        ("{id}", mail),
        ("{oid}", mail),
        ("{uid}", uid),
    ]);
    ids
}

fn owner_id(app: &TestApp, t: &TestTenant) -> i64 {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    sql_query(format!(
        "SELECT user_id AS id FROM control.memberships WHERE tenant_id = {} LIMIT 1",
        t.id
    ))
    .get_result::<Id>(&mut app.conn())
    .unwrap()
    .id
}

async fn upload(app: &TestApp, client: &Client, path: &str, csv: String) -> Response {
    let token = app.csrf(client).await;
    let part = multipart::Part::bytes(csv.into_bytes())
        .file_name("file.csv")
        .mime_str("text/csv")
        .unwrap();
    client
        .post(app.url(&format!("{path}?csrf_token={token}")))
        .multipart(
            multipart::Form::new()
                .text("kind", "accounts")
                .part("file", part),
        )
        .send()
        .await
        .unwrap()
}

/// A page as fetched: path, content type, body.
struct Page {
    path: String,
    status: u16,
    content_type: String,
    body: String,
}

async fn fetch(app: &TestApp, client: &Client, path: &str) -> Page {
    let r = app.get(client, path).await;
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = String::from_utf8_lossy(&r.bytes().await.unwrap()).into_owned();
    assert_ne!(status, 500, "GET {path}");
    Page {
        path: path.to_owned(),
        status,
        content_type,
        body,
    }
}

/// Every GET route of the tenant, with ids filled in, plain and with script in the query.
fn every_page(t: &TestTenant, ids: &Ids) -> Vec<String> {
    let query = format!(
        "?q={0}&status={0}&from={0}&who={0}&entity={0}&currency={0}",
        urlencoding(&xss("query"))
    );
    let mut paths = Vec::new();
    for route in arbor::web::routes::TENANT_ROUTES
        .iter()
        .filter(|r| r.method == "get")
    {
        let kinds: &[&str] = if route.path.contains("{kind}") {
            &["general", "terms", "addresses", "custom"]
        } else {
            &[""]
        };
        for kind in kinds {
            let mut path = format!("/t/{}{}", t.slug, route.path).replace("{kind}", kind);
            for (placeholder, id) in ids {
                path = path.replace(placeholder, &id.to_string());
            }
            assert!(!path.contains('{'), "no id for {path}");
            paths.push(path.clone());
            paths.push(format!("{path}{query}"));
        }
    }
    for (tab, _) in arbor::accounts::handlers::TABS {
        let aid = ids
            .iter()
            .find(|(p, _)| *p == "{aid}")
            .map_or(0, |(_, id)| *id);
        paths.push(format!("/t/{}/accounts/{aid}?tab={tab}", t.slug));
    }
    paths.push(format!("/t/{}/collections?who=all", t.slug));
    paths.push("/account/security".into());
    paths
}

fn urlencoding(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)]).unwrap()[2..].to_owned()
}

#[tokio::test]
async fn user_text_from_every_form_is_shown_escaped_on_every_page() {
    // Arrange
    let app = TestApp::spawn().await;
    let owner = new_client();
    let t = signup(&app, &owner).await;
    let ids = fill_every_form(&app, &owner, &t).await;
    // The usage import echoes what it could not find; nothing is stored, so check it here.
    let usage = format!(
        "subscription,sku,date,quantity,external_id\n\"{}\",API,2026-01-05,1,e1\n",
        xss("usage").replace('"', "\"\"")
    );
    let usage_page = upload(&app, &owner, &format!("/t/{}/usage/import", t.slug), usage)
        .await
        .text()
        .await
        .unwrap();
    // Act
    let mut pages = Vec::new();
    for path in every_page(&t, &ids) {
        pages.push(fetch(&app, &owner, &path).await);
    }
    // Assert: nothing raw anywhere; exports are not HTML.
    assert!(
        usage_page.contains(&escaped("usage")),
        "the usage import names the row: {}",
        &usage_page[usage_page.find("<main").unwrap_or(0)..]
    );
    for p in pages.iter().chain([&Page {
        path: "usage import".into(),
        status: 422,
        content_type: "text/html".into(),
        body: usage_page,
    }]) {
        // An export that refuses its filters answers with the HTML error page; one that
        // answers with data answers with CSV, never HTML.
        if p.path.contains(".csv") && p.status == 200 {
            assert!(
                p.content_type.starts_with("text/csv"),
                "{}: {}",
                p.path,
                p.content_type
            );
        }
        if p.content_type.starts_with("text/html") {
            for raw in RAW {
                assert!(!p.body.contains(raw), "{} prints {raw:?} raw", p.path);
            }
        }
    }
    // Assert: each field is shown, escaped, where people look for it.
    let mut missing = Vec::new();
    let mut shown = |path_end: &str, tags: &[&str]| {
        let page = pages
            .iter()
            .find(|p| p.path == format!("/t/{}{path_end}", t.slug))
            .unwrap_or_else(|| panic!("{path_end} fetched"));
        for tag in tags {
            if !page.body.contains(&escaped(tag)) {
                missing.push(format!("{path_end}: {tag}"));
            }
        }
    };
    let id = |placeholder: &str| ids.iter().find(|(p, _)| *p == placeholder).unwrap().1;
    let (aid, inv) = (id("{aid}"), id("{inv}"));
    shown("/accounts", &["org", "user", "legal", "display"]);
    shown(
        &format!("/accounts/{aid}"),
        &[
            "legal", "display", "notes", "po", "taxid", "cert", "cfvalue", "bl1", "bcity",
            "bcountry", "scity",
        ],
    );
    shown(&format!("/contacts/{}", id("{cid}")), &["contact", "job"]);
    shown("/settings/custom-fields", &["cflabel"]);
    shown("/catalog", &["product"]);
    shown(
        &format!("/catalog/products/{}", id("{pid}")),
        &["product", "pdesc", "nick"],
    );
    shown(
        &format!("/subscriptions/{}", id("{sid}")),
        &["display", "product"],
    );
    shown("/invoices", &["display"]);
    shown(
        &format!("/invoices/{inv}"),
        &["line", "ipo", "inotes", "dispute"],
    );
    shown(&format!("/payments/{}", id("{pay}")), &["payref"]);
    shown("/cash", &["payer", "bankref"]);
    shown("/collections?who=all", &["task", "display"]);
    shown(
        &format!("/accounts/{aid}/statement"),
        &["display", "payref"],
    );
    shown("/settings/billing", &["subject", "mailbody"]);
    shown("/mail", &["subject"]);
    shown(&format!("/mail/{}", id("{id}")), &["subject", "mailbody"]);
    shown("/settings/dunning", &["policy"]);
    shown(
        &format!("/settings/dunning/{}", id("{polid}")),
        &["policy", "rsubject", "rbody", "ttitle"],
    );
    shown("/crm", &["crm"]);
    shown(&format!("/crm/events/{}", id("{eid}")), &["crmco"]);
    shown("/settings/webhooks", &["hookdesc"]);
    shown("/settings/api-keys", &["apikey"]);
    shown("/ledger/accounts", &["gl"]);
    shown(&format!("/imports/{}", id("{iid}")), &["imported"]);
    shown("/members", &["user"]);
    shown("/audit", &["legal"]);
    shown(
        &format!("/accounts/{aid}?tab=contacts"),
        &["contact", "job"],
    );
    shown(&format!("/accounts/{aid}?tab=subscriptions"), &["display"]);
    shown(&format!("/accounts/{aid}?tab=invoices"), &["display"]);
    shown(&format!("/accounts/{aid}?tab=payments"), &["payref"]);
    shown(
        &format!("/accounts/{aid}?tab=collections"),
        &["cnote", "promise", "pause", "task"],
    );
    shown(&format!("/accounts/{aid}?tab=activity"), &["legal"]);
    // The customer's hosted invoice page, reached by the link in the invoice email.
    let url = {
        let nonce = arbor::db::scope::in_tenant(&mut app.conn(), &t.schema(), |c| {
            arbor::invoicing::email::share_nonce(c, inv)
        })
        .unwrap();
        crate::billing::links(&app, &t).hosted(inv, &nonce)
    };
    let hosted = new_client().get(&url).send().await.unwrap();
    assert_eq!(hosted.status(), 200, "{url}");
    let hosted = hosted.text().await.unwrap();
    for raw in RAW {
        assert!(
            !hosted.contains(raw),
            "the hosted invoice prints {raw:?} raw"
        );
    }
    for tag in ["org", "line"] {
        if !hosted.contains(&escaped(tag)) {
            missing.push(format!("hosted invoice: {tag}"));
        }
    }
    assert!(missing.is_empty(), "not shown escaped: {missing:#?}");
}
