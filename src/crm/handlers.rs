//! `/crm`: connectors, their settings and field mapping (with a test against a sample
//! payload), and the inbox of received events with replay. `/settings/webhooks`: outbound
//! webhook endpoints. Admin only (`connectors.manage`).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    mapping::{self, PreviewRow, Spec, Transform, TARGETS},
    outbound::{self, Endpoint, EVENT_TYPES},
    receive,
    repo::{self, Connector, InboxCounts, InboxFilter, InboxRow, Settings},
    KINDS,
};
use crate::{
    accounts::domain::Fields,
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed},
    config::SecretKey,
    error::{AppError, AppResult, FieldErrors},
    tenants::TenantCtx,
    web::{csrf, render, AppState},
};

const PURPOSE: &str = "crm.secret";

pub fn seal_secret(key: &SecretKey, plain: &str) -> AppResult<String> {
    let sealed = crate::crypto::seal(key, PURPOSE, plain.as_bytes()).map_err(AppError::internal)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
}

pub fn open_secret(key: &SecretKey, sealed: &str) -> AppResult<String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .map_err(AppError::internal)?;
    let plain = crate::crypto::open(key, PURPOSE, &raw).map_err(AppError::internal)?;
    String::from_utf8(plain).map_err(AppError::internal)
}

/// A sealed column that may be empty.
pub fn open_optional(key: &SecretKey, sealed: Option<&str>) -> AppResult<Option<String>> {
    sealed.map(|s| open_secret(key, s)).transpose()
}

fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub struct ConnectorView {
    pub c: Connector,
    pub counts: InboxCounts,
    pub url: String,
}

impl ConnectorView {
    /// Held and failed events as a share of the last day's events, in percent.
    pub fn failure_rate(&self) -> String {
        crate::integrations::handlers::HealthPartial::failure_rate(&self.counts)
    }
}

fn receiving_url(state: &AppState, ctx: &TenantCtx, token: &str) -> String {
    format!(
        "{}/hooks/{}/crm/{token}",
        state.config.base_url.trim_end_matches('/'),
        ctx.tenant.slug
    )
}

pub struct InboxView {
    pub row: InboxRow,
    pub connector: String,
}

#[derive(Template)]
#[template(path = "crm/list_partial.html")]
pub struct ListPartial {
    pub base: String,
    pub csrf_token: String,
    pub connectors: Vec<ConnectorView>,
    pub kinds: [(&'static str, &'static str); 3],
    pub inbox: Vec<InboxView>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    pub status: String,
    pub form: Fields,
    pub errors: FieldErrors,
}

#[derive(Debug, Deserialize, Default)]
pub struct InboxQuery {
    #[serde(default)]
    pub status: String,
    pub page: Option<i64>,
}

const STATUSES: [&str; 5] = ["received", "applied", "held", "ignored", "failed"];

async fn render_list(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    q: &InboxQuery,
    form: Fields,
    errors: FieldErrors,
) -> AppResult<HttpResponse> {
    let status = Some(q.status.trim().to_owned()).filter(|s| STATUSES.contains(&s.as_str()));
    let filter = InboxFilter {
        connector_id: None,
        status: status.clone(),
        page: q.page.unwrap_or(1).max(1),
    };
    let f = filter.clone();
    let (list, (rows, total)) = ctx
        .db(state, move |c| {
            let mut out = Vec::new();
            for conn in repo::connectors(c)? {
                let counts = repo::inbox_counts(c, conn.id)?;
                out.push((conn, counts));
            }
            Ok((out, repo::inbox_page(c, &f)?))
        })
        .await?;
    let names: Vec<(i64, String)> = list.iter().map(|(c, _)| (c.id, c.name.clone())).collect();
    let partial = ListPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        connectors: list
            .into_iter()
            .map(|(c, counts)| ConnectorView {
                url: receiving_url(state, ctx, &c.token),
                c,
                counts,
            })
            .collect(),
        kinds: KINDS,
        inbox: rows
            .into_iter()
            .map(|row| InboxView {
                connector: names
                    .iter()
                    .find(|(id, _)| *id == row.connector_id)
                    .map(|(_, n)| n.clone())
                    .unwrap_or_default(),
                row,
            })
            .collect(),
        total,
        page: filter.page,
        pages: ((total + repo::PAGE_SIZE - 1) / repo::PAGE_SIZE).max(1),
        status: status.unwrap_or_default(),
        form,
        errors,
    };
    let code = render::status_for(partial.errors.is_empty());
    render::page_with_status(
        req,
        code,
        ctx.layout(req, "CRM connectors", "settings"),
        partial,
    )
}

