//! What the aging page shows, built once from the query rows and used for both the HTML and
//! the CSV, so the export is exactly the screen. The chart is geometry only (integers); its
//! text goes through askama like everything else.

use rust_decimal::Decimal;

use super::{
    aging::Bucket,
    aging_handlers::Params,
    aging_repo::{DetailRow, Group, SummaryRow, ROW_LIMIT},
};
use crate::{
    accounts::csv_io::cell,
    error::{AppError, AppResult},
    money::Currency,
    tenants::repo::Member,
};

/// An amount as the page shows it and as the CSV writes it (no separators, minor units).
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

pub struct SummaryLine {
    pub is_total: bool,
    pub key: String,
    pub label: String,
    /// Link to the account page (account grouping only).
    pub account_href: Option<String>,
    pub parent_id: String,
    pub cells: Vec<Cell>,
    pub total: Cell,
    pub invoices: i64,
}

pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
    pub label: &'static str,
    pub amount: String,
}

pub struct Chart {
    pub width: i64,
    pub height: i64,
    pub baseline: i64,
    pub bars: Vec<Bar>,
}

pub struct Block {
    pub currency: String,
    pub lines: Vec<SummaryLine>,
    /// `Some(total rows)` when the block was cut at [`ROW_LIMIT`].
    pub cut: Option<i64>,
    pub chart: Chart,
}

pub struct SummaryView {
    pub group: &'static str,
    pub heading: &'static str,
    pub blocks: Vec<Block>,
    pub limit: i64,
}

const CHART_W: i64 = 480;
const CHART_H: i64 = 160;
const BAR_AREA: i64 = 120;

/// Bars proportional to each bucket's amount (negative balances draw nothing).
fn chart(currency: &str, buckets: &[Decimal; 6]) -> Chart {
    let max = buckets.iter().copied().fold(Decimal::ZERO, Decimal::max);
    let slot = CHART_W / 6;
    let bars = Bucket::ALL
        .iter()
        .zip(buckets)
        .enumerate()
        .map(|(i, (b, v))| {
            let h = if max.is_zero() || v.is_sign_negative() {
                0
            } else {
                (*v * Decimal::from(BAR_AREA) / max)
                    .round()
                    .try_into()
                    .unwrap_or(0i64)
            };
            let i = i64::try_from(i).unwrap_or(0);
            Bar {
                x: i * slot + 8,
                y: 20 + BAR_AREA - h,
                w: slot - 16,
                h,
                label: b.label(),
                amount: amount(currency, *v).0,
            }
        })
        .collect();
    Chart {
        width: CHART_W,
        height: CHART_H,
        baseline: 20 + BAR_AREA,
        bars,
    }
}

fn owner_label(members: &[Member], key: Option<i64>) -> String {
    match key {
        None => "Unassigned".to_owned(),
        Some(id) => members
            .iter()
            .find(|m| m.user_id == id)
            .map_or_else(|| format!("User #{id}"), |m| m.name.clone()),
    }
}

pub fn build_summary(
    base: &str,
    params: &Params,
    group: Group,
    members: &[Member],
    rows: Vec<SummaryRow>,
) -> SummaryView {
    let mut blocks: Vec<Block> = Vec::new();
    for r in rows {
        let key = r.key.map(|k| k.to_string()).unwrap_or_default();
        // What a drill-down adds to the current filters to select exactly this row's invoices.
        let row_filter: Vec<(&str, String)> = match (r.is_total, group) {
            (true, _) | (false, Group::Currency) => vec![],
            (false, Group::Account) => vec![("account", key.clone())],
            (false, Group::Owner) => {
                vec![("owner", r.key.map_or("none".into(), |k| k.to_string()))]
            }
        };
        let drill = |bucket: &str| {
            let mut changes: Vec<(&str, &str)> = vec![
                ("view", "detail"),
                ("bucket", bucket),
                ("currency", r.currency.as_str()),
            ];
            changes.extend(row_filter.iter().map(|(k, v)| (*k, v.as_str())));
            format!("{base}/reports/aging?{}", params.link(&changes))
        };
        let cells = Bucket::ALL
            .iter()
            .zip(r.buckets())
            .map(|(b, v)| {
                let (shown, plain) = amount(&r.currency, v);
                Cell {
                    shown,
                    plain,
                    href: drill(b.code()),
                }
            })
            .collect();
        let (shown, plain) = amount(&r.currency, r.total);
        let label = match (r.is_total, group) {
            (true, _) => format!("Total {}", r.currency),
            (false, Group::Account) => r.label.clone().unwrap_or_default(),
            (false, Group::Owner) => owner_label(members, r.key),
            (false, Group::Currency) => r.currency.clone(),
        };
        let line = SummaryLine {
            is_total: r.is_total,
            account_href: (group == Group::Account && !r.is_total)
                .then(|| format!("{base}/accounts/{key}")),
            key,
            label,
            parent_id: r.parent_id.map(|p| p.to_string()).unwrap_or_default(),
            cells,
            total: Cell {
                shown,
                plain,
                href: drill(""),
            },
            invoices: r.n,
        };
        let chart_source = (r.is_total || group == Group::Currency).then(|| r.buckets());
        let block = match blocks.last_mut() {
            Some(b) if b.currency == r.currency => b,
            _ => {
                blocks.push(Block {
                    currency: r.currency.clone(),
                    lines: Vec::new(),
                    cut: None,
                    chart: chart(&r.currency, &[Decimal::ZERO; 6]),
                });
                match blocks.last_mut() {
                    Some(b) => b,
                    None => continue,
                }
            }
        };
        if !r.is_total && r.shown_of > ROW_LIMIT {
            block.cut = Some(r.shown_of);
        }
        if let Some(src) = chart_source {
            block.chart = chart(&r.currency, &src);
        }
        block.lines.push(line);
    }
    SummaryView {
        group: group.code(),
        heading: match group {
            Group::Account => "Account (incl. sub-accounts)",
            Group::Owner => "Owner",
            Group::Currency => "Currency",
        },
        blocks,
        limit: ROW_LIMIT,
    }
}

