//! The bank/remittance file of the cash application page: `date,amount,payer,reference`,
//! optional `currency`. Pure: the whole file is checked before anything is stored, and every
//! problem names its line in the file.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::{accounts::csv_io::record_line, dates, money, money::Currency};

/// Longest payer and reference kept; longer text is cut (bank exports pad these columns).
const PAYER_CHARS: usize = 200;
const REFERENCE_CHARS: usize = 500;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Parsed {
    pub line_no: i32,
    pub received_on: NaiveDate,
    pub amount: Decimal,
    pub currency: String,
    pub payer: String,
    pub reference: String,
}

/// `(line, field, message)`; line 1 is the header.
pub(super) type RowError = (usize, String, String);

/// Every row, or every problem.
pub(super) fn parse(text: &str, default_currency: &str) -> Result<Vec<Parsed>, Vec<RowError>> {
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_lowercase).collect(),
        Err(e) => return Err(vec![(1, "file".into(), e.to_string())]),
    };
    let missing: Vec<RowError> = ["date", "amount"]
        .iter()
        .filter(|c| !headers.iter().any(|h| h == *c))
        .map(|c| {
            (
                1,
                (*c).to_owned(),
                format!("The column \"{c}\" is missing."),
            )
        })
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    let col = |rec: &csv::StringRecord, name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .and_then(|i| rec.get(i))
            .unwrap_or("")
            .to_owned()
    };
    let (mut out, mut errors) = (Vec::new(), Vec::new());
    for (i, rec) in reader.records().enumerate() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = record_line(text, e.position(), i + 2);
                errors.push((
                    line,
                    "file".into(),
                    "This row cannot be read as CSV.".into(),
                ));
                continue;
            }
        };
        let line = record_line(text, rec.position(), i + 2);
        let date = dates::parse_iso(&col(&rec, "date"));
        let amount = match money::parse_amount(&col(&rec, "amount")) {
            Ok(a) if a > Decimal::ZERO => Ok(a),
            Ok(_) => Err("Enter an amount received, above zero.".to_owned()),
            Err(m) => Err(m),
        };
        let currency = match col(&rec, "currency") {
            c if c.is_empty() => Ok(default_currency.to_owned()),
            c => Currency::parse(&c).map(|c| c.code().to_owned()),
        };
        match (date, amount, currency) {
            (Ok(received_on), Ok(amount), Ok(currency)) => out.push(Parsed {
                line_no: i32::try_from(line).unwrap_or(i32::MAX),
                received_on,
                amount,
                currency,
                payer: col(&rec, "payer").chars().take(PAYER_CHARS).collect(),
                reference: col(&rec, "reference")
                    .chars()
                    .take(REFERENCE_CHARS)
                    .collect(),
            }),
            (date, amount, currency) => {
                for (field, problem) in [("date", date.err()), ("amount", amount.err())]
                    .into_iter()
                    .chain([("currency", currency.err())])
                {
                    if let Some(m) = problem {
                        errors.push((line, field.to_owned(), m));
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use proptest::prelude::*;

    use super::*;
    use crate::accounts::import::csv_text;

    /// Writes a file the way a spreadsheet or a bank export would, returning it and the line
    /// each data row starts on.
    fn write_file(
        header: &[&str],
        rows: &[Vec<String>],
        crlf: bool,
        bom: bool,
    ) -> (String, Vec<usize>) {
        let terminator = if crlf {
            csv::Terminator::CRLF
        } else {
            csv::Terminator::Any(b'\n')
        };
        let mut text = if bom {
            "\u{feff}".to_owned()
        } else {
            String::new()
        };
        let mut lines = Vec::new();
        let write = |record: &[String], text: &mut String| {
            let mut w = csv::WriterBuilder::new()
                .terminator(terminator)
                .from_writer(Vec::new());
            w.write_record(record).unwrap();
            text.push_str(&String::from_utf8(w.into_inner().unwrap()).unwrap());
        };
        let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
        write(&header, &mut text);
        for r in rows {
            lines.push(1 + text.matches('\n').count());
            write(r, &mut text);
        }
        (text, lines)
    }

    #[test]
    fn rows_are_read_with_their_lines_and_the_default_currency() {
        let text = "Date,Amount,Payer,Reference\n2026-03-01,\"1,250.50\",Acme,INV-1\n2026-03-02,10,\"Multi\nline\",x\n2026-03-03,5,B,\n";
        let rows = parse(text, "EUR").unwrap();
        assert_eq!(
            rows.iter().map(|r| r.line_no).collect::<Vec<_>>(),
            [2, 3, 5],
            "a quoted line break moves the next row down"
        );
        assert_eq!(rows[0].amount, Decimal::from_str("1250.50").unwrap());
        assert_eq!(rows[0].currency, "EUR");
    }

    #[test]
    fn rows_of_a_crlf_file_are_named_by_the_line_they_are_on() {
        // Found by `a_generated_file_reads_back_as_exactly_its_rows`: the reader's position
        // sits on the `\n` of the previous CRLF, so every row was named one line too early.
        let text = "date,amount\r\n2026-03-01,x\r\n\r\n2026-03-02,y\r\n";
        let lines: Vec<usize> = parse(text, "EUR")
            .unwrap_err()
            .iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(lines, [2, 4], "the blank line is counted too");
    }

    #[test]
    fn each_bad_row_is_named_by_line_and_field() {
        let text = "date,amount,currency\n31/03/2026,10,\n2026-03-01,-5,\n2026-03-01,1.00001,\n2026-03-01,1,XXX\n2026-03-01,,\n";
        let errors = parse(text, "EUR").unwrap_err();
        let named: Vec<(usize, &str)> = errors.iter().map(|(l, f, _)| (*l, f.as_str())).collect();
        assert_eq!(
            named,
            [
                (2, "date"),
                (3, "amount"),
                (4, "amount"),
                (5, "currency"),
                (6, "amount")
            ]
        );
    }

    #[test]
    fn an_amount_too_large_for_the_column_is_a_row_error_not_a_failed_write() {
        // Before: parsed as a Decimal and refused by PostgreSQL (numeric field overflow),
        // which failed the whole upload with a 500.
        let errors = parse("date,amount\n2026-03-01,1000000000000000\n", "EUR").unwrap_err();
        assert_eq!(errors[0].0, 2);
        assert!(errors[0].2.contains("too large"), "{errors:?}");
    }

    #[test]
    fn a_missing_column_is_reported_on_the_header_line() {
        let errors = parse("\u{feff}date,payer\n2026-03-01,Acme\n", "EUR").unwrap_err();
        assert_eq!(
            errors,
            [(
                1,
                "amount".into(),
                "The column \"amount\" is missing.".into()
            )]
        );
    }

    /// Free text as banks write it: quotes, separators, line breaks, accents, long runs.
    fn free_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~]{0,30}",
            "[a-zé\",;\r\n' ]{0,30}",
            "\\PC{0,20}",
            "x{190,260}",
        ]
    }

    fn row() -> impl Strategy<Value = (NaiveDate, Decimal, Option<&'static str>, String, String)> {
        (
            (0i64..3000).prop_map(|d| {
                NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + chrono::Duration::days(d)
            }),
            (1i64..10_000_000_000, 0u32..=4).prop_map(|(u, s)| Decimal::new(u, s)),
            prop::option::of(prop::sample::select(vec!["USD", "eur", " JPY "])),
            free_text(),
            free_text(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn arbitrary_bytes_never_panic_and_errors_name_a_line(
            bytes in prop::collection::vec(any::<u8>(), 0..400)
        ) {
            if let Ok(text) = csv_text(bytes) {
                let lines = text.matches('\n').count() + 1;
                if let Err(errors) = parse(&text, "EUR") {
                    prop_assert!(!errors.is_empty());
                    for (line, _, _) in errors {
                        prop_assert!((1..=lines).contains(&line), "line {} of {}", line, lines);
                    }
                }
            }
        }

        #[test]
        fn csv_like_text_never_panics(
            text in "(date|amount|payer|\"|,|\r|\n|2026-03-01|1,000.5|-|x| |\u{feff}){0,60}"
        ) {
            let _ = parse(&text, "EUR");
        }

        #[test]
        fn a_generated_file_reads_back_as_exactly_its_rows(
            rows in prop::collection::vec(row(), 0..8),
            crlf in any::<bool>(),
            bom in any::<bool>(),
        ) {
            let header = ["Reference", "currency", "amount", "date", "payer", "ignored"];
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|(d, a, c, p, r)| {
                    vec![
                        r.clone(),
                        c.unwrap_or("").to_owned(),
                        a.to_string(),
                        d.to_string(),
                        p.clone(),
                        "extra".to_owned(),
                    ]
                })
                .collect();
            let (text, lines) = write_file(&header, &cells, crlf, bom);
            let parsed = parse(&csv_text(text.into_bytes()).unwrap(), "GBP").unwrap();
            prop_assert_eq!(parsed.len(), rows.len());
            for ((p, (d, a, c, payer, reference)), line) in parsed.iter().zip(&rows).zip(lines) {
                prop_assert_eq!(p.line_no as usize, line);
                prop_assert_eq!(p.received_on, *d);
                prop_assert_eq!(p.amount, *a);
                prop_assert_eq!(&p.currency, &c.map_or("GBP".to_owned(), |c| c.trim().to_uppercase()));
                prop_assert_eq!(&p.payer, &payer.trim().chars().take(PAYER_CHARS).collect::<String>());
                prop_assert_eq!(&p.reference, &reference.trim().chars().take(REFERENCE_CHARS).collect::<String>());
            }
        }

        #[test]
        fn rows_with_missing_cells_are_errors_on_their_own_lines(
            rows in prop::collection::vec((row(), any::<bool>()), 1..8)
        ) {
            // A short row (its amount cell missing) is an error; the others still read.
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|((d, a, _, _, _), short)| {
                    if *short { vec![d.to_string()] } else { vec![d.to_string(), a.to_string()] }
                })
                .collect();
            let (text, lines) = write_file(&["date", "amount"], &cells, false, false);
            let expected: Vec<usize> = rows
                .iter()
                .zip(&lines)
                .filter(|((_, short), _)| *short)
                .map(|(_, l)| *l)
                .collect();
            match parse(&text, "EUR") {
                Ok(parsed) => prop_assert!(expected.is_empty() && parsed.len() == rows.len()),
                Err(errors) => {
                    let got: Vec<usize> = errors.iter().map(|e| e.0).collect();
                    prop_assert_eq!(got, expected);
                }
            }
        }
    }
}