pub async fn list(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    q: web::Query<InboxQuery>,
) -> AppResult<HttpResponse> {
    render_list(
        &req,
        &ctx,
        &state,
        &q,
        Fields::default(),
        FieldErrors::default(),
    )
    .await
}

pub async fn create(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let form = Fields::from_pairs(body.into_inner());
    let kind = form.get("kind").trim().to_owned();
    let name = form.get("name").trim().to_owned();
    let mut e = FieldErrors::default();
    if !KINDS.iter().any(|(k, _)| *k == kind) {
        e.add("kind", "Choose HubSpot, Salesforce or a generic webhook.");
    }
    if name.is_empty() || name.chars().count() > 80 {
        e.add("name", "Give the connector a name of 1 to 80 characters.");
    }
    let key = state.config.secret_key.clone();
    let actor = Actor::from_ctx(&ctx, &req);
    let n = name.clone();
    let created = ctx
        .db(&state, move |c| {
            if !e.is_empty() {
                return Ok(Err(e));
            }
            if repo::name_taken(c, &n, None)? {
                e.add("name", "Another connector has this name.");
                return Ok(Err(e));
            }
            let spec = mapping::default_spec(&kind);
            let settings = Settings {
                hubspot_api_base: if kind == "hubspot" {
                    "https://api.hubapi.com".into()
                } else {
                    String::new()
                },
                ..Settings::default()
            };
            let id = repo::create(
                c,
                &kind,
                &n,
                &new_token(),
                &serde_json::to_value(&spec).map_err(AppError::internal)?,
                &serde_json::to_value(&settings).map_err(AppError::internal)?,
            )?;
            // A signing secret from the start: the generic webhook needs one to accept anything.
            if kind == "generic" {
                let secret = format!("whsec_{}", new_token());
                repo::set_secret(c, id, &seal_secret(&key, &secret)?)?;
            }
            audit::record(
                c,
                &actor,
                &Entry::new("crm.connector_created", "crm_connector", id)
                    .after(json!({ "kind": kind, "name": n })),
            )?;
            Ok(Ok(id))
        })
        .await?;
    match created {
        Ok(id) => Ok(render::see_other(&req, &format!("{}/crm/{id}", ctx.base()))),
        Err(errors) => render_list(&req, &ctx, &state, &InboxQuery::default(), form, errors).await,
    }
}

/// One mapping row as the form shows it.
pub struct RuleView {
    pub code: &'static str,
    pub label: &'static str,
    pub required: bool,
    pub help: &'static str,
    pub source: String,
    pub transform: &'static str,
    pub lookup: String,
    pub default: String,
}

fn transform_code(t: &Transform) -> &'static str {
    match t {
        Transform::None => "none",
        Transform::Upper => "upper",
        Transform::Lower => "lower",
        Transform::Date => "date",
        Transform::Decimal => "decimal",
    }
}

fn lookup_text(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn parse_lookup(raw: &str, field: &str, e: &mut FieldErrors) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in raw.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                out.push((k.trim().to_owned(), v.trim().to_owned()))
            }
            _ => e.add(
                field,
                format!(
                    "Write each lookup line as \"CRM value = Arbor value\"; \"{line}\" is not."
                ),
            ),
        }
    }
    out
}

