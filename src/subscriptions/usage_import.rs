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
    accounts::{
        csv_io::record_line,
        import::{csv_text, read_upload},
    },
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed},
    dates,
    db::schema::tenant::{products, subscription_items, subscriptions, usage_records},
    error::AppResult,
    money,
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

/// `(line, field, message)` of a rejected row; line 1 is the header.
type RowError = (usize, String, String);

#[derive(Debug, Clone, PartialEq)]
struct Row {
    subscription_id: i64,
    product_id: i64,
    date: NaiveDate,
    quantity: Decimal,
    external_id: String,
}

/// The tenant's subscriptions (by number) and their items (subscription, SKU, product), which
/// rows refer to.
#[derive(Debug, Default)]
struct Known {
    subscriptions: HashMap<String, i64>,
    items: Vec<(i64, String, i64)>,
}

fn known(conn: &mut PgConnection) -> AppResult<Known> {
    let subscriptions = subscriptions::table
        .select((subscriptions::number, subscriptions::id))
        .load::<(String, i64)>(conn)?
        .into_iter()
        .collect();
    let items = subscription_items::table
        .inner_join(products::table)
        .select((
            subscription_items::subscription_id,
            products::sku,
            products::id,
        ))
        .load(conn)?;
    Ok(Known {
        subscriptions,
        items,
    })
}

