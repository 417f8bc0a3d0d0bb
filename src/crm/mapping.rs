//! Field mapping for CRM connectors: turns a CRM deal (a JSON document) into the Arbor
//! account, contact and subscription form fields plus priced lines.
//!
//! Rules, in the order they apply to one [`FieldRule`]:
//! - `source` is a dotted path (`company.address.city`, `line_items.0.sku`); several paths
//!   joined with `+` are concatenated with a space (HubSpot splits a contact's name). Numbers
//!   and booleans become text, `null`/missing/blank is absent.
//! - An absent value takes the rule's `default`, which is already an Arbor value: it skips the
//!   transform and the lookup but is validated like any other value.
//! - A present value is transformed, then looked up (case-insensitive, trimmed); when the
//!   lookup table is non-empty a value missing from it is a problem, never passed through.
//! - Every target then has its own normalization (currency upper-cased, payment terms parsed
//!   into `terms_kind`/`terms_days`, billing frequency into a cycle in months, ...).
//!
//! [`apply`] reports every problem at once, each naming the CRM path and the offending value,
//! so a deal with missing billing data is held with a fixable reason instead of being invoiced
//! wrongly. Pure: no database, no I/O, never panics.

use std::collections::HashSet;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The whole mapping of one connector, stored as JSONB and edited in a form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Spec {
    #[serde(default)]
    pub fields: Vec<FieldRule>,
    #[serde(default)]
    pub lines: LineRule,
}

/// CRM path → one Arbor target field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FieldRule {
    /// One of the [`TARGETS`] codes.
    pub target: String,
    /// Dotted path in the CRM document; "" when only the default is used.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub transform: Transform,
    /// CRM text → Arbor value; matched case-insensitively after trimming.
    #[serde(default)]
    pub lookup: Vec<(String, String)>,
    /// Arbor value used when the source is absent or blank.
    #[serde(default)]
    pub default: String,
}

/// A text transform applied to a present source value before the lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    #[default]
    None,
    Upper,
    Lower,
    /// YYYY-MM-DD, RFC 3339 timestamps (UTC date) or epoch milliseconds → YYYY-MM-DD.
    Date,
    /// A decimal number, normalized (never through f64).
    Decimal,
}

/// Where the deal's line items are and how each item's fields are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LineRule {
    /// Path to the array of line items.
    #[serde(default)]
    pub source: String,
    /// Sub-paths inside each item; "" = not mapped.
    #[serde(default)]
    pub sku: String,
    #[serde(default)]
    pub quantity: String,
    #[serde(default)]
    pub unit_price: String,
    #[serde(default)]
    pub discount: String,
    #[serde(default)]
    pub description: String,
    /// CRM product code → Arbor SKU; when non-empty, unknown codes are problems.
    #[serde(default)]
    pub sku_lookup: Vec<(String, String)>,
    /// The CRM sends discounts as plain percentages (HubSpot `hs_discount_percentage`,
    /// Salesforce `Discount`), so "10" means 10 %, not 10.00 off.
    #[serde(default)]
    pub discount_is_percent: bool,
}

/// An Arbor field a CRM value can be mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Target {
    pub code: &'static str,
    pub label: &'static str,
    pub required: bool,
    pub help: &'static str,
}

const fn t(code: &'static str, label: &'static str, required: bool, help: &'static str) -> Target {
    Target {
        code,
        label,
        required,
        help,
    }
}

/// Every mappable Arbor field, in form order.
pub const TARGETS: &[Target] = &[
    t(
        "deal.id",
        "Deal ID",
        true,
        "The CRM's id of the deal; links the subscription back to it.",
    ),
    t(
        "deal.kind",
        "Deal kind",
        false,
        "subscription or one_off; subscription when not mapped.",
    ),
    t(
        "deal.revenue_recognition",
        "Revenue recognition",
        true,
        "ratable or point_in_time.",
    ),
    t(
        "account.crm_id",
        "CRM company ID",
        false,
        "The CRM's id of the company, to find the account again.",
    ),
    t(
        "account.legal_name",
        "Legal name",
        true,
        "The customer's legal name printed on invoices.",
    ),
    t(
        "account.display_name",
        "Display name",
        false,
        "Short name shown in Arbor.",
    ),
    t(
        "account.domain",
        "Domain",
        false,
        "The customer's web domain.",
    ),
    t(
        "account.tax_id",
        "Tax ID",
        false,
        "VAT or other tax registration number.",
    ),
    t(
        "account.tax_mode",
        "Tax mode",
        false,
        "standard, custom_rate or exempt.",
    ),
    t(
        "account.tax_rate",
        "Tax rate",
        false,
        "Percent, for the custom_rate tax mode.",
    ),
    t(
        "account.currency",
        "Currency",
        true,
        "ISO 4217 code such as USD or EUR.",
    ),
    t(
        "account.payment_terms",
        "Payment terms",
        true,
        "due_on_receipt, net_<days> or eom_<days>, e.g. net_30.",
    ),
    t("account.billing_line1", "Billing address line 1", false, ""),
    t("account.billing_line2", "Billing address line 2", false, ""),
    t("account.billing_city", "Billing city", false, ""),
    t(
        "account.billing_region",
        "Billing region",
        false,
        "State or province.",
    ),
    t(
        "account.billing_postal_code",
        "Billing postal code",
        false,
        "",
    ),
    t(
        "account.billing_country",
        "Billing country",
        false,
        "Country code or name.",
    ),
    t(
        "contact.crm_id",
        "CRM contact ID",
        false,
        "The CRM's id of the billing contact.",
    ),
    t("contact.name", "Billing contact name", false, ""),
    t(
        "contact.email",
        "Billing contact email",
        true,
        "Where invoices are sent.",
    ),
    t("contact.phone", "Billing contact phone", false, ""),
    t(
        "subscription.start_date",
        "Start date",
        false,
        "Date the subscription starts; today when absent.",
    ),
    t(
        "subscription.billing_frequency",
        "Billing frequency",
        true,
        "Months per cycle: 1, 3, 6 or 12 (monthly, quarterly, semiannual, annual).",
    ),
    t(
        "subscription.term_months",
        "Term (months)",
        false,
        "Whole months, 1 to 120.",
    ),
    t(
        "subscription.po_number",
        "PO number",
        false,
        "Customer purchase order number printed on invoices.",
    ),
];

/// Whether the deal becomes a subscription or a one-off invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealKind {
    Subscription,
    OneOff,
}

/// A deal mapped to Arbor form fields, ready to be created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedDeal {
    pub deal_id: String,
    pub kind: DealKind,
    pub revenue_recognition: String,
    pub account_crm_id: Option<String>,
    pub contact_crm_id: Option<String>,
    /// Arbor account form fields: legal_name, display_name, domain, tax_id, tax_mode,
    /// tax_rate, currency, terms_kind, terms_days, billing_line1.. billing_country (only those
    /// with values).
    pub account: Vec<(String, String)>,
    /// Arbor contact form fields: name, email, phone.
    pub contact: Vec<(String, String)>,
    /// Arbor subscription form fields: start_date (YYYY-MM-DD), cycle ("1"/"3"/"6"/"12"),
    /// term_months, po_number.
    pub subscription: Vec<(String, String)>,
    pub lines: Vec<MappedLine>,
}

/// One priced product line of a deal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedLine {
    pub sku: String,
    pub quantity: Decimal,
    pub unit_price: Option<Decimal>,
    /// "10%" for a percentage or an amount such as "15.00".
    pub discount: Option<String>,
    pub description: String,
}

/// Why a deal cannot be mapped (or a spec cannot be saved); `message` is a full sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The target code, or "lines" for products, or "spec" for the mapping as a whole.
    pub target: String,
    pub message: String,
}

/// One row of the "test against a sample payload" table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewRow {
    pub code: String,
    pub label: String,
    pub source: String,
    pub raw: Option<String>,
    pub mapped: Option<String>,
    pub problem: Option<String>,
}

const LINES: &str = "lines";
const LINES_LABEL: &str = "Products";

/// Maps a CRM document, reporting every problem found rather than the first.
pub fn apply(spec: &Spec, doc: &Value) -> Result<MappedDeal, Vec<Problem>> {
    let run = run(spec, doc);
    let mut problems: Vec<Problem> = run.spec_problems.clone();
    problems.extend(run.fields.iter().filter_map(|f| {
        f.problem.as_ref().map(|m| Problem {
            target: f.target.code.to_owned(),
            message: m.clone(),
        })
    }));
    problems.extend(run.lines.problems.iter().map(|m| Problem {
        target: LINES.to_owned(),
        message: m.clone(),
    }));
    if !problems.is_empty() {
        return Err(problems);
    }

    let value = |code: &str| {
        run.fields
            .iter()
            .find(|f| f.target.code == code)
            .and_then(|f| f.value.clone())
    };
    let mut deal = MappedDeal {
        deal_id: value("deal.id").unwrap_or_default(),
        kind: run.kind,
        revenue_recognition: value("deal.revenue_recognition").unwrap_or_default(),
        account_crm_id: value("account.crm_id"),
        contact_crm_id: value("contact.crm_id"),
        account: Vec::new(),
        contact: Vec::new(),
        subscription: Vec::new(),
        lines: run.lines.lines,
    };
    for f in &run.fields {
        let Some(v) = f.value.clone() else { continue };
        let code = f.target.code;
        match code {
            "account.payment_terms" => {
                if let Ok((kind, days)) = parse_terms(&v) {
                    deal.account.push(("terms_kind".into(), kind.into()));
                    deal.account.push(("terms_days".into(), days.to_string()));
                }
            }
            "account.crm_id" | "contact.crm_id" => {}
            "subscription.billing_frequency" => deal.subscription.push(("cycle".into(), v)),
            _ => {
                if let Some(name) = code.strip_prefix("account.") {
                    deal.account.push((name.into(), v));
                } else if let Some(name) = code.strip_prefix("contact.") {
                    deal.contact.push((name.into(), v));
                } else if let Some(name) = code.strip_prefix("subscription.") {
                    deal.subscription.push((name.into(), v));
                }
            }
        }
    }
    Ok(deal)
}

