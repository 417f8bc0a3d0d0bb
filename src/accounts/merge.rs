//! Merging a duplicate account into the one that survives. Everything that points at the
//! merged account moves (contacts, CRM ids, child accounts and, as later features add them,
//! every table listed in [`ACCOUNT_REFERENCES`]); the survivor's blank fields are filled from
//! the merged one; the merged account stays as a redirect so old links and ids still resolve.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::{prelude::*, sql_types::BigInt, PgConnection};
use serde::Deserialize;
use serde_json::json;

use super::{
    contacts_repo,
    handlers::members,
    repo::{self, Account},
    views::{self, DuplicateView},
};
use crate::{
    audit::{self, Actor, Entry},
    auth::permissions::{can, Allowed},
    db::schema::tenant::accounts,
    error::{AppError, AppResult},
    tenants::TenantCtx,
    web::{csrf, render, AppState},
};

/// Every `(table, column)` holding an account id that must follow a merge. A test checks
/// that each foreign key to `accounts` in the tenant schema is listed here (or is the
/// hierarchy itself), so a new table cannot be forgotten.
pub const ACCOUNT_REFERENCES: &[(&str, &str)] = &[
    ("contacts", "account_id"),
    ("account_external_ids", "account_id"),
    ("subscriptions", "account_id"),
    ("invoices", "account_id"),
    ("invoices", "bill_to_account_id"),
    ("account_credits", "account_id"),
    ("payments", "account_id"),
    ("payment_methods", "account_id"),
    ("charge_attempts", "account_id"),
    ("account_collections", "account_id"),
    ("invoice_dunning", "account_id"),
    ("dunning_actions", "account_id"),
    ("collections_tasks", "account_id"),
    ("collections_notes", "account_id"),
    ("promises_to_pay", "account_id"),
    ("crm_links", "account_id"),
];

/// Columns of `accounts` that refer to accounts and are handled by the merge itself.
pub const HIERARCHY_COLUMNS: &[&str] = &["parent_id", "merged_into_id"];

#[derive(Debug, Default, serde::Serialize)]
pub struct Moved {
    pub rows: BTreeMap<String, usize>,
    pub children: usize,
    pub contacts: Vec<i64>,
}

