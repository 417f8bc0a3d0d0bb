//! Tenant identifiers typed in by people.

use std::fmt;

/// The workspace address in `/t/{slug}`: 3–40 of `[a-z0-9-]`, no leading/trailing hyphen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSlug(String);

const RESERVED: [&str; 12] = [
    "admin", "api", "app", "assets", "hooks", "login", "logout", "signup", "static", "support",
    "www", "system",
];

impl TenantSlug {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim().to_lowercase();
        if s.len() < 3 || s.len() > 40 {
            return Err("Use 3 to 40 characters.".into());
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("Use only letters a–z, digits and hyphens.".into());
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err("Start and end with a letter or digit.".into());
        }
        if RESERVED.contains(&s.as_str()) {
            return Err("That address is reserved; choose another.".into());
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A slug suggestion from an organisation name ("Acme GmbH & Co." → "acme-gmbh-co").
    pub fn suggest(name: &str) -> String {
        let mut out = String::new();
        for c in name.to_lowercase().chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
        }
        out.trim_matches('-')
            .chars()
            .take(40)
            .collect::<String>()
            .trim_end_matches('-')
            .to_owned()
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The organisation's name as shown in the app and on documents.
#[derive(Debug, Clone)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("Enter your organisation's name.".into());
        }
        if s.chars().count() > 200 {
            return Err("Use at most 200 characters.".into());
        }
        if s.chars().any(char::is_control) {
            return Err("The name contains invalid characters.".into());
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(TenantSlug::parse(" Acme-2 ").unwrap().as_str(), "acme-2");
        for bad in [
            "ab",
            "-acme",
            "acme-",
            "ac me",
            "acmé",
            "api",
            "static",
            &"a".repeat(41),
        ] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn slug_suggestions_are_valid() {
        assert_eq!(TenantSlug::suggest("Acme GmbH & Co."), "acme-gmbh-co");
        assert_eq!(TenantSlug::suggest("  Zoë's Bäckerei "), "zo-s-b-ckerei");
        assert!(TenantSlug::parse(&TenantSlug::suggest("Northwind Traders")).is_ok());
    }

    #[test]
    fn names() {
        assert!(TenantName::parse("Müller & Söhne GmbH").is_ok());
        assert!(TenantName::parse(" ").is_err());
    }
}
