//! Demo accounts for `arbor demo`: a group with subsidiaries billed to the parent, customers
//! in three currencies with different terms and tax profiles, contacts with roles, custom
//! fields, and one likely duplicate waiting to be merged.

use diesel::{prelude::*, PgConnection};
use rust_decimal::Decimal;
use serde_json::json;

use super::{
    contacts_repo::{self, ContactData},
    domain::Address,
    repo::AccountData,
    service::{self, Saved},
};
use crate::{
    audit::{self, Actor, Entry},
    db::schema::tenant::custom_field_defs as defs,
    error::{AppError, AppResult},
};

struct Demo<'a> {
    number: &'a str,
    legal: &'a str,
    display: &'a str,
    currency: &'a str,
    terms: (&'a str, i32),
    tax: (&'a str, Option<Decimal>, Option<&'a str>),
    tax_id: Option<&'a str>,
    domain: Option<&'a str>,
    parent: Option<i64>,
    bill_to_parent: bool,
    city: (&'a str, &'a str, &'a str, &'a str),
    delivery: &'a str,
    region: &'a str,
}

fn account(c: &mut PgConnection, actor: &Actor, owner: Option<i64>, d: Demo<'_>) -> AppResult<i64> {
    let mut a: AccountData = service::blank(d.currency);
    a.account_number = d.number.into();
    a.legal_name = d.legal.into();
    a.display_name = d.display.into();
    a.terms_kind = d.terms.0.into();
    a.terms_days = d.terms.1;
    a.tax_mode = d.tax.0.into();
    a.tax_rate = d.tax.1;
    a.tax_exempt_certificate = d.tax.2.map(str::to_owned);
    a.tax_id = d.tax_id.map(str::to_owned);
    a.domain = d.domain.map(str::to_owned);
    a.parent_id = d.parent;
    a.bill_to_parent = d.bill_to_parent;
    a.invoice_delivery = d.delivery.into();
    a.owner_user_id = owner;
    a.billing_address = Address {
        line1: d.city.0.into(),
        city: d.city.1.into(),
        postal_code: d.city.2.into(),
        country: d.city.3.into(),
        ..Address::default()
    };
    a.custom_fields.insert("region".into(), d.region.into());
    match service::create(c, actor, a, true, Some("demo data".into()))? {
        Saved::Done(id) => Ok(id),
        _ => Err(AppError::internal(anyhow::anyhow!(
            "demo account not created"
        ))),
    }
}

fn contact(
    c: &mut PgConnection,
    actor: &Actor,
    account: i64,
    name: &str,
    email: &str,
    roles: &[&str],
    invoices: bool,
) -> AppResult<()> {
    let d = ContactData {
        name: name.into(),
        email: Some(email.into()),
        phone: None,
        job_title: None,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        receives_invoices: invoices,
        receives_reminders: invoices,
        status: "active".into(),
    };
    let id = contacts_repo::insert(c, account, &d)?;
    audit::record(
        c,
        actor,
        &Entry::new("contact.created", "contact", id).after(d.audit_json()),
    )
}

