//! CSV import of accounts and contacts: upload, preview, commit. Both the preview and the commit run as
//! background jobs with a progress bar, because a large file takes longer than a request
//! should. The commit is all or nothing: one transaction, re-validated, and any row error
//! rolls everything back. The status moves validating → preview → queued → running →
//! done | failed (or discarded); marking done happens in the commit's own transaction, so a
//! job retried after a crash never imports twice.

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::{prelude::*, PgConnection};
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::json;

use super::{
    handlers::policy,
    import_rows::{self, Report},
};
use crate::{
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed},
    db::schema::tenant::imports,
    error::{AppError, AppResult},
    jobs::{kinds, queue},
    tenants::TenantCtx,
    web::{csrf, render, AppState},
};

pub const MAX_BYTES: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = imports)]
pub struct Import {
    pub id: i64,
    pub kind: String,
    pub filename: String,
    pub status: String,
    pub on_duplicate: String,
    pub total_rows: i32,
    pub processed_rows: i32,
    pub error_rows: i32,
    pub duplicate_rows: i32,
    pub report: serde_json::Value,
    pub created_by: Option<i64>,
}

pub(super) fn get(conn: &mut PgConnection, id: i64) -> AppResult<Option<Import>> {
    Ok(imports::table
        .find(id)
        .select(Import::as_select())
        .first(conn)
        .optional()?)
}

#[derive(Template)]
#[template(path = "accounts/import_new_partial.html")]
pub struct NewPartial {
    pub base: String,
    pub csrf_token: String,
    pub error: String,
    pub recent: Vec<(i64, String, String)>,
    pub columns: String,
    pub contact_columns: String,
}

async fn render_new(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    error: String,
) -> AppResult<HttpResponse> {
    let uid = ctx.user.id;
    let recent: Vec<(i64, String, String)> = ctx
        .db(state, move |c| {
            Ok(imports::table
                .filter(imports::created_by.eq(uid))
                .order(imports::id.desc())
                .limit(10)
                .select((imports::id, imports::filename, imports::status))
                .load(c)?)
        })
        .await?;
    let status = render::status_for(error.is_empty());
    let partial = NewPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        error,
        recent,
        columns: super::views::CSV_COLUMNS.join(", "),
        contact_columns: super::csv_io::CONTACT_COLUMNS.join(", "),
    };
    render::page_with_status(
        req,
        status,
        ctx.layout(req, "Import accounts", "accounts"),
        partial,
    )
}

pub async fn new_form(
    req: HttpRequest,
    ctx: Allowed<can::AccountsCreate>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    render_new(&req, &ctx, &state, String::new()).await
}

/// Room for the multipart framing and the small fields sent beside the file.
const FRAMING_BYTES: usize = 64 * 1024;

