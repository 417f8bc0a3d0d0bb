//! PDF rendering for invoices and credit notes.
//!
//! Layout lives in `templates/pdf/invoice.typ` and is typeset by Typst (via
//! typst-as-lib) with the typst-assets fonts embedded in the binary, so output
//! never depends on fonts installed on the host and nothing is fetched at run
//! time. Document data reaches the template only as a `sys.inputs` dictionary,
//! never as markup, so customer-controlled text cannot inject Typst code.

use std::sync::LazyLock;

use typst::diag::SourceDiagnostic;
use typst::foundations::{Array, Bytes, Dict, IntoValue, Str, Value};
use typst::layout::PagedDocument;
use typst::visualize::{ExchangeFormat, RasterImage};
use typst_as_lib::{TypstAsLibError, TypstEngine, TypstTemplateMainFile};

static TEMPLATE: &str = include_str!("../../templates/pdf/invoice.typ");

/// Parsing the template and indexing ~20 fonts is the expensive part, so it is
/// done once; `TypstEngine` is `Sync` and each compile builds its own world.
static ENGINE: LazyLock<TypstEngine<TypstTemplateMainFile>> = LazyLock::new(|| {
    TypstEngine::builder()
        .main_file(("invoice.typ", TEMPLATE))
        // `Bytes::new` over the `'static` slices avoids copying the font data.
        .fonts(typst_assets::fonts().map(Bytes::new))
        .build()
});

#[derive(Debug, Clone, serde::Serialize)]
pub struct Party {
    pub name: String,
    pub address_lines: Vec<String>,
    pub tax_id: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PdfLine {
    pub description: String,
    /// e.g. "1 Mar 2026 – 31 Mar 2026"
    pub period: Option<String>,
    pub quantity: String,
    pub unit_price: String,
    pub amount: String,
    /// "20%" or ""
    pub tax_rate: String,
    pub tax: String,
}

#[derive(Debug, Clone, Copy, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Invoice,
    CreditNote,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PdfDocument {
    pub kind: DocKind,
    /// "INV-2026-000123", or "DRAFT" for a draft preview.
    pub number: String,
    /// Preformatted, e.g. "22 Nov 2026".
    pub issue_date: String,
    pub due_date: Option<String>,
    pub currency: String,
    pub seller: Party,
    /// Tenant logo; skipped (not an error) when missing or undecodable.
    pub logo_png: Option<Vec<u8>>,
    pub bill_to: Party,
    pub po_number: Option<String>,
    pub lines: Vec<PdfLine>,
    pub subtotal: String,
    pub discount_total: Option<String>,
    pub tax_total: String,
    pub total: String,
    pub amount_paid: String,
    pub amount_due: String,
    pub notes: String,
    pub bank_details: String,
    pub payment_link: Option<String>,
    /// "DRAFT", "VOID", "PAID", drawn large and light across every page.
    pub watermark: Option<String>,
    /// Credit note: "Credits invoice INV-2026-000045".
    pub related: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("typst compile failed: {0}")]
    Compile(String),
    #[error("pdf export failed: {0}")]
    Export(String),
}

/// Renders the document. Safe to call from many threads at once.
pub fn render(doc: &PdfDocument) -> Result<Vec<u8>, PdfError> {
    let logo = doc.logo_png.as_deref().and_then(decodable_logo);
    let had_logo = logo.is_some();
    let compiled = match compile(doc, logo) {
        // The pre-check should catch bad logos, but a logo must never cost the
        // customer their invoice, so retry without it before giving up.
        Err(err) if had_logo => {
            tracing::warn!(error = %err, "invoice PDF failed with logo; retrying without it");
            compile(doc, None)?
        }
        other => other?,
    };
    typst_pdf::pdf(&compiled, &typst_pdf::PdfOptions::default())
        .map_err(|diags| PdfError::Export(describe(&diags)))
}

fn compile(doc: &PdfDocument, logo: Option<Bytes>) -> Result<PagedDocument, PdfError> {
    let warned = ENGINE.compile_with_input(inputs(doc, logo));
    if !warned.warnings.is_empty() {
        tracing::warn!(warnings = %describe(&warned.warnings), "invoice template warnings");
    }
    warned.output.map_err(|err| {
        PdfError::Compile(match err {
            TypstAsLibError::TypstSource(diags) => describe(&diags),
            other => other.to_string(),
        })
    })
}

/// Decodes with the same decoder Typst uses, so an image that passes here will
/// not make the compile fail later.
pub(crate) fn decodable_logo(bytes: &[u8]) -> Option<Bytes> {
    let format = ExchangeFormat::detect(bytes)?;
    let data = Bytes::new(bytes.to_vec());
    match RasterImage::plain(data.clone(), format) {
        Ok(_) => Some(data),
        Err(err) => {
            tracing::warn!(error = %err, "ignoring undecodable tenant logo");
            None
        }
    }
}