/// Merges `merged` into `survivor`; `Err(message)` when the pair cannot be merged.
pub fn merge(
    conn: &mut PgConnection,
    actor: &Actor,
    survivor_id: i64,
    merged_id: i64,
    reason: Option<String>,
) -> AppResult<Result<Moved, String>> {
    if survivor_id == merged_id {
        return Ok(Err("Choose a different account to merge.".into()));
    }
    // Lock both in id order so two concurrent merges cannot deadlock.
    let _locked: Vec<i64> = accounts::table
        .filter(accounts::id.eq_any([survivor_id, merged_id]))
        .order(accounts::id)
        .select(accounts::id)
        .for_update()
        .load(conn)?;
    let (Some(s), Some(m)) = (repo::get(conn, survivor_id)?, repo::get(conn, merged_id)?) else {
        return Err(AppError::NotFound);
    };
    if s.status == "merged" || m.status == "merged" {
        return Ok(Err("One of these accounts was already merged.".into()));
    }
    if s.currency != m.currency {
        return Ok(Err(format!(
            "{} bills in {} and {} in {}: change one account's currency first.",
            s.account_number, s.currency, m.account_number, m.currency
        )));
    }
    let before = s.data(repo::external_ids(conn, s.id)?);
    let merged_before = m.data(repo::external_ids(conn, m.id)?);
    let mut moved = Moved {
        contacts: contacts_repo::list(conn, m.id)?
            .iter()
            .map(|c| c.id)
            .collect(),
        ..Default::default()
    };
    // The survivor may sit below the merged account: it takes the merged one's place.
    if s.parent_id == Some(m.id) {
        diesel::update(accounts::table.find(s.id))
            .set((
                accounts::parent_id.eq(m.parent_id),
                accounts::bill_to_parent.eq(s.bill_to_parent && m.parent_id.is_some()),
            ))
            .execute(conn)?;
    }
    // The merged account leaves the hierarchy before its children move, so the cycle
    // trigger sees a consistent tree.
    diesel::update(accounts::table.find(m.id))
        .set((
            accounts::parent_id.eq(None::<i64>),
            accounts::bill_to_parent.eq(false),
        ))
        .execute(conn)?;
    moved.children = diesel::update(accounts::table.filter(accounts::parent_id.eq(m.id)))
        .set(accounts::parent_id.eq(s.id))
        .execute(conn)?;
    // One-per-account rows: the survivor's win. Its collections settings stay, and its
    // default payment method stays the default.
    diesel::sql_query(
        "DELETE FROM account_collections WHERE account_id = $2 \
         AND EXISTS (SELECT 1 FROM account_collections WHERE account_id = $1)",
    )
    .bind::<BigInt, _>(s.id)
    .bind::<BigInt, _>(m.id)
    .execute(conn)?;
    diesel::sql_query(
        "UPDATE payment_methods SET is_default = false WHERE account_id = $2 \
         AND EXISTS (SELECT 1 FROM payment_methods WHERE account_id = $1 AND is_default AND status <> 'removed')",
    )
    .bind::<BigInt, _>(s.id)
    .bind::<BigInt, _>(m.id)
    .execute(conn)?;
    for (table, column) in ACCOUNT_REFERENCES {
        // Names come from the constant above, never from input.
        let n = diesel::sql_query(format!(
            "UPDATE {table} SET {column} = $1 WHERE {column} = $2"
        ))
        .bind::<BigInt, _>(s.id)
        .bind::<BigInt, _>(m.id)
        .execute(conn)?;
        moved.rows.insert((*table).to_owned(), n);
    }
    // Fill the survivor's blanks from the merged account.
    let s_now = repo::get(conn, s.id)?.ok_or(AppError::NotFound)?;
    let mut after = s_now.data(repo::external_ids(conn, s.id)?);
    fill_blanks(&mut after, &merged_before);
    repo::update(conn, s.id, s_now.version, &after)?;
    diesel::update(accounts::table.find(m.id))
        .set((
            accounts::status.eq("merged"),
            accounts::merged_into_id.eq(s.id),
            accounts::version.eq(accounts::version + 1),
            accounts::updated_at.eq(chrono::Utc::now()),
        ))
        .execute(conn)?;
    let mut after_json = after.audit_json();
    if let Some(o) = after_json.as_object_mut() {
        o.insert(
            "merged_from".into(),
            json!({ "id": m.id, "account_number": m.account_number, "legal_name": m.legal_name }),
        );
        o.insert(
            "moved".into(),
            serde_json::to_value(&moved).unwrap_or_default(),
        );
    }
    audit::record(
        conn,
        actor,
        &Entry::new("account.merged", "account", s.id)
            .before(before.audit_json())
            .after(after_json)
            .reason(reason.clone()),
    )?;
    audit::record(
        conn,
        actor,
        &Entry::new("account.merged_away", "account", m.id)
            .before(json!({ "status": m.status }))
            .after(json!({ "status": "merged", "merged_into": s.id, "merged_into_number": s.account_number }))
            .reason(reason.clone()),
    )?;
    for cid in &moved.contacts {
        audit::record(
            conn,
            actor,
            &Entry::new("contact.moved", "contact", cid)
                .before(json!({ "account_id": m.id, "account": m.account_number }))
                .after(json!({ "account_id": s.id, "account": s.account_number }))
                .reason(Some(format!(
                    "Account {} merged into {}",
                    m.account_number, s.account_number
                ))),
        )?;
    }
    Ok(Ok(moved))
}