/// Reads the uploaded file (at most [`MAX_BYTES`]). A body over the limit is refused with
/// 413, before reading it when the client announced its length; a missing or empty file is
/// a message for the form.
pub(crate) async fn read_upload(
    req: &HttpRequest,
    mut payload: Multipart,
) -> AppResult<Result<(String, Vec<u8>, String), String>> {
    let too_large = || {
        AppError::PayloadTooLarge(format!(
            "The file is larger than {}; split it into smaller files.",
            crate::web::body::human(MAX_BYTES)
        ))
    };
    if crate::web::body::declared_length(req).is_some_and(|n| n > MAX_BYTES + FRAMING_BYTES) {
        return Err(too_large());
    }
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut kind = String::from("accounts");
    // Across all parts, so many medium parts cannot add up to an unbounded request.
    let mut total = 0usize;
    while let Some(item) = payload.next().await {
        let mut field = item.map_err(|e| {
            AppError::Validation(crate::error::FieldErrors(vec![(
                "file".into(),
                e.to_string(),
            )]))
        })?;
        let is_file = field.name() == Some("file");
        let filename = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .unwrap_or("upload.csv")
            .chars()
            .take(200)
            .collect::<String>();
        let mut buf = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?;
            total += chunk.len();
            if buf.len() + chunk.len() > MAX_BYTES || total > MAX_BYTES + FRAMING_BYTES {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        if is_file {
            file = Some((filename, buf));
        } else if field.name() == Some("kind") && buf == b"contacts" {
            kind = "contacts".into();
        }
    }
    Ok(file
        .filter(|(_, b)| !b.is_empty())
        .map(|(name, bytes)| (name, bytes, kind))
        .ok_or_else(|| "Choose a CSV file to upload.".to_owned()))
}

/// An uploaded CSV file as text: UTF-8 (a spreadsheet's byte-order mark dropped), or the
/// message telling how to save it.
pub(crate) fn csv_text(bytes: Vec<u8>) -> Result<String, String> {
    let text = String::from_utf8(bytes).map_err(|_| {
        "The file is not UTF-8 text. Save it as \"CSV UTF-8\" and try again.".to_owned()
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

pub use super::import_job::run_job;

pub async fn upload(
    req: HttpRequest,
    ctx: Allowed<can::AccountsCreate>,
    state: web::Data<AppState>,
    payload: Multipart,
) -> AppResult<HttpResponse> {
    let (filename, bytes, kind) = match read_upload(&req, payload).await? {
        Ok(f) => f,
        Err(e) => return render_new(&req, &ctx, &state, e).await,
    };
    let content = match csv_text(bytes) {
        Ok(text) => text,
        Err(e) => return render_new(&req, &ctx, &state, e).await,
    };
    let total = i32::try_from(import_rows::count_rows(&content)).unwrap_or(i32::MAX);
    if total == 0 {
        return render_new(&req, &ctx, &state, "The file has no data rows.".into()).await;
    }
    let (uid, tid, actor) = (ctx.user.id, ctx.tenant.id, Actor::from_ctx(&ctx, &req));
    let id = ctx
        .db(&state, move |c| {
            let id: i64 = diesel::insert_into(imports::table)
                .values((
                    imports::kind.eq(&kind),
                    imports::filename.eq(&filename),
                    imports::content.eq(&content),
                    imports::total_rows.eq(total),
                    imports::created_by.eq(uid),
                ))
                .returning(imports::id)
                .get_result(c)?;
            audit::record(
                c,
                &actor,
                &Entry::new("import.uploaded", "import", id)
                    .after(json!({ "file": filename, "rows": total })),
            )?;
            enqueue(c, tid, id)?;
            Ok(id)
        })
        .await?;
    state.wakeup.notify();
    Ok(render::see_other(
        &req,
        &format!("{}/imports/{id}", ctx.base()),
    ))
}

fn enqueue(c: &mut PgConnection, tenant_id: i64, import_id: i64) -> AppResult<()> {
    let mut job = queue::NewJob::new(
        kinds::ACCOUNTS_IMPORT,
        Some(tenant_id),
        json!({ "import_id": import_id }),
    );
    job.max_attempts = 3;
    queue::enqueue(c, &job)?;
    Ok(())
}

#[derive(Template)]
#[template(path = "accounts/import_partial.html")]
pub struct ShowPartial {
    pub base: String,
    pub csrf_token: String,
    pub import: Import,
    pub report: Report,
    pub percent: i32,
    pub shown: Vec<import_rows::RowProblem>,
}

pub async fn show(
    req: HttpRequest,
    ctx: Allowed<can::AccountsCreate>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().1;
    let uid = ctx.user.id;
    let restrict = policy(&ctx).owner_only.is_some();
    let import = ctx
        .db(&state, move |c| get(c, id))
        .await?
        .ok_or(AppError::NotFound)?;
    if restrict && import.created_by != Some(uid) {
        return Err(AppError::NotFound);
    }
    let report: Report = serde_json::from_value(import.report.clone()).unwrap_or_default();
    let percent = if import.total_rows > 0 {
        (import.processed_rows * 100 / import.total_rows).min(100)
    } else {
        0
    };
    let partial = ShowPartial {
        base: ctx.base(),
        csrf_token: csrf::token(&req),
        shown: report.problems.iter().take(500).cloned().collect(),
        report,
        percent,
        import,
    };
    render::page(
        &req,
        ctx.layout(&req, "Import accounts", "accounts"),
        partial,
    )
}

#[derive(Debug, Deserialize)]
pub struct CommitForm {
    #[serde(default)]
    pub on_duplicate: String,
}

pub async fn commit(
    req: HttpRequest,
    ctx: Allowed<can::AccountsCreate>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<CommitForm>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().1;
    let (uid, tid, actor) = (ctx.user.id, ctx.tenant.id, Actor::from_ctx(&ctx, &req));
    let on_dup = if form.on_duplicate == "create" {
        "create"
    } else {
        "skip"
    };
    ctx.db(&state, move |c| {
        let i = get(c, id)?.ok_or(AppError::NotFound)?;
        if i.created_by != Some(uid) {
            return Err(AppError::NotFound);
        }
        let report: Report = serde_json::from_value(i.report.clone()).unwrap_or_default();
        if i.status != "preview" {
            return Err(AppError::Conflict(
                "This import is no longer waiting for confirmation.".into(),
            ));
        }
        if !report.ok() {
            return Err(AppError::Conflict(
                "Fix the errors in the file and upload it again; nothing was written.".into(),
            ));
        }
        diesel::update(imports::table.find(id))
            .set((
                imports::status.eq("queued"),
                imports::on_duplicate.eq(on_dup),
                imports::processed_rows.eq(0),
            ))
            .execute(c)?;
        audit::record(
            c,
            &actor,
            &Entry::new("import.confirmed", "import", id).after(json!({ "on_duplicate": on_dup })),
        )?;
        enqueue(c, tid, id)
    })
    .await?;
    state.wakeup.notify();
    Ok(render::see_other(
        &req,
        &format!("{}/imports/{id}", ctx.base()),
    ))
}

pub async fn discard(
    req: HttpRequest,
    ctx: Allowed<can::AccountsCreate>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().1;
    let (uid, actor) = (ctx.user.id, Actor::from_ctx(&ctx, &req));
    ctx.db(&state, move |c| {
        let i = get(c, id)?.ok_or(AppError::NotFound)?;
        if i.created_by != Some(uid) {
            return Err(AppError::NotFound);
        }
        if !matches!(i.status.as_str(), "preview" | "failed" | "validating") {
            return Err(AppError::Conflict(
                "Only an import that was not committed can be discarded.".into(),
            ));
        }
        diesel::update(imports::table.find(id))
            .set((imports::status.eq("discarded"), imports::content.eq("")))
            .execute(c)?;
        audit::record(c, &actor, &Entry::new("import.discarded", "import", id))
    })
    .await?;
    Ok(render::see_other(
        &req,
        &format!("{}/imports/new", ctx.base()),
    ))
}
