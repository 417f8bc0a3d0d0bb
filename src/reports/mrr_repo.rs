//! Loads what the MRR report needs: the filtered subscriptions (one statement, bound
//! parameters) and their item rows through the subscriptions module's own loader, so the
//! price terms are read exactly as the bill run reads them.

use std::collections::HashMap;

use chrono::NaiveDate;
use diesel::{
    prelude::*,
    sql_query,
    sql_types::{BigInt, Bool, Date, Int4, Nullable, Text},
};

use super::mrr::SubTerms;
use crate::{error::AppResult, subscriptions::repo::item_terms};

/// The same owner filter as every report.
pub use super::aging_repo::Owner;

impl Owner {
    pub fn binds(self) -> (Option<i64>, bool) {
        match self {
            Owner::Any => (None, false),
            Owner::Unassigned => (None, true),
            Owner::User(u) => (Some(u), false),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Filters {
    pub currency: Option<String>,
    pub owner: Owner,
    /// The account and every descendant.
    pub account: Option<i64>,
    /// Sales: only accounts this user owns.
    pub visible_owner: Option<i64>,
    /// Subscriptions starting after this day cannot count in the range.
    pub until: NaiveDate,
}

#[derive(Debug, QueryableByName)]
struct SubRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    account_id: i64,
    #[diesel(sql_type = Text)]
    display_name: String,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = Date)]
    start_date: NaiveDate,
    #[diesel(sql_type = Nullable<Date>)]
    last_day: Option<NaiveDate>,
    #[diesel(sql_type = Nullable<Date>)]
    trial_end: Option<NaiveDate>,
    #[diesel(sql_type = Int4)]
    interval_months: i32,
}

/// The subscriptions, and the names of their accounts by id.
pub struct Loaded {
    pub subs: Vec<SubTerms>,
    pub names: HashMap<i64, String>,
}

// A canceled subscription without an end date stopped on the (UTC) day it was canceled.
const SQL: &str = "WITH RECURSIVE sub(id) AS (
    SELECT id FROM accounts WHERE id = $1
    UNION
    SELECT a.id FROM accounts a JOIN sub ON a.parent_id = sub.id
)
SELECT s.id, s.account_id, a.display_name, s.currency, s.start_date,
       COALESCE(s.end_date, CASE WHEN s.status = 'canceled'
                                 THEN (s.canceled_at AT TIME ZONE 'UTC')::date END) AS last_day,
       s.trial_end, s.interval_months
  FROM subscriptions s JOIN accounts a ON a.id = s.account_id
 WHERE s.start_date <= $2
   AND ($3::text IS NULL OR s.currency = $3)
   AND ($1::bigint IS NULL OR a.id IN (SELECT id FROM sub))
   AND ($4::bigint IS NULL OR a.owner_user_id = $4)
   AND (NOT $5::bool OR a.owner_user_id IS NULL)
   AND ($6::bigint IS NULL OR a.owner_user_id = $6)
 ORDER BY s.id";

pub fn load(conn: &mut PgConnection, f: &Filters) -> AppResult<Loaded> {
    let (owner, unassigned) = f.owner.binds();
    let rows: Vec<SubRow> = sql_query(SQL)
        .bind::<Nullable<BigInt>, _>(f.account)
        .bind::<Date, _>(f.until)
        .bind::<Nullable<Text>, _>(f.currency.clone())
        .bind::<Nullable<BigInt>, _>(owner)
        .bind::<Bool, _>(unassigned)
        .bind::<Nullable<BigInt>, _>(f.visible_owner)
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut items = item_terms(conn, &ids)?;
    let mut names = HashMap::new();
    let subs = rows
        .into_iter()
        .map(|r| {
            names.insert(r.account_id, r.display_name);
            SubTerms {
                account_id: r.account_id,
                currency: r.currency,
                start: r.start_date,
                end: r.last_day,
                trial_end: r.trial_end,
                interval_months: u32::try_from(r.interval_months).unwrap_or(1),
                items: items.remove(&r.id).unwrap_or_default(),
            }
        })
        .collect();
    Ok(Loaded { subs, names })
}