fn fill_blanks(s: &mut repo::AccountData, m: &repo::AccountData) {
    fn fill<T: Clone>(target: &mut Option<T>, source: &Option<T>) {
        if target.is_none() {
            target.clone_from(source);
        }
    }
    fill(&mut s.tax_id, &m.tax_id);
    fill(&mut s.domain, &m.domain);
    fill(&mut s.po_number, &m.po_number);
    fill(&mut s.owner_user_id, &m.owner_user_id);
    fill(&mut s.csm_user_id, &m.csm_user_id);
    if s.billing_address.is_empty() {
        s.billing_address = m.billing_address.clone();
    }
    if s.shipping_address.is_empty() {
        s.shipping_address = m.shipping_address.clone();
    }
    for (k, v) in &m.custom_fields {
        s.custom_fields
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    if !m.notes.is_empty() {
        let sep = if s.notes.is_empty() { "" } else { "\n\n" };
        s.notes = format!("{}{sep}From {}: {}", s.notes, m.account_number, m.notes);
    }
    for id in &m.crm_ids {
        if !s.crm_ids.contains(id) {
            s.crm_ids.push(id.clone());
        }
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct MergeParams {
    #[serde(default)]
    pub other: String,
}

#[derive(Template)]
#[template(path = "accounts/merge_partial.html")]
pub struct MergePartial {
    pub base: String,
    pub csrf_token: String,
    pub survivor: (i64, String, String),
    pub other_input: String,
    pub other: Option<(i64, String, String)>,
    pub preview: Vec<String>,
    pub suggestions: Vec<DuplicateView>,
    pub error: String,
}

async fn render_merge(
    req: &HttpRequest,
    ctx: &TenantCtx,
    state: &AppState,
    id: i64,
    other_input: String,
    error: String,
) -> AppResult<HttpResponse> {
    let members = members(state, ctx.tenant.id).await?;
    let input = other_input.trim().to_owned();
    let (survivor, other, preview, suggestions, error) = ctx
        .db(state, move |c| {
            let s: Account = repo::get(c, id)?.ok_or(AppError::NotFound)?;
            let probe = s.data(repo::external_ids(c, id)?).probe();
            let matches = repo::duplicates_of(c, &probe, Some(id))?;
            let ids: Vec<i64> = matches.iter().map(|m| m.0).collect();
            let suggestions = views::duplicate_views(&matches, &repo::summaries(c, &ids)?, &members);
            let mut error = error;
            let mut other = None;
            let mut preview = Vec::new();
            if !input.is_empty() {
                match repo::id_by_number(c, &input)?.map(|o| repo::get(c, o)).transpose()?.flatten() {
                    None => error = format!("No account has the number \"{input}\"."),
                    Some(o) if o.id == id => error = "Choose a different account to merge.".into(),
                    Some(o) if o.status == "merged" => error = format!("{input} was already merged."),
                    Some(o) => {
                        preview.push(format!("{} contact(s) move to {}.", contacts_repo::list(c, o.id)?.len(), s.account_number));
                        preview.push(format!("{} child account(s) move under {}.", repo::children_count(c, o.id)?, s.account_number));
                        let crm = repo::external_ids(c, o.id)?;
                        preview.push(format!("{} CRM id(s) move: {}.", crm.len(), super::domain::format_crm_ids(&crm)));
                        preview.push("Subscriptions, invoices and payments move with it; blank fields here are filled from it.".into());
                        preview.push(format!("{} then redirects here and cannot be edited.", o.account_number));
                        if o.currency != s.currency {
                            error = format!("{} bills in {} and this account in {}: change one account's currency first.", o.account_number, o.currency, s.currency);
                        }
                        other = Some((o.id, o.account_number, o.display_name));
                    }
                }
            }
            Ok(((s.id, s.account_number, s.display_name), other, preview, suggestions, error))
        })
        .await?;
    let status = render::status_for(error.is_empty());
    let partial = MergePartial {
        base: ctx.base(),
        csrf_token: csrf::token(req),
        survivor,
        other_input,
        other,
        preview,
        suggestions,
        error,
    };
    render::page_with_status(
        req,
        status,
        ctx.layout(req, "Merge accounts", "accounts"),
        partial,
    )
}

pub async fn form(
    req: HttpRequest,
    ctx: Allowed<can::AccountsMerge>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    params: web::Query<MergeParams>,
) -> AppResult<HttpResponse> {
    render_merge(
        &req,
        &ctx,
        &state,
        path.into_inner().1,
        params.into_inner().other,
        String::new(),
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct MergeForm {
    #[serde(default)]
    pub other: String,
    #[serde(default)]
    pub reason: String,
}

pub async fn submit(
    req: HttpRequest,
    ctx: Allowed<can::AccountsMerge>,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<MergeForm>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().1;
    let form = form.into_inner();
    let actor = Actor::from_ctx(&ctx, &req);
    let number = form.other.trim().to_owned();
    let reason = Some(form.reason.clone());
    let result = ctx
        .db(&state, move |c| {
            repo::get(c, id)?.ok_or(AppError::NotFound)?;
            let Some(other) = repo::id_by_number(c, &number)? else {
                return Ok(Err(format!("No account has the number \"{number}\".")));
            };
            merge(c, &actor, id, other, reason)
        })
        .await?;
    match result {
        Ok(_) => Ok(render::see_other(
            &req,
            &format!("{}/accounts/{id}?tab=activity", ctx.base()),
        )),
        Err(e) => render_merge(&req, &ctx, &state, id, form.other, e).await,
    }
}