/// The per-field outcome for a sample payload, for the mapping form's test button.
pub fn preview(spec: &Spec, doc: &Value) -> Vec<PreviewRow> {
    let run = run(spec, doc);
    let mut rows: Vec<PreviewRow> = run
        .spec_problems
        .iter()
        .map(|p| PreviewRow {
            code: p.target.clone(),
            label: p.target.clone(),
            source: String::new(),
            raw: None,
            mapped: None,
            problem: Some(p.message.clone()),
        })
        .collect();
    rows.extend(run.fields.into_iter().map(|f| PreviewRow {
        code: f.target.code.to_owned(),
        label: f.target.label.to_owned(),
        source: f.source,
        raw: f.raw,
        mapped: f.value,
        problem: f.problem,
    }));
    rows.extend(run.lines.rows);
    rows
}

/// Checks a mapping before it is saved.
pub fn validate_spec(spec: &Spec) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut push = |target: &str, message: String| {
        problems.push(Problem {
            target: target.to_owned(),
            message,
        })
    };
    for rule in &spec.fields {
        let Some(target) = target_of(&rule.target) else {
            push(
                "spec",
                format!(
                    "Field mapping: \"{}\" is not an Arbor field. Remove the row or pick a field from the list.",
                    rule.target
                ),
            );
            continue;
        };
        if !seen.insert(target.code) {
            push(
                target.code,
                format!(
                    "{}: it is mapped more than once. Keep a single row for it.",
                    target.label
                ),
            );
            continue;
        }
        if let Some(bad) = bad_path(&rule.source) {
            push(
                target.code,
                format!(
                    "{}: the CRM path \"{}\" is not valid ({bad}). Use dot-separated field names such as company.name.",
                    target.label, rule.source
                ),
            );
        }
        if target.required && rule.source.trim().is_empty() && rule.default.trim().is_empty() {
            push(target.code, required_unmapped(target));
        }
        if !rule.default.trim().is_empty() {
            if let Err(reason) = normalize(target.code, &rule.default) {
                push(
                    target.code,
                    format!(
                        "{}: the default \"{}\" {reason}. Change the default.",
                        target.label, rule.default
                    ),
                );
            }
        }
        let mut keys: HashSet<String> = HashSet::new();
        for (key, out) in &rule.lookup {
            if key.trim().is_empty() {
                push(
                    target.code,
                    format!(
                        "{}: a lookup entry has an empty CRM value (mapped to \"{out}\"). Fill it in or remove the entry.",
                        target.label
                    ),
                );
            } else if !keys.insert(key.trim().to_lowercase()) {
                push(
                    target.code,
                    format!(
                        "{}: the CRM value \"{key}\" appears more than once in the lookup table. Keep one entry.",
                        target.label
                    ),
                );
            }
            if let Err(reason) = normalize(target.code, out) {
                push(
                    target.code,
                    format!(
                        "{}: the lookup entry \"{key}\" maps to \"{out}\", which {reason}. Fix the Arbor value of that entry.",
                        target.label
                    ),
                );
            }
        }
    }
    for target in TARGETS.iter().filter(|t| t.required) {
        if !seen.contains(target.code) {
            push(target.code, required_unmapped(target));
        }
    }

    let l = &spec.lines;
    if l.source.trim().is_empty() {
        push(
            LINES,
            "Products: the path to the deal's line items is empty. Enter it, e.g. line_items."
                .to_owned(),
        );
    }
    if l.sku.trim().is_empty() {
        push(
            LINES,
            "Products: the SKU path inside a line item is empty. Enter it, e.g. sku.".to_owned(),
        );
    }
    for (label, path) in [
        ("line items", &l.source),
        ("SKU", &l.sku),
        ("quantity", &l.quantity),
        ("unit price", &l.unit_price),
        ("discount", &l.discount),
        ("description", &l.description),
    ] {
        if let Some(bad) = bad_path(path) {
            push(
                LINES,
                format!("Products: the {label} path \"{path}\" is not valid ({bad})."),
            );
        }
    }
    let mut codes: HashSet<String> = HashSet::new();
    for (code, sku) in &l.sku_lookup {
        if code.trim().is_empty() || sku.trim().is_empty() {
            push(
                LINES,
                format!(
                    "Products: the SKU mapping entry \"{code}\" → \"{sku}\" has an empty side. Fill it in or remove it."
                ),
            );
        } else if !codes.insert(code.trim().to_lowercase()) {
            push(
                LINES,
                format!(
                    "Products: the product code \"{code}\" appears more than once in the SKU mapping. Keep one entry."
                ),
            );
        }
    }
    problems
}

/// Default rules for the example shapes of each connector; unknown kinds get "generic".
pub fn default_spec(kind: &str) -> Spec {
    match kind {
        "hubspot" => hubspot_spec(),
        "salesforce" => salesforce_spec(),
        _ => generic_spec(),
    }
}

fn rule(target: &str, source: &str) -> FieldRule {
    FieldRule {
        target: target.to_owned(),
        source: source.to_owned(),
        ..FieldRule::default()
    }
}

fn with_transform(mut r: FieldRule, transform: Transform) -> FieldRule {
    r.transform = transform;
    r
}

fn with_default(mut r: FieldRule, default: &str) -> FieldRule {
    r.default = default.to_owned();
    r
}

fn with_lookup(mut r: FieldRule, pairs: &[(&str, &str)]) -> FieldRule {
    r.lookup = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    r
}

/// The picklist labels CRM admins usually create for payment terms.
const TERMS_LOOKUP: &[(&str, &str)] = &[
    ("Due on receipt", "due_on_receipt"),
    ("Net 15", "net_15"),
    ("Net 30", "net_30"),
    ("Net 45", "net_45"),
    ("Net 60", "net_60"),
    ("Net 90", "net_90"),
];

fn generic_spec() -> Spec {
    Spec {
        fields: vec![
            rule("deal.id", "id"),
            with_default(rule("deal.kind", "kind"), "subscription"),
            rule("deal.revenue_recognition", "revenue_recognition"),
            rule("account.crm_id", "company.id"),
            rule("account.legal_name", "company.name"),
            rule("account.display_name", "company.name"),
            rule("account.domain", "company.domain"),
            rule("account.tax_id", "company.tax_id"),
            rule("account.tax_mode", "company.tax_mode"),
            rule("account.tax_rate", "company.tax_rate"),
            rule("account.currency", "currency"),
            rule("account.payment_terms", "payment_terms"),
            rule("account.billing_line1", "company.address.line1"),
            rule("account.billing_line2", "company.address.line2"),
            rule("account.billing_city", "company.address.city"),
            rule("account.billing_region", "company.address.region"),
            rule("account.billing_postal_code", "company.address.postal_code"),
            rule("account.billing_country", "company.address.country"),
            rule("contact.crm_id", "contact.id"),
            rule("contact.name", "contact.name"),
            rule("contact.email", "contact.email"),
            rule("contact.phone", "contact.phone"),
            with_transform(
                rule("subscription.start_date", "close_date"),
                Transform::Date,
            ),
            rule("subscription.billing_frequency", "billing_frequency"),
            rule("subscription.po_number", "po_number"),
        ],
        lines: LineRule {
            source: "line_items".into(),
            sku: "sku".into(),
            quantity: "quantity".into(),
            unit_price: "price".into(),
            discount: "discount".into(),
            description: "name".into(),
            sku_lookup: Vec::new(),
            discount_is_percent: false,
        },
    }
}

