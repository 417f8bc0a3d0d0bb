//! The per-tenant outbox: side effects recorded with the change that causes them, delivered
//! afterwards with retries. Delivery is at-least-once; each message carries a stable id
//! (`Message-ID`, idempotency key) so receivers can drop a repeat after a crash mid-send.

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, OptionalExtension, PgConnection, QueryDsl, RunQueryDsl};
use serde_json::{json, Value};

use super::{kinds, queue, JobFailure};
use crate::{
    db::{self, schema::tenant::outbox, scope::TenantSchema},
    email::{message::OutgoingEmail, transport::Delivered},
    error::AppResult,
    tenants::repo as tenants,
    web::AppState,
};

pub const KIND_EMAIL: &str = "email";

#[derive(Debug, Clone, diesel::Queryable)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub idempotency_key: Option<String>,
    pub payload: Value,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Records a side effect and its delivery job. Call inside the tenant transaction of the
/// change. With an idempotency key a repeat is ignored and `None` returned.
pub fn enqueue(
    conn: &mut PgConnection,
    tenant_id: i64,
    kind: &str,
    payload: &Value,
    idempotency_key: Option<&str>,
) -> AppResult<Option<i64>> {
    let id: Option<i64> = diesel::insert_into(outbox::table)
        .values((
            outbox::kind.eq(kind),
            outbox::payload.eq(payload),
            outbox::idempotency_key.eq(idempotency_key),
        ))
        .on_conflict_do_nothing()
        .returning(outbox::id)
        .get_result(conn)
        .optional()?;
    if let Some(id) = id {
        let mut job = queue::NewJob::new(
            kinds::OUTBOX_DELIVER,
            Some(tenant_id),
            json!({ "outbox_id": id }),
        );
        job.dedupe_key = Some(format!("outbox:{tenant_id}:{id}"));
        job.max_attempts = 10;
        queue::enqueue(conn, &job)?;
    }
    Ok(id)
}

/// Puts a dead row back in line with a fresh round of attempts (after a person fixed the
/// cause). Its idempotency key is unchanged, so a receiver that did get it drops the repeat.
pub fn redeliver(conn: &mut PgConnection, tenant_id: i64, row: &OutboxRow) -> AppResult<()> {
    resend(conn, tenant_id, row, false)
}

