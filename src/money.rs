//! Currencies and their minor units (ISO 4217). Amounts are `rust_decimal::Decimal`, rounded to
//! the currency's exponent half away from zero; never f64.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};

/// ISO 4217 codes we bill in, with their minor-unit exponent.
const CURRENCIES: &[(&str, u32, &str)] = &[
    ("AED", 2, "UAE dirham"),
    ("AUD", 2, "Australian dollar"),
    ("BGN", 2, "Bulgarian lev"),
    ("BHD", 3, "Bahraini dinar"),
    ("BRL", 2, "Brazilian real"),
    ("CAD", 2, "Canadian dollar"),
    ("CHF", 2, "Swiss franc"),
    ("CLP", 0, "Chilean peso"),
    ("CNY", 2, "Chinese yuan"),
    ("CZK", 2, "Czech koruna"),
    ("DKK", 2, "Danish krone"),
    ("EUR", 2, "Euro"),
    ("GBP", 2, "Pound sterling"),
    ("HKD", 2, "Hong Kong dollar"),
    ("HUF", 2, "Hungarian forint"),
    ("IDR", 2, "Indonesian rupiah"),
    ("ILS", 2, "Israeli new shekel"),
    ("INR", 2, "Indian rupee"),
    ("ISK", 0, "Icelandic króna"),
    ("JPY", 0, "Japanese yen"),
    ("KRW", 0, "South Korean won"),
    ("KWD", 3, "Kuwaiti dinar"),
    ("MXN", 2, "Mexican peso"),
    ("MYR", 2, "Malaysian ringgit"),
    ("NOK", 2, "Norwegian krone"),
    ("NZD", 2, "New Zealand dollar"),
    ("OMR", 3, "Omani rial"),
    ("PHP", 2, "Philippine peso"),
    ("PLN", 2, "Polish złoty"),
    ("RON", 2, "Romanian leu"),
    ("SAR", 2, "Saudi riyal"),
    ("SEK", 2, "Swedish krona"),
    ("SGD", 2, "Singapore dollar"),
    ("THB", 2, "Thai baht"),
    ("TRY", 2, "Turkish lira"),
    ("TWD", 2, "New Taiwan dollar"),
    ("UAH", 2, "Ukrainian hryvnia"),
    ("USD", 2, "US dollar"),
    ("ZAR", 2, "South African rand"),
];

/// A supported ISO 4217 currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    exponent: u32,
}

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let code = raw.trim().to_uppercase();
        if code.is_empty() {
            return Err("Choose a currency.".into());
        }
        CURRENCIES
            .iter()
            .find(|(c, _, _)| *c == code)
            .map(|(c, e, _)| Currency {
                code: c,
                exponent: *e,
            })
            .ok_or_else(|| format!("{code} is not a supported ISO 4217 currency code."))
    }

    pub fn code(self) -> &'static str {
        self.code
    }

    pub fn exponent(self) -> u32 {
        self.exponent
    }

    /// Rounds to the minor unit, half away from zero.
    pub fn round(self, amount: Decimal) -> Decimal {
        amount.round_dp_with_strategy(self.exponent, RoundingStrategy::MidpointAwayFromZero)
    }

    /// Rounded to the minor unit with thousands separators: `1,234.50`, `-12.00`, `1,000` (JPY).
    pub fn format(self, amount: Decimal) -> String {
        let rounded = self.round(amount);
        let text = format!("{:.*}", self.exponent as usize, rounded.abs());
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        let mut grouped = String::with_capacity(text.len() + 4);
        for (i, ch) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        let sign = if rounded.is_sign_negative() && !rounded.is_zero() {
            "-"
        } else {
            ""
        };
        if frac.is_empty() {
            format!("{sign}{grouped}")
        } else {
            format!("{sign}{grouped}.{frac}")
        }
    }

    /// A formatter for amounts stored with `code`; an unknown code shows the raw decimal
    /// rather than failing a page.
    pub fn formatter(code: &str) -> impl Fn(Decimal) -> String {
        let currency = Self::parse(code).ok();
        move |d| currency.map_or_else(|| d.to_string(), |c| c.format(d))
    }

    /// `(code, name)` of every supported currency, for pickers.
    pub fn all() -> impl Iterator<Item = (&'static str, &'static str)> {
        CURRENCIES.iter().map(|(c, _, n)| (*c, *n))
    }
}

/// Sums amounts per key, keys in the order first seen (e.g. applications per invoice).
pub fn sum_by<K: PartialEq>(pairs: impl IntoIterator<Item = (K, Decimal)>) -> Vec<(K, Decimal)> {
    let mut out: Vec<(K, Decimal)> = Vec::new();
    for (k, a) in pairs {
        match out.iter_mut().find(|(x, _)| *x == k) {
            Some(s) => s.1 += a,
            None => out.push((k, a)),
        }
    }
    out
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn parses_known_codes_case_insensitively() {
        assert_eq!(Currency::parse(" eur ").unwrap().code(), "EUR");
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
        assert!(Currency::parse("XXX").is_err());
        assert!(Currency::parse("").is_err());
    }

    #[test]
    fn rounds_half_away_from_zero_to_minor_unit() {
        let eur = Currency::parse("EUR").unwrap();
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(eur.round(d("2.345")), d("2.35"));
        assert_eq!(eur.round(d("-2.345")), d("-2.35"));
        assert_eq!(
            Currency::parse("KWD").unwrap().round(d("1.23456")),
            d("1.235")
        );
        assert_eq!(Currency::parse("JPY").unwrap().round(d("10.5")), d("11"));
    }

    #[test]
    fn sums_per_key_in_first_seen_order() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let out = sum_by([(2, d("1")), (1, d("5")), (2, d("-0.5"))]);
        assert_eq!(out, vec![(2, d("0.5")), (1, d("5"))]);
    }

    #[test]
    fn formats_with_grouping_and_minor_units() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(usd.format(d("1234567.505")), "1,234,567.51");
        assert_eq!(usd.format(d("-12")), "-12.00");
        assert_eq!(usd.format(d("999.999")), "1,000.00");
        assert_eq!(usd.format(d("-0.001")), "0.00");
        assert_eq!(Currency::parse("JPY").unwrap().format(d("1000")), "1,000");
        assert_eq!(Currency::parse("KWD").unwrap().format(d("1.2345")), "1.235");
    }
}
