//! Applying a CSV file of accounts row by row, through the same parsing and service code as
//! the forms. A preview runs the whole file in a transaction that is rolled back, so what it
//! reports (errors, duplicates, creates and updates) is exactly what a commit will do.

use std::collections::HashSet;

use diesel::PgConnection;
use serde::{Deserialize, Serialize};

use super::{
    csv_io::{record_line, uncell},
    dedupe::{Candidate, Index},
    domain::{parse_custom, Addresses, Fields, General, Terms, TERMS_FIELDS},
    repo, service,
    service::Policy,
    views,
};
use crate::{
    audit::{self, Actor, Entry},
    error::{AppResult, FieldErrors},
    tenants::repo::Member,
};

pub const MAX_ROWS: usize = 50_000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RowProblem {
    /// Line in the file (the header is line 1).
    pub line: u64,
    pub name: String,
    /// `error` or `duplicate`.
    pub kind: String,
    pub errors: Vec<(String, String)>,
    pub duplicates: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub file_errors: Vec<String>,
    pub problems: Vec<RowProblem>,
    pub rows: usize,
    pub creates: usize,
    pub updates: usize,
    pub unchanged: usize,
    pub duplicates: usize,
    pub skipped: usize,
    pub errors: usize,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.file_errors.is_empty() && self.errors == 0
    }
}

/// What to do with rows that look like an existing account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDuplicate {
    Skip,
    Create,
}

pub struct Context<'a> {
    pub actor: &'a Actor,
    pub members: &'a [Member],
    pub policy: Policy,
    pub currency: String,
    pub on_duplicate: OnDuplicate,
    pub import_id: i64,
}

fn known_column(h: &str, defs: &[super::domain::CustomFieldDef]) -> bool {
    views::CSV_COLUMNS.contains(&h) || defs.iter().any(|d| d.form_name() == h)
}

/// Counts data rows (for progress) without validating them.
pub fn count_rows(content: &str) -> usize {
    csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(content.as_bytes())
        .records()
        .count()
}

/// Applies every row of `content` to the tenant. The caller decides whether the
/// transaction commits (only when the report is `ok`).
pub fn apply(
    conn: &mut PgConnection,
    cx: &Context<'_>,
    content: &str,
    progress: &mut dyn FnMut(usize),
) -> AppResult<Report> {
    let defs = repo::custom_field_defs(conn)?;
    let spec = FileSpec {
        known: &|h: &str| known_column(h, &defs),
        required: &["legal_name", "id"],
        what: "account",
        name_column: "legal_name",
    };
    let mut index: Option<Index> = None;
    each_row(content, &spec, cx.on_duplicate, progress, |given| {
        let ix = match index.as_mut() {
            Some(ix) => ix,
            None => index.insert(repo::dedupe_index_all(conn)?),
        };
        apply_row(conn, cx, &defs, ix, given)
    })
}

/// What a file of one kind must look like.
pub struct FileSpec<'a> {
    pub known: &'a dyn Fn(&str) -> bool,
    /// At least one of these columns must be present.
    pub required: &'a [&'a str],
    pub what: &'a str,
    /// The column that names a row in the report.
    pub name_column: &'a str,
}