/// Seeds the demo accounts; `sales` owns some of them.
pub fn seed(c: &mut PgConnection, actor: &Actor, owner: i64, sales: i64) -> AppResult<()> {
    diesel::insert_into(defs::table)
        .values((
            defs::key.eq("region"),
            defs::label.eq("Sales region"),
            defs::kind.eq("choice"),
            defs::choices.eq(vec!["EMEA", "AMER", "APAC"]),
            defs::required.eq(false),
            defs::position.eq(1),
        ))
        .execute(c)?;
    audit::record(
        c,
        actor,
        &Entry::new("custom_field.created", "custom_field", "region")
            .after(json!({ "key": "region", "kind": "choice" })),
    )?;
    let base = |number, legal, display| Demo {
        number,
        legal,
        display,
        currency: "GBP",
        terms: ("net", 30),
        tax: ("standard", None, None),
        tax_id: None,
        domain: None,
        parent: None,
        bill_to_parent: false,
        city: ("1 High Street", "London", "EC1A 1BB", "United Kingdom"),
        delivery: "email",
        region: "EMEA",
    };
    let group = account(
        c,
        actor,
        Some(owner),
        Demo {
            tax_id: Some("GB 987 6543 21"),
            domain: Some("contoso.example"),
            city: ("200 Bishopsgate", "London", "EC2M 4NR", "United Kingdom"),
            ..base("ACC-000001", "Contoso Group plc", "Contoso Group")
        },
    )?;
    let uk = account(
        c,
        actor,
        Some(owner),
        Demo {
            parent: Some(group),
            bill_to_parent: true,
            ..base("ACC-000002", "Contoso UK Ltd", "Contoso UK")
        },
    )?;
    let logistics = account(
        c,
        actor,
        Some(owner),
        Demo {
            parent: Some(group),
            bill_to_parent: true,
            city: ("Dock Road", "Felixstowe", "IP11 3SY", "United Kingdom"),
            ..base("ACC-000003", "Contoso Logistics Ltd", "Contoso Logistics")
        },
    )?;
    account(
        c,
        actor,
        Some(owner),
        Demo {
            parent: Some(logistics),
            bill_to_parent: true,
            ..base("ACC-000004", "Contoso Freight Ltd", "Contoso Freight")
        },
    )?;
    let fabrikam = account(
        c,
        actor,
        Some(sales),
        Demo {
            currency: "EUR",
            terms: ("eom", 15),
            tax_id: Some("DE 811 569 869"),
            domain: Some("fabrikam.example"),
            city: ("Hauptstraße 5", "München", "80331", "Germany"),
            ..base("ACC-000005", "Fabrikam GmbH", "Fabrikam")
        },
    )?;
    let tailspin = account(
        c,
        actor,
        Some(sales),
        Demo {
            currency: "USD",
            terms: ("net", 45),
            tax: ("exempt", None, Some("CA-RESALE-554210")),
            domain: Some("tailspintoys.example"),
            city: ("500 Market St", "San Francisco", "94105", "United States"),
            region: "AMER",
            ..base("ACC-000006", "Tailspin Toys, Inc.", "Tailspin Toys")
        },
    )?;
    let adventure = account(
        c,
        actor,
        Some(owner),
        Demo {
            terms: ("due_on_receipt", 0),
            domain: Some("adventure-works.example"),
            ..base("ACC-000007", "Adventure Works Ltd", "Adventure Works")
        },
    )?;
    // Entered again by hand from the CRM: a likely duplicate to merge.
    account(
        c,
        actor,
        Some(sales),
        Demo {
            ..base(
                "ACC-000008",
                "ADVENTURE WORKS LIMITED",
                "Adventure Works (CRM)",
            )
        },
    )?;
    let wwi = account(
        c,
        actor,
        None,
        Demo {
            currency: "EUR",
            tax: ("custom_rate", Some(Decimal::new(9, 0)), None),
            delivery: "post",
            city: ("Keizersgracht 1", "Amsterdam", "1015 CJ", "Netherlands"),
            ..base(
                "ACC-000009",
                "Wide World Importers B.V.",
                "Wide World Importers",
            )
        },
    )?;
    contact(
        c,
        actor,
        group,
        "Priya Natarajan",
        "ap@contoso.example",
        &["accounts_payable", "billing"],
        true,
    )?;
    contact(
        c,
        actor,
        group,
        "Tom Reilly",
        "tom.reilly@contoso.example",
        &["signer"],
        false,
    )?;
    contact(
        c,
        actor,
        uk,
        "Grace Hall",
        "grace.hall@contoso.example",
        &["technical"],
        false,
    )?;
    contact(
        c,
        actor,
        fabrikam,
        "Jana Becker",
        "buchhaltung@fabrikam.example",
        &["accounts_payable"],
        true,
    )?;
    contact(
        c,
        actor,
        tailspin,
        "Marcus Lee",
        "billing@tailspintoys.example",
        &["billing"],
        true,
    )?;
    contact(
        c,
        actor,
        adventure,
        "Olivia Brown",
        "finance@adventure-works.example",
        &["billing", "signer"],
        true,
    )?;
    contact(
        c,
        actor,
        wwi,
        "Daan de Vries",
        "crediteuren@wideworldimporters.example",
        &["accounts_payable"],
        true,
    )?;
    diesel::sql_query("SELECT setval('account_number_seq', 9)").execute(c)?;
    Ok(())
}
