//! CSV export of accounts and contacts. Columns use the same names as the forms and the
//! import, and carry ids, so an export edited in a spreadsheet imports back as updates.
//! Cells that a spreadsheet would run as a formula are prefixed with `'` (and the import
//! strips it again).

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{
    contacts_repo,
    handlers::{members, visibility, ListParams},
    repo, views,
};
use crate::{
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed},
    error::{AppError, AppResult},
};

/// First characters that make a spreadsheet run a cell as a formula.
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A formula once any quotes in front of it are taken away. Values that start with quotes
/// and then a formula character (`'=x`) are quoted too, so [`uncell`] gives them back whole
/// instead of mistaking their own quote for ours.
fn needs_quote(v: &str) -> bool {
    v.trim_start_matches('\'').starts_with(FORMULA_START)
}

/// Neutralises spreadsheet formulas.
pub fn cell(v: &str) -> String {
    if needs_quote(v) {
        format!("'{v}")
    } else {
        v.to_owned()
    }
}

/// Undoes [`cell`] on import.
pub fn uncell(v: &str) -> &str {
    match v.strip_prefix('\'') {
        Some(rest) if needs_quote(rest) => rest,
        _ => v,
    }
}

/// The line (1-based, as an editor shows it) a CSV record starts on. The reader's position
/// is where it began looking for the record: just after the previous record's `\r` in a
/// CRLF file, or before blank lines it skips. Those line breaks are counted here, so a
/// problem in a spreadsheet's CRLF export names the line the row really is on.
pub fn record_line(text: &str, position: Option<&csv::Position>, fallback: usize) -> usize {
    let Some(p) = position else {
        return fallback;
    };
    let start = usize::try_from(p.byte()).unwrap_or(usize::MAX);
    let skipped = text
        .as_bytes()
        .get(start..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .filter(|b| **b == b'\n')
        .count();
    usize::try_from(p.line()).map_or(fallback, |line| line + skipped)
}

fn csv_response(name: &str, body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        ))
        .body(body)
}

fn write_rows(rows: Vec<Vec<String>>) -> AppResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(r.iter().map(|v| cell(v)))
            .map_err(AppError::internal)?;
    }
    w.into_inner()
        .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))
}

pub async fn export_accounts(
    req: HttpRequest,
    ctx: Allowed<can::AccountsView>,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> AppResult<HttpResponse> {
    let members = members(&state, ctx.tenant.id).await?;
    let (query, vis, actor) = (
        params.query(0),
        visibility(&ctx),
        Actor::from_ctx(&ctx, &req),
    );
    let body = ctx
        .db(&state, move |c| {
            let (accounts, _) = repo::list(c, &query, vis)?;
            let defs = repo::custom_field_defs(c)?;
            let numbers: HashMap<i64, String> = accounts
                .iter()
                .map(|a| (a.id, a.account_number.clone()))
                .collect();
            let mut header: Vec<String> =
                views::CSV_COLUMNS.iter().map(|s| (*s).to_owned()).collect();
            header.extend(defs.iter().map(|d| d.form_name()));
            let mut rows = vec![header.clone()];
            for a in &accounts {
                let parent = match a.parent_id {
                    Some(p) => match numbers.get(&p) {
                        Some(n) => Some(n.clone()),
                        None => repo::get(c, p)?.map(|p| p.account_number),
                    },
                    None => None,
                };
                let f = views::fields_of(
                    &a.data(repo::external_ids(c, a.id)?),
                    parent.as_deref(),
                    &members,
                    &defs,
                    true,
                );
                rows.push(
                    header
                        .iter()
                        .map(|h| {
                            if h == "id" {
                                a.id.to_string()
                            } else {
                                f.get(h).to_owned()
                            }
                        })
                        .collect(),
                );
            }
            audit::record(
                c,
                &actor,
                &Entry::new("account.exported", "account", "*")
                    .after(json!({ "rows": accounts.len() })),
            )?;
            write_rows(rows)
        })
        .await?;
    Ok(csv_response("accounts.csv", body))
}

pub const CONTACT_COLUMNS: &[&str] = &[
    "id",
    "account_id",
    "account_number",
    "name",
    "email",
    "phone",
    "job_title",
    "roles",
    "receives_invoices",
    "receives_reminders",
    "status",
];

pub async fn export_contacts(
    req: HttpRequest,
    ctx: Allowed<can::AccountsView>,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> AppResult<HttpResponse> {
    let (query, vis, actor) = (
        params.query(0),
        visibility(&ctx),
        Actor::from_ctx(&ctx, &req),
    );
    let body = ctx
        .db(&state, move |c| {
            let (accounts, _) = repo::list(c, &query, vis)?;
            let numbers: HashMap<i64, String> = accounts
                .iter()
                .map(|a| (a.id, a.account_number.clone()))
                .collect();
            let ids: Vec<i64> = accounts.iter().map(|a| a.id).collect();
            let contacts = contacts_repo::for_accounts(c, &ids)?;
            let mut rows = vec![CONTACT_COLUMNS
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>()];
            for k in &contacts {
                let f = super::contacts::fields_of(&k.data());
                rows.push(vec![
                    k.id.to_string(),
                    k.account_id.to_string(),
                    numbers.get(&k.account_id).cloned().unwrap_or_default(),
                    f.get("name").to_owned(),
                    f.get("email").to_owned(),
                    f.get("phone").to_owned(),
                    f.get("job_title").to_owned(),
                    f.get("roles").to_owned(),
                    f.get("receives_invoices").to_owned(),
                    f.get("receives_reminders").to_owned(),
                    f.get("status").to_owned(),
                ]);
            }
            audit::record(
                c,
                &actor,
                &Entry::new("contact.exported", "contact", "*")
                    .after(json!({ "rows": contacts.len() })),
            )?;
            write_rows(rows)
        })
        .await?;
    Ok(csv_response("contacts.csv", body))
}

use crate::web::AppState;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_restored() {
        assert_eq!(cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(uncell(&cell("=SUM(A1)")), "=SUM(A1)");
        assert_eq!(cell("Acme"), "Acme");
        assert_eq!(uncell("'quoted"), "'quoted");
    }

    #[test]
    fn values_that_start_with_a_quoted_formula_survive_an_export_and_import() {
        // Before: "'=x" was written as is and imported as "=x".
        for v in ["'=x", "''+1", "'", "''", "'-", "=a", "plain", "'quoted"] {
            assert_eq!(uncell(&cell(v)), v, "{v:?}");
            assert!(
                !cell(v).starts_with(FORMULA_START),
                "{v:?} runs as a formula"
            );
        }
    }

    #[test]
    fn record_lines_count_the_line_breaks_the_reader_skipped() {
        let text = "h\r\na\r\n\n\nb\n";
        let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let lines: Vec<usize> = r
            .records()
            .map(|rec| record_line(text, rec.unwrap().position(), 0))
            .collect();
        assert_eq!(lines, [2, 5]);
    }

    proptest::proptest! {
        #[test]
        fn any_value_survives_cell_then_uncell(v in "['=+@ a-]{0,6}\\PC{0,6}") {
            let written = cell(&v);
            proptest::prop_assert_eq!(uncell(&written), v.as_str());
        }
    }
}
