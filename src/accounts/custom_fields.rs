//! Custom fields on accounts, defined per tenant by admins: text, number, date or choice,
//! optionally required. Archiving a field hides it from forms and exports but keeps values.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::json;

use super::{domain::CustomFieldDef, repo};
use crate::{
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed},
    db::schema::tenant::custom_field_defs as defs,
    error::{AppError, AppResult, FieldErrors},
    tenants::TenantCtx,
    web::{csrf, render, AppState},
};

#[derive(Debug, Deserialize, Default, Clone)]
pub struct DefForm {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub choices: String,
    #[serde(default)]
    pub required: String,
}

#[derive(Template)]
#[template(path = "accounts/custom_fields_partial.html")]
pub struct CustomFieldsPartial {
    pub base: String,
    pub csrf_token: String,
    pub defs: Vec<CustomFieldDef>,
    pub form: DefForm,
    pub errors: FieldErrors,
}

async fn render_page(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    form: DefForm,
    errors: FieldErrors,
) -> AppResult<HttpResponse> {
    let list = ctx.db(state, repo::custom_field_defs).await?;
    let status = render::status_for(errors.is_empty());
    let partial = CustomFieldsPartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        defs: list,
        form,
        errors,
    };
    render::page_with_status(
        req,
        status,
        ctx.layout(req, "Custom fields", "settings"),
        partial,
    )
}

pub async fn page(
    req: HttpRequest,
    ctx: Allowed<can::SettingsManage>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    render_page(
        &req,
        &ctx,
        &state,
        DefForm {
            kind: "text".into(),
            ..Default::default()
        },
        FieldErrors::default(),
    )
    .await
}

/// A parsed definition: `(key, label, kind, choices, required)`.
pub fn parse(f: &DefForm) -> Result<(String, String, String, Vec<String>, bool), FieldErrors> {
    let mut e = FieldErrors::default();
    let label = f.label.trim().to_owned();
    if label.is_empty() || label.chars().count() > 80 {
        e.add("label", "Enter a label of at most 80 characters.");
    }
    let key = if f.key.trim().is_empty() {
        label
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
    } else {
        f.key.trim().to_lowercase()
    };
    let key = key.trim_matches('_').to_owned();
    let key_ok = key.len() <= 40
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !key_ok {
        e.add(
            "key",
            "Use a key of letters a–z, digits and underscores, starting with a letter.",
        );
    }
    let kind = f.kind.trim().to_owned();
    if !["text", "number", "date", "choice"].contains(&kind.as_str()) {
        e.add("kind", "Choose text, number, date or choice.");
    }
    let mut choices: Vec<String> = f
        .choices
        .split([',', '\n'])
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    choices.dedup();
    if kind == "choice" && choices.is_empty() {
        e.add("choices", "List the choices, separated by commas.");
    }
    if kind != "choice" {
        choices.clear();
    }
    e.into_result().map_err(|err| match err {
        AppError::Validation(fe) => fe,
        _ => FieldErrors::default(),
    })?;
    Ok((
        key,
        label,
        kind,
        choices,
        matches!(f.required.as_str(), "on" | "yes" | "true"),
    ))
}

pub async fn add(
    req: HttpRequest,
    ctx: Allowed<can::SettingsManage>,
    state: web::Data<AppState>,
    form: web::Form<DefForm>,
) -> AppResult<HttpResponse> {
    let form = form.into_inner();
    let (key, label, kind, choices, required) = match parse(&form) {
        Ok(v) => v,
        Err(errors) => return render_page(&req, &ctx, &state, form, errors).await,
    };
    let actor = Actor::from_ctx(&ctx, &req);
    let saved = ctx
        .db(&state, move |c| {
            let exists: i64 = defs::table.filter(defs::key.eq(&key)).count().get_result(c)?;
            if exists > 0 {
                return Ok(false);
            }
            let position: Option<i32> = defs::table.select(diesel::dsl::max(defs::position)).first(c)?;
            let id: i64 = diesel::insert_into(defs::table)
                .values((
                    defs::key.eq(&key),
                    defs::label.eq(&label),
                    defs::kind.eq(&kind),
                    defs::choices.eq(&choices),
                    defs::required.eq(required),
                    defs::position.eq(position.unwrap_or(0) + 1),
                ))
                .returning(defs::id)
                .get_result(c)?;
            audit::record(c, &actor, &Entry::new("custom_field.created", "custom_field", id)
                .after(json!({ "key": key, "label": label, "kind": kind, "choices": choices, "required": required })))?;
            Ok(true)
        })
        .await?;
    if !saved {
        let mut errors = FieldErrors::default();
        errors.add(
            "key",
            "A field with this key exists (perhaps archived); choose another key.",
        );
        return render_page(&req, &ctx, &state, form, errors).await;
    }
    Ok(render::see_other(
        &req,
        &format!("{}/settings/custom-fields", ctx.base()),
    ))
}

pub async fn archive(
    req: HttpRequest,
    ctx: Allowed<can::SettingsManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().1;
    let actor = Actor::from_ctx(&ctx, &req);
    ctx.db(&state, move |c| {
        let n = diesel::update(defs::table.find(id).filter(defs::archived.eq(false)))
            .set(defs::archived.eq(true))
            .execute(c)?;
        if n == 0 {
            return Err(AppError::NotFound);
        }
        audit::record(
            c,
            &actor,
            &Entry::new("custom_field.archived", "custom_field", id),
        )
    })
    .await?;
    Ok(render::see_other(
        &req,
        &format!("{}/settings/custom-fields", ctx.base()),
    ))
}
