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

/// Decimal places a stored amount keeps: every money and quantity column is `NUMERIC(19,4)`.
pub const MAX_DECIMALS: usize = 4;
/// Integer digits that fit beside [`MAX_DECIMALS`] in `NUMERIC(19,4)`.
pub const MAX_INTEGER_DIGITS: usize = 19 - MAX_DECIMALS;

/// Characters accepted between thousands groups: comma, space, underscore, and the
/// (narrow) no-break spaces spreadsheets and bank exports put there.
const GROUP_SEPARATORS: [char; 5] = [',', ' ', '_', '\u{a0}', '\u{202f}'];

/// Parses an amount, price or quantity as typed in a form or a file: optional sign, digits
/// with optional thousands separators (`1,250.50`, `1 250.50`), a dot for decimals.
///
/// Refused with a message rather than silently changed, because each of these would
/// otherwise store a different number than the one entered:
/// - more than [`MAX_DECIMALS`] significant decimals (PostgreSQL would round them away);
/// - more than [`MAX_INTEGER_DIGITS`] integer digits (PostgreSQL would fail the write);
/// - a separator that does not split thousands (`1,5` is a decimal comma, not fifteen);
/// - exponents, `NaN`, or anything that is not plain decimal notation.
pub fn parse_amount(raw: &str) -> Result<Decimal, String> {
    let text = raw.trim();
    let not_a_number = || format!("\"{text}\" is not a number.");
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty()) || !all_digits(frac_part) {
        return Err(not_a_number());
    }
    let groups: Vec<&str> = int_part.split(GROUP_SEPARATORS).collect();
    if !int_part.is_empty() {
        if groups.iter().any(|g| g.is_empty() || !all_digits(g)) {
            return Err(not_a_number());
        }
        let thousands =
            groups.len() == 1 || (groups[0].len() <= 3 && groups[1..].iter().all(|g| g.len() == 3));
        if !thousands {
            return Err(format!(
                "\"{text}\" is not a number: use a dot for decimals and group thousands in \
                 threes (1,250.50)."
            ));
        }
    }
    let int_digits = groups.concat();
    let int_digits = int_digits.trim_start_matches('0');
    if int_digits.len() > MAX_INTEGER_DIGITS {
        return Err(format!(
            "\"{text}\" is too large: at most {MAX_INTEGER_DIGITS} digits before the decimal \
             point."
        ));
    }
    if frac_part.trim_end_matches('0').len() > MAX_DECIMALS {
        return Err(format!(
            "\"{text}\" has more than {MAX_DECIMALS} decimal places; round it first."
        ));
    }
    // Only zeros lie beyond MAX_DECIMALS now; dropping them keeps the value and the scale the
    // column stores, and keeps the text short enough for Decimal to hold exactly.
    let frac = &frac_part[..frac_part.len().min(MAX_DECIMALS)];
    let canonical = format!(
        "{}{}{}{frac}",
        if negative { "-" } else { "" },
        if int_digits.is_empty() {
            "0"
        } else {
            int_digits
        },
        if frac.is_empty() { "" } else { "." },
    );
    // At most 19 digits always fit a Decimal, so this cannot fail; mapping it keeps it an
    // input error rather than a panic if that ever changes.
    canonical.parse::<Decimal>().map_err(|_| not_a_number())
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

    use proptest::prelude::*;

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

    #[test]
    fn amounts_read_as_typed_with_thousands_separators() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(parse_amount("1,250.50"), Ok(d("1250.50")));
        assert_eq!(parse_amount(" 1 250.50 "), Ok(d("1250.50")));
        assert_eq!(parse_amount("1\u{a0}000"), Ok(d("1000")));
        assert_eq!(parse_amount("-12"), Ok(d("-12")));
        assert_eq!(parse_amount("+.5"), Ok(d("0.5")));
        assert_eq!(parse_amount("7."), Ok(d("7")));
        assert_eq!(parse_amount("0.1234"), Ok(d("0.1234")));
        assert_eq!(
            parse_amount("999,999,999,999,999.9999")
                .unwrap()
                .to_string(),
            "999999999999999.9999"
        );
    }

    #[test]
    fn trailing_zeros_beyond_four_decimals_are_accepted_and_dropped() {
        let v = parse_amount("2.500000000000000000000000000000000").unwrap();
        assert_eq!(v, Decimal::from_str("2.5").unwrap());
        assert_eq!(v.scale(), 4, "the scale the column stores");
    }

    #[test]
    fn a_fifth_decimal_is_refused_not_rounded() {
        let err = parse_amount("10.00005").unwrap_err();
        assert!(err.contains("more than 4 decimal places"), "{err}");
        // Beyond Decimal's own 28 places it would otherwise round silently.
        assert!(parse_amount("1.0000000000000000000000000000001").is_err());
    }

    #[test]
    fn sixteen_integer_digits_are_refused_instead_of_overflowing_the_column() {
        let err = parse_amount("1,000,000,000,000,000").unwrap_err();
        assert!(err.contains("too large"), "{err}");
        assert!(parse_amount("79228162514264337593543950336").is_err());
        // Leading zeros are not digits of the value.
        assert!(parse_amount("0000000000000000001").is_ok());
    }

    #[test]
    fn a_decimal_comma_is_refused_instead_of_read_as_thousands() {
        // Before: "1,5" lost its comma and was stored as fifteen.
        let err = parse_amount("1,5").unwrap_err();
        assert!(err.contains("use a dot for decimals"), "{err}");
        assert!(parse_amount("1,2345").is_err());
        assert!(parse_amount("12,34,567").is_err());
        assert!(parse_amount("1 2").is_err());
    }

    #[test]
    fn notation_other_than_plain_decimals_is_refused() {
        for bad in [
            "", " ", "-", "+", ".", "-.", "1e5", "1E-2", "NaN", "inf", "0x10", "1.2.3", "--1",
            "+-1", "1-", ",100", "100,", "1,,000", "1.000,5", "١٢", "1_", "_1",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad:?} was accepted");
        }
    }

    /// Amounts that fit NUMERIC(19,4), with 0 to 4 decimals.
    fn storable() -> impl Strategy<Value = Decimal> {
        let max = 10i128.pow(19) - 1;
        (-max..=max, 0u32..=4).prop_map(|(units, scale)| {
            Decimal::from_i128_with_scale(units / 10i128.pow(4 - scale), scale)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,40}") {
            let _ = parse_amount(&text);
        }

        #[test]
        fn number_like_text_never_panics_and_never_stores_more_than_it_can(
            text in "[-+]?[0-9, _.]{0,40}(e[0-9]{1,3})?"
        ) {
            if let Ok(v) = parse_amount(&text) {
                prop_assert!(v.scale() <= MAX_DECIMALS as u32);
                prop_assert!(v.abs() < Decimal::from(10i64.pow(MAX_INTEGER_DIGITS as u32)));
            }
        }

        #[test]
        fn plain_text_round_trips(v in storable()) {
            prop_assert_eq!(parse_amount(&v.to_string()), Ok(v));
        }

        #[test]
        fn formatted_amounts_round_trip(v in storable(), code in "(EUR|JPY|KWD|USD)") {
            // What a page shows, pasted back into a form.
            let currency = Currency::parse(&code).unwrap();
            let shown = currency.format(v);
            prop_assert_eq!(parse_amount(&shown), Ok(currency.round(v)), "{}", shown);
        }

        #[test]
        fn a_fifth_significant_decimal_is_always_refused(
            int in "-?[0-9]{1,15}", frac in "[0-9]{4}", extra in "[0-9]{0,20}[1-9]"
        ) {
            let text = format!("{int}.{frac}{extra}");
            prop_assert!(parse_amount(&text).is_err(), "{} accepted", text);
        }

        #[test]
        fn more_than_fifteen_integer_digits_are_always_refused(
            digits in "[1-9][0-9]{15,30}", frac in "[0-9]{0,4}"
        ) {
            let text = if frac.is_empty() { digits } else { format!("{digits}.{frac}") };
            prop_assert!(parse_amount(&text).is_err(), "{} accepted", text);
        }
    }
}
