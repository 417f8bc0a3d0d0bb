//! The account hierarchy: ancestors, descendants, bill-to-parent resolution, merge links.

use diesel::{prelude::*, sql_types::BigInt, PgConnection};

use super::repo::{get, Account};
use crate::{
    db::schema::tenant::accounts,
    error::{AppError, AppResult},
};

/// True when `parent` is `id` itself or one of its descendants.
pub fn would_cycle(conn: &mut PgConnection, id: i64, parent: i64) -> AppResult<bool> {
    Ok(ancestors(conn, parent)?.contains(&id))
}

/// `id` followed by its parent, grandparent, ... up to the root.
pub fn ancestors(conn: &mut PgConnection, id: i64) -> AppResult<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "WITH RECURSIVE up(id, parent_id, depth) AS ( \
           SELECT id, parent_id, 0 FROM accounts WHERE id = $1 \
           UNION ALL \
           SELECT a.id, a.parent_id, up.depth + 1 FROM accounts a JOIN up ON a.id = up.parent_id \
           WHERE up.depth < 10000) \
         SELECT id FROM up ORDER BY depth",
    )
    .bind::<BigInt, _>(id)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Every descendant of `id` with its depth below it (1 = child), in tree order.
pub fn descendants(conn: &mut PgConnection, id: i64) -> AppResult<Vec<(Account, i32)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        depth: i32,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "WITH RECURSIVE down(id, depth, path) AS ( \
           SELECT id, 1, lower(display_name) || '/' || id FROM accounts WHERE parent_id = $1 \
           UNION ALL \
           SELECT a.id, down.depth + 1, down.path || '>' || lower(a.display_name) || '/' || a.id \
           FROM accounts a JOIN down ON a.parent_id = down.id WHERE down.depth < 10000) \
         SELECT id, depth FROM down ORDER BY path",
    )
    .bind::<BigInt, _>(id)
    .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut accounts: Vec<Account> = accounts::table
        .filter(accounts::id.eq_any(&ids))
        .select(Account::as_select())
        .load(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(pos) = accounts.iter().position(|a| a.id == r.id) {
            out.push((accounts.swap_remove(pos), r.depth));
        }
    }
    Ok(out)
}

/// The account that pays for `id`: itself, or the nearest ancestor reached through
/// "bill to parent" links.
pub fn bill_to(conn: &mut PgConnection, id: i64) -> AppResult<Account> {
    let mut current = get(conn, id)?.ok_or(AppError::NotFound)?;
    let mut seen = vec![current.id];
    while current.bill_to_parent {
        let Some(parent) = current.parent_id else {
            break;
        };
        if seen.contains(&parent) {
            break;
        }
        seen.push(parent);
        current = get(conn, parent)?.ok_or(AppError::NotFound)?;
    }
    Ok(current)
}

pub fn children_count(conn: &mut PgConnection, id: i64) -> AppResult<i64> {
    Ok(accounts::table
        .filter(accounts::parent_id.eq(id))
        .count()
        .get_result(conn)?)
}

/// Follows merge links from `id` to the account that survives.
pub fn merge_chain_end(conn: &mut PgConnection, id: i64) -> AppResult<i64> {
    let mut current = id;
    for _ in 0..100 {
        let next: Option<Option<i64>> = accounts::table
            .find(current)
            .select(accounts::merged_into_id)
            .first(conn)
            .optional()?;
        match next.flatten() {
            Some(n) => current = n,
            None => break,
        }
    }
    Ok(current)
}

/// Every account in the same hierarchy as `id` (its root and all the root's descendants).
/// Subsidiaries share names and domains with their group; they are not duplicates.
pub fn family(conn: &mut PgConnection, id: i64) -> AppResult<Vec<i64>> {
    let root = ancestors(conn, id)?.last().copied().unwrap_or(id);
    let mut ids: Vec<i64> = descendants(conn, root)?
        .into_iter()
        .map(|(a, _)| a.id)
        .collect();
    ids.push(root);
    Ok(ids)
}
