//! What the collections page shows, built once from the query rows and used for both the HTML
//! and the CSV, so the export is exactly the screen: every figure on the page is one CSV
//! record `(section, currency, group, key, label, period, measure, value)`.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{
    collections::{self as calc, Period},
    collections_lists::{lag_tables, overdue_tables, promise_tables},
    collections_repo::{ArTotal, MonthSales, OverdueRow, PaidRow, PromiseRow},
};
use crate::{
    accounts::csv_io::cell,
    error::{AppError, AppResult},
    money::Currency,
    tenants::repo::Member,
};

/// Months of sales before a period end the count-back may walk through.
pub const COUNT_BACK_MONTHS: u32 = 13;

/// A figure as shown and as exported (plain, not localized).
pub struct Val {
    pub shown: String,
    pub plain: String,
}

impl Val {
    pub(super) fn blank() -> Val {
        Val {
            shown: "—".into(),
            plain: String::new(),
        }
    }
    pub(super) fn text(s: String) -> Val {
        Val {
            shown: s.clone(),
            plain: s,
        }
    }
    pub(super) fn int(n: i64) -> Val {
        Val::text(n.to_string())
    }
    pub(super) fn ratio(d: Option<Decimal>) -> Val {
        d.map_or_else(Val::blank, |d| Val::text(calc::one_place(d)))
    }
}

pub fn money(currency: &str, d: Decimal) -> Val {
    match Currency::parse(currency) {
        Ok(c) => {
            let r = c.round(d);
            Val {
                shown: c.format(r),
                plain: format!("{:.*}", c.exponent() as usize, r),
            }
        }
        Err(_) => Val::text(d.to_string()),
    }
}

pub struct Row {
    /// `month`, `range`, `account`, `rep`, `promise`.
    pub group: &'static str,
    pub key: String,
    pub label: String,
    pub href: Option<String>,
    pub start: String,
    pub end: String,
    pub is_total: bool,
    pub cells: Vec<Val>,
}

pub struct Point {
    pub x: i64,
    pub y: i64,
    pub label: String,
    pub value: String,
}

pub struct Line {
    pub name: &'static str,
    pub color: &'static str,
    pub points: Vec<Point>,
    pub polyline: String,
}

pub struct LineChart {
    pub width: i64,
    pub height: i64,
    pub baseline: i64,
    pub max_label: String,
    pub lines: Vec<Line>,
}

pub struct Table {
    pub section: &'static str,
    pub title: String,
    pub currency: String,
    /// `(measure code, heading)`.
    pub columns: Vec<(&'static str, &'static str)>,
    pub rows: Vec<Row>,
    pub chart: Option<LineChart>,
    pub note: Option<String>,
}

/// Everything the queries returned for the sections asked for.
#[derive(Default)]
pub struct Loaded {
    pub periods: Vec<Period>,
    /// AR at `from − 1` and at each period end.
    pub ar: Vec<(NaiveDate, Vec<ArTotal>)>,
    pub sales: Vec<MonthSales>,
    pub paid: Option<Vec<PaidRow>>,
    pub overdue: Option<Vec<OverdueRow>>,
    pub promises: Option<Vec<PromiseRow>>,
}

pub(super) struct Ctx<'a> {
    pub base: &'a str,
    pub members: &'a [Member],
    pub today: NaiveDate,
}

fn ar_at(l: &Loaded, at: NaiveDate, currency: &str) -> (Decimal, Decimal) {
    l.ar.iter()
        .find(|(d, _)| *d == at)
        .and_then(|(_, rows)| rows.iter().find(|r| r.currency == currency))
        .map_or((Decimal::ZERO, Decimal::ZERO), |r| (r.total, r.current))
}

fn currencies(l: &Loaded) -> Vec<String> {
    let mut c: Vec<String> =
        l.ar.iter()
            .flat_map(|(_, rows)| rows.iter().map(|r| r.currency.clone()))
            .chain(l.sales.iter().map(|s| s.currency.clone()))
            .collect();
    c.sort();
    c.dedup();
    c
}

