//! Duplicate detection. Duplicate customer records are the first thing that goes wrong
//! between CRM and billing, so every way an account enters (form, edit, import, CRM sync) is
//! checked against the same keys: normalised legal name (case, punctuation, accents and legal
//! suffixes such as "Inc." or "GmbH" ignored), a similar name, the tax id without spacing,
//! the company domain (free-mail domains ignored) and CRM ids.
//! Pure: the repository loads candidates, [`Index::matches`] decides.

use std::collections::HashMap;

use serde::Serialize;

/// Legal-form words that do not distinguish one company from another.
const SUFFIXES: &[&str] = &[
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "co",
    "company",
    "llc",
    "llp",
    "lp",
    "ltd",
    "limited",
    "plc",
    "gmbh",
    "mbh",
    "ag",
    "kg",
    "kgaa",
    "ug",
    "ohg",
    "ev",
    "sa",
    "sas",
    "sarl",
    "sasu",
    "sl",
    "slu",
    "srl",
    "spa",
    "sro",
    "bv",
    "nv",
    "vof",
    "oy",
    "oyj",
    "ab",
    "as",
    "asa",
    "aps",
    "pty",
    "pvt",
    "private",
    "kk",
    "se",
    "sp",
    "zoo",
    "and",
    "the",
];

/// Email domains anybody can have: never evidence that two accounts are one company.
const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "proton.me",
    "protonmail.com",
    "mail.com",
    "yandex.ru",
    "qq.com",
    "163.com",
];

fn fold(c: char) -> &'static str {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'å' | 'ā' => "a",
        'ä' | 'æ' => "ae",
        'ç' | 'č' | 'ć' => "c",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'ì' | 'í' | 'î' | 'ï' => "i",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ø' => "o",
        'ö' | 'œ' => "oe",
        'ù' | 'ú' | 'û' | 'ů' => "u",
        'ü' => "ue",
        'ý' | 'ÿ' => "y",
        'ß' => "ss",
        'ł' => "l",
        'ř' => "r",
        'š' | 'ś' => "s",
        'ž' | 'ź' | 'ż' => "z",
        _ => "",
    }
}

/// The comparable form of a company name: "ACME, Inc." and "Acme Inc" both give "acme";
/// "Müller GmbH & Co. KG" gives "mueller".
pub fn name_key(name: &str) -> String {
    let mut cleaned = String::with_capacity(name.len());
    for c in name.to_lowercase().chars() {
        match c {
            // Dotted abbreviations collapse: "S.A." is "sa", "e.V." is "ev".
            '.' | '\'' | '’' => {}
            '&' | '+' => cleaned.push_str(" and "),
            c if c.is_ascii_alphanumeric() => cleaned.push(c),
            c if !fold(c).is_empty() => cleaned.push_str(fold(c)),
            c if c.is_alphanumeric() => cleaned.push(c),
            _ => cleaned.push(' '),
        }
    }
    let tokens: Vec<&str> = cleaned.split_whitespace().collect();
    let mut end = tokens.len();
    while end > 1 && SUFFIXES.contains(&tokens[end - 1]) {
        end -= 1;
    }
    let mut start = 0;
    while start + 1 < end && tokens[start] == "the" {
        start += 1;
    }
    let kept = tokens[start..end].join(" ");
    if kept.is_empty() {
        tokens.join(" ")
    } else {
        kept
    }
}

/// A tax id without spacing or punctuation, upper-cased ("de 123.456.789" → "DE123456789").
pub fn tax_id_key(tax_id: &str) -> Option<String> {
    let k: String = tax_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (k.len() >= 4).then_some(k)
}

/// A domain that identifies a company (free-mail domains do not).
pub fn company_domain(domain: &str) -> Option<String> {
    let d = domain.trim().to_lowercase();
    let d = d.strip_prefix("www.").unwrap_or(&d);
    (!d.is_empty() && d.contains('.') && !FREE_MAIL.contains(&d)).then(|| d.to_owned())
}

/// Edit distance similarity in [0, 1] of two keys.
pub fn similarity(a: &str, b: &str) -> f32 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 1.0;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    let distance = prev[b.len()];
    // Display ratio only; nothing monetary.
    #[allow(clippy::cast_precision_loss)]
    let ratio = 1.0 - distance as f32 / longest as f32;
    ratio
}