fn hubspot_spec() -> Spec {
    Spec {
        fields: vec![
            rule("deal.id", "deal.hs_object_id"),
            with_default(rule("deal.kind", ""), "subscription"),
            rule("deal.revenue_recognition", "deal.revenue_recognition"),
            rule("account.crm_id", "company.hs_object_id"),
            rule("account.legal_name", "company.name"),
            rule("account.display_name", "company.name"),
            rule("account.domain", "company.domain"),
            rule("account.currency", "deal.deal_currency_code"),
            with_lookup(
                rule("account.payment_terms", "deal.payment_terms"),
                TERMS_LOOKUP,
            ),
            rule("account.billing_line1", "company.address"),
            rule("account.billing_line2", "company.address2"),
            rule("account.billing_city", "company.city"),
            rule("account.billing_region", "company.state"),
            rule("account.billing_postal_code", "company.zip"),
            rule("account.billing_country", "company.country"),
            rule("contact.crm_id", "contact.hs_object_id"),
            rule("contact.name", "contact.firstname + contact.lastname"),
            rule("contact.email", "contact.email"),
            rule("contact.phone", "contact.phone"),
            with_transform(
                rule("subscription.start_date", "deal.closedate"),
                Transform::Date,
            ),
            rule("subscription.billing_frequency", "deal.billing_frequency"),
            rule("subscription.po_number", "deal.po_number"),
        ],
        lines: LineRule {
            source: "line_items".into(),
            sku: "hs_sku".into(),
            quantity: "quantity".into(),
            unit_price: "price".into(),
            discount: "hs_discount_percentage".into(),
            description: "name".into(),
            sku_lookup: Vec::new(),
            discount_is_percent: true,
        },
    }
}

fn salesforce_spec() -> Spec {
    Spec {
        fields: vec![
            rule("deal.id", "Opportunity.Id"),
            with_default(rule("deal.kind", ""), "subscription"),
            rule(
                "deal.revenue_recognition",
                "Opportunity.Revenue_Recognition__c",
            ),
            rule("account.crm_id", "Account.Id"),
            rule("account.legal_name", "Account.Name"),
            rule("account.display_name", "Account.Name"),
            rule("account.currency", "Opportunity.CurrencyIsoCode"),
            with_lookup(
                rule("account.payment_terms", "Opportunity.Payment_Terms__c"),
                TERMS_LOOKUP,
            ),
            rule("account.billing_line1", "Account.BillingStreet"),
            rule("account.billing_city", "Account.BillingCity"),
            rule("account.billing_region", "Account.BillingState"),
            rule("account.billing_postal_code", "Account.BillingPostalCode"),
            rule("account.billing_country", "Account.BillingCountry"),
            rule("contact.crm_id", "Contact.Id"),
            rule("contact.name", "Contact.Name"),
            rule("contact.email", "Contact.Email"),
            rule("contact.phone", "Contact.Phone"),
            with_transform(
                rule("subscription.start_date", "Opportunity.CloseDate"),
                Transform::Date,
            ),
            rule(
                "subscription.billing_frequency",
                "Opportunity.Billing_Frequency__c",
            ),
            rule("subscription.po_number", "Opportunity.PO_Number__c"),
        ],
        lines: LineRule {
            source: "OpportunityLineItems".into(),
            sku: "ProductCode".into(),
            quantity: "Quantity".into(),
            unit_price: "UnitPrice".into(),
            discount: "Discount".into(),
            description: "Name".into(),
            sku_lookup: Vec::new(),
            discount_is_percent: true,
        },
    }
}

// ---------------------------------------------------------------------------------------
// Engine

struct FieldEval {
    target: &'static Target,
    source: String,
    raw: Option<String>,
    value: Option<String>,
    problem: Option<String>,
}

#[derive(Default)]
struct LinesEval {
    lines: Vec<MappedLine>,
    rows: Vec<PreviewRow>,
    problems: Vec<String>,
}

struct Run {
    spec_problems: Vec<Problem>,
    kind: DealKind,
    fields: Vec<FieldEval>,
    lines: LinesEval,
}

fn target_of(code: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.code == code.trim())
}

fn run(spec: &Spec, doc: &Value) -> Run {
    // A misconfigured spec must not silently drop a field, so unknown targets are reported
    // here too (validate_spec normally catches them when the form is saved).
    let spec_problems = spec
        .fields
        .iter()
        .filter(|r| target_of(&r.target).is_none())
        .map(|r| Problem {
            target: "spec".to_owned(),
            message: format!(
                "Field mapping: \"{}\" is not an Arbor field. Remove the row or pick a field from the list.",
                r.target
            ),
        })
        .collect();
    let rule_for = |code: &str| spec.fields.iter().find(|r| r.target.trim() == code);

    let mut fields: Vec<FieldEval> = Vec::with_capacity(TARGETS.len());
    let mut kind = DealKind::Subscription;
    for target in TARGETS {
        // A one-off deal has no billing cycle, so only subscriptions must carry a frequency.
        let required = target.required
            && !(target.code == "subscription.billing_frequency" && kind == DealKind::OneOff);
        let eval = eval_field(target, required, rule_for(target.code), doc);
        if target.code == "deal.kind" && eval.value.as_deref() == Some("one_off") {
            kind = DealKind::OneOff;
        }
        fields.push(eval);
    }
    Run {
        spec_problems,
        kind,
        fields,
        lines: eval_lines(&spec.lines, doc),
    }
}

fn required_unmapped(target: &Target) -> String {
    format!(
        "{}: no CRM field is mapped to it and it has no default, but every deal needs it. Map a CRM field or set a default in the field mapping.",
        target.label
    )
}

fn eval_field(
    target: &'static Target,
    required: bool,
    rule: Option<&FieldRule>,
    doc: &Value,
) -> FieldEval {
    let mut eval = FieldEval {
        target,
        source: rule.map(|r| r.source.clone()).unwrap_or_default(),
        raw: None,
        value: None,
        problem: None,
    };
    let label = target.label;
    let Some(rule) = rule else {
        if required {
            eval.problem = Some(required_unmapped(target));
        }
        return eval;
    };
    let path = rule.source.trim();
    match resolve(doc, path) {
        Raw::Nested(what) => {
            eval.problem = Some(format!(
                "{label}: the deal's {path} is {what}, not a single value. Point the mapping at one of its fields."
            ));
        }
        Raw::Absent if !rule.default.trim().is_empty() => {
            match normalize(target.code, &rule.default) {
                Ok(v) => eval.value = Some(v),
                Err(reason) => {
                    eval.problem = Some(format!(
                        "{label}: the deal has no value at {}, and the mapping's default \"{}\" {reason}. Fix the default in the field mapping.",
                        shown_path(path),
                        rule.default
                    ))
                }
            }
        }
        Raw::Absent => {
            if required {
                eval.problem = Some(if path.is_empty() {
                    required_unmapped(target)
                } else {
                    format!(
                        "{label}: the deal has no value at {path}. Fill it in on the deal in the CRM or set a default in the field mapping."
                    )
                });
            }
        }
        Raw::Text(raw) => {
            eval.raw = Some(raw.clone());
            match map_text(target, rule, path, &raw) {
                Ok(v) => eval.value = Some(v),
                Err(message) => eval.problem = Some(message),
            }
        }
    }
    eval
}

/// Transform → lookup → target normalization of a present source value.
fn map_text(target: &Target, rule: &FieldRule, path: &str, raw: &str) -> Result<String, String> {
    let label = target.label;
    let transformed = apply_transform(rule.transform, raw).map_err(|reason| {
        format!("{label}: the deal's {path} is \"{raw}\", which {reason}. Correct it in the CRM.")
    })?;
    if rule.lookup.is_empty() {
        return normalize(target.code, &transformed).map_err(|reason| {
            format!(
                "{label}: the deal's {path} is \"{raw}\", which {reason}. Correct it in the CRM or add a lookup table to the field mapping."
            )
        });
    }
    let Some(out) = find_lookup(&rule.lookup, &transformed) else {
        let known: Vec<&str> = rule.lookup.iter().map(|(k, _)| k.as_str()).collect();
        return Err(format!(
            "{label}: the deal's {path} is \"{raw}\", which is not in the lookup table (known: {}). Add it to the table or fix the deal.",
            known.join(", ")
        ));
    };
    normalize(target.code, out).map_err(|reason| {
        format!(
            "{label}: the deal's {path} is \"{raw}\", which the lookup table maps to \"{out}\", which {reason}. Fix that lookup entry."
        )
    })
}

fn find_lookup<'a>(table: &'a [(String, String)], text: &str) -> Option<&'a str> {
    let key = text.trim().to_lowercase();
    table
        .iter()
        .find(|(k, _)| k.trim().to_lowercase() == key)
        .map(|(_, v)| v.as_str())
}

fn shown_path(path: &str) -> &str {
    if path.is_empty() {
        "(no CRM field mapped)"
    } else {
        path
    }
}

fn eval_lines(rule: &LineRule, doc: &Value) -> LinesEval {
    let mut out = LinesEval::default();
    let path = rule.source.trim();
    let items = match lookup_path(doc, path) {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) | Some(Value::Null) | None => {
            out.problems.push(format!(
                "Products: the deal has no line items at {}. Add products to the deal in the CRM.",
                shown_path(path)
            ));
            out.rows
                .push(line_row("lines", path, None, None, out.problems.last()));
            return out;
        }
        Some(_) => {
            out.problems.push(format!(
                "Products: the deal's {path} is not a list of line items. Point the line-item path at the list of products."
            ));
            out.rows
                .push(line_row("lines", path, None, None, out.problems.last()));
            return out;
        }
    };
    for (i, item) in items.iter().enumerate() {
        let n = i + 1;
        let at = format!("{path}.{i}");
        match eval_line(rule, item, n, &at) {
            Ok(line) => {
                let summary = line_summary(&line);
                out.rows.push(line_row(
                    &format!("lines.{n}"),
                    &at,
                    Some(item.to_string()),
                    Some(summary),
                    None,
                ));
                out.lines.push(line);
            }
            Err(problems) => {
                let joined = problems.join(" ");
                out.rows.push(line_row(
                    &format!("lines.{n}"),
                    &at,
                    Some(item.to_string()),
                    None,
                    Some(&joined),
                ));
                out.problems.extend(problems);
            }
        }
    }
    out
}

