//! Account input, parsed from a form or a CSV row into typed values with per-field messages.
//! Pure: no database. References to other records (owner, parent) stay unresolved here.

use std::{collections::HashMap, str::FromStr};

use chrono::{Datelike, Days, NaiveDate};
use rust_decimal::Decimal;

pub use super::values::{parse_custom, Address, CustomFieldDef};
use crate::{
    dates,
    error::FieldErrors,
    money::{self, Currency},
};

/// Submitted fields by name: a form body or a CSV row keyed by header.
#[derive(Debug, Clone, Default)]
pub struct Fields(HashMap<String, String>);

impl Fields {
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(pairs.into_iter().collect())
    }

    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", |v| v.trim())
    }

    /// Checkbox or CSV boolean.
    pub fn flag(&self, name: &str) -> bool {
        matches!(
            self.get(name).to_lowercase().as_str(),
            "on" | "true" | "yes" | "1" | "y"
        )
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_owned(), value.into());
    }

    /// Names of the submitted fields, for forms with one field per row (`apply_<id>`).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// A decimal number, blank as `None`. Accepts thousands separators ("1,250.50"); see
    /// [`money::parse_amount`] for what is refused.
    pub fn decimal(&self, name: &str) -> Result<Option<Decimal>, String> {
        let raw = self.get(name);
        if raw.is_empty() {
            return Ok(None);
        }
        money::parse_amount(raw).map(Some)
    }

    /// An ISO date (`2026-03-31`), blank as `None`; see [`dates::parse_iso`].
    pub fn date(&self, name: &str) -> Result<Option<NaiveDate>, String> {
        let raw = self.get(name);
        if raw.is_empty() {
            return Ok(None);
        }
        dates::parse_iso(raw).map(Some)
    }
}

text_enum!(AccountStatus {
    Active = "active" / "Active",
    OnHold = "on_hold" / "On hold",
    Closed = "closed" / "Closed",
    Merged = "merged" / "Merged",
});

text_enum!(TaxMode {
    Standard = "standard" / "Standard rate",
    CustomRate = "custom_rate" / "Custom rate",
    Exempt = "exempt" / "Exempt",
});

text_enum!(TermsKind {
    Net = "net" / "Net days",
    DueOnReceipt = "due_on_receipt" / "Due on receipt",
    EndOfMonth = "eom" / "End of month plus days",
});

text_enum!(Delivery {
    Email = "email" / "Email",
    Post = "post" / "Post",
});

text_enum!(ContactRole {
    Billing = "billing" / "Billing contact",
    AccountsPayable = "accounts_payable" / "Accounts payable",
    Signer = "signer" / "Signer",
    Technical = "technical" / "Technical",
});

/// When an invoice issued on a date falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentTerms {
    pub kind: TermsKind,
    pub days: u16,
}

impl PaymentTerms {
    pub fn due_date(self, issued: NaiveDate) -> NaiveDate {
        let days = Days::new(u64::from(self.days));
        match self.kind {
            TermsKind::DueOnReceipt => issued,
            TermsKind::Net => issued.checked_add_days(days).unwrap_or(issued),
            TermsKind::EndOfMonth => {
                let first_next = if issued.month() == 12 {
                    NaiveDate::from_ymd_opt(issued.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(issued.year(), issued.month() + 1, 1)
                };
                let eom = first_next.and_then(|d| d.pred_opt()).unwrap_or(issued);
                eom.checked_add_days(days).unwrap_or(eom)
            }
        }
    }

    pub fn label(self) -> String {
        match self.kind {
            TermsKind::DueOnReceipt => "Due on receipt".into(),
            TermsKind::Net => format!("Net {}", self.days),
            TermsKind::EndOfMonth => format!("End of month + {}", self.days),
        }
    }
}

/// A member named in a form (user id) or a CSV file (email).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRef {
    Id(i64),
    Email(String),
}

impl MemberRef {
    fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.is_empty() {
            None
        } else if let Ok(id) = raw.parse() {
            Some(Self::Id(id))
        } else {
            Some(Self::Email(raw.to_lowercase()))
        }
    }
}

/// The identity and ownership part of an account (editable by sales).
#[derive(Debug, Clone, PartialEq)]
pub struct General {
    pub legal_name: String,
    pub display_name: String,
    pub account_number: Option<String>,
    pub tax_id: Option<String>,
    pub domain: Option<String>,
    pub po_number: Option<String>,
    pub owner: Option<MemberRef>,
    pub csm: Option<MemberRef>,
    pub status: AccountStatus,
    /// Parent account number.
    pub parent: Option<String>,
    pub notes: String,
    pub crm_ids: Vec<(String, String)>,
}

