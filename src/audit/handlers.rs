//! The audit page (filters, pagination, CSV export) and per-entity history.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{
    repo::{self, Filter, Row},
    Verification,
};
use crate::{
    auth::permissions::{can, Allowed},
    db,
    error::{AppError, AppResult, FieldErrors},
    tenants::repo as tenants,
    web::{render, AppState},
};

pub const PAGE_SIZE: i64 = 50;

pub struct EntryView {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub ip: String,
    pub action: String,
    pub entity: String,
    pub changes: Vec<(String, String, String)>,
    pub reason: String,
}

fn short(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Field-level differences between `before` and `after` objects.
pub fn diff(
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
) -> Vec<(String, String, String)> {
    let empty = serde_json::Map::new();
    let b = before.and_then(|v| v.as_object()).unwrap_or(&empty);
    let a = after.and_then(|v| v.as_object()).unwrap_or(&empty);
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| b.get(*k) != a.get(*k))
        .map(|k| (k.clone(), short(b.get(k)), short(a.get(k))))
        .collect()
}

impl EntryView {
    pub fn from_row(r: Row) -> Self {
        Self {
            seq: r.seq,
            at: r.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            actor: r.actor_email.unwrap_or_else(|| "system".into()),
            ip: r.ip.unwrap_or_default(),
            action: r.action,
            entity: match r.entity_id {
                Some(id) => format!("{} {}", r.entity_type, id),
                None => r.entity_type,
            },
            changes: diff(r.before.as_ref(), r.after.as_ref()),
            reason: r.reason.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Default, Deserialize, Clone)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub action: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub page: Option<i64>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl AuditQuery {
    /// Parses the filters; a malformed date is reported next to its field.
    pub fn filter(&self) -> Result<Filter, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut date = |field: &str, v: &Option<String>| {
            nonempty(v).and_then(|s| {
                crate::dates::parse_iso(&s)
                    .map_err(|_| errors.add(field, "Use a date like 2026-01-31."))
                    .ok()
            })
        };
        let from = date("from", &self.from);
        let to = date("to", &self.to);
        let actor = nonempty(&self.actor).and_then(|a| a.parse::<i64>().ok());
        errors.clone().into_result().map_err(|_| errors)?;
        Ok(Filter {
            actor,
            entity_type: nonempty(&self.entity_type),
            entity_id: nonempty(&self.entity_id),
            action: nonempty(&self.action),
            from,
            to,
        })
    }

    /// The filters as a query string (for pagination and export links).
    pub fn query_string(&self) -> String {
        let pairs: Vec<(&str, String)> = [
            ("actor", nonempty(&self.actor)),
            ("entity_type", nonempty(&self.entity_type)),
            ("entity_id", nonempty(&self.entity_id)),
            ("action", nonempty(&self.action)),
            ("from", nonempty(&self.from)),
            ("to", nonempty(&self.to)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

#[derive(Template)]
#[template(path = "audit/audit_partial.html")]
pub struct AuditPartial {
    pub base: String,
    pub q: AuditQuery,
    pub qs: String,
    pub errors: FieldErrors,
    pub entries: Vec<EntryView>,
    pub members: Vec<(i64, String)>,
    pub entity_types: Vec<String>,
    pub page: i64,
    pub pages: i64,
    pub total: i64,
    pub chain: String,
    pub chain_ok: bool,
}

pub async fn page(
    req: HttpRequest,
    ctx: Allowed<can::AuditRead>,
    state: web::Data<AppState>,
    q: web::Query<AuditQuery>,
) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let page = q.page.unwrap_or(1).max(1);
    let (filter, errors) = match q.filter() {
        Ok(f) => (f, FieldErrors::default()),
        Err(e) => (Filter::default(), e),
    };
    let tid = ctx.tenant.id;
    let members = db::run(&state.pool, move |c| tenants::members(c, tid)).await?;
    let (rows, total, types, verification) = ctx
        .db(&state, move |c| {
            let (rows, total) = repo::list(c, &filter, PAGE_SIZE, (page - 1) * PAGE_SIZE)?;
            Ok((
                rows,
                total,
                repo::distinct_entity_types(c)?,
                repo::verify(c)?,
            ))
        })
        .await?;
    let (chain, chain_ok) = match verification {
        Verification::Intact { rows } => {
            (format!("Chain intact: all {rows} entries verified."), true)
        }
        Verification::Broken {
            first_bad_seq,
            reason,
            ..
        } => (
            format!("Chain broken at entry #{first_bad_seq}: {reason}."),
            false,
        ),
    };
    let status = render::status_for(errors.is_empty());
    let partial = AuditPartial {
        base: ctx.base(),
        qs: q.query_string(),
        q,
        errors,
        entries: rows.into_iter().map(EntryView::from_row).collect(),
        members: members
            .into_iter()
            .map(|m| (m.user_id, format!("{} ({})", m.name, m.email)))
            .collect(),
        entity_types: types,
        page,
        pages: ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1),
        total,
        chain,
        chain_ok,
    };
    render::page_with_status(
        &req,
        status,
        ctx.layout(&req, "Audit log", "audit"),
        partial,
    )
}

/// CSV of exactly the filtered entries (all pages), oldest first, ids preserved.
pub async fn export_csv(
    ctx: Allowed<can::AuditRead>,
    state: web::Data<AppState>,
    q: web::Query<AuditQuery>,
) -> AppResult<HttpResponse> {
    let filter = q.filter().map_err(AppError::Validation)?;
    let rows = ctx.db(&state, move |c| repo::all(c, &filter)).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| AppError::internal(e);
    w.write_record([
        "seq",
        "id",
        "at_utc",
        "actor_user_id",
        "actor_email",
        "ip",
        "action",
        "entity_type",
        "entity_id",
        "before",
        "after",
        "reason",
    ])
    .map_err(io)?;
    for r in rows {
        w.write_record([
            r.seq.to_string(),
            r.id.to_string(),
            r.at.to_rfc3339(),
            r.actor_user_id.map(|v| v.to_string()).unwrap_or_default(),
            r.actor_email.unwrap_or_default(),
            r.ip.unwrap_or_default(),
            r.action,
            r.entity_type,
            r.entity_id.unwrap_or_default(),
            r.before.map(|v| v.to_string()).unwrap_or_default(),
            r.after.map(|v| v.to_string()).unwrap_or_default(),
            r.reason.unwrap_or_default(),
        ])
        .map_err(io)?;
    }
    let body = w
        .into_inner()
        .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"audit-{}.csv\"", ctx.tenant.slug),
        ))
        .body(body))
}

