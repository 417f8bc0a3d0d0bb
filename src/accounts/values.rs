//! Values shared by account forms and files: postal addresses and tenant-defined custom
//! fields. Pure.

use std::{collections::BTreeMap, str::FromStr};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::domain::Fields;
use crate::error::FieldErrors;

/// A postal address; every line optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Address {
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    pub country: String,
}

impl Address {
    pub const PARTS: [&'static str; 6] =
        ["line1", "line2", "city", "region", "postal_code", "country"];

    pub fn is_empty(&self) -> bool {
        self.lines().is_empty()
    }

    /// Non-empty lines as printed on an invoice.
    pub fn lines(&self) -> Vec<String> {
        let city_line = [&self.postal_code, &self.city, &self.region]
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        [
            self.line1.clone(),
            self.line2.clone(),
            city_line,
            self.country.clone(),
        ]
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect()
    }

    pub fn get(&self, part: &str) -> &str {
        match part {
            "line1" => &self.line1,
            "line2" => &self.line2,
            "city" => &self.city,
            "region" => &self.region,
            "postal_code" => &self.postal_code,
            _ => &self.country,
        }
    }

    pub(super) fn parse(f: &Fields, prefix: &str, errors: &mut FieldErrors) -> Self {
        let mut a = Address::default();
        for part in Self::PARTS {
            let name = format!("{prefix}_{part}");
            let v = f.get(&name);
            if v.chars().count() > 200 {
                errors.add(&name, "Use at most 200 characters.");
            }
            let v = v.to_owned();
            match part {
                "line1" => a.line1 = v,
                "line2" => a.line2 = v,
                "city" => a.city = v,
                "region" => a.region = v,
                "postal_code" => a.postal_code = v,
                _ => a.country = v,
            }
        }
        a
    }
}

/// A tenant-defined field on accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomFieldDef {
    pub id: i64,
    pub key: String,
    pub label: String,
    pub kind: String,
    pub choices: Vec<String>,
    pub required: bool,
}

impl CustomFieldDef {
    pub fn form_name(&self) -> String {
        format!("custom.{}", self.key)
    }

    /// Checks one value; returns it normalised (dates ISO, numbers canonical).
    pub fn check(&self, raw: &str) -> Result<Option<String>, String> {
        let v = raw.trim();
        if v.is_empty() {
            return if self.required {
                Err(format!("{} is required.", self.label))
            } else {
                Ok(None)
            };
        }
        match self.kind.as_str() {
            "number" => Decimal::from_str(v)
                .map(|d| Some(d.normalize().to_string()))
                .map_err(|_| "Enter a number, e.g. 1250 or 12.5.".into()),
            "date" => crate::dates::parse_iso(v)
                .map(|d| Some(d.to_string()))
                .map_err(|_| "Enter a date as YYYY-MM-DD.".into()),
            "choice" => self
                .choices
                .iter()
                .find(|c| c.eq_ignore_ascii_case(v))
                .map(|c| Some(c.clone()))
                .ok_or_else(|| format!("Choose one of: {}.", self.choices.join(", "))),
            _ if v.chars().count() > 500 => Err("Use at most 500 characters.".into()),
            _ => Ok(Some(v.to_owned())),
        }
    }
}

/// Parses every custom field of `defs` from `custom.<key>` fields.
pub fn parse_custom(
    f: &Fields,
    defs: &[CustomFieldDef],
    errors: &mut FieldErrors,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for d in defs {
        let name = d.form_name();
        match d.check(f.get(&name)) {
            Ok(Some(v)) => {
                out.insert(d.key.clone(), v);
            }
            Ok(None) => {}
            Err(e) => errors.add(&name, e),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_fields_check_their_kind() {
        let def = |kind: &str, required: bool| CustomFieldDef {
            id: 1,
            key: "k".into(),
            label: "Region".into(),
            kind: kind.into(),
            choices: vec!["EMEA".into(), "APAC".into()],
            required,
        };
        assert_eq!(
            def("choice", false).check("emea").unwrap(),
            Some("EMEA".into())
        );
        assert!(def("choice", false).check("LATAM").is_err());
        assert!(def("number", false).check("12,5").is_err());
        assert_eq!(
            def("number", false).check("12.50").unwrap(),
            Some("12.5".into())
        );
        assert!(def("date", false).check("31/12/2026").is_err());
        assert!(def("text", true).check(" ").is_err());
        assert_eq!(def("text", false).check("").unwrap(), None);
    }

    #[test]
    fn address_lines_skip_blanks() {
        let a = Address {
            line1: "1 Main St".into(),
            city: "Springfield".into(),
            postal_code: "12345".into(),
            country: "US".into(),
            ..Default::default()
        };
        assert_eq!(a.lines(), vec!["1 Main St", "12345 Springfield", "US"]);
        assert!(Address::default().is_empty());
    }
}