pub struct DetailLine {
    pub id: i64,
    pub number: String,
    pub href: String,
    pub account_id: i64,
    pub account: String,
    pub account_href: String,
    pub currency: String,
    pub issue_date: String,
    pub due_date: String,
    pub days: i32,
    pub bucket: &'static str,
    pub balance: Cell,
}

pub struct DetailTotal {
    pub currency: String,
    pub count: i64,
    pub total: String,
    pub shown: i64,
}

pub struct DetailView {
    pub lines: Vec<DetailLine>,
    pub totals: Vec<DetailTotal>,
    pub cut: bool,
}

pub fn build_detail(base: &str, rows: Vec<DetailRow>) -> DetailView {
    let mut totals: Vec<DetailTotal> = Vec::new();
    let mut lines = Vec::with_capacity(rows.len());
    for r in rows {
        match totals.last_mut() {
            Some(t) if t.currency == r.currency => t.shown += 1,
            _ => totals.push(DetailTotal {
                currency: r.currency.clone(),
                count: r.currency_count,
                total: amount(&r.currency, r.currency_total).0,
                shown: 1,
            }),
        }
        let (shown, plain) = amount(&r.currency, r.balance);
        lines.push(DetailLine {
            href: format!("{base}/invoices/{}", r.id),
            number: r.number.unwrap_or_else(|| format!("#{}", r.id)),
            id: r.id,
            account_href: format!("{base}/accounts/{}", r.account_id),
            account_id: r.account_id,
            account: r.display_name,
            currency: r.currency,
            issue_date: r.issue_date.to_string(),
            due_date: r.due.to_string(),
            days: r.days,
            bucket: usize::try_from(r.bucket)
                .ok()
                .and_then(Bucket::from_index)
                .map_or("", Bucket::label),
            balance: Cell {
                shown,
                plain,
                href: String::new(),
            },
        });
    }
    let cut = totals.iter().any(|t| t.shown < t.count);
    DetailView { lines, totals, cut }
}

fn finish(w: csv::Writer<Vec<u8>>) -> AppResult<Vec<u8>> {
    w.into_inner().map_err(AppError::internal)
}

pub fn summary_csv(v: &SummaryView) -> AppResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["row_type", "currency", "group", "key", "label", "parent_id"];
    header.extend(Bucket::ALL.iter().map(|b| b.code()));
    header.extend(["total", "invoices"]);
    w.write_record(&header).map_err(AppError::internal)?;
    for b in &v.blocks {
        for l in &b.lines {
            let mut rec = vec![
                if l.is_total { "total" } else { "row" }.to_owned(),
                b.currency.clone(),
                v.group.to_owned(),
                l.key.clone(),
                cell(&l.label),
                l.parent_id.clone(),
            ];
            rec.extend(l.cells.iter().map(|c| c.plain.clone()));
            rec.push(l.total.plain.clone());
            rec.push(l.invoices.to_string());
            w.write_record(&rec).map_err(AppError::internal)?;
        }
    }
    finish(w)
}

pub fn detail_csv(v: &DetailView) -> AppResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "invoice_id",
        "number",
        "account_id",
        "account",
        "currency",
        "issue_date",
        "due_date",
        "days_past_due",
        "bucket",
        "balance_as_of",
    ])
    .map_err(AppError::internal)?;
    for l in &v.lines {
        w.write_record([
            l.id.to_string(),
            cell(&l.number),
            l.account_id.to_string(),
            cell(&l.account),
            l.currency.clone(),
            l.issue_date.clone(),
            l.due_date.clone(),
            l.days.to_string(),
            l.bucket.to_owned(),
            l.balance.plain.clone(),
        ])
        .map_err(AppError::internal)?;
    }
    finish(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_bucket_and_ignore_negatives() {
        let c = chart(
            "USD",
            &[
                Decimal::from(100),
                Decimal::from(50),
                Decimal::ZERO,
                Decimal::from(-5),
                Decimal::from(25),
                Decimal::from(1),
            ],
        );
        let h: Vec<i64> = c.bars.iter().map(|b| b.h).collect();
        assert_eq!(h, vec![120, 60, 0, 0, 30, 1]);
        assert!(c.bars.iter().all(|b| b.y + b.h == c.baseline));
    }
}
