//! The invoice-status queries: one GROUP BY aggregate and the invoice list behind a cell, with
//! every filter a bound parameter (rules in [`super::status_by_rep`]).

use chrono::NaiveDate;
use diesel::{
    pg::Pg,
    prelude::*,
    query_builder::{BoxedSqlQuery, SqlQuery},
    sql_query,
    sql_types::{BigInt, Bool, Date, Nullable, Numeric, Text},
};
use rust_decimal::Decimal;

use super::status_by_rep::{Filters, DETAIL_LIMIT};
use crate::error::AppResult;

const CTES: &str = "WITH RECURSIVE sub(id) AS (
    SELECT id FROM accounts WHERE id = $1
    UNION
    SELECT a.id FROM accounts a JOIN sub ON a.parent_id = sub.id
),
inv AS (
    SELECT i.id, i.number, i.bill_to_account_id AS account_id, a.display_name, a.owner_user_id,
           i.currency, i.issue_date, i.due_date, i.total,
           CASE WHEN i.status = 'open' AND i.due_date < $2 THEN 'overdue' ELSE i.status END AS st
      FROM invoices i JOIN accounts a ON a.id = i.bill_to_account_id
     WHERE i.kind = 'invoice'
       AND ($3::date IS NULL OR i.issue_date >= $3)
       AND ($4::date IS NULL OR i.issue_date <= $4)
       AND ($5::text IS NULL OR i.currency = $5)
       AND ($1::bigint IS NULL OR a.id IN (SELECT id FROM sub))
       AND ($6::bigint IS NULL OR a.owner_user_id = $6)
       AND (NOT $7::bool OR a.owner_user_id IS NULL)
       AND ($8::bigint IS NULL OR a.owner_user_id = $8)
)";

fn bound(sql: String, f: &Filters) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    let (owner, unassigned) = f.owner.binds();
    sql_query(sql)
        .into_boxed::<Pg>()
        .bind::<Nullable<BigInt>, _>(f.account)
        .bind::<Date, _>(f.today)
        .bind::<Nullable<Date>, _>(f.from)
        .bind::<Nullable<Date>, _>(f.to)
        .bind::<Nullable<Text>, _>(f.currency.clone())
        .bind::<Nullable<BigInt>, _>(owner)
        .bind::<Bool, _>(unassigned)
        .bind::<Nullable<BigInt>, _>(f.visible_owner)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct AggRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    pub owner_user_id: Option<i64>,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
    #[diesel(sql_type = Numeric)]
    pub amount: Decimal,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct InvoiceRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub number: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub account_id: i64,
    #[diesel(sql_type = Text)]
    pub display_name: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub owner_user_id: Option<i64>,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Date)]
    pub issue_date: NaiveDate,
    #[diesel(sql_type = Nullable<Date>)]
    pub due_date: Option<NaiveDate>,
    #[diesel(sql_type = Text)]
    pub st: String,
    #[diesel(sql_type = Numeric)]
    pub total: Decimal,
}

pub fn summary(conn: &mut PgConnection, f: &Filters) -> AppResult<Vec<AggRow>> {
    let sql = format!(
        "{CTES}
SELECT owner_user_id, currency, st AS status, count(*) AS n, sum(total) AS amount
  FROM inv GROUP BY owner_user_id, currency, st
 ORDER BY currency, owner_user_id NULLS LAST, st"
    );
    Ok(bound(sql, f).load(conn)?)
}

pub fn detail(conn: &mut PgConnection, f: &Filters) -> AppResult<Vec<InvoiceRow>> {
    let sql = format!(
        "{CTES}
SELECT id, number, account_id, display_name, owner_user_id, currency, issue_date, due_date, st, total
  FROM inv WHERE ($9::text IS NULL OR st = $9)
 ORDER BY currency, issue_date DESC, id DESC LIMIT $10"
    );
    Ok(bound(sql, f)
        .bind::<Nullable<Text>, _>(f.status)
        .bind::<BigInt, _>(DETAIL_LIMIT)
        .load(conn)?)
}
