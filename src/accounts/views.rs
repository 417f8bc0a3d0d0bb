//! How accounts look to people: form values, CSV columns and display rows, all derived from
//! the same `Fields` names so a form, an export and an import speak the same language.

use super::edit::{Kind, Loaded};
use super::{
    dedupe::Reason,
    domain::{
        format_crm_ids, AccountStatus, Address, CustomFieldDef, Delivery, Fields, PaymentTerms,
        TaxMode, TermsKind,
    },
    repo::{Account, AccountData},
};
use crate::{auth::permissions::Permission, tenants::repo::Member, tenants::TenantCtx};

/// Names members in forms (by id) or files (by email).
pub fn member_label(members: &[Member], id: Option<i64>) -> String {
    id.and_then(|id| members.iter().find(|m| m.user_id == id))
        .map_or_else(String::new, |m| m.name.clone())
}

fn member_email(members: &[Member], id: Option<i64>) -> String {
    id.and_then(|id| members.iter().find(|m| m.user_id == id))
        .map_or_else(String::new, |m| m.email.clone())
}

/// Form or CSV values of an account. `csv` names members by email instead of id.
pub fn fields_of(
    d: &AccountData,
    parent_number: Option<&str>,
    members: &[Member],
    defs: &[CustomFieldDef],
    csv: bool,
) -> Fields {
    let mut f = Fields::default();
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    f.set("account_number", d.account_number.clone());
    f.set("legal_name", d.legal_name.clone());
    f.set("display_name", d.display_name.clone());
    f.set("tax_id", opt(&d.tax_id));
    f.set("domain", opt(&d.domain));
    f.set("po_number", opt(&d.po_number));
    let member = |id: Option<i64>| {
        if csv {
            member_email(members, id)
        } else {
            id.map(|i| i.to_string()).unwrap_or_default()
        }
    };
    f.set("owner", member(d.owner_user_id));
    f.set("csm", member(d.csm_user_id));
    f.set("status", d.status.clone());
    f.set("parent", parent_number.unwrap_or_default());
    f.set("notes", d.notes.clone());
    f.set("crm_ids", format_crm_ids(&d.crm_ids));
    f.set("tax_mode", d.tax_mode.clone());
    f.set(
        "tax_rate",
        d.tax_rate
            .map(|r| r.normalize().to_string())
            .unwrap_or_default(),
    );
    f.set("tax_exempt_certificate", opt(&d.tax_exempt_certificate));
    f.set("currency", d.currency.clone());
    f.set("terms_kind", d.terms_kind.clone());
    f.set("terms_days", d.terms_days.to_string());
    f.set("invoice_delivery", d.invoice_delivery.clone());
    f.set("bill_to_parent", if d.bill_to_parent { "yes" } else { "" });
    for (prefix, a) in [
        ("billing", &d.billing_address),
        ("shipping", &d.shipping_address),
    ] {
        for part in Address::PARTS {
            f.set(&format!("{prefix}_{part}"), a.get(part));
        }
    }
    for def in defs {
        f.set(
            &def.form_name(),
            d.custom_fields.get(&def.key).cloned().unwrap_or_default(),
        );
    }
    f
}

/// The CSV columns of accounts, in order (custom fields follow as `custom.<key>`).
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "account_number",
    "legal_name",
    "display_name",
    "status",
    "parent",
    "tax_id",
    "domain",
    "owner",
    "csm",
    "po_number",
    "crm_ids",
    "tax_mode",
    "tax_rate",
    "tax_exempt_certificate",
    "currency",
    "terms_kind",
    "terms_days",
    "invoice_delivery",
    "bill_to_parent",
    "billing_line1",
    "billing_line2",
    "billing_city",
    "billing_region",
    "billing_postal_code",
    "billing_country",
    "shipping_line1",
    "shipping_line2",
    "shipping_city",
    "shipping_region",
    "shipping_postal_code",
    "shipping_country",
    "notes",
];

/// One line of the account list.
pub struct Row {
    pub id: i64,
    pub number: String,
    pub name: String,
    pub legal_name: String,
    pub owner: String,
    pub currency: String,
    pub status: String,
    pub status_code: String,
    pub terms: String,
}

pub fn terms_label(a: &Account) -> String {
    let kind = TermsKind::parse(&a.terms_kind).unwrap_or(TermsKind::Net);
    PaymentTerms {
        kind,
        days: u16::try_from(a.terms_days).unwrap_or(0),
    }
    .label()
}

pub fn status_label(code: &str) -> String {
    AccountStatus::parse(code).map_or_else(|| code.to_owned(), |s| s.label().to_owned())
}

impl Row {
    pub fn new(a: &Account, members: &[Member]) -> Self {
        Self {
            id: a.id,
            number: a.account_number.clone(),
            name: a.display_name.clone(),
            legal_name: a.legal_name.clone(),
            owner: member_label(members, a.owner_user_id),
            currency: a.currency.clone(),
            status: status_label(&a.status),
            status_code: a.status.clone(),
            terms: terms_label(a),
        }
    }
}

