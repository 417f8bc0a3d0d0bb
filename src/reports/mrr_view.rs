//! What the MRR page shows, built once from the computed report and used for both the HTML
//! and the CSV, so the export is exactly the screen. The chart is integer geometry only; its
//! text goes through askama like everything else.

use std::collections::HashMap;

use rust_decimal::Decimal;

use super::{
    mrr::{AccountMonth, Month, Movement, Report},
    mrr_handlers::Params,
};
use crate::{
    accounts::csv_io::cell,
    error::{AppError, AppResult},
    money::Currency,
};

/// An amount as the page shows it and as the CSV writes it (plain, minor units).
pub struct Cell {
    pub shown: String,
    pub plain: String,
    pub href: String,
}

fn amount(currency: &str, d: Decimal) -> (String, String) {
    match Currency::parse(currency) {
        Ok(c) => {
            let r = c.round(d);
            (c.format(r), format!("{:.*}", c.exponent() as usize, r))
        }
        Err(_) => (d.to_string(), d.to_string()),
    }
}

fn plain_cell(currency: &str, d: Decimal, href: String) -> Cell {
    let (shown, plain) = amount(currency, d);
    Cell { shown, plain, href }
}

pub struct Line {
    pub month: String,
    pub opening: Cell,
    /// Indexed like [`Movement::ALL`].
    pub movements: Vec<Cell>,
    pub closing: Cell,
    pub arr: Cell,
}

pub struct Point {
    pub x: i64,
    pub y: i64,
    pub h: i64,
    pub month: String,
    pub amount: String,
}

pub struct Chart {
    pub width: i64,
    pub height: i64,
    pub baseline: i64,
    pub bar_w: i64,
    /// `x,y x,y ...` for the trend line (numbers only).
    pub polyline: String,
    pub points: Vec<Point>,
}

pub struct Block {
    pub currency: String,
    pub lines: Vec<Line>,
    pub chart: Chart,
}

const CHART_W: i64 = 640;
const CHART_H: i64 = 180;
const PLOT_H: i64 = 140;
const TOP: i64 = 10;

fn chart(currency: &str, lines: &[(Month, Decimal)]) -> Chart {
    let max = lines
        .iter()
        .map(|(_, v)| *v)
        .fold(Decimal::ZERO, Decimal::max);
    let n = i64::try_from(lines.len()).unwrap_or(1).max(1);
    let slot = (CHART_W / n).max(1);
    let points: Vec<Point> = lines
        .iter()
        .enumerate()
        .map(|(i, (m, v))| {
            let h = if max.is_zero() || v.is_sign_negative() {
                0
            } else {
                (*v * Decimal::from(PLOT_H) / max)
                    .round()
                    .try_into()
                    .unwrap_or(0i64)
            };
            let i = i64::try_from(i).unwrap_or(0);
            Point {
                x: i * slot + slot / 2,
                y: TOP + PLOT_H - h,
                h,
                month: m.to_string(),
                amount: amount(currency, *v).0,
            }
        })
        .collect();
    Chart {
        width: CHART_W,
        height: CHART_H,
        baseline: TOP + PLOT_H,
        bar_w: (slot * 3 / 5).max(1),
        polyline: points
            .iter()
            .map(|p| format!("{},{}", p.x, p.y))
            .collect::<Vec<_>>()
            .join(" "),
        points,
    }
}

pub fn build_summary(base: &str, params: &Params, report: &Report) -> Vec<Block> {
    report
        .series
        .iter()
        .map(|s| {
            let c = s.currency.as_str();
            let drill = |m: Month, movement: &str| {
                format!(
                    "{base}/reports/mrr?{}",
                    params.link(&[
                        ("month", &m.to_string()),
                        ("movement", movement),
                        ("currency", c),
                    ])
                )
            };
            let lines = s
                .rows
                .iter()
                .map(|r| Line {
                    month: r.month.to_string(),
                    opening: plain_cell(c, r.opening, drill(r.month.prev(), "closing")),
                    movements: Movement::ALL
                        .iter()
                        .map(|m| plain_cell(c, r.movement(*m), drill(r.month, m.code())))
                        .collect(),
                    closing: plain_cell(c, r.closing, drill(r.month, "closing")),
                    arr: plain_cell(c, r.arr(), drill(r.month, "closing")),
                })
                .collect();
            let trend: Vec<(Month, Decimal)> =
                s.rows.iter().map(|r| (r.month, r.closing)).collect();
            Block {
                currency: s.currency.clone(),
                lines,
                chart: chart(c, &trend),
            }
        })
        .collect()
}

pub fn summary_csv(blocks: &[Block]) -> AppResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["currency", "month", "opening_mrr"];
    header.extend(Movement::ALL.iter().map(|m| m.code()));
    header.extend(["closing_mrr", "arr"]);
    w.write_record(&header).map_err(AppError::internal)?;
    for b in blocks {
        for l in &b.lines {
            let mut rec = vec![b.currency.clone(), l.month.clone(), l.opening.plain.clone()];
            rec.extend(l.movements.iter().map(|c| c.plain.clone()));
            rec.extend([l.closing.plain.clone(), l.arr.plain.clone()]);
            w.write_record(&rec).map_err(AppError::internal)?;
        }
    }
    w.into_inner().map_err(AppError::internal)
}

pub struct DetailLine {
    pub account_id: i64,
    pub account: String,
    pub account_href: String,
    pub currency: String,
    pub month: String,
    pub movement: &'static str,
    pub opening: Cell,
    pub closing: Cell,
    pub change: Cell,
}

/// Which account-months a drill-down shows: one movement, or every account with MRR at the
/// month's end (`closing`), or every account that moved (no movement given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drill {
    Moved,
    Movement(Movement),
    Closing,
}

impl Drill {
    fn keeps(self, a: &AccountMonth) -> bool {
        match self {
            Drill::Moved => a.movement.is_some(),
            Drill::Movement(m) => a.movement == Some(m),
            Drill::Closing => !a.closing.is_zero(),
        }
    }
}

pub fn build_detail(
    base: &str,
    report: &Report,
    names: &HashMap<i64, String>,
    month: Month,
    drill: Drill,
) -> Vec<DetailLine> {
    report
        .accounts
        .iter()
        .filter(|a| a.month == month && drill.keeps(a))
        .map(|a| {
            let c = a.currency.as_str();
            DetailLine {
                account_id: a.account_id,
                account: names
                    .get(&a.account_id)
                    .cloned()
                    .unwrap_or_else(|| format!("Account #{}", a.account_id)),
                account_href: format!("{base}/accounts/{}", a.account_id),
                currency: a.currency.clone(),
                month: a.month.to_string(),
                movement: a.movement.map_or("", Movement::code),
                opening: plain_cell(c, a.opening, String::new()),
                closing: plain_cell(c, a.closing, String::new()),
                change: plain_cell(c, a.change(), String::new()),
            }
        })
        .collect()
}

pub fn detail_csv(lines: &[DetailLine]) -> AppResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "currency",
        "month",
        "account_id",
        "account",
        "movement",
        "opening_mrr",
        "closing_mrr",
        "change",
    ])
    .map_err(AppError::internal)?;
    for l in lines {
        w.write_record([
            l.currency.as_str(),
            l.month.as_str(),
            &l.account_id.to_string(),
            &cell(&l.account),
            l.movement,
            &l.opening.plain,
            &l.closing.plain,
            &l.change.plain,
        ])
        .map_err(AppError::internal)?;
    }
    w.into_inner().map_err(AppError::internal)
}