fn period_row(p: &Period, is_total: bool, cells: Vec<Val>) -> Row {
    Row {
        group: if is_total { "range" } else { "month" },
        key: if is_total {
            String::new()
        } else {
            p.month.format("%Y-%m").to_string()
        },
        label: if is_total {
            "Whole range".into()
        } else {
            p.month.format("%b %Y").to_string()
        },
        href: None,
        start: p.start.to_string(),
        end: p.end.to_string(),
        is_total,
        cells,
    }
}

const CHART_W: i64 = 560;
const CHART_H: i64 = 180;
const PLOT_H: i64 = 140;

fn dso_chart(series: &[(String, Option<Decimal>, Option<Decimal>)]) -> LineChart {
    let max = series
        .iter()
        .flat_map(|(_, a, b)| [*a, *b])
        .flatten()
        .fold(Decimal::ZERO, Decimal::max);
    let n = i64::try_from(series.len()).unwrap_or(1).max(1);
    let step = (CHART_W - 40) / n.max(2).saturating_sub(1).max(1);
    let y = |v: Decimal| -> i64 {
        if max.is_zero() {
            return 10 + PLOT_H;
        }
        let h: i64 = (v.max(Decimal::ZERO) * Decimal::from(PLOT_H) / max)
            .round()
            .try_into()
            .unwrap_or(0);
        10 + PLOT_H - h
    };
    let line =
        |name: &'static str, color: &'static str, pick: &dyn Fn(usize) -> Option<Decimal>| {
            let points: Vec<Point> = series
                .iter()
                .enumerate()
                .filter_map(|(i, (label, _, _))| {
                    let v = pick(i)?;
                    Some(Point {
                        x: 20 + i64::try_from(i).unwrap_or(0) * step,
                        y: y(v),
                        label: label.clone(),
                        value: calc::one_place(v),
                    })
                })
                .collect();
            let polyline = points
                .iter()
                .map(|p| format!("{},{}", p.x, p.y))
                .collect::<Vec<_>>()
                .join(" ");
            Line {
                name,
                color,
                points,
                polyline,
            }
        };
    LineChart {
        width: CHART_W,
        height: CHART_H,
        baseline: 10 + PLOT_H,
        max_label: calc::one_place(max),
        lines: vec![
            line("Standard", "#1e88e5", &|i| series[i].1),
            line("Count-back", "#e53935", &|i| series[i].2),
        ],
    }
}

fn dso_tables(l: &Loaded, from: NaiveDate, to: NaiveDate) -> Vec<Table> {
    let mut out = Vec::new();
    for cur in currencies(l) {
        let months: Vec<(NaiveDate, Decimal)> = l
            .sales
            .iter()
            .filter(|s| s.currency == cur)
            .map(|s| (s.month, s.sales))
            .collect();
        let in_range = |p: &Period| -> Decimal {
            l.sales
                .iter()
                .filter(|s| s.currency == cur && s.month == p.month)
                .map(|s| s.in_range)
                .sum()
        };
        let mut rows = Vec::new();
        let mut series = Vec::new();
        let mut exhausted = false;
        let mut figures = |p: &Period,
                           sales: Decimal,
                           days: i64|
         -> (Vec<Val>, Option<Decimal>, Option<Decimal>) {
            let (ar, _) = ar_at(l, p.end, &cur);
            let std = calc::standard_dso(ar, sales, days);
            let cb = calc::count_back_dso(ar, &calc::history(p.end, COUNT_BACK_MONTHS, &months));
            exhausted |= cb.exhausted;
            let cb_val = Val {
                shown: format!(
                    "{}{}",
                    if cb.exhausted { "≥" } else { "" },
                    calc::one_place(cb.days)
                ),
                plain: calc::one_place(cb.days),
            };
            (
                vec![
                    money(&cur, ar),
                    money(&cur, sales),
                    Val::int(days),
                    Val::ratio(std),
                    cb_val,
                ],
                std,
                Some(cb.days),
            )
        };
        for p in &l.periods {
            let (cells, std, cb) = figures(p, in_range(p), p.days());
            series.push((p.month.format("%b %Y").to_string(), std, cb));
            rows.push(period_row(p, false, cells));
        }
        let whole = Period {
            month: from,
            start: from,
            end: to,
        };
        let total_sales: Decimal = l.periods.iter().map(in_range).sum();
        let (cells, _, _) = figures(&whole, total_sales, whole.days());
        rows.push(period_row(&whole, true, cells));
        out.push(Table {
            section: "dso",
            title: format!("DSO · {cur}"),
            currency: cur.clone(),
            columns: vec![
                ("ar_end", "AR at end"),
                ("credit_sales", "Credit sales"),
                ("days", "Days"),
                ("dso_standard", "DSO standard"),
                ("dso_count_back", "DSO count-back"),
            ],
            rows,
            chart: Some(dso_chart(&series)),
            note: exhausted.then(|| {
                format!("“≥” marks a count-back that ran out of sales history ({COUNT_BACK_MONTHS} months).")
            }),
        });
    }
    out
}