/// A likely duplicate shown before saving.
pub struct DuplicateView {
    pub id: i64,
    pub number: String,
    pub name: String,
    pub owner: String,
    pub reasons: String,
}

pub fn duplicate_views(
    matches: &[(i64, Vec<Reason>)],
    summaries: &[super::repo::Summary],
    members: &[Member],
) -> Vec<DuplicateView> {
    matches
        .iter()
        .filter_map(|(id, reasons)| {
            let (_, number, name, owner) = summaries.iter().find(|s| s.0 == *id)?;
            Some(DuplicateView {
                id: *id,
                number: number.clone(),
                name: name.clone(),
                owner: member_label(members, *owner),
                reasons: reasons
                    .iter()
                    .map(Reason::label)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        })
        .collect()
}

/// Select options shared by the account forms.
pub struct Options {
    pub statuses: Vec<(&'static str, &'static str)>,
    pub tax_modes: Vec<(&'static str, &'static str)>,
    pub terms_kinds: Vec<(&'static str, &'static str)>,
    pub deliveries: Vec<(&'static str, &'static str)>,
    pub currencies: Vec<(&'static str, String)>,
    pub members: Vec<(String, String)>,
    pub can_terms: bool,
    pub sales_only: bool,
}

impl Options {
    pub fn new(ctx: &TenantCtx, members: &[Member]) -> Self {
        Self {
            statuses: AccountStatus::options()
                .into_iter()
                .filter(|(c, _)| *c != "merged")
                .collect(),
            tax_modes: TaxMode::options(),
            terms_kinds: TermsKind::options(),
            deliveries: Delivery::options(),
            currencies: crate::money::Currency::all()
                .map(|(code, name)| (code, format!("{code} · {name}")))
                .collect(),
            members: members
                .iter()
                .filter(|m| m.status == "active")
                .map(|m| (m.user_id.to_string(), m.name.clone()))
                .collect(),
            can_terms: ctx.can(Permission::AccountsEditTerms),
            sales_only: ctx.role == crate::auth::Role::Sales,
        }
    }
}

/// The label/value pairs shown in a read-only account section.
pub(super) fn section_facts(kind: Kind, l: &Loaded, members: &[Member]) -> Vec<(String, String)> {
    let a = &l.account;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    let pair = |k: &str, v: String| (k.to_owned(), v);
    match kind {
        Kind::General => vec![
            pair("Legal name", a.legal_name.clone()),
            pair("Display name", a.display_name.clone()),
            pair("Account number", a.account_number.clone()),
            pair("Status", status_label(&a.status)),
            pair(
                "Parent",
                l.parent
                    .as_ref()
                    .map_or_else(|| "—".into(), |(_, n, d)| format!("{d} ({n})")),
            ),
            pair("Tax id", opt(&a.tax_id)),
            pair("Domain", opt(&a.domain)),
            pair("Owner", member_label(members, a.owner_user_id)),
            pair("Customer success", member_label(members, a.csm_user_id)),
            pair("Default PO number", opt(&a.po_number)),
            pair("CRM ids", super::domain::format_crm_ids(&l.crm_ids)),
            pair("Notes", a.notes.clone()),
        ],
        Kind::Terms => {
            let tax = match a.tax_mode.as_str() {
                "custom_rate" => format!(
                    "Custom rate {}%",
                    a.tax_rate
                        .map(|r| r.normalize().to_string())
                        .unwrap_or_default()
                ),
                "exempt" => format!(
                    "Exempt (certificate {})",
                    a.tax_exempt_certificate.clone().unwrap_or_default()
                ),
                _ => "Standard rate".into(),
            };
            vec![
                pair("Currency", a.currency.clone()),
                pair("Payment terms", terms_label(a)),
                pair(
                    "Invoice delivery",
                    if a.invoice_delivery == "post" {
                        "Post"
                    } else {
                        "Email"
                    }
                    .into(),
                ),
                pair("Tax", tax),
                pair(
                    "Invoices go to",
                    l.bill_to.as_ref().map_or_else(
                        || "This account".into(),
                        |(_, n, d)| format!("{d} ({n}), billed to parent"),
                    ),
                ),
            ]
        }
        Kind::Addresses => vec![
            pair("Billing address", a.billing().lines().join("\n")),
            pair(
                "Shipping address",
                if a.shipping().is_empty() {
                    "Same as billing".into()
                } else {
                    a.shipping().lines().join("\n")
                },
            ),
        ],
        Kind::Custom => {
            let values = a.custom();
            l.defs
                .iter()
                .map(|d| pair(&d.label, values.get(&d.key).cloned().unwrap_or_default()))
                .collect()
        }
    }
}