/// Reads `content`, checks the header, and hands each non-empty row to `row`, collecting
/// the outcomes into a report with line numbers.
pub fn each_row(
    content: &str,
    spec: &FileSpec<'_>,
    on_duplicate: OnDuplicate,
    progress: &mut dyn FnMut(usize),
    mut row: impl FnMut(&[(String, String)]) -> AppResult<RowOutcome>,
) -> AppResult<Report> {
    let mut report = Report::default();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(content.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_lowercase()).collect(),
        Err(e) => {
            report
                .file_errors
                .push(format!("The file is not readable CSV: {e}"));
            return Ok(report);
        }
    };
    let unknown: Vec<&String> = headers
        .iter()
        .filter(|h| !h.is_empty() && !(spec.known)(h))
        .collect();
    if !unknown.is_empty() {
        report.file_errors.push(format!(
            "Unknown column(s): {}. Use the column names of {} export.",
            unknown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if spec.what == "account" {
                "an account"
            } else {
                "a contact"
            }
        ));
    }
    if !headers.iter().any(|h| spec.required.contains(&h.as_str())) {
        report.file_errors.push(format!(
            "The file needs a {} column (or id to update existing {}s).",
            spec.required[0], spec.what
        ));
    }
    let mut seen = HashSet::new();
    for h in &headers {
        if !seen.insert(h) {
            report
                .file_errors
                .push(format!("Column {h} appears twice."));
        }
    }
    if !report.file_errors.is_empty() {
        return Ok(report);
    }
    for (i, record) in reader.records().enumerate() {
        if i >= MAX_ROWS {
            report
                .file_errors
                .push(format!("The file has more than {MAX_ROWS} rows; split it."));
            break;
        }
        let position = match &record {
            Ok(r) => r.position(),
            Err(e) => e.position(),
        };
        let line = record_line(content, position, i + 2) as u64;
        report.rows += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                report.errors += 1;
                report.problems.push(RowProblem {
                    line,
                    name: String::new(),
                    kind: "error".into(),
                    errors: vec![("row".into(), format!("Unreadable row: {e}"))],
                    duplicates: Vec::new(),
                });
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            report.rows -= 1;
            continue;
        }
        let given: Vec<(String, String)> = headers
            .iter()
            .cloned()
            .zip(record.iter().map(|v| uncell(v).to_owned()))
            .filter(|(h, _)| !h.is_empty())
            .collect();
        let outcome = row(&given)?;
        let name = given
            .iter()
            .find(|(h, _)| h == spec.name_column)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        match outcome {
            RowOutcome::Created => report.creates += 1,
            RowOutcome::Updated => report.updates += 1,
            RowOutcome::Unchanged => report.unchanged += 1,
            RowOutcome::Skipped(d) | RowOutcome::CreatedDuplicate(d) => {
                if matches!(on_duplicate, OnDuplicate::Skip) {
                    report.skipped += 1;
                } else {
                    report.creates += 1;
                }
                report.duplicates += 1;
                report.problems.push(RowProblem {
                    line,
                    name,
                    kind: "duplicate".into(),
                    errors: Vec::new(),
                    duplicates: d,
                });
            }
            RowOutcome::Invalid(errors) => {
                report.errors += 1;
                report.problems.push(RowProblem {
                    line,
                    name,
                    kind: "error".into(),
                    errors: errors.0,
                    duplicates: Vec::new(),
                });
            }
        }
        if (i + 1) % 50 == 0 {
            progress(i + 1);
        }
    }
    progress(report.rows);
    Ok(report)
}

pub enum RowOutcome {
    Created,
    CreatedDuplicate(Vec<String>),
    Updated,
    Unchanged,
    Skipped(Vec<String>),
    Invalid(FieldErrors),
}

