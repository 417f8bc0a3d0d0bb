//! Invoice emails and hosted invoice links.
//!
//! Rules: the email is composed from the tenant's template when the invoice is finalized (or
//! resent) and written to the outbox in that transaction; the PDF is rendered and attached by
//! the deliverer, from the immutable finalized invoice. The hosted link is an HMAC of tenant,
//! invoice and a random per-invoice nonce: unguessable, recomputable for the UI, and revoked
//! by dropping the nonce (a new nonce gives a new link; old ones stop working).

use base64::Engine;
use diesel::prelude::*;
use rand::RngCore;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::repo::{self, Invoice};
use crate::{
    config::SecretKey,
    crypto,
    db::schema::tenant::{invoice_links, outbox},
    email::message::OutgoingEmail,
    error::AppResult,
    jobs::outbox as jobs_outbox,
    money::Currency,
};

pub const DEFAULT_SUBJECT: &str = "Invoice {{number}} from {{company}}";
pub const DEFAULT_BODY: &str = "Hello {{account}},\n\nplease find attached invoice {{number}} for {{currency}} {{amount_due}}, due on {{due_date}}.\n\nView it online, download the PDF and see your statement: {{link}}\n\nThank you,\n{{company}}";
pub const PLACEHOLDERS: &[&str] = &[
    "number",
    "company",
    "account",
    "currency",
    "total",
    "amount_due",
    "due_date",
    "link",
];

/// Where links point and the key that signs them.
#[derive(Clone)]
pub struct Links {
    pub base_url: String,
    pub slug: String,
    pub tenant_id: i64,
    pub key: SecretKey,
}

impl Links {
    fn token(&self, invoice_id: i64, nonce: &[u8]) -> String {
        let mac = crypto::digest(
            &self.key,
            "invoice-link",
            &format!("{}:{invoice_id}:{}", self.tenant_id, hex::encode(nonce)),
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac)
    }

    pub fn hosted(&self, invoice_id: i64, nonce: &[u8]) -> String {
        format!(
            "{}/p/{}/invoices/{invoice_id}/{}",
            self.base_url.trim_end_matches('/'),
            self.slug,
            self.token(invoice_id, nonce)
        )
    }

    /// Whether `token` is the current link of the invoice with `nonce`.
    pub fn verify(&self, invoice_id: i64, nonce: &[u8], token: &str) -> bool {
        self.token(invoice_id, nonce)
            .as_bytes()
            .ct_eq(token.as_bytes())
            .into()
    }
}

/// The invoice's current link nonce, if it has a link.
pub fn link_nonce(conn: &mut PgConnection, invoice_id: i64) -> AppResult<Option<Vec<u8>>> {
    Ok(invoice_links::table
        .find(invoice_id)
        .select(invoice_links::nonce)
        .first(conn)
        .optional()?)
}

/// The invoice's link nonce, created on first use.
pub fn share_nonce(conn: &mut PgConnection, invoice_id: i64) -> AppResult<Vec<u8>> {
    match link_nonce(conn, invoice_id)? {
        Some(n) => Ok(n),
        None => renew_link(conn, invoice_id),
    }
}

/// A fresh nonce: the old link stops working.
pub fn renew_link(conn: &mut PgConnection, invoice_id: i64) -> AppResult<Vec<u8>> {
    let mut nonce = vec![0u8; 16];
    rand::rng().fill_bytes(&mut nonce);
    diesel::insert_into(invoice_links::table)
        .values((
            invoice_links::invoice_id.eq(invoice_id),
            invoice_links::nonce.eq(&nonce),
        ))
        .on_conflict(invoice_links::invoice_id)
        .do_update()
        .set((
            invoice_links::nonce.eq(&nonce),
            invoice_links::created_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(nonce)
}

pub fn revoke_link(conn: &mut PgConnection, invoice_id: i64) -> AppResult<()> {
    diesel::delete(invoice_links::table.find(invoice_id)).execute(conn)?;
    Ok(())
}

/// Replaces `{{name}}` placeholders; unknown ones stay visible so a typo shows in the preview.
pub fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

pub struct Template {
    pub subject: String,
    pub body: String,
}

pub fn template(conn: &mut PgConnection) -> AppResult<Template> {
    let subject = repo::text_setting(conn, "email.invoice_subject")?;
    let body = repo::text_setting(conn, "email.invoice_body")?;
    Ok(Template {
        subject: if subject.is_empty() {
            DEFAULT_SUBJECT.into()
        } else {
            subject
        },
        body: if body.is_empty() {
            DEFAULT_BODY.into()
        } else {
            body
        },
    })
}

pub fn vars(
    conn: &mut PgConnection,
    inv: &Invoice,
    link: String,
) -> AppResult<Vec<(&'static str, String)>> {
    let company = repo::text_setting(conn, "company.legal_name")?;
    let company = if company.is_empty() {
        repo::text_setting(conn, "company.name")?
    } else {
        company
    };
    let money = Currency::formatter(&inv.currency);
    Ok(vec![
        ("number", inv.label()),
        ("company", company),
        (
            "account",
            inv.bill_to
                .get("name")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned(),
        ),
        ("currency", inv.currency.clone()),
        ("total", money(inv.total)),
        ("amount_due", money(inv.amount_due)),
        (
            "due_date",
            inv.due_date
                .map(|d| d.format("%-d %b %Y").to_string())
                .unwrap_or_else(|| "receipt".into()),
        ),
        ("link", link),
    ])
}

/// Writes the invoice email to the outbox; each call is a new send (resend).
pub fn queue_invoice_email(
    conn: &mut PgConnection,
    links: &Links,
    invoice_id: i64,
) -> AppResult<Option<i64>> {
    let inv = repo::get(conn, invoice_id)?;
    if inv.recipients.is_empty() {
        return Ok(None);
    }
    let nonce = share_nonce(conn, invoice_id)?;
    let t = template(conn)?;
    let vars = vars(conn, &inv, links.hosted(invoice_id, &nonce))?;
    let mail = OutgoingEmail {
        to: inv.recipients.clone(),
        cc: Vec::new(),
        subject: fill(&t.subject, &vars),
        text: fill(&t.body, &vars),
        html: None,
        attachments: Vec::new(),
        reply_to: None,
        sensitive: false,
        attach_invoice_pdf: Some(invoice_id),
        attach_invoice_pdfs: Vec::new(),
        attach_statement: None,
    };
    let sent: i64 = outbox::table
        .filter(outbox::idempotency_key.like(format!("invoice-email:{invoice_id}:%")))
        .count()
        .get_result(conn)?;
    let payload = json!(mail);
    jobs_outbox::enqueue(
        conn,
        links.tenant_id,
        jobs_outbox::KIND_EMAIL,
        &payload,
        Some(&format!("invoice-email:{invoice_id}:{}", sent + 1)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_unknown_ones_stay() {
        let out = fill(
            "Invoice {{number}} {{nope}}",
            &[("number", "INV-000001".into())],
        );
        assert_eq!(out, "Invoice INV-000001 {{nope}}");
    }
}
