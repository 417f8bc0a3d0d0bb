//! Accounting push: every journal entry, as it is posted, is sent to the tenant's accounting
//! endpoint (Settings → Accounting) through the outbox.
//!
//! Rules:
//! - The outbox row is written by [`on_entry`] in the transaction that posts the entry, keyed
//!   `ledger.push:<entry id>`, so an entry is queued exactly once and never lost; entries
//!   posted before the push was switched on are sent with "Send entries from".
//! - The body is the entry in the chosen shape: QuickBooks Online `JournalEntry`, Xero
//!   `ManualJournals`, or Arbor's own JSON. Its document number `JE-<entry id>` and the
//!   `Idempotency-Key` header (`arbor-<tenant>-JE-<entry id>`, also QBO's `requestid`) stay
//!   the same across attempts, so the receiver can drop a repeat.
//! - 2xx is posted (the receiver's id is kept), 409 means the receiver already has it;
//!   timeouts, 408, 429 and 5xx retry with backoff; other 4xx stop at once (`dead`) for a person
//!   to fix, then "Send again" on the integration health page. Every attempt is logged.
//! - The token is sealed at rest, never shown again, and sent as a bearer token and as the
//!   HMAC key of `X-Arbor-Signature`.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::NaiveDate;
use diesel::{prelude::*, sql_query, sql_types::BigInt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    export, export_apps,
    repo::{self, JournalFilter},
};
use crate::{
    accounts::domain::Fields,
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed},
    db::{self, scope::TenantSchema},
    email::transport::Delivered,
    error::{AppResult, FieldErrors},
    integrations::{health, http},
    jobs::{outbox, JobFailure},
    payments::gateway::{put_sealed_setting, sealed_setting},
    tenants::TenantCtx,
    web::{csrf, render, AppState},
};

pub const KIND: &str = "ledger.push";
const SETTING: &str = "ledger.push";
const TOKEN: &str = "ledger.push_token";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Arbor,
    Qbo,
    Xero,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s.trim() {
            "arbor" => Some(Format::Arbor),
            "qbo" => Some(Format::Qbo),
            "xero" => Some(Format::Xero),
            _ => None,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Format::Arbor => "arbor",
            Format::Qbo => "qbo",
            Format::Xero => "xero",
        }
    }
}

pub const FORMATS: [(&str, &str); 3] = [
    ("arbor", "Arbor JSON (entry with debit and credit lines)"),
    ("qbo", "QuickBooks Online JournalEntry"),
    ("xero", "Xero ManualJournals"),
];

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Settings {
    pub enabled: bool,
    pub url: String,
    pub format: Format,
}