fn apply_row(
    conn: &mut PgConnection,
    cx: &Context<'_>,
    defs: &[super::domain::CustomFieldDef],
    index: &mut Index,
    given: &[(String, String)],
) -> AppResult<RowOutcome> {
    let mut errors = FieldErrors::default();
    let id_raw = given
        .iter()
        .find(|(h, _)| h == "id")
        .map_or("", |(_, v)| v.as_str());
    // An update starts from the stored account, so columns left out of the file keep their values.
    let (existing, base) = if id_raw.is_empty() {
        (None, service::blank(&cx.currency))
    } else {
        let found = match id_raw.parse::<i64>() {
            Ok(id) => repo::get(conn, id)?.filter(|a| {
                cx.policy.owner_only.is_none() || a.owner_user_id == cx.policy.owner_only
            }),
            Err(_) => None,
        };
        match found {
            Some(a) if a.status == "merged" => {
                errors.add(
                    "id",
                    format!(
                        "Account {} was merged into another; use that one.",
                        a.account_number
                    ),
                );
                return Ok(RowOutcome::Invalid(errors));
            }
            Some(a) => {
                let d = a.data(repo::external_ids(conn, a.id)?);
                (Some(a), d)
            }
            None => {
                errors.add("id", format!("No account has id {id_raw}."));
                return Ok(RowOutcome::Invalid(errors));
            }
        }
    };
    // New rows: anything not in the file takes the defaults.
    let mut f = match (&existing, base.parent_id) {
        (None, _) => Fields::default(),
        (Some(_), parent) => {
            let parent_number = match parent {
                Some(p) => repo::get(conn, p)?.map(|p| p.account_number),
                None => None,
            };
            views::fields_of(&base, parent_number.as_deref(), cx.members, defs, true)
        }
    };
    for (h, v) in given {
        if !cx.policy.terms
            && TERMS_FIELDS.contains(&h.as_str())
            && f.get(h) != v.trim()
            && !v.is_empty()
        {
            errors.add(
                h,
                "Only finance can set billing terms; leave this column out or blank.",
            );
        }
        f.set(h, v.clone());
    }
    let mut d = base.clone();
    let general = General::parse(&f, &mut errors);
    let terms = Terms::parse(&f, &base.currency, &mut errors);
    let addresses = Addresses::parse(&f, &mut errors);
    let custom = parse_custom(&f, defs, &mut errors);
    let self_id = existing.as_ref().map(|a| a.id);
    if let Some(g) = general {
        service::apply_general(conn, &mut d, g, cx.members, cx.policy, self_id, &mut errors)?;
    }
    if let Some(t) = terms {
        service::apply_terms(&mut d, t, &mut errors);
    }
    if let Some(a) = addresses {
        service::apply_addresses(&mut d, a);
    }
    service::apply_custom(&mut d, defs, custom);
    if !errors.is_empty() {
        return Ok(RowOutcome::Invalid(errors));
    }
    let reason = Some(format!("CSV import #{}", cx.import_id));
    if let Some(a) = existing {
        if d == base {
            return Ok(RowOutcome::Unchanged);
        }
        repo::update(conn, a.id, a.version, &d)?;
        audit::record(
            conn,
            cx.actor,
            &Entry::new("account.updated", "account", a.id)
                .before(base.audit_json())
                .after(d.audit_json())
                .reason(reason),
        )?;
        service::note_hierarchy_change(conn, cx.actor, a.id, base.parent_id, d.parent_id)?;
        return Ok(RowOutcome::Updated);
    }
    let probe = d.probe();
    let mut matches = index.matches(&probe, None);
    if let (Some(parent), false) = (d.parent_id, matches.is_empty()) {
        let family = repo::family(conn, parent)?;
        matches.retain(|(id, _)| !family.contains(id));
    }
    let labels: Vec<String> = if matches.is_empty() {
        Vec::new()
    } else {
        let ids: Vec<i64> = matches.iter().map(|m| m.0).collect();
        let summaries = repo::summaries(conn, &ids)?;
        views::duplicate_views(&matches, &summaries, cx.members)
            .into_iter()
            .map(|v| format!("{} ({}): {}", v.name, v.number, v.reasons))
            .collect()
    };
    if !labels.is_empty() && cx.on_duplicate == OnDuplicate::Skip {
        return Ok(RowOutcome::Skipped(labels));
    }
    let id = match service::create(conn, cx.actor, d.clone(), true, reason)? {
        service::Saved::Done(id) => id,
        _ => return Ok(RowOutcome::Invalid(errors)),
    };
    service::note_hierarchy_change(conn, cx.actor, id, None, d.parent_id)?;
    // Later rows are checked against this one too.
    index.add(Candidate {
        id,
        name_key: probe.name_key,
        tax_id_key: probe.tax_id_key,
        domain: probe.domain,
        contact_domains: Vec::new(),
        crm_ids: probe.crm_ids,
    });
    Ok(if labels.is_empty() {
        RowOutcome::Created
    } else {
        RowOutcome::CreatedDuplicate(labels)
    })
}

#[cfg(test)]
#[path = "import_rows_tests.rs"]
mod tests;