pub(crate) fn describe(diags: &[SourceDiagnostic]) -> String {
    let one = |d: &SourceDiagnostic| {
        d.hints
            .iter()
            .fold(d.message.to_string(), |s, h| format!("{s} (hint: {h})"))
    };
    diags.iter().map(one).collect::<Vec<_>>().join("; ")
}

fn inputs(doc: &PdfDocument, logo: Option<Bytes>) -> Dict {
    let kind = match doc.kind {
        DocKind::Invoice => "invoice",
        DocKind::CreditNote => "credit_note",
    };
    // Only web links: a `javascript:` or `file:` target has no business in a PDF.
    let payment_link = doc
        .payment_link
        .as_deref()
        .map(str::trim)
        .filter(|u| (u.starts_with("https://") || u.starts_with("http://")) && u.len() <= 8000);
    let lines: Array = doc.lines.iter().map(line).collect();
    dict([
        ("kind", text(kind)),
        ("number", text(&doc.number)),
        ("issue_date", text(&doc.issue_date)),
        ("due_date", opt(&doc.due_date)),
        ("currency", text(&doc.currency)),
        ("seller", party(&doc.seller)),
        ("logo", logo.map_or(Value::None, Value::Bytes)),
        ("bill_to", party(&doc.bill_to)),
        ("po_number", opt(&doc.po_number)),
        ("lines", Value::Array(lines)),
        ("subtotal", text(&doc.subtotal)),
        ("discount_total", opt(&doc.discount_total)),
        ("tax_total", text(&doc.tax_total)),
        ("total", text(&doc.total)),
        ("amount_paid", text(&doc.amount_paid)),
        ("amount_due", text(&doc.amount_due)),
        ("notes", text(&doc.notes)),
        ("bank_details", text(&doc.bank_details)),
        ("payment_link", payment_link.map_or(Value::None, text)),
        ("watermark", opt(&doc.watermark)),
        ("related", opt(&doc.related)),
    ])
}

pub(crate) fn party(p: &Party) -> Value {
    let address: Array = p.address_lines.iter().map(|l| text(l)).collect();
    Value::Dict(dict([
        ("name", text(&p.name)),
        ("address_lines", Value::Array(address)),
        ("tax_id", opt(&p.tax_id)),
        ("email", opt(&p.email)),
    ]))
}

fn line(l: &PdfLine) -> Value {
    Value::Dict(dict([
        ("description", text(&l.description)),
        ("period", opt(&l.period)),
        ("quantity", text(&l.quantity)),
        ("unit_price", text(&l.unit_price)),
        ("amount", text(&l.amount)),
        ("tax_rate", text(&l.tax_rate)),
        ("tax", text(&l.tax)),
    ]))
}

pub(crate) fn dict<const N: usize>(entries: [(&str, Value); N]) -> Dict {
    entries
        .into_iter()
        .map(|(k, v)| (Str::from(k), v))
        .collect()
}

pub(crate) fn text(s: &str) -> Value {
    s.into_value()
}

