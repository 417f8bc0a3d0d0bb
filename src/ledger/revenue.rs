//! Revenue schedules and period close in the database (rules in `revrec`): the schedule rows a
//! posted document adds, the recognition run (`ledger.recognize` job and the "Recognize now"
//! button) and the closed months `repo::insert_entry` posts around.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use super::{
    domain::{NewEntry, Posting, SourceType},
    repo, revrec,
};
use crate::{
    db::{
        self,
        schema::tenant::{invoice_lines, ledger_periods, revenue_schedules as rs},
        scope::{in_tenant, TenantSchema},
    },
    error::AppResult,
    jobs::{kinds, queue, JobFailure},
    money::Currency,
    web::AppState,
};

/// One ratable line of a document that just posted, with the accounts its rule resolved to.
pub struct RatableLine {
    pub line_id: i64,
    pub gross: Decimal,
    pub period: Option<(NaiveDate, NaiveDate)>,
    pub credited_line_id: Option<i64>,
    pub revenue_account: String,
    pub deferred_account: String,
}

/// Writes the schedule of each ratable line of a posted invoice or credit note.
pub fn add_schedules(
    conn: &mut PgConnection,
    invoice_id: i64,
    credit_note: bool,
    issue_date: NaiveDate,
    currency: &str,
    lines: &[RatableLine],
) -> AppResult<()> {
    let scale = Currency::parse(currency).map_or(2, |c| c.exponent());
    let sign = if credit_note {
        Decimal::NEGATIVE_ONE
    } else {
        Decimal::ONE
    };
    for l in lines {
        // A credit note line without its own period follows the line it credits.
        let period = match (l.period, l.credited_line_id) {
            (None, Some(credited)) => invoice_lines::table
                .find(credited)
                .select((invoice_lines::period_start, invoice_lines::period_end))
                .first::<(Option<NaiveDate>, Option<NaiveDate>)>(conn)
                .optional()?
                .and_then(|(s, e)| s.zip(e)),
            (p, _) => p,
        };
        let rows: Vec<_> = revrec::schedule(l.gross * sign, period, issue_date, scale)
            .into_iter()
            .filter(|(_, amount)| !amount.is_zero())
            .map(|(month, amount)| {
                (
                    rs::invoice_id.eq(invoice_id),
                    rs::line_id.eq(l.line_id),
                    rs::month.eq(month),
                    rs::amount.eq(amount),
                    rs::currency.eq(currency.to_owned()),
                    rs::revenue_account.eq(l.revenue_account.clone()),
                    rs::deferred_account.eq(l.deferred_account.clone()),
                )
            })
            .collect();
        diesel::insert_into(rs::table).values(&rows).execute(conn)?;
    }
    Ok(())
}

/// A voided document: its unrecognized rows go, and what was recognized comes back in the
/// void's month as negative rows (Dr revenue / Cr deferred when recognized), since the void
/// entry reverses the whole deferred credit.
pub fn void_schedules(conn: &mut PgConnection, invoice_id: i64, date: NaiveDate) -> AppResult<()> {
    diesel::delete(
        rs::table
            .filter(rs::invoice_id.eq(invoice_id))
            .filter(rs::recognized_entry_id.is_null()),
    )
    .execute(conn)?;
    diesel::sql_query(
        "INSERT INTO revenue_schedules
             (invoice_id, line_id, month, amount, currency, revenue_account, deferred_account)
         SELECT invoice_id, line_id, $2, -sum(amount), currency, revenue_account, deferred_account
         FROM revenue_schedules WHERE invoice_id = $1
         GROUP BY invoice_id, line_id, currency, revenue_account, deferred_account
         HAVING sum(amount) <> 0",
    )
    .bind::<diesel::sql_types::Int8, _>(invoice_id)
    .bind::<diesel::sql_types::Date, _>(revrec::month_of(date))
    .execute(conn)?;
    Ok(())
}

/// Posts every unrecognized row of a month up to `through_month` (inclusive): one entry per
/// month and currency, Dr deferred / Cr revenue per account pair. Returns the entries posted.
/// Rows are locked first, so two runs at once post each row once.
pub fn recognize(conn: &mut PgConnection, through_month: NaiveDate) -> AppResult<usize> {
    let through = revrec::month_of(through_month);
    type Open = (i64, NaiveDate, String, Decimal, String, String);
    let open: Vec<Open> = rs::table
        .filter(rs::recognized_entry_id.is_null())
        .filter(rs::month.le(through))
        .order((rs::month, rs::currency, rs::id))
        .select((
            rs::id,
            rs::month,
            rs::currency,
            rs::amount,
            rs::deferred_account,
            rs::revenue_account,
        ))
        .for_update()
        .load(conn)?;
    let mut groups: BTreeMap<(NaiveDate, String), Vec<Open>> = BTreeMap::new();
    for row in open {
        groups.entry((row.1, row.2.clone())).or_default().push(row);
    }
    let mut posted = 0;
    for ((month, currency), rows) in groups {
        let mut pairs: BTreeMap<(String, String), Decimal> = BTreeMap::new();
        for r in &rows {
            *pairs.entry((r.4.clone(), r.5.clone())).or_default() += r.3;
        }
        let label = month.format("%Y-%m").to_string();
        let mut postings = Vec::new();
        for ((deferred, revenue), amount) in pairs.into_iter().filter(|p| !p.1.is_zero()) {
            let posting = |account: String, amount: Decimal, memo: &str| Posting {
                account,
                amount,
                source_line: None,
                memo: memo.to_owned(),
            };
            postings.push(posting(deferred, amount, "deferred revenue released"));
            postings.push(posting(revenue, -amount, "revenue recognized"));
        }
        let entry = NewEntry {
            date: revrec::month_end(month),
            source_type: SourceType::RevenueRecognition,
            // The month as YYYYMM: the entry's source is the schedule month, not a document.
            source_id: i64::from(month.year()) * 100 + i64::from(month.month()),
            document: format!("Revenue {label}"),
            memo: format!("Revenue recognized for {label}"),
            currency,
            postings,
        };
        let id = repo::insert_entry(conn, &entry)?;
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        diesel::update(rs::table.filter(rs::id.eq_any(ids)))
            .set(rs::recognized_entry_id.eq(id))
            .execute(conn)?;
        posted += 1;
    }
    Ok(posted)
}