pub fn settings(conn: &mut PgConnection) -> AppResult<Settings> {
    Ok(crate::invoicing::repo::json_setting(conn, SETTING)?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// Queues the push of a just-posted entry when the push is on (same transaction).
pub fn on_entry(conn: &mut PgConnection, entry_id: i64) -> AppResult<()> {
    if !settings(conn)?.enabled {
        return Ok(());
    }
    let tenant_id = db::scope::current_tenant_id(conn)?;
    enqueue(conn, tenant_id, entry_id)
}

fn enqueue(conn: &mut PgConnection, tenant_id: i64, entry_id: i64) -> AppResult<()> {
    outbox::enqueue(
        conn,
        tenant_id,
        KIND,
        &json!({ "entry_id": entry_id }),
        Some(&format!("ledger.push:{entry_id}")),
    )?;
    Ok(())
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Queues every entry dated on or after `from` that was never queued. Returns how many.
pub fn backfill(conn: &mut PgConnection, tenant_id: i64, from: NaiveDate) -> AppResult<usize> {
    let ids: Vec<IdRow> = sql_query(
        "SELECT e.id FROM journal_entries e WHERE e.entry_date >= $1 \
         AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.idempotency_key = 'ledger.push:' || e.id) \
         ORDER BY e.id",
    )
    .bind::<diesel::sql_types::Date, _>(from)
    .load(conn)?;
    for r in &ids {
        enqueue(conn, tenant_id, r.id)?;
    }
    Ok(ids.len())
}

/// The request body for one entry.
pub fn body(format: Format, accounts: &[export::Account], e: &export::Entry) -> Value {
    match format {
        Format::Qbo => export_apps::qbo_journal_entry(accounts, e),
        Format::Xero => export_apps::xero_journal(std::slice::from_ref(e)),
        Format::Arbor => {
            let lines: Vec<Value> = e
                .lines
                .iter()
                .map(|l| {
                    let name = accounts
                        .iter()
                        .find(|a| a.code == l.account_code)
                        .map(|a| a.name.clone())
                        .unwrap_or_default();
                    let (debit, credit) = if l.amount.is_sign_negative() {
                        (rust_decimal::Decimal::ZERO, -l.amount)
                    } else {
                        (l.amount, rust_decimal::Decimal::ZERO)
                    };
                    json!({
                        "account_code": l.account_code,
                        "account_name": name,
                        "debit": debit.normalize().to_string(),
                        "credit": credit.normalize().to_string(),
                        "memo": l.memo,
                        "source_line": l.source_line,
                    })
                })
                .collect();
            json!({
                "document_number": export_apps::entry_number(e),
                "date": e.date.to_string(),
                "currency": e.currency,
                "source_type": e.source_type,
                "source_id": e.source_id,
                "source_document": e.document,
                "memo": e.memo,
                "lines": lines,
            })
        }
    }
}

/// The receiver's id for what it created, when its answer names one.
pub fn remote_ref(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    text(&v["JournalEntry"]["Id"])
        .or_else(|| text(&v["ManualJournals"][0]["ManualJournalID"]))
        .or_else(|| text(&v["id"]))
}

/// Delivers one `ledger.push` outbox row (called by the outbox deliverer).
pub async fn deliver(
    state: &AppState,
    tenant_id: i64,
    schema: &TenantSchema,
    row: &outbox::OutboxRow,
) -> Result<Delivered, JobFailure> {
    let entry_id = row
        .payload
        .get("entry_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| JobFailure::permanent("push without entry_id"))?;
    let key = state.config.secret_key.clone();
    let s = schema.clone();
    let (cfg, token, accounts, entry) = db::run(&state.pool, move |c| {
        db::scope::in_tenant(c, &s, |c| {
            let filter = JournalFilter {
                id: Some(entry_id),
                ..JournalFilter::default()
            };
            Ok((
                settings(c)?,
                sealed_setting(c, &key, TOKEN)?,
                repo::chart(c)?,
                repo::entries(c, &filter)?.pop(),
            ))
        })
    })
    .await?;
    let entry = entry.ok_or_else(|| JobFailure::permanent("journal entry not found"))?;
    let subject = format!(
        "{} ({} {})",
        export_apps::entry_number(&entry),
        entry.source_type,
        entry.document
    );
    let attempt_no = row.attempts + 1;
    let log =
        |ok: bool, status: Option<u16>, error: Option<String>, remote: Option<String>, ms: i32| {
            let s = schema.clone();
            let subject = subject.clone();
            let outbox_id = row.id;
            async move {
                db::run(&state.pool, move |c| {
                    db::scope::in_tenant(c, &s, |c| {
                        health::log(
                            c,
                            &health::NewDelivery {
                                connector: crate::integrations::ACCOUNTING.code,
                                outbox_id,
                                subject: &subject,
                                attempt: attempt_no,
                                ok,
                                http_status: status.map(i32::from),
                                error: error.as_deref(),
                                remote_ref: remote.as_deref(),
                                duration_ms: ms,
                            },
                        )
                    })
                })
                .await
            }
        };
    if !cfg.enabled || cfg.url.is_empty() {
        let why = "the accounting push is switched off; switch it on under Settings → Accounting, then send again";
        log(false, None, Some(why.into()), None, 0).await?;
        return Err(JobFailure::permanent(why));
    }
    let accounts: Vec<export::Account> = accounts.iter().map(repo::GlAccount::export).collect();
    let payload = body(cfg.format, &accounts, &entry);
    let idempotency_key = format!("arbor-{tenant_id}-{}", export_apps::entry_number(&entry));
    let url = match cfg.format {
        Format::Qbo => {
            let sep = if cfg.url.contains('?') { '&' } else { '?' };
            format!("{}{sep}requestid={idempotency_key}", cfg.url)
        }
        _ => cfg.url.clone(),
    };
    let attempt = http::post(
        &state.http,
        &http::Request {
            method: reqwest::Method::POST,
            url: &url,
            body: serde_json::to_vec(&payload).map_err(JobFailure::permanent)?,
            idempotency_key: &idempotency_key,
            bearer: token.as_deref(),
            signing_secret: token.as_deref(),
        },
    )
    .await;
    let ok = matches!(attempt.class, http::Class::Success | http::Class::Duplicate);
    let remote = ok.then(|| remote_ref(&attempt.body)).flatten();
    log(
        ok,
        attempt.status,
        attempt.error.clone(),
        remote,
        attempt.duration_ms,
    )
    .await?;
    let error = attempt.error.unwrap_or_default();
    match attempt.class {
        http::Class::Success | http::Class::Duplicate => Ok(Delivered::Sent),
        http::Class::Retry => Err(JobFailure::retry(error)),
        http::Class::Permanent => Err(JobFailure::permanent(error)),
    }
}

// ---- Settings → Accounting ------------------------------------------------------------------

#[derive(Template)]
#[template(path = "ledger/push_partial.html")]
pub struct PushPartial {
    pub base: String,
    pub csrf_token: String,
    pub settings: Settings,
    pub url: String,
    pub token_set: bool,
    pub formats: [(&'static str, &'static str); 3],
    pub errors: FieldErrors,
    pub message: String,
    pub backfill_from: String,
}

async fn render_page(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    form: Option<(Settings, String)>,
    errors: FieldErrors,
    message: String,
) -> AppResult<HttpResponse> {
    let key = state.config.secret_key.clone();
    let (saved, token_set) = ctx
        .db(state, move |c| {
            Ok((settings(c)?, sealed_setting(c, &key, TOKEN)?.is_some()))
        })
        .await?;
    let (settings, url) = form.unwrap_or_else(|| {
        let url = saved.url.clone();
        (saved, url)
    });
    let partial = PushPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        settings,
        url,
        token_set,
        formats: FORMATS,
        errors,
        message,
        backfill_from: chrono::Utc::now().date_naive().to_string(),
    };
    let status = render::status_for(partial.errors.is_empty());
    render::page_with_status(
        req,
        status,
        ctx.layout(req, "Accounting push", "settings"),
        partial,
    )
}

pub async fn page(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    render_page(
        &req,
        &ctx,
        &state,
        None,
        FieldErrors::default(),
        String::new(),
    )
    .await
}

/// An absolute http(s) URL with a host; plain http only to this machine (tests, local
/// bridges), since entries and the token would otherwise cross the network in clear.
pub fn parse_url(raw: &str) -> Result<String, &'static str> {
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|_| "Enter a full URL, such as https://books.example.com/api/journal.")?;
    let host = url.host_str().unwrap_or_default().to_owned();
    match url.scheme() {
        "https" if !host.is_empty() => Ok(url.to_string()),
        "http" if matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]") => {
            Ok(url.to_string())
        }
        "http" => Err("Use https:// (plain http is allowed only to localhost)."),
        _ => Err("Enter a full URL, such as https://books.example.com/api/journal."),
    }
}

