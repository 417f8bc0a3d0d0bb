//! `/ledger/accounts`: the chart of accounts and the GL mapping rules editor
//! (`connectors.manage`). Rule changes retire the old row and add the next version; every
//! change is audited with before and after.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::prelude::*;
use serde_json::json;

use super::repo::{self, GlAccount, RuleRow};
use crate::{
    accounts::domain::Fields,
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed},
    db::schema::tenant::{gl_accounts, gl_mapping_rules as rules, products},
    error::{AppError, AppResult, FieldErrors},
    money::Currency,
    web::{csrf, render, AppState},
};

pub struct RuleView {
    pub row: RuleRow,
    pub product: String,
    pub fallback: bool,
}

#[derive(Template)]
#[template(path = "ledger/chart_partial.html")]
pub struct ChartPartial {
    pub base: String,
    pub csrf_token: String,
    pub accounts: Vec<GlAccount>,
    pub rules: Vec<RuleView>,
    pub products: Vec<(i64, String)>,
    pub has_fallback: bool,
}

pub async fn page(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let (accounts, rows, products) = ctx
        .db(&state, |c| {
            let products: Vec<(i64, String)> = products::table
                .order(products::name)
                .select((products::id, products::name))
                .load(c)?;
            Ok((repo::chart(c)?, repo::all_rules(c)?, products))
        })
        .await?;
    let rules: Vec<RuleView> = rows
        .into_iter()
        .map(|row| RuleView {
            product: row
                .product_id
                .and_then(|p| products.iter().find(|x| x.0 == p))
                .map(|p| p.1.clone())
                .unwrap_or_else(|| "Any".into()),
            fallback: row.rule().is_fallback(),
            row,
        })
        .collect();
    let partial = ChartPartial {
        base: ctx.base(),
        csrf_token: csrf::token(&req),
        has_fallback: rules.iter().any(|r| r.fallback && r.row.active),
        accounts,
        rules,
        products,
    };
    render::page(
        &req,
        ctx.layout(&req, "Chart of accounts", "ledger"),
        partial,
    )
}

fn back(req: &HttpRequest, ctx: &Allowed<can::ConnectorsManage>) -> HttpResponse {
    render::see_other(req, &format!("{}/ledger/accounts", ctx.base()))
}

/// Adds an account to the chart.
pub async fn add_account(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let f = Fields::from_pairs(body.into_inner());
    let (code, name, kind) = (
        f.get("code").trim().to_owned(),
        f.get("name")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        f.get("kind").trim().to_owned(),
    );
    let mut e = FieldErrors::default();
    let code_ok = !code.is_empty()
        && code.len() <= 20
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && code.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !code_ok {
        e.add(
            "code",
            "Use up to 20 letters, digits, - or _, starting with a letter or digit.",
        );
    }
    if name.is_empty() || name.chars().count() > 80 || name.contains([':', ';', '"', '\\']) {
        e.add(
            "name",
            "Give a name of up to 80 characters without : ; \" or \\.",
        );
    }
    if !matches!(
        kind.as_str(),
        "asset" | "liability" | "equity" | "income" | "expense"
    ) {
        e.add(
            "kind",
            "Choose asset, liability, equity, income or expense.",
        );
    }
    e.into_result()?;
    let actor = Actor::from_ctx(&ctx, &req);
    ctx.db(&state, move |c| {
        let exists: i64 = gl_accounts::table
            .filter(gl_accounts::code.eq(&code))
            .count()
            .get_result(c)?;
        if exists > 0 {
            let mut e = FieldErrors::default();
            e.add("code", format!("Account {code} already exists."));
            return Err(AppError::Validation(e));
        }
        diesel::insert_into(gl_accounts::table)
            .values((
                gl_accounts::code.eq(&code),
                gl_accounts::name.eq(&name),
                gl_accounts::kind.eq(&kind),
            ))
            .execute(c)?;
        audit::record(
            c,
            &actor,
            &Entry::new("gl_account.created", "gl_account", &code)
                .after(json!({ "code": code, "name": name, "kind": kind })),
        )
    })
    .await?;
    Ok(back(&req, &ctx))
}

