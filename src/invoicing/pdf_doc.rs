//! Assembling the PDF of an invoice or credit note from the stored document (the renderer in
//! [`super::pdf`] only lays out what it is given; amounts arrive formatted).

use actix_web::HttpResponse;
use base64::Engine;
use diesel::PgConnection;

use super::{
    email::{self, Links},
    handlers::line_views,
    pdf::{self, DocKind, Party, PdfDocument, PdfLine},
    repo::{self, Invoice},
};
use crate::{
    db::{self, scope::TenantSchema},
    error::{AppError, AppResult},
};

fn json_lines(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The bill-to party: the snapshot of a finalized document, the live account for a draft.
fn bill_to(conn: &mut PgConnection, inv: &Invoice) -> AppResult<Party> {
    if inv.status != "draft" {
        let b = &inv.bill_to;
        return Ok(Party {
            name: b
                .get("name")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned(),
            address_lines: json_lines(b.get("address").unwrap_or(&serde_json::Value::Null)),
            tax_id: b.get("tax_id").and_then(|v| v.as_str()).map(str::to_owned),
            email: inv.recipients.first().cloned(),
        });
    }
    let a = crate::accounts::repo::get(conn, inv.bill_to_account_id)?.ok_or(AppError::NotFound)?;
    let address: crate::accounts::values::Address =
        serde_json::from_value(a.billing_address.clone()).unwrap_or_default();
    Ok(Party {
        name: a.legal_name,
        address_lines: address.lines(),
        tax_id: a.tax_id,
        email: None,
    })
}

pub fn document(
    conn: &mut PgConnection,
    links: &Links,
    id: i64,
) -> AppResult<(Invoice, PdfDocument)> {
    let inv = repo::get(conn, id)?;
    let lines = repo::lines_of(conn, id)?;
    let m = crate::money::Currency::formatter(&inv.currency);
    let setting = |c: &mut PgConnection, k: &str| repo::text_setting(c, k);
    let legal = setting(conn, "company.legal_name")?;
    let name = if legal.is_empty() {
        setting(conn, "company.name")?
    } else {
        legal
    };
    let address = setting(conn, "company.address")?;
    let tax_id = setting(conn, "company.tax_id")?;
    let logo = setting(conn, "company.logo_png_base64")?;
    let related = match inv.related_invoice_id {
        Some(r) => Some(format!("Credits invoice {}", repo::get(conn, r)?.label())),
        None => None,
    };
    let payment_link = if inv.status == "draft" {
        None
    } else {
        email::link_nonce(conn, id)?.map(|n| links.hosted(id, &n))
    };
    let discount: rust_decimal::Decimal = lines.iter().map(|l| l.discount).sum();
    let views = line_views(&inv, &lines);
    let doc = PdfDocument {
        kind: if inv.is_credit_note() {
            DocKind::CreditNote
        } else {
            DocKind::Invoice
        },
        number: inv.number.clone().unwrap_or_else(|| "DRAFT".into()),
        issue_date: inv.issue_date.format("%-d %b %Y").to_string(),
        due_date: inv.due_date.map(|d| d.format("%-d %b %Y").to_string()),
        currency: inv.currency.clone(),
        seller: Party {
            name,
            address_lines: address
                .lines()
                .map(str::to_owned)
                .filter(|l| !l.trim().is_empty())
                .collect(),
            tax_id: (!tax_id.is_empty()).then_some(tax_id),
            email: None,
        },
        logo_png: (!logo.is_empty())
            .then(|| {
                base64::engine::general_purpose::STANDARD
                    .decode(logo.trim())
                    .ok()
            })
            .flatten(),
        bill_to: bill_to(conn, &inv)?,
        po_number: inv.po_number.clone(),
        lines: views
            .into_iter()
            .map(|l| PdfLine {
                description: l.description,
                period: (!l.period.is_empty()).then_some(l.period),
                quantity: l.quantity,
                unit_price: l.unit_price,
                amount: l.net,
                tax_rate: l.tax_rate,
                tax: l.tax,
            })
            .collect(),
        subtotal: m(inv.subtotal),
        discount_total: (!discount.is_zero()).then(|| m(discount)),
        tax_total: m(inv.tax_total),
        total: m(inv.total),
        amount_paid: m(inv.amount_paid + inv.amount_credited + inv.credit_applied),
        amount_due: m(inv.amount_due),
        notes: inv.notes.clone(),
        bank_details: setting(conn, "company.bank")?,
        payment_link,
        watermark: match inv.status.as_str() {
            "draft" => Some("DRAFT".into()),
            "void" => Some("VOID".into()),
            "paid" if !inv.is_credit_note() => Some("PAID".into()),
            _ => None,
        },
        related,
    };
    Ok((inv, doc))
}

/// Loads the document in a tenant transaction and renders it on the blocking pool.
pub async fn render_invoice(
    pool: &db::PgPool,
    schema: &TenantSchema,
    links: &Links,
    id: i64,
) -> AppResult<Vec<u8>> {
    let (schema, links) = (schema.clone(), links.clone());
    let (_, doc) = db::run(pool, move |c| {
        db::scope::in_tenant(c, &schema, |c| document(c, &links, id))
    })
    .await?;
    actix_web::web::block(move || pdf::render(&doc))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)
}

pub fn filename(inv: &Invoice) -> String {
    let label: String = inv
        .label()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{label}.pdf")
}

pub fn response(inv: &Invoice, bytes: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((
            "Content-Disposition",
            format!("inline; filename=\"{}\"", filename(inv)),
        ))
        .insert_header(("Cache-Control", "private, no-store"))
        .body(bytes)
}