/// Names at least this similar (after normalisation) are flagged.
pub const SIMILAR: f32 = 0.85;

/// Why an existing account looks like the one being entered.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    SameName,
    SimilarName { percent: u8 },
    SameTaxId,
    SameDomain,
    ContactDomain,
    SameCrmId { system: String },
}

impl Reason {
    pub fn label(&self) -> String {
        match self {
            Reason::SameName => "same name".into(),
            Reason::SimilarName { percent } => format!("similar name ({percent}%)"),
            Reason::SameTaxId => "same tax id".into(),
            Reason::SameDomain => "same domain".into(),
            Reason::ContactDomain => "a contact uses this domain".into(),
            Reason::SameCrmId { system } => format!("same {system} id"),
        }
    }
}

/// What is known about an account being entered.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub name_key: String,
    pub tax_id_key: Option<String>,
    pub domain: Option<String>,
    pub crm_ids: Vec<(String, String)>,
}

impl Probe {
    pub fn new(
        legal_name: &str,
        tax_id: Option<&str>,
        domain: Option<&str>,
        crm_ids: &[(String, String)],
    ) -> Self {
        Self {
            name_key: name_key(legal_name),
            tax_id_key: tax_id.and_then(tax_id_key),
            domain: domain.and_then(company_domain),
            crm_ids: crm_ids.to_vec(),
        }
    }
}

/// One existing account as the matcher sees it.
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    pub id: i64,
    pub name_key: String,
    pub tax_id_key: Option<String>,
    pub domain: Option<String>,
    pub contact_domains: Vec<String>,
    pub crm_ids: Vec<(String, String)>,
}

/// Existing accounts indexed by every key.
#[derive(Debug, Default)]
pub struct Index {
    candidates: Vec<Candidate>,
    by_name: HashMap<String, Vec<usize>>,
    by_prefix: HashMap<String, Vec<usize>>,
    by_tax: HashMap<String, Vec<usize>>,
    by_domain: HashMap<String, Vec<(usize, bool)>>,
    by_crm: HashMap<(String, String), Vec<usize>>,
}

/// Characters of the normalised name two "similar" names share (indexed in the database as
/// `left(name_key, 3)`).
pub const PREFIX_CHARS: i32 = 3;

pub fn prefix(key: &str) -> String {
    key.chars().take(PREFIX_CHARS as usize).collect()
}

impl Index {
    pub fn new(candidates: Vec<Candidate>) -> Self {
        let mut ix = Index::default();
        for c in candidates {
            ix.add(c);
        }
        ix
    }

    /// Adds an account (also used for rows earlier in the same import file).
    pub fn add(&mut self, c: Candidate) {
        let i = self.candidates.len();
        self.by_name.entry(c.name_key.clone()).or_default().push(i);
        self.by_prefix
            .entry(prefix(&c.name_key))
            .or_default()
            .push(i);
        if let Some(t) = &c.tax_id_key {
            self.by_tax.entry(t.clone()).or_default().push(i);
        }
        if let Some(d) = &c.domain {
            self.by_domain.entry(d.clone()).or_default().push((i, true));
        }
        for d in &c.contact_domains {
            self.by_domain
                .entry(d.clone())
                .or_default()
                .push((i, false));
        }
        for k in &c.crm_ids {
            self.by_crm.entry(k.clone()).or_default().push(i);
        }
        self.candidates.push(c);
    }

