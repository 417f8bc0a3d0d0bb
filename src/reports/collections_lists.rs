//! The list sections of the collections page (lag, overdue by account, promises due), built
//! from their query rows into the same tables as the rest of the page.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{
    collections as calc,
    collections_repo::{OverdueRow, PaidRow, PromiseRow},
    collections_view::{money, Ctx, Row, Table, Val},
};

/// `(days to pay, days past due at payment)` of one paid invoice.
type Days = (i64, i64);

fn lag_cells(rows: &[Days]) -> Vec<Val> {
    match calc::lag(rows) {
        Some(l) => vec![
            Val::int(i64::try_from(l.invoices).unwrap_or(0)),
            Val::ratio(Some(l.to_pay.average)),
            Val::ratio(Some(l.to_pay.median)),
            Val::ratio(Some(l.past_due.average)),
            Val::ratio(Some(l.past_due.median)),
        ],
        None => vec![
            Val::int(0),
            Val::blank(),
            Val::blank(),
            Val::blank(),
            Val::blank(),
        ],
    }
}

pub(super) fn lag_tables(c: &Ctx, paid: &[PaidRow], cut: bool) -> Vec<Table> {
    let days = |r: &PaidRow| {
        (
            (r.paid_on - r.issue_date).num_days(),
            (r.paid_on - r.due).num_days(),
        )
    };
    let columns = vec![
        ("invoices", "Invoices paid"),
        ("days_to_pay_avg", "Days to pay, avg"),
        ("days_to_pay_median", "median"),
        ("days_past_due_avg", "Days past due at payment, avg"),
        ("days_past_due_median", "median"),
    ];
    let mut by_month: BTreeMap<NaiveDate, Vec<Days>> = BTreeMap::new();
    let mut by_account: BTreeMap<(String, i64), Vec<Days>> = BTreeMap::new();
    let mut by_rep: BTreeMap<(String, Option<i64>), Vec<Days>> = BTreeMap::new();
    for r in paid {
        by_month
            .entry(calc::month_start(r.paid_on))
            .or_default()
            .push(days(r));
        by_account
            .entry((r.account.clone(), r.account_id))
            .or_default()
            .push(days(r));
        let rep = match r.owner_user_id {
            None => "Unassigned".to_owned(),
            Some(id) => c
                .members
                .iter()
                .find(|m| m.user_id == id)
                .map_or_else(|| format!("User #{id}"), |m| m.name.clone()),
        };
        by_rep
            .entry((rep, r.owner_user_id))
            .or_default()
            .push(days(r));
    }
    let all: Vec<(i64, i64)> = paid.iter().map(days).collect();
    let row = |group, key: String, label: String, href, v: &[(i64, i64)]| Row {
        group,
        key,
        label,
        href,
        start: String::new(),
        end: String::new(),
        is_total: false,
        cells: lag_cells(v),
    };
    let total = || Row {
        group: "range",
        key: String::new(),
        label: "All paid invoices".into(),
        href: None,
        start: String::new(),
        end: String::new(),
        is_total: true,
        cells: lag_cells(&all),
    };
    let note =
        cut.then(|| "Only the first paid invoices were counted; narrow the filters.".to_owned());
    let mut months: Vec<Row> = by_month
        .iter()
        .map(|(m, v)| {
            row(
                "month",
                m.format("%Y-%m").to_string(),
                m.format("%b %Y").to_string(),
                None,
                v,
            )
        })
        .collect();
    months.push(total());
    let mut accounts: Vec<Row> = by_account
        .iter()
        .map(|((name, id), v)| {
            row(
                "account",
                id.to_string(),
                name.clone(),
                Some(format!("{}/accounts/{id}", c.base)),
                v,
            )
        })
        .collect();
    accounts.push(total());
    let mut reps: Vec<Row> = by_rep
        .iter()
        .map(|((name, id), v)| {
            row(
                "rep",
                id.map_or_else(|| "none".into(), |i| i.to_string()),
                name.clone(),
                None,
                v,
            )
        })
        .collect();
    reps.push(total());
    [
        ("by month of payment", months),
        ("by account", accounts),
        ("by rep", reps),
    ]
    .into_iter()
    .map(|(t, rows)| Table {
        section: "lag",
        title: format!("Collections lag {t}"),
        currency: String::new(),
        columns: columns.clone(),
        rows,
        chart: None,
        note: note.clone(),
    })
    .collect()
}

pub(super) fn overdue_tables(c: &Ctx, rows: &[OverdueRow]) -> Vec<Table> {
    let mut out: Vec<Table> = Vec::new();
    for r in rows {
        if out.last().is_none_or(|t| t.currency != r.currency) {
            out.push(Table {
                section: "overdue",
                title: format!("Overdue by account · {} · as of {}", r.currency, c.today),
                currency: r.currency.clone(),
                columns: vec![
                    ("overdue", "Overdue"),
                    ("invoices", "Invoices"),
                    ("oldest_due", "Oldest due date"),
                    ("days_past_due", "Days past due"),
                ],
                rows: Vec::new(),
                chart: None,
                note: None,
            });
        }
        if let Some(t) = out.last_mut() {
            t.rows.push(Row {
                group: "account",
                key: r.account_id.to_string(),
                label: r.account.clone(),
                href: Some(format!("{}/accounts/{}", c.base, r.account_id)),
                start: String::new(),
                end: c.today.to_string(),
                is_total: false,
                cells: vec![
                    money(&r.currency, r.overdue),
                    Val::int(r.invoices),
                    Val::text(r.oldest_due.to_string()),
                    Val::int((c.today - r.oldest_due).num_days()),
                ],
            });
        }
    }
    for t in &mut out {
        let total: Decimal = rows
            .iter()
            .filter(|r| r.currency == t.currency)
            .map(|r| r.overdue)
            .sum();
        let n: i64 = rows
            .iter()
            .filter(|r| r.currency == t.currency)
            .map(|r| r.invoices)
            .sum();
        t.rows.push(Row {
            group: "range",
            key: String::new(),
            label: format!("Total {}", t.currency),
            href: None,
            start: String::new(),
            end: c.today.to_string(),
            is_total: true,
            cells: vec![
                money(&t.currency, total),
                Val::int(n),
                Val::blank(),
                Val::blank(),
            ],
        });
    }
    out
}

pub(super) fn promise_tables(c: &Ctx, rows: &[PromiseRow]) -> Vec<Table> {
    let mut out: Vec<Table> = Vec::new();
    for r in rows {
        if out.last().is_none_or(|t| t.currency != r.currency) {
            out.push(Table {
                section: "promises",
                title: format!("Promises to pay due within 7 days · {}", r.currency),
                currency: r.currency.clone(),
                columns: vec![
                    ("account_id", "Account id"),
                    ("invoice_id", "Invoice id"),
                    ("amount", "Amount"),
                    ("promised_on", "Promised on"),
                    ("days_until", "Days until"),
                ],
                rows: Vec::new(),
                chart: None,
                note: None,
            });
        }
        if let Some(t) = out.last_mut() {
            t.rows.push(Row {
                group: "promise",
                key: r.id.to_string(),
                label: r.account.clone(),
                href: Some(format!("{}/accounts/{}", c.base, r.account_id)),
                start: String::new(),
                end: String::new(),
                is_total: false,
                cells: vec![
                    Val::int(r.account_id),
                    r.invoice_id.map_or_else(Val::blank, Val::int),
                    money(&r.currency, r.amount),
                    Val::text(r.promised_on.to_string()),
                    Val::int((r.promised_on - c.today).num_days()),
                ],
            });
        }
    }
    out
}
