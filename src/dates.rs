//! Calendar dates typed by people: forms, CSV files and API fields. Pure.

use chrono::{Datelike, NaiveDate};

/// Years a typed date may fall in. Four digits is what the `YYYY-MM-DD` hint asks for; it also
/// keeps a typo such as `20260-01-31` or `-5000-01-01` from reaching PostgreSQL (whose `date`
/// starts at 4713 BC) or the billing calendar, where adding months to the end of chrono's
/// range would overflow.
pub const YEARS: std::ops::RangeInclusive<i32> = 1000..=9999;

/// Parses an ISO date (`2026-03-31`; surrounding spaces ignored). The error is the message
/// shown next to the field.
pub fn parse_iso(raw: &str) -> Result<NaiveDate, String> {
    let text = raw.trim();
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|d| YEARS.contains(&d.year()))
        .ok_or_else(|| format!("\"{text}\" is not a date (use YYYY-MM-DD)."))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn iso_dates_parse_with_spaces_around() {
        assert_eq!(
            parse_iso(" 2026-03-31 "),
            Ok(NaiveDate::from_ymd_opt(2026, 3, 31).unwrap())
        );
    }

    #[test]
    fn impossible_and_other_formats_are_refused() {
        for bad in [
            "",
            "2026-02-30",
            "2026-13-01",
            "31/03/2026",
            "2026-03-31T00:00",
            "2026/03/31",
            "20260331",
            "2026-03",
        ] {
            let err = parse_iso(bad).unwrap_err();
            assert!(err.contains("use YYYY-MM-DD"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn years_outside_four_digits_are_refused_before_they_reach_postgres() {
        // chrono reads these (a signed year of any width), PostgreSQL's `date` refuses
        // -100000 and the billing calendar cannot add months near chrono's limits.
        assert!(parse_iso("-100000-01-01").is_err());
        assert!(parse_iso("+262000-01-01").is_err());
        assert!(parse_iso("20260-01-31").is_err());
        assert!(parse_iso("0999-12-31").is_err());
        assert!(parse_iso("1000-01-01").is_ok());
        assert!(parse_iso("9999-12-31").is_ok());
    }

    fn any_date() -> impl Strategy<Value = NaiveDate> {
        let first = NaiveDate::from_ymd_opt(*YEARS.start(), 1, 1).unwrap();
        let last = NaiveDate::from_ymd_opt(*YEARS.end(), 12, 31).unwrap();
        (0..=(last - first).num_days()).prop_map(move |d| first + chrono::Duration::days(d))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,30}") {
            let _ = parse_iso(&text);
        }

        #[test]
        fn date_like_text_never_panics_and_stays_in_range(
            text in "[-+ ]?[0-9]{0,7}-[0-9 ]{0,3}-[0-9 ]{0,3}"
        ) {
            if let Ok(d) = parse_iso(&text) {
                prop_assert!(YEARS.contains(&d.year()));
            }
        }

        #[test]
        fn formatted_dates_round_trip(d in any_date()) {
            prop_assert_eq!(parse_iso(&d.format("%Y-%m-%d").to_string()), Ok(d));
            prop_assert_eq!(parse_iso(&d.to_string()), Ok(d));
        }
    }
}