fn cei_tables(l: &Loaded, from: NaiveDate, to: NaiveDate) -> Vec<Table> {
    let mut out = Vec::new();
    let opening_day = from.pred_opt().unwrap_or(from);
    for cur in currencies(l) {
        let sales_of = |p: &Period| -> Decimal {
            l.sales
                .iter()
                .filter(|s| s.currency == cur && s.month == p.month)
                .map(|s| s.in_range)
                .sum()
        };
        let figures = |open_at: NaiveDate, close_at: NaiveDate, sales: Decimal| -> Vec<Val> {
            let (opening, _) = ar_at(l, open_at, &cur);
            let (closing, current) = ar_at(l, close_at, &cur);
            vec![
                money(&cur, opening),
                money(&cur, sales),
                money(&cur, closing),
                money(&cur, current),
                Val::ratio(calc::cei(opening, sales, closing, current)),
            ]
        };
        let mut rows = Vec::new();
        let mut open_at = opening_day;
        for p in &l.periods {
            rows.push(period_row(p, false, figures(open_at, p.end, sales_of(p))));
            open_at = p.end;
        }
        let whole = Period {
            month: from,
            start: from,
            end: to,
        };
        let total: Decimal = l.periods.iter().map(sales_of).sum();
        rows.push(period_row(&whole, true, figures(opening_day, to, total)));
        out.push(Table {
            section: "cei",
            title: format!("Collection effectiveness · {cur}"),
            currency: cur.clone(),
            columns: vec![
                ("opening_ar", "Opening AR"),
                ("credit_sales", "Credit sales"),
                ("closing_ar", "Closing AR"),
                ("closing_current", "Closing current AR"),
                ("cei_percent", "CEI %"),
            ],
            rows,
            chart: None,
            note: None,
        });
    }
    out
}

/// The tables of the page, in the order shown.
pub fn build(
    base: &str,
    members: &[Member],
    today: NaiveDate,
    from: NaiveDate,
    to: NaiveDate,
    sections: &[&str],
    l: &Loaded,
) -> Vec<Table> {
    let c = Ctx {
        base,
        members,
        today,
    };
    let mut out = Vec::new();
    for s in sections {
        match *s {
            "dso" => out.extend(dso_tables(l, from, to)),
            "lag" => {
                if let Some(p) = &l.paid {
                    let cut = i64::try_from(p.len()).unwrap_or(i64::MAX)
                        >= super::collections_repo::LAG_LIMIT;
                    out.extend(lag_tables(&c, p, cut));
                }
            }
            "cei" => out.extend(cei_tables(l, from, to)),
            "overdue" => out.extend(overdue_tables(&c, l.overdue.as_deref().unwrap_or(&[]))),
            "promises" => out.extend(promise_tables(&c, l.promises.as_deref().unwrap_or(&[]))),
            _ => {}
        }
    }
    out
}

pub fn csv(tables: &[Table]) -> AppResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "section",
        "currency",
        "group",
        "key",
        "label",
        "period_start",
        "period_end",
        "measure",
        "value",
    ])
    .map_err(AppError::internal)?;
    for t in tables {
        for r in &t.rows {
            for ((measure, _), v) in t.columns.iter().zip(&r.cells) {
                w.write_record([
                    t.section,
                    &t.currency,
                    r.group,
                    &r.key,
                    &cell(&r.label),
                    &r.start,
                    &r.end,
                    measure,
                    &v.plain,
                ])
                .map_err(AppError::internal)?;
            }
        }
    }
    w.into_inner().map_err(AppError::internal)
}
