//! The demo tenant: a realistic small finance team so a new user sees a working app.
//! Provisioning is idempotent: running `arbor demo` again keeps existing data.

use anyhow::{anyhow, Context};
use diesel::{ExpressionMethods, PgConnection, RunQueryDsl};
use serde_json::json;

use crate::{
    audit::{self, Actor, Entry},
    auth::{domain::PersonName, password, repo as users, Email, Role},
    db::{self, schema::tenant::settings, scope},
    email::message::OutgoingEmail,
    jobs::outbox,
    tenants::{provision, repo as tenants, TenantName, TenantSlug},
    web::csrf::random_token,
};

pub const SLUG: &str = "demo";
pub const PASSWORD: &str = "arbor-demo-2026";

pub struct DemoInfo {
    pub tenant_name: String,
    pub owner_email: String,
    pub others: Vec<(String, String)>,
}

const OWNER: (&str, &str) = ("dana.whitfield@northwind.example", "Dana Whitfield");
const TEAM: [(&str, &str, Role); 4] = [
    (
        "farid.haddad@northwind.example",
        "Farid Haddad",
        Role::Finance,
    ),
    (
        "chloe.martin@northwind.example",
        "Chloé Martin",
        Role::Collections,
    ),
    ("sam.okafor@northwind.example", "Sam Okafor", Role::Sales),
    (
        "ines.kowalski@northwind.example",
        "Inès Kowalski",
        Role::Auditor,
    ),
];
const NAME: &str = "Northwind Supplies Ltd";

fn user_id(conn: &mut PgConnection, email: &str, name: &str, hash: &str) -> anyhow::Result<i64> {
    let e = Email::parse(email).map_err(|e| anyhow!(e))?;
    match users::find_by_email(conn, &e)? {
        Some(u) => Ok(u.id),
        None => Ok(users::insert(conn, &e, name, hash)?),
    }
}

pub fn provision(pool: &db::PgPool, config: &crate::Config) -> anyhow::Result<DemoInfo> {
    let mut conn = pool.get()?;
    let c = &mut *conn;
    let hash = password::hash_blocking(PASSWORD)?;
    let info = DemoInfo {
        tenant_name: NAME.to_owned(),
        owner_email: OWNER.0.to_owned(),
        others: TEAM
            .iter()
            .map(|(e, _, r)| ((*e).to_owned(), r.label().to_owned()))
            .collect(),
    };
    if tenants::find_id_by_slug(c, SLUG)?.is_some() {
        return Ok(info);
    }
    let owner = user_id(c, OWNER.0, OWNER.1, &hash)?;
    let slug = TenantSlug::parse(SLUG).map_err(|e| anyhow!(e))?;
    let name = TenantName::parse(NAME).map_err(|e| anyhow!(e))?;
    let p = provision::provision(c, &slug, &name, provision::Owner::Existing(owner))?;
    let mut invited = Vec::new();
    let mut member_ids = Vec::new();
    for (email, person, role) in TEAM {
        let id = user_id(c, email, person, &hash)?;
        provision::add_member(c, p.tenant_id, id, role)?;
        invited.push((email, person, role));
        member_ids.push((id, role));
    }
    scope::in_tenant(c, &p.schema, |c| {
        let owner_actor = Actor {
            user_id: Some(owner),
            email: Some(OWNER.0.to_owned()),
            ip: None,
        };
        audit::record(
            c,
            &owner_actor,
            &Entry::new("tenant.created", "tenant", p.tenant_id)
                .after(json!({ "slug": SLUG, "name": NAME })),
        )?;
        for (uid, role) in &member_ids {
            audit::record(
                c,
                &owner_actor,
                &Entry::new("member.joined", "member", uid).after(json!({ "role": role.as_str() })),
            )?;
        }
        let company = [
            ("company.legal_name", json!("Northwind Supplies Ltd")),
            (
                "company.address",
                json!("14 Harbour Street\nBristol BS1 4QA\nUnited Kingdom"),
            ),
            ("company.tax_id", json!("GB 123 4567 89")),
            (
                "company.bank",
                json!("Barclays · IBAN GB33 BUKB 2020 1555 5555 55 · BIC BUKBGB22"),
            ),
            ("company.currency", json!("GBP")),
            ("company.timezone", json!("Europe/London")),
        ];
        for (k, v) in company {
            diesel::insert_into(settings::table)
                .values((settings::key.eq(k), settings::value.eq(v)))
                .on_conflict(settings::key)
                .do_nothing()
                .execute(c)?;
        }
        let sales = member_ids
            .iter()
            .find(|(_, r)| *r == Role::Sales)
            .map_or(owner, |(id, _)| *id);
        crate::accounts::demo_data::seed(c, &owner_actor, owner, sales)?;
        let links = crate::invoicing::email::Links {
            base_url: config.base_url.clone(),
            slug: SLUG.to_owned(),
            tenant_id: p.tenant_id,
            key: config.secret_key.clone(),
        };
        crate::invoicing::demo_data::seed(
            c,
            &owner_actor,
            &links,
            chrono::Utc::now().date_naive(),
        )?;
        crate::dunning::demo_data::seed(c, &links, owner, chrono::Utc::now().date_naive())?;
        for (email, person, role) in &invited {
            let mail = OutgoingEmail {
                to: vec![(*email).to_owned()],
                cc: vec![],
                subject: format!("You have been added to {NAME} on Arbor"),
                text: format!(
                    "Hello {person},\n\nDana Whitfield added you to {NAME} on Arbor as {}.\n\
                     Sign in with your email address to get started.\n\n— Arbor",
                    role.label()
                ),
                html: None,
                attachments: vec![],
                reply_to: Some(OWNER.0.to_owned()),
                sensitive: false,
                attach_invoice_pdf: None,
                attach_invoice_pdfs: Vec::new(),
                attach_statement: None,
            };
            let payload = serde_json::to_value(&mail).map_err(crate::error::AppError::internal)?;
            outbox::enqueue(
                c,
                p.tenant_id,
                outbox::KIND_EMAIL,
                &payload,
                Some(&format!("demo-welcome:{email}")),
            )?;
        }
        Ok(())
    })?;
    Ok(info)
}