fn rule_views(spec: &Spec) -> Vec<RuleView> {
    TARGETS
        .iter()
        .map(|t| {
            let rule = spec.fields.iter().find(|r| r.target == t.code);
            RuleView {
                code: t.code,
                label: t.label,
                required: t.required,
                help: t.help,
                source: rule.map(|r| r.source.clone()).unwrap_or_default(),
                transform: rule.map_or("none", |r| transform_code(&r.transform)),
                lookup: rule.map(|r| lookup_text(&r.lookup)).unwrap_or_default(),
                default: rule.map(|r| r.default.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

/// The mapping form back into a spec; field errors name the row.
fn spec_from_form(f: &Fields, e: &mut FieldErrors) -> Spec {
    let mut fields = Vec::new();
    for t in TARGETS {
        let source = f.get(&format!("src_{}", t.code)).trim().to_owned();
        let default = f.get(&format!("def_{}", t.code)).trim().to_owned();
        let lookup = parse_lookup(
            f.get(&format!("lk_{}", t.code)),
            &format!("lk_{}", t.code),
            e,
        );
        let transform = match f.get(&format!("tf_{}", t.code)) {
            "upper" => Transform::Upper,
            "lower" => Transform::Lower,
            "date" => Transform::Date,
            "decimal" => Transform::Decimal,
            _ => Transform::None,
        };
        if source.is_empty() && default.is_empty() && lookup.is_empty() {
            continue;
        }
        fields.push(mapping::FieldRule {
            target: t.code.to_owned(),
            source,
            transform,
            lookup,
            default,
        });
    }
    let lines = mapping::LineRule {
        source: f.get("lines_source").trim().to_owned(),
        sku: f.get("lines_sku").trim().to_owned(),
        quantity: f.get("lines_quantity").trim().to_owned(),
        unit_price: f.get("lines_unit_price").trim().to_owned(),
        discount: f.get("lines_discount").trim().to_owned(),
        description: f.get("lines_description").trim().to_owned(),
        sku_lookup: parse_lookup(f.get("lines_sku_lookup"), "lines_sku_lookup", e),
        discount_is_percent: f.flag("lines_discount_is_percent"),
    };
    Spec { fields, lines }
}

#[derive(Template)]
#[template(path = "crm/connector_partial.html")]
pub struct ConnectorPartial {
    pub base: String,
    pub csrf_token: String,
    pub c: Connector,
    pub settings: Settings,
    pub url: String,
    pub secret_set: bool,
    pub token_set: bool,
    pub new_secret: String,
    pub rules: Vec<RuleView>,
    pub lines: mapping::LineRule,
    pub lines_sku_lookup: String,
    pub sample: String,
    pub preview: Vec<PreviewRow>,
    pub preview_error: String,
    pub tested: bool,
    pub counts: InboxCounts,
    pub inbox: Vec<InboxRow>,
    pub errors: FieldErrors,
    pub message: String,
}

struct Shown {
    spec: Option<Spec>,
    sample: Option<String>,
    tested: bool,
    new_secret: String,
    errors: FieldErrors,
    message: String,
}

impl Shown {
    fn plain() -> Self {
        Self {
            spec: None,
            sample: None,
            tested: false,
            new_secret: String::new(),
            errors: FieldErrors::default(),
            message: String::new(),
        }
    }
}

/// The mapping preview of a sample payload: the first event's document.
fn preview_of(c: &Connector, spec: &Spec, sample: &str) -> (Vec<PreviewRow>, String) {
    if sample.trim().is_empty() {
        return (Vec::new(), String::new());
    }
    match receive::sample_events(&c.kind, sample.as_bytes()) {
        Err(e) => (Vec::new(), format!("The sample cannot be read: {e}")),
        Ok(events) => match events.first() {
            None => (Vec::new(), "The sample holds no events.".into()),
            Some(ev) => (
                mapping::preview(spec, &super::process::document(c, ev)),
                String::new(),
            ),
        },
    }
}

async fn render_connector(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    id: i64,
    shown: Shown,
) -> AppResult<HttpResponse> {
    let (c, counts, (inbox, _)) = ctx
        .db(state, move |c| {
            let conn = repo::connector(c, id)?;
            let filter = InboxFilter {
                connector_id: Some(id),
                status: None,
                page: 1,
            };
            Ok((
                conn,
                repo::inbox_counts(c, id)?,
                repo::inbox_page(c, &filter)?,
            ))
        })
        .await?;
    let spec = shown.spec.unwrap_or_else(|| c.spec());
    let sample = shown.sample.unwrap_or_else(|| c.sample_payload.clone());
    let (preview, preview_error) = preview_of(&c, &spec, &sample);
    let partial = ConnectorPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        settings: c.settings(),
        url: receiving_url(state, ctx, &c.token),
        secret_set: c.secret_sealed.is_some(),
        token_set: c.api_token_sealed.is_some(),
        new_secret: shown.new_secret,
        rules: rule_views(&spec),
        lines_sku_lookup: lookup_text(&spec.lines.sku_lookup),
        lines: spec.lines,
        sample,
        preview,
        preview_error,
        tested: shown.tested,
        counts,
        inbox,
        errors: shown.errors,
        message: shown.message,
        c,
    };
    let code = render::status_for(partial.errors.is_empty());
    render::page_with_status(
        req,
        code,
        ctx.layout(req, "CRM connector", "settings"),
        partial,
    )
}

pub async fn detail(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    render_connector(&req, &ctx, &state, path.1, Shown::plain()).await
}

pub async fn save_settings(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let f = Fields::from_pairs(body.into_inner());
    let mut e = FieldErrors::default();
    let name = f.get("name").trim().to_owned();
    if name.is_empty() || name.chars().count() > 80 {
        e.add("name", "Give the connector a name of 1 to 80 characters.");
    }
    let status = if f.flag("active") { "active" } else { "paused" };
    let url_field = |field: &str, e: &mut FieldErrors| -> String {
        let raw = f.get(field).trim();
        if raw.is_empty() {
            return String::new();
        }
        crate::ledger::push::parse_url(raw).unwrap_or_else(|m| {
            e.add(field, m);
            String::new()
        })
    };
    let settings = Settings {
        hubspot_legacy: ["v1", "v2"]
            .iter()
            .filter(|v| f.flag(&format!("hubspot_{v}")))
            .map(|v| (*v).to_owned())
            .collect(),
        hubspot_api_base: url_field("hubspot_api_base", &mut e),
        salesforce_org_id: f.get("salesforce_org_id").trim().to_owned(),
        salesforce_instance_url: url_field("salesforce_instance_url", &mut e),
        writeback: f.flag("writeback"),
        writeback_url: url_field("writeback_url", &mut e),
    };
    let org = &settings.salesforce_org_id;
    if !matches!(org.len(), 0 | 15 | 18) {
        e.add(
            "salesforce_org_id",
            "A Salesforce organization id has 15 or 18 characters (Setup → Company Information).",
        );
    }
    let secret = f.get("secret").trim().to_owned();
    let api_token = f.get("api_token").trim().to_owned();
    let regenerate = f.flag("regenerate_secret");
    let key = state.config.secret_key.clone();
    let actor = Actor::from_ctx(&ctx, &req);
    let result = ctx
        .db(&state, move |c| {
            let before = repo::connector(c, id)?;
            if repo::name_taken(c, &name, Some(id))? {
                e.add("name", "Another connector has this name.");
            }
            if settings.writeback {
                let missing = match before.kind.as_str() {
                    "hubspot" => settings.hubspot_api_base.is_empty().then_some("hubspot_api_base"),
                    "salesforce" => settings.salesforce_instance_url.is_empty().then_some("salesforce_instance_url"),
                    _ => settings.writeback_url.is_empty().then_some("writeback_url"),
                };
                if let Some(field) = missing {
                    e.add(field, "Write-back needs this address.");
                }
            }
            if !e.is_empty() {
                return Ok(Err(e));
            }
            repo::save_settings(c, id, &name, status, &settings)?;
            let mut shown_secret = String::new();
            if regenerate && before.kind == "generic" {
                shown_secret = format!("whsec_{}", new_token());
                repo::set_secret(c, id, &seal_secret(&key, &shown_secret)?)?;
            } else if !secret.is_empty() {
                repo::set_secret(c, id, &seal_secret(&key, &secret)?)?;
            }
            if !api_token.is_empty() {
                repo::set_api_token(c, id, &seal_secret(&key, &api_token)?)?;
            }
            audit::record(
                c,
                &actor,
                &Entry::new("crm.connector_saved", "crm_connector", id)
                    .before(json!({ "name": before.name, "status": before.status, "settings": before.settings }))
                    .after(json!({ "name": name, "status": status, "settings": settings,
                                   "secret_changed": regenerate || !secret.is_empty(),
                                   "api_token_changed": !api_token.is_empty() })),
            )?;
            Ok(Ok(shown_secret))
        })
        .await?;
    let mut shown = Shown::plain();
    match result {
        Ok(secret) => {
            shown.message = "Saved.".into();
            shown.new_secret = secret;
        }
        Err(errors) => shown.errors = errors,
    }
    render_connector(&req, &ctx, &state, id, shown).await
}

/// Saves the mapping (`action=save`) or only shows what the sample maps to (`action=test`).
pub async fn save_mapping(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let f = Fields::from_pairs(body.into_inner());
    let mut e = FieldErrors::default();
    let spec = spec_from_form(&f, &mut e);
    let sample = f.get("sample").to_owned();
    if sample.len() > receive::MAX_BODY {
        e.add("sample", "The sample is larger than 1 MB.");
    }
    let test_only = f.get("action") == "test";
    for p in mapping::validate_spec(&spec) {
        let field = if p.target == "lines" || p.target == "spec" {
            "lines_source".to_owned()
        } else {
            format!("src_{}", p.target)
        };
        e.add(&field, p.message);
    }
    let version: i32 = f.get("version").parse().unwrap_or(0);
    let mut shown = Shown::plain();
    shown.sample = Some(sample.clone());
    if test_only || !e.is_empty() {
        shown.tested = test_only;
        shown.spec = Some(spec);
        shown.errors = e;
        return render_connector(&req, &ctx, &state, id, shown).await;
    }
    let actor = Actor::from_ctx(&ctx, &req);
    let value = serde_json::to_value(&spec).map_err(AppError::internal)?;
    let saved = ctx
        .db(&state, move |c| {
            let before = repo::connector(c, id)?;
            if !repo::save_mapping(c, id, version, &value, &sample)? {
                return Ok(false);
            }
            audit::record(
                c,
                &actor,
                &Entry::new("crm.mapping_saved", "crm_connector", id)
                    .before(before.mapping)
                    .after(value),
            )?;
            Ok(true)
        })
        .await?;
    if saved {
        shown.message = "Mapping saved. Replay held events to apply it.".into();
    } else {
        shown.spec = Some(spec);
        shown.errors.add(
            "lines_source",
            "Someone else saved this mapping since you opened it; your changes are shown, review and save again.",
        );
    }
    render_connector(&req, &ctx, &state, id, shown).await
}

#[derive(Template)]
#[template(path = "crm/event_partial.html")]
pub struct EventPartial {
    pub base: String,
    pub csrf_token: String,
    pub row: InboxRow,
    pub connector: Connector,
    pub event_json: String,
    pub problems: Vec<(String, String)>,
    pub effect: String,
}

pub async fn event(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let (row, connector) = ctx
        .db(&state, move |c| {
            let row = repo::inbox_row(c, id)?;
            let conn = repo::connector(c, row.connector_id)?;
            Ok((row, conn))
        })
        .await?;
    let problems = row
        .problems
        .as_ref()
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["target"].as_str().unwrap_or_default().to_owned(),
                        p["message"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let partial = EventPartial {
        base: ctx.base(),
        csrf_token: csrf::token(&req),
        event_json: serde_json::to_string_pretty(&row.event).unwrap_or_default(),
        effect: row
            .effect
            .as_ref()
            .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
            .unwrap_or_default(),
        problems,
        row,
        connector,
    };
    render::page(&req, ctx.layout(&req, "CRM event", "settings"), partial)
}

/// Replays a held or failed event (after fixing the mapping or the CRM record).
pub async fn replay(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let tenant_id = ctx.tenant.id;
    let actor = Actor::from_ctx(&ctx, &req);
    ctx.db(&state, move |c| {
        let row = repo::inbox_row(c, id)?;
        if !repo::reopen(c, id)? {
            return Err(AppError::Conflict(format!(
                "Only held or failed events can be replayed; this one is {}.",
                row.status
            )));
        }
        receive::enqueue(c, tenant_id, id, &uuid::Uuid::new_v4().simple().to_string())?;
        audit::record(
            c,
            &actor,
            &Entry::new("crm.event_replayed", "crm_event", id)
                .before(json!({ "status": row.status, "reason": row.reason })),
        )
    })
    .await?;
    state.wakeup.notify();
    Ok(render::see_other(
        &req,
        &format!("{}/crm/events/{id}", ctx.base()),
    ))
}

// ---- outbound webhooks ----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "crm/webhooks_partial.html")]
pub struct WebhooksPartial {
    pub base: String,
    pub csrf_token: String,
    pub endpoints: Vec<Endpoint>,
    pub event_types: [&'static str; 10],
    pub form: Fields,
    pub errors: FieldErrors,
    pub new_secret: String,
}

async fn render_webhooks(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    form: Fields,
    errors: FieldErrors,
    new_secret: String,
) -> AppResult<HttpResponse> {
    let endpoints = ctx.db(state, outbound::endpoints).await?;
    let partial = WebhooksPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        endpoints,
        event_types: EVENT_TYPES,
        form,
        errors,
        new_secret,
    };
    let code = render::status_for(partial.errors.is_empty());
    render::page_with_status(req, code, ctx.layout(req, "Webhooks", "settings"), partial)
}

pub async fn webhooks(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    render_webhooks(
        &req,
        &ctx,
        &state,
        Fields::default(),
        FieldErrors::default(),
        String::new(),
    )
    .await
}

pub async fn add_webhook(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let pairs = body.into_inner();
    let types: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "event_types")
        .map(|(_, v)| v.clone())
        .collect();
    let form = Fields::from_pairs(pairs);
    let mut e = FieldErrors::default();
    let url = crate::ledger::push::parse_url(form.get("url")).unwrap_or_else(|m| {
        e.add("url", m);
        String::new()
    });
    if let Some(bad) = types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
        e.add("event_types", format!("{bad} is not an event type."));
    }
    let description = form
        .get("description")
        .trim()
        .chars()
        .take(200)
        .collect::<String>();
    if !e.is_empty() {
        return render_webhooks(&req, &ctx, &state, form, e, String::new()).await;
    }
    let secret = format!("whsec_{}", new_token());
    let sealed = seal_secret(&state.config.secret_key, &secret)?;
    let actor = Actor::from_ctx(&ctx, &req);
    ctx.db(&state, move |c| {
        use crate::db::schema::tenant::webhook_endpoints as we;
        use diesel::prelude::*;
        let id: i64 = diesel::insert_into(we::table)
            .values((
                we::url.eq(&url),
                we::description.eq(&description),
                we::event_types.eq(&types),
                we::secret_sealed.eq(&sealed),
            ))
            .returning(we::id)
            .get_result(c)?;
        audit::record(
            c,
            &actor,
            &Entry::new("webhook.endpoint_created", "webhook_endpoint", id)
                .after(json!({ "url": url, "event_types": types })),
        )
    })
    .await?;
    render_webhooks(
        &req,
        &ctx,
        &state,
        Fields::default(),
        FieldErrors::default(),
        secret,
    )
    .await
}

pub async fn toggle_webhook(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let id = path.1;
    let actor = Actor::from_ctx(&ctx, &req);
    ctx.db(&state, move |c| {
        use crate::db::schema::tenant::webhook_endpoints as we;
        use diesel::prelude::*;
        let status: String = we::table
            .find(id)
            .select(we::status)
            .first(c)
            .optional()?
            .ok_or(AppError::NotFound)?;
        let next = if status == "active" {
            "disabled"
        } else {
            "active"
        };
        diesel::update(we::table.find(id))
            .set(we::status.eq(next))
            .execute(c)?;
        audit::record(
            c,
            &actor,
            &Entry::new("webhook.endpoint_toggled", "webhook_endpoint", id)
                .before(json!({ "status": status }))
                .after(json!({ "status": next })),
        )
    })
    .await?;
    Ok(render::see_other(
        &req,
        &format!("{}/settings/webhooks", ctx.base()),
    ))
}
