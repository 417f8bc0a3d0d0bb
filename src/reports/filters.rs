//! Filter parsing shared by every report: the same query-string fields mean the same thing
//! and fail with the same message everywhere (each problem is collected, never a 500).

use chrono::NaiveDate;

use super::aging_repo::Owner;
use crate::{error::FieldErrors, money::Currency};

/// `YYYY-MM-DD`, or `None` when empty.
pub fn date(e: &mut FieldErrors, field: &str, raw: &str) -> Option<NaiveDate> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let parsed = crate::dates::parse_iso(raw).ok();
    if parsed.is_none() {
        e.add(field, format!("{raw:?} is not a date; use YYYY-MM-DD."));
    }
    parsed
}

/// An ISO currency code, normalised, or `None` for all currencies.
pub fn currency(e: &mut FieldErrors, raw: &str) -> Option<String> {
    match raw.trim() {
        "" => None,
        raw => Currency::parse(raw)
            .map(|c| c.code().to_owned())
            .map_err(|m| e.add("currency", m))
            .ok(),
    }
}

/// A member id, `none` for accounts without an owner, or empty for anyone.
pub fn owner(e: &mut FieldErrors, raw: &str) -> Owner {
    match raw.trim() {
        "" => Owner::Any,
        "none" => Owner::Unassigned,
        raw => raw.parse::<i64>().map(Owner::User).unwrap_or_else(|_| {
            e.add("owner", "Choose an owner from the list.");
            Owner::Any
        }),
    }
}

/// An account id (the report includes its descendants), or `None`.
pub fn account(e: &mut FieldErrors, raw: &str) -> Option<i64> {
    match raw.trim() {
        "" => None,
        raw => raw.parse::<i64>().map(Some).unwrap_or_else(|_| {
            e.add("account", "The account filter takes an account id.");
            None
        }),
    }
}

/// A view's query string with some parameters replaced or added; empty ones are dropped so
/// links stay short and bookmarkable.
pub fn link<'a>(mut pairs: Vec<(&'a str, &'a str)>, changes: &[(&'a str, &'a str)]) -> String {
    for (k, v) in changes {
        if let Some(p) = pairs.iter_mut().find(|(pk, _)| pk == k) {
            p.1 = v;
        } else {
            pairs.push((k, v));
        }
    }
    pairs.retain(|(_, v)| !v.trim().is_empty());
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_field_is_reported_and_empty_means_all() {
        let mut e = FieldErrors::default();
        assert_eq!(currency(&mut e, ""), None);
        assert_eq!(currency(&mut e, "eur").as_deref(), Some("EUR"));
        assert_eq!(owner(&mut e, "none"), Owner::Unassigned);
        assert_eq!(account(&mut e, " 7 "), Some(7));
        assert!(e.is_empty());
        date(&mut e, "as_of", "31/12/2026");
        currency(&mut e, "EURO");
        owner(&mut e, "bob");
        account(&mut e, "x");
        let fields: Vec<&str> = e.0.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(fields, ["as_of", "currency", "owner", "account"]);
    }

    #[test]
    fn links_replace_add_and_drop_empty_parameters() {
        let q = link(
            vec![("from", "2026-01-01"), ("to", ""), ("currency", "EUR")],
            &[("currency", "USD"), ("view", "detail")],
        );
        assert_eq!(q, "from=2026-01-01&currency=USD&view=detail");
    }
}