fn line_row(
    code: &str,
    source: &str,
    raw: Option<String>,
    mapped: Option<String>,
    problem: Option<&String>,
) -> PreviewRow {
    PreviewRow {
        code: code.to_owned(),
        label: LINES_LABEL.to_owned(),
        source: source.to_owned(),
        raw,
        mapped,
        problem: problem.cloned(),
    }
}

fn line_summary(line: &MappedLine) -> String {
    let mut s = format!("{} × {}", line.sku, line.quantity);
    if let Some(p) = line.unit_price {
        s.push_str(&format!(" @ {p}"));
    }
    if let Some(d) = &line.discount {
        s.push_str(&format!(" less {d}"));
    }
    s
}

fn item_text(item: &Value, sub: &str) -> Raw {
    if sub.trim().is_empty() {
        Raw::Absent
    } else {
        resolve(item, sub.trim())
    }
}

fn eval_line(rule: &LineRule, item: &Value, n: usize, at: &str) -> Result<MappedLine, Vec<String>> {
    let mut problems = Vec::new();
    let text = |sub: &str, what: &str, problems: &mut Vec<String>| match item_text(item, sub) {
        Raw::Text(t) => Some(t),
        Raw::Absent => None,
        Raw::Nested(kind) => {
            problems.push(format!(
                "Products: line {n}'s {what} at {at}.{} is {kind}, not a single value. Point the mapping at one of its fields.",
                sub.trim()
            ));
            None
        }
    };

    let sku = match text(&rule.sku, "SKU", &mut problems) {
        None => {
            problems.push(format!(
                "Products: line {n} has no SKU at {at}.{}. Set the product code on the deal's line item in the CRM.",
                rule.sku.trim()
            ));
            None
        }
        Some(code) if rule.sku_lookup.is_empty() => Some(code),
        Some(code) => match find_lookup(&rule.sku_lookup, &code) {
            Some(sku) => Some(sku.trim().to_owned()),
            None => {
                let known: Vec<&str> = rule.sku_lookup.iter().map(|(k, _)| k.as_str()).collect();
                problems.push(format!(
                    "Products: line {n} has product code \"{code}\", which is not in the SKU mapping (known: {}). Add it to the SKU mapping or fix the deal.",
                    known.join(", ")
                ));
                None
            }
        },
    };

    let quantity = match text(&rule.quantity, "quantity", &mut problems) {
        // CRMs often leave the quantity blank for a single seat or a flat fee.
        None => Some(Decimal::ONE),
        Some(q) => match parse_decimal(&q) {
            Some(d) if d > Decimal::ZERO => Some(d),
            _ => {
                problems.push(format!(
                    "Products: line {n}'s quantity at {at}.{} is \"{q}\", which is not a number greater than zero. Fix the quantity on the deal.",
                    rule.quantity.trim()
                ));
                None
            }
        },
    };

    let unit_price = match text(&rule.unit_price, "unit price", &mut problems) {
        None => None,
        Some(p) => match parse_decimal(&p) {
            Some(d) if d >= Decimal::ZERO => Some(d),
            _ => {
                problems.push(format!(
                    "Products: line {n}'s unit price at {at}.{} is \"{p}\", which is not an amount of zero or more. Fix the price on the deal.",
                    rule.unit_price.trim()
                ));
                None
            }
        },
    };

    let discount = match text(&rule.discount, "discount", &mut problems) {
        None => None,
        Some(d) => match parse_discount(&d, rule.discount_is_percent) {
            Ok(v) => v,
            Err(reason) => {
                problems.push(format!(
                    "Products: line {n}'s discount at {at}.{} is \"{d}\", which {reason}. Fix the discount on the deal.",
                    rule.discount.trim()
                ));
                None
            }
        },
    };

    let description = text(&rule.description, "description", &mut problems).unwrap_or_default();

    match (sku, quantity) {
        (Some(sku), Some(quantity)) if problems.is_empty() => Ok(MappedLine {
            sku,
            quantity,
            unit_price,
            discount,
            description,
        }),
        _ => Err(problems),
    }
}

/// "10%" (or "10" when the CRM sends percentages) → Some("10%"); "15.00" → Some("15.00");
/// zero → None because a zero discount is no discount.
fn parse_discount(text: &str, is_percent: bool) -> Result<Option<String>, String> {
    let t = text.trim();
    let (number, percent) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (t, is_percent),
    };
    let Some(d) = parse_decimal(number) else {
        return Err("is not a percentage (10%) or an amount (15.00)".to_owned());
    };
    if d.is_zero() {
        return Ok(None);
    }
    if d < Decimal::ZERO {
        return Err("is negative".to_owned());
    }
    if percent {
        if d > Decimal::ONE_HUNDRED {
            return Err("is more than 100%".to_owned());
        }
        Ok(Some(format!("{}%", d.normalize())))
    } else {
        Ok(Some(d.to_string()))
    }
}

// ---------------------------------------------------------------------------------------
// Reading the document

enum Raw {
    Absent,
    Text(String),
    Nested(&'static str),
}

fn lookup_path<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim();
    if path.is_empty() {
        return None;
    }
    let mut cur = doc;
    for seg in path.split('.') {
        cur = match cur {
            Value::Object(map) => map.get(seg.trim())?,
            Value::Array(items) => items.get(seg.trim().parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn resolve_one(doc: &Value, path: &str) -> Raw {
    match lookup_path(doc, path) {
        None | Some(Value::Null) => Raw::Absent,
        Some(Value::String(s)) if s.trim().is_empty() => Raw::Absent,
        Some(Value::String(s)) => Raw::Text(s.trim().to_owned()),
        // The number's own text, so decimals never pass through f64 arithmetic here.
        Some(Value::Number(n)) => Raw::Text(n.to_string()),
        Some(Value::Bool(b)) => Raw::Text(b.to_string()),
        Some(Value::Array(_)) => Raw::Nested("a list"),
        Some(Value::Object(_)) => Raw::Nested("an object"),
    }
}

/// "a + b" joins the present parts with a space (HubSpot's firstname + lastname).
fn resolve(doc: &Value, source: &str) -> Raw {
    if !source.contains('+') {
        return resolve_one(doc, source);
    }
    let mut parts = Vec::new();
    for p in source.split('+') {
        match resolve_one(doc, p) {
            Raw::Text(t) => parts.push(t),
            Raw::Absent => {}
            nested @ Raw::Nested(_) => return nested,
        }
    }
    if parts.is_empty() {
        Raw::Absent
    } else {
        Raw::Text(parts.join(" "))
    }
}

/// A reason when a non-empty source path cannot match anything.
fn bad_path(source: &str) -> Option<&'static str> {
    let s = source.trim();
    if s.is_empty() {
        return None;
    }
    for part in s.split('+') {
        if part.trim().is_empty() {
            return Some("an empty part around +");
        }
        if part.trim().split('.').any(|seg| seg.trim().is_empty()) {
            return Some("an empty segment between dots");
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Values

fn apply_transform(transform: Transform, text: &str) -> Result<String, String> {
    let t = text.trim();
    match transform {
        Transform::None => Ok(t.to_owned()),
        Transform::Upper => Ok(t.to_uppercase()),
        Transform::Lower => Ok(t.to_lowercase()),
        Transform::Date => parse_date(t),
        Transform::Decimal => parse_decimal(t)
            .map(|d| d.normalize().to_string())
            .ok_or_else(|| "is not a number".to_owned()),
    }
}

/// Lower-case, every run of non-alphanumerics → one '_', so "Net-30 days" == "net_30_days".
fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// Checks and normalizes a value for its target; the error completes "… which {reason}".
fn normalize(code: &str, text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("is empty".to_owned());
    }
    let v = match code {
        "deal.kind" => match slug(t).as_str() {
            "subscription" | "recurring" => "subscription",
            "one_off" | "oneoff" | "one_time" | "onetime" => "one_off",
            _ => return Err("is not a deal kind (use subscription or one_off)".to_owned()),
        }
        .to_owned(),
        "deal.revenue_recognition" => match slug(t).as_str() {
            "ratable" | "ratably" => "ratable",
            "point_in_time" => "point_in_time",
            _ => {
                return Err(
                    "is not a revenue recognition treatment (use ratable or point_in_time)"
                        .to_owned(),
                )
            }
        }
        .to_owned(),
        "account.tax_mode" => match slug(t).as_str() {
            "standard" => "standard",
            "custom_rate" | "custom" => "custom_rate",
            "exempt" | "tax_exempt" => "exempt",
            _ => return Err("is not a tax mode (use standard, custom_rate or exempt)".to_owned()),
        }
        .to_owned(),
        "account.tax_rate" => {
            let n = t.strip_suffix('%').unwrap_or(t);
            match parse_decimal(n) {
                Some(d) if d >= Decimal::ZERO && d <= Decimal::ONE_HUNDRED => {
                    d.normalize().to_string()
                }
                _ => return Err("is not a tax rate between 0 and 100 percent".to_owned()),
            }
        }
        "account.currency" => {
            // Upper-cased whatever the transform: CRMs send "usd" as often as "USD".
            let c = t.to_uppercase();
            if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) {
                c
            } else {
                return Err(
                    "is not a three-letter ISO 4217 currency code such as USD or EUR".to_owned(),
                );
            }
        }
        "account.payment_terms" => {
            let (kind, days) = parse_terms(t)?;
            match kind {
                "due_on_receipt" => kind.to_owned(),
                _ => format!("{kind}_{days}"),
            }
        }
        "contact.email" => check_email(t)?,
        "subscription.start_date" => parse_date(t)?,
        "subscription.billing_frequency" => parse_cycle(t)?.to_owned(),
        "subscription.term_months" => match parse_decimal(t).map(|d| d.normalize()) {
            Some(d) if d.scale() == 0 && d >= Decimal::ONE && d <= Decimal::from(120) => {
                d.to_string()
            }
            _ => return Err("is not a whole number of months from 1 to 120".to_owned()),
        },
        _ => t.to_owned(),
    };
    Ok(v)
}

/// Payment terms → (terms_kind, terms_days). Accepts the normalized forms (due_on_receipt,
/// net_30, eom_15) and the way people write them ("Net 30", "NET30", "EOM + 15 days").
fn parse_terms(text: &str) -> Result<(&'static str, u16), String> {
    let s = slug(text);
    let s = s
        .strip_suffix("_days")
        .or_else(|| s.strip_suffix("_day"))
        .unwrap_or(&s);
    if matches!(
        s,
        "due_on_receipt"
            | "due_upon_receipt"
            | "upon_receipt"
            | "on_receipt"
            | "immediate"
            | "immediately"
            | "due_immediately"
    ) {
        return Ok(("due_on_receipt", 0));
    }
    if matches!(s, "eom" | "end_of_month") {
        return Ok(("eom", 0));
    }
    for (prefix, kind) in [("net", "net"), ("end_of_month", "eom"), ("eom", "eom")] {
        let Some(rest) = s.strip_prefix(prefix) else {
            continue;
        };
        let rest = rest.strip_prefix('_').unwrap_or(rest);
        let digits = rest.strip_prefix("plus_").unwrap_or(rest);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return match digits.parse::<u16>() {
                Ok(days) if days <= 365 => Ok((kind, days)),
                _ => Err("allows more than 365 days".to_owned()),
            };
        }
    }
    Err("is not a payment term Arbor understands (use due_on_receipt, net_<days> or eom_<days>, e.g. net_30)".to_owned())
}

fn parse_cycle(text: &str) -> Result<&'static str, String> {
    Ok(match slug(text).as_str() {
        "1" | "monthly" | "month" => "1",
        "3" | "quarterly" | "quarter" => "3",
        "6" | "semiannual" | "semiannually" | "semi_annual" | "semi_annually"
        | "half_yearly" | "per_six_months" => "6",
        "12" | "annual" | "annually" | "yearly" | "year" => "12",
        _ => return Err("is not a billing frequency (use monthly, quarterly, semiannual or annual, or 1, 3, 6 or 12 months)".to_owned()),
    })
}

fn check_email(text: &str) -> Result<String, String> {
    let t = text.trim();
    let bad = || Err("is not an email address".to_owned());
    if t.chars().any(char::is_whitespace) {
        return bad();
    }
    let mut parts = t.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return bad();
    };
    if local.is_empty()
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return bad();
    }
    Ok(t.to_owned())
}

