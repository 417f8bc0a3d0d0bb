//! The file side of account and contact imports, without a database: every row goes through
//! the same parsing as the forms (`General`, `Terms`, `Addresses`, custom fields, contacts).

use proptest::prelude::*;

use super::*;
use crate::accounts::{
    contacts_repo::ContactData,
    csv_io::{cell, CONTACT_COLUMNS},
    domain::{CustomFieldDef, Fields},
    import::csv_text,
};

fn region() -> CustomFieldDef {
    CustomFieldDef {
        id: 1,
        key: "region".into(),
        label: "Region".into(),
        kind: "text".into(),
        choices: Vec::new(),
        required: false,
    }
}

/// What `apply_row` checks before it touches the database.
fn parse_account(given: &[(String, String)]) -> RowOutcome {
    let f = Fields::from_pairs(given.to_vec());
    let mut errors = FieldErrors::default();
    General::parse(&f, &mut errors);
    Terms::parse(&f, "EUR", &mut errors);
    Addresses::parse(&f, &mut errors);
    parse_custom(&f, &[region()], &mut errors);
    if errors.is_empty() {
        RowOutcome::Created
    } else {
        RowOutcome::Invalid(errors)
    }
}

fn parse_contact(given: &[(String, String)]) -> RowOutcome {
    let mut errors = FieldErrors::default();
    ContactData::parse(&Fields::from_pairs(given.to_vec()), &mut errors);
    if errors.is_empty() {
        RowOutcome::Created
    } else {
        RowOutcome::Invalid(errors)
    }
}

fn account_spec<'a>(known: &'a dyn Fn(&str) -> bool) -> FileSpec<'a> {
    FileSpec {
        known,
        required: &["legal_name", "id"],
        what: "account",
        name_column: "legal_name",
    }
}

/// Runs a file through `each_row` and the form parsing, keeping every row handed over.
fn import(content: &str, contacts: bool) -> (Report, Vec<Vec<(String, String)>>) {
    let known_accounts = |h: &str| known_column(h, &[region()]);
    let known_contacts = |h: &str| CONTACT_COLUMNS.contains(&h);
    let spec = if contacts {
        FileSpec {
            known: &known_contacts,
            required: &["name", "id"],
            what: "contact",
            name_column: "name",
        }
    } else {
        account_spec(&known_accounts)
    };
    let mut seen = Vec::new();
    let report = each_row(content, &spec, OnDuplicate::Skip, &mut |_| {}, |given| {
        seen.push(given.to_vec());
        Ok(if contacts {
            parse_contact(given)
        } else {
            parse_account(given)
        })
    })
    .unwrap();
    (report, seen)
}

/// A file as the export writes it (formulas quoted), and the line each row starts on.
fn file(header: &[&str], rows: &[Vec<String>], crlf: bool) -> (String, Vec<u64>) {
    let mut w = csv::WriterBuilder::new()
        .terminator(if crlf {
            csv::Terminator::CRLF
        } else {
            csv::Terminator::Any(b'\n')
        })
        .from_writer(Vec::new());
    w.write_record(header).unwrap();
    w.flush().unwrap();
    let mut lines = Vec::new();
    for r in rows {
        let so_far = String::from_utf8_lossy(w.get_ref()).matches('\n').count();
        lines.push(1 + so_far as u64);
        w.write_record(r.iter().map(|v| cell(v))).unwrap();
        w.flush().unwrap();
    }
    (String::from_utf8(w.into_inner().unwrap()).unwrap(), lines)
}

#[test]
fn a_row_of_a_crlf_file_is_reported_on_its_own_line() {
    let content = "legal_name,domain\r\nGood Ltd,good.example\r\nBad Ltd,not a domain\r\n";
    let (report, _) = import(content, false);
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].line, 3);
    assert_eq!(report.problems[0].name, "Bad Ltd");
}

#[test]
fn a_file_without_a_name_column_or_with_unknown_columns_is_refused_whole() {
    let (report, seen) = import("colour,legal_name,legal_name\nred,A,B\n", false);
    assert_eq!(report.file_errors.len(), 2, "{:?}", report.file_errors);
    assert!(seen.is_empty(), "no row is handed over");
    let (report, _) = import("display_name\nA\n", false);
    assert!(report.file_errors[0].contains("legal_name"));
}

/// Text people put in names and notes: quotes, separators, line breaks, formula starts,
/// accents, and long runs.
fn free_text(max: usize) -> impl Strategy<Value = String> {
    let re = |r: String| proptest::string::string_regex(&r).unwrap();
    prop_oneof![
        re(format!("[ -~]{{1,{max}}}")),
        re("['=+@\"a-zé,; \r\n-]{1,40}".to_owned()),
        re(format!("\\PC{{1,{max}}}")),
    ]
    .prop_map(|s| s.trim().to_owned())
    .prop_filter("a name", |s| {
        !s.is_empty() && !s.chars().any(|c| c.is_control() && !"\n\r\t".contains(c))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_bytes_never_panic_and_problems_name_a_line(
        bytes in prop::collection::vec(any::<u8>(), 0..600), contacts in any::<bool>()
    ) {
        if let Ok(content) = csv_text(bytes) {
            let lines = content.matches('\n').count() as u64 + 1;
            let (report, _) = import(&content, contacts);
            prop_assert!(report.problems.len() <= report.rows);
            for p in &report.problems {
                prop_assert!((2..=lines).contains(&p.line), "line {} of {}", p.line, lines);
            }
        }
    }

    #[test]
    fn csv_like_text_never_panics(
        text in "(legal_name,notes,custom.region\n)?(Acme|\"|,|\r|\n|'=1|x{300}|\u{feff}){0,50}",
        contacts in any::<bool>(),
    ) {
        let _ = import(&text, contacts);
    }

    #[test]
    fn a_generated_file_hands_over_exactly_its_rows(
        rows in prop::collection::vec(
            (free_text(200), free_text(200), free_text(60), free_text(200)), 1..8
        ),
        crlf in any::<bool>(),
    ) {
        let header = ["legal_name", "display_name", "billing_city", "custom.region", "notes"];
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|(legal, display, city, notes)| {
                vec![legal.clone(), display.clone(), city.clone(), legal.clone(), notes.clone()]
            })
            .collect();
        let (content, _) = file(&header, &cells, crlf);
        let (report, seen) = import(&content, false);
        prop_assert!(report.ok(), "{:?}", report);
        prop_assert_eq!(report.creates, rows.len());
        let expected: Vec<Vec<(String, String)>> = cells
            .iter()
            .map(|r| header.iter().map(|h| (*h).to_owned()).zip(r.iter().cloned()).collect())
            .collect();
        prop_assert_eq!(seen, expected);
    }

    #[test]
    fn invalid_rows_are_reported_on_the_line_they_start(
        rows in prop::collection::vec((free_text(40), any::<bool>()), 1..8),
        crlf in any::<bool>(),
    ) {
        // A name with line breaks makes rows span lines; a bad domain makes a row invalid.
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|(name, bad)| {
                let domain = if *bad { "not a domain" } else { "acme.example" };
                vec![name.clone(), domain.to_owned()]
            })
            .collect();
        let (content, lines) = file(&["legal_name", "domain"], &cells, crlf);
        let (report, _) = import(&content, false);
        let expected: Vec<u64> = rows
            .iter()
            .zip(&lines)
            .filter(|((_, bad), _)| *bad)
            .map(|(_, l)| *l)
            .collect();
        let got: Vec<u64> = report.problems.iter().map(|p| p.line).collect();
        prop_assert_eq!(got, expected);
    }
}