/// `arbor tenant create`.
pub fn create_tenant_cli(
    pool: &db::PgPool,
    slug: &str,
    name: &str,
    owner_email: Option<&str>,
    owner_name: &str,
) -> anyhow::Result<String> {
    let slug = TenantSlug::parse(slug).map_err(|e| anyhow!("slug: {e}"))?;
    let name = TenantName::parse(name).map_err(|e| anyhow!("name: {e}"))?;
    let mut conn = pool.get()?;
    let c = &mut *conn;
    let mut generated = None;
    let owner = match owner_email {
        Some(raw) => {
            let email = Email::parse(raw).map_err(|e| anyhow!("owner email: {e}"))?;
            match users::find_by_email(c, &email)? {
                Some(u) => provision::Owner::Existing(u.id),
                None => {
                    let pw = std::env::var("ARBOR_OWNER_PASSWORD").unwrap_or_else(|_| {
                        let p = random_token()[..20].to_owned();
                        generated = Some(p.clone());
                        p
                    });
                    let pw = crate::auth::domain::NewPassword::parse(&pw, Some(&email))
                        .map_err(|e| anyhow!("ARBOR_OWNER_PASSWORD: {e}"))?;
                    provision::Owner::New {
                        email,
                        name: PersonName::parse(owner_name)
                            .map_err(|e| anyhow!("owner name: {e}"))?,
                        password_hash: password::hash_blocking(pw.expose())?,
                    }
                }
            }
        }
        None => {
            return Err(anyhow!(
                "--owner-email is required: every tenant needs an owner who can sign in"
            ));
        }
    };
    let p = provision::provision(c, &slug, &name, owner)
        .map_err(|e| match e {
            crate::error::AppError::Validation(f) => anyhow!(
                "{}",
                f.0.iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            other => anyhow!("{other:?}"),
        })
        .context("creating tenant")?;
    let mut out = format!("created tenant {} (schema {})", p.slug, p.schema);
    if let Some(pw) = generated {
        out.push_str(&format!("\nowner password (shown once): {pw}"));
    }
    Ok(out)
}
