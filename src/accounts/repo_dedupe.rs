//! Loading duplicate-detection candidates (see `dedupe` for the rules).

use diesel::{
    dsl,
    prelude::*,
    sql_types::{Integer, Text},
    PgConnection,
};

use super::{
    dedupe::{self, Candidate, Index, Probe},
    hierarchy::family,
};
use crate::{
    db::schema::tenant::{account_external_ids as ext, accounts, contacts},
    error::AppResult,
};

fn candidates_for(conn: &mut PgConnection, ids: &[i64]) -> AppResult<Vec<Candidate>> {
    let rows: Vec<(i64, String, Option<String>, Option<String>)> = accounts::table
        .filter(accounts::id.eq_any(ids))
        .select((
            accounts::id,
            accounts::name_key,
            accounts::tax_id_key,
            accounts::domain,
        ))
        .load(conn)?;
    let domains: Vec<(i64, Option<String>)> = contacts::table
        .filter(contacts::account_id.eq_any(ids))
        .filter(contacts::email_domain.is_not_null())
        .select((contacts::account_id, contacts::email_domain))
        .distinct()
        .load(conn)?;
    let crm: Vec<(i64, String, String)> = ext::table
        .filter(ext::account_id.eq_any(ids))
        .select((ext::account_id, ext::system, ext::external_id))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, name_key, tax_id_key, domain)| Candidate {
            id,
            name_key,
            tax_id_key,
            domain,
            contact_domains: domains
                .iter()
                .filter(|(a, _)| *a == id)
                .filter_map(|(_, d)| d.as_deref().and_then(dedupe::company_domain))
                .collect(),
            crm_ids: crm
                .iter()
                .filter(|(a, _, _)| *a == id)
                .map(|(_, s, e)| (s.clone(), e.clone()))
                .collect(),
        })
        .collect())
}

define_sql_function! {
    /// The first `n` characters (`accounts_name_prefix_idx` indexes `left(name_key, 3)`).
    fn left(s: Text, n: Integer) -> Text;
}

/// Accounts sharing any key with `probe` (merged accounts excluded), as a matcher index.
pub fn dedupe_index_for(conn: &mut PgConnection, probe: &Probe) -> AppResult<Index> {
    let live = accounts::status.ne("merged");
    // The matcher's "similar name" is an equal prefix, so an indexed equality finds them all.
    // The length is a literal: only `left(name_key, 3)` matches the index expression.
    let similar = left(
        accounts::name_key,
        dsl::sql::<Integer>(&dedupe::PREFIX_CHARS.to_string()),
    )
    .eq(dedupe::prefix(&probe.name_key));
    let mut ids: Vec<i64> = accounts::table
        .filter(live)
        .filter(
            accounts::name_key
                .eq(&probe.name_key)
                .or(similar)
                .or(accounts::tax_id_key.eq(probe.tax_id_key.clone().unwrap_or_default()))
                .or(accounts::domain.eq(probe.domain.clone().unwrap_or_default())),
        )
        .select(accounts::id)
        .limit(500)
        .load(conn)?;
    if let Some(d) = &probe.domain {
        let more: Vec<i64> = contacts::table
            .filter(contacts::email_domain.eq(d))
            .select(contacts::account_id)
            .distinct()
            .limit(100)
            .load(conn)?;
        ids.extend(more);
    }
    for (system, id) in &probe.crm_ids {
        let more: Vec<i64> = ext::table
            .filter(ext::system.eq(system))
            .filter(ext::external_id.eq(id))
            .select(ext::account_id)
            .load(conn)?;
        ids.extend(more);
    }
    ids.sort_unstable();
    ids.dedup();
    let live_ids: Vec<i64> = accounts::table
        .filter(accounts::id.eq_any(&ids))
        .filter(accounts::status.ne("merged"))
        .select(accounts::id)
        .load(conn)?;
    Ok(Index::new(candidates_for(conn, &live_ids)?))
}

/// Every live account as a matcher index (imports check thousands of rows at once).
pub fn dedupe_index_all(conn: &mut PgConnection) -> AppResult<Index> {
    let ids: Vec<i64> = accounts::table
        .filter(accounts::status.ne("merged"))
        .select(accounts::id)
        .load(conn)?;
    Ok(Index::new(candidates_for(conn, &ids)?))
}

/// Likely duplicates of `probe`, leaving out `id`'s own hierarchy.
pub fn duplicates_of(
    conn: &mut PgConnection,
    probe: &Probe,
    related_to: Option<i64>,
) -> AppResult<Vec<(i64, Vec<dedupe::Reason>)>> {
    let family = match related_to {
        Some(id) => family(conn, id)?,
        None => Vec::new(),
    };
    Ok(dedupe_index_for(conn, probe)?
        .matches(probe, related_to)
        .into_iter()
        .filter(|(id, _)| !family.contains(id))
        .collect())
}