fn opt(raw: &str) -> Option<String> {
    let t = raw.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// Adds a rule, or the next version of the active rule with the same product, entity and
/// currency.
pub async fn save_rule(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let f = Fields::from_pairs(body.into_inner());
    let mut e = FieldErrors::default();
    let product_id = match opt(f.get("product_id")) {
        None => None,
        Some(p) => p.parse::<i64>().map(Some).unwrap_or_else(|_| {
            e.add("product_id", "Choose a product from the list.");
            None
        }),
    };
    let entity = opt(f.get("entity"));
    if entity.as_ref().is_some_and(|x| x.len() > 40) {
        e.add(
            "entity",
            "An entity is an account number of up to 40 characters.",
        );
    }
    let currency = match opt(f.get("currency")) {
        None => None,
        Some(c) => Currency::parse(&c)
            .map(|c| Some(c.code().to_owned()))
            .unwrap_or_else(|m| {
                e.add("currency", m);
                None
            }),
    };
    let revenue = f.get("revenue_account").trim().to_owned();
    let deferred = f.get("deferred_account").trim().to_owned();
    e.into_result()?;
    let actor = Actor::from_ctx(&ctx, &req);
    let uid = ctx.user.id;
    ctx.db(&state, move |c| {
        let chart = repo::chart(c)?;
        let mut e = FieldErrors::default();
        for (field, code) in [
            ("revenue_account", &revenue),
            ("deferred_account", &deferred),
        ] {
            if !chart.iter().any(|a| &a.code == code) {
                e.add(field, "Choose an account of the chart.");
            }
        }
        if let Some(p) = product_id {
            let n: i64 = products::table.find(p).count().get_result(c)?;
            if n == 0 {
                e.add("product_id", "Choose a product from the list.");
            }
        }
        e.into_result()?;
        let current: Option<RuleRow> = rules::table
            .filter(rules::active.eq(true))
            .filter(rules::product_id.is_not_distinct_from(product_id))
            .filter(rules::entity.is_not_distinct_from(entity.clone()))
            .filter(rules::currency.is_not_distinct_from(currency.clone()))
            .select(RuleRow::as_select())
            .for_update()
            .first(c)
            .optional()?;
        if let Some(old) = &current {
            retire(c, old.id)?;
        }
        let id: i64 = diesel::insert_into(rules::table)
            .values((
                rules::product_id.eq(product_id),
                rules::entity.eq(&entity),
                rules::currency.eq(&currency),
                rules::revenue_account.eq(&revenue),
                rules::deferred_account.eq(&deferred),
                rules::version.eq(current.as_ref().map_or(1, |o| o.version + 1)),
                rules::replaces_id.eq(current.as_ref().map(|o| o.id)),
                rules::created_by.eq(Some(uid)),
            ))
            .returning(rules::id)
            .get_result(c)?;
        let mut entry = Entry::new("gl_mapping.saved", "gl_mapping_rule", id).after(json!({
            "product_id": product_id, "entity": entity, "currency": currency,
            "revenue_account": revenue, "deferred_account": deferred,
        }));
        if let Some(old) = current {
            entry = entry.before(json!({
                "id": old.id, "version": old.version,
                "revenue_account": old.revenue_account, "deferred_account": old.deferred_account,
            }));
        }
        audit::record(c, &actor, &entry)
    })
    .await?;
    Ok(back(&req, &ctx))
}

fn retire(c: &mut PgConnection, id: i64) -> AppResult<()> {
    diesel::update(rules::table.find(id))
        .set((
            rules::active.eq(false),
            rules::retired_at.eq(Some(chrono::Utc::now())),
        ))
        .execute(c)?;
    Ok(())
}

/// Retires a rule (form field `id`). The fallback is required: change it instead.
pub async fn retire_rule(
    req: HttpRequest,
    ctx: Allowed<can::ConnectorsManage>,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let f = Fields::from_pairs(body.into_inner());
    let id: i64 = f.get("id").trim().parse().map_err(|_| AppError::NotFound)?;
    let actor = Actor::from_ctx(&ctx, &req);
    ctx.db(&state, move |c| {
        let row: RuleRow = rules::table
            .find(id)
            .filter(rules::active.eq(true))
            .select(RuleRow::as_select())
            .for_update()
            .first(c)
            .optional()?
            .ok_or(AppError::NotFound)?;
        if row.rule().is_fallback() {
            return Err(AppError::Conflict(
                "The fallback rule is required; change its accounts instead of removing it.".into(),
            ));
        }
        retire(c, id)?;
        audit::record(
            c,
            &actor,
            &Entry::new("gl_mapping.retired", "gl_mapping_rule", id).before(json!({
                "product_id": row.product_id, "entity": row.entity, "currency": row.currency,
                "revenue_account": row.revenue_account, "deferred_account": row.deferred_account,
            })),
        )
    })
    .await?;
    Ok(back(&req, &ctx))
}