/// Like [`redeliver`], and with `delivered_too` also sends a delivered row once more (a
/// webhook subscriber that lost what it received asks for it again).
pub fn resend(
    conn: &mut PgConnection,
    tenant_id: i64,
    row: &OutboxRow,
    delivered_too: bool,
) -> AppResult<()> {
    let allowed = row.status == "dead" || (delivered_too && row.status == "delivered");
    if !allowed {
        return Err(crate::error::AppError::Conflict(
            "Only failed deliveries can be sent again.".into(),
        ));
    }
    diesel::update(outbox::table.find(row.id))
        .set((
            outbox::status.eq("pending"),
            outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    let mut job = queue::NewJob::new(
        kinds::OUTBOX_DELIVER,
        Some(tenant_id),
        json!({ "outbox_id": row.id }),
    );
    job.dedupe_key = Some(format!(
        "outbox:{tenant_id}:{}:retry:{}",
        row.id, row.attempts
    ));
    job.max_attempts = 10;
    queue::enqueue(conn, &job)?;
    Ok(())
}

pub fn get(conn: &mut PgConnection, id: i64) -> AppResult<Option<OutboxRow>> {
    Ok(outbox::table.find(id).first(conn).optional()?)
}

fn record(conn: &mut PgConnection, id: i64, status: &str, error: Option<&str>) -> AppResult<()> {
    let delivered = matches!(status, "delivered" | "captured");
    diesel::update(outbox::table.find(id))
        .set((
            outbox::status.eq(status),
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::last_error.eq(error.map(|e| e.chars().take(2000).collect::<String>())),
            outbox::delivered_at.eq(delivered.then(Utc::now)),
        ))
        .execute(conn)?;
    Ok(())
}

/// The PDF of a finalized invoice, rendered at delivery: the document is immutable, so the
/// attachment is the same whenever (and however often) delivery runs.
async fn invoice_attachment(
    state: &AppState,
    tenant_id: i64,
    schema: &TenantSchema,
    invoice_id: i64,
) -> Result<crate::email::message::Attachment, JobFailure> {
    use base64::Engine;
    let slug = db::run(&state.pool, move |c| tenants::slug_of(c, tenant_id))
        .await?
        .ok_or_else(|| JobFailure::permanent("tenant no longer exists"))?;
    let links = crate::invoicing::billrun::links_for(state, tenant_id, &slug);
    let s = schema.clone();
    let inv = db::run(&state.pool, move |c| {
        db::scope::in_tenant(c, &s, |c| crate::invoicing::repo::get(c, invoice_id))
    })
    .await?;
    let bytes = crate::invoicing::pdf_doc::render_invoice(&state.pool, schema, &links, invoice_id)
        .await
        .map_err(|e| JobFailure::retry(format!("rendering the invoice PDF: {e:?}")))?;
    Ok(crate::email::message::Attachment {
        filename: crate::invoicing::pdf_doc::filename(&inv),
        content_type: "application/pdf".into(),
        data_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

/// Renders the documents an email asks for (invoice PDFs, a statement) into attachments.
async fn attach_documents(
    state: &AppState,
    tenant_id: i64,
    schema: &TenantSchema,
    mail: &mut OutgoingEmail,
) -> Result<(), JobFailure> {
    use base64::Engine;
    let ids: Vec<i64> = mail
        .attach_invoice_pdf
        .into_iter()
        .chain(mail.attach_invoice_pdfs.iter().copied())
        .collect();
    for id in ids {
        let a = invoice_attachment(state, tenant_id, schema, id).await?;
        mail.attachments.push(a);
    }
    if let Some(account_id) = mail.attach_statement {
        let today = Utc::now().date_naive();
        let (filename, bytes) =
            crate::invoicing::statement::render_pdf(&state.pool, schema, account_id, today)
                .await
                .map_err(|e| JobFailure::retry(format!("rendering the statement PDF: {e:?}")))?;
        mail.attachments.push(crate::email::message::Attachment {
            filename,
            content_type: "application/pdf".into(),
            data_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        });
    }
    Ok(())
}

/// Handler of `outbox.deliver` jobs.
pub async fn deliver(state: &AppState, job: &queue::Job) -> Result<(), JobFailure> {
    let tenant_id = job
        .tenant_id
        .ok_or_else(|| JobFailure::permanent("outbox job without tenant"))?;
    let outbox_id = job
        .payload
        .get("outbox_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| JobFailure::permanent("outbox job without outbox_id"))?;
    let schema_name = db::run(&state.pool, move |c| tenants::schema_of(c, tenant_id))
        .await?
        .ok_or_else(|| JobFailure::permanent("tenant no longer exists"))?;
    let schema = TenantSchema::parse(&schema_name).map_err(JobFailure::permanent)?;
    let s = schema.clone();
    let row = db::run(&state.pool, move |c| {
        db::scope::in_tenant(c, &s, |c| get(c, outbox_id))
    })
    .await?
    .ok_or_else(|| JobFailure::permanent("outbox row not found"))?;
    if matches!(row.status.as_str(), "delivered" | "captured") {
        return Ok(()); // a retry after a crash between send and record
    }
    let sent: Result<Delivered, JobFailure> = match row.kind.as_str() {
        KIND_EMAIL => match serde_json::from_value::<OutgoingEmail>(row.payload.clone()) {
            Ok(mut mail) => {
                let attached = attach_documents(state, tenant_id, &schema, &mut mail).await;
                let message_id =
                    format!("<outbox-{tenant_id}-{outbox_id}@{}>", state.mailer.domain());
                match attached {
                    Err(f) => Err(f),
                    Ok(()) => state
                        .mailer
                        .send(&mail, &message_id)
                        .await
                        .map_err(|e| JobFailure::retry(format!("{e:#}"))),
                }
            }
            Err(e) => Err(JobFailure::permanent(format!(
                "malformed email payload: {e}"
            ))),
        },
        crate::ledger::push::KIND => {
            crate::ledger::push::deliver(state, tenant_id, &schema, &row).await
        }
        crate::crm::outbound::KIND_WEBHOOK => {
            crate::crm::outbound::deliver_webhook(state, tenant_id, &schema, &row).await
        }
        crate::crm::outbound::KIND_WRITEBACK => {
            crate::crm::outbound::deliver_writeback(state, tenant_id, &schema, &row).await
        }
        other => Err(JobFailure::permanent(format!(
            "no deliverer for outbox kind {other:?}"
        ))),
    };
    let (status, error) = match &sent {
        Ok(Delivered::Sent) => ("delivered", None),
        Ok(Delivered::Captured) => ("captured", None),
        Err(f) if f.retryable && job.attempts < job.max_attempts => {
            ("retrying", Some(f.message.clone()))
        }
        Err(f) => ("dead", Some(f.message.clone())),
    };
    let status = status.to_owned();
    db::run(&state.pool, move |c| {
        db::scope::in_tenant(c, &schema, |c| {
            record(c, outbox_id, &status, error.as_deref())
        })
    })
    .await?;
    sent.map(|_| ())
}
