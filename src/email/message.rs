//! The outbox payload of an email.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OutgoingEmail {
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    pub subject: String,
    pub text: String,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Contains a sign-in capability (invitation, reset link): the body is never shown in the
    /// app, only delivered.
    #[serde(default)]
    pub sensitive: bool,
    /// The deliverer renders this invoice's PDF and attaches it (kept out of the outbox row:
    /// the finalized invoice is immutable, so the PDF is the same whenever it is rendered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_invoice_pdf: Option<i64>,
    /// Several invoices' PDFs (dunning reminders), rendered the same way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attach_invoice_pdfs: Vec<i64>,
    /// The account's statement as of delivery, rendered by the deliverer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_statement: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    /// Standard base64.
    pub data_base64: String,
}