/// The history of one entity, for detail pages.
#[derive(Template)]
#[template(path = "audit/history_partial.html")]
pub struct HistoryPartial {
    pub entries: Vec<EntryView>,
}

/// A record's history, embedded in its page: the partial escaped its own data.
pub type History = askama::filters::HtmlSafeOutput<HistoryPartial>;

pub fn history(
    conn: &mut diesel::PgConnection,
    entity_type: &str,
    entity_id: &str,
) -> AppResult<History> {
    let f = Filter {
        entity_type: Some(entity_type.into()),
        entity_id: Some(entity_id.into()),
        ..Default::default()
    };
    let (rows, _) = repo::list(conn, &f, 100, 0)?;
    Ok(askama::filters::HtmlSafeOutput(HistoryPartial {
        entries: rows.into_iter().map(EntryView::from_row).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn diff_lists_only_changed_fields() {
        let d = diff(
            Some(&json!({"role": "sales", "name": "A"})),
            Some(&json!({"role": "finance", "name": "A", "x": 1})),
        );
        assert_eq!(
            d,
            vec![
                ("role".into(), "sales".into(), "finance".into()),
                ("x".into(), String::new(), "1".into())
            ]
        );
    }

    #[test]
    fn bad_dates_are_field_errors() {
        let q = AuditQuery {
            from: Some("31/01/2026".into()),
            ..Default::default()
        };
        let e = q.filter().unwrap_err();
        assert!(e.get("from").is_some());
        let q = AuditQuery {
            from: Some("2026-01-31".into()),
            actor: Some("7".into()),
            ..Default::default()
        };
        let f = q.filter().unwrap();
        assert_eq!(f.actor, Some(7));
        assert_eq!(q.query_string(), "actor=7&from=2026-01-31");
    }
}