    /// Accounts that look like `probe`, with every reason, strongest first.
    pub fn matches(&self, probe: &Probe, exclude: Option<i64>) -> Vec<(i64, Vec<Reason>)> {
        let mut found: Vec<(usize, Vec<Reason>)> = Vec::new();
        let mut push = |i: usize, r: Reason| {
            if let Some(e) = found.iter_mut().find(|(j, _)| *j == i) {
                if !e.1.contains(&r) {
                    e.1.push(r);
                }
            } else {
                found.push((i, vec![r]));
            }
        };
        for (system, id) in &probe.crm_ids {
            for &i in self
                .by_crm
                .get(&(system.clone(), id.clone()))
                .into_iter()
                .flatten()
            {
                push(
                    i,
                    Reason::SameCrmId {
                        system: system.clone(),
                    },
                );
            }
        }
        if let Some(t) = &probe.tax_id_key {
            for &i in self.by_tax.get(t).into_iter().flatten() {
                push(i, Reason::SameTaxId);
            }
        }
        for &i in self.by_name.get(&probe.name_key).into_iter().flatten() {
            push(i, Reason::SameName);
        }
        if probe.name_key.chars().count() >= 4 {
            for &i in self
                .by_prefix
                .get(&prefix(&probe.name_key))
                .into_iter()
                .flatten()
            {
                let s = similarity(&probe.name_key, &self.candidates[i].name_key);
                if (SIMILAR..1.0).contains(&s) {
                    // Percent for display.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let percent = (s * 100.0).round() as u8;
                    push(i, Reason::SimilarName { percent });
                }
            }
        }
        if let Some(d) = &probe.domain {
            for &(i, own) in self.by_domain.get(d).into_iter().flatten() {
                push(
                    i,
                    if own {
                        Reason::SameDomain
                    } else {
                        Reason::ContactDomain
                    },
                );
            }
        }
        let mut out: Vec<(i64, Vec<Reason>)> = found
            .into_iter()
            .map(|(i, r)| (self.candidates[i].id, r))
            .filter(|(id, _)| Some(*id) != exclude)
            .collect();
        out.sort_by_key(|(_, r)| std::cmp::Reverse(r.len()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_key_ignores_case_punctuation_and_legal_suffixes() {
        let k = name_key("Acme");
        for variant in [
            "ACME, Inc.",
            "Acme Inc",
            "acme incorporated",
            "Acme GmbH",
            "Acme Ltd.",
            "Acme Limited",
            "The Acme Company",
            "Acme S.A.",
            "Acme GmbH & Co. KG",
            "  acme   LLC ",
        ] {
            assert_eq!(name_key(variant), k, "{variant}");
        }
        assert_eq!(name_key("Müller GmbH"), name_key("Mueller GmbH"));
        assert_ne!(name_key("Acme Robotics"), k);
        assert_eq!(name_key("Inc."), "inc");
    }

    #[test]
    fn tax_ids_compare_without_spacing() {
        assert_eq!(tax_id_key("de 123.456-789"), tax_id_key("DE123456789"));
        assert_eq!(tax_id_key("12"), None);
    }

    #[test]
    fn free_mail_domains_are_not_company_domains() {
        assert_eq!(company_domain("gmail.com"), None);
        assert_eq!(company_domain("www.acme.com"), Some("acme.com".into()));
    }

    fn index() -> Index {
        Index::new(vec![
            Candidate {
                id: 1,
                name_key: name_key("Acme Inc."),
                tax_id_key: tax_id_key("DE 123 456 789"),
                domain: Some("acme.com".into()),
                contact_domains: vec!["acme-billing.com".into()],
                crm_ids: vec![("salesforce".into(), "001A".into())],
            },
            Candidate {
                id: 2,
                name_key: name_key("Globex Industries Corporation"),
                ..Default::default()
            },
        ])
    }

    #[test]
    fn matches_each_key() {
        let ix = index();
        let m = ix.matches(&Probe::new("ACME GmbH", None, None, &[]), None);
        assert_eq!(m, vec![(1, vec![Reason::SameName])]);
        let m = ix.matches(&Probe::new("Other", Some("de123456789"), None, &[]), None);
        assert_eq!(m, vec![(1, vec![Reason::SameTaxId])]);
        let m = ix.matches(&Probe::new("Other", None, Some("acme.com"), &[]), None);
        assert_eq!(m, vec![(1, vec![Reason::SameDomain])]);
        let m = ix.matches(
            &Probe::new("Other", None, Some("acme-billing.com"), &[]),
            None,
        );
        assert_eq!(m, vec![(1, vec![Reason::ContactDomain])]);
        let m = ix.matches(
            &Probe::new("Other", None, None, &[("salesforce".into(), "001A".into())]),
            None,
        );
        assert_eq!(m[0].0, 1);
        let m = ix.matches(
            &Probe::new("Globex Industires Corp.", None, None, &[]),
            None,
        );
        assert!(matches!(m[0].1[0], Reason::SimilarName { .. }), "{m:?}");
        assert!(ix
            .matches(&Probe::new("Initech", None, Some("gmail.com"), &[]), None)
            .is_empty());
    }

    #[test]
    fn excluded_account_is_not_its_own_duplicate() {
        let ix = index();
        assert!(ix
            .matches(&Probe::new("Acme", None, None, &[]), Some(1))
            .is_empty());
    }
}