/// Tax, currency, payment terms and delivery: finance's part of an account.
#[derive(Debug, Clone, PartialEq)]
pub struct Terms {
    pub tax_mode: TaxMode,
    pub tax_rate: Option<Decimal>,
    pub tax_exempt_certificate: Option<String>,
    pub currency: Currency,
    pub terms: PaymentTerms,
    pub delivery: Delivery,
    pub bill_to_parent: bool,
}

/// The form and CSV field names of the terms section: sales may not send them.
pub const TERMS_FIELDS: [&str; 9] = [
    "tax_mode",
    "tax_rate",
    "tax_exempt_certificate",
    "currency",
    "terms_kind",
    "terms_days",
    "invoice_delivery",
    "bill_to_parent",
    "terms_section",
];

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Addresses {
    pub billing: Address,
    pub shipping: Address,
}

fn text(
    f: &Fields,
    name: &str,
    max: usize,
    required: Option<&str>,
    errors: &mut FieldErrors,
) -> Option<String> {
    let v = f.get(name);
    if v.is_empty() {
        if let Some(msg) = required {
            errors.add(name, msg);
        }
        return None;
    }
    if v.chars().count() > max {
        errors.add(name, format!("Use at most {max} characters."));
        return None;
    }
    if v.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        errors.add(name, "Remove control characters.");
        return None;
    }
    Some(v.to_owned())
}

/// Normalises a domain typed as `www.Acme.com`, `https://acme.com/about` or `ap@acme.com`.
pub fn parse_domain(raw: &str) -> Result<Option<String>, String> {
    let mut s = raw.trim().to_lowercase();
    if s.is_empty() {
        return Ok(None);
    }
    if let Some((_, d)) = s.rsplit_once('@') {
        s = d.to_owned();
    }
    for prefix in ["https://", "http://"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.to_owned();
        }
    }
    let s = s.split(['/', '?', '#', ':']).next().unwrap_or_default();
    let s = s.strip_prefix("www.").unwrap_or(s).trim_end_matches('.');
    let ok = s.contains('.')
        && s.len() <= 253
        && !s.starts_with(['.', '-'])
        && s.split('.').all(|l| !l.is_empty())
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(Some(s.to_owned()))
    } else {
        Err("Enter a domain like acme.com.".into())
    }
}