pub async fn save(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let form = Fields::from_pairs(body.into_inner());
    let enabled = form.get("enabled") == "on";
    let raw_url = form.get("url").trim().to_owned();
    let token = form.get("token").trim().to_owned();
    let mut e = FieldErrors::default();
    let format = Format::parse(form.get("format")).unwrap_or_else(|| {
        e.add("format", "Choose a format from the list.");
        Format::Arbor
    });
    let url = if raw_url.is_empty() {
        if enabled {
            e.add(
                "url",
                "Enter the endpoint to post entries to before switching the push on.",
            );
        }
        String::new()
    } else {
        parse_url(&raw_url).unwrap_or_else(|m| {
            e.add("url", m);
            String::new()
        })
    };
    if token.len() > 4096 {
        e.add("token", "The token is longer than 4096 characters.");
    }
    let new = Settings {
        enabled,
        url,
        format,
    };
    if !e.is_empty() {
        return render_page(&req, &ctx, &state, Some((new, raw_url)), e, String::new()).await;
    }
    let actor = Actor::from_ctx(&ctx, &req);
    let key = state.config.secret_key.clone();
    let saved = new.clone();
    ctx.db(&state, move |c| {
        let before = settings(c)?;
        crate::invoicing::repo::put_setting(
            c,
            SETTING,
            serde_json::to_value(&saved).map_err(crate::error::AppError::internal)?,
        )?;
        if !token.is_empty() {
            put_sealed_setting(c, &key, TOKEN, &token)?;
        }
        // The token's value is never recorded, only that it changed.
        audit::record(
            c,
            &actor,
            &Entry::new("settings.accounting_push", "settings", "accounting")
                .before(serde_json::to_value(&before).unwrap_or_default())
                .after(json!({
                    "enabled": saved.enabled,
                    "url": saved.url,
                    "format": saved.format,
                    "token_changed": !token.is_empty(),
                })),
        )
    })
    .await?;
    render_page(
        &req,
        &ctx,
        &state,
        None,
        FieldErrors::default(),
        "Saved.".into(),
    )
    .await
}

