//! The statement PDF: `templates/pdf/statement.typ` typeset by its own Typst engine, with
//! the seller details and helpers of the invoice PDF. Data reaches the template only as
//! `sys.inputs` values, so customer text cannot inject markup.

use std::sync::LazyLock;

use actix_web::web;
use base64::Engine;
use chrono::NaiveDate;
use diesel::PgConnection;
use typst::foundations::{Array, Bytes, Dict, Value};
use typst::layout::PagedDocument;
use typst_as_lib::{TypstAsLibError, TypstEngine, TypstTemplateMainFile};

use super::data::{build, company, file_name, show, views, SectionView};
use crate::{
    accounts::repo::Account,
    error::{AppError, AppResult},
    invoicing::{
        pdf::{self, Party, PdfError},
        repo,
    },
};

static TEMPLATE: &str = include_str!("../../templates/pdf/statement.typ");

/// Built once, like the invoice engine: font indexing is the expensive part.
static ENGINE: LazyLock<TypstEngine<TypstTemplateMainFile>> = LazyLock::new(|| {
    TypstEngine::builder()
        .main_file(("statement.typ", TEMPLATE))
        .fonts(typst_assets::fonts().map(Bytes::new))
        .build()
});

/// What the PDF shows, formatted; built in the tenant transaction, typeset outside it.
pub struct PdfData {
    pub seller: Party,
    pub logo_png: Option<Vec<u8>>,
    pub customer: Party,
    pub account_number: String,
    pub period: String,
    pub as_of: String,
    pub sections: Vec<SectionView>,
}

pub fn prepare(
    c: &mut PgConnection,
    a: &Account,
    from: NaiveDate,
    to: NaiveDate,
) -> AppResult<(String, PdfData)> {
    let s = build(c, a.id, from, to)?;
    let tax_id = repo::text_setting(c, "company.tax_id")?;
    let logo = repo::text_setting(c, "company.logo_png_base64")?;
    let data = PdfData {
        seller: Party {
            name: company(c)?,
            address_lines: repo::text_setting(c, "company.address")?
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect(),
            tax_id: (!tax_id.is_empty()).then_some(tax_id),
            email: None,
        },
        logo_png: base64::engine::general_purpose::STANDARD
            .decode(logo.trim())
            .ok()
            .filter(|b| !b.is_empty()),
        customer: Party {
            name: a.legal_name.clone(),
            address_lines: a.billing().lines(),
            tax_id: a.tax_id.clone(),
            email: None,
        },
        account_number: a.account_number.clone(),
        period: format!("{} – {}", show(from), show(to)),
        as_of: show(to),
        sections: views(&s, ""),
    };
    Ok((file_name(&a.account_number, to, "pdf"), data))
}

fn inputs(d: &PdfData, logo: Option<Bytes>) -> Dict {
    let t = pdf::text;
    let sections: Array = d
        .sections
        .iter()
        .map(|s| {
            let rows: Array = s
                .rows
                .iter()
                .map(|r| {
                    Value::Dict(pdf::dict([
                        ("date", t(&r.date)),
                        ("kind", t(r.label)),
                        ("reference", t(&r.reference)),
                        ("details", t(&r.details)),
                        ("charge", t(&r.charge)),
                        ("credit", t(&r.credit)),
                        ("balance", t(&r.balance)),
                    ]))
                })
                .collect();
            let pair = |(k, v): &(&str, String)| Value::Array([t(k), t(v)].into_iter().collect());
            Value::Dict(pdf::dict([
                ("currency", t(&s.currency)),
                ("opening", t(&s.opening)),
                ("closing", t(&s.closing)),
                ("rows", Value::Array(rows)),
                ("totals", Value::Array(s.totals.iter().map(pair).collect())),
                ("aging", Value::Array(s.aging.iter().map(pair).collect())),
                ("open_total", t(&s.open_total)),
                ("unapplied", s.unapplied.as_deref().map_or(Value::None, t)),
            ]))
        })
        .collect();
    pdf::dict([
        ("seller", pdf::party(&d.seller)),
        ("logo", logo.map_or(Value::None, Value::Bytes)),
        ("customer", pdf::party(&d.customer)),
        ("account_number", t(&d.account_number)),
        ("period", t(&d.period)),
        ("as_of", t(&d.as_of)),
        ("sections", Value::Array(sections)),
    ])
}

fn compile(d: &PdfData, logo: Option<Bytes>) -> Result<PagedDocument, PdfError> {
    let warned = ENGINE.compile_with_input(inputs(d, logo));
    if !warned.warnings.is_empty() {
        tracing::warn!(warnings = %pdf::describe(&warned.warnings), "statement template warnings");
    }
    warned.output.map_err(|err| {
        PdfError::Compile(match err {
            TypstAsLibError::TypstSource(diags) => pdf::describe(&diags),
            other => other.to_string(),
        })
    })
}