/// `salesforce:0015g00000XyZ; hubspot:1234` (or one per line).
pub fn parse_crm_ids(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in raw
        .split([';', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let Some((system, id)) = item.split_once(':') else {
            return Err(format!(
                "Write \"{item}\" as system:id, e.g. salesforce:0015g00000XyZ."
            ));
        };
        let system = system.trim().to_lowercase();
        let id = id.trim();
        let system_ok = system.len() <= 30
            && system.starts_with(|c: char| c.is_ascii_lowercase())
            && system
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !system_ok {
            return Err(format!(
                "\"{system}\" is not a system name (letters, digits, underscore)."
            ));
        }
        if id.is_empty() || id.chars().count() > 100 {
            return Err(format!("The {system} id must be 1 to 100 characters."));
        }
        if !out.iter().any(|(s, i)| *s == system && i == id) {
            out.push((system, id.to_owned()));
        }
    }
    Ok(out)
}

pub fn format_crm_ids(ids: &[(String, String)]) -> String {
    ids.iter()
        .map(|(s, i)| format!("{s}:{i}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn account_number(raw: &str) -> Result<Option<String>, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let ok = s.len() <= 40
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_/".contains(c));
    if ok {
        Ok(Some(s.to_owned()))
    } else {
        Err("Use up to 40 letters, digits, dots, dashes, underscores or slashes.".into())
    }
}

impl General {
    pub fn parse(f: &Fields, errors: &mut FieldErrors) -> Option<Self> {
        let before = errors.0.len();
        let legal_name = text(f, "legal_name", 200, Some("Enter the legal name."), errors);
        let display_name = text(f, "display_name", 200, None, errors);
        let number = account_number(f.get("account_number"))
            .map_err(|e| errors.add("account_number", e))
            .ok()
            .flatten();
        let tax_id = text(f, "tax_id", 50, None, errors);
        let domain = parse_domain(f.get("domain"))
            .map_err(|e| errors.add("domain", e))
            .ok()
            .flatten();
        let po_number = text(f, "po_number", 60, None, errors);
        let status = match f.get("status") {
            "" => AccountStatus::Active,
            s => match AccountStatus::parse(s) {
                Some(AccountStatus::Merged) | None => {
                    errors.add("status", "Choose active, on hold or closed.");
                    AccountStatus::Active
                }
                Some(s) => s,
            },
        };
        let parent = text(f, "parent", 40, None, errors);
        let notes = text(f, "notes", 5000, None, errors).unwrap_or_default();
        let crm_ids = parse_crm_ids(f.get("crm_ids"))
            .map_err(|e| errors.add("crm_ids", e))
            .unwrap_or_default();
        if errors.0.len() > before {
            return None;
        }
        let legal_name = legal_name?;
        Some(Self {
            display_name: display_name.unwrap_or_else(|| legal_name.clone()),
            legal_name,
            account_number: number,
            tax_id,
            domain,
            po_number,
            owner: MemberRef::parse(f.get("owner")),
            csm: MemberRef::parse(f.get("csm")),
            status,
            parent,
            notes,
            crm_ids,
        })
    }
}

impl Terms {
    /// Parses the terms section; blank fields take the tenant's defaults.
    pub fn parse(f: &Fields, default_currency: &str, errors: &mut FieldErrors) -> Option<Self> {
        let before = errors.0.len();
        let tax_mode = match f.get("tax_mode") {
            "" => TaxMode::Standard,
            s => TaxMode::parse(s).unwrap_or_else(|| {
                errors.add("tax_mode", "Choose standard, custom rate or exempt.");
                TaxMode::Standard
            }),
        };
        let mut tax_rate = None;
        let mut certificate = text(f, "tax_exempt_certificate", 100, None, errors);
        match tax_mode {
            TaxMode::CustomRate => match Decimal::from_str(f.get("tax_rate").trim_end_matches('%'))
            {
                Ok(r) if r >= Decimal::ZERO && r <= Decimal::ONE_HUNDRED && r.scale() <= 4 => {
                    tax_rate = Some(r.normalize());
                }
                _ => errors.add("tax_rate", "Enter a rate between 0 and 100, e.g. 7.5."),
            },
            TaxMode::Exempt if certificate.is_none() => errors.add(
                "tax_exempt_certificate",
                "Enter the exemption certificate reference.",
            ),
            TaxMode::Standard => certificate = None,
            TaxMode::Exempt => {}
        }
        if tax_mode == TaxMode::CustomRate {
            certificate = None;
        }
        let currency = match f.get("currency") {
            "" => Currency::parse(default_currency),
            c => Currency::parse(c),
        }
        .map_err(|e| errors.add("currency", e))
        .ok();
        let kind = match f.get("terms_kind") {
            "" => TermsKind::Net,
            s => TermsKind::parse(s).unwrap_or_else(|| {
                errors.add(
                    "terms_kind",
                    "Choose net days, due on receipt or end of month.",
                );
                TermsKind::Net
            }),
        };
        let days = match (kind, f.get("terms_days")) {
            (TermsKind::DueOnReceipt, _) => 0,
            (TermsKind::Net, "") => 30,
            (TermsKind::EndOfMonth, "") => 0,
            (_, d) => match d.parse::<u16>() {
                Ok(n) if n <= 365 => n,
                _ => {
                    errors.add("terms_days", "Enter whole days from 0 to 365.");
                    0
                }
            },
        };
        let delivery = match f.get("invoice_delivery") {
            "" => Delivery::Email,
            s => Delivery::parse(s).unwrap_or_else(|| {
                errors.add("invoice_delivery", "Choose email or post.");
                Delivery::Email
            }),
        };
        if errors.0.len() > before {
            return None;
        }
        Some(Self {
            tax_mode,
            tax_rate,
            tax_exempt_certificate: certificate,
            currency: currency?,
            terms: PaymentTerms { kind, days },
            delivery,
            bill_to_parent: f.flag("bill_to_parent"),
        })
    }
}

impl Addresses {
    pub fn parse(f: &Fields, errors: &mut FieldErrors) -> Option<Self> {
        let before = errors.0.len();
        let billing = Address::parse(f, "billing", errors);
        let shipping = Address::parse(f, "shipping", errors);
        (errors.0.len() == before).then_some(Self { billing, shipping })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        Fields::from_pairs(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())))
    }

    #[test]
    fn general_requires_legal_name_and_defaults_display_name() {
        let mut e = FieldErrors::default();
        assert!(General::parse(&fields(&[]), &mut e).is_none());
        assert!(e.get("legal_name").is_some());
        let mut e = FieldErrors::default();
        let g = General::parse(&fields(&[("legal_name", " Acme GmbH ")]), &mut e).unwrap();
        assert_eq!(g.display_name, "Acme GmbH");
        assert_eq!(g.status, AccountStatus::Active);
    }

    #[test]
    fn domain_is_normalised_from_urls_and_emails() {
        assert_eq!(
            parse_domain("https://www.Acme.com/about").unwrap(),
            Some("acme.com".into())
        );
        assert_eq!(
            parse_domain("ap@acme.co.uk").unwrap(),
            Some("acme.co.uk".into())
        );
        assert!(parse_domain("not a domain").is_err());
        assert_eq!(parse_domain("  ").unwrap(), None);
    }

    #[test]
    fn crm_ids_parse_and_reject_garbage() {
        assert_eq!(
            parse_crm_ids("Salesforce:001A; hubspot:42\nhubspot:42").unwrap(),
            vec![
                ("salesforce".into(), "001A".into()),
                ("hubspot".into(), "42".into())
            ]
        );
        assert!(parse_crm_ids("001A").is_err());
    }

    #[test]
    fn terms_validate_tax_profile() {
        let mut e = FieldErrors::default();
        assert!(Terms::parse(&fields(&[("tax_mode", "exempt")]), "EUR", &mut e).is_none());
        assert!(e.get("tax_exempt_certificate").is_some());
        let mut e = FieldErrors::default();
        let t = Terms::parse(
            &fields(&[("tax_mode", "custom_rate"), ("tax_rate", "7.50")]),
            "EUR",
            &mut e,
        )
        .unwrap();
        assert_eq!(t.tax_rate, Some(Decimal::new(75, 1)));
        assert_eq!(t.currency.code(), "EUR");
        let mut e = FieldErrors::default();
        assert!(Terms::parse(
            &fields(&[("tax_mode", "custom_rate"), ("tax_rate", "120")]),
            "EUR",
            &mut e
        )
        .is_none());
        let mut e = FieldErrors::default();
        assert!(Terms::parse(&fields(&[("currency", "ABC")]), "EUR", &mut e).is_none());
        assert!(e.get("currency").is_some());
    }

    #[test]
    fn due_dates_follow_terms() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let net30 = PaymentTerms {
            kind: TermsKind::Net,
            days: 30,
        };
        assert_eq!(net30.due_date(d("2026-01-15")), d("2026-02-14"));
        let eom15 = PaymentTerms {
            kind: TermsKind::EndOfMonth,
            days: 15,
        };
        assert_eq!(eom15.due_date(d("2026-02-03")), d("2026-03-15"));
        assert_eq!(eom15.due_date(d("2026-12-31")), d("2027-01-15"));
        let receipt = PaymentTerms {
            kind: TermsKind::DueOnReceipt,
            days: 0,
        };
        assert_eq!(receipt.due_date(d("2026-05-05")), d("2026-05-05"));
    }

    #[test]
    fn form_decimals_and_dates_are_refused_rather_than_changed() {
        let f = fields(&[
            ("comma", "1,5"),
            ("places", "3.14159"),
            ("huge", "1e20"),
            ("ok", " 1,250.50 "),
            ("blank", " "),
            ("far", "-100000-01-01"),
            ("day", "2026-03-31"),
        ]);
        assert!(f.decimal("comma").is_err(), "not fifteen");
        assert!(f.decimal("places").is_err(), "not 3.1416");
        assert!(f.decimal("huge").is_err());
        assert_eq!(f.decimal("ok"), Ok(Some(Decimal::new(125050, 2))));
        assert_eq!(f.decimal("blank"), Ok(None));
        assert_eq!(f.decimal("missing"), Ok(None));
        assert!(f.date("far").is_err(), "PostgreSQL has no year -100000");
        assert_eq!(f.date("day"), Ok(NaiveDate::from_ymd_opt(2026, 3, 31)));
    }

    proptest::proptest! {
        #[test]
        fn form_fields_of_any_text_parse_without_panicking(
            values in proptest::collection::vec("\\PC{0,30}", 12)
        ) {
            let names = [
                "legal_name", "display_name", "account_number", "tax_id", "domain", "crm_ids",
                "tax_mode", "tax_rate", "currency", "terms_kind", "terms_days", "billing_city",
            ];
            let f = Fields::from_pairs(names.iter().map(|n| (*n).to_owned()).zip(values));
            let mut e = FieldErrors::default();
            General::parse(&f, &mut e);
            Terms::parse(&f, "EUR", &mut e);
            Addresses::parse(&f, &mut e);
            for n in names {
                let _ = f.decimal(n);
                let _ = f.date(n);
            }
        }
    }
}
