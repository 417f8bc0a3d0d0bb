//! Usage by CSV: `subscription,sku,date,quantity,external_id` per row. Every row is checked
//! (line, field, message) and the file is recorded whole or not at all. A row whose external
//! id is already recorded is skipped, so uploading the same file twice adds nothing.

use std::collections::HashMap;

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::NaiveDate;
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use crate::{
    accounts::import::read_upload,
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed},
    db::schema::tenant::{products, subscription_items, subscriptions, usage_records},
    error::AppResult,
    web::{csrf, render, AppState},
};

pub const COLUMNS: [&str; 5] = ["subscription", "sku", "date", "quantity", "external_id"];

#[derive(Template)]
#[template(path = "subscriptions/usage_import_partial.html")]
pub struct UsageImportPartial {
    pub base: String,
    pub csrf_token: String,
    pub columns: [&'static str; 5],
    pub errors: Vec<RowError>,
    pub message: String,
}

pub async fn form(
    req: HttpRequest,
    ctx: Allowed<can::SubscriptionsManage>,
) -> AppResult<HttpResponse> {
    let partial = UsageImportPartial {
        base: ctx.base(),
        csrf_token: csrf::token(&req),
        columns: COLUMNS,
        errors: Vec::new(),
        message: String::new(),
    };
    render::page(&req, ctx.layout(&req, "Import usage", "invoices"), partial)
}

/// `(line, field, message)` of a rejected row.
type RowError = (usize, String, String);

struct Row {
    subscription_id: i64,
    product_id: i64,
    date: NaiveDate,
    quantity: Decimal,
    external_id: String,
}

/// Checks every row against the tenant's subscriptions and their items.
fn check(conn: &mut PgConnection, text: &str) -> AppResult<Result<Vec<Row>, Vec<RowError>>> {
    let subs: HashMap<String, i64> = subscriptions::table
        .select((subscriptions::number, subscriptions::id))
        .load::<(String, i64)>(conn)?
        .into_iter()
        .collect();
    let items: Vec<(i64, String, i64)> = subscription_items::table
        .inner_join(products::table)
        .select((
            subscription_items::subscription_id,
            products::sku,
            products::id,
        ))
        .load(conn)?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.to_lowercase()).collect(),
        Err(e) => {
            return Ok(Err(vec![(
                1,
                "file".into(),
                format!("The header row cannot be read: {e}"),
            )]))
        }
    };
    let mut errors = Vec::new();
    for c in COLUMNS {
        if !headers.iter().any(|h| h == c) {
            errors.push((1, c.to_owned(), format!("The column \"{c}\" is missing.")));
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let col = |rec: &csv::StringRecord, name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .and_then(|i| rec.get(i))
            .unwrap_or("")
            .to_owned()
    };
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, rec) in reader.records().enumerate() {
        let line = i + 2;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                errors.push((line, "file".into(), e.to_string()));
                continue;
            }
        };
        let mut err = |f: &str, m: String| errors.push((line, f.to_owned(), m));
        let number = col(&rec, "subscription");
        let Some(&sid) = subs.get(&number) else {
            err("subscription", format!("No subscription {number:?}."));
            continue;
        };
        let sku = col(&rec, "sku");
        let Some(&(_, _, pid)) = items.iter().find(|(s, k, _)| *s == sid && *k == sku) else {
            err("sku", format!("{number} has no item with SKU {sku:?}."));
            continue;
        };
        let date = match NaiveDate::parse_from_str(&col(&rec, "date"), "%Y-%m-%d") {
            Ok(d) => d,
            Err(_) => {
                err("date", "Use a date like 2026-03-31.".into());
                continue;
            }
        };
        let quantity = match col(&rec, "quantity").replace(',', "").parse::<Decimal>() {
            Ok(q) if q >= Decimal::ZERO => q,
            _ => {
                err("quantity", "Enter a quantity of zero or more.".into());
                continue;
            }
        };
        let external_id = col(&rec, "external_id");
        if external_id.is_empty() || external_id.chars().count() > 200 {
            err(
                "external_id",
                "Each row needs an external id (up to 200 characters) so a re-upload is harmless."
                    .into(),
            );
            continue;
        }
        if !seen.insert(external_id.clone()) {
            err(
                "external_id",
                format!("{external_id} appears twice in this file."),
            );
            continue;
        }
        rows.push(Row {
            subscription_id: sid,
            product_id: pid,
            date,
            quantity,
            external_id,
        });
    }
    Ok(if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    })
}

pub async fn upload(
    req: HttpRequest,
    ctx: Allowed<can::SubscriptionsManage>,
    state: web::Data<AppState>,
    payload: Multipart,
) -> AppResult<HttpResponse> {
    let page = |errors: Vec<RowError>, message: String| {
        let ok = errors.is_empty();
        let partial = UsageImportPartial {
            base: ctx.base(),
            csrf_token: csrf::token(&req),
            columns: COLUMNS,
            errors,
            message,
        };
        render::page_with_status(
            &req,
            render::status_for(ok),
            ctx.layout(&req, "Import usage", "invoices"),
            partial,
        )
    };
    let (filename, bytes, _) = match read_upload(payload).await? {
        Ok(f) => f,
        Err(m) => return page(vec![(0, "file".into(), m)], String::new()),
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return page(
            vec![(
                0,
                "file".into(),
                "The file is not UTF-8 text. Save it as \"CSV UTF-8\".".into(),
            )],
            String::new(),
        );
    };
    let text = text.trim_start_matches('\u{feff}').to_owned();
    let (actor, uid) = (Actor::from_ctx(&ctx, &req), ctx.user.id);
    let outcome = ctx
        .db(&state, move |c| {
            let rows = match check(c, &text)? {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            let mut added = 0;
            for r in &rows {
                added += diesel::insert_into(usage_records::table)
                    .values((
                        usage_records::subscription_id.eq(r.subscription_id),
                        usage_records::product_id.eq(r.product_id),
                        usage_records::usage_date.eq(r.date),
                        usage_records::quantity.eq(r.quantity),
                        usage_records::external_id.eq(&r.external_id),
                        usage_records::source.eq("csv"),
                        usage_records::created_by.eq(Some(uid)),
                    ))
                    .on_conflict(usage_records::external_id)
                    .do_nothing()
                    .execute(c)?;
            }
            audit::record(
                c,
                &actor,
                &Entry::new("usage.imported", "usage", &filename)
                    .after(json!({ "rows": rows.len(), "added": added })),
            )?;
            Ok(Ok((rows.len(), added)))
        })
        .await?;
    match outcome {
        Ok((rows, added)) => page(
            Vec::new(),
            format!(
                "{rows} row(s) read: {added} recorded, {} already recorded before.",
                rows - added
            ),
        ),
        Err(errors) => page(
            errors,
            "Nothing was recorded: fix these rows and upload the file again.".into(),
        ),
    }
}