/// Typesets the statement. Safe to call from many threads at once.
pub fn render_document(d: &PdfData) -> Result<Vec<u8>, PdfError> {
    let logo = d.logo_png.as_deref().and_then(pdf::decodable_logo);
    let had_logo = logo.is_some();
    let compiled = match compile(d, logo) {
        // A logo must never cost the customer their statement.
        Err(err) if had_logo => {
            tracing::warn!(error = %err, "statement PDF failed with logo; retrying without it");
            compile(d, None)?
        }
        other => other?,
    };
    typst_pdf::pdf(&compiled, &typst_pdf::PdfOptions::default())
        .map_err(|diags| PdfError::Export(pdf::describe(&diags)))
}

pub async fn typeset(data: PdfData) -> AppResult<Vec<u8>> {
    web::block(move || render_document(&data))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)
}

#[cfg(test)]
mod tests {
    use std::{process::Command, str::FromStr};

    use rust_decimal::Decimal;

    use super::*;
    use crate::invoicing::statement::domain::{self, Kind, Movement, Receivable};

    const INJECTION: &str = r#"#panic("x") *bold* $math$ ] \ "quoted" _u_ <l> @r [x]"#;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn sample(rows: i64) -> PdfData {
        let mut moves: Vec<Movement> = (0..rows)
            .map(|i| Movement {
                date: day("2026-01-01") + chrono::Days::new(u64::try_from(i).unwrap()),
                currency: "EUR".into(),
                kind: if i % 2 == 0 {
                    Kind::Invoice
                } else {
                    Kind::Payment
                },
                id: i + 1,
                reference: format!("INV-{i:06}"),
                details: "Ελληνική Εταιρεία".into(),
                amount: Decimal::from_str("1234.5").unwrap(),
            })
            .collect();
        moves[0].details = INJECTION.into();
        moves.push(Movement {
            currency: "JPY".into(),
            amount: Decimal::from(5000),
            ..moves[0].clone()
        });
        let open = Receivable {
            id: 1,
            currency: "EUR".into(),
            issue_date: day("2026-01-01"),
            due_date: day("2026-01-31"),
            total: Decimal::from(99),
            settlements: vec![],
        };
        let s = domain::build(&moves, &[open], day("2026-01-01"), day("2026-06-30"));
        let party = |name: &str| Party {
            name: name.into(),
            address_lines: vec!["Hauptstraße 5".into(), "10115 Berlin".into()],
            tax_id: Some("DE123456789".into()),
            email: None,
        };
        PdfData {
            seller: party("Zoë Ørsted-Łukasiewicz"),
            logo_png: None,
            customer: party("ООО Ромашка"),
            account_number: "ACC-000042".into(),
            period: "1 Jan 2026 – 30 Jun 2026".into(),
            as_of: "30 Jun 2026".into(),
            sections: views(&s, ""),
        }
    }

    fn text_of(pdf: &[u8]) -> String {
        let path = std::env::temp_dir().join(format!("arbor-stmt-{}.pdf", uuid::Uuid::new_v4()));
        std::fs::write(&path, pdf).unwrap();
        let out = Command::new("pdftotext")
            .args(["-layout".as_ref(), path.as_os_str(), "-".as_ref()])
            .output()
            .expect("pdftotext (poppler-utils) is required");
        std::fs::remove_file(&path).ok();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn long_statements_span_pages_and_user_text_prints_literally() {
        let doc = sample(90);
        let warned = ENGINE.compile_with_input::<_, PagedDocument>(inputs(&doc, None));
        assert!(
            warned.warnings.is_empty(),
            "{}",
            pdf::describe(&warned.warnings)
        );
        assert!(warned.output.unwrap().pages.len() > 1);
        let text = text_of(&render_document(&doc).unwrap());
        for needle in [
            INJECTION,
            "Zoë Ørsted-Łukasiewicz",
            "ООО Ромашка",
            "Ελληνική Εταιρεία",
            "ACC-000042",
            "INV-000089",
            "1,234.50",
            "JPY 5,000",
            "Page 2 of",
            "91–120",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert!(text.matches("Reference").count() > 1, "header repeated");
    }

    #[test]
    fn an_empty_statement_still_renders() {
        let mut doc = sample(2);
        doc.sections.clear();
        let text = text_of(&render_document(&doc).unwrap());
        assert!(
            text.contains("No balance, activity or open invoices"),
            "{text}"
        );
    }
}