/// The closed months, oldest first.
pub fn closed_months(conn: &mut PgConnection) -> AppResult<Vec<NaiveDate>> {
    Ok(ledger_periods::table
        .filter(ledger_periods::closed_at.is_not_null())
        .order(ledger_periods::month)
        .select(ledger_periods::month)
        .load(conn)?)
}

/// Where an entry dated `date` goes: its own date when its month is open, else the first day
/// of the first open month after it.
pub fn open_date(conn: &mut PgConnection, date: NaiveDate) -> AppResult<NaiveDate> {
    let closed: Vec<NaiveDate> = ledger_periods::table
        .filter(ledger_periods::closed_at.is_not_null())
        .filter(ledger_periods::month.ge(revrec::month_of(date)))
        .order(ledger_periods::month)
        .select(ledger_periods::month)
        .load(conn)?;
    let mut month = revrec::month_of(date);
    if !closed.contains(&month) {
        return Ok(date);
    }
    while closed.contains(&month) {
        month = revrec::month_end(month).succ_opt().unwrap_or(month);
    }
    Ok(month)
}

/// Closes (or reopens) a month. Taking the journal's insert lock first makes entries posted
/// meanwhile land before the close commits, and every later one see it.
pub fn set_closed(
    conn: &mut PgConnection,
    month: NaiveDate,
    close: bool,
    user_id: i64,
) -> AppResult<()> {
    diesel::sql_query("LOCK TABLE journal_entries IN SHARE ROW EXCLUSIVE MODE").execute(conn)?;
    let (at, by) = if close {
        (Some(chrono::Utc::now()), Some(user_id))
    } else {
        (None, None)
    };
    diesel::insert_into(ledger_periods::table)
        .values((
            ledger_periods::month.eq(revrec::month_of(month)),
            ledger_periods::closed_at.eq(at),
            ledger_periods::closed_by.eq(by),
        ))
        .on_conflict(ledger_periods::month)
        .do_update()
        .set((
            ledger_periods::closed_at.eq(at),
            ledger_periods::closed_by.eq(by),
        ))
        .execute(conn)?;
    Ok(())
}

/// Queues every tenant's recognition of the months that have ended (once per day and tenant).
pub fn schedule_daily(conn: &mut PgConnection, today: NaiveDate) -> AppResult<usize> {
    use crate::db::schema::control::tenants;
    let ids: Vec<i64> = tenants::table.select(tenants::id).load(conn)?;
    let mut queued = 0;
    for tenant_id in ids {
        let mut job = queue::NewJob::new(
            kinds::LEDGER_RECOGNIZE,
            Some(tenant_id),
            json!({ "date": today }),
        );
        job.dedupe_key = Some(format!("ledger-recognize:{tenant_id}:{today}"));
        job.max_attempts = 5;
        if queue::enqueue(conn, &job)?.is_some() {
            queued += 1;
        }
    }
    Ok(queued)
}

/// Handler of `ledger.recognize` jobs: recognizes through the month before the job's date
/// (the months that have ended); the button on the schedule page can also take the current one.
pub async fn run_job(state: &AppState, job: &queue::Job) -> Result<(), JobFailure> {
    let tenant_id = job
        .tenant_id
        .ok_or_else(|| JobFailure::permanent("recognition job without tenant"))?;
    let today: NaiveDate = job
        .payload
        .get("date")
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .unwrap_or_else(|| chrono::Utc::now().date_naive());
    let through = revrec::month_of(today).pred_opt().unwrap_or(today);
    let schema = db::run(&state.pool, move |c| {
        crate::tenants::repo::schema_of(c, tenant_id)
    })
    .await?
    .ok_or_else(|| JobFailure::permanent("tenant no longer exists"))?;
    let schema = TenantSchema::parse(&schema).map_err(JobFailure::permanent)?;
    let posted = db::run(&state.pool, move |c| {
        in_tenant(c, &schema, |c| recognize(c, through))
    })
    .await?;
    tracing::info!(tenant_id, %through, posted, "revenue recognized");
    Ok(())
}