/// Checks every row of `text` against the tenant's subscriptions and their items. Pure.
fn check(text: &str, known: &Known) -> Result<Vec<Row>, Vec<RowError>> {
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_lowercase).collect(),
        Err(e) => {
            return Err(vec![(
                1,
                "file".into(),
                format!("The header row cannot be read: {e}"),
            )])
        }
    };
    let mut errors = Vec::new();
    for c in COLUMNS {
        if !headers.iter().any(|h| h == c) {
            errors.push((1, c.to_owned(), format!("The column \"{c}\" is missing.")));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
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
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                errors.push((
                    record_line(text, e.position(), i + 2),
                    "file".into(),
                    e.to_string(),
                ));
                continue;
            }
        };
        let line = record_line(text, rec.position(), i + 2);
        let mut err = |f: &str, m: String| errors.push((line, f.to_owned(), m));
        let number = col(&rec, "subscription");
        let Some(&sid) = known.subscriptions.get(&number) else {
            err("subscription", format!("No subscription {number:?}."));
            continue;
        };
        let sku = col(&rec, "sku");
        let Some(&(_, _, pid)) = known.items.iter().find(|(s, k, _)| *s == sid && *k == sku) else {
            err("sku", format!("{number} has no item with SKU {sku:?}."));
            continue;
        };
        let Ok(date) = dates::parse_iso(&col(&rec, "date")) else {
            err("date", "Use a date like 2026-03-31.".into());
            continue;
        };
        let quantity = match money::parse_amount(&col(&rec, "quantity")) {
            Ok(q) if q >= Decimal::ZERO => q,
            Ok(_) => {
                err("quantity", "Enter a quantity of zero or more.".into());
                continue;
            }
            Err(m) => {
                err("quantity", format!("{m} Enter a quantity of zero or more."));
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
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
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
    let (filename, bytes, _) = match read_upload(&req, payload).await? {
        Ok(f) => f,
        Err(m) => return page(vec![(0, "file".into(), m)], String::new()),
    };
    let text = match csv_text(bytes) {
        Ok(text) => text,
        Err(m) => return page(vec![(0, "file".into(), m)], String::new()),
    };
    let (actor, uid) = (Actor::from_ctx(&ctx, &req), ctx.user.id);
    let outcome = ctx
        .db(&state, move |c| {
            let rows = match check(&text, &known(c)?) {
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

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use proptest::prelude::*;

    use super::*;

    /// Two subscriptions: SUB-1 with items API (product 10) and SEATS (11), SUB-2 with API (20).
    fn known() -> Known {
        Known {
            subscriptions: [("SUB-1".to_owned(), 1), ("SUB-2".to_owned(), 2)].into(),
            items: vec![
                (1, "API".into(), 10),
                (1, "SEATS".into(), 11),
                (2, "API".into(), 20),
            ],
        }
    }

    fn file(rows: &[[String; 5]], crlf: bool) -> (String, Vec<usize>) {
        let mut w = csv::WriterBuilder::new()
            .terminator(if crlf {
                csv::Terminator::CRLF
            } else {
                csv::Terminator::Any(b'\n')
            })
            .from_writer(Vec::new());
        w.write_record(COLUMNS).unwrap();
        w.flush().unwrap();
        let mut lines = Vec::new();
        let mut text = String::from_utf8(w.get_ref().clone()).unwrap();
        for r in rows {
            lines.push(1 + text.matches('\n').count());
            w.write_record(r).unwrap();
            w.flush().unwrap();
            text = String::from_utf8(w.get_ref().clone()).unwrap();
        }
        (text, lines)
    }

    #[test]
    fn a_quantity_with_a_fifth_decimal_is_refused_with_its_line() {
        // Before: accepted, then rounded to four places by the NUMERIC(19,4) column.
        let text = "subscription,sku,date,quantity,external_id\nSUB-1,API,2026-01-05,0.00001,e1\n";
        let errors = check(text, &known()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].0, errors[0].1.as_str()), (2, "quantity"));
        assert!(errors[0].2.contains("decimal places"), "{errors:?}");
    }

    #[test]
    fn a_missing_column_is_named_on_the_header_line() {
        let errors = check("\u{feff}subscription,sku,date,quantity\n", &known()).unwrap_err();
        assert_eq!(
            errors,
            [(
                1,
                "external_id".into(),
                "The column \"external_id\" is missing.".into()
            )]
        );
    }

    fn good_row() -> impl Strategy<Value = [String; 5]> {
        (
            prop::sample::select(vec![("SUB-1", "API"), ("SUB-1", "SEATS"), ("SUB-2", "API")]),
            (0i64..3000).prop_map(|d| {
                NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + chrono::Duration::days(d)
            }),
            (0i64..10_000_000_000, 0u32..=4).prop_map(|(u, s)| Decimal::new(u, s)),
            "[ -~]{1,40}|\\PC{1,10}|\"q,\r\nx\"",
        )
            .prop_map(|((sub, sku), date, qty, ext)| {
                [
                    sub.into(),
                    sku.into(),
                    date.to_string(),
                    qty.to_string(),
                    ext,
                ]
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn arbitrary_bytes_never_panic_and_errors_name_a_line(
            bytes in prop::collection::vec(any::<u8>(), 0..400)
        ) {
            if let Ok(text) = crate::accounts::import::csv_text(bytes) {
                let lines = text.matches('\n').count() + 1;
                if let Err(errors) = check(&text, &known()) {
                    for (line, _, _) in errors {
                        prop_assert!((1..=lines).contains(&line), "line {} of {}", line, lines);
                    }
                }
            }
        }

        #[test]
        fn csv_like_text_never_panics(
            text in "(subscription,sku,date,quantity,external_id\n)?(SUB-1|API|2026-01-05|,|\"|\r|\n|-1|1e3|x{300}){0,40}"
        ) {
            let _ = check(&text, &known());
        }

        #[test]
        fn a_generated_file_reads_back_as_exactly_its_rows(
            rows in prop::collection::vec(good_row(), 0..10), crlf in any::<bool>()
        ) {
            // External ids must be unique in a file; trimming is what the reader does.
            let mut seen = std::collections::HashSet::new();
            let rows: Vec<[String; 5]> = rows
                .into_iter()
                .filter(|r| {
                    let ext = r[4].trim();
                    !ext.is_empty() && ext.chars().count() <= 200 && seen.insert(ext.to_owned())
                })
                .collect();
            let (text, _) = file(&rows, crlf);
            let parsed = check(&text, &known()).unwrap();
            prop_assert_eq!(parsed.len(), rows.len());
            let k = known();
            for (p, r) in parsed.iter().zip(&rows) {
                let sid = k.subscriptions[&r[0]];
                prop_assert_eq!(p.subscription_id, sid);
                let pid = k.items.iter().find(|(s, sku, _)| *s == sid && *sku == r[1]).unwrap().2;
                prop_assert_eq!(p.product_id, pid);
                prop_assert_eq!(p.date.to_string(), r[2].clone());
                prop_assert_eq!(p.quantity, Decimal::from_str(&r[3]).unwrap());
                prop_assert_eq!(p.external_id.as_str(), r[4].trim());
            }
        }

        #[test]
        fn each_broken_row_is_reported_on_its_own_line(
            rows in prop::collection::vec((good_row(), 0usize..5), 1..10), crlf in any::<bool>()
        ) {
            // Break some rows in one way each; every other row keeps a unique id.
            let rows: Vec<([String; 5], bool)> = rows
                .into_iter()
                .enumerate()
                .map(|(i, (mut r, how))| {
                    r[4] = format!("ext-{i}");
                    match how {
                        0 => r[0] = "SUB-NOPE".into(),
                        1 => r[1] = "NOPE".into(),
                        2 => r[2] = "05/01/2026".into(),
                        3 => r[3] = "-1".into(),
                        _ => return (r, false),
                    }
                    (r, true)
                })
                .collect();
            let cells: Vec<[String; 5]> = rows.iter().map(|(r, _)| r.clone()).collect();
            let (text, lines) = file(&cells, crlf);
            let expected: Vec<usize> = rows
                .iter()
                .zip(lines)
                .filter(|((_, broken), _)| *broken)
                .map(|(_, l)| l)
                .collect();
            match check(&text, &known()) {
                Ok(parsed) => prop_assert!(expected.is_empty() && parsed.len() == rows.len()),
                Err(errors) => {
                    prop_assert_eq!(errors.iter().map(|e| e.0).collect::<Vec<_>>(), expected)
                }
            }
        }
    }
}