pub async fn send_from(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let form = Fields::from_pairs(body.into_inner());
    let raw = form.get("from").trim().to_owned();
    let mut e = FieldErrors::default();
    let from = crate::dates::parse_iso(&raw).ok();
    if from.is_none() {
        e.add("from", format!("{raw:?} is not a date; use YYYY-MM-DD."));
    }
    let Some(from) = from.filter(|_| e.is_empty()) else {
        return render_page(&req, &ctx, &state, None, e, String::new()).await;
    };
    let tenant_id = ctx.tenant.id;
    let actor = Actor::from_ctx(&ctx, &req);
    let queued = ctx
        .db(&state, move |c| {
            if !settings(c)?.enabled {
                let mut e = FieldErrors::default();
                e.add("from", "Switch the push on first.");
                return Err(crate::error::AppError::Validation(e));
            }
            let n = backfill(c, tenant_id, from)?;
            audit::record(
                c,
                &actor,
                &Entry::new("ledger.push_backfill", "settings", "accounting")
                    .after(json!({ "from": from, "queued": n })),
            )?;
            Ok(n)
        })
        .await;
    match queued {
        Ok(n) => {
            state.wakeup.notify();
            render_page(
                &req,
                &ctx,
                &state,
                None,
                FieldErrors::default(),
                format!(
                    "Queued {n} entr{} dated {from} or later.",
                    if n == 1 { "y" } else { "ies" }
                ),
            )
            .await
        }
        Err(crate::error::AppError::Validation(e)) => {
            render_page(&req, &ctx, &state, None, e, String::new()).await
        }
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_except_to_this_machine() {
        assert!(parse_url("https://books.example.com/api/journal").is_ok());
        assert!(parse_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(parse_url("http://localhost/hook").is_ok());
        assert!(parse_url("http://books.example.com/").is_err());
        assert!(parse_url("books.example.com").is_err());
        assert!(parse_url("ftp://books.example.com/").is_err());
    }

    #[test]
    fn the_receivers_id_is_read_from_each_shape() {
        assert_eq!(
            remote_ref(r#"{"JournalEntry":{"Id":"148"}}"#).as_deref(),
            Some("148")
        );
        assert_eq!(
            remote_ref(r#"{"ManualJournals":[{"ManualJournalID":"d5c1"}]}"#).as_deref(),
            Some("d5c1")
        );
        assert_eq!(remote_ref(r#"{"id": 7}"#).as_deref(), Some("7"));
        assert_eq!(remote_ref("not json"), None);
    }
}
