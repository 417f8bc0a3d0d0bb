//! The import job: validates (status `validating`) or commits (`queued`/`running`) an
//! import in one tenant transaction, reporting progress through a second connection.

use chrono::Utc;
use diesel::{prelude::*, PgConnection};
use serde_json::json;

use super::{
    handlers::default_currency,
    import::get,
    import_rows::{self, Context, OnDuplicate, Report},
    service::Policy,
};
use crate::{
    audit::{self, Actor, Entry},
    db::{self, schema::tenant::imports, scope::TenantSchema},
    error::{AppError, AppResult},
    jobs::{queue, JobFailure},
    web::AppState,
};

/// Why an import's transaction rolled back: a report to keep (preview, row errors) or a
/// failure to retry.
enum Rollback {
    Report(Report),
    Failed(AppError),
}

impl From<diesel::result::Error> for Rollback {
    fn from(e: diesel::result::Error) -> Self {
        Rollback::Failed(e.into())
    }
}

/// The job: validates (status `validating`) or commits (`queued`/`running`) an import.
pub async fn run_job(state: &AppState, job: &queue::Job) -> Result<(), JobFailure> {
    let tenant_id = job
        .tenant_id
        .ok_or_else(|| JobFailure::permanent("import job without tenant"))?;
    let import_id = job
        .payload
        .get("import_id")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| JobFailure::permanent("import job without import_id"))?;
    let schema_name = db::run(&state.pool, move |c| {
        crate::tenants::repo::schema_of(c, tenant_id)
    })
    .await?
    .ok_or_else(|| JobFailure::permanent("tenant no longer exists"))?;
    let schema = TenantSchema::parse(&schema_name).map_err(JobFailure::permanent)?;
    let members = db::run(&state.pool, move |c| {
        crate::tenants::repo::members(c, tenant_id)
    })
    .await?;
    let pool = state.pool.clone();
    let last_attempt = job.attempts >= job.max_attempts;
    let s2 = schema.clone();
    let result = db::run(&state.pool, move |c| {
        run_import(c, &pool, &schema, import_id, &members)
    })
    .await;
    if let Err(e) = result {
        if last_attempt {
            // Nothing was written (the transaction rolled back); say so instead of spinning.
            let report = Report {
                file_errors: vec!["The import stopped on an internal error; nothing was written. Try again or contact support.".into()],
                ..Report::default()
            };
            db::run(&state.pool, move |c| {
                db::scope::in_tenant(c, &s2, |c| {
                    finish(c, &Actor::system(), import_id, &report, "failed")
                })
            })
            .await?;
        }
        return Err(e.into());
    }
    Ok(())
}

fn run_import(
    c: &mut PgConnection,
    pool: &db::PgPool,
    schema: &TenantSchema,
    import_id: i64,
    members: &[crate::tenants::repo::Member],
) -> AppResult<()> {
    let Some((import, content, currency)) = db::scope::in_tenant(c, schema, |c| {
        let i = get(c, import_id)?;
        let content: String = imports::table
            .find(import_id)
            .select(imports::content)
            .first(c)?;
        Ok(i.map(|i| {
            (
                i,
                content,
                default_currency(c).unwrap_or_else(|_| "USD".into()),
            )
        }))
    })?
    else {
        return Ok(());
    };
    let preview = match import.status.as_str() {
        "validating" => true,
        "queued" | "running" => false,
        _ => return Ok(()), // already handled
    };
    if !preview {
        db::scope::in_tenant(c, schema, |c| {
            diesel::update(imports::table.find(import_id))
                .set(imports::status.eq("running"))
                .execute(c)?;
            Ok(())
        })?;
    }
    let member = members
        .iter()
        .find(|m| Some(m.user_id) == import.created_by);
    let actor = Actor {
        user_id: import.created_by,
        email: member.map(|m| m.email.clone()),
        ip: None,
    };
    // The importer's role decides what the rows may set, as in the forms.
    let role = member.and_then(|m| m.role.parse::<crate::auth::Role>().ok());
    let policy = Policy {
        terms: role.is_some_and(|r| {
            crate::auth::permissions::allows(
                r,
                crate::auth::permissions::Permission::AccountsEditTerms,
            )
        }),
        owner_only: (role == Some(crate::auth::Role::Sales))
            .then_some(import.created_by)
            .flatten(),
    };
    let cx = Context {
        actor: &actor,
        members,
        policy,
        currency,
        on_duplicate: if import.on_duplicate == "create" {
            OnDuplicate::Create
        } else {
            OnDuplicate::Skip
        },
        import_id,
    };
    // Progress goes through a second connection: the import's own transaction is not
    // visible until it commits.
    let mut progress = |n: usize| {
        if let Ok(mut c2) = pool.get() {
            let _ = db::scope::in_tenant(&mut c2, schema, |c| {
                diesel::update(imports::table.find(import_id))
                    .set(imports::processed_rows.eq(i32::try_from(n).unwrap_or(i32::MAX)))
                    .execute(c)?;
                Ok(())
            });
        }
    };
    let report = db::scope::in_tenant(c, schema, |c| {
        let outcome = c.transaction::<(), Rollback, _>(|c| {
            let apply = if import.kind == "contacts" {
                super::import_contacts::apply
            } else {
                import_rows::apply
            };
            let report = apply(c, &cx, &content, &mut progress).map_err(Rollback::Failed)?;
            if preview || !report.ok() {
                return Err(Rollback::Report(report));
            }
            finish(c, &actor, import_id, &report, "done").map_err(Rollback::Failed)
        });
        match outcome {
            Ok(()) => Ok(None),
            Err(Rollback::Report(report)) => Ok(Some(report)),
            Err(Rollback::Failed(e)) => Err(e),
        }
    })?;
    if let Some(report) = report {
        let status = if preview { "preview" } else { "failed" };
        db::scope::in_tenant(c, schema, |c| finish(c, &actor, import_id, &report, status))?;
    }
    Ok(())
}

fn finish(
    c: &mut PgConnection,
    actor: &Actor,
    import_id: i64,
    report: &Report,
    status: &str,
) -> AppResult<()> {
    diesel::update(imports::table.find(import_id))
        .set((
            imports::status.eq(status),
            imports::report.eq(serde_json::to_value(report).unwrap_or_default()),
            imports::error_rows.eq(i32::try_from(report.errors).unwrap_or(i32::MAX)),
            imports::duplicate_rows.eq(i32::try_from(report.duplicates).unwrap_or(i32::MAX)),
            imports::processed_rows.eq(i32::try_from(report.rows).unwrap_or(i32::MAX)),
            imports::finished_at.eq(Some(Utc::now())),
        ))
        .execute(c)?;
    if status != "preview" {
        audit::record(
            c,
            actor,
            &Entry::new(&format!("import.{status}"), "import", import_id).after(json!({
                "created": report.creates, "updated": report.updates, "skipped": report.skipped,
                "errors": report.errors, "rows": report.rows,
            })),
        )?;
    }
    Ok(())
}