fn opt(s: &Option<String>) -> Value {
    s.as_deref().map_or(Value::None, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const INJECTION: &str = r#"#panic("x") *bold* $math$ ] \ "quoted" _u_ <l> @r [x]"#;
    /// 4x2 RGB PNG.
    const TINY_PNG: [u8; 83] = [
        137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 4, 0, 0, 0, 2, 8, 2,
        0, 0, 0, 240, 202, 234, 52, 0, 0, 0, 26, 73, 68, 65, 84, 120, 218, 99, 56, 33, 39, 39, 183,
        192, 70, 206, 230, 196, 135, 19, 34, 12, 112, 22, 80, 20, 0, 124, 162, 9, 217, 121, 116,
        120, 169, 0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130,
    ];

    fn party(name: &str) -> Party {
        Party {
            name: name.into(),
            address_lines: vec!["Hauptstraße 5".into(), "10115 Berlin".into()],
            tax_id: Some("DE123456789".into()),
            email: Some("billing@example.com".into()),
        }
    }

    fn line(i: usize) -> PdfLine {
        PdfLine {
            description: format!("Ελληνική Εταιρεία support plan, seat {i}"),
            period: Some("1 Mar 2026 – 31 Mar 2026".into()),
            quantity: "2".into(),
            unit_price: "50.00".into(),
            amount: "100.00".into(),
            tax_rate: "20%".into(),
            tax: "20.00".into(),
        }
    }

    fn sample(lines: usize) -> PdfDocument {
        let mut first = line(0);
        first.description = INJECTION.into();
        PdfDocument {
            kind: DocKind::Invoice,
            number: "INV-2026-000123".into(),
            issue_date: "22 Nov 2026".into(),
            due_date: Some("22 Dec 2026".into()),
            currency: "EUR".into(),
            seller: party("Zoë Ørsted-Łukasiewicz"),
            logo_png: Some(TINY_PNG.to_vec()),
            bill_to: party("Müller & Söhne GmbH"),
            po_number: Some("PO-77".into()),
            lines: std::iter::once(first).chain((1..lines).map(line)).collect(),
            subtotal: "1,234.00".into(),
            discount_total: Some("-34.00".into()),
            tax_total: "240.00".into(),
            total: "1,440.00".into(),
            amount_paid: "0.00".into(),
            amount_due: "1,440.00".into(),
            notes: "Thank you!\nООО Ромашка is our partner.".into(),
            bank_details: "IBAN DE02 1203 0000 0000 2020 51\nBIC BYLADEM1001".into(),
            payment_link: Some("https://pay.example.com/i/abc".into()),
            watermark: Some("DRAFT".into()),
            related: None,
        }
    }

    fn run(tool: &str, args: &[&str], pdf: &[u8], name: &str) -> String {
        let path = std::env::temp_dir().join(format!("arbor-{name}-{}.pdf", std::process::id()));
        std::fs::write(&path, pdf).unwrap();
        let out = Command::new(tool)
            .args(args.iter().map(|a| {
                if *a == "FILE" {
                    path.as_os_str()
                } else {
                    a.as_ref()
                }
            }))
            .output()
            .unwrap_or_else(|e| panic!("{tool} is required (apt-get install poppler-utils): {e}"));
        std::fs::remove_file(&path).ok();
        assert!(out.status.success(), "{tool} failed: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn pdf_text(pdf: &[u8], name: &str) -> String {
        run("pdftotext", &["-layout", "FILE", "-"], pdf, name)
    }

    #[test]
    fn renders_invoice_and_credit_note() {
        let pdf = render(&sample(3)).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let mut credit = sample(2);
        credit.kind = DocKind::CreditNote;
        credit.number = "CN-2026-000007".into();
        credit.due_date = None;
        credit.discount_total = None;
        credit.watermark = None;
        credit.related = Some("Credits invoice INV-2026-000045".into());
        let pdf = render(&credit).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let text = pdf_text(&pdf, "credit");
        assert!(text.contains("Credit note"), "{text}");
        assert!(text.contains("Credits invoice INV-2026-000045"), "{text}");
        assert!(!text.contains("Discount"), "{text}");
    }

    #[test]
    fn unicode_and_markup_render_literally() {
        let text = pdf_text(&render(&sample(3)).unwrap(), "unicode");
        for needle in [
            "Zoë Ørsted-Łukasiewicz",
            "Müller & Söhne GmbH",
            "Ελληνική Εταιρεία",
            "ООО Ромашка",
            "INV-2026-000123",
            "EUR 1,440.00",
            "1 Mar 2026 – 31 Mar 2026",
            "Pay or view online",
            "Page 1 of 1",
            INJECTION,
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn long_invoice_spans_pages_and_repeats_header() {
        let doc = sample(60);
        let warned = ENGINE.compile_with_input::<_, PagedDocument>(inputs(&doc, None));
        assert!(warned.warnings.is_empty(), "{}", describe(&warned.warnings));
        assert!(warned.output.unwrap().pages.len() > 1);
        let text = pdf_text(&render(&doc).unwrap(), "long");
        assert!(text.contains("Page 2 of"), "{text}");
        assert!(
            text.matches("Unit price").count() > 1,
            "header not repeated"
        );
        assert!(text.contains("seat 59"));
    }

    #[test]
    fn logo_is_embedded_when_valid_and_skipped_when_not() {
        let images = run(
            "pdfimages",
            &["-list", "FILE"],
            &render(&sample(1)).unwrap(),
            "logo",
        );
        assert!(images.lines().count() > 2, "logo missing: {images}");

        let mut doc = sample(1);
        doc.logo_png = Some((0..4096u32).map(|i| (i * 7919 % 251) as u8).collect());
        assert!(render(&doc).unwrap().starts_with(b"%PDF-"));
        // A PNG signature followed by garbage gets past format sniffing.
        let mut bad = TINY_PNG[..20].to_vec();
        bad.extend_from_slice(&[0xAB; 64]);
        doc.logo_png = Some(bad);
        assert!(render(&doc).unwrap().starts_with(b"%PDF-"));
    }

    #[test]
    fn renders_concurrently() {
        let handles: Vec<_> = (0..4)
            .map(|i| std::thread::spawn(move || render(&sample(5 + i)).unwrap()))
            .collect();
        for h in handles {
            assert!(h.join().unwrap().starts_with(b"%PDF-"));
        }
    }

    #[test]
    #[ignore = "timing report: cargo test render_timing -- --ignored --nocapture"]
    fn render_timing() {
        let doc = sample(10);
        render(&doc).unwrap();
        let n = 10;
        let start = std::time::Instant::now();
        for _ in 0..n {
            render(&doc).unwrap();
        }
        eprintln!(
            "render (10 lines, warm): {:?} per document",
            start.elapsed() / n
        );
    }
}