/// YYYY-MM-DD, an RFC 3339 / ISO 8601 timestamp (its UTC date) or epoch milliseconds.
fn parse_date(text: &str) -> Result<String, String> {
    let t = text.trim();
    let date = if t.len() >= 10 && t.bytes().all(|b| b.is_ascii_digit()) {
        // HubSpot sends dates as epoch milliseconds (midnight UTC).
        t.parse::<i64>()
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .map(|d| d.date_naive())
    } else if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        Some(d)
    } else if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        Some(d.with_timezone(&Utc).date_naive())
    } else if let Ok(d) = DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z") {
        // Salesforce writes offsets without a colon: 2026-03-15T00:00:00.000+0000.
        Some(d.with_timezone(&Utc).date_naive())
    } else {
        // A timestamp without an offset is taken as UTC.
        NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|d| d.date())
    };
    date.map(|d| d.format("%Y-%m-%d").to_string())
        .ok_or_else(|| {
            "is not a date (use YYYY-MM-DD, an ISO 8601 timestamp or epoch milliseconds)".to_owned()
        })
}

/// Decimal from text, never via f64; accepts the exponent form serde_json prints for floats.
fn parse_decimal(text: &str) -> Option<Decimal> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    Decimal::from_str(t)
        .or_else(|_| Decimal::from_scientific(t))
        .ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn generic_doc() -> Value {
        json!({"id":"D-1001","name":"Acme renewal","stage":"closedwon","close_date":"2026-03-15",
            "currency":"usd","billing_frequency":"Annual","payment_terms":"Net 45",
            "revenue_recognition":"Ratable","po_number":"PO-77",
            "company":{"id":"C-9","name":"Acme GmbH","domain":"acme.example","tax_id":"DE123",
                "address":{"line1":"Main St 1","city":"Berlin","postal_code":"10115","country":"DE"}},
            "contact":{"id":"P-3","name":"Ana Ruiz","email":"ana@acme.example","phone":"+49 30 1"},
            "line_items":[{"sku":"PLAN-PRO","quantity":"10","price":"90.00","discount":"10%","name":"Pro plan"}]})
    }

    fn hubspot_doc() -> Value {
        json!({"deal":{"hs_object_id":"9001","dealname":"Acme renewal","closedate":"2026-03-15T00:00:00Z",
                "deal_currency_code":"EUR","amount":"810","payment_terms":"net 30",
                "billing_frequency":"Quarterly","revenue_recognition":"Point in time"},
            "company":{"hs_object_id":"77","name":"Acme GmbH","domain":"acme.example","city":"Berlin","zip":"10115","country":"Germany"},
            "contact":{"hs_object_id":"55","email":"ana@acme.example","firstname":"Ana","lastname":"Ruiz"},
            "line_items":[{"hs_sku":"PLAN-PRO","quantity":"10","price":"90.00","hs_discount_percentage":"10","name":"Pro plan"},
                          {"hs_sku":"ONBOARD","quantity":"1","price":"500","hs_discount_percentage":"0"}]})
    }

    fn salesforce_doc() -> Value {
        json!({"Opportunity":{"Id":"006XX","Name":"Acme renewal","CloseDate":"2026-03-15","CurrencyIsoCode":"GBP",
                "Payment_Terms__c":"Due on receipt","Billing_Frequency__c":"Monthly","Revenue_Recognition__c":"ratable"},
            "Account":{"Id":"001XX","Name":"Acme Ltd","BillingStreet":"1 High St","BillingCity":"London","BillingCountry":"GB"},
            "Contact":{"Id":"003XX","Name":"Ana Ruiz","Email":"ana@acme.example"},
            "OpportunityLineItems":[{"ProductCode":"PLAN-PRO","Quantity":5,"UnitPrice":99.5,"Discount":12.5,"Name":"Pro"}]})
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    fn spec_with(target: &str, f: impl FnOnce(&mut FieldRule)) -> Spec {
        let mut spec = default_spec("generic");
        let r = spec.fields.iter_mut().find(|r| r.target == target).unwrap();
        f(r);
        spec
    }

    fn problems(spec: &Spec, doc: &Value) -> Vec<Problem> {
        apply(spec, doc).expect_err("expected problems")
    }

    fn only_problem(spec: &Spec, doc: &Value) -> Problem {
        let p = problems(spec, doc);
        assert_eq!(p.len(), 1, "{p:#?}");
        p.into_iter().next().unwrap()
    }

    fn set(doc: &mut Value, pointer: &str, v: Value) {
        *doc.pointer_mut(pointer).unwrap() = v;
    }

    #[test]
    fn generic_sample_maps_fully() {
        let d = apply(&default_spec("generic"), &generic_doc()).unwrap();
        assert_eq!(d.deal_id, "D-1001");
        assert_eq!(d.kind, DealKind::Subscription);
        assert_eq!(d.revenue_recognition, "ratable");
        assert_eq!(d.account_crm_id.as_deref(), Some("C-9"));
        assert_eq!(d.contact_crm_id.as_deref(), Some("P-3"));
        assert_eq!(
            d.account,
            pairs(&[
                ("legal_name", "Acme GmbH"),
                ("display_name", "Acme GmbH"),
                ("domain", "acme.example"),
                ("tax_id", "DE123"),
                ("currency", "USD"),
                ("terms_kind", "net"),
                ("terms_days", "45"),
                ("billing_line1", "Main St 1"),
                ("billing_city", "Berlin"),
                ("billing_postal_code", "10115"),
                ("billing_country", "DE"),
            ])
        );
        assert_eq!(
            d.contact,
            pairs(&[
                ("name", "Ana Ruiz"),
                ("email", "ana@acme.example"),
                ("phone", "+49 30 1"),
            ])
        );
        assert_eq!(
            d.subscription,
            pairs(&[
                ("start_date", "2026-03-15"),
                ("cycle", "12"),
                ("po_number", "PO-77"),
            ])
        );
        assert_eq!(d.lines.len(), 1);
        let l = &d.lines[0];
        assert_eq!(l.sku, "PLAN-PRO");
        assert_eq!(l.quantity, Decimal::from(10));
        assert_eq!(
            l.unit_price.map(|p| p.to_string()).as_deref(),
            Some("90.00")
        );
        assert_eq!(l.discount.as_deref(), Some("10%"));
        assert_eq!(l.description, "Pro plan");
    }

    #[test]
    fn hubspot_sample_maps_with_default_spec() {
        let d = apply(&default_spec("hubspot"), &hubspot_doc()).unwrap();
        assert_eq!(d.deal_id, "9001");
        assert_eq!(d.revenue_recognition, "point_in_time");
        assert_eq!(d.account_crm_id.as_deref(), Some("77"));
        assert_eq!(d.contact_crm_id.as_deref(), Some("55"));
        let acc: Vec<(&str, &str)> = d
            .account
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert!(acc.contains(&("legal_name", "Acme GmbH")));
        assert!(acc.contains(&("currency", "EUR")));
        assert!(acc.contains(&("terms_kind", "net")));
        assert!(acc.contains(&("terms_days", "30")));
        assert!(acc.contains(&("billing_city", "Berlin")));
        assert!(acc.contains(&("billing_postal_code", "10115")));
        assert_eq!(
            d.contact,
            pairs(&[("name", "Ana Ruiz"), ("email", "ana@acme.example")])
        );
        assert_eq!(
            d.subscription,
            pairs(&[("start_date", "2026-03-15"), ("cycle", "3")])
        );
        assert_eq!(d.lines.len(), 2);
        assert_eq!(d.lines[0].discount.as_deref(), Some("10%"));
        assert_eq!(d.lines[1].sku, "ONBOARD");
        assert_eq!(d.lines[1].discount, None);
        assert_eq!(d.lines[1].unit_price, Some(Decimal::from(500)));
    }

    #[test]
    fn salesforce_sample_maps_with_default_spec() {
        let d = apply(&default_spec("salesforce"), &salesforce_doc()).unwrap();
        assert_eq!(d.deal_id, "006XX");
        assert_eq!(d.revenue_recognition, "ratable");
        assert_eq!(d.account_crm_id.as_deref(), Some("001XX"));
        assert_eq!(
            d.account,
            pairs(&[
                ("legal_name", "Acme Ltd"),
                ("display_name", "Acme Ltd"),
                ("currency", "GBP"),
                ("terms_kind", "due_on_receipt"),
                ("terms_days", "0"),
                ("billing_line1", "1 High St"),
                ("billing_city", "London"),
                ("billing_country", "GB"),
            ])
        );
        assert_eq!(
            d.subscription,
            pairs(&[("start_date", "2026-03-15"), ("cycle", "1")])
        );
        let l = &d.lines[0];
        assert_eq!(l.sku, "PLAN-PRO");
        assert_eq!(l.quantity, Decimal::from(5));
        assert_eq!(l.unit_price.map(|p| p.to_string()).as_deref(), Some("99.5"));
        assert_eq!(l.discount.as_deref(), Some("12.5%"));
    }

    #[test]
    fn default_specs_are_valid() {
        for kind in ["generic", "hubspot", "salesforce"] {
            assert_eq!(validate_spec(&default_spec(kind)), vec![], "{kind}");
        }
        assert_eq!(default_spec("nope"), default_spec("generic"));
    }

    #[test]
    fn each_required_field_missing_is_its_own_problem() {
        let cases = [
            ("deal.id", "/id"),
            ("deal.revenue_recognition", "/revenue_recognition"),
            ("account.legal_name", "/company/name"),
            ("account.currency", "/currency"),
            ("account.payment_terms", "/payment_terms"),
            ("contact.email", "/contact/email"),
            ("subscription.billing_frequency", "/billing_frequency"),
        ];
        for (target, pointer) in cases {
            for missing in [Value::Null, json!(""), json!("   ")] {
                let mut doc = generic_doc();
                set(&mut doc, pointer, missing);
                let p = only_problem(&default_spec("generic"), &doc);
                assert_eq!(p.target, target);
                let path = pointer.trim_start_matches('/').replace('/', ".");
                assert!(p.message.contains(&path), "{}", p.message);
                assert!(p.message.contains("has no value"), "{}", p.message);
            }
        }
        // Lines are the seventh required billing field (price/SKU mapping).
        let mut doc = generic_doc();
        doc.as_object_mut().unwrap().remove("line_items");
        let p = only_problem(&default_spec("generic"), &doc);
        assert_eq!(p.target, "lines");
        assert_eq!(
            p.message,
            "Products: the deal has no line items at line_items. Add products to the deal in the CRM."
        );
    }

    #[test]
    fn required_target_without_rule_is_reported() {
        let mut spec = default_spec("generic");
        spec.fields.retain(|r| r.target != "account.legal_name");
        let p = only_problem(&spec, &generic_doc());
        assert_eq!(p.target, "account.legal_name");
        assert!(p.message.starts_with("Legal name: no CRM field is mapped"));
    }

    #[test]
    fn several_missing_are_all_reported() {
        let doc = json!({"id": "D-1", "currency": "usd"});
        let p = problems(&default_spec("generic"), &doc);
        let targets: Vec<&str> = p.iter().map(|p| p.target.as_str()).collect();
        assert_eq!(
            targets,
            vec![
                "deal.revenue_recognition",
                "account.legal_name",
                "account.payment_terms",
                "contact.email",
                "subscription.billing_frequency",
                "lines",
            ]
        );
        // An empty document misses every required field at once.
        let p = problems(&default_spec("generic"), &json!({}));
        assert_eq!(p.len(), 8);
    }

    #[test]
    fn lookup_miss_names_value_and_known_keys() {
        let spec = spec_with("account.payment_terms", |r| {
            r.lookup = pairs(&[
                ("Net 30", "net_30"),
                ("Net 45", "net_45"),
                ("Due on receipt", "due_on_receipt"),
            ]);
        });
        let mut doc = generic_doc();
        set(&mut doc, "/payment_terms", json!("Net 45 days"));
        let p = only_problem(&spec, &doc);
        assert_eq!(p.target, "account.payment_terms");
        assert_eq!(
            p.message,
            "Payment terms: the deal's payment_terms is \"Net 45 days\", which is not in the lookup table (known: Net 30, Net 45, Due on receipt). Add it to the table or fix the deal."
        );
        // Matching is case-insensitive and trimmed.
        set(&mut doc, "/payment_terms", json!("  due ON receipt "));
        let d = apply(&spec, &doc).unwrap();
        assert!(d
            .account
            .contains(&("terms_kind".into(), "due_on_receipt".into())));
    }

    #[test]
    fn bad_lookup_output_is_reported_at_apply() {
        let spec = spec_with("account.payment_terms", |r| {
            r.lookup = pairs(&[("Net 45", "net_abc")]);
        });
        let p = only_problem(&spec, &generic_doc());
        assert!(p.message.contains("maps to \"net_abc\""), "{}", p.message);
    }

    #[test]
    fn payment_terms_parsing() {
        let ok = [
            ("net_30", ("net", 30)),
            ("Net 30", ("net", 30)),
            ("NET30", ("net", 30)),
            ("net-60 days", ("net", 60)),
            ("Net 0", ("net", 0)),
            ("net_365", ("net", 365)),
            ("due_on_receipt", ("due_on_receipt", 0)),
            ("Due upon receipt", ("due_on_receipt", 0)),
            ("Immediate", ("due_on_receipt", 0)),
            ("eom_15", ("eom", 15)),
            ("EOM + 15 days", ("eom", 15)),
            ("End of month", ("eom", 0)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_terms(text), Ok(want), "{text}");
        }
        for bad in [
            "net_366",
            "net_abc",
            "net",
            "30",
            "2/10 net 30",
            "",
            "net_99999999999",
        ] {
            assert!(parse_terms(bad).is_err(), "{bad}");
        }
        assert_eq!(
            normalize("account.payment_terms", "Net 30").unwrap(),
            "net_30"
        );
        assert_eq!(
            normalize("account.payment_terms", "upon receipt").unwrap(),
            "due_on_receipt"
        );
        let mut doc = generic_doc();
        set(&mut doc, "/payment_terms", json!("Net 400"));
        let p = only_problem(&default_spec("generic"), &doc);
        assert_eq!(
            p.message,
            "Payment terms: the deal's payment_terms is \"Net 400\", which allows more than 365 days. Correct it in the CRM or add a lookup table to the field mapping."
        );
    }

    #[test]
    fn billing_frequency_words() {
        for (text, want) in [
            ("monthly", "1"),
            ("Monthly", "1"),
            ("1", "1"),
            ("Quarterly", "3"),
            ("3", "3"),
            ("semiannual", "6"),
            ("Semi-annual", "6"),
            ("semi-annually", "6"),
            ("6", "6"),
            ("annual", "12"),
            ("Annually", "12"),
            ("YEARLY", "12"),
            ("12", "12"),
        ] {
            assert_eq!(parse_cycle(text), Ok(want), "{text}");
        }
        for bad in ["weekly", "2", "biennial", "24"] {
            assert!(parse_cycle(bad).is_err(), "{bad}");
        }
        // A lookup maps CRM picklist labels to cycles.
        let spec = spec_with("subscription.billing_frequency", |r| {
            r.lookup = pairs(&[("Every two months", "monthly"), ("Annual", "12")]);
        });
        let d = apply(&spec, &generic_doc()).unwrap();
        assert!(d.subscription.contains(&("cycle".into(), "12".into())));
    }

    #[test]
    fn one_off_deals_need_no_billing_frequency() {
        let spec = spec_with("deal.kind", |r| r.source = "kind".into());
        let mut doc = generic_doc();
        doc["kind"] = json!("One-off");
        set(&mut doc, "/billing_frequency", Value::Null);
        let d = apply(&spec, &doc).unwrap();
        assert_eq!(d.kind, DealKind::OneOff);
        assert!(!d.subscription.iter().any(|(k, _)| k == "cycle"));
        doc["kind"] = json!("renewal");
        let p = problems(&spec, &doc);
        assert_eq!(p.len(), 2, "{p:#?}");
        assert_eq!(p[0].target, "deal.kind");
        assert_eq!(p[1].target, "subscription.billing_frequency");
    }

    #[test]
    fn currency_is_upper_cased_and_validated() {
        for (raw, transform) in [
            ("usd", Transform::None),
            ("uSd", Transform::Lower),
            (" usd ", Transform::None),
        ] {
            let spec = spec_with("account.currency", |r| r.transform = transform);
            let mut doc = generic_doc();
            set(&mut doc, "/currency", json!(raw));
            let d = apply(&spec, &doc).unwrap();
            assert!(
                d.account.contains(&("currency".into(), "USD".into())),
                "{raw}"
            );
        }
        for bad in ["US", "USDX", "U$D", "12", "€"] {
            let mut doc = generic_doc();
            set(&mut doc, "/currency", json!(bad));
            let p = only_problem(&default_spec("generic"), &doc);
            assert_eq!(p.target, "account.currency");
            assert_eq!(
                p.message,
                format!("Currency: the deal's currency is \"{bad}\", which is not a three-letter ISO 4217 currency code such as USD or EUR. Correct it in the CRM or add a lookup table to the field mapping.")
            );
        }
    }

    #[test]
    fn email_validation() {
        for ok in ["ana@acme.example", "a.b+c@sub.acme.co", "X@Y.Z"] {
            assert_eq!(check_email(ok), Ok(ok.to_owned()));
        }
        for bad in [
            "ana",
            "ana@",
            "@acme.example",
            "ana@acme",
            "a@b@c.d",
            "ana @acme.example",
            "ana@.acme",
            "ana@acme.",
            "ana@acme..example",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        let mut doc = generic_doc();
        set(&mut doc, "/contact/email", json!("ana(at)acme.example"));
        let p = only_problem(&default_spec("generic"), &doc);
        assert_eq!(p.target, "contact.email");
        assert!(p.message.starts_with("Billing contact email: the deal's contact.email is \"ana(at)acme.example\", which is not an email address."));
    }

    #[test]
    fn date_formats() {
        for (text, want) in [
            ("2026-03-15", "2026-03-15"),
            ("2026-03-15T00:00:00Z", "2026-03-15"),
            ("2026-03-15T23:30:00-05:00", "2026-03-16"),
            ("2026-03-15T00:00:00.000+0000", "2026-03-15"),
            ("2026-03-15T10:00:00", "2026-03-15"),
            ("1773532800000", "2026-03-15"),
        ] {
            assert_eq!(parse_date(text).as_deref(), Ok(want), "{text}");
        }
        for bad in [
            "15/03/2026",
            "2026-02-30",
            "tomorrow",
            "99999999999999999999",
            "",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
        // A JSON number (HubSpot epoch millis) works too.
        let mut doc = generic_doc();
        set(&mut doc, "/close_date", json!(1_773_532_800_000_i64));
        let d = apply(&default_spec("generic"), &doc).unwrap();
        assert!(d
            .subscription
            .contains(&("start_date".into(), "2026-03-15".into())));
        set(&mut doc, "/close_date", json!("next week"));
        let p = only_problem(&default_spec("generic"), &doc);
        assert_eq!(p.target, "subscription.start_date");
        assert!(
            p.message.contains("\"next week\", which is not a date"),
            "{}",
            p.message
        );
        // Absent start date is fine: the caller uses today.
        set(&mut doc, "/close_date", Value::Null);
        let d = apply(&default_spec("generic"), &doc).unwrap();
        assert!(!d.subscription.iter().any(|(k, _)| k == "start_date"));
    }

    #[test]
    fn transforms_and_defaults() {
        assert_eq!(apply_transform(Transform::Upper, " ab ").unwrap(), "AB");
        assert_eq!(apply_transform(Transform::Lower, "AB").unwrap(), "ab");
        assert_eq!(
            apply_transform(Transform::Decimal, "10.50").unwrap(),
            "10.5"
        );
        assert!(apply_transform(Transform::Decimal, "ten").is_err());
        // The default fills an absent value and is validated like one.
        let spec = spec_with("account.payment_terms", |r| r.default = "net_30".into());
        let mut doc = generic_doc();
        set(&mut doc, "/payment_terms", Value::Null);
        let d = apply(&spec, &doc).unwrap();
        assert!(d.account.contains(&("terms_days".into(), "30".into())));
        let spec = spec_with("account.payment_terms", |r| r.default = "net_abc".into());
        let p = only_problem(&spec, &doc);
        assert!(p.message.contains("default \"net_abc\""), "{}", p.message);
        // Joined sources and other targets' normalization.
        let spec = spec_with("contact.name", |r| {
            r.source = "contact.first + contact.last".into()
        });
        let mut doc = generic_doc();
        doc["contact"]["first"] = json!("Ana");
        doc["contact"]["last"] = json!(" Ruiz ");
        let d = apply(&spec, &doc).unwrap();
        assert!(d.contact.contains(&("name".into(), "Ana Ruiz".into())));
        assert_eq!(normalize("account.tax_rate", "19%").unwrap(), "19");
        assert!(normalize("account.tax_rate", "101").is_err());
        assert_eq!(
            normalize("account.tax_mode", "Custom rate").unwrap(),
            "custom_rate"
        );
        assert_eq!(normalize("subscription.term_months", "12.0").unwrap(), "12");
        assert!(normalize("subscription.term_months", "121").is_err());
        assert!(normalize("subscription.term_months", "1.5").is_err());
    }

    #[test]
    fn nested_value_is_a_problem() {
        let spec = spec_with("account.legal_name", |r| r.source = "company".into());
        let p = only_problem(&spec, &generic_doc());
        assert_eq!(
            p.message,
            "Legal name: the deal's company is an object, not a single value. Point the mapping at one of its fields."
        );
    }

    #[test]
    fn array_index_paths() {
        let spec = spec_with("subscription.po_number", |r| {
            r.source = "line_items.0.sku".into()
        });
        let d = apply(&spec, &generic_doc()).unwrap();
        assert!(d
            .subscription
            .contains(&("po_number".into(), "PLAN-PRO".into())));
        assert!(matches!(
            resolve(&generic_doc(), "line_items.5.sku"),
            Raw::Absent
        ));
        assert!(matches!(
            resolve(&generic_doc(), "line_items.x"),
            Raw::Absent
        ));
        assert!(matches!(resolve(&json!({"a": true}), "a"), Raw::Text(t) if t == "true"));
    }

    #[test]
    fn line_problems() {
        let spec = default_spec("generic");
        let mut doc = generic_doc();
        set(&mut doc, "/line_items", json!([]));
        assert_eq!(only_problem(&spec, &doc).target, "lines");
        set(&mut doc, "/line_items", json!("PLAN-PRO"));
        assert!(only_problem(&spec, &doc)
            .message
            .contains("is not a list of line items"));

        set(
            &mut doc,
            "/line_items",
            json!([
                {"quantity": "2"},
                {"sku": "A", "quantity": "0"},
                {"sku": "B", "quantity": "x", "price": "-1"},
                {"sku": "C", "discount": "150%"},
                {"sku": "D", "discount": "abc"},
            ]),
        );
        let p = problems(&spec, &doc);
        let msgs: Vec<&str> = p.iter().map(|p| p.message.as_str()).collect();
        assert!(p.iter().all(|p| p.target == "lines"));
        assert_eq!(
            msgs,
            vec![
                "Products: line 1 has no SKU at line_items.0.sku. Set the product code on the deal's line item in the CRM.",
                "Products: line 2's quantity at line_items.1.quantity is \"0\", which is not a number greater than zero. Fix the quantity on the deal.",
                "Products: line 3's quantity at line_items.2.quantity is \"x\", which is not a number greater than zero. Fix the quantity on the deal.",
                "Products: line 3's unit price at line_items.2.price is \"-1\", which is not an amount of zero or more. Fix the price on the deal.",
                "Products: line 4's discount at line_items.3.discount is \"150%\", which is more than 100%. Fix the discount on the deal.",
                "Products: line 5's discount at line_items.4.discount is \"abc\", which is not a percentage (10%) or an amount (15.00). Fix the discount on the deal.",
            ]
        );
    }

    #[test]
    fn line_defaults_discounts_and_sku_lookup() {
        let mut spec = default_spec("generic");
        let mut doc = generic_doc();
        set(
            &mut doc,
            "/line_items",
            json!([
                {"sku": "pro"},
                {"sku": "SEAT", "quantity": 3, "price": 15, "discount": "15.00"},
                {"sku": "SEAT", "discount": "0"},
                {"sku": "SEAT", "discount": " 12.50 % "},
            ]),
        );
        spec.lines.sku_lookup = pairs(&[("PRO", "PLAN-PRO"), ("seat", "SEAT-1")]);
        let d = apply(&spec, &doc).unwrap();
        assert_eq!(d.lines[0].sku, "PLAN-PRO");
        assert_eq!(d.lines[0].quantity, Decimal::ONE);
        assert_eq!(d.lines[0].unit_price, None);
        assert_eq!(d.lines[0].discount, None);
        assert_eq!(d.lines[1].sku, "SEAT-1");
        assert_eq!(d.lines[1].quantity, Decimal::from(3));
        assert_eq!(d.lines[1].discount.as_deref(), Some("15.00"));
        assert_eq!(d.lines[2].discount, None);
        assert_eq!(d.lines[3].discount.as_deref(), Some("12.5%"));

        spec.lines.discount_is_percent = true;
        let d = apply(&spec, &doc).unwrap();
        assert_eq!(d.lines[1].discount.as_deref(), Some("15%"));

        set(&mut doc, "/line_items", json!([{"sku": "ENT"}]));
        let p = only_problem(&spec, &doc);
        assert_eq!(
            p.message,
            "Products: line 1 has product code \"ENT\", which is not in the SKU mapping (known: PRO, seat). Add it to the SKU mapping or fix the deal."
        );
    }

    #[test]
    fn validate_spec_cases() {
        let codes = |spec: &Spec| -> Vec<String> {
            validate_spec(spec).into_iter().map(|p| p.message).collect()
        };
        let mut spec = default_spec("generic");
        spec.fields.push(rule("account.nickname", "x"));
        spec.fields.push(rule("account.domain", "company.website"));
        assert_eq!(
            codes(&spec),
            vec![
                "Field mapping: \"account.nickname\" is not an Arbor field. Remove the row or pick a field from the list.",
                "Domain: it is mapped more than once. Keep a single row for it.",
            ]
        );

        let spec = spec_with("account.currency", |r| r.source = String::new());
        let p = validate_spec(&spec);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].target, "account.currency");
        let spec = spec_with("account.currency", |r| {
            r.source = String::new();
            r.default = "eur".into();
        });
        assert_eq!(validate_spec(&spec), vec![]);

        let spec = spec_with("account.payment_terms", |r| {
            r.lookup = pairs(&[("Net 30", "net_abc"), ("net 30", "net_30"), ("", "net_45")]);
        });
        assert_eq!(
            codes(&spec),
            vec![
                "Payment terms: the lookup entry \"Net 30\" maps to \"net_abc\", which is not a payment term Arbor understands (use due_on_receipt, net_<days> or eom_<days>, e.g. net_30). Fix the Arbor value of that entry.",
                "Payment terms: the CRM value \"net 30\" appears more than once in the lookup table. Keep one entry.",
                "Payment terms: a lookup entry has an empty CRM value (mapped to \"net_45\"). Fill it in or remove the entry.",
            ]
        );

        let spec = spec_with("deal.kind", |r| r.default = "lease".into());
        assert_eq!(validate_spec(&spec).len(), 1);
        let spec = spec_with("account.domain", |r| r.source = "company..domain".into());
        assert_eq!(validate_spec(&spec).len(), 1);

        let mut spec = default_spec("generic");
        spec.lines.sku = " ".into();
        spec.lines.sku_lookup = pairs(&[("A", "")]);
        assert_eq!(
            codes(&spec),
            vec![
                "Products: the SKU path inside a line item is empty. Enter it, e.g. sku.",
                "Products: the SKU mapping entry \"A\" → \"\" has an empty side. Fill it in or remove it.",
            ]
        );

        let empty = validate_spec(&Spec::default());
        // Seven required fields plus the two line paths.
        assert_eq!(empty.len(), 9, "{empty:#?}");
    }

    #[test]
    fn unknown_target_in_spec_blocks_apply() {
        let mut spec = default_spec("generic");
        spec.fields.push(rule("bogus", "id"));
        let p = only_problem(&spec, &generic_doc());
        assert_eq!(p.target, "spec");
    }

    #[test]
    fn preview_shows_each_target() {
        let mut doc = generic_doc();
        set(&mut doc, "/currency", json!("dollars"));
        let rows = preview(&default_spec("generic"), &doc);
        assert_eq!(rows.len(), TARGETS.len() + 1);
        let row = |code: &str| rows.iter().find(|r| r.code == code).unwrap();
        let cur = row("account.currency");
        assert_eq!(cur.label, "Currency");
        assert_eq!(cur.source, "currency");
        assert_eq!(cur.raw.as_deref(), Some("dollars"));
        assert_eq!(cur.mapped, None);
        assert!(cur.problem.is_some());
        let terms = row("account.payment_terms");
        assert_eq!(terms.raw.as_deref(), Some("Net 45"));
        assert_eq!(terms.mapped.as_deref(), Some("net_45"));
        assert_eq!(terms.problem, None);
        let unmapped = row("account.tax_mode");
        assert_eq!(
            (unmapped.raw.as_ref(), unmapped.mapped.as_ref()),
            (None, None)
        );
        let line = row("lines.1");
        assert_eq!(
            line.mapped.as_deref(),
            Some("PLAN-PRO × 10 @ 90.00 less 10%")
        );
    }

    #[test]
    fn spec_round_trips_through_json() {
        let spec = default_spec("hubspot");
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<Spec>(&text).unwrap(), spec);
        // The form may omit the optional parts.
        let spec: Spec = serde_json::from_value(json!({
            "fields": [{"target": "deal.id", "source": "id", "transform": "upper",
                        "lookup": [["a", "b"]]}],
            "lines": {"source": "items", "sku": "code", "quantity": "", "unit_price": "",
                      "discount": "", "description": ""}
        }))
        .unwrap();
        assert_eq!(spec.fields[0].transform, Transform::Upper);
        assert_eq!(spec.fields[0].lookup, pairs(&[("a", "b")]));
        assert!(!spec.lines.discount_is_percent);
        let d = apply(&default_spec("generic"), &generic_doc()).unwrap();
        let back: MappedDeal = serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("id".to_owned()),
            Just("0".to_owned()),
            Just("1".to_owned()),
            Just("company".to_owned()),
            Just("name".to_owned()),
            Just("contact".to_owned()),
            Just("email".to_owned()),
            Just("currency".to_owned()),
            Just("payment_terms".to_owned()),
            Just("billing_frequency".to_owned()),
            Just("close_date".to_owned()),
            Just("line_items".to_owned()),
            Just("sku".to_owned()),
            Just("quantity".to_owned()),
            Just("price".to_owned()),
            Just("discount".to_owned()),
            "[a-z._+]{0,6}",
        ];
        let text = prop_oneof![
            ".*",
            "(net|eom|Net|EOM)[ _-]?[0-9]{0,12}( days)?",
            "-?[0-9]{0,30}(\\.[0-9]{0,30})?%?",
            "[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9:.]{0,12}(Z|[+-][0-9:]{0,5})?)?",
            "[a-zA-Z@.]{0,12}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text.prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn apply_never_panics(doc in arb_json(), wrap in any::<bool>()) {
            // Wrapping lets generated subtrees land under the generic top-level keys.
            let doc = if wrap { json!({"company": doc.clone(), "line_items": doc}) } else { doc };
            for kind in ["generic", "hubspot", "salesforce"] {
                let spec = default_spec(kind);
                match apply(&spec, &doc) {
                    Ok(d) => prop_assert!(!d.lines.is_empty()),
                    Err(p) => prop_assert!(!p.is_empty()),
                }
                let rows = preview(&spec, &doc);
                prop_assert!(rows.len() > TARGETS.len());
            }
        }

        #[test]
        fn arbitrary_specs_never_panic(
            doc in arb_json(),
            source in "[a-z0-9._+ ]{0,12}",
            out in ".{0,12}",
            default in ".{0,12}",
            idx in 0usize..32,
        ) {
            let target = TARGETS.get(idx % TARGETS.len()).map(|t| t.code).unwrap_or("x");
            let mut spec = default_spec("generic");
            spec.fields.push(FieldRule {
                target: target.to_owned(),
                source: source.clone(),
                transform: Transform::Date,
                lookup: vec![(out.clone(), out.clone())],
                default: default.clone(),
            });
            spec.lines.source = source.clone();
            spec.lines.sku = source;
            spec.lines.sku_lookup = vec![(out.clone(), default)];
            let _ = validate_spec(&spec);
            let _ = apply(&spec, &doc);
            let _ = preview(&spec, &doc);
        }
    }
}
